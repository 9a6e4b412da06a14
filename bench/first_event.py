"""The first event of a cold function against its warm ones: each built function in a fresh
interpreter as Lambda runs it (the function's directory and its layer, the bytecode the build
ships, Lambda's environment with the tracer on), against moto server over HTTP. The interpreter
imports the handler (the init phase), then handles one event (the first: whatever the import left
to do happens here), then more events of the same kind (warm). Each event's wall time is split in
two: the time inside AWS calls, and the function's own time (everything else: the Powertools
decorators, parsing, the flow, building clients and importing what the import left out).

Target (issue 13): "first event <= 1.3x a warm one plus its AWS calls", i.e. the first event's
wall time less the time inside its AWS calls is at most 1.3× a warm event's wall time (median).
The first event's AWS calls are taken out because a first event makes some that a warm one does
not (the published configuration, a secret: Powertools caches both for minutes) and because their
time is the network's (here moto's), not the function's. The first event's own time against the
warm events' own time (both without AWS calls) is given too: the cold work left to the first event
(creating the clients its events use, the DynamoDB resource, building its event models) against
the few milliseconds of Python a warm event runs.

How the time inside AWS calls is measured: `botocore.client.BaseClient._make_api_call` is wrapped
as soon as `botocore.client` is imported (an import hook, so nothing is imported earlier than the
function imports it), before Powertools' Tracer patches it: the X-Ray SDK's own work around each
call counts as the function's. One call's time runs from the request's parameters to the parsed
answer (serialising, signing, the round trip, parsing, botocore's retries).

Every event does the same work: before the first, the bench (in process, through `deployer.flow`)
brings the world to the state each event finds (e.g. a release waiting for its build), and each
event gets a state of its own (a new commit, a new release). The X-Ray daemon is a UDP socket of
the bench: the segments it receives show the tracer was on.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from bench.cold_import import BUILD_DIR, lambda_runtime_env, native_overlay
from bench.common import FAKE_CREDENTIALS, REPO_ROOT, fake_aws, median, moto_server, ratio

TARGET_RATIO = 1.3  # the first event's own time against a warm event's (issue 13)
N_WARM = 10
BUDGET_S = 300.0
ENVIRONMENT = "bench"

WEBHOOK_SECRET = "bench-webhook-secret"  # noqa: S105 - the same
GITHUB_REPOSITORY = "acme/web-app"

# The interpreter of one function: argv[1] its sys.path, argv[2] the fd its results go to; events
# arrive one JSON line each on stdin. Standard library only, and nothing imported that the runtime
# would not have imported before the handler (json, os, sys, time are loaded by the runtime too).
_CHILD = r"""
import json, os, sys, time
import importlib.machinery

sys.path[:0] = json.loads(sys.argv[1])
results = open(int(sys.argv[2]), "w", encoding="utf-8", buffering=1, closefd=True)
aws = {"ms": 0.0, "cpu_ms": 0.0, "calls": 0, "depth": 0}


def _time_calls(module):
    original = module.BaseClient._make_api_call

    def _make_api_call(self, operation_name, api_params):
        if aws["depth"]:
            return original(self, operation_name, api_params)
        aws["depth"] += 1
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return original(self, operation_name, api_params)
        finally:
            aws["depth"] -= 1
            aws["calls"] += 1
            aws["ms"] += (time.perf_counter() - started) * 1000
            aws["cpu_ms"] += (time.process_time() - cpu) * 1000

    module.BaseClient._make_api_call = _make_api_call


class _WhenBotocoreClientLoads:
    def find_spec(self, name, path=None, target=None):
        if name != "botocore.client":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                _time_calls(module)

            spec.loader.exec_module = exec_module
        return spec


sys.meta_path.insert(0, _WhenBotocoreClientLoads())


class LambdaContext:
    def __init__(self, request_id):
        self.function_name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = os.environ["BENCH_FUNCTION_ARN"]
        self.memory_limit_in_mb = os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"]
        self.aws_request_id = request_id
        self.log_group_name = os.environ["AWS_LAMBDA_LOG_GROUP_NAME"]
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline = time.time() + 30

    def get_remaining_time_in_millis(self):
        return max(0, int((self._deadline - time.time()) * 1000))


