"""Numbers for support managers: how the crowd is doing, and who answers.

Pure domain code: each function takes a SQLAlchemy ``Session`` and a half-open window
``[since, until)`` of aware UTC datetimes, and returns plain frozen dataclasses.

Percentiles use the **nearest-rank** method: the p-th percentile of ``n`` sorted values is the
``ceil(p/100 · n)``-th smallest. The median is the 50th percentile by the same method, so for an
even count it is the lower of the two middle values (always a value that occurred).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy import Select, and_, func, select
from sqlalchemy.orm import Session

from bot.states import State
from storage.models import Delivery, Notification, Proposal, Question, Reply, Vote

STATS_PERIODS = ("today", "7d", "30d")
LEADERBOARD_PERIODS = ("7d", "30d")
_LENGTHS = {"7d": timedelta(days=7), "30d": timedelta(days=30)}
_WAITING = ("pending", "sending")


@dataclass(frozen=True)
class Period:
    """A named window ``[since, until)`` in aware UTC."""

    label: str
    since: datetime
    until: datetime


def parse_period(word: str | None, allowed: tuple[str, ...], *, now: datetime) -> Period:
    """The period ``word`` names (the first of ``allowed`` when None), ending at ``now``.

    ``today`` starts at UTC midnight of ``now``; ``7d`` and ``30d`` are the days before ``now``.
    Raises ValueError for any word not in ``allowed``.
    """
    if now.tzinfo is None:
        raise ValueError("parse_period needs an aware datetime")
    label = (allowed[0] if word is None else word).strip().lower()
    if label not in allowed:
        raise ValueError(f"Unknown period '{word}': use one of {', '.join(allowed)}.")
    now = now.astimezone(UTC)
    if label == "today":
        return Period(label, datetime.combine(now.date(), time(), tzinfo=UTC), now)
    if label in _LENGTHS:
        return Period(label, now - _LENGTHS[label], now)
    raise ValueError(f"Period '{label}' is allowed but not defined.")


def percentile(values: Sequence[timedelta], p: float) -> timedelta | None:
    """Nearest-rank percentile: the ``ceil(p/100 · n)``-th smallest value; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


# --- stats ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    """Work still waiting in the outboxes right now (not limited to a period)."""

    replies_pending: int = 0
    replies_sending: int = 0
    replies_failed: int = 0
    notifications_waiting: int = 0  # nudges and escalations pending or being posted
    deliveries_waiting: int = 0  # support events pending or being sent to connectors


@dataclass(frozen=True)
class Stats:
    """What happened to the questions received in a period."""

    received: int
    answered: int
    escalated: int
    ignored: int
    closed: int
    proposals: int
    active_contributors: int
    first_proposal_median: timedelta | None
    first_proposal_p90: timedelta | None
    reply_median: timedelta | None
    reply_p90: timedelta | None
    backlog: Backlog

    @property
    def answered_percent(self) -> float | None:
        return _percent(self.answered, self.received)

    @property
    def escalated_percent(self) -> float | None:
        return _percent(self.escalated, self.received)

    @property
    def proposals_per_question(self) -> float | None:
        """Mean proposals over all received questions (those with none count), 1 decimal."""
        return round(self.proposals / self.received, 1) if self.received else None


def _percent(part: int, whole: int) -> float | None:
    return 100 * part / whole if whole else None


def compute_stats(session: Session, since: datetime, until: datetime) -> Stats:
    """Stats for the questions received in ``[since, until)``.

    *answered* counts questions that were answered at some point (``answered_at`` set), even if
    closed later; *escalated* those escalated at some point. Time to first proposal is measured
    over questions with at least one proposal. Time to reply is the sent reply's ``sent_at``,
    or ``answered_at`` when a rep answered elsewhere (no sent reply), minus ``received_at``.
    Active contributors are the distinct people who proposed or voted within the period,
    whatever question it was on.
    """
    in_period = and_(Question.received_at >= since, Question.received_at < until)
    row = session.execute(
        select(
            func.count(),
            func.count(Question.answered_at),
            func.count(Question.escalated_at),
            func.count().filter(Question.state == State.IGNORED),
            func.count().filter(Question.state == State.CLOSED),
        ).where(in_period)
    ).one()
    received, answered, escalated, ignored, closed = (int(value or 0) for value in row)
    # One pass over the period's proposals gives both their count and each first one.
    proposed = session.execute(
        select(Question.received_at, func.min(Proposal.created_at), func.count(Proposal.id))
        .join(Proposal, Proposal.question_id == Question.id)
        .where(in_period)
        .group_by(Question.id, Question.received_at)
    ).all()
    proposals = sum(int(n) for _, _, n in proposed)
    first = [first_at - received_at for received_at, first_at, _ in proposed]
    replied = [
        replied_at - received_at
        for received_at, replied_at in session.execute(
            select(Question.received_at, func.coalesce(Reply.sent_at, Question.answered_at))
            .outerjoin(Reply, and_(Reply.question_id == Question.id, Reply.state == "sent"))
            .where(in_period, Question.answered_at.is_not(None))
        )
    ]
    return Stats(
        received=received,
        answered=answered,
        escalated=escalated,
        ignored=ignored,
        closed=closed,
        proposals=proposals,
        active_contributors=len(active_contributors(session, since, until)),
        first_proposal_median=percentile(first, 50),
        first_proposal_p90=percentile(first, 90),
        reply_median=percentile(replied, 50),
        reply_p90=percentile(replied, 90),
        backlog=backlog(session),
    )


