"""Approvals inside a deployment (a PAUSE lifecycle hook answered with ContinueServiceDeployment)
and rollbacks (StopServiceDeployment ROLLBACK in flight, else the stage's previous revision).

The in-memory AWS keeps the rest of the account (the `world` fixture); the four service-deployment
calls are answered by `tests.support.ecs_stub`, which asserts their exact requests as botocore's Stubber would. The
ECS facts: ECS developer guide "Pause hooks for Amazon ECS service deployments" (ContinueServiceDeployment
CONTINUE or ROLLBACK; DescribeServiceDeployments' lifecycleHookDetails), "Amazon ECS service
deployment hook state change events" (the event names the service deployment, the hook, its type,
stage and expiry: events/ecs_hook_awaiting_action.json is its example) and API reference
StopServiceDeployment (stopType ROLLBACK); REFERENCE.md "ECS rolling update" for the strategy fields."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployer.errors import ConfigError
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ApprovalDecidedEvent, RollbackRequestedEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent, EcsHookStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.approval import on_approval, sweep_expired_approvals
from deployer.flow.build import on_build
from deployer.flow.deployment import _pauses_at, on_deployment, on_hook
from deployer.flow.push import on_push
from deployer.flow.rollback import on_rollback_requested, request_rollback
from deployer.releases.model import Release, ReleaseState, StageState
from tests.support.clock import Clock
from tests.support.ecs_stub import ServiceDeploymentCalls
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

ACCOUNT = "123456789012"
REGION = "eu-west-1"
PROD_SERVICE = "web-bg"
HOOK_ID = "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw"
SERVICE_DEPLOYMENT = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/prod/{PROD_SERVICE}/r9i43YFjvgF"
BLUE_GREEN_LB = {
    "targetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/blue/1",
    "containerName": "web",
    "containerPort": 80,
    "advancedConfiguration": {
        "alternateTargetGroupArn": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:targetgroup/green/2",
        "productionListenerRule": f"arn:aws:elasticloadbalancing:{REGION}:{ACCOUNT}:listener-rule/app/a/1/2/3",
        "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ecs-lb",
    },
}


def pipelines_yaml(world_account: Any) -> str:
    dev = world_account.services["dev"]
    return (
        "pipelines:\n"
        "  - name: web\n"
        f"    repository: {world_account.repository}\n"
        "    branch: main\n"
        f"    build: {{project: {world_account.build_project}}}\n"
        "    container: web\n"
        "    stages:\n"
        "      - name: dev\n"
        f"        cluster: {dev.cluster}\n"
        f"        service: {dev.service}\n"
        "        rollout: {minimumHealthyPercent: 100, maximumPercent: 200}\n"
        "      - name: prod\n"
        "        cluster: prod\n"
        f"        service: {PROD_SERVICE}\n"
        "        rollout: {strategy: BLUE_GREEN, bakeTimeInMinutes: 15}\n"
        "        approval: {approvers: [U012ABCDEF], expiresInHours: 2, at: POST_TEST_TRAFFIC_SHIFT}\n"
    )


@pytest.fixture
def world(world: World) -> World:
    prod = world.account.services["prod"]
    world.ecs.create_service(
        cluster=prod.cluster,
        serviceName=PROD_SERVICE,
        taskDefinition=prod.task_definition_arn,
        desiredCount=3,
        loadBalancers=[BLUE_GREEN_LB],
    )
    world.publish(pipelines_yaml(world.account))
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


def service(world: World, cluster: str, name: str) -> dict[str, Any]:
    return dict(world.ecs.describe_services(cluster=cluster, services=[name])["services"][0])


def deployment_event(world: World, release: Release, stage: str, name: str) -> EcsDeploymentStateChangeEvent:
    sample = {
        "SERVICE_DEPLOYMENT_COMPLETED": "ecs_deployment_completed",
        "SERVICE_DEPLOYMENT_FAILED": "ecs_deployment_failed",
    }
    event: dict[str, Any] = load_event(sample[name])
    record = release.stages[stage]
    event["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{record.cluster}/{record.service}"]
    event["detail"]["deploymentId"] = record.deployment_id
    event["detail"]["updatedAt"] = datetime.now(UTC).isoformat()
    return parse_event(EcsDeploymentStateChangeEvent, event)


def hook_event(
    name: str = "HOOK_AWAITING_ACTION",
    *,
    stage: str = "POST_TEST_TRAFFIC_SHIFT",
    hook_type: str = "PAUSE",
    hook_id: str = HOOK_ID,
    service_deployment: str = SERVICE_DEPLOYMENT,
) -> EcsHookStateChangeEvent:
    """The documented sample, for prod's service (web-bg here) and the given hook."""
    event: dict[str, Any] = load_event("ecs_hook_awaiting_action" if name != "HOOK_TIMED_OUT" else "ecs_hook_timed_out")
    event["resources"] = [service_deployment]
    event["detail"].update(
        eventName=name,
        hookType=hook_type,
        hookId=hook_id,
        lifecycleStage=stage,
        serviceArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/prod/{PROD_SERVICE}",
        serviceDeploymentArn=service_deployment,
    )
    return parse_event(EcsHookStateChangeEvent, event)


