"""A push (CodeCommit's event, or a GitHub or GitLab webhook) starts a release of every pipeline that
watches the branch: the release recorded, the build started at that commit (OnPushFunction,
OnWebhookFunction)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer import aws, sources
from deployer.deps import Deps
from deployer.errors import DeploymentError
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.flow.common import ENV_COMMIT, ENV_PIPELINE, ENV_RELEASE_ID, Result, _ignored
from deployer.outcomes import Outcome
from deployer.pipelines.schema import find_pipelines
from deployer.releases.model import ReleaseState
from deployer.sources import Push

if TYPE_CHECKING:
    from deployer.pipelines.schema import Pipeline


# -- on_push ------------------------------------------------------------------------------------


def on_push(event: CodeCommitReferenceEvent | Push, deps: Deps) -> list[Result]:
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


def _start_release(push: Push, pipeline: Pipeline, deps: Deps) -> Result:
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
        return {**base, "outcome": Outcome.SUPERSEDED, "reason": release.reason}
    if release.build_arn or release.state is not ReleaseState.BUILDING:
        return {
            **base,
            "outcome": Outcome.DUPLICATE,
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
        return {**base, "outcome": Outcome.BUILD_FAILED, "reason": str(exc)}
    store.index_build(build["arn"], release.release_id)
    store.save(release, build_arn=build["arn"], build_id=build["id"])
    return {**base, "outcome": Outcome.BUILD_STARTED, "build_id": build["id"], "superseded": superseded}
