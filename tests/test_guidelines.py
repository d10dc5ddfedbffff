"""The answering guidelines: versions, the Markdown conversion and Slack's block limits."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from bot import guidelines
from bot.guidelines import ACTION_JOIN_ACCEPT, GuidelinesError, join_blocks, load, to_mrkdwn
from tests.blockkit import validate_blocks


def write(tmp_path: Path, text: str | bytes, name: str = "guidelines.md") -> str:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_version_line_names_the_version_and_is_not_shown(tmp_path):
    loaded = load(write(tmp_path, "\nVersion: 2026-11\n\n# Be nice\nThank people.\n"))
    assert loaded.version == "2026-11"
    assert "Version" not in loaded.markdown
    assert loaded.markdown.startswith("# Be nice")


def test_without_a_version_line_the_hash_is_the_version(tmp_path):
    raw = b"# Be nice\nThank people.\n"
    loaded = load(write(tmp_path, raw))
    assert loaded.version == hashlib.sha256(raw).hexdigest()[:12]
    assert load(write(tmp_path, raw + b"Edited.\n")).version != loaded.version


def test_a_version_line_further_down_is_just_text(tmp_path):
    loaded = load(write(tmp_path, "# Rules\nVersion: 3\n"))
    assert len(loaded.version) == 12
    assert "Version: 3" in loaded.markdown


def test_without_a_file_the_built_in_guidelines_apply():
    loaded = load(None)
    assert loaded.version == "built-in-1"
    text = to_mrkdwn(loaded.markdown)
    for point in ("kind", "personal data", "refunds", "Sign off", "Escalate"):
        assert point in text


def test_a_missing_file_is_explained_and_logged(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    with pytest.raises(GuidelinesError, match="cannot be read"):
        load(str(tmp_path / "gone.md"))
    assert "gone.md" in caplog.text


def test_a_file_that_is_not_utf8_is_explained(tmp_path):
    with pytest.raises(GuidelinesError, match="UTF-8"):
        load(write(tmp_path, b"\xff\xfe bad \xc3"))


def test_markdown_becomes_slack_mrkdwn():
    text = to_mrkdwn(
        "# Title\n## Sub ##\nSome **bold** and __strong__ and ~~old~~ words.\n"
        "- one\n  * nested\n1. first\n---\nSee [the wiki](https://wiki.example.com/a?b=1&c=2).\n"
        "```\n**not bold** <tag>\n```"
    )
    assert text.split("\n") == [
        "*Title*",
        "*Sub*",
        "Some *bold* and *strong* and ~old~ words.",
        "• one",
        "  • nested",
        "1. first",
        "",
        "See <https://wiki.example.com/a?b=1&amp;c=2|the wiki>.",
        "```",
        "**not bold** &lt;tag&gt;",
        "```",
    ]


def test_markup_in_the_file_cannot_mention_or_link():
    text = to_mrkdwn("Hi <!channel> and <@U123> [x](javascript:alert(1)) & more")
    assert "<!channel>" not in text
    assert "<@U123>" not in text
    assert "&lt;!channel&gt;" in text
    assert "<javascript" not in text


def test_blocks_have_a_title_the_text_and_an_accept_button_with_the_version(tmp_path):
    loaded = load(write(tmp_path, "Version: v7\n\nBe kind.\n"))
    blocks = join_blocks(loaded, accept=True, notes=("a note",))
    validate_blocks(blocks)
    assert blocks[0]["text"]["text"] == "Answering guidelines (version v7)"
    assert blocks[1]["text"]["text"] == "Be kind."
    button = blocks[-1]["elements"][0]
    assert (button["action_id"], button["value"]) == (ACTION_JOIN_ACCEPT, "v7")
    assert all(b["type"] != "actions" for b in join_blocks(loaded, accept=False))


def test_long_guidelines_are_split_within_slack_limits():
    paragraphs = [f"Paragraph {i}: " + "word " * 200 for i in range(120)]
    long_line = "x" * 7000
    markdown = "\n\n".join([*paragraphs, long_line])
    loaded = guidelines.Guidelines("v1", markdown, None)
    blocks = join_blocks(loaded, accept=True, notes=("one", "two"))
    validate_blocks(blocks)
    assert len(blocks) == 50
    assert "beyond what Slack can show" in blocks[-4]["text"]["text"]


def test_a_long_line_is_split_into_several_sections():
    loaded = guidelines.Guidelines("v1", "a & b " * 1500, None)
    blocks = join_blocks(loaded, accept=False)
    validate_blocks(blocks)
    body = [b["text"]["text"] for b in blocks[1:]]
    assert len(body) > 1
    assert all(len(text) <= 3000 for text in body)
    assert "".join(body).count("&amp;") == 1500
