"""The numbers: periods, stats and the leaderboard against a dataset with hand-computed answers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.states import State
from bot.stats import (
    LEADERBOARD_PERIODS,
    STATS_PERIODS,
    Backlog,
    Contributor,
    MySummary,
    compute_stats,
    contributor_summary,
    leaderboard,
    parse_period,
    percentile,
)
from storage.models import Delivery, Notification, Proposal, Question, Reply, SupportEvent, Vote
from tests.blockkit import validate_text
from tests.dbhelpers import Clock, make_proposal, make_question, migrated_sessions
from tests.scenario import slash
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import Stack

SINCE = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # a Monday
UNTIL = SINCE + timedelta(days=7)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


# --- periods -------------------------------------------------------------------------------

NOW = datetime(2026, 1, 7, 15, 30, tzinfo=UTC)


def test_stats_default_to_today_since_utc_midnight() -> None:
    period = parse_period(None, STATS_PERIODS, now=NOW)

    assert period.label == "today"
    assert period.since == datetime(2026, 1, 7, 0, 0, tzinfo=UTC)
    assert period.until == NOW


def test_today_is_counted_from_utc_midnight_whatever_the_zone_of_now() -> None:
    # 01:30 on the 8th in UTC+2 is 23:30 on the 7th in UTC.
    local = datetime(2026, 1, 8, 1, 30, tzinfo=timezone(timedelta(hours=2)))

    period = parse_period("today", STATS_PERIODS, now=local)

    assert period.since == datetime(2026, 1, 7, 0, 0, tzinfo=UTC)
    assert period.until == datetime(2026, 1, 7, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(("word", "days"), [("7d", 7), ("30d", 30), ("30D", 30), (" 7d ", 7)])
def test_day_periods_end_now(word: str, days: int) -> None:
    period = parse_period(word, STATS_PERIODS, now=NOW)

    assert period.label == word.strip().lower()
    assert period.since == NOW - timedelta(days=days)
    assert period.until == NOW


def test_leaderboard_defaults_to_seven_days() -> None:
    assert parse_period(None, LEADERBOARD_PERIODS, now=NOW).label == "7d"


@pytest.mark.parametrize("word", ["1y", "", "yesterday", "7"])
def test_unknown_periods_are_refused_with_the_choices(word: str) -> None:
    with pytest.raises(ValueError, match="use one of today, 7d, 30d"):
        parse_period(word, STATS_PERIODS, now=NOW)


def test_today_is_not_a_leaderboard_period() -> None:
    with pytest.raises(ValueError, match="use one of 7d, 30d"):
        parse_period("today", LEADERBOARD_PERIODS, now=NOW)


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        parse_period(None, STATS_PERIODS, now=NOW.replace(tzinfo=None))


# --- percentiles ---------------------------------------------------------------------------


def seconds(*values: int) -> list[timedelta]:
    return [timedelta(seconds=v) for v in values]


def test_nearest_rank_percentiles_by_hand() -> None:
    # Sorted: 10 20 30 40 50 60 70 80 90 100 (n = 10, given shuffled).
    values = seconds(70, 10, 100, 40, 20, 90, 30, 60, 50, 80)

    # median: ceil(0.50 · 10) = 5th smallest = 50
    assert percentile(values, 50) == timedelta(seconds=50)
    # p90: ceil(0.90 · 10) = 9th smallest = 90
    assert percentile(values, 90) == timedelta(seconds=90)
    # p95: ceil(9.5) = 10th = 100; p1: ceil(0.1) = 1st = 10
    assert percentile(values, 95) == timedelta(seconds=100)
    assert percentile(values, 1) == timedelta(seconds=10)


def test_median_of_an_even_count_is_the_lower_middle_value() -> None:
    # n = 4: ceil(0.5 · 4) = 2nd smallest of 5 7 9 11 = 7 (not the interpolated 8).
    assert percentile(seconds(11, 5, 9, 7), 50) == timedelta(seconds=7)


def test_percentiles_of_one_and_of_none() -> None:
    assert percentile(seconds(42), 90) == timedelta(seconds=42)
    assert percentile([], 50) is None


# --- the dataset ---------------------------------------------------------------------------
#
# Window [SINCE, UNTIL). Times below are offsets from each question's received_at.
#
#   Q1  +1h  answered   proposals alice +2m, bob +5m, cara +20m; alice's sent at +30m
#            votes on alice's: bob, cara, dan, frank; on bob's: eve
#   Q2  +2h  answered   proposal bob +10m, sent at +1h; votes alice, cara, dan
#   Q3  +3h  answered   escalated, proposal cara +40m, solved in the helpdesk at +2h (its
#            pending reply cancelled)
#   Q4  +4h  escalated  no proposals; escalation notification and a helpdesk delivery pending
#   Q5  +5h  ignored
#   Q6  +6h  closed     proposal dan +1m; vote eve
#   Q7  +7h  selected   proposals eve +4m, alice +6m; vote frank on eve's; eve's reply pending
#   Q8  before the window, answered: gus proposed and hal voted before; the reply went out
#            10 minutes into the window
#   Q9  received at UNTIL (outside), failed: its reply failed

ALICE, BOB, CARA, DAN, EVE, FRANK, GUS, HAL = (
    "U0ALICE",
    "U0BOB",
    "U0CARA",
    "U0DAN",
    "U0EVE",
    "U0FRANK",
    "U0GUS",
    "U0HAL",
)


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def question(session: Session, received: datetime, state: str) -> Question:
    return make_question(session, state=state, now=received)


def proposal(session: Session, q: Question, author: str, after: timedelta) -> Proposal:
    return make_proposal(session, q, author_id=author, now=q.received_at + after)


def votes(session: Session, p: Proposal, voters: list[str], at: datetime) -> None:
    for voter in voters:
        session.add(Vote(proposal_id=p.id, voter_id=voter, created_at=at))
    session.flush()


def reply(
    session: Session, q: Question, p: Proposal, state: str, sent_at: datetime | None = None
) -> Reply:
    row = Reply(
        question_id=q.id,
        proposal_id=p.id,
        channel="x",
        in_reply_to=q.external_id,
        text=p.text,
        state=state,
        attempts=1,
        next_attempt_at=q.received_at,
        created_at=q.received_at,
        sent_at=sent_at,
    )
    session.add(row)
    if sent_at is not None:
        q.answered_at = sent_at
        p.state = "sent"
    session.flush()
    return row


def build_dataset(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        q1 = question(s, SINCE + timedelta(hours=1), State.ANSWERED)
        p1a = proposal(s, q1, ALICE, minutes(2))
        p1b = proposal(s, q1, BOB, minutes(5))
        proposal(s, q1, CARA, minutes(20))
        votes(s, p1a, [BOB, CARA, DAN, FRANK], q1.received_at + minutes(8))
        votes(s, p1b, [EVE], q1.received_at + minutes(8))
        reply(s, q1, p1a, "sent", q1.received_at + minutes(30))

        q2 = question(s, SINCE + timedelta(hours=2), State.ANSWERED)
        p2 = proposal(s, q2, BOB, minutes(10))
        votes(s, p2, [ALICE, CARA, DAN], q2.received_at + minutes(20))
        reply(s, q2, p2, "sent", q2.received_at + minutes(60))

        q3 = question(s, SINCE + timedelta(hours=3), State.ANSWERED)
        q3.escalated_at = q3.received_at + minutes(60)
        p3 = proposal(s, q3, CARA, minutes(40))
        reply(s, q3, p3, "cancelled")
        q3.answered_at = q3.received_at + minutes(120)
        q3.answered_by = "Rita (helpdesk)"

        q4 = question(s, SINCE + timedelta(hours=4), State.ESCALATED)
        q4.escalated_at = q4.received_at + minutes(60)
        s.add(
            Notification(
                question_id=q4.id,
                kind="escalation",
                state="pending",
                attempts=0,
                next_attempt_at=q4.escalated_at,
                created_at=q4.escalated_at,
            )
        )
        event = SupportEvent(
            question_id=q4.id, type="question.escalated", data={}, created_at=q4.escalated_at
        )
        s.add(event)
        s.flush()
        s.add(
            Delivery(
                event_id=event.id,
                question_id=q4.id,
                connector="webhook",
                state="pending",
                attempts=0,
                next_attempt_at=q4.escalated_at,
                created_at=q4.escalated_at,
            )
        )

        question(s, SINCE + timedelta(hours=5), State.IGNORED)

        q6 = question(s, SINCE + timedelta(hours=6), State.CLOSED)
        p6 = proposal(s, q6, DAN, minutes(1))
        votes(s, p6, [EVE], q6.received_at + minutes(3))

        q7 = question(s, SINCE + timedelta(hours=7), State.SELECTED)
        p7 = proposal(s, q7, EVE, minutes(4))
        proposal(s, q7, ALICE, minutes(6))
        votes(s, p7, [FRANK], q7.received_at + minutes(9))
        reply(s, q7, p7, "pending")

        q8 = question(s, SINCE - minutes(60), State.ANSWERED)
        p8 = proposal(s, q8, GUS, minutes(10))
        votes(s, p8, [HAL], q8.received_at + minutes(30))
        reply(s, q8, p8, "sent", SINCE + minutes(10))

        q9 = question(s, UNTIL, State.FAILED)
        p9 = proposal(s, q9, HAL, minutes(1))
        reply(s, q9, p9, "failed")


def test_stats_of_a_known_week(sessions: sessionmaker[Session]) -> None:
    build_dataset(sessions)

    with sessions.begin() as session:
        stats = compute_stats(session, SINCE, UNTIL)

    # Q1…Q7 were received in the window; Q8 (before) and Q9 (at UNTIL, exclusive) were not.
    assert stats.received == 7
    # answered_at set: Q1, Q2, Q3 → 3 / 7 = 42.86 %
    assert stats.answered == 3
    assert stats.answered_percent == pytest.approx(42.857, abs=0.001)
    # escalated_at set: Q3, Q4 → 2 / 7 = 28.57 %
    assert stats.escalated == 2
    assert stats.escalated_percent == pytest.approx(28.571, abs=0.001)
    assert (stats.ignored, stats.closed) == (1, 1)
    # Proposals on Q1…Q7: 3 + 1 + 1 + 0 + 0 + 1 + 2 = 8 → 8 / 7 = 1.14 → 1.1
    assert stats.proposals == 8
    assert stats.proposals_per_question == 1.1
    # First proposal, sorted: Q6 1m, Q1 2m, Q7 4m, Q2 10m, Q3 40m (n = 5)
    # median: ceil(2.5) = 3rd = 4m; p90: ceil(4.5) = 5th = 40m
    assert stats.first_proposal_median == minutes(4)
    assert stats.first_proposal_p90 == minutes(40)
    # Reply: Q1 sent 30m, Q2 sent 60m, Q3 answered in the helpdesk 120m (n = 3)
    # median: ceil(1.5) = 2nd = 60m; p90: ceil(2.7) = 3rd = 120m
    assert stats.reply_median == minutes(60)
    assert stats.reply_p90 == minutes(120)
    # Proposed or voted in the window: alice bob cara dan eve frank (gus and hal only before)
    assert stats.active_contributors == 6
    # Right now: Q7's reply pending, Q9's failed (outside the window: the backlog is global),
    # Q4's escalation and its helpdesk delivery waiting.
    assert stats.backlog == Backlog(
        replies_pending=1,
        replies_sending=0,
        replies_failed=1,
        notifications_waiting=1,
        deliveries_waiting=1,
    )


def test_stats_of_an_empty_period(sessions: sessionmaker[Session]) -> None:
    build_dataset(sessions)

    with sessions.begin() as session:
        stats = compute_stats(session, UNTIL + timedelta(days=1), UNTIL + timedelta(days=2))

    assert (stats.received, stats.answered, stats.escalated, stats.proposals) == (0, 0, 0, 0)
    assert stats.answered_percent is None and stats.escalated_percent is None
    assert stats.proposals_per_question is None
    assert stats.first_proposal_median is None and stats.first_proposal_p90 is None
    assert stats.reply_median is None and stats.reply_p90 is None
    assert stats.active_contributors == 0


# Leaderboard for the window, by hand:
#   answers (replies sent in the window, credited to the proposal's author):
#       alice 1 (Q1), bob 1 (Q2), gus 1 (Q8: received before, sent inside)
#   votes received in the window:
#       alice 4 (Q1: bob cara dan frank); bob 1 (Q1: eve) + 3 (Q2) = 4; dan 1; eve 1; cara 0
#       gus 0 (hal voted before the window)
#   proposals written in the window: alice 2, bob 2, cara 2, dan 1, eve 1, gus 0
#   order: answers desc, votes desc, user id:
#       alice (1, 4) < bob (1, 4) by id; gus (1, 0); dan (0, 1) < eve (0, 1) by id; cara (0, 0)
#   frank only voted: not ranked.
EXPECTED_BOARD = [
    Contributor(ALICE, answers=1, votes_received=4, proposals=2, rank=1),
    Contributor(BOB, answers=1, votes_received=4, proposals=2, rank=2),
    Contributor(GUS, answers=1, votes_received=0, proposals=0, rank=3),
    Contributor(DAN, answers=0, votes_received=1, proposals=1, rank=4),
    Contributor(EVE, answers=0, votes_received=1, proposals=1, rank=5),
    Contributor(CARA, answers=0, votes_received=0, proposals=2, rank=6),
]


def test_leaderboard_ranks_answers_then_votes_then_user_id(
    sessions: sessionmaker[Session],
) -> None:
    build_dataset(sessions)

    with sessions.begin() as session:
        board = leaderboard(session, SINCE, UNTIL)
        top3 = leaderboard(session, SINCE, UNTIL, limit=3)

    assert board == EXPECTED_BOARD
    assert top3 == EXPECTED_BOARD[:3]


def test_leaderboard_of_an_empty_period_is_empty(sessions: sessionmaker[Session]) -> None:
    build_dataset(sessions)

    with sessions.begin() as session:
        assert leaderboard(session, UNTIL + timedelta(days=1), UNTIL + timedelta(days=2)) == []


def test_my_summary_has_my_numbers_and_rank(sessions: sessionmaker[Session]) -> None:
    build_dataset(sessions)

    with sessions.begin() as session:
        bob = contributor_summary(session, BOB, SINCE, UNTIL)
        frank = contributor_summary(session, FRANK, SINCE, UNTIL)

    assert bob == MySummary(BOB, answers=1, votes_received=4, proposals=2, rank=2, contributors=6)
    assert frank == MySummary(FRANK, 0, 0, 0, rank=None, contributors=6)


# --- /care stats and /care leaderboard, through Slack's signed HTTP path -------------------


@pytest.fixture
def stack_at_until(fake_slack: FakeSlack, fake_x: FakeX, database_url: str) -> Iterator[Stack]:
    """The app over HTTP with its clock at UNTIL, so "7d" is exactly [SINCE, UNTIL)."""
    running = Stack(fake_slack, fake_x, database_url, clock=Clock(UNTIL))
    running.start(jobs=False)
    build_dataset(running.app.sessions)
    yield running
    running.stop()


def care(stack: Stack, text: str, user: str = BOB) -> str:
    answer = slash(stack, user, text)
    validate_text(answer["text"])
    return str(answer["text"])


@pytest.mark.e2e
def test_care_stats_for_the_last_seven_days(stack_at_until: Stack) -> None:
    lines = care(stack_at_until, "stats 7d").splitlines()

    # The numbers hand-computed in test_stats_of_a_known_week.
    assert lines[1:] == [
        "Received *7* · answered *3* (43%) · escalated *2* (29%) · ignored 1 · closed 1",
        "⏱️ First proposal: median 4m, p90 40m",
        "📣 Reply: median 1h, p90 2h",
        "🗳️ Proposals per question: 1.1 · active contributors: 6",
        "📤 Backlog: replies 1 pending, 0 sending, 1 failed · notifications 1 · "
        "helpdesk deliveries 1",
    ]


@pytest.mark.e2e
def test_care_stats_defaults_to_today(stack_at_until: Stack) -> None:
    text = care(stack_at_until, "stats")

    assert "today (UTC)" in text
    assert "Received *0*" in text  # UNTIL is midnight: nothing received yet today


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("stats 1y", "`1y` is not a period: use one of today, 7d, 30d"),
        ("stats 7d please", "unexpected `please`"),
        ("leaderboard today", "`today` is not a period: use one of 7d, 30d"),
        ("leaderboard <!channel>", "`&lt;!channel&gt;` is not a period"),
    ],
)
def test_wrong_periods_show_the_usage(stack_at_until: Stack, text: str, problem: str) -> None:
    answer = care(stack_at_until, text)

    assert problem in answer
    assert "Usage: `/care " in answer
    assert "<!channel>" not in answer


@pytest.mark.e2e
def test_care_leaderboard_defaults_to_seven_days(stack_at_until: Stack) -> None:
    lines = care(stack_at_until, "leaderboard").splitlines()

    # EXPECTED_BOARD, rendered.
    assert lines == [
        "*🏆 Top contributors, the last 7 days*",
        "🥇 <@U0ALICE> · 1 answer · 4 votes received · 2 proposals",
        "🥈 <@U0BOB> · 1 answer · 4 votes received · 2 proposals",
        "🥉 <@U0GUS> · 1 answer · 0 votes received · 0 proposals",
        "4. <@U0DAN> · 0 answers · 1 vote received · 1 proposal",
        "5. <@U0EVE> · 0 answers · 1 vote received · 1 proposal",
        "6. <@U0CARA> · 0 answers · 0 votes received · 2 proposals",
    ]


@pytest.mark.e2e
def test_stats_and_leaderboard_are_listed_in_help_for_everyone(stack_at_until: Stack) -> None:
    text = care(stack_at_until, "help", user=FRANK)

    everyone = text.split("*For everyone*")[1].split("*For")[0]
    assert "`/care stats [today|7d|30d]`" in everyone
    assert "`/care leaderboard [7d|30d]`" in everyone
