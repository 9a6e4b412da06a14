"""The local stack's ECS front: the four service deployment calls moto lacks are answered from the
simulator's records, in the JSON botocore's ECS model describes (every answer is checked member by
member against the model, then parsed by botocore through a real ECS client over HTTP); every
other request reaches moto unchanged; refusals are ECS's own error codes, so botocore raises
ClientError with them.

The answers themselves are unit tests (no network). What goes over HTTP, through the front to a
moto server in this process, is marked integration, as the tiers in pyproject.toml say.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from botocore.model import Shape

from deployer import ecs_deployments
from deployer.errors import DeploymentError
from deployer_local.ecs_front import (
    SIMULATED_OPERATIONS,
    EcsApiError,
    EcsFront,
    HookRecord,
    RevisionRecord,
    ServiceDeploymentRecord,
    ServiceDeployments,
    service_deployment_arn,
    service_revision_arn,
)
from tests.support.motoserver import MotoServer, running_moto_server

ECS_MODEL = botocore.session.get_session().get_service_model("ecs")
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SERVICE_ARN = "arn:aws:ecs:eu-west-1:123456789012:service/dev/web"
PAUSED_CONFIGURATION = {
    "strategy": "BLUE_GREEN",
    "bakeTimeInMinutes": 10,
    "lifecycleHooks": [
        {
            "targetType": "PAUSE",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
            "timeoutConfiguration": {"timeoutInMinutes": 1440, "action": "ROLLBACK"},
        }
    ],
}


def paused(
    deployments: ServiceDeployments, service_arn: str = SERVICE_ARN, *, at: datetime = NOW
) -> ServiceDeploymentRecord:
    """A BLUE_GREEN deployment paused at POST_TEST_TRAFFIC_SHIFT, as the simulator records it."""
    cluster = service_arn.split("/")[-2]
    return deployments.add(
        ServiceDeploymentRecord(
            arn=service_deployment_arn(service_arn),
            service_arn=service_arn,
            cluster_arn=f"arn:aws:ecs:eu-west-1:123456789012:cluster/{cluster}",
            deployment_id="ecs-svc/1234567890123456789",
            configuration=PAUSED_CONFIGURATION,
            target=RevisionRecord(service_revision_arn(service_arn), 2, running=2, test_weight=100.0),
            sources=[RevisionRecord(service_revision_arn(service_arn), 2, running=2, production_weight=100.0)],
            created_at=at,
            status="IN_PROGRESS",
            started_at=at,
            updated_at=at,
            lifecycle_stage="POST_TEST_TRAFFIC_SHIFT",
            hooks=[
                HookRecord(
                    HookRecord.new_id("PAUSE"),
                    "PAUSE",
                    "POST_TEST_TRAFFIC_SHIFT",
                    "AWAITING_ACTION",
                    expires_at=at + timedelta(minutes=1440),
                    timeout_action="ROLLBACK",
                    timeout_minutes=1440,
                )
            ],
        )
    )


def mismatches(value: Any, shape: Shape, path: str = "$") -> list[str]:
    """Where a JSON value strays from a botocore shape: unknown members, wrong types, values
    outside an enum. JSON protocol timestamps are epoch seconds."""
    if shape.metadata.get("document"):
        return []
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: {type(value).__name__}, not an object ({shape.name})"]
        found = []
        for key, item in value.items():
            member = shape.members.get(key)  # type: ignore[attr-defined]
            found += (
                [f"{path}.{key}: not a member of {shape.name}"]
                if member is None
                else mismatches(item, member, f"{path}.{key}")
            )
        return found
    if kind == "list":
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [m for i, item in enumerate(value) for m in mismatches(item, shape.member, f"{path}[{i}]")]  # type: ignore[attr-defined]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{path}: not a string"]
        enum = shape.enum  # type: ignore[attr-defined]
        return [f"{path}: {value!r} is not one of {enum}"] if enum and value not in enum else []
    if kind in {"integer", "long"}:
        return [] if isinstance(value, int) and not isinstance(value, bool) else [f"{path}: not an integer"]
    if kind in {"double", "float", "timestamp"}:
        return [] if isinstance(value, int | float) and not isinstance(value, bool) else [f"{path}: not a number"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{path}: not a boolean"]
    return [f"{path}: unchecked type {kind}"]


def output_shape(operation: str) -> Shape:
    shape = ECS_MODEL.operation_model(operation).output_shape
    assert shape is not None
    return shape


def error_codes(operation: str) -> set[str]:
    return {shape.name for shape in ECS_MODEL.operation_model(operation).error_shapes}


# -- the answers (no network) ------------------------------------------------------------------


@pytest.mark.unit
def test_every_answer_has_exactly_the_shape_of_the_ecs_model() -> None:
    deployments = ServiceDeployments(clock=lambda: NOW)
    record = paused(deployments)
    answers = {
        "ListServiceDeployments": deployments.answer("ListServiceDeployments", {"cluster": "dev", "service": "web"}),
        "DescribeServiceDeployments": deployments.answer(
            "DescribeServiceDeployments", {"serviceDeploymentArns": [record.arn, record.arn + "x"]}
        ),
        "ContinueServiceDeployment": deployments.answer(
            "ContinueServiceDeployment",
            {"serviceDeploymentArn": record.arn, "hookId": record.hooks[0].hook_id, "action": "CONTINUE"},
        ),
        "StopServiceDeployment": deployments.answer(
            "StopServiceDeployment", {"serviceDeploymentArn": record.arn, "stopType": "ROLLBACK"}
        ),
    }
    assert set(answers) == set(SIMULATED_OPERATIONS)
    for operation, answer in answers.items():
        json.dumps(answer)  # what the front sends
        assert mismatches(answer, output_shape(operation)) == [], operation
    (described,) = answers["DescribeServiceDeployments"]["serviceDeployments"]
    assert set(described) >= {
        "lifecycleHookDetails",
        "targetServiceRevision",
        "sourceServiceRevisions",
        "lifecycleStage",
    }
    assert answers["DescribeServiceDeployments"]["failures"] == [{"arn": record.arn + "x", "reason": "MISSING"}]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("operation", "request_", "code"),
    [
        (
            "ContinueServiceDeployment",
            {"serviceDeploymentArn": "ARN", "hookId": "ecs-pause-nope"},
            "InvalidParameterException",
        ),
        (
            "ContinueServiceDeployment",
            {"serviceDeploymentArn": "ARN", "hookId": "HOOK", "action": "LATER"},
            "InvalidParameterException",
        ),
        (
            "ContinueServiceDeployment",
            {"serviceDeploymentArn": "UNKNOWN", "hookId": "HOOK"},
            "ServiceDeploymentNotFoundException",
        ),
        (
            "ContinueServiceDeployment",
            {"serviceDeploymentArn": "not-an-arn", "hookId": "HOOK"},
            "InvalidParameterException",
        ),
        ("StopServiceDeployment", {"serviceDeploymentArn": "UNKNOWN"}, "ServiceDeploymentNotFoundException"),
        ("StopServiceDeployment", {"serviceDeploymentArn": "ARN", "stopType": "PAUSE"}, "InvalidParameterException"),
        ("DescribeServiceDeployments", {"serviceDeploymentArns": []}, "InvalidParameterException"),
        ("DescribeServiceDeployments", {"serviceDeploymentArns": ["ARN"] * 21}, "InvalidParameterException"),
        ("ListServiceDeployments", {"service": "web", "status": ["WAITING"]}, "InvalidParameterException"),
        ("ListServiceDeployments", {"service": "web", "maxResults": 101}, "InvalidParameterException"),
        ("ListServiceDeployments", {"service": "web", "nextToken": "garbage"}, "InvalidParameterException"),
    ],
)
def test_a_request_ecs_would_refuse_is_refused_with_an_error_of_that_operation(
    operation: str, request_: dict[str, Any], code: str
) -> None:
    deployments = ServiceDeployments(clock=lambda: NOW)
    record = paused(deployments)
    unknown = service_deployment_arn(SERVICE_ARN)
    names = {"ARN": record.arn, "UNKNOWN": unknown, "HOOK": record.hooks[0].hook_id}
    resolved = {
        key: ([names.get(v, v) for v in value] if isinstance(value, list) else names.get(value, value))
        for key, value in request_.items()
    }
    with pytest.raises(EcsApiError) as refused:
        deployments.answer(operation, resolved)
    assert refused.value.code == code
    assert code in error_codes(operation)
    assert refused.value.body() == {"__type": code, "message": refused.value.message}


@pytest.mark.unit
def test_a_hook_is_answered_once_and_a_finished_deployment_cannot_be_stopped() -> None:
    deployments = ServiceDeployments(clock=lambda: NOW)
    record = paused(deployments)
    hook_id = record.hooks[0].hook_id
    continued = {"serviceDeploymentArn": record.arn, "hookId": hook_id, "action": "CONTINUE"}
    # WHEN the paused hook is continued THEN the simulator is asked to go on, and the hook SUCCEEDED
    assert deployments.answer("ContinueServiceDeployment", continued) == {"serviceDeploymentArn": record.arn}
    request = deployments.take_request(record)
    assert request is not None
    assert (request.action, request.hook_id) == ("CONTINUE", hook_id)
    assert record.hooks[0].status == "SUCCEEDED"
    # AND a second answer is refused: the hook no longer awaits action
    with pytest.raises(EcsApiError, match="SUCCEEDED") as again:
        deployments.answer("ContinueServiceDeployment", continued)
    assert again.value.code == "InvalidParameterException"
    # WHEN the deployment is over THEN it cannot be stopped (ConflictException, as StopServiceDeployment says)
    record.status = "SUCCESSFUL"
    with pytest.raises(EcsApiError) as stopped:
        deployments.answer("StopServiceDeployment", {"serviceDeploymentArn": record.arn})
    assert stopped.value.code == "ConflictException"


@pytest.mark.unit
def test_rollback_by_continue_or_by_stop_asks_the_simulator_to_roll_back_and_says_why() -> None:
    deployments = ServiceDeployments(clock=lambda: NOW)
    first, second = paused(deployments), paused(deployments)
    deployments.answer(
        "ContinueServiceDeployment",
        {"serviceDeploymentArn": first.arn, "hookId": first.hooks[0].hook_id, "action": "ROLLBACK"},
    )
    deployments.answer("StopServiceDeployment", {"serviceDeploymentArn": second.arn})  # stopType defaults to ROLLBACK
    assert (first.status, first.hooks[0].status) == ("ROLLBACK_REQUESTED", "FAILED")
    assert second.status == "ROLLBACK_REQUESTED"
    asked = [deployments.take_request(first), deployments.take_request(second)]
    assert [(r.action, r.why) for r in asked if r] == [
        ("ROLLBACK", "rolled back by ContinueServiceDeployment ROLLBACK"),
        ("ROLLBACK", "rolled back by StopServiceDeployment ROLLBACK"),
    ]
    assert deployments.take_request(first) is None  # taken once


@pytest.mark.unit
def test_a_pause_nobody_answers_in_time_times_out_and_takes_its_timeout_action() -> None:
    deployments = ServiceDeployments(clock=lambda: NOW)
    record = paused(deployments)
    assert deployments.expire_due(NOW + timedelta(minutes=1439)) == []
    ((expired, hook),) = deployments.expire_due(NOW + timedelta(minutes=1440))
    assert expired is record
    assert hook.status == "TIMED_OUT"
    assert record.status == "ROLLBACK_REQUESTED"
    request = deployments.take_request(record)
    assert request is not None
    assert request.action == "ROLLBACK"
    assert "timed out after 1440 min" in request.why
    with pytest.raises(EcsApiError) as late:
        deployments.answer("ContinueServiceDeployment", {"serviceDeploymentArn": record.arn, "hookId": hook.hook_id})
    assert late.value.code == "InvalidParameterException"


@pytest.mark.unit
def test_the_list_is_newest_first_filtered_and_paged() -> None:
    deployments = ServiceDeployments(clock=lambda: NOW)
    older = paused(deployments, at=NOW - timedelta(hours=2))
    older.status = "SUCCESSFUL"
    newer = paused(deployments, at=NOW)
    paused(deployments, "arn:aws:ecs:eu-west-1:123456789012:service/prod/web")

    def arns(**request: Any) -> list[str]:
        answer = deployments.answer("ListServiceDeployments", {"cluster": "dev", "service": "web", **request})
        return [brief["serviceDeploymentArn"] for brief in answer["serviceDeployments"]]

    assert arns() == [newer.arn, older.arn]
    assert arns(status=["PENDING", "IN_PROGRESS"]) == [newer.arn]
    assert arns(createdAt={"before": (NOW - timedelta(hours=1)).timestamp()}) == [older.arn]
    first = deployments.answer(
        "ListServiceDeployments",
        {"service": "arn:aws:ecs:eu-west-1:123456789012:service/dev/web", "cluster": "dev", "maxResults": 1},
    )
    assert [b["serviceDeploymentArn"] for b in first["serviceDeployments"]] == [newer.arn]
    assert arns(maxResults=1, nextToken=first["nextToken"]) == [older.arn]


# -- over HTTP, through the front, with moto server behind it ------------------------------------


@pytest.fixture(scope="module")
def moto_server() -> Iterator[MotoServer]:
    with running_moto_server() as server:
        yield server


@pytest.fixture
def deployments() -> ServiceDeployments:
    return ServiceDeployments()


@pytest.fixture
def front(
    moto_server: MotoServer, deployments: ServiceDeployments, monkeypatch: pytest.MonkeyPatch
) -> Iterator[EcsFront]:
    moto_server.use(monkeypatch)
    with EcsFront(moto_server.url, deployments) as running:
        yield running


@pytest.fixture
def ecs(front: EcsFront) -> Any:
    """An ECS client as the functions get it: AWS_ENDPOINT_URL is moto, AWS_ENDPOINT_URL_ECS the front."""
    return boto3.client("ecs", endpoint_url=front.url)


@pytest.fixture
def moto_ecs(moto_server: MotoServer) -> Any:
    return boto3.client("ecs", endpoint_url=moto_server.url)


@pytest.fixture
def service(moto_ecs: Any) -> str:
    """dev/web in moto; its ARN in the long format."""
    moto_ecs.create_cluster(clusterName="dev")
    task = moto_ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "nginx", "memory": 128}]
    )
    moto_ecs.create_service(
        cluster="dev", serviceName="web", taskDefinition=task["taskDefinition"]["taskDefinitionArn"], desiredCount=2
    )
    return SERVICE_ARN


@pytest.mark.integration
def test_a_real_ecs_client_reads_a_paused_deployment_through_the_front(
    ecs: Any, deployments: ServiceDeployments, service: str
) -> None:
    record = paused(deployments, service)
    # WHEN the service's deployments in flight are listed and described, as the deployer does
    listed = ecs.list_service_deployments(cluster="dev", service="web", status=["PENDING", "IN_PROGRESS"])
    (brief,) = listed["serviceDeployments"]
    assert brief["serviceDeploymentArn"] == record.arn
    assert brief["status"] == "IN_PROGRESS"
    assert brief["createdAt"] == NOW
    described = ecs.describe_service_deployments(serviceDeploymentArns=[record.arn])
    (deployment,) = described["serviceDeployments"]
    # THEN botocore parsed what the deployer reads: the paused hook, its expiry, its timeout action
    (hook,) = deployment["lifecycleHookDetails"]
    assert hook == {
        "hookId": record.hooks[0].hook_id,
        "targetType": "PAUSE",
        "status": "AWAITING_ACTION",
        "expiresAt": NOW + timedelta(minutes=1440),
        "timeoutAction": "ROLLBACK",
    }
    assert deployment["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert deployment["deploymentConfiguration"] == PAUSED_CONFIGURATION
    assert deployment["targetServiceRevision"]["requestedTestTrafficWeight"] == 100.0
    assert described["failures"] == []
    # AND the deployer's own adapter finds the pause the same way
    view = ecs_deployments.in_flight(ecs, "dev", "web")
    assert view is not None
    paused_hook = ecs_deployments.paused_hook(view)
    assert paused_hook is not None
    assert (view.arn, paused_hook.hook_id, paused_hook.timeout_action) == (record.arn, hook["hookId"], "ROLLBACK")


@pytest.mark.integration
def test_continue_and_stop_go_through_the_front_and_refusals_are_client_errors(
    ecs: Any, deployments: ServiceDeployments, service: str
) -> None:
    record = paused(deployments, service)
    hook_id = record.hooks[0].hook_id
    # WHEN the deployer continues the pause THEN the simulator is asked to go on
    ecs_deployments.decide(ecs, record.arn, hook_id, "CONTINUE")
    request = deployments.take_request(record)
    assert request is not None
    assert request.action == "CONTINUE"
    # AND answering it again is ECS's InvalidParameterException, which the adapter reports as such
    with pytest.raises(ClientError) as again:
        ecs.continue_service_deployment(serviceDeploymentArn=record.arn, hookId=hook_id, action="ROLLBACK")
    assert again.value.response["Error"]["Code"] == "InvalidParameterException"
    assert again.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(DeploymentError, match="InvalidParameterException"):
        ecs_deployments.decide(ecs, record.arn, hook_id, "CONTINUE")
    # WHEN an unknown deployment is stopped THEN ServiceDeploymentNotFoundException, a modeled error
    unknown = service_deployment_arn(service)
    with pytest.raises(ecs.exceptions.ServiceDeploymentNotFoundException):
        ecs.stop_service_deployment(serviceDeploymentArn=unknown, stopType="ROLLBACK")
    # WHEN the deployer stops the one in flight with a rollback THEN it is ROLLBACK_REQUESTED
    ecs_deployments.stop_with_rollback(ecs, record.arn)
    (deployment,) = ecs.describe_service_deployments(serviceDeploymentArns=[record.arn])["serviceDeployments"]
    assert deployment["status"] == "ROLLBACK_REQUESTED"


@pytest.mark.integration
def test_unknown_services_and_clusters_are_refused_as_ecs_refuses_them(ecs: Any, service: str) -> None:
    assert ecs.list_service_deployments(cluster="dev", service="web")["serviceDeployments"] == []
    with pytest.raises(ecs.exceptions.ServiceNotFoundException):
        ecs.list_service_deployments(cluster="dev", service="api")
    with pytest.raises(ClientError) as no_cluster:
        ecs.list_service_deployments(cluster="staging", service="web")
    assert no_cluster.value.response["Error"]["Code"] == "ClusterNotFoundException"


@pytest.mark.integration
def test_every_other_request_reaches_moto_unchanged(ecs: Any, moto_ecs: Any, front: EcsFront) -> None:
    # WHEN the deployer's usual calls go through the front
    ecs.create_cluster(clusterName="dev")
    arn = ecs.register_task_definition(
        family="web", containerDefinitions=[{"name": "web", "image": "nginx", "memory": 128}]
    )["taskDefinition"]["taskDefinitionArn"]
    ecs.create_service(cluster="dev", serviceName="web", taskDefinition=arn, desiredCount=1)
    updated = ecs.update_service(cluster="dev", service="web", deploymentConfiguration=PAUSED_CONFIGURATION)
    # THEN moto did them, and answered as moto answers
    assert updated["service"]["deploymentConfiguration"] == PAUSED_CONFIGURATION
    assert moto_ecs.describe_services(cluster="dev", services=["web"])["services"][0]["taskDefinition"] == arn
    # AND moto's own errors come back as they are
    with pytest.raises(ClientError) as missing:
        ecs.describe_task_definition(taskDefinition="nope:1")
    assert missing.value.response["Error"]["Code"] == moto_error_code(moto_ecs)
    # AND a request that is not ECS's JSON (moto's own API) is forwarded too
    with urllib.request.urlopen(f"{front.url}/moto-api/", timeout=10) as page:
        assert page.status == 200


def moto_error_code(moto_ecs: Any) -> str:
    try:
        moto_ecs.describe_task_definition(taskDefinition="nope:1")
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    raise AssertionError("moto described a task definition that does not exist")


@pytest.mark.integration
def test_aws_endpoint_url_ecs_sends_only_ecs_to_the_front(
    front: EcsFront,
    moto_server: MotoServer,
    deployments: ServiceDeployments,
    service: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # GIVEN the environment the local stack gives the functions and the CLI
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECS", front.url)
    record = paused(deployments, service)
    # THEN a plain ECS client answers the simulated calls, and other services still reach moto
    ecs = boto3.client("ecs")
    assert ecs.meta.endpoint_url == front.url
    assert [
        b["serviceDeploymentArn"]
        for b in ecs.list_service_deployments(service="web", cluster="dev")["serviceDeployments"]
    ] == [record.arn]
    assert boto3.client("sqs").meta.endpoint_url == moto_server.url
