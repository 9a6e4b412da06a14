"""`before:` a one-off ECS task run before a stage's service is updated (a database migration).

When a stage with `before: {task: migrate, command: [...]}` is about to deploy, its new revision is
registered as for any stage, then:

1. The intent is recorded on the stage (`before_state` STARTING, RunTask's `clientToken`), with the
   token indexed (`BEFORE#<token>`), before any task exists.
2. RunTask runs that revision with `overrides.containerOverrides[].command` in the step's container,
   placed and networked as the service is (its launch type or capacity provider strategy, platform
   version, awsvpc subnets, security groups and public IP, placement constraints and strategy, all
   read from DescribeServices), `startedBy` = "ecs-deployer/<token>" and tags naming the release and
   stage. The `clientToken` makes a redelivered event get the same task: "If you retry a request that
   completed successfully using the same client token and the same parameters, the retry succeeds
   without performing any further actions" (ECS API Reference, "Ensuring idempotency"; a RunTask
   token lives 24 hours). The task's ARN is recorded (RUNNING) and the Lambda returns.
3. ECS sends "ECS Task State Change" STOPPED; the TaskRule (template.yaml) lets through only tasks
   whose startedBy starts with "ecs-deployer/". `flow.on_task_stopped` finds the stage by the token:
   exit code 0 of the step's container deploys the stage (UpdateService with the same revision);
   anything else ends the release DEPLOY_FAILED with the exit code, ECS's stopped reason and a link
   to the container's CloudWatch Logs, nothing is deployed and the service's lock goes to whoever
   waits. A lost event is the reconciler's (DescribeTasks; StopTask past `timeoutMinutes`).

A rollback never runs the step: it returns a stage to a revision that already ran.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from deployer import aws
from deployer.errors import DeploymentError
from deployer.pipelines.overrides import before_overrides

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

    from deployer.events.ecs import EcsTaskStateChangeDetail

__all__ = [
    "STARTED_BY_PREFIX",
    "BeforeState",
    "TaskEnd",
    "describe_task",
    "log_link",
    "log_target",
    "run_task",
    "run_task_request",
    "started_by",
    "stop_task",
    "token_for",
    "token_of",
]

# RunTask's startedBy: "Up to 128 letters (uppercase and lowercase), numbers, hyphens (-), forward
# slash (/), and underscores (_) are allowed" (botocore's ECS model). A service's own tasks carry its
# deployment id ("ecs-svc/..."), so this prefix is the deployer's alone; TaskRule matches on it.
STARTED_BY_PREFIX: Final = "ecs-deployer/"
TOKEN_CHARS: Final = 32  # clientToken: up to 64 characters of ASCII 33-126; 32 hex digits here
TAG_RELEASE: Final = "ecs-deployer:release"
TAG_STAGE: Final = "ecs-deployer:stage"
TAG_STEP: Final = "ecs-deployer:before"
# The options of an awslogs container that name its logs (ECS API Reference, LogConfiguration).
_AWSLOGS: Final = "awslogs"


class BeforeState(enum.StrEnum):
    STARTING = "STARTING"  # intent recorded; RunTask may or may not have been sent
    RUNNING = "RUNNING"  # the task's ARN is recorded; waiting for its STOPPED event
    SUCCEEDED = "SUCCEEDED"  # the container exited 0: the stage deploys
    FAILED = "FAILED"  # any other end: the release ended DEPLOY_FAILED


WAITING: Final = frozenset({BeforeState.STARTING, BeforeState.RUNNING})


def token_for(release_id: str, stage: str, task_definition_arn: str) -> str:
    """RunTask's clientToken for this release, stage and revision: the same on every redelivery."""
    return hashlib.sha256(f"{release_id}|{stage}|{task_definition_arn}".encode()).hexdigest()[:TOKEN_CHARS]


def started_by(token: str) -> str:
    return f"{STARTED_BY_PREFIX}{token}"


def token_of(value: str | None) -> str | None:
    """The token in a task's startedBy, when the deployer started it; else None."""
    if not value or not value.startswith(STARTED_BY_PREFIX):
        return None
    token = value.removeprefix(STARTED_BY_PREFIX)
    return token if len(token) == TOKEN_CHARS and all(c in "0123456789abcdef" for c in token) else None


# -- the request ----------------------------------------------------------------------------------


def run_task_request(  # noqa: PLR0917 - one RunTask request, every part named
    cluster: str,
    service: Mapping[str, Any],
    task_definition_arn: str,
    container: str,
    command: Sequence[str],
    token: str,
    *,
    release_id: str,
    stage: str,
    step: str,
) -> dict[str, Any]:
    """RunTask for the step: the revision, the command in its container, and the service's own
    placement and networking as DescribeServices shows them (`service`)."""
    request: dict[str, Any] = {
        "cluster": cluster,
        "taskDefinition": task_definition_arn,
        "count": 1,
        "overrides": before_overrides(container, command),
        "startedBy": started_by(token),
        "clientToken": token,
        "tags": [
            {"key": TAG_RELEASE, "value": release_id[:256]},
            {"key": TAG_STAGE, "value": stage},
            {"key": TAG_STEP, "value": step},
        ],
    }
    strategy = service.get("capacityProviderStrategy")
    if strategy:
        request["capacityProviderStrategy"] = [dict(item) for item in strategy]
    elif service.get("launchType"):
        request["launchType"] = service["launchType"]
    if service.get("platformVersion"):
        request["platformVersion"] = service["platformVersion"]
    network = service.get("networkConfiguration")
    if network:
        request["networkConfiguration"] = {key: dict(value) for key, value in network.items()}
    for key in ("placementConstraints", "placementStrategy"):
        if service.get(key):
            request[key] = [dict(item) for item in service[key]]
    return request


