"""What each function does with its event, given its dependencies. Handlers are wiring: they
parse the event and call one function here.

Outcomes are returned as small dicts (what happened and why) so handlers, the local runner and
tests can print them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployer import aws, before, ecs_deployments, housekeeping, render, sources, taskdef
from deployer import settings as deploy_settings
from deployer import stages as stages_module
from deployer.errors import BadInput, ConfigError, DeploymentError
from deployer.events.codebuild import BuildStatus, CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import (
    ApprovalDecidedEvent,
    ReleaseStateChangeDetail,
    RollbackRequestedEvent,
    put_events_entry,
)
from deployer.events.ecs import (
    DeploymentEvent,
    EcsDeploymentStateChangeEvent,
    EcsHookStateChangeDetail,
    EcsHookStateChangeEvent,
    EcsTaskStateChangeEvent,
    HookEvent,
)
from deployer.pipelines.schema import find_pipelines
from deployer.releases import (
    ConflictError,
    Release,
    ReleaseState,
    ReleaseStore,
    ServiceRecord,
    StageRecord,
    StageState,
    Transition,
    now_iso,
    pipeline_of,
)
from deployer.rollout.plan import plan as plan_rollout
from deployer.rollout.validate import validate as validate_rollout
from deployer.sources import Push
from deployer.stages import ServiceView, StageDeployer, StageResult, describe_service, describe_services

if TYPE_CHECKING:
    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_events import EventBridgeClient

    from deployer.approvals import Approvals
    from deployer.pipelines.schema import Pipeline, PipelinesConfig, Stage
    from deployer.slack import SlackNotifier

log = logging.getLogger("deployer")

# Environment variables the deployer passes to every build (StartBuild overrides); they come
# back in the build's state change event, which is how a build finds its release.
ENV_RELEASE_ID = "DEPLOYER_RELEASE_ID"
ENV_COMMIT = "DEPLOYER_COMMIT"
ENV_PIPELINE = "DEPLOYER_PIPELINE"
EXPORTED_IMAGE = "IMAGE_URI"

Outcome = dict[str, Any]


@dataclass
class Deps:
    """Everything the flow needs; built once per cold start by the handler."""

    store: ReleaseStore
    config: Callable[[], PipelinesConfig]
    codebuild: CodeBuildClient
    ecr: ECRClient
    stages: StageDeployer
    approvals: Approvals | None = None
    # Answers to the Slack user who clicked (an interaction's response_url); None: nobody is told.
    slack: SlackNotifier | None = None


class BusPublisher:
    """Publishes every release transition as "Release State Change" on the deployer's bus.
    A failure to publish is logged and never undoes the transition."""

    def __init__(self, events: EventBridgeClient, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def __call__(self, change: Transition) -> None:
        release = change.release
        record = release.stages.get(change.stage or "") if change.to_state is ReleaseState.DEPLOYED else None
        detail = ReleaseStateChangeDetail(
            release_id=release.release_id,
            pipeline=release.pipeline,
            commit=release.commit,
            stage=change.stage,
            from_state=change.from_state.value if change.from_state else None,
            to_state=change.to_state.value,
            reason=change.reason,
            at=datetime.now(UTC),
            schedules=record.schedules if record is not None and record.schedules else None,
            cleanup=release.cleanup if change.to_state is ReleaseState.RELEASED and release.cleanup else None,
        )
        try:
            response = self._events.put_events(Entries=[put_events_entry(detail, event_bus_name=self._bus)])
            if response.get("FailedEntryCount"):
                log.error("Release State Change not published", extra={"release_id": release.release_id})
        except Exception:
            log.exception("Release State Change not published", extra={"release_id": release.release_id})


# -- on_push ------------------------------------------------------------------------------------


def on_push(event: CodeCommitReferenceEvent | Push, deps: Deps) -> list[Outcome]:
    """Start a release of every pipeline that watches the pushed repository and branch. Takes the
    CodeCommit event as it arrives, or a `Push` a webhook became (`deployer.webhooks`)."""
    if isinstance(event, Push):
        push = event
    else:
        converted = sources.from_codecommit(event)
        if isinstance(converted, str):
            return [_ignored(event, converted)]
        push = converted
    config = deps.config()
    pipelines = find_pipelines(config, push.repository, push.branch, push.provider)
    if not pipelines:  # logged under the CodeCommit event's id, as before, or the delivery's
        return [_ignored(event, f"no pipeline for {push.label}:{push.branch}")]
    return [_start_release(push, pipeline, deps) for pipeline in pipelines]


def _start_release(push: Push, pipeline: Pipeline, deps: Deps) -> Outcome:
    store = deps.store
    release, _created = store.create(
        pipeline=pipeline.name,
        repository=push.label,
        branch=push.branch,
        commit=push.commit,
        previous_commit=push.previous_commit,
        pusher=push.pusher,
        pushed_at=push.pushed_at_text,
    )
    base = {"pipeline": pipeline.name, "release_id": release.release_id}
    if release.state is ReleaseState.SUPERSEDED:
        return {**base, "outcome": "superseded", "reason": release.reason}
    if release.build_arn or release.state is not ReleaseState.BUILDING:
        return {
            **base,
            "outcome": "duplicate",
            "reason": f"already {release.state} (build {release.build_arn})",
        }
    superseded = store.supersede_older(release)
    try:
        build = aws.call(
            "StartBuild",
            deps.codebuild.start_build,
            projectName=pipeline.build.project,
            sourceVersion=release.commit,
            environmentVariablesOverride=[
                {"name": ENV_RELEASE_ID, "value": release.release_id, "type": "PLAINTEXT"},
                {"name": ENV_COMMIT, "value": release.commit, "type": "PLAINTEXT"},
                {"name": ENV_PIPELINE, "value": pipeline.name, "type": "PLAINTEXT"},
            ],
            # Valid for 5 minutes: a redelivered push within that window gets the same build.
            idempotencyToken=release.release_id[-64:],
        )["build"]
    except DeploymentError as exc:
        store.transition(release, ReleaseState.BUILD_FAILED, reason=f"CodeBuild refused the build: {exc}")
        return {**base, "outcome": "build_failed", "reason": str(exc)}
    store.index_build(build["arn"], release.release_id)
    store.save(release, build_arn=build["arn"], build_id=build["id"])
    return {**base, "outcome": "build_started", "build_id": build["id"], "superseded": superseded}


# -- on_build -----------------------------------------------------------------------------------


def on_build(event: CodeBuildStateChangeEvent, deps: Deps) -> Outcome:
    if not event.is_final:
        return _ignored(event, f"build status {event.detail.build_status} is not final")
    store = deps.store
    build_arn = event.detail.build_id
    release_id = event.env_override(ENV_RELEASE_ID) or store.release_for_build(build_arn)
    release = store.get(release_id) if release_id else None
    if release is None:
        return _ignored(event, f"build {build_arn} was not started by the deployer")
    if release.build_arn != build_arn:
        return _ignored(event, f"build {build_arn} is not the build of release {release.release_id}")
    base = {"pipeline": release.pipeline, "release_id": release.release_id}
    if release.state is not ReleaseState.BUILDING and not _built_but_not_deployed(release):
        resumed = resume_unfinished(release, deps)
        if resumed is not None:
            return {**base, **resumed}
        return {**base, "outcome": "duplicate", "reason": f"release is already {release.state}"}

    if release.state is ReleaseState.BUILDING:
        ended = build_finished(release, event.detail.build_status, event.exported(EXPORTED_IMAGE), event.log_link, deps)
        if ended is not None:
            return {**base, **ended}
    return deploy_next(release, deps, after=None)


def build_finished(
    release: Release,
    status: str,
    exported_image: str | None,
    log_link: str | None,
    deps: Deps,
    *,
    note: str = "",
) -> Outcome | None:
    """A BUILDING release whose build ended with `status`: BUILD_FAILED (the outcome is returned)
    unless it SUCCEEDED with an image, then BUILT with the image pinned by digest (None: deploy the
    first stage next). Shared by on_build and the reconciler (a build whose event was lost), whose
    `note` ends the reasons. The transitions are conditional, so the event and the reconciler
    racing move the release once."""
    store = deps.store
    if status != BuildStatus.SUCCEEDED:
        reason = f"build {status}" + (f": logs {log_link}" if log_link else "") + note
        store.transition(
            release,
            ReleaseState.BUILD_FAILED,
            reason=reason,
            log_link=log_link,
            allowed_from={ReleaseState.BUILDING},
        )
        return {"outcome": "build_failed", "reason": reason}
    try:
        image_uri, digest = resolve_image(exported_image, deps.ecr)
    except (BadInput, DeploymentError) as exc:
        store.transition(
            release,
            ReleaseState.BUILD_FAILED,
            reason=f"{exc}{note}",
            log_link=log_link,
            allowed_from={ReleaseState.BUILDING},
        )
        return {"outcome": "build_failed", "reason": str(exc)}
    store.transition(
        release,
        ReleaseState.BUILT,
        reason=f"image {image_uri}{note}",
        image_uri=image_uri,
        image_digest=digest,
        log_link=log_link,
        allowed_from={ReleaseState.BUILDING},
    )
    return None


def resume_unfinished(release: Release, deps: Deps) -> Outcome | None:
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


def _built_but_not_deployed(release: Release) -> bool:
    """A BUILT release whose first stage never started: an earlier delivery crashed midway."""
    return release.state is ReleaseState.BUILT and not release.stages


def resolve_image(exported: str | None, ecr: ECRClient) -> tuple[str, str]:
    """The built image pinned by digest: (uri@digest, digest). A tag is resolved through ECR."""
    if not exported:
        raise BadInput(
            f"the build exported no {EXPORTED_IMAGE}: the buildspec must set {EXPORTED_IMAGE} to the pushed image "
            f"(ideally pinned by digest, REPO@sha256:...) and list it under env: exported-variables"
        )
    image = taskdef.parse_image_uri(exported)
    if image.digest:
        return str(image), image.digest
    if image.ecr_account_id is None:
        raise BadInput(
            f"{EXPORTED_IMAGE}={exported} names a tag outside ECR, which the deployer cannot pin: "
            f"export the image by digest (REPO@sha256:...)"
        )
    response = aws.call(
        "DescribeImages",
        ecr.describe_images,
        registryId=image.ecr_account_id,
        repositoryName=image.repository,
        imageIds=[{"imageTag": image.tag or "latest"}],
    )
    details = response.get("imageDetails", [])
    if not details or not details[0].get("imageDigest"):
        raise DeploymentError(f"ECR has no image {exported}")
    digest = details[0]["imageDigest"]
    pinned = f"{image.registry}/{image.repository}@{digest}"
    return pinned, digest


def deploy_next(release: Release, deps: Deps, after: str | None) -> Outcome:
    """Deploy the stage after `after` (the first stage when None)."""
    base = {"pipeline": release.pipeline, "release_id": release.release_id}
    try:
        pipeline = _pipeline(deps, release.pipeline)
    except ConfigError as exc:
        deps.store.transition(release, ReleaseState.INVALID_CONFIG, reason=str(exc))
        return {**base, "outcome": "invalid_config", "reason": str(exc)}
    names = [s.name for s in pipeline.stages]
    if after is not None and after not in names:
        reason = f"stage {after} is no longer in pipeline {pipeline.name}"
        deps.store.transition(release, ReleaseState.INVALID_CONFIG, reason=reason)
        return {**base, "outcome": "invalid_config", "reason": reason}
    index = 0 if after is None else names.index(after) + 1
    if index >= len(names):
        cleanup = clean_up_revisions(pipeline, deps)
        deps.store.transition(
            release,
            ReleaseState.RELEASED,
            reason=f"deployed to every stage ({', '.join(names)})",
            cleanup=cleanup.as_item(),
        )
        return {**base, "outcome": "released", "deregistered": cleanup.deregistered}
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


def deploy_stage(release: Release, pipeline: Pipeline, stage: Stage, deps: Deps) -> Outcome:
    """Deploy `stage` now (no approval asked), handing a freed service lock on."""
    result = deps.stages.deploy(release, pipeline, stage)
    follow = hand_over(result, deps)
    return {"outcome": result.outcome, "stage": stage.name, "detail": result.detail, **follow}


# -- approvals ----------------------------------------------------------------------------------


def request_approval(release: Release, pipeline: Pipeline, stage: Stage, deps: Deps) -> Outcome:
    """The stage waits for a human: an approval bound to release, stage, commit and image, a
    signed single-use link, and the release AWAITING_APPROVAL (the Slack message follows the
    transition). A newer release asking for the same stage supersedes older ones waiting there."""
    store = deps.store
    if deps.approvals is None or stage.approval is None:
        raise ConfigError(f"stage {stage.name} needs an approval but approvals are not configured")
    if release.state is ReleaseState.AWAITING_APPROVAL and release.stage == stage.name:
        return {"outcome": "duplicate", "stage": stage.name, "reason": "already waiting for approval"}
    if not store.enter_stage(release, stage.name):
        newer = store.stage_holder(pipeline.name, stage.name)
        store.transition(
            release, ReleaseState.SUPERSEDED, stage=stage.name, reason=f"a newer release ({newer}) reached {stage.name}"
        )
        return {"outcome": "superseded", "stage": stage.name}
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
        "outcome": "awaiting_approval",
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
    validation = validate_rollout(stage.deployment_configuration(), view.facts)
    config = validation.deployment_configuration
    context.update(
        current_task_definition=view.task_definition,
        desired=view.facts.desired_count,
        minimum_healthy_percent=config.get("minimumHealthyPercent"),
        maximum_percent=config.get("maximumPercent"),
    )
    if validation.valid and config.get("strategy", "ROLLING") == "ROLLING":
        rollout = plan_rollout(view.facts.desired_count, config["minimumHealthyPercent"], config["maximumPercent"])
        context["plan_line"] = render.summary(rollout)
    elif not validation.valid:
        context["note"] = "; ".join(f.message for f in validation.errors)
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
        validation = validate_rollout(stage.deployment_configuration(), view.facts)
        config = validation.deployment_configuration
        entry.update(
            current_task_definition=view.task_definition,
            desired=view.facts.desired_count,
            minimum_healthy_percent=config.get("minimumHealthyPercent"),
            maximum_percent=config.get("maximumPercent"),
        )
        if validation.valid and config.get("strategy", "ROLLING") == "ROLLING":
            rollout = plan_rollout(view.facts.desired_count, config["minimumHealthyPercent"], config["maximumPercent"])
            entry["plan_line"] = render.summary(rollout)
        elif not validation.valid:
            entry["note"] = "; ".join(f.message for f in validation.errors)
        shown.append(entry)
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
            before = taskdef.describe_task_definition(ecs, record.previous_task_definition_arn)["taskDefinition"]
            after = taskdef.describe_task_definition(ecs, record.task_definition_arn)["taskDefinition"]
            found = deploy_settings.changes(before, after)
        else:
            settings = stage.deploy_settings()
            described = taskdef.describe_task_definition(ecs, running)
            problems = taskdef.clone_problems(described, {}, settings)
            if problems:
                note = f"{'; '.join(problems)}: the stage will be refused, nothing registered"
                return {"settings": {"note": note}, "settings_line": note}
            after = described["taskDefinition"]
            found = taskdef.changed_settings(described, settings)
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
            described = described_by[arn] = taskdef.describe_task_definition(deps.stages.ecs, arn)
            own = settings.only(stages_module.containers_of(described))
            problems += [f"{', '.join(names)}: {p}" for p in taskdef.clone_problems(described, {}, own)]
            found = taskdef.changed_settings(described, own) if own else []
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


def on_approval(event: ApprovalDecidedEvent, deps: Deps) -> Outcome:
    """Apply a decision; a decision made in Slack then tells the clicking user what came of it."""
    return _answering(event.detail, deps, lambda: _apply_decision(event, deps), _decision_words)


def _apply_decision(event: ApprovalDecidedEvent, deps: Deps) -> Outcome:
    detail = event.detail
    store = deps.store
    release = store.get(detail.release_id)
    if release is None:
        return _ignored(event, f"release {detail.release_id} does not exist")
    base = {"pipeline": release.pipeline, "release_id": release.release_id, "stage": detail.stage}
    if (
        release.state is not ReleaseState.AWAITING_APPROVAL
        or release.stage != detail.stage
        or release.approval_id != detail.approval_id
    ):
        resumed = resume_unfinished(release, deps) if release.approval_id == detail.approval_id else None
        if resumed is not None:
            return {**base, **resumed}
        return {**base, "outcome": "duplicate", "reason": f"release is {release.state} ({release.stage})"}
    who = detail.decided_by.model_dump(mode="json", exclude_none=True) | {
        "decision": detail.decision,
        "stage": detail.stage,
        "at": detail.decided_at.isoformat(),
    }
    paused = release.stages.get(detail.stage)
    if paused is not None and paused.hook_id and paused.state is StageState.DEPLOYING:
        return {**base, **_answer_pause(release, paused, detail, who, deps)}
    if detail.decision == "reject":
        store.transition(
            release,
            ReleaseState.REJECTED,
            reason=f"{detail.stage} rejected by {_who(detail)}",
            decided_by=who,
            allowed_from={ReleaseState.AWAITING_APPROVAL},
        )
        return {**base, "outcome": "rejected"}
    pipeline = _pipeline(deps, release.pipeline)
    stage = pipeline.stage_named(detail.stage)
    if stage is None:
        reason = f"stage {detail.stage} is no longer in pipeline {pipeline.name}"
        store.transition(release, ReleaseState.INVALID_CONFIG, reason=reason)
        return {**base, "outcome": "invalid_config", "reason": reason}
    store.save(release, decided_by=who)
    return {**base, **deploy_stage(release, pipeline, stage, deps), "approved_by": _who(detail)}


def sweep_expired_approvals(deps: Deps, now: datetime | None = None) -> list[str]:
    """End every release whose approval expired undecided (APPROVAL_EXPIRED). Run on a schedule;
    the decision path also refuses an expired token, so a late sweep never lets one through. An
    approval that was decided (even if its event is still to be re-driven) is never expired."""
    moment = now or datetime.now(UTC)
    expired = []
    for pipeline in deps.config().pipelines:
        for release in deps.store.waiting_releases(pipeline.name):
            if not release.approval_expires_at:
                continue
            if datetime.fromisoformat(release.approval_expires_at) > moment:
                continue
            if deps.approvals is not None and not deps.approvals.expire_if_due(release):
                continue
            try:
                _end_pause_or_wait(
                    release,
                    deps,
                    f"nobody decided on {release.stage} before {release.approval_expires_at}",
                )
                expired.append(release.release_id)
            except ConflictError:
                continue
    return expired


def _who(detail: Any) -> str:
    by = detail.decided_by
    if by.kind == "slack":
        return f"Slack user {by.user}"
    return f"link holder ({by.source_ip or 'unknown address'})"


# -- on_deployment ------------------------------------------------------------------------------


def on_deployment(event: EcsDeploymentStateChangeEvent, deps: Deps) -> Outcome:
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
        return {**base, "outcome": "duplicate", "reason": f"stage {stage_name} is not deploying this deployment"}
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
        failed = StageRecord(**{**record.__dict__, "rolled_back": rolled_back})
        release.stages[stage_name] = failed
        if stage is None:  # the stage left the configuration: still end the release and free the service
            store.transition(release, ReleaseState.DEPLOY_FAILED, stage=stage_name, reason=reason)
            store.release_service(record.cluster, record.service, release_id)
            return {**base, "outcome": "failed", "reason": reason}
        result = deps.stages.fail(release, stage, ReleaseState.DEPLOY_FAILED, reason)
        return {**base, "outcome": "failed", "reason": reason, "rolled_back": rolled_back, **hand_over(result, deps)}
    return {**base, **stage_completed(release, stage_name, record, deps)}


def _service_event(
    event: EcsDeploymentStateChangeEvent, release: Release, stage_name: str, record: StageRecord, deps: Deps
) -> Outcome:
    """COMPLETED or FAILED of one service of a stage of several (`services:`)."""
    detail = event.detail
    svc = record.service_with_deployment(detail.deployment_id)
    if svc is None:
        return {"outcome": "duplicate", "reason": f"deployment {detail.deployment_id} is not one of {stage_name}'s"}
    if (
        release.state is not ReleaseState.DEPLOYING
        or record.state is not StageState.DEPLOYING
        or svc.state is not StageState.DEPLOYING
    ):
        completed_here = record.state is StageState.DEPLOYED and svc.state is StageState.DEPLOYED
        resumed = resume_unfinished(release, deps) if completed_here else None
        if resumed is not None:
            return resumed
        return {"outcome": "duplicate", "reason": f"{svc.service} of {stage_name} is {svc.state} ({record.state})"}
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
        return {"outcome": "failed", "reason": result.detail, "rolled_back": rolled_back, **hand_over(result, deps)}
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
) -> Outcome:
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
    return {"outcome": "service_deployed", "service": svc.service, "waiting_for": waiting}


def stage_completed(release: Release, stage_name: str, record: StageRecord, deps: Deps, *, note: str = "") -> Outcome:
    """The stage's ECS deployment completed (every one, for a stage of several services): DEPLOYED,
    the services' locks to whoever waits, then the next stage (or its approval, or RELEASED).
    Shared by on_deployment's COMPLETED and the reconciler (a COMPLETED event that was lost), whose
    `note` ends the reason. The first write is conditional on the release as read, so a late event
    and the reconciler promote once."""
    store = deps.store
    base = {"pipeline": release.pipeline, "release_id": release.release_id, "stage": stage_name}
    moved = move_scheduled_tasks(release, stage_name, record, deps)
    done = StageRecord(
        **{
            **record.__dict__,
            "state": StageState.DEPLOYED,
            "finished_at": now_iso(),
            **({"schedules": moved} if moved is not None else {}),
        }
    )
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
        return {**base, "outcome": "rolled_back", **follow}
    return {**base, "outcome": "deployed", **follow, "next": deploy_next(release, deps, after=stage_name)}


def _rolling_back(event: EcsDeploymentStateChangeEvent, deps: Deps) -> Outcome:
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
            return {"release_id": release_id, "stage": stage_name, "outcome": "duplicate"}
        if svc.state is not StageState.DEPLOYING or event.detail.updated_at < datetime.fromisoformat(record.started_at):
            return _ignored(event, f"rollback predates deployment {svc.deployment_id}")
        rolled = record.with_service(replace(svc, rolled_back=True))
        deps.store.save(release, stages={**release.stages, stage_name: rolled})
        return {
            "release_id": release_id,
            "stage": stage_name,
            "service": svc.service,
            "outcome": "rolling_back",
            "reason": event.detail.reason,
        }
    if record.rolled_back:
        return {"release_id": release_id, "stage": stage_name, "outcome": "duplicate"}
    if record.state is not StageState.DEPLOYING or event.detail.updated_at < datetime.fromisoformat(record.started_at):
        return _ignored(event, f"rollback predates deployment {record.deployment_id}")
    rolled = StageRecord(**{**record.__dict__, "rolled_back": True})
    deps.store.save(release, stages={**release.stages, stage_name: rolled})
    return {"release_id": release_id, "stage": stage_name, "outcome": "rolling_back", "reason": event.detail.reason}


# -- before-tasks (`before:` a one-off task before a stage's service is updated) ------------------


def on_task_stopped(event: EcsTaskStateChangeEvent, deps: Deps) -> Outcome:
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
            "outcome": "duplicate",
            "reason": f"before-task {record.before_task} is {record.before_state} (release {release.state})",
        }
    return {**base, **before_task_ended(release, stage_name, record, before.TaskEnd.from_event(detail), deps)}


def before_task_ended(
    release: Release, stage_name: str, record: StageRecord, end: before.TaskEnd, deps: Deps, *, note: str = ""
) -> Outcome:
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
        done = StageRecord(
            **{
                **record.__dict__,
                "before_state": before.BeforeState.SUCCEEDED.value,
                "before_task_arn": end.task_arn,
                "before_exit_code": 0,
                "before_log_link": link,
            }
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
            return {"outcome": "invalid_config", "reason": reason, **follow}
        result = deps.stages.deploy(release, pipeline, stage)
        return {
            "outcome": "before_task_succeeded",
            "exit_code": 0,
            "next": result.outcome,
            "detail": result.detail,
            **hand_over(result, deps),
        }
    code = end.exit_code(container)
    reason = f"before-task {step} failed in {stage_name}: {end.failure(container)}" + (f"; logs {link}" if link else "")
    reason += f"{note}; nothing was deployed"
    failed = StageRecord(
        **{
            **record.__dict__,
            "before_state": before.BeforeState.FAILED.value,
            "before_task_arn": end.task_arn,
            "before_exit_code": code,
            "before_log_link": link,
        }
    )
    release.stages[stage_name] = failed
    if stage is None:  # the stage left the configuration: still end the release and free the service
        ended = StageRecord(
            **{**failed.__dict__, "state": StageState.FAILED, "finished_at": now_iso(), "reason": reason}
        )
        store.transition(
            release,
            ReleaseState.DEPLOY_FAILED,
            stage=stage_name,
            reason=reason,
            stages={**release.stages, stage_name: ended},
        )
        follow = hand_over_all(store.release_services(record.service_keys(), release.release_id), deps)
        return {"outcome": "before_task_failed", "exit_code": code, "reason": reason, **follow}
    result = deps.stages.fail(release, stage, ReleaseState.DEPLOY_FAILED, reason)
    return {
        "outcome": "before_task_failed",
        "exit_code": code,
        "reason": reason,
        "log_link": link,
        **hand_over(result, deps),
    }


# -- approvals during a deployment (PAUSE lifecycle hooks) ---------------------------------------


# The hook events the deployer acts on (HookRule's pattern in template.yaml names the same two).
ACTED_ON_HOOK_EVENTS = (HookEvent.AWAITING_ACTION, HookEvent.TIMED_OUT)


def on_hook(event: EcsHookStateChangeEvent, deps: Deps) -> Outcome:
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
        return {**base, "outcome": "duplicate", "reason": f"stage {stage_name} is {record.state}"}
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
        return {**base, "outcome": "duplicate", "reason": "already waiting for approval"}
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
            "outcome": "duplicate",
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
) -> Outcome:
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
    paused = StageRecord(
        **{
            **record.__dict__,
            "service_deployment_arn": view.arn,
            "hook_id": hook.hook_id,
            "paused_at": at,
            "hook_expires_at": hook_expires.isoformat() if hook_expires else None,
            "timeout_action": action,
        }
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
    return {"outcome": "awaiting_approval", "paused_at": at, "approval_id": approval.approval_id}


def _answer_pause(release: Release, record: StageRecord, detail: Any, who: dict[str, Any], deps: Deps) -> Outcome:
    """Approve: ContinueServiceDeployment CONTINUE, the deployment goes on and its COMPLETED event
    promotes the release as usual. Reject: ContinueServiceDeployment ROLLBACK, the release ends
    REJECTED and the service is free for the next release."""
    assert record.service_deployment_arn
    assert record.hook_id
    action: ecs_deployments.Action = "CONTINUE" if detail.decision == "approve" else "ROLLBACK"
    try:
        ecs_deployments.decide(deps.stages.ecs, record.service_deployment_arn, record.hook_id, action)
    except DeploymentError as exc:  # the hook is no longer waiting (timed out, stopped): say so, end known
        reason = f"ContinueServiceDeployment {action} refused after {_who(detail)} decided: {exc}"
        return {"outcome": "failed", "reason": reason, **_end_pause_or_wait(release, deps, reason, decided_by=who)}
    if action == "CONTINUE":
        resumed = StageRecord(**{**record.__dict__, "hook_id": None})
        deps.store.transition(
            release,
            ReleaseState.DEPLOYING,
            stage=detail.stage,
            reason=f"{detail.stage} approved by {_who(detail)} at {record.paused_at}: ECS continues",
            decided_by=who,
            stages={**release.stages, detail.stage: resumed},
            allowed_from={ReleaseState.AWAITING_APPROVAL},
        )
        return {"outcome": "continued", "approved_by": _who(detail)}
    ended = _end_pause_or_wait(
        release,
        deps,
        f"{detail.stage} rejected by {_who(detail)} at {record.paused_at}: ECS rolls back",
        state=ReleaseState.REJECTED,
        rolled_back=True,
        decided_by=who,
    )
    return {"outcome": "rejected", **ended}


def _pause_timed_out(  # noqa: PLR0917 - the pause as on_hook found it
    release: Release,
    record: StageRecord,
    hook: ecs_deployments.HookView,
    view: ecs_deployments.ServiceDeploymentView,
    detail: EcsHookStateChangeDetail,
    deps: Deps,
) -> Outcome:
    action = hook.timeout_action or record.timeout_action or ecs_deployments.PAUSE_TIMEOUT_ACTION
    at = record.paused_at or detail.lifecycle_stage
    reason = f"the pause at {at} timed out undecided: ECS applied {action}"
    if action == "CONTINUE":
        resumed = StageRecord(**{**record.__dict__, "hook_id": None})
        deps.store.transition(
            release, ReleaseState.DEPLOYING, reason=reason, stages={**release.stages, release.stage or "": resumed}
        )
        return {"outcome": "timed_out", "timeout_action": action}
    if deps.approvals is not None:
        deps.approvals.expire_if_due(release)
    if record.service_deployment_arn is None:  # the pause was never asked (its event was lost): it ends here
        record = StageRecord(
            **{**record.__dict__, "service_deployment_arn": view.arn, "paused_at": at, "timeout_action": action}
        )
        release = deps.store.set_stage(release, release.stage or "", record)
    ended = _end_pause_or_wait(
        release, deps, reason, allowed_from={ReleaseState.AWAITING_APPROVAL, ReleaseState.DEPLOYING}
    )
    return {"outcome": "timed_out", "timeout_action": action, **ended}


def _end_pause_or_wait(
    release: Release,
    deps: Deps,
    reason: str,
    *,
    state: ReleaseState = ReleaseState.APPROVAL_EXPIRED,
    rolled_back: bool | None = None,
    allowed_from: frozenset[ReleaseState] | set[ReleaseState] = frozenset({ReleaseState.AWAITING_APPROVAL}),
    **changes: Any,
) -> Outcome:
    """End a release waiting for a decision. One paused inside its deployment also ends its stage
    (ECS rolls it back) and frees the service for whoever waits."""
    stage_name = release.stage or ""
    record = release.stages.get(stage_name)
    if record is None or not record.service_deployment_arn or record.state is not StageState.DEPLOYING:
        deps.store.transition(release, state, reason=reason, allowed_from=allowed_from, **changes)
        return {}
    action = record.timeout_action or ecs_deployments.PAUSE_TIMEOUT_ACTION
    ended = StageRecord(
        **{
            **record.__dict__,
            "state": StageState.FAILED,
            "finished_at": now_iso(),
            "reason": reason,
            "rolled_back": rolled_back if rolled_back is not None else action == "ROLLBACK",
        }
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


# -- rollback -----------------------------------------------------------------------------------


def request_rollback(pipeline_name: str, stage_name: str, requested_by: dict[str, Any], deps: Deps) -> Outcome:
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
            "outcome": "already_rolling_back",
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
        return {**base, "outcome": "nothing_to_roll_back", "reason": f"{stage_name} has no successful deployment yet"}
    current, target = history[0], rollback_target(history, _stage_service_keys(stage))
    if target is None:
        return {
            **base,
            "outcome": "nothing_to_roll_back",
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


def on_rollback_requested(event: RollbackRequestedEvent, deps: Deps) -> Outcome:
    """Slack's "Roll back" button, published by the approvals endpoint (which may not deploy).
    The Slack user is checked again against the stage's approvers: the configuration may have
    changed since the button was pressed. The user then hears what came of it."""
    return _answering(event.detail, deps, lambda: _roll_back_as_asked(event, deps), _rollback_words)


def _roll_back_as_asked(event: RollbackRequestedEvent, deps: Deps) -> Outcome:
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


# -- answering the Slack user who clicked --------------------------------------------------------

_DECISION_WORDS = {
    "deploying": ":rocket: {where} is deploying now",
    "already_running": ":rocket: {where} is already deploying",
    "queued": ":hourglass_flowing_sand: {where} deploys as soon as its ECS service is free",
    "before_task": ":hourglass_flowing_sand: {where} runs its before-task first; it deploys when the task exits 0",
    "superseded": ":fast_forward: a newer release took {where} over: this one stops here",
    "continued": ":arrow_forward: ECS continues the paused deployment of {where}",
    "rejected": ":no_entry: {where} is not deployed: the release ends REJECTED",
    "duplicate": ":information_source: nothing more to do for {where}",
    "ignored": ":information_source: nothing was done for {where}",
    "invalid_config": ":x: {where} cannot be deployed: the published configuration changed",
    "failed": ":x: {where} could not be applied",
}
_ROLLBACK_WORDS = {
    "stopping": ":rewind: Rolling back {where}",
    "deploying": ":rewind: Rolling back {where}",
    "queued": ":rewind: Rolling back {where} as soon as its ECS service is free",
    "already_running": ":rewind: Rolling back {where}",
    "cancelled": ":rewind: Rolled back {where} before any of its services was updated",
    "already_rolling_back": ":information_source: {where} is already rolling back",
    "nothing_to_roll_back": ":information_source: Nothing to roll back in {where}",
    "ignored": ":no_entry: {where} was not rolled back",
}
_FOLLOWED = frozenset({"stopping", "deploying", "queued", "already_running", "already_rolling_back", "cancelled"})


def _answering(detail: Any, deps: Deps, handle: Callable[[], Outcome], words: Callable[[Any, Outcome], str]) -> Outcome:
    """Run `handle`, then answer the Slack user who clicked through the interaction's response_url
    (ephemeral: the release's own message follows the release through chat.update). A fault
    EventBridge retries answers nothing (the retry will); a configuration error says why, then
    goes on to the handler as before. The response_url is never logged or returned."""
    url = getattr(detail, "response_url", None)
    if not url or deps.slack is None:
        return handle()
    from deployer.slack import escape_mrkdwn

    try:
        outcome = handle()
    except ConfigError as exc:
        deps.slack.answer(url, f":x: Nothing was done: {escape_mrkdwn(_cut(str(exc)))}. Tell the platform team.")
        raise
    deps.slack.answer(url, words(detail, outcome))
    return outcome


def _where(detail: Any) -> str:
    from deployer.slack import escape_mrkdwn

    return f"*{escape_mrkdwn(detail.stage)}* of *{escape_mrkdwn(detail.pipeline)}*"


def _why(outcome: Outcome) -> str:
    """The outcome's own explanation, escaped, as ` (...)`; empty when it has none."""
    from deployer.slack import escape_mrkdwn

    reason = outcome.get("reason") or outcome.get("detail")
    return f" ({escape_mrkdwn(_cut(str(reason)))})" if reason else ""


def _decision_words(detail: Any, outcome: Outcome) -> str:
    """`:white_check_mark: Approved by <@U…> at …. :rocket: *prod* of *web* is deploying now (…).`"""
    from deployer.slack import decision_text

    kind = str(outcome.get("outcome"))
    emoji = ":white_check_mark:" if detail.decision == "approve" else ":no_entry_sign:"
    said = decision_text(detail.decision, detail.decided_by.user or "someone", detail.decided_at)
    what = _DECISION_WORDS.get(kind, ":warning: {where}: " + kind).format(where=_where(detail))
    return f"{emoji} {said}. {what}{_why(outcome)}."


def _rollback_words(detail: Any, outcome: Outcome) -> str:
    """`:rewind: Rolling back *prod* of *web* (…). Follow it with `deployer status --pipeline web`.`"""
    from deployer.slack import escape_mrkdwn

    kind = str(outcome.get("outcome"))
    what = _ROLLBACK_WORDS.get(kind, ":warning: Rollback of {where}: " + kind).format(where=_where(detail))
    follow = (
        f" Follow it with `deployer status --pipeline {escape_mrkdwn(detail.pipeline)}`." if kind in _FOLLOWED else ""
    )
    return f"{what}{_why(outcome)}.{follow}"


def _cut(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _stop_in_flight(  # noqa: PLR0917 - what request_rollback found
    holder: Release, stage: Stage, record: StageRecord, requested_by: dict[str, Any], by: str, deps: Deps
) -> Outcome:
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
    ended = StageRecord(
        **{
            **record.__dict__,
            "state": StageState.FAILED,
            "finished_at": now_iso(),
            "reason": reason,
            "rolled_back": True,
        }
    )
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
        "outcome": "stopping",
        "reason": reason,
        "undoes": holder.release_id,
        "service_deployment": view.arn,
        **follow,
    }


def _cancel_before_update(  # noqa: PLR0917 - what request_rollback found
    holder: Release, stage: Stage, record: StageRecord, requested_by: dict[str, Any], by: str, deps: Deps
) -> Outcome:
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
        "outcome": "cancelled",
        "reason": reason,
        "undoes": holder.release_id,
        "target_task_definition": kept,
        **hand_over(result, deps),
    }


