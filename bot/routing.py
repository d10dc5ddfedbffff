"""Routing rules: which channel a question's card goes to, and which experts it mentions.

A rule is a keyword or phrase (matched case-insensitively as whole words) or a regular
expression written between slashes (``/refund|chargeback/``, case-insensitive). Rules apply in
the order they were added; the first match wins, and no match means the default channel. A
question is routed once, at intake, so changing the rules affects new questions only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.models import Route

MAX_PATTERN = 200
_QUOTES = {'"': '"', "“": "”", "'": "'", "‘": "’"}  # noqa: RUF001 - typographic quotes are meant
_SPACES = re.compile(r"\s+")


class RoutingError(ValueError):
    """A pattern that cannot be a rule; the message says why."""


@dataclass(frozen=True)
class Rule:
    """One routing rule, as stored."""

    pattern: str  # the keyword or phrase, or the regex without its slashes
    is_regex: bool
    channel: str
    group: str | None = None

    def shown(self) -> str:
        """The pattern as an admin writes it: ``/regex/`` or the keyword."""
        return f"/{self.pattern}/" if self.is_regex else self.pattern


def parse_pattern(written: str) -> tuple[str, bool]:
    """``(pattern, is_regex)`` from what an admin wrote: ``/regex/``, ``"a phrase"`` or a word."""
    text = written.strip()
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        pattern, is_regex = text[1:-1], True
    elif len(text) >= 2 and _QUOTES.get(text[0]) == text[-1]:
        pattern, is_regex = _SPACES.sub(" ", text[1:-1].strip()), False
    else:
        pattern, is_regex = _SPACES.sub(" ", text), False
    if not pattern.strip():
        raise RoutingError("the pattern is empty")
    if len(pattern) > MAX_PATTERN:
        raise RoutingError(f"the pattern is longer than {MAX_PATTERN} characters")
    compile_pattern(pattern, is_regex=is_regex)
    return pattern, is_regex


def compile_pattern(pattern: str, *, is_regex: bool) -> re.Pattern[str]:
    """The compiled, case-insensitive matcher of a rule."""
    if not is_regex:
        words = r"\s+".join(re.escape(word) for word in pattern.split())
        # Whole words: no letter, digit or underscore may touch the phrase on either side.
        return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise RoutingError(f"not a valid regular expression: {exc}") from None


def first_match(rules: Iterable[Rule], text: str) -> Rule | None:
    """The first rule whose pattern occurs in ``text``."""
    for rule in rules:
        try:
            matcher = compile_pattern(rule.pattern, is_regex=rule.is_regex)
        except RoutingError:
            continue  # stored before a stricter check; never let one bad rule stop intake
        if matcher.search(text):
            return rule
    return None


# -- storage ---------------------------------------------------------------------------------


def load_rules(session: Session) -> list[Rule]:
    """Every stored rule, in the order they apply."""
    return [
        Rule(route.pattern, route.is_regex, route.channel, route.mention_group)
        for route in session.scalars(select(Route).order_by(Route.id))
    ]


def stored_routes(session: Session) -> Sequence[Route]:
    """The rows behind :func:`load_rules`, numbered from 1 in this order."""
    return session.scalars(select(Route).order_by(Route.id)).all()


def add_rule(session: Session, rule: Rule, *, actor: str, now: datetime) -> Route:
    """Store ``rule`` after the existing ones (the caller audits)."""
    parse_pattern(rule.shown())  # the same checks as for typed patterns
    route = Route(
        pattern=rule.pattern,
        is_regex=rule.is_regex,
        channel=rule.channel,
        mention_group=rule.group,
        created_by=actor,
        created_at=now,
    )
    session.add(route)
    session.flush()
    return route
