"""Drawing a rollout plan as text: shared by `deployer plan`, the approval page and Slack.
Standard library and `deployer.rollout` only (the CLI must start fast)."""

from __future__ import annotations

import io

TYPE_CHECKING = False  # `deployer plan` starts without `typing` (see deployer.rollout)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import TextIO

    from deployer.rollout.plan import Plan, Step
    from deployer.rollout.traffic import TrafficPlan, TrafficStep

# Above this many task slots a row shows counts instead of one box per task.
MAX_BOXES = 40
# Plans with more steps than this show the first and last few and elide the middle.
MAX_STEPS_SHOWN = 24
STEPS_KEPT = 10
# A traffic bar has one mark per 5% of production traffic.
TRAFFIC_MARKS = 20

UNICODE = {"old": "■", "new": "□", "free": "·", "dash": "—", "ellipsis": "…"}
ASCII = {"old": "#", "new": "o", "free": ".", "dash": "-", "ellipsis": "..."}


def plan_text(rollout: Plan, minimum_healthy_percent: int, maximum_percent: int) -> str:
    """`draw_plan` into a string (Unicode boxes)."""
    out = io.StringIO()
    draw_plan(out, rollout, minimum_healthy_percent, maximum_percent)
    return out.getvalue()


def _percent(count: int, desired: int) -> str:
    if desired == 0:
        return "-"
    if (100 * count) % desired == 0:
        return f"{100 * count // desired}%"
    return f"{100 * count / desired:.1f}%"


