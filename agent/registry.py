"""Check kinds by name: the built-in ones and third-party ones from the `mqwatch.checks` entry points."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

ENTRY_POINT_GROUP = "mqwatch.checks"

_BUILTIN = {
    "kafka": "checks.kafka.check:KafkaCheck",
    "redis": "checks.redis.check:RedisCheck",
    "pulsar": "checks.pulsar.check:PulsarCheck",
}

_log = logging.getLogger("mqwatch.registry")
_cache: dict[str, type] | None = None


def _load(spec: str):
    module, _, attr = spec.partition(":")
    mod = __import__(module, fromlist=[attr])
    return getattr(mod, attr)


def _discover() -> dict[str, type]:
    global _cache
    if _cache is None:
        found: dict[str, type] = {}
        for kind, spec in _BUILTIN.items():
            found[kind] = _load(spec)
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name in found and ep.value == _BUILTIN.get(ep.name):
                continue
            try:
                cls = ep.load()
            except Exception as e:  # a broken plugin must not take the agent down
                _log.warning("plugin_load_failed entry_point=%s error=%r", ep.name, e)
                continue
            if ep.name in _BUILTIN:
                _log.warning("plugin_ignored entry_point=%s reason=%s", ep.name, "shadows a built-in check")
                continue
            found[ep.name] = cls
        _cache = found
    return _cache


def register(kind: str, cls: type) -> None:
    """Register a check class at run time (tests, embedding)."""
    _discover()[kind] = cls


def unregister(kind: str) -> None:
    _discover().pop(kind, None)


def get_check_class(kind: str) -> type:
    if _cache is None and kind in _BUILTIN:
        # Import only the kinds a config uses: each check's client library costs the agent
        # memory for its whole life (pulsar-client, redis and requests: 22 MB of RSS).
        return _load(_BUILTIN[kind])
    return _discover()[kind]


def known_kinds() -> list[str]:
    return sorted(_discover())


def all_check_classes() -> list[type]:
    return list(_discover().values())
