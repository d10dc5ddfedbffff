"""The X (Twitter) API v2 adapter: reads the brand's mentions and posts public replies.

Built on ``tweepy.Client``. Two things about tweepy shape this module:

* tweepy hard-codes ``https://api.twitter.com`` as the host and passes no timeout. We swap its
  ``requests`` session for :class:`_RebasedSession`, which rewrites that prefix to the configured
  API base *before* ``requests`` prepares the request. OAuth 1.0a signing happens while preparing,
  so the signature covers the URL we really call.
* tweepy logs every request at DEBUG level including ``Authorization: Bearer <token>``, and
  requests-oauthlib / oauthlib log the OAuth header and the access token. A logging filter on
  those loggers redacts header values and the configured credentials before any handler sees them.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import requests
import tweepy

from bot.ports import (
    Author,
    DuplicateContent,
    IncomingPost,
    MentionPage,
    PermanentChannelError,
    PostedReply,
    Quota,
    RateLimited,
    TransientChannelError,
)

DEFAULT_API_URL = "https://api.x.com"
TWEEPY_HOST = "https://api.twitter.com"  # what tweepy.BaseClient.request always calls
PAGE_SIZE = 100
FIND_REPLY_MAX_PAGES = 5

_TWEET_FIELDS = ["author_id", "conversation_id", "created_at", "referenced_tweets"]
_USER_FIELDS = ["username", "name"]

# Loggers that may print credentials at DEBUG level (logger filters only see records logged
# directly on that logger, so each one is listed).
CREDENTIAL_LOGGERS = (
    "tweepy.client",
    "requests_oauthlib.oauth1_auth",
    "oauthlib.oauth1.rfc5849",
)
REDACTED = "[REDACTED]"
_MIN_SECRET_LENGTH = 4
_BEARER_VALUE = re.compile(r"(Bearer)\s+[A-Za-z0-9\-._~+/%=]+", re.IGNORECASE)
_OAUTH_VALUE = re.compile(r'(OAuth)\s+(?:[A-Za-z0-9_]+="[^"]*"(?:,\s*)?)+')


class _CredentialRedactor(logging.Filter):
    """Rewrites log records so Authorization values and known credentials never reach handlers."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add_secrets(self, secrets: Sequence[str]) -> None:
        with self._lock:
            for secret in secrets:
                if len(secret) >= _MIN_SECRET_LENGTH:
                    self._secrets.add(secret)
                    self._secrets.add(quote(secret, safe=""))

    def redact(self, text: str) -> str:
        text = _BEARER_VALUE.sub(rf"\1 {REDACTED}", text)
        text = _OAUTH_VALUE.sub(rf"\1 {REDACTED}", text)
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = f"{record.msg!s} (unformattable arguments dropped)"
        redacted = self.redact(message)
        if redacted != message or record.args:
            record.msg = redacted
            record.args = None
        return True


_REDACTOR = _CredentialRedactor()


def _protect_logs(secrets: Sequence[str]) -> None:
    """Install the redacting filter (idempotent) and teach it ``secrets``."""
    _REDACTOR.add_secrets(secrets)
    for name in CREDENTIAL_LOGGERS:
        logging.getLogger(name).addFilter(_REDACTOR)  # addFilter ignores a filter already present


class _RebasedSession(requests.Session):
    """A session that sends tweepy's hard-coded host to ``api_url`` and applies a timeout."""

    def __init__(
        self, api_url: str, timeout: float, on_response: Callable[[requests.Response], None]
    ) -> None:
        super().__init__()
        self._api_url = api_url
        self._timeout = timeout
        self._on_response = on_response

    def request(
        self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any
    ) -> requests.Response:
        if isinstance(url, str) and url.startswith(TWEEPY_HOST + "/"):
            url = self._api_url + url[len(TWEEPY_HOST) :]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        response = super().request(method, url, *args, **kwargs)
        self._on_response(response)
        return response


