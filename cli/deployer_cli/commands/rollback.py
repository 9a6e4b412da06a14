"""`deployer rollback --pipeline P --stage S [--yes] [--json]`: put one stage back.

What happens is `flow.rollback.request_rollback`'s, the same as the Slack message's "Roll back" button:

- a deployment in flight on the stage (a release DEPLOYING there, or paused for an approval) is
  stopped with StopServiceDeployment ROLLBACK, and ECS returns the service to the revision it ran
  before (outcome "stopping");
- otherwise a release of kind "rollback" redeploys the stage's previous successful revision,
  through the same validation and the same one-deployment-per-service lock as a push (outcome
  "deploying", or "queued" behind the deployment holding the service);
- with nothing earlier to go back to, nothing changes ("nothing_to_roll_back").

Either way the rollback is a release of its own: `deployer status` shows it, and its transitions
go to the deployer's bus (and to Slack, when the Slack secret is known) like any other.

Before anything changes, the command shows what the stage runs now and what it expects to go
back to, and asks for confirmation; `--yes` skips the question, and without a terminal `--yes`
is required. Who asked is recorded: the caller's identity from STS GetCallerIdentity (its ARN),
or $USER when STS cannot say.

Where to act: the rule of every command (`deployer_cli.target`), name by name: a flag (--table,
--config-table, --event-bus, --slack-secret), `--stack NAME` (the deployed stack's outputs), the
environment ($DEPLOYER_TABLE, $DEPLOYER_CONFIG_TABLE, $DEPLOYER_EVENT_BUS, $DEPLOYER_SLACK_SECRET),
$DEPLOYER_STACK, else the local stack's state file. The Slack secret is optional. Credentials,
region and endpoint come from the standard AWS configuration (or the state file).

Exit status: 0 the rollback started (deploying, queued or stopping), 1 nothing to roll back,
refused, declined at the prompt, or an AWS error (one line), 2 unusable arguments (an unknown
pipeline or stage, nothing saying where to act, no terminal and no --yes), 128 + the signal when
stopped by SIGINT, SIGTERM or SIGHUP (at the question: nothing changed; during the request: after
it, saying so).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Final, TextIO

from deployer.outcomes import Outcome
from deployer_cli import UsageError
from deployer_cli.commands.status import CONFIG_TABLE_ENV, EVENT_BUS_ENV, SLACK_SECRET_ENV, TABLE_ENV, error_line
from deployer_cli.target import (
    NAMES,
    DescribeStack,
    Target,
    add_stack_argument,
    add_state_argument,
    resolve_names,
    session_for,
    target_from,
)

if TYPE_CHECKING:
    from deployer.deps import Deps
    from deployer.pipelines.schema import Pipeline, Stage
    from deployer.releases.store import ReleaseStore

STARTED: Final = frozenset({Outcome.DEPLOYING, Outcome.QUEUED, Outcome.STOPPING, Outcome.CANCELLED})


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pipeline", required=True, metavar="NAME", help="the pipeline")
    parser.add_argument("--stage", required=True, metavar="NAME", help="the stage to roll back")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation (required without a terminal)")
    parser.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    parser.add_argument("--table", metavar="NAME", help=f"the deployer's table (default: ${TABLE_ENV})")
    parser.add_argument(
        "--config-table", metavar="NAME", help=f"the deployer's config table (default: ${CONFIG_TABLE_ENV})"
    )
    parser.add_argument("--event-bus", metavar="NAME", help=f"the deployer's event bus (default: ${EVENT_BUS_ENV})")
    parser.add_argument(
        "--slack-secret",
        metavar="ID",
        help=f"the Slack secret, so the rollback gets its Slack message at once (default: ${SLACK_SECRET_ENV})",
    )
    add_stack_argument(parser)
    add_state_argument(parser)
    parser.set_defaults(handler=run)


# -- where to act ---------------------------------------------------------------------------------


def resolve(args: argparse.Namespace, environ: Mapping[str, str], *, describe: DescribeStack | None = None) -> Target:
    """`deployer status`'s rule (`deployer_cli.target`), needing the config table and the bus
    (every transition goes on it); the Slack secret when known."""
    found = resolve_names(
        {key: getattr(args, key, None) for key in NAMES},
        environ,
        stack=getattr(args, "stack", None),
        primary="table",
        need=("config_table", "event_bus"),
        want=("slack_secret",),
        state_file=args.state,
        describe=describe,
    )
    return target_from(found, environ, primary="table", pipelines=(args.pipeline,))


def build_deps(target: Target, session: Any) -> Deps:
    """The flow's dependencies for `target`, built as the functions' are (`deployer.deps.build_deps`):
    transitions go to the deployer's bus, and to Slack when its secret is known."""
    from deployer.deps import build_deps as build
    from deployer.pipelines.store import ConfigStore

    assert target.config_table is not None
    assert target.event_bus is not None

    def client(name: str) -> Any:
        if name == "ecs" and target.ecs_endpoint_url:
            return session.client(name, endpoint_url=target.ecs_endpoint_url)
        return session.client(name, endpoint_url=target.endpoint_url)

    dynamodb = session.resource("dynamodb", endpoint_url=target.endpoint_url)
    config_store = ConfigStore(target.config_table, dynamodb=dynamodb, max_age_seconds=0)
    slack = None
    if target.slack_secret:
        from aws_lambda_powertools.utilities.parameters import SecretsProvider

        from deployer.slack import settings_from_secret

        slack = settings_from_secret(
            target.slack_secret, provider=SecretsProvider(boto3_client=client("secretsmanager"))
        )
    return build(
        dynamodb.Table(target.table),
        config_store.load,
        client,
        event_bus=target.event_bus,
        slack=slack,
        region=target.region,
    )


