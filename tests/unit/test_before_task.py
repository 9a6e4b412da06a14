"""`before:` a one-off task before a stage (deployer.before): RunTask with the new revision and the
service's placement, the STOPPED event that decides, the lost event and the timeout.

The AWS facts the tests rely on:
- ECS Developer Guide, "Amazon ECS task state change events"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html): "Task state
  change events are delivered in the following format. The detail section below resembles the Task
  object that is returned from a DescribeTasks API operation" (its example: tests/support/documented.py).
- botocore's ECS model, RunTask: startedBy "Up to 128 letters (uppercase and lowercase), numbers,
  hyphens (-), forward slash (/), and underscores (_) are allowed. If a task is started by an Amazon
  ECS service, then the startedBy parameter contains the deployment ID of the service that starts
  it"; clientToken "Up to 64 characters are allowed. The valid characters are characters in the
  range of 33-126, inclusive"; overrides "A total of 8192 characters are allowed for overrides.
  This limit includes the JSON formatting characters of the override structure."
- ECS API Reference, "Ensuring idempotency"
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/ECS_Idempotency.html): "If you retry a
  request that completed successfully using the same client token and the same parameters, the
  retry succeeds without performing any further actions."
- EventBridge User Guide, "Content filtering in Amazon EventBridge event patterns"
  (https://docs.aws.amazon.com/eventbridge/latest/userguide/content-filtering-with-event-patterns.html),
  "Prefix matching": "You can match an event depending on the prefix of a value in the event source.
  You can use prefix matching for string values."
- ECS API Reference, LogConfiguration
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_LogConfiguration.html),
  awslogs-stream-prefix: "If you specify a prefix with this option, then the log stream takes the
  format prefix-name/container-name/ecs-task-id."
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from deployer import before, reconciler
from deployer.errors import TransientError
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent, EcsTaskStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment, on_task_stopped
from deployer.flow.push import on_push
from deployer.flow.rollback import request_rollback
from deployer.pipelines.loader import check_config_text, load_config_text
from deployer.releases.model import Release, ReleaseState, StageState
from deployer.releases.store import ReleaseStore
from deployer.stages import StageDeployer
from deployer_local import template
from deployer_local.ecs_tasks import Tasks
from deployer_local.provision import ACCOUNT, web_task_definition
from tests.support.documented import AWS_TASK_STATE_CHANGE_EXAMPLE
from tests.support.events import load_event
from tests.support.local_tasks import answered_by_tasks
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

COMMAND = ["./manage.py", "migrate", "--noinput"]


def pipelines_yaml(world: World, *, before_extra: str = "") -> str:
    """dev, then prod with a before-task (no approval)."""
    dev, prod = world.account.services["dev"], world.account.services["prod"]
    return (
        "pipelines:\n"
        "  - name: web\n"
        f"    repository: {world.account.repository}\n"
        "    branch: main\n"
        f"    build: {{project: {world.account.build_project}}}\n"
        "    container: web\n"
        "    stages:\n"
        "      - name: dev\n"
        f"        cluster: {dev.cluster}\n"
        f"        service: {dev.service}\n"
        "        rollout: {minimumHealthyPercent: 100, maximumPercent: 200}\n"
        "      - name: prod\n"
        f"        cluster: {prod.cluster}\n"
        f"        service: {prod.service}\n"
        "        rollout: {minimumHealthyPercent: 50, maximumPercent: 150}\n"
        f"        before: {{task: migrate, command: {json.dumps(COMMAND)}{before_extra}}}\n"
    )


@pytest.fixture
def tasks() -> Tasks:
    return Tasks()


@pytest.fixture
def world(world: World, tasks: Tasks) -> World:
    world.publish(pipelines_yaml(world))
    answered_by_tasks(world.deps.stages.ecs, tasks)  # the local stack's simulated tasks
    return world


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def completed(world: World, release: Release, stage: str) -> EcsDeploymentStateChangeEvent:
    event = load_event("ecs_deployment_completed")
    service = world.account.services[stage]
    event["resources"] = [f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service/{service.cluster}/{service.service}"]
    event["detail"]["deploymentId"] = release.stages[stage].deployment_id
    return parse_event(EcsDeploymentStateChangeEvent, event)


def at_prods_before_task(world: World, label: str = "migrate", *, time: str = "2026-11-29T10:00:00Z") -> Release:
    """A release whose dev completed: prod's before-task has just been started (RunTask)."""
    push = world.push(commit_id(label), time=time)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, push), world.deps)
    release_id = str(started["release_id"])
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    outcome = on_deployment(completed(world, current(world, release_id), "dev"), world.deps)
    assert outcome["next"]["outcome"] == "before_task", outcome
    return current(world, release_id)


