"""Question states: which moves are allowed; each one is audited in the same transaction."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import product

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.states import (
    ACCEPTS_PROPOSALS,
    FINISHED,
    InvalidTransition,
    State,
    can_move,
    transition,
)
from storage.models import AuditEvent, Question
from tests.dbhelpers import T0, audit_trail, count, make_question, migrated_sessions

S = State

# The workflow's state machine, written out as the pairs it must allow. Every other pair is refused.
ALLOWED = {
    (S.NEW, S.OPEN),
    (S.NEW, S.IGNORED),
    (S.NEW, S.CLOSED),
    (S.OPEN, S.PROPOSED),
    (S.OPEN, S.SELECTED),  # a rep's "Answer now" before anyone proposed
    (S.OPEN, S.ESCALATED),
    (S.OPEN, S.ANSWERED),  # solved in the helpdesk
    (S.OPEN, S.IGNORED),
    (S.OPEN, S.CLOSED),
    (S.PROPOSED, S.SELECTED),
    (S.PROPOSED, S.ESCALATED),
    (S.PROPOSED, S.ANSWERED),
    (S.PROPOSED, S.IGNORED),
    (S.PROPOSED, S.CLOSED),
    (S.ESCALATED, S.PROPOSED),
    (S.ESCALATED, S.SELECTED),
    (S.ESCALATED, S.ANSWERED),
    (S.ESCALATED, S.IGNORED),
    (S.ESCALATED, S.CLOSED),
    (S.SELECTED, S.SENDING),
    (S.SELECTED, S.FAILED),
    (S.SELECTED, S.ANSWERED),  # solved in the helpdesk before the reply went out
    (S.SENDING, S.ANSWERED),
    (S.SENDING, S.FAILED),
    (S.FAILED, S.SELECTED),
    (S.FAILED, S.ESCALATED),
    (S.FAILED, S.ANSWERED),
    (S.FAILED, S.CLOSED),
    (S.ANSWERED, S.CLOSED),
}
ALL_PAIRS = list(product(State, State))


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


@pytest.mark.parametrize(("current", "target"), ALL_PAIRS, ids=str)
def test_can_move_follows_the_state_machine(current: State, target: State) -> None:
    assert can_move(current, target) is ((current, target) in ALLOWED)


@pytest.mark.parametrize("state", list(State), ids=str)
def test_no_state_moves_to_itself(state: State) -> None:
    assert not can_move(state, state)


@pytest.mark.parametrize("state", list(State), ids=str)
def test_nothing_goes_back_to_new(state: State) -> None:
    assert not can_move(state, S.NEW)


def test_ignored_and_closed_are_terminal() -> None:
    for terminal, target in product((S.IGNORED, S.CLOSED), State):
        assert not can_move(terminal, target)


def test_a_reply_can_only_be_selected_where_a_person_may_still_choose() -> None:
    sources = {current for current in State if can_move(current, S.SELECTED)}
    assert sources == {S.OPEN, S.PROPOSED, S.ESCALATED, S.FAILED}


def test_proposal_and_finished_sets() -> None:
    assert {S.OPEN, S.PROPOSED, S.ESCALATED} == ACCEPTS_PROPOSALS
    assert {S.ANSWERED, S.IGNORED, S.CLOSED} == FINISHED
    assert not ACCEPTS_PROPOSALS & FINISHED


def test_can_move_accepts_the_stored_string() -> None:
    assert can_move("proposed", S.SELECTED)
    assert not can_move("answered", S.SELECTED)


@pytest.mark.parametrize(("current", "target"), sorted(ALLOWED), ids=str)
def test_allowed_transition_changes_state_and_writes_an_audit_event(
    sessions: sessionmaker[Session], current: State, target: State
) -> None:
    with sessions.begin() as session:
        question_id = make_question(session, state=current).id

    with sessions.begin() as session:
        question = session.get_one(Question, question_id)
        transition(session, question, target, actor="U0ALICE", now=T0, detail={"why": "test"})

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == target
        (event,) = audit_trail(session, question_id)
        assert event.action == f"state.{target}"
        assert event.actor == "U0ALICE"
        assert event.at == T0
        assert event.detail == {"from": str(current), "why": "test"}


@pytest.mark.parametrize(
    ("current", "target"),
    [
        (S.NEW, S.SELECTED),
        (S.SELECTED, S.PROPOSED),
        (S.SENDING, S.SELECTED),
        (S.ANSWERED, S.SENDING),
        (S.ANSWERED, S.ANSWERED),
        (S.CLOSED, S.OPEN),
        (S.IGNORED, S.OPEN),
    ],
    ids=str,
)
def test_refused_transition_changes_nothing_and_writes_nothing(
    sessions: sessionmaker[Session], current: State, target: State
) -> None:
    with sessions.begin() as session:
        question_id = make_question(session, state=current).id

    with sessions.begin() as session:
        question = session.get_one(Question, question_id)
        with pytest.raises(InvalidTransition, match=f"{current} → {target}"):
            transition(session, question, target, actor="U0ALICE", now=T0)
        assert question.state == current

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == current
        assert count(session, AuditEvent) == 0


def test_rolled_back_transition_leaves_neither_state_nor_audit_event(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        question_id = make_question(session, state=S.OPEN).id

    with sessions() as session:
        question = session.get_one(Question, question_id)
        transition(session, question, S.PROPOSED, actor="U0ALICE", now=T0)
        session.flush()  # both rows are written inside the transaction...
        assert count(session, AuditEvent, AuditEvent.question_id == question_id) == 1
        session.rollback()  # ...and then it is abandoned

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == S.OPEN
        assert count(session, AuditEvent) == 0


def test_an_error_after_the_transition_rolls_both_back(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        question_id = make_question(session, state=S.PROPOSED).id

    def select_then_crash() -> None:
        with sessions.begin() as session:
            question = session.get_one(Question, question_id)
            transition(session, question, S.SELECTED, actor="U0BOB", now=T0)
            session.flush()
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash"):
        select_then_crash()

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == S.PROPOSED
        assert audit_trail(session, question_id) == []


def test_each_step_of_a_path_is_audited_in_order(sessions: sessionmaker[Session]) -> None:
    path = [S.OPEN, S.PROPOSED, S.ESCALATED, S.SELECTED, S.SENDING, S.ANSWERED, S.CLOSED]
    with sessions.begin() as session:
        question_id = make_question(session, state=S.NEW).id

    for target in path:
        with sessions.begin() as session:
            question = session.get_one(Question, question_id)
            transition(session, question, target, actor="crowdcare", now=T0)

    with sessions.begin() as session:
        events = audit_trail(session, question_id)
        assert [(e.detail["from"], e.action) for e in events] == [
            (str(before), f"state.{after}")
            for before, after in zip([S.NEW, *path[:-1]], path, strict=True)
        ]
