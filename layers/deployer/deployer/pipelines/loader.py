"""Reading the pipelines file with every error located: YAML parsed with bounds (size, nodes,
depth) and each node's line kept, the schema applied, then the checks across fields; and the
published JSON form.

- `check_config_text(text, source)` -> `CheckResult` with the config (or None), every error and
  every warning, each with its path and YAML line.
- `load_config_text(text, source)` -> `PipelinesConfig`, or `ConfigError` listing every error.
- `to_published_json` / `from_published_json`: the published form, validated again on the way in.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from deployer import settings as deploy_settings
from deployer.errors import ConfigError
from deployer.pipelines.overrides import before_overrides, overrides_chars
from deployer.pipelines.schema import (
    _ECS_NAME_RE,
    DEFAULT_EVENT_BUS,
    DEFAULT_SCHEDULE_GROUP,
    HOOK_STRATEGIES,
    MAX_OVERRIDES_CHARS,
    MAX_SERVICES_PER_STAGE,
    NO_SOURCE,
    ONE_CIRCUIT_BREAKER,
    ONE_CONTAINER_KEY,
    ONE_SERVICE_KEY,
    ONE_SOURCE,
    REPOSITORY_AND_SOURCE,
    SOURCE_PROVIDERS,
    CircuitBreakerShorthand,
    PipelinesConfig,
    Rollout,
    Stage,
    _short,
    default_deadline_minutes,
    expected_minutes,
)
from deployer.rollout.validate import validate as validate_rollout

if TYPE_CHECKING:
    import yaml

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_PUBLISHED_BYTES",
    "MAX_YAML_NODES",
    "CheckResult",
    "Problem",
    "check_config_text",
    "format_path",
    "from_published_json",
    "load_config_text",
    "to_published_json",
    "to_yaml",
]

# A pipeline takes about 1 KiB of YAML, so a few dozen take a few tens of KiB. The limit keeps the
# published JSON within one DynamoDB item (400 KB) and bounds the time of PyYAML's pure-Python
# parser (about 100 KiB per second on hostile input).
MAX_CONFIG_BYTES = 256 * 1024
# The published item holds the JSON plus a few short attributes; DynamoDB's item limit is 400 KB.
MAX_PUBLISHED_BYTES = 380_000
# Bounds what anchors and aliases may expand to (the "billion laughs" document is 1 KiB of YAML).
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 64
MAX_PROBLEMS = 1000  # reported per kind; the rest are counted

Loc = tuple[str | int, ...]


# --------------------------------------------------------------------------------------------
# Problems and results
# --------------------------------------------------------------------------------------------


def format_path(loc: Sequence[str | int]) -> str:
    """('pipelines', 0, 'stages', 1, 'name') -> 'pipelines[0].stages[1].name'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


