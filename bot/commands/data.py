"""`/care show`, `/care audit`, `/care export` and `/care forget`: the data behind the workflow.

``show`` and ``audit`` read the audit log; ``export`` uploads a CSV (:mod:`bot.export`) into the
caller's direct message; ``forget`` erases a customer's personal data (:mod:`bot.privacy`) and
re-renders what Slack shows of them.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import func, select

from bot.commands.base import Answer, Invocation, Subcommand, UsageError, echo, no_more
from bot.commands.base import question_id as read_question_id
from bot.context import CareContext
from bot.export import build_export
from bot.mrkdwn import safe, safe_quote
from bot.notifier import NotifierError
from bot.privacy import Forgotten, NotAHandle, ReplyInFlight, forget, parse_handle
from bot.roles import Role
from bot.stats import parse_period
from storage.models import AuditEvent, Customer, Question

log = logging.getLogger(__name__)

EXPORT_PERIODS = ("7d", "30d")
AUDIT_DEFAULT, AUDIT_MAX = 20, 100
SECTION_LIMIT = 3000  # Slack's limit on a section's text
BLOCK_LIMIT = 50  # Slack's limit on blocks in a message
HISTORY_LOAD = 500  # events loaded for `show`; more than a message can hold anyway
QUESTION_TEXT_LIMIT = 1000
VALUE_LIMIT = 80
DETAIL_LIMIT = 300
ERASED_NUDGE = "⏰ A reminder about a question whose customer's data has since been erased."

_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,30}")


def subcommands(care: CareContext) -> list[Subcommand]:
    """The data group."""
    return [
        Subcommand(
            name="show",
            usage="show <question number>",
            summary="a question's whole history from the audit log",
            role=Role.MODERATOR,
            run=partial(show, care),
        ),
        Subcommand(
            name="audit",
            usage=f"audit [1-{AUDIT_MAX}]",
            summary=f"the latest audit events (default {AUDIT_DEFAULT}), newest first",
            role=Role.ADMIN,
            run=partial(audit, care),
        ),
        Subcommand(
            name="export",
            usage=f"export [{'|'.join(EXPORT_PERIODS)}]",
            summary="a CSV of the period's questions, proposals, votes and replies, by DM",
            role=Role.ADMIN,
            run=partial(export, care),
            slow=True,
        ),
        Subcommand(
            name="forget",
            usage="forget @handle",
            summary="erase a customer's personal data (privacy request); counts are kept",
            role=Role.ADMIN,
            run=partial(forget_customer, care),
            slow=True,
            private_args=True,
        ),
    ]


def show(care: CareContext, invocation: Invocation) -> Answer:
    """A question's whole history, from the audit log."""
    if not invocation.args:
        raise UsageError("say which question, like `/care show 42`")
    no_more(invocation.args, 1)
    question_id = read_question_id(invocation.args[0])
    with care.sessions.begin() as session:
        question = session.get(Question, question_id)
        if question is None:
            raise UsageError(f"there is no question #{question_id}")
        handle = session.get_one(Customer, question.customer_id).handle
        header = _question_header(question, handle)
        total = session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.question_id == question_id)
        )
        events = session.scalars(
            select(AuditEvent)
            .where(AuditEvent.question_id == question_id)
            .order_by(AuditEvent.at, AuditEvent.id)
            .limit(HISTORY_LOAD)
        ).all()
        lines = [event_line(event) for event in events]
    blocks = pack(header, lines, int(total or 0), "event")
    return Answer(f"History of question #{question_id} ({total} events)", blocks)


def audit(care: CareContext, invocation: Invocation) -> Answer:
    """The latest audit events, newest first."""
    no_more(invocation.args, 1)
    count = _count(invocation.args[0]) if invocation.args else AUDIT_DEFAULT
    with care.sessions.begin() as session:
        events = session.scalars(
            select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(count)
        ).all()
        lines = [event_line(event, with_question=True) for event in events]
    if not lines:
        return Answer("The audit log is empty.")
    header = [_section(f"*The latest {len(lines)} audit events*, newest first (UTC)")]
    return Answer(f"The latest {len(lines)} audit events", pack(header, lines, len(lines)))


def export(care: CareContext, invocation: Invocation) -> str:
    """A CSV of the period's questions, proposals, votes and replies, sent by DM."""
    no_more(invocation.args, 1)
    word = invocation.args[0] if invocation.args else None
    try:
        period = parse_period(word, EXPORT_PERIODS, now=care.clock())
    except ValueError:
        raise UsageError(
            f"{echo(word or '')} is not a period: use one of {', '.join(EXPORT_PERIODS)}"
        ) from None
    with care.sessions.begin() as session:
        made = build_export(session, label=period.label, since=period.since, until=period.until)
    days = period.label.removesuffix("d")
    if made.questions == 0:
        return f"No questions were received in the last {days} days; there is nothing to export."
    summary = (
        f"{made.questions} questions, {made.proposals} proposals, {made.votes} votes and "
        f"{made.replies} replies received in the last {days} days"
    )
    try:
        care.workflow.notifier.upload_file(
            invocation.user_id,
            made.filename,
            made.content,
            title=made.filename,
            comment=f"crowdcare export: {summary} (until {_time(period.until)} UTC).",
        )
    except NotifierError as exc:
        log.warning("Export not uploaded: %s", exc)
        return (
            f"The export could not be uploaded ({safe(str(exc), 200)}). "
            "Please try again in a minute."
        )
    return f"Your export `{made.filename}` is in our direct messages: {summary}."


