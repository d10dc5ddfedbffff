"""Button clicks on question cards and proposals."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.context import CareContext
from bot.escalation_blocks import ACTION_ANSWER_NOW, ACTION_SEND_PROPOSAL
from bot.slack_blocks import ACTION_PROPOSE, ACTION_VOTE
from handlers.payload import action_value, positive_int, where

log = logging.getLogger(__name__)


def register(app: App, care: CareContext) -> None:
    """Listen for Propose, Vote, Answer now and Send clicks."""

    @app.action(ACTION_PROPOSE)
    def open_proposal_form(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """Open the proposal modal at once: the trigger_id expires in 3 seconds."""
        ack()
        channel, _ = where(body)
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
        question_id = positive_int(action_value(body))
        form = (
            care.escalations.answer_now_form(question_id)
            if question_id
            else "That button is not valid."
        )
        _open(care, body, client, form)

    @app.action(ACTION_SEND_PROPOSAL)
    def send_proposal(ack: Ack, body: dict[str, Any]) -> None:
        """A rep sends a proposal from an escalation without waiting for votes."""
        ack()
        channel, user = where(body)
        proposal_id = positive_int(action_value(body))
        if proposal_id is None:
            care.workflow.tell(channel, user, "That button is not valid.")
            return
        feedback = care.escalations.send_proposal(proposal_id, user)
        if feedback.notice:
            care.workflow.tell(channel, user, feedback.notice)


def _open(
    care: CareContext, body: dict[str, Any], client: WebClient, form: dict[str, object] | str
) -> None:
    """Open ``form`` at once (the trigger_id lives 3 s), or tell the clicker why there is none."""
    if isinstance(form, str):
        channel, user = where(body)
        care.workflow.tell(channel, user, form)
        return
    client.views_open(trigger_id=body["trigger_id"], view=form)
