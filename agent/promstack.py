"""Start a real Prometheus and Alertmanager (Debian packages) on loopback, for the demo and the
end-to-end tests: Prometheus scrapes given targets, loads given rule files and sends alerts to
the Alertmanager. Each runs with its own data directory on a free port; stop() removes it."""

from __future__ import annotations

import os
import shutil
import tempfile

import yaml

from agent.embedded import Broker, BrokerUnavailable, _spawn, free_port


def _binary(*names: str) -> str:
    for name in names:
        path = shutil.which(name) or (f"/usr/bin/{name}" if os.path.exists(f"/usr/bin/{name}") else None)
        if path:
            return path
    raise BrokerUnavailable(f"{names[0]} is not installed (apt-get install prometheus prometheus-alertmanager)")


def prometheus_available() -> bool:
    return all(shutil.which(n) or os.path.exists(f"/usr/bin/{n}") for n in ("prometheus", "prometheus-alertmanager"))


def start_alertmanager(config: dict, port: int | None = None) -> Broker:
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-alertmanager-")
    path = os.path.join(workdir, "alertmanager.yml")
    with open(path, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    broker = _spawn("alertmanager", [
        _binary("prometheus-alertmanager", "alertmanager"), f"--config.file={path}",
        f"--storage.path={os.path.join(workdir, 'data')}", f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",  # no gossip port: a single local instance
    ], port, workdir)
    broker.extra["url"] = f"http://127.0.0.1:{port}"
    return broker


def start_prometheus(targets: list[str], rule_files: list[str] = (), alertmanager: str | None = None,
                     interval: str = "1s", job: str = "mqwatch", port: int | None = None) -> Broker:
    """`targets` are host:port of mqwatch agents; `alertmanager` is host:port."""
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-prometheus-")
    rules = []
    for i, rule_file in enumerate(rule_files):
        copy = os.path.join(workdir, f"rules-{i}.yml")
        shutil.copyfile(rule_file, copy)
        rules.append(copy)
    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval},
        "rule_files": rules,
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": list(targets)}]}],
    }
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]}
    path = os.path.join(workdir, "prometheus.yml")
    with open(path, "w") as fh:
        yaml.safe_dump(config, fh, sort_keys=False)
    broker = _spawn("prometheus", [
        _binary("prometheus"), f"--config.file={path}", f"--storage.tsdb.path={os.path.join(workdir, 'data')}",
        f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
    ], port, workdir)
    broker.extra["url"] = f"http://127.0.0.1:{port}"
    return broker
