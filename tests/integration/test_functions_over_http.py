"""The built functions, run by `deployer_local.localrun` as Lambda would load them, against moto server
over real HTTP: what `test_flow.py` proves in process, proved again through the packaging, the
handlers' Powertools decorators and the network."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest
from boto3.dynamodb.conditions import Key

from deployer.events.deployer_bus import RELEASE_STATE_CHANGE, SOURCE
from deployer.pipelines.store import PUBLISHED_ITEM_ID
from deployer.releases.model import ReleaseState
from deployer_local import localrun
from deployer_local.localrun import InvokeResult
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.integration

Invoke = Callable[[str, Mapping[str, Any]], InvokeResult]
BusTap = Callable[[], list[dict[str, Any]]]

# A Python warning as the runtime prints it: "path.py:213: UserWarning: text", then the source line.
_WARNING = re.compile(r"^\S+\.py:\d+: \w*Warning: ")


@pytest.fixture
def run(world: World, aws: str, build_dir: Path, resource_names: dict[str, str]) -> Invoke:
    """Invoke a built function with the world's resource names and moto server as the AWS."""

    def invoke(function: str, event: Mapping[str, Any]) -> InvokeResult:
        result = localrun.invoke(
            function,
            event,
            env={"AWS_ENDPOINT_URL": aws},
            build_dir=build_dir,
            names=resource_names,
            parameters={"Environment": world.names.environment},
        )
        assert result.error is None, f"{function} failed: {result.error}\n{result.logs}"
        return result

    return invoke


@pytest.fixture
def bus_tap(world: World) -> BusTap:
    """Everything the deployer publishes on its bus, through a rule (source ecs-deployer) whose
    target is an SQS queue: read back in publication order."""
    sqs = boto3.client("sqs")
    events = boto3.client("events")
    queue_url = sqs.create_queue(QueueName="deployer-bus-tap")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(Name="tap", EventBusName=world.names.bus, EventPattern=json.dumps({"source": [SOURCE]}))
    events.put_targets(Rule="tap", EventBusName=world.names.bus, Targets=[{"Id": "queue", "Arn": queue_arn}])

    def read() -> list[dict[str, Any]]:
        received: list[dict[str, Any]] = []
        while True:
            batch = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return sorted(received, key=lambda e: str(e["detail"]["at"]))
            received.extend(json.loads(m["Body"]) for m in batch)
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
            )

    return read


def release_items(world: World) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(world.names.table)
    return [item for item in table.scan()["Items"] if str(item["pk"]).startswith("RELEASE#")]


