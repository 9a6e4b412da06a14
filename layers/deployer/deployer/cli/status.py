"""`deployer status`: releases newest first per pipeline, with their stages, states, times,
reasons, build log links, who decided, and approval links for releases waiting for one.

Where to read, first found wins:

| what                | from                                                                    |
|---------------------|-------------------------------------------------------------------------|
| releases table      | --table, $DEPLOYER_TABLE, else the local stack's state file            |
| pipelines           | --pipeline (repeatable), else the published configuration (--config-    |
|                     | table, $DEPLOYER_CONFIG_TABLE, else the state file)                     |
| approval links      | signing key: --signing-key-secret, $DEPLOYER_SIGNING_KEY_SECRET; base    |
|                     | URL: --approval-url, $DEPLOYER_APPROVAL_URL; else the state file         |

The local stack's state file (`--state`, default `.local/stack.json`, written by `deployer local
up`) is used only when neither --table nor $DEPLOYER_TABLE names the table; its `env` then names
the tables, the bus, the signing key and Slack secrets, its `approval_url` the approval page, and its
`endpoint_url` the AWS endpoint unless AWS_ENDPOINT_URL is set. Otherwise credentials, region
and endpoint come from the standard AWS configuration (a real account, or AWS_ENDPOINT_URL).

Rollbacks are releases of their own (kind "rollback"): a "rollback" line says which stage goes
back to which revision and commit, the release it undoes and who asked.

`resolve_target` is shared with `deployer rollback`, which also needs the deployer's bus
(--event-bus, $DEPLOYER_EVENT_BUS) and, to keep the release's Slack message, the Slack secret
($DEPLOYER_SLACK_SECRET); both come from the state file too.

Exit status: 0 shown, 1 AWS or configuration error (one line), 2 unusable arguments or nothing
says where to read.

`--watch` follows the newest release of each pipeline shown (or the releases named with
`--release`) until each has ended or waits for an approval (`deployer.watch`): one GetItem per
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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployer.cli import UsageError
from deployer.local.stack import process_running

if TYPE_CHECKING:
    from deployer.releases import Release
    from deployer.status import ApprovalLink, PipelineQuery, PipelineStatus

TABLE_ENV = "DEPLOYER_TABLE"
CONFIG_TABLE_ENV = "DEPLOYER_CONFIG_TABLE"
SIGNING_KEY_ENV = "DEPLOYER_SIGNING_KEY_SECRET"
APPROVAL_URL_ENV = "DEPLOYER_APPROVAL_URL"
EVENT_BUS_ENV = "DEPLOYER_EVENT_BUS"
SLACK_SECRET_ENV = "DEPLOYER_SLACK_SECRET"  # noqa: S105 - the variable's name, not a secret
DEFAULT_STATE_FILE = Path(".local/stack.json")
DEFAULT_LIMIT = 10
LOCAL_REGION = "eu-west-1"
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
    parser.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE_FILE,
        metavar="FILE",
        help=f"the local stack's state file, used when nothing names the table (default: {DEFAULT_STATE_FILE})",
    )
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


@dataclass(frozen=True)
class Target:
    table: str
    config_table: str | None
    pipelines: tuple[str, ...]
    signing_key_secret: str | None
    approval_url: str | None
    endpoint_url: str | None  # set only from the local stack's state file
    region: str | None
    local_stack: Path | None  # the state file the names came from
    event_bus: str | None = None
    ecs_endpoint_url: str | None = None  # the local stack's simulated ECS front (service deployments)
    slack_secret: str | None = None


MAX_STATE_FILE_BYTES = 1024 * 1024
"""The local stack writes a few kilobytes; anything past this is not its state file."""


def read_state_text(path: Path) -> str | None:
    """The text of the state file at `path`, None when there is none. Unreadable, not UTF-8, or
    endless (`--state /dev/zero`): a one-line UsageError."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_STATE_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read the local stack's state file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_STATE_FILE_BYTES:
        raise UsageError(f"{path} is not a local stack's state file (longer than 1 MiB): restart `deployer local up`")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not a local stack's state file (not UTF-8: byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}): restart `deployer local up`, or pass --state FILE"
        ) from None


