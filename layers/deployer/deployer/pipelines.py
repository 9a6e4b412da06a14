"""The pipelines file: its schema, loading with every error located, and the published copy.

The platform team owns one YAML file (not the application repositories, so nobody can push a
commit that removes their own prod approval). `deployer validate` checks it, `deployer config
publish` stores a canonical JSON copy in DynamoDB, and the functions read that copy through
`ConfigStore.load`, cached for at most a minute.

Entry points:
- `check_config_text(text, source)` -> `CheckResult` with the config (or None), every error and
  every warning, each with its path and YAML line.
- `load_config_text(text, source)` -> `PipelinesConfig`, or `ConfigError` listing every error.
- `to_published_json` / `from_published_json`: the published form, validated again on the way in.
- `find_pipelines(config, repository, branch, provider="codecommit")`: every pipeline a push
  starts, in file order.

A pipeline names where its pushes come from: `repository: NAME` (CodeCommit, the original form,
still valid) or `source:` with exactly one of `codecommit: NAME`, `github: OWNER/REPO`,
`gitlab: GROUP/PROJECT` (subgroups allowed).
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, NoReturn

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from deployer import settings as deploy_settings
from deployer.errors import ConfigError, DeployerError, TransientError
from deployer.rollout.traffic import traffic_plan
from deployer.rollout.validate import validate as validate_rollout

if TYPE_CHECKING:
    import yaml
    from aws_lambda_powertools.utilities.parameters import DynamoDBProvider
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table

__all__ = [
    "MAX_APPROVAL_HOURS",
    "MAX_CONFIG_BYTES",
    "MAX_PUBLISHED_BYTES",
    "MAX_YAML_NODES",
    "PUBLISHED_ITEM_ID",
    "Approval",
    "BeforeTask",
    "Build",
    "CheckResult",
    "ConfigStore",
    "Pipeline",
    "PipelinesConfig",
    "Problem",
    "PublishConflict",
    "PublishedConfig",
    "Rollout",
    "ScheduledTask",
    "ServiceTarget",
    "SlackDefaults",
    "Source",
    "Stage",
    "StageService",
    "check_config_text",
    "find_pipelines",
    "format_path",
    "from_published_json",
    "load_config_text",
    "lock_order",
    "to_published_json",
    "to_yaml",
]

# A pipeline takes about 1 KiB of YAML, so a few dozen take a few tens of KiB. The limit keeps the
# published JSON within one DynamoDB item (400 KB) and bounds the time of PyYAML's pure-Python
# parser (about 100 KiB per second on hostile input).
MAX_CONFIG_BYTES = 256 * 1024
# The published item holds the JSON plus a few short attributes; DynamoDB's item limit is 400 KB.
MAX_PUBLISHED_BYTES = 380_000
# Bounds what anchors and aliases may expand to (the "billion laughs" document is 1 KiB of YAML).
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64
MAX_PROBLEMS = 1000  # reported per kind; the rest are counted

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

Loc = tuple[str | int, ...]

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


@dataclass(frozen=True)
class ServiceTarget:
    """One ECS service a stage deploys, and the containers whose image it replaces there."""

    cluster: str
    service: str
    containers: tuple[str, ...]

    @property
    def key(self) -> str:
        """`cluster/service`: the lock's key, the order locks are taken in, and what logs print."""
        return f"{self.cluster}/{self.service}"


def lock_order(targets: Iterable[ServiceTarget]) -> list[ServiceTarget]:
    """`targets` in the one global order every release takes service locks in (by `cluster/service`),
    whatever order a stage lists them: two releases needing the same services never each hold one
    the other waits for."""
    return sorted(targets, key=lambda target: target.key)


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


# --------------------------------------------------------------------------------------------
# Problems and results
# --------------------------------------------------------------------------------------------


def format_path(loc: Sequence[str | int]) -> str:
    """('pipelines', 0, 'stages', 1, 'name') -> 'pipelines[0].stages[1].name'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class Problem:
    """One error or warning: where (path and YAML line, when known) and what."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def format(self, source: str) -> str:
        where = source
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class CheckResult:
    """What `check_config_text` found: the config when there is no error, and every problem."""

    source: str
    config: PipelinesConfig | None
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def valid(self) -> bool:
        return self.config is not None and not self.errors

    @property
    def error_messages(self) -> list[str]:
        return [p.format(self.source) for p in self.errors]

    @property
    def warning_messages(self) -> list[str]:
        return [p.format(self.source) for p in self.warnings]

    def raise_for_errors(self) -> PipelinesConfig:
        if self.config is None or self.errors:
            count = len(self.errors)
            raise ConfigError(
                f"{self.source}: {count} error{'s' if count != 1 else ''} in the pipelines configuration",
                self.error_messages,
            )
        return self.config


# --------------------------------------------------------------------------------------------
# YAML: compose the node tree ourselves, to know each path's line, refuse duplicate keys and
# bound what aliases expand to. PyYAML is imported here, where YAML is read or written: the
# functions read the published JSON and never import it.
# --------------------------------------------------------------------------------------------

_STANDARD_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _TooLarge(Exception):
    pass


