"""`deployer plan`: validate a rolling configuration for a desired count and draw the rollout.

Imports only the standard library and `deployer.rolling`, so it starts fast and never loads boto3.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from deployer.cli import UsageError
from deployer.rolling import Finding, Plan, ServiceFacts, Step, Validation, plan, validate

# Above this many task slots a row shows counts instead of one box per task.
MAX_BOXES = 40
# Plans with more steps than this show the first and last few and elide the middle.
MAX_STEPS_SHOWN = 24
STEPS_KEPT = 10

_UNICODE_GLYPHS = {"old": "■", "new": "□", "free": "·", "dash": "—", "ellipsis": "…"}
_ASCII_GLYPHS = {"old": "#", "new": "o", "free": ".", "dash": "-", "ellipsis": "..."}

# Up to 18 digits: big enough to reach every check in `validate` (which refuses counts above ECS's
# quota), small enough that no arithmetic on it is slow.
_ASCII_FALLBACK = str.maketrans({"×": "x", "—": "-", "…": "...", "■": "#", "□": "o", "·": "."})

_DIGITS = re.compile(r"[0-9]{1,18}")


def _whole_number(text: str) -> int:
    """argparse type: a whole number 0 or more, refused in one clear line otherwise."""
    value = text.strip()
    if _DIGITS.fullmatch(value):
        return int(value)
    if value.startswith("-") and _DIGITS.fullmatch(value[1:]):
        raise argparse.ArgumentTypeError(f"{text!r} is negative; use 0 or more")
    if re.fullmatch(r"[0-9]+\.0*", value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; use {value.split('.')[0]}")
    if re.fullmatch(r"[0-9]{19,}", value):
        raise argparse.ArgumentTypeError(f"{text!r} is too large")
    raise argparse.ArgumentTypeError(f"{text!r} is not a whole number")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--desired", type=_whole_number, required=True, metavar="N", help="desired task count")
    parser.add_argument("--min", type=_whole_number, required=True, metavar="PERCENT", help="minimumHealthyPercent")
    parser.add_argument("--max", type=_whole_number, required=True, metavar="PERCENT", help="maximumPercent")
    parser.add_argument(
        "--spare-capacity",
        type=_whole_number,
        metavar="N",
        help="extra tasks the cluster has room for (default: unlimited, as on Fargate)",
    )
    parser.add_argument(
        "--launch-type",
        type=str.upper,
        choices=("FARGATE", "EC2", "EXTERNAL"),
        help="capacity the tasks run on (default FARGATE, or EC2 with --daemon)",
    )
    parser.add_argument("--daemon", action="store_true", help="the service uses the DAEMON scheduling strategy")
    parser.add_argument(
        "--min-tasks", type=_whole_number, metavar="A", help="autoscaling minimum capacity (with --max-tasks)"
    )
    parser.add_argument(
        "--max-tasks", type=_whole_number, metavar="B", help="autoscaling maximum capacity (with --min-tasks)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the drawing")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if (args.min_tasks is None) != (args.max_tasks is None):
        raise UsageError("--min-tasks and --max-tasks go together (the autoscaling range)")
    desired_range = None
    if args.min_tasks is not None:
        if args.min_tasks > args.max_tasks:
            raise UsageError(f"--min-tasks {args.min_tasks} is above --max-tasks {args.max_tasks}")
        desired_range = (args.min_tasks, args.max_tasks)
    facts = ServiceFacts(
        desired_count=args.desired,
        scheduling_strategy="DAEMON" if args.daemon else "REPLICA",
        launch_type=args.launch_type or ("EC2" if args.daemon else "FARGATE"),
        desired_range=desired_range,
        spare_capacity=args.spare_capacity,
    )
    requested = {"minimumHealthyPercent": args.min, "maximumPercent": args.max}
    validation = validate(requested, facts)
    rollout = plan(args.desired, args.min, args.max, args.spare_capacity) if validation.valid else None
    unicode = _glyphs(sys.stdout) is _UNICODE_GLYPHS
    if args.json:
        document = _as_json(args, facts, validation, rollout)
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=not unicode) + "\n")
    else:
        drawing = io.StringIO()
        _draw(drawing, args, facts, validation, rollout, glyph=_UNICODE_GLYPHS if unicode else _ASCII_GLYPHS)
        text = drawing.getvalue()
        sys.stdout.write(text if unicode else _to_ascii(text))
    return 0 if validation.valid else 1


def _to_ascii(text: str) -> str:
    """For terminals that cannot show the drawing's characters (e.g. PYTHONIOENCODING=ascii)."""
    return text.translate(_ASCII_FALLBACK).encode("ascii", "replace").decode("ascii")


