"""An embedded Pulsar-protocol broker for the demo and the tests: pulsar-lite (PyPI `pulsar-lite`),
with its Prometheus endpoint on a loopback port of its own (it defaults to 0.0.0.0:8080)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mqwatch.agent.embedded import Broker, free_port, package_binary, spawn, wait_for_port


def pulsar_lite_binary() -> Path:
    return package_binary("pulsar_lite", "bin", "pulsar-lite")


def start_pulsar_lite(port: int | None = None, metrics_port: int | None = None, cluster: str = "local",
                      default_partitions: int | None = None) -> Broker:
    """default_partitions makes every auto-created topic a partitioned topic with that many partitions."""
    port = port or free_port()
    metrics_port = metrics_port or free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-pulsar-")
    config = os.path.join(workdir, "pulsar-lite.toml")
    with open(config, "w") as fh:
        if default_partitions:
            fh.write(f"default_partitions = {int(default_partitions)}\n")
        fh.write(f'[metrics]\nenabled = true\naddr = "127.0.0.1:{metrics_port}"\ncluster = "{cluster}"\n')
    broker = spawn("pulsar-lite", [pulsar_lite_binary(), "--config", config, "--addr", f"127.0.0.1:{port}",
                                   "--db-path", os.path.join(workdir, "db"), "--log-level", "warn"], port, workdir)
    try:
        wait_for_port(metrics_port, 20.0, broker.proc)
    except Exception:
        broker.stop()
        raise
    broker.extra["metrics_port"] = metrics_port
    broker.extra["metrics_url"] = f"http://127.0.0.1:{metrics_port}/metrics"
    broker.extra["service_url"] = f"pulsar://127.0.0.1:{port}"
    return broker
