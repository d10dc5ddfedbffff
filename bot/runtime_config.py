"""Workflow settings admins change at run time with ``/care config``.

A value stored in the database wins over the environment; removing it (``/care config key
default``) falls back to the environment again. Values are checked by the same parsers as the
environment, so a setting can never hold what start-up would have refused. Every change is
audited. Deadline settings apply to questions that arrive afterwards (deadlines are stored at
intake), exactly as a changed environment variable would.

The reply policy's ``deny_terms`` replace CARE_DENY_TERMS only: terms in CARE_DENY_TERMS_FILE
always apply as well, so a file a compliance team maintains cannot be switched off from Slack.
``deny_terms none`` and ``link_domains none`` mean an empty list (``default`` is the environment).
A changed policy applies to every answer checked afterwards, including proposals already written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from bot.business_hours import BusinessHours, BusinessHoursError
from bot.config import Settings, format_duration, parse_duration
from bot.escalation import EscalationPolicy
from bot.reply_policy import ReplyPolicy, parse_domains, parse_terms
from bot.states import record
from storage.models import Setting

log = logging.getLogger(__name__)

RESET_WORDS = frozenset({"default", "reset", "unset"})
MAX_VOTES = 50
MAX_DEADLINE = timedelta(days=30)
MAX_RAW = 200  # longer than any valid value; keeps junk out of the table and the audit log
MAX_LIST_RAW = 1000  # a deny list or domain list is longer, but still bounded
NONE_WORDS = frozenset({"none", "off"})
_WHOLE_NUMBER = re.compile(r"[0-9]{1,4}")
_AUTOLINK = re.compile(r"(?:(?<=,)|^)\s*https?://([^/,\s]+)/?\s*(?=,|$)", re.IGNORECASE)


class ConfigValueError(ValueError):
    """A value ``/care config`` refuses; the message says what it expects."""


@dataclass(frozen=True)
class Key:
    """One changeable setting: its environment variable, how to parse and how to show it."""

    name: str
    env: str
    what: str  # what a valid value looks like, for help and errors
    parse: Callable[[str], Any]
    show: Callable[[Any], str]
    from_settings: Callable[[Settings], Any]
    max_raw: int = MAX_RAW


def _votes(raw: str) -> int:
    # Not str.isdigit(): it accepts digits such as "²" that int() refuses.
    if not _WHOLE_NUMBER.fullmatch(raw) or not 1 <= int(raw) <= MAX_VOTES:
        raise ConfigValueError(f"expected a whole number from 1 to {MAX_VOTES}")
    return int(raw)


def _deadline(raw: str) -> timedelta:
    try:
        value = parse_duration(raw)
    except ValueError as exc:
        raise ConfigValueError(str(exc)) from None
    if not timedelta(0) < value <= MAX_DEADLINE:
        raise ConfigValueError("expected a duration above 0 and at most 30d")
    return value


def _hours(raw: str) -> BusinessHours | None:
    if raw.lower() in {"off", "none", "always"}:
        return None
    try:
        return BusinessHours.parse(raw)
    except BusinessHoursError as exc:
        raise ConfigValueError(str(exc)) from None


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw.lower() not in allowed:
            raise ConfigValueError("expected " + " or ".join(allowed))
        return raw.lower()

    return parse


def _show_hours(value: BusinessHours | None) -> str:
    return "off (always open)" if value is None else value.describe()


def _terms(raw: str) -> tuple[str, ...]:
    if raw.lower() in NONE_WORDS:
        return ()
    # Duplicates in any case are dropped, as the policy matches terms in any case.
    unique: dict[str, str] = {}
    for term in parse_terms(raw, ","):
        unique.setdefault(term.casefold(), term)
    terms = tuple(unique.values())
    if not terms:
        raise ConfigValueError("expected words or phrases separated by commas, or none")
    return terms


def _domains(raw: str) -> frozenset[str]:
    if raw.lower() in NONE_WORDS:
        return frozenset()
    # Slack sends a typed "acme.com" as a link, which typed_text makes "http://acme.com".
    raw = _AUTOLINK.sub(r"\1", raw)
    try:
        domains = parse_domains(raw)
    except ValueError as exc:
        raise ConfigValueError(str(exc)) from None
    if not domains:
        raise ConfigValueError("expected domains separated by commas, or none")
    return domains


def _show_list(values: tuple[str, ...] | frozenset[str]) -> str:
    items = sorted(values) if isinstance(values, frozenset) else list(values)
    return ", ".join(items) if items else "none"


KEYS: dict[str, Key] = {
    key.name: key
    for key in (
        Key("votes", "CARE_VOTES_TO_SELECT", "1-50", _votes, str, lambda s: s.votes_to_select),
        Key(
            "nudge_after",
            "CARE_NUDGE_AFTER",
            "a duration like 15m",
            _deadline,
            format_duration,
            lambda s: s.nudge_after,
        ),
        Key(
            "escalate_after",
            "CARE_ESCALATE_AFTER",
            "a duration like 60m",
            _deadline,
            format_duration,
            lambda s: s.escalate_after,
        ),
        Key(
            "escalate_again_after",
            "CARE_ESCALATE_AGAIN_AFTER",
            "a duration like 2h",
            _deadline,
            format_duration,
            lambda s: s.escalate_again_after,
        ),
        Key(
            "business_hours",
            "CARE_BUSINESS_HOURS",
            "like `Mon-Fri 09:00-18:00 Europe/Berlin`, or off",
            _hours,
            _show_hours,
            lambda s: s.business_hours,
        ),
        Key(
            "signature",
            "CARE_SIGNATURE",
            "off or initials",
            _choice("off", "initials"),
            str,
            lambda s: s.signature,
        ),
        Key(
            "pool",
            "CARE_POOL",
            "open or registered",
            _choice("open", "registered"),
            str,
            lambda s: s.pool,
        ),
        Key(
            "deny_terms",
            "CARE_DENY_TERMS",
            "words or phrases separated by commas, or none "
            "(terms in CARE_DENY_TERMS_FILE always apply too)",
            _terms,
            _show_list,
            lambda s: s.deny_terms,
            max_raw=MAX_LIST_RAW,
        ),
        Key(
            "link_domains",
            "CARE_ALLOWED_LINK_DOMAINS",
            "domains like acme.com separated by commas (subdomains included), or none",
            _domains,
            _show_list,
            lambda s: s.reply_policy.allowed_link_domains,
            max_raw=MAX_LIST_RAW,
        ),
    )
}


@dataclass(frozen=True)
class Entry:
    """A setting as ``/care config`` shows it."""

    key: str
    value: str
    source: str  # "set with /care config" | "environment" | "default"
    what: str


class RuntimeConfig:
    """Effective workflow settings: the database over the environment."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        clock: Callable[[], datetime],
        environ_names: frozenset[str] = frozenset(),
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        # Which variables the environment really set, to tell "environment" from "default".
        self.environ_names = environ_names
        # Read from a snapshot, never the database: settings are read inside other
        # transactions (a vote reads the threshold), and SQLite allows one writer at a time.
        self._stored: dict[str, str] = {}
        self._policy: tuple[tuple[Any, ...], ReplyPolicy] | None = None
        self.refresh()

    def refresh(self) -> None:
        """Reload the stored settings (a job calls this, so other processes' changes arrive)."""
        try:
            with self.sessions() as session:
                stored = {s.key: s.value for s in session.scalars(select(Setting))}
        except SQLAlchemyError as exc:
            log.warning("Could not read the stored settings (%s); keeping the last known", exc)
            return
        self._stored = stored

    # -- reading ------------------------------------------------------------------------

    def value(self, name: str) -> Any:
        """The effective value of setting ``name``."""
        key = KEYS[name]
        raw = self._stored.get(name)
        if raw is not None:
            try:
                return key.parse(raw)
            except ConfigValueError:
                pass  # written by an older version with other rules: the environment decides
        return key.from_settings(self.settings)

    def votes_to_select(self) -> int:
        return int(self.value("votes"))

    def pool_mode(self) -> str:
        return str(self.value("pool"))

    def signature(self) -> str:
        return str(self.value("signature"))

    def business_hours(self) -> BusinessHours | None:
        hours: BusinessHours | None = self.value("business_hours")
        return hours

    def escalation_policy(self) -> EscalationPolicy:
        """The deadlines a question arriving now gets."""
        return EscalationPolicy(
            self.value("nudge_after"),
            self.value("escalate_after"),
            self.value("escalate_again_after"),
            self.business_hours(),
        )

    def reply_policy(self) -> ReplyPolicy:
        """What answers may contain now: stored deny terms and domains over the environment."""
        terms: tuple[str, ...] = self.value("deny_terms") + self.settings.deny_terms_from_file
        domains: frozenset[str] = self.value("link_domains")
        in_dm = self.settings.reply_policy.personal_data_in_dm
        # Built once per change: the policy compiles a pattern per term.
        cache_key = (terms, domains, in_dm)
        if self._policy is None or self._policy[0] != cache_key:
            self._policy = (cache_key, ReplyPolicy(domains, terms, personal_data_in_dm=in_dm))
        return self._policy[1]

    def entries(self) -> list[Entry]:
        """Every setting with its effective value and where it comes from."""
        stored = self._stored
        out = []
        for name, key in KEYS.items():
            if name in stored:
                source = "set with /care config"
            elif key.env in self.environ_names:
                source = f"environment ({key.env})"
            else:
                source = "default"
            out.append(Entry(name, key.show(self.value(name)), source, key.what))
        return out

    # -- changing -----------------------------------------------------------------------

    def change(self, name: str, raw: str, actor: str) -> Entry:
        """Store ``raw`` for ``name`` (``default`` drops it); audited. Raises on bad input.

        Nothing is stored or audited when the value is refused or already stored as given.
        """
        key = KEYS.get(name)
        if key is None:
            raise ConfigValueError(f"unknown setting; the settings are: {', '.join(KEYS)}")
        raw = " ".join(raw.split())
        after: str | None = None
        if raw.lower() not in RESET_WORDS:
            if len(raw) > key.max_raw:
                raise ConfigValueError(f"expected {key.what} (at most {key.max_raw} characters)")
            after = _stored_form(key, key.parse(raw))
        now = self.clock()
        with self.sessions.begin() as session:
            stored = session.get(Setting, name, with_for_update=True)
            before = None if stored is None else stored.value
            if after is None and stored is not None:
                session.delete(stored)
            elif after is not None and stored is None:
                session.add(Setting(key=name, value=after, updated_by=actor, updated_at=now))
            elif after is not None and stored is not None:
                stored.value, stored.updated_by, stored.updated_at = after, actor, now
            if before != after:
                record(
                    session,
                    actor=actor,
                    action="config.changed",
                    now=now,
                    detail={"key": name, "from": before, "to": after},
                )
        self.refresh()
        return self.entry(name)

    def entry(self, name: str) -> Entry:
        """One setting as :meth:`entries` shows it."""
        return next(entry for entry in self.entries() if entry.key == name)


def _stored_form(key: Key, value: Any) -> str:
    """What is stored: the canonical form, which parses back to ``value``."""
    return "off" if value is None else str(key.show(value))
