"""Approvals in the flow: a stage with `approval` waits (AWAITING_APPROVAL with a signed link),
"Approval Decided" deploys it or ends the release REJECTED, and stale approvals expire."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployer.deps import Deps
from deployer.errors import ConfigError
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ApprovalDecidedEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.approval import on_approval, sweep_expired_approvals
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import Release, ReleaseState, StageState
from deployer.slack import SlackNotifier, SlackSettings
from deployer_local.provision import demo_pipelines_yaml
from tests.support.clock import Clock
from tests.support.events import load_event
from tests.support.slack_sink import SlackSink
from tests.support.world import APPROVAL_BASE_URL, World, commit_id

pytestmark = pytest.mark.unit


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def to_prod_approval(world: World, label: str, *, old: str | None = None, time: str = "2026-11-29T10:00:00Z") -> str:
    """Push, build, and complete dev: the release then waits for prod's approval."""
    push = world.push(commit_id(label), commit_id(old) if old else None, time=time)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, push), world.deps)
    release_id = str(started["release_id"])
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    event: dict[str, Any] = load_event("ecs_deployment_completed")
    event["detail"]["deploymentId"] = current(world, release_id).stages["dev"].deployment_id
    on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)
    return release_id


def decision(release: Release, choice: str, *, approval_id: str | None = None) -> ApprovalDecidedEvent:
    event: dict[str, Any] = load_event("approval_decided_approve")
    event["detail"].update(
        release_id=release.release_id,
        stage=release.stage,
        approval_id=approval_id or release.approval_id,
        decision=choice,
    )
    return parse_event(ApprovalDecidedEvent, event)


def test_a_stage_with_an_approval_waits_with_a_signed_link_and_what_it_will_do(world: World) -> None:
    # WHEN dev completes and prod needs an approval
    release = current(world, to_prod_approval(world, "wait"))
    # THEN the release waits on prod with a link, and prod is untouched
    assert release.state is ReleaseState.AWAITING_APPROVAL
    assert release.stage == "prod"
    link = world.deps.approvals.link_for_release(release)  # type: ignore[union-attr]
    assert (link or "").startswith(f"{APPROVAL_BASE_URL}/approvals/v1.")
    stored = world.table.get_item(Key={"pk": f"RELEASE#{release.release_id}", "sk": "META"})["Item"]
    assert (link or "-") not in str(stored)  # the bearer link is never stored
    assert release.approval_id
    context = release.approval_context or {}
    assert context["service"] == "prod/web"
    assert context["desired"] == 4
    assert context["current_task_definition"] == world.account.services["prod"].task_definition_arn
    assert "2 waves" in context["plan_line"]
    assert world.service("prod")["taskDefinition"] == world.account.services["prod"].task_definition_arn


def test_approve_deploys_the_stage_and_records_who(world: World) -> None:
    release = current(world, to_prod_approval(world, "approve"))
    outcome = on_approval(decision(release, "approve"), world.deps)
    release = current(world, release.release_id)
    assert outcome["outcome"] == "deploying"
    assert release.state is ReleaseState.DEPLOYING
    assert release.stages["prod"].state is StageState.DEPLOYING
    assert world.service("prod")["taskDefinition"] == release.stages["prod"].task_definition_arn
    assert (release.decided_by or {})["decision"] == "approve"
    assert (release.decided_by or {})["kind"] == "slack"


def test_reject_ends_the_release_and_deploys_nothing(world: World) -> None:
    release = current(world, to_prod_approval(world, "reject"))
    outcome = on_approval(decision(release, "reject"), world.deps)
    release = current(world, release.release_id)
    assert outcome["outcome"] == "rejected"
    assert release.state is ReleaseState.REJECTED
    assert "rejected by Slack user" in (release.reason or "")
    assert world.service("prod")["taskDefinition"] == world.account.services["prod"].task_definition_arn


def test_a_decision_delivered_twice_deploys_once(world: World) -> None:
    release = current(world, to_prod_approval(world, "dup"))
    event = decision(release, "approve")
    on_approval(event, world.deps)
    revisions = world.revisions()
    again = on_approval(event, world.deps)
    assert again["outcome"] == "duplicate"
    assert world.revisions() == revisions


# --- a decision made in Slack: the clicking user hears what came of it ----------------------------


@pytest.fixture
def sink() -> Iterator[SlackSink]:
    with SlackSink() as running:
        yield running


def answering(world: World, sink: SlackSink) -> Deps:
    settings = SlackSettings(bot_token="xoxb-local", signing_secret="s", api_base_url=sink.api_base_url)
    return dataclasses.replace(world.deps, slack=SlackNotifier(lambda: settings, timeout=5))


def from_slack(event: ApprovalDecidedEvent, sink: SlackSink) -> ApprovalDecidedEvent:
    detail = event.detail.model_copy(update={"response_url": sink.response_url("T0001/1/x")})
    return event.model_copy(update={"detail": detail})


