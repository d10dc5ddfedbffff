"""The /care slash command: parse, check the role, run one subcommand, answer privately.

Slack waits 3 seconds for the acknowledgement, so quick subcommands answer in the ack itself and
slow ones (``Subcommand.slow``) acknowledge at once and send their answer by direct message.
Whatever happens, the person gets a readable answer: wrong arguments show the usage, a refusal
says why, and an unexpected error says nothing was changed.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.commands.base import Answer, Invocation, Subcommand, UsageError, echo
from bot.commands.registry import all_subcommands
from bot.context import CareContext
from bot.roles import Role
from bot.states import record

log = logging.getLogger(__name__)

INTRO = (
    "*crowdcare* relays customer questions from X into this workspace. Click *Propose answer* "
    "on a question card to suggest a reply, and *Vote* on a colleague's; the first proposal to "
    "reach the vote threshold is sent to the customer."
)
FAILED = (
    "Something went wrong running `/care {name}`; nothing was changed. "
    "Please try again in a minute; if it keeps failing, the details are in crowdcare's log."
)
MAX_AUDITED_TEXT = 500


def register(app: App, care: CareContext) -> None:
    """Listen for /care."""
    table = _table(all_subcommands(care))

    @app.command("/care")
    def care_command(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        """Answer /care subcommands privately."""
        user = str(command.get("user_id", ""))
        channel = str(command.get("channel_id", ""))
        words = str(command.get("text") or "").split(maxsplit=1)
        name = words[0].lower() if words else "help"
        rest = words[1].strip() if len(words) > 1 else ""
        if name == "help":
            ack(text=help_text(table, rest), response_type="ephemeral")
            return
        subcommand = table.get(name)
        if subcommand is None:
            ack(
                text=f"There is no `/care` subcommand {echo(name, 30)}. Try `/care help`.",
                response_type="ephemeral",
            )
            return
        try:
            _run(care, subcommand, user, channel, rest, ack, client)
        except Exception:
            log.exception("/care %s failed", subcommand.name)
            ack(text=FAILED.format(name=subcommand.name), response_type="ephemeral")


def _run(  # noqa: PLR0917 - the listener's pieces, passed on once
    care: CareContext,
    subcommand: Subcommand,
    user: str,
    channel: str,
    rest: str,
    ack: Ack,
    client: WebClient,
) -> None:
    role, refusal = care.roles.check(user, subcommand.role, f"run `/care {subcommand.name}`")
    if refusal is not None:
        ack(text=refusal, response_type="ephemeral")
        return
    invocation = Invocation(
        user_id=user,
        channel_id=channel,
        name=subcommand.name,
        text=rest,
        args=tuple(rest.split()),
        role=role,
    )
    if subcommand.slow:
        ack(text=f"Working on `/care {subcommand.name}`…", response_type="ephemeral")
    try:
        answer = _answer(subcommand.run(invocation))
    except UsageError as exc:
        text = f"{exc}.\nUsage: `/care {subcommand.usage}`"
        if subcommand.slow:
            _direct_message(client, user, Answer(text))
        else:
            ack(text=text, response_type="ephemeral")
        return
    except Exception:
        if not subcommand.slow:
            raise
        log.exception("/care %s failed", subcommand.name)
        _direct_message(client, user, Answer(FAILED.format(name=subcommand.name)))
        return
    if subcommand.role >= Role.MODERATOR:
        _audit(care, invocation, withhold=subcommand.private_args)
    if subcommand.slow:
        _direct_message(client, user, answer)
    else:
        ack(text=answer.text, blocks=answer.blocks, response_type="ephemeral")


def _answer(result: Answer | str) -> Answer:
    return result if isinstance(result, Answer) else Answer(result)


def _audit(care: CareContext, invocation: Invocation, *, withhold: bool = False) -> None:
    """Every moderator and admin command is in the audit log, with its arguments."""
    with care.sessions.begin() as session:
        record(
            session,
            actor=invocation.user_id,
            action=f"command.{invocation.name}",
            now=care.clock(),
            detail={
                "text": "[withheld]" if withhold else invocation.text[:MAX_AUDITED_TEXT],
                "channel": invocation.channel_id,
            },
        )


def _direct_message(client: WebClient, user: str, answer: Answer) -> None:
    try:
        kwargs: dict[str, Any] = {"channel": user, "text": answer.text}
        if answer.blocks:
            kwargs["blocks"] = answer.blocks
        client.chat_postMessage(**kwargs)
    except SlackApiError as exc:
        log.warning("Could not send the /care answer to %s: %s", user, exc.response.get("error"))


def _table(subcommands: list[Subcommand]) -> dict[str, Subcommand]:
    table: dict[str, Subcommand] = {}
    for subcommand in subcommands:
        for name in (subcommand.name, *subcommand.aliases):
            if name in table or name == "help":
                raise ValueError(f"/care {name} is defined twice")
            table[name] = subcommand
    return table


def help_text(table: dict[str, Subcommand], topic: str = "") -> str:
    """`/care help`: every subcommand by the role it needs; `/care help <name>`: one of them."""
    topic = topic.strip().lower()
    if topic:
        subcommand = table.get(topic)
        if subcommand is None:
            return f"There is no `/care` subcommand {echo(topic, 30)}. Try `/care help`."
        return (
            f"`/care {subcommand.usage}` — {subcommand.summary} "
            f"(for {subcommand.role.label}s{' and above' if subcommand.role < Role.ADMIN else ''})"
        )
    unique = list({id(s): s for s in table.values()}.values())
    lines = [INTRO, "", "`/care help [subcommand]` — this help, or one subcommand's"]
    headings = {
        Role.MEMBER: "*For everyone*",
        Role.MODERATOR: "*For moderators*",
        Role.ADMIN: "*For admins*",
    }
    for role, heading in headings.items():
        group = [s for s in unique if s.role is role]
        if group:
            lines += ["", heading, *(f"`/care {s.usage}` — {s.summary}" for s in group)]
    return "\n".join(lines)
