"""Scheduled tasks follow the stage's service; old revisions are cleaned up (deployer.housekeeping).

AWS facts these tests rely on:

- EventBridge Scheduler API Reference, "UpdateSchedule",
  https://docs.aws.amazon.com/scheduler/latest/APIReference/API_UpdateSchedule.html : "When you call
  UpdateSchedule, EventBridge Scheduler uses all values, including empty values, specified in the
  request and overrides the existing schedule. This is by design. This means that if you do not set
  an optional field in your request, that field will be set to its system-default value after the
  update." So the request must carry every field GetSchedule returned (checked with Stubber, and
  against botocore's scheduler model).
- Amazon EventBridge API Reference, "PutTargets",
  https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutTargets.html : "Adds the specified
  targets to the specified rule, or updates the targets if they are already associated with the
  rule." and, of EventBusName, "If you omit this, the default event bus is used." So only the moved
  targets are sent, whole, and the default bus is left out.
- Amazon ECS API Reference, "DeregisterTaskDefinition",
  https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeregisterTaskDefinition.html :
  "Existing tasks and services that reference an INACTIVE task definition continue to run without
  disruption. [...] you can't update an existing service to reference an INACTIVE task definition."
  So a rollback target is never deregistered.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.awsrequest import AWSResponse
from botocore.stub import Stubber

from deployer import housekeeping
from deployer.errors import TransientError
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ReleaseStateChangeDetail
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.publishing import BusPublisher
from deployer.flow.push import on_push
from deployer.flow.rollback import request_rollback
from deployer.housekeeping import MAX_DEREGISTRATIONS, SCHEDULE_READ_ONLY_KEYS, ScheduledTasks
from deployer.pipelines.loader import load_config_text
from deployer.releases.model import Release, ReleaseState, StageState
from deployer_cli.views.status import release_status, render_table
from deployer_local.provision import (
    ACCOUNT,
    DEMO_RULE,
    DEMO_SCHEDULE,
    DEMO_SCHEDULED_TASK_ROLE,
    demo_pipelines_yaml,
    provision_demo_schedules,
    web_task_definition,
)
from tests.support.clock import Clock
from tests.support.events import load_event
from tests.support.world import World, commit_id, make_world

pytestmark = pytest.mark.unit

REGION = "eu-west-1"
OLD = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:7"
NEW = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:8"
WORKER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/worker:3"
PROD_CLUSTER = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/prod"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/web-scheduled-tasks"


def stage_with(schedules: str, *, cluster: str = "prod") -> Any:
    config = load_config_text(
        "pipelines:\n"
        "  - name: web\n"
        "    repository: web-app\n"
        "    branch: main\n"
        "    build: {project: web-app-build}\n"
        "    container: web\n"
        "    stages:\n"
        "      - name: prod\n"
        f"        cluster: {cluster}\n"
        "        service: web\n"
        f"        schedules: {schedules}\n"
    )
    return config.pipelines[0].stages[0]


def stubbed() -> tuple[ScheduledTasks, Stubber, Stubber]:
    scheduler = boto3.client("scheduler", region_name=REGION)
    events = boto3.client("events", region_name=REGION)
    return ScheduledTasks(scheduler, events), Stubber(scheduler), Stubber(events)


def full_schedule(task_definition: str = OLD) -> dict[str, Any]:
    """What GetSchedule returns for a schedule that sets every optional field."""
    return {
        "ActionAfterCompletion": "NONE",
        "Arn": f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/reports/nightly-report",
        "CreationDate": datetime(2026, 1, 5, 9, 0, tzinfo=UTC),
        "Description": "The nightly report",
        "EndDate": datetime(2027, 12, 31, tzinfo=UTC),
        "FlexibleTimeWindow": {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15},
        "GroupName": "reports",
        "KmsKeyArn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "LastModificationDate": datetime(2026, 6, 1, 12, 0, tzinfo=UTC),
        "Name": "nightly-report",
        "ScheduleExpression": "cron(0 2 * * ? *)",
        "ScheduleExpressionTimezone": "Europe/Dublin",
        "StartDate": datetime(2026, 1, 6, tzinfo=UTC),
        "State": "ENABLED",
        "Target": {
            "Arn": PROD_CLUSTER,
            "RoleArn": ROLE,
            "DeadLetterConfig": {"Arn": f"arn:aws:sqs:{REGION}:{ACCOUNT}:report-dlq"},
            "Input": '{"containerOverrides": [{"name": "web", "command": ["bin/report"]}]}',
            "RetryPolicy": {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 2},
            "EcsParameters": {
                "TaskDefinitionArn": task_definition,
                "TaskCount": 1,
                "LaunchType": "FARGATE",
                "PlatformVersion": "1.4.0",
                "Group": "reports",
                "EnableECSManagedTags": True,
                "EnableExecuteCommand": False,
                "PropagateTags": "TASK_DEFINITION",
                "ReferenceId": "nightly",
                "Tags": [{"team": "web"}],
                "PlacementConstraints": [{"type": "distinctInstance"}],
                "PlacementStrategy": [{"type": "spread", "field": "attribute:ecs.availability-zone"}],
                "NetworkConfiguration": {
                    "awsvpcConfiguration": {
                        "Subnets": ["subnet-0a1b2c3d"],
                        "SecurityGroups": ["sg-0a1b2c3d"],
                        "AssignPublicIp": "DISABLED",
                    }
                },
            },
        },
    }


def ecs_target(target_id: str, task_definition: str, cluster: str = PROD_CLUSTER) -> dict[str, Any]:
    return {
        "Id": target_id,
        "Arn": cluster,
        "RoleArn": ROLE,
        "Input": '{"containerOverrides": [{"name": "web", "command": ["bin/cleanup"]}]}',
        "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 600},
        "EcsParameters": {
            "TaskDefinitionArn": task_definition,
            "TaskCount": 2,
            "LaunchType": "FARGATE",
            "NetworkConfiguration": {
                "awsvpcConfiguration": {"Subnets": ["subnet-0a1b2c3d"], "AssignPublicIp": "DISABLED"}
            },
            "PropagateTags": "TASK_DEFINITION",
            "Tags": [{"Key": "team", "Value": "web"}],
        },
    }


# -- the requests ----------------------------------------------------------------------------------


def test_update_schedule_sends_back_every_field_get_schedule_returned_with_the_new_revision() -> None:
    # GIVEN a schedule that sets every optional field, running web:7 in prod
    tasks, scheduler, _ = stubbed()
    got = full_schedule()
    expected = copy.deepcopy(got)
    for key in ("Arn", "CreationDate", "LastModificationDate"):
        del expected[key]
    expected["Target"]["EcsParameters"]["TaskDefinitionArn"] = NEW
    scheduler.add_response("get_schedule", got, {"Name": "nightly-report", "GroupName": "reports"})
    scheduler.add_response("update_schedule", {"ScheduleArn": got["Arn"]}, expected)
    # WHEN prod's deployment of web:8 completed
    with scheduler:
        (move,) = tasks.move(stage_with("[{scheduler: nightly-report, group: reports}]"), NEW)
    # THEN UpdateSchedule carried every field as it was, only the revision changed
    scheduler.assert_no_pending_responses()
    assert move.outcome == "moved"
    assert move.previous == (OLD,)
    assert move.text() == "schedule nightly-report in group reports: web:7 -> web:8"


def test_the_keys_left_out_of_update_schedule_are_exactly_those_it_does_not_take() -> None:
    # botocore's scheduler model: what GetSchedule returns minus what UpdateSchedule takes
    model = botocore.session.get_session().get_service_model("scheduler")
    returned = set(model.operation_model("GetSchedule").output_shape.members)
    taken = set(model.operation_model("UpdateSchedule").input_shape.members)
    assert returned - taken == SCHEDULE_READ_ONLY_KEYS
    # and nothing UpdateSchedule takes is missing from GetSchedule but the idempotency token
    assert taken - returned == {"ClientToken"}
    # the rule's targets: ListTargetsByRule returns the very shape PutTargets takes
    events = botocore.session.get_session().get_service_model("events")
    listed = events.operation_model("ListTargetsByRule").output_shape.members["Targets"].member
    put = events.operation_model("PutTargets").input_shape.members["Targets"].member
    assert listed.name == put.name == "Target"


def test_put_targets_sends_the_matching_targets_whole_and_leaves_the_others() -> None:
    # GIVEN a rule whose targets are web in prod (two), the worker family in prod, and a Lambda
    tasks, _, events = stubbed()
    web_a, web_b = ecs_target("web-a", OLD), ecs_target("web-b", NEW)
    others = [ecs_target("worker", WORKER), {"Id": "audit", "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:a"}]
    events.add_response(
        "list_targets_by_rule", {"Targets": [web_a, *others, web_b]}, {"Rule": "cleanup", "EventBusName": "jobs"}
    )
    moved_a = copy.deepcopy(web_a)
    moved_a["EcsParameters"]["TaskDefinitionArn"] = NEW
    events.add_response(
        "put_targets",
        {"FailedEntryCount": 0, "FailedEntries": []},
        {"Rule": "cleanup", "EventBusName": "jobs", "Targets": [moved_a]},
    )
    # WHEN prod's deployment of web:8 completed
    with events:
        (move,) = tasks.move(stage_with("[{rule: cleanup, eventBus: jobs}]"), NEW)
    # THEN only the stale web target was sent, whole; the others were not touched
    events.assert_no_pending_responses()
    assert move.outcome == "moved"
    assert move.previous == (OLD, NEW)
    assert move.text() == "rule cleanup on bus jobs: web:7, web:8 -> web:8"


def test_the_default_bus_is_left_out_of_the_requests() -> None:
    tasks, _, events = stubbed()
    target = ecs_target("web", OLD)
    moved = copy.deepcopy(target)
    moved["EcsParameters"]["TaskDefinitionArn"] = NEW
    events.add_response("list_targets_by_rule", {"Targets": [target]}, {"Rule": "cleanup"})
    events.add_response(
        "put_targets", {"FailedEntryCount": 0, "FailedEntries": []}, {"Rule": "cleanup", "Targets": [moved]}
    )
    with events:
        (move,) = tasks.move(stage_with("[{rule: cleanup}]"), NEW)
    events.assert_no_pending_responses()
    assert move.outcome == "moved"


def test_a_scheduled_task_already_on_the_revision_is_not_updated() -> None:
    # GIVEN a schedule already on web:8 (a redelivered completion, or the reconciler after the event)
    tasks, scheduler, _ = stubbed()
    scheduler.add_response("get_schedule", full_schedule(NEW), {"Name": "nightly-report", "GroupName": "reports"})
    with scheduler:
        (move,) = tasks.move(stage_with("[{scheduler: nightly-report, group: reports}]"), NEW)
    # THEN no UpdateSchedule (the Stubber would refuse an unexpected call)
    scheduler.assert_no_pending_responses()
    assert (move.outcome, move.text()) == ("unchanged", "schedule nightly-report in group reports: already web:8")


def test_a_schedule_that_cannot_be_moved_is_reported_and_the_others_still_move() -> None:
    # GIVEN two schedules; the first one's UpdateSchedule is denied
    tasks, scheduler, _ = stubbed()
    first, second = full_schedule(), full_schedule()
    second["Name"] = "weekly-report"
    scheduler.add_response("get_schedule", first, {"Name": "nightly-report", "GroupName": "reports"})
    scheduler.add_client_error(
        "update_schedule", "AccessDeniedException", "not authorized to perform: iam:PassRole", http_status_code=403
    )
    scheduler.add_response("get_schedule", second, {"Name": "weekly-report", "GroupName": "reports"})
    expected = copy.deepcopy(second)
    for key in SCHEDULE_READ_ONLY_KEYS:
        del expected[key]
    expected["Target"]["EcsParameters"]["TaskDefinitionArn"] = NEW
    scheduler.add_response("update_schedule", {"ScheduleArn": second["Arn"]}, expected)
    stage = stage_with("[{scheduler: nightly-report, group: reports}, {scheduler: weekly-report, group: reports}]")
    with scheduler:
        denied, moved = tasks.move(stage, NEW)
    # THEN the first says why it stays, the second moved
    assert denied.outcome == "failed"
    assert "AccessDeniedException" in (denied.error or "")
    assert denied.text().startswith("schedule nightly-report in group reports: NOT MOVED to web:8 (")
    assert moved.outcome == "moved"


def test_throttling_raises_so_the_event_is_redelivered() -> None:
    tasks, scheduler, _ = stubbed()
    scheduler.add_client_error("get_schedule", "ThrottlingException", "Rate exceeded", http_status_code=400)
    with scheduler, pytest.raises(TransientError):
        tasks.move(stage_with("[{scheduler: nightly-report}]"), NEW)


def test_targets_put_targets_refuses_are_reported() -> None:
    tasks, _, events = stubbed()
    events.add_response("list_targets_by_rule", {"Targets": [ecs_target("web", OLD)]}, {"Rule": "cleanup"})
    events.add_response(
        "put_targets",
        {
            "FailedEntryCount": 1,
            "FailedEntries": [{"TargetId": "web", "ErrorCode": "ValidationException", "ErrorMessage": "bad"}],
        },
    )
    with events:
        (move,) = tasks.move(stage_with("[{rule: cleanup}]"), NEW)
    assert move.outcome == "failed"
    assert move.error == "PutTargets cleanup refused target web: ValidationException: bad"


@pytest.mark.parametrize(
    ("schedule", "problem"),
    [
        (
            {"EcsParameters": {"TaskDefinitionArn": WORKER}},
            "schedule nightly-report: runs worker:3 (family worker) in cluster prod, but the stage runs family web in "
            "cluster prod",
        ),
        (
            {"Arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/dev"},
            "schedule nightly-report: runs web:7 (family web) in cluster dev, but the stage runs family web in "
            "cluster prod",
        ),
    ],
)
def test_the_check_names_a_schedule_that_runs_another_family_or_cluster(schedule: dict[str, Any], problem: str) -> None:
    tasks, scheduler, _ = stubbed()
    got = full_schedule()
    got["Target"].update({k: v for k, v in schedule.items() if k == "Arn"})
    got["Target"]["EcsParameters"].update(schedule.get("EcsParameters", {}))
    scheduler.add_response("get_schedule", got, {"Name": "nightly-report", "GroupName": "default"})
    with scheduler:
        assert tasks.check(stage_with("[{scheduler: nightly-report}]"), "web") == [problem]


def test_the_check_names_a_rule_without_a_matching_ecs_target() -> None:
    tasks, _, events = stubbed()
    targets = [ecs_target("worker", WORKER), {"Id": "audit", "Arn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:a"}]
    events.add_response("list_targets_by_rule", {"Targets": targets}, {"Rule": "cleanup"})
    with events:
        (problem,) = tasks.check(stage_with("[{rule: cleanup}]"), "web")
    assert problem == (
        "rule cleanup: no ECS target runs family web in cluster prod (target worker: runs worker:3 (family worker) in "
        f"cluster prod; target audit: arn:aws:lambda:{REGION}:{ACCOUNT}:function:a, not an ECS task)"
    )


# -- through the flow, against moto ------------------------------------------------------------------


@pytest.fixture
def world(moto_aws: None, world: World) -> World:
    """The demo with its scheduled tasks (EventBridge Scheduler and rules: moto's)."""
    provision_demo_schedules(world.session, world.account)
    world.publish(demo_pipelines_yaml(world.account, prod_approval=False, schedules=True))
    return world


def start(world: World, label: str, time: str = "2026-11-29T10:00:00Z") -> str:
    push = world.push(commit_id(label), time=time)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, push), world.deps)
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(started["release_id"])), world.deps)
    return str(started["release_id"])


