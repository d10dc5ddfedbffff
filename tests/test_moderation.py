"""Moderators' decisions on a real database: which states allow them, what they record."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import moderation
from bot.escalation import sweep
from bot.moderation import Outcome
from bot.states import State
from storage.models import Notification, Proposal, Question, SupportEvent
from tests.dbhelpers import (
    T0,
    actions,
    audit_trail,
    count,
    make_proposal,
    make_question,
    migrated_sessions,
)

MOD = "U0MOD"
NOW = T0 + timedelta(minutes=20)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


def question_in(sessions: sessionmaker[Session], state: str = State.OPEN, **columns) -> int:
    """A question with a card and the usual deadlines (nudge 15 min, escalate 60 min)."""
    with sessions.begin() as session:
        question = make_question(session, state=state, now=T0)
        question.card_channel, question.card_ts = "C0QUESTIONS", "1700000000.000100"
        question.nudge_at = T0 + timedelta(minutes=15)
        question.escalate_at = T0 + timedelta(minutes=60)
        question.escalate_again_at = T0 + timedelta(hours=2)
        for name, value in columns.items():
            setattr(question, name, value)
        return question.id


def run(sessions: sessionmaker[Session], step, question_id: int, **kwargs) -> moderation.Result:
    with sessions.begin() as session:
        return step(session, question_id, actor=MOD, now=NOW, **kwargs)  # type: ignore[no-any-return]


def state_of(sessions: sessionmaker[Session], question_id: int) -> str:
    with sessions.begin() as session:
        return session.get_one(Question, question_id).state


def events(sessions: sessionmaker[Session], question_id: int) -> list[SupportEvent]:
    with sessions.begin() as session:
        query = select(SupportEvent).where(SupportEvent.question_id == question_id)
        found = list(session.scalars(query.order_by(SupportEvent.id)))
        session.expunge_all()
        return found


# -- ignore ---------------------------------------------------------------------------------


@pytest.mark.parametrize("state", [State.OPEN, State.PROPOSED, State.ESCALATED])
def test_ignore_sets_a_question_aside_and_records_who(sessions, state: str) -> None:
    qid = question_in(sessions, state)

    result = run(sessions, moderation.ignore, qid)

    assert result.outcome is Outcome.DONE
    assert result.message == (
        f"Ignored question #{qid}: no reply will be sent and nobody is reminded."
    )
    assert state_of(sessions, qid) == State.IGNORED
    with sessions.begin() as session:
        [event] = [e for e in audit_trail(session, qid) if e.action == "state.ignored"]
        assert event.actor == MOD
        assert event.detail == {"from": state, "reason": "spam or not a question"}
    [support_event] = events(sessions, qid)
    assert support_event.type == "question.closed"
    assert support_event.data == {
        "by": MOD,
        "state": "ignored",
        "reason": "ignored (spam or not a question)",
    }


@pytest.mark.parametrize(
    ("state", "outcome", "message"),
    [
        (State.IGNORED, Outcome.ALREADY, "is already ignored."),
        (State.CLOSED, Outcome.REFUSED, "can't be ignored now: it is closed."),
        (State.ANSWERED, Outcome.REFUSED, "can't be ignored now: it is already answered."),
        (State.SELECTED, Outcome.REFUSED, "its answer is chosen and about to be sent."),
        (State.SENDING, Outcome.REFUSED, "its answer is being sent right now."),
        (State.FAILED, Outcome.REFUSED, "its reply failed"),
    ],
)
def test_ignore_is_refused_once_the_question_is_past_it(
    sessions, state: str, outcome: Outcome, message: str
) -> None:
    qid = question_in(sessions, state)

    result = run(sessions, moderation.ignore, qid)

    assert result.outcome is outcome
    assert message in result.message
    assert state_of(sessions, qid) == state
    with sessions.begin() as session:
        assert actions(session, qid) == []
    assert events(sessions, qid) == []


def test_an_unknown_question_is_named_back(sessions) -> None:
    for step in (moderation.ignore, moderation.close, moderation.escalate_now):
        result = run(sessions, step, 999)
        assert result.outcome is Outcome.UNKNOWN
        assert result.message == "There is no question #999."


# -- close ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "state", [State.NEW, State.OPEN, State.PROPOSED, State.ESCALATED, State.FAILED]
)
def test_close_works_on_anything_not_finished(sessions, state: str) -> None:
    qid = question_in(sessions, state)

    result = run(sessions, moderation.close, qid, reason="  duplicate of\n#41 ")

    assert result.outcome is Outcome.DONE
    assert state_of(sessions, qid) == State.CLOSED
    with sessions.begin() as session:
        [event] = [e for e in audit_trail(session, qid) if e.action == "state.closed"]
        assert (event.actor, event.detail) == (MOD, {"from": state, "reason": "duplicate of #41"})
    [support_event] = events(sessions, qid)
    assert support_event.data == {"by": MOD, "state": "closed", "reason": "duplicate of #41"}


def test_close_without_a_reason_records_none(sessions) -> None:
    qid = question_in(sessions)

    assert run(sessions, moderation.close, qid).outcome is Outcome.DONE

    with sessions.begin() as session:
        [event] = [e for e in audit_trail(session, qid) if e.action == "state.closed"]
        assert event.detail == {"from": "open"}
    assert events(sessions, qid)[0].data == {"by": MOD, "state": "closed"}


def test_a_long_reason_is_cut_to_the_limit(sessions) -> None:
    qid = question_in(sessions)

    run(sessions, moderation.close, qid, reason="x" * 500)

    with sessions.begin() as session:
        [event] = [e for e in audit_trail(session, qid) if e.action == "state.closed"]
        assert len(event.detail["reason"]) == moderation.REASON_LIMIT


@pytest.mark.parametrize(
    ("state", "outcome"),
    [
        (State.CLOSED, Outcome.ALREADY),
        (State.ANSWERED, Outcome.REFUSED),
        (State.IGNORED, Outcome.REFUSED),
        (State.SELECTED, Outcome.REFUSED),
        (State.SENDING, Outcome.REFUSED),
    ],
)
def test_close_is_refused_once_finished_or_sending(sessions, state: str, outcome) -> None:
    qid = question_in(sessions, state)

    result = run(sessions, moderation.close, qid, reason="late")

    assert result.outcome is outcome
    assert state_of(sessions, qid) == state
    assert events(sessions, qid) == []


def test_closing_retires_open_proposals(sessions) -> None:
    qid = question_in(sessions, State.PROPOSED)
    with sessions.begin() as session:
        question = session.get_one(Question, qid)
        first = make_proposal(session, question).id
        second = make_proposal(session, question, author_id="U0BOB").id

    run(sessions, moderation.close, qid)

    with sessions.begin() as session:
        assert {session.get_one(Proposal, p).state for p in (first, second)} == {"closed"}


# -- escalate now ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", [State.OPEN, State.PROPOSED, State.FAILED])
def test_escalate_now_does_what_the_sweep_would(sessions, state: str) -> None:
    qid = question_in(sessions, state)

    result = run(sessions, moderation.escalate_now, qid)

    assert result.outcome is Outcome.DONE
    assert result.message == f"Escalated question #{qid} to the support reps."
    with sessions.begin() as session:
        question = session.get_one(Question, qid)
        assert (question.state, question.escalated_at) == (State.ESCALATED, NOW)
        [event] = [e for e in audit_trail(session, qid) if e.action == "state.escalated"]
        assert event.actor == MOD
        assert event.detail["level"] == 1 and MOD in event.detail["reason"]
        [notification] = session.scalars(select(Notification)).all()
        assert (notification.kind, notification.state) == ("escalation", "pending")
    [support_event] = events(sessions, qid)
    assert support_event.type == "question.escalated"
    assert support_event.data["level"] == 1
    assert support_event.data["waited_seconds"] == 20 * 60


def test_escalate_now_happens_once_and_the_sweep_does_not_repeat_it(sessions) -> None:
    qid = question_in(sessions)
    run(sessions, moderation.escalate_now, qid)

    again = run(sessions, moderation.escalate_now, qid)
    swept = sweep(sessions, now=T0 + timedelta(minutes=61))

    assert again.outcome is Outcome.ALREADY
    assert again.message == f"Question #{qid} is already escalated."
    assert swept.escalated == [] and swept.nudged == []
    with sessions.begin() as session:
        assert count(session, Notification) == 1


def test_escalate_now_after_a_proposal_on_an_escalated_question_is_already_done(
    sessions,
) -> None:
    qid = question_in(sessions, State.PROPOSED, escalated_at=T0 + timedelta(minutes=60))

    result = run(sessions, moderation.escalate_now, qid)

    assert result.outcome is Outcome.ALREADY


@pytest.mark.parametrize(
    "state", [State.NEW, State.SELECTED, State.SENDING, State.ANSWERED, State.CLOSED]
)
def test_escalate_now_is_refused_when_escalation_is_not_possible(sessions, state: str) -> None:
    qid = question_in(sessions, state)

    result = run(sessions, moderation.escalate_now, qid)

    assert result.outcome is Outcome.REFUSED
    assert f"Question #{qid} can't be escalated now" in result.message
    assert state_of(sessions, qid) == state
    with sessions.begin() as session:
        assert count(session, Notification) == 0


# -- the sweep leaves set-aside questions alone ---------------------------------------------


@pytest.mark.parametrize("step", [moderation.ignore, moderation.close])
def test_ignored_and_closed_questions_are_never_nudged_or_escalated(sessions, step) -> None:
    qid = question_in(sessions)
    run(sessions, step, qid)

    result = sweep(sessions, now=T0 + timedelta(hours=5))

    assert not result.any
    with sessions.begin() as session:
        assert count(session, Notification) == 0
        assert session.get_one(Question, qid).nudged_at is None
