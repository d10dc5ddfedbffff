"""Settings, read once from the environment (and `.env`) at start.

A missing or malformed value stops start-up with a message naming the variable and what it expects.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from dotenv import dotenv_values

from bot.business_hours import BusinessHours
from bot.reply_policy import ReplyPolicy, parse_domains, parse_terms

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_X_API_URL = "https://api.x.com"
DEFAULT_DATABASE_URL = "sqlite:///crowdcare.db"

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SLACK_ID = re.compile(r"^[A-Z0-9]{2,}$")


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class XSettings:
    """Credentials and pacing for the X (Twitter) API."""

    api_url: str = DEFAULT_X_API_URL
    bearer_token: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    api_secret: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    access_token_secret: str | None = field(default=None, repr=False)
    user_id: str | None = None
    poll_seconds: float = 60.0

    @property
    def configured(self) -> bool:
        """Posting needs the four user-context credentials; reading works with them too."""
        return all((self.api_key, self.api_secret, self.access_token, self.access_token_secret))


@dataclass(frozen=True)
class SupportSettings:
    """Where support events are forwarded, besides crowdcare's own tables."""

    webhook_url: str | None = None
    webhook_secret: str | None = field(default=None, repr=False)
    zendesk_subdomain: str | None = None
    zendesk_email: str | None = None
    zendesk_api_token: str | None = field(default=None, repr=False)
    zendesk_api_url: str | None = None
    zendesk_ticket_on: str = "escalation"

    @property
    def zendesk_configured(self) -> bool:
        return bool(self.zendesk_subdomain and self.zendesk_email and self.zendesk_api_token)


@dataclass(frozen=True)
class Settings:
    """Everything crowdcare reads from its environment. Secrets are kept out of ``repr``."""

    slack_bot_token: str | None = field(default=None, repr=False)
    slack_signing_secret: str | None = field(default=None, repr=False)
    slack_app_token: str | None = field(default=None, repr=False)
    slack_api_url: str = DEFAULT_SLACK_API_URL
    questions_channel: str | None = None
    escalation_channel: str | None = None
    oncall_group: str | None = None
    admins: frozenset[str] = frozenset()
    x: XSettings = field(default_factory=XSettings)
    database_url: str = field(default=DEFAULT_DATABASE_URL, repr=False)  # may hold a password
    votes_to_select: int = 3
    nudge_after: timedelta = timedelta(minutes=15)
    escalate_after: timedelta = timedelta(minutes=60)
    escalate_again_after: timedelta = timedelta(hours=2)
    business_hours: BusinessHours | None = None
    nudge_mention: str | None = None
    supervisor_group: str | None = None
    pool: str = "open"  # open: anyone answers | registered: only after `/care join`
    guidelines_file: str | None = None
    weekly_summary_channel: str | None = None
    signature: str = "off"  # off | initials
    # What public replies may contain: CARE_ALLOWED_LINK_DOMAINS, CARE_DENY_TERMS(_FILE) and
    # CARE_PERSONAL_DATA_IN_DM.
    reply_policy: ReplyPolicy = field(default_factory=ReplyPolicy)
    # The deny terms by source: `/care config deny_terms` replaces the variable's, never the file's.
    deny_terms: tuple[str, ...] = ()  # CARE_DENY_TERMS
    deny_terms_from_file: tuple[str, ...] = ()  # CARE_DENY_TERMS_FILE
    support: SupportSettings = field(default_factory=SupportSettings)
    sweep_seconds: float = 15.0
    outbox_seconds: float = 5.0
    send_lease: timedelta = timedelta(seconds=60)
    slack_channel_interval: float = 1.0  # seconds between posts to one Slack channel
    log_level: str = "INFO"
    # Names of the variables that were set, so `/care config` can say where a value comes from.
    configured: frozenset[str] = frozenset()

    @property
    def slack_configured(self) -> bool:
        """True when the Slack bot token is set (otherwise the CLI offers the demo)."""
        return bool(self.slack_bot_token)

    def secrets(self) -> list[str]:
        """Every secret value, for redaction."""
        values = [
            self.slack_bot_token,
            self.slack_signing_secret,
            self.slack_app_token,
            self.x.bearer_token,
            self.x.api_key,
            self.x.api_secret,
            self.x.access_token,
            self.x.access_token_secret,
            self.support.webhook_secret,
            self.support.zendesk_api_token,
            _password_in(self.database_url),
        ]
        return [v for v in values if v]


