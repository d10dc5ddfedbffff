"""End to end: the deciding voter is told where the chosen answer goes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.scenario import card_for, ephemeral_to, propose, vote
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import Stack

pytestmark = pytest.mark.e2e

ADMIN, ALICE, BOB = "U0ADMIN", "U0ALICE", "U0BOB"


@pytest.fixture
def stack(fake_slack: FakeSlack, fake_x: FakeX, database_url: str) -> Iterator[Stack]:
    fake_slack.add_user(ADMIN, "admin")
    overrides = {"CARE_ADMINS": ADMIN, "CARE_VOTES_TO_SELECT": "1"}
    running = Stack(fake_slack, fake_x, database_url, overrides=overrides).start()
    yield running
    running.stop()


def test_the_voter_of_a_slack_question_is_told_it_goes_to_the_thread(stack: Stack) -> None:
    response = stack.client.command(ADMIN, "ask @lena_m Do you open on Sundays?")
    assert response.status == 200
    card = card_for(stack, "Sundays")
    proposal = propose(stack, ALICE, card, "Yes, from 10 to 16.")

    vote(stack, BOB, proposal)

    notice = ephemeral_to(stack, BOB, "Your vote selected this answer")["text"]
    assert "posted in this thread for the person who asked to pass on" in notice
    assert "being sent" not in notice


def test_the_voter_of_a_question_from_x_is_told_it_is_being_sent(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp do you open on Mondays?")
    card = card_for(stack, "Mondays")
    proposal = propose(stack, ALICE, card, "Yes, from 9 to 18.")

    vote(stack, BOB, proposal)

    notice = ephemeral_to(stack, BOB, "Your vote selected this answer")["text"]
    assert notice == "Your vote selected this answer; it is being sent now."
    stack.x.wait_for_replies(1)
