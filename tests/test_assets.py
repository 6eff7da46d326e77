"""`mqwatch alerts` and `mqwatch dashboards`: the shipped rules and dashboards from the command line."""

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def mqwatch(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "mqwatch.agent", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def test_alerts_prints_the_shipped_rules_and_applies_a_thresholds_file(tmp_path):
    shipped = mqwatch("alerts", cwd=tmp_path)
    assert shipped.returncode == 0, shipped.stderr
    assert shipped.stdout == (ROOT / "alerts" / "mqwatch.rules.yml").read_text()

    overrides = tmp_path / "mine.yaml"
    overrides.write_text("alerts:\n  MqwatchConsumerLagHigh: {threshold_seconds: 42}\n")
    mine = mqwatch("alerts", "--thresholds", str(overrides), cwd=tmp_path)
    assert mine.returncode == 0, mine.stderr
    rules = {r["alert"]: r for g in yaml.safe_load(mine.stdout)["groups"] for r in g["rules"] if "alert" in r}
    assert "> 42" in rules["MqwatchConsumerLagHigh"]["expr"]


def test_alerts_rejects_a_bad_thresholds_file_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("alerts:\n  MqwatchNoSuchAlert: {threshold_seconds: 1}\n")
    result = mqwatch("alerts", "--thresholds", str(bad))
    assert result.returncode == 2 and "MqwatchNoSuchAlert" in result.stderr and not result.stdout
    missing = mqwatch("alerts", "--thresholds", str(tmp_path / "missing.yaml"))
    assert missing.returncode == 2 and "missing.yaml" in missing.stderr


def test_dashboards_writes_every_shipped_dashboard(tmp_path):
    out = tmp_path / "grafana" / "dashboards"
    result = mqwatch("dashboards", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shipped = sorted(p.name for p in (ROOT / "dashboards").glob("*.json"))
    assert len(shipped) >= 5 and sorted(p.name for p in out.iterdir()) == shipped
    for name in shipped:
        assert (out / name).read_bytes() == (ROOT / "dashboards" / name).read_bytes()
