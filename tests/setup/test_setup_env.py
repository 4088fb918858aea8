"""First run: `setup env` writes a complete .env once; .env.example is the same list; `serve` and `check`
name every missing or malformed setting at once."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import pytest

from bot.settings import REQUIRED_FOR_SERVE, ConfigError, Settings, diagnose_settings, load_settings
from bot.setup.env import render_env
from tests.helpers import child_env

ROOT = Path(__file__).resolve().parents[2]


def _pairs(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert example == render_env("")  # regenerate: python -c "from bot.setup.env import render_env; …"
    assert list(_pairs(example)) == [name.upper() for name in Settings.model_fields]


def test_the_written_defaults_read_back_as_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text(render_env("4fafc6af54fdffd1b3868a8658cd085da6da002bfa2c6c34202cd145a1459659"), encoding="utf-8")
    written = Settings(_env_file=path)  # type: ignore[call-arg]
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    for name in Settings.model_fields:
        if name != "bot_secret_key":
            assert getattr(written, name) == getattr(defaults, name), name


async def _run(args: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=child_env(env, path=os.environ.get("PATH", "/usr/bin")),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_setup_env_writes_once_with_a_fresh_key(tmp_path: Path) -> None:
    code, out, _ = await _run(["setup", "env"], tmp_path, {"PORT": "not even a number"})  # no settings read
    assert code == 0 and "wrote .env" in out
    first = _pairs((tmp_path / ".env").read_text(encoding="utf-8"))
    assert re.fullmatch(r"[0-9a-f]{64}", first["BOT_SECRET_KEY"])
    assert first["DIGEST_CRON"] == "0 9 * * 1" and first["APPROVAL_TTL"] == "7d"
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0  # it holds a secret

    code, out, _ = await _run(["setup", "env"], tmp_path, {})
    assert code == 1 and "not overwritten" in out
    assert _pairs((tmp_path / ".env").read_text(encoding="utf-8")) == first

    other = tmp_path / "other.env"
    assert (await _run(["setup", "env", "--path", str(other)], tmp_path, {}))[0] == 0
    assert _pairs(other.read_text(encoding="utf-8"))["BOT_SECRET_KEY"] != first["BOT_SECRET_KEY"]


def test_every_problem_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "eighty")
    monkeypatch.setenv("PRIVACY_CHANNEL", "#privacy")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    _, problems = diagnose_settings(_env_file=None)
    names = [p.split(" ", 1)[0].rstrip(":") for p in problems]
    assert names[:2] == ["PRIVACY_CHANNEL", "PORT"]
    assert set(names[2:]) == {n.upper() for n in REQUIRED_FOR_SERVE} - {"PRIVACY_CHANNEL", "SLACK_BOT_TOKEN"}
    with pytest.raises(ConfigError, match=r"PRIVACY_CHANNEL: .*; PORT: "):
        load_settings(_env_file=None)


async def test_serve_and_check_name_every_problem(tmp_path: Path) -> None:
    env = {"PORT": "eighty", "SLACK_BOT_TOKEN": "xoxp-user", "PRIVACY_APPROVERS": "U0BOB"}
    code, _, err = await _run(["serve"], tmp_path, env)
    lines = err.strip().splitlines()
    assert code == 2 and all(line.startswith("configuration error: ") for line in lines)
    for name in ("PORT", "SLACK_SIGNING_SECRET", "PRIVACY_CHANNEL", "MAUTIC_BASE_URL", "MAUTIC_WEBHOOK_SECRET",
                 "BOT_SECRET_KEY"):
        assert any(name in line for line in lines), name
    assert any("xoxb-" in line for line in lines)
    assert not any("PRIVACY_APPROVERS" in line for line in lines)

    code, out, _ = await _run(["check"], tmp_path, env)
    assert code == 1
    assert [line.split(" ", 2)[1] for line in out.strip().splitlines()] == ["settings:"] * len(lines)
