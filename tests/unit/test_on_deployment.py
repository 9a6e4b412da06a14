"""on_deployment: ECS's deployment events promote a release stage by stage, end it on failure,
and ignore deployments the deployer did not start."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import Release, ReleaseState, StageState
from deployer_local.provision import demo_pipelines_yaml
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit


@pytest.fixture
def world(world: World) -> World:
    world.publish(demo_pipelines_yaml(world.account, prod_approval=False))
    return world


def start(world: World, label: str, *, old: str | None = None, time: str = "2026-11-29T10:00:00Z") -> str:
    push = world.push(commit_id(label), commit_id(old) if old else None, time=time)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, push), world.deps)
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(started["release_id"])), world.deps)
    return str(started["release_id"])


def ecs_event(
    world: World, release: Release, stage: str, name: str, reason: str | None = None, deployment_id: str | None = None
) -> EcsDeploymentStateChangeEvent:
    sample = {
        "SERVICE_DEPLOYMENT_COMPLETED": "ecs_deployment_completed",
        "SERVICE_DEPLOYMENT_FAILED": "ecs_deployment_failed",
        "SERVICE_DEPLOYMENT_IN_PROGRESS": "ecs_deployment_in_progress",
    }[name]
    event: dict[str, Any] = load_event(sample)
    service = world.account.services[stage]
    event["resources"] = [f"arn:aws:ecs:eu-west-1:123456789012:service/{service.cluster}/{service.service}"]
    event["detail"]["deploymentId"] = deployment_id or release.stages[stage].deployment_id
    event["detail"]["updatedAt"] = datetime.now(UTC).isoformat()
    if reason is not None:
        event["detail"]["reason"] = reason
    return parse_event(EcsDeploymentStateChangeEvent, event)


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def test_completed_deploys_the_next_stage_and_the_last_completion_releases(world: World) -> None:
    # GIVEN a release deploying dev
    release_id = start(world, "promote")
    # WHEN ECS reports dev completed
    outcome = on_deployment(
        ecs_event(world, current(world, release_id), "dev", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps
    )
    # THEN dev is DEPLOYED and prod is deploying the same image
    release = current(world, release_id)
    assert outcome["outcome"] == "deployed"
    assert outcome["next"]["outcome"] == "deploying"
    assert release.stages["dev"].state is StageState.DEPLOYED
    assert release.state is ReleaseState.DEPLOYING
    assert release.stage == "prod"
    prod = world.service("prod")
    assert prod["taskDefinition"] == release.stages["prod"].task_definition_arn
    assert world.store.lock_of("dev", "web") is None
    # WHEN prod completes THEN the release is RELEASED
    on_deployment(ecs_event(world, release, "prod", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    assert current(world, release_id).state is ReleaseState.RELEASED
    assert world.store.lock_of("prod", "web") is None


def test_a_completed_event_delivered_twice_promotes_once(world: World) -> None:
    release_id = start(world, "twice")
    event = ecs_event(world, current(world, release_id), "dev", "SERVICE_DEPLOYMENT_COMPLETED")
    on_deployment(event, world.deps)
    revisions = world.revisions()
    again = on_deployment(event, world.deps)
    assert again["outcome"] == "duplicate"
    assert world.revisions() == revisions


def test_failed_ends_the_release_with_the_reason_and_whether_ecs_rolls_back(world: World) -> None:
    # GIVEN a release deploying dev
    release_id = start(world, "fail")
    release = current(world, release_id)
    # WHEN ECS starts rolling back (an event naming the rollback's own deployment), then reports failure
    rolling = on_deployment(
        ecs_event(
            world,
            release,
            "dev",
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            reason="ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/1.",
            deployment_id="ecs-svc/999",
        ),
        world.deps,
    )
    failed = on_deployment(
        ecs_event(world, release, "dev", "SERVICE_DEPLOYMENT_FAILED", reason="tasks failed to start."), world.deps
    )
    # THEN the release is DEPLOY_FAILED, says why, and that ECS rolled back; the service is free
    release = current(world, release_id)
    assert rolling["outcome"] == "rolling_back"
    assert failed["outcome"] == "failed"
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert "tasks failed to start" in (release.reason or "")
    assert "rolling the service back" in (release.reason or "")
    assert release.stages["dev"].rolled_back is True
    assert release.stages["dev"].state is StageState.FAILED
    assert world.store.lock_of("dev", "web") is None


def test_failed_without_a_rollback_says_so(world: World) -> None:
    release_id = start(world, "fail-no-rollback")
    on_deployment(
        ecs_event(world, current(world, release_id), "dev", "SERVICE_DEPLOYMENT_FAILED", reason="alarm"), world.deps
    )
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert release.stages["dev"].rolled_back is False
    assert "rolling" not in (release.reason or "")


def test_deployments_the_deployer_did_not_start_are_ignored(world: World) -> None:
    release_id = start(world, "foreign")
    outcome = on_deployment(
        ecs_event(world, current(world, release_id), "dev", "SERVICE_DEPLOYMENT_COMPLETED", deployment_id="ecs-svc/42"),
        world.deps,
    )
    assert outcome["outcome"] == "ignored"
    assert "not started by the deployer" in outcome["reason"]
    assert current(world, release_id).state is ReleaseState.DEPLOYING


def test_completion_hands_the_service_to_the_queued_newer_release(world: World) -> None:
    # GIVEN A deploying dev and a newer C queued behind it
    a = start(world, "A", time="2026-11-29T10:00:00Z")
    c = start(world, "C", old="A", time="2026-11-29T10:05:00Z")
    assert current(world, c).stages["dev"].state is StageState.QUEUED
    # WHEN A's dev deployment completes
    outcome = on_deployment(ecs_event(world, current(world, a), "dev", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    # THEN C deploys dev, and A goes on to prod
    assert outcome["handed_over_to"] == c
    newer = current(world, c)
    assert newer.stages["dev"].state is StageState.DEPLOYING
    assert world.service("dev")["taskDefinition"] == newer.stages["dev"].task_definition_arn
    assert current(world, a).stage == "prod"


def test_an_older_release_never_deploys_a_stage_a_newer_one_reached(world: World) -> None:
    # GIVEN newer C already deployed to prod while older A still finishes dev
    a = start(world, "A2", time="2026-11-29T10:00:00Z")
    c = start(world, "C2", old="A2", time="2026-11-29T10:05:00Z")
    release_a = current(world, a)
    world.store.enter_stage(current(world, c), "prod")
    # WHEN A's dev completes
    outcome = on_deployment(ecs_event(world, release_a, "dev", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    # THEN A is SUPERSEDED instead of deploying prod
    assert outcome["next"]["outcome"] == "superseded"
    assert current(world, a).state is ReleaseState.SUPERSEDED
    assert world.service("prod")["taskDefinition"] == world.account.services["prod"].task_definition_arn
