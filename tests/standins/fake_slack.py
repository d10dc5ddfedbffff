"""A fake Slack Web API server for tests.

It speaks the real wire protocol closely enough that ``slack_sdk.WebClient`` (and therefore
Bolt) can be pointed at it with ``base_url=fake.api_url``. Every request is recorded as a
:class:`Call`; messages, ephemerals, views and uploads are kept so tests can look at what the
app actually produced. Failures (rate limits, API errors, server errors) can be injected per
method.

Stdlib only. The server runs on 127.0.0.1 on a free port in a daemon thread::

    with FakeSlack() as slack:
        client = WebClient(token=slack.bot_token, base_url=slack.api_url)
        client.chat_postMessage(channel="C1", text="hi")
        assert slack.messages("C1")[0]["text"] == "hi"
"""

from __future__ import annotations

import copy
import itertools
import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

from tests.standins.loopback import HookedRequest, LoopbackServer, Verdict

Params = dict[str, Any]
Answer = dict[str, Any]
MethodHandler = Callable[[Params], Answer]

# Parameters that Slack accepts as JSON-encoded strings in form bodies.
JSON_PARAMS = ("blocks", "attachments", "view", "metadata")

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_SECTION_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_CONTEXT_TEXT = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_MESSAGE_TEXT = 40000
MAX_MODAL_TITLE = 24

FIRST_TS_MICROS = 1_700_000_000_000_100
TS_STEP_MICROS = 100


@dataclass
class Call:
    """One request received by the fake, successful or not."""

    method: str
    params: dict[str, Any]
    headers: dict[str, str]  # header names are lower-cased
    at: float = field(default_factory=time.monotonic)  # when it arrived (time.monotonic)
    status: int = 0  # the HTTP status it was answered with (0 until answered)


@dataclass
class _Injected:
    """A canned answer that replaces the next real answer of a method."""

    status: int
    body: Answer
    headers: dict[str, str] = field(default_factory=dict)
    channel: str | None = None  # only calls for this channel, when set


@dataclass
class _Upload:
    file_id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str | None = None
    channel_id: str | None = None
    initial_comment: str | None = None
    thread_ts: str | None = None
    completed: bool = False


class ApiError(Exception):
    """Raised by a method handler to answer ``{"ok": false, "error": ...}``."""

    def __init__(self, error: str, *, status: int = 200, messages: list[str] | None = None):
        super().__init__(error)
        self.error = error
        self.status = status
        self.messages = messages or []

    def body(self) -> Answer:
        body: Answer = {"ok": False, "error": self.error}
        if self.messages:
            body["response_metadata"] = {"messages": self.messages}
        return body


# ---------------------------------------------------------------------------------------------
# Block Kit validation (the subset of limits our app can run into)
# ---------------------------------------------------------------------------------------------


def _too_long(limit: int, pointer: str) -> str:
    return f"[ERROR] must be less than {limit + 1} characters [json-pointer:{pointer}]"


def _too_many(limit: int, pointer: str) -> str:
    return f"[ERROR] no more than {limit} items allowed [json-pointer:{pointer}]"


def _text_of(obj: Any) -> str:
    """The ``text`` of a text object (or an element carrying one), '' if absent."""
    if isinstance(obj, dict):
        text = obj.get("text")
        if isinstance(text, dict):
            return _text_of(text)
        if isinstance(text, str):
            return text
    return ""


def _check_button(element: dict[str, Any], pointer: str) -> list[str]:
    if element.get("type") != "button":
        return []
    errors = []
    if len(_text_of(element)) > MAX_BUTTON_TEXT:
        errors.append(_too_long(MAX_BUTTON_TEXT, f"{pointer}/text/text"))
    if len(str(element.get("value", ""))) > MAX_BUTTON_VALUE:
        errors.append(_too_long(MAX_BUTTON_VALUE, f"{pointer}/value"))
    return errors


