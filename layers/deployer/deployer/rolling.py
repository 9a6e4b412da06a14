"""Validate an ECS `deploymentConfiguration`, plan the rolling update it allows, and explain the
traffic steps of the BLUE_GREEN, LINEAR and CANARY strategies (`traffic_plan`).

Pure standard library on purpose: `deployer plan` imports this module and must start fast, and
the Lambda functions call `validate` before any AWS call.

The arithmetic is ECS's own (Amazon ECS Developer Guide, "Deploy Amazon ECS services by replacing
tasks", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html):
`minimumHealthyPercent` keeps at least ceil(desired * min / 100) tasks RUNNING and
`maximumPercent` allows at most floor(desired * max / 100) tasks RUNNING or PENDING. ECS accepts a
configuration that can neither start nor stop a task and then hangs ("unable to stop or start tasks
during a deployment because of the service deployment configuration"), so `validate` refuses it.

Every rule says whose it is: "ECS: ..." for what the ECS API or its documentation states (the
botocore ECS model shipped with this project was read for shapes, enums and documented ranges),
"deployer policy: ..." for this tool's own choices.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence

# `deployer plan` imports this module, and starts in about twice the time of a bare `python -c
# pass` (BENCHMARKS.md): nothing here may import `typing` or `dataclasses` at run time (the latter
# imports `inspect`, then generates and compiles every method of every class as it is defined), and
# `json`, `difflib` and `decimal` are imported where they are used. Mypy reads any name
# TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from decimal import Decimal
    from typing import Any, ClassVar, Final, Literal, Self

__all__ = [
    "DEFAULT_CANARY_BAKE_MINUTES",
    "DEFAULT_CANARY_PERCENT",
    "DEFAULT_MAXIMUM_PERCENT",
    "DEFAULT_MINIMUM_HEALTHY_PERCENT",
    "DEFAULT_STEP_BAKE_MINUTES",
    "DEFAULT_STEP_PERCENT",
    "MANY_WAVES",
    "MAX_TASKS_PER_SERVICE",
    "MISSING",
    "Finding",
    "Plan",
    "PlannedHook",
    "ServiceFacts",
    "Severity",
    "Step",
    "StuckRollout",
    "TrafficPlan",
    "TrafficStep",
    "Validation",
    "is_stuck",
    "plan",
    "traffic_plan",
    "traffic_warnings",
    "validate",
]

if TYPE_CHECKING:
    Severity = Literal["error", "warning", "note"]
    SchedulingStrategy = Literal["REPLICA", "DAEMON"]
    TrafficStepKind = Literal["scale_up", "test_traffic", "hook", "approval", "shift", "bake", "clean_up"]


class _Record:
    """An immutable record, as a frozen dataclass is (equality and hashing over its fields, a repr
    naming them, FrozenInstanceError's AttributeError on assignment), without the dataclasses
    module. A record's fields are the parameters of its `__init__`, in order, positional as a
    dataclass's are (hence the PLR0917 exemptions)."""

    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls) -> None:
        code = cls.__init__.__code__
        cls._fields = code.co_varnames[1 : code.co_argcount + code.co_kwonlyargcount]

    def _values(self) -> tuple[object, ...]:
        return tuple(self.__dict__[name] for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self._fields)
        return f"{type(self).__qualname__}({fields})"

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}")

    def replace(self, **changes: Any) -> Self:
        """A copy with `changes` (as `dataclasses.replace`)."""
        return type(self)(**{**self.__dict__, **changes})

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict, records inside included (as `dataclasses.asdict`)."""
        return {name: _plain(self.__dict__[name]) for name in self._fields}


def _plain(value: object) -> object:
    if isinstance(value, _Record):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(item) for item in value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def _is_decimal(value: object) -> bool:
    """Whether `value` is a Decimal (none can exist before the decimal module is imported)."""
    module = sys.modules.get("decimal")
    return module is not None and isinstance(value, module.Decimal)


def _decimal(value: object) -> Decimal:
    from decimal import Decimal

    return Decimal(value)  # type: ignore[arg-type]


# Amazon ECS service quotas, "Tasks per service: the maximum number of tasks per service (the
# desired count)", default 5,000:
# https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html
# It also bounds the planner's work: a plan has at most 2 * desired + 1 steps.
MAX_TASKS_PER_SERVICE: Final = 5000

# deployer policy: a rollout of more waves than this gets a warning. Each wave waits for new
# tasks to start and pass health checks, so ten waves already means a slow deployment.
MANY_WAVES: Final = 10

# deployer policy: small services (fewer tasks than this) at minimumHealthyPercent 100 get a warning.
SMALL_SERVICE: Final = 3

# ECS defaults when the field is not sent (botocore ECS model, DeploymentConfiguration docs).
DEFAULT_MINIMUM_HEALTHY_PERCENT: Final[Mapping[str, int]] = {"REPLICA": 100, "DAEMON": 0}
DEFAULT_MAXIMUM_PERCENT: Final[Mapping[str, int]] = {"REPLICA": 200, "DAEMON": 100}

STRATEGIES: Final = ("ROLLING", "BLUE_GREEN", "LINEAR", "CANARY")
TRAFFIC_SHIFTING: Final = ("BLUE_GREEN", "LINEAR", "CANARY")
HOOK_TARGET_TYPES: Final = ("AWS_LAMBDA", "PAUSE")
HOOK_STAGES: Final = (
    "RECONCILE_SERVICE",
    "PRE_SCALE_UP",
    "POST_SCALE_UP",
    "TEST_TRAFFIC_SHIFT",
    "POST_TEST_TRAFFIC_SHIFT",
    "PRE_PRODUCTION_TRAFFIC_SHIFT",
    "PRODUCTION_TRAFFIC_SHIFT",
    "POST_PRODUCTION_TRAFFIC_SHIFT",
)
PAUSE_FORBIDDEN_STAGES: Final = ("TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT")
HOOK_TIMEOUT_ACTIONS: Final = ("ROLLBACK", "CONTINUE")
THRESHOLD_TYPES: Final = ("COUNT", "BOUNDED_PERCENT", "UNBOUNDED_PERCENT")
CLEANUP_MODES: Final = ("BLOCKING", "DEFERRED")
MAX_BAKE_MINUTES: Final = 1440
MAX_HOOK_TIMEOUT_MINUTES: Final = 20160

_TOP_KEYS: Final = (
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
_BREAKER_KEYS: Final = ("enable", "rollback", "resetOnHealthyTask", "thresholdConfiguration")
_ALARM_KEYS: Final = ("alarmNames", "enable", "rollback")


class _ShiftSpec(_Record):
    """How ECS checks one traffic-shifting configuration (REFERENCE.md "ECS rolling update")."""

    strategy: str
    field: str
    percent_key: str
    bake_key: str
    default_percent: float
    default_bake: int
    lowest_tenths: int  # the smallest percent, in tenths (multiples of 0.1 up to 100.0)

    def __init__(  # noqa: PLR0917
        self,
        strategy: str,
        field: str,
        percent_key: str,
        bake_key: str,
        default_percent: float,
        default_bake: int,
        lowest_tenths: int,
    ) -> None:
        self.__dict__.update(
            strategy=strategy,
            field=field,
            percent_key=percent_key,
            bake_key=bake_key,
            default_percent=default_percent,
            default_bake=default_bake,
            lowest_tenths=lowest_tenths,
        )


_LINEAR: Final = _ShiftSpec("LINEAR", "linearConfiguration", "stepPercent", "stepBakeTimeInMinutes", 10.0, 6, 30)
_CANARY: Final = _ShiftSpec("CANARY", "canaryConfiguration", "canaryPercent", "canaryBakeTimeInMinutes", 5.0, 10, 1)
_EARLY_KEYS: Final = ("enable", "healthyPercent", "sourceServiceRevisionCleanup")
_HOOK_KEYS: Final = (
    "targetType",
    "hookTargetArn",
    "roleArn",
    "lifecycleStages",
    "hookDetails",
    "timeoutConfiguration",
)
_TIMEOUT_KEYS: Final = ("timeoutInMinutes", "action")


class _Missing:
    """Marks a required value that was not given (a given `null` stays `None`)."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Final = _Missing()


