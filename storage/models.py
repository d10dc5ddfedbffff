"""Typed SQLAlchemy 2.0 models. Unique constraints carry idempotency."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no zone, so store naive UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


class Customer(Base):
    """Someone who asked the brand a question on a social channel."""

    __tablename__ = "customers"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    handle: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime]


class Question(Base):
    """A customer's post, and where it is in the workflow."""

    __tablename__ = "questions"
    __table_args__ = (
        UniqueConstraint("channel", "external_id"),
        Index("ix_questions_state_received", "state", "received_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="mention")
    text: Mapped[str] = mapped_column(Text)
    post_url: Mapped[str] = mapped_column(String(300))
    conversation_id: Mapped[str | None] = mapped_column(String(64))
    asked_at: Mapped[datetime]
    # Indexed for the numbers: stats and export select the questions received in a period.
    received_at: Mapped[datetime] = mapped_column(index=True)
    state: Mapped[str] = mapped_column(String(16))
    card_channel: Mapped[str | None] = mapped_column(String(32))
    card_ts: Mapped[str | None] = mapped_column(String(32))
    card_attempts: Mapped[int] = mapped_column(Integer, default=0)
    # No foreign key: proposals already point at questions, and a cycle would need ALTER on SQLite.
    selected_proposal_id: Mapped[int | None]
    answered_at: Mapped[datetime | None]
    # Who answered when not through a voted proposal (a rep in the helpdesk, or "Answer now").
    answered_by: Mapped[str | None] = mapped_column(String(64))
    nudge_at: Mapped[datetime | None] = mapped_column(index=True)
    escalate_at: Mapped[datetime | None] = mapped_column(index=True)
    escalate_again_at: Mapped[datetime | None] = mapped_column(index=True)
    nudged_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]
    escalated_again_at: Mapped[datetime | None]
    escalation_channel: Mapped[str | None] = mapped_column(String(32))
    escalation_ts: Mapped[str | None] = mapped_column(String(32))
    # Chosen by the routing rules at intake, so later rule changes affect new questions only.
    route_channel: Mapped[str | None] = mapped_column(String(32))
    route_group: Mapped[str | None] = mapped_column(String(32))


class Proposal(Base):
    """An employee's proposed answer to a question."""

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    author_id: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="open")
    message_ts: Mapped[str | None] = mapped_column(String(32))
    # Appended to the public reply (e.g. "^JS" with CARE_SIGNATURE=initials); fixed at proposal
    # time so the length checked is the length sent.
    signature: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(index=True)  # leaderboard, active contributors


class Vote(Base):
    """One employee's vote for one proposal."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("proposal_id", "voter_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    proposal_id: Mapped[int] = mapped_column(ForeignKey("proposals.id"), index=True)
    voter_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(index=True)  # leaderboard, active contributors


class Reply(Base):
    """The outbox row for a public reply: written with the selection, sent afterwards."""

    __tablename__ = "replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique: a question can never have two public replies queued.
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), unique=True)
    proposal_id: Mapped[int | None] = mapped_column(ForeignKey("proposals.id"))
    channel: Mapped[str] = mapped_column(String(16))
    in_reply_to: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    external_id: Mapped[str | None] = mapped_column(String(64))
    url: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(index=True)  # leaderboard: answers sent


class AuditEvent(Base):
    """Who did what, when, to which question. Written in the same transaction as the change."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    question_id: Mapped[int | None] = mapped_column(ForeignKey("questions.id"), index=True)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProcessedSlackEvent(Base):
    """Slack retries events; the event id is the idempotency key."""

    __tablename__ = "processed_slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime]


class ChannelCursor(Base):
    """How far a social channel has been read, and when it may be polled next."""

    __tablename__ = "channel_cursors"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    since_id: Mapped[str | None] = mapped_column(String(64))
    next_poll_at: Mapped[datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]


class Notification(Base):
    """A Slack message the sweeper decided on (nudge, escalation): a row first, posted after."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("question_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"))
    kind: Mapped[str] = mapped_column(String(32))  # nudge | escalation | escalation_again
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    channel: Mapped[str | None] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]


class SupportEvent(Base):
    """The built-in support backend: every event on a case (a question), appended, never changed."""

    __tablename__ = "support_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    type: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]


class Delivery(Base):
    """One support event on its way to one connector (webhook, zendesk): an outbox row."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "connector"),
        Index("ix_deliveries_due", "connector", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("support_events.id"))
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"), index=True)
    connector: Mapped[str] = mapped_column(String(16))
    # Indexed for the stats' backlog, which counts waiting deliveries of every connector.
    state: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime]


class ExternalRef(Base):
    """A case's id in an outside system (e.g. its Zendesk ticket)."""

    __tablename__ = "external_refs"
    __table_args__ = (UniqueConstraint("question_id", "connector"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    question_id: Mapped[int] = mapped_column(ForeignKey("questions.id"))
    connector: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class ConnectorState(Base):
    """When a connector was first enabled: events before that are not sent to it."""

    __tablename__ = "connector_states"

    connector: Mapped[str] = mapped_column(String(16), primary_key=True)
    enabled_at: Mapped[datetime]
    first_event_id: Mapped[int] = mapped_column(Integer, default=0)


def utcnow() -> datetime:
    """The current time, aware UTC."""
    return datetime.now(UTC)


class Member(Base):
    """What crowdcare knows about an employee beyond their Slack id: role and pool membership."""

    __tablename__ = "members"

    user_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), default="member")  # member | moderator | admin
    in_pool: Mapped[bool] = mapped_column(default=False)  # may answer when CARE_POOL=registered
    guidelines_version: Mapped[str | None] = mapped_column(String(64))  # the version accepted
    joined_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Setting(Base):
    """A workflow setting changed with `/care config`; it wins over the environment."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class Route(Base):
    """A routing rule: questions whose text matches go to ``channel`` (rules apply in id order)."""

    __tablename__ = "routes"

    id: Mapped[int] = mapped_column(primary_key=True)
    pattern: Mapped[str] = mapped_column(String(200))
    is_regex: Mapped[bool] = mapped_column(default=False)
    channel: Mapped[str] = mapped_column(String(32))
    mention_group: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class WeeklySummary(Base):
    """One row per ISO week: inserting it claims the week's summary, so it is posted once."""

    __tablename__ = "weekly_summaries"

    week: Mapped[str] = mapped_column(String(10), primary_key=True)  # e.g. 2026-W47
    channel: Mapped[str] = mapped_column(String(32))
    ts: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime]
    posted_at: Mapped[datetime | None]


class ApiQuota(Base):
    """An outside API's request quota as its last answer reported it (X's x-rate-limit-*)."""

    __tablename__ = "api_quotas"

    channel: Mapped[str] = mapped_column(String(16), primary_key=True)
    endpoint: Mapped[str] = mapped_column(String(32), primary_key=True)  # mentions | post
    limit: Mapped[int]
    remaining: Mapped[int]
    reset_at: Mapped[datetime]
    updated_at: Mapped[datetime]
