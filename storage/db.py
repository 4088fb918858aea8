"""Engine and sessions on SQLAlchemy's async engine (aiosqlite by default, asyncpg for PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import time
import weakref
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, make_url
from sqlalchemy.exc import DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]


def async_url(url: str) -> str:
    """Map plain ``sqlite:///`` and ``postgresql://`` URLs to their async drivers."""
    for plain, driver in (
        ("sqlite://", "sqlite+aiosqlite://"),
        ("postgresql://", "postgresql+asyncpg://"),
        ("postgres://", "postgresql+asyncpg://"),
    ):
        if url.startswith(plain):
            return driver + url[len(plain):]
    return url


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    url = async_url(url)
    # A failing statement's error would otherwise quote its parameters (a webhook body, an address) into
    # every traceback that gets logged or shown; the statement itself is enough to find the fault.
    kwargs.setdefault("hide_parameters", True)
    if is_sqlite(url):
        _private_sqlite_file(url)
        # No rollback when a connection goes back to the pool: every unit of work ends its transaction itself
        # (SQLAlchemy's Connection rolls back what it began; the one-call writes end theirs on the driver's
        # thread), and on aiosqlite that redundant rollback is one more trip to the driver's thread, which
        # under load waits for a turn of the busy event loop: 1-1.5 ms of each group commit (bench/README.md).
        engine = create_async_engine(url, connect_args={"timeout": 30}, pool_reset_on_return=None, **kwargs)
        _configure_sqlite(engine)
        return engine
    engine = create_async_engine(url, pool_size=10, max_overflow=10, **kwargs)
    _ping_idle_connections(engine)
    return engine


# A pooled connection back in the pool for less than this was answered by the server that recently, so it
# is handed out without a ping. SQLAlchemy's pool_pre_ping pings on every checkout: three round trips on
# asyncpg (BEGIN, an empty query, ROLLBACK), which under sustained intake were a fifth of the worker's
# socket writes and several of PostgreSQL's statements per transaction (bench/README.md, wrk). A connection
# that dies within the window (a server restart) fails its statement instead; SQLAlchemy then invalidates
# the pool, and every caller already handles a failed transaction (the webhook spools, jobs retry).
PING_AFTER_IDLE_SECONDS = 2.0


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Pre-ping only connections that sat in the pool for PING_AFTER_IDLE_SECONDS or more (SQLAlchemy's
    documented pessimistic-disconnect recipe: a checkout listener raising DisconnectionError makes the pool
    discard the connection and hand out a fresh one)."""
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return  # a brand-new connection (just connected) or one the server answered a moment ago
        try:
            dbapi_connection.ping()  # runs on the engine's greenlet, as pool_pre_ping's ping does
        except Exception as exc:
            raise DisconnectionError("pooled connection did not answer its ping") from exc


def _private_sqlite_file(url: str) -> None:
    """Create the database file 0600 (or narrow it to that) before SQLite opens it: it holds personal data.
    SQLite gives its -wal and -shm files the database file's permissions. Runs once, when the engine is
    made at start, before any request is served."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    fd = os.open(database, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(database, 0o600)


def _configure_sqlite(engine: AsyncEngine) -> None:
    # SQLite has one writer. A deferred transaction that reads and then writes can fail at once
    # with SQLITE_BUSY when another writer got in between; BEGIN IMMEDIATE takes the write lock up
    # front so busy_timeout makes concurrent units of work wait instead of fail.
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # FULL, not NORMAL: in WAL mode NORMAL skips the fsync at each commit, so the last transactions
        # (a webhook delivery already answered 200, a decision already shown) can vanish on power loss or
        # an OS crash. Durable before acknowledged needs the fsync; group commit spreads its cost.
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