class XChannel:
    """:class:`bot.ports.SocialChannel` for X, over the API v2 with tweepy."""

    name = "x"

    def __init__(
        self,
        *,
        api_url: str,
        bearer_token: str | None,
        api_key: str | None,
        api_secret: str | None,
        access_token: str | None,
        access_token_secret: str | None,
        user_id: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._bearer_token = bearer_token or None
        user_credentials = (api_key, api_secret, access_token, access_token_secret)
        self._has_user_auth = all(user_credentials)
        self._user_id = user_id or None
        self._user_id_lock = threading.Lock()
        self._secrets = [s for s in (bearer_token, *user_credentials) if s]
        _protect_logs(self._secrets)

        self._client: Any = tweepy.Client(
            bearer_token=self._bearer_token,
            consumer_key=api_key,
            consumer_secret=api_secret,
            access_token=access_token,
            access_token_secret=access_token_secret,
            return_type=dict,
        )
        self._client.session.close()
        self._quotas: dict[str, Quota] = {}
        self._quota_lock = threading.Lock()
        self._client.session = _RebasedSession(
            (api_url or DEFAULT_API_URL).rstrip("/"), timeout, self._note_quota
        )

    def close(self) -> None:
        """Release pooled connections."""
        self._client.session.close()

    def quotas(self) -> list[Quota]:
        with self._quota_lock:
            return sorted(self._quotas.values(), key=lambda quota: quota.endpoint)

    def _note_quota(self, response: requests.Response) -> None:
        """Remember the x-rate-limit-* headers X sends with every answer."""
        quota = _quota_of(response)
        if quota is not None:
            with self._quota_lock:
                self._quotas[quota.endpoint] = quota

    # -- SocialChannel -----------------------------------------------------------------------

    def brand_user_id(self) -> str:
        with self._user_id_lock:
            if self._user_id is None:
                self._require_user_auth("look up the brand account (set X_USER_ID to skip this)")
                with self._translate_errors("looking up the brand account"):
                    body = self._client.get_me(user_auth=True)
                self._raise_for_missing_data(body, "looking up the brand account")
                self._user_id = str(body["data"]["id"])
            return self._user_id

    def fetch_mentions(self, since_id: str | None, pagination_token: str | None) -> MentionPage:
        user_id = self.brand_user_id()
        params: dict[str, Any] = {
            "max_results": PAGE_SIZE,
            "expansions": ["author_id"],
            "tweet_fields": _TWEET_FIELDS,
            "user_fields": _USER_FIELDS,
        }
        if since_id:
            params["since_id"] = since_id
        if pagination_token:
            params["pagination_token"] = pagination_token
        with self._translate_errors("fetching mentions"):
            body = self._client.get_users_mentions(
                user_id, user_auth=self._read_with_user_auth("fetch mentions"), **params
            )
        self._raise_for_missing_data(body, "fetching mentions")
        users = {str(u.get("id")): u for u in body.get("includes", {}).get("users", [])}
        posts = [_to_post(tweet, users) for tweet in body.get("data") or []]
        meta = body.get("meta") or {}
        return MentionPage(
            posts=posts, newest_id=meta.get("newest_id"), next_token=meta.get("next_token")
        )

    def post_reply(self, text: str, in_reply_to: str) -> PostedReply:
        self._require_user_auth("post replies")
        with self._translate_errors("posting a reply"):
            body = self._client.create_tweet(
                text=text, in_reply_to_tweet_id=in_reply_to, user_auth=True
            )
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict) or not data.get("id"):
            # X accepted the call; the reply may exist. Retry only after find_reply().
            raise TransientChannelError("X accepted the reply but did not return its id")
        return _posted(str(data["id"]))

    def find_reply(self, in_reply_to: str) -> PostedReply | None:
        user_id = self.brand_user_id()
        pagination_token: str | None = None
        for _ in range(FIND_REPLY_MAX_PAGES):
            # A reply is newer than the post it answers, so since_id bounds the scan.
            params: dict[str, Any] = {
                "max_results": PAGE_SIZE,
                "since_id": in_reply_to,
                "exclude": ["retweets"],
                "tweet_fields": ["referenced_tweets"],
            }
            if pagination_token:
                params["pagination_token"] = pagination_token
            with self._translate_errors("looking for an earlier reply"):
                body = self._client.get_users_tweets(
                    user_id, user_auth=self._read_with_user_auth("read the timeline"), **params
                )
            self._raise_for_missing_data(body, "looking for an earlier reply")
            for tweet in body.get("data") or []:
                for ref in tweet.get("referenced_tweets") or []:
                    if ref.get("type") == "replied_to" and str(ref.get("id")) == in_reply_to:
                        return _posted(str(tweet["id"]))
            pagination_token = (body.get("meta") or {}).get("next_token")
            if not pagination_token:
                break
        return None

    # -- helpers -----------------------------------------------------------------------------

    def _require_user_auth(self, purpose: str) -> None:
        if not self._has_user_auth:
            raise PermanentChannelError(
                f"X user-context credentials (API key/secret, access token/secret) are needed to "
                f"{purpose}"
            )

    def _read_with_user_auth(self, purpose: str) -> bool:
        """Reads use the app's Bearer token when there is one, else OAuth 1.0a user context."""
        if self._bearer_token:
            return False
        self._require_user_auth(purpose)
        return True

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text

    def _raise_for_missing_data(self, body: Any, action: str) -> None:
        """A 200 without ``data`` but with ``errors`` (e.g. unknown user id) is a refusal."""
        if not isinstance(body, dict):
            raise TransientChannelError(f"X sent an unexpected answer while {action}")
        errors = body.get("errors") or []
        if "data" not in body and errors:
            details = "; ".join(
                str(error.get("detail") or error.get("message") or error) for error in errors
            )
            raise PermanentChannelError(self._scrub(f"X refused {action}: {details}"))

    @contextmanager
    def _translate_errors(self, action: str) -> Iterator[None]:
        """Map tweepy / requests failures to the channel errors of :mod:`bot.ports`."""
        try:
            yield
        except tweepy.TooManyRequests as exc:
            reset_at = _reset_at(exc)
            when = f" until {reset_at.isoformat()}" if reset_at else ""
            raise RateLimited(
                self._scrub(f"X rate limit reached while {action}{when}"), reset_at
            ) from exc
        except tweepy.TwitterServerError as exc:
            raise TransientChannelError(
                self._scrub(f"X failed while {action}: {_describe(exc)}")
            ) from exc
        except tweepy.Forbidden as exc:
            message = self._scrub(f"X refused {action}: {_describe(exc)}")
            if "duplicate content" in message.lower():
                raise DuplicateContent(message) from exc
            raise PermanentChannelError(message) from exc
        except tweepy.HTTPException as exc:
            raise PermanentChannelError(
                self._scrub(f"X refused {action}: {_describe(exc)}")
            ) from exc
        except (
            requests.Timeout,
            requests.ConnectionError,
            requests.exceptions.ChunkedEncodingError,
            requests.JSONDecodeError,
        ) as exc:
            raise TransientChannelError(
                self._scrub(
                    f"X did not answer properly while {action}: {type(exc).__name__}: {exc}"
                )
            ) from exc
        except requests.RequestException as exc:
            raise PermanentChannelError(
                self._scrub(f"Could not call X while {action}: {type(exc).__name__}: {exc}")
            ) from exc


