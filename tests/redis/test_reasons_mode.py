"""`reasons: class | message` on the Redis check: messages (which may carry personal data) are
counted as `message_hidden` unless the check asks for them."""

from __future__ import annotations

import json

import pytest

from mqwatch.agent.schema import ConfigErrors
from tests.helpers import collect_once, config_for, unique


def test_dead_letter_messages_are_hidden_by_default_and_class_names_kept(db):
    dlq = f"{unique('mails')}:dead"
    db.r.lpush(dlq,
               json.dumps({"error": "bounce from bob@example.com"}),
               json.dumps({"error": "SMTPRecipientsRefused: bob@example.com"}),
               json.dumps({"error_class": "Net::ReadTimeout", "error": "timed out after 5s talking to 10.0.0.7"}))
    default = collect_once(db.check(keys=[], dlq_keys=["*:dead"], frameworks=[]))
    reasons = {lbl["reason"]: v for lbl, v in default.samples("mqwatch_dlq_reason_messages") if lbl["dlq"] == dlq}
    assert reasons == {"message_hidden": 1, "SMTPRecipientsRefused": 1, "Net::ReadTimeout": 1}
    shown = collect_once(db.check(keys=[], dlq_keys=["*:dead"], frameworks=[], reasons="message"))
    reasons = {lbl["reason"]: v for lbl, v in shown.samples("mqwatch_dlq_reason_messages") if lbl["dlq"] == dlq}
    assert reasons == {"bounce from bob@example.com": 1, "SMTPRecipientsRefused: bob@example.com": 1, "Net::ReadTimeout": 1}


def test_reasons_option_is_validated():
    with pytest.raises(ConfigErrors) as e:
        config_for({"kind": "redis", "name": "r", "reasons": "messages"})
    assert "checks[0].reasons: 'messages' is not one of class, message (did you mean message?)" in str(e.value)
