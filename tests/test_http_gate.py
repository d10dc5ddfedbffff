"""End to end: what reaches `/slack/events` unsigned, stale or malformed gets a clear 4xx."""

from __future__ import annotations

import json
import time
import urllib.request
from urllib.error import HTTPError

import pytest
from sqlalchemy import func, select

from bot.server import ReplayGuard
from storage.models import AuditEvent, ProcessedSlackEvent
from tests.standins.slack_requests import sign
from tests.standins.stack import SIGNING_SECRET, Stack

pytestmark = pytest.mark.e2e

FORM = "application/x-www-form-urlencoded"


def nothing_changed(stack: Stack) -> bool:
    with stack.app.sessions.begin() as session:
        audit = session.scalar(select(func.count()).select_from(AuditEvent))
        events = session.scalar(select(func.count()).select_from(ProcessedSlackEvent))
    slack_calls = [c.method for c in stack.slack.calls if c.method != "auth.test"]
    return audit == 0 and events == 0 and slack_calls == []


def raw(stack: Stack, method: str, path: str, body: bytes = b"", headers=None):
    base = stack.client.url.removesuffix("/slack/events")
    request = urllib.request.Request(base + path, data=body or None, method=method)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read() or b"{}")
    except HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"{}")


@pytest.fixture
def idle_stack(fake_slack, fake_x, database_url):
    """The app served without its jobs: only requests can change anything."""
    running = Stack(fake_slack, fake_x, database_url).start(jobs=False)
    yield running
    running.stop()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing Slack signature headers"),
        ({"X-Slack-Request-Timestamp": "1000000000", "X-Slack-Signature": "v0=00"}, "stale"),
        ({"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"}, "invalid request"),
    ],
)
def test_unsigned_or_stale_requests_get_401_with_the_reason(idle_stack, headers, reason):
    body = json.dumps({"type": "event_callback", "event": {"type": "app_home_opened"}}).encode()

    status, answer = raw(idle_stack, "POST", "/slack/events", body, headers)

    assert status == 401
    assert reason in answer["error"]
    assert nothing_changed(idle_stack)


def test_a_wrong_signature_gets_401(idle_stack):
    response = idle_stack.client.post("command=/care&text=help", FORM, signature="v0=" + "ab" * 32)

    assert response.status == 401
    assert response.json() == {"error": "invalid signature"}
    assert nothing_changed(idle_stack)


def test_a_request_signed_with_another_secret_gets_401(idle_stack):
    body = "command=/care&text=help"
    ts = str(int(time.time()))
    response = idle_stack.client.post(body, FORM, signature=sign("not-" + SIGNING_SECRET, ts, body))

    assert response.status == 401


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("{not json", "application/json"),
        ("[1, 2]", "application/json"),
        ("payload=notjson", FORM),
        (
            "payload=" + json.dumps({"type": "view_submission", "user": {"id": "U1"}, "view": {}}),
            FORM,
        ),
        (
            "payload="
            + json.dumps({"type": "block_actions", "user": {"id": "U1"}, "actions": "x"}),
            FORM,
        ),
        ("payload=" + json.dumps({"type": "block_actions", "actions": []}), FORM),
        (json.dumps({"type": "event_callback", "event": "x"}), "application/json"),
    ],
)
def test_signed_but_malformed_bodies_get_400_not_500(idle_stack, body, content_type):
    response = idle_stack.client.post(body, content_type)

    assert response.status == 400
    assert "malformed" in response.json()["error"]
    assert nothing_changed(idle_stack)


def test_invalid_utf8_gets_400(idle_stack):
    status, _ = raw(
        idle_stack,
        "POST",
        "/slack/events",
        b"\xff\xfe{",
        {"X-Slack-Request-Timestamp": "0", "X-Slack-Signature": "v0=0"},
    )
    assert status == 401  # the signature is checked first; nothing is parsed before it

    response = idle_stack.client.post("payload=%FF%FE", FORM)
    assert response.status == 400


def test_oversized_bodies_get_413_before_anything_is_read(idle_stack):
    response = idle_stack.client.post("payload=" + "x" * 1_000_001, FORM)

    assert response.status == 413
    assert nothing_changed(idle_stack)


def test_other_methods_and_paths(idle_stack):
    assert raw(idle_stack, "GET", "/slack/events")[0] == 405
    assert raw(idle_stack, "GET", "/admin")[0] == 404
    assert raw(idle_stack, "GET", "/healthz") == (200, {"ok": True, "database": True})


def test_a_signed_help_command_still_works_through_the_gate(idle_stack):
    response = idle_stack.client.command("U0ALICE", "help")

    assert response.status == 200
    assert "/care help" in response.json()["text"]


def test_an_unknown_subcommand_is_named_back_safely(idle_stack):
    response = idle_stack.client.command("U0ALICE", "<!channel>")

    assert response.status == 200
    text = response.json()["text"]
    assert "There is no `/care` subcommand" in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_an_exact_replay_of_a_signed_request_gets_401(idle_stack):
    body = "command=/care&text=help&user_id=U0ALICE&channel_id=C0ADMIN&team_id=T0&trigger_id=1.2"
    ts = int(time.time())

    first = idle_stack.client.post(body, FORM, timestamp=ts)
    replay = idle_stack.client.post(body, FORM, timestamp=ts)
    signed_anew = idle_stack.client.post(body, FORM, timestamp=ts + 1)

    assert first.status == 200
    assert replay.status == 401
    assert replay.json() == {
        "error": "replayed request: this exact signed request was already received"
    }
    assert signed_anew.status == 200  # Slack signs every delivery, retries included, anew


def test_the_replay_guard_forgets_a_signature_once_it_could_no_longer_be_fresh():
    now = [1_000_000.0]
    guard = ReplayGuard(lambda: now[0], window=300)

    assert guard.first_use("v0=aa") is True
    assert guard.first_use("v0=aa") is False
    now[0] += 599  # a timestamp may be 300 s off either way: still dangerous
    assert guard.first_use("v0=aa") is False
    now[0] += 2
    assert guard.first_use("v0=aa") is True
