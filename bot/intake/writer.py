"""The webhook's group commit, and the processing turn that keeps splitting and processing out of its way.

The webhook view stores each delivery raw (``inbox_deliveries``) through :class:`DeliveryWriter` and
answers once it is committed; in a process that runs jobs, the writer's watcher makes sure a queued
``intake.process`` job will see it (the request path itself never touches the job table).
Processing (``bot.intake.process``) takes its chunks through :meth:`DeliveryWriter.processing_turn`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from bot.intake.ids import IntakeJob
from storage import intake as store
from storage import jobs as job_queue
from storage.db import unit_of_work
from storage.types import utcnow

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from sqlmodel.ext.asyncio.session import AsyncSession

    from bot.services import Services

QUIET_GAP = 0.005  # seconds without a new delivery that count as a gap in intake
PROCESSING_FLOOR = 0.25  # seconds: processing gets a chunk at least this often, however busy intake is
# Chunk size multiplier for a turn taken while intake is quiet. Where processing shares the loop with a
# listener, only once intake has been idle for IDLE_GAP: a chunk of four units held the loop for 70-80 ms
# (bench/README.md, hostile load), and a delivery arriving meanwhile waits that long.
CHUNK_SCALE = 4
# The same in a process with no listener (a worker), where a long chunk holds up no request. Each chunk
# costs a fixed number of round trips and statements; ten units instead of four took web + worker CPU per
# delivery under wrk from 0.73 to 0.60 ms and the drain after the load from 7.8 to 0.4 s (bench/README.md).
WORKER_CHUNK_SCALE = 10
IDLE_GAP = 0.1  # seconds without a delivery after which a listener's process counts intake as idle
# A job the watcher queues starts this long after it looked, so deliveries arriving meanwhile share it.
PROCESS_DELAY = timedelta(milliseconds=200)
# The same during a burst (a commit ended less than BURST_GAP ago): processing then only gets the floor's
# chunks anyway, and a job due later lets the watcher skip more of its looks.
BURST_PROCESS_DELAY = timedelta(milliseconds=500)
BURST_GAP = 0.1  # seconds
# The watcher trusts a known queued job only until this long before it is due (room for clock skew between
# replicas' runners); after that it looks again.
JOB_DUE_MARGIN = timedelta(milliseconds=50)
WATCH_GAP = 0.05  # seconds: the watcher looks at most this often, however many commits poke it


def process_max_attempts(services: Services) -> int:
    return max(services.settings.job_max_attempts, 5)


class DeliveryWriter:
    """Group commit for the webhook view, and the signal processing reads to stay out of intake's way.

    Each request returns only after the transaction holding its delivery has committed (durable before
    acknowledged), but deliveries arriving while a commit is in flight share the next one: one
    statement for all of them instead of one each. A short-lived drain task does the commits, so no
    request queues on a lock behind requests already answered. The request path never touches the job
    table: in a process that runs jobs, a watcher (:meth:`start_watching`) queues processing for what any
    process stored, so a web-only process costs one INSERT per group commit and nothing else.
    """

    def __init__(self, services: Services, *, serves_web: bool = True) -> None:
        self.services = services
        self._serves_web = serves_web
        # (row, its request's future, loop time by which its commit must have ended)
        self._pending: list[tuple[dict[str, Any], asyncio.Future[int], float]] = []
        self._drainer: asyncio.Task[None] | None = None
        self.last_arrival = -math.inf  # loop time of the latest delivery handed to commit()
        self.in_flight = 0  # deliveries handed to commit() and not answered yet
        self._turn = asyncio.Lock()
        self._last_turn = -math.inf  # loop time the latest processing chunk ended
        self._job_due: datetime | None = None  # run_after of a process job seen queued (wall clock)
        self._sqlite = services.engine.dialect.name == "sqlite"
        self._last_commit = -math.inf  # loop time the latest group commit ended
        self._last_failure = -math.inf  # loop time the latest group commit failed
        self._committed = asyncio.Event()  # set by each group commit: the watcher looks at once
        self._watcher: asyncio.Task[None] | None = None
        self._watch_stopping = False
        self._splitters = 0  # process jobs of this process splitting until no delivery waits

    async def commit(self, body: bytes, received_at: datetime, *, timeout: float = math.inf) -> int:
        """Store one raw delivery durably; returns its id once committed. Raises TimeoutError when the
        commit holding it has not ended within ``timeout`` seconds (it is then cancelled)."""
        loop = asyncio.get_running_loop()
        self.last_arrival = now = loop.time()
        future: asyncio.Future[int] = loop.create_future()
        row = {"received_at": received_at, "body": body, "body_sha256": hashlib.sha256(body).hexdigest()}
        self._pending.append((row, future, now + timeout))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain(), name="intake-delivery-writer")
        self.in_flight += 1
        try:
            return await future
        finally:
            self.in_flight -= 1
            self.last_arrival = loop.time()  # its sender's next delivery is on its way

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            # One deadline per group commit, the earliest of its deliveries', instead of a timer per request:
            # a timer armed and cancelled per request held SQLite intake alone under wrk to 7,300-7,500
            # req/s, 8,400-8,650 without (bench/README.md).
            deadline = min(deadline for _row, _future, deadline in batch)
            try:
                async with asyncio.timeout_at(None if math.isinf(deadline) else deadline):
                    ids = await self._commit([row for row, _future, _deadline in batch])
            except BaseException as exc:
                self._last_failure = asyncio.get_running_loop().time()
                for _row, future, _deadline in batch:
                    if not future.done():  # a request cancelled meanwhile has no one to tell
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                if not isinstance(exc, Exception):
                    raise
                continue
            for (_row, future, _deadline), delivery_id in zip(batch, ids, strict=True):
                if not future.done():
                    future.set_result(delivery_id)

    async def _commit(self, rows: list[dict[str, Any]]) -> list[int]:
        # The request path only stores: one statement (PostgreSQL) or one call on the driver's thread
        # (SQLite). Making sure a process job will see the rows is the watcher's work, off this path.
        services = self.services
        if self._sqlite:
            ids = await store.commit_deliveries_sqlite(services.sessions, rows)
        elif len(rows) <= store.INSERTMANY_ROWS:
            ids = await store.commit_deliveries_autocommit(services.sessions, rows)
        else:
            async with unit_of_work(services.sessions) as session:
                ids = await store.insert_deliveries(session, rows)
        self._last_commit = asyncio.get_running_loop().time()
        self._committed.set()
        return ids

    def committed_within(self, seconds: float) -> bool:
        """Whether a group commit succeeded in the last ``seconds`` with none failing since: the database
        answered then."""
        return (asyncio.get_running_loop().time() - self._last_commit <= seconds
                and self._last_commit > self._last_failure)

    def start_watching(self, interval: float) -> None:
        """Run the watcher in this process (one that runs jobs): every ``interval`` seconds, and right after
        each of this process's own group commits, make sure a queued process job will see every stored
        delivery. Deliveries committed by web-only processes are found by the poll."""
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._watch(interval), name="intake-watcher")

    async def stop_watching(self) -> None:
        if self._watcher is not None:
            self._watch_stopping = True  # ends the loop even if the cancellation below is lost
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None
            self._watch_stopping = False

    async def _watch(self, interval: float) -> None:
        while not self._watch_stopping:
            # asyncio.timeout, not wait_for: on Python 3.11, wait_for returns the event's result instead of
            # raising when it is cancelled just as the event is set (a commit poking the watcher as the
            # service stops), and stop_watching() then waited forever for a watcher that went on looking.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._committed.wait()
            self._committed.clear()
            try:
                await self.schedule_processing()
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                # The database is away: the spool holds what arrives, and the next look tries again.
                log.warning("intake watcher: could not look for deliveries (%s)", type(exc).__name__)
            # At most one look per WATCH_GAP however often commits poke it: a burst needs one job, not one
            # query per group commit.
            await asyncio.sleep(WATCH_GAP)

    @contextlib.contextmanager
    def splitting(self) -> Iterator[None]:
        """Held by a process job of this process while it splits until no delivery waits (it sees every
        delivery committed before its last look), so the watcher need not look meanwhile: under sustained
        intake its looks (a write transaction each, holding SQLite's one writer 14 ms at the median) kept
        a tenth of the group commits waiting 17 ms or more. When the job ends, the watcher looks at once,
        for what was committed after the job's last look."""
        self._splitters += 1
        try:
            yield
        finally:
            self._splitters -= 1
            self._committed.set()

    async def schedule_processing(self) -> None:
        """If any delivery waits to be split, make sure a queued process job will see it."""
        if self._splitters:
            return  # a job splitting here will see it (splitting())
        due = self._job_due
        if due is not None and utcnow() < due - JOB_DUE_MARGIN:
            # A queued job whose run_after is still ahead cannot have been claimed by any runner (they claim
            # by run_after <= their clock), so it will see every delivery committed until now.
            return
        async with unit_of_work(self.services.sessions) as session:
            found = await self._ensure_job(session) if await store.has_deliveries(session) else None
        self._job_due = found  # only once committed: a rolled-back enqueue leaves no job to count on

    async def ensure_job(self, session: AsyncSession) -> datetime:
        """For deliveries stored outside :meth:`commit` (moved in from the webhook spool): make sure a queued
        process job will see what ``session`` commits."""
        return await self._ensure_job(session)

    async def _ensure_job(self, session: AsyncSession) -> datetime:
        """Make sure a queued process job will see what this transaction commits; remember when it starts."""
        # One waiting job drains every pending delivery, so deliveries arriving together share it.
        # A running job does not count: it may already be past these rows.
        services = self.services
        due = await store.queued_job_due(session, IntakeJob.PROCESS)
        if due is None:
            loop = asyncio.get_running_loop()
            delay = BURST_PROCESS_DELAY if loop.time() - self._last_commit < BURST_GAP else PROCESS_DELAY
            due = utcnow() + delay
            await job_queue.enqueue(session, IntakeJob.PROCESS, {}, max_attempts=process_max_attempts(services),
                                    run_after=due)
            # The runner polls only every few seconds; wake it when the job becomes due.
            loop.call_later(delay.total_seconds(), services.jobs.notify)
        return due

    @contextlib.asynccontextmanager
    async def processing_turn(self) -> AsyncIterator[int]:
        """Hold the processing turn for one chunk, once intake has had its way; yields the chunk scale.

        Splitting and processing run on the same event loop (and core) as the webhook view, and a chunk
        holds the loop (and on SQLite the one writer) for milliseconds. Intake comes first: while a
        delivery waits for its commit, or one arrived or was answered less than QUIET_GAP ago (senders
        post again as soon as they are answered), a processor waits for a gap, so a burst is answered at
        intake speed and worked off after it. The wait never exceeds
        PROCESSING_FLOOR since the previous chunk ended, so a flood without gaps still gets at least one
        chunk per floor and cannot starve processing. One turn at a time per process: chunks of
        concurrent process jobs queue here. In a worker process (no listener) a turn does WORKER_CHUNK_SCALE
        times the work; where a listener shares the loop, CHUNK_SCALE times once intake has been idle for
        IDLE_GAP (fewer transactions per event, a faster drain); otherwise it does one unit, so it holds
        the loop and SQLite's writer only briefly.
        """
        async with self._turn:
            loop = asyncio.get_running_loop()
            floor_at = self._last_turn + PROCESSING_FLOOR
            while True:
                now = loop.time()
                quiet_for = now - self.last_arrival
                quiet = quiet_for >= QUIET_GAP and not self.in_flight
                if quiet or now >= floor_at:
                    break
                await asyncio.sleep(min(max(QUIET_GAP - quiet_for, QUIET_GAP / 5), floor_at - now))
            # Without a listener nothing waits on the loop; with one, only after IDLE_GAP without a delivery
            # (a burst has ended) is a long chunk unlikely to hold up a delivery that arrives meanwhile.
            if not self._serves_web:
                scale = WORKER_CHUNK_SCALE if quiet else 1
            else:
                scale = CHUNK_SCALE if quiet and quiet_for >= IDLE_GAP else 1
            try:
                yield scale
            finally:
                self._last_turn = loop.time()

