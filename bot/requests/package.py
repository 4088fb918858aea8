"""The access package (Art. 15 and 20): ``data.json`` (everything gathered, machine-readable) and
``summary.html`` (the same data in an intelligible form for a person, Art. 12(1), with what is held and
why), zipped and sealed on disk as it is gathered.

Nothing is held in memory beyond one page of Mautic's answers, one sealed chunk and a bounded digest of
each contact for the summary (its profile and names, and the newest ``TIMELINE_ROWS`` timeline events with
a count per type): the timeline is written event by event into a streaming zip entry whose bytes go
straight into :class:`SealedWriter`.

Staff identities (the contact's owner, who created or modified a record) are other people's data and stay
out unless ``ACCESS_INCLUDE_STAFF=true``; notes are typed by staff and may name third parties, so they are
listed for review (Art. 15(4)) instead of being copied in unseen.
"""

from __future__ import annotations

import heapq
import json
import zipfile
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from bot.policy import AccessPolicy
from bot.requests.sealed import SealedWriter
from bot.requests.summary import ContactSummary, NoteForReview, TimelineRow, render_summary, timeline_row

FORMAT = "mautic-privacy-bot/access-package/2"
TIMELINE_PAGE = 200
DRAIN_EVERY = 500  # events between moves of sealed bytes to disk
PROGRESS_EVERY = 10_000  # events between progress reports
TIMELINE_ROWS = 100  # newest timeline events shown as rows in summary.html; all of them are in data.json

# Keys that name a member of staff rather than the subject (Mautic's FormEntity serializer groups and the
# contact's ``owner``, mautic.md §1.3 and §2.3; company rows carry ``owner_id``).
STAFF_KEYS = frozenset({"owner", "owner_id", "createdBy", "createdByUser", "modifiedBy", "modifiedByUser",
                        "checkedOut", "checkedOutBy", "checkedOutByUser"})

# What no package built through Mautic's REST API and the bot's store can hold (mautic.md §3.4, §3.6, §3.7);
# said in data.json and summary.html so nobody takes the package for more than it is.
NOT_INCLUDED = [
    "Mautic's audit log (who changed your record, with the values before and after): Mautic shows it only in "
    "its own screens and offers no API for it.",
    "Campaigns that are unpublished, or that the account this tool uses may not see: Mautic's API lists only "
    "published campaigns that account may view.",
    "The raw statistics rows (each email sent, page hit and form result with its stored values) beyond what "
    "the activity timeline shows.",
    "Mautic's webhook logs, server log files and backups, which keep copies for a limited time.",
    "Data the recipients named on this page hold in their own systems (for example an email delivery "
    "provider).",
]

Progress = Callable[[str], Awaitable[None]]


class ContactLike(Protocol):
    id: int
    raw: dict[str, Any]
    dnc: list[dict[str, Any]]


class MauticReader(Protocol):
    async def get_contact(self, contact_id: int) -> Any: ...
    async def get_segments(self, contact_id: int) -> list[dict[str, Any]]: ...
    async def get_campaigns(self, contact_id: int) -> list[dict[str, Any]]: ...
    async def get_companies(self, contact_id: int) -> list[dict[str, Any]]: ...
    async def get_notes(self, contact_id: int) -> list[dict[str, Any]]: ...
    async def get_devices(self, contact_id: int) -> list[dict[str, Any]]: ...
    def iter_activity(self, contact_id: int, page_size: int = ...) -> Any: ...


@dataclass
class ContactCounts:
    id: int
    found: bool = True
    fields: int = 0
    dnc: int = 0
    segments: int = 0
    campaigns: int = 0
    companies: int = 0
    notes: int = 0  # listed for review, not copied in
    devices: int = 0
    timeline: int = 0


@dataclass
class PackageResult:
    path: Path
    size: int
    contacts: list[ContactCounts] = field(default_factory=list)
    bot_items: dict[str, int] = field(default_factory=dict)
    summaries: list[ContactSummary] = field(default_factory=list)  # bounded: what summary.html shows

    @property
    def timeline_events(self) -> int:
        return sum(c.timeline for c in self.contacts)

    @property
    def notes_for_review(self) -> list[NoteForReview]:
        return [note for summary in self.summaries for note in summary.notes]


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")).encode()


def without_staff(value: Any) -> Any:
    """``value`` with every staff key removed, at any depth."""
    if isinstance(value, dict):
        return {k: without_staff(v) for k, v in value.items() if k not in STAFF_KEYS}
    if isinstance(value, list):
        return [without_staff(v) for v in value]
    return value


async def build_access_package(
    mautic: MauticReader,
    *,
    path: Path,
    secret: str,
    request: dict[str, Any],
    email: str,
    contact_ids: list[int],
    bot_holdings: dict[str, Any],
    policy: AccessPolicy,
    generated_at: datetime,
    progress: Progress | None = None,
    include_staff: bool = False,
) -> PackageResult:
    """Gather everything about the subject and write the sealed zip at ``path``."""
    sink = await SealedWriter(path, secret).open()
    result = PackageResult(path=path, size=0)
    try:
        with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:  # type: ignore[call-overload]
            with archive.open("data.json", mode="w", force_zip64=True) as out:
                await _write_data(mautic, out, sink, result, request=request, email=email,
                                  contact_ids=contact_ids, bot_holdings=bot_holdings,
                                  generated_at=generated_at, progress=progress, include_staff=include_staff)
            await sink.drain()
            with archive.open("summary.html", mode="w") as out:
                out.write(render_summary(result.summaries, request=request, policy=policy,
                                         generated_at=generated_at, bot_holdings=bot_holdings,
                                         not_included=NOT_INCLUDED).encode())
        await sink.close()
    except BaseException:
        await sink.abort()
        raise
    result.size = sink.size
    return result