def send(message):
    results.write(json.dumps(message, default=str) + "\n")


module_name, function_name = os.environ["_HANDLER"].rsplit(".", 1)
before = set(sys.modules)
started, cpu = time.perf_counter(), time.process_time()
handler = getattr(__import__(module_name), function_name)
send({"import_ms": (time.perf_counter() - started) * 1000, "import_cpu_ms": (time.process_time() - cpu) * 1000,
      "modules": len(sys.modules), "aws_calls": aws["calls"], "aws_ms": aws["ms"]})
for line in sys.stdin:
    request = json.loads(line)
    # What Lambda sets for each invocation of a function with active tracing.
    os.environ["_X_AMZN_TRACE_ID"] = request["trace_id"]
    aws.update(ms=0.0, cpu_ms=0.0, calls=0)
    loaded = set(sys.modules)
    started, cpu = time.perf_counter(), time.process_time()
    try:
        payload, error = handler(request["event"], LambdaContext(request["request_id"])), None
    except Exception as exc:
        payload, error = None, f"{type(exc).__name__}: {exc}"
    wall_ms, cpu_ms = (time.perf_counter() - started) * 1000, (time.process_time() - cpu) * 1000
    del os.environ["_X_AMZN_TRACE_ID"]
    imported = sorted(set(sys.modules) - loaded)
    send({"wall_ms": wall_ms, "cpu_ms": cpu_ms, "aws_ms": aws["ms"], "aws_cpu_ms": aws["cpu_ms"],
          "aws_calls": aws["calls"], "payload": payload, "error": error, "imported": imported})
