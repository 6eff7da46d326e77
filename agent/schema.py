"""Declarative config schemas: each check declares its section, the loader validates it.

Validation collects every error (not just the first) and names the file, line and key
path of each, so `mqwatch validate` can list them all at once.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable, Mapping

from mqwatch.agent.durations import parse_duration
from mqwatch.agent.redact import redact, register_secret

REQUIRED = object()


class _UnresolvedType:
    """A value whose ${VAR} could not be expanded: already reported, so not validated again."""

    def __repr__(self):
        return "<unresolved>"


UNRESOLVED = _UnresolvedType()


class ConfigError(Exception):
    """One problem in a config file, located by file, line and key path."""

    def __init__(self, message: str, path: str = "", line: int | None = None, file: str = ""):
        self.message, self.path, self.line, self.file = message, path, line, file
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or "<config>"
        if self.line is not None:
            where += f":{self.line}"
        # Messages quote the offending value; a secret one (a malformed URL with a password) is masked.
        message = redact(self.message)
        return f"{where}: {self.path}: {message}" if self.path else f"{where}: {message}"


class ConfigErrors(Exception):
    def __init__(self, errors: list[ConfigError]):
        # In the order a user reads the file; errors without a line (the whole file) first.
        self.errors = sorted(errors, key=lambda e: (e.file, e.line is not None, e.line or 0))
        super().__init__("\n".join(str(e) for e in errors))


class Section(Mapping):
    """A validated config section: read-only, attribute access, compares by value."""

    def __init__(self, values: dict, secrets: frozenset = frozenset()):
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_secrets", secrets)

    def __getattr__(self, name):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        raise AttributeError("config sections are read-only")

    def __getitem__(self, key):
        return self._values[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __eq__(self, other):
        return isinstance(other, Section) and self._values == other._values

    def __hash__(self):
        return hash(repr(sorted(self._values.items(), key=lambda kv: kv[0])))

    def __repr__(self):
        shown = {k: ("<redacted>" if k in self._secrets else v) for k, v in self._values.items()}
        return f"Section({shown!r})"


class _Ctx:
    """Where validation is: file, key path and the line of each path from the YAML."""

    def __init__(self, file: str, lines: dict, errors: list):
        self.file, self.lines, self.errors = file, lines, errors

    def line(self, path: tuple):
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        # A key missing from an empty document still has a place an editor can jump to.
        return self.lines.get((), 1)

    def error(self, path: tuple, message: str):
        self.errors.append(ConfigError(message, format_path(path), self.line(path), self.file))


def format_path(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


class Invalid(Exception):
    """Raised by a type converter (a check's own Type subclass too); the message is
    reported at the value's path."""


# ---- value types -------------------------------------------------------------------------

class Type:
    name = "value"
    noun = "a value"  # what one value is, in an error message

    def convert(self, value, ctx: _Ctx, path: tuple):
        raise NotImplementedError


class Str(Type):
    name = "string"

    def __init__(self, pattern: str | None = None, hint: str = "", noun: str = "a string"):
        self.pattern = re.compile(pattern) if pattern else None
        self.hint, self.noun = hint, noun

    def convert(self, value, ctx, path):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise Invalid(f"expected a string, got {_describe(value)}")
        value = str(value)
        if self.pattern and not self.pattern.fullmatch(value):
            raise Invalid(f"{value!r} is not valid{': ' + self.hint if self.hint else ''}")
        return value


class Int(Type):
    name = "integer"

    def __init__(self, min: int | None = None, max: int | None = None):
        self.min, self.max = min, max

    def convert(self, value, ctx, path):
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
                value = int(value)
            else:
                raise Invalid(f"expected an integer, got {_describe(value)}")
        if self.min is not None and value < self.min:
            raise Invalid(f"must be at least {self.min}, got {value}")
        if self.max is not None and value > self.max:
            raise Invalid(f"must be at most {self.max}, got {value}")
        return value


class Float(Type):
    name = "number"

    def __init__(self, min: float | None = None):
        self.min = min

    def convert(self, value, ctx, path):
        if isinstance(value, bool):
            raise Invalid(f"expected a number, got {_describe(value)}")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise Invalid(f"expected a number, got {_describe(value)}") from None
        if self.min is not None and value < self.min:
            raise Invalid(f"must be at least {self.min}, got {value}")
        return value


class Bool(Type):
    name = "boolean"

    def convert(self, value, ctx, path):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "on", "off"):
            return value.lower() in ("true", "yes", "on")
        raise Invalid(f"expected true or false, got {_describe(value)}")


