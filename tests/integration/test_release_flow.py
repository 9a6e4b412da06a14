"""A whole release through the built functions over moto server: push -> build -> dev -> an
approval request posted to Slack (a local HTTP sink) -> the approval page over HTTP (a local
server in front of the built approvals function) -> "Approval Decided" on the bus -> prod ->
RELEASED; and a rejection ending REJECTED. ECS rollouts are not simulated here: the test sends
the deployment events ECS would send."""

from __future__ import annotations

import json
import re
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployer.releases.model import Release, ReleaseState
from deployer_local import localrun
from deployer_local.function_url import FunctionUrlServer
from tests.support.events import load_event
from tests.support.slack_sink import SlackSink
from tests.support.world import World, commit_id

pytestmark = pytest.mark.integration

Invoke = Callable[[str, Mapping[str, Any]], Any]


@pytest.fixture
def slack(world: World, resource_names: dict[str, str]) -> Iterator[SlackSink]:
    """Slack is the local sink: the Slack secret points the bot at it."""
    with SlackSink() as sink:
        settings = {
            "bot_token": "xoxb-local-test",
            "signing_secret": "local-signing-secret",
            "channel": "#deploys",
            "api_base_url": sink.api_base_url,
        }
        boto3.client("secretsmanager").put_secret_value(
            SecretId=resource_names["SlackSecret"], SecretString=json.dumps(settings)
        )
        yield sink


@pytest.fixture
def stack(
    world: World, aws: str, build_dir: Path, resource_names: dict[str, str], slack: SlackSink
) -> Iterator[tuple[Invoke, FunctionUrlServer]]:
    """The functions (from the build output) and the approval page on a real local HTTP server."""
    names = dict(resource_names)

    def invoke(function: str, event: Mapping[str, Any]) -> Any:
        result = localrun.invoke(
            function,
            event,
            env={"AWS_ENDPOINT_URL": aws},
            build_dir=build_dir,
            names=names,
            parameters={"Environment": world.names.environment},
        )
        assert result.error is None, f"{function} failed: {result.error}\n{result.logs}"
        return result.payload

    with FunctionUrlServer(lambda event: invoke("ApprovalsHttpFunction", event)) as server:
        names["ApprovalsHttpFunctionUrl.FunctionUrl"] = server.url
        yield invoke, server


def bus_queue(world: World, detail_type: str) -> Callable[[], list[dict[str, Any]]]:
    sqs = boto3.client("sqs")
    url = sqs.create_queue(QueueName=f"tap-{detail_type.replace(' ', '-').lower()}")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    rule = f"tap-{detail_type.replace(' ', '-').lower()}"
    pattern = {"source": ["ecs-deployer"], "detail-type": [detail_type]}
    events.put_rule(Name=rule, EventBusName=world.names.bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule=rule, EventBusName=world.names.bus, Targets=[{"Id": "q", "Arn": arn}])

    def read() -> list[dict[str, Any]]:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        for message in got:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        # moto leaves `account` out of the envelope it delivers; EventBridge always sets it.
        return [{"account": "123456789012", **json.loads(m["Body"])} for m in got]

    return read


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def deployment_completed(world: World, release: Release, stage: str) -> dict[str, Any]:
    event: dict[str, Any] = load_event("ecs_deployment_completed")
    event["id"] = str(uuid.uuid4())  # each ECS event has its own id (the handlers dedupe by id)
    service = world.account.services[stage]
    event["resources"] = [f"arn:aws:ecs:eu-west-1:123456789012:service/{service.cluster}/{service.service}"]
    event["detail"]["deploymentId"] = release.stages[stage].deployment_id
    return event


def to_approval(world: World, invoke: Invoke, label: str) -> Release:
    """Push, build, complete dev: the release waits for prod's approval."""
    pushed = invoke("OnPushFunction", world.push(commit_id(label)))
    release_id = pushed["result"][0]["release_id"]
    invoke("OnBuildFunction", world.build_finished(release_id))
    invoke("OnDeploymentFunction", deployment_completed(world, current(world, release_id), "dev"))
    release = current(world, release_id)
    assert release.state is ReleaseState.AWAITING_APPROVAL, release.reason
    return release