def assert_json_logs_without_the_event(result: InvokeResult, event: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every line is a Powertools JSON record of this invoke (or its metrics), apart from Python
    warnings; no record carries the event or its detail. Returns the log records."""
    lines = result.log_lines()
    assert lines, "the function logged nothing"
    records = []
    for number, line in enumerate(lines):
        if _WARNING.match(line) or (number > 0 and _WARNING.match(lines[number - 1]) and line.startswith(" ")):
            continue
        record = json.loads(line)  # not JSON: fails here, naming the line
        if "_aws" in record:  # Powertools metrics (EMF)
            continue
        assert record["service"] == "ecs-deployer"
        assert record["function_request_id"] == result.request_id
        assert {"level", "message", "timestamp", "location"} <= record.keys()
        records.append(record)
    whole = [event, *([event["detail"]] if "detail" in event else [])]
    for part in whole:
        assert json.dumps(part) not in result.logs
        assert all(part not in record.values() for record in records)
    return records


def pushed(run: Invoke, world: World, label: str) -> tuple[dict[str, Any], InvokeResult]:
    event = world.push(commit_id(label))
    return event, run("OnPushFunction", event)


# -- on_push ------------------------------------------------------------------------------------


def test_a_push_records_the_release_and_starts_one_build_even_when_delivered_twice(run: Invoke, world: World) -> None:
    # GIVEN the demo pipeline on web-app:main and a push of a new commit to main
    event = world.push(commit_id("over-http"))
    # WHEN the built OnPushFunction handles it
    first = run("OnPushFunction", event)
    # THEN the release is recorded, BUILDING, and its build started in CodeBuild
    (outcome,) = first.payload["result"]
    assert outcome["outcome"] == "build_started"
    release = world.store.get(outcome["release_id"])
    assert release is not None
    assert release.state is ReleaseState.BUILDING
    assert release.commit == event["detail"]["commitId"]
    assert world.builds() == [outcome["build_id"]]
    (build,) = boto3.client("codebuild").batch_get_builds(ids=world.builds())["builds"]
    assert build["sourceVersion"] == release.commit
    assert release.build_arn == build["arn"]
    assert_json_logs_without_the_event(first, event)

    # WHEN EventBridge delivers the same event again
    second = run("OnPushFunction", event)
    # THEN Powertools' idempotency record answers with the first result: no second build
    assert second.payload == first.payload
    assert world.builds() == [outcome["build_id"]]
    table = boto3.resource("dynamodb").Table(world.names.table)
    records = table.query(KeyConditionExpression=Key("pk").eq("idempotency#ecs-deployer-test-on-push"))["Items"]
    assert [r["status"] for r in records] == ["COMPLETED"]


# -- on_build -----------------------------------------------------------------------------------


def test_the_build_state_change_deploys_dev_and_every_transition_reaches_the_bus(
    run: Invoke, world: World, bus_tap: BusTap
) -> None:
    # GIVEN a release whose build the built OnPushFunction started
    _, push = pushed(run, world, "to-dev")
    release_id = push.payload["result"][0]["release_id"]
    before = world.service("dev")
    # WHEN its build succeeds, exporting the image pinned by digest
    event = world.build_finished(release_id)
    result = run("OnBuildFunction", event)
    # THEN dev runs a new revision of its task definition with that image
    assert result.payload["result"]["outcome"] == "deploying"
    release = world.store.get(release_id)
    assert release is not None
    assert release.state is ReleaseState.DEPLOYING
    after = world.service("dev")
    assert after["taskDefinition"] != before["taskDefinition"]
    assert after["taskDefinition"] == release.stages["dev"].task_definition_arn
    described = world.task_definition(after["taskDefinition"])
    images = {c["name"]: c["image"] for c in described["taskDefinition"]["containerDefinitions"]}
    assert images["web"] == event["detail"]["additional-information"]["exported-environment-variables"][0]["value"]
    assert "@sha256:" in images["web"]
    # AND its tags are kept and its desiredCount untouched (autoscaling owns it)
    assert {(t["key"], t["value"]) for t in described["tags"]} == {("team", "web"), ("cost-center", "cc-42")}
    assert after["desiredCount"] == before["desiredCount"]
    # AND each transition was published on the deployer's bus as "Release State Change"
    published = bus_tap()
    assert {e["detail-type"] for e in published} == {RELEASE_STATE_CHANGE}
    assert {e["detail"]["release_id"] for e in published} == {release_id}
    changes = [(e["detail"].get("from_state"), e["detail"]["to_state"]) for e in published]
    assert changes == [(None, "BUILDING"), ("BUILDING", "BUILT"), ("BUILT", "DEPLOYING")]
    assert published[-1]["detail"]["stage"] == "dev"
    # AND the logs never show the build's environment (it names secrets' parameters)
    assert_json_logs_without_the_event(result, event)
    assert "/web-app/dockerhub-token" not in result.logs


# -- input that changes nothing -----------------------------------------------------------------


def _commit_id_not_a_string(event: dict[str, Any]) -> None:
    event["detail"]["commitId"] = 12345


def _no_detail(event: dict[str, Any]) -> None:
    del event["detail"]


@pytest.mark.parametrize("spoil", [_commit_id_not_a_string, _no_detail], ids=["commitId-12345", "no-detail"])
def test_a_malformed_push_is_refused_with_one_error_line_and_changes_nothing(
    run: Invoke, world: World, bus_tap: BusTap, spoil: Callable[[dict[str, Any]], None]
) -> None:
    # GIVEN the sample push, spoiled
    event = load_event("push_created")
    event["id"] = str(uuid.uuid4())
    spoil(event)
    # WHEN the built OnPushFunction handles it
    result = run("OnPushFunction", event)
    # THEN it returns normally (no retry) with the outcome "refused"
    assert result.payload["outcome"] == "refused"
    assert result.payload["event_id"] == event["id"]
    # AND logs exactly one error line, naming the event id
    records = assert_json_logs_without_the_event(result, event)
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert event["id"] in errors[0]["message"]
    # AND nothing changed: no release, no build, nothing published
    assert release_items(world) == []
    assert world.builds() == []
    assert bus_tap() == []


def test_a_push_to_a_repository_without_pipeline_is_ignored_and_logged(
    run: Invoke, world: World, bus_tap: BusTap
) -> None:
    # GIVEN a push to legacy-api, which no published pipeline builds
    event = load_event("push_unknown_repository")
    # WHEN the built OnPushFunction handles it
    result = run("OnPushFunction", event)
    # THEN it is ignored, and the log says why
    ((outcome,),) = [result.payload["result"]]
    assert outcome["outcome"] == "ignored"
    assert "legacy-api" in outcome["reason"]
    records = assert_json_logs_without_the_event(result, event)
    handled = [r for r in records if r.get("event_id") == event["id"]]
    assert [r["level"] for r in handled] == ["INFO"]
    assert handled[0]["result"] == [outcome]
    # AND nothing changed
    assert release_items(world) == []
    assert world.builds() == []
    assert bus_tap() == []


def test_an_invalid_published_config_is_refused_and_no_release_starts(
    run: Invoke, world: World, bus_tap: BusTap
) -> None:
    # GIVEN a published config item that fails validation (written around `deployer config publish`)
    published = world.config_store.describe()
    assert published is not None
    broken = json.loads(published.value)
    del broken["pipelines"][0]["stages"]
    table = boto3.resource("dynamodb").Table(world.names.config_table)
    table.put_item(
        Item={
            "id": PUBLISHED_ITEM_ID,
            "value": json.dumps(broken),
            "version": published.version + 1,
            "sha256": "0" * 64,
            "published_at": published.published_at,
            "published_by": "someone by hand",
        }
    )
    event = world.push(commit_id("bad-config"))
    # WHEN a push arrives
    result = run("OnPushFunction", event)
    # THEN the handler returns normally with the outcome invalid_config
    assert result.payload["outcome"] == "invalid_config"
    assert "error" in result.payload["reason"]
    # AND logs the error once
    records = assert_json_logs_without_the_event(result, event)
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1
    assert errors[0]["outcome"] == "invalid_config"
    assert "stages" in errors[0]["message"]
    # AND no release was recorded, no build started
    assert release_items(world) == []
    assert world.builds() == []
    assert bus_tap() == []
