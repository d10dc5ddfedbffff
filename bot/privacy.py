"""Erasing a customer's personal data on request, keeping the anonymous numbers.

:func:`forget` runs in the caller's transaction. For every customer with the X handle it
replaces the handle with ``forgotten-<id>``, blanks the name and the X account id, and on each of
their questions erases the texts (question, proposals, reply: ``[erased]``), the post's URL and
ids, and every copy of those in ``support_events``, ``deliveries``, ``notifications`` and
``audit_events``. Ids, states, timestamps, votes and counts stay, so statistics do not change.

Questions still open are closed ("privacy request") so nobody answers an erased question. A reply
waiting in the outbox is cancelled before its text is erased, so ``[erased]`` can never be
published. A reply being published at this very moment (``sending``) cannot be stopped: then
nothing is changed and :class:`ReplyInFlight` asks to try again once X has answered.

The audit event ``customer.forgotten`` names the customer's id and the number of questions, never
the handle. Slack still shows the old text until the caller re-renders the cards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session

from bot import support
from bot.states import FINISHED, State, can_move, record, transition
from storage.models import (
    AuditEvent,
    Customer,
    Delivery,
    Notification,
    Proposal,
    Question,
    Reply,
    SupportEvent,
)

ERASED = "[erased]"
REASON = "privacy request"
CANCELLED = "erased on privacy request"
ASKER_PREFIX = "asker:"  # bot.intake's customer for a question relayed without a handle
#: JSON keys whose values are free text about the customer on their questions' events.
FREE_TEXT_KEYS = frozenset({"text", "note", "handle", "name", "customer_handle", "customer_name"})

_HANDLE = re.compile(r"[A-Za-z0-9_]{1,15}")
_PROFILE_HOSTS = frozenset({"x.com", "www.x.com", "twitter.com", "www.twitter.com"})
_SLACK_MENTION = re.compile(r"<[@#!][^>]*>")
_Row = TypeVar("_Row", Reply, Notification)


class NotAHandle(ValueError):
    """The word is not an X handle (``str()`` says why, safe to show once escaped)."""


class ReplyInFlight(RuntimeError):
    """A reply to the customer is being published right now; nothing was changed."""


@dataclass(frozen=True)
class Forgotten:
    """What :func:`forget` erased: whom, which questions, and Slack messages to re-render."""

    customer_ids: tuple[int, ...]
    question_ids: tuple[int, ...]
    closed: tuple[int, ...]  # questions closed because they were still open
    cancelled_replies: tuple[int, ...]
    nudges: tuple[tuple[str, str, int], ...] = field(default=())  # (channel, ts, question id)


def parse_handle(word: str) -> str:
    """The X handle in ``@handle``, ``handle`` or a profile link; raises :class:`NotAHandle`."""
    raw = word.strip()
    if _SLACK_MENTION.fullmatch(raw):
        raise NotAHandle("that is a Slack mention, not an X handle")
    # Slack escapes a typed <…> as &lt;…&gt;, and wraps links it recognised in <…|…>.
    raw = raw.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
    raw = raw.removeprefix("<").removesuffix(">").split("|", 1)[0].strip()
    if "/" in raw:
        raw = _from_profile_link(raw)
    handle = raw.removeprefix("@")
    if not _HANDLE.fullmatch(handle):
        raise NotAHandle("an X handle is 1-15 letters, digits or underscores")
    return handle


def _from_profile_link(link: str) -> str:
    url = urlsplit(link if "://" in link else f"https://{link}")
    parts = [part for part in url.path.split("/") if part]
    if url.hostname not in _PROFILE_HOSTS or len(parts) < 1:
        raise NotAHandle("only x.com profile links name a handle")
    return parts[0]


def find_customers(session: Session, handle: str) -> list[Customer]:
    """The customers with X handle ``handle`` (case-insensitive), locked.

    Questions relayed with `/care ask @handle` name the same person, so every channel counts;
    the stand-ins for colleagues who relayed a question without a handle never do.
    """
    return list(
        session.scalars(
            select(Customer)
            .where(
                func.lower(Customer.handle) == handle.lower(),
                Customer.external_id.not_like(f"{ASKER_PREFIX}%"),
            )
            .order_by(Customer.id)
            .with_for_update()
        )
    )


def forget(session: Session, handle: str, *, actor: str, now: datetime) -> Forgotten | None:
    """Erase everything personal about the customer(s) with ``handle``; None when unknown.

    ``handle`` is read by :func:`parse_handle` (so ``@name`` works; anything else raises).
    """
    handle = parse_handle(handle)
    customers = find_customers(session, handle)
    if not customers:
        return None
    ids = [customer.id for customer in customers]
    questions = list(
        session.scalars(
            select(Question)
            .where(Question.customer_id.in_(ids))
            .order_by(Question.id)
            .with_for_update()
        )
    )
    question_ids = [question.id for question in questions]
    replies = _locked(session, Reply, question_ids)
    notifications = _locked(session, Notification, question_ids)
    states = [row.state for row in replies] + [row.state for row in notifications]
    if "sending" in states:
        raise ReplyInFlight("a reply or notice about this customer is being posted right now")
    channels = {customer.channel for customer in customers}
    scrub = _Scrubber(handle, channels, _secrets(session, customers, questions, replies))
    cancelled = _cancel_replies(session, replies, actor=actor, now=now)
    closed = [q.id for q in questions if _close(session, q, actor=actor, now=now)]
    nudges = _settle_notifications(notifications, scrub)
    for question in questions:
        _erase_question(session, question, scrub)
    for reply in replies:
        reply.text, reply.in_reply_to = ERASED, ""
        reply.last_error = scrub.text(reply.last_error)
    _erase_events(session, question_ids, scrub)
    for customer in customers:
        customer.handle = customer.external_id = f"forgotten-{customer.id}"
        customer.name = ""
        mine = [q for q in questions if q.customer_id == customer.id]
        record(
            session,
            actor=actor,
            action="customer.forgotten",
            now=now,
            detail={"customer_id": customer.id, "questions": len(mine)},
        )
    session.flush()
    return Forgotten(
        customer_ids=tuple(ids),
        question_ids=tuple(question_ids),
        closed=tuple(closed),
        cancelled_replies=tuple(cancelled),
        nudges=tuple(nudges),
    )


def _locked(session: Session, model: type[_Row], question_ids: list[int]) -> list[_Row]:
    if not question_ids:
        return []
    query = select(model).where(model.question_id.in_(question_ids)).order_by(model.id)
    return list(session.scalars(query.with_for_update()))


def _secrets(
    session: Session, customers: list[Customer], questions: list[Question], replies: list[Reply]
) -> list[str]:
    """Every string that identifies the customer or repeats what was said to or by them."""
    proposals = session.scalars(
        select(Proposal.text).where(Proposal.question_id.in_([q.id for q in questions]))
    )
    found: Iterable[str] = [
        *(c.name for c in customers),
        *(c.external_id for c in customers),
        *(q.text for q in questions),
        *(q.post_url for q in questions),
        *(q.external_id for q in questions),
        *(q.conversation_id or "" for q in questions),
        *(r.text for r in replies),
        *proposals,
    ]
    # Very short strings (a name "Al") would erase unrelated words; the keys catch those.
    return sorted({s.strip() for s in found if len(s.strip()) >= 3}, key=len, reverse=True)


def _cancel_replies(
    session: Session, replies: list[Reply], *, actor: str, now: datetime
) -> list[int]:
    cancelled = []
    for reply in replies:
        if reply.state != "pending":
            continue
        reply.state, reply.last_error = "cancelled", CANCELLED
        record(
            session,
            actor=actor,
            action="reply.cancelled",
            question_id=reply.question_id,
            now=now,
            detail={"reply_id": reply.id, "reason": REASON},
        )
        cancelled.append(reply.id)
    return cancelled


def _close(session: Session, question: Question, *, actor: str, now: datetime) -> bool:
    """Close a question nobody may answer any more; False when it was finished already."""
    if State(question.state) in FINISHED:
        return False
    if not can_move(question.state, State.CLOSED):
        # selected or sending: its reply was just cancelled, which is a failure to send.
        transition(
            session, question, State.FAILED, actor=actor, now=now, detail={"error": CANCELLED}
        )
    transition(session, question, State.CLOSED, actor=actor, now=now, detail={"reason": REASON})
    support.emit(
        session,
        question_id=question.id,
        type="question.closed",
        data={"by": actor, "state": str(State.CLOSED), "reason": REASON},
        now=now,
    )
    return True


def _settle_notifications(
    notifications: list[Notification], scrub: _Scrubber
) -> list[tuple[str, str, int]]:
    """Skip notices not posted yet; return the nudges posted, to be re-rendered."""
    nudges = []
    for notification in notifications:
        notification.last_error = scrub.text(notification.last_error)
        if notification.state == "pending":
            notification.state, notification.last_error = "skipped", CANCELLED
        elif notification.kind == "nudge" and notification.channel and notification.ts:
            nudges.append((notification.channel, notification.ts, notification.question_id))
    return nudges


def _erase_question(session: Session, question: Question, scrub: _Scrubber) -> None:
    question.text, question.post_url = ERASED, ""
    question.external_id = f"forgotten-{question.id}"
    question.conversation_id = None
    for proposal in session.scalars(select(Proposal).where(Proposal.question_id == question.id)):
        proposal.text = ERASED
    for delivery in session.scalars(select(Delivery).where(Delivery.question_id == question.id)):
        delivery.last_error = scrub.text(delivery.last_error)


def _erase_events(session: Session, question_ids: list[int], scrub: _Scrubber) -> None:
    """Their questions' events lose every free text; any other event loses the handle."""
    for support_event in session.scalars(
        select(SupportEvent).where(SupportEvent.question_id.in_(question_ids))
    ):
        support_event.data = scrub.json(support_event.data, scoped=True)
    theirs = AuditEvent.question_id.in_(question_ids)
    needle = scrub.handle.lower()
    mentions = or_(
        func.lower(AuditEvent.actor).contains(needle, autoescape=True),
        func.lower(cast(AuditEvent.detail, Text)).contains(needle, autoescape=True),
    )
    for event in session.scalars(select(AuditEvent).where(or_(theirs, mentions))):
        scoped = event.question_id in question_ids
        event.detail = scrub.json(event.detail, scoped=scoped)
        event.actor = scrub.actor(event.actor, scoped=scoped)


