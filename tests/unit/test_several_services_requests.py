"""The exact ECS requests of a stage of several services (botocore Stubber): every service described
and validated before the first RegisterTaskDefinition, one revision per distinct task definition,
one UpdateService per service and never desiredCount; one refusal refuses the whole stage.

DescribeServices takes "up to 10 services ... in a single operation" (Amazon ECS API Reference,
DescribeServices; the same sentence is in botocore's ECS model, checked below), so a stage's
services are described 10 per call. DescribeScalableTargets takes a list of ResourceIds and answers
up to 50 targets per page (botocore's Application Auto Scaling model: "MaxResults ... between 1 and
50"), so their autoscaling ranges are read in one call.
"""

from __future__ import annotations

import copy
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.stub import Stubber

from deployer.pipelines.loader import load_config_text
from deployer.releases.model import Release, ReleaseState, StageState
from deployer.releases.store import ReleaseStore
from deployer.stages import SERVICES_PER_DESCRIBE, StageDeployer
from deployer_local.provision import ACCOUNT, web_task_definition, worker_task_definition
from tests.support.world import commit_id

pytestmark = pytest.mark.unit

IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/web-app@sha256:" + "ab" * 32
WEB_7 = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:7"
WEB_8 = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:8"
WORKER_3 = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/worker:3"
WORKER_4 = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/worker:4"
ROLLOUT = "rollout: {minimumHealthyPercent: 50, maximumPercent: 150, circuitBreaker: {rollback: true}}"
CONFIGURATION = {
    "minimumHealthyPercent": 50,
    "maximumPercent": 150,
    "deploymentCircuitBreaker": {"enable": True, "rollback": True},
}


def pipeline_yaml(services: str, rollout: str = ROLLOUT) -> str:
    return f"""
pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {{project: web-app-build}}
    container: web
    stages:
      - name: dev
        cluster: dev
        services: {services}
        {rollout}
"""


@pytest.fixture
def store(deployer_table: Any) -> ReleaseStore:
    return ReleaseStore(deployer_table)


def built_release(store: ReleaseStore) -> Release:
    release, _ = store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=commit_id("several"),
        previous_commit=None,
        pusher=None,
        pushed_at="2026-11-29T10:00:00Z",
    )
    return store.transition(release, ReleaseState.BUILT, image_uri=IMAGE, image_digest="sha256:" + "ab" * 32)


def service(name: str, task_definition: str, desired: int = 4, deployment: str = "ecs-svc/0") -> dict[str, Any]:
    return {
        "serviceName": name,
        "clusterArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/dev",
        "status": "ACTIVE",
        "desiredCount": desired,
        "schedulingStrategy": "REPLICA",
        "launchType": "FARGATE",
        "deploymentController": {"type": "ECS"},
        "taskDefinition": task_definition,
        "deployments": [{"id": deployment, "status": "PRIMARY", "taskDefinition": task_definition}],
    }


def described(request: dict[str, Any], arn: str, revision: int) -> dict[str, Any]:
    definition = copy.deepcopy(request)
    tags = definition.pop("tags")
    definition.update(
        taskDefinitionArn=arn,
        revision=revision,
        status="ACTIVE",
        requiresAttributes=[],
        compatibilities=["EC2", "FARGATE"],
    )
    return {"taskDefinition": definition, "tags": tags}


def clone(request: dict[str, Any], container: str) -> dict[str, Any]:
    """What RegisterTaskDefinition must receive: the described request with `container`'s image swapped."""
    expected = copy.deepcopy(request)
    for definition in expected["containerDefinitions"]:
        if definition["name"] == container:
            definition["image"] = IMAGE
    return expected


def registered(arn: str, family: str, revision: int) -> dict[str, Any]:
    return {"taskDefinition": {"taskDefinitionArn": arn, "family": family, "revision": revision}}


def updated(deployment: str) -> dict[str, Any]:
    return {"service": {"deployments": [{"id": deployment, "status": "PRIMARY"}]}}


