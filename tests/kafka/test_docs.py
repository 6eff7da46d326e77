"""The Kafka check's documentation keeps up with its config schema and metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mqwatch.agent.config import load_config
from mqwatch.agent.metrics import catalog, render_markdown
from mqwatch.agent.schema import Schema
from mqwatch.checks.kafka.check import KafkaCheck

ROOT = Path(__file__).resolve().parents[2]
KAFKA = ROOT / "checks" / "kafka"


def _keys(schema: Schema, prefix=""):
    for name, f in schema.fields.items():
        yield prefix + name
        if isinstance(f.type, Schema):
            yield from _keys(f.type, prefix + name + ".")


def test_sample_config_is_valid():
    load_config(str(KAFKA / "sample.yaml"))


@pytest.mark.parametrize("key", sorted(set(_keys(KafkaCheck.config_schema))))
def test_every_config_key_is_in_the_sample_and_the_readme(key):
    sample = yaml.safe_load((KAFKA / "sample.yaml").read_text())["checks"][0]
    node = sample
    for part in key.split("."):
        assert part in node, f"{key} missing from sample.yaml"
        node = node[part]
    readme = (KAFKA / "README.md").read_text()
    assert f"`{key}`" in readme or f"`{key}." in readme, f"{key} missing from README.md"


@pytest.mark.parametrize("metric", [m.name for m in KafkaCheck.metrics])
def test_every_metric_has_an_example_query_in_the_readme_and_the_catalog(metric):
    rows = [line for line in (KAFKA / "README.md").read_text().splitlines() if line.startswith(f"| `{metric}` |")]
    assert rows, f"{metric} missing from README.md"
    assert re.search(rf"`[^`]*{metric}", rows[0].split("|", 3)[3]), f"no example query for {metric}"
    assert next(m for m in KafkaCheck.metrics if m.name == metric).example, f"no catalog example for {metric}"


def test_docs_metrics_md_is_the_generated_catalog():
    assert (ROOT / "docs" / "metrics.md").read_text() == render_markdown(catalog())
