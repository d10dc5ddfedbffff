"""The weekly summary: last week's numbers, posted once per ISO week by any number of processes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.notifier import Notifier, NotifierError
from bot.slack_blocks import CardView, ProposalView
from bot.slack_notifier import SlackNotifier, make_web_client
from bot.weekly import WEEKLY_EVENT, post_weekly_summary, week_before
from storage.models import AuditEvent, WeeklySummary
from tests.blockkit import validate_blocks, validate_text
from tests.dbhelpers import Clock, migrated_sessions
from tests.standins.fake_slack import FakeSlack
from tests.test_stats import UNTIL, build_dataset

CHANNEL = "C0WEEKLY"


class FakeNotifier:
    """Stands in for Slack: keeps posted messages; can fail the next posts, before or after
    Slack has accepted them (as a timeout would)."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.lookups: list[tuple[str, dict[str, Any]]] = []
        self.refuse_next = 0  # posts refused outright
        self.lose_answer_next = 0  # posts that go out, but the answer never comes back
        self._lock = threading.Lock()

    def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
        tag: tuple[str, dict[str, Any]] | None = None,
    ) -> str:
        with self._lock:
            if self.refuse_next:
                self.refuse_next -= 1
                raise NotifierError("Slack answered internal_error")
            ts = f"1700000000.{len(self.messages) + 1:06d}"
            self.messages.append(
                {"channel": channel, "text": text, "blocks": blocks, "tag": tag, "ts": ts}
            )
            if self.lose_answer_next:
                self.lose_answer_next -= 1
                raise NotifierError("Slack unreachable: TimeoutError")
            return ts

    def find_message(self, channel: str, event_type: str, payload: dict[str, Any]) -> str | None:
        self.lookups.append((event_type, payload))
        for message in self.messages:
            if message["channel"] == channel and message["tag"] == (event_type, payload):
                return str(message["ts"])
        return None

    # The rest of the Notifier protocol is not used by the weekly summary.
    def post_card(self, channel: str, card: CardView) -> str:
        raise NotImplementedError

    def find_card(self, channel: str, question_id: int) -> str | None:
        raise NotImplementedError

    def update_card(self, channel: str, ts: str, card: CardView) -> None:
        raise NotImplementedError

    def post_proposal(self, channel: str, thread_ts: str, proposal: ProposalView) -> str:
        raise NotImplementedError

    def update_proposal(self, channel: str, ts: str, proposal: ProposalView) -> None:
        raise NotImplementedError

    def post_in_thread(self, channel: str, thread_ts: str, text: str) -> None:
        raise NotImplementedError

    def tell(self, channel: str, user: str, text: str) -> None:
        raise NotImplementedError

    def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        raise NotImplementedError

    def permalink(self, channel: str, ts: str) -> str | None:
        raise NotImplementedError

    def upload_file(
        self, user_id: str, filename: str, content: bytes, *, title: str, comment: str
    ) -> None:
        raise NotImplementedError


def _conforms(notifier: FakeNotifier) -> Notifier:
    return notifier  # mypy checks that the fake implements the protocol


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


@pytest.fixture
def notifier() -> FakeNotifier:
    return FakeNotifier()


def weeks_posted(notifier: FakeNotifier) -> list[str]:
    return [m["tag"][1]["week"] for m in notifier.messages]


def summary_row(sessions: sessionmaker[Session], week: str) -> WeeklySummary | None:
    with sessions.begin() as session:
        row = session.get(WeeklySummary, week)
        if row is not None:
            session.expunge(row)
        return row


# --- which week ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "label", "start"),
    [
        # Monday 00:00 of W03 (2026-01-12): W02 has just ended.
        (datetime(2026, 1, 12, 0, 0, tzinfo=UTC), "2026-W02", datetime(2026, 1, 5, tzinfo=UTC)),
        # One minute earlier it is still W02: the last ended week is W01 (from 2025-12-29).
        (
            datetime(2026, 1, 11, 23, 59, tzinfo=UTC),
            "2026-W01",
            datetime(2025, 12, 29, tzinfo=UTC),
        ),
        # 2026 has 53 ISO weeks; Monday 2027-01-04 ends 2026-W53.
        (datetime(2027, 1, 4, 8, 0, tzinfo=UTC), "2026-W53", datetime(2026, 12, 28, tzinfo=UTC)),
    ],
)
def test_the_week_before_is_the_last_full_iso_week(
    now: datetime, label: str, start: datetime
) -> None:
    week = week_before(now)

    assert (week.label, week.start, week.end) == (label, start, start + timedelta(days=7))


# --- posting once --------------------------------------------------------------------------


def test_the_summary_is_posted_once(
    sessions: sessionmaker[Session], notifier: FakeNotifier
) -> None:
    build_dataset(sessions)  # the week [SINCE, UNTIL) is 2026-W02
    clock = Clock(UNTIL + timedelta(hours=1))

    assert post_weekly_summary(sessions, notifier, CHANNEL, clock) is True
    clock.advance(hours=1)
    assert post_weekly_summary(sessions, notifier, CHANNEL, clock) is False
    clock.advance(days=3)
    assert post_weekly_summary(sessions, notifier, CHANNEL, clock) is False

    [message] = notifier.messages
    assert message["channel"] == CHANNEL
    assert message["tag"] == (WEEKLY_EVENT, {"week": "2026-W02"})
    validate_blocks(message["blocks"])
    validate_text(message["text"])
    shown = json.dumps(message["blocks"], ensure_ascii=False)
    # The numbers of test_stats_of_a_known_week, and its leaderboard's top 5 (cara, 6th, is not)
    assert "answered *3* (43%)" in shown
    for user in ("U0ALICE", "U0BOB", "U0GUS", "U0DAN", "U0EVE"):
        assert f"<@{user}>" in shown
    assert "U0CARA" not in shown
    row = summary_row(sessions, "2026-W02")
    assert row is not None
    assert (row.channel, row.ts, row.attempts) == (CHANNEL, message["ts"], 1)
    assert row.posted_at == UNTIL + timedelta(hours=1)
    with sessions.begin() as session:
        assert session.scalars(
            select(AuditEvent.action).where(AuditEvent.action == "weekly_summary.posted")
        ).all() == ["weekly_summary.posted"]