"""


@dataclass
class Scenario:
    """What one function's events are: `prepare()` brings the world to the state every event
    finds (run once before the first event), `next_event()` makes the world ready for one more
    event and returns it, `after(payload)` runs once the function handled it."""

    function: str
    describes: str
    expected: str
    prepare: Callable[[], None]
    next_event: Callable[[], dict[str, Any]]
    after: Callable[[Any], None] = field(default=lambda _payload: None)


def _outcome(payload: Any) -> str:
    """`deployed, then awaiting_approval`, `HTTP 200`, `build_started`..."""
    if not isinstance(payload, Mapping):
        return repr(payload)[:80]
    if "statusCode" in payload:
        try:
            body = json.loads(str(payload.get("body")))
        except ValueError:
            body = None
        said = f" {body['outcome']}" if isinstance(body, dict) and "outcome" in body else ""
        return f"HTTP {payload['statusCode']}{said}"
    result = payload.get("result", payload)
    item = result[0] if isinstance(result, list) and result else result
    if not isinstance(item, Mapping):
        return str(payload.get("outcome", "?"))
    follow = item.get("next")
    then = f", then {follow.get('outcome')}" if isinstance(follow, Mapping) else ""
    return f"{item.get('outcome', payload.get('outcome', '?'))}{then}"


class _World:
    """The deployer's resources, the demo account and its pipeline in moto server, and the flow
    driven in process to set up each event."""

    def __init__(self) -> None:
        from deployer_local.provision import ACCOUNT
        from tests.support.world import make_world

        self.world = make_world(environment=ENVIRONMENT)
        self.account = ACCOUNT
        self.clock = iter(range(10**9))
        self.started = datetime.now(UTC) - timedelta(hours=1)
        self.previous: str | None = None

    # -- events as AWS sends them -----------------------------------------------------------------

    def new_commit(self) -> str:
        from tests.support.world import commit_id

        return commit_id(f"bench-first-event-{next(self.clock)}-{uuid.uuid4()}")

    def push(self) -> dict[str, Any]:
        commit = self.new_commit()
        # One second apart: a newer push is a later one (releases are ordered by their push's time).
        at = self.started + timedelta(seconds=next(self.clock))
        event = self.world.push(commit, self.previous, time=at.strftime("%Y-%m-%dT%H:%M:%SZ"))
        self.previous = commit
        return event

    def completed(self, release_id: str, stage: str) -> dict[str, Any]:
        from tests.support.events import load_event

        release = self.world.store.get(release_id)
        assert release is not None
        deployment = release.stages[stage].deployment_id
        service = self.world.account.services[stage]
        event = load_event("ecs_deployment_completed")
        event["id"] = str(uuid.uuid4())
        event["resources"] = [f"arn:aws:ecs:eu-west-1:{self.account}:service/{service.cluster}/{service.service}"]
        event["detail"].update(
            deploymentId=deployment,
            reason=f"ECS deployment {deployment} completed.",
            updatedAt=datetime.now(UTC).isoformat(timespec="milliseconds"),
        )
        return event

    # -- the flow, in process ---------------------------------------------------------------------

    def _parsed(self, model: str, raw: Mapping[str, Any]) -> Any:
        """`raw` parsed with the model `events_module.Model` of `deployer.events`."""
        import importlib

        from deployer.events.parse import parse_event

        module, name = model.split(".")
        return parse_event(getattr(importlib.import_module(f"deployer.events.{module}"), name), raw)

    def pushed(self) -> str:
        from deployer.flow.push import on_push

        (outcome,) = on_push(self._parsed("codecommit.CodeCommitReferenceEvent", self.push()), self.world.deps)
        return str(outcome["release_id"])

    def built(self, release_id: str) -> None:
        from deployer.flow.build import on_build

        event = self._parsed("codebuild.CodeBuildStateChangeEvent", self.world.build_finished(release_id))
        on_build(event, self.world.deps)

    def deployed(self, release_id: str, stage: str) -> None:
        from deployer.flow.deployment import on_deployment

        event = self._parsed("ecs.EcsDeploymentStateChangeEvent", self.completed(release_id, stage))
        on_deployment(event, self.world.deps)

    def awaiting_approval(self) -> str:
        """A new release through dev, waiting for prod's approval; its approval token."""
        release_id = self.pushed()
        self.built(release_id)
        self.deployed(release_id, "dev")
        release = self.world.store.get(release_id)
        assert release is not None
        approvals = self.world.deps.approvals
        assert approvals is not None
        link = approvals.link_for_release(release)
        assert link is not None, f"{release_id} is {release.state}, not waiting for an approval"
        return link.rsplit("/", 1)[1]

    def approved(self, token: str) -> dict[str, Any]:
        """The approval decided (as the approval page decides it) and its "Approval Decided" event."""
        from deployer.events.deployer_bus import APPROVAL_DECIDED, SOURCE, ApprovalDecidedDetail, DecidedBy

        approvals = self.world.deps.approvals
        assert approvals is not None
        by = DecidedBy(kind="link", source_ip="127.0.0.1", user_agent="bench")  # type: ignore[arg-type]
        approval = approvals.decide(token, "approve", by)
        detail = ApprovalDecidedDetail(
            release_id=approval.release_id,
            pipeline=approval.pipeline,
            stage=approval.stage,
            decision="approve",
            approval_id=approval.approval_id,
            decided_by=by,
            decided_at=datetime.now(UTC),
        )
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": APPROVAL_DECIDED,
            "source": SOURCE,
            "account": self.account,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": "eu-west-1",
            "resources": [],
            "detail": json.loads(detail.model_dump_json(exclude_none=True)),
        }

    def github_push(self) -> dict[str, Any]:
        """A signed GitHub push webhook of a new commit to main, as a Function URL event."""
        from deployer_local.function_url import request_event
        from deployer_local.gitremote import github_push_payload, webhook_request

        commit = self.new_commit()
        old = self.previous or "0" * 40
        # No git repository at the working directory: the payload carries no commit details, which
        # the deployer does not read.
        payload = github_push_payload(GITHUB_REPOSITORY, old, commit, "refs/heads/main", "ada", cwd=Path("/"))
        self.previous = commit
        body, headers = webhook_request("github", payload, WEBHOOK_SECRET)
        return request_event("POST", "/github", headers, body, source_ip="192.0.2.10", host="webhooks.bench.example")

    def github_pushed(self) -> None:
        """A GitHub push handled in process (the webhook's parsing, then the flow)."""
        from deployer.flow.push import on_push
        from deployer.sources import Push
        from deployer.webhooks import WebhookRequest, parse_github

        push = parse_github(WebhookRequest.from_function_url_event(self.github_push()), datetime.now(UTC))
        assert isinstance(push, Push), push
        on_push(push, self.world.deps)


