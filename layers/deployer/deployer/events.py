"""Models of the events the deployer consumes and emits, and the one way to parse them.

Every model is an EventBridge envelope (`EventBridgeEnvelope`) whose `source`, `detail-type` and
`detail` are pinned to one kind of event, so a model refuses any other kind. Powertools ships no
models for CodeCommit, CodeBuild or ECS deployment events: these are ours. The envelope has the
fields and types of Powertools' `EventBridgeModel` without importing Powertools' parser, whose
models package builds the models of every event source it knows (about 100 ms of a cold start).

Unknown fields are ignored, because AWS adds fields to its events without notice. Known fields
are typed strictly enough that garbage is refused at the edge (commit ids are 40 hex digits,
names are bounded), while a field nothing reads is typed loosely, so that a change AWS makes to
it cannot make the deployer drop an event it needs.

`parse_event` turns a refusal into `BadInput` with a short message: never the event itself, which
may carry secrets (build environment variables) and may be huge.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Final, Literal, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    IPvAnyAddress,
    JsonValue,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from deployer.errors import BadInput

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

__all__ = [
    "APPROVAL_DECIDED",
    "CODEBUILD_SOURCE",
    "CODEBUILD_STATE_CHANGE",
    "CODECOMMIT_SOURCE",
    "CODECOMMIT_STATE_CHANGE",
    "ECS_DEPLOYMENT_STATE_CHANGE",
    "ECS_HOOK_STATE_CHANGE",
    "ECS_SOURCE",
    "ECS_TASK_STATE_CHANGE",
    "FINAL_BUILD_STATUSES",
    "MAX_MESSAGE_CHARS",
    "REF_NAME_MAX",
    "RELEASE_STATE_CHANGE",
    "ROLLBACK_REQUESTED",
    "SOURCE",
    "ApprovalDecidedDetail",
    "ApprovalDecidedEvent",
    "BuildStatus",
    "CodeBuildStateChangeDetail",
    "CodeBuildStateChangeEvent",
    "CodeCommitReferenceDetail",
    "CodeCommitReferenceEvent",
    "DecidedBy",
    "DeployerDetail",
    "DeploymentEvent",
    "EcsDeploymentStateChangeDetail",
    "EcsDeploymentStateChangeEvent",
    "EcsHookStateChangeDetail",
    "EcsHookStateChangeEvent",
    "EcsTaskContainer",
    "EcsTaskStateChangeDetail",
    "EcsTaskStateChangeEvent",
    "EventBridgeEnvelope",
    "HookEvent",
    "ReleaseStateChangeDetail",
    "ReleaseStateChangeEvent",
    "ResponseUrl",
    "RollbackRequestedDetail",
    "RollbackRequestedEvent",
    "parse_event",
    "put_events_entry",
]

# --- Sources and detail types ------------------------------------------------------------------
# Each constant is typed by its own Literal, so mypy proves the models pin the same strings.

CodeCommitSource = Literal["aws.codecommit"]
CodeCommitStateChange = Literal["CodeCommit Repository State Change"]
CodeBuildSource = Literal["aws.codebuild"]
CodeBuildStateChange = Literal["CodeBuild Build State Change"]
EcsSource = Literal["aws.ecs"]
EcsDeploymentStateChange = Literal["ECS Deployment State Change"]
EcsHookStateChange = Literal["ECS Hook State Change"]
EcsTaskStateChange = Literal["ECS Task State Change"]
DeployerSource = Literal["ecs-deployer"]
ApprovalDecidedType = Literal["Approval Decided"]
RollbackRequestedType = Literal["Rollback Requested"]
ReleaseStateChangeType = Literal["Release State Change"]

CODECOMMIT_SOURCE: Final[CodeCommitSource] = "aws.codecommit"
CODECOMMIT_STATE_CHANGE: Final[CodeCommitStateChange] = "CodeCommit Repository State Change"
CODEBUILD_SOURCE: Final[CodeBuildSource] = "aws.codebuild"
CODEBUILD_STATE_CHANGE: Final[CodeBuildStateChange] = "CodeBuild Build State Change"
ECS_SOURCE: Final[EcsSource] = "aws.ecs"
ECS_DEPLOYMENT_STATE_CHANGE: Final[EcsDeploymentStateChange] = "ECS Deployment State Change"
ECS_HOOK_STATE_CHANGE: Final[EcsHookStateChange] = "ECS Hook State Change"
ECS_TASK_STATE_CHANGE: Final[EcsTaskStateChange] = "ECS Task State Change"
SOURCE: Final[DeployerSource] = "ecs-deployer"
APPROVAL_DECIDED: Final[ApprovalDecidedType] = "Approval Decided"
ROLLBACK_REQUESTED: Final[RollbackRequestedType] = "Rollback Requested"
RELEASE_STATE_CHANGE: Final[ReleaseStateChangeType] = "Release State Change"


class _Deferred(BaseModel):
    """The base of every model here: pydantic builds a model's validator and serializer when the
    model is first used (`ConfigDict.defer_build`), not when this module is imported, so a function
    builds the models of the events it handles and no other (the module holds every event's models)."""

    model_config = ConfigDict(defer_build=True)


# --- The envelope ------------------------------------------------------------------------------
# "The following fields appear in all events delivered to an event bus, and comprise the event's
# metadata" (Amazon EventBridge events reference, "Amazon service event metadata",
# docs.aws.amazon.com/eventbridge/latest/ref/events-structure.html): version, id, detail-type,
# source, account, time, region, replay-name, resources, detail. The same fields, names and types
# as Powertools' EventBridgeModel (tests/unit/test_events.py compares them).


class EventBridgeEnvelope(_Deferred):
    """The fields every EventBridge event has; each model pins `source`, `detail_type` and `detail`."""

    model_config = ConfigDict(populate_by_name=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any] | BaseModel
    replay_name: str | None = Field(None, alias="replay-name")


# --- Field types -------------------------------------------------------------------------------
# pydantic-core searches a pattern anywhere in the string: every pattern below is anchored.

REF_NAME_MAX: Final = 1024
"""Longest git ref name accepted. Git itself sets no limit, CodeCommit's API bounds branch names
at 256 characters (botocore `codecommit` model, shape BranchName) but not tags pushed with git;
1024 leaves room for any real branch or tag and still refuses absurd input."""

CommitId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
# CodeCommit repository names: 1-100 of [A-Za-z0-9_.-] (botocore `codecommit`, RepositoryName).
RepositoryName = Annotated[str, StringConstraints(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
RepositoryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
# What `git check-ref-format` refuses in any ref: control characters, space, ~ ^ : ? * [ and \.
RefName = Annotated[
    str,
    StringConstraints(max_length=REF_NAME_MAX, pattern=r"^[^\x00-\x20\x7f~^:?*\[\\]+$"),
]
RefFullName = Annotated[
    str,
    StringConstraints(max_length=REF_NAME_MAX + len("refs/heads/"), pattern=r"^refs/[^\x00-\x20\x7f]+$"),
]
Arn = Annotated[str, StringConstraints(max_length=2048, pattern=r"^arn:[a-z0-9-]+:\S+$")]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
# CodeBuild project names (botocore `codebuild`, ProjectName).
ProjectName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{1,149}$")]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ShortText = Annotated[str, StringConstraints(max_length=1024)]
# Names from the pipeline configuration (pipelines, stages).
ConfigName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
# Ids the deployer mints itself (releases, approvals): opaque, printable ASCII, no spaces.
OpaqueId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]
ReleaseStateName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z_]{0,63}$")]


def _truncated(limit: int) -> Callable[[object], object]:
    """A before-validator that shortens free text the deployer writes (user agents, reasons)
    instead of refusing it: an over-long user agent must not lose an approval."""

    def cut(value: object) -> object:
        return value[:limit] if isinstance(value, str) else value

    return cut


# --- CodeCommit "CodeCommit Repository State Change" -------------------------------------------
# Shape: CodeCommit User Guide, "Monitoring CodeCommit events in Amazon EventBridge and Amazon
# CloudWatch Events" (docs.aws.amazon.com/codecommit/latest/userguide/monitoring-events.html,
# awsdocs/aws-codecommit-user-guide doc_source/monitoring-events.md): referenceCreated has no
# oldCommitId, referenceDeleted no commitId, merges add baseCommitId, sourceCommitId,
# destinationCommitId, mergeOption, conflictDetailsLevel, conflictResolutionStrategy.
# callerUserArn appears in real events though not in those samples (REFERENCE.md).


class CodeCommitReferenceDetail(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    event: Literal["referenceCreated", "referenceUpdated", "referenceDeleted"]
    reference_type: Literal["branch", "tag"] = Field(alias="referenceType")
    reference_name: RefName = Field(alias="referenceName")
    reference_full_name: RefFullName = Field(alias="referenceFullName")
    repository_name: RepositoryName = Field(alias="repositoryName")
    repository_id: RepositoryId = Field(alias="repositoryId")
    commit_id: CommitId | None = Field(None, alias="commitId")
    old_commit_id: CommitId | None = Field(None, alias="oldCommitId")
    base_commit_id: CommitId | None = Field(None, alias="baseCommitId")
    source_commit_id: CommitId | None = Field(None, alias="sourceCommitId")
    destination_commit_id: CommitId | None = Field(None, alias="destinationCommitId")
    # FAST_FORWARD_MERGE | SQUASH_MERGE | THREE_WAY_MERGE, FILE_LEVEL | LINE_LEVEL,
    # NONE | ACCEPT_SOURCE | ACCEPT_DESTINATION | AUTOMERGE today: kept open for new values.
    merge_option: Token | None = Field(None, alias="mergeOption")
    conflict_details_level: Token | None = Field(None, alias="conflictDetailsLevel")
    conflict_resolution_strategy: Token | None = Field(None, alias="conflictResolutionStrategy")
    caller_user_arn: Arn | None = Field(None, alias="callerUserArn")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        prefix = "refs/heads/" if self.reference_type == "branch" else "refs/tags/"
        if self.reference_full_name != prefix + self.reference_name:
            raise ValueError("referenceFullName does not match referenceType and referenceName")
        if self.event != "referenceDeleted" and self.commit_id is None:
            raise ValueError(f"commitId is required for {self.event}")
        if self.event != "referenceCreated" and self.old_commit_id is None:
            raise ValueError(f"oldCommitId is required for {self.event}")
        return self

    @property
    def is_branch_push(self) -> bool:
        """A branch now points at `commit_id` (created or updated): the only case that builds."""
        return self.reference_type == "branch" and self.event != "referenceDeleted"

    @property
    def is_merge(self) -> bool:
        return self.source_commit_id is not None and self.destination_commit_id is not None


class CodeCommitReferenceEvent(EventBridgeEnvelope):
    source: CodeCommitSource
    detail_type: CodeCommitStateChange = Field(alias="detail-type")
    detail: CodeCommitReferenceDetail


# --- CodeBuild "CodeBuild Build State Change" --------------------------------------------------
# Shape: CodeBuild User Guide, "Build notifications input format reference"
# (docs.aws.amazon.com/codebuild/latest/userguide/sample-build-notifications.html, section
# sample-build-notifications-ref; awsdocs/aws-codebuild-user-guide
# doc_source/sample-build-notifications.md), and the fixture
# example-codebuild-state-change.json of the aws_lambda_events crate (docs.rs), which shows
# numbers as floats ("build-number": 55.0, "timeout-in-minutes": 60.0). Statuses: botocore
# `codebuild` model, shape StatusType.


class BuildStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAULT = "FAULT"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"
    """A status this code does not know (a newer CodeBuild): neither final nor in progress."""


FINAL_BUILD_STATUSES: Final = frozenset(
    {BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.FAULT, BuildStatus.TIMED_OUT, BuildStatus.STOPPED}
)

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
# "Sep 1, 2017 4:12:29 PM". Any whitespace: newer Java runtimes put U+202F before AM/PM.
_CODEBUILD_TIME: Final = re.compile(
    r"(?P<month>[A-Z][a-z]{2})\s+(?P<day>[0-9]{1,2}),\s+(?P<year>[0-9]{4})\s+"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})\s*(?P<half>AM|PM)"
)