def decision(release: Release, choice: str) -> ApprovalDecidedEvent:
    event: dict[str, Any] = load_event("approval_decided_approve")
    event["detail"].update(
        release_id=release.release_id, stage=release.stage, approval_id=release.approval_id, decision=choice
    )
    return parse_event(ApprovalDecidedEvent, event)


def deployed_to_dev(world: World, label: str, *, time: str = "2026-11-29T10:00:00Z") -> str:
    push = world.push(commit_id(label), time=time)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, push), world.deps)
    release_id = str(started["release_id"])
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    return release_id


def to_prod(world: World, label: str) -> str:
    """Push, build, complete dev: prod deploys at once (its approval is asked during the deployment)."""
    release_id = deployed_to_dev(world, label)
    on_deployment(
        deployment_event(world, current(world, release_id), "dev", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps
    )
    return release_id


def hook_detail(status: str = "AWAITING_ACTION", expires_in: timedelta = timedelta(minutes=110)) -> dict[str, Any]:
    return {
        "hookId": HOOK_ID,
        "targetType": "PAUSE",
        "status": status,
        "expiresAt": datetime.now(UTC) + expires_in,
        "timeoutAction": "ROLLBACK",
    }


def expect_paused(calls: ServiceDeploymentCalls, *, hook_status: str = "AWAITING_ACTION", listed: bool = False) -> None:
    """DescribeServiceDeployments of prod's paused service deployment; `listed`: found first with
    ListServiceDeployments, as a rollback finds it (a hook event names it: no listing)."""
    if listed:
        calls.add(
            "ListServiceDeployments",
            {"cluster": "prod", "service": PROD_SERVICE, "status": ["PENDING", "IN_PROGRESS"]},
            {
                "serviceDeployments": [
                    {
                        "serviceDeploymentArn": SERVICE_DEPLOYMENT,
                        "status": "IN_PROGRESS",
                        "createdAt": datetime.now(UTC),
                    }
                ]
            },
        )
    calls.add(
        "DescribeServiceDeployments",
        {"serviceDeploymentArns": [SERVICE_DEPLOYMENT]},
        {
            "serviceDeployments": [
                {
                    "serviceDeploymentArn": SERVICE_DEPLOYMENT,
                    "status": "IN_PROGRESS" if hook_status == "AWAITING_ACTION" else "ROLLBACK_IN_PROGRESS",
                    "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
                    "lifecycleHookDetails": [hook_detail(hook_status)],
                }
            ]
        },
    )


def paused(world: World, calls: ServiceDeploymentCalls, label: str) -> Release:
    release_id = to_prod(world, label)
    expect_paused(calls)
    outcome = on_hook(hook_event(), world.deps)
    assert outcome["outcome"] == "awaiting_approval", outcome
    return current(world, release_id)


# -- the deployment carries the pause ------------------------------------------------------------


def test_a_stage_approved_during_its_deployment_deploys_at_once_with_a_pause_hook(world: World) -> None:
    # GIVEN prod: BLUE_GREEN, approval at POST_TEST_TRAFFIC_SHIFT, expiring in 2 hours
    # WHEN dev completes
    release = current(world, to_prod(world, "pause-sent"))
    # THEN prod deploys at once (no approval before it) and UpdateService asks ECS to pause there,
    # rolling back if nobody answers before the approval expires
    assert release.state is ReleaseState.DEPLOYING
    assert release.stages["prod"].state is StageState.DEPLOYING
    configuration = service(world, "prod", PROD_SERVICE)["deploymentConfiguration"]
    assert configuration["strategy"] == "BLUE_GREEN"
    assert configuration["bakeTimeInMinutes"] == 15
    assert configuration["lifecycleHooks"] == [
        {
            "targetType": "PAUSE",
            "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
            "timeoutConfiguration": {"timeoutInMinutes": 120, "action": "ROLLBACK"},
        }
    ]
    assert "desiredCount" not in str(configuration)


# -- the pause becomes an approval ----------------------------------------------------------------


def test_the_pause_event_asks_for_approval_for_the_hook_it_names(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN prod deploying, WHEN ECS pauses it THEN the release waits for approval on prod, bound
    # to the hook and service deployment the event names, which ECS confirmed still waits: one
    # DescribeServiceDeployments of that deployment, no ListServiceDeployments
    release = paused(world, ecs_calls, "pause-asks")
    assert ecs_calls.names() == ["DescribeServiceDeployments"]
    assert release.state is ReleaseState.AWAITING_APPROVAL
    assert release.stage == "prod"
    record = release.stages["prod"]
    assert record.hook_id == HOOK_ID
    assert record.service_deployment_arn == SERVICE_DEPLOYMENT
    assert record.paused_at == "POST_TEST_TRAFFIC_SHIFT"
    assert record.timeout_action == "ROLLBACK"
    assert "ECS paused prod at POST_TEST_TRAFFIC_SHIFT" in (release.reason or "")
    # the approval ends no later than ECS stops waiting
    assert record.hook_expires_at is not None
    assert release.approval_expires_at is not None
    assert datetime.fromisoformat(release.approval_expires_at) <= datetime.fromisoformat(record.hook_expires_at)
    assert (release.approval_context or {})["paused_at"] == "POST_TEST_TRAFFIC_SHIFT"
    assert world.deps.approvals is not None
    assert world.deps.approvals.link_for_release(release)


def test_the_same_pause_reported_twice_asks_once_and_asks_ecs_nothing_more(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    release = paused(world, ecs_calls, "pause-twice")
    again = on_hook(hook_event(), world.deps)
    assert again["outcome"] == "duplicate"
    assert current(world, release.release_id).approval_id == release.approval_id
    assert ecs_calls.names() == ["DescribeServiceDeployments"]  # the first event's only


def test_a_pause_event_that_comes_after_the_hook_was_answered_asks_nothing(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN prod deploying, and a HOOK_AWAITING_ACTION that EventBridge delivers only after the hook
    # was continued (by someone in the console, say): ECS says SUCCEEDED
    release_id = to_prod(world, "pause-late")
    expect_paused(ecs_calls, hook_status="SUCCEEDED")
    outcome = on_hook(hook_event(), world.deps)
    # THEN no approval is asked and the release deploys on
    assert outcome["outcome"] == "duplicate"
    assert "SUCCEEDED" in outcome["reason"]
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOYING
    assert release.approval_id is None


def test_a_pause_event_for_a_hook_ecs_does_not_list_is_ignored(world: World, ecs_calls: ServiceDeploymentCalls) -> None:
    release_id = to_prod(world, "pause-unknown-hook")
    expect_paused(ecs_calls)
    outcome = on_hook(hook_event(hook_id="ecs-pause-another"), world.deps)
    assert outcome["outcome"] == "ignored"
    assert "lists no such hook" in outcome["reason"]
    assert current(world, release_id).state is ReleaseState.DEPLOYING


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"hook_type": "AWS_LAMBDA"}, "only PAUSE hooks wait for an answer"),
        ({"name": "HOOK_SUCCEEDED"}, "acts on HOOK_AWAITING_ACTION and HOOK_TIMED_OUT only"),
        ({"name": "HOOK_FAILED"}, "acts on HOOK_AWAITING_ACTION and HOOK_TIMED_OUT only"),
        ({"name": "HOOK_IN_PROGRESS"}, "acts on HOOK_AWAITING_ACTION and HOOK_TIMED_OUT only"),
        ({"stage": "PRE_SCALE_UP"}, "a PAUSE hook at PRE_SCALE_UP on prod/web-bg that the deployer did not add"),
    ],
)
def test_hook_events_the_deployer_does_not_act_on_change_nothing_and_ask_ecs_nothing(
    world: World, ecs_calls: ServiceDeploymentCalls, change: dict[str, str], reason: str
) -> None:
    # GIVEN prod deploying with its approval at POST_TEST_TRAFFIC_SHIFT
    release_id = to_prod(world, f"not-acted-{sorted(change.items())}")
    # WHEN a hook event arrives for a Lambda hook, an outcome the deployer gave itself, or a PAUSE
    # hook someone else added at another stage
    outcome = on_hook(hook_event(**change), world.deps)
    # THEN it is left alone with the reason, and ECS is not called
    assert outcome["outcome"] == "ignored"
    assert reason in outcome["reason"]
    assert ecs_calls.calls == []
    assert current(world, release_id).state is ReleaseState.DEPLOYING


