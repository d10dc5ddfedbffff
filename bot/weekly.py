"""The weekly summary: last ISO week's numbers and top contributors, posted once per week.

Run it as often as you like (hourly is plenty): from Monday 00:00 UTC it posts the week that
just ended. Any number of processes may run it. Inserting the week's ``weekly_summaries`` row
claims the week; attempt ``k`` owns it from ``created_at + (k-1)·lease`` to
``created_at + k·lease``, so a process that died mid-post is replaced after its lease, never
while it may still be posting. Any attempt after the first looks for the message's metadata in
the channel before posting again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from bot.notifier import Notifier, NotifierError
from bot.states import record
from bot.stats import compute_stats, leaderboard
from bot.stats_blocks import weekly_summary_blocks, weekly_summary_text
from storage.models import WeeklySummary

log = logging.getLogger(__name__)

WEEKLY_EVENT = "crowdcare_weekly_summary"
TOP = 5
LEASE = timedelta(minutes=10)
SYSTEM = "crowdcare"


@dataclass(frozen=True)
class Week:
    """An ISO week: ``[start, end)`` from Monday 00:00 UTC, labelled like ``2026-W47``."""

    label: str
    start: datetime
    end: datetime


def week_before(now: datetime) -> Week:
    """The last ISO week that has fully ended at ``now`` (aware)."""
    today = now.astimezone(UTC).date()
    end = datetime.combine(today - timedelta(days=today.weekday()), time(), tzinfo=UTC)
    start = end - timedelta(days=7)
    year, number, _ = start.date().isocalendar()
    return Week(f"{year}-W{number:02d}", start, end)


def post_weekly_summary(
    sessions: sessionmaker[Session],
    notifier: Notifier,
    channel: str,
    clock: Callable[[], datetime],
    *,
    lease: timedelta = LEASE,
) -> bool:
    """Post the summary of the week that just ended, unless it is (being) posted; True if so."""
    week = week_before(clock())
    claim = _claim(sessions, week, channel, clock(), lease)
    if claim is None:
        return False
    attempt, channel = claim
    with sessions.begin() as session:
        stats = compute_stats(session, week.start, week.end)
        top = leaderboard(session, week.start, week.end, limit=TOP)
    tag = (WEEKLY_EVENT, {"week": week.label})
    try:
        # An earlier attempt may have posted and died before recording it.
        ts = notifier.find_message(channel, *tag) if attempt > 1 else None
        ts = ts or notifier.post_message(
            channel,
            weekly_summary_text(stats, week.label),
            weekly_summary_blocks(stats, top, week.label),
            tag=tag,
        )
    except NotifierError as exc:
        log.warning("Weekly summary %s not posted yet (attempt %s): %s", week.label, attempt, exc)
        return False
    return _record_posted(sessions, week.label, attempt, channel=channel, ts=ts, now=clock())


def _claim(
    sessions: sessionmaker[Session], week: Week, channel: str, now: datetime, lease: timedelta
) -> tuple[int, str] | None:
    """``(attempt, channel)`` when this call may post the week, else None."""
    try:
        with sessions.begin() as session:
            row = session.get(WeeklySummary, week.label, with_for_update=True)
            if row is None:
                session.add(
                    WeeklySummary(week=week.label, channel=channel, attempts=1, created_at=now)
                )
                return 1, channel
            if row.posted_at is not None or now < row.created_at + row.attempts * lease:
                return None  # posted, or an attempt still owns the week
            row.attempts += 1
            return row.attempts, row.channel
    except IntegrityError:
        return None  # another process inserted the week first


def _record_posted(
    sessions: sessionmaker[Session],
    week: str,
    attempt: int,
    *,
    channel: str,
    ts: str,
    now: datetime,
) -> bool:
    with sessions.begin() as session:
        row = session.get_one(WeeklySummary, week, with_for_update=True)
        if row.attempts != attempt or row.posted_at is not None:
            log.warning("Weekly summary %s: attempt %s outlived its lease", week, attempt)
            return False
        row.ts, row.posted_at = ts, now
        record(
            session,
            actor=SYSTEM,
            action="weekly_summary.posted",
            now=now,
            detail={"week": week, "channel": channel, "ts": ts, "attempt": attempt},
        )
    return True
