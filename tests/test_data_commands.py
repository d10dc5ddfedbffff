"""`/care show`, `audit`, `export` and `forget` through Slack's signed slash-command path."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.commands.data import BLOCK_LIMIT, SECTION_LIMIT, pack
from storage.models import AuditEvent, Member, Proposal, Question, Reply, Vote
from tests.blockkit import validate_blocks
from tests.scenario import card_for, current, propose, rendered
from tests.scenario import slash as care
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until
from tests.test_privacy import found_anywhere

pytestmark = pytest.mark.e2e

ADMIN, MODERATOR, MEMBER = "U0ADMIN", "U0MODDY", "U0BOB"
HANDLE, NAME = "Zofia_W", "Zofia Wiśniewska"
QUESTION = "@AcmeHelp my parcel 5521 went to the wrong flat, =cmd|' /C calc'!A0"
ANSWER = "Sorry Zofia! DM us the parcel number and we'll sort it out today."


@pytest.fixture
def stack(fake_slack: FakeSlack, fake_x: FakeX, database_url: str) -> Iterator[Stack]:
    fake_slack.add_user(ADMIN, "ada")
    fake_slack.add_user(MODERATOR, "moe")
    running = Stack(fake_slack, fake_x, database_url, overrides={"CARE_ADMINS": ADMIN}).start()
    with running.app.sessions.begin() as session:
        session.add(Member(user_id=MODERATOR, role="moderator", updated_at=datetime.now(UTC)))
    yield running
    running.stop()


def direct_message(stack: Stack, user: str, fragment: str) -> dict[str, Any]:
    """The bot's direct message to ``user`` containing ``fragment`` (waits for it)."""

    def find() -> dict[str, Any] | None:
        for message in stack.slack.messages(user):
            if fragment in (message.get("text") or ""):
                return message
        return None

    return wait_until(find, 10, f"a DM to {user} with {fragment!r}")  # type: ignore[no-any-return]


def audited(stack: Stack, action: str) -> list[AuditEvent]:
    with stack.app.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def counts(stack: Stack) -> dict[str, int]:
    with stack.app.sessions() as session:
        return {
            model.__name__: int(session.scalar(select(func.count()).select_from(model)) or 0)
            for model in (Question, Proposal, Vote, Reply)
        }


def asked(stack: Stack) -> tuple[dict[str, Any], int]:
    """Zofia's question as a card with one proposal; its card and question number."""
    stack.x.add_mention(QUESTION, author_handle=HANDLE, author_name=NAME)
    card = card_for(stack, "5521")
    propose(stack, "U0ALICE", card, ANSWER)
    with stack.app.sessions() as session:
        return card, session.scalars(select(Question.id)).one()


# -- show ---------------------------------------------------------------------------------------


def test_show_tells_a_questions_history(stack: Stack) -> None:
    _card, question_id = asked(stack)

    answer = care(stack, MODERATOR, f"show #{question_id}")

    validate_blocks(answer["blocks"])
    shown = rendered(answer)
    assert f"*Question #{question_id}* from @{HANDLE}" in shown
    assert "5521" in shown
    for action in ("question.received", "state.open", "proposal.created", "state.proposed"):
        assert f"*{action}*" in shown
    assert "new → open" in shown and "<@U0ALICE>" in shown
    assert shown.index("question.received") < shown.index("proposal.created")
    [event] = audited(stack, "command.show")
    assert (event.actor, event.detail["text"]) == (MODERATOR, f"#{question_id}")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("show", "say which question"),
        ("show abc", "`abc` is not a question number"),
        ("show 4 5", "unexpected `5`"),
        ("show 999", "there is no question #999"),
        ("show <!channel>", "`&lt;!channel&gt;` is not a question number"),
    ],
)
def test_show_explains_bad_arguments(stack: Stack, text: str, problem: str) -> None:
    answer = care(stack, MODERATOR, text)["text"]
    assert answer.startswith(problem)
    assert "Usage: `/care show <question number>`" in answer
    assert audited(stack, "command.show") == []


def test_members_may_not_see_a_history(stack: Stack) -> None:
    answer = care(stack, MEMBER, "show 1")
    assert answer["text"].startswith("Only moderators can run `/care show`")
    assert [e.actor for e in audited(stack, "permission.refused")] == [MEMBER]


