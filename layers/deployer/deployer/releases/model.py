"""A release and its stages as the flow sees them: the states, the records (plain dataclasses,
copied with `dataclasses.replace`), a transition, and which transitions a release may make
(`TRANSITIONS`, checked in one place: `check_transition`, called by `ReleaseStore.transition`).
No AWS here: the store (`deployer.releases.store`) keeps these in DynamoDB.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from deployer.errors import DeployerError


class ReleaseState(enum.StrEnum):
    BUILDING = "BUILDING"
    BUILT = "BUILT"
    DEPLOYING = "DEPLOYING"
    DEPLOYED = "DEPLOYED"
    AWAITING_APPROVAL = "AWAITING_APPROVAL"
    RELEASED = "RELEASED"
    BUILD_FAILED = "BUILD_FAILED"
    DEPLOY_FAILED = "DEPLOY_FAILED"
    REJECTED = "REJECTED"
    APPROVAL_EXPIRED = "APPROVAL_EXPIRED"
    SUPERSEDED = "SUPERSEDED"
    INVALID_CONFIG = "INVALID_CONFIG"

    @property
    def terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset(
    {
        ReleaseState.RELEASED,
        ReleaseState.BUILD_FAILED,
        ReleaseState.DEPLOY_FAILED,
        ReleaseState.REJECTED,
        ReleaseState.APPROVAL_EXPIRED,
        ReleaseState.SUPERSEDED,
        ReleaseState.INVALID_CONFIG,
    }
)
NOT_YET_DEPLOYING = frozenset({ReleaseState.BUILDING, ReleaseState.BUILT})
# Between its first stage and its last: what the reconciler checks when an ECS event is lost.
IN_FLIGHT = frozenset({ReleaseState.DEPLOYING, ReleaseState.DEPLOYED})

_S = ReleaseState
# Where a release may go from each state (docs/design.md, "The flow of one release"). A state that
# is not terminal may also stay where it is (progress within a state: a before-task started, one
# service of several completed); a terminal state goes nowhere. Nothing goes back to BUILDING,
# only a build ends BUILDING (BUILT, BUILD_FAILED), and every state before RELEASED can fail,
# be superseded by a newer release or refused for its configuration.
_ENDINGS = frozenset({_S.DEPLOY_FAILED, _S.SUPERSEDED, _S.INVALID_CONFIG})
TRANSITIONS: Mapping[ReleaseState, frozenset[ReleaseState]] = {
    _S.BUILDING: frozenset({_S.BUILDING, _S.BUILT, _S.BUILD_FAILED, _S.DEPLOYING}) | _ENDINGS,
    _S.BUILT: frozenset({_S.BUILT, _S.DEPLOYING, _S.DEPLOYED, _S.AWAITING_APPROVAL, _S.RELEASED}) | _ENDINGS,
    # a deployment paused by an approval's PAUSE hook waits inside DEPLOYING: approved, rejected
    # or expired from there
    _S.DEPLOYING: frozenset(
        {_S.DEPLOYING, _S.DEPLOYED, _S.AWAITING_APPROVAL, _S.RELEASED, _S.REJECTED, _S.APPROVAL_EXPIRED}
    )
    | _ENDINGS,
    _S.DEPLOYED: frozenset({_S.DEPLOYED, _S.DEPLOYING, _S.AWAITING_APPROVAL, _S.RELEASED}) | _ENDINGS,
    _S.AWAITING_APPROVAL: frozenset(
        {_S.AWAITING_APPROVAL, _S.DEPLOYING, _S.DEPLOYED, _S.RELEASED, _S.REJECTED, _S.APPROVAL_EXPIRED}
    )
    | _ENDINGS,
    **{state: frozenset() for state in TERMINAL_STATES},
}


class InvalidTransition(DeployerError):
    """A move the release's states do not allow (`TRANSITIONS`): a bug, not a fault worth a retry."""


def check_transition(release_id: str, from_state: ReleaseState, to_state: ReleaseState) -> None:
    """The one check of a release's move, made by `ReleaseStore.transition` before it writes."""
    if to_state not in TRANSITIONS[from_state]:
        allowed = ", ".join(sorted(TRANSITIONS[from_state])) or "nothing (it has ended)"
        raise InvalidTransition(
            f"release {release_id} cannot go from {from_state} to {to_state}; from {from_state}: {allowed}"
        )


class StageState(enum.StrEnum):
    QUEUED = "QUEUED"  # waiting for the service lock held by another release
    DEPLOYING = "DEPLOYING"
    DEPLOYED = "DEPLOYED"
    FAILED = "FAILED"


@dataclass
class ServiceRecord:
    """One ECS service of a stage that deploys several (`services:` in the pipeline). Its state is
    that service's: QUEUED until the stage holds every lock, DEPLOYING, then DEPLOYED (its COMPLETED
    arrived) or FAILED (its FAILED arrived, or the stage failed and this service was rolled back)."""

    cluster: str
    service: str
    state: StageState
    containers: list[str] | None = None
    task_definition_arn: str | None = None
    previous_task_definition_arn: str | None = None
    deployment_id: str | None = None
    # set just before RegisterTaskDefinition: a redelivery then looks for that revision first
    registering_at: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    rolled_back: bool | None = None  # whether the service went (or is going) back to its previous revision
    # when a sibling failed: how the deployer undid this service ("stopped": StopServiceDeployment
    # ROLLBACK of its deployment in flight; "updated": UpdateService back to its previous revision)
    undone: str | None = None
    rollback_deployment_id: str | None = None  # "updated": the deployment that UpdateService started

    @property
    def key(self) -> str:
        return f"{self.cluster}/{self.service}"


