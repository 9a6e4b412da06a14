"""deployer.ecs_deployments: the exact requests of the service-deployment calls moto lacks,
asserted with botocore's Stubber (ECS API reference: ListServiceDeployments,
DescribeServiceDeployments, ContinueServiceDeployment, StopServiceDeployment)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from deployer import ecs_deployments
from deployer.errors import DeploymentError, TransientError

pytestmark = pytest.mark.unit

ARN = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/new"
OLD = "arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/old"


@pytest.fixture
def stubbed() -> Iterator[tuple[Any, Stubber]]:
    ecs = boto3.client("ecs", region_name="eu-west-1")
    with Stubber(ecs) as stub:
        yield ecs, stub
        stub.assert_no_pending_responses()


def test_the_pause_hook_is_added_beside_the_stages_own_hooks() -> None:
    lambda_hook = {
        "targetType": "AWS_LAMBDA",
        "hookTargetArn": "arn:fn",
        "roleArn": "arn:role",
        "lifecycleStages": ["PRE_SCALE_UP"],
    }
    configuration = {"strategy": "CANARY", "lifecycleHooks": [lambda_hook]}
    paused = ecs_deployments.with_pause_hook(configuration, "POST_TEST_TRAFFIC_SHIFT", 90)
    assert paused["lifecycleHooks"] == [
        lambda_hook,
        {
            "targetType": "PAUSE",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
            "timeoutConfiguration": {"timeoutInMinutes": 90, "action": "ROLLBACK"},
        },
    ]
    assert configuration["lifecycleHooks"] == [lambda_hook]  # the input is left alone


@pytest.mark.parametrize(("asked", "sent"), [(0, 1), (120, 120), (10080, 10080), (50000, 20160)])
def test_the_pause_timeout_stays_within_ecs_bounds(asked: int, sent: int) -> None:
    # DeploymentLifecycleHookDuration is 1..20160 minutes in botocore's ECS model
    assert ecs_deployments.pause_hook("POST_SCALE_UP", asked)["timeoutConfiguration"]["timeoutInMinutes"] == sent


def test_in_flight_lists_active_deployments_and_describes_the_newest(stubbed: tuple[Any, Stubber]) -> None:
    ecs, stub = stubbed
    now = datetime.now(UTC)
    stub.add_response(
        "list_service_deployments",
        {
            "serviceDeployments": [
                {"serviceDeploymentArn": OLD, "status": "IN_PROGRESS", "createdAt": now - timedelta(minutes=5)},
                {"serviceDeploymentArn": ARN, "status": "PENDING", "createdAt": now},
            ]
        },
        {"cluster": "prod", "service": "web", "status": ["PENDING", "IN_PROGRESS"]},
    )
    expires = now + timedelta(hours=1)
    stub.add_response(
        "describe_service_deployments",
        {
            "serviceDeployments": [
                {
                    "serviceDeploymentArn": ARN,
                    "status": "IN_PROGRESS",
                    "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
                    "targetServiceRevision": {"arn": "arn:rev"},
                    "lifecycleHookDetails": [
                        {"hookId": "h-lambda", "targetType": "AWS_LAMBDA", "status": "SUCCEEDED"},
                        {
                            "hookId": "h-pause",
                            "targetType": "PAUSE",
                            "status": "AWAITING_ACTION",
                            "expiresAt": expires,
                            "timeoutAction": "ROLLBACK",
                        },
                    ],
                }
            ]
        },
        {"serviceDeploymentArns": [ARN]},
    )
    view = ecs_deployments.in_flight(ecs, "prod", "web")
    assert view is not None
    assert view.arn == ARN
    assert view.active
    hook = ecs_deployments.paused_hook(view)
    assert hook is not None
    assert (hook.hook_id, hook.timeout_action, hook.expires_at) == ("h-pause", "ROLLBACK", expires)


def test_in_flight_is_none_when_nothing_is_deploying(stubbed: tuple[Any, Stubber]) -> None:
    ecs, stub = stubbed
    stub.add_response(
        "list_service_deployments",
        {"serviceDeployments": []},
        {"cluster": "c", "service": "s", "status": ["PENDING", "IN_PROGRESS"]},
    )
    assert ecs_deployments.in_flight(ecs, "c", "s") is None


@pytest.mark.parametrize("action", ["CONTINUE", "ROLLBACK"])
def test_decide_answers_the_paused_hook(stubbed: tuple[Any, Stubber], action: str) -> None:
    ecs, stub = stubbed
    stub.add_response(
        "continue_service_deployment",
        {"serviceDeploymentArn": ARN},
        {"serviceDeploymentArn": ARN, "hookId": "h-pause", "action": action},
    )
    ecs_deployments.decide(ecs, ARN, "h-pause", action)  # type: ignore[arg-type]


def test_stop_with_rollback_sends_stop_type_rollback(stubbed: tuple[Any, Stubber]) -> None:
    ecs, stub = stubbed
    stub.add_response(
        "stop_service_deployment", {"serviceDeploymentArn": ARN}, {"serviceDeploymentArn": ARN, "stopType": "ROLLBACK"}
    )
    ecs_deployments.stop_with_rollback(ecs, ARN)


def test_a_hook_no_longer_waiting_is_a_deployment_error_and_throttling_is_transient(
    stubbed: tuple[Any, Stubber],
) -> None:
    ecs, stub = stubbed
    stub.add_client_error("continue_service_deployment", "InvalidParameterException", "hook is not awaiting action")
    with pytest.raises(DeploymentError, match="ContinueServiceDeployment CONTINUE failed: InvalidParameterException"):
        ecs_deployments.decide(ecs, ARN, "h", "CONTINUE")
    stub.add_client_error("stop_service_deployment", "ThrottlingException", "slow down", http_status_code=400)
    with pytest.raises(TransientError):
        ecs_deployments.stop_with_rollback(ecs, ARN)
