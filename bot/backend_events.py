"""`POST /backend/events`: the helpdesk tells crowdcare that a rep solved a case.

Signed like crowdcare's own webhook (bot.signing): HMAC-SHA256 of `"<timestamp>.<body>"` with
SUPPORT_WEBHOOK_SECRET, in `X-Crowdcare-Signature`, the Unix time in `X-Crowdcare-Timestamp`.
Body: `{"type": "ticket.solved", "case_id": 123, "agent": "Dana", "text": "what the rep sent"}`.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from bot import signing
from bot.takeover import SolveOutcome

log = logging.getLogger(__name__)

Solve = Callable[[int, str, str | None], SolveOutcome]


def handle(
    body: bytes,
    headers: Mapping[str, str],
    *,
    secret: str,
    solve: Solve,
    now: float,
) -> tuple[int, dict[str, Any]]:
    """Verify, parse and apply one helpdesk event; returns (HTTP status, JSON answer)."""
    reason = signing.verify(
        secret,
        headers.get(signing.TIMESTAMP_HEADER.lower()),
        headers.get(signing.SIGNATURE_HEADER.lower()),
        body,
        now=now,
    )
    if reason is not None:
        return 401, {"error": reason}
    try:
        event = json.loads(body.decode("utf-8"))
    except ValueError:
        return 400, {"error": "malformed JSON"}
    problem = _problem(event)
    if problem is not None:
        return 400, {"error": problem}
    case_id, agent, text = (
        int(event["case_id"]),
        event.get("agent") or "a support rep",
        event.get("text"),
    )
    outcome = solve(case_id, agent, text)
    log.info("Helpdesk event ticket.solved for case %s: %s", case_id, outcome)
    answers: dict[SolveOutcome, tuple[int, dict[str, Any]]] = {
        SolveOutcome.SOLVED: (200, {"ok": True, "case_id": case_id, "state": "answered"}),
        SolveOutcome.ALREADY: (200, {"ok": True, "case_id": case_id, "already": True}),
        SolveOutcome.UNKNOWN: (404, {"error": f"unknown case {case_id}"}),
        SolveOutcome.BUSY: (409, {"error": "a reply to this case is being published right now"}),
    }
    return answers[outcome]


def _problem(event: Any) -> str | None:
    """What is wrong with an event's shape, if anything."""
    if not isinstance(event, dict):
        return "the body must be a JSON object"
    if event.get("type") != "ticket.solved":
        return f"unsupported event type {str(event.get('type'))[:40]!r}; expected 'ticket.solved'"
    case_id = event.get("case_id")
    if isinstance(case_id, bool) or not re.fullmatch(r"[0-9]+", str(case_id)):
        return "case_id must be the numeric case id crowdcare sent"
    if len(str(case_id)) > 18:
        return "case_id is out of range"
    for name, limit in (("agent", 200), ("text", 10_000)):
        value = event.get(name)
        if value is not None and (not isinstance(value, str) or len(value) > limit):
            return f"{name} must be a string of at most {limit} characters"
    return None
