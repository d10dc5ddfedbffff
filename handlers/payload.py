"""Small, forgiving readers for Slack payload fields."""

from __future__ import annotations

from typing import Any


def positive_int(value: Any) -> int | None:
    """A database id from a button value or private_metadata, or None if it is not one."""
    if isinstance(value, str) and value.isdigit() and len(value) < 19:
        number = int(value)
        return number if number > 0 else None
    return None


def action_value(body: dict[str, Any]) -> Any:
    """The value of the first action in a block_actions payload."""
    actions = body.get("actions") or [{}]
    return actions[0].get("value")


def where(body: dict[str, Any]) -> tuple[str, str]:
    """(channel id, user id) of an interaction."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id", ""
    )
    return str(channel), str((body.get("user") or {}).get("id", ""))
