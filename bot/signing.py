"""HMAC-SHA256 request signing, shared by the outgoing webhook and the incoming backend events.

The signature covers the timestamp and the exact body bytes: ``v1=`` followed by the hex
HMAC-SHA256 of ``"<timestamp>." + body`` under the shared secret. A receiver recomputes it over the
bytes it received (never a re-serialised copy) and refuses timestamps too far from its own clock,
so a captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Crowdcare-Signature"
TIMESTAMP_HEADER = "X-Crowdcare-Timestamp"
VERSION = "v1"
DEFAULT_TOLERANCE = 300  # seconds either side of the receiver's clock

MISSING_HEADERS = "missing signature headers"
STALE_TIMESTAMP = "stale or invalid timestamp"
INVALID_SIGNATURE = "invalid signature"


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (Unix seconds)."""
    message = f"{timestamp}.".encode() + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{VERSION}={digest}"


def verify(
    secret: str,
    timestamp_header: str | None,
    signature_header: str | None,
    body: bytes,
    *,
    now: float,
    tolerance: int = DEFAULT_TOLERANCE,
) -> str | None:
    """``None`` when the request is authentic and fresh, else why it is not."""
    if not timestamp_header or not signature_header:
        return MISSING_HEADERS
    raw = timestamp_header.strip()
    if not raw.isascii() or not raw.isdigit():
        return STALE_TIMESTAMP
    timestamp = int(raw)
    if abs(now - timestamp) > tolerance:
        return STALE_TIMESTAMP
    expected = sign(secret, timestamp, body).encode()
    # Bytes, so a non-ASCII header cannot raise; compare_digest takes constant time.
    if not hmac.compare_digest(expected, signature_header.strip().encode("utf-8", "replace")):
        return INVALID_SIGNATURE
    return None
