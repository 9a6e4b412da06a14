"""Deploying a stage: the exact ECS requests (botocore Stubber), and faults in the middle of a
deployment followed by EventBridge's redelivery."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from botocore.stub import ANY, Stubber

from deployer.errors import TransientError
from deployer.pipelines.loader import load_config_text
from deployer.releases.model import Release, ReleaseState, StageState
from deployer.releases.store import ReleaseStore
from deployer.stages import StageDeployer
from deployer_local.provision import ACCOUNT, web_task_definition
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/web-app@sha256:" + "ab" * 32
OLD_ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:7"
NEW_ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:8"
PIPELINE_YAML = """
pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {project: web-app-build}
    container: web
    stages:
      - name: dev
        cluster: dev
        service: web
        rollout: {minimumHealthyPercent: 50, maximumPercent: 150, circuitBreaker: {rollback: true}}
"""


@pytest.fixture
def store(deployer_table: Any) -> ReleaseStore:
    return ReleaseStore(deployer_table)


def built_release(store: ReleaseStore) -> Release:
    release, _ = store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=commit_id("stub"),
        previous_commit=None,
        pusher=None,
        pushed_at="2026-11-29T10:00:00Z",
    )
    return store.transition(release, ReleaseState.BUILT, image_uri=IMAGE, image_digest="sha256:" + "ab" * 32)


def described_task_definition() -> dict[str, Any]:
    """DescribeTaskDefinition's answer: the registered request plus every read-only key."""
    request = web_task_definition(image="public.ecr.aws/nginx/nginx:1.27")
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
        "ipcMode": "task",
        "pidMode": "task",
    }
    return {"taskDefinition": definition, "tags": tags}


def service_response(task_definition: str, deployment_id: str = "ecs-svc/1111") -> dict[str, Any]:
    return {
        "services": [
            {
                "serviceName": "web",
                "clusterArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/dev",
                "status": "ACTIVE",
                "desiredCount": 4,
                "schedulingStrategy": "REPLICA",
                "launchType": "FARGATE",
                "deploymentController": {"type": "ECS"},
                "taskDefinition": task_definition,
                "deployments": [{"id": deployment_id, "status": "PRIMARY", "taskDefinition": task_definition}],
            }
        ],
        "failures": [],
    }


def expected_register_request() -> dict[str, Any]:
    definition = copy.deepcopy(described_task_definition()["taskDefinition"])
    for key in ("taskDefinitionArn", "revision", "status", "requiresAttributes", "compatibilities"):
        definition.pop(key)
    for key in ("registeredAt", "registeredBy"):
        definition.pop(key)
    definition["containerDefinitions"][0]["image"] = IMAGE
    definition["tags"] = [{"key": "team", "value": "web"}, {"key": "cost-center", "value": "cc-42"}]
    return definition


def test_a_stage_sends_exactly_four_ecs_requests_and_never_desired_count(store: ReleaseStore) -> None:
    # GIVEN a built release and a stubbed ECS that expects the exact requests
    ecs = boto3.client("ecs")
    release = built_release(store)
    pipeline = load_config_text(PIPELINE_YAML).pipelines[0]
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service_response(OLD_ARN), {"cluster": "dev", "services": ["web"]})
        stub.add_response(
            "describe_task_definition",
            described_task_definition(),
            {"taskDefinition": OLD_ARN, "include": ["TAGS"]},
        )
        # REFERENCE.md "Cloning a task definition": read-only keys removed, nothing else dropped
        # (ipcMode, pidMode kept), aws: tags removed, the others kept.
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
            expected_register_request(),
        )
        # REFERENCE.md "ECS rolling update": never desiredCount (autoscaling owns it).
        stub.add_response(
            "update_service",
            {"service": {"deployments": [{"id": "ecs-svc/2222", "status": "PRIMARY"}]}},
            {
                "cluster": "dev",
                "service": "web",
                "taskDefinition": NEW_ARN,
                "deploymentConfiguration": {
                    "minimumHealthyPercent": 50,
                    "maximumPercent": 150,
                    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
                },
            },
        )
        # WHEN the stage deploys
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        # THEN those four calls, and nothing else, were made
        stub.assert_no_pending_responses()
    assert result.outcome == "deploying"
    record = release.stages["dev"]
    assert record.deployment_id == "ecs-svc/2222"
    assert record.task_definition_arn == NEW_ARN
    assert record.previous_task_definition_arn == OLD_ARN
    assert store.deployment("ecs-svc/2222") == (release.release_id, "dev")


