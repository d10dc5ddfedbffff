"""End to end: `/care join`, `/care pool` and `/care role` through signed Slack requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.guidelines import ACTION_JOIN_ACCEPT
from bot.roles import Role
from storage.models import AuditEvent, Member
from tests.blockkit import validate_blocks
from tests.scenario import ephemeral_to
from tests.scenario import slash as care
from tests.standins.fake_slack import FakeSlack
from tests.standins.stack import Stack

pytestmark = pytest.mark.e2e

ADMIN = "U0ADMIN"
ALICE, BOB, CARA = "U0ALICE", "U0BOB", "U0CARA"
GUIDELINES = "Version: 2026-11\n\n# How we answer\n\n- **Be kind.**\n- No personal data.\n"


@pytest.fixture
def guidelines_file(tmp_path: Path) -> Path:
    path = tmp_path / "guidelines.md"
    path.write_text(GUIDELINES, encoding="utf-8")
    return path


def start(fake_slack: Any, fake_x: Any, database_url: str, **overrides: str) -> Stack:
    fake_slack.add_user(ADMIN, "admin")
    settings = {"CARE_ADMINS": ADMIN, "CARE_POOL": "registered", **overrides}
    return Stack(fake_slack, fake_x, database_url, overrides=settings).start(jobs=False)


@pytest.fixture
def stack(
    fake_slack: Any, fake_x: Any, database_url: str, guidelines_file: Path
) -> Iterator[Stack]:
    running = start(fake_slack, fake_x, database_url, CARE_GUIDELINES_FILE=str(guidelines_file))
    yield running
    running.stop()


def mention(user: str) -> str:
    return f"<@{user}|{user[3:].lower()}>"


def audit(stack: Stack) -> list[tuple[str, str, dict[str, Any]]]:
    with stack.app.sessions() as session:
        return [
            (e.actor, e.action, e.detail)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def members(stack: Stack) -> dict[str, tuple[str, bool, str | None]]:
    with stack.app.sessions() as session:
        return {
            m.user_id: (m.role, m.in_pool, m.guidelines_version)
            for m in session.scalars(select(Member))
        }


def click_accept(stack: Stack, user: str, version: str) -> None:
    response = stack.client.block_action(
        user, ACTION_JOIN_ACCEPT, version, channel_id="C0ADMIN", message_ts="1700000000.000100"
    )
    assert response.status == 200


def accept_button(answer: dict[str, Any]) -> dict[str, Any] | None:
    for block in answer.get("blocks") or []:
        for element in block.get("elements", []):
            if element.get("action_id") == ACTION_JOIN_ACCEPT:
                return dict(element)
    return None


# -- join -----------------------------------------------------------------------------------


def test_joining_shows_the_guidelines_and_the_click_records_the_acceptance(stack):
    assert not stack.app.roles.in_pool(ALICE)
    answer = care(stack, ALICE, "join")
    validate_blocks(answer["blocks"])
    assert answer["blocks"][0]["text"]["text"] == "Answering guidelines (version 2026-11)"
    shown = "\n".join(b["text"]["text"] for b in answer["blocks"] if b["type"] == "section")
    assert "*How we answer*" in shown
    assert "• *Be kind.*" in shown
    button = accept_button(answer)
    assert button is not None
    assert button["value"] == "2026-11"

    click_accept(stack, ALICE, button["value"])
    ephemeral_to(stack, ALICE, "you accepted the answering guidelines (version 2026-11)")
    assert members(stack)[ALICE] == ("member", True, "2026-11")
    assert stack.app.roles.in_pool(ALICE)
    assert (ALICE, "pool.joined", {"version": "2026-11"}) in audit(stack)

    again = care(stack, ALICE, "join")
    assert "already accepted" in again["text"]
    assert accept_button(again) is None


def test_a_button_for_changed_guidelines_is_refused(stack, guidelines_file):
    button = accept_button(care(stack, ALICE, "join"))
    assert button is not None
    guidelines_file.write_text(GUIDELINES.replace("2026-11", "2027-01"), encoding="utf-8")

    click_accept(stack, ALICE, button["value"])
    ephemeral_to(stack, ALICE, "have changed since that message was shown")
    assert ALICE not in members(stack)
    assert not stack.app.roles.in_pool(ALICE)

    fresh = accept_button(care(stack, ALICE, "join"))
    assert fresh is not None
    assert fresh["value"] == "2027-01"
    click_accept(stack, ALICE, fresh["value"])
    ephemeral_to(stack, ALICE, "(version 2027-01)")
    assert members(stack)[ALICE] == ("member", True, "2027-01")


def test_after_an_update_a_member_is_asked_to_accept_the_new_version(stack, guidelines_file):
    click_accept(stack, ALICE, "2026-11")
    ephemeral_to(stack, ALICE, "Thank you")
    guidelines_file.write_text(GUIDELINES.replace("2026-11", "2027-01"), encoding="utf-8")
    answer = care(stack, ALICE, "join")
    assert "earlier version (2026-11)" in str(answer["blocks"])
    assert accept_button(answer) is not None


def test_an_unreadable_guidelines_file_is_explained_and_nothing_is_recorded(stack, guidelines_file):
    guidelines_file.unlink()
    answer = care(stack, ALICE, "join")
    assert "cannot be read" in answer["text"]
    click_accept(stack, ALICE, "2026-11")
    ephemeral_to(stack, ALICE, "cannot be read")
    assert members(stack) == {}


def test_joining_with_an_open_pool_says_anyone_may_answer(fake_slack, fake_x, database_url):
    running = start(fake_slack, fake_x, database_url, CARE_POOL="open")
    try:
        answer = care(running, BOB, "join")
        assert answer["blocks"][0]["text"]["text"] == "Answering guidelines (version built-in-1)"
        assert "Anyone may propose and vote right now" in str(answer["blocks"])
        assert accept_button(answer) is not None
    finally:
        running.stop()


def test_join_takes_no_arguments(stack):
    answer = care(stack, ALICE, "join now please")
    assert "Usage: `/care join`" in answer["text"]


# -- pool -----------------------------------------------------------------------------------


def test_an_admin_adds_lists_and_removes_pool_members(stack):
    answer = care(stack, ADMIN, f"pool add {mention(ALICE)} {mention(BOB)}")
    assert answer["text"].startswith(f"Added to the answering pool: <@{ALICE}>, <@{BOB}>.")
    assert stack.app.roles.in_pool(ALICE)
    assert stack.app.roles.in_pool(BOB)

    again = care(stack, ADMIN, f"pool add {mention(BOB)}")
    assert f"Already in it: <@{BOB}>." in again["text"]

    joining = care(stack, ALICE, "join")
    assert "An admin added you to the pool" in str(joining["blocks"])
    assert accept_button(joining) is not None

    listed = care(stack, ADMIN, "pool list")["text"]
    assert "*The answering pool* (2)" in listed
    assert f"<@{ALICE}>" in listed
    assert "added by an admin" in listed

    removed = care(stack, ADMIN, f"pool remove {mention(ALICE)} {CARA}")
    assert f"Removed from the answering pool: <@{ALICE}>." in removed["text"]
    assert f"Not in it: <@{CARA}>." in removed["text"]
    assert not stack.app.roles.in_pool(ALICE)

    trail = audit(stack)
    assert (ADMIN, "pool.added", {"user": ALICE}) in trail
    assert (ADMIN, "pool.added", {"user": BOB}) in trail
    assert (ADMIN, "pool.removed", {"user": ALICE, "version": None}) in trail
    commands = [detail["text"] for _, action, detail in trail if action == "command.pool"]
    assert commands[0] == f"add {mention(ALICE)} {mention(BOB)}"
    assert len(commands) == 4


@pytest.mark.parametrize(
    "text",
    [f"pool add {mention(ALICE)}", "pool list", f"role {mention(ALICE)} admin"],
)
def test_people_commands_are_refused_to_non_admins(stack, text):
    answer = care(stack, BOB, text)
    name = text.split()[0]
    assert f"Only admins can run `/care {name}`; you are a member." in answer["text"]
    assert members(stack) == {}
    assert audit(stack) == [
        (BOB, "permission.refused", {"attempted": f"run `/care {name}`", "needed": "admin"})
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("pool", "say what to do with the pool"),
        ("pool grow", "`grow` is not one of: add, remove, list"),
        ("pool add", "name at least one person"),
        (f"pool add {mention(ALICE)} bob", "`bob` is not a person"),
        ("pool remove <!channel>", "is not a person"),
        ("pool list everyone", "unexpected `everyone`"),
        ("role", "name a person and a role"),
        ("role alice admin", "`alice` is not a person"),
        (f"role {mention(ALICE)} king", "`king` is not one of: member, moderator, admin"),
        (f"role {mention(ALICE)} admin now", "unexpected `now`"),
    ],
)
def test_malformed_people_commands_show_the_usage_and_change_nothing(stack, text, reason):
    answer = care(stack, ADMIN, text)
    assert reason in answer["text"]
    assert f"Usage: `/care {text.split()[0]} " in answer["text"]
    assert members(stack) == {}
    assert audit(stack) == []


# -- role -----------------------------------------------------------------------------------


def test_an_admin_sets_roles_and_the_change_is_audited(stack):
    answer = care(stack, ADMIN, f"role {mention(CARA)} moderator")
    assert answer["text"] == f"<@{CARA}> is now a moderator (was a member)."
    assert stack.app.roles.role_of(CARA) is Role.MODERATOR
    assert stack.app.roles.in_pool(CARA)  # moderators answer in any pool mode
    assert care(stack, ADMIN, f"role {mention(CARA)}")["text"] == (
        f"<@{CARA}> is a moderator (given with `/care role`)."
    )
    same = care(stack, ADMIN, f"role {mention(CARA)} MODERATOR")
    assert same["text"] == f"<@{CARA}> already had the role moderator."

    care(stack, ADMIN, f"role {mention(CARA)} admin")
    assert care(stack, CARA, "pool list")["text"].startswith("Nobody is in the answering pool")

    trail = audit(stack)
    changes = [detail for _, action, detail in trail if action == "role.changed"]
    assert changes == [
        {"user": CARA, "from": "member", "to": "moderator"},
        {"user": CARA, "from": "moderator", "to": "admin"},
    ]
    assert [a for _, a, _ in trail].count("command.role") == 4


def test_a_stored_role_cannot_demote_an_admin_from_care_admins(stack):
    answer = care(stack, BOB, "pool list")
    assert "Only admins" in answer["text"]
    text = care(stack, ADMIN, f"role {mention(ADMIN)} member")["text"]
    assert "They stay an admin: they are listed in CARE_ADMINS" in text
    assert stack.app.roles.role_of(ADMIN) is Role.ADMIN


def test_workspace_admins_and_owners_are_admins(stack, fake_slack):
    fake_slack.add_user("U0BOSS", "boss", is_admin=True)
    fake_slack.add_user("U0OWNER", "owner", is_owner=True)
    for boss in ("U0BOSS", "U0OWNER"):
        assert care(stack, boss, "pool list")["text"].startswith("Nobody is in the answering pool")
    shown = care(stack, "U0BOSS", "role <@U0OWNER|owner>")["text"]
    assert shown == (
        "<@U0OWNER> is an admin (they are an admin or owner of the Slack workspace, "
        "which `/care role` cannot change)."
    )
    demoted = care(stack, "U0BOSS", "role <@U0OWNER|owner> member")["text"]
    assert "They stay an admin: they are an admin or owner of the Slack workspace" in demoted
    assert "Only admins" in care(stack, BOB, "pool list")["text"]
    assert fake_slack.calls_to("users.info")


def test_help_lists_the_people_commands(stack):
    text = care(stack, BOB, "help")["text"]
    assert "`/care join` — read the answering guidelines" in text
    assert "`/care pool add|remove|list [@person…]`" in text
    assert "`/care role @person [member|moderator|admin]`" in text


# -- only people of the workspace -----------------------------------------------------------

GONE, ROBOT, NOBODY = "U0GONE", "U0ROBOT", "U0NOBODY"


@pytest.fixture
def strangers(fake_slack: FakeSlack) -> FakeSlack:
    fake_slack.add_user(GONE, "gone", deleted=True)
    fake_slack.add_user(ROBOT, "robot", is_bot=True)
    return fake_slack


def test_pool_add_refuses_unknown_deactivated_and_bot_users_and_stores_nothing(stack, strangers):
    text = f"pool add {mention(ALICE)} {NOBODY} {mention(GONE)} {mention(ROBOT)}"

    answer = care(stack, ADMIN, text)["text"]

    assert answer == (
        f"Nothing changed: `{NOBODY}` is not a member of this workspace; <@{GONE}> is "
        f"deactivated; <@{ROBOT}> is a bot, not a person. Only active people in this workspace "
        "can be in the answering pool."
    )
    assert members(stack) == {}
    assert [action for _, action, _ in audit(stack)] == ["command.pool"]
    assert not stack.app.roles.in_pool(ALICE)


def test_pool_remove_is_not_checked_so_people_who_left_can_be_removed(stack, strangers):
    care(stack, ADMIN, f"pool add {mention(ALICE)}")
    strangers.add_user(ALICE, "alice", deleted=True)  # Alice leaves the company

    removed = care(stack, ADMIN, f"pool remove {mention(ALICE)}")["text"]

    assert removed.startswith(f"Removed from the answering pool: <@{ALICE}>.")


def test_role_refuses_someone_not_in_the_workspace(stack, strangers):
    for target, reason in [
        (NOBODY, f"`{NOBODY}` is not a member of this workspace"),
        (GONE, f"<@{GONE}> is deactivated"),
        (ROBOT, f"<@{ROBOT}> is a bot, not a person"),
    ]:
        answer = care(stack, ADMIN, f"role {mention(target)} moderator")["text"]
        assert answer == (
            f"Nothing changed: {reason}. Only active people in this workspace can hold a "
            "crowdcare role."
        )
    assert members(stack) == {}
    assert not [a for _, a, _ in audit(stack) if a == "role.changed"]


def test_a_deactivated_moderator_can_still_be_made_a_member(stack, strangers):
    care(stack, ADMIN, f"role {mention(CARA)} moderator")
    strangers.add_user(CARA, "cara", deleted=True)

    answer = care(stack, ADMIN, f"role {mention(CARA)} member")["text"]

    assert answer == f"<@{CARA}> is now a member (was a moderator)."
    assert members(stack)[CARA][0] == "member"


def test_when_slack_cannot_be_asked_the_change_is_made_with_a_note(stack, fake_slack):
    fake_slack.fail("users.info", "fatal_error", times=2)

    added = care(stack, ADMIN, f"pool add {mention(ALICE)}")["text"]
    made = care(stack, ADMIN, f"role {mention(BOB)} moderator")["text"]

    assert f"Added to the answering pool: <@{ALICE}>." in added
    assert f"Slack could not be asked whether <@{ALICE}> is in this workspace" in added
    assert made.startswith(f"<@{BOB}> is now a moderator (was a member).")
    assert "Slack could not be asked whether they are in this workspace" in made
    assert members(stack)[ALICE][1] is True
    assert members(stack)[BOB][0] == "moderator"
