"""End to end: Slack's retries, rate limits and the App Home, through the real HTTP endpoint."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from storage.models import ProcessedSlackEvent, Question
from tests.scenario import card_for, cards, rendered
from tests.standins.stack import Stack

pytestmark = pytest.mark.e2e


def home_opened(user: str) -> dict:
    return {"type": "app_home_opened", "user": user, "channel": "D0HOME", "tab": "home"}


def test_app_home_lists_open_questions_with_escaped_text(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp <!here> is the app down?", author_handle="nina")
    card_for(stack, "app down")

    response = stack.client.event(home_opened("U0ALICE"))

    assert response.status == 200
    [call] = stack.slack.wait_for("views.publish")
    assert call.params["user_id"] == "U0ALICE"
    view = call.params["view"]
    assert view["type"] == "home"
    shown = rendered(view)
    assert "1 open question" in shown and "nina" in shown
    assert "&lt;!here&gt;" in shown and "<!here>" not in shown


def test_an_event_slack_retries_is_handled_once(stack: Stack) -> None:
    event = home_opened("U0BOB")

    first = stack.client.event(event, event_id="Ev0RETRY1")
    # Slack signs each delivery anew: a retry comes at least 3 s later, with its own timestamp.
    now = int(time.time())
    retries = [
        stack.client.event(event, event_id="Ev0RETRY1", retry_num=n, timestamp=now + 3 * n)
        for n in (1, 2, 3)
    ]

    assert first.status == 200
    assert [r.status for r in retries] == [200, 200, 200]
    stack.slack.wait_for("views.publish")
    with stack.app.sessions.begin() as session:
        stored = session.scalar(select(func.count()).select_from(ProcessedSlackEvent))
    assert stored == 1
    assert len(stack.slack.calls_to("views.publish")) == 1


def test_cards_still_arrive_when_slack_rate_limits_posting(stack: Stack) -> None:
    stack.slack.rate_limit("chat.postMessage", times=2, retry_after=1)
    stack.x.add_mention("@AcmeHelp first question")
    stack.x.add_mention("@AcmeHelp second question")

    card_for(stack, "first question", timeout=20)
    card_for(stack, "second question", timeout=20)

    posts = stack.slack.calls_to("chat.postMessage")
    assert len(posts) == 4  # two 429s, then each card once
    assert len(cards(stack, "question")) == 2


def test_x_rate_limit_on_mentions_delays_polling_and_loses_nothing(stack: Stack) -> None:
    stack.x.rate_limit("mentions", times=1, reset_in=1)
    stack.x.add_mention("@AcmeHelp asked during the rate limit")

    card_for(stack, "during the rate limit", timeout=20)

    with stack.app.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(Question)) == 1


def test_x_server_errors_on_mentions_are_retried_until_the_mention_arrives(stack: Stack) -> None:
    stack.x.fail("mentions", status=503, times=2)
    stack.x.add_mention("@AcmeHelp asked while X was down")

    card_for(stack, "while X was down", timeout=30)

    statuses = [c for c in stack.x.calls_to("mentions")]
    assert len(statuses) >= 3
    with stack.app.sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(Question)) == 1
