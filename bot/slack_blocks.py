"""Block Kit payloads for question cards, proposals and the propose modal.

Pure functions: they take plain dataclasses and return JSON-ready dicts. Every piece of
customer or employee text goes through :mod:`bot.mrkdwn`; the only markup in the output is
markup built here (mentions of validated user ids, links to validated URLs, quotes).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.mrkdwn import escape, fix_surrogates, safe, safe_quote, truncate
from bot.stats import MySummary, Stats

ACTION_PROPOSE = "propose_answer"
ACTION_VOTE = "vote"
# Moderator-only buttons (Slack shows them to everyone; the handlers check the role).
ACTION_IGNORE = "care_ignore"
ACTION_CLOSE = "care_close"
ACTION_ESCALATE_NOW = "care_escalate_now"
ACTION_SEND_NOW = "care_send_now"
VIEW_PROPOSE = "propose_answer"
ANSWER_BLOCK = "answer"
ANSWER_INPUT = "answer_input"

# Slack's limits (https://docs.slack.dev/reference/block-kit) and our own caps.
SECTION_TEXT_LIMIT = 3000
CONTEXT_TEXT_LIMIT = 2000
FALLBACK_TEXT_LIMIT = 3000
ANSWER_MAX_LENGTH = 3000
HANDLE_LIMIT = 50
NAME_LIMIT = 100
URL_LIMIT = 1000
REASON_LIMIT = 1000
THANKED_VOTERS = 20  # named in the thanks; more are counted
MODAL_QUESTION_LIMIT = 2500

ANSWER_HINT = "Up to 280 characters as X counts them: links count 23, CJK and emoji 2."

CLOSED_STATES = frozenset({"answered", "ignored", "closed"})

_STATE_BADGES = {
    "new": "🆕 New",
    "open": "🟢 Open",
    "proposed": "🗳️ Voting",
    "selected": "🏆 Answer selected",
    "sending": "📤 Sending reply",
    "answered": "✅ Answered",
    "escalated": "🚨 Escalated",
    "ignored": "🙈 Ignored",
    "closed": "🔒 Closed",
    "failed": "⚠️ Reply failed",
}
_PROPOSAL_BADGES = {"selected": "🏆 Selected", "sent": "📣 Sent", "closed": "🔒 Closed"}

# Slack user ids (U…, or W… on Enterprise Grid). The length cap keeps a forged id from
# blowing a text limit; real ids are around 11 characters.
_USER_ID = re.compile(r"[UW][A-Z0-9]{2,31}")
_GROUP_ID = re.compile(r"S[A-Z0-9]{2,31}")
_CHANNEL_ID = re.compile(r"[CG][A-Z0-9]{2,31}")
# Printable ASCII only, and none of the characters that would end or split <url|label>.
_URL = re.compile(r"https?://[!-;=?-{}~]+")


@dataclass(frozen=True)
class CardView:
    """What a question card shows."""

    question_id: int
    channel_label: str
    customer_handle: str
    customer_name: str
    text: str
    post_url: str
    earlier_questions: int
    proposal_count: int
    state: str
    answered_by: str | None = None
    answer_votes: int | None = None
    reply_url: str | None = None
    asked_at: datetime | None = None
    waited: timedelta | None = None  # set once the pool was nudged: how long it has waited
    answered_elsewhere_by: str | None = None  # a rep who answered in the helpdesk (plain name)
    escalated: bool = False  # the reps were called in already (Escalate now is not offered)
    expert_group: str | None = None  # the user group a routing rule mentions (S…)


@dataclass(frozen=True)
class ProposalView:
    """What a proposal message in a card's thread shows."""

    proposal_id: int
    question_id: int
    author_id: str
    text: str
    votes: int
    votes_needed: int
    state: str


# --- question card -------------------------------------------------------------------------


def question_card(view: CardView) -> list[dict[str, Any]]:
    """Blocks for the card that presents a customer's question."""
    blocks = [
        section_block(_card_title(view)),
        section_block(_quoted_or_placeholder(view.text, SECTION_TEXT_LIMIT), verbatim=True),
        _context(_card_facts(view)),
    ]
    if view.state == "answered":
        blocks.append(_context([_answered_line(view)]))
    if view.state not in CLOSED_STATES:
        blocks.append(
            _actions(
                button_element("Propose answer", ACTION_PROPOSE, str(view.question_id), "primary"),
                *_moderation_buttons(view),
            )
        )
    return blocks


