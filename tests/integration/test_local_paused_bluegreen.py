"""A paused blue/green deployment on the local stack: the ECS rollout simulator walks a BLUE_GREEN
deployment's lifecycle stages in moto server, pauses at its PAUSE hook (HOOK_AWAITING_ACTION), and
the answer given through the ECS front (ContinueServiceDeployment, StopServiceDeployment) or the
hook's timeout decides what follows: the COMPLETED event, or the rollback events the simulated
circuit breaker sends, with a reason that says why.

The last test runs the whole local stack: a real `git push`, the build and dev (simulated), prod's
BLUE_GREEN deployment paused after its test traffic shift, the approval page's Approve, and the
release RELEASED.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from deployer import ecs_deployments
from deployer.events.ecs import EcsHookStateChangeEvent
from deployer.events.parse import parse_event
from deployer_local.ecs_front import EcsFront, ServiceDeployments
from deployer_local.provision import DemoAccount, provision_demo, web_task_definition
from deployer_local.simulate import HOOK_AWAITING_ACTION, HOOK_TIMED_OUT, EcsRolloutSimulator
from tests.support.documented import AWS_HOOK_AWAITING_ACTION_EXAMPLE

pytestmark = pytest.mark.integration

START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def paused_blue_green(timeout_minutes: int = 30, action: str = "ROLLBACK") -> dict[str, Any]:
    """What the deployer sends for `approval: {at: POST_TEST_TRAFFIC_SHIFT}` with
    `rollout: {strategy: BLUE_GREEN, bakeTimeInMinutes: 10}` (`action` other than ROLLBACK: a hook
    someone else configured)."""
    hook = ecs_deployments.pause_hook("POST_TEST_TRAFFIC_SHIFT", timeout_minutes)
    hook["timeoutConfiguration"]["action"] = action
    return {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 10, "lifecycleHooks": [hook]}


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Rig:
    """moto server behind the ECS front; the simulator watching dev/web through the front, as the
    local stack runs it; what it emitted and printed."""

    def __init__(self, aws: str, front: EcsFront, deployments: ServiceDeployments, clock: Clock) -> None:
        self.account: DemoAccount = provision_demo()
        # Any: the pinned mypy-boto3-ecs stubs predate the service deployment calls
        self.ecs: Any = boto3.client("ecs", endpoint_url=front.url)
        self.moto_ecs: Any = boto3.client("ecs", endpoint_url=aws)
        self.deployments = deployments
        self.events: list[dict[str, Any]] = []
        self.printed: list[str] = []
        self.started: dict[str, tuple[str, str]] = {}
        self.releases = itertools.count(1)
        self.simulator = EcsRolloutSimulator(
            self.ecs,
            self.started.get,
            self.events.append,
            self.printed.append,
            clock=clock,
            service_deployments=deployments,
        )
        self.simulator.watch("dev", "web")
        self.simulator.poll_once()  # sees dev/web as it runs before the deployer touches it

    @property
    def first_task_definition(self) -> str:
        return self.account.services["dev"].task_definition_arn

    def deploy(self, configuration: dict[str, Any]) -> str:
        """What the deployer does: a new revision, UpdateService with the stage's configuration."""
        arn = self.moto_ecs.register_task_definition(**web_task_definition(image=self.account.first_image))[
            "taskDefinition"
        ]["taskDefinitionArn"]
        service = self.ecs.update_service(
            cluster="dev", service="web", taskDefinition=arn, deploymentConfiguration=configuration
        )["service"]
        deployment_id = next(d["id"] for d in service["deployments"] if d["status"] == "PRIMARY")
        # moto keeps one deployment id per service: a deployment is new per (id, release)
        self.started[deployment_id] = (f"web@{next(self.releases):040x}", "dev")
        return str(deployment_id)

    def poll(self) -> list[dict[str, Any]]:
        return self.simulator.poll_once()

    def names(self, events: list[dict[str, Any]]) -> list[str]:
        return [event["detail"]["eventName"] for event in events]

    def task_definition(self) -> str:
        return str(self.moto_ecs.describe_services(cluster="dev", services=["web"])["services"][0]["taskDefinition"])


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rig(aws: str, clock: Clock) -> Iterator[Rig]:
    deployments = ServiceDeployments(clock)
    with EcsFront(aws, deployments) as front:
        yield Rig(aws, front, deployments, clock)