def test_update_service_failing_after_registration_resumes_without_a_second_revision(store: ReleaseStore) -> None:
    # GIVEN UpdateService throttled right after RegisterTaskDefinition succeeded
    ecs = boto3.client("ecs")
    release = built_release(store)
    pipeline = load_config_text(PIPELINE_YAML).pipelines[0]
    deployer = StageDeployer(store, ecs)
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service_response(OLD_ARN))
        stub.add_response("describe_task_definition", described_task_definition())
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
        )
        stub.add_client_error("update_service", "ThrottlingException", "Rate exceeded", 400)
        with pytest.raises(TransientError):
            deployer.deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    # WHEN EventBridge redelivers and the handler runs again from the stored release
    again = store.get(release.release_id)
    assert again is not None
    assert again.stages["dev"].task_definition_arn == NEW_ARN
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service_response(OLD_ARN))
        stub.add_response(
            "update_service",
            {"service": {"deployments": [{"id": "ecs-svc/3333", "status": "PRIMARY"}]}},
            {"cluster": "dev", "service": "web", "taskDefinition": NEW_ARN, "deploymentConfiguration": ANY},
        )
        result = deployer.deploy(again, pipeline, pipeline.stages[0])
        # THEN no DescribeTaskDefinition nor RegisterTaskDefinition the second time
        stub.assert_no_pending_responses()
    assert result.outcome == "deploying"
    assert again.stages["dev"].deployment_id == "ecs-svc/3333"


def test_a_retry_after_update_service_succeeded_only_records_the_running_deployment(store: ReleaseStore) -> None:
    # GIVEN a crash after UpdateService succeeded but before the deployment id was recorded
    ecs = boto3.client("ecs")
    release = built_release(store)
    pipeline = load_config_text(PIPELINE_YAML).pipelines[0]
    deployer = StageDeployer(store, ecs)
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service_response(OLD_ARN))
        stub.add_response("describe_task_definition", described_task_definition())
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
        )
        stub.add_client_error("update_service", "ServerException", "internal", 500)
        with pytest.raises(TransientError):
            deployer.deploy(release, pipeline, pipeline.stages[0])
    again = store.get(release.release_id)
    assert again is not None
    # WHEN the service already runs the new revision (the first UpdateService did land)
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service_response(NEW_ARN, "ecs-svc/4444"))
        result = deployer.deploy(again, pipeline, pipeline.stages[0])
        # THEN no second UpdateService: the PRIMARY deployment is recorded
        stub.assert_no_pending_responses()
    assert result.outcome == "deploying"
    assert again.stages["dev"].deployment_id == "ecs-svc/4444"


@pytest.mark.parametrize("operation", ["describe_services", "describe_task_definition", "register_task_definition"])
@pytest.mark.parametrize("code", ["ThrottlingException", "ServerException"])
def test_transient_faults_on_each_call_raise_for_a_retry_and_change_nothing(
    store: ReleaseStore, operation: str, code: str
) -> None:
    ecs = boto3.client("ecs")
    release = built_release(store)
    version = release.version
    pipeline = load_config_text(PIPELINE_YAML).pipelines[0]
    responses = [
        ("describe_services", service_response(OLD_ARN)),
        ("describe_task_definition", described_task_definition()),
        ("register_task_definition", {"taskDefinition": {"taskDefinitionArn": NEW_ARN}}),
    ]
    with Stubber(ecs) as stub:
        for name, response in responses:
            if name == operation:
                stub.add_client_error(name, code, "injected", 500 if code == "ServerException" else 400)
                break
            stub.add_response(name, response)
        with pytest.raises(TransientError):
            StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
    stored = store.get(release.release_id)
    assert stored is not None
    if operation == "register_task_definition":
        # only the intent is recorded (so a redelivery looks for the revision before registering one)
        assert stored.version == version + 1
        record = stored.stages["dev"]
        assert record.registering_at
        assert record.task_definition_arn is None
        assert record.deployment_id is None
        return
    assert stored.version == version
    assert stored.state is ReleaseState.BUILT
    assert "dev" not in stored.stages


def test_a_missing_service_fails_the_release_and_frees_the_lock(store: ReleaseStore) -> None:
    ecs = boto3.client("ecs")
    release = built_release(store)
    pipeline = load_config_text(PIPELINE_YAML).pipelines[0]
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services",
            {"services": [], "failures": [{"arn": "arn:aws:ecs:eu-west-1:1:service/dev/web", "reason": "MISSING"}]},
        )
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
    assert result.outcome == "failed"
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert "MISSING" in (release.reason or "")
    assert release.stages["dev"].state is StageState.FAILED
    assert store.lock_of("dev", "web") is None


def test_access_denied_on_update_service_fails_the_release_with_aws_words(world: World) -> None:
    # GIVEN ECS refusing UpdateService (a permanent error, not a throttle)
    def deny(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "UpdateService")

    world.deps.stages.ecs.meta.events.register("before-call.ecs.UpdateService", deny)
    from deployer.events.codebuild import CodeBuildStateChangeEvent
    from deployer.events.codecommit import CodeCommitReferenceEvent
    from deployer.events.parse import parse_event
    from deployer.flow.build import on_build
    from deployer.flow.push import on_push

    (started,) = on_push(parse_event(CodeCommitReferenceEvent, world.push(commit_id("deny"))), world.deps)
    outcome = on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(started["release_id"])), world.deps)
    release = world.store.get(started["release_id"])
    assert release is not None
    assert outcome["outcome"] == "failed"
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert "AccessDeniedException" in (release.reason or "")
    assert world.store.lock_of("dev", "web") is None