def completed(world: World, release_id: str, stage: str) -> dict[str, Any]:
    release = world.store.get(release_id)
    assert release is not None
    event = load_event("ecs_deployment_completed")
    service = world.account.services[stage]
    event["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{service.cluster}/{service.service}"]
    event["detail"]["deploymentId"] = release.stages[stage].deployment_id
    event["detail"]["updatedAt"] = datetime.now(UTC).isoformat()
    return on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)


def release_everywhere(world: World, label: str, time: str = "2026-11-29T10:00:00Z") -> Release:
    release_id = start(world, label, time)
    completed(world, release_id, "dev")
    completed(world, release_id, "prod")
    release = world.store.get(release_id)
    assert release is not None
    assert release.state is ReleaseState.RELEASED, release.reason
    return release


def schedule_runs() -> str:
    got = boto3.client("scheduler").get_schedule(Name=DEMO_SCHEDULE)
    return str(got["Target"]["EcsParameters"]["TaskDefinitionArn"])


def rule_runs() -> str:
    (target,) = boto3.client("events").list_targets_by_rule(Rule=DEMO_RULE)["Targets"]
    return str(target["EcsParameters"]["TaskDefinitionArn"])


def test_scheduled_tasks_follow_each_stage_when_its_deployment_completes(world: World) -> None:
    # GIVEN dev's rule and prod's schedule on the revisions their services run
    before = (rule_runs(), schedule_runs())
    assert before == (
        world.account.services["dev"].task_definition_arn,
        world.account.services["prod"].task_definition_arn,
    )
    # WHEN a release reaches dev, whose deployment completes
    release_id = start(world, "follow")
    completed(world, release_id, "dev")
    release = world.store.get(release_id)
    assert release is not None
    dev = release.stages["dev"].task_definition_arn
    # THEN dev's rule runs dev's new revision; prod's schedule waits for prod
    assert rule_runs() == dev
    assert schedule_runs() == before[1]
    assert release.stages["dev"].schedules == [
        {
            "kind": "rule",
            "name": DEMO_RULE,
            "where": "default",
            "task_definition": dev,
            "outcome": "moved",
            "previous": [before[0]],
        }
    ]
    # WHEN prod completes THEN prod's schedule runs prod's revision, every other field as it was
    completed(world, release_id, "prod")
    release = world.store.get(release_id)
    assert release is not None
    assert schedule_runs() == release.stages["prod"].task_definition_arn
    got = boto3.client("scheduler").get_schedule(Name=DEMO_SCHEDULE)
    assert got["ScheduleExpressionTimezone"] == "Europe/Dublin"
    assert got["FlexibleTimeWindow"] == {"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15}
    assert got["Target"]["RoleArn"] == DEMO_SCHEDULED_TASK_ROLE
    assert got["Target"]["EcsParameters"]["Tags"] == [{"team": "web"}]
    # AND `deployer status` and the release's Slack message say so
    table = render_table_of(world, release)
    assert f"schedule  dev: rule {DEMO_RULE}: {short(before[0])} -> {short(dev)}" in table
    assert f"schedule  prod: schedule {DEMO_SCHEDULE}: {short(before[1])} -> " in table
    from deployer.reporting import view_of

    prod = short(release.stages["prod"].task_definition_arn or "")
    assert view_of(release).housekeeping == (
        f"dev: rule {DEMO_RULE}: {short(before[0])} -> {short(dev)}",
        f"prod: schedule {DEMO_SCHEDULE}: {short(before[1])} -> {prod}",
        "cleanup: nothing to deregister (keepRevisions 10); 2 kept",
    )


def short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def render_table_of(world: World, release: Release) -> str:
    from deployer_cli.views.status import PipelineStatus

    status = release_status(release, ("dev", "prod"))
    return render_table([PipelineStatus("web", (status,), "web-app", "main")], width=200)


def test_a_schedule_of_another_family_refuses_the_stage_before_any_change(world: World) -> None:
    # GIVEN prod's schedule now runs the worker family (someone repointed it)
    worker = boto3.client("ecs").register_task_definition(**web_task_definition(family="worker"))["taskDefinition"]
    target = boto3.client("scheduler").get_schedule(Name=DEMO_SCHEDULE)
    request = housekeeping.update_schedule_request(target, worker["taskDefinitionArn"])
    boto3.client("scheduler").update_schedule(**request)
    release_id = start(world, "refused")
    revisions = world.revisions()
    prod_before = world.service("prod")["taskDefinition"]
    # WHEN dev completes and prod would deploy
    completed(world, release_id, "dev")
    # THEN prod is refused with the reason, before any revision or UpdateService
    release = world.store.get(release_id)
    assert release is not None
    assert release.state is ReleaseState.INVALID_CONFIG
    assert release.reason == (
        f"stage prod: scheduled tasks refused: schedule {DEMO_SCHEDULE}: runs worker:{worker['revision']} "
        "(family worker) in cluster prod, but the stage runs family web in cluster prod"
    )
    assert world.revisions() == revisions
    assert world.service("prod")["taskDefinition"] == prod_before
    assert schedule_runs() == worker["taskDefinitionArn"]
    assert world.store.lock_of("prod", "web") is None


def test_a_missing_schedule_refuses_the_stage_with_aws_words(world: World) -> None:
    boto3.client("scheduler").delete_schedule(Name=DEMO_SCHEDULE)
    release_id = start(world, "missing")
    completed(world, release_id, "dev")
    release = world.store.get(release_id)
    assert release is not None
    assert release.state is ReleaseState.INVALID_CONFIG
    assert release.reason == (
        f"stage prod: scheduled tasks refused: schedule {DEMO_SCHEDULE}: GetSchedule {DEMO_SCHEDULE} failed: "
        f"ResourceNotFoundException: Schedule {DEMO_SCHEDULE} does not exist."
    )
    assert "prod" not in release.stages or release.stages["prod"].task_definition_arn is None


def test_a_rollback_moves_the_scheduled_tasks_back(world: World) -> None:
    # GIVEN two releases went everywhere
    first = release_everywhere(world, "first", "2026-11-29T10:00:00Z")
    second = release_everywhere(world, "second", "2026-11-29T11:00:00Z")
    assert schedule_runs() == second.stages["prod"].task_definition_arn
    # WHEN prod is rolled back and the rollback's deployment completes
    outcome = request_rollback("web", "prod", {"kind": "cli", "principal": "ada"}, world.deps)
    completed(world, outcome["release_id"], "prod")
    # THEN prod's schedule runs the first release's revision again; dev's rule did not move
    assert schedule_runs() == first.stages["prod"].task_definition_arn
    assert rule_runs() == second.stages["dev"].task_definition_arn
    rollback = world.store.get(outcome["release_id"])
    assert rollback is not None
    assert rollback.state is ReleaseState.RELEASED
    (moved,) = rollback.stages["prod"].schedules or []
    assert moved["previous"] == [second.stages["prod"].task_definition_arn]


def test_a_schedule_deleted_before_completion_is_reported_and_the_release_goes_on(world: World) -> None:
    release_id = start(world, "deleted")
    completed(world, release_id, "dev")
    boto3.client("scheduler").delete_schedule(Name=DEMO_SCHEDULE)
    completed(world, release_id, "prod")
    release = world.store.get(release_id)
    assert release is not None
    assert release.state is ReleaseState.RELEASED
    (failed,) = release.stages["prod"].schedules or []
    assert failed["outcome"] == "failed"
    assert "ResourceNotFoundException" in failed["error"]
    assert any("NOT MOVED" in line for _, line in housekeeping.schedule_texts(release))


def test_the_release_state_change_events_carry_the_moves_and_the_cleanup(world: World) -> None:
    # GIVEN the bus publisher in front of a captured PutEvents
    sent: list[dict[str, Any]] = []
    events = boto3.client("events")
    events.meta.events.register(
        "provide-client-params.events.PutEvents", lambda params, **_: sent.extend(params["Entries"])
    )
    publisher = BusPublisher(events, world.names.bus)
    world.listeners.append(publisher)  # the handler's listener, for this test
    # WHEN a release goes everywhere
    release_everywhere(world, "events")
    details = [ReleaseStateChangeDetail.model_validate_json(entry["Detail"]) for entry in sent]
    deployed = [d for d in details if d.to_state == "DEPLOYED"]
    released = [d for d in details if d.to_state == "RELEASED"]
    # THEN each DEPLOYED names its scheduled task, and RELEASED the cleanup
    assert [(d.stage, [s.name for s in d.schedules or []]) for d in deployed] == [
        ("dev", [DEMO_RULE]),
        ("prod", [DEMO_SCHEDULE]),
    ]
    assert all(s.outcome == "moved" for d in deployed for s in d.schedules or [])
    (done,) = released
    assert done.cleanup is not None
    assert done.cleanup.keep == 10
    assert all(d.schedules is None for d in details if d.to_state != "DEPLOYED")
    assert json.loads(sent[-1]["Detail"])["cleanup"]["deregistered"] == []


# -- old revisions -----------------------------------------------------------------------------------


def one_stage_pipeline(world: World, keep: str | None, *, extra: str = "") -> None:
    dev = world.account.services["dev"]
    world.publish(
        "pipelines:\n"
        "  - name: web\n"
        f"    repository: {world.account.repository}\n"
        "    branch: main\n"
        f"    build: {{project: {world.account.build_project}}}\n"
        "    container: web\n" + (f"    keepRevisions: {keep}\n" if keep is not None else "") + "    stages:\n"
        "      - name: dev\n"
        f"        cluster: {dev.cluster}\n"
        f"        service: {dev.service}\n"
        "        rollout: {minimumHealthyPercent: 100, maximumPercent: 200}\n" + extra
    )


@pytest.fixture
def plain(moto_aws: None, aws_session: Any, clock: Clock) -> World:
    """The demo without scheduled tasks, in moto (the tests below register revisions with boto3's clients)."""
    return make_world(session=aws_session, clock=clock)


def release_dev(world: World, label: str, hour: int, *, time: str | None = None) -> Release:
    release_id = start(world, label, time or f"2026-11-29T{hour:02d}:00:00Z")
    completed(world, release_id, "dev")
    release = world.store.get(release_id)
    assert release is not None
    assert release.state is ReleaseState.RELEASED, release.reason
    return release


def active(arn: str) -> bool:
    return boto3.client("ecs").describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"] == "ACTIVE"


def test_cleanup_keeps_the_newest_revisions_a_stage_ran_and_never_a_revision_it_did_not_register(plain: World) -> None:
    # GIVEN a pipeline keeping 3 revisions, and a revision of the family registered by hand meanwhile
    one_stage_pipeline(plain, "3")
    runs = [release_dev(plain, "r1", 1), release_dev(plain, "r2", 2)]
    by_hand = boto3.client("ecs").register_task_definition(**web_task_definition())["taskDefinition"][
        "taskDefinitionArn"
    ]
    runs += [release_dev(plain, f"r{n}", n) for n in (3, 4, 5)]
    arns = [r.stages["dev"].task_definition_arn or "" for r in runs]
    # THEN the three newest stay (the oldest of them only because of keepRevisions: dev neither runs
    # it nor can roll back to it), the older ones the deployer registered are INACTIVE
    assert [active(a) for a in arns] == [False, False, True, True, True]
    # AND the revision registered by hand, and the service's first one, are untouched
    assert active(by_hand)
    assert active(plain.account.services["dev"].task_definition_arn)
    # AND each release says what it deregistered
    latest = plain.store.get(runs[-1].release_id)
    assert latest is not None
    assert latest.cleanup == {"keep": 3, "deregistered": [arns[1]], "kept": 3, "left": 0}
    assert housekeeping.cleanup_text(latest.cleanup) == f"deregistered {short(arns[1])} (keepRevisions 3); 3 kept"


def test_cleanup_never_deregisters_the_revision_a_stage_can_roll_back_to(plain: World) -> None:
    # GIVEN a pipeline keeping a single revision
    one_stage_pipeline(plain, "1")
    runs = [release_dev(plain, f"r{n}", n) for n in (1, 2, 3)]
    arns = [r.stages["dev"].task_definition_arn or "" for r in runs]
    # THEN the one before the current stays ACTIVE: `deployer rollback` goes back to it
    assert [active(a) for a in arns] == [False, True, True]
    # WHEN dev is rolled back to it, and a new release follows
    outcome = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, plain.deps)
    completed(plain, outcome["release_id"], "dev")
    assert plain.service("dev")["taskDefinition"] == arns[1]
    fourth = release_dev(plain, "r4", 4, time="2099-01-01T00:00:00Z")  # pushed after the rollback
    # THEN what dev can roll back to now (the rolled-back-to revision) stays, the undone one goes
    assert [active(a) for a in arns] == [False, True, False]
    assert active(fourth.stages["dev"].task_definition_arn or "")


