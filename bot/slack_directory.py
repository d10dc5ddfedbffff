"""Slack's view of the workspace's people, for :class:`bot.roles.Roles` and reply signatures."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.roles import Presence

log = logging.getLogger(__name__)

NAME_CACHE_SECONDS = 600.0
NO_SUCH_USER = frozenset({"user_not_found", "user_not_visible"})
SLACKBOT = "USLACKBOT"  # Slack's own bot: users.info does not mark it is_bot


class SlackDirectory:
    """Asks ``users.info``; any failure answers "not an admin" (refusing is the safe side)."""

    def __init__(self, client: WebClient, clock: Callable[[], float] = time.monotonic) -> None:
        self.client = client
        self.clock = clock
        self._names: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def is_workspace_admin(self, user_id: str) -> bool:
        user = self._user(user_id)
        if user is None:
            return False
        return bool(user.get("is_admin") or user.get("is_owner") or user.get("is_primary_owner"))

    def presence(self, user_id: str) -> Presence:
        """Asked of Slack each time (never cached): a deactivation must show at once."""
        try:
            user = self.client.users_info(user=user_id).get("user") or {}
        except SlackApiError as exc:
            error = exc.response.get("error")
            if error in NO_SUCH_USER:
                return Presence.UNKNOWN
            log.warning("users.info for %s failed: %s", user_id, error)
            return Presence.UNREACHABLE
        except OSError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc)
            return Presence.UNREACHABLE
        return presence_of(dict(user))

    def display_name(self, user_id: str) -> str | None:
        """Real name, else display name, else user name; cached ten minutes when found."""
        now = self.clock()
        with self._lock:
            cached = self._names.get(user_id)
        if cached is not None and now < cached[1]:
            return cached[0]
        user = self._user(user_id)
        if user is None:
            return None
        profile = user.get("profile") or {}
        candidates = (
            profile.get("real_name"),
            user.get("real_name"),
            profile.get("display_name"),
            user.get("name"),
        )
        # The first with a letter in it: a name of emoji alone makes no initials.
        name = next((str(c).strip() for c in candidates if c and _has_letter(str(c))), None)
        if name is not None:
            with self._lock:
                self._names[user_id] = (name, now + NAME_CACHE_SECONDS)
        return name

    def _user(self, user_id: str) -> dict[str, Any] | None:
        try:
            user = self.client.users_info(user=user_id).get("user") or {}
        except SlackApiError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc.response.get("error"))
            return None
        except OSError as exc:
            log.warning("users.info for %s failed: %s", user_id, exc)
            return None
        return dict(user)


def presence_of(user: dict[str, Any]) -> Presence:
    """What a ``users.info`` user object says about the person."""
    if user.get("deleted"):
        return Presence.DEACTIVATED
    if user.get("is_bot") or user.get("is_app_user") or user.get("id") == SLACKBOT:
        return Presence.BOT
    return Presence.PERSON


def _has_letter(text: str) -> bool:
    return any(char.isalpha() for char in text)
