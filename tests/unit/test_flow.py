"""on_push and on_build end to end on the in-memory AWS (the `world` fixture): releases, builds, the
first stage, ordering (invariant 2), duplicates (invariant 1) and the service lock (invariant 3) of docs/design.md."""

from __future__ import annotations

import pytest

from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.parse import parse_event
from deployer.flow.build import on_build
from deployer.flow.progress import hand_over
from deployer.flow.push import on_push
from deployer.releases.model import ReleaseState, StageState
from deployer_local.provision import demo_pipelines_yaml
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit


def push(world: World, commit: str, old: str | None = None, time: str = "2026-11-29T10:00:00Z") -> list[dict]:
    return on_push(parse_event(CodeCommitReferenceEvent, world.push(commit, old, time=time)), world.deps)


def build(world: World, release_id: str, **kwargs: object) -> dict:
    event = world.build_finished(release_id, **kwargs)  # type: ignore[arg-type]
    return on_build(parse_event(CodeBuildStateChangeEvent, event), world.deps)


def released_to_dev(world: World, commit: str, **push_kwargs: str) -> str:
    (started,) = push(world, commit, **push_kwargs)
    build(world, started["release_id"])
    return str(started["release_id"])


# -- on_push ----------------------------------------------------------------------------------


def test_a_branch_push_records_the_release_and_starts_its_build_at_that_commit(world: World) -> None:
    # GIVEN the demo pipeline on web-app:main
    commit = commit_id("a")
    sent: list[dict] = []
    world.deps.codebuild.meta.events.register(
        "provide-client-params.codebuild.StartBuild", lambda params, **_: sent.append(dict(params))
    )
    # WHEN the branch is pushed
    (outcome,) = push(world, commit)
    # THEN a release exists, BUILDING, with the build it started
    release = world.store.get(outcome["release_id"])
    assert outcome["outcome"] == "build_started"
    assert release is not None
    assert release.state is ReleaseState.BUILDING
    assert release.commit == commit
    assert release.pusher == "arn:aws:sts::123456789012:assumed-role/Developer/alice"
    # AND the build runs that commit with the correlation overrides
    (build_id,) = world.builds()
    started = world.client("codebuild").batch_get_builds(ids=[build_id])["builds"][0]
    assert started["sourceVersion"] == commit
    assert release.build_arn == started["arn"]
    (request,) = sent
    env = {v["name"]: v["value"] for v in request["environmentVariablesOverride"]}
    assert env == {"DEPLOYER_RELEASE_ID": release.release_id, "DEPLOYER_COMMIT": commit, "DEPLOYER_PIPELINE": "web"}
    assert request["idempotencyToken"]


def test_the_same_push_delivered_twice_starts_one_build(world: World) -> None:
    # GIVEN a push event
    event = world.push(commit_id("twice"))
    # WHEN EventBridge delivers it twice (even under different event ids)
    first = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    event["id"] = "another-delivery"
    second = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    # THEN one release and one build
    assert first[0]["outcome"] == "build_started"
    assert second[0]["outcome"] == "duplicate"
    assert len(world.builds()) == 1


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        ("push_tag", "tag"),
        ("push_deleted", "deleted"),
        ("push_unknown_repository", "no pipeline"),
    ],
)
def test_pushes_that_deploy_nothing_are_ignored_with_a_reason(world: World, sample: str, reason: str) -> None:
    # GIVEN a push that matches no pipeline branch
    event = parse_event(CodeCommitReferenceEvent, load_event(sample))
    # WHEN on_push handles it
    (outcome,) = on_push(event, world.deps)
    # THEN it is ignored, says why, and nothing is built
    assert outcome["outcome"] == "ignored"
    assert reason in outcome["reason"]
    assert world.builds() == []
    assert world.transitions == []


def test_a_push_on_another_branch_of_the_repository_is_ignored(world: World) -> None:
    event = world.push(commit_id("feature"))
    event["detail"]["referenceName"] = "feature/x"
    event["detail"]["referenceFullName"] = "refs/heads/feature/x"
    (outcome,) = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    assert outcome["outcome"] == "ignored"
    assert world.builds() == []


