"""The wheel a user installs: built with `python -m build`, installed into a fresh venv, and used from there.

`pip install mqwatch` alone must give the agent, its checks, the alert rules, the dashboards, the runbooks
and the sample configs, under one `mqwatch` namespace (no top-level `agent` or `checks` in site-packages).
The fresh venv gets its dependencies from the package index (or pip's cache), as a user's would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.request
import venv
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    work = tmp_path_factory.mktemp("wheel")
    # Built from a copy: setuptools leaves build/ in the source tree, and files deleted since an
    # earlier build would linger there and ship.
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info",
                                                                "__pycache__", ".pytest_cache", ".hypothesis"))
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(source)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    wheel, = (work / "dist").glob("mqwatch-*.whl")
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return env_dir


def run(env_dir: Path, *args, cwd: Path, timeout=120):
    return subprocess.run([str(env_dir / "bin" / "mqwatch"), *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)


@pytest.mark.timeout(900)
def test_wheel_installs_under_one_namespace_with_its_data(installed):
    site, = (installed / "lib").glob("python3*/site-packages")
    assert not (site / "agent").exists() and not (site / "checks").exists()
    package = site / "mqwatch"
    for path in ("agent/cli.py", "checks/kafka/check.py", "checks/redis/sample.yaml", "checks/pulsar/README.md",
                 "alerts/thresholds.yaml", "alerts/mqwatch.rules.yml", "dashboards/overview.json",
                 "runbooks/MqwatchConsumerLagHigh.md"):
        assert (package / path).is_file(), path


@pytest.mark.timeout(300)
def test_installed_commands_work_outside_the_clone(installed, tmp_path, redis_server):
    version = run(installed, "--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("mqwatch ")
    catalog = run(installed, "metrics", cwd=tmp_path)
    assert catalog.returncode == 0 and "mqwatch_consumer_lag_seconds" in catalog.stdout
    rules = run(installed, "alerts", cwd=tmp_path)
    assert rules.returncode == 0, rules.stderr
    assert rules.stdout == (ROOT / "alerts" / "mqwatch.rules.yml").read_text()
    assert yaml.safe_load(rules.stdout)["groups"]
    dashboards = run(installed, "dashboards", str(tmp_path / "dash"), cwd=tmp_path)
    assert dashboards.returncode == 0, dashboards.stderr
    assert (tmp_path / "dash" / "overview.json").read_bytes() == (ROOT / "dashboards" / "overview.json").read_bytes()

    import redis

    url = f"redis://{redis_server.address}/15"  # a database no other test uses
    client = redis.Redis.from_url(url)
    key = "wheel:jobs"
    client.delete(key)
    client.rpush(key, *[f"job-{i}" for i in range(7)])
    config = tmp_path / "mqwatch.yaml"
    config.write_text(yaml.safe_dump({"checks": [{"kind": "redis", "name": "wheel", "url": url,
                                                  "keys": ["wheel:*"]}]}))
    check = run(installed, "check", "-c", str(config), "--format", "prom", cwd=tmp_path)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
    lines = [line for line in check.stdout.splitlines()
             if line.startswith("mqwatch_queue_messages{") and f'queue="{key}"' in line]
    assert len(lines) == 1 and lines[0].endswith(" 7.0"), check.stdout[-2000:]

    # `mqwatch run` serves through its child process (agent.front), which finds the installed
    # package without `site`: the same queue, scraped over HTTP.
    from mqwatch.agent.embedded import free_port
    from tests.helpers import wait_until

    port = free_port()
    agent = subprocess.Popen([str(installed / "bin" / "mqwatch"), "run", "-c", str(config), "--listen",
                              f"127.0.0.1:{port}"], cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def scraped() -> str:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    return r.read().decode()
            except OSError:
                return ""
        wait_until(lambda: f'queue="{key}"' in scraped(), 60, message="the installed agent serving its check")
        assert any(line.startswith("mqwatch_queue_messages{") and f'queue="{key}"' in line and line.endswith(" 7.0")
                   for line in scraped().splitlines())
    finally:
        agent.terminate()
        _, err = agent.communicate(timeout=20)
    assert agent.returncode == 0, err[-2000:]
