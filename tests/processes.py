"""Run `python -m bot` as a real child process and watch what it writes, without ever blocking.

:class:`BotProcess` starts the CLI with an explicit environment (never the developer's own Slack
or X settings), reads stdout and stderr in background threads and lets a test wait, with a
deadline, for a line to appear. :func:`run_bot` runs a command that is expected to finish.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[1]

# The only variables a child inherits from this process: enough to find programs, a home and a
# locale. Everything crowdcare reads is passed explicitly.
_INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def bot_environment(variables: Mapping[str, str] | None = None) -> dict[str, str]:
    """A minimal environment for the child, with ``variables`` (crowdcare's settings) on top."""
    env = {name: os.environ[name] for name in _INHERITED if name in os.environ}
    env["PYTHONPATH"] = str(REPO_ROOT)  # `import bot` works from any working directory
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONFAULTHANDLER"] = "1"  # SIGABRT prints every thread's stack: see BotProcess.stop
    env.update(variables or {})
    return env


def bot_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "bot", *args]


def run_bot(
    *args: str, cwd: Path, env: Mapping[str, str], timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run a command that should finish on its own; its output is captured as text."""
    return subprocess.run(  # noqa: S603 - our own interpreter and module
        bot_command(*args),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        timeout=timeout,
        check=False,
    )


class BotProcess:
    """A running `python -m bot ...` whose output lines are collected as they come.

    Reader threads put every line into a queue, so the child never blocks on a full pipe and a
    test never blocks on a read: :meth:`wait_for_stderr` takes lines off the queue with a deadline.
    """

    def __init__(self, *args: str, cwd: Path, env: Mapping[str, str]) -> None:
        self.args = args
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            bot_command(*args),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        self._lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
        self._output: dict[str, list[str]] = {"stdout": [], "stderr": []}
        self._ended: set[str] = set()
        self._lock = threading.Lock()
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            self._reader(self.proc.stdout, "stdout"),
            self._reader(self.proc.stderr, "stderr"),
        ]

    def _reader(self, stream: IO[str], name: str) -> threading.Thread:
        def read() -> None:
            for line in stream:
                self._lines.put((name, line))
            self._lines.put((name, None))  # end of output

        thread = threading.Thread(target=read, name=f"bot-{name}-reader", daemon=True)
        thread.start()
        return thread

    def _take(self, timeout: float) -> bool:
        """Move lines from the queue to the output; False when none came within ``timeout``."""
        try:
            item = self._lines.get(timeout=timeout)
        except queue.Empty:
            return False
        with self._lock:
            while True:
                name, line = item
                if line is None:
                    self._ended.add(name)
                else:
                    self._output[name].append(line)
                try:
                    item = self._lines.get_nowait()
                except queue.Empty:
                    return True

    # -- output ---------------------------------------------------------------------------

    @property
    def stdout(self) -> str:
        self._take(0)
        with self._lock:
            return "".join(self._output["stdout"])

    @property
    def stderr(self) -> str:
        self._take(0)
        with self._lock:
            return "".join(self._output["stderr"])

    def wait_for_stderr(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        """The first stderr line (since start) matching ``pattern``, waiting for it if need be.

        Fails when ``timeout`` passes or the process closes stderr (exits) without one.
        """
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self._lock:
                lines = self._output["stderr"][seen:]
                ended = "stderr" in self._ended
            for line in lines:
                match = compiled.search(line)
                if match:
                    return match
            seen += len(lines)
            if ended:
                try:
                    code: int | None = self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    code = None
                raise AssertionError(
                    f"the process closed stderr (exit code {code}) without a line matching "
                    f"{pattern!r}; stderr:\n{self.stderr}"
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(
                    f"no stderr line matching {pattern!r} within {timeout}s; "
                    f"stderr so far:\n{self.stderr}"
                )
            self._take(min(remaining, 0.5))

    # -- lifecycle ------------------------------------------------------------------------

    def send(self, signum: signal.Signals) -> None:
        self.proc.send_signal(signum)

    def stop(self, signum: signal.Signals = signal.SIGTERM, timeout: float = 15.0) -> int:
        """Send ``signum`` and return the exit code.

        A process still running after ``timeout`` is aborted, which makes it print the stack of
        every thread (PYTHONFAULTHANDLER), and the test fails with that output.
        """
        self.send(signum)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGABRT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(10)
            raise AssertionError(
                f"still running {timeout}s after {signum.name}; stderr, then its threads:\n"
                f"{self.stderr}"
            ) from None

    def wait(self, timeout: float = 15.0) -> int:
        """Wait for the exit code, then for the last of the output."""
        code = self.proc.wait(timeout=timeout)
        self._finish_reading()
        return code

    def close(self) -> None:
        """Kill the process if it still runs, and release its pipes. Safe to call twice."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=15)
        self._finish_reading()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def _finish_reading(self) -> None:
        for thread in self._readers:
            thread.join(timeout=10)
        self._take(0)

    def __enter__(self) -> BotProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
