"""The simulated CodeBuild build and ECS rollout: they find what the deployer started in moto and
emit the events AWS would send, shaped like the samples in events/, which the flow then takes
as it takes the real ones."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from deployer.events.codebuild import CODEBUILD_STATE_CHANGE, CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.ecs import ECS_DEPLOYMENT_STATE_CHANGE, EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.build import on_build
from deployer.flow.common import ENV_COMMIT, ENV_PIPELINE, ENV_RELEASE_ID
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import Release, ReleaseState, StageState
from deployer_local.simulate import (
    CodeBuildSimulator,
    EcsRolloutSimulator,
    Simulators,
    codebuild_time,
    deployment_lookup_from_store,
    for_local_stack,
    release_lookup_from_store,
)
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.functional  # the local stack's simulators, on moto's account


class Delivery:
    """Stands in for the local router: every emitted event goes to its function, as EventBridge
    would deliver it; what each returned is kept."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.events: list[dict[str, Any]] = []
        self.outcomes: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)
        if event["detail-type"] == CODEBUILD_STATE_CHANGE:
            self.outcomes.append(on_build(parse_event(CodeBuildStateChangeEvent, event), self.world.deps))
        elif event["detail-type"] == ECS_DEPLOYMENT_STATE_CHANGE:
            self.outcomes.append(on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), self.world.deps))


@pytest.fixture
def delivery(world: World) -> Delivery:
    return Delivery(world)


@pytest.fixture
def printed() -> list[str]:
    return []


def builds(world: World, delivery: Delivery, printed: list[str], **kwargs: Any) -> CodeBuildSimulator:
    return CodeBuildSimulator(
        boto3.session.Session(),
        delivery,
        printed.append,
        release_lookup=release_lookup_from_store(world.store),
        **kwargs,
    )


def rollouts(world: World, delivery: Delivery, printed: list[str], **kwargs: Any) -> EcsRolloutSimulator:
    lookup = deployment_lookup_from_store(world.store)
    simulator = EcsRolloutSimulator(boto3.client("ecs"), lookup, delivery, printed.append, **kwargs)
    simulator.watch_pipelines(world.config_store.load())
    return simulator


