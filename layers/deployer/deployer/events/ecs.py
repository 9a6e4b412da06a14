"""ECS's events: "ECS Deployment State Change" (a service deployment in progress, completed or
failed), "ECS Hook State Change" (a lifecycle hook, PAUSE included) and "ECS Task State Change" (the
deployer's before-tasks)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Self

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from deployer.events.envelope import EventBridgeEnvelope, _Deferred, _truncated

__all__ = [
    "ECS_DEPLOYMENT_STATE_CHANGE",
    "ECS_HOOK_STATE_CHANGE",
    "ECS_SOURCE",
    "ECS_TASK_STATE_CHANGE",
    "DeploymentEvent",
    "EcsDeploymentStateChangeDetail",
    "EcsDeploymentStateChangeEvent",
    "EcsHookStateChangeDetail",
    "EcsHookStateChangeEvent",
    "EcsTaskContainer",
    "EcsTaskStateChangeDetail",
    "EcsTaskStateChangeEvent",
    "HookEvent",
]
EcsSource = Literal["aws.ecs"]
EcsDeploymentStateChange = Literal["ECS Deployment State Change"]
EcsHookStateChange = Literal["ECS Hook State Change"]
EcsTaskStateChange = Literal["ECS Task State Change"]
ECS_SOURCE: Final[EcsSource] = "aws.ecs"
ECS_DEPLOYMENT_STATE_CHANGE: Final[EcsDeploymentStateChange] = "ECS Deployment State Change"
ECS_HOOK_STATE_CHANGE: Final[EcsHookStateChange] = "ECS Hook State Change"
ECS_TASK_STATE_CHANGE: Final[EcsTaskStateChange] = "ECS Task State Change"


# --- ECS "ECS Deployment State Change" ---------------------------------------------------------
# Shape: Amazon ECS Developer Guide, "Amazon ECS service deployment state change events"
# (docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_service_deployment_events.html):
# eventType, eventName, deploymentId, updatedAt, reason; a rollback starts with an IN_PROGRESS
# event whose reason reads "ECS deployment circuit breaker: rolling back to deploymentId ...";
# FAILED is sent only with the circuit breaker on. The detail names no cluster or service: they
# come from resources[0], a service ARN in the long format (service/<cluster>/<service>).


class DeploymentEvent(StrEnum):
    IN_PROGRESS = "SERVICE_DEPLOYMENT_IN_PROGRESS"
    COMPLETED = "SERVICE_DEPLOYMENT_COMPLETED"
    FAILED = "SERVICE_DEPLOYMENT_FAILED"
    UNKNOWN = "UNKNOWN"
    """An event name this code does not know: tolerated, and acted upon by nobody."""


# Cluster and service names: up to 255 letters, digits, hyphens and underscores.
_SERVICE_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:service/"
    r"(?P<cluster>[A-Za-z0-9_-]{1,255})/(?P<service>[A-Za-z0-9_-]{1,255})"
)


class EcsDeploymentStateChangeDetail(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    event_type: Literal["INFO", "WARN", "ERROR"] = Field(alias="eventType")
    event_name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(alias="eventName")
    # Equals the PRIMARY deployment id UpdateService returned ("ecs-svc/6405940160831029548").
    deployment_id: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$")] = Field(alias="deploymentId")
    updated_at: datetime = Field(alias="updatedAt")
    reason: str | None = None

    @property
    def deployment_event(self) -> DeploymentEvent:
        try:
            return DeploymentEvent(self.event_name)
        except ValueError:
            return DeploymentEvent.UNKNOWN

    @property
    def is_rollback(self) -> bool:
        """ECS started rolling back (circuit breaker or alarms): the deployment being watched failed."""
        return (
            self.deployment_event is DeploymentEvent.IN_PROGRESS
            and self.reason is not None
            and "rolling back" in self.reason.casefold()
        )


class EcsDeploymentStateChangeEvent(EventBridgeEnvelope):
    source: EcsSource
    detail_type: EcsDeploymentStateChange = Field(alias="detail-type")
    detail: EcsDeploymentStateChangeDetail

    @field_validator("resources")
    @classmethod
    def _names_a_service(cls, resources: list[str]) -> list[str]:
        if not resources:
            raise ValueError("empty: no service ARN")
        if _SERVICE_ARN.fullmatch(resources[0]) is None:
            raise ValueError("resources[0] is not an ECS service ARN (...:service/<cluster>/<service>)")
        return resources

    @property
    def cluster_name(self) -> str:
        return self._cluster_and_service()[0]

    @property
    def service_name(self) -> str:
        return self._cluster_and_service()[1]

    def _cluster_and_service(self) -> tuple[str, str]:
        cluster, service = self.resources[0].rsplit(":service/", 1)[1].split("/")
        return cluster, service

    @property
    def deployment_event(self) -> DeploymentEvent:
        return self.detail.deployment_event

    @property
    def is_rollback(self) -> bool:
        return self.detail.is_rollback


# --- ECS "ECS Hook State Change" ---------------------------------------------------------------
# Shape: Amazon ECS Developer Guide, "Amazon ECS service deployment hook state change events"
# (docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_hook_state_change_events.html): "These
# events are emitted when a deployment lifecycle hook changes status"; eventName HOOK_IN_PROGRESS,
# HOOK_AWAITING_ACTION, HOOK_SUCCEEDED, HOOK_FAILED or HOOK_TIMED_OUT; resources[0] is the
# service-deployment ARN and the detail carries hookId, hookType, expiresAt, lifecycleStage,
# clusterArn, serviceArn, serviceDeploymentArn and updatedAt (no deploymentId). The same example
# on "Pause hooks for Amazon ECS service deployments" (pause-lifecycle-hooks.html) has no
# resources at all, so the service comes from the detail: the service-deployment ARN
# (service-deployment/<cluster>/<service>/<id>), which ContinueServiceDeployment also takes.
# updatedAt arrives with nanoseconds ("2026-03-05T15:54:41.618059641Z"): pydantic keeps microseconds.


class HookEvent(StrEnum):
    """The documented eventName values of "ECS Hook State Change"."""

    IN_PROGRESS = "HOOK_IN_PROGRESS"
    AWAITING_ACTION = "HOOK_AWAITING_ACTION"
    SUCCEEDED = "HOOK_SUCCEEDED"
    FAILED = "HOOK_FAILED"
    TIMED_OUT = "HOOK_TIMED_OUT"
    UNKNOWN = "UNKNOWN"
    """An event name this code does not know: tolerated, and acted upon by nobody."""


_ECS_NAME: Final = r"[A-Za-z0-9_-]{1,255}"
_SERVICE_DEPLOYMENT_ARN: Final = re.compile(
    rf"arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{{12}}:service-deployment/(?P<cluster>{_ECS_NAME})/"
    rf"(?P<service>{_ECS_NAME})/[A-Za-z0-9_-]{{1,255}}"
)
_CLUSTER_ARN: Final = re.compile(rf"arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{{12}}:cluster/(?P<cluster>{_ECS_NAME})")
# A service ARN in the long format (service/<cluster>/<service>) or the old short one (service/<service>).
_ANY_SERVICE_ARN: Final = re.compile(
    rf"arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{{12}}:service/(?:(?P<cluster>{_ECS_NAME})/)?(?P<service>{_ECS_NAME})"
)
StageName = Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,64}$")]


class EcsHookStateChangeDetail(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    event_type: Annotated[str, StringConstraints(max_length=32)] | None = Field(None, alias="eventType")
    event_name: StageName = Field(alias="eventName")
    # ContinueServiceDeployment's hookId ("ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw")
    hook_id: Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,256}$")] = Field(alias="hookId")
    # PAUSE or AWS_LAMBDA (DeploymentLifecycleHookDetail.targetType); kept open for new types
    hook_type: Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,32}$")] = Field(alias="hookType")
    lifecycle_stage: StageName = Field(alias="lifecycleStage")
    service_deployment_arn: str = Field(alias="serviceDeploymentArn", max_length=2048)
    cluster_arn: str | None = Field(None, alias="clusterArn", max_length=2048)
    service_arn: str | None = Field(None, alias="serviceArn", max_length=2048)
    expires_at: AwareDatetime | None = Field(None, alias="expiresAt")
    updated_at: datetime | None = Field(None, alias="updatedAt")
    reason: Annotated[str, StringConstraints(max_length=2048)] | None = None

    @model_validator(mode="after")
    def _one_service(self) -> Self:
        deployment = _SERVICE_DEPLOYMENT_ARN.fullmatch(self.service_deployment_arn)
        if deployment is None:
            raise ValueError(
                "serviceDeploymentArn is not an ECS service deployment ARN "
                "(...:service-deployment/<cluster>/<service>/<id>)"
            )
        if self.service_arn is not None:
            service = _ANY_SERVICE_ARN.fullmatch(self.service_arn)
            if service is None:
                raise ValueError("serviceArn is not an ECS service ARN (...:service/<cluster>/<service>)")
            if service["service"] != deployment["service"] or service["cluster"] not in {None, deployment["cluster"]}:
                raise ValueError("serviceArn names another service than serviceDeploymentArn")
        if self.cluster_arn is not None:
            cluster = _CLUSTER_ARN.fullmatch(self.cluster_arn)
            if cluster is None:
                raise ValueError("clusterArn is not an ECS cluster ARN (...:cluster/<cluster>)")
            if cluster["cluster"] != deployment["cluster"]:
                raise ValueError("clusterArn names another cluster than serviceDeploymentArn")
        return self

    @property
    def hook_event(self) -> HookEvent:
        try:
            return HookEvent(self.event_name)
        except ValueError:
            return HookEvent.UNKNOWN


class EcsHookStateChangeEvent(EventBridgeEnvelope):
    """A lifecycle hook of a service deployment changed status; the service deployment, its
    cluster and service are named by the detail."""

    source: EcsSource
    detail_type: EcsHookStateChange = Field(alias="detail-type")
    detail: EcsHookStateChangeDetail
    # The documented example names the service deployment here; the same example on the pause
    # hooks page has no resources. Nothing reads it; a service deployment named here must be the
    # detail's.
    resources: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _resources_agree(self) -> Self:
        for resource in self.resources:
            if ":service-deployment/" in resource and resource != self.detail.service_deployment_arn:
                raise ValueError("resources names another service deployment than detail.serviceDeploymentArn")
        return self

    @property
    def cluster_name(self) -> str:
        return self._cluster_and_service()[0]

    @property
    def service_name(self) -> str:
        return self._cluster_and_service()[1]

    def _cluster_and_service(self) -> tuple[str, str]:
        match = _SERVICE_DEPLOYMENT_ARN.fullmatch(self.detail.service_deployment_arn)
        assert match is not None  # the detail's validator checked it
        return match["cluster"], match["service"]

    @property
    def hook_event(self) -> HookEvent:
        return self.detail.hook_event

    @property
    def is_pause(self) -> bool:
        return self.detail.hook_type == "PAUSE"


# --- ECS "ECS Task State Change" ---------------------------------------------------------------
# Shape: Amazon ECS Developer Guide, "Amazon ECS task state change events"
# (docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_task_events.html): "Task state change
# events are delivered in the following format. The detail section below resembles the Task object
# that is returned from a DescribeTasks API operation"; its example (tests/support/documented.py)
# names the task in resources[0] and carries clusterArn, taskArn, taskDefinitionArn, group,
# lastStatus, desiredStatus, containers[] (name, lastStatus, ...) and ISO timestamps. A stopped
# task adds what the Task object documents (botocore's ECS model, shapes Task and Container):
# stoppedReason, stopCode (TaskFailedToStart, EssentialContainerExited, UserInitiated, ...),
# stoppedAt, startedBy ("If an Amazon ECS service started the task, the startedBy parameter
# contains the deployment ID of that service") and each container's exitCode and reason. The
# deployer reads its own before-tasks' STOPPED events (`deployer.before`); the fields it reads are
# typed, the rest left loose.

_TASK_ARN: Final = re.compile(
    rf"arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{{12}}:task/(?:(?P<cluster>{_ECS_NAME})/)?[A-Za-z0-9-]{{1,64}}"
)
_TASK_DEFINITION_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:task-definition/[A-Za-z0-9_-]{1,255}:[0-9]{1,10}"
)


class EcsTaskContainer(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    name: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    last_status: Annotated[str, StringConstraints(max_length=64)] | None = Field(None, alias="lastStatus")
    # A process's exit status; Windows containers report 32-bit codes, hence the wide range.
    exit_code: Annotated[int, Field(ge=-(2**31), le=2**32)] | None = Field(None, alias="exitCode")
    reason: Annotated[str | None, BeforeValidator(_truncated(1024))] = None


class EcsTaskStateChangeDetail(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    cluster_arn: str = Field(alias="clusterArn", max_length=2048)
    task_arn: str = Field(alias="taskArn", max_length=2048)
    task_definition_arn: str = Field(alias="taskDefinitionArn", max_length=2048)
    last_status: Annotated[str, StringConstraints(pattern=r"^[A-Z_]{1,32}$")] = Field(alias="lastStatus")
    desired_status: Annotated[str, StringConstraints(max_length=32)] | None = Field(None, alias="desiredStatus")
    # RunTask's startedBy: "Up to 128 letters (uppercase and lowercase), numbers, hyphens (-), forward
    # slash (/), and underscores (_) are allowed" (botocore's ECS model).
    started_by: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9/_-]{1,128}$")] | None = Field(
        None, alias="startedBy"
    )
    group: Annotated[str, StringConstraints(max_length=255)] | None = None
    stopped_reason: Annotated[str | None, BeforeValidator(_truncated(1024))] = Field(None, alias="stoppedReason")
    stop_code: Annotated[str, StringConstraints(pattern=r"^[A-Za-z]{1,64}$")] | None = Field(None, alias="stopCode")
    stopped_at: datetime | None = Field(None, alias="stoppedAt")
    containers: list[EcsTaskContainer] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _arns(self) -> Self:
        task = _TASK_ARN.fullmatch(self.task_arn)
        if task is None:
            raise ValueError("taskArn is not an ECS task ARN (...:task/<cluster>/<id>)")
        cluster = _CLUSTER_ARN.fullmatch(self.cluster_arn)
        if cluster is None:
            raise ValueError("clusterArn is not an ECS cluster ARN (...:cluster/<cluster>)")
        if task["cluster"] not in {None, cluster["cluster"]}:
            raise ValueError("taskArn names another cluster than clusterArn")
        if _TASK_DEFINITION_ARN.fullmatch(self.task_definition_arn) is None:
            raise ValueError("taskDefinitionArn is not an ECS task definition ARN (...:task-definition/<family>:<n>)")
        return self

    @property
    def cluster_name(self) -> str:
        match = _CLUSTER_ARN.fullmatch(self.cluster_arn)
        assert match is not None  # checked above
        return match["cluster"]

    @property
    def stopped(self) -> bool:
        return self.last_status == "STOPPED"


class EcsTaskStateChangeEvent(EventBridgeEnvelope):
    """A task changed state; the deployer acts on the STOPPED of the before-tasks it started."""

    source: EcsSource
    detail_type: EcsTaskStateChange = Field(alias="detail-type")
    detail: EcsTaskStateChangeDetail
    resources: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(default_factory=list, max_length=10)

    @model_validator(mode="after")
    def _resources_agree(self) -> Self:
        for resource in self.resources:
            if ":task/" in resource and resource != self.detail.task_arn:
                raise ValueError("resources names another task than detail.taskArn")
        return self
