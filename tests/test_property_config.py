"""Issue 12, property-based: any YAML document gives either a valid config or ConfigErrors that
each name the file and a line, never a traceback. Documents are built around the real schemas
(every check kind's keys, nested sections) so the fuzzing reaches each converter, plus raw text
that is not YAML at all."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mqwatch.agent.config import AGENT_SCHEMA, parse_config
from mqwatch.agent.registry import get_check_class
from mqwatch.agent.schema import ConfigErrors, Schema

KINDS = ("kafka", "pulsar", "redis")


def _keys(schema: Schema, prefix: tuple = ()) -> list[tuple]:
    """Every key path of a schema, nested sections included."""
    out = []
    for name, field in schema.fields.items():
        out.append(prefix + (name,))
        if isinstance(field.type, Schema):
            out += _keys(field.type, prefix + (name,))
    return out


CHECK_KEYS = {kind: _keys(get_check_class(kind).config_schema) for kind in KINDS}
AGENT_KEYS = _keys(AGENT_SCHEMA)

hostile_text = st.one_of(
    st.text(max_size=30),
    st.sampled_from(["", " ", "0", "-1", "1e309", "nan", "inf", "off", "yes", "~", "15x", "5s", "-5s", "1h2m",
                     "http://", "redis//:pw@host:1/0", "${UNSET}", "${A:-", "host:99999", "[::1]:9325", "a,b,,c",
                     "(?P<source>", "*", "\x00", "é" * 50, "9" * 400]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(min_value=-(10**30), max_value=10**30),
                    st.floats(), hostile_text)
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(hostile_text, inner, max_size=3)), max_leaves=8)


def nest(doc: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        if not isinstance(doc.get(k), dict):
            doc[k] = {}
        doc = doc[k]
    doc[path[-1]] = value


@st.composite
def documents(draw):
    doc: dict = {}
    for path in draw(st.lists(st.sampled_from(AGENT_KEYS), max_size=3)):
        nest(doc, ("agent",) + path, draw(values))
    checks = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(st.sampled_from(KINDS + ("nope",)))
        check = {"kind": kind, "name": draw(st.one_of(st.just("c"), hostile_text))}
        for path in draw(st.lists(st.sampled_from(CHECK_KEYS.get(kind, CHECK_KEYS["kafka"])), max_size=5)):
            nest(check, path, draw(values))
        checks.append(check)
    doc["checks"] = draw(st.one_of(st.just(checks), values))
    if draw(st.booleans()):
        doc[draw(hostile_text)] = draw(values)
    return doc


def assert_config_or_located_errors(text: str) -> None:
    try:
        parse_config(text, "fuzz.yaml", {"SET": "x"})
    except ConfigErrors as e:
        assert e.errors
        for err in e.errors:
            assert str(err).startswith("fuzz.yaml:"), str(err)
            assert isinstance(err.line, int) and err.line >= 1, f"no line: {err}"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_any_schema_shaped_document_gives_a_config_or_located_errors(doc):
    assert_config_or_located_errors(yaml.safe_dump(doc, allow_unicode=True))


@settings(max_examples=300, deadline=None)
@given(st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["checks:", "  - kind: kafka", "    name: a", "agent:", "  interval: 1s", "\t", "- ", "&a x",
                              "*a", "!!python/object:os.system", "<<: *a", "? [1]", ": x", "'", "\"", "%TAG", "---", "...",
                              "    bootstrap_servers: ${X}", "  - kind: redis", "    url: redis//:pw@h:1/0", "{", "}", "[",
                              "    dlq_keys: ['*:dead']", "checks: 3", "agent: [1]"]), max_size=12).map("\n".join),
))
def test_any_text_gives_a_config_or_located_errors(text):
    assert_config_or_located_errors(text)
