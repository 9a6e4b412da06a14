"""The Docker-free `sam local invoke`: run a function exactly as `sam build` packaged it, as
Lambda would load it.

Each invoke is a fresh interpreter (a cold start) started with `-I -S`, whose `sys.path` is only
the function's code directory, then its layers' `python/` directories, then the standard
library. Neither the repository's virtualenv nor `layers/deployer` is visible, so a module
missing from the build, or a dependency missing from the layer, fails here as it would in Lambda.

One thing cannot run as built: Lambda runs arm64, and the layer's compiled extensions
(pydantic_core, and the optional speed-ups of PyYAML and wrapt) are built for aarch64. On
another host, each such extension module, and nothing else, is loaded from this machine's
build of the same distribution at the same version; the Python code around it still comes from
the layer. `InvokeResult.notes` says when that happened.

The child prints nothing of its own on stdout: the function's output (Powertools' JSON log
lines) is the log, and the result travels on a separate pipe.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import importlib.metadata
import json
import os
import platform
import re
import selectors
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from deployer_local.provision import DeployerNames

__all__ = [
    "DEFAULT_BUILD_DIR",
    "INIT_TIMEOUT_SECONDS",
    "BuiltFunction",
    "InvokeResult",
    "LocalRunError",
    "built_functions",
    "invoke",
    "isolated_python",
    "resource_names",
]

DEFAULT_BUILD_DIR = Path(".aws-sam/build")
INIT_TIMEOUT_SECONDS = 10.0
"""Lambda's limit on a function's init phase (starting the runtime and importing the handler).
Past it, Lambda runs the init again within the invoke's timeout: a local init may take both."""
DEFAULT_REGION = "eu-west-1"
PYCACHE_DIR = Path(tempfile.gettempdir()) / "deployer-localrun-pycache"
"""Bytecode of what the local runs import: kept out of the build output, which `sam deploy` zips."""
LOCAL_ACCOUNT = "123456789012"
"""moto's default account: ARNs built here match the ones moto returns."""
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}


class LocalRunError(Exception):
    """The build output is missing, or the function cannot be run here as asked."""


# -- what `sam build` produced ------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltFunction:
    """One function of the build, resolved for a local run."""

    logical_id: str
    function_name: str
    code_dir: Path
    handler: str
    runtime: str
    architecture: str
    layer_dirs: tuple[Path, ...]
    """The layers' `python/` directories, in the order of the function's `Layers`."""
    environment: dict[str, str]
    """Globals and the function's own variables, intrinsic values resolved."""
    unresolved: dict[str, str]
    """Variables whose value could not be resolved, and why; `invoke`'s `env` must set them."""
    timeout: int
    memory_size: int
    log_group: str

    @property
    def python_path(self) -> list[Path]:
        """`sys.path` before the standard library: the code, then the layers, where a later layer
        comes first (Lambda extracts layers in order into /opt, a later one overwriting)."""
        entries = [self.code_dir]
        for layer in reversed(self.layer_dirs):
            entries.append(layer)
            site_packages = layer / "lib" / self.runtime / "site-packages"
            if site_packages.is_dir():
                entries.append(site_packages)
        return entries


def built_functions(
    build_dir: Path = DEFAULT_BUILD_DIR,
    *,
    names: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
    region: str = DEFAULT_REGION,
    account: str = LOCAL_ACCOUNT,
) -> dict[str, BuiltFunction]:
    """Logical id -> function, from `build_dir/template.yaml` (what `sam build` wrote).

    `names` maps a logical id (or `LogicalId.Attribute` for `Fn::GetAtt`) to its physical value,
    e.g. `{"DeployerTable": "ecs-deployer-test"}`; `parameters` overrides the template's
    parameter defaults. A resource missing from `names` whose template sets its name
    (`TableName`, `Name`, `LogGroupName`) resolves to that name."""
    build_dir = Path(build_dir)
    template = _load_built_template(build_dir)
    resolver = _Resolver(template, names or {}, parameters or {}, region, account)
    resources: dict[str, Any] = template.get("Resources") or {}
    glob = (template.get("Globals") or {}).get("Function") or {}
    functions: dict[str, BuiltFunction] = {}
    for logical_id, resource in resources.items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props: dict[str, Any] = resource.get("Properties") or {}
        if props.get("PackageType", "Zip") != "Zip":
            continue
        functions[logical_id] = _built_function(
            build_dir, logical_id, props=props, glob=glob, resources=resources, resolver=resolver
        )
    return functions


