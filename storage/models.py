"""Every table, imported in one place so metadata (and Alembic) sees them all.

Each feature keeps its tables in its own module; add the import here.
"""

from storage.digests import DigestRun, DigestSlot, PurgeChunk, PurgeRequest  # noqa: F401
from storage.erasure_cleanup import CleanupLine  # noqa: F401
from storage.forms import FormFieldSeen, FormRevision  # noqa: F401
from storage.home import HomeViewer  # noqa: F401
from storage.intake import (  # noqa: F401
    ConsentAlert,
    ConsentRecord,
    InboxDelivery,
    InboxEvent,
    SpoolMove,
    Withdrawal,
)
from storage.jobs import Job
from storage.ledger import AuditEntry
from storage.requests import ErasedSubject, ExportLink, PrivacyRequest, RequestDecision  # noqa: F401
from storage.slack_deliveries import SlackDelivery  # noqa: F401
from storage.slack_files import SlackUpload  # noqa: F401
from storage.slack_posts import SlackPost  # noqa: F401

__all__ = ["AuditEntry", "Job"]
