"""A fake Zendesk Support Tickets API for tests.

Speaks the real shapes closely enough for :class:`bot.connectors.zendesk.ZendeskConnector`:

* ``POST /api/v2/tickets.json`` → 201 ``{"ticket": {...}}`` (422 without a comment body)
* ``GET /api/v2/tickets.json?external_id=…`` → ``{"tickets": [...], "count": n, ...}``
* ``GET /api/v2/tickets/{id}.json`` → ``{"ticket": {...}}``
* ``PUT /api/v2/tickets/{id}.json`` → comment appended, status/assignee updated (404 unknown id;
  422 for a closed ticket, or for solving an unassigned ticket, as Zendesk does)
* ``GET /api/v2/tickets/{id}/comments.json[?sort_order=desc]`` → ``{"comments": [...], ...}``

API token authentication is checked: Basic ``{email}/token:{api_token}``, else 401
``{"error": "Couldn't authenticate you"}``. The authenticated agent is user :data:`AGENT_ID`.

Every request is recorded as a :class:`ZendeskCall`. Faults can be injected per route (see
:data:`ROUTES`): an error status, 429 with ``Retry-After``, a slow answer, or an answer lost after
the request took effect. Stdlib only; runs on 127.0.0.1 on a free port in a background thread.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hmac
import json
import re
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, urlsplit

from tests.standins.loopback import LoopbackServer

#: Route keys for the fault-injection methods and :meth:`FakeZendesk.calls_to`.
ROUTES = ("create_ticket", "list_tickets", "show_ticket", "update_ticket", "list_comments")

AGENT_ID = 9_000_001
FIRST_TICKET_ID = 101
FIRST_COMMENT_ID = 50_001
STATUSES = ("new", "open", "pending", "hold", "solved", "closed")

_TICKET = re.compile(r"^/api/v2/tickets/(?P<id>[^/]+)\.json$")
_COMMENTS = re.compile(r"^/api/v2/tickets/(?P<id>[^/]+)/comments\.json$")

Json = dict[str, Any]


@dataclass
class ZendeskCall:
    """One request received by the fake. ``body`` is the decoded JSON (``None`` when empty);
    ``headers`` has lower-cased names."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class _Fault:
    kind: Literal["fail", "rate_limit", "hang", "lose_response"]
    status: int = 0
    retry_after: int = 0
    seconds: float = 0.0


@dataclass
class _Answer:
    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)


def route_of(method: str, path: str) -> str | None:
    """The route key for a request, or ``None`` for an endpoint the fake does not have."""
    if path == "/api/v2/tickets.json":
        return {"POST": "create_ticket", "GET": "list_tickets"}.get(method)
    if _TICKET.match(path):
        return {"GET": "show_ticket", "PUT": "update_ticket"}.get(method)
    if _COMMENTS.match(path) and method == "GET":
        return "list_comments"
    return None


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _invalid(field_name: str, description: str, error: str = "InvalidValue") -> _Answer:
    return _Answer(
        422,
        {
            "error": "RecordInvalid",
            "description": "Record validation errors",
            "details": {field_name: [{"description": description, "error": error}]},
        },
    )


def _not_found() -> _Answer:
    return _Answer(404, {"error": "RecordNotFound", "description": "Not found"})