class _Scrubber:
    """Replaces the handle with its stand-in and erases any string holding a secret."""

    def __init__(self, handle: str, channels: set[str], secrets: list[str]) -> None:
        self.handle = handle
        self.channels = channels
        self.secrets = secrets
        self.pattern = re.compile(rf"(?<![A-Za-z0-9_]){re.escape(handle)}(?![A-Za-z0-9_])", re.I)

    def text(self, value: str | None) -> str | None:
        if value is None:
            return None
        if any(secret in value for secret in self.secrets):
            return ERASED
        return self.pattern.sub("[forgotten]", value)

    def actor(self, actor: str, *, scoped: bool) -> str:
        # The intake names the customer as "<channel>:<handle>" (whatever their handle was then).
        channel, colon, _name = actor.partition(":")
        if scoped and colon and channel in self.channels:
            return f"{channel}:[forgotten]"
        return self.pattern.sub("[forgotten]", actor)

    def json(self, value: Any, *, scoped: bool) -> Any:
        if isinstance(value, dict):
            return {
                key: ERASED
                if scoped and key in FREE_TEXT_KEYS and isinstance(item, str) and item
                else self.json(item, scoped=scoped)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.json(item, scoped=scoped) for item in value]
        if isinstance(value, str):
            return self.text(value)
        return value
