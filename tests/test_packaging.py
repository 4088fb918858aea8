"""The wheel ships the product and nothing else: bot/, handlers/, storage/ with its migrations, and none of
the stand-ins, tests or benchmarks. Built offline from a copy of the tracked files, as `pip wheel` would
build it from a clone (the copy keeps build/ and *.egg-info out of the checkout)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHIPPED = ("bot", "handlers", "storage")
NOT_SHIPPED = ("sandbox", "tests", "bench")


def tracked_files() -> list[str]:
    git = shutil.which("git")
    assert git is not None, "git is needed to list the repository's files"
    listed = subprocess.run([git, "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout.decode()
    return [name for name in listed.split("\0") if name and (REPO / name).is_file()]


@pytest.fixture(scope="module")
def wheel_names(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    source = tmp_path_factory.mktemp("source")
    for name in tracked_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--quiet", "-w", str(out)],
        cwd=source, capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, (
        "pip wheel failed; building without isolation needs setuptools>=70.1 (it has bdist_wheel) in this "
        f"environment, which the `test` extra installs (pip install -e '.[test]'):\n{built.stderr[-3000:]}"
    )
    (wheel,) = out.glob("mautic_privacy_bot-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def test_the_wheel_holds_only_the_product_packages(wheel_names: list[str]) -> None:
    top_level = {name.split("/", 1)[0] for name in wheel_names}
    assert {name for name in top_level if not name.endswith(".dist-info")} == set(SHIPPED)
    for folder in NOT_SHIPPED:
        assert not any(name.startswith(f"{folder}/") for name in wheel_names), folder


def test_every_module_of_the_product_is_in_the_wheel(wheel_names: list[str]) -> None:
    modules = {name for name in tracked_files() if name.endswith(".py") and name.startswith(tuple(
        f"{folder}/" for folder in SHIPPED))}
    assert modules <= set(wheel_names), sorted(modules - set(wheel_names))


def test_the_wheel_carries_the_migrations(wheel_names: list[str]) -> None:
    versions = sorted(name.rsplit("/", 1)[1] for name in tracked_files()
                      if name.startswith("storage/migrations/versions/") and name.endswith(".py"))
    assert "0001_core.py" in versions
    assert "storage/migrate.py" in wheel_names and "storage/migrations/env.py" in wheel_names
    assert [name.rsplit("/", 1)[1] for name in sorted(wheel_names)
            if name.startswith("storage/migrations/versions/")] == versions
