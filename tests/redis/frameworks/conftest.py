"""Real job frameworks writing their own state into Redis, for tests that compare every number
mqwatch reports with what the framework's own API says.

`./mqw test` installs them (Debian ruby-sidekiq; npm bullmq + ioredis into a cache directory;
rq and celery[redis] from the test extra). A test skips only when a framework truly cannot run
here (the message says how to install it). Each framework gets its own Redis database, set up
once per module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import redis

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
NPM_DIR = Path(os.environ.get("MQWATCH_NPM_DIR") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
               / "mqwatch" / "npm")
# Databases 1-15 are taken by the per-test `db` fixture in turns; these are used by one
# module at a time (pytest runs modules one after the other).
FRAMEWORK_DB = {"sidekiq": 11, "rq": 12, "bullmq": 13, "celery": 14, "shared": 15}


class FrameworkDb:
    def __init__(self, port: int, number: int):
        self.port, self.number = port, number
        self.url = f"redis://127.0.0.1:{port}/{number}"
        self.r = redis.Redis(port=port, db=number)
        self.r.flushdb()

    def check(self, **options) -> dict:
        return {"kind": "redis", "name": "jobs", "url": self.url, "timeout": "10s", **options}


@pytest.fixture(scope="module")
def framework_db(request, redis_server):
    d = FrameworkDb(redis_server.port, FRAMEWORK_DB[request.module.FRAMEWORK])
    yield d
    d.r.flushdb()
    d.r.close()


def run(argv, env=None, timeout=60, cwd=HERE) -> str:
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, argv))} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


class Process:
    """A long-running framework process (worker, node driver), stopped at the end."""

    def __init__(self, argv, env=None, stdin=None, cwd=HERE):
        self.proc = subprocess.Popen(argv, cwd=cwd, env={**os.environ, **(env or {})}, stdin=stdin,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     start_new_session=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # its own session: the worker's children go too
        self.proc.wait(10)


# ---- availability -----------------------------------------------------------------------------
def need_sidekiq() -> None:
    if not (shutil.which("ruby") and shutil.which("sidekiq")):
        pytest.skip("Sidekiq is not installed: apt-get install ruby ruby-sidekiq (./mqw test does)")


def need_bullmq() -> None:
    if not shutil.which("node"):
        pytest.skip("Node.js is not installed: apt-get install nodejs npm (./mqw test does)")
    if not (NPM_DIR / "node_modules" / "bullmq").is_dir():
        if not shutil.which("npm"):
            pytest.skip("npm is not installed: apt-get install npm (./mqw test does)")
        run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(NPM_DIR), "bullmq@6", "ioredis"],
            timeout=600)


def node_env() -> dict:
    return {"NODE_PATH": str(NPM_DIR / "node_modules")}


def loads(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])
