"""The local stand-in for a Lambda Function URL (`deployer_local.function_url`): the body reaches the
function as Lambda passes it, and a request it refuses ends its connection, so what the client
sent after the headers is never parsed as another request.

AWS, "Invoking Lambda function URLs", request payload format
(https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html#urls-request-payload):
`body` is "The body of the request. If the content type of the request is binary, the body is
base64-encoded." and `isBase64Encoded` is "TRUE if the body is a binary payload and
base64-encoded. FALSE otherwise." Every exchange here goes over a raw socket (tests.support.rawhttp)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from deployer_local.function_url import MAX_BODY, FunctionUrlServer, request_event
from tests.support.rawhttp import exchange, request

pytestmark = pytest.mark.unit

FORM = {"Content-Type": "application/x-www-form-urlencoded", "Connection": "close"}
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n"


class Recorder:
    """A function that records each event it gets and answers 200 with the body it decoded."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> dict[str, Any]:
        self.events.append(event)
        body = event.get("body") or ""
        raw = base64.b64decode(body) if event["isBase64Encoded"] else body.encode()
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "body": f"got {len(raw)} bytes"}

    @property
    def paths(self) -> list[str]:
        return [event["rawPath"] for event in self.events]


@pytest.fixture
def server() -> Iterator[tuple[FunctionUrlServer, Recorder]]:
    recorder = Recorder()
    with FunctionUrlServer(recorder) as running:
        yield running, recorder


def event_for(content_type: str, body: bytes) -> dict[str, Any]:
    return request_event("POST", "/x", {"Content-Type": content_type}, body, source_ip="127.0.0.1", host="h")


# --- the body, as Lambda passes it -------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "body", "as_text"),
    [
        ("application/json", b'{"a": "\xc3\xa9"}', True),
        ("text/plain; charset=utf-8", "caf\u00e9".encode(), True),
        ("", b"", True),  # no body: an empty string
        # forms are base64-encoded (Slack's interaction posts arrive so at a real Function URL)
        ("application/x-www-form-urlencoded", b"decision=approve", False),
        ("application/octet-stream", b"\x00\x01", False),
        # declared text that is not UTF-8 cannot be a JSON string: base64, never a crash
        ("text/plain", b"caf\xe9", False),
        ("application/json", b'{"a": "\xff"}', False),
    ],
)
def test_the_body_is_text_only_when_lambda_would_pass_it_so(content_type: str, body: bytes, as_text: bool) -> None:
    event = event_for(content_type, body)
    assert event["isBase64Encoded"] is not as_text
    passed = event["body"].encode() if as_text else base64.b64decode(event["body"])
    assert passed == body


@pytest.mark.functional
def test_a_form_that_is_not_utf8_reaches_the_function_base64_encoded(
    server: tuple[FunctionUrlServer, Recorder],
) -> None:
    # GIVEN the stand-in in front of a function
    running, recorder = server
    body = b"decision=approve&note=\xff"
    # WHEN a form whose last byte is not UTF-8 is posted
    answer = exchange(running.host_text, running.port, request("POST", "/approvals/t", body, FORM))
    # THEN the function gets it, byte for byte, base64-encoded, and its answer comes back
    assert answer.status == 200
    assert answer.body == f"got {len(body)} bytes".encode()
    (event,) = recorder.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == body


# --- refused requests end their connection -----------------------------------------------------


@pytest.mark.functional
def test_a_body_too_large_is_refused_and_the_rest_is_never_read_as_a_request(
    server: tuple[FunctionUrlServer, Recorder],
) -> None:
    # GIVEN a request announcing more than the stand-in takes, whose body starts like a request
    running, recorder = server
    length = MAX_BODY + 1
    head = request("POST", "/approvals/t", headers={"Content-Length": str(length)})
    # WHEN it is sent, the body's first bytes with it
    answer = exchange(running.host_text, running.port, head, then=SMUGGLED, timeout=5.0)
    # THEN 413 with Connection: close, the connection ends, and nothing reached the function
    assert answer.status == 413
    assert answer.headers.get("connection") == "close"
    assert b"request body too large" in answer.body
    assert answer.closed
    assert answer.rest == b""  # no second response: the body was not parsed as a request
    assert recorder.paths == []


@pytest.mark.functional
@pytest.mark.parametrize(
    ("headers", "status", "says"),
    [
        ({"Content-Length": "12abc"}, 400, b"is not a number of bytes"),
        ({"Content-Length": "-5"}, 400, b"is not a number of bytes"),
        ({"Content-Length": "", "Transfer-Encoding": "chunked"}, 411, b"no chunked body"),
    ],
    ids=["not-a-number", "negative", "chunked"],
)
def test_a_body_whose_length_cannot_be_trusted_is_refused_and_the_connection_closed(
    server: tuple[FunctionUrlServer, Recorder], headers: dict[str, str], status: int, says: bytes
) -> None:
    running, recorder = server
    answer = exchange(running.host_text, running.port, request("POST", "/x", headers=headers), then=SMUGGLED)
    assert answer.status == status
    assert says in answer.body
    assert answer.headers.get("connection") == "close"
    assert answer.closed
    assert answer.rest == b""
    assert recorder.paths == []


@pytest.mark.functional
def test_a_good_request_keeps_the_connection_for_the_next_one(server: tuple[FunctionUrlServer, Recorder]) -> None:
    # GIVEN two requests on one connection (HTTP/1.1 keep-alive), the second closing it
    running, recorder = server
    first = request("POST", "/one", b"a=1", {"Content-Type": "application/x-www-form-urlencoded"})
    second = request("GET", "/two", headers={"Connection": "close"})
    # WHEN both are sent
    answer = exchange(running.host_text, running.port, first + second)
    # THEN both reach the function, in order: refusing is what closes a connection, not serving
    assert answer.status == 200
    assert b"HTTP/1.1 200" in answer.rest
    assert recorder.paths == ["/one", "/two"]
