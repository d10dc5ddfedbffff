"""`/care export`: the questions of a period with their proposals, votes and replies, as one CSV.

One row per record, so the file opens as a single sheet and filters by ``record`` or
``question_id``. Columns, in order:

``record``
    ``question``, ``proposal``, ``vote`` or ``reply``. Each question is followed by its
    proposals (each followed by its votes), then its reply.
``question_id``, ``proposal_id``
    The numbers shown in Slack; ``proposal_id`` is empty on question rows.
``at``
    ISO 8601 UTC: when the question was received, the proposal written, the vote cast, the reply
    sent (or queued, while it is not sent).
``slack_user``
    The author of a proposal, the voter; empty otherwise.
``customer_handle``
    On question rows only.
``state``
    The question's, the proposal's or the reply's state.
``votes``
    On proposal rows: the votes it received.
``text``
    The question, the proposal or the reply, verbatim.
``url``
    The customer's post on question rows, the public reply on reply rows.

The file is UTF-8 with a byte-order mark (so spreadsheets detect the encoding), comma separated,
quoted where needed (RFC 4180). Customer text is hostile: a cell starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return gets a leading ``'`` so no spreadsheet runs it as a
formula. Questions are those *received* in the period ``[since, until)``.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Row, and_, select
from sqlalchemy.orm import Session

from storage.models import Customer, Proposal, Question, Reply, Vote

COLUMNS = (
    "record",
    "question_id",
    "proposal_id",
    "at",
    "slack_user",
    "customer_handle",
    "state",
    "votes",
    "text",
    "url",
)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | None
VoteRow = Row[int, str, datetime, int]  # proposal_id, voter_id, created_at, id


@dataclass(frozen=True)
class Export:
    """A finished export: the file's name and bytes, and what it holds."""

    filename: str
    content: bytes
    questions: int
    proposals: int
    votes: int
    replies: int


def filename(label: str, until: datetime) -> str:
    """``crowdcare-export-7d-2026-01-05.csv``."""
    return f"crowdcare-export-{label}-{until.astimezone(UTC).date().isoformat()}.csv"


def build_export(session: Session, *, label: str, since: datetime, until: datetime) -> Export:
    """The CSV of the questions received in ``[since, until)``."""
    received = and_(Question.received_at >= since, Question.received_at < until)
    questions = session.execute(
        select(Question, Customer.handle)
        .join(Customer, Customer.id == Question.customer_id)
        .where(received)
        .order_by(Question.received_at, Question.id)
    ).all()
    proposals: defaultdict[int, list[Proposal]] = defaultdict(list)
    for proposal in session.scalars(
        select(Proposal).join(Question).where(received).order_by(Proposal.id)
    ):
        proposals[proposal.question_id].append(proposal)
    # Plain rows, sorted here: votes are the most numerous records, and an ORDER BY on their
    # time tempts SQLite into walking every vote ever cast in that order.
    cast = session.execute(
        select(Vote.proposal_id, Vote.voter_id, Vote.created_at, Vote.id)
        .join(Proposal, Proposal.id == Vote.proposal_id)
        .join(Question, Question.id == Proposal.question_id)
        .where(received)
    ).all()
    votes: defaultdict[int, list[VoteRow]] = defaultdict(list)
    for vote in sorted(cast, key=lambda row: (row.created_at, row.id)):
        votes[vote.proposal_id].append(vote)
    replies = {
        reply.question_id: reply
        for reply in session.scalars(select(Reply).join(Question).where(received))
    }
    rows: list[Sequence[Cell]] = []
    for question, handle in questions:
        rows.append(_question_row(question, handle))
        for proposal in proposals[question.id]:
            rows.append(_proposal_row(proposal, len(votes[proposal.id])))
            rows.extend(_vote_row(proposal, vote) for vote in votes[proposal.id])
        if question.id in replies:
            rows.append(_reply_row(replies[question.id]))
    return Export(
        filename=filename(label, until),
        content=to_csv(rows).encode("utf-8-sig"),
        questions=len(questions),
        proposals=sum(len(p) for p in proposals.values()),
        votes=sum(len(v) for v in votes.values()),
        replies=len(replies),
    )


def _row(record: str, **cells: Cell) -> list[Cell]:
    """A row in :data:`COLUMNS` order; columns not given are empty."""
    return [record, *(cells.get(column) for column in COLUMNS[1:])]


def _question_row(question: Question, handle: str) -> list[Cell]:
    return _row(
        "question",
        question_id=question.id,
        at=_iso(question.received_at),
        customer_handle=handle,
        state=question.state,
        text=question.text,
        url=question.post_url,
    )


def _proposal_row(proposal: Proposal, votes: int) -> list[Cell]:
    return _row(
        "proposal",
        question_id=proposal.question_id,
        proposal_id=proposal.id,
        at=_iso(proposal.created_at),
        slack_user=proposal.author_id,
        state=proposal.state,
        votes=votes,
        text=proposal.text,
    )


def _vote_row(proposal: Proposal, vote: VoteRow) -> list[Cell]:
    return _row(
        "vote",
        question_id=proposal.question_id,
        proposal_id=proposal.id,
        at=_iso(vote.created_at),
        slack_user=vote.voter_id,
    )


def _reply_row(reply: Reply) -> list[Cell]:
    return _row(
        "reply",
        question_id=reply.question_id,
        proposal_id=reply.proposal_id,
        at=_iso(reply.sent_at or reply.created_at),
        state=reply.state,
        text=reply.text,
        url=reply.url,
    )


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def to_csv(rows: Sequence[Sequence[Cell]]) -> str:
    """The header and ``rows`` as CSV text, every cell made safe for spreadsheets."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(cell) for cell in row])
    return out.getvalue()


def safe_cell(cell: Cell) -> str:
    """A cell's text that no spreadsheet will run as a formula."""
    if cell is None:
        return ""
    text = str(cell)
    if isinstance(cell, str) and text.startswith(_FORMULA_STARTS):
        return "'" + text
    return text
