"""ClientLog: librdkafka's repeated lines collapsed, causes classified (tests/kafka/test_tls.py
shows the same against a real TLS handshake; here the clock is controlled)."""

import logging

from mqwatch.checks.kafka.clientlog import REPEAT_WINDOW, ClientLog, classify


class Clock:
    now = 1000.0

    def __call__(self):
        return self.now


def test_alternating_repeats_are_collapsed_per_window(caplog):
    clock = Clock()
    log = ClientLog(logging.getLogger("mqwatch.librdkafka.test"), clock)
    a = "[thrd:ssl://b:9093/bootstrap]: ssl://b:9093/bootstrap: SSL handshake failed: certificate verify failed (after {}ms in state SSL_HANDSHAKE)"
    b = "[thrd:ssl://b:9093/bootstrap]: ssl://b:9093/bootstrap: error:0A000086:SSL routines::certificate verify failed (after {}ms)"
    with caplog.at_level(logging.INFO, logger="mqwatch.librdkafka.test"):
        for i in range(50):  # librdkafka alternates two texts with changing timings
            log.log(logging.INFO, "%s [%s] %s", "FAIL", "mqwatch#producer-1", (a if i % 2 else b).format(i))
            clock.now += 0.2
        log.flush()
        assert len(caplog.records) == 2  # the window is not over: only the first of each
        clock.now += REPEAT_WINDOW
        log.flush()
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 4
    assert sum("(repeated 24 more times" in m for m in messages) == 2
    assert log.cause()[0] == "tls" and "certificate verify failed" in log.cause()[1]
    assert not log.cause()[1].startswith("[thrd:")
    log.clear()
    assert log.cause() is None


def test_causes():
    assert classify("SASL authentication error: Authentication failed: Invalid username or password") == "auth"
    assert classify("Broker: Topic authorization failed") == "permission"
    assert classify("SSL handshake failed: error:0A000086:SSL routines::certificate verify failed") == "tls"
    assert classify("Connect to ipv4#127.0.0.1:9092 failed: Connection refused") is None
