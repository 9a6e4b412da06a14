"""`deployer deploy --wait`: progress lines instead of silence. A Stubber sequence of
DescribeServices answers (and DescribeServiceDeployments for traffic-shifting strategies) drives
`oneshot.wait_for_deployment`: one report per change, a backoff that grows while nothing moves
and is cut at the timeout, the lifecycle stage, then the command's text, --quiet and JSON lines.

The fields read are AWS's, "Deployment" in the Amazon ECS API Reference
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html): "pendingCount
— The number of tasks in the deployment that are in the PENDING status", "runningCount — The
number of tasks in the deployment that are in the RUNNING status", "failedTasks — The number of
consecutively failed tasks in the deployment"; "Service" (API_Service.html):
"currentServiceDeployment — The ARN of the current service deployment"; "ServiceDeployment"
(https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ServiceDeployment.html):
"lifecycleStage — The current lifecycle stage of the deployment" (SCALE_UP, TEST_TRAFFIC_SHIFT...).
The botocore ECS model in the venv has the same members (checked below).
"""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from deployer import aws
from deployer_cli import oneshot
from deployer_cli.oneshot import Progress
from deployer_local.provision import ACCOUNT, DemoAccount
from tests.unit.test_oneshot import (
    NEW_ARN,
    NEW_IMAGE,
    OLD_ARN,
    PROD,
    FakeTime,
    cli,
    updated,
    without_metadata,
    world,
)

pytestmark = pytest.mark.unit

__all__ = ["world"]  # the moto world fixture, shared with test_oneshot

DEPLOYMENT = "ecs-svc/2222"
SERVICE_DEPLOYMENT = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service-deployment/prod/web/abcdef"
POLLED = {"cluster": "prod", "services": ["web"]}


def answer(
    new: tuple[int, int],
    old: tuple[int, int] | None = (4, 0),
    *,
    state: str = "IN_PROGRESS",
    failed: int = 0,
    current: str | None = None,
) -> dict[str, Any]:
    """DescribeServices with the new deployment (running, pending of 4) and the old one (running, pending)."""
    deployments: list[dict[str, Any]] = [
        {
            "id": DEPLOYMENT,
            "status": "PRIMARY",
            "taskDefinition": NEW_ARN,
            "desiredCount": 4,
            "runningCount": new[0],
            "pendingCount": new[1],
            "failedTasks": failed,
            "rolloutState": state,
        }
    ]
    if old is not None:
        deployments.append(
            {
                "id": "ecs-svc/1111",
                "status": "ACTIVE",
                "taskDefinition": OLD_ARN,
                "desiredCount": 4,
                "runningCount": old[0],
                "pendingCount": old[1],
                "failedTasks": 0,
                "rolloutState": "COMPLETED",
            }
        )
    svc: dict[str, Any] = {"serviceName": "web", "deployments": deployments}
    if current:
        svc["currentServiceDeployment"] = current
    return {"services": [svc], "failures": []}


class Clock(FakeTime):
    def wall(self) -> datetime:
        return datetime(2026, 11, 29, 12, 0, tzinfo=UTC) + timedelta(seconds=self.now)


def test_the_fields_read_are_in_the_botocore_model() -> None:
    model = botocore.session.get_session().get_service_model("ecs")
    deployment = model.shape_for("Deployment").members
    assert {"runningCount", "pendingCount", "desiredCount", "failedTasks", "rolloutState", "status"} <= set(deployment)
    assert "currentServiceDeployment" in model.shape_for("Service").members
    assert "lifecycleStage" in model.shape_for("ServiceDeployment").members


