"""The Alembic migrations and the SQLAlchemy models describe the same schema."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, inspect, select

from bot.states import State
from storage.db import make_engine, session_factory
from storage.migrate import alembic_config, upgrade
from storage.models import Base, Question
from tests.dbhelpers import count, make_question

TABLES = {
    "api_quotas",
    "audit_events",
    "members",
    "routes",
    "settings",
    "weekly_summaries",
    "channel_cursors",
    "connector_states",
    "customers",
    "deliveries",
    "external_refs",
    "notifications",
    "processed_slack_events",
    "proposals",
    "questions",
    "replies",
    "support_events",
    "votes",
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


def differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    return ScriptDirectory.from_config(config).get_current_head()


def downgrade_to_base(engine: Engine) -> None:
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")


def user_tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_migrated_schema_matches_the_models(engine: Engine) -> None:
    upgrade(engine)

    assert differences(engine) == []
    assert user_tables(engine) == TABLES == set(Base.metadata.tables)


def test_an_empty_database_differs_from_the_models(engine: Engine) -> None:
    """The comparison above is not vacuous: without migrations every table is missing."""
    added = {diff[1].name for diff in differences(engine) if diff[0] == "add_table"}
    assert added == TABLES


def test_upgrade_reaches_the_single_head(engine: Engine) -> None:
    upgrade(engine)

    assert current_revision(engine) == head_revision(engine) is not None


def test_upgrade_twice_is_harmless_and_keeps_data(engine: Engine) -> None:
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        make_question(session, state=State.OPEN, text="still here?")

    upgrade(engine)

    assert current_revision(engine) == head_revision(engine)
    assert differences(engine) == []
    with sessions.begin() as session:
        assert count(session, Question) == 1
        assert session.scalars(select(Question.text)).one() == "still here?"


def test_downgrade_to_base_then_upgrade_again(engine: Engine) -> None:
    upgrade(engine)
    sessions = session_factory(engine)
    with sessions.begin() as session:
        make_question(session)

    downgrade_to_base(engine)

    assert user_tables(engine) == set()
    assert current_revision(engine) is None

    upgrade(engine)

    assert current_revision(engine) == head_revision(engine)
    assert differences(engine) == []
    with sessions.begin() as session:
        assert count(session, Question) == 0
        make_question(session)  # the rebuilt schema is usable
