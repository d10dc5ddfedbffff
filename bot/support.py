"""The support backend: every event on a case, kept here and relayed to outside systems.

A *case* is a question. :func:`emit` appends a :class:`~storage.models.SupportEvent` in the
caller's transaction, so the event commits together with the change it describes (the built-in
backend can never miss one). Outside systems (a signed webhook, Zendesk, …) are *connectors*; they
get events through an outbox:

1. :func:`plan_deliveries` turns new events into one ``pending`` :class:`~storage.models.Delivery`
   per enabled connector (idempotent: the unique ``(event_id, connector)`` makes reruns and races
   harmless).
2. :func:`deliver_due` claims due deliveries under a lease (``FOR UPDATE SKIP LOCKED``, so several
   workers can run at once), hands each to its connector, and records the outcome, fenced by the
   attempt number it claimed (like :mod:`bot.outbox`). A connector that is down is retried with
   capped exponential backoff, forever: an event is never dropped because a backend was away.

Events of one case reach a connector in order: a delivery waits while an earlier delivery of the
same case to the same connector is still pending or being sent (so a ticket exists before its
comments arrive). A delivery that failed for good does not block the ones after it. (On
PostgreSQL an id is taken before its transaction commits: two events of one case emitted by
*concurrent* transactions can be planned, and so delivered, in commit order instead.)

Delivery is at least once: when an answer is lost the event is sent again, with the same event
id, and connectors make that harmless (the webhook's ``Idempotency-Key``, Zendesk's markers).

Event data by type (free-form JSON; these keys are what the connectors render when present):

* ``question.received``: ``{}``
* ``proposal.created``: ``{"proposal_id", "author", "text"}``
* ``vote.cast``: ``{"proposal_id", "voter", "votes"}`` (``votes``: the proposal's new total)
* ``question.selected``: ``{"proposal_id", "by", "votes", "text"}``
* ``reply.sent``: ``{"external_id", "url", "text"}``
* ``question.escalated``: ``{"level", "reason"}``
* ``question.closed``: ``{"by", "reason", "state"}`` (``state``: ``closed`` or ``ignored``)
* ``question.solved_elsewhere``: ``{"by", "note"}``
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, aliased, sessionmaker

from bot.backoff import backoff
from bot.states import record
from storage.db import insert_ignoring_duplicates
from storage.models import (
    ConnectorState,
    Customer,
    Delivery,
    ExternalRef,
    Question,
    SupportEvent,
)

log = logging.getLogger(__name__)

EVENT_TYPES = frozenset(
    {
        "question.received",
        "proposal.created",
        "vote.cast",
        "question.selected",
        "reply.sent",
        "question.escalated",
        "question.closed",
        "question.solved_elsewhere",
    }
)

SYSTEM = "crowdcare"
FIRST_BACKOFF = timedelta(seconds=5)
MAX_BACKOFF = timedelta(minutes=15)
#: The latest a backend's own ``Retry-After`` may push a retry (guards against absurd values).
MAX_RETRY_AFTER = timedelta(hours=1)
MAX_ERROR_LENGTH = 1000
MAX_CONNECTOR_NAME = 16

PENDING = "pending"
SENDING = "sending"
SENT = "sent"
SKIPPED = "skipped"
FAILED = "failed"
#: States in which a delivery still has to happen (and blocks later events of its case).
OPEN_STATES = (PENDING, SENDING)


# -- the built-in backend ---------------------------------------------------------------------


def emit(
    session: Session, *, question_id: int, type: str, data: dict[str, Any], now: datetime
) -> SupportEvent:
    """Append an event on case ``question_id`` in the caller's transaction."""
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown support event type {type!r}; use one of {sorted(EVENT_TYPES)}")
    event = SupportEvent(question_id=question_id, type=type, data=dict(data), created_at=now)
    session.add(event)
    session.flush()  # the id orders events and names the delivery
    return event


