"""Proposals and votes: who may do what, and when a proposal is selected."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import support
from bot.answer_rules import normalize_answer, published_text
from bot.reply_policy import DM_KIND, ReplyPolicy, check_reply
from bot.states import ACCEPTS_PROPOSALS, State, record, transition
from bot.views import vote_count
from storage.models import Proposal, Question, Reply, Vote

# No links, no deny list: what applies when a caller names no policy.
STRICT_POLICY = ReplyPolicy()


class ProposeOutcome(StrEnum):
    ACCEPTED = "accepted"
    INVALID = "invalid"  # the answer breaks a rule; problems say which
    CLOSED = "closed"  # the question no longer takes proposals
    UNKNOWN = "unknown"  # no such question


@dataclass(frozen=True)
class ProposeResult:
    outcome: ProposeOutcome
    problems: tuple[str, ...] = ()
    proposal: Proposal | None = None
    question: Question | None = None


def lock_question(session: Session, question_id: int) -> Question | None:
    """Load a question holding its row lock (PostgreSQL), so decisions on it serialize."""
    query = (
        select(Question)
        .where(Question.id == question_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return session.scalar(query)


def propose(
    session: Session,
    *,
    question_id: int,
    author_id: str,
    text: str | None,
    now: datetime,
    policy: ReplyPolicy = STRICT_POLICY,
    signature: str | None = None,
    accepted_in: frozenset[State] = ACCEPTS_PROPOSALS,
    by_rep: bool = False,
) -> ProposeResult:
    """Store a proposed answer if the reply policy allows it and the question takes one now.

    ``signature`` (the author's initials, or None) is checked with the text and stored with it.
    ``accepted_in`` and ``by_rep`` let a rep's Answer now reuse this (bot.takeover).
    """
    question = lock_question(session, question_id)
    if question is None:
        return ProposeResult(ProposeOutcome.UNKNOWN)
    if question.state not in accepted_in:
        return ProposeResult(ProposeOutcome.CLOSED, question=question)
    check = check_reply(text, policy, signature=signature, is_dm=question.kind == DM_KIND)
    if not check.ok:
        return ProposeResult(ProposeOutcome.INVALID, problems=check.problems, question=question)
    proposal = Proposal(
        question_id=question.id,
        author_id=author_id,
        text=normalize_answer(text),
        signature=signature or None,
        state="open",
        created_at=now,
    )
    session.add(proposal)
    session.flush()
    record(
        session,
        actor=author_id,
        action="proposal.created",
        question_id=question.id,
        now=now,
        detail={
            "proposal_id": proposal.id,
            "weighted_length": check.weighted_length,
            "rep": by_rep,
        },
    )
    support.emit(
        session,
        question_id=question.id,
        type="proposal.created",
        data={
            "proposal_id": proposal.id,
            "author": author_id,
            "text": proposal.text,
            "rep": by_rep,
        },
        now=now,
    )
    if question.state == State.OPEN:
        transition(session, question, State.PROPOSED, actor=author_id, now=now)
    return ProposeResult(ProposeOutcome.ACCEPTED, proposal=proposal, question=question)


class VoteOutcome(StrEnum):
    COUNTED = "counted"
    SELECTED = "selected"  # this vote made the proposal win
    DUPLICATE = "duplicate"  # the voter already voted for this proposal
    OWN = "own"  # authors cannot vote for themselves
    CLOSED = "closed"  # voting on this question is over
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class VoteResult:
    outcome: VoteOutcome
    votes: int = 0
    proposal: Proposal | None = None
    question: Question | None = None


def cast_vote(  # noqa: PLR0911 - one guard clause per refusal reads best
    session: Session, *, proposal_id: int, voter_id: str, votes_to_select: int, now: datetime
) -> VoteResult:
    """Count one vote; select the proposal when it reaches the threshold (once per question)."""
    proposal = session.get(Proposal, proposal_id)
    if proposal is None:
        return VoteResult(VoteOutcome.UNKNOWN)
    # The question's row lock serializes every vote on the question, so exactly one vote can
    # see the threshold reached with nothing selected yet.
    question = lock_question(session, proposal.question_id)
    if question is None:
        return VoteResult(VoteOutcome.UNKNOWN)
    session.refresh(proposal)
    if proposal.author_id == voter_id:
        record(
            session,
            actor=voter_id,
            action="vote.refused_own",
            question_id=question.id,
            now=now,
            detail={"proposal_id": proposal.id},
        )
        return _result(session, VoteOutcome.OWN, proposal, question)
    if question.state not in ACCEPTS_PROPOSALS or proposal.state != "open":
        return _result(session, VoteOutcome.CLOSED, proposal, question)
    try:
        with session.begin_nested():
            session.add(Vote(proposal_id=proposal.id, voter_id=voter_id, created_at=now))
            session.flush()
    except IntegrityError:
        return _result(session, VoteOutcome.DUPLICATE, proposal, question)
    votes = vote_count(session, proposal.id)
    record(
        session,
        actor=voter_id,
        action="vote.cast",
        question_id=question.id,
        now=now,
        detail={"proposal_id": proposal.id, "votes": votes},
    )
    support.emit(
        session,
        question_id=question.id,
        type="vote.cast",
        data={"proposal_id": proposal.id, "voter": voter_id, "votes": votes},
        now=now,
    )
    if votes >= votes_to_select and question.selected_proposal_id is None:
        select_proposal(session, question, proposal, actor=voter_id, now=now, votes=votes)
        return VoteResult(VoteOutcome.SELECTED, votes, proposal, question)
    return VoteResult(VoteOutcome.COUNTED, votes, proposal, question)


def select_proposal(
    session: Session,
    question: Question,
    proposal: Proposal,
    *,
    actor: str,
    now: datetime,
    votes: int,
) -> Reply:
    """Choose ``proposal`` as the answer and queue its public reply, in the same transaction."""
    question.selected_proposal_id = proposal.id
    proposal.state = "selected"
    for other in session.scalars(
        select(Proposal).where(Proposal.question_id == question.id, Proposal.id != proposal.id)
    ):
        other.state = "closed"
    transition(
        session,
        question,
        State.SELECTED,
        actor=actor,
        now=now,
        detail={"proposal_id": proposal.id, "votes": votes},
    )
    reply = session.scalar(select(Reply).where(Reply.question_id == question.id))
    if reply is None:
        reply = Reply(
            question_id=question.id,
            channel=question.channel,
            in_reply_to=question.external_id,
            created_at=now,
        )
        session.add(reply)
    # A reply X refused for good is the only kind that may be queued again (with a new text).
    # The text is exactly what the reply policy checked: the answer and its signature.
    reply.proposal_id, reply.text = proposal.id, published_text(proposal.text, proposal.signature)
    reply.state, reply.attempts, reply.next_attempt_at = "pending", 0, now
    reply.last_error = None
    session.flush()
    support.emit(
        session,
        question_id=question.id,
        type="question.selected",
        data={
            "proposal_id": proposal.id,
            "by": proposal.author_id,
            "votes": votes,
            "text": reply.text,
        },
        now=now,
    )
    record(
        session,
        actor=actor,
        action="reply.queued",
        question_id=question.id,
        now=now,
        detail={"reply_id": reply.id, "proposal_id": proposal.id},
    )
    return reply


def _result(
    session: Session, outcome: VoteOutcome, proposal: Proposal, question: Question
) -> VoteResult:
    return VoteResult(outcome, vote_count(session, proposal.id), proposal, question)