def test_each_change_is_reported_and_the_pause_backs_off_while_nothing_moves() -> None:
    ecs = boto3.client("ecs")
    clock = Clock()
    seen: list[Progress] = []
    with Stubber(ecs) as stub:
        for response in (
            answer((0, 0)),  # first look: reported
            answer((0, 0)),  # nothing moved: pause 2 -> 3
            answer((0, 0)),  # nothing moved: 3 -> 4.5
            answer((2, 2)),  # tasks started: reported, pause back to 2
            answer((4, 0), (0, 0)),  # new revision at 4/4, old stopped: reported
            answer((4, 0), None, state="COMPLETED"),  # the end: reported
        ):
            stub.add_response("describe_services", response, POLLED)
        outcome = oneshot.wait_for_deployment(
            ecs,
            "prod",
            "web",
            DEPLOYMENT,
            poll_seconds=2,
            max_poll_seconds=30,
            on_progress=seen.append,
            sleep=clock.sleep,
            clock=clock.clock,
            wall=clock.wall,
        )
        stub.assert_no_pending_responses()
    assert outcome.state == "COMPLETED"
    assert clock.sleeps == [2, 3, 4.5, 2, 2]
    assert [(p.deployment.running, p.deployment.pending, len(p.others)) for p in seen] == [
        (0, 0, 1),
        (2, 2, 1),
        (4, 0, 1),
        (4, 0, 0),
    ]
    assert [p.elapsed for p in seen] == [0, 9.5, 11.5, 13.5]
    assert seen[0].to_dict() == {
        "at": "2026-11-29T12:00:00Z",
        "elapsed_seconds": 0,
        "deployment": {
            "deployment_id": DEPLOYMENT,
            "status": "PRIMARY",
            "task_definition": NEW_ARN,
            "running": 0,
            "pending": 0,
            "desired": 4,
            "failed": 0,
            "rollout_state": "IN_PROGRESS",
        },
        "others": [
            {
                "deployment_id": "ecs-svc/1111",
                "status": "ACTIVE",
                "task_definition": OLD_ARN,
                "running": 4,
                "pending": 0,
                "desired": 4,
                "failed": 0,
                "rollout_state": "COMPLETED",
            }
        ],
        "lifecycle_stage": None,
    }


def test_the_backoff_stops_at_its_bound_and_the_last_pause_ends_at_the_timeout() -> None:
    ecs = boto3.client("ecs")
    clock = Clock()
    with Stubber(ecs) as stub:
        for _ in range(10):
            stub.add_response("describe_services", answer((1, 3)), POLLED)
        outcome = oneshot.wait_for_deployment(
            ecs, "prod", "web", DEPLOYMENT, timeout=40, poll_seconds=2, max_poll_seconds=6,
            sleep=clock.sleep, clock=clock.clock, wall=clock.wall,
        )  # fmt: skip
        stub.assert_no_pending_responses()
    # x1.5 while nothing moves, up to 6 s, and the last pause ends exactly at the timeout
    assert clock.sleeps == [2, 3, 4.5, 6, 6, 6, 6, 6, 0.5]
    assert sum(clock.sleeps) == 40
    assert outcome.state == "IN_PROGRESS"
    assert "timeout 40 s" in outcome.reason


def test_traffic_shifting_strategies_report_the_lifecycle_stage() -> None:
    ecs = boto3.client("ecs")
    clock = Clock()
    seen: list[Progress] = []
    asked = {"serviceDeploymentArns": [SERVICE_DEPLOYMENT]}
    with Stubber(ecs) as stub:
        for running, stage, state in (
            ((0, 4), "SCALE_UP", "IN_PROGRESS"),
            ((4, 0), "TEST_TRAFFIC_SHIFT", "IN_PROGRESS"),
            ((4, 0), "BAKE_TIME", "COMPLETED"),
        ):
            stub.add_response("describe_services", answer(running, state=state, current=SERVICE_DEPLOYMENT), POLLED)
            stub.add_response(
                "describe_service_deployments",
                {"serviceDeployments": [{"serviceDeploymentArn": SERVICE_DEPLOYMENT, "lifecycleStage": stage}]},
                asked,
            )
        oneshot.wait_for_deployment(
            ecs, "prod", "web", DEPLOYMENT, poll_seconds=2, lifecycle=True, on_progress=seen.append,
            sleep=clock.sleep, clock=clock.clock, wall=clock.wall,
        )  # fmt: skip
        stub.assert_no_pending_responses()
    assert [p.lifecycle_stage for p in seen] == ["SCALE_UP", "TEST_TRAFFIC_SHIFT", "BAKE_TIME"]