def pause(rig: Rig, configuration: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """Deploy with a PAUSE hook and poll: the deployment id and the HOOK_AWAITING_ACTION event."""
    deployment_id = rig.deploy(configuration or paused_blue_green())
    (event,) = rig.poll()
    return deployment_id, event


def test_a_blue_green_deployment_pauses_at_its_hook_and_says_so(rig: Rig) -> None:
    # WHEN the deployer starts a BLUE_GREEN deployment with a PAUSE hook after the test traffic shift
    _, event = pause(rig)
    # THEN ECS's "ECS Hook State Change" HOOK_AWAITING_ACTION event was sent, in the documented
    # shape (ECS developer guide, "Amazon ECS service deployment hook state change events"): the
    # service deployment in resources and in the detail, with the hook, its type, stage and expiry
    assert event["detail-type"] == "ECS Hook State Change"
    assert event["source"] == "aws.ecs"
    detail = event["detail"]
    assert detail["serviceDeploymentArn"].startswith("arn:aws:ecs:eu-west-1:123456789012:service-deployment/dev/web/")
    assert event["resources"] == [detail["serviceDeploymentArn"]]
    assert sorted(detail) == sorted(json.loads(AWS_HOOK_AWAITING_ACTION_EXAMPLE)["detail"])
    assert detail["eventType"] == "INFO"
    assert detail["eventName"] == HOOK_AWAITING_ACTION
    assert detail["hookType"] == "PAUSE"
    assert detail["lifecycleStage"] == "POST_TEST_TRAFFIC_SHIFT"
    assert detail["clusterArn"] == "arn:aws:ecs:eu-west-1:123456789012:cluster/dev"
    assert detail["serviceArn"] == "arn:aws:ecs:eu-west-1:123456789012:service/dev/web"
    assert detail["hookId"].startswith("ecs-pause-")
    assert detail["expiresAt"] == "2026-11-29T12:30:00Z"
    # AND the deployer's model reads it
    parsed = parse_event(EcsHookStateChangeEvent, event)
    assert (parsed.cluster_name, parsed.service_name, parsed.detail.hook_id) == ("dev", "web", detail["hookId"])
    # AND the deployer, reading the pause as it does (ListServiceDeployments, then Describe), finds it
    view = ecs_deployments.in_flight(rig.ecs, "dev", "web")
    assert view is not None
    hook = ecs_deployments.paused_hook(view)
    assert hook is not None
    assert (view.arn, view.status, view.lifecycle_stage) == (
        detail["serviceDeploymentArn"],
        "IN_PROGRESS",
        "POST_TEST_TRAFFIC_SHIFT",
    )
    assert (hook.hook_id, hook.timeout_action, hook.expires_at) == (
        detail["hookId"],
        "ROLLBACK",
        START + timedelta(minutes=30),
    )
    # AND green was scaled up and took the test traffic, blue still has production traffic
    (described,) = rig.ecs.describe_service_deployments(serviceDeploymentArns=[view.arn])["serviceDeployments"]
    assert described["targetServiceRevision"]["runningTaskCount"] == 2
    assert described["targetServiceRevision"]["requestedTestTrafficWeight"] == 100.0
    assert described["targetServiceRevision"]["requestedProductionTrafficWeight"] == 0.0
    assert described["sourceServiceRevisions"][0]["requestedProductionTrafficWeight"] == 100.0
    # AND it said what ECS did, SIMULATED, stage by stage, and nothing else happens while paused
    assert all(line.startswith("SIMULATED ECS rollout of dev/web:") for line in rig.printed)
    text = "\n".join(rig.printed)
    for said in (
        "BLUE_GREEN",
        "SCALE_UP",
        "TEST_TRAFFIC_SHIFT",
        "PAUSED at POST_TEST_TRAFFIC_SHIFT",
        HOOK_AWAITING_ACTION,
    ):
        assert said in text
    assert "PRODUCTION_TRAFFIC_SHIFT" not in text
    assert rig.poll() == []


def test_continue_goes_on_to_production_traffic_and_completes(rig: Rig) -> None:
    deployment_id, event = pause(rig)
    arn, hook_id = event["detail"]["serviceDeploymentArn"], event["detail"]["hookId"]
    rig.printed.clear()
    # WHEN the approval continues the pause (ContinueServiceDeployment CONTINUE, through the front)
    ecs_deployments.decide(rig.ecs, arn, hook_id, "CONTINUE")
    (completed,) = rig.poll()
    # THEN the deployment went on and completed, with ECS's COMPLETED event for it
    assert completed["detail-type"] == "ECS Deployment State Change"
    assert completed["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED"
    assert completed["detail"]["deploymentId"] == deployment_id
    (described,) = rig.ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"]
    assert described["status"] == "SUCCESSFUL"
    assert described["lifecycleHookDetails"][0]["status"] == "SUCCEEDED"
    assert described["targetServiceRevision"]["requestedProductionTrafficWeight"] == 100.0
    assert described["sourceServiceRevisions"][0]["runningTaskCount"] == 0
    assert (
        rig.ecs.list_service_deployments(cluster="dev", service="web", status=["IN_PROGRESS"])["serviceDeployments"]
        == []
    )
    # AND it said the production shift happened and that the bake was shortened for the simulation
    text = "\n".join(rig.printed)
    assert "continued by ContinueServiceDeployment CONTINUE" in text
    assert "PRODUCTION_TRAFFIC_SHIFT: 100% of production traffic on green" in text
    assert "BAKE_TIME: bakeTimeInMinutes 10" in text
    assert "shortened" in text
    assert rig.printed[-1].endswith("completed: SERVICE_DEPLOYMENT_COMPLETED sent")
    # AND the service runs the new revision
    assert rig.task_definition() != rig.first_task_definition


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("continue-rollback", "rolled back by ContinueServiceDeployment ROLLBACK"),
        ("stop-rollback", "rolled back by StopServiceDeployment ROLLBACK"),
    ],
)
def test_a_rollback_sends_the_rollback_events_and_says_why(rig: Rig, answer: str, why: str) -> None:
    deployment_id, event = pause(rig)
    arn, hook_id = event["detail"]["serviceDeploymentArn"], event["detail"]["hookId"]
    # WHEN the pause is rejected, or the deployment in flight is stopped with a rollback
    if answer == "continue-rollback":
        ecs_deployments.decide(rig.ecs, arn, hook_id, "ROLLBACK")
    else:
        ecs_deployments.stop_with_rollback(rig.ecs, arn)
    rolling_back, failed = rig.poll()
    # THEN the events the simulated circuit breaker sends, with the reason of this rollback
    assert rig.names([rolling_back, failed]) == ["SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_FAILED"]
    assert rolling_back["detail"]["deploymentId"] != deployment_id
    assert why in rolling_back["detail"]["reason"]
    assert "rolling back to deploymentId ecs-svc/" in rolling_back["detail"]["reason"]
    assert failed["detail"]["deploymentId"] == deployment_id
    assert why in failed["detail"]["reason"]
    # AND the service runs what it ran before; ECS records the rollback and why
    assert rig.task_definition() == rig.first_task_definition
    (described,) = rig.ecs.describe_service_deployments(serviceDeploymentArns=[arn])["serviceDeployments"]
    assert described["status"] == "ROLLBACK_SUCCESSFUL"
    assert described["rollback"]["reason"] == why
    assert any(why in line for line in rig.printed)
    # AND the hook can no longer be answered
    with pytest.raises(ClientError) as late:
        rig.ecs.continue_service_deployment(serviceDeploymentArn=arn, hookId=hook_id, action="CONTINUE")
    assert late.value.response["Error"]["Code"] == "InvalidParameterException"


