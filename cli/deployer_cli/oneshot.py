"""Deploy images to one ECS service now, outside any pipeline: what `deployer deploy` and
`deployer diff` run.

It is the pipeline's stage deployment without the release bookkeeping, in two halves:

- `plan_deploy` reads (DescribeServices, DescribeTaskDefinition with tags, and
  DescribeScalableTargets when an autoscaling client is given) and decides: the images that
  change, the RegisterTaskDefinition request and its JSON diff against the running revision, the
  deployment configuration before and after, `deployer.rollout`'s findings and the rollout.
- `deploy` writes what the plan decided: RegisterTaskDefinition (only when an image or a setting,
  `--env`/`--secret`/`--unset`, changes),
  then UpdateService with the task definition and the deploymentConfiguration, never
  desiredCount (autoscaling owns it; REFERENCE.md "ECS rolling update"). An invalid plan makes
  no call at all; a plan that changes nothing makes none either.

`wait_for_deployment` optionally polls DescribeServices (with a backoff bounded by the timeout)
until the deployment's rolloutState is COMPLETED or FAILED, reporting each change of its task
counts, rollout state and lifecycle stage (`Progress`) as it goes.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from deployer import aws
from deployer.errors import ConfigError, DeployerError, DeploymentError
from deployer.rollout.model import DEFAULT_MAXIMUM_PERCENT, DEFAULT_MINIMUM_HEALTHY_PERCENT, Finding, ServiceFacts
from deployer.rollout.plan import Plan
from deployer.rollout.plan import plan as plan_rollout
from deployer.rollout.validate import Validation
from deployer.rollout.validate import validate as validate_rollout
from deployer.settings import DeploySettings, SettingChange
from deployer.settings import merge as merge_settings
from deployer.stages import ServiceView, autoscaling_range, describe_service
from deployer.taskdef.clone import (
    READ_ONLY_KEYS,
    changed_images,
    changed_settings,
    clone_for_images,
    clone_problems,
    settable_tags,
)
from deployer.taskdef.register import describe_task_definition, register_clone_of

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import DescribeServicesResponseTypeDef

__all__ = [
    "DEFAULT_POLL_SECONDS",
    "DEFAULT_TIMEOUT_SECONDS",
    "FIELD_ORDER",
    "FINAL_ROLLOUT_STATES",
    "ConfigChange",
    "DeployPlan",
    "DeployRefused",
    "DeployResult",
    "DeploymentCounts",
    "Progress",
    "RolloutOutcome",
    "current_deployment_configuration",
    "deploy",
    "plan_deploy",
    "registrable",
    "wait_for_deployment",
]

DEFAULT_POLL_SECONDS = 5.0
DEFAULT_TIMEOUT_SECONDS = 900.0
FINAL_ROLLOUT_STATES = frozenset({"COMPLETED", "FAILED"})

Outcome = Literal["deployed", "configured", "unchanged"]

FIELD_ORDER = (
    "minimumHealthyPercent",
    "maximumPercent",
    "deploymentCircuitBreaker",
    "alarms",
    "strategy",
    "bakeTimeInMinutes",
    "lifecycleHooks",
    "linearConfiguration",
    "canaryConfiguration",
    "earlySuccessCriteria",
)
"""deploymentConfiguration's fields in the ECS API's order, for showing before -> after."""


class DeployRefused(ConfigError):
    """`deploy` was given a plan with errors; nothing was called."""


@dataclass(frozen=True)
class ConfigChange:
    """One deploymentConfiguration field, before and after the deploy.

    `before` is None when the service does not set the field, `after` when the deploy does not
    send it; `default` is what ECS uses then (None when the field has no default)."""

    field: str
    before: Any
    after: Any
    default: Any

    @property
    def changed(self) -> bool:
        before = self.default if self.before is None else self.before
        after = self.default if self.after is None else self.after
        return bool(before != after)

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field,
            "before": self.before,
            "after": self.after,
            "default": self.default,
            "changed": self.changed,
        }


@dataclass(frozen=True)
class DeployPlan:
    """Everything `deploy` needs, decided from what ECS said, and nothing written yet."""

    cluster: str
    service: str
    view: ServiceView
    facts: ServiceFacts  # with the autoscaling range when the service scales
    images: dict[str, str]  # container -> requested image
    described: dict[str, Any]  # DescribeTaskDefinition's answer (with `tags` beside the definition)
    image_changes: dict[str, tuple[str, str]]  # container -> (running image, requested image)
    registration: dict[str, Any]  # the RegisterTaskDefinition request (sent only when images change)
    current_registrable: dict[str, Any]  # the running revision as a registration request
    task_definition_diff: tuple[str, ...]  # unified diff, current -> registration (JSON)
    config_before: dict[str, Any]  # the service's deploymentConfiguration, without noise
    config_after: dict[str, Any]  # what UpdateService would send (validated, defaults filled)
    config_changes: tuple[ConfigChange, ...]
    validation: Validation
    extra_errors: tuple[Finding, ...]  # the deployer's own refusals beyond rolling's
    rollout: Plan | None  # ROLLING and valid only
    settings: DeploySettings = dataclasses.field(default_factory=DeploySettings)  # --env, --secret, --unset
    setting_changes: tuple[SettingChange, ...] = ()  # what they change in the running revision

    @property
    def errors(self) -> tuple[Finding, ...]:
        return self.validation.errors + self.extra_errors

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def images_changed(self) -> bool:
        return bool(self.image_changes)

    @property
    def config_changed(self) -> bool:
        return any(change.changed for change in self.config_changes)

    @property
    def settings_changed(self) -> bool:
        return bool(self.setting_changes)

    @property
    def registers(self) -> bool:
        """A new revision is registered: an image or a setting changes."""
        return self.images_changed or self.settings_changed

    @property
    def nothing_to_do(self) -> bool:
        return not self.registers and not self.config_changed

    @property
    def task_definition_arn(self) -> str:
        return self.view.task_definition

    @property
    def strategy(self) -> str:
        return str(self.config_after.get("strategy") or self.config_before.get("strategy") or "ROLLING")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for `--json`."""
        rollout = self.rollout
        return {
            "cluster": self.cluster,
            "service": self.service,
            "valid": self.valid,
            "changed": not self.nothing_to_do,
            "desired_count": self.facts.desired_count,
            "desired_range": list(self.facts.desired_range) if self.facts.desired_range else None,
            "task_definition": self.task_definition_arn,
            "images": {
                name: {
                    "before": self.running_image(name),
                    "after": image,
                    "changed": name in self.image_changes,
                }
                for name, image in self.images.items()
            },
            "settings": {
                "requested": self.settings.to_dict(),
                "changes": [change.to_dict() for change in self.setting_changes],
            },
            "task_definition_diff": list(self.task_definition_diff),
            "deployment_configuration": {
                "before": self.config_before,
                "after": self.config_after,
                "changes": [change.to_dict() for change in self.config_changes if change.changed],
            },
            "errors": [finding.to_dict() for finding in self.errors],
            "warnings": [finding.to_dict() for finding in self.validation.warnings],
            "notes": [finding.to_dict() for finding in self.validation.notes],
            "rollout": None
            if rollout is None
            else {
                "steps": [{"old": step.old, "new": step.new} for step in rollout.steps],
                "waves": rollout.waves,
                "peak_tasks": rollout.peak_tasks,
                "min_running_tasks": rollout.min_running_tasks,
                "outage": rollout.outage,
            },
        }

    def running_image(self, container: str) -> str:
        for definition in self.current_registrable.get("containerDefinitions") or ():
            if definition.get("name") == container:
                return str(definition.get("image", ""))
        return ""