def _stop_several_in_flight(  # noqa: PLR0917 - what request_rollback found
    holder: Release, stage: Stage, record: StageRecord, requested_by: dict[str, Any], by: str, deps: Deps
) -> Outcome:
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
        "outcome": "stopping",
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


def _short_arn(arn: object) -> str:
    return str(arn or "?").rsplit("/", 1)[-1]


def hand_over(result: StageResult, deps: Deps) -> Outcome:
    """A freed service lock goes to the queued release, which deploys now."""
    return hand_over_all(result.handovers, deps)


def hand_over_all(handovers: Sequence[tuple[str, str]], deps: Deps) -> Outcome:
    """Each freed lock's new holder deploys (a stage of several services may free several)."""
    if not handovers:
        return {}
    first = hand_over_to(handovers[0], deps)
    more = [hand_over_to(handover, deps) for handover in handovers[1:]]
    return {**first, "more_handovers": more} if more else first


def hand_over_to(handover: tuple[str, str] | None, deps: Deps) -> Outcome:
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


def _configured_keys(deps: Deps, release_id: str, stage_name: str) -> list[tuple[str, str]]:
    """The services `stage_name` of the release's pipeline deploys, as configured now."""
    pipeline = deps.config().pipeline_named(pipeline_of(release_id))
    stage = pipeline.stage_named(stage_name) if pipeline else None
    return [(stage.cluster, name) for name in stage.service_names] if stage else []


def _pipeline(deps: Deps, name: str) -> Pipeline:
    pipeline = deps.config().pipeline_named(name)
    if pipeline is None:
        raise ConfigError(f"pipeline {name} is no longer in the published configuration")
    return pipeline


def _ignored(event: Any, reason: str) -> Outcome:
    log.info("ignored event %s: %s", getattr(event, "id", None) or getattr(event, "delivery_id", "?"), reason)
    return {"outcome": "ignored", "reason": reason}
