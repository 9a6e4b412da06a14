"""The traffic steps of the BLUE_GREEN, LINEAR and CANARY strategies (`traffic_plan`): when ECS
starts the green revision, moves test and production traffic, runs lifecycle hooks, bakes and
cleans up; and the warnings a service's facts add (`traffic_warnings`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deployer.rollout.model import (
    HOOK_STAGES,
    HOOK_TARGET_TYPES,
    HOOK_TIMEOUT_ACTIONS,
    MAX_BAKE_MINUTES,
    MAX_HOOK_TIMEOUT_MINUTES,
    MAX_TASKS_PER_SERVICE,
    PAUSE_FORBIDDEN_STAGES,
    TRAFFIC_SHIFTING,
    Finding,
    ServiceFacts,
    _policy,
    _Record,
    _tasks,
    _tenths,
)

# `deployer plan` imports this module, and starts in about twice the time of a bare `python -c
# pass` (BENCHMARKS.md): nothing here may import `typing` or `dataclasses` at run time (the latter
# imports `inspect`, then generates and compiles every method of every class as it is defined), and
# `json`, `difflib` and `decimal` are imported where they are used. Mypy reads any name
# TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final, Literal

    TrafficStepKind = Literal["scale_up", "test_traffic", "hook", "approval", "shift", "bake", "clean_up"]

__all__ = [
    "DEFAULT_CANARY_BAKE_MINUTES",
    "DEFAULT_CANARY_PERCENT",
    "DEFAULT_STEP_BAKE_MINUTES",
    "DEFAULT_STEP_PERCENT",
    "PlannedHook",
    "TrafficPlan",
    "TrafficStep",
    "traffic_plan",
    "traffic_warnings",
]


# --- traffic-shifting strategies: BLUE_GREEN, LINEAR, CANARY -------------------------------------
#
# What ECS does, from the Amazon ECS Developer Guide and the botocore ECS model:
# - "Amazon ECS blue/green deployments"
#   (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html):
#   "all traffic is shifted from the blue service to the green service at once"; "the blue revision
#   is kept running until the bake time expires", so a rollback during the bake is a traffic move.
# - "Amazon ECS linear deployments"
#   (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-linear.html):
#   "traffic is shifted in equal percentage increments" (10.0% -> 10, 20, 30 ... until 100%), and
#   "last step bake time is skipped once traffic is shifted 100.0%". LinearConfiguration (botocore):
#   stepPercent default 10.0, stepBakeTimeInMinutes default 6, "not applied after reaching 100
#   percent traffic". CloudFormation's LinearConfiguration page counts the step bakes the same way:
#   (100 / stepPercent) - 1 when it divides 100, else floor(100 / stepPercent), so the last shift
#   takes the remainder.
# - "Amazon ECS canary deployments"
#   (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/canary-deployment.html): "traffic
#   is shifted in two phases: first to the canary percentage, then to complete the deployment".
#   CanaryConfiguration (botocore): canaryPercent default 5.0, canaryBakeTimeInMinutes default 10.
# - Lifecycle stages (the linear page's table and DeploymentLifecycleHook.lifecycleStages): SCALE_UP
#   is "the time when the green service revision scales up to 100%", while blue keeps serving; BAKE_TIME
#   is "the duration when both blue and green service revisions are running simultaneously"; CLEAN_UP
#   scales blue to 0. "Hooks configured for PRODUCTION_TRAFFIC_SHIFT or PRE_PRODUCTION_TRAFFIC_SHIFT
#   are invoked at every production traffic shift step". All three pages: running both revisions "may
#   double your resource usage during deployments".
# - bakeTimeInMinutes: the botocore model only says "You must provide this parameter when you use the
#   BLUE_GREEN deployment strategy" and states no default for LINEAR or CANARY. CloudFormation's
#   AWS::ECS::Service DeploymentConfiguration page says an unspecified value is set to 180 minutes for
#   rolling, EXTERNAL and CODE_DEPLOY, and "for all other cases ... 36 hours (2160 minutes)", above the
#   API's own 1440 maximum. The plan therefore counts no bake it was not given and says so.
# - PAUSE hooks wait for ContinueServiceDeployment (CONTINUE or ROLLBACK);
#   DeploymentLifecycleHookTimeoutConfiguration: timeoutInMinutes "Default: 1440 (24 hours)", action
#   "Default: ROLLBACK".

DEFAULT_STEP_PERCENT: Final = 10.0
DEFAULT_STEP_BAKE_MINUTES: Final = 6
DEFAULT_CANARY_PERCENT: Final = 5.0
DEFAULT_CANARY_BAKE_MINUTES: Final = 10
DEFAULT_HOOK_TIMEOUT_MINUTES: Final = 1440
DEFAULT_HOOK_TIMEOUT_ACTION: Final = "ROLLBACK"

# ECS runs a hook at these stages while the stage is under way (AWS_LAMBDA only: PAUSE is refused there).
_IN_STAGE_HOOKS: Final = ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
_EVERY_SHIFT_STAGES: Final = ("PRE_PRODUCTION_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")


class TrafficStep(_Record):
    """One stage of a traffic-shifting deployment, in the order ECS runs them."""

    kind: TrafficStepKind
    label: str
    # Production traffic on green (the new revision) once this step is done, in tenths of a
    # percent (0..1000): exact, so 33.3% steps add up to 99.9% and never to 99.89999.
    traffic_tenths: int
    # Minutes ECS waits after this step before the next one. A pause waiting for approval counts 0:
    # its length is a human's.
    bake_minutes: int
    note: str

    def __init__(self, kind: TrafficStepKind, label: str, traffic_tenths: int, bake_minutes: int, note: str) -> None:
        self.__dict__.update(
            kind=kind, label=label, traffic_tenths=traffic_tenths, bake_minutes=bake_minutes, note=note
        )

    @property
    def traffic_percent(self) -> float:
        return self.traffic_tenths / 10


class PlannedHook(_Record):
    """A lifecycle hook at one stage: who it waits for and what ECS does when it times out."""

    stage: str
    target_type: str  # "AWS_LAMBDA" | "PAUSE"
    target: str | None  # the Lambda function's ARN; None for PAUSE
    timeout_minutes: int
    timeout_action: str  # "ROLLBACK" | "CONTINUE"
    runs: int  # how many times one deployment reaches the stage

    def __init__(  # noqa: PLR0917
        self, stage: str, target_type: str, target: str | None, timeout_minutes: int, timeout_action: str, runs: int
    ) -> None:
        self.__dict__.update(
            stage=stage,
            target_type=target_type,
            target=target,
            timeout_minutes=timeout_minutes,
            timeout_action=timeout_action,
            runs=runs,
        )


class TrafficPlan(_Record):
    strategy: str  # "BLUE_GREEN" | "LINEAR" | "CANARY"
    desired: int
    steps: tuple[TrafficStep, ...]
    shifts: int  # production traffic shifts
    peak_tasks: int  # every green task runs beside every blue one: desired * 2
    minimum_minutes: int  # sum of the steps' bake minutes; approvals and task start-up come on top
    step_percent: float | None  # LINEAR: stepPercent; CANARY: canaryPercent; BLUE_GREEN: None
    step_bake_minutes: int  # LINEAR: stepBakeTimeInMinutes; CANARY: canaryBakeTimeInMinutes; BLUE_GREEN: 0
    bake_minutes: int  # bakeTimeInMinutes, 0 when not given
    bake_time_given: bool
    approvals: int  # PAUSE stops: each waits for ContinueServiceDeployment
    hooks: tuple[PlannedHook, ...]

    def __init__(  # noqa: PLR0917
        self,
        strategy: str,
        desired: int,
        steps: tuple[TrafficStep, ...],
        shifts: int,
        peak_tasks: int,
        minimum_minutes: int,
        step_percent: float | None,
        step_bake_minutes: int,
        bake_minutes: int,
        bake_time_given: bool,
        approvals: int,
        hooks: tuple[PlannedHook, ...],
    ) -> None:
        self.__dict__.update(
            strategy=strategy,
            desired=desired,
            steps=steps,
            shifts=shifts,
            peak_tasks=peak_tasks,
            minimum_minutes=minimum_minutes,
            step_percent=step_percent,
            step_bake_minutes=step_bake_minutes,
            bake_minutes=bake_minutes,
            bake_time_given=bake_time_given,
            approvals=approvals,
            hooks=hooks,
        )

    @property
    def needs_approval(self) -> bool:
        return self.approvals > 0


def _config_tenths(value: object, low: int, high: int, name: str) -> int:
    scaled = _tenths(value)
    if scaled is None or not low <= scaled <= high:
        raise ValueError(f"{name} must be a multiple of 0.1 from {low / 10} to {high / 10}, not {value!r}")
    return scaled


def _config_int(value: object, low: int, high: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {value!r}")
    return value


def _shown_percent(tenths: int) -> str:
    return f"{tenths // 10}%" if tenths % 10 == 0 else f"{tenths / 10}%"


def _function_name(arn: str) -> str:
    """arn:aws:lambda:region:account:function:NAME[:qualifier] -> NAME (the ARN itself otherwise)."""
    parts = arn.split(":")
    return parts[6] if len(parts) >= 7 and parts[5] == "function" else arn


def _planned_hooks(hooks: object, shifts: int) -> list[PlannedHook]:
    if hooks is None:
        return []
    if not isinstance(hooks, list):
        raise ValueError(f"lifecycleHooks must be a list, not {hooks!r}")
    planned: list[PlannedHook] = []
    for index, hook in enumerate(hooks):
        if not isinstance(hook, Mapping):
            raise ValueError(f"lifecycleHooks[{index}] must be a mapping, not {hook!r}")
        target_type = hook.get("targetType", "AWS_LAMBDA")
        if target_type not in HOOK_TARGET_TYPES:
            raise ValueError(f"lifecycleHooks[{index}].targetType must be one of {HOOK_TARGET_TYPES}")
        timeout = hook.get("timeoutConfiguration") or {}
        if not isinstance(timeout, Mapping):
            raise ValueError(f"lifecycleHooks[{index}].timeoutConfiguration must be a mapping")
        minutes = _config_int(
            timeout.get("timeoutInMinutes", DEFAULT_HOOK_TIMEOUT_MINUTES),
            1,
            MAX_HOOK_TIMEOUT_MINUTES,
            f"lifecycleHooks[{index}].timeoutConfiguration.timeoutInMinutes",
        )
        action = timeout.get("action", DEFAULT_HOOK_TIMEOUT_ACTION)
        if action not in HOOK_TIMEOUT_ACTIONS:
            raise ValueError(
                f"lifecycleHooks[{index}].timeoutConfiguration.action must be one of {HOOK_TIMEOUT_ACTIONS}"
            )
        stages = hook.get("lifecycleStages")
        if not isinstance(stages, list) or not stages:
            raise ValueError(f"lifecycleHooks[{index}].lifecycleStages must be a non-empty list")
        target = hook.get("hookTargetArn") if target_type == "AWS_LAMBDA" else None
        for stage in stages:
            if stage not in HOOK_STAGES:
                raise ValueError(f"lifecycleHooks[{index}]: unknown lifecycle stage {stage!r}")
            if target_type == "PAUSE" and stage in PAUSE_FORBIDDEN_STAGES:
                raise ValueError(f"lifecycleHooks[{index}]: PAUSE hooks cannot be configured at {stage}")
            runs = shifts if stage in _EVERY_SHIFT_STAGES else 1
            planned.append(PlannedHook(stage, target_type, str(target) if target else None, minutes, action, runs))
    return planned


def _shift_levels(strategy: str, configuration: Mapping[str, Any]) -> tuple[list[tuple[int, int]], float | None, int]:
    """(traffic tenths after each shift, minutes ECS waits after it), the step's percent, its bake."""
    if strategy == "BLUE_GREEN":
        return [(1000, 0)], None, 0
    if strategy == "LINEAR":
        linear = configuration.get("linearConfiguration") or {}
        step = _config_tenths(
            linear.get("stepPercent", DEFAULT_STEP_PERCENT), 30, 1000, "linearConfiguration.stepPercent"
        )
        bake = _config_int(
            linear.get("stepBakeTimeInMinutes", DEFAULT_STEP_BAKE_MINUTES),
            0,
            MAX_BAKE_MINUTES,
            "linearConfiguration.stepBakeTimeInMinutes",
        )
        levels = [*range(step, 1000, step), 1000]
        return [(level, bake if level < 1000 else 0) for level in levels], step / 10, bake
    canary = configuration.get("canaryConfiguration") or {}
    percent = _config_tenths(
        canary.get("canaryPercent", DEFAULT_CANARY_PERCENT), 1, 1000, "canaryConfiguration.canaryPercent"
    )
    bake = _config_int(
        canary.get("canaryBakeTimeInMinutes", DEFAULT_CANARY_BAKE_MINUTES),
        0,
        MAX_BAKE_MINUTES,
        "canaryConfiguration.canaryBakeTimeInMinutes",
    )
    if percent == 1000:
        # The canary already moves everything. ECS documents no canary bake for this case; a plan that
        # claims to be a minimum counts none (as LINEAR's step bake is "not applied after reaching 100
        # percent traffic").
        return [(1000, 0)], 100.0, bake
    return [(percent, bake), (1000, 0)], percent / 10, bake


