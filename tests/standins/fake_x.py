"""A fake X (Twitter) API v2 server for tests.

It speaks the real wire protocol closely enough that ``tweepy.Client`` (via ``bot.x_channel``)
can be pointed at it: JSON bodies with ``data`` / ``includes`` / ``meta``, problem-details errors,
rate-limit headers, and real authentication. App-only requests must carry the configured Bearer
token; user-context requests must carry an OAuth 1.0a ``Authorization`` header whose HMAC-SHA1
signature is verified against the URL the request actually arrived at, so a client that signs one
URL and calls another is refused.

Every request is recorded as an :class:`XCall`. Failures (rate limits, server errors, slow answers,
answers lost after the action happened) can be injected per route.

Stdlib only (plus ``twitter_text`` for X's weighted tweet length). The server runs on 127.0.0.1 on
a free port in a background thread::

    with FakeX() as x:
        tweet_id = x.add_mention("@AcmeHelp my order is late")
        ...  # point the client at x.base_url
        assert x.wait_for_replies(1)[0].referenced == [("replied_to", tweet_id)]
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import twitter_text

from tests.standins.loopback import HookedRequest, LoopbackServer, Verdict

#: Route keys accepted by the fault-injection methods and :meth:`FakeX.calls_to`.
ROUTES = ("me", "mentions", "create_tweet", "user_tweets")

FIRST_TWEET_ID = 1_850_000_000_000_000_000
TWEET_ID_STEP = 1 << 22  # snowflake ids: the timestamp lives above bit 22
FIRST_USER_ID = 4_400_000_001
MAX_TWEET_LENGTH = 280
MIN_PAGE_SIZE = 5
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10
OAUTH_TIMESTAMP_SKEW_SECONDS = 300

# Per-window request limits the fake advertises in x-rate-limit-limit.
RATE_LIMITS = {"me": 75, "mentions": 450, "create_tweet": 200, "user_tweets": 1500}
RATE_WINDOW_SECONDS = 15 * 60

_ID_PATTERN = re.compile(r"^[0-9]{1,19}$")
_USER_TIMELINE = re.compile(r"^/2/users/(?P<user_id>[^/]+)/(?P<kind>mentions|tweets)$")
_OAUTH_PARAM = re.compile(r'([A-Za-z0-9_]+)="([^"]*)"')

INVALID_REQUEST_TYPE = "https://api.twitter.com/2/problems/invalid-request"
NOT_FOUND_TYPE = "https://api.twitter.com/2/problems/resource-not-found"
UNSUPPORTED_AUTH_TYPE = "https://api.twitter.com/2/problems/unsupported-authentication"

DUPLICATE_DETAIL = "You are not allowed to create a Tweet with duplicate content."
TOO_LONG_DETAIL = "Your Tweet text is too long."
REPLY_NOT_VISIBLE_DETAIL = (
    "You attempted to reply to a Tweet that is deleted or not visible to you."
)

Json = dict[str, Any]
AuthKind = Literal["app", "user"]


@dataclass
class XCall:
    """One request received by the fake, successful or not.

    ``path`` excludes the query string; ``query`` holds the decoded query parameters; ``body`` is
    the decoded JSON body (``None`` when empty); ``headers`` has lower-cased names.
    """

    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


@dataclass
class Tweet:
    """A post stored by the fake. ``referenced`` holds ``(type, id)`` pairs."""

    id: str
    text: str
    author_id: str
    conversation_id: str
    created_at: datetime
    referenced: list[tuple[str, str]] = field(default_factory=list)


@dataclass
class _User:
    id: str
    username: str
    name: str


@dataclass
class _Fault:
    kind: Literal["rate_limit", "fail", "hang", "lose_response", "lag"]
    status: int = 0
    reset_in: int = 0
    seconds: float = 0.0


@dataclass
class _Answer:
    status: int
    body: Json
    headers: dict[str, str] = field(default_factory=dict)


def route_of(method: str, path: str) -> str | None:
    """The route key (see :data:`ROUTES`) for a request, or ``None`` if the fake has no such
    endpoint."""
    if method == "GET" and path == "/2/users/me":
        return "me"
    if method == "POST" and path == "/2/tweets":
        return "create_tweet"
    match = _USER_TIMELINE.match(path)
    if method == "GET" and match:
        return "mentions" if match["kind"] == "mentions" else "user_tweets"
    return None


def _percent_encode(value: str) -> str:
    """RFC 3986 percent-encoding as OAuth 1.0a requires (only unreserved characters kept)."""
    return quote(value, safe="")


def _problem(
    status: int, detail: str, *, title: str | None = None, type_: str = "about:blank"
) -> Json:
    return {
        "title": title or HTTPStatus(status).phrase,
        "detail": detail,
        "type": type_,
        "status": status,
    }


def _invalid_request(message: str, parameter: str, value: str) -> _Answer:
    return _Answer(
        400,
        {
            "errors": [{"parameters": {parameter: [value]}, "message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": INVALID_REQUEST_TYPE,
        },
    )


def _encode_token(cursor: int) -> str:
    """An opaque-looking pagination token carrying the id the next page starts at."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while cursor:
        cursor, rest = divmod(cursor, 36)
        out = digits[rest] + out
    return "7140dibdnow9c7btw" + (out or "0")


