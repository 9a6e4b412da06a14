"""The two parts of a release that cannot run here, simulated: the CodeBuild build and the ECS
rollout. Everything they print starts with "SIMULATED".

moto (the local AWS) accepts StartBuild and UpdateService but emits no event: a build
"succeeds" at once and a service never runs a task (REFERENCE.md, "moto 5.2 as the local AWS").
The simulators watch moto for what the deployer started and emit the events AWS would have sent,
shaped like the samples in `events/`:

- `CodeBuildSimulator` finds builds started since its last poll (ListBuilds, BatchGetBuilds),
  pushes an image to ECR as the build would (tag: the commit's first 12 characters) and emits
  "CodeBuild Build State Change" SUCCEEDED with `IMAGE_URI` exported, pinned by digest (or
  FAILED for the projects it is told to fail).
- `EcsRolloutSimulator` finds, on the services it watches, a PRIMARY deployment the deployer
  started and it has not handled yet, draws the rollout ECS would do (`deployer.rollout.plan`)
  and emits "ECS Deployment State Change" COMPLETED (or, for the stages it is told to fail, the
  circuit breaker's rollback IN_PROGRESS and then FAILED). A revision with secrets says which
  secrets its tasks read when they start (names, never values); one that does not exist in the
  local Secrets Manager or SSM stops the tasks with ECS's ResourceInitializationError, and the
  deployment fails the same way. A BLUE_GREEN, LINEAR or CANARY
  deployment walks ECS's lifecycle stages instead, and stops at a PAUSE lifecycle hook: the hook
  waits (AWAITING_ACTION, "ECS Hook State Change" HOOK_AWAITING_ACTION) for
  ContinueServiceDeployment, StopServiceDeployment or its timeout. Those calls, and
  List/DescribeServiceDeployments, are answered from the simulator's records
  (`deployer_local.ecs_front.ServiceDeployments`) by the local stack's ECS front, since moto has
  none of them.

They never touch the deployer's state: they only emit events, which the local router delivers
to the functions whose rules match, as EventBridge would. `Simulators` polls them on a thread.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Final, Protocol

from deployer import render
from deployer.ecs_deployments import HOOK_STATE_CHANGE
from deployer.events.codebuild import CODEBUILD_SOURCE, CODEBUILD_STATE_CHANGE
from deployer.events.ecs import ECS_DEPLOYMENT_STATE_CHANGE, ECS_SOURCE, DeploymentEvent
from deployer.flow.common import ENV_COMMIT, ENV_PIPELINE, ENV_RELEASE_ID, EXPORTED_IMAGE
from deployer.rollout.model import DEFAULT_MAXIMUM_PERCENT, DEFAULT_MINIMUM_HEALTHY_PERCENT
from deployer.rollout.plan import plan as plan_rollout
from deployer_local.ecs_front import (
    HookRecord,
    Request,
    RevisionRecord,
    ServiceDeploymentRecord,
    ServiceDeployments,
    service_deployment_arn,
    service_revision_arn,
)

if TYPE_CHECKING:
    from deployer.pipelines.schema import PipelinesConfig
    from deployer.releases.store import ReleaseStore

__all__ = [
    "HOOK_AWAITING_ACTION",
    "HOOK_TIMED_OUT",
    "LABEL",
    "TRAFFIC_SHIFTING",
    "BeforeTaskSimulator",
    "CodeBuildSimulator",
    "EcsRolloutSimulator",
    "Simulators",
    "codebuild_time",
    "deployment_lookup_from_store",
    "for_local_stack",
    "release_lookup_from_store",
    "secret_check_for",
    "simulated_exit_code",
]

LABEL: Final = "SIMULATED"
TRAFFIC_SHIFTING: Final = ("BLUE_GREEN", "LINEAR", "CANARY")
HOOK_AWAITING_ACTION: Final = "HOOK_AWAITING_ACTION"
HOOK_TIMED_OUT: Final = "HOOK_TIMED_OUT"

Event = dict[str, Any]
Emit = Callable[[Event], None]
Printer = Callable[[str], None]
ReleaseLookup = Callable[[str], tuple[str, str, str] | None]
"""build ARN -> (release id, commit, pipeline), or None when no release names that build (yet)."""
DeploymentLookup = Callable[[str], tuple[str, str] | None]
"""ECS deployment id -> (release id, stage) of a deployment the deployer started, else None."""
SecretCheck = Callable[[str], str | None]
"""A container secret's `valueFrom` -> why ECS could not read it when a task starts, or None."""

BUILD_IDS_PER_CALL: Final = 100  # BatchGetBuilds takes at most 100 ids
SERVICES_PER_CALL: Final = 10  # DescribeServices takes at most 10 services
_COMMIT: Final = re.compile(r"[0-9a-f]{40}")
_MONTHS: Final = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_STEP_ROW: Final = re.compile(r"^\s+(?P<index>[0-9]+)\s{2}\[")


def _now() -> datetime:
    return datetime.now(UTC)


