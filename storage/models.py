"""Every table, imported in one place so metadata (and Alembic) sees them all.

Each feature keeps its tables in its own module; add the import here.
"""

from storage.jobs import Job
from storage.ledger import AuditEntry

__all__ = ["AuditEntry", "Job"]
