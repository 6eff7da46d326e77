"""Config loading: defaults, durations, env and file secrets, and errors that say where."""

import os
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from mqwatch.agent.config import parse_config, load_config
from mqwatch.agent.durations import parse_duration
from mqwatch.agent.schema import ConfigErrors

MINIMAL = """
checks:
  - kind: kafka
    name: shop
    bootstrap_servers: kafka-1:9092,kafka-2:9092
"""


def errors_of(text, environ=None):
    with pytest.raises(ConfigErrors) as e:
        parse_config(text, "mqwatch.yaml", environ or {})
    return [str(x) for x in e.value.errors]


def test_defaults_fill_what_the_user_left_out():
    cfg = parse_config(MINIMAL, "mqwatch.yaml", {})
    assert cfg.agent.listen == "0.0.0.0:9325"
    assert (cfg.agent.interval, cfg.agent.timeout) == (15.0, 10.0)
    check = cfg.checks[0]
    assert (check.kind, check.name, check.interval, check.timeout) == ("kafka", "shop", 15.0, 10.0)
    assert check.options.bootstrap_servers == ("kafka-1:9092", "kafka-2:9092")
    assert check.options.granularity == "topic"
    # internal topics are skipped unless asked for
    assert [p.pattern for p in check.options.topics.exclude] == ["^__"]


def test_check_overrides_agent_interval_and_timeout():
    cfg = parse_config("agent: {interval: 30s, timeout: 5s}\n" + MINIMAL + "    interval: 500ms\n", "m.yaml", {})
    assert cfg.checks[0].interval == 0.5 and cfg.checks[0].timeout == 5.0


@pytest.mark.parametrize("text,seconds", [("500ms", 0.5), ("15s", 15), ("2m", 120), ("1h30m", 5400), ("1.5s", 1.5), (10, 10)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "s", "15 seconds", "-1s", "1x", True])
def test_bad_durations_are_rejected(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_misspelled_key_names_file_line_path_and_suggestion():
    text = MINIMAL.replace("bootstrap_servers:", "bootstrap_server:")
    errs = errors_of(text)
    # one mistake, one error: the missing key is the misspelled one, not a second problem
    assert errs == ["mqwatch.yaml:5: checks[0].bootstrap_server: unknown key (did you mean bootstrap_servers?)"]


def test_errors_are_listed_in_line_order_without_cascades():
    text = """
checks:
  - kind: pulsar
    name: events
    metrics_url: 42
    auth: {tokn_file: /var/run/secrets/token}
agent:
  interval: soon
"""
    assert errors_of(text) == [
        # a bad metrics_url is not also "no source given", a string where a list goes is fine
        "mqwatch.yaml:5: checks[0].metrics_url: expected a URL or a list of URLs, got int 42",
        "mqwatch.yaml:6: checks[0].auth.tokn_file: unknown key (did you mean token_file?)",
        "mqwatch.yaml:8: agent.interval: expected a duration like 500ms, 15s or 2m, got 'soon'",
    ]


def test_one_string_is_a_list_of_one_wherever_a_list_goes():
    text = """
checks:
  - {kind: pulsar, name: events, metrics_url: 'http://broker-1:8080/metrics'}
  - {kind: redis, name: jobs, url: 'redis://r:6379/0', keys: 'jobs:*', dlq_keys: '*:dead', frameworks: rq}
  - {kind: kafka, name: shop, bootstrap_servers: 'k1:9092,k2:9092', groups: {include: '^billing$'}}
"""
    pulsar, redis_, kafka = parse_config(text, "mqwatch.yaml", {}).checks
    assert pulsar.options.metrics_url == ("http://broker-1:8080/metrics",)
    assert (redis_.options["keys"], redis_.options.dlq_keys, redis_.options.frameworks) == (("jobs:*",), ("*:dead",), ("rq",))
    assert kafka.options.bootstrap_servers == ("k1:9092", "k2:9092")
    assert [p.pattern for p in kafka.options.groups.include] == ["^billing$"]
    assert errors_of(text.replace("keys: 'jobs:*'", "keys: 7")) == [
        "mqwatch.yaml:4: checks[1].keys: expected a string or a list of them, got int 7"]


def test_every_error_is_listed_not_just_the_first():
    text = """
agent:
  listen: nowhere
  interval: soon
checks:
  - kind: kafka
    name: a
    bootstrap_servers: k:9092
    granularity: topics
    groups: {include: ['(unclosed']}
  - kind: kafak
    name: b
"""
    errs = errors_of(text)
    assert any(e.startswith("mqwatch.yaml:3: agent.listen:") for e in errs)
    assert any(e.startswith("mqwatch.yaml:4: agent.interval: expected a duration") for e in errs)
    assert any("checks[0].granularity: 'topics' is not one of topic, partition (did you mean topic?)" in e for e in errs)
    assert any("checks[0].groups.include[0]: invalid regular expression" in e for e in errs)
    assert any("mqwatch.yaml:11: checks[1].kind: unknown check kind 'kafak' (did you mean kafka?)" in e for e in errs)
    assert len(errs) == 5


def test_wrong_types_are_named():
    errs = errors_of("checks:\n  - kind: kafka\n    name: [a]\n    bootstrap_servers: k:1\n    client: [x]\n")
    assert any("checks[0].name: expected a string, got a list" in e for e in errs)
    assert any("checks[0].client: expected a mapping, got a list" in e for e in errs)


def test_duplicate_check_names_are_rejected():
    errs = errors_of(MINIMAL + "  - kind: kafka\n    name: shop\n    bootstrap_servers: k:1\n")
    assert any("checks[1].name: duplicate check kafka/shop" in e for e in errs)


def test_invalid_yaml_reports_line():
    errs = errors_of("checks:\n  - kind: kafka\n   name: [\n")
    assert errs[0].startswith("mqwatch.yaml:") and "invalid YAML" in errs[0]


def test_environment_variables_expand_with_defaults():
    text = MINIMAL.replace("kafka-1:9092,kafka-2:9092", "${KAFKA:-localhost:9092}") + "    client: {sasl.username: '${USER_NAME}'}\n"
    cfg = parse_config(text, "m.yaml", {"USER_NAME": "svc"})
    assert cfg.checks[0].options.bootstrap_servers == ("localhost:9092",)
    assert cfg.checks[0].options.client == {"sasl.username": "svc"}
    cfg = parse_config(text, "m.yaml", {"USER_NAME": "svc", "KAFKA": "k1:1,k2:2"})
    assert cfg.checks[0].options.bootstrap_servers == ("k1:1", "k2:2")


def test_unset_environment_variable_is_an_error_at_its_line():
    errs = errors_of(MINIMAL.replace("kafka-1:9092,kafka-2:9092", "${KAFKA_HOSTS}"))
    assert errs == ["mqwatch.yaml:5: checks[0].bootstrap_servers: environment variable KAFKA_HOSTS is not set (use ${KAFKA_HOSTS:-default} for a default)"]


def test_secrets_read_from_files_and_never_shown(tmp_path):
    secret = tmp_path / "pw"
    secret.write_text("s3cr3t-value\n")
    cfg = parse_config(MINIMAL + f"    client: {{sasl.password_file: '{secret}'}}\n", "m.yaml", {})
    assert cfg.checks[0].options.client == {"sasl.password": "s3cr3t-value"}
    errs = errors_of(MINIMAL + "    client: {sasl.password_file: /nonexistent/pw}\n")
    assert errs == ["mqwatch.yaml:6: checks[0].client.sasl.password_file: cannot read '/nonexistent/pw': No such file or directory"]


def test_reserved_client_keys_are_rejected():
    errs = errors_of(MINIMAL + "    client: {bootstrap.servers: x:1}\n")
    assert any("checks[0].client: 'bootstrap.servers' is set by mqwatch itself" in e for e in errs)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigErrors) as e:
        load_config(str(tmp_path / "nope.yaml"))
    assert "nope.yaml: cannot read config: No such file or directory" in str(e.value)


