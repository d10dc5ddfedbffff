"""End to end: whatever a customer posts is stored, shown escaped, and blocks nothing behind it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from bot.intake import MAX_NAME, MAX_QUESTION_TEXT, REPLACEMENT
from storage.models import AuditEvent, Customer, Question
from tests.blockkit import validate_blocks
from tests.scenario import card_for, cards, rendered
from tests.standins.stack import Stack, wait_until

pytestmark = pytest.mark.e2e

HOSTILE = {
    "mrkdwn": "<!channel> <!here> <@U0BOB> <#C0QUESTIONS> <http://evil.example|your bank> *b* ~s~",
    "invisible": "zero\u200bwidth \u202eevil\u202c bidi \u2066isolate\u2069 and \ufeffbom",
    "control": "null\x00byte and \x07bell and \x1b[31mansi",
    "surrogate": "a lone \ud800 surrogate, as a JSON escape can carry",
    "emoji": "👩🏽‍💻🏳️‍🌈🇩🇪 family 👨‍👩‍👧‍👦 and keycap 1️⃣" * 40,
    "entities": "&amp; &lt;!channel&gt; & < > &#x3C;",
}
LIVE_MARKUP = re.compile(r"<([^<>]*)>")
OURS = re.compile(r"!date\^\d+\^[^|]*\|[^>]*|https://x\.com/mallory/status/\d+(?:\|[^>]*)?")


def texts_of(stack: Stack) -> dict[str, str]:
    with stack.app.sessions() as session:
        return {q.external_id: q.text for q in session.scalars(select(Question))}


def card_texts(card: dict[str, Any]) -> str:
    return rendered(card)


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_text_is_stored_shown_escaped_and_blocks_nothing(stack: Stack, kind: str) -> None:
    text = f"@AcmeHelp {kind}: {HOSTILE[kind]}"
    hostile_id = stack.x.add_mention(text, author_handle="mallory", author_name=text[:60])
    after_id = stack.x.add_mention("@AcmeHelp an ordinary question after it")

    card_for(stack, "ordinary question after it")  # the post behind it is not held up
    card = card_for(stack, f"{kind}:")

    validate_blocks(card["blocks"])
    shown = card_texts(card)
    # Only crowdcare's own markup is live: the customer's can neither ping nor link.
    live = {m.group(1) for m in LIVE_MARKUP.finditer(shown)}
    assert all(OURS.fullmatch(m) for m in live), live  # our date and link to the post only
    stored = texts_of(stack)
    expected = text.replace("\x00", REPLACEMENT).replace("\ud800", REPLACEMENT)
    assert stored[hostile_id] == expected
    assert after_id in stored
    assert len(cards(stack)) == 2  # one card each, no more


def test_a_100_kb_post_is_cut_to_the_documented_cap_and_the_audit_says_so(stack: Stack) -> None:
    text = "@AcmeHelp huge " + "x" * 100_000
    post_id = stack.x.add_mention(text, author_name="N" * 500)

    card = card_for(stack, "huge")

    validate_blocks(card["blocks"])
    assert len(texts_of(stack)[post_id]) == MAX_QUESTION_TEXT
    with stack.app.sessions() as session:
        [event] = session.scalars(
            select(AuditEvent).where(AuditEvent.action == "question.received")
        ).all()
        [customer] = session.scalars(select(Customer)).all()
    assert event.detail["text_cut_from"] == len(text)
    assert customer.name == "N" * MAX_NAME


def test_the_cursor_moves_past_a_hostile_post(stack: Stack) -> None:
    stack.x.add_mention("@AcmeHelp \x00\ud800" * 50)
    stack.x.add_mention("@AcmeHelp next one")
    card_for(stack, "next one")
    wait_until(lambda: len(texts_of(stack)) == 2, message="both stored")