def tasks_text(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"


def _row(step: Step, slots: int, glyph: Mapping[str, str]) -> str:
    if slots <= MAX_BOXES:
        boxes = [glyph["old"]] * step.old + [glyph["new"]] * step.new
        boxes += [glyph["free"]] * (slots - len(boxes))
        return "[" + " ".join(boxes) + "]"
    return f"[{step.old} old, {step.new} new]"


def draw_plan(
    out: TextIO, rollout: Plan, minimum_healthy_percent: int, maximum_percent: int, glyph: Mapping[str, str] = UNICODE
) -> None:
    """The rollout as docs/rolling.md draws it: a row of task boxes per step, the running
    count and the share of desired, then a one-line summary."""
    desired = rollout.desired
    ceiling = desired * maximum_percent // 100
    limits = (
        f"ECS keeps at least {tasks_text(rollout.minimum_running)} RUNNING "
        f"(ceil({desired} × {minimum_healthy_percent} / 100)) "
        f"and allows at most {tasks_text(ceiling)} RUNNING or PENDING (floor({desired} × {maximum_percent} / 100))"
    )
    if rollout.maximum_tasks < ceiling:
        limits += f"; the cluster's room limits that to {rollout.maximum_tasks}"
    print(limits + ".", file=out)
    print("", file=out)
    if rollout.maximum_tasks <= MAX_BOXES:
        print(
            f"  {glyph['old']} old task   {glyph['new']} new task   {glyph['free']} room up to the maximum",
            file=out,
        )
    else:
        print(f"  [old, new] task counts ({rollout.maximum_tasks} slots: too many to draw)", file=out)
    rows = [(index, step, _row(step, rollout.maximum_tasks, glyph)) for index, step in enumerate(rollout.steps)]
    width = max(len("tasks"), *(len(row) for _, _, row in rows))
    print(f"  {'step':>4}  {'tasks':<{width}}  {'action':<10}  {'running':>7}  {'of desired':>10}", file=out)
    shown: Sequence[tuple[int, Step, str] | None] = rows
    if len(rows) > MAX_STEPS_SHOWN:
        shown = [*rows[:STEPS_KEPT], None, *rows[-STEPS_KEPT:]]
    for item in shown:
        if item is None:
            hidden = len(rows) - 2 * STEPS_KEPT
            print(f"  {'':>4}  {glyph['ellipsis']} {hidden} more steps {glyph['ellipsis']}", file=out)
            continue
        index, step, row = item
        action = f"{step.action} {step.count}" if step.action else glyph["dash"]
        total = step.old + step.new
        print(
            f"  {index:>4}  {row:<{width}}  {action:<10}  {total:>7}  {_percent(total, desired):>10}",
            file=out,
        )
    print("", file=out)
    print(f"Summary: {summary(rollout)}.", file=out)


def summary(rollout: Plan) -> str:
    """One line: waves, peak and lowest running count (for Slack and the approval page too)."""
    desired = rollout.desired
    if desired == 0:
        return "nothing to roll (desired count 0)"
    waves = f"{rollout.waves} wave" + ("" if rollout.waves == 1 else "s")
    outage = "an OUTAGE (no task running at one point)" if rollout.outage else "no outage"
    return (
        f"{waves}; peak {tasks_text(rollout.peak_tasks)} ({_percent(rollout.peak_tasks, desired)} of "
        f"desired); lowest {rollout.min_running_tasks} running "
        f"({_percent(rollout.min_running_tasks, desired)} of desired); {outage}"
    )


# --- BLUE_GREEN, LINEAR, CANARY ------------------------------------------------------------------


def _traffic_percent(tenths: int) -> str:
    return f"{tenths // 10}%" if tenths % 10 == 0 else f"{tenths / 10}%"


def _traffic_bar(tenths: int, glyph: Mapping[str, str]) -> str:
    """Green's share of production traffic, rounded to the nearest mark; a share that is neither 0%
    nor 100% never looks like one of them."""
    marks = (tenths * TRAFFIC_MARKS + 500) // 1000
    if 0 < tenths < 1000:
        marks = min(max(marks, 1), TRAFFIC_MARKS - 1)
    return "[" + glyph["new"] * marks + glyph["old"] * (TRAFFIC_MARKS - marks) + "]"


def _minutes(count: int) -> str:
    return f"{count} min"


def _wait(step: TrafficStep, glyph: Mapping[str, str]) -> str:
    if step.kind == "approval":
        return "approval"
    if step.kind == "hook":
        return "hook"
    return _minutes(step.bake_minutes) if step.bake_minutes else glyph["dash"]


def traffic_text(rollout: TrafficPlan) -> str:
    """One sentence: what ECS does with production traffic under this strategy."""
    if rollout.bake_time_given:
        bake = f"bakes {_minutes(rollout.bake_minutes)} with both revisions running before it stops blue"
    else:
        bake = "bakes for bakeTimeInMinutes (not given) before it stops blue"
    start = (
        "ECS starts green (the new revision) at full size beside blue (the running one), sends it test "
        "traffic if a test listener rule is configured, then"
    )
    if rollout.strategy == "BLUE_GREEN":
        return f"{start} moves all production traffic to green at once and {bake}."
    if rollout.strategy == "LINEAR":
        step = _traffic_percent(round((rollout.step_percent or 0) * 10))
        return (
            f"{start} shifts production traffic in equal steps of {step} (the last step takes the remainder), "
            f"waits {_minutes(rollout.step_bake_minutes)} after every step but the last, and {bake}."
        )
    canary = _traffic_percent(round((rollout.step_percent or 0) * 10))
    if rollout.shifts == 1:
        return f"{start} moves {canary} of production traffic in the canary step and {bake}."
    return (
        f"{start} moves {canary} of production traffic to green, waits {_minutes(rollout.step_bake_minutes)}, "
        f"moves the rest at once, and {bake}."
    )


def capacity_text(rollout: TrafficPlan) -> str:
    """Why the peak is twice the desired count, and what minimumHealthyPercent/maximumPercent do not do."""
    desired = rollout.desired
    return (
        f"Capacity: green runs all {tasks_text(desired)} beside blue's {desired} from scale-up until blue is "
        f"cleaned up: peak {tasks_text(rollout.peak_tasks)} ({_percent(rollout.peak_tasks, desired)} of desired).\n"
        "minimumHealthyPercent and maximumPercent do not shape this plan: ECS documents them for rolling "
        "updates, and its SCALE_UP stage brings green to 100% of the desired count while blue keeps all its tasks."
    )


def duration_text(rollout: TrafficPlan) -> str:
    """'28 min (3 step bakes × 6 min + bake 10 min) + the time to approve (1 pause)': the waits ECS
    makes; task start-up and health checks come on top."""
    parts: list[str] = []
    shift_bakes = [s.bake_minutes for s in rollout.steps if s.kind == "shift" and s.bake_minutes]
    if shift_bakes and rollout.strategy == "LINEAR":
        count = len(shift_bakes)
        parts.append(f"{count} step bake{'' if count == 1 else 's'} × {_minutes(shift_bakes[0])}")
    elif shift_bakes:
        parts.append(f"canary bake {_minutes(shift_bakes[0])}")
    if rollout.bake_time_given:
        parts.append(f"bake {_minutes(rollout.bake_minutes)}")
    text = _minutes(rollout.minimum_minutes)
    if parts:
        text += f" ({' + '.join(parts)})"
    if not rollout.bake_time_given:
        text += (
            " + the bake time (bakeTimeInMinutes not given: the ECS API model states no default "
            f"for {rollout.strategy})"
        )
    if rollout.approvals:
        text += f" + the time to approve ({rollout.approvals} pause{'' if rollout.approvals == 1 else 's'})"
    return text


def traffic_summary(rollout: TrafficPlan) -> str:
    """One line for Slack and the approval page: shifts, peak and minimum duration."""
    shifts = f"{rollout.shifts} traffic shift" + ("" if rollout.shifts == 1 else "s")
    return (
        f"{rollout.strategy}: {shifts}; peak {tasks_text(rollout.peak_tasks)} "
        f"({_percent(rollout.peak_tasks, rollout.desired)} of desired); "
        f"minimum duration {duration_text(rollout)}"
    )


def draw_traffic_plan(out: TextIO, rollout: TrafficPlan, glyph: Mapping[str, str] = UNICODE) -> None:
    """The deployment's stages, one row each: production traffic on green as a bar and a share, the
    minutes ECS waits after the stage, and what happens; then the peak and the minimum duration."""
    print(traffic_text(rollout), file=out)
    print(capacity_text(rollout), file=out)
    print("", file=out)
    print(
        f"  {glyph['new']} production traffic on green   {glyph['old']} on blue   (one mark per 5%)",
        file=out,
    )
    width = max(len("stage"), *(len(step.label) for step in rollout.steps))
    bar_width = TRAFFIC_MARKS + 2
    print(
        f"  {'step':>4}  {'stage':<{width}}  {'production traffic':<{bar_width + 7}}  {'wait':>8}  note",
        file=out,
    )
    rows: list[tuple[int, TrafficStep] | None] = [*enumerate(rollout.steps, start=1)]
    if len(rows) > MAX_STEPS_SHOWN:
        rows = [*rows[:STEPS_KEPT], None, *rows[-STEPS_KEPT:]]
    for item in rows:
        if item is None:
            hidden = len(rollout.steps) - 2 * STEPS_KEPT
            print(f"  {'':>4}  {glyph['ellipsis']} {hidden} more steps {glyph['ellipsis']}", file=out)
            continue
        index, step = item
        traffic = f"{_traffic_bar(step.traffic_tenths, glyph)} {_traffic_percent(step.traffic_tenths):>6}"
        line = f"  {index:>4}  {step.label:<{width}}  {traffic:<{bar_width + 7}}  {_wait(step, glyph):>8}  {step.note}"
        print(line.rstrip(), file=out)
    print("", file=out)
    shifts = f"{rollout.shifts} traffic shift" + ("" if rollout.shifts == 1 else "s")
    print(
        f"Summary: {shifts}; peak {tasks_text(rollout.peak_tasks)} "
        f"({_percent(rollout.peak_tasks, rollout.desired)} of desired); "
        "starting green and its health checks add to the time.",
        file=out,
    )
    print(f"Minimum duration: {duration_text(rollout)}.", file=out)