def test_a_week_is_not_summed_up_before_it_ends(
    sessions: sessionmaker[Session], notifier: FakeNotifier
) -> None:
    build_dataset(sessions)
    clock = Clock(UNTIL - timedelta(minutes=1))  # Sunday 23:59 of 2026-W02

    post_weekly_summary(sessions, notifier, CHANNEL, clock)
    assert weeks_posted(notifier) == ["2026-W01"]

    clock.set(UNTIL)  # Monday 00:00
    post_weekly_summary(sessions, notifier, CHANNEL, clock)
    assert weeks_posted(notifier) == ["2026-W01", "2026-W02"]


def test_many_processes_post_it_once(database_url: str, notifier: FakeNotifier) -> None:
    with (
        migrated_sessions(database_url) as first,
        migrated_sessions(database_url) as second,
        migrated_sessions(database_url) as third,
    ):
        factories = [first, second, third] * 2
        start = threading.Barrier(len(factories))
        results: list[bool] = []

        def run(factory: sessionmaker[Session]) -> None:
            start.wait()
            results.append(post_weekly_summary(factory, notifier, CHANNEL, Clock(UNTIL)))

        threads = [threading.Thread(target=run, args=(f,)) for f in factories]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert sorted(results) == [False] * 5 + [True]
    assert weeks_posted(notifier) == ["2026-W02"]


# --- failures ------------------------------------------------------------------------------


def test_a_refused_post_is_retried_after_the_lease(
    sessions: sessionmaker[Session], notifier: FakeNotifier
) -> None:
    clock = Clock(UNTIL)
    notifier.refuse_next = 1

    assert post_weekly_summary(sessions, notifier, CHANNEL, clock) is False
    clock.advance(minutes=5)  # attempt 1 still owns the week
    assert post_weekly_summary(sessions, notifier, CHANNEL, clock) is False
    assert notifier.messages == []

    clock.advance(minutes=5)  # its 10 minutes are over
    assert post_weekly_summary(sessions, notifier, CHANNEL, clock) is True

    assert weeks_posted(notifier) == ["2026-W02"]
    assert notifier.lookups == [(WEEKLY_EVENT, {"week": "2026-W02"})]  # looked before posting
    row = summary_row(sessions, "2026-W02")
    assert row is not None and row.attempts == 2 and row.ts == notifier.messages[0]["ts"]


def test_a_post_whose_answer_was_lost_is_found_not_repeated(
    sessions: sessionmaker[Session], notifier: FakeNotifier
) -> None:
    clock = Clock(UNTIL)
    notifier.lose_answer_next = 1

    assert post_weekly_summary(sessions, notifier, CHANNEL, clock) is False
    clock.advance(minutes=10)
    assert post_weekly_summary(sessions, notifier, CHANNEL, clock) is True

    [message] = notifier.messages
    row = summary_row(sessions, "2026-W02")
    assert row is not None and row.ts == message["ts"] and row.posted_at == clock.now


def test_a_retry_posts_where_the_week_was_claimed(
    sessions: sessionmaker[Session], notifier: FakeNotifier
) -> None:
    clock = Clock(UNTIL)
    notifier.refuse_next = 1
    post_weekly_summary(sessions, notifier, CHANNEL, clock)

    clock.advance(hours=1)
    post_weekly_summary(sessions, notifier, "C0ELSEWHERE", clock)

    assert [m["channel"] for m in notifier.messages] == [CHANNEL]


# --- through the stand-in Slack ------------------------------------------------------------


def test_the_summary_reaches_slack_once(
    sessions: sessionmaker[Session], fake_slack: FakeSlack
) -> None:
    build_dataset(sessions)
    slack = SlackNotifier(make_web_client(fake_slack.bot_token, fake_slack.api_url))
    clock = Clock(UNTIL + timedelta(minutes=3))

    assert post_weekly_summary(sessions, slack, CHANNEL, clock) is True
    clock.advance(hours=1)
    assert post_weekly_summary(sessions, slack, CHANNEL, clock) is False

    [message] = fake_slack.messages(CHANNEL)
    assert message["metadata"] == {
        "event_type": WEEKLY_EVENT,
        "event_payload": {"week": "2026-W02"},
    }
    assert "2026-W02" in json.dumps(message["blocks"], ensure_ascii=False)
    assert len(fake_slack.calls_to("chat.postMessage")) == 1


def test_slack_failing_once_still_gives_one_summary(
    sessions: sessionmaker[Session], fake_slack: FakeSlack
) -> None:
    slack = SlackNotifier(make_web_client(fake_slack.bot_token, fake_slack.api_url))
    fake_slack.fail("chat.postMessage", "internal_error")
    clock = Clock(UNTIL)

    assert post_weekly_summary(sessions, slack, CHANNEL, clock) is False
    clock.advance(minutes=10)
    assert post_weekly_summary(sessions, slack, CHANNEL, clock) is True

    assert len(fake_slack.messages(CHANNEL)) == 1
    assert len(fake_slack.calls_to("conversations.history")) == 1
