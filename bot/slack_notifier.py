"""The Slack side of the workflow: Block Kit rendered by bot.slack_blocks, sent with slack_sdk."""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
    ServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.notifier import NotifierError
from bot.pacing import ChannelPacer
from bot.slack_blocks import (
    CardView,
    ProposalView,
    proposal_message,
    proposal_text,
    question_card,
    question_card_text,
)

CARD_EVENT = "crowdcare_question"
PACED_METHOD = "chat.postMessage"  # Slack's limit: about one message per second per channel

log = logging.getLogger(__name__)


def make_web_client(
    token: str | None, base_url: str, timeout: int = 10, *, pacer: ChannelPacer | None = None
) -> WebClient:
    """A WebClient that waits out 429s (Retry-After) and retries 5xx and dropped connections.

    With a ``pacer``, a 429 on chat.postMessage also pushes that channel's next slot back.
    """
    rate_limits = (
        RateLimitErrorRetryHandler(max_retry_count=5)
        if pacer is None
        else PacedRateLimitRetryHandler(pacer, max_retry_count=5)
    )
    return WebClient(
        token=token,
        base_url=base_url,
        timeout=timeout,
        retry_handlers=[
            rate_limits,
            ServerErrorRetryHandler(max_retry_count=2),
            ConnectionErrorRetryHandler(max_retry_count=2),
        ],
    )


class PacedRateLimitRetryHandler(RateLimitErrorRetryHandler):
    """Retries a rate-limited chat.postMessage in the channel's next slot after Retry-After."""

    def __init__(self, pacer: ChannelPacer, max_retry_count: int = 5) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.pacer = pacer

    def prepare_for_next_attempt(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> None:
        channel = posted_channel(request)
        if response is None or channel is None:
            super().prepare_for_next_attempt(
                state=state, request=request, response=response, error=error
            )
            return
        delay = retry_after(response)
        log.warning("Slack rate-limited posts to %s; retrying after %ss", channel, delay)
        state.next_attempt_requested = True
        self.pacer.defer(channel, delay)
        self.pacer.wait(channel)
        state.increment_current_attempt()


def posted_channel(request: HttpRequest) -> str | None:
    """The channel of a chat.postMessage request (JSON or form body), else None."""
    if not request.url.endswith("/" + PACED_METHOD) or not request.data:
        return None
    try:
        text = request.data.decode("utf-8")
        params = json.loads(text) if text.startswith("{") else parse_qs(text)
    except ValueError:
        return None
    channel = params.get("channel") if isinstance(params, dict) else None
    if isinstance(channel, list):
        channel = channel[0] if channel else None
    return channel if isinstance(channel, str) and channel else None


def retry_after(response: HttpResponse) -> float:
    """Seconds from the Retry-After header (1 when it is missing or unreadable)."""
    for name, values in response.headers.items():
        if name.lower() == "retry-after" and values:
            try:
                return max(float(values[0]), 0.0)
            except ValueError:
                break
    return 1.0


class SlackNotifier:
    """Implements bot.notifier.Notifier with slack_sdk."""

    def __init__(self, client: WebClient, pacer: ChannelPacer | None = None) -> None:
        self.client = client
        # Spaces posts per channel; share it with make_web_client's so 429s push slots back.
        self.pacer = pacer

    def post_card(self, channel: str, card: CardView) -> str:
        response = self._post(
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
        response = self._post(
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
        self._post(
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
        response = self._post(channel=channel, text=text, unfurl_links=False, **extra)
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

    def upload_file(
        self, user_id: str, filename: str, content: bytes, *, title: str, comment: str
    ) -> None:
        opened = self._call(self.client.conversations_open, users=user_id)
        self._call(
            self.client.files_upload_v2,
            channel=str(opened["channel"]["id"]),
            filename=filename,
            content=content,
            title=title,
            initial_comment=comment,
        )

    def _post(self, **kwargs: Any) -> Any:
        """chat.postMessage in the channel's next slot."""
        if self.pacer is not None:
            self.pacer.wait(str(kwargs["channel"]))
        return self._call(self.client.chat_postMessage, **kwargs)

    @staticmethod
    def _call(method: Any, **kwargs: Any) -> Any:
        try:
            return method(**kwargs)
        except SlackApiError as exc:
            error = exc.response.get("error")
            raise NotifierError(f"Slack answered {error}", str(error)) from exc
        except (SlackClientError, OSError) as exc:
            raise NotifierError(f"Slack unreachable: {type(exc).__name__}") from exc
