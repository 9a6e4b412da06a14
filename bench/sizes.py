"""The built packages' sizes: every function's code and the layer, as `sam build` left them in
`.aws-sam/build`, unzipped (what counts against Lambda's 250 MB limit for a function and its
layers) and zipped (what is uploaded; deflate, as `sam package` zips), with the layer broken
down by distribution, so the share Powertools takes is measured, not guessed, and what the
bytecode the build ships (`__pycache__/*.pyc`) costs in size.

Powertools is bundled in the project's own layer, not taken from AWS's public Powertools layer:
`powertools_note` gives the reasons, and the result the figures they rest on.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.common import REPO_ROOT

BUILD_DIR = REPO_ROOT / ".aws-sam" / "build"
LAMBDA_UNZIPPED_LIMIT_MB = 250.0  # a function and all its layers, unzipped
POWERTOOLS = "aws-lambda-powertools"
SDK = ("boto3", "botocore", "s3transfer", "jmespath")
RECENT_ECS_OPERATIONS = ("ContinueServiceDeployment", "ListServiceDeployments", "DescribeServiceDeployments")
MB = 1_000_000


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def _bytecode(paths: Iterable[Path]) -> list[Path]:
    return [p for p in paths if "__pycache__" in p.parts]


def _unzipped(paths: Iterable[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def _zipped(paths: Iterable[Path], root: Path) -> int:
    """The size of a deflate zip of `paths`, stored relative to `root`."""
    with tempfile.TemporaryDirectory(prefix="bench-zip-") as tmp:
        archive = Path(tmp) / "package.zip"
        with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
            for path in paths:
                zipped.write(path, path.relative_to(root))
        return archive.stat().st_size


def _distribution_files(site: Path) -> dict[str, tuple[str, list[Path]]]:
    """Distribution name -> (version, its installed files, with the bytecode the build compiled
    from them) of the packages under `site`."""
    found: dict[str, tuple[str, list[Path]]] = {}
    for dist in importlib.metadata.distributions(path=[str(site)]):
        files = [site / str(f) for f in dist.files or ()]
        name = str(dist.metadata["Name"]).lower().replace("_", "-")
        installed = [f for f in files if f.is_file() and "__pycache__" not in f.parts]
        compiled = [Path(importlib.util.cache_from_source(str(f))) for f in installed if f.suffix == ".py"]
        found[name] = (dist.version, installed + [c for c in compiled if c.is_file()])
    return found


def _layer_breakdown(site: Path) -> tuple[list[dict[str, Any]], dict[str, str]]:
    distributions = _distribution_files(site)
    owned = {f for _, files in distributions.values() for f in files}
    rows = [
        {
            "distribution": name,
            "version": version,
            "files": len(files),
            "unzipped_bytes": _unzipped(files),
            "zipped_bytes": _zipped(files, site),
            "bytecode_unzipped_bytes": _unzipped(_bytecode(files)),
        }
        for name, (version, files) in distributions.items()
    ]
    rest = [f for f in _files(site) if f not in owned]  # the deployer package itself, and loose files
    if rest:
        rows.append(
            {
                "distribution": "(not from a distribution: the deployer package, requirements files)",
                "version": "",
                "files": len(rest),
                "unzipped_bytes": _unzipped(rest),
                "zipped_bytes": _zipped(rest, site),
                "bytecode_unzipped_bytes": _unzipped(_bytecode(rest)),
            }
        )
    rows.sort(key=lambda row: -row["unzipped_bytes"])
    return rows, {name: version for name, (version, _) in distributions.items()}


def _ecs_operations(site: Path) -> dict[str, bool]:
    """Whether the layer's botocore knows each recent ECS operation (read from its model file)."""
    import json

    models = sorted((site / "botocore" / "data" / "ecs").glob("*/service-2.json*"))
    if not models:
        return {}
    path = models[-1]
    if path.suffix == ".gz":
        import gzip

        text = gzip.decompress(path.read_bytes()).decode("utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    operations = json.loads(text).get("operations", {})
    return {name: name in operations for name in RECENT_ECS_OPERATIONS}


def _venv_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def package_sizes(build_dir: Path = BUILD_DIR) -> dict[str, Any]:
    """Sizes of every built function and layer; the layer's distributions one by one."""
    if not (build_dir / "template.yaml").is_file():
        return {"skipped": "no .aws-sam/build: run make build"}
    from deployer_local import template

    built = str(build_dir / "template.yaml")
    functions = template.resources("AWS::Serverless::Function", built)
    layers = template.resources("AWS::Serverless::LayerVersion", built)
    packages = []
    for kind, resources in (("function", functions), ("layer", layers)):
        for logical_id in sorted(resources):
            root = build_dir / logical_id
            files = _files(root)
            bytecode = set(_bytecode(files))
            source_only = [f for f in files if f not in bytecode]
            packages.append(
                {
                    "name": logical_id,
                    "kind": kind,
                    "files": len(files),
                    "bytecode_files": len(bytecode),
                    "unzipped_bytes": _unzipped(files),
                    "zipped_bytes": _zipped(files, root) if files else 0,
                    # the same package without its __pycache__: what the build shipped before
                    "without_bytecode_unzipped_bytes": _unzipped(source_only),
                    "without_bytecode_zipped_bytes": _zipped(source_only, root) if source_only else 0,
                }
            )
    result: dict[str, Any] = {
        "build": str(build_dir.relative_to(REPO_ROOT)) if build_dir.is_relative_to(REPO_ROOT) else str(build_dir),
        "packages": packages,
        "limit_unzipped_mb": LAMBDA_UNZIPPED_LIMIT_MB,
    }
    layer_rows = [p for p in packages if p["kind"] == "layer"]
    if not layer_rows:
        return result
    site = build_dir / layer_rows[0]["name"] / "python"
    breakdown, versions = _layer_breakdown(site)
    layer_unzipped = sum(p["unzipped_bytes"] for p in layer_rows)
    biggest_function = max((p["unzipped_bytes"] for p in packages if p["kind"] == "function"), default=0)

    def share(names: Iterable[str]) -> dict[str, Any]:
        chosen = [row for row in breakdown if row["distribution"] in set(names)]
        unzipped = sum(row["unzipped_bytes"] for row in chosen)
        return {
            "distributions": [f"{row['distribution']} {row['version']}" for row in chosen],
            "unzipped_bytes": unzipped,
            "zipped_bytes": sum(row["zipped_bytes"] for row in chosen),
            "share_of_layer": unzipped / layer_unzipped if layer_unzipped else 0.0,
        }

    same_as_tests = {
        name: (versions.get(name, "?"), _venv_version(name)) for name in (POWERTOOLS, "pydantic", "boto3", "botocore")
    }
    result |= {
        "layer": layer_rows[0]["name"],
        "layer_breakdown": breakdown,
        "powertools": share([POWERTOOLS]),
        # Powertools' own extras as the layer installs them ([tracer,parser]): X-Ray SDK and wrapt.
        "powertools_with_tracer": share([POWERTOOLS, "aws-xray-sdk", "wrapt"]),
        "sdk": share(SDK),
        "versions": {name: versions.get(name, "?") for name in (POWERTOOLS, "boto3", "botocore", "pydantic")},
        "recent_ecs_operations": _ecs_operations(site),
        # The layer against the venv the tests run in (both from requirements.lock).
        "same_as_tests": same_as_tests,
        "layer_matches_tests": all(layer == venv for layer, venv in same_as_tests.values()),
        "headroom_mb": LAMBDA_UNZIPPED_LIMIT_MB - (layer_unzipped + biggest_function) / MB,
    }
    return result
