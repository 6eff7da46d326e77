"""Redis glob patterns (SCAN MATCH, KEYS): matched client-side, and one glob covering several.

Walking a keyspace of a million keys once per pattern costs a full walk each; one walk with a
MATCH that covers every pattern (their common literal prefix, or the set of their first
characters) lets the server drop most unrelated keys, and the few that pass are matched
exactly here with Redis's own glob rules (stringmatchlen in src/util.c: `*`, `?`, `[...]`
with `^` negation and `a-z` ranges, backslash escapes; byte-wise).
"""

from __future__ import annotations

import os
import re

_SPECIAL = "*?[]\\"


def has_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def literal_prefix(pattern: str) -> str:
    """The characters every match starts with (escapes resolved)."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c in "*?[":
            break
        if c == "\\" and i + 1 < len(pattern):
            i += 1
            c = pattern[i]
        out.append(c)
        i += 1
    return "".join(out)


def _escape(text: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in text)


def covering_glob(patterns: list[str]) -> str | None:
    """A glob matching at least every key any of `patterns` matches; None when only `*` does."""
    if len(patterns) == 1:
        return patterns[0]
    prefixes = [literal_prefix(p) for p in patterns]
    if not all(prefixes):
        return None
    common = os.path.commonprefix(prefixes)
    if common:
        return _escape(common) + "*"
    return "[" + "".join("\\" + c for c in sorted({p[0] for p in prefixes})) + "]*"


def to_regex(pattern: str, capture_stars: bool = False) -> re.Pattern:
    """The bytes regex that fullmatches exactly the keys Redis's glob matches (each `*` a group
    with capture_stars)."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("(.*)" if capture_stars else ".*")
        elif c == "?":
            out.append(".")
        elif c == "\\" and i + 1 < n:
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[" and "]" in pattern[i + 1:]:
            j = i + 1
            negate = pattern[j] == "^"
            j += negate
            parts = []
            while pattern[j] != "]":
                if pattern[j] == "\\" and j + 1 < n:
                    j += 1
                    parts.append(re.escape(pattern[j]))
                elif j + 2 < n and pattern[j + 1] == "-" and pattern[j + 2] != "]":
                    lo, hi = sorted((pattern[j], pattern[j + 2]))  # Redis accepts z-a as a-z
                    parts.append(f"{re.escape(lo)}-{re.escape(hi)}")
                    j += 2
                else:
                    parts.append(re.escape(pattern[j]))
                j += 1
            out.append(f"[{'^' if negate else ''}{''.join(parts)}]" if parts else ("(?!)" if not negate else "."))
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out).encode("utf-8"), re.S)


class Matcher:
    """Which of several globs (the first, in order) a key matches."""

    def __init__(self, patterns: list[str]):
        self._regexes = [to_regex(p) for p in patterns]
        self._any = re.compile(b"|".join(b"(?:" + r.pattern + b")" for r in self._regexes), re.S)

    def index(self, key: bytes) -> int | None:
        if self._any.fullmatch(key) is None:
            return None
        for i, r in enumerate(self._regexes):
            if r.fullmatch(key):
                return i
        return None
