"""The reconciler (the 15-minute sweep): releases whose build or deployment event was lost end in a
known state, with the reason, and free their service.

The in-memory AWS keeps the account (the `world` fixture); CodeBuild's BatchGetBuilds is answered by
botocore's Stubber and the ECS service-deployment calls by `tests.support.ecs_stub`, both checked
against botocore's models. The AWS facts:
- EventBridge User Guide, "Event delivery from AWS services"
  (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-service-event-delivery-level.html):
  "Best effort delivery means that the service attempts to send all events to EventBridge, but in
  some rare cases an event might not be delivered." (CodeBuild and CodeCommit: best effort.)
- CodeBuild API Reference, "Build"
  (https://docs.aws.amazon.com/codebuild/latest/APIReference/API_Build.html): buildStatus "FAILED |
  FAULT | IN_PROGRESS | STOPPED | SUCCEEDED | TIMED_OUT"; timeoutInMinutes "How long, in minutes,
  from 5 to 2160 (36 hours), for CodeBuild to wait before timing out this build if it does not get
  marked as completed." BatchGetBuilds' buildsNotFound: "The IDs of builds for which information
  could not be found."
- ECS Developer Guide, "View service history using Amazon ECS service deployments"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-deployment.html): ongoing
  states IN_PROGRESS, STOP_REQUESTED, ROLLBACK_REQUESTED, ROLLBACK_IN_PROGRESS; completed states
  SUCCESSFUL, STOPPED, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED. ECS API Reference,
  ListServiceDeployments (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListServiceDeployments.html):
  "This operation lists all the service deployments that meet the specified filter criteria"
  (`createdAt` {before, after}).
- ECS Developer Guide, "Stopping Amazon ECS service deployments"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stop-service-deployment.html): "You
  can manually stop a deployment when a failing deployment was not detected by the circuit breaker
  or CloudWatch alarms" ... "Rollback - This option rolls back the service deployment to the
  previous service revision."
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.parsers import create_parser
from botocore.stub import Stubber

from deployer import reconciler, runtime
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import Release, ReleaseState, StageRecord, StageState
from deployer_local import template
from deployer_local.ecs_front import (
    JSON_CONTENT_TYPE,
    SIMULATED_OPERATIONS,
    EcsApiError,
    RevisionRecord,
    ServiceDeploymentRecord,
    ServiceDeployments,
    service_revision_arn,
)
from deployer_local.ecs_front import service_deployment_arn as local_service_deployment_arn
from deployer_local.provision import push_demo_image
from tests.support.ecs_stub import ServiceDeploymentCalls
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

REGION = "eu-west-1"
ACCOUNT = "123456789012"


def pipelines_yaml(world: World, *, dev_extra: str = "") -> str:
    """dev without a circuit breaker (ECS never sends SERVICE_DEPLOYMENT_FAILED for it), then prod."""
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
        f"{dev_extra}"
        "      - name: prod\n"
        f"        cluster: {prod.cluster}\n"
        f"        service: {prod.service}\n"
        "        rollout: {minimumHealthyPercent: 50, maximumPercent: 150}\n"
    )


@pytest.fixture
def world(world: World) -> World:
    world.publish(pipelines_yaml(world))
    return world


@pytest.fixture
def ecs_calls(world: World) -> Iterator[ServiceDeploymentCalls]:
    calls = ServiceDeploymentCalls(world.deps.stages.ecs)
    yield calls
    calls.assert_done()


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def pushed(world: World, label: str, *, time: str = "2026-11-29T10:00:00Z") -> Release:
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, world.push(commit_id(label), time=time)), world.deps)
    return current(world, str(started["release_id"]))


def deploying_dev(world: World, label: str, *, time: str = "2026-11-29T10:00:00Z") -> Release:
    release = pushed(world, label, time=time)
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release.release_id)), world.deps)
    return current(world, release.release_id)


def later(minutes: float) -> datetime:
    return datetime.now(UTC) + timedelta(minutes=minutes)


def dev_revisions(world: World) -> list[str]:
    return list(world.revisions("web"))


# -- builds whose event was lost ------------------------------------------------------------------


def build_answer(release: Release, status: str, *, ended: datetime | None, image: str | None) -> dict[str, Any]:
    build: dict[str, Any] = {
        "id": release.build_id,
        "arn": release.build_arn,
        "buildStatus": status,
        "startTime": datetime.now(UTC) - timedelta(minutes=5),
        "timeoutInMinutes": 60,
        "queuedTimeoutInMinutes": 480,
        "logs": {"deepLink": "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:group=b"},
    }
    if ended is not None:
        build["endTime"] = ended
    if image is not None:
        build["exportedEnvironmentVariables"] = [{"name": "IMAGE_URI", "value": image}]
    return {"builds": [build]}


def pinned_image(world: World, release: Release) -> str:
    uri, digest = push_demo_image(world.session, world.account.repository, release.short_commit)
    return f"{uri.rsplit(':', 1)[0]}@{digest}"


def test_a_build_that_succeeded_without_its_event_deploys_the_first_stage_once(world: World) -> None:
    # GIVEN a release BUILDING whose build CodeBuild reports SUCCEEDED, and no build event
    release = pushed(world, "lost-build")
    image = pinned_image(world, release)
    before = dev_revisions(world)
    # WHEN the sweep runs 20 minutes later
    with Stubber(world.deps.codebuild) as codebuild:
        codebuild.add_response(
            "batch_get_builds",
            build_answer(release, "SUCCEEDED", ended=datetime.now(UTC), image=image),
            {"ids": [release.build_id]},
        )
        outcomes = reconciler.reconcile(world.deps, later(20))
        codebuild.assert_no_pending_responses()
    # THEN the release is BUILT with the image, then deploying dev, as the event would have done
    (outcome,) = outcomes
    assert outcome["outcome"] == "built"
    release = current(world, release.release_id)
    assert release.state is ReleaseState.DEPLOYING
    assert release.stage == "dev"
    assert release.image_uri == image
    built = next(t for t in world.transitions if t.to_state is ReleaseState.BUILT)
    assert built.reason is not None
    assert built.reason.startswith(f"reconciler: image {image} (CodeBuild reports SUCCEEDED")
    assert built.reason.endswith("its event never arrived)")
    assert len(dev_revisions(world)) == len(before) + 1
    # AND the build's event, arriving late, does nothing twice
    late = on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release.release_id)), world.deps)
    assert late["outcome"] == "duplicate"
    assert len(dev_revisions(world)) == len(before) + 1
    assert current(world, release.release_id).version == release.version


@pytest.mark.parametrize("status", ["FAILED", "FAULT", "STOPPED", "TIMED_OUT"])
def test_a_build_that_failed_without_its_event_ends_build_failed_with_the_status(world: World, status: str) -> None:
    release = pushed(world, f"lost-{status}")
    with Stubber(world.deps.codebuild) as codebuild:
        codebuild.add_response(
            "batch_get_builds",
            build_answer(release, status, ended=datetime.now(UTC), image=None),
            {"ids": [release.build_id]},
        )
        reconciler.reconcile(world.deps, later(20))
    release = current(world, release.release_id)
    assert release.state is ReleaseState.BUILD_FAILED
    assert release.reason is not None
    assert release.reason.startswith(f"reconciler: build {status}: logs https://")
    assert f"CodeBuild reports {status}" in release.reason


def test_a_build_codebuild_does_not_know_ends_build_failed_build_not_found(world: World) -> None:
    release = pushed(world, "unknown-build")
    with Stubber(world.deps.codebuild) as codebuild:
        codebuild.add_response(
            "batch_get_builds", {"builds": [], "buildsNotFound": [release.build_id]}, {"ids": [release.build_id]}
        )
        reconciler.reconcile(world.deps, later(20))
    release = current(world, release.release_id)
    assert release.state is ReleaseState.BUILD_FAILED
    assert (release.reason or "").startswith("reconciler: build not found")


@pytest.mark.parametrize(
    ("status", "ended_minutes_ago"),
    [("IN_PROGRESS", None), ("SUCCEEDED", 2)],
    ids=["still-building", "finished-moments-ago"],
)
def test_a_build_still_running_or_whose_event_may_still_come_is_left_alone(
    world: World, status: str, ended_minutes_ago: int | None
) -> None:
    release = pushed(world, f"left-{status}")
    now = later(20)
    ended = now - timedelta(minutes=ended_minutes_ago) if ended_minutes_ago is not None else None
    with Stubber(world.deps.codebuild) as codebuild:
        codebuild.add_response(
            "batch_get_builds", build_answer(release, status, ended=ended, image=None), {"ids": [release.build_id]}
        )
        assert reconciler.reconcile(world.deps, now) == []
    assert current(world, release.release_id).state is ReleaseState.BUILDING
    assert current(world, release.release_id).version == release.version


def test_a_release_not_yet_past_the_grace_costs_no_aws_call(world: World) -> None:
    # GIVEN a build just started WHEN the sweep runs now THEN CodeBuild is not even asked
    release = pushed(world, "fresh")
    with Stubber(world.deps.codebuild):  # no response queued: any call would fail
        assert reconciler.reconcile(world.deps, later(1)) == []
    assert current(world, release.release_id).state is ReleaseState.BUILDING


# -- deployments whose event was lost -------------------------------------------------------------


def service_deployment_arn(cluster: str, service: str, suffix: str = "r9i43YFjvgF") -> str:
    return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{cluster}/{service}/{suffix}"


def expect_deployment(
    calls: ServiceDeploymentCalls,
    release: Release,
    stage: str,
    status: str,
    *,
    finished: datetime | None = None,
    hooks: list[dict[str, Any]] | None = None,
    reason: str | None = None,
) -> str:
    """ECS lists the stage's service deployment (created after the stage started) and describes it."""
    record = release.stages[stage]
    arn = service_deployment_arn(record.cluster, record.service)
    started = datetime.fromisoformat(record.started_at)
    calls.add(
        "ListServiceDeployments",
        {
            "cluster": record.cluster,
            "service": record.service,
            "createdAt": {"after": started - timedelta(seconds=5)},
            "maxResults": 100,
        },
        {"serviceDeployments": [{"serviceDeploymentArn": arn, "status": status, "createdAt": started}]},
    )
    described: dict[str, Any] = {"serviceDeploymentArn": arn, "status": status, "createdAt": started}
    if finished is not None:
        described["finishedAt"] = finished
    if hooks is not None:
        described["lifecycleHookDetails"] = hooks
    if reason is not None:
        described["statusReason"] = reason
    calls.add("DescribeServiceDeployments", {"serviceDeploymentArns": [arn]}, {"serviceDeployments": [described]})
    return arn