def test_two_services_on_their_own_task_definitions_get_one_revision_each_and_one_update_each(
    store: ReleaseStore,
) -> None:
    # GIVEN web (task definition web:7) and worker (worker:3, container `worker`), with autoscaling
    ecs = boto3.client("ecs")
    autoscaling = boto3.client("application-autoscaling")
    release = built_release(store)
    pipeline = load_config_text(pipeline_yaml("[web, {name: worker, container: worker}]")).pipelines[0]
    web, worker = web_task_definition(image="public.ecr.aws/nginx/nginx:1.27"), worker_task_definition()
    with Stubber(ecs) as stub, Stubber(autoscaling) as scaling:
        # one DescribeServices for both, one DescribeScalableTargets for both
        stub.add_response(
            "describe_services",
            {"services": [service("web", WEB_7), service("worker", WORKER_3, desired=2)], "failures": []},
            {"cluster": "dev", "services": ["web", "worker"]},
        )
        scaling.add_response(
            "describe_scalable_targets",
            {
                "ScalableTargets": [
                    {
                        "ServiceNamespace": "ecs",
                        "ResourceId": "service/dev/worker",
                        "ScalableDimension": "ecs:service:DesiredCount",
                        "MinCapacity": 2,
                        "MaxCapacity": 6,
                        "RoleARN": f"arn:aws:iam::{ACCOUNT}:role/scaling",
                        "CreationTime": "2026-11-01T10:00:00Z",
                    }
                ]
            },
            {
                "ServiceNamespace": "ecs",
                "ResourceIds": ["service/dev/web", "service/dev/worker"],
                "ScalableDimension": "ecs:service:DesiredCount",
            },
        )
        # every task definition read (and its containers checked) before anything is written
        stub.add_response(
            "describe_task_definition", described(web, WEB_7, 7), {"taskDefinition": WEB_7, "include": ["TAGS"]}
        )
        stub.add_response(
            "describe_task_definition",
            described(worker, WORKER_3, 3),
            {"taskDefinition": WORKER_3, "include": ["TAGS"]},
        )
        stub.add_response("register_task_definition", registered(WEB_8, "web", 8), clone(web, "web"))
        stub.add_response("register_task_definition", registered(WORKER_4, "worker", 4), clone(worker, "worker"))
        # never desiredCount (REFERENCE.md "ECS rolling update": autoscaling owns it)
        stub.add_response(
            "update_service",
            updated("ecs-svc/web8"),
            {"cluster": "dev", "service": "web", "taskDefinition": WEB_8, "deploymentConfiguration": CONFIGURATION},
        )
        stub.add_response(
            "update_service",
            updated("ecs-svc/worker4"),
            {
                "cluster": "dev",
                "service": "worker",
                "taskDefinition": WORKER_4,
                "deploymentConfiguration": CONFIGURATION,
            },
        )
        # WHEN the stage deploys
        result = StageDeployer(store, ecs, autoscaling).deploy(release, pipeline, pipeline.stages[0])
        # THEN exactly those requests were made, in that order
        stub.assert_no_pending_responses()
        scaling.assert_no_pending_responses()
    assert result.outcome == "deploying", result.detail
    record = release.stages["dev"]
    assert [
        (s.service, s.task_definition_arn, s.previous_task_definition_arn, s.deployment_id)
        for s in record.services or ()
    ] == [
        ("web", WEB_8, WEB_7, "ecs-svc/web8"),
        ("worker", WORKER_4, WORKER_3, "ecs-svc/worker4"),
    ]
    assert store.deployment("ecs-svc/worker4") == (release.release_id, "dev")
    assert store.latest_deployment("dev", "worker") == (release.release_id, "dev")


def test_services_running_the_same_revision_share_one_new_revision(store: ReleaseStore) -> None:
    # GIVEN web and web-canary run the same task definition (one image into several services):
    # users of ecs-deploy asked for exactly this (sil-org/ecs-deploy#254, aws-actions/
    # amazon-ecs-deploy-task-definition#420: "each service has a different version of it")
    ecs = boto3.client("ecs")
    release = built_release(store)
    pipeline = load_config_text(pipeline_yaml("[web, web-canary]")).pipelines[0]
    web = web_task_definition(image="public.ecr.aws/nginx/nginx:1.27")
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services",
            {"services": [service("web", WEB_7), service("web-canary", WEB_7, desired=2)], "failures": []},
            {"cluster": "dev", "services": ["web", "web-canary"]},
        )
        stub.add_response(
            "describe_task_definition", described(web, WEB_7, 7), {"taskDefinition": WEB_7, "include": ["TAGS"]}
        )
        stub.add_response("register_task_definition", registered(WEB_8, "web", 8), clone(web, "web"))
        for name in ("web", "web-canary"):
            stub.add_response(
                "update_service",
                updated(f"ecs-svc/{name}"),
                {"cluster": "dev", "service": name, "taskDefinition": WEB_8, "deploymentConfiguration": CONFIGURATION},
            )
        # WHEN the stage deploys THEN one DescribeTaskDefinition, one RegisterTaskDefinition, two UpdateService
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    assert result.outcome == "deploying", result.detail
    assert {s.task_definition_arn for s in release.stages["dev"].services or ()} == {WEB_8}


