"""The Slack side of the workflow: Block Kit rendered by bot.slack_blocks, sent with slack_sdk."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)

from bot.notifier import NotifierError
from bot.slack_blocks import (
    CardView,
    ProposalView,
    proposal_message,
    proposal_text,
    question_card,
    question_card_text,
)

CARD_EVENT = "crowdcare_question"


def make_web_client(token: str | None, base_url: str, timeout: int = 10) -> WebClient:
    """A WebClient that waits out 429s (Retry-After) and retries 5xx and dropped connections."""
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            RateLimitErrorRetryHandler(max_retry_count=5),
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


class SlackNotifier:
    """Implements bot.notifier.Notifier with slack_sdk."""

    def __init__(self, client: WebClient) -> None:
        self.client = client

    def post_card(self, channel: str, card: CardView) -> str:
        response = self._call(
            self.client.chat_postMessage,
            channel=channel,
            text=question_card_text(card),
            blocks=question_card(card),
            metadata={"event_type": CARD_EVENT, "event_payload": {"question_id": card.question_id}},
            unfurl_links=False,
            unfurl_media=False,
        )
        return str(response["ts"])

    def find_card(self, channel: str, question_id: int) -> str | None:
        return self.find_message(channel, CARD_EVENT, {"question_id": question_id})

    def update_card(self, channel: str, ts: str, card: CardView) -> None:
        self._call(
            self.client.chat_update,
            channel=channel,
            ts=ts,
            text=question_card_text(card),
            blocks=question_card(card),
        )

    def post_proposal(self, channel: str, thread_ts: str, proposal: ProposalView) -> str:
        response = self._call(
            self.client.chat_postMessage,
            channel=channel,
            thread_ts=thread_ts,
            text=proposal_text(proposal),
            blocks=proposal_message(proposal),
            unfurl_links=False,
        )
        return str(response["ts"])

    def update_proposal(self, channel: str, ts: str, proposal: ProposalView) -> None:
        self._call(
            self.client.chat_update,
            channel=channel,
            ts=ts,
            text=proposal_text(proposal),
            blocks=proposal_message(proposal),
        )

    def post_in_thread(self, channel: str, thread_ts: str, text: str) -> None:
        self._call(
            self.client.chat_postMessage,
            channel=channel,
            thread_ts=thread_ts,
            text=text,
            unfurl_links=False,
        )

    def tell(self, channel: str, user: str, text: str) -> None:
        self._call(self.client.chat_postEphemeral, channel=channel, user=user, text=text)

    def post_message(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        *,
        thread_ts: str | None = None,
        tag: tuple[str, dict[str, Any]] | None = None,
    ) -> str:
        extra: dict[str, Any] = {}
        if blocks is not None:
            extra["blocks"] = blocks
        if thread_ts is not None:
            extra["thread_ts"] = thread_ts
        if tag is not None:
            extra["metadata"] = {"event_type": tag[0], "event_payload": tag[1]}
        response = self._call(
            self.client.chat_postMessage, channel=channel, text=text, unfurl_links=False, **extra
        )
        return str(response["ts"])

    def find_message(self, channel: str, event_type: str, payload: dict[str, Any]) -> str | None:
        response = self._call(
            self.client.conversations_history,
            channel=channel,
            limit=200,
            include_all_metadata=True,
        )
        for message in response.get("messages") or []:
            metadata = message.get("metadata") or {}
            found = metadata.get("event_payload") or {}
            if metadata.get("event_type") == event_type and all(
                found.get(k) == v for k, v in payload.items()
            ):
                return str(message["ts"])
        return None

    def update_message(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        extra: dict[str, Any] = {} if blocks is None else {"blocks": blocks}
        self._call(self.client.chat_update, channel=channel, ts=ts, text=text, **extra)

    def permalink(self, channel: str, ts: str) -> str | None:
        try:
            response = self._call(self.client.chat_getPermalink, channel=channel, message_ts=ts)
        except NotifierError:
            return None
        link = response.get("permalink")
        return str(link) if link else None

    @staticmethod
    def _call(method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            raise NotifierError(f"Slack answered {exc.response.get('error')}") from exc
        except (SlackClientError, OSError) as exc:
            raise NotifierError(f"Slack unreachable: {type(exc).__name__}") from exc
