"""Several ECS services per stage (`services: [web, worker]`): deployed in one step, completed when
every one has completed, and put back together when one fails.

AWS facts this relies on (each test that depends on one says which):
- "Amazon ECS service deployment state change events" (ECS developer guide,
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html):
  SERVICE_DEPLOYMENT_COMPLETED "is sent once a service reaches a steady state after a deployment",
  one event per service deployment, naming the service in `resources` and the deployment in
  `deploymentId`; SERVICE_DEPLOYMENT_FAILED "is sent for services with deployment circuit breaker
  logic turned on". So a stage of several services hears one COMPLETED per service, in any order.
- "Stopping Amazon ECS service deployments" (ECS developer guide,
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/stop-service-deployment.html):
  "Rollback - This option rolls back the service deployment to the previous service revision. You
  can use this option even if you didn't configure the service deployment for the rollback
  option", for a deployment PENDING or IN_PROGRESS. So a sibling still in flight is stopped with
  StopServiceDeployment ROLLBACK, whatever its circuit breaker says.
- DescribeServices (Amazon ECS API Reference, botocore's ECS model): "You may specify up to 10
  services to describe in a single operation." So a stage's services are described 10 per call.
"""

from __future__ import annotations

from collections.abc import Iterator
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
from deployer.flow.rollback import request_rollback
from deployer.releases.model import Release, ReleaseState, StageState
from deployer_local.provision import ACCOUNT, demo_pipelines_yaml
from tests.support.ecs_stub import ServiceDeploymentCalls
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

REGION = "eu-west-1"


@pytest.fixture
def world_options() -> dict[str, Any]:
    return {"workers": ("dev", "prod")}


@pytest.fixture
def world(world: World) -> World:
    world.publish(demo_pipelines_yaml(world.account, prod_approval=False, several_services=True))
    return world


@pytest.fixture
def ecs_calls(world: World) -> Iterator[ServiceDeploymentCalls]:
    calls = ServiceDeploymentCalls(world.deps.stages.ecs)
    yield calls
    calls.assert_done()


def start(world: World, label: str, *, old: str | None = None, time: str = "2026-11-29T10:00:00Z") -> str:
    push = world.push(commit_id(label), commit_id(old) if old else None, time=time)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, push), world.deps)
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(started["release_id"])), world.deps)
    return str(started["release_id"])


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def service_event(
    world: World, release_id: str, stage: str, service: str, name: str, reason: str | None = None
) -> EcsDeploymentStateChangeEvent:
    """ECS's event for one service's deployment, as the ECS developer guide shows it: the service's
    ARN in `resources`, its deployment in `detail.deploymentId`."""
    sample = {
        "SERVICE_DEPLOYMENT_COMPLETED": "ecs_deployment_completed",
        "SERVICE_DEPLOYMENT_FAILED": "ecs_deployment_failed",
        "SERVICE_DEPLOYMENT_IN_PROGRESS": "ecs_deployment_in_progress",
    }[name]
    record = current(world, release_id).stages[stage]
    svc = next(s for s in record.services or () if s.service == service)
    event: dict[str, Any] = load_event(sample)
    event["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{svc.cluster}/{svc.service}"]
    event["detail"]["deploymentId"] = svc.deployment_id
    event["detail"]["updatedAt"] = datetime.now(UTC).isoformat()
    if reason is not None:
        event["detail"]["reason"] = reason
    return parse_event(EcsDeploymentStateChangeEvent, event)


def task_definition_of(world: World, cluster: str, service: str) -> str:
    described = world.ecs.describe_services(cluster=cluster, services=[service])["services"][0]
    return str(described["taskDefinition"])


def updates_sent(world: World) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    world.deps.stages.ecs.meta.events.register(
        "provide-client-params.ecs.UpdateService", lambda params, **_: sent.append(dict(params))
    )
    return sent


# -- one step ----------------------------------------------------------------------------------