def _check_section(block: dict[str, Any], pointer: str) -> list[str]:
    errors = []
    if len(_text_of(block)) > MAX_SECTION_TEXT:
        errors.append(_too_long(MAX_SECTION_TEXT, f"{pointer}/text/text"))
    fields = block.get("fields") or []
    if len(fields) > MAX_SECTION_FIELDS:
        errors.append(_too_many(MAX_SECTION_FIELDS, f"{pointer}/fields"))
    for i, item in enumerate(fields):
        if len(_text_of(item)) > MAX_FIELD_TEXT:
            errors.append(_too_long(MAX_FIELD_TEXT, f"{pointer}/fields/{i}/text"))
    accessory = block.get("accessory")
    if isinstance(accessory, dict):
        errors += _check_button(accessory, f"{pointer}/accessory")
    return errors


def _check_context(block: dict[str, Any], pointer: str) -> list[str]:
    errors = []
    elements = block.get("elements") or []
    if len(elements) > MAX_CONTEXT_ELEMENTS:
        errors.append(_too_many(MAX_CONTEXT_ELEMENTS, f"{pointer}/elements"))
    for i, element in enumerate(elements):
        if len(_text_of(element)) > MAX_CONTEXT_TEXT:
            errors.append(_too_long(MAX_CONTEXT_TEXT, f"{pointer}/elements/{i}/text"))
    return errors


def _check_actions(block: dict[str, Any], pointer: str) -> list[str]:
    errors = []
    elements = block.get("elements") or []
    if len(elements) > MAX_ACTIONS_ELEMENTS:
        errors.append(_too_many(MAX_ACTIONS_ELEMENTS, f"{pointer}/elements"))
    for i, element in enumerate(elements):
        if isinstance(element, dict):
            errors += _check_button(element, f"{pointer}/elements/{i}")
    return errors


def _check_header(block: dict[str, Any], pointer: str) -> list[str]:
    if len(_text_of(block)) > MAX_HEADER_TEXT:
        return [_too_long(MAX_HEADER_TEXT, f"{pointer}/text/text")]
    return []


_BLOCK_CHECKS: dict[str, Callable[[dict[str, Any], str], list[str]]] = {
    "section": _check_section,
    "context": _check_context,
    "actions": _check_actions,
    "header": _check_header,
}


def validate_blocks(blocks: Any) -> list[str]:
    """Slack-style error messages for ``blocks``; empty when they would be accepted."""
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        return ["[ERROR] must be an array of block objects [json-pointer:/blocks]"]
    errors = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(_too_many(MAX_BLOCKS, "/blocks"))
    for i, block in enumerate(blocks):
        check = _BLOCK_CHECKS.get(str(block.get("type")))
        if check is not None:
            errors += check(block, f"/blocks/{i}")
    return errors


def _validate_message_content(params: Params) -> None:
    """Raise the error Slack answers for a message body with bad text or blocks."""
    if len(str(params.get("text") or "")) > MAX_MESSAGE_TEXT:
        raise ApiError("msg_too_long")
    if "blocks" in params:
        errors = validate_blocks(params["blocks"])
        if errors:
            raise ApiError("invalid_blocks", messages=errors)


def _validate_view(view: Any) -> None:
    if not isinstance(view, dict):
        raise ApiError("invalid_arguments", messages=["[ERROR] view must be an object"])
    if view.get("type") == "modal" and len(_text_of(view.get("title"))) > MAX_MODAL_TITLE:
        raise ApiError(
            "invalid_arguments",
            messages=[_too_long(MAX_MODAL_TITLE, "/view/title/text")],
        )


# ---------------------------------------------------------------------------------------------
# Request parsing helpers
# ---------------------------------------------------------------------------------------------


def _parse_body(raw: bytes, content_type: str) -> Params:
    """Params from a form or JSON body (other bodies carry no params)."""
    media_type = content_type.split(";", maxsplit=1)[0].strip().lower()
    if not raw:
        return {}
    if media_type == "application/json":
        parsed = json.loads(raw.decode("utf-8"))
        if not isinstance(parsed, dict):
            raise ApiError("invalid_json")
        return parsed
    if media_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))
    return {}


