"""The outbox against the stand-in X: each queued reply is published exactly once, or fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import NamedTuple

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.outbox import FIRST_BACKOFF, MAX_BACKOFF, SendReport, claim_due, send_claimed
from bot.states import State
from bot.x_channel import XChannel
from storage.models import AuditEvent, Proposal, Question, Reply
from tests.dbhelpers import (
    T0,
    Clock,
    actions,
    audit_trail,
    count,
    make_queued_reply,
    migrated_sessions,
)
from tests.standins.fake_x import FakeX

LEASE = timedelta(seconds=60)
ANSWER = "Sorry Maria! Please DM us your order number and we'll chase it today."


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def channel(x_channel: XChannel) -> XChannel:
    return x_channel


@pytest.fixture
def mention(fake_x: FakeX) -> str:
    return fake_x.add_mention("@AcmeHelp my order #123 hasn't arrived", author_handle="maria_k")


@pytest.fixture
def reply_id(sessions: sessionmaker[Session], mention: str) -> int:
    """A reply to ``mention``, queued by the real selection, due at T0."""
    with sessions.begin() as session:
        return make_queued_reply(session, external_id=mention, text=ANSWER, now=T0).id


class Queued(NamedTuple):
    reply_id: int
    post_id: str  # the customer's post the reply answers


@pytest.fixture
def queued(reply_id: int, mention: str) -> Queued:
    return Queued(reply_id, mention)


def load(sessions: sessionmaker[Session], reply_id: int) -> tuple[Reply, Question]:
    with sessions.begin() as session:
        reply = session.get_one(Reply, reply_id)
        return reply, session.get_one(Question, reply.question_id)


def claim_and_send(
    sessions: sessionmaker[Session], channel: XChannel, clock: Clock, reply_id: int
) -> SendReport:
    assert claim_due(sessions, now=clock(), lease=LEASE) == [reply_id]
    return send_claimed(sessions, channel, reply_id, clock=clock)


def outbox_actions(sessions: sessionmaker[Session], question_id: int) -> list[str]:
    """The question's audit trail after the selection that queued the reply."""
    with sessions.begin() as session:
        trail = actions(session, question_id)
    assert trail[:2] == ["state.selected", "reply.queued"]
    return trail[2:]


# -- claiming ---------------------------------------------------------------------------------


def test_claim_marks_a_due_reply_sending_under_a_lease(
    sessions: sessionmaker[Session], clock: Clock, reply_id: int
) -> None:
    assert claim_due(sessions, now=T0, lease=LEASE) == [reply_id]

    reply, question = load(sessions, reply_id)
    assert (reply.state, reply.attempts, reply.next_attempt_at) == ("sending", 1, T0 + LEASE)
    assert question.state == State.SENDING
    with sessions.begin() as session:
        claimed, sending = audit_trail(session, question.id)[-2:]
        assert (claimed.action, claimed.detail) == (
            "reply.claimed",
            {"reply_id": reply_id, "attempt": 1, "reclaimed": False},
        )
        assert (sending.action, sending.actor, sending.detail) == (
            "state.sending",
            "crowdcare",
            {"from": "selected"},
        )


def test_reply_not_yet_due_is_not_claimed(sessions: sessionmaker[Session], reply_id: int) -> None:
    assert claim_due(sessions, now=T0 - timedelta(seconds=1), lease=LEASE) == []
    reply, question = load(sessions, reply_id)
    assert (reply.state, question.state) == ("pending", State.SELECTED)


def test_reply_sending_within_its_lease_is_not_claimed_again(
    sessions: sessionmaker[Session], clock: Clock, reply_id: int
) -> None:
    assert claim_due(sessions, now=T0, lease=LEASE) == [reply_id]

    assert claim_due(sessions, now=T0 + LEASE - timedelta(seconds=1), lease=LEASE) == []

    reply, _ = load(sessions, reply_id)
    assert (reply.state, reply.attempts) == ("sending", 1)


def test_claim_respects_the_limit_and_takes_the_oldest_first(
    sessions: sessionmaker[Session], fake_x: FakeX
) -> None:
    with sessions.begin() as session:
        ids = [
            make_queued_reply(
                session,
                external_id=fake_x.add_mention(f"@AcmeHelp q{n}"),
                text=f"answer {n}",
                now=T0 + timedelta(seconds=n),
            ).id
            for n in range(3)
        ]

    assert claim_due(sessions, now=T0 + timedelta(minutes=1), lease=LEASE, limit=2) == ids[:2]
    assert claim_due(sessions, now=T0 + timedelta(minutes=1), lease=LEASE, limit=2) == ids[2:]


# -- sending ----------------------------------------------------------------------------------


