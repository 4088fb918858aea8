"""Block Kit validation for the Slack stand-in: every payload the bot sends is checked twice.

1. The stand-in's own checks, written from Slack's Block Kit reference
   (https://docs.slack.dev/reference/block-kit/blocks, .../block-elements, .../composition-objects,
   https://docs.slack.dev/reference/views). They mimic Slack's ``invalid_blocks`` answers (json-pointer
   messages) and are stricter than slack_sdk where the SDK lets through what Slack refuses: unknown keys
   (Slack's schemas allow no extra properties; the SDK only logs them at debug level), ``emoji`` on
   ``mrkdwn``, ``fields: []``, context elements other than images and text, an empty ``elements`` list,
   ``plain_text_input`` bounds, and a modal's ``title``/``submit``/``close``.
2. slack_sdk's own models (``Block.parse`` and ``to_dict()``, which runs every nested ``validate_json``;
   ``View``; ``Attachment``/``BlockAttachment``), as a second opinion on whatever the own checks accept.

Error strings follow Slack's format, ``<what is wrong> [json-pointer:/blocks/0/text]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.attachments import Attachment, BlockAttachment
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

__all__ = [
    "MAX_TEXT_LENGTH",
    "MESSAGE_BLOCK_LIMIT",
    "VIEW_BLOCK_LIMIT",
    "check_text",
    "too_long",
    "validate_blocks",
    "validate_message",
    "validate_view",
    "validate_view_answer",
]

Json = dict[str, Any]

MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
MAX_TEXT_LENGTH = 40_000  # chat.postMessage: "truncated after 40,000 characters" / msg_too_long

_TEXT_TYPES = {"plain_text", "mrkdwn"}

# Properties each object may carry, per Slack's reference pages; Slack's JSON schemas refuse any other
# (for example ``emoji`` on a mrkdwn text object: "emoji ... Only usable when type is plain_text").
# Types not listed here are checked by slack_sdk only.
_KEYS: dict[str, frozenset[str]] = {
    "plain_text": frozenset({"type", "text", "emoji"}),
    "mrkdwn": frozenset({"type", "text", "verbatim"}),
    "section": frozenset({"type", "text", "fields", "accessory", "block_id", "expand"}),
    "divider": frozenset({"type", "block_id"}),
    "header": frozenset({"type", "text", "block_id"}),
    "context": frozenset({"type", "elements", "block_id"}),
    "actions": frozenset({"type", "elements", "block_id"}),
    "input": frozenset({"type", "label", "element", "dispatch_action", "block_id", "hint", "optional"}),
    "image": frozenset({"type", "image_url", "slack_file", "alt_text", "title", "block_id"}),
    "button": frozenset({"type", "text", "action_id", "url", "value", "style", "confirm", "accessibility_label"}),
    "plain_text_input": frozenset({"type", "action_id", "initial_value", "multiline", "min_length", "max_length",
                                   "dispatch_action_config", "focus_on_load", "placeholder"}),
    "confirm": frozenset({"title", "text", "confirm", "deny", "style"}),
    "modal": frozenset({"type", "title", "blocks", "close", "submit", "private_metadata", "callback_id",
                        "clear_on_close", "notify_on_close", "external_id", "submit_disabled"}),
    "home": frozenset({"type", "blocks", "private_metadata", "callback_id", "external_id"}),
}
_BLOCK_TYPES = {
    "section", "divider", "header", "context", "actions", "image", "input", "rich_text", "file",
    "video", "markdown", "table",
}  # fmt: skip
# Context block: "An array of image elements and text objects", at most 10
# (https://docs.slack.dev/reference/block-kit/blocks/context-block).
_CONTEXT_ELEMENT_TYPES = {"image", "plain_text", "mrkdwn"}
# Input block: the element must be one of the input elements
# (https://docs.slack.dev/reference/block-kit/blocks/input-block).
_INPUT_ELEMENT_TYPES = {
    "checkboxes", "datepicker", "datetimepicker", "email_text_input", "file_input", "multi_static_select",
    "multi_external_select", "multi_users_select", "multi_conversations_select", "multi_channels_select",
    "number_input", "plain_text_input", "radio_buttons", "rich_text_input", "static_select", "external_select",
    "users_select", "conversations_select", "channels_select", "timepicker", "url_text_input",
}  # fmt: skip
PLAIN_TEXT_INPUT_MAX = 3000  # min_length 0..3000, max_length 1..3000 (plain-text input element reference)


def too_long(limit: int, pointer: str) -> str:
    return f"must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _too_many(limit: int, pointer: str) -> str:
    return f"no more than {limit} items allowed [json-pointer:{pointer}]"


def _unknown_keys(obj: Mapping[str, Any], kind: str, pointer: str) -> list[str]:
    allowed = _KEYS.get(kind)
    if allowed is None:
        return []
    return [f"unknown property: {key} [json-pointer:{pointer}/{key}]" for key in obj if key not in allowed]


def check_text(obj: Any, pointer: str, limit: int, *, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in _TEXT_TYPES:
        return [f"must be a text object [json-pointer:{pointer}]"]
    if plain_only and obj["type"] != "plain_text":
        return [f"must be plain_text [json-pointer:{pointer}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{pointer}/text]"]
    errors = [too_long(limit, f"{pointer}/text")] if len(text) > limit else []
    return errors + _unknown_keys(obj, obj["type"], pointer)


def _check_id(container: Mapping[str, Any], key: str, pointer: str) -> list[str]:
    value = container.get(key)
    if value is not None and len(str(value)) > 255:
        return [too_long(255, f"{pointer}/{key}")]
    return []


def _check_confirm(confirm: Any, pointer: str) -> list[str]:
    if not isinstance(confirm, dict):
        return [f"must be a confirm object [json-pointer:{pointer}]"]
    errors = check_text(confirm.get("title"), f"{pointer}/title", 100, plain_only=True)
    errors += check_text(confirm.get("text"), f"{pointer}/text", 300)
    for key in ("confirm", "deny"):
        errors += check_text(confirm.get(key), f"{pointer}/{key}", 30, plain_only=True)
    if confirm.get("style") not in (None, "primary", "danger"):
        errors.append(f"must be one of primary, danger [json-pointer:{pointer}/style]")
    return errors + _unknown_keys(confirm, "confirm", pointer)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_plain_text_input(element: Json, pointer: str) -> list[str]:
    """https://docs.slack.dev/reference/block-kit/block-elements/plain-text-input-element: ``min_length``
    0-3000, ``max_length`` 1-3000, min not above max, ``initial_value`` within them, placeholder up to 150."""
    errors: list[str] = []
    low, high = element.get("min_length"), element.get("max_length")
    if low is not None and (not _is_count(low) or not 0 <= low <= PLAIN_TEXT_INPUT_MAX):
        errors.append(f"must be an integer from 0 to {PLAIN_TEXT_INPUT_MAX} [json-pointer:{pointer}/min_length]")
    if high is not None and (not _is_count(high) or not 1 <= high <= PLAIN_TEXT_INPUT_MAX):
        errors.append(f"must be an integer from 1 to {PLAIN_TEXT_INPUT_MAX} [json-pointer:{pointer}/max_length]")
    if not errors and low is not None and high is not None and low > high:
        errors.append(f"min_length must not exceed max_length [json-pointer:{pointer}/min_length]")
    initial = element.get("initial_value")
    if initial is not None and not errors:
        if not isinstance(initial, str):
            errors.append(f"must be a string [json-pointer:{pointer}/initial_value]")
        elif len(initial) > (high if high is not None else PLAIN_TEXT_INPUT_MAX):
            errors.append(too_long(high if high is not None else PLAIN_TEXT_INPUT_MAX, f"{pointer}/initial_value"))
    if "placeholder" in element:
        errors += check_text(element["placeholder"], f"{pointer}/placeholder", 150, plain_only=True)
    for flag in ("multiline", "focus_on_load"):
        if flag in element and not isinstance(element[flag], bool):
            errors.append(f"must be a boolean [json-pointer:{pointer}/{flag}]")
    return errors


def _check_element(element: Any, pointer: str) -> list[str]:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return [f"missing required field: type [json-pointer:{pointer}]"]
    errors = _check_id(element, "action_id", pointer) + _unknown_keys(element, element["type"], pointer)
    if element["type"] == "button":
        errors += check_text(element.get("text"), f"{pointer}/text", 75, plain_only=True)
        if len(str(element.get("value", ""))) > 2000:
            errors.append(too_long(2000, f"{pointer}/value"))
        if len(str(element.get("url", ""))) > 3000:
            errors.append(too_long(3000, f"{pointer}/url"))
        if element.get("style") not in (None, "primary", "danger"):
            errors.append(f"must be one of primary, danger [json-pointer:{pointer}/style]")
    elif element["type"] == "plain_text_input":
        errors += _check_plain_text_input(element, pointer)
    if "confirm" in element:
        errors += _check_confirm(element["confirm"], f"{pointer}/confirm")
    return errors


def _duplicate_action_ids(elements: Sequence[Any], pointer: str) -> list[str]:
    seen: set[str] = set()
    errors = []
    for index, element in enumerate(elements):
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if action_id is None:
            continue
        if action_id in seen:
            errors.append(f"duplicate action_id [json-pointer:{pointer}/{index}/action_id]")
        seen.add(action_id)
    return errors


def _check_section(block: Json, pointer: str) -> list[str]:
    if "text" not in block and "fields" not in block:
        return [f"must provide either text or fields [json-pointer:{pointer}]"]
    errors = check_text(block["text"], f"{pointer}/text", 3000) if "text" in block else []
    fields = block.get("fields")
    if fields is not None:
        if not isinstance(fields, list):
            errors.append(f"must be an array [json-pointer:{pointer}/fields]")
        elif not fields:  # Slack: "Maximum number of items is 10" and at least one; the SDK lets [] through
            errors.append(f"must provide at least 1 item [json-pointer:{pointer}/fields]")
        else:
            if len(fields) > 10:
                errors.append(_too_many(10, f"{pointer}/fields"))
            for index, item in enumerate(fields):
                errors += check_text(item, f"{pointer}/fields/{index}", 2000)
    if "accessory" in block:
        errors += _check_element(block["accessory"], f"{pointer}/accessory")
    return errors


def _check_elements(block: Json, pointer: str, limit: int) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not elements:
        return [f"must provide at least one element [json-pointer:{pointer}/elements]"]
    errors = [_too_many(limit, f"{pointer}/elements")] if len(elements) > limit else []
    return errors + _duplicate_action_ids(elements, f"{pointer}/elements")


def _check_context(block: Json, pointer: str) -> list[str]:
    errors = _check_elements(block, pointer, 10)
    for index, element in enumerate(block.get("elements") or []):
        at = f"{pointer}/elements/{index}"
        kind = element.get("type") if isinstance(element, dict) else None
        if kind not in _CONTEXT_ELEMENT_TYPES:
            errors.append(f"must be an image element or a text object [json-pointer:{at}]")
        elif kind in _TEXT_TYPES:
            errors += check_text(element, at, 3000)
    return errors


def _check_input(block: Json, pointer: str) -> list[str]:
    errors = check_text(block.get("label"), f"{pointer}/label", 2000, plain_only=True)
    if "hint" in block:
        errors += check_text(block["hint"], f"{pointer}/hint", 2000, plain_only=True)
    element = block.get("element")
    if isinstance(element, dict) and element.get("type") not in _INPUT_ELEMENT_TYPES:
        errors.append(f"must be an input element [json-pointer:{pointer}/element/type]")
    return errors + _check_element(element, f"{pointer}/element")


def _check_block(block: Any, pointer: str) -> list[str]:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        return [f"missing required field: type [json-pointer:{pointer}]"]
    kind = block["type"]
    if kind not in _BLOCK_TYPES:
        return [f"unsupported block type: {kind} [json-pointer:{pointer}/type]"]
    errors = _check_id(block, "block_id", pointer)
    if kind == "section":
        errors += _check_section(block, pointer)
    elif kind == "header":
        errors += check_text(block.get("text"), f"{pointer}/text", 150, plain_only=True)
    elif kind == "actions":
        errors += _check_elements(block, pointer, 25)
        for index, element in enumerate(block.get("elements") or []):
            errors += _check_element(element, f"{pointer}/elements/{index}")
    elif kind == "context":
        errors += _check_context(block, pointer)
    elif kind == "input":
        errors += _check_input(block, pointer)
    return errors + _unknown_keys(block, kind, pointer)


def _sdk_errors(build: Any, pointer: str) -> list[str]:
    """What slack_sdk's models say: ``build()`` parses, and ``to_dict()`` runs every nested validator."""
    try:
        model = build()
        if model is None:  # Block.parse answers None (and logs) for a type it does not know
            return [f"slack_sdk: unknown block type [json-pointer:{pointer}]"]
        model.to_dict()
    except (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError) as exc:
        return [f"slack_sdk: {exc} [json-pointer:{pointer}]"]
    return []


