"""Rollbacks (`deployer rollback`, Slack's "Roll back", "Rollback Requested"): a deployment in
flight stopped with ROLLBACK, else the stage's previous successful revision redeployed as a release
of its own."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from deployer import before, ecs_deployments
from deployer.deps import Deps
from deployer.errors import ConfigError, DeploymentError
from deployer.events.deployer_bus import (
    RollbackRequestedEvent,
)
from deployer.flow.answers import _answering, _rollback_words
from deployer.flow.common import Result, _ignored, _pipeline, _short_arn
from deployer.flow.progress import hand_over, hand_over_to
from deployer.outcomes import Outcome
from deployer.releases.model import Release, ReleaseState, StageRecord, StageState, now_iso
from deployer.releases.store import ReleaseStore

if TYPE_CHECKING:
    from deployer.pipelines.schema import Pipeline, Stage


# -- rollback -----------------------------------------------------------------------------------


def request_rollback(pipeline_name: str, stage_name: str, requested_by: dict[str, Any], deps: Deps) -> Result:
    """Roll back `stage` of `pipeline`. A deployment in flight there (deploying, or paused for an
    approval) is stopped with StopServiceDeployment ROLLBACK and ECS returns the service to the
    revision it ran before. Otherwise a release of kind "rollback" redeploys the stage's previous
    successful revision (its history: `ReleaseStore.stage_history`), through the same validation,
    ordering and service lock as any release. A release whose before-task still runs (nothing of it
    deployed yet) is ended before any service is updated. Either way the rollback is a release of
    its own, and it never runs the stage's before-task."""
    pipeline = _pipeline(deps, pipeline_name)
    stage = pipeline.stage_named(stage_name)
    if stage is None:
        raise ConfigError(f"pipeline {pipeline_name} has no stage {stage_name} (stages: {_stage_names(pipeline)})")
    store = deps.store
    by = _requester(requested_by)
    base = {"pipeline": pipeline_name, "stage": stage_name}
    holder = stage_holder_release(store, stage)
    record = holder.stages.get(stage_name) if holder else None
    if holder is not None and holder.is_rollback and not holder.state.terminal:
        return {
            **base,
            "release_id": holder.release_id,
            "outcome": Outcome.ALREADY_ROLLING_BACK,
            "reason": f"{holder.release_id} is already rolling {stage_name} back ({holder.state})",
        }
    if holder is not None and record is not None and record.state is StageState.DEPLOYING:
        started = any(s.deployment_id for s in record.services) if record.services is not None else None
        if record.before_state in before.WAITING and not (started or record.deployment_id):
            return {**base, **_cancel_before_update(holder, stage, record, requested_by, by, deps)}
        if started:
            return {**base, **_stop_several_in_flight(holder, stage, record, requested_by, by, deps)}
        if record.deployment_id:
            return {**base, **_stop_in_flight(holder, stage, record, requested_by, by, deps)}

    history = store.stage_history(pipeline_name, stage_name)
    if not history:
        return {
            **base,
            "outcome": Outcome.NOTHING_TO_ROLL_BACK,
            "reason": f"{stage_name} has no successful deployment yet",
        }
    current, target = history[0], rollback_target(history, _stage_service_keys(stage))
    if target is None:
        return {
            **base,
            "outcome": Outcome.NOTHING_TO_ROLL_BACK,
            "reason": f"{stage_name} has no earlier successful revision than {_revisions_of(current)}"
            + ("" if history_keys(current) == _stage_service_keys(stage) else " for the services it deploys now"),
        }
    undoes = str(current.get("rollback_of") or current.get("release_id") or "") or None
    release = store.create_rollback(
        pipeline=pipeline_name,
        stage=stage_name,
        target=target,
        undoes=undoes,
        requested_by=requested_by,
        repository=pipeline.source_label,
        branch=pipeline.branch,
    )
    result = deps.stages.deploy(release, pipeline, stage)
    follow = hand_over(result, deps)
    return {
        **base,
        "release_id": release.release_id,
        "outcome": result.outcome,
        "reason": f"{by} rolls {stage_name} back to {_revisions_of(target)} "
        f"(commit {str(target.get('commit') or '?')[:12]}, release {target.get('release_id')})",
        "target_task_definition": target.get("task_definition_arn"),
        "undoes": undoes,
        "detail": result.detail,
        **follow,
    }


def rollback_target(
    history: list[dict[str, Any]], keys: Sequence[tuple[str, str]] | None = None
) -> dict[str, Any] | None:
    """What a rollback of a finished stage redeploys, from its history (newest first): the newest
    earlier successful revision that differs from the current one and that no rollback undid, so
    rolling back twice goes one step further back and never returns to what was undone. For a stage
    of several services the revisions compared are every service's; with `keys` (the services the
    stage deploys now) only entries of exactly those services qualify."""
    if not history:
        return None
    current = history[0]
    undone = {str(entry.get("rollback_of")) for entry in history if entry.get("rollback_of")}
    return next(
        (
            entry
            for entry in history[1:]
            if history_revisions(entry) != history_revisions(current)
            and (keys is None or history_keys(entry) == sorted(keys))
            and entry.get("release_id") not in undone
            and entry.get("release_id") != current.get("rollback_of")
        ),
        None,
    )


