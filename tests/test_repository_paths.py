"""The repository stands alone: no file refers to a path outside it (a machine-local folder, a sibling
checkout, a home directory). A clone is all a developer or CI has, so such a reference is either a test
that cannot pass there or a doc that points nowhere. Name the upstream source instead.

This module spells out the patterns it looks for, so it is the one file the scan leaves out."""

from __future__ import annotations

import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
THIS_FILE = Path(__file__).resolve().relative_to(REPO).as_posix()

# Each pattern is anchored so that it does not fire inside a longer path or a URL (".../work/..." in a link).
OUTSIDE_REFERENCES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an absolute /work path", re.compile(r"(?<![\w./~-])/work(?:/|\b)")),
    ("a sibling checkout (../shared)", re.compile(r"\.\./+shared\b")),
    ("the machine's shared folder", re.compile(r"(?<![\w.-])shared/(?:docs|mautic-fixtures|hooks)\b")),
    ("root's home directory", re.compile(r"(?<![\w./~-])/root(?:/|\b)")),
    ("a home directory", re.compile(r"(?<![\w./~-])/(?:home|Users)/[\w.-]+")),
    ("a home directory (~/)", re.compile(r"(?<![\w/])~/")),
)


def outside_references(text: str) -> list[tuple[int, str, str]]:
    """(line number, what it is, the matching text) for every reference to a path outside the repo."""
    found: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        for what, pattern in OUTSIDE_REFERENCES:
            match = pattern.search(line)
            if match:
                found.append((number, what, match.group(0)))
    return found


def repository_files() -> list[str]:
    """Tracked files, plus new ones not ignored yet (so a file is checked before its first commit)."""
    git = shutil.which("git")
    assert git is not None, "git is needed to list the repository's files"
    listed = subprocess.run(
        [git, "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=REPO, check=True, capture_output=True,
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name and (REPO / name).is_file()})


def scan_repository() -> list[str]:
    problems: list[str] = []
    for name in repository_files():
        if name == THIS_FILE:
            continue
        data = (REPO / name).read_bytes()
        if b"\0" in data:
            continue  # binary
        try:
            text = data.decode()
        except UnicodeDecodeError:
            continue  # binary
        problems.extend(f"{name}:{line}: {what}: {hit!r}" for line, what, hit in outside_references(text))
    return problems


def test_no_file_refers_to_a_path_outside_the_repository() -> None:
    assert len(repository_files()) > 50  # the listing works (a broken git call must not pass as "clean")
    assert scan_repository() == []


@pytest.mark.parametrize("line", [
    'FIXTURES = Path("/work/shared/mautic-fixtures")',
    "facts in /work/shared/docs/mautic.md §2",
    "cd /work && make test",
    "see ../shared/docs/slack.md",
    "the payload bug (shared/docs/slack.md §1.12)",
    "copied from shared/mautic-fixtures/",
    "python lives in /root/.venv/bin",
    "open /home/alice/notes.md",
    "open /Users/alice/notes.md",
    "cat ~/notes.md",
])
def test_the_scan_catches_outside_references(line: str) -> None:
    assert outside_references(f"first line\n{line}\n")[0][0] == 2


@pytest.mark.parametrize("line", [
    "EXPORT_DIR=/var/lib/privacy-bot/exports",
    "https://example.com/work/items and https://example.com/root",
    "tests/fixtures/mautic/form_on_submit.json",
    "a shared/common helper, networking/homework/x",
    "storage/migrations/versions/0001_core.py",
    "Path(__file__).parent / 'fixtures'",
])
def test_the_scan_leaves_paths_inside_the_repository_alone(line: str) -> None:
    assert outside_references(line) == []


def test_the_scan_finds_a_new_file_with_an_outside_reference() -> None:
    probe = REPO / f"probe-{uuid.uuid4().hex}.md"
    probe.write_text("Read the notes in /work/shared/docs/mautic.md first.\n")
    try:
        problems = scan_repository()
    finally:
        probe.unlink()
    assert [p for p in problems if p.startswith(probe.name)] == [
        f"{probe.name}:1: an absolute /work path: '/work/'",
        f"{probe.name}:1: the machine's shared folder: 'shared/docs'",
    ]
