"""A stage of several services (`services: [web, worker]`) with the other features of a stage:
deploy-time settings, a before-task, scheduled tasks, old revisions, and what status, Slack, the
approval page, the report and rollbacks show or do.

AWS facts these tests rely on (each test that depends on one says which):
- Settings are per container. botocore's ECS model, ContainerDefinition.environment: "The
  environment variables to pass to a container"; ContainerDefinition.secrets: "The secrets to pass
  to the container". So a stage's settings keyed by container apply to every task definition that
  has that container, and to no other.
- A before-task is one task of one task definition in one network. Amazon ECS API Reference,
  "RunTask" (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_RunTask.html): "Starts
  a new task using the specified task definition."; botocore's ECS model, RunTask.networkConfiguration:
  "The network configuration for the task. This parameter is required for task definitions that
  use the awsvpc network mode". Services of one stage may run different task definitions in
  different subnets, so the task must be told whose (`before.service`).
- A scheduled task runs one task definition. botocore's scheduler model, EcsParameters.
  TaskDefinitionArn: "The Amazon Resource Name (ARN) of the task definition to use if the event
  target is an Amazon ECS task"; botocore's events model, EcsParameters.TaskDefinitionArn: "The ARN
  of the task definition to use if the event target is an Amazon ECS task." So each follows the
  service whose family it runs.
- Amazon ECS API Reference, "DeregisterTaskDefinition"
  (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeregisterTaskDefinition.html):
  "you can't update an existing service to reference an INACTIVE task definition". So every
  service's rollback target stays ACTIVE, in each family.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from deployer import before, reconciler
from deployer.approval_page import ApprovalPage, approval_page
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ApprovalDecidedEvent, RollbackRequestedEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent, EcsTaskStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.approval import on_approval
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment, on_task_stopped
from deployer.flow.push import on_push
from deployer.flow.rollback import on_rollback_requested, request_rollback
from deployer.pipelines.loader import check_config_text, load_config_text
from deployer.releases.model import Release, ReleaseState, StageState
from deployer.reporting import view_of
from deployer_cli.commands import rollback as cli_rollback
from deployer_cli.views import report
from deployer_cli.views.status import PipelineStatus, release_status, render_table
from deployer_cli.views.watch import change_line
from deployer_local.ecs_tasks import Tasks
from deployer_local.provision import ACCOUNT, web_task_definition
from tests.support.events import load_event
from tests.support.local_tasks import answered_by_tasks
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

REGION = "eu-west-1"
SECRET = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:worker/db-AbCdEf"
COMMAND = ["./manage.py", "migrate", "--noinput"]
APPROVER = "U012ABCDEF"


def pipeline_yaml(
    world: World,
    *,
    dev: str = "",
    prod: str | None = "",
    keep: int | None = None,
    approval: bool = False,
) -> str:
    """dev (then prod, unless `prod` is None) deploying web and worker in one step; `dev` and
    `prod` add keys to those stages."""
    text = (
        "pipelines:\n"
        "  - name: web\n"
        f"    repository: {world.account.repository}\n"
        "    branch: main\n"
        f"    build: {{project: {world.account.build_project}}}\n"
        "    container: web\n" + (f"    keepRevisions: {keep}\n" if keep is not None else "") + "    stages:\n"
        "      - name: dev\n"
        "        cluster: dev\n"
        "        services: [web, {name: worker, container: worker}]\n"
        "        rollout: {minimumHealthyPercent: 100, maximumPercent: 200, circuitBreaker: {rollback: true}}\n" + dev
    )
    if prod is None:
        return text
    return (
        text + "      - name: prod\n"
        "        cluster: prod\n"
        "        services: [web, {name: worker, container: worker}]\n"
        + (f"        approval: {{approvers: [{APPROVER}]}}\n" if approval else "")
        + "        rollout: {minimumHealthyPercent: 50, maximumPercent: 150}\n"
        + prod
    )


SETTINGS = (
    "        environment:\n"
    "          web: {LOG_LEVEL: warn}\n"
    "          worker: {QUEUE: jobs}\n"
    "          log-router: {FLB_LOG_LEVEL: info}\n"
    "        secrets:\n"
    f'          worker: {{DB_PASSWORD: "{SECRET}"}}\n'
)
BEFORE = f"        before: {{task: migrate, service: worker, command: {json.dumps(COMMAND)}}}\n"


@pytest.fixture
def tasks() -> Tasks:
    return Tasks()


@pytest.fixture
def world_options() -> dict[str, Any]:
    return {"workers": ("dev", "prod")}


@pytest.fixture
def world(world: World, tasks: Tasks) -> World:
    answered_by_tasks(world.deps.stages.ecs, tasks)  # the local stack's simulated tasks
    return world


def start(world: World, label: str, *, time: str = "2026-11-29T10:00:00Z") -> str:
    push = world.push(commit_id(label), time=time)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, push), world.deps)
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(started["release_id"])), world.deps)
    return str(started["release_id"])


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def complete(world: World, release_id: str, stage: str) -> dict[str, Any]:
    """ECS's SERVICE_DEPLOYMENT_COMPLETED for each service of the stage, one after the other."""
    outcome: dict[str, Any] = {}
    for svc in current(world, release_id).stages[stage].services or ():
        event: dict[str, Any] = load_event("ecs_deployment_completed")
        event["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{svc.cluster}/{svc.service}"]
        event["detail"]["deploymentId"] = svc.deployment_id
        event["detail"]["updatedAt"] = datetime.now(UTC).isoformat()
        outcome = on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)
    return outcome


