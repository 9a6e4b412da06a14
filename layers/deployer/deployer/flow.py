"""What each function does with its event, given its dependencies. Handlers are wiring: they
parse the event and call one function here.

Outcomes are returned as small dicts (what happened and why) so handlers, the local runner and
tests can print them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployer import aws, render, rolling, taskdef
from deployer.errors import BadInput, ConfigError, DeploymentError
from deployer.events import (
    ApprovalDecidedEvent,
    BuildStatus,
    CodeBuildStateChangeEvent,
    CodeCommitReferenceEvent,
    DeploymentEvent,
    EcsDeploymentStateChangeEvent,
    ReleaseStateChangeDetail,
    put_events_entry,
)
from deployer.pipelines import find_pipelines
from deployer.releases import (
    ConflictError,
    Release,
    ReleaseState,
    ReleaseStore,
    StageRecord,
    StageState,
    Transition,
    now_iso,
)
from deployer.stages import StageDeployer, StageResult, describe_service

if TYPE_CHECKING:
    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_events import EventBridgeClient

    from deployer.approvals import Approvals
    from deployer.pipelines import Pipeline, PipelinesConfig, Stage

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


class BusPublisher:
    """Publishes every release transition as "Release State Change" on the deployer's bus.
    A failure to publish is logged and never undoes the transition."""

    def __init__(self, events: EventBridgeClient, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def __call__(self, change: Transition) -> None:
        release = change.release
        detail = ReleaseStateChangeDetail(
            release_id=release.release_id,
            pipeline=release.pipeline,
            commit=release.commit,
            stage=change.stage,
            from_state=change.from_state.value if change.from_state else None,
            to_state=change.to_state.value,
            reason=change.reason,
            at=datetime.now(UTC),
        )
        try:
            response = self._events.put_events(Entries=[put_events_entry(detail, event_bus_name=self._bus)])
            if response.get("FailedEntryCount"):
                log.error("Release State Change not published", extra={"release_id": release.release_id})
        except Exception:
            log.exception("Release State Change not published", extra={"release_id": release.release_id})


# -- on_push ------------------------------------------------------------------------------------


def on_push(event: CodeCommitReferenceEvent, deps: Deps) -> list[Outcome]:
    detail = event.detail
    if detail.reference_type != "branch":
        return [_ignored(event, f"tag {detail.reference_name}: only branch pushes deploy")]
    if detail.event == "referenceDeleted" or detail.commit_id is None:
        return [_ignored(event, f"branch {detail.reference_name} deleted: nothing to deploy")]
    config = deps.config()
    pipelines = find_pipelines(config, detail.repository_name, detail.reference_name)
    if not pipelines:
        return [_ignored(event, f"no pipeline for {detail.repository_name}:{detail.reference_name}")]
    return [_start_release(event, pipeline, deps) for pipeline in pipelines]


def _start_release(event: CodeCommitReferenceEvent, pipeline: Pipeline, deps: Deps) -> Outcome:
    detail = event.detail
    assert detail.commit_id is not None
    store = deps.store
    release, _created = store.create(
        pipeline=pipeline.name,
        repository=detail.repository_name,
        branch=detail.reference_name,
        commit=detail.commit_id,
        previous_commit=detail.old_commit_id,
        pusher=detail.caller_user_arn,
        pushed_at=event.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
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
        if event.status is not BuildStatus.SUCCEEDED:
            reason = f"build {event.detail.build_status}" + (f": logs {event.log_link}" if event.log_link else "")
            store.transition(release, ReleaseState.BUILD_FAILED, reason=reason, log_link=event.log_link)
            return {**base, "outcome": "build_failed", "reason": reason}
        try:
            image_uri, digest = resolve_image(event.exported(EXPORTED_IMAGE), deps.ecr)
        except (BadInput, DeploymentError) as exc:
            store.transition(release, ReleaseState.BUILD_FAILED, reason=str(exc), log_link=event.log_link)
            return {**base, "outcome": "build_failed", "reason": str(exc)}
        store.transition(
            release,
            ReleaseState.BUILT,
            reason=f"image {image_uri}",
            image_uri=image_uri,
            image_digest=digest,
            log_link=event.log_link,
        )
    return deploy_next(release, deps, after=None)


def resume_unfinished(release: Release, deps: Deps) -> Outcome | None:
    """Finish what a fault interrupted, when the same event is delivered again: a stage whose
    revision was registered but whose UpdateService never went through (DEPLOYING, no deployment
    id), or a completed stage whose next step never started (DEPLOYED). None when nothing was
    left half done (a true duplicate). Both paths are idempotent per stage."""
    stage_name = release.stage
    record = release.stages.get(stage_name) if stage_name else None
    if stage_name is None or record is None:
        return None
    if release.state is ReleaseState.DEPLOYING and record.state is StageState.DEPLOYING and not record.deployment_id:
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
        deps.store.transition(release, ReleaseState.RELEASED, reason=f"deployed to every stage ({', '.join(names)})")
        return {**base, "outcome": "released"}
    stage = pipeline.stages[index]
    if stage.approval is not None:
        return {**base, **request_approval(release, pipeline, stage, deps)}
    return {**base, **deploy_stage(release, pipeline, stage, deps)}


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
        "service": f"{stage.cluster}/{stage.service}",
        "approvers": list(stage.approval.approvers) if stage.approval else [],
        "image_uri": release.image_uri,
    }
    try:
        view = describe_service(deps.stages.ecs, stage.cluster, stage.service)
    except DeploymentError as exc:
        return {**context, "note": str(exc)}
    validation = rolling.validate(stage.deployment_configuration(), view.facts)
    config = validation.deployment_configuration
    context.update(
        current_task_definition=view.task_definition,
        desired=view.facts.desired_count,
        minimum_healthy_percent=config.get("minimumHealthyPercent"),
        maximum_percent=config.get("maximumPercent"),
    )
    if validation.valid and config.get("strategy", "ROLLING") == "ROLLING":
        rollout = rolling.plan(view.facts.desired_count, config["minimumHealthyPercent"], config["maximumPercent"])
        context["plan_line"] = render.summary(rollout)
    elif not validation.valid:
        context["note"] = "; ".join(f.message for f in validation.errors)
    return context


def _supersede_waiting(release: Release, stage: str, deps: Deps) -> list[str]:
    """Older releases of the pipeline still waiting for approval of `stage` will never be current."""
    done = []
    for older in deps.store.list_releases(release.pipeline, limit=100):
        if older.order_key >= release.order_key or older.state is not ReleaseState.AWAITING_APPROVAL:
            continue
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
        for release in deps.store.list_releases(pipeline.name, limit=100):
            if release.state is not ReleaseState.AWAITING_APPROVAL or not release.approval_expires_at:
                continue
            if datetime.fromisoformat(release.approval_expires_at) > moment:
                continue
            if deps.approvals is not None and not deps.approvals.expire_if_due(release):
                continue
            try:
                deps.store.transition(
                    release,
                    ReleaseState.APPROVAL_EXPIRED,
                    reason=f"nobody decided on {release.stage} before {release.approval_expires_at}",
                    allowed_from={ReleaseState.AWAITING_APPROVAL},
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
    # COMPLETED: the stage is deployed; free the service, then the next stage (or approval).
    done = StageRecord(**{**record.__dict__, "state": StageState.DEPLOYED, "finished_at": now_iso()})
    revision = (record.task_definition_arn or "?").rsplit("/", 1)[-1]
    store.transition(
        release,
        ReleaseState.DEPLOYED,
        stage=stage_name,
        reason=f"{stage_name} runs {revision}",
        stages={**release.stages, stage_name: done},
    )
    handover = store.release_service(record.cluster, record.service, release_id)
    follow = hand_over_to(handover, deps)
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
    if record.rolled_back:
        return {"release_id": release_id, "stage": stage_name, "outcome": "duplicate"}
    if record.state is not StageState.DEPLOYING or event.detail.updated_at < datetime.fromisoformat(record.started_at):
        return _ignored(event, f"rollback predates deployment {record.deployment_id}")
    rolled = StageRecord(**{**record.__dict__, "rolled_back": True})
    deps.store.save(release, stages={**release.stages, stage_name: rolled})
    return {"release_id": release_id, "stage": stage_name, "outcome": "rolling_back", "reason": event.detail.reason}


def hand_over(result: StageResult, deps: Deps) -> Outcome:
    """A freed service lock goes to the queued release, which deploys now."""
    return hand_over_to(result.handover, deps)


def hand_over_to(handover: tuple[str, str] | None, deps: Deps) -> Outcome:
    if handover is None:
        return {}
    waiter_id, stage_name = handover
    waiter = deps.store.get(waiter_id)
    if waiter is None or waiter.state.terminal:
        record = waiter.stages.get(stage_name) if waiter else None
        if record is not None:  # it holds the lock now: pass it on
            return hand_over_to(deps.store.release_service(record.cluster, record.service, waiter_id), deps)
        return {}
    pipeline = _pipeline(deps, waiter.pipeline)
    stage = pipeline.stage_named(stage_name)
    if stage is None:
        return {}
    follow = deps.stages.deploy(waiter, pipeline, stage)
    return {"handed_over_to": waiter_id, "handover_outcome": follow.outcome, **hand_over(follow, deps)}


def _pipeline(deps: Deps, name: str) -> Pipeline:
    pipeline = deps.config().pipeline_named(name)
    if pipeline is None:
        raise ConfigError(f"pipeline {name} is no longer in the published configuration")
    return pipeline


def _ignored(event: Any, reason: str) -> Outcome:
    log.info("ignored event %s: %s", getattr(event, "id", "?"), reason)
    return {"outcome": "ignored", "reason": reason}
