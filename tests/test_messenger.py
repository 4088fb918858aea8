"""The one Slack messenger against the Slack stand-in: 429 waits Retry-After, 5xx and timeouts back off,
give-up is reported once and raised (or swallowed with best_effort), Slack's refusals are not retried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from slack_sdk.web.async_client import AsyncWebClient

from bot.slack.messenger import SlackMessenger, SlackRefused, SlackUnavailable
from sandbox.harness import PRIVACY_CHANNEL
from sandbox.slack import FakeSlack


class Waits:
    """Records the delays the messenger asks for instead of spending them (the policy is what is tested)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
async def client(slack: FakeSlack) -> AsyncIterator[AsyncWebClient]:
    async with aiohttp.ClientSession() as http:
        # No SDK retry handlers: the messenger's own policy is what runs.
        yield AsyncWebClient(token=slack.token, base_url=slack.api_url, session=http, retry_handlers=[])


async def test_rate_limit_waits_retry_after_then_posts_once(slack: FakeSlack, client: AsyncWebClient) -> None:
    waits = Waits()
    messenger = SlackMessenger(client, sleep=waits)
    slack.fail("chat.postMessage", retry_after=7)
    posted = await messenger.post(PRIVACY_CHANNEL, text="hello")
    assert posted is not None and posted.channel == PRIVACY_CHANNEL
    assert waits.delays == [7.0]
    assert [m.text for m in slack.messages(PRIVACY_CHANNEL)] == ["hello"]
    sent = slack.calls_to("chat.postMessage")[-1].params
    assert str(sent["unfurl_links"]).lower() == "false" and str(sent["unfurl_media"]).lower() == "false"


async def test_retry_after_is_capped(slack: FakeSlack, client: AsyncWebClient) -> None:
    waits = Waits()
    messenger = SlackMessenger(client, sleep=waits, retry_after_cap=5.0)
    slack.fail("chat.update", retry_after=600)
    posted = await messenger.post(PRIVACY_CHANNEL, text="v1")
    assert posted is not None
    assert await messenger.update(posted.channel, posted.ts, text="v2")
    assert waits.delays == [5.0]


async def test_server_errors_back_off_then_succeed(slack: FakeSlack, client: AsyncWebClient) -> None:
    waits = Waits()
    messenger = SlackMessenger(client, sleep=waits, backoff_base=1.0, attempts=3)
    slack.fail("chat.postMessage", status=503, times=2)
    assert await messenger.post(PRIVACY_CHANNEL, text="after two 503s") is not None
    assert len(waits.delays) == 2
    assert 0.5 <= waits.delays[0] <= 1.0 and 1.0 <= waits.delays[1] <= 2.0  # exponential, with jitter
    assert len(slack.messages(PRIVACY_CHANNEL)) == 1


async def test_give_up_is_reported_once_and_raised(slack: FakeSlack, client: AsyncWebClient) -> None:
    gave_up: list[str] = []
    messenger = SlackMessenger(client, sleep=Waits(), attempts=3,
                               on_give_up=lambda method, _exc: gave_up.append(method))
    slack.fail("chat.postMessage", status=502, times=3)
    with pytest.raises(SlackUnavailable) as raised:
        await messenger.post(PRIVACY_CHANNEL, text="never")
    assert raised.value.method == "chat.postMessage"
    assert gave_up == ["chat.postMessage"]
    assert len(slack.calls_to("chat.postMessage")) == 3
    assert slack.messages(PRIVACY_CHANNEL) == []


async def test_best_effort_returns_none_instead_of_raising(slack: FakeSlack, client: AsyncWebClient) -> None:
    messenger = SlackMessenger(client, sleep=Waits(), attempts=2)
    slack.fail("chat.postMessage", status=500, times=2)
    assert await messenger.post(PRIVACY_CHANNEL, text="lost", best_effort=True) is None
    assert await messenger.post_ephemeral("C0NOWHERE", "U0ALICE", text="x", best_effort=True) is False


async def test_refusals_are_not_retried(slack: FakeSlack, client: AsyncWebClient) -> None:
    waits = Waits()
    messenger = SlackMessenger(client, sleep=waits)
    with pytest.raises(SlackRefused) as raised:
        await messenger.post("C0NOWHERE", text="to a channel that does not exist")
    assert raised.value.error == "channel_not_found"
    assert waits.delays == []
    assert len(slack.calls_to("chat.postMessage")) == 1


async def test_one_at_a_time_serialises_a_key_and_forgets_it(client: AsyncWebClient) -> None:
    messenger = SlackMessenger(client)
    order: list[str] = []
    first_in, second_trying, release = asyncio.Event(), asyncio.Event(), asyncio.Event()

    async def first() -> None:
        async with messenger.one_at_a_time("request:1"):
            order.append("first in")
            first_in.set()
            await release.wait()
            order.append("first out")

    async def second() -> None:
        second_trying.set()  # no await between this and the acquire below
        async with messenger.one_at_a_time("request:1"):
            order.append("second in")

    async def other_key() -> None:
        async with messenger.one_at_a_time("request:2"):
            order.append("other key in")

    holder = asyncio.create_task(first())
    await first_in.wait()
    waiter = asyncio.create_task(second())
    await second_trying.wait()
    await other_key()  # another key is not held up by request:1
    release.set()
    await asyncio.gather(holder, waiter)
    assert order == ["first in", "other key in", "first out", "second in"]
    assert messenger._locks == {}  # no lock kept for a key nobody holds or waits for
