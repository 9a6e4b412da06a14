"""What the flow's modules share: the variables every build gets, the outcome of an event, and the
small lookups every step makes (the pipeline of a release, an event ignored with its reason)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from deployer.deps import Deps
from deployer.errors import ConfigError
from deployer.outcomes import Outcome
from deployer.releases.model import pipeline_of

if TYPE_CHECKING:
    from deployer.pipelines.schema import Pipeline

log = logging.getLogger("deployer")

# Environment variables the deployer passes to every build (StartBuild overrides); they come
# back in the build's state change event, which is how a build finds its release.
ENV_RELEASE_ID = "DEPLOYER_RELEASE_ID"
ENV_COMMIT = "DEPLOYER_COMMIT"
ENV_PIPELINE = "DEPLOYER_PIPELINE"
EXPORTED_IMAGE = "IMAGE_URI"

Result = dict[str, Any]
"""What a step returns: {"outcome": Outcome.X, ...why and what next}, printed by handlers and tests."""


def _who(detail: Any) -> str:
    by = detail.decided_by
    if by.kind == "slack":
        return f"Slack user {by.user}"
    return f"link holder ({by.source_ip or 'unknown address'})"


def _short_arn(arn: object) -> str:
    return str(arn or "?").rsplit("/", 1)[-1]


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


def _ignored(event: Any, reason: str) -> Result:
    log.info("ignored event %s: %s", getattr(event, "id", None) or getattr(event, "delivery_id", "?"), reason)
    return {"outcome": Outcome.IGNORED, "reason": reason}
