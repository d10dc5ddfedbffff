"""End to end: the App Home shows each person their own numbers, and admins today's stats."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.states import State
from storage.models import Reply, Vote
from tests.blockkit import MAX_MODAL_BLOCKS, validate_blocks
from tests.dbhelpers import Clock, make_proposal, make_question
from tests.scenario import rendered
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import Stack

pytestmark = pytest.mark.e2e

NOW = datetime(2026, 1, 7, 15, 0, tzinfo=UTC)


@pytest.fixture
def numbers_stack(fake_slack: FakeSlack, fake_x: FakeX, database_url: str) -> Iterator[Stack]:
    """The app over HTTP at a fixed time, alice an admin by CARE_ADMINS; no background jobs."""
    running = Stack(
        fake_slack, fake_x, database_url, overrides={"CARE_ADMINS": "U0ALICE"}, clock=Clock(NOW)
    )
    running.start(jobs=False)
    yield running
    running.stop()


def seed_today(sessions: sessionmaker[Session]) -> None:
    """Q1 (2h ago): alice's answer, voted by bob and cara, was sent. Q2 (1h ago): bob proposed,
    alice voted; still open. So alice: 1 answer, 2 votes, rank 1 of 2; bob: 0, 1, rank 2."""
    with sessions.begin() as s:
        q1 = make_question(s, state=State.ANSWERED, now=NOW - timedelta(hours=2))
        p1 = make_proposal(s, q1, author_id="U0ALICE", now=q1.received_at + timedelta(minutes=5))
        for voter in ("U0BOB", "U0CARA"):
            s.add(Vote(proposal_id=p1.id, voter_id=voter, created_at=p1.created_at))
        sent = q1.received_at + timedelta(minutes=20)
        s.add(
            Reply(
                question_id=q1.id,
                proposal_id=p1.id,
                channel="x",
                in_reply_to=q1.external_id,
                text=p1.text,
                state="sent",
                attempts=1,
                next_attempt_at=sent,
                created_at=sent,
                sent_at=sent,
            )
        )
        q1.answered_at = sent
        q2 = make_question(
            s, state=State.PROPOSED, text="@AcmeHelp app down?", now=NOW - timedelta(hours=1)
        )
        p2 = make_proposal(s, q2, author_id="U0BOB", now=q2.received_at + timedelta(minutes=3))
        s.add(Vote(proposal_id=p2.id, voter_id="U0ALICE", created_at=p2.created_at))


def open_home(stack: Stack, user: str) -> dict[str, Any]:
    response = stack.client.event(
        {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}
    )
    assert response.status == 200
    [call] = stack.slack.wait_for("views.publish", lambda c: c.params["user_id"] == user)
    view: dict[str, Any] = call.params["view"]
    validate_blocks(view["blocks"], max_blocks=MAX_MODAL_BLOCKS)
    return view


def test_a_member_sees_their_own_numbers_but_not_todays_stats(numbers_stack: Stack) -> None:
    seed_today(numbers_stack.app.sessions)

    shown = rendered(open_home(numbers_stack, "U0BOB"))

    assert "0 answers sent" in shown and "1 vote received" in shown and "1 proposal" in shown
    assert "rank *#2* of 2" in shown
    assert "Today (UTC)" not in shown and "Backlog" not in shown
    assert "1 open question" in shown and "app down?" in shown


def test_an_admin_also_sees_todays_stats(numbers_stack: Stack) -> None:
    seed_today(numbers_stack.app.sessions)

    shown = rendered(open_home(numbers_stack, "U0ALICE"))

    assert "1 answer sent" in shown and "2 votes received" in shown
    assert "rank *#1* of 2" in shown
    # Today: 2 received, Q1 answered → 1 of 2 = 50 %; reply 20 minutes after receipt.
    assert "Today (UTC)" in shown
    assert "Received *2* · answered *1* (50%)" in shown
    assert "Reply: median 20m, p90 20m" in shown


def test_someone_new_is_invited_to_answer(numbers_stack: Stack) -> None:
    shown = rendered(open_home(numbers_stack, "U0EVE"))

    assert "No answers or votes yet" in shown
    assert "No open questions" in shown