def _show(value: object) -> str:
    """Render a value the way the user wrote it (JSON/YAML style), kept to one short line."""
    if value is MISSING:
        return "(missing)"
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return "/".join(str(v) for v in value)
    import json

    try:
        text = json.dumps(value, default=repr, ensure_ascii=False, sort_keys=True)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _jsonable(value: object) -> object:
    if value is MISSING:
        return None
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return repr(value)


class Finding(_Record):
    """One problem (or remark) about a configuration, saying whose rule it is and what to do."""

    severity: Severity
    field: str
    value: object
    rule: str
    fix: str

    def __init__(self, severity: Severity, field: str, value: object, rule: str, fix: str) -> None:
        self.__dict__.update(severity=severity, field=field, value=value, rule=rule, fix=fix)

    @property
    def message(self) -> str:
        text = f"{self.field}: {_show(self.value)} — {self.rule.rstrip('.')}."
        return f"{text} Fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the value as given, `null` when it was missing)."""
        return {
            "severity": self.severity,
            "field": self.field,
            "value": _jsonable(self.value),
            "rule": self.rule,
            "fix": self.fix,
            "message": self.message,
        }


class ServiceFacts(_Record):
    """What is known about the ECS service; enables the count-dependent checks."""

    desired_count: int
    scheduling_strategy: Literal["REPLICA", "DAEMON"] = "REPLICA"
    # Capacity-provider services: pass the underlying kind (FARGATE for Fargate providers).
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] = "FARGATE"
    deployment_controller: Literal["ECS", "CODE_DEPLOY", "EXTERNAL"] = "ECS"
    # Autoscaling min..max capacity: every count in it (and desired_count) is checked.
    desired_range: tuple[int, int] | None = None
    # Extra tasks the cluster has room for; None = unlimited (Fargate).
    spare_capacity: int | None = None
    # BLUE_GREEN / LINEAR / CANARY shift traffic: they need a load balancer with an alternate
    # target group.
    has_load_balancer: bool = False
    has_alternate_target_group: bool = False

    def __init__(  # noqa: PLR0917
        self,
        desired_count: int,
        scheduling_strategy: Literal["REPLICA", "DAEMON"] = "REPLICA",
        launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] = "FARGATE",
        deployment_controller: Literal["ECS", "CODE_DEPLOY", "EXTERNAL"] = "ECS",
        desired_range: tuple[int, int] | None = None,
        spare_capacity: int | None = None,
        has_load_balancer: bool = False,
        has_alternate_target_group: bool = False,
    ) -> None:
        self.__dict__.update(
            desired_count=desired_count,
            scheduling_strategy=scheduling_strategy,
            launch_type=launch_type,
            deployment_controller=deployment_controller,
            desired_range=desired_range,
            spare_capacity=spare_capacity,
            has_load_balancer=has_load_balancer,
            has_alternate_target_group=has_alternate_target_group,
        )


class Validation(_Record):
    errors: tuple[Finding, ...]
    warnings: tuple[Finding, ...]
    notes: tuple[Finding, ...]
    # Normalized, ready to send as UpdateService deploymentConfiguration (defaults filled);
    # empty when there are errors.
    deployment_configuration: dict[str, Any]

    def __init__(
        self,
        errors: tuple[Finding, ...],
        warnings: tuple[Finding, ...],
        notes: tuple[Finding, ...],
        deployment_configuration: dict[str, Any],
    ) -> None:
        self.__dict__.update(
            errors=errors, warnings=warnings, notes=notes, deployment_configuration=deployment_configuration
        )

    @property
    def valid(self) -> bool:
        return not self.errors

    @property
    def findings(self) -> tuple[Finding, ...]:
        return self.errors + self.warnings + self.notes


class Step(_Record):
    old: int
    new: int
    action: str  # "start" | "stop" | "" for the first (starting) state
    count: int  # tasks started or stopped to reach this state (0 for the first)

    def __init__(self, old: int, new: int, action: str, count: int) -> None:
        self.__dict__.update(old=old, new=new, action=action, count=count)


class Plan(_Record):
    desired: int
    minimum_running: int  # ceil(desired * min / 100)
    maximum_tasks: int  # floor(desired * max / 100), further limited by spare capacity
    steps: tuple[Step, ...]  # first is [desired old, 0 new]; last is [0 old, desired new]
    waves: int  # number of "start" phases (batches of new tasks)
    peak_tasks: int
    min_running_tasks: int  # lowest old + new over all steps
    outage: bool  # min_running_tasks == 0 with desired > 0

    def __init__(  # noqa: PLR0917
        self,
        desired: int,
        minimum_running: int,
        maximum_tasks: int,
        steps: tuple[Step, ...],
        waves: int,
        peak_tasks: int,
        min_running_tasks: int,
        outage: bool,
    ) -> None:
        self.__dict__.update(
            desired=desired,
            minimum_running=minimum_running,
            maximum_tasks=maximum_tasks,
            steps=steps,
            waves=waves,
            peak_tasks=peak_tasks,
            min_running_tasks=min_running_tasks,
            outage=outage,
        )


