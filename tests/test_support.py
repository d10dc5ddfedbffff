"""The support backend on a real database, relaying to the real connectors and their stand-ins.

Events are appended per case, planned once per enabled connector, and delivered in order per case,
retried with backoff while a backend is down, never lost and never applied twice by the backends.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.connectors.webhook import WebhookConnector
from bot.connectors.zendesk import ZendeskConnector
from bot.support import (
    FIRST_BACKOFF,
    MAX_BACKOFF,
    Connector,
    DeliveryReport,
    DeliveryResult,
    EventEnvelope,
    backlog,
    deliver_due,
    emit,
    plan_deliveries,
)
from storage.models import AuditEvent, ConnectorState, Delivery, ExternalRef, SupportEvent
from tests.dbhelpers import T0, Clock, count, make_question, migrated_sessions
from tests.standins.fake_webhook import FakeWebhookReceiver
from tests.standins.fake_zendesk import FakeZendesk

LEASE = timedelta(seconds=60)
SECRET = "whsec-support-0123456789"
ZD_EMAIL = "care-bot@acme.test"
ZD_TOKEN = "zd-token-support-0123"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    with FakeWebhookReceiver(SECRET) as fake:
        yield fake


@pytest.fixture
def webhook(receiver: FakeWebhookReceiver) -> Iterator[WebhookConnector]:
    with WebhookConnector(receiver.url, SECRET, timeout=0.5) as connector:
        yield connector


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    with FakeZendesk(ZD_EMAIL, ZD_TOKEN) as fake:
        yield fake


@pytest.fixture
def zd(zendesk: FakeZendesk) -> Iterator[ZendeskConnector]:
    with ZendeskConnector(
        subdomain="acme",
        email=ZD_EMAIL,
        api_token=ZD_TOKEN,
        api_url=zendesk.base_url,
        timeout=0.5,
    ) as connector:
        yield connector


# -- helpers ----------------------------------------------------------------------------------


def new_case(
    sessions: sessionmaker[Session],
    clock: Clock,
    *,
    handle: str = "maria_k",
    text: str = "@AcmeHelp my order #123 hasn't arrived",
) -> int:
    """A question, and its ``question.received`` event; returns the case id."""
    with sessions.begin() as session:
        question = make_question(session, customer_handle=handle, text=text, now=clock())
        emit(session, question_id=question.id, type="question.received", data={}, now=clock())
        return question.id


def add_event(
    sessions: sessionmaker[Session], clock: Clock, case_id: int, type: str, **data: Any
) -> int:
    with sessions.begin() as session:
        return emit(session, question_id=case_id, type=type, data=data, now=clock()).id


def enable(sessions: sessionmaker[Session], clock: Clock, *names: str) -> None:
    """First sight of the connectors: they get the events stored from now on."""
    plan_deliveries(sessions, names, now=clock())


def deliveries(sessions: sessionmaker[Session], connector: str) -> list[Delivery]:
    with sessions.begin() as session:
        return list(
            session.scalars(
                select(Delivery).where(Delivery.connector == connector).order_by(Delivery.event_id)
            )
        )


def delivery_of(sessions: sessionmaker[Session], event_id: int, connector: str) -> Delivery:
    with sessions.begin() as session:
        return session.scalars(
            select(Delivery).where(Delivery.event_id == event_id, Delivery.connector == connector)
        ).one()


def delivery_audit(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions.begin() as session:
        return list(
            session.scalars(
                select(AuditEvent)
                .where(AuditEvent.action.startswith("delivery."))
                .order_by(AuditEvent.id)
            )
        )


def run(
    sessions: sessionmaker[Session], connector: Connector, clock: Clock, **options: Any
) -> list[DeliveryReport]:
    return deliver_due(sessions, connector, clock=clock, lease=LEASE, **options)


def keys(requests: list[Any]) -> list[str | None]:
    return [request.key for request in requests]


# -- the built-in backend ---------------------------------------------------------------------


def test_emit_appends_the_events_of_a_case_in_order(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    case_id = new_case(sessions, clock)
    clock.advance(minutes=1)
    proposal = add_event(
        sessions, clock, case_id, "proposal.created", proposal_id=1, author="alice", text="DM us"
    )
    clock.advance(minutes=1)
    vote = add_event(sessions, clock, case_id, "vote.cast", proposal_id=1, voter="bob", votes=1)

    with sessions.begin() as session:
        events = list(session.scalars(select(SupportEvent).order_by(SupportEvent.id)))
    assert [(e.type, e.question_id, e.created_at) for e in events] == [
        ("question.received", case_id, T0),
        ("proposal.created", case_id, T0 + timedelta(minutes=1)),
        ("vote.cast", case_id, T0 + timedelta(minutes=2)),
    ]
    assert [e.id for e in events][1:] == [proposal, vote]
    assert events[1].data == {"proposal_id": 1, "author": "alice", "text": "DM us"}


def test_emit_refuses_an_unknown_event_type(sessions: sessionmaker[Session], clock: Clock) -> None:
    case_id = new_case(sessions, clock)

    with pytest.raises(ValueError, match=r"question\.deleted"), sessions.begin() as session:
        emit(session, question_id=case_id, type="question.deleted", data={}, now=clock())

    with sessions.begin() as session:
        assert count(session, SupportEvent) == 1


def test_emit_belongs_to_the_callers_transaction(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    case_id = new_case(sessions, clock)

    def vote_that_fails() -> None:
        with sessions.begin() as session:
            emit(session, question_id=case_id, type="vote.cast", data={"votes": 1}, now=clock())
            raise RuntimeError("the vote itself failed")

    with pytest.raises(RuntimeError):
        vote_that_fails()

    with sessions.begin() as session:
        assert count(session, SupportEvent) == 1  # only question.received


# -- planning ---------------------------------------------------------------------------------


def test_plan_queues_every_new_event_once_per_connector(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    enable(sessions, clock, "webhook", "zendesk")
    first = new_case(sessions, clock)
    second = new_case(sessions, clock, handle="tom_r")
    add_event(sessions, clock, first, "question.escalated", level=1)

    assert plan_deliveries(sessions, ["webhook", "zendesk"], now=clock()) == 6
    assert plan_deliveries(sessions, ["webhook", "zendesk"], now=clock()) == 0

    for name in ("webhook", "zendesk"):
        rows = deliveries(sessions, name)
        assert [(d.question_id, d.state, d.attempts) for d in rows] == [
            (first, "pending", 0),
            (second, "pending", 0),
            (first, "pending", 0),
        ]
        assert all(d.next_attempt_at == T0 for d in rows)


def test_a_connector_enabled_later_does_not_get_older_events(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    enable(sessions, clock, "webhook")
    case_id = new_case(sessions, clock)
    old = add_event(sessions, clock, case_id, "proposal.created", text="hi")
    clock.advance(hours=1)

    assert plan_deliveries(sessions, ["webhook", "zendesk"], now=clock()) == 2  # webhook only
    new = add_event(sessions, clock, case_id, "question.escalated")
    assert plan_deliveries(sessions, ["webhook", "zendesk"], now=clock()) == 2

    assert [d.event_id for d in deliveries(sessions, "zendesk")] == [new]
    assert [d.event_id for d in deliveries(sessions, "webhook")] == [old - 1, old, new]
    with sessions.begin() as session:
        state = session.get_one(ConnectorState, "zendesk")
        assert (state.enabled_at, state.first_event_id) == (T0 + timedelta(hours=1), old + 1)


def test_a_connector_enabled_on_an_empty_backend_starts_with_the_first_event(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    assert plan_deliveries(sessions, ["webhook"], now=clock()) == 0
    new_case(sessions, clock)

    assert plan_deliveries(sessions, ["webhook"], now=clock()) == 1
    with sessions.begin() as session:
        assert session.get_one(ConnectorState, "webhook").first_event_id == 1


def test_plan_works_through_a_large_backlog_in_batches(
    sessions: sessionmaker[Session], clock: Clock
) -> None:
    enable(sessions, clock, "webhook")
    case_id = new_case(sessions, clock)
    for votes in range(1, 7):
        add_event(sessions, clock, case_id, "vote.cast", votes=votes)

    assert plan_deliveries(sessions, ["webhook"], now=clock(), batch=2) == 7
    assert len(deliveries(sessions, "webhook")) == 7


def test_plan_refuses_a_name_the_table_cannot_hold(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(ValueError, match="connector name"):
        plan_deliveries(sessions, ["a-very-long-connector-name"], now=T0)


# -- delivering: webhook ----------------------------------------------------------------------


def test_events_reach_the_webhook_in_order_once_each(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    maria = new_case(sessions, clock)
    tom = new_case(sessions, clock, handle="tom_r", text="@AcmeHelp refund?")
    proposal = add_event(sessions, clock, maria, "proposal.created", author="alice", text="DM us")
    vote = add_event(sessions, clock, maria, "vote.cast", voter="bob", votes=1)
    plan_deliveries(sessions, ["webhook"], now=clock())

    reports = run(sessions, webhook, clock)

    assert [(r.event_id, r.state, r.attempt) for r in reports] == [
        (1, "sent", 1),  # maria's question
        (2, "sent", 1),  # tom's question
        (proposal, "sent", 1),
        (vote, "sent", 1),
    ]
    received = receiver.received()
    assert keys(received) == ["evt_1", "evt_2", f"evt_{proposal}", f"evt_{vote}"]
    assert [r.json["case"]["id"] for r in received] == [maria, tom, maria, maria]
    assert [r.json["type"] for r in received] == [
        "question.received",
        "question.received",
        "proposal.created",
        "vote.cast",
    ]
    assert received[1].json["case"]["customer"]["handle"] == "tom_r"
    assert all(d.state == "sent" and d.delivered_at == T0 for d in deliveries(sessions, "webhook"))
    assert backlog(sessions) == {"webhook": 0}
    assert run(sessions, webhook, clock) == []
    assert len(receiver.requests) == 4

    audit = delivery_audit(sessions)
    assert [a.action for a in audit] == ["delivery.sent"] * 4
    assert audit[2].question_id == maria
    assert audit[2].detail == {
        "connector": "webhook",
        "event_id": proposal,
        "event_type": "proposal.created",
        "delivery_id": audit[2].detail["delivery_id"],
        "attempt": 1,
    }


def test_a_case_waits_for_its_earlier_event_while_others_go_ahead(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    maria = new_case(sessions, clock)  # event 1: refused once below
    maria_vote = add_event(sessions, clock, maria, "vote.cast", votes=1)
    tom = new_case(sessions, clock, handle="tom_r")
    tom_vote = add_event(sessions, clock, tom, "vote.cast", votes=1)
    plan_deliveries(sessions, ["webhook"], now=clock())
    receiver.fail(503)

    reports = run(sessions, webhook, clock)

    assert [(r.event_id, r.state) for r in reports] == [
        (1, "pending"),
        (tom_vote - 1, "sent"),
        (tom_vote, "sent"),
    ]
    assert delivery_of(sessions, maria_vote, "webhook").state == "pending"
    assert delivery_of(sessions, maria_vote, "webhook").attempts == 0  # never tried: blocked
    assert keys(receiver.received()) == [f"evt_{tom_vote - 1}", f"evt_{tom_vote}"]

    clock.advance(FIRST_BACKOFF)
    reports = run(sessions, webhook, clock)

    assert [(r.event_id, r.state, r.attempt) for r in reports] == [
        (1, "sent", 2),
        (maria_vote, "sent", 1),
    ]
    assert keys(receiver.received())[-2:] == ["evt_1", f"evt_{maria_vote}"]


def test_server_errors_are_retried_with_capped_backoff_until_delivered(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    new_case(sessions, clock)
    plan_deliveries(sessions, ["webhook"], now=clock())
    receiver.fail(500, times=10)

    waits = []
    for attempt in range(1, 11):
        [report] = run(sessions, webhook, clock)
        assert (report.state, report.attempt) == ("pending", attempt)
        assert "answered 500 to evt_1" in (report.error or "")
        assert run(sessions, webhook, clock) == []  # not due yet: no hammering
        due = delivery_of(sessions, 1, "webhook").next_attempt_at
        waits.append(due - clock())
        clock.set(due)

    assert waits == [min(FIRST_BACKOFF * 2**n, MAX_BACKOFF) for n in range(10)]
    assert waits[-1] == MAX_BACKOFF
    assert receiver.received() == []

    [report] = run(sessions, webhook, clock)

    assert (report.state, report.attempt, report.error) == ("sent", 11, None)
    assert keys(receiver.received()) == ["evt_1"]
    audit = delivery_audit(sessions)
    assert [a.action for a in audit] == ["delivery.retry_scheduled"] * 10 + ["delivery.sent"]
    assert (
        audit[0].detail["error"] == 'webhook answered 500 to evt_1: {"error": "injected failure"}'
    )
    assert audit[0].detail["at"] == (T0 + FIRST_BACKOFF).isoformat()
    assert delivery_of(sessions, 1, "webhook").last_error is None


def test_a_timeout_is_retried_and_the_event_delivered_once(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    new_case(sessions, clock)
    plan_deliveries(sessions, ["webhook"], now=clock())
    receiver.hang(seconds=60)  # longer than the connector waits; dropped when the test ends

    [report] = run(sessions, webhook, clock)
    assert report.state == "pending"
    assert "did not answer evt_1 within 0.5s" in (report.error or "")

    clock.advance(FIRST_BACKOFF)
    [report] = run(sessions, webhook, clock)

    assert (report.state, report.attempt) == ("sent", 2)
    assert keys(receiver.received()) == ["evt_1"]


def test_a_lost_answer_redelivers_the_event_with_the_same_idempotency_key(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    case_id = new_case(sessions, clock)
    plan_deliveries(sessions, ["webhook"], now=clock())
    receiver.lose_response()

    [report] = run(sessions, webhook, clock)
    assert report.state == "pending"
    clock.advance(FIRST_BACKOFF)
    [report] = run(sessions, webhook, clock)
    assert report.state == "sent"

    first, second = receiver.received()
    # At least once: the receiver saw the event twice, with one key to drop the repeat by.
    assert first.key == second.key == "evt_1"
    assert first.json == second.json
    assert first.json["id"] == "evt_1"
    assert first.json["case"]["id"] == case_id
    assert (
        first.headers["x-crowdcare-delivery-attempt"],
        second.headers["x-crowdcare-delivery-attempt"],
    ) == ("1", "2")


def test_retry_after_from_the_backend_is_honoured(
    sessions: sessionmaker[Session], receiver: FakeWebhookReceiver, webhook: WebhookConnector
) -> None:
    clock = Clock(datetime.now(UTC))  # Retry-After is measured on the real clock
    enable(sessions, clock, "webhook")
    new_case(sessions, clock)
    plan_deliveries(sessions, ["webhook"], now=clock())
    receiver.fail(429, retry_after="600")

    [report] = run(sessions, webhook, clock)

    due = delivery_of(sessions, 1, "webhook").next_attempt_at
    assert report.state == "pending"
    assert due >= clock() + timedelta(seconds=600)
    assert due <= datetime.now(UTC) + timedelta(seconds=600)
    clock.set(due - timedelta(seconds=1))
    assert run(sessions, webhook, clock) == []
    clock.set(due)
    assert [r.state for r in run(sessions, webhook, clock)] == ["sent"]


def test_a_permanent_refusal_fails_the_delivery_audits_it_and_unblocks_the_case(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    case_id = new_case(sessions, clock)
    vote = add_event(sessions, clock, case_id, "vote.cast", votes=1)
    plan_deliveries(sessions, ["webhook"], now=clock())
    receiver.fail(400)

    reports = run(sessions, webhook, clock)

    assert [(r.event_id, r.state) for r in reports] == [(1, "failed"), (vote, "sent")]
    failed = delivery_of(sessions, 1, "webhook")
    assert failed.state == "failed"
    assert failed.last_error is not None
    assert failed.last_error.startswith("webhook answered 400 to evt_1")
    assert SECRET not in failed.last_error
    [failure, sent] = delivery_audit(sessions)
    assert (failure.action, failure.question_id) == ("delivery.failed", case_id)
    assert failure.detail["connector"] == "webhook"
    assert failure.detail["event_id"] == 1
    assert failure.detail["error"] == failed.last_error
    assert sent.action == "delivery.sent"
    assert backlog(sessions) == {"webhook": 0}
    clock.advance(hours=1)
    assert run(sessions, webhook, clock) == []  # failed for good: never tried again


class Crashing:
    """A connector with a bug."""

    name = "webhook"

    def deliver(self, event: EventEnvelope) -> DeliveryResult:
        raise KeyError("case")


def test_a_crashing_connector_does_not_lose_the_event(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    new_case(sessions, clock)
    plan_deliveries(sessions, ["webhook"], now=clock())

    [report] = run(sessions, Crashing(), clock)

    assert report.state == "pending"
    assert report.error == "unexpected KeyError: 'case'"
    clock.advance(FIRST_BACKOFF)
    assert [r.state for r in run(sessions, webhook, clock)] == ["sent"]


class Interleaved:
    """Worker A's connector: while A is still sending, ``meanwhile`` runs (another worker)."""

    name = "webhook"

    def __init__(self, inner: Connector, meanwhile: Any) -> None:
        self.inner = inner
        self.meanwhile = meanwhile
        self.calls = 0

    def deliver(self, event: EventEnvelope) -> DeliveryResult:
        self.calls += 1
        if self.calls == 1:
            self.meanwhile()
        return self.inner.deliver(event)