class Duration(Type):
    name = "duration"

    def __init__(self, min: float = 0.0):
        self.min = min

    def convert(self, value, ctx, path):
        try:
            seconds = parse_duration(value)
        except ValueError as e:
            raise Invalid(str(e)) from None
        if seconds < self.min:
            raise Invalid(f"must be at least {self.min:g}s")
        return seconds


class Choice(Type):
    def __init__(self, *choices: str):
        self.choices = choices
        self.name = " | ".join(choices)

    def convert(self, value, ctx, path):
        # YAML 1.1 reads a bare off/on/no/yes as a boolean; the user meant the word.
        if value is False and "off" in self.choices:
            value = "off"
        elif value is True and "on" in self.choices:
            value = "on"
        if value not in self.choices:
            hint = did_you_mean(str(value), self.choices)
            raise Invalid(f"{value!r} is not one of {', '.join(self.choices)}{hint}")
        return value


class Regex(Type):
    name = "regular expression"
    noun = "a regular expression"

    def convert(self, value, ctx, path):
        if not isinstance(value, str):
            raise Invalid(f"expected a regular expression string, got {_describe(value)}")
        try:
            return re.compile(value)
        except re.error as e:
            raise Invalid(f"invalid regular expression {value!r}: {e}") from None


class ListOf(Type):
    """A list; one string where a list is expected is a list of that one item (split at commas
    with split_commas), for every list alike."""

    def __init__(self, item: Type, split_commas: bool = False, min_items: int = 0, expected: str = ""):
        self.item, self.split_commas, self.min_items = item, split_commas, min_items
        self.name = f"list of {item.name}"
        self.expected = expected or f"{item.noun} or a list of them"

    def convert(self, value, ctx, path):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()] if self.split_commas else [value]
        if not isinstance(value, list):
            raise Invalid(f"expected {self.expected}, got {_describe(value)}")
        if len(value) < self.min_items:
            raise Invalid(f"needs at least {self.min_items} item(s)")
        out = []
        for i, v in enumerate(value):
            if v is UNRESOLVED:
                continue
            try:
                out.append(self.item.convert(v, ctx, path + (i,)))
            except Invalid as e:
                ctx.error(path + (i,), str(e))
        return tuple(out)


class ScalarMap(Type):
    """A free-form mapping of scalar values, passed through to a client library."""

    name = "mapping"

    def convert(self, value, ctx, path):
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise Invalid(f"expected a mapping, got {_describe(value)}")
        value = _resolve_file_fields(value, None, ctx, path)
        out = {}
        for k, v in value.items():
            if v is UNRESOLVED:
                continue
            if isinstance(v, (dict, list)) or v is None:
                ctx.error(path + (str(k),), f"expected a scalar value, got {_describe(v)}")
                continue
            out[str(k)] = v
        return out


@dataclass(frozen=True)
class Field:
    type: Type
    default: Any = REQUIRED
    doc: str = ""
    secret: bool = False