def test_a_build_project_that_does_not_exist_fails_the_release_with_the_reason(world: World) -> None:
    # GIVEN a pipeline whose build project is missing
    world.publish(demo_pipelines_yaml(world.account).replace("project: web-app-build", "project: missing-build"))
    # WHEN a push arrives
    (outcome,) = push(world, commit_id("no-project"))
    # THEN the release ends BUILD_FAILED and says CodeBuild refused
    release = world.store.get(outcome["release_id"])
    assert release is not None
    assert release.state is ReleaseState.BUILD_FAILED
    assert "CodeBuild refused" in (release.reason or "")


# -- ordering (invariant 2) -------------------------------------------------------------------


def test_an_older_push_delivered_after_a_newer_one_is_never_built(world: World) -> None:
    # GIVEN two pushes, the second (newer) delivered first
    old, new = commit_id("old"), commit_id("new")
    (newer,) = push(world, new, old, time="2026-11-29T10:00:05Z")
    # WHEN the older one arrives
    (older,) = push(world, old, time="2026-11-29T10:00:01Z")
    # THEN it is SUPERSEDED at birth and only the newer one builds
    assert newer["outcome"] == "build_started"
    assert older["outcome"] == "superseded"
    assert len(world.builds()) == 1


def test_same_second_pushes_are_ordered_by_their_commit_chain(world: World) -> None:
    # GIVEN two pushes within one second, the second naming the first as its previous commit
    first, second = commit_id("first"), commit_id("second")
    # WHEN EventBridge delivers them in reverse order
    (b,) = push(world, second, first)
    (a,) = push(world, first)
    # THEN the first-pushed commit is the older one
    assert b["outcome"] == "build_started"
    assert a["outcome"] == "superseded"


def test_a_newer_push_supersedes_an_older_release_still_building(world: World) -> None:
    # GIVEN a release still building
    old, new = commit_id("o"), commit_id("n")
    (a,) = push(world, old, time="2026-11-29T10:00:00Z")
    # WHEN a newer commit is pushed
    (b,) = push(world, new, old, time="2026-11-29T10:01:00Z")
    # THEN the older release is SUPERSEDED, and its build finishing later deploys nothing
    assert b["superseded"] == [a["release_id"]]
    outcome = build(world, a["release_id"])
    assert outcome["outcome"] == "duplicate"
    assert len(world.revisions()) == 2  # the two first revisions (dev and prod) only


def test_an_older_build_finishing_after_a_newer_release_deployed_is_superseded(world: World) -> None:
    # GIVEN an older release still building when a newer one is pushed and reaches dev
    old, new = commit_id("slow"), commit_id("fast")
    (a,) = push(world, old, time="2026-11-29T10:00:00Z")
    (b,) = push(world, new, old, time="2026-11-29T10:05:00Z")
    build(world, b["release_id"])
    # WHEN the old build result shows up (its release is already superseded)
    outcome = build(world, a["release_id"])
    # THEN nothing is deployed for it
    assert outcome["outcome"] == "duplicate"
    svc = world.service("dev")
    newer = world.store.get(b["release_id"])
    assert newer is not None
    assert svc["taskDefinition"] == newer.stages["dev"].task_definition_arn


# -- on_build and the first stage -------------------------------------------------------------


