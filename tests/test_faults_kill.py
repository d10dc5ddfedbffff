"""Nothing lost, nothing doubled: crowdcare SIGKILLed at each step of its loop, then restarted.

Each test runs `python -m bot serve` as a child process against the stand-ins, has a stand-in
hook kill it (SIGKILL: no handler, no clean-up) at one exact step, checks the step was hit where
intended, starts a new process on the same database and checks what the outside world holds:
one question and one card per mention, at most one public reply per question, and every question
answered, or held for a moderator with a message saying why.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standins.crowd import (
    CARD_TAG,
    Ledger,
    QuestionRow,
    card_counts,
    propose,
    replies_per_post,
    vote,
)
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX, route_of
from tests.standins.loopback import HookedRequest, Verdict
from tests.standins.stack import QUESTIONS_CHANNEL, wait_until
from tests.standins.subprocess_app import Fleet, ServedBot

pytestmark = [pytest.mark.slow, pytest.mark.e2e]

TIMEOUT = 30.0  # generous: a loaded CI machine starts a Python process slowly
AUTHOR, VOTER = "U0ALICE", "U0BOB"

Deploy = Callable[..., ServedBot]


@pytest.fixture
def deploy(
    tmp_path: Path, fake_slack: FakeSlack, fake_x: FakeX, database_url: str
) -> Iterator[Deploy]:
    """Makes a (not yet started) crowdcare deployment; kills whatever still runs at the end."""
    defaults = {"CARE_VOTES_TO_SELECT": "1"}
    with Fleet(tmp_path, fake_slack, fake_x, database_url, defaults) as fleet:
        yield fleet.new


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    books = Ledger(database_url)
    yield books
    books.close()


# -- steps and checks ---------------------------------------------------------------------


def mentions(x: FakeX, count: int) -> list[str]:
    return [
        x.add_mention(f"@AcmeHelp order {n} has not arrived", author_handle=f"customer{n}")
        for n in range(count)
    ]


def is_card(request: HookedRequest) -> bool:
    metadata = request.params.get("metadata") or {}
    return (
        request.params.get("channel") == QUESTIONS_CHANNEL
        and metadata.get("event_type") == CARD_TAG
    )


def cards_recorded(ledger: Ledger, count: int) -> list[QuestionRow]:
    """Wait until ``count`` questions exist and each has its card recorded."""

    def done() -> list[QuestionRow] | None:
        questions = ledger.questions()
        ready = len(questions) == count and all(q.card_ts for q in questions)
        return questions if ready else None

    found: list[QuestionRow] = wait_until(done, TIMEOUT, f"{count} questions with cards")
    return found


def assert_one_question_and_one_card_each(
    ledger: Ledger, slack: FakeSlack, posted: list[str]
) -> list[QuestionRow]:
    questions = ledger.questions()
    assert sorted(q.external_id for q in questions) == sorted(posted), "a mention lost or doubled"
    counts = card_counts(slack)
    doubled = {qid: n for qid, n in counts.items() if n != 1}
    assert not doubled, f"questions with more than one card: {doubled}"
    assert set(counts) == {q.id for q in questions}, "a question without a card"
    cards = {
        message["metadata"]["event_payload"]["question_id"]: message["ts"]
        for message in slack.messages(QUESTIONS_CHANNEL)
        if (message.get("metadata") or {}).get("event_type") == CARD_TAG
    }
    for question in questions:
        assert question.card_ts == cards[question.id], "the recorded card is not the posted one"
    return questions


def answer(bot: ServedBot, slack: FakeSlack, question: QuestionRow) -> dict[str, object]:
    """Alice proposes, Bob's vote selects (CARE_VOTES_TO_SELECT=1)."""
    proposal = propose(
        bot.slack,
        slack,
        question,
        author=AUTHOR,
        answer=f"Sorry about that! Your parcel for post {question.external_id} is on its way.",
    )
    vote(bot.slack, proposal, VOTER)
    return proposal


def assert_all_answered_once(ledger: Ledger, x: FakeX, posted: list[str]) -> None:
    wait_until(
        lambda: ledger.states() == {"answered": len(posted)},
        TIMEOUT,
        f"{len(posted)} questions answered (states now {ledger.states()})",
    )
    assert replies_per_post(x) == dict.fromkeys(posted, 1), "a reply lost or doubled"
    replies = ledger.replies()
    by_id = {tweet.id for tweet in x.replies()}
    assert {reply.external_id for reply in replies.values()} == by_id


