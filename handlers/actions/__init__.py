"""Button clicks on question cards, proposals and escalations.

Slack shows every button to everyone, so each listener checks the clicker first: proposing and
voting need a place in the answering pool, the rest needs a moderator. A refusal is explained
privately (and audited by ``care.roles``) and nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot import moderation
from bot.context import CareContext
from bot.escalation_blocks import ACTION_ANSWER_NOW, ACTION_SEND_PROPOSAL
from bot.moderation import Action
from bot.roles import Role
from bot.slack_blocks import (
    ACTION_CLOSE,
    ACTION_ESCALATE_NOW,
    ACTION_IGNORE,
    ACTION_PROPOSE,
    ACTION_SEND_NOW,
    ACTION_VOTE,
)
from handlers.payload import action_value, positive_int, where

log = logging.getLogger(__name__)


def register(app: App, care: CareContext) -> None:
    """Listen for Propose, Vote, Answer now, Send and the moderators' buttons."""

    @app.action(ACTION_PROPOSE)
    def open_proposal_form(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Open the proposal modal at once: the trigger_id expires in 3 seconds."""
        ack()
        channel, user = where(body)
        refusal = care.roles.may_answer(user, "propose an answer")
        if refusal is not None:
            care.workflow.tell(channel, user, refusal)
            return
        question_id = positive_int(action_value(body))
        card_ts = str((body.get("container") or {}).get("message_ts", ""))
        form = (
            care.workflow.proposal_form(question_id, channel, card_ts)
            if question_id and card_ts
            else "That button is not valid."
        )
        _open(care, body, client, form)

    @app.action(ACTION_VOTE)
    def vote(ack: Ack, body: dict[str, Any]) -> None:
        """Count a vote and tell the voter anything they should know."""
        ack()
        channel, user = where(body)
        refusal = care.roles.may_answer(user, "vote")
        if refusal is not None:
            care.workflow.tell(channel, user, refusal)
            return
        proposal_id = positive_int(action_value(body))
        if proposal_id is None:
            care.workflow.tell(channel, user, "That vote button is not valid.")
            return
        feedback = care.workflow.vote(proposal_id, user)
        if feedback.notice:
            care.workflow.tell(channel, user, feedback.notice)

    @app.action(ACTION_ANSWER_NOW)
    def open_answer_now_form(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """A rep answers an escalated question directly (no vote)."""
        ack()
        _, user = where(body)
        question_id = positive_int(action_value(body))
        refusal = care.roles.require(user, Role.MODERATOR, ANSWER_DIRECTLY, question_id=question_id)
        form: dict[str, object] | str = refusal or "That button is not valid."
        if refusal is None and question_id is not None:
            form = care.escalations.answer_now_form(question_id)
        _open(care, body, client, form)

    @app.action(ACTION_SEND_PROPOSAL)
    def send_proposal(ack: Ack, body: dict[str, Any]) -> None:
        """A rep sends a proposal from an escalation without waiting for votes."""
        ack()
        _send_now(care, body)

    @app.action(ACTION_SEND_NOW)
    def send_now(ack: Ack, body: dict[str, Any]) -> None:
        """A moderator sends a proposal from the card's thread without waiting for votes."""
        ack()
        _send_now(care, body)

    for action_id, action in (
        (ACTION_IGNORE, Action.IGNORE),
        (ACTION_CLOSE, Action.CLOSE),
        (ACTION_ESCALATE_NOW, Action.ESCALATE),
    ):
        app.action(action_id)(_moderate_on_click(care, action))


ANSWER_DIRECTLY = "answer a customer directly, without a vote"
SEND_WITHOUT_VOTES = "send a proposal without votes"
_CLICKED = {
    Action.IGNORE: "ignore a question",
    Action.CLOSE: "close a question",
    Action.ESCALATE: "escalate a question early",
}


def _send_now(care: CareContext, body: dict[str, Any]) -> None:
    """Send (escalation) and Send now (thread): moderators only; the question's state decides."""
    channel, user = where(body)
    proposal_id = positive_int(action_value(body))
    if proposal_id is None:
        care.workflow.tell(channel, user, "That button is not valid.")
        return
    question_id = moderation.question_of(care.escalations, proposal_id)
    refusal = care.roles.require(user, Role.MODERATOR, SEND_WITHOUT_VOTES, question_id=question_id)
    if refusal is not None:
        care.workflow.tell(channel, user, refusal)
        return
    feedback = care.escalations.send_proposal(proposal_id, user)
    if feedback.notice:
        care.workflow.tell(channel, user, feedback.notice)


def _moderate_on_click(care: CareContext, action: Action) -> Callable[[Ack, dict[str, Any]], None]:
    def on_click(ack: Ack, body: dict[str, Any]) -> None:
        """A moderator's Ignore, Close or Escalate now on a card."""
        ack()
        channel, user = where(body)
        question_id = positive_int(action_value(body))
        if question_id is None:
            care.workflow.tell(channel, user, "That button is not valid.")
            return
        refusal = care.roles.require(
            user, Role.MODERATOR, _CLICKED[action], question_id=question_id
        )
        if refusal is not None:
            care.workflow.tell(channel, user, refusal)
            return
        result = moderation.moderate(care.escalations, action, question_id, actor=user)
        care.workflow.tell(channel, user, result.message)

    on_click.__name__ = f"care_{action.value}"
    return on_click


def _open(
    care: CareContext, body: dict[str, Any], client: WebClient, form: dict[str, object] | str
) -> None:
    """Open ``form`` at once (the trigger_id lives 3 s), or tell the clicker why there is none."""
    if isinstance(form, str):
        channel, user = where(body)
        care.workflow.tell(channel, user, form)
        return
    client.views_open(trigger_id=body["trigger_id"], view=form)