def test_a_build_deploys_every_service_of_the_first_stage_in_one_step(world: World) -> None:
    # GIVEN dev deploys web and worker (its own task definition, container `worker`)
    updates = updates_sent(world)
    # WHEN the build succeeds
    release_id = start(world, "one-step")
    # THEN both services are updated, each to a revision carrying the image, recorded per service
    release = current(world, release_id)
    record = release.stages["dev"]
    assert release.state is ReleaseState.DEPLOYING
    assert record.state is StageState.DEPLOYING
    assert [s.service for s in record.services or ()] == ["web", "worker"]
    assert [u["service"] for u in updates] == ["web", "worker"]
    assert all("desiredCount" not in u for u in updates)
    for svc in record.services or ():
        assert svc.deployment_id
        assert svc.task_definition_arn == task_definition_of(world, "dev", svc.service)
        assert svc.previous_task_definition_arn != svc.task_definition_arn
        assert world.store.deployment(svc.deployment_id) == (release_id, "dev")
        described = world.task_definition(svc.task_definition_arn)["taskDefinition"]
        swapped = {c["name"]: c["image"] for c in described["containerDefinitions"]}
        assert swapped["web" if svc.service == "web" else "worker"] == release.image_uri
    # AND both locks are held by the release
    assert (world.store.lock_of("dev", "web") or {})["holder"] == release_id
    assert (world.store.lock_of("dev", "worker") or {})["holder"] == release_id


# -- completion after every service, once -----------------------------------------------------


@pytest.mark.parametrize(
    "deliveries",
    [
        ["web", "worker"],
        ["worker", "web"],
        ["worker", "worker", "web", "web", "worker"],
        ["web", "IN_PROGRESS worker", "web", "worker", "worker"],
    ],
    ids=["in order", "reversed", "duplicates around the last", "in-progress and duplicates"],
)
def test_the_stage_completes_once_after_every_service_whatever_the_order_and_duplicates(
    world: World, deliveries: list[str]
) -> None:
    # GIVEN a release deploying dev's two services
    release_id = start(world, "complete")
    seen: list[str] = []
    # WHEN ECS's events arrive in this order, duplicates included (EventBridge delivers at least once)
    for delivery in deliveries:
        name, service = (
            ("SERVICE_DEPLOYMENT_IN_PROGRESS", delivery.split()[1])
            if delivery.startswith("IN_PROGRESS")
            else ("SERVICE_DEPLOYMENT_COMPLETED", delivery)
        )
        before = current(world, release_id)
        outcome = on_deployment(service_event(world, release_id, "dev", service, name), world.deps)
        seen.append(outcome["outcome"])
        completed_all = {s.service for s in before.stages["dev"].services or () if s.state is StageState.DEPLOYED}
        if before.stages["dev"].state is StageState.DEPLOYING and completed_all | {service} != {"web", "worker"}:
            # THEN until both have completed, dev stays DEPLOYING and prod does not start
            assert current(world, release_id).stage == "dev"
    # THEN dev completed exactly once, after both, and prod started once
    assert seen.count("deployed") == 1
    dev_done = [t for t in world.transitions if t.to_state is ReleaseState.DEPLOYED and t.stage == "dev"]
    assert len(dev_done) == 1
    release = current(world, release_id)
    assert release.stages["dev"].state is StageState.DEPLOYED
    assert {s.state for s in release.stages["dev"].services or ()} == {StageState.DEPLOYED}
    assert release.stage == "prod"
    assert release.stages["prod"].state is StageState.DEPLOYING
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None


