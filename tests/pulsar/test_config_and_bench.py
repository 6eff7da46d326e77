"""Config validation of `kind: pulsar`, and a smoke run of the exposition benchmark."""

from __future__ import annotations

import io

import pytest
import yaml

from mqwatch.agent.config import parse_config
from mqwatch.agent.schema import ConfigErrors


def errors_of(check: dict) -> list[str]:
    doc = {"checks": [{"kind": "pulsar", "name": "events", **check}]}
    with pytest.raises(ConfigErrors) as e:
        parse_config(yaml.safe_dump(doc), "mqwatch.yaml")
    return [str(x) for x in e.value.errors]


def test_a_source_is_required():
    assert any("give metrics_url, admin_url or both" in e and e.startswith("mqwatch.yaml:") for e in errors_of({}))


def test_canary_and_sampling_need_service_url():
    errs = errors_of({"metrics_url": "http://b:8080/metrics", "canary": {"enabled": True}, "dlq_sampling": {"enabled": True}})
    assert any("checks[0].canary.enabled" in e and "service_url" in e for e in errs)
    assert any("checks[0].dlq_sampling.enabled" in e for e in errs)


def test_bad_values_are_named():
    errs = errors_of({"metrics_url": "broker:8080", "admin_url": "http://b:8080", "max_concurency": 4})
    assert any("checks[0].metrics_url[0]" in e and "http(s) URL" in e for e in errs)
    assert any("checks[0].max_concurency: unknown key (did you mean max_concurrency?)" in e for e in errs)


def test_sample_yaml_is_valid():
    from pathlib import Path

    text = (Path(__file__).parents[2] / "checks" / "pulsar" / "sample.yaml").read_text()
    cfg = parse_config(text, "sample.yaml", environ={})
    assert [c.kind for c in cfg.checks] == ["pulsar"]


def test_exposition_benchmark_smoke():
    from benchmarks.pulsar_exposition import run

    out = io.StringIO()
    report = run(topics=200, subscriptions=2, runs=1, out=out)
    # 200 topics, of which 5 groups of 4 are partitions of one topic each: 185 queues.
    assert report["queues"] == 185
    assert "ratio" in out.getvalue() and report["ratio"] > 0
