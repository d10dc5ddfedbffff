"""The reply policy: what a public answer may contain, checked before anything is published.

Pure code: no Slack, no X client, no database. Every path that can make text public (a
proposal, a rep's Answer now, a moderator's Send now) runs :func:`check_reply`; the text the
outbox publishes is :func:`bot.answer_rules.published_text`, exactly what was checked.

What counts as personal data:

- **E-mail address**: ``name@domain.tld``.
- **Card number**: 13 to 19 digits, alone or in groups split by single spaces, dashes or dots,
  that pass the Luhn check.
- **Phone number**: 7 to 15 digits, optionally starting with ``+`` (or ``00``), in groups split
  by single spaces, dots or dashes, with an optional area code in parentheses. Not counted:
  numbers right after ``#`` (order numbers like ``#1234567``) or part of a word (``SKU-1234567``),
  amounts next to a currency (``$1 299 000``, ``1.299.000 €``) or ``%``, dates (``2024-05-01``,
  ``01.05.2024``), time ranges (``10.30-11.45``), years (``2019-2024``), lists of one- or
  two-digit numbers not starting with 0 (sizes ``36 38 40 42``), decimals (``3.14159265``) and
  digits inside a link.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from twitter_text import extract_urls

from bot.answer_rules import AnswerCheck, check_answer, normalize_answer

DOMAINS_VARIABLE = "CARE_ALLOWED_LINK_DOMAINS"
MAX_SIGNATURE_LETTERS = 4
DM_KIND = "dm"  # Question.kind of a direct message

EMAIL_PROBLEM = (
    "Remove the e-mail address: replies are public, so they must not contain contact details."
)
CARD_PROBLEM = "Remove the card number: payment card numbers must never be written in a reply."
PHONE_PROBLEM = (
    "Remove the phone number: replies are public, so they must not contain contact details. "
    "If it is an order or reference number, write it with # in front (like #1234567)."
)
DM_NOTE = " This holds in direct messages too, unless an admin allows it."


@dataclass(frozen=True)
class ReplyPolicy:
    """What a reply may contain, beyond X's own rules.

    ``allowed_link_domains`` allow their subdomains too; ``deny_terms`` match case-insensitively
    as whole words or phrases; ``personal_data_in_dm`` lets replies to direct messages carry
    e-mail addresses, phone and card numbers.
    """

    allowed_link_domains: frozenset[str] = frozenset()
    deny_terms: tuple[str, ...] = ()
    personal_data_in_dm: bool = False
    _deny_patterns: tuple[tuple[str, re.Pattern[str]], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        domains = frozenset(normalize_domain(domain) for domain in self.allowed_link_domains)
        object.__setattr__(self, "allowed_link_domains", domains)
        terms = tuple(dict.fromkeys(t for t in (_fold(term) for term in self.deny_terms) if t))
        object.__setattr__(self, "deny_terms", terms)
        object.__setattr__(self, "_deny_patterns", tuple((t, _term_pattern(t)) for t in terms))

    def allows_host(self, host: str) -> bool:
        """Whether a link to ``host`` is allowed (a domain allows its subdomains)."""
        return any(host == d or host.endswith("." + d) for d in self.allowed_link_domains)

    def denied_terms_in(self, text: str) -> list[str]:
        """The deny-list terms ``text`` uses, in list order."""
        folded = _fold(text)
        return [term for term, pattern in self._deny_patterns if pattern.search(folded)]


def check_reply(
    text: str | None, policy: ReplyPolicy, *, signature: str | None, is_dm: bool
) -> AnswerCheck:
    """Check an answer against X's rules and the reply policy; problems say what to change."""
    basic = check_answer(text, signature)
    answer = normalize_answer(text)
    if not answer:
        return basic
    problems = list(basic.problems)
    if not (is_dm and policy.personal_data_in_dm):
        note = DM_NOTE if is_dm else ""
        problems += [problem + note for problem in _personal_data(answer)]
    terms = policy.denied_terms_in(answer)
    if terms:
        problems.append(_denied(terms))
    hosts = [host for host in link_hosts(answer) if not policy.allows_host(host)]
    if hosts:
        problems.append(_links(hosts, policy))
    return AnswerCheck(
        ok=not problems, weighted_length=basic.weighted_length, problems=tuple(problems)
    )