async def _write_data(
    mautic: MauticReader, out: IO[bytes], sink: SealedWriter, result: PackageResult, *,
    request: dict[str, Any], email: str, contact_ids: list[int], bot_holdings: dict[str, Any],
    generated_at: datetime, progress: Progress | None, include_staff: bool,
) -> None:
    out.write(b'{"format":' + _dump(FORMAT))
    out.write(b',"generated_at":' + _dump(generated_at.isoformat()))
    out.write(b',"request":' + _dump(request))
    out.write(b',"subject":' + _dump({"email": email}))
    out.write(b',"mautic":{"contacts":[')
    for n, contact_id in enumerate(contact_ids):
        if n:
            out.write(b",")
        counts = ContactCounts(id=contact_id)
        summary = ContactSummary(id=contact_id)
        result.contacts.append(counts)
        result.summaries.append(summary)
        await _write_contact(mautic, out, sink, counts, summary, progress, include_staff=include_staff)
        await sink.drain()
    out.write(b"]}")
    out.write(b',"bot":' + _dump(bot_holdings))
    for key, value in bot_holdings.items():
        result.bot_items[key] = len(value) if isinstance(value, list | dict) else 1
    out.write(b',"staff_identities":' + _dump("included" if include_staff else "removed (GDPR Art. 15(4))"))
    out.write(b',"not_included":' + _dump(NOT_INCLUDED))
    out.write(b"}")


def _keep_all(value: Any) -> Any:
    return value


async def _write_contact(
    mautic: MauticReader, out: IO[bytes], sink: SealedWriter, counts: ContactCounts, summary: ContactSummary,
    progress: Progress | None, *, include_staff: bool,
) -> None:
    contact = await mautic.get_contact(counts.id)
    if contact is None:
        # Deleted or merged away between the lookup and now: say so rather than silently skip.
        counts.found = summary.found = False
        out.write(_dump({"id": counts.id, "status": "no longer in Mautic"}))
        return
    keep: Callable[[Any], Any] = _keep_all if include_staff else without_staff
    raw = keep(dict(contact.raw))
    all_fields = (raw.get("fields") or {}).get("all") if isinstance(raw.get("fields"), dict) else None
    counts.fields = len(all_fields) if isinstance(all_fields, dict) else 0
    counts.dnc = len(contact.dnc)
    segments = keep(await mautic.get_segments(counts.id))
    campaigns = keep(await mautic.get_campaigns(counts.id))
    companies = keep(await mautic.get_companies(counts.id))
    notes = await mautic.get_notes(counts.id)
    devices = keep(await mautic.get_devices(counts.id))
    counts.segments, counts.campaigns, counts.companies = len(segments), len(campaigns), len(companies)
    counts.notes, counts.devices = len(notes), len(devices)
    summary.take(raw, dnc=contact.dnc, segments=segments, campaigns=campaigns, companies=companies,
                 devices=devices, notes=notes)
    out.write(b'{"id":' + _dump(counts.id))
    out.write(b',"profile":' + _dump(raw))
    out.write(b',"do_not_contact":' + _dump(keep(contact.dnc)))
    out.write(b',"segments":' + _dump(segments))
    out.write(b',"campaigns":' + _dump(campaigns))
    out.write(b',"companies":' + _dump(companies))
    # Notes are written by staff and may name other people: listed, not copied, until someone reviewed them.
    out.write(b',"notes_for_review":' + _dump([note.as_json() for note in summary.notes]))
    out.write(b',"devices":' + _dump(devices))
    out.write(b',"timeline":[')
    del raw, segments, campaigns, companies, notes, devices
    newest: list[tuple[str, int, TimelineRow]] = []  # a min-heap: the newest TIMELINE_ROWS events
    by_type: Counter[str] = Counter()
    async for event in mautic.iter_activity(counts.id, page_size=TIMELINE_PAGE):
        if counts.timeline:
            out.write(b",")
        out.write(_dump(event))
        row = timeline_row(event)
        by_type[row.kind] += 1
        item = (row.when, counts.timeline, row)
        if len(newest) < TIMELINE_ROWS:
            heapq.heappush(newest, item)
        elif item[:2] > newest[0][:2]:
            heapq.heapreplace(newest, item)
        counts.timeline += 1
        if counts.timeline % DRAIN_EVERY == 0:
            await sink.drain()
        if progress is not None and counts.timeline % PROGRESS_EVERY == 0:
            await progress(f"contact {counts.id}: {counts.timeline:,} timeline events gathered so far")
    out.write(b'],"timeline_total":' + _dump(counts.timeline) + b"}")
    summary.timeline_total = counts.timeline
    summary.timeline_by_type = dict(by_type.most_common())
    summary.timeline_rows = [row for *_, row in sorted(newest, key=lambda i: i[:2], reverse=True)]
