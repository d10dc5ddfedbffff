"""The answering pool and stored roles: who joined, who was added, who holds which role.

With ``CARE_POOL=registered`` only pool members propose and vote (see :mod:`bot.roles`). People
join by accepting the current guidelines (``/care join``) or are added by an admin. Every change
is audited in the same transaction. A member's row is created on first need with
``INSERT … ON CONFLICT DO NOTHING`` and then locked, so two clicks at once change it once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.guidelines import Guidelines
from bot.roles import ROLE_NAMES, Role
from bot.states import record
from storage.db import insert_ignoring_duplicates
from storage.models import Member

ADDED_BY_ADMIN = "added by an admin"


@dataclass(frozen=True)
class PoolEntry:
    """One pool member as `/care pool list` shows them."""

    user_id: str
    since: datetime | None
    how: str  # "guidelines <version>" or ADDED_BY_ADMIN


@dataclass(frozen=True)
class PoolChange:
    """Who a `/care pool add|remove` changed, and who already was as asked."""

    changed: tuple[str, ...]
    unchanged: tuple[str, ...]


def accept_guidelines(
    sessions: sessionmaker[Session], user_id: str, version: str, now: datetime
) -> bool:
    """Record that ``user_id`` accepted ``version`` and is in the pool; False if already so."""
    with sessions.begin() as session:
        member = _member(session, user_id, now)
        if member.in_pool and member.guidelines_version == version:
            return False
        if not member.in_pool:
            member.in_pool, member.joined_at = True, now
        member.guidelines_version, member.updated_at = version, now
        record(session, actor=user_id, action="pool.joined", now=now, detail={"version": version})
    return True


def accept_clicked(
    sessions: sessionmaker[Session], user_id: str, clicked: str, current: Guidelines, now: datetime
) -> str:
    """The I accept button: records the acceptance when ``clicked`` is the current version."""
    if clicked != current.version:
        return (
            "The answering guidelines have changed since that message was shown. "
            "Run /care join again to read the current version."
        )
    if not accept_guidelines(sessions, user_id, current.version, now):
        return f"You had already accepted the answering guidelines (version {current.version})."
    return (
        f"Thank you: you accepted the answering guidelines (version {current.version}) and "
        "joined the answering pool. You can now propose answers and vote."
    )


def status(sessions: sessionmaker[Session], user_id: str) -> tuple[bool, str | None]:
    """Whether ``user_id`` is in the pool, and the guidelines version they accepted if so."""
    with sessions() as session:
        member = session.get(Member, user_id)
        if member is None or not member.in_pool:
            return False, None
        return True, member.guidelines_version


def add_to_pool(
    sessions: sessionmaker[Session], user_ids: Iterable[str], actor: str, now: datetime
) -> PoolChange:
    """An admin adds people to the pool (no guidelines accepted); audited per person."""
    changed, unchanged = [], []
    with sessions.begin() as session:
        for user_id in dict.fromkeys(user_ids):
            member = _member(session, user_id, now)
            if member.in_pool:
                unchanged.append(user_id)
                continue
            member.in_pool, member.joined_at, member.updated_at = True, now, now
            member.guidelines_version = None
            record(session, actor=actor, action="pool.added", now=now, detail={"user": user_id})
            changed.append(user_id)
    return PoolChange(tuple(changed), tuple(unchanged))


def remove_from_pool(
    sessions: sessionmaker[Session], user_ids: Iterable[str], actor: str, now: datetime
) -> PoolChange:
    """An admin removes people from the pool; rejoining means accepting the guidelines again."""
    changed, unchanged = [], []
    with sessions.begin() as session:
        for user_id in dict.fromkeys(user_ids):
            member = session.get(Member, user_id, with_for_update=True)
            if member is None or not member.in_pool:
                unchanged.append(user_id)
                continue
            detail = {"user": user_id, "version": member.guidelines_version}
            member.in_pool, member.guidelines_version, member.updated_at = False, None, now
            record(session, actor=actor, action="pool.removed", now=now, detail=detail)
            changed.append(user_id)
    return PoolChange(tuple(changed), tuple(unchanged))


def list_pool(sessions: sessionmaker[Session]) -> list[PoolEntry]:
    """Everyone in the pool, earliest first."""
    with sessions() as session:
        members = session.scalars(
            select(Member).where(Member.in_pool).order_by(Member.joined_at, Member.user_id)
        )
        return [
            PoolEntry(
                m.user_id,
                m.joined_at,
                f"guidelines {m.guidelines_version}" if m.guidelines_version else ADDED_BY_ADMIN,
            )
            for m in members
        ]


def stored_role(sessions: sessionmaker[Session], user_id: str) -> Role:
    """The role given with `/care role` (member when none was)."""
    with sessions() as session:
        member = session.get(Member, user_id)
        return _role(member)


def set_role(
    sessions: sessionmaker[Session], user_id: str, role: Role, actor: str, now: datetime
) -> Role:
    """Store ``role`` for ``user_id``; audited when it changes. Returns the role before."""
    with sessions.begin() as session:
        member = _member(session, user_id, now)
        before = _role(member)
        if before is not role:
            member.role, member.updated_at = role.label, now
            record(
                session,
                actor=actor,
                action="role.changed",
                now=now,
                detail={"user": user_id, "from": before.label, "to": role.label},
            )
    return before


def _role(member: Member | None) -> Role:
    return ROLE_NAMES.get(member.role, Role.MEMBER) if member is not None else Role.MEMBER


def _member(session: Session, user_id: str, now: datetime) -> Member:
    """``user_id``'s row, created if missing, locked for this transaction."""
    row = {
        "user_id": user_id,
        "role": Role.MEMBER.label,
        "in_pool": False,
        "guidelines_version": None,
        "joined_at": None,
        "updated_at": now,
    }
    session.execute(insert_ignoring_duplicates(session, Member, [row]))
    return session.get_one(Member, user_id, with_for_update=True, populate_existing=True)
