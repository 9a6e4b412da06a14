"""What the rollout modules share: ECS's limits, defaults and enums for a `deploymentConfiguration`
(the botocore ECS model shipped with this project was read for shapes, enums and documented ranges),
the facts about a service that a check needs (`ServiceFacts`), a `Finding`, and `_Record`, the
immutable record every result here is made of.

Every rule says whose it is: "ECS: ..." (`_ecs`) for what the ECS API or its documentation states,
"deployer policy: ..." (`_policy`) for this tool's own choices.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping

# `deployer plan` imports this module, and starts in about twice the time of a bare `python -c
# pass` (BENCHMARKS.md): nothing here may import `typing` or `dataclasses` at run time (the latter
# imports `inspect`, then generates and compiles every method of every class as it is defined), and
# `json`, `difflib` and `decimal` are imported where they are used. Mypy reads any name
# TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from decimal import Decimal
    from typing import Any, ClassVar, Final, Literal, Self

    Severity = Literal["error", "warning", "note"]

__all__ = [
    "DEFAULT_MAXIMUM_PERCENT",
    "DEFAULT_MINIMUM_HEALTHY_PERCENT",
    "MAX_TASKS_PER_SERVICE",
    "MISSING",
    "Finding",
    "ServiceFacts",
]


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
MAX_BAKE_MINUTES: Final = 1440
MAX_HOOK_TIMEOUT_MINUTES: Final = 20160


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


def _tasks(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"


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