def _scenarios(w: _World) -> dict[str, Scenario]:
    released: list[str] = []

    def on_build_event() -> dict[str, Any]:
        release_id = w.pushed()
        released.append(release_id)
        return w.world.build_finished(release_id)

    def on_deployment_event() -> dict[str, Any]:
        release_id = w.pushed()
        w.built(release_id)
        return w.completed(release_id, "dev")

    def prepare_build() -> None:
        release_id = w.pushed()
        w.built(release_id)
        w.deployed(release_id, "dev")

    def on_approval_event() -> dict[str, Any]:
        event = w.approved(w.awaiting_approval())
        released.append(event["detail"]["release_id"])
        return event

    page: list[dict[str, Any]] = []

    def approval_page() -> dict[str, Any]:
        from deployer_local.function_url import request_event

        if not page:
            token = w.awaiting_approval()
            headers = {"user-agent": "Mozilla/5.0 (bench)", "accept": "text/html"}
            page.append(
                request_event("GET", f"/approvals/{token}", headers, b"", source_ip="192.0.2.10", host="a.example")
            )
        return page[0]

    def github_pipeline() -> None:
        from deployer.pipelines.loader import load_config_text
        from deployer_local.provision import demo_pipelines_yaml

        text = demo_pipelines_yaml(w.world.account, source=f"github:{GITHUB_REPOSITORY}")
        w.world.config_store.publish(load_config_text(text), "bench")
        w.previous = None
        w.github_pushed()

    return {
        "OnPushFunction": Scenario(
            "OnPushFunction",
            "a push of a new commit to main; the release before it is still building (superseded)",
            "build_started",
            prepare=lambda: _discard(w.pushed()),
            next_event=w.push,
        ),
        "OnBuildFunction": Scenario(
            "OnBuildFunction",
            "the build of a new release succeeded: it deploys dev (the release before it is through dev)",
            "deploying",
            prepare=prepare_build,
            next_event=on_build_event,
            after=lambda _payload: w.deployed(released[-1], "dev"),
        ),
        "OnDeploymentFunction": Scenario(
            "OnDeploymentFunction",
            "ECS completed dev's deployment of a new release: prod asks for an approval (superseding "
            "the release waiting there)",
            "deployed, then awaiting_approval",
            prepare=prepare_build,
            next_event=on_deployment_event,
        ),
        "OnApprovalFunction": Scenario(
            "OnApprovalFunction",
            "prod of a new release approved on the approval page: it deploys prod",
            "deploying",
            prepare=lambda: None,
            next_event=on_approval_event,
            after=lambda _payload: w.deployed(released[-1], "prod"),
        ),
        "ApprovalsHttpFunction": Scenario(
            "ApprovalsHttpFunction",
            "GET of the approval page of a release waiting for prod's approval",
            "HTTP 200",
            prepare=lambda: None,
            next_event=approval_page,
        ),
        "OnWebhookFunction": Scenario(
            "OnWebhookFunction",
            "a signed GitHub push webhook of a new commit to main (pipeline on GitHub); the release before "
            "it is still building (superseded)",
            "HTTP 200 started",
            prepare=github_pipeline,
            next_event=w.github_push,
        ),
    }


def _discard(_value: object) -> None:
    return None


