"""What comes after a step, whoever took it: the next stage deployed or its approval asked for,
the services handed over to the next release waiting for them, a release that was waiting resumed,
old revisions cleaned up and scheduled tasks moved when a release ends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from deployer import ecs_deployments, housekeeping, render
from deployer import settings as deploy_settings
from deployer import stages as stages_module
from deployer.deps import Deps
from deployer.errors import ConfigError, DeploymentError
from deployer.flow.common import Result, _configured_keys, _pipeline, _short_arn, log
from deployer.outcomes import Outcome
from deployer.releases.model import Release, ReleaseState, StageRecord, StageState, now_iso
from deployer.releases.store import ConflictError
from deployer.rollout.plan import plan as plan_rollout
from deployer.rollout.validate import validate as validate_rollout
from deployer.stages import ServiceView, StageResult, describe_service, describe_services
from deployer.taskdef.clone import changed_settings, clone_problems
from deployer.taskdef.register import describe_task_definition

if TYPE_CHECKING:
    from deployer.pipelines.schema import Pipeline, Stage


def resume_unfinished(release: Release, deps: Deps) -> Result | None:
    """Finish what a fault interrupted, when the same event is delivered again: a stage whose
    revision was registered but whose UpdateService never went through (DEPLOYING, no deployment
    id), or a completed stage whose next step never started (DEPLOYED). None when nothing was
    left half done (a true duplicate). Both paths are idempotent per stage."""
    stage_name = release.stage
    record = release.stages.get(stage_name) if stage_name else None
    if stage_name is None or record is None:
        return None
    if release.state is ReleaseState.DEPLOYING and record.state is StageState.DEPLOYING and not record.all_started:
        pipeline = _pipeline(deps, release.pipeline)
        stage = pipeline.stage_named(stage_name)
        if stage is None:
            return None
        return {"resumed": True, **deploy_stage(release, pipeline, stage, deps)}
    if release.state is ReleaseState.DEPLOYED and record.state is StageState.DEPLOYED:
        return {"resumed": True, **deploy_next(release, deps, after=stage_name)}
    return None


def deploy_next(release: Release, deps: Deps, after: str | None) -> Result:
    """Deploy the stage after `after` (the first stage when None)."""
    base = {"pipeline": release.pipeline, "release_id": release.release_id}
    try:
        pipeline = _pipeline(deps, release.pipeline)
    except ConfigError as exc:
        deps.store.transition(release, ReleaseState.INVALID_CONFIG, reason=str(exc))
        return {**base, "outcome": Outcome.INVALID_CONFIG, "reason": str(exc)}
    names = [s.name for s in pipeline.stages]
    if after is not None and after not in names:
        reason = f"stage {after} is no longer in pipeline {pipeline.name}"
        deps.store.transition(release, ReleaseState.INVALID_CONFIG, reason=reason)
        return {**base, "outcome": Outcome.INVALID_CONFIG, "reason": reason}
    index = 0 if after is None else names.index(after) + 1
    if index >= len(names):
        cleanup = clean_up_revisions(pipeline, deps)
        deps.store.transition(
            release,
            ReleaseState.RELEASED,
            reason=f"deployed to every stage ({', '.join(names)})",
            cleanup=cleanup.as_item(),
        )
        return {**base, "outcome": Outcome.RELEASED, "deregistered": cleanup.deregistered}
    stage = pipeline.stages[index]
    if stage.approval is not None and stage.approval.at is None:
        return {**base, **request_approval(release, pipeline, stage, deps)}
    # `approval: {at: STAGE}` is asked during the deployment, when ECS pauses there (on_hook)
    return {**base, **deploy_stage(release, pipeline, stage, deps)}


def clean_up_revisions(pipeline: Pipeline, deps: Deps) -> housekeeping.CleanupReport:
    """After a release of `pipeline`: deregister the revisions nobody needs any more (keepRevisions,
    `housekeeping.clean_up`). Never fails the release: the report says what was not done."""
    scheduled = deps.stages.schedules if any(stage.schedules for stage in pipeline.stages) else None
    return housekeeping.clean_up(deps.store, deps.stages.ecs, pipeline, scheduled)


def move_scheduled_tasks(
    release: Release, stage_name: str, record: StageRecord, deps: Deps
) -> list[dict[str, Any]] | None:
    """The stage's deployment completed: its scheduled tasks follow the revision it runs now (a
    rollback's, so they go back with it); in a stage of several services, the revision of the
    service whose family each one runs. None when the stage has none."""
    try:
        pipeline = deps.config().pipeline_named(release.pipeline)
    except ConfigError as exc:
        log.error("scheduled tasks of %s/%s not moved: %s", release.pipeline, stage_name, exc)
        return None
    stage = pipeline.stage_named(stage_name) if pipeline else None
    revisions = [s.task_definition_arn for s in record.services] if record.services else [record.task_definition_arn]
    if stage is None or not stage.schedules or not all(revisions):
        return None
    # each scheduled task follows the service whose family it runs (a stage of several services)
    return [move.as_item() for move in deps.stages.schedules.move(stage, [r for r in revisions if r])]


def deploy_stage(release: Release, pipeline: Pipeline, stage: Stage, deps: Deps) -> Result:
    """Deploy `stage` now (no approval asked), handing a freed service lock on."""
    result = deps.stages.deploy(release, pipeline, stage)
    follow = hand_over(result, deps)
    return {"outcome": result.outcome, "stage": stage.name, "detail": result.detail, **follow}


# -- approvals ----------------------------------------------------------------------------------


def request_approval(release: Release, pipeline: Pipeline, stage: Stage, deps: Deps) -> Result:
    """The stage waits for a human: an approval bound to release, stage, commit and image, a
    signed single-use link, and the release AWAITING_APPROVAL (the Slack message follows the
    transition). A newer release asking for the same stage supersedes older ones waiting there."""
    store = deps.store
    if deps.approvals is None or stage.approval is None:
        raise ConfigError(f"stage {stage.name} needs an approval but approvals are not configured")
    if release.state is ReleaseState.AWAITING_APPROVAL and release.stage == stage.name:
        return {"outcome": Outcome.DUPLICATE, "stage": stage.name, "reason": "already waiting for approval"}
    if not store.enter_stage(release, stage.name):
        newer = store.stage_holder(pipeline.name, stage.name)
        store.transition(
            release, ReleaseState.SUPERSEDED, stage=stage.name, reason=f"a newer release ({newer}) reached {stage.name}"
        )
        return {"outcome": Outcome.SUPERSEDED, "stage": stage.name}
    approval, token = deps.approvals.request(
        release,
        stage.name,
        approvers=tuple(stage.approval.approvers),
        expires_in_hours=stage.approval.expires_in_hours,
    )
    store.transition(
        release,
        ReleaseState.AWAITING_APPROVAL,
        stage=stage.name,
        reason=f"waiting for approval of {stage.name} until {approval.expires_at:%Y-%m-%d %H:%M} UTC",
        approval_id=approval.approval_id,
        approval_expires_at=approval.expires_at.isoformat(),
        approval_context=approval_context(release, stage, deps),
    )
    superseded = _supersede_waiting(release, stage.name, deps)
    # The link is a bearer capability: it goes to Slack and `deployer status`, never into logs.
    del token
    return {
        "outcome": Outcome.AWAITING_APPROVAL,
        "stage": stage.name,
        "approval_id": approval.approval_id,
        "superseded": superseded,
    }


def approval_context(release: Release, stage: Stage, deps: Deps) -> dict[str, Any]:
    """What the approval shows: the service as it runs now and the rollout the stage will do."""
    context: dict[str, Any] = {
        "service": ", ".join(f"{stage.cluster}/{name}" for name in stage.service_names),
        "approvers": list(stage.approval.approvers) if stage.approval else [],
        "image_uri": release.image_uri,
    }
    if stage.several_services:
        views, missing = describe_services(deps.stages.ecs, stage.cluster, list(stage.service_names))
        context["services"] = services_context(stage, views, missing)
        if stage.deploy_settings() and not missing:
            context.update(services_settings_context(stage, views, deps))
        return context
    try:
        view = describe_service(deps.stages.ecs, stage.cluster, stage.service_names[0])
    except DeploymentError as exc:
        return {**context, "note": str(exc)}
    context.update(rollout_context(stage, view))
    if stage.deploy_settings():
        context.update(settings_context(release, stage, view.task_definition, deps))
    return context


def services_context(stage: Stage, views: Mapping[str, ServiceView], missing: Sequence[str]) -> list[dict[str, Any]]:
    """What the approval shows of each service of a stage of several (as DescribeServices found
    them, `views`, and why the others are missing): its current task definition, desired count,
    rollout and plan line (or why not)."""
    shown: list[dict[str, Any]] = []
    for name in stage.service_names:
        entry: dict[str, Any] = {"service": f"{stage.cluster}/{name}"}
        view = views.get(name)
        if view is None:
            entry["note"] = next((m for m in missing if f"{stage.cluster}/{name} " in m), "not found")
            shown.append(entry)
            continue
        entry.update(rollout_context(stage, view))
        shown.append(entry)
    return shown


def rollout_context(stage: Stage, view: ServiceView) -> dict[str, Any]:
    """What the approval shows of one service's rollout: its current task definition, desired
    count and percentages, and the plan line of a ROLLING update (or why the stage is refused)."""
    validation = validate_rollout(stage.deployment_configuration(), view.facts)
    config = validation.deployment_configuration
    shown: dict[str, Any] = {
        "current_task_definition": view.task_definition,
        "desired": view.facts.desired_count,
        "minimum_healthy_percent": config.get("minimumHealthyPercent"),
        "maximum_percent": config.get("maximumPercent"),
    }
    if validation.valid and config.get("strategy", "ROLLING") == "ROLLING":
        rollout = plan_rollout(view.facts.desired_count, config["minimumHealthyPercent"], config["maximumPercent"])
        shown["plan_line"] = render.summary(rollout)
    elif not validation.valid:
        shown["note"] = "; ".join(f.message for f in validation.errors)
    return shown


def settings_context(release: Release, stage: Stage, running: str, deps: Deps) -> dict[str, Any]:
    """What the stage's environment variables and secrets change, for the approval: under
    "settings", each variable before and after (secrets by reference), the task execution role that
    will read the secrets and what it must be allowed, or why nothing can be shown (a stage that
    will be refused); under "settings_line", the one line Slack shows. Before the stage deploys, the
    running revision against it with the settings; once deployed (an approval during the
    deployment), the revision it replaced against the one it registered. Never a secret's value:
    the deployer has none."""
    ecs = deps.stages.ecs
    record = release.stages.get(stage.name)
    try:
        if record is not None and record.task_definition_arn and record.previous_task_definition_arn:
            before = describe_task_definition(ecs, record.previous_task_definition_arn)["taskDefinition"]
            after = describe_task_definition(ecs, record.task_definition_arn)["taskDefinition"]
            found = deploy_settings.changes(before, after)
        else:
            settings = stage.deploy_settings()
            described = describe_task_definition(ecs, running)
            problems = clone_problems(described, {}, settings)
            if problems:
                note = f"{'; '.join(problems)}: the stage will be refused, nothing registered"
                return {"settings": {"note": note}, "settings_line": note}
            after = described["taskDefinition"]
            found = changed_settings(described, settings)
    except DeploymentError as exc:
        return {"settings": {"note": f"the settings' changes cannot be shown: {exc}"}}
    references = [c.after[1] for c in found if c.after is not None and c.after[0] == "secret"]
    return {
        "settings": {
            "changes": [change.to_dict() for change in found],
            "role_note": deploy_settings.role_note(after.get("executionRoleArn"), references),
        },
        "settings_line": deploy_settings.summary(found) or "no change (the running revision has these settings)",
    }


def services_settings_context(stage: Stage, views: Mapping[str, ServiceView], deps: Deps) -> dict[str, Any]:
    """`settings_context` for a stage of several services, before it deploys: under "settings",
    "revisions" lists each task definition the services run now (its services, what the settings
    change in it, what its execution role must read), or "note" says why the stage will be refused
    (a container none of them has, secrets without an execution role); "settings_line" is Slack's
    one line. Never a secret's value: the deployer has none."""
    settings = stage.deploy_settings()
    running: dict[str, list[str]] = {}
    for name in stage.service_names:
        running.setdefault(views[name].task_definition, []).append(name)
    revisions: list[dict[str, Any]] = []
    problems: list[str] = []
    described_by: dict[str, dict[str, Any]] = {}
    try:
        for arn, names in running.items():
            described = described_by[arn] = describe_task_definition(deps.stages.ecs, arn)
            own = settings.only(stages_module.containers_of(described))
            problems += [f"{', '.join(names)}: {p}" for p in clone_problems(described, {}, own)]
            found = changed_settings(described, own) if own else []
            references = [c.after[1] for c in found if c.after is not None and c.after[0] == "secret"]
            revisions.append(
                {
                    "revision": _short_arn(arn),
                    "services": names,
                    "changes": [change.to_dict() for change in found],
                    "role_note": deploy_settings.role_note(
                        described["taskDefinition"].get("executionRoleArn"), references
                    ),
                    "line": deploy_settings.summary(found),
                }
            )
    except DeploymentError as exc:
        return {"settings": {"note": f"the settings' changes cannot be shown: {exc}"}}
    lacking = stages_module.settings_in_none(settings, described_by, running)
    if lacking:
        problems.append(lacking)
    if problems:
        note = f"{'; '.join(problems)}: the stage will be refused, nothing registered"
        return {"settings": {"note": note}, "settings_line": note}
    line = "; ".join(f"{r['line']} in {r['revision']}" for r in revisions if r["line"])
    return {
        "settings": {"revisions": revisions},
        "settings_line": line or "no change (the running revisions have these settings)",
    }