class _YamlReader:
    """Turns a composed YAML node tree into plain data, remembering the line of every path."""

    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self.unreadable: set[Loc] = set()  # values replaced by None after a problem
        self._nodes = 0
        from yaml.constructor import SafeConstructor

        self._constructor = SafeConstructor()

    def _problem(self, loc: Loc, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(format_path(loc), message, node.start_mark.line + 1))

    def _unreadable(self, loc: Loc, node: yaml.Node, message: str) -> None:
        self._problem(loc, node, message)
        self.unreadable.add(loc)

    def read(self, node: yaml.Node, loc: Loc = (), depth: int = 0, active: frozenset[int] = frozenset()) -> Any:
        import yaml

        self._nodes += 1
        if self._nodes > MAX_YAML_NODES:
            raise _TooLarge
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if depth > MAX_YAML_DEPTH:
            self._unreadable(loc, node, f"nested deeper than {MAX_YAML_DEPTH} levels")
            return None
        if id(node) in active:
            self._unreadable(loc, node, "an alias refers to a node that contains it (a recursive structure)")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, loc)
        active = active | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._unreadable(loc, node, f"unsupported tag {node.tag!r}")
                return None
            return [self.read(item, (*loc, i), depth + 1, active) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._unreadable(loc, node, f"unsupported tag {node.tag!r}")
                return None
            return self._mapping(node, loc, depth, active)
        self._unreadable(loc, node, "unsupported YAML node")  # pragma: no cover - composer makes only these
        return None

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if node.tag not in _STANDARD_SCALAR_TAGS:
            self._unreadable(loc, node, f"unsupported tag {node.tag!r}")
            return None
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception as exc:  # PyYAML raises ValueError for dates like 2024-13-45
            self._unreadable(loc, node, f"cannot read the value {node.value!r}: {exc}")
            return None

    def _mapping(self, node: yaml.MappingNode, loc: Loc, depth: int, active: frozenset[int]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        explicit: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in self._merge_sources(value_node, loc):
                    value = self.read(source, loc, depth + 1, active)
                    if isinstance(value, dict):
                        for key, item in value.items():
                            merged.setdefault(key, item)
                continue
            key = self._key(key_node, loc)
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in first_line:
                self._problem(
                    (*loc, key),
                    key_node,
                    f"duplicate key (first at line {first_line[key]}); YAML would silently keep the last one",
                )
                continue
            first_line[key] = line
            explicit[key] = self.read(value_node, (*loc, key), depth + 1, active)
            self.lines[(*loc, key)] = line
        return {**merged, **explicit}

    def _merge_sources(self, node: yaml.Node, loc: Loc) -> list[yaml.Node]:
        import yaml

        if isinstance(node, yaml.MappingNode):
            return [node]
        if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.MappingNode) for n in node.value):
            return list(node.value)
        self._problem(loc, node, "a merge key (<<) takes a mapping or a list of mappings")
        return []

    def _key(self, node: yaml.Node, loc: Loc) -> str | None:
        import yaml

        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
            return str(node.value)
        shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else "a list or mapping"
        self._problem(loc, node, f"keys must be strings, got {shown}")
        return None


def _yaml_error_problem(exc: yaml.YAMLError, text: str) -> Problem:
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if "'\\t'" in problem:
            problem = "a tab character: YAML indents and separates with spaces only"
        elif isinstance(exc, yaml.composer.ComposerError) and "another document" in problem:
            problem = "more than one YAML document ('---'): the pipelines file is a single document"
        elif exc.context:
            problem = f"{exc.context}: {problem}"
        if mark is not None and _unquoted_arn_with_colon_at_end(text, mark.line):
            problem += (
                ": a value ending in ':' must be quoted (YAML reads a final ':' as a key), as a Secrets Manager "
                'reference with a JSON key does: "arn:aws:secretsmanager:...:secret:NAME:KEY::"'
            )
        if mark is not None:
            return Problem("", f"YAML syntax: {problem}", mark.line + 1, mark.column + 1)
        return Problem("", f"YAML syntax: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        return Problem(
            "",
            f"YAML syntax: the character #x{exc.character:04x} is not allowed",
            before.count("\n") + 1,
            exc.position - (before.rfind("\n") + 1) + 1,
        )
    return Problem("", f"YAML syntax: {exc}")


def _unquoted_arn_with_colon_at_end(text: str, line: int) -> bool:
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        return False
    value = lines[line].split("#", 1)[0].rstrip()
    return "arn:" in value and value.endswith(":") and '"' not in value and "'" not in value


@functools.cache
def _bounded_loader() -> type[yaml.SafeLoader]:
    import yaml

    class _BoundedLoader(yaml.SafeLoader):
        """Refuses deep flow nesting while scanning: PyYAML's scanner does work quadratic in the
        flow depth, so a mebibyte of '[' would otherwise take hours."""

        def fetch_flow_collection_start(self, TokenClass: Any) -> None:
            if self.flow_level >= MAX_YAML_DEPTH:
                raise yaml.scanner.ScannerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.get_mark()
                )
            super().fetch_flow_collection_start(TokenClass)

    return _BoundedLoader


@dataclass(frozen=True)
class _Parsed:
    data: Any
    lines: Mapping[Loc, int] = field(default_factory=dict)
    problems: Sequence[Problem] = ()
    unreadable: frozenset[Loc] = frozenset()


