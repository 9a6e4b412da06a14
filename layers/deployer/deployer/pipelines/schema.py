"""The pipelines file's schema: pydantic models of a pipeline, its stages and their
services, rollouts, approvals, before-tasks and schedules, each field with its rule (a ValueError
naming the value and the rule, so the message stands alone), and `find_pipelines`, the pipelines a
push starts.

A pipeline names where its pushes come from: `repository: NAME` (CodeCommit, the original form,
still valid) or `source:` with exactly one of `codecommit: NAME`, `github: OWNER/REPO`,
`gitlab: GROUP/PROJECT` (subgroups allowed).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from deployer import settings as deploy_settings
from deployer.pipelines.targets import ServiceTarget
from deployer.rollout.traffic import traffic_plan

__all__ = [
    "MAX_APPROVAL_HOURS",
    "Approval",
    "BeforeTask",
    "Build",
    "Pipeline",
    "PipelinesConfig",
    "Rollout",
    "ScheduledTask",
    "SlackDefaults",
    "Source",
    "Stage",
    "StageService",
    "find_pipelines",
]

# How long a stage's ECS deployment may run before the reconciler stops it and rolls it back
# (`deadlineMinutes`). At least 5 minutes (the reconciler sweeps every 15), at most a week: longer is
# no deadline. Without the key, `Stage.deadline_minutes_or_default()` derives one from the strategy.
MIN_DEADLINE_MINUTES = 5
MAX_DEADLINE_MINUTES = 10080
ROLLING_DEADLINE_MINUTES = 60
DEADLINE_MARGIN_MINUTES = 30  # beyond bake times and hooks' timeouts: scale-up, traffic moves, clean-up

# A stage deploys at most this many services in one step: each costs about four ECS calls
# (DescribeServices answers 10 per call; then DescribeTaskDefinition, RegisterTaskDefinition and
# UpdateService each) inside the functions' 30-second timeout, and the stage record keeps every
# service in the release's one DynamoDB item. More services: split them over stages.
MAX_SERVICES_PER_STAGE = 20
# `before:` a one-off task run with the stage's new revision before the service is updated. Its
# timeout is at least 5 minutes (the reconciler, which stops a task past it, sweeps every 15) and at
# most a day: a step that runs longer should not hold a deployment (and the service's lock) for it.
MIN_BEFORE_TIMEOUT_MINUTES = 5
MAX_BEFORE_TIMEOUT_MINUTES = 1440
DEFAULT_BEFORE_TIMEOUT_MINUTES = 30
# RunTask's overrides (botocore's ECS model, RunTask.overrides): "A total of 8192 characters are
# allowed for overrides. This limit includes the JSON formatting characters of the override structure."
MAX_OVERRIDES_CHARS = 8192

# Approval links are signed for at most a week: a release that waited longer is stale (newer
# commits have moved on) and a long-lived link is a long-lived credential.
MAX_APPROVAL_HOURS = 168

# Old revisions: a release that reaches RELEASED deregisters the revisions the deployer registered
# for the pipeline beyond the newest `keepRevisions` per family that a stage ran (never one a stage
# runs or can roll back to). `keepRevisions: all` turns it off for the pipeline.
DEFAULT_KEEP_REVISIONS = 10
MAX_KEEP_REVISIONS = 1000
KEEP_ALL_REVISIONS = "all"

# Scheduled tasks that follow a stage's service (`schedules:`): at most this many per stage, so the
# work after a deployment completes stays bounded.
MAX_SCHEDULES_PER_STAGE = 10

# --------------------------------------------------------------------------------------------
# Field rules. Each raises ValueError with the value and the rule, so the message stands alone.
# --------------------------------------------------------------------------------------------

_NAME_RE = re.compile(r"[a-z0-9-]{1,64}")
_REPOSITORY_RE = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # CodeCommit RepositoryName: [\w\.-]+, 1..100
_PROJECT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{1,149}")  # CodeBuild ProjectName, 2..150
_ECS_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,255}")  # ECS cluster, service and container names
_SLACK_USER_RE = re.compile(r"[UW][A-Z0-9]{6,20}")
_SLACK_CHANNEL_RE = re.compile(r"#[a-z0-9_-]{1,80}|[CGD][A-Z0-9]{6,20}")
_BAD_BRANCH_RE = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|@\{|//")
# GitHub: an account (user or organization) is 1 to 39 letters, digits and single hyphens, not at
# either end; a repository name is letters, digits, '.', '_' and '-' (GitHub's "New repository"
# form replaces anything else with '-'), up to 100 characters.
_GITHUB_OWNER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
_GITHUB_REPO_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
# GitLab: a path segment is letters, digits, '_', '-' and '.', not starting with '-' or '.' and not
# ending in '.git' or '.atom'; a project is GROUP[/SUBGROUP...]/PROJECT.
_GITLAB_SEGMENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}")
# EventBridge Scheduler: a schedule's and a schedule group's name, 1 to 64 of letters, digits,
# '-', '_' and '.' (botocore's scheduler model, shapes Name and ScheduleGroupName). EventBridge: a
# rule's name, 1 to 64 of letters, digits, '.', '-' and '_' (RuleName); an event bus's name, 1 to
# 256 of those and '/' (EventBusName; partner buses have '/').
_SCHEDULE_NAME_RE = re.compile(r"[0-9A-Za-z_.-]{1,64}")
_RULE_NAME_RE = re.compile(r"[.\-_A-Za-z0-9]{1,64}")
_EVENT_BUS_NAME_RE = re.compile(r"[/.\-_A-Za-z0-9]{1,256}")


def _check_name(value: str) -> str:
    if not _NAME_RE.fullmatch(value):
        raise ValueError(f"{value!r} must be 1 to 64 characters of a-z, 0-9 and '-'")
    return value


def _check_repository(value: str) -> str:
    if not _REPOSITORY_RE.fullmatch(value) or value.endswith(".git"):
        raise ValueError(
            f"{value!r} is not a CodeCommit repository name: 1 to 100 characters of letters, "
            "digits, '.', '_' and '-', not ending in '.git'"
        )
    return value


def _check_github(value: str) -> str:
    owner, _, repo = value.partition("/")
    if (
        not _GITHUB_OWNER_RE.fullmatch(owner)
        or not _GITHUB_REPO_RE.fullmatch(repo)
        or repo in {".", ".."}
        or repo.lower().endswith(".git")
    ):
        raise ValueError(
            f"{value!r} is not a GitHub repository: give OWNER/REPO as in its URL (github.com/OWNER/REPO), "
            "e.g. example-org/web-app, without https:// or .git"
        )
    return value


def _check_gitlab(value: str) -> str:
    segments = value.split("/")
    if (
        len(segments) < 2
        or len(value) > 1024
        or not all(_GITLAB_SEGMENT_RE.fullmatch(s) and not s.endswith((".git", ".atom")) for s in segments)
    ):
        raise ValueError(
            f"{value!r} is not a GitLab project path: give GROUP/PROJECT (or GROUP/SUBGROUP/PROJECT) as in its "
            "URL, e.g. example-group/web-app, without https:// or .git"
        )
    return value


def _check_branch(value: str) -> str:
    if value.startswith("refs/"):
        raise ValueError(f"{value!r}: give the branch name as pushed, without 'refs/heads/'")
    if (
        not value
        or len(value) > 256
        or _BAD_BRANCH_RE.search(value)
        or value.startswith(("-", "/", "."))
        or value.endswith(("/", ".", ".lock"))
    ):
        raise ValueError(f"{value!r} is not a valid git branch name (1 to 256 characters, git's ref rules)")
    return value


def _check_project(value: str) -> str:
    if not _PROJECT_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a CodeBuild project name: 2 to 150 characters of letters, digits, "
            "'-' and '_', starting with a letter or digit"
        )
    return value


def _check_ecs_name(value: str) -> str:
    if not _ECS_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an ECS name: 1 to 255 letters, digits, '-' and '_' (names, not ARNs: "
            "the deployer works in its own account and region)"
        )
    return value


def _check_slack_user(value: str) -> str:
    if not _SLACK_USER_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a Slack user id (like U012ABCDEF or W012ABCDEF; "
            "find it in the member's profile, 'Copy member ID')"
        )
    return value


def _check_slack_channel(value: str) -> str:
    if not _SLACK_CHANNEL_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a Slack channel: '#name' (lowercase) or a channel id like C012ABCDEF")
    return value


def _check_approval_hours(value: int) -> int:
    if not 1 <= value <= MAX_APPROVAL_HOURS:
        raise ValueError(
            f"{value} is outside 1..{MAX_APPROVAL_HOURS} hours: an approval link lives at most a week, "
            "since a release that waited longer is stale and a long-lived link is a long-lived credential"
        )
    return value


def _check_deadline(value: int) -> int:
    if not MIN_DEADLINE_MINUTES <= value <= MAX_DEADLINE_MINUTES:
        raise ValueError(
            f"{value} is outside {MIN_DEADLINE_MINUTES}..{MAX_DEADLINE_MINUTES} minutes: the deadline after which "
            "the deployer stops a deployment that never finished and rolls it back (at least 5 minutes; at most "
            "a week, beyond which it is no deadline); leave it out for the default of the rollout's strategy"
        )
    return value


def _check_before_timeout(value: int) -> int:
    if not MIN_BEFORE_TIMEOUT_MINUTES <= value <= MAX_BEFORE_TIMEOUT_MINUTES:
        raise ValueError(
            f"{value} is outside {MIN_BEFORE_TIMEOUT_MINUTES}..{MAX_BEFORE_TIMEOUT_MINUTES} minutes: how long the task "
            "may run before the deployer stops it (StopTask) and fails the release (at least 5 minutes, the reconciler "
            f"checks every 15; at most a day); leave it out for {DEFAULT_BEFORE_TIMEOUT_MINUTES}"
        )
    return value


def _check_schedule_name(value: str) -> str:
    if not _SCHEDULE_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an EventBridge Scheduler name: 1 to 64 of letters, digits, '-', '_' and '.' "
            "(the schedule's or group's name, not its ARN)"
        )
    return value


def _check_command(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("empty: give the program and its arguments as a list, e.g. [./manage.py, migrate]")
    if not value[0].strip():
        raise ValueError("command[0] is empty: the first element is the program the container runs")
    for index, part in enumerate(value):
        if "\x00" in part:
            raise ValueError(f"command[{index}] contains a NUL character, which no program can receive")
    return value


def _check_rule_name(value: str) -> str:
    if not _RULE_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an EventBridge rule name: 1 to 64 of letters, digits, '.', '-' and '_' "
            "(the rule's name, not its ARN)"
        )
    return value


def _check_event_bus_name(value: str) -> str:
    if not _EVENT_BUS_NAME_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not an EventBridge event bus name: 1 to 256 of letters, digits, '/', '.', '-' and '_' "
            "(the bus's name, not its ARN; leave it out for the default bus)"
        )
    return value


def _check_keep_revisions(value: Any) -> Any:
    if value == KEEP_ALL_REVISIONS:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"expected a whole number of revisions (1 to {MAX_KEEP_REVISIONS}) or `all`, got {_short(value)}"
        )
    if value == 0:
        raise ValueError(
            "0 would keep no revision, not even the one a stage runs: give 1 to "
            f"{MAX_KEEP_REVISIONS}, or `keepRevisions: all` to never deregister old revisions"
        )
    if not 1 <= value <= MAX_KEEP_REVISIONS:
        raise ValueError(
            f"{value} is outside 1..{MAX_KEEP_REVISIONS}: how many of the newest revisions per task definition family "
            "that a stage ran are kept (`all` keeps every one)"
        )
    return value


Name = Annotated[str, AfterValidator(_check_name)]
RepositoryName = Annotated[str, AfterValidator(_check_repository)]
GitHubRepository = Annotated[str, AfterValidator(_check_github)]
GitLabProject = Annotated[str, AfterValidator(_check_gitlab)]
BranchName = Annotated[str, AfterValidator(_check_branch)]
ProjectName = Annotated[str, AfterValidator(_check_project)]
EcsName = Annotated[str, AfterValidator(_check_ecs_name)]
SlackUserId = Annotated[str, AfterValidator(_check_slack_user)]
SlackChannel = Annotated[str, AfterValidator(_check_slack_channel)]
ApprovalHours = Annotated[int, AfterValidator(_check_approval_hours)]
DeadlineMinutes = Annotated[int, AfterValidator(_check_deadline)]
BeforeTimeoutMinutes = Annotated[int, AfterValidator(_check_before_timeout)]
Command = Annotated[list[str], AfterValidator(_check_command)]
ScheduleName = Annotated[str, AfterValidator(_check_schedule_name)]
RuleName = Annotated[str, AfterValidator(_check_rule_name)]
EventBusName = Annotated[str, AfterValidator(_check_event_bus_name)]
KeepRevisions = Annotated[Any, AfterValidator(_check_keep_revisions)]

# ECS DeploymentLifecycleHookStage (botocore's ECS model).
LifecycleStage = Literal[
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
]
# The strategies whose lifecycle stages AWS documents. Every stage of ECS's DeploymentLifecycleHook
# (botocore's ECS model; ECS developer guide, "Lifecycle hooks for Amazon ECS service deployments")
# is described in terms of a blue and a green service revision and their test and production
# traffic; the guide documents no lifecycle stages for a rolling update, so `approval.at` with
# ROLLING is refused: nothing says where, or whether, ECS would pause one and ask.
HOOK_STRATEGIES = ("BLUE_GREEN", "LINEAR", "CANARY")


ONE_CONTAINER_KEY = (
    "give exactly one of `container: NAME` or `containers: [NAME, ...]` "
    "(the containers whose image is replaced by the build's IMAGE_URI)"
)
ONE_CIRCUIT_BREAKER = "give circuitBreaker (the shorthand) or deploymentCircuitBreaker, not both"
ONE_SERVICE_KEY = (
    "give exactly one of `service: NAME` or `services: [NAME, ...]` (the ECS services this stage deploys, "
    "in its `cluster`)"
)
AT_MOST_ONE_CONTAINER_KEY = (
    "give at most one of `container: NAME` or `containers: [NAME, ...]` (the containers of this service "
    "whose image is replaced; leave both out for the pipeline's)"
)
SERVICE_ENTRY = "expected a service name or a mapping {name: SERVICE, container: NAME}"
ONE_SOURCE = (
    "give exactly one of `codecommit: NAME`, `github: OWNER/REPO` or `gitlab: GROUP/PROJECT` "
    "(where the pushes that start this pipeline come from)"
)
REPOSITORY_AND_SOURCE = (
    "give `repository: NAME` (CodeCommit) or `source: {...}`, not both: they say the same thing twice "
    "and could disagree"
)
NO_SOURCE = (
    "required key missing: give `repository: NAME` (a CodeCommit repository) or `source:` "
    "({codecommit: NAME}, {github: OWNER/REPO} or {gitlab: GROUP/PROJECT})"
)
SOURCE_PROVIDERS = ("codecommit", "github", "gitlab")


class _Model(BaseModel):
    """Strict (YAML's `"50"` stays a string, `yes` stays a boolean) and closed (typos are errors)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, validate_by_name=False)


# --------------------------------------------------------------------------------------------
# Schema
# --------------------------------------------------------------------------------------------


class CircuitBreakerShorthand(_Model):
    """`circuitBreaker: {rollback: true}`: ECS's deploymentCircuitBreaker, enable defaulting to true."""

    rollback: bool
    enable: bool = True


class Rollout(_Model):
    """ECS deploymentConfiguration in the API's own names, plus the `circuitBreaker` shorthand.

    Only the keys are checked here (a misspelt key is an error); the values are checked by
    `deployer.rollout.validate`, the same rules `deployer plan` and the deploying function apply,
    so one rule never has two wordings. Keys left out take ECS's defaults.
    """

    minimum_healthy_percent: Any = Field(None, alias="minimumHealthyPercent")
    maximum_percent: Any = Field(None, alias="maximumPercent")
    circuit_breaker: CircuitBreakerShorthand | None = Field(None, alias="circuitBreaker")
    deployment_circuit_breaker: Any = Field(None, alias="deploymentCircuitBreaker")
    alarms: Any = None
    strategy: Any = None
    bake_time_in_minutes: Any = Field(None, alias="bakeTimeInMinutes")
    linear_configuration: Any = Field(None, alias="linearConfiguration")
    canary_configuration: Any = Field(None, alias="canaryConfiguration")
    lifecycle_hooks: Any = Field(None, alias="lifecycleHooks")
    early_success_criteria: Any = Field(None, alias="earlySuccessCriteria")

    @model_validator(mode="after")
    def _one_circuit_breaker(self) -> Rollout:
        if self.circuit_breaker is not None and self.deployment_circuit_breaker is not None:
            raise ValueError(ONE_CIRCUIT_BREAKER)
        return self

    def deployment_configuration(self) -> dict[str, Any]:
        """The ECS API shape (UpdateService's deploymentConfiguration), without absent keys."""
        api: dict[str, Any] = self.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude={"circuit_breaker"}
        )
        if self.circuit_breaker is not None:
            api["deploymentCircuitBreaker"] = {
                "enable": self.circuit_breaker.enable,
                "rollback": self.circuit_breaker.rollback,
            }
        return api


