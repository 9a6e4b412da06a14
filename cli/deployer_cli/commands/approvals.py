"""`deployer approvals`: the approvals waiting now, oldest first, with who may decide, when they
expire and their links (re-derived from the record and the signing key: links are never stored).

The waiting releases are read through the table's sparse `pending` index, pipeline by pipeline
(`ReleaseStore.waiting_releases`, what the expiry sweep reads), so the cost follows how many wait,
not the history. Pipelines: --pipeline (repeatable), else every pipeline of the published
configuration. Approvers come from the published configuration (the stage's `approval.approvers`).

Where to read: the rule of every command (`deployer_cli.target`): flags, --stack, the environment,
DEPLOYER_STACK, the local stack's state file. Without the signing key or the approval URL the
approvals are still listed, each saying what its link needs.

Exit status: 0 listed (also when none waits), 1 AWS or configuration error (one line), 2 unusable
arguments or nothing says where to read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployer_cli import UsageError
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
    from deployer.pipelines.schema import PipelinesConfig
    from deployer.releases.model import Release
    from deployer.releases.store import ReleaseStore


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipeline",
        action="append",
        metavar="NAME",
        help="only this pipeline (repeatable; default: every pipeline of the published configuration)",
    )
    parser.add_argument("--json", action="store_true", help="print a JSON list of waiting approvals (stable keys)")
    parser.add_argument("--table", metavar="NAME", help=f"the deployer's table (default: ${NAMES['table'].env})")
    parser.add_argument(
        "--config-table", metavar="NAME", help=f"the deployer's config table (default: ${NAMES['config_table'].env})"
    )
    parser.add_argument(
        "--signing-key-secret",
        metavar="ID",
        help=f"the approval signing key's secret, to show the links (default: ${NAMES['signing_key_secret'].env})",
    )
    parser.add_argument(
        "--approval-url", metavar="URL", help=f"the approval page's base URL (default: ${NAMES['approval_url'].env})"
    )
    add_stack_argument(parser)
    add_state_argument(parser)
    parser.set_defaults(handler=run)


def resolve(args: argparse.Namespace, environ: Mapping[str, str], *, describe: DescribeStack | None = None) -> Target:
    found = resolve_names(
        {key: getattr(args, key, None) for key in NAMES},
        environ,
        stack=args.stack,
        primary="table",
        need=("config_table",),
        want=("signing_key_secret", "approval_url"),
        state_file=args.state,
        describe=describe,
    )
    return target_from(found, environ, primary="table", pipelines=tuple(dict.fromkeys(args.pipeline or ())))


# -- what is waiting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """One approval waiting for a decision (the JSON keys)."""

    pipeline: str
    stage: str
    release_id: str
    commit: str
    pusher: str | None
    image: str | None
    waiting_since: str
    expires_at: str | None
    approvers: tuple[str, ...]
    paused_at: str | None  # a PAUSE hook inside the deployment (approval `at:`), else None
    link: str | None
    link_note: str | None  # what the link needs when it cannot be shown


Link = Callable[["Release"], tuple[str | None, str | None]]


def waiting(
    store: ReleaseStore, config: PipelinesConfig, pipelines: Sequence[str], link: Link
) -> tuple[list[Waiting], list[str]]:
    """Every approval waiting in `pipelines` (all configured ones when empty), oldest first, and
    the pipelines that were read."""
    names = list(pipelines) or [p.name for p in config.pipelines]
    unknown = [name for name in names if config.pipeline_named(name) is None]
    if unknown:
        known = ", ".join(p.name for p in config.pipelines) or "none"
        raise UsageError(f"no pipeline {unknown[0]!r} in the published configuration (pipelines: {known})")
    found: list[Waiting] = []
    for name in names:
        pipeline = config.pipeline_named(name)
        assert pipeline is not None
        for release in store.waiting_releases(name):
            stage = pipeline.stage_named(release.stage or "")
            approval = stage.approval if stage else None
            url, note = link(release)
            found.append(
                Waiting(
                    pipeline=name,
                    stage=release.stage or "?",
                    release_id=release.release_id,
                    commit=release.commit,
                    pusher=release.pusher,
                    image=release.image_uri,
                    waiting_since=release.updated_at,
                    expires_at=release.approval_expires_at,
                    approvers=tuple(approval.approvers) if approval else (),
                    paused_at=_text((release.approval_context or {}).get("paused_at")),
                    link=url,
                    link_note=note,
                )
            )
    found.sort(key=lambda w: (w.waiting_since, w.pipeline, w.stage))
    return found, names


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _moment(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def render(found: Sequence[Waiting], pipelines: Sequence[str], now: datetime) -> str:
    from deployer_cli.views.status import age_text, short_principal

    if not found:
        return f"No approval is waiting (pipelines: {', '.join(pipelines) or 'none'}).\n"
    lines = [f"{len(found)} approval{'s' if len(found) != 1 else ''} waiting, oldest first"]
    for item in found:
        since = _moment(item.waiting_since)
        expires = _moment(item.expires_at)
        head = f"{item.pipeline} → {item.stage}  commit {item.commit[:12]}"
        if item.pusher:
            head += f" by {short_principal(item.pusher)}"
        lines.append(head)
        if since:
            lines.append(
                f"  waiting    {age_text(int((now - since).total_seconds()))} (since {since:%Y-%m-%d %H:%M} UTC)"
            )
        if expires:
            left = int((expires - now).total_seconds())
            when = f"in {age_text(left)}" if left > 0 else "expired, the next sweep ends it"
            lines.append(f"  expires    {expires:%Y-%m-%d %H:%M} UTC ({when})")
        if item.paused_at:
            lines.append(f"  paused at  {item.paused_at} (ECS waits inside the deployment)")
        lines.append(f"  approvers  {', '.join(item.approvers) or 'anyone holding the link'}")
        lines.append(f"  link       {item.link or item.link_note or '(no link)'}")
    return "\n".join(lines) + "\n"


# -- running --------------------------------------------------------------------------------------


def _link(target: Target, session: Any, table: Any, store: ReleaseStore) -> Link:
    from deployer_cli.commands.status import approval_link

    return approval_link(target, session, table, store, "approvals")


def run(args: argparse.Namespace, *, now: datetime | None = None) -> int:
    target = resolve(args, os.environ)
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.errors import DeployerError
    from deployer.pipelines.store import ConfigStore
    from deployer.releases.store import ReleaseStore
    from deployer_cli.commands.status import error_line

    try:
        session = session_for(target)
        dynamodb = session.resource("dynamodb", endpoint_url=target.endpoint_url)
        table = dynamodb.Table(target.table)
        store = ReleaseStore(table)
        assert target.config_table is not None
        config = ConfigStore(target.config_table, dynamodb=dynamodb, max_age_seconds=0).load()
        found, pipelines = waiting(store, config, target.pipelines, _link(target, session, table, store))
    except (ClientError, BotoCoreError, DeployerError) as exc:
        print(f"deployer approvals: error: {error_line(exc, target)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([asdict(item) for item in found], indent=2))
    else:
        print(render(found, pipelines, now or datetime.now(UTC)), end="")
    return 0