def test_a_long_history_is_cut_within_slacks_limits() -> None:
    lines = [f"`2026-01-05 09:00:00` <@U0ALICE> *vote.cast* {'x' * 200} {n}" for n in range(900)]
    header = [{"type": "section", "text": {"type": "mrkdwn", "text": "*Question #1*"}}]

    blocks = pack(header, lines, total=1000)

    assert len(blocks) <= BLOCK_LIMIT
    validate_blocks(blocks)
    sections = [b["text"]["text"] for b in blocks[1:-1]]
    assert all(len(text) <= SECTION_LIMIT for text in sections)
    shown = sum(text.count("\n") + 1 for text in sections)
    assert blocks[-1]["elements"][0]["text"] == f"… {1000 - shown} more events"
    assert sections[0].startswith(lines[0]) and sections[-1].endswith(lines[shown - 1])


# -- audit --------------------------------------------------------------------------------------


def test_audit_lists_the_latest_events_newest_first(stack: Stack) -> None:
    asked(stack)
    care(stack, MEMBER, "show 1")  # a refusal, audited

    answer = care(stack, ADMIN, "audit 3")

    validate_blocks(answer["blocks"])
    shown = rendered(answer)
    assert "*The latest 3 audit events*" in shown
    lines = answer["blocks"][1]["text"]["text"].split("\n")
    assert len(lines) == 3
    assert "*permission.refused*" in lines[0] and f"<@{MEMBER}>" in lines[0]
    assert "attempted=run `/care show`" not in shown  # user text never forms code or markup
    with stack.app.sessions() as session:
        latest = session.scalars(
            select(AuditEvent.action)
            .where(AuditEvent.action != "command.audit")
            .order_by(AuditEvent.id.desc())
            .limit(3)
        ).all()
    assert [line.split("*")[1] for line in lines] == latest
    assert [e.actor for e in audited(stack, "command.audit")] == [ADMIN]


def test_audit_defaults_to_twenty(stack: Stack) -> None:
    asked(stack)
    for _ in range(20):
        care(stack, MEMBER, "audit")  # refused, each audited
    answer = care(stack, ADMIN, "audit")
    assert "*The latest 20 audit events*" in rendered(answer)


@pytest.mark.parametrize("text", ["audit 0", "audit 101", "audit -1", "audit ten", "audit 5 6"])
def test_audit_explains_bad_arguments(stack: Stack, text: str) -> None:
    answer = care(stack, ADMIN, text)["text"]
    assert "Usage: `/care audit [1-100]`" in answer
    assert audited(stack, "command.audit") == []


def test_moderators_may_not_read_the_audit_log(stack: Stack) -> None:
    answer = care(stack, MODERATOR, "audit")
    assert answer["text"].startswith("Only admins can run `/care audit`")
    assert "blocks" not in answer or not answer["blocks"]


# -- export -------------------------------------------------------------------------------------


def test_export_lands_in_the_callers_direct_messages(stack: Stack) -> None:
    _card, question_id = asked(stack)

    answer = care(stack, ADMIN, "export 30d")

    assert answer["text"] == "Working on `/care export`…"
    done = direct_message(stack, ADMIN, "Your export")
    [upload] = stack.slack.uploaded_files()
    assert upload["channel_id"] == f"D{ADMIN}"
    assert upload["name"].startswith("crowdcare-export-30d-") and upload["name"].endswith(".csv")
    assert upload["name"] in done["text"]
    assert "1 questions, 1 proposals, 0 votes and 0 replies" in upload["initial_comment"]
    rows = list(csv.DictReader(io.StringIO(upload["content"].decode("utf-8-sig"), newline="")))
    assert [(r["record"], r["question_id"]) for r in rows] == [
        ("question", str(question_id)),
        ("proposal", str(question_id)),
    ]
    # A mention starts with "@", which spreadsheets read as a formula: defused with a quote.
    assert rows[0]["text"] == "'" + QUESTION and rows[0]["customer_handle"] == HANDLE
    assert rows[1]["text"] == ANSWER and rows[1]["slack_user"] == "U0ALICE"
    [event] = audited(stack, "command.export")
    assert (event.actor, event.detail["text"]) == (ADMIN, "30d")


