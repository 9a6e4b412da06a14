"""`deployer plan`: validate a deployment configuration for a desired count and draw the rollout.

ROLLING (the default) draws the tasks ECS starts and stops; BLUE_GREEN, LINEAR and CANARY draw the
production traffic on the new revision at each stage, the minutes ECS waits, the approvals a PAUSE
hook waits for, and the peak task count.

Exit status: 0 when the configuration is valid, 1 when it is refused (errors on stdout, or inside
the JSON), 2 for unusable arguments (one line on stderr).

Imports only the standard library and `deployer.rollout`, so it starts fast and never loads boto3.
"""

from __future__ import annotations

import argparse
import io
import re
import sys

from deployer.render import ASCII, UNICODE, draw_plan, draw_traffic_plan, duration_text, tasks_text
from deployer.rollout.model import (
    HOOK_STAGES,
    HOOK_TIMEOUT_ACTIONS,
    STRATEGIES,
    TRAFFIC_SHIFTING,
    Finding,
    ServiceFacts,
)
from deployer.rollout.plan import Plan, plan
from deployer.rollout.traffic import (
    DEFAULT_CANARY_BAKE_MINUTES,
    DEFAULT_CANARY_PERCENT,
    DEFAULT_STEP_BAKE_MINUTES,
    DEFAULT_STEP_PERCENT,
    TrafficPlan,
    traffic_plan,
    traffic_warnings,
)
from deployer.rollout.validate import Validation, validate
from deployer_cli import UsageError

TYPE_CHECKING = False  # `deployer plan` starts without `typing` (see deployer.rollout)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, TextIO

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


def _percent(text: str) -> float:
    """argparse type: a decimal number such as 10 or 2.5 (ECS's ranges are checked by `validate`)."""
    value = text.strip()
    if re.fullmatch(r"[+-]?([0-9]{1,6}(\.[0-9]*)?|\.[0-9]+)", value):
        return float(value)
    raise argparse.ArgumentTypeError(f"{text!r} is not a percentage such as 10 or 2.5")


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--desired", type=_whole_number, required=True, metavar="N", help="desired task count")
    # Required for ROLLING (checked in `run`, with argparse's own message); optional for the
    # traffic-shifting strategies, which do not use them to plan.
    parser.add_argument(
        "--min", type=_whole_number, metavar="PERCENT", help="minimumHealthyPercent (ROLLING: required)"
    )
    parser.add_argument("--max", type=_whole_number, metavar="PERCENT", help="maximumPercent (ROLLING: required)")
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
    shifting = parser.add_argument_group(
        "traffic-shifting strategies", "BLUE_GREEN, LINEAR and CANARY shift load balancer traffic to a new revision"
    )
    shifting.add_argument(
        "--strategy", type=str.upper, choices=STRATEGIES, help="deploymentConfiguration.strategy (default ROLLING)"
    )
    shifting.add_argument(
        "--bake-minutes",
        type=_whole_number,
        metavar="N",
        help="bakeTimeInMinutes: both revisions run after the last shift (required for BLUE_GREEN)",
    )
    shifting.add_argument(
        "--step-percent", type=_percent, metavar="PERCENT", help="LINEAR stepPercent (ECS default 10.0)"
    )
    shifting.add_argument(
        "--step-bake-minutes", type=_whole_number, metavar="N", help="LINEAR stepBakeTimeInMinutes (ECS default 6)"
    )
    shifting.add_argument(
        "--canary-percent", type=_percent, metavar="PERCENT", help="CANARY canaryPercent (ECS default 5.0)"
    )
    shifting.add_argument(
        "--canary-bake-minutes",
        type=_whole_number,
        metavar="N",
        help="CANARY canaryBakeTimeInMinutes (ECS default 10)",
    )
    shifting.add_argument(
        "--pause-at",
        type=str.upper,
        choices=HOOK_STAGES,
        action="append",
        metavar="STAGE",
        help="a PAUSE lifecycle hook at this stage (repeatable), e.g. POST_TEST_TRAFFIC_SHIFT",
    )
    shifting.add_argument(
        "--pause-timeout", type=_whole_number, metavar="MINUTES", help="the PAUSE hook's timeout (ECS default 1440)"
    )
    shifting.add_argument(
        "--pause-timeout-action",
        type=str.upper,
        choices=HOOK_TIMEOUT_ACTIONS,
        help="what ECS does when the PAUSE hook times out (ECS default ROLLBACK)",
    )
    shifting.add_argument(
        "--no-load-balancer",
        action="store_true",
        help="the service has no load balancer (the plan assumes one with an alternate target group)",
    )
    shifting.add_argument(
        "--no-alternate-target-group",
        action="store_true",
        help="the service's load balancer has no alternate target group",
    )
    parser.set_defaults(handler=run, plan_parser=parser)


