"""200 Vote clicks from 50 people over 5 proposals of one question, all sent at once.

Every accepted vote is counted once (in the database and on the proposal in Slack), every
refused one gets a notice and counts nothing, exactly one proposal is selected and exactly one
reply reaches X. PostgreSQL only: there the votes really race for the question's row lock.

The threshold (20 votes) is what makes the outcome checkable: each proposal gets 40 clicks, so
one proposal reaches 20 while the rest are still counting; from then on voting is over, and
every later click, on any proposal, is refused. So the winner ends with exactly 20 votes and
the others with fewer than 20.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.slack_blocks import ACTION_VOTE
from storage.models import AuditEvent, Proposal, Question, Reply, Vote
from tests.scenario import button_value, card_for, propose, vote
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.slack_requests import Response
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.e2e, pytest.mark.slow]

VOTERS = [f"U0VOTER{n:02d}" for n in range(50)]
AUTHORS = [f"U0AUTHOR{n}" for n in range(5)]
THRESHOLD = 20
CLOSED_NOTICE = "Voting on this question is over."
SELECTED_NOTICE = "Your vote selected this answer"
COUNT = re.compile(r"(\d+) of (\d+) votes")


@pytest.fixture
def storm_stack(
    fake_slack: FakeSlack, fake_x: FakeX, database_url: str, on_postgres: bool
) -> Iterator[Stack]:
    if not on_postgres:
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL): SQLite serializes every writer")
    for user in VOTERS + AUTHORS:
        fake_slack.add_user(user, user.lower())
    stack = Stack(
        fake_slack,
        fake_x,
        database_url,
        overrides={"CARE_VOTES_TO_SELECT": str(THRESHOLD)},
        http_threads=32,
    ).start()
    yield stack
    stack.stop()


def shown_votes(message: dict[str, Any]) -> int:
    found = COUNT.findall(str(message.get("blocks")))
    assert len(found) == 1, found
    return int(found[0][0])


def click_all_at_once(clicks: list[tuple[str, dict[str, Any]]], stack: Stack) -> list[Response]:
    start = threading.Barrier(len(clicks))
    answers: list[Response | BaseException] = [RuntimeError("not sent")] * len(clicks)

    def click(index: int, user: str, proposal: dict[str, Any]) -> None:
        start.wait()
        try:
            answers[index] = vote(stack, user, proposal)
        except BaseException as exc:  # surfaced below, in the test's thread
            answers[index] = exc

    threads = [
        threading.Thread(target=click, args=(i, user, proposal))
        for i, (user, proposal) in enumerate(clicks)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    errors = [a for a in answers if isinstance(a, BaseException)]
    assert not errors, errors[:3]
    return [a for a in answers if isinstance(a, Response)]


def test_a_storm_of_votes_counts_exactly_and_selects_once(storm_stack: Stack) -> None:
    stack = storm_stack
    stack.x.add_mention("@AcmeHelp which charger fits the X200?", author_handle="storm")
    card = card_for(stack, "charger fits")
    proposals = [
        propose(stack, author, card, f"Proposal {n}: the 65 W USB-C charger fits the X200.")
        for n, author in enumerate(AUTHORS)
    ]
    # Everyone votes for four of the five proposals: 200 clicks, 40 per proposal, no repeats.
    clicks = [
        (voter, proposal)
        for v, voter in enumerate(VOTERS)
        for p, proposal in enumerate(proposals)
        if p != v % len(proposals)
    ]
    assert len(clicks) == 200

    answers = click_all_at_once(clicks, stack)
    assert Counter(a.status for a in answers) == {200: 200}

    def refused() -> int:
        return sum(CLOSED_NOTICE in (e.get("text") or "") for e in stack.slack.ephemerals())

    def counted() -> int:
        with stack.app.sessions.begin() as session:
            return int(session.scalar(select(func.count()).select_from(Vote)) or 0)

    # Every click is answered one way or the other: counted, or refused with a notice.
    wait_until(lambda: counted() + refused() == len(clicks), 60, "every click handled")
    [reply_post] = stack.x.wait_for_replies(1, timeout=30)
    assert "fits the X200" in reply_post.text

    with stack.app.sessions.begin() as session:
        db_votes = dict(
            session.execute(select(Vote.proposal_id, func.count()).group_by(Vote.proposal_id)).all()
        )
        states = dict(session.execute(select(Proposal.id, Proposal.state)).all())
        question = session.scalars(select(Question)).one()
        replies = session.scalars(select(Reply)).all()
        selections = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "state.selected")
        ).all()
    winner = question.selected_proposal_id
    assert winner is not None
    assert Counter(states.values()) == {"sent": 1, "closed": 4}  # the reply is out
    assert states[winner] == "sent"
    assert db_votes[winner] == THRESHOLD
    assert all(n < THRESHOLD for pid, n in db_votes.items() if pid != winner)
    assert sum(db_votes.values()) + refused() == len(clicks)
    assert len(replies) == 1 and replies[0].proposal_id == winner
    assert len(selections) == 1
    selected_by = [e for e in stack.slack.ephemerals() if SELECTED_NOTICE in (e.get("text") or "")]
    assert len(selected_by) == 1

    # What Slack shows settles on what the database holds (no stale update wins).
    def slack_counts() -> dict[int, int]:
        shown = {}
        for proposal in proposals:
            now = stack.slack.message(QUESTIONS_CHANNEL, proposal["ts"])
            assert now is not None
            shown[int(button_value(proposal, ACTION_VOTE) or 0)] = shown_votes(now)
        return shown

    expected = {pid: db_votes.get(pid, 0) for pid in states}
    wait_until(lambda: slack_counts() == expected, 15, f"Slack to show {expected}")
    # And no proposal still offers a Vote button once voting is over.
    final = [stack.slack.message(QUESTIONS_CHANNEL, p["ts"]) or {} for p in proposals]
    assert [button_value(message, ACTION_VOTE) for message in final] == [None] * len(proposals)
    assert len(stack.x.replies()) == 1
