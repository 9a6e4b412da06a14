"""Housekeeping after a deployment: scheduled tasks follow the service, old revisions go.

**Scheduled tasks** (a stage's `schedules:`). An EventBridge Scheduler schedule or an EventBridge
rule whose ECS target runs the stage's task definition family keeps running the revision it names
until someone moves it. The stage checks each one before any AWS change (it exists, and its ECS
target runs the service's family in the stage's cluster: `ScheduledTasks.check`), and once the
stage's ECS deployment completed, moves it to the revision the stage now runs
(`ScheduledTasks.move`):

- a schedule: GetSchedule, then UpdateSchedule with every field GetSchedule returned except the
  three it only reports (`SCHEDULE_READ_ONLY_KEYS`), `Target.EcsParameters.TaskDefinitionArn`
  replaced. UpdateSchedule replaces the whole schedule: EventBridge Scheduler API Reference,
  "UpdateSchedule", https://docs.aws.amazon.com/scheduler/latest/APIReference/API_UpdateSchedule.html :
  "When you call UpdateSchedule, EventBridge Scheduler uses all values, including empty values,
  specified in the request and overrides the existing schedule. [...] Before calling this
  operation, we recommend that you call the GetSchedule API operation and make a note of all
  optional parameters for your UpdateSchedule call."
- a rule: ListTargetsByRule, then PutTargets with the matching ECS targets exactly as listed,
  `EcsParameters.TaskDefinitionArn` replaced (PutTargets updates a target whose Id exists; the
  rule's other targets are not sent, so they stay as they are).

A rollback redeploys an earlier revision through the same completion, so it moves them back. A
schedule that cannot be moved (deleted meanwhile, access denied) does not fail the release: the
stage's record says which one and why, and `deployer status`, Slack and the "Release State Change"
event show it. Throttling and 5xx raise (TransientError): EventBridge redelivers the deployment's
event and the move, idempotent, is tried again.

**Old revisions** (a pipeline's `keepRevisions`, default 10). When a release reaches RELEASED,
`clean_up` deregisters revisions the deployer itself registered for the pipeline (the store's
`REGISTERED#` records: a revision registered by hand, by another tool or before this version is
never touched), keeping for each task definition family:

- the newest `keepRevisions` revisions that a stage ran (the stages' `DEPLOYED#` history);
- every revision a stage runs now or can roll back to (`flow.rollback_target`): ECS refuses to
  update a service to an INACTIVE revision, so a rollback target must stay ACTIVE;
- every revision ECS still runs (each deployment DescribeServices lists) and every revision a
  stage's scheduled tasks name (a schedule cannot run an INACTIVE revision);
- every revision newer than the newest one a stage ran, and every revision whose release has not
  ended (it may be about to be deployed).

Amazon ECS API Reference, "DeregisterTaskDefinition",
https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_DeregisterTaskDefinition.html :
"Existing tasks and services that reference an INACTIVE task definition continue to run without
disruption. [...] You can't use an INACTIVE task definition to run new tasks or create new
services, and you can't update an existing service to reference an INACTIVE task definition."

At most `MAX_DEREGISTRATIONS` per release (the rest go with the next one), oldest first. A
revision already INACTIVE (a redelivered event, someone else) counts as done. Cleaning up never
fails a release: what it could not do is reported, and the next release tries again.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from deployer import aws
from deployer.errors import DeployerError, DeploymentError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_events import EventBridgeClient

    from deployer.pipelines.schema import Pipeline, ScheduledTask, Stage
    from deployer.releases.model import Release
    from deployer.releases.store import ReleaseStore

__all__ = [
    "MAX_DEREGISTRATIONS",
    "SCHEDULE_READ_ONLY_KEYS",
    "CleanupReport",
    "ScheduleMove",
    "ScheduledTasks",
    "SchedulerClient",
    "clean_up",
    "cleanup_text",
    "cluster_of",
    "family_of",
    "put_targets_request",
    "schedule_texts",
    "update_schedule_request",
]

log = logging.getLogger("deployer")

SCHEDULE_READ_ONLY_KEYS: Final = frozenset({"Arn", "CreationDate", "LastModificationDate"})
"""Keys GetSchedule returns that UpdateSchedule does not take (a unit test compares them with
botocore's scheduler model). Every other key is sent back as it was."""

MAX_DEREGISTRATIONS: Final = 10
"""Deregistrations per release at most: the work after RELEASED stays bounded (a family with a
long backlog is cleaned over the next releases)."""

HISTORY_PAGES: Final = 20
"""Pages of a stage's history read at most to find its newest `keepRevisions` revisions."""

Outcome = Literal["moved", "unchanged", "failed"]


class SchedulerClient(Protocol):
    """The two EventBridge Scheduler calls the deployer makes (boto3's `scheduler` client)."""

    def get_schedule(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def update_schedule(self, **kwargs: Any) -> Mapping[str, Any]: ...


# -- ARNs ----------------------------------------------------------------------------------------


def family_of(task_definition_arn: str) -> str:
    """`arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3` (or `web:3`, or a family ARN) -> `web`."""
    return task_definition_arn.rsplit("/", 1)[-1].split(":", 1)[0]


def revision_of(task_definition_arn: str) -> int | None:
    """`...task-definition/web:3` -> 3; None for an ARN that names no revision (the family's latest)."""
    tail = task_definition_arn.rsplit("/", 1)[-1]
    _, colon, number = tail.partition(":")
    return int(number) if colon and number.isdigit() else None


def cluster_of(cluster_arn: str) -> str:
    """`arn:aws:ecs:eu-west-1:123456789012:cluster/prod` (or `prod`) -> `prod`."""
    return cluster_arn.rsplit("/", 1)[-1]


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


# -- scheduled tasks: requests ---------------------------------------------------------------------


def update_schedule_request(schedule: Mapping[str, Any], task_definition_arn: str) -> dict[str, Any]:
    """The UpdateSchedule request that keeps the schedule exactly as GetSchedule returned it and
    runs `task_definition_arn`: every key but `SCHEDULE_READ_ONLY_KEYS` (and the response's
    metadata), deep-copied, with `Target.EcsParameters.TaskDefinitionArn` replaced."""
    request = {
        key: copy.deepcopy(value)
        for key, value in schedule.items()
        if key not in SCHEDULE_READ_ONLY_KEYS and key != "ResponseMetadata"
    }
    ecs = (request.get("Target") or {}).get("EcsParameters")
    if not isinstance(ecs, dict):
        raise DeploymentError(f"schedule {schedule.get('Name')} has no ECS target")
    ecs["TaskDefinitionArn"] = task_definition_arn
    return request


def put_targets_request(
    rule: str, event_bus: str, targets: Sequence[Mapping[str, Any]], task_definition_arn: str
) -> dict[str, Any]:
    """The PutTargets request moving `targets` (as ListTargetsByRule returned them) to
    `task_definition_arn`: each target whole, deep-copied, `EcsParameters.TaskDefinitionArn`
    replaced. The default bus is left out of the request, as ListTargetsByRule leaves it out."""
    moved = []
    for target in targets:
        copied = copy.deepcopy(dict(target))
        copied["EcsParameters"]["TaskDefinitionArn"] = task_definition_arn
        moved.append(copied)
    request: dict[str, Any] = {"Rule": rule, "Targets": moved}
    if event_bus != "default":
        request["EventBusName"] = event_bus
    return request


# -- scheduled tasks: results ----------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleMove:
    """What happened to one scheduled task after a stage completed (stored on the stage record)."""

    kind: str  # "scheduler" | "rule"
    name: str
    where: str  # the schedule group, or the rule's event bus
    task_definition: str  # the revision the stage runs now
    outcome: Outcome
    previous: tuple[str, ...] = ()  # the revisions its ECS target(s) ran before
    error: str | None = None

    @property
    def label(self) -> str:
        """As `ScheduledTask.label` says it: `schedule nightly-report`, `rule cleanup on bus jobs`."""
        if self.kind == "scheduler":
            return f"schedule {self.name}" + ("" if self.where == "default" else f" in group {self.where}")
        return f"rule {self.name}" + ("" if self.where == "default" else f" on bus {self.where}")

    def as_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "where": self.where,
            "task_definition": self.task_definition,
            "outcome": self.outcome,
            "previous": list(self.previous),
        }
        if self.error:
            item["error"] = self.error
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> ScheduleMove:
        outcome = str(item.get("outcome", "failed"))
        return cls(
            kind=str(item.get("kind", "")),
            name=str(item.get("name", "")),
            where=str(item.get("where", "default")),
            task_definition=str(item.get("task_definition", "")),
            outcome=outcome if outcome in {"moved", "unchanged", "failed"} else "failed",  # type: ignore[arg-type]
            previous=tuple(str(p) for p in item.get("previous") or ()),
            error=str(item["error"]) if item.get("error") else None,
        )

    def text(self) -> str:
        """`schedule nightly-report: web:3 -> web:4`, `rule cleanup: NOT MOVED (...)`."""
        before = ", ".join(dict.fromkeys(_short(p) for p in self.previous)) or "?"
        if self.outcome == "moved":
            return f"{self.label}: {before} -> {_short(self.task_definition)}"
        if self.outcome == "unchanged":
            return f"{self.label}: already {_short(self.task_definition)}"
        return f"{self.label}: NOT MOVED to {_short(self.task_definition)} ({self.error or 'unknown error'})"


def schedule_texts(release: Release) -> list[tuple[str, str]]:
    """(stage, text) for every scheduled task the release's stages moved or could not move."""
    found = []
    for stage, record in release.stages.items():
        for item in record.schedules or ():
            found.append((stage, ScheduleMove.from_item(item).text()))
    return found


# -- scheduled tasks: the calls --------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """A scheduled task as AWS describes it: the schedule (GetSchedule's answer) or the rule's
    targets, and which of its ECS targets run the stage's family in the stage's cluster."""

    ref: ScheduledTask
    schedule: Mapping[str, Any] | None
    matching: tuple[Mapping[str, Any], ...]  # rule targets, or the schedule's one Target
    problem: str | None

    @property
    def running(self) -> tuple[str, ...]:
        """The task definitions its matching ECS targets run now."""
        return tuple(str(t["EcsParameters"]["TaskDefinitionArn"]) for t in self.matching)


class ScheduledTasks:
    """Reads and moves a stage's scheduled tasks; clients are built once per cold start."""

    def __init__(self, scheduler: SchedulerClient, events: EventBridgeClient) -> None:
        self.scheduler = scheduler
        self.events = events

    def check(
        self, stage: Stage, families: str | Iterable[str], ambiguous: Mapping[str, str] | None = None
    ) -> list[str]:
        """Why the stage must not deploy, one line per scheduled task that does not exist or does not
        run one of `families` (the families its services run; one for a stage of one service) in the
        stage's cluster (empty: all is well). `ambiguous`: families that several of the stage's
        services run in different revisions (family -> which), so a scheduled task of that family
        could follow neither. Reads only; TransientError raises."""
        wanted = (families,) if isinstance(families, str) else tuple(dict.fromkeys(families))
        problems = []
        for ref in stage.schedules or ():
            try:
                found = self._find(ref, wanted, stage.cluster)
            except TransientError:
                raise
            except DeploymentError as exc:
                problems.append(f"{ref.label}: {exc}")
                continue
            if found.problem:
                problems.append(found.problem)
                continue
            for family in dict.fromkeys(family_of(arn) for arn in found.running):
                if ambiguous and family in ambiguous:
                    problems.append(
                        f"{ref.label}: runs family {family}, which {ambiguous[family]}: it could follow only one of "
                        "their new revisions; give those services task definition families of their own"
                    )
        return problems

    def running(self, stage: Stage) -> set[str]:
        """Every task definition the stage's scheduled tasks' ECS targets name now (whatever their
        family): the revisions cleaning up must keep. Raises DeploymentError if one cannot be read."""
        names: set[str] = set()
        for ref in stage.schedules or ():
            if ref.kind == "scheduler":
                schedule = self._get_schedule(ref)
                arn = ((schedule.get("Target") or {}).get("EcsParameters") or {}).get("TaskDefinitionArn")
                if arn:
                    names.add(str(arn))
            else:
                for target in self._rule_targets(ref):
                    arn = (target.get("EcsParameters") or {}).get("TaskDefinitionArn")
                    if arn:
                        names.add(str(arn))
        return names

    def move(self, stage: Stage, revisions: str | Iterable[str]) -> list[ScheduleMove]:
        """Move each of the stage's scheduled tasks to the revision of its family among `revisions`
        (what the stage's services run now: one for a stage of one service). One that cannot be moved
        is reported (outcome "failed", with why) and the others still move; TransientError raises."""
        by_family: dict[str, str] = {}
        for arn in dict.fromkeys((revisions,) if isinstance(revisions, str) else revisions):
            by_family[family_of(arn)] = "" if family_of(arn) in by_family else arn  # "": two revisions of it
        moves = []
        for ref in stage.schedules or ():
            for move in self._move_one(ref, stage.cluster, by_family):
                if move.outcome == "failed":
                    log.error("scheduled task not moved: %s", move.text(), extra={"stage": stage.name})
                else:
                    log.info("scheduled task: %s", move.text(), extra={"stage": stage.name})
                moves.append(move)
        return moves

    def _move_one(self, ref: ScheduledTask, cluster: str, by_family: Mapping[str, str]) -> list[ScheduleMove]:
        """Move one scheduled task: each of its ECS targets to the new revision of its family (a rule
        may have targets of several of the stage's families)."""
        only = next(iter(by_family.values())) if len(by_family) == 1 else ""
        try:
            found = self._find(ref, tuple(by_family), cluster)
        except TransientError:
            raise
        except DeploymentError as exc:
            return [ScheduleMove(ref.kind, ref.name, ref.where, only, "failed", error=str(exc))]
        if found.problem:
            error = found.problem.removeprefix(f"{ref.label}: ")
            return [ScheduleMove(ref.kind, ref.name, ref.where, only, "failed", error=error)]
        moves = []
        for family in dict.fromkeys(family_of(arn) for arn in found.running):
            arn = by_family[family]
            try:
                if not arn:
                    raise DeploymentError(f"runs family {family}, which the stage now runs in two revisions")
                moves.append(self._move(ref, found, arn))
            except TransientError:
                raise
            except DeploymentError as exc:
                moves.append(ScheduleMove(ref.kind, ref.name, ref.where, arn, "failed", error=str(exc)))
        return moves

    # -- one scheduled task ------------------------------------------------------------------------

    def _move(self, ref: ScheduledTask, found: _Found, task_definition_arn: str) -> ScheduleMove:
        """Move `found`'s ECS targets (those running `task_definition_arn`'s family) to it."""
        family = family_of(task_definition_arn)
        found = replace(found, matching=tuple(t for t in found.matching if family_of(_task_definition(t)) == family))
        before = found.running
        if all(arn == task_definition_arn for arn in before):
            return ScheduleMove(ref.kind, ref.name, ref.where, task_definition_arn, "unchanged", before)
        if found.schedule is not None:
            aws.call(
                f"UpdateSchedule {ref.name}",
                self.scheduler.update_schedule,
                **update_schedule_request(found.schedule, task_definition_arn),
            )
        else:
            stale = [t for t in found.matching if t["EcsParameters"]["TaskDefinitionArn"] != task_definition_arn]
            response = aws.call(
                f"PutTargets {ref.name}",
                self.events.put_targets,
                **put_targets_request(ref.name, ref.where, stale, task_definition_arn),
            )
            if response.get("FailedEntryCount"):
                failed = "; ".join(
                    f"target {e.get('TargetId')}: {e.get('ErrorCode')}: {e.get('ErrorMessage')}"
                    for e in response.get("FailedEntries", [])
                )
                raise DeploymentError(f"PutTargets {ref.name} refused {failed}")
        return ScheduleMove(ref.kind, ref.name, ref.where, task_definition_arn, "moved", before)

    def _find(self, ref: ScheduledTask, families: Sequence[str], cluster: str) -> _Found:
        named = " or ".join(families)
        wanted = f"famil{'ies' if len(families) > 1 else 'y'} {named} in cluster {cluster}"
        if ref.kind == "scheduler":
            schedule = self._get_schedule(ref)
            target = schedule.get("Target") or {}
            ecs = target.get("EcsParameters")
            if not ecs:
                problem = (
                    f"{ref.label}: its target is {target.get('Arn', '?')}, not an ECS task (the stage runs {wanted})"
                )
                return _Found(ref, schedule, (), problem)
            mismatch = _mismatch(target, families, cluster)
            if mismatch:
                return _Found(ref, schedule, (), f"{ref.label}: {mismatch}, but the stage runs {wanted}")
            return _Found(ref, schedule, (target,), None)
        targets = self._rule_targets(ref)
        matching = tuple(t for t in targets if t.get("EcsParameters") and not _mismatch(t, families, cluster))
        if matching:
            return _Found(ref, None, matching, None)
        described = "; ".join(f"target {t.get('Id')}: {_describe_target(t)}" for t in targets)
        return _Found(ref, None, (), f"{ref.label}: no ECS target runs {wanted} ({described or 'it has no targets'})")

    def _get_schedule(self, ref: ScheduledTask) -> Mapping[str, Any]:
        return aws.call(f"GetSchedule {ref.name}", self.scheduler.get_schedule, Name=ref.name, GroupName=ref.where)

    def _rule_targets(self, ref: ScheduledTask) -> list[Mapping[str, Any]]:
        bus = {} if ref.where == "default" else {"EventBusName": ref.where}
        targets: list[Mapping[str, Any]] = []
        token: dict[str, str] = {}
        while True:
            response = aws.call(
                f"ListTargetsByRule {ref.name}", self.events.list_targets_by_rule, Rule=ref.name, **bus, **token
            )
            targets.extend(response.get("Targets", []))
            if not response.get("NextToken"):
                return targets
            token = {"NextToken": response["NextToken"]}


def _describe_target(target: Mapping[str, Any]) -> str:
    if not target.get("EcsParameters"):
        return f"{target.get('Arn', '?')}, not an ECS task"
    return _mismatch(target, (), "") or "?"


def _task_definition(target: Mapping[str, Any]) -> str:
    return str((target.get("EcsParameters") or {}).get("TaskDefinitionArn", ""))


def _mismatch(target: Mapping[str, Any], families: Sequence[str], cluster: str) -> str | None:
    """How an ECS target differs from running one of `families` in `cluster` (None: it matches).
    With no `families` and no `cluster`, what it runs and where."""
    arn = _task_definition(target)
    runs, where = family_of(arn), cluster_of(str(target.get("Arn", "")))
    if families and cluster and runs in families and where == cluster:
        return None
    return f"runs {_short(arn) or '?'} (family {runs}) in cluster {where}"


# -- old revisions ---------------------------------------------------------------------------------


@dataclass
class CleanupReport:
    """What cleaning up after a release did (stored on the release as `cleanup`)."""

    keep: int | None
    deregistered: list[str] = field(default_factory=list)
    kept: int = 0  # revisions the deployer registered that stay (kept, protected or too new)
    left: int = 0  # could go, but over this release's budget: the next release goes on
    failed: list[dict[str, str]] = field(default_factory=list)
    note: str | None = None

    def as_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "keep": self.keep if self.keep is not None else "all",
            "deregistered": list(self.deregistered),
            "kept": self.kept,
            "left": self.left,
        }
        if self.failed:
            item["failed"] = list(self.failed)
        if self.note:
            item["note"] = self.note
        return item


