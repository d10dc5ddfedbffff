"""Events API: dedupe Slack's retries before any listener runs; the App Home tab."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from sqlalchemy.exc import IntegrityError

from bot.context import CareContext
from bot.roles import Role
from bot.slack_blocks import home_view
from bot.stats import home_numbers
from bot.workflow import open_questions
from storage.models import ProcessedSlackEvent

log = logging.getLogger(__name__)


def register(app: App, care: CareContext) -> None:
    """Install the dedupe middleware and the App Home listener."""

    @app.middleware
    def handle_each_event_once(
        body: dict[str, Any],
        next: Callable[[], None],  # Bolt injects arguments by name
    ) -> BoltResponse | None:
        """Slack retries an event up to 3 times; its event_id is stored once, the rest acked."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if isinstance(event_id, str) and not _first_delivery(care, event_id):
            log.info("Event %s already handled; acknowledging the retry", event_id)
            return BoltResponse(status=200, body="")
        next()
        return None

    @app.event("app_home_opened")
    def show_home(event: dict[str, Any], client: WebClient) -> None:
        """Show the viewer's numbers (and today's, to admins) and the open questions."""
        if event.get("tab", "home") != "home":
            return
        user = str(event["user"])
        admin = care.roles.role_of(user) >= Role.ADMIN
        with care.sessions.begin() as session:
            summary, today = home_numbers(session, user, now=care.clock(), admin=admin)
        items = open_questions(care.sessions)
        view = home_view(items, care.settings.questions_channel, summary, today)
        client.views_publish(user_id=user, view=view)


def _first_delivery(care: CareContext, event_id: str) -> bool:
    try:
        with care.sessions.begin() as session:
            session.add(ProcessedSlackEvent(event_id=event_id[:64], received_at=care.clock()))
    except IntegrityError:
        return False
    return True