def _shift_note(strategy: str, index: int, levels: Sequence[tuple[int, int]], step_bake: int) -> str:
    level = levels[index][0]
    before = levels[index - 1][0] if index else 0
    if strategy == "BLUE_GREEN":
        return "all production traffic moves to green at once"
    if strategy == "CANARY":
        if len(levels) == 1:
            return "canaryPercent 100: the canary moves all production traffic; no canary bake is counted"
        if index == 0:
            return f"green serves {_shown_percent(level)} of production traffic, blue the rest"
        return "the rest of production traffic moves at once"
    if level == 1000 and index and level - before != levels[0][0]:
        return f"the last step takes the remainder (+{_shown_percent(level - before)})"
    if level == 1000 and step_bake:
        return "no step bake after 100%"
    return ""


def traffic_plan(deployment_configuration: Mapping[str, Any], desired: int) -> TrafficPlan:
    """The stages of a BLUE_GREEN, LINEAR or CANARY deployment of `desired` tasks: production traffic
    on green after each, the minutes ECS waits, the approvals PAUSE hooks wait for.

    Takes a configuration `validate` accepted (its `deployment_configuration`, defaults filled), or
    the same shape with the ECS defaults left out. Raises ValueError for ROLLING and for values ECS
    would refuse.
    """
    strategy = deployment_configuration.get("strategy")
    if strategy not in TRAFFIC_SHIFTING:
        raise ValueError(f"traffic_plan explains {', '.join(TRAFFIC_SHIFTING)}, not {strategy!r}")
    _config_int(desired, 0, MAX_TASKS_PER_SERVICE, "desired")
    levels, step_percent, step_bake = _shift_levels(str(strategy), deployment_configuration)
    raw_bake = deployment_configuration.get("bakeTimeInMinutes")
    if raw_bake is None and strategy == "BLUE_GREEN":
        raise ValueError("bakeTimeInMinutes is required with the BLUE_GREEN strategy")
    bake = 0 if raw_bake is None else _config_int(raw_bake, 0, MAX_BAKE_MINUTES, "bakeTimeInMinutes")
    hooks = _planned_hooks(deployment_configuration.get("lifecycleHooks"), len(levels))

    steps: list[TrafficStep] = []

    def stops_at(stage: str, traffic: int) -> None:
        for hook in hooks:
            if hook.stage != stage:
                continue
            timeout = f"timeout {hook.timeout_minutes} min, then {hook.timeout_action}"
            when = " (only when more than one service revision is ACTIVE)" if stage == "RECONCILE_SERVICE" else ""
            if hook.target_type == "PAUSE":
                note = f"PAUSE at {stage}: ContinueServiceDeployment CONTINUE or ROLLBACK ({timeout}){when}"
                steps.append(TrafficStep("approval", "waits for approval", traffic, 0, note))
            else:
                name = _function_name(hook.target or "")
                note = f"AWS_LAMBDA at {stage}: function {name} ({timeout}){when}"
                steps.append(TrafficStep("hook", "Lambda hook", traffic, 0, note))

    def in_stage(stage: str) -> str:
        names = [_function_name(h.target or "") for h in hooks if h.stage == stage]
        return f"; Lambda hook {', '.join(names)} runs at {stage}" if names else ""

    stops_at("RECONCILE_SERVICE", 0)
    stops_at("PRE_SCALE_UP", 0)
    steps.append(
        TrafficStep(
            "scale_up",
            "scale up green",
            0,
            0,
            f"green starts {_tasks(desired)} beside blue's {desired}: {2 * desired} running",
        )
    )
    stops_at("POST_SCALE_UP", 0)
    steps.append(
        TrafficStep(
            "test_traffic",
            "test traffic",
            0,
            0,
            "a test listener rule, if configured, sends test traffic to green" + in_stage("TEST_TRAFFIC_SHIFT"),
        )
    )
    stops_at("POST_TEST_TRAFFIC_SHIFT", 0)
    for index, (level, wait) in enumerate(levels):
        stops_at("PRE_PRODUCTION_TRAFFIC_SHIFT", levels[index - 1][0] if index else 0)
        if strategy == "BLUE_GREEN":
            label = "shift all traffic"
        elif strategy == "CANARY":
            label = "canary" if index == 0 and len(levels) > 1 else "shift the rest"
        else:
            label = f"shift {index + 1} of {len(levels)}"
        note = _shift_note(str(strategy), index, levels, step_bake) + in_stage("PRODUCTION_TRAFFIC_SHIFT")
        steps.append(TrafficStep("shift", label, level, wait, note.removeprefix("; ")))
    stops_at("POST_PRODUCTION_TRAFFIC_SHIFT", 1000)
    if raw_bake is None:
        bake_note = f"bakeTimeInMinutes not given: the ECS API model states no default for {strategy}"
    elif bake:
        bake_note = "blue still runs: a rollback moves production traffic back at once"
    else:
        bake_note = "bakeTimeInMinutes 0: blue stops right after the last shift"
    steps.append(TrafficStep("bake", "bake", 1000, bake, bake_note))
    steps.append(
        TrafficStep("clean_up", "clean up blue", 1000, 0, f"blue scales in to 0; green runs {_tasks(desired)}")
    )
    return TrafficPlan(
        strategy=str(strategy),
        desired=desired,
        steps=tuple(steps),
        shifts=len(levels),
        peak_tasks=2 * desired,
        minimum_minutes=sum(step.bake_minutes for step in steps),
        step_percent=step_percent,
        step_bake_minutes=step_bake,
        bake_minutes=bake,
        bake_time_given=raw_bake is not None,
        approvals=sum(1 for step in steps if step.kind == "approval"),
        hooks=tuple(hooks),
    )


