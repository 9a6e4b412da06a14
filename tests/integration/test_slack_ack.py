"""Slack's 3-second acknowledgement through the built functions, each invoke a fresh interpreter
(a cold start, as `localrun` runs them): a click on Approve is answered 200 by
ApprovalsHttpFunction behind the local Function URL while Slack's response_url takes 5 s to
answer, and OnApprovalFunction, handling the "Approval Decided" event, then tells the approver
what happened through that slow response_url.

Slack (https://docs.slack.dev/tools/bolt-python/concepts/acknowledge): "We recommend calling
ack() right away before initiating any time-consuming processes such as fetching information
from your database or sending a new message, since you only have 3 seconds to respond before
Slack registers a timeout error." """

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployer_local import localrun
from deployer_local.function_url import FunctionUrlServer
from tests.integration.test_release_flow import bus_queue, current, to_approval
from tests.support.slack_sink import SlackSink
from tests.support.world import World

pytestmark = pytest.mark.integration

SIGNING_SECRET = "local-signing-secret-for-the-ack-test"
APPROVER = "U012ABCDEF"  # the demo pipeline's prod approver
SLOW_SLACK_SECONDS = 5.0


@pytest.fixture
def slack(world: World, resource_names: dict[str, str]) -> Iterator[SlackSink]:
    with SlackSink() as sink:
        settings = {
            "bot_token": "xoxb-local-test",
            "signing_secret": SIGNING_SECRET,
            "channel": "#deploys",
            "api_base_url": sink.api_base_url,
        }
        boto3.client("secretsmanager").put_secret_value(
            SecretId=resource_names["SlackSecret"], SecretString=json.dumps(settings)
        )
        yield sink


def approve_button_token(sink: SlackSink) -> str:
    """The approval token, as Slack holds it: the value of the message's Approve button."""
    for request in reversed(sink.requests("/api/chat.")):
        for block in request.blocks:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("action_id") == "approve":
                    return str(element["value"])
    raise AssertionError("no Approve button in Slack's messages")


def click(sink: SlackSink, token: str) -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": APPROVER, "username": "alice", "team_id": "T0001"},
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0DEPLOYS"},
        "response_url": sink.response_url("T0001/1234/ack"),
        "actions": [{"action_id": "approve", "block_id": "approval", "value": token, "type": "button"}],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def test_a_cold_approvals_function_acknowledges_before_a_slow_slack_answers(
    world: World, aws: str, build_dir: Path, resource_names: dict[str, str], slack: SlackSink
) -> None:
    names = dict(resource_names)
    handled: list[localrun.InvokeResult] = []

    def invoke(function: str, event: dict[str, Any]) -> Any:
        result = localrun.invoke(
            function,
            event,
            env={"AWS_ENDPOINT_URL": aws},
            build_dir=build_dir,
            names=names,
            parameters={"Environment": world.names.environment},
        )
        assert result.error is None, f"{function} failed: {result.error}\n{result.logs}"
        handled.append(result)
        return result.payload

    decisions = bus_queue(world, "Approval Decided")
    # GIVEN a release waiting for prod's approval, and a Slack whose response_url answers after 5 s
    release = to_approval(world, invoke, "slack-ack")
    token = approve_button_token(slack)
    slack.slow_down("/response/", SLOW_SLACK_SECONDS)
    body = click(slack, token)
    stamp = str(int(time.time()))
    signature = "v0=" + hmac.new(SIGNING_SECRET.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
    }
    with FunctionUrlServer(lambda event: invoke("ApprovalsHttpFunction", event)) as server:
        # WHEN the approver presses Approve (the function starts cold: imports, secrets, clients)
        started = time.monotonic()
        request = urllib.request.Request(server.url + "slack/interactions", data=body, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=30) as answer:
            status = answer.status
        ack_seconds = time.monotonic() - started
    # THEN Slack has its 200 before its slow response_url could have answered anything, and the
    # endpoint did not post to it at all
    handler_ms = handled[-1].duration_ms  # the handler alone: secrets, DynamoDB, PutEvents on a cold start
    print(
        f"\ncold ApprovalsHttpFunction: acknowledged in {ack_seconds:.2f} s, of which the handler {handler_ms:.0f} ms"
    )
    assert status == 200
    assert ack_seconds < SLOW_SLACK_SECONDS - 1, f"acknowledged after {ack_seconds:.2f} s"
    assert slack.requests("/response/") == []
    # WHEN OnApprovalFunction handles the decision the bus delivered
    (decided,) = decisions()
    started = time.monotonic()
    outcome = invoke("OnApprovalFunction", decided)
    handled_seconds = time.monotonic() - started
    # THEN prod deploys, and the approver hears it through the slow response_url
    assert outcome.get("result", {}).get("outcome") == "deploying", outcome
    (told,) = slack.requests("/response/")
    assert told.body["replace_original"] is False
    assert f"Approved by <@{APPROVER}>" in told.body["text"]
    assert "*prod* of *web* is deploying now" in told.body["text"]
    assert handled_seconds >= SLOW_SLACK_SECONDS  # it waited for Slack's answer
    assert (
        world.service("prod")["taskDefinition"] == current(world, release.release_id).stages["prod"].task_definition_arn
    )