def stopped(
    release: Release, *, exit_code: int | None = 0, sample: str = "ecs_task_stopped"
) -> EcsTaskStateChangeEvent:
    """The release's prod before-task stopped: the sample event, naming that task."""
    record = release.stages["prod"]
    assert record.before_task_arn
    assert record.before_token
    event: dict[str, Any] = load_event(sample)
    event["resources"] = [record.before_task_arn]
    detail = event["detail"]
    detail["taskArn"] = record.before_task_arn
    detail["clusterArn"] = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod"
    detail["taskDefinitionArn"] = record.task_definition_arn
    detail["startedBy"] = before.started_by(record.before_token)
    for container in detail["containers"]:
        container["taskArn"] = record.before_task_arn
        if exit_code is None:
            container.pop("exitCode", None)
        else:
            container["exitCode"] = exit_code
    return parse_event(EcsTaskStateChangeEvent, event)


# -- the event --------------------------------------------------------------------------------------


def test_the_documented_example_parses_with_the_model() -> None:
    # GIVEN AWS's example of the event, verbatim
    event = parse_event(EcsTaskStateChangeEvent, json.loads(AWS_TASK_STATE_CHANGE_EXAMPLE))
    # THEN the fields the deployer reads are there, as AWS prints them
    detail = event.detail
    assert detail.task_arn.endswith(":task/FargateCluster/c13b4cb40f1f4fe4a2971f76ae5a47ad")
    assert detail.cluster_name == "FargateCluster"
    assert detail.task_definition_arn.endswith(":task-definition/sample-fargate:1")
    assert [c.name for c in detail.containers] == ["FargateApp"]
    assert detail.last_status == "RUNNING"
    assert not detail.stopped
    assert detail.started_by is None  # a task nobody named: never the deployer's


def test_the_sample_is_the_documented_example_moved_here_and_stopped() -> None:
    documented = json.loads(AWS_TASK_STATE_CHANGE_EXAMPLE)
    sample = load_event("ecs_task_stopped")
    # THEN it keeps every key of the documented example (values moved to this world)...
    assert set(documented) == set(sample)
    assert set(documented["detail"]) <= set(sample["detail"])
    assert set(documented["detail"]["containers"][0]) <= set(sample["detail"]["containers"][0])
    # ...and adds what a stopped task carries (Task and Container in botocore's ECS model)
    added = set(sample["detail"]) - set(documented["detail"])
    assert added == {"startedBy", "stopCode", "stoppedAt", "stoppedReason", "stoppingAt", "executionStoppedAt"}
    event = parse_event(EcsTaskStateChangeEvent, sample)
    assert event.detail.stopped
    assert event.detail.containers[0].exit_code == 0


def test_a_task_event_whose_arns_disagree_is_refused() -> None:
    from deployer.errors import BadInput

    event = load_event("ecs_task_stopped")
    event["detail"]["clusterArn"] = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/dev"
    with pytest.raises(BadInput, match="another cluster"):
        parse_event(EcsTaskStateChangeEvent, event)


# -- the rule ---------------------------------------------------------------------------------------


def task_rule_names(event: dict[str, Any]) -> list[str]:
    from tests.unit.test_router_rules import MotoLikeClient, router_for

    return [rule.name for rule in router_for(MotoLikeClient(), []).matching(event)]


def test_task_rule_matches_stopped_tasks_the_deployer_started_by_prefix() -> None:
    assert template.rule_patterns()["OnDeploymentFunction.TaskRule"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"lastStatus": ["STOPPED"], "startedBy": [{"prefix": before.STARTED_BY_PREFIX}]},
    }
    assert task_rule_names(load_event("ecs_task_stopped")) == ["OnDeploymentFunction.TaskRule"]
    assert task_rule_names(load_event("ecs_task_stopped_failed")) == ["OnDeploymentFunction.TaskRule"]


@pytest.mark.parametrize(
    "change",
    [
        {"startedBy": "ecs-svc/6405940160831029548"},  # a service's own task
        {"startedBy": "someone-else/b471ef09928f16e71700c34908a1b739"},
        {"lastStatus": "RUNNING"},
        {"lastStatus": "DEPROVISIONING"},
    ],
)
def test_other_tasks_and_states_reach_no_function(change: dict[str, str]) -> None:
    event = load_event("ecs_task_stopped")
    event["detail"].update(change)
    assert task_rule_names(event) == []


def test_a_task_without_started_by_and_the_documented_example_reach_no_function() -> None:
    event = load_event("ecs_task_stopped")
    del event["detail"]["startedBy"]
    assert task_rule_names(event) == []
    assert task_rule_names(json.loads(AWS_TASK_STATE_CHANGE_EXAMPLE)) == []
    assert task_rule_names(load_event("ecs_task_stopped_service")) == []


# -- the RunTask request (botocore Stubber: the exact request) ----------------------------------------

