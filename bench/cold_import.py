"""Cold import of each built function: in a fresh interpreter, the time to import the handler
module from `.aws-sam/build` with the layer on sys.path and the environment Lambda gives the
function, against `import boto3` alone from the same layer.

Honest to Lambda, as far as a benchmark outside it can be:

- bytecode: the build ships unchecked-hash .pyc files next to every module (layers/deployer/Makefile,
  functions/*/Makefile), and /opt and /var/task are read-only in Lambda; the interpreter runs with
  -B and no pycache prefix, so it reads the shipped bytecode and writes none. The same imports
  without the build's bytecode (a pycache prefix holding the standard library's only) is what a
  cold start paid before the build shipped any: every module of the layer compiled on every cold
  start;
- environment: the template's variables, and what Lambda's runtime sets at initialisation
  (LAMBDA_TASK_ROOT, _HANDLER...; with `Tracing: Active`, the X-Ray variables), so Powertools'
  tracer is on as in Lambda and the X-Ray SDK takes its in-Lambda path (a local sampler) instead
  of the one that builds a sampling client at import.

The interpreter runs with -I -S, so nothing outside the function, the layer and the standard
library can be imported (as on Lambda). The layer is built for arm64; when the host is not,
packages with native code for the other architecture are copied from the venv at the very same
version (listed in the result), compiled as the build compiles, and everything else comes from
the build.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common import FAKE_CREDENTIALS, REPO_ROOT, BytecodeCaches, median, ratio

BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"

_PROBE = """
import json, sys, time
sys.path[:0] = json.loads(sys.argv[1])
start = time.perf_counter()
__import__(sys.argv[2])
elapsed = time.perf_counter() - start
print(json.dumps({"ms": elapsed * 1000, "modules": len(sys.modules), "boto3": "boto3" in sys.modules}))
"""

# What any handler built like the deployer's imports before its own code: Powertools' Logger,
# Metrics and Tracer (patching boto3, as the functions' Tracer does), Powertools' idempotency on
# DynamoDB (whose persistence layer imports boto3 and builds a client) and pydantic (the event
# models). The floor under the functions' cold imports, measured beside them.
FLOOR_MODULE = "powertools_floor"
_FLOOR = """
import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer, IdempotencyConfig, idempotent
from pydantic import BaseModel

logger = Logger()
tracer = Tracer(patch_modules=("boto3",))
metrics = Metrics()
persistence = DynamoDBPersistenceLayer(table_name=os.environ["DEPLOYER_TABLE"], key_attr="pk", sort_key_attr="sk")
"""

# ELF e_machine values of the architectures Lambda offers.
_ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


@dataclass(frozen=True)
class BuiltFunction:
    name: str  # logical id in template.yaml
    code_dir: Path
    module: str
    layers: tuple[Path, ...]
    env: dict[str, str]


def _elf_machine(path: Path) -> str | None:
    with path.open("rb") as handle:
        header = handle.read(20)
    if header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, str(machine))


def host_machine() -> str | None:
    return _elf_machine(Path(sys.executable).resolve())


def _resolve(value: Any, parameters: Mapping[str, Any], resources: Mapping[str, str]) -> str | None:
    if isinstance(value, str | int | float | bool):
        return str(value)
    if isinstance(value, dict) and "Ref" in value:
        ref = str(value["Ref"])
        if ref in parameters:
            return str(parameters[ref].get("Default", ""))
        return resources.get(ref, ref)
    return None  # another intrinsic: left unset, as nothing here needs it


def built_functions(build_dir: Path = BUILD_DIR) -> list[BuiltFunction]:
    """Every function of the built template with its code, layers and environment variables
    (Globals merged with its own, Refs resolved to the parameters' defaults and the resource
    names `deployer_local.provision.DeployerNames` gives them), plus what Lambda's runtime sets."""
    from deployer_local import template
    from deployer_local.provision import DeployerNames

    document = template.load(str(build_dir / "template.yaml"))
    parameters = document.get("Parameters", {})
    names = DeployerNames(str(parameters.get("Environment", {}).get("Default", "dev")))
    resource_names = {"DeployerTable": names.table, "ConfigTable": names.config_table, "DeployerBus": names.bus}
    defaults = document.get("Globals", {}).get("Function", {})
    functions = []
    for logical_id, props in sorted(
        template.resources("AWS::Serverless::Function", str(build_dir / "template.yaml")).items()
    ):
        variables = {
            **defaults.get("Environment", {}).get("Variables", {}),
            **props.get("Environment", {}).get("Variables", {}),
        }
        env = {
            key: resolved
            for key, value in variables.items()
            if (resolved := _resolve(value, parameters, resource_names))
        }
        handler = str(props.get("Handler", "app.lambda_handler"))
        code_dir = build_dir / str(props["CodeUri"])
        env |= lambda_runtime_env(
            logical_id,
            handler,
            code_dir,
            memory=props.get("MemorySize", defaults.get("MemorySize", 128)),
            runtime=props.get("Runtime", defaults.get("Runtime", "python3.13")),
            tracing=props.get("Tracing", defaults.get("Tracing")),
        )
        layers = tuple(
            build_dir / str(layer["Ref"]) / "python"
            for layer in props.get("Layers", defaults.get("Layers", []))
            if isinstance(layer, dict) and "Ref" in layer
        )
        functions.append(BuiltFunction(logical_id, code_dir, handler.rsplit(".", 1)[0], layers, env))
    return functions


