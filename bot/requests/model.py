"""Request kinds, states and the state machine: a transitions table and one pure ``transition()``.

The table is the whole truth about which action may move a request from which state; storage
enforces the same table with guarded ``UPDATE … WHERE state = …`` so two clicks or two replicas
cannot both win.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum


class RequestKind(StrEnum):
    ACCESS = "access"  # Art. 15 (and 20: the package is machine-readable)
    ERASURE = "erasure"  # Art. 17
    RECTIFICATION = "rectification"  # Art. 16
    RESTRICTION = "restriction"  # Art. 18: kept, not used, until lifted
    OPT_OUT = "optout"  # CPRA: opt-out of sale/sharing, Cal. Civ. Code §1798.120, Cal. Code Regs. tit. 11 §7026
    OBJECTION = "objection"  # Art. 21(2)-(3): objection to direct marketing, absolute (no balancing)

    @property
    def heading(self) -> str:
        return {
            RequestKind.ACCESS: "Access request (DSAR)",
            RequestKind.ERASURE: "Erasure request",
            RequestKind.RECTIFICATION: "Rectification request",
            RequestKind.RESTRICTION: "Restriction request",
            RequestKind.OPT_OUT: "Opt-out of sale/sharing",
            RequestKind.OBJECTION: "Objection to direct marketing",
        }[self]

    @property
    def article(self) -> str:
        return {
            RequestKind.ACCESS: "GDPR Art. 15 and 20",
            RequestKind.ERASURE: "GDPR Art. 17",
            RequestKind.RECTIFICATION: "GDPR Art. 16",
            RequestKind.RESTRICTION: "GDPR Art. 18",
            RequestKind.OPT_OUT: "CCPA §1798.120, Cal. Code Regs. tit. 11 §7026",
            RequestKind.OBJECTION: "GDPR Art. 21(2) and (3)",
        }[self]

    @property
    def needs_identity(self) -> bool:
        """An opt-out needs no identity verification (Cal. Code Regs. tit. 11 §7026(d)), nor does an objection to
        direct marketing: it only stops processing, so nobody is harmed by honouring it for the wrong person, and
        Art. 21(3) makes it absolute. Both still need an approver."""
        return self not in (RequestKind.OPT_OUT, RequestKind.OBJECTION)

    @property
    def no_identity_basis(self) -> str:
        """Why a kind has no identity step, for the request message."""
        if self is RequestKind.OBJECTION:
            return "GDPR Art. 21(3): direct marketing stops on objection"
        return "Cal. Code Regs. tit. 11 §7026(d)"

    @property
    def extendable(self) -> bool:
        """An opt-out is complied with within 15 business days (§7026(f)); there is no extension."""
        return self is not RequestKind.OPT_OUT


class IdentityMethod(StrEnum):
    """How a verifier checked that the requester is the data subject (EDPB Guidelines 01/2022 §3.3: use
    what the controller already knows; ask for an ID document only when nothing else works)."""

    ADDRESS_REPLY = "address_reply"
    ACCOUNT = "account"
    DOCUMENT = "document"
    OTHER = "other"

    @property
    def label(self) -> str:
        return {
            IdentityMethod.ADDRESS_REPLY: "Reply from the address on record",
            IdentityMethod.ACCOUNT: "Logged-in account",
            IdentityMethod.DOCUMENT: "ID document seen",
            IdentityMethod.OTHER: "Other",
        }[self]


class RequestState(StrEnum):
    FILED = "filed"
    VERIFIED = "verified"
    APPROVED = "approved"
    RUNNING = "running"
    # An erasure after its Mautic deletes: done only once every place Mautic keeps data (and every recipient,
    # Art. 19) has been dealt with by a person, line by line.
    CLEANUP = "cleanup"
    DONE = "done"
    FAILED = "failed"
    REJECTED = "rejected"
    LAPSED = "lapsed"

    @property
    def is_open(self) -> bool:
        return self not in TERMINAL

    @property
    def label(self) -> str:
        return {
            RequestState.FILED: "Waiting for identity verification",
            RequestState.VERIFIED: "Identity verified, waiting for approval",
            RequestState.APPROVED: "Approved, queued for execution",
            RequestState.RUNNING: "Running",
            RequestState.CLEANUP: "Deleted in Mautic, awaiting clean-up",
            RequestState.DONE: "Done",
            RequestState.FAILED: "Failed",
            RequestState.REJECTED: "Rejected",
            RequestState.LAPSED: "Approval lapsed",
        }[self]


TERMINAL = frozenset({RequestState.DONE, RequestState.REJECTED, RequestState.LAPSED})


class Action(StrEnum):
    VERIFY = "verify"
    APPROVE = "approve"
    REJECT = "reject"
    EXTEND = "extend"
    START = "start"  # the job begins executing
    COMPLETE = "complete"
    AWAIT_CLEANUP = "await_cleanup"  # an erasure's deletes are done; its clean-up checklist is posted
    FAIL = "fail"  # the job gave up after JOB_MAX_ATTEMPTS
    RETRY = "retry"  # an approver asks for another run of a failed request
    LAPSE = "lapse"  # an approval older than APPROVAL_TTL that never ran: back to verified
    ACKNOWLEDGE = "acknowledge"  # the confirmation of receipt went out to the requester
    RESPOND = "respond"  # the answer went out to the requester: only now is the request closed
    LIFT = "lift"  # an approver lifts a restriction (Art. 18(3): the subject is told before)
    RELEASE = "release"  # an approver releases a prepared access package to the requester


S, A = RequestState, Action

# (state, action) → next state. Extend keeps the state: it only moves the due date. Acknowledge and respond
# keep it too: they record that the requester was told something.
TRANSITIONS: dict[tuple[RequestState, Action], RequestState] = {
    (S.FILED, A.VERIFY): S.VERIFIED,
    (S.FILED, A.REJECT): S.REJECTED,
    (S.FILED, A.EXTEND): S.FILED,
    (S.VERIFIED, A.APPROVE): S.APPROVED,
    (S.VERIFIED, A.REJECT): S.REJECTED,
    (S.VERIFIED, A.EXTEND): S.VERIFIED,
    (S.APPROVED, A.EXTEND): S.APPROVED,
    (S.APPROVED, A.START): S.RUNNING,
    # A lapsed approval no longer counts, but the request stays what it was before it: verified and due
    # on its original date (re-filing would restart the clock the law does not restart).
    (S.APPROVED, A.LAPSE): S.VERIFIED,
    (S.RUNNING, A.START): S.RUNNING,  # a resumed job after a restart
    (S.RUNNING, A.COMPLETE): S.DONE,
    (S.RUNNING, A.AWAIT_CLEANUP): S.CLEANUP,
    (S.CLEANUP, A.COMPLETE): S.DONE,  # the last clean-up line was ticked
    (S.RUNNING, A.FAIL): S.FAILED,
    (S.APPROVED, A.FAIL): S.FAILED,  # the job could not even start (e.g. Mautic down throughout)
    (S.FAILED, A.RETRY): S.APPROVED,
    **{(state, A.ACKNOWLEDGE): state for state in (S.FILED, S.VERIFIED, S.APPROVED, S.RUNNING, S.CLEANUP,
                                                        S.FAILED)},
    (S.DONE, A.RESPOND): S.DONE,
    (S.DONE, A.LIFT): S.DONE,  # a carried-out restriction; the lift itself runs as a job
    (S.DONE, A.RELEASE): S.DONE,  # a prepared access package; the delivery itself runs as a job
    (S.REJECTED, A.RESPOND): S.REJECTED,
}

# Actions a person takes by clicking; the rest are taken by the bot's own jobs.
HUMAN_ACTIONS = frozenset({A.VERIFY, A.APPROVE, A.REJECT, A.EXTEND, A.RETRY, A.ACKNOWLEDGE, A.RESPOND, A.LIFT,
                           A.RELEASE})
# Actions that need a privacy approver who did not file the request (four eyes).
APPROVER_ACTIONS = frozenset({A.APPROVE, A.REJECT, A.EXTEND, A.RETRY, A.LIFT, A.RELEASE})
# Records of what the requester was told: any filer (requesters and approvers) may make them.
RECORD_ACTIONS = frozenset({A.ACKNOWLEDGE, A.RESPOND})
# Decided or carried out, the request stays open until the answer went out.
ANSWERED = frozenset({RequestState.DONE, RequestState.REJECTED})


class TransitionError(Exception):
    """The action is not allowed in the request's current state; the message says why."""

    def __init__(self, state: RequestState, action: Action, message: str) -> None:
        super().__init__(message)
        self.state = state
        self.action = action
        self.message = message


