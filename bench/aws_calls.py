"""AWS calls per event: push -> build driven through `deployer.flow` against moto in process,
every API call recorded with its service and operation (see `bench.common.CallRecorder`).

The stage deployment's target is exactly DescribeServices, DescribeTaskDefinition,
RegisterTaskDefinition and UpdateService on ECS (plus DescribeScalableTargets on Application
Auto Scaling, to validate the rollout against the autoscaling range), and nothing polls: no read
repeated within one event, no sleep, no retried HTTP request.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest import mock

from bench.common import Call, CallRecorder, fake_aws, wire_like_the_functions

STAGE_ECS_TARGET = ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
STAGE_AUTOSCALING_TARGET = ["DescribeScalableTargets"]
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
        "outcome": ", ".join(str(o.get("outcome")) for o in outcomes),
        "detail": outcomes,
        "calls": by_service,
        "total_calls": len(calls),
        "items_returned": items,
        "http_attempts": attempts,
        "repeated_reads": repeated,
        "sleeps": len(sleeps),
        "polls": bool(repeated or sleeps or attempts > len(calls)),
    }


def _is_read(call: Call) -> bool:
    return call.operation.startswith(("Describe", "Get", "List", "BatchGet", "Query", "Scan"))


def aws_calls() -> dict[str, Any]:
    """Calls per event for: a first push, a newer push superseding a release still building, the
    newer build succeeding (the first stage deployment), and that build event redelivered."""
    from moto import mock_aws

    from deployer import flow
    from deployer.events import CodeBuildStateChangeEvent, CodeCommitReferenceEvent, parse_event
    from tests.support.world import commit_id, make_world

    recorder = CallRecorder()
    with fake_aws(), mock_aws():
        recorder.install()
        world = make_world(environment="bench")
        wire_like_the_functions(world)
        old, new = commit_id("bench-old"), commit_id("bench-new")

        def push(commit: str, previous: str | None, at: int) -> Callable[[], Any]:
            event = parse_event(CodeCommitReferenceEvent, world.push(commit, previous, time=_stamp(at)))
            return lambda: flow.on_push(event, world.deps)

        events = [_observe(recorder, "on_push: first commit", push(old, None, 0))]
        events.append(_observe(recorder, "on_push: newer commit, supersedes one building", push(new, old, 60)))
        newer = events[-1]["detail"][0]["release_id"]
        build = parse_event(CodeBuildStateChangeEvent, world.build_finished(newer))
        events.append(
            _observe(recorder, "on_build: success, deploys the first stage", lambda: flow.on_build(build, world.deps))
        )
        events.append(
            _observe(recorder, "on_build: the same event redelivered", lambda: flow.on_build(build, world.deps))
        )

    stage = events[2]["calls"]
    ecs = stage.get("ECS", [])
    autoscaling = stage.get("Application Auto Scaling", [])
    return {
        "events": events,
        "stage_deployment": {
            "ecs": ecs,
            "application_autoscaling": autoscaling,
            "meets_target": ecs == STAGE_ECS_TARGET and autoscaling == STAGE_AUTOSCALING_TARGET,
            "target": [*STAGE_ECS_TARGET, *(f"{op} (Application Auto Scaling)" for op in STAGE_AUTOSCALING_TARGET)],
        },
        "polls": any(e["polls"] for e in events),
    }
