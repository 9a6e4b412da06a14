"""`deployer status --watch`: which releases to follow, how to read them, how to draw them
(`deployer_cli.views.watch` runs the loop). Reads only, like `deployer status`."""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployer_cli.commands.status import DEFAULT_INTERVAL, Target, _pipelines, approval_link, error_line, session_for

if TYPE_CHECKING:
    from deployer.releases.model import Release
    from deployer.releases.store import ReleaseStore
    from deployer_cli.views.status import PipelineQuery

_COMMIT_PREFIX = re.compile(r"[0-9a-f]{7,40}")
_RECENT = 50  # a commit prefix is looked for among the pipeline's newest releases


def _sleep(seconds: float) -> None:
    time.sleep(seconds)


def _now() -> datetime:
    return datetime.now(UTC)


class NotFound(Exception):
    """A release to watch that the table does not have (one line, exit 1)."""


def resolve_releases(store: ReleaseStore, names: Sequence[str], pipelines: Sequence[str]) -> list[str]:
    """Release ids from `--release` values: an id as stored (`web@<commit>`, `web@rollback-...`),
    `web@<commit prefix>` (7+ hex digits, among the pipeline's newest releases), or a bare commit
    prefix when exactly one --pipeline is given."""
    ids: list[str] = []
    for name in names:
        pipeline, at, rest = name.partition("@")
        if not at:
            if len(pipelines) != 1:
                raise NotFound(f"--release {name!r}: name it PIPELINE@COMMIT, as `deployer status` shows it")
            pipeline, rest = pipelines[0], name
        if not pipeline or not rest:
            raise NotFound(f"--release {name!r}: name it PIPELINE@COMMIT, as `deployer status` shows it")
        exact = f"{pipeline}@{rest}"
        if store.get(exact) is not None:
            ids.append(exact)
            continue
        if not _COMMIT_PREFIX.fullmatch(rest):
            raise NotFound(f"no release {exact} (a commit prefix needs 7 or more hex digits)")
        matches = [r.release_id for r in store.list_releases(pipeline, limit=_RECENT) if r.commit.startswith(rest)]
        if len(matches) != 1:
            found = "no release" if not matches else f"{len(matches)} releases"
            raise NotFound(f"{found} of pipeline {pipeline} with a commit starting {rest} among its {_RECENT} newest")
        ids.append(matches[0])
    return list(dict.fromkeys(ids))


def newest_releases(store: ReleaseStore, queries: Sequence[PipelineQuery]) -> list[str]:
    ids = []
    for query in queries:
        newest = store.list_releases(query.name, newest_first=True, limit=1)
        if newest:
            ids.append(newest[0].release_id)
    if not ids:
        names = ", ".join(q.name for q in queries) or "none"
        raise NotFound(f"no release to watch (pipelines: {names})")
    return ids


def run_watch(args: argparse.Namespace, target: Target) -> int:
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.errors import DeployerError
    from deployer.releases.store import ReleaseStore
    from deployer_cli.signals import Stopped
    from deployer_cli.views.status import PipelineStatus, release_status, render_table
    from deployer_cli.views.watch import watch

    try:
        session = session_for(target)
        table = session.resource("dynamodb", endpoint_url=target.endpoint_url).Table(target.table)
        store = ReleaseStore(table)
        queries = _pipelines(target, session)
        if args.release:
            ids = resolve_releases(store, args.release, target.pipelines)
        else:
            ids = newest_releases(store, queries)
        approval = approval_link(target, session, table, store)
    except NotFound as exc:
        print(f"deployer status: error: {exc}", file=sys.stderr)
        return 1
    except (ClientError, BotoCoreError, DeployerError) as exc:
        print(f"deployer status: error: {error_line(exc, target)}", file=sys.stderr)
        return 1
    order = {q.name: q.stages for q in queries}

    def read() -> list[Release]:
        releases = []
        for release_id in ids:
            found = store.get(release_id)
            if found is None:
                raise DeployerError(f"release {release_id} is no longer in table {target.table}")
            releases.append(found)
        return releases

    def frame(releases: list[Release], moment: datetime) -> str:
        grouped: dict[str, list[Any]] = {}
        for release in releases:
            status = release_status(release, order.get(release.pipeline, ()), now=moment, approval_link=approval)
            grouped.setdefault(release.pipeline, []).append(status)
        return render_table(PipelineStatus(name, tuple(shown)) for name, shown in grouped.items())

    def link(release: Release) -> str | None:
        return approval(release)[0]

    follow = f"deployer status --watch --release {ids[0]}" if len(ids) == 1 else "deployer status"
    try:
        return watch(
            read,
            out=sys.stdout,
            tty=sys.stdout.isatty(),
            interval=args.interval or DEFAULT_INTERVAL,
            sleep=_sleep,
            now=_now,
            stage_order=lambda release: order.get(release.pipeline, ()),
            frame=frame,
            link=link,
        )
    except Stopped as stop:
        stop.detail = f"the release goes on without the watch: {follow}"
        raise
    except (ClientError, BotoCoreError, DeployerError) as exc:
        print(f"deployer status: error: {error_line(exc, target)}", file=sys.stderr)
        return 1