def test_a_pause_nobody_answers_times_out_and_ecs_rolls_back(rig: Rig, clock: Clock) -> None:
    deployment_id, event = pause(rig, paused_blue_green(timeout_minutes=30))
    arn = event["detail"]["serviceDeploymentArn"]
    clock.now = START + timedelta(minutes=29)
    assert rig.poll() == []
    # WHEN the hook's time is up
    clock.now = START + timedelta(minutes=30)
    timed_out, rolling_back, failed = rig.poll()
    # THEN HOOK_TIMED_OUT, then the rollback (the timeout action), with the timeout as the reason
    assert timed_out["detail-type"] == "ECS Hook State Change"
    assert timed_out["detail"]["eventName"] == HOOK_TIMED_OUT
    assert timed_out["detail"]["hookId"] == event["detail"]["hookId"]
    assert rig.names([rolling_back, failed]) == ["SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_FAILED"]
    assert "timed out after 30 min" in failed["detail"]["reason"]
    assert failed["detail"]["deploymentId"] == deployment_id
    # AND DescribeServiceDeployments shows the hook TIMED_OUT, as the deployer reads it
    (view,) = ecs_deployments.describe(rig.ecs, [arn])
    assert [h.status for h in view.hooks] == ["TIMED_OUT"]
    assert view.hooks[0].timed_out
    assert view.status == "ROLLBACK_SUCCESSFUL"
    assert rig.task_definition() == rig.first_task_definition


