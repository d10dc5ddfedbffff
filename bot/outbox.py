"""Publishing queued replies exactly once.

A reply is a row first and a post second. Claiming it (``pending → sending``) commits before the
channel is called, with a lease; a row still ``sending`` after its lease means a process died
mid-send, and any reply whose fate is unknown is looked up on the channel before it is retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, true
from sqlalchemy.orm import Session, sessionmaker

from bot import support
from bot.backoff import backoff
from bot.ports import (
    ChannelError,
    DuplicateContent,
    PostedReply,
    RateLimited,
    SocialChannel,
)
from bot.states import State, record, transition
from storage.models import Proposal, Question, Reply

log = logging.getLogger(__name__)

POLICY_HOLD = "held back by the reply policy"

SYSTEM = "crowdcare"
# Questions asked in Slack (`/care ask`) are answered there: nothing is ever published for them.
SLACK_ONLY = ("slack", "manual")
MAX_BACKOFF = timedelta(minutes=15)
FIRST_BACKOFF = timedelta(seconds=5)


@dataclass(frozen=True)
class SendReport:
    """The fate of one reply after a send attempt."""

    reply_id: int
    question_id: int
    state: str
    error: str | None = None


def claim_due(
    sessions: sessionmaker[Session],
    *,
    now: datetime,
    lease: timedelta,
    limit: int = 10,
    channel: str | None = None,
) -> list[int]:
    """Mark due replies as ``sending`` under a lease and return their ids.

    Only replies for ``channel`` (when given), and never those answered in Slack only.
    """
    with sessions.begin() as session:
        due = (
            select(Reply)
            .where(
                Reply.channel.not_in(SLACK_ONLY),
                Reply.channel == channel if channel is not None else true(),
                Reply.next_attempt_at <= now,
                or_(Reply.state == "pending", Reply.state == "sending"),
            )
            .order_by(Reply.next_attempt_at, Reply.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = []
        for reply in session.scalars(due):
            if reply.state == "sending":
                log.warning("Reply %s was left sending (a process died?); reconciling", reply.id)
            reclaimed = reply.state == "sending"
            reply.state = "sending"
            reply.attempts += 1
            reply.next_attempt_at = now + lease
            record(
                session,
                actor=SYSTEM,
                action="reply.claimed",
                question_id=reply.question_id,
                now=now,
                detail={"reply_id": reply.id, "attempt": reply.attempts, "reclaimed": reclaimed},
            )
            question = session.get_one(Question, reply.question_id)
            if question.state != State.SENDING:
                transition(session, question, State.SENDING, actor=SYSTEM, now=now)
            claimed.append(reply.id)
    return claimed


def send_claimed(
    sessions: sessionmaker[Session],
    channel: SocialChannel,
    reply_id: int,
    *,
    clock: Callable[[], datetime],
    gate: Callable[[str], str | None] = lambda _text: None,
) -> SendReport:
    """Publish one claimed reply, reconciling first when an earlier attempt's fate is unknown.

    ``gate`` is the last look before anything is public: it returns why ``text`` must not go out
    (e.g. the reply policy changed since the answer was checked), and the reply is held.
    """
    with sessions.begin() as session:
        reply = session.get_one(Reply, reply_id)
        claim = _Claim(reply.id, reply.attempts)
        text, in_reply_to = reply.text, reply.in_reply_to
    try:
        posted = channel.find_reply(in_reply_to) if claim.attempt > 1 else None
        if posted is not None:
            log.info("Reply %s was already published as %s", reply_id, posted.external_id)
        elif (problem := gate(text)) is not None:
            return _fail(sessions, claim, f"{POLICY_HOLD}: {problem}", clock())
        else:
            posted = channel.post_reply(text, in_reply_to)
    except DuplicateContent as exc:
        return _duplicate(sessions, channel, claim, in_reply_to=in_reply_to, exc=exc, clock=clock)
    except ChannelError as exc:
        if exc.retryable:
            return _retry_later(sessions, claim, exc, clock())
        return _fail(sessions, claim, str(exc), clock())
    return _mark_sent(sessions, claim, posted, clock())


@dataclass(frozen=True)
class _Claim:
    """A sender's hold on a reply: the attempt number it claimed is its fencing token."""

    reply_id: int
    attempt: int