def forget_customer(care: CareContext, invocation: Invocation) -> str:
    """Erase a customer's personal data, then re-render what Slack shows of them."""
    if not invocation.args:
        raise UsageError("name the customer's X handle, like @maria_k")
    no_more(invocation.args, 1)
    try:
        handle = parse_handle(invocation.args[0])
    except NotAHandle as exc:
        raise UsageError(f"{echo(invocation.args[0])} is not an X handle: {exc}") from None
    try:
        with care.sessions.begin() as session:
            done = forget(session, handle, actor=invocation.user_id, now=care.clock())
    except ReplyInFlight:
        return (
            "A reply to this customer is being published on X right now, so nothing was "
            "erased yet. Please run the command again in a minute."
        )
    if done is None:
        raise UsageError(f"no customer {echo('@' + handle)} is known; nothing was changed")
    _show_erased(care, done)
    return forgotten_text(done)


def _count(word: str) -> int:
    if not word.isdigit() or not 1 <= int(word) <= AUDIT_MAX:
        raise UsageError(f"{echo(word)} is not a number of events from 1 to {AUDIT_MAX}")
    return int(word)


def _show_erased(care: CareContext, done: Forgotten) -> None:
    """Re-render cards, proposals and escalations; replace nudges that named the customer."""
    for question_id in done.question_ids:
        care.escalations.after_change(question_id)
    for channel, ts, _question in done.nudges:
        try:
            care.workflow.notifier.update_message(channel, ts, ERASED_NUDGE)
        except NotifierError as exc:
            log.warning("Nudge %s not updated after erasure: %s", ts, exc)


def forgotten_text(done: Forgotten) -> str:
    """What the admin is told; the handle is not repeated."""
    who = ", ".join(f"#{customer}" for customer in done.customer_ids)
    parts = [f"{len(done.question_ids)} questions erased"]
    if done.closed:
        parts.append(f"{len(done.closed)} open ones closed")
    if done.cancelled_replies:
        parts.append(f"{len(done.cancelled_replies)} queued replies cancelled")
    return (
        f"Done: the personal data of customer {who} is erased ({', '.join(parts)}). "
        "Counts and votes are kept; their cards in Slack now show [erased]. Replies already "
        "published on X stay there: delete them on X if the request covers them."
    )


# -- presentation ---------------------------------------------------------------------------


def _time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _question_header(question: Question, handle: str) -> list[dict[str, Any]]:
    title = (
        f"*Question #{question.id}* from @{safe(handle, 64)} · {safe(question.state, 20)} · "
        f"received {_time(question.received_at)} UTC"
    )
    quoted = safe_quote(question.text, QUESTION_TEXT_LIMIT) or "_(no text)_"
    return [_section(title), _section(quoted)]


def actor_text(actor: str) -> str:
    """A Slack user as a mention, anyone else (the system, a customer, a helpdesk) as text."""
    if _SLACK_USER.fullmatch(actor):
        return f"<@{actor}>"
    return safe(actor, 64) or "?"


def detail_text(action: str, detail: dict[str, Any]) -> str:
    """An event's detail in one compact, escaped line."""
    parts = []
    if action.startswith("state.") and "from" in detail:
        parts.append(f"{safe(str(detail['from']), 20)} → {safe(action.removeprefix('state.'), 20)}")
    for key, value in detail.items():
        if value is None or value == "" or (key == "from" and action.startswith("state.")):
            continue
        shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        # Backticks would open code spans across parts; typed text keeps its meaning without.
        shown = shown.replace("`", "'")
        parts.append(f"{safe(str(key), 30)}={safe(shown, VALUE_LIMIT)}")
    return safe_join(parts, DETAIL_LIMIT)


def safe_join(parts: Sequence[str], limit: int) -> str:
    """Already-safe parts joined with " · ", cut between parts to stay within ``limit``."""
    line = ""
    for part in parts:
        candidate = f"{line} · {part}" if line else part
        if len(candidate) > limit:
            return f"{line} …" if line else "…"
        line = candidate
    return line


def event_line(event: AuditEvent, *, with_question: bool = False) -> str:
    """``2026-01-05 09:00:12`` <@U0ALICE> *vote.cast* #42 proposal_id=3 · votes=2"""
    at = event.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    line = f"`{at}` {actor_text(event.actor)} *{safe(event.action, 64)}*"
    if with_question and event.question_id is not None:
        line += f" #{event.question_id}"
    detail = detail_text(event.action, event.detail or {})
    return f"{line} {detail}" if detail else line


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def pack(
    header: list[dict[str, Any]], lines: Sequence[str], total: int, noun: str = "event"
) -> list[dict[str, Any]]:
    """``header`` then ``lines`` in sections within Slack's limits; "… N more" for the rest."""
    room = BLOCK_LIMIT - len(header) - 1  # one block kept for the "more" note
    sections: list[str] = []
    current = ""
    shown = 0
    for line in lines:
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > SECTION_LIMIT:
            if len(sections) + 1 >= room:
                break
            sections.append(current)
            candidate = line
        current = candidate
        shown += 1
    if current:
        sections.append(current)
    blocks = [*header, *(_section(text) for text in sections)]
    if not lines:
        blocks.append(_context(f"No {noun}s recorded."))
    elif total > shown:
        blocks.append(_context(f"… {total - shown} more {noun}s"))
    return blocks


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}
