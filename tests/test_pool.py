"""The answering pool and stored roles, against a real migrated database (SQLite or PostgreSQL)."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot import pool
from bot.guidelines import Guidelines
from bot.roles import Role, Roles
from storage.models import AuditEvent, Member
from tests.dbhelpers import T0, Clock, migrated_sessions


@pytest.fixture
def sessions(database_url):
    with migrated_sessions(database_url) as factory:
        yield factory


def events(sessions: Any, action: str) -> list[AuditEvent]:
    with sessions() as session:
        return list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )


def member(sessions: Any, user_id: str) -> Member | None:
    with sessions() as session:
        row: Member | None = session.get(Member, user_id)
        return row


def roles(sessions: Any, mode: str = "registered") -> Roles:
    class NoAdmins:
        def is_workspace_admin(self, user_id: str) -> bool:
            return False

    return Roles(
        sessions, admins=frozenset(), directory=NoAdmins(), pool_mode=lambda: mode, clock=Clock()
    )


def test_accepting_the_guidelines_joins_the_pool_once(sessions):
    assert not roles(sessions).in_pool("U0ALICE")
    assert pool.accept_guidelines(sessions, "U0ALICE", "2026-11", T0)
    assert not pool.accept_guidelines(sessions, "U0ALICE", "2026-11", T0 + timedelta(hours=1))
    row = member(sessions, "U0ALICE")
    assert row is not None
    assert (row.in_pool, row.guidelines_version, row.joined_at) == (True, "2026-11", T0)
    assert roles(sessions).in_pool("U0ALICE")
    [joined] = events(sessions, "pool.joined")
    assert (joined.actor, joined.detail) == ("U0ALICE", {"version": "2026-11"})


def test_accepting_a_new_version_records_it_and_keeps_the_join_date(sessions):
    pool.accept_guidelines(sessions, "U0ALICE", "v1", T0)
    assert pool.accept_guidelines(sessions, "U0ALICE", "v2", T0 + timedelta(days=30))
    row = member(sessions, "U0ALICE")
    assert row is not None
    assert (row.guidelines_version, row.joined_at) == ("v2", T0)
    assert [e.detail["version"] for e in events(sessions, "pool.joined")] == ["v1", "v2"]


def test_a_click_on_an_old_version_changes_nothing(sessions):
    current = Guidelines("v2", "Be kind.", None)
    message = pool.accept_clicked(sessions, "U0ALICE", "v1", current, T0)
    assert "changed" in message
    assert "/care join" in message
    assert member(sessions, "U0ALICE") is None
    assert events(sessions, "pool.joined") == []
    assert "v2" in pool.accept_clicked(sessions, "U0ALICE", "v2", current, T0)
    assert pool.status(sessions, "U0ALICE") == (True, "v2")
    assert "already" in pool.accept_clicked(sessions, "U0ALICE", "v2", current, T0)


def test_admins_add_and_remove_people_and_every_change_is_audited(sessions):
    pool.accept_guidelines(sessions, "U0BOB", "v1", T0)
    added = pool.add_to_pool(sessions, ["U0ALICE", "U0BOB", "U0ALICE"], "U0ADMIN", T0)
    assert added == pool.PoolChange(changed=("U0ALICE",), unchanged=("U0BOB",))
    assert [(e.actor, e.detail) for e in events(sessions, "pool.added")] == [
        ("U0ADMIN", {"user": "U0ALICE"})
    ]
    listed = pool.list_pool(sessions)
    assert [(e.user_id, e.since, e.how) for e in listed] == [
        ("U0ALICE", T0, pool.ADDED_BY_ADMIN),
        ("U0BOB", T0, "guidelines v1"),
    ]

    removed = pool.remove_from_pool(sessions, ["U0BOB", "U0CARA"], "U0ADMIN", T0)
    assert removed == pool.PoolChange(changed=("U0BOB",), unchanged=("U0CARA",))
    [event] = events(sessions, "pool.removed")
    assert event.detail == {"user": "U0BOB", "version": "v1"}
    assert pool.status(sessions, "U0BOB") == (False, None)
    assert not roles(sessions).in_pool("U0BOB")
    assert roles(sessions, mode="open").in_pool("U0BOB")
    assert [e.user_id for e in pool.list_pool(sessions)] == ["U0ALICE"]


def test_roles_are_stored_audited_and_returned(sessions):
    assert pool.set_role(sessions, "U0CARA", Role.MODERATOR, "U0ADMIN", T0) is Role.MEMBER
    assert roles(sessions).role_of("U0CARA") is Role.MODERATOR
    assert pool.set_role(sessions, "U0CARA", Role.MODERATOR, "U0ADMIN", T0) is Role.MODERATOR
    assert pool.set_role(sessions, "U0CARA", Role.MEMBER, "U0ADMIN", T0) is Role.MODERATOR
    assert [(e.actor, e.detail) for e in events(sessions, "role.changed")] == [
        ("U0ADMIN", {"user": "U0CARA", "from": "member", "to": "moderator"}),
        ("U0ADMIN", {"user": "U0CARA", "from": "moderator", "to": "member"}),
    ]
    assert pool.stored_role(sessions, "U0CARA") is Role.MEMBER


def test_a_role_change_keeps_pool_membership(sessions):
    pool.accept_guidelines(sessions, "U0DAN", "v1", T0)
    pool.set_role(sessions, "U0DAN", Role.ADMIN, "U0ADMIN", T0)
    assert pool.status(sessions, "U0DAN") == (True, "v1")


def test_two_accepts_at_once_join_once(sessions):
    """On PostgreSQL a real race; SQLite serializes the writers with BEGIN IMMEDIATE."""
    barrier = threading.Barrier(8)
    results: list[bool] = []
    errors: list[BaseException] = []

    def click() -> None:
        try:
            barrier.wait()
            results.append(pool.accept_guidelines(sessions, "U0EVE", "v1", T0))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=click) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [False] * 7 + [True]
    assert len(events(sessions, "pool.joined")) == 1
    assert pool.status(sessions, "U0EVE") == (True, "v1")
