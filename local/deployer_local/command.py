"""`deployer local invoke` and `deployer local emit`: the built functions, without Docker, against
the local stack (moto server as the AWS).

`invoke FUNCTION -e FILE` is the Docker-free `sam local invoke`: one cold run of the built
function (`deployer_local.localrun`), its logs on stderr, its result JSON on stdout.
`emit FILE [--bus default|deployer]` puts an event on a bus of the local stack: each function
whose rule in template.yaml matches it is invoked once, and what each returned is printed.

The running local stack (`deployer local up`) describes itself in a state file, by default
`.local/stack.json` under the current directory:

    {
      "endpoint_url": "http://127.0.0.1:PORT",      moto server: every function's AWS_ENDPOINT_URL
      "env": {"NAME": "value", ...},                the functions' variables the template cannot
                                                    resolve here (DEPLOYER_TABLE, ..._EVENT_BUS,
                                                    ..._SIGNING_KEY_SECRET, ..._SLACK_SECRET,
                                                    DEPLOYER_ENVIRONMENT, ...); applied to every
                                                    function, over the template's values
      "buses": {"default": "default", "deployer": "<the deployer bus's name>"},
      "approval_url": "http://127.0.0.1:PORT/",     the approval page (ApprovalsHttpFunction's URL)
      "slack_url": "http://127.0.0.1:PORT/",        the local Slack sink
      "pid": 12345                                  the stack's process; a dead pid means a stale file
    }

`env["DEPLOYER_ENVIRONMENT"]` (default "local") also names the functions (the template's
`Environment` parameter) and must be the environment of `buses["deployer"]`.

`up` holds `.local/stack.lock` while it runs (`deployer_local.pidlock`): a second `up` (or
`make demo`) in the same checkout refuses, naming the first one's pid.

Exit status: 0 done (every invoked function returned), 1 a function raised or failed, 2 unusable
arguments (unknown function, no build, an event file that is unreadable, not UTF-8, over 4 MiB or
over EventBridge's entry size, a state file that is not the stack's, no local stack, or for `up` a
local stack already running here), 128 + the signal when stopped by SIGINT, SIGTERM or SIGHUP
(`up` runs until then).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from deployer_cli import UsageError
from deployer_cli.target import process_running, read_state_text
from deployer_local import localrun
from deployer_local.localrun import InvokeResult, LocalRunError

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

    from deployer_local.router import Delivery

DEFAULT_STATE_FILE = Path(".local/stack.json")
DEFAULT_ENVIRONMENT = "local"
BUS_CHOICES = ("default", "deployer")


# -- the state file -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StackState:
    """What `.local/stack.json` says about the running local stack."""

    endpoint_url: str
    env: dict[str, str]
    buses: dict[str, str]
    approval_url: str | None = None
    slack_url: str | None = None
    pid: int | None = None

    @property
    def environment(self) -> str:
        return self.env.get("DEPLOYER_ENVIRONMENT") or DEFAULT_ENVIRONMENT

    @property
    def region(self) -> str:
        return self.env.get("AWS_REGION") or self.env.get("AWS_DEFAULT_REGION") or localrun.DEFAULT_REGION

    def resource_names(self) -> dict[str, str]:
        """`localrun`'s `names`: what the template's intrinsics resolve to in this stack."""
        names = {}
        if "deployer" in self.buses:
            names["DeployerBus"] = self.buses["deployer"]
        if self.approval_url:
            names["ApprovalsHttpFunctionUrl.FunctionUrl"] = self.approval_url
        return names


def read_stack_state(path: Path) -> StackState | None:
    """The running stack's state, or None when `path` does not exist. A malformed file, or one
    whose stack process has ended, is a usage error."""
    text = read_state_text(path)
    if text is None:
        return None
    try:
        data = json.loads(text)
        state = StackState(
            endpoint_url=_string(data["endpoint_url"]),
            env={str(name): _string(value) for name, value in dict(data.get("env") or {}).items()},
            buses={str(name): _string(value) for name, value in dict(data.get("buses") or {}).items()},
            approval_url=data.get("approval_url"),
            slack_url=data.get("slack_url"),
            pid=int(data["pid"]) if data.get("pid") is not None else None,
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"{path} is not a local stack's state file ({exc}): restart `deployer local up`") from exc
    if state.pid is not None and not process_running(state.pid):
        raise UsageError(f"the local stack in {path} (pid {state.pid}) is not running: start `deployer local up`")
    return state


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r} is not a string")
    return value


# -- arguments ----------------------------------------------------------------------------------


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    invoke = actions.add_parser(
        "invoke",
        help="run a built function once with an event (the Docker-free sam local invoke)",
        description="Run the built FUNCTION once with the event in FILE against the local stack: its logs "
        "on stderr, its result JSON on stdout. Exit 1 when the function raised.",
    )
    invoke.add_argument("function", metavar="FUNCTION", help="logical id (OnPushFunction) or function name")
    invoke.add_argument("-e", "--event", required=True, metavar="FILE", help="the event JSON ('-' reads stdin)")
    invoke.add_argument(
        "--env-file",
        "--env-vars",
        "-n",
        metavar="FILE",
        help='environment variables as JSON: {NAME: value}, or sam\'s {"Parameters": {...}, FUNCTION: {...}}',
    )
    invoke.add_argument(
        "--endpoint-url",
        metavar="URL",
        help="the AWS endpoint (moto server); default: the running local stack's, whose state also gives "
        "the functions' environment",
    )
    _common_arguments(invoke)
    emit = actions.add_parser(
        "emit",
        help="put an event on a bus of the local stack and show which functions it reached",
        description="Route the event in FILE through template.yaml's EventBridge rules on the chosen bus of "
        "the running local stack; invoke each matching function once and print what it returned.",
    )
    emit.add_argument("file", metavar="FILE", help="the event JSON ('-' reads stdin); envelope fields filled in")
    emit.add_argument("--bus", choices=BUS_CHOICES, default="default", help="the bus to put it on (default: default)")
    emit.add_argument("--logs", action="store_true", help="also print each function's logs (on stderr)")
    _common_arguments(emit)
    up = actions.add_parser(
        "up",
        help="start the local stack (moto server, the functions, approvals, Slack sink, simulators, git remote)",
        description="Start the whole deployer on 127.0.0.1 with free ports; Ctrl-C stops everything.",
    )
    up.add_argument(
        "--fail-stage",
        action="append",
        default=[],
        metavar="STAGE",
        help="make the SIMULATED ECS rollout of this stage fail (dev, prod, or cluster/service)",
    )
    up.add_argument(
        "--before",
        action="store_true",
        help="publish the demo pipeline whose prod runs a before-task (migrate) before its service is updated",
    )
    up.add_argument(
        "--fail-before",
        action="append",
        default=[],
        metavar="STAGE",
        help="make the SIMULATED before-task of this stage exit 1 (a failing migration)",
    )
    up.add_argument("--build-dir", type=Path, default=Path(".aws-sam/build"), help="the sam build output")
    up.add_argument(
        "--blue-green",
        action="store_true",
        help="publish the demo pipeline whose prod is BLUE_GREEN, paused at POST_TEST_TRAFFIC_SHIFT for its approval",
    )
    up.add_argument(
        "--several-services",
        action="store_true",
        help="run a worker service beside web; the demo pipeline's stages deploy both in one step",
    )
    up.add_argument(
        "--source",
        choices=["codecommit", "github", "gitlab"],
        default="codecommit",
        help="where the demo pipeline's pushes come from: github or gitlab add a remote whose hook sends the "
        "signed push webhook to the local OnWebhookFunction URL",
    )
    up.add_argument(
        "--hook-timeout",
        type=float,
        default=None,
        metavar="SECONDS",
        help="SIMULATED PAUSE hooks time out after SECONDS instead of their timeoutInMinutes",
    )
    parser.set_defaults(handler=run)


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state",
        type=Path,
        default=DEFAULT_STATE_FILE,
        metavar="FILE",
        help=f"the local stack's state file (default: {DEFAULT_STATE_FILE})",
    )
    parser.add_argument(
        "--build-dir",
        type=Path,
        default=localrun.DEFAULT_BUILD_DIR,
        metavar="DIR",
        help=f"sam build's output (default: {localrun.DEFAULT_BUILD_DIR})",
    )


def run(args: argparse.Namespace) -> int:
    if args.action == "invoke":
        return invoke_command(args)
    if args.action == "emit":
        return emit_command(args)
    if args.action == "up":
        return up_command(args)
    raise UsageError("choose an action: up, invoke FUNCTION -e FILE, or emit FILE")


def up_command(args: argparse.Namespace) -> int:
    """Start the local stack in the foreground until SIGINT (Ctrl-C), SIGTERM or SIGHUP, which
    stop every part of it (`deployer_cli.signals`: one line on stderr, exit 128 + the signal).
    One stack per `.local/`: a second `local up` (or `make demo`) there refuses, naming the pid."""
    import time

    from deployer_local.pidlock import AlreadyRunning
    from deployer_local.stack import LocalStack, StackOptions

    if not (args.build_dir / "template.yaml").exists():
        raise UsageError(f"no build output in {args.build_dir}: run `make build` first")
    stack = LocalStack(
        StackOptions(
            build_dir=args.build_dir,
            fail_stages=tuple(args.fail_stage),
            fail_before=tuple(args.fail_before),
            before=args.before or bool(args.fail_before),
            blue_green=args.blue_green,
            several_services=args.several_services,
            hook_timeout_seconds=args.hook_timeout,
            command="deployer local up"
            + (" --blue-green" if args.blue_green else "")
            + (" --several-services" if args.several_services else ""),
            source=args.source,
        )
    )
    try:
        stack.start()
    except AlreadyRunning as exc:
        raise UsageError(f"a local stack is {exc}") from None
    try:
        print_next_steps(stack)
        while True:
            time.sleep(3600)  # until a stop signal raises Stopped here
    finally:
        print("Stopping the local stack...", flush=True)
        stack.stop()
        print("Stopped: nothing left running.", flush=True)


def print_next_steps(stack: Any) -> None:
    print(
        "\nThe local stack is up. Try:\n"
        f"  1. git clone {stack.remote} /tmp/web-app && cd /tmp/web-app && "
        "git commit --allow-empty -m 'deploy me' && git push origin HEAD:main\n"
        "  2. deployer status                      # releases, stages, approval links\n"
        "  3. deployer local emit events/push_tag.json   # an event the rules filter out\n"
        f"Approval pages are served at {stack.approval_url}; Slack messages print here. Ctrl-C stops.",
        flush=True,
    )


MAX_EVENT_FILE_BYTES = 4 * 1024 * 1024
"""The most `read_event` reads: four times the largest entry PutEvents takes, room for indented
JSON. A longer input (`/dev/zero`, a log by mistake) is refused instead of read forever."""


def read_event(source: str) -> dict[str, Any]:
    """The event JSON object in file `source` ('-': standard input), read up to
    MAX_EVENT_FILE_BYTES."""
    name = "standard input" if source == "-" else source
    try:
        if source == "-":
            data = sys.stdin.buffer.read(MAX_EVENT_FILE_BYTES + 1)
        else:
            with Path(source).open("rb") as stream:
                data = stream.read(MAX_EVENT_FILE_BYTES + 1)
        if len(data) > MAX_EVENT_FILE_BYTES:
            raise UsageError(
                f"the event file {name} is longer than {MAX_EVENT_FILE_BYTES // (1024 * 1024)} MiB: "
                "not an event (EventBridge takes entries up to 1 MiB)"
            )
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UsageError(f"cannot read the event file {name}: {reason}") from exc
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"the event file {name} is not JSON: {exc}") from exc
    if not isinstance(event, dict):
        raise UsageError(f"the event file {name} holds a JSON {type(event).__name__}, not an object")
    return event


def read_env_file(path: str, function: str) -> dict[str, str]:
    """The variables for `function` in an env file: a flat {NAME: value} object, or sam local's
    `--env-vars` format ("Parameters" for every function, then the function's own section)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise UsageError(f"cannot read the env file {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"the env file {path} must hold a JSON object")
    if all(isinstance(value, dict) for value in data.values()):
        sections = [data.get("Parameters") or {}, data.get(function) or {}]
    elif not any(isinstance(value, (dict, list)) for value in data.values()):
        sections = [data]
    else:
        raise UsageError(f"the env file {path} mixes variables and sections: use one format")
    variables: dict[str, str] = {}
    for section in sections:
        for name, value in section.items():
            if value is None or isinstance(value, (dict, list)):
                raise UsageError(f"the env file {path}: {name} must be a string, number or boolean")
            variables[str(name)] = ("true" if value else "false") if isinstance(value, bool) else str(value)
    return variables


def _parameters(env: Mapping[str, str]) -> dict[str, str]:
    """The template parameters the functions' names come from."""
    return {"Environment": env["DEPLOYER_ENVIRONMENT"]} if env.get("DEPLOYER_ENVIRONMENT") else {}


# -- invoke -------------------------------------------------------------------------------------


def invoke_command(args: argparse.Namespace) -> int:
    event = read_event(args.event)
    names: dict[str, str] = {}
    if args.endpoint_url:
        endpoint, env = args.endpoint_url, {}
    else:
        state = read_stack_state(args.state)
        if state is None:
            raise UsageError(
                f"no local stack is running ({args.state} does not exist): start `deployer local up`, "
                "or pass --endpoint-url URL"
            )
        endpoint, env, names = state.endpoint_url, dict(state.env), state.resource_names()
    if args.env_file:
        env.update(read_env_file(args.env_file, args.function))
    env["AWS_ENDPOINT_URL"] = endpoint
    try:
        result = localrun.invoke(
            args.function, event, env=env, build_dir=args.build_dir, names=names, parameters=_parameters(env)
        )
    except LocalRunError as exc:
        hint = " (set variables with --env-file FILE)" if "environment cannot be resolved" in str(exc) else ""
        raise UsageError(f"{exc}{hint}") from exc
    print_invoke(result)
    return 0 if result.ok else 1


def print_invoke(result: InvokeResult, out: IO[str] | None = None, err: IO[str] | None = None) -> None:
    """As `sam local invoke` shows an invoke: the logs (stderr), then the result JSON (stdout)."""
    out = out or sys.stdout
    err = err or sys.stderr
    for note in result.notes:
        print(f"note: {note}", file=err)
    _write_logs(result, err)
    print(f"REPORT RequestId: {result.request_id}\tDuration: {result.duration_ms:.2f} ms", file=err)
    err.flush()
    print(json.dumps(result.payload if result.ok else result.error, indent=2), file=out)
    out.flush()


def _write_logs(result: InvokeResult, stream: IO[str]) -> None:
    if result.logs:
        stream.write(result.logs if result.logs.endswith("\n") else result.logs + "\n")


# -- emit ---------------------------------------------------------------------------------------


def emit_command(args: argparse.Namespace) -> int:
    from deployer_local.provision import DeployerNames
    from deployer_local.router import Router, check_entry_size, envelope, rules_from_template

    read = read_event(args.file)  # the input first: a bad file is refused before anything else
    try:
        check_entry_size(read)  # as PutEvents measures the entry: before the envelope is filled in
    except ValueError as exc:
        raise UsageError(f"the event file {args.file}: {exc}") from exc
    state = read_stack_state(args.state)
    if state is None:
        raise UsageError(f"no local stack is running ({args.state} does not exist): start `deployer local up`")
    try:
        event = envelope(read, region=state.region)
    except ValueError as exc:
        raise UsageError(f"the event file {args.file}: {exc}") from exc
    bus = state.buses.get(args.bus) or ("default" if args.bus == "default" else None)
    if bus is None:
        raise UsageError(f"{args.state} names no {args.bus} bus (its buses: {json.dumps(state.buses)})")
    names = DeployerNames(state.environment)
    if state.buses.get("deployer", names.bus) != names.bus:
        raise UsageError(
            f"{args.state}: the deployer bus {state.buses['deployer']!r} is not environment "
            f"{state.environment!r}'s ({names.bus}): set env.DEPLOYER_ENVIRONMENT to the stack's environment"
        )
    rules = rules_from_template(names)
    env = {**state.env, "AWS_ENDPOINT_URL": state.endpoint_url}
    parameters = _parameters(env)
    resource_names = state.resource_names()
    try:  # no build: say so before anything is routed
        localrun.built_functions(args.build_dir, names=resource_names, parameters=parameters, region=state.region)
    except LocalRunError as exc:
        raise UsageError(str(exc)) from exc

    def one_shot(function: str) -> Any:
        def invoke(delivered: dict[str, Any]) -> InvokeResult:
            return localrun.invoke(
                function, delivered, env=env, build_dir=args.build_dir, names=resource_names, parameters=parameters
            )

        return invoke

    router = Router(_events_client(state), {rule.function: one_shot(rule.function) for rule in rules}, rules)
    try:
        deliveries = router.route(event, bus)
    except LocalRunError as exc:
        raise UsageError(str(exc)) from exc
    print_deliveries(event, bus, deliveries, logs=args.logs)
    return 0 if all(delivery.result.ok for delivery in deliveries) else 1


def _events_client(state: StackState) -> EventBridgeClient:
    import boto3

    return boto3.client(
        "events",
        endpoint_url=state.endpoint_url,
        region_name=state.region,
        # The local stack's moto server takes any credentials; never the user's real ones.
        aws_access_key_id=localrun.FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=localrun.FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=localrun.FAKE_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


def print_deliveries(
    event: Mapping[str, Any],
    bus: str,
    deliveries: Sequence[Delivery],
    *,
    logs: bool = False,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> None:
    """What an emitted event did: which rule delivered it to which function, and what each
    returned (`FUNCTION (Rule) -> outcome`, then the result JSON); the logs on `err` if asked."""
    out = out or sys.stdout
    err = err or sys.stderr
    what = f"event {event.get('id')} ({event.get('source')}, {event.get('detail-type')}) on bus {bus}"
    if not deliveries:
        print(f"{what}: no rule matched; nothing was invoked", file=out)
        return
    print(f"{what}: {len(deliveries)} {'rule' if len(deliveries) == 1 else 'rules'} matched", file=out)
    for delivery in deliveries:
        result = delivery.result
        if result.ok:
            outcome = "ok"
        else:
            error = result.error or {}
            outcome = f"error {error.get('errorType')}: {error.get('errorMessage')}"
        for note in result.notes:
            print(f"note: {delivery.function}: {note}", file=err)
        if logs:
            _write_logs(result, err)
            err.flush()
        print(f"{delivery.function} ({delivery.rule.event}) -> {outcome} [{result.duration_ms:.0f} ms]", file=out)
        print(json.dumps(result.payload if result.ok else result.error, indent=2), file=out)
    out.flush()