def test_keep_revisions_all_deregisters_nothing(plain: World) -> None:
    one_stage_pipeline(plain, "all")
    runs = [release_dev(plain, f"r{n}", n) for n in (1, 2, 3, 4)]
    assert all(active(r.stages["dev"].task_definition_arn or "") for r in runs)
    assert runs[-1].cleanup == {"keep": "all", "deregistered": [], "kept": 0, "left": 0}


def test_cleanup_is_bounded_per_release_and_the_next_release_goes_on(plain: World) -> None:
    # GIVEN many releases while nothing was cleaned up
    one_stage_pipeline(plain, "all")
    runs = [release_dev(plain, f"r{n}", n) for n in range(1, 6)]
    arns = [r.stages["dev"].task_definition_arn or "" for r in runs]
    pipeline = plain.config_store.load().pipelines[0]
    limited = pipeline.model_copy(update={"keep_revisions": 1})
    # WHEN cleaning up with a budget of 2 deregistrations
    first = housekeeping.clean_up(plain.store, plain.deps.stages.ecs, limited, budget=2)
    # THEN the two oldest go, the rest waits for the next release
    assert first.deregistered == arns[:2]
    assert first.left == 1
    second = housekeeping.clean_up(plain.store, plain.deps.stages.ecs, limited, budget=2)
    assert second.deregistered == arns[2:3]
    assert second.left == 0
    assert [active(a) for a in arns] == [False, False, False, True, True]
    assert MAX_DEREGISTRATIONS == 10


