"""The outside APIs' request quotas, kept so `/care stats` can show what is left.

The channel adapter reads them from every answer (X sends ``x-rate-limit-*`` headers); the jobs
store them here after each poll and send, so any process can report them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.ports import Quota
from storage.models import ApiQuota


def record_quotas(session: Session, channel: str, quotas: Sequence[Quota], now: datetime) -> None:
    """Store the latest quota of each endpoint (an older report never overwrites a newer one)."""
    for quota in quotas:
        row = session.get(ApiQuota, (channel, quota.endpoint))
        if row is None:
            session.add(
                ApiQuota(
                    channel=channel,
                    endpoint=quota.endpoint,
                    limit=quota.limit,
                    remaining=quota.remaining,
                    reset_at=quota.reset_at,
                    updated_at=now,
                )
            )
        elif (quota.reset_at, -quota.remaining) >= (row.reset_at, -row.remaining):
            row.limit, row.remaining, row.reset_at, row.updated_at = (
                quota.limit,
                quota.remaining,
                quota.reset_at,
                now,
            )


def current_quotas(session: Session, now: datetime) -> list[Quota]:
    """Every known quota; one whose window has passed is full again."""
    rows = session.scalars(select(ApiQuota).order_by(ApiQuota.channel, ApiQuota.endpoint))
    return [
        Quota(
            f"{row.channel} {row.endpoint}",
            row.limit,
            row.limit if row.reset_at <= now else row.remaining,
            row.reset_at,
        )
        for row in rows
    ]
