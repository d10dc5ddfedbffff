"""Zendesk Support: a ticket per case, and the case's later events as internal notes on it.

Tickets API (https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/), with API
token authentication (Basic ``{email}/token:{api_token}``).

* The ticket is opened by the *trigger* event: ``question.escalated`` (``ticket_on="escalation"``,
  the reps only see what the crowd could not answer) or ``question.received`` (``"intake"``).
  Events before the ticket exists are skipped. The ticket carries ``external_id
  crowdcare-<case id>``: before creating one we look that up, so a create whose answer was lost
  is found instead of duplicated.
* Every later event becomes an internal note (``public: false``) ending in the marker
  ``[crowdcare evt_<event id>]``. Comments have no idempotency key, so a retry first lists the
  ticket's comments and skips the update when an earlier attempt already landed.
* ``reply.sent``, ``question.solved_elsewhere`` and ``question.closed`` also solve the ticket.
  Zendesk refuses to solve an unassigned ticket, so an unassigned one is given to the API user.

429 (after ``Retry-After``), 408, 409 (concurrent update), 5xx, timeouts and connection errors are
retried later; other 4xx (bad credentials, 404, 422 validation errors) fail the delivery for good.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import requests

from bot.support import (
    ConnectorError,
    DeliveryResult,
    EventEnvelope,
    redact,
    retry_at_from_header,
    retryable_status,
)

TRIGGERS = {"escalation": "question.escalated", "intake": "question.received"}
SOLVING = frozenset({"reply.sent", "question.solved_elsewhere", "question.closed"})
CHANNEL_NAMES = {"x": "X"}
USER_AGENT = "crowdcare-zendesk/1"
EXCERPT_LENGTH = 300
CONFLICT = 409  # Zendesk: the ticket was being updated at the same time; retry


def ticket_external_id(case_id: int) -> str:
    return f"crowdcare-{case_id}"


def event_marker(event_id: int) -> str:
    return f"[crowdcare evt_{event_id}]"


def channel_name(channel: str) -> str:
    return CHANNEL_NAMES.get(channel, channel)


def _by(data: Mapping[str, Any]) -> str:
    return f" by {data['by']}" if data.get("by") else ""


def _reason(data: Mapping[str, Any]) -> str:
    return f": {data['reason']}" if data.get("reason") else ""


def _received(event: EventEnvelope) -> str:
    case = event.case
    return (
        f"Question from @{case.customer_handle} on {channel_name(case.channel)}: "
        f"{case.text}\n{case.post_url}"
    )


def _proposal(event: EventEnvelope) -> str:
    author = event.data.get("author") or event.data.get("author_id") or "someone"
    return f"Proposal by {author}: {event.data.get('text', '')}".rstrip()


def _vote(event: EventEnvelope) -> str:
    data = event.data
    voter = f" by {data['voter']}" if data.get("voter") else ""
    votes = data.get("votes")
    total = "cast" if votes is None else f"{votes} vote{'' if votes == 1 else 's'}"
    return f"Vote{voter}: {total}"


def _selected(event: EventEnvelope) -> str:
    data = event.data
    votes = f" with {data['votes']} votes" if data.get("votes") is not None else ""
    text = f": {data['text']}" if data.get("text") else ""
    return f"Answer selected{_by(data)}{votes}{text}"


def _reply(event: EventEnvelope) -> str:
    data = event.data
    line = f"Reply sent on {channel_name(event.case.channel)}: {data.get('url') or '(no link)'}"
    return f"{line}\n{data['text']}" if data.get("text") else line


def _escalated(event: EventEnvelope) -> str:
    again = " again" if event.data.get("level") not in (None, 1) else ""
    return f"Escalated to the support team{again}{_reason(event.data)}"


def _closed(event: EventEnvelope) -> str:
    return f"Closed in crowdcare{_by(event.data)}{_reason(event.data)}"


def _solved_elsewhere(event: EventEnvelope) -> str:
    note = f": {event.data['note']}" if event.data.get("note") else ""
    return f"Solved outside crowdcare{_by(event.data)}{note}"


_LINES: dict[str, Callable[[EventEnvelope], str]] = {
    "question.received": _received,
    "proposal.created": _proposal,
    "vote.cast": _vote,
    "question.selected": _selected,
    "reply.sent": _reply,
    "question.escalated": _escalated,
    "question.closed": _closed,
    "question.solved_elsewhere": _solved_elsewhere,
}


def describe(event: EventEnvelope) -> str:
    """A readable line for an event, as agents see it in the ticket."""
    line = _LINES.get(event.type)
    return event.type if line is None else line(event)


class ZendeskConnector:
    """Keeps one Zendesk ticket per escalated (or every) case up to date."""

    name = "zendesk"

    def __init__(
        self,
        *,
        subdomain: str,
        email: str,
        api_token: str,
        api_url: str | None = None,
        ticket_on: str = "escalation",
        timeout: float = 10.0,
    ) -> None:
        if ticket_on not in TRIGGERS:
            raise ValueError(f"ticket_on must be one of {sorted(TRIGGERS)}, not {ticket_on!r}")
        if not api_url and not subdomain:
            raise ValueError("Zendesk needs a subdomain (or an API URL)")
        if not email or not api_token:
            raise ValueError("Zendesk needs the agent's email and an API token")
        self.base_url = (api_url or f"https://{subdomain}.zendesk.com").rstrip("/")
        self.ticket_on = ticket_on
        self._trigger = TRIGGERS[ticket_on]
        self._email = email
        self._token = api_token
        self._timeout = timeout
        self._session = requests.Session()
        self._session.auth = (f"{email}/token", api_token)
        self._session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> ZendeskConnector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the token
        return f"ZendeskConnector({self.base_url!r}, ticket_on={self.ticket_on!r})"

    def deliver(self, event: EventEnvelope) -> DeliveryResult:
        if event.external_id is None:
            if event.type != self._trigger:
                return DeliveryResult(skipped=True)  # no ticket (yet): nothing to add it to
            return DeliveryResult(external_id=self._open_ticket(event))
        return self._add_note(event.external_id, event)

    # -- tickets --------------------------------------------------------------------------------

    def _open_ticket(self, event: EventEnvelope) -> str:
        case = event.case
        external_id = ticket_external_id(case.case_id)
        # A create whose answer was lost (or a lost ExternalRef) left a ticket: find it first.
        found = self._request("GET", "/api/v2/tickets.json", params={"external_id": external_id})
        tickets = [t for t in found.get("tickets") or [] if isinstance(t, Mapping)]
        if tickets:
            return str(min(int(ticket["id"]) for ticket in tickets))
        body = f"{case.text}\n\n{case.post_url}\n\n[crowdcare case {case.case_id}]"
        created = self._request(
            "POST",
            "/api/v2/tickets.json",
            json={
                "ticket": {
                    "subject": (
                        f"Question from @{case.customer_handle} on {channel_name(case.channel)}"
                    ),
                    "comment": {"body": body, "public": False},
                    "external_id": external_id,
                    "tags": ["crowdcare", case.channel],
                }
            },
        )
        ticket = created.get("ticket")
        if not isinstance(ticket, Mapping) or "id" not in ticket:
            # It may exist though: the next attempt looks it up by external_id.
            raise ConnectorError("Zendesk created a ticket but sent no id back", retryable=True)
        return str(ticket["id"])

    def _add_note(self, ticket_id: str, event: EventEnvelope) -> DeliveryResult:
        marker = event_marker(event.event_id)
        if event.attempt > 1 and self._has_comment(ticket_id, marker):
            return DeliveryResult()  # the earlier attempt landed; its answer was lost
        update: dict[str, Any] = {
            "comment": {"body": f"{describe(event)}\n\n{marker}", "public": False}
        }
        if event.type in SOLVING:
            ticket = self._request("GET", f"/api/v2/tickets/{ticket_id}.json").get("ticket") or {}
            if ticket.get("status") == "closed":
                return DeliveryResult(skipped=True)  # closed tickets take no more updates
            update["status"] = "solved"
            if ticket.get("assignee_id") is None:
                update["assignee_email"] = self._email
        self._request("PUT", f"/api/v2/tickets/{ticket_id}.json", json={"ticket": update})
        return DeliveryResult()

    def _has_comment(self, ticket_id: str, marker: str) -> bool:
        # Newest first: a comment from a recent attempt is on the first page.
        found = self._request(
            "GET", f"/api/v2/tickets/{ticket_id}/comments.json", params={"sort_order": "desc"}
        )
        return any(
            marker in str(comment.get("body", ""))
            for comment in found.get("comments") or []
            if isinstance(comment, Mapping)
        )

    # -- HTTP -----------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        what = f"Zendesk {method} {path}"
        try:
            response = self._session.request(
                method,
                self.base_url + path,
                params=params,
                json=json,
                timeout=self._timeout,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise ConnectorError(
                f"{what}: no answer within {self._timeout:g}s", retryable=True
            ) from exc
        except requests.RequestException as exc:
            reason = redact(f"{type(exc).__name__}: {exc}", [self._token])
            raise ConnectorError(f"{what}: unreachable: {reason}", retryable=True) from exc
        with response:
            status = response.status_code
            try:
                body = response.json() if response.content else {}
            except ValueError:
                body = None
            if 200 <= status < 300:
                if not isinstance(body, dict):
                    raise ConnectorError(f"{what}: answered {status} without JSON", retryable=True)
                return body
            message = redact(
                f"{what} answered {status}: {_explain(body, response.text)}", [self._token]
            )
            if retryable_status(status) or status == CONFLICT:
                retry_at = retry_at_from_header(
                    response.headers.get("Retry-After"), datetime.now(UTC)
                )
                raise ConnectorError(message, retryable=True, retry_at=retry_at)
            raise ConnectorError(message, retryable=False)


def _explain(body: Any, text: str) -> str:
    """Zendesk's error, e.g. ``RecordInvalid: Record validation errors (Description: cannot be
    blank)``; the start of the raw body when it is not Zendesk's JSON."""
    if not isinstance(body, Mapping):
        return " ".join(text.split())[:EXCERPT_LENGTH] or "(empty body)"
    parts = []
    error = body.get("error")
    if isinstance(error, Mapping):  # some endpoints nest it: {"error": {"title", "message"}}
        parts.append(": ".join(str(error[k]) for k in ("title", "message") if error.get(k)))
    elif error:
        parts.append(str(error))
    if body.get("description"):
        parts.append(str(body["description"]))
    summary = ": ".join(part for part in parts if part) or " ".join(str(body).split())
    details = body.get("details")
    found: list[str] = []
    if isinstance(details, Mapping):
        for field, problems in details.items():
            for problem in problems if isinstance(problems, list) else [problems]:
                if isinstance(problem, Mapping) and problem.get("description"):
                    found.append(str(problem["description"]))
                else:
                    found.append(f"{field}: {problem}")
    if found:
        summary += f" ({'; '.join(found)})"
    return summary[: EXCERPT_LENGTH * 2]
