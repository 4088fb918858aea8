"""Encryption at rest for access packages: AES-256-GCM over fixed-size chunks.

File layout: ``MPBX1\\n`` magic, a 16-byte random salt, then chunks of ``<4-byte length><ciphertext>``.
The key is HKDF-SHA256(BOT_SECRET_KEY, salt) so every file has its own key; chunk *i* uses the
96-bit big-endian counter *i* as nonce and authenticates "i, is-last" as associated data, so a
reordered, dropped or truncated chunk fails to decrypt instead of yielding a shortened package.
Memory stays at one chunk however large the package grows.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import struct
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PARTIAL_SUFFIX = ".partial"

MAGIC = b"MPBX1\n"
SALT_BYTES = 16
CHUNK = 256 * 1024
_INFO = b"mautic-privacy-bot access package v1"


class SealedFileError(Exception):
    """The file is not a package sealed with this key, or it was altered or cut short."""


def _key(secret: str, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(secret.encode())


def _nonce(index: int) -> bytes:
    return index.to_bytes(12, "big")


def _aad(index: int, last: bool) -> bytes:
    return struct.pack(">Q?", index, last)


class SealedWriter:
    """A write-only sink: ``write()`` is synchronous and cheap (it only buffers and seals in memory),
    ``await drain()`` moves sealed chunks to disk off the event loop, ``await close()`` seals the end."""

    def __init__(self, path: Path, secret: str, *, chunk_size: int = CHUNK) -> None:
        self.path = path
        # Written under a .partial name and renamed when sealed: a crash leaves a file the start-up sweep
        # recognises (bot.requests.execution.sweep_leftover_exports), never a half package under a final name.
        self.partial_path = path.with_name(path.name + PARTIAL_SUFFIX)
        self._salt = secrets.token_bytes(SALT_BYTES)
        self._aead = AESGCM(_key(secret, self._salt))
        self._chunk_size = chunk_size
        self._buffer = bytearray()
        self._sealed: list[bytes] = []
        self._index = 0
        self._file: IO[bytes] | None = None
        self.plaintext_bytes = 0
        self.size = 0

    async def open(self) -> SealedWriter:
        await asyncio.to_thread(private_directory, self.path.parent)
        # 0600: the package is personal data even though it is encrypted.
        fd = await asyncio.to_thread(os.open, self.partial_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._file = os.fdopen(fd, "wb")
        self._sealed.append(MAGIC + self._salt)
        return self

    def write(self, data: bytes) -> int:
        self._buffer += data
        self.plaintext_bytes += len(data)
        while len(self._buffer) >= self._chunk_size:
            self._seal(bytes(self._buffer[: self._chunk_size]), last=False)
            del self._buffer[: self._chunk_size]
        return len(data)

    def flush(self) -> None:
        """File-like API for zipfile; sealing happens on chunk boundaries and on close."""

    def _seal(self, plaintext: bytes, *, last: bool) -> None:
        sealed = self._aead.encrypt(_nonce(self._index), plaintext, _aad(self._index, last))
        self._sealed.append(struct.pack(">I", len(sealed)) + sealed)
        self._index += 1

    async def drain(self) -> None:
        if not self._sealed:
            return
        assert self._file is not None, "open() first"
        data, self._sealed = b"".join(self._sealed), []
        self.size += len(data)
        await asyncio.to_thread(self._file.write, data)

    async def close(self) -> None:
        self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        await self.drain()
        assert self._file is not None
        file, self._file = self._file, None
        await asyncio.to_thread(_sync_close, file)
        await asyncio.to_thread(os.replace, self.partial_path, self.path)

    async def abort(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            await asyncio.to_thread(file.close)
        await asyncio.to_thread(self.partial_path.unlink, True)


def private_directory(path: Path) -> Path:
    """``path`` as a directory only its owner can enter (0700), created if missing (blocking: run it in a
    thread)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _sync_close(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())
    file.close()


async def read_sealed(path: Path, secret: str) -> AsyncIterator[bytes]:
    """Yield the plaintext chunk by chunk; raises SealedFileError on any tampering or truncation."""
    file = await asyncio.to_thread(open, path, "rb")
    try:
        head = await asyncio.to_thread(file.read, len(MAGIC) + SALT_BYTES)
        if len(head) != len(MAGIC) + SALT_BYTES or not head.startswith(MAGIC):
            raise SealedFileError("not a sealed access package")
        aead = AESGCM(_key(secret, head[len(MAGIC):]))
        index = 0
        while True:
            size_bytes = await asyncio.to_thread(file.read, 4)
            if len(size_bytes) < 4:
                raise SealedFileError("package is truncated")
            (size,) = struct.unpack(">I", size_bytes)
            sealed = await asyncio.to_thread(file.read, size)
            if len(sealed) != size:
                raise SealedFileError("package is truncated")
            last = await asyncio.to_thread(_at_end, file)
            try:
                plaintext = aead.decrypt(_nonce(index), sealed, _aad(index, last))
            except Exception:
                raise SealedFileError("package was altered or sealed with another key") from None
            if plaintext:
                yield plaintext
            if last:
                return
            index += 1
    finally:
        await asyncio.to_thread(file.close)


def _at_end(file: IO[bytes]) -> bool:
    position = file.tell()
    more = file.read(1)
    file.seek(position)
    return not more
