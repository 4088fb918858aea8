"""The pure core: deadlines, the transitions table, command parsing, sealed files, the package."""

from __future__ import annotations

import io
import json
import zipfile
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from bot.errors import BadCommand
from bot.policy import AccessPolicy, load_policy
from bot.requests.commands import parse_request, parse_request_id
from bot.requests.deadlines import Urgency, add_months, countdown, due_date, extended_due_date, extension_refusal
from bot.requests.model import TRANSITIONS, Action, RequestKind, RequestState, TransitionError, allowed_from, transition
from bot.requests.package import build_access_package
from bot.requests.sealed import SealedFileError, SealedWriter, read_sealed

# ---- deadlines ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("received", "due"), [
    (date(2026, 3, 14), date(2026, 4, 14)),  # same date next month
    (date(2026, 1, 31), date(2026, 2, 28)),  # clamped to month end
    (date(2028, 1, 31), date(2028, 2, 29)),  # leap year
    (date(2026, 12, 15), date(2027, 1, 15)),  # year wrap
    (date(2026, 8, 31), date(2026, 9, 30)),
])
def test_gdpr_due_is_one_calendar_month(received: date, due: date) -> None:
    assert due_date(received, "gdpr") == due


def test_ccpa_due_is_45_days_and_extensions_count_from_receipt() -> None:
    assert due_date(date(2026, 1, 1), "ccpa") == date(2026, 2, 15)
    assert extended_due_date(date(2026, 1, 1), "ccpa") == date(2026, 4, 1)  # 90 days from receipt
    assert extended_due_date(date(2026, 1, 31), "gdpr") == date(2026, 4, 30)  # three months from receipt
    assert extended_due_date(date(2026, 11, 30), "gdpr") == date(2027, 2, 28)
    assert add_months(date(2026, 5, 31), -1) == date(2026, 4, 30)


def test_extension_only_once_and_before_original_due() -> None:
    due = date(2026, 4, 14)
    assert extension_refusal(already_extended=False, original_due=due, today=due) is None
    twice = extension_refusal(already_extended=True, original_due=due, today=date(2026, 4, 1))
    late = extension_refusal(already_extended=False, original_due=due, today=date(2026, 4, 15))
    assert "already extended" in (twice or "") and "has passed" in (late or "")


def test_countdown_marks_due_soon_and_overdue() -> None:
    due = date(2026, 4, 14)
    assert countdown(due, date(2026, 4, 8)).urgency is Urgency.ON_TIME
    assert countdown(due, date(2026, 4, 9)).urgency is Urgency.DUE_SOON  # 5 days left
    assert countdown(due, date(2026, 4, 14)).text == "due today"
    late = countdown(due, date(2026, 4, 16))
    assert late.urgency is Urgency.OVERDUE and late.days_left == -2 and "OVERDUE by 2 days" in late.text


# ---- state machine ------------------------------------------------------------------------------


def test_transitions_follow_the_design() -> None:
    assert transition("filed", "verify") is RequestState.VERIFIED
    assert transition("verified", "approve") is RequestState.APPROVED
    assert transition("failed", "retry") is RequestState.APPROVED
    assert transition("approved", "lapse") is RequestState.VERIFIED  # a lapse returns to verified
    assert transition("running", "start") is RequestState.RUNNING  # resume after a restart
    assert allowed_from(Action.APPROVE) == {RequestState.VERIFIED}
    assert allowed_from(Action.REJECT) == {RequestState.FILED, RequestState.VERIFIED}
    # Nothing leaves a terminal state (recording that the answer went out keeps it where it is).
    for state in (RequestState.DONE, RequestState.REJECTED, RequestState.LAPSED):
        assert {TRANSITIONS[key] for key in TRANSITIONS if key[0] is state} <= {state}


@pytest.mark.parametrize(("state", "action", "needle"), [
    ("filed", "approve", "Identity has not been verified"),
    ("approved", "approve", "already approved"),
    ("verified", "verify", "already verified"),
    ("done", "reject", "already done"),
    ("running", "extend", "has not started"),
    ("verified", "retry", "Only a failed request"),
])
def test_refused_transitions_explain_themselves(state: str, action: str, needle: str) -> None:
    with pytest.raises(TransitionError) as caught:
        transition(state, action)
    assert needle in caught.value.message


