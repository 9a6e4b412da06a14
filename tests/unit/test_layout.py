"""The layout (docs/design.md, "Where the code lives"): the Lambda layer's `deployer` package holds
what the six functions run and nothing else; the CLI (`deployer_cli`) and the local stack
(`deployer_local`) are packages of their own, outside the layer.

"What the functions run" is found mechanically: every `deployer.*` module that `functions/*/app.py`
imports, then every module those import, lazy imports inside functions included (a handler reaches
them on some event), followed to the end. import-linter (`make lint`, pyproject.toml's
[tool.importlinter]) keeps the direction of the imports between the packages; this file keeps the
layer's content.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.events import REPOSITORY_ROOT

pytestmark = pytest.mark.unit

LAYER_ROOT = REPOSITORY_ROOT / "layers" / "deployer"
HANDLERS = sorted(REPOSITORY_ROOT.glob("functions/*/app.py"))


def module_file(name: str, root: Path = LAYER_ROOT) -> Path | None:
    path = root.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    if path.with_suffix(".py").is_file():
        return path.with_suffix(".py")
    return None


def imported_modules(source: Path, module: str) -> set[str]:
    """Every `deployer*` module `source` imports, anywhere in it (top level, inside functions,
    under TYPE_CHECKING): `from deployer import flow` counts as `deployer.flow`."""
    found: set[str] = set()
    is_package = source.name == "__init__.py"
    for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if module_file(f"{base}.{alias.name}"))
    return {name for name in found if name.split(".")[0].startswith("deployer")}


def reached_from_the_handlers() -> set[str]:
    todo = [name for handler in HANDLERS for name in imported_modules(handler, "app")]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or (source := module_file(name)) is None:
            continue
        seen.add(name)
        parents = name.split(".")
        todo += [".".join(parents[:i]) for i in range(1, len(parents))]
        todo += imported_modules(source, name)
    return seen


def modules_in_the_layer() -> set[str]:
    package = LAYER_ROOT / "deployer"
    names = set()
    for path in package.rglob("*.py"):
        parts = path.relative_to(LAYER_ROOT).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_layer_holds_exactly_the_modules_the_functions_import() -> None:
    # GIVEN the six handlers and the modules they import, lazily or not, followed to the end
    assert len(HANDLERS) == 6
    reached = reached_from_the_handlers()
    # WHEN they are compared with the modules of layers/deployer/deployer
    in_layer = modules_in_the_layer()
    # THEN the layer has no module the functions never import (the CLI's, the local stack's)
    assert sorted(in_layer - reached) == []
    # AND every module they import is in the layer (none lives in deployer_cli or deployer_local)
    assert sorted(reached - in_layer) == []
    assert {"deployer.runtime", "deployer.reporting"} <= reached  # the lazy imports of runtime.deps


@pytest.mark.integration  # a fresh interpreter: another process
def test_importing_the_handlers_loads_only_modules_of_the_layer() -> None:
    # GIVEN a fresh interpreter with the functions' environment
    code = """
import importlib.util, json, os, sys
for handler in sys.argv[1:]:
    spec = importlib.util.spec_from_file_location("app", handler)
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0].startswith("deployer"))))
"""
    env = {
        **os.environ,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "DEPLOYER_TABLE": "ecs-deployer-test",
        "DEPLOYER_CONFIG_TABLE": "ecs-deployer-config-test",
        "DEPLOYER_EVENT_BUS": "ecs-deployer-test",
        "DEPLOYER_SIGNING_KEY_SECRET": "ecs-deployer-test/signing-key",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "PYTHONPATH": str(LAYER_ROOT),
    }
    # WHEN it imports the six handlers as Lambda does
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, HANDLERS)],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    # THEN every module they loaded is one the static walk found (so the walk misses none), and
    # none comes from the CLI's package or the local stack's
    assert {"deployer.flow", "deployer.runtime", "deployer.events"} <= loaded
    assert sorted(loaded - reached_from_the_handlers()) == []