class WriterQueue:
    """This process's queue for SQLite's one writer: first come, first served, except that a holder who
    asks with :meth:`first` (the webhook's group commit, whose senders are waiting for their answer) goes
    ahead of everyone still waiting. Under load a transaction holds the writer across several event-loop
    turns, so a group commit queued behind a few of them waited 500-700 ms (hostile-load bench); now it
    waits for the one in progress at most."""

    def __init__(self) -> None:
        self._held = False
        self._first: deque[asyncio.Future[None]] = deque()
        self._rest: deque[asyncio.Future[None]] = deque()

    async def _acquire(self, queue: deque[asyncio.Future[None]]) -> None:
        if not self._held and not self._first and not self._rest:
            self._held = True
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        queue.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._hand_over()  # handed the writer just as we were cancelled: pass it on
            elif waiter in queue:  # a hand-over may already have skipped (and dropped) it
                queue.remove(waiter)
            raise

    def _hand_over(self) -> None:
        for queue in (self._first, self._rest):
            while queue:
                waiter = queue.popleft()
                if not waiter.done():
                    waiter.set_result(None)  # still held: ownership passes to that waiter
                    return
        self._held = False

    async def __aenter__(self) -> None:
        await self._acquire(self._rest)

    async def __aexit__(self, *_exc: object) -> None:
        self._hand_over()

    @asynccontextmanager
    async def first(self) -> AsyncIterator[None]:
        await self._acquire(self._first)
        try:
            yield
        finally:
            self._hand_over()


# SQLite takes one writer at a time, and a waiting connection retries on its own with sleeps of up to
# 100 ms, which shows up as tail latency under concurrency. Queueing this process's units of work on
# a WriterQueue hands the database over in order instead (another process still waits on busy_timeout).
_sqlite_writer_locks: weakref.WeakKeyDictionary[Any, WriterQueue] = weakref.WeakKeyDictionary()


def sqlite_writer_lock(factory: SessionFactory) -> WriterQueue | None:
    """This process's writer queue for a SQLite engine (None on PostgreSQL); anything that writes to
    SQLite outside :func:`unit_of_work` must hold it too."""
    bind = factory.kw.get("bind")
    if bind is None or bind.dialect.name != "sqlite":
        return None
    return _sqlite_writer_locks.setdefault(bind.sync_engine, WriterQueue())


@asynccontextmanager
async def unit_of_work(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One transaction: committed when the block ends, rolled back if it raises.

    Units of work must not nest: on SQLite the inner one would wait for the outer one forever.
    """
    async with AsyncExitStack() as stack:
        lock = sqlite_writer_lock(factory)
        if lock is not None:
            await stack.enter_async_context(lock)
        session = await stack.enter_async_context(factory())
        await stack.enter_async_context(session.begin())
        yield session


async def insert_unless_duplicate(session: AsyncSession, row: Any) -> bool:
    """Insert ``row`` in a savepoint; False when a unique constraint says it exists already.

    The one way a double click or a second replica racing for the same claim loses quietly, without
    spoiling the caller's transaction.
    """
    try:
        async with session.begin_nested():
            session.add(row)
            await session.flush()
    except IntegrityError:
        return False
    return True


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[Any]:
    """The driver's own connection, from the engine's pool, for the few statements sent past SQLAlchemy.

    SQLAlchemy turns a lost connection into its DBAPI error and throws the connection away; past it, that
    is done here for asyncpg: a pooled connection closed since its last use (the pool pings only idle
    ones) raises OperationalError (``connection_invalidated``), which callers handle as an outage (the
    webhook spools), and is not pooled again, so the next checkout reconnects instead of meeting it again.
    """
    async with engine.connect() as conn:
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        try:
            yield driver
        except (asyncpg.InterfaceError, asyncpg.PostgresConnectionError, OSError) as exc:
            await conn.invalidate()
            raise OperationalError(None, None, exc, connection_invalidated=True) from exc


async def ping(engine: AsyncEngine) -> None:
    """One ``SELECT 1`` on the driver's connection, outside any transaction: through SQLAlchemy it would
    begin one, and on SQLite every transaction begins IMMEDIATE (takes the write lock), so a health check
    would queue behind every writer, waiting in SQLite's own sleep-and-retry busy handler."""
    async with driver_connection(engine) as driver:
        if engine.dialect.name == "sqlite":
            async with driver.execute("SELECT 1") as cursor:
                await cursor.fetchone()
        else:
            await driver.fetchval("SELECT 1")
