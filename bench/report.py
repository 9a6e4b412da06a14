"""BENCHMARKS.md and the console summary, from the sections' dicts."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import groupby
from typing import Any

from bench.common import REPO_ROOT


def run_info(seconds: float, load: str | None = None) -> dict[str, str]:
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
    changed = [line for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line.strip()]
    if [line for line in changed if not line.endswith("BENCHMARKS.md")]:  # the report itself does not count
        commit += " (plus uncommitted changes)"
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPUs (nproc), {platform.machine()}, {platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "commit": commit,
        "duration": f"{seconds:.0f} s",
        "load average (1 min) at the start": load or load_average(),
    }


def load_average() -> str:
    try:
        return f"{os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    except OSError:
        return "n/a"


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
        *(
            [
                f"**Target ≤ {r['target_ratio']:g}× `python -c pass`: "
                f"{'met' if r['ratio'] <= r['target_ratio'] else 'not met'}** (medians {_x(r['ratio'])}; "
                f"fastest runs {_x(r.get('min_ratio'))}).",
                "",
            ]
            if r.get("target_ratio")
            else []
        ),
        *(
            [
                "- Standard modules kept off its path (`dataclasses` and through it `inspect`, `typing`, `shutil`, "
                "and `json`, `decimal`, `difflib` where only some paths need them): "
                + (
                    "**none loaded**"
                    if not imports["avoided_but_loaded"]
                    else "**loaded: " + ", ".join(imports["avoided_but_loaded"]) + "**"
                )
                + "."
            ]
            if "avoided_but_loaded" in imports
            else []
        ),
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
    target = r["target_ratio"]
    rows = [
        [
            "`import boto3` (from the layer)",
            _ms(base["shipped_ms"]),
            _x(1.0),
            "",
            _ms(base["uncompiled_ms"]),
            _x(1.0),
            _x(_div(base["shipped_ms"], base["uncompiled_ms"])),
            str(base["modules"]),
            str(base["compiled_from_source"]),
        ]
    ]
    floor = r.get("floor")
    if floor is not None:
        rows.append(
            [
                "Powertools (Logger, Metrics, Tracer, idempotency on DynamoDB) and pydantic alone, no deployer code",
                _ms(floor["shipped_ms"]),
                _x(floor.get("shipped_ratio")),
                "",
                _ms(floor["uncompiled_ms"]),
                _x(floor.get("uncompiled_ratio")),
                _x(_div(floor["shipped_ms"], floor["uncompiled_ms"])),
                str(floor["modules"]),
                str(floor["compiled_from_source"]),
            ]
        )
    errors = (
        [f"- **The Powertools floor could not be measured**: {floor['error']}"] if floor and "error" in floor else []
    )
    for f in r["functions"]:
        if "error" in f:
            errors.append(f"- **{f['function']} could not be measured**: {f['error']}")
        rows.append(
            [
                f"{f['function']} (`{f['module']}`)",
                _ms(f["shipped_ms"]),
                f"**{_x(f['shipped_ratio'])}**",
                "met" if f["meets_target"] else "**not met**",
                _ms(f["uncompiled_ms"]),
                _x(f["uncompiled_ratio"]),
                _x(f.get("shipped_vs_uncompiled")),
                str(f["modules"] or "n/a"),
                str(f["compiled_from_source"]),
            ]
        )
    overlay = r["native_overlay"]
    stand_ins = (
        "The layer's native code is built for another architecture than this host's "
        f"({r['host']}); these packages are copied from the venv at the same version and compiled as the build "
        "compiles: " + ", ".join(f"{o['distribution']} {o['version']}" for o in overlay) + "."
        if overlay
        else "Every package comes from the build."
    )
    met = [f["function"] for f in r["functions"] if f["meets_target"]]
    missed = [f for f in r["functions"] if not f["meets_target"] and f["shipped_ratio"] is not None]
    if not missed:
        verdict = f"**Target ≤ {target:g}× `import boto3`: met by every function.**"
    else:
        verdict = (
            f"**Target ≤ {target:g}× `import boto3`: not met** by {len(missed)} of {len(r['functions'])} functions "
            f"({_x(min(f['shipped_ratio'] for f in missed))} to {_x(max(f['shipped_ratio'] for f in missed))})"
            + (f"; met by {', '.join(met)}" if met else "")
            + (
                f". A handler that only sets up Powertools' Logger, Metrics and Tracer, Powertools' idempotency on "
                "DynamoDB (which imports boto3 and builds a DynamoDB client: every EventBridge handler here does; the "
                "approvals function, without idempotency, imports boto3 and builds its clients in the init phase "
                f"instead) and pydantic already takes {_x(floor.get('shipped_ratio'))} `import boto3` (the second "
                "row): the target is below that floor, and what the deployer adds is the rest"
                if floor and floor.get("shipped_ratio") is not None and floor["shipped_ratio"] > target
                else ""
            )
            + ". Why, from one `-X importtime` run of each (shipped bytecode): what the handler module's own top "
            "level runs (building its clients, Powertools' Tracer patching the SDK...), then each module it imports "
            "with the cumulative time of that import, what is heaviest inside it, and the other packages it pulls in:"
        )
    why_rows = []
    for f in missed:
        c = f.get("contributors") or {}
        if not c:
            continue
        parts = []
        for imp in c["imports"][:5]:
            inside = ", ".join(f"`{i['module']}` {_ms(i['ms'])}" for i in imp["inside"])
            pulled = ", ".join(f"`{p['module']}` {_ms(p['ms'])}" for p in imp["packages"])
            detail = "; ".join(part for part in (inside, f"pulls in {pulled}" if pulled else "") if part)
            parts.append(f"`{imp['module']}` {_ms(imp['ms'])}" + (f" ({detail})" if detail else ""))
        why_rows.append([f["function"], _ms(c["total_ms"]), _ms(c["own_ms"]), "<br>".join(parts)])
    why = (
        ["", *_table(["function", "traced ms", "own top level ms", "heaviest imports, cumulative ms"], why_rows)]
        if why_rows
        else []
    )
    return [
        f"Time to import the handler module in a fresh interpreter (`python -I -S -B`: the function's directory, "
        f"then its layer on sys.path, nothing written), median of {r['n']} runs with the bytecode the build ships "
        f"({r['shipped_pyc']:,} unchecked-hash .pyc files) and {r['n_uncompiled']} without it "
        f"({r['n_requested']} and {r['n_uncompiled_requested']} asked for, fewer if the time budget ran out on a "
        f"loaded machine); the order rotates every round. Build: `{r['build']}`, built {r['built_at']}, measured "
        "on a snapshot.",
        "",
        *_table(
            [
                "module",
                "shipped .pyc ms",
                "ratio",
                f"≤ {target:g}×",
                "no .pyc ms",
                "ratio",
                "shipped / no .pyc",
                "modules",
                "compiled at import",
            ],
            rows,
        ),
        "",
        verdict,
        *why,
        "",
        *errors,
        "- *Shipped .pyc*: what a Lambda cold start does now. /opt and /var/task are read-only there, so the "
        "interpreter reads the build's bytecode and writes none (`-B`, no pycache prefix); *compiled at import* "
        "counts the modules of the build compiled from source all the same (from one `python -v` run each: it "
        "must be 0). *No .pyc*: the same imports without the build's bytecode, what every cold start paid "
        "when `sam build` shipped none (the standard library stays compiled, as in the runtime).",
        f"- Environment: {', '.join(f'`{k}`' for k in r['env'])}: the template's Globals and the function's own "
        "(Refs resolved to parameter defaults) and what Lambda's runtime sets before the import"
        + (
            " (`Tracing: Active`: Powertools' tracer is on and the X-Ray SDK sees LAMBDA_TASK_ROOT, as in Lambda; "
            "no POWERTOOLS_TRACE_DISABLED; `_X_AMZN_TRACE_ID` only exists during an invocation)."
            if r.get("tracing")
            else "."
        ),
        f"- {stand_ins}",
    ]


def first_event_md(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}."]
    target = r["target_ratio"]
    rows, errors, imported = [], [], []
    for f in r["functions"]:
        first, warm = f.get("first"), f.get("warm") or {}
        if "error" in f:
            log = f" (its last log line: `{_escape(f['log'][-1])}`)" if f.get("log") else ""
            errors.append(f"- **{f['function']}: {f['error']}**{log}")
        if not first:
            continue
        rows.append(
            [
                f["function"],
                _ms(f["init"]["import_ms"]),
                _ms(first["wall_ms"]),
                f"{_ms(first['aws_ms'])} ({first['aws_calls']})",
                _ms(first["own_ms"]),
                _ms(warm.get("wall_ms")),
                f"{_ms(warm.get('aws_ms'))} ({warm.get('aws_calls', 0):g})",
                f"**{_x(f.get('ratio'))}**",
                "met" if f["meets_target"] else "**not met**",
                f"{_ms(warm.get('own_ms'))} ({_x(f.get('own_ratio'))})",
            ]
        )
        packages = ", ".join(f"{name} {count}" for name, count in f.get("first_imported_by_package", {}).items())
        imported.append(
            f"{f['function']} {first['imported']}"
            + (f" ({packages})" if packages else "")
            + (f", warm events {warm['imported']}" if warm.get("imported") else "")
        )
    missed = [f for f in r["functions"] if not f["meets_target"]]
    verdict = (
        f"**Target: the first event, less the time inside its AWS calls, ≤ {target:g}× a warm event: met by every "
        "function.**"
        if not missed
        else f"**Target: the first event, less the time inside its AWS calls, ≤ {target:g}× a warm event: not met** "
        f"by {', '.join(f['function'] for f in missed)}."
    )
    events = "; ".join(f"{f['function']}: {f['event']}" for f in r["functions"])
    segments = ", ".join(f"{f['function']} {f.get('segments', 0)}" for f in r["functions"])
    overlay = r.get("native_overlay") or []
    stand_ins = (
        "; the layer's native packages built for another architecture are replaced by this host's build of the "
        "same version (" + ", ".join(f"{o['distribution']} {o['version']}" for o in overlay) + ")"
        if overlay
        else ""
    )
    return [
        "Each built function in a fresh interpreter as Lambda runs it (`python -I -S -B`, the function's directory "
        "then its layer on sys.path, the bytecode the build ships, the environment of section 2 with the tracer on), "
        f"against {r['server']}: the handler's import (the init phase), its first event, then up to "
        f"{r['n_warm_requested']} warm events of the same kind (median). Build: `{r['build']}`, built "
        f"{r['built_at']}, measured on a snapshot{stand_ins}.",
        "",
        *_table(
            [
                "function",
                "import ms",
                "first event ms",
                "in AWS calls ms (calls)",
                "first less AWS calls ms",
                "warm event ms",
                "in AWS calls ms (calls)",
                "first less AWS / warm",
                f"≤ {target:g}×",
                "warm less AWS calls ms (first's own / warm's own)",
            ],
            rows,
        ),
        "",
        verdict,
        "",
        *errors,
        f"- Events: {events}. Every event does the same work: the bench brings the world to the state each one "
        "finds, in process through `deployer.flow`, before sending it.",
        "- *In AWS calls*: time inside `botocore.client.BaseClient._make_api_call`, wrapped in the function's "
        "interpreter as soon as botocore is imported (before Powertools' Tracer patches it, so the X-Ray SDK's "
        "work counts as the function's): serialising, signing, the round trip to moto, parsing. *First less AWS "
        "calls*: what the target compares with a whole warm event (the first event's AWS calls include reads a "
        "warm one skips: the published configuration and secrets, cached by Powertools). The last column "
        "compares the first event's own time with a warm event's own time: the cold work left to the first "
        "event (its clients, the DynamoDB resource, its event models, the modules it imports) against the "
        "milliseconds of Python a warm event runs.",
        f"- Modules the first event imported: {'; '.join(imported)}.",
        f"- X-Ray segments received by the bench's stand-in daemon (the tracer was on): {segments}.",
    ]


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _services(r: dict[str, Any]) -> list[str]:
    if r.get("services"):
        return list(r["services"])
    return sorted({service for e in r["events"] for service in e["calls"]})


def calls_md(r: dict[str, Any]) -> list[str]:
    stage = r["stage_deployment"]
    services = _services(r)
    counts = []
    operations = []
    for e in r["events"]:
        calls = e["calls"]
        cells = []
        for service in services:
            ops = calls.get(service, [])
            if service == "DynamoDB":
                config = sum(1 for c in ops if "config" in c)
                cells.append(f"{len(ops)}" + (f" ({config} config)" if config else "") if ops else "")
            else:
                cells.append(str(len(ops)) if ops else "")
        counts.append(
            [e["event"], e["outcome"], *cells, f"**{e['total_calls']}**", str(e["items_returned"]), _yes(e["polls"])]
        )
        for service in services:
            ops = calls.get(service, [])
            if ops:
                labels = [c.split("[")[0] + (" (config)" if "config" in c else "") for c in ops]
                operations.append([e["event"], service, _ops(labels)])
        if not calls:
            operations.append([e["event"], "none", "no AWS call"])
    return [
        "One release driven through `deployer.flow` against moto in process, from the push to RELEASED, every AWS "
        "API call recorded with a botocore `before-parameter-build` hook on the default session (the clients the "
        "Deps use). The Deps are wired as the functions wire them (`deployer.runtime.deps()`): transitions are "
        "published on the bus (`BusPublisher`), approvals read their signing key from Secrets Manager through "
        "Powertools parameters. They are wired again before every event, so each row is what a **cold start** "
        "pays: a warm function reads neither the configuration (max age 60 s) nor the secret (cached 5 minutes).",
        "",
        f"**Stage deployment** (on_build success): ECS `{' → '.join(stage['ecs'])}`; Application Auto Scaling "
        f"`{' → '.join(stage['application_autoscaling'])}`. Target "
        f"`{', '.join(stage['target'])}`: **{'met' if stage['meets_target'] else 'NOT met'}**.",
        "",
        "Calls per event and per AWS service:",
        "",
        *_table(["event", "outcome", *services, "calls", "items queried", "polls"], counts),
        "",
        "The operations, in call order:",
        "",
        *_table(["event", "service", "operations"], operations),
        "",
        f"- Anything polls: **{_yes(r['polls'])}** (no read repeated within one event, no `time.sleep`, and as many "
        "HTTP requests as API calls, i.e. no retries).",
        "- *Items queried*: items returned by DynamoDB Query and Scan calls, what a read's cost grows with.",
        "- *config* reads go to the config table (the ConfigStore has max age 0 here, as on a cold start); every "
        "other DynamoDB call goes to the deployer's table.",
        "- The approval decision row is the approval page's or the Slack button's work (`Approvals.decide`) before "
        'it puts "Approval Decided" on the bus; that PutEvents is not in the row.',
        "- Not counted: the handlers' Powertools idempotency records (a conditional PutItem, then an UpdateItem, "
        "per event), since the flow is driven without the Lambda handler; Slack (its posts are not AWS calls; "
        "its token is one more Secrets Manager GetSecretValue per cold start).",
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
    where = [
        f"- Where `{h['handler']}`'s time goes: "
        + ", ".join(
            f"{c['call']} {_ms(c['ms_per_event'])} ms per event ({c['calls_per_event']:g} call(s), median "
            f"{_ms(c['median_ms'])} ms)"
            for c in h["slowest_calls"]
        )
        + "."
        for h in r["handlers"]
        if h.get("slowest_calls")
    ]
    short = [h["handler"] for h in r["handlers"] if h["n"] < r["n_requested"]]
    budget = (
        f" **Fewer than asked** for {', '.join(short)}: the time budget ({r.get('budget_s', 0):.0f} s) ran out."
        if short
        else ""
    )
    names = {h["handler"] for h in r["handlers"]}
    return [
        f"{r['server']}. New commits pushed in sequence (each supersedes the previous, still building), then, for "
        "each of as many new pushes (untimed), the build succeeding (it deploys the first stage) and ECS reporting "
        "that deployment COMPLETED (dev is deployed; prod waits for an approval, superseding the release waiting "
        f"there before). {r['n_requested']} of each asked for, after {r['warm_up']} untimed warm-up events each; "
        f"one GetItem is timed after every timed handler call.{budget}",
        "",
        *_table(["measure", "n", "median ms", "p95 ms", "AWS calls", "time in AWS calls", "median / GetItem"], rows),
        "",
        *trends,
        *where,
        "- *Time in AWS calls*: the share of the handler's time spent inside boto3 calls (serialising, the round "
        "trip, parsing), median over the events; the rest is the deployer's own Python.",
        "- The server runs in this process, so its own work is in every figure, the baseline's included: the ratio "
        "reads as how many round trips a handler is worth, to compare with its number of AWS calls.",
        "- Warm functions: the signing key is read from Secrets Manager once, then cached; the configuration is "
        "read on every event (the tests' ConfigStore has max age 0).",
        *(
            []
            if "on_deployment" in names
            else ["- on_deployment ran untimed between builds (`events` left it out), so every build deploys."]
        ),
    ]


def sizes_md(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}."]
    rows = [
        [
            f"{p['name']} ({p['kind']})",
            f"{p['files']} ({p.get('bytecode_files', 0)} .pyc)",
            _size(p["unzipped_bytes"]),
            _size(p["zipped_bytes"]),
            _size(p["without_bytecode_unzipped_bytes"]),
            _size(p["without_bytecode_zipped_bytes"]),
            _growth(p["unzipped_bytes"], p["without_bytecode_unzipped_bytes"])
            + " / "
            + _growth(p["zipped_bytes"], p["without_bytecode_zipped_bytes"]),
        ]
        for p in r["packages"]
    ]
    lines = [
        f"What `sam build` left in `{r['build']}`, bytecode included (the build compiles every module: "
        "section 2): unzipped, what counts against Lambda's limit of "
        f"{r['limit_unzipped_mb']:.0f} MB for a function and its layers; zipped (deflate, as `sam package` "
        "uploads it); and the same package without its `__pycache__`, as the build shipped it before.",
        "",
        *_table(
            [
                "package",
                "files",
                "unzipped",
                "zipped",
                "without .pyc: unzipped",
                "zipped",
                "bytecode's cost (unzipped / zipped)",
            ],
            rows,
        ),
    ]
    if "layer" not in r:
        return lines
    layer_row = next(p for p in r["packages"] if p["kind"] == "layer")
    lines += [
        "",
        "The bytecode costs the layer "
        f"{_size(layer_row['unzipped_bytes'] - layer_row['without_bytecode_unzipped_bytes'])} unzipped and "
        f"{_size(layer_row['zipped_bytes'] - layer_row['without_bytecode_zipped_bytes'])} zipped "
        "(what is uploaded, and what Lambda downloads and extracts on a cold start): it buys the cold imports of "
        "section 2.",
    ]
    pt, tracer, sdk = r["powertools"], r["powertools_with_tracer"], r["sdk"]
    versions = r["versions"]
    ops = r.get("recent_ecs_operations") or {}
    known = [name for name, present in ops.items() if present]
    breakdown = [
        [
            row["distribution"],
            row["version"],
            _mb(row["unzipped_bytes"]),
            _mb(row.get("bytecode_unzipped_bytes", 0)),
            _mb(row["zipped_bytes"]),
        ]
        for row in r["layer_breakdown"]
    ]
    same = r.get("same_as_tests") or {}
    lines += [
        "",
        f"Headroom: the largest function with the layer leaves {r['headroom_mb']:.0f} MB of the "
        f"{r['limit_unzipped_mb']:.0f} MB.",
        "",
        f"**Powertools is bundled in the project's own layer (`{r['layer']}`), not taken from AWS's public "
        "Powertools layer.** Why:",
        "",
        "1. *One pinned lock for the tests and Lambda.* The layer's `requirements.txt` is compiled from "
        "`requirements.lock` (`make lock`), so the functions run exactly the Powertools, pydantic and boto3 "
        "the tests ran"
        + (
            " (checked here: "
            + ", ".join(
                f"{name} {pair[0]}" + ("" if pair[0] == pair[1] else f" (tests: {pair[1]})")
                for name, pair in same.items()
            )
            + f"; {'the same' if r.get('layer_matches_tests') else 'NOT the same'} in the layer and the tests' venv)"
            if same
            else ""
        )
        + ". AWS's public layer brings its own Powertools and pydantic, on AWS's release schedule, which no "
        "test here would have run.",
        "2. *boto3 has to be bundled anyway.* The deployer calls recent ECS APIs (ContinueServiceDeployment, "
        "ListServiceDeployments and DescribeServiceDeployments, deployment strategies and lifecycle hooks) that "
        "are newer than the boto3 the Lambda runtime ships; the bundled botocore "
        f"{versions.get('botocore', '?')} has "
        + (", ".join(known) if known else "none of them")
        + " (read from its ECS model). The public Powertools layer does not ship boto3, so it could only be a "
        "second layer beside this one, not replace it.",
        "3. *One layer version to roll back.* Everything the functions import beyond their handler is one "
        "LayerVersion: a rollback is one version, not two that must match.",
        "",
        f"What it costs: Powertools {versions.get('aws-lambda-powertools', '?')} itself takes "
        f"**{_mb(pt['unzipped_bytes'])} MB unzipped ({_mb(pt['zipped_bytes'])} MB zipped), {pt['share_of_layer']:.0%} "
        f"of the layer**; with its tracer extra's dependencies ({', '.join(tracer['distributions'][1:])}) "
        f"{_mb(tracer['unzipped_bytes'])} MB ({tracer['share_of_layer']:.0%}). The SDK "
        f"({', '.join(sdk['distributions'])}) takes {_mb(sdk['unzipped_bytes'])} MB ({sdk['share_of_layer']:.0%}).",
        "",
        "The layer by distribution:",
        "",
        *_table(["distribution", "version", "unzipped MB", "of which .pyc MB", "zipped MB"], breakdown),
    ]
    return lines


def _mb(value: float) -> str:
    return f"{value / 1_000_000:,.2f}"


def _growth(value: float, before: float) -> str:
    return f"+{(value - before) / before:.0%}" if before else "n/a"


def _size(value: float) -> str:
    """Bytes in MB, or in kB below a tenth of a MB."""
    return f"{value / 1_000:,.1f} kB" if value < 100_000 else f"{value / 1_000_000:,.2f} MB"


def storm_md(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}."]
    full = r["pipelines"] == 20 and r["pushes"] == 500
    rows = [
        ["pipelines, pushes", f"{r['pipelines']}, {r['pushes']}" + ("" if full else " (**not the full storm**)")],
        [
            "deliveries",
            f"{r['deliveries']:,} ({r['redeliveries']:,} redelivered with the same id, {r['reemissions']:,} "
            "re-emitted with a new id)",
        ],
        [
            "function invocations",
            f"{r['invocations']:,} ({r['cache_hits']:,} answered from the idempotency cache, {r['flow_runs']:,} "
            "ran the flow)",
        ],
        ["approval clicks", str(r["approval_clicks"])],
        ["storm time", f"{r['storm_seconds']:.1f} s (with provisioning {r['total_seconds']:.1f} s)"],
        ["invocations per second (a trend: mostly moto's DynamoDB)", f"{r['events_per_second']:.1f}"],
        ["AWS calls checked", ", ".join(f"{k} {v}" for k, v in r["aws_calls"].items())],
        ["releases at the end", ", ".join(f"{k} {v}" for k, v in r["releases"].items())],
        ["seed", f"{r['seed']} (`{r['replay']}` replays it)"],
    ]
    broken = r["broken_invariants"]
    lines = [
        f"The storm of issue 6 ({r['pipelines']} pipelines, {r['pushes']} pushes, several per branch in quick "
        "succession; every EventBridge event delivered one to three times, in shuffled order, build and "
        "deployment events included) through the local stack's router (the template's own rules, "
        "`deployer_local.router`) to the flow, against moto in process (`tests/support/storm.py`). Deliveries are "
        "sequential.",
        "",
        *_flow_cost_md(r.get("flow_cost") or {}),
        *_table(["storm", ""], rows),
        "",
    ]
    if r["invariants_held"]:
        lines.append(
            "Invariants: **every invariant held** (one build per commit, one revision and one "
            "UpdateService per release and stage, newest wins, nothing stuck or lost, no error)."
        )
    else:
        groups: dict[str, list[str]] = {}
        for violation in broken:
            name = violation.split("]", 1)[0].lstrip("[")
            groups.setdefault(name, []).append(violation)
        lines.append(
            f"Invariants: **{len(broken)} violation(s) of {len(groups)} invariant(s)** "
            f"({', '.join(f'{name} {len(items)}' for name, items in groups.items())}). Every one, as the "
            "storm reported it:"
        )
        lines.append("")
        lines += [f"- {_escape(v)}" for v in broken]
    if r["wrong_records"]:
        lines += ["", f"What release records say about rollbacks ({len(r['wrong_records'])} wrong):", ""]
        lines += [f"- {_escape(v)}" for v in r["wrong_records"]]
    return lines


def _flow_cost_md(cost: dict[str, Any]) -> list[str]:
    """What each flow run cost the deployer itself, per function, and its AWS calls."""
    if not cost:
        return []
    everything = cost["all"]
    services = sorted({s for f in cost["by_function"].values() for s in f["calls_per_run"]})
    rows = []
    for name, f in [*cost["by_function"].items(), ("**every flow run**", everything)]:
        rows.append(
            [
                name,
                f"{f['runs']:,}",
                f"**{_ms(f['own_cpu_median_ms'])}**",
                _ms(f["own_cpu_p95_ms"]),
                _ms(f["own_cpu_mean_ms"]),
                f"{f['aws_share']:.0%}",
                *(_per_run(f["calls_per_run"].get(s)) for s in services),
                _per_run(f["calls_per_run_total"]),
            ]
        )
    return [
        "**The deployer's own CPU time per flow run**, in the worker's thread (`time.thread_time`): the flow's "
        "CPU time less the time inside its AWS calls, from the request's parameters to the parsed answer "
        "(botocore's work and, moto being in process, moto's), timed with botocore's `before-parameter-build` and "
        "`after-call` hooks on the deployer's session; parsing the event is the deployer's. With the AWS calls of "
        "each run, by service (mean per run).",
        "",
        *_table(
            [
                "function",
                "flow runs",
                "own CPU median ms",
                "p95 ms",
                "mean ms",
                "CPU in AWS calls",
                *(f"{s} calls" for s in services),
                "AWS calls per run",
            ],
            rows,
        ),
        "",
        f"In all, the deployer's own code took {everything['own_cpu_total_s']:.1f} s of CPU over "
        f"{everything['runs']:,} flow runs; the rest of the storm's time is moto, botocore and the storm's own "
        "bookkeeping. The rate below is kept as a trend.",
        "",
    ]


def _per_run(value: float | None) -> str:
    return "" if not value else f"{value:.2f}".rstrip("0").rstrip(".")


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;")


def ecs_deploy_md(r: dict[str, Any]) -> list[str]:
    if "skipped" in r:
        return [f"Skipped: {r['skipped']}."]
    v = r["versions"]
    theirs, ours = v.get("ecs-deploy's boto3", "?"), v.get("deployer's botocore", "?")
    venvs = r.get("venvs") or {}
    target = r.get("target_ratio")
    lines = [
        f"Deploying a new image to the same service, as whole processes: `{r['commands']['ecs-deploy']}` "
        f"(ecs-deploy {v['ecs-deploy']}, boto3 {theirs}) against "
        f"`{r['commands']['deployer']}` (this project, botocore {ours} without "
        "boto3), each from a venv holding only what it needs: "
        + "; ".join(f"`{name}`: {', '.join(found)}" for name, found in venvs.items())
        + f". {r['server']}; both processes get fake credentials and `AWS_ENDPOINT_URL`, and nothing else of the "
        f"caller's AWS configuration. Medians of the timed runs ({r['n_requested']} asked for per tool and "
        f"scenario, after {r['warm_up']} untimed warm-up run each), interleaved, the first tool alternating: "
        "wall time; *in moto*, the server's time answering the run's requests (a WSGI middleware in front of "
        "moto times and counts every request, the same way for both tools); *own*, wall time less that; CPU, "
        "the process's user and system time.",
        "",
    ]
    rows = []
    verdicts = []
    for sc in r["scenarios"]:
        for tool in ("ecs-deploy", "deployer"):
            t = sc["tools"][tool]
            other = "; ".join(f"{svc}: {_ops(ops)}" for svc, ops in t["calls"].items() if svc != "ECS") or "none"
            ours = tool == "deployer"
            rows.append(
                [
                    sc["scenario"],
                    tool,
                    str(t["n"]),
                    _ms(t["median_ms"]),
                    f"**{_x(sc['ratio'])}**" if ours else _x(1.0),
                    _ms(t.get("server_ms")),
                    _ms(t.get("own_ms")),
                    _ms(t.get("cpu_ms")),
                    _x(sc.get("cpu_ratio")) if ours else _x(1.0),
                    str(t["ecs_calls"]),
                    other,
                    ", ".join(str(c) for c in t["exit_codes"]),
                ]
            )
        teardown = sc.get("with_teardown")
        if teardown and teardown["n"]:
            rows.append(
                [
                    sc["scenario"],
                    "deployer, with Python's teardown",
                    str(teardown["n"]),
                    _ms(teardown["median_ms"]),
                    _x(teardown["ratio"]),
                    "",
                    _ms(teardown["own_ms"]),
                    _ms(teardown["cpu_ms"]),
                    _x(teardown["cpu_ratio"]),
                    "",
                    "",
                    ", ".join(str(c) for c in teardown["exit_codes"]),
                ]
            )
        if target is not None:
            failed = [f"{name} exited {codes}" for name, t in sc["tools"].items() if (codes := t["exit_codes"]) != [0]]
            verdicts.append(f"{sc['scenario']} " + (", ".join(failed) if failed else _x(sc["ratio"])))
    lines += _table(
        [
            "scenario",
            "tool",
            "n",
            "wall ms",
            "ratio",
            "in moto ms",
            "own ms",
            "CPU ms",
            "CPU ratio",
            "ECS calls",
            "other calls",
            "exit",
        ],
        rows,
    )
    if target is not None and verdicts:
        met = all(sc["ratio"] is not None and sc["ratio"] <= target for sc in r["scenarios"])
        measured = all(sc["ratio"] is not None for sc in r["scenarios"])
        verdict = "met" if met else "not met" if measured else "not measured: a tool failed"
        lines += ["", f"**Target ≤ {target:g}× ecs-deploy's wall time: {verdict}** ({', '.join(verdicts)})."]
    lines += _deploy_time_notes(r)
    first = r["scenarios"][0]
    operations = sorted(
        {op for sc in r["scenarios"] for t in sc["tools"].values() for op in t["calls"].get("ECS", [])},
        key=lambda op: min(
            (t["calls"].get("ECS", []).index(op) for t in first["tools"].values() if op in t["calls"].get("ECS", [])),
            default=99,
        ),
    )
    op_rows = [
        [
            op,
            *(
                "/".join(str(sc["tools"][tool]["calls"].get("ECS", []).count(op)) for sc in r["scenarios"])
                for tool in ("ecs-deploy", "deployer")
            ),
        ]
        for op in operations
    ]
    lines += [
        "",
        "ECS API calls by operation (per scenario: " + " / ".join(sc["scenario"] for sc in r["scenarios"]) + "):",
        "",
        *_table(["ECS operation", "ecs-deploy", "deployer"], op_rows),
        "",
        "In call order: "
        + "; ".join(
            f"{tool} `{_ops(first['tools'][tool]['calls'].get('ECS', []))}`" for tool in ("ecs-deploy", "deployer")
        )
        + ".",
    ]
    for sc in r["scenarios"]:
        comparison = sc["comparison"]
        lines += [
            "",
            f"**{sc['scenario']}**: {sc['description']}. New image of `{sc['container']}`: `{sc['new_image']}`.",
            "",
        ]
        for tool in ("ecs-deploy", "deployer"):
            t = sc["tools"][tool]
            if t["stderr"]:
                lines.append(f"- {tool} failed (exit {t['exit_codes']}): `{_escape(' / '.join(t['stderr']))}`")
            if not t["same_calls_every_run"]:
                lines.append(f"- {tool} did not make the same calls in every run (the first timed run is shown).")
        verdict = "**yes**" if sc["identical_apart_from_image"] else "**no**"
        lines.append(f"- The two registered task definitions identical apart from the image: {verdict}.")
        for key, what in (
            ("stored", "as stored (DescribeTaskDefinition with tags)"),
            ("sent", "as sent (the RegisterTaskDefinition requests)"),
        ):
            found = comparison.get(key)
            if found is None:
                lines.append(f"- {what}: not compared (a tool registered nothing).")
            elif not found:
                lines.append(f"- {what}: no difference beyond the image.")
            else:
                lines.append(f"- {what}: {len(found)} difference(s) beyond the image:")
                lines += [f"  - `{d['path']}`: ecs-deploy {_json(d['a'])}; deployer {_json(d['b'])}" for d in found]
        for tool in ("ecs-deploy", "deployer"):
            found = comparison.get(f"sent_vs_source_{tool}")
            if found is None:
                continue
            image = comparison.get(f"image_{tool}")
            image_note = "" if image == sc["new_image"] else f" **and its image is `{image}`, not the new one**"
            if found:
                lines.append(
                    f"- {tool} against the running revision it cloned: {len(found)} change(s) beyond the image"
                    f"{image_note}: " + "; ".join(f"`{d['path']}` {_json(d['a'])} → {_json(d['b'])}" for d in found)
                )
            else:
                lines.append(f"- {tool} against the running revision it cloned: only the image changed{image_note}.")
        prev = {tool: sc["tools"][tool]["previous_revision"] for tool in ("ecs-deploy", "deployer")}
        lines.append(
            "- The revision replaced: "
            + ", ".join(f"{tool} leaves it {status}" for tool, status in prev.items())
            + "; desiredCount sent in UpdateService: "
            + ", ".join(f"{tool} {_yes(sc['tools'][tool]['desired_count_sent'])}" for tool in prev)
            + "."
        )
        dropped = comparison.get("moto_dropped") or []
        if dropped:
            lines.append(
                "- moto did not keep, of the revision created for the scenario: "
                + ", ".join(f"`{d['path']}`" for d in dropped)
                + " (so neither tool could see or copy it: a limit of the fake, not of the tools)."
            )
    lines += [
        "",
        "- `aws:` tags: ECS refuses tag keys with the reserved `aws:` prefix in RegisterTaskDefinition "
        "(REFERENCE.md); moto accepts them. A revision created by CloudFormation or Service Catalog carries such "
        "tags, so a tool that copies them would have its RegisterTaskDefinition refused by ECS, where moto let it "
        "through here.",
        "- ecs-deploy deregisters the revision it replaced by default (`--deregister`); the deployer keeps it, "
        "ACTIVE, for a rollback. ecs-deploy's second DescribeServices is the first read of its wait loop, made "
        "even with `--timeout -1`; the deployer's DescribeScalableTargets checks the rollout against the "
        "autoscaling range before anything is registered.",
    ]
    return lines


def _deploy_time_notes(r: dict[str, Any]) -> list[str]:
    """Where each process's time goes: the imports of one traced run, and the teardown skipped."""
    first = r["scenarios"][0]
    notes = []
    for tool in ("ecs-deploy", "deployer"):
        imports = first["tools"][tool].get("imports")
        if imports:
            notes.append(
                f"{tool} imports {imports['modules']} modules in {_ms(imports['ms'])} ms ("
                + ", ".join(f"`{name}` {_ms(ms)}" for name, ms in imports["by_package_ms"].items())
                + ")"
            )
    lines = []
    if notes:
        lines += [
            "",
            "- Where the time goes (one `-X importtime` run of each, {}, own time per top-level package): ".format(
                first["scenario"]
            )
            + "; ".join(notes)
            + ". Both tools spend most of their time importing botocore, then building an ECS client "
            "(botocore reads and parses the ECS model and its 1.25 MB endpoints.json); moto answers each request "
            "in a few milliseconds. The deployer imports botocore without boto3 (no s3transfer) and no CLI "
            "framework, and checks a service's name without listing all of botocore's models "
            "(`deployer.aws.cli_client`).",
        ]
    teardown = first.get("with_teardown")
    if teardown and teardown.get("median_ms"):
        ours = first["tools"]["deployer"]
        lines.append(
            "- *with Python's teardown*: the same deploy through `deployer_cli.main` in a plain interpreter, "
            "which frees every object at exit as any Python process does; the console script ends `plan`, "
            "`deploy` and `diff` with `os._exit` once their output is flushed (`deployer_cli.console`), since "
            f"nothing runs after them: {_ms((teardown['cpu_ms'] or 0) - (ours['cpu_ms'] or 0))} ms of CPU saved "
            "here, mostly freeing botocore's parsed models; ecs-deploy pays its teardown. Without it the deployer "
            f"would be at {_x(teardown['ratio'])} of ecs-deploy's wall time: botocore without boto3, no CLI "
            "framework and the quicker name check alone do not reach the target."
        )
    return lines


