"""Kafka-area fixtures: check instances against the shared tansu, closed after the test."""

from __future__ import annotations

import pytest

from tests.kafka.support import CheckRun


@pytest.fixture
def kafka_check(kafka_bootstrap):
    runs = []

    def start(prefix: str, **config):
        """A check that sees only the test's own topics and groups (named prefix...)."""
        scope = {"include": [f"^{prefix}"]}
        run = CheckRun({"bootstrap_servers": kafka_bootstrap, "topics": scope, "groups": scope, **config})
        runs.append(run)
        return run

    yield start
    for run in runs:
        run.close()