def answer_all_and_check(
    bot: ServedBot, ledger: Ledger, slack: FakeSlack, x: FakeX, posted: list[str]
) -> None:
    for question in ledger.questions():
        answer(bot, slack, question)
    assert_all_answered_once(ledger, x, posted)


# -- (a) after fetching mentions ----------------------------------------------------------


def test_killed_after_fetching_mentions_loses_none(
    deploy: Deploy, fake_slack: FakeSlack, fake_x: FakeX, ledger: Ledger
) -> None:
    posted = mentions(fake_x, 3)
    bot = deploy()
    fake_x.on("GET", "/2/users/", when=lambda r: r.path.endswith("/mentions"), after=bot.killer())
    bot.start()
    bot.wait_killed(TIMEOUT)
    # X answered, the bot never read the answer: nothing stored, the cursor did not move.
    assert len(fake_x.calls_to("mentions")) == 1
    assert ledger.questions() == []

    bot.start()
    cards_recorded(ledger, 3)
    assert_one_question_and_one_card_each(ledger, fake_slack, posted)
    answer_all_and_check(bot, ledger, fake_slack, fake_x, posted)


def test_killed_between_mention_pages_keeps_page_one_and_loses_none(
    deploy: Deploy, fake_slack: FakeSlack, fake_x: FakeX, ledger: Ledger
) -> None:
    posted = mentions(fake_x, 102)  # two pages of (at most) 100
    bot = deploy()
    fake_x.on(
        "GET",
        "/2/users/",
        when=lambda r: r.path.endswith("/mentions") and "pagination_token" in r.params,
        after=bot.killer(),
    )
    bot.start()
    bot.wait_killed(TIMEOUT)
    # Page one was stored before page two was asked for; page two was never read.
    assert len(ledger.questions()) == 100

    bot.start()
    cards_recorded(ledger, 102)
    questions = assert_one_question_and_one_card_each(ledger, fake_slack, posted)
    first, last = questions[0], questions[-1]
    answer(bot, fake_slack, first)
    answer(bot, fake_slack, last)
    wait_until(lambda: ledger.states() == {"answered": 2, "open": 100}, TIMEOUT, "two answered")
    assert replies_per_post(fake_x) == {first.external_id: 1, last.external_id: 1}


# -- (b) after posting a card -------------------------------------------------------------


def test_killed_after_posting_a_card_posts_no_second_card(
    deploy: Deploy, fake_slack: FakeSlack, fake_x: FakeX, ledger: Ledger
) -> None:
    posted = mentions(fake_x, 3)
    bot = deploy()
    # The second card: Slack has it, the bot dies before it hears its ts.
    fake_slack.on("POST", "/api/chat.postMessage", when=is_card, skip=1, after=bot.killer())
    bot.start()
    bot.wait_killed(TIMEOUT)
    assert sum(card_counts(fake_slack).values()) == 2
    unrecorded = [q for q in ledger.questions() if q.card_ts is None and q.card_attempts == 1]
    assert len(unrecorded) == 1, ledger.questions()

    bot.start()
    cards_recorded(ledger, 3)
    assert_one_question_and_one_card_each(ledger, fake_slack, posted)
    # The new process looked for the card (metadata) before posting, and found it.
    assert ledger.question(unrecorded[0].external_id).card_attempts == 2
    answer_all_and_check(bot, ledger, fake_slack, fake_x, posted)


# -- (c) after selection ------------------------------------------------------------------


def test_killed_right_after_the_selecting_vote_sends_the_reply_once(
    deploy: Deploy, fake_slack: FakeSlack, fake_x: FakeX, ledger: Ledger
) -> None:
    posted = mentions(fake_x, 1)
    # The outbox runs only when woken, so the reply is still pending when the process dies.
    bot = deploy(CARE_OUTBOX_SECONDS="3600")
    bot.start()
    [question] = cards_recorded(ledger, 1)
    proposal = answer_proposal_only(bot, fake_slack, question)
    # The first thing a selecting vote does after its commit is re-render the proposal.
    fake_slack.on(
        "POST",
        "/api/chat.update",
        when=lambda r: r.params.get("ts") == proposal["ts"],
        before=bot.killer(Verdict.DROP),
    )
    vote(bot.slack, proposal, VOTER)  # Slack got its 200; the work after it is cut short
    bot.wait_killed(TIMEOUT)
    assert ledger.question(posted[0]).state == "selected"
    [reply] = ledger.replies().values()
    assert (reply.state, reply.attempts) == ("pending", 0)
    assert fake_x.replies() == []

    bot.start(CARE_OUTBOX_SECONDS="0.2")
    assert_all_answered_once(ledger, fake_x, posted)
    assert len(fake_x.calls_to("create_tweet")) == 1