def _as_json(
    args: argparse.Namespace, facts: ServiceFacts, validation: Validation, rollout: Plan | None
) -> dict[str, Any]:
    steps = rollout.steps if rollout is not None else ()
    return {
        "valid": validation.valid,
        "desired": args.desired,
        "minimum_healthy_percent": args.min,
        "maximum_percent": args.max,
        "spare_capacity": args.spare_capacity,
        "scheduling_strategy": "DAEMON" if args.daemon else "REPLICA",
        "launch_type": facts.launch_type,
        "errors": [f.to_dict() for f in validation.errors],
        "warnings": [f.to_dict() for f in validation.warnings],
        "notes": [f.to_dict() for f in validation.notes],
        "deployment_configuration": validation.deployment_configuration,
        "minimum_running": rollout.minimum_running if rollout else None,
        "maximum_tasks": rollout.maximum_tasks if rollout else None,
        "steps": [{"old": s.old, "new": s.new} for s in steps],
        "transitions": [{"action": s.action, "count": s.count} for s in steps[1:]],
        "waves": rollout.waves if rollout else None,
        "peak_tasks": rollout.peak_tasks if rollout else None,
        "min_running_tasks": rollout.min_running_tasks if rollout else None,
        "outage": rollout.outage if rollout else None,
    }


def _glyphs(stream: TextIO) -> dict[str, str]:
    encoding = getattr(stream, "encoding", None) or "ascii"
    try:
        "".join(_UNICODE_GLYPHS.values()).encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return _ASCII_GLYPHS
    return _UNICODE_GLYPHS


def _percent(count: int, desired: int) -> str:
    if desired == 0:
        return "-"
    if (100 * count) % desired == 0:
        return f"{100 * count // desired}%"
    return f"{100 * count / desired:.1f}%"


def _tasks(count: int) -> str:
    return f"{count} task" if count == 1 else f"{count} tasks"


def _row(step: Step, slots: int, glyph: dict[str, str]) -> str:
    if slots <= MAX_BOXES:
        boxes = [glyph["old"]] * step.old + [glyph["new"]] * step.new
        boxes += [glyph["free"]] * (slots - len(boxes))
        return "[" + " ".join(boxes) + "]"
    return f"[{step.old} old, {step.new} new]"


def _draw(
    out: TextIO,
    args: argparse.Namespace,
    facts: ServiceFacts,
    validation: Validation,
    rollout: Plan | None,
    *,
    glyph: dict[str, str],
) -> None:
    scheduling = facts.scheduling_strategy
    header = (
        f"Rolling update of {_tasks(args.desired)} ({scheduling} on {facts.launch_type}): "
        f"minimumHealthyPercent {args.min}, maximumPercent {args.max}"
    )
    if args.spare_capacity is not None:
        header += f", cluster room for {args.spare_capacity} more"
    if facts.desired_range is not None:
        header += f", autoscaling {facts.desired_range[0]}..{facts.desired_range[1]}"
    print(header, file=out)
    if rollout is None:
        print("Refused: this configuration cannot be rolled out as asked.", file=out)
        _findings(out, "Errors", validation.errors)
    else:
        _draw_plan(out, args, rollout, glyph)
    _findings(out, "Warnings", validation.warnings)
    _findings(out, "Notes", validation.notes)


def _draw_plan(out: TextIO, args: argparse.Namespace, rollout: Plan, glyph: dict[str, str]) -> None:
    desired = rollout.desired
    ceiling = desired * args.max // 100
    limits = (
        f"ECS keeps at least {_tasks(rollout.minimum_running)} RUNNING (ceil({desired} × {args.min} / 100)) "
        f"and allows at most {_tasks(ceiling)} RUNNING or PENDING (floor({desired} × {args.max} / 100))"
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
    if desired == 0:
        print("Summary: nothing to roll (desired count 0).", file=out)
        return
    waves = f"{rollout.waves} wave" + ("" if rollout.waves == 1 else "s")
    outage = "an OUTAGE (no task running at one point)" if rollout.outage else "no outage"
    print(
        f"Summary: {waves}; peak {_tasks(rollout.peak_tasks)} ({_percent(rollout.peak_tasks, desired)} of "
        f"desired); lowest {rollout.min_running_tasks} running "
        f"({_percent(rollout.min_running_tasks, desired)} of desired); {outage}.",
        file=out,
    )


def _findings(out: TextIO, title: str, findings: Sequence[Finding]) -> None:
    if not findings:
        return
    print(f"{title}:", file=out)
    for finding in findings:
        print(f"  - {finding.message}", file=out)
