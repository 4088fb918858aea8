"""The command line as an operator runs it: migrate, check, and serve stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from sandbox.harness import sandbox
from storage.migrate import script_head
from tests.helpers import child_env, test_tuning


def _env(settings_env: dict[str, str]) -> dict[str, str]:
    return child_env(settings_env, path=os.environ.get("PATH", "/usr/bin:/bin"))


async def _run(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, env=env, cwd=cwd,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def _settings_env(box) -> dict[str, str]:  # type: ignore[no-untyped-def]
    s = box.settings
    return {
        "SLACK_BOT_TOKEN": s.slack_bot_token.get_secret_value(),
        "SLACK_SIGNING_SECRET": s.slack_signing_secret.get_secret_value(),
        "SLACK_API_URL": s.slack_api_url,
        "PRIVACY_CHANNEL": s.privacy_channel,
        "PRIVACY_APPROVERS": ",".join(s.privacy_approvers),
        "MAUTIC_BASE_URL": s.mautic_base_url,
        "MAUTIC_USERNAME": s.mautic_username,
        "MAUTIC_PASSWORD": s.mautic_password.get_secret_value(),
        "MAUTIC_WEBHOOK_SECRET": s.mautic_webhook_secret.get_secret_value(),
        "BOT_SECRET_KEY": s.bot_secret_key.get_secret_value(),
        "DATABASE_URL": s.database_url,
    }


async def test_migrate_is_idempotent(db_url: str, tmp_path: Path) -> None:
    env = _env({"DATABASE_URL": db_url})
    for _ in range(2):
        code, out, err = await _run(["migrate"], env, tmp_path)
        assert code == 0, err
        assert "database schema is up to date (" in out
        assert "0001_core" in out or "_" in out
        assert f"(revision {script_head()})" in out


async def test_check_reports_each_peer(sqlite_url: str, tmp_path: Path) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning(), start_bot=False) as box:
        env = _env(_settings_env(box))
        code, out, err = await _run(["check"], env, tmp_path)
        assert code == 0, out + err
        lines = out.strip().splitlines()
        # No policy file here: the bot runs, but `check` warns that summary.html would say "not configured".
        assert [line.split("]")[0] for line in lines] == ["[ok", "[warn", "[ok", "[ok", "[ok"]
        assert "has no `access_summary` section" in lines[1]
        assert "auth.test ok" in out and "authenticated API call" in out

        env["MAUTIC_PASSWORD"] = "wrong"
        env["SLACK_BOT_TOKEN"] = "xoxb-revoked"
        code, out, _ = await _run(["check"], env, tmp_path)
        assert code == 1
        assert any(line.startswith("[FAIL] slack:") and "invalid_auth" in line for line in out.splitlines())
        assert any(line.startswith("[FAIL] mautic:") for line in out.splitlines())
        assert "wrong" not in out  # no secret echoed back


async def test_check_names_the_mautic_version_and_explains_mautic_refusals(sqlite_url: str, tmp_path: Path) -> None:
    # Issue 12: the version comes from the Mautic-Version header every API answer carries
    # (ApiBundle/Controller/FetchCommonApiController.php view()).
    async with sandbox(sqlite_url, tuning=test_tuning(), start_bot=False) as box:
        env = _env(_settings_env(box))
        box.mautic.version = "6.0.1"
        box.mautic.add_segment(12, "Re-consent", published=False)
        env["RECONSENT_SEGMENT_ID"] = "12"
        code, out, err = await _run(["check"], env, tmp_path)
        assert code == 1, out + err
        assert "(Mautic 6.0.1)" in out
        # LeadBundle/Controller/Api/ListApiController.php addLeadAction answers 403 for an unpublished segment
        assert any(line.startswith("[FAIL] re-consent segment:") and "unpublished" in line and "Publish it" in line
                   for line in out.splitlines())

        # ApiBundle/Controller/ClientController.php newAction: only an admin-created credential gets
        # client_credentials; FOSOAuthServer answers the others `unauthorized_client`.
        box.mautic.client_id, box.mautic.client_secret = "cid", "csecret"
        box.mautic.client_credentials_grant = False
        env.update(MAUTIC_CLIENT_ID="cid", MAUTIC_CLIENT_SECRET="csecret")
        code, out, _ = await _run(["check"], env, tmp_path)
        assert code == 1
        (line,) = [line for line in out.splitlines() if line.startswith("[FAIL] mautic:")]
        assert "unauthorized_client" in line and "administrator" in line and "csecret" not in out


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_serve_answers_and_stops_gracefully_on_sigterm(sqlite_url: str, tmp_path: Path) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning(), start_bot=False) as box:
        port = _free_port()
        env = _env({**_settings_env(box), "HOST": "127.0.0.1", "PORT": str(port)})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "serve", env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        lines: list[str] = []
        try:
            assert process.stderr is not None
            async with asyncio.timeout(30):
                while not any('"msg": "listening"' in line for line in lines):
                    line = (await process.stderr.readline()).decode()
                    assert line, "serve exited before listening"
                    lines.append(line)
            async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/healthz") as response:
                assert response.status == 200
            process.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(process.communicate(), timeout=30)
            lines += rest.decode().splitlines()
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        assert process.returncode == 0
        entries = [json.loads(line) for line in lines if line.strip()]  # every log line is JSON
        assert all({"ts", "level", "logger", "msg"} <= entry.keys() for entry in entries)
        messages = [e["msg"] for e in entries]
        assert "shutting down" in messages and messages[-1] == "stopped"
        assert box.settings.bot_secret_key.get_secret_value() not in "".join(lines)  # type: ignore[union-attr]