def allowed_from(action: Action) -> frozenset[RequestState]:
    """Every state from which ``action`` is allowed (what a guarded UPDATE must match)."""
    return frozenset(state for (state, act) in TRANSITIONS if act == action)


# A request whose kind needs no identity step may be approved straight from filed.
WITHOUT_IDENTITY: dict[tuple[RequestState, Action], RequestState] = {(S.FILED, A.APPROVE): S.APPROVED}


def transition(state: RequestState | str, action: Action | str, *, identity_required: bool = True) -> RequestState:
    """The next state, or TransitionError with a sentence a person can act on."""
    state, action = RequestState(state), Action(action)
    nxt = TRANSITIONS.get((state, action))
    if nxt is None and not identity_required:
        nxt = WITHOUT_IDENTITY.get((state, action))
    if nxt is not None:
        return nxt
    raise TransitionError(state, action, _why_not(state, action))


def _why_not(state: RequestState, action: Action) -> str:
    if action is A.RESPOND and state is not S.LAPSED:
        return "The answer can be recorded as sent once the request is done or rejected."
    if action is A.ACKNOWLEDGE and state in ANSWERED:
        return "This request was already answered; the confirmation of receipt no longer applies."
    if state in TERMINAL:
        return f"This request is already {state.value}; nothing more can be decided on it."
    if action is A.APPROVE and state is S.FILED:
        return "Identity has not been verified yet. Verify the requester's identity first, then approve."
    if action is A.APPROVE and state in (S.APPROVED, S.RUNNING, S.CLEANUP):
        return "This request was already approved; it runs once."
    if action is A.VERIFY and state is not S.FILED:
        return "Identity was already verified for this request."
    if action is A.RETRY:
        return "Only a failed request can be retried."
    if action is A.REJECT:
        return "Only a pending request (not yet approved) can be rejected."
    if action is A.EXTEND:
        return "Only a pending or approved request that has not started can be extended."
    return f"`{action.value}` is not possible while the request is {state.value}."


