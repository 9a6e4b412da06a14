"""A local stand-in for Slack: a real HTTP server on 127.0.0.1 that answers like Slack does.

Standard library only, so tests, the local stack and `deployer local` can all use it:

    with SlackSink(token="xoxb-local") as sink:
        settings = SlackSettings(bot_token="xoxb-local", channel="#deploys", api_base_url=sink.api_base_url)
        ...
        sink.requests("/api/chat.postMessage")[0].body["blocks"]

Routes:
- POST /api/chat.postMessage, /api/chat.update: form or JSON bodies (slack_sdk sends JSON);
  answers {"ok": true, "channel": <id>, "ts": "1700000000.000100", ...} with increasing ts. A
  channel name ("#deploys") gets a stable fake id ("C..."), and chat.update, like Slack's, needs
  that id and a ts it issued ("message_not_found" otherwise). With `token` set, a missing or
  different bearer token is refused ("not_authed" / "invalid_auth").
- POST /webhook/... (incoming webhooks): answers "ok".
- POST /response/... (interaction response_urls): answers {"ok": true}.

Every request is recorded (path, headers without Authorization, parsed body); `fail_with` makes
the sink answer like Slack down (an HTTP status) or refusing (an `"ok": false` error code), and
`slow_down` like a slow Slack (the request is recorded at once, the answer comes late).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FIRST_TS", "RecordedRequest", "SlackSink"]

FIRST_TS = "1700000000.000100"
_API_METHODS = ("chat.postMessage", "chat.update")


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # without Authorization
    body: Any  # parsed: a dict for JSON and form bodies, else the text
    raw: bytes
    authorized: bool | None = None  # API calls only: whether the bearer token matched (None: not checked)

    @property
    def blocks(self) -> list[dict[str, Any]]:
        """The Block Kit blocks of a message, whether sent as JSON or as a form field."""
        if not isinstance(self.body, dict):
            return []
        blocks = self.body.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else list(blocks)


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[RecordedRequest] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    failure: int | str | None = None
    delays: dict[str, float] = field(default_factory=dict)  # path prefix -> seconds before answering
    ts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def _channel_id(channel: str) -> str:
    """Slack answers with ids: a channel id stays, a name gets a stable fake id."""
    if channel[:1] in ("C", "G", "D") and channel[1:].isalnum() and channel.isupper():
        return channel
    return "C" + hashlib.sha1(channel.encode(), usedforsecurity=False).hexdigest()[:10].upper()


def _parse(content_type: str, raw: bytes) -> Any:
    text = raw.decode("utf-8", errors="replace")
    if "json" in content_type:
        try:
            return json.loads(text)
        except ValueError:
            return text
    if "x-www-form-urlencoded" in content_type:
        return {k: v[0] for k, v in urllib.parse.parse_qs(text, keep_blank_values=True).items()}
    return text


class SlackSink:
    """Start with `start()` or as a context manager; every accessor is thread-safe."""

    def __init__(self, *, token: str | None = None, echo: Callable[[RecordedRequest], None] | None = None) -> None:
        self._token = token
        self._echo = echo
        self._state = _State()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> SlackSink:
        if self._server is not None:
            return self
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name="slack-sink", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> SlackSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- addresses ----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the Slack sink is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_base_url(self) -> str:
        """For `WebClient(base_url=...)` / SlackSettings.api_base_url."""
        return f"{self.url}/api/"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}/webhook/T00000000/B00000000/local"

    def response_url(self, name: str = "1") -> str:
        return f"{self.url}/response/{urllib.parse.quote(name, safe='')}"

    # -- behaviour and records ----------------------------------------------------------------

    def fail_with(self, failure: int | str) -> None:
        """An int: answer that HTTP status (429 with Retry-After). A str: Slack's `"ok": false`
        error code (webhooks and response_urls answer it as a 400 body, as Slack does)."""
        with self._state.lock:
            self._state.failure = failure

    def recover(self) -> None:
        with self._state.lock:
            self._state.failure = None
            self._state.delays.clear()

    def slow_down(self, path_prefix: str, seconds: float) -> None:
        """Answer requests under `path_prefix` (e.g. "/response/") only after `seconds`."""
        with self._state.lock:
            self._state.delays[path_prefix] = seconds

    def requests(self, path_prefix: str | None = None) -> list[RecordedRequest]:
        with self._state.lock:
            found = list(self._state.requests)
        return [r for r in found if path_prefix is None or r.path.startswith(path_prefix)]

    def wait_for_requests(self, path_prefix: str, count: int = 1, timeout: float = 10.0) -> list[RecordedRequest]:
        """The requests under `path_prefix` once `count` have arrived, or those that arrived within
        `timeout` seconds: an answer the interactions endpoint left in flight when it acknowledged
        Slack (its deadline passed first, as on a loaded machine) arrives a little later."""
        deadline = time.monotonic() + timeout
        while len(found := self.requests(path_prefix)) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return found

    def messages(self) -> dict[tuple[str, str], dict[str, Any]]:
        """The current content of every message posted with chat.postMessage, by (channel id, ts)."""
        with self._state.lock:
            return {key: dict(value) for key, value in self._state.messages.items()}

    def clear(self) -> None:
        with self._state.lock:
            self._state.requests.clear()
            self._state.messages.clear()

    # -- the server ---------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "SlackSink/1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._send(405, "text/plain", b"method_not_allowed")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, content_type, payload = sink._answer(self, raw)
                self._send(status, content_type, payload)

            def _send(self, status: int, content_type: str, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "1")
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _answer(self, request: BaseHTTPRequestHandler, raw: bytes) -> tuple[int, str, bytes]:
        path = urllib.parse.urlsplit(request.path).path
        content_type = request.headers.get("Content-Type", "")
        body = _parse(content_type, raw)
        headers = {k: v for k, v in request.headers.items() if k.lower() != "authorization"}
        authorized: bool | None = None
        if path.startswith("/api/") and self._token is not None:
            authorized = request.headers.get("Authorization") == f"Bearer {self._token}"
        record = RecordedRequest("POST", path, headers, body, raw, authorized)
        with self._state.lock:
            self._state.requests.append(record)
            failure = self._state.failure
            delay = max((s for prefix, s in self._state.delays.items() if path.startswith(prefix)), default=0.0)
        if self._echo is not None:
            self._echo(record)
        if delay:
            time.sleep(delay)

        is_api = path.startswith("/api/")
        if isinstance(failure, int):
            if is_api or failure == 429:
                return (
                    failure,
                    "application/json",
                    _json({"ok": False, "error": "ratelimited" if failure == 429 else "fatal_error"}),
                )
            return failure, "text/plain", b"service unavailable"
        if isinstance(failure, str):
            if is_api:
                return 200, "application/json", _json({"ok": False, "error": failure})
            return 400, "text/plain", failure.encode()

        if is_api:
            if self._token is not None and request.headers.get("Authorization") is None:
                return 200, "application/json", _json({"ok": False, "error": "not_authed"})
            if authorized is False:
                return 200, "application/json", _json({"ok": False, "error": "invalid_auth"})
            return 200, "application/json", _json(self._api(path.removeprefix("/api/"), body))
        if path.startswith("/webhook/"):
            return 200, "text/html", b"ok"
        if path.startswith("/response/"):
            return 200, "application/json", _json({"ok": True})
        return 404, "text/plain", b"not_found"

    def _api(self, method: str, body: Any) -> dict[str, Any]:
        if method not in _API_METHODS:
            return {"ok": False, "error": "unknown_method"}
        if not isinstance(body, dict):
            return {"ok": False, "error": "invalid_arguments"}
        channel = body.get("channel")
        if not isinstance(channel, str) or not channel:
            return {"ok": False, "error": "channel_not_found"}
        if not body.get("text") and not body.get("blocks"):
            return {"ok": False, "error": "no_text"}
        message = {k: v for k, v in body.items() if k in ("text", "blocks")}
        with self._state.lock:
            if method == "chat.postMessage":
                channel_id = _channel_id(channel)
                ts = f"{FIRST_TS.split('.', maxsplit=1)[0]}.{next(self._state.ts) * 100:06d}"
                self._state.messages[(channel_id, ts)] = message
                return {"ok": True, "channel": channel_id, "ts": ts, "message": message}
            given_ts = body.get("ts")
            key = (channel, given_ts if isinstance(given_ts, str) else "")
            if key not in self._state.messages:
                return {"ok": False, "error": "message_not_found"}
            self._state.messages[key] = message
            return {"ok": True, "channel": channel, "ts": key[1], "text": message.get("text", "")}


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()