def load_settings(
    environ: Mapping[str, str] | None = None, env_file: str | Path | None = ".env"
) -> Settings:
    """Read settings from ``environ`` (default: the process environment) over ``env_file``."""
    merged: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    merged.update(os.environ if environ is None else environ)
    return _parse(_Reader(merged))


class _Reader:
    """Typed access to raw string values; every error names its variable."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = values

    def configured(self) -> frozenset[str]:
        return frozenset(k for k, v in self._values.items() if k.startswith("CARE_") and v.strip())

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self._values.get(name, "").strip()
        return value or default

    def required(self, name: str, what: str) -> str:
        value = self.text(name)
        if value is None:
            raise ConfigError(f"{name} is missing; set it to {what}.")
        return value

    def integer(self, name: str, default: int, minimum: int = 1) -> int:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number.") from None
        if value < minimum:
            raise ConfigError(f"{name}={raw!r} must be at least {minimum}.")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str) -> str:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() not in allowed:
            raise ConfigError(f"{name}={raw!r} must be one of: {', '.join(allowed)}.")
        return raw.lower()

    def seconds(self, name: str, default: float) -> float:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number of seconds.") from None
        if not math.isfinite(value) or value <= 0:
            raise ConfigError(f"{name}={raw!r} must be a finite number of seconds above 0.")
        return value

    def duration(self, name: str, default: timedelta) -> timedelta:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            return parse_duration(raw)
        except ValueError as exc:
            raise ConfigError(f"{name}={raw!r}: {exc}") from None

    def slack_id(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is not None and not _SLACK_ID.match(raw):
            raise ConfigError(
                f"{name}={raw!r} is not a Slack id; use the channel, user or group id "
                "(like C0123ABCD), not its name."
            )
        return raw

    def url(self, name: str, default: str) -> str:
        raw = self.text(name, default) or default
        if not re.match(r"^https?://[^\s/]+", raw):
            raise ConfigError(f"{name}={raw!r} is not an http(s) URL.")
        return raw


def parse_duration(raw: str) -> timedelta:
    """``30s``, ``15m``, ``2h`` or ``1d`` as a timedelta."""
    match = _DURATION.match(raw)
    if not match:
        raise ValueError("expected a duration like 30s, 15m, 2h or 1d")
    amount, unit = int(match.group(1)), match.group(2)
    if amount <= 0:
        raise ValueError("a duration must be more than zero")
    return timedelta(seconds=amount * _UNIT_SECONDS[unit])


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration`, in the largest exact unit."""
    seconds = int(value.total_seconds())
    for unit in ("d", "h", "m"):
        size = _UNIT_SECONDS[unit]
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _parse(env: _Reader) -> Settings:
    slack_api_url = env.url("SLACK_API_URL", DEFAULT_SLACK_API_URL)
    if not slack_api_url.endswith("/"):
        slack_api_url += "/"
    bot_token = env.text("SLACK_BOT_TOKEN")
    if bot_token is not None and not bot_token.startswith("xoxb-"):
        raise ConfigError("SLACK_BOT_TOKEN must be a bot token starting with 'xoxb-'.")
    app_token = env.text("SLACK_APP_TOKEN")
    if app_token is not None and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with 'xapp-'.")
    admins = frozenset(a.strip() for a in (env.text("CARE_ADMINS") or "").split(",") if a.strip())
    for admin in admins:
        if not _SLACK_ID.match(admin):
            raise ConfigError(f"CARE_ADMINS contains {admin!r}, which is not a Slack user id.")
    x_user_id = env.text("X_USER_ID")
    if x_user_id is not None and not re.fullmatch(r"[0-9]{1,19}", x_user_id):
        raise ConfigError(f"X_USER_ID={x_user_id!r} must be the numeric id of the brand account.")
    domains = _link_domains(env)
    terms = parse_terms(env.text("CARE_DENY_TERMS") or "", ",")
    file_terms = _deny_terms_file(env)
    return Settings(
        configured=env.configured(),
        slack_bot_token=bot_token,
        slack_signing_secret=env.text("SLACK_SIGNING_SECRET"),
        slack_app_token=app_token,
        slack_api_url=slack_api_url,
        questions_channel=env.slack_id("CARE_QUESTIONS_CHANNEL"),
        escalation_channel=env.slack_id("CARE_ESCALATION_CHANNEL"),
        oncall_group=env.slack_id("CARE_ONCALL_GROUP"),
        admins=admins,
        x=XSettings(
            api_url=env.url("X_API_URL", DEFAULT_X_API_URL).rstrip("/"),
            bearer_token=env.text("X_BEARER_TOKEN"),
            api_key=env.text("X_API_KEY"),
            api_secret=env.text("X_API_SECRET"),
            access_token=env.text("X_ACCESS_TOKEN"),
            access_token_secret=env.text("X_ACCESS_TOKEN_SECRET"),
            user_id=x_user_id,
            poll_seconds=env.seconds("X_POLL_SECONDS", 60.0),
        ),
        database_url=_database_url(env.text("DATABASE_URL", DEFAULT_DATABASE_URL)),
        votes_to_select=env.integer("CARE_VOTES_TO_SELECT", 3),
        pool=env.choice("CARE_POOL", ("open", "registered"), "open"),
        guidelines_file=_guidelines_file(env.text("CARE_GUIDELINES_FILE")),
        weekly_summary_channel=env.slack_id("CARE_WEEKLY_SUMMARY_CHANNEL"),
        signature=env.choice("CARE_SIGNATURE", ("off", "initials"), "off"),
        reply_policy=ReplyPolicy(
            domains, terms + file_terms, personal_data_in_dm=_personal_data_in_dm(env)
        ),
        deny_terms=terms,
        deny_terms_from_file=file_terms,
        nudge_after=env.duration("CARE_NUDGE_AFTER", timedelta(minutes=15)),
        escalate_after=env.duration("CARE_ESCALATE_AFTER", timedelta(minutes=60)),
        escalate_again_after=env.duration("CARE_ESCALATE_AGAIN_AFTER", timedelta(hours=2)),
        business_hours=_business_hours(env.text("CARE_BUSINESS_HOURS")),
        nudge_mention=env.slack_id("CARE_NUDGE_MENTION"),
        supervisor_group=env.slack_id("CARE_SUPERVISOR_GROUP"),
        support=_support(env),
        sweep_seconds=env.seconds("CARE_SWEEP_SECONDS", 15.0),
        outbox_seconds=env.seconds("CARE_OUTBOX_SECONDS", 5.0),
        send_lease=env.duration("CARE_SEND_LEASE", timedelta(seconds=60)),
        slack_channel_interval=env.seconds("CARE_SLACK_CHANNEL_INTERVAL", 1.0),
        log_level=_log_level(env.text("LOG_LEVEL", "INFO") or "INFO"),
    )


