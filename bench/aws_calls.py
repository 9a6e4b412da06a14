"""AWS calls per event: push -> build driven through `deployer.flow` against moto in process,
every API call recorded with its service and operation (see `bench.common.CallRecorder`).

The stage deployment's target is exactly DescribeServices, DescribeTaskDefinition,
RegisterTaskDefinition and UpdateService on ECS (plus DescribeScalableTargets on Application
Auto Scaling, to validate the rollout against the autoscaling range), and nothing polls: no read
repeated within one event, no sleep, no retried HTTP request.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from bench.common import Call, CallRecorder, create_signing_key_secret, fake_aws, wire_like_the_functions

STAGE_ECS_TARGET = ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
STAGE_AUTOSCALING_TARGET = ["DescribeScalableTargets"]
APPROVER = "U012ABCDEF"  # the demo pipeline's prod approver
_START = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def _stamp(seconds: int) -> str:
    return (_START + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _observe(recorder: CallRecorder, label: str, action: Callable[[], Any]) -> dict[str, Any]:
    """Run `action` (one handler's flow call) and describe the AWS calls it made."""
    sleeps: list[float] = []
    real_sleep = time.sleep

    def counted_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    with mock.patch.object(time, "sleep", counted_sleep), recorder.recording() as calls:
        outcome = action()
    attempts = recorder.http_attempts
    items = recorder.items_returned
    by_service: dict[str, list[str]] = {}
    for call in calls:
        by_service.setdefault(call.service, []).append(call.label)
    reads = Counter((c.service, c.operation, c.params) for c in calls if _is_read(c))
    repeated = sorted({f"{service} {operation}" for (service, operation, _), count in reads.items() if count > 1})
    outcomes = outcome if isinstance(outcome, list) else [outcome]
    return {
        "event": label,
        "outcome": ", ".join(_outcome(o) for o in outcomes),
        "detail": outcomes,
        "calls": by_service,
        "total_calls": len(calls),
        "items_returned": items,
        "http_attempts": attempts,
        "repeated_reads": repeated,
        "sleeps": len(sleeps),
        "polls": bool(repeated or sleeps or attempts > len(calls)),
    }


SERVICE_ORDER = (
    "DynamoDB",
    "ECS",
    "Application Auto Scaling",
    "CodeBuild",
    "ECR",
    "EventBridge",
    "Secrets Manager",
)


def _service_order(service: str) -> tuple[int, str]:
    return (SERVICE_ORDER.index(service) if service in SERVICE_ORDER else len(SERVICE_ORDER), service)


def _outcome(item: dict[str, Any]) -> str:
    follow = item.get("next")
    return f"{item.get('outcome')}" + (f", then {follow.get('outcome')}" if isinstance(follow, dict) else "")


def _is_read(call: Call) -> bool:
    return call.operation.startswith(("Describe", "Get", "List", "BatchGet", "Query", "Scan"))


def whole_release() -> dict[str, Any]:
    """What `make bench` runs: every event of one release, from the push to RELEASED."""
    return aws_calls(whole_release=True)


def aws_calls(*, whole_release: bool = False) -> dict[str, Any]:
    """Calls per event for: a first push, a newer push superseding a release still building, the
    newer build succeeding (the first stage deployment), and that build event redelivered; with
    `whole_release`, then the rest of that release: ECS reporting dev's deployment in progress
    (nothing to do), then COMPLETED (prod waits for an approval), the approver deciding through
    the approval page or Slack, "Approval Decided" (prod deploys), ECS reporting prod COMPLETED
    (RELEASED), and a build that failed (of a third push).

    The Deps are wired again before every event, so each event pays what a cold start pays
    (configuration read, signing key fetched from Secrets Manager)."""
    from moto import mock_aws

    from deployer.events.codebuild import CodeBuildStateChangeEvent
    from deployer.events.codecommit import CodeCommitReferenceEvent
    from deployer.events.deployer_bus import ApprovalDecidedEvent, DecidedBy
    from deployer.events.ecs import EcsDeploymentStateChangeEvent
    from deployer.events.parse import parse_event
    from deployer.flow.approval import on_approval
    from deployer.flow.build import on_build
    from deployer.flow.deployment import on_deployment
    from deployer.flow.push import on_push
    from deployer_local.provision import ACCOUNT
    from tests.support.events import load_event
    from tests.support.world import commit_id, make_world

    recorder = CallRecorder()
    with fake_aws(), mock_aws():
        recorder.install()
        world = make_world(environment="bench")
        create_signing_key_secret()
        old, new = commit_id("bench-old"), commit_id("bench-new")

        def observe(label: str, action: Callable[[], Any]) -> dict[str, Any]:
            wire_like_the_functions(world)  # a cold start: nothing cached
            return _observe(recorder, label, action)

        def push(commit: str, previous: str | None, at: int) -> Callable[[], Any]:
            event = parse_event(CodeCommitReferenceEvent, world.push(commit, previous, time=_stamp(at)))
            return lambda: on_push(event, world.deps)

        def ecs_event(stage: str, name: str, release_id: str) -> Callable[[], Any]:
            release = world.store.get(release_id)
            assert release is not None
            svc = world.account.services[stage]
            raw = load_event(name)
            raw["id"] = str(uuid.uuid4())
            raw["resources"] = [f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service/{svc.cluster}/{svc.service}"]
            raw["detail"].update(deploymentId=release.stages[stage].deployment_id, updatedAt=_stamp(600))
            event = parse_event(EcsDeploymentStateChangeEvent, raw)
            return lambda: on_deployment(event, world.deps)

        events = [observe("on_push: first commit", push(old, None, 0))]
        events.append(observe("on_push: newer commit, supersedes one building", push(new, old, 60)))
        newer = events[-1]["detail"][0]["release_id"]
        build = parse_event(CodeBuildStateChangeEvent, world.build_finished(newer))
        events.append(observe("on_build: success, deploys the first stage", lambda: on_build(build, world.deps)))
        events.append(observe("on_build: the same event redelivered", lambda: on_build(build, world.deps)))
        if whole_release:
            events.append(
                observe("on_deployment: dev IN_PROGRESS", ecs_event("dev", "ecs_deployment_in_progress", newer))
            )
            events.append(
                observe(
                    "on_deployment: dev COMPLETED, prod needs an approval",
                    ecs_event("dev", "ecs_deployment_completed", newer),
                )
            )
            waiting = world.store.get(newer)
            assert waiting is not None
            assert world.deps.approvals is not None
            link = world.deps.approvals.link_for_release(waiting) or ""
            approver = DecidedBy(kind="slack", user=APPROVER)

            def decide() -> dict[str, Any]:
                assert world.deps.approvals is not None
                approval = world.deps.approvals.decide(link.rsplit("/", 1)[-1], "approve", approver)
                return {"outcome": approval.status.lower()}

            events.append(observe("approval page / Slack button: approve (before the bus event)", decide))
            raw = load_event("approval_decided_approve")
            raw["detail"].update(
                release_id=newer, pipeline=waiting.pipeline, stage="prod", approval_id=waiting.approval_id
            )
            decided = parse_event(ApprovalDecidedEvent, raw)
            events.append(observe("on_approval: approved, deploys prod", lambda: on_approval(decided, world.deps)))
            events.append(
                observe(
                    "on_deployment: prod COMPLETED, the last stage",
                    ecs_event("prod", "ecs_deployment_completed", newer),
                )
            )
            third = commit_id("bench-third")
            (started,) = on_push(
                parse_event(CodeCommitReferenceEvent, world.push(third, new, time=_stamp(900))), world.deps
            )
            failed = parse_event(
                CodeBuildStateChangeEvent, world.build_finished(started["release_id"], status="FAILED", image=None)
            )
            events.append(observe("on_build: build FAILED", lambda: on_build(failed, world.deps)))

    stage = events[2]["calls"]
    ecs = stage.get("ECS", [])
    autoscaling = stage.get("Application Auto Scaling", [])
    services = sorted({service for e in events for service in e["calls"]}, key=_service_order)
    return {
        "services": services,
        "events": events,
        "stage_deployment": {
            "ecs": ecs,
            "application_autoscaling": autoscaling,
            "meets_target": ecs == STAGE_ECS_TARGET and autoscaling == STAGE_AUTOSCALING_TARGET,
            "target": [*STAGE_ECS_TARGET, *(f"{op} (Application Auto Scaling)" for op in STAGE_AUTOSCALING_TARGET)],
        },
        "polls": any(e["polls"] for e in events),
    }