S, A = RequestState, Action
# Why each refused (state, action) is refused, in words a person can act on. Otherwise a terminal state
# refuses with "This request is already <state>", any other with the generic sentence.
REFUSALS = {
    "Identity has not been verified yet. Verify the requester's identity first, then approve.": {
        (S.FILED, A.APPROVE)},
    "This request was already approved; it runs once.": {(S.APPROVED, A.APPROVE), (S.RUNNING, A.APPROVE),
                                                          (S.CLEANUP, A.APPROVE)},
    "Identity was already verified for this request.": {
        (S.VERIFIED, A.VERIFY), (S.APPROVED, A.VERIFY), (S.RUNNING, A.VERIFY), (S.FAILED, A.VERIFY),
        (S.CLEANUP, A.VERIFY)},
    "Only a failed request can be retried.": {
        (S.FILED, A.RETRY), (S.VERIFIED, A.RETRY), (S.APPROVED, A.RETRY), (S.RUNNING, A.RETRY),
        (S.CLEANUP, A.RETRY)},
    "Only a pending request (not yet approved) can be rejected.": {
        (S.APPROVED, A.REJECT), (S.RUNNING, A.REJECT), (S.FAILED, A.REJECT), (S.CLEANUP, A.REJECT)},
    "Only a pending or approved request that has not started can be extended.": {
        (S.RUNNING, A.EXTEND), (S.FAILED, A.EXTEND), (S.CLEANUP, A.EXTEND)},
    "The answer can be recorded as sent once the request is done or rejected.": {
        (S.FILED, A.RESPOND), (S.VERIFIED, A.RESPOND), (S.APPROVED, A.RESPOND), (S.RUNNING, A.RESPOND),
        (S.FAILED, A.RESPOND), (S.CLEANUP, A.RESPOND)},
    "This request was already answered; the confirmation of receipt no longer applies.": {
        (S.DONE, A.ACKNOWLEDGE), (S.REJECTED, A.ACKNOWLEDGE)},
}


@pytest.mark.parametrize("state", list(RequestState))
@pytest.mark.parametrize("action", list(Action))
def test_every_refusal_names_its_reason(state: RequestState, action: Action) -> None:
    if (state, action) in TRANSITIONS:
        assert transition(state.value, action.value) is TRANSITIONS[(state, action)]
        return
    with pytest.raises(TransitionError) as caught:
        transition(state.value, action.value)
    reasons = [text for text, pairs in REFUSALS.items() if (state, action) in pairs]
    if reasons:
        expected = reasons[0]
    elif state in (S.DONE, S.REJECTED, S.LAPSED):
        expected = f"This request is already {state.value}; nothing more can be decided on it."
    else:
        expected = f"`{action.value}` is not possible while the request is {state.value}."
    error = caught.value
    assert (error.state, error.action, error.message, str(error)) == (state, action, expected, expected)


def test_each_action_is_allowed_from_exactly_its_table_states() -> None:
    assert {action: allowed_from(action) for action in Action} == {
        A.VERIFY: {S.FILED},
        A.APPROVE: {S.VERIFIED},
        A.REJECT: {S.FILED, S.VERIFIED},
        A.EXTEND: {S.FILED, S.VERIFIED, S.APPROVED},
        A.START: {S.APPROVED, S.RUNNING},
        A.COMPLETE: {S.RUNNING, S.CLEANUP},
        A.AWAIT_CLEANUP: {S.RUNNING},
        A.FAIL: {S.RUNNING, S.APPROVED},
        A.RETRY: {S.FAILED},
        A.LAPSE: {S.APPROVED},
        A.ACKNOWLEDGE: {S.FILED, S.VERIFIED, S.APPROVED, S.RUNNING, S.CLEANUP, S.FAILED},
        A.RESPOND: {S.DONE, S.REJECTED},
        A.LIFT: {S.DONE},
        A.RELEASE: {S.DONE},
    }


@pytest.mark.parametrize("state", list(RequestState))
@pytest.mark.parametrize("action", list(Action))
def test_a_kind_without_identity_step_is_approved_from_filed_and_nothing_else_changes(
    state: RequestState, action: Action
) -> None:
    def outcome(identity_required: bool) -> RequestState | str:
        try:
            return transition(state, action, identity_required=identity_required)
        except TransitionError as refused:
            return refused.message

    if (state, action) == (S.FILED, A.APPROVE):
        assert outcome(False) is S.APPROVED
        assert outcome(True) == ("Identity has not been verified yet. Verify the requester's identity first, "
                                 "then approve.")
    else:
        assert outcome(False) == outcome(True)


# ---- command parsing ----------------------------------------------------------------------------


