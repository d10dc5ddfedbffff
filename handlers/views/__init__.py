"""Modal submissions.

The clicker's permission is checked again on submit: a modal may have been opened before the
pool mode or the person's role changed. A refusal shows in the modal, next to the field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App

from bot.context import CareContext
from bot.escalation_blocks import VIEW_ANSWER_NOW
from bot.roles import Role
from bot.slack_blocks import ANSWER_BLOCK, ANSWER_INPUT, VIEW_PROPOSE
from bot.workflow import Feedback
from handlers.actions import ANSWER_DIRECTLY
from handlers.payload import positive_int

Submit = Callable[[int, str, str | None], Feedback]


def register(app: App, care: CareContext) -> None:
    """Listen for proposal and answer-now submissions."""

    @app.view(VIEW_PROPOSE)
    def submit_proposal(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Check and store the answer; problems go back into the modal, next to the field."""
        refusal = care.roles.may_answer(_user(body), "propose an answer")
        if refusal is not None:
            ack(response_action="errors", errors={ANSWER_BLOCK: refusal})
            return
        feedback = _submit(ack, body, view, care.workflow.submit_proposal)
        if feedback is not None and feedback.proposal_id is not None:
            care.workflow.show_proposal(feedback.proposal_id)

    @app.view(VIEW_ANSWER_NOW)
    def submit_answer_now(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Check the rep's answer; problems go back into the modal, else it is sent at once."""
        refusal = care.roles.require(
            _user(body),
            Role.MODERATOR,
            ANSWER_DIRECTLY,
            question_id=positive_int(view.get("private_metadata")),
        )
        if refusal is not None:
            ack(response_action="errors", errors={ANSWER_BLOCK: refusal})
            return
        feedback = _submit(ack, body, view, care.escalations.submit_answer_now)
        if feedback is not None:
            care.escalations.after_answer_now(int(view["private_metadata"]))


def _submit(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], submit: Submit
) -> Feedback | None:
    """Read the answer field, hand it to ``submit``, and ack: errors inline, or close the modal.

    Returns the feedback when the answer was accepted (the modal is closed by then), else None.
    """
    question_id = positive_int(view.get("private_metadata"))
    values = (view.get("state") or {}).get("values") or {}
    text = (values.get(ANSWER_BLOCK) or {}).get(ANSWER_INPUT, {}).get("value")
    if question_id is None:
        ack(response_action="errors", errors={ANSWER_BLOCK: "This form is not valid any more."})
        return None
    feedback = submit(question_id, _user(body), text)
    if feedback.form_errors:
        ack(response_action="errors", errors=feedback.form_errors)
        return None
    ack()
    return feedback


def _user(body: dict[str, Any]) -> str:
    return str((body.get("user") or {}).get("id", ""))