def test_successful_send_records_the_post_and_answers_the_question(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    queued: Queued,
) -> None:
    assert claim_due(sessions, now=clock(), lease=LEASE) == [queued.reply_id]
    clock.advance(seconds=2)

    report = send_claimed(sessions, channel, queued.reply_id, clock=clock)

    (tweet,) = fake_x.replies()
    assert tweet.text == ANSWER
    assert tweet.referenced == [("replied_to", queued.post_id)]
    assert report.state == "sent"
    assert report.error is None
    reply, question = load(sessions, queued.reply_id)
    assert reply.state == "sent"
    assert reply.external_id == tweet.id
    assert reply.url == f"https://x.com/i/web/status/{tweet.id}"
    assert reply.sent_at == clock()
    assert reply.last_error is None
    assert question.state == State.ANSWERED
    assert question.answered_at == clock()
    with sessions.begin() as session:
        assert reply.proposal_id is not None
        assert session.get_one(Proposal, reply.proposal_id).state == "sent"
        sent = audit_trail(session, question.id)[-2]
        assert sent.detail == {
            "reply_id": queued.reply_id,
            "external_id": tweet.id,
            "url": reply.url,
        }
    assert outbox_actions(sessions, question.id) == [
        "reply.claimed",
        "state.sending",
        "reply.sent",
        "state.answered",
    ]
    assert fake_x.calls_to("user_tweets") == []  # a first attempt needs no reconciliation


def test_sent_reply_is_never_claimed_again(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock, reply_id: int
) -> None:
    claim_and_send(sessions, channel, clock, reply_id)

    assert claim_due(sessions, now=clock() + timedelta(days=1), lease=LEASE) == []
    assert len(fake_x.replies()) == 1


def test_rate_limited_send_waits_until_the_reset_time(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    reply_id: int,
) -> None:
    fake_x.rate_limit("create_tweet", reset_in=600)

    earliest = int(time.time()) + 600
    report = claim_and_send(sessions, channel, clock, reply_id)
    latest = int(time.time()) + 600

    assert report.state == "pending"
    assert "rate limit" in (report.error or "")
    reply, question = load(sessions, reply_id)
    assert reply.state == "pending"
    assert earliest <= reply.next_attempt_at.timestamp() <= latest
    assert reply.attempts == 1
    assert question.state == State.SENDING
    assert fake_x.replies() == []
    assert outbox_actions(sessions, question.id) == [
        "reply.claimed",
        "state.sending",
        "reply.retry_scheduled",
    ]
    with sessions.begin() as session:
        retry = audit_trail(session, question.id)[-1]
        assert retry.detail["at"] == reply.next_attempt_at.isoformat()

    assert claim_due(sessions, now=reply.next_attempt_at - timedelta(seconds=1), lease=LEASE) == []
    clock.set(reply.next_attempt_at)
    assert claim_and_send(sessions, channel, clock, reply_id).state == "sent"
    assert len(fake_x.replies()) == 1


def test_server_errors_back_off_exponentially_and_count_attempts(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    reply_id: int,
) -> None:
    fake_x.fail("create_tweet", status=503, times=3)
    waits = []
    for attempt in (1, 2, 3):
        report = claim_and_send(sessions, channel, clock, reply_id)
        assert report.state == "pending"
        assert "503" in (report.error or "")
        reply, _ = load(sessions, reply_id)
        assert reply.attempts == attempt
        assert reply.last_error == report.error
        waits.append(reply.next_attempt_at - clock())
        clock.set(reply.next_attempt_at)

    assert waits == [FIRST_BACKOFF, 2 * FIRST_BACKOFF, 4 * FIRST_BACKOFF]
    report = claim_and_send(sessions, channel, clock, reply_id)

    assert report.state == "sent"
    assert len(fake_x.replies()) == 1
    reply, question = load(sessions, reply_id)
    assert (reply.attempts, reply.last_error) == (4, None)
    assert outbox_actions(sessions, question.id) == [
        "reply.claimed",
        "state.sending",
        "reply.retry_scheduled",
        "reply.claimed",
        "reply.retry_scheduled",
        "reply.claimed",
        "reply.retry_scheduled",
        "reply.claimed",
        "reply.sent",
        "state.answered",
    ]


def test_backoff_is_capped(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    reply_id: int,
) -> None:
    fake_x.fail("create_tweet", status=500, times=12)
    for _ in range(12):
        claim_and_send(sessions, channel, clock, reply_id)
        reply, _ = load(sessions, reply_id)
        wait = reply.next_attempt_at - clock()
        assert wait <= MAX_BACKOFF
        clock.set(reply.next_attempt_at)

    assert wait == MAX_BACKOFF
    assert fake_x.replies() == []


