"""Consent evidence: the form revision each consent record was collected under, and what follows from it.

A consent record proves what the person agreed to only with the form as it stood (Art. 7(1); Planet49,
C-673/17): the consent box's label text, a hash of the form's definition and the definition itself, once
per revision (:mod:`storage.forms`). The ``consent.evidence`` job attaches them to new records a moment
after intake processed them: it asks Mautic, so it never runs in the webhook's request path nor inside
the processing transaction. A submission processed and attached within seconds is attributed to the
revision Mautic reports then; an edit landing in exactly that window is the one case it can misattribute.

The form audit judges every revision it sees, and the evidence job judges each new one, with the same
rule (:func:`bot.digests.forms.is_prechecked`): consent given under a revision whose consent box was
pre-ticked is marked invalid (Recital 32) and counted in the compliance digest.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.digests.forms import consent_aliases, consent_fields_of, is_prechecked
from bot.mautic import form_revision
from storage import forms as store
from storage import ledger
from storage.db import unit_of_work

if TYPE_CHECKING:
    from bot.jobs import JobRun
    from bot.services import Services

log = logging.getLogger(__name__)

ACTOR = "consent-evidence"
EVIDENCE_KIND = store.EVIDENCE_JOB
FORMS_PER_RUN = 50
RECORD_CHUNK = 200  # records given their evidence per transaction
RECORD_CHUNKS_PER_FORM = 25  # then the job queues itself again, so one busy form cannot hold a run forever
# Who created or edited the form in Mautic: staff data, not what the visitor saw; left out of the stored
# definition and its hash (so is the render cache's lock state).
_NOT_SHOWN = frozenset({"createdBy", "createdByUser", "modifiedBy", "modifiedByUser", "checkedOut",
                        "checkedOutBy", "checkedOutByUser"})


def definition_of(form: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in form.items() if key not in _NOT_SHOWN}


def definition_hash(definition: Mapping[str, Any]) -> str:
    """SHA-256 over canonical JSON (sorted keys, no spaces): the same definition always hashes alike."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _option_labels(properties: Any) -> list[str]:
    """The labels next to a choice field's boxes (`properties.optionlist.list`: {label, value} entries, a
    value → label map, or bare values), as the visitor read them."""
    if not isinstance(properties, Mapping):
        return []
    container = properties.get("optionlist") or properties.get("list")
    options = container.get("list") if isinstance(container, Mapping) else container
    if isinstance(options, Mapping):
        return [_plain(label) for label in options.values() if _plain(label)]
    labels = []
    for option in options if isinstance(options, list) else []:
        label = option.get("label", option.get("value")) if isinstance(option, Mapping) else option
        if _plain(label):
            labels.append(_plain(label))
    return labels


def consent_labels(form: Mapping[str, Any], aliases: Iterable[str]) -> dict[str, str]:
    """{consent field alias: the text shown with it}: the field's label, then its boxes' labels."""
    out: dict[str, str] = {}
    for field in consent_fields_of(form, aliases):
        alias = str(field.get("alias") or "").lower()
        if not alias:
            continue
        label = _plain(field.get("label"))
        options = _option_labels(field.get("properties"))
        text = f"{label}: {' / '.join(options)}" if label and options else label or " / ".join(options)
        out[alias] = text[:2000]
    return out


def revision_row(form: Mapping[str, Any], aliases: Sequence[str], now: datetime) -> dict[str, Any]:
    """The values of a form revision's row, judged by the audit's pre-ticked rule."""
    definition = definition_of(form)
    return {
        "form_id": int(form["id"]), "revision": form_revision(form), "name": _plain(form.get("name"))[:255],
        "definition_hash": definition_hash(definition), "definition": definition,
        "consent_labels": consent_labels(form, aliases),
        "prechecked": any(is_prechecked(f) for f in consent_fields_of(form, aliases)), "fetched_at": now,
    }


def label_for(labels: Mapping[str, str], fields: Sequence[str]) -> str | None:
    """The label text of the consent fields a record was judged by; None when the form has none of them."""
    texts = [labels[a.lower()] for a in fields if a.lower() in labels and labels[a.lower()]]
    return "; ".join(dict.fromkeys(texts))[:2000] or None