def test_parse_dsar_normalises_and_masks_emails_in_notes() -> None:
    parsed = parse_request(RequestKind.ACCESS, " Jane@Example.COM ticket 44 from bob@corp.example ")
    assert parsed.email == "jane@example.com"
    assert parsed.note == "ticket 44 from b***@corp.example"
    assert parsed.changes == {}


def test_parse_rectify_fields_quotes_and_blanks() -> None:
    parsed = parse_request(RequestKind.RECTIFICATION,
                           'jane@example.com lastname="van Dyke" City=Berlin phone= loyalty_id=7 ticket 9',
                           extra_fields=["loyalty_id"])
    assert parsed.changes == {"lastname": "van Dyke", "city": "Berlin", "phone": "", "loyalty_id": "7"}
    assert parsed.note == "ticket 9"


@pytest.mark.parametrize(("kind", "args", "needles"), [
    # Placeholders arrive escaped: Slack would read a bare <email> as a link (bot.slack.blocks.escape).
    (RequestKind.ACCESS, "", ["email address is missing", "/privacy dsar &lt;email&gt; [received=YYYY-MM-DD]"]),
    (RequestKind.ERASURE, "sam@corp", ["not a valid email", "/privacy erase &lt;email&gt; [received=YYYY-MM-DD]"]),
    (RequestKind.ERASURE, "not-an-email note", ["`not-an-email` is not a valid email"]),
    (RequestKind.RECTIFICATION, "sam@corp.test", ["Say which fields", "field&gt;=&lt;value&gt;"]),
    (RequestKind.RECTIFICATION, "sam@corp.test shoe_size=44", ["`shoe_size` is not a field", "`firstname`"]),
    (RequestKind.RECTIFICATION, "sam@corp.test email=", ["cannot be cleared"]),
    (RequestKind.RECTIFICATION, "sam@corp.test email=x@", ["not a valid address"]),
    (RequestKind.RECTIFICATION, 'sam@corp.test city="Berlin', ["quote is not closed"]),
    (RequestKind.RECTIFICATION, "sam@corp.test city=A city=B", ["given twice"]),
])
def test_bad_commands_say_what_is_wrong_and_show_the_right_form(
    kind: RequestKind, args: str, needles: list[str]
) -> None:
    with pytest.raises(BadCommand) as caught:
        parse_request(kind, args)
    for needle in needles:
        assert needle in caught.value.message
    assert "sam@corp" not in caught.value.message  # never echo a clear address into the channel


def test_parse_request_id() -> None:
    assert parse_request_id("#12", usage="status <id>") == 12
    with pytest.raises(BadCommand, match="status 12"):
        parse_request_id("twelve", usage="status <id>")


# ---- sealed files -------------------------------------------------------------------------------


async def _read_all(path: Path, secret: str) -> bytes:
    out = bytearray()
    async for chunk in read_sealed(path, secret):
        out += chunk
    return bytes(out)


async def test_sealed_round_trip_and_tampering(tmp_path: Path) -> None:
    path = tmp_path / "p.sealed"
    writer = await SealedWriter(path, "key-1", chunk_size=1000).open()
    payload = bytes(range(256)) * 20  # 5 chunks
    writer.write(payload)
    await writer.close()
    raw = path.read_bytes()
    assert payload[:64] not in raw  # encrypted at rest
    assert await _read_all(path, "key-1") == payload
    with pytest.raises(SealedFileError):
        await _read_all(path, "other-key")
    # Cut at a chunk boundary: the remaining last chunk was not sealed as "last", so it must not verify.
    first_chunk_end = len(b"MPBX1\n") + 16 + 4 + 1000 + 16
    path.write_bytes(raw[:first_chunk_end])
    with pytest.raises(SealedFileError):
        await _read_all(path, "key-1")
    flipped = bytearray(raw)
    flipped[-5] ^= 1
    path.write_bytes(bytes(flipped))
    with pytest.raises(SealedFileError):
        await _read_all(path, "key-1")


class _Contact:
    def __init__(self, cid: int) -> None:
        self.id = cid
        self.raw = {"id": cid, "fields": {"all": {"id": cid, "email": "jane@example.com"}, "core": {}}}
        self.dnc = [{"channel": "email", "reason": 1}]


class _Reader:
    async def get_contact(self, cid: int) -> _Contact | None:
        return None if cid == 99 else _Contact(cid)

    async def get_segments(self, cid: int) -> list[dict[str, object]]:
        return [{"id": 3, "name": "Newsletter"}]

    async def get_campaigns(self, cid: int) -> list[dict[str, object]]:
        return []

    async def get_companies(self, cid: int) -> list[dict[str, object]]:
        return [{"companyname": "Acme"}]

    async def get_notes(self, cid: int) -> list[dict[str, object]]:
        return [{"text": "called"}]

    async def get_devices(self, cid: int) -> list[dict[str, object]]:
        return []

    async def iter_activity(self, cid: int, page_size: int = 100):  # type: ignore[no-untyped-def]
        for n in range(2500):
            yield {"event": "page.hit", "n": n, "label": "ünïcode"}