def caller(session: Any, target: Target, environ: Mapping[str, str]) -> str:
    """Who asks, for the record: the STS caller's ARN, else $USER, else "unknown"."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(session.client("sts", endpoint_url=target.endpoint_url).get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError, KeyError):
        return environ.get("USER") or environ.get("USERNAME") or "unknown"


# -- what would happen ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Preview:
    """What the stage runs now and what a rollback is expected to go back to (read only)."""

    pipeline: str
    stage: str
    service: str
    in_flight: str | None  # the release deploying there now
    in_flight_task_definition: str | None
    current_release: str | None
    current_task_definition: str | None
    current_commit: str | None
    target_release: str | None
    target_task_definition: str | None
    target_commit: str | None
    # the in-flight release's before-task, still running: no service was updated yet
    before_task: str | None = None

    def lines(self) -> list[str]:
        noun = "ECS services" if ", " in self.service else "ECS service"
        where = f"{self.stage} of {self.pipeline} ({noun} {self.service})"
        if self.in_flight and self.before_task:
            keep = _revision(self.target_task_definition) or "the revisions they run"
            return [
                f"Roll back {where}:",
                f"  in flight   {self.in_flight} runs its before-task {self.before_task}; no service is updated yet",
                f"  rollback    end that release before any service is updated; they keep {keep}",
            ]
        if self.in_flight:
            back = _revision(self.target_task_definition) or "the revision it ran before"
            return [
                f"Roll back {where}:",
                f"  in flight   {self.in_flight} is deploying {_revision(self.in_flight_task_definition) or '?'}",
                f"  rollback    stop that deployment (StopServiceDeployment ROLLBACK); ECS returns to {back}"
                if noun == "ECS service"
                else "  rollback    stop the deployments in flight (StopServiceDeployment ROLLBACK), put the completed "
                f"ones back (UpdateService): {back}",
            ]
        if not self.current_task_definition:
            return [f"Roll back {where}:", "  now         no successful deployment recorded yet"]
        lines = [
            f"Roll back {where}:",
            f"  now         {_revision(self.current_task_definition)} "
            f"(commit {_short(self.current_commit)}, release {self.current_release})",
        ]
        if self.target_task_definition:
            lines.append(
                f"  back to     {_revision(self.target_task_definition)} "
                f"(commit {_short(self.target_commit)}, release {self.target_release}), as a new release"
            )
        else:
            lines.append("  back to     nothing: no earlier successful revision is recorded")
        return lines


def _revision(arn: str | None) -> str | None:
    return arn.rsplit("/", 1)[-1] if arn else None


def _short(commit: str | None) -> str:
    return commit[:12] if commit else "?"


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def preview(store: ReleaseStore, pipeline: Pipeline, stage: Stage) -> Preview:
    """Reads the service lock and the stage's history of successful deployments, as
    `flow.rollback.request_rollback` does, without writing anything."""
    from deployer.flow.rollback import history_keys, rollback_target, stage_holder_release

    holder = stage_holder_release(store, stage)
    record = holder.stages.get(stage.name) if holder else None
    in_flight = holder is not None and record is not None and record.state.value == "DEPLOYING"
    history = [] if in_flight else store.stage_history(pipeline.name, stage.name)
    keys = sorted((stage.cluster, name) for name in stage.service_names)
    current = history[0] if history else {}
    target = rollback_target(history, keys)
    in_flight_text: str | None
    previous_text: str | None
    if record is not None and record.services is not None:  # a stage of several services: each one's revision
        in_flight_text = ", ".join(f"{s.service} {_revision(s.task_definition_arn) or '?'}" for s in record.services)
        previous_text = ", ".join(
            f"{s.service} {_revision(s.previous_task_definition_arn) or '?'}" for s in record.services
        )
    else:
        in_flight_text = record.task_definition_arn if record else None
        previous_text = record.previous_task_definition_arn if record else None
    return Preview(
        pipeline=pipeline.name,
        stage=stage.name,
        service=", ".join(f"{cluster}/{name}" for cluster, name in ((stage.cluster, n) for n in stage.service_names)),
        in_flight=holder.release_id if in_flight and holder else None,
        in_flight_task_definition=in_flight_text if in_flight else None,
        current_release=_text(current.get("release_id")),
        current_task_definition=_history_text(current) if current and history_keys(current) == keys else None,
        current_commit=_text(current.get("commit")),
        target_release=_text(target.get("release_id")) if target else None,
        target_task_definition=(previous_text if in_flight else _history_text(target) if target else None),
        target_commit=_text(target.get("commit")) if target else None,
        before_task=(
            record.before_task
            if in_flight
            and record is not None
            and record.before_state in {"STARTING", "RUNNING"}
            and not record.all_started
            else None
        ),
    )


def _history_text(entry: Mapping[str, Any]) -> str | None:
    """A stage history entry's revision (an ARN), or each service's (`web web:7, worker worker:3`)."""
    if entry.get("services"):
        return ", ".join(
            f"{s.get('service')} {_revision(_text(s.get('task_definition_arn'))) or '?'}" for s in entry["services"]
        )
    return _text(entry.get("task_definition_arn"))


# -- running ----------------------------------------------------------------------------------------


def _pipeline_and_stage(deps: Deps, pipeline_name: str, stage_name: str) -> tuple[Pipeline, Stage]:
    config = deps.config()
    pipeline = config.pipeline_named(pipeline_name)
    if pipeline is None:
        known = ", ".join(p.name for p in config.pipelines) or "none"
        raise UsageError(f"no pipeline {pipeline_name!r} in the published configuration (pipelines: {known})")
    stage = pipeline.stage_named(stage_name)
    if stage is None:
        known = ", ".join(s.name for s in pipeline.stages)
        raise UsageError(f"pipeline {pipeline_name} has no stage {stage_name!r} (stages: {known})")
    return pipeline, stage


def confirm(question: str, stdin: TextIO, stderr: TextIO) -> bool:
    """Ask on stderr (stdout stays for the outcome); only "y" or "yes" proceeds."""
    print(f"{question} [y/N] ", end="", file=stderr, flush=True)
    answer = stdin.readline()
    if not answer.endswith("\n"):
        print(file=stderr)
    return answer.strip().lower() in ("y", "yes")


RequestRollback = Callable[[str, str, dict[str, Any], "Deps"], dict[str, Any]]


def _flow_rollback() -> RequestRollback:
    from deployer.flow.rollback import request_rollback

    return request_rollback


def run(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    request_rollback: RequestRollback | None = None,
) -> int:
    """The command; `environ`, `stdin` and `request_rollback` are for tests."""
    environ = os.environ if environ is None else environ
    stdin = sys.stdin if stdin is None else stdin
    target = resolve(args, environ)
    if not args.yes and not stdin.isatty():
        raise UsageError("not a terminal, so nobody can confirm: pass --yes to roll back without asking")
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.errors import DeployerError
    from deployer_cli.signals import Stopped, shielded

    outcome: dict[str, Any] | None = None
    try:
        session = session_for(target)
        deps = build_deps(target, session)
        pipeline, stage = _pipeline_and_stage(deps, args.pipeline, args.stage)
        shown = preview(deps.store, pipeline, stage)
        if not args.yes:
            print("\n".join(shown.lines()), file=sys.stderr)
            if not confirm(f"Roll back {stage.name} of {pipeline.name}?", stdin, sys.stderr):
                print("Not rolled back: nothing changed.", file=sys.stderr)
                return 1
        requested_by = {"kind": "cli", "principal": caller(session, target, environ)}
        rollback = request_rollback or _flow_rollback()
        with shielded():  # a stop signal waits until the rollback is requested, never half of it
            outcome = rollback(pipeline.name, stage.name, requested_by, deps)
    except (ClientError, BotoCoreError, DeployerError) as exc:
        print(f"deployer rollback: error: {error_line(exc, target)}", file=sys.stderr)
        return 1
    except Stopped as stop:
        if outcome is None:
            stop.detail = "nothing changed"
        elif str(outcome.get("outcome")) in STARTED:
            what = f"rollback release {outcome['release_id']}" if outcome.get("release_id") else "the rollback"
            stop.detail = f"{what} goes on ({outcome.get('outcome')}): deployer status --pipeline {args.pipeline}"
        else:
            stop.detail = f"not rolled back ({outcome.get('outcome')}): nothing changed"
        raise
    started = str(outcome.get("outcome")) in STARTED
    if args.json:
        print(json.dumps({**outcome, "started": started, "preview": asdict(shown)}, indent=2, default=str))
    else:
        print(report(outcome, shown, requested_by["principal"]), end="")
    return 0 if started else 1


def report(outcome: Mapping[str, Any], shown: Preview, principal: str) -> str:
    """The outcome in a few lines: what is rolled back, to what, the release, how to follow it."""
    kind = str(outcome.get("outcome") or "")
    reason = _text(outcome.get("reason"))
    release_id = _text(outcome.get("release_id"))
    where = f"{shown.stage} of {shown.pipeline}"
    lines: list[str] = []
    if kind == Outcome.STOPPING:
        lines.append(f"Rolling back {where}: the deployment in flight is being stopped; ECS rolls the service back.")
    elif kind == Outcome.CANCELLED:
        lines.append(f"Rolled back {where}: its before-task was still running, so no service was updated.")
    elif kind == Outcome.DEPLOYING:
        lines.append(f"Rolling back {where}: redeploying the previous successful revision.")
    elif kind == Outcome.QUEUED:
        lines.append(f"Rollback of {where} queued: it deploys once the deployment holding the service ends.")
    elif kind in (Outcome.NOTHING_TO_ROLL_BACK, Outcome.ALREADY_ROLLING_BACK):
        lines.append(f"Not rolled back: {reason or kind}.")
        return "\n".join(lines) + "\n"
    else:
        lines.append(f"Not rolled back ({kind or 'no outcome'}): {reason or 'the deployer refused'}.")
        return "\n".join(lines) + "\n"
    target = _text(outcome.get("target_task_definition")) or shown.target_task_definition
    if kind == Outcome.CANCELLED:
        lines.append(f"  keeps       {target}")
    elif target:
        # the commit is known when the flow went back to the revision the preview expected
        same = kind != Outcome.STOPPING and target == shown.target_task_definition and shown.target_commit
        commit = f" (commit {_short(shown.target_commit)})" if same else ""
        lines.append(f"  back to     {_revision(target)}{commit}")
    if outcome.get("undoes"):
        lines.append(f"  undoes      {outcome['undoes']}")
    if kind == Outcome.STOPPING and outcome.get("service_deployment"):
        lines.append(f"  stopped     {outcome['service_deployment']} (StopServiceDeployment ROLLBACK)")
    if kind == Outcome.QUEUED and (outcome.get("detail") or reason):
        lines.append(f"  queued      {outcome.get('detail') or reason}")
    if release_id:
        lines.append(f"  release     {release_id} (kind rollback)")
    lines.append(f"  asked by    {principal}")
    lines.append(f"Follow it: deployer status --pipeline {shown.pipeline}")
    return "\n".join(lines) + "\n"
