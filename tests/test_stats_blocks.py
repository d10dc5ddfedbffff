"""Rendering the numbers: stats and leaderboard text, the weekly summary, the App Home."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from bot.slack_blocks import HomeItem, home_view
from bot.stats import Backlog, Contributor, MySummary, Stats
from bot.stats_blocks import (
    format_duration,
    format_percent,
    leaderboard_text,
    stats_text,
    weekly_summary_blocks,
    weekly_summary_text,
)
from tests.blockkit import MAX_MODAL_BLOCKS, validate_blocks, validate_text

WEEK_STATS = Stats(
    received=7,
    answered=3,
    escalated=2,
    ignored=1,
    closed=1,
    proposals=8,
    active_contributors=6,
    first_proposal_median=timedelta(minutes=4, seconds=10),
    first_proposal_p90=timedelta(hours=1, minutes=5),
    reply_median=timedelta(hours=1),
    reply_p90=None,
    backlog=Backlog(replies_pending=1, replies_failed=2, notifications_waiting=3),
)
EMPTY_STATS = Stats(0, 0, 0, 0, 0, 0, 0, None, None, None, None, Backlog())
BOARD = [
    Contributor("U0ALICE", answers=3, votes_received=7, proposals=4, rank=1),
    Contributor("U0BOB", answers=1, votes_received=1, proposals=1, rank=2),
    Contributor("U0CARA", answers=1, votes_received=0, proposals=2, rank=3),
    Contributor("U0DAN", answers=0, votes_received=2, proposals=5, rank=4),
]


@pytest.mark.parametrize(
    ("duration", "shown"),
    [
        (None, "—"),
        (timedelta(0), "0s"),
        (timedelta(seconds=45), "45s"),
        (timedelta(seconds=60), "1m"),
        (timedelta(minutes=4, seconds=10), "4m 10s"),
        (timedelta(hours=1), "1h"),
        (timedelta(hours=1, minutes=5, seconds=59), "1h 5m"),
        (timedelta(days=2, hours=3, minutes=20), "2d 3h"),
        (timedelta(seconds=-5), "0s"),
    ],
)
def test_durations_are_human_friendly(duration: timedelta | None, shown: str) -> None:
    assert format_duration(duration) == shown


def test_percentages_have_no_decimals() -> None:
    assert format_percent(3 / 7 * 100) == "43%"
    assert format_percent(100.0) == "100%"
    assert format_percent(None) == "—"


def test_stats_text_reads_compactly() -> None:
    text = stats_text(WEEK_STATS, "7d")

    validate_text(text)
    assert text.splitlines() == [
        "*📊 crowdcare, questions received the last 7 days*",
        "Received *7* · answered *3* (43%) · escalated *2* (29%) · ignored 1 · closed 1",
        "⏱️ First proposal: median 4m 10s, p90 1h 5m",
        "📣 Reply: median 1h, p90 —",
        "🗳️ Proposals per question: 1.1 · active contributors: 6",
        "📤 Backlog: replies 1 pending, 0 sending, 2 failed · notifications 3 · "
        "helpdesk deliveries 0",
    ]


def test_stats_text_without_questions_shows_dashes() -> None:
    text = stats_text(EMPTY_STATS, "today")

    assert "today (UTC)" in text
    assert "answered *0* (—)" in text
    assert "median —, p90 —" in text
    assert "Proposals per question: —" in text


def test_an_unknown_period_label_is_escaped() -> None:
    text = stats_text(EMPTY_STATS, "<!channel>")

    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_leaderboard_mentions_people_in_rank_order() -> None:
    text = leaderboard_text(BOARD, "30d")

    validate_text(text)
    lines = text.splitlines()
    assert lines[0] == "*🏆 Top contributors, the last 30 days*"
    assert lines[1] == "🥇 <@U0ALICE> · 3 answers · 7 votes received · 4 proposals"
    assert lines[2] == "🥈 <@U0BOB> · 1 answer · 1 vote received · 1 proposal"
    assert lines[3].startswith("🥉 <@U0CARA>")
    assert lines[4] == "4. <@U0DAN> · 0 answers · 2 votes received · 5 proposals"


def test_an_empty_leaderboard_invites_people_to_answer() -> None:
    text = leaderboard_text([], "7d")

    assert "Nobody has proposed an answer yet" in text


def test_a_forged_user_id_cannot_ping_anyone() -> None:
    forged = Contributor("<!channel>", answers=1, votes_received=0, proposals=1, rank=1)

    text = leaderboard_text([forged], "7d")

    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_weekly_summary_is_valid_block_kit() -> None:
    blocks = weekly_summary_blocks(WEEK_STATS, BOARD, "2026-W02")

    validate_blocks(blocks)
    shown = json.dumps(blocks, ensure_ascii=False)
    assert "2026-W02" in shown
    assert "<@U0ALICE>" in shown and "<@U0DAN>" in shown
    assert "answered *3* (43%)" in shown
    assert "Backlog" not in shown  # a snapshot of now does not belong in last week's summary
    validate_text(weekly_summary_text(WEEK_STATS, "2026-W02"))


def test_weekly_summary_of_a_quiet_week() -> None:
    blocks = weekly_summary_blocks(EMPTY_STATS, [], "2026-W02")

    validate_blocks(blocks)
    assert "Nobody has proposed an answer yet" in json.dumps(blocks, ensure_ascii=False)


# --- App Home ------------------------------------------------------------------------------

ITEMS = [
    HomeItem(question_id=n, customer_handle="nina", text="is the app down?", state="open",
             proposal_count=0)
    for n in range(1, 31)
]  # fmt: skip


def test_home_shows_my_numbers_and_rank() -> None:
    mine = MySummary("U0BOB", answers=2, votes_received=5, proposals=3, rank=4, contributors=9)

    view = home_view(ITEMS, "C0QUESTIONS", mine)

    validate_blocks(view["blocks"], max_blocks=MAX_MODAL_BLOCKS)
    shown = json.dumps(view, ensure_ascii=False)
    assert "2 answers sent" in shown and "5 votes received" in shown
    assert "rank *#4* of 9" in shown
    assert "30 open questions" in shown
    assert "Today (UTC)" not in shown


def test_home_for_someone_without_contributions_invites_them() -> None:
    nobody = MySummary("U0EVE", 0, 0, 0, rank=None, contributors=9)

    view = home_view([], None, nobody)

    validate_blocks(view["blocks"], max_blocks=MAX_MODAL_BLOCKS)
    assert "No answers or votes yet" in json.dumps(view, ensure_ascii=False)


def test_home_shows_todays_stats_to_admins() -> None:
    mine = MySummary("U0ALICE", 1, 1, 1, rank=1, contributors=1)

    view = home_view(ITEMS, "C0QUESTIONS", mine, WEEK_STATS)

    validate_blocks(view["blocks"], max_blocks=MAX_MODAL_BLOCKS)
    shown = json.dumps(view, ensure_ascii=False)
    assert "Today (UTC)" in shown and "Backlog" in shown and "Shown to admins only" in shown


def test_home_without_numbers_still_lists_questions() -> None:
    view = home_view(ITEMS[:2], "C0QUESTIONS")

    validate_blocks(view["blocks"], max_blocks=MAX_MODAL_BLOCKS)
    assert "2 open questions" in json.dumps(view, ensure_ascii=False)
