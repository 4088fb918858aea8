"""When the database does not answer, webhook deliveries go to a local spool file and lose nothing.

:class:`DeliverySpool` is the file: one append-only file per process in ``SPOOL_DIR`` (0700; files 0600), one
JSON line per delivery (a key, the time received, the raw body in base64), written and fsync'd on a worker
thread before the webhook answers 2xx. A record cut short by a crash was never acknowledged, so a torn last
line is skipped. Its size is bounded (``SPOOL_MAX_BYTES``): beyond it the webhook answers a clear 503.

:class:`SpoolingIntake` is the one call the webhook view makes once a delivery is verified: it commits the
delivery through the group-commit writer, and if the database fails or does not answer within
``COMMIT_TIMEOUT``, spools it instead. From then on (``degraded``, which /healthz reports) deliveries go
straight to the spool, and a mover checks the database every ``PROBE_INTERVAL``; once it answers, the spool's
files are moved into the inbox (each record's key written in the same transaction, ``spool_moves``, so a
move interrupted by a crash and run again inserts nothing twice), then deleted, and intake returns to
normal. A delivery whose direct commit timed out may still land later as well: its events are the same, and
the inbox's per-event dedupe keys make it processed once.

Several processes may share ``SPOOL_DIR``: each appends to its own file, holding an exclusive ``flock`` on
it, and a mover takes a file only by renaming it (atomic: one mover wins), its own file under its append
lock, another's only when no living process holds its lock (its owner died).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import DBAPIError

from storage import intake as store
from storage.db import ping, unit_of_work
from storage.types import utcnow

if TYPE_CHECKING:
    from bot.intake.writer import DeliveryWriter
    from bot.services import Services

log = logging.getLogger(__name__)

COMMIT_TIMEOUT = 5.0  # seconds a direct commit may take before the delivery is spooled instead
PROBE_INTERVAL = 1.0  # seconds between checks of the database while deliveries are spooled
MOVE_BATCH = 200  # deliveries moved into the inbox per transaction
FORGET_MOVES_AFTER = timedelta(days=7)
ACTIVE_SUFFIX = ".spool"
TAKEN_SUFFIX = ".moving"


class SpoolFull(Exception):
    """The spool has no room for another delivery: the webhook answers 503."""


@dataclass(frozen=True)
class Receipt:
    """How a delivery was kept: committed to the inbox (``delivery`` id) or spooled (``spooled`` key)."""

    delivery: int | None = None
    spooled: str | None = None


class DeliverySpool:
    def __init__(self, directory: Path, max_bytes: int, *, name: str | None = None) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.name = name or f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._lock = asyncio.Lock()
        self._fd: int | None = None
        self._held: dict[Path, int] = {}  # files taken for moving, with the descriptor holding their lock
        self._active_bytes = 0
        self._other_bytes = 0  # taken files and other processes' files, counted when looked at
        self.appended = 0  # deliveries spooled by this process (for /healthz and the tests)

    @property
    def path(self) -> Path:
        return self.directory / f"deliveries-{self.name}{ACTIVE_SUFFIX}"

    def room(self) -> int:
        """Bytes left before the spool is full, as last counted (no I/O)."""
        return self.max_bytes - self._active_bytes - self._other_bytes

    def holds_own(self) -> bool:
        """Whether this process's own spool file holds deliveries not yet taken for moving (no I/O)."""
        return self._active_bytes > 0

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir()
                          if p.name.startswith("deliveries-") and p.suffix in (ACTIVE_SUFFIX, TAKEN_SUFFIX))
        except FileNotFoundError:
            return []

    async def append(self, body: bytes, received_at: datetime) -> str:
        """Spool one delivery durably (written and fsync'd before this returns); its key."""
        key = uuid.uuid4().hex
        line = json.dumps({"key": key, "received_at": received_at.isoformat(),
                           "body": base64.b64encode(body).decode("ascii")}, separators=(",", ":")) + "\n"
        data = line.encode("ascii")
        async with self._lock:
            if self._fd is None:
                self._other_bytes = await asyncio.to_thread(self._others_size)
            if self._active_bytes + self._other_bytes + len(data) > self.max_bytes:
                raise SpoolFull(f"spool full ({self.max_bytes} bytes)")
            await asyncio.to_thread(self._write, data)
            self._active_bytes += len(data)
            self.appended += 1
        return key

    def _others_size(self) -> int:
        total = 0
        for path in self._files():
            if path != self.path:
                with contextlib.suppress(FileNotFoundError):
                    total += path.stat().st_size
        return total

    def _write(self, data: bytes) -> None:
        if self._fd is None:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self.directory, 0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # "alive": other processes' movers leave this file alone
            _fsync_dir(self.directory)  # the new file's name is durable too
            self._fd = fd
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        os.fsync(self._fd)

    def appending(self) -> asyncio.Lock:
        """The append lock: held, no delivery is being spooled."""
        return self._lock

    async def take(self) -> list[Path]:
        """Claim every file ready to move: this process's own (under the append lock, so no append is cut
        off) and any no living process holds (its writer or mover died). Each claimed file is renamed to this
        process's name and kept locked until :meth:`remove`, so no other mover takes it meanwhile."""
        async with self._lock:
            return await asyncio.to_thread(self._take)

    async def takeable(self) -> bool:
        """Whether :meth:`take` would claim anything now (checked with the append lock held by the caller)."""
        return self._active_bytes > 0 or await asyncio.to_thread(self._any_unlocked)

    def _any_unlocked(self) -> bool:
        return any(path not in self._held and _unlocked(path) for path in self._files())

    def _take(self) -> list[Path]:
        if self._fd is not None:
            os.close(self._fd)  # stops appending here (and drops the file's lock for a moment)
            self._fd = None
            self._active_bytes = 0
        taken = list(self._held)
        for path in self._files():
            if path in self._held:
                continue
            fd = _lock(path)
            if fd is None:
                continue  # a living process appends to it or moves it
            target = self.directory / f"deliveries-{uuid.uuid4().hex[:12]}-by-{self.name}{TAKEN_SUFFIX}"
            try:
                os.rename(path, target)  # the lock is on the file, and goes with it
            except FileNotFoundError:
                os.close(fd)
                continue
            self._held[target] = fd
            taken.append(target)
        if taken:
            _fsync_dir(self.directory)
        return taken

    @staticmethod
    def read(path: Path) -> list[dict[str, Any]]:
        """The deliveries in a spool file (blocking: call on a worker thread); a torn last line is skipped."""
        rows: list[dict[str, Any]] = []
        with path.open("rb") as file:
            for number, line in enumerate(file, 1):
                try:
                    record = json.loads(line)
                    body = base64.b64decode(record["body"], validate=True)
                    rows.append({"key": str(record["key"]),
                                 "received_at": datetime.fromisoformat(record["received_at"]),
                                 "body": body, "body_sha256": hashlib.sha256(body).hexdigest()})
                except (ValueError, KeyError, TypeError):
                    log.warning("spool %s: line %d unreadable (cut short by a crash before it was answered)",
                                path.name, number)
        return rows

    async def remove(self, path: Path) -> None:
        """Delete a moved file (every record in it is committed), then let go of its lock."""
        def _remove() -> None:
            path.unlink(missing_ok=True)
            _fsync_dir(self.directory)
            fd = self._held.pop(path, None)
            if fd is not None:
                os.close(fd)

        await asyncio.to_thread(_remove)

    async def close(self) -> None:
        async with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            for fd in self._held.values():
                os.close(fd)  # a file taken but not moved stays for the next start to move
            self._held.clear()