def _load_built_template(build_dir: Path) -> dict[str, Any]:
    import yaml

    path = build_dir / "template.yaml"
    if not path.is_file():
        raise LocalRunError(f"no build output at {build_dir} ({path.name} is missing): run `make build` first")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise LocalRunError(f"{path} is not the template `sam build` writes ({exc}): run `make build` again") from exc
    if not isinstance(data, dict):
        raise LocalRunError(f"{path} is not a CloudFormation template: run `make build` again")
    return data


def _built_function(
    build_dir: Path,
    logical_id: str,
    *,
    props: Mapping[str, Any],
    glob: Mapping[str, Any],
    resources: Mapping[str, Any],
    resolver: _Resolver,
) -> BuiltFunction:
    def setting(key: str, default: Any) -> Any:
        return props.get(key, glob.get(key, default))

    code_uri = props.get("CodeUri")
    if not isinstance(code_uri, str):
        raise LocalRunError(f"{logical_id} has no local CodeUri in {build_dir}/template.yaml: run `make build` again")
    code_dir = (build_dir / code_uri).resolve()
    if not code_dir.is_dir():
        raise LocalRunError(f"{logical_id}'s code is missing from the build ({code_dir}): run `make build`")
    handler = setting("Handler", None)
    if not isinstance(handler, str) or "." not in handler:
        raise LocalRunError(f"{logical_id} has no handler like app.lambda_handler (Handler: {handler!r})")

    layers = [*(glob.get("Layers") or []), *(props.get("Layers") or [])]  # SAM: Globals first
    layer_dirs = tuple(_layer_dir(build_dir, logical_id, layer, resources) for layer in layers)

    variables: dict[str, Any] = {
        **((glob.get("Environment") or {}).get("Variables") or {}),
        **((props.get("Environment") or {}).get("Variables") or {}),
    }
    environment: dict[str, str] = {}
    unresolved: dict[str, str] = {}
    for name, value in variables.items():
        try:
            environment[name] = resolver.resolve(value)
        except _Unresolved as exc:
            unresolved[name] = str(exc)

    function_name = _resolved_or(resolver, props.get("FunctionName"), logical_id)
    log_group = _resolved_or(
        resolver, (props.get("LoggingConfig") or {}).get("LogGroup"), f"/aws/lambda/{function_name}"
    )
    architectures = setting("Architectures", ["x86_64"]) or ["x86_64"]
    return BuiltFunction(
        logical_id=logical_id,
        function_name=function_name,
        code_dir=code_dir,
        handler=handler,
        runtime=str(setting("Runtime", "")),
        architecture=str(architectures[0]),
        layer_dirs=layer_dirs,
        environment=environment,
        unresolved=unresolved,
        timeout=int(setting("Timeout", 3)),
        memory_size=int(setting("MemorySize", 128)),
        log_group=log_group,
    )


def _layer_dir(build_dir: Path, function: str, layer: Any, resources: Mapping[str, Any]) -> Path:
    ref = layer.get("Ref") if isinstance(layer, dict) else None
    resource = resources.get(ref) if isinstance(ref, str) else None
    if resource is None or resource.get("Type") not in {"AWS::Serverless::LayerVersion", "AWS::Lambda::LayerVersion"}:
        raise LocalRunError(
            f"{function} uses layer {layer!r}, which is not built here: only the template's own layers run"
        )
    props = resource.get("Properties") or {}
    content = props.get("ContentUri", props.get("Content"))
    if not isinstance(content, str):
        raise LocalRunError(f"layer {ref} has no local content in the build: run `make build` again")
    python_dir = (build_dir / content / "python").resolve()
    if not python_dir.is_dir():
        raise LocalRunError(f"layer {ref} is not built ({python_dir} is missing): run `make build`")
    return python_dir


def _resolved_or(resolver: _Resolver, value: Any, default: str) -> str:
    if value is None:
        return default
    try:
        return resolver.resolve(value)
    except _Unresolved:
        return default


def resource_names(names: DeployerNames) -> dict[str, str]:
    """The `names` mapping for the deployer's own resources provisioned under `names`."""
    return {"DeployerTable": names.table, "ConfigTable": names.config_table, "DeployerBus": names.bus}