def _state_file(path: Path) -> dict[str, Any] | None:
    """The local stack's state, or None when there is no file. Stale or malformed: UsageError."""
    text = read_state_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
        env = data.get("env") or {}
        if not isinstance(data, dict) or not isinstance(env, dict):
            raise TypeError("not an object")
        pid = data.get("pid")
    except (ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is not a local stack's state file ({exc})") from None
    if isinstance(pid, int) and not process_running(pid):
        raise UsageError(
            f"the local stack in {path} (pid {pid}) is not running: start it with `deployer local up`, "
            f"or pass --table for another deployment"
        )
    return data


def resolve_target(args: argparse.Namespace, environ: Mapping[str, str]) -> Target:
    """Where `deployer status` reads, from the arguments, then the environment, then the local
    stack's state file. UsageError when nothing says where."""
    table = args.table or environ.get(TABLE_ENV)
    config_table = args.config_table or environ.get(CONFIG_TABLE_ENV)
    signing_key = args.signing_key_secret or environ.get(SIGNING_KEY_ENV)
    approval_url = args.approval_url or environ.get(APPROVAL_URL_ENV)
    event_bus = getattr(args, "event_bus", None) or environ.get(EVENT_BUS_ENV)
    slack_secret = getattr(args, "slack_secret", None) or environ.get(SLACK_SECRET_ENV)
    endpoint_url: str | None = None
    ecs_endpoint_url: str | None = None
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    local_stack: Path | None = None
    if not table:
        state = _state_file(args.state)
        if state is None:
            raise UsageError(
                f"no table: pass --table NAME or set {TABLE_ENV} (the stack's DeployerTable output), "
                f"or start the local stack (`deployer local up`, which writes {args.state})"
            )
        env = {str(k): str(v) for k, v in (state.get("env") or {}).items()}
        table = env.get(TABLE_ENV)
        if not table:
            raise UsageError(f"the local stack's state file {args.state} names no {TABLE_ENV}: pass --table NAME")
        local_stack = args.state
        config_table = config_table or env.get(CONFIG_TABLE_ENV)
        signing_key = signing_key or env.get(SIGNING_KEY_ENV)
        approval_url = approval_url or state.get("approval_url") or env.get(APPROVAL_URL_ENV)
        event_bus = event_bus or env.get(EVENT_BUS_ENV)
        slack_secret = slack_secret or env.get(SLACK_SECRET_ENV)
        if not environ.get("AWS_ENDPOINT_URL") and state.get("endpoint_url"):
            endpoint_url = str(state["endpoint_url"])
            ecs_endpoint_url = str(state.get("ecs_endpoint_url") or env.get("AWS_ENDPOINT_URL_ECS") or "") or None
        region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or LOCAL_REGION
    pipelines = tuple(dict.fromkeys(args.pipeline or ()))
    if not pipelines and not config_table:
        raise UsageError(
            f"no pipelines: pass --pipeline NAME, or --config-table NAME (or set {CONFIG_TABLE_ENV}) "
            "to show every published pipeline"
        )
    return Target(
        table=table,
        config_table=config_table or None,
        pipelines=pipelines,
        signing_key_secret=signing_key or None,
        approval_url=str(approval_url) if approval_url else None,
        endpoint_url=endpoint_url,
        region=region,
        local_stack=local_stack,
        event_bus=event_bus or None,
        slack_secret=slack_secret or None,
        ecs_endpoint_url=ecs_endpoint_url,
    )


# -- running ------------------------------------------------------------------------------------


def session_for(target: Target) -> Any:
    """A boto3 session for `target` (local credentials for the local stack's moto server)."""
    import boto3

    session = boto3.session.Session(region_name=target.region)
    if target.endpoint_url and session.get_credentials() is None:
        # moto server takes any credentials; a machine without an AWS profile has none.
        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto server's, not a secret
            region_name=target.region,
        )
    return session


def _pipelines(target: Target, session: Any) -> list[PipelineQuery]:
    from deployer.errors import DeployerError
    from deployer.pipelines import ConfigStore
    from deployer.status import PipelineQuery

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
                    pipeline.repository if pipeline else None,
                    pipeline.branch if pipeline else None,
                    configured=pipeline is not None or config is None,
                )
            )
        return queries
    assert config is not None
    return [PipelineQuery(p.name, tuple(s.name for s in p.stages), p.repository, p.branch) for p in config.pipelines]


def _approval_link(target: Target, session: Any, table: Any, store: Any) -> ApprovalLink:
    """Re-derives approval links (never stored) when the signing key and the base URL are known;
    says what is missing otherwise. A key that cannot be read is reported once, on stderr."""
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.approvals import Approvals, signing_key_from_secret
    from deployer.errors import DeployerError
    from deployer.status import NEEDS_APPROVAL_URL, NEEDS_SIGNING_KEY

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
                print(f"deployer status: warning: approval links not shown: {exc}", file=sys.stderr)
            return None, NEEDS_SIGNING_KEY
        return (found, None) if found else (None, "(no pending approval)")

    return link


def gather(target: Target, limit: int) -> list[PipelineStatus]:
    from deployer.releases import ReleaseStore
    from deployer.status import collect

    session = session_for(target)
    table = session.resource("dynamodb", endpoint_url=target.endpoint_url).Table(target.table)
    store = ReleaseStore(table)
    queries = _pipelines(target, session)
    return collect(store, queries, limit=limit, approval_link=_approval_link(target, session, table, store))


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
        from deployer.cli.status_watch import run_watch

        return run_watch(args, target)
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.errors import DeployerError
    from deployer.status import render_table, to_json

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
