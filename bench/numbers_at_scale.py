"""Benchmark the numbers (stats, leaderboard, App Home, queue, export) on a year of data.

Fills a migrated database with a realistic year (50,000 questions by default, about 2 proposals
and 5 votes each, a sent reply for about 80 %, their audit and support events, 300 employees,
20,000 customers) by bulk inserts, then times each query the way the bot runs it: a fresh
session, the median of several runs. Usage:

    .venv/bin/python bench/numbers_at_scale.py [--questions 50000] [--runs 5]
    .venv/bin/python bench/numbers_at_scale.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/x

The default is SQLite in a temp dir. A database that already holds questions is migrated to
head and reused as it is (so one fill can be timed before and after a migration). Slash
commands must be answered within 3 s, so everything they compute should stay well under that.
Figures go into docs/benchmarks.md; compare runs made on one machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, Table, func, insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from bot.commands.admin import QUEUE_LINES, waiting_questions
from bot.export import build_export
from bot.intake import intake_paused
from bot.privacy import forget
from bot.stats import (
    LEADERBOARD_PERIODS,
    STATS_PERIODS,
    compute_stats,
    home_numbers,
    leaderboard,
    parse_period,
)
from bot.workflow import open_questions
from storage.db import make_engine, session_factory
from storage.migrate import upgrade
from storage.models import (
    AuditEvent,
    Customer,
    Delivery,
    Member,
    Notification,
    Proposal,
    Question,
    Reply,
    SupportEvent,
    Vote,
)

EMPLOYEES = 300
CUSTOMERS = 20_000
DAYS = 365
CHUNK = 2_000  # questions generated and inserted per transaction
WORDS = (
    *("order", "delivery", "refund", "card", "app", "login", "password", "invoice", "parcel"),
    *("late", "broken", "account", "update", "please", "help", "thanks", "again", "still"),
    *("waiting", "since", "yesterday", "store", "receipt", "charge", "subscription"),
)


def employee(n: int) -> str:
    return f"U0E{n:05d}"


# --- filling -------------------------------------------------------------------------------


@dataclass
class Rows:
    """The rows of one chunk, per table, in insert order (parents first)."""

    questions: list[dict[str, Any]] = field(default_factory=list)
    proposals: list[dict[str, Any]] = field(default_factory=list)
    votes: list[dict[str, Any]] = field(default_factory=list)
    replies: list[dict[str, Any]] = field(default_factory=list)
    notifications: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    support: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def tables(self) -> list[tuple[Table, list[dict[str, Any]]]]:
        return [
            (_table(Question), self.questions),
            (_table(Proposal), self.proposals),
            (_table(Vote), self.votes),
            (_table(Reply), self.replies),
            (_table(Notification), self.notifications),
            (_table(AuditEvent), self.audit),
            (_table(SupportEvent), self.support),
            (_table(Delivery), self.deliveries),
        ]


def _table(model: Any) -> Table:
    table: Table = model.__table__
    return table


class Year:
    """Generates a year of crowdcare's rows with explicit ids, chunk by chunk."""

    def __init__(self, questions: int, now: datetime, seed: int = 4) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.total = questions
        span = DAYS * 24 * 3600 - 60
        offsets = sorted(self.rng.uniform(0, span) for _ in range(questions))
        self.received = [now - timedelta(days=DAYS) + timedelta(seconds=s) for s in offsets]
        # A few people write most answers; customers, too, are a long tail.
        self.author_weights = [1 / (n + 1) ** 0.9 for n in range(EMPLOYEES)]
        self.customer_weights = [1 / (n + 1) ** 0.6 for n in range(CUSTOMERS)]
        self.ids = {"proposal": 0, "vote": 0, "reply": 0, "notification": 0, "audit": 0}
        self.ids |= {"support": 0, "delivery": 0}

    def next_id(self, kind: str) -> int:
        self.ids[kind] += 1
        return self.ids[kind]

    def sentence(self, low: int, high: int) -> str:
        return " ".join(self.rng.choices(WORDS, k=self.rng.randint(low, high))).capitalize()

    def customers(self) -> list[dict[str, Any]]:
        start = self.now - timedelta(days=DAYS + 30)
        return [
            {
                "id": n + 1,
                "channel": "x",
                "external_id": str(10_000_000 + n),
                "handle": f"customer{n}",
                "name": f"Customer {n}",
                "created_at": start,
            }
            for n in range(CUSTOMERS)
        ]

    def members(self) -> list[dict[str, Any]]:
        start = self.now - timedelta(days=DAYS + 30)
        return [
            {
                "user_id": employee(n),
                "role": "admin" if n < 3 else "moderator" if n < 13 else "member",
                "in_pool": True,
                "guidelines_version": "1",
                "joined_at": start,
                "updated_at": start,
            }
            for n in range(EMPLOYEES)
        ]

    def chunks(self) -> Iterator[Rows]:
        customer_ids = self.rng.choices(
            range(1, CUSTOMERS + 1), weights=self.customer_weights, k=self.total
        )
        for start in range(0, self.total, CHUNK):
            rows = Rows()
            for index in range(start, min(start + CHUNK, self.total)):
                self.question(rows, index + 1, self.received[index], customer_ids[index])
            yield rows

    def minutes(self, median: float) -> timedelta:
        return timedelta(minutes=self.rng.lognormvariate(0, 0.9) * median)

    def audit(
        self, rows: Rows, at: datetime, actor: str, action: str, qid: int, **detail: Any
    ) -> None:
        rows.audit.append(
            {
                "id": self.next_id("audit"),
                "at": at,
                "actor": actor,
                "action": action,
                "question_id": qid,
                "detail": detail,
            }
        )

    def support(self, rows: Rows, at: datetime, qid: int, kind: str, **data: Any) -> None:
        event_id = self.next_id("support")
        rows.support.append(
            {"id": event_id, "question_id": qid, "type": kind, "data": data, "created_at": at}
        )
        waiting = self.now - at < timedelta(minutes=2)
        rows.deliveries.append(
            {
                "id": self.next_id("delivery"),
                "event_id": event_id,
                "question_id": qid,
                "connector": "webhook",
                "state": "pending" if waiting else "sent",
                "attempts": 0 if waiting else 1,
                "next_attempt_at": at,
                "last_error": None,
                "delivered_at": None if waiting else at + timedelta(seconds=1),
                "created_at": at,
            }
        )

    def question(self, rows: Rows, qid: int, received: datetime, customer: int) -> None:  # noqa: PLR0912, PLR0915
        rng, now = self.rng, self.now
        age = now - received
        text_ = f"@AcmeHelp {self.sentence(6, 30)}?"
        handle = f"customer{customer - 1}"
        # What became of it: recent questions may still be waiting.
        waiting = (age < timedelta(hours=6) and rng.random() < 0.7) or (
            age < timedelta(days=2) and rng.random() < 0.15
        )
        fate = rng.random()
        if waiting:
            outcome = "waiting"
        elif fate < 0.80:
            outcome = "replied"
        elif fate < 0.85:
            outcome = "escalated_answered"
        elif fate < 0.88:
            outcome = "escalated_closed"
        elif fate < 0.94:
            outcome = "ignored"
        else:
            outcome = "closed"
        count = rng.choices((0, 1, 2, 3, 4), weights=(10, 25, 35, 20, 10))[0]
        if outcome == "replied":
            count = max(count, 1)
        if outcome in ("ignored", "closed"):
            count = min(count, 1)
        question: dict[str, Any] = {
            "id": qid,
            "channel": "x",
            "external_id": str(1_000_000_000 + qid),
            "customer_id": customer,
            "kind": "mention",
            "text": text_,
            "post_url": f"https://x.com/{handle}/status/{1_000_000_000 + qid}",
            "conversation_id": str(1_000_000_000 + qid),
            "asked_at": received - timedelta(seconds=rng.randint(5, 60)),
            "received_at": received,
            "state": "open",
            "card_channel": "C0QUESTIONS",
            "card_ts": f"{received.timestamp():.6f}",
            "card_attempts": 1,
            "selected_proposal_id": None,
            "answered_at": None,
            "answered_by": None,
            "nudge_at": received + timedelta(hours=1),
            "escalate_at": received + timedelta(hours=4),
            "escalate_again_at": received + timedelta(hours=24),
            "nudged_at": None,
            "escalated_at": None,
            "escalated_again_at": None,
            "escalation_channel": None,
            "escalation_ts": None,
            "route_channel": None,
            "route_group": None,
        }
        rows.questions.append(question)
        self.audit(rows, received, f"x:{handle}", "question.received", qid, customer_id=customer)
        self.support(rows, received, qid, "question.received", handle=handle, text=text_)
        self.audit(rows, received + timedelta(seconds=2), "system", "state.open", qid)

        last = received
        proposals: list[dict[str, Any]] = []
        winner = rng.randrange(count) if count else -1
        for n in range(count):
            created = min(received + self.minutes(20), now - timedelta(seconds=30))
            author = employee(rng.choices(range(EMPLOYEES), weights=self.author_weights)[0])
            proposal = {
                "id": self.next_id("proposal"),
                "question_id": qid,
                "author_id": author,
                "text": self.sentence(10, 45) + ".",
                "state": "open",
                "message_ts": f"{created.timestamp():.6f}",
                "signature": None,
                "created_at": created,
            }
            proposals.append(proposal)
            rows.proposals.append(proposal)
            self.audit(rows, created, author, "proposal.created", qid, proposal_id=proposal["id"])
            self.support(rows, created, qid, "proposal.created", author=author)
            if n == 0:
                self.audit(rows, created, author, "state.proposed", qid)
            votes = rng.randint(3, 5) if n == winner and outcome == "replied" else rng.randint(0, 2)
            voters = rng.sample([e for e in range(EMPLOYEES) if employee(e) != author], votes)
            for voter in voters:
                cast = min(created + self.minutes(10), now - timedelta(seconds=10))
                rows.votes.append(
                    {
                        "id": self.next_id("vote"),
                        "proposal_id": proposal["id"],
                        "voter_id": employee(voter),
                        "created_at": cast,
                    }
                )
                self.audit(
                    rows, cast, employee(voter), "vote.cast", qid, proposal_id=proposal["id"]
                )
                self.support(rows, cast, qid, "vote.cast", voter=employee(voter))
                last = max(last, cast)
        if proposals:
            question["state"] = "proposed"

        if age > timedelta(hours=1) and outcome != "waiting" and rng.random() < 0.25:
            nudged = received + timedelta(hours=1)
            question["nudged_at"] = nudged
            self.notification(rows, qid, "nudge", nudged)
            self.audit(rows, nudged, "system", "question.nudged", qid)
        if outcome.startswith("escalated"):
            escalated = received + timedelta(hours=4)
            question["state"] = "escalated"
            question["escalated_at"] = escalated
            self.notification(rows, qid, "escalation", escalated)
            self.audit(rows, escalated, "system", "question.escalated", qid)
            self.audit(rows, escalated, "system", "state.escalated", qid)
            self.support(rows, escalated, qid, "question.escalated")
            last = max(last, escalated)

        if outcome == "replied":
            chosen = proposals[winner]
            selected = last + timedelta(seconds=1)
            sent = selected + timedelta(seconds=rng.randint(2, 40))
            question |= {"state": "answered", "selected_proposal_id": chosen["id"]}
            question["answered_at"] = sent
            chosen["state"] = "sent"
            rows.replies.append(
                {
                    "id": self.next_id("reply"),
                    "question_id": qid,
                    "proposal_id": chosen["id"],
                    "channel": "x",
                    "in_reply_to": question["external_id"],
                    "text": chosen["text"],
                    "state": "sent",
                    "attempts": 1,
                    "next_attempt_at": selected,
                    "last_error": None,
                    "external_id": str(2_000_000_000 + qid),
                    "url": f"https://x.com/AcmeHelp/status/{2_000_000_000 + qid}",
                    "created_at": selected,
                    "sent_at": sent,
                }
            )
            for action in ("state.selected", "reply.queued", "reply.claimed", "state.sending"):
                self.audit(rows, selected, "system", action, qid, proposal_id=chosen["id"])
            self.support(rows, selected, qid, "question.selected", proposal_id=chosen["id"])
            self.audit(rows, sent, "system", "reply.sent", qid, reply_url="https://x.com/…")
            self.audit(rows, sent, "system", "state.answered", qid)
            self.support(rows, sent, qid, "reply.sent")
        elif outcome == "escalated_answered":
            answered = last + self.minutes(90)
            question |= {"state": "answered", "answered_at": answered, "answered_by": "rep:jo"}
            self.audit(rows, answered, "rep:jo", "question.solved_elsewhere", qid)
            self.audit(rows, answered, "rep:jo", "state.answered", qid)
            self.support(rows, answered, qid, "question.solved_elsewhere")
        elif outcome in ("escalated_closed", "ignored", "closed"):
            state = "ignored" if outcome == "ignored" else "closed"
            done = last + self.minutes(30)
            question["state"] = state
            self.audit(rows, done, employee(1), f"state.{state}", qid)
            self.support(rows, done, qid, "question.closed")

    def notification(self, rows: Rows, qid: int, kind: str, at: datetime) -> None:
        rows.notifications.append(
            {
                "id": self.next_id("notification"),
                "question_id": qid,
                "kind": kind,
                "state": "sent",
                "attempts": 1,
                "next_attempt_at": at,
                "last_error": None,
                "channel": "C0QUESTIONS",
                "ts": f"{at.timestamp():.6f}",
                "created_at": at,
            }
        )