def test_cleaning_up_twice_deregisters_nothing_twice(plain: World) -> None:
    # GIVEN a cleanup that ran (the event redelivered afterwards)
    one_stage_pipeline(plain, "all")
    runs = [release_dev(plain, f"r{n}", n) for n in range(1, 5)]
    pipeline = plain.config_store.load().pipelines[0].model_copy(update={"keep_revisions": 1})
    calls: list[str] = []
    ecs = plain.deps.stages.ecs
    ecs.meta.events.register(
        "provide-client-params.ecs.DeregisterTaskDefinition", lambda params, **_: calls.append(params["taskDefinition"])
    )
    first = housekeeping.clean_up(plain.store, ecs, pipeline)
    # WHEN it runs again
    again = housekeeping.clean_up(plain.store, ecs, pipeline)
    # THEN the second run has nothing to do: one DeregisterTaskDefinition per revision
    assert first.deregistered == [runs[0].stages["dev"].task_definition_arn, runs[1].stages["dev"].task_definition_arn]
    assert again.deregistered == []
    assert calls == first.deregistered


def test_a_revision_ecs_refuses_to_deregister_because_it_is_inactive_counts_as_done(plain: World) -> None:
    # GIVEN a revision deregistered before, whose record the deployer still holds (it stopped midway)
    one_stage_pipeline(plain, "all")
    runs = [release_dev(plain, f"r{n}", n) for n in range(1, 5)]
    gone = runs[0].stages["dev"].task_definition_arn or ""
    ecs = plain.deps.stages.ecs
    ecs.deregister_task_definition(taskDefinition=gone)

    def refuse_inactive(params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]] | None:
        # before-call sees the serialized request: the JSON body names the revision
        if json.loads(params["body"]).get("taskDefinition") != gone:
            return None
        error = {"Error": {"Code": "ClientException", "Message": "The specified task definition is inactive."}}
        return AWSResponse("https://ecs", 400, {}, None), {**error, "ResponseMetadata": {"HTTPStatusCode": 400}}

    ecs.meta.events.register("before-call.ecs.DeregisterTaskDefinition", refuse_inactive)
    pipeline = plain.config_store.load().pipelines[0].model_copy(update={"keep_revisions": 1})
    # WHEN cleaning up THEN the inactive one counts as done, and is not tried again next time
    report = housekeeping.clean_up(plain.store, ecs, pipeline)
    assert report.deregistered[0] == gone
    assert report.failed == []
    assert gone not in [item["arn"] for item in plain.store.registered_revisions("web", "web")]