def cleanup_text(cleanup: Mapping[str, Any] | None) -> str | None:
    """One line: `deregistered web:1, web:2 (keepRevisions 10); 12 kept` ("kept" counts the revisions
    the deployer registered that stay: the newest ones and what a stage runs or can roll back to)."""
    if not cleanup:
        return None
    keep = cleanup.get("keep")
    if keep == "all":
        return "keepRevisions: all (no revision deregistered)"
    gone = [_short(str(a)) for a in cleanup.get("deregistered") or ()]
    done = f"deregistered {', '.join(gone)}" if gone else "nothing to deregister"
    stopped = cleanup.get("note") and not gone  # it stopped before it could count anything
    parts = [] if stopped else [f"{done} (keepRevisions {keep}); {cleanup.get('kept', 0)} kept"]
    if cleanup.get("left"):
        parts.append(f"{cleanup['left']} more with the next release")
    for failure in cleanup.get("failed") or ():
        parts.append(f"{_short(str(failure.get('arn', '?')))} NOT deregistered: {failure.get('error')}")
    if cleanup.get("note"):
        parts.append(str(cleanup["note"]))
    return "; ".join(parts)


def clean_up(
    store: ReleaseStore,
    ecs: ECSClient,
    pipeline: Pipeline,
    scheduled: ScheduledTasks | None = None,
    *,
    budget: int = MAX_DEREGISTRATIONS,
) -> CleanupReport:
    """Deregister what the pipeline no longer needs (see the module's docstring). Never raises for
    an AWS fault: the report's `note` or `failed` says what was not done."""
    keep = pipeline.revisions_to_keep
    report = CleanupReport(keep=keep)
    if keep is None:
        return report
    try:
        _clean_up(store, ecs, pipeline, scheduled, keep, budget, report)
    except DeployerError as exc:
        report.note = f"cleaning up stopped: {exc}; the next release tries again"
        log.warning("revision cleanup of %s stopped: %s", pipeline.name, exc)
    return report


