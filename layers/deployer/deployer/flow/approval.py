"""An approval decided (OnApprovalFunction, "Approval Decided"): the stage deployed or the paused
deployment continued, or the release REJECTED; and the sweep that ends approvals that expired."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from deployer import ecs_deployments
from deployer.deps import Deps
from deployer.errors import DeploymentError
from deployer.events.deployer_bus import (
    ApprovalDecidedEvent,
)
from deployer.flow.answers import _answering, _decision_words
from deployer.flow.common import Result, _ignored, _pipeline, _who
from deployer.flow.progress import _end_pause_or_wait, deploy_stage, resume_unfinished
from deployer.outcomes import Outcome
from deployer.releases.model import Release, ReleaseState, StageRecord, StageState
from deployer.releases.store import ConflictError


def on_approval(event: ApprovalDecidedEvent, deps: Deps) -> Result:
    """Apply a decision; a decision made in Slack then tells the clicking user what came of it."""
    return _answering(event.detail, deps, lambda: _apply_decision(event, deps), _decision_words)


def _apply_decision(event: ApprovalDecidedEvent, deps: Deps) -> Result:
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
        return {**base, "outcome": Outcome.DUPLICATE, "reason": f"release is {release.state} ({release.stage})"}
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
        return {**base, "outcome": Outcome.REJECTED}
    pipeline = _pipeline(deps, release.pipeline)
    stage = pipeline.stage_named(detail.stage)
    if stage is None:
        reason = f"stage {detail.stage} is no longer in pipeline {pipeline.name}"
        store.transition(release, ReleaseState.INVALID_CONFIG, reason=reason)
        return {**base, "outcome": Outcome.INVALID_CONFIG, "reason": reason}
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


def _answer_pause(release: Release, record: StageRecord, detail: Any, who: dict[str, Any], deps: Deps) -> Result:
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
        return {
            "outcome": Outcome.FAILED,
            "reason": reason,
            **_end_pause_or_wait(release, deps, reason, decided_by=who),
        }
    if action == "CONTINUE":
        resumed = replace(record, hook_id=None)
        deps.store.transition(
            release,
            ReleaseState.DEPLOYING,
            stage=detail.stage,
            reason=f"{detail.stage} approved by {_who(detail)} at {record.paused_at}: ECS continues",
            decided_by=who,
            stages={**release.stages, detail.stage: resumed},
            allowed_from={ReleaseState.AWAITING_APPROVAL},
        )
        return {"outcome": Outcome.CONTINUED, "approved_by": _who(detail)}
    ended = _end_pause_or_wait(
        release,
        deps,
        f"{detail.stage} rejected by {_who(detail)} at {record.paused_at}: ECS rolls back",
        state=ReleaseState.REJECTED,
        rolled_back=True,
        decided_by=who,
    )
    return {"outcome": Outcome.REJECTED, **ended}
