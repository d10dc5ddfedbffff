"""End to end: a routed card whose channel the bot cannot post in goes to the questions channel."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from bot.states import State
from bot.views import card_view
from storage.models import AuditEvent, Question
from tests.scenario import card_for, propose, vote
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until

pytestmark = pytest.mark.e2e

ADMIN, ALICE, BOB = "U0ADMIN", "U0ALICE", "U0BOB"
BILLING = "C0BILLING"
REFUSALS = 50  # Slack refuses every call for the channel until someone invites the bot


def start(fake_slack: FakeSlack, fake_x: FakeX, database_url: str, *, jobs: bool) -> Stack:
    fake_slack.add_user(ADMIN, "admin")
    overrides = {"CARE_ADMINS": ADMIN, "CARE_VOTES_TO_SELECT": "1"}
    stack = Stack(fake_slack, fake_x, database_url, overrides=overrides).start(jobs=jobs)
    response = stack.client.command(ADMIN, f"route add refund <#{BILLING}|billing>")
    assert "Added rule 1" in response.json()["text"]
    return stack


def bot_not_in_billing(fake_slack: FakeSlack, error: str = "not_in_channel") -> None:
    for method in ("chat.postMessage", "conversations.history"):
        fake_slack.fail(method, error, times=REFUSALS, channel=BILLING)


def question(stack: Stack, fragment: str) -> Question:
    with stack.app.sessions() as session:
        return session.scalars(select(Question).where(Question.text.contains(fragment))).one()


def reroutes(stack: Stack) -> list[dict[str, Any]]:
    with stack.app.sessions() as session:
        query = select(AuditEvent.detail).where(AuditEvent.action == "card.rerouted")
        return list(session.scalars(query))


def top_level(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("thread_ts") in (None, m["ts"])]


@pytest.mark.parametrize("error", ["not_in_channel", "channel_not_found", "is_archived"])
def test_the_card_falls_back_to_the_questions_channel_with_a_note(
    fake_slack: FakeSlack, fake_x: FakeX, database_url: str, error: str
) -> None:
    stack = start(fake_slack, fake_x, database_url, jobs=True)
    try:
        bot_not_in_billing(fake_slack, error)
        stack.x.add_mention("@AcmeHelp I want a refund for order 2")

        card = card_for(stack, "order 2")

        note = wait_until(
            lambda: [
                m
                for m in stack.slack.thread(QUESTIONS_CHANNEL, card["ts"])
                if "Could not post this card" in (m.get("text") or "")
            ],
            message="the note in the card's thread",
        )[0]["text"]
        assert f"Could not post this card in <#{BILLING}>: {error}." in note
        assert "Invite @crowdcare there" in note
        assert reroutes(stack) == [
            {"channel": BILLING, "error": error, "posted_in": QUESTIONS_CHANNEL}
        ]
        stored = question(stack, "order 2")
        assert (stored.card_channel, stored.card_ts) == (QUESTIONS_CHANNEL, card["ts"])
        assert stack.slack.messages(BILLING) == []

        # The question is answered as usual from where its card is.
        vote(stack, BOB, propose(stack, ALICE, card, "Your refund is on its way."))
        [reply] = stack.x.wait_for_replies(1)
        assert reply.text == "Your refund is on its way."
        assert len(top_level(stack.slack.messages(QUESTIONS_CHANNEL))) == 1
    finally:
        stack.stop()


def test_other_failures_are_retried_in_the_routed_channel(
    fake_slack: FakeSlack, fake_x: FakeX, database_url: str
) -> None:
    stack = start(fake_slack, fake_x, database_url, jobs=False)
    try:
        fake_slack.fail("chat.postMessage", "fatal_error", channel=BILLING)
        stack.client.command(ADMIN, "ask Can I get a refund for order 5?")

        assert stack.app.workflow.post_new_cards() == []
        assert stack.app.workflow.post_new_cards() == [question(stack, "order 5").id]

        assert question(stack, "order 5").card_channel == BILLING
        assert len(top_level(stack.slack.messages(BILLING))) == 1
        assert stack.slack.messages(QUESTIONS_CHANNEL) == []
        assert reroutes(stack) == []
    finally:
        stack.stop()


def test_a_retry_finds_the_card_an_earlier_attempt_left_in_the_questions_channel(
    fake_slack: FakeSlack, fake_x: FakeX, database_url: str
) -> None:
    stack = start(fake_slack, fake_x, database_url, jobs=False)
    try:
        bot_not_in_billing(fake_slack)
        stack.client.command(ADMIN, "ask Can I get a refund for order 7?")
        asked = question(stack, "order 7")
        assert (asked.state, asked.route_channel) == (State.NEW, BILLING)
        # An earlier attempt fell back, posted the card and died before recording its ts.
        with stack.app.sessions.begin() as session:
            lost = session.get_one(Question, asked.id)
            lost.card_attempts = 1
            card = replace(card_view(session, lost), state=State.OPEN)
        ts = stack.app.workflow.notifier.post_card(QUESTIONS_CHANNEL, card)
        posts = len(stack.slack.calls_to("chat.postMessage"))

        assert stack.app.workflow.post_new_cards() == [asked.id]

        found = question(stack, "order 7")
        assert (found.state, found.card_channel, found.card_ts) == (
            State.OPEN,
            QUESTIONS_CHANNEL,
            ts,
        )
        assert len(stack.slack.calls_to("chat.postMessage")) == posts  # nothing posted again
        looked_in = [c.params["channel"] for c in stack.slack.calls_to("conversations.history")]
        assert looked_in == [BILLING, QUESTIONS_CHANNEL]
        assert len(top_level(stack.slack.messages(QUESTIONS_CHANNEL))) == 1
    finally:
        stack.stop()
