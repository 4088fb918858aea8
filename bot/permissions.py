"""Who may do what: Slack users listed by ID, or members of the user groups listed (``S…``)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


@dataclass
class SlackAudience:
    """A set of users given as user IDs and user-group IDs; groups resolve through
    ``usergroups.users.list`` and are cached briefly so a burst of clicks costs one call."""

    ids: list[str]
    slack: AsyncWebClient
    cache_seconds: float = 60.0
    _cache: dict[str, tuple[float, frozenset[str]]] = field(default_factory=dict)

    @property
    def is_empty(self) -> bool:
        return not self.ids

    async def includes(self, user_id: str) -> bool:
        if user_id in self.ids:
            return True
        for group in (i for i in self.ids if i.startswith("S")):
            if user_id in await self._members(group):
                return True
        return False

    async def _members(self, group: str) -> frozenset[str]:
        cached = self._cache.get(group)
        if cached and time.monotonic() - cached[0] < self.cache_seconds:
            return cached[1]
        try:
            response = await self.slack.usergroups_users_list(usergroup=group)
            members = frozenset(response.get("users") or [])
        except SlackApiError as exc:
            # A group we cannot read grants nobody; say so in the log without failing the click.
            log.warning("cannot resolve user group %s: %s", group, exc.response.get("error"))
            members = frozenset()
        self._cache[group] = (time.monotonic(), members)
        return members


@dataclass
class Permissions:
    approvers: SlackAudience
    requesters: SlackAudience

    async def is_approver(self, user_id: str) -> bool:
        return await self.approvers.includes(user_id)

    async def may_file(self, user_id: str) -> bool:
        """Empty PRIVACY_REQUESTERS means anyone in the privacy channel; approvers may always file."""
        if self.requesters.is_empty:
            return True
        return await self.requesters.includes(user_id) or await self.approvers.includes(user_id)
