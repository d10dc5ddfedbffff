"""The real crowdcare app served over HTTP, wired to the stand-in Slack and X servers.

Used by the end-to-end tests and by `python -m bot demo`, so both exercise the same path:
signed requests into `POST /slack/events`, Slack Web API calls out to FakeSlack, X calls to FakeX.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bot.app import Crowdcare
from bot.config import Settings, load_settings
from bot.server import make_server, stop_server
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.slack_requests import SlackRequester

SIGNING_SECRET = "stand-in-signing-secret"
QUESTIONS_CHANNEL = "C0QUESTIONS"


def stack_environment(
    slack: FakeSlack, x: FakeX, database_url: str, overrides: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment a deployment would set, pointing at the stand-ins."""
    env = {
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "SLACK_API_URL": slack.api_url,
        "CARE_QUESTIONS_CHANNEL": QUESTIONS_CHANNEL,
        "X_API_URL": x.base_url,
        "X_BEARER_TOKEN": x.bearer_token,
        "X_API_KEY": x.consumer_key,
        "X_API_SECRET": x.consumer_secret,
        "X_ACCESS_TOKEN": x.access_token,
        "X_ACCESS_TOKEN_SECRET": x.access_token_secret,
        "X_POLL_SECONDS": "0.2",
        "CARE_OUTBOX_SECONDS": "0.2",
        "CARE_SEND_LEASE": "2s",
        # Slack's pace is about 1 post/s/channel; tests pace faster so the suite stays quick.
        "CARE_SLACK_CHANNEL_INTERVAL": "0.05",
        "DATABASE_URL": database_url,
    }
    env.update(overrides or {})
    return env


@dataclass
class Stack:
    """A running app plus its stand-ins. ``restart()`` keeps the database and the stand-ins."""

    slack: FakeSlack
    x: FakeX
    database_url: str
    overrides: dict[str, str] = field(default_factory=dict)
    migrate: bool = True
    clock: Callable[[], datetime] | None = None
    http_threads: int = 8  # waitress worker threads, as `serve` uses
    care: Crowdcare | None = None
    requester: SlackRequester | None = None
    _server: Any = None
    _thread: threading.Thread | None = None

    @property
    def settings(self) -> Settings:
        env = stack_environment(self.slack, self.x, self.database_url, self.overrides)
        return load_settings(env, env_file=None)

    @property
    def app(self) -> Crowdcare:
        assert self.care is not None, "stack not started"
        return self.care

    @property
    def client(self) -> SlackRequester:
        assert self.requester is not None, "stack not started"
        return self.requester

    def start(self, *, jobs: bool = True) -> Stack:
        """Build the app, serve it on a free loopback port, and start its jobs."""
        self.care = Crowdcare(self.settings, migrate=self.migrate, clock=self.clock)
        self._server = make_server(self.care.http_app(), "127.0.0.1", 0, threads=self.http_threads)
        self._thread = threading.Thread(target=self._serve, name="stack-http", daemon=True)
        self._thread.start()
        base = f"http://127.0.0.1:{self._server.effective_port}"
        self.requester = SlackRequester(base, SIGNING_SECRET)
        if jobs:
            self.care.start()
        return self

    def _serve(self) -> None:
        # close() from another thread ends run() with an OSError.
        with contextlib.suppress(OSError):
            self._server.run()

    def stop(self) -> None:
        """Stop serving and the jobs; the stand-ins keep running."""
        if self._server is not None:
            stop_server(self._server)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self.care is not None:
            self.care.stop()
        self.care, self._server, self._thread = None, None, None

    def restart(self) -> Stack:
        """Stop and start again on the same database, as after a deploy or a crash."""
        self.stop()
        return self.start()


def wait_until(
    condition: Callable[[], Any], timeout: float = 10.0, message: str = "condition"
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``message`` on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(0.02)
