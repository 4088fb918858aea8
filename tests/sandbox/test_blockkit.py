"""The stand-in refuses what Slack refuses, for every kind of call the bot makes, and is at least as strict
as slack_sdk's own models (``Block.parse``, ``View``, ``Attachment``) wherever the two differ."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from sandbox.blockkit import validate_blocks, validate_message, validate_view, validate_view_answer
from sandbox.harness import ALICE, sandbox
from sandbox.loopback import serving
from sandbox.slack import FakeSlack, SlackUserAgent, render_message

CHANNEL = "C0PRIVACY"
SECRET = "blockkit-signing-secret"


def text(kind: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "text": value, **extra}


def input_block(element: dict[str, Any], block_id: str = "reason") -> dict[str, Any]:
    return {"type": "input", "block_id": block_id, "label": text("plain_text", "Reason"), "element": element}


def modal(**extra: Any) -> dict[str, Any]:
    return {"type": "modal", "title": text("plain_text", "Reject"), "callback_id": "reject",
            "blocks": [input_block({"type": "plain_text_input", "action_id": "text"})],
            "submit": text("plain_text", "Reject"), **extra}


INVALID_BLOCK = {"type": "section", "text": text("mrkdwn", "x", emoji=True)}  # emoji is for plain_text only


# ---- the checks themselves -------------------------------------------------------------------------


@pytest.mark.parametrize(("block", "error"), [
    # Slack: a section's fields hold 1 to 10 text objects; slack_sdk accepts [] next to a text.
    ({"type": "section", "text": text("mrkdwn", "x"), "fields": []},
     "must provide at least 1 item [json-pointer:/blocks/0/fields]"),
    # Slack: "emoji … Only usable when type is plain_text"; slack_sdk raises a bare TypeError.
    (INVALID_BLOCK, "unknown property: emoji [json-pointer:/blocks/0/text/emoji]"),
    # Slack's block schemas allow no other properties; slack_sdk only logs unknown keys at debug level.
    ({"type": "section", "text": text("mrkdwn", "x"), "colour": "red"},
     "unknown property: colour [json-pointer:/blocks/0/colour]"),
    ({"type": "divider", "text": text("plain_text", "x")}, "unknown property: text [json-pointer:/blocks/0/text]"),
    # Context block: "An array of image elements and text objects"; slack_sdk takes a button.
    ({"type": "context", "elements": [{"type": "button", "action_id": "a", "text": text("plain_text", "b")}]},
     "must be an image element or a text object [json-pointer:/blocks/0/elements/0]"),
    ({"type": "context", "elements": []}, "must provide at least one element [json-pointer:/blocks/0/elements]"),
    ({"type": "actions", "elements": []}, "must provide at least one element [json-pointer:/blocks/0/elements]"),
    # Plain-text input element: min_length 0-3000, max_length 1-3000 (slack_sdk checks neither).
    (input_block({"type": "plain_text_input", "action_id": "a", "min_length": 5, "max_length": 3}),
     "min_length must not exceed max_length [json-pointer:/blocks/0/element/min_length]"),
    (input_block({"type": "plain_text_input", "action_id": "a", "max_length": 5000}),
     "must be an integer from 1 to 3000 [json-pointer:/blocks/0/element/max_length]"),
    (input_block({"type": "plain_text_input", "action_id": "a", "max_length": 3, "initial_value": "four"}),
     "must be less than 4 characters [json-pointer:/blocks/0/element/initial_value]"),
    (input_block({"type": "plain_text_input", "action_id": "a", "placeholder": text("mrkdwn", "x")}),
     "must be plain_text [json-pointer:/blocks/0/element/placeholder/type]"),
    (input_block({"type": "button", "action_id": "a", "text": text("plain_text", "b")}),
     "must be an input element [json-pointer:/blocks/0/element/type]"),
    (input_block({"type": "plain_text_input", "action_id": "a", "multiline": "yes"}),
     "must be a boolean [json-pointer:/blocks/0/element/multiline]"),
    ({"type": "header", "text": text("mrkdwn", "x")}, "must be plain_text [json-pointer:/blocks/0/text/type]"),
])  # fmt: skip
def test_own_checks_refuse_what_slack_refuses(block: dict[str, Any], error: str) -> None:
    assert error in validate_blocks([block])


def test_slack_sdk_models_give_a_second_opinion_on_what_the_own_checks_accept() -> None:
    no_alt = {"type": "image", "image_url": "https://example.com/a.png"}  # ImageBlock requires alt_text
    long_placeholder = {"type": "actions", "elements": [{
        "type": "static_select", "action_id": "a", "placeholder": text("plain_text", "p" * 151),
        "options": [{"text": text("plain_text", "o"), "value": "v"}]}]}  # fmt: skip

    assert validate_blocks([no_alt])[0].startswith("slack_sdk: ImageBlock")
    assert validate_blocks([long_placeholder]) == [
        "slack_sdk: placeholder attribute cannot exceed 150 characters [json-pointer:/blocks/0]"
    ]
    assert validate_view({**modal(), "blocks": [{"type": "section", "text": text("mrkdwn", "x")}] * 0}) == [
        "slack_sdk: views must contain between 1 and 100 blocks [json-pointer:/view]"
    ]
    assert validate_message({"text": "x", "attachments": [{"text": "y", "colour": "red"}]})[0].startswith(
        "slack_sdk: Attachment.__init__() got an unexpected keyword argument 'colour'")
    assert validate_blocks([{"type": "section", "text": text("mrkdwn", "ok")}, no_alt | {"alt_text": "a"}]) == []


@pytest.mark.parametrize(("view", "error"), [
    # A modal's submit is required when it holds an input block, and submit/close are plain_text ≤ 24.
    ({k: v for k, v in modal().items() if k != "submit"},
     "submit is required when the view has input blocks [json-pointer:/view/submit]"),
    (modal(submit=text("mrkdwn", "Go")), "must be plain_text [json-pointer:/view/submit/type]"),
    (modal(close=text("plain_text", "C" * 25)), "must be less than 25 characters [json-pointer:/view/close/text]"),
    (modal(title=text("plain_text", "T" * 25)), "must be less than 25 characters [json-pointer:/view/title/text]"),
    (modal(submit_text="x"), "unknown property: submit_text [json-pointer:/view/submit_text]"),
    ({"type": "home", "blocks": [{"type": "divider"}], "title": text("plain_text", "Home")},
     "unknown property: title [json-pointer:/view/title]"),
])  # fmt: skip
def test_views_follow_slacks_view_reference(view: dict[str, Any], error: str) -> None:
    assert error in validate_view(view)
    assert validate_view(modal()) == []


def test_view_submission_answers_name_input_blocks_of_the_submitted_view() -> None:
    submitted = modal(blocks=[{"type": "section", "block_id": "intro", "text": text("mrkdwn", "x")},
                              input_block({"type": "plain_text_input", "action_id": "text"})])

    assert validate_view_answer({"response_action": "errors", "errors": {"reason": "Say why"}}, submitted) == []
    assert validate_view_answer({"response_action": "errors", "errors": {"intro": "Say why"}}, submitted) == [
        "no input block with this block_id in the view [json-pointer:/errors/intro]"
    ]
    assert validate_view_answer({"response_action": "update", "view": {"type": "modal"}}, submitted)
    assert validate_view_answer("", submitted) == []


def test_rendering_reads_references_and_escapes_as_slack_does() -> None:
    shown = render_message({"blocks": [
        {"type": "header", "text": text("plain_text", "Use <email> & co")},
        {"type": "section", "text": text("mrkdwn", "`/privacy dsar <email>` or &lt;email&gt; &amp; <#C1> <@U1>")},
        {"type": "section", "text": text("mrkdwn", "<https://x.test/a|the page> <mailto:a@x.test|mail>")},
    ]}, names={"C1": "privacy-ops", "U1": "alice"})  # fmt: skip

    assert shown.splitlines()[0] == "Use <email> & co"  # plain_text is never parsed for links
    assert shown.splitlines()[2] == "`/privacy dsar email` or <email> & #privacy-ops @alice"
    assert shown.splitlines()[3] == "the page (https://x.test/a) mail (mailto:a@x.test)"


# ---- every call kind reaches the checks --------------------------------------------------------------


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as slack:
        slack.add_user("U0ALICE", "alice", "alice@example.com")
        slack.add_channel(CHANNEL, "privacy", members=["U0ALICE"])
        yield slack


async def refused(call: Any) -> str:
    with pytest.raises(SlackApiError) as caught:
        await call
    return str(caught.value.response["error"])


async def test_every_web_api_call_kind_is_validated_and_recorded(fake: FakeSlack) -> None:
    client = AsyncWebClient(token=fake.token, base_url=fake.api_url)
    posted = await client.chat_postMessage(channel=CHANNEL, text="ok")
    trigger = fake.trigger_id("U0ALICE")
    opened = await client.views_open(trigger_id=trigger, view=modal())
    assert fake.refused == []

    errors = [
        await refused(client.chat_postMessage(channel=CHANNEL, text="x", blocks=[INVALID_BLOCK])),
        await refused(client.chat_update(channel=CHANNEL, ts=posted["ts"], text="x", blocks=[INVALID_BLOCK])),
        await refused(client.chat_postEphemeral(channel=CHANNEL, user="U0ALICE", text="x", blocks=[INVALID_BLOCK])),
        await refused(client.chat_postMessage(channel=CHANNEL, text="x", attachments=[{"text": "y", "colour": 1}])),
        # Sent as a form: the SDK puts initial_comment in the query string, too short for 40,001 characters.
        await refused(client.api_call("files.completeUploadExternal", data={
            "files": json.dumps([{"id": "F1"}]), "channel_id": CHANNEL, "initial_comment": "c" * 40_001})),
        await refused(client.api_call("files.completeUploadExternal", params={
            "files": json.dumps([{"id": "F1"}]), "channel_id": CHANNEL, "initial_comment": "x",
            "blocks": json.dumps([INVALID_BLOCK])})),
        await refused(client.views_open(trigger_id=fake.trigger_id("U0ALICE"), view=modal(submit=None))),
        await refused(client.views_update(view_id=opened["view"]["id"], view=modal(close=text("mrkdwn", "x")))),
        await refused(client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": [INVALID_BLOCK]})),
    ]
    webhook = await AsyncWebhookClient(fake.response_url("cmd", channel=CHANNEL, user="U0ALICE")).send(
        text="x", blocks=[INVALID_BLOCK])

    assert errors == ["invalid_blocks"] * 4 + ["msg_too_long", "invalid_blocks"] + ["invalid_arguments"] * 3
    assert webhook.status_code == 400
    assert [r.kind for r in fake.refused] == [
        "chat.postMessage", "chat.update", "chat.postEphemeral", "chat.postMessage",
        "files.completeUploadExternal", "files.completeUploadExternal", "views.open", "views.update",
        "views.publish", "response_url",
    ]
    with pytest.raises(AssertionError, match="Slack would refuse"):
        fake.assert_all_valid()
    home = await client.views_publish(user_id="U0ALICE", view={"type": "home", "blocks": [{"type": "divider"}]})
    assert home["view"]["type"] == "home"


async def test_answers_to_commands_clicks_and_submissions_are_validated(fake: FakeSlack) -> None:
    """The HTTP answer Bolt builds from ``ack(...)`` is what Slack shows (or refuses): the user agent
    checks it for a slash command, a button click and a modal submission."""
    bolt = AsyncApp(signing_secret=SECRET, client=AsyncWebClient(token=fake.token, base_url=fake.api_url),
                    process_before_response=False)

    @bolt.command("/privacy")
    async def on_command(ack: Any, command: dict[str, Any]) -> None:
        if command["text"] == "long":
            await ack("x" * 40_001)
        else:
            await ack(text="help", blocks=[INVALID_BLOCK])

    @bolt.view("reject")
    async def on_submit(ack: Any) -> None:
        await ack(response_action="errors", errors={"not-an-input": "Say why"})

    async def events(request: web.Request) -> web.Response:
        return await to_aiohttp_response(await bolt.async_dispatch(await to_bolt_request(request)))

    app = web.Application()
    app.router.add_post("/slack/events", events)
    async with serving(app) as url, aiohttp.ClientSession() as http:
        agent = SlackUserAgent(http, f"{url}/slack/events", SECRET, fake)
        with pytest.raises(AssertionError, match="slash-command answer would be refused"):
            await agent.command("U0ALICE", CHANNEL, "help")
        with pytest.raises(AssertionError, match="must be less than 40001 characters"):
            await agent.command("U0ALICE", CHANNEL, "long")
        with pytest.raises(AssertionError, match="view_submission answer would be refused"):
            await agent.submit_view("U0ALICE", modal(), {})
    assert [r.kind for r in fake.refused] == ["slash-command answer", "slash-command answer",
                                              "view_submission answer"]


async def test_the_harness_fails_a_test_whose_bot_sent_an_invalid_payload(sqlite_url: str) -> None:
    with pytest.raises(AssertionError, match=r"chat\.postMessage: unknown property: emoji"):
        async with sandbox(sqlite_url, start_bot=False) as box:
            client = AsyncWebClient(token=box.slack.token, base_url=box.slack.api_url)
            with pytest.raises(SlackApiError):  # the bot may swallow the refusal; the harness does not
                await client.chat_postMessage(channel=box.channel, text="x", blocks=[INVALID_BLOCK])
    async with sandbox(sqlite_url) as box:  # and a valid conversation passes
        result = await box.command(ALICE, "help")
        assert json.loads(result.text)["blocks"]
