"""HTTP mode: one WSGI app served by waitress (a production WSGI server, pure Python).

Requests to `/slack/events` pass a gate before Bolt sees them: size, then Slack's signature
(401 with the reason), then a body that parses (400). Bolt would otherwise answer a malformed
body with a 500.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk.signature import SignatureVerifier
from waitress.server import create_server

from bot.signing import SIGNATURE_HEADER

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_000_000  # Slack's largest payloads (big modals) stay far below this.
MAX_CLOCK_SKEW = 300  # seconds; Slack's own recommendation against replays
MAX_REMEMBERED_SIGNATURES = 100_000

_REASONS = {
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Payload Too Large",
    503: "Service Unavailable",
}


BackendHandler = Callable[[bytes, Mapping[str, str]], tuple[int, dict[str, Any]]]


class ReplayGuard:
    """Remembers signatures accepted within the freshness window, to refuse exact replays.

    A captured request is only dangerous while its timestamp is fresh (5 minutes), so a signature
    is kept that long. Slack signs every delivery anew (a retry has its own timestamp), so a
    signature seen twice is a copy. Per process; the database dedupes events across processes.
    """

    def __init__(self, clock: Callable[[], float], window: float = MAX_CLOCK_SKEW) -> None:
        self.clock = clock
        self.window = window
        self._seen: dict[str, float] = {}
        self._lock = threading.Lock()

    def first_use(self, signature: str) -> bool:
        """Record ``signature``; False if it was already used within the window."""
        with self._lock:
            if self._seen_locked(signature):
                return False
            self._remember_locked(signature)
            return True

    def seen(self, signature: str) -> bool:
        with self._lock:
            return self._seen_locked(signature)

    def remember(self, signature: str) -> None:
        with self._lock:
            self._remember_locked(signature)

    def _seen_locked(self, signature: str) -> bool:
        expires = self._seen.get(signature)
        return expires is not None and expires > self.clock()

    def _remember_locked(self, signature: str) -> None:
        now = self.clock()
        if len(self._seen) > MAX_REMEMBERED_SIGNATURES:
            self._seen = {s: t for s, t in self._seen.items() if t > now}
        self._seen[signature] = now + 2 * self.window  # either side of the sender's clock


class HttpApp:
    """Routes `POST /slack/events` to Bolt (after the gate), `POST /backend/events` to the
    helpdesk handler, and answers `GET /healthz`."""

    def __init__(
        self,
        bolt: App,
        healthy: Callable[[], bool],
        signing_secret: str,
        clock: Callable[[], float] = time.time,
        backend: BackendHandler | None = None,
    ) -> None:
        self.slack = SlackRequestHandler(bolt, path="/slack/events")
        self.healthy = healthy
        self.verifier = SignatureVerifier(signing_secret)
        self.clock = clock
        self.backend = backend
        self.replays = ReplayGuard(clock)

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", ""), environ.get("REQUEST_METHOD", "")
        if path == "/healthz" and method in ("GET", "HEAD"):
            ok = self.healthy()
            return _json(start_response, 200 if ok else 503, {"ok": ok, "database": ok})
        if path == "/backend/events" and self.backend is not None:
            return _backend_request(self.backend, environ, start_response, method, self.replays)
        if path != "/slack/events":
            return _json(start_response, 404, {"error": "not found"})
        if method != "POST":
            return _json(start_response, 405, {"error": "use POST"})
        return self._slack_request(environ, start_response)

    def _slack_request(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> Iterable[bytes]:
        length = _content_length(environ)
        if length > MAX_BODY_BYTES:
            return _json(start_response, 413, {"error": "request body too large"})
        body = environ["wsgi.input"].read(length) if length else b""
        refusal = self._refusal(environ, body)
        if refusal is not None:
            status, reason = refusal
            log.warning("Refused a Slack request: %s %s", status, reason)
            return _json(start_response, status, {"error": reason})
        environ["wsgi.input"] = io.BytesIO(body)
        try:
            return self.slack(environ, start_response)
        except Exception:
            # A signed payload of a shape Bolt cannot read: the sender's fault, not a crash.
            log.exception("Bolt could not handle a signed request")
            return _json(start_response, 400, {"error": "malformed Slack payload"})

    def _refusal(self, environ: WSGIEnvironment, body: bytes) -> tuple[int, str] | None:
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP", "")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE", "")
        if not timestamp or not signature:
            return 401, "missing Slack signature headers"
        if not timestamp.isdigit() or abs(self.clock() - int(timestamp)) > MAX_CLOCK_SKEW:
            return 401, "stale or invalid request timestamp"
        if not self.verifier.is_valid(body, timestamp, signature):
            return 401, "invalid signature"
        if not self.replays.first_use(signature):
            return 401, "replayed request: this exact signed request was already received"
        if not _parses(body, environ.get("CONTENT_TYPE", "")):
            return 400, "malformed body: not a Slack payload (JSON, or a form with a JSON payload)"
        return None


def _backend_request(
    backend: BackendHandler,
    environ: WSGIEnvironment,
    start_response: StartResponse,
    method: str,
    replays: ReplayGuard,
) -> Iterable[bytes]:
    if method != "POST":
        return _json(start_response, 405, {"error": "use POST"})
    length = _content_length(environ)
    if length > MAX_BODY_BYTES:
        return _json(start_response, 413, {"error": "request body too large"})
    body = environ["wsgi.input"].read(length) if length else b""
    headers = {
        key[5:].replace("_", "-").lower(): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    signature = headers.get(SIGNATURE_HEADER.lower(), "")
    if signature and replays.seen(signature):
        log.warning("Refused a helpdesk event: 401 replayed request")
        return _json(start_response, 401, {"error": "replayed request"})
    try:
        status, answer = backend(body, headers)
    except Exception:
        log.exception("Helpdesk event failed")
        return _json(start_response, 503, {"error": "try again later"})
    if status < 400:  # only an accepted event: a failed one may be sent again as it was
        replays.remember(signature)
    if status >= 400:
        log.warning("Refused a helpdesk event: %s %s", status, answer.get("error"))
    return _json(start_response, status, answer)


def _parses(body: bytes, content_type: str) -> bool:
    """Whether the body is what Slack sends: JSON, or a form (with JSON in `payload`)."""
    try:
        text = body.decode("utf-8")
        if content_type.startswith("application/json"):
            return _well_formed(json.loads(text))
        form = parse_qs(text, keep_blank_values=True, strict_parsing=bool(text))
        payload = form.get("payload")
        return payload is None or _well_formed(json.loads(payload[0]))
    except ValueError:
        return False


def _well_formed(payload: Any) -> bool:
    """The fields Bolt reads before any listener runs are there and of the right kind."""
    if not _has_type(payload):
        return False
    kind = payload["type"]
    if kind == "event_callback":
        return _has_type(payload.get("event"))
    if kind in ("url_verification", "ssl_check"):
        return True
    user = payload.get("user")
    user_ok = isinstance(user, dict) and isinstance(user.get("id"), str)
    view_ok = _has_type(payload.get("view")) or not (kind.startswith("view_") or "view" in payload)
    actions = payload.get("actions")
    actions_ok = kind != "block_actions" or (
        isinstance(actions, list) and bool(actions) and all(isinstance(a, dict) for a in actions)
    )
    return user_ok and view_ok and actions_ok


def _has_type(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("type"), str)


def _content_length(environ: WSGIEnvironment) -> int:
    try:
        return int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return MAX_BODY_BYTES + 1


def _json(start_response: StartResponse, status: int, body: dict[str, Any]) -> list[bytes]:
    data = json.dumps(body).encode()
    start_response(
        f"{status} {_REASONS[status]}",
        [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
    )
    return [data]


def make_server(app: HttpApp, host: str, port: int, threads: int = 8) -> Any:
    """A waitress server bound now (port 0 picks a free one: see ``.effective_port``)."""
    return create_server(
        app, host=host, port=port, threads=threads, clear_untrusted_proxy_headers=True
    )


def stop_server(server: Any) -> None:
    """Finish requests in progress, then close the listening socket and idle connections."""
    server.task_dispatcher.shutdown(cancel_pending=True, timeout=5)
    server.close()
    # Keep-alive connections still open would otherwise linger until garbage collection.
    for channel in list(server._map.values()):
        channel.close()