def _json(value: Any) -> str:
    return "absent" if value is None else f"`{_escape(json.dumps(value, separators=(',', ':')))}`"


SECTIONS = {
    "startup": ("1. `deployer plan` start-up", startup_md),
    "imports": ("2. Cold import of each function", imports_md),
    "sizes": ("3. Built packages' sizes, and Powertools bundled in the layer", sizes_md),
    "calls": ("4. AWS calls per event, by service", calls_md),
    "latency": ("5. Handler latency against moto server", latency_md),
    "storm": ("6. Storm: the deployer's own CPU per flow run, through the local stack", storm_md),
    "ecs_deploy": ("7. Side by side with ecs-deploy", ecs_deploy_md),
    "first_event": ("8. First event of a cold function against warm ones", first_event_md),
}

# section -> (module of bench, the function `make bench` runs)
REPRODUCE = {
    "startup": ("startup", "plan_startup"),
    "imports": ("cold_import", "cold_imports"),
    "sizes": ("sizes", "package_sizes"),
    "calls": ("aws_calls", "whole_release"),
    "latency": ("latency", "per_event_latency"),
    "storm": ("storm", "storm"),
    "ecs_deploy": ("ecs_deploy", "side_by_side"),
    "first_event": ("first_event", "first_events"),
}


def markdown(results: dict[str, dict[str, Any]], info: dict[str, str], sections: Sequence[str] | None = None) -> str:
    """The report: every section of SECTIONS (or those named), in SECTIONS' order; a section
    without a result says it was not measured. Each measured section says when and at which
    commit it was measured, so sections rewritten alone (`merge`) keep saying so."""
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (which runs `make build`, then `.venv/bin/python -m bench` from the repository "
        "root), or section by section with `.venv/bin/python -m bench --only SECTION --update`; do not edit by "
        "hand. Speed, memory and call-count targets live here, not in timed tests. The machine is shared and "
        "noisy, so the figures that count are **ratios measured in one run**; absolute times are given for "
        "information.",
        "",
    ]
    chosen = list(SECTIONS) if sections is None else [key for key in SECTIONS if key in sections]
    numbers = ", ".join(SECTIONS[key][0].split(".", 1)[0] for key in chosen)
    plural = "s" if len(chosen) > 1 else ""
    run = "run" if sections is None else f"last run: section{plural} {numbers} (the others say when)"
    lines += _table([run, ""], [[key, value] for key, value in info.items()])
    for key in chosen:
        title, render = SECTIONS[key]
        module, function = REPRODUCE[key]
        lines += ["", f"## {title}", ""]
        result = results.get(key)
        if result is not None:
            when = f"Measured {info.get('date', '?')} at commit {info.get('commit', '?')}"
            lines += [f"*{when}{_took(result)}.*", "", *render(result)]
        else:
            lines += ["Not measured in this run."]
        lines += [
            "",
            f"Reproduce this section alone: `.venv/bin/python -m bench --only {key}` (`bench.{module}.{function}()`).",
        ]
    return "\n".join(lines) + "\n"