def _decode_token(token: str) -> int | None:
    prefix = "7140dibdnow9c7btw"
    if not token.startswith(prefix):
        return None
    try:
        return int(token[len(prefix) :], 36)
    except ValueError:
        return None


def _format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class _Server(ThreadingHTTPServer):
    # Handler threads are joined on close, so nothing outlives stop(); hung answers wake up early.
    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeX) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection, so handler threads end as soon as they answer.
    protocol_version = "HTTP/1.0"
    timeout = 5.0  # a client that connects and never sends a request cannot block stop()

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet; every call is recorded in ``FakeX.calls`` instead."""

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw_body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        fake = cast(_Server, self.server).fake
        answer = fake._answer(self.command, self.path, headers, raw_body)
        if answer is None:  # lost response: close the connection without a word
            self.close_connection = True
            return
        payload = json.dumps(answer.body).encode()
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
            self.close_connection = True


class FakeX(LoopbackServer):
    """An in-process X API v2 server with a brand account, its mentions and its own tweets."""

    def __init__(  # noqa: PLR0917 - the documented interface takes positional defaults
        self,
        brand_id: str = "1000",
        brand_handle: str = "AcmeHelp",
        brand_name: str = "Acme Help",
        bearer_token: str = "x-bearer-test",  # noqa: S107 - fake credentials
        consumer_key: str = "x-key",
        consumer_secret: str = "x-secret",  # noqa: S107 - fake credentials
        access_token: str = "x-access",  # noqa: S107 - fake credentials
        access_token_secret: str = "x-access-secret",  # noqa: S107 - fake credentials
    ) -> None:
        super().__init__()
        self.brand_id = brand_id
        self.brand_handle = brand_handle
        self.brand_name = brand_name
        self.bearer_token = bearer_token
        self.consumer_key = consumer_key
        self.consumer_secret = consumer_secret
        self.access_token = access_token
        self.access_token_secret = access_token_secret

        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # route → (window start, requests)
        self._changed = threading.Condition(self._lock)
        self._next_tweet_id = FIRST_TWEET_ID
        self._next_user_id = FIRST_USER_ID

        self.calls: list[XCall] = []
        self._tweets: dict[str, Tweet] = {}
        self._mention_ids: set[str] = set()
        self._created_ids: list[str] = []
        self._users: dict[str, _User] = {}
        self._faults: dict[str, list[_Fault]] = {}
        self.reset()

    # -- lifecycle ---------------------------------------------------------------------------

    name = "fake-x"

    def _new_server(self) -> _Server:
        return _Server(self)

    # -- scenario setup ----------------------------------------------------------------------

    def reset(self) -> None:
        """Forget tweets, users, calls and pending faults (tweet ids keep increasing)."""
        with self._lock:
            self.calls.clear()
            self._tweets.clear()
            self._mention_ids.clear()
            self._created_ids.clear()
            self._faults.clear()
            self._windows.clear()
            self._users = {self.brand_id: _User(self.brand_id, self.brand_handle, self.brand_name)}

    def add_mention(
        self,
        text: str,
        *,
        author_handle: str = "alice",
        author_name: str = "Alice",
        author_id: str | None = None,
        conversation_id: str | None = None,
        retweet_of: str | None = None,
        from_brand: bool = False,
    ) -> str:
        """Store a post that mentions the brand; returns its id."""
        with self._lock:
            if from_brand:
                author = self._users[self.brand_id]
            else:
                author = self._register_user(author_id, author_handle, author_name)
            tweet = self._new_tweet(text, author.id, conversation_id)
            if retweet_of is not None:
                tweet.referenced.append(("retweeted", retweet_of))
            self._mention_ids.add(tweet.id)
            return tweet.id

    def rate_limit(self, route: str, times: int = 1, reset_in: int = 60) -> None:
        """Answer the next ``times`` calls to ``route`` with 429 Too Many Requests."""
        self._add_faults(route, times, _Fault("rate_limit", status=429, reset_in=reset_in))

    def fail(self, route: str, status: int = 503, times: int = 1) -> None:
        """Answer the next ``times`` calls to ``route`` with ``status`` and a problem body."""
        self._add_faults(route, times, _Fault("fail", status=status))

    def hang(self, route: str, seconds: float, times: int = 1) -> None:
        """Delay the answer to the next ``times`` calls to ``route`` (the call still happens)."""
        self._add_faults(route, times, _Fault("hang", seconds=seconds))

    def lose_response(self, route: str, times: int = 1) -> None:
        """Perform the next ``times`` calls to ``route``, then close the connection unanswered."""
        self._add_faults(route, times, _Fault("lose_response"))

    def lag(self, route: str, times: int = 1) -> None:
        """Answer the next ``times`` reads of a timeline ``route`` with an empty page, as X's
        timelines do for a while after a write (the posts exist; the read does not show them)."""
        if route not in ("mentions", "user_tweets"):
            raise ValueError(f"only timelines lag, not {route!r}")
        self._add_faults(route, times, _Fault("lag"))

    # -- inspection --------------------------------------------------------------------------

    def calls_to(self, route: str) -> list[XCall]:
        self._check_route(route)
        with self._lock:
            return [call for call in self.calls if route_of(call.method, call.path) == route]

    def replies(self) -> list[Tweet]:
        """Tweets the brand created through ``POST /2/tweets``, oldest first."""
        with self._lock:
            return [self._tweets[tweet_id] for tweet_id in self._created_ids]

    def wait_for_replies(self, count: int, timeout: float = 10.0) -> list[Tweet]:
        """Wait until at least ``count`` tweets were created; fail with what exists otherwise."""
        with self._changed:
            done = self._changed.wait_for(lambda: len(self._created_ids) >= count, timeout)
            created = [self._tweets[tweet_id] for tweet_id in self._created_ids]
        if not done:
            raise AssertionError(
                f"expected {count} replies within {timeout}s, got {len(created)}: "
                + repr([(tweet.id, tweet.text) for tweet in created])
            )
        return created

    # -- internals: state ---------------------------------------------------------------------

    def _check_route(self, route: str) -> None:
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; use one of {ROUTES}")

    def _add_faults(self, route: str, times: int, fault: _Fault) -> None:
        self._check_route(route)
        with self._lock:
            pending = self._faults.setdefault(route, [])
            pending.extend(
                _Fault(fault.kind, fault.status, fault.reset_in, fault.seconds)
                for _ in range(times)
            )

    def _take_fault(self, route: str) -> _Fault | None:
        with self._lock:
            pending = self._faults.get(route)
            return pending.pop(0) if pending else None

    def _register_user(self, user_id: str | None, handle: str, name: str) -> _User:
        if user_id is None:
            known = next((u for u in self._users.values() if u.username == handle), None)
            if known is not None:
                return known
            user_id = str(self._next_user_id)
            self._next_user_id += 1
        user = _User(user_id, handle, name)
        self._users[user_id] = user
        return user

    def _new_tweet(self, text: str, author_id: str, conversation_id: str | None) -> Tweet:
        tweet_id = str(self._next_tweet_id)
        self._next_tweet_id += TWEET_ID_STEP
        tweet = Tweet(
            id=tweet_id,
            text=text,
            author_id=author_id,
            conversation_id=conversation_id or tweet_id,
            created_at=datetime.now(UTC).replace(microsecond=0),
        )
        self._tweets[tweet_id] = tweet
        return tweet

    # -- internals: HTTP ----------------------------------------------------------------------

    def _answer(
        self, method: str, raw_path: str, headers: dict[str, str], raw_body: bytes
    ) -> _Answer | None:
        """The answer to one request, or ``None`` to drop the connection without answering."""
        split = urlsplit(raw_path)
        path = split.path
        query_pairs = parse_qsl(split.query, keep_blank_values=True)
        query = dict(query_pairs)
        body: Any = None
        if raw_body:
            try:
                body = json.loads(raw_body)
            except ValueError:
                body = raw_body.decode("utf-8", "replace")
        with self._lock:
            self.calls.append(XCall(method, path, query, body, headers))

        route = route_of(method, path)
        if route is None:
            return _Answer(
                404,
                _problem(
                    404,
                    "Sorry, that page does not exist",
                    title="Not Found Error",
                    type_=NOT_FOUND_TYPE,
                ),
            )
        refusal = self._refuse_auth(route, method, path, query_pairs, headers)
        if refusal is not None:
            return refusal

        request = HookedRequest(method, path, query, body)
        hook = self._take_hook(request)
        if self._run_before(hook, request) is Verdict.DROP:
            return None
        answer = self._answer_with_faults(route, path, query, body)
        self._run_after(hook, request)
        if answer is not None and "x-rate-limit-limit" not in answer.headers:
            answer.headers.update(self._rate_headers(route))
        return answer

    def _rate_headers(self, route: str) -> dict[str, str]:
        """What X sends with every answer: the route's limit, what is left, when it resets."""
        now = time.time()
        with self._lock:
            start, used = self._windows.get(route, (now, 0))
            if now >= start + RATE_WINDOW_SECONDS:
                start, used = now, 0
            used += 1
            self._windows[route] = (start, used)
        limit = RATE_LIMITS[route]
        return {
            "x-rate-limit-limit": str(limit),
            "x-rate-limit-remaining": str(max(limit - used, 0)),
            "x-rate-limit-reset": str(int(start + RATE_WINDOW_SECONDS)),
        }

    def _answer_with_faults(
        self, route: str, path: str, query: dict[str, str], body: Any
    ) -> _Answer | None:
        """Apply the next injected fault for ``route`` (if any) around the real answer."""
        fault = self._take_fault(route)
        if fault is None:
            return self._dispatch(route, path, query, body)
        if fault.kind == "rate_limit":
            return self._too_many_requests(route, fault.reset_in)
        if fault.kind == "fail":
            return _Answer(fault.status, _problem(fault.status, HTTPStatus(fault.status).phrase))
        if fault.kind == "lag":
            return _Answer(200, {"meta": {"result_count": 0}})
        if fault.kind == "hang" and self._stopping.wait(fault.seconds):
            return None  # the server is stopping: do not act on a request nobody waits for
        answer = self._dispatch(route, path, query, body)
        return None if fault.kind == "lose_response" else answer

    def _refuse_auth(
        self,
        route: str,
        method: str,
        path: str,
        query_pairs: list[tuple[str, str]],
        headers: dict[str, str],
    ) -> _Answer | None:
        """401 for missing or bad credentials, 403 for app-only auth on user-context routes."""
        auth = self._authenticate(method, path, query_pairs, headers.get("authorization", ""))
        if auth is None:
            return _Answer(401, _problem(401, "Unauthorized"))
        if auth == "app" and route in ("me", "create_tweet"):
            return _Answer(
                403,
                _problem(
                    403,
                    "Authenticating with OAuth 2.0 Application-Only is forbidden for this "
                    "endpoint.  Supported authentication types are [OAuth 1.0a User Context, "
                    "OAuth 2.0 User Context].",
                    title="Unsupported Authentication",
                    type_=UNSUPPORTED_AUTH_TYPE,
                ),
            )
        return None

    def _too_many_requests(self, route: str, reset_in: int) -> _Answer:
        body = _problem(429, "Too Many Requests")
        headers = {
            "x-rate-limit-limit": str(RATE_LIMITS[route]),
            "x-rate-limit-remaining": "0",
            "x-rate-limit-reset": str(int(time.time()) + reset_in),
        }
        return _Answer(429, body, headers)

    def _dispatch(self, route: str, path: str, query: dict[str, str], body: Any) -> _Answer:
        if route == "me":
            return _Answer(
                200,
                {
                    "data": {
                        "id": self.brand_id,
                        "name": self.brand_name,
                        "username": self.brand_handle,
                    }
                },
            )
        if route == "create_tweet":
            return self._create_tweet(body)
        match = _USER_TIMELINE.match(path)
        assert match is not None
        return self._timeline(route, match["user_id"], query)

    # -- authentication ----------------------------------------------------------------------

    def _authenticate(
        self, method: str, path: str, query_pairs: list[tuple[str, str]], authorization: str
    ) -> AuthKind | None:
        if authorization.startswith("Bearer "):
            token = authorization[len("Bearer ") :]
            return (
                "app" if hmac.compare_digest(token.encode(), self.bearer_token.encode()) else None
            )
        if authorization.startswith("OAuth "):
            return (
                "user"
                if self._oauth_signature_ok(method, path, query_pairs, authorization)
                else None
            )
        return None

    def _oauth_signature_ok(
        self, method: str, path: str, query_pairs: list[tuple[str, str]], authorization: str
    ) -> bool:
        oauth = {key: unquote(value) for key, value in _OAUTH_PARAM.findall(authorization)}
        required = (
            "oauth_consumer_key",
            "oauth_token",
            "oauth_signature",
            "oauth_nonce",
            "oauth_timestamp",
            "oauth_signature_method",
        )
        if any(key not in oauth for key in required):
            return False
        if (
            oauth["oauth_consumer_key"] != self.consumer_key
            or oauth["oauth_token"] != self.access_token
        ):
            return False
        if oauth["oauth_signature_method"] != "HMAC-SHA1":
            return False
        try:
            skew = abs(time.time() - int(oauth["oauth_timestamp"]))
        except ValueError:
            return False
        if skew > OAUTH_TIMESTAMP_SKEW_SECONDS:
            return False

        # Signature base string (RFC 5849 section 3.4.1): the query and oauth_* parameters,
        # percent-encoded, sorted and joined; JSON bodies are not part of it.
        params = list(query_pairs) + [
            (key, value) for key, value in oauth.items() if key not in ("oauth_signature", "realm")
        ]
        encoded = sorted((_percent_encode(key), _percent_encode(value)) for key, value in params)
        normalized = "&".join(f"{key}={value}" for key, value in encoded)
        base_string = "&".join(
            [method.upper(), _percent_encode(self.base_url + path), _percent_encode(normalized)]
        )
        key = f"{_percent_encode(self.consumer_secret)}&{_percent_encode(self.access_token_secret)}"
        digest = hmac.new(key.encode(), base_string.encode(), hashlib.sha1).digest()
        expected = base64.b64encode(digest).decode()
        return hmac.compare_digest(expected.encode(), oauth["oauth_signature"].encode())

    # -- endpoints ---------------------------------------------------------------------------

    def _timeline(self, route: str, user_id: str, query: dict[str, str]) -> _Answer:
        """``GET /2/users/:id/mentions`` and ``GET /2/users/:id/tweets``, newest first."""
        if not _ID_PATTERN.match(user_id):
            return _invalid_request(
                f"The `id` query parameter value [{user_id}] does not match ^[0-9]{{1,19}}$",
                "id",
                user_id,
            )
        for name in ("since_id", "until_id"):
            value = query.get(name)
            if value is not None and not _ID_PATTERN.match(value):
                return _invalid_request(
                    f"The `{name}` query parameter value [{value}] does not match ^[0-9]{{1,19}}$",
                    name,
                    value,
                )
        raw_size = query.get("max_results", str(DEFAULT_PAGE_SIZE))
        if not raw_size.isdigit() or not MIN_PAGE_SIZE <= int(raw_size) <= MAX_PAGE_SIZE:
            return _invalid_request(
                f"The `max_results` query parameter value [{raw_size}] is not between "
                f"{MIN_PAGE_SIZE} and {MAX_PAGE_SIZE}",
                "max_results",
                raw_size,
            )
        page_size = int(raw_size)
        cursor: int | None = None
        if "pagination_token" in query:
            cursor = _decode_token(query["pagination_token"])
            if cursor is None:
                return _invalid_request(
                    f"The `pagination_token` query parameter value [{query['pagination_token']}] "
                    "is not valid",
                    "pagination_token",
                    query["pagination_token"],
                )

        with self._lock:
            if user_id not in self._users:
                return _Answer(
                    200,
                    {
                        "errors": [
                            {
                                "value": user_id,
                                "detail": f"Could not find user with id: [{user_id}].",
                                "title": "Not Found Error",
                                "resource_type": "user",
                                "parameter": "id",
                                "resource_id": user_id,
                                "type": NOT_FOUND_TYPE,
                            }
                        ]
                    },
                )
            if route == "mentions":
                candidates = [self._tweets[tweet_id] for tweet_id in self._mention_ids]
            else:
                candidates = [t for t in self._tweets.values() if t.author_id == user_id]
            excluded = set(query.get("exclude", "").split(",")) - {""}
            matching = [
                tweet
                for tweet in sorted(candidates, key=lambda t: int(t.id), reverse=True)
                if self._in_window(tweet, query, excluded)
            ]
            if cursor is not None:
                matching = [tweet for tweet in matching if int(tweet.id) <= cursor]
            page, rest = matching[:page_size], matching[page_size:]
            return _Answer(200, self._render_page(page, rest, query))

    @staticmethod
    def _in_window(tweet: Tweet, query: dict[str, str], excluded: set[str]) -> bool:
        if "since_id" in query and int(tweet.id) <= int(query["since_id"]):
            return False
        if "until_id" in query and int(tweet.id) >= int(query["until_id"]):
            return False
        kinds = {kind for kind, _ in tweet.referenced}
        if "retweets" in excluded and "retweeted" in kinds:
            return False
        return not ("replies" in excluded and "replied_to" in kinds)

    def _render_page(self, page: list[Tweet], rest: list[Tweet], query: dict[str, str]) -> Json:
        if not page:
            return {"meta": {"result_count": 0}}
        tweet_fields = set(query.get("tweet.fields", "").split(","))
        expansions = set(query.get("expansions", "").split(","))
        out: Json = {"data": [self._render_tweet(tweet, tweet_fields) for tweet in page]}
        includes: Json = {}
        if "author_id" in expansions:
            author_ids = dict.fromkeys(tweet.author_id for tweet in page)
            includes["users"] = [
                {"id": user.id, "name": user.name, "username": user.username}
                for user in (self._users.get(author_id) for author_id in author_ids)
                if user is not None
            ]
        if "referenced_tweets.id" in expansions:
            referenced_ids = dict.fromkeys(
                ref_id for tweet in page for _, ref_id in tweet.referenced
            )
            includes["tweets"] = [
                self._render_tweet(self._tweets[ref_id], tweet_fields)
                for ref_id in referenced_ids
                if ref_id in self._tweets
            ]
        if includes:
            out["includes"] = includes
        meta: Json = {"result_count": len(page), "newest_id": page[0].id, "oldest_id": page[-1].id}
        if rest:
            meta["next_token"] = _encode_token(int(rest[0].id))
        out["meta"] = meta
        return out

    @staticmethod
    def _render_tweet(tweet: Tweet, fields: set[str]) -> Json:
        out: Json = {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}
        if "author_id" in fields:
            out["author_id"] = tweet.author_id
        if "conversation_id" in fields:
            out["conversation_id"] = tweet.conversation_id
        if "created_at" in fields:
            out["created_at"] = _format_time(tweet.created_at)
        if "referenced_tweets" in fields and tweet.referenced:
            out["referenced_tweets"] = [
                {"type": kind, "id": ref_id} for kind, ref_id in tweet.referenced
            ]
        return out

    def _create_tweet(self, body: Any) -> _Answer:
        """``POST /2/tweets`` on behalf of the brand."""
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            return _invalid_request("$.text: a string is required", "text", repr(body))
        text: str = body["text"]
        reply = body.get("reply")
        parent_id = reply.get("in_reply_to_tweet_id") if isinstance(reply, dict) else None

        if twitter_text.parse_tweet(text).weightedLength > MAX_TWEET_LENGTH:
            return _Answer(403, _problem(403, TOO_LONG_DETAIL, title="Forbidden"))
        with self._changed:
            parent = self._tweets.get(str(parent_id)) if parent_id is not None else None
            if parent_id is not None and parent is None:
                return _Answer(403, _problem(403, REPLY_NOT_VISIBLE_DETAIL, title="Forbidden"))
            if any(t.author_id == self.brand_id and t.text == text for t in self._tweets.values()):
                return _Answer(403, _problem(403, DUPLICATE_DETAIL, title="Forbidden"))
            tweet = self._new_tweet(text, self.brand_id, parent.conversation_id if parent else None)
            if parent is not None:
                tweet.referenced.append(("replied_to", parent.id))
            self._created_ids.append(tweet.id)
            self._changed.notify_all()
        return _Answer(
            201,
            {"data": {"id": tweet.id, "text": tweet.text, "edit_history_tweet_ids": [tweet.id]}},
        )
