"""Escalation messages and the Answer now modal: Slack's limits and no live markup, whatever the
customer or employees wrote."""

from __future__ import annotations

import re
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.escalation_blocks import (
    ACTION_ANSWER_NOW,
    ACTION_SEND_PROPOSAL,
    EscalationView,
    ProposalLine,
    answer_now_modal,
    escalation_message,
    escalation_text,
    nudge_text,
)
from tests.blockkit import validate_blocks, validate_modal

# Markup we generate ourselves: valid mentions, group pings we were configured with, our links.
OURS = re.compile(r"<(@U[A-Z0-9]+|!subteam\^S[A-Z0-9]+|https://[^|<>\s]+\|[^<>]*)>")


def view(**changes) -> EscalationView:
    base = {
        "question_id": 7,
        "level": 1,
        "customer_handle": "lena",
        "customer_name": "Lena",
        "text": "my card was charged twice",
        "post_url": "https://x.com/lena/status/1",
        "card_url": "https://acme.slack.com/archives/C0Q/p1",
        "waited": timedelta(minutes=61),
        "proposals": (ProposalLine(3, "U0ALICE", "It's a hold; it drops.", 2),),
        "mention_group": "S0ONCALL",
        "state": "escalated",
    }
    return EscalationView(**{**base, **changes})


def buttons(blocks: list[dict]) -> list[str]:
    found = []
    for block in blocks:
        for element in [*block.get("elements", []), block.get("accessory") or {}]:
            if element.get("type") == "button":
                found.append(element["action_id"])
    return found


def test_an_open_escalation_offers_answer_now_and_send() -> None:
    blocks = escalation_message(view())
    text = str(blocks)
    assert "<!subteam^S0ONCALL>" in text and "1 h 1 min" in text and "2 votes" in text
    assert buttons(blocks) == [ACTION_SEND_PROPOSAL, ACTION_ANSWER_NOW]


def test_an_answered_escalation_has_no_buttons_and_says_who() -> None:
    blocks = escalation_message(
        view(state="answered", answered_by="U0ALICE", reply_url="https://x.com/i/web/status/9")
    )
    assert buttons(blocks) == []
    assert "Answered by <@U0ALICE>" in str(blocks)
    solved = escalation_message(view(state="answered", answered_elsewhere_by="Dana <!here>"))
    assert "Dana &lt;!here&gt; in the helpdesk" in str(solved)


def test_the_second_level_mentions_whom_it_was_given() -> None:
    text = str(escalation_message(view(level=2, mention_group="S0SUPER")))
    assert "Still unanswered" in text and "<!subteam^S0SUPER>" in text


def test_a_malformed_group_id_is_not_turned_into_a_ping() -> None:
    assert "subteam" not in str(escalation_message(view(mention_group="<!channel>")))
    assert "subteam" not in nudge_text("lena", timedelta(minutes=16), "@here")


def test_many_proposals_are_listed_up_to_a_limit() -> None:
    many = tuple(ProposalLine(n, "U0BOB", f"answer {n}", n) for n in range(30))
    blocks = escalation_message(view(proposals=many))
    validate_blocks(blocks)
    assert "and 20 more" in str(blocks)


hostile = st.text(
    alphabet=st.characters(codec="utf-8") | st.sampled_from(list("<>&|@!^*_~`\u202e\u200b\x00")),
    max_size=4000,
)


@settings(max_examples=60, deadline=None)
@given(text=hostile, handle=hostile, name=hostile, proposal=hostile, author=hostile)
def test_any_text_stays_within_limits_and_never_forms_markup(
    text: str, handle: str, name: str, proposal: str, author: str
) -> None:
    escalation = view(
        text=text,
        customer_handle=handle,
        customer_name=name,
        proposals=(ProposalLine(1, author, proposal, 0),),
        answered_elsewhere_by=name,
    )
    blocks = escalation_message(escalation)
    validate_blocks(blocks)
    rendered = str(blocks) + escalation_text(escalation) + nudge_text(handle, timedelta(0), None)
    assert not [m for m in re.findall(r"<[^<>]*>", rendered) if not OURS.fullmatch(m)]
    modal = answer_now_modal(7, handle, text)
    validate_modal(modal)
