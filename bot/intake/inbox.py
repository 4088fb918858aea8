"""An inbox row as processing reads it: one Mautic event, claimed for processing."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class InboxRow:
    """Plain copy of an inbox row, so a rolled-back savepoint cannot expire what we read."""

    id: int
    type: str
    payload: dict[str, Any]
    occurred_at: datetime | None
    contact_id: int | None
    subject: str | None  # keyed hash of the event's address
    raw_size: int
    note: str | None

    def subject_ref(self) -> str | None:
        """How the ledger names whom the event is about: a hash prefix, else the Mautic contact."""
        if self.subject:
            return f"subject:{self.subject[:16]}"
        return self.contact_ref()

    def contact_ref(self) -> str | None:
        return f"contact:{self.contact_id}" if self.contact_id is not None else None
