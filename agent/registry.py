"""Check kinds by name, from the `mqwatch.checks` entry points.

The core names no check: the built-in ones register through the same entry points as a
third-party plugin (see pyproject.toml), so adding a system touches only its own folder,
pyproject.toml and its dashboards and alerts.
"""

from __future__ import annotations

import logging
from importlib.metadata import EntryPoint, entry_points

ENTRY_POINT_GROUP = "mqwatch.checks"

_log = logging.getLogger("mqwatch.registry")
_registered: dict[str, type] = {}  # register() at run time: tests, embedding


def kind_entry_points(group: str) -> dict[str, EntryPoint]:
    """One entry point per name in `group`; a second one claiming a taken name is ignored
    with a warning (the first installed wins), so a plugin cannot silently swap a check."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        first = found.get(ep.name)
        if first is None:
            found[ep.name] = ep
        elif first.value != ep.value:
            _log.warning("plugin_ignored group=%s entry_point=%s value=%s reason=%s", group, ep.name, ep.value,
                         f"{ep.name} is already provided by {first.value}")
    return found


def load_entry_point(ep: EntryPoint):
    """The entry point's object, or None (logged) when it fails to import: a broken plugin
    must not take the agent down."""
    try:
        return ep.load()
    except Exception as e:
        _log.warning("plugin_load_failed group=%s entry_point=%s error=%r", ep.group, ep.name, e)
        return None


class PluginLoadError(LookupError):
    """A kind is installed but its plugin failed to import (the log says why)."""


def register(kind: str, cls: type) -> None:
    """Register a check class at run time (tests, embedding)."""
    _registered[kind] = cls


def unregister(kind: str) -> None:
    _registered.pop(kind, None)


def get_check_class(kind: str) -> type:
    """Import only the kind asked for: each check's client library costs the agent memory
    for its whole life (pulsar-client, redis and requests: 22 MB of RSS).
    KeyError for a kind nobody provides, PluginLoadError for one that fails to import."""
    if kind in _registered:
        return _registered[kind]
    ep = kind_entry_points(ENTRY_POINT_GROUP).get(kind)
    if ep is None:
        raise KeyError(kind)
    cls = load_entry_point(ep)
    if cls is None:
        raise PluginLoadError(f"check kind {kind!r} is installed ({ep.value}) but failed to import; the log says why")
    return cls


def known_kinds() -> list[str]:
    """Every kind a config may name. Listing does not import the checks."""
    return sorted(set(kind_entry_points(ENTRY_POINT_GROUP)) | set(_registered))


def all_check_classes() -> list[type]:
    """Every check class that imports (the metric catalog needs them all)."""
    classes = []
    for kind in known_kinds():
        try:
            classes.append(get_check_class(kind))
        except LookupError:
            continue
    return classes
