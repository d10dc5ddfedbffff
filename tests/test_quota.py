"""X's remaining request quota: kept from its answers, stored, and shown in `/care stats`."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.ports import Quota
from bot.quota import current_quotas, record_quotas
from bot.stats_blocks import quota_lines
from tests.dbhelpers import T0, migrated_sessions
from tests.scenario import card_for, propose, vote
from tests.standins.stack import wait_until

RESET = T0 + timedelta(minutes=15)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


def store(sessions: sessionmaker[Session], *quotas: Quota, now: datetime = T0) -> None:
    with sessions.begin() as session:
        record_quotas(session, "x", quotas, now)


def read(sessions: sessionmaker[Session], now: datetime = T0) -> list[Quota]:
    with sessions.begin() as session:
        return current_quotas(session, now)


def test_the_latest_report_per_endpoint_is_kept(sessions: sessionmaker[Session]) -> None:
    store(sessions, Quota("mentions", 450, 449, RESET), Quota("post", 100, 100, RESET))
    store(sessions, Quota("mentions", 450, 447, RESET))

    assert read(sessions) == [
        Quota("x mentions", 450, 447, RESET),
        Quota("x post", 100, 100, RESET),
    ]


def test_a_late_report_from_another_process_does_not_undo_a_newer_one(
    sessions: sessionmaker[Session],
) -> None:
    store(sessions, Quota("post", 100, 90, RESET))
    store(sessions, Quota("post", 100, 95, RESET))  # older: more was left then
    assert read(sessions) == [Quota("x post", 100, 90, RESET)]

    later = RESET + timedelta(minutes=15)
    store(sessions, Quota("post", 100, 99, later))  # a new window
    assert read(sessions) == [Quota("x post", 100, 99, later)]


def test_a_window_that_has_passed_is_full_again(sessions: sessionmaker[Session]) -> None:
    store(sessions, Quota("mentions", 450, 0, RESET))

    assert read(sessions, RESET - timedelta(seconds=1))[0].remaining == 0
    assert read(sessions, RESET)[0].remaining == 450


def test_stats_show_the_quota_left_and_when_it_resets() -> None:
    reset = datetime(2026, 11, 23, 13, 45, tzinfo=UTC)
    lines = quota_lines([Quota("x mentions", 450, 447, reset), Quota("x post", 100, 0, reset)])

    assert lines == [
        "🔑 API quota left: x mentions 447/450 (resets 13:45 UTC) · x post 0/100 (resets 13:45 UTC)"
    ]
    assert quota_lines([]) == []


def test_stats_show_what_x_still_allows_after_polling_and_replying(stack) -> None:
    stack.x.add_mention("@AcmeHelp do you ship to Iceland?")
    card = card_for(stack, "Iceland")
    proposal = propose(stack, "U0ALICE", card, "Yes, in 3-5 working days.")
    for voter in ("U0BOB", "U0CARA", "U0DAN"):
        vote(stack, voter, proposal)
    stack.x.wait_for_replies(1)

    def quota_line() -> str | None:
        text = stack.client.command("U0BOB", "stats").json()["text"]
        line = next((ln for ln in text.splitlines() if ln.startswith("🔑")), None)
        return line if line and "x post" in line else None

    line = wait_until(quota_line, message="the quota line in /care stats")
    assert re.search(r"x mentions \d+/450 \(resets \d\d:\d\d UTC\)", line)
    assert "x post 199/200" in line  # one reply posted in this window
