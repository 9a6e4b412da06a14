"""Where a command acts: the deployer's tables, bus, secrets and approval page, found one way for
every command (`status`, `config publish/show`, `rollback`, `approvals`, `slack configure`).

Each name is looked up on its own; the first place that has it wins:

| order | where                                                                                   |
|-------|-----------------------------------------------------------------------------------------|
| 1     | its flag (`--table`, `--config-table`, `--event-bus`, `--signing-key-secret`,           |
|       | `--slack-secret`, `--approval-url`)                                                     |
| 2     | `--stack NAME`: the deployed stack's outputs                                            |
| 3     | its environment variable (`DEPLOYER_TABLE`, `DEPLOYER_CONFIG_TABLE`, ...)               |
| 4     | `DEPLOYER_STACK=NAME`: that stack's outputs                                             |
| 5     | the local stack's state file (`--state`, default `.local/stack.json`, written by        |
|       | `deployer local up`), only when nothing above names the command's main resource         |

A flag beats everything and `--stack` beats the environment, so a command line always says what
it acts on; in the environment a single name beats a whole stack. A stack is read with ONE
CloudFormation DescribeStacks call, and only when a name is still missing after the flags (and,
for DEPLOYER_STACK, the environment). A missing stack, or a stack without an output the command
needs (one deployed from an older template, or still being created), is a one-line error naming
the stack, the region and the output.

The outputs (`STACK_OUTPUTS`) are the template's own: `tests/unit/test_stack_target.py` checks
that template.yaml declares every one of them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from deployer_cli import UsageError

STACK_ENV: Final = "DEPLOYER_STACK"
DEFAULT_STATE_FILE: Final = Path(".local/stack.json")
LOCAL_REGION: Final = "eu-west-1"
ECS_ENDPOINT_ENV: Final = "AWS_ENDPOINT_URL_ECS"


@dataclass(frozen=True)
class Name:
    """One thing a command may need: its flag, its environment variable, its stack output."""

    flag: str
    env: str
    output: str
    what: str  # how an error calls it


NAMES: Final[Mapping[str, Name]] = {
    "table": Name("--table", "DEPLOYER_TABLE", "DeployerTableName", "table"),
    "config_table": Name("--config-table", "DEPLOYER_CONFIG_TABLE", "ConfigTableName", "config table"),
    "event_bus": Name("--event-bus", "DEPLOYER_EVENT_BUS", "EventBusName", "event bus"),
    "signing_key_secret": Name(
        "--signing-key-secret", "DEPLOYER_SIGNING_KEY_SECRET", "ApprovalSigningKeyArn", "signing key secret"
    ),
    "slack_secret": Name("--slack-secret", "DEPLOYER_SLACK_SECRET", "SlackSecretArn", "Slack secret"),
    "approval_url": Name("--approval-url", "DEPLOYER_APPROVAL_URL", "ApprovalsUrl", "approval URL"),
}
STACK_OUTPUTS: Final = frozenset(name.output for name in NAMES.values())


@dataclass(frozen=True)
class Target:
    table: str
    config_table: str | None
    pipelines: tuple[str, ...]
    signing_key_secret: str | None
    approval_url: str | None
    endpoint_url: str | None  # set only from the local stack's state file
    region: str | None
    local_stack: Path | None  # the state file the names came from
    event_bus: str | None = None
    ecs_endpoint_url: str | None = None  # the local stack's simulated ECS front (service deployments)
    slack_secret: str | None = None
    stack: str | None = None  # the deployed stack the names came from


# -- the deployed stack ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Stack:
    name: str
    region: str
    status: str
    outputs: Mapping[str, str]


DescribeStack = Callable[[str, "str | None"], Stack]


def describe_stack(name: str, region: str | None) -> Stack:
    """The stack's outputs, from one DescribeStacks call. UsageError (one line) when the stack
    cannot be read: no region, no credentials, no such stack, access denied."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    session = boto3.session.Session(region_name=region)
    where = session.region_name
    try:
        if where is None:
            raise NoRegionError
        response = session.client("cloudformation").describe_stacks(StackName=name)
    except NoRegionError:
        raise UsageError(
            f"no AWS region to look for stack {name} in: set AWS_REGION (or AWS_PROFILE with a region) "
            "to the region you deployed it to"
        ) from None
    except NoCredentialsError:
        raise UsageError(f"no AWS credentials found to read stack {name}: set AWS_PROFILE or credentials") from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        message = " ".join(str(error.get("Message", exc)).split())
        if error.get("Code") == "ValidationError":  # DescribeStacks: "If the stack doesn't exist"
            raise UsageError(
                f"no stack {name} in {where} (CloudFormation: {message}): check the name, and the region "
                "(AWS_REGION or AWS_PROFILE)"
            ) from None
        raise UsageError(f"cannot read stack {name} in {where}: {error.get('Code', 'error')}: {message}") from None
    except BotoCoreError as exc:
        raise UsageError(f"cannot read stack {name} in {where}: {exc}") from None
    (stack,) = response["Stacks"]
    outputs = {str(o["OutputKey"]): str(o["OutputValue"]) for o in stack.get("Outputs", []) if "OutputValue" in o}
    return Stack(str(stack.get("StackName", name)), where, str(stack.get("StackStatus", "?")), outputs)


