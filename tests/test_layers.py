"""The import-linter layers contract in pyproject.toml covers the whole code base, and it bites.

A module missing from every layer is checked by nothing: a new ``bot/x.py`` could import a feature or a
handler and the contract would stay green. So every module and package directly under ``bot/`` must
sit in a layer, and every other root package must be a layer of its own. And a contract that cannot
fail is no contract: an upward import planted in a copy of the code must make ``lint-imports`` fail."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
# The consumers of everything: they may import any layer, and nothing imports them.
NOT_LAYERED = {"tests", "bench"}


def import_linter_config() -> dict[str, Any]:
    config: dict[str, Any] = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    return config


def layered_modules() -> list[str]:
    """Every module named in the layers contract, top layer first (``a : b`` and ``a | b`` share a layer)."""
    (contract,) = [c for c in import_linter_config()["contracts"] if c["type"] == "layers"]
    return [name.strip().strip("()") for layer in contract["layers"] for name in re.split(r"[:|]", layer)]


def top_level_packages() -> set[str]:
    """Folders at the root that hold Python code (regular or namespace packages), hidden ones aside."""
    return {path.name for path in REPO.iterdir()
            if path.is_dir() and not path.name.startswith(".") and any(path.glob("*.py"))}


def modules_directly_under(package: str) -> set[str]:
    folder = REPO / package
    modules = {f"{package}.{path.stem}" for path in folder.glob("*.py") if path.name != "__init__.py"}
    packages = {f"{package}.{path.parent.name}" for path in folder.glob("*/__init__.py")}
    return modules | packages


def test_every_root_package_is_linted() -> None:
    assert set(import_linter_config()["root_packages"]) == top_level_packages() - NOT_LAYERED


def test_every_module_directly_under_bot_sits_in_a_layer() -> None:
    layered = layered_modules()
    assert len(layered) == len(set(layered)), "a module is named in two layers"
    under_bot = modules_directly_under("bot")
    assert "bot.privacy" in under_bot and "bot.intake" in under_bot  # the listing sees modules and packages
    assert sorted(under_bot - set(layered)) == []
    assert sorted(name for name in layered if name.startswith("bot.") and name not in under_bot) == []


def test_every_other_root_package_is_a_layer() -> None:
    layered = set(layered_modules())
    assert sorted(set(import_linter_config()["root_packages"]) - {"bot"} - layered) == []
    assert "bot" not in layered  # bot is layered by its parts


def lint_copy(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": str(LINT_IMPORTS.parent)},
        capture_output=True, text=True, timeout=300,
    )


def test_the_contract_fails_on_an_upward_import_and_passes_without_it(tmp_path: Path) -> None:
    for package in import_linter_config()["root_packages"]:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")

    clean = lint_copy(tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "BROKEN" not in clean.stdout

    privacy = tmp_path / "bot" / "privacy.py"
    privacy.write_text(privacy.read_text() + "\nimport handlers.routes  # noqa: E402, F401\n")
    broken = lint_copy(tmp_path)
    assert broken.returncode != 0, broken.stdout
    assert "Contracts: 1 kept, 1 broken." in broken.stdout
    assert "bot.privacy is not allowed to import handlers" in broken.stdout
    assert "bot.privacy -> handlers.routes" in broken.stdout