def _decode_json_params(params: Params) -> Params:
    """Parse JSON-string values of blocks/attachments/view/metadata (as Slack does)."""
    decoded = dict(params)
    for name in JSON_PARAMS:
        value = decoded.get(name)
        if isinstance(value, str) and value.strip():
            try:
                decoded[name] = json.loads(value)
            except json.JSONDecodeError:
                decoded[name] = value  # left as is; validation rejects it later
    return decoded


def _token_of(headers: dict[str, str], params: Params) -> str | None:
    authorization = headers.get("authorization", "")
    if authorization.lower().startswith("bearer "):
        return authorization[len("bearer ") :].strip()
    token = params.get("token")
    return str(token) if token else None


def _truthy(value: Any) -> bool:
    return str(value).lower() in {"1", "true", "yes"}


def _int_param(params: Params, name: str, default: int) -> int:
    try:
        return int(params.get(name) or default)
    except (TypeError, ValueError):
        return default


def _require(params: Params, *names: str, error: str = "invalid_arguments") -> None:
    for name in names:
        if not params.get(name):
            raise ApiError(error, messages=[f"[ERROR] missing required field: {name}"])


# ---------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, fake: FakeSlack) -> None:
        super().__init__(("127.0.0.1", 0), _RequestHandler)
        self.fake = fake


