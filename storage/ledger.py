"""The audit ledger: append-only, hash-chained, written through one function.

Each entry carries the hash of its predecessor, so an edited, deleted or reordered entry breaks
the chain and :func:`verify` names the first bad one. Entries never hold personal data: subjects
are referenced by opaque ids (``request:42``) or keyed hashes. Mautic contact ids count as personal data
(they point at the person in Mautic and its backups): :func:`record` replaces them by keyed refs
(:func:`contact_ref`) before hashing, so an auditor holding the key can still ask "was contact 42 deleted?".

The chain is keyed: each hash is an HMAC-SHA256 under a key derived from ``BOT_SECRET_KEY`` (HKDF), so
someone who can write the database but does not hold the key cannot rebuild a chain over edited entries.
The service, the CLI and migrations register the key for their engine with :func:`use_key`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Column, text
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import Field, SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.types import JSONType, UTCDateTime, utcnow

GENESIS = "0" * 64
# Keys whose values would be text a person typed (a reason, a note). The ledger can never be edited, so such
# text would outlive an erasure of the person it mentions: writers record ``reason_fields()`` instead, and
# :func:`record` refuses these keys outright so a new writer cannot slip one in.
FREE_TEXT_KEYS = frozenset({"reason", "note", "method_note", "comment", "comments", "text"})
# Details keys whose value names one Mautic contact (an id), and keys whose value is a list of them (an int
# under a plural key is a count and stays one). Any depth: {"contacts": [{"id": 41, ...}]} is covered too.
CONTACT_ID_KEYS = frozenset({"contact_id", "contact", "first_id", "last_id"})
CONTACT_LIST_KEYS = frozenset({"contact_ids", "contacts"})
# A clear id as the writers give it: "contact:42" (a ref is 16 hex characters, never confused with an id).
_CONTACT_SUBJECT = re.compile(r"contact:([0-9]{1,15})")  # fullmatch; linear
# Any constant works; it only has to be the same for every writer of this database.
_LEDGER_LOCK_ID = 0x5052_4956  # "PRIV"


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_ledger"

    seq: int = Field(primary_key=True)
    at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    actor: str = Field(max_length=64)
    action: str = Field(max_length=64, index=True)
    subject: str | None = Field(default=None, max_length=128, index=True)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSONType, nullable=False))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)


# HKDF's info string: this key is for the ledger chain only (the subject hash and package encryption
# derive their own from the same secret).
LEDGER_KEY_INFO = b"mautic-privacy-bot/audit-ledger/v1"
# Used only where no key was registered: tests that build an engine by hand. The service, `bot audit
# verify` and `bot migrate` always register the key derived from BOT_SECRET_KEY.
UNREGISTERED_KEY = b"\x00" * 32
_keys: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()


def derive_key(secret: str) -> bytes:
    """The ledger's HMAC key: HKDF-SHA256 of BOT_SECRET_KEY (RFC 5869, no salt: the secret is random)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=LEDGER_KEY_INFO).derive(secret.encode())


def use_key(engine: AsyncEngine, key: bytes) -> None:
    """Chain (and verify) this engine's ledger under ``key`` (from :func:`derive_key`)."""
    _keys[engine.sync_engine] = key


def registered_key(engine: AsyncEngine) -> bytes | None:
    return _keys.get(engine.sync_engine)


def _key_for(session: AsyncSession) -> bytes:
    bind = session.get_bind()
    engine = getattr(bind, "engine", bind)
    return _keys.get(engine, UNREGISTERED_KEY)


def entry_hash(
    *, seq: int, at: datetime, actor: str, action: str, subject: str | None,
    details: dict[str, Any], prev_hash: str, key: bytes,
) -> str:
    canonical = json.dumps(
        {
            "seq": seq,
            "at": at.isoformat(timespec="microseconds"),
            "actor": actor,
            "action": action,
            "subject": subject,
            "details": details,
            "prev": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
        default=str,
    )
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def reason_digest(key: str, text: str) -> str:
    """Keyed hash of a typed reason: proves later which text was given (whoever holds the text and the key can
    check it) without the ledger holding the text itself."""
    return hmac.new(key.encode(), b"reason:" + " ".join(text.split()).encode(), hashlib.sha256).hexdigest()


def reason_fields(key: str, text: str | None, *, name: str = "reason") -> dict[str, Any]:
    """What the ledger records about a typed text: that one was given and its keyed hash, never the text."""
    if not text:
        return {f"{name}_given": False}
    return {f"{name}_given": True, f"{name}_hash": reason_digest(key, text)}


def contact_ref(key: bytes, contact_id: int | str) -> str:
    """The ledger's name for Mautic contact ``contact_id``: the first 16 hex characters of
    HMAC-SHA256(ledger key, ``"contact:<id>"``). Without the key a ref cannot be turned back into an id; with it
    (``python -m bot audit contact 42``) anyone can find the entries about one contact."""
    return hmac.new(key, f"contact:{int(contact_id)}".encode(), hashlib.sha256).hexdigest()[:16]


def _is_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15)


