"""ECS's events (OnDeploymentFunction): a deployment completed or failed (one service of a stage
of several, or the whole stage), a circuit breaker rolling back, a PAUSE hook asking for approval
inside a deployment, a before-task that stopped."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from deployer import before, ecs_deployments
from deployer.deps import Deps
from deployer.errors import ConfigError
from deployer.events.ecs import (
    DeploymentEvent,
    EcsDeploymentStateChangeEvent,
    EcsHookStateChangeDetail,
    EcsHookStateChangeEvent,
    EcsTaskStateChangeEvent,
    HookEvent,
)
from deployer.flow.common import Result, _ignored, _pipeline, _short_arn
from deployer.flow.progress import (
    _end_pause_or_wait,
    approval_context,
    deploy_next,
    hand_over,
    hand_over_all,
    move_scheduled_tasks,
    resume_unfinished,
)
from deployer.outcomes import Outcome
from deployer.releases.model import Release, ReleaseState, ServiceRecord, StageRecord, StageState, now_iso

if TYPE_CHECKING:
    from deployer.pipelines.schema import Stage


# -- on_deployment ------------------------------------------------------------------------------


def on_deployment(event: EcsDeploymentStateChangeEvent, deps: Deps) -> Result:
    store = deps.store
    detail = event.detail
    if event.is_rollback:
        return _rolling_back(event, deps)
    if event.deployment_event not in {DeploymentEvent.COMPLETED, DeploymentEvent.FAILED}:
        return _ignored(event, f"{detail.event_name}: nothing to do")
    found = store.deployment(detail.deployment_id)
    if found is None:
        return _ignored(event, f"deployment {detail.deployment_id} was not started by the deployer")
    release_id, stage_name = found
    release = store.get(release_id)
    if release is None:
        return _ignored(event, f"release {release_id} of deployment {detail.deployment_id} is gone")
    record = release.stages.get(stage_name)
    base = {"pipeline": release.pipeline, "release_id": release_id, "stage": stage_name}
    if record is not None and record.services is not None:
        return {**base, **_service_event(event, release, stage_name, record, deps)}
    if record is None or record.deployment_id != detail.deployment_id or record.state is not StageState.DEPLOYING:
        completed_here = (
            record is not None and record.deployment_id == detail.deployment_id and record.state is StageState.DEPLOYED
        )
        resumed = resume_unfinished(release, deps) if completed_here else None
        if resumed is not None:
            return {**base, **resumed}
        return {**base, "outcome": Outcome.DUPLICATE, "reason": f"stage {stage_name} is not deploying this deployment"}
    if event.deployment_event is DeploymentEvent.FAILED:
        pipeline = _pipeline(deps, release.pipeline)
        stage = pipeline.stage_named(stage_name)
        breaker = (stage.deployment_configuration() if stage else {}).get("deploymentCircuitBreaker") or {}
        rolled_back = (
            bool(record.rolled_back)
            or "rolling back" in (detail.reason or "").casefold()
            or ("circuit breaker" in (detail.reason or "") and bool(breaker.get("enable") and breaker.get("rollback")))
        )
        reason = f"ECS deployment {detail.deployment_id} failed: {detail.reason or 'no reason given'}" + (
            "; ECS is rolling the service back" if rolled_back else ""
        )
        failed = replace(record, rolled_back=rolled_back)
        release.stages[stage_name] = failed
        if stage is None:  # the stage left the configuration: still end the release and free the service
            store.transition(release, ReleaseState.DEPLOY_FAILED, stage=stage_name, reason=reason)
            store.release_service(record.cluster, record.service, release_id)
            return {**base, "outcome": Outcome.FAILED, "reason": reason}
        result = deps.stages.fail(release, stage, ReleaseState.DEPLOY_FAILED, reason)
        return {
            **base,
            "outcome": Outcome.FAILED,
            "reason": reason,
            "rolled_back": rolled_back,
            **hand_over(result, deps),
        }
    return {**base, **stage_completed(release, stage_name, record, deps)}


def _service_event(
    event: EcsDeploymentStateChangeEvent, release: Release, stage_name: str, record: StageRecord, deps: Deps
) -> Result:
    """COMPLETED or FAILED of one service of a stage of several (`services:`)."""
    detail = event.detail
    svc = record.service_with_deployment(detail.deployment_id)
    if svc is None:
        return {
            "outcome": Outcome.DUPLICATE,
            "reason": f"deployment {detail.deployment_id} is not one of {stage_name}'s",
        }
    if (
        release.state is not ReleaseState.DEPLOYING
        or record.state is not StageState.DEPLOYING
        or svc.state is not StageState.DEPLOYING
    ):
        completed_here = record.state is StageState.DEPLOYED and svc.state is StageState.DEPLOYED
        resumed = resume_unfinished(release, deps) if completed_here else None
        if resumed is not None:
            return resumed
        return {
            "outcome": Outcome.DUPLICATE,
            "reason": f"{svc.service} of {stage_name} is {svc.state} ({record.state})",
        }
    if event.deployment_event is DeploymentEvent.FAILED:
        stage = _pipeline(deps, release.pipeline).stage_named(stage_name)
        rolled_back = _breaker_rolls_back(stage, bool(svc.rolled_back), detail.reason)
        failure = f"ECS deployment {detail.deployment_id} failed: {detail.reason or 'no reason given'}"
        failed = replace(
            svc,
            state=StageState.FAILED,
            finished_at=now_iso(),
            rolled_back=rolled_back,
            reason=failure + ("; ECS is rolling it back" if rolled_back else "; ECS does not roll it back"),
        )
        result = deps.stages.fail_services(
            release, stage_name, record.with_service(failed), failed=failed, why=f"{svc.service} failed", stage=stage
        )
        return {
            "outcome": Outcome.FAILED,
            "reason": result.detail,
            "rolled_back": rolled_back,
            **hand_over(result, deps),
        }
    return service_completed(release, stage_name, record, svc, deps)


def _breaker_rolls_back(stage: Stage | None, recorded: bool, reason: str | None) -> bool:
    """Whether ECS rolls a failed deployment back: its rollback was seen, its reason says so, or the
    circuit breaker that failed it has rollback on."""
    breaker = (stage.deployment_configuration() if stage else {}).get("deploymentCircuitBreaker") or {}
    return (
        recorded
        or "rolling back" in (reason or "").casefold()
        or ("circuit breaker" in (reason or "") and bool(breaker.get("enable") and breaker.get("rollback")))
    )


def service_completed(
    release: Release, stage_name: str, record: StageRecord, svc: ServiceRecord, deps: Deps, *, note: str = ""
) -> Result:
    """One service of a stage of several completed. The stage completes (`stage_completed`) with the
    last one, in the same conditional write that records it, so duplicate and reordered events
    complete it once; until then the release says which services it waits for."""
    done = replace(svc, state=StageState.DEPLOYED, finished_at=now_iso())
    record = record.with_service(done)
    waiting = [s.service for s in record.services or () if s.state is not StageState.DEPLOYED]
    if not waiting:
        return stage_completed(release, stage_name, record, deps, note=note)
    revision = _short_arn(done.task_definition_arn)
    deps.store.transition(
        release,
        ReleaseState.DEPLOYING,
        stage=stage_name,
        reason=f"{stage_name}: {svc.service} runs {revision}{note}; waiting for {', '.join(waiting)}",
        stages={**release.stages, stage_name: record},
        allowed_from={ReleaseState.DEPLOYING},
        announce=True,
    )
    return {"outcome": Outcome.SERVICE_DEPLOYED, "service": svc.service, "waiting_for": waiting}


def stage_completed(release: Release, stage_name: str, record: StageRecord, deps: Deps, *, note: str = "") -> Result:
    """The stage's ECS deployment completed (every one, for a stage of several services): DEPLOYED,
    the services' locks to whoever waits, then the next stage (or its approval, or RELEASED).
    Shared by on_deployment's COMPLETED and the reconciler (a COMPLETED event that was lost), whose
    `note` ends the reason. The first write is conditional on the release as read, so a late event
    and the reconciler promote once."""
    store = deps.store
    base = {"pipeline": release.pipeline, "release_id": release.release_id, "stage": stage_name}
    moved = move_scheduled_tasks(release, stage_name, record, deps)
    done = replace(record, state=StageState.DEPLOYED, finished_at=now_iso())
    if moved is not None:
        done = replace(done, schedules=moved)
    if done.services is not None:
        revision = ", ".join(f"{s.service} {_short_arn(s.task_definition_arn)}" for s in done.services)
    else:
        revision = (record.task_definition_arn or "?").rsplit("/", 1)[-1]
    store.transition(
        release,
        ReleaseState.DEPLOYED,
        stage=stage_name,
        reason=f"{stage_name} runs {revision}{note}",
        stages={**release.stages, stage_name: done},
    )
    store.record_success(release, stage_name, done)
    follow = hand_over_all(store.release_services(done.service_keys(), release.release_id), deps)
    if release.is_rollback:
        store.transition(
            release, ReleaseState.RELEASED, stage=stage_name, reason=f"{stage_name} rolled back to {revision}"
        )
        return {**base, "outcome": Outcome.ROLLED_BACK, **follow}
    return {**base, "outcome": Outcome.DEPLOYED, **follow, "next": deploy_next(release, deps, after=stage_name)}


def _rolling_back(event: EcsDeploymentStateChangeEvent, deps: Deps) -> Result:
    """ECS names the rollback's own deployment, not ours: find the stage through the service's
    latest deployment started by the deployer, and record that ECS is rolling it back."""
    found = deps.store.latest_deployment(event.cluster_name, event.service_name)
    if found is None:
        return _ignored(event, f"rollback on {event.cluster_name}/{event.service_name}, not a deployer deployment")
    release_id, stage_name = found
    release = deps.store.get(release_id)
    record = release.stages.get(stage_name) if release else None
    if release is None or record is None:
        return _ignored(event, f"rollback on {event.cluster_name}/{event.service_name}: release {release_id} is gone")
    if record.services is not None:
        svc = record.service_named(event.cluster_name, event.service_name)
        if svc is None:
            return _ignored(event, f"rollback on {event.cluster_name}/{event.service_name}: not in {stage_name}")
        if svc.rolled_back:
            return {"release_id": release_id, "stage": stage_name, "outcome": Outcome.DUPLICATE}
        if svc.state is not StageState.DEPLOYING or event.detail.updated_at < datetime.fromisoformat(record.started_at):
            return _ignored(event, f"rollback predates deployment {svc.deployment_id}")
        rolled = record.with_service(replace(svc, rolled_back=True))
        deps.store.save(release, stages={**release.stages, stage_name: rolled})
        return {
            "release_id": release_id,
            "stage": stage_name,
            "service": svc.service,
            "outcome": Outcome.ROLLING_BACK,
            "reason": event.detail.reason,
        }
    if record.rolled_back:
        return {"release_id": release_id, "stage": stage_name, "outcome": Outcome.DUPLICATE}
    if record.state is not StageState.DEPLOYING or event.detail.updated_at < datetime.fromisoformat(record.started_at):
        return _ignored(event, f"rollback predates deployment {record.deployment_id}")
    rolled = replace(record, rolled_back=True)
    deps.store.save(release, stages={**release.stages, stage_name: rolled})
    return {
        "release_id": release_id,
        "stage": stage_name,
        "outcome": Outcome.ROLLING_BACK,
        "reason": event.detail.reason,
    }


# -- before-tasks (`before:` a one-off task before a stage's service is updated) ------------------


def on_task_stopped(event: EcsTaskStateChangeEvent, deps: Deps) -> Result:
    """A task stopped. Only a before-task the deployer started (startedBy "ecs-deployer/<token>",
    the token indexed before RunTask) moves a release: exit code 0 of its container deploys the
    stage, anything else ends the release DEPLOY_FAILED (`before_task_ended`). Another task, a task
    of another deployer stack, a redelivered event or one for a step already decided changes
    nothing."""
    detail = event.detail
    where = f"task {detail.task_arn.rsplit('/', 1)[-1]} on {detail.cluster_name}"
    if not detail.stopped:
        return _ignored(event, f"{where} is {detail.last_status}: the deployer acts on STOPPED only")
    token = before.token_of(detail.started_by)
    if token is None:
        return _ignored(event, f"{where} was not started by the deployer (startedBy {detail.started_by or 'none'})")
    found = deps.store.before_task_of(token)
    if found is None:
        return _ignored(event, f"{where}: no before-task of this deployer was started as {detail.started_by}")
    release_id, stage_name = found
    release = deps.store.get(release_id)
    record = release.stages.get(stage_name) if release else None
    if release is None or record is None or record.before_token != token:
        return _ignored(event, f"{where}: release {release_id} no longer runs a before-task in {stage_name}")
    base = {"pipeline": release.pipeline, "release_id": release_id, "stage": stage_name}
    if record.before_task_arn not in {None, detail.task_arn}:
        return _ignored(event, f"{where} is not before-task {record.before_task} ({record.before_task_arn})")
    if record.before_state not in before.WAITING or release.state is not ReleaseState.DEPLOYING:
        return {
            **base,
            "outcome": Outcome.DUPLICATE,
            "reason": f"before-task {record.before_task} is {record.before_state} (release {release.state})",
        }
    return {**base, **before_task_ended(release, stage_name, record, before.TaskEnd.from_event(detail), deps)}


def before_task_ended(
    release: Release, stage_name: str, record: StageRecord, end: before.TaskEnd, deps: Deps, *, note: str = ""
) -> Result:
    """The stage's before-task stopped: exit code 0 of its container deploys the stage now (the
    same revision; the stage's deadline counts from here); any other end fails the release with the
    exit code, ECS's stopped reason and the container's log link, deploys nothing and hands the
    service's lock on. Shared by on_task_stopped and the reconciler (an event that was lost), whose
    `note` ends the reasons. The first write is conditional on the release as read."""
    store = deps.store
    step = record.before_task or "before"
    container = record.before_container or ""
    link = before.log_link(record.before_logs, container, end.task_arn)
    pipeline = deps.config().pipeline_named(release.pipeline)
    stage = pipeline.stage_named(stage_name) if pipeline else None
    if end.succeeded(container):
        done = replace(
            record,
            before_state=before.BeforeState.SUCCEEDED.value,
            before_task_arn=end.task_arn,
            before_exit_code=0,
            before_log_link=link,
        )
        store.transition(
            release,
            ReleaseState.DEPLOYING,
            stage=stage_name,
            reason=f"before-task {step} succeeded (container {container} exited 0){note}: deploying {stage_name}",
            stages={**release.stages, stage_name: done},
            deploying_since=now_iso(),
            allowed_from={ReleaseState.DEPLOYING},
            announce=True,
        )
        if pipeline is None or stage is None:
            reason = f"stage {stage_name} is no longer in pipeline {release.pipeline}: not deployed"
            store.transition(release, ReleaseState.INVALID_CONFIG, stage=stage_name, reason=reason)
            follow = hand_over_all(store.release_services(record.service_keys(), release.release_id), deps)
            return {"outcome": Outcome.INVALID_CONFIG, "reason": reason, **follow}
        result = deps.stages.deploy(release, pipeline, stage)
        return {
            "outcome": Outcome.BEFORE_TASK_SUCCEEDED,
            "exit_code": 0,
            "next": result.outcome,
            "detail": result.detail,
            **hand_over(result, deps),
        }
    code = end.exit_code(container)
    reason = f"before-task {step} failed in {stage_name}: {end.failure(container)}" + (f"; logs {link}" if link else "")
    reason += f"{note}; nothing was deployed"
    failed = replace(
        record,
        before_state=before.BeforeState.FAILED.value,
        before_task_arn=end.task_arn,
        before_exit_code=code,
        before_log_link=link,
    )
    release.stages[stage_name] = failed
    if stage is None:  # the stage left the configuration: still end the release and free the service
        ended = replace(failed, state=StageState.FAILED, finished_at=now_iso(), reason=reason)
        store.transition(
            release,
            ReleaseState.DEPLOY_FAILED,
            stage=stage_name,
            reason=reason,
            stages={**release.stages, stage_name: ended},
        )
        follow = hand_over_all(store.release_services(record.service_keys(), release.release_id), deps)
        return {"outcome": Outcome.BEFORE_TASK_FAILED, "exit_code": code, "reason": reason, **follow}
    result = deps.stages.fail(release, stage, ReleaseState.DEPLOY_FAILED, reason)
    return {
        "outcome": Outcome.BEFORE_TASK_FAILED,
        "exit_code": code,
        "reason": reason,
        "log_link": link,
        **hand_over(result, deps),
    }


# -- approvals during a deployment (PAUSE lifecycle hooks) ---------------------------------------


# The hook events the deployer acts on (HookRule's pattern in template.yaml names the same two).
ACTED_ON_HOOK_EVENTS = (HookEvent.AWAITING_ACTION, HookEvent.TIMED_OUT)


def on_hook(event: EcsHookStateChangeEvent, deps: Deps) -> Result:
    """ECS paused a deployment at a PAUSE hook (HOOK_AWAITING_ACTION), or a pause timed out
    (HOOK_TIMED_OUT). The event names the service deployment, the hook and its lifecycle stage. A
    pause the deployer asked for (`approval: {at: ...}`) becomes an approval request like any other
    (Slack, page, bus); a pause it did not add is left to whoever added it, with a log line.

    The event names the service deployment, so ECS is no longer asked which deployment is in flight
    (ListServiceDeployments). DescribeServiceDeployments is still read, once, for that deployment,
    before anything is asked or ended: EventBridge delivers late and more than once (retries for up
    to an hour), so the event may describe a hook already answered or timed out, and only ECS says
    what it is now; the event also does not carry the hook's timeout action. A redelivered pause
    the release already waits on is recognised without any ECS call."""
    detail = event.detail
    cluster, service = event.cluster_name, event.service_name
    where = f"{detail.event_name} of {detail.hook_type} hook {detail.hook_id} on {cluster}/{service}"
    if not event.is_pause:
        return _ignored(event, f"{where}: only PAUSE hooks wait for an answer (ECS runs the others itself)")
    if event.hook_event not in ACTED_ON_HOOK_EVENTS:
        return _ignored(event, f"{where}: the deployer acts on HOOK_AWAITING_ACTION and HOOK_TIMED_OUT only")
    found = deps.store.latest_deployment(cluster, service)
    if found is None:
        return _ignored(event, f"{where}: not a deployer deployment")
    release_id, stage_name = found
    release = deps.store.get(release_id)
    record = release.stages.get(stage_name) if release else None
    if release is None or record is None:
        return _ignored(event, f"{where}: release {release_id} is gone")
    base = {"pipeline": release.pipeline, "release_id": release_id, "stage": stage_name}
    if record.state is not StageState.DEPLOYING or release.state.terminal:
        return {**base, "outcome": Outcome.DUPLICATE, "reason": f"stage {stage_name} is {record.state}"}
    pipeline = _pipeline(deps, release.pipeline)
    stage = pipeline.stage_named(stage_name)
    if stage is None or stage.approval is None or stage.approval.at is None or release.is_rollback:
        return _ignored(
            event,
            f"a lifecycle hook on {cluster}/{service} that the deployer did not add (stage {stage_name} asks no "
            f"approval during its deployment): answer it with ContinueServiceDeployment",
        )
    if not _pauses_at(stage.approval.at, detail.lifecycle_stage):
        return _ignored(
            event,
            f"a PAUSE hook at {detail.lifecycle_stage} on {cluster}/{service} that the deployer did not add (stage "
            f"{stage_name} pauses for its approval at {stage.approval.at}): answer it with ContinueServiceDeployment",
        )
    if record.service_deployment_arn not in {None, detail.service_deployment_arn}:
        return _ignored(
            event,
            f"{where}: {detail.service_deployment_arn} is not the deployment {release_id} paused in "
            f"({record.service_deployment_arn})",
        )
    waiting = release.state is ReleaseState.AWAITING_APPROVAL and record.hook_id == detail.hook_id
    if event.hook_event is HookEvent.AWAITING_ACTION and waiting:
        return {**base, "outcome": Outcome.DUPLICATE, "reason": "already waiting for approval"}
    views = ecs_deployments.describe(deps.stages.ecs, [detail.service_deployment_arn])
    view = views[0] if views else None
    hook = next((h for h in view.hooks if h.hook_id == detail.hook_id), None) if view else None
    if view is None or hook is None:
        return _ignored(
            event, f"{where}: DescribeServiceDeployments lists no such hook on {detail.service_deployment_arn}"
        )
    if hook.timed_out:
        return {**base, **_pause_timed_out(release, record, hook, view, detail, deps)}
    if not hook.awaiting_action:
        return {
            **base,
            "outcome": Outcome.DUPLICATE,
            "reason": f"hook {hook.hook_id} is {hook.status} now: the event came late",
        }
    return {
        **base,
        **ask_during(
            release, stage, record, view, hook, deps, at=detail.lifecycle_stage, event_expires_at=detail.expires_at
        ),
    }


def _pauses_at(at: str, reported: str) -> bool:
    """Whether a pause ECS reports at `reported` is the one the deployer added at `at`. A PAUSE
    hook cannot sit at PRODUCTION_TRAFFIC_SHIFT, so a pause reported there is the one before it
    (PRE_PRODUCTION_TRAFFIC_SHIFT is a hook stage only: ECS's ServiceDeploymentLifecycleStage has
    no such value)."""
    return reported == at or (at == "PRE_PRODUCTION_TRAFFIC_SHIFT" and reported == "PRODUCTION_TRAFFIC_SHIFT")


def ask_during(  # noqa: PLR0917 - the pause as on_hook (or the reconciler) found it
    release: Release,
    stage: Stage,
    record: StageRecord,
    view: ecs_deployments.ServiceDeploymentView,
    hook: ecs_deployments.HookView,
    deps: Deps,
    *,
    at: str,
    event_expires_at: datetime | None = None,
) -> Result:
    """Ask for the approval of a deployment ECS paused at `at` (its PAUSE hook `hook`)."""
    if deps.approvals is None or stage.approval is None:
        raise ConfigError(f"stage {stage.name} needs an approval but approvals are not configured")
    approval, token = deps.approvals.request(
        release,
        stage.name,
        approvers=tuple(stage.approval.approvers),
        expires_in_hours=stage.approval.expires_in_hours,
    )
    del token  # a bearer capability: Slack and `deployer status` re-derive it, logs never see it
    hook_expires = hook.expires_at or event_expires_at
    expires = min(approval.expires_at, hook_expires) if hook_expires else approval.expires_at
    action = hook.timeout_action or ecs_deployments.PAUSE_TIMEOUT_ACTION
    paused = replace(
        record,
        service_deployment_arn=view.arn,
        hook_id=hook.hook_id,
        paused_at=at,
        hook_expires_at=hook_expires.isoformat() if hook_expires else None,
        timeout_action=action,
    )
    context = approval_context(release, stage, deps) | {
        "paused_at": at,
        "service_deployment": view.arn,
        "timeout_action": action,
    }
    deps.store.transition(
        release,
        ReleaseState.AWAITING_APPROVAL,
        stage=stage.name,
        reason=f"ECS paused {stage.name} at {at}: waiting for approval until {expires:%Y-%m-%d %H:%M} UTC "
        f"(then ECS applies {action})",
        approval_id=approval.approval_id,
        approval_expires_at=expires.isoformat(),
        approval_context=context,
        stages={**release.stages, stage.name: paused},
    )
    return {"outcome": Outcome.AWAITING_APPROVAL, "paused_at": at, "approval_id": approval.approval_id}


def _pause_timed_out(  # noqa: PLR0917 - the pause as on_hook found it
    release: Release,
    record: StageRecord,
    hook: ecs_deployments.HookView,
    view: ecs_deployments.ServiceDeploymentView,
    detail: EcsHookStateChangeDetail,
    deps: Deps,
) -> Result:
    action = hook.timeout_action or record.timeout_action or ecs_deployments.PAUSE_TIMEOUT_ACTION
    at = record.paused_at or detail.lifecycle_stage
    reason = f"the pause at {at} timed out undecided: ECS applied {action}"
    if action == "CONTINUE":
        resumed = replace(record, hook_id=None)
        deps.store.transition(
            release, ReleaseState.DEPLOYING, reason=reason, stages={**release.stages, release.stage or "": resumed}
        )
        return {"outcome": Outcome.TIMED_OUT, "timeout_action": action}
    if deps.approvals is not None:
        deps.approvals.expire_if_due(release)
    if record.service_deployment_arn is None:  # the pause was never asked (its event was lost): it ends here
        record = replace(record, service_deployment_arn=view.arn, paused_at=at, timeout_action=action)
        release = deps.store.set_stage(release, release.stage or "", record)
    ended = _end_pause_or_wait(
        release, deps, reason, allowed_from={ReleaseState.AWAITING_APPROVAL, ReleaseState.DEPLOYING}
    )
    return {"outcome": Outcome.TIMED_OUT, "timeout_action": action, **ended}