def test_backoff_stays_capped_after_many_attempts(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    reply_id: int,
) -> None:
    attempts = 46  # about eleven hours of X answering 5xx at MAX_BACKOFF
    fake_x.fail("create_tweet", status=500, times=attempts)
    for _ in range(attempts):
        assert claim_and_send(sessions, channel, clock, reply_id).state == "pending"
        reply, _ = load(sessions, reply_id)
        assert reply.next_attempt_at - clock() <= MAX_BACKOFF
        clock.set(reply.next_attempt_at)

    reply, _ = load(sessions, reply_id)
    assert reply.attempts == attempts
    assert fake_x.replies() == []


def test_lost_response_is_reconciled_without_posting_twice(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    queued: Queued,
) -> None:
    fake_x.lose_response("create_tweet")

    lost = claim_and_send(sessions, channel, clock, queued.reply_id)

    assert lost.state == "pending"  # we do not know it went out...
    (tweet,) = fake_x.replies()  # ...but it did
    reply, _ = load(sessions, queued.reply_id)
    clock.set(reply.next_attempt_at)

    found = claim_and_send(sessions, channel, clock, queued.reply_id)

    assert found.state == "sent"
    assert [t.id for t in fake_x.replies()] == [tweet.id]  # exactly one public reply
    assert len(fake_x.calls_to("create_tweet")) == 1
    assert fake_x.calls_to("user_tweets")[0].query["since_id"] == queued.post_id
    reply, question = load(sessions, queued.reply_id)
    assert (reply.state, reply.external_id, reply.attempts) == ("sent", tweet.id, 2)
    assert question.state == State.ANSWERED
    assert outbox_actions(sessions, question.id) == [
        "reply.claimed",
        "state.sending",
        "reply.retry_scheduled",
        "reply.claimed",
        "reply.sent",
        "state.answered",
    ]


def test_expired_lease_after_a_crash_before_posting_is_posted_once(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    queued: Queued,
) -> None:
    assert claim_due(sessions, now=clock(), lease=LEASE) == [queued.reply_id]
    # The process dies here, before calling X.
    clock.advance(LEASE + timedelta(seconds=1))

    report = claim_and_send(sessions, channel, clock, queued.reply_id)

    assert report.state == "sent"
    (tweet,) = fake_x.replies()
    assert tweet.referenced == [("replied_to", queued.post_id)]
    assert len(fake_x.calls_to("user_tweets")) == 1  # it looked before posting
    reply, question = load(sessions, queued.reply_id)
    assert (reply.state, reply.attempts, reply.external_id) == ("sent", 2, tweet.id)
    assert question.state == State.ANSWERED
    assert outbox_actions(sessions, question.id) == [
        "reply.claimed",
        "state.sending",
        "reply.claimed",  # the lease expired: taken back and reconciled
        "reply.sent",
        "state.answered",
    ]


def test_expired_lease_after_a_crash_after_posting_is_not_posted_again(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    queued: Queued,
) -> None:
    assert claim_due(sessions, now=clock(), lease=LEASE) == [queued.reply_id]
    posted = channel.post_reply(ANSWER, queued.post_id)  # the dying process got this far
    clock.advance(LEASE + timedelta(seconds=1))

    report = claim_and_send(sessions, channel, clock, queued.reply_id)

    assert report.state == "sent"
    assert [t.id for t in fake_x.replies()] == [posted.external_id]
    reply, question = load(sessions, queued.reply_id)
    assert (reply.state, reply.external_id, reply.url) == ("sent", posted.external_id, posted.url)
    assert question.state == State.ANSWERED


def test_duplicate_content_fails_the_question_without_retrying(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    reply_id: int,
) -> None:
    other = fake_x.add_mention("@AcmeHelp also late", author_handle="bob")
    channel.post_reply(ANSWER, other)  # the same text already went out to someone else

    report = claim_and_send(sessions, channel, clock, reply_id)

    assert report.state == "failed"
    assert report.error is not None
    assert "duplicate content" in report.error
    assert "edit the answer" in report.error
    assert len(fake_x.replies()) == 1  # only the earlier, unrelated one
    reply, question = load(sessions, reply_id)
    assert (reply.state, reply.last_error, reply.external_id) == ("failed", report.error, None)
    assert question.state == State.FAILED
    assert outbox_actions(sessions, question.id) == [
        "reply.claimed",
        "state.sending",
        "state.failed",
    ]
    with sessions.begin() as session:
        failed = audit_trail(session, question.id)[-1]
        assert failed.detail["from"] == "sending"
        assert "duplicate content" in failed.detail["error"]
    assert claim_due(sessions, now=clock() + timedelta(days=1), lease=LEASE) == []


