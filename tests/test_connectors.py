"""The outside connectors against their stand-ins: request signing, the webhook, Zendesk."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from bot.connectors.webhook import WebhookConnector, payload
from bot.connectors.zendesk import ZendeskConnector, describe
from bot.signing import (
    INVALID_SIGNATURE,
    MISSING_HEADERS,
    SIGNATURE_HEADER,
    STALE_TIMESTAMP,
    TIMESTAMP_HEADER,
    sign,
    verify,
)
from bot.support import CaseSummary, ConnectorError, DeliveryResult, EventEnvelope
from tests.standins.fake_webhook import FakeWebhookReceiver
from tests.standins.fake_zendesk import AGENT_ID, FakeZendesk

SECRET = "whsec-test-0123456789"
TOKEN = "zd-token-0123456789"
EMAIL = "care-bot@acme.test"
CREATED = datetime(2026, 1, 5, 9, 30, 15, 250_000, tzinfo=UTC)

CASE = CaseSummary(
    case_id=42,
    channel="x",
    customer_handle="maria_k",
    customer_name="Maria K",
    text="@AcmeHelp my order #123 hasn't arrived",
    post_url="https://x.com/maria_k/status/1850000000000000001",
    state="escalated",
)


def envelope(
    event_id: int = 7,
    type: str = "question.escalated",
    *,
    data: dict[str, Any] | None = None,
    external_id: str | None = None,
    attempt: int = 1,
    case: CaseSummary = CASE,
) -> EventEnvelope:
    return EventEnvelope(
        event_id=event_id,
        type=type,
        created_at=CREATED,
        case=case,
        data=data or {},
        external_id=external_id,
        attempt=attempt,
    )


# -- signing ----------------------------------------------------------------------------------


def test_a_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    body = b'{"id":"evt_1"}'
    signature = sign(SECRET, 1_767_600_000, body)

    assert signature.startswith("v1=")
    assert len(signature) == len("v1=") + 64
    assert verify(SECRET, "1767600000", signature, body, now=1_767_600_010) is None


@pytest.mark.parametrize(
    ("timestamp", "signature", "body", "now", "reason"),
    [
        (None, "v1=00", b"{}", 1000.0, MISSING_HEADERS),
        ("1000", None, b"{}", 1000.0, MISSING_HEADERS),
        ("1000", "", b"{}", 1000.0, MISSING_HEADERS),
        ("soon", "v1=00", b"{}", 1000.0, STALE_TIMESTAMP),
        ("-5", "v1=00", b"{}", 1000.0, STALE_TIMESTAMP),
        ("1000", "SIGNED", b"{}", 1301.0, STALE_TIMESTAMP),  # 301 s old
        ("1000", "SIGNED", b"{}", 699.0, STALE_TIMESTAMP),  # 301 s in the future
        ("1000", "SIGNED", b'{"tampered":1}', 1000.0, INVALID_SIGNATURE),
        ("1001", "SIGNED", b"{}", 1000.0, INVALID_SIGNATURE),  # timestamp changed
        ("1000", "v1=ünïcode", b"{}", 1000.0, INVALID_SIGNATURE),
    ],
)
def test_verify_says_why_a_request_is_refused(
    timestamp: str | None, signature: str | None, body: bytes, now: float, reason: str
) -> None:
    if signature == "SIGNED":
        signature = sign(SECRET, 1000, b"{}")

    assert verify(SECRET, timestamp, signature, body, now=now) == reason


def test_verify_accepts_the_edges_of_the_tolerance() -> None:
    signature = sign(SECRET, 1000, b"{}")

    assert verify(SECRET, "1000", signature, b"{}", now=1300.0) is None
    assert verify(SECRET, "1000", signature, b"{}", now=1010.0, tolerance=5) == STALE_TIMESTAMP


def test_a_wrong_secret_fails_verification() -> None:
    signature = sign(SECRET, 1000, b"{}")

    assert verify("another-secret", "1000", signature, b"{}", now=1000.0) == INVALID_SIGNATURE


# -- webhook ----------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    with FakeWebhookReceiver(SECRET) as fake:
        yield fake


@pytest.fixture
def webhook(receiver: FakeWebhookReceiver) -> Iterator[WebhookConnector]:
    with WebhookConnector(receiver.url, SECRET, timeout=2.0) as connector:
        yield connector


def test_webhook_posts_the_event_as_signed_json(
    receiver: FakeWebhookReceiver, webhook: WebhookConnector
) -> None:
    event = envelope(data={"level": 1, "reason": "no answer in 2 hours"})

    assert webhook.deliver(event) == DeliveryResult()

    [request] = receiver.wait_for(1)
    assert request.method == "POST"
    assert request.json == {
        "id": "evt_7",
        "type": "question.escalated",
        "created_at": "2026-01-05T09:30:15.250Z",
        "case": {
            "id": 42,
            "channel": "x",
            "customer": {"handle": "maria_k", "name": "Maria K"},
            "text": "@AcmeHelp my order #123 hasn't arrived",
            "url": "https://x.com/maria_k/status/1850000000000000001",
            "state": "escalated",
        },
        "data": {"level": 1, "reason": "no answer in 2 hours"},
    }
    assert request.json == payload(event)
    assert request.headers["content-type"] == "application/json"
    assert request.headers["idempotency-key"] == "evt_7"
    assert request.headers["x-crowdcare-event"] == "question.escalated"
    # The receiver's own check, and the same check done here with the shared secret.
    assert request.valid
    timestamp = request.headers[TIMESTAMP_HEADER.lower()]
    signature = request.headers[SIGNATURE_HEADER.lower()]
    assert verify(SECRET, timestamp, signature, request.body, now=time.time()) is None
    assert verify("wrong-secret", timestamp, signature, request.body, now=time.time()) == (
        INVALID_SIGNATURE
    )


def test_webhook_signed_with_another_secret_is_not_accepted(receiver: FakeWebhookReceiver) -> None:
    with WebhookConnector(receiver.url, "not-the-shared-secret", timeout=2.0) as connector:
        connector.deliver(envelope())

    [request] = receiver.requests
    assert (request.valid, request.reason) == (False, INVALID_SIGNATURE)
    assert receiver.received() == []


def test_webhook_keeps_non_ascii_text_intact(
    receiver: FakeWebhookReceiver, webhook: WebhookConnector
) -> None:
    case = CaseSummary(
        42, "x", "zoë", "Zoë ✨", "Où est ma commande ? 📦", "https://x.com/z/1", "open"
    )

    webhook.deliver(envelope(type="question.received", case=case))

    [request] = receiver.wait_for(1)
    assert request.valid
    assert request.json["case"]["text"] == "Où est ma commande ? 📦"
    assert request.json["case"]["customer"] == {"handle": "zoë", "name": "Zoë ✨"}


@pytest.mark.parametrize("status", [500, 502, 503, 408])
def test_webhook_server_errors_are_retryable(
    receiver: FakeWebhookReceiver, webhook: WebhookConnector, status: int
) -> None:
    receiver.fail(status)

    with pytest.raises(ConnectorError) as caught:
        webhook.deliver(envelope())

    assert caught.value.retryable
    assert caught.value.retry_at is None
    assert str(status) in str(caught.value)
    assert "evt_7" in str(caught.value)


def test_webhook_rate_limit_honours_retry_after_seconds(
    receiver: FakeWebhookReceiver, webhook: WebhookConnector
) -> None:
    receiver.fail(429, retry_after="120")
    before = datetime.now(UTC)

    with pytest.raises(ConnectorError) as caught:
        webhook.deliver(envelope())

    after = datetime.now(UTC)
    assert caught.value.retryable
    assert caught.value.retry_at is not None
    assert before + timedelta(seconds=120) <= caught.value.retry_at
    assert caught.value.retry_at <= after + timedelta(seconds=120)


def test_webhook_rate_limit_honours_retry_after_as_http_date(
    receiver: FakeWebhookReceiver, webhook: WebhookConnector
) -> None:
    when = datetime(2031, 3, 4, 5, 6, 7, tzinfo=UTC)
    receiver.fail(429, retry_after=format_datetime(when, usegmt=True))

    with pytest.raises(ConnectorError) as caught:
        webhook.deliver(envelope())

    assert (caught.value.retryable, caught.value.retry_at) == (True, when)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_webhook_client_errors_are_permanent(
    receiver: FakeWebhookReceiver, webhook: WebhookConnector, status: int
) -> None:
    receiver.fail(status)

    with pytest.raises(ConnectorError) as caught:
        webhook.deliver(envelope())

    assert not caught.value.retryable
    message = str(caught.value)
    assert f"answered {status}" in message
    assert "injected failure" in message  # an excerpt of the receiver's body
    assert SECRET not in message


def test_webhook_timeout_is_retryable(receiver: FakeWebhookReceiver) -> None:
    receiver.hang(seconds=30)

    with (
        WebhookConnector(receiver.url, SECRET, timeout=0.2) as connector,
        pytest.raises(ConnectorError) as caught,
    ):
        connector.deliver(envelope())

    assert caught.value.retryable
    assert "within 0.2s" in str(caught.value)


def test_webhook_lost_answer_is_retryable_and_the_request_was_processed(
    receiver: FakeWebhookReceiver, webhook: WebhookConnector
) -> None:
    receiver.lose_response()

    with pytest.raises(ConnectorError) as caught:
        webhook.deliver(envelope())

    assert caught.value.retryable
    assert [request.key for request in receiver.received()] == ["evt_7"]


def test_webhook_unreachable_is_retryable_and_keeps_secrets_out_of_the_error() -> None:
    with FakeWebhookReceiver(SECRET) as gone:
        url = f"{gone.url}?token={SECRET}"
    # The receiver is stopped: nothing listens on that port any more.

    with WebhookConnector(url, SECRET, timeout=2.0) as connector:
        with pytest.raises(ConnectorError) as caught:
            connector.deliver(envelope())
        assert SECRET not in repr(connector)

    assert caught.value.retryable
    assert "unreachable" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_webhook_refuses_a_redirect(
    receiver: FakeWebhookReceiver, webhook: WebhookConnector
) -> None:
    receiver.fail(301)

    with pytest.raises(ConnectorError) as caught:
        webhook.deliver(envelope())

    assert not caught.value.retryable
    assert "redirect" in str(caught.value)


def test_webhook_needs_a_url_and_a_secret() -> None:
    with pytest.raises(ValueError, match="https://"):
        WebhookConnector("ftp://example.test/hook", SECRET)
    with pytest.raises(ValueError, match="secret"):
        WebhookConnector("https://example.test/hook", "")


# -- zendesk ----------------------------------------------------------------------------------


@pytest.fixture
def zendesk() -> Iterator[FakeZendesk]:
    with FakeZendesk(EMAIL, TOKEN) as fake:
        yield fake


def connect(zendesk: FakeZendesk, **overrides: Any) -> ZendeskConnector:
    options: dict[str, Any] = {
        "subdomain": "acme",
        "email": EMAIL,
        "api_token": TOKEN,
        "api_url": zendesk.base_url,
        "timeout": 2.0,
    }
    options.update(overrides)
    return ZendeskConnector(**options)


@pytest.fixture
def connector(zendesk: FakeZendesk) -> Iterator[ZendeskConnector]:
    with connect(zendesk) as zd:
        yield zd


def open_ticket(connector: ZendeskConnector) -> str:
    """Escalate the case (event 7), which opens its ticket; the ticket id."""
    ticket_id = connector.deliver(envelope(event_id=7)).external_id
    assert ticket_id is not None
    return ticket_id


def test_zendesk_opens_a_ticket_on_escalation(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    result = connector.deliver(envelope(type="question.escalated", data={"level": 1}))

    [ticket] = zendesk.tickets()
    assert result == DeliveryResult(external_id=str(ticket["id"]))
    assert ticket["subject"] == "Question from @maria_k on X"
    assert ticket["external_id"] == "crowdcare-42"
    assert ticket["tags"] == ["crowdcare", "x"]
    assert ticket["status"] == "new"
    [comment] = zendesk.comments(ticket["id"])
    assert comment["body"] == (
        "@AcmeHelp my order #123 hasn't arrived\n\n"
        "https://x.com/maria_k/status/1850000000000000001\n\n"
        "[crowdcare case 42]"
    )
    assert comment["public"] is False
    # It looked for an earlier ticket of the case before creating one.
    [lookup] = zendesk.calls_to("list_tickets")
    assert lookup.query == {"external_id": "crowdcare-42"}
    [create] = zendesk.calls_to("create_ticket")
    assert create.headers["content-type"] == "application/json"


def test_zendesk_skips_events_before_the_ticket_exists(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    for event_type in ("question.received", "proposal.created", "vote.cast"):
        assert connector.deliver(envelope(type=event_type)) == DeliveryResult(skipped=True)

    assert zendesk.tickets() == []
    assert zendesk.calls == []


def test_zendesk_adds_later_events_as_internal_notes(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    ticket_id = open_ticket(connector)

    later = [
        envelope(8, "proposal.created", data={"author": "alice", "text": "DM us your order #"}),
        envelope(9, "vote.cast", data={"voter": "bob", "votes": 2}),
        envelope(10, "question.selected", data={"by": "cara", "votes": 2, "text": "DM us"}),
    ]
    for event in later:
        assert (
            connector.deliver(EventEnvelope(**{**event.__dict__, "external_id": ticket_id}))
            == DeliveryResult()
        )

    notes = zendesk.comments(ticket_id)[1:]
    assert [note["body"] for note in notes] == [
        "Proposal by alice: DM us your order #\n\n[crowdcare evt_8]",
        "Vote by bob: 2 votes\n\n[crowdcare evt_9]",
        "Answer selected by cara with 2 votes: DM us\n\n[crowdcare evt_10]",
    ]
    assert all(note["public"] is False for note in notes)
    assert zendesk.ticket(ticket_id)["status"] == "open"
    assert len(zendesk.tickets()) == 1


def test_zendesk_solves_the_ticket_when_the_reply_is_sent(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    ticket_id = open_ticket(connector)
    reply = envelope(
        11,
        "reply.sent",
        data={"url": "https://x.com/AcmeHelp/status/99", "text": "Sorry! DM us"},
        external_id=ticket_id,
    )

    assert connector.deliver(reply) == DeliveryResult()

    ticket = zendesk.ticket(ticket_id)
    assert ticket["status"] == "solved"
    assert ticket["assignee_id"] == AGENT_ID  # Zendesk only solves assigned tickets
    assert zendesk.comments(ticket_id)[-1]["body"] == (
        "Reply sent on X: https://x.com/AcmeHelp/status/99\nSorry! DM us\n\n[crowdcare evt_11]"
    )


def test_zendesk_keeps_the_assignee_a_rep_already_set(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    ticket_id = zendesk.add_ticket(external_id="crowdcare-42", assignee_id=1234)
    closing = envelope(12, "question.closed", data={"by": "dan"}, external_id=str(ticket_id))

    connector.deliver(closing)

    ticket = zendesk.ticket(ticket_id)
    assert (ticket["status"], ticket["assignee_id"]) == ("solved", 1234)
    [update] = zendesk.calls_to("update_ticket")
    assert "assignee_email" not in update.body["ticket"]


def test_zendesk_leaves_a_closed_ticket_alone(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    ticket_id = zendesk.add_ticket(status="closed", assignee_id=1234)
    solved = envelope(13, "question.solved_elsewhere", external_id=str(ticket_id))

    assert connector.deliver(solved) == DeliveryResult(skipped=True)
    assert zendesk.calls_to("update_ticket") == []


def test_zendesk_update_of_a_closed_ticket_is_a_permanent_error_with_details(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    ticket_id = zendesk.add_ticket(status="closed")

    with pytest.raises(ConnectorError) as caught:
        connector.deliver(envelope(14, "vote.cast", external_id=str(ticket_id)))

    assert not caught.value.retryable
    assert str(caught.value) == (
        f"Zendesk PUT /api/v2/tickets/{ticket_id}.json answered 422: RecordInvalid: "
        "Record validation errors (Status: closed prevents ticket update)"
    )


def test_zendesk_ticket_on_intake_opens_the_ticket_when_the_question_arrives(
    zendesk: FakeZendesk,
) -> None:
    with connect(zendesk, ticket_on="intake") as connector:
        result = connector.deliver(envelope(3, "question.received"))
        ticket_id = result.external_id
        assert ticket_id is not None
        escalated = envelope(
            7, "question.escalated", data={"reason": "2 hours"}, external_id=ticket_id
        )
        assert connector.deliver(escalated) == DeliveryResult()

    [ticket] = zendesk.tickets()
    assert str(ticket["id"]) == ticket_id
    assert zendesk.comments(ticket_id)[-1]["body"] == (
        "Escalated to the support team: 2 hours\n\n[crowdcare evt_7]"
    )


def test_zendesk_ticket_on_must_be_known() -> None:
    with pytest.raises(ValueError, match="ticket_on"):
        ZendeskConnector(subdomain="acme", email=EMAIL, api_token=TOKEN, ticket_on="always")


def test_zendesk_base_url_comes_from_the_subdomain() -> None:
    with ZendeskConnector(subdomain="acme", email=EMAIL, api_token=TOKEN) as connector:
        assert connector.base_url == "https://acme.zendesk.com"
        assert TOKEN not in repr(connector)


def test_zendesk_finds_the_ticket_a_lost_create_left_behind(zendesk: FakeZendesk) -> None:
    existing = zendesk.add_ticket(external_id="crowdcare-42")

    with connect(zendesk) as connector:
        result = connector.deliver(envelope(attempt=2))

    assert result == DeliveryResult(external_id=str(existing))
    assert zendesk.calls_to("create_ticket") == []


def test_zendesk_retry_does_not_repeat_a_note_that_landed(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    ticket_id = open_ticket(connector)
    note = envelope(8, "vote.cast", data={"votes": 1}, external_id=ticket_id)
    zendesk.lose_response("update_ticket")

    with pytest.raises(ConnectorError) as caught:
        connector.deliver(note)
    assert caught.value.retryable

    retry = EventEnvelope(**{**note.__dict__, "attempt": 2})
    assert connector.deliver(retry) == DeliveryResult()

    bodies = [comment["body"] for comment in zendesk.comments(ticket_id)]
    assert bodies.count("Vote: 1 vote\n\n[crowdcare evt_8]") == 1
    [lookup] = zendesk.calls_to("list_comments")
    assert lookup.query == {"sort_order": "desc"}
    assert len(zendesk.calls_to("update_ticket")) == 1


def test_zendesk_retry_sends_a_note_that_did_not_land(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    ticket_id = open_ticket(connector)
    zendesk.fail("update_ticket", 503)
    note = envelope(8, "vote.cast", data={"votes": 3}, external_id=ticket_id)

    with pytest.raises(ConnectorError) as caught:
        connector.deliver(note)
    assert caught.value.retryable

    connector.deliver(EventEnvelope(**{**note.__dict__, "attempt": 2}))

    assert zendesk.comments(ticket_id)[-1]["body"] == "Vote: 3 votes\n\n[crowdcare evt_8]"


def test_zendesk_bad_credentials_are_a_permanent_error(zendesk: FakeZendesk) -> None:
    with (
        connect(zendesk, api_token="revoked-token-0000") as connector,
        pytest.raises(ConnectorError) as caught,
    ):
        connector.deliver(envelope())

    assert not caught.value.retryable
    assert "401" in str(caught.value)
    assert "Couldn't authenticate you" in str(caught.value)
    assert "revoked-token-0000" not in str(caught.value)
    assert zendesk.tickets() == []


def test_zendesk_sends_api_token_basic_auth(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    connector.deliver(envelope())

    [lookup] = zendesk.calls_to("list_tickets")
    scheme, encoded = lookup.headers["authorization"].split(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode() == f"{EMAIL}/token:{TOKEN}"


def test_zendesk_validation_errors_are_permanent_with_details(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    zendesk.fail("create_ticket", 422)

    with pytest.raises(ConnectorError) as caught:
        connector.deliver(envelope())

    assert not caught.value.retryable
    assert "422" in str(caught.value)
    assert "Record validation errors" in str(caught.value)
    assert "Injected validation failure" in str(caught.value)


def test_fake_zendesk_refuses_a_ticket_without_a_comment(zendesk: FakeZendesk) -> None:
    """The stand-in's 422 is Zendesk's shape, and the connector reports its details."""
    # Drive the same HTTP path the connector uses, with a body it would never send.
    with connect(zendesk) as connector, pytest.raises(ConnectorError) as caught:
        connector._request("POST", "/api/v2/tickets.json", json={"ticket": {"subject": "x"}})

    assert not caught.value.retryable
    assert "Description: cannot be blank" in str(caught.value)


def test_zendesk_rate_limit_honours_retry_after(
    zendesk: FakeZendesk, connector: ZendeskConnector
) -> None:
    zendesk.rate_limit("list_tickets", retry_after=45)
    before = datetime.now(UTC)

    with pytest.raises(ConnectorError) as caught:
        connector.deliver(envelope())

    assert caught.value.retryable
    assert caught.value.retry_at is not None
    assert before + timedelta(seconds=45) <= caught.value.retry_at
    assert caught.value.retry_at <= datetime.now(UTC) + timedelta(seconds=45)
    assert zendesk.tickets() == []


@pytest.mark.parametrize("status", [500, 503, 409])
def test_zendesk_server_errors_and_conflicts_are_retryable(
    zendesk: FakeZendesk, connector: ZendeskConnector, status: int
) -> None:
    zendesk.fail("create_ticket", status)

    with pytest.raises(ConnectorError) as caught:
        connector.deliver(envelope())

    assert caught.value.retryable
    assert zendesk.tickets() == []


def test_zendesk_timeout_is_retryable(zendesk: FakeZendesk) -> None:
    zendesk.hang("list_tickets", seconds=30)

    with connect(zendesk, timeout=0.2) as connector, pytest.raises(ConnectorError) as caught:
        connector.deliver(envelope())

    assert caught.value.retryable
    assert "no answer within 0.2s" in str(caught.value)


def test_zendesk_unknown_ticket_is_a_permanent_error(connector: ZendeskConnector) -> None:
    with pytest.raises(ConnectorError) as caught:
        connector.deliver(envelope(8, "vote.cast", external_id="999999"))

    assert not caught.value.retryable
    assert "404" in str(caught.value)


@pytest.mark.parametrize(
    ("event_type", "data", "line"),
    [
        ("question.received", {}, "Question from @maria_k on X: @AcmeHelp my order"),
        ("proposal.created", {"author_id": "U0ALICE", "text": "Hi"}, "Proposal by U0ALICE: Hi"),
        ("vote.cast", {}, "Vote: cast"),
        ("question.selected", {}, "Answer selected"),
        ("reply.sent", {}, "Reply sent on X: (no link)"),
        ("question.escalated", {"level": 2}, "Escalated to the support team again"),
        ("question.closed", {"by": "eve", "reason": "spam"}, "Closed in crowdcare by eve: spam"),
        ("question.solved_elsewhere", {"by": "rep"}, "Solved outside crowdcare by rep"),
    ],
)
def test_every_event_type_reads_well_in_a_ticket(
    event_type: str, data: dict[str, Any], line: str
) -> None:
    assert describe(envelope(type=event_type, data=data)).startswith(line)