def test_the_first_completion_says_which_services_the_stage_still_waits_for(world: World) -> None:
    release_id = start(world, "progress")
    announced = len(world.transitions)
    outcome = on_deployment(
        service_event(world, release_id, "dev", "worker", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps
    )
    assert outcome["outcome"] == "service_deployed"
    assert outcome["waiting_for"] == ["web"]
    # the progress is published (Slack, "Release State Change") though the release stays DEPLOYING
    (progress,) = world.transitions[announced:]
    assert (progress.from_state, progress.to_state) == (ReleaseState.DEPLOYING, ReleaseState.DEPLOYING)
    assert progress.reason is not None
    assert "worker runs worker:" in progress.reason
    assert progress.reason.endswith("waiting for web")


def test_the_last_stage_of_several_services_releases_and_records_each_revision(world: World) -> None:
    release_id = start(world, "released")
    for stage in ("dev", "prod"):
        for service in ("worker", "web"):
            on_deployment(service_event(world, release_id, stage, service, "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    release = current(world, release_id)
    assert release.state is ReleaseState.RELEASED
    (history,) = world.store.stage_history("web", "prod")
    assert [(s["service"], s["task_definition_arn"]) for s in history["services"]] == [
        (s.service, s.task_definition_arn) for s in release.stages["prod"].services or ()
    ]


# -- one failure puts the others back ------------------------------------------------------------


def test_a_failure_while_the_other_service_is_in_flight_stops_it_with_rollback(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN dev's two services deploying
    release_id = start(world, "fail-in-flight")
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/dev/web/webInFlight"
    # THEN (StopServiceDeployment ROLLBACK "rolls back the service deployment to the previous
    # service revision", usable "even if you didn't configure the service deployment for the
    # rollback option": "Stopping Amazon ECS service deployments") web's deployment in flight is
    # found and stopped
    ecs_calls.add(
        "ListServiceDeployments",
        {"cluster": "dev", "service": "web", "status": ["PENDING", "IN_PROGRESS"]},
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
    # WHEN worker's deployment fails (its circuit breaker rolls it back)
    outcome = on_deployment(
        service_event(
            world,
            release_id,
            "dev",
            "worker",
            "SERVICE_DEPLOYMENT_FAILED",
            reason="ECS deployment circuit breaker: tasks failed to start.",
        ),
        world.deps,
    )
    # THEN the release ends DEPLOY_FAILED saying what happened to each service, and dev is free
    assert outcome["outcome"] == "failed"
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    record = release.stages["dev"]
    assert record.state is StageState.FAILED
    web, worker = record.services or ()
    assert (worker.state, worker.rolled_back) == (StageState.FAILED, True)
    assert (web.state, web.undone, web.rolled_back) == (StageState.FAILED, "stopped", True)
    assert "worker: ECS deployment" in (release.reason or "")
    assert "ECS is rolling it back" in (release.reason or "")
    assert f"web: stopped in flight (StopServiceDeployment ROLLBACK of {arn})" in (release.reason or "")
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None
    assert "prod" not in release.stages


def test_a_failure_after_the_other_service_completed_puts_it_back_on_its_previous_revision(world: World) -> None:
    # GIVEN web completed and worker still deploying
    release_id = start(world, "fail-after-complete")
    on_deployment(service_event(world, release_id, "dev", "web", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    web_before = world.account.services["dev"].task_definition_arn
    updates = updates_sent(world)
    # WHEN worker fails
    on_deployment(
        service_event(world, release_id, "dev", "worker", "SERVICE_DEPLOYMENT_FAILED", reason="tasks failed"),
        world.deps,
    )
    # THEN the deployer sends web back to the revision it ran before (UpdateService, taskDefinition only)
    assert updates == [{"cluster": "dev", "service": "web", "taskDefinition": web_before}]
    assert task_definition_of(world, "dev", "web") == web_before
    release = current(world, release_id)
    web = next(s for s in release.stages["dev"].services or () if s.service == "web")
    assert (web.state, web.undone, web.rolled_back) == (StageState.DEPLOYED, "updated", True)
    assert web.rollback_deployment_id
    assert "web: completed, then rolled back by the deployer to web:1" in (release.reason or "")
    assert release.state is ReleaseState.DEPLOY_FAILED
    # AND the Slack message lists each service with what happened to it
    from deployer import slack
    from deployer.reporting import view_of

    view = view_of(release, region=REGION)
    assert view.services == (
        f"web: web:1 → {web.task_definition_arn.rsplit('/', 1)[-1]}, DEPLOYED (rolled back)",
        f"worker: worker:1 → {release.stages['dev'].services[1].task_definition_arn.rsplit('/', 1)[-1]}, FAILED",
    )
    fields = [f.text for block in slack.status_blocks(view) for f in getattr(block, "fields", None) or ()]
    assert any(text.startswith("*Services*\nweb: web:1 → ") for text in fields), fields
    assert view.service_link == f"https://{REGION}.console.aws.amazon.com/ecs/v2/clusters/dev/services"
    # AND a late COMPLETED or a duplicate FAILED changes nothing
    late = on_deployment(service_event(world, release_id, "dev", "web", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    assert late["outcome"] == "duplicate"
    assert current(world, release_id).version == release.version


def test_a_refused_update_service_midway_puts_back_the_services_already_updated(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN ECS refuses worker's UpdateService (a service ECS will not update, say)
    ecs = world.deps.stages.ecs
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/dev/web/justStarted"
    ecs_calls.add(
        "ListServiceDeployments",
        {"cluster": "dev", "service": "web", "status": ["PENDING", "IN_PROGRESS"]},
        {"serviceDeployments": [{"serviceDeploymentArn": arn, "status": "PENDING"}]},
    )
    ecs_calls.add(
        "DescribeServiceDeployments",
        {"serviceDeploymentArns": [arn]},
        {"serviceDeployments": [{"serviceDeploymentArn": arn, "status": "PENDING"}]},
    )
    ecs_calls.add(
        "StopServiceDeployment", {"serviceDeploymentArn": arn, "stopType": "ROLLBACK"}, {"serviceDeploymentArn": arn}
    )

    def refuse_worker(params: dict[str, Any], **_: Any) -> None:
        if params.get("service") == "worker" and "deploymentConfiguration" in params:
            from botocore.exceptions import ClientError

            raise ClientError(
                {"Error": {"Code": "InvalidParameterException", "Message": "worker refused"}}, "UpdateService"
            )

    ecs.meta.events.register("provide-client-params.ecs.UpdateService", refuse_worker)
    # WHEN the build succeeds
    release_id = start(world, "refused-midway")
    # THEN web's deployment, just started, is stopped with ROLLBACK at once, and the release says why
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    web, worker = release.stages["dev"].services or ()
    assert (web.undone, web.rolled_back) == ("stopped", True)
    assert worker.state is StageState.FAILED
    assert "worker refused" in (worker.reason or "")
    assert "dev failed (worker: " in (release.reason or "")
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None


# -- redelivery is idempotent per service --------------------------------------------------------


def test_a_throttled_update_of_the_second_service_resumes_without_new_revisions(world: World) -> None:
    # GIVEN UpdateService throttled for worker once, after web's went through
    ecs = world.deps.stages.ecs
    throttled: list[bool] = []

    def throttle_worker_once(params: dict[str, Any], **_: Any) -> None:
        if params.get("service") == "worker" and not throttled:
            throttled.append(True)
            from botocore.exceptions import ClientError

            raise ClientError({"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, "UpdateService")

    ecs.meta.events.register("provide-client-params.ecs.UpdateService", throttle_worker_once)
    updated: list[str] = []  # UpdateService calls that went through
    ecs.meta.events.register(
        "after-call.ecs.UpdateService",
        lambda http_response, parsed, **_: updated.append(parsed["service"]["serviceName"]),
    )
    registered: list[str] = []
    ecs.meta.events.register(
        "provide-client-params.ecs.RegisterTaskDefinition", lambda params, **_: registered.append(params["family"])
    )
    push = world.push(commit_id("throttled"))
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, push), world.deps)
    build = world.build_finished(started["release_id"])
    from deployer.errors import TransientError

    with pytest.raises(TransientError):
        on_build(parse_event(CodeBuildStateChangeEvent, build), world.deps)
    # WHEN EventBridge redelivers the build event
    on_build(parse_event(CodeBuildStateChangeEvent, build), world.deps)
    # THEN one revision and one UpdateService per service in all, and both are deploying
    assert sorted(registered) == ["web", "worker"]
    assert sorted(updated) == ["web", "worker"]
    record = current(world, started["release_id"]).stages["dev"]
    assert record.state is StageState.DEPLOYING
    assert all(s.deployment_id for s in record.services or ())


# -- rollback of a stage of several services -----------------------------------------------------


def test_rolling_back_a_finished_stage_puts_every_service_back(world: World) -> None:
    # GIVEN two releases through dev, each completed on both services
    first = start(world, "rb-first", time="2026-11-29T10:00:00Z")
    for service in ("web", "worker"):
        on_deployment(service_event(world, first, "dev", service, "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    second = start(world, "rb-second", old="rb-first", time="2026-11-29T10:05:00Z")
    for service in ("web", "worker"):
        on_deployment(service_event(world, second, "dev", service, "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    first_record = current(world, first).stages["dev"]
    # WHEN dev is rolled back
    outcome = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, world.deps)
    # THEN a rollback release redeploys first's revision on each service
    assert outcome["outcome"] == "deploying", outcome
    rollback = current(world, outcome["release_id"])
    expected = {s.key: s.task_definition_arn for s in first_record.services or ()}
    assert rollback.target_task_definitions == expected
    for svc in rollback.stages["dev"].services or ():
        assert task_definition_of(world, "dev", svc.service) == expected[svc.key]
    for service in ("web", "worker"):
        on_deployment(
            service_event(world, rollback.release_id, "dev", service, "SERVICE_DEPLOYMENT_COMPLETED"), world.deps
        )
    assert current(world, rollback.release_id).state is ReleaseState.RELEASED


# -- status ------------------------------------------------------------------------------------------


def test_status_lists_every_service_of_the_stage(world: World) -> None:
    from deployer_cli.views import status

    release_id = start(world, "status")
    on_deployment(service_event(world, release_id, "dev", "worker", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    shown = status.release_status(current(world, release_id), ("dev", "prod"))
    table = status.render_table([status.PipelineStatus("web", (shown,))])
    line = next(line for line in table.splitlines() if line.strip().startswith("services"))
    assert line.split(None, 1)[1].startswith("dev: web DEPLOYING (web:")
    assert "· worker DEPLOYED (worker:" in line
    (dev,) = [s for s in shown.to_json()["stages"] if s["name"] == "dev"]
    assert [s["name"] for s in dev["services"]] == ["web", "worker"]


# -- the reconciler checks each service ------------------------------------------------------------


def expect_service_deployment(
    calls: ServiceDeploymentCalls, release: Release, stage: str, service: str, status: str, **described: Any
) -> str:
    """ECS lists one service's deployment (created after the stage started) and describes it
    (ECS developer guide, "View service history using Amazon ECS service deployments": completed
    states SUCCESSFUL, STOPPED, ROLLBACK_SUCCESSFUL, ROLLBACK_FAILED)."""
    from datetime import timedelta

    record = release.stages[stage]
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{record.cluster}/{service}/{service}Sweep"
    started = datetime.fromisoformat(record.started_at)
    calls.add(
        "ListServiceDeployments",
        {
            "cluster": record.cluster,
            "service": service,
            "createdAt": {"after": started - timedelta(seconds=5)},
            "maxResults": 100,
        },
        {"serviceDeployments": [{"serviceDeploymentArn": arn, "status": status, "createdAt": started}]},
    )
    calls.add(
        "DescribeServiceDeployments",
        {"serviceDeploymentArns": [arn]},
        {"serviceDeployments": [{"serviceDeploymentArn": arn, "status": status, "createdAt": started, **described}]},
    )
    return arn


def test_the_sweep_completes_a_stage_whose_last_completed_event_was_lost(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    from datetime import timedelta

    from deployer import reconciler

    # GIVEN worker's COMPLETED arrived and web's was lost; ECS reports web SUCCESSFUL 15 minutes ago
    release_id = start(world, "sweep-last")
    on_deployment(service_event(world, release_id, "dev", "worker", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    release = current(world, release_id)
    expect_service_deployment(ecs_calls, release, "dev", "web", "SUCCESSFUL", finishedAt=datetime.now(UTC))
    # WHEN the sweep runs 25 minutes later (only web, still DEPLOYING, is asked about)
    (outcome,) = reconciler.reconcile(world.deps, datetime.now(UTC) + timedelta(minutes=25))
    # THEN dev completes, as web's COMPLETED would have made it, and prod deploys next
    assert outcome["outcome"] == "deployed", outcome
    promoted = current(world, release_id)
    assert promoted.stages["dev"].state is StageState.DEPLOYED
    assert promoted.stage == "prod"
    done = next(t for t in world.transitions if t.to_state is ReleaseState.DEPLOYED)
    assert (done.reason or "").startswith("reconciler: dev runs web web:")
    assert "its COMPLETED event never arrived" in (done.reason or "")


def test_the_sweep_stops_an_overdue_service_and_puts_the_completed_one_back(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    from datetime import timedelta

    from deployer import reconciler

    # GIVEN web completed, worker still IN_PROGRESS 2 hours later (dev's deadline is 60 minutes)
    release_id = start(world, "sweep-overdue")
    on_deployment(service_event(world, release_id, "dev", "web", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    release = current(world, release_id)
    arn = expect_service_deployment(ecs_calls, release, "dev", "worker", "IN_PROGRESS")
    ecs_calls.add(
        "StopServiceDeployment", {"serviceDeploymentArn": arn, "stopType": "ROLLBACK"}, {"serviceDeploymentArn": arn}
    )
    web_before = world.account.services["dev"].task_definition_arn
    # WHEN the sweep runs
    (outcome,) = reconciler.reconcile(world.deps, datetime.now(UTC) + timedelta(minutes=120))
    # THEN worker is stopped with ROLLBACK, web goes back to its revision, the release says both
    assert outcome["outcome"] == "failed"
    assert outcome["stopped"] == arn
    failed = current(world, release_id)
    assert failed.state is ReleaseState.DEPLOY_FAILED
    assert (failed.reason or "").startswith("reconciler: dev failed (worker failed); worker: no completion within 60")
    assert "web: completed, then rolled back by the deployer" in (failed.reason or "")
    assert task_definition_of(world, "dev", "web") == web_before
    assert world.store.lock_of("dev", "worker") is None


def test_rolling_back_a_stage_of_several_services_in_flight_stops_and_puts_back_each(
    world: World, ecs_calls: ServiceDeploymentCalls
) -> None:
    # GIVEN web completed and worker in flight
    release_id = start(world, "rb-in-flight")
    on_deployment(service_event(world, release_id, "dev", "web", "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/dev/worker/inFlight"
    ecs_calls.add(
        "ListServiceDeployments",
        {"cluster": "dev", "service": "worker", "status": ["PENDING", "IN_PROGRESS"]},
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
    # WHEN an operator rolls dev back
    outcome = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, world.deps)
    # THEN worker is stopped, web is put back, the release ends DEPLOY_FAILED and the rollback is RELEASED
    assert outcome["outcome"] == "stopping"
    assert outcome["undoes"] == release_id
    ended = current(world, release_id)
    assert ended.state is ReleaseState.DEPLOY_FAILED
    web, worker = ended.stages["dev"].services or ()
    assert (web.undone, worker.undone) == ("updated", "stopped")
    rollback = current(world, outcome["release_id"])
    assert rollback.state is ReleaseState.RELEASED
    assert rollback.target_task_definitions == {s.key: s.previous_task_definition_arn for s in (web, worker)}
    assert "ada rolled dev back while it deployed" in (rollback.reason or "")
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None


# -- the local stack's simulated ECS and the approval page -------------------------------------------


def test_the_simulated_ecs_rolls_out_each_service_and_sends_each_completed(world: World) -> None:
    from deployer_local.simulate import EcsRolloutSimulator, deployment_lookup_from_store

    # GIVEN the local stack's ECS rollout simulator watching the published pipeline
    emitted: list[dict[str, Any]] = []
    printed: list[str] = []
    simulator = EcsRolloutSimulator(
        world.ecs, deployment_lookup_from_store(world.store), emitted.append, printed.append
    )
    simulator.watch_pipelines(world.config_store.load())
    assert {"dev/web", "dev/worker", "prod/web", "prod/worker"} <= set(simulator.watched)
    # WHEN dev's two services are deployed and the simulator polls
    release_id = start(world, "simulated")
    simulator.poll_once()
    # THEN each service's rollout is drawn, labelled SIMULATED, and each gets its COMPLETED
    record = current(world, release_id).stages["dev"]
    sent = {(e["resources"][0].rsplit("/", 1)[-1], e["detail"]["deploymentId"]) for e in emitted}
    assert sent == {(s.service, s.deployment_id) for s in record.services or ()}
    assert all(e["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED" for e in emitted)
    assert any(line.startswith("SIMULATED ECS rollout of dev/worker:") for line in printed)
    # AND delivered, they complete dev once
    for event in emitted:
        on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)
    assert current(world, release_id).stages["dev"].state is StageState.DEPLOYED


def test_the_approval_page_draws_every_service_rollout(world: World) -> None:
    from deployer.approval_http import _plan

    # GIVEN prod of several services behind an approval
    world.publish(demo_pipelines_yaml(world.account, several_services=True))
    release_id = start(world, "approval")
    for service in ("web", "worker"):
        on_deployment(service_event(world, release_id, "dev", service, "SERVICE_DEPLOYMENT_COMPLETED"), world.deps)
    release = current(world, release_id)
    assert release.state is ReleaseState.AWAITING_APPROVAL
    context = release.approval_context or {}
    # THEN the approval shows each service as it runs now and draws each rollout
    assert context["service"] == "prod/web, prod/worker"
    assert [s["service"] for s in context["services"]] == ["prod/web", "prod/worker"]
    assert [s["desired"] for s in context["services"]] == [4, 2]
    text, note = _plan(context)
    assert text is not None
    assert text.startswith("prod/web: desired 4 tasks, minimumHealthyPercent 50, maximumPercent 150")
    assert "\n\nprod/worker: desired 2 tasks, minimumHealthyPercent 50, maximumPercent 150" in text
    assert note is None
    from deployer.reporting import view_of

    lines = view_of(release).services
    assert lines[0].startswith("web: web:")
    assert "2 waves" in lines[0]


def test_status_gives_each_service_its_own_line_when_they_do_not_fit_on_one() -> None:
    from deployer_cli.views import status
    from deployer_cli.views.status import PipelineStatus, ReleaseStatus, ServiceStatus, StageStatus

    def service(name: str, state: str, undone: str | None) -> ServiceStatus:
        return ServiceStatus(name, state, True, undone, "ecs-svc/1", f"{name}:3", f"{name}:1", None)

    dev = StageStatus(
        "dev",
        "FAILED",
        None,
        None,
        None,
        None,
        None,
        None,
        (
            service("web", "DEPLOYED", "updated"),
            service("worker", "FAILED", None),
            service("jobs", "FAILED", "stopped"),
        ),
    )
    release = ReleaseStatus(
        "web", "web@" + "a" * 40, "a" * 40, "a" * 12, "web-app", "main", "DEPLOY_FAILED", "dev", (dev,),
        "2026-12-04T15:38:00Z", "2026-12-04T15:39:00Z", 3, "dev failed", None, None, None, None, None, None, None,
    )  # fmt: skip
    lines = status.render_table([PipelineStatus("web", (release,))]).splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("services"))
    assert [line.strip() for line in lines[start : start + 3]] == [
        "services  dev: web DEPLOYED, then rolled back (web:3)",
        "dev: worker FAILED, rolled back (worker:3)",
        "dev: jobs stopped, rolled back (jobs:3)",
    ]
    assert all(len(line) <= status.WIDTH for line in lines)