def _supersede_waiting(release: Release, stage: str, deps: Deps) -> list[str]:
    """Older releases of the pipeline still waiting for approval of `stage` will never be current."""
    done = []
    for older in deps.store.waiting_releases(release.pipeline, older_than=release.order_key):
        if older.stage != stage:
            continue
        try:
            deps.store.transition(
                older,
                ReleaseState.SUPERSEDED,
                reason=f"superseded by {release.short_commit} waiting for approval of {stage}",
                allowed_from={ReleaseState.AWAITING_APPROVAL},
            )
            done.append(older.release_id)
        except ConflictError:
            continue
    return done


def _end_pause_or_wait(
    release: Release,
    deps: Deps,
    reason: str,
    *,
    state: ReleaseState = ReleaseState.APPROVAL_EXPIRED,
    rolled_back: bool | None = None,
    allowed_from: frozenset[ReleaseState] | set[ReleaseState] = frozenset({ReleaseState.AWAITING_APPROVAL}),
    **changes: Any,
) -> Result:
    """End a release waiting for a decision. One paused inside its deployment also ends its stage
    (ECS rolls it back) and frees the service for whoever waits."""
    stage_name = release.stage or ""
    record = release.stages.get(stage_name)
    if record is None or not record.service_deployment_arn or record.state is not StageState.DEPLOYING:
        deps.store.transition(release, state, reason=reason, allowed_from=allowed_from, **changes)
        return {}
    action = record.timeout_action or ecs_deployments.PAUSE_TIMEOUT_ACTION
    ended = replace(
        record,
        state=StageState.FAILED,
        finished_at=now_iso(),
        reason=reason,
        rolled_back=rolled_back if rolled_back is not None else action == "ROLLBACK",
    )
    deps.store.transition(
        release,
        state,
        reason=reason,
        stages={**release.stages, stage_name: ended},
        allowed_from=allowed_from,
        **changes,
    )
    return hand_over_to(deps.store.release_service(record.cluster, record.service, release.release_id), deps)


