"""Key the audit ledger's chain: every entry re-hashed with HMAC-SHA256 under a key derived from
BOT_SECRET_KEY, so that write access to the database alone no longer lets anyone rebuild the chain.

Why re-chain rather than keep a versioned scheme (old entries plain, new ones keyed): one scheme means one
verifier, and an unkeyed prefix would stay rebuildable by anyone who can write the database up to the
first keyed entry. Re-chaining keeps what the old chain proved: before re-hashing, the existing chain is
checked under the scheme it was written with, and the result is appended as a last entry
(``ledger.rekeyed``: how many entries, the old head hash, whether the old chain held and where it broke).
A ledger that was already broken is re-keyed all the same (refusing would block every upgrade), but that
entry says so for good, and the old head hash lets anyone holding an earlier published head compare.

While re-keying, clear Mautic contact ids are replaced by keyed refs (subject ``contact:42`` and values under
contact-id keys in details; the same rule as ``storage.ledger.without_contact_ids``, frozen here): the ledger
outlives every erasure and can never be edited afterwards, so this is the one chance. The old chain is checked
on the entries as they were; ``ledger.rekeyed`` says how many entries had ids replaced (``contact_ids_replaced``).

The code below is frozen (not imported from storage.ledger), so later changes to the live ledger cannot
change what this revision did. It needs the key only when there are entries: ``python -m bot migrate`` and
the service register it from BOT_SECRET_KEY (storage.migrate hands it over as ``ledger_key``).
Downgrading re-chains with plain SHA-256 again (the contact refs stay: the clear ids are gone for good).

Revision ID: 0012_harden9
Revises: 0011_erase11
Create Date: 2026-12-01
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from storage.types import JSONType, UTCDateTime

revision: str = "0012_harden9"
down_revision: str | Sequence[str] | None = "0011_erase11"

GENESIS = "0" * 64
BATCH = 1000

ledger = sa.table(
    "audit_ledger",
    sa.column("seq", sa.Integer()), sa.column("at", UTCDateTime()), sa.column("actor", sa.String()),
    sa.column("action", sa.String()), sa.column("subject", sa.String()), sa.column("details", JSONType),
    sa.column("prev_hash", sa.String()), sa.column("hash", sa.String()),
)


def _canonical(seq: int, at: datetime, actor: str, action: str, subject: str | None, details: Any,
               prev: str) -> bytes:
    return json.dumps(
        {"seq": seq, "at": at.isoformat(timespec="microseconds"), "actor": actor, "action": action,
         "subject": subject, "details": details, "prev": prev},
        sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str,
    ).encode()


# Frozen copy of storage.ledger's contact-id rule as of this revision.
_CONTACT_ID_KEYS = frozenset({"contact_id", "contact", "first_id", "last_id"})
_CONTACT_LIST_KEYS = frozenset({"contact_ids", "contacts"})
_CONTACT_SUBJECT = re.compile(r"contact:([0-9]{1,15})")


def _contact_ref(key: bytes, contact_id: int | str) -> str:
    return hmac.new(key, f"contact:{int(contact_id)}".encode(), hashlib.sha256).hexdigest()[:16]


def _is_id(value: Any) -> bool:
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 15)


def _contact_value(key: bytes, value: Any) -> Any:
    if _is_id(value):
        return _contact_ref(key, value)
    if isinstance(value, dict):
        return {k: _contact_value(key, v) if k == "id" else _without_ids(key, k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_contact_value(key, item) for item in value]
    return value


def _without_ids(key: bytes, name: str, value: Any) -> Any:
    if name in _CONTACT_ID_KEYS:
        return _contact_value(key, value)
    if name in _CONTACT_LIST_KEYS:
        return [_contact_value(key, item) for item in value] if isinstance(value, list) else value
    if isinstance(value, dict):
        return {k: _without_ids(key, k, v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_ids(key, "", item) for item in value]
    return value


def _refs_for_ids(key: bytes) -> Callable[[str | None, Any], tuple[str | None, Any]]:
    def replace(subject: str | None, details: Any) -> tuple[str | None, Any]:
        if subject is not None and (found := _CONTACT_SUBJECT.fullmatch(subject)):
            subject = f"contact:{_contact_ref(key, found.group(1))}"
        if isinstance(details, dict):
            details = {k: _without_ids(key, k, v) for k, v in details.items()}
        return subject, details
    return replace


def _plain(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _keyed(key: bytes) -> Callable[[bytes], str]:
    return lambda data: hmac.new(key, data, hashlib.sha256).hexdigest()


def _rechain(old: Callable[[bytes], str], new: Callable[[bytes], str],
             rewrite: Callable[[str | None, Any], tuple[str | None, Any]] | None = None) -> dict[str, Any] | None:
    """Re-hash every entry under ``new``, checking the chain under ``old`` on the way (and changing each entry's
    subject and details by ``rewrite`` first); None when empty."""
    bind = op.get_bind()
    old_prev = new_prev = GENESIS
    first_bad: int | None = None
    entries, after, expected_seq, rewritten = 0, 0, 1, 0
    while True:
        rows = bind.execute(
            sa.select(ledger).where(ledger.c.seq > after).order_by(ledger.c.seq).limit(BATCH)
        ).mappings().all()
        if not rows:
            break
        for row in rows:
            content = (row["seq"], row["at"], row["actor"], row["action"], row["subject"], row["details"])
            if first_bad is None and (row["seq"] != expected_seq or row["prev_hash"] != old_prev
                                      or old(_canonical(*content, row["prev_hash"])) != row["hash"]):
                first_bad = row["seq"]
            old_prev = row["hash"]
            changed: dict[str, Any] = {}
            if rewrite is not None:
                subject, details = rewrite(row["subject"], row["details"])
                if (subject, details) != (row["subject"], row["details"]):
                    changed, rewritten = {"subject": subject, "details": details}, rewritten + 1
                    content = (*content[:4], subject, details)
            new_hash = new(_canonical(*content, new_prev))
            bind.execute(sa.update(ledger).where(ledger.c.seq == row["seq"])
                         .values(prev_hash=new_prev, hash=new_hash, **changed))
            new_prev, after, expected_seq, entries = new_hash, row["seq"], row["seq"] + 1, entries + 1
    if entries == 0:
        return None
    return {"entries": entries, "old_head": old_prev, "old_chain_ok": first_bad is None, "first_bad_seq": first_bad,
            "last_seq": after, "head": new_prev, "contact_ids_replaced": rewritten}


def _append(new: Callable[[bytes], str], summary: dict[str, Any], action: str, *fields: str) -> None:
    seq = summary["last_seq"] + 1
    at = datetime.now(UTC)
    details = {k: summary[k] for k in ("entries", "old_head", "old_chain_ok", "first_bad_seq", *fields)}
    bind = op.get_bind()
    # What the live ledger stores: a microsecond-precise UTC time, read back as written.
    bind.execute(sa.insert(ledger).values(
        seq=seq, at=at, actor="migration", action=action, subject=None, details=details,
        prev_hash=summary["head"], hash=new(_canonical(seq, at, "migration", action, None, details, summary["head"])),
    ))


def _ledger_key() -> bytes | None:
    config = op.get_context().config
    return config.attributes.get("ledger_key") if config is not None else None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.select(sa.func.count()).select_from(ledger)).scalar_one() == 0:
        return  # nothing to re-key; new entries are keyed by the live code
    key = _ledger_key()
    if not key:
        raise RuntimeError("BOT_SECRET_KEY is needed to key the existing audit ledger: set it and run "
                           "`python -m bot migrate` again")
    keyed = _keyed(key)
    summary = _rechain(_plain, keyed, _refs_for_ids(key))
    assert summary is not None
    _append(keyed, summary, "ledger.rekeyed", "contact_ids_replaced")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.execute(sa.select(sa.func.count()).select_from(ledger)).scalar_one() == 0:
        return
    key = _ledger_key()
    if not key:
        raise RuntimeError("BOT_SECRET_KEY is needed to check the keyed audit ledger before unkeying it")
    summary = _rechain(_keyed(key), _plain)
    assert summary is not None
    _append(_plain, summary, "ledger.unkeyed")