def running(world: World, cluster: str, service: str) -> str:
    return str(world.ecs.describe_services(cluster=cluster, services=[service])["services"][0]["taskDefinition"])


def containers(world: World, arn: str) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in world.task_definition(arn)["taskDefinition"]["containerDefinitions"]}


def variables(container: dict[str, Any]) -> dict[str, str]:
    found = {e["name"]: e["value"] for e in container.get("environment", [])}
    found.update({s["name"]: f"secret:{s['valueFrom']}" for s in container.get("secrets", [])})
    return found


def short(arn: str | None) -> str:
    return (arn or "?").rsplit("/", 1)[-1]


def updates_sent(world: World) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []
    world.deps.stages.ecs.meta.events.register(
        "provide-client-params.ecs.UpdateService", lambda params, **_: sent.append(dict(params))
    )
    return sent


# -- deployer validate ---------------------------------------------------------------------------

VALIDATE = """
pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {project: web-app-build}
    container: web
    stages:
      - name: dev
        cluster: dev
        SERVICES
        BEFORE
"""


def validate(services: str, before_text: str) -> tuple[list[str], list[str]]:
    result = check_config_text(VALIDATE.replace("SERVICES", services).replace("BEFORE", before_text))
    return result.error_messages, result.warning_messages


@pytest.mark.parametrize(
    ("services", "before_text", "message"),
    [
        (
            "services: [web, {name: worker, container: worker}]",
            "before: {task: migrate, command: [./manage.py, migrate]}",
            "before.service: required: this stage deploys 2 services (web, worker); name the one whose new "
            "revision, placement and network configuration the task runs with",
        ),
        (
            "services: [web, worker]",
            "before: {task: migrate, service: api, command: [a]}",
            "before.service: 'api' is not a service of this stage (web, worker)",
        ),
        (
            "service: web",
            "before: {task: migrate, service: worker, command: [a]}",
            "before.service: 'worker' is not this stage's service (web): leave `service` out, or name web",
        ),
        (
            "services: [web, {name: worker, containers: [worker, cron]}]",
            "before: {task: migrate, service: worker, command: [a]}",
            "before.container: required: service worker replaces several containers (worker, cron); name the one "
            "that runs the command",
        ),
    ],
)
def test_validate_refuses_a_before_task_that_does_not_say_which_service_it_runs_with(
    services: str, before_text: str, message: str
) -> None:
    errors, _ = validate(services, before_text)
    assert any(message in error for error in errors), errors


def test_a_before_task_naming_its_service_takes_that_services_container_and_is_valid() -> None:
    # GIVEN the task runs with worker, whose entry swaps container `worker` (the pipeline's is `web`)
    services = "services: [web, {name: worker, container: worker}]"
    before_text = "before: {task: migrate, service: worker, command: [./manage.py, migrate]}"
    # THEN it is valid without a warning: the task runs in `worker`, the container the build replaces there
    assert validate(services, before_text) == ([], [])
    config = load_config_text(VALIDATE.replace("SERVICES", services).replace("BEFORE", before_text))
    pipeline = config.pipelines[0]
    stage = pipeline.stages[0]
    target = pipeline.before_target(stage)
    assert target is not None
    assert (target.service, target.containers) == ("worker", ("worker",))
    assert pipeline.before_container(stage) == "worker"


# -- settings: each revision gets those of the containers it has ----------------------------------


