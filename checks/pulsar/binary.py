"""The pulsar-client connection shared by the canary and DLQ sampling of one check."""

from __future__ import annotations

import logging

import pulsar

# pulsar-client logs INFO lines to stdout unless handed a Python logger.
CLIENT_LOGGER = logging.getLogger("mqwatch.pulsar.client")


def connect(service_url: str, token: str, timeout: float) -> pulsar.Client:
    seconds = max(1, int(timeout))
    return pulsar.Client(
        service_url,
        authentication=pulsar.AuthenticationToken(token) if token else None,
        operation_timeout_seconds=seconds,
        connection_timeout_ms=int(max(0.2, timeout) * 1000),
        logger=CLIENT_LOGGER,
    )