# -- what connectors see ----------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSummary:
    """The case an event is about, as it stands when the event is delivered."""

    case_id: int
    channel: str
    customer_handle: str
    customer_name: str
    text: str
    post_url: str
    state: str


@dataclass(frozen=True)
class EventEnvelope:
    """One event on its way to one connector."""

    event_id: int
    type: str
    created_at: datetime
    case: CaseSummary
    data: dict[str, Any]
    external_id: str | None  # this connector's id for the case (e.g. its ticket), if any
    attempt: int  # 1 on the first try; more means an earlier attempt's fate is unknown


@dataclass(frozen=True)
class DeliveryResult:
    """What a connector did with an event.

    ``external_id``: the case's id in the outside system, to remember (e.g. the ticket just
    created). ``skipped``: nothing to send for this event (e.g. Zendesk before the ticket exists).
    """

    external_id: str | None = None
    skipped: bool = False


class ConnectorError(Exception):
    """A connector could not deliver. ``retryable`` failures are tried again later, at
    ``retry_at`` when the backend said when (``Retry-After``); others fail the delivery."""

    def __init__(self, message: str, *, retryable: bool, retry_at: datetime | None = None) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_at = retry_at


class Connector(Protocol):
    """An outside system that receives support events."""

    name: str

    def deliver(self, event: EventEnvelope) -> DeliveryResult:
        """Send one event; raise :class:`ConnectorError` when that failed."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


# -- helpers for connectors (no HTTP here, just the shared rules) -------------------------------


def retryable_status(status: int) -> bool:
    """Whether an HTTP status means "try again later": timeouts, rate limits, server errors."""
    return status in (408, 429) or status >= 500


def retry_at_from_header(value: str | None, now: datetime) -> datetime | None:
    """When a ``Retry-After`` header (seconds or an HTTP date) allows the next attempt."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return now + timedelta(seconds=int(value))
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000" dates: UTC by RFC 5322
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every (non-empty) secret replaced, for error messages and logs."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "[REDACTED]")
    return text


# -- planning ---------------------------------------------------------------------------------


def plan_deliveries(
    sessions: sessionmaker[Session],
    connector_names: Sequence[str],
    *,
    now: datetime,
    batch: int = 500,
) -> int:
    """Queue every new event for every connector in ``connector_names``; return rows created."""
    created = 0
    for name in connector_names:
        if not name or len(name) > MAX_CONNECTOR_NAME:
            raise ValueError(f"connector name {name!r} must be 1-{MAX_CONNECTOR_NAME} characters")
        first_event_id = enable(sessions, name, now)
        while True:
            with sessions.begin() as session:
                already = exists().where(
                    Delivery.event_id == SupportEvent.id, Delivery.connector == name
                )
                events = session.execute(
                    select(SupportEvent.id, SupportEvent.question_id)
                    .where(SupportEvent.id >= first_event_id, ~already)
                    .order_by(SupportEvent.id)
                    .limit(batch)
                ).all()
                if events:
                    rows = [
                        {
                            "event_id": event_id,
                            "question_id": question_id,
                            "connector": name,
                            "state": PENDING,
                            "attempts": 0,
                            "next_attempt_at": now,
                            "created_at": now,
                        }
                        for event_id, question_id in events
                    ]
                    # Another planner may insert the same rows meanwhile: the unique
                    # (event_id, connector) turns that race into a no-op.
                    created += _insert_ignoring_duplicates(session, Delivery, rows, Delivery.id)
            if len(events) < batch:
                break
    return created


def enable(sessions: sessionmaker[Session], name: str, now: datetime) -> int:
    """The first event id ``name`` receives, recording it when the connector is new.

    The app calls this at start-up, before any job runs: enabling lazily on the first delivery
    round would let a question taken in meanwhile fall into "history" and never be sent.
    """
    with sessions.begin() as session:
        state = session.get(ConnectorState, name)
        if state is None:
            # A connector enabled now starts with the next event: the events stored before it
            # was enabled (possibly years of history) are NOT sent to it. Backfilling them would
            # flood the new backend; they stay available in the built-in backend.
            last = session.scalar(select(func.max(SupportEvent.id))) or 0
            inserted = _insert_ignoring_duplicates(
                session,
                ConnectorState,
                [{"connector": name, "enabled_at": now, "first_event_id": last + 1}],
                ConnectorState.connector,
            )
            if inserted:
                log.info("Support connector %s enabled from event %d on", name, last + 1)
            # Whoever won a concurrent first sight, everyone now reads the same row.
            state = session.get_one(ConnectorState, name, populate_existing=True)
        return state.first_event_id