class Schema(Type):
    """A mapping with known keys. Unknown keys are errors with a did-you-mean hint."""

    name = "mapping"

    def __init__(self, fields: dict[str, Field], check: Callable[[Section], list[tuple[str, str]]] | None = None):
        self.fields = fields
        self.check = check

    def convert(self, value, ctx, path):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise Invalid(f"expected a mapping, got {_describe(value)}")
        reported = len(ctx.errors)
        value = _resolve_file_fields(value, self.fields, ctx, path)
        out = {}
        # `<key>_file` is a way to give a string key, so it is a spelling to suggest too
        spellings = [*self.fields, *(f"{k}_file" for k, f in self.fields.items() if isinstance(f.type, Str))]
        meant = set()  # keys a misspelling was taken for: their absence is that same error
        for key in value:
            if key not in self.fields:
                close = _closest(str(key), spellings)
                if close:
                    meant.add(close.removesuffix("_file") if close not in self.fields else close)
                ctx.error(path + (key,), f"unknown key{f' (did you mean {close}?)' if close else ''}")
        for key, f in self.fields.items():
            if key in value and value[key] is not UNRESOLVED:
                try:
                    out[key] = f.type.convert(value[key], ctx, path + (key,))
                except Invalid as e:
                    ctx.error(path + (key,), str(e))
                    if f.default is not REQUIRED:  # keep the section usable for checks that follow
                        out[key] = f.default
            elif key in value:
                if f.default is not REQUIRED:
                    out[key] = f.default
            elif f.default is REQUIRED:
                if key not in meant:
                    ctx.error(path + (key,) if path else (key,), "required key is missing")
            elif isinstance(f.type, Schema) and f.default is None:
                out[key] = f.type.convert({}, ctx, path + (key,))
            else:
                out[key] = f.default
        section = Section(out, frozenset(k for k, f in self.fields.items() if f.secret))
        # Cross-key rules only judge a section whose keys were all valid: a bad metrics_url
        # replaced by its default must not also read as "no source given".
        if self.check and len(out) == len(self.fields) and len(ctx.errors) == reported:
            for key, message in self.check(section):  # key: a name, a tuple path into the section, or ""
                ctx.error(path + (key if isinstance(key, tuple) else (key,) if key else ()), message)
        return section

    def validate(self, value, file: str = "", lines: dict | None = None, path: tuple = ()) -> Section:
        errors: list[ConfigError] = []
        ctx = _Ctx(file, lines or {}, errors)
        try:
            result = self.convert(value, ctx, path)
        except Invalid as e:
            ctx.error(path, str(e))
            result = None
        if errors:
            raise ConfigErrors(errors)
        return result


def Filter(default_include=(".*",), default_exclude=()) -> Field:
    """include/exclude regex lists, the way every check selects groups, topics and keys."""
    return Field(
        Schema(
            {
                "include": Field(ListOf(Regex()), tuple(re.compile(p) for p in default_include)),
                "exclude": Field(ListOf(Regex()), tuple(re.compile(p) for p in default_exclude)),
            }
        ),
        None,
    )


def matches(filter_section: Section, name: str) -> bool:
    return any(p.search(name) for p in filter_section.include) and not any(
        p.search(name) for p in filter_section.exclude
    )


def _resolve_file_fields(value: dict, fields: dict | None, ctx: _Ctx, path: tuple) -> dict:
    """`password_file: /path` reads the secret `password` from a file.

    With fields=None (a free-form mapping) any `<key>_file` is read into `<key>`.
    """
    out = dict(value)
    for key in list(value):
        if not isinstance(key, str) or not key.endswith("_file") or (fields is not None and key in fields):
            continue
        target = key[: -len("_file")]
        if fields is not None and (target not in fields or not isinstance(fields[target].type, Str)):
            continue
        del out[key]
        if target in value:
            ctx.error(path + (key,), f"give either {target} or {key}, not both")
            continue
        file_path = value[key]
        try:
            with open(file_path, encoding="utf-8") as fh:
                out[target] = fh.read().rstrip("\r\n")
            register_secret(out[target])
        except (OSError, TypeError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) and e.strerror else type(e).__name__
            ctx.error(path + (key,), f"cannot read {file_path!r}: {reason}")
    return out


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(text: str, environ=os.environ) -> str:
    """Expand ${VAR} and ${VAR:-default}; an unset VAR without default is an error."""

    def sub(m):
        name, default = m.group(1), m.group(2)
        v = environ.get(name)
        if v is None or (v == "" and default is not None):
            if default is None:
                raise Invalid(f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")
            return default
        return v

    return _ENV.sub(sub, text)


def _describe(value) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return f"boolean {value}"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"


def _closest(word: str, candidates) -> str | None:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, candidates) -> str:
    close = _closest(word, candidates)
    return f" (did you mean {close}?)" if close else ""


__all__ = [
    "Bool", "Choice", "ConfigError", "ConfigErrors", "did_you_mean", "Duration", "Field", "Filter", "Float", "Int",
    "Invalid", "ListOf", "REQUIRED", "Regex", "ScalarMap", "Schema", "Section", "Str", "Type", "expand_env",
    "format_path", "matches",
]
