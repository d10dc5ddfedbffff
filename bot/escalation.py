"""Deadlines and the sweep: nudge the pool, escalate to the reps, escalate again.

Deadlines are columns set at intake, so any number of processes can share the work: each sweep
claims due rows with `FOR UPDATE SKIP LOCKED` (PostgreSQL) and performs each step at most once.
The state change, its audit event, the support event and the Slack notification row commit
together; Slack is told afterwards, from the notifications outbox.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from bot import support
from bot.business_hours import BusinessHours, deadline
from bot.states import State, record, transition
from storage.models import Notification, Question

SYSTEM = "crowdcare"
NUDGE, ESCALATION, ESCALATION_AGAIN = "nudge", "escalation", "escalation_again"
ESCALATES = (State.OPEN, State.PROPOSED, State.FAILED)


@dataclass(frozen=True)
class EscalationPolicy:
    """How long a question may wait, counted in open hours when business hours are set."""

    nudge_after: timedelta
    escalate_after: timedelta
    escalate_again_after: timedelta = timedelta(hours=2)
    hours: BusinessHours | None = None

    def deadlines(self, received_at: datetime) -> dict[str, datetime]:
        """The three deadlines of a question received at ``received_at``."""
        return {
            "nudge_at": deadline(received_at, self.nudge_after, self.hours),
            "escalate_at": deadline(received_at, self.escalate_after, self.hours),
            "escalate_again_at": deadline(received_at, self.escalate_again_after, self.hours),
        }


@dataclass
class SweepResult:
    """Question ids each step acted on in one sweep."""

    nudged: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    escalated_again: list[int] = field(default_factory=list)

    @property
    def any(self) -> bool:
        return bool(self.nudged or self.escalated or self.escalated_again)


def sweep(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    hours: BusinessHours | None = None,
    batch: int = 100,
) -> SweepResult:
    """Perform every due step once. Outside business hours nobody is nudged or escalated."""
    result = SweepResult()
    if hours is not None and not hours.is_open(now):
        return result
    steps: list[tuple[list[int], InstrumentedAttribute[Any], Any, Callable[..., None]]] = [
        (result.nudged, Question.nudge_at, _due_nudge(now), _nudge),
        (result.escalated, Question.escalate_at, _due_escalation(now), escalate),
        (result.escalated_again, Question.escalate_again_at, _due_again(now), _escalate_again),
    ]
    for acted, column, due, step in steps:
        while True:
            done = _claim_and_act(sessions, column=column, due=due, step=step, now=now, batch=batch)
            acted.extend(done)
            if len(done) < batch:
                break
    return result


def _claim_and_act(
    sessions: sessionmaker[Session],
    *,
    column: InstrumentedAttribute[Any],
    due: ColumnElement[bool],
    step: Callable[..., None],
    now: datetime,
    batch: int,
) -> list[int]:
    with sessions.begin() as session:
        claimed = session.scalars(
            select(Question)
            .where(due)
            .order_by(column, Question.id)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        for question in claimed:
            step(session, question, now)
        return [q.id for q in claimed]


def _due_nudge(now: datetime) -> ColumnElement[bool]:
    return (
        (Question.state == State.OPEN)
        & Question.nudged_at.is_(None)
        & (Question.nudge_at <= now)
        & Question.card_ts.is_not(None)
    )


def _due_escalation(now: datetime) -> ColumnElement[bool]:
    return (
        Question.state.in_(ESCALATES)
        & Question.escalated_at.is_(None)
        & (Question.escalate_at <= now)
    )


def _due_again(now: datetime) -> ColumnElement[bool]:
    return (
        (Question.state == State.ESCALATED)
        & Question.escalated_again_at.is_(None)
        & (Question.escalate_again_at <= now)
    )


def _nudge(session: Session, question: Question, now: datetime) -> None:
    question.nudged_at = now
    waited = int((now - question.received_at).total_seconds())
    record(
        session,
        actor=SYSTEM,
        action="question.nudged",
        question_id=question.id,
        now=now,
        detail={"waited_seconds": waited},
    )
    _notify(session, question, NUDGE, now)


def can_escalate(question: Question) -> bool:
    """Whether ``question`` may still be escalated to the reps (level 1), deadline aside."""
    return question.state in ESCALATES and question.escalated_at is None


def escalate(
    session: Session,
    question: Question,
    now: datetime,
    *,
    actor: str = SYSTEM,
    reason: str | None = None,
) -> None:
    """Escalate one question to the reps, in the caller's transaction: the marker, the state
    change and its audit event, the support event and the notification commit together.

    The sweep calls this when the deadline passes; a moderator's Escalate now passes ``actor``
    and ``reason``. The caller holds the question's row lock and checked :func:`can_escalate`.
    """
    question.escalated_at = now
    waited = int((now - question.received_at).total_seconds())
    detail: dict[str, Any] = {"level": 1} if reason is None else {"level": 1, "reason": reason}
    transition(session, question, State.ESCALATED, actor=actor, now=now, detail=detail)
    support.emit(
        session,
        question_id=question.id,
        type="question.escalated",
        data={"level": 1, "waited_seconds": waited, "reason": reason or _reason(waited)},
        now=now,
    )
    _notify(session, question, ESCALATION, now)


def _escalate_again(session: Session, question: Question, now: datetime) -> None:
    question.escalated_again_at = now
    waited = int((now - question.received_at).total_seconds())
    record(
        session,
        actor=SYSTEM,
        action="question.escalated_again",
        question_id=question.id,
        now=now,
        detail={"level": 2, "waited_seconds": waited},
    )
    support.emit(
        session,
        question_id=question.id,
        type="question.escalated",
        data={"level": 2, "waited_seconds": waited, "reason": _reason(waited)},
        now=now,
    )
    _notify(session, question, ESCALATION_AGAIN, now)


def _notify(session: Session, question: Question, kind: str, now: datetime) -> None:
    session.add(
        Notification(
            question_id=question.id,
            kind=kind,
            state="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def _reason(waited_seconds: int) -> str:
    return f"no answer after {waited_seconds // 60} minutes"
