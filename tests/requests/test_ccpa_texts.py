"""CCPA wording checked against Cal. Code Regs. tit. 11 §7021-7024 and §7026: what a denial must say per kind
of request, when a denial is late (after 45 days, or 90 once the extension notice went out), what the extension
notice needs, the opt-out's own deadline basis, and what the confirmation of receipt must describe."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from bot.requests import law
from bot.requests.blocks import decision_reply, reject_modal, reminder_reply, told_text
from bot.requests.model import RequestKind, RequestState
from bot.requests.view import RequestInfo

RECEIVED = date(2026, 3, 2)
DAY_45 = date(2026, 4, 16)
DAY_90 = date(2026, 5, 31)


def info(kind: RequestKind = RequestKind.ACCESS, **changes: object) -> RequestInfo:
    base = RequestInfo(id=4, kind=kind, state=RequestState.VERIFIED, regime="ccpa", subject_masked="j***@example.com",
                       filed_by="U0ALICE", received_at=datetime(2026, 3, 2, 9, tzinfo=UTC), received_on=RECEIVED,
                       due_date=DAY_45, original_due_date=DAY_45)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "needles"), [
    ("access", ("disclose no specific pieces of information and say so", "request for the categories",
                "§7024(a)-(b)", "information practices in the privacy policy", "§7024(e)", "disclose everything else")),
    ("erasure", ("§7022(a)", "detailed explanation of the basis", "opt out", "§7022(f)",
                 "a record of the request is kept (§7022(e))")),
    ("rectification", ("could not be verified, say so (§7023(a))", "inadequate documentation",
                       "disproportionate effort", "§7023(f)(1)-(2)")),
    ("optout", ("fraudulent", "§7026(e)")),
    ("restriction", ("the basis for the denial",)),  # not a CCPA right: the general duty only
])
def test_a_ccpa_denial_says_what_its_kind_of_request_requires(kind: str, needles: tuple[str, ...]) -> None:
    said = law.rejection_duty("ccpa", kind)
    for needle in needles:
        assert needle in said, needle
    assert "§7101" in said and "California Privacy Protection Agency" in said and "requires no appeal" in said
    assert "Art. 12" not in said and "judicial remedy" not in said  # the GDPR's duties are not the CCPA's


def test_the_reject_modal_and_reply_carry_the_kinds_duty() -> None:
    erasure = info(RequestKind.ERASURE)
    assert "§7022(f)" in str(reject_modal(erasure, date(2026, 3, 10)))
    rejected = dataclasses.replace(erasure, state=RequestState.REJECTED, rejected_at=datetime(2026, 3, 10, tzinfo=UTC))
    said = str(decision_reply(rejected, "reject", "U0BOB", reason="Needed for a legal claim"))
    assert "§7022(f)" in said and "§7024" not in said


def test_a_ccpa_denial_is_late_only_after_the_deadline_in_force() -> None:
    # Not extended: the response (a denial is one) is due in 45 days.
    assert law.late_rejection_warning("ccpa", DAY_45, DAY_45, due=DAY_45) is None
    late = law.late_rejection_warning("ccpa", DAY_45, DAY_45 + (date(2026, 1, 2) - date(2026, 1, 1)), due=DAY_45)
    assert late is not None and "2026-04-16" in late and "§7021(b)" in late
    # Extended with notice: due in 90 days (§7021(b)), so day 60 is in time and day 91 is not.
    assert law.late_rejection_warning("ccpa", DAY_45, date(2026, 5, 1), due=DAY_90) is None
    assert "2026-05-31" in (law.late_rejection_warning("ccpa", DAY_45, date(2026, 6, 1), due=DAY_90) or "")
    # Under the GDPR the reasons are due within the first month whatever the extension (Art. 12(4)).
    assert law.late_rejection_warning("gdpr", date(2026, 4, 2), date(2026, 5, 1), due=date(2026, 6, 2)) is not None
    extended = info(extended_at=datetime(2026, 3, 20, tzinfo=UTC), due_date=DAY_90)
    assert "⚠️" not in str(reject_modal(extended, date(2026, 5, 1)))
    assert "after the response deadline" in str(reject_modal(info(), date(2026, 4, 17)))


def test_the_ccpa_extension_notice_needs_the_reason_and_caps_at_90_days() -> None:
    said = law.extension_duty("ccpa")
    assert "§7021(b)" in said and "explaining the reason" in said and "90 days in total" in said
    assert "within the first 45 days" in said


def test_an_opt_out_reminder_cites_its_15_business_days_not_the_45_day_rule() -> None:
    assert law.deadline_basis("ccpa", "optout") == "Cal. Code Regs. tit. 11 §7026(f)"
    assert law.deadline_basis("ccpa", "access") == "Cal. Civ. Code §1798.130(a)(2), Cal. Code Regs. tit. 11 §7021(b)"
    opt_out = info(RequestKind.OPT_OUT, state=RequestState.FILED, due_date=date(2026, 3, 23))
    reminded = str(reminder_reply(opt_out, date(2026, 3, 20)))
    assert "§7026(f)" in reminded and "§1798.130" not in reminded


def test_the_confirmation_of_receipt_names_what_it_must_describe() -> None:
    pending = info(acknowledgement_due=date(2026, 3, 16))
    shown = told_text(pending, date(2026, 3, 5)) or ""
    assert "§7021(a)" in shown and "how you verify identity and when to expect the answer" in shown