def _owned(session: Session, claim: _Claim) -> tuple[Reply, bool]:
    """The reply, locked, and whether this claim still holds it.

    A sender that outlived its lease may find the row re-claimed (or already sent) by another;
    then its outcome is stale and must change nothing.
    """
    reply = session.scalars(
        select(Reply)
        .where(Reply.id == claim.reply_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return reply, reply.state == "sending" and reply.attempts == claim.attempt


def _superseded(reply: Reply) -> SendReport:
    log.warning("Reply %s was taken over by another sender; leaving it to them", reply.id)
    return SendReport(reply.id, reply.question_id, reply.state, reply.last_error)


def _duplicate(
    sessions: sessionmaker[Session],
    channel: SocialChannel,
    claim: _Claim,
    *,
    in_reply_to: str,
    exc: DuplicateContent,
    clock: Callable[[], datetime],
) -> SendReport:
    # X says this text went out before: maybe our own lost attempt. Look before giving up;
    # never post again blindly.
    try:
        posted = channel.find_reply(in_reply_to)
    except ChannelError as lookup_error:
        return _retry_later(sessions, claim, lookup_error, clock())
    if posted is not None:
        return _mark_sent(sessions, claim, posted, clock())
    if claim.attempt > 1:
        # An earlier attempt's fate is unknown (a lost answer, a crash), so the duplicate is most
        # likely this very reply, public but not yet shown by X's timeline. Telling a person to
        # edit and resend would answer the customer twice.
        error = (
            f"X says this reply is already posted ({exc}), probably by an earlier attempt whose "
            "outcome was lost, though it is not on our timeline yet. Check the customer's post "
            "on X before sending anything again."
        )
    else:
        error = (
            f"X refused the reply as duplicate content ({exc}); edit the answer and send it again."
        )
    return _fail(sessions, claim, error, clock())


def _mark_sent(
    sessions: sessionmaker[Session], claim: _Claim, posted: PostedReply, now: datetime
) -> SendReport:
    with sessions.begin() as session:
        reply, owned = _owned(session, claim)
        if not owned:
            return _superseded(reply)
        reply.state = "sent"
        reply.external_id = posted.external_id
        reply.url = posted.url
        reply.sent_at = now
        reply.last_error = None
        if reply.proposal_id is not None:
            session.get_one(Proposal, reply.proposal_id).state = "sent"
        question = session.get_one(Question, reply.question_id)
        question.answered_at = now
        record(
            session,
            actor=SYSTEM,
            action="reply.sent",
            question_id=question.id,
            now=now,
            detail={"reply_id": reply.id, "external_id": posted.external_id, "url": posted.url},
        )
        support.emit(
            session,
            question_id=question.id,
            type="reply.sent",
            data={"external_id": posted.external_id, "url": posted.url, "text": reply.text},
            now=now,
        )
        transition(session, question, State.ANSWERED, actor=SYSTEM, now=now)
        return SendReport(reply.id, question.id, reply.state)


def _retry_later(
    sessions: sessionmaker[Session], claim: _Claim, exc: ChannelError, now: datetime
) -> SendReport:
    with sessions.begin() as session:
        reply, owned = _owned(session, claim)
        if not owned:
            return _superseded(reply)
        if isinstance(exc, RateLimited) and exc.reset_at is not None:
            when = max(exc.reset_at, now + FIRST_BACKOFF)
        else:
            when = now + backoff(FIRST_BACKOFF, reply.attempts - 1, MAX_BACKOFF)
        reply.state = "pending"
        reply.next_attempt_at = when
        reply.last_error = str(exc)[:1000]
        record(
            session,
            actor=SYSTEM,
            action="reply.retry_scheduled",
            question_id=reply.question_id,
            now=now,
            detail={"reply_id": reply.id, "error": reply.last_error, "at": when.isoformat()},
        )
        log.warning("Reply %s not sent (%s); retrying at %s", reply.id, exc, when.isoformat())
        return SendReport(reply.id, reply.question_id, reply.state, reply.last_error)


def _fail(sessions: sessionmaker[Session], claim: _Claim, error: str, now: datetime) -> SendReport:
    with sessions.begin() as session:
        reply, owned = _owned(session, claim)
        if not owned:
            return _superseded(reply)
        reply.state = "failed"
        reply.last_error = error[:1000]
        question = session.get_one(Question, reply.question_id)
        transition(
            session, question, State.FAILED, actor=SYSTEM, now=now, detail={"error": error[:500]}
        )
        log.error("Reply %s failed for good: %s", reply.id, error)
        return SendReport(reply.id, question.id, reply.state, reply.last_error)


@dataclass(frozen=True)
class SlackAnswer:
    """A chosen answer to a question asked in Slack: shown in its card's thread, not published."""

    question_id: int
    proposal_id: int | None
    text: str


def answer_in_slack(sessions: sessionmaker[Session], *, now: datetime) -> list[SlackAnswer]:
    """Complete every selected answer to a Slack-only question: ``selected → answered``."""
    answered = []
    with sessions.begin() as session:
        due = (
            select(Reply)
            .where(Reply.channel.in_(SLACK_ONLY), Reply.state == "pending")
            .order_by(Reply.id)
            .with_for_update(skip_locked=True)
        )
        for reply in session.scalars(due):
            question = session.get_one(Question, reply.question_id)
            if question.state not in (State.SELECTED, State.SENDING):
                continue  # taken over meanwhile (a rep solved it); that decision stands
            reply.state, reply.attempts, reply.sent_at = "sent", reply.attempts + 1, now
            reply.last_error = None
            if reply.proposal_id is not None:
                session.get_one(Proposal, reply.proposal_id).state = "sent"
            question.answered_at = now
            record(
                session,
                actor=SYSTEM,
                action="reply.answered_in_slack",
                question_id=question.id,
                now=now,
                detail={"reply_id": reply.id, "proposal_id": reply.proposal_id},
            )
            support.emit(
                session,
                question_id=question.id,
                type="reply.sent",
                data={"external_id": None, "url": None, "text": reply.text, "in": "slack"},
                now=now,
            )
            transition(session, question, State.ANSWERED, actor=SYSTEM, now=now)
            answered.append(SlackAnswer(question.id, reply.proposal_id, reply.text))
    return answered
