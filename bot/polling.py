"""The periodic read of a social channel's mentions, resumable from a stored cursor."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from bot.backoff import backoff
from bot.escalation import EscalationPolicy
from bot.intake import IntakeResult, intake_paused, receive_posts
from bot.ports import ChannelError, RateLimited, SocialChannel
from storage.models import ChannelCursor

log = logging.getLogger(__name__)

MAX_BACKOFF = timedelta(minutes=15)
MAX_PAGES = 10  # X serves at most the newest 800 mentions, 100 a page.


@dataclass
class PollOutcome:
    """What one poll did: questions stored, or why it waited."""

    stored: list[int]
    pages: int = 0
    skipped_until: datetime | None = None
    error: str | None = None
    paused: bool = False


def poll_mentions(
    sessions: sessionmaker[Session],
    channel: SocialChannel,
    *,
    policy: Callable[[], EscalationPolicy],
    clock: Callable[[], datetime],
    interval: timedelta,
) -> PollOutcome:
    """Fetch every new mention page by page; move the cursor only once all are stored.

    While intake is paused nothing is fetched; the cursor stays, so resuming reads what came.
    """
    # Its own short read, before any transaction of this poll is open.
    with sessions() as session:
        if intake_paused(session):
            return PollOutcome(stored=[], paused=True)
    now = clock()
    with sessions.begin() as session:
        cursor = _cursor(session, channel.name, now)
        if cursor.next_poll_at is not None and cursor.next_poll_at > now:
            return PollOutcome(stored=[], skipped_until=cursor.next_poll_at)
        since_id = cursor.since_id
    outcome = PollOutcome(stored=[])
    newest: str | None = None
    try:
        brand_id = channel.brand_user_id()
        token: str | None = None
        while outcome.pages < MAX_PAGES:
            page = channel.fetch_mentions(since_id, token)
            outcome.pages += 1
            with sessions.begin() as session:
                result = receive_posts(
                    session,
                    channel=channel.name,
                    brand_id=brand_id,
                    posts=page.posts,
                    policy=policy(),
                    now=clock(),
                )
            _log_page(channel.name, result)
            outcome.stored.extend(result.stored)
            newest = _newer(newest, page.newest_id)
            token = page.next_token
            if token is None:
                break
    except ChannelError as exc:
        outcome.error = str(exc)
        outcome.skipped_until = _delay_after_failure(sessions, channel.name, exc, clock(), interval)
        return outcome
    with sessions.begin() as session:
        cursor = _cursor(session, channel.name, clock())
        cursor.since_id = _newer(cursor.since_id, newest)
        cursor.failures = 0
        cursor.last_error = None
        cursor.next_poll_at = None
        cursor.updated_at = clock()
    return outcome


def _delay_after_failure(
    sessions: sessionmaker[Session],
    channel_name: str,
    exc: ChannelError,
    now: datetime,
    interval: timedelta,
) -> datetime:
    with sessions.begin() as session:
        cursor = _cursor(session, channel_name, now)
        cursor.failures += 1
        if isinstance(exc, RateLimited) and exc.reset_at is not None:
            wait_until = max(exc.reset_at, now + interval)
        else:
            wait_until = now + backoff(interval, cursor.failures, MAX_BACKOFF)
        cursor.next_poll_at = wait_until
        cursor.last_error = str(exc)[:500]
        cursor.updated_at = now
    log.warning("Polling %s failed (%s); next try at %s", channel_name, exc, wait_until.isoformat())
    return wait_until


def _cursor(session: Session, channel_name: str, now: datetime) -> ChannelCursor:
    cursor = session.get(ChannelCursor, channel_name)
    if cursor is None:
        cursor = ChannelCursor(channel=channel_name, failures=0, updated_at=now)
        session.add(cursor)
        session.flush()
    return cursor


def _newer(a: str | None, b: str | None) -> str | None:
    """The larger of two numeric post ids (X ids grow with time)."""
    if a is None or b is None:
        return a or b
    return a if int(a) >= int(b) else b


def _log_page(channel_name: str, result: IntakeResult) -> None:
    if result.stored or result.duplicates:
        log.info(
            "%s: %d new questions, %d already known, %d own posts, %d reposts skipped",
            channel_name,
            len(result.stored),
            result.duplicates,
            result.own_posts,
            result.reposts,
        )