# -- the local stack ------------------------------------------------------------------------------


MAX_STATE_FILE_BYTES = 1024 * 1024
"""The local stack writes a few kilobytes; anything past this is not its state file."""


def read_state_text(path: Path) -> str | None:
    """The text of the state file at `path`, None when there is none. Unreadable, not UTF-8, or
    endless (`--state /dev/zero`): a one-line UsageError."""
    try:
        with path.open("rb") as stream:
            data = stream.read(MAX_STATE_FILE_BYTES + 1)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot read the local stack's state file {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_STATE_FILE_BYTES:
        raise UsageError(f"{path} is not a local stack's state file (longer than 1 MiB): restart `deployer local up`")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(
            f"{path} is not a local stack's state file (not UTF-8: byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}): restart `deployer local up`, or pass --state FILE"
        ) from None


def read_state_file(path: Path) -> dict[str, Any] | None:
    """The local stack's state, or None when there is no file. Stale or malformed: UsageError."""
    text = read_state_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
        env = data.get("env") or {}
        if not isinstance(data, dict) or not isinstance(env, dict):
            raise TypeError("not an object")
        pid = data.get("pid")
    except (ValueError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path} is not a local stack's state file ({exc})") from None
    if isinstance(pid, int) and not process_running(pid):
        raise UsageError(
            f"the local stack in {path} (pid {pid}) is not running: start it with `deployer local up`, "
            f"or pass --table or --stack for another deployment"
        )
    return data


# -- resolving ------------------------------------------------------------------------------------


def missing_message(key: str, flag: str | None = None, *, local: Path | None = None) -> str:
    """ "no table: pass --table NAME or set DEPLOYER_TABLE (the stack's DeployerTableName output), ..."."""
    name = NAMES[key]
    text = (
        f"no {name.what}: pass {flag or name.flag} NAME or set {name.env} (the stack's {name.output} output), "
        f"or name the deployed stack: --stack NAME or {STACK_ENV}"
    )
    if local is not None:
        text += f", or start the local stack (`deployer local up`, which writes {local})"
    return text


@dataclass(frozen=True)
class Found:
    """Names found for one command, where each came from."""

    values: Mapping[str, str]
    stack: Stack | None
    state: Mapping[str, Any] | None
    state_file: Path | None


