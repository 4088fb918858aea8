"""Property-based tests (hypothesis): whatever the input, the parsers that take outside data raise
nothing but their documented errors, and what the splitter hands to the database is storable.

Runs are short and reproducible (``derandomize``, a modest ``max_examples``), so the suite stays fast.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.errors import BadCommand
from bot.intake import events
from bot.policy import PolicyError, load_policy
from bot.requests.commands import parse_request, parse_request_id
from bot.requests.model import RequestKind
from bot.slack.buttons import Click, Submission, parse_ref
from bot.values import MAX_ID

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
RECEIVED = datetime(2026, 1, 2, tzinfo=UTC)

# Text with what hostile senders use: NUL, lone surrogates, control characters, markup, huge numbers.
hostile_text = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(["\x00", "\ud800", "\udfff", "a", "@", "<", "|", "9", " ", "é", "\n"])),
    st.sampled_from(["9" * 25, "-1", "²", "١٢", "NaN", "x@evil.example|<!channel>", "a@b.c"]),
)
numbers = st.one_of(st.integers(), st.integers(min_value=10**18, max_value=10**30), st.floats(allow_nan=True))
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, hostile_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)),
    max_leaves=20,
)
event_types = st.one_of(st.sampled_from(sorted(events.KNOWN_TYPES)), hostile_text)


def _contact_like(contact_id: Any, email: Any) -> dict[str, Any]:
    return {"id": contact_id, "fields": {"core": {"email": {"value": email}}}, "email": email}


shaped_events = st.builds(
    lambda t, cid, email, extra: {t: [{"submission": {"lead": _contact_like(cid, email), "form": {"id": cid},
                                                      "results": extra}, "contact": _contact_like(cid, email),
                                       "id": cid, "timestamp": email}]},
    event_types, st.one_of(numbers, hostile_text), hostile_text, json_values,
)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(event_types, st.lists(json_values, max_size=6), max_size=4).map(lambda v: json.dumps(v).encode()),
    shaped_events.map(lambda v: json.dumps(v).encode()),
)


def _storable(value: Any) -> None:
    # What both databases accept: strict UTF-8 without NUL, JSON without NaN/Infinity.
    text = json.dumps(value, allow_nan=False)
    assert "\\u0000" not in text
    for piece in _strings(value):
        assert "\x00" not in piece
        piece.encode("utf-8")  # no lone surrogate


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (str(k), *_strings(v))]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


@FAST
@given(bodies, st.integers(min_value=1, max_value=5))
def test_the_splitter_never_raises_and_every_row_is_storable(raw: bytes, max_events: int) -> None:
    rows = events.inbox_rows(raw, "k" * 64, RECEIVED, max_events)
    assert len(rows) <= max_events + 1  # the cap, plus one dead letter holding the rest
    for row in rows:
        assert row["contact_id"] is None or 0 <= row["contact_id"] <= MAX_ID
        assert len(row["event_type"]) <= 100 and len(row["dedupe_key"]) == 64
        _storable(row["event_type"])
        if row["event_type"] == events.DEAD_LETTER:
            assert isinstance(row["raw_body"], bytes) and row["payload"] is None
        else:
            _storable(row["payload"])


@FAST
@given(json_values)
def test_storable_cleans_anything_json_can_hold(value: Any) -> None:
    cleaned = events.storable(value)
    _storable(cleaned)
    if isinstance(value, float) and not math.isfinite(value):
        assert cleaned is None


@FAST
@given(st.sampled_from(list(RequestKind)), hostile_text, st.lists(hostile_text, max_size=4))
def test_the_command_parser_raises_only_bad_command(kind: RequestKind, head: str, rest: list[str]) -> None:
    args = " ".join([head, *rest])
    try:
        parsed = parse_request(kind, args, extra_fields=["company"], today=date(2026, 1, 2))
    except BadCommand as exc:
        assert exc.message
        return
    assert "@" in parsed.email


@FAST
@given(hostile_text)
def test_the_request_number_parser_raises_only_bad_command(text: str) -> None:
    try:
        number = parse_request_id(text, usage="status <id>")
    except BadCommand:
        return
    assert 1 <= number <= MAX_ID


@FAST
@given(json_values)
def test_button_values_parse_to_a_storable_id_or_none(value: Any) -> None:
    ref = parse_ref(value)
    assert ref is None or 0 <= ref <= MAX_ID


slack_bodies = st.dictionaries(
    st.sampled_from(["actions", "container", "user", "channel", "message", "trigger_id", "view"]),
    json_values, max_size=7)


@FAST
@given(slack_bodies)
def test_click_and_submission_payloads_never_raise(body: dict[str, Any]) -> None:
    click = Click.from_body(body)
    assert click.ref is None or 0 <= click.ref <= MAX_ID
    submission = Submission.from_body(body)
    assert isinstance(submission.text("b", "a"), str)
    assert all(isinstance(choice, str) for choice in submission.choices("b", "a"))
    assert isinstance(submission.day("b", "a"), str) and isinstance(submission.choice("b", "a"), str)


policy_documents = st.one_of(
    hostile_text,
    json_values.map(lambda v: json.dumps(v)),  # JSON is YAML
    st.dictionaries(st.sampled_from(["forms", "consent_fields", "truthy_values", "store_source_ip",
                                     "access_summary", "extra", "1"]),
                    json_values, max_size=4).map(lambda v: json.dumps(v)),
    st.lists(st.fixed_dictionaries({}, optional={
        "id": json_values, "alias": json_values, "required": json_values, "any_of": json_values,
        "exempt": json_values}), max_size=3).map(lambda forms: json.dumps({"forms": forms})),
    st.sampled_from(["a: 2020-13-45", "{1: a, b: c}", "forms: {1: {exempt: true}, x: {}}", "? [a]\n: b",
                     "forms: [{id: '²'}]", "- &a [*a]", "!!python/object:os.system x"]),
)


@FAST
@given(policy_documents)
def test_the_policy_loader_raises_only_policy_error(tmp_path_factory: Any, document: str) -> None:
    path = Path(tmp_path_factory.mktemp("policy")) / "policy.yml"
    path.write_text(document, encoding="utf-8", errors="surrogatepass")
    try:
        policy = load_policy(path, ["consent"])
    except PolicyError as exc:
        assert str(exc).startswith("PRIVACY_POLICY_FILE")
        return
    assert all(isinstance(form_id, int) and form_id <= MAX_ID for form_id in policy.consent.by_id)
