"""What a Slack message shows, as one searchable string."""

from __future__ import annotations

import json

from sandbox.slack import Message


def text_of(message: Message) -> str:
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)
