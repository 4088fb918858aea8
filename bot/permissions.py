"""Who may do what: Slack users listed by ID, or members of the user groups listed (``S…``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


@dataclass
class SlackAudience:
    """A set of users given as user IDs and user-group IDs; groups resolve through
    ``usergroups.users.list``, read afresh on every check: someone removed from an approvers' group must not
    decide anything afterwards, not even within a cache window (issue 9). Listed user IDs cost no call."""

    ids: list[str]
    slack: AsyncWebClient

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
        try:
            response = await self.slack.usergroups_users_list(usergroup=group)
            members = frozenset(response.get("users") or [])
        except SlackApiError as exc:
            # A group we cannot read grants nobody; say so in the log without failing the click.
            log.warning("cannot resolve user group %s: %s", group, exc.response.get("error"))
            members = frozenset()
        return members


@dataclass
class Permissions:
    approvers: SlackAudience
    requesters: SlackAudience

    async def is_approver(self, user_id: str) -> bool:
        return await self.approvers.includes(user_id)

    async def may_file(self, user_id: str) -> bool:
        """Empty PRIVACY_REQUESTERS means anyone in the privacy channel; approvers may always file. The same
        people may list requests and forms (``/privacy requests``, ``status``, ``forms``)."""
        if self.requesters.is_empty:
            return True
        return await self.requesters.includes(user_id) or await self.approvers.includes(user_id)