def run(args: argparse.Namespace) -> int:
    strategy = args.strategy or "ROLLING"
    if strategy in TRAFFIC_SHIFTING:
        return _run_traffic(args, strategy)
    missing = [flag for flag, value in (("--min", args.min), ("--max", args.max)) if value is None]
    if missing:
        args.plan_parser.error(f"the following arguments are required: {', '.join(missing)}")
    if args.bake_minutes is not None or args.pause_at:
        raise UsageError(
            "--bake-minutes and --pause-at go with --strategy BLUE_GREEN, LINEAR or CANARY "
            "(the rolling plan does not model a bake time or lifecycle hooks)"
        )
    _pause_options(args)
    desired_range = _desired_range(args)
    facts = ServiceFacts(
        desired_count=args.desired,
        scheduling_strategy="DAEMON" if args.daemon else "REPLICA",
        launch_type=args.launch_type or ("EC2" if args.daemon else "FARGATE"),
        desired_range=desired_range,
        spare_capacity=args.spare_capacity,
    )
    requested = {"minimumHealthyPercent": args.min, "maximumPercent": args.max, **_strategy_fields(args)}
    validation = validate(requested, facts)
    rollout = plan(args.desired, args.min, args.max, args.spare_capacity) if validation.valid else None
    unicode = _glyphs(sys.stdout) is UNICODE
    if args.json:
        document = _as_json(args, facts, validation, rollout)
        import json

        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=not unicode) + "\n")
    else:
        drawing = io.StringIO()
        _draw(drawing, args, facts, validation, rollout, glyph=UNICODE if unicode else ASCII)
        text = drawing.getvalue()
        sys.stdout.write(text if unicode else _to_ascii(text))
    return 0 if validation.valid else 1


def _desired_range(args: argparse.Namespace) -> tuple[int, int] | None:
    if (args.min_tasks is None) != (args.max_tasks is None):
        raise UsageError("--min-tasks and --max-tasks go together (the autoscaling range)")
    if args.min_tasks is None:
        return None
    if args.min_tasks > args.max_tasks:
        raise UsageError(f"--min-tasks {args.min_tasks} is above --max-tasks {args.max_tasks}")
    return (args.min_tasks, args.max_tasks)


def _pause_options(args: argparse.Namespace) -> None:
    if not args.pause_at and (args.pause_timeout is not None or args.pause_timeout_action is not None):
        raise UsageError("--pause-timeout and --pause-timeout-action describe the hook that --pause-at adds")


