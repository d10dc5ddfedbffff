"""A signed JSON webhook: each support event is POSTed to the company's own endpoint.

The body is serialised once and signed over those exact bytes (see :mod:`bot.signing`); the
receiver verifies ``X-Crowdcare-Signature`` against ``X-Crowdcare-Timestamp`` and the raw body.
Delivery is at least once: when an answer is lost the same event is sent again with the same
``id`` and ``Idempotency-Key`` (``evt_<event id>``), which the receiver uses to drop repeats.

2xx is success. 408, 429 (after ``Retry-After``), 5xx, timeouts and connection errors are retried
later; any other answer (redirects included) fails the delivery for good.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import requests

from bot.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from bot.support import (
    ConnectorError,
    DeliveryResult,
    EventEnvelope,
    redact,
    retry_at_from_header,
    retryable_status,
)

EVENT_HEADER = "X-Crowdcare-Event"
ATTEMPT_HEADER = "X-Crowdcare-Delivery-Attempt"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "crowdcare-webhook/1"
EXCERPT_LENGTH = 200


def event_key(event_id: int) -> str:
    """The event's public id, also its idempotency key: ``evt_<id>``."""
    return f"evt_{event_id}"


def iso_z(moment: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix and milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def payload(event: EventEnvelope) -> dict[str, Any]:
    """The JSON document POSTed for ``event``."""
    case = event.case
    return {
        "id": event_key(event.event_id),
        "type": event.type,
        "created_at": iso_z(event.created_at),
        "case": {
            "id": case.case_id,
            "channel": case.channel,
            "customer": {"handle": case.customer_handle, "name": case.customer_name},
            "text": case.text,
            "url": case.post_url,
            "state": case.state,
        },
        "data": event.data,
    }


class WebhookConnector:
    """POSTs support events, signed with a shared secret, to one URL."""

    name = "webhook"

    def __init__(self, url: str, secret: str, *, timeout: float = 10.0) -> None:
        if not url.startswith(("https://", "http://")):
            raise ValueError("the webhook URL must start with https:// or http://")
        if not secret:
            raise ValueError("the webhook needs a signing secret")
        self.url = url
        self._secret = secret
        self._timeout = timeout
        self._session = requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> WebhookConnector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:  # never show the secret (nor a token in the query string)
        return f"WebhookConnector({self.url.partition('?')[0]!r})"

    def deliver(self, event: EventEnvelope) -> DeliveryResult:
        body = json.dumps(payload(event), ensure_ascii=False, separators=(",", ":")).encode()
        timestamp = int(time.time())
        key = event_key(event.event_id)
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: key,
            EVENT_HEADER: event.type,
            ATTEMPT_HEADER: str(event.attempt),
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        try:
            response = self._session.post(
                self.url, data=body, headers=headers, timeout=self._timeout, allow_redirects=False
            )
        except requests.Timeout as exc:
            raise ConnectorError(
                f"webhook did not answer {key} within {self._timeout:g}s", retryable=True
            ) from exc
        except requests.RequestException as exc:
            reason = self._scrub(f"{type(exc).__name__}: {exc}")
            raise ConnectorError(
                f"webhook unreachable for {key}: {reason}", retryable=True
            ) from exc
        with response:
            return self._outcome(response, key)

    def _outcome(self, response: requests.Response, key: str) -> DeliveryResult:
        status = response.status_code
        if 200 <= status < 300:
            return DeliveryResult()
        excerpt = self._scrub(" ".join(response.text.split()))[:EXCERPT_LENGTH]
        message = f"webhook answered {status} to {key}"
        if excerpt:
            message += f": {excerpt}"
        if retryable_status(status):
            retry_at = retry_at_from_header(response.headers.get("Retry-After"), datetime.now(UTC))
            raise ConnectorError(message, retryable=True, retry_at=retry_at)
        if 300 <= status < 400:
            message += f" (redirect to {response.headers.get('Location', '?')} not followed)"
        raise ConnectorError(message, retryable=False)

    def _scrub(self, text: str) -> str:
        # requests puts the URL (query string included) into its messages; some receivers
        # carry a token there. Keep the secret and the query out of stored errors and logs.
        query = self.url.partition("?")[2]
        return redact(text, [self._secret, query])
