"""The full storm (tests/support/storm.py): 20 pipelines, 500 pushes, every EventBridge event
delivered one to three times in shuffled order, through the template's rules to the flow,
against moto in process; what each flow run costs the deployer, and whether every invariant held.

What counts is the deployer's own CPU time per flow run: the worker thread's CPU time while the
flow runs, less the time inside its AWS calls (from the request's parameters to the parsed
answer: botocore's work and, moto being in process, moto's), with the AWS calls of each run by
service. Throughput (function invocations per second, duplicates included) is mostly moto's
DynamoDB (a Query scans the whole table, a TransactWriteItems copies it), so it falls as the
table fills: it is kept as a trend between runs on the same machine, not as Lambda's speed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import Any

from bench.common import fake_aws, median, p95


def storm(pipelines: int = 20, pushes: int = 500, seed: int | None = None) -> dict[str, Any]:
    """Run one storm and describe it; `seed` None takes STORM_SEED, else a fresh seed."""
    import logging

    from tests.support.storm import run_storm, seed_from_env

    chosen = seed if seed is not None else seed_from_env()
    started = time.perf_counter()
    deployer_log = logging.getLogger("deployer")
    level = deployer_log.level
    deployer_log.setLevel(logging.ERROR)  # a line per ignored event otherwise
    try:
        with fake_aws():
            report = run_storm(pipelines, pushes, chosen, printer=lambda line: print(line, file=sys.stderr))
    finally:
        deployer_log.setLevel(level)
    return {
        "flow_cost": flow_cost(report.flow_runs_measured),
        "seed": report.seed,
        "replay": report.replay,
        "pipelines": report.pipelines,
        "pushes": report.pushes,
        "deliveries": report.deliveries,
        "redeliveries": report.redeliveries,
        "reemissions": report.reemissions,
        "invocations": report.invocations,
        "cache_hits": report.cache_hits,
        "flow_runs": report.flow_runs,
        "approval_clicks": report.clicks,
        "storm_seconds": round(report.seconds, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "events_per_second": round(report.events_per_second, 1),
        "aws_calls": dict(sorted(report.calls.items())),
        "releases": dict(sorted(report.states.items())),
        "invariants_held": not report.broken_invariants,
        "broken_invariants": [f"[{v.invariant}] {v.detail}" for v in report.broken_invariants],
        "wrong_records": [f"[{v.invariant}] {v.detail}" for v in report.wrong_records],
    }


def flow_cost(runs: Sequence[Any]) -> dict[str, Any]:
    """Per function and in all: flow runs, the deployer's own CPU ms per run (median, p95, mean),
    the share of the runs' CPU time spent inside AWS calls, and AWS calls per run by service."""

    def summary(chosen: Sequence[Any]) -> dict[str, Any]:
        own = [r.own_cpu_ms for r in chosen]
        cpu = sum(r.cpu_ms for r in chosen)
        services = sorted({service for r in chosen for service in r.calls})
        return {
            "runs": len(chosen),
            "own_cpu_median_ms": median(own),
            "own_cpu_p95_ms": p95(own),
            "own_cpu_mean_ms": sum(own) / len(own),
            "own_cpu_total_s": sum(own) / 1000,
            "aws_share": sum(r.aws_cpu_ms for r in chosen) / cpu if cpu else 0.0,
            "calls_per_run": {s: sum(r.calls.get(s, 0) for r in chosen) / len(chosen) for s in services},
            "calls_per_run_total": sum(sum(r.calls.values()) for r in chosen) / len(chosen),
        }

    if not runs:
        return {}
    functions = sorted({r.function for r in runs})
    return {
        "all": summary(runs),
        "by_function": {f: summary([r for r in runs if r.function == f]) for f in functions},
    }


if __name__ == "__main__":
    import json

    print(json.dumps(storm(), indent=2))