def aliases_for(services: Services, form: Mapping[str, Any]) -> list[str]:
    """The consent field aliases the policy names for this form (the settings' list otherwise)."""
    raw_id = form.get("id")
    rule = services.policy.consent.rule_for(int(raw_id) if raw_id is not None else None, form.get("alias"))
    return consent_aliases(rule.fields) or consent_aliases(services.settings.consent_fields)


async def _invalidate(session: Any, revision: store.FormRevision, now: datetime, *, found_by: str) -> int:
    assert revision.id is not None
    changed = await store.invalidate_prechecked(session, [revision.id], now=now)
    if changed:
        await ledger.record(session, actor=ACTOR, action="consent.records_invalidated",
                            subject=f"form:{revision.form_id}",
                            details={"revision": revision.revision, "definition_hash": revision.definition_hash,
                                     "records": changed, "invalid_reason": store.PRECHECKED, "found_by": found_by})
        log.info("consent evidence: %d record(s) of form %s invalid (pre-ticked box)", changed, revision.form_id)
    return changed


async def attach_form_evidence(services: Services, run: JobRun) -> None:
    """Job ``consent.evidence``: give records waiting for evidence their form revision, fetching each
    revision's definition from Mautic once (a cheap look-up of the forms' revisions comes first)."""
    async with unit_of_work(services.sessions) as session:
        form_ids = await store.forms_awaiting_evidence(session, limit=FORMS_PER_RUN)
    if not form_ids:
        return
    revisions = await services.mautic.form_revisions(form_ids)
    more = len(form_ids) >= FORMS_PER_RUN
    for form_id in form_ids:
        key = revisions.get(form_id)
        async with unit_of_work(services.sessions) as session:
            cached = await store.revision(session, form_id, key) if key is not None else None
        form = await services.mautic.get_form(form_id) if key is not None and cached is None else None
        now = services.clock()
        async with unit_of_work(services.sessions) as session:
            if form is not None and form.get("id") is not None:
                cached = await store.store_revision(session, revision_row(form, aliases_for(services, form), now))
        labels = cached.consent_labels if cached is not None else {}
        for _chunk in range(RECORD_CHUNKS_PER_FORM):
            # Chunk by chunk, each its own transaction: a thousand records read and updated at once held
            # the event loop for over 100 ms (bench/README.md, hostile load).
            async with unit_of_work(services.sessions) as session:
                pending = await store.pending_records(session, form_id, limit=RECORD_CHUNK)
                by_label: dict[str | None, list[int]] = {}
                for record_id, fields in pending:
                    by_label.setdefault(label_for(labels, fields), []).append(record_id)
                # A form gone from Mautic has no revision to show: its records keep what intake stored.
                for label, ids in by_label.items():
                    await store.attach_evidence(session, ids, revision_row=cached, label_text=label, now=now)
                if cached is not None and cached.prechecked and pending:
                    await _invalidate(session, cached, now, found_by="consent evidence")
            if len(pending) < RECORD_CHUNK:
                break
        else:
            more = True
    if more:
        async with unit_of_work(services.sessions) as session:
            await store.request_evidence(session)
        services.jobs.notify()


async def judge_revisions(services: Services, forms: Iterable[Mapping[str, Any]]) -> int:
    """The form audit's side: store the revision of every form it read (a cache the evidence job then need
    not fetch) and invalidate the consent collected under any revision with a pre-ticked box (the evidence
    job may have done so already; a policy naming a further consent field makes the audit the first).
    Returns how many consent records collected under the pre-ticked revisions read are invalid."""
    now = services.clock()
    invalid = 0
    async with unit_of_work(services.sessions) as session:
        for form in forms:
            if form.get("id") is None or "fields" not in form:
                continue
            stored = await store.store_revision(session, revision_row(form, aliases_for(services, form), now))
            if stored.prechecked and stored.id is not None:
                await _invalidate(session, stored, now, found_by="form audit")
                invalid += await store.invalid_under(session, stored.id)
    return invalid