def _took(result: dict[str, Any]) -> str:
    seconds = result.get("_seconds")
    return f", in {seconds:.0f} s" if isinstance(seconds, (int, float)) else ""


def merge(previous: str, fresh: str) -> str:
    """`fresh` (a report of some sections) merged into `previous` (the whole report as it was): the
    sections `fresh` has replace theirs, by number; the others stay as they were measured."""

    def split(text: str) -> tuple[str, dict[str, str]]:
        parts = re.split(r"(?m)^(?=## )", text)
        blocks = {}
        for part in parts[1:]:
            number = part.removeprefix("## ").split(".", 1)[0]
            blocks[number] = part.rstrip("\n") + "\n"
        return parts[0], blocks

    old_header, old = split(previous)
    header, new = split(fresh)
    # A report written whole says once, in its header, when and at which commit it was measured.
    date = re.search(r"(?m)^\| date \| (.+?) \|$", old_header)
    commit = re.search(r"(?m)^\| commit \| (.+?) \|$", old_header)
    when = f"*Measured {date.group(1) if date else '?'} at commit {commit.group(1) if commit else '?'}.*"
    blocks = []
    for title, _render in SECTIONS.values():
        number = title.split(".", 1)[0]
        block = new.get(number) or old.get(number) or f"## {title}\n\nNot measured yet.\n"
        if number not in new and number in old and "\n*Measured " not in block:
            heading, _, rest = block.partition("\n\n")
            block = f"{heading}\n\n{when}\n\n{rest}"
        blocks.append(block)
    return header.rstrip("\n") + "\n\n" + "\n".join(blocks)


