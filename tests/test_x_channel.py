"""The real X adapter (tweepy underneath) against the fake X API v2 server."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
from requests_oauthlib import OAuth1  # type: ignore[import-untyped]

from bot.ports import (
    DuplicateContent,
    PermanentChannelError,
    RateLimited,
    TransientChannelError,
)
from bot.x_channel import XChannel
from tests.standins.fake_x import FakeX

ChannelFactory = Callable[..., XChannel]


@pytest.fixture
def fake_x() -> Iterator[FakeX]:
    with FakeX() as fake:
        yield fake


@pytest.fixture
def make_channel(fake_x: FakeX) -> Iterator[ChannelFactory]:
    made: list[XChannel] = []

    def make(**overrides: object) -> XChannel:
        settings: dict[str, object] = {
            "api_url": fake_x.base_url,
            "bearer_token": fake_x.bearer_token,
            "api_key": fake_x.consumer_key,
            "api_secret": fake_x.consumer_secret,
            "access_token": fake_x.access_token,
            "access_token_secret": fake_x.access_token_secret,
            "user_id": fake_x.brand_id,
            "timeout": 5.0,
        }
        settings.update(overrides)
        channel = XChannel(**settings)  # type: ignore[arg-type]
        made.append(channel)
        return channel

    yield make
    for channel in made:
        channel.close()


@pytest.fixture
def channel(make_channel: ChannelFactory) -> XChannel:
    return make_channel()


# -- reading mentions -------------------------------------------------------------------------


def test_fetch_mentions_maps_one_page(fake_x: FakeX, channel: XChannel) -> None:
    first = fake_x.add_mention("@AcmeHelp where is my order?", author_handle="alice")
    second = fake_x.add_mention(
        "@AcmeHelp same here", author_handle="bob", author_name="Bob B", conversation_id=first
    )

    page = channel.fetch_mentions(None, None)

    assert [post.external_id for post in page.posts] == [second, first]  # newest first
    assert page.newest_id == second
    assert page.next_token is None
    newest = page.posts[0]
    assert newest.text == "@AcmeHelp same here"
    assert newest.author.handle == "bob"
    assert newest.author.name == "Bob B"
    assert newest.author.external_id.isdigit()
    assert newest.conversation_id == first
    assert newest.url == f"https://x.com/bob/status/{second}"
    assert newest.is_repost is False
    assert newest.created_at.tzinfo is not None
    assert newest.created_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - newest.created_at) < timedelta(minutes=1)

    (call,) = fake_x.calls_to("mentions")
    assert call.path == f"/2/users/{fake_x.brand_id}/mentions"
    assert call.headers["authorization"] == f"Bearer {fake_x.bearer_token}"
    assert call.query["max_results"] == "100"
    assert call.query["expansions"] == "author_id"
    assert set(call.query["tweet.fields"].split(",")) == {
        "author_id",
        "conversation_id",
        "created_at",
        "referenced_tweets",
    }
    assert set(call.query["user.fields"].split(",")) == {"username", "name"}


def test_empty_mentions(channel: XChannel) -> None:
    page = channel.fetch_mentions(None, None)
    assert page.posts == []
    assert page.newest_id is None
    assert page.next_token is None


def test_pagination_over_250_mentions(fake_x: FakeX, channel: XChannel) -> None:
    ids = [fake_x.add_mention(f"@AcmeHelp question {n}") for n in range(250)]

    pages = [channel.fetch_mentions(None, None)]
    while pages[-1].next_token:
        pages.append(channel.fetch_mentions(None, pages[-1].next_token))

    assert [len(page.posts) for page in pages] == [100, 100, 50]
    seen = [post.external_id for page in pages for post in page.posts]
    assert seen == list(reversed(ids))
    assert pages[0].newest_id == ids[-1]
    assert "pagination_token" not in fake_x.calls_to("mentions")[0].query
    assert fake_x.calls_to("mentions")[1].query["pagination_token"] == pages[0].next_token


def test_since_id_excludes_older_and_equal(fake_x: FakeX, channel: XChannel) -> None:
    old = fake_x.add_mention("@AcmeHelp old")
    seen = fake_x.add_mention("@AcmeHelp seen")
    new = fake_x.add_mention("@AcmeHelp new")

    page = channel.fetch_mentions(seen, None)

    assert [post.external_id for post in page.posts] == [new]
    assert old not in {post.external_id for post in page.posts}
    assert fake_x.calls_to("mentions")[0].query["since_id"] == seen
    assert channel.fetch_mentions(new, None).posts == []


def test_reposts_are_flagged(fake_x: FakeX, channel: XChannel) -> None:
    original = fake_x.add_mention("@AcmeHelp my parcel is lost", author_handle="alice")
    repost = fake_x.add_mention(
        "RT @alice: @AcmeHelp my parcel is lost", author_handle="carol", retweet_of=original
    )

    flags = {post.external_id: post.is_repost for post in channel.fetch_mentions(None, None).posts}

    assert flags == {original: False, repost: True}


def test_mentions_with_user_auth_when_no_bearer(
    fake_x: FakeX, make_channel: ChannelFactory
) -> None:
    fake_x.add_mention("@AcmeHelp hi")
    channel = make_channel(bearer_token=None)

    assert len(channel.fetch_mentions(None, None).posts) == 1
    assert fake_x.calls_to("mentions")[0].headers["authorization"].startswith("OAuth ")


def test_unknown_brand_id_is_permanent(make_channel: ChannelFactory) -> None:
    channel = make_channel(user_id="999999")
    with pytest.raises(PermanentChannelError, match="Could not find user"):
        channel.fetch_mentions(None, None)


def test_brand_user_id_from_users_me_once(fake_x: FakeX, make_channel: ChannelFactory) -> None:
    channel = make_channel(user_id=None)

    assert channel.brand_user_id() == fake_x.brand_id
    assert channel.brand_user_id() == fake_x.brand_id
    channel.fetch_mentions(None, None)

    (call,) = fake_x.calls_to("me")
    assert call.headers["authorization"].startswith("OAuth ")


def test_given_user_id_skips_users_me(fake_x: FakeX, channel: XChannel) -> None:
    assert channel.brand_user_id() == fake_x.brand_id
    assert fake_x.calls_to("me") == []


# -- posting replies --------------------------------------------------------------------------


def test_post_reply_is_signed_and_recorded(fake_x: FakeX, channel: XChannel) -> None:
    question = fake_x.add_mention("@AcmeHelp can I return shoes?")

    posted = channel.post_reply("Yes, within 30 days!", question)

    (reply,) = fake_x.wait_for_replies(1)
    assert posted.external_id == reply.id
    assert posted.url == f"https://x.com/i/web/status/{reply.id}"
    assert reply.text == "Yes, within 30 days!"
    assert reply.author_id == fake_x.brand_id
    assert reply.referenced == [("replied_to", question)]
    assert reply.conversation_id == question
    (call,) = fake_x.calls_to("create_tweet")
    assert call.body == {
        "text": "Yes, within 30 days!",
        "reply": {"in_reply_to_tweet_id": question},
    }
    assert call.headers["authorization"].startswith("OAuth ")
    assert 'oauth_signature_method="HMAC-SHA1"' in call.headers["authorization"]


def test_wrong_secret_fails_signature_check(fake_x: FakeX, make_channel: ChannelFactory) -> None:
    question = fake_x.add_mention("@AcmeHelp hello?")
    channel = make_channel(access_token_secret="not-the-secret")

    with pytest.raises(PermanentChannelError, match="401") as raised:
        channel.post_reply("Hi!", question)

    assert "not-the-secret" not in str(raised.value)
    assert fake_x.replies() == []


def test_fake_rejects_a_signature_made_for_another_url(fake_x: FakeX) -> None:
    """What the session rewrite guards against: signing api.twitter.com, then calling the fake."""
    auth = OAuth1(
        fake_x.consumer_key,
        client_secret=fake_x.consumer_secret,
        resource_owner_key=fake_x.access_token,
        resource_owner_secret=fake_x.access_token_secret,
    )
    signed = requests.Request("GET", "https://api.twitter.com/2/users/me", auth=auth).prepare()
    correctly_signed = requests.Request("GET", f"{fake_x.base_url}/2/users/me", auth=auth).prepare()

    with requests.Session() as session:
        signed.url = f"{fake_x.base_url}/2/users/me"
        assert session.send(signed, timeout=5).status_code == 401
        assert session.send(correctly_signed, timeout=5).status_code == 200


def test_bearer_only_cannot_post(fake_x: FakeX, make_channel: ChannelFactory) -> None:
    question = fake_x.add_mention("@AcmeHelp hello?")
    channel = make_channel(
        api_key=None, api_secret=None, access_token=None, access_token_secret=None
    )

    with pytest.raises(PermanentChannelError, match="user-context credentials"):
        channel.post_reply("Hi!", question)
    assert fake_x.calls_to("create_tweet") == []


def test_duplicate_text_is_duplicate_content(fake_x: FakeX, channel: XChannel) -> None:
    first = fake_x.add_mention("@AcmeHelp one")
    second = fake_x.add_mention("@AcmeHelp two")
    channel.post_reply("Thanks, we're on it!", first)

    with pytest.raises(DuplicateContent, match="duplicate content"):
        channel.post_reply("Thanks, we're on it!", second)


def test_reply_to_unknown_tweet_is_permanent(channel: XChannel) -> None:
    with pytest.raises(PermanentChannelError, match="deleted or not visible") as raised:
        channel.post_reply("Hello", "1234567890")
    assert not isinstance(raised.value, DuplicateContent)


def test_too_long_text_is_permanent(fake_x: FakeX, channel: XChannel) -> None:
    question = fake_x.add_mention("@AcmeHelp hello?")
    with pytest.raises(PermanentChannelError, match="too long"):
        channel.post_reply("x" * 281, question)


# -- failures ---------------------------------------------------------------------------------


def test_rate_limited_carries_reset_at(fake_x: FakeX, channel: XChannel) -> None:
    question = fake_x.add_mention("@AcmeHelp hello?")
    fake_x.rate_limit("create_tweet", reset_in=120)
    expected = datetime.now(UTC) + timedelta(seconds=120)

    with pytest.raises(RateLimited) as raised:
        channel.post_reply("Hi!", question)

    reset_at = raised.value.reset_at
    assert reset_at is not None
    assert reset_at.tzinfo is not None
    assert abs(reset_at - expected) <= timedelta(seconds=2)
    assert raised.value.retryable
    assert channel.post_reply("Hi!", question).external_id  # the limit was only once


def test_rate_limited_mentions(fake_x: FakeX, channel: XChannel) -> None:
    fake_x.rate_limit("mentions", reset_in=900)
    with pytest.raises(RateLimited) as raised:
        channel.fetch_mentions(None, None)
    assert raised.value.reset_at is not None


def test_server_error_is_transient(fake_x: FakeX, channel: XChannel) -> None:
    fake_x.fail("mentions", status=503)
    with pytest.raises(TransientChannelError, match="503"):
        channel.fetch_mentions(None, None)
    assert channel.fetch_mentions(None, None).posts == []


def test_timeout_is_transient(fake_x: FakeX, make_channel: ChannelFactory) -> None:
    channel = make_channel(timeout=0.5)
    fake_x.hang("mentions", seconds=2)

    started = time.monotonic()
    with pytest.raises(TransientChannelError, match="Timeout"):
        channel.fetch_mentions(None, None)
    assert time.monotonic() - started < 1.5


def test_lost_response_then_find_reply(fake_x: FakeX, channel: XChannel) -> None:
    question = fake_x.add_mention("@AcmeHelp is the store open on Sunday?")
    fake_x.add_mention("@AcmeHelp unrelated")
    fake_x.lose_response("create_tweet")

    with pytest.raises(TransientChannelError):
        channel.post_reply("Yes, 10:00-16:00.", question)

    (created,) = fake_x.replies()  # sent, though the client never heard back
    found = channel.find_reply(question)
    assert found is not None
    assert found.external_id == created.id
    assert found.url == f"https://x.com/i/web/status/{created.id}"
    call = fake_x.calls_to("user_tweets")[0]
    assert call.path == f"/2/users/{fake_x.brand_id}/tweets"
    assert call.query["since_id"] == question


def test_find_reply_none_when_never_answered(fake_x: FakeX, channel: XChannel) -> None:
    answered = fake_x.add_mention("@AcmeHelp one")
    unanswered = fake_x.add_mention("@AcmeHelp two")
    channel.post_reply("Answer to one", answered)

    assert channel.find_reply(unanswered) is None
    assert channel.find_reply(answered) is not None


def test_find_reply_pages_through_timeline(fake_x: FakeX, channel: XChannel) -> None:
    question = fake_x.add_mention("@AcmeHelp first question")
    channel.post_reply("The answer", question)
    for n in range(150):  # newer brand replies push the one we want to the second page
        other = fake_x.add_mention(f"@AcmeHelp question {n}")
        channel.post_reply(f"Answer {n}", other)

    found = channel.find_reply(question)

    assert found is not None
    assert found.external_id == fake_x.replies()[0].id
    assert len(fake_x.calls_to("user_tweets")) == 2


# -- secrets ----------------------------------------------------------------------------------


def test_credentials_never_reach_debug_logs(
    fake_x: FakeX, channel: XChannel, caplog: pytest.LogCaptureFixture
) -> None:
    question = fake_x.add_mention("@AcmeHelp hello?")
    caplog.set_level(logging.DEBUG)

    channel.fetch_mentions(None, None)
    channel.post_reply("Hi there!", question)

    text = caplog.text + "\n".join(record.getMessage() for record in caplog.records)
    assert "Making API request" in text  # tweepy really logged the request headers
    assert "Bearer [REDACTED]" in text
    for secret in (
        fake_x.bearer_token,
        fake_x.consumer_secret,
        fake_x.access_token,
        fake_x.access_token_secret,
        fake_x.consumer_key,
    ):
        assert secret not in text
