"""`deployer plan` start-up: whole-process wall time of the console script against the bare
interpreter, and proof that the process never imports boto3."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT, BytecodeCaches, median, ratio

PLAN_ARGS = ("plan", "--desired", "4", "--min", "50", "--max", "150")
TARGET_RATIO = 2.0  # `deployer plan` against `python -c pass` (issue 13)
# What `deployer plan` no longer imports: dataclasses (and through it inspect, ast, dis, tokenize),
# typing, shutil (argparse's way to the terminal's width), and json, decimal, difflib, which only
# some of its paths need.
AVOIDED = ("dataclasses", "inspect", "typing", "shutil", "json", "decimal", "difflib", "boto3", "botocore")

# Runs the CLI's main in-process and reports what it imported (its drawing goes nowhere).
_SYS_MODULES_PROBE = """
import contextlib, io, sys
from deployer_cli import main
with contextlib.redirect_stdout(io.StringIO()):
    status = main(sys.argv[1:])
names = sorted(sys.modules)
import json  # after the list: the probe's own import is not the CLI's
print(json.dumps({"status": status, "modules": names}))
"""


def venv_bin() -> Path:
    """The directory of the running interpreter (the venv's bin under `make bench`)."""
    return Path(sys.executable).parent


def _wall_ms(command: list[str], env: Mapping[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - the venv\'s own interpreter and console script
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=REPO_ROOT, env=env, check=False
    )
    elapsed = (time.perf_counter() - start) * 1000
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.decode()[-500:]}")
    return elapsed


def _imports(python: str, deployer: str, env: Mapping[str, str]) -> dict[str, Any]:
    """Two independent checks: `-X importtime` of the real console script (every module the
    process imports, with its cost) and `sys.modules` after running the CLI's main."""
    traced = subprocess.run(  # noqa: S603 - the venv\'s own interpreter and console script
        [python, "-X", "importtime", deployer, *PLAN_ARGS],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )
    imported: list[str] = []
    self_us = 0
    slowest: list[tuple[int, str]] = []
    for line in traced.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        fields = [part.strip() for part in line.removeprefix("import time:").split("|")]
        if not fields[0].isdigit():
            continue  # the header line
        self_us += int(fields[0])
        imported.append(fields[2].strip())
        slowest.append((int(fields[0]), fields[2].strip()))
    probe = subprocess.run(  # noqa: S603 - the venv\'s own interpreter and console script
        [python, "-c", _SYS_MODULES_PROBE, *PLAN_ARGS],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        check=True,
    )
    in_process = json.loads(probe.stdout.strip().splitlines()[-1])
    modules = set(imported) | set(in_process["modules"])

    def loaded(package: str) -> bool:
        return any(name == package or name.startswith(package + ".") for name in modules)

    third_party = sorted(
        {name.split(".")[0] for name in modules}
        - set(sys.stdlib_module_names)
        - set(sys.builtin_module_names)
        - {"__main__", "_distutils_hack", "_virtualenv", "sitecustomize", "usercustomize"}
    )
    return {
        "avoided_but_loaded": [name for name in AVOIDED if loaded(name)],
        "boto3_imported": loaded("boto3"),
        "botocore_imported": loaded("botocore"),
        "modules": len(in_process["modules"]),
        "import_time_ms": self_us / 1000,
        "slowest_imports_ms": {name: us / 1000 for us, name in sorted(slowest, reverse=True)[:3]},
        "top_level_packages_outside_stdlib": third_party,
    }


def _env(caches: Path, *, write: bool) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPYCACHEPREFIX"] = str(caches)
    if not write:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def plan_startup(n: int = 20) -> dict[str, Any]:
    """Median wall time of `deployer plan ...` and of `python -c pass`, n runs each, interleaved
    (the order rotates every round), after one warm-up run each.

    Bytecode lives in a temporary pycache prefix, so the figures do not depend on the caller's
    PYTHONDONTWRITEBYTECODE. `plan` runs with the deployer's bytecode cached (as after
    `pip install`); `plan, no .pyc` compiles the deployer package on every run (an editable
    install under PYTHONDONTWRITEBYTECODE=1)."""
    bin_dir = venv_bin()
    python = str(bin_dir / "python")
    deployer = str(bin_dir / "deployer")
    spec = importlib.util.find_spec("deployer")
    assert spec is not None
    assert spec.submodule_search_locations
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        caches = BytecodeCaches(Path(tmp))
        warm = _env(caches.warm, write=True)
        for command in ([python, "-c", "pass"], [deployer, *PLAN_ARGS]):
            _wall_ms(command, warm)
        caches.freeze_cold(package_dir)
        runs = {
            "baseline": ([python, "-c", "pass"], _env(caches.warm, write=False)),
            "plan": ([deployer, *PLAN_ARGS], _env(caches.warm, write=False)),
            "plan_uncompiled": ([deployer, *PLAN_ARGS], _env(caches.cold, write=False)),
        }
        samples: dict[str, list[float]] = {key: [] for key in runs}
        keys = list(runs)
        for index in range(n):
            for key in keys[index % len(keys) :] + keys[: index % len(keys)]:
                command, env = runs[key]
                samples[key].append(_wall_ms(command, env))
        imports = _imports(python, deployer, runs["plan"][1])
    plan_ms = median(samples["plan"])
    baseline_ms = median(samples["baseline"])
    uncompiled_ms = median(samples["plan_uncompiled"])
    return {
        "n": n,
        "command": "deployer " + " ".join(PLAN_ARGS),
        "baseline_command": "python -c pass",
        "plan_ms": plan_ms,
        "plan_min_ms": min(samples["plan"]),
        "baseline_ms": baseline_ms,
        "baseline_min_ms": min(samples["baseline"]),
        "ratio": ratio(plan_ms, baseline_ms),
        "target_ratio": TARGET_RATIO,
        "min_ratio": ratio(min(samples["plan"]), min(samples["baseline"])),
        "plan_uncompiled_ms": uncompiled_ms,
        "uncompiled_ratio": ratio(uncompiled_ms, baseline_ms),
        "imports": imports,
    }