class StuckRollout(ValueError):
    """The configuration can neither start nor stop a task for this desired count."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --- ECS arithmetic ------------------------------------------------------------------------------


def _minimum_running(desired: int, minimum_healthy_percent: int) -> int:
    """ECS rounds the minimum UP: ceil(desired * min / 100), in integers."""
    return -(-desired * minimum_healthy_percent // 100)


def _maximum_tasks(desired: int, maximum_percent: int, spare_capacity: int | None) -> int:
    """ECS rounds the maximum DOWN: floor(desired * max / 100); the cluster may allow fewer."""
    ceiling = desired * maximum_percent // 100
    return ceiling if spare_capacity is None else min(ceiling, desired + spare_capacity)


def _check_numbers(
    desired: int, minimum_healthy_percent: int, maximum_percent: int, spare_capacity: int | None
) -> None:
    for name, value in (
        ("desired", desired),
        ("minimum_healthy_percent", minimum_healthy_percent),
        ("maximum_percent", maximum_percent),
    ):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an integer, not {value!r}")
    if spare_capacity is not None and (isinstance(spare_capacity, bool) or not isinstance(spare_capacity, int)):
        raise ValueError(f"spare_capacity must be an integer or None, not {spare_capacity!r}")
    if desired < 0:
        raise ValueError(f"desired must be 0 or more, not {desired}")
    if not 0 <= minimum_healthy_percent <= 100:
        raise ValueError(f"minimum_healthy_percent must be 0..100, not {minimum_healthy_percent}")
    if maximum_percent < 100:
        raise ValueError(f"maximum_percent must be 100 or more, not {maximum_percent}")
    if spare_capacity is not None and spare_capacity < 0:
        raise ValueError(f"spare_capacity must be 0 or more, not {spare_capacity}")


def _stuck(desired: int, minimum_healthy_percent: int, maximum_percent: int, spare: int | None) -> bool:
    # The first state [desired old] can start a task iff the maximum (and the cluster) allows
    # desired + 1 tasks, and stop one iff the minimum allows desired - 1. Once it has moved, it can
    # always move again (see `plan`), so the first state decides.
    if desired == 0:
        return False
    return (
        _minimum_running(desired, minimum_healthy_percent) >= desired
        and _maximum_tasks(desired, maximum_percent, spare) <= desired
    )


def is_stuck(
    desired: int, minimum_healthy_percent: int, maximum_percent: int, spare_capacity: int | None = None
) -> bool:
    """True when ECS could neither start nor stop a single task: the deployment would hang."""
    _check_numbers(desired, minimum_healthy_percent, maximum_percent, spare_capacity)
    return _stuck(desired, minimum_healthy_percent, maximum_percent, spare_capacity)


def _stuck_reason(desired: int, minimum_healthy_percent: int, maximum_percent: int, spare: int | None) -> str:
    low = _minimum_running(desired, minimum_healthy_percent)
    ceiling = desired * maximum_percent // 100
    keep = (
        f"minimumHealthyPercent {minimum_healthy_percent} keeps ceil({desired} × "
        f"{minimum_healthy_percent} / 100) = {_tasks(low)} RUNNING (none may stop first)"
    )
    if ceiling <= desired:
        room = (
            f"maximumPercent {maximum_percent} allows floor({desired} × {maximum_percent} / 100) = "
            f"{_tasks(ceiling)} (none may start)"
        )
    else:
        room = f"the cluster has no room for one more task (spare capacity {spare}; none may start)"
    return (
        f"with desired count {desired}, {keep} and {room}: ECS can neither start nor stop a task, "
        "so the deployment never progresses"
    )


def _tasks(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"


def plan(desired: int, minimum_healthy_percent: int, maximum_percent: int, spare_capacity: int | None = None) -> Plan:
    """Replay the rollout phase by phase, each phase doing the most it may.

    Availability first: start new tasks while the maximum (and the cluster's room: total <=
    desired + spare) allows; otherwise stop old tasks as far as the minimum allows, counting
    started new tasks as running. With no room, old tasks therefore stop first.
    Raises StuckRollout when nothing can move, ValueError for out-of-range numbers or a desired
    count above ECS's tasks-per-service quota (which also bounds the work: at most 2 * desired + 1
    steps).
    """
    _check_numbers(desired, minimum_healthy_percent, maximum_percent, spare_capacity)
    if desired > MAX_TASKS_PER_SERVICE:
        raise ValueError(f"desired count {desired} is above ECS's tasks-per-service quota of {MAX_TASKS_PER_SERVICE:,}")
    if _stuck(desired, minimum_healthy_percent, maximum_percent, spare_capacity):
        raise StuckRollout(_stuck_reason(desired, minimum_healthy_percent, maximum_percent, spare_capacity))
    low = _minimum_running(desired, minimum_healthy_percent)
    high = _maximum_tasks(desired, maximum_percent, spare_capacity)
    old, new = desired, 0
    steps = [Step(old, new, "", 0)]
    waves = 0
    while old > 0 or new < desired:
        total = old + new
        if new < desired and total < high:
            count = min(desired - new, high - total)
            new += count
            waves += 1
            steps.append(Step(old, new, "start", count))
            continue
        count = min(old, total - low)
        if count <= 0:  # pragma: no cover - excluded by _stuck; kept so a bug cannot loop forever
            raise StuckRollout(_stuck_reason(desired, minimum_healthy_percent, maximum_percent, spare_capacity))
        old -= count
        steps.append(Step(old, new, "stop", count))
    totals = [s.old + s.new for s in steps]
    lowest = min(totals)
    return Plan(
        desired=desired,
        minimum_running=low,
        maximum_tasks=high,
        steps=tuple(steps),
        waves=waves,
        peak_tasks=max(totals),
        min_running_tasks=lowest,
        outage=desired > 0 and lowest == 0,
    )


# --- validation ----------------------------------------------------------------------------------


def _ecs(text: str) -> str:
    return f"ECS: {text}"


def _policy(text: str) -> str:
    return f"deployer policy: {text}"


def _whole(value: object) -> int | None:
    """An integral float/Decimal as int (50.0 -> 50), else None."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if _is_decimal(value):
        number = _decimal(value)
        if number.is_finite() and number == number.to_integral_value():
            return int(number)
    return None


def _tenths(value: object) -> int | None:
    """value * 10 as an exact int when value is a multiple of 0.1 (no float error), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value * 10
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        decimal = _decimal(repr(value))  # the shortest repr: 0.3 -> Decimal("0.3"), not 0.2999...
    elif _is_decimal(value):
        decimal = _decimal(value)
        if not decimal.is_finite():
            return None
    else:
        return None
    scaled = decimal * 10
    return int(scaled) if scaled == scaled.to_integral_value() else None


def _kind(value: object) -> str:
    """How a YAML/JSON author would name the type they wrote."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    names = {str: "a string", float: "a decimal number", list: "a list", dict: "a mapping"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), type(value).__name__)