class _Server(ThreadingHTTPServer):
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeZendesk) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # one request per connection
    timeout = 5.0

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: every call is recorded in ``FakeZendesk.calls``."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake = cast(_Server, self.server).fake
        answer = fake._answer(self.command, self.path, headers, raw_body)
        if answer is None:
            self.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class FakeZendesk(LoopbackServer):
    """An in-process Zendesk Tickets API with one agent (the API token's owner)."""

    def __init__(self, email: str = "care-bot@acme.test", api_token: str = "zd-token-test") -> None:  # noqa: S107 - fake credentials
        super().__init__()
        self.email = email
        self.api_token = api_token
        self.calls: list[ZendeskCall] = []
        self._lock = threading.Lock()
        self._faults: dict[str, list[_Fault]] = {}
        self._tickets: dict[int, Json] = {}
        self._comments: dict[int, list[Json]] = {}
        self._next_ticket_id = FIRST_TICKET_ID
        self._next_comment_id = FIRST_COMMENT_ID

    # -- lifecycle ---------------------------------------------------------------------------

    name = "fake-zendesk"

    def _new_server(self) -> _Server:
        return _Server(self)

    # -- faults ------------------------------------------------------------------------------

    def fail(self, route: str, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``route`` with ``status`` (nothing happens)."""
        self._add_faults(route, times, _Fault("fail", status=status))

    def rate_limit(self, route: str, retry_after: int = 60, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``route`` with 429 and ``Retry-After``."""
        self._add_faults(route, times, _Fault("rate_limit", status=429, retry_after=retry_after))

    def hang(self, route: str, seconds: float, times: int = 1) -> None:
        """Delay the next ``times`` calls to ``route`` (they take effect after the delay, unless
        the fake stops first)."""
        self._add_faults(route, times, _Fault("hang", seconds=seconds))

    def lose_response(self, route: str, times: int = 1) -> None:
        """Perform the next ``times`` calls to ``route``, then close the connection unanswered."""
        self._add_faults(route, times, _Fault("lose_response"))

    # -- setup and inspection ----------------------------------------------------------------

    def add_ticket(
        self,
        *,
        subject: str = "Existing ticket",
        body: str = "Opened by hand",
        external_id: str | None = None,
        status: str = "open",
        assignee_id: int | None = None,
    ) -> int:
        """Store a ticket as if someone had created it; returns its id."""
        with self._lock:
            ticket = self._new_ticket(subject, body, True, external_id, [])
            ticket["status"] = status
            ticket["assignee_id"] = assignee_id
            return int(ticket["id"])

    def tickets(self) -> list[Json]:
        with self._lock:
            return [copy.deepcopy(ticket) for ticket in self._tickets.values()]

    def ticket(self, ticket_id: int | str) -> Json:
        with self._lock:
            return copy.deepcopy(self._tickets[int(ticket_id)])

    def comments(self, ticket_id: int | str) -> list[Json]:
        with self._lock:
            return copy.deepcopy(self._comments[int(ticket_id)])

    def calls_to(self, route: str) -> list[ZendeskCall]:
        self._check_route(route)
        with self._lock:
            return [call for call in self.calls if route_of(call.method, call.path) == route]

    # -- internals: state ---------------------------------------------------------------------

    def _check_route(self, route: str) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; use one of {ROUTES}")

    def _add_faults(self, route: str, times: int, fault: _Fault) -> None:
        self._check_route(route)
        with self._lock:
            self._faults.setdefault(route, []).extend(
                _Fault(fault.kind, fault.status, fault.retry_after, fault.seconds)
                for _ in range(times)
            )

    def _take_fault(self, route: str) -> _Fault | None:
        with self._lock:
            pending = self._faults.get(route)
            return pending.pop(0) if pending else None

    def _new_ticket(
        self, subject: str, body: str, public: bool, external_id: str | None, tags: list[str]
    ) -> Json:
        ticket_id = self._next_ticket_id
        self._next_ticket_id += 1
        now = _now()
        ticket: Json = {
            "id": ticket_id,
            "url": f"{self._url_or_blank()}/api/v2/tickets/{ticket_id}.json",
            "external_id": external_id,
            "subject": subject,
            "raw_subject": subject,
            "description": body,
            "status": "new",
            "priority": None,
            "type": None,
            "tags": tags,
            "requester_id": AGENT_ID,
            "submitter_id": AGENT_ID,
            "assignee_id": None,
            "created_at": now,
            "updated_at": now,
        }
        self._tickets[ticket_id] = ticket
        self._comments[ticket_id] = []
        self._add_comment(ticket_id, body, public)
        return ticket

    def _add_comment(self, ticket_id: int, body: str, public: bool) -> None:
        comment_id = self._next_comment_id
        self._next_comment_id += 1
        self._comments[ticket_id].append(
            {
                "id": comment_id,
                "type": "Comment",
                "author_id": AGENT_ID,
                "body": body,
                "html_body": f"<div><p>{body}</p></div>",
                "plain_body": body,
                "public": public,
                "created_at": _now(),
            }
        )

    def _url_or_blank(self) -> str:
        return self.base_url if self._server is not None else ""

    # -- internals: HTTP ----------------------------------------------------------------------

    def _answer(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> _Answer | None:
        split = urlsplit(raw_path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode("utf-8", "replace")
        with self._lock:
            self.calls.append(ZendeskCall(method, path, query, body, headers))
        if not self._authenticated(headers.get("authorization", "")):
            return _Answer(401, {"error": "Couldn't authenticate you"})
        route = route_of(method, path)
        if route is None:
            return _Answer(404, {"error": "InvalidEndpoint", "description": "Not found"})
        return self._answer_with_faults(route, path, query, body)

    def _answer_with_faults(
        self, route: str, path: str, query: dict[str, str], body: Any
    ) -> _Answer | None:
        """Apply the next injected fault for ``route`` (if any) around the real answer."""
        fault = self._take_fault(route)
        if fault is None:
            return self._dispatch(route, path, query, body)
        if fault.kind == "rate_limit":
            return _Answer(
                429,
                {"error": "APIRateLimitExceeded", "description": "Rate limit exceeded"},
                {"Retry-After": str(fault.retry_after)},
            )
        if fault.kind == "fail":
            if fault.status == 422:
                return _invalid("base", "Injected validation failure")
            return _Answer(fault.status, {"error": HTTPStatus(fault.status).phrase})
        if fault.kind == "hang" and self._stopping.wait(fault.seconds):
            return None  # stopping: do not act on a request nobody waits for
        answer = self._dispatch(route, path, query, body)
        return None if fault.kind == "lose_response" else answer

    def _authenticated(self, authorization: str) -> bool:
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        expected = f"{self.email}/token:{self.api_token}"
        return hmac.compare_digest(decoded.encode(), expected.encode())

    def _dispatch(self, route: str, path: str, query: dict[str, str], body: Any) -> _Answer:
        if route == "create_ticket":
            return self._create(body)
        if route == "list_tickets":
            return self._list(query)
        match = _TICKET.match(path) or _COMMENTS.match(path)
        assert match is not None
        if not match["id"].isdigit():
            return _not_found()
        ticket_id = int(match["id"])
        if route == "show_ticket":
            with self._lock:
                ticket = self._tickets.get(ticket_id)
                return _not_found() if ticket is None else _Answer(200, {"ticket": dict(ticket)})
        if route == "list_comments":
            return self._list_comments(ticket_id, query)
        return self._update(ticket_id, body)

    def _create(self, body: Any) -> _Answer:
        ticket_in = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(ticket_in, dict):
            return _Answer(400, {"error": "Unprocessable Entity", "description": "no ticket"})
        comment = ticket_in.get("comment")
        comment_body = comment.get("body") if isinstance(comment, dict) else None
        if not isinstance(comment_body, str) or not comment_body.strip():
            return _invalid("description", "Description: cannot be blank", "BlankValue")
        subject = str(ticket_in.get("subject") or comment_body[:80])
        tags = [str(tag).lower().replace(" ", "_") for tag in ticket_in.get("tags") or []]
        with self._lock:
            ticket = self._new_ticket(
                subject,
                comment_body,
                bool(comment.get("public", True)) if isinstance(comment, dict) else True,
                ticket_in.get("external_id"),
                tags,
            )
            return _Answer(201, {"ticket": dict(ticket)}, {"Location": ticket["url"]})

    def _list(self, query: dict[str, str]) -> _Answer:
        with self._lock:
            tickets = [dict(ticket) for ticket in self._tickets.values()]
        if "external_id" in query:
            tickets = [t for t in tickets if t["external_id"] == query["external_id"]]
        return _Answer(
            200,
            {"tickets": tickets, "count": len(tickets), "next_page": None, "previous_page": None},
        )

    def _list_comments(self, ticket_id: int, query: dict[str, str]) -> _Answer:
        with self._lock:
            if ticket_id not in self._tickets:
                return _not_found()
            comments = [dict(comment) for comment in self._comments[ticket_id]]
        if query.get("sort_order") == "desc":
            comments.reverse()
        return _Answer(
            200,
            {
                "comments": comments,
                "count": len(comments),
                "next_page": None,
                "previous_page": None,
            },
        )

    def _update(self, ticket_id: int, body: Any) -> _Answer:
        update = body.get("ticket") if isinstance(body, dict) else None
        if not isinstance(update, dict):
            return _Answer(400, {"error": "Unprocessable Entity", "description": "no ticket"})
        with self._lock:
            ticket = self._tickets.get(ticket_id)
            if ticket is None:
                return _not_found()
            refusal = self._refuse_update(ticket, update)
            if refusal is not None:
                return refusal
            comment = update.get("comment")
            if isinstance(comment, dict):
                self._add_comment(ticket_id, comment["body"], bool(comment.get("public", True)))
            if "assignee_email" in update:
                ticket["assignee_id"] = AGENT_ID
            if update.get("status") is not None:
                ticket["status"] = update["status"]
            elif ticket["status"] == "new" and (
                ticket["assignee_id"] is not None or comment is not None
            ):
                ticket["status"] = "open"  # an agent's update opens a new ticket
            ticket["updated_at"] = _now()
            return _Answer(200, {"ticket": dict(ticket), "audit": {"ticket_id": ticket_id}})

    def _refuse_update(self, ticket: Json, update: Json) -> _Answer | None:
        """The 422 Zendesk would answer to ``update`` on ``ticket``, if any."""
        if ticket["status"] == "closed":
            return _invalid("status", "Status: closed prevents ticket update")
        if "assignee_email" in update and update["assignee_email"] != self.email:
            return _invalid("assignee", "Assignee: is not an agent")
        assigned = ticket["assignee_id"] is not None or "assignee_email" in update
        status = update.get("status")
        if status is not None and status not in STATUSES:
            return _invalid("status", f"Status: {status} is not valid")
        if status == "solved" and not assigned:
            return _invalid("assignee", "Assignee: is required when solving a ticket")
        comment = update.get("comment")
        if comment is not None and (
            not isinstance(comment, dict)
            or not isinstance(comment.get("body"), str)
            or not comment["body"].strip()
        ):
            return _invalid("comment", "Comment: cannot be blank", "BlankValue")
        return None
