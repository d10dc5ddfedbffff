"""Two crowdcare processes sharing one database: no card, reply, nudge or escalation twice.

Both processes poll the same X account, post cards from the same table, take votes for the same
proposals (at the same moment), send from the same outbox and sweep the same deadlines, as two
replicas of a deployment do. What Slack and X end up holding is counted at the end.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins.crowd import (
    ESCALATION_TAG,
    NUDGE_TAG,
    Ledger,
    QuestionRow,
    card_counts,
    propose,
    replies_per_post,
    tagged,
    vote,
)
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import QUESTIONS_CHANNEL, wait_until
from tests.standins.subprocess_app import Fleet, ServedBot

pytestmark = [pytest.mark.slow, pytest.mark.e2e, pytest.mark.postgres]

TIMEOUT = 60.0
ESCALATIONS = "C0ESCALATE"
MENTIONS, ANSWERED = 20, 10


@pytest.fixture
def pair(
    tmp_path: Path, fake_slack: FakeSlack, fake_x: FakeX, database_url: str, on_postgres: bool
) -> Iterator[tuple[ServedBot, ServedBot]]:
    if not on_postgres:
        pytest.skip(
            "two processes share a database only on PostgreSQL; SQLite is the single-process "
            "embedded default (set TEST_DATABASE_URL to run this)"
        )
    settings = {
        "CARE_VOTES_TO_SELECT": "2",
        "CARE_NUDGE_AFTER": "2s",
        "CARE_ESCALATE_AFTER": "4s",
        "CARE_ESCALATE_AGAIN_AFTER": "6s",
        "CARE_SWEEP_SECONDS": "0.2",
        "CARE_ESCALATION_CHANNEL": ESCALATIONS,
    }
    with Fleet(tmp_path, fake_slack, fake_x, database_url, settings) as fleet:
        first, second = fleet.new("first"), fleet.new("second")
        first.start()
        second.start()
        yield first, second


@pytest.fixture
def ledger(database_url: str) -> Iterator[Ledger]:
    books = Ledger(database_url)
    yield books
    books.close()


def votes_at_once(first: ServedBot, second: ServedBot, proposal: dict[str, object]) -> None:
    """Bob votes through one process while Cara votes through the other, at the same moment."""
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def cast(bot: ServedBot, voter: str) -> None:
        try:
            start.wait(timeout=10)
            vote(bot.slack, proposal, voter)
        except BaseException as exc:  # reported by the test thread below
            errors.append(exc)

    threads = [
        threading.Thread(target=cast, args=(first, "U0BOB")),
        threading.Thread(target=cast, args=(second, "U0CARA")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors


def test_two_processes_on_one_database_double_nothing(
    pair: tuple[ServedBot, ServedBot], fake_slack: FakeSlack, fake_x: FakeX, ledger: Ledger
) -> None:
    first, second = pair
    posted = [
        fake_x.add_mention(f"@AcmeHelp question {n}: where is my order?", author_handle=f"c{n}")
        for n in range(MENTIONS)
    ]

    def all_carded() -> list[QuestionRow] | None:
        questions = ledger.questions()
        ready = len(questions) == MENTIONS and all(q.card_ts for q in questions)
        return questions if ready else None

    questions: list[QuestionRow] = wait_until(all_carded, TIMEOUT, "every mention with a card")
    answered, waiting = questions[:ANSWERED], questions[ANSWERED:]
    for n, question in enumerate(answered):
        proposer = (first, second)[n % 2]
        proposal = propose(
            proposer.slack,
            fake_slack,
            question,
            author="U0ALICE",
            answer=f"Sorry about order {question.external_id}: it ships today.",
        )
        votes_at_once(first, second, proposal)

    def settled() -> bool:
        states = ledger.states()
        escalated_again = Counter(
            tag["question_id"]
            for tag in tagged(fake_slack, ESCALATIONS, ESCALATION_TAG)
            if tag.get("level") == 2
        )
        busy = [n for n in ledger.notifications() if n[2] in ("pending", "sending")]
        return (
            states["answered"] == ANSWERED
            and all(escalated_again[q.id] for q in waiting)
            and not busy
        )

    wait_until(settled, TIMEOUT, f"answers sent and escalations done ({ledger.states()})")
    # Both processes keep polling and sweeping; let each run a few more rounds before counting.
    polls = len(fake_x.calls_to("mentions"))
    wait_until(lambda: len(fake_x.calls_to("mentions")) >= polls + 10, TIMEOUT, "more polls")

    assert sorted(q.external_id for q in ledger.questions()) == sorted(posted)
    assert card_counts(fake_slack) == dict.fromkeys((q.id for q in questions), 1)
    assert replies_per_post(fake_x) == dict.fromkeys((q.external_id for q in answered), 1)
    assert len(fake_x.calls_to("create_tweet")) == ANSWERED

    nudges = Counter(tag["question_id"] for tag in tagged(fake_slack, QUESTIONS_CHANNEL, NUDGE_TAG))
    escalations = Counter(
        (tag["question_id"], tag["level"])
        for tag in tagged(fake_slack, ESCALATIONS, ESCALATION_TAG)
    )
    assert all(n == 1 for n in nudges.values()), f"nudged twice: {nudges}"
    assert all(n == 1 for n in escalations.values()), f"escalated twice: {escalations}"
    for question in waiting:
        assert nudges[question.id] == 1
        assert escalations[(question.id, 1)] == 1
        assert escalations[(question.id, 2)] == 1
    for question in answered:
        thanks = [
            message
            for message in fake_slack.thread(QUESTIONS_CHANNEL, question.card_ts or "")
            if "Thanks" in (message.get("text") or "")
        ]
        assert len(thanks) == 1, f"question {question.id}: {len(thanks)} thank-you messages"
    # Both processes did take part.
    assert "new questions" in first.stderr + second.stderr
