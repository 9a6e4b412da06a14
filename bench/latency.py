"""Handler latency against moto server (real HTTP on 127.0.0.1): `on_push` for n new commits
pushed in sequence (each supersedes the previous, still building), `on_build` for n
successful builds (each deploys the first stage) and `on_deployment` for ECS reporting each
of those deployments COMPLETED (the release is deployed on dev and waits for prod's approval,
superseding the previous one waiting there), against one bare DynamoDB GetItem round trip to the
same server, timed after every timed handler call.

The server runs in this process, so its work is part of every figure, the baseline's included;
the ratio reads as "how many round trips a handler is worth".
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import (
    CallRecorder,
    create_signing_key_secret,
    fake_aws,
    median,
    moto_server,
    p95,
    ratio,
    wire_like_the_functions,
)

_START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WARM_UP = 2
TREND = 10  # events at each end compared for the trend
EVENTS = ("on_push", "on_build", "on_deployment")
"""Every handler `make bench` times (`per_event_latency`)."""
N = 200
BUDGET_S = 600.0


def per_event_latency() -> dict[str, Any]:
    """What `make bench` runs: N events of each of EVENTS."""
    return handler_latency(n=N, budget_s=BUDGET_S, events=EVENTS)


def _outcome(item: dict[str, Any]) -> str:
    """`deployed, then awaiting_approval` where a handler went on to the next stage."""
    follow = item.get("next")
    then = f", then {follow.get('outcome')}" if isinstance(follow, dict) else ""
    return f"{item.get('outcome')}{then}"


def _slowest(per_call: dict[str, list[float]], events: int, top: int = 3) -> list[dict[str, Any]]:
    """The operations with the most time per event (all their calls summed, over `events`)."""
    ranked = sorted(per_call.items(), key=lambda item: -sum(item[1]))[:top]
    return [
        {
            "call": call,
            "ms_per_event": sum(times) / max(events, 1),
            "median_ms": median(times),
            "calls_per_event": len(times) / max(events, 1),
        }
        for call, times in ranked
    ]


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return (time.perf_counter() - start) * 1000, result


def handler_latency(
    n: int = N, budget_s: float = 60.0, events: Sequence[str] = ("on_push", "on_build")
) -> dict[str, Any]:
    """Median and p95 of each handler in `events` (a subset of EVENTS) over n events each (after
    WARM_UP untimed ones), and of one GetItem timed after every timed handler call; ratios
    handler / GetItem. A handler left out of `events` still runs where the sequence needs it
    (a build needs its push; ECS completes every deployment so the next build deploys), untimed.

    On a loaded machine each phase stops once its share of `budget_s` is spent (after at least
    10 events); the result says how many ran."""
    import boto3

    from deployer.events.codebuild import CodeBuildStateChangeEvent
    from deployer.events.codecommit import CodeCommitReferenceEvent
    from deployer.events.ecs import EcsDeploymentStateChangeEvent
    from deployer.events.parse import parse_event
    from deployer.flow.build import on_build
    from deployer.flow.deployment import on_deployment
    from deployer.flow.push import on_push
    from deployer_local.provision import ACCOUNT
    from tests.support.events import load_event
    from tests.support.world import commit_id, make_world

    unknown = set(events) - set(EVENTS)
    if unknown:
        raise ValueError(f"no such handler to time: {', '.join(sorted(unknown))}")
    timed_names = [name for name in EVENTS if name in events]
    samples: dict[str, list[float]] = {name: [] for name in [*EVENTS, "get_item"]}
    calls: dict[str, list[int]] = {name: [] for name in EVENTS}
    aws_share: dict[str, list[float]] = {name: [] for name in EVENTS}
    items: dict[str, list[int]] = {name: [] for name in EVENTS}
    outcomes: dict[str, Counter[str]] = {name: Counter() for name in EVENTS}
    # handler -> "Service Operation" -> the time of each such call, to find where a handler's time goes
    per_call: dict[str, dict[str, list[float]]] = {name: {} for name in EVENTS}
    recorder = CallRecorder()
    with moto_server() as url, fake_aws(endpoint_url=url):
        recorder.install()
        world = make_world(environment="bench")
        create_signing_key_secret()
        wire_like_the_functions(world)
        dynamodb = boto3.session.Session().client("dynamodb")  # not recorded
        probe_key = {"pk": {"S": "RELEASE#web@" + "0" * 40}, "sk": {"S": "META"}}
        dev = world.account.services["dev"]
        dev_arn = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service/{dev.cluster}/{dev.service}"
        clock = iter(range(10**6))
        previous: list[str | None] = [None]

        def push_event() -> CodeCommitReferenceEvent:
            commit = commit_id(f"bench-latency-{next(clock)}")
            at = (_START + timedelta(seconds=next(clock))).strftime("%Y-%m-%dT%H:%M:%SZ")
            raw = world.push(commit, previous[0], time=at)
            previous[0] = commit
            return parse_event(CodeCommitReferenceEvent, raw)

        def completed_event(release_id: str) -> EcsDeploymentStateChangeEvent:
            release = world.store.get(release_id)
            assert release is not None
            deployment = release.stages["dev"].deployment_id
            raw = load_event("ecs_deployment_completed")
            raw["id"] = str(uuid.uuid4())
            raw["resources"] = [dev_arn]
            raw["detail"].update(
                deploymentId=deployment,
                reason=f"ECS deployment {deployment} completed.",
                updatedAt=datetime.now(UTC).isoformat(timespec="milliseconds"),
            )
            return parse_event(EcsDeploymentStateChangeEvent, raw)

        def get_item() -> None:
            dynamodb.get_item(TableName=world.names.table, Key=probe_key)

        def measure(name: str, action: Callable[[], Any], warm: bool) -> Any:
            timed = warm and name in timed_names
            with recorder.recording() as made:
                elapsed, result = _timed(action)
            if timed:
                samples[name].append(elapsed)
                calls[name].append(len(made))
                aws_share[name].append(sum(recorder.call_ms) / elapsed)
                items[name].append(recorder.items_returned)
                for call, ms in zip(made, recorder.call_ms, strict=False):
                    per_call[name].setdefault(f"{call.service} {call.operation}", []).append(ms)
                for item in result if isinstance(result, list) else [result]:
                    outcomes[name][_outcome(item)] += 1
                samples["get_item"].append(_timed(get_item)[0])
            return result

        started = time.monotonic()

        def in_budget(index: int, share: float) -> bool:
            return index < WARM_UP + min(n, 10) or time.monotonic() < started + share * budget_s

        # on_push: each new commit supersedes the previous release, still building.
        if "on_push" in timed_names:
            for index in range(WARM_UP + n):
                if not in_budget(index, 0.3):
                    break
                event = push_event()
                measure("on_push", lambda e=event: on_push(e, world.deps), index >= WARM_UP)
        # A push (timed only in the phase above), the build succeeds, ECS completes the deployment.
        for index in range(WARM_UP + n):
            if not in_budget(index, 1.0):
                break
            (release,) = on_push(push_event(), world.deps)
            build = parse_event(CodeBuildStateChangeEvent, world.build_finished(release["release_id"]))
            measure("on_build", lambda b=build: on_build(b, world.deps), index >= WARM_UP)
            done = completed_event(release["release_id"])
            measure("on_deployment", lambda d=done: on_deployment(d, world.deps), index >= WARM_UP)

    baseline = median(samples["get_item"])
    handlers = []
    for name in timed_names:
        values = samples[name]
        handlers.append(
            {
                "handler": name,
                "n": len(values),
                "median_ms": median(values),
                "p95_ms": p95(values),
                "ratio": ratio(median(values), baseline),
                "aws_calls": median(calls[name]),
                "in_aws_calls": median(aws_share[name]),
                # How the cost moves as the pipeline's history grows: the first and the last events.
                "first_ms": median(values[:TREND]),
                "last_ms": median(values[-TREND:]),
                "items_first": items[name][0],
                "items_last": items[name][-1],
                "outcomes": dict(outcomes[name]),
                # the calls that take most of the handler's time: their total per event, median of each call
                "slowest_calls": _slowest(per_call[name], len(values)),
            }
        )
    return {
        "n_requested": n,
        "budget_s": budget_s,
        "warm_up": WARM_UP,
        "server": "moto server (werkzeug, threaded) in this process, HTTP on 127.0.0.1",
        "get_item": {"median_ms": baseline, "p95_ms": p95(samples["get_item"]), "n": len(samples["get_item"])},
        "handlers": handlers,
    }