def test_settings_apply_to_each_revision_whose_task_definition_has_the_container(world: World) -> None:
    # GIVEN dev sets a variable in web, one and a secret in worker, one in log-router (a sidecar both have)
    world.publish(pipeline_yaml(world, dev=SETTINGS, prod=None))
    # WHEN the build succeeds
    release_id = start(world, "settings")
    release = current(world, release_id)
    record = release.stages["dev"]
    assert release.state is ReleaseState.DEPLOYING, release.reason
    web, worker = (s.task_definition_arn or "" for s in record.services or ())
    # THEN web's new revision carries web's and log-router's settings, and nothing of worker's
    registered = containers(world, web)
    assert variables(registered["web"]) == {"PORT": "8080", "LOG_LEVEL": "warn"}
    assert variables(registered["log-router"]) == {"FLB_LOG_LEVEL": "info"}
    # AND worker's carries worker's (the secret by reference) and log-router's, nothing of web's
    registered = containers(world, worker)
    assert variables(registered["worker"]) == {"PORT": "8080", "QUEUE": "jobs", "DB_PASSWORD": f"secret:{SECRET}"}
    assert variables(registered["log-router"]) == {"FLB_LOG_LEVEL": "info"}
    # AND both services run them; each revision is on record as the deployer's (cleanup may take it later)
    assert running(world, "dev", "web") == web
    assert running(world, "dev", "worker") == worker
    assert [r["arn"] for r in world.store.registered_revisions("web", "web")] == [web]
    assert [r["arn"] for r in world.store.registered_revisions("web", "worker")] == [worker]
    # AND the stage says what changed in each revision (a secret by name), for status and Slack
    assert record.settings == (
        f"web: LOG_LEVEL=warn (added); log-router: FLB_LOG_LEVEL=info (added) in {short(web)}; "
        f"worker: QUEUE=jobs (added), DB_PASSWORD (secret, added); log-router: FLB_LOG_LEVEL=info (added) "
        f"in {short(worker)}"
    )
    assert SECRET not in (record.settings or "")
    table = render_table([PipelineStatus("web", (release_status(release, ("dev",)),), "web-app", "main")], width=300)
    assert f"settings  dev {record.settings}" in table
    assert view_of(release).settings_line == record.settings


def test_settings_naming_a_container_no_service_has_refuse_the_stage_before_any_change(world: World) -> None:
    # GIVEN dev's settings name `api`, which neither web's nor worker's task definition has
    world.publish(pipeline_yaml(world, dev="        environment: {web: {A: b}, api: {LOG_LEVEL: warn}}\n", prod=None))
    before_web, before_worker = world.revisions("web"), world.revisions("worker")
    updates = updates_sent(world)
    # WHEN the build succeeds
    release_id = start(world, "no-api")
    # THEN the stage fails saying which containers each task definition has, nothing registered or updated
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    web, worker = (
        short(world.account.services["dev"].task_definition_arn),
        short(world.account.workers["dev"].task_definition_arn),
    )
    assert release.reason == (
        f"stage dev: the settings name container 'api' is in none of the stage's task definitions ({web} (web): "
        f"'web', 'log-router'; {worker} (worker): 'worker', 'log-router'): settings apply to every service whose "
        "task definition has the container, and at least one must (nothing was registered)"
    )
    assert (world.revisions("web"), world.revisions("worker")) == (before_web, before_worker)
    assert updates == []
    # AND each service says it was not deployed, and both locks are free
    assert [(s.service, s.state, s.reason) for s in release.stages["dev"].services or ()] == [
        ("web", StageState.FAILED, "not deployed"),
        ("worker", StageState.FAILED, "not deployed"),
    ]
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None