def test_revisions_of_releases_still_in_flight_or_newer_than_what_ran_are_kept(plain: World) -> None:
    # GIVEN two releases went through, then a third registered dev's revision and is deploying
    one_stage_pipeline(plain, "all")
    runs = [release_dev(plain, f"r{n}", n) for n in (1, 2, 3)]
    in_flight_id = start(plain, "in-flight", "2026-11-29T09:00:00Z")
    in_flight = plain.store.get(in_flight_id)
    assert in_flight is not None
    assert in_flight.state is ReleaseState.DEPLOYING
    pipeline = plain.config_store.load().pipelines[0].model_copy(update={"keep_revisions": 1})
    # WHEN cleaning up
    report = housekeeping.clean_up(plain.store, plain.deps.stages.ecs, pipeline)
    # THEN the deploying revision stays (newer than what ran, its release not ended)
    assert report.deregistered == [runs[0].stages["dev"].task_definition_arn]
    assert active(in_flight.stages["dev"].task_definition_arn or "")


def test_an_older_revision_whose_release_has_not_ended_is_kept(plain: World) -> None:
    # GIVEN three releases, and the first one's revision on record as registered by a release that
    # is still deploying (it registered, and its UpdateService has not happened yet)
    one_stage_pipeline(plain, "all")
    runs = [release_dev(plain, f"r{n}", n) for n in (1, 2, 3)]
    deploying = plain.store.get(start(plain, "deploying", "2026-11-29T09:00:00Z"))
    assert deploying is not None
    assert not deploying.state.terminal
    first = runs[0].stages["dev"].task_definition_arn or ""
    plain.store.record_registration("web", "dev", deploying.release_id, first)
    boto3.client("ecs").update_service(
        cluster="dev", service="web", taskDefinition=runs[2].stages["dev"].task_definition_arn
    )
    pipeline = plain.config_store.load().pipelines[0].model_copy(update={"keep_revisions": 1})
    # WHEN cleaning up THEN it stays: its release may be about to deploy it
    report = housekeeping.clean_up(plain.store, plain.deps.stages.ecs, pipeline)
    assert first not in report.deregistered
    assert active(first)