def _insert_ignoring_duplicates(
    session: Session,
    model: type[Delivery] | type[ConnectorState],
    rows: list[dict[str, Any]],
    key: InstrumentedAttribute[Any],
) -> int:
    """INSERT … ON CONFLICT DO NOTHING; the number of rows really inserted.

    Counted with RETURNING ``key``: the driver's rowcount is not reliable for this statement.
    """
    statement = insert_ignoring_duplicates(session, model, rows)
    return len(session.execute(statement.returning(key)).all())


# -- delivering -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryReport:
    """The fate of one delivery after an attempt."""

    delivery_id: int
    event_id: int
    question_id: int
    connector: str
    state: str
    attempt: int
    error: str | None = None
    #: Another worker took the delivery over (this one outlived its lease): nothing recorded.
    superseded: bool = False


@dataclass(frozen=True)
class _Claim:
    """A worker's hold on a delivery: the attempt number it claimed is its fencing token."""

    delivery_id: int
    attempt: int
    envelope: EventEnvelope
    lease_until: datetime


def deliver_due(
    sessions: sessionmaker[Session],
    connector: Connector,
    *,
    clock: Callable[[], datetime],
    lease: timedelta,
    batch: int = 50,
) -> list[DeliveryReport]:
    """Deliver up to ``batch`` due events to ``connector``, oldest first.

    Each round claims the due head of every case (one delivery per case), then sends the claimed
    ones in event order; rounds repeat while there is work, so a case's later events follow
    within the same call once their predecessors are done. Choose ``lease`` longer than a send
    can take (the connector's timeout, several requests for Zendesk): a claim whose lease has run
    out before its turn is left to be claimed again rather than sent.
    """
    reports: list[DeliveryReport] = []
    while len(reports) < batch:
        claims = _claim(
            sessions, connector.name, now=clock(), lease=lease, limit=batch - len(reports)
        )
        if not claims:
            break
        for claim in claims:
            reports.append(_deliver_one(sessions, connector, claim, clock))
    return reports


def _claim(
    sessions: sessionmaker[Session], name: str, *, now: datetime, lease: timedelta, limit: int
) -> list[_Claim]:
    """Mark the due, unblocked deliveries of ``name`` as ``sending`` under a lease."""
    earlier = aliased(Delivery)
    blocked = exists().where(
        earlier.connector == Delivery.connector,
        earlier.question_id == Delivery.question_id,
        earlier.event_id < Delivery.event_id,
        earlier.state.in_(OPEN_STATES),
    )
    due = (
        select(Delivery)
        .where(
            Delivery.connector == name,
            or_(Delivery.state == PENDING, Delivery.state == SENDING),
            Delivery.next_attempt_at <= now,
            ~blocked,
        )
        .order_by(Delivery.event_id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Delivery)
    )
    with sessions.begin() as session:
        deliveries = list(session.scalars(due))
        if not deliveries:
            return []
        for delivery in deliveries:
            if delivery.state == SENDING:
                log.warning(
                    "Delivery %s of event %s to %s was left sending (a worker died?); retrying",
                    delivery.id,
                    delivery.event_id,
                    name,
                )
            delivery.state = SENDING
            delivery.attempts += 1
            delivery.next_attempt_at = now + lease
        envelopes = _envelopes(session, name, deliveries)
        return [
            _Claim(delivery.id, delivery.attempts, envelopes[delivery.id], now + lease)
            for delivery in deliveries
        ]


