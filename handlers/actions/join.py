"""The I accept button under the answering guidelines (`/care join`)."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot import guidelines, pool
from bot.context import CareContext
from bot.mrkdwn import escape
from handlers.payload import action_value, where

log = logging.getLogger(__name__)


def register(app: App, care: CareContext) -> None:
    """Listen for I accept clicks."""

    @app.action(guidelines.ACTION_JOIN_ACCEPT)
    def accept(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Record the acceptance of the current guidelines and tell the person."""
        ack()
        channel, user = where(body)
        clicked = action_value(body)
        try:
            current = guidelines.load(care.settings.guidelines_file)
        except guidelines.GuidelinesError as exc:
            message = str(exc)
        else:
            message = (
                pool.accept_clicked(care.sessions, user, clicked, current, care.clock())
                if isinstance(clicked, str) and user
                else "That button is not valid."
            )
        if channel:
            care.workflow.tell(channel, user, message)
        else:
            _direct_message(client, user, message)


def _direct_message(client: WebClient, user: str, message: str) -> None:
    try:
        client.chat_postMessage(channel=user, text=escape(message))
    except SlackApiError as exc:
        log.warning("Could not tell %s about joining: %s", user, exc.response.get("error"))
