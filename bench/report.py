"""BENCHMARKS.md and the console summary, from the sections' dicts."""

from __future__ import annotations

import os
import platform
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from bench.common import REPO_ROOT

REPRODUCE = {
    "startup": "plan_startup",
    "imports": "cold_imports",
    "calls": "aws_calls",
    "latency": "handler_latency",
}


def run_info(seconds: float) -> dict[str, str]:
    def git(*args: str) -> str:
        done = subprocess.run(  # noqa: S603 - fixed read-only git commands
            ["git", *args],  # noqa: S607
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
            check=False,
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--untracked-files=no"):
        commit += " (plus uncommitted changes)"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs (nproc), {platform.machine()}, {platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "commit": commit,
        "duration": f"{seconds:.0f} s",
    }


# -- formatting helpers ---------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"


def _x(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}×"


def _yes(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "n/a"}[value]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _ops(labels: Sequence[str]) -> str:
    """In call order, runs of the same operation folded: `GetItem, Query ×2, PutItem`."""
    if not labels:
        return "none"
    parts = []
    for label, run in groupby(labels):
        count = len(list(run))
        parts.append(label if count == 1 else f"{label} ×{count}")
    return ", ".join(parts)


# -- sections -------------------------------------------------------------------------------------


def startup_md(r: dict[str, Any]) -> list[str]:
    imports = r["imports"]
    return [
        f"Whole-process wall time, median of {r['n']} runs each, interleaved, after one warm-up run each.",
        "",
        *_table(
            ["command", "median ms", "min ms", "ratio to `python -c pass`"],
            [
                ["`python -c pass`", _ms(r["baseline_ms"]), _ms(r["baseline_min_ms"]), _x(1.0)],
                [f"`{r['command']}`", _ms(r["plan_ms"]), _ms(r["plan_min_ms"]), f"**{_x(r['ratio'])}**"],
                [
                    "the same, no .pyc for the `deployer` package",
                    _ms(r["plan_uncompiled_ms"]),
                    "",
                    _x(r["uncompiled_ratio"]),
                ],
            ],
        ),
        "",
        f"- boto3 imported: **{_yes(imports['boto3_imported'])}**; botocore imported: "
        f"**{_yes(imports['botocore_imported'])}** (checked twice: `python -X importtime` of the console script, "
        "and `sys.modules` after running the CLI's `main`).",
        f"- {imports['modules']} modules loaded; packages outside the standard library: "
        f"{', '.join(imports['top_level_packages_outside_stdlib']) or 'none'}; "
        f"imports take {_ms(imports['import_time_ms'])} ms in all (one `-X importtime` run).",
        "- Slowest imports (own time): "
        + ", ".join(f"`{name}` {_ms(ms)} ms" for name, ms in imports["slowest_imports_ms"].items())
        + ".",
        "- Bytecode lives in a temporary pycache prefix, so the figures do not depend on the caller's "
        "PYTHONDONTWRITEBYTECODE; the last row is what an editable install pays when bytecode is never written.",
    ]


def imports_md(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}."]
    base = r["baseline"]
    rows = [
        [
            "`import boto3` (from the layer)",
            _ms(base["cached_ms"]),
            _x(1.0),
            _ms(base["uncompiled_ms"]),
            _x(1.0),
            str(base["modules"]),
            "",
        ]
    ]
    errors = []
    for f in r["functions"]:
        if "error" in f:
            errors.append(f"- **{f['function']} could not be measured**: {f['error']}")
        rows.append(
            [
                f"{f['function']} (`{f['module']}`)",
                _ms(f["cached_ms"]),
                f"**{_x(f['cached_ratio'])}**",
                _ms(f["uncompiled_ms"]),
                _x(f["uncompiled_ratio"]),
                str(f["modules"] or "n/a"),
                _yes(f["imports_boto3"]),
            ]
        )
    overlay = r["native_overlay"]
    stand_ins = (
        "The layer's native code is built for another architecture than this host's "
        f"({r['host']}); these packages come from the venv at the same version: "
        + ", ".join(f"{o['distribution']} {o['version']}" for o in overlay)
        + "."
        if overlay
        else "Every package comes from the build."
    )
    breakdown = r.get("breakdown") or {}
    packages = breakdown.get("by_package_ms", {})
    total = breakdown.get("total_ms") or 1.0
    where = (
        [
            f"- Where the time goes ({breakdown['function']}, one `-X importtime` run, {_ms(total)} ms of module "
            "execution, each module's own time summed per top-level package): "
            + ", ".join(f"`{name}` {_ms(ms)} ms ({ms / total:.0%})" for name, ms in list(packages.items())[:6])
            + ". A module's own time includes what its top level runs (e.g. `app` building its clients)."
        ]
        if packages
        else []
    )
    return [
        f"Time to import the handler module in a fresh interpreter (`python -I -S`, the function's directory and "
        f"its layer on sys.path), median of {r['n']} runs with bytecode cached and {r['n_uncompiled']} without "
        f"({r['n_requested']} and {r['n_uncompiled_requested']} asked for, fewer if the time budget ran out on a "
        f"loaded machine); the order rotates every round. Build: `{r['build']}`, built {r['built_at']}, measured "
        "on a snapshot.",
        "",
        *_table(
            ["module", "cached ms", "ratio", "no .pyc ms", "ratio", "modules", "loads boto3"],
            rows,
        ),
        "",
        *errors,
        *where,
        "- *No .pyc* is what a Lambda cold start does: `sam build` ships no bytecode and /opt and /var/task are "
        "read-only, so the function and layer are compiled on every cold start (the standard library stays "
        "compiled, as in the runtime).",
        f"- Environment: {', '.join(f'`{k}`' for k in r['env'])} (the template's Globals and the function's own, "
        "Refs resolved to parameter defaults, and what Lambda's runtime sets; POWERTOOLS_TRACE_DISABLED=true).",
        f"- {stand_ins}",
    ]


def calls_md(r: dict[str, Any]) -> list[str]:
    stage = r["stage_deployment"]
    rows = []
    for e in r["events"]:
        calls = dict(e["calls"])
        dynamodb = calls.pop("DynamoDB", [])
        config = [c for c in dynamodb if "config" in c]
        deployer = [c.split("[")[0] for c in dynamodb if "config" not in c]
        ecs = calls.pop("ECS", [])
        other = "; ".join(f"{service}: {_ops(ops)}" for service, ops in sorted(calls.items())) or "none"
        rows.append(
            [
                e["event"],
                e["outcome"],
                f"{len(deployer)}: {_ops(deployer)}",
                str(len(config)),
                _ops(ecs),
                other,
                str(e["total_calls"]),
                str(e["items_returned"]),
                _yes(e["polls"]),
            ]
        )
    return [
        "One release driven through `deployer.flow` against moto in process, every AWS API call recorded with a "
        "botocore `before-parameter-build` hook on the default session (the clients the Deps use). Transitions "
        "are published on the bus as the functions do it (`BusPublisher`).",
        "",
        f"**Stage deployment** (on_build success): ECS `{' → '.join(stage['ecs'])}`; Application Auto Scaling "
        f"`{' → '.join(stage['application_autoscaling'])}`. Target "
        f"`{', '.join(stage['target'])}`: **{'met' if stage['meets_target'] else 'NOT met'}**.",
        "",
        *_table(
            [
                "event",
                "outcome",
                "DynamoDB, deployer table",
                "config reads",
                "ECS",
                "other",
                "calls",
                "items queried",
                "polls",
            ],
            rows,
        ),
        "",
        f"- Anything polls: **{_yes(r['polls'])}** (no read repeated within one event, no `time.sleep`, and as many "
        "HTTP requests as API calls, i.e. no retries).",
        "- *Items queried*: items returned by DynamoDB Query and Scan calls, what a read's cost grows with.",
        "- *config reads* go to the config table; the tests' ConfigStore has max age 0, so this is a cold "
        "start: a warm function with the deployed 60 s max age makes none.",
        "- Not counted: the handlers' Powertools idempotency records (a conditional PutItem, then an UpdateItem, "
        "per event), since the flow is driven without the Lambda handler.",
    ]


def latency_md(r: dict[str, Any]) -> list[str]:
    base = r["get_item"]
    rows = [
        ["DynamoDB GetItem (baseline)", str(base["n"]), _ms(base["median_ms"]), _ms(base["p95_ms"]), "1", "", _x(1.0)]
    ]
    for h in r["handlers"]:
        outcomes = ", ".join(f"{k} {v}" for k, v in h["outcomes"].items())
        rows.append(
            [
                f"`flow.{h['handler']}` ({outcomes})",
                str(h["n"]),
                _ms(h["median_ms"]),
                _ms(h["p95_ms"]),
                f"{h['aws_calls']:g}",
                f"{h['in_aws_calls']:.0%}",
                f"**{_x(h['ratio'])}**",
            ]
        )
    trends = [
        f"- `{h['handler']}` as history grows: median of the first {min(h['n'], 10)} events {_ms(h['first_ms'])} ms, "
        f"of the last {min(h['n'], 10)} {_ms(h['last_ms'])} ms; its Queries returned {h['items_first']} items "
        f"for the first event and {h['items_last']} for the last."
        for h in r["handlers"]
    ]
    return [
        f"{r['server']}. New commits pushed in sequence (each supersedes the previous, still building), then "
        f"builds that each deploy the first stage; {r['n_requested']} of each asked for, fewer if the time budget "
        f"ran out on a loaded machine; {r['warm_up']} untimed warm-up events each. One GetItem is timed after "
        "every handler call.",
        "",
        *_table(["measure", "n", "median ms", "p95 ms", "AWS calls", "time in AWS calls", "median / GetItem"], rows),
        "",
        *trends,
        "- *Time in AWS calls*: the share of the handler's time spent inside boto3 calls (serialising, the round "
        "trip, parsing), median over the events; the rest is the deployer's own Python.",
        "- The server runs in this process, so its own work is in every figure, the baseline's included: the ratio "
        "reads as how many round trips a handler is worth, to compare with its number of AWS calls.",
        "- Between two builds the service lock is freed as on_deployment does when ECS reports COMPLETED (untimed), "
        "so every build deploys instead of queueing.",
    ]


SECTIONS = {
    "startup": ("1. `deployer plan` start-up", startup_md),
    "imports": ("2. Cold import of each function", imports_md),
    "calls": ("3. AWS calls per event and per stage deployment", calls_md),
    "latency": ("4. Handler latency against moto server", latency_md),
}


def markdown(results: dict[str, dict[str, Any]], info: dict[str, str]) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (which runs `make build`, then `.venv/bin/python -m bench` from the repository "
        "root); do not edit by hand. Speed, memory and call-count targets live here, not in timed tests. The "
        "machine is shared and noisy, so the figures that count are **ratios measured in one run**; absolute "
        "times are given for information.",
        "",
        *_table(["run", ""], [[key, value] for key, value in info.items()]),
    ]
    for key, result in results.items():
        title, render = SECTIONS[key]
        lines += ["", f"## {title}", "", *render(result)]
        lines += [
            "",
            f"Reproduce this section alone: `.venv/bin/python -m bench --only {key}` "
            f"(`bench.{_module(key)}.{REPRODUCE[key]}()`).",
        ]
    return "\n".join(lines) + "\n"


def _module(key: str) -> str:
    return {"startup": "startup", "imports": "cold_import", "calls": "aws_calls", "latency": "latency"}[key]


def summary(results: dict[str, dict[str, Any]]) -> list[str]:
    """A few lines for the console: the ratios, and the call-count verdicts."""
    lines = []
    if r := results.get("startup"):
        lines.append(
            f"deployer plan start-up: {_x(r['ratio'])} python -c pass ({_ms(r['plan_ms'])} vs "
            f"{_ms(r['baseline_ms'])} ms); no .pyc {_x(r['uncompiled_ratio'])}; boto3 imported: "
            f"{_yes(r['imports']['boto3_imported'])}"
        )
    if r := results.get("imports"):
        if "skipped" in r:
            lines.append(f"cold imports: skipped ({r['skipped']})")
        for f in r.get("functions", []):
            lines.append(
                f"cold import {f['function']}: {_x(f['cached_ratio'])} import boto3 ({_ms(f['cached_ms'])} vs "
                f"{_ms(r['baseline']['cached_ms'])} ms); no .pyc {_x(f['uncompiled_ratio'])} "
                f"({_ms(f['uncompiled_ms'])} ms)" + (f"; error: {f['error']}" if "error" in f else "")
            )
    if r := results.get("calls"):
        stage = r["stage_deployment"]
        lines.append(
            f"stage deployment: ECS {', '.join(stage['ecs'])} + {', '.join(stage['application_autoscaling'])}"
            f" -> target {'met' if stage['meets_target'] else 'NOT MET'}; polls: {_yes(r['polls'])}"
        )
        for e in r["events"]:
            dynamodb = e["calls"].get("DynamoDB", [])
            lines.append(f"  {e['event']}: {e['total_calls']} calls, {len(dynamodb)} DynamoDB ({e['outcome']})")
    if r := results.get("latency"):
        for h in r["handlers"]:
            lines.append(
                f"{h['handler']} latency: median {_ms(h['median_ms'])} ms, p95 {_ms(h['p95_ms'])} ms = "
                f"{_x(h['ratio'])} one GetItem ({_ms(r['get_item']['median_ms'])} ms); {h['aws_calls']:g} AWS calls"
            )
    return lines
