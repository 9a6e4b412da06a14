"""A finished build (CodeBuild's event): the image pinned by digest and the first stage deployed, or
the release ended BUILD_FAILED (OnBuildFunction)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployer import aws
from deployer.deps import Deps
from deployer.errors import BadInput, DeploymentError
from deployer.events.codebuild import BuildStatus, CodeBuildStateChangeEvent
from deployer.flow.common import ENV_RELEASE_ID, EXPORTED_IMAGE, Result, _ignored
from deployer.flow.progress import deploy_next, resume_unfinished
from deployer.outcomes import Outcome
from deployer.releases.model import Release, ReleaseState
from deployer.taskdef.clone import parse_image_uri

if TYPE_CHECKING:
    from mypy_boto3_ecr import ECRClient


# -- on_build -----------------------------------------------------------------------------------


def on_build(event: CodeBuildStateChangeEvent, deps: Deps) -> Result:
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
        return {**base, "outcome": Outcome.DUPLICATE, "reason": f"release is already {release.state}"}

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
) -> Result | None:
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
        return {"outcome": Outcome.BUILD_FAILED, "reason": reason}
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
        return {"outcome": Outcome.BUILD_FAILED, "reason": str(exc)}
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
    image = parse_image_uri(exported)
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