def _event_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _millis(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def codebuild_time(moment: datetime) -> str:
    """CodeBuild's event time format, "Mar 14, 2025 9:26:58 AM" (UTC), locale-independent."""
    moment = moment.astimezone(UTC)
    hour = moment.hour % 12 or 12
    half = "AM" if moment.hour < 12 else "PM"
    return f"{_MONTHS[moment.month - 1]} {moment.day}, {moment.year} {hour}:{moment:%M:%S} {half}"


def _short(text: str, keep: int = 12) -> str:
    return text if len(text) <= keep else text[:keep] + "…"


def _short_release(release_id: str) -> str:
    pipeline, _, commit = release_id.partition("@")
    return f"{pipeline}@{commit[:12]}" if commit else release_id


def _error_text(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return f"{error.get('Code', type(exc).__name__)}: {error.get('Message', exc)}"
    return f"{type(exc).__name__}: {exc}"


class _Clients:
    """`session.client(name)` over a mapping of ready clients (e.g. {"codebuild": ..., "ecr": ...})."""

    def __init__(self, clients: Mapping[str, Any]) -> None:
        self._clients = dict(clients)

    def client(self, service_name: str) -> Any:
        try:
            return self._clients[service_name]
        except KeyError:
            raise ValueError(f"no {service_name} client given to the simulator") from None


def _client_source(session_or_clients: Any) -> Any:
    if isinstance(session_or_clients, Mapping):
        return _Clients(session_or_clients)
    if not callable(getattr(session_or_clients, "client", None)):
        raise TypeError("expected a boto3 Session or a mapping of service name -> client")
    return session_or_clients


def release_lookup_from_store(store: ReleaseStore) -> ReleaseLookup:
    """The deployer's own answer to "whose build is this?": the `BUILD#<arn>` index item, then
    the release item, which must already name this build (the deployer records the build right
    after StartBuild; until then the build is not yet the release's)."""

    def lookup(build_arn: str) -> tuple[str, str, str] | None:
        release_id = store.release_for_build(build_arn)
        release = store.get(release_id) if release_id else None
        if release is None or release.build_arn != build_arn:
            return None
        return release.release_id, release.commit, release.pipeline

    return lookup


def deployment_lookup_from_store(store: ReleaseStore) -> DeploymentLookup:
    """The deployer's own answer to "did you start this deployment?": the `DEPLOYMENT#<id>` index
    item, confirmed by the release's stage record, which must already be DEPLOYING that very
    deployment (the deployer records it just after UpdateService; an event sent before would be
    taken for a stale one)."""
    from deployer.releases.model import StageState

    def lookup(deployment_id: str) -> tuple[str, str] | None:
        found = store.deployment(deployment_id)
        release = store.get(found[0]) if found else None
        record = release.stages.get(found[1]) if release and found else None
        if found is None or record is None:
            return None
        if record.services is not None:  # a stage of several services: that service's deployment
            service = record.service_with_deployment(deployment_id)
            deploying = service is not None and service.state is StageState.DEPLOYING
            return found if deploying and record.state is StageState.DEPLOYING else None
        if record.deployment_id != deployment_id:
            return None
        return found if record.state is StageState.DEPLOYING else None

    return lookup


# -- CodeBuild --------------------------------------------------------------------------------


@dataclass
class _Pending:
    build_id: str
    first_seen: float


class CodeBuildSimulator:
    """Turns builds started in moto into the "CodeBuild Build State Change" events CodeBuild sends.

    `session_or_clients`: a boto3 Session (or a mapping with "codebuild" and "ecr" clients).
    `release_lookup(build_arn)` names the build's release when the build itself does not carry the
    deployer's environment variables (moto does not keep `environmentVariablesOverride`). A build
    that no release names yet is retried for `grace_seconds` (the deployer records its build just
    after StartBuild returns), then simulated as a build someone else started.
    `image_repository(project)` names the ECR repository a project pushes to; by default the
    project's IMAGE_REPOSITORY variable, else its CodeCommit repository's name, else the project's.
    """

    def __init__(
        self,
        session_or_clients: Any,
        emit: Emit,
        printer: Printer,
        fail_projects: Iterable[str] = frozenset(),
        *,
        release_lookup: ReleaseLookup | None = None,
        image_repository: Callable[[str], str] | None = None,
        grace_seconds: float = 5.0,
        clock: Callable[[], datetime] = _now,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self._clients = _client_source(session_or_clients)
        self._codebuild = self._clients.client("codebuild")
        self._emit = emit
        self._print = printer
        self.fail_projects = frozenset(fail_projects)
        self._release_lookup = release_lookup
        self._image_repository = image_repository
        self._grace = grace_seconds
        self._clock = clock
        self._monotonic = monotonic or time.monotonic
        self._seen: set[str] = set()
        self._pending: dict[str, _Pending] = {}
        self._projects: dict[str, dict[str, Any]] = {}

    def poll_once(self) -> list[Event]:
        """Simulate every build started since the last poll; return the events emitted."""
        ids = [build_id for build_id in self._list_builds() if build_id not in self._seen]
        now = self._monotonic()
        for build_id in ids:
            self._pending.setdefault(build_id, _Pending(build_id, now))
        emitted: list[Event] = []
        waiting = list(self._pending)
        builds = []
        for start in range(0, len(waiting), BUILD_IDS_PER_CALL):
            batch = waiting[start : start + BUILD_IDS_PER_CALL]
            builds.extend(self._codebuild.batch_get_builds(ids=batch).get("builds", []))
        builds.sort(key=lambda b: (str(b.get("startTime", "")), str(b.get("id", ""))))
        for build in builds:
            build_id = str(build["id"])
            overrides = self._overrides(build)
            if overrides is None and now - self._pending[build_id].first_seen < self._grace:
                continue  # the deployer may not have recorded its build yet: look again next poll
            self._seen.add(build_id)
            self._pending.pop(build_id, None)
            event = self._simulate(build, overrides)
            if event is not None:
                emitted.append(event)
        return emitted

    def _list_builds(self) -> list[str]:
        ids: list[str] = []
        kwargs: dict[str, Any] = {}
        while True:
            response = self._codebuild.list_builds(**kwargs)
            ids.extend(response.get("ids", []))
            token = response.get("nextToken")
            if not token:
                return ids
            kwargs["nextToken"] = token

    def _overrides(self, build: Mapping[str, Any]) -> list[dict[str, str]] | None:
        """The deployer's environment variables of the build: as the build reports them (real
        CodeBuild) or rebuilt from the deployer's records (moto keeps no overrides)."""
        variables = [
            {"name": str(v["name"]), "type": str(v.get("type", "PLAINTEXT")), "value": str(v.get("value", ""))}
            for v in build.get("environment", {}).get("environmentVariables", [])
        ]
        if any(v["name"] == ENV_RELEASE_ID for v in variables):
            return variables
        found = self._release_lookup(str(build["arn"])) if self._release_lookup else None
        if found is None:
            return None
        release_id, commit, pipeline = found
        return [
            {"name": ENV_RELEASE_ID, "type": "PLAINTEXT", "value": release_id},
            {"name": ENV_COMMIT, "type": "PLAINTEXT", "value": commit},
            {"name": ENV_PIPELINE, "type": "PLAINTEXT", "value": pipeline},
        ]

    def _project(self, name: str) -> dict[str, Any]:
        if name not in self._projects:
            found = self._codebuild.batch_get_projects(names=[name]).get("projects", [])
            self._projects[name] = dict(found[0]) if found else {}
        return self._projects[name]

    def _repository_for(self, project_name: str) -> str:
        if self._image_repository is not None:
            return self._image_repository(project_name)
        project = self._project(project_name)
        for variable in project.get("environment", {}).get("environmentVariables", []):
            if variable.get("name") == "IMAGE_REPOSITORY" and variable.get("value"):
                return str(variable["value"]).rsplit("/", 1)[-1].split(":", 1)[0]
        location = str(project.get("source", {}).get("location", ""))
        if "/repos/" in location:
            return location.rstrip("/").rsplit("/", 1)[-1]
        return project_name

    def _simulate(self, build: Mapping[str, Any], overrides: list[dict[str, str]] | None) -> Event | None:
        project_name = str(build["projectName"])
        arn = str(build["arn"])
        values = {v["name"]: v["value"] for v in overrides or []}
        source_version = str(build.get("sourceVersion") or "")
        commit = values.get(ENV_COMMIT) or source_version
        label = f"build {project_name}:{arn.rsplit(':', 1)[-1][:8]}" + (
            f" of {commit[:12]}" if _COMMIT.fullmatch(commit) else ""
        )
        who = "" if overrides is not None else " (no deployer release names it)"
        exported: list[dict[str, str]] | None = None
        failure: str | None = None
        if project_name in self.fail_projects:
            failure = f"COMMAND_EXECUTION_ERROR: {LABEL}: this build was asked to fail"
        else:
            tag = commit[:12] if _COMMIT.fullmatch(commit) else arn.rsplit(":", 1)[-1][:12]
            repository = self._repository_for(project_name)
            try:
                pinned = self._push_image(repository, tag)
            except Exception as exc:
                failure = (
                    f"COMMAND_EXECUTION_ERROR: {LABEL}: docker push to ECR {repository} failed: {_error_text(exc)}"
                )
            else:
                exported = [{"name": EXPORTED_IMAGE, "value": pinned}, {"name": "IMAGE_TAG", "value": tag}]
        event = self._event(build, overrides or [], exported, failure)
        if failure is None and exported is not None:
            repo, _, digest = exported[0]["value"].partition("@")
            self._print(f"{LABEL} CodeBuild: {label} succeeded{who}, image {repo}@{_short(digest, 19)}")
        else:
            self._print(f"{LABEL} CodeBuild: {label} FAILED{who}: {failure}")
        try:
            self._emit(event)
        except Exception as exc:
            self._print(f"{LABEL} CodeBuild: the event of {label} was not delivered: {_error_text(exc)}")
        return event

    def _push_image(self, repository: str, tag: str) -> str:
        """Push an image as the build's `docker push` would; return it pinned by digest."""
        from deployer_local.provision import push_demo_image

        ecr = self._clients.client("ecr")
        try:
            tagged, digest = push_demo_image(self._clients, repository, tag)
            repository_uri = tagged.rsplit(":", 1)[0]
        except ecr.exceptions.ImageAlreadyExistsException:
            # A second build of the same commit: the same manifest is already there under that tag.
            image = ecr.describe_images(repositoryName=repository, imageIds=[{"imageTag": tag}])["imageDetails"][0]
            repository_uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
            digest = image["imageDigest"]
        return f"{repository_uri}@{digest}"

    def _event(
        self,
        build: Mapping[str, Any],
        overrides: list[dict[str, str]],
        exported: list[dict[str, str]] | None,
        failure: str | None,
    ) -> Event:
        """The event as events/build_succeeded.json (or build_failed.json) shapes it."""
        arn = str(build["arn"])
        _, _, _, region, account, _ = arn.split(":", 5)
        project_name = str(build["projectName"])
        project = self._project(project_name)
        environment = project.get("environment") or build.get("environment", {})
        source = project.get("source") or build.get("source", {})
        stream = arn.rsplit(":", 1)[-1]
        group = f"/aws/codebuild/{project_name}"
        now = self._clock()
        started = build.get("startTime")
        started_at = started if isinstance(started, datetime) else now
        names = {v["name"] for v in overrides}
        variables = [
            {"name": str(v["name"]), "type": str(v.get("type", "PLAINTEXT")), "value": str(v.get("value", ""))}
            for v in environment.get("environmentVariables", [])
            if v.get("name") not in names
        ] + overrides
        information: dict[str, Any] = {
            "cache": {"type": str(project.get("cache", {}).get("type", "NO_CACHE"))},
            "timeout-in-minutes": float(project.get("timeoutInMinutes") or build.get("timeoutInMinutes") or 60),
            "build-complete": True,
            "build-number": float(build.get("buildNumber") or 1),
            "initiator": str(build.get("initiator") or "ecs-deployer-OnPushFunction"),
            "build-start-time": codebuild_time(started_at),
            "source": {
                "buildspec": str(source.get("buildspec") or "buildspec.yml"),
                "location": str(source.get("location", "")),
                "git-clone-depth": float(source.get("gitCloneDepth") or 1),
                "type": str(source.get("type", "CODECOMMIT")),
            },
            "source-version": str(build.get("sourceVersion") or ""),
            "environment": {
                "image": str(environment.get("image", "")),
                "privileged-mode": bool(environment.get("privilegedMode", False)),
                "image-pull-credentials-type": str(environment.get("imagePullCredentialsType", "CODEBUILD")),
                "compute-type": str(environment.get("computeType", "BUILD_GENERAL1_SMALL")),
                "type": str(environment.get("type", "LINUX_CONTAINER")),
                "environment-variables": variables,
            },
            "logs": {
                "group-name": group,
                "stream-name": stream,
                "deep-link": f"https://console.aws.amazon.com/cloudwatch/home?region={region}"
                f"#logEvent:group={group};stream={stream}",
            },
            "queued-timeout-in-minutes": float(project.get("queuedTimeoutInMinutes") or 480),
        }
        if exported is not None:
            information["exported-environment-variables"] = exported
        information["phases"] = _phases(started_at, now, failure)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": CODEBUILD_STATE_CHANGE,
            "source": CODEBUILD_SOURCE,
            "account": account,
            "time": _event_time(now),
            "region": region,
            "resources": [arn],
            "detail": {
                "build-status": "FAILED" if failure else "SUCCEEDED",
                "project-name": project_name,
                "build-id": arn,
                "additional-information": information,
                "current-phase": "COMPLETED",
                "current-phase-context": "[: ]",
                "version": "1",
            },
        }


_PHASES: Final = (
    "SUBMITTED",
    "QUEUED",
    "PROVISIONING",
    "DOWNLOAD_SOURCE",
    "INSTALL",
    "PRE_BUILD",
    "BUILD",
    "POST_BUILD",
    "UPLOAD_ARTIFACTS",
    "FINALIZING",
)


def _phases(started: datetime, ended: datetime, failure: str | None) -> list[dict[str, Any]]:
    """Every phase SUCCEEDED (or up to BUILD, which FAILED), then COMPLETED, as CodeBuild lists them."""
    start, end = codebuild_time(started), codebuild_time(ended)
    phases: list[dict[str, Any]] = []
    for phase in _PHASES:
        failed = failure is not None and phase == "BUILD"
        phases.append(
            {
                "phase-context": [failure] if failed else [],
                "start-time": start,
                "end-time": end,
                "duration-in-seconds": 0.0,
                "phase-type": phase,
                "phase-status": "FAILED" if failed else "SUCCEEDED",
            }
        )
        if failed:
            break
    phases.append({"start-time": end, "phase-type": "COMPLETED"})
    return phases


# -- ECS --------------------------------------------------------------------------------------


@dataclass
class _Watched:
    cluster: str
    service: str
    stable_task_definition: str | None = None
    stable_deployment_id: str | None = None
    stable_revision_arn: str | None = None

    @property
    def name(self) -> str:
        return f"{self.cluster}/{self.service}"


# The deployment's lifecycleStage while a hook of this stage runs: ServiceDeploymentLifecycleStage
# (botocore's ECS model) has no PRE_PRODUCTION_TRAFFIC_SHIFT, a hook stage only.
_REPORTED_STAGE: Final = {"PRE_PRODUCTION_TRAFFIC_SHIFT": "PRODUCTION_TRAFFIC_SHIFT"}
# DeploymentLifecycleHookTimeoutConfiguration: timeoutInMinutes default 1440, action default ROLLBACK.
DEFAULT_HOOK_TIMEOUT_MINUTES: Final = 1440
DEFAULT_HOOK_TIMEOUT_ACTION: Final = "ROLLBACK"


@dataclass(frozen=True)
class _Step:
    """One lifecycle stage of a traffic-shifting deployment, or one hook run at a stage."""

    stage: str  # the deployment's lifecycleStage meanwhile
    text: str = ""
    hook: Mapping[str, Any] | None = None  # the lifecycleHooks entry run here
    hook_stage: str | None = None
    green_running: int | None = None
    blue_running: int | None = None
    test_on_green: bool | None = None
    production_tenths: int | None = None  # production traffic on green afterwards, in tenths of a percent
    bake_minutes: int = 0


@dataclass
class _Flight:
    """A service deployment the simulator is carrying out (or that waits for a request)."""

    record: ServiceDeploymentRecord
    watched: _Watched
    service: Mapping[str, Any]
    release_id: str
    stage: str
    prefix: str
    steps: list[_Step] = field(default_factory=list)
    cursor: int = 0
    failing: bool = False  # green's tasks fail to start (a stage the simulator is told to fail)


def _tenths(value: object, default: float) -> int:
    """A percentage as tenths (33.3 -> 333), within 1..1000; ECS's default when it is not one."""
    try:
        tenths = int((Decimal(str(value)) * 10).to_integral_value())
    except (InvalidOperation, ValueError, OverflowError):
        tenths = int(default * 10)
    return min(1000, max(1, tenths))


def _minutes(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default


def _percent(tenths: int) -> str:
    return f"{tenths // 10}%" if tenths % 10 == 0 else f"{tenths / 10}%"


def _shift_levels(configuration: Mapping[str, Any]) -> list[tuple[int, int]]:
    """(production traffic on green after each shift in tenths, minutes ECS waits after it), from
    botocore's LinearConfiguration (stepPercent 10.0, stepBakeTimeInMinutes 6 by default; no bake
    after 100%) and CanaryConfiguration (canaryPercent 5.0, canaryBakeTimeInMinutes 10)."""
    strategy = configuration.get("strategy")
    if strategy == "LINEAR":
        linear = configuration.get("linearConfiguration") or {}
        step = max(30, _tenths(linear.get("stepPercent", 10.0), 10.0))
        bake = _minutes(linear.get("stepBakeTimeInMinutes", 6), 6)
        return [(level, bake if level < 1000 else 0) for level in [*range(step, 1000, step), 1000]]
    if strategy == "CANARY":
        canary = configuration.get("canaryConfiguration") or {}
        percent = _tenths(canary.get("canaryPercent", 5.0), 5.0)
        bake = _minutes(canary.get("canaryBakeTimeInMinutes", 10), 10)
        return [(1000, 0)] if percent >= 1000 else [(percent, bake), (1000, 0)]
    return [(1000, 0)]


def _traffic_steps(configuration: Mapping[str, Any], desired: int, revision: str) -> list[_Step]:
    """The lifecycle stages ECS walks for BLUE_GREEN, LINEAR and CANARY (ECS developer guide,
    "Amazon ECS blue/green deployments" and "Lifecycle hooks for Amazon ECS service deployments"),
    with each configured hook as a step of its own at its stage. Hooks at PRE_PRODUCTION_TRAFFIC_SHIFT
    and PRODUCTION_TRAFFIC_SHIFT run at every production traffic shift; hooks at RECONCILE_SERVICE
    only when more than one service revision is ACTIVE, which a deployment from one stable revision
    never has."""
    hooks = [h for h in configuration.get("lifecycleHooks") or [] if isinstance(h, Mapping)]
    steps: list[_Step] = []

    def hooks_at(stage: str) -> None:
        for hook in hooks:
            if stage in (hook.get("lifecycleStages") or []):
                steps.append(_Step(_REPORTED_STAGE.get(stage, stage), hook=hook, hook_stage=stage))

    tasks = render.tasks_text(desired)
    steps.append(_Step("RECONCILE_SERVICE", "RECONCILE_SERVICE: blue is the only ACTIVE service revision"))
    hooks_at("PRE_SCALE_UP")
    steps.append(
        _Step(
            "SCALE_UP",
            f"SCALE_UP: green ({revision}) starts {tasks} beside blue's {desired}: {2 * desired} running",
            green_running=desired,
        )
    )
    hooks_at("POST_SCALE_UP")
    steps.append(
        _Step(
            "TEST_TRAFFIC_SHIFT",
            "TEST_TRAFFIC_SHIFT: test traffic goes to green; production traffic stays on blue",
            test_on_green=True,
        )
    )
    hooks_at("TEST_TRAFFIC_SHIFT")
    hooks_at("POST_TEST_TRAFFIC_SHIFT")
    levels = _shift_levels(configuration)
    for index, (level, bake) in enumerate(levels):
        hooks_at("PRE_PRODUCTION_TRAFFIC_SHIFT")
        step = f" (shift {index + 1} of {len(levels)})" if len(levels) > 1 else ""
        steps.append(
            _Step(
                "PRODUCTION_TRAFFIC_SHIFT",
                f"PRODUCTION_TRAFFIC_SHIFT{step}: {_percent(level)} of production traffic on green",
                production_tenths=level,
                bake_minutes=bake,
            )
        )
        hooks_at("PRODUCTION_TRAFFIC_SHIFT")
    hooks_at("POST_PRODUCTION_TRAFFIC_SHIFT")
    bake = _minutes(configuration.get("bakeTimeInMinutes", 0), 0)
    steps.append(
        _Step(
            "BAKE_TIME",
            f"BAKE_TIME: bakeTimeInMinutes {bake}; blue still runs, so a rollback would move traffic back at once",
            bake_minutes=bake,
        )
    )
    steps.append(
        _Step("CLEAN_UP", f"CLEAN_UP: blue scales in to 0; green runs {tasks}", blue_running=0, test_on_green=False)
    )
    return steps


def _sentence(text: str) -> str:
    return f"{text[:1].upper()}{text[1:]}."


def _function_name(arn: object) -> str:
    parts = str(arn or "").split(":")
    return parts[6] if len(parts) >= 7 and parts[5] == "function" else str(arn or "?")


class EcsRolloutSimulator:
    """Turns deployments the deployer starts on watched services into ECS's deployment events.

    moto keeps a service's PRIMARY deployment id across UpdateService calls, so a deployment is
    "new" per (deployment id, release) that `deployment_lookup` names. For a stage in
    `fail_stages` ("cluster/service" or the stage's name) ECS's circuit breaker is simulated: the
    service goes back to the task definition it ran before (when the simulator saw it), then the
    rollback's IN_PROGRESS event and the deployment's FAILED event are emitted.

    Every deployment is also a service deployment in `service_deployments`, the records the local
    stack's ECS front answers List/Describe/Continue/StopServiceDeployment from. A BLUE_GREEN,
    LINEAR or CANARY deployment walks its lifecycle stages and waits at each PAUSE hook, whose
    answer (or timeout, after `timeoutInMinutes` or `hook_timeout` when given) a later poll
    carries out. Bake times are not waited for: each stage takes `step_delay`, and says so.
    """

    def __init__(  # noqa: PLR0917 - the documented call: (ecs, lookup, emit, printer, fail_stages, step_delay)
        self,
        ecs_client: Any,
        deployment_lookup: DeploymentLookup,
        emit: Emit,
        printer: Printer,
        fail_stages: Iterable[str] = frozenset(),
        step_delay: float = 0.0,
        *,
        clock: Callable[[], datetime] = _now,
        service_deployments: ServiceDeployments | None = None,
        hook_timeout: timedelta | None = None,
        secret_check: SecretCheck | None = None,
    ) -> None:
        self._ecs = ecs_client
        self._secret_check = secret_check
        self._lookup = deployment_lookup
        self._emit = emit
        self._print = printer
        self.fail_stages = frozenset(fail_stages)
        self.step_delay = step_delay
        self._clock = clock
        self.service_deployments = service_deployments or ServiceDeployments(clock)
        self.hook_timeout = hook_timeout
        self._watched: dict[str, _Watched] = {}
        self._handled: set[tuple[str, str, str]] = set()
        self._flights: dict[str, _Flight] = {}
        self._interrupt = threading.Event()

    def watch(self, cluster: str, service: str) -> None:
        watched = _Watched(cluster, service)
        self._watched.setdefault(watched.name, watched)

    def watch_pipelines(self, config: PipelinesConfig) -> None:
        """Watch every stage's service of a published configuration."""
        for pipeline in config.pipelines:
            for stage in pipeline.stages:
                for service in stage.service_names:
                    self.watch(stage.cluster, service)

    @property
    def watched(self) -> list[str]:
        return list(self._watched)

    def interrupt(self) -> None:
        """Cut short any step delay (the background thread is stopping)."""
        self._interrupt.set()

    def poll_once(self) -> list[Event]:
        """Simulate the rollout of every new deployment on the watched services, then carry out
        what was asked of the service deployments in flight (or what their hooks' timeouts do);
        return the events emitted."""
        emitted: list[Event] = []
        by_cluster: dict[str, list[_Watched]] = {}
        for watched in self._watched.values():
            by_cluster.setdefault(watched.cluster, []).append(watched)
        for cluster, services in by_cluster.items():
            for start in range(0, len(services), SERVICES_PER_CALL):
                batch = {w.service: w for w in services[start : start + SERVICES_PER_CALL]}
                described = self._ecs.describe_services(cluster=cluster, services=list(batch))
                for service in described.get("services", []):
                    found = batch.get(str(service.get("serviceName")))
                    if found is not None:
                        emitted.extend(self._poll_service(found, service))
        emitted.extend(self._carry_out_requests())
        return emitted

    def _poll_service(self, watched: _Watched, service: Mapping[str, Any]) -> list[Event]:
        primary = next((d for d in service.get("deployments", []) if d.get("status") == "PRIMARY"), None)
        deployment_id = str(primary["id"]) if primary and primary.get("id") else None
        found = self._lookup(deployment_id) if deployment_id else None
        key = (watched.name, deployment_id or "", found[0] if found else "")
        if deployment_id is None or found is None:
            if watched.stable_task_definition is None:  # as the service ran before the deployer came
                watched.stable_task_definition = str(service.get("taskDefinition") or "") or None
                watched.stable_deployment_id = deployment_id
            return []
        if key in self._handled:
            return []
        self._handled.add(key)
        release_id, stage = found
        return self._roll_out(watched, service, deployment_id, release_id, stage)

    def _roll_out(
        self, watched: _Watched, service: Mapping[str, Any], deployment_id: str, release_id: str, stage: str
    ) -> list[Event]:
        prefix = f"{LABEL} ECS rollout of {watched.name}:"
        config = service.get("deploymentConfiguration") or {}
        if config.get("strategy") in TRAFFIC_SHIFTING:
            return self._shift_traffic(watched, service, deployment_id, release_id, stage, prefix)
        flight = self._register(watched, service, deployment_id, release_id, stage, prefix)
        daemon = service.get("schedulingStrategy") == "DAEMON"
        strategy = "DAEMON" if daemon else "REPLICA"
        minimum = int(config.get("minimumHealthyPercent", DEFAULT_MINIMUM_HEALTHY_PERCENT[strategy]))
        maximum = int(config.get("maximumPercent", DEFAULT_MAXIMUM_PERCENT[strategy]))
        desired = int(service.get("desiredCount", 0))
        failing = watched.name in self.fail_stages or stage in self.fail_stages
        revision = str(service.get("taskDefinition", "?")).rsplit("/", 1)[-1]
        self._print(
            f"{prefix} {_short_release(release_id)} (stage {stage}), deployment {deployment_id}, {revision}: "
            f"{render.tasks_text(desired)}, minimumHealthyPercent {minimum}, maximumPercent {maximum}"
        )
        failing = self._secrets_unreadable(prefix, service) or failing
        try:
            rollout = plan_rollout(desired, minimum, maximum)
        except ValueError as exc:  # StuckRollout too: ECS would sit there, sending no event
            self._print(f"{prefix} ECS cannot roll this out ({exc}); no event is sent, as ECS sends none")
            return []  # in flight for ever, as in ECS: StopServiceDeployment can still roll it back
        for line in render.plan_text(rollout, minimum, maximum).splitlines():
            row = _STEP_ROW.match(line)
            if failing and row and int(row["index"]) > 1:
                break
            if line.strip():
                self._print(f"{prefix} {line}")
            if row and int(row["index"]) > 0 and self.step_delay > 0:
                self._interrupt.wait(self.step_delay)
        if failing:
            events = self._fail(watched, service, deployment_id, prefix)
            self._finish(flight, "ROLLBACK_SUCCESSFUL", "ECS deployment circuit breaker: tasks failed to start.")
        else:
            events = self._complete(flight)
        return self._send(prefix, events)

    def _secrets_unreadable(self, prefix: str, service: Mapping[str, Any]) -> bool:
        """What ECS does with the new revision's secrets when its tasks start: reads each one with the
        task execution role (here: looks it up in the local Secrets Manager and SSM, never reading a
        value). A missing one stops the tasks with ECS's ResourceInitializationError, and the
        deployment fails as the circuit breaker fails it. Says nothing when the revision has no
        secrets (or no check was given)."""
        if self._secret_check is None:
            return False
        arn = str(service.get("taskDefinition") or "")
        try:
            definition = self._ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]
        except Exception as exc:
            self._print(f"{prefix} cannot read {arn.rsplit('/', 1)[-1]}: {_error_text(exc)}")
            return False
        secrets = [
            (str(container.get("name")), str(secret.get("name")), str(secret.get("valueFrom")))
            for container in definition.get("containerDefinitions") or ()
            for secret in container.get("secrets") or ()
        ]
        if not secrets:
            return False
        listed = ", ".join(f"{container} {name} from {_source(reference)}" for container, name, reference in secrets)
        count = f"{len(secrets)} secret{'s' if len(secrets) != 1 else ''}"
        self._print(f"{prefix} new tasks of {arn.rsplit('/', 1)[-1]} read {count} when they start: {listed}")
        unreadable = False
        for container, name, reference in secrets:
            why = self._secret_check(reference)
            if why is not None:
                unreadable = True
                self._print(
                    f"{prefix} new tasks stop: ResourceInitializationError: unable to pull secrets or registry auth: "
                    f"execution resource retrieval failed: {why} ({name} of container {container})"
                )
        return unreadable

    def _send(self, prefix: str, events: list[Event]) -> list[Event]:
        for event in events:
            try:
                self._emit(event)
            except Exception as exc:
                self._print(f"{prefix} the {event['detail']['eventName']} event was not delivered: {_error_text(exc)}")
        return events

    def _complete(self, flight: _Flight) -> list[Event]:
        """The deployment is done: SERVICE_DEPLOYMENT_COMPLETED (not yet sent)."""
        watched, service, deployment_id = flight.watched, flight.service, flight.record.deployment_id
        reason = f"ECS deployment {deployment_id} completed."
        events = [self._event(service, deployment_id, DeploymentEvent.COMPLETED, reason)]
        watched.stable_task_definition = str(service.get("taskDefinition") or "") or None
        watched.stable_deployment_id = deployment_id
        watched.stable_revision_arn = flight.record.target.arn
        self._finish(flight, "SUCCESSFUL", "Service deployment completed.")
        self._print(f"{flight.prefix} completed: {DeploymentEvent.COMPLETED.value} sent")
        return events

    def _fail(self, watched: _Watched, service: Mapping[str, Any], deployment_id: str, prefix: str) -> list[Event]:
        return self._roll_back(
            watched,
            service,
            deployment_id,
            prefix,
            announce="new tasks failed to start: the circuit breaker rolls back to",
            cause="ECS deployment circuit breaker",
            failure="ECS deployment circuit breaker: tasks failed to start.",
            outcome="failed",
        )

    def _roll_back(
        self,
        watched: _Watched,
        service: Mapping[str, Any],
        deployment_id: str,
        prefix: str,
        *,
        announce: str,
        cause: str,
        failure: str,
        outcome: str,
    ) -> list[Event]:
        """The service goes back to the task definition it ran before; the rollback's IN_PROGRESS
        event ("<cause>: rolling back to deploymentId ...") and the deployment's FAILED event
        (`failure`), not yet sent."""
        previous = watched.stable_deployment_id
        if not previous or previous == deployment_id:  # moto keeps one id per service
            previous = _deployment_id()
        current = str(service.get("taskDefinition") or "")
        back_to = watched.stable_task_definition
        self._print(f"{prefix} {announce} {previous}")
        if back_to and back_to != current:
            with contextlib.suppress(Exception):
                self._ecs.update_service(cluster=watched.cluster, service=watched.service, taskDefinition=back_to)
                self._print(f"{prefix} the service runs {back_to.rsplit('/', 1)[-1]} again")
        rolling_back = self._event(
            service,
            _deployment_id(),
            DeploymentEvent.IN_PROGRESS,
            f"{cause}: rolling back to deploymentId {previous}.",
        )
        failed = self._event(service, deployment_id, DeploymentEvent.FAILED, failure)
        sent = f"{DeploymentEvent.IN_PROGRESS.value} (rolling back) and {DeploymentEvent.FAILED.value}"
        self._print(f"{prefix} {outcome}: {sent} sent")
        return [rolling_back, failed]

    def _event(self, service: Mapping[str, Any], deployment_id: str, name: DeploymentEvent, reason: str) -> Event:
        """The event as events/ecs_deployment_completed.json (…_rolling_back, …_failed) shapes it."""
        arn = _service_arn(service)
        _, _, _, region, account, _ = arn.split(":", 5)
        now = self._clock()
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": ECS_DEPLOYMENT_STATE_CHANGE,
            "source": ECS_SOURCE,
            "account": account,
            "time": _event_time(now),
            "region": region,
            "resources": [arn],
            "detail": {
                "eventType": "ERROR" if name is DeploymentEvent.FAILED else "INFO",
                "eventName": name.value,
                "deploymentId": deployment_id,
                "updatedAt": _millis(now),
                "reason": reason,
            },
        }

    # -- service deployments ------------------------------------------------------------------

    def _register(  # noqa: PLR0917 - the deployment as _roll_out found it
        self,
        watched: _Watched,
        service: Mapping[str, Any],
        deployment_id: str,
        release_id: str,
        stage: str,
        prefix: str,
    ) -> _Flight:
        """The deployment as a service deployment IN_PROGRESS; one still in flight on the same
        service is STOPPED, as a newer deployment replaces it."""
        service_arn = _service_arn(service)
        head, _, path = service_arn.partition(":service/")
        cluster_arn = str(service.get("clusterArn") or f"{head}:cluster/{path.split('/')[0]}")
        desired = int(service.get("desiredCount", 0))
        now = self._clock()
        source = watched.stable_revision_arn or service_revision_arn(service_arn)
        watched.stable_revision_arn = source
        record = ServiceDeploymentRecord(
            arn=service_deployment_arn(service_arn),
            service_arn=service_arn,
            cluster_arn=cluster_arn,
            deployment_id=deployment_id,
            configuration=dict(service.get("deploymentConfiguration") or {}),
            target=RevisionRecord(service_revision_arn(service_arn), desired),
            sources=[RevisionRecord(source, desired, running=desired, production_weight=100.0)],
            created_at=now,
            status="IN_PROGRESS",
            started_at=now,
            updated_at=now,
        )
        for older in [f for f in self._flights.values() if f.watched is watched]:
            if older.steps:  # a stuck rolling deployment is replaced silently, as it always was here
                self._print(f"{prefix} service deployment {older.record.arn} is replaced by a newer one: STOPPED")
            self._finish(older, "STOPPED", f"Replaced by service deployment {record.arn}.")
        self.service_deployments.add(record)
        flight = _Flight(record, watched, service, release_id, stage, prefix)
        self._flights[record.arn] = flight
        return flight

    def _finish(self, flight: _Flight, status: str, reason: str) -> None:
        record = flight.record
        with self.service_deployments.lock:
            now = self._clock()
            record.status = status
            record.status_reason = reason
            record.updated_at = record.finished_at = now
            if status == "STOPPED":
                record.stopped_at = now
            hook = record.awaiting_hook()
            if hook is not None:
                hook.status = "FAILED"
            green, blue = record.target, record.sources
            if status == "SUCCESSFUL":
                green.running, green.production_weight, green.test_weight = green.requested, 100.0, 0.0
                for revision in blue:
                    revision.running, revision.production_weight, revision.test_weight = 0, 0.0, 0.0
            elif status.startswith("ROLLBACK"):
                green.running, green.production_weight, green.test_weight = 0, 0.0, 0.0
                for revision in blue:
                    revision.running, revision.production_weight = revision.requested, 100.0
        self._flights.pop(record.arn, None)

    def _shift_traffic(  # noqa: PLR0917 - the deployment as _roll_out found it
        self,
        watched: _Watched,
        service: Mapping[str, Any],
        deployment_id: str,
        release_id: str,
        stage: str,
        prefix: str,
    ) -> list[Event]:
        config = service.get("deploymentConfiguration") or {}
        strategy = str(config["strategy"])
        desired = int(service.get("desiredCount", 0))
        revision = str(service.get("taskDefinition", "?")).rsplit("/", 1)[-1]
        flight = self._register(watched, service, deployment_id, release_id, stage, prefix)
        flight.steps = _traffic_steps(config, desired, revision)
        flight.failing = watched.name in self.fail_stages or stage in self.fail_stages
        pauses = sum(1 for step in flight.steps if step.hook is not None and step.hook.get("targetType") == "PAUSE")
        self._print(
            f"{prefix} {_short_release(release_id)} (stage {stage}), deployment {deployment_id}, {revision}: "
            f"{strategy}, {render.tasks_text(desired)}, service deployment {flight.record.arn.rsplit('/', 1)[-1]}"
            + (f", {pauses} PAUSE hook{'s' if pauses != 1 else ''}" if pauses else "")
        )
        flight.failing = self._secrets_unreadable(prefix, service) or flight.failing
        return self._walk(flight)

    def _walk(self, flight: _Flight) -> list[Event]:
        """Go through the lifecycle stages from the flight's cursor: up to a PAUSE hook (which then
        waits), to the end (COMPLETED), or until a request arrives (StopServiceDeployment). Every
        event it returns was sent."""
        record, prefix = flight.record, flight.prefix
        while flight.cursor < len(flight.steps):
            request = self.service_deployments.take_request(record)
            if request is not None:
                return self._carry_out(flight, request)
            step = flight.steps[flight.cursor]
            if flight.failing and step.stage == "SCALE_UP":
                self._print(f"{prefix} SCALE_UP: green's tasks fail to start; production traffic stays on blue")
                events = self._fail(flight.watched, flight.service, record.deployment_id, prefix)
                self._finish(flight, "ROLLBACK_SUCCESSFUL", "ECS deployment circuit breaker: tasks failed to start.")
                return self._send(prefix, events)
            self._enter(flight, step)
            if step.hook is not None and step.hook.get("targetType") == "PAUSE":
                return self._pause(flight, step)
            if step.hook is not None:
                name = _function_name(step.hook.get("hookTargetArn"))
                with self.service_deployments.lock:
                    record.hooks.append(
                        HookRecord(
                            HookRecord.new_id("AWS_LAMBDA"),
                            "AWS_LAMBDA",
                            str(step.hook_stage),
                            "SUCCEEDED",
                            target_arn=str(step.hook.get("hookTargetArn") or "") or None,
                        )
                    )
                self._print(
                    f"{prefix} {step.hook_stage}: AWS_LAMBDA hook {name} is not invoked here: taken as SUCCEEDED"
                )
            else:
                shortened = (
                    f" (its {step.bake_minutes} min bake shortened to {self.step_delay:g} s for the simulation)"
                    if step.bake_minutes
                    else ""
                )
                self._print(f"{prefix} {step.text}{shortened}")
                if self.step_delay > 0:
                    self._interrupt.wait(self.step_delay)
            flight.cursor += 1
        return self._send(prefix, self._complete(flight))

    def _enter(self, flight: _Flight, step: _Step) -> None:
        record = flight.record
        with self.service_deployments.lock:
            record.lifecycle_stage = step.stage
            record.updated_at = self._clock()
            if step.green_running is not None:
                record.target.running = step.green_running
            if step.test_on_green is not None:
                record.target.test_weight = 100.0 if step.test_on_green else 0.0
                for source in record.sources:
                    source.test_weight = 0.0 if step.test_on_green else 100.0
            if step.production_tenths is not None:
                record.target.production_weight = step.production_tenths / 10
                for source in record.sources:
                    source.production_weight = (1000 - step.production_tenths) / 10
            if step.blue_running is not None:
                for source in record.sources:
                    source.running = step.blue_running

    def _pause(self, flight: _Flight, step: _Step) -> list[Event]:
        """A PAUSE hook: AWAITING_ACTION until its expiry, and HOOK_AWAITING_ACTION sent."""
        assert step.hook is not None
        timeout = step.hook.get("timeoutConfiguration") or {}
        minutes = _minutes(timeout.get("timeoutInMinutes", DEFAULT_HOOK_TIMEOUT_MINUTES), DEFAULT_HOOK_TIMEOUT_MINUTES)
        action = "CONTINUE" if timeout.get("action") == "CONTINUE" else DEFAULT_HOOK_TIMEOUT_ACTION
        now = self._clock()
        expires = now + (self.hook_timeout if self.hook_timeout is not None else timedelta(minutes=minutes))
        hook = HookRecord(
            HookRecord.new_id("PAUSE"),
            "PAUSE",
            str(step.hook_stage),
            "AWAITING_ACTION",
            expires_at=expires,
            timeout_action=action,
            timeout_minutes=minutes,
            started_at=now,
        )
        with self.service_deployments.lock:
            flight.record.hooks.append(hook)
            flight.record.updated_at = now
        shortened = (
            f", shortened to {self.hook_timeout.total_seconds():g} s for the simulation"
            if self.hook_timeout is not None
            else ""
        )
        self._print(
            f"{flight.prefix} PAUSED at {step.hook_stage}: hook {_short(hook.hook_id, 22)} AWAITING_ACTION until "
            f"{expires:%Y-%m-%d %H:%M:%S} UTC (timeoutInMinutes {minutes}{shortened}; then {action})"
        )
        event = self._hook_event(flight, hook, HOOK_AWAITING_ACTION)
        self._print(
            f"{flight.prefix} {HOOK_AWAITING_ACTION} sent: waiting for ContinueServiceDeployment "
            "CONTINUE or ROLLBACK (or StopServiceDeployment)"
        )
        return self._send(flight.prefix, [event])

    def _carry_out_requests(self) -> list[Event]:
        """Hooks whose time is up take their timeout action; then every request is carried out."""
        events: list[Event] = []
        for record, hook in self.service_deployments.expire_due(self._clock()):
            flight = self._flights.get(record.arn)
            if flight is None:
                continue
            why = record.request.why if record.request else "timed out"
            self._print(f"{flight.prefix} {why}: {HOOK_TIMED_OUT} sent")
            events += self._send(flight.prefix, [self._hook_event(flight, hook, HOOK_TIMED_OUT)])
        for flight in list(self._flights.values()):
            request = self.service_deployments.take_request(flight.record)
            if request is not None:
                events += self._carry_out(flight, request)
        return events

    def _carry_out(self, flight: _Flight, request: Request) -> list[Event]:
        record, prefix = flight.record, flight.prefix
        if request.action == "CONTINUE":
            step = flight.steps[flight.cursor] if flight.cursor < len(flight.steps) else None
            self._print(f"{prefix} {request.why}: the deployment goes on")
            if step is not None and step.hook is not None:
                flight.cursor += 1
            return self._walk(flight)
        if request.action == "ABORT":
            self._print(
                f"{prefix} {request.why}: the service stays as the deployment left it; no deployment event is "
                "simulated for an abort"
            )
            self._finish(flight, "STOPPED", _sentence(request.why))
            return []
        with self.service_deployments.lock:
            record.status = "ROLLBACK_IN_PROGRESS"
            record.rollback = {
                "reason": request.why,
                "startedAt": self._clock().timestamp(),
                "serviceRevisionArn": record.sources[0].arn if record.sources else None,
            }
            shifted = record.target.production_weight > 0
        if not flight.steps:
            back = "the service rolls back"
        elif shifted:
            back = "production traffic goes back to blue; green scales in"
        else:
            back = "production traffic stays on blue; green scales in"
        events = self._roll_back(
            flight.watched,
            flight.service,
            record.deployment_id,
            prefix,
            announce=f"{request.why}: {back}; rolling back to",
            cause=f"ECS deployment {record.deployment_id} {request.why}",
            failure=f"ECS deployment {record.deployment_id} {request.why}.",
            outcome="rolled back",
        )
        self._finish(flight, "ROLLBACK_SUCCESSFUL", _sentence(request.why))
        return self._send(prefix, events)

    def _hook_event(self, flight: _Flight, hook: HookRecord, name: str) -> Event:
        """The "ECS Hook State Change" event in the documented shape (ECS developer guide, "Amazon ECS
        service deployment hook state change events"): the service deployment in resources, and the
        hook, its stage and expiry, the cluster, service and service deployment in the detail."""
        record = flight.record
        _, _, _, region, account, _ = record.service_arn.split(":", 5)
        now = self._clock()
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": HOOK_STATE_CHANGE,
            "source": ECS_SOURCE,
            "account": account,
            "time": _event_time(now),
            "region": region,
            "resources": [record.arn],
            "detail": {
                "eventType": "INFO",
                "eventName": name,
                "hookId": hook.hook_id,
                "hookType": hook.target_type,
                **({"expiresAt": _event_time(hook.expires_at)} if hook.expires_at else {}),
                "lifecycleStage": hook.lifecycle_stage,
                "clusterArn": record.cluster_arn,
                "serviceArn": record.service_arn,
                "serviceDeploymentArn": record.arn,
                "updatedAt": _millis(now),
            },
        }


