"""Assertions for Slack's Block Kit limits, shared by tests that build blocks.

Slack rejects a whole message or view when one field is over its limit, usually in
production with a long customer post, so tests check every payload against these.
"""

from __future__ import annotations

import json
from typing import Any

MAX_MESSAGE_BLOCKS = 50
MAX_MODAL_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_BUTTON_URL = 3000
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_HEADER_TEXT = 150
MAX_INPUT_LABEL = 2000
MAX_INPUT_HINT = 2000
MAX_INPUT_PLACEHOLDER = 150
MAX_INPUT_LENGTH = 3000
MAX_MODAL_TITLE = 24
MAX_MODAL_BUTTON = 24
MAX_CALLBACK_ID = 255
MAX_PRIVATE_METADATA = 3000
# Slack allows 40,000 characters of message text; this project keeps fallbacks to 3,000.
MAX_FALLBACK_TEXT = 3000


def validate_blocks(blocks: list[dict[str, Any]], max_blocks: int = MAX_MESSAGE_BLOCKS) -> None:
    """Assert that ``blocks`` respect Slack's Block Kit limits."""
    _assert_sendable(blocks)
    assert 0 < len(blocks) <= max_blocks, f"{len(blocks)} blocks (max {max_blocks})"
    block_ids = [block["block_id"] for block in blocks if "block_id" in block]
    assert len(block_ids) == len(set(block_ids)), f"duplicate block_id in {block_ids}"
    for block in blocks:
        _validate_block(block)


def validate_modal(view: dict[str, Any]) -> None:
    """Assert that a modal view respects Slack's limits."""
    _assert_sendable(view)
    assert view["type"] == "modal"
    _text(view["title"], MAX_MODAL_TITLE, plain_only=True)
    for key in ("submit", "close"):
        if key in view:
            _text(view[key], MAX_MODAL_BUTTON, plain_only=True)
    assert len(view.get("callback_id", "")) <= MAX_CALLBACK_ID
    assert len(view.get("private_metadata", "")) <= MAX_PRIVATE_METADATA
    has_input = any(block["type"] == "input" for block in view["blocks"])
    assert not has_input or "submit" in view, "a modal with inputs needs a submit button"
    validate_blocks(view["blocks"], max_blocks=MAX_MODAL_BLOCKS)


def validate_text(text: str, limit: int = MAX_FALLBACK_TEXT) -> None:
    """Assert that a message's top-level ``text`` is present, sendable and within ``limit``."""
    _assert_sendable(text)
    assert 0 < len(text) <= limit, f"text of {len(text)} characters (max {limit})"


def _validate_block(block: dict[str, Any]) -> None:
    """Dispatch on block type."""
    assert len(block.get("block_id", "")) <= MAX_BLOCK_ID
    validators = {
        "section": _section,
        "context": _context,
        "actions": _actions,
        "input": _input,
        "header": _header,
        "divider": _divider,
    }
    assert block["type"] in validators, f"unexpected block type {block['type']!r}"
    validators[block["type"]](block)


def _section(block: dict[str, Any]) -> None:
    """Section: text and/or fields, optional accessory."""
    assert "text" in block or "fields" in block, "a section needs text or fields"
    if "text" in block:
        _text(block["text"], MAX_SECTION_TEXT)
    fields = block.get("fields", [])
    assert len(fields) <= MAX_SECTION_FIELDS
    for field in fields:
        _text(field, MAX_FIELD_TEXT)
    if "accessory" in block:
        _element(block["accessory"])


def _context(block: dict[str, Any]) -> None:
    """Context: 1 to 10 text or image elements."""
    elements = block["elements"]
    assert 0 < len(elements) <= MAX_CONTEXT_ELEMENTS, f"{len(elements)} context elements"
    for element in elements:
        if element["type"] != "image":
            _text(element, MAX_CONTEXT_TEXT)


def _actions(block: dict[str, Any]) -> None:
    """Actions: up to 25 interactive elements with distinct action ids."""
    elements = block["elements"]
    assert 0 < len(elements) <= MAX_ACTIONS_ELEMENTS
    action_ids = [element["action_id"] for element in elements if "action_id" in element]
    assert len(action_ids) == len(set(action_ids)), f"duplicate action_id in {action_ids}"
    for element in elements:
        _element(element)


def _input(block: dict[str, Any]) -> None:
    """Input: label, one element, optional hint."""
    _text(block["label"], MAX_INPUT_LABEL, plain_only=True)
    if "hint" in block:
        _text(block["hint"], MAX_INPUT_HINT, plain_only=True)
    _element(block["element"])


def _header(block: dict[str, Any]) -> None:
    """Header: plain text only."""
    _text(block["text"], MAX_HEADER_TEXT, plain_only=True)


def _divider(block: dict[str, Any]) -> None:
    """Divider: nothing beyond its type."""
    assert set(block) <= {"type", "block_id"}


def _element(element: dict[str, Any]) -> None:
    """Interactive elements used by this project."""
    assert len(element.get("action_id", "")) <= MAX_ACTION_ID
    if element["type"] == "button":
        _text(element["text"], MAX_BUTTON_TEXT, plain_only=True)
        assert len(element.get("value", "")) <= MAX_BUTTON_VALUE
        assert len(element.get("url", "")) <= MAX_BUTTON_URL
        assert element.get("style", "primary") in ("primary", "danger")
    elif element["type"] == "plain_text_input":
        max_length = element.get("max_length", MAX_INPUT_LENGTH)
        assert 0 < max_length <= MAX_INPUT_LENGTH
        assert len(element.get("initial_value", "")) <= max_length
        if "placeholder" in element:
            _text(element["placeholder"], MAX_INPUT_PLACEHOLDER, plain_only=True)


def _text(obj: dict[str, Any], limit: int, plain_only: bool = False) -> None:
    """A text object: right type, 1..limit characters, only the fields its type allows."""
    allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    assert obj["type"] in allowed, f"text type {obj['type']!r} not in {allowed}"
    text = obj["text"]
    assert 0 < len(text) <= limit, f"text of {len(text)} characters (max {limit})"
    if obj["type"] == "plain_text":
        assert "verbatim" not in obj
    else:
        assert "emoji" not in obj


def _assert_sendable(payload: object) -> None:
    """The payload must survive JSON encoding as UTF-8 (no lone surrogates)."""
    json.dumps(payload, ensure_ascii=False).encode("utf-8")
