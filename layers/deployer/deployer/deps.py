"""What the flow needs to act on an event (`Deps`): the release store, the published pipelines,
the AWS clients, the stage deployer, the approvals and Slack."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from deployer.releases.store import ReleaseStore
from deployer.stages import StageDeployer

if TYPE_CHECKING:
    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_ecr import ECRClient

    from deployer.approvals import Approvals
    from deployer.pipelines.schema import PipelinesConfig
    from deployer.slack import SlackNotifier


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