@dataclass(frozen=True)
class Problem:
    """One error or warning: where (path and YAML line, when known) and what."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def format(self, source: str) -> str:
        where = source
        if self.line is not None:
            where += f":{self.line}" + (f":{self.column}" if self.column is not None else "")
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class CheckResult:
    """What `check_config_text` found: the config when there is no error, and every problem."""

    source: str
    config: PipelinesConfig | None
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()

    @property
    def valid(self) -> bool:
        return self.config is not None and not self.errors

    @property
    def error_messages(self) -> list[str]:
        return [p.format(self.source) for p in self.errors]

    @property
    def warning_messages(self) -> list[str]:
        return [p.format(self.source) for p in self.warnings]

    def raise_for_errors(self) -> PipelinesConfig:
        if self.config is None or self.errors:
            count = len(self.errors)
            raise ConfigError(
                f"{self.source}: {count} error{'s' if count != 1 else ''} in the pipelines configuration",
                self.error_messages,
            )
        return self.config


# --------------------------------------------------------------------------------------------
# YAML: compose the node tree ourselves, to know each path's line, refuse duplicate keys and
# bound what aliases expand to. PyYAML is imported here, where YAML is read or written: the
# functions read the published JSON and never import it.
# --------------------------------------------------------------------------------------------

_STANDARD_SCALAR_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "timestamp")
)
_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _TooLarge(Exception):
    pass


class _YamlReader:
    """Turns a composed YAML node tree into plain data, remembering the line of every path."""

    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}
        self.problems: list[Problem] = []
        self.unreadable: set[Loc] = set()  # values replaced by None after a problem
        self._nodes = 0
        from yaml.constructor import SafeConstructor

        self._constructor = SafeConstructor()

    def _problem(self, loc: Loc, node: yaml.Node, message: str) -> None:
        self.problems.append(Problem(format_path(loc), message, node.start_mark.line + 1))

    def _unreadable(self, loc: Loc, node: yaml.Node, message: str) -> None:
        self._problem(loc, node, message)
        self.unreadable.add(loc)

    def read(self, node: yaml.Node, loc: Loc = (), depth: int = 0, active: frozenset[int] = frozenset()) -> Any:
        import yaml

        self._nodes += 1
        if self._nodes > MAX_YAML_NODES:
            raise _TooLarge
        self.lines.setdefault(loc, node.start_mark.line + 1)
        if depth > MAX_YAML_DEPTH:
            self._unreadable(loc, node, f"nested deeper than {MAX_YAML_DEPTH} levels")
            return None
        if id(node) in active:
            self._unreadable(loc, node, "an alias refers to a node that contains it (a recursive structure)")
            return None
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node, loc)
        active = active | {id(node)}
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _SEQ_TAG:
                self._unreadable(loc, node, f"unsupported tag {node.tag!r}")
                return None
            return [self.read(item, (*loc, i), depth + 1, active) for i, item in enumerate(node.value)]
        if isinstance(node, yaml.MappingNode):
            if node.tag != _MAP_TAG:
                self._unreadable(loc, node, f"unsupported tag {node.tag!r}")
                return None
            return self._mapping(node, loc, depth, active)
        self._unreadable(loc, node, "unsupported YAML node")  # pragma: no cover - composer makes only these
        return None

    def _scalar(self, node: yaml.ScalarNode, loc: Loc) -> Any:
        if node.tag not in _STANDARD_SCALAR_TAGS:
            self._unreadable(loc, node, f"unsupported tag {node.tag!r}")
            return None
        try:
            return self._constructor.construct_object(node, deep=True)
        except Exception as exc:  # PyYAML raises ValueError for dates like 2024-13-45
            self._unreadable(loc, node, f"cannot read the value {node.value!r}: {exc}")
            return None

    def _mapping(self, node: yaml.MappingNode, loc: Loc, depth: int, active: frozenset[int]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        explicit: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                for source in self._merge_sources(value_node, loc):
                    value = self.read(source, loc, depth + 1, active)
                    if isinstance(value, dict):
                        for key, item in value.items():
                            merged.setdefault(key, item)
                continue
            key = self._key(key_node, loc)
            if key is None:
                continue
            line = key_node.start_mark.line + 1
            if key in first_line:
                self._problem(
                    (*loc, key),
                    key_node,
                    f"duplicate key (first at line {first_line[key]}); YAML would silently keep the last one",
                )
                continue
            first_line[key] = line
            explicit[key] = self.read(value_node, (*loc, key), depth + 1, active)
            self.lines[(*loc, key)] = line
        return {**merged, **explicit}

    def _merge_sources(self, node: yaml.Node, loc: Loc) -> list[yaml.Node]:
        import yaml

        if isinstance(node, yaml.MappingNode):
            return [node]
        if isinstance(node, yaml.SequenceNode) and all(isinstance(n, yaml.MappingNode) for n in node.value):
            return list(node.value)
        self._problem(loc, node, "a merge key (<<) takes a mapping or a list of mappings")
        return []

    def _key(self, node: yaml.Node, loc: Loc) -> str | None:
        import yaml

        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:str":
            return str(node.value)
        shown = repr(node.value) if isinstance(node, yaml.ScalarNode) else "a list or mapping"
        self._problem(loc, node, f"keys must be strings, got {shown}")
        return None


def _yaml_error_problem(exc: yaml.YAMLError, text: str) -> Problem:
    import yaml

    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or "invalid YAML"
        if "'\\t'" in problem:
            problem = "a tab character: YAML indents and separates with spaces only"
        elif isinstance(exc, yaml.composer.ComposerError) and "another document" in problem:
            problem = "more than one YAML document ('---'): the pipelines file is a single document"
        elif exc.context:
            problem = f"{exc.context}: {problem}"
        if mark is not None and _unquoted_arn_with_colon_at_end(text, mark.line):
            problem += (
                ": a value ending in ':' must be quoted (YAML reads a final ':' as a key), as a Secrets Manager "
                'reference with a JSON key does: "arn:aws:secretsmanager:...:secret:NAME:KEY::"'
            )
        if mark is not None:
            return Problem("", f"YAML syntax: {problem}", mark.line + 1, mark.column + 1)
        return Problem("", f"YAML syntax: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        return Problem(
            "",
            f"YAML syntax: the character #x{exc.character:04x} is not allowed",
            before.count("\n") + 1,
            exc.position - (before.rfind("\n") + 1) + 1,
        )
    return Problem("", f"YAML syntax: {exc}")


def _unquoted_arn_with_colon_at_end(text: str, line: int) -> bool:
    lines = text.splitlines()
    if not 0 <= line < len(lines):
        return False
    value = lines[line].split("#", 1)[0].rstrip()
    return "arn:" in value and value.endswith(":") and '"' not in value and "'" not in value


@functools.cache
def _bounded_loader() -> type[yaml.SafeLoader]:
    import yaml

    class _BoundedLoader(yaml.SafeLoader):
        """Refuses deep flow nesting while scanning: PyYAML's scanner does work quadratic in the
        flow depth, so a mebibyte of '[' would otherwise take hours."""

        def fetch_flow_collection_start(self, TokenClass: Any) -> None:
            if self.flow_level >= MAX_YAML_DEPTH:
                raise yaml.scanner.ScannerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.get_mark()
                )
            super().fetch_flow_collection_start(TokenClass)

    return _BoundedLoader


@dataclass(frozen=True)
class _Parsed:
    data: Any
    lines: Mapping[Loc, int] = field(default_factory=dict)
    problems: Sequence[Problem] = ()
    unreadable: frozenset[Loc] = frozenset()


def _parse_yaml(text: str) -> _Parsed:
    """The document as plain data, the line of every path, and the problems YAML itself has."""
    import yaml

    try:
        root = yaml.compose(text, Loader=_bounded_loader())
    except yaml.YAMLError as exc:
        return _Parsed(None, problems=[_yaml_error_problem(exc, text)])
    except RecursionError:
        return _Parsed(None, problems=[Problem("", "YAML nested too deeply")])
    if root is None:
        return _Parsed(None, problems=[Problem("", "the file is empty: expected a mapping with a `pipelines` list")])
    reader = _YamlReader()
    try:
        data = reader.read(root)
    except _TooLarge:
        return _Parsed(
            None,
            problems=[
                Problem(
                    "",
                    f"the document holds more than {MAX_YAML_NODES} values "
                    "(after expanding anchors and aliases): refused",
                )
            ],
        )
    return _Parsed(data, reader.lines, reader.problems, frozenset(reader.unreadable))


# --------------------------------------------------------------------------------------------
# Validation: the schema (pydantic), then the cross-checks and rollouts, each on what is valid.
# --------------------------------------------------------------------------------------------


def _known_keys() -> set[str]:
    keys: set[str] = set()
    models: list[type[BaseModel]] = [PipelinesConfig]
    seen: set[type[BaseModel]] = set()
    while models:
        model = models.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            keys.add(info.alias or name)
            for arg in _types_in(info.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    models.append(arg)
    return keys


def _types_in(annotation: Any) -> Iterator[Any]:
    yield annotation
    for arg in getattr(annotation, "__args__", ()):
        yield from _types_in(arg)


_KNOWN_KEYS = _known_keys()


def _humanize(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        key = str(error["loc"][-1]) if error["loc"] else ""
        close = difflib.get_close_matches(key, sorted(_KNOWN_KEYS), n=1, cutoff=0.75)
        hint = f": did you mean {close[0]!r}?" if close else ""
        return f"unknown key{hint}"
    if kind == "missing":
        return "required key missing"
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    message = str(error["msg"])
    if kind == "too_long" and error["loc"] and error["loc"][-1] == "services":
        return (
            f"{len(value) if isinstance(value, list) else 'too many'} services: a stage deploys at most "
            f"{MAX_SERVICES_PER_STAGE} (each costs about four ECS calls inside a function's 30-second timeout); "
            "split them over stages"
        )
    if kind == "too_short":
        least = error.get("ctx", {}).get("min_length", 1)
        return f"needs at least {least} entr{'y' if least == 1 else 'ies'}"
    if value is None:
        return f"empty value (null): {message[0].lower()}{message[1:]}"
    if kind == "string_type" and value is not None and not isinstance(value, dict | list):
        return (
            f"expected a string, got {_short(value)}: YAML reads true/false/yes/no/on/off, numbers "
            "and dates as such, so quote the value"
        )
    if kind in {"model_type", "model_attributes_type", "dict_type"}:
        return f"expected a mapping, got {_short(value)}"
    if kind == "list_type":
        return f"expected a list, got {_short(value)}"
    return f"{message} (got {_short(value)})"


def _line_for(loc: Loc, lines: Mapping[Loc, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


class _Checker:
    def __init__(self, lines: Mapping[Loc, int], unreadable: frozenset[Loc] = frozenset()) -> None:
        self.lines = lines
        self.unreadable = unreadable
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.dropped = {"errors": 0, "warnings": 0}  # beyond MAX_PROBLEMS: counted, not kept
        self._seen: set[Problem] = set()

    def _add(self, problems: list[Problem], loc: Loc, message: str) -> None:
        problem = Problem(format_path(loc), message, _line_for(loc, self.lines))
        if problem in self._seen:  # the schema and the raw checks may both see one rule
            return
        if len(problems) >= MAX_PROBLEMS:
            self.dropped["errors" if problems is self.errors else "warnings"] += 1
            return
        self._seen.add(problem)
        problems.append(problem)

    def error(self, loc: Loc, message: str) -> None:
        self._add(self.errors, loc, message)

    def warning(self, loc: Loc, message: str) -> None:
        self._add(self.warnings, loc, message)

    def pydantic(self, exc: ValidationError, prefix: Loc = ()) -> None:
        for err in exc.errors(include_url=False):
            loc = (*prefix, *err["loc"])
            if any(loc[:end] in self.unreadable for end in range(len(loc) + 1)):
                continue  # the YAML reader already said why this value is missing
            if len(self.errors) >= MAX_PROBLEMS:
                self.dropped["errors"] += 1
                continue
            self.error(loc, _humanize(err))


def _validate(
    data: Any, lines: Mapping[Loc, int], unreadable: frozenset[Loc] = frozenset()
) -> tuple[PipelinesConfig | None, _Checker]:
    check = _Checker(lines, unreadable)
    if not isinstance(data, dict):
        check.error((), f"the document must be a mapping with a `pipelines` list, got {_short(data)}")
        return None, check
    config: PipelinesConfig | None = None
    try:
        config = PipelinesConfig.model_validate(data)
    except ValidationError as exc:
        check.pydantic(exc)
    _cross_check(data, check)
    if config is None or check.errors:
        return None, check
    _warn(config, check)
    return config, check


def _entries(value: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """(index, entry) for each mapping in value[key]; the schema reports the rest."""
    items = value.get(key) if isinstance(value, dict) else None
    if not isinstance(items, list):
        return []
    return [(index, item) for index, item in enumerate(items) if isinstance(item, dict)]


def _cross_check(data: dict[str, Any], check: _Checker) -> None:
    """Rules between entries, and the rollout values, checked on the raw data so that one entry
    the schema refuses does not hide the problems of the others."""
    pipeline_names: dict[str, int] = {}
    services: dict[tuple[str, str], Loc] = {}
    schedules: dict[tuple[str, str, str], Loc] = {}
    for p_index, pipeline in _entries(data, "pipelines"):
        p_loc: Loc = ("pipelines", p_index)
        name = pipeline.get("name")
        if isinstance(name, str):
            if name in pipeline_names:
                check.error(
                    (*p_loc, "name"),
                    f"{name!r} is also the name of pipelines[{pipeline_names[name]}]: pipeline names are unique",
                )
            else:
                pipeline_names[name] = p_index
        if (pipeline.get("container") is None) == (pipeline.get("containers") is None):
            check.error(p_loc, ONE_CONTAINER_KEY)
        _check_source(pipeline, p_loc, check)
        containers = pipeline.get("containers")
        if isinstance(containers, list):
            seen_containers: set[str] = set()
            for c_index, container in enumerate(containers):
                if isinstance(container, str) and container in seen_containers:
                    check.error((*p_loc, "containers", c_index), f"{container!r} is listed twice")
                if isinstance(container, str):
                    seen_containers.add(container)
        stage_names: dict[str, int] = {}
        for s_index, stage in _entries(pipeline, "stages"):
            s_loc: Loc = (*p_loc, "stages", s_index)
            stage_name = stage.get("name")
            if isinstance(stage_name, str):
                if stage_name in stage_names:
                    check.error(
                        (*s_loc, "name"),
                        f"{stage_name!r} is also the name of stages[{stage_names[stage_name]}]: "
                        "stage names are unique within a pipeline",
                    )
                else:
                    stage_names[stage_name] = s_index
            if (stage.get("service") is None) == (stage.get("services") is None):
                check.error(s_loc, ONE_SERVICE_KEY)
            cluster = stage.get("cluster")
            in_stage: dict[str, Loc] = {}
            for where, service in _stage_services(stage, s_loc, check):
                if service in in_stage:
                    check.error(
                        where,
                        f"{service!r} is listed twice in this stage (first at {format_path(in_stage[service])}): "
                        "the services of a stage are distinct",
                    )
                    continue
                in_stage[service] = where
                if not isinstance(cluster, str):
                    continue
                if (cluster, service) in services:
                    check.error(
                        where,
                        f"ECS service {service!r} in cluster {cluster!r} is already deployed by "
                        f"{format_path(services[cluster, service])}: one deployment per ECS service at "
                        "a time is an invariant, so each service belongs to exactly one stage",
                    )
                else:
                    services[cluster, service] = where
            if "approval" in stage and stage["approval"] is None:
                check.error((*s_loc, "approval"), EMPTY_APPROVAL)
            _check_rollout(stage.get("rollout"), (*s_loc, "rollout"), check)
            _check_approval_at(stage, s_loc, check)
            _check_settings(stage, s_loc, check)
            _check_before(stage, pipeline, s_loc, check)
            _check_schedules(stage, s_loc, schedules, check)


def _check_schedules(stage: dict[str, Any], loc: Loc, seen: dict[tuple[str, str, str], Loc], check: _Checker) -> None:
    """A scheduled task follows one stage only: two stages would move it back and forth."""
    for index, entry in _entries(stage, "schedules"):
        scheduler, rule = entry.get("scheduler"), entry.get("rule")
        if isinstance(scheduler, str) and rule is None:
            group = entry.get("group")
            key = ("scheduler", group if isinstance(group, str) else DEFAULT_SCHEDULE_GROUP, scheduler)
        elif isinstance(rule, str) and scheduler is None:
            bus = entry.get("eventBus")
            key = ("rule", bus if isinstance(bus, str) else DEFAULT_EVENT_BUS, rule)
        else:
            continue  # the schedule's own rule (exactly one kind) is the schema's to report
        where: Loc = (*loc, "schedules", index)
        if key in seen:
            kind = "schedule" if key[0] == "scheduler" else "rule"
            check.error(
                where,
                f"{kind} {key[2]!r} is also listed at {format_path(seen[key])}: a scheduled task follows exactly one "
                "stage, or two stages would move it back and forth between their revisions",
            )
        else:
            seen[key] = where


def _check_source(pipeline: dict[str, Any], loc: Loc, check: _Checker) -> None:
    """`repository` or `source`, exactly one; `source` names exactly one provider."""
    has_repository, has_source = pipeline.get("repository") is not None, pipeline.get("source") is not None
    if has_repository and has_source:
        check.error(loc, REPOSITORY_AND_SOURCE)
    elif not has_repository and not has_source:
        check.error((*loc, "repository"), NO_SOURCE)
    source = pipeline.get("source")
    if (
        isinstance(source, dict)
        and sum(source.get(p) is not None for p in SOURCE_PROVIDERS) != 1
        and not set(source) - set(SOURCE_PROVIDERS)  # an unknown key is reported by the schema
    ):
        check.error((*loc, "source"), ONE_SOURCE)


def _stage_services(stage: dict[str, Any], s_loc: Loc, check: _Checker) -> list[tuple[Loc, str]]:
    """(path, name) of each service the raw stage names, through `service` or `services`; repeated
    containers of an entry are reported here (the schema reports the rest)."""
    service = stage.get("service")
    if isinstance(service, str):
        return [((*s_loc, "service"), service)]
    entries = stage.get("services")
    if not isinstance(entries, list):
        return []
    found: list[tuple[Loc, str]] = []
    for index, entry in enumerate(entries):
        e_loc: Loc = (*s_loc, "services", index)
        if isinstance(entry, str):
            found.append((e_loc, entry))
        elif isinstance(entry, dict) and isinstance(entry.get("name"), str):
            found.append(((*e_loc, "name"), entry["name"]))
            containers = entry.get("containers")
            if isinstance(containers, list):
                seen: set[str] = set()
                for c_index, container in enumerate(containers):
                    if isinstance(container, str) and container in seen:
                        check.error((*e_loc, "containers", c_index), f"{container!r} is listed twice")
                    if isinstance(container, str):
                        seen.add(container)
    return found


EMPTY_APPROVAL = (
    "empty: an approval gate cannot be empty; write `approval: {}` for one that anyone holding "
    "the link can give (24 hours), or remove the key"
)

_ROLLOUT_API_KEYS = frozenset(
    info.alias or name for name, info in Rollout.model_fields.items() if name != "circuit_breaker"
)


def _check_rollout(raw: Any, loc: Loc, check: _Checker) -> None:
    """The rollout's values through `validate_rollout` (static checks: no service facts here)."""
    if not isinstance(raw, dict):
        return
    requested = {key: value for key, value in raw.items() if key in _ROLLOUT_API_KEYS and value is not None}
    if "circuitBreaker" in raw and "deploymentCircuitBreaker" in raw:
        check.error(loc, ONE_CIRCUIT_BREAKER)
    shorthand = "circuitBreaker" in raw and "deploymentCircuitBreaker" not in raw
    if shorthand:
        try:
            breaker = CircuitBreakerShorthand.model_validate(raw["circuitBreaker"])
        except ValidationError:
            pass  # the schema reports it
        else:
            requested["deploymentCircuitBreaker"] = {"enable": breaker.enable, "rollback": breaker.rollback}
    result = validate_rollout(requested, None)
    for severity, findings in (("error", result.errors), ("warning", result.warnings)):
        for finding in findings:
            path = finding.field
            if shorthand and path.startswith("deploymentCircuitBreaker"):
                path = "circuitBreaker" + path.removeprefix("deploymentCircuitBreaker")
            message = finding.message.removeprefix(f"{finding.field}: ")
            where = (*loc, *_field_loc(path))
            if severity == "error":
                check.error(where, message)
            else:
                check.warning(where, message)