class _Checker:
    def __init__(self, service: ServiceFacts | None) -> None:
        self.service = service
        self.findings: list[Finding] = []
        self.normalized: dict[str, Any] = {}
        self.facts_ok = True

    # findings

    def error(self, field: str, value: object, rule: str, fix: str) -> None:
        self.findings.append(Finding("error", field, value, rule, fix))

    def warning(self, field: str, value: object, rule: str, fix: str) -> None:
        self.findings.append(Finding("warning", field, value, rule, fix))

    def note(self, field: str, value: object, rule: str, fix: str = "") -> None:
        self.findings.append(Finding("note", field, value, rule, fix))

    # shapes

    def mapping(self, field: str, value: object, what: str) -> Mapping[str, Any] | None:
        if isinstance(value, Mapping):
            return value
        self.error(field, value, _ecs(f"{field} is {what}"), f"write {field} as a mapping of its fields")
        return None

    def unknown_keys(self, prefix: str, given: Mapping[str, Any], known: Sequence[str]) -> None:
        for key in given:
            if key in known:
                continue
            name = f"{prefix}.{key}" if prefix else str(key)
            import difflib

            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            where = prefix or "deploymentConfiguration"
            self.error(
                name,
                given[key],
                _ecs(f"{where} has no field {key!r} (it knows {', '.join(known)})"),
                f"{hint}remove {key!r} or correct its name",
            )

    def integer(self, field: str, value: object, low: int, high: int | None, rule: str) -> int | None:
        """An int in low..high (high None = no upper bound); bools, floats and strings refused.

        `rule` is the range rule as a whole sentence, saying whose it is.
        """
        if isinstance(value, bool) or not isinstance(value, int):
            whole = _whole(value)
            if whole is not None:
                fix = f"use {whole}"
            elif isinstance(value, str) and len(value) < 20 and value.strip().lstrip("-").isdigit():
                fix = f"use {int(value)} (a number, not a string)"
            elif isinstance(value, float) and math.isfinite(value):
                fix = f"use a whole number such as {math.floor(value)} or {math.ceil(value)}"
            else:
                fix = f"use a whole number from {low}" + (f" to {high}" if high is not None else " up")
            self.error(field, value, _ecs(f"{field} is an integer, not {_kind(value)}"), fix)
            return None
        if value < low:
            self.error(field, value, rule, f"use {low} or more" + (f" (up to {high})" if high is not None else ""))
            return None
        if high is not None and value > high:
            self.error(field, value, rule, f"use {high} or less (down to {low})")
            return None
        return value

    def boolean(self, field: str, value: object, *, required: bool = True) -> bool | None:
        if value is MISSING:
            if required:
                self.error(field, value, _ecs(f"{field} is required (true or false)"), f"add {field}: true or false")
            return None
        if isinstance(value, bool):
            return value
        fix = "use true or false"
        if isinstance(value, str) and value.lower() in ("true", "false"):
            fix = f"use {value.lower()} without quotes"
        self.error(field, value, _ecs(f"{field} is a boolean"), fix)
        return None

    def choice(self, field: str, value: object, allowed: Sequence[str]) -> str | None:
        if isinstance(value, str) and value in allowed:
            return value
        fix = f"use one of {', '.join(allowed)}"
        if isinstance(value, str) and value.upper() in allowed:
            fix = f"use {value.upper()} (ECS enum values are upper case)"
        self.error(field, value, _ecs(f"{field} is one of {', '.join(allowed)}"), fix)
        return None

    def tenths(self, field: str, value: object, low: int, high: int) -> float | None:
        """A number that is a multiple of 0.1 within low/10..high/10, checked exactly."""
        span = f"multiples of 0.1 from {low / 10} to {high / 10}"
        if isinstance(value, bool) or not (isinstance(value, (int, float)) or _is_decimal(value)):
            self.error(field, value, _ecs(f"{field} is a number: {span}"), f"use a number such as {high // 20 / 10}")
            return None
        scaled = _tenths(value)
        if scaled is None:
            from decimal import Decimal, InvalidOperation

            try:
                nearest = _decimal(repr(value) if isinstance(value, float) else value).quantize(Decimal("0.1"))
                fix = f"use {min(max(nearest, Decimal(low) / 10), Decimal(high) / 10)}"
            except (InvalidOperation, ValueError):
                fix = f"use a finite number: {span}"
            self.error(field, value, _ecs(f"{field} takes {span}"), fix)
            return None
        if not low <= scaled <= high:
            nearest_scaled = low if scaled < low else high
            self.error(field, value, _ecs(f"{field} takes {span}"), f"use {nearest_scaled / 10}")
            return None
        return scaled / 10

    def arn(self, field: str, value: object, what: str) -> str | None:
        if value is MISSING:
            self.error(field, value, what, f"add {field}")
            return None
        if isinstance(value, str) and value.startswith("arn:") and len(value) > len("arn:"):
            return value
        self.error(field, value, _ecs(f"{field} is an ARN (arn:...)"), f"give the full ARN in {field}")
        return None