# -- intrinsic functions ------------------------------------------------------------------------


class _Unresolved(Exception):
    """An intrinsic value this local run cannot know; the message says which."""


# Resource types whose `Ref` is the name their template sets.
_NAME_PROPERTY = {
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::SSM::Parameter": "Name",
    "AWS::Serverless::Function": "FunctionName",
}
_ARN_FORMATS = {
    "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{name}",
    "AWS::Events::EventBus": "arn:aws:events:{region}:{account}:event-bus/{name}",
}
_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class _Resolver:
    def __init__(
        self,
        template: Mapping[str, Any],
        names: Mapping[str, str],
        parameters: Mapping[str, str],
        region: str,
        account: str,
    ) -> None:
        declared: Mapping[str, Any] = template.get("Parameters") or {}
        self._parameters = {
            name: _scalar(spec["Default"])
            for name, spec in declared.items()
            if isinstance(spec, dict) and "Default" in spec
        }
        self._parameters.update(parameters)
        self._pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": "local",
        }
        self._names = dict(names)
        self._resources: Mapping[str, Any] = template.get("Resources") or {}
        self._region = region
        self._account = account

    def resolve(self, value: Any) -> str:
        if isinstance(value, (str, int, float, bool)):
            return _scalar(value)
        if isinstance(value, dict) and len(value) == 1:
            ((function, argument),) = value.items()
            if function == "Ref":
                return self._ref(str(argument))
            if function == "Fn::GetAtt":
                target = argument.split(".", 1) if isinstance(argument, str) else argument
                if isinstance(target, list) and len(target) == 2:
                    return self._get_att(str(target[0]), str(target[1]))
            if function == "Fn::Sub" and (isinstance(argument, str) or len(argument) == 2):
                return self._sub(argument)
            if function == "Fn::Join" and isinstance(argument, list) and len(argument) == 2:
                return str(argument[0]).join(self.resolve(part) for part in argument[1])
        raise _Unresolved(f"{json.dumps(value)} is not something a local run resolves")

    def _ref(self, name: str) -> str:
        if name in self._names:
            return self._names[name]
        if name in self._parameters:
            return self._parameters[name]
        if name in self._pseudo:
            return self._pseudo[name]
        resource = self._resources.get(name)
        if resource is not None:
            prop = _NAME_PROPERTY.get(str(resource.get("Type")))
            value = (resource.get("Properties") or {}).get(prop) if prop else None
            if value is not None:
                return self.resolve(value)
            raise _Unresolved(f"Ref {name} (a {resource.get('Type')}): give its value in names={{'{name}': ...}}")
        raise _Unresolved(f"Ref {name}: no such parameter or resource")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        key = f"{logical_id}.{attribute}"
        if key in self._names:
            return self._names[key]
        resource = self._resources.get(logical_id) or {}
        arn = _ARN_FORMATS.get(str(resource.get("Type")))
        if attribute == "Arn" and arn is not None:
            return arn.format(region=self._region, account=self._account, name=self._ref(logical_id))
        raise _Unresolved(f"Fn::GetAtt {key}: give its value in names={{'{key}': ...}}")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])

        def replace(match: re.Match[str]) -> str:
            name = match[1]
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return self.resolve(variables[name])
            if "." in name and not name.startswith("AWS::"):
                logical_id, attribute = name.split(".", 1)
                return self._get_att(logical_id, attribute)
            return self._ref(name)

        return _SUB_VARIABLE.sub(replace, str(text))


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- compiled extensions built for another architecture ----------------------------------------

_ELF_MACHINES = {62: "x86_64", 183: "aarch64", 3: "i386", 40: "arm"}


def _elf_machine(path: Path) -> str | None:
    try:
        with path.open("rb") as file:
            header = file.read(20)
    except OSError:
        return None
    if len(header) < 20 or header[:4] != b"\x7fELF":
        return None
    machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
    return _ELF_MACHINES.get(machine, f"machine {machine}")


def _host_machine() -> str | None:
    if not sys.platform.startswith("linux"):
        return None  # not ELF: every Linux build is foreign here
    machine = platform.machine().lower()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def _host_site_dirs() -> list[Path]:
    dirs = [*site.getsitepackages(), sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]]
    return list(dict.fromkeys(Path(d) for d in dirs if Path(d).is_dir()))


