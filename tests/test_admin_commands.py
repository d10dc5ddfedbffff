"""End to end: `/care config`, `route`, `ask`, `pause`, `resume` and `queue` through signed
slash commands, with the real app running against the stand-in Slack and X."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.commands.admin import format_age
from bot.polling import poll_mentions
from bot.slack_blocks import ACTION_PROPOSE, ACTION_VOTE, ANSWER_BLOCK, ANSWER_INPUT, VIEW_PROPOSE
from bot.states import State
from storage.models import AuditEvent, Member, Question, Reply, Route, Setting
from tests.blockkit import validate_blocks
from tests.dbhelpers import Clock, make_proposal, make_question
from tests.scenario import button_value, card_for, propose, rendered, slash, vote
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until

pytestmark = pytest.mark.e2e

ADMIN = "U0ADMIN"
MODERATOR = "U0MOD"
ALICE, BOB, CARA = "U0ALICE", "U0BOB", "U0CARA"
BILLING = "C0BILLING"
BILLING_LINK = f"<#{BILLING}|billing>"
EXPERTS = "S0BILLEXP"
EXPERTS_LINK = f"<!subteam^{EXPERTS}|@billing-experts>"


def start(fake_slack, fake_x, database_url, *, jobs: bool = True, **overrides: str) -> Stack:
    fake_slack.add_user(ADMIN, "admin")
    fake_slack.add_user(MODERATOR, "mod")
    settings = {"CARE_ADMINS": ADMIN, **overrides}
    return Stack(fake_slack, fake_x, database_url, overrides=settings).start(jobs=jobs)


@pytest.fixture
def stack(fake_slack, fake_x, database_url) -> Iterator[Stack]:
    running = start(fake_slack, fake_x, database_url)
    yield running
    running.stop()


def care(stack: Stack, user: str, text: str) -> str:
    """Run `/care <text>` as ``user``; the private answer's text."""
    return str(slash(stack, user, text)["text"])


def actions(stack: Stack, *names: str) -> list[tuple[str, str, dict[str, Any]]]:
    with stack.app.sessions() as session:
        query = select(AuditEvent).where(AuditEvent.action.in_(names)).order_by(AuditEvent.id)
        return [(e.actor, e.action, e.detail) for e in session.scalars(query)]


def count(stack: Stack, model: Any) -> int:
    with stack.app.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def question_where(stack: Stack, fragment: str) -> Question:
    with stack.app.sessions() as session:
        return session.scalars(select(Question).where(Question.text.contains(fragment))).one()


def cards_in(stack: Stack, channel: str, fragment: str) -> list[dict[str, Any]]:
    return [
        m
        for m in stack.slack.messages(channel)
        if m.get("thread_ts") in (None, m["ts"]) and fragment in rendered(m)
    ]


def card_in(stack: Stack, channel: str, fragment: str) -> dict[str, Any]:
    return wait_until(  # type: ignore[no-any-return]
        lambda: next(iter(cards_in(stack, channel, fragment)), None),
        message=f"a card with {fragment!r} in {channel}",
    )


def make_moderator(stack: Stack, user: str) -> None:
    with stack.app.sessions.begin() as session:
        session.add(Member(user_id=user, role="moderator", updated_at=datetime.now(UTC)))


def refused(stack: Stack, user: str, text: str) -> None:
    """``user`` may not run `/care <text>`: told so, and the refusal is audited."""
    before = len(actions(stack, "permission.refused"))
    answer = care(stack, user, text)
    assert answer.startswith("Only admins can") or answer.startswith("Only moderators can")
    assert len(actions(stack, "permission.refused")) == before + 1


# -- config ---------------------------------------------------------------------------------


