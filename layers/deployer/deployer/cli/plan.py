"""`deployer plan`: validate a rolling configuration for a desired count and draw the rollout.

Imports only the standard library and `deployer.rolling`, so it starts fast and never loads boto3.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from deployer.cli import UsageError
from deployer.render import ASCII, UNICODE, draw_plan, tasks_text
from deployer.rolling import Finding, Plan, ServiceFacts, Validation, plan, validate

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
    unicode = _glyphs(sys.stdout) is UNICODE
    if args.json:
        document = _as_json(args, facts, validation, rollout)
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=not unicode) + "\n")
    else:
        drawing = io.StringIO()
        _draw(drawing, args, facts, validation, rollout, glyph=UNICODE if unicode else ASCII)
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
        "".join(UNICODE.values()).encode(encoding)
    except (LookupError, UnicodeEncodeError):
        return ASCII
    return UNICODE


def _draw(
    out: TextIO,
    args: argparse.Namespace,
    facts: ServiceFacts,
    validation: Validation,
    rollout: Plan | None,
    *,
    glyph: Mapping[str, str],
) -> None:
    scheduling = facts.scheduling_strategy
    header = (
        f"Rolling update of {tasks_text(args.desired)} ({scheduling} on {facts.launch_type}): "
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
        draw_plan(out, rollout, args.min, args.max, glyph)
    _findings(out, "Warnings", validation.warnings)
    _findings(out, "Notes", validation.notes)


def _findings(out: TextIO, title: str, findings: Sequence[Finding]) -> None:
    if not findings:
        return
    print(f"{title}:", file=out)
    for finding in findings:
        print(f"  - {finding.message}", file=out)
