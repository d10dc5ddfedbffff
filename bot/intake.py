"""Turning posts from a social channel into stored questions, exactly once each."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import support
from bot.escalation import EscalationPolicy
from bot.ports import Author, IncomingPost
from bot.states import State, record
from storage.models import Customer, Question

SYSTEM = "crowdcare"


@dataclass
class IntakeResult:
    """What happened to one batch of posts."""

    stored: list[int] = field(default_factory=list)
    duplicates: int = 0
    own_posts: int = 0
    reposts: int = 0


def receive_posts(
    session: Session,
    *,
    channel: str,
    brand_id: str,
    posts: list[IncomingPost],
    policy: EscalationPolicy,
    now: datetime,
) -> IntakeResult:
    """Store each post as a question unless it is the brand's own, a repost, or already stored."""
    result = IntakeResult()
    for post in posts:
        if post.author.external_id == brand_id:
            result.own_posts += 1
        elif post.is_repost:
            result.reposts += 1
        else:
            question = _store_question(session, channel, post, policy, now)
            if question is None:
                result.duplicates += 1
            else:
                result.stored.append(question.id)
    return result


def _store_question(
    session: Session, channel: str, post: IncomingPost, policy: EscalationPolicy, now: datetime
) -> Question | None:
    exists = select(Question.id).where(
        Question.channel == channel, Question.external_id == post.external_id
    )
    if session.scalar(exists) is not None:
        return None
    customer = _customer(session, channel, post.author, now)
    question = Question(
        channel=channel,
        external_id=post.external_id,
        customer_id=customer.id,
        kind="mention",
        text=post.text,
        post_url=post.url,
        conversation_id=post.conversation_id,
        asked_at=post.created_at,
        received_at=now,
        state=State.NEW,
        card_attempts=0,
        **policy.deadlines(now),
    )
    try:
        # A savepoint, so losing a race to another poller skips this post, not the batch.
        with session.begin_nested():
            session.add(question)
            session.flush()
    except IntegrityError:
        return None
    record(
        session,
        actor=f"{channel}:{post.author.handle}",
        action="question.received",
        question_id=question.id,
        now=now,
        detail={"external_id": post.external_id, "customer_id": customer.id},
    )
    support.emit(
        session,
        question_id=question.id,
        type="question.received",
        data={"external_id": post.external_id, "handle": post.author.handle, "text": post.text},
        now=now,
    )
    return question


def _customer(session: Session, channel: str, author: Author, now: datetime) -> Customer:
    query = select(Customer).where(
        Customer.channel == channel, Customer.external_id == author.external_id
    )
    customer = session.scalar(query)
    if customer is None:
        customer = Customer(
            channel=channel,
            external_id=author.external_id,
            handle=author.handle,
            name=author.name,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(customer)
                session.flush()
        except IntegrityError:
            customer = session.scalars(query).one()
    elif (customer.handle, customer.name) != (author.handle, author.name):
        # People rename themselves; the card should show who they are now.
        customer.handle, customer.name = author.handle, author.name
    return customer