async def test_package_is_complete_json_and_a_summary(tmp_path: Path) -> None:
    policy = load_policy(None, [], controller="Acme GmbH").access
    result = await build_access_package(
        _Reader(), path=tmp_path / "pkg", secret="k", request={"id": 7, "received_at": "2026-03-01T10:00:00+00:00"},
        email="jane@example.com", contact_ids=[5, 99], bot_holdings={"consent_records": [{"form_id": 1}]},
        policy=policy, generated_at=datetime(2026, 3, 2, tzinfo=UTC),
    )
    archive = zipfile.ZipFile(io.BytesIO(await _read_all(result.path, "k")))
    assert archive.namelist() == ["data.json", "summary.html"]
    data = json.loads(archive.read("data.json"))
    first, gone = data["mautic"]["contacts"]
    assert first["timeline_total"] == 2500 and [e["n"] for e in first["timeline"]] == list(range(2500))
    assert first["segments"][0]["name"] == "Newsletter" and [n["type"] for n in first["notes_for_review"]] == ["note"]
    assert b"called" not in archive.read("data.json")  # a staff note is listed for review, not copied
    assert first["do_not_contact"][0]["reason"] == 1 and first["profile"]["fields"]["all"]["id"] == 5
    assert gone == {"id": 99, "status": "no longer in Mautic"}
    assert data["bot"] == {"consent_records": [{"form_id": 1}]} and data["subject"]["email"] == "jane@example.com"
    summary = archive.read("summary.html").decode()
    for needle in ("Acme GmbH", "purposes", "Who receives it", "How long we keep it", "Where it came from",
                   "supervisory authority", "2,500", "Newsletter", "Not configured"):
        assert needle in summary
    assert result.timeline_events == 2500


def test_policy_file_overrides_defaults(tmp_path: Path) -> None:
    policy_file = tmp_path / "policy.yml"
    policy_file.write_text("forms: {}\naccess_summary:\n  purposes: [Newsletter only]\n  retention: Two years.\n")
    policy = load_policy(policy_file, [], contact="dpo@acme.test").access
    assert policy.purposes == ["Newsletter only"] and policy.retention == "Two years."
    assert policy.contact == "dpo@acme.test" and policy.recipients == AccessPolicy().recipients


async def test_migration_matches_the_tables(tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import storage.models  # noqa: F401 - registers every table
    from storage.db import make_engine
    from storage.migrate import migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    await migrate(engine)
    mine = {"privacy_requests", "request_decisions", "export_links", "erased_subjects"}

    def diff(connection):  # type: ignore[no-untyped-def]
        changes = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
        return [c for c in changes if any(name in str(c) for name in mine)]

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []
    await engine.dispose()


@pytest.mark.parametrize(("args", "email", "note"), [
    ("o'brien@example.com", "o'brien@example.com", None),
    ("O'Brien@Example.com ticket 7", "o'brien@example.com", "ticket 7"),
    ("tom&amp;jerry@example.com", "tom&jerry@example.com", None),  # Slack escapes & < > in command text
    ("jane+news@example.com", "jane+news@example.com", None),
    ('"j.doe"@example.com per phone', '"j.doe"@example.com', "per phone"),
    # "Escape channels, users, and links" on: Slack sends the address as a mailto link
    ("<mailto:o'brien@example.com|o'brien@example.com> ticket 8", "o'brien@example.com", "ticket 8"),
])
def test_filing_takes_any_legal_address_as_typed_or_as_slack_sends_it(args: str, email: str, note: str | None) -> None:
    # Issue 12: the command line was split like a shell line, so an apostrophe was "a quote not closed".
    parsed = parse_request(RequestKind.ERASURE, args)
    assert (parsed.email, parsed.note) == (email, note)


def test_rectify_unwraps_a_slack_mailto_value_and_keeps_quoted_values() -> None:
    parsed = parse_request(RequestKind.RECTIFICATION,
                           '<mailto:o\'brien@example.com|o\'brien@example.com> '
                           'email=<mailto:new@example.com|new@example.com> city="New York"')
    assert parsed.email == "o'brien@example.com"
    assert parsed.changes == {"email": "new@example.com", "city": "New York"}