@dataclass(frozen=True)
class RolloutOutcome:
    """Where a deployment stood when `wait_for_deployment` stopped looking."""

    state: str  # COMPLETED | FAILED | IN_PROGRESS (timed out) | GONE (no longer listed)
    reason: str
    waited_seconds: float

    @property
    def succeeded(self) -> bool:
        return self.state == "COMPLETED"


@dataclass(frozen=True)
class DeployResult:
    outcome: Outcome
    task_definition_arn: str  # the new revision, or the running one when none was registered
    previous_task_definition_arn: str
    deployment_id: str | None  # the PRIMARY deployment after UpdateService (None: no call made)
    rollout: RolloutOutcome | None = None  # only with wait=True

    @property
    def registered(self) -> bool:
        return self.outcome == "deployed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "registered": self.registered,
            "task_definition": self.task_definition_arn,
            "previous_task_definition": self.previous_task_definition_arn,
            "deployment_id": self.deployment_id,
            "rollout": None if self.rollout is None else dataclasses.asdict(self.rollout),
        }


# --- planning ------------------------------------------------------------------------------------


def plan_deploy(
    ecs: ECSClient,
    cluster: str,
    service: str,
    images: Mapping[str, str],
    requested: Mapping[str, Any] | None = None,
    *,
    autoscaling: ApplicationAutoScalingClient | None = None,
    settings: DeploySettings | None = None,
) -> DeployPlan:
    """Read the service and its task definition and decide what a deploy would do; no write.

    `settings` (environment variables and secret references, `deployer.settings`) are set on the
    new revision as a pipeline stage sets them. Raises DeploymentError (service missing or
    inactive, a container not in the task definition: with settings, every such problem at once),
    BadInput (an invalid image URI) or TransientError, like the pipeline's stage deployment.
    """
    chosen = settings or DeploySettings()
    recorder = _KeepDescribeServices(ecs)
    view = describe_service(recorder, cluster, service)  # type: ignore[arg-type]
    svc = recorder.service(service)
    facts = view.facts
    scaling = autoscaling_range(autoscaling, cluster, service)
    if scaling is not None:
        facts = facts.replace(desired_range=scaling)

    described = describe_task_definition(ecs, view.task_definition)
    if chosen:
        problems = clone_problems(described, images, chosen)
        if problems:
            raise DeploymentError("; ".join(problems))
    image_changes = changed_images(described, images)  # ContainerNotFound names the containers
    setting_changes = tuple(changed_settings(described, chosen)) if chosen else ()
    registration = clone_for_images(described, images, chosen)
    current = registrable(described)
    beyond_images = _differences_beyond_images(current, registration, chosen)

    before = current_deployment_configuration(svc)
    merged = {**before, **(requested or {})}
    validation = validate_rollout(merged, facts)
    after = validation.deployment_configuration if validation.valid else dict(merged)

    extra: list[Finding] = []
    if facts.deployment_controller != "ECS":
        extra.append(
            Finding(
                "error",
                "deploymentController",
                facts.deployment_controller,
                "ECS: UpdateService cannot change the task definition of a service with the "
                f"{facts.deployment_controller} deployment controller",
                "deploy it through its controller (CodeDeploy or your external controller)",
            )
        )
    if beyond_images:
        extra.append(
            Finding(
                "error",
                "taskDefinition",
                sorted(beyond_images),
                "deployer policy: the new revision may differ from the running one only in its images and the "
                "settings asked for",
                "report this as a bug of the deployer; nothing was registered",
            )
        )

    strategy = after.get("strategy", "ROLLING")
    rollout = None
    if validation.valid and not extra and strategy == "ROLLING":
        rollout = plan_rollout(facts.desired_count, after["minimumHealthyPercent"], after["maximumPercent"])

    return DeployPlan(
        cluster=cluster,
        service=service,
        view=view,
        facts=facts,
        images=dict(images),
        described=described,
        image_changes=image_changes,
        registration=registration,
        current_registrable=current,
        task_definition_diff=tuple(_json_diff(current, registration, described)),
        config_before=before,
        config_after=after,
        config_changes=_config_changes(before, after, facts),
        validation=validation,
        extra_errors=tuple(extra),
        rollout=rollout,
        settings=chosen,
        setting_changes=setting_changes,
    )


