"""Employees acting through a running crowdcare, and what the outside world ended up holding.

Used by the fault tests, which run crowdcare as child processes: everything here goes through the
child's HTTP endpoint (signed Slack requests) or reads the stand-ins and the database, so a test
can count what was posted, once the dust of a kill has settled.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.slack_blocks import ACTION_PROPOSE, ACTION_VOTE, ANSWER_BLOCK, ANSWER_INPUT, VIEW_PROPOSE
from storage.db import make_engine, session_factory
from storage.models import Notification, Question, Reply
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.slack_requests import SlackRequester
from tests.standins.stack import QUESTIONS_CHANNEL, wait_until

CARD_TAG = "crowdcare_question"
NUDGE_TAG = "crowdcare_nudge"
ESCALATION_TAG = "crowdcare_escalation"


# -- what Slack and X hold ----------------------------------------------------------------


def tagged(slack: FakeSlack, channel: str, event_type: str) -> list[dict[str, Any]]:
    """The metadata payloads of the messages in ``channel`` tagged ``event_type``."""
    return [
        dict((message.get("metadata") or {}).get("event_payload") or {})
        for message in slack.messages(channel)
        if (message.get("metadata") or {}).get("event_type") == event_type
    ]


def card_counts(slack: FakeSlack) -> Counter[int]:
    """How many cards the questions channel holds per question id."""
    return Counter(int(tag["question_id"]) for tag in tagged(slack, QUESTIONS_CHANNEL, CARD_TAG))


def replies_per_post(x: FakeX) -> Counter[str]:
    """How many public replies the brand made to each post id."""
    return Counter(
        ref_id for tweet in x.replies() for kind, ref_id in tweet.referenced if kind == "replied_to"
    )


# -- what the database holds --------------------------------------------------------------


@dataclass(frozen=True)
class QuestionRow:
    id: int
    external_id: str
    state: str
    card_ts: str | None
    card_attempts: int


@dataclass(frozen=True)
class ReplyRow:
    question_id: int
    state: str
    attempts: int
    external_id: str | None
    last_error: str | None


class Ledger:
    """Read-only looks into the database the child processes share."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)
        self.sessions = session_factory(self.engine)

    def _read(self, query: Any) -> list[Any]:
        session: Session
        with self.sessions() as session:
            return list(session.execute(query).all())

    def questions(self) -> list[QuestionRow]:
        rows = self._read(
            select(
                Question.id,
                Question.external_id,
                Question.state,
                Question.card_ts,
                Question.card_attempts,
            ).order_by(Question.id)
        )
        return [QuestionRow(*row) for row in rows]

    def question(self, external_id: str) -> QuestionRow:
        [row] = [q for q in self.questions() if q.external_id == external_id]
        return row

    def replies(self) -> dict[int, ReplyRow]:
        rows = self._read(
            select(
                Reply.question_id, Reply.state, Reply.attempts, Reply.external_id, Reply.last_error
            )
        )
        return {row[0]: ReplyRow(*row) for row in rows}

    def notifications(self) -> list[tuple[int, str, str]]:
        """(question id, kind, state) of every nudge and escalation decided."""
        rows = self._read(
            select(Notification.question_id, Notification.kind, Notification.state).order_by(
                Notification.id
            )
        )
        return [tuple(row) for row in rows]

    def states(self) -> Counter[str]:
        return Counter(q.state for q in self.questions())

    def close(self) -> None:
        self.engine.dispose()


# -- employees ----------------------------------------------------------------------------


def _button(message: dict[str, Any], action_id: str) -> str | None:
    for block in message.get("blocks") or []:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("action_id") == action_id:
                return str(element["value"])
    return None


def propose(
    client: SlackRequester,
    slack: FakeSlack,
    question: QuestionRow,
    *,
    author: str,
    answer: str,
    timeout: float = 20.0,
) -> dict[str, Any]:
    """``author`` clicks Propose answer on the question's card and submits ``answer``; returns
    the proposal message once it is shown in the card's thread."""
    assert question.card_ts is not None, f"question {question.id} has no card recorded"

    def opened() -> dict[str, Any] | None:
        for call in slack.calls_to("views.open"):
            view = call.params.get("view") or {}
            if view.get("private_metadata") == str(question.id) and call.status == 200:
                return dict(view)
        return None

    clicked = client.block_action(
        author,
        ACTION_PROPOSE,
        str(question.id),
        channel_id=QUESTIONS_CHANNEL,
        message_ts=question.card_ts,
    )
    assert clicked.status == 200, clicked.text
    form = wait_until(opened, timeout, f"the proposal form for question {question.id}")
    submitted = client.view_submission(
        author, VIEW_PROPOSE, form["private_metadata"], {ANSWER_BLOCK: {ANSWER_INPUT: answer}}
    )
    assert submitted.status == 200, submitted.text
    assert submitted.text == "", f"the form refused the answer: {submitted.text}"

    def shown() -> dict[str, Any] | None:
        for message in slack.thread(QUESTIONS_CHANNEL, question.card_ts or ""):
            if _button(message, ACTION_VOTE) and answer[:30] in json.dumps(message["blocks"]):
                return message
        return None

    found: dict[str, Any] = wait_until(shown, timeout, f"the proposal for question {question.id}")
    return found


def vote(client: SlackRequester, proposal: dict[str, Any], voter: str) -> None:
    """``voter`` clicks Vote on a proposal message; Slack gets its 200 (the work follows)."""
    value = _button(proposal, ACTION_VOTE)
    assert value is not None, "the proposal has no Vote button"
    response = client.block_action(
        voter,
        ACTION_VOTE,
        value,
        channel_id=QUESTIONS_CHANNEL,
        message_ts=proposal["ts"],
        thread_ts=proposal.get("thread_ts"),
    )
    assert response.status == 200, response.text
