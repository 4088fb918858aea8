"""Join the intake, requests and digests branches into one head.

The three feature revisions each grew from the core revision, so a migrated database held three heads in
``alembic_version`` (0002_intake, 0003_requests, 0004_digests). Their ids and contents stay as they are:
rewriting their ``down_revision`` into a line would leave those databases at revisions whose order no
longer matches what ran. This merge makes one head instead; on a database at the three old heads it
collapses them into one ``alembic_version`` row and changes no table. Every later revision revises this one.

Revision ID: 0005_one_chain
Revises: 0002_intake, 0003_requests, 0004_digests
Create Date: 2026-12-01
"""

from collections.abc import Sequence

revision: str = "0005_one_chain"
down_revision: str | Sequence[str] | None = ("0002_intake", "0003_requests", "0004_digests")


def upgrade() -> None:
    pass  # a merge point: the schema is the union of its parents


def downgrade() -> None:
    pass
