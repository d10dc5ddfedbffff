"""A stand-in for the company's webhook endpoint, for tests.

It records every request (headers, raw body, parsed JSON), checks the crowdcare signature with
:func:`bot.signing.verify` and the shared secret, and answers ``200 {"ok": true}``. Failures can be
injected: an error status (optionally with ``Retry-After``), a slow answer, or an answer lost
after the request was processed.

Stdlib only (plus ``bot.signing``). The server runs on 127.0.0.1 on a free port in a background
thread::

    with FakeWebhookReceiver("s3cret") as receiver:
        connector = WebhookConnector(receiver.url, "s3cret")
        ...
        assert [d.key for d in receiver.wait_for(2)] == ["evt_1", "evt_2"]
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast

from bot.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from tests.standins.loopback import LoopbackServer

PATH = "/hooks/crowdcare"

#: What the receiver did with a request.
Outcome = Literal["ok", "failed", "lost", "aborted", "pending"]


@dataclass
class WebhookRequest:
    """One request that reached the receiver. ``headers`` has lower-cased names; ``json`` is the
    parsed body (``None`` if it was not JSON); ``reason`` says why the signature was refused."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    json: Any
    valid: bool
    reason: str | None
    outcome: Outcome = "pending"

    @property
    def key(self) -> str | None:
        """The ``Idempotency-Key`` header."""
        return self.headers.get("idempotency-key")

    @property
    def processed(self) -> bool:
        """Whether the receiver acted on it (answered 2xx, or acted and lost the answer)."""
        return self.outcome in ("ok", "lost")


@dataclass
class _Fault:
    kind: Literal["fail", "hang", "lose_response"]
    status: int = 0
    retry_after: str | None = None
    seconds: float = 0.0


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close, so nothing outlives stop(); hung answers wake up early.
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeWebhookReceiver) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection
    timeout = 5.0

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: every request is recorded in ``FakeWebhookReceiver.requests``."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake = cast(_Server, self.server).fake
        answer = fake._answer(self.command, self.path, headers, body)
        if answer is None:  # lost response: close the connection without a word
            self.close_connection = True
            return
        status, extra_headers, payload = answer
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in extra_headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True


class FakeWebhookReceiver(LoopbackServer):
    """An in-process HTTP endpoint that receives signed crowdcare webhooks."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.requests: list[WebhookRequest] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._faults: list[_Fault] = []

    # -- lifecycle ---------------------------------------------------------------------------

    name = "fake-webhook"

    def _new_server(self) -> _Server:
        return _Server(self)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT/hooks/crowdcare`` of the running server."""
        return self.base_url + PATH

    # -- faults ------------------------------------------------------------------------------

    def fail(self, status: int = 500, times: int = 1, *, retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests with ``status`` (not processed)."""
        self._add(times, _Fault("fail", status=status, retry_after=retry_after))

    def hang(self, seconds: float, times: int = 1) -> None:
        """Wait ``seconds`` before processing the next ``times`` requests (dropped if the
        receiver stops meanwhile)."""
        self._add(times, _Fault("hang", seconds=seconds))

    def lose_response(self, times: int = 1) -> None:
        """Process the next ``times`` requests, then close the connection unanswered."""
        self._add(times, _Fault("lose_response"))

    def _add(self, times: int, fault: _Fault) -> None:
        with self._lock:
            self._faults.extend(
                _Fault(fault.kind, fault.status, fault.retry_after, fault.seconds)
                for _ in range(times)
            )

    # -- inspection --------------------------------------------------------------------------

    def received(self) -> list[WebhookRequest]:
        """Validly signed requests the receiver processed, in arrival order."""
        with self._lock:
            return [request for request in self.requests if request.valid and request.processed]

    def wait_for(self, count: int, timeout: float = 10.0) -> list[WebhookRequest]:
        """Wait until at least ``count`` valid deliveries were processed; fail otherwise."""
        with self._changed:
            done = self._changed.wait_for(
                lambda: sum(r.valid and r.processed for r in self.requests) >= count, timeout
            )
        received = self.received()
        if not done:
            raise AssertionError(
                f"expected {count} webhook deliveries within {timeout}s, got {len(received)}: "
                + repr([request.key for request in received])
            )
        return received

    # -- internals ---------------------------------------------------------------------------

    def _answer(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes] | None:
        try:
            parsed: Any = json.loads(body) if body else None
        except ValueError:
            parsed = None
        reason = verify(
            self.secret,
            headers.get(TIMESTAMP_HEADER.lower()),
            headers.get(SIGNATURE_HEADER.lower()),
            body,
            now=time.time(),
        )
        request = WebhookRequest(method, path, headers, body, parsed, reason is None, reason)
        with self._lock:
            self.requests.append(request)
            fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault.kind == "fail":
            extra = {} if fault.retry_after is None else {"Retry-After": fault.retry_after}
            self._settle(request, "failed")
            return fault.status, extra, json.dumps({"error": "injected failure"}).encode()
        if fault is not None and fault.kind == "hang" and self._stopping.wait(fault.seconds):
            self._settle(request, "aborted")  # stopping: nobody waits for this answer any more
            return None
        if fault is not None and fault.kind == "lose_response":
            self._settle(request, "lost")
            return None
        self._settle(request, "ok")
        return 200, {}, b'{"ok":true}'

    def _settle(self, request: WebhookRequest, outcome: Outcome) -> None:
        with self._changed:
            request.outcome = outcome
            self._changed.notify_all()