def test_a_successful_build_deploys_the_first_stage_with_the_image_pinned_by_digest(world: World) -> None:
    # GIVEN a release whose build succeeded with IMAGE_URI pinned by digest
    (started,) = push(world, commit_id("deploy"))
    before = world.service("dev")
    # WHEN on_build handles the event
    outcome = build(world, started["release_id"])
    # THEN dev runs a new revision with that image, the deployment id is recorded
    release = world.store.get(started["release_id"])
    assert release is not None
    assert outcome["outcome"] == "deploying"
    assert release.state is ReleaseState.DEPLOYING
    assert release.stage == "dev"
    record = release.stages["dev"]
    assert record.state is StageState.DEPLOYING
    after = world.service("dev")
    assert after["taskDefinition"] == record.task_definition_arn
    assert record.previous_task_definition_arn == before["taskDefinition"]
    described = world.task_definition(after["taskDefinition"])
    images = {c["name"]: c["image"] for c in described["taskDefinition"]["containerDefinitions"]}
    assert images["web"] == release.image_uri
    assert "@sha256:" in images["web"]
    assert images["log-router"] == "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable"
    # AND the tags were kept, desiredCount untouched, and the rollout sent as configured
    assert {t["key"] for t in described["tags"]} == {"team", "cost-center"}
    assert after["desiredCount"] == before["desiredCount"]
    assert after["deploymentConfiguration"]["minimumHealthyPercent"] == 100
    assert after["deploymentConfiguration"]["maximumPercent"] == 200
    assert after["deploymentConfiguration"]["deploymentCircuitBreaker"] == {"enable": True, "rollback": True}
    assert world.store.deployment(record.deployment_id or "") == (release.release_id, "dev")


def test_the_same_build_event_twice_registers_one_revision_and_updates_once(world: World) -> None:
    (started,) = push(world, commit_id("dup-build"))
    event = world.build_finished(started["release_id"])
    first = on_build(parse_event(CodeBuildStateChangeEvent, event), world.deps)
    revisions = world.revisions()
    second = on_build(parse_event(CodeBuildStateChangeEvent, event), world.deps)
    assert first["outcome"] == "deploying"
    assert second["outcome"] == "duplicate"
    assert world.revisions() == revisions


def test_an_image_given_by_tag_is_resolved_to_its_digest_through_ecr(world: World) -> None:
    (started,) = push(world, commit_id("tagged"))
    build(world, started["release_id"], image="tag")
    release = world.store.get(started["release_id"])
    assert release is not None
    assert release.image_digest is not None
    assert release.image_uri == f"{world.account.ecr_repository_uri}@{release.image_digest}"


@pytest.mark.parametrize("status", ["FAILED", "STOPPED", "FAULT", "TIMED_OUT"])
def test_a_failed_build_ends_the_release_with_its_status_and_log_link(world: World, status: str) -> None:
    (started,) = push(world, commit_id(status))
    outcome = build(world, started["release_id"], status=status)
    release = world.store.get(started["release_id"])
    assert release is not None
    assert outcome["outcome"] == "build_failed"
    assert release.state is ReleaseState.BUILD_FAILED
    assert status in (release.reason or "")
    assert (release.log_link or "").startswith("https://console.aws.amazon.com/cloudwatch")
    assert len(world.revisions()) == 2


def test_a_build_that_exports_no_image_fails_the_release_saying_what_to_export(world: World) -> None:
    (started,) = push(world, commit_id("no-export"))
    build(world, started["release_id"], image=None)
    release = world.store.get(started["release_id"])
    assert release is not None
    assert release.state is ReleaseState.BUILD_FAILED
    assert "IMAGE_URI" in (release.reason or "")
    assert "exported-variables" in (release.reason or "")


def test_an_in_progress_build_event_is_ignored(world: World) -> None:
    (started,) = push(world, commit_id("progress"))
    outcome = build(world, started["release_id"], status="IN_PROGRESS")
    assert outcome["outcome"] == "ignored"
    release = world.store.get(started["release_id"])
    assert release is not None
    assert release.state is ReleaseState.BUILDING


def test_a_build_the_deployer_did_not_start_is_ignored(world: World) -> None:
    (started,) = push(world, commit_id("foreign"))
    foreign = "arn:aws:codebuild:eu-west-1:123456789012:build/web-app-build:00000000-0000-0000-0000-000000000000"
    outcome = build(world, started["release_id"], build_arn=foreign)
    assert outcome["outcome"] == "ignored"