def _moderation_buttons(view: CardView) -> list[dict[str, Any]]:
    """Escalate now, Ignore and Close while they can apply (bot.moderation decides for real)."""
    value = str(view.question_id)
    found: list[dict[str, Any]] = []
    if view.state in ("open", "proposed") and not view.escalated:
        found.append(
            _confirmed(
                button_element("Escalate now", ACTION_ESCALATE_NOW, value),
                "Escalate now?",
                "The support reps are called in at once, before the deadline.",
                "Escalate",
            )
        )
    if view.state in ("open", "proposed", "escalated"):
        found.append(
            _confirmed(
                button_element("Ignore", ACTION_IGNORE, value),
                "Ignore this post?",
                "For spam or posts that are not a question: nobody answers it or is reminded.",
                "Ignore",
            )
        )
    if view.state in ("open", "proposed", "escalated"):
        found.append(
            _confirmed(
                button_element("Close", ACTION_CLOSE, value, "danger"),
                "Close this question?",
                "No reply is sent and nobody is reminded. To record a reason, use "
                f"/care close {view.question_id} followed by the reason.",
                "Close",
            )
        )
    return found


def _confirmed(button: dict[str, Any], title: str, text: str, confirm: str) -> dict[str, Any]:
    """``button`` asking "are you sure?" before it is sent (Slack's confirmation dialog)."""
    return {
        **button,
        "confirm": {
            "title": _plain(title),
            "text": _plain(text),
            "confirm": _plain(confirm),
            "deny": _plain("Cancel"),
        },
    }


def question_card_text(view: CardView) -> str:
    """Notification fallback for a question card."""
    prefix = f"Question from @{_handle(view)} on {safe(view.channel_label, 20)}: "
    if group_mention(view.expert_group):
        prefix = f"{group_mention(view.expert_group)} {prefix}"
    return prefix + safe(view.text.strip(), FALLBACK_TEXT_LIMIT - len(prefix))


def _card_title(view: CardView) -> str:
    """Bold first line naming the customer, linked to their post when the URL is safe."""
    handle = f"@{_handle(view)}"
    who = safe_link(view.post_url, handle) or handle
    name = safe(view.customer_name.strip(), NAME_LIMIT)
    if name:
        who = f"{who} ({name})"
    return f"*Question from {who} on {safe(view.channel_label, 20)}*"


def _card_facts(view: CardView) -> list[str]:
    """Context line: customer history, proposal count, state and when it was asked."""
    facts = [
        _earlier_questions(view.earlier_questions),
        _count(view.proposal_count, "proposal", zero="No proposals yet"),
        _state_badge(view.state),
        f"Question #{view.question_id}",  # the number `/care close|ignore|escalate` take
    ]
    if view.asked_at is not None:
        facts.append(_date(view.asked_at))
    if view.waited is not None and view.state in ("open", "proposed", "escalated"):
        facts.append(f"⏰ Waiting {format_wait(view.waited)}")
    if group_mention(view.expert_group):
        facts.append(f"👥 For {group_mention(view.expert_group)}")
    return facts