def _deployment_id() -> str:
    return f"ecs-svc/{uuid.uuid4().int % 10**19:019d}"


def _service_arn(service: Mapping[str, Any]) -> str:
    """The service's ARN in the long format (service/<cluster>/<service>) the events carry."""
    arn = str(service["serviceArn"])
    head, _, path = arn.partition(":service/")
    if "/" in path:
        return arn
    cluster = str(service.get("clusterArn", "")).rsplit("/", 1)[-1]
    return f"{head}:service/{cluster}/{path}"


# -- before-tasks -------------------------------------------------------------------------------

TASK_STATE_CHANGE: Final = "ECS Task State Change"
_EXIT_COMMAND: Final = re.compile(r"(?:^|[;&|]\s*|\s)exit\s+(?P<code>[0-9]{1,3})\s*$")


def simulated_exit_code(command: Iterable[str], failing: bool) -> int:
    """The exit code a simulated before-task ends with: N when its command ends with `exit N`
    (`[sh, -c, "exit 3"]`), else 1 for a stage told to fail (`--fail-before`), else 0."""
    parts = [str(part) for part in command]
    match = _EXIT_COMMAND.search(parts[-1]) if parts else None
    if match is not None:
        return int(match["code"]) % 256
    return 1 if failing else 0


class BeforeTaskSimulator:
    """Ends the before-tasks the deployer started (RunTask, answered by `deployer_local.ecs_tasks.Tasks`)
    and emits their "ECS Task State Change" STOPPED event, in the documented shape (ECS developer
    guide, "Amazon ECS task state change events"). A task's exit code: `simulated_exit_code`; a stage
    in `fail_stages` (its name, or "cluster/service"... the task's cluster) exits 1."""

    def __init__(
        self,
        tasks: Any,
        emit: Emit,
        printer: Printer,
        fail_stages: Iterable[str] = frozenset(),
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.tasks = tasks
        self._emit = emit
        self._print = printer
        self.fail_stages = frozenset(fail_stages)
        self._clock = clock

    def poll_once(self) -> list[Event]:
        emitted: list[Event] = []
        for task in self.tasks.running():
            stage = task.tag("ecs-deployer:stage") or "?"
            step = task.tag("ecs-deployer:before") or "before"
            failing = stage in self.fail_stages or task.cluster in self.fail_stages
            code = simulated_exit_code(task.command, failing)
            prefix = f"{LABEL} ECS task {task.arn.rsplit('/', 1)[-1][:12]} on {task.cluster}:"
            self._print(
                f"{prefix} before-task {step} of {_short_release(task.tag('ecs-deployer:release') or '?')} "
                f"(stage {stage}), {task.task_definition_arn.rsplit('/', 1)[-1]}, "
                f"container {', '.join(task.containers) or '?'}: command {' '.join(task.command)}"
            )
            ended = self.tasks.finish(task.arn, code)
            event = self.stopped_event(ended)
            self._print(f"{prefix} exited {code}: STOPPED sent")
            try:
                self._emit(event)
            except Exception as exc:
                self._print(f"{prefix} the STOPPED event was not delivered: {_error_text(exc)}")
            emitted.append(event)
        return emitted

    def stopped_event(self, task: Any) -> Event:
        """The task's "ECS Task State Change" STOPPED event (not sent)."""
        _, _, _, region, account, _ = task.arn.split(":", 5)
        stopped = task.stopped_at or self._clock()
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": TASK_STATE_CHANGE,
            "source": ECS_SOURCE,
            "account": account,
            "time": _event_time(stopped),
            "region": region,
            "resources": [task.arn],
            "detail": {
                "clusterArn": task.cluster_arn,
                "containers": [
                    {"name": name, "taskArn": task.arn, "lastStatus": "STOPPED", "exitCode": task.exit_codes.get(name)}
                    for name in task.containers
                ],
                "createdAt": _millis(task.created_at),
                **({"launchType": task.launch_type} if task.launch_type else {}),
                "desiredStatus": "STOPPED",
                "group": task.group,
                "lastStatus": "STOPPED",
                "overrides": task.overrides,
                "startedBy": task.started_by,
                "stopCode": task.stop_code,
                "stoppedAt": _millis(stopped),
                "stoppedReason": task.stopped_reason,
                "taskArn": task.arn,
                "taskDefinitionArn": task.task_definition_arn,
                "updatedAt": _millis(stopped),
            },
        }


