"""What the flow needs to act on an event (`Deps`), and the one place it is built (`build_deps`).

Every caller builds it here: the functions (`runtime.deps`, once per cold start), `deployer
rollback`, the benchmarks and the tests. Only what they pass differs: the releases table, where the
pipelines come from, and a `client(service_name)` factory (the functions pass `aws.lazy_client`, so
a client is created when the flow first uses it; the CLI passes its session's; tests, moto's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.releases.store import ReleaseStore
from deployer.stages import StageDeployer

if TYPE_CHECKING:
    from datetime import datetime

    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_ecr import ECRClient

    from deployer.approvals import Approvals
    from deployer.pipelines.schema import PipelinesConfig
    from deployer.releases.model import Release, TransitionListener
    from deployer.slack import SlackNotifier, SlackSettings


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


def build_deps(
    table: Table,
    config: Callable[[], PipelinesConfig],
    client: Callable[..., Any],
    *,
    listeners: Iterable[TransitionListener] = (),
    event_bus: str | None = None,
    slack: Callable[[], SlackSettings] | None = None,
    region: str | None = None,
    signing_key: Callable[[], bytes] | None = None,
    approval_base_url: str | None = None,
    slack_answer_timeout: float | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Deps:
    """The flow's dependencies. Every transition goes to `listeners` first, then to the deployer's
    bus (`event_bus`: "Release State Change") and to Slack (`slack`: one message per release,
    with its approval link once `signing_key` makes approvals possible). `signing_key` turns
    approvals on (links under `approval_base_url`); `slack_answer_timeout` lets the flow answer the
    Slack user who clicked (`Deps.slack`); the approvals read the time from `clock` (default:
    the real time)."""
    from deployer.reporting import fan_out

    chosen: list[TransitionListener] = list(listeners)
    if event_bus:
        from deployer.flow.publishing import BusPublisher

        chosen.append(BusPublisher(client("events"), event_bus))
    approvals: Approvals | None = None
    if slack is not None:
        from deployer.reporting import SlackReporter
        from deployer.slack import SlackNotifier

        def channel_for(_pipeline: str) -> str | None:
            published = config()
            return published.slack.channel if published.slack else None

        def link_for(release: Release) -> str | None:
            return approvals.link_for_release(release) if approvals else None

        chosen.append(
            SlackReporter(SlackNotifier(slack), slack, lambda: store, channel_for, region=region, link_for=link_for)
        )
    store = ReleaseStore(table, on_transition=fan_out(chosen))
    if signing_key is not None:
        from deployer.approvals import Approvals

        if clock is None:
            approvals = Approvals(table, store, signing_key, base_url=approval_base_url)
        else:
            approvals = Approvals(table, store, signing_key, clock=clock, base_url=approval_base_url)
    answers: SlackNotifier | None = None
    if slack is not None and slack_answer_timeout is not None:
        from deployer.slack import SlackNotifier

        answers = SlackNotifier(slack, timeout=slack_answer_timeout)
    return Deps(
        store=store,
        config=config,
        codebuild=client("codebuild"),
        ecr=client("ecr"),
        stages=StageDeployer(store, client("ecs"), client("application-autoscaling")),
        approvals=approvals,
        slack=answers,
    )
