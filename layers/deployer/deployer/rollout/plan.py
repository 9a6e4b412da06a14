"""The rolling update a ROLLING `deploymentConfiguration` allows, step by step (`plan`), and
whether ECS could finish it at all (`is_stuck`).

The arithmetic is ECS's own (Amazon ECS Developer Guide, "Deploy Amazon ECS services by replacing
tasks", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html):
`minimumHealthyPercent` keeps at least ceil(desired * min / 100) tasks RUNNING and
`maximumPercent` allows at most floor(desired * max / 100) tasks RUNNING or PENDING. ECS accepts a
configuration that can neither start nor stop a task and then hangs ("unable to stop or start tasks
during a deployment because of the service deployment configuration"), so `validate` refuses it.
"""

from __future__ import annotations

from deployer.rollout.model import MAX_TASKS_PER_SERVICE, _Record, _tasks

__all__ = ["Plan", "Step", "StuckRollout", "is_stuck", "plan"]


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