def test_the_approval_shows_the_settings_of_each_revision_and_each_services_plan(world: World) -> None:
    # GIVEN prod (web and worker) asks for an approval and sets the settings
    world.publish(pipeline_yaml(world, prod=SETTINGS, approval=True))
    release_id = start(world, "approve-settings")
    complete(world, release_id, "dev")
    release = current(world, release_id)
    assert release.state is ReleaseState.AWAITING_APPROVAL, release.reason
    context = release.approval_context or {}
    # THEN the approval holds each running revision's changes (secrets by reference) and each service's plan
    web, worker = (
        short(world.account.services["prod"].task_definition_arn),
        short(world.account.workers["prod"].task_definition_arn),
    )
    revisions = context["settings"]["revisions"]
    assert [(r["revision"], r["services"]) for r in revisions] == [(web, ["web"]), (worker, ["worker"])]
    assert [c["name"] for c in revisions[0]["changes"]] == ["LOG_LEVEL", "FLB_LOG_LEVEL"]
    assert [c["name"] for c in revisions[1]["changes"]] == ["QUEUE", "DB_PASSWORD", "FLB_LOG_LEVEL"]
    assert revisions[0]["role_note"] is None  # no secret in web's revision
    assert "secretsmanager:GetSecretValue" in revisions[1]["role_note"]
    assert [e["service"] for e in context["services"]] == ["prod/web", "prod/worker"]
    assert all(e.get("plan_line") for e in context["services"])
    assert context["settings_line"].endswith(f"in {worker}")
    # AND the page shows each revision's list under its own heading, the secret by reference only
    page = approval_page(
        ApprovalPage(
            release_id=release_id,
            pipeline="web",
            stage="prod",
            commit=release.commit,
            branch="main",
            pusher=None,
            image_uri=release.image_uri,
            image_digest=None,
            service=context["service"],
            current_task_definition=None,
            status=None,
            plan_text=None,
            plan_note=None,
            expires_at=datetime.now(UTC) + timedelta(hours=1),
            expires_in="1 h",
            approvers=[APPROVER],
            link_may_decide=False,
            settings=context["settings"],
        )
    )
    assert (
        f"Environment variables and secrets of the new revision of <code>{web}</code> (ECS service <code>web</code>)"
        in page
    )
    assert f"the new revision of <code>{worker}</code> (ECS service <code>worker</code>)" in page
    assert f"secret from <code>{SECRET}</code>" in page
    # AND Slack's message carries the one line
    assert view_of(release).settings_line == context["settings_line"]


# -- a before-task in a stage of several services ------------------------------------------------


def stopped(world: World, release: Release, stage: str, exit_code: int) -> EcsTaskStateChangeEvent:
    """The stage's before-task stopped (the sample event, moved to this task and container)."""
    record = release.stages[stage]
    assert record.before_task_arn
    assert record.before_token
    assert record.before_container
    event: dict[str, Any] = load_event("ecs_task_stopped")
    event["resources"] = [record.before_task_arn]
    detail = event["detail"]
    detail["taskArn"] = record.before_task_arn
    detail["clusterArn"] = f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{record.cluster}"
    detail["startedBy"] = before.started_by(record.before_token)
    for container in detail["containers"]:
        container["taskArn"] = record.before_task_arn
        container["name"] = record.before_container
        container["exitCode"] = exit_code
    return parse_event(EcsTaskStateChangeEvent, event)


@pytest.fixture
def worker_network(world: World) -> dict[str, Any]:
    """worker runs in a subnet and security group of its own (web keeps the demo's)."""
    ec2 = boto3.client("ec2")
    web = world.ecs.describe_services(cluster="dev", services=["web"])["services"][0]
    vpc = ec2.describe_subnets(SubnetIds=web["networkConfiguration"]["awsvpcConfiguration"]["subnets"])["Subnets"][0]
    subnet = ec2.create_subnet(VpcId=vpc["VpcId"], CidrBlock="10.42.9.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="worker", Description="worker tasks", VpcId=vpc["VpcId"])["GroupId"]
    network = {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}}
    world.ecs.update_service(cluster="dev", service="worker", networkConfiguration=network)
    return network


@pytest.mark.functional
def test_the_before_task_runs_once_with_the_named_services_revision_and_network_before_any_update(
    world: World, tasks: Tasks, worker_network: dict[str, Any]
) -> None:
    # GIVEN dev runs a migration with worker's new revision, worker in a network of its own
    world.publish(pipeline_yaml(world, dev=SETTINGS + BEFORE, prod=None))
    updates = updates_sent(world)
    # WHEN the build succeeds
    release_id = start(world, "migrate")
    release = current(world, release_id)
    record = release.stages["dev"]
    web, worker = (s.task_definition_arn or "" for s in record.services or ())
    # THEN both revisions are registered (with their settings), one task runs worker's, in worker's
    # network, with the command in container worker, and no service is updated yet
    (task,) = tasks.running()
    assert task.task_definition_arn == worker
    assert task.request["networkConfiguration"] == worker_network
    assert task.request["launchType"] == "FARGATE"
    assert task.overrides == {"containerOverrides": [{"name": "worker", "command": COMMAND}]}
    assert updates == []
    assert (running(world, "dev", "web"), running(world, "dev", "worker")) != (web, worker)
    assert variables(containers(world, worker)["worker"])["QUEUE"] == "jobs"
    assert (record.before_state, record.before_container, record.before_task_arn) == ("RUNNING", "worker", task.arn)
    assert [s.deployment_id for s in record.services or ()] == [None, None]
    assert record.settings
    assert "QUEUE=jobs" in record.settings
    assert release.reason == (
        f"before-task migrate running: task {short(task.arn)} on dev ({short(worker)}, container worker, "
        "service worker); web, worker are updated when it exits 0"
    )
    # WHEN the build event is delivered again THEN nothing more runs
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    assert len(tasks.running()) == 1
    assert updates == []
    # WHEN the task exits 0
    outcome = on_task_stopped(stopped(world, release, "dev", 0), world.deps)
    # THEN every service is updated to its own new revision, and the stage keeps its before-task's record
    assert outcome["outcome"] == "before_task_succeeded", outcome
    assert [(u["service"], u["taskDefinition"]) for u in updates] == [("web", web), ("worker", worker)]
    record = current(world, release_id).stages["dev"]
    assert all(s.deployment_id for s in record.services or ())
    assert (record.before_state, record.before_exit_code) == ("SUCCEEDED", 0)
    assert record.settings
    assert "QUEUE=jobs" in record.settings
    # AND the stage completes with both, as any stage of several services
    complete(world, release_id, "dev")
    assert current(world, release_id).state is ReleaseState.RELEASED
    assert current(world, release_id).state is ReleaseState.RELEASED


