"""`/care` subcommands for moderators: `escalate`, `close` and `ignore` a question by number."""

from __future__ import annotations

from bot import moderation
from bot.commands.base import Invocation, Subcommand, UsageError, echo, no_more, question_id
from bot.context import CareContext
from bot.mrkdwn import escape
from bot.roles import Role


def subcommands(care: CareContext) -> list[Subcommand]:
    return [
        Subcommand(
            "escalate",
            "escalate <question>",
            "call in the support reps now, before the deadline",
            Role.MODERATOR,
            lambda invocation: escalate(care, invocation),
        ),
        Subcommand(
            "close",
            "close <question> [reason]",
            "close a question: no reply is sent, nobody is reminded",
            Role.MODERATOR,
            lambda invocation: close(care, invocation),
        ),
        Subcommand(
            "ignore",
            "ignore <question>",
            "ignore spam or a post that is not a question",
            Role.MODERATOR,
            lambda invocation: ignore(care, invocation),
        ),
    ]


def escalate(care: CareContext, invocation: Invocation) -> str:
    """`/care escalate 42`."""
    number = _question(invocation)
    no_more(invocation.args, 1)
    return _run(care, moderation.Action.ESCALATE, number, invocation.user_id)


def ignore(care: CareContext, invocation: Invocation) -> str:
    """`/care ignore 42`."""
    number = _question(invocation)
    no_more(invocation.args, 1)
    return _run(care, moderation.Action.IGNORE, number, invocation.user_id)


def close(care: CareContext, invocation: Invocation) -> str:
    """`/care close 42 duplicate of #41`: the reason is kept in the audit log."""
    number = _question(invocation)
    words = invocation.text.split(maxsplit=1)
    reason = " ".join(words[1].split()) if len(words) > 1 else ""
    if len(reason) > moderation.REASON_LIMIT:
        raise UsageError(
            f"the reason is {len(reason)} characters; keep it to {moderation.REASON_LIMIT}"
        )
    answer = _run(care, moderation.Action.CLOSE, number, invocation.user_id, reason or None)
    if reason and answer.startswith("Closed"):
        answer += f"\nReason: {echo(reason, moderation.REASON_LIMIT)}"
    return answer


def _question(invocation: Invocation) -> int:
    if not invocation.args:
        raise UsageError("say which question, by the number on its card (like 42)")
    return question_id(invocation.args[0])


def _run(
    care: CareContext,
    action: moderation.Action,
    number: int,
    actor: str,
    reason: str | None = None,
) -> str:
    result = moderation.moderate(care.escalations, action, number, actor=actor, reason=reason)
    return escape(result.message)
