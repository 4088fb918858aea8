"""What the law requires, per regime, in the words the requests feature shows: rejection, extension,
reminders and the access package's list of rights. Pure texts, no I/O.

GDPR: Art. 12(3) (one month, extension by two further months with the reasons told within the first
month), Art. 12(4) (no action: tell the reasons, the right to complain to a supervisory authority and to
seek a judicial remedy, within one month of receipt), Art. 77 (complaint), Art. 79 (judicial remedy).
CCPA: Cal. Civ. Code §1798.130(a)(2) (45 days, one extension of 45 with notice and the reasons within
the first 45), Cal. Code Regs. tit. 11 §7021 (timelines), and what a denial must say per kind of request:
§7022 (delete), §7023 (correct), §7024 (know), §7026 (opt-out of sale/sharing); §7101 (the basis of any
denial is kept). The CCPA, unlike the GDPR, gives no appeal or remedy to name in a denial; complaints go to
the California Privacy Protection Agency (Cal. Civ. Code §1798.199.45) or the Attorney General.
"""

from __future__ import annotations

from datetime import date

from bot.requests.deadlines import Regime


def regime_name(regime: str) -> str:
    return "CCPA" if regime == "ccpa" else "GDPR"


def deadline_basis(regime: str, kind: str = "") -> str:
    """The provision a due date comes from, for reminders."""
    if kind == "optout":  # 15 business days, not the 45 calendar days of the other CCPA requests
        return "Cal. Code Regs. tit. 11 §7026(f)"
    if regime == "ccpa":
        return "Cal. Civ. Code §1798.130(a)(2), Cal. Code Regs. tit. 11 §7021(b)"
    return "GDPR Art. 12(3)"


# What a CCPA denial must say, per kind of request (Cal. Code Regs. tit. 11, as amended 2023). Checked against
# the regulation text (Cornell LII / casetext copies "current through Register 2024 No. 45", and the CPPA
# text as printed in a 2024 deskbook): §7021(a)-(b), §7022(a),(b),(e), §7023(a),(f)(1)-(2), §7024(a)-(b) and
# §7101 word for word. §7022(f), §7024(e) and §7026(d)-(f) were checked only against secondary summaries
# (their subsection text was not in the copies at hand): re-read them before relying on the letters.
_CCPA_DENIAL: dict[str, str] = {
    # §7024(a)-(b): not verified → no specific pieces; treat it as a request for categories, and if that is
    # denied too, direct the consumer to the information practices in the privacy policy. §7024(e): denied for
    # a conflict with federal or state law or a CCPA exception → explain the basis (unless the law forbids
    # it) and disclose the rest of what was asked.
    "access": ("If the identity could not be verified, disclose no specific pieces of information and say so; "
               "treat it as a request for the categories of information, and if that is denied too, give or "
               "point to the information practices in the privacy policy (§7024(a)-(b)). If the law or a CCPA "
               "exception bars disclosure, explain that basis and disclose everything else asked for (§7024(e))."),
    # §7022(a): not verified → say the identity cannot be verified. §7022(f): a detailed explanation of the
    # basis (conflicting law or CCPA exception), delete what the exception does not cover, use what is kept
    # only for the exception's purpose, and (if the business sells or shares) ask whether the consumer wants
    # to opt out of sale/sharing. §7022(e): say whether it was complied with and that a record is kept.
    "erasure": ("If the identity could not be verified, say so (§7022(a)). Otherwise give a detailed explanation "
                "of the basis: the conflicting law or the CCPA exception; delete what the exception does not "
                "cover and use what is kept only for that purpose; if you sell or share personal information, "
                "ask whether they want to opt out of that (§7022(f)); and tell them a record of the request is "
                "kept (§7022(e))."),
    # §7023(a): not verified → may deny, and tell the requestor their identity cannot be verified.
    # §7023(f)(1)-(2): explain the basis (conflicting law, CCPA exception, inadequate documentation, or
    # impossibility / disproportionate effort, the last with enough facts for a meaningful understanding).
    "rectification": ("If the identity could not be verified, say so (§7023(a)). Otherwise explain the basis: "
                      "a conflicting law, a CCPA exception, inadequate documentation, or that "
                      "correcting is impossible or takes disproportionate effort, the last with the facts that "
                      "show why, not just the claim (§7023(f)(1)-(2))."),
    # §7026(e): an opt-out may be denied only on a good-faith, reasonable, documented belief that it is
    # fraudulent; the requester is told it will not be complied with, and why it is believed fraudulent.
    "optout": ("An opt-out may be denied only on a good-faith, reasonable and documented belief that it is "
               "fraudulent: say that you will not comply and why you believe the request is fraudulent (§7026(e))."),
}


def rejection_duty(regime: str, kind: str = "") -> str:
    """What the requester must be told when a request of ``kind`` (a RequestKind value) is rejected."""
    if regime == "ccpa":
        specific = _CCPA_DENIAL.get(kind, "Tell the requester the basis for the denial.")
        return (f"CCPA: tell the requester the request is denied. {specific} The basis is kept with the request "
                "for 24 months (Cal. Code Regs. tit. 11 §7101). The CCPA requires no appeal; the requester may "
                "complain to the California Privacy Protection Agency or the Attorney General.")
    return ("GDPR Art. 12(4): tell the requester the reasons, their right to lodge a complaint with a supervisory "
            "authority (Art. 77) and their right to a judicial remedy (Art. 79), within one month of receipt.")


def late_rejection_warning(regime: str, first_period_end: date, today: date, *, due: date | None = None) -> str | None:
    """A warning when the rejection comes late. GDPR: after the first month, whatever the extension (Art. 12(4)
    asks for the reasons within one month of receipt). CCPA: after the response deadline ``due``, which is 90
    days from receipt once the extension notice went out (Cal. Code Regs. tit. 11 §7021(b): a denial is a
    response), else 45."""
    if regime == "ccpa":
        deadline = max(due or first_period_end, first_period_end)
        if today <= deadline:
            return None
        return (f"⚠️ This denial comes after the response deadline ({deadline.isoformat()}: 45 days from receipt, "
                "90 with an extension notice, Cal. Code Regs. tit. 11 §7021(b)): tell the requester now and note "
                "why it came late.")
    if today <= first_period_end:
        return None
    return (f"⚠️ This rejection comes after the first month (it ended {first_period_end.isoformat()}): Art. 12(4) "
            "required telling the requester within one month of receipt. Tell them now and note why it came late.")


def extension_duty(regime: Regime) -> str:
    if regime == "ccpa":
        # §7021(b): "up to an additional 45 calendar days … for a maximum total of 90 calendar days from the day
        # the request is received, provided that the business provides the consumer with notice and an
        # explanation of the reason"; §1798.130(a)(2): the notice within the first 45 days.
        return ("CCPA §1798.130(a)(2), Cal. Code Regs. tit. 11 §7021(b): the extension (at most 90 days in total "
                "from receipt, only when necessary) needs a notice to the requester explaining the reason, "
                "within the first 45 days.")
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
