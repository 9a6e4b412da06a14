"""The deployer's own events, source "ecs-deployer", on its own bus: "Approval Decided",
"Rollback Requested" and "Release State Change" (every transition), and the PutEvents entry that
carries them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, ClassVar, Final, Literal, Self

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    Field,
    IPvAnyAddress,
    StringConstraints,
    model_validator,
)

from deployer.events.envelope import CommitId, EventBridgeEnvelope, _Deferred, _truncated

if TYPE_CHECKING:
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

__all__ = [
    "APPROVAL_DECIDED",
    "RELEASE_STATE_CHANGE",
    "ROLLBACK_REQUESTED",
    "SOURCE",
    "ApprovalDecidedDetail",
    "ApprovalDecidedEvent",
    "DecidedBy",
    "DeployerDetail",
    "ReleaseStateChangeDetail",
    "ReleaseStateChangeEvent",
    "ResponseUrl",
    "RollbackRequestedDetail",
    "RollbackRequestedEvent",
    "put_events_entry",
]
DeployerSource = Literal["ecs-deployer"]
ApprovalDecidedType = Literal["Approval Decided"]
RollbackRequestedType = Literal["Rollback Requested"]
ReleaseStateChangeType = Literal["Release State Change"]
SOURCE: Final[DeployerSource] = "ecs-deployer"
APPROVAL_DECIDED: Final[ApprovalDecidedType] = "Approval Decided"
ROLLBACK_REQUESTED: Final[RollbackRequestedType] = "Rollback Requested"
RELEASE_STATE_CHANGE: Final[ReleaseStateChangeType] = "Release State Change"
# Names from the pipeline configuration (pipelines, stages).
ConfigName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")]
# Ids the deployer mints itself (releases, approvals): opaque, printable ASCII, no spaces.
OpaqueId = Annotated[str, StringConstraints(pattern=r"^[\x21-\x7e]{1,128}$")]
ReleaseStateName = Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z_]{0,63}$")]


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