def test_config_lists_shows_and_changes_settings(stack: Stack) -> None:
    listing = care(stack, ADMIN, "config")
    assert "`votes`: *3* — default" in listing
    assert "`business_hours`: *off (always open)* — default" in listing

    assert "expects 1-50" in care(stack, ADMIN, "config votes")

    changed = care(stack, ADMIN, "config business_hours Mon-Fri 09:00-18:00 Europe/Berlin")
    assert "*Mon-Fri 09:00-18:00 Europe/Berlin* — set with /care config" in changed
    assert "`votes`: *3*" in care(stack, ADMIN, "config Votes default")

    assert actions(stack, "config.changed") == [
        (
            ADMIN,
            "config.changed",
            {"key": "business_hours", "from": None, "to": "Mon-Fri 09:00-18:00 Europe/Berlin"},
        )
    ]
    assert [a for _, a, _ in actions(stack, "command.config")] == ["command.config"] * 4


def test_config_votes_1_lets_one_vote_select_an_answer(stack: Stack) -> None:
    care(stack, ADMIN, "config votes 1")
    stack.x.add_mention("@AcmeHelp do you ship to Iceland?", author_handle="siggi")
    card = card_for(stack, "Iceland")
    proposal = propose(stack, ALICE, card, "Yes, we ship to Iceland within 5 days!")
    assert "0 of 1 votes" in rendered(proposal)

    vote(stack, BOB, proposal)

    [reply] = stack.x.wait_for_replies(1)
    assert reply.text == "Yes, we ship to Iceland within 5 days!"


def test_config_refuses_members_and_bad_values_and_stores_nothing(stack: Stack) -> None:
    refused(stack, ALICE, "config votes 1")
    refused(stack, ALICE, "config")

    for text, reason in [
        ("config votes many", "`votes` cannot be `many`: expected a whole number from 1 to 50"),
        ("config votes 0", "expected a whole number from 1 to 50"),
        ("config colour blue", "`colour` is not a setting; the settings are: votes"),
        ("config nudge_after soon", "`nudge_after` cannot be `soon`"),
        ("config business_hours Mon-Fri", "`business_hours` cannot be `Mon-Fri`"),
    ]:
        answer = care(stack, ADMIN, text)
        assert reason in answer, answer
        assert "Usage: `/care config [setting [value|default]]`" in answer

    assert count(stack, Setting) == 0
    assert actions(stack, "config.changed", "command.config") == []


# -- route ----------------------------------------------------------------------------------


