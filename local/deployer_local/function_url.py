"""A local HTTP server in front of a Lambda function, standing in for its Function URL: each
request becomes a payload-format 2.0 event, and the function's answer becomes the response.
Used by the integration tests and the local stack (real HTTP, so a browser or urllib works).

The body reaches the function as Lambda passes it. AWS, "Invoking Lambda function URLs", request
payload format (https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html): `body` is
"The body of the request. If the content type of the request is binary, the body is
base64-encoded", and `isBase64Encoded` is "TRUE if the body is a binary payload and
base64-encoded. FALSE otherwise". The page lists no types; here only `text/*` and
`application/json` bodies that are valid UTF-8 pass as text, everything else (forms included, as
Slack's interaction posts reach a real Function URL) base64-encoded: a JSON event cannot carry
bytes that are not UTF-8 as text, and a handler must honour `isBase64Encoded` either way.

A request the stand-in will not pass on (a body over its `max_body`, by default `MAX_BODY`, a
Content-Length that is not a number, a chunked body) gets its error and `Connection: close`, and
the connection ends: what the client sent after the headers is never read as another request.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

Invoke = Callable[[dict[str, Any]], Mapping[str, Any] | None]

MAX_BODY = 1024 * 1024  # Function URLs refuse request payloads above 6 MB; a form never needs 1 MB
FUNCTION_URL_MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit (webhooks)
_TEXT_TYPES = ("text/", "application/json")
# After a refusal, what the client still sends is read and dropped, up to this (a 25 MB GitHub
# delivery included, so its sender reads the 413 instead of a reset)...
_DISCARD_BYTES = 64 * 1024 * 1024
_DISCARD_SECONDS = 2.0  # ... for at most this long (then the connection closes regardless)


def request_event(
    method: str, target: str, headers: Mapping[str, str], body: bytes, *, source_ip: str, host: str
) -> dict[str, Any]:
    """The Function URL event (payload format 2.0) for one HTTP request."""
    parts = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered.setdefault("host", host)
    text = _text_body(lowered.get("content-type", ""), body)
    now = datetime.now(UTC)
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": parts.path or "/",
        "rawQueryString": parts.query,
        "cookies": [c.strip() for c in lowered.get("cookie", "").split(";") if c.strip()] or None,
        "headers": lowered,
        "queryStringParameters": _query(parts.query),
        "requestContext": {
            "accountId": "anonymous",
            "apiId": "local",
            "domainName": lowered["host"],
            "domainPrefix": lowered["host"].split(".")[0],
            "http": {
                "method": method,
                "path": parts.path or "/",
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": lowered.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "body": text if text is not None else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": text is None,
    }


def _text_body(content_type: str, body: bytes) -> str | None:
    """The body as text when Lambda would pass it so; None when it goes base64-encoded."""
    if not body:
        return ""
    if not content_type.strip().lower().startswith(_TEXT_TYPES):
        return None
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _query(raw: str) -> dict[str, str] | None:
    if not raw:
        return None
    from urllib.parse import parse_qsl

    params: dict[str, str] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        params[key] = f"{params[key]},{value}" if key in params else value
    return params


def response_parts(answer: Mapping[str, Any] | None) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body from a function's answer, as Function URLs interpret it."""
    if answer is None:
        return 502, {"content-type": "text/plain"}, b"the function returned nothing"
    if "statusCode" not in answer:  # Function URLs turn any other JSON into a 200 JSON body
        return 200, {"content-type": "application/json"}, json.dumps(answer).encode()
    headers = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode("utf-8")
    cookies = answer.get("cookies") or []
    if cookies:
        headers["set-cookie"] = "; ".join(cookies)
    return int(answer["statusCode"]), headers, raw


class FunctionUrlServer:
    """`with FunctionUrlServer(invoke) as server: server.url` serves on 127.0.0.1, a free port."""

    def __init__(self, invoke: Invoke, host: str = "127.0.0.1", port: int = 0, max_body: int = MAX_BODY) -> None:
        self._invoke = invoke
        self.max_body = max_body
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = self._content_length()
                if length is None:
                    return
                body = self.rfile.read(length) if length else b""
                event = request_event(
                    self.command,
                    self.path,
                    dict(self.headers.items()),
                    body,
                    source_ip=str(self.client_address[0]),
                    host=f"{owner.host_text}:{owner.port}",
                )
                started = time.monotonic()
                try:
                    answer = owner._invoke(event)
                except Exception as exc:
                    self._reply(502, {"content-type": "text/plain"}, f"function failed: {exc}".encode())
                    return
                finally:
                    owner.last_duration_ms = (time.monotonic() - started) * 1000
                self._reply(*response_parts(answer))

            def _content_length(self) -> int | None:
                """The body's length, or None once the request was refused (and the connection
                closed: the unread body must never be parsed as the next request)."""
                if self.headers.get("transfer-encoding"):
                    self._refuse(411, "send the body with a Content-Length: this stand-in takes no chunked body")
                    return None
                raw = (self.headers.get("content-length") or "0").strip()
                if not raw.isdigit():
                    self._refuse(400, f"Content-Length {raw[:32]!r} is not a number of bytes")
                    return None
                length = int(raw)
                if length > owner.max_body:
                    self._refuse(413, f"request body too large: {length} bytes, the limit is {owner.max_body}")
                    return None
                return length

            def _refuse(self, status: int, text: str) -> None:
                self._reply(status, {"content-type": "text/plain; charset=utf-8"}, text.encode(), close=True)
                self.wfile.flush()
                self._discard_unread()

            def _discard_unread(self) -> None:
                """Half-close, then read and drop what the client is still sending, for a while: closing
                a socket with unread data resets the connection, and the client may lose the answer."""
                connection: socket.socket = self.connection
                try:
                    connection.shutdown(socket.SHUT_WR)
                    deadline = time.monotonic() + _DISCARD_SECONDS
                    dropped = 0
                    while dropped < _DISCARD_BYTES and (left := deadline - time.monotonic()) > 0:
                        connection.settimeout(left)
                        chunk = connection.recv(65536)
                        if not chunk:
                            break
                        dropped += len(chunk)
                except OSError:
                    pass

            def _reply(self, status: int, headers: Mapping[str, str], body: bytes, *, close: bool = False) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key not in {"content-length", "connection", "transfer-encoding"}:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                if close:
                    self.send_header("connection", "close")
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:  # the functions' logs tell what happened
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.host_text = str(self._server.server_address[0])
        self.port = int(self._server.server_address[1])
        self.last_duration_ms = 0.0
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL, with a trailing slash like a real Function URL."""
        return f"http://{self.host_text}:{self.port}/"

    def start(self) -> FunctionUrlServer:
        self._thread = threading.Thread(target=self._server.serve_forever, name="function-url", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> FunctionUrlServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
