"""A local HTTP server in front of a Lambda function, standing in for its Function URL: each
request becomes a payload-format 2.0 event, and the function's answer becomes the response.
Used by the integration tests and the local stack (real HTTP, so a browser or urllib works)."""

from __future__ import annotations

import base64
import json
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
FUNCTION_URL_MAX_BODY = 6 * 1024 * 1024  # Lambda's synchronous invocation payload limit
_DRAIN_LIMIT = 64 * 1024 * 1024  # a refused body up to this size is read, so the client sees the 413
_TEXT_TYPES = ("text/", "application/json", "application/x-www-form-urlencoded", "application/xml")


def request_event(
    method: str, target: str, headers: Mapping[str, str], body: bytes, *, source_ip: str, host: str
) -> dict[str, Any]:
    """The Function URL event (payload format 2.0) for one HTTP request."""
    parts = urlsplit(target)
    lowered = {k.lower(): v for k, v in headers.items()}
    lowered.setdefault("host", host)
    content_type = lowered.get("content-type", "")
    textual = not body or content_type.startswith(_TEXT_TYPES)
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
        "body": body.decode("utf-8") if textual else base64.b64encode(body).decode("ascii"),
        "isBase64Encoded": not textual,
    }


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
                length = int(self.headers.get("content-length") or 0)
                if length > owner.max_body:
                    # Read what was sent (up to a bound) so the client gets the answer, not a reset.
                    self.close_connection = True
                    remaining = min(length, _DRAIN_LIMIT)
                    while remaining > 0 and (chunk := self.rfile.read(min(remaining, 1 << 20))):
                        remaining -= len(chunk)
                    message = f"request body too large: {length} bytes, the limit is {owner.max_body}"
                    self._reply(413, {"content-type": "text/plain"}, message.encode())
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

            def _reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key not in {"content-length", "connection", "transfer-encoding"}:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
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