def format_wait(waited: timedelta) -> str:
    """``45 min``, ``2 h 5 min``, ``3 d 4 h``: how long a customer has waited."""
    minutes = max(int(waited.total_seconds()) // 60, 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{minutes} min"


def _earlier_questions(count: int) -> str:
    """How often this customer asked before."""
    if count <= 0:
        return "First question from this customer"
    return f"Asked {_count(count, 'time')} before"


def _answered_line(view: CardView) -> str:
    """Who answered, with how many votes, and where the reply is."""
    if view.answered_elsewhere_by is not None:
        return f"✅ Answered by {safe(view.answered_elsewhere_by, 80)} in the helpdesk"
    line = f"✅ Answered by {user_mention(view.answered_by) if view.answered_by else 'the team'}"
    if view.answer_votes is not None:
        line += f" with {_count(view.answer_votes, 'vote')}"
    link = safe_link(view.reply_url, "view reply")
    if link:
        line += f" · {link}"
    return line


def _state_badge(state: str) -> str:
    """Human label for a workflow state; unknown states are shown escaped."""
    return _STATE_BADGES.get(state) or safe(state, 40) or "Unknown state"


def _handle(view: CardView) -> str:
    """The customer's handle without a leading @, safe for mrkdwn."""
    return safe(view.customer_handle.strip().removeprefix("@"), HANDLE_LIMIT)


# --- proposals -----------------------------------------------------------------------------


def proposal_message(view: ProposalView) -> list[dict[str, Any]]:
    """Blocks for a proposed answer posted in the card's thread."""
    facts = [f"{view.votes} of {view.votes_needed} votes"]
    badge = _PROPOSAL_BADGES.get(view.state)
    if badge:
        facts.append(badge)
    blocks = [
        section_block(f"*Proposal by {user_mention(view.author_id)}*"),
        section_block(_quoted_or_placeholder(view.text, SECTION_TEXT_LIMIT), verbatim=True),
        _context(facts),
    ]
    if view.state == "open":
        blocks.append(
            _actions(
                button_element("Vote", ACTION_VOTE, str(view.proposal_id)),
                _confirmed(
                    button_element("Send now", ACTION_SEND_NOW, str(view.proposal_id)),
                    "Send without votes?",
                    "For moderators: this answer is posted to the customer at once.",
                    "Send",
                ),
            )
        )
    return blocks


def proposal_text(view: ProposalView) -> str:
    """Notification fallback for a proposal."""
    prefix = f"Proposal by {user_mention(view.author_id)}: "
    return prefix + safe(view.text.strip(), FALLBACK_TEXT_LIMIT - len(prefix))


# --- modal ---------------------------------------------------------------------------------


def propose_modal(
    question_id: int, customer_handle: str, question_text: str, draft: str = ""
) -> dict[str, Any]:
    """The modal in which an employee writes a proposed answer."""
    handle = safe(customer_handle.strip().removeprefix("@"), HANDLE_LIMIT)
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": ANSWER_INPUT,
        "multiline": True,
        "max_length": ANSWER_MAX_LENGTH,
    }
    if draft:
        # plain_text_input shows raw text: the draft is kept as typed (not escaped or cleaned),
        # only made encodable and shortened to what the input accepts.
        element["initial_value"] = truncate(fix_surrogates(draft), ANSWER_MAX_LENGTH, ellipsis="")
    asked = f"*@{handle} asked:*\n" + _quoted_or_placeholder(question_text, MODAL_QUESTION_LIMIT)
    return {
        "type": "modal",
        "callback_id": VIEW_PROPOSE,
        "private_metadata": str(question_id),
        "title": _plain("Propose an answer"),
        "submit": _plain("Propose"),
        "close": _plain("Cancel"),
        "blocks": [
            section_block(asked, verbatim=True),
            {
                "type": "input",
                "block_id": ANSWER_BLOCK,
                "label": _plain("Your answer"),
                "element": element,
                "hint": _plain(ANSWER_HINT),
            },
        ],
    }


# --- short notices -------------------------------------------------------------------------


def ephemeral_text(message: str) -> str:
    """Escape a notice shown to a single user."""
    return safe(message, FALLBACK_TEXT_LIMIT)


def thanks_text(author_id: str, voter_ids: Sequence[str], reply_url: str) -> str:
    """Thank the author of the winning answer and everyone who voted for it, by name."""
    link = safe_link(reply_url, "view reply")
    where = f": {link}" if link else " on X."
    votes = _count(len(voter_ids), "vote")
    text = f"🙌 Thanks {user_mention(author_id)}! Your answer ({votes}) is live{where}"
    if voter_ids:
        named = [user_mention(voter) for voter in voter_ids[:THANKED_VOTERS]]
        more = len(voter_ids) - len(named)
        others = f" and {_count(more, 'other')}" if more else ""
        text += f"\nAnd thanks to {', '.join(named)}{others} for voting."
    return text


def slack_answer_text(asker_id: str | None, author_id: str | None, answer: str) -> str:
    """Thread message for a question asked in Slack: the chosen answer, for the asker to pass on."""
    who = f"{user_mention(asker_id)}, here" if asker_id else "Here"
    by = f" (by {user_mention(author_id)})" if author_id else ""
    body = safe_quote(answer, SECTION_TEXT_LIMIT) or ">"
    return f"✅ {who} is the chosen answer{by}; please pass it on to the customer:\n{body}"


def reply_failed_text(reason: str) -> str:
    """Thread notice when X refused to publish the reply."""
    detail = safe(reason.strip(), REASON_LIMIT) or "no reason given"
    return f"⚠️ X did not accept the reply: {detail}"


def reply_held_text(reason: str) -> str:
    """Thread notice when crowdcare itself held the chosen reply back (the policy changed)."""
    detail = safe(reason.strip(), REASON_LIMIT) or "no reason given"
    return (
        f"✋ The chosen answer was not published: {detail}. Nothing went public; a moderator can "
        "send another answer from the escalation, or close the question."
    )


def card_rerouted_text(channel: str, error: str) -> str:
    """Thread notice on a card posted in the questions channel because its route's was refused."""
    where = f"<#{channel}>" if _CHANNEL_ID.fullmatch(channel) else escape(channel)
    return (
        f"⚠️ Could not post this card in {where}: {safe(error, REASON_LIMIT)}. Invite @crowdcare "
        "there (`/invite @crowdcare`) so the questions routed to it appear there; until then "
        "they come here."
    )