class _KeepDescribeServices:
    """Passes DescribeServices through to ECS and keeps the answer, so `stages.describe_service`
    reads the facts and this module the deploymentConfiguration, from one call."""

    def __init__(self, ecs: ECSClient) -> None:
        self._ecs = ecs
        self._response: DescribeServicesResponseTypeDef | None = None

    def describe_services(self, **kwargs: Any) -> DescribeServicesResponseTypeDef:
        self._response = self._ecs.describe_services(**kwargs)
        return self._response

    def service(self, name: str) -> Mapping[str, Any]:
        assert self._response is not None, "describe_services was not called"
        services = self._response.get("services", [])
        return next((s for s in services if name in (s.get("serviceName"), s.get("serviceArn"))), services[0])


def registrable(described: Mapping[str, Any]) -> dict[str, Any]:
    """The running revision as a RegisterTaskDefinition request: its definition without
    READ_ONLY_KEYS, and the tags a new revision may carry."""
    definition = described.get("taskDefinition") or {}
    request = {key: copy.deepcopy(value) for key, value in definition.items() if key not in READ_ONLY_KEYS}
    tags = settable_tags(described.get("tags"))
    if tags:
        request["tags"] = tags
    return request


def current_deployment_configuration(svc: Mapping[str, Any]) -> dict[str, Any]:
    """The service's deploymentConfiguration as DescribeServices reports it, minus what only
    restates "not configured": disabled alarms without names, an empty list of lifecycle hooks."""
    config = copy.deepcopy(dict(svc.get("deploymentConfiguration") or {}))
    alarms = config.get("alarms")
    if isinstance(alarms, Mapping) and not alarms.get("alarmNames") and not alarms.get("enable"):
        config.pop("alarms")
    if config.get("lifecycleHooks") == []:
        config.pop("lifecycleHooks")
    return {key: value for key, value in config.items() if value is not None}


