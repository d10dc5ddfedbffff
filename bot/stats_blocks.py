"""Text and Block Kit for the numbers: /care stats, /care leaderboard, the weekly summary and
the App Home. Pure functions; labels from outside pass through :func:`bot.mrkdwn.safe`."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, timedelta
from typing import Any

from bot.mrkdwn import clean, safe, truncate
from bot.ports import Quota
from bot.slack_blocks import mrkdwn_text, section_block, user_mention
from bot.stats import Contributor, MySummary, Stats

DASH = "—"
LABEL_LIMIT = 40
_PERIOD_TITLES = {"today": "today (UTC)", "7d": "the last 7 days", "30d": "the last 30 days"}
_MEDALS = ("🥇", "🥈", "🥉")


# --- formatting ----------------------------------------------------------------------------


def format_duration(duration: timedelta | None) -> str:
    """``45s``, ``4m 10s``, ``1h 5m``, ``2d 3h``: the two largest units; ``—`` for None."""
    if duration is None:
        return DASH
    seconds = max(int(duration.total_seconds()), 0)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    for big, big_unit, small, small_unit in (
        (days, "d", hours, "h"),
        (hours, "h", minutes, "m"),
        (minutes, "m", seconds, "s"),
    ):
        if big:
            return f"{big}{big_unit} {small}{small_unit}" if small else f"{big}{big_unit}"
    return f"{seconds}s"


def format_percent(value: float | None) -> str:
    """``75%`` (no decimals), ``—`` when there is nothing to divide."""
    return DASH if value is None else f"{value:.0f}%"


def period_title(label: str) -> str:
    """``7d`` → ``the last 7 days``; an unknown label is shown escaped."""
    return _PERIOD_TITLES.get(label) or safe(label, LABEL_LIMIT)


def _plural(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")


# --- /care stats ---------------------------------------------------------------------------


def stats_lines(stats: Stats, *, with_backlog: bool = True) -> list[str]:
    """The body of a stats report, one fact group per line; the backlog is as of now."""
    backlog = stats.backlog
    per_question = stats.proposals_per_question
    lines = [
        f"Received *{stats.received}* · answered *{stats.answered}* "
        f"({format_percent(stats.answered_percent)}) · escalated *{stats.escalated}* "
        f"({format_percent(stats.escalated_percent)}) · ignored {stats.ignored} · "
        f"closed {stats.closed}",
        f"⏱️ First proposal: median {format_duration(stats.first_proposal_median)}, "
        f"p90 {format_duration(stats.first_proposal_p90)}",
        f"📣 Reply: median {format_duration(stats.reply_median)}, "
        f"p90 {format_duration(stats.reply_p90)}",
        f"🗳️ Proposals per question: {DASH if per_question is None else f'{per_question:.1f}'} · "
        f"active contributors: {stats.active_contributors}",
    ]
    if not with_backlog:
        return lines
    return [
        *lines,
        f"📤 Backlog: replies {backlog.replies_pending} pending, {backlog.replies_sending} "
        f"sending, {backlog.replies_failed} failed · notifications {backlog.notifications_waiting}"
        f" · helpdesk deliveries {backlog.deliveries_waiting}",
    ]


def stats_text(stats: Stats, period_label: str, quotas: Sequence[Quota] = ()) -> str:
    """A compact stats report for an ephemeral message, with what the APIs still allow."""
    title = f"*📊 crowdcare, questions received {period_title(period_label)}*"
    return "\n".join([title, *stats_lines(stats), *quota_lines(quotas)])


def quota_lines(quotas: Sequence[Quota]) -> list[str]:
    """``🔑 API quota: x mentions 447/450 (resets 13:45 UTC) · x post 98/100 (…)``."""
    if not quotas:
        return []
    parts = [
        f"{safe(q.endpoint, LABEL_LIMIT)} {q.remaining}/{q.limit} "
        f"(resets {q.reset_at.astimezone(UTC):%H:%M} UTC)"
        for q in quotas
    ]
    return ["🔑 API quota left: " + " · ".join(parts)]


# --- /care leaderboard ---------------------------------------------------------------------


def contributor_line(row: Contributor) -> str:
    """``🥇 <@U…> · 3 answers · 7 votes received · 4 proposals``."""
    place = _MEDALS[row.rank - 1] if row.rank <= len(_MEDALS) else f"{row.rank}."
    return (
        f"{place} {user_mention(row.user_id)} · {_plural(row.answers, 'answer')} · "
        f"{_plural(row.votes_received, 'vote')} received · {_plural(row.proposals, 'proposal')}"
    )


def leaderboard_lines(rows: list[Contributor]) -> list[str]:
    """One line per contributor, or a friendly line when there is nobody."""
    if not rows:
        return ["Nobody has proposed an answer yet. Be the first: pick a question card! 🙌"]
    return [contributor_line(row) for row in rows]


def leaderboard_text(rows: list[Contributor], period_label: str) -> str:
    """The leaderboard for an ephemeral message."""
    title = f"*🏆 Top contributors, {period_title(period_label)}*"
    return "\n".join([title, *leaderboard_lines(rows)])


# --- weekly summary ------------------------------------------------------------------------


def weekly_summary_text(stats: Stats, week_label: str) -> str:
    """Notification fallback for the weekly summary."""
    return (
        f"crowdcare week {safe(week_label, LABEL_LIMIT)}: {stats.received} questions, "
        f"{stats.answered} answered ({format_percent(stats.answered_percent)})"
    )


def weekly_summary_blocks(
    stats: Stats, rows: list[Contributor], week_label: str
) -> list[dict[str, Any]]:
    """The weekly summary: the week's numbers and its top contributors."""
    return [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"📊 crowdcare week {truncate(clean(week_label), LABEL_LIMIT)}",
                "emoji": True,
            },
        },
        section_block("\n".join(stats_lines(stats, with_backlog=False))),
        {"type": "divider"},
        section_block("\n".join(["*🏆 Top contributors*", *leaderboard_lines(rows)])),
        {
            "type": "context",
            "elements": [mrkdwn_text("Thank you to everyone who helped a customer this week!")],
        },
    ]


# --- App Home ------------------------------------------------------------------------------


def my_summary_text(summary: MySummary) -> str:
    """The viewer's own last 30 days, for the App Home."""
    if summary.rank is None:
        return (
            "*Your last 30 days*\nNo answers or votes yet. "
            "Propose an answer to one of the questions below!"
        )
    return (
        f"*Your last 30 days*\n✅ {_plural(summary.answers, 'answer')} sent · "
        f"🗳️ {_plural(summary.votes_received, 'vote')} received · "
        f"📝 {_plural(summary.proposals, 'proposal')} · "
        f"rank *#{summary.rank}* of {summary.contributors}"
    )


def home_numbers_blocks(summary: MySummary | None, today: Stats | None) -> list[dict[str, Any]]:
    """The App Home's numbers: the viewer's own, then today's for admins."""
    blocks: list[dict[str, Any]] = []
    if summary is not None:
        blocks.append(section_block(my_summary_text(summary)))
    if today is not None:
        blocks.append(section_block("\n".join(["*📊 Today (UTC)*", *stats_lines(today)])))
        blocks.append({"type": "context", "elements": [mrkdwn_text("Shown to admins only.")]})
    return blocks