def _settings_of(stage: dict[str, Any]) -> deploy_settings.DeploySettings:
    """The stage's settings as far as their shape allows (the schema reports the rest)."""

    def per_container(key: str, kind: type) -> dict[str, Any]:
        raw = stage.get(key)
        if not isinstance(raw, dict):
            return {}
        return {
            container: values
            for container, values in raw.items()
            if isinstance(container, str) and isinstance(values, kind)
        }

    environment = {
        c: {n: v for n, v in values.items() if isinstance(n, str) and isinstance(v, str)}
        for c, values in per_container("environment", dict).items()
    }
    secrets = {
        c: {n: v for n, v in values.items() if isinstance(n, str) and isinstance(v, str)}
        for c, values in per_container("secrets", dict).items()
    }
    unset = {c: [n for n in names if isinstance(n, str)] for c, names in per_container("unset", list).items()}
    return deploy_settings.DeploySettings(environment=environment, secrets=secrets, unset=unset)


def _check_settings(stage: dict[str, Any], loc: Loc, check: _Checker) -> None:
    """Container names, variable names, secret references, a name set twice, the size."""
    for key in ("environment", "secrets", "unset"):
        raw = stage.get(key)
        if isinstance(raw, dict):
            for container in raw:
                if isinstance(container, str) and not _ECS_NAME_RE.fullmatch(container):
                    check.error(
                        (*loc, key, container),
                        f"{container!r} is not a container name: 1 to 255 letters, digits, '-' and '_' (the "
                        "container's `name` in the task definition)",
                    )
    chosen = _settings_of(stage)
    for problem in deploy_settings.problems(chosen):
        check.error((*loc, *problem.loc), problem.message)
    size = deploy_settings.settings_bytes(chosen)
    if size > deploy_settings.MAX_TASK_DEFINITION_BYTES:
        check.error(
            loc,
            f"the stage's environment and secrets take {size} bytes, above ECS's task definition size limit of "
            f"{deploy_settings.MAX_TASK_DEFINITION_BYTES // 1024} KiB (not adjustable): the revision could never be "
            "registered",
        )


