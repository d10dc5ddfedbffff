"""End to end: the running app forwards every case event to a signed webhook and to Zendesk."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from storage.models import ConnectorState
from tests.dbhelpers import Clock
from tests.scenario import card_for, propose, vote
from tests.standins.fake_webhook import FakeWebhookReceiver
from tests.standins.fake_zendesk import FakeZendesk
from tests.standins.stack import Stack, wait_until

pytestmark = pytest.mark.e2e

SECRET = "webhook-signing-secret-0123"


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    with FakeWebhookReceiver(SECRET) as fake:
        yield fake


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    with FakeZendesk() as fake:
        yield fake


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def stack(  # noqa: PLR0917 - pytest passes fixtures positionally
    fake_slack, fake_x, database_url, receiver, zendesk, clock
) -> Iterator[Stack]:
    running = Stack(
        fake_slack,
        fake_x,
        database_url,
        overrides={
            "SUPPORT_WEBHOOK_URL": receiver.url,
            "SUPPORT_WEBHOOK_SECRET": SECRET,
            "ZENDESK_SUBDOMAIN": "acme",
            "ZENDESK_EMAIL": zendesk.email,
            "ZENDESK_API_TOKEN": zendesk.api_token,
            "ZENDESK_API_URL": zendesk.base_url,
            "CARE_ESCALATION_CHANNEL": "C0ESCALATE",
            "CARE_SWEEP_SECONDS": "0.1",
        },
        clock=clock,
    ).start()
    yield running
    running.stop()


def event_types(receiver: FakeWebhookReceiver) -> list[str]:
    return [r.json["type"] for r in receiver.received()]


def test_every_change_reaches_the_webhook_signed_and_in_order(
    stack: Stack, receiver: FakeWebhookReceiver, clock: Clock
) -> None:
    post_id = stack.x.add_mention("@AcmeHelp are you open on holidays?", author_handle="ola")
    card = card_for(stack, "holidays")
    receiver.fail(status=500, times=2)  # the backend is down for a moment: nothing is lost
    proposal = propose(stack, "U0ALICE", card, "Yes, 10:00-16:00 on public holidays.")
    for voter in ("U0BOB", "U0CARA", "U0DAN"):
        vote(stack, voter, proposal)
    stack.x.wait_for_replies(1)

    def delivered_after_backoff() -> bool:
        clock.advance(seconds=1)  # retries wait 5 s, then 10 s: move time, not the test
        return "reply.sent" in event_types(receiver)

    wait_until(delivered_after_backoff, 20, "reply.sent at the webhook")
    types = event_types(receiver)
    assert types == [
        "question.received",
        "proposal.created",
        "vote.cast",
        "vote.cast",
        "vote.cast",
        "question.selected",
        "reply.sent",
    ]
    assert all(r.valid for r in receiver.requests)
    received = receiver.received()
    assert len({r.key for r in received}) == len(received)  # each event processed once
    first = received[0].json
    assert first["case"]["customer"]["handle"] == "ola"
    assert first["case"]["url"].endswith(post_id)


def test_an_escalation_opens_a_zendesk_ticket_that_the_reply_solves(
    stack: Stack, zendesk: FakeZendesk, clock: Clock
) -> None:
    stack.x.add_mention("@AcmeHelp my refund never came", author_handle="pia")
    card = card_for(stack, "refund never came")
    proposal = propose(stack, "U0ALICE", card, "Sorry Pia, we have re-issued it today.")

    clock.advance(minutes=61)

    [ticket] = wait_until(zendesk.tickets, 20, "a Zendesk ticket")
    assert "pia" in ticket["subject"]
    for voter in ("U0BOB", "U0CARA", "U0DAN"):
        vote(stack, voter, proposal)
    stack.x.wait_for_replies(1)
    wait_until(lambda: zendesk.ticket(ticket["id"])["status"] == "solved", 20, "ticket solved")
    comments = zendesk.comments(ticket["id"])
    assert all(not c["public"] for c in comments)
    assert any("x.com" in c["body"] for c in comments)  # the reply's link
    assert len(zendesk.tickets()) == 1


def test_connectors_are_enabled_before_any_job_can_take_in_a_question(
    fake_slack, fake_x, database_url, receiver, zendesk
) -> None:
    # Enabling a connector lazily, on its first delivery round, raced the first X poll: a
    # question stored in between counted as "history" and never reached the backend.
    running = Stack(
        fake_slack,
        fake_x,
        database_url,
        overrides={"SUPPORT_WEBHOOK_URL": receiver.url, "SUPPORT_WEBHOOK_SECRET": SECRET},
    ).start()
    try:
        assert running.care is not None
        with running.care.sessions() as session:
            states = session.scalars(select(ConnectorState)).all()
        assert [(s.connector, s.first_event_id) for s in states] == [("webhook", 1)]
    finally:
        running.stop()