def lambda_runtime_env(
    name: str, handler: str, code_dir: Path, *, memory: object, runtime: object, tracing: object
) -> dict[str, str]:
    """What Lambda's runtime sets before it imports the handler ("Lambda runtimes set several
    environment variables during initialization", AWS Lambda Developer Guide, "Defined runtime
    environment variables", https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html),
    with fake credentials; `code_dir` stands for /var/task. `_X_AMZN_TRACE_ID` is left out: "This
    environment variable changes with each invocation", so no import sees one. With `Tracing:
    Active`, the X-Ray variables Lambda sets ("Lambda sets this value to LOG_ERROR by default",
    AWS Lambda Developer Guide, "Using AWS X-Ray", https://docs.aws.amazon.com/lambda/latest/dg/lambda-x-ray.html):
    LAMBDA_TASK_ROOT is what both Powertools' tracer and the X-Ray SDK read to know they run in
    Lambda, and neither is told to stay off (no POWERTOOLS_TRACE_DISABLED)."""
    env = {
        **FAKE_CREDENTIALS,
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{runtime}",
        "LAMBDA_TASK_ROOT": str(code_dir),
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": handler,
        "TZ": ":UTC",
        "LANG": "en_US.UTF-8",
    }
    if tracing == "Active":
        env |= {"AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000"}
    return env


def _top_levels(dist: importlib.metadata.Distribution) -> set[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip() for line in text.splitlines() if line.strip()}
    return {Path(str(f)).parts[0].removesuffix(".py") for f in dist.files or () if ".dist-info" not in str(f)}


def native_overlay(layer: Path, overlay: Path) -> list[dict[str, str]]:
    """Copy into `overlay` the host's build of every layer package whose native code is built for
    another architecture, compiled as the layer is (unchecked-hash .pyc); refuse if the host's
    version differs from the layer's."""
    host = host_machine()
    foreign = sorted(
        {so.relative_to(layer).parts[0] for so in layer.rglob("*.so") if _elf_machine(so) not in {None, host}}
    )
    if not foreign:
        return []
    owners = {top: dist for dist in importlib.metadata.distributions(path=[str(layer)]) for top in _top_levels(dist)}
    overlay.mkdir(parents=True, exist_ok=True)
    replaced = []
    for top in foreign:
        dist = owners.get(top)
        if dist is None:
            raise RuntimeError(f"{layer / top} has native code for another architecture and no distribution")
        name, version = dist.metadata["Name"], dist.version
        host_version = importlib.metadata.version(name)
        if host_version != version:
            raise RuntimeError(f"{name} is {version} in the layer but {host_version} here: cannot stand in for it")
        spec = importlib.util.find_spec(top)
        if spec is None or spec.origin is None:
            raise RuntimeError(f"{top} is not importable here")
        source = (
            Path(next(iter(spec.submodule_search_locations))) if spec.submodule_search_locations else Path(spec.origin)
        )
        if source.is_dir():
            shutil.copytree(source, overlay / source.name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, overlay / source.name)
        replaced.append({"package": top, "distribution": name, "version": version, "from": str(source.parent)})
    subprocess.run(  # noqa: S603 - the venv's own interpreter
        [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(overlay)], check=True
    )
    return replaced