def _contact_value(key: bytes, value: Any) -> Any:
    """One contact: an id becomes its ref; a dict describing a contact has its ``id`` replaced too."""
    if _is_id(value):
        return contact_ref(key, value)
    if isinstance(value, dict):
        return {k: _contact_value(key, v) if k == "id" else _without_ids(key, k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_contact_value(key, item) for item in value]
    return value


def _without_ids(key: bytes, name: str, value: Any) -> Any:
    if name in CONTACT_ID_KEYS:
        return _contact_value(key, value)
    if name in CONTACT_LIST_KEYS:
        return [_contact_value(key, item) for item in value] if isinstance(value, list) else value
    if isinstance(value, dict):
        return {k: _without_ids(key, k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_ids(key, "", item) for item in value]
    return value


def without_contact_ids(key: bytes, subject: str | None, details: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """``subject`` and ``details`` with every clear Mautic contact id replaced by its :func:`contact_ref`."""
    if subject is not None and (found := _CONTACT_SUBJECT.fullmatch(subject)):
        subject = f"contact:{contact_ref(key, found.group(1))}"
    return subject, {k: _without_ids(key, k, v) for k, v in details.items()}


async def record(
    session: AsyncSession,
    *,
    actor: str,
    action: str,
    subject: str | None = None,
    details: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> AuditEntry:
    """Append one entry inside the caller's transaction (the change and its record commit together)."""
    typed = FREE_TEXT_KEYS.intersection(details or {})
    if typed:
        raise ValueError(f"free text never enters the audit ledger (use reason_fields): {sorted(typed)}")
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        # Serialise appenders so two transactions never chain onto the same predecessor.
        connection = await session.connection()
        await connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LEDGER_LOCK_ID})
    last = (
        await session.exec(select(AuditEntry).order_by(AuditEntry.seq.desc()).limit(1))  # type: ignore[attr-defined]
    ).first()
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    key = _key_for(session)
    # Round-trip through JSON so the hash covers exactly what the database will return.
    subject, clean_details = without_contact_ids(key, subject, json.loads(json.dumps(details or {}, default=str)))
    when = at or utcnow()
    entry = AuditEntry(
        seq=seq,
        at=when,
        actor=actor,
        action=action,
        subject=subject,
        details=clean_details,
        prev_hash=prev,
        hash=entry_hash(
            seq=seq, at=when, actor=actor, action=action, subject=subject,
            details=clean_details, prev_hash=prev, key=key,
        ),
    )
    session.add(entry)
    await session.flush()
    return entry


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problem: str | None = None
    head_hash: str | None = None

    def describe(self) -> str:
        if self.ok:
            # The head hash, posted outside the database (digests, the CLI), lets a later reader tell
            # whether newest entries were cut off, which a chain alone cannot show.
            head = f", head {self.head_hash[:16]}" if self.head_hash else ""
            return f"ledger OK: {self.entries} entries, chain intact{head}"
        return f"ledger BROKEN at entry {self.first_bad_seq}: {self.problem}"


async def verify(session: AsyncSession, *, batch: int = 1000) -> VerifyResult:
    """Walk the chain in order and report the first entry that does not hold."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    after = 0
    key = _key_for(session)
    while True:
        rows = (
            await session.exec(
                select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)  # type: ignore[arg-type]
            )
        ).all()
        if not rows:
            return VerifyResult(ok=True, entries=count, head_hash=None if count == 0 else expected_prev)
        for row in rows:
            if row.seq != expected_seq:
                return VerifyResult(False, count, expected_seq, f"entry {expected_seq} is missing")
            if row.prev_hash != expected_prev:
                return VerifyResult(False, count, row.seq, "does not follow its predecessor (deleted or reordered)")
            recomputed = entry_hash(
                seq=row.seq, at=row.at, actor=row.actor, action=row.action, subject=row.subject,
                details=row.details, prev_hash=row.prev_hash, key=key,
            )
            if recomputed != row.hash:
                return VerifyResult(False, count, row.seq,
                                    "content was edited (hash mismatch), or BOT_SECRET_KEY is not the key it was "
                                    "written with")
            expected_prev = row.hash
            expected_seq += 1
            count += 1
            after = row.seq


async def entries_about(session: AsyncSession, subjects: list[str], *, limit: int = 10_000) -> list[AuditEntry]:
    """The entries naming any of ``subjects`` (``request:12``, ``subject:<hash prefix>``, ``alert:3``,
    ``contact:42``), oldest first: what an access package reports of the ledger about one person. A clear
    ``contact:42`` is looked up by its ref (as :func:`record` stored it)."""
    if not subjects:
        return []
    key = _key_for(session)
    subjects = [without_contact_ids(key, subject, {})[0] or subject for subject in subjects]
    found: list[AuditEntry] = []
    for start in range(0, len(subjects), 500):  # bounded IN lists
        found.extend((await session.exec(
            select(AuditEntry).where(AuditEntry.subject.in_(subjects[start:start + 500]))  # type: ignore[union-attr]
            .order_by(AuditEntry.seq.desc()).limit(limit))).all())  # type: ignore[attr-defined]
    found.sort(key=lambda entry: entry.seq)
    return found[-limit:]


async def entries_naming_contact(session: AsyncSession, contact_id: int, *, batch: int = 1000) -> list[AuditEntry]:
    """Every entry that names Mautic contact ``contact_id`` (by its ref, in the subject or anywhere in the
    details), oldest first: "was contact 42 deleted?" for an auditor holding the key. Walks the whole ledger in
    batches (an audit, not a hot path: details are JSON, not indexed)."""
    ref = contact_ref(_key_for(session), contact_id)
    subject = f"contact:{ref}"
    found: list[AuditEntry] = []
    after = 0
    while rows := (await session.exec(
            select(AuditEntry).where(AuditEntry.seq > after).order_by(AuditEntry.seq).limit(batch)  # type: ignore[arg-type]
    )).all():
        found.extend(row for row in rows if row.subject == subject or f'"{ref}"' in json.dumps(row.details))
        after = rows[-1].seq
    return found
