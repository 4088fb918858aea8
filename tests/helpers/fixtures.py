"""Sample files the tests read, kept in the repository (tests/fixtures/) and found relative to this file."""

from __future__ import annotations

from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def mautic_fixture(name: str) -> bytes:
    """The exact bytes of a Mautic sample payload (see tests/fixtures/mautic/README.md for provenance)."""
    path = FIXTURES / "mautic" / name
    if not path.is_file():
        pytest.fail(f"fixture {path} is missing")
    return path.read_bytes()
