"""The database's clock, so every process sharing one database agrees on what is due."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, func, select

from storage.models import utcnow


class DatabaseClock:
    """Now, by the database: local time plus the database's offset, re-measured every minute.

    Asking the database on every call would add a round trip to every transaction; the offset
    between two clocks drifts by milliseconds an hour, so a cached one is as good.
    """

    def __init__(self, engine: Engine, refresh: float = 60.0) -> None:
        self.engine = engine
        self.refresh = refresh
        self._offset = timedelta(0)
        self._measured_at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        if self.engine.dialect.name == "sqlite":
            # An embedded database's clock is this machine's clock, so the offset is zero. And
            # asking would deadlock: every SQLite transaction starts with BEGIN IMMEDIATE
            # (storage/db.py), and callers read the clock inside their own write transaction,
            # so the measurement waited for its own thread's lock until busy_timeout (30 s),
            # stalling every writer of the process meanwhile.
            return utcnow()
        if time.monotonic() - self._measured_at > self.refresh:
            self._measure()
        return utcnow() + self._offset

    def _measure(self) -> None:
        with self._lock:
            if time.monotonic() - self._measured_at <= self.refresh:
                return
            try:
                with self.engine.connect() as connection:
                    before = utcnow()
                    database_now = connection.scalar(select(func.now()))
                    after = utcnow()
            except Exception:  # keep the last offset; the database may be back in a moment
                return
            if isinstance(database_now, datetime):
                if database_now.tzinfo is None:  # SQLite's CURRENT_TIMESTAMP is naive UTC
                    database_now = database_now.replace(tzinfo=UTC)
                self._offset = database_now - (before + (after - before) / 2)
                # SQLite answers in whole seconds: an offset under a second is rounding.
                if self.engine.dialect.name == "sqlite" and abs(self._offset) < timedelta(
                    seconds=1
                ):
                    self._offset = timedelta(0)
            self._measured_at = time.monotonic()
