"""Pulsar test fixtures: a pulsar-client on the shared pulsar-lite broker, a second broker
whose topics are partitioned, and the admin-API fixture server (pulsar-lite has no admin API)."""

from __future__ import annotations

import logging

import pytest

from mqwatch.checks.pulsar.embedded import start_pulsar_lite
from tests.pulsar.admin_fixture import AdminFixture

_client_log = logging.getLogger("tests.pulsar.client")


def connect(broker):
    import pulsar

    return pulsar.Client(broker.extra["service_url"], operation_timeout_seconds=10, logger=_client_log)


@pytest.fixture(scope="session")
def pulsar_client(pulsar_lite):
    client = connect(pulsar_lite)
    yield client
    client.close()


@pytest.fixture(scope="module")
def partitioned_pulsar():
    """Every auto-created topic on this broker has 3 partitions."""
    broker = start_pulsar_lite(default_partitions=3)
    yield broker
    broker.stop()


@pytest.fixture
def admin_fixture():
    server = AdminFixture()
    yield server
    server.stop()


@pytest.fixture
def fresh_pulsar():
    """A broker of the test's own, for tests that freeze it."""
    broker = start_pulsar_lite()
    yield broker
    broker.resume()
    broker.stop()