def _warn_settings(stage: Stage, loc: Loc, check: _Checker) -> None:
    """Legal settings that are probably a mistake. (That the execution role may read the secrets is
    not checked here: the approval page and `deployer diff` name the role and the actions.)"""
    for container, values in (stage.environment or {}).items():
        for name in values:
            if deploy_settings.looks_secret(name):
                check.warning(
                    (*loc, "environment", container, name),
                    f"{name} looks like a secret, and an environment value is readable by anyone allowed "
                    "ecs:DescribeTaskDefinition (ECS): store it in Secrets Manager or SSM and give its reference "
                    f"under secrets.{container}.{name}",
                )


def _check_approval_at(stage: dict[str, Any], loc: Loc, check: _Checker) -> None:
    approval, rollout = stage.get("approval"), stage.get("rollout")
    at = approval.get("at") if isinstance(approval, dict) else None
    if at is None:
        return
    if at in {"TEST_TRAFFIC_SHIFT", "PRODUCTION_TRAFFIC_SHIFT"}:
        check.error(
            (*loc, "approval", "at"),
            f"{at}: ECS cannot pause at TEST_TRAFFIC_SHIFT or PRODUCTION_TRAFFIC_SHIFT (PAUSE hooks are refused "
            "there): use POST_TEST_TRAFFIC_SHIFT or PRE_PRODUCTION_TRAFFIC_SHIFT",
        )
    entries = stage.get("services")
    if isinstance(entries, list) and len(entries) > 1:
        check.error(
            (*loc, "approval", "at"),
            f"{at}: an approval during the deployment pauses one ECS deployment, and this stage deploys "
            f"{len(entries)} services, each in a deployment of its own that ECS would pause, time out and roll back "
            "apart; approve before the stage instead (remove `at`), or give the services stages of their own",
        )
    strategy = rollout.get("strategy") if isinstance(rollout, dict) else None
    if strategy not in HOOK_STRATEGIES:
        check.error(
            (*loc, "approval", "at"),
            f"{at} needs rollout.strategy BLUE_GREEN, LINEAR or CANARY (got {strategy or 'none: ROLLING'}): "
            "AWS documents the lifecycle stages of those deployments only, none for a rolling update, so nothing "
            f"says ECS would pause a rolling deployment at {at} and wait for the approval; remove `at` to approve "
            "before the stage deploys",
        )


