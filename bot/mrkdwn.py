"""Make untrusted text safe to show inside Slack mrkdwn.

Customer posts and employee answers are shown in Slack verbatim. Slack treats ``&``, ``<``
and ``>`` as markup (``<!channel>``, ``<@U123>``, ``<http://x|y>``), so every piece of
user-provided text goes through :func:`safe` before it reaches a block, and markup we add
ourselves (quotes, links, mentions) is added after that.
"""

from __future__ import annotations

import re
import unicodedata

# C0/C1 controls except \t and \n: NUL, escape sequences, and the like can truncate or garble
# what Slack shows. \r is handled separately so Windows line endings survive as newlines.
_CONTROL = "\x00-\x08\x0b-\x1f\x7f-\x9f"
# Bidi overrides/isolates reorder text so a card can display something other than what was
# written (the "Trojan Source" trick).
_BIDI = "\u202a-\u202e\u2066-\u2069"
# Invisible characters that can hide or split words. U+200D (ZWJ) is deliberately absent:
# emoji sequences such as the family emoji need it.
_INVISIBLE = "\u00ad\u180e\u200b\u200c\u2060-\u2064\ufeff"
_REMOVED = re.compile(f"[{_CONTROL}{_BIDI}{_INVISIBLE}]")
_SURROGATE = re.compile("[\ud800-\udfff]")
# CR/CRLF and the Unicode line/paragraph separators all become \n, so a block quote gets a
# ">" on every line the reader sees.
_LINE_ENDINGS = re.compile("\r\n?|[\u2028\u2029]")
# A newline followed by three or more blank (or whitespace-only) lines.
_BLANK_RUN = re.compile(r"\n(?:[ \t]*\n){3,}")

_ENTITIES = ("&amp;", "&lt;", "&gt;")
_LONGEST_ENTITY = max(len(entity) for entity in _ENTITIES)

ZWJ = "\u200d"


def clean(text: str) -> str:
    """Remove characters that break or disguise a card, keeping emoji sequences intact."""
    text = fix_surrogates(text)
    text = _LINE_ENDINGS.sub("\n", text)
    text = _REMOVED.sub("", text)
    return _BLANK_RUN.sub("\n\n\n", text)


def escape(text: str) -> str:
    """Escape the three characters Slack treats as markup."""
    # & first, so the entities produced for < and > are not escaped twice.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int, ellipsis: str = "…") -> str:
    """Shorten ``text`` to at most ``limit`` characters without breaking entities or emoji."""
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    if len(text) <= limit:
        return text
    if len(ellipsis) > limit:
        # No room to mark the cut; a clean cut is still better than exceeding the limit.
        ellipsis = ""
    cut = _cut_point(text, limit - len(ellipsis))
    return text[:cut] + ellipsis


def safe(text: str, limit: int) -> str:
    """Clean, escape and truncate user-provided text for use in mrkdwn."""
    return truncate(escape(clean(text)), limit)


def quote(text: str) -> str:
    """Render already-safe mrkdwn as a block quote, one ``>`` per line."""
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def safe_quote(text: str, limit: int) -> str:
    """Quote user-provided text in at most ``limit`` characters; "" if nothing is left."""
    # Strip after cleaning: removed invisible characters can leave blank edges behind.
    body = truncate(escape(clean(text).strip()), limit)
    if not body:
        return ""
    quoted = quote(body)
    # The "> " prefixes add characters per line, so shrink the body until the quote fits.
    while len(quoted) > limit and body:
        body = truncate(body, max(0, len(body) - (len(quoted) - limit)))
        quoted = quote(body)
    return quoted if len(quoted) <= limit else ""


def fix_surrogates(text: str) -> str:
    """Join surrogate pairs into real characters and drop unpaired surrogates."""
    if not _SURROGATE.search(text):
        return text
    # UTF-16 round trip: pairs decode to one code point, lone halves are invalid and dropped.
    return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "ignore")


def _cut_point(text: str, cut: int) -> int:
    """Move ``cut`` left until it splits neither an entity nor a grapheme cluster."""
    while cut > 0:
        entity_start = _entity_straddling(text, cut)
        if entity_start is not None:
            cut = entity_start
        elif _is_boundary(text, cut):
            break
        else:
            cut -= 1
    return cut


def _entity_straddling(text: str, cut: int) -> int | None:
    """Return where an escape entity starts if ``cut`` falls inside it."""
    start = text.rfind("&", max(0, cut - _LONGEST_ENTITY + 1), cut)
    if start == -1:
        return None
    for entity in _ENTITIES:
        if text.startswith(entity, start) and start + len(entity) > cut:
            return start
    return None


def _is_boundary(text: str, index: int) -> bool:
    """Approximate grapheme cluster boundary test between ``text[index-1]`` and ``text[index]``."""
    if index <= 0 or index >= len(text):
        return True
    before, after = text[index - 1], text[index]
    if before == ZWJ or _extends(after):
        return False
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return False
    # Flags are pairs of regional indicators: only cut after an even number of them.
    return not (_is_regional_indicator(after) and _regional_run(text, index) % 2 == 1)


def _extends(char: str) -> bool:
    """Whether ``char`` attaches to the character before it."""
    code = ord(char)
    return (
        char == ZWJ
        or unicodedata.category(char).startswith("M")  # combining marks, keycap enclosure
        or 0xFE00 <= code <= 0xFE0F  # variation selectors (text vs emoji presentation)
        or 0xE0100 <= code <= 0xE01EF  # supplementary variation selectors
        or 0x1F3FB <= code <= 0x1F3FF  # skin tone modifiers
        or 0xE0020 <= code <= 0xE007F  # tag characters in subdivision flags
    )


def _is_regional_indicator(char: str) -> bool:
    """Whether ``char`` is one half of a flag emoji."""
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def _regional_run(text: str, end: int) -> int:
    """Count consecutive regional indicators immediately before ``end``."""
    count = 0
    while end - count > 0 and _is_regional_indicator(text[end - count - 1]):
        count += 1
    return count