def validate_blocks(blocks: Any, *, limit: int = MESSAGE_BLOCK_LIMIT, pointer: str = "/blocks") -> list[str]:
    """Slack-style error strings for ``blocks``; empty when both the own checks and slack_sdk accept them."""
    if not isinstance(blocks, list):
        return [f"must be an array [json-pointer:{pointer}]"]
    errors = [_too_many(limit, pointer)] if len(blocks) > limit else []
    seen: set[str] = set()
    for index, block in enumerate(blocks):
        at = f"{pointer}/{index}"
        own = _check_block(block, at)
        errors += own or _sdk_errors(lambda b=block: Block.parse(b), at)
        block_id = block.get("block_id") if isinstance(block, dict) else None
        if block_id is not None:
            if block_id in seen:
                errors.append(f"duplicate block_id [json-pointer:{at}/block_id]")
            seen.add(block_id)
    return errors


def _validate_attachments(attachments: Any, pointer: str = "/attachments") -> list[str]:
    if not isinstance(attachments, list):
        return [f"must be an array [json-pointer:{pointer}]"]
    errors: list[str] = []
    for index, item in enumerate(attachments):
        at = f"{pointer}/{index}"
        if not isinstance(item, dict):
            errors.append(f"must be an object [json-pointer:{at}]")
            continue
        if "blocks" in item:
            own = validate_blocks(item["blocks"], pointer=f"{at}/blocks")
            errors += own or _sdk_errors(lambda i=item: BlockAttachment(**i), at)
        else:
            errors += _sdk_errors(lambda i=item: Attachment(**i), at)
    return errors


