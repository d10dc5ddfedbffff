"""The contract every `/care` subcommand follows, and the argument readers they share.

A subcommand is plain data (:class:`Subcommand`): its name, usage, the role it needs, and a
function from an :class:`Invocation` to an :class:`Answer`. The Slack listener in
``handlers/commands`` parses the text, checks the role (refusals are explained and audited),
runs the function, and shows the answer privately. Wrong arguments raise :class:`UsageError`:
the person sees the reason and the usage line, never a stack trace.

Arguments arrive as Slack sends them with ``should_escape`` on: users as ``<@U123|name>``,
channels as ``<#C123|name>``, user groups as ``<!subteam^S123|@name>``. The readers below also
accept bare ids. Nothing read here is ever put into SQL text or echoed as live markup.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.roles import Role


class UsageError(Exception):
    """Wrong arguments: ``str(error)`` says what is wrong; the usage line is added."""


@dataclass(frozen=True)
class Invocation:
    """One `/care <name> …` call."""

    user_id: str
    channel_id: str
    name: str  # the subcommand, lower-case
    text: str  # everything after the subcommand, as Slack sent it (stripped)
    args: tuple[str, ...]  # ``text`` split on whitespace
    role: Role


@dataclass(frozen=True)
class Answer:
    """What the caller sees, privately: mrkdwn text (escape anything not ours), optional blocks."""

    text: str
    blocks: list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class Subcommand:
    """A `/care` subcommand."""

    name: str
    usage: str  # e.g. "stats [today|7d|30d]"
    summary: str  # one line for `/care help`
    role: Role  # the least role that may run it
    run: Callable[[Invocation], Answer | str]
    # Slow work (uploads, many rows): acknowledged at once, the answer follows by DM.
    slow: bool = False
    # Arguments naming a private person (`/care forget @handle`) are not kept in the audit log.
    private_args: bool = False
    aliases: tuple[str, ...] = field(default=())


# -- argument readers ------------------------------------------------------------------------

_USER = re.compile(r"<@([UW][A-Z0-9]{2,30})(?:\|[^>]*)?>|([UW][A-Z0-9]{2,30})")
_CHANNEL = re.compile(r"<#([CG][A-Z0-9]{2,30})(?:\|[^>]*)?>|([CG][A-Z0-9]{2,30})")
_GROUP = re.compile(r"<!subteam\^(S[A-Z0-9]{2,30})(?:\|[^>]*)?>|(S[A-Z0-9]{2,30})")
_MAX_ID = 10**15


def _one(pattern: re.Pattern[str], word: str, what: str) -> str:
    match = pattern.fullmatch(word.strip())
    if match is None:
        raise UsageError(f"{echo(word)} is not {what}")
    return match.group(1) or match.group(2)


def user_id(word: str) -> str:
    """A Slack user id from ``<@U123|name>`` or ``U123``."""
    return _one(_USER, word, "a person (mention them, like @alice)")


def channel_id(word: str) -> str:
    """A Slack channel id from ``<#C123|name>`` or ``C123``."""
    return _one(_CHANNEL, word, "a channel (like #billing)")


def group_id(word: str) -> str:
    """A Slack user-group id from ``<!subteam^S123|@name>`` or ``S123``."""
    return _one(_GROUP, word, "a user group (like @billing-experts)")


def is_group(word: str) -> bool:
    return _GROUP.fullmatch(word.strip()) is not None


def question_id(word: str) -> int:
    """A question number, as shown on cards and in `/care queue` (``42`` or ``#42``)."""
    raw = word.strip().removeprefix("#")
    if not raw.isdigit() or not 0 < int(raw) < _MAX_ID:
        raise UsageError(f"{echo(word)} is not a question number (like 42)")
    return int(raw)


def choice(args: Sequence[str], index: int, allowed: Sequence[str], default: str) -> str:
    """``args[index]`` lower-cased if it is one of ``allowed``; ``default`` when absent."""
    if len(args) <= index:
        return default
    word = args[index].lower()
    if word not in allowed:
        raise UsageError(f"{echo(args[index])} is not one of: {', '.join(allowed)}")
    return word


def no_more(args: Sequence[str], count: int) -> None:
    """Refuse arguments beyond the first ``count``."""
    if len(args) > count:
        raise UsageError(f"unexpected {echo(' '.join(args[count:]))}")


def echo(word: str, limit: int = 60) -> str:
    """A user's words quoted back, unable to form Slack markup or break out of code style."""
    cut = word if len(word) <= limit else word[: limit - 1] + "…"
    safe = cut.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
    return f"`{safe}`"