def test_a_revision_newer_than_what_the_stages_ran_is_kept(plain: World) -> None:
    # GIVEN a release everywhere, then a release whose dev deployment failed and ECS rolled dev back
    one_stage_pipeline(plain, "all")
    first = release_dev(plain, "r1", 1)
    failed_id = start(plain, "failed", "2026-11-29T02:00:00Z")
    failed = plain.store.get(failed_id)
    assert failed is not None
    event = load_event("ecs_deployment_failed")
    event["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/dev/web"]
    event["detail"]["deploymentId"] = failed.stages["dev"].deployment_id
    event["detail"]["updatedAt"] = datetime.now(UTC).isoformat()
    on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), plain.deps)
    ran = first.stages["dev"].task_definition_arn or ""
    boto3.client("ecs").update_service(cluster="dev", service="web", taskDefinition=ran)  # ECS's rollback
    newer = failed.stages["dev"].task_definition_arn or ""
    ended = plain.store.get(failed_id)
    assert ended is not None
    assert ended.state is ReleaseState.DEPLOY_FAILED
    pipeline = plain.config_store.load().pipelines[0].model_copy(update={"keep_revisions": 1})
    # WHEN cleaning up THEN the failed release's revision, newer than anything dev ran, stays
    report = housekeeping.clean_up(plain.store, plain.deps.stages.ecs, pipeline)
    assert newer not in report.deregistered
    assert active(newer)


