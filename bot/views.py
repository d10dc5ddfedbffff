"""Read models: the plain values the Block Kit builders render, loaded from the database."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.slack_blocks import CardView, ProposalView
from storage.models import Customer, Proposal, Question, Reply, Vote

CHANNEL_LABELS = {"x": "X", "manual": "Slack", "slack": "Slack"}


def vote_count(session: Session, proposal_id: int) -> int:
    """Votes cast for one proposal."""
    query = select(func.count()).select_from(Vote).where(Vote.proposal_id == proposal_id)
    return int(session.scalar(query) or 0)


def card_view(session: Session, question: Question) -> CardView:
    """Everything a question card shows."""
    customer = session.get_one(Customer, question.customer_id)
    earlier = session.scalar(
        select(func.count())
        .select_from(Question)
        .where(Question.customer_id == customer.id, Question.id < question.id)
    )
    proposals = session.scalar(
        select(func.count()).select_from(Proposal).where(Proposal.question_id == question.id)
    )
    answered_by: str | None = None
    answer_votes: int | None = None
    reply_url: str | None = None
    if question.selected_proposal_id is not None:
        chosen = session.get_one(Proposal, question.selected_proposal_id)
        answered_by = chosen.author_id
        answer_votes = vote_count(session, chosen.id)
        reply = session.scalar(select(Reply).where(Reply.question_id == question.id))
        reply_url = reply.url if reply is not None else None
    return CardView(
        question_id=question.id,
        channel_label=CHANNEL_LABELS.get(question.channel, question.channel),
        customer_handle=customer.handle,
        customer_name=customer.name,
        text=question.text,
        post_url=question.post_url,
        earlier_questions=int(earlier or 0),
        proposal_count=int(proposals or 0),
        state=question.state,
        answered_by=answered_by,
        answer_votes=answer_votes,
        reply_url=reply_url,
        asked_at=question.asked_at,
        waited=_waited(question),
        answered_elsewhere_by=question.answered_by if question.state == "answered" else None,
        escalated=question.escalated_at is not None,
        expert_group=question.route_group,
    )


def _waited(question: Question) -> timedelta | None:
    """How long the customer had waited at the last nudge or escalation, if any."""
    markers = [
        m
        for m in (question.nudged_at, question.escalated_at, question.escalated_again_at)
        if m is not None
    ]
    return max(markers) - question.received_at if markers else None


def proposal_view(session: Session, proposal: Proposal, votes_needed: int) -> ProposalView:
    """Everything a proposal message shows."""
    return ProposalView(
        proposal_id=proposal.id,
        question_id=proposal.question_id,
        author_id=proposal.author_id,
        text=proposal.text,
        votes=vote_count(session, proposal.id),
        votes_needed=votes_needed,
        state=proposal.state,
    )
