"""Reading mentions from the stand-in X into the database: exactly once, resumable, patient."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.escalation import EscalationPolicy
from bot.intake import receive_posts
from bot.polling import MAX_BACKOFF, PollOutcome, poll_mentions
from bot.ports import Author, IncomingPost, MentionPage, PostedReply, Quota
from bot.states import State
from bot.x_channel import XChannel
from storage.models import AuditEvent, ChannelCursor, Customer, Question
from tests.dbhelpers import T0, Clock, audit_trail, count, migrated_sessions
from tests.standins.fake_x import FakeX

TIMING = EscalationPolicy(nudge_after=timedelta(minutes=15), escalate_after=timedelta(hours=1))
INTERVAL = timedelta(seconds=60)


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


class FailAfterPages:
    """The real X channel; after ``pages`` mention pages, the stand-in X answers ``status`` once.

    Only arms the stand-in's own fault injection at the right moment: every call still goes over
    HTTP through :class:`XChannel`.
    """

    def __init__(self, channel: XChannel, fake_x: FakeX, pages: int, status: int = 503) -> None:
        self.name = channel.name
        self._channel = channel
        self._fake_x = fake_x
        self._left = pages
        self._status = status

    def brand_user_id(self) -> str:
        return self._channel.brand_user_id()

    def fetch_mentions(self, since_id: str | None, pagination_token: str | None) -> MentionPage:
        page = self._channel.fetch_mentions(since_id, pagination_token)
        self._left -= 1
        if self._left == 0:
            self._fake_x.fail("mentions", status=self._status)
        return page

    def post_reply(self, text: str, in_reply_to: str) -> PostedReply:
        return self._channel.post_reply(text, in_reply_to)

    def find_reply(self, in_reply_to: str) -> PostedReply | None:
        return self._channel.find_reply(in_reply_to)

    def quotas(self) -> list[Quota]:
        return self._channel.quotas()

    def close(self) -> None:
        self._channel.close()


def poll(
    sessions: sessionmaker[Session], channel: XChannel | FailAfterPages, clock: Clock
) -> PollOutcome:
    return poll_mentions(sessions, channel, policy=lambda: TIMING, clock=clock, interval=INTERVAL)


def cursor(sessions: sessionmaker[Session]) -> ChannelCursor | None:
    with sessions.begin() as session:
        return session.get(ChannelCursor, "x")


def stored_post_ids(sessions: sessionmaker[Session]) -> list[str]:
    with sessions.begin() as session:
        return list(session.scalars(select(Question.external_id).order_by(Question.id)))


# -- storing ----------------------------------------------------------------------------------


def test_poll_stores_a_new_mention_with_its_customer(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    first = fake_x.add_mention(
        "@AcmeHelp my order #123 hasn't arrived",
        author_handle="maria_k",
        author_name="Maria K",
        author_id="4400001234",
    )
    post_id = fake_x.add_mention(
        "@AcmeHelp still nothing?",
        author_id="4400001234",
        author_handle="maria_k",
        author_name="Maria K",
        conversation_id=first,
    )
    after = datetime.now(UTC)

    outcome = poll(sessions, channel, clock)

    assert outcome.error is None
    assert outcome.skipped_until is None
    assert outcome.pages == 1
    assert len(outcome.stored) == 2
    with sessions.begin() as session:
        (customer,) = session.scalars(select(Customer))
        assert (customer.channel, customer.external_id) == ("x", "4400001234")
        assert (customer.handle, customer.name) == ("maria_k", "Maria K")
        assert customer.created_at == T0
        question = session.scalars(select(Question).where(Question.external_id == post_id)).one()
        assert question.id in outcome.stored
        assert question.customer_id == customer.id
        assert question.channel == "x"
        assert question.kind == "mention"
        assert question.text == "@AcmeHelp still nothing?"
        assert question.conversation_id == first
        assert question.post_url == f"https://x.com/maria_k/status/{post_id}"
        assert before <= question.asked_at <= after
        assert question.asked_at.tzinfo is not None
        assert question.received_at == T0
        assert question.state == State.NEW
        assert question.nudge_at == T0 + TIMING.nudge_after
        assert question.escalate_at == T0 + TIMING.escalate_after
        (event,) = audit_trail(session, question.id)
        assert event.action == "question.received"
        assert event.actor == "x:maria_k"
        assert event.detail == {"external_id": post_id, "customer_id": customer.id}
        opening = session.scalars(select(Question).where(Question.external_id == first)).one()
        assert opening.conversation_id == first
    assert cursor(sessions).since_id == post_id  # type: ignore[union-attr]


def test_brand_posts_and_reposts_are_not_questions(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    question = fake_x.add_mention("@AcmeHelp my parcel is lost", author_handle="alice")
    fake_x.add_mention("@AcmeHelp is our own account", from_brand=True)
    repost = fake_x.add_mention(
        "RT @alice: @AcmeHelp my parcel is lost", author_handle="carol", retweet_of=question
    )

    outcome = poll(sessions, channel, clock)

    assert len(outcome.stored) == 1
    assert stored_post_ids(sessions) == [question]
    with sessions.begin() as session:
        assert [c.handle for c in session.scalars(select(Customer))] == ["alice"]
    assert cursor(sessions).since_id == repost  # type: ignore[union-attr]  # newest seen


def test_250_mentions_over_three_pages_are_all_stored(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    ids = [
        fake_x.add_mention(f"@AcmeHelp question {n}", author_handle=f"c{n % 7}") for n in range(250)
    ]

    outcome = poll(sessions, channel, clock)

    assert outcome.pages == 3
    assert len(outcome.stored) == 250
    assert sorted(stored_post_ids(sessions), key=int) == ids
    assert len(fake_x.calls_to("mentions")) == 3
    state = cursor(sessions)
    assert state is not None
    assert state.since_id == ids[-1]
    assert (state.failures, state.next_poll_at, state.last_error) == (0, None, None)
    with sessions.begin() as session:
        assert count(session, Customer) == 7


def test_next_poll_asks_only_for_newer_mentions(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    ids = [fake_x.add_mention(f"@AcmeHelp question {n}") for n in range(3)]
    poll(sessions, channel, clock)
    clock.advance(INTERVAL)

    again = poll(sessions, channel, clock)

    assert again.stored == []
    assert fake_x.calls_to("mentions")[-1].query["since_id"] == ids[-1]
    assert "since_id" not in fake_x.calls_to("mentions")[0].query
    assert len(stored_post_ids(sessions)) == 3

    newer = fake_x.add_mention("@AcmeHelp one more")
    clock.advance(INTERVAL)
    third = poll(sessions, channel, clock)

    assert len(third.stored) == 1
    assert stored_post_ids(sessions)[-1] == newer
    assert cursor(sessions).since_id == newer  # type: ignore[union-attr]


def test_mention_already_stored_is_not_stored_again(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    ids = [fake_x.add_mention(f"@AcmeHelp question {n}") for n in range(3)]
    poll(sessions, channel, clock)
    with sessions.begin() as session:  # the cursor is lost: everything is read again
        session.delete(session.get_one(ChannelCursor, "x"))

    again = poll(sessions, channel, clock)

    assert again.stored == []
    assert sorted(stored_post_ids(sessions), key=int) == ids
    with sessions.begin() as session:
        assert count(session, AuditEvent, AuditEvent.action == "question.received") == 3


def test_receive_posts_counts_duplicates_own_posts_and_reposts(
    sessions: sessionmaker[Session],
) -> None:
    author = Author(external_id="4400000001", handle="maria_k", name="Maria K")
    brand = Author(external_id="1000", handle="AcmeHelp", name="Acme Help")
    post = IncomingPost("1850000000000000001", "@AcmeHelp hi", author, None, T0, "https://x.com/p")
    own = IncomingPost("1850000000000000002", "we're on it", brand, None, T0, "https://x.com/o")
    repost = IncomingPost(
        "1850000000000000003", "RT hi", author, None, T0, "https://x.com/r", is_repost=True
    )

    with sessions.begin() as session:
        first = receive_posts(
            session, channel="x", brand_id="1000", posts=[post, own, repost], policy=TIMING, now=T0
        )
    with sessions.begin() as session:
        second = receive_posts(
            session, channel="x", brand_id="1000", posts=[post], policy=TIMING, now=T0
        )

    assert (len(first.stored), first.duplicates, first.own_posts, first.reposts) == (1, 0, 1, 1)
    assert (second.stored, second.duplicates) == ([], 1)
    with sessions.begin() as session:
        assert count(session, Question) == 1
        assert count(session, Customer) == 1


def test_renamed_customer_is_updated_not_duplicated(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    fake_x.add_mention(
        "@AcmeHelp hello", author_id="4400007777", author_handle="old_handle", author_name="Old"
    )
    poll(sessions, channel, clock)
    fake_x.add_mention(
        "@AcmeHelp hello again",
        author_id="4400007777",
        author_handle="new_handle",
        author_name="New Name",
    )
    clock.advance(INTERVAL)

    poll(sessions, channel, clock)

    with sessions.begin() as session:
        (customer,) = session.scalars(select(Customer))
        assert (customer.external_id, customer.handle, customer.name) == (
            "4400007777",
            "new_handle",
            "New Name",
        )
        assert count(session, Question, Question.customer_id == customer.id) == 2


# -- failures ---------------------------------------------------------------------------------


def test_rate_limit_waits_until_the_reset_time_x_gave(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    seen = fake_x.add_mention("@AcmeHelp first")
    poll(sessions, channel, clock)
    waiting = fake_x.add_mention("@AcmeHelp second")
    fake_x.rate_limit("mentions", reset_in=900)
    clock.advance(INTERVAL)

    earliest = int(time.time()) + 900
    limited = poll(sessions, channel, clock)
    latest = int(time.time()) + 900

    reset_at = limited.skipped_until
    assert reset_at is not None
    assert earliest <= reset_at.timestamp() <= latest  # the x-rate-limit-reset header, exactly
    assert reset_at.timestamp() == int(reset_at.timestamp())
    assert limited.stored == []
    assert "rate limit" in (limited.error or "")
    state = cursor(sessions)
    assert state is not None
    assert state.since_id == seen
    assert state.next_poll_at == reset_at
    assert state.failures == 1
    calls = len(fake_x.calls_to("mentions"))

    clock.set(reset_at - timedelta(seconds=1))
    early = poll(sessions, channel, clock)

    assert early.skipped_until == reset_at
    assert early.pages == 0
    assert len(fake_x.calls_to("mentions")) == calls

    clock.set(reset_at)
    resumed = poll(sessions, channel, clock)

    assert resumed.error is None
    assert len(resumed.stored) == 1
    assert stored_post_ids(sessions) == [seen, waiting]
    state = cursor(sessions)
    assert state is not None
    assert (state.since_id, state.failures, state.next_poll_at) == (waiting, 0, None)


def test_server_error_backs_off_then_loses_nothing(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    ids = [fake_x.add_mention(f"@AcmeHelp question {n}") for n in range(5)]
    fake_x.fail("mentions", status=503, times=2)

    first = poll(sessions, channel, clock)

    assert first.skipped_until == T0 + 2 * INTERVAL
    assert "503" in (first.error or "")
    assert stored_post_ids(sessions) == []
    assert cursor(sessions).since_id is None  # type: ignore[union-attr]

    clock.set(first.skipped_until)
    second = poll(sessions, channel, clock)

    assert second.skipped_until == clock() + 4 * INTERVAL  # doubled after a second failure
    assert cursor(sessions).failures == 2  # type: ignore[union-attr]

    clock.set(second.skipped_until)
    third = poll(sessions, channel, clock)

    assert third.error is None
    assert sorted(stored_post_ids(sessions), key=int) == ids
    state = cursor(sessions)
    assert state is not None
    assert (state.since_id, state.failures, state.last_error) == (ids[-1], 0, None)


def test_backoff_never_exceeds_the_maximum(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    fake_x.fail("mentions", status=500, times=8)
    waits = []
    for _ in range(8):
        outcome = poll(sessions, channel, clock)
        assert outcome.skipped_until is not None
        waits.append(outcome.skipped_until - clock())
        clock.set(outcome.skipped_until)

    assert waits[:3] == [2 * INTERVAL, 4 * INTERVAL, 8 * INTERVAL]
    assert max(waits) == MAX_BACKOFF
    assert waits == sorted(waits)


def test_failure_on_page_two_keeps_page_one_and_the_old_cursor(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    old = fake_x.add_mention("@AcmeHelp already handled")
    poll(sessions, channel, clock)
    ids = [fake_x.add_mention(f"@AcmeHelp question {n}") for n in range(250)]
    clock.advance(INTERVAL)

    broken = poll(sessions, FailAfterPages(channel, fake_x, pages=1), clock)

    assert broken.pages == 1
    assert "503" in (broken.error or "")
    assert len(broken.stored) == 100  # the newest page was stored...
    assert sorted(stored_post_ids(sessions), key=int) == [old, *ids[-100:]]
    assert cursor(sessions).since_id == old  # type: ignore[union-attr]  # ...but not trusted
    assert broken.skipped_until is not None

    clock.set(broken.skipped_until)
    resumed = poll(sessions, channel, clock)

    assert resumed.error is None
    assert len(resumed.stored) == 150
    assert sorted(stored_post_ids(sessions), key=int) == [old, *ids]
    assert cursor(sessions).since_id == ids[-1]  # type: ignore[union-attr]
    with sessions.begin() as session:
        assert count(session, AuditEvent, AuditEvent.action == "question.received") == 251


def test_backoff_stays_at_the_maximum_after_many_failures(
    sessions: sessionmaker[Session], channel: XChannel, fake_x: FakeX, clock: Clock
) -> None:
    failures = 45  # e.g. revoked credentials: about eleven hours at MAX_BACKOFF
    fake_x.fail("mentions", status=500, times=failures)
    for _ in range(failures):
        outcome = poll(sessions, channel, clock)
        assert outcome.skipped_until is not None
        assert outcome.skipped_until - clock() <= MAX_BACKOFF
        clock.set(outcome.skipped_until)

    assert cursor(sessions).failures == failures  # type: ignore[union-attr]
