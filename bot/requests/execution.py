"""What the durable jobs of the feature do: announce a request, execute it, and the daily sweep.

Each step checkpoints through ``run.checkpoint`` before the next side effect, so an attempt resumed
after a restart (or a retry after Mautic answered 5xx) continues where the last one stopped instead
of deleting, patching or posting twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot import approvals
from bot.intake.split import split_all_pending
from bot.jobs import JobRun, PermanentJobError, RetryableJobError
from bot.mautic import ContactMerged, MauticNotFound, MauticRefused, Where
from bot.privacy import normalise_email
from bot.requests import blocks, notify
from bot.requests.model import Action, RequestKind, RequestState, transition
from bot.requests.package import build_access_package
from bot.requests.sealed import read_sealed
from bot.requests.view import RequestInfo, info_from_row
from storage import erasures, intake, ledger
from storage import requests as store
from storage.db import unit_of_work

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.services import Services

log = logging.getLogger(__name__)
BOT = "bot"  # the ledger actor for the bot's own steps
LEFTOVER_TABLES = ("email_stats", "form_submissions")


def seal_secret(services: Services) -> str:
    key = services.settings.bot_secret_key
    if key is None:
        raise PermanentJobError("BOT_SECRET_KEY is not set; packages cannot be sealed")
    return "export-seal:" + key.get_secret_value()


async def _row(services: Services, request_id: int) -> store.PrivacyRequest:
    async with unit_of_work(services.sessions) as session:
        row = await store.get_request(session, request_id)
    if row is None:
        raise PermanentJobError(f"request {request_id} does not exist")
    return row


async def _move(services: Services, row: store.PrivacyRequest, action: Action, values: dict[str, Any],
                *, details: dict[str, Any] | None = None, session: AsyncSession | None = None) -> bool:
    """A guarded state change by the bot itself, with its audit entry."""
    now = services.clock()
    new_state = transition(row.state, action).value

    async def apply(s: AsyncSession) -> bool:
        return await approvals.decide(
            s, store.PrivacyRequest, row.id or 0, from_states=[row.state],
            values={"state": new_state, "updated_at": now, **values}, actor=BOT, action=f"request.{action.value}",
            subject=f"request:{row.id}", at=now,
            details={"from": row.state, "to": new_state, "kind": row.kind, **(details or {})})

    if session is not None:
        return await apply(session)
    async with unit_of_work(services.sessions) as s:
        return await apply(s)


# ---- announce: post the request and look up its contacts ------------------------------------------


async def announce(services: Services, run: JobRun) -> None:
    request_id = int(run.payload["request_id"])
    info = await notify.ensure_posted(services, request_id)
    if info is None:
        return
    row = await _row(services, request_id)
    if row.contacts_found is None and row.subject_email:
        contacts = await services.mautic.find_contacts_by_email(row.subject_email)
        ids = sorted(c.id for c in contacts)
        async with unit_of_work(services.sessions) as session:
            await store.set_fields(session, request_id, {"contacts_found": ids})
            await ledger.record(session, actor=BOT, action="request.contacts_found", subject=f"request:{request_id}",
                                details={"count": len(ids), "contact_ids": ids})
        info = await notify.refresh_message(services, request_id)
        if info is not None:
            await notify.post_in_thread(services, info, blocks.contacts_reply(info), best_effort=True)
    elif row.message_ts:
        await notify.refresh_message(services, request_id)


async def announce_failed(services: Services, run: JobRun, error: str) -> None:
    info = await notify.refresh_message(services, int(run.payload["request_id"]))
    if info is not None:
        await notify.post_in_thread(services, info, blocks.lookup_failed_reply(), best_effort=True)


# ---- execute ---------------------------------------------------------------------------------------


async def execute(services: Services, run: JobRun) -> None:
    request_id = int(run.payload["request_id"])
    row = await _row(services, request_id)
    state = RequestState(row.state)
    if state is RequestState.APPROVED:
        assert row.approved_at is not None
        if services.approvals.lapsed(row.approved_at, services.clock()):
            await lapse(services, row)
            return
        if not await _move(services, row, Action.START, {}, details={"attempt": run.attempt}):
            return  # someone else moved it (rejected? lapsed?) in between
        row = await _row(services, request_id)
        await notify.refresh_message(services, request_id, best_effort=True)
    elif state is not RequestState.RUNNING:
        log.info("request %s is %s; nothing to execute", request_id, state.value)
        return
    kind = RequestKind(row.kind)
    try:
        if kind is RequestKind.ACCESS:
            await _execute_access(services, run, row)
        elif kind is RequestKind.ERASURE:
            await _execute_erasure(services, run, row)
        elif kind is RequestKind.OPT_OUT:
            await _execute_marking(services, run, row, comment=OPT_OUT_COMMENT, tag=OPT_OUT_TAG)
        elif kind is RequestKind.RESTRICTION:
            await _execute_marking(services, run, row, comment=RESTRICT_COMMENT, tag=RESTRICT_TAG)
        else:
            await _execute_rectification(services, run, row)
    except (MauticNotFound, ContactMerged):
        raise
    except MauticRefused as exc:
        # A 4xx (or auth) from Mautic will not heal by waiting: fail now and offer Retry.
        raise PermanentJobError(f"Mautic refused the call ({exc}); check the API user's permissions") from exc


async def execute_failed(services: Services, run: JobRun, error: str) -> None:
    """After JOB_MAX_ATTEMPTS (or a permanent error): failed, with a Retry button."""
    request_id = int(run.payload["request_id"])
    row = await _row(services, request_id)
    if row.state not in (RequestState.RUNNING.value, RequestState.APPROVED.value):
        return
    message = _public_error(error)
    await _move(services, row, Action.FAIL, {"failure": message[:1000]},
                details={"attempts": run.attempt, "error": message[:300]})
    info = await notify.refresh_message(services, request_id, best_effort=True)
    if info is not None:
        await notify.post_in_thread(services, info, blocks.failed_reply(info, message, run.attempt), best_effort=True)


def _public_error(error: str) -> str:
    """Job errors are built from exception classes and our own sentences, never from Mautic bodies."""
    if error.startswith("MauticUnavailable"):
        return "Mautic was unavailable (5xx, 429 or timeouts) on every attempt."
    return error


async def lapse(services: Services, row: store.PrivacyRequest) -> None:
    ttl_days = services.approvals.ttl.total_seconds() / 86400
    # Back to verified with its original due date: the approval no longer counts, the request does.
    if not await _move(services, row, Action.LAPSE, {"approved_by": None, "approved_at": None},
                       details={"approval_ttl_days": ttl_days, "lapsed_approval_by": row.approved_by,
                                "due_date": row.due_date.isoformat()}):
        return
    info = await notify.refresh_message(services, row.id or 0, best_effort=True)
    if info is not None:
        await notify.post_in_thread(services, info, blocks.lapsed_reply(info, ttl_days), best_effort=True)


async def _complete(services: Services, row: store.PrivacyRequest, result: dict[str, Any], *,
                    session: AsyncSession, clear_email: bool = True) -> bool:
    values: dict[str, Any] = {"result": result, "completed_at": services.clock(), "changes": {}}
    if clear_email:
        values["subject_email"] = None
    return await _move(services, row, Action.COMPLETE, values, session=session,
                       details={k: v for k, v in result.items() if k in ("contacts", "deleted", "timeline_events")})


async def _contacts(services: Services, run: JobRun, row: store.PrivacyRequest) -> list[int]:
    """A fresh exact-match lookup at execution time (contacts may have come or gone since filing)."""
    if "contacts" in run.progress:
        return [int(i) for i in run.progress["contacts"]]
    if not row.subject_email:
        raise PermanentJobError("the request no longer holds the subject's address")
    ids = sorted(c.id for c in await services.mautic.find_contacts_by_email(row.subject_email))
    await _checkpoint(run, contacts=ids)
    return ids


async def _checkpoint(run: JobRun, **values: Any) -> None:
    run.progress.update(values)
    await run.checkpoint(dict(run.progress))


# ---- access ----------------------------------------------------------------------------------------


async def _bot_holdings(services: Services, row: store.PrivacyRequest) -> dict[str, Any]:
    holdings: dict[str, Any] = {}
    async with unit_of_work(services.sessions) as session:
        holdings.update(await intake.subject_records(session, row.subject_hash))
        requests = await store.requests_for_subject(session, row.subject_hash)
        decisions = {r.id: await store.decisions_for(session, r.id or 0) for r in requests}
    holdings["requests"] = [
        {"id": r.id, "type": r.kind, "state": r.state, "received_at": r.received_at.isoformat(),
         "due_date": r.due_date.isoformat(), "completed_at": r.completed_at.isoformat() if r.completed_at else None,
         "decisions": [{"action": d.action, "outcome": d.outcome, "at": d.at.isoformat()}
                       for d in decisions[r.id]]}
        for r in requests
    ]
    return holdings


async def _execute_access(services: Services, run: JobRun, row: store.PrivacyRequest) -> None:
    settings = services.settings
    info = info_from_row(row)
    contact_ids = await _contacts(services, run, row)
    progress = notify.ProgressReply(services, info)
    await progress(f"gathering {len(contact_ids)} contact(s) from Mautic", force=True)
    assert row.subject_email is not None
    path = Path(settings.export_dir) / f"request-{row.id}-{secrets.token_hex(8)}.zip.sealed"
    # A resumed attempt rebuilds the package: it is one consistent snapshot, and a partial file is discarded.
    result = await build_access_package(
        services.mautic, path=path, secret=seal_secret(services),
        request={"id": row.id, "type": "access", "regime": row.regime, "received_at": row.received_at.isoformat(),
                 "received_on": row.received_on.isoformat() if row.received_on else None,
                 "due_date": row.due_date.isoformat()},
        email=row.subject_email, contact_ids=contact_ids, bot_holdings=await _bot_holdings(services, row),
        policy=services.policy.access,
        generated_at=services.clock(), progress=progress,
    )
    counts = {"contacts": [asdict(c) for c in result.contacts], "bot_items": result.bot_items,
              "timeline_events": result.timeline_events, "size": result.size}
    await progress(f"package sealed ({result.size:,} bytes); delivering", force=True)
    if settings.export_delivery == "slack":
        await _deliver_by_upload(services, info, result.path)
        async with unit_of_work(services.sessions) as session:
            await _complete(services, row, {"delivery": "slack", **counts}, session=session)
            await ledger.record(session, actor=BOT, action="export.uploaded", subject=info.ref,
                                details={"size": result.size})
        link, expires = None, None
    else:
        token = secrets.token_urlsafe(32)
        now = services.clock()
        expires = now + settings.export_link_ttl
        async with unit_of_work(services.sessions) as session:
            link_row = await store.add_export_link(session, store.ExportLink(
                request_id=row.id or 0, token_hash=token_hash(token), path=str(result.path), size=result.size,
                created_at=now, expires_at=expires))
            await ledger.record(session, actor=BOT, action="export.created", subject=info.ref,
                                details={"link": link_row.id, "expires_at": expires.isoformat(), "size": result.size})
            await _complete(services, row, {"delivery": "link", "link_id": link_row.id, **counts}, session=session)
        link = f"{settings.external_url}/exports/{token}"
    done = await notify.refresh_message(services, row.id or 0, best_effort=True)
    await notify.post_in_thread(services, done or info, blocks.access_done_reply(
        info, link=link, expires=expires, counts=counts, uploaded=link is None), best_effort=True)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _deliver_by_upload(services: Services, info: RequestInfo, path: Path) -> None:
    """EXPORT_DELIVERY=slack: decrypt in memory, upload into the request's thread, delete the sealed file.

    The Slack SDK holds a whole upload in memory whatever it is given, so the plain package never needs to
    touch the disk. The sealed file goes whatever happens: a retried job builds a fresh package.
    """
    try:
        package = bytearray()
        async for chunk in read_sealed(path, seal_secret(services)):
            package += chunk
        await services.messenger.upload(
            info.channel, thread_ts=info.message_ts, content=bytes(package),
            filename=f"access-request-{info.id}.zip", title=f"Access package, request #{info.id}")
    finally:
        await asyncio.to_thread(_unlink, path)


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)


# ---- erasure ---------------------------------------------------------------------------------------


async def _leftovers(services: Services, contact_id: int) -> dict[str, int | None]:
    """Rows Mautic keeps after the delete with lead_id emptied; counted first so the report can name them
    (None: the instance does not expose that table through its stats API, so nobody can count it here)."""
    counts: dict[str, int | None] = {}
    for table in LEFTOVER_TABLES:
        try:
            counts[table] = len(await services.mautic.get_stats(table, [Where("lead_id", "eq", contact_id)]))
        except MauticRefused as exc:
            if exc.type != "stats_table_unavailable":
                raise  # a stats error is not "no rows": stop before deleting rather than under-report
            counts[table] = None  # not exposed on this instance: "unknown", which is not "none"
    return counts


async def _execute_erasure(services: Services, run: JobRun, row: store.PrivacyRequest) -> None:
    info = info_from_row(row)
    if not run.progress.get("purged"):
        contact_ids = await _contacts(services, run, row)
        deleted: list[int] = list(run.progress.get("deleted", []))
        leftovers: dict[str, dict[str, int | None]] = dict(run.progress.get("leftovers", {}))
        for cid in contact_ids:
            if cid in deleted:
                continue
            leftovers[str(cid)] = await _leftovers(services, cid)
            try:
                await services.mautic.delete_contact(cid)  # False = already gone, which is what we want
            except ContactMerged as merged:
                # Mautic would have deleted the contact it was merged into: stop, and look up afresh on Retry.
                run.progress.pop("contacts", None)
                await _checkpoint(run, deleted=deleted, leftovers=leftovers)
                raise PermanentJobError(
                    f"contact #{cid} was merged into #{merged.survivor.id} since the lookup; nothing was deleted "
                    "for it. Check the merged record in Mautic, then press Retry.") from None
            deleted.append(cid)
            await _checkpoint(run, deleted=deleted, leftovers=leftovers)
            async with unit_of_work(services.sessions) as session:
                await ledger.record(session, actor=BOT, action="mautic.contact_deleted", subject=info.ref,
                                    details={"contact_id": cid})
        # Confirm each is gone, and that no contact with the address appeared meanwhile.
        still = [cid for cid in deleted if await services.mautic.get_contact(cid) is not None]
        assert row.subject_email is not None
        newcomers = [c.id for c in await services.mautic.find_contacts_by_email(row.subject_email)
                     if normalise_email(c.email or "") == row.subject_email]
        if still or newcomers:
            await _checkpoint(run, contacts=sorted({*deleted, *still, *newcomers}), deleted=[
                cid for cid in deleted if cid not in still])
            raise RetryableJobError(f"{len(still) + len(newcomers)} contact(s) still present after the delete")
        purged = await _purge_local(services, row, run)
        await _checkpoint(run, purged=purged, deleted=deleted, leftovers=leftovers)
    deleted = [int(i) for i in run.progress.get("deleted", [])]
    leftovers = run.progress.get("leftovers", {})
    purged = run.progress.get("purged", {})
    if "redacted" not in run.progress:
        redacted = await _redact_slack(services, row, run.progress.get("messages", []))
        await _checkpoint(run, redacted=redacted)
    async with unit_of_work(services.sessions) as session:
        won = await _complete(services, row, {"deleted": deleted, "contacts": len(deleted), "purged": purged,
                                              "redacted": run.progress.get("redacted", 0)}, session=session)
    if not won:
        return
    done = await notify.refresh_message(services, row.id or 0, best_effort=True) or info
    await notify.post_in_thread(services, done, blocks.erasure_done_reply(
        done, deleted=deleted, purged=purged, redacted=int(run.progress.get("redacted", 0))), best_effort=True)
    await notify.post_in_thread(services, done, blocks.leftovers_reply(leftovers), best_effort=True)


async def _purge_local(services: Services, row: store.PrivacyRequest, run: JobRun) -> dict[str, int]:
    """One transaction: the intake feature's records, this feature's own copies, package files; then
    only the keyed hash, request ids, dates and decisions remain."""
    now = services.clock()
    purged: dict[str, int] = {}
    files: list[str] = []
    messages: list[list[str]] = []
    async with unit_of_work(services.sessions) as session:
        # Read before purge_subject anonymises the alerts.
        messages.extend([channel, ts] for channel, ts in await intake.subject_messages(session, row.subject_hash))
        requests = await store.requests_for_subject(session, row.subject_hash)
        for other in requests:
            if other.message_ts:
                messages.append([other.channel, other.message_ts, f"request:{other.id}"])
            messages.extend([other.channel, ts] for ts in other.pii_messages or [])
        # Events still inside deliveries not split yet must go too: split them here, in this transaction.
        await split_all_pending(session, hash_key=services.hash_key,
                                max_events=services.settings.max_events_per_delivery)
        purged.update(await intake.purge_subject(session, row.subject_hash))
        ids = await store.purge_subject_requests(session, row.subject_hash)
        purged["requests"] = len(ids)
        for link in await store.links_for_requests(session, ids):
            if link.path:
                files.append(link.path)
            await store.forget_link_file(session, link.id or 0, revoke_at=now)
        purged["access_packages"] = len(files)
        await erasures.record_erasure(session, subject_hash=row.subject_hash, request_id=row.id or 0,
                                      received_at=row.received_at, erased_at=now)
        await ledger.record(session, actor=BOT, action="request.local_purge", subject=f"request:{row.id}",
                            details={"subject": f"subject:{row.subject_hash[:16]}", **purged})
    for name in files:
        _unlink(Path(name))
    await _checkpoint(run, messages=messages)
    return purged


async def _redact_slack(services: Services, row: store.PrivacyRequest, messages: list[list[str]]) -> int:
    """Rewrite the bot's earlier messages about the subject: request messages are redrawn (the subject now
    shows as erased), anything else that carried personal values is replaced by a redaction notice."""
    count = 0
    for entry in messages:
        channel, ts = entry[0], entry[1]
        if len(entry) > 2 and entry[2].startswith("request:"):
            ok = await notify.refresh_message(services, int(entry[2].split(":")[1]), best_effort=True) is not None
        else:
            ok = await services.messenger.update(channel, ts, **blocks.redacted_notice(row.id), best_effort=True)
        count += ok
    return count


# ---- rectification ---------------------------------------------------------------------------------


def _value(contact: Any, field_name: str) -> Any:
    return contact.fields_all.get(field_name) if contact is not None else None


def _same(requested: str, actual: Any) -> bool:
    if requested == "":
        return actual in (None, "")
    return actual is not None and str(actual).strip().lower() == requested.strip().lower()


async def _execute_rectification(services: Services, run: JobRun, row: store.PrivacyRequest) -> None:
    info = info_from_row(row)
    changes: dict[str, str] = {str(k): str(v) for k, v in (row.changes or {}).items()}
    if not changes and "rows" not in run.progress:
        raise PermanentJobError("the request holds no changes to apply")
    contact_ids = await _contacts(services, run, row)
    new_email = changes.get("email")
    if new_email and "rows" not in run.progress:
        # The email-merge trap (mautic.md §2.6): a PATCH that gives a contact an address another contact
        # holds merges the two and deletes one. Refuse instead of losing a record.
        if len(contact_ids) > 1:
            raise PermanentJobError(f"{len(contact_ids)} contacts share the current address; changing the email "
                                    "on all of them would merge them into one. Merge or delete duplicates in "
                                    "Mautic first, then press Retry.")
        holders = [c.id for c in await services.mautic.find_contacts_by_email(new_email) if c.id not in contact_ids]
        if holders:
            raise PermanentJobError(f"the new address already belongs to contact #{holders[0]}; Mautic would merge "
                                    "the two contacts. Resolve the duplicate in Mautic first, then press Retry.")
    rows: list[dict[str, Any]] = list(run.progress.get("rows", []))
    done_ids = {r["id"] for r in rows}
    overwrite = any(v == "" for v in changes.values())  # only then may Mautic write blanks
    for cid in contact_ids:
        if cid in done_ids:
            continue
        before = await services.mautic.get_contact(cid)
        if before is None:
            rows.append({"id": cid, "changes": [], "missing": True})
            continue
        try:
            await services.mautic.patch_contact(cid, dict(changes), overwrite_with_blank=overwrite)
        except ContactMerged as merged:
            raise PermanentJobError(f"Mautic merged contact #{cid} into #{merged.survivor.id} while applying the "
                                    "change; check both records in Mautic.") from None
        after = await services.mautic.get_contact(cid)
        rows.append({"id": cid, "changes": [
            {"field": f, "before": _value(before, f), "after": _value(after, f), "applied": _same(v, _value(after, f))}
            for f, v in sorted(changes.items())]})
        await _checkpoint(run, rows=rows)
        async with unit_of_work(services.sessions) as session:
            await ledger.record(session, actor=BOT, action="mautic.contact_rectified", subject=info.ref,
                                details={"contact_id": cid, "fields": sorted(changes)})
    reply_ts = await notify.post_in_thread(
        services, info, blocks.rectification_reply(info, [r for r in rows if not r.get("missing")]), best_effort=True)
    not_applied = sum(1 for r in rows for c in r["changes"] if not c["applied"])
    async with unit_of_work(services.sessions) as session:
        if reply_ts:
            # Remember the reply that shows values, so a later erasure of this person can redact it.
            await store.set_fields(session, row.id or 0, {"pii_messages": [*(row.pii_messages or []), reply_ts]})
        await _complete(services, row, {"contacts": len(rows), "fields": sorted(changes),
                                        "not_applied": not_applied}, session=session)
    # The values were needed only to show them once; the job row should not keep them.
    await run.checkpoint({"rows": [{"id": r["id"]} for r in rows], "contacts": contact_ids})
    await notify.refresh_message(services, row.id or 0, best_effort=True)


# ---- opt-out of sale/sharing (CPRA) ----------------------------------------------------------------

OPT_OUT_TAG = "do-not-sell-share"
OPT_OUT_COMMENT = "CCPA opt-out of sale/sharing"
RESTRICT_TAG = "restricted"
RESTRICT_COMMENT = "Art. 18 restriction"


async def _execute_marking(services: Services, run: JobRun, row: store.PrivacyRequest, *, comment: str,
                           tag: str) -> None:
    """Opt-out and restriction: Do-Not-Contact for email (reason 3, manual) and a tag on every exact match.
    Both calls are idempotent in Mautic (a second DNC updates the record, a present tag is kept), so a
    resumed job simply repeats the contacts not yet checkpointed."""
    info = info_from_row(row)
    contact_ids = await _contacts(services, run, row)
    done: list[int] = [int(i) for i in run.progress.get("opted_out", [])]
    for cid in contact_ids:
        if cid in done:
            continue
        await services.mautic.add_dnc(cid, "email", reason=3, comments=comment)
        # Mautic's contact edit adds the listed tags and keeps the others (LeadModel::modifyTags).
        await services.mautic.patch_contact(cid, {"tags": [tag]}, overwrite_with_blank=False)
        done.append(cid)
        await _checkpoint(run, opted_out=done)
        async with unit_of_work(services.sessions) as session:
            await ledger.record(session, actor=BOT, action=f"mautic.contact_{info.kind.value}", subject=info.ref,
                                details={"contact_id": cid, "dnc": "email", "tag": tag})
    await notify.post_in_thread(services, info, blocks.marking_done_reply(info, done, tag), best_effort=True)
    async with unit_of_work(services.sessions) as session:
        # A restriction keeps the address until it is lifted: the lift must find nothing else but these ids.
        await _complete(services, row, {"contacts": len(done), "marked": done}, session=session)
    await notify.refresh_message(services, row.id or 0, best_effort=True)


async def lift(services: Services, run: JobRun) -> None:
    """Lift a restriction: remove the DNC and the tag it set, on the contacts it set them on."""
    row = await _row(services, int(run.payload["request_id"]))
    info = info_from_row(row)
    contact_ids = [int(i) for i in (row.result or {}).get("marked", [])]
    for cid in contact_ids:
        if await services.mautic.get_contact(cid) is None:
            continue  # gone since (erased or merged): nothing left to lift
        await services.mautic.remove_dnc(cid, "email")
        await services.mautic.patch_contact(cid, {"tags": [f"-{RESTRICT_TAG}"]}, overwrite_with_blank=False)
        async with unit_of_work(services.sessions) as session:
            await ledger.record(session, actor=BOT, action="mautic.contact_restriction_lifted", subject=info.ref,
                                details={"contact_id": cid})
    await notify.post_in_thread(services, info, blocks.lifted_reply(info, contact_ids), best_effort=True)
    await notify.refresh_message(services, row.id or 0, best_effort=True)


# ---- the daily sweep -------------------------------------------------------------------------------


async def daily(services: Services, run: JobRun) -> None:
    """Lapse stale approvals, re-announce due-soon and overdue requests once a day, expire package files."""
    now = services.clock()
    async with unit_of_work(services.sessions) as session:
        approved = await store.requests_in_state(session, RequestState.APPROVED.value)
    for row in approved:
        if row.approved_at is not None and services.approvals.lapsed(row.approved_at, now):
            await lapse(services, row)
    await remind(services, now)
    await expire_files(services, now)


async def remind(services: Services, now: datetime) -> int:
    from bot.requests.deadlines import Urgency, countdown, received_on

    today = received_on(now, services.settings.deadline_timezone)
    sent = 0
    async with unit_of_work(services.sessions) as session:
        rows = await store.open_requests(session)
    for row in rows:
        if (countdown(row.due_date, today).urgency is Urgency.ON_TIME or not row.message_ts
                or not info_from_row(row).awaiting_answer):  # a restriction in force, already answered
            continue
        async with unit_of_work(services.sessions) as session:
            claimed = await store.mark_reminded(session, row.id or 0, today)
        if not claimed:
            continue  # already re-announced today (another replica, or an earlier run)
        info = await notify.refresh_message(services, row.id or 0, best_effort=True) or info_from_row(row)
        await notify.post_in_thread(services, info, blocks.reminder_reply(info, today), best_effort=True)
        sent += 1
    return sent


async def expire_files(services: Services, now: datetime) -> int:
    async with unit_of_work(services.sessions) as session:
        links = await store.expired_links_with_files(session, now)
        for link in links:
            await store.forget_link_file(session, link.id or 0)
    for link in links:
        _unlink(Path(link.path))
    return len(links)
