"""Drawing a rollout plan as text: shared by `deployer plan`, the approval page and Slack.
Standard library and `deployer.rolling` only (the CLI must start fast)."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TextIO

from deployer.rolling import Plan, Step

# Above this many task slots a row shows counts instead of one box per task.
MAX_BOXES = 40
# Plans with more steps than this show the first and last few and elide the middle.
MAX_STEPS_SHOWN = 24
STEPS_KEPT = 10

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
    """The rollout as the DESIGN's pictures draw it: a row of task boxes per step, the running
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