def resolve_names(
    given: Mapping[str, str | None],
    environ: Mapping[str, str],
    *,
    stack: str | None,
    primary: str,
    need: Collection[str] = (),
    want: Collection[str] = (),
    state_file: Path | None = DEFAULT_STATE_FILE,
    flags: Mapping[str, str] | None = None,
    describe: DescribeStack | None = None,
) -> Found:
    """Find `need` (all required; UsageError naming the first missing one) and `want` (optional)
    in the order of the module docstring. `primary` is the command's main resource: the local
    stack's state file is read only when nothing else names it. `flags` renames a key's flag in
    messages (`deployer config` calls the config table --table)."""
    keys = list(dict.fromkeys([primary, *need, *want]))
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    lookup = describe or describe_stack
    env_stack = environ.get(STACK_ENV) or None
    values: dict[str, str] = {}
    read: list[Stack] = []

    def from_stack(name: str) -> None:
        missing = [k for k in keys if k not in values]
        if not missing:
            return
        found = read[0] if read else lookup(name, region)
        if not read:
            read.append(found)
        for key in missing:
            value = found.outputs.get(NAMES[key].output)
            if value:
                values[key] = value

    for key in keys:
        if given.get(key):
            values[key] = str(given[key])
    if stack:
        from_stack(stack)
    for key in keys:
        if key not in values and environ.get(NAMES[key].env):
            values[key] = environ[NAMES[key].env]
    if not stack and env_stack:
        from_stack(env_stack)
    used = read[0] if read else None

    # A stack was named: every needed output must be there (the stack, not the user, is wrong).
    if used is not None:
        for key in [primary, *need]:
            if key not in values:
                name = NAMES[key]
                raise UsageError(
                    f"stack {used.name} in {used.region} (status {used.status}) has no output {name.output}: "
                    f"deploy the current template.yaml to it (sam deploy), or pass {(flags or {}).get(key, name.flag)}"
                )
        return Found(values, used, None, None)

    state: dict[str, Any] | None = None
    if primary not in values and state_file is not None:
        state = read_state_file(state_file)
        if state is not None:
            env = {str(k): str(v) for k, v in (state.get("env") or {}).items()}
            if state.get("approval_url"):  # the local approval server, as `deployer local up` started it
                env[NAMES["approval_url"].env] = str(state["approval_url"])
            for key in keys:
                if key not in values and env.get(NAMES[key].env):
                    values[key] = env[NAMES[key].env]
            if primary not in values:
                flag = (flags or {}).get(primary, NAMES[primary].flag)
                env_name = NAMES[primary].env
                raise UsageError(f"the local stack's state file {state_file} names no {env_name}: pass {flag}")
    for key in [primary, *need]:
        if key not in values:
            local = state_file if key == primary and state_file is not None else None
            raise UsageError(missing_message(key, (flags or {}).get(key), local=local))
    return Found(values, None, state, state_file if state is not None else None)


def target_from(found: Found, environ: Mapping[str, str], *, primary: str, pipelines: tuple[str, ...] = ()) -> Target:
    """A Target from found names: the local stack's endpoints and region when the names came
    from its state file (unless AWS_ENDPOINT_URL says otherwise)."""
    values = found.values
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    endpoint_url: str | None = None
    ecs_endpoint_url: str | None = None
    if found.state is not None:
        env = {str(k): str(v) for k, v in (found.state.get("env") or {}).items()}
        if not environ.get("AWS_ENDPOINT_URL") and found.state.get("endpoint_url"):
            endpoint_url = str(found.state["endpoint_url"])
            ecs_endpoint_url = str(found.state.get("ecs_endpoint_url") or env.get(ECS_ENDPOINT_ENV) or "") or None
        region = region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or LOCAL_REGION
    elif found.stack is not None:
        region = found.stack.region
    return Target(
        table=values.get("table", values.get(primary, "")),
        config_table=values.get("config_table"),
        pipelines=pipelines,
        signing_key_secret=values.get("signing_key_secret"),
        approval_url=values.get("approval_url"),
        endpoint_url=endpoint_url,
        region=region,
        local_stack=found.state_file,
        event_bus=values.get("event_bus"),
        ecs_endpoint_url=ecs_endpoint_url,
        slack_secret=values.get("slack_secret"),
        stack=found.stack.name if found.stack else None,
    )


def add_stack_argument(parser: Any) -> None:
    """`--stack NAME`, shared by every command that acts on a deployed deployer."""
    parser.add_argument(
        "--stack",
        metavar="NAME",
        help=f"the deployed deployer's CloudFormation stack: its outputs name the tables, bus, secrets and "
        f"approval page (default: ${STACK_ENV})",
    )


def add_state_argument(parser: Any) -> None:
    parser.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE_FILE,
        metavar="FILE",
        help=f"the local stack's state file, used when nothing else says where (default: {DEFAULT_STATE_FILE})",
    )


def session_for(target: Target) -> Any:
    """A boto3 session for `target` (local credentials for the local stack's moto server)."""
    import boto3

    session = boto3.session.Session(region_name=target.region)
    if target.endpoint_url and session.get_credentials() is None:
        # moto server takes any credentials; a machine without an AWS profile has none.
        session = boto3.session.Session(
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - moto server's, not a secret
            region_name=target.region,
        )
    return session


def process_running(pid: int) -> bool:
    """Whether process `pid` still exists (a stale .local/stack.json names a dead one)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
