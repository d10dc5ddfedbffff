"""The lifecycle every stand-in server shares: an HTTP server on 127.0.0.1, in a thread.

Every stand-in also takes request hooks (:meth:`LoopbackServer.on`): code a test runs just before
a matching request is processed, or just after it was processed and before it is answered. The
fault tests use them to kill the bot at an exact step, e.g. after X created a post but before the
bot could read the answer.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class Verdict(enum.Enum):
    """What a ``before`` hook wants done with the request it saw."""

    PROCESS = "process"
    DROP = "drop"  # close the connection without processing or answering it


@dataclass(frozen=True)
class HookedRequest:
    """What a hook sees: the HTTP method, the path, the decoded parameters and body."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    body: Any = None


@dataclass
class Hook:
    """Runs ``before`` and/or ``after`` on matching requests; see :meth:`LoopbackServer.on`."""

    method: str
    path_prefix: str
    before: Callable[[HookedRequest], Verdict | None] | None = None
    after: Callable[[HookedRequest], object] | None = None
    when: Callable[[HookedRequest], bool] | None = None
    skip: int = 0
    times: int | None = 1
    fired: threading.Event = field(default_factory=threading.Event)
    matched: int = 0

    def matches(self, request: HookedRequest) -> bool:
        return (
            self.method in ("*", request.method)
            and request.path.startswith(self.path_prefix)
            and (self.when is None or self.when(request))
        )


class LoopbackServer:
    """Start, stop and address a stand-in; subclasses build their server in ``_new_server``."""

    name = "stand-in"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        # Set while stopping, so handlers that hang on purpose wake up early.
        self._stopping = threading.Event()
        self._hooks: list[Hook] = []
        self._hooks_lock = threading.Lock()

    def _new_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        """Serve on a free loopback port (idempotent)."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = self._new_server()
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=self.name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join()
        self._server = None
        self._thread = None

    # -- request hooks --------------------------------------------------------------------

    def on(
        self,
        method: str,
        path_prefix: str,
        *,
        before: Callable[[HookedRequest], Verdict | None] | None = None,
        after: Callable[[HookedRequest], object] | None = None,
        when: Callable[[HookedRequest], bool] | None = None,
        skip: int = 0,
        times: int | None = 1,
    ) -> Hook:
        """Run ``before`` / ``after`` around requests matching ``method`` ("*": any) and
        ``path_prefix`` (and ``when``), after the first ``skip`` matches, ``times`` times (None:
        always). ``before`` may return :attr:`Verdict.DROP` to close the connection unprocessed;
        ``after`` runs once the request's effect is done, before its answer is sent. Hooks run on
        the stand-in's request thread. ``hook.fired`` is set once a hook has run.
        """
        hook = Hook(method, path_prefix, before, after, when, skip, times)
        with self._hooks_lock:
            self._hooks.append(hook)
        return hook

    def clear_hooks(self) -> None:
        """Forget every hook."""
        with self._hooks_lock:
            self._hooks.clear()

    def _take_hook(self, request: HookedRequest) -> Hook | None:
        """The first hook due for ``request``, counting the use; called by the stand-ins."""
        with self._hooks_lock:
            for hook in self._hooks:
                if hook.times == 0 or not hook.matches(request):
                    continue
                hook.matched += 1
                if hook.matched <= hook.skip:
                    continue
                if hook.times is not None:
                    hook.times -= 1
                return hook
        return None

    @staticmethod
    def _run_before(hook: Hook | None, request: HookedRequest) -> Verdict:
        if hook is None or hook.before is None:
            return Verdict.PROCESS
        verdict = hook.before(request) or Verdict.PROCESS
        hook.fired.set()
        return verdict

    @staticmethod
    def _run_after(hook: Hook | None, request: HookedRequest) -> None:
        if hook is None or hook.after is None:
            return
        hook.after(request)
        hook.fired.set()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` of the running server."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"