OLD_ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:7"
NEW_ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/web:8"
TASK_ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task/prod/0123456789abcdef0123456789abcdef"
IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/web-app@sha256:" + "ab" * 32
STUB_YAML = """
pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {project: web-app-build}
    container: web
    stages:
      - name: prod
        cluster: prod
        service: web
        rollout: {minimumHealthyPercent: 50, maximumPercent: 150}
        before: {task: migrate, command: ["./manage.py", "migrate", "--noinput"]}
"""
NETWORK = {
    "awsvpcConfiguration": {
        "subnets": ["subnet-0a1b2c3d", "subnet-4e5f6a7b"],
        "securityGroups": ["sg-0123abcd"],
        "assignPublicIp": "DISABLED",
    }
}


@pytest.fixture
def store(deployer_table: Any) -> ReleaseStore:
    return ReleaseStore(deployer_table)


def built(store: ReleaseStore) -> Release:
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


def service(**extra: Any) -> dict[str, Any]:
    return {
        "services": [
            {
                "serviceName": "web",
                "clusterArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod",
                "status": "ACTIVE",
                "desiredCount": 4,
                "schedulingStrategy": "REPLICA",
                "deploymentController": {"type": "ECS"},
                "taskDefinition": OLD_ARN,
                "deployments": [{"id": "ecs-svc/1111", "status": "PRIMARY", "taskDefinition": OLD_ARN}],
                "networkConfiguration": NETWORK,
                **extra,
            }
        ],
        "failures": [],
    }


def described(arn: str, *, stream_prefix: str | None = "ecs") -> dict[str, Any]:
    definition = web_task_definition(image=IMAGE)
    definition.pop("tags")
    options = definition["containerDefinitions"][0]["logConfiguration"]["options"]
    if stream_prefix:
        options["awslogs-stream-prefix"] = stream_prefix
    return {"taskDefinition": {**definition, "taskDefinitionArn": arn, "revision": int(arn.rsplit(":", 1)[1])}}


def expected_run_task(release: Release, **placement: Any) -> dict[str, Any]:
    token = before.token_for(release.release_id, "prod", NEW_ARN)
    return {
        "cluster": "prod",
        "taskDefinition": NEW_ARN,
        "count": 1,
        "overrides": {"containerOverrides": [{"name": "web", "command": COMMAND}]},
        "startedBy": f"ecs-deployer/{token}",
        "clientToken": token,
        "tags": [
            {"key": "ecs-deployer:release", "value": release.release_id},
            {"key": "ecs-deployer:stage", "value": "prod"},
            {"key": "ecs-deployer:before", "value": "migrate"},
        ],
        "networkConfiguration": NETWORK,
        **placement,
    }


def stub_up_to_run_task(stub: Stubber, svc: dict[str, Any]) -> None:
    stub.add_response("describe_services", svc, {"cluster": "prod", "services": ["web"]})
    stub.add_response(
        "describe_task_definition", {**described(OLD_ARN), "tags": []}, {"taskDefinition": OLD_ARN, "include": ["TAGS"]}
    )
    stub.add_response(
        "register_task_definition", {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}}
    )
    stub.add_response(
        "describe_task_definition", {**described(NEW_ARN), "tags": []}, {"taskDefinition": NEW_ARN, "include": ["TAGS"]}
    )


