"""The small interfaces the domain depends on, and the plain values that cross them.

Adapters (X via tweepy, Slack via slack_sdk) implement these; the workflow never imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True)
class Author:
    """Who wrote a post on a social channel."""

    external_id: str
    handle: str
    name: str


@dataclass(frozen=True)
class IncomingPost:
    """A post that mentions the brand, as the channel reported it."""

    external_id: str
    text: str
    author: Author
    conversation_id: str | None
    created_at: datetime
    url: str
    is_repost: bool = False


@dataclass(frozen=True)
class MentionPage:
    """One page of mentions, newest first, with the channel's paging cursors."""

    posts: list[IncomingPost]
    newest_id: str | None
    next_token: str | None


@dataclass(frozen=True)
class PostedReply:
    """A public reply the channel accepted."""

    external_id: str
    url: str


class ChannelError(Exception):
    """A social channel refused or failed a call."""

    retryable: bool = False


class RateLimited(ChannelError):
    """The channel's rate limit is spent until ``reset_at`` (aware UTC)."""

    retryable = True

    def __init__(self, message: str, reset_at: datetime | None) -> None:
        super().__init__(message)
        self.reset_at = reset_at


class TransientChannelError(ChannelError):
    """5xx, timeouts, connection errors: worth retrying later."""

    retryable = True


class DuplicateContent(ChannelError):
    """The channel refused the text as a duplicate of an earlier post."""


class PermanentChannelError(ChannelError):
    """Any other refusal (4xx): retrying the same call will not help."""


@dataclass(frozen=True)
class Quota:
    """How many requests an endpoint still allows, as the channel's last answer said."""

    endpoint: str  # mentions | post | timeline
    limit: int
    remaining: int
    reset_at: datetime


class SocialChannel(Protocol):
    """A public channel customers ask on (X today)."""

    name: str

    def brand_user_id(self) -> str:
        """The brand account's own user id on this channel."""
        ...

    def fetch_mentions(self, since_id: str | None, pagination_token: str | None) -> MentionPage:
        """One page of posts mentioning the brand, newer than ``since_id``."""
        ...

    def post_reply(self, text: str, in_reply_to: str) -> PostedReply:
        """Publish ``text`` as a public reply to post ``in_reply_to``."""
        ...

    def find_reply(self, in_reply_to: str) -> PostedReply | None:
        """The brand's own reply to ``in_reply_to``, if one exists (for reconciliation)."""
        ...

    def quotas(self) -> list[Quota]:
        """The request quotas the channel's latest answers reported (empty if none)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
