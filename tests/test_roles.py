"""Who may do what: admins from three sources, stored roles, pool modes, audited refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.roles import POOL_OPEN, POOL_REGISTERED, Role, Roles
from bot.slack_directory import SlackDirectory
from bot.slack_notifier import make_web_client
from storage.models import AuditEvent, Member
from tests.dbhelpers import T0, Clock, migrated_sessions
from tests.standins.fake_slack import FakeSlack


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


class Pool:
    """The pool mode, switchable by the test (as `/care config pool …` would)."""

    def __init__(self) -> None:
        self.mode = POOL_OPEN

    def __call__(self) -> str:
        return self.mode


@pytest.fixture
def pool() -> Pool:
    return Pool()


@pytest.fixture
def roles(
    sessions: sessionmaker[Session], fake_slack: FakeSlack, clock: Clock, pool: Pool
) -> Roles:
    fake_slack.add_user("U0OWNER", "olga", is_owner=True)
    fake_slack.add_user("U0WSADMIN", "wanda", is_admin=True)
    fake_slack.add_user("U0PLAIN", "paul")
    directory = SlackDirectory(make_web_client(fake_slack.bot_token, fake_slack.api_url))
    return Roles(
        sessions,
        admins=frozenset({"U0ENVADMIN"}),
        directory=directory,
        pool_mode=pool,
        clock=clock,
    )


def store(sessions: sessionmaker[Session], user: str, *, role: str = "member", pool: bool = False):
    with sessions.begin() as session:
        session.add(Member(user_id=user, role=role, in_pool=pool, updated_at=T0))


def test_admins_come_from_the_environment_the_workspace_and_stored_roles(
    roles: Roles, sessions: sessionmaker[Session]
) -> None:
    store(sessions, "U0STORED", role="admin")
    store(sessions, "U0MOD", role="moderator")

    assert roles.role_of("U0ENVADMIN") is Role.ADMIN
    assert roles.role_of("U0OWNER") is Role.ADMIN
    assert roles.role_of("U0WSADMIN") is Role.ADMIN
    assert roles.role_of("U0STORED") is Role.ADMIN
    assert roles.role_of("U0MOD") is Role.MODERATOR
    assert roles.role_of("U0PLAIN") is Role.MEMBER
    assert roles.role_of("U0NOBODY") is Role.MEMBER  # unknown to Slack: refused, not an error


def test_a_stored_lower_role_does_not_demote_a_workspace_admin(
    roles: Roles, sessions: sessionmaker[Session]
) -> None:
    store(sessions, "U0WSADMIN", role="member")
    assert roles.role_of("U0WSADMIN") is Role.ADMIN


def test_workspace_admin_answers_are_cached_for_a_few_minutes(
    roles: Roles, fake_slack: FakeSlack, clock: Clock
) -> None:
    for _ in range(3):
        assert roles.role_of("U0WSADMIN") is Role.ADMIN
    assert len(fake_slack.calls_to("users.info")) == 1

    fake_slack.add_user("U0WSADMIN", "wanda", is_admin=False)  # demoted in Slack
    clock.advance(minutes=4)
    assert roles.role_of("U0WSADMIN") is Role.ADMIN  # still cached
    clock.advance(timedelta(minutes=2))
    assert roles.role_of("U0WSADMIN") is Role.MEMBER
    assert len(fake_slack.calls_to("users.info")) == 2


def test_slack_being_down_means_not_an_admin(roles: Roles, fake_slack: FakeSlack) -> None:
    fake_slack.fail("users.info", "internal_error", status=500, times=10)
    assert roles.role_of("U0WSADMIN") is Role.MEMBER


def test_require_refuses_with_a_reason_and_audits_it(
    roles: Roles, sessions: sessionmaker[Session]
) -> None:
    assert roles.require("U0ENVADMIN", Role.ADMIN, "change settings") is None

    refusal = roles.require("U0PLAIN", Role.MODERATOR, "close a question", question_id=None)

    assert refusal is not None
    assert "Only moderators can close a question; you are a member." in refusal
    with sessions() as session:
        [event] = session.scalars(select(AuditEvent)).all()
    assert (event.actor, event.action) == ("U0PLAIN", "permission.refused")
    assert event.detail == {"attempted": "close a question", "needed": "moderator"}


def test_open_pool_lets_everyone_answer(roles: Roles) -> None:
    assert roles.may_answer("U0PLAIN", "vote") is None


def test_registered_pool_needs_membership_and_says_how_to_join(
    roles: Roles, pool: Pool, sessions: sessionmaker[Session]
) -> None:
    pool.mode = POOL_REGISTERED
    store(sessions, "U0JOINED", pool=True)
    store(sessions, "U0MOD", role="moderator")

    refusal = roles.may_answer("U0PLAIN", "vote")

    assert refusal is not None and "/care join" in refusal
    assert roles.may_answer("U0JOINED", "vote") is None
    assert roles.may_answer("U0MOD", "vote") is None  # moderators run the pool
    assert roles.may_answer("U0ENVADMIN", "vote") is None
    with sessions() as session:
        refused = session.scalars(
            select(AuditEvent.actor).where(AuditEvent.action == "permission.refused")
        ).all()
    assert refused == ["U0PLAIN"]