def _lock(path: Path) -> int | None:
    """A descriptor holding ``path``'s exclusive lock, or None if a living process holds it (or it is gone)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _unlocked(path: Path) -> bool:
    fd = _lock(path)
    if fd is None:
        return False
    os.close(fd)
    return True


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def database_unavailable(exc: BaseException) -> bool:
    """Errors that mean "the database did not take it" rather than a bug: spool and go on."""
    return isinstance(exc, DBAPIError | OSError | TimeoutError)


class SpoolingIntake:
    """The webhook's one way to keep a verified delivery: the inbox when the database answers, else the spool."""

    def __init__(self, services: Services, writer: DeliveryWriter, spool: DeliverySpool, *,
                 commit_timeout: float = COMMIT_TIMEOUT, probe_interval: float = PROBE_INTERVAL,
                 probe: Callable[[], Awaitable[None]] | None = None) -> None:
        self.services, self.writer, self.spool = services, writer, spool
        self.commit_timeout, self.probe_interval = commit_timeout, probe_interval
        self._probe = probe or (lambda: ping(services.engine))
        self.degraded: str | None = None  # why deliveries are being spooled, while they are
        self._mover: asyncio.Task[None] | None = None
        self._stopping = False
        self.moved = 0  # deliveries moved from the spool into the inbox by this process
        self._idle = asyncio.Event()  # set while no mover runs (nothing of this process's is waiting)
        self._idle.set()

    async def accept(self, body: bytes, received_at: datetime) -> Receipt:
        """Keep one verified delivery durably; raises :class:`SpoolFull` when it cannot."""
        if self.degraded is None:
            try:
                delivery = await self.writer.commit(body, received_at, timeout=self.commit_timeout)
                return Receipt(delivery=delivery)
            except Exception as exc:
                if not database_unavailable(exc):
                    raise
                self._degrade(f"database unavailable ({type(exc).__name__})")
        key = await self.spool.append(body, received_at)
        self._ensure_mover()
        return Receipt(spooled=key)

    def _degrade(self, reason: str) -> None:
        if self.degraded is None:
            log.warning("webhook intake: %s; deliveries go to the local spool until it answers", reason)
        self.degraded = reason

    def start(self) -> None:
        """At start-up: move whatever an earlier run left in the spool, once the database answers (the mover
        finds nothing to do and ends if there is nothing)."""
        self._ensure_mover()

    def _ensure_mover(self) -> None:
        if not self._stopping and (self._mover is None or self._mover.done()):
            self._idle.clear()
            self._mover = asyncio.create_task(self._move_when_back(), name="intake-spool-mover")
            self._mover.add_done_callback(lambda _task: self._idle.set())

    async def drained(self) -> None:
        """Wait until everything spooled has been moved into the inbox and intake is back to normal (the
        tests and benchmarks wait on this instead of polling)."""
        await self._idle.wait()

    async def stop(self) -> None:
        self._stopping = True
        if self._mover is not None:
            self._mover.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._mover
        await self.spool.close()

    def spool_has_room(self) -> bool:
        """Whether another delivery of typical size fits in the spool (from memory: no I/O)."""
        return self.spool.room() > 64 * 1024

    def status(self) -> dict[str, Any]:
        """What /healthz reports about intake (from memory: no I/O)."""
        if self.degraded is None and not self.spool.holds_own():
            return {"intake": "ok"}
        return {"intake": "spooling", "reason": self.degraded or "moving spooled deliveries into the inbox",
                "spooled": self.spool.appended, "moved": self.moved}

    async def _move_when_back(self) -> None:
        while not self._stopping:
            try:
                await asyncio.wait_for(self._probe(), timeout=max(self.probe_interval, 2.0))
                await self._move_all()
                async with self.spool.appending():  # no append slips in between the check and the switch
                    if not await self.spool.takeable():
                        if self.degraded is not None:
                            log.info("webhook intake: database answers again; spool moved into the inbox")
                        self.degraded = None
                        return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not database_unavailable(exc):
                    log.exception("webhook spool: moving failed")
                self._degrade(f"database unavailable ({type(exc).__name__})")
            await asyncio.sleep(self.probe_interval)

    async def _move_all(self) -> None:
        for path in await self.spool.take():
            rows = await asyncio.to_thread(DeliverySpool.read, path)
            for start in range(0, len(rows), MOVE_BATCH):
                batch = rows[start:start + MOVE_BATCH]
                now = utcnow()
                async with unit_of_work(self.services.sessions) as session:
                    ids = await store.move_spooled(session, batch, now, forget_before=now - FORGET_MOVES_AFTER)
                    if ids:
                        await self.writer.ensure_job(session)
                self.moved += len(ids)
            await self.spool.remove(path)  # only once every record in it is committed
            log.info("webhook spool: moved %d deliveries from %s into the inbox", len(rows), path.name)