@pytest.mark.functional  # the Slack sink listens on a local socket
def test_the_slack_user_hears_the_outcome_and_the_outcome_holds_no_response_url(world: World, sink: SlackSink) -> None:
    release = current(world, to_prod_approval(world, "told"))
    outcome = on_approval(from_slack(decision(release, "approve"), sink), answering(world, sink))
    assert outcome["outcome"] == "deploying"
    (answer,) = sink.requests("/response/")
    assert answer.body["replace_original"] is False
    assert answer.body["text"].startswith(":white_check_mark: Approved by <@U012ABCDEF> at 2025-03-14 10:02 UTC. ")
    assert ":rocket: *prod* of *web* is deploying now (ecs-svc/" in answer.body["text"]
    # the outcome is logged and kept by the idempotency layer: the capability stays out of it
    assert "/response/" not in json.dumps(outcome, default=str)


@pytest.mark.functional  # the Slack sink listens on a local socket
def test_without_a_response_url_or_a_notifier_nobody_is_answered(world: World, sink: SlackSink) -> None:
    first = current(world, to_prod_approval(world, "quiet-1"))
    on_approval(decision(first, "reject"), answering(world, sink))  # through the page: no response_url
    second = current(world, to_prod_approval(world, "quiet-2"))
    on_approval(from_slack(decision(second, "reject"), sink), world.deps)  # no notifier
    assert sink.requests() == []
    assert current(world, second.release_id).state is ReleaseState.REJECTED


@pytest.mark.functional  # the Slack sink listens on a local socket
def test_a_configuration_error_is_told_to_the_user_and_still_raised(world: World, sink: SlackSink) -> None:
    # GIVEN a release waiting for prod, whose pipeline is then removed from the published configuration
    release = current(world, to_prod_approval(world, "gone"))
    world.publish(demo_pipelines_yaml(world.account).replace("- name: web", "- name: api"))
    # WHEN the approval arrives from Slack
    with pytest.raises(ConfigError, match="pipeline web is no longer in the published configuration"):
        on_approval(from_slack(decision(release, "approve"), sink), answering(world, sink))
    # THEN the user hears why nothing happened (the handler still logs the error as before)
    (answer,) = sink.requests("/response/")
    assert answer.body["text"] == (
        ":x: Nothing was done: pipeline web is no longer in the published configuration. Tell the platform team."
    )


def test_a_decision_for_another_approval_is_ignored(world: World) -> None:
    release = current(world, to_prod_approval(world, "other"))
    outcome = on_approval(decision(release, "approve", approval_id="not-this-one"), world.deps)
    assert outcome["outcome"] == "duplicate"
    assert current(world, release.release_id).state is ReleaseState.AWAITING_APPROVAL


def test_a_newer_release_waiting_on_the_same_stage_supersedes_the_older(world: World) -> None:
    older = to_prod_approval(world, "old", time="2026-11-29T10:00:00Z")
    newer = to_prod_approval(world, "new", old="old", time="2026-11-29T10:10:00Z")
    assert current(world, newer).state is ReleaseState.AWAITING_APPROVAL
    assert current(world, older).state is ReleaseState.SUPERSEDED


def test_the_sweep_never_expires_an_approval_already_decided(world: World, clock: Clock) -> None:
    # GIVEN an approval decided through the page, whose event is not yet applied
    release = current(world, to_prod_approval(world, "decided"))
    token = (world.deps.approvals.link_for_release(release) or "").rsplit("/", 1)[-1]  # type: ignore[union-attr]
    from deployer.events.deployer_bus import DecidedBy

    world.deps.approvals.decide(token, "reject", DecidedBy(kind="link"))  # type: ignore[union-attr]
    # WHEN the sweep runs after the expiry
    later = datetime.now(UTC) + timedelta(hours=25)
    clock.now = later
    # THEN the release is left for the decision
    assert sweep_expired_approvals(world.deps, later) == []
    assert current(world, release.release_id).state is ReleaseState.AWAITING_APPROVAL


def test_the_sweep_expires_approvals_past_their_time(world: World, clock: Clock) -> None:
    release_id = to_prod_approval(world, "expire")
    assert sweep_expired_approvals(world.deps, datetime.now(UTC)) == []
    later = datetime.now(UTC) + timedelta(hours=25)
    clock.now = later
    assert sweep_expired_approvals(world.deps, later) == [release_id]
    assert current(world, release_id).state is ReleaseState.APPROVAL_EXPIRED


def test_the_sweep_finds_a_waiting_release_behind_any_amount_of_history(world: World, clock: Clock) -> None:
    # GIVEN a release waiting for prod's approval, then 120 newer pushes recorded after it
    release_id = to_prod_approval(world, "old-wait")
    for n in range(120):
        world.store.create(
            pipeline="web",
            repository="web-app",
            branch="main",
            commit=commit_id(f"later-{n}"),
            previous_commit=None,
            pusher=None,
            pushed_at=f"2026-11-29T11:{n // 60:02d}:{n % 60:02d}Z",
        )
    # WHEN the sweep runs after the expiry THEN the old waiting release is found (the sparse
    # `pending` index holds waiting releases, whatever the history) and expires
    later = datetime.now(UTC) + timedelta(hours=25)
    clock.now = later
    assert sweep_expired_approvals(world.deps, later) == [release_id]
    assert world.store.waiting_releases("web") == []
