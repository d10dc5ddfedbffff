"""Proposals and votes on a real database: who may vote, and selection happening exactly once."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.answer_rules import EMPTY_PROBLEM
from bot.states import State
from bot.voting import (
    ProposeOutcome,
    VoteOutcome,
    VoteResult,
    cast_vote,
    propose,
)
from storage.models import AuditEvent, Proposal, Question, Reply, Vote
from tests.dbhelpers import (
    T0,
    actions,
    audit_trail,
    count,
    make_proposal,
    make_question,
    migrated_sessions,
)

ANSWER = "Sorry Maria! Please DM us your order number and we'll chase it today."
OTHER_ANSWER = "Hi Maria, tracking is at acme.example/track — reply here if it's stuck."


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


def new_question(sessions: sessionmaker[Session], state: str = State.OPEN) -> int:
    with sessions.begin() as session:
        return make_question(session, state=state, external_id="1850000000000000001").id


def proposal_in(
    sessions: sessionmaker[Session], question_id: int, author: str = "U0ALICE", text: str = ANSWER
) -> int:
    with sessions.begin() as session:
        result = propose(session, question_id=question_id, author_id=author, text=text, now=T0)
        assert result.outcome == ProposeOutcome.ACCEPTED, result
        assert result.proposal is not None
        return result.proposal.id


def vote(
    sessions: sessionmaker[Session], proposal_id: int, voter: str, threshold: int = 3
) -> VoteResult:
    with sessions.begin() as session:
        return cast_vote(
            session, proposal_id=proposal_id, voter_id=voter, votes_to_select=threshold, now=T0
        )


# -- propose ----------------------------------------------------------------------------------


def test_first_proposal_moves_an_open_question_to_proposed_once(
    sessions: sessionmaker[Session],
) -> None:
    question_id = new_question(sessions)

    first = proposal_in(sessions, question_id, "U0ALICE")
    second = proposal_in(sessions, question_id, "U0BOB", OTHER_ANSWER)

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == State.PROPOSED
        stored = {p.id: (p.author_id, p.text, p.state) for p in session.scalars(select(Proposal))}
        assert stored == {
            first: ("U0ALICE", ANSWER, "open"),
            second: ("U0BOB", OTHER_ANSWER, "open"),
        }
        assert actions(session, question_id) == [
            "proposal.created",
            "state.proposed",
            "proposal.created",
        ]
        created = [e for e in audit_trail(session, question_id) if e.action == "proposal.created"]
        assert [e.detail["proposal_id"] for e in created] == [first, second]
        assert [e.actor for e in created] == ["U0ALICE", "U0BOB"]


def test_proposal_text_is_stored_normalized(sessions: sessionmaker[Session]) -> None:
    question_id = new_question(sessions)

    with sessions.begin() as session:
        result = propose(
            session, question_id=question_id, author_id="U0ALICE", text="  Hi!\r\nBye.  ", now=T0
        )

    assert result.proposal is not None
    assert result.proposal.text == "Hi!\nBye."


@pytest.mark.parametrize("state", [State.ESCALATED])
def test_proposal_on_an_escalated_question_keeps_it_escalated(
    sessions: sessionmaker[Session], state: str
) -> None:
    question_id = new_question(sessions, state)

    proposal_in(sessions, question_id)

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == state
        assert actions(session, question_id) == ["proposal.created"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", EMPTY_PROBLEM),
        ("   \n ", EMPTY_PROBLEM),
        (None, EMPTY_PROBLEM),
        ("x" * 281, "the limit is 280"),
        ("Hello\x00there", "characters X does not accept"),
    ],
)
def test_invalid_answer_is_refused_with_problems_and_not_stored(
    sessions: sessionmaker[Session], text: str | None, problem: str
) -> None:
    question_id = new_question(sessions)

    with sessions.begin() as session:
        result = propose(session, question_id=question_id, author_id="U0ALICE", text=text, now=T0)

    assert result.outcome == ProposeOutcome.INVALID
    assert result.proposal is None
    assert any(problem in p for p in result.problems), result.problems
    with sessions.begin() as session:
        assert count(session, Proposal) == 0
        assert session.get_one(Question, question_id).state == State.OPEN
        assert audit_trail(session) == []


@pytest.mark.parametrize(
    "state",
    [
        State.NEW,
        State.SELECTED,
        State.SENDING,
        State.ANSWERED,
        State.FAILED,
        State.IGNORED,
        State.CLOSED,
    ],
)
def test_proposal_on_a_question_not_taking_answers_is_refused(
    sessions: sessionmaker[Session], state: str
) -> None:
    question_id = new_question(sessions, state)

    with sessions.begin() as session:
        result = propose(session, question_id=question_id, author_id="U0ALICE", text=ANSWER, now=T0)

    assert result.outcome == ProposeOutcome.CLOSED
    assert result.question is not None
    assert result.question.id == question_id
    with sessions.begin() as session:
        assert count(session, Proposal) == 0
        assert session.get_one(Question, question_id).state == state
        assert audit_trail(session) == []


def test_proposal_on_an_unknown_question_is_refused(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        result = propose(session, question_id=4242, author_id="U0ALICE", text=ANSWER, now=T0)

    assert result.outcome == ProposeOutcome.UNKNOWN
    with sessions.begin() as session:
        assert count(session, Proposal) == 0


# -- votes ------------------------------------------------------------------------------------


def test_vote_is_counted_and_audited(sessions: sessionmaker[Session]) -> None:
    question_id = new_question(sessions)
    proposal_id = proposal_in(sessions, question_id)

    result = vote(sessions, proposal_id, "U0BOB")

    assert result.outcome == VoteOutcome.COUNTED
    assert result.votes == 1
    with sessions.begin() as session:
        (stored,) = session.scalars(select(Vote))
        assert (stored.proposal_id, stored.voter_id) == (proposal_id, "U0BOB")
        event = audit_trail(session, question_id)[-1]
        assert (event.action, event.actor) == ("vote.cast", "U0BOB")
        assert event.detail == {"proposal_id": proposal_id, "votes": 1}


def test_self_vote_is_not_counted_and_is_audited(sessions: sessionmaker[Session]) -> None:
    question_id = new_question(sessions)
    proposal_id = proposal_in(sessions, question_id, "U0ALICE")

    result = vote(sessions, proposal_id, "U0ALICE")

    assert result.outcome == VoteOutcome.OWN
    assert result.votes == 0
    with sessions.begin() as session:
        assert count(session, Vote) == 0
        event = audit_trail(session, question_id)[-1]
        assert (event.action, event.actor) == ("vote.refused_own", "U0ALICE")
        assert event.detail == {"proposal_id": proposal_id}


def test_self_vote_never_selects_even_at_a_threshold_of_one(
    sessions: sessionmaker[Session],
) -> None:
    question_id = new_question(sessions)
    proposal_id = proposal_in(sessions, question_id, "U0ALICE")

    assert vote(sessions, proposal_id, "U0ALICE", threshold=1).outcome == VoteOutcome.OWN

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == State.PROPOSED
        assert count(session, Reply) == 0


def test_second_vote_by_the_same_person_is_a_duplicate_and_not_counted(
    sessions: sessionmaker[Session],
) -> None:
    question_id = new_question(sessions)
    proposal_id = proposal_in(sessions, question_id)
    vote(sessions, proposal_id, "U0BOB")

    result = vote(sessions, proposal_id, "U0BOB")

    assert result.outcome == VoteOutcome.DUPLICATE
    assert result.votes == 1
    with sessions.begin() as session:
        assert count(session, Vote) == 1
        assert actions(session, question_id).count("vote.cast") == 1


def test_duplicates_do_not_reach_the_threshold(sessions: sessionmaker[Session]) -> None:
    question_id = new_question(sessions)
    proposal_id = proposal_in(sessions, question_id)

    outcomes = [vote(sessions, proposal_id, voter).outcome for voter in ["U0BOB"] * 3]

    assert outcomes == [VoteOutcome.COUNTED, VoteOutcome.DUPLICATE, VoteOutcome.DUPLICATE]
    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == State.PROPOSED
        assert count(session, Reply) == 0


def test_one_person_may_vote_for_several_proposals(sessions: sessionmaker[Session]) -> None:
    question_id = new_question(sessions)
    first = proposal_in(sessions, question_id, "U0ALICE")
    second = proposal_in(sessions, question_id, "U0BOB", OTHER_ANSWER)

    assert vote(sessions, first, "U0CARA").outcome == VoteOutcome.COUNTED
    assert vote(sessions, second, "U0CARA").outcome == VoteOutcome.COUNTED


def test_vote_for_an_unknown_proposal(sessions: sessionmaker[Session]) -> None:
    assert vote(sessions, 999, "U0BOB").outcome == VoteOutcome.UNKNOWN


def test_threshold_selects_the_proposal_and_queues_its_reply_once(
    sessions: sessionmaker[Session],
) -> None:
    question_id = new_question(sessions)
    winner = proposal_in(sessions, question_id, "U0ALICE")
    loser = proposal_in(sessions, question_id, "U0BOB", OTHER_ANSWER)
    vote(sessions, loser, "U0EVE")

    outcomes = [vote(sessions, winner, v).outcome for v in ("U0BOB", "U0CARA", "U0DAN")]

    assert outcomes == [VoteOutcome.COUNTED, VoteOutcome.COUNTED, VoteOutcome.SELECTED]
    with sessions.begin() as session:
        question = session.get_one(Question, question_id)
        assert question.state == State.SELECTED
        assert question.selected_proposal_id == winner
        assert session.get_one(Proposal, winner).state == "selected"
        assert session.get_one(Proposal, loser).state == "closed"
        (reply,) = session.scalars(select(Reply))
        assert reply.question_id == question_id
        assert reply.proposal_id == winner
        assert reply.text == ANSWER
        assert reply.in_reply_to == question.external_id == "1850000000000000001"
        assert reply.channel == "x"
        assert (reply.state, reply.attempts) == ("pending", 0)
        assert reply.next_attempt_at == T0
        selected = [e for e in audit_trail(session, question_id) if e.action == "state.selected"]
        assert len(selected) == 1
        assert selected[0].actor == "U0DAN"
        assert selected[0].detail == {"from": "proposed", "proposal_id": winner, "votes": 3}
        assert actions(session, question_id)[-3:] == ["vote.cast", "state.selected", "reply.queued"]


def test_selection_and_queued_reply_commit_together(sessions: sessionmaker[Session]) -> None:
    question_id = new_question(sessions)
    proposal_id = proposal_in(sessions, question_id)
    vote(sessions, proposal_id, "U0BOB")
    vote(sessions, proposal_id, "U0CARA")

    def select_then_crash() -> None:
        with sessions.begin() as session:
            result = cast_vote(
                session, proposal_id=proposal_id, voter_id="U0DAN", votes_to_select=3, now=T0
            )
            assert result.outcome == VoteOutcome.SELECTED
            raise RuntimeError("crash before commit")

    with pytest.raises(RuntimeError, match="crash"):
        select_then_crash()

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == State.PROPOSED
        assert session.get_one(Proposal, proposal_id).state == "open"
        assert count(session, Reply) == 0
        assert count(session, Vote) == 2
        assert "state.selected" not in actions(session, question_id)
    assert vote(sessions, proposal_id, "U0DAN").outcome == VoteOutcome.SELECTED


def test_escalated_question_can_still_be_selected(sessions: sessionmaker[Session]) -> None:
    question_id = new_question(sessions, State.ESCALATED)
    proposal_id = proposal_in(sessions, question_id)

    assert vote(sessions, proposal_id, "U0BOB", threshold=1).outcome == VoteOutcome.SELECTED

    with sessions.begin() as session:
        assert session.get_one(Question, question_id).state == State.SELECTED
        assert count(session, Reply) == 1


def test_votes_after_selection_are_refused_as_closed(sessions: sessionmaker[Session]) -> None:
    question_id = new_question(sessions)
    winner = proposal_in(sessions, question_id, "U0ALICE")
    loser = proposal_in(sessions, question_id, "U0BOB", OTHER_ANSWER)
    for voter in ("U0BOB", "U0CARA", "U0DAN"):
        vote(sessions, winner, voter)

    late_for_winner = vote(sessions, winner, "U0EVE")
    late_for_loser = vote(sessions, loser, "U0EVE")

    assert late_for_winner.outcome == VoteOutcome.CLOSED
    assert late_for_winner.votes == 3
    assert late_for_loser.outcome == VoteOutcome.CLOSED
    assert late_for_loser.votes == 0
    with sessions.begin() as session:
        assert count(session, Vote) == 3
        assert count(session, Reply) == 1
        assert actions(session, question_id).count("state.selected") == 1


@pytest.mark.parametrize(
    "state", [State.NEW, State.ANSWERED, State.FAILED, State.IGNORED, State.CLOSED]
)
def test_votes_on_a_question_not_taking_answers_are_refused(
    sessions: sessionmaker[Session], state: str
) -> None:
    with sessions.begin() as session:
        question = make_question(session, state=state)
        question_id = question.id
        proposal_id = make_proposal(session, question).id

    result = vote(sessions, proposal_id, "U0BOB", threshold=1)

    assert result.outcome == VoteOutcome.CLOSED
    with sessions.begin() as session:
        assert count(session, Vote) == 0
        assert count(session, Reply) == 0
        assert session.get_one(Question, question_id).state == state


def test_vote_on_a_closed_proposal_of_an_open_question_is_refused(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        question = make_question(session, state=State.PROPOSED)
        proposal_id = make_proposal(session, question, state="closed").id

    assert vote(sessions, proposal_id, "U0BOB", threshold=1).outcome == VoteOutcome.CLOSED


# -- concurrency ------------------------------------------------------------------------------

THREADS = 40
THRESHOLD = 3


@pytest.mark.postgres
def test_concurrent_votes_select_exactly_once_and_lose_no_vote(
    sessions: sessionmaker[Session],
) -> None:
    """40 voters at once over two proposals; the question's row lock must serialize them.

    Runs on SQLite too (writers serialize on BEGIN IMMEDIATE there). Thread ``i`` votes as
    ``U{i // 2}``, so every voter clicks twice at the same moment: duplicates race as well.
    """
    question_id = new_question(sessions)
    first = proposal_in(sessions, question_id, "U0ALICE")
    second = proposal_in(sessions, question_id, "U0BOB", OTHER_ANSWER)
    plan = [(f"U{i // 2:03d}", (first, second)[(i // 2) % 2]) for i in range(THREADS)]
    barrier = threading.Barrier(THREADS)
    results: list[tuple[str, int, VoteResult]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def run(voter: str, proposal_id: int) -> None:
        try:
            barrier.wait(timeout=60)
            with sessions.begin() as session:
                result = cast_vote(
                    session,
                    proposal_id=proposal_id,
                    voter_id=voter,
                    votes_to_select=THRESHOLD,
                    now=T0,
                )
            with lock:
                results.append((voter, proposal_id, result))
        except BaseException as exc:
            with lock:
                errors.append(exc)

    threads = [threading.Thread(target=run, args=step) for step in plan]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(results) == THREADS
    outcomes = Counter(result.outcome for _, _, result in results)
    assert outcomes[VoteOutcome.SELECTED] == 1
    assert set(outcomes) <= {
        VoteOutcome.COUNTED,
        VoteOutcome.SELECTED,
        VoteOutcome.DUPLICATE,
        VoteOutcome.CLOSED,
    }
    (winner,) = [pid for _, pid, r in results if r.outcome == VoteOutcome.SELECTED]
    loser = second if winner == first else first

    with sessions.begin() as session:
        votes = list(session.scalars(select(Vote)))
        per_proposal = Counter(v.proposal_id for v in votes)
        # No lost or doubled votes: every stored vote is a COUNTED/SELECTED answer and vice versa.
        accepted = Counter(
            (voter, pid)
            for voter, pid, r in results
            if r.outcome in {VoteOutcome.COUNTED, VoteOutcome.SELECTED}
        )
        assert Counter((v.voter_id, v.proposal_id) for v in votes) == accepted
        assert max(accepted.values()) == 1
        assert len(votes) == outcomes[VoteOutcome.COUNTED] + outcomes[VoteOutcome.SELECTED]
        # Serialized: the winner stopped at the threshold, the loser never reached it.
        assert per_proposal[winner] == THRESHOLD
        assert per_proposal[loser] < THRESHOLD
        # Each vote saw the count including itself: the accepted counts are 1..n per proposal.
        for pid in (first, second):
            seen = sorted(
                r.votes
                for _, p, r in results
                if p == pid and r.outcome in {VoteOutcome.COUNTED, VoteOutcome.SELECTED}
            )
            assert seen == list(range(1, per_proposal[pid] + 1))
        question = session.get_one(Question, question_id)
        assert question.state == State.SELECTED
        assert question.selected_proposal_id == winner
        assert count(session, Reply) == 1
        assert session.scalars(select(Reply.proposal_id)).one() == winner
        assert count(session, AuditEvent, AuditEvent.action == "state.selected") == 1
        assert count(session, AuditEvent, AuditEvent.action == "reply.queued") == 1
        assert count(session, AuditEvent, AuditEvent.action == "vote.cast") == len(votes)
        assert session.get_one(Proposal, loser).state == "closed"
