"""Real brokers on loopback, started once per test session and stopped after it."""

from __future__ import annotations

import pytest

from mqwatch.checks.kafka.embedded import start_tansu
from mqwatch.checks.pulsar.embedded import start_pulsar_lite
from mqwatch.checks.redis.embedded import start_redis


@pytest.fixture(scope="session")
def tansu():
    broker = start_tansu()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(tansu) -> str:
    return tansu.address


@pytest.fixture
def fresh_tansu():
    """A broker of the test's own, for tests that stop or freeze it."""
    broker = start_tansu()
    yield broker
    broker.resume()
    broker.stop()


@pytest.fixture(scope="session")
def redis_server():
    broker = start_redis()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def pulsar_lite():
    broker = start_pulsar_lite()
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A private CA with server and client certificates (tests/pki.py)."""
    from tests.pki import make_pki

    return make_pki(str(tmp_path_factory.mktemp("pki")))