def _check_before(stage: dict[str, Any], pipeline: dict[str, Any], loc: Loc, check: _Checker) -> None:
    """The service and container a `before` task runs in, and the size of the RunTask overrides."""
    before = stage.get("before")
    if not isinstance(before, dict):
        if "before" in stage and before is None:
            check.error(
                (*loc, "before"), "empty: write the task (`before: {task: migrate, command: [...]}`) or remove the key"
            )
        return
    entry = _before_service(stage, before, loc, check)
    if entry is False:
        return
    container = before.get("container")
    if container is None:
        containers, single = pipeline.get("containers"), pipeline.get("container")
        where = "the pipeline replaces"
        if isinstance(entry, dict) and (entry.get("containers") is not None or entry.get("container") is not None):
            containers, single = entry.get("containers"), entry.get("container")
            where = f"service {entry.get('name')} replaces"
        if isinstance(containers, list) and len(containers) > 1:
            listed = ", ".join(str(c) for c in containers)
            check.error(
                (*loc, "before", "container"),
                f"required: {where} several containers ({listed}); name the one that runs the command",
            )
            return
        container = containers[0] if isinstance(containers, list) and containers else single
    command = before.get("command")
    if not isinstance(container, str) or not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        return  # the schema reports it
    size = overrides_chars(before_overrides(container, command))
    if size > MAX_OVERRIDES_CHARS:
        check.error(
            (*loc, "before", "command"),
            f"RunTask's overrides for this command would be {size} characters, above ECS's {MAX_OVERRIDES_CHARS} (the "
            "limit counts the JSON of the whole override): move the long part into the image (a script it runs)",
        )