@dataclass(frozen=True)
class _Substitute:
    module: str
    path: str | None
    note: str


def _native_substitutes(search_dirs: tuple[Path, ...]) -> tuple[_Substitute, ...]:
    key = tuple((str(d), _stamp(d)) for d in search_dirs)
    return _native_substitutes_cached(key)


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = path.stat()
    except OSError:
        return (0, 0)
    return (stat.st_ino, stat.st_mtime_ns)


_SUBSTITUTES_CACHE: dict[tuple[tuple[str, tuple[int, int]], ...], tuple[_Substitute, ...]] = {}


def _native_substitutes_cached(key: tuple[tuple[str, tuple[int, int]], ...]) -> tuple[_Substitute, ...]:
    if key not in _SUBSTITUTES_CACHE:
        _SUBSTITUTES_CACHE[key] = tuple(_find_substitutes([Path(d) for d, _ in key]))
    return _SUBSTITUTES_CACHE[key]


def _find_substitutes(search_dirs: list[Path]) -> Iterator[_Substitute]:
    host = _host_machine()
    seen: set[Path] = set()
    for top in search_dirs:
        for library in sorted(top.rglob("*.so")):
            if library in seen:
                continue
            seen.add(library)
            machine = _elf_machine(library)
            if machine is None or machine == host:
                continue
            base = max((d for d in search_dirs if library.is_relative_to(d)), key=lambda d: len(d.parts))
            relative = library.relative_to(base)
            parts = [*relative.parent.parts, library.name.split(".", 1)[0]]
            if not all(part.isidentifier() for part in parts):
                continue  # a shared library beside the modules, not an importable module
            yield _substitute(".".join(parts), relative, base, machine)


def _substitute(module: str, relative: Path, base: Path, machine: str) -> _Substitute:
    here = _host_machine() or sys.platform
    owner = _owning_distribution(base, relative)
    wanted = f"{owner.metadata['Name']} {owner.version}" if owner else relative.parts[0]
    stem = relative.parent / relative.name.split(".", 1)[0]
    host_build = next(
        (
            site_dir / f"{stem}{suffix}"
            for site_dir in _host_site_dirs()
            for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if (site_dir / f"{stem}{suffix}").is_file()
        ),
        None,
    )
    if host_build is None:
        return _Substitute(
            module, None, f"{module} is built for {machine} and this host ({here}) has no build of {wanted}"
        )
    if owner is not None:
        try:
            host_version = importlib.metadata.version(str(owner.metadata["Name"]))
        except importlib.metadata.PackageNotFoundError:
            host_version = None
        if host_version != owner.version:
            return _Substitute(
                module,
                None,
                f"{module} is built for {machine}; this host's build is {owner.metadata['Name']} {host_version}, "
                f"the layer's {owner.version}: align the virtualenv with the lock (make venv)",
            )
    return _Substitute(
        module, str(host_build), f"{module}: the layer's {machine} build is replaced by {here}'s {wanted}"
    )


def _owning_distribution(base: Path, relative: Path) -> importlib.metadata.Distribution | None:
    wanted = relative.as_posix()
    for dist in importlib.metadata.distributions(path=[str(base)]):
        if any(str(f) == wanted for f in dist.files or ()):
            return dist
    return None


# -- invoking -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class InvokeResult:
    function: str
    payload: Any
    """The handler's return value, JSON-decoded; None when it raised."""
    error: dict[str, Any] | None
    """errorType, errorMessage, stackTrace (as Lambda reports them) when the invoke failed."""
    logs: str
    """Everything the function printed (stdout and stderr)."""
    duration_ms: float
    request_id: str = ""
    notes: tuple[str, ...] = field(default=())
    """What differed from Lambda in this run (compiled extensions swapped for this host's)."""

    @property
    def ok(self) -> bool:
        return self.error is None

    def log_lines(self) -> list[str]:
        return [line for line in self.logs.splitlines() if line.strip()]

    def json_logs(self) -> list[dict[str, Any]]:
        """The log lines that are JSON objects (Powertools' records and metrics)."""
        records = []
        for line in self.log_lines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records


