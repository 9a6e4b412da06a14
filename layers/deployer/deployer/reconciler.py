"""The reconciler: no release stays stuck because an event was lost.

AWS services deliver their events to EventBridge on a best-effort basis ("in some rare cases an
event might not be delivered": EventBridge User Guide, "Event delivery from AWS services"; CodeBuild
and CodeCommit are best effort), and ECS sends SERVICE_DEPLOYMENT_FAILED only when the circuit
breaker is on, so a deployment without one that never finishes sends nothing at all. The sweep of
`OnApprovalFunction` (every 15 minutes) therefore asks AWS directly about every release that waits
on an event, reading them through the sparse `pending` index (never a Scan):

- **BUILDING** for more than `EVENT_GRACE`: BatchGetBuilds by the build id recorded at StartBuild
  (up to 100 ids per call). A build that ended at least `EVENT_GRACE` ago and whose event never came
  is finished exactly as its "CodeBuild Build State Change" would have (`build_finished`):
  SUCCEEDED deploys the first stage, FAILED / FAULT / STOPPED / TIMED_OUT end BUILD_FAILED with the
  status. IN_PROGRESS is left alone (CodeBuild ends it by its own `timeoutInMinutes`; past its
  startTime + timeoutInMinutes + `BUILD_MARGIN` the sweep says so in its log). A build CodeBuild no
  longer knows ends BUILD_FAILED "build not found"; a release whose StartBuild was never recorded
  ends BUILD_FAILED once EventBridge can no longer redeliver its push (`PUSH_REDELIVERY`).
- **BUILT** (the first stage never started) or **DEPLOYED** (the next stage never started) for more
  than `EVENT_GRACE`: the step that was interrupted runs (`resume_unfinished`).
- **DEPLOYING**: the stage's service deployment, found with ListServiceDeployments (created since
  the stage started) and read with DescribeServiceDeployments. SUCCESSFUL, finished at least
  `EVENT_GRACE` ago: promoted as its lost COMPLETED would have (`stage_completed`). STOPPED or
  ROLLBACK_SUCCESSFUL / ROLLBACK_FAILED: DEPLOY_FAILED, with whether ECS rolled the service back.
  Still PENDING or IN_PROGRESS past the stage's deadline (`deadlineMinutes`, or the strategy's
  default; counted from when the stage last started deploying, so an approval's wait never counts):
  StopServiceDeployment ROLLBACK, DEPLOY_FAILED "no completion within N minutes; rolled back". A
  deployment paused at a PAUSE hook is never stuck (its hook's timeout governs it); if it is the
  stage's own approval pause and its "ECS Hook State Change" was lost, the approval is asked now.
  A release QUEUED behind a holder that has ended gets the lock it was never handed.

Every outcome ends in a known state with its reason, frees the service lock and hands it to the
next waiter (`hand_over_to`). Every transition the reconciler makes says so: its reason starts
with "reconciler: " (in `deployer status`, Slack and the "Release State Change" events), and each
action is one log line starting with "reconciler:". Each write is conditional on the release as
read, so a late event, or two sweeps overlapping, act once: the loser sees the release moved on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

from deployer import aws, before, ecs_deployments
from deployer.errors import ConfigError, DeploymentError, TransientError
from deployer.events.codebuild import FINAL_BUILD_STATUSES, BuildStatus
from deployer.flow.build import build_finished
from deployer.flow.common import EXPORTED_IMAGE, _pipeline
from deployer.flow.deployment import ask_during, before_task_ended, service_completed, stage_completed
from deployer.flow.progress import deploy_next, deploy_stage, hand_over, hand_over_all, hand_over_to, resume_unfinished
from deployer.outcomes import Outcome
from deployer.pipelines.schema import DEFAULT_BEFORE_TIMEOUT_MINUTES, ROLLING_DEADLINE_MINUTES
from deployer.releases.model import Release, ReleaseState, ServiceRecord, StageRecord, StageState, now_iso
from deployer.releases.store import ConflictError

if TYPE_CHECKING:
    from deployer.deps import Deps
    from deployer.flow.common import Result
    from deployer.pipelines.schema import Pipeline, Stage

log = logging.getLogger("deployer")

ACTOR: Final = "reconciler"
# A finished build or deployment whose event has not arrived this long after it ended is lost
# (EventBridge delivers within seconds; its retries of a failing target are the target's own).
EVENT_GRACE: Final = timedelta(minutes=10)
# Past a build's startTime + timeoutInMinutes, CodeBuild has ended it: this much later, say so.
BUILD_MARGIN: Final = timedelta(minutes=10)
# How long EventBridge may still redeliver a push (the rules' MaximumEventAgeInSeconds, 1 hour).
PUSH_REDELIVERY: Final = timedelta(hours=1)
BUILD_IDS_PER_CALL: Final = 100  # BatchGetBuilds: ids 1..100 (botocore's CodeBuild model)
# The service deployment a stage started was created after the stage started; a few seconds of
# clock difference between Lambda and ECS are allowed.
CLOCK_SKEW: Final = timedelta(seconds=5)
SETTLED_SUCCESS: Final = "SUCCESSFUL"
SETTLED_FAILURES: Final = ("STOPPED", "ROLLBACK_SUCCESSFUL", "ROLLBACK_FAILED")
ENDING: Final = ("STOP_REQUESTED", "ROLLBACK_REQUESTED", "ROLLBACK_IN_PROGRESS")
# The sweep's own time budget, within the function's 30 s timeout: what is left waits 15 minutes.
DEFAULT_BUDGET_SECONDS: Final = 20.0


@dataclass(frozen=True)
class _Clock:
    now: datetime

    def older_than(self, stamp: str | datetime | None, age: timedelta) -> bool:
        if stamp is None:
            return True
        moment = stamp if isinstance(stamp, datetime) else _parse(stamp)
        return moment + age <= self.now


def reconcile(
    deps: Deps,
    now: datetime | None = None,
    *,
    budget_seconds: float = DEFAULT_BUDGET_SECONDS,
    monotonic: Callable[[], float] = time.monotonic,
) -> list[Result]:
    """Check every release of the published pipelines that waits on an event, and end or move on
    those whose event was lost. Returns one outcome per release acted on (or left with a note)."""
    clock = _Clock((now or datetime.now(UTC)).astimezone(UTC))
    started = monotonic()
    outcomes: list[Result] = []
    with deps.store.acting_as(ACTOR):
        for pipeline in deps.config().pipelines:
            work: list[Callable[[], list[Result]]] = [
                partial(_builds, pipeline, deps, clock),
                *(
                    partial(_one, release, pipeline, deps, clock)
                    for release in deps.store.inflight_releases(pipeline.name)
                ),
            ]
            for step in work:
                if monotonic() - started > budget_seconds:
                    log.warning("reconciler: out of time; the rest waits for the next sweep")
                    return outcomes
                outcomes.extend(step())
    return outcomes


def backfill(deps: Deps) -> dict[str, list[str]]:
    """One-off after an upgrade: index the DEPLOYING / DEPLOYED releases written before the
    reconciler's index entry existed (`ReleaseStore.backfill_inflight`), per published pipeline."""
    done = {pipeline.name: deps.store.backfill_inflight(pipeline.name) for pipeline in deps.config().pipelines}
    log.info("reconciler: index backfilled", extra={"backfilled": done})
    return done


