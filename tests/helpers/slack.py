"""What a Slack message shows, as one searchable string."""

from __future__ import annotations

import json
from typing import Any

from sandbox.slack import Message


def text_of(message: Message) -> str:
    return message.text + "\n" + json.dumps(message.blocks, ensure_ascii=False)


class CountingGroups:
    """A Slack client stand-in that answers usergroups.users.list from a dict and counts the calls."""

    def __init__(self, members: dict[str, list[str]]) -> None:
        self.members, self.calls = members, 0

    async def usergroups_users_list(self, *, usergroup: str) -> dict[str, Any]:
        self.calls += 1
        return {"ok": True, "users": list(self.members.get(usergroup, []))}