# -- signatures -----------------------------------------------------------------------------------


def signature_for(name: str, fallback: str = "") -> str:
    """Initials like ``^JS`` from a person's name; ``""`` when neither name has a letter.

    First letters of the first and last word (two letters of a single word), uppercase, letters
    only, at most four; ``fallback`` (the user name) is used when ``name`` has no letters.
    """
    for candidate in (name, fallback):
        # NFKC: full-width and compatibility letters become the letters they stand for.
        words = [_letters(word) for word in unicodedata.normalize("NFKC", candidate).split()]
        words = [word for word in words if word]
        if len(words) >= 2:
            initials = words[0][0] + words[-1][0]
        elif words:
            initials = words[0][:2]
        else:
            continue
        letters = _letters(initials.upper())[:MAX_SIGNATURE_LETTERS]
        if letters:
            return "^" + letters
    return ""


def signer(
    mode: Callable[[], str], name_of: Callable[[str], str | None]
) -> Callable[[str], str | None]:
    """Signatures as CARE_SIGNATURE says now: None when ``off``, else the person's initials."""

    def sign(user_id: str) -> str | None:
        if mode() != "initials":
            return None
        return signature_for(name_of(user_id) or "") or None

    return sign


def _letters(word: str) -> str:
    return "".join(char for char in word if char.isalpha())


# -- configuration values ------------------------------------------------------------------------

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def normalize_domain(raw: str) -> str:
    """A domain as the policy compares it: lowercase ASCII (punycode). Raises ValueError."""
    domain = raw.strip().lower().removeprefix("*.").rstrip(".")
    if "/" in domain or ":" in domain or "@" in domain:
        raise ValueError(f"{raw!r} is not a domain; write only the domain, like example.com")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise ValueError(f"{raw!r} is not a valid domain name") from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{raw!r} is not a domain like example.com")
    return domain


def parse_domains(raw: str) -> frozenset[str]:
    """Domains from a comma-separated value, normalized. Raises ValueError naming a bad one."""
    return frozenset(normalize_domain(part.strip()) for part in raw.split(",") if part.strip())


def parse_terms(raw: str, separator: str) -> tuple[str, ...]:
    """Deny-list terms from a comma-separated value or a file's lines (``#`` starts a comment)."""
    parts = (part.strip() for part in raw.split(separator))
    return tuple(part for part in parts if part and not part.startswith("#"))


# -- links ---------------------------------------------------------------------------------------

_SCHEME_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s<>\"]+", re.IGNORECASE)
_SAFE_HOST = re.compile(r"^[a-z0-9.-]{1,253}$")


def link_hosts(text: str) -> list[str]:
    """Hosts of every link X would make of ``text`` (bare domains too), plus any ``scheme://``."""
    hosts: list[str] = []
    for url in [*extract_urls(text), *(m.group(0) for m in _SCHEME_URL.finditer(text))]:
        host = _host(url)
        if host not in hosts:
            hosts.append(host)
    return hosts


def _host(url: str) -> str:
    rest = re.sub(r"^[a-z][a-z0-9+.-]*://", "", url, flags=re.IGNORECASE)
    host = re.split(r"[/?#]", rest, maxsplit=1)[0].rsplit("@", 1)[-1]
    host = re.sub(r":\d*$", "", host).lower().rstrip(".")
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _links(hosts: list[str], policy: ReplyPolicy) -> str:
    shown = [h for h in hosts if _SAFE_HOST.match(h)][:3]
    what = "the links to " + ", ".join(shown) if shown else "the links"
    if len(hosts) == 1:
        what = f"the link to {shown[0]}" if shown else "the link"
    if not policy.allowed_link_domains:
        return (
            f"Remove {what}: replies may not contain links (X turns a bare domain like "
            "example.com into a link too). An admin can allow domains with "
            f"/care config link_domains (or {DOMAINS_VARIABLE})."
        )
    allowed = ", ".join(sorted(policy.allowed_link_domains))
    return f"Remove {what}: replies may link only to {allowed} (and their subdomains)."