def answer_proposal_only(bot: ServedBot, slack: FakeSlack, question: QuestionRow) -> dict[str, Any]:
    proposal = propose(
        bot.slack,
        slack,
        question,
        author=AUTHOR,
        answer=f"Sorry about that! Your parcel for post {question.external_id} is on its way.",
    )
    # Wait for the card's own refresh after the proposal, so it cannot trip the hook below.
    wait_until(
        lambda: any(
            call.params.get("ts") == question.card_ts and call.status
            for call in slack.calls_to("chat.update")
        ),
        TIMEOUT,
        "the card's update after the proposal",
    )
    return proposal


def test_killed_as_the_reply_reaches_x_sends_it_once(
    deploy: Deploy, fake_slack: FakeSlack, fake_x: FakeX, ledger: Ledger
) -> None:
    posted = mentions(fake_x, 1)
    bot = deploy()
    # X never processes this request: the process dies with its claim on the reply.
    fake_x.on("POST", "/2/tweets", before=bot.killer(Verdict.DROP))
    bot.start()
    [question] = cards_recorded(ledger, 1)
    answer(bot, fake_slack, question)
    bot.wait_killed(TIMEOUT)
    assert fake_x.replies() == []
    [reply] = ledger.replies().values()
    assert (reply.state, reply.attempts) == ("sending", 1)

    bot.start()
    assert_all_answered_once(ledger, fake_x, posted)
    # Its fate unknown, the reply was looked for on X before it was posted again.
    routes = [route_of(call.method, call.path) for call in fake_x.calls]
    first = routes.index("create_tweet")
    second = routes.index("create_tweet", first + 1)
    assert "user_tweets" in routes[first:second]
    assert routes.count("create_tweet") == 2
    assert ledger.replies()[question.id].attempts == 2


# -- (d) between sending the reply and recording it ---------------------------------------


def test_killed_after_x_posted_the_reply_does_not_post_it_again(
    deploy: Deploy, fake_slack: FakeSlack, fake_x: FakeX, ledger: Ledger
) -> None:
    posted = mentions(fake_x, 1)
    bot = deploy()
    fake_x.on("POST", "/2/tweets", after=bot.killer())  # X posted it; the answer never arrives
    bot.start()
    [question] = cards_recorded(ledger, 1)
    answer(bot, fake_slack, question)
    bot.wait_killed(TIMEOUT)
    [tweet] = fake_x.replies()
    assert ledger.replies()[question.id].state == "sending"

    bot.start()
    assert_all_answered_once(ledger, fake_x, posted)
    assert len(fake_x.calls_to("create_tweet")) == 1, "posted again instead of reconciling"
    assert ledger.replies()[question.id].external_id == tweet.id


def test_reply_of_unknown_fate_that_x_will_not_show_is_held_for_a_person(
    deploy: Deploy, fake_slack: FakeSlack, fake_x: FakeX, ledger: Ledger
) -> None:
    posted = mentions(fake_x, 1)
    bot = deploy()
    fake_x.on("POST", "/2/tweets", after=bot.killer())
    bot.start()
    [question] = cards_recorded(ledger, 1)
    answer(bot, fake_slack, question)
    bot.wait_killed(TIMEOUT)
    # The reply is public, but X's timeline does not show it yet to the lookups that follow.
    fake_x.lag("user_tweets", times=2)

    bot.start()
    wait_until(lambda: ledger.question(posted[0]).state == "failed", TIMEOUT, "held (failed)")
    # The new process looked (nothing), posted, was told "duplicate", looked again (nothing):
    # it gives up rather than risk a second public reply, and says so in the card's thread.
    assert replies_per_post(fake_x) == {posted[0]: 1}
    assert len(fake_x.calls_to("user_tweets")) == 2
    notice = wait_until(
        lambda: [
            m["text"]
            for m in fake_slack.thread(QUESTIONS_CHANNEL, question.card_ts or "")
            if "did not accept the reply" in (m.get("text") or "")
        ],
        TIMEOUT,
        "a notice in the card's thread",
    )
    assert "already posted" in notice[0]
    assert "before sending" in notice[0]
    assert ledger.replies()[question.id].state == "failed"