# -- running them -------------------------------------------------------------------------------


class _Pollable(Protocol):
    def poll_once(self) -> list[Event]: ...


class Simulators:
    """Polls simulators on one background thread until `stop()`. A poll that fails is reported
    (once per distinct error) and the next poll tries again."""

    def __init__(self, *simulators: _Pollable, printer: Printer = print) -> None:
        self.simulators = simulators
        self._print = printer
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_error: dict[int, str] = {}

    def poll_once(self) -> list[Event]:
        emitted: list[Event] = []
        for index, simulator in enumerate(self.simulators):
            try:
                emitted.extend(simulator.poll_once())
            except Exception as exc:
                message = f"{LABEL} {type(simulator).__name__}: poll failed: {_error_text(exc)}"
                if self._last_error.get(index) != message:
                    self._print(message)
                self._last_error[index] = message
            else:
                self._last_error.pop(index, None)
        return emitted

    def run_in_background(self, interval: float = 0.2) -> threading.Thread:
        if self._thread is not None and self._thread.is_alive():
            return self._thread
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                self.poll_once()
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name="deployer-simulators", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        for simulator in self.simulators:
            interrupt = getattr(simulator, "interrupt", None)
            if callable(interrupt):
                interrupt()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> Simulators:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _source(reference: str) -> str:
    return "Secrets Manager" if reference.startswith("arn:") and ":secretsmanager:" in reference else "SSM"