def hand_over(result: StageResult, deps: Deps) -> Result:
    """A freed service lock goes to the queued release, which deploys now."""
    return hand_over_all(result.handovers, deps)


def hand_over_all(handovers: Sequence[tuple[str, str]], deps: Deps) -> Result:
    """Each freed lock's new holder deploys (a stage of several services may free several)."""
    if not handovers:
        return {}
    first = hand_over_to(handovers[0], deps)
    more = [hand_over_to(handover, deps) for handover in handovers[1:]]
    return {**first, "more_handovers": more} if more else first


def hand_over_to(handover: tuple[str, str] | None, deps: Deps) -> Result:
    if handover is None:
        return {}
    waiter_id, stage_name = handover
    waiter = deps.store.get(waiter_id)
    if waiter is None or waiter.state.terminal:
        record = waiter.stages.get(stage_name) if waiter else None
        keys = record.service_keys() if record is not None else _configured_keys(deps, waiter_id, stage_name)
        # it holds the lock now (and perhaps others taken before it): pass them on
        return hand_over_all(deps.store.release_services(keys, waiter_id), deps)
    pipeline = _pipeline(deps, waiter.pipeline)
    stage = pipeline.stage_named(stage_name)
    if stage is None:
        return {}
    follow = deps.stages.deploy(waiter, pipeline, stage)
    return {"handed_over_to": waiter_id, "handover_outcome": follow.outcome, **hand_over(follow, deps)}