def _envelopes(session: Session, name: str, deliveries: list[Delivery]) -> dict[int, EventEnvelope]:
    event_ids = [delivery.event_id for delivery in deliveries]
    rows = session.execute(
        select(SupportEvent, Question, Customer)
        .join(Question, Question.id == SupportEvent.question_id)
        .join(Customer, Customer.id == Question.customer_id)
        .where(SupportEvent.id.in_(event_ids))
    ).all()
    by_event = {event.id: (event, question, customer) for event, question, customer in rows}
    refs = dict(
        session.execute(
            select(ExternalRef.question_id, ExternalRef.external_id).where(
                ExternalRef.connector == name,
                ExternalRef.question_id.in_({delivery.question_id for delivery in deliveries}),
            )
        ).all()
    )
    envelopes = {}
    for delivery in deliveries:
        event, question, customer = by_event[delivery.event_id]
        envelopes[delivery.id] = EventEnvelope(
            event_id=event.id,
            type=event.type,
            created_at=event.created_at,
            case=CaseSummary(
                case_id=question.id,
                channel=question.channel,
                customer_handle=customer.handle,
                customer_name=customer.name,
                text=question.text,
                post_url=question.post_url,
                state=question.state,
            ),
            data=dict(event.data),
            external_id=refs.get(question.id),
            attempt=delivery.attempts,
        )
    return envelopes


def _deliver_one(
    sessions: sessionmaker[Session],
    connector: Connector,
    claim: _Claim,
    clock: Callable[[], datetime],
) -> DeliveryReport:
    envelope = claim.envelope
    if clock() >= claim.lease_until:
        # Earlier sends of this round took the whole lease: another worker may own it by now.
        log.warning("Lease on delivery %s ran out before its turn; leaving it", claim.delivery_id)
        return DeliveryReport(
            claim.delivery_id,
            envelope.event_id,
            envelope.case.case_id,
            connector.name,
            SENDING,
            claim.attempt,
            "lease expired before sending",
        )
    try:
        result = connector.deliver(envelope)
    except ConnectorError as exc:
        if exc.retryable:
            return _retry_later(sessions, connector.name, claim, str(exc), exc.retry_at, clock())
        return _fail(sessions, connector.name, claim, str(exc), clock())
    except Exception as exc:
        # A bug or an unforeseen error in a connector must not lose the event: retry it.
        log.exception("Connector %s crashed on event %s", connector.name, envelope.event_id)
        error = f"unexpected {type(exc).__name__}: {exc}"
        return _retry_later(sessions, connector.name, claim, error, None, clock())
    return _done(sessions, connector.name, claim, result, clock())


