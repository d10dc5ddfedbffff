"""Turning posts from a social channel into stored questions, exactly once each."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import support
from bot.escalation import EscalationPolicy
from bot.ports import Author, IncomingPost
from bot.routing import Rule, first_match, load_rules
from bot.states import State, record
from storage.models import AuditEvent, Customer, Question, Setting

SYSTEM = "crowdcare"

# What a customer wrote is stored as received, within these limits. X's longest posts are 25,000
# characters; anything longer is cut here (the audit event says so) rather than refused, so one
# hostile post can never block the mentions behind it.
MAX_QUESTION_TEXT = 25_000
MAX_HANDLE, MAX_NAME, MAX_URL, MAX_ID = 64, 200, 300, 64
REPLACEMENT = "\ufffd"
# Neither database can store these: NUL (PostgreSQL text) and lone surrogates (not UTF-8).
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable(text: str | None, limit: int) -> str:
    """``text`` as the database can hold it: unstorable characters replaced, cut to ``limit``."""
    return _UNSTORABLE.sub(REPLACEMENT, text or "")[:limit]


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
    # Read once per batch, in this transaction: the rules as they are when the posts arrive.
    rules = load_rules(session) if posts else []
    for post in posts:
        if post.author.external_id == brand_id:
            result.own_posts += 1
        elif post.is_repost:
            result.reposts += 1
        else:
            question = _store_question(session, channel, post, policy, now, rules)
            if question is None:
                result.duplicates += 1
            else:
                result.stored.append(question.id)
    return result


def _store_question(  # noqa: PLR0917 - one post and the batch's context
    session: Session,
    channel: str,
    post: IncomingPost,
    policy: EscalationPolicy,
    now: datetime,
    rules: list[Rule],
) -> Question | None:
    external_id = storable(post.external_id, MAX_ID)
    exists = select(Question.id).where(
        Question.channel == channel, Question.external_id == external_id
    )
    if session.scalar(exists) is not None:
        return None
    customer = _customer(session, channel, post.author, now)
    text = storable(post.text, MAX_QUESTION_TEXT)
    route = first_match(rules, text)
    question = Question(
        channel=channel,
        external_id=external_id,
        customer_id=customer.id,
        kind="mention",
        text=text,
        post_url=storable(post.url, MAX_URL),
        conversation_id=storable(post.conversation_id, MAX_ID) or None,
        asked_at=post.created_at,
        received_at=now,
        state=State.NEW,
        card_attempts=0,
        route_channel=route.channel if route else None,
        route_group=route.group if route else None,
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
        detail={
            "external_id": external_id,
            "customer_id": customer.id,
            **({"route_channel": route.channel} if route else {}),
            **({"text_cut_from": len(post.text)} if len(post.text) > MAX_QUESTION_TEXT else {}),
        },
    )
    support.emit(
        session,
        question_id=question.id,
        type="question.received",
        data={"external_id": external_id, "handle": customer.handle, "text": text},
        now=now,
    )
    return question


def _customer(session: Session, channel: str, author: Author, now: datetime) -> Customer:
    external_id = storable(author.external_id, MAX_ID)
    handle, name = storable(author.handle, MAX_HANDLE), storable(author.name, MAX_NAME)
    query = select(Customer).where(Customer.channel == channel, Customer.external_id == external_id)
    customer = session.scalar(query)
    if customer is None:
        customer = Customer(
            channel=channel,
            external_id=external_id,
            handle=handle,
            name=name,
            created_at=now,
        )
        try:
            with session.begin_nested():
                session.add(customer)
                session.flush()
        except IntegrityError:
            customer = session.scalars(query).one()
    elif (customer.handle, customer.name) != (handle, name):
        # People rename themselves; the card should show who they are now.
        customer.handle, customer.name = handle, name
    return customer


# -- questions asked in Slack ------------------------------------------------------------------

MANUAL_CHANNEL = "slack"  # answered in Slack only: no reply is ever published on a network
MANUAL_KIND = "manual"
MAX_MANUAL_TEXT = 2000


def ask_in_slack(
    session: Session,
    *,
    asker: str,
    text: str,
    handle: str | None,
    policy: EscalationPolicy,
    now: datetime,
) -> Question:
    """Store a question someone relays from elsewhere; it is routed and voted on as usual."""
    text = storable(text, MAX_MANUAL_TEXT)
    if handle:
        author = Author(external_id=f"@{handle.lower()}", handle=handle, name="")
    else:
        # No customer named: the card names the colleague who relays the question.
        author = Author(external_id=f"asker:{asker}", handle="manual", name=asker)
    customer = _customer(session, MANUAL_CHANNEL, author, now)
    route = first_match(load_rules(session), text)
    question = Question(
        channel=MANUAL_CHANNEL,
        external_id=f"ask-{uuid.uuid4().hex}",
        customer_id=customer.id,
        kind=MANUAL_KIND,
        text=text,
        post_url="",
        conversation_id=None,
        asked_at=now,
        received_at=now,
        state=State.NEW,
        card_attempts=0,
        route_channel=route.channel if route else None,
        route_group=route.group if route else None,
        **policy.deadlines(now),
    )
    session.add(question)
    session.flush()
    record(
        session,
        actor=asker,
        action="question.received",
        question_id=question.id,
        now=now,
        detail={
            "kind": MANUAL_KIND,
            "asker": asker,
            "customer_id": customer.id,
            "route_channel": question.route_channel,
        },
    )
    support.emit(
        session,
        question_id=question.id,
        type="question.received",
        data={"external_id": question.external_id, "handle": author.handle, "text": text},
        now=now,
    )
    return question


def asker_of(session: Session, question_id: int) -> str | None:
    """Who relayed a question asked in Slack (from its intake audit event)."""
    event = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.question_id == question_id, AuditEvent.action == "question.received")
        .order_by(AuditEvent.id)
        .limit(1)
    )
    asker = (event.detail or {}).get("asker") if event is not None else None
    return str(asker) if asker else None


# -- pausing intake ----------------------------------------------------------------------------

INTAKE_KEY = "intake"
PAUSED = "paused"


def intake_paused(session: Session) -> bool:
    """Whether an admin paused reading mentions (``/care pause``)."""
    stored = session.get(Setting, INTAKE_KEY)
    return stored is not None and stored.value == PAUSED


def set_intake_paused(session: Session, paused: bool, *, actor: str, now: datetime) -> bool:
    """Pause or resume reading mentions; audited. False when it already was so (no change)."""
    stored = session.get(Setting, INTAKE_KEY, with_for_update=True)
    if (stored is not None and stored.value == PAUSED) == paused:
        return False
    if paused:
        if stored is None:
            session.add(Setting(key=INTAKE_KEY, value=PAUSED, updated_by=actor, updated_at=now))
        else:
            stored.value, stored.updated_by, stored.updated_at = PAUSED, actor, now
    elif stored is not None:
        session.delete(stored)
    record(session, actor=actor, action="intake.paused" if paused else "intake.resumed", now=now)
    return True
