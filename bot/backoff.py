"""Capped exponential backoff, shared by every retry loop (polling and the outboxes)."""

from __future__ import annotations

from datetime import timedelta


def backoff(base: timedelta, failures: int, ceiling: timedelta) -> timedelta:
    """``base`` doubled per failure, capped (the exponent too, so it never overflows)."""
    return min(base * (1 << min(max(failures, 0), 30)), ceiling)
