"""What `deployer status` shows: each pipeline's releases, newest first, with their stages,
states, times, reasons, build log link, who decided the last approval, and, for a release waiting
for one, its approval link.

A rollback (`deployer rollback`, or the Slack button) is a release of its own, of kind
"rollback": it shows its one stage, the revision and commit it restores, the release it undoes
and who asked for it.

The link is never stored (reading the table grants no approval): it is re-derived here from the
approval record and the signing key (`Approvals.link_for_release`), exactly as the Slack message
gets it. Without the key the release shows "(link: needs the signing key)" instead.

Read-only: nothing here writes to the table.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from deployer.housekeeping import cleanup_text, schedule_texts
from deployer.releases.model import Release, ReleaseState, StageState

if TYPE_CHECKING:
    from deployer.releases.store import ReleaseStore

__all__ = [
    "NEEDS_APPROVAL_URL",
    "NEEDS_SIGNING_KEY",
    "WIDTH",
    "ApprovalLink",
    "PipelineStatus",
    "ReleaseStatus",
    "ServiceStatus",
    "StageStatus",
    "age_text",
    "collect",
    "release_status",
    "render_table",
    "to_json",
]

WIDTH: Final = 100
NEEDS_SIGNING_KEY: Final = "(link: needs the signing key)"
NEEDS_APPROVAL_URL: Final = "(link: needs the approval URL)"
NOT_REACHED: Final = "—"
_INDENT: Final = " " * 14
_LABEL_WIDTH: Final = 10

ApprovalLink = Callable[[Release], tuple[str | None, str | None]]
"""release -> (link, note): the link when it can be re-derived, else a note saying why not."""


@dataclass(frozen=True)
class ServiceStatus:
    """One service of a stage of several: where its deployment stands."""

    name: str
    state: str  # QUEUED | DEPLOYING | DEPLOYED | FAILED
    rolled_back: bool | None
    undone: str | None  # after a sibling failed: "stopped" (in flight) or "updated" (completed, put back)
    deployment_id: str | None
    task_definition: str | None
    previous_task_definition: str | None
    reason: str | None

    @property
    def label(self) -> str:
        if self.undone == "stopped":
            return "stopped, rolled back"
        if self.undone == "updated":
            return f"{self.state}, then rolled back" if self.state == StageState.DEPLOYED else "rolled back"
        if self.state == StageState.FAILED and not self.deployment_id:
            return "not deployed"
        if self.state == StageState.FAILED and self.rolled_back:
            return "FAILED, rolled back"
        return self.state

    @property
    def text(self) -> str:
        """`web DEPLOYED (web:8)`."""
        revision = f" ({self.task_definition})" if self.task_definition else ""
        return f"{self.name} {self.label}{revision}"


@dataclass(frozen=True)
class StageStatus:
    name: str
    state: str | None  # QUEUED | DEPLOYING | DEPLOYED | FAILED; None: the release has not reached it
    rolled_back: bool | None
    started_at: str | None
    finished_at: str | None
    deployment_id: str | None
    task_definition: str | None
    reason: str | None
    services: tuple[ServiceStatus, ...] = ()  # a stage of several services: each one
    settings: str | None = None  # what its revision's deploy-time settings changed (secrets by name)
    # `before:` the stage's one-off task: "migrate SUCCEEDED (exit 0), task <id>", and its log link
    before_text: str | None = None
    before_log_link: str | None = None

    @property
    def label(self) -> str:
        if self.state is None:
            return NOT_REACHED
        if self.state == StageState.FAILED and self.rolled_back:
            return "FAILED, rolled back"
        return self.state


@dataclass(frozen=True)
class ReleaseStatus:
    pipeline: str
    release_id: str
    commit: str
    short_commit: str
    repository: str
    branch: str
    state: str
    stage: str | None
    stages: tuple[StageStatus, ...]
    created_at: str
    updated_at: str
    age_seconds: int
    reason: str | None
    pusher: str | None
    image_uri: str | None
    log_link: str | None
    approval_link: str | None
    approval_note: str | None
    approval_expires_at: str | None
    decided_by: dict[str, Any] | None
    kind: str = "push"
    rollback_of: str | None = None
    requested_by: dict[str, Any] | None = None
    target_task_definition: str | None = None
    # housekeeping: (stage, text) per scheduled task moved or not, and the revisions cleaned up
    schedules: tuple[tuple[str, str], ...] = ()
    cleanup: dict[str, Any] | None = None

    @property
    def is_rollback(self) -> bool:
        return self.kind == "rollback"

    @property
    def cleanup_text(self) -> str | None:
        """`deregistered web:1, web:2; 10 kept (keepRevisions 10)`."""
        return cleanup_text(self.cleanup)

    @property
    def requested_by_text(self) -> str | None:
        """Who asked for a rollback: "Slack user U012ABCDEF", or the CLI caller's principal."""
        by = self.requested_by
        if not by:
            return None
        if by.get("kind") == "slack":
            return f"Slack user {by.get('user', '?')}"
        principal = str(by.get("principal") or by.get("user") or "unknown")
        return f"{short_principal(principal)} (CLI)"

    @property
    def rollback_text(self) -> str | None:
        """`prod back to web:3 (commit 0123456789ab), undoes web@89abcdef0123` (who asked: `requested_by_text`)."""
        if not self.is_rollback:
            return None
        target = _revision(self.target_task_definition) or "the previous revision"
        commit = f" (commit {self.short_commit})" if self.commit else ""
        parts = [f"{self.stage or 'stage'} back to {target}{commit}"]
        if self.rollback_of:
            parts.append(f"undoes {_short_release(self.rollback_of)}")
        return ", ".join(parts)

    @property
    def decided_by_text(self) -> str | None:
        by = self.decided_by
        if not by:
            return None
        decision = {"approve": "approved", "reject": "rejected"}.get(str(by.get("decision")), "decided")
        if by.get("kind") == "slack":
            who = f"Slack user {by.get('user', '?')}"
        else:
            who = f"a link holder ({by.get('source_ip') or 'unknown address'})"
        stage = str(by.get("stage") or "stage")
        at = f" at {_minutes(str(by['at']))} UTC" if by.get("at") else ""
        return f"{stage} {decision} by {who}{at}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["stages"] = [asdict(stage) for stage in self.stages]  # a stage's `services` too
        data["decided_by_text"] = self.decided_by_text
        data["requested_by_text"] = self.requested_by_text
        data["schedules"] = [{"stage": stage, "text": text} for stage, text in self.schedules]
        data["cleanup_text"] = self.cleanup_text
        return data


