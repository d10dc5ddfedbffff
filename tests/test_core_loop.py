"""End to end: an X mention becomes a voted public reply, through the real HTTP endpoint."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import func, select

from storage.models import AuditEvent, Proposal, Question, Reply, Vote
from tests.scenario import (
    button_value,
    card_for,
    cards,
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


def count(stack: Stack, model: type, *where: object) -> int:
    with stack.app.sessions.begin() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def question_state(stack: Stack, external_id: str) -> str:
    with stack.app.sessions.begin() as session:
        return session.scalars(
            select(Question.state).where(Question.external_id == external_id)
        ).one()


def test_mention_becomes_a_voted_public_reply(stack: Stack) -> None:
    post_id = stack.x.add_mention(
        "@AcmeHelp my order #123 hasn't arrived, can you help?",
        author_handle="maria_k",
        author_name="Maria K",
    )

    card = card_for(stack, "hasn't arrived")
    shown = rendered(card)
    assert "maria_k" in shown and "Maria K" in shown
    assert f"https://x.com/maria_k/status/{post_id}" in shown
    assert button_value(card, "propose_answer") is not None

    answer = "Sorry Maria! Please DM us your order number and we'll chase it today."
    proposal = propose(stack, "U0ALICE", card, answer)
    assert "U0ALICE" in rendered(proposal)
    wait_until(lambda: "1 proposal" in rendered(current(stack, card)), message="card counts 1")

    for voter in ("U0BOB", "U0CARA", "U0DAN"):
        assert vote(stack, voter, proposal).status == 200

    [reply] = stack.x.wait_for_replies(1)
    assert reply.text == answer
    assert reply.referenced == [("replied_to", post_id)]

    wait_until(lambda: question_state(stack, post_id) == "answered", message="answered")
    card_now = wait_until(
        lambda: "<@U0ALICE>" in rendered(current(stack, card)) and current(stack, card),
        message="card shows who answered",
    )
    assert reply.id in rendered(card_now)
    assert button_value(card_now, "propose_answer") is None
    thanks = wait_until(
        lambda: [
            m
            for m in stack.slack.thread(QUESTIONS_CHANNEL, card["ts"])
            if "Thanks" in (m.get("text") or "")
        ],
        message="thanks in the thread",
    )
    assert "<@U0ALICE>" in thanks[0]["text"]
    assert "thanks to <@U0BOB>, <@U0CARA>, <@U0DAN> for voting" in thanks[0]["text"]

    with stack.app.sessions.begin() as session:
        actions = list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))
    assert actions[0] == "question.received"
    for expected in (
        "state.open",
        "proposal.created",
        "state.proposed",
        "vote.cast",
        "state.selected",
        "reply.queued",
        "state.sending",
        "reply.sent",
        "state.answered",
    ):
        assert expected in actions
    assert actions.index("state.selected") < actions.index("reply.sent")


def test_customer_text_cannot_ping_or_forge_links(stack: Stack) -> None:
    stack.x.add_mention(
        "<!channel> urgent <@U0BOSS> see <http://evil.example|your bank> & more <!here>",
        author_handle="mallory",
        author_name="<!everyone>",
    )
    card = card_for(stack, "urgent")
    blocks = rendered(card)
    for live in ("<!channel>", "<@U0BOSS>", "<http://evil.example", "<!here>", "<!everyone>"):
        assert live not in blocks
        assert live not in (card.get("text") or "")
    assert "&lt;!channel&gt;" in blocks
    assert "&amp; more" in blocks


def test_self_vote_is_refused_and_not_counted(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp is the store open on Sunday?")
    card = card_for(stack, "Sunday")
    proposal = propose(stack, "U0ALICE", card, "Yes, 10:00 to 16:00 every Sunday.")

    assert vote(stack, "U0ALICE", proposal).status == 200

    ephemeral_to(stack, "U0ALICE", "your own proposal")
    assert count(stack, Vote) == 0
    with stack.app.sessions.begin() as session:
        refused = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "vote.refused_own")
        ).all()
    assert len(refused) == 1 and refused[0].actor == "U0ALICE"


def test_second_vote_by_the_same_person_counts_nothing(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp do you ship to Norway?")
    card = card_for(stack, "Norway")
    proposal = propose(stack, "U0ALICE", card, "We do: 3-5 working days.")

    vote(stack, "U0BOB", proposal)
    wait_until(lambda: "1 of 3" in rendered(current(stack, proposal)), message="1 vote shown")
    vote(stack, "U0BOB", proposal)

    ephemeral_to(stack, "U0BOB", "already voted")
    assert count(stack, Vote) == 1
    assert "1 of 3" in rendered(current(stack, proposal))


def test_overlong_answer_is_refused_in_the_modal_with_the_count(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp what is your refund policy?")
    card = card_for(stack, "refund")
    click_propose(stack, "U0ALICE", card)
    form = opened_form(stack)

    response = submit_answer(stack, "U0ALICE", form, "x" * 281)

    assert response.status == 200
    body = response.json()
    assert body["response_action"] == "errors"
    assert "281" in body["errors"]["answer"] and "280" in body["errors"]["answer"]
    cjk = submit_answer(stack, "U0ALICE", form, "返" * 141).json()
    assert "282" in cjk["errors"]["answer"]
    empty = submit_answer(stack, "U0ALICE", form, "   ").json()
    assert empty["response_action"] == "errors"
    assert count(stack, Proposal) == 0
    assert stack.slack.thread(QUESTIONS_CHANNEL, card["ts"]) == []


def test_twenty_simultaneous_votes_select_once_and_reply_once(stack: Stack, fake_slack) -> None:
    voters = [f"U0V{n:03d}" for n in range(20)]
    for voter in voters:
        fake_slack.add_user(voter, voter.lower())
    post_id = stack.x.add_mention("@AcmeHelp can I change my delivery address?")
    card = card_for(stack, "delivery address")
    first = propose(stack, "U0ALICE", card, "Yes, in your account under Orders.")
    second = propose(stack, "U0BOB", card, "Reply with your order number and we'll change it.")

    start = threading.Barrier(len(voters))
    statuses: list[int] = []

    def click(voter: str, proposal: dict) -> None:
        start.wait()
        statuses.append(vote(stack, voter, proposal).status)

    threads = [
        threading.Thread(target=click, args=(voter, first if n % 2 else second))
        for n, voter in enumerate(voters)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert statuses == [200] * 20
    stack.x.wait_for_replies(1)
    wait_until(lambda: question_state(stack, post_id) == "answered", message="answered")
    assert len(stack.x.replies()) == 1
    assert count(stack, Reply) == 1
    with stack.app.sessions.begin() as session:
        selected = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "state.selected")
        ).all()
    assert len(selected) == 1
    # Every vote that arrived before the selection counted; none after it.
    assert 3 <= count(stack, Vote) <= 5


def test_restart_posts_no_second_card_and_no_second_reply(stack: Stack) -> None:
    post_id = stack.x.add_mention("@AcmeHelp where is my parcel?")
    card = card_for(stack, "parcel")
    proposal = propose(stack, "U0ALICE", card, "It left our warehouse today.")
    for voter in ("U0BOB", "U0CARA", "U0DAN"):
        vote(stack, voter, proposal)
    stack.x.wait_for_replies(1)
    wait_until(lambda: question_state(stack, post_id) == "answered", message="answered")
    polls_before = len(stack.x.calls_to("mentions"))

    stack.restart()

    # Several polls and outbox runs after the restart, then look again.
    wait_until(lambda: len(stack.x.calls_to("mentions")) >= polls_before + 3, message="polls")
    assert len(cards(stack, "parcel")) == 1
    assert len(stack.x.replies()) == 1
    assert count(stack, Question) == 1


def test_reply_whose_response_was_lost_is_not_posted_twice(stack: Stack) -> None:
    post_id = stack.x.add_mention("@AcmeHelp do you have gift cards?")
    card = card_for(stack, "gift cards")
    proposal = propose(stack, "U0ALICE", card, "Yes, from 10 to 500 euros, online and in stores.")
    stack.x.lose_response("create_tweet")

    for voter in ("U0BOB", "U0CARA", "U0DAN"):
        vote(stack, voter, proposal)

    wait_until(lambda: question_state(stack, post_id) == "answered", 20, "answered")
    assert len(stack.x.replies()) == 1
    assert len(stack.x.calls_to("create_tweet")) == 1
    with stack.app.sessions.begin() as session:
        reply = session.scalars(select(Reply)).one()
    assert reply.external_id == stack.x.replies()[0].id
    assert reply.attempts == 2


def test_a_bad_signature_is_refused_with_401_and_changes_nothing(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp hello?")
    card = card_for(stack, "hello?")
    proposal_payload = json.dumps({"type": "view_submission"})

    forged = stack.client.post(
        f"payload={proposal_payload}",
        "application/x-www-form-urlencoded",
        signature="v0=" + "0" * 64,
    )
    stale = stack.client.post(
        f"payload={proposal_payload}", "application/x-www-form-urlencoded", timestamp=1_000_000_000
    )

    assert forged.status == 401
    assert stale.status == 401
    assert count(stack, Proposal) == 0
    assert current(stack, card)["blocks"] == card["blocks"]


def test_health_check_answers_when_the_database_does(stack: Stack) -> None:
    import urllib.request

    base = stack.client.url.removesuffix("/slack/events")
    with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {"ok": True, "database": True}