def validate_message(payload: Mapping[str, Any]) -> list[str]:
    """A message as chat.postMessage/update/postEphemeral, a response_url post or a command's answer carries
    it: ``text`` (at most 40,000 characters), ``blocks`` (at most 50) and legacy ``attachments``."""
    errors: list[str] = []
    text = payload.get("text")
    if text is not None and len(str(text)) > MAX_TEXT_LENGTH:
        errors.append(too_long(MAX_TEXT_LENGTH, "/text"))
    if payload.get("blocks") is not None:
        errors += validate_blocks(payload["blocks"])
    if payload.get("attachments") not in (None, ""):
        errors += _validate_attachments(payload["attachments"])
    return errors


def _input_block_ids(view: Mapping[str, Any]) -> set[str]:
    return {
        str(b.get("block_id")) for b in view.get("blocks") or []
        if isinstance(b, dict) and b.get("type") == "input" and b.get("block_id")
    }  # fmt: skip


def validate_view(view: Any, pointer: str = "/view") -> list[str]:
    """A view for views.open/update/push/publish or a ``response_action`` (https://docs.slack.dev/reference/views):
    a modal needs a plain_text ``title`` of up to 24 characters; ``submit`` and ``close`` are plain_text of
    up to 24, and ``submit`` is required when the blocks hold an input block; up to 100 blocks."""
    if not isinstance(view, dict) or view.get("type") not in ("modal", "home"):
        return [f"must be a modal or home view [json-pointer:{pointer}/type]"]
    errors = validate_blocks(view.get("blocks", []), limit=VIEW_BLOCK_LIMIT, pointer=f"{pointer}/blocks")
    if view["type"] == "modal":
        errors += check_text(view.get("title"), f"{pointer}/title", 24, plain_only=True)
        for key in ("submit", "close"):
            if key in view:
                errors += check_text(view[key], f"{pointer}/{key}", 24, plain_only=True)
        if _input_block_ids(view) and "submit" not in view:
            errors.append(f"submit is required when the view has input blocks [json-pointer:{pointer}/submit]")
    for key in ("callback_id", "external_id"):
        errors += _check_id(view, key, pointer)
    if len(str(view.get("private_metadata", ""))) > 3000:
        errors.append(too_long(3000, f"{pointer}/private_metadata"))
    errors += _unknown_keys(view, view["type"], pointer)
    return errors or _sdk_errors(lambda: View(**view), pointer)


def validate_view_answer(answer: Any, submitted: Mapping[str, Any]) -> list[str]:
    """The HTTP answer to a ``view_submission`` (https://docs.slack.dev/surfaces/modals#interactions):
    empty (close), or ``response_action`` ``errors`` (an object mapping the submitted view's input
    ``block_id``s to messages), ``update``/``push`` (with a valid ``view``) or ``clear``."""
    if answer in (None, "", {}):
        return []
    if not isinstance(answer, dict):
        return ["a view_submission answer must be empty or a JSON object [json-pointer:/]"]
    action = answer.get("response_action")
    if action == "errors":
        errors = answer.get("errors")
        if not isinstance(errors, dict) or not errors:
            return ["errors must be a non-empty object [json-pointer:/errors]"]
        inputs = _input_block_ids(submitted)
        problems = [f"no input block with this block_id in the view [json-pointer:/errors/{key}]"
                    for key in errors if key not in inputs]
        return problems + [f"must be a non-empty string [json-pointer:/errors/{key}]"
                           for key, message in errors.items() if not isinstance(message, str) or not message]
    if action in ("update", "push"):
        return validate_view(answer.get("view"))
    if action == "clear":
        return []
    return [f"unknown response_action: {action!r} [json-pointer:/response_action]"]