def invoke(
    function: str,
    event: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    build_dir: Path = DEFAULT_BUILD_DIR,
    timeout: float | None = None,
    names: Mapping[str, str] | None = None,
    parameters: Mapping[str, str] | None = None,
) -> InvokeResult:
    """Invoke the built `function` (logical id or function name) with `event` in a fresh
    interpreter, and wait for it at most `timeout` seconds (default: the template's Timeout).

    `env` comes last: it sets what the template cannot know here (AWS_ENDPOINT_URL, values of
    unresolved variables) and may override anything, credentials included."""
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    functions = built_functions(build_dir, names=names, parameters=parameters, region=region)
    built = functions.get(function) or next((f for f in functions.values() if f.function_name == function), None)
    if built is None:
        raise LocalRunError(f"no function {function!r} in the build; built: {', '.join(sorted(functions)) or 'none'}")
    _check_runtime(built)
    missing = {name: why for name, why in built.unresolved.items() if name not in env}
    if missing:
        listed = "; ".join(f"{name}: {why}" for name, why in sorted(missing.items()))
        raise LocalRunError(f"{built.logical_id}'s environment cannot be resolved here ({listed}); pass it in env")
    limit = float(timeout if timeout is not None else built.timeout)
    request_id = str(uuid.uuid4())
    substitutes = _native_substitutes(tuple(p.resolve() for p in built.python_path))
    child_env = _lambda_environment(built, region, env)
    with tempfile.TemporaryDirectory(prefix="deployer-invoke-") as scratch:
        config = {
            "handler": built.handler,
            "event": event,
            "request_id": request_id,
            "timeout": limit,
            "function_arn": f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT}:function:{built.function_name}",
        }
        config_file = Path(scratch) / "invoke.json"
        try:
            config_file.write_text(json.dumps(config), encoding="utf-8")
        except TypeError as exc:
            raise LocalRunError(f"the event is not JSON: {exc}") from exc
        run = _run_child(built, config_file, child_env, limit)
    notes = tuple(s.note for s in substitutes if s.path is not None and s.module in run.loaded)
    return _result(built, request_id, run, limit, notes)


def _check_runtime(built: BuiltFunction) -> None:
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if built.runtime != here:
        raise LocalRunError(
            f"{built.logical_id} runs {built.runtime or 'no runtime'}; this interpreter is {here}: "
            f"run the local invoke with the runtime's Python"
        )


def _lambda_environment(built: BuiltFunction, region: str, env: Mapping[str, str]) -> dict[str, str]:
    """What Lambda sets, over the function's own variables; `env` last. Nothing is inherited
    from this process, and the user's ~/.aws files are out of reach."""
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[$LATEST]{uuid.uuid4().hex}"
    reserved = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": str(built.code_dir),
        "AWS_EXECUTION_ENV": f"AWS_Lambda_{built.runtime}",
        "AWS_LAMBDA_FUNCTION_NAME": built.function_name,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(built.memory_size),
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_GROUP_NAME": built.log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": stream,
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "_HANDLER": built.handler,
        **FAKE_CREDENTIALS,
    }
    return {**built.environment, **reserved, "POWERTOOLS_TRACE_DISABLED": "true", **env}


@dataclass
class _ChildRun:
    logs: bytes = b""
    messages: list[dict[str, Any]] = field(default_factory=list)
    timed_out: str | None = None  # "init" or "invoke"
    returncode: int | None = None
    loaded: frozenset[str] = frozenset()


def isolated_python(search_path: Sequence[Path], code: str) -> list[str]:
    """The command line of a fresh interpreter that runs `code` seeing only `search_path`, then
    the standard library: how `invoke` runs a function. Compiled extensions built for another
    architecture are loaded from this host's build of the same version (see the module's doc);
    `code` finds the names of those it loaded in the list `substituted`."""
    paths = tuple(Path(p).resolve() for p in search_path)
    substitutes = _native_substitutes(paths)
    setup = {
        "path": [str(p) for p in paths],
        "substitutes": {s.module: s.path for s in substitutes if s.path is not None},
        "refusals": {s.module: s.note for s in substitutes if s.path is None},
    }
    return [
        sys.executable,
        "-I",  # no PYTHON* variables, no user site, no script directory on sys.path
        "-S",  # no site: the virtualenv's site-packages stay out of sys.path
        "-u",  # output reaches the pipe at once, and survives a kill
        "-X",
        f"pycache_prefix={PYCACHE_DIR}",  # never write __pycache__ into the build output
        "-c",
        _PRELUDE + code,
        json.dumps(setup),
    ]