def fill(engine: Engine, questions: int, now: datetime) -> dict[str, int]:
    """Insert a year of data; returns the row count per table."""
    year = Year(questions, now)
    counts: dict[str, int] = {}
    with engine.begin() as connection:
        connection.execute(insert(_table(Member)), year.members())
        connection.execute(insert(_table(Customer)), year.customers())
    counts["members"], counts["customers"] = EMPLOYEES, CUSTOMERS
    for rows in year.chunks():
        with engine.begin() as connection:
            for table, values in rows.tables():
                if values:
                    connection.execute(insert(table), values)
                    counts[table.name] = counts.get(table.name, 0) + len(values)
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            for name in ("customers", "questions", "proposals", "votes", "replies"):
                _advance_sequence(connection, name)
            for name in ("notifications", "audit_events", "support_events", "deliveries"):
                _advance_sequence(connection, name)
            # Autovacuum would analyze tables this size soon after; do it now, as it would.
            connection.execute(text("ANALYZE"))
    return counts


def _advance_sequence(connection: Any, table: str) -> None:
    connection.execute(
        text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}")  # noqa: S608
    )


# --- timing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    name: str
    runs: list[float]  # milliseconds
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def timed(runs: int, work: Callable[[], object]) -> list[float]:
    """Milliseconds per run of ``work``, after one untimed warm-up run."""
    work()
    results = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        results.append((time.perf_counter() - started) * 1000)
    return results