# -- one release, safely ------------------------------------------------------------------------


def _guarded(release: Release, action: Callable[[], Result | None]) -> list[Result]:
    """Run one release's check; a race lost or an AWS error stays with that release (logged, retried
    by the next sweep) and never stops the sweep."""
    base = {"pipeline": release.pipeline, "release_id": release.release_id}
    try:
        outcome = action()
    except ConflictError:
        outcome = {"outcome": Outcome.MOVED_ON, "reason": "the release changed meanwhile (its event, or another sweep)"}
    except (DeploymentError, TransientError, ConfigError) as exc:
        log.warning("reconciler: %s: %s", release.release_id, exc, extra=base)
        return [{**base, "outcome": Outcome.ERROR, "reason": str(exc)}]
    if outcome is None:
        return []
    result = {**base, **outcome}
    log.info("reconciler: %s %s: %s", release.release_id, result.get("outcome"), result.get("reason", ""), extra=result)
    return [result]


def _one(release: Release, pipeline: Pipeline, deps: Deps, clock: _Clock) -> list[Result]:
    return _guarded(release, partial(_inflight, release, pipeline, deps, clock))


# -- builds -------------------------------------------------------------------------------------


def _builds(pipeline: Pipeline, deps: Deps, clock: _Clock) -> list[Result]:
    outcomes: list[Result] = []
    checked: list[Release] = []
    for release in deps.store.building_releases(pipeline.name):
        if not clock.older_than(release.updated_at, EVENT_GRACE):
            continue
        if release.state is ReleaseState.BUILT:
            outcomes.extend(_guarded(release, partial(_resume, release, "its first stage never started", deps)))
        elif release.build_id:
            checked.append(release)
        elif clock.older_than(release.created_at, PUSH_REDELIVERY):
            outcomes.extend(_guarded(release, partial(_no_build, release, deps)))
    for start in range(0, len(checked), BUILD_IDS_PER_CALL):
        batch = checked[start : start + BUILD_IDS_PER_CALL]
        try:
            builds = _batch_get_builds(deps, [r.build_id or "" for r in batch])
        except (DeploymentError, TransientError) as exc:
            log.warning("reconciler: BatchGetBuilds failed: %s", exc)
            outcomes.extend(
                {"pipeline": r.pipeline, "release_id": r.release_id, "outcome": Outcome.ERROR, "reason": str(exc)}
                for r in batch
            )
            continue
        for release in batch:
            build = builds.get(release.build_id or "")
            outcomes.extend(_guarded(release, partial(_build, release, build, deps, clock)))
    return outcomes


