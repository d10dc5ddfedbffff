"""Tests for bot.slack_blocks: card, proposal and modal payloads."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.mrkdwn import escape
from bot.slack_blocks import (
    ACTION_CLOSE,
    ACTION_ESCALATE_NOW,
    ACTION_IGNORE,
    ACTION_PROPOSE,
    ACTION_SEND_NOW,
    ACTION_VOTE,
    ANSWER_BLOCK,
    ANSWER_HINT,
    ANSWER_INPUT,
    VIEW_PROPOSE,
    CardView,
    ProposalView,
    ephemeral_text,
    proposal_message,
    proposal_text,
    propose_modal,
    question_card,
    question_card_text,
    reply_failed_text,
    thanks_text,
)
from tests.blockkit import validate_blocks, validate_modal, validate_text

CARD_STATES = [
    "new",
    "open",
    "proposed",
    "selected",
    "sending",
    "answered",
    "escalated",
    "ignored",
    "closed",
    "failed",
]
PROPOSAL_STATES = ["open", "selected", "sent", "closed"]
POST_URL = "https://x.com/alice/status/1790000000000000000"
REPLY_URL = "https://x.com/acme/status/1790000000000000099"

CARD = CardView(
    question_id=42,
    channel_label="X",
    customer_handle="alice",
    customer_name="Alice Liddell",
    text="My order #123 never arrived.\nCan you help?",
    post_url=POST_URL,
    earlier_questions=0,
    proposal_count=2,
    state="open",
)
PROPOSAL = ProposalView(
    proposal_id=7,
    question_id=42,
    author_id="U024BE7LH",
    text="Sorry about that! DM us your order number.",
    votes=1,
    votes_needed=3,
    state="open",
)


def all_text(blocks: list[dict[str, Any]]) -> list[str]:
    """Every mrkdwn/plain text string in the blocks, in order."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") in ("mrkdwn", "plain_text"):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(blocks)
    return found


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """All buttons in the blocks."""
    return [
        element
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
        if element["type"] == "button"
    ]


# --- question card -----------------------------------------------------------------------


def test_question_card_layout() -> None:
    blocks = question_card(CARD)
    validate_blocks(blocks)
    title, question, facts, actions = blocks
    assert title["text"]["text"] == f"*Question from <{POST_URL}|@alice> (Alice Liddell) on X*"
    assert question["text"] == {
        "type": "mrkdwn",
        "text": "> My order #123 never arrived.\n> Can you help?",
        "verbatim": True,
    }
    assert [e["text"] for e in facts["elements"]] == [
        "First question from this customer",
        "2 proposals",
        "🟢 Open",
        "Question #42",
    ]
    assert actions["elements"][0] == {
        "type": "button",
        "text": {"type": "plain_text", "text": "Propose answer", "emoji": True},
        "action_id": ACTION_PROPOSE,
        "value": "42",
        "style": "primary",
    }
    moderation = actions["elements"][1:]
    assert [b["action_id"] for b in moderation] == [
        ACTION_ESCALATE_NOW,
        ACTION_IGNORE,
        ACTION_CLOSE,
    ]
    assert all(b["value"] == "42" and b["confirm"]["deny"]["text"] == "Cancel" for b in moderation)


@pytest.mark.parametrize(
    ("earlier", "proposals", "expected"),
    [
        (0, 0, ["First question from this customer", "No proposals yet"]),
        (1, 1, ["Asked 1 time before", "1 proposal"]),
        (3, 2, ["Asked 3 times before", "2 proposals"]),
    ],
)
def test_question_card_counts(earlier: int, proposals: int, expected: list[str]) -> None:
    view = replace(CARD, earlier_questions=earlier, proposal_count=proposals)
    facts = question_card(view)[2]["elements"]
    assert [e["text"] for e in facts[:2]] == expected


@pytest.mark.parametrize("state", CARD_STATES)
def test_propose_button_by_state(state: str) -> None:
    blocks = question_card(replace(CARD, state=state))
    validate_blocks(blocks)
    shown = [b["action_id"] for b in buttons(blocks)]
    assert (ACTION_PROPOSE in shown) is (state not in ("answered", "ignored", "closed"))
    assert (ACTION_IGNORE in shown) is (state in ("open", "proposed", "escalated"))
    assert (ACTION_ESCALATE_NOW in shown) is (state in ("open", "proposed"))
    assert (ACTION_CLOSE in shown) is (state in ("open", "proposed", "escalated"))
    assert not shown or shown[0] == ACTION_PROPOSE


