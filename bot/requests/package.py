"""The access package (Art. 15 and 20): ``data.json`` (complete, machine-readable) and ``summary.html``
(what is held and why, for a person), zipped and sealed on disk as it is gathered.

Nothing is held in memory beyond one page of Mautic's answers and one sealed chunk: the timeline is
written event by event into a streaming zip entry whose bytes go straight into :class:`SealedWriter`.
"""

from __future__ import annotations

import html
import json
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

from bot.policy import AccessPolicy
from bot.requests import law
from bot.requests.sealed import SealedWriter

FORMAT = "mautic-privacy-bot/access-package/1"
TIMELINE_PAGE = 200
DRAIN_EVERY = 500  # events between moves of sealed bytes to disk
PROGRESS_EVERY = 10_000  # events between progress reports

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
    notes: int = 0
    devices: int = 0
    timeline: int = 0


@dataclass
class PackageResult:
    path: Path
    size: int
    contacts: list[ContactCounts] = field(default_factory=list)
    bot_items: dict[str, int] = field(default_factory=dict)

    @property
    def timeline_events(self) -> int:
        return sum(c.timeline for c in self.contacts)


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":")).encode()


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
) -> PackageResult:
    """Gather everything about the subject and write the sealed zip at ``path``."""
    sink = await SealedWriter(path, secret).open()
    result = PackageResult(path=path, size=0)
    try:
        with zipfile.ZipFile(sink, mode="w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as archive:  # type: ignore[call-overload]
            with archive.open("data.json", mode="w", force_zip64=True) as out:
                await _write_data(mautic, out, sink, result, request=request, email=email,
                                  contact_ids=contact_ids, bot_holdings=bot_holdings,
                                  generated_at=generated_at, progress=progress)
            await sink.drain()
            with archive.open("summary.html", mode="w") as out:
                out.write(render_summary(result, request=request, policy=policy, generated_at=generated_at).encode())
        await sink.close()
    except BaseException:
        await sink.abort()
        raise
    result.size = sink.size
    return result


async def _write_data(
    mautic: MauticReader, out: IO[bytes], sink: SealedWriter, result: PackageResult, *,
    request: dict[str, Any], email: str, contact_ids: list[int], bot_holdings: dict[str, Any],
    generated_at: datetime, progress: Progress | None,
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
        result.contacts.append(counts)
        await _write_contact(mautic, out, sink, counts, progress)
        await sink.drain()
    out.write(b"]}")
    out.write(b',"bot":' + _dump(bot_holdings))
    for key, value in bot_holdings.items():
        result.bot_items[key] = len(value) if isinstance(value, list | dict) else 1
    out.write(b"}")


async def _write_contact(
    mautic: MauticReader, out: IO[bytes], sink: SealedWriter, counts: ContactCounts, progress: Progress | None
) -> None:
    contact = await mautic.get_contact(counts.id)
    if contact is None:
        # Deleted or merged away between the lookup and now: say so rather than silently skip.
        counts.found = False
        out.write(_dump({"id": counts.id, "status": "no longer in Mautic"}))
        return
    raw = dict(contact.raw)
    all_fields = (raw.get("fields") or {}).get("all") if isinstance(raw.get("fields"), dict) else None
    counts.fields = len(all_fields) if isinstance(all_fields, dict) else 0
    counts.dnc = len(contact.dnc)
    segments = await mautic.get_segments(counts.id)
    campaigns = await mautic.get_campaigns(counts.id)
    companies = await mautic.get_companies(counts.id)
    notes = await mautic.get_notes(counts.id)
    devices = await mautic.get_devices(counts.id)
    counts.segments, counts.campaigns, counts.companies = len(segments), len(campaigns), len(companies)
    counts.notes, counts.devices = len(notes), len(devices)
    out.write(b'{"id":' + _dump(counts.id))
    out.write(b',"profile":' + _dump(raw))
    out.write(b',"do_not_contact":' + _dump(contact.dnc))
    out.write(b',"segments":' + _dump(segments))
    out.write(b',"campaigns":' + _dump(campaigns))
    out.write(b',"companies":' + _dump(companies))
    out.write(b',"notes":' + _dump(notes))
    out.write(b',"devices":' + _dump(devices))
    out.write(b',"timeline":[')
    del raw, segments, campaigns, companies, notes, devices
    async for event in mautic.iter_activity(counts.id, page_size=TIMELINE_PAGE):
        if counts.timeline:
            out.write(b",")
        out.write(_dump(event))
        counts.timeline += 1
        if counts.timeline % DRAIN_EVERY == 0:
            await sink.drain()
        if progress is not None and counts.timeline % PROGRESS_EVERY == 0:
            await progress(f"contact {counts.id}: {counts.timeline:,} timeline events gathered so far")
    out.write(b'],"timeline_total":' + _dump(counts.timeline) + b"}")


def _list(items: list[str]) -> str:
    return "<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in items) + "</ul>"


def render_summary(
    result: PackageResult, *, request: dict[str, Any], policy: AccessPolicy, generated_at: datetime
) -> str:
    """The human-readable half of the package: Art. 15(1)(a) to (h) and 15(3), in plain language."""
    e = html.escape
    rows = []
    for c in result.contacts:
        if not c.found:
            rows.append(f"<tr><td>{c.id}</td><td colspan='8'>no longer in Mautic</td></tr>")
            continue
        rows.append(
            f"<tr><td>{c.id}</td><td>{c.fields}</td><td>{c.dnc}</td><td>{c.segments}</td><td>{c.campaigns}</td>"
            f"<td>{c.companies}</td><td>{c.notes}</td><td>{c.devices}</td><td>{c.timeline:,}</td></tr>"
        )
    held = (
        "<table><tr><th>Contact record</th><th>Profile fields</th><th>Do-Not-Contact</th><th>Segments</th>"
        "<th>Campaigns</th><th>Companies</th><th>Notes</th><th>Devices</th><th>Timeline events</th></tr>"
        + "".join(rows) + "</table>"
        if rows else "<p>We found no contact record with your email address in our marketing system.</p>"
    )
    bot_lines = [f"{e(k.replace('_', ' '))}: {n}" for k, n in result.bot_items.items()]
    title = f"Your personal data: access request #{e(str(request.get('id')))}"
    received = e(str(request.get("received_on") or request.get("received_at", ""))[:10])
    regime = str(request.get("regime") or "gdpr")  # the request's own regime names the law it answers under
    rights = "".join(f"<li>{e(line)}</li>" for line in law.rights(regime, policy.authority))
    free = "(Cal. Civ. Code §1798.130(a)(2))" if regime == "ccpa" else "(Art. 15(3))"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;max-width:52em;margin:2em auto;line-height:1.45}}
