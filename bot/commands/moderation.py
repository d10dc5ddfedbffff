"""`/care` subcommands: moderation (being written)."""

from __future__ import annotations

from bot.commands.base import Subcommand
from bot.context import CareContext


def subcommands(care: CareContext) -> list[Subcommand]:
    return []
