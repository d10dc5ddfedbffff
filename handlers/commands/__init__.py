"""The /care slash command."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.context import CareContext

HELP = """*crowdcare* relays customer questions from X into this workspace.
• Click *Propose answer* on a question card to suggest a reply (280 characters as X counts them).
• Click *Vote* on a colleague's proposal; the first to reach the vote threshold is sent.
Commands:
`/care help` — this help"""


def register(app: App, care: CareContext) -> None:
    """Listen for /care."""

    @app.command("/care")
    def care_command(ack: Ack, command: dict[str, Any], respond: Respond) -> None:
        """Answer /care subcommands privately."""
        words = (command.get("text") or "").split()
        if not words or words[0].lower() == "help":
            ack(text=HELP, response_type="ephemeral")
            return
        ack(
            text=f"Unknown subcommand `{_plain(words[0])}`. Try `/care help`.",
            response_type="ephemeral",
        )


def _plain(word: str) -> str:
    """A user's word echoed back, unable to form Slack markup."""
    return (
        word[:40].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("`", "'")
    )
