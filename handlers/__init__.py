"""Slack listeners: thin adapters from Slack payloads to crowdcare's use cases."""

from __future__ import annotations

from slack_bolt import App

from bot.context import CareContext
from handlers import actions, commands, errors, events, views
from handlers.actions import join


def register_listeners(app: App, care: CareContext) -> None:
    """Register every listener kind on the Bolt app."""
    events.register(app, care)
    actions.register(app, care)
    join.register(app, care)
    views.register(app, care)
    commands.register(app, care)
    errors.register(app)
