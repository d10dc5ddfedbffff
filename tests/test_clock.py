"""The database clock: aware UTC, close to the database's own time, robust when it is away."""

from __future__ import annotations

import time
from datetime import UTC, timedelta

from sqlalchemy import func, select

from storage.clock import DatabaseClock
from storage.db import make_engine
from storage.models import utcnow


def test_database_clock_tells_the_databases_time(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        clock = DatabaseClock(engine)
        now = clock()
        with engine.connect() as connection:
            database_now = connection.scalar(select(func.now()))
        if database_now.tzinfo is None:
            database_now = database_now.replace(tzinfo=UTC)
        assert now.tzinfo is not None
        assert abs(now - database_now) < timedelta(seconds=2)
        assert clock() >= now
    finally:
        engine.dispose()


def test_an_unreachable_database_leaves_the_clock_running() -> None:
    engine = make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        clock = DatabaseClock(engine)
        assert abs(clock() - utcnow()) < timedelta(seconds=1)
    finally:
        engine.dispose()


def test_reading_the_clock_inside_a_sqlite_write_transaction_does_not_wait(tmp_path) -> None:
    # Callers read the clock inside their transactions; on SQLite a transaction holds the write
    # lock, and measuring the offset once took that lock again from the same thread (30 s).
    engine = make_engine(f"sqlite:///{tmp_path / 'clock.db'}")
    try:
        clock = DatabaseClock(engine)
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")  # holds the write lock
            started = time.monotonic()
            now = clock()
            assert time.monotonic() - started < 1.0
        assert abs(now - utcnow()) < timedelta(seconds=1)
    finally:
        engine.dispose()
