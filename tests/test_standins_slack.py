"""The Slack stand-ins behave like Slack where crowdcare depends on it."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qsl

import pytest
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_handlers
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier

from tests.standins.fake_slack import FakeSlack
from tests.standins.slack_requests import SlackRequester

TOKEN = "xoxb-test-token"
SECRET = "s3cr3t-signing"


@pytest.fixture
def fake() -> Iterator[FakeSlack]:
    with FakeSlack(bot_token=TOKEN) as slack:
        yield slack


@pytest.fixture
def client(fake: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=fake.api_url)


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def error_of(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return str(excinfo.value.response["error"])


# ---------------------------------------------------------------------------------------------
# FakeSlack driven by the real slack_sdk WebClient
# ---------------------------------------------------------------------------------------------


def test_auth_test_identifies_the_bot(client: WebClient) -> None:
    answer = client.auth_test()
    assert answer["ok"] is True
    assert answer["team_id"] == "T0001"
    assert answer["user_id"] == "UBOT"
    assert answer["bot_id"] == "B0001"


def test_missing_or_wrong_token_is_rejected(fake: FakeSlack) -> None:
    with pytest.raises(SlackApiError) as missing:
        WebClient(base_url=fake.api_url).auth_test()
    with pytest.raises(SlackApiError) as wrong:
        WebClient(token="xoxb-wrong", base_url=fake.api_url).auth_test()
    assert error_of(missing) == "not_authed"
    assert error_of(wrong) == "invalid_auth"
    assert [c.method for c in fake.calls] == ["auth.test", "auth.test"]  # failures recorded


def test_post_message_returns_increasing_ts_and_stores_messages(
    fake: FakeSlack, client: WebClient
) -> None:
    metadata = {"event_type": "question", "event_payload": {"id": 7}}
    first = client.chat_postMessage(channel="C1", text="one", metadata=metadata)
    second = client.chat_postMessage(channel="C1", text="two", blocks=[section("*two*")])
    client.chat_postMessage(channel="C2", text="elsewhere")

    assert isinstance(first["ts"], str)
    assert float(second["ts"]) > float(first["ts"])
    assert first["message"]["text"] == "one"
    stored = fake.messages("C1")
    assert [m["text"] for m in stored] == ["one", "two"]
    assert stored[0]["metadata"] == metadata
    assert stored[0]["user"] == "UBOT"
    assert stored[1]["blocks"] == [section("*two*")]
    call = fake.calls_to("chat.postMessage")[0]
    assert call.params["channel"] == "C1"
    assert call.headers["authorization"] == f"Bearer {TOKEN}"


def test_post_message_needs_text_or_blocks(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.api_call("chat.postMessage", json={"channel": "C1", "text": ""})
    assert error_of(excinfo) == "no_text"


def test_threads_history_and_replies(fake: FakeSlack, client: WebClient) -> None:
    parent = client.chat_postMessage(
        channel="C1", text="parent", metadata={"event_type": "question", "event_payload": {"id": 1}}
    )["ts"]
    reply = client.chat_postMessage(channel="C1", text="reply", thread_ts=parent)["ts"]
    orphan = client.chat_postMessage(channel="C1", text="orphan", thread_ts="1.000001")
    later = client.chat_postMessage(channel="C1", text="later")["ts"]

    assert orphan["ok"] is True  # Slack accepts replies to unknown parents
    assert [m["ts"] for m in fake.thread("C1", parent)] == [reply]
    assert (fake.message("C1", parent) or {}).get("reply_count") == 1
    assert len(fake.messages("C1")) == 4

    history = client.conversations_history(channel="C1", include_all_metadata=True)
    assert [m["ts"] for m in history["messages"]] == [later, parent]
    assert history["messages"][1]["metadata"]["event_payload"] == {"id": 1}
    limited = client.conversations_history(channel="C1", oldest=parent, limit=1)
    assert [m["ts"] for m in limited["messages"]] == [later]

    replies = client.conversations_replies(channel="C1", ts=parent)
    assert [m["text"] for m in replies["messages"]] == ["parent", "reply"]


def test_chat_update_changes_the_stored_message(fake: FakeSlack, client: WebClient) -> None:
    ts = client.chat_postMessage(
        channel="C1",
        text="before",
        blocks=[section("before")],
        metadata={"event_type": "question", "event_payload": {"id": 3}},
    )["ts"]
    answer = client.chat_update(channel="C1", ts=ts, text="after", blocks=[section("after")])

    assert answer["ts"] == ts
    message = fake.message("C1", ts)
    assert message is not None
    assert message["text"] == "after"
    assert message["blocks"] == [section("after")]
    assert message["metadata"]["event_payload"] == {"id": 3}  # kept
    assert len(fake.messages("C1")) == 1


def test_chat_update_of_unknown_message(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel="C1", ts="1.000001", text="x")
    assert error_of(excinfo) == "message_not_found"


@pytest.mark.parametrize(
    "blocks",
    [
        pytest.param([section("x" * 3001)], id="section-text"),
        pytest.param([section("x")] * 51, id="too-many-blocks"),
        pytest.param(
            [{"type": "section", "fields": [{"type": "mrkdwn", "text": "f" * 2001}]}],
            id="section-field",
        ),
        pytest.param(
            [{"type": "context", "elements": [{"type": "mrkdwn", "text": "c"}] * 11}],
            id="context-elements",
        ),
        pytest.param(
            [
                {
                    "type": "actions",
                    "elements": [
                        {
                            "type": "button",
                            "text": {"type": "plain_text", "text": "ok"},
                            "value": "v" * 2001,
                        }
                    ],
                }
            ],
            id="button-value",
        ),
        pytest.param(
            [
                {
                    "type": "actions",
                    "elements": [
                        {"type": "button", "text": {"type": "plain_text", "text": "b" * 76}}
                    ],
                }
            ],
            id="button-text",
        ),
    ],
)
def test_block_kit_limits_answer_invalid_blocks(
    fake: FakeSlack, client: WebClient, blocks: list[dict[str, Any]]
) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C1", text="t", blocks=blocks)
    assert error_of(excinfo) == "invalid_blocks"
    assert excinfo.value.response["response_metadata"]["messages"]
    assert fake.messages("C1") == []
    assert len(fake.calls_to("chat.postMessage")) == 1  # recorded anyway


def test_block_kit_limits_are_inclusive(client: WebClient) -> None:
    assert client.chat_postMessage(channel="C1", text="t", blocks=[section("x" * 3000)])["ok"]
    assert client.chat_postMessage(channel="C1", text="x" * 40000)["ok"]
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C1", text="x" * 40001)
    assert error_of(excinfo) == "msg_too_long"


def test_form_encoded_json_params_are_parsed(fake: FakeSlack, client: WebClient) -> None:
    blocks = [section("form")]
    client.api_call(
        "chat.postMessage", params={"channel": "C1", "text": "t", "blocks": json.dumps(blocks)}
    )
    assert fake.calls_to("chat.postMessage")[0].params["blocks"] == blocks
    assert fake.messages("C1")[0]["blocks"] == blocks


def test_rate_limit_is_retried_after_retry_after(
    fake: FakeSlack, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(builtin_handlers, "time", SimpleNamespace(sleep=slept.append))
    monkeypatch.setattr(builtin_handlers, "random", SimpleNamespace(random=lambda: 0.0))
    client = WebClient(
        token=TOKEN,
        base_url=fake.api_url,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)],
    )
    fake.rate_limit("chat.postMessage", times=1, retry_after=3)

    answer = client.chat_postMessage(channel="C1", text="eventually")

    assert answer["ok"] is True
    assert slept == [3]  # the client saw the Retry-After header
    assert len(fake.calls_to("chat.postMessage")) == 2
    assert [m["text"] for m in fake.messages("C1")] == ["eventually"]


def test_rate_limit_without_retry_handler_surfaces_429(fake: FakeSlack, client: WebClient) -> None:
    fake.rate_limit("users.info", retry_after=7)
    with pytest.raises(SlackApiError) as excinfo:
        client.users_info(user="U1")
    assert excinfo.value.response.status_code == 429
    assert excinfo.value.response.headers["Retry-After"] == "7"
    assert error_of(excinfo) == "ratelimited"


def test_injected_failures_run_out(fake: FakeSlack, client: WebClient) -> None:
    fake.fail("chat.postMessage", error="fatal_error", times=2, status=503)
    for _ in range(2):
        with pytest.raises(SlackApiError) as excinfo:
            client.chat_postMessage(channel="C1", text="t")
        assert excinfo.value.response.status_code == 503
        assert error_of(excinfo) == "fatal_error"
    assert client.chat_postMessage(channel="C1", text="t")["ok"]


def test_views_open_triggers_work_once(fake: FakeSlack, client: WebClient) -> None:
    view = {"type": "modal", "title": {"type": "plain_text", "text": "Answer"}, "blocks": []}
    opened = client.views_open(trigger_id="1.2.abc", view=view)
    assert opened["view"]["id"].startswith("V")
    assert opened["view"]["hash"]

    with pytest.raises(SlackApiError) as reused:
        client.views_open(trigger_id="1.2.abc", view=view)
    fake.expire_trigger("9.9.old")
    with pytest.raises(SlackApiError) as expired:
        client.views_open(trigger_id="9.9.old", view=view)
    assert error_of(reused) == "expired_trigger_id"
    assert error_of(expired) == "expired_trigger_id"
    assert [v["id"] for v in fake.views()] == [opened["view"]["id"]]


def test_views_open_validates_arguments(client: WebClient) -> None:
    long_title = {"type": "modal", "title": {"type": "plain_text", "text": "t" * 25}}
    with pytest.raises(SlackApiError) as titled:
        client.views_open(trigger_id="1.1.a", view=long_title)
    with pytest.raises(SlackApiError) as untriggered:
        client.views_open(view={"type": "modal", "title": {"type": "plain_text", "text": "t"}})
    assert error_of(titled) == "invalid_arguments"
    assert "title" in titled.value.response["response_metadata"]["messages"][0]
    assert error_of(untriggered) == "invalid_arguments"


def test_views_update_and_publish(fake: FakeSlack, client: WebClient) -> None:
    modal = {"type": "modal", "title": {"type": "plain_text", "text": "One"}, "blocks": []}
    view_id = client.views_open(trigger_id="1.1.a", view=modal)["view"]["id"]
    updated = client.views_update(
        view_id=view_id, view={**modal, "title": {"type": "plain_text", "text": "Two"}}
    )
    home = client.views_publish(user_id="U1", view={"type": "home", "blocks": []})

    assert updated["view"]["id"] == view_id
    assert home["view"]["type"] == "home"
    assert [v["title"]["text"] for v in fake.views()[:2]] == ["One", "Two"]
    assert len(fake.views()) == 3
    with pytest.raises(SlackApiError) as excinfo:
        client.views_update(view_id="VNOPE", view=modal)
    assert error_of(excinfo) == "not_found"


def test_users_info(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U1", "ana", "Ana Lima", is_admin=True, tz="Europe/Lisbon")
    user = client.users_info(user="U1")["user"]
    assert user["id"] == "U1"
    assert user["name"] == "ana"
    assert user["real_name"] == "Ana Lima"
    assert user["is_admin"] is True
    assert user["is_owner"] is False
    assert user["tz"] == "Europe/Lisbon"
    assert user["profile"] == {"real_name": "Ana Lima", "display_name": "ana"}
    with pytest.raises(SlackApiError) as excinfo:
        client.users_info(user="U404")
    assert error_of(excinfo) == "user_not_found"


def test_ephemerals_permalinks_and_dms(fake: FakeSlack, client: WebClient) -> None:
    answer = client.chat_postEphemeral(channel="C1", user="U1", text="only you")
    client.chat_postEphemeral(channel="C1", user="U2", text="only them")
    assert answer["message_ts"]
    assert [e["text"] for e in fake.ephemerals("U1")] == ["only you"]
    assert len(fake.ephemerals()) == 2
    assert fake.messages("C1") == []

    link = client.chat_getPermalink(channel="C1", message_ts="1700000000.000100")
    assert link["permalink"] == "https://example.slack.com/archives/C1/p1700000000000100"
    assert client.conversations_open(users="U1")["channel"]["id"] == "DU1"


def test_files_upload_v2_round_trip(fake: FakeSlack, client: WebClient) -> None:
    answer = client.files_upload_v2(
        channel="C1",
        content=b"id,answer\n1,yes\n",
        filename="report.csv",
        title="Weekly report",
        initial_comment="here it is",
    )
    assert answer["ok"] is True
    assert answer["file"]["title"] == "Weekly report"
    [uploaded] = fake.uploaded_files()
    assert uploaded["name"] == "report.csv"
    assert uploaded["content"] == b"id,answer\n1,yes\n"
    assert uploaded["channel_id"] == "C1"
    assert uploaded["initial_comment"] == "here it is"


def test_unknown_method_and_socket_mode(client: WebClient) -> None:
    with pytest.raises(SlackApiError) as unknown:
        client.api_call("nope.nothing")
    with pytest.raises(SlackApiError) as socket_mode:
        client.apps_connections_open(app_token=TOKEN)
    assert error_of(unknown) == "unknown_method"
    assert error_of(socket_mode) == "not_allowed_token_type"


def test_wait_for_sees_calls_made_from_another_thread(fake: FakeSlack, client: WebClient) -> None:
    worker = threading.Thread(
        target=lambda: [client.chat_postMessage(channel="C1", text=t) for t in ("a", "b")]
    )
    worker.start()
    calls = fake.wait_for("chat.postMessage", lambda c: c.params["text"] == "b", timeout=5)
    worker.join()
    assert calls[0].params["text"] == "b"


def test_wait_for_times_out_with_a_description(fake: FakeSlack, client: WebClient) -> None:
    client.chat_postMessage(channel="C1", text="not it")
    started = time.monotonic()
    with pytest.raises(AssertionError) as excinfo:
        fake.wait_for("chat.postMessage", lambda c: c.params["text"] == "it", timeout=0.1)
    assert time.monotonic() - started < 2
    assert "not it" in str(excinfo.value)
    assert "chat.postMessage" in str(excinfo.value)


def test_reset_forgets_everything_but_users(fake: FakeSlack, client: WebClient) -> None:
    fake.add_user("U1", "ana")
    client.chat_postMessage(channel="C1", text="t")
    fake.fail("auth.test")
    fake.reset()
    assert fake.calls == []
    assert fake.messages("C1") == []
    assert client.auth_test()["ok"] is True
    assert client.users_info(user="U1")["ok"] is True


# ---------------------------------------------------------------------------------------------
# SlackRequester against a tiny signature-checking echo server
# ---------------------------------------------------------------------------------------------


class _EchoHandler(BaseHTTPRequestHandler):
    """Verifies the Slack signature and echoes back what it parsed."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        verifier = SignatureVerifier(SECRET)
        valid = verifier.is_valid_request(body, dict(self.headers.items()))
        if self.headers["Content-Type"].startswith("application/json"):
            parsed: Any = json.loads(body)
        else:
            parsed = dict(parse_qsl(body))
            if "payload" in parsed:
                parsed["payload"] = json.loads(parsed["payload"])
        echo = {
            "path": self.path,
            "body": parsed,
            "headers": {k.lower(): v for k, v in self.headers.items()},
        }
        payload = json.dumps(echo).encode()
        self.send_response(200 if valid else 401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def echo_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _EchoHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def slack(echo_url: str) -> SlackRequester:
    return SlackRequester(echo_url, SECRET)


def test_command_is_signed_and_form_encoded(slack: SlackRequester) -> None:
    response = slack.command("U1", "stats week")
    assert response.status == 200
    echo = response.json()
    assert echo["path"] == "/slack/events"
    body = echo["body"]
    assert body["command"] == "/care"
    assert body["text"] == "stats week"
    assert body["user_id"] == "U1"
    assert body["channel_id"] == "C0ADMIN"
    assert body["team_id"] == "T0001"
    assert body["trigger_id"]
    assert echo["headers"]["content-type"] == "application/x-www-form-urlencoded"


def test_block_action_payload(slack: SlackRequester) -> None:
    response = slack.block_action(
        "U1", "vote_up", "42", channel_id="C1", message_ts="1.000002", thread_ts="1.000001"
    )
    assert response.status == 200
    payload = response.json()["body"]["payload"]
    assert payload["type"] == "block_actions"
    assert payload["user"]["id"] == "U1"
    assert payload["container"] == {
        "type": "message",
        "message_ts": "1.000002",
        "channel_id": "C1",
        "is_ephemeral": False,
    }
    assert payload["message"]["thread_ts"] == "1.000001"
    [action] = payload["actions"]
    assert (action["action_id"], action["value"], action["block_id"]) == (
        "vote_up",
        "42",
        "actions",
    )

    other = slack.block_action("U1", "vote_up", "42", channel_id="C1", message_ts="1.000002")
    assert other.json()["body"]["payload"]["trigger_id"] != payload["trigger_id"]
    assert "thread_ts" not in other.json()["body"]["payload"]["message"]


def test_view_submission_payload(slack: SlackRequester) -> None:
    response = slack.view_submission(
        "U1", "answer_modal", '{"q": 1}', {"answer": {"answer_input": "Hello!"}}
    )
    view = response.json()["body"]["payload"]["view"]
    assert response.status == 200
    assert view["callback_id"] == "answer_modal"
    assert view["private_metadata"] == '{"q": 1}'
    assert view["state"]["values"]["answer"]["answer_input"] == {
        "type": "plain_text_input",
        "value": "Hello!",
    }


def test_event_envelope_and_retry_headers(slack: SlackRequester) -> None:
    event = {"type": "app_mention", "user": "U1", "text": "hi", "ts": "1.000001", "channel": "C1"}
    first = slack.event(event)
    retried = slack.event(event, event_id="Ev123", retry_num=1)

    body = first.json()["body"]
    assert first.status == 200
    assert body["type"] == "event_callback"
    assert body["event"]["type"] == "app_mention"
    assert body["event_id"]
    assert "x-slack-retry-num" not in first.json()["headers"]
    assert retried.json()["body"]["event_id"] == "Ev123"
    assert retried.json()["headers"]["x-slack-retry-num"] == "1"
    assert retried.json()["headers"]["x-slack-retry-reason"] == "http_timeout"
    assert slack.event(event).json()["body"]["event_id"] != body["event_id"]


def test_url_verification(slack: SlackRequester) -> None:
    response = slack.url_verification("chal-123")
    assert response.status == 200
    assert response.json()["body"] == {
        "token": response.json()["body"]["token"],
        "challenge": "chal-123",
        "type": "url_verification",
    }


def test_bad_signatures_are_rejected_not_raised(echo_url: str, slack: SlackRequester) -> None:
    wrong_secret = SlackRequester(echo_url, "not-the-secret")
    assert wrong_secret.command("U1", "x").status == 401
    assert slack.post("a=b", "application/x-www-form-urlencoded", signature="v0=00").status == 401
    stale = slack.post("a=b", "application/x-www-form-urlencoded", timestamp=int(time.time()) - 600)
    assert stale.status == 401
    assert stale.headers["content-type"] == "application/json"
    assert stale.json()["body"] == {"a": "b"}


def test_new_trigger_ids_are_unique(slack: SlackRequester) -> None:
    ids = {slack.new_trigger_id() for _ in range(100)}
    assert len(ids) == 100


def test_get_with_query_string_and_token_param(fake: FakeSlack) -> None:
    fake.add_user("U1", "ana")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"{fake.api_url}users.info?token={TOKEN}&user=U1", timeout=5) as answer:
        body = json.loads(answer.read())
        content_type = answer.headers["Content-Type"]
    assert content_type.startswith("application/json")
    assert body["ok"] is True
    assert body["user"]["name"] == "ana"
    assert fake.calls_to("users.info")[0].params == {"token": TOKEN, "user": "U1"}