# -- deny list -----------------------------------------------------------------------------------


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def _term_pattern(term: str) -> re.Pattern[str]:
    body = r"\s+".join(re.escape(word) for word in term.split(" "))
    return re.compile(rf"(?<!\w){body}(?!\w)")


def _denied(terms: list[str]) -> str:
    shown = ", ".join(f"“{_plain(term)}”" for term in terms[:5])
    noun = "this term" if len(terms) == 1 else "these terms"
    return f"Reword the answer without {shown}: replies must not use {noun}."


def _plain(term: str) -> str:
    """A term as a refusal may quote it: no markup characters, not too long."""
    cleaned = "".join(c for c in term if c not in "<>&*_~`|" and unicodedata.category(c)[0] != "C")
    return cleaned[:40]


# -- personal data -------------------------------------------------------------------------------

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}")
# A number as people write it: optional +country, optional (area), digit groups split by one
# space, dot or dash. It may not continue a word, a number, an order number or a code.
_NUMBER = re.compile(
    r"(?<![\w#/.\-+])(?:\+ ?\d{1,4}[ .\-]?)?(?:\(\d{1,5}\)[ .\-]?)?\d+(?:[ .\-]\d+)*(?!\w)"
)
_CURRENCY_BEFORE = re.compile(r"(?:[$€£¥₹]|\b(?:EUR|USD|GBP|CHF|JPY|INR|CAD|AUD))\s?$", re.I)
_CURRENCY_AFTER = re.compile(r"^\s?(?:[$€£¥₹%]|(?:EUR|USD|GBP|CHF|JPY|INR|CAD|AUD)\b)", re.I)
_DATE = re.compile(r"^(?:\d{4}[.\-]\d{1,2}[.\-]\d{1,2}|\d{1,2}[.\-]\d{1,2}[.\-]\d{4})$")
_TIME_RANGE = re.compile(r"^\d{1,2}\.\d{2} ?- ?\d{1,2}\.\d{2}$")
_YEAR = re.compile(r"^(?:19|20)\d{2}$")
_DECIMAL = re.compile(r"^\d{1,3}\.\d+$")


def _personal_data(text: str) -> list[str]:
    """The personal-data problems in ``text`` (one per kind)."""
    problems = []
    if _EMAIL.search(text):
        problems.append(EMAIL_PROBLEM)
    runs = list(_NUMBER.finditer(_without_emails(text)))
    if any(_has_card(match.group(0)) for match in runs):
        problems.append(CARD_PROBLEM)
    outside_links = _without_links(_without_emails(text))
    if any(_is_phone(outside_links, match) for match in _NUMBER.finditer(outside_links)):
        problems.append(PHONE_PROBLEM)
    return problems


def _without_emails(text: str) -> str:
    return _EMAIL.sub(lambda m: " " * len(m.group(0)), text)


def _without_links(text: str) -> str:
    for url in sorted(set(extract_urls(text)), key=len, reverse=True):
        text = text.replace(url, " " * len(url))
    return _SCHEME_URL.sub(lambda m: " " * len(m.group(0)), text)


def _groups(run: str) -> list[str]:
    return re.findall(r"\d+", run)


def _has_card(run: str) -> bool:
    """Whether consecutive digit groups of ``run`` form a 13-19 digit Luhn-valid number."""
    groups = _groups(run)
    for start in range(len(groups)):
        digits = ""
        for group in groups[start:]:
            digits += group
            if len(digits) > 19:
                break
            if len(digits) >= 13 and luhn_valid(digits):
                return True
    return False


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number passes."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def _is_phone(text: str, match: re.Match[str]) -> bool:
    run = match.group(0)
    groups = _groups(run)
    digits = "".join(groups)
    if not 7 <= len(digits) <= 15:
        return False
    if _CURRENCY_BEFORE.search(text[: match.start()]) or _CURRENCY_AFTER.match(text[match.end() :]):
        return False
    if _DATE.match(run) or _TIME_RANGE.match(run) or _DECIMAL.match(run):
        return False
    if all(_YEAR.match(group) for group in groups):
        return False
    international = run.startswith("+") or "(" in run
    return international or any(len(g) > 2 for g in groups) or digits.startswith("0")
