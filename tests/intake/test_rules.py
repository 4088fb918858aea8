"""Pure intake rules: signature, every envelope shape Mautic sends, dedupe keys, consent verdicts, policy file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.intake.events import (
    CONTACT_DELETED,
    FORM_SUBMIT,
    Disposition,
    form_submission,
    parse_envelope,
    parse_timestamp,
    signature_ok,
)
from bot.intake.rules import ConsentVerdict, evaluate, is_truthy
from bot.policy import ConsentPolicy, PolicyError, default_policy, load_policy, parse_policy
from sandbox.mautic import encode_like_php, form_submission_event, sign_webhook
from tests.helpers import mautic_fixture


def test_signature_vector_from_the_docs_is_reproduced() -> None:
    vector = json.loads(mautic_fixture("reconstructed_signature_vector.json"))
    body = mautic_fixture(vector["body_file"])
    assert len(body) == vector["body_length_bytes"]
    assert signature_ok(body, vector["expected_Webhook-Signature"], vector["secret"])
    # Re-serialising the parsed body changes the bytes: the signature must be checked on the raw body.
    reserialised = json.dumps(json.loads(body)).encode()
    assert not signature_ok(reserialised, vector["expected_Webhook-Signature"], vector["secret"])
    assert not signature_ok(body, vector["expected_Webhook-Signature"], vector["secret"] + "x")
    assert not signature_ok(body, None, vector["secret"])
    assert not signature_ok(body, "", vector["secret"])
    assert not signature_ok(body, vector["expected_Webhook-Signature"], "")


def test_reconstructed_form_submission_parses_with_its_unicode_email() -> None:
    envelope = parse_envelope(mautic_fixture("reconstructed_form_on_submit.body"))
    assert envelope.shape == "delivery" and envelope.dead_letter is None
    (event,) = envelope.events
    assert event.type == FORM_SUBMIT and event.disposition is Disposition.ACT
    assert event.contact_id == 26 and event.email == "jörg@example.com"
    sub = form_submission(event.payload)
    assert (sub.form_id, sub.form_name, sub.form_alias) == (4, "Newsletter", "newsletter")
    assert sub.results["consent"] == "Yes"
    assert sub.submitted_at is not None and sub.submitted_at.isoformat() == "2024-10-24T15:54:35+00:00"


def test_send_test_payload_shape_single_objects_and_top_level_timestamp() -> None:
    body = {
        "mautic.form_on_submit": json.loads(mautic_fixture("form_on_submit.json")),
        "mautic.lead_post_delete": json.loads(mautic_fixture("lead_post_delete.json")),
        "mautic.page_on_hit": json.loads(mautic_fixture("page_on_hit.json")),
        "timestamp": "2024-10-24T17:54:35+02:00",
    }
    envelope = parse_envelope(encode_like_php(body))
    assert envelope.shape == "test"
    types = [e.type for e in envelope.events]
    assert types.count(FORM_SUBMIT) == 1 and types.count(CONTACT_DELETED) >= 1
    form = next(e for e in envelope.events if e.type == FORM_SUBMIT)
    # No per-event timestamp in a test payload: the top-level one (with its offset) is used, in UTC.
    assert form.occurred_at is not None and form.occurred_at.isoformat() == "2024-10-24T15:54:35+00:00"
    assert form.email == "email@formsubmit.com"
    deleted = next(e for e in envelope.events if e.type == CONTACT_DELETED)
    assert deleted.contact_id is not None  # the top-level id, not the nulled contact.id


def test_unknown_types_are_kept_and_not_acted_on() -> None:
    envelope = parse_envelope(b'{"plugin.custom_event":[{"x":1,"timestamp":"2024-10-24T15:54:35+00:00"}],'
                              b'"mautic.lead_points_change":[{"contact":{"id":5},"timestamp":"2024-10-24T15:54:35+00:00"}]}')
    dispositions = {e.type: e.disposition for e in envelope.events}
    assert dispositions == {"plugin.custom_event": Disposition.UNKNOWN,
                            "mautic.lead_points_change": Disposition.RECORD}


def test_dead_letters_for_bodies_that_are_not_event_objects() -> None:
    assert parse_envelope(b'{"mautic.form_on_submit": [').dead_letter is not None
    assert parse_envelope(b"\xff\xfe not json").dead_letter is not None
    assert parse_envelope(b'["a list"]').dead_letter is not None
    assert parse_envelope(b"{}").dead_letter is None


def test_dedupe_key_is_stable_across_redelivery_and_differs_per_event() -> None:
    one = form_submission_event(contact_id=1, email="a@example.com", results={"consent": "1"},
                                timestamp="2024-10-24T15:54:35+00:00")
    two = form_submission_event(contact_id=2, email="b@example.com", results={"consent": "1"},
                                timestamp="2024-10-24T15:54:35+00:00")
    batch = {"mautic.form_on_submit": one["mautic.form_on_submit"] + two["mautic.form_on_submit"]}
    first = parse_envelope(encode_like_php(batch)).events
    again = parse_envelope(encode_like_php(batch)).events
    assert [e.dedupe_key for e in first] == [e.dedupe_key for e in again]
    assert first[0].dedupe_key != first[1].dedupe_key
    # Key order inside the JSON does not matter, content does.
    reordered = json.dumps({"mautic.form_on_submit": [dict(reversed(list(one["mautic.form_on_submit"][0].items())))]})
    assert parse_envelope(reordered.encode()).events[0].dedupe_key == first[0].dedupe_key


def test_timestamps_keep_the_senders_offset() -> None:
    assert parse_timestamp("2024-10-24T09:54:35-06:00").isoformat() == "2024-10-24T15:54:35+00:00"  # type: ignore[union-attr]
    assert parse_timestamp("garbage") is None and parse_timestamp(None) is None


@pytest.mark.parametrize("value", ["1", 1, "yes", "Yes", "ON", "true", True, ["I agree"], " yes "])
def test_truthy_values(value: object) -> None:
    assert is_truthy(value)


@pytest.mark.parametrize("value", ["0", 0, "no", "", "off", "false", False, [], None, [""], "maybe", 2])
def test_falsy_values(value: object) -> None:
    assert not is_truthy(value)


def test_default_rule_needs_one_truthy_consent_field() -> None:
    policy = default_policy(["consent", "gdpr_consent", "marketing_consent"])
    assert not evaluate(policy, 4, "newsletter", {"email": "a@b.c", "gdpr_consent": "1"}).gap
    verdict = evaluate(policy, 4, "newsletter", {"email": "a@b.c", "consent": "No"})
    assert verdict.gap and verdict.values == {"consent": "No"}
    assert verdict.missing == ("consent", "gdpr_consent", "marketing_consent")
    assert evaluate(policy, 4, "newsletter", {}).gap  # results arrive as [] → {} when empty


def test_policy_file_rules_by_id_and_alias_and_exempt_forms(tmp_path: Path) -> None:
    path = tmp_path / "policy.yml"
    path.write_text(
        "truthy_values: ['I agree']\n"
        "store_source_ip: true\n"
        "forms:\n"
        "  - id: 7\n    required: [consent, terms]\n"
        "  - alias: Contact-Support\n    exempt: true\n"
        "  - alias: de\n    any_of: [einwilligung]\n"
    )
    policy = load_policy(path, ["consent"]).consent
    assert policy.store_source_ip
    partial = evaluate(policy, 7, "x", {"consent": "1", "terms": "0"})
    assert partial.gap and partial.missing == ("terms",)
    assert not evaluate(policy, 7, "x", {"consent": "1", "terms": "I agree"}).gap
    support = evaluate(policy, 9, "contact-support", {})
    assert support.exempt and not support.gap
    assert not evaluate(policy, 10, "de", {"einwilligung": "on"}).gap
    assert evaluate(policy, 11, "other", {"einwilligung": "on"}).gap  # default rule: consent


@pytest.mark.parametrize("text, problem", [
    ("forms: [{alias: a, required: [x], any_of: [y]}]", "either required or any_of"),
    ("forms: [{exempt: true}]", "needs an id or an alias"),
    ("colour: blue", "unknown key"),
    ("forms: [{id: abc}]", "form id"),
    ("forms: [", "not valid YAML"),
])
def test_bad_policy_files_name_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "p.yml"
    path.write_text(text)
    with pytest.raises(PolicyError, match=problem):
        load_policy(path, ["consent"])


def test_signature_helper_of_the_fake_agrees_with_ours() -> None:
    body = encode_like_php({"mautic.form_on_submit": []})
    assert signature_ok(body, sign_webhook(body, "s3cret"), "s3cret")


# ---- consent verdicts, exactly ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "truthy"), [
    (1.0, True), (0.0, False), (2.0, False), (-1, False),  # numbers: exactly one
    ([1], True), ([0], False), ([None, False, 0], False), ([" ", ""], False), (["", "x"], True),
    (("yes",), True), ((), False),  # a tuple is a checkbox group too
    ({"consent": "1"}, False), (object(), False),  # anything else is not consent
])
def test_truthy_values_of_every_type(value: object, truthy: bool) -> None:
    assert is_truthy(value) is truthy


@pytest.mark.parametrize(("value", "extra", "truthy"), [
    ("I agree", (), False),
    ("I agree", ("I agree",), True),
    (" i AGREE ", ("I Agree ",), True),  # the policy's own values match trimmed and in any case
    ("yes", ("I agree",), True),  # the built-in values still count
    ("no", ("I agree",), False),
])
def test_the_policys_extra_truthy_values(value: str, extra: tuple[str, ...], truthy: bool) -> None:
    assert is_truthy(value, extra) is truthy


def _policy() -> ConsentPolicy:
    return parse_policy({"truthy_values": ["Ja"], "forms": [
        {"id": 7, "required": ["consent", "terms"]},
        {"alias": "de", "any_of": ["einwilligung", "consent"]},
        {"alias": "support", "exempt": True},
    ]}, ["consent", "gdpr_consent"])


@pytest.mark.parametrize(("form_id", "alias", "results", "verdict"), [
    (1, "x", {"email": "a@b.c", "GDPR_Consent": "yes"},
     ConsentVerdict(False, True, ("consent", "gdpr_consent"), {"gdpr_consent": "yes"}, (),
                    "any of consent, gdpr_consent")),
    (1, "x", {"Consent": "0"},
     ConsentVerdict(False, False, ("consent", "gdpr_consent"), {"consent": "0"}, ("consent", "gdpr_consent"),
                    "any of consent, gdpr_consent")),
    (7, None, {"consent": "1", "terms": "ja"},
     ConsentVerdict(False, True, ("consent", "terms"), {"consent": "1", "terms": "ja"}, (), "all of consent, terms")),
    (7, "de", {"consent": "1", "terms": "nein"},
     ConsentVerdict(False, False, ("consent", "terms"), {"consent": "1", "terms": "nein"}, ("terms",),
                    "all of consent, terms")),
    (7, None, {},
     ConsentVerdict(False, False, ("consent", "terms"), {}, ("consent", "terms"), "all of consent, terms")),
    (None, "DE", {"einwilligung": "Ja"},
     ConsentVerdict(False, True, ("einwilligung", "consent"), {"einwilligung": "Ja"}, (),
                    "any of einwilligung, consent")),
    (9, "support", {"consent": "0", "message": "help"},
     ConsentVerdict(True, False, ("consent", "gdpr_consent"), {"consent": "0"}, (), "exempt")),
])
def test_verdicts(form_id: int | None, alias: str | None, results: dict[str, object],
                  verdict: ConsentVerdict) -> None:
    assert evaluate(_policy(), form_id, alias, results) == verdict


@pytest.mark.parametrize(("verdict", "gap", "text"), [
    (ConsentVerdict(False, True, ("consent",), {}, (), "any of consent"), False, "nothing"),
    (ConsentVerdict(True, False, ("consent",), {}, (), "exempt"), False, "nothing"),
    (ConsentVerdict(False, False, ("a", "b"), {}, ("a", "b"), "any of a, b"), True,
     "no truthy consent field (expected one of `a`, `b`)"),
    (ConsentVerdict(False, False, ("a", "b"), {}, ("a", "b"), "all of a, b"), True,
     "consent field(s) `a`, `b` not ticked"),
])
def test_what_a_verdict_says_is_missing(verdict: ConsentVerdict, gap: bool, text: str) -> None:
    assert (verdict.gap, verdict.describe_missing()) == (gap, text)