class CleanupPlace(StrEnum):
    """A line of an erasure's clean-up checklist (``bot.requests.cleanup``): where data is left after the Mautic
    delete, or a recipient to tell (Art. 19; the line names who)."""

    EMAIL_STATS = "email_stats"
    FORM_RESULTS = "form_results"
    PAGE_HITS = "page_hits"
    AUDIT_LOG = "audit_log"
    WEBHOOK_LOGS = "webhook_logs"
    RECIPIENT = "recipient"

    @property
    def label(self) -> str:
        return {
            CleanupPlace.EMAIL_STATS: "Email stats",
            CleanupPlace.FORM_RESULTS: "Form results",
            CleanupPlace.PAGE_HITS: "Page hits and asset downloads",
            CleanupPlace.AUDIT_LOG: "Audit log",
            CleanupPlace.WEBHOOK_LOGS: "Webhook queue and logs",
            CleanupPlace.RECIPIENT: "Recipient notified (Art. 19)",
        }[self]

    @property
    def how(self) -> str:
        return {
            CleanupPlace.EMAIL_STATS: "`email_stats` keeps `email_address` with `lead_id` emptied: delete the rows "
                                      "(`DELETE FROM email_stats WHERE email_address = …`) or use a housekeeping "
                                      "plugin.",
            CleanupPlace.FORM_RESULTS: "`form_submissions` and `form_results_*` keep the submitted values: delete "
                                       "the person's rows under Forms → Results for each form.",
            CleanupPlace.PAGE_HITS: "`page_hits` and `asset_downloads` keep IP, URL and user agent with `lead_id` "
                                    "emptied: purge by IP or date.",
            CleanupPlace.AUDIT_LOG: "`audit_log` names the contact in its delete entry: "
                                    "`bin/console mautic:maintenance:cleanup --gdpr`, or delete the rows for these "
                                    "contact ids.",
            CleanupPlace.WEBHOOK_LOGS: "`webhook_queue`, `webhook_logs.note` and Mautic's log files may hold the "
                                       "payload: clear failed-delivery logs and rotate logs.",
            CleanupPlace.RECIPIENT: "Tell this recipient of the erasure (Art. 19), or mark it not applicable if "
                                    "they never received this person's data.",
        }[self]


MAUTIC_PLACES = (CleanupPlace.EMAIL_STATS, CleanupPlace.FORM_RESULTS, CleanupPlace.PAGE_HITS,
                 CleanupPlace.AUDIT_LOG, CleanupPlace.WEBHOOK_LOGS)


def checklist(recipients: Sequence[str]) -> list[tuple[str, str | None]]:
    """The lines of one erasure's checklist: every Mautic place, then every recipient (names trimmed to fit)."""
    return [*((place.value, None) for place in MAUTIC_PLACES),
            *((CleanupPlace.RECIPIENT.value, name.strip()[:255]) for name in recipients if name.strip())]