def _strategy_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The deploymentConfiguration fields the strategy options ask for, as given: `validate` judges
    them, including the ones that belong to another strategy."""
    fields: dict[str, Any] = {}
    if args.strategy is not None:
        fields["strategy"] = args.strategy
    if args.bake_minutes is not None:
        fields["bakeTimeInMinutes"] = args.bake_minutes
    for key, pairs in (
        (
            "linearConfiguration",
            (("stepPercent", args.step_percent), ("stepBakeTimeInMinutes", args.step_bake_minutes)),
        ),
        (
            "canaryConfiguration",
            (("canaryPercent", args.canary_percent), ("canaryBakeTimeInMinutes", args.canary_bake_minutes)),
        ),
    ):
        given = {name: value for name, value in pairs if value is not None}
        if given:
            fields[key] = given
    if args.pause_at:
        hook: dict[str, Any] = {"targetType": "PAUSE", "lifecycleStages": list(dict.fromkeys(args.pause_at))}
        timeout = {
            name: value
            for name, value in (("timeoutInMinutes", args.pause_timeout), ("action", args.pause_timeout_action))
            if value is not None
        }
        if timeout:
            hook["timeoutConfiguration"] = timeout
        fields["lifecycleHooks"] = [hook]
    return fields


def _run_traffic(args: argparse.Namespace, strategy: str) -> int:
    """BLUE_GREEN, LINEAR, CANARY: validate, then draw the traffic stages."""
    _pause_options(args)
    if args.daemon:
        raise UsageError(f"--daemon: the plan explains {strategy} for REPLICA services only")
    facts = ServiceFacts(
        desired_count=args.desired,
        launch_type=args.launch_type or "FARGATE",
        desired_range=_desired_range(args),
        spare_capacity=args.spare_capacity,
        has_load_balancer=not args.no_load_balancer,
        has_alternate_target_group=not (args.no_load_balancer or args.no_alternate_target_group),
    )
    requested: dict[str, Any] = {}
    if args.min is not None:
        requested["minimumHealthyPercent"] = args.min
    if args.max is not None:
        requested["maximumPercent"] = args.max
    requested.update(_strategy_fields(args))
    validation = validate(requested, facts)
    rollout = traffic_plan(validation.deployment_configuration, args.desired) if validation.valid else None
    warnings = (*validation.warnings, *(traffic_warnings(rollout, facts) if rollout else ()))
    unicode = _glyphs(sys.stdout) is UNICODE
    if args.json:
        document = _traffic_json(args, facts, validation, rollout, warnings)
        import json

        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=not unicode) + "\n")
    else:
        drawing = io.StringIO()
        _draw_traffic(drawing, args, facts, validation, rollout, warnings=warnings, glyph=UNICODE if unicode else ASCII)
        text = drawing.getvalue()
        sys.stdout.write(text if unicode else _to_ascii(text))
    return 0 if validation.valid else 1


def _traffic_json(
    args: argparse.Namespace,
    facts: ServiceFacts,
    validation: Validation,
    rollout: TrafficPlan | None,
    warnings: Sequence[Finding],
) -> dict[str, Any]:
    return {
        "valid": validation.valid,
        "strategy": args.strategy,
        "desired": args.desired,
        "minimum_healthy_percent": args.min,
        "maximum_percent": args.max,
        "spare_capacity": args.spare_capacity,
        "scheduling_strategy": "REPLICA",
        "launch_type": facts.launch_type,
        "has_load_balancer": facts.has_load_balancer,
        "has_alternate_target_group": facts.has_alternate_target_group,
        "errors": [f.to_dict() for f in validation.errors],
        "warnings": [f.to_dict() for f in warnings],
        "notes": [f.to_dict() for f in validation.notes],
        "deployment_configuration": validation.deployment_configuration,
        "traffic_steps": [
            {
                "kind": step.kind,
                "label": step.label,
                "traffic_percent": step.traffic_percent,
                "bake_minutes": step.bake_minutes,
                "note": step.note,
            }
            for step in (rollout.steps if rollout else ())
        ],
        "shifts": rollout.shifts if rollout else None,
        "peak_tasks": rollout.peak_tasks if rollout else None,
        "minimum_duration_minutes": rollout.minimum_minutes if rollout else None,
        "bake_time_given": rollout.bake_time_given if rollout else None,
        "approvals": rollout.approvals if rollout else None,
        "needs_approval": rollout.needs_approval if rollout else None,
        "minimum_duration": duration_text(rollout) if rollout else None,
        "hooks": [
            {
                "stage": hook.stage,
                "target_type": hook.target_type,
                "target": hook.target,
                "timeout_minutes": hook.timeout_minutes,
                "timeout_action": hook.timeout_action,
                "runs": hook.runs,
            }
            for hook in (rollout.hooks if rollout else ())
        ],
    }


def _strategy_header(args: argparse.Namespace, strategy: str) -> str:
    """What was asked, with the ECS defaults for what was not marked as such."""

    def shown(name: str, given: object, default: object) -> str:
        return f"{name} {given}" if given is not None else f"{name} {default} (default)"

    parts: list[str] = []
    if strategy == "LINEAR":
        parts += [
            shown("stepPercent", args.step_percent, DEFAULT_STEP_PERCENT),
            shown("stepBakeTimeInMinutes", args.step_bake_minutes, DEFAULT_STEP_BAKE_MINUTES),
        ]
    elif strategy == "CANARY":
        parts += [
            shown("canaryPercent", args.canary_percent, DEFAULT_CANARY_PERCENT),
            shown("canaryBakeTimeInMinutes", args.canary_bake_minutes, DEFAULT_CANARY_BAKE_MINUTES),
        ]
    parts.append(
        "bakeTimeInMinutes not given" if args.bake_minutes is None else f"bakeTimeInMinutes {args.bake_minutes}"
    )
    if args.pause_at:
        parts.append(f"PAUSE at {', '.join(dict.fromkeys(args.pause_at))}")
    return ", ".join(parts)


def _draw_traffic(
    out: TextIO,
    args: argparse.Namespace,
    facts: ServiceFacts,
    validation: Validation,
    rollout: TrafficPlan | None,
    *,
    warnings: Sequence[Finding],
    glyph: Mapping[str, str],
) -> None:
    strategy = args.strategy
    header = (
        f"{strategy} deployment of {tasks_text(args.desired)} (REPLICA on {facts.launch_type}): "
        f"{_strategy_header(args, strategy)}"
    )
    print(header + _room_and_range(args, facts), file=out)
    if rollout is None:
        _refused(out, validation)
    else:
        print(
            "Needs: a load balancer with an alternate target group, so ECS can shift traffic "
            "(assumed; --no-alternate-target-group or --no-load-balancer check a service without).",
            file=out,
        )
        draw_traffic_plan(out, rollout, glyph)
    _findings(out, "Warnings", warnings)
    _findings(out, "Notes", validation.notes)


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
    print(header + _room_and_range(args, facts), file=out)
    if rollout is None:
        _refused(out, validation)
    else:
        draw_plan(out, rollout, args.min, args.max, glyph)
    _findings(out, "Warnings", validation.warnings)
    _findings(out, "Notes", validation.notes)


def _room_and_range(args: argparse.Namespace, facts: ServiceFacts) -> str:
    """The header's tail, shared by every strategy: spare cluster room and the autoscaling range."""
    tail = ""
    if args.spare_capacity is not None:
        tail += f", cluster room for {args.spare_capacity} more"
    if facts.desired_range is not None:
        tail += f", autoscaling {facts.desired_range[0]}..{facts.desired_range[1]}"
    return tail


def _refused(out: TextIO, validation: Validation) -> None:
    print("Refused: this configuration cannot be rolled out as asked.", file=out)
    _findings(out, "Errors", validation.errors)


def _findings(out: TextIO, title: str, findings: Sequence[Finding]) -> None:
    if not findings:
        return
    print(f"{title}:", file=out)
    for finding in findings:
        print(f"  - {finding.message}", file=out)
