"""The states of a question and the one place they change.

Every transition writes an audit event in the caller's transaction, so the two commit together.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from storage.models import AuditEvent, Question


class State(StrEnum):
    NEW = "new"  # stored, no Slack card yet
    OPEN = "open"  # card posted, waiting for proposals
    PROPOSED = "proposed"  # at least one proposal
    SELECTED = "selected"  # a proposal won; its reply is queued in the outbox
    SENDING = "sending"  # the reply is being published
    ANSWERED = "answered"  # the public reply is out
    ESCALATED = "escalated"  # handed to the reps; can still be answered
    FAILED = "failed"  # the channel refused the reply; needs a person
    IGNORED = "ignored"
    CLOSED = "closed"


ACCEPTS_PROPOSALS = frozenset({State.OPEN, State.PROPOSED, State.ESCALATED})
FINISHED = frozenset({State.ANSWERED, State.IGNORED, State.CLOSED})

_ALLOWED: dict[State, frozenset[State]] = {
    State.NEW: frozenset({State.OPEN, State.IGNORED, State.CLOSED}),
    # ANSWERED straight from open/proposed: a rep solved it in the helpdesk.
    State.OPEN: frozenset(
        {
            State.PROPOSED,
            State.SELECTED,
            State.ESCALATED,
            State.ANSWERED,
            State.IGNORED,
            State.CLOSED,
        }
    ),
    State.PROPOSED: frozenset(
        {State.SELECTED, State.ESCALATED, State.ANSWERED, State.IGNORED, State.CLOSED}
    ),
    # IGNORED too: a spam post nobody answered gets escalated before a moderator sees it.
    State.ESCALATED: frozenset(
        {State.PROPOSED, State.SELECTED, State.ANSWERED, State.IGNORED, State.CLOSED}
    ),
    State.SELECTED: frozenset({State.SENDING, State.FAILED, State.ANSWERED}),
    State.SENDING: frozenset({State.ANSWERED, State.FAILED}),
    State.FAILED: frozenset({State.SELECTED, State.ESCALATED, State.ANSWERED, State.CLOSED}),
    State.ANSWERED: frozenset({State.CLOSED}),
    State.IGNORED: frozenset(),
    State.CLOSED: frozenset(),
}


class InvalidTransition(RuntimeError):
    """A state change the workflow does not allow (a bug, or a race lost)."""


def can_move(current: str, target: State) -> bool:
    """Whether ``current`` may move to ``target``."""
    return target in _ALLOWED[State(current)]


def transition(
    session: Session,
    question: Question,
    target: State,
    *,
    actor: str,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Move ``question`` to ``target`` and record who did it."""
    current = State(question.state)
    if not can_move(current, target):
        raise InvalidTransition(f"question {question.id}: {current} → {target} is not allowed")
    question.state = target
    record(
        session,
        actor=actor,
        action=f"state.{target}",
        question_id=question.id,
        now=now,
        detail={"from": str(current), **(detail or {})},
    )


def record(
    session: Session,
    *,
    actor: str,
    action: str,
    now: datetime,
    question_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append an audit event to the current transaction."""
    session.add(
        AuditEvent(at=now, actor=actor, action=action, question_id=question_id, detail=detail or {})
    )