def test_a_revision_ecs_still_runs_is_kept(plain: World) -> None:
    # GIVEN three releases; then the service is put back by hand on the first release's revision
    one_stage_pipeline(plain, "all")
    runs = [release_dev(plain, f"r{n}", n) for n in (1, 2, 3, 4)]
    first = runs[0].stages["dev"].task_definition_arn or ""
    boto3.client("ecs").update_service(cluster="dev", service="web", taskDefinition=first)
    pipeline = plain.config_store.load().pipelines[0].model_copy(update={"keep_revisions": 1})
    # WHEN cleaning up THEN the revision ECS runs stays; the one no one runs goes
    report = housekeeping.clean_up(plain.store, plain.deps.stages.ecs, pipeline)
    assert report.deregistered == [runs[1].stages["dev"].task_definition_arn]
    assert active(first)


def test_when_ecs_cannot_say_what_runs_nothing_is_deregistered(plain: World) -> None:
    one_stage_pipeline(plain, "all")
    [release_dev(plain, f"r{n}", n) for n in (1, 2, 3)]
    pipeline = plain.config_store.load().pipelines[0].model_copy(update={"keep_revisions": 1})
    ecs = boto3.client("ecs")
    stub = Stubber(ecs)
    stub.add_client_error("describe_services", "AccessDeniedException", "not authorized", http_status_code=403)
    with stub:
        report = housekeeping.clean_up(plain.store, ecs, pipeline)
    assert report.deregistered == []
    assert report.note is not None
    assert report.note.startswith("cleaning up stopped: DescribeServices failed: AccessDeniedException")