def test_a_route_sends_new_questions_to_its_channel_with_the_expert_group(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp I want a refund for order 1", author_handle="early")
    earlier = card_for(stack, "order 1")

    added = care(stack, ADMIN, f"route add refund {BILLING_LINK} {EXPERTS_LINK}")
    assert added.startswith("Added rule 1: keyword `refund`")
    stack.x.add_mention("@AcmeHelp REFUND please, order 2", author_handle="later")
    stack.x.add_mention("@AcmeHelp where is order 3?", author_handle="other")

    routed = card_in(stack, BILLING, "order 2")
    assert f"<!subteam^{EXPERTS}>" in rendered(routed)
    assert f"<!subteam^{EXPERTS}>" in routed["text"]  # the group is notified
    validate_blocks(routed["blocks"])
    card_for(stack, "order 3")  # no rule matches: the default channel
    assert cards_in(stack, BILLING, "order 1") == []  # routed at intake: rules apply to new ones
    assert earlier["ts"] in [m["ts"] for m in stack.slack.messages(QUESTIONS_CHANNEL)]
    assert question_where(stack, "order 2").route_group == EXPERTS
    assert question_where(stack, "order 1").card_channel == QUESTIONS_CHANNEL

    # The whole loop happens in the routed channel.
    click = stack.client.block_action(
        ALICE,
        ACTION_PROPOSE,
        str(button_value(routed, ACTION_PROPOSE)),
        channel_id=BILLING,
        message_ts=routed["ts"],
    )
    assert click.status == 200
    form = stack.slack.wait_for("views.open")[-1].params["view"]
    submitted = stack.client.view_submission(
        ALICE, VIEW_PROPOSE, form["private_metadata"], {ANSWER_BLOCK: {ANSWER_INPUT: "Done!"}}
    )
    assert submitted.text == ""
    proposal = wait_until(
        lambda: [m for m in stack.slack.thread(BILLING, routed["ts"]) if "Done!" in rendered(m)],
        message="the proposal in the routed thread",
    )[0]
    for voter in (BOB, CARA, "U0DAN"):
        stack.client.block_action(
            voter,
            ACTION_VOTE,
            str(button_value(proposal, ACTION_VOTE)),
            channel_id=BILLING,
            message_ts=proposal["ts"],
            thread_ts=routed["ts"],
        )
    assert [t.text for t in stack.x.wait_for_replies(1)] == ["Done!"]
    wait_until(
        lambda: "Answered" in rendered(stack.slack.message(BILLING, routed["ts"]) or {}),
        message="the routed card answered",
    )
    assert actions(stack, "route.added") == [
        (
            ADMIN,
            "route.added",
            {
                "route_id": 1,
                "pattern": "refund",
                "regex": False,
                "channel": BILLING,
                "group": EXPERTS,
            },
        )
    ]


def test_routes_are_listed_in_order_and_removed_by_number(stack: Stack) -> None:
    assert "No routing rules" in care(stack, ADMIN, "route list")
    care(stack, ADMIN, 'route add "where is my order" <#C0SHIP|shipping>')
    care(stack, ADMIN, f"route add /charge ?back|double.charged/ {BILLING_LINK} {EXPERTS_LINK}")
    care(stack, ADMIN, "route add /a &lt; b/ <#C0MATH|math>")  # Slack sends < as &lt;

    listing = care(stack, ADMIN, "route")
    assert listing.splitlines()[1:4] == [
        "1. keyword `where is my order` → <#C0SHIP>",
        f"2. regex `/charge ?back|double.charged/` → <#{BILLING}> and mention <!subteam^{EXPERTS}>",
        "3. regex `/a &lt; b/` → <#C0MATH>",
    ]
    with stack.app.sessions() as session:
        assert session.scalars(select(Route.pattern).order_by(Route.id)).all()[2] == "a < b"

    assert care(stack, ADMIN, "route remove 1").startswith("Removed rule 1: keyword")
    assert "1. regex `/charge ?back" in care(stack, ADMIN, "route list")
    assert [d["pattern"] for _, _, d in actions(stack, "route.removed")] == ["where is my order"]

    stack.x.add_mention("@AcmeHelp Where is my order?", author_handle="ship")
    card_for(stack, "Where is my order")  # the removed rule no longer routes


def test_route_refuses_members_and_malformed_rules(stack: Stack) -> None:
    refused(stack, ALICE, f"route add refund {BILLING_LINK}")
    refused(stack, BOB, "route remove 1")
    for text, reason in [
        ("route add refund", "give a keyword (or /regex/) and then a channel"),
        ("route add refund billing", "`billing` is not a channel"),
        (f"route add {BILLING_LINK}", "give a keyword (or /regex/) and then a channel"),
        (f"route add /(refund/ {BILLING_LINK}", "not a valid regular expression: missing )"),
        (f'route add "" {BILLING_LINK}', "the pattern is empty"),
        (f"route add {'x' * 201} {BILLING_LINK}", "longer than 200 characters"),
        ("route remove 1", "there is no rule 1; there are no rules"),
        ("route remove first", "`first` is not a rule number"),
        ("route drop 1", "`drop` is not one of: add, remove, list"),
    ]:
        answer = care(stack, ADMIN, text)
        assert reason in answer, answer
        assert "Usage: `/care route add" in answer
    assert count(stack, Route) == 0
    assert actions(stack, "route.added", "route.removed", "command.route") == []


# -- ask ------------------------------------------------------------------------------------


def test_ask_is_answered_in_the_cards_thread_and_never_on_x(
    fake_slack, fake_x, database_url
) -> None:
    stack = start(fake_slack, fake_x, database_url, CARE_VOTES_TO_SELECT="1")
    try:
        make_moderator(stack, MODERATOR)
        answer = care(stack, MODERATOR, "ask @lena_m Is 5 &lt; 6 &amp; <!channel> open?")
        assert answer.startswith("Question #1 is in")

        card = card_for(stack, "lena_m")
        shown = rendered(card)
        assert "on Slack" in shown
        assert "Is 5 &lt; 6 &amp; @channel open?" in shown
        assert "<!channel>" not in json.dumps(card)
        proposal = propose(stack, ALICE, card, "Yes, we open at 9 every day.")
        vote(stack, BOB, proposal)

        relayed = wait_until(
            lambda: [
                m
                for m in stack.slack.thread(QUESTIONS_CHANNEL, card["ts"])
                if "pass it on" in (m.get("text") or "")
            ],
            message="the chosen answer in the thread",
        )[0]
        assert f"<@{MODERATOR}>" in relayed["text"] and f"<@{ALICE}>" in relayed["text"]
        assert "> Yes, we open at 9 every day." in relayed["text"]
        question = question_where(stack, "open?")
        assert (question.channel, question.kind, question.state) == ("slack", "manual", "answered")
        wait_until(
            lambda: (
                "Answered" in rendered(stack.slack.message(QUESTIONS_CHANNEL, card["ts"]) or {})
            ),
            message="the card answered",
        )
        with stack.app.sessions() as session:
            assert session.scalars(select(Reply.state)).one() == "sent"
        assert [a for _, a, _ in actions(stack, "reply.answered_in_slack", "state.answered")] == [
            "reply.answered_in_slack",
            "state.answered",
        ]
        assert actions(stack, "question.received")[0][0] == MODERATOR
        # Nothing ever went to X, even after more outbox runs.
        stack.app.workflow.send_due_replies(stack.app.channel)  # type: ignore[arg-type]
        assert stack.x.calls_to("create_tweet") == []
        assert stack.x.replies() == []
    finally:
        stack.stop()


def test_ask_without_a_customer_names_the_asker(stack: Stack) -> None:
    care(stack, ADMIN, "ask Does the store open on Sundays?")
    card = card_for(stack, "Sundays")
    assert "@manual" in rendered(card) and ADMIN in rendered(card)


def test_ask_is_routed_like_any_question(stack: Stack) -> None:
    care(stack, ADMIN, f"route add refund {BILLING_LINK} {EXPERTS_LINK}")
    answer = care(stack, ADMIN, "ask Can I get a refund on a gift card?")
    assert f"<#{BILLING}>" in answer
    assert f"<!subteam^{EXPERTS}>" in rendered(card_in(stack, BILLING, "gift card"))


def test_ask_refuses_members_and_empty_or_long_questions(stack: Stack) -> None:
    refused(stack, ALICE, "ask where is my order?")
    for text, reason in [
        ("ask", "write the question after `/care ask`"),
        ("ask @lena_m", "write the question after `/care ask`"),
        ("ask " + "x" * 2001, "the question is 2001 characters long; at most 2000 fit"),
    ]:
        answer = care(stack, ADMIN, text)
        assert reason in answer, answer
        assert "Usage: `/care ask [@customer] <question>`" in answer
    assert count(stack, Question) == 0
    care(stack, ADMIN, "ask " + "x" * 2000)
    assert count(stack, Question) == 1


# -- pause / resume -------------------------------------------------------------------------


def poll(stack: Stack) -> list[int]:
    """One run of the X poll job's work, as the scheduler runs it."""
    outcome = poll_mentions(
        stack.app.sessions,
        stack.app.channel,  # type: ignore[arg-type]
        policy=stack.app.config.escalation_policy,
        clock=stack.app.clock,
        interval=timedelta(seconds=1),
    )
    return outcome.stored


def test_paused_intake_fetches_nothing_until_resumed(fake_slack, fake_x, database_url) -> None:
    stack = start(fake_slack, fake_x, database_url, jobs=False)
    try:
        stack.x.add_mention("@AcmeHelp first question")
        assert len(poll(stack)) == 1

        assert care(stack, ADMIN, "pause").startswith("Intake is paused")
        assert care(stack, ADMIN, "pause").startswith("Intake was already paused")
        stack.x.add_mention("@AcmeHelp asked while paused")
        fetched = len(stack.x.calls_to("mentions"))
        assert poll(stack) == []
        assert len(stack.x.calls_to("mentions")) == fetched
        assert count(stack, Question) == 1

        assert care(stack, ADMIN, "resume").startswith("Intake resumed")
        assert care(stack, ADMIN, "resume").startswith("Intake is not paused")
        assert len(poll(stack)) == 1
        assert question_where(stack, "while paused").state == State.NEW

        assert [(a, x) for a, x, _ in actions(stack, "intake.paused", "intake.resumed")] == [
            (ADMIN, "intake.paused"),
            (ADMIN, "intake.resumed"),
        ]
        assert len(actions(stack, "command.pause", "command.resume")) == 4
    finally:
        stack.stop()


def test_mentions_posted_while_paused_arrive_after_resume(stack: Stack) -> None:
    care(stack, ADMIN, "pause")
    stack.x.add_mention("@AcmeHelp did you get this one?")
    assert "Intake is paused" in care(stack, ALICE, "queue")
    care(stack, ADMIN, "resume")
    card_for(stack, "did you get this one")


def test_pause_and_resume_refuse_members_and_arguments(stack: Stack) -> None:
    refused(stack, ALICE, "pause")
    refused(stack, ALICE, "resume")
    assert "unexpected `now`" in care(stack, ADMIN, "pause now")
    assert count(stack, Setting) == 0
    assert actions(stack, "intake.paused", "command.pause") == []


# -- queue ----------------------------------------------------------------------------------


def test_queue_lists_waiting_questions_oldest_first(fake_slack, fake_x, database_url) -> None:
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    fake_slack.add_user(ADMIN, "admin")
    stack = Stack(fake_slack, fake_x, database_url, overrides={"CARE_ADMINS": ADMIN}, clock=clock)
    stack.start(jobs=False)
    try:
        assert care(stack, ALICE, "queue") == "No questions are waiting. 🎉"
        with stack.app.sessions.begin() as session:
            old = make_question(
                session, customer_handle="<b>old</b>", now=clock() - timedelta(hours=3, minutes=5)
            )
            make_proposal(session, old)
            make_proposal(session, old, author_id=BOB)
            make_question(
                session,
                customer_handle="mid",
                state=State.ESCALATED,
                now=clock() - timedelta(minutes=42),
            )
            make_question(
                session,
                customer_handle="done",
                state=State.ANSWERED,
                now=clock() - timedelta(hours=5),
            )
            for n in range(20):
                make_question(session, customer_handle=f"new{n}", state=State.NEW, now=clock())

        lines = care(stack, ALICE, "queue").splitlines()

        assert lines[0] == "*22 questions waiting*, oldest first:"
        assert lines[1] == f"#{old.id} · @&lt;b&gt;old&lt;/b&gt; · 3h 5m · open · 2 proposals"
        assert lines[2].endswith("@mid · 42m · escalated · 0 proposals")
        assert lines[3].endswith("@new0 · 0m · new · 0 proposals")
        assert len(lines) == 1 + 20 + 1
        assert lines[-1] == "… and 2 more"
        assert "done" not in "\n".join(lines)
        assert "unexpected" in care(stack, ALICE, "queue all")
    finally:
        stack.stop()


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (timedelta(seconds=59), "0m"),
        (timedelta(minutes=42), "42m"),
        (timedelta(hours=3), "3h"),
        (timedelta(hours=3, minutes=5), "3h 5m"),
        (timedelta(days=2, hours=4, minutes=9), "2d 4h"),
        (timedelta(days=1), "1d"),
        (timedelta(seconds=-5), "0m"),
    ],
)
def test_ages_are_short(age, shown) -> None:
    assert format_age(age) == shown
