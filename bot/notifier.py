"""What the workflow needs from Slack, as a small protocol (the adapter is bot.slack_notifier)."""

from __future__ import annotations

from typing import Any, Protocol

from bot.slack_blocks import CardView, ProposalView


class NotifierError(Exception):
    """Slack refused or failed a call; ``error`` is Slack's error code when it answered."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class Notifier(Protocol):
    def post_card(self, channel: str, card: CardView) -> str:
        """Post a question card; return its message ts."""
        ...

    def find_card(self, channel: str, question_id: int) -> str | None:
        """The ts of an already posted card for this question, if any (for reconciliation)."""
        ...

    def update_card(self, channel: str, ts: str, card: CardView) -> None:
        """Re-render a posted card."""
        ...

    def post_proposal(self, channel: str, thread_ts: str, proposal: ProposalView) -> str:
        """Post a proposal in the card's thread; return its ts."""
        ...

    def update_proposal(self, channel: str, ts: str, proposal: ProposalView) -> None:
        """Re-render a posted proposal (vote count, state)."""
        ...

    def post_in_thread(self, channel: str, thread_ts: str, text: str) -> None:
        """A plain mrkdwn message in a card's thread (text already safe)."""
        ...

    def tell(self, channel: str, user: str, text: str) -> None:
        """A message only ``user`` sees (text already safe)."""
        ...

    def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
        tag: tuple[str, dict[str, Any]] | None = None,
    ) -> str:
        """Post any message (text already safe); ``tag`` is (event_type, payload) metadata."""
        ...

    def find_message(self, channel: str, event_type: str, payload: dict[str, Any]) -> str | None:
        """The ts of a recent top-level message tagged with this event type and payload."""
        ...

    def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """Replace a message's text and blocks."""
        ...

    def permalink(self, channel: str, ts: str) -> str | None:
        """A link to a message, or None when Slack has none."""
        ...

    def upload_file(
        self, user_id: str, filename: str, content: bytes, *, title: str, comment: str
    ) -> None:
        """Upload a file into the direct message with ``user_id`` (``comment`` already safe)."""
        ...