def push(world: World, label: str, old: str | None = None, *, time: str = "2026-11-29T10:00:00Z") -> str:
    event = world.push(commit_id(label), commit_id(old) if old else None, time=time)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    assert started["outcome"] == "build_started", started
    return str(started["release_id"])


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def shape(value: Any) -> Any:
    """The keys of a JSON value, recursively (lists by their first element)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value and isinstance(value[0], dict) else []
    return type(value).__name__


# -- CodeBuild ---------------------------------------------------------------------------------


def test_a_started_build_becomes_the_succeeded_event_of_the_sample_with_an_image_pinned_by_digest(
    world: World, delivery: Delivery, printed: list[str]
) -> None:
    # GIVEN a push whose build the deployer started (moto keeps no environment overrides)
    release_id = push(world, "build-ok")
    release = current(world, release_id)
    # WHEN the simulator polls
    (event,) = builds(world, delivery, printed).poll_once()
    # THEN it emitted one event shaped exactly like events/build_succeeded.json
    sample = load_event("build_succeeded")
    assert shape(event) == shape(sample)
    detail = event["detail"]
    assert detail["build-status"] == "SUCCEEDED"
    assert detail["build-id"] == release.build_arn == event["resources"][0]
    assert detail["project-name"] == world.account.build_project
    assert event["id"] != sample["id"]
    # AND the deployer's variables are the ones it passed to StartBuild, rebuilt from its records
    parsed = parse_event(CodeBuildStateChangeEvent, event)
    assert parsed.env_override(ENV_RELEASE_ID) == release_id
    assert parsed.env_override(ENV_COMMIT) == release.commit
    assert parsed.env_override(ENV_PIPELINE) == "web"
    # AND IMAGE_URI is pinned by the digest of an image pushed to ECR under the commit's first 12 chars
    image = parsed.exported("IMAGE_URI") or ""
    repository_uri, digest = image.split("@")
    assert repository_uri == world.account.ecr_repository_uri
    described = boto3.client("ecr").describe_images(
        repositoryName=world.account.repository, imageIds=[{"imageTag": release.commit[:12]}]
    )
    assert described["imageDetails"][0]["imageDigest"] == digest
    # AND the flow took it as a real one: dev is deploying that image
    assert delivery.outcomes[0]["outcome"] == "deploying"
    assert current(world, release_id).image_uri == image
    # AND it said so, labelled SIMULATED
    (line,) = printed
    assert line.startswith(f"SIMULATED CodeBuild: build {world.account.build_project}:")
    assert f"of {release.commit[:12]} succeeded, image {repository_uri}@sha256:" in line


def test_a_build_is_simulated_once(world: World, delivery: Delivery, printed: list[str]) -> None:
    push(world, "once")
    simulator = builds(world, delivery, printed)
    assert len(simulator.poll_once()) == 1
    # WHEN it polls again with no new build THEN nothing more is emitted
    assert simulator.poll_once() == []
    # AND a later build is found on the next poll
    push(world, "twice", "once", time="2026-11-29T10:05:00Z")
    assert len(simulator.poll_once()) == 1
    assert len(delivery.events) == 2


def test_a_project_asked_to_fail_sends_the_failed_event_of_the_sample(
    world: World, delivery: Delivery, printed: list[str]
) -> None:
    release_id = push(world, "build-fails")
    (event,) = builds(world, delivery, printed, fail_projects={world.account.build_project}).poll_once()
    assert shape(event) == shape(load_event("build_failed"))
    assert event["detail"]["build-status"] == "FAILED"
    assert "exported-environment-variables" not in event["detail"]["additional-information"]
    # THEN the release ends BUILD_FAILED with the log link, and nothing was deployed
    release = current(world, release_id)
    assert release.state is ReleaseState.BUILD_FAILED
    assert (release.log_link or "").startswith("https://console.aws.amazon.com/cloudwatch/")
    assert world.service("dev")["taskDefinition"] == world.account.services["dev"].task_definition_arn
    assert printed[0].startswith("SIMULATED CodeBuild:")
    assert "FAILED" in printed[0]


def test_a_build_no_release_names_yet_waits_then_goes_out_without_the_deployers_variables(
    world: World, delivery: Delivery, printed: list[str]
) -> None:
    # GIVEN a build started by someone else (no release records it)
    boto3.client("codebuild").start_build(projectName=world.account.build_project, sourceVersion=commit_id("manual"))
    clock = [100.0]
    simulator = builds(world, delivery, printed, grace_seconds=5.0, monotonic=lambda: clock[0])
    # WHEN it polls within the grace period THEN it waits (the deployer may be recording it)
    assert simulator.poll_once() == []
    # WHEN the grace period is over THEN the build's event goes out, with no deployer variables
    clock[0] += 6
    (event,) = simulator.poll_once()
    assert parse_event(CodeBuildStateChangeEvent, event).env_override(ENV_RELEASE_ID) is None
    assert "no deployer release names it" in printed[0]
    # AND the deployer ignores it
    assert delivery.outcomes[0]["outcome"] == "ignored"


class FakeCodeBuild:
    """Real CodeBuild reports the overrides a build was started with (moto does not)."""

    def __init__(self, build: dict[str, Any]) -> None:
        self.build = build

    def list_builds(self, **_: Any) -> dict[str, Any]:
        return {"ids": [self.build["id"]]}

    def batch_get_builds(self, ids: list[str]) -> dict[str, Any]:
        return {"builds": [self.build] if self.build["id"] in ids else []}

    def batch_get_projects(self, names: list[str]) -> dict[str, Any]:
        return {"projects": []}


def test_the_overrides_a_build_reports_are_passed_on_as_they_are(world: World, printed: list[str]) -> None:
    arn = "arn:aws:codebuild:eu-west-1:123456789012:build/web-app-build:0f8c6a6e-4b1d-4c5e-9a2f-3b7d1e8c5a90"
    overrides = [
        {"name": "DEPLOYER_RELEASE_ID", "type": "PLAINTEXT", "value": "web@" + commit_id("real")},
        {"name": "DEPLOYER_COMMIT", "type": "PLAINTEXT", "value": commit_id("real")},
    ]
    build = {
        "id": arn.rsplit("/", 1)[1],
        "arn": arn,
        "projectName": "web-app-build",
        "sourceVersion": commit_id("real"),
        "startTime": datetime(2026, 11, 29, 10, 0, tzinfo=UTC),
        "environment": {"environmentVariables": overrides},
    }
    emitted: list[dict[str, Any]] = []
    simulator = CodeBuildSimulator(
        {"codebuild": FakeCodeBuild(build), "ecr": boto3.client("ecr")},
        emitted.append,
        printed.append,
        image_repository=lambda _project: world.account.repository,
    )
    (event,) = simulator.poll_once()
    info = event["detail"]["additional-information"]
    assert info["environment"]["environment-variables"] == overrides
    assert info["build-start-time"] == "Nov 29, 2026 10:00:00 AM"
    assert emitted == [event]


def test_codebuild_times_read_like_codebuilds_own() -> None:
    assert codebuild_time(datetime(2017, 9, 1, 16, 12, 29, tzinfo=UTC)) == "Sep 1, 2017 4:12:29 PM"
    assert codebuild_time(datetime(2025, 3, 14, 0, 5, 0, tzinfo=UTC)) == "Mar 14, 2025 12:05:00 AM"


# -- ECS ---------------------------------------------------------------------------------------


def built(world: World, delivery: Delivery, printed: list[str], label: str, **kwargs: Any) -> str:
    """Push and simulate the build: the release is deploying dev."""
    release_id = push(world, label, **kwargs)
    builds(world, delivery, printed).poll_once()
    assert current(world, release_id).stages["dev"].state is StageState.DEPLOYING
    return release_id


def test_a_deployment_the_deployer_started_rolls_out_and_completes(
    world: World, delivery: Delivery, printed: list[str]
) -> None:
    release_id = built(world, delivery, printed, "roll")
    simulator = rollouts(world, delivery, printed)
    printed.clear()
    # WHEN the simulator polls
    (event,) = simulator.poll_once()
    # THEN it sent ECS's COMPLETED event for the deployment the deployer started, shaped like the sample
    assert shape(event) == shape(load_event("ecs_deployment_completed"))
    deployment_id = current(world, release_id).stages["dev"].deployment_id
    assert event["detail"]["deploymentId"] == deployment_id
    assert event["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED"
    assert event["resources"] == ["arn:aws:ecs:eu-west-1:123456789012:service/dev/web"]
    # AND the flow moved on: dev DEPLOYED, prod waits for its approval
    release = current(world, release_id)
    assert release.stages["dev"].state is StageState.DEPLOYED
    assert release.state is ReleaseState.AWAITING_APPROVAL
    # AND the rollout was drawn as `deployer plan` draws it (2 tasks at 100/200), labelled SIMULATED
    assert all(line.startswith("SIMULATED ECS rollout of dev/web:") for line in printed)
    text = "\n".join(printed)
    assert "minimumHealthyPercent 100, maximumPercent 200" in text
    assert "[■ ■ □ □]  start 2" in text
    assert "[□ □ · ·]  stop 2" in text
    assert "completed" in printed[-1]
    # AND polling again sends nothing: the deployment was handled
    assert simulator.poll_once() == []


def test_services_the_deployer_did_not_deploy_send_nothing(
    world: World, delivery: Delivery, printed: list[str]
) -> None:
    assert rollouts(world, delivery, printed).poll_once() == []
    assert printed == []


def test_moto_keeps_one_deployment_id_per_service_so_each_release_is_a_new_rollout(
    world: World, delivery: Delivery, printed: list[str]
) -> None:
    simulator = rollouts(world, delivery, printed)
    first = built(world, delivery, printed, "first")
    simulator.poll_once()
    second = built(world, delivery, printed, "second", old="first", time="2026-11-29T10:05:00Z")
    # moto's UpdateService keeps the service's deployment id (REFERENCE.md: moto notes)
    assert current(world, second).stages["dev"].deployment_id == current(world, first).stages["dev"].deployment_id
    (event,) = simulator.poll_once()
    assert event["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED"
    assert current(world, second).stages["dev"].state is StageState.DEPLOYED


@pytest.mark.parametrize("fail", ["dev", "dev/web"])
def test_a_stage_asked_to_fail_rolls_back_like_ecss_circuit_breaker(
    world: World, delivery: Delivery, printed: list[str], fail: str
) -> None:
    simulator = rollouts(world, delivery, printed, fail_stages={fail})
    simulator.poll_once()  # sees dev/web as it runs before the deployer touches it
    release_id = built(world, delivery, printed, "roll-back")
    printed.clear()
    rolling_back, failed = simulator.poll_once()
    # THEN the rollback's IN_PROGRESS event, then FAILED for the deployment, as ECS sends them
    assert shape(rolling_back) == shape(load_event("ecs_deployment_rolling_back"))
    assert rolling_back["detail"]["eventName"] == "SERVICE_DEPLOYMENT_IN_PROGRESS"
    assert rolling_back["detail"]["reason"].startswith(
        "ECS deployment circuit breaker: rolling back to deploymentId ecs-svc/"
    )
    deployment_id = current(world, release_id).stages["dev"].deployment_id
    assert rolling_back["detail"]["deploymentId"] != deployment_id
    assert shape(failed) == shape(load_event("ecs_deployment_failed"))
    assert failed["detail"]["eventName"] == "SERVICE_DEPLOYMENT_FAILED"
    assert failed["detail"]["deploymentId"] == deployment_id
    assert failed["detail"]["reason"] == "ECS deployment circuit breaker: tasks failed to start."
    # AND the release failed, rolled back; the service runs its previous task definition again
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert release.stages["dev"].rolled_back is True
    assert "rolling the service back" in (release.reason or "")
    assert world.service("dev")["taskDefinition"] == world.account.services["dev"].task_definition_arn
    assert all(line.startswith("SIMULATED ECS rollout of dev/web:") for line in printed)
    assert any("failed to start" in line for line in printed)


def test_a_deployment_counts_once_the_deployer_recorded_it_and_until_it_is_done(
    world: World, delivery: Delivery, printed: list[str]
) -> None:
    lookup = deployment_lookup_from_store(world.store)
    release_id = built(world, delivery, printed, "lookup")
    deployment_id = current(world, release_id).stages["dev"].deployment_id
    assert deployment_id is not None
    # WHILE dev deploys it, the deployment is the release's
    assert lookup(deployment_id) == (release_id, "dev")
    # an index whose stage record does not name the deployment yet (UpdateService just returned)
    world.store.index_deployment("ecs-svc/42", release_id, "prod", "prod", "web")
    assert lookup("ecs-svc/42") is None
    assert lookup("ecs-svc/unknown") is None
    # once the stage is DEPLOYED, the deployment is done with
    rollouts(world, delivery, printed).poll_once()
    assert lookup(deployment_id) is None


def test_a_rollout_ecs_could_not_move_sends_no_event(world: World, delivery: Delivery, printed: list[str]) -> None:
    # GIVEN a deployment the deployer started, then a configuration ECS cannot roll (100/100)
    built(world, delivery, printed, "stuck")
    boto3.client("ecs").update_service(
        cluster="dev", service="web", deploymentConfiguration={"minimumHealthyPercent": 100, "maximumPercent": 100}
    )
    printed.clear()
    # THEN, as ECS, it sends nothing, and says why
    assert rollouts(world, delivery, printed).poll_once() == []
    assert "cannot roll this out" in printed[-1]


# -- both, in the background -------------------------------------------------------------------


def test_in_the_background_a_push_goes_through_build_and_dev_to_the_approval(
    world: World, delivery: Delivery, printed: list[str]
) -> None:
    simulators = for_local_stack(
        boto3.session.Session(), world.store, world.config_store.load(), delivery, printed.append
    )
    thread = simulators.run_in_background(interval=0.01)
    try:
        release_id = push(world, "background")
        deadline = time.monotonic() + 20
        while current(world, release_id).state is not ReleaseState.AWAITING_APPROVAL:
            assert time.monotonic() < deadline, current(world, release_id)
            time.sleep(0.02)
    finally:
        simulators.stop()
    assert not thread.is_alive()
    kinds = [event["detail-type"] for event in delivery.events]
    assert kinds == [CODEBUILD_STATE_CHANGE, ECS_DEPLOYMENT_STATE_CHANGE]


def test_a_failing_poll_is_reported_once_and_polling_goes_on(printed: list[str]) -> None:
    class Broken:
        calls = 0

        def poll_once(self) -> list[dict[str, Any]]:
            self.calls += 1
            raise RuntimeError("moto is down")

    broken = Broken()
    simulators = Simulators(broken, printer=printed.append)
    simulators.poll_once()
    simulators.poll_once()
    assert broken.calls == 2
    assert printed == ["SIMULATED Broken: poll failed: RuntimeError: moto is down"]
