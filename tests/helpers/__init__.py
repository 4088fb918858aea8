"""The one set of helpers the test modules share: fixture files, the test tuning, table and ledger readers,
job waiters, Slack message text and the environment of child processes. Feature test folders keep only
what is theirs (tests/*/helpers.py)."""

from tests.helpers.db import ledger, ledger_entries, rows
from tests.helpers.fixtures import FIXTURES, mautic_fixture
from tests.helpers.jobs import job_finished
from tests.helpers.process import child_env
from tests.helpers.slack import text_of
from tests.helpers.tuning import test_tuning

__all__ = [
    "FIXTURES",
    "child_env",
    "job_finished",
    "ledger",
    "ledger_entries",
    "mautic_fixture",
    "rows",
    "test_tuning",
    "text_of",
]