def test_cleanup_keeps_what_a_stages_scheduled_tasks_still_run(world: World) -> None:
    # GIVEN prod's schedule failed to move once (deleted, then put back on an old revision by hand)
    first = release_everywhere(world, "one", "2026-11-29T10:00:00Z")
    old = first.stages["prod"].task_definition_arn or ""
    for n, hour in ((2, 11), (3, 12)):
        release_everywhere(world, f"more-{n}", f"2026-11-29T{hour}:00:00Z")
    boto3.client("scheduler").update_schedule(
        **housekeeping.update_schedule_request(boto3.client("scheduler").get_schedule(Name=DEMO_SCHEDULE), old)
    )
    pipeline = world.config_store.load().pipelines[0].model_copy(update={"keep_revisions": 1})
    # WHEN cleaning up
    report = housekeeping.clean_up(world.store, world.deps.stages.ecs, pipeline, world.deps.stages.schedules)
    # THEN the revision the schedule runs stays
    assert old not in report.deregistered
    assert active(old)
    assert first.stages["dev"].task_definition_arn in report.deregistered


def test_status_and_slack_show_the_cleanup(plain: World) -> None:
    from deployer.reporting import view_of
    from deployer.slack import status_blocks

    one_stage_pipeline(plain, "1")
    runs = [release_dev(plain, f"r{n}", n) for n in (1, 2, 3)]
    gone = short(runs[0].stages["dev"].task_definition_arn or "")
    said = f"deregistered {gone} (keepRevisions 1); 2 kept"
    assert f"cleanup   {said}" in render_table_of(plain, runs[-1])
    blocks = [b.to_dict() for b in status_blocks(view_of(runs[-1]))]
    texts = [b["text"]["text"] for b in blocks if b.get("type") == "section" and b.get("text")]
    assert f"*Scheduled tasks and revisions*\n• cleanup: {said}" in texts
    assert release_status(runs[-1]).to_json()["cleanup_text"] == said


def test_registrations_are_recorded_once_per_revision_and_stage(plain: World) -> None:
    one_stage_pipeline(plain, "all")
    run = release_dev(plain, "recorded", 1)
    (item,) = plain.store.registered_revisions("web", "web")
    assert item["arn"] == run.stages["dev"].task_definition_arn
    assert (item["stage"], item["release_id"]) == ("dev", run.release_id)
    assert StageState.DEPLOYED is run.stages["dev"].state