def require_slack(settings: Settings, *, socket_mode: bool) -> None:
    """Fail with a clear message when the Slack values a mode needs are missing."""
    missing = []
    if not settings.slack_bot_token:
        missing.append("SLACK_BOT_TOKEN (the xoxb- bot token from OAuth & Permissions)")
    if socket_mode and not settings.slack_app_token:
        missing.append("SLACK_APP_TOKEN (an xapp- token with connections:write, for Socket Mode)")
    if not socket_mode and not settings.slack_signing_secret:
        missing.append("SLACK_SIGNING_SECRET (Basic Information → App Credentials)")
    if not settings.questions_channel:
        missing.append("CARE_QUESTIONS_CHANNEL (the id of the channel for question cards)")
    if missing:
        raise ConfigError("Missing settings: " + "; ".join(missing) + ".")


def _guidelines_file(raw: str | None) -> str | None:
    if raw is not None and not Path(raw).is_file():
        raise ConfigError(f"CARE_GUIDELINES_FILE={raw!r} is not a readable file.")
    return raw


def _link_domains(env: _Reader) -> frozenset[str]:
    try:
        return parse_domains(env.text("CARE_ALLOWED_LINK_DOMAINS") or "")
    except ValueError as exc:
        raise ConfigError(f"CARE_ALLOWED_LINK_DOMAINS: {exc}.") from None