def test_an_empty_export_uploads_nothing(stack: Stack) -> None:
    care(stack, ADMIN, "export")
    direct_message(stack, ADMIN, "No questions were received in the last 7 days")
    assert stack.slack.uploaded_files() == []


def test_export_explains_a_bad_period_by_direct_message(stack: Stack) -> None:
    care(stack, ADMIN, "export 1y")
    message = direct_message(stack, ADMIN, "is not a period")
    assert message["text"].startswith("`1y` is not a period: use one of 7d, 30d")
    assert stack.slack.uploaded_files() == []
    assert audited(stack, "command.export") == []


def test_members_may_not_export(stack: Stack) -> None:
    asked(stack)
    answer = care(stack, MEMBER, "export 7d")
    assert answer["text"].startswith("Only admins can run `/care export`")
    assert stack.slack.uploaded_files() == []
    assert stack.slack.messages(MEMBER) == []


# -- forget -------------------------------------------------------------------------------------


def test_forget_erases_the_customer_everywhere_and_keeps_the_counts(stack: Stack) -> None:
    card, question_id = asked(stack)
    before = counts(stack)

    care(stack, ADMIN, f"forget @{HANDLE.lower()}")

    done = direct_message(stack, ADMIN, "Done:")
    assert HANDLE.lower() not in done["text"].lower()
    assert "1 questions erased, 1 open ones closed" in done["text"]
    assert counts(stack) == before
    with stack.app.sessions() as session:
        hits = found_anywhere(session, [HANDLE, NAME, QUESTION, ANSWER, "5521"])
        assert session.get_one(Question, question_id).state == "closed"
    assert hits == []  # not even the audit of the command itself: its text is withheld
    card_now = wait_until(
        lambda: "[erased]" in rendered(current(stack, card)) and current(stack, card)
    )
    assert "5521" not in rendered(card_now) and HANDLE not in rendered(card_now)
    assert NAME not in rendered(card_now)
    for message in stack.slack.thread(QUESTIONS_CHANNEL, card["ts"]):
        assert "5521" not in rendered(message) and "Zofia" not in rendered(message)
    [forgotten] = audited(stack, "customer.forgotten")
    assert forgotten.actor == ADMIN
    assert set(forgotten.detail) == {"customer_id", "questions"}


def test_the_audit_of_forget_does_not_repeat_the_handle(stack: Stack) -> None:
    asked(stack)
    care(stack, ADMIN, f"forget {HANDLE}")
    direct_message(stack, ADMIN, "Done:")
    with stack.app.sessions() as session:
        assert found_anywhere(session, [HANDLE]) == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("forget", "name the customer's X handle"),
        ("forget @zofia-w", "`@zofia-w` is not an X handle"),
        ("forget <@U0BOB|bob>", "is not an X handle: that is a Slack mention"),
        ("forget @a @b", "unexpected `@b`"),
        ("forget @nobody_here", "no customer `@nobody_here` is known; nothing was changed"),
    ],
)
def test_forget_explains_bad_arguments_and_changes_nothing(
    stack: Stack, text: str, problem: str
) -> None:
    asked(stack)
    with stack.app.sessions() as session:
        before = found_anywhere(session, [HANDLE, QUESTION])

    care(stack, ADMIN, text)

    message = direct_message(stack, ADMIN, "Usage: `/care forget @handle`")
    assert problem in message["text"]
    with stack.app.sessions() as session:
        assert found_anywhere(session, [HANDLE, QUESTION]) == before
    assert audited(stack, "customer.forgotten") == []


def test_members_may_not_forget_anyone(stack: Stack) -> None:
    asked(stack)
    with stack.app.sessions() as session:
        before = found_anywhere(session, [HANDLE, QUESTION])

    answer = care(stack, MODERATOR, f"forget @{HANDLE}")

    assert answer["text"].startswith("Only admins can run `/care forget`")
    with stack.app.sessions() as session:
        assert found_anywhere(session, [HANDLE, QUESTION]) == before
    assert [e.actor for e in audited(stack, "permission.refused")] == [MODERATOR]