def test_a_failed_before_task_deploys_no_service_and_frees_every_lock(world: World, tasks: Tasks) -> None:
    world.publish(pipeline_yaml(world, dev=BEFORE, prod=None))
    updates = updates_sent(world)
    release_id = start(world, "migrate-fails")
    # WHEN the task exits 1
    outcome = on_task_stopped(stopped(world, current(world, release_id), "dev", 1), world.deps)
    # THEN the release fails, no service was updated, each says so, and both locks are free
    assert outcome["outcome"] == "before_task_failed"
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert "before-task migrate failed in dev: container worker exited 1" in (release.reason or "")
    assert updates == []
    assert [(s.service, s.state, s.reason) for s in release.stages["dev"].services or ()] == [
        ("web", StageState.FAILED, "not deployed"),
        ("worker", StageState.FAILED, "not deployed"),
    ]
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None


def test_a_before_task_past_its_timeout_is_stopped_and_frees_every_lock(world: World, tasks: Tasks) -> None:
    world.publish(pipeline_yaml(world, dev=BEFORE, prod=None))
    release_id = start(world, "migrate-hangs")
    arn = current(world, release_id).stages["dev"].before_task_arn
    # WHEN the sweep runs after the default 30 minutes, the task still running
    (outcome,) = reconciler.reconcile(world.deps, datetime.now(UTC) + timedelta(minutes=31))
    # THEN StopTask, DEPLOY_FAILED, nothing deployed, both services free
    assert outcome["stopped"] == arn
    assert tasks.running() == []
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert "did not finish within 30 minutes" in (release.reason or "")
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None


def test_a_before_task_that_fails_after_its_stage_left_the_configuration_frees_every_lock(
    world: World, tasks: Tasks
) -> None:
    world.publish(pipeline_yaml(world, dev=BEFORE, prod=None))
    release_id = start(world, "migrate-orphan")
    release = current(world, release_id)
    # GIVEN the pipeline is republished without dev while the task runs
    world.publish(pipeline_yaml(world, prod="").replace("      - name: dev\n", "      - name: qa\n", 1))
    # WHEN the task exits 1 THEN the release fails and both of dev's services are free again
    outcome = on_task_stopped(stopped(world, release, "dev", 1), world.deps)
    assert outcome["outcome"] == "before_task_failed"
    assert current(world, release_id).state is ReleaseState.DEPLOY_FAILED
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None


def released_twice(world: World, tasks: Tasks) -> tuple[Release, Release]:
    """Two releases of a dev-only pipeline with settings and a before-task, each RELEASED."""
    done = []
    for label, hour in (("first", 10), ("second", 11)):
        release_id = start(world, label, time=f"2026-11-29T{hour}:00:00Z")
        on_task_stopped(stopped(world, current(world, release_id), "dev", 0), world.deps)
        complete(world, release_id, "dev")
        assert current(world, release_id).state is ReleaseState.RELEASED
        done.append(current(world, release_id))
    return done[0], done[1]


