"""Deploy-time settings: environment variables and secret references that a stage (or `deployer
deploy --env/--secret`) sets on the containers of the revision it registers.

The shape follows ECS's own container definition, keyed by container name as ecs-deploy's
`-e CONTAINER NAME VALUE` / `-s CONTAINER NAME ARN` are:

    environment: {web: {LOG_LEVEL: info}}                   # containerDefinitions[].environment
    secrets: {web: {DB_PASSWORD: arn:aws:secretsmanager:...}}  # containerDefinitions[].secrets
    unset: {web: [OLD_FLAG]}                                 # removed from either list

The deployer clones the running revision, so a variable set once stays in every later revision
until a stage unsets it; removing a line from the pipelines file does not remove the variable.

Only references to secrets ever pass through here (a Secrets Manager secret ARN or an SSM
parameter ARN or name): ECS resolves them when a task starts, with the task execution role. The
deployer never reads a secret's value, so no log line, message or page can show one.

This module is pure: no AWS call. `deployer.taskdef.clone` applies `merge` to the clone it registers;
`deployer.pipelines` and the CLI check what they are given with `problems`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "CLIP",
    "MAX_TASK_DEFINITION_BYTES",
    "DeploySettings",
    "SettingChange",
    "SettingProblem",
    "changes",
    "check_name",
    "check_reference",
    "deploy_problems",
    "looks_secret",
    "merge",
    "problems",
    "read_actions",
    "reference_source",
    "registration_bytes",
    "role_note",
    "summary",
]

MAX_TASK_DEFINITION_BYTES: Final = 64 * 1024
"""Amazon ECS service quotas: "Task definition size limit: The maximum size, in KiB, of a task
definition: 64" (not adjustable). Measured here as the compact JSON of the registration request."""

MAX_NAME_LENGTH: Final = 255
CLIP: Final = 60
"""Environment values are configuration, not secrets, and are shown; longer ones are clipped."""

