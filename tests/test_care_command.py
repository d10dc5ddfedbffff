"""The /care dispatcher through Slack's signed slash-command path: help, unknown words, roles."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from bot.commands.base import Subcommand
from bot.commands.registry import all_subcommands
from bot.roles import Role
from handlers.commands import _table, help_text
from storage.models import AuditEvent, Question
from tests.scenario import card_for
from tests.scenario import slash as care
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import Stack

ADMIN = "U0ADMIN"
MEMBER = "U0BOB"


@pytest.fixture
def stack(fake_slack: FakeSlack, fake_x: FakeX, database_url: str) -> Iterator[Stack]:
    fake_slack.add_user(ADMIN, "ada")
    running = Stack(fake_slack, fake_x, database_url, overrides={"CARE_ADMINS": ADMIN}).start()
    yield running
    running.stop()


def audit_actions(stack: Stack) -> list[tuple[str, str]]:
    with stack.app.sessions() as session:
        rows = session.execute(select(AuditEvent.actor, AuditEvent.action)).all()
    return [(actor, action) for actor, action in rows]


def subcommands(stack: Stack) -> list[Subcommand]:
    return all_subcommands(stack.app.context)


def test_help_lists_every_subcommand_with_its_usage(stack: Stack) -> None:
    for text in ("", "help", "HELP"):
        answer = care(stack, MEMBER, text)["text"]
        assert "`/care help [subcommand]`" in answer
        for subcommand in subcommands(stack):
            assert f"`/care {subcommand.usage}` — {subcommand.summary}" in answer


def test_help_on_one_subcommand_names_who_may_run_it(stack: Stack) -> None:
    for subcommand in subcommands(stack):
        answer = care(stack, MEMBER, f"help {subcommand.name}")["text"]
        assert answer.startswith(f"`/care {subcommand.usage}`")
        assert f"for {subcommand.role.label}s" in answer


def test_an_unknown_subcommand_is_named_safely(stack: Stack) -> None:
    answer = care(stack, MEMBER, "frobnicate <!channel> now")["text"]
    assert answer == "There is no `/care` subcommand `frobnicate`. Try `/care help`."
    answer = care(stack, MEMBER, "<!channel>")["text"]
    assert "<!channel>" not in answer and "&lt;!channel&gt;" in answer
    assert care(stack, MEMBER, "help nothing-like-this")["text"].startswith("There is no")


def test_a_member_running_an_admin_subcommand_is_refused_and_audited(stack: Stack) -> None:
    admin_only = [s for s in subcommands(stack) if s.role is Role.ADMIN]
    if not admin_only:
        pytest.skip("no admin subcommands registered")
    before = audit_actions(stack)
    for subcommand in admin_only:
        answer = care(stack, MEMBER, subcommand.name)["text"]
        assert answer.startswith(f"Only admins can run `/care {subcommand.name}`; you are a member")
    added = audit_actions(stack)[len(before) :]
    assert added == [(MEMBER, "permission.refused")] * len(admin_only)


def test_names_and_aliases_are_unique() -> None:
    def noop(_invocation: object) -> str:
        return ""

    one = Subcommand("queue", "queue", "the queue", Role.MEMBER, noop)
    two = Subcommand("list", "list", "the same", Role.MEMBER, noop, aliases=("queue",))
    with pytest.raises(ValueError, match="defined twice"):
        _table([one, two])
    with pytest.raises(ValueError, match="defined twice"):
        _table([Subcommand("help", "help", "no", Role.MEMBER, noop)])


def test_help_groups_subcommands_by_role() -> None:
    def noop(_invocation: object) -> str:
        return ""

    table = _table(
        [
            Subcommand("queue", "queue", "open questions", Role.MEMBER, noop),
            Subcommand("close", "close <id>", "close one", Role.MODERATOR, noop),
            Subcommand("config", "config", "settings", Role.ADMIN, noop),
        ]
    )
    text = help_text(table)
    assert text.index("*For everyone*") < text.index("`/care queue`")
    assert text.index("*For moderators*") < text.index("`/care close <id>`")
    assert text.index("*For admins*") < text.index("`/care config`")
    assert help_text(table, "close") == "`/care close <id>` — close one (for moderators and above)"


HOSTILE_ARGS = [
    "<!channel> <!here>",
    "'; DROP TABLE questions; --",
    "<http://evil.example|click> `code` *bold*",
    "\u202eevil\u202c \u200b",
    "1 OR 1=1",
]


def test_hostile_arguments_to_every_subcommand_are_never_live_markup_or_sql(
    stack: Stack,
) -> None:
    stack.x.add_mention("@AcmeHelp a question so the tables hold something")
    card_for(stack, "tables hold something")
    for subcommand in subcommands(stack):
        if subcommand.slow:
            continue  # answered by DM after the ack; covered by their own tests
        for args in HOSTILE_ARGS:
            answer = care(stack, ADMIN, f"{subcommand.name} {args}")["text"]
            assert "<!channel>" not in answer and "<!here>" not in answer, subcommand.name
            assert "<http://evil.example" not in answer, subcommand.name
    with stack.app.sessions() as session:
        assert session.scalar(select(func.count()).select_from(Question)) >= 1