def test_a_rollout_that_cannot_move_ends_invalid_config_before_any_ecs_change(world: World) -> None:
    # GIVEN dev (2 tasks) configured at 100/100, which ECS accepts but can never roll
    world.publish(demo_pipelines_yaml(world.account).replace("maximumPercent: 200", "maximumPercent: 100", 1))
    (started,) = push(world, commit_id("stuck"))
    # WHEN the build succeeds
    outcome = build(world, started["release_id"])
    # THEN the release ends INVALID_CONFIG with the reason, and nothing was registered or updated
    release = world.store.get(started["release_id"])
    assert release is not None
    assert outcome["outcome"] == "invalid_config"
    assert release.state is ReleaseState.INVALID_CONFIG
    assert "maximumPercent" in (release.reason or "")
    assert len(world.revisions()) == 2
    assert world.service("dev")["taskDefinition"] == world.account.services["dev"].task_definition_arn
    assert world.store.lock_of("dev", "web") is None


def test_a_container_missing_from_the_task_definition_fails_the_release_loudly(world: World) -> None:
    world.publish(demo_pipelines_yaml(world.account).replace("container: web", "container: api"))
    (started,) = push(world, commit_id("no-container"))
    build(world, started["release_id"])
    release = world.store.get(started["release_id"])
    assert release is not None
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert "api" in (release.reason or "")
    assert len(world.revisions()) == 2
    assert world.store.lock_of("dev", "web") is None


# -- one deployment per service (invariant 3) -------------------------------------------------


def test_a_release_queues_behind_the_one_deploying_the_service_and_a_newer_one_replaces_it(world: World) -> None:
    # GIVEN release A deploying dev
    a = released_to_dev(world, commit_id("A"), time="2026-11-29T10:00:00Z")
    # WHEN B, then C, are pushed, and C's build finishes while A holds dev
    b_id = push(world, commit_id("B"), commit_id("A"), time="2026-11-29T10:01:00Z")[0]["release_id"]
    c_id = push(world, commit_id("C"), commit_id("B"), time="2026-11-29T10:02:00Z")[0]["release_id"]
    outcome_c = build(world, c_id)
    # THEN C waits for the lock, and B (superseded while still building) never will
    assert outcome_c["outcome"] == "queued"
    release_c = world.store.get(c_id)
    assert release_c is not None
    assert release_c.stages["dev"].state is StageState.QUEUED
    lock = world.store.lock_of("dev", "web")
    assert lock is not None
    assert lock["holder"] == a
    assert lock["waiter"] == c_id
    release_b = world.store.get(b_id)
    assert release_b is not None
    assert release_b.state is ReleaseState.SUPERSEDED


def test_the_lock_passes_to_the_waiter_when_the_holder_fails(world: World) -> None:
    # GIVEN A holds dev and C waits
    a = released_to_dev(world, commit_id("A2"), time="2026-11-29T10:00:00Z")
    c_id = push(world, commit_id("C2"), commit_id("A2"), time="2026-11-29T10:02:00Z")[0]["release_id"]
    build(world, c_id)
    holder = world.store.get(a)
    assert holder is not None
    pipeline = world.deps.config().pipeline_named("web")
    assert pipeline is not None
    # WHEN A's stage fails (as on_deployment will report it)
    result = world.deps.stages.fail(holder, pipeline.stages[0], ReleaseState.DEPLOY_FAILED, "circuit breaker")
    follow = hand_over(result, world.deps)
    # THEN the lock now belongs to C, which deploys at once
    assert result.handover == (c_id, "dev")
    assert follow == {"handed_over_to": c_id, "handover_outcome": "deploying"}
    lock = world.store.lock_of("dev", "web")
    assert lock is not None
    assert lock["holder"] == c_id
    waiter = world.store.get(c_id)
    assert waiter is not None
    assert waiter.stages["dev"].state is StageState.DEPLOYING
    assert world.service("dev")["taskDefinition"] == waiter.stages["dev"].task_definition_arn
