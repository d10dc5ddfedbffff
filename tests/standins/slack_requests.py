"""Signed HTTP requests shaped like the ones Slack sends to an app.

:class:`SlackRequester` posts slash commands, block actions, view submissions and Events API
callbacks to the app under test, signed with the app's signing secret exactly as Slack signs
them (``X-Slack-Signature: v0=hmac_sha256(secret, "v0:{timestamp}:{body}")``).

Stdlib only. HTTP error statuses are returned as a :class:`Response`, never raised.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import secrets
import time
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
APP_ID = "A0001"
VERIFICATION_TOKEN = "legacy-verification-token"
UNUSED_RESPONSE_URL = "http://127.0.0.1/unused"


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # header names are lower-cased
    text: str

    def json(self) -> Any:
        return json.loads(self.text)


def sign(signing_secret: str, timestamp: int, body: str) -> str:
    """The ``X-Slack-Signature`` value Slack would send for ``body`` at ``timestamp``."""
    base = f"v0:{timestamp}:{body}".encode()
    return "v0=" + hmac.new(signing_secret.encode(), base, hashlib.sha256).hexdigest()


class SlackRequester:
    """Sends Slack-signed requests to ``base_url + path`` (e.g. http://127.0.0.1:8123/slack/events)."""

    def __init__(
        self,
        base_url: str,
        signing_secret: str,
        team_id: str = "T0001",
        path: str = "/slack/events",
        *,
        bot_user_id: str = "UBOT",
        timeout: float = 10.0,
    ) -> None:
        self.url = base_url.rstrip("/") + path
        self.signing_secret = signing_secret
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.timeout = timeout
        self._counter = itertools.count(1)
        # An empty ProxyHandler: never route 127.0.0.1 through an *_proxy from the environment.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    # -- transport ------------------------------------------------------------------------

    def post(
        self,
        body: str,
        content_type: str,
        *,
        timestamp: int | None = None,
        signature: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """POST ``body`` signed for ``timestamp`` (now by default) unless ``signature`` is given."""
        ts = int(time.time()) if timestamp is None else timestamp
        request_headers = {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": str(ts),
            "X-Slack-Signature": signature or sign(self.signing_secret, ts, body),
            **(headers or {}),
        }
        request = urllib.request.Request(
            self.url, data=body.encode(), headers=request_headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as answer:
                return _response(answer.status, answer.headers.items(), answer.read())
        except urllib.error.HTTPError as error:
            with error:
                return _response(error.code, error.headers.items(), error.read())

    def _post_form(self, fields: dict[str, str]) -> Response:
        return self.post(urlencode(fields), FORM)

    def _post_payload(self, payload: dict[str, Any]) -> Response:
        return self._post_form({"payload": json.dumps(payload)})

    # -- ids ------------------------------------------------------------------------------

    def new_trigger_id(self) -> str:
        """A fresh trigger id shaped like Slack's (``<n>.<n>.<hex>``)."""
        n = next(self._counter)
        return f"{n}.{int(time.time())}.{secrets.token_hex(16)}"

    def _new_event_id(self) -> str:
        return f"Ev{next(self._counter):08d}{secrets.token_hex(4).upper()}"

    def _user(self, user_id: str, user_name: str | None = None) -> dict[str, str]:
        name = user_name or user_id.lower()
        return {"id": user_id, "username": name, "name": name, "team_id": self.team_id}

    # -- what Slack sends -----------------------------------------------------------------

    def command(
        self,
        user_id: str,
        text: str,
        command: str = "/care",
        channel_id: str = "C0ADMIN",
        user_name: str | None = None,
    ) -> Response:
        return self._post_form(
            {
                "token": VERIFICATION_TOKEN,
                "team_id": self.team_id,
                "team_domain": "example",
                "channel_id": channel_id,
                "channel_name": "admin",
                "user_id": user_id,
                "user_name": user_name or user_id.lower(),
                "command": command,
                "text": text,
                "api_app_id": APP_ID,
                "is_enterprise_install": "false",
                "response_url": UNUSED_RESPONSE_URL,
                "trigger_id": self.new_trigger_id(),
            }
        )

    def block_action(
        self,
        user_id: str,
        action_id: str,
        value: str,
        *,
        channel_id: str,
        message_ts: str,
        trigger_id: str | None = None,
        block_id: str = "actions",
        thread_ts: str | None = None,
    ) -> Response:
        message: dict[str, Any] = {"type": "message", "ts": message_ts, "text": ""}
        if thread_ts is not None:
            message["thread_ts"] = thread_ts
        return self._post_payload(
            {
                "type": "block_actions",
                "user": self._user(user_id),
                "api_app_id": APP_ID,
                "token": VERIFICATION_TOKEN,
                "container": {
                    "type": "message",
                    "message_ts": message_ts,
                    "channel_id": channel_id,
                    "is_ephemeral": False,
                },
                "trigger_id": trigger_id or self.new_trigger_id(),
                "team": {"id": self.team_id, "domain": "example"},
                "enterprise": None,
                "is_enterprise_install": False,
                "channel": {"id": channel_id, "name": channel_id.lower()},
                "message": message,
                "state": {"values": {}},
                "response_url": UNUSED_RESPONSE_URL,
                "actions": [
                    {
                        "action_id": action_id,
                        "block_id": block_id,
                        "value": value,
                        "type": "button",
                        "action_ts": f"{time.time():.6f}",
                    }
                ],
            }
        )

    def view_submission(
        self,
        user_id: str,
        callback_id: str,
        private_metadata: str,
        values: dict[str, dict[str, str]],
    ) -> Response:
        state = {
            block_id: {
                action_id: {"type": "plain_text_input", "value": value}
                for action_id, value in actions.items()
            }
            for block_id, actions in values.items()
        }
        return self._post_payload(
            {
                "type": "view_submission",
                "team": {"id": self.team_id, "domain": "example"},
                "user": self._user(user_id),
                "api_app_id": APP_ID,
                "token": VERIFICATION_TOKEN,
                "trigger_id": self.new_trigger_id(),
                "view": {
                    "id": f"V{next(self._counter):08d}",
                    "team_id": self.team_id,
                    "type": "modal",
                    "callback_id": callback_id,
                    "private_metadata": private_metadata,
                    "state": {"values": state},
                    "hash": f"{int(time.time())}.{secrets.token_hex(4)}",
                    "app_id": APP_ID,
                    "bot_id": "B0001",
                },
                "response_urls": [],
                "is_enterprise_install": False,
                "enterprise": None,
            }
        )

    def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        timestamp: int | None = None,
    ) -> Response:
        now = int(time.time())
        envelope = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": APP_ID,
            "event": {"event_ts": event.get("ts", f"{now}.000000"), **event},
            "type": "event_callback",
            "event_id": event_id or self._new_event_id(),
            "event_time": now,
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": self.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"}
        return self.post(json.dumps(envelope), JSON, headers=headers, timestamp=timestamp)

    def url_verification(self, challenge: str) -> Response:
        body = {"token": VERIFICATION_TOKEN, "challenge": challenge, "type": "url_verification"}
        return self.post(json.dumps(body), JSON)


def _response(status: int, headers: Iterable[tuple[str, str]], raw: bytes) -> Response:
    return Response(
        status=status,
        headers={name.lower(): value for name, value in headers},
        text=raw.decode("utf-8", errors="replace"),
    )