@pytest.mark.parametrize(
    ("placement", "sent"),
    [
        ({"launchType": "FARGATE", "platformVersion": "1.4.0"}, {"launchType": "FARGATE", "platformVersion": "1.4.0"}),
        (
            {"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]},
            {"capacityProviderStrategy": [{"capacityProvider": "FARGATE_SPOT", "weight": 1, "base": 0}]},
        ),
        (
            {
                "launchType": "EC2",
                "placementConstraints": [{"type": "distinctInstance"}],
                "placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}],
            },
            {
                "launchType": "EC2",
                "placementConstraints": [{"type": "distinctInstance"}],
                "placementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}],
            },
        ),
    ],
    ids=["fargate", "capacity-providers", "ec2-placement"],
)
def test_run_task_sends_the_new_revision_the_command_and_the_services_placement(
    store: ReleaseStore, placement: dict[str, Any], sent: dict[str, Any]
) -> None:
    # GIVEN a built release whose stage runs `migrate` before its service is updated
    ecs = boto3.client("ecs")
    release = built(store)
    pipeline = load_config_text(STUB_YAML).pipelines[0]
    with Stubber(ecs) as stub:
        stub_up_to_run_task(stub, service(**placement))
        stub.add_response(
            "run_task", {"tasks": [{"taskArn": TASK_ARN}], "failures": []}, expected_run_task(release, **sent)
        )
        # WHEN the stage deploys
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        # THEN exactly these calls: the revision, then RunTask; no UpdateService yet
        stub.assert_no_pending_responses()
    assert result.outcome == "before_task"
    record = release.stages["prod"]
    assert record.state is StageState.DEPLOYING
    assert record.deployment_id is None
    assert (record.before_state, record.before_task_arn, record.before_container) == ("RUNNING", TASK_ARN, "web")
    assert record.before_logs == "eu-west-1|/ecs/web|ecs"
    assert store.before_task_of(record.before_token or "") == (release.release_id, "prod")


def test_a_redelivery_after_run_task_failed_sends_the_same_client_token(store: ReleaseStore) -> None:
    # GIVEN RunTask throttled after the intent was recorded
    ecs = boto3.client("ecs")
    release = built(store)
    pipeline = load_config_text(STUB_YAML).pipelines[0]
    deployer = StageDeployer(store, ecs)
    request = expected_run_task(release, launchType="FARGATE")
    with Stubber(ecs) as stub:
        stub_up_to_run_task(stub, service(launchType="FARGATE"))
        stub.add_client_error("run_task", "ThrottlingException", "Rate exceeded", 400, expected_params=request)
        with pytest.raises(TransientError):
            deployer.deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    again = store.get(release.release_id)
    assert again is not None
    assert again.stages["prod"].before_state == "STARTING"
    # WHEN EventBridge redelivers: the revision is reused, RunTask is sent again with the same token
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service(launchType="FARGATE"))
        stub.add_response("describe_task_definition", {**described(NEW_ARN), "tags": []})
        stub.add_response("run_task", {"tasks": [{"taskArn": TASK_ARN}], "failures": []}, request)
        result = deployer.deploy(again, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    # THEN one task, recorded; nothing registered twice
    assert result.outcome == "before_task"
    assert again.stages["prod"].before_task_arn == TASK_ARN


def test_a_conflict_on_the_client_token_is_the_task_it_already_started(store: ReleaseStore) -> None:
    ecs = boto3.client("ecs")
    release = built(store)
    pipeline = load_config_text(STUB_YAML).pipelines[0]
    with Stubber(ecs) as stub:
        stub_up_to_run_task(stub, service(launchType="FARGATE"))
        stub.add_client_error(
            "run_task",
            "ConflictException",
            "The clientToken is already in use with a different RunTask request",
            400,
            modeled_fields={"resourceIds": [TASK_ARN]},
        )
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
    assert result.outcome == "before_task"
    assert release.stages["prod"].before_task_arn == TASK_ARN


def test_run_task_that_places_nothing_fails_the_release_with_ecs_reason_and_frees_the_service(
    store: ReleaseStore,
) -> None:
    ecs = boto3.client("ecs")
    release = built(store)
    pipeline = load_config_text(STUB_YAML).pipelines[0]
    with Stubber(ecs) as stub:
        stub_up_to_run_task(stub, service(launchType="EC2"))
        stub.add_response(
            "run_task",
            {
                "tasks": [],
                "failures": [{"arn": "arn:aws:ecs:eu-west-1:1:container-instance/x", "reason": "RESOURCE:MEMORY"}],
            },
        )
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
    assert result.outcome == "failed"
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert release.reason == "RunTask on prod started no task: RESOURCE:MEMORY"
    assert store.lock_of("prod", "web") is None


def test_a_container_the_revision_does_not_have_is_refused_before_any_task_runs(store: ReleaseStore) -> None:
    ecs = boto3.client("ecs")
    release = built(store)
    text = STUB_YAML.replace("before: {task: migrate,", "before: {task: migrate, container: migrator,")
    pipeline = load_config_text(text).pipelines[0]
    with Stubber(ecs) as stub:
        stub_up_to_run_task(stub, service(launchType="FARGATE"))
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()  # and no RunTask
    assert result.outcome == "invalid_config"
    assert release.state is ReleaseState.INVALID_CONFIG
    assert "before.container migrator is not a container of web:8 (web, log-router)" in (release.reason or "")


# -- the flow, against moto ---------------------------------------------------------------------------


def test_the_before_task_runs_the_new_revision_and_the_service_waits(world: World) -> None:
    # WHEN dev completed and prod is next
    release = at_prods_before_task(world)
    record = release.stages["prod"]
    # THEN a task of the new revision runs in prod's cluster, started by the deployer, with the command
    (task,) = world.deps.stages.ecs.describe_tasks(cluster="prod", tasks=[record.before_task_arn])["tasks"]
    assert task["taskDefinitionArn"] == record.task_definition_arn
    assert task["startedBy"] == before.started_by(record.before_token or "")
    assert task["overrides"]["containerOverrides"] == [{"name": "web", "command": COMMAND}]
    # ...and the service still runs its old revision: nothing deployed yet
    assert world.service("prod")["taskDefinition"] == world.account.services["prod"].task_definition_arn
    assert release.state is ReleaseState.DEPLOYING
    assert record.deployment_id is None
    # ...and the step is visible: announced as a transition (Slack, bus) with its reason
    announced = [t for t in world.transitions if t.reason and t.reason.startswith("before-task migrate running")]
    assert len(announced) == 1
    assert announced[0].stage == "prod"


def test_exit_code_0_deploys_the_stage_with_the_same_revision(world: World) -> None:
    release = at_prods_before_task(world)
    revision = release.stages["prod"].task_definition_arn
    # WHEN the task stops with exit code 0
    outcome = on_task_stopped(stopped(release, exit_code=0), world.deps)
    # THEN prod's service is updated to the revision the task ran
    assert outcome["outcome"] == "before_task_succeeded"
    assert outcome["next"] == "deploying"
    release = current(world, release.release_id)
    record = release.stages["prod"]
    assert (record.before_state, record.before_exit_code) == ("SUCCEEDED", 0)
    assert record.deployment_id
    assert world.service("prod")["taskDefinition"] == revision


def test_exit_code_1_fails_the_release_with_the_code_the_reason_and_the_log_link(world: World) -> None:
    release = at_prods_before_task(world)
    task_id = (release.stages["prod"].before_task_arn or "").rsplit("/", 1)[-1]
    old = world.service("prod")["taskDefinition"]
    # WHEN the task stops with exit code 1
    outcome = on_task_stopped(stopped(release, exit_code=1, sample="ecs_task_stopped_failed"), world.deps)
    # THEN the release ends DEPLOY_FAILED with the exit code, ECS's reason and the logs, nothing deployed
    release = current(world, release.release_id)
    assert outcome["outcome"] == "before_task_failed"
    assert outcome["exit_code"] == 1
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert release.reason == (
        "before-task migrate failed in prod: container web exited 1; ECS: Essential container in task exited "
        "(EssentialContainerExited); logs https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1"
        "#logEvent:group=/ecs/web; nothing was deployed"
    )  # the demo task definition's awslogs sets no stream prefix: the link opens its log group
    assert release.stages["prod"].state is StageState.FAILED
    assert (release.stages["prod"].before_state, release.stages["prod"].before_exit_code) == ("FAILED", 1)
    assert world.service("prod")["taskDefinition"] == old
    assert world.store.lock_of("prod", "web") is None
    assert task_id


def test_the_log_link_names_the_containers_stream_when_it_has_a_prefix() -> None:
    target = before.log_target(
        {
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {"awslogs-group": "/ecs/web", "awslogs-stream-prefix": "ecs"},
            }
        },
        "eu-west-1",
    )
    assert before.log_link(target, "web", TASK_ARN) == (
        "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=/ecs/web;"
        "stream=ecs/web/0123456789abcdef0123456789abcdef"
    )
    assert before.log_target({"logConfiguration": {"logDriver": "splunk", "options": {}}}, "eu-west-1") is None