def _owned(session: Session, claim: _Claim) -> tuple[Delivery, bool]:
    """The delivery, locked, and whether this claim still holds it.

    A worker that outlived its lease may find the row re-claimed (or already done) by another;
    then its outcome is stale and must change nothing.
    """
    delivery = session.scalars(
        select(Delivery)
        .where(Delivery.id == claim.delivery_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return delivery, delivery.state == SENDING and delivery.attempts == claim.attempt


def _report(delivery: Delivery, claim: _Claim, *, superseded: bool = False) -> DeliveryReport:
    return DeliveryReport(
        delivery.id,
        delivery.event_id,
        delivery.question_id,
        delivery.connector,
        delivery.state,
        claim.attempt,
        delivery.last_error,
        superseded,
    )


def _superseded(delivery: Delivery, claim: _Claim) -> DeliveryReport:
    log.warning(
        "Delivery %s (attempt %d) was taken over by another worker; leaving it to them",
        delivery.id,
        claim.attempt,
    )
    return _report(delivery, claim, superseded=True)


def _audit(
    session: Session,
    delivery: Delivery,
    claim: _Claim,
    action: str,
    now: datetime,
    **extra: Any,
) -> None:
    record(
        session,
        actor=SYSTEM,
        action=action,
        question_id=delivery.question_id,
        now=now,
        detail={
            "connector": delivery.connector,
            "event_id": delivery.event_id,
            "event_type": claim.envelope.type,
            "delivery_id": delivery.id,
            "attempt": claim.attempt,
            **extra,
        },
    )


def _done(
    sessions: sessionmaker[Session],
    name: str,
    claim: _Claim,
    result: DeliveryResult,
    now: datetime,
) -> DeliveryReport:
    with sessions.begin() as session:
        delivery, owned = _owned(session, claim)
        if not owned:
            return _superseded(delivery, claim)
        delivery.last_error = None
        if result.external_id is not None:
            _remember_ref(session, delivery, result.external_id, now)
        if result.skipped:
            delivery.state = SKIPPED
            _audit(session, delivery, claim, "delivery.skipped", now)
        else:
            delivery.state = SENT
            delivery.delivered_at = now
            extra = {} if result.external_id is None else {"external_id": result.external_id}
            _audit(session, delivery, claim, "delivery.sent", now, **extra)
        log.info("Event %s %s to %s", delivery.event_id, delivery.state, name)
        return _report(delivery, claim)


def _remember_ref(session: Session, delivery: Delivery, external_id: str, now: datetime) -> None:
    ref = session.scalar(
        select(ExternalRef).where(
            ExternalRef.question_id == delivery.question_id,
            ExternalRef.connector == delivery.connector,
        )
    )
    if ref is None:
        session.add(
            ExternalRef(
                question_id=delivery.question_id,
                connector=delivery.connector,
                external_id=external_id,
                created_at=now,
            )
        )
    elif ref.external_id != external_id:
        log.warning(
            "Case %s is now %s in %s (was %s)",
            delivery.question_id,
            external_id,
            delivery.connector,
            ref.external_id,
        )
        ref.external_id = external_id


def _retry_later(  # noqa: PLR0917 - private, called from one place
    sessions: sessionmaker[Session],
    name: str,
    claim: _Claim,
    error: str,
    retry_at: datetime | None,
    now: datetime,
) -> DeliveryReport:
    with sessions.begin() as session:
        delivery, owned = _owned(session, claim)
        if not owned:
            return _superseded(delivery, claim)
        if retry_at is not None:
            when = min(max(retry_at, now + FIRST_BACKOFF), now + MAX_RETRY_AFTER)
        else:
            when = now + backoff(FIRST_BACKOFF, delivery.attempts - 1, MAX_BACKOFF)
        delivery.state = PENDING
        delivery.next_attempt_at = when
        delivery.last_error = error[:MAX_ERROR_LENGTH]
        _audit(
            session,
            delivery,
            claim,
            "delivery.retry_scheduled",
            now,
            error=delivery.last_error,
            at=when.isoformat(),
        )
        log.warning(
            "Event %s not delivered to %s (%s); retrying at %s",
            delivery.event_id,
            name,
            error,
            when.isoformat(),
        )
        return _report(delivery, claim)


def _fail(
    sessions: sessionmaker[Session], name: str, claim: _Claim, error: str, now: datetime
) -> DeliveryReport:
    with sessions.begin() as session:
        delivery, owned = _owned(session, claim)
        if not owned:
            return _superseded(delivery, claim)
        delivery.state = FAILED
        delivery.last_error = error[:MAX_ERROR_LENGTH]
        _audit(session, delivery, claim, "delivery.failed", now, error=delivery.last_error)
        log.error("Event %s refused by %s for good: %s", delivery.event_id, name, error)
        return _report(delivery, claim)


# -- observing --------------------------------------------------------------------------------


def backlog(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Deliveries still to happen (pending or being sent), per known connector."""
    with sessions.begin() as session:
        counts: dict[str, int] = dict.fromkeys(session.scalars(select(ConnectorState.connector)), 0)
        rows: Mapping[str, int] = dict(
            session.execute(
                select(Delivery.connector, func.count())
                .where(Delivery.state.in_(OPEN_STATES))
                .group_by(Delivery.connector)
            ).all()
        )
        counts.update(rows)
        return counts