@dataclass(frozen=True)
class PipelineStatus:
    name: str
    releases: tuple[ReleaseStatus, ...]
    repository: str | None = None
    branch: str | None = None
    configured: bool = True  # False: not in the published configuration (asked with --pipeline)
    limited: bool = False  # True: more releases than the limit may exist


# -- building ------------------------------------------------------------------------------------


def _parse(moment: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(moment)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def short_principal(arn: str) -> str:
    """`arn:aws:sts::123456789012:assumed-role/Ops/alice` -> `assumed-role/Ops/alice`."""
    parts = arn.split(":", 5)
    return parts[5] if len(parts) == 6 and parts[0] == "arn" and parts[5] else arn


def _revision(arn: str | None) -> str | None:
    """`arn:...:task-definition/web:3` -> `web:3`."""
    return arn.rsplit("/", 1)[-1] or None if arn else None


def _short_release(release_id: str) -> str:
    """`web@<40 hex>` -> `web@<12 hex>`; other ids as they are."""
    pipeline, at, rest = release_id.partition("@")
    if at and len(rest) == 40 and all(c in "0123456789abcdef" for c in rest):
        return f"{pipeline}@{rest[:12]}"
    return release_id


def _minutes(moment: str | None) -> str:
    """ "2026-11-29 10:02" (UTC) from an ISO time; the text itself when it is not one."""
    if not moment:
        return ""
    parsed = _parse(moment)
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M") if parsed else moment


def age_text(seconds: int) -> str:
    """45s, 12m 5s, 3h 5m, 2d 4h."""
    seconds = max(0, seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def release_status(
    release: Release,
    stage_order: Sequence[str] = (),
    *,
    now: datetime | None = None,
    approval_link: ApprovalLink | None = None,
) -> ReleaseStatus:
    """What status shows of one release. `stage_order`: the pipeline's stages, so stages not
    reached yet show too; the release's own stages follow in the order it entered them."""
    moment = now or datetime.now(UTC)
    if release.is_rollback:  # one stage only: the pipeline's others are not its business
        names = list(dict.fromkeys([*release.stages, *([release.stage] if release.stage else [])]))
    else:
        names = list(dict.fromkeys([*stage_order, *release.stages]))
    stages = []
    for name in names:
        record = release.stages.get(name)
        stages.append(
            StageStatus(
                name=name,
                state=record.state.value if record else None,
                rolled_back=record.rolled_back if record else None,
                started_at=record.started_at if record else None,
                finished_at=record.finished_at if record else None,
                deployment_id=record.deployment_id if record else None,
                task_definition=_revision(record.task_definition_arn) if record else None,
                reason=record.reason if record else None,
                services=tuple(
                    ServiceStatus(
                        name=svc.service,
                        state=svc.state.value,
                        rolled_back=svc.rolled_back,
                        undone=svc.undone,
                        deployment_id=svc.deployment_id,
                        task_definition=_revision(svc.task_definition_arn),
                        previous_task_definition=_revision(svc.previous_task_definition_arn),
                        reason=svc.reason,
                    )
                    for svc in (record.services or ())
                )
                if record
                else (),
                settings=record.settings if record else None,
                before_text=_before_text(record) if record else None,
                before_log_link=record.before_log_link if record else None,
            )
        )
    link: str | None = None
    note: str | None = None
    if release.state is ReleaseState.AWAITING_APPROVAL:
        link, note = approval_link(release) if approval_link else (None, NEEDS_SIGNING_KEY)
    created = _parse(release.created_at)
    return ReleaseStatus(
        pipeline=release.pipeline,
        release_id=release.release_id,
        commit=release.commit,
        short_commit=release.short_commit,
        repository=release.repository,
        branch=release.branch,
        state=release.state.value,
        stage=release.stage,
        stages=tuple(stages),
        created_at=release.created_at,
        updated_at=release.updated_at,
        age_seconds=int((moment - created).total_seconds()) if created else 0,
        reason=release.reason,
        pusher=release.pusher,
        image_uri=release.image_uri,
        log_link=release.log_link,
        approval_link=link,
        approval_note=note,
        approval_expires_at=release.approval_expires_at,
        decided_by=dict(release.decided_by) if release.decided_by else None,
        kind=release.kind,
        rollback_of=release.rollback_of,
        requested_by=dict(release.requested_by) if release.requested_by else None,
        target_task_definition=release.target_task_definition_arn,
        schedules=tuple(schedule_texts(release)),
        cleanup=dict(release.cleanup) if release.cleanup else None,
    )


@dataclass(frozen=True)
class PipelineQuery:
    """One pipeline to show: its name, its stages in order (empty when unknown), where it comes from."""

    name: str
    stages: tuple[str, ...] = ()
    repository: str | None = None
    branch: str | None = None
    configured: bool = True


def collect(
    store: ReleaseStore,
    pipelines: Iterable[PipelineQuery],
    *,
    limit: int = 10,
    approval_link: ApprovalLink | None = None,
    now: datetime | None = None,
) -> list[PipelineStatus]:
    """Each pipeline's `limit` newest releases, newest first."""
    moment = now or datetime.now(UTC)
    result = []
    for query in pipelines:
        releases = store.list_releases(query.name, newest_first=True, limit=limit)
        result.append(
            PipelineStatus(
                name=query.name,
                releases=tuple(
                    release_status(r, query.stages, now=moment, approval_link=approval_link) for r in releases
                ),
                repository=query.repository,
                branch=query.branch,
                configured=query.configured,
                limited=len(releases) >= limit,
            )
        )
    return result


# -- output --------------------------------------------------------------------------------------


def to_json(pipelines: Iterable[PipelineStatus]) -> list[dict[str, Any]]:
    """Every release as one object with the same keys (null when absent), pipeline by pipeline."""
    return [release.to_json() for pipeline in pipelines for release in pipeline.releases]


def _fit(text: str, width: int) -> str:
    """One line of at most `width` characters: newlines folded, the end cut with "…"."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 1)] + "…"


def _cell(text: str | None, width: int) -> str:
    return _fit(text or "", width).ljust(width)


def render_table(pipelines: Iterable[PipelineStatus], width: int = WIDTH) -> str:
    """Readable in `width` columns: one row per release, then its details indented below it.
    Free text (reasons, stage lists) is cut with "…"; links are never cut (they must work)."""
    out = io.StringIO()
    first = True
    for pipeline in pipelines:
        if not first:
            print(file=out)
        first = False
        where = f" ({pipeline.repository} {pipeline.branch})" if pipeline.repository and pipeline.branch else ""
        if not pipeline.configured:
            where += " (not in the published configuration)"
        count = len(pipeline.releases)
        if not count:
            print(_fit(f"pipeline {pipeline.name}{where}: no releases", width), file=out)
            continue
        shown = f"the {count} newest" if pipeline.limited else f"{count} release{'s' if count != 1 else ''}"
        print(_fit(f"pipeline {pipeline.name}{where}: {shown}, newest first", width), file=out)
        print(
            f"{'COMMIT':<12}  {'STATE':<17}  {'STAGE':<12}  {'CREATED (UTC)':<16}  {'UPDATED (UTC)':<16}  AGE",
            file=out,
        )
        for release in pipeline.releases:
            _release_rows(out, release, width)
    return out.getvalue()


def _release_rows(out: io.StringIO, release: ReleaseStatus, width: int) -> None:
    commit = release.short_commit or NOT_REACHED
    print(
        f"{commit:<12}  {_cell(release.state, 17)}  {_cell(release.stage or NOT_REACHED, 12)}  "
        f"{_cell(_minutes(release.created_at), 16)}  {_cell(_minutes(release.updated_at), 16)}  "
        f"{age_text(release.age_seconds)}",
        file=out,
    )
    room = width - len(_INDENT) - _LABEL_WIDTH

    def detail(label: str, text: str, *, cut: bool = True) -> None:
        print(f"{_INDENT}{label:<{_LABEL_WIDTH}}{_fit(text, room) if cut else text}", file=out)

    if release.rollback_text:
        detail("rollback", release.rollback_text)
        detail("asked by", release.requested_by_text or "unknown")
    if any(stage.state for stage in release.stages) or release.state == ReleaseState.AWAITING_APPROVAL:
        detail("stages", " · ".join(f"{stage.name} {_stage_label(release, stage)}" for stage in release.stages))
    for stage in release.stages:
        if stage.services:
            # a stage of several services: where each one stands, on one line when it fits, else one each
            line = f"{stage.name}: " + " · ".join(service.text for service in stage.services)
            if len(line) <= room:
                detail("services", line)
            else:
                for index, service in enumerate(stage.services):
                    detail("services" if index == 0 else "", f"{stage.name}: {service.text}")
        if stage.settings:
            detail("settings", f"{stage.name} {stage.settings}")
        if stage.before_text:
            detail("before", f"{stage.name}: {stage.before_text}")
            if stage.before_log_link and stage.before_text.split(" ", 2)[1] == "FAILED":
                detail("task log", stage.before_log_link, cut=False)
    if release.reason:
        detail("reason", release.reason)
    if release.state == ReleaseState.AWAITING_APPROVAL:
        expires = f" (expires {_minutes(release.approval_expires_at)} UTC)" if release.approval_expires_at else ""
        if release.approval_link:
            detail("approval", release.approval_link + expires, cut=False)
        else:
            detail("approval", (release.approval_note or NEEDS_SIGNING_KEY) + expires)
    if release.log_link:
        detail("build log", release.log_link, cut=False)
    if release.decided_by_text:
        detail("decided", release.decided_by_text)
    for stage_name, text in release.schedules:
        detail("schedule", f"{stage_name}: {text}")
    if release.cleanup_text:
        detail("cleanup", release.cleanup_text)


def _before_text(record: Any) -> str | None:
    """`migrate SUCCEEDED (exit 0), task 99d17f4bc6cd…` for a stage that ran a before-task."""
    if not record.before_task:
        return None
    code = f" (exit {record.before_exit_code})" if record.before_exit_code is not None else ""
    task = f", task {record.before_task_arn.rsplit('/', 1)[-1]}" if record.before_task_arn else ""
    return f"{record.before_task} {record.before_state or 'STARTING'}{code}{task}"


def _stage_label(release: ReleaseStatus, stage: StageStatus) -> str:
    if stage.state is None and release.state == ReleaseState.AWAITING_APPROVAL and release.stage == stage.name:
        return "awaiting approval"
    return stage.label
