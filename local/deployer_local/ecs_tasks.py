"""The local stack's standalone tasks: RunTask, DescribeTasks and StopTask answered from records,
for the before-tasks the deployer runs (`deployer.before`). Everything here is SIMULATED.

moto 5.2.5's RunTask fails on a task definition whose containers set no memory of their own, and on
any awsvpc task (it reads `private_dns_name` from an EC2 network interface that has none), which
every Fargate service's task is. The local stack's ECS front (`deployer_local.ecs_front.EcsFront`)
therefore answers these three operations from `Tasks`, in ECS's JSON shapes (botocore's ECS model:
RunTask, DescribeTasks, StopTask, Task, Container, Failure), and `BeforeTaskSimulator`
(`deployer_local.simulate`) ends each task and sends its "ECS Task State Change" STOPPED event.
DescribeTasks and StopTask of a task this does not know go on to moto.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from deployer_local.ecs_front import TASK_OPERATIONS, EcsApiError

__all__ = ["TASK_OPERATIONS", "TaskRecord", "Tasks"]

MAX_DESCRIBE_TASKS: Final = 100  # DescribeTasks: up to 100 tasks


def _now() -> datetime:
    return datetime.now(UTC)


def _epoch(moment: datetime | None) -> float | None:
    return moment.timestamp() if moment is not None else None


@dataclass
class TaskRecord:
    arn: str
    cluster_arn: str
    task_definition_arn: str
    started_by: str
    group: str
    overrides: dict[str, Any]
    tags: list[dict[str, str]]
    launch_type: str | None
    created_at: datetime
    client_token: str | None = None
    request: dict[str, Any] = field(default_factory=dict, repr=False)
    last_status: str = "RUNNING"
    stopped_reason: str | None = None
    stop_code: str | None = None
    stopped_at: datetime | None = None
    exit_codes: dict[str, int | None] = field(default_factory=dict)

    @property
    def cluster(self) -> str:
        return self.cluster_arn.rsplit("/", 1)[-1]

    @property
    def containers(self) -> list[str]:
        return [str(o.get("name")) for o in self.overrides.get("containerOverrides", []) if o.get("name")]

    @property
    def command(self) -> list[str]:
        for override in self.overrides.get("containerOverrides", []):
            return [str(part) for part in override.get("command") or []]
        return []

    def tag(self, key: str) -> str | None:
        return next((t.get("value") for t in self.tags if t.get("key") == key), None)

    def wire(self) -> dict[str, Any]:
        """The Task object as DescribeTasks (JSON, epoch seconds) shows it."""
        task: dict[str, Any] = {
            "taskArn": self.arn,
            "clusterArn": self.cluster_arn,
            "taskDefinitionArn": self.task_definition_arn,
            "startedBy": self.started_by,
            "group": self.group,
            "overrides": self.overrides,
            "tags": self.tags,
            "lastStatus": self.last_status,
            "desiredStatus": "STOPPED" if self.last_status == "STOPPED" else "RUNNING",
            "createdAt": _epoch(self.created_at),
            "containers": [
                {
                    "name": name,
                    "taskArn": self.arn,
                    "lastStatus": self.last_status,
                    **({"exitCode": self.exit_codes[name]} if self.exit_codes.get(name) is not None else {}),
                }
                for name in self.containers
            ],
        }
        if self.launch_type:
            task["launchType"] = self.launch_type
        for key, value in (("stoppedReason", self.stopped_reason), ("stopCode", self.stop_code)):
            if value:
                task[key] = value
        if self.stopped_at is not None:
            task["stoppedAt"] = _epoch(self.stopped_at)
        return task


class Tasks:
    """The simulated tasks and the three API calls on them. Thread-safe (the front's request threads
    and the simulator's thread)."""

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self._tasks: dict[str, TaskRecord] = {}
        self._tokens: dict[tuple[str, str], str] = {}  # (cluster, clientToken) -> task ARN

    def knows(self, task: str) -> bool:
        with self.lock:
            return self._find(task) is not None

    def running(self) -> list[TaskRecord]:
        with self.lock:
            return sorted((t for t in self._tasks.values() if t.last_status == "RUNNING"), key=lambda t: t.created_at)

    def finish(self, arn: str, exit_code: int, reason: str = "Essential container in task exited") -> TaskRecord:
        """The task's containers exited: STOPPED, EssentialContainerExited."""
        with self.lock:
            task = self._tasks[arn]
            if task.last_status != "STOPPED":
                task.last_status, task.stopped_reason, task.stop_code = "STOPPED", reason, "EssentialContainerExited"
                task.stopped_at = self._clock()
                task.exit_codes = dict.fromkeys(task.containers, exit_code)
            return task

    def _find(self, task: str) -> TaskRecord | None:
        return self._tasks.get(task) or next(
            (t for t in self._tasks.values() if t.arn.rsplit("/", 1)[-1] == task), None
        )

    # -- the API ------------------------------------------------------------------------------

    def answer(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
        if operation == "RunTask":
            return self.run_task(request)
        if operation == "DescribeTasks":
            return self.describe_tasks(request)
        if operation == "StopTask":
            return self.stop_task(request)
        raise EcsApiError("InvalidParameterException", f"{operation} is not simulated here.")

    def run_task(self, request: Mapping[str, Any]) -> dict[str, Any]:
        definition = request.get("taskDefinition")
        if not isinstance(definition, str) or ":task-definition/" not in definition:
            raise EcsApiError("InvalidParameterException", "taskDefinition must be a task definition ARN here.")
        if request.get("count", 1) != 1:
            raise EcsApiError("InvalidParameterException", "the simulated ECS runs one task per RunTask.")
        if request.get("launchType") and request.get("capacityProviderStrategy"):
            raise EcsApiError(
                "InvalidParameterException", "Specify either Launch Type or Capacity Provider Strategy, but not both."
            )
        cluster = str(request.get("cluster") or "default").rsplit("/", 1)[-1]
        head = definition.split(":task-definition/", 1)[0]  # arn:aws:ecs:<region>:<account>
        token = request.get("clientToken")
        body = {k: v for k, v in request.items() if k != "clientToken"}
        with self.lock:
            if isinstance(token, str) and (cluster, token) in self._tokens:
                existing = self._tasks[self._tokens[(cluster, token)]]
                if existing.request != body:
                    error = EcsApiError(
                        "ConflictException", "The clientToken is already in use with a different RunTask request."
                    )
                    error.extra = {"resourceIds": [existing.arn]}
                    raise error
                return {"tasks": [existing.wire()], "failures": []}
            family = definition.rsplit("/", 1)[-1].split(":", 1)[0]
            task = TaskRecord(
                arn=f"{head}:task/{cluster}/{uuid.uuid4().hex}",
                cluster_arn=f"{head}:cluster/{cluster}",
                task_definition_arn=definition,
                started_by=str(request.get("startedBy") or ""),
                group=str(request.get("group") or f"family:{family}"),
                overrides=dict(request.get("overrides") or {}),
                tags=[dict(t) for t in request.get("tags") or []],
                launch_type=request.get("launchType"),
                created_at=self._clock(),
                client_token=token if isinstance(token, str) else None,
                request=body,
            )
            self._tasks[task.arn] = task
            if task.client_token:
                self._tokens[(cluster, task.client_token)] = task.arn
            return {"tasks": [task.wire()], "failures": []}

    def describe_tasks(self, request: Mapping[str, Any]) -> dict[str, Any]:
        names = request.get("tasks")
        if not isinstance(names, list) or not names or len(names) > MAX_DESCRIBE_TASKS:
            raise EcsApiError("InvalidParameterException", f"tasks must list 1 to {MAX_DESCRIBE_TASKS} tasks.")
        tasks, failures = [], []
        with self.lock:
            for name in names:
                found = self._find(str(name))
                if found is None:
                    failures.append({"arn": str(name), "reason": "MISSING"})
                else:
                    tasks.append(found.wire())
        return {"tasks": tasks, "failures": failures}

    def stop_task(self, request: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            found = self._find(str(request.get("task") or ""))
            if found is None:
                raise EcsApiError("InvalidParameterException", "The referenced task was not found.")
            if found.last_status != "STOPPED":
                found.last_status, found.stop_code = "STOPPED", "UserInitiated"
                found.stopped_reason = str(request.get("reason") or "Task stopped by user")
                found.stopped_at = self._clock()
            return {"task": found.wire()}