def _clean_up(  # noqa: PLR0917 - one pass, its inputs
    store: ReleaseStore,
    ecs: ECSClient,
    pipeline: Pipeline,
    scheduled: ScheduledTasks | None,
    keep: int,
    budget: int,
    report: CleanupReport,
) -> None:
    from deployer.flow.rollback import rollback_target

    protected: set[str] = set()
    ran: dict[str, set[int]] = {}
    for stage in pipeline.stages:
        history = store.ran_revisions(pipeline.name, stage.name, distinct=keep, pages=HISTORY_PAGES)
        if history:
            protected.update(entry_revisions(history[0]))
            target = rollback_target(history)
            if target is not None:
                protected.update(entry_revisions(target))
        for entry in history:
            for arn in entry_revisions(entry):
                number = revision_of(arn)
                if number is not None:
                    ran.setdefault(family_of(arn), set()).add(number)
        if stage.schedules:
            if scheduled is None:
                raise DeploymentError(f"stage {stage.name} has scheduled tasks and they cannot be read here")
            protected |= scheduled.running(stage)
    protected |= _running_in_ecs(ecs, pipeline.stages)
    families = sorted(set(ran) | {family_of(arn) for arn in protected if arn})
    for family in families:
        ours = store.registered_revisions(pipeline.name, family)
        newest_ran = sorted(ran.get(family, ()), reverse=True)
        kept_numbers = set(newest_ran[:keep])
        candidates = []
        for item in ours:
            arn, number = str(item["arn"]), int(item["revision"])
            if arn in protected or number in kept_numbers or not newest_ran or number >= newest_ran[0]:
                report.kept += 1
                continue
            candidates.append(item)
        for item in candidates:
            if len(report.deregistered) >= budget:
                report.left += 1
                continue
            if not _registering_release_ended(store, item):
                report.kept += 1
                continue
            _deregister(store, ecs, pipeline.name, item, report)


