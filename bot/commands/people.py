"""`/care` subcommands about people: `join`, `pool add|remove|list` and `role`."""

from __future__ import annotations

from collections.abc import Sequence

from bot import guidelines, pool
from bot.commands.base import Answer, Invocation, Subcommand, UsageError, choice, no_more, user_id
from bot.context import CareContext
from bot.mrkdwn import escape
from bot.roles import POOL_OPEN, ROLE_NAMES, Presence, Role

MAX_PEOPLE = 50  # per `/care pool add|remove`
MAX_LISTED = 200

# Why someone Slack knows of cannot join the pool or hold a role.
NOT_A_PERSON = {
    Presence.UNKNOWN: "is not a member of this workspace",
    Presence.DEACTIVATED: "is deactivated",
    Presence.BOT: "is a bot, not a person",
}

OPEN_NOTE = (
    "Answering is open to everyone right now (pool mode *open*), so the pool only matters once "
    "an admin sets `/care config pool registered`."
)


def subcommands(care: CareContext) -> list[Subcommand]:
    return [
        Subcommand(
            "join",
            "join",
            "read the answering guidelines and join the answering pool",
            Role.MEMBER,
            lambda invocation: join(care, invocation),
        ),
        Subcommand(
            "pool",
            "pool add|remove|list [@person…]",
            "add people to the answering pool, remove them, or list it",
            Role.ADMIN,
            lambda invocation: pool_command(care, invocation),
        ),
        Subcommand(
            "role",
            "role @person [member|moderator|admin]",
            "show or set someone's crowdcare role",
            Role.ADMIN,
            lambda invocation: role_command(care, invocation),
        ),
    ]


# -- join -----------------------------------------------------------------------------------


def join(care: CareContext, invocation: Invocation) -> Answer | str:
    """The guidelines with an I accept button (or a note that they were accepted)."""
    no_more(invocation.args, 0)
    try:
        current = guidelines.load(care.settings.guidelines_file)
    except guidelines.GuidelinesError as exc:
        return str(exc)
    version = escape(current.version)
    in_pool, accepted = pool.status(care.sessions, invocation.user_id)
    open_pool = care.config.pool_mode() == POOL_OPEN
    if accepted == current.version:
        text = (
            f"You have already accepted these answering guidelines (version {version}) "
            "and are in the answering pool."
        )
        return Answer(text, guidelines.join_blocks(current, accept=False, notes=(text,)))
    notes = []
    if in_pool and accepted is None:
        notes.append("An admin added you to the pool; accepting records that you read these.")
    elif accepted is not None:
        notes.append(
            f"You accepted an earlier version ({escape(accepted)}); "
            "please read and accept the current one."
        )
    if open_pool:
        notes.append(
            "Anyone may propose and vote right now (pool mode *open*); accepting records that "
            "you read these guidelines, so you stay in the pool if it becomes registered."
        )
    text = (
        f"Please read the answering guidelines (version {version}) and click *I accept* "
        "to join the answering pool."
    )
    notes.append(text)
    return Answer(text, guidelines.join_blocks(current, accept=True, notes=tuple(notes)))


# -- pool -----------------------------------------------------------------------------------


def pool_command(care: CareContext, invocation: Invocation) -> str:
    """`/care pool add|remove @person…` and `/care pool list`."""
    args = invocation.args
    action = choice(args, 0, ("add", "remove", "list"), default="")
    if not action:
        raise UsageError("say what to do with the pool: add, remove or list")
    if action == "list":
        no_more(args, 1)
        return _pool_list(care)
    people = _people(args[1:])
    now = care.clock()
    if action == "add":
        # Removing is never checked: it is how the pool is cleaned of people who left.
        refused, unchecked = _check_people(care, people)
        if refused:
            return _nothing_changed(refused, "be in the answering pool")
        change = pool.add_to_pool(care.sessions, people, invocation.user_id, now)
        lines = _listed("Added to the answering pool", change.changed)
        lines += _listed("Already in it", change.unchanged)
        lines += unchecked
    else:
        change = pool.remove_from_pool(care.sessions, people, invocation.user_id, now)
        lines = _listed("Removed from the answering pool", change.changed)
        lines += _listed("Not in it", change.unchanged)
    if care.config.pool_mode() == POOL_OPEN:
        lines.append(OPEN_NOTE)
    return "\n".join(lines)