@dataclass
class StageRecord:
    state: StageState
    cluster: str
    service: str
    started_at: str
    task_definition_arn: str | None = None
    previous_task_definition_arn: str | None = None
    deployment_id: str | None = None
    finished_at: str | None = None
    reason: str | None = None
    rolled_back: bool | None = None  # FAILED: whether ECS rolled the service back
    # set just before RegisterTaskDefinition: a redelivery then looks for that revision first
    registering_at: str | None = None
    # a deployment paused by the approval's PAUSE hook (`approval: {at: ...}`): what
    # ContinueServiceDeployment needs, when ECS gives up waiting and what it then does
    service_deployment_arn: str | None = None
    hook_id: str | None = None
    paused_at: str | None = None
    hook_expires_at: str | None = None
    timeout_action: str | None = None
    # what the registered revision's deploy-time settings changed, names only for secrets
    # (`deployer.settings.summary`: "web: LOG_LEVEL=warn (changed), DB_PASSWORD (secret, added)")
    settings: str | None = None
    # `before:` the one-off task run with the new revision before UpdateService (deployer.before):
    # its step name, where it is (STARTING: intent recorded, RunTask maybe not yet; RUNNING: its
    # ARN recorded; SUCCEEDED; FAILED), RunTask's clientToken (also the key in startedBy), the task,
    # its container, when it started, how it ended and where its logs are
    before_task: str | None = None
    before_state: str | None = None
    before_token: str | None = None
    before_task_arn: str | None = None
    before_container: str | None = None
    before_started_at: str | None = None
    before_exit_code: int | None = None
    before_logs: str | None = None  # the container's awslogs target, "region|group|stream prefix"
    before_log_link: str | None = None
    # DEPLOYED: what became of the stage's scheduled tasks (`housekeeping.ScheduleMove.as_item`)
    schedules: list[dict[str, Any]] | None = None
    # a stage of several services: one record each (in the order the stage lists them); the fields
    # above then describe the stage as a whole (`service` names them all, "web+worker", and the
    # per-service fields stay empty). None for a stage of one service, recorded as it always was.
    services: list[ServiceRecord] | None = None

    @property
    def several(self) -> bool:
        return self.services is not None

    def service_keys(self) -> list[tuple[str, str]]:
        """(cluster, service) of every service of the stage."""
        if self.services is not None:
            return [(s.cluster, s.service) for s in self.services]
        return [(self.cluster, self.service)]

    def service_with_deployment(self, deployment_id: str) -> ServiceRecord | None:
        return next((s for s in self.services or () if s.deployment_id == deployment_id), None)

    def service_named(self, cluster: str, service: str) -> ServiceRecord | None:
        return next((s for s in self.services or () if s.cluster == cluster and s.service == service), None)

    def with_service(self, updated: ServiceRecord) -> StageRecord:
        """A copy whose record of `updated`'s service is `updated`."""
        services = [updated if s.key == updated.key else s for s in self.services or ()]
        return replace(self, services=services)

    @property
    def all_started(self) -> bool:
        """Every service of the stage has its ECS deployment (its UpdateService went through)."""
        if self.services is not None:
            return all(s.deployment_id for s in self.services)
        return bool(self.deployment_id)


@dataclass
class Release:
    release_id: str
    pipeline: str
    repository: str
    branch: str
    commit: str
    pushed_at: str
    order_key: str
    state: ReleaseState
    created_at: str
    updated_at: str
    previous_commit: str | None = None
    pusher: str | None = None
    stage: str | None = None
    build_arn: str | None = None
    build_id: str | None = None
    log_link: str | None = None
    image_uri: str | None = None
    image_digest: str | None = None
    reason: str | None = None
    stages: dict[str, StageRecord] = field(default_factory=dict)
    # the approval the release waits for (AWAITING_APPROVAL), and who decided the last one
    approval_id: str | None = None  # the link is re-derived (Approvals.link_for_release), never stored
    approval_expires_at: str | None = None
    # what the approval shows: service, current task definition, desired count, min/max, plan line
    approval_context: dict[str, Any] | None = None
    decided_by: dict[str, Any] | None = None
    # the one Slack message of the release, updated as it moves (chat.update)
    slack_channel: str | None = None
    slack_ts: str | None = None
    # "push" (a commit pushed to the branch) or "rollback" (a stage put back on an earlier revision)
    kind: str = "push"
    rollback_of: str | None = None  # rollback: the release whose revision it undoes
    requested_by: dict[str, Any] | None = None  # rollback: who asked (Slack user or CLI principal)
    target_task_definition_arn: str | None = None  # rollback: the revision it redeploys as is
    # rollback of a stage of several services: "cluster/service" -> the revision each goes back to
    target_task_definitions: dict[str, str] | None = None
    # when the release last entered DEPLOYING (a stage started, or a paused one was continued): the
    # reconciler counts a stage's deadline from here, so time spent waiting for a human never counts
    deploying_since: str | None = None
    # RELEASED: the old revisions cleaned up after it (`housekeeping.CleanupReport.as_item`)
    cleanup: dict[str, Any] | None = None
    version: int = 0

    @property
    def is_rollback(self) -> bool:
        return self.kind == "rollback"

    @property
    def short_commit(self) -> str:
        return self.commit[:12]


@dataclass(frozen=True)
class Transition:
    release: Release
    from_state: ReleaseState | None
    to_state: ReleaseState
    stage: str | None
    reason: str | None


TransitionListener = Callable[[Transition], None]


def release_id_for(pipeline: str, commit: str) -> str:
    """The same commit pushed twice to one pipeline is one release (docs/design.md invariant 1)."""
    return f"{pipeline}@{commit}"


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def pipeline_of(release_id: str) -> str:
    """Release ids are `<pipeline>@<commit>` (or `<pipeline>@rollback-...`); pipeline names hold no '@'."""
    return release_id.split("@", 1)[0]
