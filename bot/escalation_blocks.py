"""Block Kit for escalations: the message reps see, and the modal to answer at once. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bot.mrkdwn import safe, safe_quote
from bot.slack_blocks import (
    ANSWER_BLOCK,
    ANSWER_HINT,
    ANSWER_INPUT,
    button_element,
    format_wait,
    mrkdwn_text,
    safe_link,
    section_block,
    user_mention,
)

ACTION_ANSWER_NOW = "answer_now"
ACTION_SEND_PROPOSAL = "send_proposal"
VIEW_ANSWER_NOW = "answer_now"
MAX_LISTED_PROPOSALS = 10  # keeps the message far inside 50 blocks

_GROUP = re.compile(r"S[A-Z0-9]{2,31}")


@dataclass(frozen=True)
class ProposalLine:
    """One proposal as listed in an escalation."""

    proposal_id: int
    author_id: str
    text: str
    votes: int


@dataclass(frozen=True)
class EscalationView:
    """What an escalation message shows."""

    question_id: int
    level: int  # 1: on-call reps, 2: supervisors
    customer_handle: str
    customer_name: str
    text: str
    post_url: str
    card_url: str | None
    waited: timedelta
    proposals: tuple[ProposalLine, ...]
    mention_group: str | None
    state: str
    answered_by: str | None = None  # Slack user id of whoever's answer was sent
    reply_url: str | None = None
    answered_elsewhere_by: str | None = None


def escalation_message(view: EscalationView) -> list[dict[str, Any]]:
    """The message in the escalation channel: the question, what the pool proposed, buttons."""
    heading = "🚨 *Unanswered question*" if view.level == 1 else "🚨🚨 *Still unanswered*"
    who = _group(view.mention_group)
    handle = "@" + safe(view.customer_handle, 50)
    lines = [
        f"{heading} from {safe_link(view.post_url, handle) or handle} "
        f"({safe(view.customer_name, 100)}), waiting {format_wait(view.waited)}."
        + (f" {who}" if who else ""),
    ]
    blocks: list[dict[str, Any]] = [
        section_block(lines[0]),
        section_block(safe_quote(view.text, 2900) or "_(no text)_", verbatim=True),
    ]
    facts = [f"Question #{view.question_id}"]
    card = (safe_link(view.card_url, "open the card") or "open the card") if view.card_url else None
    if card:
        facts.append(card)
    blocks.append({"type": "context", "elements": [mrkdwn_text(" · ".join(facts))]})
    answered = view.state == "answered"
    if answered:
        blocks.append(section_block(_answered_line(view)))
    for proposal in view.proposals[:MAX_LISTED_PROPOSALS]:
        votes = f"{proposal.votes} vote" + ("" if proposal.votes == 1 else "s")
        section = section_block(
            f"*Proposal by {user_mention(proposal.author_id)}* ({votes})\n"
            f"{safe_quote(proposal.text, 2700) or '_(no text)_'}",
            verbatim=True,
        )
        if not answered and view.state in ("open", "proposed", "escalated", "failed"):
            section["accessory"] = button_element(
                "Send", ACTION_SEND_PROPOSAL, str(proposal.proposal_id)
            )
        blocks.append(section)
    hidden = len(view.proposals) - MAX_LISTED_PROPOSALS
    if hidden > 0:
        blocks.append({"type": "context", "elements": [mrkdwn_text(f"…and {hidden} more")]})
    if not answered and view.state in ("open", "proposed", "escalated", "failed"):
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    button_element(
                        "Answer now", ACTION_ANSWER_NOW, str(view.question_id), "primary"
                    )
                ],
            }
        )
    return blocks


def escalation_text(view: EscalationView) -> str:
    """Notification fallback text (what a phone shows)."""
    who = _group(view.mention_group)
    prefix = f"{who} " if who else ""
    return (
        f"{prefix}Unanswered question from @{safe(view.customer_handle, 50)} "
        f"(waiting {format_wait(view.waited)})"
    )


def nudge_text(handle: str, waited: timedelta, mention_group: str | None) -> str:
    """The reply in a card's thread asking the pool for help."""
    who = _group(mention_group)
    return (
        f"⏰ @{safe(handle, 50)} has waited {format_wait(waited)} and nobody has proposed an "
        f"answer yet.{' ' + who if who else ''} Can you help? Click *Propose answer* above."
    )


def answer_now_modal(question_id: int, customer_handle: str, question_text: str) -> dict[str, Any]:
    """The rep's modal: the answer is checked, then sent at once without a vote."""
    return {
        "type": "modal",
        "callback_id": VIEW_ANSWER_NOW,
        "private_metadata": str(question_id),
        "title": {"type": "plain_text", "text": "Answer now"},
        "submit": {"type": "plain_text", "text": "Send"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "blocks": [
            section_block(
                f"*@{safe(customer_handle, 50)} asked:*\n"
                f"{safe_quote(question_text, 2500) or '_(no text)_'}",
                verbatim=True,
            ),
            {
                "type": "input",
                "block_id": ANSWER_BLOCK,
                "label": {"type": "plain_text", "text": "Your reply (sent at once, no vote)"},
                "hint": {"type": "plain_text", "text": ANSWER_HINT},
                "element": {
                    "type": "plain_text_input",
                    "action_id": ANSWER_INPUT,
                    "multiline": True,
                    "max_length": 3000,
                },
            },
        ],
    }


def _answered_line(view: EscalationView) -> str:
    if view.answered_elsewhere_by is not None:
        return f"✅ Answered by {safe(view.answered_elsewhere_by, 80)} in the helpdesk."
    line = f"✅ Answered by {user_mention(view.answered_by) if view.answered_by else 'the team'}"
    link = (safe_link(view.reply_url, "view reply") or "view reply") if view.reply_url else None
    return line + (f" · {link}" if link else "") + "."


def _group(group_id: str | None) -> str:
    return f"<!subteam^{group_id}>" if group_id and _GROUP.fullmatch(group_id) else ""
