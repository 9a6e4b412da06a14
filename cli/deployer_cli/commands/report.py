"""`deployer report`: DORA figures per pipeline from the release store (deployment frequency, lead
time for changes, change failure rate, time to restore), as a table, `--json`, or `--html FILE`
(a self-contained page with an SVG chart). Definitions: `deployer_cli.views.report` and docs/report.md.

It finds the deployer as `deployer status` does (--table, $DEPLOYER_TABLE, or the local stack's
state file; pipelines from --pipeline or the published configuration) and reads each pipeline's
releases with a paginated Query on the pipeline index (never a Scan), from 14 days before the
window's start so a release pushed earlier but deployed inside the window still counts.

Exit status: 0 shown, 1 AWS or configuration error (one line), 2 unusable arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final

from deployer_cli import UsageError
from deployer_cli.commands.status import CONFIG_TABLE_ENV, DEFAULT_STATE_FILE, TABLE_ENV

if TYPE_CHECKING:
    from deployer_cli.commands.status import Target
    from deployer_cli.views.report import Report

DEFAULT_SINCE: Final = "30d"
LOOKBACK: Final = timedelta(days=14)
MAX_WINDOW: Final = timedelta(days=3660)
_DURATION = re.compile(r"([1-9][0-9]{0,4})([hdw])")
_UNITS: Final = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def _now() -> datetime:
    return datetime.now(UTC)


def since_from(text: str, now: datetime) -> datetime:
    """`30d`, `12h`, `2w` (back from now), or a UTC date or time (`2026-11-01`, `2026-11-01T08:00:00Z`).
    UsageError otherwise, or when it is in the future or more than ten years back."""
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match:
        since = now - int(match.group(1)) * _UNITS[match.group(2)]
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise UsageError(
                f"--since {text!r}: use a duration (30d, 12h, 2w) or a UTC date or time (2026-11-01)"
            ) from None
        since = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).astimezone(UTC)
    if since >= now:
        raise UsageError(f"--since {text!r} is not in the past ({since:%Y-%m-%d %H:%M} UTC)")
    if now - since > MAX_WINDOW:
        raise UsageError(f"--since {text!r} reaches back more than ten years")
    return since


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pipeline",
        action="append",
        metavar="NAME",
        help="report this pipeline (repeatable; default: every pipeline of the published configuration)",
    )
    parser.add_argument(
        "--since",
        default=DEFAULT_SINCE,
        metavar="WHEN",
        help=f"the window's start: 30d, 12h, 2w back from now, or a UTC date (default {DEFAULT_SINCE})",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="print one JSON object (schema 1)")
    output.add_argument(
        "--html", type=Path, metavar="FILE", help="write a self-contained HTML page with a chart to FILE"
    )
    parser.add_argument("--table", metavar="NAME", help=f"the deployer's table (default: ${TABLE_ENV})")
    parser.add_argument(
        "--config-table", metavar="NAME", help=f"the deployer's config table (default: ${CONFIG_TABLE_ENV})"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE_FILE,
        metavar="FILE",
        help=f"the local stack's state file, used when nothing names the table (default: {DEFAULT_STATE_FILE})",
    )
    parser.set_defaults(handler=run, signing_key_secret=None, approval_url=None)


def gather(target: Target, since: datetime, until: datetime) -> Report:
    from deployer.releases.store import ReleaseStore
    from deployer_cli.commands.status import _pipelines, session_for
    from deployer_cli.views.report import Report, compute

    session = session_for(target)
    table = session.resource("dynamodb", endpoint_url=target.endpoint_url).Table(target.table)
    store = ReleaseStore(table)
    start_key = (since - LOOKBACK).strftime("%Y-%m-%dT%H:%M:%SZ")
    pipelines = []
    for query in _pipelines(target, session):
        releases, _pages = store.releases_since(query.name, start_key)
        pipelines.append(
            compute(query.name, releases, stages=query.stages, since=since, until=until, configured=query.configured)
        )
    return Report(since, until, tuple(pipelines))


def _check_html_path(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"--html {path} is a directory: name a file")
    if not path.parent.is_dir():
        raise UsageError(f"--html {path}: the directory {path.parent} does not exist")


def run(args: argparse.Namespace, *, now: Callable[[], datetime] | None = None) -> int:
    from deployer_cli.commands.status import error_line, resolve_target

    until = (now or _now)()
    since = since_from(args.since, until)
    if args.html is not None:
        _check_html_path(args.html)
    target = resolve_target(args, os.environ)
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.errors import DeployerError
    from deployer_cli.views.report import render_html, render_table, to_json

    try:
        report = gather(target, since, until)
    except (ClientError, BotoCoreError, DeployerError) as exc:
        print(f"deployer report: error: {error_line(exc, target)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(to_json(report), indent=2))
    elif args.html is not None:
        page = render_html(report)
        try:
            args.html.write_text(page, encoding="utf-8")
        except OSError as exc:
            print(f"deployer report: error: cannot write {args.html}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        print(f"Wrote {args.html} ({len(page.encode())} bytes): {len(report.pipelines)} pipeline(s).")
    else:
        print(render_table(report), end="")
    return 0
