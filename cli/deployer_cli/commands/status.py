"""`deployer status`: releases newest first per pipeline, with their stages, states, times,
reasons, build log links, who decided, and approval links for releases waiting for one.

Where to read (`deployer_cli.target`, the same rule for every command), first found wins, name by
name: a flag (--table, --config-table, --signing-key-secret, --approval-url), `--stack NAME` (the
deployed stack's outputs), the environment (DEPLOYER_TABLE, DEPLOYER_CONFIG_TABLE,
DEPLOYER_SIGNING_KEY_SECRET, DEPLOYER_APPROVAL_URL), DEPLOYER_STACK, and, only when nothing names
the table, the local stack's state file (`--state`, default `.local/stack.json`, written by
`deployer local up`: its `env` names the tables, the bus, the secrets, its `approval_url` the
approval page, and its `endpoint_url` the AWS endpoint unless AWS_ENDPOINT_URL is set).
Pipelines: --pipeline (repeatable), else every pipeline of the published configuration.
Otherwise credentials, region and endpoint come from the standard AWS configuration.

Rollbacks are releases of their own (kind "rollback"): a "rollback" line says which stage goes
back to which revision and commit, the release it undoes and who asked.

Exit status: 0 shown, 1 AWS or configuration error (one line), 2 unusable arguments or nothing
says where to read (also: a named stack that cannot be read or lacks an output).

`--watch` follows the newest release of each pipeline shown (or the releases named with
`--release`) until each has ended or waits for an approval (`deployer_cli.views.watch`): one GetItem per
release every `--interval` seconds. Its exit status says how they ended: 0 every release RELEASED,
1 one failed, was rejected, expired or superseded (or an AWS error), 3 one waits for an approval,
2 unusable arguments, 128 + the signal when stopped (Ctrl-C: one line, the release goes on).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deployer_cli import UsageError
from deployer_cli.target import (
    DEFAULT_STATE_FILE,
    LOCAL_REGION,
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
    from deployer.releases.model import Release
    from deployer_cli.views.status import ApprovalLink, PipelineQuery, PipelineStatus

TABLE_ENV = "DEPLOYER_TABLE"
CONFIG_TABLE_ENV = "DEPLOYER_CONFIG_TABLE"
SIGNING_KEY_ENV = "DEPLOYER_SIGNING_KEY_SECRET"
APPROVAL_URL_ENV = "DEPLOYER_APPROVAL_URL"
EVENT_BUS_ENV = "DEPLOYER_EVENT_BUS"
SLACK_SECRET_ENV = "DEPLOYER_SLACK_SECRET"  # noqa: S105 - the variable's name, not a secret
DEFAULT_LIMIT = 10
__all__ = ["DEFAULT_STATE_FILE", "LOCAL_REGION", "Target", "resolve_target", "run", "session_for"]
DEFAULT_INTERVAL = 2.0


def _limit(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..1000")
    return value


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print a JSON list of releases (stable keys)")
    parser.add_argument(
        "--pipeline",
        action="append",
        metavar="NAME",
        help="show this pipeline (repeatable; default: every pipeline of the published configuration)",
    )
    parser.add_argument("--table", metavar="NAME", help=f"the deployer's table (default: ${TABLE_ENV})")
    parser.add_argument(
        "--config-table", metavar="NAME", help=f"the deployer's config table (default: ${CONFIG_TABLE_ENV})"
    )
    parser.add_argument(
        "--limit",
        type=_limit,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"releases per pipeline (default {DEFAULT_LIMIT})",
    )
    parser.add_argument(
        "--signing-key-secret",
        metavar="ID",
        help=f"the approval signing key's secret, to show approval links (default: ${SIGNING_KEY_ENV})",
    )
    parser.add_argument(
        "--approval-url", metavar="URL", help=f"the approval page's base URL (default: ${APPROVAL_URL_ENV})"
    )
    add_stack_argument(parser)
    add_state_argument(parser)
    parser.add_argument(
        "--watch",
        action="store_true",
        help="follow the newest release of each pipeline (or --release) until it ends or waits for an approval; "
        "exit 0 released, 1 failed, 3 waiting for approval",
    )
    parser.add_argument(
        "--release",
        action="append",
        metavar="ID",
        help="with --watch: follow this release, PIPELINE@COMMIT as status shows it (repeatable)",
    )
    parser.add_argument(
        "--interval",
        type=_interval,
        metavar="SECONDS",
        help=f"with --watch: seconds between reads (default {DEFAULT_INTERVAL:g})",
    )
    parser.set_defaults(handler=run)


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.5 <= value <= 3600:
        raise argparse.ArgumentTypeError(f"{text!r} is outside 0.5..3600 seconds")
    return value


# -- where to read ------------------------------------------------------------------------------


def resolve_target(
    args: argparse.Namespace, environ: Mapping[str, str], *, describe: DescribeStack | None = None
) -> Target:
    """Where `deployer status` reads: flags, --stack, the environment, DEPLOYER_STACK, then the
    local stack's state file (`deployer_cli.target`). UsageError when nothing says where."""
    found = resolve_names(
        {key: getattr(args, key, None) for key in NAMES},
        environ,
        stack=getattr(args, "stack", None),
        primary="table",
        want=("config_table", "signing_key_secret", "approval_url"),
        state_file=args.state,
        describe=describe,
    )
    pipelines = tuple(dict.fromkeys(args.pipeline or ()))
    if not pipelines and not found.values.get("config_table"):
        raise UsageError(
            f"no pipelines: pass --pipeline NAME, or --config-table NAME (or set {CONFIG_TABLE_ENV}) "
            "to show every published pipeline"
        )
    return target_from(found, environ, primary="table", pipelines=pipelines)