def test_a_cli_rollback_puts_back_every_service_and_never_runs_the_before_task(world: World, tasks: Tasks) -> None:
    world.publish(pipeline_yaml(world, dev=SETTINGS + BEFORE, prod=None))
    first, _second = released_twice(world, tasks)
    ran = len(tasks._tasks)
    # WHEN dev is rolled back from the command line
    outcome = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, world.deps)
    # THEN both services go back to the first release's revisions (their settings with them), no task runs
    assert outcome["outcome"] == "deploying", outcome
    assert len(tasks._tasks) == ran
    back = {s.service: s.task_definition_arn for s in first.stages["dev"].services or ()}
    assert running(world, "dev", "web") == back["web"]
    assert running(world, "dev", "worker") == back["worker"]
    assert variables(containers(world, back["worker"] or "")["worker"])["QUEUE"] == "jobs"
    # AND the rollback completes with both services, without a before-task on its record
    complete(world, outcome["release_id"], "dev")
    assert current(world, outcome["release_id"]).state is ReleaseState.RELEASED
    rollback = current(world, outcome["release_id"])
    assert rollback.state is ReleaseState.RELEASED
    assert rollback.stages["dev"].before_task is None


def approved_and_released(world: World, label: str, hour: int) -> str:
    """A release of a dev-only pipeline whose dev asks for an approval: approved, its before-task
    exits 0, both services complete."""
    release_id = start(world, label, time=f"2026-11-29T{hour}:00:00Z")
    release = current(world, release_id)
    assert release.state is ReleaseState.AWAITING_APPROVAL, release.reason
    approval: dict[str, Any] = load_event("approval_decided_approve")
    approval["detail"].update(release_id=release_id, stage="dev", approval_id=release.approval_id)
    on_approval(parse_event(ApprovalDecidedEvent, approval), world.deps)
    on_task_stopped(stopped(world, current(world, release_id), "dev", 0), world.deps)
    complete(world, release_id, "dev")
    assert current(world, release_id).state is ReleaseState.RELEASED
    return release_id


def test_a_slack_rollback_puts_back_every_service_and_never_runs_the_before_task(world: World, tasks: Tasks) -> None:
    # GIVEN dev has approvers, so they may roll it back from Slack
    dev = SETTINGS + BEFORE + f"        approval: {{approvers: [{APPROVER}]}}\n"
    world.publish(pipeline_yaml(world, dev=dev, prod=None))
    first, second = (approved_and_released(world, label, hour) for label, hour in (("first", 10), ("second", 11)))
    ran = len(tasks._tasks)
    # WHEN an approver presses "Roll back dev" on the second release's message
    event: dict[str, Any] = load_event("approval_rollback_requested")
    event["detail"].update(pipeline="web", stage="dev", release_id=second)
    outcome = on_rollback_requested(parse_event(RollbackRequestedEvent, event), world.deps)
    # THEN both services go back to the first release's revisions, and no task runs
    assert outcome["outcome"] == "deploying", outcome
    assert len(tasks._tasks) == ran
    back = {s.service: s.task_definition_arn for s in current(world, first).stages["dev"].services or ()}
    assert (running(world, "dev", "web"), running(world, "dev", "worker")) == (back["web"], back["worker"])


def test_a_rollback_while_the_before_task_runs_ends_the_release_before_any_service_is_updated(
    world: World, tasks: Tasks
) -> None:
    world.publish(pipeline_yaml(world, dev=BEFORE, prod=None))
    updates = updates_sent(world)
    release_id = start(world, "migrating")
    task = current(world, release_id).stages["dev"].before_task_arn
    web, worker = running(world, "dev", "web"), running(world, "dev", "worker")
    pipeline = world.deps.config().pipelines[0]
    preview = cli_rollback.preview(world.store, pipeline, pipeline.stages[0])
    shown = preview.lines()
    # WHEN dev is rolled back while the migration runs
    outcome = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, world.deps)
    # THEN the release ends there, no service is updated, the rollback is RELEASED at once, locks free
    assert outcome["outcome"] == "cancelled", outcome
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert release.reason == (
        f"ada rolled dev back while its before-task migrate ({short(task)}) ran: nothing was deployed, the "
        f"services keep what they run (web {short(web)}, worker {short(worker)}); the task is left to finish "
        "and its end changes nothing"
    )
    assert updates == []
    assert current(world, outcome["release_id"]).state is ReleaseState.RELEASED
    assert world.store.lock_of("dev", "web") is None
    assert world.store.lock_of("dev", "worker") is None
    # AND `deployer rollback` said so before asking, and says what it did after
    assert shown == [
        "Roll back dev of web (ECS services dev/web, dev/worker):",
        f"  in flight   {release_id} runs its before-task migrate; no service is updated yet",
        f"  rollback    end that release before any service is updated; they keep web {short(web)}, worker "
        f"{short(worker)}",
    ]
    said = cli_rollback.report(outcome, preview, "ada")
    assert said.startswith(
        "Rolled back dev of web: its before-task was still running, so no service was updated.\n"
        f"  keeps       web {short(web)}, worker {short(worker)}\n"
        f"  undoes      {release_id}\n"
    )
    # AND the task, left to finish, changes nothing when it exits 0
    assert on_task_stopped(stopped(world, release, "dev", 0), world.deps)["outcome"] == "duplicate"
    assert updates == []
    assert (running(world, "dev", "web"), running(world, "dev", "worker")) == (web, worker)