@pytest.mark.parametrize("state", ["open", "proposed"])
def test_escalate_now_is_not_offered_twice(state: str) -> None:
    blocks = question_card(replace(CARD, state=state, escalated=True))
    assert ACTION_ESCALATE_NOW not in [b["action_id"] for b in buttons(blocks)]


def test_answered_card() -> None:
    view = replace(
        CARD, state="answered", answered_by="U024BE7LH", answer_votes=3, reply_url=REPLY_URL
    )
    blocks = question_card(view)
    validate_blocks(blocks)
    assert blocks[-1]["elements"][0]["text"] == (
        f"✅ Answered by <@U024BE7LH> with 3 votes · <{REPLY_URL}|view reply>"
    )


def test_answered_card_with_bad_author_and_url() -> None:
    view = replace(
        CARD, state="answered", answered_by="<!channel>", answer_votes=1, reply_url="javascript:x"
    )
    line = question_card(view)[-1]["elements"][0]["text"]
    assert line == "✅ Answered by &lt;!channel&gt; with 1 vote"


def test_asked_at_is_a_slack_date() -> None:
    view = replace(CARD, asked_at=datetime(2024, 5, 1, 12, 30, tzinfo=UTC))
    facts = question_card(view)[2]["elements"]
    assert facts[-1]["text"] == (
        "<!date^1714566600^{date_short_pretty} at {time}|2024-05-01 12:30 UTC>"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://x.com/a|<!channel>",
        "https://x.com/a b",
        "https://x.com/a>",
        "https://x.com/<a",
        "https://x.com/a\n",
        "javascript:alert(1)",
        "x.com/alice",
        "",
        "https://x.com/" + "a" * 2000,
    ],
)
def test_unsafe_post_url_falls_back_to_plain_text(url: str) -> None:
    title = question_card(replace(CARD, post_url=url))[0]["text"]["text"]
    assert title == "*Question from @alice (Alice Liddell) on X*"


def test_post_url_ampersand_is_escaped() -> None:
    title = question_card(replace(CARD, post_url="https://x.com/a?b=1&c=2"))[0]["text"]["text"]
    assert "<https://x.com/a?b=1&amp;c=2|@alice>" in title


def test_hostile_customer_fields_are_escaped() -> None:
    view = replace(
        CARD,
        customer_handle="@<!here>",
        customer_name="<@U999|boss>",
        text="<!channel> click <http://evil|bank>",
    )
    blocks = question_card(view)
    title, question = blocks[0]["text"]["text"], blocks[1]["text"]["text"]
    assert title == (f"*Question from <{POST_URL}|@&lt;!here&gt;> (&lt;@U999|boss&gt;) on X*")
    assert question == "> &lt;!channel&gt; click &lt;http://evil|bank&gt;"


def test_empty_question_shows_placeholder() -> None:
    blocks = question_card(replace(CARD, text=" \u200b "))
    validate_blocks(blocks)
    assert blocks[1]["text"]["text"] == "_(no text)_"


def test_long_question_is_truncated_into_the_section() -> None:
    blocks = question_card(replace(CARD, text="word " * 5000))
    validate_blocks(blocks)
    assert blocks[1]["text"]["text"].endswith("…")


def test_question_card_text() -> None:
    text = question_card_text(replace(CARD, text="Where is <my> order & refund?"))
    assert text == "Question from @alice on X: Where is &lt;my&gt; order &amp; refund?"
    validate_text(question_card_text(replace(CARD, text="&" * 10_000)))


# --- proposals ---------------------------------------------------------------------------