def busiest_author(sessions: sessionmaker[Session], since: datetime) -> str:
    with sessions() as session:
        row = session.execute(
            select(Proposal.author_id, func.count())
            .where(Proposal.created_at >= since)
            .group_by(Proposal.author_id)
            .order_by(func.count().desc())
            .limit(1)
        ).one()
    return str(row[0])


def busiest_customer(sessions: sessionmaker[Session]) -> str:
    with sessions() as session:
        row = session.execute(
            select(Customer.handle, func.count())
            .join(Question, Question.customer_id == Customer.id)
            .group_by(Customer.handle)
            .order_by(func.count().desc())
            .limit(1)
        ).one()
    return str(row[0])


def measure(sessions: sessionmaker[Session], now: datetime, runs: int) -> list[Timing]:
    """Time every number a slash command or the App Home computes."""
    results: list[Timing] = []

    def in_session(work: Callable[[Session], object]) -> Callable[[], object]:
        def run() -> object:
            with sessions() as session:
                return work(session)

        return run

    def add(name: str, work: Callable[[], object], note: str = "") -> None:
        results.append(Timing(name, timed(runs, work), note))

    for word in STATS_PERIODS:
        period = parse_period(word, STATS_PERIODS, now=now)
        add(
            f"/care stats {word}",
            in_session(lambda s, p=period: compute_stats(s, p.since, p.until)),  # type: ignore[misc]
        )
    for word in LEADERBOARD_PERIODS:
        period = parse_period(word, LEADERBOARD_PERIODS, now=now)
        add(
            f"/care leaderboard {word}",
            in_session(lambda s, p=period: leaderboard(s, p.since, p.until)),  # type: ignore[misc]
        )
    busy = busiest_author(sessions, now - timedelta(days=30))
    for admin in (False, True):
        add(
            f"home_numbers ({'admin' if admin else 'member'})",
            in_session(lambda s, a=admin: home_numbers(s, busy, now=now, admin=a)),  # type: ignore[misc]
            f"busiest author {busy}",
        )
    add("App Home open questions", lambda: open_questions(sessions))

    def home_tab() -> object:
        with sessions.begin() as session:
            numbers = home_numbers(session, busy, now=now, admin=True)
        return numbers, open_questions(sessions)

    add("App Home total (admin)", home_tab)
    add(
        "/care queue",
        in_session(lambda s: (intake_paused(s), waiting_questions(s, QUEUE_LINES))),
    )
    month = parse_period("30d", STATS_PERIODS, now=now)
    sizes: list[int] = []

    def export() -> object:
        with sessions() as session:
            made = build_export(session, label="30d", since=month.since, until=month.until)
        sizes.append(len(made.content))
        return made

    add("/care export 30d (after ack)", export)
    results[-1] = Timing(results[-1].name, results[-1].runs, f"{sizes[-1] / 1e6:.1f} MB CSV")
    customer = busiest_customer(sessions)

    def forget_busiest() -> object:
        with sessions() as session:  # rolled back: the data stays for the next run
            return forget(session, customer, actor=employee(0), now=now)

    add("/care forget (after ack)", forget_busiest, f"{customer}, rolled back")
    return results


