"""`/care stats` and `/care leaderboard`: the numbers, for everyone."""

from __future__ import annotations

from bot.commands.base import Invocation, Subcommand, UsageError, echo, no_more
from bot.context import CareContext
from bot.quota import current_quotas
from bot.roles import Role
from bot.stats import (
    LEADERBOARD_PERIODS,
    STATS_PERIODS,
    Period,
    compute_stats,
    leaderboard,
    parse_period,
)
from bot.stats_blocks import leaderboard_text, stats_text

LEADERBOARD_SIZE = 10


def subcommands(care: CareContext) -> list[Subcommand]:
    """The numbers group."""

    def stats(invocation: Invocation) -> str:
        """How the questions received in the period fared, and what is still waiting."""
        period = _period(invocation, STATS_PERIODS)
        with care.sessions.begin() as session:
            numbers = compute_stats(session, period.since, period.until)
            quotas = current_quotas(session, care.clock())
        return stats_text(numbers, period.label, quotas)

    def top(invocation: Invocation) -> str:
        """Who answered most in the period."""
        period = _period(invocation, LEADERBOARD_PERIODS)
        with care.sessions.begin() as session:
            rows = leaderboard(session, period.since, period.until, limit=LEADERBOARD_SIZE)
        return leaderboard_text(rows, period.label)

    def _period(invocation: Invocation, allowed: tuple[str, ...]) -> Period:
        no_more(invocation.args, 1)
        word = invocation.args[0] if invocation.args else None
        try:
            return parse_period(word, allowed, now=care.clock())
        except ValueError:
            raise UsageError(
                f"{echo(word or '')} is not a period: use one of {', '.join(allowed)}"
            ) from None

    return [
        Subcommand(
            name="stats",
            usage=f"stats [{'|'.join(STATS_PERIODS)}]",
            summary="questions received, answered and escalated, response times, backlog",
            role=Role.MEMBER,
            run=stats,
        ),
        Subcommand(
            name="leaderboard",
            usage=f"leaderboard [{'|'.join(LEADERBOARD_PERIODS)}]",
            summary="who answered most, by answers sent and votes received",
            role=Role.MEMBER,
            run=top,
        ),
    ]
