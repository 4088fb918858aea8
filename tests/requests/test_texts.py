"""Texts per regime: the reject modal and reply, the extension reply, the reminders and summary.html cite
the law of the request's own regime; a rejection names the right to complain and to a judicial remedy,
and one after the first period warns."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from bot.policy import load_policy
from bot.requests import law
from bot.requests.blocks import decision_reply, reject_modal, reminder_reply
from bot.requests.model import RequestKind, RequestState
from bot.requests.summary import ContactSummary, render_summary
from bot.requests.view import RequestInfo

FILED = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def info(regime: str, **changes: object) -> RequestInfo:
    base = RequestInfo(id=4, kind=RequestKind.ACCESS, state=RequestState.FILED, regime=regime,
                       subject_masked="j***@example.com", filed_by="U0ALICE", received_at=FILED,
                       received_on=date(2026, 3, 2), due_date=date(2026, 4, 2), original_due_date=date(2026, 4, 2))
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def text(payload: dict[str, object]) -> str:
    return str(payload)


def test_a_gdpr_rejection_names_the_complaint_and_the_judicial_remedy() -> None:
    shown = text(reject_modal(info("gdpr"), date(2026, 3, 10)))
    for needle in ("Art. 12(4)", "supervisory authority (Art. 77)", "judicial remedy (Art. 79)"):
        assert needle in shown
    assert "⚠️" not in shown and "CCPA" not in shown
    rejected = info("gdpr", state=RequestState.REJECTED, rejected_at=datetime(2026, 3, 10, tzinfo=UTC))
    said = text(decision_reply(rejected, "reject", "U0BOB", reason="Not our customer"))
    assert "judicial remedy (Art. 79)" in said and "Not our customer" in said and "⚠️" not in said


def test_a_ccpa_rejection_cites_the_ccpa_not_the_gdpr() -> None:
    shown = text(reject_modal(info("ccpa"), date(2026, 3, 10)))
    assert "request is denied" in shown and "§7024(e)" in shown and "California Privacy Protection Agency" in shown
    assert "Art. 12(4)" not in shown and "Art. 77" not in shown


@pytest.mark.parametrize(("regime", "needle"), [("gdpr", "after the first month"),
                                               ("ccpa", "after the response deadline")])
def test_a_rejection_after_the_first_period_warns(regime: str, needle: str) -> None:
    assert needle in text(reject_modal(info(regime), date(2026, 4, 3)))
    assert "⚠️" not in text(reject_modal(info(regime), date(2026, 4, 2)))  # the last day is still in time
    late = info(regime, state=RequestState.REJECTED, rejected_at=datetime(2026, 4, 3, 8, tzinfo=UTC))
    assert needle in text(decision_reply(late, "reject", "U0BOB", reason="No reply to our identity check"))


def test_late_rejection_warning_boundaries() -> None:
    end = date(2026, 4, 2)
    assert law.late_rejection_warning("gdpr", end, end) is None
    assert "2026-04-02" in (law.late_rejection_warning("gdpr", end, date(2026, 4, 3)) or "")


@pytest.mark.parametrize(("regime", "needle", "absent"), [
    ("gdpr", "GDPR Art. 12(3)", "§1798"), ("ccpa", "§1798.130(a)(2)", "Art. 12"),
])
def test_extension_and_reminder_texts_follow_the_regime(regime: str, needle: str, absent: str) -> None:
    extended = info(regime, extended_at=FILED, due_date=date(2026, 6, 2))
    said = text(decision_reply(extended, "extend", "U0BOB", reason="Many records"))
    assert needle in said and absent not in said
    reminded = text(reminder_reply(extended, date(2026, 6, 1)))
    assert needle in reminded and "extended" in reminded and absent not in reminded


def test_summary_html_lists_the_rights_of_the_requests_regime() -> None:
    policy = load_policy(None, [], controller="Acme Inc.").access
    result: list[ContactSummary] = []
    at = datetime(2026, 3, 5, tzinfo=UTC)
    gdpr = render_summary(result, request={"id": 1, "regime": "gdpr", "received_on": "2026-03-02",
                                           "received_at": "2026-03-04T10:00:00+00:00"}, policy=policy, generated_at=at)
    ccpa = render_summary(result, request={"id": 2, "regime": "ccpa", "received_on": "2026-03-02"}, policy=policy,
                          generated_at=at)
    assert "GDPR Art. 15" in gdpr and "(Art. 77)" in gdpr and "judicial remedy (Art. 79)" in gdpr
    assert "received on\n2026-03-02" in gdpr  # the day it was received, not the day it was filed
    assert "right to know (Cal. Civ. Code §1798.110)" in ccpa and "§1798.120" in ccpa
    assert "California Privacy Protection Agency" in ccpa
    assert "Art. 77" not in ccpa and "Art. 15" not in ccpa


def test_whether_a_rejection_is_late_is_judged_on_the_local_calendar() -> None:
    # 03:00 UTC on 3 Apr is still 2 Apr, the first period's last day, in Los Angeles: in time there.
    rejected = info("gdpr", state=RequestState.REJECTED, rejected_at=datetime(2026, 4, 3, 3, tzinfo=UTC))
    in_time = text(decision_reply(rejected, "reject", "U0BOB", reason="x", timezone="America/Los_Angeles"))
    assert "after the first month" not in in_time
    assert "after the first month" in text(decision_reply(rejected, "reject", "U0BOB", reason="x"))  # UTC: late
