"""Settings from the environment and `.env`: defaults, refusals that name the variable, secrets."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import (
    DEFAULT_DATABASE_URL,
    DEFAULT_SLACK_API_URL,
    DEFAULT_X_API_URL,
    ConfigError,
    Settings,
    format_duration,
    load_settings,
    parse_duration,
    require_slack,
)

SECRETS = {
    "SLACK_BOT_TOKEN": "xoxb-1111-secret-bot",
    "SLACK_SIGNING_SECRET": "signing-secret-2222",
    "SLACK_APP_TOKEN": "xapp-3333-secret-app",
    "X_BEARER_TOKEN": "bearer-secret-4444",
    "X_API_KEY": "api-key-secret-5555",
    "X_API_SECRET": "api-secret-6666",
    "X_ACCESS_TOKEN": "access-token-7777",
    "X_ACCESS_TOKEN_SECRET": "access-secret-8888",
}
DB_PASSWORD = "db-pass-9999"


def load(**values: str) -> Settings:
    return load_settings(values, env_file=None)


# -- defaults ---------------------------------------------------------------------------------


def test_empty_environment_gives_the_documented_defaults() -> None:
    settings = load()

    assert settings.slack_bot_token is None
    assert settings.slack_configured is False
    assert settings.slack_api_url == DEFAULT_SLACK_API_URL
    assert settings.questions_channel is None
    assert settings.admins == frozenset()
    assert settings.x.api_url == DEFAULT_X_API_URL
    assert settings.x.configured is False
    assert settings.x.user_id is None
    assert settings.x.poll_seconds == 60.0
    assert settings.database_url == DEFAULT_DATABASE_URL
    assert settings.votes_to_select == 3
    assert settings.nudge_after == timedelta(minutes=15)
    assert settings.escalate_after == timedelta(hours=1)
    assert settings.send_lease == timedelta(seconds=60)
    assert settings.sweep_seconds == 15.0
    assert settings.outbox_seconds == 5.0
    assert settings.log_level == "INFO"
    assert settings.secrets() == []


def test_blank_values_count_as_unset() -> None:
    settings = load(CARE_VOTES_TO_SELECT="  ", CARE_NUDGE_AFTER="", LOG_LEVEL=" ")

    assert settings.votes_to_select == 3
    assert settings.nudge_after == timedelta(minutes=15)
    assert settings.log_level == "INFO"


def test_well_formed_values_are_parsed() -> None:
    settings = load(
        CARE_VOTES_TO_SELECT="5",
        CARE_NUDGE_AFTER="30s",
        CARE_ESCALATE_AFTER="2h",
        CARE_SEND_LEASE="1d",
        CARE_QUESTIONS_CHANNEL="C0123ABCD",
        CARE_ESCALATION_CHANNEL="C0ESCALATE",
        CARE_ONCALL_GROUP="S0ONCALL",
        CARE_ADMINS="U0ALICE, U0BOB,",
        X_USER_ID="1000",
        X_POLL_SECONDS="2.5",
        X_API_URL="http://127.0.0.1:8080/",
        SLACK_API_URL="http://127.0.0.1:9090/api",
        LOG_LEVEL="debug",
        **SECRETS,
    )

    assert settings.votes_to_select == 5
    assert settings.nudge_after == timedelta(seconds=30)
    assert settings.escalate_after == timedelta(hours=2)
    assert settings.send_lease == timedelta(days=1)
    assert settings.questions_channel == "C0123ABCD"
    assert settings.escalation_channel == "C0ESCALATE"
    assert settings.oncall_group == "S0ONCALL"
    assert settings.admins == frozenset({"U0ALICE", "U0BOB"})
    assert settings.x.user_id == "1000"
    assert settings.x.poll_seconds == 2.5
    assert settings.x.api_url == "http://127.0.0.1:8080"
    assert settings.slack_api_url == "http://127.0.0.1:9090/api/"
    assert settings.log_level == "DEBUG"
    assert settings.slack_configured is True
    assert settings.x.configured is True


# -- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CARE_NUDGE_AFTER", "15x"),
        ("CARE_NUDGE_AFTER", "0m"),
        ("CARE_NUDGE_AFTER", "15"),
        ("CARE_NUDGE_AFTER", "-5m"),
        ("CARE_ESCALATE_AFTER", "1.5h"),
        ("CARE_SEND_LEASE", "0s"),
        ("CARE_VOTES_TO_SELECT", "abc"),
        ("CARE_VOTES_TO_SELECT", "0"),
        ("CARE_VOTES_TO_SELECT", "-1"),
        ("CARE_VOTES_TO_SELECT", "2.5"),
        ("CARE_QUESTIONS_CHANNEL", "#support"),
        ("CARE_QUESTIONS_CHANNEL", "support"),
        ("CARE_ESCALATION_CHANNEL", "#escalations"),
        ("CARE_ONCALL_GROUP", "@oncall"),
        ("CARE_ADMINS", "U0ALICE,@bob"),
        ("SLACK_BOT_TOKEN", "xoxp-user-token"),
        ("SLACK_APP_TOKEN", "xoxb-not-an-app-token"),
        ("X_USER_ID", "AcmeHelp"),
        ("X_USER_ID", "@AcmeHelp"),
        ("X_USER_ID", "-1000"),
        ("X_POLL_SECONDS", "soon"),
        ("X_POLL_SECONDS", "0"),
        ("CARE_SWEEP_SECONDS", "-1"),
        ("CARE_OUTBOX_SECONDS", "5s"),
        ("DATABASE_URL", "mysql://user:pw@localhost/crowdcare"),
        ("DATABASE_URL", "crowdcare.db"),
        ("SLACK_API_URL", "slack.com/api"),
        ("X_API_URL", "ftp://api.x.com"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_LEVEL", "CRITICAL"),
    ],
)
def test_malformed_value_is_refused_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(**{name: value})


@pytest.mark.parametrize("name", ["X_POLL_SECONDS", "CARE_SWEEP_SECONDS", "CARE_OUTBOX_SECONDS"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_seconds_are_refused(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load(**{name: value})


@pytest.mark.parametrize("value", ["\u00b9\u00b2\u00b3", "\u0661\u0660\u0660\u0660"])
def test_x_user_id_must_be_ascii_digits(value: str) -> None:
    with pytest.raises(ConfigError, match="X_USER_ID"):
        load(X_USER_ID=value)


def test_duration_error_explains_the_expected_format() -> None:
    with pytest.raises(ConfigError, match=r"CARE_NUDGE_AFTER='15x'.*like 30s, 15m, 2h or 1d"):
        load(CARE_NUDGE_AFTER="15x")


def test_channel_given_by_name_asks_for_the_id() -> None:
    with pytest.raises(ConfigError, match=r"not its name"):
        load(CARE_QUESTIONS_CHANNEL="#support")


# -- database URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://care:pw@db:5432/care", "postgresql+psycopg://care:pw@db:5432/care"),
        ("postgresql://care@db/care", "postgresql+psycopg://care@db/care"),
        ("postgresql+psycopg://care@db/care", "postgresql+psycopg://care@db/care"),
        ("sqlite:////var/lib/care.db", "sqlite:////var/lib/care.db"),
    ],
)
def test_database_url_names_the_psycopg_driver(given: str, expected: str) -> None:
    assert load(DATABASE_URL=given).database_url == expected


# -- .env file --------------------------------------------------------------------------------


def test_values_are_read_from_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(
        "# local settings\n"
        "SLACK_BOT_TOKEN=xoxb-from-file\n"
        "CARE_VOTES_TO_SELECT=4\n"
        "CARE_QUESTIONS_CHANNEL='C0FILE'\n"
        'CARE_NUDGE_AFTER="10m"\n',
        encoding="utf-8",
    )

    settings = load_settings({}, env_file=env_file)

    assert settings.slack_bot_token == "xoxb-from-file"
    assert settings.votes_to_select == 4
    assert settings.questions_channel == "C0FILE"
    assert settings.nudge_after == timedelta(minutes=10)


def test_environment_wins_over_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CARE_VOTES_TO_SELECT=4\nLOG_LEVEL=DEBUG\n", encoding="utf-8")

    settings = load_settings({"CARE_VOTES_TO_SELECT": "7"}, env_file=env_file)

    assert settings.votes_to_select == 7
    assert settings.log_level == "DEBUG"


def test_a_malformed_value_in_the_env_file_is_refused_too(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("CARE_ESCALATE_AFTER=1 hour\n", encoding="utf-8")

    with pytest.raises(ConfigError, match="CARE_ESCALATE_AFTER"):
        load_settings({}, env_file=env_file)


def test_missing_env_file_is_not_an_error(tmp_path: Path) -> None:
    settings = load_settings({"CARE_VOTES_TO_SELECT": "2"}, env_file=tmp_path / "absent.env")
    assert settings.votes_to_select == 2


def test_process_environment_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARE_VOTES_TO_SELECT", "6")
    assert load_settings(env_file=None).votes_to_select == 6


# -- secrets ----------------------------------------------------------------------------------


def full_settings() -> Settings:
    return load(
        DATABASE_URL=f"postgres://care:{DB_PASSWORD}@db.internal:5432/care",
        CARE_QUESTIONS_CHANNEL="C0Q",
        **SECRETS,
    )


def test_secrets_lists_every_credential_and_the_database_password() -> None:
    assert set(full_settings().secrets()) == {*SECRETS.values(), DB_PASSWORD}


def test_secrets_without_a_database_password() -> None:
    settings = load(DATABASE_URL="postgresql://care@db/care", SLACK_BOT_TOKEN="xoxb-only")
    assert settings.secrets() == ["xoxb-only"]


def test_repr_shows_no_credential() -> None:
    shown = repr(full_settings())

    for secret in SECRETS.values():
        assert secret not in shown
    assert "C0Q" in shown  # the non-secret settings are still shown


def test_repr_shows_no_database_password() -> None:
    assert DB_PASSWORD not in repr(full_settings())


# -- require_slack ----------------------------------------------------------------------------


def test_require_slack_accepts_complete_http_settings() -> None:
    settings = load(
        SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s", CARE_QUESTIONS_CHANNEL="C0Q"
    )
    require_slack(settings, socket_mode=False)


def test_require_slack_accepts_complete_socket_mode_settings() -> None:
    settings = load(
        SLACK_BOT_TOKEN="xoxb-1", SLACK_APP_TOKEN="xapp-1", CARE_QUESTIONS_CHANNEL="C0Q"
    )
    require_slack(settings, socket_mode=True)


def test_require_slack_lists_everything_missing_for_http() -> None:
    with pytest.raises(ConfigError) as raised:
        require_slack(load(), socket_mode=False)

    message = str(raised.value)
    assert "SLACK_BOT_TOKEN" in message
    assert "SLACK_SIGNING_SECRET" in message
    assert "CARE_QUESTIONS_CHANNEL" in message
    assert "SLACK_APP_TOKEN" not in message


def test_require_slack_socket_mode_needs_the_app_token_not_the_signing_secret() -> None:
    settings = load(SLACK_BOT_TOKEN="xoxb-1", CARE_QUESTIONS_CHANNEL="C0Q")

    with pytest.raises(ConfigError) as raised:
        require_slack(settings, socket_mode=True)

    message = str(raised.value)
    assert "SLACK_APP_TOKEN" in message
    assert "SLACK_SIGNING_SECRET" not in message
    assert "SLACK_BOT_TOKEN" not in message


def test_require_slack_names_only_the_missing_channel() -> None:
    settings = load(SLACK_BOT_TOKEN="xoxb-1", SLACK_SIGNING_SECRET="s")

    with pytest.raises(ConfigError, match="CARE_QUESTIONS_CHANNEL") as raised:
        require_slack(settings, socket_mode=False)
    assert "SLACK_BOT_TOKEN" not in str(raised.value)


# -- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        (" 2h ", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        ("90s", timedelta(seconds=90)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(seconds=90), "90s"),
        (timedelta(minutes=60), "1h"),
        (timedelta(hours=48), "2d"),
        (timedelta(minutes=15), "15m"),
        (timedelta(hours=36), "36h"),
    ],
)
def test_format_duration_uses_the_largest_exact_unit(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected


@pytest.mark.parametrize("text", ["", "m", "15", "15x", "1.5h", "-1m", "0s", "15 minutes"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@given(amount=st.integers(min_value=1, max_value=10**6), unit=st.sampled_from("smhd"))
def test_duration_round_trips_through_its_text(amount: int, unit: str) -> None:
    value = parse_duration(f"{amount}{unit}")
    text = format_duration(value)
    assert parse_duration(text) == value
    assert format_duration(parse_duration(text)) == text


# -- escalation and support settings -------------------------------------------------------


def test_escalation_defaults_and_business_hours() -> None:
    settings = load(
        CARE_ESCALATE_AGAIN_AFTER="3h",
        CARE_BUSINESS_HOURS="Mon-Fri 09:00-18:00 Europe/Berlin",
        CARE_SUPERVISOR_GROUP="S0SUPER",
        CARE_NUDGE_MENTION="S0POOL",
    )
    assert settings.escalate_again_after == timedelta(hours=3)
    assert settings.business_hours is not None
    assert settings.business_hours.describe() == "Mon-Fri 09:00-18:00 Europe/Berlin"
    assert (settings.supervisor_group, settings.nudge_mention) == ("S0SUPER", "S0POOL")
    assert load().business_hours is None
    assert load().escalate_again_after == timedelta(hours=2)


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"CARE_BUSINESS_HOURS": "weekdays 9-5"}, "CARE_BUSINESS_HOURS"),
        ({"CARE_BUSINESS_HOURS": "Mon-Fri 09:00-18:00 Mars/Olympus"}, "CARE_BUSINESS_HOURS"),
        ({"CARE_ESCALATE_AGAIN_AFTER": "soon"}, "CARE_ESCALATE_AGAIN_AFTER"),
        ({"CARE_SUPERVISOR_GROUP": "@supervisors"}, "CARE_SUPERVISOR_GROUP"),
        ({"SUPPORT_WEBHOOK_URL": "https://hooks.example"}, "SUPPORT_WEBHOOK_SECRET"),
        (
            {"SUPPORT_WEBHOOK_URL": "ftp://x", "SUPPORT_WEBHOOK_SECRET": "s" * 20},
            "SUPPORT_WEBHOOK_URL",
        ),
        ({"SUPPORT_WEBHOOK_SECRET": "short"}, "SUPPORT_WEBHOOK_SECRET"),
        ({"ZENDESK_SUBDOMAIN": "acme"}, "ZENDESK_EMAIL"),
        ({"ZENDESK_TICKET_ON": "always"}, "ZENDESK_TICKET_ON"),
    ],
)
def test_bad_escalation_and_support_settings_name_the_variable(
    values: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        load(**values)


def test_support_secrets_are_redacted_and_listed() -> None:
    settings = load(
        SUPPORT_WEBHOOK_URL="https://hooks.example/crowdcare",
        SUPPORT_WEBHOOK_SECRET="webhook-secret-abcdef",
        ZENDESK_SUBDOMAIN="acme",
        ZENDESK_EMAIL="bot@acme.test",
        ZENDESK_API_TOKEN="zendesk-token-xyz",
    )
    assert settings.support.zendesk_configured
    assert "webhook-secret-abcdef" not in repr(settings)
    assert "zendesk-token-xyz" not in repr(settings)
    assert {"webhook-secret-abcdef", "zendesk-token-xyz"} <= set(settings.secrets())