def _defaults(facts: ServiceFacts) -> dict[str, Any]:
    """What ECS uses for a field the configuration leaves out (botocore ECS model)."""
    scheduling = facts.scheduling_strategy
    return {
        "minimumHealthyPercent": DEFAULT_MINIMUM_HEALTHY_PERCENT[scheduling],
        "maximumPercent": DEFAULT_MAXIMUM_PERCENT[scheduling],
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "strategy": "ROLLING",
    }


def _config_changes(
    before: Mapping[str, Any], after: Mapping[str, Any], facts: ServiceFacts
) -> tuple[ConfigChange, ...]:
    defaults = _defaults(facts)
    known = {key: index for index, key in enumerate(FIELD_ORDER)}
    fields = sorted(dict.fromkeys([*after, *before]), key=lambda key: known.get(key, len(known)))
    return tuple(ConfigChange(key, before.get(key), after.get(key), defaults.get(key)) for key in fields)


def _differences_beyond_images(
    current: Mapping[str, Any], registration: Mapping[str, Any], settings: DeploySettings | None = None
) -> set[str]:
    """Top-level keys (or containers) where the registration request differs from the running
    revision other than by an image and the settings asked for: must be empty (REFERENCE.md
    "Cloning a task definition")."""
    request = copy.deepcopy(dict(registration))
    if settings:
        with_settings = copy.deepcopy(dict(current))
        merge_settings(with_settings, settings)
        current = with_settings
    running = {c.get("name"): c.get("image") for c in current.get("containerDefinitions") or ()}
    for container in request.get("containerDefinitions") or ():
        container["image"] = running.get(container.get("name"), container.get("image"))
    keys = set(current) | set(request)
    return {key for key in keys if current.get(key) != request.get(key)}


def _json_diff(current: Mapping[str, Any], registration: Mapping[str, Any], described: Mapping[str, Any]) -> list[str]:
    definition = described.get("taskDefinition") or {}
    family = definition.get("family", "task definition")
    before = json.dumps(current, indent=2, sort_keys=True, default=str).splitlines()
    after = json.dumps(registration, indent=2, sort_keys=True, default=str).splitlines()
    return list(
        difflib.unified_diff(
            before,
            after,
            fromfile=f"{family}:{definition.get('revision', '?')} (running, as a registration request)",
            tofile=f"{family}:new (the RegisterTaskDefinition request)",
            lineterm="",
        )
    )


