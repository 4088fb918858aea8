"""The one Slack messenger: every post, update, ephemeral and upload the bot makes goes through here,
under one failure policy.

- 429: wait ``Retry-After`` (capped) and try again.
- 5xx, timeouts and connection errors: try again with exponential backoff and jitter.
- After ``attempts`` tries: the give-up hook is told, and :class:`SlackUnavailable` is raised, which the
  job runner retries later with its own backoff (so work is delayed, never dropped).
- Any other Slack error (``channel_not_found``, ``invalid_blocks``…) is :class:`SlackRefused`: retrying
  the same call cannot help.

Callers that must not fail because Slack is briefly down (a listener whose decision is already
committed) pass ``best_effort=True`` and get ``None`` instead of an exception.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse

log = logging.getLogger(__name__)

GiveUpHook = Callable[[str, BaseException], None]
# Told after every call the messenger makes: (method, outcome), outcome one of "ok", "refused", "unavailable".
CallObserver = Callable[[str, str], None]


class SlackError(Exception):
    """A Web API call that did not succeed; ``method`` names it, ``error`` is Slack's error code."""

    def __init__(self, method: str, error: str) -> None:
        super().__init__(f"Slack {method}: {error}")
        self.method, self.error = method, error


class SlackUnavailable(SlackError):
    """Slack kept answering 429/5xx or did not answer at all: try again later."""


class SlackRefused(SlackError):
    """Slack refused the call (``ok: false``); the same call will be refused again."""


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str