# --- main ----------------------------------------------------------------------------------


@contextmanager
def database(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/numbers.db"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--questions", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=5, help="timed runs per query (median)")
    parser.add_argument("--database-url", help="default: SQLite in a temp dir")
    args = parser.parse_args()
    with database(args.database_url) as url:
        engine = make_engine(url)
        try:
            upgrade(engine)
            sessions = session_factory(engine)
            with sessions() as session:
                existing = session.scalar(select(func.count()).select_from(Question)) or 0
            if existing:
                print(f"reusing the {existing} questions already in the database")
            else:
                anchor = datetime.now(UTC).replace(hour=16, minute=0, second=0, microsecond=0)
                started = time.perf_counter()
                counts = fill(engine, args.questions, anchor)
                took = time.perf_counter() - started
                print(
                    f"filled in {took:.0f} s: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                )
            with sessions() as session:
                last = session.scalar(select(func.max(Question.received_at)))
            assert last is not None
            now = last + timedelta(minutes=1)
            results = measure(sessions, now, args.runs)
        finally:
            engine.dispose()
    print(f"database: {engine.dialect.name}, now = {now:%Y-%m-%d %H:%M} UTC, {args.runs} runs")
    print(f"| {'what':<32} | median ms | max ms | note")
    print(f"| {'-' * 32} | --------- | ------ | ----")
    for row in results:
        print(f"| {row.name:<32} | {row.median:9.1f} | {max(row.runs):6.1f} | {row.note}")


if __name__ == "__main__":
    main()