def _people(words: Sequence[str]) -> list[str]:
    if not words:
        raise UsageError("name at least one person (mention them, like @alice)")
    if len(words) > MAX_PEOPLE:
        raise UsageError(f"name at most {MAX_PEOPLE} people at a time")
    return [user_id(word) for word in words]


def _check_people(care: CareContext, people: Sequence[str]) -> tuple[list[str], list[str]]:
    """Why some of ``people`` are refused, and notes on those Slack could not be asked about."""
    refused, unchecked = [], []
    for person in dict.fromkeys(people):
        presence = care.roles.directory.presence(person)
        if presence in NOT_A_PERSON:
            refused.append(_not_a_person(person, presence))
        elif presence is Presence.UNREACHABLE:
            unchecked.append(
                f"(Slack could not be asked whether <@{person}> is in this workspace; "
                "please check the name.)"
            )
    return refused, unchecked


def _not_a_person(person: str, presence: Presence) -> str:
    # An unknown id renders as a broken mention, so it is shown as typed.
    shown = f"`{person}`" if presence is Presence.UNKNOWN else f"<@{person}>"
    return f"{shown} {NOT_A_PERSON[presence]}"


def _nothing_changed(refused: Sequence[str], what: str) -> str:
    return (
        f"Nothing changed: {'; '.join(refused)}. Only active people in this workspace can {what}."
    )


def _listed(label: str, users: Sequence[str]) -> list[str]:
    return [f"{label}: {', '.join(f'<@{u}>' for u in users)}."] if users else []


def _pool_list(care: CareContext) -> str:
    entries = pool.list_pool(care.sessions)
    mode = care.config.pool_mode()
    if not entries:
        lines = ["Nobody is in the answering pool yet. People join with `/care join`."]
    else:
        lines = [f"*The answering pool* ({len(entries)}):"]
        for entry in entries[:MAX_LISTED]:
            since = f"since {entry.since:%Y-%m-%d}" if entry.since else "since an unknown date"
            lines.append(f"• <@{entry.user_id}>, {since}, {escape(entry.how)}")
        if len(entries) > MAX_LISTED:
            lines.append(f"…and {len(entries) - MAX_LISTED} more.")
    lines.append(OPEN_NOTE if mode == POOL_OPEN else "Pool mode *registered*: only they answer.")
    return "\n".join(lines)


# -- role -----------------------------------------------------------------------------------


def role_command(care: CareContext, invocation: Invocation) -> str:
    """`/care role @person [member|moderator|admin]`."""
    args = invocation.args
    if not args:
        raise UsageError("name a person and a role")
    target = user_id(args[0])
    if len(args) == 1:
        return f"<@{target}> is {_role_phrase(care, target)}."
    wanted = ROLE_NAMES[choice(args, 1, tuple(ROLE_NAMES), default=Role.MEMBER.label)]
    no_more(args, 2)
    presence = care.roles.directory.presence(target)
    # A deactivated moderator may still be made a member again, to tidy the stored roles.
    if presence in NOT_A_PERSON and not (
        presence is Presence.DEACTIVATED and wanted is Role.MEMBER
    ):
        return _nothing_changed([_not_a_person(target, presence)], "hold a crowdcare role")
    before = pool.set_role(care.sessions, target, wanted, invocation.user_id, care.clock())
    if before is wanted:
        line = f"<@{target}> already had the role {wanted.label}."
    else:
        line = f"<@{target}> is now {_a(wanted)} (was {_a(before)})."
    effective = care.roles.role_of(target)
    if effective > wanted:
        line += f" They stay {_a(effective)}: {_admin_source(care, target)}."
    if presence is Presence.UNREACHABLE:
        line += " (Slack could not be asked whether they are in this workspace.)"
    return line


def _role_phrase(care: CareContext, target: str) -> str:
    effective = care.roles.role_of(target)
    stored = pool.stored_role(care.sessions, target)
    if effective > stored:
        return f"{_a(effective)} ({_admin_source(care, target)})"
    if stored > Role.MEMBER:
        return f"{_a(stored)} (given with `/care role`)"
    return _a(stored)


def _admin_source(care: CareContext, target: str) -> str:
    if target in care.settings.admins:
        return "they are listed in CARE_ADMINS, which `/care role` cannot change"
    return "they are an admin or owner of the Slack workspace, which `/care role` cannot change"


def _a(role: Role) -> str:
    return f"an {role.label}" if role.label[0] in "aeiou" else f"a {role.label}"