def test_a_container_that_never_started_fails_with_ecs_reason() -> None:
    event = load_event("ecs_task_stopped_failed")
    container = event["detail"]["containers"][0]
    del container["exitCode"]
    container["reason"] = "CannotPullContainerError: pull image manifest has been retried 5 time(s)"
    event["detail"].update(stopCode="TaskFailedToStart", stoppedReason="Task failed to start")
    end = before.TaskEnd.from_event(parse_event(EcsTaskStateChangeEvent, event).detail)
    assert not end.succeeded("web")
    assert end.failure("web") == (
        "container web never exited (CannotPullContainerError: pull image manifest has been retried 5 time(s)); "
        "ECS: Task failed to start (TaskFailedToStart)"
    )


def test_only_the_named_containers_exit_code_counts() -> None:
    event = load_event("ecs_task_stopped")
    event["detail"]["containers"].append(
        {**copy.deepcopy(event["detail"]["containers"][0]), "name": "log-router", "exitCode": 1}
    )
    end = before.TaskEnd.from_event(parse_event(EcsTaskStateChangeEvent, event).detail)
    assert end.succeeded("web")
    assert not end.succeeded("log-router")


def test_a_duplicate_stopped_event_changes_nothing(world: World) -> None:
    release = at_prods_before_task(world)
    event = stopped(release, exit_code=0)
    on_task_stopped(event, world.deps)
    after_first = current(world, release.release_id)
    # WHEN EventBridge delivers the same STOPPED again
    outcome = on_task_stopped(event, world.deps)
    # THEN nothing more: no second UpdateService, the release as it was
    assert outcome["outcome"] == "duplicate"
    assert current(world, release.release_id).version == after_first.version


@pytest.mark.parametrize("foreign", ["service_task", "unknown_token", "another_task"])
def test_a_stopped_event_for_a_task_that_is_not_the_steps_is_ignored(world: World, foreign: str) -> None:
    release = at_prods_before_task(world)
    raw = json.loads(stopped(release).model_dump_json(by_alias=True))
    if foreign == "service_task":
        raw["detail"]["startedBy"] = "ecs-svc/6405940160831029548"
    elif foreign == "unknown_token":
        raw["detail"]["startedBy"] = before.started_by("0" * 32)
    else:
        other = raw["detail"]["taskArn"].rsplit("/", 1)[0] + "/ffffffffffffffffffffffffffffffff"
        raw["detail"]["taskArn"] = other
        raw["resources"] = [other]
    outcome = on_task_stopped(parse_event(EcsTaskStateChangeEvent, raw), world.deps)
    assert outcome["outcome"] == "ignored"
    assert current(world, release.release_id).version == release.version