def test_validate_command_exit_codes(tmp_path):
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(MINIMAL)
    bad.write_text(MINIMAL.replace("name: shop", "name: shop\n    granularity: both"))
    ok = subprocess.run([sys.executable, "-m", "mqwatch.agent", "validate", "-c", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "ok (1 checks: kafka/shop)" in ok.stdout
    ko = subprocess.run([sys.executable, "-m", "mqwatch.agent", "validate", "-c", str(bad)], capture_output=True, text=True)
    assert ko.returncode == 2
    assert f"{bad}:5: checks[0].granularity: 'both' is not one of topic, partition" in ko.stderr


def test_every_shipped_sample_config_is_valid():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    samples = [os.path.join(d, "sample.yaml") for d, _, files in os.walk(os.path.join(root, "checks")) if "sample.yaml" in files]
    assert samples
    for path in samples:
        cfg = load_config(path)
        assert cfg.checks, path


_yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
_yaml_values = st.recursive(_yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(["kind", "name", "agent", "checks", "interval", "bootstrap_servers", "groups", "x"]), inner, max_size=4)), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(_yaml_values)
def test_any_document_gives_a_config_or_config_errors(doc):
    import yaml

    try:
        parse_config(yaml.safe_dump({"checks": doc} if not isinstance(doc, dict) else doc), "fuzz.yaml", {})
    except ConfigErrors as e:
        assert all(str(err).startswith("fuzz.yaml") for err in e.errors)


def test_bare_off_means_the_word_not_a_boolean():
    cfg = parse_config(MINIMAL + "    time_lag: off\n", "m.yaml", {})
    assert cfg.checks[0].options.time_lag == "off"