def test_proposal_message_layout() -> None:
    blocks = proposal_message(PROPOSAL)
    validate_blocks(blocks)
    head, answer, facts, actions = blocks
    assert head["text"]["text"] == "*Proposal by <@U024BE7LH>*"
    assert answer["text"]["text"] == "> Sorry about that! DM us your order number."
    assert [e["text"] for e in facts["elements"]] == ["1 of 3 votes"]
    vote, send_now = buttons([actions])
    assert vote == {
        "type": "button",
        "text": {"type": "plain_text", "text": "Vote", "emoji": True},
        "action_id": ACTION_VOTE,
        "value": "7",
    }
    assert send_now["action_id"] == ACTION_SEND_NOW and send_now["value"] == "7"
    assert send_now["confirm"]["title"]["text"] == "Send without votes?"


@pytest.mark.parametrize(
    ("state", "badge"),
    [("open", None), ("selected", "🏆 Selected"), ("sent", "📣 Sent"), ("closed", "🔒 Closed")],
)
def test_vote_button_by_state(state: str, badge: str | None) -> None:
    blocks = proposal_message(replace(PROPOSAL, state=state))
    validate_blocks(blocks)
    assert bool(buttons(blocks)) is (state == "open")
    facts = [e["text"] for e in blocks[2]["elements"]]
    assert facts == ["1 of 3 votes"] + ([badge] if badge else [])


@pytest.mark.parametrize(
    "author_id",
    ["<!channel>", "U1", "u024be7lh", "C024BE7LH", "U024BE7LH>", "U024BE7LH\n", "U" + "A" * 40],
)
def test_invalid_author_id_is_plain_text(author_id: str) -> None:
    head = proposal_message(replace(PROPOSAL, author_id=author_id))[0]["text"]["text"]
    assert "<" not in head
    assert head.startswith("*Proposal by ")


def test_enterprise_user_id_is_mentioned() -> None:
    head = proposal_message(replace(PROPOSAL, author_id="W012A3CDE"))[0]["text"]["text"]
    assert head == "*Proposal by <@W012A3CDE>*"


def test_proposal_text() -> None:
    assert proposal_text(replace(PROPOSAL, text="a < b")) == "Proposal by <@U024BE7LH>: a &lt; b"
    validate_text(proposal_text(replace(PROPOSAL, text="<" * 10_000)))


# --- modal -------------------------------------------------------------------------------


def test_propose_modal() -> None:
    view = propose_modal(42, "alice", "Where is <my> order?")
    validate_modal(view)
    assert view["callback_id"] == VIEW_PROPOSE
    assert view["private_metadata"] == "42"
    assert view["title"]["text"] == "Propose an answer"
    assert view["submit"]["text"] == "Propose"
    assert view["close"]["text"] == "Cancel"
    section, answer = view["blocks"]
    assert section["text"]["text"] == "*@alice asked:*\n> Where is &lt;my&gt; order?"
    assert answer["block_id"] == ANSWER_BLOCK
    assert answer["element"] == {
        "type": "plain_text_input",
        "action_id": ANSWER_INPUT,
        "multiline": True,
        "max_length": 3000,
    }
    assert answer["hint"]["text"] == ANSWER_HINT


def test_propose_modal_keeps_draft_raw() -> None:
    view = propose_modal(42, "alice", "q", draft="Hi & <welcome>")
    validate_modal(view)
    assert view["blocks"][1]["element"]["initial_value"] == "Hi & <welcome>"


def test_propose_modal_limits_with_huge_inputs() -> None:
    view = propose_modal(42, "a" * 10_000, "\n" * 10_000 + "q" * 100_000, draft="d" * 10_000)
    validate_modal(view)
    assert len(view["blocks"][1]["element"]["initial_value"]) == 3000


# --- short notices -----------------------------------------------------------------------


def test_ephemeral_text_escapes() -> None:
    assert ephemeral_text("You can't vote for <yourself> & others") == (
        "You can't vote for &lt;yourself&gt; &amp; others"
    )
    validate_text(ephemeral_text(">" * 5000))


def test_thanks_text_names_the_author_and_every_voter() -> None:
    assert thanks_text("U024BE7LH", ["U0BOB", "U0CARA", "U0DAN"], REPLY_URL) == (
        f"🙌 Thanks <@U024BE7LH>! Your answer (3 votes) is live: <{REPLY_URL}|view reply>\n"
        "And thanks to <@U0BOB>, <@U0CARA>, <@U0DAN> for voting."
    )


