"""Two sweepers (two processes' worth of workers) over one database: every step exactly once.

Marked `postgres`: there the claims use FOR UPDATE SKIP LOCKED; on SQLite writers serialize,
and the same guarantees must hold.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot import support
from bot.connectors.zendesk import ZendeskConnector
from bot.escalation_flow import EscalationFlow, EscalationTargets
from bot.slack_notifier import SlackNotifier, make_web_client
from bot.workflow import Workflow
from storage.models import Notification, Question
from tests.dbhelpers import T0, Clock, make_question, migrated_sessions
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_zendesk import FakeZendesk

pytestmark = pytest.mark.postgres

QUESTIONS = 500
ESCALATION_CHANNEL = "C0ESCALATE"


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    with migrated_sessions(database_url) as factory:
        yield factory


@pytest.fixture
def fake_zendesk() -> Iterator[FakeZendesk]:
    with FakeZendesk() as zendesk:
        yield zendesk


def due_questions(sessions: sessionmaker[Session], count: int) -> None:
    with sessions.begin() as session:
        for n in range(count):
            question = make_question(
                session, text=f"@AcmeHelp question {n}", customer_handle=f"c{n % 40}", now=T0
            )
            question.card_channel, question.card_ts = "C0QUESTIONS", f"1700000000.{n:06d}"
            question.nudge_at = T0 + timedelta(minutes=15)
            question.nudged_at = T0  # already nudged: this test is about escalations
            question.escalate_at = T0 + timedelta(minutes=60)
            question.escalate_again_at = T0 + timedelta(hours=2)


def flow(sessions: sessionmaker[Session], slack: FakeSlack, clock: Clock) -> EscalationFlow:
    notifier = SlackNotifier(make_web_client(slack.bot_token, slack.api_url))
    workflow = Workflow(
        sessions,
        notifier,
        questions_channel="C0QUESTIONS",
        votes_to_select=lambda: 3,
        clock=clock,
    )
    targets = EscalationTargets(escalation_channel=ESCALATION_CHANNEL, oncall_group="S0ONCALL")
    return EscalationFlow(workflow, targets, lease=timedelta(minutes=5))


def run_together(*jobs) -> None:
    start = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job) -> None:
        start.wait()
        try:
            job()
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors, errors


def test_two_sweepers_escalate_every_question_exactly_once(
    sessions: sessionmaker[Session], fake_slack: FakeSlack, fake_zendesk: FakeZendesk
) -> None:
    due_questions(sessions, QUESTIONS)
    clock = Clock(T0 + timedelta(minutes=61))
    support.plan_deliveries(sessions, ["zendesk"], now=clock())  # enabled before the sweep
    first, second = flow(sessions, fake_slack, clock), flow(sessions, fake_slack, clock)

    def sweeper(escalations: EscalationFlow) -> None:
        escalations.sweep()
        while escalations.post_due_notifications():
            pass

    run_together(lambda: sweeper(first), lambda: sweeper(second))

    posted = fake_slack.messages(ESCALATION_CHANNEL)
    tagged = Counter(m["metadata"]["event_payload"]["question_id"] for m in posted)
    assert len(posted) == QUESTIONS
    assert len(tagged) == QUESTIONS and set(tagged.values()) == {1}
    with sessions.begin() as session:
        states = Counter(session.scalars(select(Question.state)))
        sent = Counter(session.scalars(select(Notification.state)))
    assert states == {"escalated": QUESTIONS}
    assert sent == {"sent": QUESTIONS}

    # The tickets, delivered by two workers at once: one per question.
    def connector() -> ZendeskConnector:
        return ZendeskConnector(
            subdomain="acme",
            email=fake_zendesk.email,
            api_token=fake_zendesk.api_token,
            api_url=fake_zendesk.base_url,
        )

    support.plan_deliveries(sessions, ["zendesk"], now=clock())

    def deliverer(zendesk: ZendeskConnector) -> None:
        try:
            while support.deliver_due(
                sessions, zendesk, clock=clock, lease=timedelta(minutes=10), batch=50
            ):
                pass
        finally:
            zendesk.close()

    run_together(lambda: deliverer(connector()), lambda: deliverer(connector()))

    tickets = fake_zendesk.tickets()
    assert len(tickets) == QUESTIONS
    assert len({t["external_id"] for t in tickets}) == QUESTIONS
