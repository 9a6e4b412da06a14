"""A raw HTTP/1.1 client over a socket, for what urllib will not send (bodies that are not UTF-8
text, a Content-Length the body does not match, two requests on one connection) and for seeing
exactly what comes back, including whether the server closed the connection."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class RawResponse:
    status: int | None  # None: the server sent nothing (it dropped the connection)
    headers: dict[str, str]  # names lower-cased
    body: bytes
    rest: bytes  # whatever followed this response on the connection (another response, if any)
    closed: bool  # the server closed (or reset) the connection


def exchange(host: str, port: int, request: bytes, *, then: bytes = b"", timeout: float = 5.0) -> RawResponse:
    """Send `request`, then `then` (e.g. the part of a body the server should never parse), and
    read until the server closes the connection or `timeout` passes."""
    received = b""
    closed = False
    with socket.create_connection((host, port), timeout=timeout) as connection:
        try:
            connection.sendall(request)
            if then:
                connection.sendall(then)
        except OSError:
            closed = True
        deadline = time.monotonic() + timeout
        while not closed and (left := deadline - time.monotonic()) > 0:
            connection.settimeout(left)
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                break
            except OSError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            received += chunk
    return _parse(received, closed)


def _parse(received: bytes, closed: bool) -> RawResponse:
    if not received:
        return RawResponse(None, {}, b"", b"", closed)
    head, _, after = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", len(after)))
    return RawResponse(status, headers, after[:length], after[length:], closed)


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """The bytes of one request; Content-Length is the body's unless `headers` say otherwise."""
    fields = {"Host": "127.0.0.1", "Content-Length": str(len(body)), **(headers or {})}
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items() if v != "")
    return head.encode("latin-1") + b"\r\n" + body
