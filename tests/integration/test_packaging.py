"""What `sam build` produced runs on its own: the layer carries the deployer package and every
runtime dependency, each function imports with only its code and the layer, the functions' code
is only their handler, and the local runner really sees nothing else (a packaging mistake fails
here as it would in Lambda)."""

from __future__ import annotations

import importlib.util
import json
import marshal
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from deployer_local import localrun
from deployer_local.localrun import BuiltFunction, LocalRunError
from deployer_local.provision import DeployerNames
from tests.support.events import REPOSITORY_ROOT

pytestmark = pytest.mark.integration

RUNTIME_MODULES = ("deployer", "aws_lambda_powertools", "pydantic", "slack_sdk", "yaml", "boto3")
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024  # function code and all its layers, unzipped
ELF_MACHINES = {"arm64": 183, "x86_64": 62}  # Lambda architecture -> ELF e_machine


@pytest.fixture(scope="module")
def functions(build_dir: Path) -> dict[str, BuiltFunction]:
    return localrun.built_functions(build_dir, parameters={"Environment": "test"})


@pytest.fixture(scope="module")
def layer(build_dir: Path) -> Path:
    return build_dir / "DeployerLayer" / "python"


def run_isolated(search_path: list[Path], code: str, env: Mapping[str, str] | None = None) -> Any:
    """Run `code` where only `search_path` and the stdlib are importable; it prints one JSON value."""
    done = subprocess.run(
        localrun.isolated_python(search_path, textwrap.dedent(code)),
        env=dict(env or {"PATH": "/usr/bin:/bin"}),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def files_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


# -- the layer ----------------------------------------------------------------------------------


def test_the_layer_alone_provides_the_deployer_package_and_its_runtime_dependencies(layer: Path) -> None:
    # GIVEN an interpreter that sees only the built layer and the standard library
    code = f"""
        import importlib, json, pkgutil, sys
        modules = {{}}
        for name in {RUNTIME_MODULES!r}:
            modules[name] = importlib.import_module(name).__file__
        import deployer
        for info in pkgutil.walk_packages(deployer.__path__, "deployer."):
            modules[info.name] = importlib.import_module(info.name).__file__
        print(json.dumps({{"modules": modules, "path": sys.path}}))
    """
    # WHEN it imports the runtime dependencies and every module of the deployer package
    seen = run_isolated([layer], code)
    # THEN each one comes from the layer, not from the repository or its virtualenv
    outside = {name: file for name, file in seen["modules"].items() if not Path(file).is_relative_to(layer)}
    assert outside == {}
    assert {"deployer.flow", "deployer.runtime", "deployer.events"} <= seen["modules"].keys()
    assert not any("site-packages" in entry for entry in seen["path"])
    assert str(REPOSITORY_ROOT / "layers") not in " ".join(seen["path"])


def test_the_layer_ships_the_lambda_package_alone_not_the_cli_nor_the_local_stack(layer: Path) -> None:
    # GIVEN the built layer and the modules of layers/deployer/deployer (what the functions import,
    # tests/unit/test_layout.py)
    source = REPOSITORY_ROOT / "layers" / "deployer" / "deployer"
    expected = {str(p.relative_to(source.parent)) for p in source.rglob("*.py")}
    # WHEN its Python files are listed
    shipped = {str(p.relative_to(layer)) for p in (layer / "deployer").rglob("*.py")}
    # THEN it holds those modules and no other: neither the CLI's package nor the local stack's
    assert shipped == expected
    assert not (layer / "deployer_cli").exists()
    assert not (layer / "deployer_local").exists()
    assert {"deployer/cli", "deployer/local"}.isdisjoint(str(p.relative_to(layer)) for p in layer.rglob("*"))


def test_what_the_virtualenv_has_and_the_layer_lacks_is_not_importable_there(layer: Path) -> None:
    # GIVEN packages installed in the test virtualenv only (moto, pytest)
    code = """
        import importlib.util, json
        print(json.dumps({name: importlib.util.find_spec(name) is not None for name in ("moto", "pytest", "boto3")}))
    """
    # WHEN the layer's interpreter looks for them
    found = run_isolated([layer], code)
    # THEN it cannot see them, while it sees the layer's own boto3: the isolation is real
    assert found == {"moto": False, "pytest": False, "boto3": True}


def test_the_layer_holds_exactly_the_pinned_runtime_requirements(layer: Path) -> None:
    # GIVEN the layer's pinned requirements
    pins = {}
    for line in (REPOSITORY_ROOT / "layers" / "deployer" / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].split(";", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins[_normalized(name.split("[", 1)[0])] = version.strip()
    # WHEN the build's installed distributions are listed
    import importlib.metadata

    installed = {
        _normalized(d.metadata["Name"]): d.version for d in importlib.metadata.distributions(path=[str(layer)])
    }
    # THEN every pin is there at its version
    assert pins
    assert {name: installed.get(name) for name in pins} == pins


def _normalized(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def test_compiled_extensions_in_the_layer_are_built_for_the_functions_architecture(
    layer: Path, functions: dict[str, BuiltFunction]
) -> None:
    # GIVEN the functions' architecture
    (architecture,) = {f.architecture for f in functions.values()}
    # WHEN the layer's compiled extensions are read
    machines = {}
    for library in layer.rglob("*.so"):
        header = library.read_bytes()[:20]
        if header[:4] == b"\x7fELF":
            machines[str(library.relative_to(layer))] = int.from_bytes(header[18:20], "little")
    # THEN pydantic_core's is among them, and every one runs on Lambda's architecture
    assert any(name.startswith("pydantic_core/") for name in machines)
    assert {name for name, machine in machines.items() if machine != ELF_MACHINES[architecture]} == set()


# -- bytecode -----------------------------------------------------------------------------------
#
# Every Lambda execution environment gets its own copy of the function's code and layers, and only
# /tmp to write to ("Each execution environment contains a dedicated copy of the following items:
# The code of the particular function version. Any AWS Lambda layers selected for your function
# version. [...] A writeable /tmp directory.": Security Overview of AWS Lambda, "Lambda isolation
# technologies", https://docs.aws.amazon.com/whitepapers/latest/security-overview-aws-lambda/lambda-isolation-technologies.html),
# so no bytecode compiled there outlives a cold start: without .pyc files in the build, every
# module of the layer is compiled again on every cold start. The build ships them (layers/deployer/Makefile,
# functions/*/Makefile) as unchecked hash-based .pyc files: "For unchecked hash-based .pyc files,
# Python simply assumes the cache file is valid if it exists" (The Python Language Reference, "The
# import system", Cached bytecode invalidation,
# https://docs.python.org/3/reference/import.html#cached-bytecode-invalidation), so neither the
# timestamps a zip keeps nor a read-only directory matter. Header layout: PEP 552.

PYC_FLAGS_HASH_BASED = 0b01  # PEP 552: bit 0 set = hash-based
PYC_FLAGS_CHECK_SOURCE = 0b10  # bit 1 set = check the source's hash when importing


def built_sources(build_dir: Path) -> list[Path]:
    return sorted(p for p in build_dir.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_python_file_in_the_build_has_its_unchecked_hash_bytecode(build_dir: Path) -> None:
    # GIVEN every .py of the layer and of the functions, and this interpreter's magic number,
    # which is Lambda's python3.13's
    assert sys.implementation.cache_tag == "cpython-313"
    sources = built_sources(build_dir)
    # WHEN the .pyc that Python would look for beside each one is read
    problems: dict[str, str] = {}
    for source in sources:
        cached = Path(importlib.util.cache_from_source(str(source)))
        where = str(source.relative_to(build_dir))
        if not cached.is_file():
            problems[where] = "no .pyc"
            continue
        header = cached.read_bytes()[:16]
        flags = int.from_bytes(header[4:8], "little")
        if header[:4] != importlib.util.MAGIC_NUMBER:
            problems[where] = f"magic number {header[:4]!r}, not CPython 3.13's"
        elif flags != PYC_FLAGS_HASH_BASED:
            problems[where] = f"flags {flags:#b}: not an unchecked hash-based .pyc"
        elif header[8:16] != importlib.util.source_hash(source.read_bytes()):
            problems[where] = "compiled from another version of the source"
    # THEN each one has a .pyc of CPython 3.13, hash-based, unchecked, of this very source
    assert len(sources) > 900  # botocore, pydantic, Powertools... and the deployer package
    assert problems == {}


def test_the_bytecode_names_the_files_where_lambda_puts_them(build_dir: Path, layer: Path) -> None:
    # GIVEN the bytecode of a deployer module and of a function's handler
    layer_code = marshal.loads(
        Path(importlib.util.cache_from_source(str(layer / "deployer" / "flow" / "push.py"))).read_bytes()[16:]
    )
    handler = next(build_dir.glob("*/app.py"))
    handler_code = marshal.loads(Path(importlib.util.cache_from_source(str(handler))).read_bytes()[16:])
    # THEN the file names recorded are Lambda's paths, not the build machine's scratch directory
    # (so two builds of the same sources give the same bytes)
    assert layer_code.co_filename == "/opt/python/deployer/flow/push.py"
    assert handler_code.co_filename == "/var/task/app.py"


def test_the_layer_imports_from_its_bytecode_without_writing_any(
    layer: Path, functions: dict[str, BuiltFunction]
) -> None:
    # GIVEN an interpreter that sees only a function's code, the layer and the standard library,
    # may not write bytecode (-B, what PYTHONDONTWRITEBYTECODE=1 sets; -I ignores the variable)
    # and reports where each module's code comes from (-v); no pycache_prefix, so Python reads
    # the __pycache__ folders of the build as Lambda does
    function = functions["ApprovalsHttpFunction"]
    code = """
        import importlib, json, pkgutil
        import app
        import deployer
        names = [info.name for info in pkgutil.walk_packages(deployer.__path__, "deployer.")]
        for name in names:
            importlib.import_module(name)
        print(json.dumps(sorted(["deployer", *names])))
    """
    command = localrun.isolated_python(function.python_path, textwrap.dedent(code))
    prefix = next(i for i, arg in enumerate(command) if arg.startswith("pycache_prefix="))
    del command[prefix - 1 : prefix + 1]
    command[1:1] = ["-B", "-v"]
    pycaches_before = sorted(str(p) for p in layer.rglob("__pycache__"))
    # WHEN it imports the handler and every module of the deployer package
    done = subprocess.run(
        command,
        env={
            "PATH": "/usr/bin:/bin",
            **function.environment,
            **dict.fromkeys(function.unresolved, "stand-in"),
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "POWERTOOLS_TRACE_DISABLED": "true",
        },
        cwd=function.code_dir,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    modules = json.loads(done.stdout.splitlines()[-1])
    # THEN every module of the build came from its .pyc, none was compiled from source
    from_pyc = set(re.findall(r"^# code object from '(.+\.pyc)'$", done.stderr, re.MULTILINE))
    from_source = [
        path
        for path in re.findall(r"^# code object from (/.+\.py)$", done.stderr, re.MULTILINE)
        if Path(path).is_relative_to(layer) or Path(path).is_relative_to(function.code_dir)
    ]
    assert from_source == []
    deployer_pycs = {p for p in from_pyc if Path(p).is_relative_to(layer / "deployer")}
    assert len(deployer_pycs) == len(modules) > 20
    assert str(function.code_dir / "__pycache__" / "app.cpython-313.pyc") in from_pyc
    # AND nothing was written next to the build (it works from a read-only directory)
    assert "# wrote " not in done.stderr
    assert sorted(str(p) for p in layer.rglob("__pycache__")) == pycaches_before


def test_every_function_is_built_by_the_same_makefile() -> None:
    # GIVEN the Makefile `sam build` runs for each function (Metadata BuildMethod: makefile)
    makefiles = {p.parent.name: p.read_text() for p in (REPOSITORY_ROOT / "functions").glob("*/Makefile")}
    handlers = {p.parent.name for p in (REPOSITORY_ROOT / "functions").glob("*/app.py")}
    # THEN every function has one, and they are one file (a fix in one is made in all)
    assert makefiles.keys() == handlers
    assert len(set(makefiles.values())) == 1


# -- the functions ------------------------------------------------------------------------------


def test_each_function_packages_only_its_handler(build_dir: Path, functions: dict[str, BuiltFunction]) -> None:
    # GIVEN every function of the build (CodeUri names its own folder, not the repository)
    assert {"OnPushFunction", "OnBuildFunction"} <= functions.keys()
    # WHEN their code folders are listed
    contents = {
        name: sorted(str(p.relative_to(f.code_dir)) for p in files_under(f.code_dir)) for name, f in functions.items()
    }
    # THEN each holds app.py alone, with its bytecode (no Makefile, nothing else of the folder)
    assert contents == {name: ["__pycache__/app.cpython-313.pyc", "app.py"] for name in functions}
    assert all(f.code_dir.parent == build_dir.resolve() for f in functions.values())


def test_each_function_imports_with_only_its_code_and_the_layer(functions: dict[str, BuiltFunction]) -> None:
    # GIVEN each function's environment (values the template cannot know locally are stand-ins)
    code = """
        import json, app
        print(json.dumps({"app": app.__file__, "handler": callable(getattr(app, "lambda_handler", None))}))
    """
    started = {}
    for name, function in functions.items():
        env = {
            "PATH": "/usr/bin:/bin",
            "AWS_DEFAULT_REGION": "eu-west-1",
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "POWERTOOLS_TRACE_DISABLED": "true",
            **function.environment,
            **dict.fromkeys(function.unresolved, "stand-in"),
        }
        # WHEN `import app` runs with only its code folder and its layers on sys.path (all at once)
        started[name] = subprocess.Popen(
            localrun.isolated_python(function.python_path, textwrap.dedent(code)),
            env=env,
            cwd=function.code_dir,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    failures = {}
    for name, process in started.items():
        out, err = process.communicate(timeout=60)
        if process.returncode != 0:
            failures[name] = err.strip().splitlines()[-1:]
            continue
        seen = json.loads(out.splitlines()[-1])
        if Path(seen["app"]).parent != functions[name].code_dir or not seen["handler"]:
            failures[name] = [f"imported {seen}"]
    # THEN every handler module imports from its own folder and exposes lambda_handler
    assert failures == {}


def test_each_function_with_its_layers_fits_lambdas_unzipped_size_limit(functions: dict[str, BuiltFunction]) -> None:
    sizes = {
        name: sum(p.stat().st_size for d in (f.code_dir, *f.layer_dirs) for p in files_under(d))
        for name, f in functions.items()
    }
    assert {name: size for name, size in sizes.items() if size >= LAMBDA_UNZIPPED_LIMIT} == {}


def test_the_built_template_names_the_resources_provisioning_creates(build_dir: Path) -> None:
    # GIVEN the build resolved for environment "test", with no names given
    functions = localrun.built_functions(build_dir, parameters={"Environment": "test"})
    # THEN the functions' tables and bus are the ones deployer_local.provision creates (no drift)
    expected = DeployerNames("test").env()
    for function in functions.values():
        assert {k: function.environment.get(k) for k in expected} == expected
        assert function.function_name.startswith("ecs-deployer-test-")


# -- the local runner loads a build as Lambda does ----------------------------------------------


def fake_build(tmp_path: Path, handler_code: str, layer_files: Mapping[str, str] | None = None) -> Path:
    """A minimal `sam build` output: one function (CodeUri Fn) with one layer (Lib)."""
    build = tmp_path / "build"
    (build / "Fn").mkdir(parents=True)
    (build / "Fn" / "app.py").write_text(textwrap.dedent(handler_code))
    (build / "Lib" / "python").mkdir(parents=True)
    for name, text in (layer_files or {}).items():
        (build / "Lib" / "python" / name).write_text(textwrap.dedent(text))
    template = {
        "Parameters": {"Environment": {"Type": "String", "Default": "dev"}},
        "Globals": {
            "Function": {
                "Runtime": "python3.13",
                "Timeout": 3,
                "MemorySize": 256,
                "Layers": [{"Ref": "Lib"}],
                "Environment": {"Variables": {"STAGE": {"Ref": "Environment"}}},
            }
        },
        "Resources": {
            "Lib": {"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "Lib"}},
            "Fn": {
                "Type": "AWS::Serverless::Function",
                "Properties": {
                    "CodeUri": "Fn",
                    "Handler": "app.handler",
                    "FunctionName": {"Fn::Sub": "demo-${Environment}"},
                },
            },
        },
    }
    (build / "template.yaml").write_text(json.dumps(template))  # JSON is YAML
    return build


def test_a_dependency_missing_from_the_layer_fails_as_in_lambda(tmp_path: Path) -> None:
    # GIVEN a handler that imports yaml, which the test virtualenv has and this layer lacks
    build = fake_build(tmp_path, "import yaml\ndef handler(event, context):\n    return 1\n")
    # WHEN it is invoked
    result = localrun.invoke("Fn", {}, env={}, build_dir=build)
    # THEN the import fails as Lambda reports it
    assert result.error is not None
    assert result.error["errorType"] == "Runtime.ImportModuleError"
    assert result.error["errorMessage"] == "Unable to import module 'app': No module named 'yaml'"


def test_the_handler_gets_a_lambda_context_and_environment_and_nothing_of_this_process(tmp_path: Path) -> None:
    # GIVEN a handler reporting what it sees, with a helper module from its layer
    handler = """
        import os, sys, helper
        def handler(event, context):
            print("a line of log")
            return {
                "event": event,
                "helper": helper.__file__,
                "name": context.function_name,
                "memory": context.memory_limit_in_mb,
                "arn": context.invoked_function_arn,
                "request_id": context.aws_request_id,
                "remaining_ms": context.get_remaining_time_in_millis(),
                "env": dict(os.environ),
                "path": sys.path,
            }
    """
    build = fake_build(tmp_path, handler, {"helper.py": "X = 1\n"})
    # WHEN it is invoked in environment "test" with the moto endpoint
    result = localrun.invoke(
        "Fn",
        {"hello": "world"},
        env={"AWS_ENDPOINT_URL": "http://127.0.0.1:5000"},
        build_dir=build,
        parameters={"Environment": "test"},
    )
    # THEN it ran as demo-test with a Lambda-like context
    assert result.error is None, result.logs
    seen = result.payload
    assert seen["event"] == {"hello": "world"}
    assert seen["name"] == "demo-test"
    assert seen["memory"] == "256"
    assert seen["arn"] == "arn:aws:lambda:eu-west-1:123456789012:function:demo-test"
    assert seen["request_id"] == result.request_id
    assert 0 < seen["remaining_ms"] <= 3000
    assert result.logs == "a line of log\n"
    # AND Lambda's variables, the template's, and the caller's, with fake credentials
    env = seen["env"]
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "demo-test"
    assert env["_HANDLER"] == "app.handler"
    assert env["STAGE"] == "test"
    assert env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
    assert env["POWERTOOLS_TRACE_DISABLED"] == "true"
    assert env["AWS_ACCESS_KEY_ID"] == "testing"
    assert "VIRTUAL_ENV" not in env
    assert "PYTEST_CURRENT_TEST" not in env
    # AND sys.path is the code, then the layer, then the standard library only
    code_dir, layer_dir = (build / "Fn").resolve(), (build / "Lib" / "python").resolve()
    assert seen["path"][:2] == [str(code_dir), str(layer_dir)]
    assert Path(seen["helper"]).parent == layer_dir
    assert not any("site-packages" in entry for entry in seen["path"])


def test_a_handler_that_raises_is_reported_like_lambda_and_the_call_returns(tmp_path: Path) -> None:
    build = fake_build(tmp_path, "def handler(event, context):\n    raise ValueError('boom')\n")
    result = localrun.invoke("Fn", {}, env={}, build_dir=build)
    assert result.payload is None
    assert result.error is not None
    assert result.error["errorType"] == "ValueError"
    assert result.error["errorMessage"] == "boom"
    assert any("raise ValueError" in frame for frame in result.error["stackTrace"])
    assert result.logs.startswith("[ERROR] ValueError: boom")


def test_a_handler_past_its_timeout_is_killed_and_reported_like_lambda(tmp_path: Path) -> None:
    # GIVEN a handler that logs, then hangs
    handler = "import time\ndef handler(event, context):\n    print('started')\n    time.sleep(60)\n"
    build = fake_build(tmp_path, handler)
    # WHEN it is invoked with a one-second timeout
    began = time.monotonic()
    result = localrun.invoke("Fn", {}, env={}, build_dir=build, timeout=1)
    # THEN it is killed after that second, and the error says so as Lambda's does
    assert time.monotonic() - began < 10
    assert result.error is not None
    assert result.error["errorType"] == "Sandbox.Timedout"
    assert result.error["errorMessage"].endswith("Task timed out after 1.00 seconds")
    assert result.logs == "started\n"


def test_a_missing_build_says_to_run_make_build(tmp_path: Path) -> None:
    with pytest.raises(LocalRunError, match="make build"):
        localrun.invoke("OnPushFunction", {}, env={}, build_dir=tmp_path / "nothing")