def _running_in_ecs(ecs: ECSClient, stages: Iterable[Stage]) -> set[str]:
    """Every task definition ECS runs for these stages' services: each service's and each of its
    deployments' (PRIMARY and ACTIVE, so a deployment in flight or rolling back keeps both)."""
    by_cluster: dict[str, list[str]] = {}
    for stage in stages:
        by_cluster.setdefault(stage.cluster, []).extend(stage.service_names)
    running: set[str] = set()
    for cluster, services in by_cluster.items():
        for start in range(0, len(services), 10):  # DescribeServices takes up to 10 services
            response = aws.call(
                "DescribeServices", ecs.describe_services, cluster=cluster, services=services[start : start + 10]
            )
            for service in response.get("services", []):
                running.add(str(service.get("taskDefinition", "")))
                running.update(str(d.get("taskDefinition", "")) for d in service.get("deployments", []))
    running.discard("")
    return running


def entry_revisions(entry: Mapping[str, Any]) -> list[str]:
    """The revisions a stage history entry (`DEPLOYED#`) ran: its one, or each of its services' for a
    stage of several (in every family they run, so each family keeps its own newest revisions)."""
    if entry.get("services"):
        found = [str(s.get("task_definition_arn") or "") for s in entry["services"] if isinstance(s, Mapping)]
    else:
        found = [str(entry.get("task_definition_arn") or "")]
    return list(dict.fromkeys(arn for arn in found if arn))


