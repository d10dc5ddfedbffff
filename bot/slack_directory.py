"""Slack's view of who administers the workspace, for :class:`bot.roles.Roles`."""

from __future__ import annotations

import logging

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)


class SlackDirectory:
    """Asks ``users.info``; any failure answers "not an admin" (refusing is the safe side)."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def is_workspace_admin(self, user_id: str) -> bool:
        try:
            user = self.client.users_info(user=user_id).get("user") or {}
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
            return False
        except OSError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc)
            return False
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))
