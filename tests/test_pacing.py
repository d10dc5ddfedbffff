"""Posts to one Slack channel are paced (about 1/s); a 429's Retry-After holds the channel back.

The unit tests drive bot.pacing with a hand-moved clock (no timing). The end-to-end test lets
the stand-in Slack rate-limit chat.postMessage and checks the arrival times it recorded.
"""

from __future__ import annotations

import threading
from itertools import pairwise

import pytest
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from sqlalchemy import select

from bot.config import ConfigError, load_settings
from bot.pacing import ChannelPacer
from bot.slack_notifier import posted_channel, retry_after
from storage.models import Question
from tests.scenario import cards
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until


class FakeTime:
    """A clock that moves only when the pacer sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def pacer(interval: float = 1.0) -> tuple[ChannelPacer, FakeTime]:
    time = FakeTime()
    return ChannelPacer(interval, clock=time.clock, sleep=time.sleep), time


def test_first_post_to_a_channel_goes_at_once() -> None:
    paced, time = pacer()
    assert paced.wait("C1") == 0
    assert time.slept == []


def test_posts_to_one_channel_are_spaced_by_the_interval() -> None:
    paced, _ = pacer(1.0)
    delays = [paced.reserve("C1") for _ in range(4)]
    assert delays == [0, 1.0, 2.0, 3.0]


def test_a_waiting_channel_does_not_hold_up_another() -> None:
    paced, _ = pacer(1.0)
    paced.reserve("C1")
    paced.reserve("C1")
    assert paced.reserve("C2") == 0


def test_time_that_passed_counts_toward_the_interval() -> None:
    paced, time = pacer(1.0)
    paced.wait("C1")
    time.now += 0.4
    assert paced.reserve("C1") == pytest.approx(0.6)
    time.now += 5
    assert paced.reserve("C1") == 0


def test_retry_after_pushes_the_channel_back_for_everyone() -> None:
    paced, time = pacer(1.0)
    paced.wait("C1")
    paced.defer("C1", 30)
    assert paced.wait("C1") == 30
    assert paced.reserve("C1") == pytest.approx(1.0)  # then the usual spacing again
    assert paced.reserve("C2") == 0
    assert time.slept == [30]


def test_retry_after_never_pulls_a_later_slot_forward() -> None:
    paced, _ = pacer(1.0)
    for _ in range(5):
        paced.reserve("C1")
    paced.defer("C1", 2)
    assert paced.reserve("C1") == 5.0


def test_threads_get_distinct_slots() -> None:
    paced, _ = pacer(1.0)
    delays: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(20)

    def post() -> None:
        start.wait()
        delay = paced.reserve("C1")
        with lock:
            delays.append(delay)

    threads = [threading.Thread(target=post) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(delays) == [float(n) for n in range(20)]


def test_the_interval_is_a_setting() -> None:
    assert load_settings({}, env_file=None).slack_channel_interval == 1.0
    assert (
        load_settings({"CARE_SLACK_CHANNEL_INTERVAL": "2.5"}, env_file=None).slack_channel_interval
        == 2.5
    )
    with pytest.raises(ConfigError, match="CARE_SLACK_CHANNEL_INTERVAL"):
        load_settings({"CARE_SLACK_CHANNEL_INTERVAL": "soon"}, env_file=None)


def test_a_negative_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        ChannelPacer(-1)


def test_the_channel_of_a_post_is_read_from_json_or_form_bodies() -> None:
    url = "https://slack.com/api/chat.postMessage"
    json_post = HttpRequest(method="POST", url=url, headers={}, data=b'{"channel": "C1"}')
    form_post = HttpRequest(method="POST", url=url, headers={}, data=b"channel=C2&text=hi")
    update = HttpRequest(
        method="POST", url="https://slack.com/api/chat.update", headers={}, data=b'{"channel":"C"}'
    )
    assert posted_channel(json_post) == "C1"
    assert posted_channel(form_post) == "C2"
    assert posted_channel(update) is None


def test_retry_after_is_read_from_the_header() -> None:
    assert retry_after(HttpResponse(status_code=429, headers={"Retry-After": ["7"]})) == 7
    assert retry_after(HttpResponse(status_code=429, headers={"retry-after": ["2"]})) == 2
    assert retry_after(HttpResponse(status_code=429, headers={})) == 1
    assert retry_after(HttpResponse(status_code=429, headers={"Retry-After": ["soon"]})) == 1


# -- end to end ---------------------------------------------------------------------------

MENTIONS = 10
INTERVAL = 1.0
RETRY_AFTER = 2
# Arrival times differ from send times by scheduling jitter; Slack's own window is fuzzy too.
JITTER = 0.15


@pytest.mark.e2e
@pytest.mark.slow
def test_rate_limited_posts_are_paced_and_every_card_arrives_once(
    fake_slack: FakeSlack, fake_x: FakeX, database_url: str
) -> None:
    # Slack refuses a second post to a channel within ~1 s, and starts with a 429 anyway.
    fake_slack.limit_per_channel("chat.postMessage", INTERVAL - JITTER, retry_after=1)
    fake_slack.rate_limit("chat.postMessage", times=1, retry_after=RETRY_AFTER)
    for n in range(MENTIONS):
        fake_x.add_mention(f"@AcmeHelp question number {n:02d}, please help", author_handle=f"c{n}")
    stack = Stack(
        fake_slack,
        fake_x,
        database_url,
        overrides={"CARE_SLACK_CHANNEL_INTERVAL": str(INTERVAL)},
    ).start()
    try:
        wait_until(lambda: len(cards(stack)) >= MENTIONS, 60, f"{MENTIONS} cards")

        def recorded() -> list[str | None] | None:
            # The card's ts is written just after Slack answers: wait for the last one too.
            with stack.app.sessions.begin() as session:
                found = list(session.scalars(select(Question.card_ts)))
            return found if len(found) == MENTIONS and None not in found else None

        card_ts = wait_until(recorded, 30, "every card's ts recorded") or []
    finally:
        stack.stop()

    shown = {n: len(cards(stack, f"number {n:02d}")) for n in range(MENTIONS)}
    assert shown == dict.fromkeys(range(MENTIONS), 1)  # no duplicate from a retried post
    assert None not in card_ts
    assert sorted(map(str, card_ts)) == sorted(card["ts"] for card in cards(stack))

    posts = [
        call
        for call in fake_slack.calls_to("chat.postMessage")
        if call.params["channel"] == QUESTIONS_CHANNEL
    ]
    statuses = [call.status for call in posts]
    # The one injected 429, then every post accepted: the pacer never ran into the limit.
    assert statuses == [429] + [200] * MENTIONS
    gaps = [later.at - earlier.at for earlier, later in pairwise(posts)]
    assert gaps[0] >= RETRY_AFTER - JITTER  # Retry-After was honoured
    assert all(gap >= INTERVAL - JITTER for gap in gaps[1:]), gaps
