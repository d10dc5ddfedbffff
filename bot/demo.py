"""`python -m bot demo`: the whole loop on this machine, with no accounts.

It starts the stand-in Slack and X servers the tests use, serves the real app on a loopback port,
feeds it customer questions, plays employees through Slack's signed-request path, and prints
what happens. Needs the repository checkout (the stand-ins live in tests/standins).
"""

from __future__ import annotations

import html
import logging
import sys
import tempfile
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

CUSTOMERS = [
    ("maria_k", "Maria K", "@AcmeHelp my order #4411 still hasn't arrived after 9 days. Any news?"),
    ("tom_b", "Tom B", "@AcmeHelp do your stores take old phones for recycling? 📱♻️"),
    (
        "mallory",
        "Mallory",
        "<!channel> @AcmeHelp URGENT <http://evil.example|reset your password here>",
    ),
]
EMPLOYEES = {
    "U0ALICE": "Alice",
    "U0BOB": "Bob",
    "U0CARA": "Cara",
    "U0DAN": "Dan",
    "U0REP": "Rita (support rep)",
}
ESCALATION_CHANNEL = "C0ESCALATE"
VOTES_TO_SELECT = 2


class Transcript:
    """Numbered steps and indented details on stdout."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.step = 0

    def title(self, text: str) -> None:
        if not self.quiet:
            self.step += 1
            print(f"\n{self.step}. {text}", flush=True)

    def say(self, text: str, indent: int = 3) -> None:
        if not self.quiet:
            print(textwrap.indent(text, " " * indent), flush=True)

    def always(self, text: str) -> None:
        print(text, flush=True)


def run_demo(quiet: bool = False) -> int:
    """Run the demo; 0 when every step did what it should."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests.standins.fake_slack import FakeSlack
        from tests.standins.fake_x import FakeX
        from tests.standins.stack import Stack
    except ImportError:
        print(
            "The demo needs the crowdcare repository checkout (its stand-in servers live in "
            "tests/standins). Run it from a clone of the repository.",
            file=sys.stderr,
        )
        return 1
    # The transcript is the output; keep routine log lines out of it.
    for name in ("", "alembic", "apscheduler"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from tests.dbhelpers import Clock

    out = Transcript(quiet)
    started = time.monotonic()
    # The demo moves this clock to show what happens after an hour, without waiting one.
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    with tempfile.TemporaryDirectory() as tmp, FakeSlack() as slack, FakeX() as x:
        for user_id, name in EMPLOYEES.items():
            slack.add_user(user_id, name.lower(), name)
        stack = Stack(
            slack,
            x,
            f"sqlite:///{tmp}/demo.db",
            overrides={
                "CARE_VOTES_TO_SELECT": str(VOTES_TO_SELECT),
                "X_POLL_SECONDS": "0.5",
                "CARE_OUTBOX_SECONDS": "0.3",
                "CARE_SWEEP_SECONDS": "0.2",
                "CARE_ESCALATION_CHANNEL": ESCALATION_CHANNEL,
                "CARE_ONCALL_GROUP": "S0ONCALL",
                "CARE_ADMINS": "U0REP",  # reps answer escalations: moderators at least
            },
            clock=clock,
        )
        out.always("crowdcare demo: the whole loop on this machine, no accounts needed.")
        out.say(
            f"Stand-in Slack Web API: {slack.api_url}\n"
            f"Stand-in X API:         {x.base_url}\n"
            f"Database:               SQLite in a temporary folder\n"
            f"A proposal is sent once it has {VOTES_TO_SELECT} votes.",
            indent=2,
        )
        stack.start()
        try:
            _play(stack, out)
            _escalate(stack, out, clock)
            _numbers(stack, out, clock)
        finally:
            stack.stop()
        replies = x.replies()
        out.always(f"\nThe stand-in X received {len(replies)} public replies:")
        for reply in replies:
            target = reply.referenced[0][1] if reply.referenced else "?"
            out.always(f"  ↳ in reply to post {target}: {reply.text}")
    out.always(
        f"\nDone in {time.monotonic() - started:.1f} s. To connect a real workspace, "
        "see README.md → 'Connect a real Slack app'."
    )
    return 0 if len(replies) == 3 else 1


def _play(stack: Any, out: Transcript) -> None:
    from tests.scenario import (
        card_for,
        click_propose,
        current,
        ephemeral_to,
        opened_form,
        propose,
        submit_answer,
        vote,
    )
    from tests.standins.stack import wait_until

    out.title("Customers ask @AcmeHelp on X")
    post_ids = {}
    for handle, name, text in CUSTOMERS:
        post_ids[handle] = stack.x.add_mention(text, author_handle=handle, author_name=name)
        out.say(f"@{handle} ({name}): {text}")

    out.title("crowdcare polls X and posts a card per question in Slack")
    maria = card_for(stack, "4411", timeout=20)
    tom = card_for(stack, "recycling", timeout=20)
    mallory = card_for(stack, "URGENT", timeout=20)
    out.say(render(maria))
    out.say(
        "Mallory's card shows her text literally; it pings no one and links nowhere:\n"
        + textwrap.indent(_quoted_line(mallory), "  ")
    )

    out.title("Alice proposes an answer to Maria")
    click_propose(stack, "U0ALICE", maria)
    form = opened_form(stack)
    out.say(f"Alice clicks [Propose answer]; a modal opens: “{form['title']['text']}”.")
    too_long = ("Hi Maria, so sorry! " * 16).strip()
    refused = submit_answer(stack, "U0ALICE", form, too_long).json()
    out.say(f"Her first draft is refused inside the modal:\n  “{refused['errors']['answer']}”")
    answer = "So sorry, Maria! Please DM us your order number and we'll chase the courier today."
    proposal = propose(stack, "U0ALICE", maria, answer)
    out.say(f"She shortens it; the proposal appears in the card's thread:\n{render(proposal)}")

    out.title("Colleagues vote")
    vote(stack, "U0ALICE", proposal)
    notice = ephemeral_to(stack, "U0ALICE", "own proposal")["text"]
    out.say(f"Alice votes for herself. Only she sees: “{html.unescape(notice)}”")
    vote(stack, "U0BOB", proposal)
    wait_until(lambda: f"1 of {VOTES_TO_SELECT}" in str(current(stack, proposal)["blocks"]))
    vote(stack, "U0BOB", proposal)
    notice = ephemeral_to(stack, "U0BOB", "already voted")["text"]
    out.say(f"Bob votes (1 of {VOTES_TO_SELECT}), then again. He sees: “{html.unescape(notice)}”")
    vote(stack, "U0CARA", proposal)
    out.say(f"Cara votes: {VOTES_TO_SELECT} of {VOTES_TO_SELECT}. The proposal is selected.")

    out.title("crowdcare replies to Maria on X, once")
    reply = stack.x.wait_for_replies(1)[0]
    out.say(f"X received a reply to post {post_ids['maria_k']}: “{reply.text}”")
    answered = wait_until(lambda: _answered(stack, maria), 10, "the card to show the answer")
    out.say("Maria's card now reads:\n" + render(answered))

    out.title("Meanwhile Dan answers Tom, and Bob and Cara agree")
    dans = propose(
        stack,
        "U0DAN",
        tom,
        "Yes! Every store takes old phones; we wipe and recycle them for free. ♻️",
    )
    vote(stack, "U0BOB", dans)
    vote(stack, "U0CARA", dans)
    stack.x.wait_for_replies(2)
    wait_until(lambda: _answered(stack, tom), 10, "Tom's card to show the answer")
    out.say("Sent. Mallory's post stays unanswered: nobody proposed a reply to it.")


def _escalate(stack: Any, out: Transcript, clock: Any) -> None:
    from bot.escalation_blocks import ACTION_ANSWER_NOW, VIEW_ANSWER_NOW
    from bot.slack_blocks import ANSWER_BLOCK, ANSWER_INPUT
    from tests.scenario import button_value
    from tests.standins.stack import wait_until

    out.title("An hour passes with no answer for Mallory (the demo moves the clock)")
    clock.advance(minutes=61)
    message = wait_until(
        lambda: stack.slack.messages(ESCALATION_CHANNEL), 10, "the escalation message"
    )[0]
    out.say("crowdcare escalates to the reps' channel, mentioning the on-call group:")
    out.say(render(message))
    out.title("Rita, a support rep, clicks [Answer now]")
    forms_before = len(stack.slack.calls_to("views.open"))
    stack.client.block_action(
        "U0REP",
        ACTION_ANSWER_NOW,
        button_value(message, ACTION_ANSWER_NOW),
        channel_id=ESCALATION_CHANNEL,
        message_ts=message["ts"],
    )
    form = stack.slack.wait_for("views.open", count=forms_before + 1)[-1].params["view"]
    answer = "We never ask for passwords by link. Please don't click it; we've reported the post."
    stack.client.view_submission(
        "U0REP", VIEW_ANSWER_NOW, form["private_metadata"], {ANSWER_BLOCK: {ANSWER_INPUT: answer}}
    )
    stack.x.wait_for_replies(3)
    out.say(f"Her answer goes out at once, no vote needed: “{answer}”")


def _numbers(stack: Any, out: Transcript, clock: Any) -> None:
    from tests.standins.stack import wait_until

    out.title("The support manager checks the numbers with /care")
    wait_until(lambda: _stats_count_answered(stack, 3), 10, "three answered questions in stats")
    clock.advance(seconds=5)  # she looks a moment after the last reply went out
    for user, text in (("U0REP", "stats"), ("U0REP", "leaderboard"), ("U0BOB", "config votes 1")):
        answer = stack.client.command(user, text).json()["text"]
        who = EMPLOYEES[user].split(" ")[0]
        out.say(f"{who}: /care {text}\n" + textwrap.indent(_display(answer), "  │ "))


def _stats_count_answered(stack: Any, count: int) -> bool:
    text = str(stack.client.command("U0REP", "stats").json()["text"])
    return f"answered *{count}*" in text and "0 pending, 0 sending" in text


def _answered(stack: Any, card: dict[str, Any]) -> dict[str, Any] | None:
    from tests.scenario import current

    message: dict[str, Any] = current(stack, card)
    return message if "Answered" in str(message.get("blocks")) else None


def render(message: dict[str, Any]) -> str:
    """A Slack message as a person sees it, roughly: text with markup resolved, buttons in []."""
    lines: list[str] = []
    for block in message.get("blocks") or []:
        if block.get("type") in ("section", "header"):
            lines.append(_display(block.get("text", {}).get("text", "")))
        elif block.get("type") == "context":
            lines.append("  ".join(_display(e.get("text", "")) for e in block.get("elements", [])))
        elif block.get("type") == "actions":
            labels = [f"[{e['text']['text']}]" for e in block.get("elements", []) if "text" in e]
            lines.append(" ".join(labels))
    return textwrap.indent("\n".join(line for line in lines if line), "  │ ")


def _quoted_line(message: dict[str, Any]) -> str:
    for block in message.get("blocks") or []:
        text = block.get("text", {}).get("text", "")
        if text.startswith(">"):
            return _display(text)
    return ""


def _display(mrkdwn: str) -> str:
    """Resolve our own markup (<url|label>, <@U…>, <!date…|fallback>) the way Slack shows it."""
    import re

    text = re.sub(r"<@(U[A-Z0-9]+)>", lambda m: "@" + EMPLOYEES.get(m.group(1), m.group(1)), mrkdwn)
    text = re.sub(r"<!date\^[^|>]*\|([^>]*)>", r"\1", text)
    text = re.sub(r"<!subteam\^([A-Z0-9]+)>", r"@oncall", text)
    text = re.sub(r"<([^|>]+)\|([^>]+)>", r"\2 (\1)", text)
    return html.unescape(text)