def _before_service(stage: dict[str, Any], before: dict[str, Any], loc: Loc, check: _Checker) -> Any:
    """The stage's service entry `before` runs with (a name, a mapping, or None for a stage of one
    `service`); False after reporting why there is none. In a stage of several services the task
    takes one service's new revision, placement and network: `before.service` must say which."""
    named = before.get("service")
    if not isinstance(named, str) and named is not None:
        return False  # the schema reports it
    entries = stage.get("services")
    if isinstance(entries, list):
        names = [e if isinstance(e, str) else e.get("name") if isinstance(e, dict) else None for e in entries]
        listed = ", ".join(str(n) for n in names)
        if named is None and len(entries) > 1:
            check.error(
                (*loc, "before", "service"),
                f"required: this stage deploys {len(entries)} services ({listed}); name the one whose new revision, "
                "placement and network configuration the task runs with (RunTask runs one task definition in one "
                f"network), e.g. `service: {names[0]}`",
            )
            return False
        if named is None:
            return entries[0] if entries else False
        if named not in names:
            check.error(
                (*loc, "before", "service"),
                f"{named!r} is not a service of this stage ({listed}): the task runs with the new revision of one "
                "of the services the stage deploys",
            )
            return False
        return entries[names.index(named)]
    service = stage.get("service")
    if named is not None and isinstance(service, str) and named != service:
        check.error(
            (*loc, "before", "service"),
            f"{named!r} is not this stage's service ({service}): leave `service` out, or name {service}",
        )
        return False
    return None


