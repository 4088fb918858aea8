"""Pure rules of the digests: retention predicate and filters, crontab slots, sparkline, form audit, limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.digests import blocks
from bot.digests.compliance import ComplianceDigest, FormSubmissions, WeekShare, forms_from_counts, sparkline
from bot.digests.forms import (
    FormAudit,
    FormFinding,
    FormPolicy,
    Problem,
    audit_form,
    audit_forms,
    collects_email,
    consent_aliases,
    is_consent_field,
    is_prechecked,
)
from bot.digests.retention import (
    RetentionSnapshot,
    SegmentCount,
    is_stale,
    never_active_filter,
    retention_cutoff,
    stale_filter,
    tally_segments,
)
from bot.digests.schedule import CronError, cron_trigger, latest_due_slot, next_slot
from bot.mautic import Where, where_params
from sandbox.slack import validate_blocks

NOW = datetime(2026, 3, 2, 9, 0, 30, 123456, tzinfo=UTC)
CUTOFF = retention_cutoff(NOW, 1095)


def test_cutoff_is_to_the_second_and_rejects_naive_times() -> None:
    assert CUTOFF == datetime(2023, 3, 3, 9, 0, 30, tzinfo=UTC)
    with pytest.raises(ValueError, match="aware"):
        retention_cutoff(datetime(2026, 3, 2), 1095)


@pytest.mark.parametrize(
    ("last_active", "date_added", "stale"),
    [
        (CUTOFF - timedelta(seconds=1), CUTOFF - timedelta(days=9), True),
        (CUTOFF, CUTOFF - timedelta(days=9), False),  # strictly before the cutoff
        (NOW, CUTOFF - timedelta(days=900), False),  # old contact, active lately: kept
        (None, CUTOFF - timedelta(days=1), True),  # never active, added before the cutoff
        (None, CUTOFF, False),  # never active, added at the cutoff: strictly before it counts
        (None, NOW - timedelta(days=1), False),  # never active, but new
        (None, None, False),
    ],
)
def test_stale_rule(last_active: datetime | None, date_added: datetime | None, stale: bool) -> None:
    assert is_stale(last_active, date_added, CUTOFF) is stale


def test_stale_filter_is_mautics_gdpr_rule_as_one_or() -> None:
    # A top-level orX carries a `col` too: Mautic reads it (CoreBundle/Entity/CommonRepository.php,
    # convertOrmPropertiesToColumns) and warns "Undefined array key" without one.
    assert where_params(stale_filter(CUTOFF)) == [
        ("where[0][col]", "id"), ("where[0][expr]", "orX"),
        ("where[0][val][0][col]", "last_active"), ("where[0][val][0][expr]", "lt"),
        ("where[0][val][0][val]", "2023-03-03 09:00:30"),
        ("where[0][val][1][expr]", "andX"),
        ("where[0][val][1][val][0][col]", "last_active"), ("where[0][val][1][val][0][expr]", "isNull"),
        ("where[0][val][1][val][1][col]", "date_added"), ("where[0][val][1][val][1][expr]", "lt"),
        ("where[0][val][1][val][1][val]", "2023-03-03 09:00:30"),
    ]


def test_segments_are_tallied_most_populated_first() -> None:
    assert tally_segments([["A", "B"], ["B"], [], ["B", "B"]]) == [
        SegmentCount("B", 3), SegmentCount("(no segment)", 1), SegmentCount("A", 1)]


def test_cutoff_is_in_utc_whatever_the_zone_of_now() -> None:
    berlin_summer = timezone(timedelta(hours=2))
    cutoff = retention_cutoff(datetime(2026, 7, 1, 2, 30, 0, 999999, tzinfo=berlin_summer), 30)
    assert cutoff == datetime(2026, 6, 1, 0, 30, tzinfo=UTC) and cutoff.tzinfo is UTC
    assert retention_cutoff(NOW, 0) == NOW.replace(microsecond=0)
    with pytest.raises(ValueError) as caught:
        retention_cutoff(datetime(2026, 3, 2), 1095)
    assert str(caught.value) == "now must be timezone-aware"


def test_the_filters_as_conditions() -> None:
    assert stale_filter(CUTOFF) == [Where("", "orX", [
        Where("last_active", "lt", CUTOFF),
        Where("", "andX", [Where("last_active", "isNull"), Where("date_added", "lt", CUTOFF)]),
    ])]
    assert never_active_filter(CUTOFF) == [Where("last_active", "isNull"), Where("date_added", "lt", CUTOFF)]


@pytest.mark.parametrize(("memberships", "tally"), [
    ([], []),
    ([[]], [SegmentCount("(no segment)", 1)]),
    ([["B"], ["A"], ["C", "A"]], [SegmentCount("A", 2), SegmentCount("B", 1), SegmentCount("C", 1)]),  # ties: by name
    ([["A", "A", "A"]], [SegmentCount("A", 1)]),  # a contact counts once per segment
    ([["A"], ["B"], ["B"], ["B"], ["A"], ["C"]], [SegmentCount("B", 3), SegmentCount("A", 2), SegmentCount("C", 1)]),
])
def test_segment_tally(memberships: list[list[str]], tally: list[SegmentCount]) -> None:
    assert tally_segments(memberships) == tally


def test_the_snapshot_summary_holds_counts_only() -> None:
    snapshot = RetentionSnapshot(CUTOFF, 1095, 12, 5, ["a***@x.io"], [SegmentCount("News", 7), SegmentCount("VIP", 2)],
                                 segments_from=10, api_calls=4)
    assert snapshot.summary() == {
        "cutoff": "2023-03-03T09:00:30+00:00",
        "retention_days": 1095,
        "total": 12,
        "never_active": 5,
        "segments": [["News", 7], ["VIP", 2]],
        "segments_from": 10,
    }
    assert (snapshot.inactive, snapshot.segments_exact) == (7, False)


# ---- schedule ---------------------------------------------------------------------------------------


def _fires(expression: str, after: datetime, n: int = 3, tz: str = "UTC") -> list[str]:
    out, at = [], after
    for _ in range(n):
        nxt = next_slot(expression, tz, at)
        assert nxt is not None
        out.append(nxt.strftime("%a %H:%M"))
        at = nxt
    return out


def test_crontab_weekdays_count_from_sunday_unlike_apscheduler() -> None:
    sunday = datetime(2026, 3, 1, tzinfo=UTC)
    assert _fires("0 9 * * 1", sunday, 1) == ["Mon 09:00"]  # APScheduler's from_crontab says Tuesday
    assert _fires("0 9 * * 0", sunday, 1) == _fires("0 9 * * 7", sunday, 1) == ["Sun 09:00"]
    assert _fires("0 9 * * 1-5", sunday, 6) == ["Mon 09:00", "Tue 09:00", "Wed 09:00", "Thu 09:00", "Fri 09:00",
                                                 "Mon 09:00"]
    assert _fires("30 8 * * */2", sunday, 4) == ["Sun 08:30", "Tue 08:30", "Thu 08:30", "Sat 08:30"]
    assert _fires("0 9 * * mon,WED", sunday, 3) == ["Mon 09:00", "Wed 09:00", "Mon 09:00"]
    assert _fires("0 9 * * 5-7", sunday, 3) == ["Sun 09:00", "Fri 09:00", "Sat 09:00"]


@pytest.mark.parametrize(
    ("expression", "tz", "message"),
    [
        ("0 9 * *", "UTC", "five-field"),
        ("0 9 1 * 1", "UTC", "restrict only one"),
        ("0 9 * * 8", "UTC", "day of week"),
        ("0 9 * * fri-sun", "UTC", "bad range"),  # sun is 0: write 5-7 instead
        ("0 25 * * 1", "UTC", "0 25"),
        ("0 9 * * 1", "Mars/Olympus", "unknown timezone"),
    ],
)
def test_bad_schedules_are_named(expression: str, tz: str, message: str) -> None:
    with pytest.raises(CronError, match=message):
        cron_trigger(expression, tz)


def test_latest_due_slot() -> None:
    wednesday = datetime(2026, 3, 25, 12, tzinfo=UTC)
    assert latest_due_slot("0 9 * * 1", "UTC", wednesday) == datetime(2026, 3, 23, 9, tzinfo=UTC)
    assert latest_due_slot("0 9 * * 1", "UTC", datetime(2026, 3, 23, 9, tzinfo=UTC)) == datetime(
        2026, 3, 23, 9, tzinfo=UTC)  # exactly at the slot: due
    # Local time in the schedule's zone, across the DST change of 29 March 2026 in Berlin.
    assert latest_due_slot("0 9 * * 1", "Europe/Berlin", wednesday) == datetime(2026, 3, 23, 8, tzinfo=UTC)
    assert latest_due_slot("0 9 * * 1", "Europe/Berlin", datetime(2026, 4, 1, tzinfo=UTC)) == datetime(
        2026, 3, 30, 7, tzinfo=UTC)
    assert latest_due_slot("*/5 * * * *", "UTC", wednesday + timedelta(minutes=7)) == wednesday + timedelta(minutes=5)
    assert latest_due_slot("0 0 1 1 *", "UTC", wednesday) == datetime(2026, 1, 1, tzinfo=UTC)


# ---- compliance -------------------------------------------------------------------------------------


def test_sparkline_uses_a_fixed_scale_and_marks_missing_weeks() -> None:
    assert sparkline([0.0, 0.5, 1.0, None, 0.75]) == "▁▅█·▆"
    assert sparkline([]) == ""
    assert sparkline([1.7, -1]) == "█▁"  # clamped


def test_counts_from_intake_are_read_in_either_shape() -> None:
    as_list = {"forms": [{"form_id": 4, "form_name": "Newsletter", "submissions": "10", "with_consent": 6,
                          "exempt": 2}]}
    as_map = {"submissions_per_form": {"Newsletter": {"submissions": 10, "with_consent": 6, "exempt": 2}}}
    for counts in (as_list, as_map):
        [form] = forms_from_counts(counts)
        assert (form.name, form.submissions, form.with_consent, form.consent_share) == ("Newsletter", 10, 6, 0.75)
    assert forms_from_counts({}) == []


# ---- form audit -------------------------------------------------------------------------------------

ALIASES = ["consent", "gdpr_consent", "marketing_consent"]
EMAIL = {"alias": "email", "type": "email", "isRequired": True}


def _form(*fields: dict[str, object]) -> dict[str, object]:
    return {"id": 9, "name": "Signup", "fields": [EMAIL, *fields]}


@pytest.mark.parametrize(
    ("consent_field", "problems"),
    [
        ({"alias": "consent", "type": "checkboxgrp", "isRequired": True}, None),
        ({"alias": "consent", "type": "checkboxgrp", "isRequired": True, "defaultValue": "1"}, (Problem.PRECHECKED,)),
        ({"alias": "consent", "type": "checkboxgrp", "isRequired": True, "defaultValue": "0"}, None),
        ({"alias": "opt", "mappedField": "gdpr_consent", "type": "checkboxgrp", "isRequired": True,
          "properties": {"optionlist": {"list": [{"label": "Yes", "value": "1"}]}}, "defaultValue": "1"},
         (Problem.PRECHECKED,)),
        # Issue 12: an option is ticked when the default equals its value (FormBundle/Resources/views/Field/
        # group.html.twig), even a value that reads as "no"; options carry no default flag of their own.
        ({"alias": "consent", "type": "checkboxgrp", "isRequired": True, "defaultValue": "0",
          "properties": {"optionlist": {"list": [{"label": "I agree", "value": "0"}]}}}, (Problem.PRECHECKED,)),
        ({"alias": "consent", "type": "checkboxgrp", "isRequired": True,
          "properties": {"optionlist": {"list": [{"label": "Yes", "value": "1", "default": True}]}}}, None),
        ({"alias": "consent", "type": "hidden", "isRequired": False, "defaultValue": "yes"},
         (Problem.PRECHECKED,)),
        # Issue 11: an optional consent box is what freely given consent looks like, not a defect.
        ({"alias": "Marketing_Consent", "type": "yesno"}, None),
        ({"alias": "consent", "type": "checkboxgrp", "isRequired": False}, None),
        ({"alias": "newsletter", "type": "checkboxgrp", "isRequired": True}, (Problem.MISSING,)),
    ],
)
def test_form_audit_rules(consent_field: dict[str, object], problems: tuple[Problem, ...] | None) -> None:
    finding = audit_form(_form(consent_field), ALIASES)
    assert (finding.problems if finding else None) == problems
    # With the policy saying the form is for marketing, a required box is allowed there too.
    finding = audit_form(_form(consent_field), ALIASES, purpose="Marketing")
    assert (finding.problems if finding else None) == problems


@pytest.mark.parametrize(
    ("required", "purpose", "problems"),
    [
        (True, "support", (Problem.CONDITIONAL,)),  # Art. 7(4): the download/reply hinges on the tick
        (True, "ebook download", (Problem.CONDITIONAL,)),
        ("1", "support", (Problem.CONDITIONAL,)),  # Mautic 4 serialised booleans as strings
        (True, " marketing ", None),
        (True, None, None),  # no purpose in the policy: nothing to judge it by (the RoPA lists that gap)
        (False, "support", None),
        ("0", "support", None),
        (None, "support", None),
    ],
)
def test_a_required_consent_box_is_conditional_consent_unless_the_purpose_is_marketing(
    required: object, purpose: str | None, problems: tuple[Problem, ...] | None
) -> None:
    box = {"alias": "consent", "type": "checkboxgrp", "isRequired": required}
    finding = audit_form(_form(box), ALIASES, purpose=purpose)
    assert (finding.problems if finding else None) == problems
    prechecked = {**box, "defaultValue": "1"}
    finding = audit_form(_form(prechecked), ALIASES, purpose=purpose)
    assert finding is not None and finding.problems == (Problem.PRECHECKED, *(problems or ()))


def test_forms_without_an_email_are_not_judged() -> None:
    audit = audit_forms([{"id": 1, "name": "Poll", "fields": [{"alias": "q", "type": "radiogrp"}]},
                         {"id": 2, "name": "Keyed", "fields": {"5": {"alias": "mail", "type": "text",
                                                                     "leadField": "email"}}}], ALIASES)
    assert (audit.forms_checked, audit.collecting_email) == (2, 1)
    assert [(f.name, f.problems) for f in audit.findings] == [("Keyed", (Problem.MISSING,))]


@pytest.mark.parametrize(("fields", "collects"), [
    ([{"type": "Email"}], True),  # by field type,
    ([{"alias": "EMAIL", "type": "text"}], True),  # by alias,
    ([{"alias": "mail", "leadField": "Email"}], True),  # or by the contact field it fills (Mautic < 5.1)
    ([{"alias": "mail", "mappedField": "email"}], True),  # (Mautic 5.1+)
    ([{"alias": "mail", "leadField": "", "mappedField": "email"}], True),  # an empty leadField is no mapping
    ([{"alias": "mail", "leadField": 5, "mappedField": "email"}], True),
    ([{"alias": "name", "type": "text"}, {"alias": "addr", "type": "email"}], True),
    ([{"alias": "name", "type": "text", "leadField": "firstname"}], False),
    ([{"alias": "emails", "type": "emailish"}], False),
    ([{}], False),
    ([], False),
])
def test_which_forms_collect_an_email(fields: list[dict[str, object]], collects: bool) -> None:
    assert collects_email(fields) is collects


@pytest.mark.parametrize(("field", "consent"), [
    ({"alias": "Consent"}, True),
    ({"alias": "opt_in", "leadField": "GDPR_consent"}, True),
    ({"alias": "opt_in", "mappedField": "consent"}, True),
    ({"alias": "opt_in"}, False),
    ({"type": "checkbox"}, False),
])
def test_which_fields_are_consent_fields(field: dict[str, object], consent: bool) -> None:
    assert is_consent_field(field, ["consent", "gdpr_consent"]) is consent


def test_a_field_without_alias_or_mapping_is_no_consent_field_named_none() -> None:
    assert not is_consent_field({"type": "checkbox"}, ["none"])


@pytest.mark.parametrize(("field", "prechecked"), [
    ({"defaultValue": "1"}, True),
    ({"defaultValue": "Yes"}, True),
    ({"defaultValue": ["1"]}, True),  # a checkbox group's default
    ({"defaultValue": 1}, True),
    ({"defaultValue": True}, True),
    ({"defaultValue": 0.0}, False),
    ({"defaultValue": "No"}, False),
    ({"defaultValue": " OFF "}, False),
    ({"defaultValue": ["0", ""]}, False),
    ({"defaultValue": []}, False),
    ({"defaultValue": False}, False),
    ({"defaultValue": None}, False),
    ({}, False),
    # A default that reads as "no" still ticks the option whose value it equals (Mautic renders it checked),
    # in either option list, in each shape Mautic stores options in:
    ({"defaultValue": "0", "properties": {"optionlist": {"list": [{"label": "I agree", "value": "0"}]}}}, True),
    ({"defaultValue": "no", "properties": {"list": ["yes", "no"]}}, True),  # bare values
    ({"defaultValue": "off", "properties": {"list": {"list": [{"label": "off"}]}}}, True),  # no value: the label
    ({"defaultValue": "0", "properties": {"optionlist": {"list": {"0": "I agree", "1": "No"}}}}, True),  # keyed
    ({"defaultValue": "0", "properties": {"optionlist": {"list": ["1"]}, "list": [{"value": "0"}]}}, True),
    ({"defaultValue": "0", "properties": {"optionlist": {"list": {"1": "No"}}, "list": ["0"]}}, True),
    ({"defaultValue": 0, "properties": {"optionlist": {"list": [{"value": 0}]}}}, True),
    ({"defaultValue": "0", "properties": {"optionlist": {"list": [{"value": "1"}, {"value": None, "label": "0"}]}}},
     False),  # an option whose value is null is not ticked by its label
    ({"defaultValue": "0", "properties": {"optionlist": {"list": [{"value": "1"}]}}}, False),
    ({"defaultValue": "", "properties": {"optionlist": {"list": [{"value": ""}]}}}, False),  # no default at all
    ({"properties": {"optionlist": {"list": ["None"]}}}, False),
    ({"defaultValue": "0", "properties": {"optionlist": "0"}}, False),  # not an option list
    ({"defaultValue": "0", "properties": {"optionlist": None, "placeholder": "0"}}, False),
    ({"defaultValue": "0", "properties": ["0"]}, False),
    # Options carry no default flag of their own: one is ticked only by the field's default value.
    ({"properties": {"optionlist": {"list": [{"value": "1", "default": True, "checked": "1"}]}}}, False),
])
def test_what_counts_as_prechecked(field: dict[str, object], prechecked: bool) -> None:
    assert is_prechecked(field) is prechecked


def test_a_finding_names_the_form_and_its_consent_field() -> None:
    prechecked_optional: dict[str, object] = {"alias": "gdpr_consent", "type": "checkboxgrp", "defaultValue": "1"}
    assert audit_form(_form(prechecked_optional), ALIASES) == FormFinding(
        9, "Signup", (Problem.PRECHECKED,), "gdpr_consent")
    mapped_without_alias = {"mappedField": "consent", "type": "checkboxgrp", "isRequired": True}
    assert audit_form({"fields": [EMAIL, mapped_without_alias]}, ALIASES, purpose="support") == FormFinding(
        0, "form 0", (Problem.CONDITIONAL,), "")
    assert audit_form({"id": "12", "fields": [EMAIL]}, ALIASES) == FormFinding(12, "form 12", (Problem.MISSING,))
    finding = FormFinding(1, "x", (Problem.PRECHECKED, Problem.CONDITIONAL))
    assert finding.describe() == (
        "consent box is pre-checked by default (Recital 32: not consent); consent box is required on a form whose "
        "purpose is not marketing (Art. 7(4): consent made a condition is not freely given)")


def test_exempt_forms_are_skipped_and_the_rest_still_judged() -> None:
    def rule_for(form_id: int | None, alias: str | None) -> FormPolicy:
        if form_id == 7:
            return FormPolicy(("Einwilligung",), purpose="event registration")
        return FormPolicy((), exempt=alias == "support")

    support = {"alias": "support", "name": "Support", "fields": [EMAIL]}  # no id at all
    german = {"id": 7, "name": "Anmeldung", "fields": [EMAIL, {"alias": "einwilligung", "type": "checkboxgrp",
                                                               "isRequired": True}]}
    other = {"id": "8", "name": "Other", "fields": [EMAIL]}
    audit = audit_forms([support, german, other], ALIASES, rule_for=rule_for)
    assert (audit.forms_checked, audit.collecting_email) == (3, 3)
    assert [(f.name, f.problems) for f in audit.findings] == [("Other", (Problem.MISSING,)),
                                                              ("Anmeldung", (Problem.CONDITIONAL,))]


def test_configured_consent_aliases_are_trimmed_and_lower_case() -> None:
    assert consent_aliases([" Consent ", "", "  ", "GDPR_consent"]) == ["consent", "gdpr_consent"]


# ---- Block Kit limits -------------------------------------------------------------------------------


def _texts(message: dict[str, object]) -> list[str]:
    out = []
    for block in message["blocks"]:  # type: ignore[attr-defined]
        if "text" in block:
            out.append(block["text"]["text"])
        out.extend(f["text"] for f in block.get("fields", []))
    return out


def test_long_lists_are_cut_with_a_count_and_stay_within_slack_limits() -> None:
    findings = [FormFinding(i, f"Form with a rather long name number {i}" * 3, (Problem.MISSING, Problem.CONDITIONAL))
                for i in range(2000)]
    digest = ComplianceDigest(
        since=NOW - timedelta(days=7), until=NOW,
        forms=[FormSubmissions(f"Form {i}", 100 - i, 50) for i in range(60)],
        weeks=[WeekShare(NOW, 10, 5)] * 8, ledger_ok=False, ledger_text="ledger BROKEN at entry 4: edited",
        form_audit=FormAudit(400, 350, findings), missing=["data-subject requests"],
    )
    message = blocks.compliance_digest(digest, run_id=7)
    assert validate_blocks(message["blocks"]) == []
    assert len(message["blocks"]) <= 50 and all(len(t) <= 3000 for t in _texts(message))
    joined = "\n".join(_texts(message))
    assert "…and 48 more forms not shown." in joined
    assert "more forms not shown." in joined.split("Form audit")[1]
    assert "🚨 *Audit ledger*: ledger BROKEN" in joined
    assert "Not tracked yet (shown as 0): data-subject requests" in str(message["blocks"])

    snapshot = RetentionSnapshot(CUTOFF, 1095, 12345, 345, ["a***@x.io"],
                                 [SegmentCount(f"S{i}", 100 - i) for i in range(100)], segments_from=50)
    retention = blocks.retention_digest(snapshot, run_id=3)
    assert validate_blocks(retention["blocks"]) == []
    text = "\n".join(_texts(retention))
    assert "…and 85 more segments not shown." in text and "Purge 12,345 stale contacts" in str(retention)
    assert "first 50 of 12,345 contacts" in str(retention["blocks"])

    audit = blocks.form_audit(FormAudit(400, 350, findings))
    assert validate_blocks(audit["blocks"]) == [] and len(audit["blocks"]) <= 50
    shown = sum(text.count("\n• ") + text.startswith("• ") for text in _texts(audit))
    assert 300 < shown < 2000 and f"…and {2000 - shown:,} more forms not shown." in str(audit["blocks"])


def test_the_consent_policy_names_a_forms_consent_fields_and_exemptions() -> None:
    from bot.policy import parse_policy

    policy = parse_policy({"forms": [{"id": 7, "required": ["einwilligung"]}, {"alias": "support", "exempt": True}]},
                          ALIASES)

    def rule_for(form_id: int | None, alias: str | None) -> FormPolicy:
        rule = policy.rule_for(form_id, alias)
        return FormPolicy(rule.fields, rule.exempt, rule.purpose)

    german = {"id": 7, "name": "Anmeldung", "fields": [EMAIL, {"alias": "einwilligung", "type": "checkboxgrp",
                                                               "isRequired": True}]}
    support = {"id": 8, "name": "Support", "alias": "support", "fields": [EMAIL, {"alias": "msg", "type": "text"}]}
    assert audit_forms([german, support], ALIASES).findings[0].name == "Anmeldung"  # without the policy
    audit = audit_forms([german, support], ALIASES, rule_for=rule_for)
    assert audit.findings == [] and audit.collecting_email == 2