@pytest.mark.parametrize("late_answer", [None, 503, 400])
def test_a_worker_that_outlived_its_lease_changes_nothing(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
    late_answer: int | None,
) -> None:
    """Whatever the stale worker's send ends in (success, retry, refusal), it records nothing."""
    enable(sessions, clock, "webhook")
    new_case(sessions, clock)
    plan_deliveries(sessions, ["webhook"], now=clock())
    taken_over: list[DeliveryReport] = []

    def worker_b() -> None:
        clock.advance(LEASE + timedelta(seconds=1))  # A's lease runs out while it sends
        taken_over.extend(run(sessions, webhook, clock))
        if late_answer is not None:
            receiver.fail(late_answer)

    [stale] = run(sessions, Interleaved(webhook, worker_b), clock)

    assert [(r.state, r.attempt) for r in taken_over] == [("sent", 2)]
    assert (stale.attempt, stale.superseded, stale.state) == (1, True, "sent")
    delivery = delivery_of(sessions, 1, "webhook")
    assert (delivery.state, delivery.attempts, delivery.last_error) == ("sent", 2, None)
    assert [(a.action, a.detail["attempt"]) for a in delivery_audit(sessions)] == [
        ("delivery.sent", 2)
    ]


def test_a_claim_whose_lease_ran_out_before_its_turn_is_not_sent(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    new_case(sessions, clock)
    new_case(sessions, clock, handle="tom_r")
    plan_deliveries(sessions, ["webhook"], now=clock())
    slow = Interleaved(webhook, lambda: clock.advance(LEASE))  # the first send takes the lease

    reports = run(sessions, slow, clock)

    assert [(r.event_id, r.state, r.attempt) for r in reports] == [
        (1, "sent", 1),
        (2, "sending", 1),  # left alone: its lease was over before its turn
        (2, "sent", 2),  # claimed again in the next round
    ]
    assert reports[1].error == "lease expired before sending"
    assert keys(receiver.received()) == ["evt_1", "evt_2"]


def test_batch_limits_the_deliveries_of_one_call(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    enable(sessions, clock, "webhook")
    case_id = new_case(sessions, clock)
    for votes in range(1, 5):
        add_event(sessions, clock, case_id, "vote.cast", votes=votes)
    plan_deliveries(sessions, ["webhook"], now=clock())

    assert [r.event_id for r in run(sessions, webhook, clock, batch=3)] == [1, 2, 3]
    assert backlog(sessions) == {"webhook": 2}
    assert [r.event_id for r in run(sessions, webhook, clock, batch=3)] == [4, 5]
    assert keys(receiver.received()) == [f"evt_{n}" for n in range(1, 6)]


def test_backlog_counts_what_each_connector_still_has_to_receive(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
) -> None:
    assert backlog(sessions) == {}
    enable(sessions, clock, "webhook", "zendesk")
    assert backlog(sessions) == {"webhook": 0, "zendesk": 0}
    maria = new_case(sessions, clock)
    add_event(sessions, clock, maria, "vote.cast", votes=1)
    new_case(sessions, clock, handle="tom_r")
    plan_deliveries(sessions, ["webhook", "zendesk"], now=clock())
    assert backlog(sessions) == {"webhook": 3, "zendesk": 3}

    receiver.fail(503)
    run(sessions, webhook, clock)  # maria's first event waits for a retry, blocking her vote

    assert backlog(sessions) == {"webhook": 2, "zendesk": 3}


# -- delivering: zendesk ----------------------------------------------------------------------


def test_a_case_becomes_a_zendesk_ticket_when_escalated_and_solved_when_answered(
    sessions: sessionmaker[Session], clock: Clock, zendesk: FakeZendesk, zd: ZendeskConnector
) -> None:
    enable(sessions, clock, "zendesk")
    case_id = new_case(sessions, clock)
    add_event(sessions, clock, case_id, "proposal.created", author="alice", text="DM us")
    escalated = add_event(sessions, clock, case_id, "question.escalated", level=1)
    vote = add_event(sessions, clock, case_id, "vote.cast", voter="bob", votes=1)
    reply = add_event(sessions, clock, case_id, "reply.sent", url="https://x.com/AcmeHelp/status/9")
    plan_deliveries(sessions, ["zendesk"], now=clock())

    reports = run(sessions, zd, clock)

    assert [(r.event_id, r.state) for r in reports] == [
        (1, "skipped"),
        (2, "skipped"),
        (escalated, "sent"),
        (vote, "sent"),
        (reply, "sent"),
    ]
    [ticket] = zendesk.tickets()
    assert ticket["external_id"] == f"crowdcare-{case_id}"
    assert ticket["subject"] == "Question from @maria_k on X"
    assert ticket["status"] == "solved"
    with sessions.begin() as session:
        ref = session.scalars(select(ExternalRef)).one()
        assert (ref.question_id, ref.connector, ref.external_id) == (
            case_id,
            "zendesk",
            str(ticket["id"]),
        )
    bodies = [comment["body"] for comment in zendesk.comments(ticket["id"])]
    assert bodies[0].startswith("@AcmeHelp my order #123 hasn't arrived\n\nhttps://x.com/maria_k/")
    assert bodies[1:] == [
        f"Vote by bob: 1 vote\n\n[crowdcare evt_{vote}]",
        f"Reply sent on X: https://x.com/AcmeHelp/status/9\n\n[crowdcare evt_{reply}]",
    ]
    audit = delivery_audit(sessions)
    assert [a.action for a in audit] == [
        "delivery.skipped",
        "delivery.skipped",
        "delivery.sent",
        "delivery.sent",
        "delivery.sent",
    ]
    assert audit[2].detail["external_id"] == str(ticket["id"])


def test_a_lost_ticket_create_does_not_duplicate_the_ticket(
    sessions: sessionmaker[Session], clock: Clock, zendesk: FakeZendesk, zd: ZendeskConnector
) -> None:
    enable(sessions, clock, "zendesk")
    case_id = new_case(sessions, clock)
    escalated = add_event(sessions, clock, case_id, "question.escalated")
    vote = add_event(sessions, clock, case_id, "vote.cast", votes=2)
    plan_deliveries(sessions, ["zendesk"], now=clock())
    zendesk.lose_response("create_ticket")

    first = run(sessions, zd, clock)
    assert [(r.event_id, r.state) for r in first] == [(1, "skipped"), (escalated, "pending")]
    clock.advance(FIRST_BACKOFF)
    second = run(sessions, zd, clock)

    assert [(r.event_id, r.state, r.attempt) for r in second] == [
        (escalated, "sent", 2),
        (vote, "sent", 1),
    ]
    [ticket] = zendesk.tickets()
    assert len(zendesk.calls_to("create_ticket")) == 1
    assert zendesk.comments(ticket["id"])[-1]["body"] == f"Vote: 2 votes\n\n[crowdcare evt_{vote}]"


def test_a_lost_comment_is_not_added_twice(
    sessions: sessionmaker[Session], clock: Clock, zendesk: FakeZendesk, zd: ZendeskConnector
) -> None:
    enable(sessions, clock, "zendesk")
    case_id = new_case(sessions, clock)
    add_event(sessions, clock, case_id, "question.escalated")
    vote = add_event(sessions, clock, case_id, "vote.cast", votes=2)
    closed = add_event(sessions, clock, case_id, "question.closed", by="dan", reason="duplicate")
    plan_deliveries(sessions, ["zendesk"], now=clock())
    zendesk.lose_response("update_ticket")

    run(sessions, zd, clock)
    assert delivery_of(sessions, vote, "zendesk").state == "pending"
    assert delivery_of(sessions, closed, "zendesk").state == "pending"  # waits for the vote
    clock.advance(FIRST_BACKOFF)
    run(sessions, zd, clock)

    [ticket] = zendesk.tickets()
    bodies = [comment["body"] for comment in zendesk.comments(ticket["id"])]
    assert bodies[1:] == [
        f"Vote: 2 votes\n\n[crowdcare evt_{vote}]",
        f"Closed in crowdcare by dan: duplicate\n\n[crowdcare evt_{closed}]",
    ]
    assert ticket["status"] == "solved"
    assert all(d.state in {"sent", "skipped"} for d in deliveries(sessions, "zendesk"))


def test_zendesk_down_then_back_loses_nothing(
    sessions: sessionmaker[Session], zendesk: FakeZendesk, zd: ZendeskConnector
) -> None:
    clock = Clock(datetime.now(UTC))  # Retry-After is measured on the real clock
    enable(sessions, clock, "zendesk")
    case_id = new_case(sessions, clock)
    add_event(sessions, clock, case_id, "question.escalated")
    add_event(sessions, clock, case_id, "vote.cast", votes=1)
    plan_deliveries(sessions, ["zendesk"], now=clock())
    zendesk.fail("list_tickets", 503, times=3)
    zendesk.rate_limit("create_ticket", retry_after=1)

    for _ in range(20):
        if not backlog(sessions)["zendesk"]:
            break
        run(sessions, zd, clock)
        clock.advance(MAX_BACKOFF)

    assert backlog(sessions) == {"zendesk": 0}
    [ticket] = zendesk.tickets()
    assert len(zendesk.comments(ticket["id"])) == 2
    assert [a.action for a in delivery_audit(sessions)].count("delivery.retry_scheduled") == 4


def test_webhook_and_zendesk_each_get_every_event(  # noqa: PLR0917 - six fixtures
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    webhook: WebhookConnector,
    zendesk: FakeZendesk,
    zd: ZendeskConnector,
) -> None:
    enable(sessions, clock, "webhook", "zendesk")
    case_id = new_case(sessions, clock)
    add_event(sessions, clock, case_id, "question.escalated")
    plan_deliveries(sessions, ["webhook", "zendesk"], now=clock())
    zendesk.fail("list_tickets", 503)

    run(sessions, webhook, clock)
    run(sessions, zd, clock)

    assert keys(receiver.received()) == ["evt_1", "evt_2"]  # one backend down, the other fine
    assert backlog(sessions) == {"webhook": 0, "zendesk": 1}


# -- concurrency ------------------------------------------------------------------------------

CASES = 20
EVENTS_PER_CASE = 10


@pytest.mark.postgres
def test_two_workers_at_once_deliver_each_event_exactly_once_and_in_order(
    sessions: sessionmaker[Session],
    clock: Clock,
    receiver: FakeWebhookReceiver,
    on_postgres: bool,
) -> None:
    if not on_postgres:
        pytest.skip("set TEST_DATABASE_URL to a PostgreSQL database")
    enable(sessions, clock, "webhook")
    cases = [new_case(sessions, clock, handle=f"user{n}") for n in range(CASES)]
    for votes in range(1, EVENTS_PER_CASE):
        for case_id in cases:
            add_event(sessions, clock, case_id, "vote.cast", votes=votes)
    assert plan_deliveries(sessions, ["webhook"], now=clock()) == CASES * EVENTS_PER_CASE

    barrier = threading.Barrier(2)
    idle = threading.Event()
    errors: list[BaseException] = []
    sent: dict[str, int] = defaultdict(int)
    lock = threading.Lock()

    def worker(name: str) -> None:
        try:
            with WebhookConnector(receiver.url, SECRET, timeout=5.0) as connector:
                barrier.wait(timeout=30)
                deadline = time.monotonic() + 60
                while backlog(sessions)["webhook"] and time.monotonic() < deadline:
                    reports = run(sessions, connector, clock, batch=10)
                    with lock:
                        sent[name] += sum(r.state == "sent" and not r.superseded for r in reports)
                    if not reports:
                        idle.wait(0.005)  # the other worker holds every head: poll again
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    total = CASES * EVENTS_PER_CASE
    requests = receiver.requests
    assert len(requests) == total
    assert len({request.key for request in requests}) == total
    assert all(request.valid for request in requests)
    assert sum(sent.values()) == total
    with sessions.begin() as session:
        rows = list(session.scalars(select(Delivery)))
        assert {(d.state, d.attempts) for d in rows} == {("sent", 1)}
    arrival: dict[int, list[int]] = defaultdict(list)
    for request in requests:
        arrival[request.json["case"]["id"]].append(int(request.json["id"].removeprefix("evt_")))
    assert all(ids == sorted(ids) and len(ids) == EVENTS_PER_CASE for ids in arrival.values())