def traffic_warnings(rollout: TrafficPlan, service: ServiceFacts) -> tuple[Finding, ...]:
    """Capacity a traffic-shifting deployment needs beside blue: all of green at once.

    Kept apart from `validate` (whose findings for these strategies stay as they were): these are
    about the cluster, which only the plan asks about.
    """
    largest = max(rollout.desired, service.desired_range[1] if service.desired_range else 0)
    if largest == 0:
        return ()
    spare = service.spare_capacity
    needed = f"green needs room for {_tasks(largest)} beside blue's {largest} ({2 * largest} in all)"
    if spare is not None and spare < largest:
        return (
            Finding(
                "warning",
                "spareCapacity",
                spare,
                _policy(
                    f"{rollout.strategy} scales green up to the full desired count before any traffic moves: "
                    f"{needed}; the cluster has room for {spare}, so ECS waits for capacity"
                ),
                f"give the cluster room for {largest} more tasks, or use ROLLING with a minimumHealthyPercent "
                "that lets old tasks stop first",
            ),
        )
    if spare is None and service.launch_type in ("EC2", "EXTERNAL"):
        return (
            Finding(
                "warning",
                "strategy",
                rollout.strategy,
                _policy(f"on {service.launch_type} capacity {needed}; without that room ECS waits for capacity"),
                "make sure the cluster (or its capacity provider) has that room, or pass the cluster's spare "
                "capacity to check it",
            ),
        )
    return ()
