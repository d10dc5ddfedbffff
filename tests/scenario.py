"""Builders that make an end-to-end test read like the conversation it checks."""

from __future__ import annotations

import json
from typing import Any

from bot.slack_blocks import ACTION_PROPOSE, ACTION_VOTE, ANSWER_BLOCK, ANSWER_INPUT, VIEW_PROPOSE
from tests.standins.slack_requests import Response
from tests.standins.stack import QUESTIONS_CHANNEL, Stack, wait_until


def cards(stack: Stack, fragment: str = "") -> list[dict[str, Any]]:
    """Top-level messages (question cards) in the questions channel containing ``fragment``."""
    return [
        message
        for message in stack.slack.messages(QUESTIONS_CHANNEL)
        if message.get("thread_ts") in (None, message["ts"])
        and fragment in json.dumps(message.get("blocks"), ensure_ascii=False)
    ]


def card_for(stack: Stack, fragment: str, timeout: float = 10.0) -> dict[str, Any]:
    """The question card whose text contains ``fragment`` (waits for it to be posted)."""

    def find() -> dict[str, Any] | None:
        found = cards(stack, fragment)
        return found[0] if found else None

    return wait_until(find, timeout, f"a card containing {fragment!r}")  # type: ignore[no-any-return]


def current(stack: Stack, message: dict[str, Any]) -> dict[str, Any]:
    """The message as Slack shows it now (after updates)."""
    found = stack.slack.message(QUESTIONS_CHANNEL, message["ts"])
    assert found is not None
    return found


def rendered(message: dict[str, Any]) -> str:
    """All text of a message's blocks, for assertions."""
    return json.dumps(message.get("blocks"), ensure_ascii=False)


def button_value(message: dict[str, Any], action_id: str) -> str | None:
    """The value of the button with ``action_id`` in a message, if it has one."""
    for block in message.get("blocks") or []:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("action_id") == action_id:
                return str(element["value"])
    return None


def click_propose(stack: Stack, user: str, card: dict[str, Any]) -> Response:
    """An employee clicks Propose answer on a card."""
    value = button_value(current(stack, card), ACTION_PROPOSE)
    assert value is not None, "card has no Propose button"
    return stack.client.block_action(
        user, ACTION_PROPOSE, value, channel_id=QUESTIONS_CHANNEL, message_ts=card["ts"]
    )


def opened_form(stack: Stack, user_count: int = 1) -> dict[str, Any]:
    """The proposal modal the app opened (waits for views.open)."""
    calls = stack.slack.wait_for("views.open", count=user_count)
    return calls[-1].params["view"]  # type: ignore[no-any-return]


def submit_answer(stack: Stack, user: str, form: dict[str, Any], answer: str) -> Response:
    """An employee submits the proposal modal."""
    return stack.client.view_submission(
        user,
        VIEW_PROPOSE,
        form["private_metadata"],
        {ANSWER_BLOCK: {ANSWER_INPUT: answer}},
    )


def propose(stack: Stack, user: str, card: dict[str, Any], answer: str) -> dict[str, Any]:
    """Click Propose, fill in the modal, and wait for the proposal in the card's thread."""
    before = len(stack.slack.calls_to("views.open"))
    assert click_propose(stack, user, card).status == 200
    form = opened_form(stack, before + 1)
    response = submit_answer(stack, user, form, answer)
    assert response.status == 200, response.text
    assert response.text == "", f"modal refused the answer: {response.text}"
    return proposal_in_thread(stack, card, answer)


def proposal_in_thread(stack: Stack, card: dict[str, Any], answer: str) -> dict[str, Any]:
    """The proposal message carrying ``answer`` in the card's thread."""
    escaped = answer.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

    def find() -> dict[str, Any] | None:
        for message in stack.slack.thread(QUESTIONS_CHANNEL, card["ts"]):
            if button_value(message, ACTION_VOTE) and escaped[:40] in rendered(message):
                return message
        return None

    return wait_until(find, 10, f"a proposal {answer[:30]!r} in the thread")  # type: ignore[no-any-return]


def vote(stack: Stack, user: str, proposal: dict[str, Any]) -> Response:
    """An employee clicks Vote on a proposal."""
    value = button_value(proposal, ACTION_VOTE)
    assert value is not None, "proposal has no Vote button"
    return stack.client.block_action(
        user,
        ACTION_VOTE,
        value,
        channel_id=QUESTIONS_CHANNEL,
        message_ts=proposal["ts"],
        thread_ts=proposal.get("thread_ts"),
    )


def ephemeral_to(stack: Stack, user: str, fragment: str) -> dict[str, Any]:
    """The private notice to ``user`` containing ``fragment`` (waits for it)."""

    def find() -> dict[str, Any] | None:
        for message in stack.slack.ephemerals(user):
            if fragment in (message.get("text") or ""):
                return message
        return None

    return wait_until(find, 10, f"a notice to {user} containing {fragment!r}")  # type: ignore[no-any-return]


def slash(stack: Stack, user: str, text: str) -> dict[str, Any]:
    """``user`` runs `/care <text>`; the acknowledgement, which /care always makes private."""
    response = stack.client.command(user, text)
    assert response.status == 200, response.text
    answer: dict[str, Any] = response.json()
    assert answer.get("response_type") == "ephemeral", answer
    return answer
