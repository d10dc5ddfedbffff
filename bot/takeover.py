"""When people take over from the crowd: a rep answers at once, sends a proposal without votes,
or solves the case in the helpdesk."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import support
from bot.reply_policy import DM_KIND, ReplyPolicy, check_reply
from bot.states import State, record, transition
from bot.views import vote_count
from bot.voting import (
    STRICT_POLICY,
    ProposeOutcome,
    ProposeResult,
    lock_question,
    propose,
    select_proposal,
)
from storage.models import Proposal, Reply

# Where a person may still choose the answer: the crowd has not, or X refused its choice.
TAKEOVER_STATES = frozenset({State.OPEN, State.PROPOSED, State.ESCALATED, State.FAILED})


def answer_now(
    session: Session,
    *,
    question_id: int,
    rep_id: str,
    text: str | None,
    now: datetime,
    policy: ReplyPolicy = STRICT_POLICY,
    signature: str | None = None,
) -> ProposeResult:
    """A rep's own answer, checked against the reply policy and selected at once."""
    result = propose(
        session,
        question_id=question_id,
        author_id=rep_id,
        text=text,
        now=now,
        policy=policy,
        signature=signature,
        accepted_in=TAKEOVER_STATES,
        by_rep=True,
    )
    if result.outcome == ProposeOutcome.ACCEPTED and result.proposal and result.question:
        select_proposal(session, result.question, result.proposal, actor=rep_id, now=now, votes=0)
    return result


class SendOutcome(StrEnum):
    QUEUED = "queued"
    CLOSED = "closed"
    UNKNOWN = "unknown"
    REFUSED = "refused"  # the proposal breaks the reply policy as it is now


@dataclass(frozen=True)
class SendResult:
    outcome: SendOutcome
    problems: tuple[str, ...] = ()  # why the policy refuses it (REFUSED only)


def send_proposal_now(
    session: Session, *, proposal_id: int, actor: str, now: datetime, policy: ReplyPolicy
) -> SendResult:
    """Select a proposal regardless of its votes (a rep's or moderator's decision).

    The proposal is checked again against ``policy`` as it is now: the deny list or the allowed
    domains may have changed since it was written.
    """
    proposal = session.get(Proposal, proposal_id)
    if proposal is None:
        return SendResult(SendOutcome.UNKNOWN)
    question = lock_question(session, proposal.question_id)
    if question is None or question.state not in TAKEOVER_STATES:
        return SendResult(SendOutcome.CLOSED)
    session.refresh(proposal)
    check = check_reply(
        proposal.text, policy, signature=proposal.signature, is_dm=question.kind == DM_KIND
    )
    if not check.ok:
        record(
            session,
            actor=actor,
            action="proposal.send_refused",
            question_id=question.id,
            now=now,
            detail={"proposal_id": proposal.id, "problems": list(check.problems)},
        )
        return SendResult(SendOutcome.REFUSED, check.problems)
    votes = vote_count(session, proposal.id)
    record(
        session,
        actor=actor,
        action="proposal.sent_without_vote",
        question_id=question.id,
        now=now,
        detail={"proposal_id": proposal.id, "votes": votes},
    )
    select_proposal(session, question, proposal, actor=actor, now=now, votes=votes)
    return SendResult(SendOutcome.QUEUED)


class SolveOutcome(StrEnum):
    SOLVED = "solved"
    ALREADY = "already"  # answered, closed or ignored before: nothing changes
    UNKNOWN = "unknown"
    BUSY = "busy"  # crowdcare is publishing a reply right now; its fate decides


def solve_elsewhere(
    session: Session, *, question_id: int, agent: str, text: str | None, now: datetime
) -> SolveOutcome:
    """The helpdesk says a rep answered the customer: stop everything crowdcare would still do."""
    question = lock_question(session, question_id)
    if question is None:
        return SolveOutcome.UNKNOWN
    if question.state in (State.ANSWERED, State.CLOSED, State.IGNORED):
        return SolveOutcome.ALREADY
    reply = session.scalar(select(Reply).where(Reply.question_id == question.id))
    if reply is not None and reply.state == "sending":
        return SolveOutcome.BUSY
    if reply is not None and reply.state == "pending":
        # Not yet published: the rep's answer wins, so the crowd's must never go out.
        reply.state = "cancelled"
        reply.last_error = f"cancelled: solved in the helpdesk by {agent}"
    question.answered_at = now
    question.answered_by = agent[:64]
    detail = {"agent": agent[:200], "text": (text or "")[:10_000]}
    record(
        session,
        actor=f"helpdesk:{agent[:50]}",
        action="question.solved_elsewhere",
        question_id=question.id,
        now=now,
        detail=detail,
    )
    support.emit(
        session,
        question_id=question.id,
        type="question.solved_elsewhere",
        data={"by": detail["agent"], "note": detail["text"]},
        now=now,
    )
    transition(session, question, State.ANSWERED, actor=f"helpdesk:{agent[:50]}", now=now)
    return SolveOutcome.SOLVED