def active_contributors(session: Session, since: datetime, until: datetime) -> set[str]:
    """Slack users who proposed or voted in ``[since, until)``."""
    authors = session.scalars(
        select(Proposal.author_id)
        .where(Proposal.created_at >= since, Proposal.created_at < until)
        .distinct()
    )
    voters = session.scalars(
        select(Vote.voter_id).where(Vote.created_at >= since, Vote.created_at < until).distinct()
    )
    return set(authors) | set(voters)


def backlog(session: Session) -> Backlog:
    """Counts of replies, notifications and support deliveries still to go out."""
    replies: dict[str, int] = {
        state: int(n)
        for state, n in session.execute(
            select(Reply.state, func.count())
            .where(Reply.state.in_(("pending", "sending", "failed")))
            .group_by(Reply.state)
        )
    }
    notifications = session.scalar(
        select(func.count()).select_from(Notification).where(Notification.state.in_(_WAITING))
    )
    deliveries = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.state.in_(_WAITING))
    )
    return Backlog(
        replies_pending=replies.get("pending", 0),
        replies_sending=replies.get("sending", 0),
        replies_failed=replies.get("failed", 0),
        notifications_waiting=int(notifications or 0),
        deliveries_waiting=int(deliveries or 0),
    )


# --- leaderboard ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Contributor:
    """One person's place on the leaderboard."""

    user_id: str
    answers: int
    votes_received: int
    proposals: int
    rank: int


@dataclass(frozen=True)
class MySummary:
    """One person's own numbers for a period, and where that ranks them."""

    user_id: str
    answers: int
    votes_received: int
    proposals: int
    rank: int | None  # None: nothing to rank in the period
    contributors: int  # how many people are ranked


def ranking(session: Session, since: datetime, until: datetime) -> list[Contributor]:
    """Everyone with an answer sent, a vote received or a proposal made in ``[since, until)``.

    Ordered by answers sent, then votes received (both descending), then user id. An answer is a
    reply sent in the period, credited to the author of its proposal (a rep's "Answer now" is a
    proposal too). A reply without a proposal has no Slack author and is not credited; questions
    solved in the helpdesk have no reply and are not credited either. Votes received are votes
    cast in the period on the person's proposals, whenever those were written.
    """
    answers = _tally(
        session,
        select(Proposal.author_id, func.count())
        .join(Reply, Reply.proposal_id == Proposal.id)
        .where(Reply.state == "sent", Reply.sent_at >= since, Reply.sent_at < until)
        .group_by(Proposal.author_id),
    )
    votes = _tally(
        session,
        select(Proposal.author_id, func.count())
        .join(Vote, Vote.proposal_id == Proposal.id)
        .where(Vote.created_at >= since, Vote.created_at < until)
        .group_by(Proposal.author_id),
    )
    proposals = _tally(
        session,
        select(Proposal.author_id, func.count())
        .where(Proposal.created_at >= since, Proposal.created_at < until)
        .group_by(Proposal.author_id),
    )
    people = sorted(
        set(answers) | set(votes) | set(proposals),
        key=lambda user: (-answers[user], -votes[user], user),
    )
    return [
        Contributor(user, answers[user], votes[user], proposals[user], rank)
        for rank, user in enumerate(people, start=1)
    ]


def leaderboard(
    session: Session, since: datetime, until: datetime, limit: int = 10
) -> list[Contributor]:
    """The top ``limit`` contributors of ``[since, until)`` (see :func:`ranking`)."""
    return ranking(session, since, until)[:limit]


def contributor_summary(
    session: Session, user_id: str, since: datetime, until: datetime
) -> MySummary:
    """``user_id``'s answers sent, votes received, proposals and rank in ``[since, until)``."""
    everyone = ranking(session, since, until)
    mine = next((row for row in everyone if row.user_id == user_id), None)
    if mine is None:
        return MySummary(user_id, 0, 0, 0, None, len(everyone))
    return MySummary(
        user_id, mine.answers, mine.votes_received, mine.proposals, mine.rank, len(everyone)
    )


def home_numbers(
    session: Session, user_id: str, *, now: datetime, admin: bool
) -> tuple[MySummary, Stats | None]:
    """What the App Home shows: the viewer's last 30 days, and today's stats for admins."""
    month = parse_period("30d", STATS_PERIODS, now=now)
    summary = contributor_summary(session, user_id, month.since, month.until)
    if not admin:
        return summary, None
    today = parse_period("today", STATS_PERIODS, now=now)
    return summary, compute_stats(session, today.since, today.until)


def _tally(session: Session, query: Select[str, int]) -> Counter[str]:
    """``{user_id: count}`` from a two-column grouped query."""
    return Counter({user: int(n) for user, n in session.execute(query)})