def test_a_refused_describe_service_deployments_stops_those_reads_not_the_wait() -> None:
    ecs = boto3.client("ecs")
    clock = Clock()
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", answer((0, 4), current=SERVICE_DEPLOYMENT), POLLED)
        stub.add_client_error("describe_service_deployments", "AccessDeniedException", "not allowed")
        stub.add_response("describe_services", answer((4, 0), state="COMPLETED", current=SERVICE_DEPLOYMENT), POLLED)
        outcome = oneshot.wait_for_deployment(
            ecs, "prod", "web", DEPLOYMENT, lifecycle=True, sleep=clock.sleep, clock=clock.clock, wall=clock.wall
        )
        stub.assert_no_pending_responses()
    assert outcome.state == "COMPLETED"


# -- the command ---------------------------------------------------------------------------------


def deploy_and_wait(
    world: DemoAccount, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *extra: str
) -> tuple[int, str, list[float]]:
    """`deployer deploy --wait` against the moto world for the reads and writes, then (moto never
    moves a deployment) stubbed DescribeServices answers while it waits; nothing really sleeps."""
    clock = Clock()
    monkeypatch.setattr(
        oneshot,
        "wait_for_deployment",
        functools.partial(oneshot.wait_for_deployment, sleep=clock.sleep, clock=clock.clock, wall=clock.wall),
    )
    ecs = aws.cli_client("ecs")
    running = without_metadata(ecs.describe_services(cluster="prod", services=["web"]))
    definition = without_metadata(
        ecs.describe_task_definition(taskDefinition=world.services["prod"].task_definition_arn, include=["TAGS"])
    )
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", running)
        stub.add_response("describe_task_definition", definition)
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
        )
        stub.add_response("update_service", updated(DEPLOYMENT))
        for response in (
            answer((0, 2)),
            answer((0, 2)),
            answer((2, 2), (2, 0)),
            answer((4, 0), None, state="COMPLETED"),
        ):
            stub.add_response("describe_services", response, POLLED)
        code, out, _ = cli(capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--wait", *extra)
        stub.assert_no_pending_responses()
    return code, out, clock.sleeps


def test_deploy_wait_prints_a_line_per_change(
    world: DemoAccount, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, sleeps = deploy_and_wait(world, capsys, monkeypatch)
    assert code == 0
    lines = out.splitlines()
    start = lines.index(f"Waiting for {DEPLOYMENT} to complete or fail (timeout 900 s)...")
    assert lines[start + 1 :] == [
        "12:00:00Z IN_PROGRESS  web:8 0/4 running, 2 pending · old web:7 4/4 running",
        "12:00:05Z IN_PROGRESS  web:8 2/4 running, 2 pending · old web:7 2/4 running",
        "12:00:07Z COMPLETED    web:8 4/4 running · no older deployment left",
        f"Deployment {DEPLOYMENT} COMPLETED after 7 s",
    ]
    assert sleeps == [2.0, 3.0, 2.0]


def test_deploy_wait_quiet_prints_only_the_outcome(
    world: DemoAccount, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = deploy_and_wait(world, capsys, monkeypatch, "--quiet")
    assert code == 0
    assert "running" not in out.split("to complete or fail")[1]
    assert out.splitlines()[-1] == f"Deployment {DEPLOYMENT} COMPLETED after 7 s"


def test_deploy_wait_json_is_one_object_a_line(
    world: DemoAccount, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = deploy_and_wait(world, capsys, monkeypatch, "--json")
    assert code == 0
    objects = [json.loads(line) for line in out.splitlines()]
    assert [list(o) for o in objects[:-1]] == [["progress"]] * 3
    assert [o["progress"]["deployment"]["running"] for o in objects[:-1]] == [0, 2, 4]
    assert objects[-1]["result"]["rollout"]["state"] == "COMPLETED"


def test_quiet_needs_wait(world: DemoAccount, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--quiet")
    assert code == 2
    assert err == "deployer deploy: error: --quiet goes with --wait\n"