LOAD_BALANCER = {
    "targetGroupArn": f"arn:aws:elasticloadbalancing:eu-west-1:{ACCOUNT}:targetgroup/blue/1",
    "containerName": "web",
    "containerPort": 80,
    "advancedConfiguration": {
        "alternateTargetGroupArn": f"arn:aws:elasticloadbalancing:eu-west-1:{ACCOUNT}:targetgroup/green/2",
        "productionListenerRule": f"arn:aws:elasticloadbalancing:eu-west-1:{ACCOUNT}:listener-rule/app/a/1/2/3",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ecs-lb",
    },
}
PAUSE = {
    "targetType": "PAUSE",
    "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
    "timeoutConfiguration": {"timeoutInMinutes": 180, "action": "ROLLBACK"},
}


@pytest.mark.parametrize(
    ("rollout", "approval", "sent"),
    [
        pytest.param(
            "{strategy: BLUE_GREEN, bakeTimeInMinutes: 15}",
            "",
            {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 15},
            id="blue-green",
        ),
        pytest.param(
            "{strategy: LINEAR, bakeTimeInMinutes: 10,"
            " linearConfiguration: {stepPercent: 25.0, stepBakeTimeInMinutes: 5}}",
            "",
            {
                "strategy": "LINEAR",
                "bakeTimeInMinutes": 10,
                "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 5},
            },
            id="linear",
        ),
        pytest.param(
            "{strategy: CANARY, bakeTimeInMinutes: 30,"
            " canaryConfiguration: {canaryPercent: 10.0, canaryBakeTimeInMinutes: 15}}",
            "",
            {
                "strategy": "CANARY",
                "bakeTimeInMinutes": 30,
                "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 15},
            },
            id="canary",
        ),
        pytest.param(
            "{strategy: BLUE_GREEN, bakeTimeInMinutes: 15}",
            "        approval: {expiresInHours: 3, at: POST_TEST_TRAFFIC_SHIFT}\n",
            {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 15, "lifecycleHooks": [PAUSE]},
            id="blue-green-approved-during",
        ),
    ],
)
def test_each_strategy_is_sent_as_configured(
    store: ReleaseStore, rollout: str, approval: str, sent: dict[str, Any]
) -> None:
    # GIVEN a stage with a traffic-shifting strategy on a service with an alternate target group
    # (REFERENCE.md "ECS rolling update": strategy, bakeTimeInMinutes, linear/canary configuration,
    # lifecycleHooks PAUSE with timeoutConfiguration)
    ecs = boto3.client("ecs")
    release = built_release(store)
    text = PIPELINE_YAML.replace(
        "        rollout: {minimumHealthyPercent: 50, maximumPercent: 150, circuitBreaker: {rollback: true}}\n",
        f"        rollout: {rollout}\n{approval}",
    )
    pipeline = load_config_text(text).pipelines[0]
    described = service_response(OLD_ARN)
    described["services"][0]["loadBalancers"] = [LOAD_BALANCER]
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", described, {"cluster": "dev", "services": ["web"]})
        stub.add_response(
            "describe_task_definition", described_task_definition(), {"taskDefinition": OLD_ARN, "include": ["TAGS"]}
        )
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
            expected_register_request(),
        )
        stub.add_response(
            "update_service",
            {"service": {"deployments": [{"id": "ecs-svc/3333", "status": "PRIMARY"}]}},
            {
                "cluster": "dev",
                "service": "web",
                "taskDefinition": NEW_ARN,
                # validate() spells out ECS's defaults for the keys left out (REPLICA: 100/200)
                "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 200, **sent},
            },
        )
        # WHEN the stage deploys THEN UpdateService carries exactly the strategy (and the pause)
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        assert result.outcome == "deploying", result.detail
        stub.assert_no_pending_responses()


def test_a_traffic_shifting_strategy_without_an_alternate_target_group_is_refused_before_any_change(
    store: ReleaseStore,
) -> None:
    ecs = boto3.client("ecs")
    release = built_release(store)
    text = PIPELINE_YAML.replace(
        "rollout: {minimumHealthyPercent: 50, maximumPercent: 150, circuitBreaker: {rollback: true}}",
        "rollout: {strategy: BLUE_GREEN, bakeTimeInMinutes: 15}",
    )
    pipeline = load_config_text(text).pipelines[0]
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service_response(OLD_ARN), {"cluster": "dev", "services": ["web"]})
        # the task definition is read too (every problem of the stage is listed at once); nothing is written
        stub.add_response(
            "describe_task_definition", described_task_definition(), {"taskDefinition": OLD_ARN, "include": ["TAGS"]}
        )
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    assert result.outcome == "invalid_config"
    assert "alternate target group" in result.detail
