"""The one model for what Slack sends back: ids from button values and private_metadata, parsed once."""

from __future__ import annotations

import pytest

from bot.slack.buttons import Click, Submission, parse_ref, ref_value


@pytest.mark.parametrize(("value", "expected"), [
    ("42", 42), (" 7 ", 7), ("0", 0), (42, 42),
    ("", None), (None, None), ("-1", None), ("4.2", None), ("12a", None), ("١٢", None),  # Arabic-Indic digits
    ("9" * 19, None), ('{"id": 4}', None), ("jane@example.com", None),
])
def test_parse_ref_accepts_only_plain_ids(value: object, expected: int | None) -> None:
    assert parse_ref(value) == expected


def test_ref_value_round_trips() -> None:
    assert parse_ref(ref_value(123)) == 123


def test_click_reads_a_block_actions_payload_once() -> None:
    body = {
        "type": "block_actions", "user": {"id": "U0BOB"}, "trigger_id": "t.1",
        "channel": {"id": "C0PRIVACY"}, "container": {"message_ts": "171.5", "channel_id": "C0PRIVACY"},
        "actions": [{"action_id": "requests.approve", "value": "12"}],
    }
    click = Click.from_body(body)
    assert click == Click(user_id="U0BOB", action_id="requests.approve", ref=12, channel_id="C0PRIVACY",
                          message_ts="171.5", trigger_id="t.1")


def test_click_without_actions_or_with_a_forged_value_carries_no_ref() -> None:
    assert Click.from_body({"user": {"id": "U1"}}).ref is None
    assert Click.from_body({"actions": [{"value": "1; DROP TABLE"}]}).ref is None
    assert Click.from_body({"container": {"channel_id": "C9"}}).channel_id == "C9"


def test_submission_reads_metadata_and_inputs() -> None:
    body = {"user": {"id": "U0CAROL"}, "view": {"private_metadata": "5", "state": {"values": {
        "reason": {"reason_input": {"type": "plain_text_input", "value": "  duplicate  "}}}}}}
    submission = Submission.from_body(body)
    assert (submission.user_id, submission.ref) == ("U0CAROL", 5)
    assert submission.text("reason", "reason_input") == "duplicate"
    assert submission.text("missing", "reason_input") == ""