# --- markup helpers ------------------------------------------------------------------------


def group_mention(group_id: str | None) -> str:
    """A mention of a valid Slack user group id (``S…``), otherwise ""."""
    return f"<!subteam^{group_id}>" if group_id and _GROUP_ID.fullmatch(group_id) else ""


def user_mention(user_id: str | None) -> str:
    """A real mention for a valid Slack user id, otherwise the id as escaped text."""
    if user_id and _USER_ID.fullmatch(user_id):
        return f"<@{user_id}>"
    return safe(user_id or "", 40) or "someone"


def safe_link(url: str | None, label: str) -> str | None:
    """``<url|label>`` when the URL cannot break out of the link markup, else None."""
    if not url or not _URL.fullmatch(url):
        return None
    # Slack expects &amp; for & inside link markup too; measure after escaping.
    escaped = escape(url)
    return f"<{escaped}|{label}>" if len(escaped) <= URL_LIMIT else None


def _date(moment: datetime) -> str:
    """A date Slack renders in the reader's time zone, with a UTC fallback."""
    if moment.tzinfo is None:
        # Naive datetimes are UTC by convention in this project.
        moment = moment.replace(tzinfo=UTC)
    fallback = moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def _count(number: int, noun: str, zero: str | None = None) -> str:
    """``1 vote`` / ``2 votes``, or ``zero`` for nothing when given."""
    if number == 0 and zero is not None:
        return zero
    return f"{number} {noun}" + ("" if number == 1 else "s")


def _quoted_or_placeholder(text: str, limit: int) -> str:
    """User text as a block quote, or a note when nothing visible is left."""
    return safe_quote(text, limit) or "_(no text)_"


# --- block helpers -------------------------------------------------------------------------


def _plain(text: str) -> dict[str, Any]:
    """A plain_text object."""
    return {"type": "plain_text", "text": text, "emoji": True}


def mrkdwn_text(text: str, verbatim: bool = False) -> dict[str, Any]:
    """A mrkdwn text object; ``verbatim`` stops Slack from auto-linking user text."""
    obj: dict[str, Any] = {"type": "mrkdwn", "text": text}
    if verbatim:
        obj["verbatim"] = True
    return obj


def section_block(text: str, verbatim: bool = False) -> dict[str, Any]:
    """A section block with mrkdwn text."""
    return {"type": "section", "text": mrkdwn_text(text, verbatim)}


def _context(texts: list[str]) -> dict[str, Any]:
    """A context block, one mrkdwn element per fact."""
    return {"type": "context", "elements": [mrkdwn_text(text) for text in texts]}


def _actions(*elements: dict[str, Any]) -> dict[str, Any]:
    """An actions block."""
    return {"type": "actions", "elements": list(elements)}


def button_element(
    text: str, action_id: str, value: str, style: str | None = None
) -> dict[str, Any]:
    """A button element."""
    button: dict[str, Any] = {
        "type": "button",
        "text": _plain(text),
        "action_id": action_id,
        "value": value,
    }
    if style:
        button["style"] = style
    return button


# --- App Home ------------------------------------------------------------------------------

HOME_LIMIT = 20


@dataclass(frozen=True)
class HomeItem:
    """An open question, as listed on the App Home tab."""

    question_id: int
    customer_handle: str
    text: str
    state: str
    proposal_count: int


def home_view(
    items: list[HomeItem],
    questions_channel: str | None,
    summary: MySummary | None = None,
    today: Stats | None = None,
) -> dict[str, Any]:
    """The App Home tab: the viewer's own numbers, today's stats (admins: pass ``today``), and
    the oldest open questions an employee could help with."""
    # Imported here: bot.stats_blocks builds on this module's helpers.
    from bot.stats_blocks import home_numbers_blocks

    where = (
        f" in <#{questions_channel}>"
        if questions_channel and _CHANNEL.fullmatch(questions_channel)
        else ""
    )
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain("crowdcare")},
        *home_numbers_blocks(summary, today),
        section_block(
            f"*{_count(len(items), 'open question', 'No open questions')}*{where}. "
            "Propose an answer or vote on a colleague's from the question's card."
        ),
    ]
    for item in items[:HOME_LIMIT]:
        blocks.append({"type": "divider"})
        blocks.append(
            section_block(
                f"*@{safe(item.customer_handle, 64)}* · {_state_badge(item.state)} · "
                f"{_count(item.proposal_count, 'proposal', 'no proposals yet')}\n"
                f"{_quoted_or_placeholder(item.text, 500)}",
                verbatim=True,
            )
        )
    return {"type": "home", "blocks": blocks}


_CHANNEL = re.compile(r"[CG][A-Z0-9]{2,31}")