def secret_check_for(session: Any) -> SecretCheck:
    """Looks a container secret's reference up as ECS would find it, with metadata calls only
    (DescribeSecret, DescribeParameters): the simulator never reads a secret's value."""
    from botocore.exceptions import BotoCoreError, ClientError

    def check(reference: str) -> str | None:
        try:
            if reference.startswith("arn:") and ":secretsmanager:" in reference:
                secret_id = ":".join(reference.split(":")[:7])  # without :json-key:version-stage:version-id
                session.client("secretsmanager").describe_secret(SecretId=secret_id)
                return None
            name = reference.split(":parameter", 1)[1] if reference.startswith("arn:") else reference
            names = list(dict.fromkeys([name, name.lstrip("/")]))
            found = session.client("ssm").describe_parameters(
                ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": names}]
            )
            if found.get("Parameters"):
                return None
            return f"unable to retrieve secrets from ssm: invalid parameters: {name}"
        except ClientError as exc:
            if reference.startswith("arn:") and ":secretsmanager:" in reference:
                return (
                    "unable to retrieve secret from asm: failed to fetch secret "
                    f"{':'.join(reference.split(':')[:7])} from secrets manager: {_error_text(exc)}"
                )
            return f"unable to retrieve secrets from ssm: {_error_text(exc)}"
        except BotoCoreError as exc:
            return f"unable to retrieve secrets: {exc}"

    return check


