"""The full storm (tests/support/storm.py): 20 pipelines, 500 pushes, every EventBridge event
delivered one to three times in shuffled order, through the template's rules to the flow,
against moto in process; its throughput and whether every invariant held.

Throughput is function invocations per second (duplicates included, those answered from the
idempotency cache too), measured over the storm only, not the provisioning. moto's DynamoDB
dominates it (a Query scans the whole table, a TransactWriteItems copies it), so it falls as the
table fills: read it as a trend between runs on the same machine, not as Lambda's speed.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.common import fake_aws


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


if __name__ == "__main__":
    import json

    print(json.dumps(storm(), indent=2))