@dataclass
class SlackMessenger:
    client: AsyncWebClient
    attempts: int = 3
    retry_after_cap: float = 30.0
    backoff_base: float = 1.0
    on_give_up: GiveUpHook | None = None
    _observers: list[CallObserver] = field(default_factory=list)
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep)
    _locks: dict[str, tuple[asyncio.Lock, int]] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def one_at_a_time(self, key: str) -> AsyncIterator[None]:
        """Serialise the calls made under ``key`` in this process (two edits of one message in flight
        could land out of order). A key's lock is dropped once nobody holds or waits for it."""
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def post(self, channel: str, *, text: str, blocks: list[dict[str, Any]] | None = None,
                   thread_ts: str | None = None, best_effort: bool = False, **extra: Any) -> Posted | None:
        """``chat.postMessage`` with link and media unfurling off (nothing the bot posts should be fetched)."""
        kwargs: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False, "unfurl_media": False,
                                  **extra}
        if blocks is not None:
            kwargs["blocks"] = blocks
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        response = await self.call("chat.postMessage", best_effort=best_effort, **kwargs)
        if response is None:
            return None
        return Posted(str(response["channel"]), str(response["ts"]))

    async def update(self, channel: str, ts: str, *, text: str, blocks: list[dict[str, Any]] | None = None,
                     best_effort: bool = False, **extra: Any) -> bool:
        kwargs: dict[str, Any] = {"channel": channel, "ts": ts, "text": text, **extra}
        if blocks is not None:
            kwargs["blocks"] = blocks
        return await self.call("chat.update", best_effort=best_effort, **kwargs) is not None

    async def post_ephemeral(self, channel: str, user: str, *, text: str,
                             blocks: list[dict[str, Any]] | None = None, best_effort: bool = False) -> bool:
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks is not None:
            kwargs["blocks"] = blocks
        return await self.call("chat.postEphemeral", best_effort=best_effort, **kwargs) is not None

    async def upload(self, channel: str, *, filename: str, content: bytes, title: str,
                     initial_comment: str | None = None, thread_ts: str | None = None,
                     before_upload: Callable[[str], Awaitable[None]] | None = None) -> str:
        """Upload a file (files v2: getUploadURLExternal, the upload, completeUploadExternal); its file id.

        The three steps are made here rather than through the SDK's ``files_upload_v2`` so that
        ``before_upload`` learns the file id Slack grants before any byte leaves: a caller that must be
        able to delete the file later records the id durably there, and a crash in the middle still
        leaves the id behind. The content stays in memory throughout (no temporary file).
        """
        grant = await self.call("files.getUploadURLExternal", filename=filename, length=len(content))
        assert grant is not None
        file_id, upload_url = str(grant["file_id"]), str(grant["upload_url"])
        if before_upload is not None:
            await before_upload(file_id)

        async def send_bytes(**kwargs: Any) -> Any:
            # The SDK's own step 2 (a POST of the bytes to the granted URL), as files_upload_v2 makes it.
            client = self.client
            result = await client._upload_file(url=upload_url, data=content, logger=log, timeout=client.timeout,
                                               proxy=client.proxy, ssl=client.ssl)
            if result.status == 429 or result.status >= 500:
                raise aiohttp.ClientError(f"the upload URL answered {result.status}")  # retried below
            if result.status != 200:
                raise SlackRefused("files.upload", str(result.status))
            return result

        await self._with_policy("files.upload", send_bytes, {}, False)
        files = [{"id": file_id, "title": title}]
        kwargs: dict[str, Any] = {"files": files, "channel_id": channel}
        if initial_comment is not None:
            kwargs["initial_comment"] = initial_comment
        if thread_ts is not None:
            kwargs["thread_ts"] = thread_ts
        await self.call("files.completeUploadExternal", **kwargs)
        return file_id

    async def delete_file(self, file_id: str) -> bool:
        """``files.delete``; True when the file is gone, also when it was gone already (``file_not_found``,
        ``file_deleted``: a second delete after a crash is no failure). ``cant_delete_file`` and other
        refusals raise :class:`SlackRefused`."""
        try:
            await self.call("files.delete", file=file_id)
        except SlackRefused as exc:
            if exc.error in ("file_not_found", "file_deleted"):
                return True
            raise
        return True

    async def call(self, method: str, *, best_effort: bool = False, **kwargs: Any) -> AsyncSlackResponse | None:
        """Any Web API method (``"views.open"``, ``"usergroups.users.list"``) under the same policy."""
        # The SDK's own method (chat_postMessage for chat.postMessage) knows how each one is sent.
        return await self._with_policy(method, getattr(self.client, method.replace(".", "_")), kwargs, best_effort)

    async def _with_policy(self, method: str, send: Callable[..., Awaitable[Any]], kwargs: dict[str, Any],
                           best_effort: bool) -> Any:
        try:
            response = await self._attempt(method, send, kwargs)
        except SlackError as exc:
            self._observe(method, "unavailable" if isinstance(exc, SlackUnavailable) else "refused")
            if not best_effort:
                raise
            log.warning("slack %s failed, going on without it: %s", method, exc.error)
            return None
        self._observe(method, "ok")
        return response

    def observe(self, observer: CallObserver) -> None:
        """Tell ``observer`` about every call from now on (metrics count them; App Home hears of changes), so
        the messenger imports neither."""
        self._observers.append(observer)

    def _observe(self, method: str, outcome: str) -> None:
        for observer in self._observers:
            observer(method, outcome)

    async def _attempt(self, method: str, send: Callable[..., Awaitable[Any]], kwargs: dict[str, Any]) -> Any:
        last: BaseException | None = None
        for attempt in range(1, self.attempts + 1):
            try:
                return await send(**kwargs)
            except SlackApiError as exc:
                status = getattr(exc.response, "status_code", None) or 200
                error = str(exc.response.get("error") or status) if exc.response is not None else "unknown"
                if status == 429:
                    headers = getattr(exc.response, "headers", None) or {}
                    delay = min(_seconds(headers.get("Retry-After") or headers.get("retry-after")),
                                self.retry_after_cap)
                elif status >= 500:
                    delay = self._backoff(attempt)
                else:
                    raise SlackRefused(method, error) from exc
                last = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                delay, last = self._backoff(attempt), exc
            if attempt < self.attempts:
                await self.sleep(delay)
        assert last is not None
        if self.on_give_up is not None:
            self.on_give_up(method, last)
        raise SlackUnavailable(method, type(last).__name__) from last

    def _backoff(self, attempt: int) -> float:
        return self.backoff_base * 2 ** (attempt - 1) * (0.5 + random.random() / 2)  # noqa: S311 - jitter


def _seconds(value: Any) -> float:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0
