"""Shared fixtures: no network, a clean database per test, stand-in servers, the running app."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

from bot.x_channel import XChannel
from tests import netguard
from tests.standins.fake_slack import FakeSlack
from tests.standins.fake_x import FakeX
from tests.standins.stack import Stack

EMPLOYEES = {
    "U0ALICE": "alice",
    "U0BOB": "bob",
    "U0CARA": "cara",
    "U0DAN": "dan",
    "U0EVE": "eve",
}

CONFIG_VARIABLES = (
    "SLACK_BOT_TOKEN",
    "SLACK_SIGNING_SECRET",
    "SLACK_APP_TOKEN",
    "SLACK_API_URL",
    "DATABASE_URL",
    "X_API_URL",
    "X_BEARER_TOKEN",
    "X_API_KEY",
    "X_API_SECRET",
    "X_ACCESS_TOKEN",
    "X_ACCESS_TOKEN_SECRET",
    "X_USER_ID",
)


def pytest_configure(config: pytest.Config) -> None:
    netguard.install()


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own Slack or X settings."""
    for name in list(os.environ):
        if name.startswith(("CARE_", "SLACK_", "X_", "ZENDESK_", "SUPPORT_")) or name in (
            CONFIG_VARIABLES
        ):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def database_url(tmp_path) -> Iterator[str]:
    """SQLite in a temp dir, or a freshly emptied PostgreSQL when TEST_DATABASE_URL is set."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'crowdcare.db'}"
        return
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    yield url


@pytest.fixture
def on_postgres() -> bool:
    """Whether this run uses PostgreSQL."""
    return bool(os.environ.get("TEST_DATABASE_URL"))


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack() as slack:
        for user_id, name in EMPLOYEES.items():
            slack.add_user(user_id, name, name.title())
        yield slack


@pytest.fixture
def fake_x() -> Iterator[FakeX]:
    with FakeX() as x:
        yield x


@pytest.fixture
def x_channel(fake_x: FakeX) -> Iterator[XChannel]:
    """The real X adapter (tweepy), talking to the stand-in X as the brand account."""
    channel = XChannel(
        api_url=fake_x.base_url,
        bearer_token=fake_x.bearer_token,
        api_key=fake_x.consumer_key,
        api_secret=fake_x.consumer_secret,
        access_token=fake_x.access_token,
        access_token_secret=fake_x.access_token_secret,
        user_id=fake_x.brand_id,
        timeout=5.0,
    )
    yield channel
    channel.close()


@pytest.fixture
def stack(fake_slack: FakeSlack, fake_x: FakeX, database_url: str) -> Iterator[Stack]:
    """The real app over HTTP with its jobs running, wired to the stand-ins."""
    running = Stack(fake_slack, fake_x, database_url)
    running.start()
    yield running
    running.stop()
