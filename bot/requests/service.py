"""Filing requests and deciding on them: the rules, applied in one transaction each.

Who may file, attest or decide is the one approvals policy (``services.approvals``: approvers only for
decisions, never the filer, four eyes). Every decision is checked (permission, four eyes, state) before
it is written; the write itself is ``bot.approvals.decide``, a guarded UPDATE with its ledger entry, so
when two people (or two replicas) click at once exactly one wins and the other gets the same
explanation as any refused click. Refusals are audited too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlmodel import col

from bot import approvals
from bot.errors import BadCommand, Conflict, NotPermitted
from bot.privacy import mask_email, subject_hash
from bot.requests.commands import IdentityCheck, parse_request
from bot.requests.deadlines import (
    Deadline,
    Holidays,
    Regime,
    acknowledgement_due,
    extension_refusal,
    holiday_calendar,
    legal_deadline,
    notice_refusal,
    received_on,
)
from bot.requests.model import (
    APPROVER_ACTIONS,
    RECORD_ACTIONS,
    Action,
    IdentityMethod,
    RequestKind,
    RequestState,
    TransitionError,
    transition,
)
from bot.requests.view import RequestInfo, info_from_row
from storage import jobs as queue
from storage import ledger
from storage import requests as store
from storage.db import unit_of_work

if TYPE_CHECKING:
    from bot.services import Services

ANNOUNCE_JOB = "requests.announce"
EXECUTE_JOB = "requests.execute"
DAILY_JOB = "requests.daily"
LIFT_JOB = "requests.lift"
RELEASE_JOB = "requests.release"

MAY_NOT_FILE = "Only privacy requesters and approvers may file data-subject requests."
MAY_NOT_RECORD = "Only privacy requesters and approvers may record what the requester was told."


@dataclass(frozen=True)
class Outcome:
    """What a click led to: accepted (the request moved) or refused, with the sentence to show."""

    accepted: bool
    message: str
    info: RequestInfo | None = None


def today(services: Services) -> date:
    """Today where the controller counts its days (``DEADLINE_TIMEZONE``)."""
    return received_on(services.clock(), services.settings.deadline_timezone)


def holidays(services: Services) -> Holidays:
    return holiday_calendar(services.settings.deadline_holidays)



def release_dedupe_key(request_id: int, result: dict[str, Any]) -> str:
    """One release job per click that won; a release that failed for good may be pressed again."""
    failures = int(result.get("release_failures", 0))
    return f"request:{request_id}:release" + (f":{failures}" if failures else "")

async def file_request(services: Services, *, user_id: str, channel_id: str, kind: RequestKind,
                       args: str) -> RequestInfo:
    """Check the filer, parse the command, then store the request, its audit entry and the job that
    announces it, in one transaction. Raises ``NotPermitted`` or ``BadCommand`` with the sentence to show."""
    await services.approvals.require_filer(user_id, refusal=MAY_NOT_FILE)
    now = services.clock()
    local_today = received_on(now, services.settings.deadline_timezone)
    parsed = parse_request(kind, args, extra_fields=services.settings.rectify_fields, today=local_today)
    regime: Regime = parsed.regime or services.settings.dsar_deadline
    received = parsed.received or local_today
    deadline = legal_deadline(received, regime, holidays(services))
    acknowledge_by = acknowledgement_due(received, regime, holidays(services))
    if kind is RequestKind.OPT_OUT:  # a CPRA right: 15 business days, no confirmation-of-receipt step
        if parsed.regime == "gdpr":
            raise BadCommand("An opt-out of sale/sharing is a CCPA right; under the GDPR file "
                             "`/privacy erase` or record an objection instead.")
        regime = "ccpa"
        deadline = legal_deadline(received, regime, holidays(services), opt_out=True)
        acknowledge_by = None
    due = deadline.due
    async with unit_of_work(services.sessions) as session:
        row = await store.add_request(session, store.PrivacyRequest(
            kind=parsed.kind.value,
            state=RequestState.FILED.value,
            regime=regime,
            subject_hash=subject_hash(services.hash_key, parsed.email),
            subject_email=parsed.email,
            subject_masked=mask_email(parsed.email),
            note=parsed.note,
            changes=dict(parsed.changes),
            filed_by=user_id,
            channel=channel_id,
            received_at=now,
            received_on=received,
            due_date=due,
            due_note=deadline.note,
            acknowledgement_due=acknowledge_by,
            original_due_date=due,
            updated_at=now,
        ))
        assert row.id is not None
        await store.add_decision(session, request_id=row.id, actor=user_id, action="file", outcome="accepted", at=now)
        await ledger.record(session, actor=user_id, action="request.filed", subject=f"request:{row.id}", at=now,
                            details={"kind": parsed.kind.value, "regime": regime, "received_on": received.isoformat(),
                                     "due_date": due.isoformat(), "due_note": deadline.note,
                                     "subject": f"subject:{row.subject_hash[:16]}",
                                     "fields": sorted(parsed.changes)})
        await queue.enqueue(session, ANNOUNCE_JOB, {"request_id": row.id}, dedupe_key=f"request:{row.id}:announce",
                            max_attempts=services.settings.job_max_attempts)
        info = info_from_row(row)
    services.jobs.notify()
    return info


async def enqueue_daily(services: Services) -> bool:
    """Queue today's sweep once, however many replicas' schedulers fire."""
    day = today(services).isoformat()
    async with unit_of_work(services.sessions) as session:
        job = await queue.enqueue(session, DAILY_JOB, {"day": day}, dedupe_key=f"requests:daily:{day}",
                                  max_attempts=services.settings.job_max_attempts)
    services.jobs.notify()
    return job is not None


async def load(services: Services, request_id: int) -> RequestInfo | None:
    async with unit_of_work(services.sessions) as session:
        row = await store.get_request(session, request_id)
        return info_from_row(row) if row is not None else None


async def open_requests(services: Services) -> list[RequestInfo]:
    async with unit_of_work(services.sessions) as session:
        return [info_from_row(r) for r in await store.open_requests(session)]


async def history(services: Services, request_id: int) -> list[tuple[datetime, str, str, str, str | None]]:
    async with unit_of_work(services.sessions) as session:
        return [(d.at, d.actor, d.action, d.outcome, d.reason) for d in await store.decisions_for(session, request_id)]


async def check_may_act(services: Services, request_id: int, actor: str, action: Action) -> RequestInfo:
    """Everything a click must pass before a modal opens or a decision is written; raises with the reason."""
    info = await load(services, request_id)
    if info is None:
        raise Conflict(f"Request #{request_id} does not exist.")
    if action in APPROVER_ACTIONS:
        await services.approvals.require_decider(actor, filed_by=info.filed_by, doing=action.value,
                                                 what=f"request #{info.id}")
    elif action in RECORD_ACTIONS:
        await services.approvals.require_filer(actor, refusal=MAY_NOT_RECORD)
    elif action is Action.VERIFY:
        # The verifier is an approver who did not file the request (the filer is told why).
        await services.approvals.require_verifier(actor, filed_by=info.filed_by, what=f"request #{info.id}")
    try:
        transition(info.state, action, identity_required=info.kind.needs_identity)
    except TransitionError as exc:
        raise Conflict(_with_who(exc.message, info)) from None
    if action is Action.EXTEND and not info.kind.extendable:
        raise Conflict("An opt-out of sale/sharing cannot be extended: it is complied with within 15 business "
                       "days (Cal. Code Regs. tit. 11 §7026(f)).")
    if action is Action.EXTEND:
        refusal = extension_refusal(already_extended=info.extended_at is not None,
                                    original_due=info.original_due_date, today=today(services))
        if refusal:
            raise Conflict(refusal)
    if action is Action.ACKNOWLEDGE and info.acknowledged_at is not None:
        raise Conflict(f"Receipt was already confirmed to the requester on {info.acknowledged_at:%Y-%m-%d} "
                       f"(recorded by <@{info.acknowledged_by}>).")
    if action is Action.LIFT and not info.restriction_in_force:
        raise Conflict("Only a restriction in force can be lifted.")
    if action is Action.RELEASE and not info.awaiting_release:
        if info.released_at is not None:
            raise Conflict(f"The package of request #{info.id} was already released on {info.released_at:%Y-%m-%d} "
                           f"(by <@{info.released_by}>).")
        if info.erased:
            raise Conflict("The person was erased since; their prepared package was deleted with their data.")
        if info.package_expired:
            raise Conflict(f"The package of request #{info.id} was deleted unreleased (EXPORT_LINK_TTL passed); "
                           "file a new request to prepare a fresh one.")
        raise Conflict("Only a prepared access package can be released.")
    if action is Action.RESPOND and info.responded_at is not None:
        raise Conflict(f"The answer was already recorded as sent on {info.responded_at:%Y-%m-%d} "
                       f"(by <@{info.responded_by}>).")
    return info


def extended_deadline(services: Services, info: RequestInfo) -> Deadline:
    """The due date an extension gives: three months (GDPR) or 90 days (CCPA) from receipt, rolled forward."""
    return legal_deadline(info.received_day, info.regime, holidays(services), extended=True)  # type: ignore[arg-type]


def _with_who(message: str, info: RequestInfo) -> str:
    if info.state in (RequestState.APPROVED, RequestState.RUNNING, RequestState.DONE) and info.approved_by:
        return f"{message} (approved by <@{info.approved_by}>)"
    if info.state is RequestState.REJECTED and info.rejected_by:
        return f"{message} (rejected by <@{info.rejected_by}>)"
    return message


async def record_refusal(services: Services, request_id: int, actor: str, action: Action, why: str) -> None:
    """A refused click leaves a trace: a decision row and an audit entry (no personal data)."""
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        exists = await store.get_request(session, request_id) is not None
        if exists:
            await store.add_decision(session, request_id=request_id, actor=actor, action=action.value,
                                     outcome="refused", reason=why[:1000], at=now)
        await ledger.record(session, actor=actor, action="request.refused", subject=f"request:{request_id}", at=now,
                            details={"attempted": action.value, "why": why[:300]})


async def check_or_refuse(services: Services, request_id: int, actor: str, action: Action) -> Outcome:
    """``check_may_act`` for a click that opens a modal: a refusal is recorded and returned, never raised."""
    try:
        info = await check_may_act(services, request_id, actor, action)
    except (NotPermitted, Conflict) as exc:
        await record_refusal(services, request_id, actor, action, exc.message)
        return Outcome(False, exc.message)
    return Outcome(True, "", info)


async def decide(
    services: Services, request_id: int, actor: str, action: Action, *, reason: str | None = None,
    identity: IdentityCheck | None = None, notified_on: date | None = None,
) -> Outcome:
    """Apply one human decision; a refusal is recorded and returned, never raised.

    ``identity``: how the verifier checked the requester's identity (required for ``VERIFY``);
    ``notified_on``: the day the requester was told of an extension (required for ``EXTEND``)."""
    if action is Action.VERIFY and identity is None:
        raise ValueError("verifying needs the method used")
    if action is Action.EXTEND and notified_on is None:
        raise ValueError("an extension needs the day the requester was told")
    checked = await check_or_refuse(services, request_id, actor, action)
    if not checked.accepted:
        return checked
    assert checked.info is not None
    info = checked.info
    now = services.clock()
    if notified_on is not None:
        wrong = notice_refusal(told_on=notified_on, received=info.received_day,
                               original_due=info.original_due_date, today=today(services))
        if wrong:
            return Outcome(False, wrong, info)  # a mistyped date, not a decision: nothing to record
    values: dict[str, Any] = {"state": transition(info.state, action, identity_required=info.kind.needs_identity).value,
                              "updated_at": now}
    extra_guard = None
    enqueue_run = False
    lift_job = False
    release_job = False
    if action is Action.VERIFY:
        assert identity is not None
        values.update(verified_by=actor, verified_at=now, verification_method=identity.method.value,
                      verification_note=identity.note)
    elif action is Action.APPROVE:
        # runs counts approvals too: after a lapse the next approval queues a new run (a new dedupe key).
        values.update(approved_by=actor, approved_at=now, runs=col(store.PrivacyRequest.runs) + 1)
        enqueue_run = True
    elif action is Action.REJECT:
        # A rejected request needs no address any more; the reason stays (Art. 12(4), CCPA §7101).
        values.update(rejected_by=actor, rejected_at=now, reject_reason=reason, subject_email=None, changes={},
                      completed_at=now)
    elif action is Action.EXTEND:
        extended = extended_deadline(services, info)
        values.update(extended_by=actor, extended_at=now, extension_reason=reason, due_date=extended.due,
                      due_note=extended.note, extension_notified_on=notified_on)
        extra_guard = store.PrivacyRequest.extended_at.is_(None)  # type: ignore[union-attr]
    elif action is Action.ACKNOWLEDGE:
        values.update(acknowledged_at=now, acknowledged_by=actor)
        extra_guard = store.PrivacyRequest.acknowledged_at.is_(None)  # type: ignore[union-attr]
    elif action is Action.LIFT:
        values.update(lifted_at=now, lifted_by=actor)
        extra_guard = store.PrivacyRequest.lifted_at.is_(None)  # type: ignore[union-attr]
        lift_job = True
    elif action is Action.RELEASE:
        # The guard makes a double click (or two approvers at once) release once: the loser is told who won.
        values.update(released_at=now, released_by=actor)
        extra_guard = store.PrivacyRequest.released_at.is_(None)  # type: ignore[union-attr]
        release_job = True
    elif action is Action.RESPOND:
        values.update(responded_at=now, responded_by=actor)
        extra_guard = store.PrivacyRequest.responded_at.is_(None)  # type: ignore[union-attr]
    elif action is Action.RETRY:
        # A retry re-confirms the approval, so the APPROVAL_TTL clock starts again.
        values.update(approved_at=now, failure=None, runs=col(store.PrivacyRequest.runs) + 1)
        enqueue_run = True
    details: dict[str, Any] = {"from": info.state.value, "to": values["state"], "kind": info.kind.value}
    if reason:
        # The ledger is never edited, so typed text stays out of it: that a reason was given and its keyed hash.
        details.update(ledger.reason_fields(services.hash_key, reason))
    if identity is not None:
        details["method"] = identity.method.value
        if identity.note:
            details.update(ledger.reason_fields(services.hash_key, identity.note, name="method_note"))
    if action is Action.EXTEND:
        details["due_date"] = values["due_date"].isoformat()
        details["notified_on"] = values["extension_notified_on"].isoformat()
    async with unit_of_work(services.sessions) as session:
        won = await approvals.decide(session, store.PrivacyRequest, request_id, from_states=[info.state.value],
                                     values=values, actor=actor, action=f"request.{action.value}", subject=info.ref,
                                     details=details, at=now, extra_guard=extra_guard)
        if won:
            row = await store.get_request(session, request_id)
            assert row is not None
            await store.add_decision(session, request_id=request_id, actor=actor, action=action.value,
                                     outcome="accepted", reason=reason, at=now)
            if lift_job:  # Mautic calls run after the ack, as a durable job
                await queue.enqueue(session, LIFT_JOB, {"request_id": request_id},
                                    dedupe_key=f"request:{request_id}:lift",
                                    max_attempts=services.settings.job_max_attempts)
            if release_job:  # the link (or upload) goes out after the ack, as a durable job
                await queue.enqueue(session, RELEASE_JOB, {"request_id": request_id},
                                    dedupe_key=release_dedupe_key(request_id, info.result),
                                    max_attempts=services.settings.job_max_attempts)
            if enqueue_run:
                # The dedupe key names the run, so a replayed click can never queue a second execution.
                await queue.enqueue(session, EXECUTE_JOB, {"request_id": request_id},
                                    dedupe_key=f"request:{request_id}:run:{row.runs}",
                                    max_attempts=services.settings.job_max_attempts)
            new_info = info_from_row(row)
    if not won:
        # Someone else changed the request between our check and our write: explain as any refusal.
        current = await load(services, request_id)
        why = "Someone else decided on this request at the same moment."
        if current is not None:
            try:
                transition(current.state, action, identity_required=current.kind.needs_identity)
            except TransitionError as exc:
                why = _with_who(exc.message, current)
            else:
                if action is Action.EXTEND and current.extended_at is not None:
                    why = "This request was already extended once; the law allows one extension."
                elif action is Action.ACKNOWLEDGE and current.acknowledged_at is not None:
                    why = "Receipt was already confirmed to the requester."
                elif action is Action.RESPOND and current.responded_at is not None:
                    why = "The answer was already recorded as sent."
                elif action is Action.RELEASE and current.released_at is not None:
                    why = f"The package of request #{current.id} was already released (by <@{current.released_by}>)."
        await record_refusal(services, request_id, actor, action, why)
        return Outcome(False, why, current)
    if enqueue_run or lift_job or release_job:
        services.jobs.notify()
    return Outcome(True, _accepted_text(action, new_info), new_info)


def _method(info: RequestInfo) -> str:
    return IdentityMethod(info.verification_method).label if info.verification_method else "method not recorded"


def _accepted_text(action: Action, info: RequestInfo) -> str:
    return {
        Action.VERIFY: f"Identity of request #{info.id} recorded as verified ({_method(info)}).",
        Action.APPROVE: f"Request #{info.id} approved; it runs now.",
        Action.REJECT: f"Request #{info.id} rejected.",
        Action.EXTEND: f"Request #{info.id} extended to {info.due_date.isoformat()}.",
        Action.RETRY: f"Request #{info.id} queued to run again.",
        Action.ACKNOWLEDGE: f"Recorded: receipt of request #{info.id} was confirmed to the requester.",
        Action.LIFT: f"Restriction #{info.id} lifted; Mautic is being updated.",
        Action.RESPOND: f"Recorded: the answer to request #{info.id} went out; the request is closed.",
        Action.RELEASE: f"Package of request #{info.id} released; the delivery follows in its thread.",
    }.get(action, "Done.")