def _warn(config: PipelinesConfig, check: _Checker) -> None:
    """Legal but probably not meant: reported, never refused."""
    if not config.pipelines:
        check.warning(("pipelines",), "no pipelines: a push starts nothing")
    for p_index, pipeline in enumerate(config.pipelines):
        for s_index, stage in enumerate(pipeline.stages):
            _warn_settings(stage, ("pipelines", p_index, "stages", s_index), check)
            configuration = stage.deployment_configuration()
            expected = expected_minutes(configuration)
            if stage.deadline_minutes is not None and stage.deadline_minutes <= expected:
                check.warning(
                    ("pipelines", p_index, "stages", s_index, "deadlineMinutes"),
                    f"{stage.deadline_minutes} minutes is no longer than the rollout's own bake times and hooks' "
                    f"timeouts ({expected} minutes): the deployer would stop and roll back deployments that are "
                    f"still on schedule (leave it out for {default_deadline_minutes(configuration)})",
                )
            container = pipeline.before_container(stage)
            target = pipeline.before_target(stage)
            swapped = target.containers if target is not None else pipeline.container_names
            if stage.before is not None and container is not None and container not in swapped:
                check.warning(
                    ("pipelines", p_index, "stages", s_index, "before", "container"),
                    f"{container!r} is not a container whose image the build replaces "
                    f"({', '.join(swapped)}): the task runs the image the service's task "
                    "definition already has for it, not the new build",
                )
            approval = stage.approval
            if approval is None:
                continue
            loc: Loc = ("pipelines", p_index, "stages", s_index, "approval", "approvers")
            if not approval.approvers:
                check.warning(loc, "empty: anyone holding the approval link can approve (list Slack user ids)")
            seen: set[str] = set()
            for index, approver in enumerate(approval.approvers):
                if approver in seen:
                    check.warning((*loc, index), f"{approver!r} is listed twice")
                seen.add(approver)


