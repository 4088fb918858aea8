"""Shared steps of the request tests: file through the real slash command, find the request message,
click its buttons, submit its modals — all as signed Slack requests against the running service."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from bot.requests.ids import IdentityInput, NoticeInput, ReasonInput, RequestButton
from bot.requests.model import RequestState
from sandbox.harness import PRIVACY_CHANNEL, Person, Sandbox
from sandbox.slack import Message
from storage import requests as store
from storage.db import unit_of_work
from tests.helpers import text_of

TIMEOUT = 15.0


async def file_request(box: Sandbox, person: Person, text: str, *, expect_contacts: bool = True) -> Message:
    """File with the slash command; return the request message once its contact lookup is shown."""
    before = len(box.slack.messages(PRIVACY_CHANNEL))
    result = await box.command(person, text)
    assert result.status == 200, result.text
    assert "Filed" in result.text, result.text
    await box.slack.wait_until(lambda: len(box.slack.messages(PRIVACY_CHANNEL)) > before, timeout=TIMEOUT,
                               describe="the request message")
    message = box.slack.messages(PRIVACY_CHANNEL)[-1]
    if expect_contacts:
        await box.slack.wait_until(lambda: "looking up" not in text_of(message), timeout=TIMEOUT,
                                   describe="the contact lookup")
    return message


def request_id_of(message: Message) -> int:
    for block in message.blocks:
        if block.get("type") == "actions":
            return int(block["elements"][0]["value"])
    header = message.blocks[0]["text"]["text"]
    return int(header.rsplit("#", 1)[1])


async def click(box: Sandbox, person: Person, message: Message, action_id: str) -> Any:
    result = await box.user.click(person.id, message, action_id)
    assert result.status == 200, result.text
    return result


def state_shown(message: Message) -> str:
    """The State field of the request message as the channel shows it now."""
    for block in message.blocks:
        for item in block.get("fields") or []:
            if item["text"].startswith("*State*"):
                return str(item["text"].split("\n", 1)[1])
    return ""


async def wait_state(box: Sandbox, message: Message, state: str, timeout: float = TIMEOUT) -> store.PrivacyRequest:
    """Wait until the channel message shows ``state`` (it is redrawn after each committed change)."""
    label = RequestState(state).label
    await box.slack.wait_until(lambda: state_shown(message).endswith(label), timeout=timeout,
                               describe=f"request message showing {label!r} (shows {state_shown(message)!r})")
    row = await load_row(box, request_id_of(message))
    assert row is not None and row.state == state, (row.state if row else None, state)
    return row


async def load_row(box: Sandbox, request_id: int) -> store.PrivacyRequest | None:
    async with unit_of_work(box.services.sessions) as session:
        return await store.get_request(session, request_id)


async def open_modal(box: Sandbox, person: Person, message: Message, action_id: str) -> Any:
    before = len(box.slack.views)
    await click(box, person, message, action_id)
    await box.slack.wait_until(lambda: len(box.slack.views) > before, timeout=TIMEOUT, describe="a modal")
    return box.slack.views[-1]


async def submit_reason(box: Sandbox, person: Person, view: Any, reason: str) -> Any:
    values: dict[str, dict[str, dict[str, str]]] = {
        ReasonInput.BLOCK: {ReasonInput.ACTION: {"type": "plain_text_input", "value": reason}}}
    return await box.user.submit_view(person.id, view, values)


async def submit_extension(box: Sandbox, person: Person, view: Any, reason: str, *, told_on: str | None,
                           confirmed: bool = True) -> Any:
    """Answer the Extend modal: the reason, the notice checkbox and the day the requester was told."""
    values: dict[str, dict[str, dict[str, Any]]] = {
        ReasonInput.BLOCK: {ReasonInput.ACTION: {"type": "plain_text_input", "value": reason}},
        NoticeInput.CONFIRM_BLOCK: {NoticeInput.CONFIRM_ACTION: {
            "type": "checkboxes", "selected_options": [{"value": NoticeInput.TOLD}] if confirmed else []}},
        NoticeInput.DATE_BLOCK: {NoticeInput.DATE_ACTION: {"type": "datepicker", "selected_date": told_on}},
    }
    return await box.user.submit_view(person.id, view, values)


async def submit_identity(box: Sandbox, person: Person, view: Any, method: str, note: str = "") -> Any:
    values: dict[str, dict[str, dict[str, Any]]] = {
        IdentityInput.METHOD_BLOCK: {IdentityInput.METHOD_ACTION: {
            "type": "radio_buttons", "selected_option": {"value": method} if method else None}},
        IdentityInput.NOTE_BLOCK: {IdentityInput.NOTE_ACTION: {"type": "plain_text_input", "value": note or None}},
    }
    return await box.user.submit_view(person.id, view, values)


async def verify_identity(box: Sandbox, person: Person, message: Message, method: str = "address_reply",
                          note: str = "") -> store.PrivacyRequest:
    """Click "Identity verified", answer the modal, and wait until the request shows as verified."""
    view = await open_modal(box, person, message, RequestButton.VERIFY)
    result = await submit_identity(box, person, view, method, note)
    assert result.status == 200 and not result.text.strip(), result.text
    return await wait_state(box, message, "verified")


def thread_texts(box: Sandbox, message: Message) -> list[str]:
    return [text_of(m) for m in box.slack.thread(PRIVACY_CHANNEL, message.ts)]


async def wait_thread(box: Sandbox, message: Message, needle: str, timeout: float = TIMEOUT) -> str:
    def found() -> bool:
        return any(needle in t for t in thread_texts(box, message))

    await box.slack.wait_until(found, timeout=timeout, describe=f"a thread reply containing {needle!r}")
    return next(t for t in thread_texts(box, message) if needle in t)


def unzip(data: bytes) -> zipfile.ZipFile:
    return zipfile.ZipFile(io.BytesIO(data))


async def release(box: Sandbox, message: Message, person: Person) -> str:
    """Release a prepared access package (an approver who did not file it); the reply that delivers it."""
    await wait_thread(box, message, "is prepared")
    await click(box, person, message, RequestButton.RELEASE)
    return await wait_thread(box, message, "released by")
def cleanup_buttons(checklist: Message, action_id: str = RequestButton.CLEANUP_DONE) -> list[tuple[str, str]]:
    """(block_id, value) of every open line's button ``action_id`` on an erasure's clean-up checklist."""
    return [(str(b["block_id"]), str(e["value"])) for b in checklist.blocks if b.get("type") == "actions"
            for e in b["elements"] if e["action_id"] == action_id]


async def checklist_of(box: Sandbox, message: Message) -> Message:
    await wait_thread(box, message, "clean-up checklist")
    return next(m for m in box.slack.thread(PRIVACY_CHANNEL, message.ts) if "clean-up checklist" in text_of(m))


async def tick_line(box: Sandbox, person: Person, checklist: Message, block_id: str, value: str,
                    action_id: str = RequestButton.CLEANUP_DONE) -> Any:
    result = await box.user.click(person.id, checklist, action_id, value, block_id=block_id)
    assert result.status == 200, result.text
    return result


async def finish_cleanup(box: Sandbox, message: Message, person: Person) -> store.PrivacyRequest:
    """Wait for the erasure's clean-up checklist, tick every line Done, and wait until the request is done."""
    checklist = await checklist_of(box, message)
    while buttons := cleanup_buttons(checklist):
        await tick_line(box, person, checklist, *buttons[0])
        await box.slack.wait_until(lambda line=buttons[0]: line not in cleanup_buttons(checklist),  # type: ignore[misc]
                                   timeout=TIMEOUT, describe="the ticked line redrawn")
    return await wait_state(box, message, "done")