def approval_link(slack: SlackSink) -> str:
    """The approval link, as a person finds it: in the Slack message's button."""
    for request in slack.requests("/api/chat."):
        for block in request.blocks or []:
            for element in block.get("elements", []) if block.get("type") == "actions" else []:
                if element.get("url", "").find("/approvals/") >= 0:
                    return str(element["url"])
    raise AssertionError(f"no approval link in Slack's messages: {slack.requests('/api/')}")


def submit(link: str, decision: str) -> tuple[int, str]:
    """What a browser does with the page's form: GET the page, POST its form back to the same URL."""
    with urllib.request.urlopen(link, timeout=30) as page:
        html = page.read().decode()
    assert '<form method="post">' in html
    assert f'value="{decision}"' in html
    body = urllib.parse.urlencode({"decision": decision}).encode()
    request = urllib.request.Request(
        link, data=body, headers={"content-type": "application/x-www-form-urlencoded"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_push_to_prod_through_slack_and_the_approval_page(
    world: World, stack: tuple[Invoke, FunctionUrlServer], slack: SlackSink
) -> None:
    invoke, server = stack
    decisions = bus_queue(world, "Approval Decided")
    changes = bus_queue(world, "Release State Change")
    # GIVEN a release that completed dev and waits for prod
    release = to_approval(world, invoke, "to-prod")
    # THEN Slack got one message for the release, updated as it moved, now with the approval link
    posts = slack.requests("/api/chat.postMessage")
    assert len(posts) == 1
    assert slack.requests("/api/chat.update")
    link = approval_link(slack)
    assert link.startswith(server.url + "approvals/v1.")
    # WHEN a person opens the link and approves through the page (GET, then POST its form)
    status, html = submit(link, "approve")
    assert status == 200, html
    assert "Approved" in html
    # THEN exactly one "Approval Decided" is on the bus; on_approval (its rule's target) deploys prod
    (decided,) = decisions()
    assert decided["detail"]["decision"] == "approve"
    assert decided["detail"]["decided_by"]["kind"] == "link"
    outcome = invoke("OnApprovalFunction", decided)
    assert outcome.get("result", {}).get("outcome") == "deploying", outcome
    release = current(world, release.release_id)
    assert world.service("prod")["taskDefinition"] == release.stages["prod"].task_definition_arn
    # AND when prod completes the release is RELEASED
    invoke("OnDeploymentFunction", deployment_completed(world, release, "prod"))
    assert current(world, release.release_id).state is ReleaseState.RELEASED
    # AND every transition was published on the bus, and the Slack message followed them
    published = []
    while batch := changes():
        published.extend(batch)
    states = [e["detail"]["to_state"] for e in published]
    for expected in ("BUILDING", "BUILT", "DEPLOYING", "DEPLOYED", "AWAITING_APPROVAL", "RELEASED"):
        assert expected in states
    last = list(slack.messages().values())[-1]
    assert "RELEASED" in json.dumps(last) or "Released" in json.dumps(last)
    # AND the link is spent
    again, _ = submit_post_only(link, "approve")
    assert again == 409


def submit_post_only(link: str, decision: str) -> tuple[int, str]:
    body = urllib.parse.urlencode({"decision": decision}).encode()
    request = urllib.request.Request(link, data=body, method="POST")
    request.add_header("content-type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


def test_a_rejection_through_the_page_ends_the_release_rejected(
    world: World, stack: tuple[Invoke, FunctionUrlServer], slack: SlackSink
) -> None:
    invoke, _ = stack
    decisions = bus_queue(world, "Approval Decided")
    release = to_approval(world, invoke, "rejected")
    status, html = submit(approval_link(slack), "reject")
    assert status == 200, html
    (decided,) = decisions()
    assert decided["detail"]["decision"] == "reject"
    outcome = invoke("OnApprovalFunction", decided)
    assert outcome.get("result", {}).get("outcome") == "rejected", outcome
    release = current(world, release.release_id)
    assert release.state is ReleaseState.REJECTED
    assert re.search(r"rejected by link holder", release.reason or "")
    assert world.service("prod")["taskDefinition"] == world.account.services["prod"].task_definition_arn
    assert "Rejected" in json.dumps(list(slack.messages().values())[-1]) or "REJECTED" in json.dumps(
        list(slack.messages().values())[-1]
    )
