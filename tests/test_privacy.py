"""Forgetting a customer: nothing personal left in any table, every count kept, nothing sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import JSON, String, Text, func, select
from sqlalchemy.orm import Session, sessionmaker

from bot.escalation import EscalationPolicy, sweep
from bot.intake import ask_in_slack, receive_posts
from bot.outbox import claim_due, send_claimed
from bot.ports import Author, IncomingPost
from bot.privacy import ERASED, NotAHandle, ReplyInFlight, forget, parse_handle
from bot.states import record
from bot.voting import cast_vote, propose
from bot.x_channel import XChannel
from storage.models import (
    AuditEvent,
    Base,
    Customer,
    Notification,
    Proposal,
    Question,
    Reply,
    SupportEvent,
    Vote,
)
from tests.dbhelpers import T0, Clock, migrated_sessions
from tests.standins.fake_x import FakeX

HANDLE, NAME = "Maria_K88", "Maria Kowalska-Zielinska"
TEXTS = {
    "answered": "@AcmeHelp my parcel 7731 to Kraków never came",
    "open": "@AcmeHelp still waiting on parcel 7731, anyone?",
    "queued": "@AcmeHelp and the refund for 7731?",
}
ANSWER = "Sorry Maria! DM us the parcel number and we'll chase it today."
OTHER_TEXT = "@AcmeHelp is the shop open on Sunday?"
POLICY = EscalationPolicy(nudge_after=timedelta(minutes=15), escalate_after=timedelta(hours=1))
LEASE = timedelta(seconds=60)


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


@pytest.fixture
def channel(x_channel: XChannel) -> XChannel:
    return x_channel


def post(post_id: str, text: str, author: Author) -> IncomingPost:
    return IncomingPost(
        external_id=post_id,
        text=text,
        author=author,
        conversation_id=post_id,
        created_at=T0 - timedelta(minutes=1),
        url=f"https://x.com/{author.handle}/status/{post_id}",
    )


def build(sessions: sessionmaker[Session], fake_x: FakeX, channel: XChannel) -> dict[str, int]:
    """Maria's three questions (answered, open, reply queued) and someone else's, for real."""
    maria = Author("4242", HANDLE, NAME)
    ids = {}
    with sessions.begin() as session:
        for key, text in TEXTS.items():
            post_id = fake_x.add_mention(text, author_handle=HANDLE, author_name=NAME)
            [ids[key]] = receive_posts(
                session,
                channel="x",
                brand_id=fake_x.brand_id,
                posts=[post(post_id, text, maria)],
                policy=POLICY,
                now=T0,
            ).stored
        other = fake_x.add_mention(OTHER_TEXT, author_handle="sam")
        [ids["other"]] = receive_posts(
            session,
            channel="x",
            brand_id=fake_x.brand_id,
            posts=[post(other, OTHER_TEXT, Author("77", "sam", "Sam"))],
            policy=POLICY,
            now=T0,
        ).stored
        for n, key in enumerate(ids):  # their cards are posted
            question = session.get_one(Question, ids[key])
            question.state, question.card_channel = "open", "C0QUESTIONS"
            question.card_ts = f"1700000000.{n:06d}"
        for key in ("answered", "queued", "other"):
            answer = propose(
                session, question_id=ids[key], author_id="U0ALICE", text=ANSWER, now=T0
            )
            assert answer.proposal is not None
            ids[f"{key}_proposal"] = answer.proposal.id
        for key in ("answered", "queued"):
            for voter in ("U0BOB", "U0CARA"):
                cast_vote(
                    session,
                    proposal_id=ids[f"{key}_proposal"],
                    voter_id=voter,
                    votes_to_select=2,
                    now=T0,
                )
        session.get_one(Reply, _reply_of(session, ids["queued"])).next_attempt_at = T0 + LEASE
        # A moderator once typed the handle into a command.
        record(
            session,
            actor="U0MOD",
            action="command.close",
            now=T0,
            detail={"text": f"{ids['open']} spam from @{HANDLE.lower()}"},
        )
    [claimed] = claim_due(sessions, now=T0, lease=LEASE)
    assert send_claimed(sessions, channel, claimed, clock=Clock()).state == "sent"
    sweep(sessions, now=T0 + timedelta(minutes=20))  # nudges for the open ones
    return ids


def _reply_of(session: Session, question_id: int) -> int:
    return session.scalars(select(Reply.id).where(Reply.question_id == question_id)).one()


def counts(session: Session) -> dict[str, int]:
    return {
        model.__tablename__: int(session.scalar(select(func.count()).select_from(model)) or 0)
        for model in (Customer, Question, Proposal, Vote, Reply, SupportEvent, Notification)
    }


def found_anywhere(session: Session, needles: list[str]) -> list[str]:
    """Every text or JSON cell of every table holding one of ``needles`` (case-insensitive)."""
    lowered = [needle.lower() for needle in needles]
    hits = []
    for table in Base.metadata.tables.values():
        columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
        assert columns or table.name in ("votes",), f"{table.name}: no text columns?"
        for row in session.execute(select(*columns)).mappings():
            for column, value in row.items():
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                if any(needle in shown.lower() for needle in lowered):
                    hits.append(f"{table.name}.{column}: {shown[:80]}")
    return hits


def test_forgetting_leaves_nothing_personal_in_any_table(
    sessions: sessionmaker[Session], fake_x: FakeX, channel: XChannel
) -> None:
    ids = build(sessions, fake_x, channel)
    needles = [HANDLE, NAME, *TEXTS.values(), ANSWER, "4242"]
    with sessions.begin() as session:
        before = counts(session)
        assert found_anywhere(session, needles)  # the search does find them before

    with sessions.begin() as session:
        done = forget(session, "@maria_k88", actor="U0ADMIN", now=T0 + timedelta(hours=1))

    assert done is not None
    theirs = (ids["answered"], ids["open"], ids["queued"])
    assert done.question_ids == theirs
    assert done.closed == (ids["open"], ids["queued"])
    assert len(done.cancelled_replies) == 1
    with sessions.begin() as session:
        hits = found_anywhere(session, [n for n in needles if n != ANSWER])
        assert hits == []
        # The other customer's question still carries the same answer text, and only that one.
        assert [h.split(":")[0] for h in found_anywhere(session, [ANSWER])] == [
            "proposals.text",
            "support_events.data",
        ]
        after = counts(session)
        assert after == before | {"support_events": before["support_events"] + 2}
        customer = session.scalars(select(Customer).where(Customer.external_id != "77")).one()
        assert (customer.handle, customer.name) == (f"forgotten-{customer.id}", "")
        states = {key: session.get_one(Question, ids[key]).state for key in ids if key in TEXTS}
        assert states == {"answered": "answered", "open": "closed", "queued": "closed"}
        queued = session.get_one(Reply, _reply_of(session, ids["queued"]))
        assert (queued.state, queued.last_error, queued.text) == (
            "cancelled",
            "erased on privacy request",
            ERASED,
        )
        assert session.get_one(Question, ids["answered"]).text == ERASED
        assert session.get_one(Question, ids["other"]).text == OTHER_TEXT
        [forgotten] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "customer.forgotten")
        ).all()
        assert forgotten.actor == "U0ADMIN"
        assert forgotten.detail == {"customer_id": customer.id, "questions": 3}
        closed = session.scalars(
            select(AuditEvent.detail).where(
                AuditEvent.action == "state.closed", AuditEvent.question_id == ids["queued"]
            )
        ).one()
        assert closed == {"from": "failed", "reason": "privacy request"}
        pending_nudges = session.scalars(
            select(Notification).where(Notification.question_id.in_(theirs))
        ).all()
        assert pending_nudges and all(n.state == "skipped" for n in pending_nudges)


def test_questions_relayed_from_slack_are_forgotten_too(sessions: sessionmaker[Session]) -> None:
    relayed = "Maria DM'd us: the parcel 7731 never came, what now?"
    with sessions.begin() as session:
        ask_in_slack(session, asker="U0CARA", text=relayed, handle=HANDLE, policy=POLICY, now=T0)
        ask_in_slack(
            session, asker="U0CARA", text="no handle here", handle=None, policy=POLICY, now=T0
        )
        # The dispatcher's record of `/care ask` holds the customer's words too.
        record(
            session,
            actor="U0CARA",
            action="command.ask",
            now=T0,
            detail={"text": f"@{HANDLE} {relayed}"},
        )

    with sessions.begin() as session:
        assert forget(session, "manual", actor="U0ADMIN", now=T0) is None  # a colleague
        done = forget(session, HANDLE, actor="U0ADMIN", now=T0)

    assert done is not None and len(done.question_ids) == 1
    with sessions.begin() as session:
        assert found_anywhere(session, [HANDLE, relayed]) == []
        assert found_anywhere(session, ["no handle here"]) != []


def test_an_erased_reply_is_never_published(
    sessions: sessionmaker[Session], fake_x: FakeX, channel: XChannel
) -> None:
    build(sessions, fake_x, channel)
    with sessions.begin() as session:
        forget(session, HANDLE, actor="U0ADMIN", now=T0)

    assert claim_due(sessions, now=T0 + timedelta(days=1), lease=LEASE) == []
    assert [r.text for r in fake_x.replies()] == [ANSWER]  # the one sent before


def test_a_reply_being_published_blocks_the_erasure(
    sessions: sessionmaker[Session], fake_x: FakeX, channel: XChannel
) -> None:
    ids = build(sessions, fake_x, channel)
    assert claim_due(sessions, now=T0 + LEASE, lease=LEASE) == [_reply_id(sessions, ids["queued"])]
    with sessions.begin() as session:
        before = found_anywhere(session, [HANDLE])

    with pytest.raises(ReplyInFlight), sessions.begin() as session:
        forget(session, HANDLE, actor="U0ADMIN", now=T0 + LEASE)

    with sessions.begin() as session:
        assert found_anywhere(session, [HANDLE]) == before  # nothing changed
        assert session.get_one(Question, ids["queued"]).state == "sending"


def _reply_id(sessions: sessionmaker[Session], question_id: int) -> int:
    with sessions.begin() as session:
        return _reply_of(session, question_id)


def test_an_unknown_handle_changes_nothing(
    sessions: sessionmaker[Session], fake_x: FakeX, channel: XChannel
) -> None:
    build(sessions, fake_x, channel)
    with sessions.begin() as session:
        before = counts(session), found_anywhere(session, [HANDLE])
    with sessions.begin() as session:
        assert forget(session, "maria_k8", actor="U0ADMIN", now=T0) is None
    with sessions.begin() as session:
        assert (counts(session), found_anywhere(session, [HANDLE])) == before


@pytest.mark.parametrize(
    ("word", "handle"),
    [
        ("@maria_k", "maria_k"),
        ("maria_k", "maria_k"),
        ("Maria_K88", "Maria_K88"),
        ("&lt;@maria_k&gt;", "maria_k"),
        ("<https://x.com/maria_k|x.com/maria_k>", "maria_k"),
        ("https://twitter.com/maria_k/status/1", "maria_k"),
        ("x.com/maria_k", "maria_k"),
        ("A" * 15, "A" * 15),
    ],
)
def test_handles_are_read_in_the_forms_slack_sends(word: str, handle: str) -> None:
    assert parse_handle(word) == handle


@pytest.mark.parametrize(
    "word",
    [
        "",
        "@",
        "A" * 16,
        "maria-k",
        "maria k",
        "<@U0BOB|bob>",
        "<!channel>",
        "https://evil.example/maria_k",
        "'; drop table customers; --",
        "%",
    ],
)
def test_anything_else_is_not_a_handle(word: str) -> None:
    with pytest.raises(NotAHandle):
        parse_handle(word)
