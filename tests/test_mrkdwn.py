"""Tests for bot.mrkdwn: escaping, cleaning and truncating untrusted text for Slack."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.mrkdwn import clean, escape, quote, safe, safe_quote, truncate

FAMILY = "👩\u200d👩\u200d👧"
FLAG_FR = "🇫🇷"
FLAG_SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
THUMBS_MEDIUM = "👍🏽"
KEYCAP_ONE = "1\ufe0f\u20e3"
E_ACUTE = "e\u0301"
HEART = "❤\ufe0f"

ENTITY = re.compile(r"&(?:amp|lt|gt);")


def unescape(text: str) -> str:
    """Undo Slack escaping, the way a Slack client displays the text."""
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def assert_slack_safe(text: str) -> None:
    """No markup characters, and every & starts one of the three entities."""
    assert "<" not in text
    assert ">" not in text
    assert "&" not in ENTITY.sub("", text)


# --- escape ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<!here>", "&lt;!here&gt;"),
        ("<!everyone> now", "&lt;!everyone&gt; now"),
        ("hi <@U123>", "hi &lt;@U123&gt;"),
        ("<http://evil|bank>", "&lt;http://evil|bank&gt;"),
        ("<!subteam^S1>", "&lt;!subteam^S1&gt;"),
        ("<#C123|general>", "&lt;#C123|general&gt;"),
        ("Tom & Jerry", "Tom &amp; Jerry"),
        ("&amp;", "&amp;amp;"),
        ("&lt;!channel&gt;", "&amp;lt;!channel&amp;gt;"),
        ("plain *bold* _it_", "plain *bold* _it_"),
        ("", ""),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert escape(raw) == escaped
    assert unescape(escape(raw)) == raw


@pytest.mark.parametrize(
    "attack",
    ["<!channel>", "<!here>", "<@U123>", "<http://evil|bank>", "<!subteam^S1>", "<<!channel>>"],
)
def test_safe_neutralizes_markup(attack: str) -> None:
    out = safe(f"please {attack} help", 3000)
    assert_slack_safe(out)
    assert unescape(out) == f"please {attack} help"


def test_ampersand_entities_round_trip() -> None:
    # A customer literally typing "&amp;" must see "&amp;", not "&".
    assert unescape(safe("a &amp; b &lt; c", 100)) == "a &amp; b &lt; c"


# --- clean -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "cleaned"),
    [
        ("a\x00b", "ab"),
        ("a\x07\x1b[31mb", "a[31mb"),
        ("a\x85b\x9fc", "abc"),
        ("a\x7fb", "ab"),
        ("tab\tand\nnewline", "tab\tand\nnewline"),
        ("one\r\ntwo\rthree", "one\ntwo\nthree"),
        ("line\u2028sep\u2029para", "line\nsep\npara"),
        ("evil\u202egnp.exe", "evilgnp.exe"),
        ("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069x", "x"),
        ("pay\u200bpal", "paypal"),
        ("zero\u200cwidth\u2060joiner\ufeff", "zerowidthjoiner"),
        ("soft\u00adhyphen", "softhyphen"),
        (FAMILY, FAMILY),
        ("👨\u200d💻 dev", "👨\u200d💻 dev"),
        (FLAG_SCOTLAND, FLAG_SCOTLAND),
        (HEART + KEYCAP_ONE + E_ACUTE, HEART + KEYCAP_ONE + E_ACUTE),
        ("a\n\n\nb", "a\n\n\nb"),
        ("a\n\n\n\nb", "a\n\n\nb"),
        ("a\n\n \n\t\n\n\n\nb", "a\n\n\nb"),
        ("a\r\n\r\n\r\n\r\n\r\nb", "a\n\n\nb"),
        ("lone \ud800 high", "lone  high"),
        ("lone \udc00 low", "lone  low"),
        ("paired \ud83d\ude00", "paired 😀"),
    ],
)
def test_clean(raw: str, cleaned: str) -> None:
    assert clean(raw) == cleaned


def test_clean_runs_before_blank_line_collapse() -> None:
    # Invisible characters must not keep blank lines from being collapsed.
    assert clean("a\n\u200b\n\u202e\n\x00\n\nb") == "a\n\n\nb"


# --- truncate ----------------------------------------------------------------------------


def test_truncate_keeps_short_text() -> None:
    assert truncate("hello", 5) == "hello"
    assert truncate("", 0) == ""


def test_truncate_appends_ellipsis_within_limit() -> None:
    assert truncate("hello world", 8) == "hello w…"
    assert truncate("hello world", 8, ellipsis="...") == "hello..."


def test_truncate_drops_ellipsis_when_it_does_not_fit() -> None:
    assert truncate("hello", 2, ellipsis="...") == "he"
    assert truncate("hello", 0) == ""


def test_truncate_rejects_negative_limit() -> None:
    with pytest.raises(ValueError, match="negative"):
        truncate("hello", -1)


@pytest.mark.parametrize("limit", range(12))
def test_truncate_never_splits_an_entity(limit: int) -> None:
    text = "a&amp;b&lt;c&gt;"
    out = truncate(text, limit)
    assert len(out) <= limit
    kept = out.removesuffix("…")
    assert text.startswith(kept)
    assert "&" not in ENTITY.sub("", kept)


@pytest.mark.parametrize(
    "cluster",
    [FAMILY, FLAG_FR, FLAG_SCOTLAND, THUMBS_MEDIUM, KEYCAP_ONE, E_ACUTE, HEART, "a\u0323\u0302"],
    ids=[
        "family",
        "flag",
        "subdivision-flag",
        "skin-tone",
        "keycap",
        "combining",
        "vs16",
        "two-marks",
    ],
)
def test_truncate_never_splits_a_grapheme(cluster: str) -> None:
    text = "x" + cluster * 4
    for limit in range(len(text) + 1):
        out = truncate(text, limit)
        assert len(out) <= limit
        kept = out.removesuffix("…")
        # Whatever is kept must be "x" followed by whole clusters only.
        assert kept == "" or (
            kept[0] == "x" and kept[1:] == cluster * ((len(kept) - 1) // len(cluster))
        )


def test_truncate_keeps_flag_pairs_aligned() -> None:
    flags = "🇫🇷🇩🇪🇯🇵"  # six regional indicators: FR, DE, JP
    assert truncate(flags, 4) == "🇫🇷…"
    assert truncate(flags, 5) == "🇫🇷🇩🇪…"


def test_truncate_of_only_combining_marks_falls_back_to_ellipsis() -> None:
    # No boundary exists inside a run of marks attached to one base, so nothing is kept.
    assert truncate("a" + "\u0301" * 10, 5) == "…"


# --- quote -------------------------------------------------------------------------------


def test_quote_prefixes_every_line() -> None:
    assert quote("one\ntwo\n\nthree") == "> one\n> two\n>\n> three"


def test_quote_markup_is_real_but_content_is_escaped() -> None:
    assert quote(safe("hi\n> not a quote\n<!here>", 100)) == (
        "> hi\n> &gt; not a quote\n> &lt;!here&gt;"
    )


def test_safe_quote_fits_limit_despite_prefixes() -> None:
    out = safe_quote("a\n" * 2000, 100)
    assert len(out) <= 100
    assert all(line.startswith(">") for line in out.split("\n"))


def test_safe_quote_of_invisible_text_is_empty() -> None:
    assert safe_quote(" \u200b\n\x00 ", 100) == ""


# --- properties --------------------------------------------------------------------------

TRICKY = [
    "&",
    "<",
    ">",
    ";",
    "&amp;",
    "&lt;",
    "&gt;",
    "<!channel>",
    "<@U123>",
    "\n",
    "\r",
    "\u200d",
    "\u200b",
    "\u202e",
    "\x00",
    "\ufe0f",
    "\u0301",
    "🏽",
    "🇫",
    "\ud83d",
    "\ude00",
    FAMILY,
]
# Hypothesis leaves surrogates out unless asked; controls and format characters (bidi,
# zero-width) are the interesting ones here, so weight them up too.
any_char = st.characters(exclude_categories=()) | st.characters(categories=["Cs", "Cc", "Cf"])
tricky_text = st.lists(st.sampled_from(TRICKY) | st.text(any_char, max_size=5)).map("".join)
any_text = st.text(any_char) | tricky_text
# Long posts (up to ~120 KB) built by repetition: generating them char by char is too slow.
huge_text = st.builds(
    lambda chunk, size: (chunk * (size // len(chunk) + 1))[:size],
    any_text.filter(bool),
    st.integers(1_000, 120_000),
)


@settings(deadline=None)  # 120 KB inputs can be slow on a busy machine
@given(text=any_text | huge_text, limit=st.integers(0, 4000))
def test_safe_is_bounded_and_markup_free(text: str, limit: int) -> None:
    out = safe(text, limit)
    assert len(out) <= limit
    assert_slack_safe(out)
    # Encodable: no lone surrogates reach Slack.
    out.encode("utf-8")


@given(text=any_text)
def test_safe_without_truncation_shows_the_cleaned_text(text: str) -> None:
    assert unescape(safe(text, 10**9)) == clean(text)


@given(text=any_text, limit=st.integers(0, 200))
def test_truncate_returns_a_prefix(text: str, limit: int) -> None:
    escaped = escape(clean(text))
    out = truncate(escaped, limit)
    assert len(out) <= limit
    if out != escaped:
        kept = out.removesuffix("…")
        assert escaped.startswith(kept)
        assert not kept.endswith("\u200d")


@settings(deadline=None)
@given(text=any_text | huge_text, limit=st.integers(0, 3000))
def test_safe_quote_is_bounded(text: str, limit: int) -> None:
    out = safe_quote(text, limit)
    assert len(out) <= limit
    if out:
        assert all(line.startswith(">") for line in out.split("\n"))
        body = "\n".join(line.removeprefix(">").removeprefix(" ") for line in out.split("\n"))
        assert_slack_safe(body)
