"""A loopback TCP proxy that a test or benchmark cuts and restores, to play a database outage.

Put it in front of PostgreSQL (``DATABASE_URL`` pointing at the proxy's port) and call :meth:`TcpProxy.cut`:
every open connection is closed and new ones are either closed at once (``"refuse"``: the server is down) or
accepted and never answered (``"hang"``: a network partition, where only timeouts help). :meth:`restore`
forwards again. Nothing starts on import.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Literal

CutMode = Literal["refuse", "hang"]


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host, self.target_port = target_host, target_port
        self.port = 0
        self.cut_mode: CutMode | None = None
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
        self._drop_all()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def cut(self, mode: CutMode = "refuse") -> None:
        """Close every connection through the proxy, and treat new ones per ``mode`` until :meth:`restore`."""
        self.cut_mode = mode
        self._drop_all()

    def restore(self) -> None:
        self.cut_mode = None

    def _drop_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.cut_mode == "refuse":
            writer.transport.abort()
            return
        if self.cut_mode == "hang":
            self._writers.add(writer)  # held open, never answered, until restore() and the next cut/exit
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def _pipe(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        try:
            while data := await source.read(65536):
                sink.write(data)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(Exception):
                sink.transport.abort()
            self._writers.discard(sink)