def _codebuild_time(value: object) -> object:
    """Parse CodeBuild's "Sep 1, 2017 4:12:29 PM" as UTC (the documented sample's envelope time
    is 16:14:28Z for a build that started at 4:12:29 PM). Other strings go on to pydantic's own
    ISO 8601 parsing; month names are matched here, not with the locale-dependent strptime."""
    if not isinstance(value, str):
        return value
    match = _CODEBUILD_TIME.fullmatch(value.strip())
    if match is None:
        return value
    month = _MONTHS.get(match["month"])
    hour = int(match["hour"])
    if month is None or not 1 <= hour <= 12:
        raise ValueError("not a CodeBuild time like 'Sep 1, 2017 4:12:29 PM'")
    hour = hour % 12 + (12 if match["half"] == "PM" else 0)
    return datetime(
        int(match["year"]),
        month,
        int(match["day"]),
        hour,
        int(match["minute"]),
        int(match["second"]),
        tzinfo=UTC,
    )


class BuildEnvironmentVariable(_Deferred):
    name: EnvName
    value: str
    type: Token | None = None  # PLAINTEXT | PARAMETER_STORE | SECRETS_MANAGER


class ExportedVariable(_Deferred):
    name: EnvName
    value: str | None = None


class BuildEnvironment(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    environment_variables: list[BuildEnvironmentVariable] = Field(default_factory=list, alias="environment-variables")


class BuildLogs(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    group_name: str | None = Field(None, alias="group-name")
    stream_name: str | None = Field(None, alias="stream-name")
    deep_link: str | None = Field(None, alias="deep-link")


class BuildAdditionalInformation(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    build_complete: bool | None = Field(None, alias="build-complete")
    build_number: int | None = Field(None, alias="build-number")  # arrives as 55.0
    build_start_time: Annotated[datetime | None, BeforeValidator(_codebuild_time)] = Field(
        None, alias="build-start-time"
    )
    timeout_in_minutes: int | None = Field(None, alias="timeout-in-minutes")
    initiator: ShortText | None = None
    source_version: ShortText | None = Field(None, alias="source-version")
    environment: BuildEnvironment = Field(default_factory=BuildEnvironment)
    # Absent when the buildspec exports nothing; names starting with AWS_ cannot be exported.
    exported_environment_variables: list[ExportedVariable] | None = Field(None, alias="exported-environment-variables")
    logs: BuildLogs | None = None


# arn:aws:codebuild:region:account:build/<project>:<build uuid>; StartBuild's build.arn.
_BUILD_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:codebuild:[a-z0-9-]+:[0-9]{12}:build/(?P<project>[A-Za-z0-9][A-Za-z0-9_-]{1,149})"
    r":[A-Za-z0-9-]{1,64}"
)


class CodeBuildStateChangeDetail(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    build_status: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(alias="build-status")
    build_id: Annotated[str, StringConstraints(max_length=512)] = Field(alias="build-id")
    project_name: ProjectName = Field(alias="project-name")
    additional_information: BuildAdditionalInformation = Field(alias="additional-information")
    current_phase: Token | None = Field(None, alias="current-phase")
    # "[]" (a string) in the documented sample; nothing reads it, so any JSON is accepted.
    current_phase_context: JsonValue = Field(None, alias="current-phase-context")

    @model_validator(mode="after")
    def _build_of_this_project(self) -> Self:
        match = _BUILD_ARN.fullmatch(self.build_id)
        if match is None:
            raise ValueError("build-id is not a CodeBuild build ARN")
        if match["project"] != self.project_name:
            raise ValueError("build-id names another project than project-name")
        return self

    @property
    def status(self) -> BuildStatus:
        try:
            return BuildStatus(self.build_status)
        except ValueError:
            return BuildStatus.UNKNOWN

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_BUILD_STATUSES

    def env_override(self, name: str) -> str | None:
        """The plaintext value of an environment variable of the build (StartBuild's overrides
        come back here). PARAMETER_STORE and SECRETS_MANAGER entries hold a reference, not a
        value, so they count as absent."""
        found: str | None = None
        for variable in self.additional_information.environment.environment_variables:
            if variable.name == name and variable.type in (None, "PLAINTEXT"):
                found = variable.value
        return found

    def exported(self, name: str) -> str | None:
        """A variable the buildspec exported (`env: exported-variables`); empty counts as absent."""
        found: str | None = None
        for variable in self.additional_information.exported_environment_variables or ():
            if variable.name == name:
                found = variable.value or None
        return found

    @property
    def log_link(self) -> str | None:
        """The console link to the build's logs, only if it is an https URL (it goes into Slack)."""
        logs = self.additional_information.logs
        link = logs.deep_link if logs is not None else None
        return link if link is not None and link.startswith("https://") else None


class CodeBuildStateChangeEvent(EventBridgeEnvelope):
    source: CodeBuildSource
    detail_type: CodeBuildStateChange = Field(alias="detail-type")
    detail: CodeBuildStateChangeDetail

    @property
    def status(self) -> BuildStatus:
        return self.detail.status

    @property
    def is_final(self) -> bool:
        return self.detail.is_final

    def env_override(self, name: str) -> str | None:
        return self.detail.env_override(name)

    def exported(self, name: str) -> str | None:
        return self.detail.exported(name)

    @property
    def log_link(self) -> str | None:
        return self.detail.log_link


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


# --- The deployer's own events (source "ecs-deployer", on its own bus) -------------------------


class DeployerDetail(_Deferred):
    """Base of the details the deployer publishes; `DETAIL_TYPE` names the event."""

    DETAIL_TYPE: ClassVar[str]


class DecidedBy(_Deferred):
    kind: Literal["slack", "link"]
    user: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    source_ip: IPvAnyAddress | None = None
    user_agent: Annotated[str | None, BeforeValidator(_truncated(512))] = None

    @model_validator(mode="after")
    def _slack_names_the_user(self) -> Self:
        if self.kind == "slack" and self.user is None:
            raise ValueError("a decision from Slack names the Slack user")
        return self


# A Slack interaction's `response_url`: a capability (whoever holds it may post into the
# conversation), so it is kept out of reprs, logs, the table and `deployer status`;
# SlackNotifier.respond posts only to Slack's own host.
ResponseUrl = Annotated[str, StringConstraints(min_length=8, max_length=2048, pattern=r"^https?://\S+$")]


class ApprovalDecidedDetail(DeployerDetail):
    DETAIL_TYPE: ClassVar[ApprovalDecidedType] = APPROVAL_DECIDED

    release_id: OpaqueId
    pipeline: ConfigName
    stage: ConfigName
    decision: Literal["approve", "reject"]
    approval_id: OpaqueId
    decided_by: DecidedBy
    decided_at: AwareDatetime
    # A decision from Slack: where on_approval tells the clicking user what came of it.
    response_url: ResponseUrl | None = Field(default=None, repr=False)


class RollbackRequestedDetail(DeployerDetail):
    """An approver pressed "Roll back" in Slack: published by the public approvals endpoint, which
    holds no deploy permission; OnApprovalFunction does the rollback (`flow.request_rollback`)."""

    DETAIL_TYPE: ClassVar[RollbackRequestedType] = ROLLBACK_REQUESTED

    pipeline: ConfigName
    stage: ConfigName
    release_id: OpaqueId | None = None  # the release whose message carried the button
    requested_by: DecidedBy
    requested_at: AwareDatetime
    response_url: ResponseUrl | None = Field(default=None, repr=False)  # where the clicker hears the outcome


class ScheduledTaskResult(_Deferred):
    """What became of one of a stage's scheduled tasks once its deployment completed
    (`deployer.housekeeping.ScheduleMove`): moved to `task_definition`, already there, or failed."""

    kind: Literal["scheduler", "rule"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    where: Annotated[str, StringConstraints(min_length=1, max_length=256)]  # schedule group or event bus
    task_definition: Annotated[str, StringConstraints(max_length=2048)]
    outcome: Literal["moved", "unchanged", "failed"]
    previous: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(default_factory=list, max_length=10)
    error: Annotated[str | None, BeforeValidator(_truncated(512))] = None


class RevisionCleanupResult(_Deferred):
    """The old revisions cleaned up when a release reached RELEASED (`deployer.housekeeping.CleanupReport`)."""

    keep: int | Literal["all"]
    deregistered: list[Annotated[str, StringConstraints(max_length=2048)]] = Field(default_factory=list, max_length=100)
    kept: int = 0
    left: int = 0
    failed: list[dict[str, Annotated[str, BeforeValidator(_truncated(512))]]] = Field(
        default_factory=list, max_length=100
    )
    note: Annotated[str | None, BeforeValidator(_truncated(512))] = None


class ReleaseStateChangeDetail(DeployerDetail):
    DETAIL_TYPE: ClassVar[ReleaseStateChangeType] = RELEASE_STATE_CHANGE

    release_id: OpaqueId
    pipeline: ConfigName
    commit: CommitId
    stage: ConfigName | None = None
    from_state: ReleaseStateName | None = None
    to_state: ReleaseStateName
    reason: Annotated[str | None, BeforeValidator(_truncated(1024))] = None
    at: AwareDatetime
    # to DEPLOYED, for a stage with `schedules:`: what became of each of its scheduled tasks
    schedules: list[ScheduledTaskResult] | None = Field(None, max_length=10)
    # to RELEASED: the old revisions cleaned up (keepRevisions)
    cleanup: RevisionCleanupResult | None = None


class ApprovalDecidedEvent(EventBridgeEnvelope):
    source: DeployerSource
    detail_type: ApprovalDecidedType = Field(alias="detail-type")
    detail: ApprovalDecidedDetail


class RollbackRequestedEvent(EventBridgeEnvelope):
    source: DeployerSource
    detail_type: RollbackRequestedType = Field(alias="detail-type")
    detail: RollbackRequestedDetail


class ReleaseStateChangeEvent(EventBridgeEnvelope):
    source: DeployerSource
    detail_type: ReleaseStateChangeType = Field(alias="detail-type")
    detail: ReleaseStateChangeDetail


def put_events_entry(detail: DeployerDetail, *, event_bus_name: str) -> PutEventsRequestEntryTypeDef:
    """One PutEvents entry publishing `detail` on the deployer's bus. Absent optional fields are
    left out of the JSON, so rules can match them with `{"exists": false}`."""
    if not event_bus_name:
        raise ValueError("event_bus_name is empty")
    return {
        "Source": SOURCE,
        "DetailType": detail.DETAIL_TYPE,
        "Detail": detail.model_dump_json(exclude_none=True),
        "EventBusName": event_bus_name,
    }


# --- Parsing -----------------------------------------------------------------------------------

MAX_ERRORS_SHOWN: Final = 3
MAX_MESSAGE_CHARS: Final = 600
_SAFE_EVENT_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")


def parse_event[ModelT: EventBridgeEnvelope](model: type[ModelT], raw: Mapping[str, Any]) -> ModelT:
    """Validate `raw` as `model`, or raise `BadInput` naming the event id and the first problems.

    The pydantic error is not chained (`from None`): its text quotes the input, which must not
    reach a log through a traceback.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise BadInput(_refusal_message(model, raw, error)) from None


def _refusal_message(model: type[EventBridgeEnvelope], raw: object, error: ValidationError) -> str:
    event_id = raw.get("id") if isinstance(raw, Mapping) else None
    named = (
        f"event {event_id}"
        if isinstance(event_id, str) and _SAFE_EVENT_ID.fullmatch(event_id)
        else "an event without a usable id"
    )
    # No input, context or URL: only where each problem is and what it is.
    problems = error.errors(include_url=False, include_context=False, include_input=False)
    shown = "; ".join(
        f"{_where(problem['loc'])}: {_clip(problem['msg'], 160)}" for problem in problems[:MAX_ERRORS_SHOWN]
    )
    more = len(problems) - MAX_ERRORS_SHOWN
    message = f"{model.__name__} refused {named}: {shown}" + (f"; and {more} more" if more > 0 else "")
    return _clip(message, MAX_MESSAGE_CHARS)


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(_clip(str(part), 48) for part in loc) or "(event)"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
