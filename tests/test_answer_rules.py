"""Tests for bot.answer_rules: whether a proposed answer can be posted on X."""

from __future__ import annotations

import pytest

from bot.answer_rules import (
    EMPTY_PROBLEM,
    INVALID_CHARACTERS_PROBLEM,
    MAX_WEIGHTED_LENGTH,
    AnswerCheck,
    check_answer,
    normalize_answer,
    published_text,
    weighted_length,
)

LONG_URL = "https://example.com/" + "very-long-path/" * 20


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        (None, ""),
        ("", ""),
        ("  \n\t hi there \r\n", "hi there"),
        ("one\r\ntwo\rthree", "one\ntwo\nthree"),
        ("keep  inner  spaces", "keep  inner  spaces"),
    ],
)
def test_normalize_answer(raw: str | None, normalized: str) -> None:
    assert normalize_answer(raw) == normalized


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("", 0),
        ("hello", 5),
        ("中", 2),
        ("😀", 2),
        ("👩\u200d👩\u200d👧", 2),  # a ZWJ sequence counts as one emoji
        ("https://x.co", 23),
        (LONG_URL, 23),
        (f"see {LONG_URL} thanks", 4 + 23 + 7),
    ],
)
def test_weighted_length(text: str, length: int) -> None:
    assert weighted_length(text) == length


@pytest.mark.parametrize(
    ("text", "ok", "length"),
    [
        ("a" * 280, True, 280),
        ("a" * 281, False, 281),
        ("中" * 140, True, 280),
        ("中" * 141, False, 282),
        ("😀" * 140, True, 280),
        ("😀" * 141, False, 282),
        ("a" * 256 + " " + LONG_URL, True, 280),
        ("a" * 257 + " " + LONG_URL, False, 281),
        (" " * 10 + "a" * 280 + "\n" * 10, True, 280),
    ],
)
def test_length_limit(text: str, ok: bool, length: int) -> None:
    check = check_answer(text)
    assert check.ok is ok
    assert check.weighted_length == length


@pytest.mark.parametrize("text", [None, "", "   ", "\n\t\r\n "])
def test_empty_answer(text: str | None) -> None:
    assert check_answer(text) == AnswerCheck(ok=False, weighted_length=0, problems=(EMPTY_PROBLEM,))


def test_too_long_message_gives_count_and_overshoot() -> None:
    check = check_answer("中" * 150)
    assert check.problems == (
        "The answer is 300 characters as X counts them (links count 23, CJK and emoji 2);"
        " the limit is 280. Shorten it by 20.",
    )


def test_ok_answer_has_no_problems() -> None:
    check = check_answer("Thanks for reaching out! Details: https://example.com/help 🙏")
    assert check == AnswerCheck(ok=True, weighted_length=34 + 23 + 1 + 2, problems=())


@pytest.mark.parametrize("bad", ["\ufffe", "\ufeff", "\uffff", "\x00", "\x1b", "\ud800"])
def test_characters_x_rejects(bad: str) -> None:
    check = check_answer(f"hello {bad} world")
    assert not check.ok
    assert check.problems == (INVALID_CHARACTERS_PROBLEM,)


def test_long_answer_with_bad_characters_reports_both() -> None:
    check = check_answer("a" * 300 + "\ufffe")
    assert not check.ok
    assert len(check.problems) == 2
    assert check.problems[1] == INVALID_CHARACTERS_PROBLEM


@pytest.mark.parametrize("fine", ["\t", "\n", "\u200d", "é", "e\u0301"])
def test_ordinary_characters_are_accepted(fine: str) -> None:
    assert check_answer(f"hello {fine} world").ok


def test_problems_are_sentences() -> None:
    for text in ["", "a" * 500, "x\ufffe"]:
        for problem in check_answer(text).problems:
            assert problem[0].isupper()
            assert problem.endswith(".")


def test_limit_constant() -> None:
    assert MAX_WEIGHTED_LENGTH == 280


@pytest.mark.parametrize(
    ("text", "signature", "ok", "length"),
    [
        ("a" * 276, "^JS", True, 280),
        ("a" * 277, "^JS", False, 281),
        ("中" * 137, "^山太", True, 280),
        ("a" * 280, None, True, 280),
        ("   ", "^JS", False, 0),  # a signature alone is no answer
    ],
)
def test_the_signature_counts_towards_the_limit(
    text: str, signature: str | None, ok: bool, length: int
) -> None:
    check = check_answer(text, signature)
    assert (check.ok, check.weighted_length) == (ok, length)


def test_too_long_with_a_signature_names_its_room() -> None:
    [problem] = check_answer("a" * 279, "^JS").problems
    assert problem.startswith(
        "With your signature (^JS, which takes 4 characters) the reply is 283"
    )
    assert problem.endswith("Shorten the answer by 3.")


@pytest.mark.parametrize(
    ("text", "signature", "published"),
    [
        (" Thanks!\r\n", "^JS", "Thanks! ^JS"),
        ("Thanks!", None, "Thanks!"),
        ("Thanks!", "", "Thanks!"),
        ("  ", "^JS", ""),
    ],
)
def test_published_text(text: str, signature: str | None, published: str) -> None:
    assert published_text(text, signature) == published