def completed_event(release: Release, stage: str) -> EcsDeploymentStateChangeEvent:
    event: dict[str, Any] = load_event("ecs_deployment_completed")
    record = release.stages[stage]
    event["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{record.cluster}/{record.service}"]
    event["detail"]["deploymentId"] = record.deployment_id
    event["detail"]["updatedAt"] = datetime.now(UTC).isoformat()
    return parse_event(EcsDeploymentStateChangeEvent, event)


def test_a_deployment_that_completed_without_its_event_is_promoted_once(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN dev deploying, and ECS reporting its service deployment SUCCESSFUL 15 minutes ago
    release = deploying_dev(world, "lost-completed")
    expect_deployment(ecs_calls, release, "dev", "SUCCESSFUL", finished=datetime.now(UTC))
    # WHEN the sweep runs
    (outcome,) = reconciler.reconcile(world.deps, later(25))
    # THEN dev is DEPLOYED as a COMPLETED event would have made it, and prod deploys next
    assert outcome["outcome"] == "deployed"
    promoted = current(world, release.release_id)
    assert promoted.stages["dev"].state is StageState.DEPLOYED
    assert promoted.state is ReleaseState.DEPLOYING
    assert promoted.stage == "prod"
    deployed = next(t for t in world.transitions if t.to_state is ReleaseState.DEPLOYED)
    assert (deployed.reason or "").startswith("reconciler: dev runs web:")
    assert "its COMPLETED event never arrived" in (deployed.reason or "")
    assert world.store.lock_of(promoted.stages["dev"].cluster, promoted.stages["dev"].service) is None
    # AND the COMPLETED event, arriving late, does nothing twice
    late = on_deployment(completed_event(release, "dev"), world.deps)
    assert late["outcome"] == "duplicate"
    assert current(world, release.release_id).version == promoted.version


def test_two_overlapping_sweeps_promote_once(world: World, ecs_calls: ServiceDeploymentCalls) -> None:
    # GIVEN two sweeps that both read the in-flight releases before either acts
    release = deploying_dev(world, "overlap")
    seen_by_second = world.store.inflight_releases("web")
    expect_deployment(ecs_calls, release, "dev", "SUCCESSFUL", finished=datetime.now(UTC))
    expect_deployment(ecs_calls, release, "dev", "SUCCESSFUL", finished=datetime.now(UTC))
    first = reconciler.reconcile(world.deps, later(25))
    revisions = dev_revisions(world)
    world.store.inflight_releases = lambda pipeline: seen_by_second  # type: ignore[method-assign]
    # WHEN the second acts on what it read
    second = reconciler.reconcile(world.deps, later(25))
    # THEN the first promoted, the second found the release moved on: one DEPLOYED, one prod revision
    assert [o["outcome"] for o in first] == ["deployed"]
    assert [o["outcome"] for o in second] == ["moved_on"]
    assert [t.to_state for t in world.transitions].count(ReleaseState.DEPLOYED) == 1
    assert dev_revisions(world) == revisions


@pytest.mark.parametrize(
    ("status", "rolled_back", "said"),
    [
        ("ROLLBACK_SUCCESSFUL", True, "ECS rolled the service back"),
        ("ROLLBACK_FAILED", False, "ended ROLLBACK_FAILED"),
        ("STOPPED", False, "ended STOPPED"),
    ],
)
def test_a_deployment_that_ended_badly_without_its_event_ends_deploy_failed(
    world: World, ecs_calls: ServiceDeploymentCalls, status: str, rolled_back: bool, said: str
) -> None:
    release = deploying_dev(world, f"ended-{status}")
    expect_deployment(ecs_calls, release, "dev", status, finished=datetime.now(UTC), reason="tasks failed to start")
    reconciler.reconcile(world.deps, later(25))
    release = current(world, release.release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert (release.reason or "").startswith(f"reconciler: ECS deployment {release.stages['dev'].deployment_id}")
    assert said in (release.reason or "")
    assert "tasks failed to start" in (release.reason or "")
    assert release.stages["dev"].rolled_back is rolled_back
    assert world.store.lock_of(release.stages["dev"].cluster, release.stages["dev"].service) is None


def test_a_deployment_without_breaker_that_never_finishes_is_stopped_and_the_waiter_deploys(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN dev deploying A (no circuit breaker: ECS would never send FAILED) and B queued behind it
    stuck = deploying_dev(world, "stuck", time="2026-11-29T10:00:00Z")
    waiter = deploying_dev(world, "waiter", time="2026-11-29T10:05:00Z")
    assert waiter.stages["dev"].state is StageState.QUEUED
    arn = expect_deployment(ecs_calls, stuck, "dev", "IN_PROGRESS")
    ecs_calls.add("StopServiceDeployment", {"serviceDeploymentArn": arn, "stopType": "ROLLBACK"}, {})
    # WHEN the sweep runs past the rolling default deadline (60 minutes)
    outcomes = reconciler.reconcile(world.deps, later(75))
    # THEN A is stopped with a rollback and ends DEPLOY_FAILED with the reason
    stuck = current(world, stuck.release_id)
    assert stuck.state is ReleaseState.DEPLOY_FAILED
    assert (stuck.reason or "").startswith("reconciler: no completion within 60 minutes; rolled back")
    assert stuck.stages["dev"].rolled_back is True
    assert stuck.stages["dev"].state is StageState.FAILED
    assert outcomes[0]["stopped"] == arn
    # AND the service's lock went to B, which deploys now
    waiter = current(world, waiter.release_id)
    assert outcomes[0]["handed_over_to"] == waiter.release_id
    assert waiter.stages["dev"].state is StageState.DEPLOYING
    assert waiter.stages["dev"].deployment_id
    dev = world.account.services["dev"]
    assert (world.store.lock_of(dev.cluster, dev.service) or {}).get("holder") == waiter.release_id


def test_a_deployment_before_its_deadline_is_left_alone(world: World, ecs_calls: ServiceDeploymentCalls) -> None:
    release = deploying_dev(world, "on-time")
    expect_deployment(ecs_calls, release, "dev", "IN_PROGRESS")
    assert reconciler.reconcile(world.deps, later(45)) == []
    assert current(world, release.release_id).version == release.version
    assert "StopServiceDeployment" not in ecs_calls.names()


def test_the_stages_own_deadline_applies(world: World, ecs_calls: ServiceDeploymentCalls) -> None:
    world.publish(pipelines_yaml(world, dev_extra="        deadlineMinutes: 20\n"))
    release = deploying_dev(world, "short-deadline")
    arn = expect_deployment(ecs_calls, release, "dev", "IN_PROGRESS")
    ecs_calls.add("StopServiceDeployment", {"serviceDeploymentArn": arn, "stopType": "ROLLBACK"}, {})
    reconciler.reconcile(world.deps, later(25))
    release = current(world, release.release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert (release.reason or "").startswith("reconciler: no completion within 20 minutes; rolled back")


def test_time_spent_waiting_for_an_approval_never_counts_against_the_deadline(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN dev's deployment started 3 hours ago, paused for an approval, and continued just now
    release = deploying_dev(world, "approved-late")
    record = release.stages["dev"]
    three_hours_ago = (datetime.now(UTC) - timedelta(hours=3)).isoformat()
    paused = StageRecord(**{**record.__dict__, "started_at": three_hours_ago})
    world.store.transition(release, ReleaseState.AWAITING_APPROVAL, reason="paused", stages={"dev": paused})
    world.store.transition(release, ReleaseState.DEPLOYING, reason="approved: ECS continues")
    expect_deployment(ecs_calls, current(world, release.release_id), "dev", "IN_PROGRESS")
    # WHEN the sweep runs 45 minutes after the approval (60-minute deadline)
    assert reconciler.reconcile(world.deps, later(45)) == []
    # THEN the deployment goes on: the clock restarted when it was continued
    assert "StopServiceDeployment" not in ecs_calls.names()
    assert current(world, release.release_id).state is ReleaseState.DEPLOYING


def test_a_deployment_paused_at_a_hook_is_not_stuck(world: World, ecs_calls: ServiceDeploymentCalls) -> None:
    # GIVEN dev paused at a PAUSE hook someone added (its timeout governs it) long past the deadline
    release = deploying_dev(world, "paused")
    hook = {
        "hookId": "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw",
        "targetType": "PAUSE",
        "status": "AWAITING_ACTION",
        "expiresAt": later(600),
        "timeoutAction": "ROLLBACK",
    }
    expect_deployment(ecs_calls, release, "dev", "IN_PROGRESS", hooks=[hook])
    # WHEN the sweep runs THEN nothing is stopped and nothing changes
    assert reconciler.reconcile(world.deps, later(300)) == []
    assert "StopServiceDeployment" not in ecs_calls.names()
    assert current(world, release.release_id).version == release.version


def test_a_stage_paused_between_stages_resumes(world: World, ecs_calls: ServiceDeploymentCalls) -> None:
    # GIVEN dev DEPLOYED whose next step never started (the invocation died, its retries ran out)
    release = deploying_dev(world, "between")
    record = release.stages["dev"]
    done = StageRecord(**{**record.__dict__, "state": StageState.DEPLOYED, "finished_at": record.started_at})
    world.store.transition(release, ReleaseState.DEPLOYED, stage="dev", reason="dev runs", stages={"dev": done})
    world.store.release_service(record.cluster, record.service, release.release_id)
    # WHEN the sweep runs THEN prod deploys
    (outcome,) = reconciler.reconcile(world.deps, later(20))
    assert outcome["outcome"] == "resumed"
    resumed = current(world, release.release_id)
    assert resumed.state is ReleaseState.DEPLOYING
    assert resumed.stage == "prod"
    assert ecs_calls.calls == []


# -- the index, and releases written before it ------------------------------------------------------


def test_in_flight_releases_are_read_through_the_pending_index_and_old_ones_are_backfilled(world: World) -> None:
    # GIVEN a release deploying, written before the INFLIGHT# entry existed
    release = deploying_dev(world, "old-item")
    assert [r.release_id for r in world.store.inflight_releases("web")] == [release.release_id]
    world.table.update_item(
        Key={"pk": f"RELEASE#{release.release_id}", "sk": "META"}, UpdateExpression="REMOVE pending_pk"
    )
    assert world.store.inflight_releases("web") == []
    # WHEN the one-off backfill runs (twice: the second finds nothing left)
    assert reconciler.backfill(world.deps) == {"web": [release.release_id]}
    assert reconciler.backfill(world.deps) == {"web": []}
    # THEN the reconciler finds it again, unchanged
    assert [r.release_id for r in world.store.inflight_releases("web")] == [release.release_id]
    assert current(world, release.release_id).version == release.version


def test_finished_releases_leave_the_index(world: World, ecs_calls: ServiceDeploymentCalls) -> None:
    release = deploying_dev(world, "leaves")
    expect_deployment(ecs_calls, release, "dev", "ROLLBACK_SUCCESSFUL", finished=datetime.now(UTC))
    reconciler.reconcile(world.deps, later(25))
    assert world.store.inflight_releases("web") == []
    assert world.store.building_releases("web") == []


# -- the schedule ---------------------------------------------------------------------------------


@dataclass
class LambdaContext:
    function_name: str = "ecs-deployer-test-on-approval"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:ecs-deployer-test-on-approval"
    aws_request_id: str = "5d3c6e1b-reconcile"


def on_approval_handler() -> ModuleType:
    path = Path(__file__).resolve().parents[2] / "functions" / "on_approval" / "app.py"
    spec = importlib.util.spec_from_file_location("reconciler_on_approval_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.functional  # the handler builds its own clients (runtime.deps): moto answers them
def test_the_schedule_runs_the_expiry_and_the_reconciler(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN OnApprovalFunction with the schedule's input from template.yaml
    for name, value in world.names.env().items():
        monkeypatch.setenv(name, value)
    runtime.settings.cache_clear()
    runtime.deps.cache_clear()
    sweep = template.resources("AWS::Serverless::Function")["OnApprovalFunction"]["Events"]["ExpirySweep"]
    schedule_input = json.loads(sweep["Properties"]["Input"])
    handler = on_approval_handler()
    seen: list[Any] = []
    monkeypatch.setattr(reconciler, "reconcile", lambda deps: seen.append(deps) or [{"outcome": "deployed"}])
    try:
        # WHEN the schedule fires
        answer = handler.lambda_handler(schedule_input, LambdaContext())
    finally:
        runtime.settings.cache_clear()
        runtime.deps.cache_clear()
    # THEN approvals are expired and the reconciler runs, in one invocation
    assert schedule_input == {"sweep": "reconcile"}
    assert answer == {"expired": [], "reconciled": [{"outcome": "deployed"}]}
    assert len(seen) == 1


def test_the_sweep_may_read_the_builds_of_the_projects_it_may_start() -> None:
    functions = template.resources("AWS::Serverless::Function")

    def statements(function: str) -> list[dict[str, Any]]:
        return [
            statement
            for policy in functions[function]["Policies"]
            if isinstance(policy, dict) and "Statement" in policy
            for statement in policy["Statement"]
        ]

    (start,) = [s for s in statements("OnPushFunction") if s["Action"] == "codebuild:StartBuild"]
    (read,) = [s for s in statements("OnApprovalFunction") if s["Action"] == "codebuild:BatchGetBuilds"]
    assert read["Resource"] == start["Resource"]
    assert read["Effect"] == "Allow"


# -- the local stack's simulated ECS ----------------------------------------------------------------


def answered_by_the_local_front(client: Any, deployments: ServiceDeployments) -> None:
    """The service-deployment calls of `client` answered by the local stack's simulated ECS
    (`deployer_local.ecs_front.ServiceDeployments`) from the JSON botocore serialized, and the JSON
    answer parsed by botocore's own JSON parser, as the local stack's front does over HTTP."""
    parser = create_parser("json")

    def call(model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        try:
            status, body = 200, deployments.answer(model.name, json.loads(params["body"] or b"{}"))
        except EcsApiError as exc:
            status, body = exc.status, exc.body()
        headers = {"Content-Type": JSON_CONTENT_TYPE}
        raw = {"body": json.dumps(body).encode(), "headers": headers, "status_code": status}
        return AWSResponse("https://ecs.local", status, headers, None), parser.parse(raw, model.output_shape)

    for operation in SIMULATED_OPERATIONS:
        client.meta.events.register_first(f"before-call.ecs.{operation}", call)


def simulated(world: World, release: Release, stage: str, status: str) -> ServiceDeploymentRecord:
    record = release.stages[stage]
    service_arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{record.cluster}/{record.service}"
    created = datetime.fromisoformat(record.started_at) + timedelta(seconds=1)
    return ServiceDeploymentRecord(
        arn=local_service_deployment_arn(service_arn),
        service_arn=service_arn,
        cluster_arn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{record.cluster}",
        deployment_id=record.deployment_id or "",
        configuration={"minimumHealthyPercent": 100, "maximumPercent": 200},
        target=RevisionRecord(service_revision_arn(service_arn), 2),
        created_at=created,
        status=status,
        started_at=created,
        finished_at=created + timedelta(minutes=2) if status == "SUCCESSFUL" else None,
    )


def test_the_reconciler_works_against_the_local_stacks_simulated_ecs(world: World) -> None:
    # GIVEN dev deploying with a 30-minute deadline, and the local stack's simulated ECS holding its
    # service deployment still IN_PROGRESS (no breaker: no event will ever come)
    deployments = ServiceDeployments()
    answered_by_the_local_front(world.deps.stages.ecs, deployments)
    stuck = deploying_dev(world, "local-stuck")
    world.publish(
        pipelines_yaml(world).replace("      - name: dev\n", "      - name: dev\n        deadlineMinutes: 30\n")
    )
    dev = deployments.add(simulated(world, stuck, "dev", "IN_PROGRESS"))
    # WHEN the sweep runs past dev's deadline
    (outcome,) = reconciler.reconcile(world.deps, later(45))
    # THEN the simulator was asked to roll dev back, and the release says why
    assert outcome["stopped"] == dev.arn
    assert dev.status == "ROLLBACK_REQUESTED"
    request = deployments.take_request(dev)
    assert request is not None
    assert request.action == "ROLLBACK"
    ended = current(world, stuck.release_id)
    assert ended.state is ReleaseState.DEPLOY_FAILED
    assert (ended.reason or "").startswith("reconciler: no completion within 30 minutes; rolled back")