def _registering_release_ended(store: ReleaseStore, item: Mapping[str, Any]) -> bool:
    release = store.get(str(item.get("release_id", "")), consistent=True) if item.get("release_id") else None
    return release is None or release.state.terminal


def _deregister(
    store: ReleaseStore,
    ecs: ECSClient,
    pipeline: str,
    item: Mapping[str, Any],
    report: CleanupReport,
) -> None:
    arn = str(item["arn"])
    try:
        aws.call("DeregisterTaskDefinition", ecs.deregister_task_definition, taskDefinition=arn)
    except TransientError:
        raise
    except DeploymentError as exc:
        if not _already_gone(ecs, arn):
            report.failed.append({"arn": arn, "error": str(exc)})
            log.error("revision %s not deregistered: %s", arn, exc)
            return
    store.forget_registration(pipeline, arn)
    report.deregistered.append(arn)
    log.info("deregistered %s (pipeline %s)", arn, pipeline)


def _already_gone(ecs: ECSClient, arn: str) -> bool:
    """Whether ECS refused to deregister `arn` because it is no longer ACTIVE (deregistered before:
    a redelivered event, or someone else). A revision that cannot be described stays on record."""
    try:
        described = aws.call("DescribeTaskDefinition", ecs.describe_task_definition, taskDefinition=arn)
    except DeploymentError:
        return False
    return str(described.get("taskDefinition", {}).get("status", "ACTIVE")) != "ACTIVE"
