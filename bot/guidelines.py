"""The answering guidelines people accept with `/care join`, and how Slack shows them.

The guidelines are a Markdown file named by ``CARE_GUIDELINES_FILE``; without one, crowdcare's
built-in guidelines apply. Their version is the value of a first line like ``Version: 2026-11``,
else the first 12 hex digits of the file's SHA-256, so any edit without a version line is a new
version too. An acceptance is recorded with the version; a changed version needs a new one.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot import mrkdwn

log = logging.getLogger(__name__)

ACTION_JOIN_ACCEPT = "care_join_accept"

SECTION_LIMIT = 3000  # Slack's limit on a section's text
MAX_BLOCKS = 50  # Slack's limit on a message's blocks
MAX_FILE_BYTES = 200_000  # far more than 50 sections can show
VERSION_LIMIT = 40
HASH_DIGITS = 12

DEFAULT_GUIDELINES = """\
Version: built-in-1

# Answering customers in public

Everything you propose may be posted publicly under the brand's name. Please:

- **Be kind and patient.** Thank the customer, assume good faith, and never argue.
- **Keep personal data out of public replies.** No order numbers, emails, addresses or account \
details; ask the customer to send those in a direct message or through support.
- **Make no promises about refunds, compensation or legal matters.** Point to the support team \
instead.
- **Be accurate.** If you are not sure, say you will find out, or leave it to someone who knows.
- **Sign off** the way the team agreed, so customers know a person answered.
- **Escalate when unsure.** Safety, legal, press or angry-customer questions go to the support \
team: let the escalation path handle them.
"""

_VERSION_LINE = re.compile(r"\s*version\s*:\s*(.*?)\s*", re.IGNORECASE)
_HEADING = re.compile(r"(#{1,6})\s+(.*?)\s*#*\s*")
_BULLET = re.compile(r"(\s*)[-*+]\s+(.*)")
_RULE = re.compile(r"\s*([-*_])(\s*\1){2,}\s*")
_BOLD = re.compile(r"(\*\*|__)(?=\S)(.+?)(?<=\S)\1")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_LINK = re.compile(r"\[([^\[\]\n|]+)\]\((https?://[^\s()|]+)\)")
_FENCE = "```"


class GuidelinesError(Exception):
    """The guidelines file cannot be used; ``str(error)`` is fit to show a person."""


@dataclass(frozen=True)
class Guidelines:
    version: str
    markdown: str  # the text without its version line
    source: str | None  # the file, or None for the built-in guidelines


def load(path: str | None) -> Guidelines:
    """The current guidelines; raises :class:`GuidelinesError` (already logged) if unreadable."""
    if path is None:
        return parse(DEFAULT_GUIDELINES.encode(), None)
    try:
        with Path(path).open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        log.warning("Could not read CARE_GUIDELINES_FILE %s: %s", path, exc)
        raise GuidelinesError(
            "The answering guidelines cannot be read right now (an admin needs to check "
            "CARE_GUIDELINES_FILE). Nothing was recorded; please try again later."
        ) from None
    if len(raw) > MAX_FILE_BYTES:
        log.warning("CARE_GUIDELINES_FILE %s is too long; showing its start", path)
        # Cut at a line end, never inside a UTF-8 sequence.
        raw = raw[: raw.rfind(b"\n", 0, MAX_FILE_BYTES) + 1] or raw[:MAX_FILE_BYTES]
    try:
        return parse(raw, path)
    except UnicodeDecodeError:
        log.warning("CARE_GUIDELINES_FILE %s is not UTF-8 text", path)
        raise GuidelinesError(
            "The answering guidelines file is not readable text (an admin needs to save "
            "CARE_GUIDELINES_FILE as UTF-8). Nothing was recorded."
        ) from None


def parse(raw: bytes, source: str | None) -> Guidelines:
    """Split off the version line, or version the text by its hash."""
    text = raw.decode("utf-8").removeprefix("\ufeff")
    lines = text.splitlines()
    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None:
        match = _VERSION_LINE.fullmatch(lines[first])
        if match and 0 < len(match.group(1)) <= VERSION_LIMIT:
            body = "\n".join(lines[first + 1 :]).strip("\n")
            return Guidelines(match.group(1), body, source)
    return Guidelines(hashlib.sha256(raw).hexdigest()[:HASH_DIGITS], text.strip("\n"), source)


# -- Markdown to Slack mrkdwn --------------------------------------------------------------


def to_mrkdwn(markdown: str) -> str:
    """A minimal conversion: headings to bold lines, ``**x**`` to ``*x*``, bullets kept."""
    out: list[str] = []
    in_code = False
    for line in mrkdwn.clean(markdown).split("\n"):
        if line.strip().startswith(_FENCE):
            in_code = not in_code
            out.append(mrkdwn.escape(line.strip()))
            continue
        out.append(mrkdwn.escape(line) if in_code else _line(line))
    return "\n".join(out).strip("\n")


def _line(line: str) -> str:
    if _RULE.fullmatch(line):
        return ""
    heading = _HEADING.fullmatch(line)
    if heading:
        return f"*{_inline(heading.group(2))}*" if heading.group(2) else ""
    bullet = _BULLET.fullmatch(line)
    if bullet:
        return f"{bullet.group(1)}• {_inline(bullet.group(2))}"
    return _inline(line)


def _inline(text: str) -> str:
    text = mrkdwn.escape(text)
    text = _BOLD.sub(r"*\2*", text)
    text = _STRIKE.sub(r"~\1~", text)
    # The URL is already escaped (& as &amp;), which is what Slack expects inside a link.
    return _LINK.sub(r"<\2|\1>", text)


# -- Block Kit -----------------------------------------------------------------------------


def sections(text: str, max_sections: int) -> list[dict[str, Any]]:
    """``text`` (mrkdwn) as section blocks of at most 3000 characters, split at paragraphs."""
    chunks: list[str] = []
    for paragraph in re.split(r"\n{2,}", text):
        for piece in _pieces(paragraph.strip("\n")):
            if not piece.strip():
                continue
            if chunks and len(chunks[-1]) + 2 + len(piece) <= SECTION_LIMIT:
                chunks[-1] += "\n\n" + piece
            else:
                chunks.append(piece)
    if len(chunks) > max_sections:
        chunks = chunks[: max_sections - 1]
        chunks.append("_The guidelines go on beyond what Slack can show here; ask an admin._")
    return [{"type": "section", "text": {"type": "mrkdwn", "text": c}} for c in chunks]


def _pieces(paragraph: str) -> list[str]:
    """A paragraph in pieces that fit a section: whole lines where possible."""
    if len(paragraph) <= SECTION_LIMIT:
        return [paragraph]
    pieces: list[str] = []
    for line in paragraph.split("\n"):
        rest = line
        while len(rest) > SECTION_LIMIT:
            cut = len(mrkdwn.truncate(rest, SECTION_LIMIT, ellipsis=""))
            space = rest.rfind(" ", SECTION_LIMIT // 2, cut)
            cut = space if space > 0 else cut
            pieces.append(rest[:cut])
            rest = rest[cut:].lstrip(" ")
        if pieces and len(pieces[-1]) + 1 + len(rest) <= SECTION_LIMIT:
            pieces[-1] += "\n" + rest
        else:
            pieces.append(rest)
    return pieces


def join_blocks(
    guidelines: Guidelines, *, accept: bool, notes: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The guidelines as a message: title, text, ``notes`` (mrkdwn) and the I accept button."""
    head: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": f"Answering guidelines (version {guidelines.version})",
            },
        }
    ]
    tail: list[dict[str, Any]] = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": note}]} for note in notes
    ]
    if accept:
        tail.append(
            {
                "type": "actions",
                "block_id": "care_join",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACTION_JOIN_ACCEPT,
                        "text": {"type": "plain_text", "text": "I accept"},
                        "style": "primary",
                        "value": guidelines.version,
                    }
                ],
            }
        )
    body = sections(to_mrkdwn(guidelines.markdown), MAX_BLOCKS - len(head) - len(tail))
    return [*head, *body, *tail]