Kind = Literal["environment", "secret"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PARTITION = r"aws(?:-[a-z]+)*"
_REGION = r"[a-z]{2}(?:-[a-z]+)+-[0-9]+"
# Secrets Manager: "The secret name must be ASCII letters, digits, or any of the following
# characters: /_+=.@-" (ECS developer guide, "Specifying sensitive data using Secrets Manager").
_SM_NAME = r"[A-Za-z0-9/_+=.@-]+"
_SECRETS_MANAGER_ARN = re.compile(
    rf"arn:{_PARTITION}:secretsmanager:{_REGION}:[0-9]{{12}}:secret:(?P<name>{_SM_NAME})(?P<rest>(?::[^:]*)*)"
)
# SSM PutParameter: "Parameter names can include only the following symbols and letters:
# a-zA-Z0-9_.-" and "the slash character ( / ) is used to delineate hierarchies".
_PARAMETER_PART = r"[A-Za-z0-9_.-]+"
_PARAMETER_NAME = re.compile(rf"/?{_PARAMETER_PART}(?:/{_PARAMETER_PART})*")
_SECRETS_MANAGER_VIA_SSM = re.compile(rf"/aws/reference/secretsmanager/{_SM_NAME}")
_SSM_ARN = re.compile(rf"arn:{_PARTITION}:ssm:{_REGION}:[0-9]{{12}}:parameter(?P<name>/.+)")
MAX_PARAMETER_NAME = 1011  # SSM: "The maximum length for the fully qualified parameter name is 1011 characters"
MAX_REFERENCE = 2048

_SECRET_LOOKING = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|ACCESS_KEY|CREDENTIAL", re.IGNORECASE)

SECRETS_MANAGER_FORM = "arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME[:json-key:version-stage:version-id]"
SSM_FORM = "arn:aws:ssm:REGION:ACCOUNT:parameter/NAME, or the parameter's name (/app/db/password) in the same Region"


def check_name(name: object) -> str | None:
    """Why `name` cannot be an environment variable's name, or None.

    ECS itself refuses only a blank name ("Environment variable name cannot be null or blank"); the
    deployer also refuses what a shell cannot read or a copy-paste hides (a trailing space), so a
    name is a letter or '_' followed by letters, digits and '_' (deployer policy)."""
    if not isinstance(name, str):
        return f"expected a name, got {name!r}"
    if not _NAME.fullmatch(name):
        return (
            f"{_shown(name)} is not an environment variable name: a letter or '_' followed by letters, digits "
            "and '_' (deployer policy: a shell cannot read other names, and a space pasted at the end hides)"
        )
    if len(name) > MAX_NAME_LENGTH:
        return f"{_shown(name)} is longer than {MAX_NAME_LENGTH} characters (deployer policy)"
    return None


def check_reference(reference: object) -> str | None:
    """Why `reference` cannot be a container secret's `valueFrom`, or None.

    ECS API reference, Secret.valueFrom: "The supported values are either the full ARN of the
    Secrets Manager secret or the full ARN of the parameter in the SSM Parameter Store. [...] If
    the SSM Parameter Store parameter exists in the same Region as the task you're launching, then
    you can use either the full ARN or name of the parameter." A Secrets Manager ARN may end in
    `:json-key:version-stage:version-id`: "These parameters are optional, but if you do not use
    them, you must include the colons" (ECS developer guide, "Pass Secrets Manager secrets through
    Amazon ECS environment variables")."""
    if not isinstance(reference, str):
        return f"expected a secret reference (a string), got {reference!r}"
    if not reference or reference != reference.strip() or any(c.isspace() for c in reference):
        return f"{_shown(reference)} is not a secret reference: it is empty or holds whitespace"
    if len(reference) > MAX_REFERENCE:
        return f"{_shown(reference)} is longer than {MAX_REFERENCE} characters"
    if reference.startswith("arn:"):
        return _check_arn(reference)
    if len(reference) > MAX_PARAMETER_NAME or not (
        _PARAMETER_NAME.fullmatch(reference) or _SECRETS_MANAGER_VIA_SSM.fullmatch(reference)
    ):
        return (
            f"{_shown(reference)} is neither an ARN nor an SSM parameter name (letters, digits, '_', '.', '-', "
            f"with '/' between levels): give {SECRETS_MANAGER_FORM}, or {SSM_FORM}"
        )
    return None


def _check_arn(reference: str) -> str | None:
    secret = _SECRETS_MANAGER_ARN.fullmatch(reference)
    if secret is not None:
        rest = secret["rest"]
        fields = rest.split(":")[1:] if rest else []
        if len(fields) not in {0, 3}:
            return (
                f"{_shown(reference)}: after the secret's name ECS takes all three of :json-key:version-stage:"
                "version-id or none of them, and 'if you do not use them, you must include the colons' (ECS): "
                f"for a JSON key alone write ...:secret:{secret['name']}:{fields[0] if fields else 'KEY'}::"
            )
        if fields and fields[1] and fields[2]:
            return (
                f"{_shown(reference)}: give a version stage or a version id, not both (ECS: 'If a version "
                "staging label is specified, you cannot specify a version ID')"
            )
        return None
    if _SSM_ARN.fullmatch(reference):
        name = reference.split(":parameter", 1)[1]
        if len(name) > MAX_PARAMETER_NAME or not _PARAMETER_NAME.fullmatch(name):
            return f"{_shown(reference)}: the parameter's name is not an SSM parameter name"
        return None
    return (
        f"{_shown(reference)} is not a Secrets Manager secret ARN nor an SSM parameter ARN: give "
        f"{SECRETS_MANAGER_FORM}, or {SSM_FORM}"
    )


def reference_source(reference: str) -> str:
    """ "Secrets Manager" or "SSM Parameter Store": where ECS reads the value from."""
    if reference.startswith("arn:") and ":secretsmanager:" in reference:
        return "Secrets Manager"
    return "SSM Parameter Store"


def read_actions(references: Iterable[str]) -> list[str]:
    """The IAM actions the task execution role needs to read `references` (ECS developer guide,
    "Required IAM permissions for Amazon ECS secrets": secretsmanager:GetSecretValue for a Secrets
    Manager secret, ssm:GetParameters for a Parameter Store parameter)."""
    sources = {reference_source(reference) for reference in references}
    actions = []
    if "Secrets Manager" in sources:
        actions.append("secretsmanager:GetSecretValue")
    if "SSM Parameter Store" in sources:
        actions.append("ssm:GetParameters")
    return actions


def role_note(role: str | None, references: Iterable[str]) -> str | None:
    """What the execution role must be allowed, for the approval page and `deployer diff`: the
    deployer neither grants nor checks it (ECS reads the secrets when a task starts)."""
    actions = read_actions(references)
    if not actions:
        return None
    who = f"the task execution role {role}" if role else "the task execution role"
    return (
        f"ECS reads these secrets with {who} when each task starts: it must be allowed {' and '.join(actions)} "
        "on them (and kms:Decrypt for a customer managed key), or the new tasks fail to start; the deployer "
        "neither grants nor checks it"
    )


def looks_secret(name: str) -> bool:
    """A name such as DB_PASSWORD or API_TOKEN: its value should come from `secrets`."""
    return bool(_SECRET_LOOKING.search(name))


def _shown(text: str, limit: int = 80) -> str:
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


# --------------------------------------------------------------------------------------------
# The settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploySettings:
    """What a deploy sets, per container name. Empty settings change nothing."""

    environment: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    secrets: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    unset: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.environment.values()) or any(self.secrets.values()) or any(self.unset.values())

    @property
    def containers(self) -> tuple[str, ...]:
        """Every container named, in the order first named."""
        return tuple(dict.fromkeys([*self.environment, *self.secrets, *self.unset]))

    def for_container(self, name: str) -> tuple[Mapping[str, str], Mapping[str, str], frozenset[str]]:
        return (
            self.environment.get(name) or {},
            self.secrets.get(name) or {},
            frozenset(self.unset.get(name) or ()),
        )

    def only(self, containers: Iterable[str]) -> DeploySettings:
        """The settings of `containers` alone: what a stage of several services sets in one task
        definition, whose containers are some of those the settings name."""
        keep = frozenset(containers)
        return DeploySettings(
            environment={c: v for c, v in self.environment.items() if c in keep},
            secrets={c: v for c, v in self.secrets.items() if c in keep},
            unset={c: v for c, v in self.unset.items() if c in keep},
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, keys with nothing left out."""
        data: dict[str, Any] = {}
        if any(self.environment.values()):
            data["environment"] = {c: dict(v) for c, v in self.environment.items() if v}
        if any(self.secrets.values()):
            data["secrets"] = {c: dict(v) for c, v in self.secrets.items() if v}
        if any(self.unset.values()):
            data["unset"] = {c: list(v) for c, v in self.unset.items() if v}
        return data


@dataclass(frozen=True)
class SettingProblem:
    """One thing wrong with settings: where (`("secrets", "web", "DB_PASSWORD")`) and why."""

    loc: tuple[str | int, ...]
    message: str

    def format(self) -> str:
        where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in self.loc).lstrip(".")
        return f"{where}: {self.message}" if where else self.message


def problems(settings: DeploySettings) -> list[SettingProblem]:
    """Every problem that needs no task definition to find: names, references, and a name both set
    and set otherwise (environment and secrets, or set and unset) in one container. Containers are
    checked against the task definition when the stage deploys (`deploy_problems`)."""
    found: list[SettingProblem] = []
    for key, per_container in (("environment", settings.environment), ("secrets", settings.secrets)):
        for container, values in per_container.items():
            for name, value in values.items():
                where: tuple[str | int, ...] = (key, container, name)
                message = check_name(name)
                if message:
                    found.append(SettingProblem(where, message))
                if key == "secrets":
                    message = check_reference(value)
                    if message:
                        found.append(SettingProblem(where, message))
                elif not isinstance(value, str):
                    found.append(SettingProblem(where, f"expected a string, got {value!r}"))
    for container, names in settings.unset.items():
        seen: set[str] = set()
        for index, name in enumerate(names):
            loc: tuple[str | int, ...] = ("unset", container, index)
            message = check_name(name)
            if message:
                found.append(SettingProblem(loc, message))
            if name in seen:
                found.append(SettingProblem(loc, f"{name!r} is listed twice"))
            seen.add(name)
    for container in settings.containers:
        environment, secrets, unset = settings.for_container(container)
        for name in environment:
            if name in secrets:
                found.append(
                    SettingProblem(
                        ("secrets", container, name),
                        f"{name!r} is also set in environment.{container}: a container's variable is either a plain "
                        "value or a secret (ECS refuses a secret name shared with an environment variable)",
                    )
                )
        for name in sorted(unset & (set(environment) | set(secrets))):
            listed = "environment" if name in environment else "secrets"
            found.append(
                SettingProblem(
                    ("unset", container),
                    f"{name!r} is both set (in {listed}.{container}) and unset: keep one",
                )
            )
    return found


def settings_bytes(settings: DeploySettings) -> int:
    """What the settings alone add to a registration request, as compact JSON."""
    entries = [
        {"name": name, "value": value} for values in settings.environment.values() for name, value in values.items()
    ] + [{"name": name, "valueFrom": ref} for values in settings.secrets.values() for name, ref in values.items()]
    return len(json.dumps(entries, separators=(",", ":"), ensure_ascii=False).encode())


def registration_bytes(request: Mapping[str, Any]) -> int:
    """The size of a RegisterTaskDefinition request as ECS counts a task definition (compact JSON)."""
    return len(json.dumps(request, separators=(",", ":"), ensure_ascii=False, default=str).encode())


# --------------------------------------------------------------------------------------------
# Merging into a container definition
# --------------------------------------------------------------------------------------------


def merge(request: dict[str, Any], settings: DeploySettings) -> None:
    """Set, replace or remove the named variables in the containers of `request` (a
    RegisterTaskDefinition request, changed in place).

    A name set in `environment` replaces its value where it stands (or is appended) and leaves the
    container's `secrets`; a name set in `secrets` does the same the other way round; a name in
    `unset` leaves both. Every other variable, its order and every other field stay as they are; a
    list the container did not have is added only to hold a new variable. Containers the settings
    do not name are untouched (`deploy_problems` reports names missing from the definition)."""
    if not settings:
        return
    for container in request.get("containerDefinitions") or ():
        environment, secrets, unset = settings.for_container(str(container.get("name")))
        if not (environment or secrets or unset):
            continue
        _merge_list(container, "environment", "value", environment, frozenset(secrets) | unset)
        _merge_list(container, "secrets", "valueFrom", secrets, frozenset(environment) | unset)


def _merge_list(
    container: dict[str, Any], key: str, field_name: str, wanted: Mapping[str, str], remove: frozenset[str]
) -> None:
    current = container.get(key)
    entries = [entry for entry in current if isinstance(entry, Mapping)] if isinstance(current, list) else []
    merged: list[dict[str, Any]] = []
    placed: set[str] = set()
    for entry in entries:
        name = entry.get("name")
        if name in remove:
            continue
        if isinstance(name, str) and name in wanted:
            if name in placed:  # a duplicate of a name being set: one entry is left
                continue
            placed.add(name)
            merged.append({**entry, field_name: wanted[name]})
            continue
        merged.append(dict(entry))
    merged.extend({"name": name, field_name: value} for name, value in wanted.items() if name not in placed)
    if current is None and not merged:
        return
    container[key] = merged


# --------------------------------------------------------------------------------------------
# What changes
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingChange:
    """One variable of one container, before and after: (kind, value or reference), None when absent.

    A secret's `value` is its reference (an ARN or a parameter name), never what it resolves to."""

    container: str
    name: str
    before: tuple[Kind, str] | None
    after: tuple[Kind, str] | None

    @property
    def change(self) -> Literal["added", "removed", "changed"]:
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        return "changed"

    @property
    def secret(self) -> bool:
        return any(side is not None and side[0] == "secret" for side in (self.before, self.after))

    def short(self) -> str:
        """`LOG_LEVEL=warn (changed)`, `DB_PASSWORD (secret, added)`, `OLD_FLAG (removed)`: for
        one-line reasons, Slack and `deployer status`."""
        after = self.after
        if after is None:
            return f"{self.name} (removed)"
        kind, value = after
        if kind == "secret":
            moved = " (was an environment variable)" if self.before and self.before[0] == "environment" else ""
            return f"{self.name} (secret, {self.change}){moved}"
        moved = " (was a secret)" if self.before and self.before[0] == "secret" else ""
        return f"{self.name}={clip(value)} ({self.change}){moved}"

    def detail(self) -> str:
        """With both sides, secrets by reference: for the approval page and `deployer diff`."""
        return f"{self.name}: {_side(self.before)} → {_side(self.after)}"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SettingChange:
        """The inverse of `to_dict` (an approval's stored context); unknown kinds read as environment."""

        def side(value: object) -> tuple[Kind, str] | None:
            if not isinstance(value, Mapping):
                return None
            kind: Kind = "secret" if value.get("kind") == "secret" else "environment"
            return kind, str(value.get("value", ""))

        container, name = str(data.get("container", "")), str(data.get("name", ""))
        return cls(container, name, side(data.get("before")), side(data.get("after")))

    def to_dict(self) -> dict[str, Any]:
        return {
            "container": self.container,
            "name": self.name,
            "change": self.change,
            "before": None if self.before is None else {"kind": self.before[0], "value": self.before[1]},
            "after": None if self.after is None else {"kind": self.after[0], "value": self.after[1]},
        }


def _side(side: tuple[Kind, str] | None) -> str:
    if side is None:
        return "(not set)"
    kind, value = side
    return f"secret from {clip(value, 200)}" if kind == "secret" else repr_value(value)


def clip(value: str, limit: int = CLIP) -> str:
    """One line, at most `limit` characters: control characters shown escaped, the end cut with "…"."""
    shown = value.encode("unicode_escape").decode("ascii") if any(not c.isprintable() for c in value) else value
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


def repr_value(value: str) -> str:
    return f'"{clip(value)}"'


_LISTS: Final[tuple[tuple[str, Kind, str], ...]] = (
    ("environment", "environment", "value"),
    ("secrets", "secret", "valueFrom"),
)


def _variables(container: Mapping[str, Any]) -> dict[str, tuple[Kind, str]]:
    found: dict[str, tuple[Kind, str]] = {}
    for key, kind, field_name in _LISTS:
        for entry in container.get(key) or ():
            name = entry.get("name") if isinstance(entry, Mapping) else None
            if isinstance(name, str) and name not in found:
                found[name] = (kind, str(entry.get(field_name, "")))
    return found


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[SettingChange]:
    """The environment variables and secrets that differ between two task definitions (or
    registration requests), container by container in `after`'s order, names in their order."""
    old = {str(c.get("name")): c for c in before.get("containerDefinitions") or ()}
    found: list[SettingChange] = []
    for container in after.get("containerDefinitions") or ():
        name = str(container.get("name"))
        was = _variables(old.get(name) or {})
        now = _variables(container)
        for variable in dict.fromkeys([*now, *was]):
            if was.get(variable) != now.get(variable):
                found.append(SettingChange(name, variable, was.get(variable), now.get(variable)))
    return found


def summary(found: Iterable[SettingChange]) -> str:
    """`web: LOG_LEVEL=warn (changed), DB_PASSWORD (secret, added)`; containers joined with "; "."""
    by_container: dict[str, list[str]] = {}
    for change in found:
        by_container.setdefault(change.container, []).append(change.short())
    return "; ".join(f"{container}: {', '.join(parts)}" for container, parts in by_container.items())


def by_container(found: Iterable[SettingChange]) -> Iterator[tuple[str, list[SettingChange]]]:
    grouped: dict[str, list[SettingChange]] = {}
    for change in found:
        grouped.setdefault(change.container, []).append(change)
    yield from grouped.items()


# --------------------------------------------------------------------------------------------
# Against the task definition
# --------------------------------------------------------------------------------------------


def deploy_problems(
    definition: Mapping[str, Any],
    settings: DeploySettings,
    *,
    image_containers: Iterable[str] = (),
    request: Mapping[str, Any] | None = None,
) -> list[str]:
    """Every reason the deploy must not register its clone of `definition` (a task definition as
    DescribeTaskDefinition returns it): containers named that it lacks (for images or settings),
    secrets without a task execution role, a clone (`request`) above ECS's 64 KiB."""
    found: list[str] = []
    revision = _revision(definition)
    present = [str(c.get("name")) for c in definition.get("containerDefinitions") or ()]
    named = list(dict.fromkeys([*image_containers, *settings.containers]))
    missing = [name for name in named if name not in present]
    if missing:
        listed = ", ".join(repr(name) for name in missing)
        subject = f"container {listed} is" if len(missing) == 1 else f"containers {listed} are"
        found.append(
            f"{subject} not in {revision}; its containers are: {', '.join(repr(p) for p in present) or 'none'}"
        )
    if any(settings.secrets.values()) and not definition.get("executionRoleArn"):
        found.append(
            f"secrets need a task execution role and {revision} has none (executionRoleArn): ECS reads "
            "Secrets Manager and SSM with it when a task starts ('To use this feature, you must have the Amazon "
            "ECS task execution role and reference it in your task definition')"
        )
    if request is not None:
        size = registration_bytes(request)
        if size > MAX_TASK_DEFINITION_BYTES:
            found.append(
                f"the new revision of {revision.split(':')[0]} would be {size} bytes, above ECS's task definition "
                f"size limit of {MAX_TASK_DEFINITION_BYTES // 1024} KiB (not adjustable): set fewer or shorter "
                "variables, or move large values to an environment file or a secret"
            )
    return found


def _revision(definition: Mapping[str, Any]) -> str:
    arn = str(definition.get("taskDefinitionArn") or "")
    if arn:
        return arn.rsplit("/", 1)[-1]
    family = definition.get("family")
    return f"{family}" if family else "the task definition"
