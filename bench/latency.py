"""Handler latency against moto server (real HTTP on 127.0.0.1): `flow.on_push` for n new commits
pushed in sequence (each supersedes the previous, still building) and `flow.on_build` for n
successful builds (each deploys the first stage), against one bare DynamoDB GetItem round trip
to the same server, timed between the handler calls.

The server runs in this process (ThreadedMotoServer), so its work is part of every figure, the
baseline's included; the ratio reads as "how many round trips a handler is worth". Between two
builds the dev service's lock is freed as on_deployment will when ECS reports COMPLETED (not
timed), so that every build deploys instead of queueing behind the previous one.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.common import CallRecorder, fake_aws, median, p95, ratio, wire_like_the_functions

_START = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WARM_UP = 2
TREND = 10  # events at each end compared for the trend


@contextmanager
def moto_server() -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1, with empty backends; yields its URL."""
    from moto.server import ThreadedMotoServer

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one access-log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        _reset(url)
        yield url
    finally:
        _reset(url)
        server.stop()
        werkzeug.setLevel(level)


def _reset(url: str) -> None:
    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - a local http URL
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()


def _timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return (time.perf_counter() - start) * 1000, result


def handler_latency(n: int = 50, budget_s: float = 60.0) -> dict[str, Any]:
    """Median and p95 of on_push and on_build over n events each (after WARM_UP untimed ones),
    and of one GetItem timed after every handler call; ratios handler / GetItem.

    On a loaded machine each phase stops once its half of `budget_s` is spent (after at least
    10 events); the result says how many ran."""
    import boto3

    from deployer import flow
    from deployer.events import CodeBuildStateChangeEvent, CodeCommitReferenceEvent, parse_event
    from tests.support.world import commit_id, make_world

    samples: dict[str, list[float]] = {"on_push": [], "on_build": [], "get_item": []}
    calls: dict[str, list[int]] = {"on_push": [], "on_build": []}
    aws_share: dict[str, list[float]] = {"on_push": [], "on_build": []}
    items: dict[str, list[int]] = {"on_push": [], "on_build": []}
    outcomes: dict[str, Counter[str]] = {"on_push": Counter(), "on_build": Counter()}
    recorder = CallRecorder()
    with moto_server() as url, fake_aws(endpoint_url=url):
        recorder.install()
        world = make_world(environment="bench")
        wire_like_the_functions(world)
        dynamodb = boto3.session.Session().client("dynamodb")  # not recorded
        probe_key = {"pk": {"S": "RELEASE#web@" + "0" * 40}, "sk": {"S": "META"}}
        dev = world.account.services["dev"]
        clock = iter(range(10**6))
        previous: list[str | None] = [None]

        def push_event() -> CodeCommitReferenceEvent:
            commit = commit_id(f"bench-latency-{next(clock)}")
            at = (_START + timedelta(seconds=next(clock))).strftime("%Y-%m-%dT%H:%M:%SZ")
            raw = world.push(commit, previous[0], time=at)
            previous[0] = commit
            return parse_event(CodeCommitReferenceEvent, raw)

        def get_item() -> None:
            dynamodb.get_item(TableName=world.names.table, Key=probe_key)

        def measure(name: str, action: Callable[[], Any], timed: bool) -> Any:
            with recorder.recording() as made:
                elapsed, result = _timed(action)
            if timed:
                samples[name].append(elapsed)
                calls[name].append(len(made))
                aws_share[name].append(sum(recorder.call_ms) / elapsed)
                items[name].append(recorder.items_returned)
                for item in result if isinstance(result, list) else [result]:
                    outcomes[name][str(item.get("outcome"))] += 1
                samples["get_item"].append(_timed(get_item)[0])
            return result

        started = time.monotonic()

        def in_budget(index: int, share: float) -> bool:
            return index < WARM_UP + min(n, 10) or time.monotonic() < started + share * budget_s

        # on_push: each new commit supersedes the previous release, still building.
        for index in range(WARM_UP + n):
            if not in_budget(index, 0.4):
                break
            event = push_event()
            measure("on_push", lambda e=event: flow.on_push(e, world.deps), index >= WARM_UP)
        # on_build: push (untimed), the build succeeds (timed), ECS completes (untimed).
        for index in range(WARM_UP + n):
            if not in_budget(index, 1.0):
                break
            (release,) = flow.on_push(push_event(), world.deps)
            build = parse_event(CodeBuildStateChangeEvent, world.build_finished(release["release_id"]))
            measure("on_build", lambda b=build: flow.on_build(b, world.deps), index >= WARM_UP)
            world.store.release_service(dev.cluster, dev.service, release["release_id"])

    baseline = median(samples["get_item"])
    handlers = []
    for name in ("on_push", "on_build"):
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
            }
        )
    return {
        "n_requested": n,
        "warm_up": WARM_UP,
        "server": "moto.server.ThreadedMotoServer, in process, HTTP on 127.0.0.1",
        "get_item": {"median_ms": baseline, "p95_ms": p95(samples["get_item"]), "n": len(samples["get_item"])},
        "handlers": handlers,
    }