def _run_child(built: BuiltFunction, config_file: Path, env: Mapping[str, str], limit: float) -> _ChildRun:
    read_fd, write_fd = os.pipe()
    command = [*isolated_python(built.python_path, _INVOKE), str(config_file), str(write_fd)]
    try:
        process = subprocess.Popen(  # noqa: S603 - this interpreter, fixed arguments
            command,
            cwd=built.code_dir,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=(write_fd,),
            start_new_session=True,
        )
    finally:
        os.close(write_fd)
    assert process.stdout is not None
    try:
        return _watch_child(process, read_fd, limit)
    except BaseException:  # stopped (Ctrl-C, SIGTERM...): the child, in a session of its own, goes too
        _kill(process)
        process.wait()
        process.stdout.close()
        raise


def _watch_child(process: subprocess.Popen[bytes], read_fd: int, limit: float) -> _ChildRun:
    assert process.stdout is not None
    run = _ChildRun()
    logs = bytearray()
    channel = bytearray()
    deadline = time.monotonic() + INIT_TIMEOUT_SECONDS + limit
    with selectors.DefaultSelector() as selector, os.fdopen(read_fd, "rb", buffering=0) as results:
        selector.register(process.stdout, selectors.EVENT_READ, logs)
        selector.register(results, selectors.EVENT_READ, channel)
        while selector.get_map():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                run.timed_out = "invoke" if _invoked(run) else "init"
                _kill(process)
                break
            for key, _ in selector.select(remaining):
                data = os.read(key.fd, 65536)
                if not data:
                    selector.unregister(key.fileobj)
                    continue
                key.data.extend(data)
                if key.data is channel:
                    was_invoked = _invoked(run)
                    _take_messages(channel, run)
                    if not was_invoked and _invoked(run):
                        deadline = time.monotonic() + limit
        if run.timed_out:
            logs.extend(_drain(process.stdout))
    process.stdout.close()
    run.returncode = process.wait()
    run.logs = bytes(logs)
    loaded = next((m.get("substituted") for m in run.messages if m.get("phase") == "result"), None) or []
    run.loaded = frozenset(loaded)
    return run


def _invoked(run: _ChildRun) -> bool:
    return any(m.get("phase") == "invoke" for m in run.messages)


def _take_messages(buffer: bytearray, run: _ChildRun) -> None:
    while b"\n" in buffer:
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        message = json.loads(line)
        if isinstance(message, dict):
            run.messages.append(message)


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def _drain(stream: Any) -> bytes:
    """What the killed child had written; never blocks (its whole session is dead)."""
    os.set_blocking(stream.fileno(), False)
    try:
        return bytes(stream.read() or b"")
    except OSError:
        return b""


def _result(
    built: BuiltFunction, request_id: str, run: _ChildRun, limit: float, notes: tuple[str, ...]
) -> InvokeResult:
    logs = run.logs.decode("utf-8", errors="replace")
    final = next((m for m in run.messages if m.get("phase") == "result"), None)
    if run.timed_out == "invoke":
        error: dict[str, Any] | None = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {request_id} Error: Task timed out after {limit:.2f} seconds",
        }
        return InvokeResult(built.logical_id, None, error, logs, limit * 1000, request_id, notes)
    if run.timed_out == "init":
        error = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {request_id} Error: Init timed out after {INIT_TIMEOUT_SECONDS + limit:.2f} "
            f"seconds ({INIT_TIMEOUT_SECONDS:.0f} s of init, then the invoke's {limit:.0f} s)",
        }
        return InvokeResult(built.logical_id, None, error, logs, 0.0, request_id, notes)
    if final is None:
        how = f"signal {-run.returncode}" if run.returncode and run.returncode < 0 else f"exit status {run.returncode}"
        error = {
            "errorType": "Runtime.ExitError",
            "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: {how}",
        }
        return InvokeResult(built.logical_id, None, error, logs, 0.0, request_id, notes)
    duration = float(final.get("duration_ms", 0.0))
    if final.get("error") is not None:
        return InvokeResult(built.logical_id, None, dict(final["error"]), logs, duration, request_id, notes)
    return InvokeResult(built.logical_id, json.loads(final["payload"]), None, logs, duration, request_id, notes)