def _secrets(names: dict[str, str]) -> None:
    """The template's secrets, created as CloudFormation would (their ARNs are the functions'
    environment): the signing key the bench's own approvals use, the webhook secret, Slack off."""
    import boto3

    from deployer_local import template

    client = boto3.client("secretsmanager")
    from tests.support.world import SIGNING_KEY

    values = {
        "ApprovalSigningKey": SIGNING_KEY.decode(),
        "WebhookSecret": json.dumps({"github": WEBHOOK_SECRET}),
    }
    for logical_id, props in template.resources("AWS::SecretsManager::Secret").items():
        name = props["Name"]["Fn::Sub"].replace("${Environment}", ENVIRONMENT)
        value = values.get(logical_id) or props.get("SecretString") or uuid.uuid4().hex * 2
        names[logical_id] = client.create_secret(Name=name, SecretString=value)["ARN"]


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    results: IO[str]
    log: IO[bytes]

    def log_tail(self, lines: int = 15) -> list[str]:
        self.log.flush()
        self.log.seek(0)
        text = self.log.read().decode("utf-8", "replace")
        self.log.seek(0, os.SEEK_END)
        return text.strip().splitlines()[-lines:]

    def read(self, timeout: float = 60.0) -> dict[str, Any]:
        import select

        ready, _, _ = select.select([self.results], [], [], timeout)
        line = self.results.readline() if ready else ""
        if not line:
            raise RuntimeError("the function's interpreter stopped answering:\n" + "\n".join(self.log_tail()))
        message: dict[str, Any] = json.loads(line)
        return message

    def send(self, event: Mapping[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        request = {"event": event, "request_id": str(uuid.uuid4()), "trace_id": _trace_id()}
        self.process.stdin.write((json.dumps(request) + "\n").encode())
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.results.close()
        self.log.close()


def _trace_id() -> str:
    """An X-Ray trace header as Lambda sets `_X_AMZN_TRACE_ID` for a sampled invocation."""
    return f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Parent={uuid.uuid4().hex[:16]};Sampled=1"


def _start(sys_path: Sequence[Path], env: Mapping[str, str], cwd: Path) -> _Child:
    read_fd, write_fd = os.pipe()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed by _Child.close
    try:
        process = subprocess.Popen(  # noqa: S603 - the venv's own interpreter, fixed arguments
            [sys.executable, "-I", "-S", "-B", "-c", _CHILD, json.dumps([str(p) for p in sys_path]), str(write_fd)],
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)
    return _Child(process, os.fdopen(read_fd, "r", encoding="utf-8"), log)


def _by_package(modules: Sequence[str], top: int = 6) -> dict[str, int]:
    counts: dict[str, int] = {}
    for name in modules:
        package = name.split(".")[0]
        counts[package] = counts.get(package, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: -item[1])[:top])


def _own(sample: Mapping[str, Any]) -> float:
    return float(sample["wall_ms"]) - float(sample["aws_ms"])


def _own_cpu(sample: Mapping[str, Any]) -> float:
    return float(sample["cpu_ms"]) - float(sample["aws_cpu_ms"])


def first_events(
    n_warm: int = N_WARM, functions: Sequence[str] | None = None, budget_s: float = BUDGET_S
) -> dict[str, Any]:
    """For each built function (or those named): its import, its first event and `n_warm` warm
    events of the same kind (fewer once its share of `budget_s` is spent, at least 3)."""
    from deployer_local import localrun

    if not (BUILD_DIR / "template.yaml").is_file():
        return {"skipped": "no .aws-sam/build: run make build"}
    built_at = datetime.fromtimestamp((BUILD_DIR / "template.yaml").stat().st_mtime, UTC)
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-first-") as tmp:
        snapshot = Path(tmp) / "build"
        shutil.copytree(BUILD_DIR, snapshot, symlinks=True)
        daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        daemon.bind(("127.0.0.1", 0))
        daemon.setblocking(False)
        with daemon, moto_server() as url, fake_aws(endpoint_url=url):
            w = _World()
            names = {
                **localrun.resource_names(w.world.names),
                "ApprovalsHttpFunctionUrl.FunctionUrl": "https://a.example/",
            }
            _secrets(names)
            built = localrun.built_functions(snapshot, names=names, parameters={"Environment": ENVIRONMENT})
            chosen = [key for key in _scenarios(w) if key in built and (functions is None or key in functions)]
            overlay_dir = Path(tmp) / "native"
            layers = sorted({layer for key in chosen for layer in built[key].layer_dirs})
            overlay = [entry for layer in layers for entry in native_overlay(layer, overlay_dir)]
            scenarios = _scenarios(w)
            for index, key in enumerate(chosen):
                deadline = started + budget_s * (index + 1) / len(chosen)
                where = _Where(url, daemon, overlay_dir if overlay else None)
                rows.append(_measure(built[key], scenarios[key], where, n_warm, deadline))
    return {
        "n_warm_requested": n_warm,
        "target_ratio": TARGET_RATIO,
        "build": str(BUILD_DIR.relative_to(REPO_ROOT)),
        "built_at": built_at.strftime("%Y-%m-%d %H:%M UTC"),
        "native_overlay": overlay if rows else [],
        "server": "moto server (werkzeug, threaded) in this process, HTTP on 127.0.0.1",
        "functions": rows,
    }


@dataclass(frozen=True)
class _Where:
    url: str  # moto server
    daemon: socket.socket  # the X-Ray daemon's UDP socket
    overlay: Path | None  # this host's build of the layer's native packages


def _measure(built: Any, scenario: Scenario, where: _Where, n_warm: int, deadline: float) -> dict[str, Any]:
    url, daemon, overlay = where.url, where.daemon, where.overlay
    env = {
        **built.environment,
        **lambda_runtime_env(
            built.function_name,
            built.handler,
            built.code_dir,
            memory=built.memory_size,
            runtime=built.runtime,
            tracing="Active",
        ),
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": url,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_XRAY_DAEMON_ADDRESS": "{}:{}".format(*daemon.getsockname()),
        "AWS_LAMBDA_LOG_GROUP_NAME": built.log_group,
        "BENCH_FUNCTION_ARN": f"arn:aws:lambda:eu-west-1:123456789012:function:{built.function_name}",
    }
    path = [built.code_dir, *([overlay] if overlay else []), *built.layer_dirs]
    row: dict[str, Any] = {"function": scenario.function, "event": scenario.describes, "expected": scenario.expected}
    scenario.prepare()
    _drain(daemon)
    child = _start(path, env, built.code_dir)
    samples: list[dict[str, Any]] = []
    try:
        row["init"] = child.read()
        for index in range(1 + n_warm):
            if index > 3 and time.monotonic() > deadline:
                break
            result = child.send(scenario.next_event())
            result["outcome"] = "error: " + result["error"] if result["error"] else _outcome(result["payload"])
            samples.append(result)
            if result["outcome"] != scenario.expected:
                row["log"] = child.log_tail()
                break
            scenario.after(result["payload"])
    except RuntimeError as exc:
        row["error"] = str(exc)
    finally:
        child.close()
    row["segments"] = _drain(daemon)
    if not samples:
        row.setdefault("error", "no event handled")
        return row
    first, warm = samples[0], samples[1:]
    outcomes = sorted({s["outcome"] for s in samples})
    if outcomes != [scenario.expected]:
        row["error"] = f"outcomes {', '.join(outcomes)}; expected {scenario.expected} for every event"
    row |= {
        "n_warm": len(warm),
        "outcomes": outcomes,
        "first": {k: first[k] for k in ("wall_ms", "cpu_ms", "aws_ms", "aws_cpu_ms", "aws_calls")}
        | {"own_ms": _own(first), "own_cpu_ms": _own_cpu(first), "imported": len(first["imported"])},
        "first_imported_by_package": _by_package(first["imported"]),
        "warm": {
            "wall_ms": median([s["wall_ms"] for s in warm]) if warm else None,
            "aws_ms": median([s["aws_ms"] for s in warm]) if warm else None,
            "aws_calls": median([s["aws_calls"] for s in warm]) if warm else None,
            "own_ms": median([_own(s) for s in warm]) if warm else None,
            "own_cpu_ms": median([_own_cpu(s) for s in warm]) if warm else None,
            "imported": sum(len(s["imported"]) for s in warm),
        },
    }
    warm_wall, own_warm = row["warm"]["wall_ms"], row["warm"]["own_ms"]
    # The target: the first event less its AWS calls, against a whole warm event.
    row["ratio"] = ratio(row["first"]["own_ms"], warm_wall) if warm_wall else None
    row["own_ratio"] = ratio(row["first"]["own_ms"], own_warm) if own_warm else None
    cpu_warm = row["warm"]["own_cpu_ms"]
    row["own_cpu_ratio"] = ratio(row["first"]["own_cpu_ms"], cpu_warm) if cpu_warm else None
    row["extra_ms"] = row["first"]["own_ms"] - own_warm if own_warm is not None else None
    row["meets_target"] = "error" not in row and row["ratio"] is not None and row["ratio"] <= TARGET_RATIO
    return row


def _drain(daemon: socket.socket) -> int:
    """How many datagrams (X-Ray segments) the daemon socket received since the last drain."""
    count = 0
    while True:
        try:
            daemon.recv(65536)
        except BlockingIOError:
            return count
        count += 1
