"""What the dashboard shows, as plain data (read by ``bot.home.read``, drawn by ``bot.home.blocks``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class OpenRequest:
    id: int
    kind: str  # access | erasure | rectification
    heading: str  # "Access request (DSAR)"
    subject_masked: str
    state_label: str
    state: str
    due_date: date
    filed_by: str
    channel: str
    message_ts: str | None


@dataclass(frozen=True)
class OpenAlert:
    id: int
    kind: str
    title: str  # outside text (a form or email name): escaped when drawn
    created_at: datetime
    folded: int
    channel: str | None
    message_ts: str | None


@dataclass(frozen=True)
class DigestLink:
    kind: str  # retention | compliance
    posted_at: datetime
    channel: str | None
    message_ts: str | None


@dataclass(frozen=True)
class FormShare:
    form_name: str  # outside text
    submissions: int
    consent_share: float | None  # None: every submission was exempt


@dataclass(frozen=True)
class Dashboard:
    """Everything on the Home tab except what depends on who looks (that is ``Viewer``)."""

    requests: tuple[OpenRequest, ...]
    alerts: tuple[OpenAlert, ...]
    alerts_total: int
    digests: tuple[DigestLink, ...]
    forms: tuple[FormShare, ...]
    ledger_entries: int
    ledger_head: str | None
    workspace_url: str  # https://<team>.slack.com/ (from auth.test), for links to messages


@dataclass(frozen=True)
class Viewer:
    user_id: str
    is_approver: bool
    # A requester or approver (Permissions.may_file): only they see requests, alerts and forms, as only they
    # may run `/privacy requests`, `status` and `forms`; anyone else who opens the tab sees a note.
    is_member: bool