# -- scheduled tasks: each follows the service whose family it runs ------------------------------


def make_rule(world: World, name: str, family_arn: str, cluster: str = "dev") -> None:
    events = boto3.client("events")
    cluster_arn = world.ecs.describe_clusters(clusters=[cluster])["clusters"][0]["clusterArn"]
    events.put_rule(Name=name, ScheduleExpression="rate(1 hour)", State="ENABLED")
    events.put_targets(
        Rule=name,
        Targets=[
            {
                "Id": name,
                "Arn": cluster_arn,
                "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/web-scheduled-tasks",
                "EcsParameters": {"TaskDefinitionArn": family_arn, "TaskCount": 1, "LaunchType": "FARGATE"},
            }
        ],
    )


def rule_runs(name: str) -> str:
    (target,) = boto3.client("events").list_targets_by_rule(Rule=name)["Targets"]
    return str(target["EcsParameters"]["TaskDefinitionArn"])


SCHEDULES = "        schedules: [{rule: web-cleanup}, {rule: worker-drain}]\n"


@pytest.mark.functional
def test_each_scheduled_task_follows_the_service_whose_family_it_runs_and_a_rollback_moves_them_back(
    world: World,
) -> None:
    # GIVEN a rule running web's family and one running worker's, in dev
    make_rule(world, "web-cleanup", world.account.services["dev"].task_definition_arn)
    make_rule(world, "worker-drain", world.account.workers["dev"].task_definition_arn)
    world.publish(pipeline_yaml(world, dev=SCHEDULES, prod=None))
    # WHEN two releases go through dev
    first = start(world, "first", time="2026-11-29T10:00:00Z")
    complete(world, first, "dev")
    second = start(world, "second", time="2026-11-29T11:00:00Z")
    complete(world, second, "dev")
    # THEN each rule runs its own service's new revision
    record = current(world, second).stages["dev"]
    web, worker = (s.task_definition_arn or "" for s in record.services or ())
    assert (rule_runs("web-cleanup"), rule_runs("worker-drain")) == (web, worker)
    assert [(m["name"], m["outcome"], m["task_definition"]) for m in record.schedules or ()] == [
        ("web-cleanup", "moved", web),
        ("worker-drain", "moved", worker),
    ]
    # WHEN dev is rolled back and its deployments complete THEN each goes back with its service
    outcome = request_rollback("web", "dev", {"kind": "cli", "principal": "ada"}, world.deps)
    complete(world, outcome["release_id"], "dev")
    back = {s.service: s.task_definition_arn for s in current(world, first).stages["dev"].services or ()}
    assert (rule_runs("web-cleanup"), rule_runs("worker-drain")) == (back["web"], back["worker"])


@pytest.mark.functional
def test_a_scheduled_task_running_none_of_the_services_families_refuses_the_stage_before_any_change(
    world: World,
) -> None:
    # GIVEN worker-drain runs a family that neither web nor worker runs
    other = world.ecs.register_task_definition(**web_task_definition(family="reports"))["taskDefinition"]
    make_rule(world, "web-cleanup", world.account.services["dev"].task_definition_arn)
    make_rule(world, "worker-drain", other["taskDefinitionArn"])
    world.publish(pipeline_yaml(world, dev=SCHEDULES, prod=None))
    revisions = (world.revisions("web"), world.revisions("worker"))
    # WHEN the build succeeds
    release_id = start(world, "refused")
    # THEN the stage is refused naming the families it runs, nothing registered
    release = current(world, release_id)
    assert release.state is ReleaseState.INVALID_CONFIG
    assert release.reason == (
        "stage dev: scheduled tasks refused: rule worker-drain: no ECS target runs families web or worker in "
        f"cluster dev (target worker-drain: runs reports:{other['revision']} (family reports) in cluster dev)"
    )
    assert (world.revisions("web"), world.revisions("worker")) == revisions