def _deny_terms_file(env: _Reader) -> tuple[str, ...]:
    path = env.text("CARE_DENY_TERMS_FILE")
    if path is None:
        return ()
    try:
        return parse_terms(Path(path).read_text(encoding="utf-8"), "\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"CARE_DENY_TERMS_FILE={path!r} is not a readable UTF-8 file ({exc})."
        ) from None


def _personal_data_in_dm(env: _Reader) -> bool:
    return env.choice("CARE_PERSONAL_DATA_IN_DM", ("false", "true"), "false") == "true"


def _business_hours(raw: str | None) -> BusinessHours | None:
    if raw is None:
        return None
    try:
        return BusinessHours.parse(raw)
    except ValueError as exc:
        raise ConfigError(f"CARE_BUSINESS_HOURS={raw!r}: {exc}") from None


def _support(env: _Reader) -> SupportSettings:
    webhook_url = env.text("SUPPORT_WEBHOOK_URL")
    if webhook_url is not None:
        webhook_url = env.url("SUPPORT_WEBHOOK_URL", webhook_url)
    secret = env.text("SUPPORT_WEBHOOK_SECRET")
    if webhook_url and not secret:
        raise ConfigError(
            "SUPPORT_WEBHOOK_SECRET is missing; set it to a long random string to sign the "
            "events sent to SUPPORT_WEBHOOK_URL."
        )
    if secret is not None and len(secret) < 16:
        raise ConfigError("SUPPORT_WEBHOOK_SECRET must be at least 16 characters.")
    ticket_on = (env.text("ZENDESK_TICKET_ON", "escalation") or "escalation").lower()
    if ticket_on not in ("escalation", "intake"):
        raise ConfigError(f"ZENDESK_TICKET_ON={ticket_on!r} must be 'escalation' or 'intake'.")
    zendesk = [env.text(n) for n in ("ZENDESK_SUBDOMAIN", "ZENDESK_EMAIL", "ZENDESK_API_TOKEN")]
    if any(zendesk) and not all(zendesk):
        raise ConfigError(
            "Zendesk needs all of ZENDESK_SUBDOMAIN, ZENDESK_EMAIL and ZENDESK_API_TOKEN."
        )
    api_url = env.text("ZENDESK_API_URL")
    return SupportSettings(
        webhook_url=webhook_url,
        webhook_secret=secret,
        zendesk_subdomain=zendesk[0],
        zendesk_email=zendesk[1],
        zendesk_api_token=zendesk[2],
        zendesk_api_url=env.url("ZENDESK_API_URL", api_url).rstrip("/") if api_url else None,
        zendesk_ticket_on=ticket_on,
    )


def _database_url(raw: str | None) -> str:
    url = raw or DEFAULT_DATABASE_URL
    # PaaS providers hand out postgres:// URLs; SQLAlchemy needs the driver named.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    if not re.match(r"^(sqlite|postgresql\+psycopg)://", url):
        raise ConfigError(
            f"DATABASE_URL must start with sqlite:/// or postgresql:// (got {url.split(':')[0]!r})."
        )
    return url


def _password_in(url: str) -> str | None:
    match = re.match(r"^[^:]+://[^:/@]+:([^@]+)@", url)
    return match.group(1) if match else None


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"LOG_LEVEL={raw!r} must be DEBUG, INFO, WARNING or ERROR.")
    return level
