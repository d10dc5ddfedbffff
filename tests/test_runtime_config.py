"""Settings changed at run time: the database over the environment, validated and audited."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.config import load_settings
from bot.runtime_config import KEYS, ConfigValueError, RuntimeConfig
from storage.models import AuditEvent, Setting
from tests.dbhelpers import Clock, migrated_sessions

ADMIN = "U0ADMIN"


@pytest.fixture
def sessions(database_url):
    with migrated_sessions(database_url) as factory:
        yield factory


def make_config(sessions, **environ: str) -> RuntimeConfig:
    settings = load_settings(environ, env_file=None)
    return RuntimeConfig(sessions, settings, Clock(), settings.configured)


def stored(sessions) -> dict[str, str]:
    with sessions() as session:
        return {s.key: s.value for s in session.scalars(select(Setting))}


def changes(sessions) -> list[AuditEvent]:
    with sessions() as session:
        query = select(AuditEvent).where(AuditEvent.action == "config.changed")
        return list(session.scalars(query.order_by(AuditEvent.id)))


def entry(config: RuntimeConfig, name: str):
    return {e.key: e for e in config.entries()}[name]


def test_defaults_and_environment_are_told_apart(sessions) -> None:
    config = make_config(sessions, CARE_VOTES_TO_SELECT="5")
    assert config.votes_to_select() == 5
    assert entry(config, "votes").source == "environment (CARE_VOTES_TO_SELECT)"
    assert entry(config, "pool").source == "default"
    assert entry(config, "pool").value == "open"
    assert [e.key for e in config.entries()] == list(KEYS)


def test_a_stored_value_wins_over_the_environment_and_is_audited(sessions) -> None:
    config = make_config(sessions, CARE_VOTES_TO_SELECT="5")

    changed = config.change("votes", "1", ADMIN)

    assert (changed.value, changed.source) == ("1", "set with /care config")
    assert config.votes_to_select() == 1
    assert stored(sessions) == {"votes": "1"}
    [event] = changes(sessions)
    assert event.actor == ADMIN
    assert event.detail == {"key": "votes", "from": None, "to": "1"}


def test_default_drops_the_stored_value(sessions) -> None:
    config = make_config(sessions, CARE_VOTES_TO_SELECT="5")
    config.change("votes", "2", ADMIN)

    back = config.change("votes", "default", ADMIN)

    assert (back.value, back.source) == ("5", "environment (CARE_VOTES_TO_SELECT)")
    assert config.votes_to_select() == 5
    assert stored(sessions) == {}
    assert [e.detail["to"] for e in changes(sessions)] == ["2", None]


def test_setting_the_same_value_again_changes_and_audits_nothing(sessions) -> None:
    config = make_config(sessions)
    config.change("nudge_after", "30m", ADMIN)
    config.change("nudge_after", " 30m ", ADMIN)
    config.change("escalate_after", "default", ADMIN)  # nothing stored to drop
    assert len(changes(sessions)) == 1


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("votes", "0", "1 to 50"),
        ("votes", "51", "1 to 50"),
        ("votes", "two", "1 to 50"),
        ("votes", "²", "1 to 50"),  # a digit to str.isdigit(), not to int()
        ("votes", "-1", "1 to 50"),
        ("nudge_after", "soon", "a duration like"),
        ("nudge_after", "0m", "more than zero"),
        ("escalate_after", "31d", "at most 30d"),
        ("business_hours", "Mon-Fri 9-18 Nowhere/Town", ""),
        ("business_hours", "Mon-Fri " + "9" * 300, "at most 200 characters"),
        ("pool", "closed", "open or registered"),
        ("signature", "full name", "off or initials"),
        ("colour", "blue", "unknown setting; the settings are: votes"),
        ("deny_terms", " , ,", "words or phrases separated by commas"),
        ("deny_terms", "refund," * 200, "at most 1000 characters"),
        ("link_domains", "https://acme.com/help", "is not a domain"),
        ("link_domains", "acme.com, localhost", "'localhost' is not a domain"),
        ("link_domains", ",", "domains separated by commas"),
    ],
)
def test_invalid_values_are_refused_and_nothing_is_stored(sessions, name, raw, expected) -> None:
    config = make_config(sessions)
    before = config.entries()

    with pytest.raises(ConfigValueError) as refused:
        config.change(name, raw, ADMIN)

    assert expected in str(refused.value)
    assert str(refused.value)
    assert stored(sessions) == {}
    assert changes(sessions) == []
    assert config.entries() == before


def test_durations_and_choices_are_stored_in_canonical_form(sessions) -> None:
    config = make_config(sessions)
    config.change("escalate_again_after", "180m", ADMIN)
    config.change("pool", "REGISTERED", ADMIN)
    assert stored(sessions) == {"escalate_again_after": "3h", "pool": "registered"}
    assert config.pool_mode() == "registered"
    assert config.escalation_policy().escalate_again_after == timedelta(hours=3)


def test_business_hours_with_spaces_and_off(sessions) -> None:
    config = make_config(sessions)

    hours = config.change("business_hours", "Mon-Fri   09:00-18:00 Europe/Berlin", ADMIN)

    assert hours.value == "Mon-Fri 09:00-18:00 Europe/Berlin"
    assert config.business_hours() is not None
    assert config.escalation_policy().hours == config.business_hours()
    config.change("business_hours", "off", ADMIN)
    assert config.business_hours() is None
    assert entry(config, "business_hours").value == "off (always open)"
    assert stored(sessions) == {"business_hours": "off"}


def test_the_escalation_policy_follows_changes(sessions) -> None:
    config = make_config(sessions, CARE_NUDGE_AFTER="15m", CARE_ESCALATE_AFTER="1h")
    config.change("nudge_after", "5m", ADMIN)
    policy = config.escalation_policy()
    assert (policy.nudge_after, policy.escalate_after) == (timedelta(minutes=5), timedelta(hours=1))


def test_another_process_sees_a_change_after_refresh(sessions) -> None:
    mine, theirs = make_config(sessions), make_config(sessions)
    mine.change("votes", "7", ADMIN)
    assert theirs.votes_to_select() == 3  # a snapshot: never read inside other transactions
    theirs.refresh()
    assert theirs.votes_to_select() == 7


def test_a_stored_value_the_rules_no_longer_accept_falls_back(sessions) -> None:
    config = make_config(sessions, CARE_VOTES_TO_SELECT="4")
    with sessions.begin() as session:
        session.add(Setting(key="votes", value="999", updated_by=ADMIN, updated_at=Clock()()))
    config.refresh()
    assert config.votes_to_select() == 4


def test_deny_terms_replace_the_variable_and_keep_the_file(sessions, tmp_path: Path) -> None:
    terms_file = tmp_path / "deny.txt"
    terms_file.write_text("# compliance\nfree money\n", encoding="utf-8")
    config = make_config(
        sessions, CARE_DENY_TERMS="guaranteed", CARE_DENY_TERMS_FILE=str(terms_file)
    )
    assert config.reply_policy().deny_terms == ("guaranteed", "free money")
    assert entry(config, "deny_terms").source == "environment (CARE_DENY_TERMS)"

    changed = config.change("deny_terms", " Refund ,  cash back,refund", ADMIN)

    assert (changed.value, changed.source) == ("Refund, cash back", "set with /care config")
    assert stored(sessions) == {"deny_terms": "Refund, cash back"}
    assert config.reply_policy().deny_terms == ("refund", "cash back", "free money")
    assert config.reply_policy().denied_terms_in("Your REFUND is on its way") == ["refund"]
    config.change("deny_terms", "none", ADMIN)
    assert config.reply_policy().deny_terms == ("free money",)  # the file always applies
    assert entry(config, "deny_terms").value == "none"

    back = config.change("deny_terms", "default", ADMIN)

    assert (back.value, back.source) == ("guaranteed", "environment (CARE_DENY_TERMS)")
    assert config.reply_policy().deny_terms == ("guaranteed", "free money")
    assert stored(sessions) == {}
    assert [e.detail["to"] for e in changes(sessions)] == ["Refund, cash back", "none", None]


def test_link_domains_are_normalized_and_drive_the_policy(sessions) -> None:
    config = make_config(
        sessions, CARE_ALLOWED_LINK_DOMAINS="acme.com", CARE_PERSONAL_DATA_IN_DM="true"
    )
    assert config.reply_policy().allows_host("help.acme.com")
    assert entry(config, "link_domains").value == "acme.com"

    changed = config.change("link_domains", "Status.ACME.io, *.shop.example", ADMIN)

    assert changed.value == "shop.example, status.acme.io"
    assert stored(sessions) == {"link_domains": "shop.example, status.acme.io"}
    policy = config.reply_policy()
    assert policy.allows_host("eu.shop.example")
    assert not policy.allows_host("acme.com")
    assert policy.personal_data_in_dm  # not a runtime setting: the environment's value stays
    config.change("link_domains", "none", ADMIN)
    assert config.reply_policy().allowed_link_domains == frozenset()
    config.change("link_domains", "default", ADMIN)
    assert config.reply_policy().allowed_link_domains == {"acme.com"}
    assert entry(config, "link_domains").source == "environment (CARE_ALLOWED_LINK_DOMAINS)"


def test_the_reply_policy_of_another_process_follows_after_refresh(sessions) -> None:
    mine, theirs = make_config(sessions), make_config(sessions)
    mine.change("deny_terms", "refund", ADMIN)
    assert theirs.reply_policy().deny_terms == ()
    theirs.refresh()
    assert theirs.reply_policy().deny_terms == ("refund",)
