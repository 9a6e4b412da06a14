"""`deployer deploy`: deploy images to one ECS service now, validated like a pipeline stage.

Prints the plan (images old -> new, the deployment configuration before -> after, the rollout
drawing, warnings), then registers the new revision and calls UpdateService (never with
desiredCount) unless --dry-run. The AWS account, region and endpoint are the SDK's usual ones
(AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL...), so it works against moto server too; the clients
are botocore's alone (`deployer.aws.cli_client`): boto3 is not imported.

With --wait it prints a line whenever the deployment changes (UTC time, rollout state, the new
revision's running/desired and pending tasks, the older deployments' tasks, failed tasks, and for
BLUE_GREEN, LINEAR and CANARY the lifecycle stage from DescribeServiceDeployments), polling
DescribeServices every 2 s while things move and backing off to 30 s while they do not, never past
the timeout. --quiet keeps it silent until the end; with --json each change is one JSON line
(`{"progress": ...}`) and the result the last line.

Exit status: 0 deployed or nothing to do (and, with --wait, the deployment COMPLETED), 1 refused
(nothing changed), an AWS failure (one line), or with --wait a FAILED or unfinished deployment,
2 unusable arguments, 128 + the signal when stopped by SIGINT, SIGTERM or SIGHUP (one line; while
waiting it names the ECS deployment, which goes on).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import TYPE_CHECKING, Any

from deployer_cli import UsageError
from deployer_cli.signals import shielded

if TYPE_CHECKING:
    from deployer.rollout.model import Finding
    from deployer.settings import DeploySettings
    from deployer_cli.oneshot import ConfigChange, DeploymentCounts, DeployPlan, DeployResult, Progress

CIRCUIT_BREAKER = {
    "rollback": {"enable": True, "rollback": True},
    "no-rollback": {"enable": True, "rollback": False},
    "off": {"enable": False, "rollback": False},
}
_ASCII_FALLBACK = str.maketrans({"×": "x", "—": "-", "…": "...", "■": "#", "□": "o", "·": "."})
_DIGITS = re.compile(r"[0-9]{1,9}")


def _whole_number(text: str) -> int:
    value = text.strip()
    if not _DIGITS.fullmatch(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (0 or more)")
    return int(value)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0..86400 seconds")
    return value


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments `deploy` and `diff` share: the service, the images, the configuration."""
    parser.add_argument("--cluster", required=True, help="ECS cluster name or ARN")
    parser.add_argument("--service", required=True, help="ECS service name")
    parser.add_argument(
        "--container",
        action="append",
        metavar="NAME",
        help="a container of the service's task definition (repeatable; the Nth --container takes the Nth --image)",
    )
    parser.add_argument(
        "--image", action="append", metavar="URI", help="its new image, with a tag or a digest (repeatable)"
    )
    parser.add_argument(
        "--env",
        action="append",
        nargs=2,
        metavar=("CONTAINER", "NAME=VALUE"),
        help="set an environment variable of a container in the new revision (repeatable)",
    )
    parser.add_argument(
        "--secret",
        action="append",
        nargs=2,
        metavar=("CONTAINER", "NAME=REFERENCE"),
        help="set a secret of a container: a Secrets Manager secret ARN or an SSM parameter ARN or name (repeatable)",
    )
    parser.add_argument(
        "--unset",
        action="append",
        nargs=2,
        metavar=("CONTAINER", "NAME"),
        help="remove an environment variable or secret from a container (repeatable)",
    )
    parser.add_argument("--min", type=_whole_number, metavar="PERCENT", help="minimumHealthyPercent")
    parser.add_argument("--max", type=_whole_number, metavar="PERCENT", help="maximumPercent")
    parser.add_argument(
        "--circuit-breaker",
        choices=tuple(CIRCUIT_BREAKER),
        help="deploymentCircuitBreaker: on with rollback, on without rollback, or off (default: as the service has it)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def register(parser: argparse.ArgumentParser) -> None:
    add_target_arguments(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the plan; register and update nothing")
    parser.add_argument("--wait", action="store_true", help="wait until the ECS deployment completes or fails")
    parser.add_argument(
        "--timeout", type=_seconds, metavar="SECONDS", help="with --wait: give up waiting after this long (default 900)"
    )
    parser.add_argument("--quiet", action="store_true", help="with --wait: no progress lines, only the outcome")
    parser.set_defaults(handler=run)


WAIT_POLL_SECONDS = 2.0
WAIT_MAX_POLL_SECONDS = 30.0


# -- arguments ------------------------------------------------------------------------------------


def settings_from(args: argparse.Namespace) -> DeploySettings:
    """--env, --secret and --unset, checked as a pipeline's stage settings are; UsageError for
    anything unusable, naming every problem."""
    from deployer.settings import DeploySettings, problems

    environment: dict[str, dict[str, str]] = {}
    secrets: dict[str, dict[str, str]] = {}
    unset: dict[str, list[str]] = {}
    for option, pairs, into in (("--env", args.env, environment), ("--secret", args.secret, secrets)):
        for container, assignment in pairs or ():
            name, equals, value = assignment.partition("=")
            if not equals:
                raise UsageError(f"{option} {container} {assignment!r}: give NAME=VALUE")
            values = into.setdefault(container, {})
            if name in values:
                raise UsageError(f"{option}: {name!r} of container {container!r} is given twice")
            values[name] = value
    for container, name in args.unset or ():
        unset.setdefault(container, []).append(name)
    chosen = DeploySettings(environment=environment, secrets=secrets, unset=unset)
    found = problems(chosen)
    if found:
        raise UsageError("; ".join(_option_text(problem.format()) for problem in found))
    return chosen


def _option_text(text: str) -> str:
    """`secrets.web.DB: ...` -> `--secret web DB: ...`: say it in the command's words."""
    for key, option in (("environment.", "--env "), ("secrets.", "--secret "), ("unset.", "--unset ")):
        if text.startswith(key):
            where, _, why = text.partition(": ")
            container, _, name = where.removeprefix(key).partition(".")
            return f"{option}{container} {name.split('[')[0]}".rstrip() + f": {why}"
    return text


def images_from(args: argparse.Namespace, *, settings: bool = False) -> dict[str, str]:
    """--container/--image pairs, each image checked; UsageError for anything unusable. With
    `settings` (--env, --secret or --unset given) no image is needed."""
    from deployer.taskdef.clone import InvalidImageUri, parse_image_uri

    containers: list[str] = args.container or []
    images: list[str] = args.image or []
    if not containers and not images:
        if settings:
            return {}
        raise UsageError(
            "name at least one container and its new image (--container NAME --image URI), or a setting "
            "(--env, --secret, --unset)"
        )
    if len(containers) != len(images):
        raise UsageError(
            f"--container and --image go in pairs: got {len(containers)} --container and {len(images)} --image"
        )
    pairs: dict[str, str] = {}
    for name, uri in zip(containers, images, strict=True):
        if name in pairs:
            raise UsageError(f"container {name!r} is named twice")
        try:
            parse_image_uri(uri)
        except InvalidImageUri as exc:
            raise UsageError(str(InvalidImageUri(uri, exc.reason, container=name))) from None
        pairs[name] = uri
    return pairs


def requested_from(args: argparse.Namespace) -> dict[str, Any]:
    """The deploymentConfiguration fields the arguments set (the rest stay as the service has them)."""
    requested: dict[str, Any] = {}
    if args.min is not None:
        requested["minimumHealthyPercent"] = args.min
    if args.max is not None:
        requested["maximumPercent"] = args.max
    if args.circuit_breaker is not None:
        requested["deploymentCircuitBreaker"] = dict(CIRCUIT_BREAKER[args.circuit_breaker])
    return requested


def make_plan(args: argparse.Namespace) -> DeployPlan:
    """Check the arguments, then read the service (DescribeServices, DescribeScalableTargets,
    DescribeTaskDefinition) and plan the deploy."""
    settings = settings_from(args)
    images = images_from(args, settings=bool(settings))
    requested = requested_from(args)
    from deployer import aws
    from deployer_cli.oneshot import plan_deploy

    return plan_deploy(
        aws.cli_client("ecs"),
        args.cluster,
        args.service,
        images,
        requested,
        autoscaling=aws.cli_client("application-autoscaling"),
        settings=settings,
    )


# -- running --------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if args.timeout is not None and not args.wait:
        raise UsageError("--timeout goes with --wait")
    if args.wait and args.dry_run:
        raise UsageError("--wait has nothing to wait for with --dry-run")
    if args.quiet and not args.wait:
        raise UsageError("--quiet goes with --wait")
    return guarded("deploy", lambda: _deploy(args))


def guarded(command: str, body: Callable[[], int]) -> int:
    """Run `body`; an AWS or deployer error becomes one line on stderr and exit status 1."""
    from botocore.exceptions import BotoCoreError

    from deployer.errors import DeployerError

    try:
        return int(body())
    except (DeployerError, BotoCoreError) as exc:
        print(f"deployer {command}: error: {exc}", file=sys.stderr)
        return 1


@contextmanager
def goes_on_without_us(cluster: str, service: str, deployment_id: str) -> Iterator[None]:
    """A stop signal while waiting says that ECS carries on with the deployment, and how to follow it."""
    from deployer_cli.signals import Stopped

    try:
        yield
    except Stopped as stop:
        stop.detail = (
            f"the ECS deployment {deployment_id} of {cluster}/{service} goes on: "
            f"aws ecs describe-services --cluster {cluster} --services {service}"
        )
        raise


def _deploy(args: argparse.Namespace) -> int:
    from deployer import aws
    from deployer.errors import DeployerError
    from deployer_cli.oneshot import DEFAULT_TIMEOUT_SECONDS, FINAL_ROLLOUT_STATES, deploy, wait_for_deployment

    try:
        plan = make_plan(args)
    except DeployerError as exc:
        print(f"deployer deploy: error: {exc} (nothing was registered or updated)", file=sys.stderr)
        return 1
    if args.json:
        return _deploy_json(args, plan)
    say(plan_text(plan))
    if not plan.valid:
        say("Refused: nothing was registered or updated.")
        return 1
    if plan.nothing_to_do:
        what = ("these images and settings" if plan.images else "these settings") if plan.settings else "these images"
        say(f"Nothing to do: {plan.cluster}/{plan.service} already runs {what} with this configuration.")
        return 0
    if args.dry_run:
        say(f"Dry run: nothing was registered or updated ({_intent(plan)}).")
        return 0
    with shielded():  # RegisterTaskDefinition then UpdateService: a stop signal waits for both
        result = deploy(aws.cli_client("ecs"), plan)
    say(result_text(plan, result))
    if not args.wait or result.deployment_id is None:
        return 0
    timeout = args.timeout or DEFAULT_TIMEOUT_SECONDS
    say(f"Waiting for {result.deployment_id} to complete or fail (timeout {timeout:.0f} s)...")
    with goes_on_without_us(plan.cluster, plan.service, result.deployment_id):
        outcome = wait_for_deployment(
            aws.cli_client("ecs"),
            plan.cluster,
            plan.service,
            result.deployment_id,
            timeout=timeout,
            poll_seconds=WAIT_POLL_SECONDS,
            max_poll_seconds=WAIT_MAX_POLL_SECONDS,
            lifecycle=plan.strategy != "ROLLING",
            on_progress=None if args.quiet else lambda progress: say(progress_text(progress)),
        )
    if outcome.state in FINAL_ROLLOUT_STATES:
        reason = f": {outcome.reason}" if outcome.reason else ""
        say(f"Deployment {result.deployment_id} {outcome.state} after {outcome.waited_seconds:.0f} s{reason}")
    else:
        say(f"Deployment {result.deployment_id}: {outcome.reason}")
    return 0 if outcome.succeeded else 1


def _deploy_json(args: argparse.Namespace, plan: DeployPlan) -> int:
    from deployer import aws
    from deployer_cli.oneshot import DEFAULT_TIMEOUT_SECONDS, deploy, wait_for_deployment

    document: dict[str, Any] = {"plan": plan.to_dict(), "dry_run": bool(args.dry_run), "result": None}
    code = 0
    if not plan.valid:
        code = 1
    elif not args.dry_run:
        with shielded():  # RegisterTaskDefinition then UpdateService: a stop signal waits for both
            result = deploy(aws.cli_client("ecs"), plan)
        if args.wait and result.deployment_id is not None:
            with goes_on_without_us(plan.cluster, plan.service, result.deployment_id):
                rollout = wait_for_deployment(
                    aws.cli_client("ecs"),
                    plan.cluster,
                    plan.service,
                    result.deployment_id,
                    timeout=args.timeout or DEFAULT_TIMEOUT_SECONDS,
                    poll_seconds=WAIT_POLL_SECONDS,
                    max_poll_seconds=WAIT_MAX_POLL_SECONDS,
                    lifecycle=plan.strategy != "ROLLING",
                    on_progress=None if args.quiet else _json_line,
                )
            result = dataclasses.replace(result, rollout=rollout)
        document["result"] = result.to_dict()
        if result.rollout is not None and not result.rollout.succeeded:
            code = 1
    if args.wait:  # JSON lines: the progress lines went out one object a line, so does the result
        sys.stdout.write(json.dumps(document, default=str) + "\n")
    else:
        sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")
    return code


def _json_line(progress: Progress) -> None:
    sys.stdout.write(json.dumps({"progress": progress.to_dict()}) + "\n")
    sys.stdout.flush()


def _tasks(counts: DeploymentCounts) -> str:
    text = f"{counts.running}/{counts.desired} running"
    if counts.pending:
        text += f", {counts.pending} pending"
    return text


def progress_text(progress: Progress) -> str:
    """`12:00:04Z IN_PROGRESS  web:8 2/4 running, 2 pending · old web:7 4/4 running · lifecycle SCALE_UP`."""
    new = progress.deployment
    parts = [f"{short_arn(new.task_definition)} {_tasks(new)}"]
    if new.failed:
        parts.append(f"{new.failed} failed task{'s' if new.failed != 1 else ''}")
    for other in progress.others:
        if other.status == "INACTIVE":
            continue
        parts.append(f"old {short_arn(other.task_definition)} {_tasks(other)}")
    if not [o for o in progress.others if o.status != "INACTIVE"]:
        parts.append("no older deployment left")
    if progress.lifecycle_stage:
        parts.append(f"lifecycle {progress.lifecycle_stage}")
    return f"{progress.at.astimezone(UTC):%H:%M:%S}Z {(new.rollout_state or 'IN_PROGRESS'):<11}  " + " · ".join(parts)


# -- text -----------------------------------------------------------------------------------------


def say(text: str) -> None:
    """Print, falling back to ASCII where the terminal cannot show the drawing's characters."""
    if not text:
        return
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except (LookupError, UnicodeEncodeError):
        text = text.translate(_ASCII_FALLBACK).encode("ascii", "replace").decode("ascii")
    print(text.rstrip("\n"), file=sys.stdout, flush=True)


def short_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def show(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(", ", ": "))


def header_text(plan: DeployPlan) -> str:
    facts = plan.facts
    count = f"{facts.desired_count} task" + ("" if facts.desired_count == 1 else "s")
    scaling = f", autoscaling {facts.desired_range[0]}..{facts.desired_range[1]}" if facts.desired_range else ""
    return (
        f"Service {plan.cluster}/{plan.service}: {count} ({facts.scheduling_strategy} on {facts.launch_type}"
        f"{scaling}), running {short_arn(plan.task_definition_arn)}"
    )


def settings_text(plan: DeployPlan) -> str:
    """The environment variables and secrets the deploy changes (secrets by reference)."""
    if not plan.settings:
        return ""
    from deployer.settings import by_container

    lines = ["Environment and secrets:"]
    for container, changes in by_container(plan.setting_changes):
        lines.extend(f"  {container}: {change.detail()} ({change.change})" for change in changes)
    if len(lines) == 1:
        lines.append("  (no change: the running revision has these settings)")
    from deployer.settings import role_note

    references = [c.after[1] for c in plan.setting_changes if c.after is not None and c.after[0] == "secret"]
    note = role_note((plan.described.get("taskDefinition") or {}).get("executionRoleArn"), references)
    if note:
        lines.append(f"  Note: {note}.")
    return "\n".join(lines)


def images_text(plan: DeployPlan) -> str:
    if not plan.images:
        return ""
    lines = ["Images:"]
    for name, image in plan.images.items():
        if name in plan.image_changes:
            old, new = plan.image_changes[name]
            lines.append(f"  {name}: {old} -> {new}")
        else:
            lines.append(f"  {name}: {image} (unchanged)")
    return "\n".join(lines)


def _before_text(change: ConfigChange) -> str:
    if change.before is not None:
        return show(change.before)
    if change.default is not None:
        return f"{show(change.default)} (ECS default)"
    return "(not set)"


def config_text(plan: DeployPlan) -> str:
    lines = ["Deployment configuration:"]
    for change in plan.config_changes:
        if change.changed:
            after = "(not set)" if change.after is None else show(change.after)
            lines.append(f"  {change.field}: {_before_text(change)} -> {after}")
        elif change.before is None and change.default is not None:
            lines.append(f"  {change.field}: {show(change.default)} (ECS default; unchanged)")
        else:
            lines.append(f"  {change.field}: {_before_text(change)} (unchanged)")
    if len(lines) == 1:
        lines.append("  (none)")
    return "\n".join(lines)


def findings_text(title: str, findings: Sequence[Finding]) -> str:
    if not findings:
        return ""
    return "\n".join([f"{title}:", *(f"  - {finding.message}" for finding in findings)])


def plan_text(plan: DeployPlan) -> str:
    """The plan as `deploy` prints it: service, images, configuration, then either the errors or
    the rollout drawing, then warnings and notes (no drawing nor notes when there is nothing to do)."""
    from deployer.render import plan_text as draw

    parts = [
        header_text(plan),
        images_text(plan),
        settings_text(plan),
        config_text(plan),
        findings_text("Errors", plan.errors),
    ]
    if plan.rollout is not None and not plan.nothing_to_do:
        after = plan.config_after
        parts.append(
            f"Rollout (ROLLING, minimumHealthyPercent {after['minimumHealthyPercent']}, "
            f"maximumPercent {after['maximumPercent']}):\n"
            + draw(plan.rollout, after["minimumHealthyPercent"], after["maximumPercent"]).rstrip("\n")
        )
    elif plan.valid and not plan.nothing_to_do:
        parts.append(f"Rollout: {plan.strategy} (no rolling plan to draw).")
    parts.append(findings_text("Warnings", plan.validation.warnings))
    if not plan.nothing_to_do:
        parts.append(findings_text("Notes", plan.validation.notes))
    return "\n".join(part for part in parts if part)


def _intent(plan: DeployPlan) -> str:
    if plan.registers:
        return f"a deploy would register a new revision of {plan.registration.get('family')} and call UpdateService"
    return "a deploy would call UpdateService with the new deployment configuration"


def result_text(plan: DeployPlan, result: DeployResult) -> str:
    where = f"{plan.cluster}/{plan.service}"
    if result.registered:
        return (
            f"Registered {short_arn(result.task_definition_arn)} ({result.task_definition_arn}).\n"
            f"Updated {where}: ECS deployment {result.deployment_id} (PRIMARY) rolls out "
            f"{short_arn(result.task_definition_arn)}."
        )
    return (
        f"No new revision: the images{' and settings' if plan.settings else ''} already match "
        f"({short_arn(result.task_definition_arn)}).\n"
        f"Updated the deployment configuration of {where}; its PRIMARY deployment is {result.deployment_id}."
    )