def test_thanks_text_without_votes_thanks_only_the_author() -> None:
    assert thanks_text("U024BE7LH", [], REPLY_URL) == (
        f"🙌 Thanks <@U024BE7LH>! Your answer (0 votes) is live: <{REPLY_URL}|view reply>"
    )


def test_thanks_text_counts_voters_beyond_the_named() -> None:
    voters = [f"U0VOTER{n:02d}" for n in range(25)]
    text = thanks_text("U024BE7LH", voters, REPLY_URL)
    assert text.count("<@U0VOTER") == 20
    assert text.endswith("<@U0VOTER19> and 5 others for voting.")


def test_thanks_text_with_unsafe_inputs() -> None:
    text = thanks_text("<!here>", ["<!channel>"], "https://x.com/a|<!channel>")
    assert text == (
        "🙌 Thanks &lt;!here&gt;! Your answer (1 vote) is live on X.\n"
        "And thanks to &lt;!channel&gt; for voting."
    )


def test_reply_failed_text() -> None:
    assert reply_failed_text("403 <duplicate> content") == (
        "⚠️ X did not accept the reply: 403 &lt;duplicate&gt; content"
    )
    assert reply_failed_text("  ") == "⚠️ X did not accept the reply: no reason given"
    validate_text(reply_failed_text("<" * 10_000))


# --- the limit checker itself ------------------------------------------------------------


def _section_block(text: str) -> dict[str, Any]:
    """A bare section block."""
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _button_block(text: str = "Go", value: str = "1") -> dict[str, Any]:
    """An actions block with one button."""
    button = {"type": "button", "text": {"type": "plain_text", "text": text}, "value": value}
    return {"type": "actions", "elements": [{**button, "action_id": "a"}]}


@pytest.mark.parametrize(
    "blocks",
    [
        [_section_block("x")] * 51,
        [_section_block("x" * 3001)],
        [_section_block("")],
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "x"}] * 11}],
        [{"type": "context", "elements": [{"type": "mrkdwn", "text": "x" * 2001}]}],
        [_button_block(text="x" * 76)],
        [_button_block(value="1" * 2001)],
        [_section_block("lone \ud800")],
    ],
    ids=[
        "51-blocks",
        "section-3001",
        "section-empty",
        "context-11",
        "context-2001",
        "button-text-76",
        "button-value-2001",
        "lone-surrogate",
    ],
)
def test_validate_blocks_catches_violations(blocks: list[dict[str, Any]]) -> None:
    with pytest.raises((AssertionError, UnicodeEncodeError)):
        validate_blocks(blocks)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("title", {"type": "plain_text", "text": "x" * 25}),
        ("submit", {"type": "plain_text", "text": "x" * 25}),
        ("close", {"type": "mrkdwn", "text": "Cancel"}),
        ("private_metadata", "1" * 3001),
    ],
)
def test_validate_modal_catches_violations(key: str, value: object) -> None:
    view = {**propose_modal(1, "alice", "q"), key: value}
    with pytest.raises(AssertionError):
        validate_modal(view)


def test_validate_modal_catches_long_input() -> None:
    view = propose_modal(1, "alice", "q")
    view["blocks"][1]["element"]["max_length"] = 3001
    with pytest.raises(AssertionError):
        validate_modal(view)


def test_validate_text_limits() -> None:
    validate_text("x" * 3000)
    with pytest.raises(AssertionError):
        validate_text("x" * 3001)
    with pytest.raises(AssertionError):
        validate_text("")


# --- properties --------------------------------------------------------------------------

