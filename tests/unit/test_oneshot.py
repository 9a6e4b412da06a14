"""`deployer_cli.oneshot` and the `deployer deploy` / `deployer diff` commands: the exact ECS requests
(botocore Stubber), then the same deploys against a moto world with dev/prod services."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from deployer import aws
from deployer.errors import DeploymentError
from deployer.taskdef.clone import clone_for_images
from deployer_cli import main, oneshot
from deployer_cli.oneshot import DeployRefused, current_deployment_configuration, deploy, plan_deploy
from deployer_local.provision import ACCOUNT, DemoAccount, provision_demo, web_task_definition

pytestmark = pytest.mark.unit

REGISTRY = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com"
OLD_IMAGE = f"{REGISTRY}/web-app:v0"
NEW_IMAGE = f"{REGISTRY}/web-app@sha256:" + "cd" * 32
OLD_ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:7"
NEW_ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:8"
# What real ECS reports for a service created without a deployment configuration.
ECS_DEFAULT_CONFIG = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
    "alarms": {"alarmNames": [], "enable": False, "rollback": False},
}


# -- Stubber helpers ------------------------------------------------------------------------------


def described() -> dict[str, Any]:
    """DescribeTaskDefinition's answer: a registration plus every read-only key, fields that
    allow-list cloners drop, and a reserved aws: tag beside the definition."""
    request = web_task_definition(image=OLD_IMAGE)
    tags = [*request.pop("tags"), {"key": "aws:cloudformation:stack-name", "value": "web"}]
    definition = {
        **request,
        "taskDefinitionArn": OLD_ARN,
        "revision": 7,
        "status": "ACTIVE",
        "requiresAttributes": [{"name": "com.amazonaws.ecs.capability.task-iam-role"}],
        "compatibilities": ["EC2", "FARGATE"],
        "registeredAt": "2026-11-01T10:00:00Z",
        "registeredBy": f"arn:aws:iam::{ACCOUNT}:role/admin",
        "deregisteredAt": "2026-11-02T10:00:00Z",
        "deleteRequestedAt": "2026-11-03T10:00:00Z",
        "ipcMode": "task",
        "pidMode": "task",
        "enableFaultInjection": True,
    }
    return {"taskDefinition": definition, "tags": tags}


def expected_registration(image: str = NEW_IMAGE) -> dict[str, Any]:
    """REFERENCE.md "Cloning a task definition": exactly the read-only keys removed, ipcMode and
    the rest kept, tags kept minus aws:."""
    request: dict[str, Any] = copy.deepcopy(described()["taskDefinition"])
    for key in (
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
        "deleteRequestedAt",
    ):
        del request[key]
    request["containerDefinitions"][0]["image"] = image
    request["tags"] = [{"key": "team", "value": "web"}, {"key": "cost-center", "value": "cc-42"}]
    return request


def service(
    task_definition: str = OLD_ARN,
    *,
    desired: int = 4,
    config: dict[str, Any] | None = None,
    controller: str = "ECS",
    deployment_id: str = "ecs-svc/1111",
    rollout_state: str = "COMPLETED",
) -> dict[str, Any]:
    return {
        "services": [
            {
                "serviceName": "web",
                "serviceArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service/prod/web",
                "status": "ACTIVE",
                "desiredCount": desired,
                "schedulingStrategy": "REPLICA",
                "launchType": "FARGATE",
                "deploymentController": {"type": controller},
                "taskDefinition": task_definition,
                "deploymentConfiguration": copy.deepcopy(ECS_DEFAULT_CONFIG if config is None else config),
                "deployments": [
                    {
                        "id": deployment_id,
                        "status": "PRIMARY",
                        "taskDefinition": task_definition,
                        "desiredCount": desired,
                        "runningCount": desired,
                        "rolloutState": rollout_state,
                    }
                ],
            }
        ],
        "failures": [],
    }


def updated(deployment_id: str = "ecs-svc/2222") -> dict[str, Any]:
    return {"service": {"deployments": [{"id": deployment_id, "status": "PRIMARY", "rolloutState": "IN_PROGRESS"}]}}


def expect_reads(stub: Stubber, svc: dict[str, Any] | None = None) -> None:
    stub.add_response("describe_services", svc or service(), {"cluster": "prod", "services": ["web"]})
    stub.add_response("describe_task_definition", described(), {"taskDefinition": OLD_ARN, "include": ["TAGS"]})


ROLLBACK = {"enable": True, "rollback": True}
REQUESTED = {"minimumHealthyPercent": 50, "maximumPercent": 150, "deploymentCircuitBreaker": ROLLBACK}


# -- exact requests -------------------------------------------------------------------------------


def test_a_deploy_sends_exactly_four_ecs_requests_and_never_desired_count() -> None:
    # GIVEN a stubbed ECS expecting the exact requests of a deploy, in order
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        expect_reads(stub)
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
            expected_registration(),
        )
        # REFERENCE.md "ECS rolling update": never desiredCount; the service's own settings
        # (the circuit breaker here) are overridden by the request, the alarms noise is not sent.
        stub.add_response(
            "update_service",
            updated(),
            {
                "cluster": "prod",
                "service": "web",
                "taskDefinition": NEW_ARN,
                "deploymentConfiguration": {
                    "minimumHealthyPercent": 50,
                    "maximumPercent": 150,
                    "deploymentCircuitBreaker": ROLLBACK,
                },
            },
        )
        # WHEN planned and deployed
        plan = plan_deploy(ecs, "prod", "web", {"web": NEW_IMAGE}, REQUESTED)
        result = deploy(ecs, plan)
        # THEN those four calls were made, and nothing else
        stub.assert_no_pending_responses()
    assert plan.image_changes == {"web": (OLD_IMAGE, NEW_IMAGE)}
    assert plan.registration == expected_registration()
    assert result.outcome == "deployed"
    assert result.task_definition_arn == NEW_ARN
    assert result.previous_task_definition_arn == OLD_ARN
    assert result.deployment_id == "ecs-svc/2222"
    assert result.rollout is None


def test_the_plan_shows_images_configuration_and_the_rollout() -> None:
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        expect_reads(stub)
        plan = plan_deploy(ecs, "prod", "web", {"web": NEW_IMAGE}, REQUESTED)
    assert plan.valid
    assert plan.config_before == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }
    assert [(c.field, c.before, c.after) for c in plan.config_changes if c.changed] == [
        ("minimumHealthyPercent", 100, 50),
        ("maximumPercent", 200, 150),
        ("deploymentCircuitBreaker", {"enable": False, "rollback": False}, ROLLBACK),
    ]
    assert plan.rollout is not None
    assert [(s.old, s.new) for s in plan.rollout.steps] == [(4, 0), (4, 2), (0, 2), (0, 4)]
    # Only the image lines differ between the running revision and the registration request.
    changed = [line for line in plan.task_definition_diff[2:] if line[:1] in "+-" and not line.startswith("@@")]
    assert changed == [f'-      "image": "{OLD_IMAGE}",', f'+      "image": "{NEW_IMAGE}",']


def test_autoscaling_range_is_read_and_a_stuck_count_in_it_refuses_without_a_write() -> None:
    # GIVEN a service scaling 1..4 and a configuration stuck at 1 task (REFERENCE.md: desired 1 at 100/150)
    ecs = boto3.client("ecs")
    scaling = boto3.client("application-autoscaling")
    with Stubber(ecs) as ecs_stub, Stubber(scaling) as scaling_stub:
        ecs_stub.add_response("describe_services", service(), {"cluster": "prod", "services": ["web"]})
        scaling_stub.add_response(
            "describe_scalable_targets",
            {
                "ScalableTargets": [
                    {
                        "ServiceNamespace": "ecs",
                        "ResourceId": "service/prod/web",
                        "ScalableDimension": "ecs:service:DesiredCount",
                        "MinCapacity": 1,
                        "MaxCapacity": 4,
                        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/scaling",
                        "CreationTime": "2026-11-01T10:00:00Z",
                    }
                ]
            },
            {
                "ServiceNamespace": "ecs",
                "ResourceIds": ["service/prod/web"],
                "ScalableDimension": "ecs:service:DesiredCount",
            },
        )
        ecs_stub.add_response("describe_task_definition", described(), {"taskDefinition": OLD_ARN, "include": ["TAGS"]})
        plan = plan_deploy(
            ecs,
            "prod",
            "web",
            {"web": NEW_IMAGE},
            {"minimumHealthyPercent": 100, "maximumPercent": 150},
            autoscaling=scaling,
        )
        # WHEN deploying the refused plan THEN it raises before any call (the Stubber has none queued)
        with pytest.raises(DeployRefused) as refused:
            deploy(ecs, plan)
        ecs_stub.assert_no_pending_responses()
        scaling_stub.assert_no_pending_responses()
    assert plan.facts.desired_range == (1, 4)
    assert not plan.valid
    assert plan.rollout is None
    assert "first stuck count 1" in refused.value.messages[0]


def test_only_a_configuration_change_updates_the_service_without_registering() -> None:
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        expect_reads(stub)
        stub.add_response(
            "update_service",
            updated("ecs-svc/1111"),
            {
                "cluster": "prod",
                "service": "web",
                "deploymentConfiguration": {
                    "minimumHealthyPercent": 50,
                    "maximumPercent": 200,
                    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
                },
            },
        )
        plan = plan_deploy(ecs, "prod", "web", {"web": OLD_IMAGE}, {"minimumHealthyPercent": 50})
        result = deploy(ecs, plan)
        stub.assert_no_pending_responses()
    assert not plan.images_changed
    assert plan.task_definition_diff == ()
    assert result.outcome == "configured"
    assert result.task_definition_arn == OLD_ARN
    assert not result.registered


@pytest.mark.parametrize(
    "requested",
    [
        None,
        {"minimumHealthyPercent": 100, "maximumPercent": 200},
        {"deploymentCircuitBreaker": {"enable": False, "rollback": False}},
    ],
    ids=["nothing-requested", "the-same-percentages", "the-same-breaker"],
)
def test_nothing_to_do_makes_no_write(requested: dict[str, Any] | None) -> None:
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        expect_reads(stub)
        plan = plan_deploy(ecs, "prod", "web", {"web": OLD_IMAGE}, requested)
        result = deploy(ecs, plan)
        stub.assert_no_pending_responses()
    assert plan.nothing_to_do
    assert result.outcome == "unchanged"
    assert result.deployment_id == "ecs-svc/1111"


def test_defaults_left_unset_by_the_service_are_no_change() -> None:
    # moto keeps no deploymentConfiguration at CreateService: 100/200 are ECS's defaults anyway.
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        expect_reads(stub, service(config={}))
        plan = plan_deploy(ecs, "prod", "web", {"web": OLD_IMAGE}, {"minimumHealthyPercent": 100})
    assert plan.nothing_to_do
    assert plan.config_after == {"minimumHealthyPercent": 100, "maximumPercent": 200}


def test_a_code_deploy_service_is_refused() -> None:
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        expect_reads(stub, service(controller="CODE_DEPLOY", config={}))
        plan = plan_deploy(ecs, "prod", "web", {"web": NEW_IMAGE}, None)
    assert not plan.valid
    assert [f.field for f in plan.errors] == ["deploymentController"]


def test_a_clone_that_differs_beyond_images_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a (hypothetically broken) cloner that drops a field
    real = clone_for_images

    def lossy(described: Any, images: Any, *settings: Any) -> dict[str, Any]:
        request = real(described, images, *settings)
        request.pop("ipcMode")
        return request

    monkeypatch.setattr(oneshot, "clone_for_images", lossy)
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        expect_reads(stub)
        plan = plan_deploy(ecs, "prod", "web", {"web": NEW_IMAGE}, None)
    # THEN the plan is refused, naming the field
    assert not plan.valid
    assert plan.errors[0].field == "taskDefinition"
    assert plan.errors[0].value == ["ipcMode"]


def test_update_service_failing_after_registration_says_what_exists() -> None:
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        expect_reads(stub)
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
        )
        stub.add_client_error("update_service", "AccessDeniedException", "not allowed", 400)
        plan = plan_deploy(ecs, "prod", "web", {"web": NEW_IMAGE}, None)
        with pytest.raises(DeploymentError, match=r"registered web:8, but prod/web still runs web:7"):
            deploy(ecs, plan)


def test_current_configuration_drops_only_not_configured_noise() -> None:
    svc = {
        "deploymentConfiguration": {
            **ECS_DEFAULT_CONFIG,
            "lifecycleHooks": [],
            "strategy": "ROLLING",
            "bakeTimeInMinutes": 0,
        }
    }
    assert current_deployment_configuration(svc) == {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
        "strategy": "ROLLING",
        "bakeTimeInMinutes": 0,
    }
    alarms = {"alarmNames": ["web-5xx"], "enable": True, "rollback": True}
    assert current_deployment_configuration({"deploymentConfiguration": {"alarms": alarms}}) == {"alarms": alarms}
    assert current_deployment_configuration({}) == {}


# -- waiting --------------------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


@pytest.mark.parametrize(("final", "succeeded"), [("COMPLETED", True), ("FAILED", False)])
def test_wait_polls_describe_services_until_the_deployment_ends(final: str, succeeded: bool) -> None:
    ecs = boto3.client("ecs")
    fake = FakeTime()
    polled = {"cluster": "prod", "services": ["web"]}
    with Stubber(ecs) as stub:
        expect_reads(stub)
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
        )
        stub.add_response("update_service", updated())
        stub.add_response(
            "describe_services", service(NEW_ARN, deployment_id="ecs-svc/2222", rollout_state="IN_PROGRESS"), polled
        )
        stub.add_response(
            "describe_services", service(NEW_ARN, deployment_id="ecs-svc/2222", rollout_state=final), polled
        )
        plan = plan_deploy(ecs, "prod", "web", {"web": NEW_IMAGE}, None)
        result = deploy(ecs, plan, wait=True, sleep=fake.sleep, clock=fake.clock)
        stub.assert_no_pending_responses()
    assert fake.sleeps == [oneshot.DEFAULT_POLL_SECONDS]
    assert result.rollout is not None
    assert result.rollout.state == final
    assert result.rollout.succeeded is succeeded


def test_wait_gives_up_at_the_timeout() -> None:
    ecs = boto3.client("ecs")
    fake = FakeTime()
    with Stubber(ecs) as stub:
        for _ in range(4):
            stub.add_response(
                "describe_services", service(NEW_ARN, deployment_id="ecs-svc/2222", rollout_state="IN_PROGRESS")
            )
        outcome = oneshot.wait_for_deployment(
            ecs, "prod", "web", "ecs-svc/2222", timeout=12, poll_seconds=5, sleep=fake.sleep, clock=fake.clock
        )
        stub.assert_no_pending_responses()
    assert outcome.state == "IN_PROGRESS"
    assert not outcome.succeeded
    assert "timeout 12 s" in outcome.reason
    assert fake.sleeps == [5, 5, 2]  # the last pause is cut to end at the timeout, then one last look


def test_wait_reports_a_replaced_deployment() -> None:
    ecs = boto3.client("ecs")
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service(NEW_ARN, deployment_id="ecs-svc/9999"))
        outcome = oneshot.wait_for_deployment(ecs, "prod", "web", "ecs-svc/2222", sleep=lambda _: None)
    assert outcome.state == "GONE"


# -- a moto world ---------------------------------------------------------------------------------


@pytest.fixture
def world(moto_aws: None) -> DemoAccount:
    """dev/web (2 tasks) and prod/web (4 tasks) on Fargate, running web:1 and web:2, in moto
    (`moto_aws` rebuilds the CLI's cached clients inside the mock)."""
    return provision_demo()


def revisions() -> list[str]:
    return boto3.client("ecs").list_task_definitions(familyPrefix="web")["taskDefinitionArns"]


def prod_service() -> Any:
    return boto3.client("ecs").describe_services(cluster="prod", services=["web"])["services"][0]


def test_the_new_revision_equals_the_old_apart_from_image_revision_arn_and_registration(world: DemoAccount) -> None:
    ecs = boto3.client("ecs")
    old_arn = world.services["prod"].task_definition_arn
    plan = plan_deploy(
        ecs, "prod", "web", {"web": NEW_IMAGE}, REQUESTED, autoscaling=boto3.client("application-autoscaling")
    )
    result = deploy(ecs, plan)

    old = ecs.describe_task_definition(taskDefinition=old_arn, include=["TAGS"])
    new = ecs.describe_task_definition(taskDefinition=result.task_definition_arn, include=["TAGS"])
    assert new["tags"] == old["tags"]
    old_definition: dict[str, Any] = dict(old["taskDefinition"])
    new_definition: dict[str, Any] = dict(new["taskDefinition"])
    assert new_definition["containerDefinitions"][0]["image"] == NEW_IMAGE
    assert new_definition["revision"] == old_definition["revision"] + 1
    for definition in (old_definition, new_definition):
        for key in ("taskDefinitionArn", "revision", "registeredAt", "registeredBy"):
            definition.pop(key, None)
        definition["containerDefinitions"][0].pop("image")
    assert new_definition == old_definition

    svc = prod_service()
    assert svc["taskDefinition"] == result.task_definition_arn
    assert svc["desiredCount"] == 4
    assert svc["deploymentConfiguration"] == {
        "minimumHealthyPercent": 50,
        "maximumPercent": 150,
        "deploymentCircuitBreaker": ROLLBACK,
    }
    assert result.deployment_id == next(d["id"] for d in svc["deployments"] if d["status"] == "PRIMARY")


def test_nothing_to_do_in_the_world_registers_nothing(world: DemoAccount) -> None:
    ecs = boto3.client("ecs")
    before = revisions()
    plan = plan_deploy(ecs, "prod", "web", {"web": world.first_image}, None)
    result = deploy(ecs, plan)
    assert plan.nothing_to_do
    assert result.outcome == "unchanged"
    assert revisions() == before


# -- the commands ---------------------------------------------------------------------------------


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


PROD = ("--cluster", "prod", "--service", "web")


def test_deploy_prints_the_plan_and_deploys(world: DemoAccount, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(
        capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--min", "50", "--max", "150",
        "--circuit-breaker", "rollback",
    )  # fmt: skip
    assert (code, err) == (0, "")
    assert f"  web: {world.first_image} -> {NEW_IMAGE}" in out
    assert "  minimumHealthyPercent: 100 (ECS default) -> 50" in out
    assert "  maximumPercent: 200 (ECS default) -> 150" in out
    assert "Summary: 2 waves; peak 6 tasks" in out
    new_arn = prod_service()["taskDefinition"]
    assert new_arn.endswith("task-definition/web:3")
    assert f"Registered web:3 ({new_arn})." in out
    primary = next(d["id"] for d in prod_service()["deployments"] if d["status"] == "PRIMARY")
    assert f"ECS deployment {primary} (PRIMARY)" in out

    # AND the same command again has nothing to do
    code, out, _ = cli(
        capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--min", "50", "--max", "150",
        "--circuit-breaker", "rollback",
    )  # fmt: skip
    assert code == 0
    assert "Nothing to do: prod/web already runs these images with this configuration." in out
    assert len(revisions()) == 3


def test_a_stuck_configuration_is_refused_and_nothing_registered(
    world: DemoAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    # REFERENCE.md: any desired count at 100/100 is stuck; prod runs 4 tasks
    before = revisions()
    code, out, err = cli(
        capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--min", "100", "--max", "100"
    )
    assert code == 1
    assert err == ""
    assert "Refused: nothing was registered or updated." in out
    assert "with desired count 4, minimumHealthyPercent 100 keeps ceil(4 × 100 / 100) = 4 tasks RUNNING" in out
    assert "Registered" not in out
    assert revisions() == before
    assert prod_service()["taskDefinition"] == world.services["prod"].task_definition_arn


def test_a_stuck_count_in_the_autoscaling_range_is_refused(
    world: DemoAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    boto3.client("application-autoscaling").register_scalable_target(
        ServiceNamespace="ecs",
        ResourceId="service/prod/web",
        ScalableDimension="ecs:service:DesiredCount",
        MinCapacity=1,
        MaxCapacity=4,
    )
    before = revisions()
    code, out, _ = cli(
        capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--min", "100", "--max", "150"
    )
    assert code == 1
    assert "autoscaling 1..4" in out
    assert "first stuck count 1" in out
    assert revisions() == before


def test_a_missing_container_lists_the_containers_and_registers_nothing(
    world: DemoAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    before = revisions()
    code, out, err = cli(capsys, "deploy", *PROD, "--container", "api", "--image", NEW_IMAGE)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert "container 'api' is not in" in err
    assert "its containers are: 'web', 'log-router'" in err
    assert "nothing was registered or updated" in err
    assert revisions() == before


def test_dry_run_changes_nothing(world: DemoAccount, capsys: pytest.CaptureFixture[str]) -> None:
    before = revisions()
    code, out, _ = cli(capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--dry-run")
    assert code == 0
    assert "Dry run: nothing was registered or updated" in out
    assert revisions() == before
    assert prod_service()["taskDefinition"] == world.services["prod"].task_definition_arn


def test_deploy_json(world: DemoAccount, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--json")
    document = json.loads(out)
    assert code == 0
    assert document["plan"]["valid"] is True
    assert document["plan"]["images"]["web"] == {"before": world.first_image, "after": NEW_IMAGE, "changed": True}
    assert document["result"]["outcome"] == "deployed"
    assert document["result"]["task_definition"] == prod_service()["taskDefinition"]


def test_an_aws_failure_is_one_line_and_exit_1(world: DemoAccount, capsys: pytest.CaptureFixture[str]) -> None:
    def deny(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "UpdateService")

    aws.cli_client("ecs").meta.events.register("before-call.ecs.UpdateService", deny)
    code, _, err = cli(capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE)
    assert code == 1
    assert err.count("\n") == 1
    assert "UpdateService failed: AccessDeniedException: not allowed" in err
    assert "registered web:3, but prod/web still runs web:2" in err


def test_deploy_wait_exits_by_the_rollout_state(world: DemoAccount, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN ECS answering from the moto world, then (moto never completes a deployment) a stubbed
    # DescribeServices saying the deployment FAILED
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
        stub.add_response("update_service", updated())
        stub.add_response(
            "describe_services",
            service(NEW_ARN, deployment_id="ecs-svc/2222", rollout_state="FAILED"),
            {"cluster": "prod", "services": ["web"]},
        )
        # WHEN deploying with --wait
        code, out, _ = cli(capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--wait")
        stub.assert_no_pending_responses()
    # THEN the exit status says the rollout failed
    assert code == 1
    assert "Waiting for ecs-svc/2222 to complete or fail (timeout 900 s)..." in out
    assert "Deployment ecs-svc/2222 FAILED after 0 s" in out


def without_metadata(response: Any) -> dict[str, Any]:
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--container", "web"), "--container and --image go in pairs: got 1 --container and 0 --image"),
        ((), "name at least one container and its new image"),
        (("--container", "web", "--image", "Web-App:1"), "invalid IMAGE_URI 'Web-App:1' for container 'web'"),
        (("--container", "web", "--image", "nginx"), "it names neither a tag nor a digest"),
        (("--container", "web", "--image", "a:1", "--container", "web", "--image", "b:1"), "named twice"),
        (("--container", "web", "--image", "a:1", "--timeout", "30"), "--timeout goes with --wait"),
        (("--container", "web", "--image", "a:1", "--wait", "--dry-run"), "nothing to wait for"),
    ],
)
def test_unusable_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    # No AWS call happens: no moto world is needed.
    code, out, err = cli(capsys, "deploy", *PROD, *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("deployer deploy: error: ")
    assert message in err


@pytest.mark.parametrize(
    ("command", "args", "message"),
    [
        ("deploy", ("--min", "fifty"), "'fifty' is not a whole number"),
        ("diff", ("--min", "fifty"), "'fifty' is not a whole number"),
        ("deploy", ("--circuit-breaker", "on"), "invalid choice: 'on'"),
        ("diff", ("--circuit-breaker", "on"), "invalid choice: 'on'"),
        ("deploy", ("--wait", "--timeout", "0"), "outside 0..86400 seconds"),
    ],
)
def test_unparsable_arguments_exit_2(
    capsys: pytest.CaptureFixture[str], command: str, args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main([command, *PROD, "--container", "web", "--image", "a:1", *args])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_diff_shows_only_image_lines_and_exits_3_then_0(world: DemoAccount, capsys: pytest.CaptureFixture[str]) -> None:
    before = revisions()
    code, out, _ = cli(capsys, "diff", *PROD, "--container", "web", "--image", NEW_IMAGE, "--min", "50", "--max", "150")
    assert code == 3
    lines = out.splitlines()
    assert lines[0] == "Task definition of prod/web (web:2):"
    assert lines[1].startswith("--- web:2 ")
    assert lines[2].startswith("+++ web:new ")
    changed = [line for line in lines[3:] if line[:1] in "+-"]
    assert changed == [f'-      "image": "{world.first_image}",', f'+      "image": "{NEW_IMAGE}",']
    assert "  minimumHealthyPercent: 100 (ECS default) -> 50" in lines
    assert lines[-1] == "Changes: the task definition (a new revision) and the deployment configuration."
    assert revisions() == before

    # AND after the deploy, the same diff shows no change
    assert main(["deploy", *PROD, "--container", "web", "--image", NEW_IMAGE, "--min", "50", "--max", "150"]) == 0
    capsys.readouterr()
    code, out, _ = cli(capsys, "diff", *PROD, "--container", "web", "--image", NEW_IMAGE, "--min", "50", "--max", "150")
    assert code == 0
    assert out.splitlines()[0] == f"Task definition of prod/web: no change (web runs {NEW_IMAGE})."
    assert out.splitlines()[-1] == "No changes."


def test_diff_refused_and_json(world: DemoAccount, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys, "diff", *PROD, "--container", "web", "--image", NEW_IMAGE, "--min", "100", "--max", "100"
    )
    assert code == 1
    assert "Errors:" in out
    code, out, _ = cli(capsys, "diff", *PROD, "--container", "web", "--image", NEW_IMAGE, "--json")
    document = json.loads(out)
    assert code == 3
    assert document["changed"] is True
    assert document["exit_status"] == 3
    assert document["deployment_configuration"]["changes"] == []


# -- the one-shot commands' clients: botocore alone -----------------------------------------------


def test_deploy_sends_its_requests_through_botocore_clients_not_boto3(
    world: DemoAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the user agent of every request the one-shot CLI sends (a hook on its own clients)
    agents: list[str] = []

    def record(request: Any, **_: Any) -> None:
        agent = request.headers["User-Agent"]
        agents.append(agent.decode() if isinstance(agent, bytes) else agent)

    for service in ("ecs", "application-autoscaling"):
        aws.cli_client(service).meta.events.register("before-send", record)  # type: ignore[arg-type]
    # WHEN `deployer deploy` runs
    code, _, err = cli(capsys, "deploy", *PROD, "--container", "web", "--image", NEW_IMAGE)
    # THEN every request (DescribeServices, DescribeScalableTargets, DescribeTaskDefinition,
    # RegisterTaskDefinition, UpdateService) came from botocore without boto3, whose clients say
    # "Boto3/" first in their user agent
    assert code == 0, err
    assert len(agents) == 5
    assert all(agent.startswith("Botocore/") for agent in agents), agents


@pytest.mark.integration
def test_the_one_shot_commands_import_only_what_their_venv_holds() -> None:
    # GIVEN a fresh interpreter WHEN it imports everything `deployer deploy` and `deployer diff`
    # run and builds their clients THEN nothing .venv-cli lacks is loaded (requirements-cli.lock:
    # botocore and its dependencies): neither boto3 nor s3transfer, pydantic, PyYAML or Powertools
    not_in_the_cli_venv = ("boto3", "s3transfer", "pydantic", "pydantic_core", "yaml", "aws_lambda_powertools")
    code = (
        "import sys\n"
        "from deployer_cli.commands import deploy, diff\n"
        "from deployer import aws\n"
        "from deployer_cli import oneshot\n"
        "aws.cli_client('ecs'); aws.cli_client('application-autoscaling')\n"
        f"print(sorted(m for m in {not_in_the_cli_venv!r} if m in sys.modules))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "AWS_DEFAULT_REGION": "eu-west-1"}
    env |= {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    command = [sys.executable, "-c", code]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_the_console_script_ends_deploy_and_diff_without_the_interpreters_teardown(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the console script's entry point, with a command that prints and returns 7
    import deployer_cli as cli

    class Exited(Exception):
        pass

    exits: list[int] = []

    def fake_os_exit(code: int) -> None:
        exits.append(code)
        raise Exited

    def fake_main(args: list[str]) -> int:
        print("done", end="")
        return 7

    monkeypatch.setattr(cli.os, "_exit", fake_os_exit)
    monkeypatch.setattr(cli, "main", fake_main)
    # WHEN deploy, diff and plan run THEN the output is flushed and the process ends with os._exit
    # and the command's status (no teardown of botocore's models, nor of plan's)
    for command in ("deploy", "diff", "plan"):
        monkeypatch.setattr(sys, "argv", ["deployer", command, "--json"])
        with pytest.raises(Exited):
            cli.console()
        assert capsys.readouterr().out == "done"
    assert exits == [7, 7, 7]
    # AND every other command exits as Python does
    monkeypatch.setattr(sys, "argv", ["deployer", "status", "--json"])
    with pytest.raises(SystemExit) as ended:
        cli.console()
    assert ended.value.code == 7
    assert exits == [7, 7, 7]


def test_the_one_shot_session_checks_a_service_name_without_listing_every_model(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from botocore.exceptions import UnknownServiceError
    from botocore.loaders import Loader

    # GIVEN the one-shot commands' botocore session and its data loader
    aws._botocore_session.cache_clear()
    loader = aws._botocore_session().get_component("data_loader")
    names = loader.list_available_services("service-2")
    # WHEN a service's name is checked THEN only that service's folder is read
    listed: list[str] = []
    real_listdir = os.listdir

    def listdir(path: str) -> list[str]:
        listed.append(path)
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    assert "ecs" in names
    assert "application-autoscaling" in names
    assert "no-such-service" not in names
    assert [os.path.basename(path) for path in listed] == ["ecs", "application-autoscaling"]
    monkeypatch.setattr(os, "listdir", real_listdir)
    # AND listing them gives botocore's own list, and an unknown service is refused as botocore refuses it
    assert list(names) == Loader().list_available_services("service-2")
    with pytest.raises(UnknownServiceError, match="Unknown service: 'no-such-service'"):
        aws._botocore_session().create_client("no-such-service", region_name="eu-west-1")
    assert (
        aws._botocore_session().create_client("ecs", region_name="eu-west-1").meta.service_model.service_name == "ecs"
    )
