"""End to end: the reply policy changed with `/care config` applies at once, with no restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from bot.slack_blocks import ANSWER_BLOCK
from storage.models import Proposal
from tests.scenario import card_for, click_propose, opened_form, propose, slash, submit_answer
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import Stack

pytestmark = pytest.mark.e2e

ADMIN, ALICE = "U0ADMIN", "U0ALICE"


@pytest.fixture
def stack(fake_slack: FakeSlack, fake_x: FakeX, database_url: str) -> Iterator[Stack]:
    fake_slack.add_user(ADMIN, "admin")
    running = Stack(fake_slack, fake_x, database_url, overrides={"CARE_ADMINS": ADMIN}).start()
    yield running
    running.stop()


def care(stack: Stack, user: str, text: str) -> str:
    return str(slash(stack, user, text)["text"])


def proposal_texts(stack: Stack) -> list[str]:
    with stack.app.sessions() as session:
        return list(session.scalars(select(Proposal.text).order_by(Proposal.id)))


def test_a_term_denied_with_care_config_refuses_the_next_proposal_inline(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp my order arrived broken")
    card = card_for(stack, "arrived broken")

    assert "*refund* — set with /care config" in care(stack, ADMIN, "config deny_terms refund")
    click_propose(stack, ALICE, card)
    refused = submit_answer(stack, ALICE, opened_form(stack), "Sorry! A Refund is on its way.")

    body = refused.json()
    assert body["response_action"] == "errors"
    assert "“refund”" in body["errors"][ANSWER_BLOCK]
    assert proposal_texts(stack) == []

    care(stack, ADMIN, "config deny_terms default")
    propose(stack, ALICE, card, "Sorry! A refund is on its way.")
    assert proposal_texts(stack) == ["Sorry! A refund is on its way."]


def test_a_domain_allowed_with_care_config_may_be_linked(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp where are the docs?")
    card = card_for(stack, "the docs")
    click_propose(stack, ALICE, card)
    body = submit_answer(stack, ALICE, opened_form(stack), "See acme.com/docs").json()
    assert "/care config link_domains" in body["errors"][ANSWER_BLOCK]

    # Slack sends a typed domain as a link.
    answer = care(stack, ADMIN, "config link_domains <http://acme.com|acme.com>")

    assert "*acme.com* — set with /care config" in answer
    propose(stack, ALICE, card, "See acme.com/docs")
    assert proposal_texts(stack) == ["See acme.com/docs"]