# Hypothesis leaves surrogates out unless asked; controls and format characters (bidi,
# zero-width) are the interesting ones here, so weight them up too.
any_char = st.characters(exclude_categories=()) | st.characters(categories=["Cs", "Cc", "Cf"])
small_text = st.text(any_char, max_size=50) | st.sampled_from(
    [
        "",
        " ",
        "<!channel>",
        "<@U123>",
        "&amp;",
        "<http://evil|bank>",
        "\u202e",
        "\ud83d",
        "👩\u200d👩\u200d👧",
    ]
)
# Long posts (up to ~120 KB) built by repetition: generating them char by char is too slow.
huge_text = st.builds(
    lambda chunk, size: (chunk * (size // len(chunk) + 1))[:size],
    small_text.filter(bool),
    st.integers(1_000, 120_000),
)
any_text = small_text | huge_text
good_url = st.from_regex(r"https://x\.com/[a-z0-9_&?=/]{1,40}", fullmatch=True)
any_url = good_url | any_text
user_id = st.from_regex(r"[UW][A-Z0-9]{8,10}", fullmatch=True) | small_text
counts = st.integers(0, 10**12)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)

cards = st.builds(
    CardView,
    question_id=counts,
    channel_label=st.just("X") | small_text,
    customer_handle=any_text,
    customer_name=any_text,
    text=any_text,
    post_url=any_url,
    earlier_questions=counts,
    proposal_count=counts,
    state=st.sampled_from(CARD_STATES) | small_text,
    answered_by=st.none() | user_id,
    answer_votes=st.none() | counts,
    reply_url=st.none() | any_url,
    asked_at=st.none() | moments,
)
proposals = st.builds(
    ProposalView,
    proposal_id=counts,
    question_id=counts,
    author_id=user_id,
    text=any_text,
    votes=counts,
    votes_needed=counts,
    state=st.sampled_from(PROPOSAL_STATES) | small_text,
)

MENTION = re.compile(r"<@([UW][A-Z0-9]{2,31})>")
LINK = re.compile(r"<(https?://[!-;=?-{}~]+)\|([^<>]*)>")
DATE = re.compile(r"<!date\^-?\d+\^\{date_short_pretty\} at \{time\}\|[^<>]*>")
ENTITY = re.compile(r"&(?:amp|lt|gt);")


def assert_only_our_markup(text: str, user_ids: set[str | None], urls: set[str | None]) -> None:
    """All <…> markup is a mention, link or date we generated; the rest is escaped text."""
    for match in MENTION.finditer(text):
        assert match.group(1) in user_ids
    for match in LINK.finditer(text):
        assert match.group(1) in {escape(url) for url in urls if url}
    rest = DATE.sub("", LINK.sub("", MENTION.sub("", text)))
    assert "<" not in rest
    # ">" only as a block quote marker at the start of a line.
    body = "\n".join(line.removeprefix(">") for line in rest.split("\n"))
    assert ">" not in body
    assert "&" not in ENTITY.sub("", body)


@settings(max_examples=150, deadline=None)
@given(view=cards)
def test_question_card_respects_limits_and_escapes(view: CardView) -> None:
    blocks = question_card(view)
    validate_blocks(blocks)
    fallback = question_card_text(view)
    validate_text(fallback)
    for text in [*all_text(blocks), fallback]:
        assert_only_our_markup(text, {view.answered_by}, {view.post_url, view.reply_url})
    has_button = bool(buttons(blocks))
    assert has_button is (view.state not in ("answered", "ignored", "closed"))


@settings(max_examples=150, deadline=None)
@given(view=proposals)
def test_proposal_respects_limits_and_escapes(view: ProposalView) -> None:
    blocks = proposal_message(view)
    validate_blocks(blocks)
    fallback = proposal_text(view)
    validate_text(fallback)
    for text in [*all_text(blocks), fallback]:
        assert_only_our_markup(text, {view.author_id}, set())
    assert bool(buttons(blocks)) is (view.state == "open")


@settings(max_examples=100, deadline=None)
@given(question_id=counts, handle=any_text, question=any_text, draft=any_text)
def test_propose_modal_respects_limits(
    question_id: int, handle: str, question: str, draft: str
) -> None:
    view = propose_modal(question_id, handle, question, draft)
    validate_modal(view)
    assert_only_our_markup(view["blocks"][0]["text"]["text"], set(), set())


@settings(deadline=None)
@given(author=user_id, voters=st.lists(user_id, max_size=30), url=any_url, message=any_text)
def test_notices_respect_limits_and_escape(
    author: str, voters: list[str], url: str, message: str
) -> None:
    for text in [thanks_text(author, voters, url), reply_failed_text(message)]:
        validate_text(text)
        assert_only_our_markup(text, {author, *voters}, {url})
    notice = ephemeral_text(message)
    if notice:
        validate_text(notice)
    assert_only_our_markup(notice, set(), set())
