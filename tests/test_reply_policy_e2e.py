"""End to end: the reply policy refuses answers where they are written, and signs replies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from bot.escalation_blocks import ACTION_ANSWER_NOW, ACTION_SEND_PROPOSAL, VIEW_ANSWER_NOW
from bot.slack_blocks import ANSWER_BLOCK, ANSWER_INPUT
from bot.slack_directory import NAME_CACHE_SECONDS, SlackDirectory
from bot.slack_notifier import make_web_client
from storage.models import AuditEvent, Proposal, Question
from tests.dbhelpers import Clock
from tests.scenario import (
    button_value,
    card_for,
    click_propose,
    ephemeral_to,
    opened_form,
    propose,
    submit_answer,
    vote,
)
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until

pytestmark = pytest.mark.e2e

ESCALATION_CHANNEL = "C0ESCALATE"
ESCALATING = {
    "CARE_ESCALATION_CHANNEL": ESCALATION_CHANNEL,
    "CARE_ONCALL_GROUP": "S0ONCALL",
    "CARE_ESCALATE_AFTER": "60m",
    "CARE_SWEEP_SECONDS": "0.1",
    "CARE_ADMINS": "U0REP",
}


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def people(fake_slack: FakeSlack) -> FakeSlack:
    fake_slack.add_user("U0JANE", "jane", "Jane van der Smith")
    fake_slack.add_user("U0REP", "rep.robin", "Robin Quinn")
    return fake_slack


def running(
    slack: FakeSlack, x: FakeX, database_url: str, clock: Clock | None = None, **env: str
) -> Stack:
    return Stack(slack, x, database_url, overrides=env, clock=clock).start()


@pytest.fixture
def signing_stack(people: FakeSlack, fake_x: FakeX, database_url: str) -> Iterator[Stack]:
    stack = running(
        people,
        fake_x,
        database_url,
        CARE_SIGNATURE="initials",
        CARE_VOTES_TO_SELECT="1",
        CARE_ALLOWED_LINK_DOMAINS="acme.com",
    )
    yield stack
    stack.stop()


@pytest.fixture
def escalating_stack(
    people: FakeSlack, fake_x: FakeX, database_url: str, clock: Clock
) -> Iterator[Stack]:
    stack = running(people, fake_x, database_url, clock, **ESCALATING)
    yield stack
    stack.stop()


def proposals(stack: Stack) -> list[Proposal]:
    with stack.app.sessions.begin() as session:
        return list(session.scalars(select(Proposal).order_by(Proposal.id)))


def state(stack: Stack) -> str:
    with stack.app.sessions.begin() as session:
        return session.scalars(select(Question.state)).one()


def audited(stack: Stack, action: str) -> int:
    with stack.app.sessions.begin() as session:
        query = select(func.count()).where(AuditEvent.action == action)
        return int(session.scalar(query) or 0)


def test_a_phone_number_is_refused_inline_and_nothing_is_stored(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp how do I reach a human?")
    card = card_for(stack, "reach a human")
    assert click_propose(stack, "U0ALICE", card).status == 200
    form = opened_form(stack)

    response = submit_answer(stack, "U0ALICE", form, "Call us on +1 (555) 123-4567 any time!")

    assert response.status == 200
    body = response.json()
    assert body["response_action"] == "errors"
    assert "Remove the phone number" in body["errors"][ANSWER_BLOCK]
    assert proposals(stack) == []
    assert audited(stack, "proposal.created") == 0
    assert len(stack.slack.thread(QUESTIONS_CHANNEL, card["ts"])) <= 1  # the card alone


def test_a_link_is_refused_unless_its_domain_is_allowed(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp where are the docs?")
    card = card_for(stack, "the docs")
    click_propose(stack, "U0ALICE", card)
    form = opened_form(stack)

    body = submit_answer(stack, "U0ALICE", form, "See acme.com/docs").json()

    assert "CARE_ALLOWED_LINK_DOMAINS" in body["errors"][ANSWER_BLOCK]
    assert proposals(stack) == []


def test_the_reply_on_x_ends_with_the_authors_initials(signing_stack: Stack) -> None:
    stack = signing_stack
    post_id = stack.x.add_mention("@AcmeHelp is there a student discount?")
    card = card_for(stack, "student discount")
    answer = "Yes: 15% off with a valid student card, see https://acme.com/students"

    proposal = propose(stack, "U0JANE", card, answer)
    vote(stack, "U0BOB", proposal)

    [reply] = stack.x.wait_for_replies(1)
    assert reply.text == f"{answer} ^JS"
    assert reply.referenced == [("replied_to", post_id)]
    [stored] = proposals(stack)
    assert (stored.text, stored.signature) == (answer, "^JS")


def test_an_answer_that_only_fits_without_the_signature_is_refused(signing_stack: Stack) -> None:
    stack = signing_stack
    stack.x.add_mention("@AcmeHelp tell me everything")
    card = card_for(stack, "everything")
    click_propose(stack, "U0JANE", card)
    form = opened_form(stack)

    body = submit_answer(stack, "U0JANE", form, "a" * 279).json()

    error = body["errors"][ANSWER_BLOCK]
    assert "With your signature (^JS, which takes 4 characters)" in error
    assert "Shorten the answer by 3." in error
    assert proposals(stack) == []


def test_answer_now_is_checked_in_its_modal_and_signed(
    people: FakeSlack, fake_x: FakeX, database_url: str, clock: Clock
) -> None:
    stack = running(people, fake_x, database_url, clock, CARE_SIGNATURE="initials", **ESCALATING)
    try:
        stack.x.add_mention("@AcmeHelp my parcel is lost")
        card_for(stack, "parcel is lost")
        clock.advance(minutes=61)
        message = wait_until(
            lambda: stack.slack.messages(ESCALATION_CHANNEL), message="escalation"
        )[0]
        answer_now = button_value(message, ACTION_ANSWER_NOW)
        assert answer_now is not None
        stack.client.block_action(
            "U0REP",
            ACTION_ANSWER_NOW,
            answer_now,
            channel_id=ESCALATION_CHANNEL,
            message_ts=message["ts"],
        )
        form = stack.slack.wait_for("views.open")[0].params["view"]
        meta = form["private_metadata"]

        refused = stack.client.view_submission(
            "U0REP", VIEW_ANSWER_NOW, meta, {ANSWER_BLOCK: {ANSWER_INPUT: "Mail me: r@acme.com"}}
        )
        assert "Remove the e-mail address" in refused.json()["errors"][ANSWER_BLOCK]
        assert proposals(stack) == []

        answer = "We've found it; it arrives tomorrow."
        ok = stack.client.view_submission(
            "U0REP", VIEW_ANSWER_NOW, meta, {ANSWER_BLOCK: {ANSWER_INPUT: answer}}
        )
        assert ok.status == 200 and ok.text == ""
        [reply] = stack.x.wait_for_replies(1)
        assert reply.text == f"{answer} ^RQ"
    finally:
        stack.stop()


def test_send_now_refuses_a_proposal_with_a_newly_denied_term(
    escalating_stack: Stack, clock: Clock
) -> None:
    stack = escalating_stack
    stack.x.add_mention("@AcmeHelp will my refund come?")
    card = card_for(stack, "refund come")
    propose(stack, "U0ALICE", card, "Your refund is guaranteed by Friday.")
    # An admin adds a term to the deny list after the proposal was written.
    stack.overrides["CARE_DENY_TERMS"] = "Guaranteed"
    stack.restart()
    clock.advance(minutes=61)
    message = wait_until(lambda: stack.slack.messages(ESCALATION_CHANNEL), message="escalation")[0]

    send = button_value(message, ACTION_SEND_PROPOSAL)
    assert send is not None
    stack.client.block_action(
        "U0REP",
        ACTION_SEND_PROPOSAL,
        send,
        channel_id=ESCALATION_CHANNEL,
        message_ts=message["ts"],
    )

    notice = ephemeral_to(stack, "U0REP", "can't be sent")
    assert "“guaranteed”" in notice["text"]
    assert audited(stack, "proposal.send_refused") == 1
    assert state(stack) == "escalated"
    [stored] = proposals(stack)
    assert stored.state == "open"
    assert stack.x.replies() == []


def test_the_directory_names_people_from_slack_and_remembers(people: FakeSlack) -> None:
    people.add_user("U0EMOJI", "kim.lee", "🌴🌴")
    now = [0.0]
    directory = SlackDirectory(make_web_client(people.bot_token, people.api_url), lambda: now[0])

    assert directory.display_name("U0JANE") == "Jane van der Smith"
    assert directory.display_name("U0JANE") == "Jane van der Smith"
    assert len(people.calls_to("users.info")) == 1  # cached
    now[0] += NAME_CACHE_SECONDS + 1
    directory.display_name("U0JANE")
    assert len(people.calls_to("users.info")) == 2
    assert directory.display_name("U0EMOJI") == "kim.lee"  # no letters in the real name
    assert directory.display_name("U0NOBODY") is None


def test_a_voted_answer_that_breaks_a_newer_policy_is_held_not_published(
    fake_slack: FakeSlack, fake_x: FakeX, database_url: str
) -> None:
    stack = running(fake_slack, fake_x, database_url, CARE_VOTES_TO_SELECT="2")
    try:
        stack.x.add_mention("@AcmeHelp when does my parcel come?")
        card = card_for(stack, "parcel come")
        proposal = propose(stack, "U0ALICE", card, "It is guaranteed to arrive by Friday.")
        # The deny list grows after the answer was written and checked; then the crowd votes.
        stack.overrides["CARE_DENY_TERMS"] = "Guaranteed"
        stack.restart()
        for voter in ("U0BOB", "U0CARA"):
            vote(stack, voter, proposal)

        wait_until(lambda: state(stack) == "failed", message="the reply held back")
        held = wait_until(
            lambda: [
                m
                for m in stack.slack.thread(QUESTIONS_CHANNEL, card["ts"])
                if "was not published" in (m.get("text") or "")
            ],
            message="the hold explained in the thread",
        )
        assert "“guaranteed”" in held[0]["text"]
        assert stack.x.replies() == []
        assert not stack.x.calls_to("create_tweet")
    finally:
        stack.stop()
