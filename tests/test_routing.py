"""Routing rules: what a keyword, a phrase and a /regex/ match, in which order."""

from __future__ import annotations

import pytest

from bot.routing import MAX_PATTERN, RoutingError, Rule, first_match, parse_pattern

BILLING = Rule("refund", False, "C0BILLING", "S0BILLING")
SHIPPING = Rule("where is my order", False, "C0SHIPPING")
CARDS = Rule(r"charge ?back|double.charged", True, "C0CARDS", "S0CARDS")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I want a refund please", BILLING),
        ("REFUND!!!", BILLING),
        ("Refund? now.", BILLING),
        ("(refund)", BILLING),
        ("refunds are slow", None),  # whole words only
        ("prefund", None),
        ("refund_policy", None),  # underscores are word characters
        ("Where is my order #123?", SHIPPING),
        ("where   is\nmy ORDER", SHIPPING),  # any whitespace between the words
        ("where is my orders", None),
        ("my order: where is it", None),  # a phrase, not a bag of words
        ("I was double-charged", CARDS),
        ("filed a Chargeback", CARDS),
        ("charge back", CARDS),
        ("hello there", None),
        ("", None),
    ],
)
def test_rules_match_whole_words_phrases_and_regexes_ignoring_case(text, expected) -> None:
    assert first_match([BILLING, SHIPPING, CARDS], text) == expected


def test_the_first_matching_rule_wins() -> None:
    text = "refund my chargeback"
    assert first_match([BILLING, CARDS], text) == BILLING
    assert first_match([CARDS, BILLING], text) == CARDS


def test_keywords_are_literal_text_not_patterns() -> None:
    plus = Rule("c++", False, "C0DEV")
    dot = Rule("v1.2", False, "C0DEV")
    assert first_match([plus], "is c++ supported?") == plus
    assert first_match([dot], "in v1x2") is None
    assert first_match([dot], "in v1.2 it broke") == dot
    assert first_match([Rule("a|b", False, "C0X")], "a") is None


def test_non_latin_keywords_match_whole_words() -> None:
    rule = Rule("Rückerstattung", False, "C0DE")
    assert first_match([rule], "Bitte RÜCKERSTATTUNG!") == rule
    assert first_match([rule], "Rückerstattungen") is None


@pytest.mark.parametrize(
    ("written", "parsed"),
    [
        ("refund", ("refund", False)),
        ('"where is my order"', ("where is my order", False)),
        ("“smart quotes”", ("smart quotes", False)),
        ("'  two   words '", ("two words", False)),
        ("/refund|chargeback/", ("refund|chargeback", True)),
        ("/a b/", ("a b", True)),
        ("  late delivery  ", ("late delivery", False)),
    ],
)
def test_patterns_are_read_as_admins_write_them(written, parsed) -> None:
    assert parse_pattern(written) == parsed


@pytest.mark.parametrize(
    ("written", "reason"),
    [
        ("/(unclosed/", "not a valid regular expression: missing ), unterminated subpattern"),
        ("/[a-/", "not a valid regular expression"),
        ("/*/", "not a valid regular expression: nothing to repeat"),
        ("//", "the pattern is empty"),
        ('""', "the pattern is empty"),
        ("   ", "the pattern is empty"),
        ("x" * (MAX_PATTERN + 1), f"longer than {MAX_PATTERN} characters"),
        ("/" + "x" * (MAX_PATTERN + 1) + "/", f"longer than {MAX_PATTERN} characters"),
    ],
)
def test_bad_patterns_are_refused_with_the_reason(written, reason) -> None:
    with pytest.raises(RoutingError, match=None) as refused:
        parse_pattern(written)
    assert reason in str(refused.value)


def test_a_pattern_of_the_maximum_length_is_accepted() -> None:
    assert parse_pattern("x" * MAX_PATTERN) == ("x" * MAX_PATTERN, False)


def test_a_broken_stored_rule_is_skipped_not_fatal() -> None:
    broken = Rule("(", True, "C0BROKEN")
    assert first_match([broken, BILLING], "refund") == BILLING


def test_rules_show_as_written() -> None:
    assert BILLING.shown() == "refund"
    assert CARDS.shown() == r"/charge ?back|double.charged/"