def _batch_get_builds(deps: Deps, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    response = aws.call("BatchGetBuilds", deps.codebuild.batch_get_builds, ids=list(ids))
    return {str(build["id"]): dict(build) for build in response.get("builds", [])}


def _build(release: Release, build: dict[str, Any] | None, deps: Deps, clock: _Clock) -> Result | None:
    fresh = deps.store.get(release.release_id)
    if fresh is None or fresh.state is not ReleaseState.BUILDING or fresh.build_id != release.build_id:
        return None  # its event arrived meanwhile
    if build is None:
        reason = f"build not found: CodeBuild does not know build {release.build_id} (BatchGetBuilds)"
        deps.store.transition(fresh, ReleaseState.BUILD_FAILED, reason=reason, allowed_from={ReleaseState.BUILDING})
        return {"outcome": Outcome.BUILD_FAILED, "reason": reason}
    status = str(build.get("buildStatus") or "")
    if status == BuildStatus.IN_PROGRESS or status not in FINAL_BUILD_STATUSES:
        ends = _build_ends(build)
        if ends is not None and clock.older_than(ends, BUILD_MARGIN):
            log.warning(
                "reconciler: %s: build %s still %s past its timeout (%s UTC); left to CodeBuild",
                release.release_id,
                release.build_id,
                status or "without a status",
                f"{ends:%Y-%m-%d %H:%M}",
            )
        return None
    ended = build.get("endTime")
    if isinstance(ended, datetime) and not clock.older_than(ended, EVENT_GRACE):
        return None  # finished moments ago: its event is on its way
    when = f" at {ended.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if isinstance(ended, datetime) else ""
    note = f" (CodeBuild reports {status}{when}; its event never arrived)"
    finished = build_finished(fresh, status, _exported(build, EXPORTED_IMAGE), _log_link(build), deps, note=note)
    if finished is not None:
        return finished
    deployed = deploy_next(fresh, deps, after=None)
    return {"outcome": Outcome.BUILT, "reason": f"build {status}{when}; its event never arrived", "next": deployed}


def _build_ends(build: dict[str, Any]) -> datetime | None:
    started, minutes = build.get("startTime"), build.get("timeoutInMinutes")
    if not isinstance(started, datetime) or not isinstance(minutes, int):
        return None
    queued = build.get("queuedTimeoutInMinutes")
    return started + timedelta(minutes=minutes + (queued if isinstance(queued, int) else 0))


def _exported(build: dict[str, Any], name: str) -> str | None:
    """As the event's `exported`: the last value of `name`, an empty one counting as absent."""
    found: str | None = None
    for variable in build.get("exportedEnvironmentVariables") or ():
        if variable.get("name") == name:
            found = variable.get("value") or None
    return found


def _log_link(build: dict[str, Any]) -> str | None:
    link = (build.get("logs") or {}).get("deepLink")
    return str(link) if isinstance(link, str) and link.startswith("https://") else None


def _no_build(release: Release, deps: Deps) -> Result:
    reason = (
        "no build was recorded for this release: its push was never fully handled, and EventBridge no "
        "longer redelivers it (push the commit again to build it)"
    )
    deps.store.transition(release, ReleaseState.BUILD_FAILED, reason=reason, allowed_from={ReleaseState.BUILDING})
    return {"outcome": Outcome.BUILD_FAILED, "reason": reason}


def _resume(release: Release, why: str, deps: Deps) -> Result | None:
    """BUILT whose first stage never started, or DEPLOYED whose next step never started: do it."""
    fresh = deps.store.get(release.release_id)
    if fresh is None or fresh.state is not release.state or fresh.version != release.version:
        return None
    if fresh.state is ReleaseState.BUILT and not fresh.stages:
        if fresh.is_rollback and fresh.stage:
            pipeline = _pipeline(deps, fresh.pipeline)
            stage = pipeline.stage_named(fresh.stage)
            if stage is None:
                return None
            return {"outcome": Outcome.RESUMED, "reason": why, "next": deploy_stage(fresh, pipeline, stage, deps)}
        return {"outcome": Outcome.RESUMED, "reason": why, "next": deploy_next(fresh, deps, after=None)}
    resumed = resume_unfinished(fresh, deps)
    return None if resumed is None else {"outcome": Outcome.RESUMED, "reason": why, "next": resumed}


# -- stages -------------------------------------------------------------------------------------


def _inflight(release: Release, pipeline: Pipeline, deps: Deps, clock: _Clock) -> Result | None:
    stage_name = release.stage or ""
    record = release.stages.get(stage_name)
    if record is None:
        return None
    stage = pipeline.stage_named(stage_name)
    if release.state is ReleaseState.DEPLOYED:
        if record.state is StageState.DEPLOYED and clock.older_than(release.updated_at, EVENT_GRACE):
            return _resume(release, f"{stage_name} completed but what follows it never started", deps)
        return None
    if record.state is StageState.QUEUED:
        return _queued(release, record, deps)
    if record.state is not StageState.DEPLOYING:
        return None
    if record.before_state in before.WAITING and not record.all_started:
        return _before_task(release, stage_name, record, stage, deps, clock)
    if not record.all_started:
        # RegisterTaskDefinition done, UpdateService never: the event that started it was not redelivered
        if clock.older_than(release.updated_at, EVENT_GRACE):
            return _resume(release, f"{stage_name}: its revision was registered but never deployed", deps)
        return None
    if record.services is not None:
        return _deploying_several(release, stage_name, record, stage, deps, clock)
    return _deploying(release, stage_name, record, stage, deps, clock)


def _before_task(  # noqa: PLR0917 - the stage as the sweep found it
    release: Release, stage_name: str, record: StageRecord, stage: Stage | None, deps: Deps, clock: _Clock
) -> Result | None:
    """A stage waiting for its before-task. Being started (STARTING) past `EVENT_GRACE`: the event
    that started it was not redelivered, so the step runs again (RunTask's clientToken returns the
    same task if it did start). RUNNING: DescribeTasks. STOPPED at least `EVENT_GRACE` ago: ended as
    its lost "ECS Task State Change" would have (`before_task_ended`). Still running past the
    step's `timeoutMinutes`: StopTask, DEPLOY_FAILED, nothing deployed. Unknown to ECS: DEPLOY_FAILED."""
    step = record.before_task or "before"
    arn = record.before_task_arn
    if record.before_state == before.BeforeState.STARTING or not arn:
        if not clock.older_than(release.updated_at, EVENT_GRACE):
            return None
        return _resume(release, f"{stage_name}: before-task {step} was being started and never recorded", deps)
    ecs = deps.stages.ecs
    task = before.describe_task(ecs, record.cluster, arn)
    started = record.before_started_at or record.started_at
    minutes = stage.before.timeout_minutes if stage is not None and stage.before is not None else None
    minutes = minutes or DEFAULT_BEFORE_TIMEOUT_MINUTES
    failed = replace(record, before_state=before.BeforeState.FAILED.value)
    if task is None:
        if not clock.older_than(started, EVENT_GRACE):
            return None
        reason = f"before-task {step}: ECS no longer knows task {arn} (DescribeTasks); nothing was deployed"
        return _fail(release, stage_name, failed, stage, reason, rolled_back=False, deps=deps)
    if task.get("lastStatus") == "STOPPED":
        stopped = task.get("stoppedAt")
        if isinstance(stopped, datetime) and not clock.older_than(stopped, EVENT_GRACE):
            return None  # stopped moments ago: its event is on its way
        when = f" at {stopped.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if isinstance(stopped, datetime) else ""
        note = f" (ECS reports the task STOPPED{when}; its event never arrived)"
        ended = before_task_ended(release, stage_name, record, before.TaskEnd.from_described(task), deps, note=note)
        return {"reason": f"before-task {step} stopped{when}", **ended}
    if not clock.older_than(started, timedelta(minutes=minutes)):
        return None
    before.stop_task(
        ecs, record.cluster, arn, f"ecs-deployer: before-task {step} of {release.release_id} ran past {minutes} minutes"
    )
    reason = (
        f"before-task {step} did not finish within {minutes} minutes (timeoutMinutes): stopped task "
        f"{arn.rsplit('/', 1)[-1]} (StopTask); nothing was deployed"
    )
    return {"stopped": arn, **_fail(release, stage_name, failed, stage, reason, rolled_back=False, deps=deps)}


def _queued(release: Release, record: StageRecord, deps: Deps) -> Result | None:
    """QUEUED behind a holder that ended without handing the lock on: hand it on now. A stage of
    several services waits for the first lock (in lock order) it does not hold."""
    store = deps.store
    for cluster, service in sorted(record.service_keys(), key=lambda key: f"{key[0]}/{key[1]}"):
        lock = store.lock_of(cluster, service) or {}
        holder_id = str(lock.get("holder") or "")
        if holder_id != release.release_id:
            break
    else:
        return None  # it holds every lock already; its deployment is starting
    holder = store.get(holder_id) if holder_id else None
    if holder is not None and not holder.state.terminal:
        return None  # a live holder: it hands the lock on when it ends (or the reconciler ends it)
    reason = f"the lock of {cluster}/{service} was held by {holder_id or 'nobody'}, which has ended"
    if holder_id:
        follow = hand_over_to(store.release_service(cluster, service, holder_id), deps)
    else:
        pipeline = _pipeline(deps, release.pipeline)
        stage = pipeline.stage_named(release.stage or "")
        follow = {"next": deploy_stage(release, pipeline, stage, deps)} if stage is not None else {}
    return {"outcome": Outcome.HANDED_OVER, "reason": reason, **follow}


def _deploying(  # noqa: PLR0917 - the stage as the sweep found it
    release: Release, stage_name: str, record: StageRecord, stage: Stage | None, deps: Deps, clock: _Clock
) -> Result | None:
    ecs = deps.stages.ecs
    view = _service_deployment(ecs, record)
    minutes = stage.deadline_minutes_or_default() if stage is not None else ROLLING_DEADLINE_MINUTES
    since = max(_parse(record.started_at), _parse(release.deploying_since or record.started_at))
    past_deadline = clock.older_than(since, timedelta(minutes=minutes))
    ecs_id = record.deployment_id
    if view is None:
        if not past_deadline:
            return None
        reason = (
            f"no completion within {minutes} minutes, and ECS lists no service deployment of {ecs_id} on "
            f"{record.cluster}/{record.service}: check the service; the deployer has let it go"
        )
        return _fail(release, stage_name, record, stage, reason, rolled_back=False, deps=deps)
    settled = view.status in {SETTLED_SUCCESS, *SETTLED_FAILURES}
    if settled and not clock.older_than(view.finished_at, EVENT_GRACE):
        return None  # ECS finished moments ago: its event is on its way
    if view.status == SETTLED_SUCCESS:
        when = f" at {view.finished_at:%Y-%m-%d %H:%M} UTC" if view.finished_at else ""
        note = f" (ECS reports {view.arn} SUCCESSFUL{when}; its COMPLETED event never arrived)"
        return {
            "reason": f"{stage_name} completed{when}",
            **stage_completed(release, stage_name, record, deps, note=note),
        }
    if view.status in SETTLED_FAILURES:
        rolled_back = view.status == "ROLLBACK_SUCCESSFUL"
        why = view.status_reason or view.rollback_reason or "no reason given"
        reason = f"ECS deployment {ecs_id} ended {view.status}: {why}" + (
            "; ECS rolled the service back" if rolled_back else ""
        )
        return _fail(release, stage_name, record, stage, reason, rolled_back=rolled_back, deps=deps)
    if view.status in ENDING:
        return None  # ECS is stopping or rolling it back: the next sweep sees how it ended
    paused = ecs_deployments.paused_hook(view.detail)
    if paused is not None:
        return _paused(release, stage_name, record, stage, view, paused, deps)
    if not past_deadline:
        return None
    ecs_deployments.stop_with_rollback(ecs, view.arn)
    reason = (
        f"no completion within {minutes} minutes; rolled back (ECS deployment {ecs_id} was still {view.status} "
        f"past the deadline of {stage_name}: StopServiceDeployment ROLLBACK on {view.arn})"
    )
    return {"stopped": view.arn, **_fail(release, stage_name, record, stage, reason, rolled_back=True, deps=deps)}


def _deploying_several(  # noqa: PLR0917 - the stage as the sweep found it
    release: Release, stage_name: str, record: StageRecord, stage: Stage | None, deps: Deps, clock: _Clock
) -> Result | None:
    """`_deploying` for each service of a stage of several: a lost COMPLETED completes that service
    (and the stage with its last one, `service_completed`); a failed, vanished or overdue
    deployment fails the stage, which puts the other services back (`StageDeployer.fail_services`)."""
    ecs = deps.stages.ecs
    minutes = stage.deadline_minutes_or_default() if stage is not None else ROLLING_DEADLINE_MINUTES
    since = max(_parse(record.started_at), _parse(release.deploying_since or record.started_at))
    past_deadline = clock.older_than(since, timedelta(minutes=minutes))
    completed: list[str] = []
    for service in record.services or ():
        if service.state is not StageState.DEPLOYING or not service.deployment_id:
            continue
        current = release.stages[stage_name]  # as the writes below left it
        svc = current.service_named(service.cluster, service.service) or service
        view = _find_service_deployment(ecs, svc.cluster, svc.service, record.started_at, None)
        where = f"{svc.service} (ECS deployment {svc.deployment_id})"
        if view is None:
            if not past_deadline:
                continue
            why = (
                f"no completion within {minutes} minutes, and ECS lists no service deployment of {svc.deployment_id} "
                f"on {svc.cluster}/{svc.service}: check the service; the deployer has let it go"
            )
            return _fail_several(release, stage_name, current, svc, stage, why, rolled_back=False, deps=deps)
        settled = view.status in {SETTLED_SUCCESS, *SETTLED_FAILURES}
        if settled and not clock.older_than(view.finished_at, EVENT_GRACE):
            continue  # ECS finished moments ago: its event is on its way
        if view.status == SETTLED_SUCCESS:
            when = f" at {view.finished_at:%Y-%m-%d %H:%M} UTC" if view.finished_at else ""
            note = f" (ECS reports {view.arn} SUCCESSFUL{when}; its COMPLETED event never arrived)"
            outcome = service_completed(release, stage_name, current, svc, deps, note=note)
            completed.append(svc.service)
            if outcome.get("outcome") != Outcome.SERVICE_DEPLOYED:
                return {"reason": f"{stage_name} completed with {svc.service}{when}", **outcome}
            continue
        if view.status in SETTLED_FAILURES:
            rolled_back = view.status == "ROLLBACK_SUCCESSFUL"
            why = f"ECS deployment {svc.deployment_id} ended {view.status}: " + (
                view.status_reason or view.rollback_reason or "no reason given"
            )
            return _fail_several(release, stage_name, current, svc, stage, why, rolled_back=rolled_back, deps=deps)
        if view.status in ENDING or ecs_deployments.paused_hook(view.detail) is not None or not past_deadline:
            continue  # ending, or paused at a hook (its timeout governs it), or still on time
        ecs_deployments.stop_with_rollback(ecs, view.arn)
        why = (
            f"no completion within {minutes} minutes; rolled back ({where} was still {view.status} past the "
            f"deadline of {stage_name}: StopServiceDeployment ROLLBACK on {view.arn})"
        )
        failed = _fail_several(release, stage_name, current, svc, stage, why, rolled_back=True, deps=deps)
        return {"stopped": view.arn, **failed}
    if completed:
        return {
            "outcome": Outcome.SERVICE_DEPLOYED,
            "reason": f"{', '.join(completed)} of {stage_name} completed; the COMPLETED event never arrived",
        }
    return None


def _fail_several(  # noqa: PLR0917 - what _deploying_several found
    release: Release,
    stage_name: str,
    record: StageRecord,
    svc: ServiceRecord,
    stage: Stage | None,
    why: str,
    *,
    rolled_back: bool,
    deps: Deps,
) -> Result:
    failed = replace(svc, state=StageState.FAILED, finished_at=now_iso(), rolled_back=rolled_back, reason=why)
    result = deps.stages.fail_services(
        release, stage_name, record.with_service(failed), failed=failed, why=f"{svc.service} failed", stage=stage
    )
    return {"outcome": Outcome.FAILED, "reason": result.detail, "rolled_back": rolled_back, **hand_over(result, deps)}


def _paused(  # noqa: PLR0917 - what _deploying found
    release: Release,
    stage_name: str,
    record: StageRecord,
    stage: Stage | None,
    view: _Found,
    hook: ecs_deployments.HookView,
    deps: Deps,
) -> Result | None:
    """A deployment waiting at a PAUSE hook is not stuck: the hook's timeout governs it. The stage's
    own approval pause whose "ECS Hook State Change" was lost gets its approval asked now."""
    if release.is_rollback or stage is None or stage.approval is None or stage.approval.at is None:
        return None
    at = view.detail.lifecycle_stage or stage.approval.at
    asked = ask_during(release, stage, record, view.detail, hook, deps, at=at)
    return {
        "outcome": Outcome.AWAITING_APPROVAL,
        "reason": f"{stage_name} paused at {at}; its event never arrived",
        **asked,
    }


def _fail(
    release: Release,
    stage_name: str,
    record: StageRecord,
    stage: Stage | None,
    reason: str,
    *,
    rolled_back: bool,
    deps: Deps,
) -> Result:
    """DEPLOY_FAILED with the reason and whether ECS rolled back; the service's lock goes to the waiter."""
    store = deps.store
    release.stages[stage_name] = replace(record, rolled_back=rolled_back)
    if stage is not None:
        result = deps.stages.fail(release, stage, ReleaseState.DEPLOY_FAILED, reason)
        follow = hand_over(result, deps)
    else:  # the stage left the configuration: still end the release and free the service
        ended = replace(release.stages[stage_name], state=StageState.FAILED, finished_at=now_iso(), reason=reason)
        store.transition(
            release,
            ReleaseState.DEPLOY_FAILED,
            stage=stage_name,
            reason=reason,
            stages={**release.stages, stage_name: ended},
        )
        follow = hand_over_all(store.release_services(record.service_keys(), release.release_id), deps)
    return {"outcome": Outcome.FAILED, "reason": reason, "rolled_back": rolled_back, **follow}


# -- ECS service deployments ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    """The stage's service deployment as DescribeServiceDeployments shows it."""

    detail: ecs_deployments.ServiceDeploymentView
    finished_at: datetime | None
    rollback_reason: str | None

    @property
    def arn(self) -> str:
        return self.detail.arn

    @property
    def status(self) -> str:
        return self.detail.status

    @property
    def status_reason(self) -> str | None:
        return self.detail.status_reason


def _service_deployment(ecs: Any, record: StageRecord) -> _Found | None:
    """The service deployment the stage's UpdateService started: the one recorded (a paused stage
    records it), else the first one ECS created on the service since the stage started (the
    service's lock keeps the deployer from starting another meanwhile). UpdateService does not
    return its ARN, hence ListServiceDeployments."""
    return _find_service_deployment(
        ecs, record.cluster, record.service, record.started_at, record.service_deployment_arn
    )


def _find_service_deployment(ecs: Any, cluster: str, service: str, started_at: str, arn: str | None) -> _Found | None:
    if arn is None:
        response = aws.call(
            "ListServiceDeployments",
            ecs.list_service_deployments,
            cluster=cluster,
            service=service,
            createdAt={"after": _parse(started_at) - CLOCK_SKEW},
            maxResults=100,
        )
        briefs = sorted(response.get("serviceDeployments", []), key=lambda b: _moment(b.get("createdAt")))
        if not briefs:
            return None
        arn = str(briefs[0]["serviceDeploymentArn"])
    response = aws.call("DescribeServiceDeployments", ecs.describe_service_deployments, serviceDeploymentArns=[arn])
    described = response.get("serviceDeployments", [])
    if not described:
        return None
    raw = dict(described[0])
    finished = raw.get("finishedAt") or raw.get("stoppedAt")
    return _Found(
        detail=ecs_deployments.describe_one(raw),
        finished_at=finished if isinstance(finished, datetime) else None,
        rollback_reason=(raw.get("rollback") or {}).get("reason"),
    )


def _moment(value: object) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _parse(stamp: str) -> datetime:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