def for_local_stack(
    session: Any,
    store: ReleaseStore,
    config: PipelinesConfig,
    emit: Emit,
    printer: Printer = print,
    *,
    fail_projects: Iterable[str] = frozenset(),
    fail_stages: Iterable[str] = frozenset(),
    step_delay: float = 0.0,
    service_deployments: ServiceDeployments | None = None,
    hook_timeout: timedelta | None = None,
    tasks: Any = None,
    fail_before: Iterable[str] = frozenset(),
) -> Simulators:
    """Both simulators for the local stack: builds of every project, rollouts of every stage's
    service in `config`, each confirmed against the deployer's own records before it is sent.
    `service_deployments`: the records the stack's ECS front answers from (`deployer_local.ecs_front`)."""
    builds = CodeBuildSimulator(session, emit, printer, fail_projects, release_lookup=release_lookup_from_store(store))
    rollouts = EcsRolloutSimulator(
        session.client("ecs"),
        deployment_lookup_from_store(store),
        emit,
        printer,
        fail_stages,
        step_delay,
        service_deployments=service_deployments,
        hook_timeout=hook_timeout,
        secret_check=secret_check_for(session),
    )
    rollouts.watch_pipelines(config)
    if tasks is None:
        return Simulators(builds, rollouts, printer=printer)
    return Simulators(builds, rollouts, BeforeTaskSimulator(tasks, emit, printer, fail_before), printer=printer)