@pytest.mark.functional
def test_a_scheduled_task_of_a_family_two_services_run_in_different_revisions_is_refused(world: World) -> None:
    # GIVEN a third service, api, runs an older revision of web's family in dev, and a rule runs that family
    ecs = world.ecs
    older = ecs.register_task_definition(**web_task_definition())["taskDefinition"]["taskDefinitionArn"]
    web = ecs.describe_services(cluster="dev", services=["web"])["services"][0]
    ecs.create_service(
        cluster="dev",
        serviceName="api",
        taskDefinition=older,
        desiredCount=2,
        launchType="FARGATE",
        networkConfiguration=web["networkConfiguration"],
    )
    make_rule(world, "web-cleanup", world.account.services["dev"].task_definition_arn)
    text = pipeline_yaml(world, dev="        schedules: [{rule: web-cleanup}]\n", prod=None)
    world.publish(text.replace("services: [web, {name: worker", "services: [web, api, {name: worker"))
    # WHEN the build succeeds THEN the rule could follow only one new revision of web: refused, before any change
    release = current(world, start(world, "ambiguous"))
    assert release.state is ReleaseState.INVALID_CONFIG
    first = short(world.account.services["dev"].task_definition_arn)
    assert release.reason == (
        f"stage dev: scheduled tasks refused: rule web-cleanup: runs family web, which services web ({first}) and "
        f"api ({short(older)}) each get a new revision of: it could follow only one of their new revisions; give "
        "those services task definition families of their own"
    )


# -- old revisions: every family the stage's services run ------------------------------------------


def active(world: World, arn: str) -> bool:
    return world.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"] == "ACTIVE"


def test_cleanup_covers_every_family_the_stages_services_run(world: World) -> None:
    # GIVEN dev deploys web and worker, keeping one revision per family
    world.publish(pipeline_yaml(world, prod=None, keep=1))
    runs = []
    for n in (1, 2, 3):
        release_id = start(world, f"r{n}", time=f"2026-11-29T1{n}:00:00Z")
        complete(world, release_id, "dev")
        assert current(world, release_id).state is ReleaseState.RELEASED
        runs.append(
            {s.service: s.task_definition_arn or "" for s in current(world, release_id).stages["dev"].services or ()}
        )
    # THEN in both families the first release's revision went; the second's (the rollback target) and the
    # third's (running) stay; the revisions the deployer did not register are untouched
    for service in ("web", "worker"):
        assert [active(world, run[service]) for run in runs] == [False, True, True], service
    assert active(world, world.account.services["dev"].task_definition_arn)
    assert active(world, world.account.workers["dev"].task_definition_arn)
    (cleanup,) = [r.cleanup for r in world.store.list_releases("web") if r.cleanup and r.cleanup["deregistered"]]
    assert sorted(cleanup["deregistered"]) == sorted([runs[0]["web"], runs[0]["worker"]])


# -- status --watch, the report ------------------------------------------------------------------


def test_the_watch_line_says_where_each_service_stands_while_the_stage_deploys(world: World) -> None:
    world.publish(pipeline_yaml(world, prod=None))
    release_id = start(world, "watched")
    record = current(world, release_id).stages["dev"]
    web = next(s for s in record.services or () if s.service == "web")
    event: dict[str, Any] = load_event("ecs_deployment_completed")
    event["resources"] = [f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/dev/web"]
    event["detail"]["deploymentId"] = web.deployment_id
    on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)
    line = change_line(current(world, release_id), datetime(2026, 11, 29, 12, 0, tzinfo=UTC), ("dev",))
    assert "[dev DEPLOYING (web DEPLOYED, worker DEPLOYING)]" in line
    assert line.endswith("waiting for worker")


def test_the_report_counts_a_stage_of_several_services_as_one_deployment(world: World) -> None:
    world.publish(pipeline_yaml(world))
    for n in (1, 2):
        release_id = start(world, f"r{n}", time=f"2026-11-29T1{n}:00:00Z")
        complete(world, release_id, "dev")
        complete(world, release_id, "prod")
        assert current(world, release_id).state is ReleaseState.RELEASED
    figures = report.compute(
        "web",
        world.store.list_releases("web"),
        stages=("dev", "prod"),
        since=datetime(2026, 1, 1, tzinfo=UTC),
        until=datetime.now(UTC) + timedelta(days=1),
    )
    assert figures.stage == "prod"
    assert len(figures.deployments) == 2
    assert figures.attempted == 2
    assert figures.failures == ()
