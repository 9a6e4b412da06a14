"""Every rule of a `deploymentConfiguration` (`validate`): ECS's own (shapes, enums, ranges, the
combinations ECS refuses or accepts and then never finishes) and the deployer's policy (warnings
about slow or risky rollouts). The Lambda functions call `validate` before any AWS call;
`deployer plan`, `deployer validate` and the pipelines loader apply the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from deployer.rollout.model import (
    DEFAULT_MAXIMUM_PERCENT,
    DEFAULT_MINIMUM_HEALTHY_PERCENT,
    HOOK_STAGES,
    HOOK_TARGET_TYPES,
    HOOK_TIMEOUT_ACTIONS,
    MAX_BAKE_MINUTES,
    MAX_HOOK_TIMEOUT_MINUTES,
    MAX_TASKS_PER_SERVICE,
    MISSING,
    PAUSE_FORBIDDEN_STAGES,
    STRATEGIES,
    TRAFFIC_SHIFTING,
    Finding,
    ServiceFacts,
    _decimal,
    _ecs,
    _is_decimal,
    _policy,
    _Record,
    _tasks,
    _tenths,
    _whole,
)
from deployer.rollout.plan import _maximum_tasks, _minimum_running, _stuck, _stuck_reason, plan

# `deployer plan` imports this module, and starts in about twice the time of a bare `python -c
# pass` (BENCHMARKS.md): nothing here may import `typing` or `dataclasses` at run time (the latter
# imports `inspect`, then generates and compiles every method of every class as it is defined), and
# `json`, `difflib` and `decimal` are imported where they are used. Mypy reads any name
# TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

__all__ = ["MANY_WAVES", "Validation", "validate"]

# deployer policy: a rollout of more waves than this gets a warning. Each wave waits for new
# tasks to start and pass health checks, so ten waves already means a slow deployment.
MANY_WAVES: Final = 10

# deployer policy: small services (fewer tasks than this) at minimumHealthyPercent 100 get a warning.
SMALL_SERVICE: Final = 3
THRESHOLD_TYPES: Final = ("COUNT", "BOUNDED_PERCENT", "UNBOUNDED_PERCENT")
CLEANUP_MODES: Final = ("BLOCKING", "DEFERRED")

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
