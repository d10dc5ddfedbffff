"""The one error handler: when the database is unreachable, people get a polite answer.

Without it Bolt logs the error, answers Slack with a 500 when nothing was acknowledged yet
(Slack then shows "operation_timeout"-style errors), and says nothing after an ack. Events are
left with their 500 on purpose: Slack retries them later, when the database may be back.

Bolt (1.30) also resets ``ack.response`` to None when a listener fails after ``ack()``. When
the failure is instant (a refused database connection) the request thread has often not seen
the ack yet; it then waits out the 3 s and answers Slack 404 "unhandled request". A small
middleware gives each request an ack that stays sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, BoltContext, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackClientError
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from handlers.payload import where

log = logging.getLogger(__name__)

DATABASE_DOWN = (
    "crowdcare can't reach its database right now; nothing was changed. "
    "Please try again in a minute."
)


def database_unreachable(error: BaseException) -> bool:
    """True for errors that mean "no database right now", as opposed to a bug."""
    if isinstance(error, OperationalError | InterfaceError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


class KeptAck(Ack):
    """An ack that, once sent, is not taken back by Bolt's error path."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "response" and value is None and getattr(self, "response", None) is not None:
            return
        super().__setattr__(name, value)


def register(app: App) -> None:
    """Install the error handler for listeners and middleware."""

    @app.middleware
    def keep_acks(context: BoltContext, next: Callable[[], None]) -> None:
        """Give the request an ack that stays sent (Bolt injects arguments by name)."""
        context["ack"] = KeptAck()
        next()

    @app.error
    def on_error(
        error: Exception, body: dict[str, Any], client: WebClient, response: BoltResponse | None
    ) -> BoltResponse | None:
        """Log; on a database outage, answer the person instead of failing silently."""
        if not database_unreachable(error):
            log.error("A Slack listener failed", exc_info=error)
            return None
        kind = str(body.get("type") or ("slash_command" if "command" in body else "unknown"))
        log.warning("Database unreachable while handling a Slack %s: %s", kind, error)
        if kind == "event_callback":
            return None  # the 500 makes Slack deliver the event again later
        unanswered = response is not None and response.status >= 400
        if kind == "view_submission":
            return _form_error(body) if unanswered else None
        if kind == "slash_command" and unanswered:
            text = {"response_type": "ephemeral", "text": DATABASE_DOWN}
            return BoltResponse(status=200, body=json.dumps(text))
        _tell(client, body)
        return BoltResponse(status=200, body="") if unanswered else None


def _form_error(body: dict[str, Any]) -> BoltResponse:
    """Keep the modal open (with what was typed) and show why on its first input."""
    values = ((body.get("view") or {}).get("state") or {}).get("values") or {}
    if not values:
        return BoltResponse(status=200, body="")
    errors = {"response_action": "errors", "errors": {next(iter(values)): DATABASE_DOWN}}
    return BoltResponse(
        status=200, body=json.dumps(errors), headers={"Content-Type": "application/json"}
    )


def _tell(client: WebClient, body: dict[str, Any]) -> None:
    channel, user = where(body)
    channel = channel or str(body.get("channel_id") or "")
    user = user or str(body.get("user_id") or "")
    if not channel or not user:
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=DATABASE_DOWN)
    except (SlackClientError, OSError) as exc:
        log.warning("Could not tell %s that the database is down: %s", user, exc)