# --- deploying -----------------------------------------------------------------------------------


def deploy(
    ecs: ECSClient,
    plan: DeployPlan,
    *,
    wait: bool = False,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> DeployResult:
    """Carry out `plan`: RegisterTaskDefinition when an image or a setting changes, then UpdateService with
    the task definition and the deploymentConfiguration, never desiredCount.

    An invalid plan raises DeployRefused before any call; a plan that changes nothing returns
    "unchanged" without a call. When only the deployment configuration changes, no revision is registered
    and UpdateService gets no taskDefinition. With `wait`, DescribeServices is polled every
    `poll_seconds` until the deployment completes or fails, or `timeout` seconds pass.
    """
    if not plan.valid:
        raise DeployRefused(
            f"refused: {plan.cluster}/{plan.service} cannot be deployed as asked",
            [finding.message for finding in plan.errors],
        )
    previous = plan.task_definition_arn
    if plan.nothing_to_do:
        return DeployResult("unchanged", previous, previous, plan.view.primary_deployment_id)

    request: dict[str, Any] = {"cluster": plan.cluster, "service": plan.service}
    new_arn = previous
    if plan.registers:
        new_arn = register_clone_of(ecs, plan.described, plan.images, plan.settings).arn
        request["taskDefinition"] = new_arn
    request["deploymentConfiguration"] = plan.config_after
    try:
        response = aws.call("UpdateService", ecs.update_service, **request)
    except DeployerError as exc:
        if new_arn == previous:
            raise
        raise type(exc)(
            f"{exc} (registered {_short(new_arn)}, but {plan.cluster}/{plan.service} still runs {_short(previous)})"
        ) from exc
    deployment_id = next(
        (d.get("id", "") for d in response["service"].get("deployments", []) if d.get("status") == "PRIMARY"), ""
    )
    if not deployment_id:
        raise DeploymentError(f"UpdateService on {plan.cluster}/{plan.service} returned no PRIMARY deployment")
    result = DeployResult("deployed" if plan.registers else "configured", new_arn, previous, deployment_id)
    if not wait:
        return result
    outcome = wait_for_deployment(
        ecs,
        plan.cluster,
        plan.service,
        deployment_id,
        timeout=timeout,
        poll_seconds=poll_seconds,
        sleep=sleep,
        clock=clock,
    )
    return dataclasses.replace(result, rollout=outcome)


@dataclass(frozen=True)
class DeploymentCounts:
    """One entry of DescribeServices' `deployments`: its tasks and its rollout state."""

    deployment_id: str
    status: str  # PRIMARY | ACTIVE | INACTIVE
    task_definition: str
    running: int
    pending: int
    desired: int
    failed: int
    rollout_state: str | None

    @classmethod
    def of(cls, raw: Mapping[str, Any]) -> DeploymentCounts:
        return cls(
            deployment_id=str(raw.get("id", "")),
            status=str(raw.get("status", "")),
            task_definition=str(raw.get("taskDefinition", "")),
            running=int(raw.get("runningCount") or 0),
            pending=int(raw.get("pendingCount") or 0),
            desired=int(raw.get("desiredCount") or 0),
            failed=int(raw.get("failedTasks") or 0),
            rollout_state=raw.get("rolloutState"),
        )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Progress:
    """What the waited-for deployment looked like at one DescribeServices: its tasks, the older
    deployments' tasks, and (traffic-shifting strategies) the service deployment's lifecycle stage."""

    at: datetime
    elapsed: float
    deployment: DeploymentCounts
    others: tuple[DeploymentCounts, ...]
    lifecycle_stage: str | None = None

    def same_as(self, other: Progress | None) -> bool:
        return other is not None and (self.deployment, self.others, self.lifecycle_stage) == (
            other.deployment,
            other.others,
            other.lifecycle_stage,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "elapsed_seconds": round(self.elapsed, 1),
            "deployment": self.deployment.to_dict(),
            "others": [other.to_dict() for other in self.others],
            "lifecycle_stage": self.lifecycle_stage,
        }


def _wall() -> datetime:
    return datetime.now(UTC)


def wait_for_deployment(
    ecs: ECSClient,
    cluster: str,
    service: str,
    deployment_id: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    max_poll_seconds: float | None = None,
    lifecycle: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], datetime] = _wall,
) -> RolloutOutcome:
    """Poll DescribeServices until the deployment's rolloutState is COMPLETED or FAILED.

    Stops with IN_PROGRESS once `timeout` seconds have passed (the last sleep is cut to end at
    the timeout), and with GONE when the deployment is no longer among the service's deployments
    (a newer deployment replaced it). A service whose deployments report no rolloutState counts as
    COMPLETED when this deployment is the only one and runs its desired count.

    Backoff: with `max_poll_seconds`, the pause grows 1.5 times after each poll that saw no change,
    up to that bound, and falls back to `poll_seconds` when something changed. `on_progress` is
    called with the first poll and every poll that saw a change (task counts, rollout state, older
    deployments, lifecycle stage). With `lifecycle`, each poll also reads the service's current
    service deployment (DescribeServiceDeployments) for its lifecycle stage; a refusal of that
    call (an older endpoint, a missing permission) stops those reads, not the wait.
    """
    start = clock()
    interval = poll_seconds
    ceiling = max(poll_seconds, max_poll_seconds or poll_seconds)
    previous: Progress | None = None
    while True:
        response = aws.call("DescribeServices", ecs.describe_services, cluster=cluster, services=[service])
        services = response.get("services", [])
        svc: Mapping[str, Any] = services[0] if services else {}
        deployments = svc.get("deployments", [])
        current = next((d for d in deployments if d.get("id") == deployment_id), None)
        elapsed = clock() - start
        if current is None:
            return RolloutOutcome("GONE", f"{deployment_id} is no longer a deployment of {cluster}/{service}", elapsed)
        stage = None
        if lifecycle and svc.get("currentServiceDeployment"):
            stage, lifecycle = _lifecycle_stage(ecs, str(svc["currentServiceDeployment"]))
        progress = Progress(
            at=wall(),
            elapsed=elapsed,
            deployment=DeploymentCounts.of(current),
            others=tuple(DeploymentCounts.of(d) for d in deployments if d.get("id") != deployment_id),
            lifecycle_stage=stage,
        )
        changed = not progress.same_as(previous)
        if changed and on_progress is not None:
            on_progress(progress)
        previous = progress
        state = current.get("rolloutState")
        reason = current.get("rolloutStateReason", "")
        if state is None and len(deployments) == 1 and current.get("runningCount") == current.get("desiredCount"):
            state, reason = "COMPLETED", "the only deployment runs its desired count"
        if state in FINAL_ROLLOUT_STATES:
            return RolloutOutcome(str(state), reason, elapsed)
        if elapsed >= timeout:
            state = state or "IN_PROGRESS"
            waited = f"still {state} after {elapsed:.0f} s (timeout {timeout:.0f} s); ECS carries on"
            return RolloutOutcome(str(state), f"{waited}: {reason}" if reason else waited, elapsed)
        interval = poll_seconds if changed else min(ceiling, interval * 1.5)
        sleep(min(interval, timeout - elapsed))


def _lifecycle_stage(ecs: ECSClient, arn: str) -> tuple[str | None, bool]:
    """(the service deployment's lifecycle stage, whether to keep asking)."""
    from deployer import ecs_deployments
    from deployer.errors import TransientError

    try:
        views = ecs_deployments.describe(ecs, [arn])
    except TransientError:
        return None, True  # throttled: ask again next time
    except DeployerError:
        return None, False
    return (views[0].lifecycle_stage if views else None), True


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
