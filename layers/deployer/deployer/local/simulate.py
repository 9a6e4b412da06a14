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
  started and it has not handled yet, draws the rollout ECS would do (`deployer.rolling.plan`)
  and emits "ECS Deployment State Change" COMPLETED (or, for the stages it is told to fail, the
  circuit breaker's rollback IN_PROGRESS and then FAILED).

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
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol

from deployer import render, rolling
from deployer.events import (
    CODEBUILD_SOURCE,
    CODEBUILD_STATE_CHANGE,
    ECS_DEPLOYMENT_STATE_CHANGE,
    ECS_SOURCE,
    DeploymentEvent,
)
from deployer.flow import ENV_COMMIT, ENV_PIPELINE, ENV_RELEASE_ID, EXPORTED_IMAGE

if TYPE_CHECKING:
    from deployer.pipelines import PipelinesConfig
    from deployer.releases import ReleaseStore

__all__ = [
    "LABEL",
    "CodeBuildSimulator",
    "EcsRolloutSimulator",
    "Simulators",
    "codebuild_time",
    "deployment_lookup_from_store",
    "for_local_stack",
    "release_lookup_from_store",
]

LABEL: Final = "SIMULATED"

Event = dict[str, Any]
Emit = Callable[[Event], None]
Printer = Callable[[str], None]
ReleaseLookup = Callable[[str], tuple[str, str, str] | None]
"""build ARN -> (release id, commit, pipeline), or None when no release names that build (yet)."""
DeploymentLookup = Callable[[str], tuple[str, str] | None]
"""ECS deployment id -> (release id, stage) of a deployment the deployer started, else None."""

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
    from deployer.releases import StageState

    def lookup(deployment_id: str) -> tuple[str, str] | None:
        found = store.deployment(deployment_id)
        release = store.get(found[0]) if found else None
        record = release.stages.get(found[1]) if release and found else None
        if found is None or record is None or record.deployment_id != deployment_id:
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
        from deployer.provision import push_demo_image

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

    @property
    def name(self) -> str:
        return f"{self.cluster}/{self.service}"


class EcsRolloutSimulator:
    """Turns deployments the deployer starts on watched services into ECS's deployment events.

    moto keeps a service's PRIMARY deployment id across UpdateService calls, so a deployment is
    "new" per (deployment id, release) that `deployment_lookup` names. For a stage in
    `fail_stages` ("cluster/service" or the stage's name) ECS's circuit breaker is simulated: the
    service goes back to the task definition it ran before (when the simulator saw it), then the
    rollback's IN_PROGRESS event and the deployment's FAILED event are emitted.
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
    ) -> None:
        self._ecs = ecs_client
        self._lookup = deployment_lookup
        self._emit = emit
        self._print = printer
        self.fail_stages = frozenset(fail_stages)
        self.step_delay = step_delay
        self._clock = clock
        self._watched: dict[str, _Watched] = {}
        self._handled: set[tuple[str, str, str]] = set()
        self._interrupt = threading.Event()

    def watch(self, cluster: str, service: str) -> None:
        watched = _Watched(cluster, service)
        self._watched.setdefault(watched.name, watched)

    def watch_pipelines(self, config: PipelinesConfig) -> None:
        """Watch every stage's service of a published configuration."""
        for pipeline in config.pipelines:
            for stage in pipeline.stages:
                self.watch(stage.cluster, stage.service)

    @property
    def watched(self) -> list[str]:
        return list(self._watched)

    def interrupt(self) -> None:
        """Cut short any step delay (the background thread is stopping)."""
        self._interrupt.set()

    def poll_once(self) -> list[Event]:
        """Simulate the rollout of every new deployment on the watched services; return the
        events emitted."""
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
        daemon = service.get("schedulingStrategy") == "DAEMON"
        strategy = "DAEMON" if daemon else "REPLICA"
        config = service.get("deploymentConfiguration") or {}
        minimum = int(config.get("minimumHealthyPercent", rolling.DEFAULT_MINIMUM_HEALTHY_PERCENT[strategy]))
        maximum = int(config.get("maximumPercent", rolling.DEFAULT_MAXIMUM_PERCENT[strategy]))
        desired = int(service.get("desiredCount", 0))
        failing = watched.name in self.fail_stages or stage in self.fail_stages
        revision = str(service.get("taskDefinition", "?")).rsplit("/", 1)[-1]
        self._print(
            f"{prefix} {_short_release(release_id)} (stage {stage}), deployment {deployment_id}, {revision}: "
            f"{render.tasks_text(desired)}, minimumHealthyPercent {minimum}, maximumPercent {maximum}"
        )
        try:
            rollout = rolling.plan(desired, minimum, maximum)
        except ValueError as exc:  # StuckRollout too: ECS would sit there, sending no event
            self._print(f"{prefix} ECS cannot roll this out ({exc}); no event is sent, as ECS sends none")
            return []
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
        else:
            reason = f"ECS deployment {deployment_id} completed."
            events = [self._event(service, deployment_id, DeploymentEvent.COMPLETED, reason)]
            watched.stable_task_definition = str(service.get("taskDefinition") or "") or None
            watched.stable_deployment_id = deployment_id
            self._print(f"{prefix} completed: {DeploymentEvent.COMPLETED.value} sent")
        for event in events:
            try:
                self._emit(event)
            except Exception as exc:
                self._print(f"{prefix} the {event['detail']['eventName']} event was not delivered: {_error_text(exc)}")
        return events

    def _fail(self, watched: _Watched, service: Mapping[str, Any], deployment_id: str, prefix: str) -> list[Event]:
        previous = watched.stable_deployment_id
        if not previous or previous == deployment_id:  # moto keeps one id per service
            previous = _deployment_id()
        current = str(service.get("taskDefinition") or "")
        back_to = watched.stable_task_definition
        self._print(f"{prefix} new tasks failed to start: the circuit breaker rolls back to {previous}")
        if back_to and back_to != current:
            with contextlib.suppress(Exception):
                self._ecs.update_service(cluster=watched.cluster, service=watched.service, taskDefinition=back_to)
                self._print(f"{prefix} the service runs {back_to.rsplit('/', 1)[-1]} again")
        rolling_back = self._event(
            service,
            _deployment_id(),
            DeploymentEvent.IN_PROGRESS,
            f"ECS deployment circuit breaker: rolling back to deploymentId {previous}.",
        )
        failed = self._event(
            service,
            deployment_id,
            DeploymentEvent.FAILED,
            "ECS deployment circuit breaker: tasks failed to start.",
        )
        sent = f"{DeploymentEvent.IN_PROGRESS.value} (rolling back) and {DeploymentEvent.FAILED.value}"
        self._print(f"{prefix} failed: {sent} sent")
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
) -> Simulators:
    """Both simulators for the local stack: builds of every project, rollouts of every stage's
    service in `config`, each confirmed against the deployer's own records before it is sent."""
    builds = CodeBuildSimulator(session, emit, printer, fail_projects, release_lookup=release_lookup_from_store(store))
    rollouts = EcsRolloutSimulator(
        session.client("ecs"), deployment_lookup_from_store(store), emit, printer, fail_stages, step_delay
    )
    rollouts.watch_pipelines(config)
    return Simulators(builds, rollouts, printer=printer)
