"""Cold import of each built function: in a fresh interpreter, the time to import the handler
module from `.aws-sam/build` with the layer on sys.path and the environment the template gives
the function, against `import boto3` alone from the same layer.

The interpreter runs with -I -S, so nothing outside the function, the layer and the standard
library can be imported (as on Lambda). The layer is built for arm64; when the host is not,
packages with native code for the other architecture are taken from the venv at the very same
version (listed in the result), and everything else comes from the build.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
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
    names `deployer.provision.DeployerNames` gives them), plus what Lambda's runtime sets."""
    from deployer import template
    from deployer.provision import DeployerNames

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
        env |= {
            **FAKE_CREDENTIALS,
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_LAMBDA_FUNCTION_NAME": logical_id,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(props.get("MemorySize", defaults.get("MemorySize", 128))),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{props.get('Runtime', defaults.get('Runtime', 'python3.13'))}",
            "LANG": "en_US.UTF-8",
        }
        layers = tuple(
            build_dir / str(layer["Ref"]) / "python"
            for layer in props.get("Layers", defaults.get("Layers", []))
            if isinstance(layer, dict) and "Ref" in layer
        )
        handler = str(props.get("Handler", "app.lambda_handler"))
        functions.append(
            BuiltFunction(logical_id, build_dir / str(props["CodeUri"]), handler.rsplit(".", 1)[0], layers, env)
        )
    return functions


def _top_levels(dist: importlib.metadata.Distribution) -> set[str]:
    text = dist.read_text("top_level.txt")
    if text:
        return {line.strip() for line in text.splitlines() if line.strip()}
    return {Path(str(f)).parts[0].removesuffix(".py") for f in dist.files or () if ".dist-info" not in str(f)}


def native_overlay(layer: Path, overlay: Path) -> list[dict[str, str]]:
    """Symlink into `overlay` the host's copy of every layer package whose native code is built
    for another architecture; refuse if the host's version differs from the layer's."""
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
        (overlay / source.name).symlink_to(source)
        replaced.append({"package": top, "distribution": name, "version": version, "from": str(source.parent)})
    return replaced


def _probe(
    sys_path: Sequence[Path], module: str, env: Mapping[str, str], cache: Path, *, write: bool, trace: bool = False
) -> dict[str, Any]:
    flags = ["-I", "-S", "-X", f"pycache_prefix={cache}"] + ([] if write else ["-B"]) + (["-X", "importtime"] * trace)
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
    return result


def _by_package(importtime: str) -> dict[str, float]:
    """`-X importtime` output -> own import time per top-level package, in ms, largest first."""
    totals: dict[str, float] = {}
    for line in importtime.splitlines():
        fields = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if len(fields) == 3 and fields[0].isdigit():
            top = fields[2].split(".")[0]
            totals[top] = totals.get(top, 0.0) + int(fields[0]) / 1000
    return dict(sorted(totals.items(), key=lambda item: -item[1]))


def cold_imports(
    n: int = 10, n_uncompiled: int = 2, functions: Sequence[str] | None = None, budget_s: float = 70.0
) -> dict[str, Any]:
    """Median import time of every built function (or those named) and of `import boto3`,
    n fresh interpreters each, interleaved (the order rotates every round):

    - with bytecode cached (warmed by one run first): the import itself;
    - n_uncompiled more runs without any .pyc for the build, which is what a Lambda cold start
      does with a `sam build` artifact (it ships no .pyc and /opt, /var/task are read-only).

    On a loaded machine, rounds stop once `budget_s` is spent (at least 3 cached rounds and 1
    uncompiled); the result says how many ran."""
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
        shutil.copytree(BUILD_DIR, snapshot, ignore=shutil.ignore_patterns("__pycache__"), symlinks=True)
        built = [f for f in built_functions(snapshot) if functions is None or f.name in functions]
        layers = sorted({layer for f in built for layer in f.layers})
        overlay_dir = Path(tmp) / "native"
        overlay = [entry for layer in layers for entry in native_overlay(layer, overlay_dir)]
        extra = [overlay_dir] if overlay else []
        caches = BytecodeCaches(Path(tmp))
        base_env = {k: v for k, v in built[0].env.items() if k.startswith("AWS_") or k == "LANG"}
        subjects: dict[str, tuple[list[Path], str, dict[str, str]]] = {
            "import boto3": ([*extra, *layers], "boto3", base_env),
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
        done = {"cached": 0, "uncompiled": 0}
        plan = (
            ("cached", n, min(n, 3), caches.warm, started + 0.75 * budget_s),
            ("uncompiled", n_uncompiled, min(n_uncompiled, 1), caches.cold, started + budget_s),
        )
        for mode, rounds, at_least, cache, deadline in plan:
            for index in range(rounds):
                if index >= at_least and time.monotonic() > deadline:
                    break
                done[mode] += 1
                shift = index % len(measured)
                for key in measured[shift:] + measured[:shift]:
                    path, module, env = subjects[key]
                    result = _probe(path, module, env, cache, write=False)
                    if "error" in result:
                        errors[key] = result["error"]
                        continue
                    samples.setdefault((key, mode), []).append(result)
        # Where the time goes, from one traced import of the first function that imports.
        traced = next((f for f in built if f.name in measured), None)
        breakdown: dict[str, Any] = {}
        if traced is not None:
            path, module, env = subjects[traced.name]
            result = _probe(path, module, env, caches.warm, write=False, trace=True)
            packages = result.get("by_package_ms", {})
            breakdown = {
                "function": traced.name,
                "total_ms": sum(packages.values()),
                "by_package_ms": dict(list(packages.items())[:8]),
            }

    def summary(key: str) -> dict[str, Any]:
        cached = samples.get((key, "cached"), [])
        uncompiled = samples.get((key, "uncompiled"), [])
        return {
            "cached_ms": median([s["ms"] for s in cached]) if cached else None,
            "uncompiled_ms": median([s["ms"] for s in uncompiled]) if uncompiled else None,
            "modules": cached[-1]["modules"] if cached else None,
            "imports_boto3": cached[-1]["boto3"] if cached else None,
        }

    baseline = summary("import boto3")
    rows = []
    for f in built:
        row = {"function": f.name, "module": f.module, **summary(f.name)}
        if f.name in errors:
            row["error"] = errors[f.name]
        for mode in ("cached", "uncompiled"):
            value, base = row[f"{mode}_ms"], baseline[f"{mode}_ms"]
            row[f"{mode}_ratio"] = ratio(value, base) if value is not None and base is not None else None
        rows.append(row)
    return {
        "n": done["cached"],
        "n_requested": n,
        "n_uncompiled": done["uncompiled"],
        "n_uncompiled_requested": n_uncompiled,
        "build": str(BUILD_DIR.relative_to(REPO_ROOT)),
        "built_at": built_at.strftime("%Y-%m-%d %H:%M UTC"),
        "host": host_machine(),
        "native_overlay": overlay,
        "env": sorted(built[0].env) if built else [],
        "baseline": {**baseline, **({"error": errors["import boto3"]} if "import boto3" in errors else {})},
        "functions": rows,
        "breakdown": breakdown,
    }
