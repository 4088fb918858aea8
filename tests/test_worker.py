"""Web and worker scaled apart: ``python -m bot serve --no-worker`` answers and enqueues but runs no job,
``python -m bot worker`` runs the queued jobs and stops on SIGTERM; ``WEB_PROCESSES`` starts that many
listeners on one port and stops them with itself."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
from sqlmodel import func, select

from bot.intake.ids import IntakeJob
from sandbox.harness import sandbox
from sandbox.mautic import form_submission_event, merge_payloads, sign_webhook
from storage import intake as intake_store
from storage import jobs as queue
from storage.db import SessionFactory, make_engine, make_session_factory, unit_of_work
from storage.intake import ConsentRecord, InboxDelivery
from storage.jobs import Job, JobState
from storage.types import utcnow
from tests.helpers import test_tuning
from tests.test_cli import _env, _free_port, _run, _settings_env

TIMEOUT = 30


@asynccontextmanager
async def bot_process(args: list[str], env: dict[str, str], cwd: Path, ready: str) -> AsyncIterator[
        tuple[asyncio.subprocess.Process, list[str]]]:
    """``python -m bot ARGS`` until it logs ``ready``; yields it and its log lines (the rest read on exit)."""
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bot", *args, env=env, cwd=cwd,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    lines: list[str] = []
    try:
        assert process.stderr is not None
        async with asyncio.timeout(TIMEOUT):
            while not any(f'"msg": "{ready}"' in line for line in lines):
                line = (await process.stderr.readline()).decode()
                assert line, f"{args} exited before logging {ready!r}: {lines}"
                lines.append(line)
        yield process, lines
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop(process: asyncio.subprocess.Process, lines: list[str]) -> list[str]:
    process.send_signal(signal.SIGTERM)
    _, rest = await asyncio.wait_for(process.communicate(), timeout=TIMEOUT)
    lines += rest.decode().splitlines()
    assert process.returncode == 0, lines
    return [json.loads(line)["msg"] for line in lines if line.strip()]


def submission(n: int) -> bytes:
    email = f"worker{n}@example.com"
    event = form_submission_event(contact_id=100 + n, email=email, submission_id=n,
                                  results={"email": email, "consent": "1"})
    return json.dumps(merge_payloads(event)).encode()


async def counts(sessions: SessionFactory) -> tuple[int, int, list[str]]:
    """Deliveries not split yet, consent records, and the states of the intake process jobs."""
    async with unit_of_work(sessions) as session:
        deliveries = (await session.exec(select(func.count()).select_from(InboxDelivery))).one()
        records = (await session.exec(select(func.count()).select_from(ConsentRecord))).one()
        states = (await session.exec(select(Job.state).where(Job.kind == IntakeJob.PROCESS))).all()
    return int(deliveries), int(records), sorted(states)


async def test_web_only_serve_runs_no_job_and_the_worker_runs_it_and_stops_on_sigterm(
        postgres_url: str, tmp_path: Path) -> None:
    # On PostgreSQL, where web and worker are scaled apart (the Procfile); SQLite runs both in one `serve`.
    db_url = postgres_url
    async with sandbox(db_url, tuning=test_tuning(), start_bot=False) as box:
        env = _env({**_settings_env(box), "HOST": "127.0.0.1", "PORT": str(_free_port())})
        code, _, err = await _run(["migrate"], env, tmp_path)
        assert code == 0, err
        engine = make_engine(db_url)
        sessions = make_session_factory(engine)
        body = submission(1)
        async with unit_of_work(sessions) as session:  # a delivery whose job is due now
            await intake_store.insert_deliveries(session, [{"received_at": utcnow(), "body": body,
                                                            "body_sha256": hashlib.sha256(body).hexdigest()}])
            await queue.enqueue(session, IntakeJob.PROCESS, {}, max_attempts=5)

        async with bot_process(["serve", "--no-worker"], env, tmp_path, "listening") as (web, web_lines):
            second = submission(2)
            headers = {"Content-Type": "application/json",
                       "Webhook-Signature": sign_webhook(second, env["MAUTIC_WEBHOOK_SECRET"])}
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{env['PORT']}/mautic/webhook", data=second,
                                     headers=headers) as response:
                    assert response.status == 200, await response.text()
                async with http.get(f"http://127.0.0.1:{env['PORT']}/healthz") as response:
                    assert response.status == 200
            # A runner claims a due job on its first turn; the web process has none, so both wait.
            assert await counts(sessions) == (2, 0, [JobState.QUEUED])
            assert "stopped" in await stop(web, web_lines)
        assert await counts(sessions) == (2, 0, [JobState.QUEUED])

        async with bot_process(["worker"], env, tmp_path, "worker running") as (worker, worker_lines):
            async with asyncio.timeout(TIMEOUT):
                while (await counts(sessions))[:2] != (0, 2):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # another process works the queue; polling its effect in the database
            messages = await stop(worker, worker_lines)
        assert "shutting down" in messages and messages[-1] == "stopped" and "listening" not in messages
        assert (await counts(sessions))[2] == [JobState.DONE]
        await engine.dispose()


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


async def test_web_processes_start_listeners_on_one_port_and_stop_with_the_first(
        sqlite_url: str, tmp_path: Path) -> None:
    async with sandbox(sqlite_url, tuning=test_tuning(), start_bot=False) as box:
        port = _free_port()
        env = _env({**_settings_env(box), "HOST": "127.0.0.1", "PORT": str(port), "WEB_PROCESSES": "3"})
        async with bot_process(["serve"], env, tmp_path, "listening") as (first, lines):
            async with asyncio.timeout(TIMEOUT):
                while len(children := children_of(first.pid)) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)  # the listeners start after the first one is up
            async with aiohttp.ClientSession() as http:
                for _ in range(6):  # every listener on the port answers, whichever the kernel picks
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        assert response.status == 200
            assert "stopped" in await stop(first, lines)
        assert not alive(children)  # stopped and reaped by the first