def _parse_yaml(text: str) -> _Parsed:
    """The document as plain data, the line of every path, and the problems YAML itself has."""
    import yaml

    try:
        root = yaml.compose(text, Loader=_bounded_loader())
    except yaml.YAMLError as exc:
        return _Parsed(None, problems=[_yaml_error_problem(exc, text)])
    except RecursionError:
        return _Parsed(None, problems=[Problem("", "YAML nested too deeply")])
    if root is None:
        return _Parsed(None, problems=[Problem("", "the file is empty: expected a mapping with a `pipelines` list")])
    reader = _YamlReader()
    try:
        data = reader.read(root)
    except _TooLarge:
        return _Parsed(
            None,
            problems=[
                Problem(
                    "",
                    f"the document holds more than {MAX_YAML_NODES} values "
                    "(after expanding anchors and aliases): refused",
                )
            ],
        )
    return _Parsed(data, reader.lines, reader.problems, frozenset(reader.unreadable))


# --------------------------------------------------------------------------------------------
# Validation: the schema (pydantic), then the cross-checks and rollouts, each on what is valid.
# --------------------------------------------------------------------------------------------


def _known_keys() -> set[str]:
    keys: set[str] = set()
    models: list[type[BaseModel]] = [PipelinesConfig]
    seen: set[type[BaseModel]] = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
            for arg in _types_in(info.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    models.append(arg)
    return keys


def _types_in(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _types_in(arg)


_KNOWN_KEYS = _known_keys()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _humanize(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(error["loc"][-1]) if error["loc"] else ""
        close = difflib.get_close_matches(key, sorted(_KNOWN_KEYS), n=1, cutoff=0.75)
        hint = f": did you mean {close[0]!r}?" if close else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key missing"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    message = str(error["msg"])
    if kind == "too_long" and error["loc"] and error["loc"][-1] == "services":
        return (
            f"{len(value) if isinstance(value, list) else 'too many'} services: a stage deploys at most "
            f"{MAX_SERVICES_PER_STAGE} (each costs about four ECS calls inside a function's 30-second timeout); "
            "split them over stages"
        )
    if kind == "too_short":
        least = error.get("ctx", {}).get("min_length", 1)
        return f"needs at least {least} entr{'y' if least == 1 else 'ies'}"
    if value is None:
        return f"empty value (null): {message[0].lower()}{message[1:]}"
    if kind == "string_type" and value is not None and not isinstance(value, dict | list):
        return (
            f"expected a string, got {_short(value)}: YAML reads true/false/yes/no/on/off, numbers "
            "and dates as such, so quote the value"
        )
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"expected a mapping, got {_short(value)}"
    if kind == "list_type":
        return f"expected a list, got {_short(value)}"
    return f"{message} (got {_short(value)})"


def _line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


class _Checker:
    def __init__(self, lines: Mapping[Loc, int], unreadable: frozenset[Loc] = frozenset()) -> None:
        self.lines = lines
        self.unreadable = unreadable
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.dropped = {"errors": 0, "warnings": 0}  # beyond MAX_PROBLEMS: counted, not kept
        self._seen: set[Problem] = set()

    def _add(self, problems: list[Problem], loc: Loc, message: str) -> None:
        problem = Problem(format_path(loc), message, _line_for(loc, self.lines))
        if problem in self._seen:  # the schema and the raw checks may both see one rule
            return
        if len(problems) >= MAX_PROBLEMS:
            self.dropped["errors" if problems is self.errors else "warnings"] += 1
            return
        self._seen.add(problem)
        problems.append(problem)

    def error(self, loc: Loc, message: str) -> None:
        self._add(self.errors, loc, message)

    def warning(self, loc: Loc, message: str) -> None:
        self._add(self.warnings, loc, message)

    def pydantic(self, exc: ValidationError, prefix: Loc = ()) -> None:
        for err in exc.errors(include_url=False):
            loc = (*prefix, *err["loc"])
            if any(loc[:end] in self.unreadable for end in range(len(loc) + 1)):
                continue  # the YAML reader already said why this value is missing
            if len(self.errors) >= MAX_PROBLEMS:
                self.dropped["errors"] += 1
                continue
            self.error(loc, _humanize(err))


def _validate(
    data: Any, lines: Mapping[Loc, int], unreadable: frozenset[Loc] = frozenset()
) -> tuple[PipelinesConfig | None, _Checker]:
    check = _Checker(lines, unreadable)
    if not isinstance(data, dict):
        check.error((), f"the document must be a mapping with a `pipelines` list, got {_short(data)}")
        return None, check
    config: PipelinesConfig | None = None
    try:
        config = PipelinesConfig.model_validate(data)
    except ValidationError as exc:
        check.pydantic(exc)
    _cross_check(data, check)
    if config is None or check.errors:
        return None, check
    _warn(config, check)
    return config, check


def _entries(value: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """(index, entry) for each mapping in value[key]; the schema reports the rest."""
    items = value.get(key) if isinstance(value, dict) else None
    if not isinstance(items, list):
        return []
    return [(index, item) for index, item in enumerate(items) if isinstance(item, dict)]


def _cross_check(data: dict[str, Any], check: _Checker) -> None:
    """Rules between entries, and the rollout values, checked on the raw data so that one entry
    the schema refuses does not hide the problems of the others."""
    pipeline_names: dict[str, int] = {}
    services: dict[tuple[str, str], Loc] = {}
    schedules: dict[tuple[str, str, str], Loc] = {}
    for p_index, pipeline in _entries(data, "pipelines"):
        p_loc: Loc = ("pipelines", p_index)
        name = pipeline.get("name")
        if isinstance(name, str):
            if name in pipeline_names:
                check.error(
                    (*p_loc, "name"),
                    f"{name!r} is also the name of pipelines[{pipeline_names[name]}]: pipeline names are unique",
                )
            else:
                pipeline_names[name] = p_index
        if (pipeline.get("container") is None) == (pipeline.get("containers") is None):
            check.error(p_loc, ONE_CONTAINER_KEY)
        _check_source(pipeline, p_loc, check)
        containers = pipeline.get("containers")
        if isinstance(containers, list):
            seen_containers: set[str] = set()
            for c_index, container in enumerate(containers):
                if isinstance(container, str) and container in seen_containers:
                    check.error((*p_loc, "containers", c_index), f"{container!r} is listed twice")
                if isinstance(container, str):
                    seen_containers.add(container)
        stage_names: dict[str, int] = {}
        for s_index, stage in _entries(pipeline, "stages"):
            s_loc: Loc = (*p_loc, "stages", s_index)
            stage_name = stage.get("name")
            if isinstance(stage_name, str):
                if stage_name in stage_names:
                    check.error(
                        (*s_loc, "name"),
                        f"{stage_name!r} is also the name of stages[{stage_names[stage_name]}]: "
                        "stage names are unique within a pipeline",
                    )
                else:
                    stage_names[stage_name] = s_index
            if (stage.get("service") is None) == (stage.get("services") is None):
                check.error(s_loc, ONE_SERVICE_KEY)
            cluster = stage.get("cluster")
            in_stage: dict[str, Loc] = {}
            for where, service in _stage_services(stage, s_loc, check):
                if service in in_stage:
                    check.error(
                        where,
                        f"{service!r} is listed twice in this stage (first at {format_path(in_stage[service])}): "
                        "the services of a stage are distinct",
                    )
                    continue
                in_stage[service] = where
                if not isinstance(cluster, str):
                    continue
                if (cluster, service) in services:
                    check.error(
                        where,
                        f"ECS service {service!r} in cluster {cluster!r} is already deployed by "
                        f"{format_path(services[cluster, service])}: one deployment per ECS service at "
                        "a time is an invariant, so each service belongs to exactly one stage",
                    )
                else:
                    services[cluster, service] = where
            if "approval" in stage and stage["approval"] is None:
                check.error((*s_loc, "approval"), EMPTY_APPROVAL)
            _check_rollout(stage.get("rollout"), (*s_loc, "rollout"), check)
            _check_approval_at(stage, s_loc, check)
            _check_settings(stage, s_loc, check)
            _check_before(stage, pipeline, s_loc, check)
            _check_schedules(stage, s_loc, schedules, check)


def _check_schedules(stage: dict[str, Any], loc: Loc, seen: dict[tuple[str, str, str], Loc], check: _Checker) -> None:
    """A scheduled task follows one stage only: two stages would move it back and forth."""
    for index, entry in _entries(stage, "schedules"):
        scheduler, rule = entry.get("scheduler"), entry.get("rule")
        if isinstance(scheduler, str) and rule is None:
            group = entry.get("group")
            key = ("scheduler", group if isinstance(group, str) else DEFAULT_SCHEDULE_GROUP, scheduler)
        elif isinstance(rule, str) and scheduler is None:
            bus = entry.get("eventBus")
            key = ("rule", bus if isinstance(bus, str) else DEFAULT_EVENT_BUS, rule)
        else:
            continue  # the schedule's own rule (exactly one kind) is the schema's to report
        where: Loc = (*loc, "schedules", index)
        if key in seen:
            kind = "schedule" if key[0] == "scheduler" else "rule"
            check.error(
                where,
                f"{kind} {key[2]!r} is also listed at {format_path(seen[key])}: a scheduled task follows exactly one "
                "stage, or two stages would move it back and forth between their revisions",
            )
        else:
            seen[key] = where


def _check_source(pipeline: dict[str, Any], loc: Loc, check: _Checker) -> None:
    """`repository` or `source`, exactly one; `source` names exactly one provider."""
    has_repository, has_source = pipeline.get("repository") is not None, pipeline.get("source") is not None
    if has_repository and has_source:
        check.error(loc, REPOSITORY_AND_SOURCE)
    elif not has_repository and not has_source:
        check.error((*loc, "repository"), NO_SOURCE)
    source = pipeline.get("source")
    if (
        isinstance(source, dict)
        and sum(source.get(p) is not None for p in SOURCE_PROVIDERS) != 1
        and not set(source) - set(SOURCE_PROVIDERS)  # an unknown key is reported by the schema
    ):
        check.error((*loc, "source"), ONE_SOURCE)


def _stage_services(stage: dict[str, Any], s_loc: Loc, check: _Checker) -> list[tuple[Loc, str]]:
    """(path, name) of each service the raw stage names, through `service` or `services`; repeated
    containers of an entry are reported here (the schema reports the rest)."""
    service = stage.get("service")
    if isinstance(service, str):
        return [((*s_loc, "service"), service)]
    entries = stage.get("services")
    if not isinstance(entries, list):
        return []
    found: list[tuple[Loc, str]] = []
    for index, entry in enumerate(entries):
        e_loc: Loc = (*s_loc, "services", index)
        if isinstance(entry, str):
            found.append((e_loc, entry))
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            found.append(((*e_loc, "name"), entry["name"]))
            containers = entry.get("containers")
            if isinstance(containers, list):
                seen: set[str] = set()
                for c_index, container in enumerate(containers):
                    if isinstance(container, str) and container in seen:
                        check.error((*e_loc, "containers", c_index), f"{container!r} is listed twice")
                    if isinstance(container, str):
                        seen.add(container)
    return found


EMPTY_APPROVAL = (
    "empty: an approval gate cannot be empty; write `approval: {}` for one that anyone holding "
    "the link can give (24 hours), or remove the key"
)

_ROLLOUT_API_KEYS = frozenset(
    info.alias or name for name, info in Rollout.model_fields.items() if name != "circuit_breaker"
)


def _check_rollout(raw: Any, loc: Loc, check: _Checker) -> None:
    """The rollout's values through `validate_rollout` (static checks: no service facts here)."""
    if not isinstance(raw, dict):
        return
    requested = {key: value for key, value in raw.items() if key in _ROLLOUT_API_KEYS and value is not None}
    if "circuitBreaker" in raw and "deploymentCircuitBreaker" in raw:
        check.error(loc, ONE_CIRCUIT_BREAKER)
    shorthand = "circuitBreaker" in raw and "deploymentCircuitBreaker" not in raw
    if shorthand:
        try:
            breaker = CircuitBreakerShorthand.model_validate(raw["circuitBreaker"])
        except ValidationError:
            pass  # the schema reports it
        else:
            requested["deploymentCircuitBreaker"] = {"enable": breaker.enable, "rollback": breaker.rollback}
    result = validate_rollout(requested, None)
    for severity, findings in (("error", result.errors), ("warning", result.warnings)):
        for finding in findings:
            path = finding.field
            if shorthand and path.startswith("deploymentCircuitBreaker"):
                path = "circuitBreaker" + path.removeprefix("deploymentCircuitBreaker")
            message = finding.message.removeprefix(f"{finding.field}: ")
            where = (*loc, *_field_loc(path))
            if severity == "error":
                check.error(where, message)
            else:
                check.warning(where, message)


def _settings_of(stage: dict[str, Any]) -> deploy_settings.DeploySettings:
    """The stage's settings as far as their shape allows (the schema reports the rest)."""

    def per_container(key: str, kind: type) -> dict[str, Any]:
        raw = stage.get(key)
        if not isinstance(raw, dict):
            return {}
        return {
            container: values
            for container, values in raw.items()
            if isinstance(container, str) and isinstance(values, kind)
        }

    environment = {
        c: {n: v for n, v in values.items() if isinstance(n, str) and isinstance(v, str)}
        for c, values in per_container("environment", dict).items()
    }
    secrets = {
        c: {n: v for n, v in values.items() if isinstance(n, str) and isinstance(v, str)}
        for c, values in per_container("secrets", dict).items()
    }
    unset = {c: [n for n in names if isinstance(n, str)] for c, names in per_container("unset", list).items()}
    return deploy_settings.DeploySettings(environment=environment, secrets=secrets, unset=unset)


def _check_settings(stage: dict[str, Any], loc: Loc, check: _Checker) -> None:
    """Container names, variable names, secret references, a name set twice, the size."""
    for key in ("environment", "secrets", "unset"):
        raw = stage.get(key)
        if isinstance(raw, dict):
            for container in raw:
                if isinstance(container, str) and not _ECS_NAME_RE.fullmatch(container):
                    check.error(
                        (*loc, key, container),
                        f"{container!r} is not a container name: 1 to 255 letters, digits, '-' and '_' (the "
                        "container's `name` in the task definition)",
                    )
    chosen = _settings_of(stage)
    for problem in deploy_settings.problems(chosen):
        check.error((*loc, *problem.loc), problem.message)
    size = deploy_settings.settings_bytes(chosen)
    if size > deploy_settings.MAX_TASK_DEFINITION_BYTES:
        check.error(
            loc,
            f"the stage's environment and secrets take {size} bytes, above ECS's task definition size limit of "
            f"{deploy_settings.MAX_TASK_DEFINITION_BYTES // 1024} KiB (not adjustable): the revision could never be "
            "registered",
        )


def _warn_settings(stage: Stage, loc: Loc, check: _Checker) -> None:
    """Legal settings that are probably a mistake. (That the execution role may read the secrets is
    not checked here: the approval page and `deployer diff` name the role and the actions.)"""
    for container, values in (stage.environment or {}).items():
        for name in values:
            if deploy_settings.looks_secret(name):
                check.warning(
                    (*loc, "environment", container, name),
                    f"{name} looks like a secret, and an environment value is readable by anyone allowed "
                    "ecs:DescribeTaskDefinition (ECS): store it in Secrets Manager or SSM and give its reference "
                    f"under secrets.{container}.{name}",
                )


def _check_approval_at(stage: dict[str, Any], loc: Loc, check: _Checker) -> None:
    approval, rollout = stage.get("approval"), stage.get("rollout")
    at = approval.get("at") if isinstance(approval, dict) else None
    if at is None:
        return
    if at in {"TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"}:
        check.error(
            (*loc, "approval", "at"),
            f"{at}: ECS cannot pause at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT (PAUSE hooks are refused "
            "there): use POST_TEST_TRAFFIC_SHIFT or PRE_PRODUCTION_TRAFFIC_SHIFT",
        )
    entries = stage.get("services")
    if isinstance(entries, list) and len(entries) > 1:
        check.error(
            (*loc, "approval", "at"),
            f"{at}: an approval during the deployment pauses one ECS deployment, and this stage deploys "
            f"{len(entries)} services, each in a deployment of its own that ECS would pause, time out and roll back "
            "apart; approve before the stage instead (remove `at`), or give the services stages of their own",
        )
    strategy = rollout.get("strategy") if isinstance(rollout, dict) else None
    if strategy not in HOOK_STRATEGIES:
        check.error(
            (*loc, "approval", "at"),
            f"{at} needs rollout.strategy BLUE_GREEN, LINEAR or CANARY (got {strategy or 'none: ROLLING'}): "
            "AWS documents the lifecycle stages of those deployments only, none for a rolling update, so nothing "
            f"says ECS would pause a rolling deployment at {at} and wait for the approval; remove `at` to approve "
            "before the stage deploys",
        )


def before_overrides(container: str, command: Sequence[str]) -> dict[str, Any]:
    """RunTask's `overrides` for a `before` task: the command, in its container."""
    return {"containerOverrides": [{"name": container, "command": list(command)}]}


def overrides_chars(overrides: Mapping[str, Any]) -> int:
    """The characters of RunTask's `overrides` as compact JSON, which ECS bounds (MAX_OVERRIDES_CHARS)."""
    return len(json.dumps(overrides, separators=(",", ":"), ensure_ascii=False))


def _check_before(stage: dict[str, Any], pipeline: dict[str, Any], loc: Loc, check: _Checker) -> None:
    """The service and container a `before` task runs in, and the size of the RunTask overrides."""
    before = stage.get("before")
    if not isinstance(before, dict):
        if "before" in stage and before is None:
            check.error(
                (*loc, "before"), "empty: write the task (`before: {task: migrate, command: [...]}`) or remove the key"
            )
        return
    entry = _before_service(stage, before, loc, check)
    if entry is False:
        return
    container = before.get("container")
    if container is None:
        containers, single = pipeline.get("containers"), pipeline.get("container")
        where = "the pipeline replaces"
        if isinstance(entry, dict) and (entry.get("containers") is not None or entry.get("container") is not None):
            containers, single = entry.get("containers"), entry.get("container")
            where = f"service {entry.get('name')} replaces"
        if isinstance(containers, list) and len(containers) > 1:
            listed = ", ".join(str(c) for c in containers)
            check.error(
                (*loc, "before", "container"),
                f"required: {where} several containers ({listed}); name the one that runs the command",
            )
            return
        container = containers[0] if isinstance(containers, list) and containers else single
    command = before.get("command")
    if not isinstance(container, str) or not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        return  # the schema reports it
    size = overrides_chars(before_overrides(container, command))
    if size > MAX_OVERRIDES_CHARS:
        check.error(
            (*loc, "before", "command"),
            f"RunTask's overrides for this command would be {size} characters, above ECS's {MAX_OVERRIDES_CHARS} (the "
            "limit counts the JSON of the whole override): move the long part into the image (a script it runs)",
        )


def _before_service(stage: dict[str, Any], before: dict[str, Any], loc: Loc, check: _Checker) -> Any:
    """The stage's service entry `before` runs with (a name, a mapping, or None for a stage of one
    `service`); False after reporting why there is none. In a stage of several services the task
    takes one service's new revision, placement and network: `before.service` must say which."""
    named = before.get("service")
    if not isinstance(named, str) and named is not None:
        return False  # the schema reports it
    entries = stage.get("services")
    if isinstance(entries, list):
        names = [e if isinstance(e, str) else e.get("name") if isinstance(e, dict) else None for e in entries]
        listed = ", ".join(str(n) for n in names)
        if named is None and len(entries) > 1:
            check.error(
                (*loc, "before", "service"),
                f"required: this stage deploys {len(entries)} services ({listed}); name the one whose new revision, "
                "placement and network configuration the task runs with (RunTask runs one task definition in one "
                f"network), e.g. `service: {names[0]}`",
            )
            return False
        if named is None:
            return entries[0] if entries else False
        if named not in names:
            check.error(
                (*loc, "before", "service"),
                f"{named!r} is not a service of this stage ({listed}): the task runs with the new revision of one "
                "of the services the stage deploys",
            )
            return False
        return entries[names.index(named)]
    service = stage.get("service")
    if named is not None and isinstance(service, str) and named != service:
        check.error(
            (*loc, "before", "service"),
            f"{named!r} is not this stage's service ({service}): leave `service` out, or name {service}",
        )
        return False
    return None


def _warn(config: PipelinesConfig, check: _Checker) -> None:
    """Legal but probably not meant: reported, never refused."""
    if not config.pipelines:
        check.warning(("pipelines",), "no pipelines: a push starts nothing")
    for p_index, pipeline in enumerate(config.pipelines):
        for s_index, stage in enumerate(pipeline.stages):
            _warn_settings(stage, ("pipelines", p_index, "stages", s_index), check)
            configuration = stage.deployment_configuration()
            expected = expected_minutes(configuration)
            if stage.deadline_minutes is not None and stage.deadline_minutes <= expected:
                check.warning(
                    ("pipelines", p_index, "stages", s_index, "deadlineMinutes"),
                    f"{stage.deadline_minutes} minutes is no longer than the rollout's own bake times and hooks' "
                    f"timeouts ({expected} minutes): the deployer would stop and roll back deployments that are "
                    f"still on schedule (leave it out for {default_deadline_minutes(configuration)})",
                )
            container = pipeline.before_container(stage)
            target = pipeline.before_target(stage)
            swapped = target.containers if target is not None else pipeline.container_names
            if stage.before is not None and container is not None and container not in swapped:
                check.warning(
                    ("pipelines", p_index, "stages", s_index, "before", "container"),
                    f"{container!r} is not a container whose image the build replaces "
                    f"({', '.join(swapped)}): the task runs the image the service's task "
                    "definition already has for it, not the new build",
                )
            approval = stage.approval
            if approval is None:
                continue
            loc: Loc = ("pipelines", p_index, "stages", s_index, "approval", "approvers")
            if not approval.approvers:
                check.warning(loc, "empty: anyone holding the approval link can approve (list Slack user ids)")
            seen: set[str] = set()
            for index, approver in enumerate(approval.approvers):
                if approver in seen:
                    check.warning((*loc, index), f"{approver!r} is listed twice")
                seen.add(approver)


def _field_loc(field_path: str) -> Loc:
    """'deploymentCircuitBreaker.rollback' or 'lifecycleHooks[0].roleArn' -> a loc."""
    return tuple(
        int(part[1:-1]) if part.startswith("[") else part for part in re.findall(r"\[\d+\]|[^.\[\]]+", field_path)
    )


def check_config_text(text: str, source: str = "<string>") -> CheckResult:
    """Every error and warning of a pipelines file; never raises for bad input."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        return CheckResult(
            source,
            None,
            (Problem("", f"the file is {size} bytes, above the limit of {MAX_CONFIG_BYTES // 1024} KiB"),),
        )
    parsed = _parse_yaml(text)
    if parsed.problems and parsed.data is None:
        return CheckResult(source, None, tuple(parsed.problems))
    config, check = _validate(parsed.data, parsed.lines, parsed.unreadable)
    if config is not None and not check.errors:
        published = len(to_published_json(config).encode())
        if published > MAX_PUBLISHED_BYTES:
            check.error((), _too_big_to_publish(published))
    errors = _at_most([*parsed.problems, *check.errors], "errors", check.dropped["errors"])
    warnings = _at_most(check.warnings, "warnings", check.dropped["warnings"])
    return CheckResult(source, None if errors else config, tuple(errors), tuple(warnings))


def _too_big_to_publish(size: int) -> str:
    return (
        f"the published JSON would be {size} bytes, above {MAX_PUBLISHED_BYTES}: it is stored in one "
        "DynamoDB item, which holds at most 400 KB (anchors and aliases are expanded when published)"
    )


def _at_most(problems: list[Problem], what: str, dropped: int) -> list[Problem]:
    """In line order. A real file has a handful of problems; a generated or hostile one may have
    thousands, of which the first MAX_PROBLEMS are shown and the rest counted."""
    ordered = sorted(problems, key=lambda p: p.line or 0)
    more = dropped + max(0, len(ordered) - MAX_PROBLEMS)
    if not more:
        return ordered
    return [*ordered[:MAX_PROBLEMS], Problem("", f"... and {more} more {what} not shown")]


def load_config_text(text: str, source: str = "<string>") -> PipelinesConfig:
    """The validated config; ConfigError whose `messages` list every problem, located.

    Warnings do not fail loading: `check_config_text` returns them."""
    return check_config_text(text, source).raise_for_errors()


# --------------------------------------------------------------------------------------------
# Published form
# --------------------------------------------------------------------------------------------


def _published_data(config: PipelinesConfig) -> dict[str, Any]:
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def to_published_json(config: PipelinesConfig) -> str:
    """Canonical compact JSON (sorted keys): the same config always gives the same bytes and sha256."""
    return json.dumps(_published_data(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_yaml(config: PipelinesConfig) -> str:
    """The config as YAML in schema order (what `deployer config show` prints)."""
    import yaml

    return yaml.safe_dump(_published_data(config), sort_keys=False, allow_unicode=True, width=110)


PUBLISHED_SOURCE = "published config"


def from_published_json(text: str, source: str = PUBLISHED_SOURCE) -> PipelinesConfig:
    """Validates the published copy again, with every cross-check; ConfigError if it fails."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    config, check = _validate(data, {})
    return CheckResult(source, config, tuple(check.errors), tuple(check.warnings)).raise_for_errors()


# --------------------------------------------------------------------------------------------
# The published copy in DynamoDB
# --------------------------------------------------------------------------------------------

PUBLISHED_ITEM_ID = "pipelines"
MAX_CACHE_SECONDS = 60

_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


class PublishConflict(DeployerError):
    """Someone else published between our read and our write; re-running publishes on top."""


@dataclass(frozen=True)
class PublishedConfig:
    version: int
    sha256: str
    published_at: str
    published_by: str
    value: str = field(repr=False)


def _raise_store_error(exc: BaseException, table_name: str) -> NoReturn:
    """AWS failures as domain errors: throttling, 5xx and network faults may pass on a retry
    (TransientError); a missing table, denied access or missing credentials will not (ConfigError).
    Anything else is a bug and propagates as it is."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    error: DeployerError
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "ResourceNotFoundException":
            error = ConfigError(
                f"DynamoDB table {table_name!r} not found (check --table / DEPLOYER_CONFIG_TABLE and the region)"
            )
        elif code in _TRANSIENT_CODES or status >= 500:
            error = TransientError(f"DynamoDB table {table_name!r}: {exc}")
        else:
            error = ConfigError(f"DynamoDB table {table_name!r}: {exc}")
    elif isinstance(exc, NoCredentialsError):
        error = ConfigError("no AWS credentials found (set AWS_PROFILE or the AWS_* environment variables)")
    elif isinstance(exc, NoRegionError):
        error = ConfigError("no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION)")
    elif isinstance(exc, BotoCoreError):
        error = TransientError(f"DynamoDB table {table_name!r}: {exc}")
    else:
        raise exc
    raise error from exc


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConfigStore:
    """The published pipelines: one DynamoDB item (`id = "pipelines"`), read through Powertools'
    DynamoDBProvider so a warm Lambda reads the table at most once per `max_age_seconds`."""

    def __init__(
        self,
        table_name: str,
        dynamodb: DynamoDBServiceResource | None = None,
        max_age_seconds: int = MAX_CACHE_SECONDS,
    ) -> None:
        if not 0 <= max_age_seconds <= MAX_CACHE_SECONDS:
            raise ValueError(f"max_age_seconds must be 0..{MAX_CACHE_SECONDS}: a publish shows within a minute")
        from aws_lambda_powertools.utilities.parameters import DynamoDBProvider

        if dynamodb is None:
            import boto3
            from botocore.exceptions import BotoCoreError

            try:
                dynamodb = boto3.resource("dynamodb")
            except BotoCoreError as exc:
                _raise_store_error(exc, table_name)
        self.table_name = table_name
        self.max_age_seconds = max_age_seconds
        self._table: Table = dynamodb.Table(table_name)
        self._provider: DynamoDBProvider = DynamoDBProvider(
            table_name, key_attr="id", value_attr="value", boto3_client=dynamodb
        )
        self._parsed: tuple[str, PipelinesConfig] | None = None

    def describe(self) -> PublishedConfig | None:
        """The published item (consistent read), not validated; None before the first publish."""
        try:
            item = self._table.get_item(Key={"id": PUBLISHED_ITEM_ID}, ConsistentRead=True).get("Item")
        except Exception as exc:
            _raise_store_error(exc, self.table_name)
        if item is None:
            return None
        return PublishedConfig(
            version=int(str(item.get("version", 0))),
            sha256=str(item.get("sha256", "")),
            published_at=str(item.get("published_at", "")),
            published_by=str(item.get("published_by", "unknown")),
            value=str(item.get("value", "")),
        )

    def publish(
        self, config: PipelinesConfig, published_by: str, *, expected_version: int | None = None
    ) -> PublishedConfig:
        """Writes version N+1 on condition that N is still the latest, so no publish is lost.

        `expected_version` is the version this publish builds on (default: the one read now)."""
        if expected_version is None:
            current = self.describe()
            expected_version = current.version if current is not None else 0
        value = to_published_json(config)
        if len(value.encode()) > MAX_PUBLISHED_BYTES:
            raise ConfigError(_too_big_to_publish(len(value.encode())))
        published = PublishedConfig(
            version=expected_version + 1,
            sha256=hashlib.sha256(value.encode()).hexdigest(),
            published_at=_now_iso(),
            published_by=published_by or "unknown",
            value=value,
        )
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(id)"}
            if expected_version == 0
            else {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": expected_version},
            }
        )
        from botocore.exceptions import ClientError

        try:
            self._table.put_item(
                Item={
                    "id": PUBLISHED_ITEM_ID,
                    "value": published.value,
                    "version": published.version,
                    "sha256": published.sha256,
                    "published_at": published.published_at,
                    "published_by": published.published_by,
                },
                **condition,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                _raise_store_error(exc, self.table_name)
            latest = self.describe()
            version = latest.version if latest is not None else "?"
            raise PublishConflict(
                f"someone published version {version} meanwhile (this publish was based on version "
                f"{expected_version}); re-run"
            ) from None
        except Exception as exc:
            _raise_store_error(exc, self.table_name)
        return published

    def load(self, *, force_fetch: bool = False) -> PipelinesConfig:
        """The published config, cached for `max_age_seconds`, validated again.

        ConfigError if nothing was published or the published copy fails validation (log it:
        the functions refuse to act on a config they cannot trust)."""
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._provider.get(PUBLISHED_ITEM_ID, max_age=self.max_age_seconds, force_fetch=force_fetch)
        except GetParameterError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, KeyError):
                raise ConfigError(
                    f"no pipelines published yet in table {self.table_name!r}: run deployer config publish FILE"
                ) from None
            _raise_store_error(cause or exc, self.table_name)
        if not isinstance(value, str):
            raise ConfigError(f"published config in table {self.table_name!r} is not a string")
        if self._parsed is not None and self._parsed[0] == value:
            return self._parsed[1]
        config = from_published_json(value)
        self._parsed = (value, config)
        return config
