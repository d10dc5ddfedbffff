"""Plain helpers for tests that use a real, migrated database.

Each test module defines its own ``sessions`` fixture with :func:`migrated_sessions`; the
factories below insert rows directly (for setup only — behaviour under test goes through the
real functions of ``bot``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.states import State
from bot.voting import select_proposal
from storage.db import make_engine, session_factory
from storage.migrate import upgrade
from storage.models import AuditEvent, Customer, Proposal, Question, Reply

#: A fixed moment in the past, so rate-limit resets X reports (real time) are always later.
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)

_ids = itertools.count(1)


class Clock:
    """A fixed, injectable clock that only moves when a test says so."""

    def __init__(self, start: datetime = T0) -> None:
        if start.tzinfo is None:
            raise ValueError("the clock needs an aware datetime")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        self.now += delta if delta is not None else timedelta(**kwargs)
        return self.now

    def set(self, moment: datetime) -> datetime:
        self.now = moment
        return self.now


@contextmanager
def migrated_sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on a freshly migrated database; the engine is disposed afterwards."""
    engine = make_engine(database_url)
    try:
        upgrade(engine)
        yield session_factory(engine)
    finally:
        engine.dispose()


def next_external_id() -> str:
    """A numeric post id no other helper call has returned."""
    return str(1_700_000_000_000_000_000 + next(_ids))


def make_customer(
    session: Session,
    *,
    handle: str = "maria_k",
    name: str | None = None,
    external_id: str | None = None,
    channel: str = "x",
    now: datetime = T0,
) -> Customer:
    customer = Customer(
        channel=channel,
        external_id=external_id or next_external_id(),
        handle=handle,
        name=name if name is not None else handle.title(),
        created_at=now,
    )
    session.add(customer)
    session.flush()
    return customer


def make_question(
    session: Session,
    *,
    text: str = "@AcmeHelp where is my order?",
    state: str = State.OPEN,
    customer_handle: str = "maria_k",
    customer: Customer | None = None,
    external_id: str | None = None,
    channel: str = "x",
    now: datetime = T0,
) -> Question:
    """A stored question in ``state`` (set directly: no audit event)."""
    if customer is None:
        existing = session.scalar(
            select(Customer).where(Customer.channel == channel, Customer.handle == customer_handle)
        )
        customer = existing or make_customer(
            session, handle=customer_handle, channel=channel, now=now
        )
    post_id = external_id or next_external_id()
    question = Question(
        channel=channel,
        external_id=post_id,
        customer_id=customer.id,
        kind="mention",
        text=text,
        post_url=f"https://x.com/{customer.handle}/status/{post_id}",
        conversation_id=post_id,
        asked_at=now - timedelta(minutes=1),
        received_at=now,
        state=state,
        card_attempts=0,
    )
    session.add(question)
    session.flush()
    return question


def make_proposal(
    session: Session,
    question: Question,
    *,
    author_id: str = "U0ALICE",
    text: str = "Sorry! Please DM us your order number and we'll chase it today.",
    state: str = "open",
    now: datetime = T0,
) -> Proposal:
    """A proposal row (set directly: no audit event, no state change of the question)."""
    proposal = Proposal(
        question_id=question.id,
        author_id=author_id,
        text=text,
        state=state,
        created_at=now,
    )
    session.add(proposal)
    session.flush()
    return proposal


def make_queued_reply(
    session: Session,
    *,
    external_id: str,
    text: str = "Sorry! Please DM us your order number and we'll chase it today.",
    author_id: str = "U0ALICE",
    now: datetime = T0,
) -> Reply:
    """A question whose proposal was selected by the real ``select_proposal``: a pending reply."""
    question = make_question(session, state=State.PROPOSED, external_id=external_id, now=now)
    proposal = make_proposal(session, question, author_id=author_id, text=text, now=now)
    return select_proposal(session, question, proposal, actor="U0BOB", now=now, votes=3)


def count(session: Session, model: type[Any], *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def audit_trail(session: Session, question_id: int | None = None) -> list[AuditEvent]:
    """Audit events (of one question, when given) in the order they were written."""
    query = select(AuditEvent).order_by(AuditEvent.id)
    if question_id is not None:
        query = query.where(AuditEvent.question_id == question_id)
    return list(session.scalars(query))


def actions(session: Session, question_id: int | None = None) -> list[str]:
    return [event.action for event in audit_trail(session, question_id)]
