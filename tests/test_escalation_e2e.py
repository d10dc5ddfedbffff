"""End to end: nudges, escalations, reps taking over and the helpdesk closing the loop.

The app runs over HTTP against the stand-ins with a clock the test moves: no real waiting.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot import signing
from bot.escalation_blocks import ACTION_ANSWER_NOW, ACTION_SEND_PROPOSAL, VIEW_ANSWER_NOW
from bot.slack_blocks import ANSWER_BLOCK, ANSWER_INPUT
from storage.models import Member, Question
from tests.dbhelpers import Clock
from tests.scenario import button_value, card_for, current, ephemeral_to, propose, rendered, vote
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until

pytestmark = pytest.mark.e2e

ESCALATION_CHANNEL = "C0ESCALATE"
BACKEND_SECRET = "helpdesk-shared-secret-123"
SETTINGS = {
    "CARE_ESCALATION_CHANNEL": ESCALATION_CHANNEL,
    "CARE_ONCALL_GROUP": "S0ONCALL",
    "CARE_SUPERVISOR_GROUP": "S0SUPER",
    "CARE_NUDGE_MENTION": "S0POOL",
    "CARE_NUDGE_AFTER": "15m",
    "CARE_ESCALATE_AFTER": "60m",
    "CARE_ESCALATE_AGAIN_AFTER": "2h",
    "CARE_SWEEP_SECONDS": "0.1",
    "SUPPORT_WEBHOOK_SECRET": BACKEND_SECRET,
}


def make_stack(fake_slack, fake_x, database_url, clock, **overrides) -> Stack:
    return Stack(
        fake_slack, fake_x, database_url, overrides={**SETTINGS, **overrides}, clock=clock
    ).start()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def stack(fake_slack, fake_x, database_url, clock) -> Iterator[Stack]:
    running = make_stack(fake_slack, fake_x, database_url, clock)
    yield running
    running.stop()


def escalations(stack: Stack, fragment: str = "") -> list[dict]:
    return [
        m
        for m in stack.slack.messages(ESCALATION_CHANNEL)
        if fragment in rendered(m) or fragment in (m.get("text") or "")
    ]


def thread_texts(stack: Stack, card: dict) -> list[str]:
    return [m.get("text") or "" for m in stack.slack.thread(QUESTIONS_CHANNEL, card["ts"])]


def question(stack: Stack) -> Question:
    with stack.app.sessions.begin() as session:
        return session.scalars(select(Question)).one()


def make_moderator(stack: Stack, user_id: str) -> None:
    """Answer now and Send are for moderators: give ``user_id`` the role."""
    with stack.app.sessions.begin() as session:
        session.add(Member(user_id=user_id, role="moderator", updated_at=datetime.now(UTC)))


def sweeps_after(stack: Stack) -> None:
    """Run the real sweep (and post what it decides) right now, twice, at the current clock."""
    for _ in range(2):
        stack.app.escalations.sweep()
        stack.app.escalations.post_due_notifications()


def test_no_proposal_in_time_nudges_the_pool_once(stack: Stack, clock: Clock) -> None:
    stack.x.add_mention("@AcmeHelp can I pay with PayPal?")
    card = card_for(stack, "PayPal")

    clock.advance(minutes=16)

    nudge = wait_until(
        lambda: [t for t in thread_texts(stack, card) if "waited" in t], message="a nudge"
    )[0]
    assert "16 min" in nudge and "<!subteam^S0POOL>" in nudge
    wait_until(lambda: "Waiting 16 min" in rendered(current(stack, card)), message="card waits")
    clock.advance(minutes=10)
    sweeps_after(stack)
    assert len([t for t in thread_texts(stack, card) if "waited" in t]) == 1


def test_escalation_then_second_level_reach_the_right_people(stack: Stack, clock: Clock) -> None:
    stack.x.add_mention("@AcmeHelp my card was charged twice!", author_handle="lena")
    card = card_for(stack, "charged twice")
    proposal = propose(stack, "U0ALICE", card, "Sorry Lena! The second charge is a hold; it drops.")
    vote(stack, "U0BOB", proposal)

    clock.advance(minutes=61)

    first = wait_until(lambda: escalations(stack, "charged twice"), message="escalation")[0]
    shown = rendered(first)
    assert "<!subteam^S0ONCALL>" in shown and "lena" in shown
    assert "second charge is a hold" in shown and "1 vote" in shown
    assert f"archives/{QUESTIONS_CHANNEL}" in shown  # link to the card
    assert button_value(first, ACTION_ANSWER_NOW) is not None
    assert button_value(first, ACTION_SEND_PROPOSAL) is not None
    wait_until(lambda: "Escalated" in rendered(current(stack, card)), message="card escalated")

    clock.advance(hours=1)

    wait_until(lambda: len(escalations(stack, "charged twice")) == 2, message="second level")
    second = [m for m in escalations(stack) if "S0SUPER" in rendered(m)]
    assert len(second) == 1
    clock.advance(hours=5)
    sweeps_after(stack)
    assert len(escalations(stack, "charged twice")) == 2


def test_an_answer_after_escalation_stops_the_chain(stack: Stack, clock: Clock) -> None:
    stack.x.add_mention("@AcmeHelp is there a student discount?")
    card = card_for(stack, "student discount")
    proposal = propose(stack, "U0ALICE", card, "Yes: 15% with a valid student card.")
    clock.advance(minutes=61)
    first = wait_until(lambda: escalations(stack, "student discount"), message="escalation")[0]

    for voter in ("U0BOB", "U0CARA", "U0DAN"):
        vote(stack, voter, proposal)
    stack.x.wait_for_replies(1)
    wait_until(
        lambda: "Answered by" in rendered(stack.slack.message(ESCALATION_CHANNEL, first["ts"])),
        message="escalation message shows the answer",
    )
    updated = stack.slack.message(ESCALATION_CHANNEL, first["ts"])
    assert button_value(updated, ACTION_ANSWER_NOW) is None

    clock.advance(hours=3)
    sweeps_after(stack)
    assert len(escalations(stack, "student discount")) == 1
    assert len(stack.x.replies()) == 1


def test_rep_answer_now_sends_exactly_one_reply(stack: Stack, clock: Clock) -> None:
    make_moderator(stack, "U0REP")
    post_id = stack.x.add_mention("@AcmeHelp my account is locked")
    card_for(stack, "account is locked")
    clock.advance(minutes=61)
    message = wait_until(lambda: escalations(stack, "account is locked"), message="escalation")[0]
    value = button_value(message, ACTION_ANSWER_NOW)

    stack.client.block_action(
        "U0REP", ACTION_ANSWER_NOW, value, channel_id=ESCALATION_CHANNEL, message_ts=message["ts"]
    )
    form = stack.slack.wait_for("views.open")[0].params["view"]
    assert form["callback_id"] == VIEW_ANSWER_NOW
    too_long = stack.client.view_submission(
        "U0REP",
        VIEW_ANSWER_NOW,
        form["private_metadata"],
        {ANSWER_BLOCK: {ANSWER_INPUT: "x" * 300}},
    )
    assert too_long.json()["response_action"] == "errors"
    answer = "We've unlocked it; please reset your password from the login page."
    ok = stack.client.view_submission(
        "U0REP", VIEW_ANSWER_NOW, form["private_metadata"], {ANSWER_BLOCK: {ANSWER_INPUT: answer}}
    )
    assert ok.status == 200 and ok.text == ""

    [reply] = stack.x.wait_for_replies(1)
    assert reply.text == answer and reply.referenced == [("replied_to", post_id)]
    wait_until(lambda: question(stack).state == "answered", message="answered")
    again = stack.client.block_action(
        "U0REP", ACTION_ANSWER_NOW, value, channel_id=ESCALATION_CHANNEL, message_ts=message["ts"]
    )
    assert again.status == 200
    ephemeral_to(stack, "U0REP", "answered")
    clock.advance(hours=3)
    sweeps_after(stack)
    assert len(stack.x.replies()) == 1


def test_send_on_a_proposal_sends_it_without_votes(stack: Stack, clock: Clock) -> None:
    make_moderator(stack, "U0REP")
    stack.x.add_mention("@AcmeHelp where do I find my invoice?")
    card = card_for(stack, "invoice")
    propose(stack, "U0ALICE", card, "Under Account → Orders → Invoice.")
    clock.advance(minutes=61)
    message = wait_until(lambda: escalations(stack, "invoice"), message="escalation")[0]

    stack.client.block_action(
        "U0REP",
        ACTION_SEND_PROPOSAL,
        button_value(message, ACTION_SEND_PROPOSAL),
        channel_id=ESCALATION_CHANNEL,
        message_ts=message["ts"],
    )

    [reply] = stack.x.wait_for_replies(1)
    assert reply.text == "Under Account → Orders → Invoice."
    wait_until(lambda: question(stack).state == "answered", message="answered")


def backend_post(stack: Stack, body: bytes, *, secret: str = BACKEND_SECRET, ts: int | None = None):
    import urllib.request
    from urllib.error import HTTPError

    stamp = int(time.time()) if ts is None else ts
    base = stack.client.url.removesuffix("/slack/events")
    request = urllib.request.Request(f"{base}/backend/events", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header(signing.TIMESTAMP_HEADER, str(stamp))
    request.add_header(signing.SIGNATURE_HEADER, signing.sign(secret, stamp, body))
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


def test_a_signed_solve_from_the_helpdesk_closes_the_question(stack: Stack, clock: Clock) -> None:
    stack.x.add_mention("@AcmeHelp I need a refund for order 77")
    card = card_for(stack, "order 77")
    clock.advance(minutes=61)
    message = wait_until(lambda: escalations(stack, "order 77"), message="escalation")[0]
    case_id = question(stack).id
    body = json.dumps(
        {"type": "ticket.solved", "case_id": case_id, "agent": "Dana", "text": "Refunded."}
    ).encode()

    assert backend_post(stack, body) == (200, {"ok": True, "case_id": case_id, "state": "answered"})

    assert question(stack).state == "answered"
    wait_until(lambda: "Dana" in rendered(current(stack, card)), message="card shows Dana")
    wait_until(
        lambda: "Dana" in rendered(stack.slack.message(ESCALATION_CHANNEL, message["ts"])),
        message="escalation shows Dana",
    )
    # The helpdesk sends it again, signed anew: harmless. The exact same request again: refused.
    stamp = int(time.time()) + 1
    assert backend_post(stack, body, ts=stamp)[1]["already"] is True
    assert backend_post(stack, body, ts=stamp) == (401, {"error": "replayed request"})
    clock.advance(hours=3)
    sweeps_after(stack)
    assert len(escalations(stack, "order 77")) == 1
    assert stack.x.replies() == []


@pytest.mark.parametrize(
    ("body", "kwargs", "status", "reason"),
    [
        (
            b'{"type": "ticket.solved", "case_id": 1}',
            {"secret": "wrong-secret-0000000"},
            401,
            "signature",
        ),
        (b'{"type": "ticket.solved", "case_id": 1}', {"ts": 1_000_000_000}, 401, "stale"),
        (b'{"type": "ticket.solved"', {}, 400, "malformed"),
        (b'{"type": "ticket.reopened", "case_id": 1}', {}, 400, "unsupported"),
        (b'{"type": "ticket.solved", "case_id": "one"}', {}, 400, "case_id"),
        (b'{"type": "ticket.solved", "case_id": 999999}', {}, 404, "unknown case"),
    ],
)
def test_bad_helpdesk_events_are_refused_and_change_nothing(
    stack: Stack, body: bytes, kwargs: dict, status: int, reason: str
) -> None:
    stack.x.add_mention("@AcmeHelp hello there")
    card_for(stack, "hello there")
    before = wait_until(lambda: question(stack).state == "open" and "open", message="open")

    got_status, answer = backend_post(stack, body, **kwargs)

    assert got_status == status
    assert reason in answer["error"]
    assert question(stack).state == before


def test_business_hours_hold_escalations_until_opening(fake_slack, fake_x, database_url) -> None:
    friday_evening = datetime(2026, 11, 27, 16, 30, tzinfo=UTC)  # 17:30 in Berlin
    clock = Clock(friday_evening)
    stack = make_stack(
        fake_slack,
        fake_x,
        database_url,
        clock,
        CARE_BUSINESS_HOURS="Mon-Fri 09:00-18:00 Europe/Berlin",
    )
    try:
        stack.x.add_mention("@AcmeHelp weekend question")
        card_for(stack, "weekend question")
        q = question(stack)
        assert q.escalate_at == datetime(2026, 11, 30, 8, 30, tzinfo=UTC)  # Mon 09:30 Berlin

        clock.set(datetime(2026, 11, 28, 11, 0, tzinfo=UTC))  # Saturday noon
        sweeps_after(stack)
        assert escalations(stack) == []
        assert question(stack).state == "open"

        clock.set(datetime(2026, 11, 30, 8, 31, tzinfo=UTC))  # Monday 09:31 Berlin
        wait_until(lambda: escalations(stack, "weekend question"), message="Monday escalation")
    finally:
        stack.stop()
