"""Load and validate mqwatch.yaml: the agent section plus one section per check.

Every error names file, line and key path; all errors are collected so that
`mqwatch validate` lists them at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import yaml

from mqwatch.agent import sharding
from mqwatch.agent.redact import register_config_tree
from mqwatch.agent.registry import PluginLoadError, get_check_class, known_kinds
from mqwatch.agent.schema import (
    ConfigError, ConfigErrors, Duration, Field, Schema, Section, Str, Type, _Ctx, Invalid, Choice,
    did_you_mean, expand_env, format_path, UNRESOLVED,
)

DEFAULT_PORT = 9325


class ShardSpec(Type):
    """`I/N` or `auto/N`; `auto` is resolved from HOSTNAME when the agent starts (agent/sharding.py)."""

    name = "I/N | auto/N"

    def convert(self, value, ctx, path):
        if value in (None, ""):
            return ""
        try:
            return sharding.check_spec(str(value))
        except sharding.ShardError as e:
            raise Invalid(str(e).removeprefix("shard: ")) from None


def _listen_type():
    return Str(r"(\[[0-9a-fA-F:.]+(%[\w.-]+)?\]|[^:\s\[\]]*):\d{1,5}",
               "expected host:port, for example 0.0.0.0:9325, or [ipv6]:port, for example [::1]:9325")


AGENT_SCHEMA = Schema(
    {
        "listen": Field(_listen_type(), f"0.0.0.0:{DEFAULT_PORT}", "address the HTTP server listens on"),
        "interval": Field(Duration(min=0.1), 15.0, "default collection interval"),
        "timeout": Field(Duration(min=0.1), 10.0, "per-check collection timeout"),
        "log_level": Field(Choice("debug", "info", "warning", "error"), "info", "log level"),
        "web_config_file": Field(Str(), "", "TLS and basic auth for the endpoints, in the Prometheus exporter-toolkit "
                                 "format (see README); --web.config.file overrides it"),
        "shard": Field(ShardSpec(), "", "this replica's share of the work, I/N or auto/N (see README, "
                                        "\"When one agent is not enough\"); --shard and MQWATCH_SHARD win over it"),
        "alertmanager_url": Field(Str(r"(https?://[^\s/]+/?)?", "expected http(s)://host:port"), "",
                                  "Alertmanager whose firing alerts the status page lists (optional)"),
    }
)

# Keys every check section accepts, whatever its kind.
COMMON_CHECK_FIELDS = {
    "kind": Field(Str(), doc="which check: the kind an installed check registers (kafka, redis, pulsar, or a plugin's)"),
    "name": Field(
        Str(r"[A-Za-z0-9_.:-]+", "letters, digits and _ . : - only"),
        doc="the check's name; becomes the `cluster` label",
    ),
    "interval": Field(Duration(min=0.1), None, "collection interval (default: agent.interval)"),
    "timeout": Field(Duration(min=0.1), None, "collection timeout (default: agent.timeout)"),
}


@dataclass(frozen=True)
class CheckConfig:
    kind: str
    name: str
    interval: float
    timeout: float
    options: Section  # the kind-specific section, validated by the check's schema

    @property
    def key(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Config:
    file: str
    agent: Section
    checks: tuple[CheckConfig, ...]


def load_config(path: str, environ=None) -> Config:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise ConfigErrors([ConfigError(f"cannot read config: {e.strerror}", file=path)]) from None
    return parse_config(text, path, environ)


def parse_config(text: str, file: str = "mqwatch.yaml", environ=None) -> Config:
    environ = os.environ if environ is None else environ
    errors: list[ConfigError] = []
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or str(e)
        raise ConfigErrors([ConfigError(f"invalid YAML: {problem}", line=mark.line + 1 if mark else 1, file=file)]) from None
    lines: dict[tuple, int] = {}
    data = {} if node is None else _to_python(node, (), lines, errors, file, environ)
    # Before validation: an error message about a rejected value must not show it either.
    register_config_tree(data)
    ctx = _Ctx(file, lines, errors)
    if not isinstance(data, dict):
        ctx.error((), "the config file must be a mapping with `agent` and `checks`")
        raise ConfigErrors(errors)
    for key in data:
        if key not in ("agent", "checks"):
            ctx.error((key,), f"unknown key{did_you_mean(str(key), ['agent', 'checks'])}")
    agent = _convert(AGENT_SCHEMA, data.get("agent"), ctx, ("agent",))
    checks: list[CheckConfig] = []
    raw_checks = data.get("checks")
    if raw_checks is None:
        ctx.error(("checks",), "required key is missing: list at least one check")
    elif not isinstance(raw_checks, list):
        ctx.error(("checks",), "expected a list of checks")
    else:
        seen: dict[tuple, int] = {}
        for i, raw in enumerate(raw_checks):
            cc = _check_config(raw, ctx, ("checks", i), agent)
            if cc is None:
                continue
            if (cc.kind, cc.name) in seen:
                ctx.error(("checks", i, "name"), f"duplicate check {cc.kind}/{cc.name} (also checks[{seen[(cc.kind, cc.name)]}])")
                continue
            seen[(cc.kind, cc.name)] = i
            checks.append(cc)
    if errors:
        raise ConfigErrors(errors)
    return Config(file=file, agent=agent, checks=tuple(checks))


def _check_config(raw, ctx: _Ctx, path: tuple, agent: Section | None) -> CheckConfig | None:
    if not isinstance(raw, dict):
        ctx.error(path, "expected a mapping with at least `kind` and `name`")
        return None
    kind = raw.get("kind")
    if kind is None:
        ctx.error(path + ("kind",), f"required key is missing (one of: {', '.join(known_kinds())})")
        return None
    try:
        cls = get_check_class(str(kind))
    except PluginLoadError as e:
        ctx.error(path + ("kind",), str(e))
        return None
    except KeyError:
        known = known_kinds()
        ctx.error(path + ("kind",), f"unknown check kind {kind!r}{did_you_mean(str(kind), known)}; known: {', '.join(known)}")
        return None
    schema = Schema({**COMMON_CHECK_FIELDS, **cls.config_schema.fields}, cls.config_schema.check)
    section = _convert(schema, raw, ctx, path)
    if section is None or agent is None or not {"kind", "name"} <= set(section):
        return None
    options = Section({k: v for k, v in section.items() if k not in COMMON_CHECK_FIELDS}, section._secrets)
    return CheckConfig(
        kind=section.kind,
        name=section.name,
        interval=section.interval if section.interval is not None else agent.interval,
        timeout=section.timeout if section.timeout is not None else agent.timeout,
        options=options,
    )


def _convert(schema: Schema, value, ctx: _Ctx, path: tuple):
    try:
        return schema.convert(value, ctx, path)
    except Invalid as e:
        ctx.error(path, str(e))
        return None


def _to_python(node, path: tuple, lines: dict, errors: list, file: str, environ):
    """Turn a composed YAML node into plain data, remembering the line of every path."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]`: YAML allows it, a config can't use it
                errors.append(ConfigError("a key must be a name, not a list or mapping", _path_str(path),
                                          key_node.start_mark.line + 1, file))
                continue
            key = key_node.value
            if key in out:
                errors.append(ConfigError("duplicate key", _path_str(path + (key,)), key_node.start_mark.line + 1, file))
            lines[path + (key,)] = key_node.start_mark.line + 1
            out[key] = _to_python(value_node, path + (key,), lines, errors, file, environ)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(v, path + (i,), lines, errors, file, environ) for i, v in enumerate(node.value)]
    try:
        value = _construct_scalar(node)
    except yaml.YAMLError as e:  # an unknown tag (`!ref x`) or a malformed timestamp, say
        problem = getattr(e, "problem", None) or type(e).__name__
        errors.append(ConfigError(f"invalid value: {problem}", _path_str(path), node.start_mark.line + 1, file))
        return UNRESOLVED
    if isinstance(value, str) and "${" in value:
        try:
            value = expand_env(value, environ)
        except Invalid as e:
            errors.append(ConfigError(str(e), _path_str(path), node.start_mark.line + 1, file))
            return UNRESOLVED
    return value


def _construct_scalar(node):
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    finally:
        loader.dispose()


def _path_str(path):
    return format_path(path)