@pytest.mark.parametrize(
    ("at", "reported", "ours"),
    [
        ("POST_TEST_TRAFFIC_SHIFT", "POST_TEST_TRAFFIC_SHIFT", True),
        ("PRE_PRODUCTION_TRAFFIC_SHIFT", "PRE_PRODUCTION_TRAFFIC_SHIFT", True),
        # no PAUSE hook can sit at PRODUCTION_TRAFFIC_SHIFT: a pause reported there is the one before
        ("PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", True),
        ("POST_TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT", False),
        ("POST_TEST_TRAFFIC_SHIFT", "PRE_SCALE_UP", False),
    ],
)
def test_a_pause_is_the_deployers_only_at_the_stage_its_approval_names(at: str, reported: str, ours: bool) -> None:
    assert _pauses_at(at, reported) is ours


def test_a_pause_event_of_another_service_deployment_than_the_paused_one_is_ignored(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    release = paused(world, ecs_calls, "pause-other-deployment")
    other = SERVICE_DEPLOYMENT.replace("r9i43YFjvgF", "zzzzzzzzzzz")
    outcome = on_hook(hook_event("HOOK_TIMED_OUT", service_deployment=other), world.deps)
    assert outcome["outcome"] == "ignored"
    assert f"is not the deployment {release.release_id} paused in" in outcome["reason"]
    assert current(world, release.release_id).state is ReleaseState.AWAITING_APPROVAL


def test_approve_continues_the_deployment_and_its_completion_releases(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    release = paused(world, ecs_calls, "pause-approve")
    ecs_calls.add(
        "ContinueServiceDeployment",
        {"serviceDeploymentArn": SERVICE_DEPLOYMENT, "hookId": HOOK_ID, "action": "CONTINUE"},
        {"serviceDeploymentArn": SERVICE_DEPLOYMENT},
    )
    # WHEN an approver approves
    outcome = on_approval(decision(release, "approve"), world.deps)
    # THEN ECS is told to CONTINUE and the release deploys on; the task definition is not registered again
    assert outcome["outcome"] == "continued"
    release = current(world, release.release_id)
    assert release.state is ReleaseState.DEPLOYING
    assert (release.decided_by or {})["decision"] == "approve"
    assert ecs_calls.names()[-1] == "ContinueServiceDeployment"
    # WHEN ECS completes THEN the release is RELEASED and prod is free
    on_deployment(deployment_event(world, release, "prod", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    assert current(world, release.release_id).state is ReleaseState.RELEASED
    assert world.store.lock_of("prod", PROD_SERVICE) is None


def test_reject_rolls_the_deployment_back_and_frees_the_service(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    release = paused(world, ecs_calls, "pause-reject")
    ecs_calls.add(
        "ContinueServiceDeployment",
        {"serviceDeploymentArn": SERVICE_DEPLOYMENT, "hookId": HOOK_ID, "action": "ROLLBACK"},
        {"serviceDeploymentArn": SERVICE_DEPLOYMENT},
    )
    outcome = on_approval(decision(release, "reject"), world.deps)
    assert outcome["outcome"] == "rejected"
    release = current(world, release.release_id)
    assert release.state is ReleaseState.REJECTED
    assert release.stages["prod"].state is StageState.FAILED
    assert release.stages["prod"].rolled_back is True
    assert "rejected by Slack user" in (release.reason or "")
    assert world.store.lock_of("prod", PROD_SERVICE) is None
    # ECS's own failure event for the rolled-back deployment changes nothing
    late = on_deployment(deployment_event(world, release, "prod", "SERVICE_DEPLOYMENT_FAILED"), world.deps)
    assert late["outcome"] == "duplicate"


def test_a_hook_that_timed_out_ends_the_release_with_ecs_timeout_action(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    release = paused(world, ecs_calls, "pause-timeout")
    expect_paused(ecs_calls, hook_status="TIMED_OUT")
    outcome = on_hook(hook_event("HOOK_TIMED_OUT"), world.deps)
    assert outcome["outcome"] == "timed_out"
    assert outcome["timeout_action"] == "ROLLBACK"
    release = current(world, release.release_id)
    assert release.state is ReleaseState.APPROVAL_EXPIRED
    assert "timed out undecided: ECS applied ROLLBACK" in (release.reason or "")
    assert release.stages["prod"].rolled_back is True
    assert world.store.lock_of("prod", PROD_SERVICE) is None


def test_a_hook_that_timed_out_before_its_pause_was_asked_ends_the_release(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN prod deploying, whose HOOK_AWAITING_ACTION never arrived (it went to the dead-letter queue)
    release_id = to_prod(world, "pause-never-asked")
    expect_paused(ecs_calls, hook_status="TIMED_OUT")
    # WHEN the hook times out
    outcome = on_hook(hook_event("HOOK_TIMED_OUT"), world.deps)
    # THEN the release ends with ECS's timeout action, and prod is free for the next release
    assert outcome["outcome"] == "timed_out"
    release = current(world, release_id)
    assert release.state is ReleaseState.APPROVAL_EXPIRED
    assert "the pause at POST_TEST_TRAFFIC_SHIFT timed out undecided: ECS applied ROLLBACK" in (release.reason or "")
    assert release.stages["prod"].state is StageState.FAILED
    assert release.stages["prod"].rolled_back is True
    assert world.store.lock_of("prod", PROD_SERVICE) is None


def test_a_pause_the_deployer_did_not_add_is_left_alone(world: World, ecs_calls: ServiceDeploymentCalls) -> None:
    # GIVEN dev deploying (no approval during its deployment) WHEN a hook event arrives for dev
    release_id = deployed_to_dev(world, "foreign-hook")
    event: dict[str, Any] = load_event("ecs_hook_awaiting_action")
    dev = world.account.services["dev"]
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{dev.cluster}/{dev.service}/abc"
    event["resources"] = [arn]
    event["detail"].update(
        serviceDeploymentArn=arn,
        serviceArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{dev.cluster}/{dev.service}",
        clusterArn=f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{dev.cluster}",
    )
    outcome = on_hook(parse_event(EcsHookStateChangeEvent, event), world.deps)
    # THEN it is ignored, with the reason, and no ECS call is made
    assert outcome["outcome"] == "ignored"
    assert "did not add" in outcome["reason"]
    assert ecs_calls.calls == []
    assert current(world, release_id).state is ReleaseState.DEPLOYING


def test_an_expired_pause_found_by_the_sweep_frees_the_service(
    world: World, ecs_calls: ServiceDeploymentCalls, clock: Clock
) -> None:
    release = paused(world, ecs_calls, "pause-sweep")
    later = datetime.now(UTC) + timedelta(hours=3)
    clock.now = later
    expired = sweep_expired_approvals(world.deps, now=later)
    assert expired == [release.release_id]
    release = current(world, release.release_id)
    assert release.state is ReleaseState.APPROVAL_EXPIRED
    assert release.stages["prod"].state is StageState.FAILED
    assert world.store.lock_of("prod", PROD_SERVICE) is None


# -- rollback -------------------------------------------------------------------------------------


def two_releases_on_dev(world: World) -> tuple[Release, Release]:
    first = deployed_to_dev(world, "first", time="2026-11-29T10:00:00Z")
    on_deployment(deployment_event(world, current(world, first), "dev", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    second = deployed_to_dev(world, "second", time="2026-11-29T10:05:00Z")
    on_deployment(deployment_event(world, current(world, second), "dev", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    return current(world, first), current(world, second)


def test_rollback_of_a_finished_stage_redeploys_its_previous_revision_as_a_release(world: World) -> None:
    # GIVEN dev ran `first`, then `second`
    first, second = two_releases_on_dev(world)
    revisions = world.revisions()
    # WHEN an operator rolls dev back
    outcome = request_rollback("web", "dev", {"kind": "cli", "principal": "arn:aws:iam::1:user/ada"}, world.deps)
    # THEN a rollback release puts dev back on first's revision: no new revision, one UpdateService
    assert outcome["outcome"] == "deploying", outcome
    assert outcome["undoes"] == second.release_id
    dev = world.account.services["dev"]
    assert service(world, dev.cluster, dev.service)["taskDefinition"] == first.stages["dev"].task_definition_arn
    assert world.revisions() == revisions
    rollback = current(world, outcome["release_id"])
    assert rollback.kind == "rollback"
    assert rollback.rollback_of == second.release_id
    assert rollback.commit == first.commit
    assert (rollback.requested_by or {})["principal"] == "arn:aws:iam::1:user/ada"
    assert rollback.state is ReleaseState.DEPLOYING
    # WHEN ECS completes THEN the rollback is RELEASED, it never promotes to prod, and dev is free
    done = on_deployment(deployment_event(world, rollback, "dev", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    assert done["outcome"] == "rolled_back"
    rollback = current(world, rollback.release_id)
    assert rollback.state is ReleaseState.RELEASED
    assert "prod" not in rollback.stages
    assert world.store.lock_of(dev.cluster, dev.service) is None
    # AND rolling back again does not return to the release just undone
    again = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, world.deps)
    assert again["outcome"] == "nothing_to_roll_back"


def test_rollback_of_an_in_flight_deployment_stops_it_with_rollback(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN `second` deploying dev
    first = deployed_to_dev(world, "first-ok", time="2026-11-29T10:00:00Z")
    on_deployment(deployment_event(world, current(world, first), "dev", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    second = deployed_to_dev(world, "second-bad", time="2026-11-29T10:05:00Z")
    dev = world.account.services["dev"]
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{dev.cluster}/{dev.service}/abc"
    ecs_calls.add(
        "ListServiceDeployments",
        {"cluster": dev.cluster, "service": dev.service, "status": ["PENDING", "IN_PROGRESS"]},
        {"serviceDeployments": [{"serviceDeploymentArn": arn, "status": "IN_PROGRESS"}]},
    )
    ecs_calls.add(
        "DescribeServiceDeployments",
        {"serviceDeploymentArns": [arn]},
        {"serviceDeployments": [{"serviceDeploymentArn": arn, "status": "IN_PROGRESS"}]},
    )
    ecs_calls.add(
        "StopServiceDeployment", {"serviceDeploymentArn": arn, "stopType": "ROLLBACK"}, {"serviceDeploymentArn": arn}
    )
    # WHEN an approver rolls dev back from Slack
    outcome = request_rollback("web", "dev", {"kind": "slack", "user": "U012ABCDEF"}, world.deps)
    # THEN ECS stops the deployment and rolls back; `second` ends DEPLOY_FAILED (rolled back), the
    # rollback is a release of its own, and dev is free
    assert outcome["outcome"] == "stopping"
    assert outcome["undoes"] == second
    failed = current(world, second)
    assert failed.state is ReleaseState.DEPLOY_FAILED
    assert failed.stages["dev"].rolled_back is True
    assert "Slack user U012ABCDEF stopped" in (failed.reason or "")
    rollback = current(world, outcome["release_id"])
    assert rollback.kind == "rollback"
    assert rollback.state is ReleaseState.RELEASED
    assert world.store.lock_of(dev.cluster, dev.service) is None


def test_nothing_to_roll_back_on_a_stage_that_never_deployed(world: World) -> None:
    outcome = request_rollback("web", "prod", {"kind": "cli", "principal": "ada"}, world.deps)
    assert outcome["outcome"] == "nothing_to_roll_back"
    assert "no successful deployment" in outcome["reason"]


def test_rollback_of_an_unknown_stage_is_a_clear_error(world: World) -> None:
    with pytest.raises(ConfigError, match="has no stage qa"):
        request_rollback("web", "qa", {"kind": "cli", "principal": "ada"}, world.deps)


def test_a_second_rollback_while_the_first_runs_starts_nothing(world: World) -> None:
    two_releases_on_dev(world)
    first = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, world.deps)
    updates = service(world, world.account.services["dev"].cluster, world.account.services["dev"].service)
    second = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, world.deps)
    assert second["outcome"] == "already_rolling_back"
    assert second["release_id"] == first["release_id"]
    dev = world.account.services["dev"]
    assert service(world, dev.cluster, dev.service)["taskDefinition"] == updates["taskDefinition"]


def rollback_requested(stage: str, user: str, release_id: str | None = None) -> RollbackRequestedEvent:
    event: dict[str, Any] = load_event("approval_rollback_requested")
    event["detail"].update(stage=stage, requested_by={"kind": "slack", "user": user})
    if release_id is not None:
        event["detail"]["release_id"] = release_id
    return parse_event(RollbackRequestedEvent, event)


def test_slacks_roll_back_from_an_approver_rolls_the_stage_back(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN prod deploying (its approver list: U012ABCDEF)
    release_id = to_prod(world, "slack-rollback")
    expect_paused(ecs_calls, listed=True)  # ListServiceDeployments + DescribeServiceDeployments: in flight
    ecs_calls.add(
        "StopServiceDeployment",
        {"serviceDeploymentArn": SERVICE_DEPLOYMENT, "stopType": "ROLLBACK"},
        {"serviceDeploymentArn": SERVICE_DEPLOYMENT},
    )
    # WHEN the approver presses "Roll back" on prod
    outcome = on_rollback_requested(rollback_requested("prod", "U012ABCDEF", release_id), world.deps)
    # THEN ECS stops and rolls back the deployment, and a rollback release records who asked
    assert outcome["outcome"] == "stopping", outcome
    assert outcome["undoes"] == release_id
    rollback = current(world, outcome["release_id"])
    assert rollback.kind == "rollback"
    assert (rollback.requested_by or {})["user"] == "U012ABCDEF"
    assert current(world, release_id).state is ReleaseState.DEPLOY_FAILED


@pytest.mark.parametrize(("stage", "user"), [("prod", "U0NOTLISTED"), ("dev", "U012ABCDEF")])
def test_slacks_roll_back_from_anyone_else_changes_nothing(world: World, stage: str, user: str) -> None:
    # GIVEN a user who is not an approver of the stage (dev has no approvers at all)
    before = world.store.list_releases("web")
    outcome = on_rollback_requested(rollback_requested(stage, user), world.deps)
    # THEN ignored with the reason, and no release is created
    assert outcome["outcome"] == "ignored"
    assert "not one of the stage's approvers" in outcome["reason"]
    assert world.store.list_releases("web") == before


def test_a_roll_back_button_of_a_release_that_is_no_longer_on_the_stage_changes_nothing(world: World) -> None:
    # GIVEN prod reached by a release, and the button of another (older) release's message
    release_id = to_prod(world, "newer-on-prod")
    outcome = on_rollback_requested(rollback_requested("prod", "U012ABCDEF", "web@" + "0" * 40), world.deps)
    # THEN ignored: the newer release holds the stage; nothing is stopped or created
    assert outcome["outcome"] == "ignored"
    assert "has reached the stage since" in outcome["reason"]
    assert current(world, release_id).state is ReleaseState.DEPLOYING