def _probe(
    sys_path: Sequence[Path],
    module: str,
    env: Mapping[str, str],
    cache: Path | None,
    *,
    write: bool = False,
    trace: bool = False,
    verbose: bool = False,
) -> dict[str, Any]:
    """Import `module` in a fresh interpreter that writes no bytecode (-B) unless `write`: with
    `cache` None it reads the .pyc files next to the modules (the build's, the standard
    library's), as Lambda does; with a pycache prefix, only those under `cache`."""
    flags = ["-I", "-S", *([] if write else ["-B"]), *(["-X", f"pycache_prefix={cache}"] if cache else [])]
    flags += ["-X", "importtime"] * trace + ["-v"] * verbose
    done = subprocess.run(  # noqa: S603 - the venv's own interpreter
        [sys.executable, *flags, "-c", _PROBE, json.dumps([str(p) for p in sys_path]), module],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=tempfile.gettempdir(),
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": last}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if trace:
        result["by_package_ms"] = _by_package(done.stderr)
        result["by_module_ms"] = _by_module(done.stderr)
        result["contributors"] = contributors(done.stderr, module)
    if verbose:
        result["compiled"] = sorted(set(re.findall(r"^# code object from (/\S+\.py)$", done.stderr, re.MULTILINE)))
        result["from_pyc"] = len(set(re.findall(r"^# code object from '(\S+\.pyc)'$", done.stderr, re.MULTILINE)))
    return result


def _importtime(importtime: str) -> list[tuple[str, float]]:
    """`-X importtime` output -> (module, own time in ms), in import order."""
    found = []
    for line in importtime.splitlines():
        fields = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[0].isdigit():
            found.append((fields[2], int(fields[0]) / 1000))
    return found


def _by_package(importtime: str) -> dict[str, float]:
    """Own import time per top-level package, in ms, largest first."""
    totals: dict[str, float] = {}
    for name, ms in _importtime(importtime):
        top = name.split(".")[0]
        totals[top] = totals.get(top, 0.0) + ms
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def _by_module(importtime: str) -> dict[str, float]:
    """Own import time per module, in ms, the 12 largest."""
    return dict(sorted(_importtime(importtime), key=lambda item: -item[1])[:12])


def contributors(importtime: str, root: str, *, least_ms: float = 5.0) -> dict[str, Any]:
    """Who pulls what into the import of `root`: its own time (what its top level runs, e.g.
    building clients), then each module it imports directly with the cumulative time of that
    import, and the two heaviest imports inside each, largest first (those under `least_ms` left
    out). `-X importtime` lists a module after everything it imported, two spaces deeper."""
    children: dict[int, list[dict[str, Any]]] = {}
    found: dict[str, Any] = {}
    for line in importtime.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$", line)
        if not match:
            continue
        depth = (len(match.group(3)) - 1) // 2
        node = {
            "module": match.group(4),
            "own_ms": int(match.group(1)) / 1000,
            "ms": int(match.group(2)) / 1000,
            "imports": children.pop(depth + 1, []),
        }
        children.setdefault(depth, []).append(node)
        if node["module"] == root and depth == 0:
            found = node

    def heaviest(node: dict[str, Any], keep: int) -> list[dict[str, Any]]:
        ranked = sorted((c for c in node["imports"] if c["ms"] >= least_ms), key=lambda c: -c["ms"])[:keep]
        return [{"module": c["module"], "ms": round(c["ms"], 1)} for c in ranked]

    def entry_points(node: dict[str, Any], keep: int) -> list[dict[str, Any]]:
        """The heaviest imports of other packages anywhere inside `node` (none inside another)."""
        found_: list[tuple[dict[str, Any], str]] = []

        def walk(parent: dict[str, Any]) -> None:
            for child in parent["imports"]:
                if child["module"].split(".")[0] != parent["module"].split(".")[0]:
                    found_.append((child, parent["module"]))
                walk(child)

        walk(node)
        chosen: list[dict[str, Any]] = []
        for child, via in sorted(found_, key=lambda item: -item[0]["ms"]):
            if child["ms"] < least_ms or len(chosen) == keep:
                break
            if any(_inside(child, picked["node"]) or _inside(picked["node"], child) for picked in chosen):
                continue
            chosen.append({"node": child, "module": child["module"], "ms": round(child["ms"], 1), "via": via})
        return [{k: v for k, v in picked.items() if k != "node"} for picked in chosen]

    if not found:
        return {}
    direct = sorted((c for c in found["imports"] if c["ms"] >= least_ms), key=lambda c: -c["ms"])
    return {
        "total_ms": round(found["ms"], 1),
        "own_ms": round(found["own_ms"], 1),
        "imports": [
            {"module": c["module"], "ms": round(c["ms"], 1), "inside": heaviest(c, 2), "packages": entry_points(c, 3)}
            for c in direct
        ],
    }


def _inside(node: dict[str, Any], ancestor: dict[str, Any]) -> bool:
    return any(child is node or _inside(node, child) for child in ancestor["imports"])


TARGET_RATIO = 1.5  # a function's import against `import boto3` (issue 13)


def cold_imports(
    n: int = 10, n_uncompiled: int = 2, functions: Sequence[str] | None = None, budget_s: float = 90.0
) -> dict[str, Any]:
    """Median import time of every built function (or those named) and of `import boto3`,
    fresh interpreters, interleaved (the order rotates every round):

    - n runs with the bytecode the build ships (what a Lambda cold start does now);
    - n_uncompiled runs without it (what a cold start did when `sam build` shipped none).

    Then one `-X importtime` run of each function (where the time goes) and one `-v` run of each
    subject (that nothing of the build was compiled from source). On a loaded machine, rounds
    stop once `budget_s` is spent (at least 3 shipped rounds and 1 without); the result says how
    many ran."""
    started = time.monotonic()
    if not (BUILD_DIR / "template.yaml").is_file():
        return {"skipped": "no .aws-sam/build: run make build"}
    built = [f for f in built_functions() if functions is None or f.name in functions]
    if not built:
        return {"skipped": f"no built function named {', '.join(functions or ())}"}
    layers = sorted({layer for f in built for layer in f.layers})
    if not all(layer.is_dir() for layer in layers):
        return {"skipped": "the layer is not built: run make build"}
    built_at = datetime.fromtimestamp((BUILD_DIR / "template.yaml").stat().st_mtime, UTC)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        # A snapshot, so a `make build` running meanwhile cannot change what is measured.
        snapshot = Path(tmp) / "build"
        shutil.copytree(BUILD_DIR, snapshot, symlinks=True)
        shipped_pyc = sum(1 for _ in snapshot.rglob("*.pyc"))
        built = [f for f in built_functions(snapshot) if functions is None or f.name in functions]
        layers = sorted({layer for f in built for layer in f.layers})
        overlay_dir = Path(tmp) / "native"
        overlay = [entry for layer in layers for entry in native_overlay(layer, overlay_dir)]
        extra = [overlay_dir] if overlay else []
        # Without the build's bytecode: a pycache prefix warmed with everything, then emptied of
        # the build and the overlay, so only the standard library stays compiled (as in the runtime).
        caches = BytecodeCaches(Path(tmp))
        base_env = {k: v for k, v in built[0].env.items() if k.startswith("AWS_") or k == "LANG"}
        floor_dir = Path(tmp) / "floor"
        floor_dir.mkdir()
        (floor_dir / f"{FLOOR_MODULE}.py").write_text(_FLOOR, encoding="utf-8")
        subprocess.run(  # noqa: S603 - the venv's own interpreter; compiled as the build compiles
            [sys.executable, "-m", "compileall", "-q", "--invalidation-mode", "unchecked-hash", str(floor_dir)],
            check=True,
        )
        subjects: dict[str, tuple[list[Path], str, dict[str, str]]] = {
            "import boto3": ([*extra, *layers], "boto3", base_env),
            FLOOR_MODULE: ([floor_dir, *extra, *built[0].layers], FLOOR_MODULE, built[0].env),
            **{f.name: ([f.code_dir, *extra, *f.layers], f.module, f.env) for f in built},
        }
        errors = {
            f.name: f"{f.code_dir.name}/{f.module}.py is not in the build: run make build"
            for f in built
            if not (f.code_dir / f"{f.module}.py").is_file()
        }
        for key, (path, module, env) in subjects.items():
            if key in errors:
                continue
            warmed = _probe(path, module, env, caches.warm, write=True)
            if "error" in warmed:
                errors[key] = warmed["error"]
        caches.freeze_cold(snapshot, overlay_dir)
        measured = [key for key in subjects if key not in errors]
        samples: dict[tuple[str, str], list[dict[str, Any]]] = {}
        done = {"shipped": 0, "uncompiled": 0}
        plan: tuple[tuple[str, int, int, Path | None, float], ...] = (
            ("shipped", n, min(n, 3), None, started + 0.6 * budget_s),
            ("uncompiled", n_uncompiled, min(n_uncompiled, 1), caches.cold, started + 0.8 * budget_s),
        )
        for mode, rounds, at_least, cache, deadline in plan:
            for index in range(rounds):
                if index >= at_least and time.monotonic() > deadline:
                    break
                done[mode] += 1
                shift = index % len(measured)
                for key in measured[shift:] + measured[:shift]:
                    path, module, env = subjects[key]
                    result = _probe(path, module, env, cache)
                    if "error" in result:
                        errors[key] = result["error"]
                        continue
                    samples.setdefault((key, mode), []).append(result)
        # Where the time goes: one traced import of each function, with the shipped bytecode; and
        # whether anything of the build was compiled from source (it must not be).
        traces: dict[str, dict[str, Any]] = {}
        compiled: dict[str, list[str]] = {}
        for key in measured:
            path, module, env = subjects[key]
            if key not in {"import boto3", FLOOR_MODULE}:
                traces[key] = _probe(path, module, env, None, trace=True)
            checked = _probe(path, module, env, None, verbose=True)
            compiled[key] = [p for p in checked.get("compiled", []) if Path(p).is_relative_to(Path(tmp))]

    def summary(key: str) -> dict[str, Any]:
        shipped = samples.get((key, "shipped"), [])
        uncompiled = samples.get((key, "uncompiled"), [])
        return {
            "shipped_ms": median([s["ms"] for s in shipped]) if shipped else None,
            "uncompiled_ms": median([s["ms"] for s in uncompiled]) if uncompiled else None,
            "modules": shipped[-1]["modules"] if shipped else None,
            "imports_boto3": shipped[-1]["boto3"] if shipped else None,
            "compiled_from_source": len(compiled.get(key, [])),
        }

    baseline = summary("import boto3")
    floor = summary(FLOOR_MODULE)
    for mode in ("shipped", "uncompiled"):
        value, base = floor[f"{mode}_ms"], baseline[f"{mode}_ms"]
        floor[f"{mode}_ratio"] = ratio(value, base) if value is not None and base is not None else None
    if FLOOR_MODULE in errors:
        floor["error"] = errors[FLOOR_MODULE]
    rows = []
    for f in built:
        row = {"function": f.name, "module": f.module, **summary(f.name)}
        if f.name in errors:
            row["error"] = errors[f.name]
        for mode in ("shipped", "uncompiled"):
            value, base = row[f"{mode}_ms"], baseline[f"{mode}_ms"]
            row[f"{mode}_ratio"] = ratio(value, base) if value is not None and base is not None else None
        if row["shipped_ms"] is not None and row["uncompiled_ms"]:
            row["shipped_vs_uncompiled"] = row["shipped_ms"] / row["uncompiled_ms"]
        trace = traces.get(f.name, {})
        packages = trace.get("by_package_ms", {})
        row["by_package_ms"] = dict(list(packages.items())[:8])
        row["by_module_ms"] = trace.get("by_module_ms", {})
        row["traced_total_ms"] = sum(packages.values())
        row["contributors"] = trace.get("contributors", {})
        row["meets_target"] = row["shipped_ratio"] is not None and row["shipped_ratio"] <= TARGET_RATIO
        rows.append(row)
    return {
        "n": done["shipped"],
        "n_requested": n,
        "n_uncompiled": done["uncompiled"],
        "n_uncompiled_requested": n_uncompiled,
        "target_ratio": TARGET_RATIO,
        "build": str(BUILD_DIR.relative_to(REPO_ROOT)),
        "built_at": built_at.strftime("%Y-%m-%d %H:%M UTC"),
        "shipped_pyc": shipped_pyc,
        "host": host_machine(),
        "native_overlay": overlay,
        "env": sorted(built[0].env) if built else [],
        "tracing": built[0].env.get("AWS_XRAY_CONTEXT_MISSING") is not None if built else False,
        "baseline": {**baseline, **({"error": errors["import boto3"]} if "import boto3" in errors else {})},
        "floor": floor,
        "functions": rows,
    }
