"""The Kafka section's new keys are validated with errors that name the file, line and key."""

from __future__ import annotations

import pytest

from mqwatch.agent.config import parse_config
from mqwatch.agent.schema import ConfigErrors

BASE = """\
agent: {interval: 5s}
checks:
  - kind: kafka
    name: shop
    bootstrap_servers: 127.0.0.1:9092
"""


def errors_of(extra: str) -> list[str]:
    with pytest.raises(ConfigErrors) as e:
        parse_config(BASE + extra, "mqwatch.yaml")
    return [str(err) for err in e.value.errors]


@pytest.mark.parametrize("extra,expected", [
    ("    time_lag: exactly\n", "mqwatch.yaml:6: checks[0].time_lag: 'exactly' is not one of estimate, exact, off"),
    ("    status_window: 1\n", "mqwatch.yaml:6: checks[0].status_window: must be at least 2, got 1"),
    ("    fetch_timeout: soon\n", "mqwatch.yaml:6: checks[0].fetch_timeout:"),
    ("    dlq:\n      patterns: ['(.+)-dead']\n",
     "mqwatch.yaml:7: checks[0].dlq.patterns[0]: '(.+)-dead' has no named group (?P<source>...)"),
    ("    dlq:\n      retry_patterns: ['(?P<source>.+']\n",
     "mqwatch.yaml:7: checks[0].dlq.retry_patterns[0]: invalid regular expression"),
    ("    dlq:\n      topic: {a: b}\n", "mqwatch.yaml:7: checks[0].dlq.topic: unknown key (did you mean topics?)"),
    ("    reasons:\n      top: 0\n", "mqwatch.yaml:7: checks[0].reasons.top: must be at least 1, got 0"),
    ("    reasons:\n      json_field: 'error..code'\n", "mqwatch.yaml:7: checks[0].reasons.json_field: 'error..code' is not valid"),
    ("    allowed_lag: -1\n", "mqwatch.yaml:6: checks[0].allowed_lag: must be at least 0, got -1"),
    ("    canary:\n      enabled: maybe\n", "mqwatch.yaml:7: checks[0].canary.enabled: expected true or false"),
    ("    canary:\n      topic: 'no spaces allowed'\n", "mqwatch.yaml:7: checks[0].canary.topic:"),
    # client: keys against librdkafka's own property table and value checks
    ("    client:\n      ssl.ca.locaton: /etc/ca.pem\n",
     "mqwatch.yaml:7: checks[0].client.ssl.ca.locaton: unknown librdkafka property (did you mean ssl.ca.location?)"),
    ("    client:\n      security.protocol: tls\n",
     'mqwatch.yaml:7: checks[0].client.security.protocol: Invalid value "tls" for configuration property "security.protocol"'),
    ("    tls:\n      server_name: kafka.internal\n", "mqwatch.yaml:7: checks[0].tls.server_name: librdkafka verifies"),
    ("    tls:\n      insecure_skip_verify: true\n    client:\n      security.protocol: plaintext\n",
     "mqwatch.yaml:9: checks[0].client.security.protocol: tls is set but security.protocol is plaintext"),
])
def test_bad_values_are_reported_where_they_are(extra, expected):
    errs = errors_of(extra)
    assert any(e.startswith(expected) for e in errs), errs


def test_defaults():
    opts = parse_config(BASE, "mqwatch.yaml").checks[0].options
    assert (opts.time_lag, opts.status_window, opts.time_lag_fetches, opts.fetch_timeout) == ("estimate", 5, 500, 2.0)
    assert opts.allowed_lag == 0
    assert opts.dlq.enabled and opts.reasons.enabled and opts.reasons.top == 20 and opts.reasons.sample == 100
    assert not opts.canary.enabled and opts.canary.topic == "mqwatch-canary"
