"""Decide whether a proposed answer can be posted on X as it is."""

from __future__ import annotations

import re
from dataclasses import dataclass

from twitter_text import parse_tweet
from twitter_text.has_invalid_characters import has_invalid_characters

MAX_WEIGHTED_LENGTH = 280

EMPTY_PROBLEM = "Write an answer before proposing."
INVALID_CHARACTERS_PROBLEM = "The answer contains characters X does not accept."

# twitter-text only rejects U+FFFE, U+FEFF and U+FFFF; control characters (NUL and friends)
# pass its check but are not text anyone meant to publish. Lone surrogates cannot even be
# encoded for the API.
_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL_OR_SURROGATE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


@dataclass(frozen=True)
class AnswerCheck:
    """The verdict on a proposed answer, with reasons a person can act on."""

    ok: bool
    weighted_length: int
    problems: tuple[str, ...]


def normalize_answer(text: str | None) -> str:
    """Return the answer as it would be posted: unified newlines, no surrounding whitespace."""
    if text is None:
        return ""
    return text.replace("\r\n", "\n").replace("\r", "\n").strip()


def weighted_length(text: str) -> int:
    """Length of ``text`` as X counts it (URLs 23, CJK and emoji 2)."""
    # parse_tweet encodes to UTF-16 and would crash on a lone surrogate; such characters
    # are reported as invalid separately, so leave them out of the count.
    return int(parse_tweet(_SURROGATE.sub("", text)).weightedLength)


def published_text(text: str | None, signature: str | None = None) -> str:
    """The text X receives: the normalized answer, then the signature (if any) after a space."""
    answer = normalize_answer(text)
    return f"{answer} {signature}" if answer and signature else answer


def check_answer(text: str | None, signature: str | None = None) -> AnswerCheck:
    """Check a proposed answer, signed with ``signature``, against X's length and characters."""
    answer = normalize_answer(text)
    if not answer:
        return AnswerCheck(ok=False, weighted_length=0, problems=(EMPTY_PROBLEM,))
    length = weighted_length(published_text(answer, signature))
    problems: list[str] = []
    if length > MAX_WEIGHTED_LENGTH:
        problems.append(_too_long(length, signature))
    if _has_rejected_characters(answer):
        problems.append(INVALID_CHARACTERS_PROBLEM)
    return AnswerCheck(ok=not problems, weighted_length=length, problems=tuple(problems))


def _too_long(length: int, signature: str | None) -> str:
    """Explain how far over X's limit the answer is, and how much room the signature takes."""
    over = length - MAX_WEIGHTED_LENGTH
    if not signature:
        return (
            f"The answer is {length} characters as X counts them (links count 23, CJK and emoji"
            f" 2); the limit is {MAX_WEIGHTED_LENGTH}. Shorten it by {over}."
        )
    room = weighted_length(" " + signature)
    return (
        f"With your signature ({signature}, which takes {room} characters) the reply is {length}"
        f" characters as X counts them (links count 23, CJK and emoji 2); the limit is"
        f" {MAX_WEIGHTED_LENGTH}. Shorten the answer by {over}."
    )


def _has_rejected_characters(text: str) -> bool:
    """Whether ``text`` holds characters X refuses or that cannot be sent at all."""
    return bool(_CONTROL_OR_SURROGATE.search(text)) or bool(has_invalid_characters(text))
