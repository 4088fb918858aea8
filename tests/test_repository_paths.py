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

# Each pattern is anchored so that it does not fire inside a longer path or a URL (a link whose path has a
# "work" segment, say).
OUTSIDE_REFERENCES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("an absolute path into the workspace", re.compile(r"(?<![\w./~-])/work(?:/|\b)")),
    ("a sibling checkout of the shared folder", re.compile(r"\.\./+shared\b")),
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


def _path(*parts: str) -> str:
    """A sample path built at run time, so this file itself holds no reference the scan (or a plain grep of
    the repository) would report."""
    return "/".join(parts)


WORK, SHARED, UP = _path("", "work"), "shared", ".."


@pytest.mark.parametrize("line", [
    f'FIXTURES = Path("{_path(WORK, SHARED, "mautic-fixtures")}")',
    f"facts in {_path(WORK, SHARED, 'docs', 'mautic.md')} §2",
    f"cd {WORK} && make test",
    f"see {_path(UP, SHARED, 'docs', 'slack.md')}",
    f"the payload bug ({_path(SHARED, 'docs', 'slack.md')} §1.12)",
    f"copied from {_path(SHARED, 'mautic-fixtures', '')}",
    f"python lives in {_path('', 'root', '.venv', 'bin')}",
    f"open {_path('', 'home', 'alice', 'notes.md')}",
    f"open {_path('', 'Users', 'alice', 'notes.md')}",
    f"cat {_path('~', 'notes.md')}",
])
def test_the_scan_catches_outside_references(line: str) -> None:
    assert outside_references(f"first line\n{line}\n")[0][0] == 2


@pytest.mark.parametrize("line", [
    "EXPORT_DIR=/var/lib/privacy-bot/exports",
    f"https://example.com{_path(WORK, 'items')} and https://example.com{_path('', 'root')}",
    "tests/fixtures/mautic/form_on_submit.json",
    "a shared/common helper, networking/homework/x",
    "storage/migrations/versions/0001_core.py",
    "Path(__file__).parent / 'fixtures'",
])
def test_the_scan_leaves_paths_inside_the_repository_alone(line: str) -> None:
    assert outside_references(line) == []


def test_the_scan_finds_a_new_file_with_an_outside_reference() -> None:
    probe = REPO / f"probe-{uuid.uuid4().hex}.md"
    probe.write_text(f"Read the notes in {_path(WORK, SHARED, 'docs', 'mautic.md')} first.\n")
    try:
        problems = scan_repository()
    finally:
        probe.unlink()
    assert [p for p in problems if p.startswith(probe.name)] == [
        f"{probe.name}:1: an absolute path into the workspace: '{WORK}/'",
        f"{probe.name}:1: the machine's shared folder: 'shared/docs'",
    ]
