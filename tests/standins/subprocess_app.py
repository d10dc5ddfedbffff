"""crowdcare as a real child process (`python -m bot serve`) that a test can SIGKILL and restart.

The child gets an explicit environment pointing at the stand-ins (:func:`stack_environment`), so
a kill tests what a crash in production does: nothing in the process survives, only the database
and what Slack and X already received. :meth:`ServedBot.killer` makes a stand-in hook that kills
the child at an exact step of its loop.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

from tests.processes import BotProcess, bot_environment, run_bot
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.loopback import HookedRequest, Verdict
from tests.standins.slack_requests import SlackRequester
from tests.standins.stack import SIGNING_SECRET, stack_environment

SERVING = r"serving Slack on http://127\.0\.0\.1:(\d+)/slack/events"


class ServedBot:
    """One crowdcare deployment: at most one child process at a time, restartable after a kill."""

    def __init__(self, variables: Mapping[str, str], workdir: Path, name: str = "bot") -> None:
        self.variables = dict(variables)
        self.workdir = workdir
        self.name = name
        self.process: BotProcess | None = None
        self.client: SlackRequester | None = None
        self.incarnations: list[BotProcess] = []
        self.kills = 0

    @property
    def on_postgres(self) -> bool:
        return self.variables.get("DATABASE_URL", "").startswith("postgresql")

    def migrate(self) -> None:
        """`python -m bot migrate`, as a deployment runs before `serve` on PostgreSQL."""
        migrated = run_bot("migrate", cwd=self.workdir, env=bot_environment(self.variables))
        assert migrated.returncode == 0, migrated.stderr

    def start(self, **overrides: str) -> ServedBot:
        """Start a new child (after a kill: on the same database) and wait until it serves.

        A hook may kill the child before it even says it serves (its jobs start first): then
        this returns with no client, and the test goes on to :meth:`wait_killed`.
        """
        assert not self.running, f"{self.name} is already running"
        kills = self.kills
        env = bot_environment({**self.variables, **overrides})
        process = BotProcess(
            "serve", "--host", "127.0.0.1", "--port", "0", cwd=self.workdir, env=env
        )
        self.process, self.client = process, None
        self.incarnations.append(process)
        try:
            port = int(process.wait_for_stderr(SERVING, timeout=60).group(1))
        except AssertionError:
            if self.kills > kills:
                return self
            raise
        self.client = SlackRequester(f"http://127.0.0.1:{port}", SIGNING_SECRET)
        return self

    @property
    def slack(self) -> SlackRequester:
        """Signed Slack requests to the running child."""
        assert self.client is not None, f"{self.name} was never started"
        return self.client

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the child and reap it: no handler, no clean-up, no last words."""
        process = self.process
        if process is None or process.proc.poll() is not None:
            return
        self.kills += 1  # first: whoever waits for the child to die must know it was us
        os.kill(process.proc.pid, signal.SIGKILL)
        process.proc.wait(timeout=15)

    def killer(self, then: Verdict = Verdict.PROCESS) -> Callable[[HookedRequest], Verdict]:
        """A stand-in hook that kills the child, then has the request processed or dropped."""

        def kill(_request: HookedRequest) -> Verdict:
            self.kill()
            return then

        return kill

    def wait_killed(self, timeout: float = 30.0) -> None:
        """Wait until a hook killed the child (fails, with its output, if it never happened)."""
        process = self.process
        assert process is not None
        try:
            process.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"{self.name} was not killed within {timeout}s; stderr:\n{self.stderr}"
            ) from None
        assert self.kills, f"{self.name} exited by itself:\n{self.stderr}"

    @property
    def stderr(self) -> str:
        """What every incarnation wrote to stderr, oldest first."""
        return "\n".join(
            f"--- {self.name} #{n} ---\n{p.stderr}" for n, p in enumerate(self.incarnations, 1)
        )

    def close(self) -> None:
        """Kill what still runs and release every pipe; safe to call twice."""
        for process in self.incarnations:
            process.close()


class Fleet:
    """Every crowdcare process of one test, on one database and one pair of stand-ins."""

    def __init__(
        self,
        root: Path,
        slack: FakeSlack,
        x: FakeX,
        database_url: str,
        defaults: Mapping[str, str] | None = None,
    ) -> None:
        self.root = root
        self.slack = slack
        self.x = x
        self.database_url = database_url
        self.defaults = dict(defaults or {})
        self.bots: list[ServedBot] = []

    def new(self, name: str = "bot", **overrides: str) -> ServedBot:
        """A deployment (not started yet); the first one migrates PostgreSQL, as `migrate` does."""
        workdir = self.root / name
        workdir.mkdir()
        variables = stack_environment(
            self.slack, self.x, self.database_url, {**self.defaults, **overrides}
        )
        bot = ServedBot(variables, workdir, name)
        if bot.on_postgres and not self.bots:
            bot.migrate()
        self.bots.append(bot)
        return bot

    def close(self) -> None:
        """Drop the stand-ins' hooks (they point at these processes) and kill what still runs."""
        self.slack.clear_hooks()
        self.x.clear_hooks()
        for bot in self.bots:
            bot.close()

    def __enter__(self) -> Fleet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