# Run first in every isolated interpreter: argv[1] is the setup (search path, substitutes); the
# code that follows sees its own arguments from argv[1] on. Standard library only.
_PRELUDE = r"""
import importlib.machinery, importlib.util, json, sys

_setup = json.loads(sys.argv.pop(1))
sys.path[:0] = _setup["path"]
substituted = []


class _NativeSubstitutes:
    def find_spec(self, fullname, path=None, target=None):
        if fullname in _setup["refusals"]:
            raise ImportError(_setup["refusals"][fullname], name=fullname)
        location = _setup["substitutes"].get(fullname)
        if location is None:
            return None
        substituted.append(fullname)
        loader = importlib.machinery.ExtensionFileLoader(fullname, location)
        return importlib.util.spec_from_file_location(fullname, location, loader=loader)


sys.meta_path.insert(0, _NativeSubstitutes())
"""

# The invoke: argv is the config file and the result fd. It reports on the result fd, one JSON
# line each: {"phase": "invoke"} once the handler is imported, then {"phase": "result", ...}.
# Errors follow Lambda's Python runtime (awslambdaric).
_INVOKE = r"""
import decimal, importlib, os, time, traceback

config_file, result_fd = sys.argv[1], int(sys.argv[2])
with open(config_file, encoding="utf-8") as f:
    config = json.load(f)
channel = open(result_fd, "w", encoding="utf-8", buffering=1, closefd=True)


def send(message):
    channel.write(json.dumps(message) + "\n")
    channel.flush()


class LambdaContext:
    def __init__(self, deadline_ms):
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = config["function_arn"]
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.aws_request_id = config["request_id"]
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self.tenant_id = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        return max(0, self._deadline_ms - int(time.time() * 1000))

    def log(self, message):
        sys.stdout.write(str(message))

    def __repr__(self):
        return f"LambdaContext([aws_request_id={self.aws_request_id},function_name={self.function_name}])"


class Fault(Exception):
    def __init__(self, error_type, message, trace=None):
        super().__init__(message)
        self.error = {"errorType": error_type, "errorMessage": message, "stackTrace": trace or []}


def load_handler(handler):
    try:
        modname, fname = handler.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}")
    if modname.split(".")[0] in sys.builtin_module_names:
        raise Fault("Runtime.BuiltInModuleConflict", f"Cannot use built-in module {modname} as a handler module")
    try:
        module = importlib.import_module(modname.replace("/", "."))
    except ImportError as exc:
        raise Fault("Runtime.ImportModuleError", f"Unable to import module '{modname}': {exc}")
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault("Runtime.UserCodeSyntaxError", f"Syntax error in module '{modname}': {exc}", trace)
    except Exception as exc:
        raise Fault(type(exc).__name__, str(exc), traceback.format_list(traceback.extract_tb(exc.__traceback__)))
    try:
        return getattr(module, fname)
    except AttributeError:
        raise Fault("Runtime.HandlerNotFound", f"Handler '{fname}' missing on module '{modname}'")


def report_error(error):
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(frame.rstrip("\n") for frame in error["stackTrace"])
    sys.stderr.write("\r".join(lines) + "\n")


def encode(value):
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


try:
    handler = load_handler(config["handler"])
except Fault as fault:
    report_error(fault.error)
    send({"phase": "result", "error": fault.error, "duration_ms": 0.0, "substituted": substituted})
    sys.exit(0)

send({"phase": "invoke"})
context = LambdaContext(int(time.time() * 1000) + int(config["timeout"] * 1000))
started = time.perf_counter()
try:
    result = handler(config["event"], context)
except Exception as exc:
    duration = (time.perf_counter() - started) * 1000
    error = {
        "errorType": type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_list(traceback.extract_tb(exc.__traceback__)),
        "requestId": config["request_id"],
    }
    report_error(error)
    send({"phase": "result", "error": error, "duration_ms": duration, "substituted": substituted})
else:
    duration = (time.perf_counter() - started) * 1000
    try:
        payload = json.dumps(result, default=encode, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        message = f"Unable to marshal response: {exc}"
        error = {"errorType": "Runtime.MarshalError", "errorMessage": message, "stackTrace": []}
        report_error(error)
        send({"phase": "result", "error": error, "duration_ms": duration, "substituted": substituted})
    else:
        send({"phase": "result", "payload": payload, "duration_ms": duration, "substituted": substituted})
"""