def run_task(ecs: ECSClient, request: Mapping[str, Any]) -> str:
    """Send RunTask; the started task's ARN. A placement failure is a DeploymentError naming ECS's
    reason. A ConflictException names the task an earlier request with this clientToken started
    ("The resourceIds are the existing task ARNs which are already associated with the
    clientToken", botocore's ECS model): that task is the step's."""
    from botocore.exceptions import ClientError

    action = f"RunTask on {request['cluster']}"
    try:
        response = aws.call(action, ecs.run_task, **request)
    except DeploymentError as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientError) and aws.error_code(cause) == "ConflictException":
            existing: Any = cause.response.get("resourceIds")  # the modeled field, beside Error
            if isinstance(existing, list) and existing:
                return str(existing[0])
        raise
    tasks = response.get("tasks", [])
    if tasks and tasks[0].get("taskArn"):
        return str(tasks[0]["taskArn"])
    reasons = "; ".join(
        f"{failure.get('reason', 'unknown')}" + (f" ({failure['detail']})" if failure.get("detail") else "")
        for failure in response.get("failures", [])
    )
    raise DeploymentError(f"{action} started no task: {reasons or 'ECS gave no reason'}")


def stop_task(ecs: ECSClient, cluster: str, task_arn: str, reason: str) -> None:
    aws.call("StopTask", ecs.stop_task, cluster=cluster, task=task_arn, reason=reason[:255])


def describe_task(ecs: ECSClient, cluster: str, task_arn: str) -> dict[str, Any] | None:
    """The task as DescribeTasks shows it, or None when ECS no longer knows it."""
    response = aws.call("DescribeTasks", ecs.describe_tasks, cluster=cluster, tasks=[task_arn])
    tasks = response.get("tasks", [])
    return dict(tasks[0]) if tasks else None


# -- the container's logs -------------------------------------------------------------------------


def log_target(container: Mapping[str, Any], default_region: str | None) -> str | None:
    """ "region|group|stream prefix" of an awslogs container (the prefix may be empty), else None."""
    configuration = container.get("logConfiguration") or {}
    if configuration.get("logDriver") != _AWSLOGS:
        return None
    options = configuration.get("options") or {}
    group = options.get("awslogs-group")
    region = options.get("awslogs-region") or default_region
    if not group or not region:
        return None
    return f"{region}|{group}|{options.get('awslogs-stream-prefix') or ''}"


def log_link(target: str | None, container: str, task_arn: str) -> str | None:
    """The CloudWatch console link to the container's log stream. ECS names the stream
    "prefix-name/container-name/ecs-task-id" when awslogs-stream-prefix is set (ECS API Reference,
    LogConfiguration); without a prefix the stream is named after the Docker container id, which
    only the instance knows, so the link opens the log group. The link has the form AWS's own
    CodeBuild events use for a build's logs ("deep-link", CodeBuild User Guide, "Build notifications
    input format reference")."""
    if not target:
        return None
    region, group, prefix = target.split("|", 2)
    base = f"https://console.aws.amazon.com/cloudwatch/home?region={region}#logEvent:group={group}"
    if not prefix:
        return base
    task_id = task_arn.rsplit("/", 1)[-1]
    return f"{base};stream={prefix}/{container}/{task_id}"


# -- how the task ended ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskEnd:
    """A stopped task, from its "ECS Task State Change" event or from DescribeTasks."""

    task_arn: str
    stopped_reason: str | None
    stop_code: str | None
    exit_codes: Mapping[str, int | None]  # container name -> exit code (None: it never exited)
    container_reasons: Mapping[str, str | None]

    @classmethod
    def from_event(cls, detail: EcsTaskStateChangeDetail) -> TaskEnd:
        return cls(
            task_arn=detail.task_arn,
            stopped_reason=detail.stopped_reason,
            stop_code=detail.stop_code,
            exit_codes={c.name: c.exit_code for c in detail.containers},
            container_reasons={c.name: c.reason for c in detail.containers},
        )

    @classmethod
    def from_described(cls, task: Mapping[str, Any]) -> TaskEnd:
        containers = [c for c in task.get("containers") or [] if isinstance(c, Mapping)]
        return cls(
            task_arn=str(task.get("taskArn", "")),
            stopped_reason=task.get("stoppedReason"),
            stop_code=task.get("stopCode"),
            exit_codes={str(c.get("name")): c.get("exitCode") for c in containers},
            container_reasons={str(c.get("name")): c.get("reason") for c in containers},
        )

    def exit_code(self, container: str) -> int | None:
        return self.exit_codes.get(container)

    def succeeded(self, container: str) -> bool:
        """Only exit code 0 of the step's own container counts."""
        return self.exit_code(container) == 0

    def failure(self, container: str) -> str:
        """What went wrong, in one line: the exit code (or why there is none) and ECS's reason."""
        code = self.exit_code(container)
        if container not in self.exit_codes:
            what = f"container {container} is not in the stopped task"
        elif code is None:
            why = self.container_reasons.get(container)
            what = f"container {container} never exited" + (f" ({why})" if why else "")
        else:
            what = f"container {container} exited {code}"
        stopped = self.stopped_reason or "no reason given"
        return f"{what}; ECS: {stopped}" + (f" ({self.stop_code})" if self.stop_code else "")
