"""`/care` subcommands for running crowdcare: config, route, ask, pause, resume and queue."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import routing
from bot.commands.base import (
    Invocation,
    Subcommand,
    UsageError,
    channel_id,
    echo,
    group_id,
    is_group,
    no_more,
)
from bot.context import CareContext
from bot.intake import MAX_MANUAL_TEXT, ask_in_slack, intake_paused, set_intake_paused
from bot.mrkdwn import escape, safe
from bot.roles import Role
from bot.runtime_config import KEYS, ConfigValueError, Entry
from bot.states import State, record
from storage.models import Customer, Proposal, Question

QUEUE_LINES = 20
WAITING = (
    State.NEW,
    State.OPEN,
    State.PROPOSED,
    State.ESCALATED,
    State.FAILED,
    State.SELECTED,
    State.SENDING,
)
_HANDLE = re.compile(r"@([A-Za-z0-9_][A-Za-z0-9_.-]{0,49})")
# Slack's markup in typed text, turned back into what the person saw when typing it.
_SLACK_MARKUP = re.compile(
    r"<(?:(?P<url>https?://[^|>]+)|#[CG][A-Z0-9]+|@[UW][A-Z0-9]+|!subteam\^S[A-Z0-9]+|!\w+)"
    r"(?:\|(?P<label>[^>]*))?>"
)
_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,31}")
PAUSED_NOTE = "⏸️ *Intake is paused*: crowdcare is not reading new mentions (`/care resume`)."


def subcommands(care: CareContext) -> list[Subcommand]:
    return [
        Subcommand(
            "config",
            "config [setting [value|default]]",
            "show the workflow and reply policy settings, or change one "
            "(default: back to the environment)",
            Role.ADMIN,
            lambda invocation: config_command(care, invocation),
        ),
        Subcommand(
            "route",
            'route add <keyword|"phrase"|/regex/> #channel [@group] | route remove <n> | '
            "route list",
            "send questions that match to another channel and mention its experts",
            Role.ADMIN,
            lambda invocation: route_command(care, invocation),
            aliases=("routes",),
        ),
        Subcommand(
            "ask",
            "ask [@customer] <question>",
            "relay a question from elsewhere; the chosen answer comes back in Slack only",
            Role.MODERATOR,
            lambda invocation: ask_command(care, invocation),
        ),
        Subcommand(
            "pause",
            "pause",
            "stop reading new mentions on X (nothing is lost; `/care resume` reads them)",
            Role.ADMIN,
            lambda invocation: pause_command(care, invocation, paused=True),
        ),
        Subcommand(
            "resume",
            "resume",
            "read mentions on X again after `/care pause`",
            Role.ADMIN,
            lambda invocation: pause_command(care, invocation, paused=False),
        ),
        Subcommand(
            "queue",
            "queue",
            "the questions still waiting, oldest first",
            Role.MEMBER,
            lambda invocation: queue_command(care, invocation),
        ),
    ]


def typed_text(text: str) -> str:
    """What someone typed, from the text Slack sent: markup back to words, entities decoded."""

    def plain(match: re.Match[str]) -> str:
        if match.group("url"):
            return match.group("url")
        label = (match.group("label") or "").lstrip("@#")
        whole = match.group(0)
        sigil = "#" if whole.startswith("<#") else "@"
        if label:
            return sigil + label
        return sigil + whole[2:-1].removeprefix("subteam^")

    text = _SLACK_MARKUP.sub(plain, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


# -- config ---------------------------------------------------------------------------------


def config_command(care: CareContext, invocation: Invocation) -> str:
    """All settings, one setting, or a change to one."""
    if not invocation.args:
        lines = [
            "*Workflow settings* (change one with `/care config <setting> <value>`; "
            "`/care config <setting> default` goes back to the environment)"
        ]
        lines += [_entry_line(entry) for entry in care.config.entries()]
        return "\n".join(lines)
    name = invocation.args[0].lower()
    if name not in KEYS:
        raise UsageError(
            f"{echo(invocation.args[0])} is not a setting; the settings are: " + ", ".join(KEYS)
        )
    if len(invocation.args) == 1:
        return _entry_line(care.config.entry(name))
    value = typed_text(invocation.text.split(maxsplit=1)[1])
    try:
        entry = care.config.change(name, value, invocation.user_id)
    except ConfigValueError as exc:
        raise UsageError(
            f"`{name}` cannot be {echo(value)}: {exc} (expected {KEYS[name].what})"
        ) from None
    return f"Done. {_entry_line(entry)}"


def _entry_line(entry: Entry) -> str:
    return (
        f"• `{entry.key}`: *{escape(entry.value)}* — {escape(entry.source)} (expects {entry.what})"
    )


# -- route ----------------------------------------------------------------------------------


def route_command(care: CareContext, invocation: Invocation) -> str:
    """Add, remove or list routing rules."""
    action = invocation.args[0].lower() if invocation.args else "list"
    rest = invocation.text.split(maxsplit=1)[1] if len(invocation.args) > 1 else ""
    if action == "list":
        no_more(invocation.args, 1)
        return _route_list(care)
    if action == "add":
        return _route_add(care, invocation.user_id, rest)
    if action == "remove":
        no_more(invocation.args, 2)
        return _route_remove(care, invocation.user_id, rest)
    raise UsageError(f"{echo(invocation.args[0])} is not one of: add, remove, list")


def _route_add(care: CareContext, actor: str, rest: str) -> str:
    words = rest.rsplit(None, 1)
    group = None
    if len(words) == 2 and is_group(words[1]):
        group = group_id(words[1])
        words = words[0].rsplit(None, 1)
    if len(words) < 2:
        raise UsageError("give a keyword (or /regex/) and then a channel")
    channel = channel_id(words[1])
    try:
        pattern, is_regex = routing.parse_pattern(typed_text(words[0]))
    except routing.RoutingError as exc:
        raise UsageError(f"{echo(words[0])}: {exc}") from None
    rule = routing.Rule(pattern, is_regex, channel, group)
    now = care.clock()
    with care.sessions.begin() as session:
        route = routing.add_rule(session, rule, actor=actor, now=now)
        position = len(routing.stored_routes(session))
        record(
            session,
            actor=actor,
            action="route.added",
            now=now,
            detail={
                "route_id": route.id,
                "pattern": pattern,
                "regex": is_regex,
                "channel": channel,
                "group": group,
            },
        )
    return (
        f"Added rule {position}: {_rule_text(rule)}. "
        "It applies to questions that arrive from now on."
    )


def _route_remove(care: CareContext, actor: str, rest: str) -> str:
    raw = rest.strip().removeprefix("#")
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) < 10_000:
        raise UsageError(
            f"{echo(rest or '(nothing)')} is not a rule number from `/care route list`"
        )
    position = int(raw)
    now = care.clock()
    with care.sessions.begin() as session:
        routes = routing.stored_routes(session)
        if position > len(routes):
            count = len(routes)
            raise UsageError(
                f"there is no rule {position}; there {'is' if count == 1 else 'are'} "
                f"{count or 'no'} rule{'' if count == 1 else 's'}"
            )
        route = routes[position - 1]
        rule = routing.Rule(route.pattern, route.is_regex, route.channel, route.mention_group)
        session.delete(route)
        record(
            session,
            actor=actor,
            action="route.removed",
            now=now,
            detail={
                "route_id": route.id,
                "pattern": route.pattern,
                "regex": route.is_regex,
                "channel": route.channel,
                "group": route.mention_group,
            },
        )
    return f"Removed rule {position}: {_rule_text(rule)}. Questions already routed stay put."


def _route_list(care: CareContext) -> str:
    with care.sessions() as session:
        rules = routing.load_rules(session)
    default = care.settings.questions_channel
    fallback = f"<#{default}>" if default else "the questions channel"
    if not rules:
        return (
            f"No routing rules: every question goes to {fallback}. Add one with "
            '`/care route add <keyword|"phrase"|/regex/> #channel [@group]`.'
        )
    lines = ["*Routing rules* (the first that matches a question decides):"]
    lines += [f"{n}. {_rule_text(rule)}" for n, rule in enumerate(rules, start=1)]
    lines.append(f"Anything else goes to {fallback}.")
    return "\n".join(lines)


def _rule_text(rule: routing.Rule) -> str:
    kind = "regex" if rule.is_regex else "keyword"
    group = f" and mention <!subteam^{rule.group}>" if rule.group else ""
    return f"{kind} {echo(rule.shown(), 80)} → <#{rule.channel}>{group}"


# -- ask ------------------------------------------------------------------------------------


def ask_command(care: CareContext, invocation: Invocation) -> str:
    """Store a relayed question; its card follows from the card job."""
    # A plain @handle first names the customer (a colleague's mention arrives as <@U…>).
    handle, text = None, invocation.text
    words = text.split(maxsplit=1)
    if words and _HANDLE.fullmatch(words[0]):
        handle, text = words[0][1:], words[1] if len(words) > 1 else ""
    text = typed_text(text).strip()
    if not text:
        raise UsageError("write the question after `/care ask`")
    if len(text) > MAX_MANUAL_TEXT:
        raise UsageError(
            f"the question is {len(text)} characters long; at most {MAX_MANUAL_TEXT} fit"
        )
    policy = care.config.escalation_policy()
    with care.sessions.begin() as session:
        question = ask_in_slack(
            session,
            asker=invocation.user_id,
            text=text,
            handle=handle,
            policy=policy,
            now=care.clock(),
        )
        number, channel = question.id, question.route_channel
    care.workflow.wake_cards()  # the card job posts it now, not at its next run
    channel = channel or care.settings.questions_channel
    where = f"<#{channel}>" if channel else "the questions channel"
    return (
        f"Question #{number} is in: its card appears in {where} in a few seconds. When the "
        "crowd has chosen an answer, I post it in the card's thread for you to pass on; "
        "nothing is published on X."
    )


# -- pause / resume -------------------------------------------------------------------------


def pause_command(care: CareContext, invocation: Invocation, *, paused: bool) -> str:
    """Stop or restart reading mentions."""
    no_more(invocation.args, 0)
    with care.sessions.begin() as session:
        changed = set_intake_paused(session, paused, actor=invocation.user_id, now=care.clock())
    if paused:
        if not changed:
            return "Intake was already paused; nothing changed. `/care resume` restarts it."
        return (
            "Intake is paused: crowdcare stops reading new mentions on X. Nothing is lost: "
            "`/care resume` reads everything that arrived meanwhile. Questions already in "
            "Slack carry on as usual."
        )
    if not changed:
        return "Intake is not paused; nothing changed."
    return "Intake resumed: crowdcare reads mentions on X again, starting with those it missed."


# -- queue ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueueRow:
    """One waiting question as `/care queue` lists it."""

    question_id: int
    handle: str
    received_at: datetime
    state: str
    proposals: int
    channel: str | None


def queue_command(care: CareContext, invocation: Invocation) -> str:
    """The waiting questions, oldest first."""
    no_more(invocation.args, 0)
    with care.sessions() as session:
        paused = intake_paused(session)
        rows, total = waiting_questions(session, QUEUE_LINES)
    return queue_text(rows, total, now=care.clock(), paused=paused)


def waiting_questions(session: Session, limit: int) -> tuple[list[QueueRow], int]:
    """The oldest ``limit`` questions not yet finished, and how many there are in all."""
    total = session.scalar(
        select(func.count()).select_from(Question).where(Question.state.in_(WAITING))
    )
    # Counted per waiting question (by index), not grouped over every proposal ever made.
    proposals = (
        select(func.count())
        .select_from(Proposal)
        .where(Proposal.question_id == Question.id)
        .scalar_subquery()
    )
    found = session.execute(
        select(
            Question.id,
            Customer.handle,
            Question.received_at,
            Question.state,
            proposals,
            Question.card_channel,
        )
        .join(Customer, Customer.id == Question.customer_id)
        .where(Question.state.in_(WAITING))
        .order_by(Question.received_at, Question.id)
        .limit(limit)
    ).all()
    rows = [QueueRow(qid, handle, at, state, int(n), ch) for qid, handle, at, state, n, ch in found]
    return rows, int(total or 0)


def queue_text(rows: list[QueueRow], total: int, *, now: datetime, paused: bool) -> str:
    """`/care queue`'s answer."""
    lines = [PAUSED_NOTE] if paused else []
    if not rows:
        lines.append("No questions are waiting. 🎉")
        return "\n".join(lines)
    lines.append(f"*{total} question{'' if total == 1 else 's'} waiting*, oldest first:")
    for row in rows:
        handle = safe(row.handle.strip().removeprefix("@"), 50)
        proposals = f"{row.proposals} proposal{'' if row.proposals == 1 else 's'}"
        where = f" · <#{row.channel}>" if row.channel and _CHANNEL.fullmatch(row.channel) else ""
        lines.append(
            f"#{row.question_id} · @{handle} · {format_age(now - row.received_at)} · "
            f"{row.state} · {proposals}{where}"
        )
    if total > len(rows):
        lines.append(f"… and {total - len(rows)} more")
    return "\n".join(lines)


def format_age(age: timedelta) -> str:
    """``42m``, ``3h 5m``, ``2d 4h``: how long a question has waited."""
    minutes = max(int(age.total_seconds()) // 60, 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"