# -- running ------------------------------------------------------------------------------------


def _pipelines(target: Target, session: Any) -> list[PipelineQuery]:
    from deployer.errors import DeployerError
    from deployer.pipelines.store import ConfigStore
    from deployer_cli.views.status import PipelineQuery

    config = None
    if target.config_table:
        store = ConfigStore(
            target.config_table,
            dynamodb=session.resource("dynamodb", endpoint_url=target.endpoint_url),
            max_age_seconds=0,
        )
        try:
            config = store.load()
        except DeployerError:
            if not target.pipelines:
                raise  # nothing else says which pipelines to show
    if target.pipelines:
        queries = []
        for name in target.pipelines:
            pipeline = config.pipeline_named(name) if config else None
            queries.append(
                PipelineQuery(
                    name,
                    tuple(s.name for s in pipeline.stages) if pipeline else (),
                    pipeline.source_label if pipeline else None,
                    pipeline.branch if pipeline else None,
                    configured=pipeline is not None or config is None,
                )
            )
        return queries
    assert config is not None
    return [PipelineQuery(p.name, tuple(s.name for s in p.stages), p.source_label, p.branch) for p in config.pipelines]


def approval_link(target: Target, session: Any, table: Any, store: Any, command: str = "status") -> ApprovalLink:
    """Re-derives approval links (never stored) when the signing key and the base URL are known;
    says what is missing otherwise. A key that cannot be read is reported once, on stderr."""
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.approvals import Approvals, signing_key_from_secret
    from deployer.errors import DeployerError
    from deployer_cli.views.status import NEEDS_APPROVAL_URL, NEEDS_SIGNING_KEY

    if not target.signing_key_secret:
        return lambda _release: (None, NEEDS_SIGNING_KEY)
    if not target.approval_url:
        return lambda _release: (None, NEEDS_APPROVAL_URL)
    client = session.client("secretsmanager", endpoint_url=target.endpoint_url)
    approvals = Approvals(
        table, store, signing_key_from_secret(target.signing_key_secret, client=client), base_url=target.approval_url
    )
    warned: list[str] = []

    def link(release: Release) -> tuple[str | None, str | None]:
        try:
            found = approvals.link_for_release(release)
        except (DeployerError, BotoCoreError, ClientError) as exc:
            if not warned:
                warned.append(str(exc))
                print(f"deployer {command}: warning: approval links not shown: {exc}", file=sys.stderr)
            return None, NEEDS_SIGNING_KEY
        return (found, None) if found else (None, "(no pending approval)")

    return link


def gather(target: Target, limit: int) -> list[PipelineStatus]:
    from deployer.releases.store import ReleaseStore
    from deployer_cli.views.status import collect

    session = session_for(target)
    table = session.resource("dynamodb", endpoint_url=target.endpoint_url).Table(target.table)
    store = ReleaseStore(table)
    queries = _pipelines(target, session)
    return collect(store, queries, limit=limit, approval_link=approval_link(target, session, table, store))


def error_line(exc: Exception, target: Target) -> str:
    """One line for an AWS or domain error. An AWS error (also one the store wrapped in a
    DeploymentError) reads as its code and message, naming the tables when one is missing."""
    from botocore.exceptions import ClientError

    cause = exc if isinstance(exc, ClientError) else exc.__cause__
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        message = f"{error.get('Code', 'error')}: {error.get('Message', cause)}"
        if error.get("Code") == "ResourceNotFoundException":
            message += f" (table {target.table}" + (f" or {target.config_table}" if target.config_table else "") + ")"
    else:
        message = str(exc)
    return " ".join(message.split())


def run(args: argparse.Namespace) -> int:
    watching = getattr(args, "watch", False)
    if not watching and (getattr(args, "release", None) or getattr(args, "interval", None) is not None):
        raise UsageError("--release and --interval go with --watch")
    if watching and args.json:
        raise UsageError("--watch does not go with --json: without a terminal it prints one line per change")
    target = resolve_target(args, os.environ)
    if watching:
        from deployer_cli.commands.status_watch import run_watch

        return run_watch(args, target)
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.errors import DeployerError
    from deployer_cli.views.status import render_table, to_json

    try:
        pipelines = gather(target, args.limit)
    except (ClientError, BotoCoreError, DeployerError) as exc:
        print(f"deployer status: error: {error_line(exc, target)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(to_json(pipelines), indent=2))
    else:
        print(render_table(pipelines), end="")
    return 0