def test_a_timeout_whose_action_is_continue_goes_on(rig: Rig, clock: Clock) -> None:
    pause(rig, paused_blue_green(timeout_minutes=5, action="CONTINUE"))
    clock.now = START + timedelta(minutes=5)
    timed_out, completed = rig.poll()
    assert rig.names([timed_out, completed]) == [HOOK_TIMED_OUT, "SERVICE_DEPLOYMENT_COMPLETED"]


def test_a_short_hook_timeout_for_tests_is_used_and_said(rig: Rig) -> None:
    rig.simulator.hook_timeout = timedelta(seconds=2)
    _, event = pause(rig, paused_blue_green(timeout_minutes=1440))
    (view,) = ecs_deployments.describe(rig.ecs, [event["detail"]["serviceDeploymentArn"]])
    assert view.hooks[0].expires_at == START + timedelta(seconds=2)
    assert any("timeoutInMinutes 1440, shortened to 2 s for the simulation" in line for line in rig.printed)


def test_a_linear_deployment_pauses_before_every_production_shift(rig: Rig) -> None:
    configuration = {
        "strategy": "LINEAR",
        "linearConfiguration": {"stepPercent": 50.0, "stepBakeTimeInMinutes": 3},
        "lifecycleHooks": [ecs_deployments.pause_hook("PRE_PRODUCTION_TRAFFIC_SHIFT", 60)],
    }
    _, first = pause(rig, configuration)
    assert first["detail"]["lifecycleStage"] == "PRE_PRODUCTION_TRAFFIC_SHIFT"
    (view,) = ecs_deployments.describe(rig.ecs, [first["detail"]["serviceDeploymentArn"]])
    assert view.lifecycle_stage == "PRODUCTION_TRAFFIC_SHIFT"  # ECS's lifecycle stages have no PRE_ one
    ecs_deployments.decide(rig.ecs, first["detail"]["serviceDeploymentArn"], first["detail"]["hookId"], "CONTINUE")
    (second,) = rig.poll()
    assert second["detail"]["eventName"] == HOOK_AWAITING_ACTION
    assert second["detail"]["hookId"] != first["detail"]["hookId"]
    assert any("50% of production traffic on green" in line and "shortened" in line for line in rig.printed)
    ecs_deployments.decide(rig.ecs, second["detail"]["serviceDeploymentArn"], second["detail"]["hookId"], "CONTINUE")
    (completed,) = rig.poll()
    assert completed["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED"


def test_a_blue_green_stage_asked_to_fail_rolls_back_before_any_traffic_moves(rig: Rig) -> None:
    rig.simulator.fail_stages = frozenset({"dev"})
    deployment_id = rig.deploy(paused_blue_green())
    rolling_back, failed = rig.poll()
    assert rig.names([rolling_back, failed]) == ["SERVICE_DEPLOYMENT_IN_PROGRESS", "SERVICE_DEPLOYMENT_FAILED"]
    assert failed["detail"]["reason"] == "ECS deployment circuit breaker: tasks failed to start."
    assert failed["detail"]["deploymentId"] == deployment_id
    assert rig.task_definition() == rig.first_task_definition
    assert not any("PAUSED" in line or "TEST_TRAFFIC_SHIFT" in line for line in rig.printed)


def test_rolling_deployments_are_simulated_as_before_and_listed_as_service_deployments(rig: Rig) -> None:
    deployment_id = rig.deploy({"minimumHealthyPercent": 100, "maximumPercent": 200})
    (completed,) = rig.poll()
    assert completed["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED"
    assert completed["detail"]["deploymentId"] == deployment_id
    assert "[■ ■ □ □]  start 2" in "\n".join(rig.printed)
    (brief,) = rig.ecs.list_service_deployments(cluster="dev", service="web")["serviceDeployments"]
    assert brief["status"] == "SUCCESSFUL"


# -- the whole local stack ---------------------------------------------------------------------

DEVELOPER = {"user.name": "Ada Developer", "user.email": "ada@example.com"}


@pytest.fixture
def stack_log() -> list[str]:
    return []


@pytest.fixture
def blue_green_stack(tmp_path: Path, build_dir: Path, stack_log: list[str]) -> Iterator[Callable[..., Any]]:
    """Starts `make demo-bluegreen`'s stack (prod BLUE_GREEN, approved while paused) on a copy of
    the build, with extra StackOptions; stops it afterwards and restores the process environment
    (which the stack points at its moto server and ECS front)."""
    from deployer_local.stack import LocalStack, StackOptions

    build_copy = tmp_path / "build"
    shutil.copytree(build_dir, build_copy, symlinks=True)

    def printer(text: str) -> None:
        stack_log.append(text)
        print(text)

    saved = dict(os.environ)
    git_config = tmp_path / "gitconfig"
    git_config.write_text(f"[user]\n\tname = {DEVELOPER['user.name']}\n\temail = {DEVELOPER['user.email']}\n")
    os.environ.update({"GIT_CONFIG_GLOBAL": str(git_config), "GIT_CONFIG_NOSYSTEM": "1"})
    started: list[LocalStack] = []

    def start(**options: Any) -> LocalStack:
        root = tmp_path / "local"
        stack = LocalStack(
            StackOptions(root=root, build_dir=build_copy, step_delay=0, blue_green=True, **options), printer=printer
        )
        started.append(stack)
        return stack.start()

    try:
        yield start
    finally:
        for stack in started:
            stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def push_a_commit(remote: Path, workdir: Path, change: str = "Greet in French") -> str:
    """Commit a change in a clone of `remote` (made once in `workdir`) and push it to main."""
    from deployer_local.gitremote import clone_and_seed

    clone = clone_and_seed(remote, workdir)

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True, text=True).stdout.strip()

    with (clone / "CHANGELOG.md").open("a", encoding="utf-8") as changelog:
        changelog.write(f"- {change}\n")
    git("add", "CHANGELOG.md")
    git("commit", "-q", "-m", change)
    git("push", "-q", "origin", "HEAD:main")
    return git("rev-parse", "HEAD")


def reach(stack: Any, stack_log: list[str], states: set[Any], timeout: float = 90, commit: str | None = None) -> Any:
    """demo.wait_for (of `commit`'s release, when given), failing with what the stack said rather
    than only a timeout."""
    from deployer_local.demo import wait_for

    deadline = time.monotonic() + timeout
    try:
        while True:
            release = wait_for(stack, states, timeout=max(0.1, deadline - time.monotonic()))
            if commit is None or release.commit == commit:
                return release
            if time.monotonic() > deadline:
                raise TimeoutError(f"the release of {commit} did not reach {sorted(s.value for s in states)}")
            time.sleep(0.2)
    except TimeoutError as late:
        errors = [line for line in stack_log if "ERROR" in line] or stack_log[-15:]
        pytest.fail(f"{late}; the stack said:\n" + "\n".join(errors), pytrace=False)


def settled(ecs: Any, arn: str, timeout: float = 30) -> ecs_deployments.ServiceDeploymentView:
    """The service deployment once the simulator has carried out what was asked of it (it polls
    on its own thread: the release's state can change before the deployment's does)."""
    deadline = time.monotonic() + timeout
    while True:
        (view,) = ecs_deployments.describe(ecs, [arn])
        if view.status not in {
            "PENDING",
            "IN_PROGRESS",
            "ROLLBACK_REQUESTED",
            "ROLLBACK_IN_PROGRESS",
            "STOP_REQUESTED",
        }:
            return view
        if time.monotonic() > deadline:
            pytest.fail(f"{arn} is still {view.status} after {timeout:.0f} s", pytrace=False)
        time.sleep(0.1)


def reject_on_the_page(link: str) -> int:
    """POST the approval page's form with the Reject button, as a browser does."""
    data = urllib.parse.urlencode({"decision": "reject"}).encode()
    request = urllib.request.Request(link, data=data, method="POST")
    request.add_header("content-type", "application/x-www-form-urlencoded")
    with urllib.request.urlopen(request, timeout=30) as answer:
        return int(answer.status)


def test_the_local_stack_pauses_prod_and_the_approval_page_continues_it_to_released(
    blue_green_stack: Callable[..., Any], stack_log: list[str], tmp_path: Path
) -> None:
    from deployer.releases.model import ReleaseState
    from deployer_local.demo import DONE, WAITING, approval_link, approve_like_a_browser

    stack = blue_green_stack()
    # GIVEN a pushed commit: built, deployed to dev, then prod's BLUE_GREEN deployment started
    commit = push_a_commit(stack.remote, tmp_path / "work")
    # THEN ECS (simulated) paused it after the test traffic shift, and the deployer asks for approval
    waiting = reach(stack, stack_log, WAITING | DONE, commit=commit)
    assert (waiting.state, waiting.stage, waiting.commit) == (ReleaseState.AWAITING_APPROVAL, "prod", commit), (
        waiting.reason
    )
    assert "POST_TEST_TRAFFIC_SHIFT" in (waiting.reason or "")
    text = "\n".join(stack_log)
    assert "SIMULATED ECS rollout of prod/web:" in text
    assert "PAUSED at POST_TEST_TRAFFIC_SHIFT" in text
    ecs = boto3.client("ecs")  # through the stack's front: AWS_ENDPOINT_URL_ECS
    view = ecs_deployments.in_flight(ecs, "prod", "web")
    assert view is not None
    assert ecs_deployments.paused_hook(view) is not None
    # WHEN the approver approves on the approval page (GET the page, POST its form)
    approve_like_a_browser(approval_link(stack))
    # THEN ECS continues: production traffic moves to green, the deployment completes, RELEASED
    released = reach(stack, stack_log, DONE, commit=commit)
    assert released.state is ReleaseState.RELEASED, released.reason
    assert "continued by ContinueServiceDeployment CONTINUE" in "\n".join(stack_log)
    assert settled(ecs, view.arn).status == "SUCCESSFUL"
    prod = ecs.describe_services(cluster="prod", services=["web"])["services"][0]
    assert prod["taskDefinition"] == released.stages["prod"].task_definition_arn


def test_on_the_local_stack_a_rejected_pause_rolls_back_and_an_unanswered_one_times_out(
    blue_green_stack: Callable[..., Any], stack_log: list[str], tmp_path: Path
) -> None:
    from deployer.releases.model import ReleaseState
    from deployer_local.demo import DONE, WAITING, approval_link

    stack = blue_green_stack(hook_timeout_seconds=15)
    ecs = boto3.client("ecs")  # through the stack's front
    first_revision = stack.account.services["prod"].task_definition_arn
    # GIVEN prod paused for its approval
    first = push_a_commit(stack.remote, tmp_path / "work", "First")
    waiting = reach(stack, stack_log, WAITING | DONE, commit=first)
    assert (waiting.state, waiting.stage) == (ReleaseState.AWAITING_APPROVAL, "prod"), waiting.reason
    paused = ecs_deployments.in_flight(ecs, "prod", "web")
    assert paused is not None
    # WHEN the approver rejects it on the approval page
    assert reject_on_the_page(approval_link(stack)) == 200
    # THEN ECS rolls back (ContinueServiceDeployment ROLLBACK): the release is REJECTED, prod runs what it ran
    rejected = reach(stack, stack_log, DONE, commit=first)
    assert rejected.state is ReleaseState.REJECTED, rejected.reason
    rolled_back = settled(ecs, paused.arn)
    assert rolled_back.status == "ROLLBACK_SUCCESSFUL"
    assert rolled_back.status_reason == "Rolled back by ContinueServiceDeployment ROLLBACK."
    assert ecs.describe_services(cluster="prod", services=["web"])["services"][0]["taskDefinition"] == first_revision

    # GIVEN the next commit paused the same way
    second = push_a_commit(stack.remote, tmp_path / "work", "Second")
    waiting = reach(stack, stack_log, WAITING | DONE, commit=second)
    assert waiting.state is ReleaseState.AWAITING_APPROVAL, waiting.reason
    paused = ecs_deployments.in_flight(ecs, "prod", "web")
    assert paused is not None
    # WHEN nobody answers before the hook's (shortened) timeout
    ended = reach(stack, stack_log, DONE, timeout=60, commit=second)
    # THEN ECS reported HOOK_TIMED_OUT and took the timeout action; the release ended without prod
    assert ended.state is not ReleaseState.RELEASED
    assert "timed out" in (ended.reason or "")
    assert any(f"{HOOK_TIMED_OUT} sent" in line for line in stack_log)
    timed_out = settled(ecs, paused.arn)
    assert timed_out.status == "ROLLBACK_SUCCESSFUL"
    assert [hook.status for hook in timed_out.hooks] == ["TIMED_OUT"]
    assert ecs.describe_services(cluster="prod", services=["web"])["services"][0]["taskDefinition"] == first_revision