def _field_loc(field_path: str) -> Loc:
    """'deploymentCircuitBreaker.rollback' or 'lifecycleHooks[0].roleArn' -> a loc."""
    return tuple(
        int(part[1:-1]) if part.startswith("[") else part for part in re.findall(r"\[\d+\]|[^.\[\]]+", field_path)
    )


def check_config_text(text: str, source: str = "<string>") -> CheckResult:
    """Every error and warning of a pipelines file; never raises for bad input."""
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_CONFIG_BYTES:
        return CheckResult(
            source,
            None,
            (Problem("", f"the file is {size} bytes, above the limit of {MAX_CONFIG_BYTES // 1024} KiB"),),
        )
    parsed = _parse_yaml(text)
    if parsed.problems and parsed.data is None:
        return CheckResult(source, None, tuple(parsed.problems))
    config, check = _validate(parsed.data, parsed.lines, parsed.unreadable)
    if config is not None and not check.errors:
        published = len(to_published_json(config).encode())
        if published > MAX_PUBLISHED_BYTES:
            check.error((), _too_big_to_publish(published))
    errors = _at_most([*parsed.problems, *check.errors], "errors", check.dropped["errors"])
    warnings = _at_most(check.warnings, "warnings", check.dropped["warnings"])
    return CheckResult(source, None if errors else config, tuple(errors), tuple(warnings))


def _too_big_to_publish(size: int) -> str:
    return (
        f"the published JSON would be {size} bytes, above {MAX_PUBLISHED_BYTES}: it is stored in one "
        "DynamoDB item, which holds at most 400 KB (anchors and aliases are expanded when published)"
    )


def _at_most(problems: list[Problem], what: str, dropped: int) -> list[Problem]:
    """In line order. A real file has a handful of problems; a generated or hostile one may have
    thousands, of which the first MAX_PROBLEMS are shown and the rest counted."""
    ordered = sorted(problems, key=lambda p: p.line or 0)
    more = dropped + max(0, len(ordered) - MAX_PROBLEMS)
    if not more:
        return ordered
    return [*ordered[:MAX_PROBLEMS], Problem("", f"... and {more} more {what} not shown")]


def load_config_text(text: str, source: str = "<string>") -> PipelinesConfig:
    """The validated config; ConfigError whose `messages` list every problem, located.

    Warnings do not fail loading: `check_config_text` returns them."""
    return check_config_text(text, source).raise_for_errors()


# --------------------------------------------------------------------------------------------
# Published form
# --------------------------------------------------------------------------------------------


def _published_data(config: PipelinesConfig) -> dict[str, Any]:
    data: dict[str, Any] = config.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def to_published_json(config: PipelinesConfig) -> str:
    """Canonical compact JSON (sorted keys): the same config always gives the same bytes and sha256."""
    return json.dumps(_published_data(config), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def to_yaml(config: PipelinesConfig) -> str:
    """The config as YAML in schema order (what `deployer config show` prints)."""
    import yaml

    return yaml.safe_dump(_published_data(config), sort_keys=False, allow_unicode=True, width=110)


PUBLISHED_SOURCE = "published config"


def from_published_json(text: str, source: str = PUBLISHED_SOURCE) -> PipelinesConfig:
    """Validates the published copy again, with every cross-check; ConfigError if it fails."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{source}: not valid JSON: {exc}") from None
    config, check = _validate(data, {})
    return CheckResult(source, config, tuple(check.errors), tuple(check.warnings)).raise_for_errors()
