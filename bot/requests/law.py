"""What the law requires, per regime, in the words the requests feature shows: rejection, extension,
reminders and the access package's list of rights. Pure texts, no I/O.

GDPR: Art. 12(3) (one month, extension by two further months with the reasons told within the first
month), Art. 12(4) (no action: tell the reasons, the right to complain to a supervisory authority and to
seek a judicial remedy, within one month of receipt), Art. 77 (complaint), Art. 79 (judicial remedy).
CCPA: Cal. Civ. Code §1798.130(a)(2) (45 days, one extension of 45 with notice and the reasons within
the first 45), Cal. Code Regs. tit. 11 §7021 (timelines) and §7101 (the basis of any denial is kept);
complaints go to the California Privacy Protection Agency or the Attorney General.
"""

from __future__ import annotations

from datetime import date

from bot.requests.deadlines import Regime


def regime_name(regime: str) -> str:
    return "CCPA" if regime == "ccpa" else "GDPR"


def deadline_basis(regime: str) -> str:
    """The provision a due date comes from, for reminders."""
    if regime == "ccpa":
        return "Cal. Civ. Code §1798.130(a)(2), Cal. Code Regs. tit. 11 §7021(b)"
    return "GDPR Art. 12(3)"


def rejection_duty(regime: str) -> str:
    """What the requester must be told when a request is rejected."""
    if regime == "ccpa":
        return ("CCPA: tell the requester that the request is denied and the basis for the denial (kept with the "
                "request, Cal. Code Regs. tit. 11 §7101), and that they may complain to the California Privacy "
                "Protection Agency or the Attorney General.")
    return ("GDPR Art. 12(4): tell the requester the reasons, their right to lodge a complaint with a supervisory "
            "authority (Art. 77) and their right to a judicial remedy (Art. 79), within one month of receipt.")


def late_rejection_warning(regime: str, first_period_end: date, today: date) -> str | None:
    """A warning when the rejection comes after the first period (one month, or 45 days under CCPA)."""
    if today <= first_period_end:
        return None
    if regime == "ccpa":
        return (f"⚠️ This rejection comes after the first 45 days (they ended {first_period_end.isoformat()}): "
                "tell the requester now and note why it came late.")
    return (f"⚠️ This rejection comes after the first month (it ended {first_period_end.isoformat()}): Art. 12(4) "
            "required telling the requester within one month of receipt. Tell them now and note why it came late.")


def extension_duty(regime: Regime) -> str:
    if regime == "ccpa":
        return ("CCPA §1798.130(a)(2): the requester must be told of the extension and its reasons within the "
                "first 45 days.")
    return ("GDPR Art. 12(3): the requester must be told of the extension and its reasons within one month "
            "of receipt.")


def access_basis(regime: str) -> str:
    """The right an access package answers, for its summary page."""
    return "the CCPA right to know (Cal. Civ. Code §1798.110)" if regime == "ccpa" else "GDPR Art. 15"


def rights(regime: str, authority: str) -> list[str]:
    """The subject's rights as plain sentences (the caller escapes them)."""
    if regime == "ccpa":
        return [
            "to know what personal information we collect, use and disclose (§1798.110, §1798.115);",
            "to have your personal information deleted (§1798.105);",
            "to have inaccurate personal information corrected (§1798.106);",
            "to opt out of the sale or sharing of your personal information (§1798.120);",
            "to limit the use of sensitive personal information (§1798.121);",
            "not to be discriminated against for using these rights (§1798.125);",
            "to complain to the California Privacy Protection Agency or the Attorney General.",
        ]
    return [
        "to have inaccurate data corrected (Art. 16) and incomplete data completed;",
        "to have your data erased (Art. 17);",
        "to restrict processing (Art. 18) and to object to it, including at any time to direct marketing (Art. 21);",
        "to receive the data you gave us in a portable format (Art. 20), which data.json is;",
        "to withdraw consent at any time, as easily as you gave it (Art. 7(3));",
        f"to lodge a complaint with a supervisory authority, such as {authority} (Art. 77), "
        "and to an effective judicial remedy (Art. 79).",
    ]
