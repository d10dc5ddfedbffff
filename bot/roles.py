"""Who may do what: roles, the answering pool, and refusals that explain themselves.

Admins are ``CARE_ADMINS`` plus the workspace's admins and owners (asked of Slack through a
:class:`Directory`, cached a few minutes) plus anyone given the role with ``/care role``.
Moderators may close, ignore, escalate and send a proposal without votes. Everyone else is a
member: with ``CARE_POOL=open`` every member may propose and vote; with ``registered`` only those
who accepted the guidelines (``/care join``) or were added with ``/care pool add``.

Every refusal is told to the person and written to the audit log (by :meth:`Roles.refuse`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import IntEnum, StrEnum
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from bot.states import record
from storage.models import Member

log = logging.getLogger(__name__)


class Role(IntEnum):
    MEMBER = 1
    MODERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()


ROLE_NAMES = {role.label: role for role in Role}

POOL_OPEN = "open"
POOL_REGISTERED = "registered"


class Presence(StrEnum):
    """Whether a user id is someone who can hold a role or answer, as the workspace says."""

    PERSON = "person"  # an active, human member
    UNKNOWN = "unknown"  # no such user in this workspace
    DEACTIVATED = "deactivated"
    BOT = "bot"
    UNREACHABLE = "unreachable"  # Slack could not be asked


class Directory(Protocol):
    """The workspace's own idea of its people (Slack's ``users.info``)."""

    def presence(self, user_id: str) -> Presence:
        """Whether ``user_id`` is an active person here; UNREACHABLE when Slack cannot be asked."""
        ...

    def is_workspace_admin(self, user_id: str) -> bool:
        """True for workspace admins and owners; False when unknown or unreachable."""
        ...

    def display_name(self, user_id: str) -> str | None:
        """The person's real name (else display or user name); None when unknown or unreachable."""
        ...


class NoDirectory:
    """No workspace to ask (the demo, some tests): nobody is a workspace admin or has a name."""

    def presence(self, user_id: str) -> Presence:
        return Presence.UNREACHABLE

    def is_workspace_admin(self, user_id: str) -> bool:
        return False

    def display_name(self, user_id: str) -> str | None:
        return None


class Roles:
    """Resolves a Slack user's role and answers "may they …?" with a reason when not."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        admins: frozenset[str],
        directory: Directory,
        pool_mode: Callable[[], str],
        clock: Callable[[], datetime],
        cache_for: timedelta = timedelta(minutes=5),
    ) -> None:
        self.sessions = sessions
        self.admins = admins
        self.directory = directory
        self.pool_mode = pool_mode
        self.clock = clock
        self.cache_for = cache_for
        self._workspace_admins: dict[str, tuple[bool, datetime]] = {}
        self._lock = threading.Lock()

    def role_of(self, user_id: str) -> Role:
        """The strongest role ``user_id`` has from any source."""
        if user_id in self.admins:
            return Role.ADMIN
        with self.sessions() as session:
            member = session.get(Member, user_id)
            stored = ROLE_NAMES.get(member.role, Role.MEMBER) if member else Role.MEMBER
        if stored is Role.ADMIN:
            return stored
        return Role.ADMIN if self._is_workspace_admin(user_id) else stored

    def _is_workspace_admin(self, user_id: str) -> bool:
        now = self.clock()
        with self._lock:
            cached = self._workspace_admins.get(user_id)
        if cached is not None and now < cached[1]:
            return cached[0]
        answer = self.directory.is_workspace_admin(user_id)
        with self._lock:
            self._workspace_admins[user_id] = (answer, now + self.cache_for)
        return answer

    def in_pool(self, user_id: str) -> bool:
        """Whether ``user_id`` may propose and vote under the current pool mode."""
        if self.pool_mode() != POOL_REGISTERED:
            return True
        with self.sessions() as session:
            member = session.get(Member, user_id)
            if member is not None and member.in_pool:
                return True
        # Moderators and admins answer in any mode: they are the ones who run the pool.
        return self.role_of(user_id) >= Role.MODERATOR

    def may_answer(self, user_id: str, action: str) -> str | None:
        """``None`` when ``user_id`` may propose or vote; else the refusal, already audited."""
        if self.in_pool(user_id):
            return None
        return self.refuse(
            user_id,
            action,
            "Answering is open to registered members only. Run `/care join` to read the "
            "answering guidelines and join the pool.",
            needed="pool",
        )

    def require(
        self, user_id: str, needed: Role, action: str, *, question_id: int | None = None
    ) -> str | None:
        """``None`` when ``user_id`` holds ``needed``; else the refusal, already audited."""
        return self.check(user_id, needed, action, question_id=question_id)[1]

    def check(
        self, user_id: str, needed: Role, action: str, *, question_id: int | None = None
    ) -> tuple[Role, str | None]:
        """``user_id``'s role, and the refusal (already audited) when it is less than ``needed``."""
        role = self.role_of(user_id)
        if role >= needed:
            return role, None
        return role, self.refuse(
            user_id,
            action,
            f"Only {needed.label}s can {action}; you are a {role.label}. "
            "Ask a crowdcare admin if you need this.",
            needed=needed.label,
            question_id=question_id,
        )

    def refuse(
        self,
        user_id: str,
        action: str,
        message: str,
        *,
        needed: str,
        question_id: int | None = None,
    ) -> str:
        """Audit a refusal and return ``message`` for the person."""
        with self.sessions.begin() as session:
            record(
                session,
                actor=user_id,
                action="permission.refused",
                question_id=question_id,
                now=self.clock(),
                detail={"attempted": action, "needed": needed},
            )
        log.info("Refused %s to %s (needs %s)", action, user_id, needed)
        return message
