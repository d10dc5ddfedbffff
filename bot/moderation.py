"""Moderators' decisions on a question: ignore it, close it, or escalate it now.

Each step locks the question's row, checks that its state allows the move, records the
transition (the audit event names the moderator and the reason), emits the support event and
returns an :class:`Outcome` with a message for the moderator, all in the caller's transaction.
A question that is ignored or closed leaves the states the sweep looks at, so nobody is nudged
or escalated about it afterwards. Sending a proposal without votes is
:func:`bot.takeover.send_proposal_now`.

:func:`moderate` is the use case: one step in its own transaction, then the question's card,
thread and escalation messages show the new state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import support
from bot.escalation import can_escalate, escalate
from bot.escalation_flow import EscalationFlow
from bot.states import FINISHED, State, can_move, transition
from bot.voting import lock_question
from storage.models import Proposal, Question

REASON_LIMIT = 200
IGNORE_REASON = "spam or not a question"


class Action(StrEnum):
    IGNORE = "ignore"
    CLOSE = "close"
    ESCALATE = "escalate"

    @property
    def done(self) -> str:
        return f"{self.value}d"  # ignored, closed, escalated


class Outcome(StrEnum):
    DONE = "done"
    UNKNOWN = "unknown"  # no such question
    ALREADY = "already"  # it is in that state already: nothing to do
    REFUSED = "refused"  # its state does not allow it


@dataclass(frozen=True)
class Result:
    """What happened, and what to tell the moderator (plain text: escape before mrkdwn)."""

    outcome: Outcome
    message: str

    @property
    def changed(self) -> bool:
        return self.outcome is Outcome.DONE


_TARGET = {Action.IGNORE: State.IGNORED, Action.CLOSE: State.CLOSED}
_DONE = {
    Action.IGNORE: "Ignored question #{id}: no reply will be sent and nobody is reminded.",
    Action.CLOSE: "Closed question #{id}: no reply will be sent and nobody is reminded.",
    Action.ESCALATE: "Escalated question #{id} to the support reps.",
}
_WHY_NOT = {
    State.NEW: "it is not in Slack yet",
    State.SELECTED: "its answer is chosen and about to be sent",
    State.SENDING: "its answer is being sent right now",
    State.ANSWERED: "it is already answered",
    State.IGNORED: "it is ignored",
    State.CLOSED: "it is closed",
    State.ESCALATED: "it is escalated",
    State.FAILED: "its reply failed (close it, or send another answer from the escalation)",
}


def ignore(
    session: Session, question_id: int, *, actor: str, now: datetime, reason: str | None = None
) -> Result:
    """Set a question aside as spam or not a question (only before an answer is chosen)."""
    return _set_aside(session, question_id, Action.IGNORE, actor, now, reason or IGNORE_REASON)


def close(
    session: Session, question_id: int, *, actor: str, now: datetime, reason: str | None = None
) -> Result:
    """Close a question that is not finished: nothing more is sent, nobody is reminded."""
    return _set_aside(session, question_id, Action.CLOSE, actor, now, reason)


def escalate_now(
    session: Session, question_id: int, *, actor: str, now: datetime, reason: str | None = None
) -> Result:
    """Escalate to the reps before the deadline, exactly as the sweep would."""
    question = lock_question(session, question_id)
    if question is None:
        return _unknown(question_id)
    if not can_escalate(question):
        return _not_now(question, Action.ESCALATE)
    why = _clean(reason) or f"moderator {actor} escalated it before the deadline"
    escalate(session, question, now, actor=actor, reason=why)
    return Result(Outcome.DONE, _DONE[Action.ESCALATE].format(id=question.id))


def _set_aside(  # noqa: PLR0917 - one private helper for ignore and close
    session: Session,
    question_id: int,
    action: Action,
    actor: str,
    now: datetime,
    reason: str | None,
) -> Result:
    question = lock_question(session, question_id)
    if question is None:
        return _unknown(question_id)
    target = _TARGET[action]
    if question.state in FINISHED or not can_move(question.state, target):
        return _not_now(question, action)
    why = _clean(reason)
    transition(
        session, question, target, actor=actor, now=now, detail={"reason": why} if why else {}
    )
    # Open proposals can no longer win: their Vote buttons go away with the next render.
    for proposal in session.scalars(
        select(Proposal).where(Proposal.question_id == question.id, Proposal.state == "open")
    ):
        proposal.state = "closed"
    data = {"by": actor, "state": str(target)}
    if why:
        data["reason"] = why if action is Action.CLOSE else f"{action.done} ({why})"
    support.emit(session, question_id=question.id, type="question.closed", data=data, now=now)
    return Result(Outcome.DONE, _DONE[action].format(id=question.id))


def _clean(reason: str | None) -> str | None:
    return " ".join((reason or "").split())[:REASON_LIMIT] or None


def _unknown(question_id: int) -> Result:
    return Result(Outcome.UNKNOWN, f"There is no question #{question_id}.")


def _not_now(question: Question, action: Action) -> Result:
    state = State(question.state)
    if state.value == action.done or (action is Action.ESCALATE and question.escalated_at):
        return Result(Outcome.ALREADY, f"Question #{question.id} is already {action.done}.")
    why = _WHY_NOT.get(state, f"it is {state}")
    return Result(Outcome.REFUSED, f"Question #{question.id} can't be {action.done} now: {why}.")


STEPS: dict[Action, Callable[..., Result]] = {
    Action.IGNORE: ignore,
    Action.CLOSE: close,
    Action.ESCALATE: escalate_now,
}


def moderate(
    flow: EscalationFlow,
    action: Action,
    question_id: int,
    *,
    actor: str,
    reason: str | None = None,
) -> Result:
    """Run one moderator action in its own transaction, then show the result everywhere.

    Check the actor's role first (``Roles.require``): this does not, and must not be called
    with a transaction open.
    """
    with flow.sessions.begin() as session:
        result = STEPS[action](session, question_id, actor=actor, now=flow.clock(), reason=reason)
    if result.changed:
        if action is Action.ESCALATE:
            flow.post_due_notifications()  # now, not at the next outbox run
        flow.after_change(question_id)
    return result


def question_of(flow: EscalationFlow, proposal_id: int) -> int | None:
    """The question a proposal answers (for auditing a refusal), or None."""
    with flow.sessions() as session:
        proposal = session.get(Proposal, proposal_id)
        return proposal.question_id if proposal else None
