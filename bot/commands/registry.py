"""Every `/care` subcommand, in the order `/care help` lists them."""

from __future__ import annotations

from bot.commands import admin, data, moderation, numbers, people
from bot.commands.base import Subcommand
from bot.context import CareContext


def all_subcommands(care: CareContext) -> list[Subcommand]:
    """The subcommands of every group; names and aliases are unique (checked by a test)."""
    return [
        *numbers.subcommands(care),
        *people.subcommands(care),
        *moderation.subcommands(care),
        *admin.subcommands(care),
        *data.subcommands(care),
    ]
