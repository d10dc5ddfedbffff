"""End to end: moderators' buttons and subcommands, and who may press what.

Slack shows every button to everyone, so each test presses them as a moderator (it works, the
card follows, the audit log names them) and as a member (refused with a reason, nothing
changes, the refusal is audited). The clock is the test's: no real waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.escalation_blocks import ACTION_ANSWER_NOW, ACTION_SEND_PROPOSAL
from bot.slack_blocks import (
    ACTION_CLOSE,
    ACTION_ESCALATE_NOW,
    ACTION_IGNORE,
    ACTION_PROPOSE,
    ACTION_SEND_NOW,
)
from storage.models import AuditEvent, Member, Question, Vote
from tests.dbhelpers import Clock
from tests.scenario import (
    button_value,
    card_for,
    click_propose,
    current,
    ephemeral_to,
    opened_form,
    propose,
    rendered,
    submit_answer,
    vote,
)
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until

pytestmark = pytest.mark.e2e

MODERATOR, MEMBER = "U0DAN", "U0BOB"
ESCALATION_CHANNEL = "C0ESCALATE"
SETTINGS = {
    "CARE_ESCALATION_CHANNEL": ESCALATION_CHANNEL,
    "CARE_ONCALL_GROUP": "S0ONCALL",
    "CARE_NUDGE_AFTER": "15m",
    "CARE_ESCALATE_AFTER": "60m",
    "CARE_SWEEP_SECONDS": "0.1",
}
REFUSED = "Only moderators can"


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


def start(fake_slack, fake_x, database_url, clock, **overrides) -> Stack:
    stack = Stack(
        fake_slack, fake_x, database_url, overrides={**SETTINGS, **overrides}, clock=clock
    ).start()
    with stack.app.sessions.begin() as session:
        session.add(Member(user_id=MODERATOR, role="moderator", updated_at=clock()))
    return stack


@pytest.fixture
def stack(fake_slack, fake_x, database_url, clock) -> Iterator[Stack]:
    running = start(fake_slack, fake_x, database_url, clock)
    yield running
    running.stop()


@pytest.fixture
def registered(fake_slack, fake_x, database_url, clock) -> Iterator[Stack]:
    """A stack where only members of the answering pool may propose and vote."""
    running = start(fake_slack, fake_x, database_url, clock, CARE_POOL="registered")
    yield running
    running.stop()


# -- helpers --------------------------------------------------------------------------------


def question(stack: Stack) -> Question:
    with stack.app.sessions.begin() as session:
        found = session.scalars(select(Question)).one()
        session.expunge(found)
        return found


def audit(stack: Stack, action: str) -> list[AuditEvent]:
    with stack.app.sessions.begin() as session:
        found = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)
            )
        )
        session.expunge_all()
        return found


def click(stack: Stack, user: str, action_id: str, message: dict, channel=QUESTIONS_CHANNEL):
    """``user`` clicks the button ``action_id`` on ``message`` as Slack shows it now."""
    shown = stack.slack.message(channel, message["ts"]) or message
    value = button_value(shown, action_id)
    assert value is not None, f"no {action_id} button on the message"
    response = stack.client.block_action(
        user,
        action_id,
        value,
        channel_id=channel,
        message_ts=message["ts"],
        thread_ts=message.get("thread_ts"),
    )
    assert response.status == 200
    return response


def refused(stack: Stack, user: str, attempted: str) -> AuditEvent:
    """The audited refusal of ``attempted`` to ``user`` (waits for it)."""
    return wait_until(  # type: ignore[no-any-return]
        lambda: next(
            (
                e
                for e in audit(stack, "permission.refused")
                if e.actor == user and e.detail["attempted"] == attempted
            ),
            None,
        ),
        message=f"a refusal of {attempted!r} to {user}",
    )


def sweeps_after(stack: Stack) -> None:
    """Run the real sweep (and post what it decides) right now, twice."""
    for _ in range(2):
        stack.app.escalations.sweep()
        stack.app.escalations.post_due_notifications()


def thread_texts(stack: Stack, card: dict) -> list[str]:
    return [m.get("text") or "" for m in stack.slack.thread(QUESTIONS_CHANNEL, card["ts"])]


# -- the card's moderator buttons ----------------------------------------------------------


@pytest.mark.parametrize(
    ("action_id", "state", "badge"),
    [(ACTION_IGNORE, "ignored", "Ignored"), (ACTION_CLOSE, "closed", "Closed")],
)
def test_a_moderator_sets_a_question_aside_and_nobody_is_reminded(
    stack: Stack, clock: Clock, action_id: str, state: str, badge: str
) -> None:
    stack.x.add_mention("@AcmeHelp buy followers cheap!!!")
    card = card_for(stack, "followers")

    click(stack, MODERATOR, action_id, card)

    ephemeral_to(stack, MODERATOR, f"{badge} question #")
    wait_until(lambda: question(stack).state == state, message=state)
    shown = wait_until(
        lambda: badge in rendered(current(stack, card)) and current(stack, card), message="card"
    )
    assert button_value(shown, ACTION_PROPOSE) is None
    assert button_value(shown, action_id) is None
    [event] = audit(stack, f"state.{state}")
    assert event.actor == MODERATOR and event.question_id == question(stack).id

    clock.advance(hours=3)
    sweeps_after(stack)
    assert not [t for t in thread_texts(stack, card) if "waited" in t]
    assert stack.slack.messages(ESCALATION_CHANNEL) == []
    assert stack.x.replies() == []


@pytest.mark.parametrize(
    ("action_id", "attempted"),
    [
        (ACTION_IGNORE, "ignore a question"),
        (ACTION_CLOSE, "close a question"),
        (ACTION_ESCALATE_NOW, "escalate a question early"),
    ],
)
def test_a_member_pressing_a_moderator_button_is_told_why_and_nothing_changes(
    stack: Stack, action_id: str, attempted: str
) -> None:
    stack.x.add_mention("@AcmeHelp do you ship to Iceland?")
    card = card_for(stack, "Iceland")
    before = rendered(current(stack, card))

    click(stack, MEMBER, action_id, card)

    notice = ephemeral_to(stack, MEMBER, REFUSED)["text"]
    assert "you are a member" in notice
    event = refused(stack, MEMBER, attempted)
    assert event.question_id == question(stack).id
    assert event.detail["needed"] == "moderator"
    assert question(stack).state == "open"
    assert question(stack).escalated_at is None
    assert rendered(current(stack, card)) == before
    assert stack.slack.messages(ESCALATION_CHANNEL) == []


def test_escalate_now_calls_in_the_reps_at_once(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp my parcel arrived broken", author_handle="ines")
    card = card_for(stack, "arrived broken")

    click(stack, MODERATOR, ACTION_ESCALATE_NOW, card)

    [message] = wait_until(
        lambda: stack.slack.messages(ESCALATION_CHANNEL), message="the escalation message"
    )
    assert "arrived broken" in rendered(message) and "<!subteam^S0ONCALL>" in rendered(message)
    assert button_value(message, ACTION_ANSWER_NOW) is not None
    ephemeral_to(stack, MODERATOR, "Escalated question #")
    shown = wait_until(
        lambda: "Escalated" in rendered(current(stack, card)) and current(stack, card),
        message="the card shows the escalation",
    )
    assert button_value(shown, ACTION_ESCALATE_NOW) is None
    assert button_value(shown, ACTION_CLOSE) is not None
    [event] = audit(stack, "state.escalated")
    assert event.actor == MODERATOR

    stack.client.command(MODERATOR, f"escalate {question(stack).id}")
    sweeps_after(stack)
    assert len(stack.slack.messages(ESCALATION_CHANNEL)) == 1


# -- Send now on a proposal -----------------------------------------------------------------


def test_send_now_is_for_moderators_and_sends_exactly_one_reply(stack: Stack) -> None:
    post_id = stack.x.add_mention("@AcmeHelp what are your opening hours?")
    card = card_for(stack, "opening hours")
    proposal = propose(stack, "U0ALICE", card, "We're open 9 to 6, Monday to Saturday.")

    click(stack, MEMBER, ACTION_SEND_NOW, proposal)
    ephemeral_to(stack, MEMBER, REFUSED)
    refusal = refused(stack, MEMBER, "send a proposal without votes")
    assert refusal.question_id == question(stack).id
    assert question(stack).state == "proposed"

    click(stack, MODERATOR, ACTION_SEND_NOW, proposal)

    [reply] = stack.x.wait_for_replies(1)
    assert reply.text == "We're open 9 to 6, Monday to Saturday."
    assert reply.referenced == [("replied_to", post_id)]
    wait_until(lambda: question(stack).state == "answered", message="answered")
    [sent] = audit(stack, "proposal.sent_without_vote")
    assert sent.actor == MODERATOR and sent.detail["votes"] == 0
    stack.client.block_action(  # the button as it was, clicked once more before the update
        MODERATOR,
        ACTION_SEND_NOW,
        button_value(proposal, ACTION_SEND_NOW) or "",
        channel_id=QUESTIONS_CHANNEL,
        message_ts=proposal["ts"],
    )
    ephemeral_to(stack, MODERATOR, "already has its answer chosen")
    assert len(stack.x.replies()) == 1


# -- the escalation's buttons ---------------------------------------------------------------


def test_answer_now_and_send_on_an_escalation_are_for_moderators(
    stack: Stack, clock: Clock
) -> None:
    stack.x.add_mention("@AcmeHelp where is my refund?")
    card = card_for(stack, "refund")
    propose(stack, "U0ALICE", card, "Refunds take 5 working days to reach your card.")
    clock.advance(minutes=61)
    message = wait_until(
        lambda: stack.slack.messages(ESCALATION_CHANNEL), message="the escalation"
    )[0]
    forms = len(stack.slack.calls_to("views.open"))

    click(stack, MEMBER, ACTION_ANSWER_NOW, message, channel=ESCALATION_CHANNEL)
    click(stack, MEMBER, ACTION_SEND_PROPOSAL, message, channel=ESCALATION_CHANNEL)

    refused(stack, MEMBER, "answer a customer directly, without a vote")
    refused(stack, MEMBER, "send a proposal without votes")
    wait_until(
        lambda: len([m for m in stack.slack.ephemerals(MEMBER) if REFUSED in m["text"]]) == 2,
        message="two refusals",
    )
    assert len(stack.slack.calls_to("views.open")) == forms
    assert question(stack).state == "escalated"
    assert stack.x.replies() == []


def test_a_rep_demoted_while_the_answer_form_is_open_cannot_send_it(
    stack: Stack, clock: Clock
) -> None:
    from bot.escalation_blocks import VIEW_ANSWER_NOW
    from bot.slack_blocks import ANSWER_BLOCK, ANSWER_INPUT

    stack.x.add_mention("@AcmeHelp can I change my delivery address?")
    card_for(stack, "delivery address")
    clock.advance(minutes=61)
    message = wait_until(
        lambda: stack.slack.messages(ESCALATION_CHANNEL), message="the escalation"
    )[0]
    click(stack, MODERATOR, ACTION_ANSWER_NOW, message, channel=ESCALATION_CHANNEL)
    form = stack.slack.wait_for("views.open")[0].params["view"]
    with stack.app.sessions.begin() as session:
        session.get_one(Member, MODERATOR).role = "member"

    response = stack.client.view_submission(
        MODERATOR,
        VIEW_ANSWER_NOW,
        form["private_metadata"],
        {ANSWER_BLOCK: {ANSWER_INPUT: "Yes, from your account page."}},
    )

    assert response.json()["response_action"] == "errors"
    assert REFUSED in response.json()["errors"][ANSWER_BLOCK]
    assert question(stack).state == "escalated"
    assert stack.x.replies() == []


# -- the answering pool ---------------------------------------------------------------------


def test_outside_a_registered_pool_propose_and_vote_explain_how_to_join(
    registered: Stack,
) -> None:
    stack = registered
    stack.x.add_mention("@AcmeHelp is the app free?")
    card = card_for(stack, "app free")
    proposal = propose(stack, MODERATOR, card, "Yes, the app is free to download.")

    click_propose(stack, MEMBER, card)
    vote(stack, MEMBER, proposal)

    refused(stack, MEMBER, "propose an answer")
    event = refused(stack, MEMBER, "vote")
    assert event.detail["needed"] == "pool"
    wait_until(
        lambda: len([m for m in stack.slack.ephemerals(MEMBER) if "/care join" in m["text"]]) == 2,
        message="two join hints",
    )
    assert len(stack.slack.calls_to("views.open")) == 1  # the moderator's form only
    with stack.app.sessions.begin() as session:
        assert session.scalars(select(Vote)).all() == []

    with stack.app.sessions.begin() as session:
        session.add(Member(user_id=MEMBER, in_pool=True, updated_at=datetime.now(UTC)))
    vote(stack, MEMBER, proposal)
    wait_until(
        lambda: "1 of" in rendered(stack.slack.message(QUESTIONS_CHANNEL, proposal["ts"]) or {}),
        message="the vote counted",
    )
    propose(stack, MEMBER, card, "Free, with optional paid extras.")


def test_a_proposal_form_opened_before_leaving_the_pool_is_refused_on_submit(
    registered: Stack,
) -> None:
    stack = registered
    with stack.app.sessions.begin() as session:
        session.add(Member(user_id=MEMBER, in_pool=True, updated_at=datetime.now(UTC)))
    stack.x.add_mention("@AcmeHelp do you have gift cards?")
    card = card_for(stack, "gift cards")
    click_propose(stack, MEMBER, card)
    form = opened_form(stack)
    with stack.app.sessions.begin() as session:
        session.get_one(Member, MEMBER).in_pool = False

    response = submit_answer(stack, MEMBER, form, "Yes, in every store.")

    assert response.json()["response_action"] == "errors"
    assert "/care join" in next(iter(response.json()["errors"].values()))
    assert question(stack).state == "open"


# -- the subcommands ------------------------------------------------------------------------


def test_moderation_subcommands_work_for_moderators_and_are_audited(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp same question as before")
    card = card_for(stack, "same question")
    number = question(stack).id

    answer = stack.client.command(MODERATOR, f"close #{number} duplicate <!channel> of #1")

    text = answer.json()["text"]
    assert text.startswith(f"Closed question #{number}")
    assert "`duplicate &lt;!channel&gt; of #1`" in text
    assert question(stack).state == "closed"
    [closed] = audit(stack, "state.closed")
    assert closed.actor == MODERATOR and closed.detail["reason"] == "duplicate <!channel> of #1"
    [command] = audit(stack, "command.close")
    assert command.actor == MODERATOR
    wait_until(lambda: "Closed" in rendered(current(stack, card)), message="card closed")

    again = stack.client.command(MODERATOR, f"ignore {number}").json()["text"]
    assert again == f"Question #{number} can't be ignored now: it is closed."


def test_members_are_refused_the_moderation_subcommands(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp hello?")
    card_for(stack, "hello?")
    number = question(stack).id

    for words in (f"escalate {number}", f"close {number}", f"ignore {number}"):
        text = stack.client.command(MEMBER, words).json()["text"]
        assert REFUSED in text, words

    assert question(stack).state == "open"
    assert len(audit(stack, "permission.refused")) == 3
    assert stack.slack.messages(ESCALATION_CHANNEL) == []


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        ("escalate", "say which question"),
        ("escalate abc", "`abc` is not a question number"),
        ("ignore 1 2", "unexpected `2`"),
        ("close -4", "is not a question number"),
        ("close 1 " + "why " * 60, "keep it to 200"),
    ],
)
def test_malformed_moderation_subcommands_show_the_usage(
    stack: Stack, words: str, expected: str
) -> None:
    stack.x.add_mention("@AcmeHelp anyone there?")
    card_for(stack, "anyone there")

    text = stack.client.command(MODERATOR, words).json()["text"]

    assert expected in text
    assert "Usage: `/care " in text
    assert question(stack).state == "open"
    assert audit(stack, f"command.{words.split(maxsplit=1)[0]}") == []


def test_an_unknown_question_number_is_named_back(stack: Stack) -> None:
    text = stack.client.command(MODERATOR, "escalate 999").json()["text"]

    assert text == "There is no question #999."
