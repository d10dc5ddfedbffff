"""Periodic jobs behind a small facade; callers never import APScheduler."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.exc import OperationalError

log = logging.getLogger(__name__)


class _DropOverlapNotices(logging.Filter):
    """A job still running at its next interval is expected (one instance at a time)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "maximum number of running instances reached" not in record.getMessage()


logging.getLogger("apscheduler.scheduler").addFilter(_DropOverlapNotices())


class Jobs:
    """Named repeating jobs; each runs one at a time and can be woken to run at once."""

    def __init__(self) -> None:
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._woken: dict[str, threading.Event] = {}

    def every(self, name: str, seconds: float, work: Callable[[], object]) -> None:
        """Run ``work`` every ``seconds``, first right after start."""
        woken = self._woken.setdefault(name, threading.Event())

        def run() -> None:
            # A wake that arrives while the job runs is not dropped: run once more.
            while True:
                woken.clear()
                try:
                    work()
                except OperationalError as exc:
                    # The database is away: one line per run, not a traceback every few seconds.
                    log.warning(
                        "Job %s could not reach the database (%s); retrying", name, exc.orig
                    )
                except Exception:
                    log.exception("Job %s failed; it runs again at its next interval", name)
                if not woken.is_set():
                    return

        self._scheduler.add_job(
            run, "interval", seconds=seconds, id=name, name=name, next_run_time=datetime.now(UTC)
        )

    def wake(self, name: str) -> None:
        """Run job ``name`` as soon as possible."""
        event = self._woken.get(name)
        if event is None:
            return
        event.set()
        if self._scheduler.running:
            job = self._scheduler.get_job(name)
            if job is not None:
                job.modify(next_run_time=datetime.now(UTC))

    def start(self) -> None:
        """Start running jobs in background threads."""
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop; waits for running jobs to finish."""
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