def _percent_fix(counts: Sequence[int], minimum: int, maximum: int, spare: int | None, daemon: bool) -> str:
    """Concrete values that let every count in `counts` move (only lowering/raising one field)."""
    options: list[str] = []
    hold = [c for c in counts if c > 0 and _minimum_running(c, minimum) >= c]
    if not daemon and (spare is None or spare > 0) and hold:
        # Smallest maximumPercent with floor(c * max / 100) >= c + 1, for every count that cannot stop.
        needed = max(-(-100 * (c + 1) // c) for c in hold)
        smallest = min(hold)
        options.append(
            f"use maximumPercent {needed} or more (the smallest that lets ECS start one new task "
            f"before stopping one with {_tasks(smallest)})"
        )
    full = [c for c in counts if c > 0 and _maximum_tasks(c, maximum, spare) <= c]
    if full:
        # Largest minimumHealthyPercent with ceil(c * min / 100) <= c - 1, for every count that cannot start.
        allowed = min(100 * (c - 1) // c for c in full)
        if allowed == 0:
            options.append("use minimumHealthyPercent 0 (lets ECS stop the task first: an outage with 1 task)")
        else:
            options.append(
                f"use minimumHealthyPercent {allowed} or less (the largest that lets ECS stop one task first)"
            )
    if spare == 0:
        options.append("give the cluster room for at least one more task")
    return "; or ".join(options)


def _range_text(counts: Sequence[int]) -> str:
    shown = ", ".join(str(c) for c in counts[:5])
    return shown + (f" and {len(counts) - 5} more" if len(counts) > 5 else "")


class _Validate(_Checker):
    def run(self, requested: Mapping[str, Any]) -> None:
        service = self.service
        daemon = service is not None and service.scheduling_strategy == "DAEMON"
        controller = service.deployment_controller if service is not None else "ECS"
        if not isinstance(requested, Mapping):
            self.error(
                "deploymentConfiguration",
                requested,
                _ecs("deploymentConfiguration is a mapping of fields"),
                "write it as a mapping such as {minimumHealthyPercent: 50, maximumPercent: 200}",
            )
            return
        self.unknown_keys("", requested, _TOP_KEYS)
        self.check_service()

        scheduling = "DAEMON" if daemon else "REPLICA"
        minimum = self.minimum(requested.get("minimumHealthyPercent", MISSING), scheduling)
        maximum = self.maximum(requested.get("maximumPercent", MISSING), scheduling)
        strategy = self.strategy(requested)
        self.circuit_breaker(requested.get("deploymentCircuitBreaker", MISSING), controller)
        self.alarms(requested.get("alarms", MISSING))
        self.bake_time(requested.get("bakeTimeInMinutes", MISSING), strategy)
        self.linear(requested.get("linearConfiguration", MISSING), strategy)
        self.canary(requested.get("canaryConfiguration", MISSING), strategy)
        self.hooks(requested.get("lifecycleHooks", MISSING))
        self.early_success(requested.get("earlySuccessCriteria", MISSING), strategy, minimum)
        self.controller_rules(requested, controller)

        if minimum is None or maximum is None:
            return
        if "minimumHealthyPercent" in requested or controller == "ECS":
            self.normalized["minimumHealthyPercent"] = minimum
        if "maximumPercent" in requested or controller == "ECS":
            self.normalized["maximumPercent"] = maximum
        if controller != "ECS":
            return
        self.percent_warnings(minimum, maximum, daemon)
        if service is not None and strategy in (None, "ROLLING"):
            self.counts(service, minimum, maximum, daemon)
        elif service is not None and strategy in TRAFFIC_SHIFTING:
            self.note(
                "strategy",
                strategy,
                _policy(f"the rolling plan models ROLLING only; {strategy} starts a green service revision"),
            )

    # facts about the service

    def check_service(self) -> None:
        service = self.service
        if service is None:
            return
        before = len(self.findings)
        self.check_facts(service)
        self.facts_ok = not any(f.severity == "error" for f in self.findings[before:])

    def check_facts(self, service: ServiceFacts) -> None:
        count = service.desired_count
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            self.error(
                "desiredCount",
                count,
                _ecs("desiredCount is a whole number, 0 or more"),
                "pass the service's desiredCount",
            )
        elif count > MAX_TASKS_PER_SERVICE:
            self.error(
                "desiredCount",
                count,
                _ecs(f"a service runs at most {MAX_TASKS_PER_SERVICE:,} tasks (the 'Tasks per service' quota)"),
                f"use {MAX_TASKS_PER_SERVICE:,} or fewer tasks per service, or split the service",
            )
        if service.desired_range is not None:
            low_high = service.desired_range
            valid_pair = (
                isinstance(low_high, tuple)
                and len(low_high) == 2
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in low_high)
            )
            if not valid_pair:
                self.error(
                    "desiredRange",
                    low_high,
                    _policy("the autoscaling range is a pair of whole numbers (min, max)"),
                    "pass (minimum capacity, maximum capacity)",
                )
            elif low_high[0] > low_high[1]:
                self.error(
                    "desiredRange",
                    low_high,
                    _ecs("the autoscaling minimum capacity cannot exceed the maximum capacity"),
                    f"use ({low_high[1]}, {low_high[0]})",
                )
            elif low_high[1] > MAX_TASKS_PER_SERVICE:
                self.error(
                    "desiredRange",
                    low_high,
                    _ecs(f"a service runs at most {MAX_TASKS_PER_SERVICE:,} tasks (the 'Tasks per service' quota)"),
                    f"cap the autoscaling maximum capacity at {MAX_TASKS_PER_SERVICE:,}",
                )
            elif isinstance(count, int) and not low_high[0] <= count <= low_high[1]:
                self.warning(
                    "desiredCount",
                    count,
                    _policy(f"the desired count is outside the autoscaling range {low_high[0]}..{low_high[1]}"),
                    "check the scalable target; autoscaling will move the count into its range",
                )
        spare = service.spare_capacity
        if spare is not None and (isinstance(spare, bool) or not isinstance(spare, int) or spare < 0):
            self.error(
                "spareCapacity",
                spare,
                _policy("spare capacity is a whole number of tasks, 0 or more"),
                "pass 0 or more, or None for unlimited (Fargate)",
            )
        if service.scheduling_strategy == "DAEMON":
            if service.launch_type == "FARGATE" or service.deployment_controller != "ECS":
                kind = "the Fargate launch type" if service.launch_type == "FARGATE" else "this controller"
                self.error(
                    "schedulingStrategy",
                    "DAEMON",
                    _ecs(
                        "tasks using the Fargate launch type or the CODE_DEPLOY or EXTERNAL deployment "
                        f"controller types don't support the DAEMON scheduling strategy ({kind})"
                    ),
                    "use REPLICA, or run the daemon on EC2 capacity with the ECS deployment controller",
                )
            if service.desired_range is not None:
                self.warning(
                    "desiredRange",
                    service.desired_range,
                    _ecs("DAEMON services run one task per container instance and use no Service Auto Scaling"),
                    "drop the autoscaling range; the count follows the number of instances",
                )

    # minimum and maximum

    def minimum(self, value: object, scheduling: str) -> int | None:
        field = "minimumHealthyPercent"
        if value is MISSING:
            default = DEFAULT_MINIMUM_HEALTHY_PERCENT[scheduling]
            if self.service is None or self.service.deployment_controller == "ECS":
                self.note(field, value, _ecs(f"not given: ECS uses {default} for {scheduling} services"))
            return default
        return self.integer(
            field,
            value,
            0,
            100,
            _policy(
                "minimumHealthyPercent is 0 to 100: a share of desiredCount that must stay RUNNING "
                "(the ECS API model states no range)"
            ),
        )

    def maximum(self, value: object, scheduling: str) -> int | None:
        field = "maximumPercent"
        if value is MISSING:
            default = DEFAULT_MAXIMUM_PERCENT[scheduling]
            if self.service is None or self.service.deployment_controller == "ECS":
                self.note(field, value, _ecs(f"not given: ECS uses {default} for {scheduling} services"))
            return default
        number = self.integer(
            field,
            value,
            100,
            None,
            _policy(
                "maximumPercent is 100 or more: below 100 the service could not run its desired count "
                "during a deployment (the ECS API model states no range)"
            ),
        )
        if number is not None and scheduling == "DAEMON" and number > 100:
            self.error(
                field,
                value,
                _ecs("The daemon scheduling strategy does not support values above 100 for maximumPercent"),
                "use maximumPercent 100 for DAEMON services",
            )
            return None
        return number

    def percent_warnings(self, minimum: int, maximum: int, daemon: bool) -> None:
        desired = self.service.desired_count if self.service is not None else None
        if minimum == 0 and desired != 0:
            self.warning(
                "minimumHealthyPercent",
                minimum,
                _policy("0 allows an outage: ECS may stop every running task before new ones are healthy"),
                "use 50 or more to keep part of the service running (or accept the outage knowingly)",
            )
        if not daemon and maximum > 200:
            self.warning(
                "maximumPercent",
                maximum,
                _policy(
                    "above 200 adds nothing (a rollout never needs more than twice the desired count); "
                    "ECS documents no upper bound for REPLICA services, so this is a warning, not an error"
                ),
                "use 200",
            )

    def counts(self, service: ServiceFacts, minimum: int, maximum: int, daemon: bool) -> None:
        """Count-dependent checks: stuck configurations, outages, slow or oversized rollouts."""
        desired = service.desired_count
        spare = service.spare_capacity
        if not self.facts_ok:
            return  # the service facts are unusable; their errors are already reported
        counts = sorted(
            {desired}
            | (set(range(service.desired_range[0], service.desired_range[1] + 1)) if service.desired_range else set())
        )
        stuck = [c for c in counts if _stuck(c, minimum, maximum, spare)]
        if stuck:
            first = stuck[0]
            where = ""
            if service.desired_range is not None:
                low, high = service.desired_range
                where = (
                    f" (checked desired count {desired} and every count of the autoscaling range "
                    f"{low}..{high}; first stuck count {first}; stuck counts: {_range_text(stuck)})"
                )
            reason = _stuck_reason(first, minimum, maximum, spare)
            self.error(
                "minimumHealthyPercent/maximumPercent",
                (minimum, maximum),
                _ecs(reason + where),
                _percent_fix(counts, minimum, maximum, spare, daemon),
            )
            return
        if desired == 0:
            self.note(
                "desiredCount",
                0,
                _ecs("desired count 0: there is no task to replace, nothing to roll"),
                "nothing to do; the configuration is checked for the counts autoscaling may reach",
            )
        if minimum == 100 and 0 < desired < SMALL_SERVICE:
            batch = _maximum_tasks(desired, maximum, spare) - desired
            self.warning(
                "minimumHealthyPercent",
                minimum,
                _policy(
                    f"100 with only {_tasks(desired)}: ECS replaces them {min(batch, desired)} at a time and "
                    "stops none until its replacement is healthy; a replacement that fails its health checks "
                    "stalls the rollout"
                ),
                f"accept it, or run at least {SMALL_SERVICE} tasks with minimumHealthyPercent 50 or more",
            )
        self.ec2_room(service, maximum, counts)
        self.wave_count(service, minimum, maximum, counts)

    def ec2_room(self, service: ServiceFacts, maximum: int, counts: Sequence[int]) -> None:
        if service.launch_type not in ("EC2", "EXTERNAL") or maximum < 200:
            return
        largest = max(counts)
        extra = min(largest * maximum // 100, 2 * largest) - largest
        if extra <= 0 or (service.spare_capacity is not None and service.spare_capacity >= extra):
            return
        self.warning(
            "maximumPercent",
            maximum,
            _policy(
                f"{maximum} on {service.launch_type} capacity needs room for {extra} extra tasks at once "
                f"({largest + extra} in all with {_tasks(largest)}); without it ECS waits for capacity"
            ),
            "make sure the cluster (or its capacity provider) has that room, or pass the cluster's spare "
            "capacity to see the rollout it allows",
        )

    def wave_count(self, service: ServiceFacts, minimum: int, maximum: int, counts: Sequence[int]) -> None:
        spare = service.spare_capacity
        candidates = {service.desired_count, max(counts)}
        worst = max(
            ((plan(c, minimum, maximum, spare).waves, c) for c in candidates if c > 0),
            default=(0, 0),
        )
        waves, count = worst
        if waves <= MANY_WAVES:
            return
        alternative = ""
        if maximum < 200 and self.service is not None and self.service.scheduling_strategy == "REPLICA":
            faster = plan(count, minimum, 200, spare).waves
            if faster < waves:
                alternative = f" (maximumPercent 200 would take {faster} wave{'' if faster == 1 else 's'})"
        self.warning(
            "maximumPercent",
            maximum,
            _policy(f"more than {MANY_WAVES} waves is slow: {waves} waves with {_tasks(count)}{alternative}"),
            "raise maximumPercent or lower minimumHealthyPercent for bigger batches",
        )

    # the other fields

    def strategy(self, requested: Mapping[str, Any]) -> str | None:
        value = requested.get("strategy", MISSING)
        if value is MISSING:
            return None
        strategy = self.choice("strategy", value, STRATEGIES)
        if strategy is None:
            return None
        self.normalized["strategy"] = strategy
        service = self.service
        if strategy in TRAFFIC_SHIFTING and service is not None:
            missing = []
            if not service.has_load_balancer:
                missing.append("load balancer")
            if not service.has_alternate_target_group:
                missing.append("alternate target group")
            if missing:
                self.error(
                    "strategy",
                    strategy,
                    _ecs(
                        f"{strategy} shifts traffic between two target groups; "
                        f"this service has no {' and no '.join(missing)}"
                    ),
                    "configure the service's load balancer with an alternate target group "
                    "(and listener rules), or use ROLLING",
                )
        return strategy

    def circuit_breaker(self, value: object, controller: str) -> None:
        prefix = "deploymentCircuitBreaker"
        if value is MISSING:
            return
        given = self.mapping(prefix, value, "a mapping with enable and rollback")
        if given is None:
            return
        self.unknown_keys(prefix, given, _BREAKER_KEYS)
        enable = self.boolean(f"{prefix}.enable", given.get("enable", MISSING))
        rollback = self.boolean(f"{prefix}.rollback", given.get("rollback", MISSING))
        self.boolean(f"{prefix}.resetOnHealthyTask", given.get("resetOnHealthyTask", MISSING), required=False)
        threshold = given.get("thresholdConfiguration", MISSING)
        if threshold is not MISSING:
            field = f"{prefix}.thresholdConfiguration"
            tc = self.mapping(field, threshold, "a mapping with type and value")
            if tc is not None:
                self.unknown_keys(field, tc, ("type", "value"))
                kind = tc.get("type", MISSING)
                if kind is MISSING:
                    self.error(
                        f"{field}.type",
                        kind,
                        _ecs("type is required"),
                        f"use one of {', '.join(THRESHOLD_TYPES)}",
                    )
                else:
                    self.choice(f"{field}.type", kind, THRESHOLD_TYPES)
                number = tc.get("value", MISSING)
                if number is MISSING:
                    self.error(
                        f"{field}.value",
                        number,
                        _ecs("value is required"),
                        "add value, e.g. 50 (the ECS default)",
                    )
                else:
                    self.integer(
                        f"{field}.value",
                        number,
                        1,
                        None,
                        _policy("the threshold value is 1 or more: below 1 every deployment would fail"),
                    )
        if enable is False and rollback is True:
            self.warning(
                f"{prefix}.rollback",
                rollback,
                _ecs("rollback only acts when the circuit breaker is enabled"),
                "set enable: true, or rollback: false",
            )
        if enable is not None and rollback is not None:
            self.normalized[prefix] = dict(given)
        if enable and rollback is not None and controller == "ECS":
            self.note(
                prefix,
                {"enable": enable, "rollback": rollback},
                _ecs("the circuit breaker never trips once the deployment has one task running"),
            )

    def alarms(self, value: object) -> None:
        prefix = "alarms"
        if value is MISSING:
            return
        given = self.mapping(prefix, value, "a mapping with alarmNames, enable and rollback")
        if given is None:
            return
        self.unknown_keys(prefix, given, _ALARM_KEYS)
        enable = self.boolean(f"{prefix}.enable", given.get("enable", MISSING))
        rollback = self.boolean(f"{prefix}.rollback", given.get("rollback", MISSING))
        names = given.get("alarmNames", MISSING)
        names_ok = False
        if names is MISSING:
            self.error(
                f"{prefix}.alarmNames",
                names,
                _ecs("alarmNames is required"),
                "list the CloudWatch alarm names, or [] with enable: false",
            )
        elif not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            self.error(
                f"{prefix}.alarmNames",
                names,
                _ecs("alarmNames is a list of CloudWatch alarm names"),
                "write alarmNames as a list of non-empty strings",
            )
        elif enable and not names:
            self.error(
                f"{prefix}.alarmNames",
                names,
                _ecs("an enabled alarm check needs one or more CloudWatch alarm names"),
                "name at least one alarm, or set enable: false",
            )
        else:
            names_ok = True
        if enable is False and rollback is True:
            self.warning(
                f"{prefix}.rollback",
                rollback,
                _ecs("rollback only acts when alarms are enabled"),
                "set enable: true, or rollback: false",
            )
        if enable is not None and rollback is not None and names_ok:
            self.normalized[prefix] = dict(given)

    def bake_time(self, value: object, strategy: str | None) -> None:
        field = "bakeTimeInMinutes"
        if value is MISSING:
            if strategy == "BLUE_GREEN":
                self.error(
                    field,
                    value,
                    _ecs("bakeTimeInMinutes is required with the BLUE_GREEN strategy"),
                    "add bakeTimeInMinutes, e.g. 5 (0 to 1440)",
                )
            return
        minutes = self.integer(
            field, value, 0, MAX_BAKE_MINUTES, _ecs("bakeTimeInMinutes is 0 to 1440 minutes (24 hours)")
        )
        if minutes is not None:
            self.normalized[field] = minutes

    def linear(self, value: object, strategy: str | None) -> None:
        self.shifting(_LINEAR, value, strategy)

    def canary(self, value: object, strategy: str | None) -> None:
        self.shifting(_CANARY, value, strategy)

    def shifting(self, spec: _ShiftSpec, value: object, strategy: str | None) -> None:
        """linearConfiguration / canaryConfiguration: one rule, two tables (`_LINEAR`, `_CANARY`)."""
        prefix, percent_key, bake_key = spec.field, spec.percent_key, spec.bake_key
        if value is MISSING:
            if strategy == spec.strategy:
                self.normalized[prefix] = {percent_key: spec.default_percent, bake_key: spec.default_bake}
                self.note(
                    prefix,
                    value,
                    _ecs(
                        f"not given: {spec.strategy} uses {percent_key} {spec.default_percent} "
                        f"and {bake_key} {spec.default_bake}"
                    ),
                )
            return
        if strategy != spec.strategy:
            self.error(
                prefix,
                value,
                _ecs(f"{prefix} is only valid with the {spec.strategy} strategy"),
                f"set strategy: {spec.strategy}, or remove {prefix}",
            )
        given = self.mapping(prefix, value, f"a mapping with {percent_key} and {bake_key}")
        if given is None:
            return
        self.unknown_keys(prefix, given, (percent_key, bake_key))
        percent = given.get(percent_key, MISSING)
        bake = given.get(bake_key, MISSING)
        self.normalized[prefix] = {
            percent_key: spec.default_percent
            if percent is MISSING
            else self.tenths(f"{prefix}.{percent_key}", percent, spec.lowest_tenths, 1000),
            bake_key: spec.default_bake
            if bake is MISSING
            else self.integer(
                f"{prefix}.{bake_key}", bake, 0, MAX_BAKE_MINUTES, _ecs(f"{bake_key} is 0 to 1440 minutes (24 hours)")
            ),
        }

    def hooks(self, value: object) -> None:
        prefix = "lifecycleHooks"
        if value is MISSING:
            return
        if not isinstance(value, list):
            self.error(prefix, value, _ecs("lifecycleHooks is a list of hooks"), "write lifecycleHooks as a list")
            return
        for index, hook in enumerate(value):
            self.hook(f"{prefix}[{index}]", hook)
        self.normalized[prefix] = list(value)

    def hook(self, prefix: str, value: object) -> None:
        given = self.mapping(
            prefix,
            value,
            "a mapping with targetType, lifecycleStages and (for AWS_LAMBDA) hookTargetArn and roleArn",
        )
        if given is None:
            return
        self.unknown_keys(prefix, given, _HOOK_KEYS)
        raw_type = given.get("targetType", MISSING)
        target_type = (
            "AWS_LAMBDA" if raw_type is MISSING else self.choice(f"{prefix}.targetType", raw_type, HOOK_TARGET_TYPES)
        )
        if target_type == "AWS_LAMBDA":
            self.arn(
                f"{prefix}.hookTargetArn",
                given.get("hookTargetArn", MISSING),
                _ecs("an AWS_LAMBDA hook (the default targetType) needs hookTargetArn, the Lambda function's ARN"),
            )
            self.arn(
                f"{prefix}.roleArn",
                given.get("roleArn", MISSING),
                _ecs("an AWS_LAMBDA hook needs roleArn, the IAM role ECS assumes to invoke the function"),
            )
        elif target_type == "PAUSE":
            for key in ("hookTargetArn", "roleArn"):
                if key in given:
                    self.error(
                        f"{prefix}.{key}",
                        given[key],
                        _ecs(f"{key} is not applicable to PAUSE hooks (they wait for ContinueServiceDeployment)"),
                        f"remove {key}, or use targetType AWS_LAMBDA",
                    )
            if "hookDetails" in given:
                self.warning(
                    f"{prefix}.hookDetails",
                    given["hookDetails"],
                    _ecs("hookDetails is not used for PAUSE hooks"),
                    "remove hookDetails",
                )
        stages = given.get("lifecycleStages", MISSING)
        field = f"{prefix}.lifecycleStages"
        if stages is MISSING or stages == []:
            self.error(
                field,
                stages,
                _ecs("lifecycleStages is required: one or more stages"),
                f"list stages from {', '.join(HOOK_STAGES)}",
            )
        elif not isinstance(stages, list):
            self.error(field, stages, _ecs("lifecycleStages is a list of stages"), "write lifecycleStages as a list")
        else:
            for index, stage in enumerate(stages):
                name = self.choice(f"{field}[{index}]", stage, HOOK_STAGES)
                if name in PAUSE_FORBIDDEN_STAGES and target_type == "PAUSE":
                    self.error(
                        f"{field}[{index}]",
                        stage,
                        _ecs("PAUSE hooks cannot be configured at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT"),
                        "use an AWS_LAMBDA hook at this stage, or pause at "
                        "POST_TEST_TRAFFIC_SHIFT / PRE_PRODUCTION_TRAFFIC_SHIFT",
                    )
        timeout = given.get("timeoutConfiguration", MISSING)
        if timeout is not MISSING:
            tfield = f"{prefix}.timeoutConfiguration"
            tc = self.mapping(tfield, timeout, "a mapping with timeoutInMinutes and action")
            if tc is not None:
                self.unknown_keys(tfield, tc, _TIMEOUT_KEYS)
                if "timeoutInMinutes" in tc:
                    self.integer(
                        f"{tfield}.timeoutInMinutes",
                        tc["timeoutInMinutes"],
                        1,
                        MAX_HOOK_TIMEOUT_MINUTES,
                        _ecs("timeoutInMinutes is 1 to 20160 minutes (default 1440)"),
                    )
                if "action" in tc:
                    self.choice(f"{tfield}.action", tc["action"], HOOK_TIMEOUT_ACTIONS)

    def early_success(self, value: object, strategy: str | None, minimum: int | None) -> None:
        prefix = "earlySuccessCriteria"
        if value is MISSING:
            return
        if strategy not in (None, "ROLLING"):
            self.error(
                prefix,
                value,
                _ecs("early success criteria apply to rolling deployments"),
                "remove earlySuccessCriteria, or use strategy ROLLING",
            )
        given = self.mapping(prefix, value, "a mapping with enable, healthyPercent and sourceServiceRevisionCleanup")
        if given is None:
            return
        self.unknown_keys(prefix, given, _EARLY_KEYS)
        enable = self.boolean(f"{prefix}.enable", given.get("enable", MISSING))
        healthy = given.get("healthyPercent", MISSING)
        cleanup = given.get("sourceServiceRevisionCleanup", MISSING)
        if enable:
            for key, current in (("healthyPercent", healthy), ("sourceServiceRevisionCleanup", cleanup)):
                if current is MISSING:
                    self.error(
                        f"{prefix}.{key}",
                        current,
                        _ecs(f"{key} is required when early success criteria are enabled"),
                        f"add {key}",
                    )
        if healthy is not MISSING:
            number = self.integer(f"{prefix}.healthyPercent", healthy, 0, 100, _ecs("healthyPercent is 0 to 100"))
            if number is not None and minimum is not None and number < minimum:
                self.error(
                    f"{prefix}.healthyPercent",
                    healthy,
                    _ecs(f"healthyPercent must be at least minimumHealthyPercent ({minimum})"),
                    f"use {minimum} or more",
                )
        if cleanup is not MISSING:
            self.choice(f"{prefix}.sourceServiceRevisionCleanup", cleanup, CLEANUP_MODES)
        self.normalized[prefix] = dict(given)

    def controller_rules(self, requested: Mapping[str, Any], controller: str) -> None:
        """CODE_DEPLOY and EXTERNAL services do not roll tasks; see the DeploymentConfiguration docs."""
        if controller == "ECS" or self.service is None:
            return
        launch = self.service.launch_type
        for key in ("minimumHealthyPercent", "maximumPercent"):
            if key not in requested:
                continue
            if launch == "EC2":
                self.error(
                    key,
                    requested[key],
                    _ecs(f"a custom {key} cannot be set for a {controller} service with EC2 tasks"),
                    f"remove {key}",
                )
            else:
                self.warning(
                    key,
                    requested[key],
                    _ecs(f"{key} is not used by a {controller} service on {launch}"),
                    f"remove {key}",
                )
        if "deploymentCircuitBreaker" in requested:
            self.error(
                "deploymentCircuitBreaker",
                requested["deploymentCircuitBreaker"],
                _ecs(
                    "the deployment circuit breaker can only be used with the rolling update (ECS) "
                    "deployment controller"
                ),
                "remove deploymentCircuitBreaker, or move the service to the ECS deployment controller",
            )
        if "strategy" in requested:
            self.error(
                "strategy",
                requested["strategy"],
                _ecs("deployment strategies belong to the ECS deployment controller"),
                "remove strategy, or move the service to the ECS deployment controller",
            )


def _ordered(normalized: Mapping[str, Any]) -> dict[str, Any]:
    """The API's field order, so a printed configuration reads minimum, maximum, then the rest."""
    return {key: normalized[key] for key in _TOP_KEYS if key in normalized}


def validate(requested: Mapping[str, Any], service: ServiceFacts | None = None) -> Validation:
    """Check a `deploymentConfiguration` (ECS API shape) before any AWS call.

    Without `service`, only the static checks run (types, ranges, which fields belong to which
    strategy). With `service`, the count-dependent checks run too: every count in
    `desired_range` and `desired_count` must be able to start or stop a task.
    """
    checker = _Validate(service)
    checker.run(requested)
    findings = checker.findings
    errors = tuple(f for f in findings if f.severity == "error")
    return Validation(
        errors=errors,
        warnings=tuple(f for f in findings if f.severity == "warning"),
        notes=tuple(f for f in findings if f.severity == "note"),
        deployment_configuration={} if errors else _ordered(checker.normalized),
    )


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