class Approval(_Model):
    """A human approval in Slack, asked before the stage deploys (or, with `at`, during it)."""

    approvers: list[SlackUserId] = Field(default_factory=list)
    expires_in_hours: ApprovalHours = Field(24, alias="expiresInHours")
    channel: SlackChannel | None = None
    at: LifecycleStage | None = None


class Build(_Model):
    project: ProjectName


class StageService(_Model):
    """One entry of a stage's `services`: a name (`worker`), or a mapping when the containers to swap
    in that service differ from the pipeline's (`{name: worker, container: app}`)."""

    name: EcsName
    container: EcsName | None = None
    containers: list[EcsName] | None = Field(None, min_length=1)

    @model_validator(mode="before")
    @classmethod
    def _a_name_is_an_entry(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": _check_ecs_name(data)}  # a bad bare name is reported at the entry itself
        if not isinstance(data, dict):
            raise ValueError(f"{SERVICE_ENTRY}, got {_short(data)}")
        return data

    @model_validator(mode="after")
    def _at_most_one_container_key(self) -> StageService:
        if self.container is not None and self.containers is not None:
            raise ValueError(AT_MOST_ONE_CONTAINER_KEY)
        return self

    @model_serializer(mode="wrap")
    def _a_bare_name_when_nothing_else(self, handler: SerializerFunctionWrapHandler) -> Any:
        if self.container is None and self.containers is None:
            return self.name
        return handler(self)

    @property
    def container_names(self) -> tuple[str, ...] | None:
        """The containers named for this service; None: the pipeline's."""
        if self.containers is not None:
            return tuple(self.containers)
        return (self.container,) if self.container is not None else None


class Source(_Model):
    """Where a pipeline's pushes come from: exactly one provider and its repository."""

    codecommit: RepositoryName | None = None
    github: GitHubRepository | None = None
    gitlab: GitLabProject | None = None

    @model_validator(mode="after")
    def _one_provider(self) -> Source:
        if sum(value is not None for value in (self.codecommit, self.github, self.gitlab)) != 1:
            raise ValueError(ONE_SOURCE)
        return self

    @property
    def provider(self) -> str:
        return next(p for p in SOURCE_PROVIDERS if getattr(self, p) is not None)

    @property
    def name(self) -> str:
        return str(getattr(self, self.provider))


class BeforeTask(_Model):
    """`before:` a one-off ECS task run before the stage's service is updated (a database migration).

    It runs the stage's new task definition revision (the build's image) with `command` in
    `container`, placed and networked as the service is (launch type or capacity providers,
    platform version, subnets and security groups, read from DescribeServices). The service is
    updated only when that container exits 0; any other end fails the release, and nothing is
    deployed. `task` names the step in Slack, `deployer status` and the release events.

    In a stage of several services, `service` names the one whose new revision the task runs and
    whose placement and network it takes (`deployer validate` requires it there: the services may
    run in different subnets with different images); every service is updated only after it exits 0."""

    task: Name
    service: EcsName | None = None
    container: EcsName | None = None
    command: Command
    timeout_minutes: BeforeTimeoutMinutes = Field(DEFAULT_BEFORE_TIMEOUT_MINUTES, alias="timeoutMinutes")


ONE_SCHEDULE_KIND = (
    "give exactly one of `scheduler: NAME` (an EventBridge Scheduler schedule) or `rule: NAME` (an EventBridge "
    "rule), the scheduled task that runs this stage's task definition family"
)
GROUP_ONLY_WITH_SCHEDULER = "`group` names an EventBridge Scheduler schedule group: it goes with `scheduler:` only"
BUS_ONLY_WITH_RULE = "`eventBus` names the event bus of an EventBridge rule: it goes with `rule:` only"
DEFAULT_SCHEDULE_GROUP = "default"
DEFAULT_EVENT_BUS = "default"


class ScheduledTask(_Model):
    """A scheduled task that follows the stage's service: when the stage's deployment completes,
    its ECS target is moved to the revision the stage now runs (`deployer.housekeeping`)."""

    scheduler: ScheduleName | None = None
    group: ScheduleName | None = None
    rule: RuleName | None = None
    event_bus: EventBusName | None = Field(None, alias="eventBus")

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduledTask:
        if (self.scheduler is None) == (self.rule is None):
            raise ValueError(ONE_SCHEDULE_KIND)
        if self.group is not None and self.scheduler is None:
            raise ValueError(GROUP_ONLY_WITH_SCHEDULER)
        if self.event_bus is not None and self.rule is None:
            raise ValueError(BUS_ONLY_WITH_RULE)
        return self

    @property
    def kind(self) -> Literal["scheduler", "rule"]:
        return "scheduler" if self.scheduler is not None else "rule"

    @property
    def name(self) -> str:
        return str(self.scheduler if self.scheduler is not None else self.rule)

    @property
    def where(self) -> str:
        """The schedule group, or the rule's event bus (`default` when left out)."""
        if self.scheduler is not None:
            return self.group or DEFAULT_SCHEDULE_GROUP
        return self.event_bus or DEFAULT_EVENT_BUS

    @property
    def label(self) -> str:
        """How people read it: `schedule nightly-report`, `rule cleanup on bus jobs`."""
        if self.scheduler is not None:
            group = f" in group {self.group}" if self.group not in {None, DEFAULT_SCHEDULE_GROUP} else ""
            return f"schedule {self.scheduler}{group}"
        bus = f" on bus {self.event_bus}" if self.event_bus not in {None, DEFAULT_EVENT_BUS} else ""
        return f"rule {self.rule}{bus}"

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies it in the account: (kind, group or bus, name)."""
        return (self.kind, self.where, self.name)


class Stage(_Model):
    name: Name
    cluster: EcsName
    service: EcsName | None = None
    services: list[StageService] | None = Field(None, min_length=1, max_length=MAX_SERVICES_PER_STAGE)
    rollout: Rollout | None = None
    approval: Approval | None = None
    deadline_minutes: DeadlineMinutes | None = Field(None, alias="deadlineMinutes")
    # Deploy-time settings, keyed by container name (`deployer.settings`): names, references and
    # containers are checked by `_check_settings`, the containers again when the stage deploys.
    environment: dict[str, dict[str, str]] | None = None
    secrets: dict[str, dict[str, str]] | None = None
    unset: dict[str, list[str]] | None = None

    def deploy_settings(self) -> deploy_settings.DeploySettings:
        """The environment variables and secret references this stage sets on the revision it registers."""
        return deploy_settings.DeploySettings(
            environment=self.environment or {}, secrets=self.secrets or {}, unset=self.unset or {}
        )

    before: BeforeTask | None = None
    schedules: list[ScheduledTask] | None = Field(None, min_length=1, max_length=MAX_SCHEDULES_PER_STAGE)

    @model_validator(mode="after")
    def _one_service_key(self) -> Stage:
        if (self.service is None) == (self.services is None):
            raise ValueError(ONE_SERVICE_KEY)
        return self

    @property
    def service_names(self) -> tuple[str, ...]:
        """The ECS services of the stage, in the order the file lists them."""
        if self.services is not None:
            return tuple(entry.name for entry in self.services)
        return (self.service,) if self.service is not None else ()

    @property
    def several_services(self) -> bool:
        return self.services is not None and len(self.services) > 1

    def targets(self, pipeline_containers: Sequence[str]) -> tuple[ServiceTarget, ...]:
        """Each service with the containers swapped in it (its own, else `pipeline_containers`), in
        the file's order (`lock_order` gives the locking order)."""
        if self.services is None:
            return (ServiceTarget(self.cluster, self.service or "", tuple(pipeline_containers)),)
        return tuple(
            ServiceTarget(self.cluster, entry.name, entry.container_names or tuple(pipeline_containers))
            for entry in self.services
        )

    def deployment_configuration(self) -> dict[str, Any]:
        """UpdateService's deploymentConfiguration; empty when the stage sets no rollout."""
        return self.rollout.deployment_configuration() if self.rollout is not None else {}

    def deadline_minutes_or_default(self) -> int:
        """`deadlineMinutes`, else the default of the rollout's strategy (`default_deadline_minutes`)."""
        if self.deadline_minutes is not None:
            return self.deadline_minutes
        return default_deadline_minutes(self.deployment_configuration())


def expected_minutes(configuration: Mapping[str, Any]) -> int:
    """What the rollout itself waits, by its own settings: for BLUE_GREEN, LINEAR and CANARY the bake
    times plus every lifecycle hook's timeout (each time ECS reaches its stage), as
    `traffic_plan` counts them; 0 for ROLLING, which has no set duration. The deployer's own
    approval pause (`approval.at`) is not in `configuration`: the deadline's clock restarts when a
    paused deployment is continued."""
    if configuration.get("strategy") not in HOOK_STRATEGIES:
        return 0
    try:
        plan = traffic_plan(configuration, 1)
    except ValueError:  # refused values are reported by `deployer validate`; no duration to count
        return 0
    return plan.minimum_minutes + sum(hook.timeout_minutes * hook.runs for hook in plan.hooks)


def default_deadline_minutes(configuration: Mapping[str, Any]) -> int:
    """ROLLING: 60 minutes. BLUE_GREEN, LINEAR, CANARY: `expected_minutes` plus 30 minutes for scaling
    up, moving traffic and cleaning up. Capped at a week."""
    if configuration.get("strategy") not in HOOK_STRATEGIES:
        return ROLLING_DEADLINE_MINUTES
    return min(MAX_DEADLINE_MINUTES, expected_minutes(configuration) + DEADLINE_MARGIN_MINUTES)


class Pipeline(_Model):
    name: Name
    repository: RepositoryName | None = None
    source: Source | None = None
    branch: BranchName
    build: Build
    container: EcsName | None = None
    containers: list[EcsName] | None = Field(None, min_length=1)
    stages: list[Stage] = Field(min_length=1)
    keep_revisions: KeepRevisions = Field(None, alias="keepRevisions")

    @property
    def revisions_to_keep(self) -> int | None:
        """How many of the newest revisions per family that a stage ran are kept when old ones are
        deregistered: `keepRevisions` (default 10); None for `keepRevisions: all` (never deregister)."""
        if self.keep_revisions is None:
            return DEFAULT_KEEP_REVISIONS
        if self.keep_revisions == KEEP_ALL_REVISIONS:
            return None
        return int(self.keep_revisions)

    @model_validator(mode="after")
    def _one_container_key(self) -> Pipeline:
        if (self.container is None) == (self.containers is None):
            raise ValueError(ONE_CONTAINER_KEY)
        if self.repository is not None and self.source is not None:
            raise ValueError(REPOSITORY_AND_SOURCE)
        return self

    @property
    def source_provider(self) -> str:
        """codecommit, github or gitlab (`repository:` is CodeCommit's shorthand)."""
        return self.source.provider if self.source is not None else "codecommit"

    @property
    def source_name(self) -> str:
        """The repository as its provider names it: NAME, OWNER/REPO or GROUP/PROJECT."""
        if self.source is not None:
            return self.source.name
        if self.repository is None:  # the loaders refuse this (NO_SOURCE); a bare model_validate may not
            raise ValueError(f"pipeline {self.name} names no repository")
        return self.repository

    @property
    def source_label(self) -> str:
        """How people read the source: `web-app` for CodeCommit (as before), `github:OWNER/REPO` else."""
        provider = self.source_provider
        return self.source_name if provider == "codecommit" else f"{provider}:{self.source_name}"

    def watches(self, provider: str, repository: str, branch: str) -> bool:
        """Whether a push to `repository` (at `provider`) on `branch` starts this pipeline. GitHub
        and GitLab names are case-insensitive (their URLs are); CodeCommit's are not."""
        if provider != self.source_provider or branch != self.branch:
            return False
        if provider == "codecommit":
            return repository == self.source_name
        return repository.casefold() == self.source_name.casefold()

    @property
    def container_names(self) -> tuple[str, ...]:
        """The containers whose image the deployer replaces, whichever key the file used."""
        if self.containers is not None:
            return tuple(self.containers)
        return (self.container,) if self.container is not None else ()

    def before_target(self, stage: Stage) -> ServiceTarget | None:
        """The service whose new revision and network configuration `stage.before` runs with: the one
        it names, else the stage's only service (`deployer validate` requires `before.service` in a
        stage of several). None without a `before`, or naming a service the stage does not deploy."""
        if stage.before is None:
            return None
        targets = self.targets(stage)
        wanted = stage.before.service
        if wanted is None:
            return targets[0] if len(targets) == 1 else None
        return next((t for t in targets if t.service == wanted), None)

    def before_container(self, stage: Stage) -> str | None:
        """The container that runs `stage.before`'s command: the one it names, else the only
        container whose image the build replaces in its service (`before_target`; `deployer validate`
        refuses a `before` without one when there are several)."""
        if stage.before is None:
            return None
        if stage.before.container is not None:
            return stage.before.container
        target = self.before_target(stage)
        names = target.containers if target is not None else self.container_names
        return names[0] if len(names) == 1 else None

    def stage_named(self, name: str) -> Stage | None:
        return next((s for s in self.stages if s.name == name), None)

    def targets(self, stage: Stage) -> tuple[ServiceTarget, ...]:
        """The ECS services `stage` deploys, each with the containers it swaps (`Stage.targets`)."""
        return stage.targets(self.container_names)

    def stage_after(self, name: str) -> Stage | None:
        """The stage that follows `name`, or None after the last one (or for an unknown name)."""
        names = [s.name for s in self.stages]
        if name not in names or names.index(name) + 1 == len(names):
            return None
        return self.stages[names.index(name) + 1]


class SlackDefaults(_Model):
    channel: SlackChannel | None = None


class PipelinesConfig(_Model):
    """The whole file. Build it with `load_config_text` or `from_published_json`, which also run
    the cross-checks (unique names, one stage per ECS service, rollouts) that a bare
    `model_validate` does not."""

    pipelines: list[Pipeline]
    slack: SlackDefaults | None = None

    def pipeline_named(self, name: str) -> Pipeline | None:
        return next((p for p in self.pipelines if p.name == name), None)

    @property
    def stage_count(self) -> int:
        return sum(len(p.stages) for p in self.pipelines)


def find_pipelines(
    config: PipelinesConfig, repository: str, branch: str, provider: str = "codecommit"
) -> list[Pipeline]:
    """Every pipeline a push to repository/branch (at `provider`) starts, in file order (several
    may match)."""
    return [p for p in config.pipelines if p.watches(provider, repository, branch)]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