def test_duplicate_refusal_of_our_own_earlier_reply_counts_as_sent(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    queued: Queued,
) -> None:
    """X refuses the text as a duplicate of our own earlier reply: look it up, count it sent."""
    # An earlier attempt already published this reply, though the row does not know it.
    posted = channel.post_reply(ANSWER, queued.post_id)

    report = claim_and_send(sessions, channel, clock, queued.reply_id)

    assert report.state == "sent"
    assert [t.id for t in fake_x.replies()] == [posted.external_id]
    reply, question = load(sessions, queued.reply_id)
    assert (reply.state, reply.external_id) == ("sent", posted.external_id)
    assert question.state == State.ANSWERED


@pytest.mark.parametrize("status", [400, 401, 403, 404])
def test_permanent_refusal_fails_the_question(  # noqa: PLR0917 - five fixtures and a parameter
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    reply_id: int,
    status: int,
) -> None:
    fake_x.fail("create_tweet", status=status)

    report = claim_and_send(sessions, channel, clock, reply_id)

    assert report.state == "failed"
    assert str(status) in (report.error or "")
    reply, question = load(sessions, reply_id)
    assert reply.state == "failed"
    assert question.state == State.FAILED
    assert fake_x.replies() == []
    assert outbox_actions(sessions, question.id) == [
        "reply.claimed",
        "state.sending",
        "state.failed",
    ]
    assert claim_due(sessions, now=clock() + timedelta(days=1), lease=LEASE) == []


def test_reply_to_a_deleted_post_fails(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    with sessions.begin() as session:
        reply_id = make_queued_reply(session, external_id="1234567890", text=ANSWER).id

    report = claim_and_send(sessions, channel, clock, reply_id)

    assert report.state == "failed"
    assert "deleted or not visible" in (report.error or "")
    _, question = load(sessions, reply_id)
    assert question.state == State.FAILED


def test_one_failing_reply_does_not_hold_up_another(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    with sessions.begin() as session:
        good = make_queued_reply(
            session, external_id=fake_x.add_mention("@AcmeHelp a"), text="answer a"
        ).id
        bad = make_queued_reply(session, external_id="1234567890", text="answer b").id

    claimed = claim_due(sessions, now=clock(), lease=LEASE)
    reports = {rid: send_claimed(sessions, channel, rid, clock=clock) for rid in claimed}

    assert sorted(claimed) == sorted([good, bad])
    assert (reports[good].state, reports[bad].state) == ("sent", "failed")
    with sessions.begin() as session:
        assert count(session, Reply, Reply.state == "sent") == 1
        assert count(session, AuditEvent, AuditEvent.action == "reply.sent") == 1


def test_replies_after_selection_keep_the_text_exactly(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    text = "Désolé 🙏 — suivi: https://acme.example/t?id=1&x=2\nÀ bientôt"
    with sessions.begin() as session:
        reply_id = make_queued_reply(
            session, external_id=fake_x.add_mention("@AcmeHelp où?"), text=text
        ).id

    assert claim_and_send(sessions, channel, clock, reply_id).state == "sent"

    (tweet,) = fake_x.replies()
    assert tweet.text == text
    with sessions.begin() as session:
        assert session.scalars(select(Reply.text)).one() == text


# -- a slow sender whose lease expired --------------------------------------------------------


def test_a_stale_sender_cannot_reopen_a_reply_that_was_sent(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    reply_id: int,
) -> None:
    assert claim_due(sessions, now=clock(), lease=LEASE) == [reply_id]  # worker A
    clock.advance(LEASE + timedelta(seconds=1))  # A is slow (e.g. its batch hit X timeouts)
    report_b = claim_and_send(sessions, channel, clock, reply_id)  # worker B takes over
    assert report_b.state == "sent"
    fake_x.fail("user_tweets", status=503)  # A finally gets to its reply; X hiccups

    send_claimed(sessions, channel, reply_id, clock=clock)  # worker A

    reply, question = load(sessions, reply_id)
    assert (reply.state, question.state) == ("sent", State.ANSWERED)
    assert claim_due(sessions, now=clock() + timedelta(days=1), lease=LEASE) == []
    assert len(fake_x.replies()) == 1


def test_a_stale_sender_finding_its_reply_already_sent_reports_sent(
    sessions: sessionmaker[Session],
    channel: XChannel,
    fake_x: FakeX,
    clock: Clock,
    reply_id: int,
) -> None:
    assert claim_due(sessions, now=clock(), lease=LEASE) == [reply_id]  # worker A
    clock.advance(LEASE + timedelta(seconds=1))
    assert claim_and_send(sessions, channel, clock, reply_id).state == "sent"  # worker B

    report = send_claimed(sessions, channel, reply_id, clock=clock)  # worker A, late

    assert report.state == "sent"
    assert len(fake_x.replies()) == 1
    with sessions.begin() as session:
        assert count(session, AuditEvent, AuditEvent.action == "state.answered") == 1