table{{border-collapse:collapse}}td,th{{border:1px solid #999;padding:.2em .5em;text-align:left}}</style></head>
<body>
<h1>Your personal data</h1>
<p>This is our answer to your request for access ({e(law.access_basis(regime))}) received on
{received}, prepared on {e(generated_at.date().isoformat())} by {e(policy.controller)}.
The file <code>data.json</code> next to this page holds a complete copy of the data, in a structured,
machine-readable format you may take to another service{" (Art. 20)" if regime != "ccpa" else ""}.</p>
<h2>What we hold</h2>
{held}
<p>Records about you kept by our privacy tooling: {e(', '.join(bot_lines) or 'none')}.</p>
<h2>Why we process it (purposes)</h2>{_list(policy.purposes)}
<h2>Categories of data</h2>{_list(policy.categories)}
<h2>Who receives it (recipients)</h2>{_list(policy.recipients)}<p>{e(policy.transfers)}</p>
<h2>How long we keep it</h2><p>{e(policy.retention)}</p>
<h2>Where it came from</h2><p>{e(policy.source)}</p>
<h2>Automated decisions and profiling</h2><p>{e(policy.automated_decisions)}</p>
<h2>Your rights</h2>
<ul>{rights}</ul>
<p>Questions: contact {e(policy.contact)}. This first copy is free of charge {free}.</p>
</body></html>
"""