def _describe(exc: Any) -> str:
    """``403 Forbidden: <X's detail>`` for a tweepy HTTPException."""
    response = getattr(exc, "response", None)
    status = f"{getattr(response, 'status_code', '?')} {getattr(response, 'reason', '')}".strip()
    messages = [str(message) for message in getattr(exc, "api_messages", []) or []]
    return f"{status}: {'; '.join(messages)}" if messages else status


def _reset_at(exc: Any) -> datetime | None:
    reset = getattr(exc, "reset_time", None)
    if reset is None:
        response = getattr(exc, "response", None)
        reset = getattr(response, "headers", {}).get("x-rate-limit-reset")
    try:
        return datetime.fromtimestamp(int(reset), tz=UTC) if reset is not None else None
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _parse_time(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).astimezone(UTC)
        except ValueError:
            pass
    # We always request created_at; if X omits it, "now" is the closest honest stand-in.
    return datetime.now(UTC)


def _to_post(tweet: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]]) -> IncomingPost:
    tweet_id = str(tweet["id"])
    author_id = str(tweet.get("author_id") or "")
    user = users.get(author_id) or {}
    handle = str(user.get("username") or "")
    url = (
        f"https://x.com/{handle}/status/{tweet_id}"
        if handle
        else f"https://x.com/i/web/status/{tweet_id}"
    )
    references = tweet.get("referenced_tweets") or []
    conversation_id = tweet.get("conversation_id")
    return IncomingPost(
        external_id=tweet_id,
        text=str(tweet.get("text") or ""),
        author=Author(external_id=author_id, handle=handle, name=str(user.get("name") or handle)),
        conversation_id=str(conversation_id) if conversation_id else None,
        created_at=_parse_time(tweet.get("created_at")),
        url=url,
        is_repost=any(ref.get("type") == "retweeted" for ref in references),
    )


def _posted(tweet_id: str) -> PostedReply:
    return PostedReply(external_id=tweet_id, url=f"https://x.com/i/web/status/{tweet_id}")


def _quota_of(response: requests.Response) -> Quota | None:
    endpoint = _endpoint(response.request.method or "", response.request.path_url or "")
    headers = response.headers
    try:
        limit = int(headers["x-rate-limit-limit"])
        remaining = int(headers["x-rate-limit-remaining"])
        reset_at = datetime.fromtimestamp(int(headers["x-rate-limit-reset"]), UTC)
    except (KeyError, ValueError, OverflowError, OSError):
        return None
    if endpoint is None:
        return None
    return Quota(endpoint, limit, remaining, reset_at)


def _endpoint(method: str, path: str) -> str | None:
    """Which quota an API path counts against, by the names `/care stats` shows."""
    path = path.split("?", 1)[0]
    if method == "POST" and path == "/2/tweets":
        return "post"
    if path.endswith("/mentions"):
        return "mentions"
    if path.endswith("/tweets") and path.startswith("/2/users/"):
        return "timeline"
    return None
