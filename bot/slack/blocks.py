"""Block Kit builders: plain data in, message dicts out, no I/O. One builder per message kind."""

from __future__ import annotations

from datetime import date
from typing import Any

Block = dict[str, Any]

SECTION_TEXT_LIMIT = 3000
MAX_BLOCKS = 50


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, SECTION_TEXT_LIMIT)}}


def context(*texts: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(t, 3000)} for t in texts]}


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": truncate(text, 150)}}


def divider() -> Block:
    return {"type": "divider"}


def fields(pairs: list[tuple[str, str]]) -> Block:
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": truncate(f"*{k}*\n{v}", 2000)} for k, v in pairs[:10]],
    }


def button(
    text: str, action_id: str, value: str, *, style: str | None = None, confirm: dict[str, Any] | None = None
) -> Block:
    element: Block = {
        "type": "button",
        "action_id": action_id,
        "value": value,
        "text": {"type": "plain_text", "text": truncate(text, 75)},
    }
    if style:
        element["style"] = style
    if confirm:
        element["confirm"] = confirm
    return element


def confirm_dialog(title: str, text: str, confirm: str, *, danger: bool = False) -> dict[str, Any]:
    dialog: dict[str, Any] = {
        "title": {"type": "plain_text", "text": truncate(title, 100)},
        "text": {"type": "mrkdwn", "text": truncate(text, 300)},
        "confirm": {"type": "plain_text", "text": truncate(confirm, 30)},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def modal(callback_id: str, *, ref: str, title: str, submit: str, blocks: list[Block]) -> dict[str, Any]:
    """A modal whose ``private_metadata`` carries the opaque id ``ref`` of what it decides on."""
    return {
        "type": "modal",
        "callback_id": callback_id,
        "private_metadata": ref,
        "title": {"type": "plain_text", "text": truncate(title, 24)},
        "submit": {"type": "plain_text", "text": truncate(submit, 24)},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": blocks,
    }


def input_block(block_id: str, label: str, element: dict[str, Any], *, optional: bool = False) -> Block:
    """A modal input block holding ``element`` (which carries its own ``action_id``)."""
    block: Block = {"type": "input", "block_id": block_id,
                    "label": {"type": "plain_text", "text": truncate(label, 2000)}, "element": element}
    if optional:
        block["optional"] = True
    return block


def _plain(text: str, limit: int) -> dict[str, str]:
    return {"type": "plain_text", "text": truncate(text, limit)}


def reason_input(block_id: str, action_id: str, *, label: str, placeholder: str, min_length: int,
                 max_length: int) -> Block:
    """A required multi-line text input for the reason behind a decision."""
    return input_block(block_id, label, {
        "type": "plain_text_input", "action_id": action_id, "multiline": True, "min_length": min_length,
        "max_length": max_length, "placeholder": _plain(placeholder, 150),
    })


def choice_input(block_id: str, action_id: str, *, label: str, options: list[tuple[str, str]]) -> Block:
    """A required choice of one among ``options`` ((value, label) pairs), shown as radio buttons."""
    return input_block(block_id, label, {
        "type": "radio_buttons", "action_id": action_id,
        "options": [{"text": _plain(text, 75), "value": value} for value, text in options[:10]],
    })


def text_input(block_id: str, action_id: str, *, label: str, placeholder: str, max_length: int,
               optional: bool = True) -> Block:
    """A one-line text input, optional unless said otherwise."""
    return input_block(block_id, label, {
        "type": "plain_text_input", "action_id": action_id, "max_length": max_length,
        "placeholder": _plain(placeholder, 150),
    }, optional=optional)


def checkbox_input(block_id: str, action_id: str, *, label: str, value: str, text: str) -> Block:
    """A required single checkbox (a confirmation the person must tick)."""
    return input_block(block_id, label, {"type": "checkboxes", "action_id": action_id,
                                         "options": [{"text": _plain(text, 75), "value": value}]})


def date_input(block_id: str, action_id: str, *, label: str, initial: date) -> Block:
    """A required date picker, preset to ``initial``."""
    return input_block(block_id, label, {"type": "datepicker", "action_id": action_id,
                                         "initial_date": initial.isoformat()})


def actions(block_id: str, *elements: Block) -> Block:
    return {"type": "actions", "block_id": block_id, "elements": list(elements)[:25]}


def escape(text: str) -> str:
    """Text to show literally in mrkdwn or message text: Slack reads ``&``, ``<`` and ``>`` as control
    characters (``<email>`` becomes a link, ``<!channel>`` a mention), so those three, and only those, are
    written as ``&amp;``, ``&lt;`` and ``&gt;`` ("Escaping text" in Slack's formatting reference,
    https://docs.slack.dev/messaging/formatting-message-text#escaping). Use it for placeholders such as
    ``<email>`` and for any text from outside (user input, Mautic); not for plain_text objects."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def cap_blocks(blocks: list[Block], *, what: str = "items") -> list[Block]:
    """Keep a message within Slack's 50-block limit, saying how much was left out."""
    if len(blocks) <= MAX_BLOCKS:
        return blocks
    kept = blocks[: MAX_BLOCKS - 1]
    return [*kept, context(f"…and {len(blocks) - len(kept)} more {what} not shown.")]
