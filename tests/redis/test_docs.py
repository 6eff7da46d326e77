"""The Redis check's sample config, README and the metrics catalog stay in step with the code."""

from __future__ import annotations

import pathlib
import subprocess
import sys

from mqwatch.agent.config import load_config
from mqwatch.checks.redis.config import SCHEMA
from mqwatch.checks.redis.metrics import METRICS

ROOT = pathlib.Path(__file__).resolve().parents[2]
HERE = ROOT / "checks" / "redis"


def test_sample_config_is_valid_and_documents_every_option():
    cfg = load_config(str(HERE / "sample.yaml"))
    assert [c.kind for c in cfg.checks] == ["redis"]
    sample, readme = (HERE / "sample.yaml").read_text(), (HERE / "README.md").read_text()
    for key in SCHEMA.fields:
        assert f"{key}:" in sample or f"{key}_file:" in sample, f"sample.yaml lacks {key}"
    for key in ("max_keys", "dlq_sample", "stream_lag_max_scan", "delayed_score", "processing_suffix"):
        assert key in readme, f"README.md lacks {key}"


def test_every_redis_metric_is_in_docs_metrics_md():
    text = (ROOT / "docs" / "metrics.md").read_text()
    generated = subprocess.run([sys.executable, "-m", "mqwatch.agent", "metrics", "--format", "markdown"],
                               capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert text == generated, "docs/metrics.md is stale: run `mqwatch metrics --format markdown > docs/metrics.md`"
    for m in METRICS:
        assert f"`{m.name}`" in text