class _RequestHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""

    def _handle(self) -> None:
        fake = cast(_Server, self.server).fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        url = urlsplit(self.path)
        if url.path.startswith("/api/"):
            method = url.path.removeprefix("/api/")
            try:
                status, body, extra = fake.handle_api(
                    method, url.query, raw, headers, http_method=self.command
                )
            except _Dropped:  # a test hook asked to close the connection unanswered
                self.close_connection = True
                return
            self._send(status, json.dumps(body).encode(), "application/json; charset=utf-8", extra)
        elif url.path.startswith("/upload/"):
            status, text = fake.handle_upload(url.path.removeprefix("/upload/"), raw)
            self._send(status, text.encode(), "text/plain; charset=utf-8")
        else:
            self._send(404, b"not found", "text/plain; charset=utf-8")

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (extra_headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client is gone (killed by a test)
            self.close_connection = True


class _Dropped(Exception):
    """A ``before`` hook asked for the request to be dropped unprocessed."""


# ---------------------------------------------------------------------------------------------
# The fake itself
# ---------------------------------------------------------------------------------------------


class FakeSlack(LoopbackServer):
    """An in-process Slack Web API that records calls and keeps the resulting state."""

    def __init__(
        self,
        bot_token: str = "xoxb-test-token",  # noqa: S107 - a fake token for a fake server
        team_id: str = "T0001",
        bot_user_id: str = "UBOT",
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = "B0001"
        self.calls: list[Call] = []
        self._lock = threading.RLock()
        self._users: dict[str, dict[str, Any]] = {}
        self._ts_micros = itertools.count(FIRST_TS_MICROS, TS_STEP_MICROS)
        self._ids = itertools.count(1)
        self._methods: dict[str, MethodHandler] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.update": self._chat_update,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_open,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": self._users_info,
            "conversations.open": self._conversations_open,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
            "apps.connections.open": self._apps_connections_open,
        }
        self._init_state()

    def _init_state(self) -> None:
        self.calls.clear()
        self._messages: list[tuple[str, dict[str, Any]]] = []  # (channel, message)
        self._ephemerals: list[dict[str, Any]] = []
        self._views: dict[str, dict[str, Any]] = {}
        self._view_log: list[dict[str, Any]] = []
        self._used_triggers: set[str] = set()
        self._uploads: dict[str, _Upload] = {}
        self._injected: dict[str, deque[_Injected]] = {}
        self._channel_limits: dict[str, tuple[float, int]] = {}  # method: (interval, retry)
        self._last_accepted: dict[tuple[str, str], float] = {}

    # -- lifecycle ------------------------------------------------------------------------

    name = "fake-slack"

    def _new_server(self) -> _Server:
        return _Server(self)

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    # -- test controls --------------------------------------------------------------------

    def add_user(
        self,
        user_id: str,
        name: str,
        real_name: str | None = None,
        *,
        is_admin: bool = False,
        is_owner: bool = False,
        tz: str = "UTC",
        deleted: bool = False,
        is_bot: bool = False,
    ) -> None:
        real = real_name or name
        with self._lock:
            self._users[user_id] = {
                "id": user_id,
                "team_id": self.team_id,
                "name": name,
                "real_name": real,
                "deleted": deleted,
                "is_bot": is_bot,
                "is_admin": is_admin,
                "is_owner": is_owner,
                "tz": tz,
                "profile": {"real_name": real, "display_name": name},
            }

    def rate_limit(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next ``times`` calls of ``method`` with HTTP 429 + Retry-After."""
        answer = _Injected(
            status=429,
            body={"ok": False, "error": "ratelimited"},
            headers={"Retry-After": str(retry_after)},
        )
        self._inject(method, answer, times)

    def limit_per_channel(self, method: str, interval: float, retry_after: int = 1) -> None:
        """Answer 429 + Retry-After to ``method`` calls within ``interval`` s of the last one
        accepted for the same channel, as Slack does for chat.postMessage (~1/s/channel)."""
        with self._lock:
            self._channel_limits[method] = (interval, retry_after)

    def _over_channel_limit(self, method: str, params: Params) -> bool:
        limit = self._channel_limits.get(method)
        if limit is None:
            return False
        key, now = (method, str(params.get("channel") or "")), time.monotonic()
        last = self._last_accepted.get(key)
        if last is not None and now - last < limit[0]:
            return True
        self._last_accepted[key] = now
        return False

    def fail(
        self,
        method: str,
        error: str = "internal_error",
        times: int = 1,
        status: int = 200,
        *,
        channel: str | None = None,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with ``{"ok": false, "error": error}``.

        With ``channel``, only calls for that channel fail; others are answered as usual.
        """
        body: Answer = {"ok": False, "error": error}
        self._inject(method, _Injected(status=status, body=body, channel=channel), times)

    def expire_trigger(self, trigger_id: str) -> None:
        """Make ``views.open`` with this trigger id answer ``expired_trigger_id``."""
        with self._lock:
            self._used_triggers.add(trigger_id)

    def reset(self) -> None:
        """Forget calls, messages, views, uploads and injected failures (users are kept)."""
        with self._lock:
            self._init_state()

    def _inject(self, method: str, answer: _Injected, times: int) -> None:
        with self._lock:
            queue = self._injected.setdefault(method, deque())
            queue.extend(copy.deepcopy(answer) for _ in range(times))

    # -- inspection -----------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        count: int = 1,
        timeout: float = 10.0,
    ) -> list[Call]:
        """Wait until ``count`` calls of ``method`` (matching ``predicate``) were received."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [c for c in self.calls_to(method) if predicate is None or predicate(c)]
            if len(matching) >= count:
                return matching
            if time.monotonic() >= deadline:
                raise AssertionError(self._describe_wait_failure(method, count, timeout, matching))
            time.sleep(0.01)

    def _describe_wait_failure(
        self, method: str, count: int, timeout: float, matching: list[Call]
    ) -> str:
        to_method = self.calls_to(method)
        with self._lock:
            received = [call.method for call in self.calls]
        lines = [
            f"expected {count} matching call(s) to {method} within {timeout}s, "
            f"got {len(matching)} matching of {len(to_method)} call(s) to {method}",
            *(f"  {method} params: {call.params!r}" for call in to_method),
            f"all calls received, in order: {received!r}",
        ]
        return "\n".join(lines)

    def messages(self, channel: str) -> list[dict[str, Any]]:
        """Top-level and thread messages in ``channel``, in post order, current state."""
        with self._lock:
            return [copy.deepcopy(m) for c, m in self._messages if c == channel]

    def message(self, channel: str, ts: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._find_message(channel, ts)
            return copy.deepcopy(found) if found is not None else None

    def thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """Replies in the thread ``thread_ts`` (without the parent)."""
        return [
            m
            for m in self.messages(channel)
            if m.get("thread_ts") == thread_ts and m["ts"] != thread_ts
        ]

    def ephemerals(self, user: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(e) for e in self._ephemerals if user is None or e["user"] == user]

    def views(self) -> list[dict[str, Any]]:
        """Every view opened, pushed, updated or published, in order."""
        with self._lock:
            return copy.deepcopy(self._view_log)

    def uploaded_files(self) -> list[dict[str, Any]]:
        """Completed uploads: id, name, title, content (bytes), channel_id, initial_comment."""
        with self._lock:
            return [
                {
                    "id": u.file_id,
                    "name": u.filename,
                    "title": u.title,
                    "content": u.content,
                    "channel_id": u.channel_id,
                    "initial_comment": u.initial_comment,
                    "thread_ts": u.thread_ts,
                }
                for u in self._uploads.values()
                if u.completed
            ]

    # -- request handling (called from server threads) ------------------------------------

    def handle_api(
        self,
        method: str,
        query: str,
        raw: bytes,
        headers: dict[str, str],
        *,
        http_method: str = "POST",
    ) -> tuple[int, Answer, dict[str, str]]:
        """Answer one Web API request: (HTTP status, JSON body, extra response headers).

        Hooks (:meth:`on`, path ``/api/<method>``) run around it.
        """
        params: Params = dict(parse_qsl(query, keep_blank_values=True))
        try:
            params.update(_parse_body(raw, headers.get("content-type", "")))
        except (ValueError, ApiError):
            with self._lock:
                self.calls.append(Call(method, params, headers))
            return 200, {"ok": False, "error": "invalid_json"}, {}
        params = _decode_json_params(params)
        request = HookedRequest(http_method, f"/api/{method}", params)
        hook = self._take_hook(request)
        if self._run_before(hook, request) is Verdict.DROP:
            raise _Dropped
        with self._lock:
            call = Call(method, params, headers)
            self.calls.append(call)
            try:
                answer = self._answer(method, params, headers)
            except ApiError as error:
                answer = error.status, error.body(), {}
            call.status = answer[0]
        self._run_after(hook, request)
        return answer

    def _answer(
        self, method: str, params: Params, headers: dict[str, str]
    ) -> tuple[int, Answer, dict[str, str]]:
        token = _token_of(headers, params)
        if token is None:
            raise ApiError("not_authed")
        if token != self.bot_token:
            raise ApiError("invalid_auth")
        injected = self._take_injected(method, params)
        if injected is not None:
            return injected.status, injected.body, injected.headers
        if self._over_channel_limit(method, params):
            retry_after = self._channel_limits[method][1]
            return 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}
        handler = self._methods.get(method)
        if handler is None:
            raise ApiError("unknown_method")
        return 200, {"ok": True, **handler(params)}, {}

    def _take_injected(self, method: str, params: Params) -> _Injected | None:
        """The first canned answer queued for this call (its channel, if it names one)."""
        queue = self._injected.get(method) or deque()
        for injected in queue:
            if injected.channel is None or injected.channel == params.get("channel"):
                queue.remove(injected)
                return injected
        return None

    def handle_upload(self, file_id: str, raw: bytes) -> tuple[int, str]:
        """Store the bytes POSTed to an upload URL handed out by files.getUploadURLExternal."""
        with self._lock:
            upload = self._uploads.get(file_id)
            if upload is None:
                return 404, "file not found"
            upload.content = raw
            return 200, f"OK - {len(raw)}"

    # -- helpers for method handlers ------------------------------------------------------

    def _next_ts(self) -> str:
        micros = next(self._ts_micros)
        return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids):08d}"

    def _find_message(self, channel: str, ts: str) -> dict[str, Any] | None:
        for c, m in self._messages:
            if c == channel and m["ts"] == ts:
                return m
        return None

    def _top_level(self, channel: str) -> list[dict[str, Any]]:
        return [
            m for c, m in self._messages if c == channel and m.get("thread_ts") in (None, m["ts"])
        ]

    def _note_reply(self, channel: str, thread_ts: str, reply_ts: str) -> None:
        parent = self._find_message(channel, thread_ts)
        if parent is None:
            return  # Slack accepts replies to unknown parents
        parent["thread_ts"] = thread_ts
        parent["reply_count"] = int(parent.get("reply_count", 0)) + 1
        parent["latest_reply"] = reply_ts

    # -- method handlers: each takes params and returns the body after "ok": true ---------

    def _auth_test(self, params: Params) -> Answer:
        return {
            "url": "https://example.slack.com/",
            "team": "Example",
            "user": "crowdcare",
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, params: Params) -> Answer:
        _require(params, "channel", error="channel_not_found")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise ApiError("no_text")
        _validate_message_content(params)
        channel = str(params["channel"])
        message: dict[str, Any] = {
            "type": "message",
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "team": self.team_id,
            "text": str(params.get("text") or ""),
            "ts": self._next_ts(),
        }
        for name in ("blocks", "attachments", "metadata", "thread_ts"):
            if params.get(name):
                message[name] = params[name]
        self._messages.append((channel, message))
        if "thread_ts" in message:
            self._note_reply(channel, message["thread_ts"], message["ts"])
        return {"channel": channel, "ts": message["ts"], "message": copy.deepcopy(message)}

    def _chat_update(self, params: Params) -> Answer:
        _require(params, "channel", error="channel_not_found")
        _require(params, "ts", error="message_not_found")
        _validate_message_content(params)
        channel, ts = str(params["channel"]), str(params["ts"])
        message = self._find_message(channel, ts)
        if message is None:
            raise ApiError("message_not_found")
        if "text" in params:
            message["text"] = str(params["text"] or "")
        for name in ("blocks", "attachments", "metadata"):
            if name not in params:
                continue  # Slack keeps what was there
            if params[name]:
                message[name] = params[name]
            else:
                message.pop(name, None)  # an empty value removes it
        message["edited"] = {"user": self.bot_user_id, "ts": self._next_ts()}
        return {
            "channel": channel,
            "ts": ts,
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    def _chat_post_ephemeral(self, params: Params) -> Answer:
        _require(params, "channel", error="channel_not_found")
        _require(params, "user", error="user_not_found")
        if not (params.get("text") or params.get("blocks") or params.get("attachments")):
            raise ApiError("no_text")
        _validate_message_content(params)
        ephemeral: dict[str, Any] = {
            "channel": str(params["channel"]),
            "user": str(params["user"]),
            "text": str(params.get("text") or ""),
            "message_ts": self._next_ts(),
        }
        for name in ("blocks", "attachments", "thread_ts"):
            if params.get(name):
                ephemeral[name] = params[name]
        self._ephemerals.append(ephemeral)
        return {"message_ts": ephemeral["message_ts"]}

    def _chat_get_permalink(self, params: Params) -> Answer:
        _require(params, "channel", error="channel_not_found")
        _require(params, "message_ts", error="message_not_found")
        channel, ts = str(params["channel"]), str(params["message_ts"])
        permalink = f"https://example.slack.com/archives/{channel}/p{ts.replace('.', '')}"
        message = self._find_message(channel, ts)
        if message is not None and message.get("thread_ts") not in (None, ts):
            permalink += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"channel": channel, "permalink": permalink}

    def _store_view(self, view: dict[str, Any], view_id: str | None = None) -> dict[str, Any]:
        stored = copy.deepcopy(view)
        stored["id"] = view_id or self._next_id("V")
        stored["team_id"] = self.team_id
        stored["app_id"] = "A0001"
        stored["bot_id"] = self.bot_id
        stored["hash"] = f"{int(time.time())}.{self._next_id('h')}"
        self._views[stored["id"]] = stored
        self._view_log.append(copy.deepcopy(stored))
        return copy.deepcopy(stored)

    def _views_open(self, params: Params) -> Answer:
        _require(params, "trigger_id", "view")
        trigger_id = str(params["trigger_id"])
        if trigger_id in self._used_triggers:
            raise ApiError("expired_trigger_id")
        _validate_view(params["view"])
        self._used_triggers.add(trigger_id)
        return {"view": self._store_view(params["view"])}

    def _views_update(self, params: Params) -> Answer:
        _require(params, "view")
        _validate_view(params["view"])
        view_id = params.get("view_id")
        if not view_id:
            external_id = params.get("external_id") or ""
            view_id = next(
                (v["id"] for v in self._views.values() if v.get("external_id") == external_id),
                None,
            )
        if not view_id or view_id not in self._views:
            raise ApiError("not_found")
        return {"view": self._store_view(params["view"], str(view_id))}

    def _views_publish(self, params: Params) -> Answer:
        _require(params, "user_id", "view")
        _validate_view(params["view"])
        return {"view": self._store_view(params["view"])}

    def _users_info(self, params: Params) -> Answer:
        user = self._users.get(str(params.get("user") or ""))
        if user is None:
            raise ApiError("user_not_found")
        return {"user": copy.deepcopy(user)}

    def _conversations_open(self, params: Params) -> Answer:
        if params.get("channel"):
            return {"channel": {"id": str(params["channel"])}}
        _require(params, "users", error="users_list_not_supplied")
        users = [u.strip() for u in str(params["users"]).split(",") if u.strip()]
        channel_id = "D" + users[0] if len(users) == 1 else "G" + "".join(users)
        return {"no_op": False, "already_open": False, "channel": {"id": channel_id}}

    def _conversations_history(self, params: Params) -> Answer:
        _require(params, "channel", error="channel_not_found")
        oldest = float(params.get("oldest") or 0)
        latest = float(params.get("latest") or "inf")
        inclusive = _truthy(params.get("inclusive", "false"))
        limit = _int_param(params, "limit", 100)
        start = _int_param(params, "cursor", 0)

        def in_range(ts: float) -> bool:
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        newest_first = [
            copy.deepcopy(m)
            for m in reversed(self._top_level(str(params["channel"])))
            if in_range(float(m["ts"]))
        ]
        page = newest_first[start : start + limit]
        has_more = start + limit < len(newest_first)
        return {
            "messages": page,
            "has_more": has_more,
            "response_metadata": {"next_cursor": str(start + limit) if has_more else ""},
        }

    def _conversations_replies(self, params: Params) -> Answer:
        _require(params, "channel", error="channel_not_found")
        _require(params, "ts", error="thread_not_found")
        channel, ts = str(params["channel"]), str(params["ts"])
        parent = self._find_message(channel, ts)
        replies = self.thread(channel, ts)
        if parent is None and not replies:
            raise ApiError("thread_not_found")
        messages = ([copy.deepcopy(parent)] if parent is not None else []) + replies
        return {"messages": messages, "has_more": False}

    def _files_get_upload_url_external(self, params: Params) -> Answer:
        _require(params, "filename", "length")
        file_id = self._next_id("F")
        self._uploads[file_id] = _Upload(
            file_id=file_id,
            filename=str(params["filename"]),
            length=_int_param(params, "length", 0),
        )
        return {"upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, params: Params) -> Answer:
        _require(params, "files")
        files = params["files"]
        if isinstance(files, str):
            files = json.loads(files)
        completed = []
        for item in files:
            upload = self._uploads.get(str(item.get("id")))
            if upload is None or upload.content is None:
                raise ApiError("file_not_found")
            upload.title = item.get("title") or upload.filename
            upload.channel_id = params.get("channel_id") or None
            upload.initial_comment = params.get("initial_comment") or None
            upload.thread_ts = params.get("thread_ts") or None
            upload.completed = True
            completed.append({"id": upload.file_id, "name": upload.filename, "title": upload.title})
        return {"files": completed}

    def _apps_connections_open(self, params: Params) -> Answer:
        raise ApiError("not_allowed_token_type")
