"""The one set of helpers the test modules share: fixture files, the test tuning, table and ledger readers,
job waiters and Slack message text. Feature test folders keep only what is theirs (tests/*/helpers.py)."""

from tests.helpers.db import ledger, ledger_entries, rows
from tests.helpers.fixtures import FIXTURES, mautic_fixture
from tests.helpers.jobs import job_finished, jobs_idle
from tests.helpers.slack import text_of
from tests.helpers.tuning import test_tuning

__all__ = [
    "FIXTURES",
    "job_finished",
    "jobs_idle",
    "ledger",
    "ledger_entries",
    "mautic_fixture",
    "rows",
    "test_tuning",
    "text_of",
]