def test_the_handler_routes_the_sample_and_ignores_it_without_a_release() -> None:
    # The real handler is fed every sample by tests/unit/test_bad_input.py; here the routing alone.
    event = parse_event(EcsTaskStateChangeEvent, load_event("ecs_task_stopped"))
    assert before.token_of(event.detail.started_by) == "b471ef09928f16e71700c34908a1b739"
    assert before.token_of("ecs-svc/6405940160831029548") is None
    assert before.token_of("ecs-deployer/not-a-token") is None


# -- lost events and the timeout: the reconciler ---------------------------------------------------------


def later(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def test_a_lost_stopped_event_is_reconciled_from_describe_tasks(world: World, tasks: Tasks) -> None:
    release = at_prods_before_task(world)
    tasks.finish(release.stages["prod"].before_task_arn or "", exit_code=0)
    # WHEN the sweep runs, the STOPPED event never having arrived
    outcomes = reconciler.reconcile(world.deps, later(20))
    # THEN the stage deploys as the event would have made it
    (outcome,) = [o for o in outcomes if o["release_id"] == release.release_id]
    assert outcome["outcome"] == "before_task_succeeded"
    release = current(world, release.release_id)
    assert release.stages["prod"].deployment_id
    assert "its event never arrived" in next(
        t.reason for t in world.transitions if t.reason and "before-task migrate succeeded" in t.reason
    )


def test_a_lost_stopped_event_of_a_failed_task_fails_the_release(world: World, tasks: Tasks) -> None:
    release = at_prods_before_task(world)
    tasks.finish(release.stages["prod"].before_task_arn or "", exit_code=3)
    (outcome,) = reconciler.reconcile(world.deps, later(20))
    assert outcome["outcome"] == "before_task_failed"
    assert outcome["exit_code"] == 3
    release = current(world, release.release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert "container web exited 3" in (release.reason or "")
    assert "its event never arrived" in (release.reason or "")
    assert world.store.lock_of("prod", "web") is None


def test_a_stopped_task_whose_event_may_still_come_is_left_alone(world: World, tasks: Tasks) -> None:
    release = at_prods_before_task(world)
    tasks.finish(release.stages["prod"].before_task_arn or "", exit_code=0)
    assert reconciler.reconcile(world.deps, later(5)) == []
    assert current(world, release.release_id).version == release.version


def test_a_task_still_running_past_its_timeout_is_stopped_and_the_release_fails(world: World) -> None:
    release = at_prods_before_task(world)
    arn = release.stages["prod"].before_task_arn
    # WHEN the sweep runs 31 minutes later (timeoutMinutes defaults to 30), the task still RUNNING
    assert reconciler.reconcile(world.deps, later(20)) == []  # within its timeout: left alone
    (outcome,) = reconciler.reconcile(world.deps, later(31))
    # THEN StopTask, DEPLOY_FAILED with the reason, nothing deployed, the service free
    assert outcome["stopped"] == arn
    (task,) = world.deps.stages.ecs.describe_tasks(cluster="prod", tasks=[arn])["tasks"]
    assert task["lastStatus"] == "STOPPED"
    release = current(world, release.release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert release.reason == (
        f"reconciler: before-task migrate did not finish within 30 minutes (timeoutMinutes): stopped task "
        f"{(arn or '').rsplit('/', 1)[-1]} (StopTask); nothing was deployed"
    )
    assert world.store.lock_of("prod", "web") is None
    # ...and the STOPPED event that StopTask causes changes nothing
    assert on_task_stopped(stopped(release, exit_code=137), world.deps)["outcome"] == "duplicate"


@pytest.mark.functional
def test_a_rollback_never_runs_the_before_task(world: World) -> None:
    release = at_prods_before_task(world, "first")
    on_task_stopped(stopped(release), world.deps)
    on_deployment(completed(world, current(world, release.release_id), "prod"), world.deps)
    second = at_prods_before_task(world, "second", time="2026-11-29T11:00:00Z")
    on_task_stopped(stopped(second), world.deps)
    on_deployment(completed(world, current(world, second.release_id), "prod"), world.deps)
    tasks_before = world.ecs.list_tasks(cluster="prod")["taskArns"]
    # WHEN prod is rolled back to the first release's revision
    outcome = request_rollback("web", "prod", {"kind": "cli", "principal": "tester"}, world.deps)
    # THEN it deploys at once, without a task
    assert outcome["outcome"] == "deploying"
    assert world.ecs.list_tasks(cluster="prod")["taskArns"] == tasks_before


# -- the schema ---------------------------------------------------------------------------------------

BASE = """
pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {project: web-app-build}
    CONTAINERS
    stages:
      - name: prod
        cluster: prod
        service: web
        BEFORE
"""


def check(before_text: str, containers: str = "container: web") -> tuple[list[str], list[str]]:
    result = check_config_text(BASE.replace("CONTAINERS", containers).replace("BEFORE", before_text))
    return result.error_messages, result.warning_messages


def test_a_valid_before_loads_with_its_defaults() -> None:
    errors, warnings = check("before: {task: migrate, command: [./manage.py, migrate]}")
    assert (errors, warnings) == ([], [])
    config = load_config_text(
        BASE.replace("CONTAINERS", "container: web").replace("BEFORE", "before: {task: migrate, command: [a]}")
    )
    stage = config.pipelines[0].stages[0]
    assert stage.before is not None
    assert stage.before.timeout_minutes == 30
    assert config.pipelines[0].before_container(stage) == "web"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("before: {task: migrate, command: []}", "before.command: empty"),
        ("before: {task: migrate, command: ./manage.py migrate}", "before.command"),
        ("before: {task: migrate, command: [./manage.py, 1]}", "before.command[1]: expected a string"),
        ('before: {task: migrate, command: [""]}', "command[0] is empty"),
        ("before: {task: migrate, command: [a], timeoutMinutes: 2}", "2 is outside 5..1440 minutes"),
        ("before: {task: migrate, command: [a], timeoutMinutes: 2000}", "2000 is outside 5..1440 minutes"),
        ("before: {task: Migrate!, command: [a]}", "before.task"),
        ("before: {command: [a]}", "before.task"),
        ("before: {task: migrate, command: [a], image: x}", "before.image"),
        ("before:", "before: empty"),
        (f"before: {{task: migrate, command: [{'x' * 8200}]}}", "above ECS's 8192"),
    ],
)
def test_bad_before_is_refused_with_a_located_message(text: str, message: str) -> None:
    errors, _ = check(text)
    assert any(message in error for error in errors), errors


def test_several_containers_need_the_one_that_runs_the_command() -> None:
    errors, _ = check("before: {task: migrate, command: [a]}", "containers: [web, worker]")
    assert any("before.container" in e and "web, worker" in e for e in errors), errors
    assert check("before: {task: migrate, container: worker, command: [a]}", "containers: [web, worker]")[0] == []


def test_a_container_the_build_does_not_replace_is_a_warning() -> None:
    errors, warnings = check("before: {task: migrate, container: migrator, command: [a]}")
    assert errors == []
    assert any("'migrator' is not a container whose image the build replaces" in w for w in warnings), warnings


# -- IAM: the roles SAM generates (tests/support/iam.py) ----------------------------------------------
# Service Authorization Reference, "Actions, resources, and condition keys for Amazon Elastic Container
# Service" (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html):
# RunTask is authorized on the task-definition resource type, StopTask and DescribeTasks on task, each
# with the condition key ecs:cluster; tags created with a resource need ecs:TagResource, which the key
# ecs:CreateAction limits to the creating call.

DEPLOYING = ("OnBuildFunction", "OnDeploymentFunction", "OnApprovalFunction")
CLUSTER = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/prod"


@pytest.mark.parametrize("function", DEPLOYING)
def test_the_deploying_functions_may_run_tag_read_and_stop_before_tasks_in_this_account(function: str) -> None:
    from tests.support.iam import allows, function_statements

    statements = function_statements(function)
    assert allows(statements, "ecs:RunTask", NEW_ARN, {"ecs:cluster": CLUSTER})
    assert allows(statements, "ecs:TagResource", TASK_ARN, {"ecs:CreateAction": "RunTask"})
    assert allows(statements, "ecs:DescribeTasks", TASK_ARN, {"ecs:cluster": CLUSTER})
    assert allows(statements, "ecs:StopTask", TASK_ARN, {"ecs:cluster": CLUSTER})
    assert allows(
        statements,
        "iam:PassRole",
        f"arn:aws:iam::{ACCOUNT}:role/web-task",
        {"iam:PassedToService": "ecs-tasks.amazonaws.com"},
    )
    # ...and nothing beyond
    other = "arn:aws:ecs:eu-west-1:210987654321:cluster/prod"
    assert not allows(statements, "ecs:RunTask", NEW_ARN, {"ecs:cluster": other})
    assert not allows(statements, "ecs:RunTask", NEW_ARN.replace(ACCOUNT, "210987654321"), {"ecs:cluster": CLUSTER})
    assert not allows(statements, "ecs:TagResource", TASK_ARN, {"ecs:CreateAction": "CreateService"})
    assert not allows(statements, "ecs:StopTask", TASK_ARN, {"ecs:cluster": other})


@pytest.mark.parametrize("function", ["OnPushFunction", "ApprovalsHttpFunction"])
def test_the_other_functions_run_no_task(function: str) -> None:
    from tests.support.iam import allows, function_statements

    statements = function_statements(function)
    assert not allows(statements, "ecs:RunTask", NEW_ARN, {"ecs:cluster": CLUSTER})
    assert not allows(statements, "ecs:StopTask", TASK_ARN, {"ecs:cluster": CLUSTER})


# -- the local stack: its ECS front answers the tasks, its simulator ends them (SIMULATED) -------------


def test_the_local_simulator_ends_the_task_and_its_event_deploys_the_stage(world: World, tasks: Tasks) -> None:
    from deployer_local.simulate import BeforeTaskSimulator

    at_prods_before_task(world)
    printed: list[str] = []
    sent: list[dict[str, Any]] = []
    simulator = BeforeTaskSimulator(tasks, sent.append, printed.append)
    # WHEN the simulator polls: the task exits 0 and its STOPPED event is sent
    (event,) = simulator.poll_once()
    assert simulator.poll_once() == []  # once
    # THEN the event is the one TaskRule lets through, and it deploys prod
    assert sent == [event]
    assert task_rule_names(event) == ["OnDeploymentFunction.TaskRule"]
    outcome = on_task_stopped(parse_event(EcsTaskStateChangeEvent, event), world.deps)
    assert outcome["next"] == "deploying"
    assert all(line.startswith("SIMULATED ECS task ") for line in printed)
    assert printed[-1].endswith("exited 0: STOPPED sent")
    assert "before-task migrate of web@" in printed[0]
    assert "command ./manage.py migrate --noinput" in printed[0]


def test_the_local_simulator_fails_the_stages_it_is_told_to(world: World, tasks: Tasks) -> None:
    from deployer_local.simulate import BeforeTaskSimulator

    release = at_prods_before_task(world)
    (event,) = BeforeTaskSimulator(tasks, lambda _: None, lambda _: None, {"prod"}).poll_once()
    outcome = on_task_stopped(parse_event(EcsTaskStateChangeEvent, event), world.deps)
    assert outcome["outcome"] == "before_task_failed"
    assert current(world, release.release_id).state is ReleaseState.DEPLOY_FAILED


@pytest.mark.parametrize(
    ("command", "failing", "code"),
    [
        (["./manage.py", "migrate"], False, 0),
        (["./manage.py", "migrate"], True, 1),
        (["sh", "-c", "exit 3"], False, 3),
        (["sh", "-c", "./manage.py migrate && exit 0"], True, 0),
        (["sh", "-c", "echo exit 3 done"], False, 0),
    ],
)
def test_the_simulated_exit_code(command: list[str], failing: bool, code: int) -> None:
    from deployer_local.simulate import simulated_exit_code

    assert simulated_exit_code(command, failing) == code


@pytest.mark.functional
def test_the_local_ecs_front_answers_run_task_and_forwards_other_tasks() -> None:
    from deployer_local.ecs_front import EcsFront, ServiceDeployments

    tasks = Tasks()
    with EcsFront("http://127.0.0.1:9", ServiceDeployments(), tasks=tasks) as front:  # nothing listens on :9
        ecs = boto3.client("ecs", endpoint_url=front.url, region_name="eu-west-1")
        request = {
            "cluster": "prod",
            "taskDefinition": NEW_ARN,
            "overrides": {"containerOverrides": [{"name": "web", "command": COMMAND}]},
            "startedBy": before.started_by("a" * 32),
            "clientToken": "a" * 32,
            "launchType": "FARGATE",
        }
        (task,) = ecs.run_task(**request)["tasks"]
        # the same clientToken and parameters: the same task; other parameters: ConflictException naming it
        assert ecs.run_task(**request)["tasks"][0]["taskArn"] == task["taskArn"]
        with pytest.raises(ecs.exceptions.ConflictException) as conflict:
            ecs.run_task(**{**request, "launchType": "EC2"})
        assert conflict.value.response["resourceIds"] == [task["taskArn"]]
        assert ecs.describe_tasks(cluster="prod", tasks=[task["taskArn"]])["tasks"][0]["lastStatus"] == "RUNNING"
        ecs.stop_task(cluster="prod", task=task["taskArn"], reason="ran past its timeout")
        (stopped_task,) = ecs.describe_tasks(cluster="prod", tasks=[task["taskArn"]])["tasks"]
        assert (stopped_task["lastStatus"], stopped_task["stopCode"]) == ("STOPPED", "UserInitiated")
        # a task the simulation does not know goes on to moto (here: nothing answers)
        with pytest.raises(Exception, match="did not answer"):
            ecs.describe_tasks(cluster="prod", tasks=["arn:aws:ecs:eu-west-1:123456789012:task/prod/unknown"])


def test_deployer_status_shows_the_before_task_and_the_log_of_a_failed_one(world: World) -> None:
    from deployer_cli.views import status

    release = at_prods_before_task(world)
    on_task_stopped(stopped(release, exit_code=1, sample="ecs_task_stopped_failed"), world.deps)
    task_id = (release.stages["prod"].before_task_arn or "").rsplit("/", 1)[-1]
    query = status.PipelineQuery("web", ("dev", "prod"), "web-app", "main")
    shown = status.render_table(status.collect(world.store, [query]), width=200)
    assert f"before    prod: migrate FAILED (exit 1), task {task_id}" in shown
    assert "task log  https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=/ecs/web" in shown