def summary(results: dict[str, dict[str, Any]]) -> list[str]:
    """A few lines for the console: the ratios, and the call-count verdicts."""
    lines = []
    if r := results.get("startup"):
        lines.append(
            f"deployer plan start-up (target ≤ {r.get('target_ratio', 2.0):g}×): {_x(r['ratio'])} python -c pass "
            f"({_ms(r['plan_ms'])} vs "
            f"{_ms(r['baseline_ms'])} ms); no .pyc {_x(r['uncompiled_ratio'])}; boto3 imported: "
            f"{_yes(r['imports']['boto3_imported'])}"
        )
    if r := results.get("imports"):
        if "skipped" in r:
            lines.append(f"cold imports: skipped ({r['skipped']})")
        for f in r.get("functions", []):
            lines.append(
                f"cold import {f['function']}: {_x(f['shipped_ratio'])} import boto3 ({_ms(f['shipped_ms'])} vs "
                f"{_ms(r['baseline']['shipped_ms'])} ms, target ≤ {r['target_ratio']:g}×: "
                f"{'met' if f['meets_target'] else 'NOT MET'}); without the shipped .pyc {_ms(f['uncompiled_ms'])} ms"
                + (f"; error: {f['error']}" if "error" in f else "")
            )
    if r := results.get("first_event"):
        if "skipped" in r:
            lines.append(f"first events: skipped ({r['skipped']})")
        for f in r.get("functions", []):
            first, warm = f.get("first") or {}, f.get("warm") or {}
            lines.append(
                f"first event {f['function']}: {_ms(first.get('own_ms'))} ms less its AWS calls = {_x(f.get('ratio'))} "
                f"a warm event ({_ms(warm.get('wall_ms'))} ms), target ≤ {r['target_ratio']:g}×: "
                f"{'met' if f['meets_target'] else 'NOT MET'}; import {_ms(f['init']['import_ms'])} ms"
                + (f"; error: {f['error']}" if "error" in f else "")
            )
    if r := results.get("calls"):
        stage = r["stage_deployment"]
        lines.append(
            f"stage deployment: ECS {', '.join(stage['ecs'])} + {', '.join(stage['application_autoscaling'])}"
            f" -> target {'met' if stage['meets_target'] else 'NOT MET'}; polls: {_yes(r['polls'])}"
        )
        for e in r["events"]:
            by_service = ", ".join(f"{service} {len(ops)}" for service, ops in e["calls"].items()) or "none"
            lines.append(f"  {e['event']}: {e['total_calls']} calls ({by_service}) -> {e['outcome']}")
    if r := results.get("latency"):
        for h in r["handlers"]:
            lines.append(
                f"{h['handler']} latency: median {_ms(h['median_ms'])} ms, p95 {_ms(h['p95_ms'])} ms = "
                f"{_x(h['ratio'])} one GetItem ({_ms(r['get_item']['median_ms'])} ms); {h['aws_calls']:g} AWS calls"
            )
    if r := results.get("sizes"):
        if "skipped" in r:
            lines.append(f"package sizes: skipped ({r['skipped']})")
        else:
            layer = next(p for p in r["packages"] if p["kind"] == "layer")
            lines.append(
                f"layer {layer['name']}: {_mb(layer['unzipped_bytes'])} MB unzipped, {_mb(layer['zipped_bytes'])} MB "
                f"zipped; Powertools (bundled) {_mb(r['powertools']['unzipped_bytes'])} MB "
                f"({r['powertools']['share_of_layer']:.0%}); functions "
                + ", ".join(f"{p['name']} {p['unzipped_bytes']:,} B" for p in r["packages"] if p["kind"] == "function")
            )
    if r := results.get("storm"):
        if "skipped" in r:
            lines.append(f"storm: skipped ({r['skipped']})")
        else:
            verdict = "every invariant held" if r["invariants_held"] else f"{len(r['broken_invariants'])} VIOLATIONS"
            cost = (r.get("flow_cost") or {}).get("all")
            own = (
                f"deployer's own CPU {_ms(cost['own_cpu_median_ms'])} ms per flow run (median), "
                f"{cost['calls_per_run_total']:.1f} AWS calls per run; "
                if cost
                else ""
            )
            lines.append(
                f"storm {r['pipelines']} pipelines x {r['pushes']} pushes (seed {r['seed']}): {own}"
                f"{r['events_per_second']:.1f} invocations/s over {r['storm_seconds']:.0f} s (trend); {verdict}"
            )
            lines += [f"  {v}" for v in r["broken_invariants"][:20]]
    if r := results.get("ecs_deploy"):
        if "skipped" in r:
            lines.append(f"ecs-deploy side by side: skipped ({r['skipped']})")
        for sc in r.get("scenarios", []):
            tools = sc["tools"]
            lines.append(
                f"{sc['scenario']}: deployer deploy {_ms(tools['deployer']['median_ms'])} ms vs ecs deploy "
                f"{_ms(tools['ecs-deploy']['median_ms'])} ms = {_x(sc['ratio'])}"
                + (
                    f" (target ≤ {r['target_ratio']:g}×: "
                    f"{'met' if sc['ratio'] is not None and sc['ratio'] <= r['target_ratio'] else 'NOT MET'})"
                    if r.get("target_ratio")
                    else ""
                )
                + f"; CPU {_x(sc.get('cpu_ratio'))}; ECS calls "
                f"{tools['deployer']['ecs_calls']} vs {tools['ecs-deploy']['ecs_calls']}; identical apart from the "
                f"image: {_yes(sc['identical_apart_from_image'])}"
                + (
                    f" ({', '.join(d['path'] for d in sc['comparison'].get('stored', []))} differ)"
                    if sc["comparison"].get("stored")
                    else ""
                )
            )
    return lines