def test_one_refusal_refuses_the_whole_stage_with_every_problem_and_writes_nothing(store: ReleaseStore) -> None:
    # GIVEN worker runs 1 task, which 50/150 cannot roll (ceil(1 x 50%) = 1 must stay, floor(1 x 150%) = 1
    # may run), and api's task definition has no container `web`
    ecs = boto3.client("ecs")
    release = built_release(store)
    rollout = "rollout: {minimumHealthyPercent: 100, maximumPercent: 150}"
    pipeline = load_config_text(pipeline_yaml("[web, worker, api]", rollout)).pipelines[0]
    web = web_task_definition(image="public.ecr.aws/nginx/nginx:1.27")
    api = web_task_definition("api", "public.ecr.aws/nginx/nginx:1.27")
    api["containerDefinitions"][0]["name"] = "app"
    api_1 = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/api:1"
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services",
            {
                "services": [service("web", WEB_7), service("worker", WEB_7, desired=1), service("api", api_1)],
                "failures": [],
            },
            {"cluster": "dev", "services": ["web", "worker", "api"]},
        )
        stub.add_response(
            "describe_task_definition", described(web, WEB_7, 7), {"taskDefinition": WEB_7, "include": ["TAGS"]}
        )
        stub.add_response(
            "describe_task_definition", described(api, api_1, 1), {"taskDefinition": api_1, "include": ["TAGS"]}
        )
        # WHEN the stage deploys THEN reads only: no RegisterTaskDefinition, no UpdateService
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    # AND the release ends INVALID_CONFIG listing both problems, each with its service
    assert result.outcome == "invalid_config"
    assert release.state is ReleaseState.INVALID_CONFIG
    reason = release.reason or ""
    assert reason.startswith("stage dev: worker: ")
    assert "api: container 'web' is not in" in reason
    assert "web: " not in reason.replace("api: container 'web'", "")
    record = release.stages["dev"]
    assert record.state is StageState.FAILED
    assert store.lock_of("dev", "web") is None
    assert store.lock_of("dev", "worker") is None
    assert store.lock_of("dev", "api") is None


def test_a_missing_service_fails_the_stage_before_anything_is_read_further(store: ReleaseStore) -> None:
    ecs = boto3.client("ecs")
    release = built_release(store)
    pipeline = load_config_text(pipeline_yaml("[web, worker]")).pipelines[0]
    with Stubber(ecs) as stub:
        stub.add_response(
            "describe_services",
            {
                "services": [service("web", WEB_7)],
                "failures": [{"arn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service/dev/worker", "reason": "MISSING"}],
            },
            {"cluster": "dev", "services": ["web", "worker"]},
        )
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    assert result.outcome == "failed"
    assert "ECS service dev/worker not found" in (release.reason or "")
    assert "MISSING" in (release.reason or "")


def test_services_are_described_ten_per_call_as_describe_services_allows() -> None:
    # GIVEN botocore's ECS model says so
    model = botocore.session.get_session().get_service_model("ecs")
    doc = model.operation_model("DescribeServices").input_shape.members["services"].documentation
    assert "up to 10 services" in doc
    assert SERVICES_PER_DESCRIBE == 10
    # WHEN 12 services are described THEN two calls: 10, then 2
    ecs = boto3.client("ecs", region_name="eu-west-1")
    names = [f"s{i:02d}" for i in range(12)]
    from deployer.stages import describe_services

    with Stubber(ecs) as stub:
        for batch in (names[:10], names[10:]):
            stub.add_response(
                "describe_services",
                {"services": [service(n, WEB_7) for n in batch], "failures": []},
                {"cluster": "dev", "services": batch},
            )
        views, missing = describe_services(ecs, "dev", names)
        stub.assert_no_pending_responses()
    assert list(views) == names
    assert missing == []