def history_keys(entry: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(cluster, service) of each service a stage history entry deployed, sorted."""
    if entry.get("services"):
        return sorted((str(s.get("cluster")), str(s.get("service"))) for s in entry["services"])
    return [(str(entry.get("cluster")), str(entry.get("service")))]


def history_revisions(entry: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """What a stage history entry runs: each service's task definition (one for a stage of one)."""
    if entry.get("services"):
        return tuple(
            sorted(
                (f"{s.get('cluster')}/{s.get('service')}", str(s.get("task_definition_arn"))) for s in entry["services"]
            )
        )
    return (("", str(entry.get("task_definition_arn"))),)


def _revisions_of(entry: Mapping[str, Any]) -> str:
    """`web:7`, or `web web:7, worker worker:3` for a stage of several services."""
    if entry.get("services"):
        return ", ".join(f"{s.get('service')} {_short_arn(s.get('task_definition_arn'))}" for s in entry["services"])
    return _short_arn(entry.get("task_definition_arn"))


def _stage_service_keys(stage: Stage) -> list[tuple[str, str]]:
    return sorted((stage.cluster, name) for name in stage.service_names)


def stage_holder_release(store: ReleaseStore, stage: Stage) -> Release | None:
    """The release holding a lock of the stage's services for this stage, if any (for a stage of
    several services, the first such lock in lock order)."""
    for cluster, service in _stage_service_keys(stage):
        lock = store.lock_of(cluster, service) or {}
        if lock.get("holder") and lock.get("holder_stage") in {None, stage.name}:
            holder = store.get(str(lock["holder"]))
            if holder is not None:
                return holder
    return None


def on_rollback_requested(event: RollbackRequestedEvent, deps: Deps) -> Result:
    """Slack's "Roll back" button, published by the approvals endpoint (which may not deploy).
    The Slack user is checked again against the stage's approvers: the configuration may have
    changed since the button was pressed. The user then hears what came of it."""
    return _answering(event.detail, deps, lambda: _roll_back_as_asked(event, deps), _rollback_words)


def _roll_back_as_asked(event: RollbackRequestedEvent, deps: Deps) -> Result:
    detail = event.detail
    pipeline = _pipeline(deps, detail.pipeline)
    stage = pipeline.stage_named(detail.stage)
    if stage is None:
        return _ignored(event, f"rollback of {detail.pipeline}/{detail.stage}: no such stage any more")
    approvers = stage.approval.approvers if stage.approval else []
    by = detail.requested_by
    if by.kind != "slack" or by.user not in approvers:
        return _ignored(
            event,
            f"rollback of {detail.pipeline}/{detail.stage} asked by {by.kind} {by.user or ''}: not one of the "
            "stage's approvers (use `deployer rollback`)",
        )
    holder = deps.store.stage_holder(detail.pipeline, detail.stage)
    if detail.release_id and holder not in {None, detail.release_id}:
        return _ignored(
            event,
            f"rollback of {detail.pipeline}/{detail.stage} from the message of {detail.release_id}: {holder} has "
            "reached the stage since (roll back from its message, or with `deployer rollback`)",
        )
    requested_by = by.model_dump(mode="json", exclude_none=True) | {"at": detail.requested_at.isoformat()}
    return request_rollback(detail.pipeline, detail.stage, requested_by, deps)


def _stop_in_flight(  # noqa: PLR0917 - what request_rollback found
    holder: Release, stage: Stage, record: StageRecord, requested_by: dict[str, Any], by: str, deps: Deps
) -> Result:
    view = None
    if record.service_deployment_arn:
        views = ecs_deployments.describe(deps.stages.ecs, [record.service_deployment_arn])
        view = views[0] if views and views[0].active else None
    if view is None:
        view = ecs_deployments.in_flight(deps.stages.ecs, record.cluster, record.service)
    if view is None:
        raise DeploymentError(
            f"{holder.release_id} is deploying {record.cluster}/{record.service} but ECS lists no deployment in "
            "flight: wait for its deployment event, then roll back again"
        )
    ecs_deployments.stop_with_rollback(deps.stages.ecs, view.arn)
    store = deps.store
    rollback = store.create_rollback(
        pipeline=holder.pipeline,
        stage=stage.name,
        target={"task_definition_arn": record.previous_task_definition_arn or "", "commit": holder.previous_commit},
        undoes=holder.release_id,
        requested_by=requested_by,
        repository=holder.repository,
        branch=holder.branch,
    )
    reason = (
        f"{by} stopped {view.arn} (StopServiceDeployment ROLLBACK): "
        f"ECS returns {record.service} to its previous revision"
    )
    store.transition(rollback, ReleaseState.RELEASED, stage=stage.name, reason=reason)
    ended = replace(record, state=StageState.FAILED, finished_at=now_iso(), reason=reason, rolled_back=True)
    store.transition(
        holder,
        ReleaseState.DEPLOY_FAILED,
        stage=stage.name,
        reason=reason,
        stages={**holder.stages, stage.name: ended},
    )
    follow = hand_over_to(store.release_service(record.cluster, record.service, holder.release_id), deps)
    return {
        "release_id": rollback.release_id,
        "outcome": Outcome.STOPPING,
        "reason": reason,
        "undoes": holder.release_id,
        "service_deployment": view.arn,
        **follow,
    }


def _cancel_before_update(  # noqa: PLR0917 - what request_rollback found
    holder: Release, stage: Stage, record: StageRecord, requested_by: dict[str, Any], by: str, deps: Deps
) -> Result:
    """Roll back a stage whose before-task still runs: none of its services was updated, so the
    release ends DEPLOY_FAILED there and then (its task's end, whenever it comes, changes nothing)
    and the rollback, a release of its own, is RELEASED at once: the services keep the revisions
    they run. The task is left to finish: stopping a migration halfway is worse than letting it end."""
    store = deps.store
    step = record.before_task or "before"
    task = f" ({_short_arn(record.before_task_arn)})" if record.before_task_arn else ""
    if record.services is not None:
        keep = [(s.cluster, s.service, s.previous_task_definition_arn or "") for s in record.services]
    else:
        keep = [(record.cluster, record.service, record.previous_task_definition_arn or "")]
    kept = ", ".join(f"{service} {_short_arn(arn)}" for _, service, arn in keep)
    reason = (
        f"{by} rolled {stage.name} back while its before-task {step}{task} ran: nothing was deployed, the "
        f"services keep what they run ({kept}); the task is left to finish and its end changes nothing"
    )
    result = deps.stages.fail(holder, stage, ReleaseState.DEPLOY_FAILED, reason)
    target: dict[str, Any] = {"commit": holder.previous_commit}
    if record.services is not None:
        target["services"] = [{"cluster": c, "service": s, "task_definition_arn": arn} for c, s, arn in keep]
    else:
        target["task_definition_arn"] = keep[0][2]
    rollback = store.create_rollback(
        pipeline=holder.pipeline,
        stage=stage.name,
        target=target,
        undoes=holder.release_id,
        requested_by=requested_by,
        repository=holder.repository,
        branch=holder.branch,
    )
    store.transition(rollback, ReleaseState.RELEASED, stage=stage.name, reason=reason)
    return {
        "release_id": rollback.release_id,
        "outcome": Outcome.CANCELLED,
        "reason": reason,
        "undoes": holder.release_id,
        "target_task_definition": kept,
        **hand_over(result, deps),
    }


def _stop_several_in_flight(  # noqa: PLR0917 - what request_rollback found
    holder: Release, stage: Stage, record: StageRecord, requested_by: dict[str, Any], by: str, deps: Deps
) -> Result:
    """Roll back a stage of several services while it deploys: each service goes back
    (`StageDeployer.fail_services`: StopServiceDeployment ROLLBACK in flight, UpdateService to its
    previous revision once completed), the deploying release ends DEPLOY_FAILED saying so, and the
    rollback is a release of its own, RELEASED at once."""
    store = deps.store
    result = deps.stages.fail_services(
        holder, stage.name, record, failed=None, why=f"{by} rolled {stage.name} back while it deployed", stage=stage
    )
    ended = holder.stages[stage.name]
    rollback = store.create_rollback(
        pipeline=holder.pipeline,
        stage=stage.name,
        target={
            "commit": holder.previous_commit,
            "services": [
                {
                    "cluster": s.cluster,
                    "service": s.service,
                    "task_definition_arn": s.previous_task_definition_arn or "",
                }
                for s in ended.services or ()
            ],
        },
        undoes=holder.release_id,
        requested_by=requested_by,
        repository=holder.repository,
        branch=holder.branch,
    )
    reason = f"{by} rolled {stage.name} back while it deployed: " + "; ".join(
        f"{s.service}: {s.reason}" for s in ended.services or () if s.reason
    )
    store.transition(rollback, ReleaseState.RELEASED, stage=stage.name, reason=reason)
    return {
        "release_id": rollback.release_id,
        "outcome": Outcome.STOPPING,
        "reason": reason,
        "undoes": holder.release_id,
        **hand_over(result, deps),
    }


def _requester(requested_by: dict[str, Any]) -> str:
    if requested_by.get("kind") == "slack":
        return f"Slack user {requested_by.get('user', '?')}"
    return str(requested_by.get("principal") or requested_by.get("user") or "an operator")


def _stage_names(pipeline: Pipeline) -> str:
    return ", ".join(s.name for s in pipeline.stages)
