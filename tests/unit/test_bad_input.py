"""Invariant 5, bad input: garbage gets one clear log line and changes nothing.

Every sample in events/ is mutated (fields dropped, retyped, oversized, filled with odd unicode,
extra fields, foreign sources and detail types, the whole event replaced) and fed to the REAL
handler of each EventBridge-triggered function (functions/<name>/app.py, imported by path with
the environment template.yaml gives it, Powertools logger, metrics and idempotency included).
Properties: the handler returns normally with a known outcome; nothing changes (the deployer
table apart from Powertools' idempotency records, the config table, builds, task definitions,
services, the bus); a refused event logs exactly one ERROR line naming its id, and no log line
quotes the event. The same for `deployer validate` on arbitrary and mutated pipeline files, and
for the approvals Function URL on arbitrary requests (never a 5xx unless a declared fault makes
it a 503, never a stack trace, nothing written).

One moto world is shared by the module; every property re-checks that the world did not change.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import hmac
import importlib.util
import json
import logging
import string
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import botocore.session
import pytest
import yaml
from botocore.exceptions import ClientError, EndpointConnectionError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from deployer import aws, runtime
from deployer.errors import BadInput
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ROLLBACK_REQUESTED, ApprovalDecidedEvent, RollbackRequestedEvent
from deployer.events.ecs import (
    ECS_HOOK_STATE_CHANGE,
    ECS_TASK_STATE_CHANGE,
    EcsDeploymentStateChangeEvent,
    EcsHookStateChangeEvent,
    EcsTaskStateChangeEvent,
)
from deployer.events.parse import MAX_MESSAGE_CHARS, parse_event
from deployer.pipelines.loader import MAX_CONFIG_BYTES
from deployer.releases.model import ReleaseState
from deployer_cli import main as deployer_main
from deployer_local import template
from tests.support.events import REPOSITORY_ROOT, load_event, sample_names
from tests.support.world import SIGNING_KEY, World, commit_id, make_world

pytestmark = [
    pytest.mark.unit,
    pytest.mark.filterwarnings("ignore:No idempotency key value found:UserWarning"),
]

FUNCTIONS = ("on_push", "on_build", "on_deployment", "on_approval")
MODEL_OF: dict[str, Any] = {
    "on_push": CodeCommitReferenceEvent,
    "on_build": CodeBuildStateChangeEvent,
    "on_deployment": EcsDeploymentStateChangeEvent,
    "on_approval": ApprovalDecidedEvent,
}
SAMPLE_PREFIX = {
    "on_push": "push_",
    "on_build": "build_",
    "on_deployment": "ecs_",  # deployment and hook state changes: the handler picks the model by detail-type
    "on_approval": "approval_",
}
SAMPLES = {function: [n for n in sample_names() if n.startswith(SAMPLE_PREFIX[function])] for function in FUNCTIONS}
RELEASE_COMMIT = "7f0103f2c1d64b5e8a9c3e1b6d2f4a8c0e5b7d91"  # the release every sample names
SLACK_SIGNING_SECRET = "bad-input-slack-signing-secret-0123456789"
APPROVAL_URL = "https://approvals.example.test/"
HOST = "abcdefghijklmnop.lambda-url.eu-west-1.on.aws"
# Planted in every mutated event: no log line and no response may ever quote it.
CANARY = "canary-7Hq2-secret-value-never-logged"
# The Powertools logger's name is the service name template.yaml gives every function.
LOG_SERVICE = str(template.load()["Globals"]["Function"]["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"])
READ_PREFIXES = ("Get", "Describe", "List", "Query", "Scan", "BatchGet")
BASE_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
FAST = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


# --- every AWS call of the process, and faults declared by a test --------------------------------


@dataclass
class Fault:
    """Let `skip` calls of service/operation through, then raise `error` for the next `count`."""

    service: str
    operation: str
    error: Callable[[], Exception]
    count: int = 1
    skip: int = 0


@dataclass
class AwsCalls:
    """A `before-call` hook on every botocore client created in the module: records each call
    (service, operation, the target item's pk for DynamoDB) and raises declared faults."""

    made: list[tuple[str, str, str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)

    def hook(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        service, operation = model.service_model.service_name, model.name
        self.made.append((service, operation, _target_pk(params)))
        for fault in self.faults:
            if (fault.service, fault.operation) != (service, operation):
                continue
            if fault.skip > 0:
                fault.skip -= 1
            elif fault.count > 0:
                fault.count -= 1
                raise fault.error()

    def writes(self) -> list[tuple[str, str, str]]:
        """Every call that may change something, except Powertools' idempotency records."""
        return [
            call
            for call in self.made
            if not call[1].startswith(READ_PREFIXES) and not call[2].startswith("idempotency#")
        ]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        create_client = botocore.session.Session.create_client
        calls = self

        def hooked(session: Any, *args: Any, **kwargs: Any) -> Any:
            client = create_client(session, *args, **kwargs)
            client.meta.events.register("before-call", calls.hook)
            return client

        monkeypatch.setattr(botocore.session.Session, "create_client", hooked)


def _target_pk(params: dict[str, Any]) -> str:
    body = params.get("body")
    if not body:
        return ""
    try:
        request = json.loads(body)
    except (ValueError, TypeError):
        return ""
    if not isinstance(request, dict):
        return ""
    key = request.get("Key") or request.get("Item") or {}
    pk = key.get("pk", {}) if isinstance(key, dict) else {}
    return str(pk.get("S", "")) if isinstance(pk, dict) else ""


def throttled(service: str, operation: str) -> Callable[[], Exception]:
    code = "ProvisionedThroughputExceededException" if service == "dynamodb" else "ThrottlingException"
    return lambda: ClientError(
        {"Error": {"Code": code, "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": 400}},
        operation,
    )


def server_error(service: str, operation: str) -> Callable[[], Exception]:
    del service
    return lambda: ClientError(
        {"Error": {"Code": "InternalFailure", "Message": "injected"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
        operation,
    )


def unreachable(service: str, operation: str) -> Callable[[], Exception]:
    del operation
    return lambda: EndpointConnectionError(endpoint_url=f"https://{service}.eu-west-1.amazonaws.com/")


# --- the world ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FakeContext:
    """What Powertools reads of the Lambda context."""

    function_name: str
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log_group_name: str = "/aws/lambda/test"
    log_stream_name: str = "2026/11/29/[$LATEST]0123456789abcdef"

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:eu-west-1:123456789012:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return 25_000


@dataclass
class Env:
    world: World
    calls: AwsCalls
    handlers: dict[str, ModuleType]
    token: str  # the link of the release waiting for approval (a bearer credential)
    interactive_slack_secret_arn: str
    baseline: list[dict[str, Any]] = field(default_factory=list)

    @property
    def table(self) -> Any:
        return self.world.store._table

    @functools.cached_property
    def clients(self) -> dict[str, Any]:
        dynamodb = boto3.resource("dynamodb")
        return {
            "ecs": boto3.client("ecs"),
            "codebuild": boto3.client("codebuild"),
            "deployer": dynamodb.Table(self.world.names.table),
            "config": dynamodb.Table(self.world.names.config_table),
        }

    def deployer_table(self) -> list[dict[str, Any]]:
        """The deployer table, Powertools' idempotency records apart (checked around every call)."""
        return [item for item in _scan(self.clients["deployer"]) if not str(item.get("pk")).startswith("idempotency#")]

    def snapshot(self) -> dict[str, Any]:
        """Everything a handler could change, idempotency records apart (checked around each test)."""
        ecs, clients = self.clients["ecs"], self.clients
        services = {
            stage: ecs.describe_services(cluster=s.cluster, services=[s.service])["services"][0]["taskDefinition"]
            for stage, s in self.world.account.services.items()
        }
        return {
            "deployer": self.deployer_table(),
            "config": _scan(clients["config"]),
            "builds": clients["codebuild"].list_builds_for_project(projectName=self.world.account.build_project)["ids"],
            "task_definitions": ecs.list_task_definitions()["taskDefinitionArns"],
            "services": services,
        }

    def clear_idempotency(self) -> None:
        """Forget Powertools' idempotency records, so every example really runs the handler."""
        items = self.table.query(KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": "idempotency#"})
        with self.table.batch_writer() as batch:
            for item in items["Items"]:
                batch.delete_item(Key={"pk": item["pk"], "sk": item["sk"]})


def _scan(table: Any) -> list[dict[str, Any]]:
    items = table.scan(ConsistentRead=True)["Items"]
    return sorted(items, key=lambda item: json.dumps(item, sort_keys=True, default=str))


def template_environment(refs: dict[str, str]) -> dict[str, str]:
    """The functions' Globals environment from template.yaml, with every !Ref resolved."""
    variables = template.load()["Globals"]["Function"]["Environment"]["Variables"]
    env = {}
    for name, value in variables.items():
        if isinstance(value, dict):
            assert set(value) == {"Ref"}, f"{name}: only !Ref is resolved here"
            assert value["Ref"] in refs, f"{name}: template.yaml refers to {value['Ref']}, unknown to this test"
            env[name] = refs[value["Ref"]]
        else:
            env[name] = str(value)
    return env


def load_handler(function: str) -> ModuleType:
    """functions/<function>/app.py, imported from its path (the functions are not a package)."""
    path = REPOSITORY_ROOT / "functions" / function / "app.py"
    spec = importlib.util.spec_from_file_location(f"bad_input_{function}_app", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clear_caches(handlers: dict[str, ModuleType] | None = None) -> None:
    runtime.settings.cache_clear()
    runtime.deps.cache_clear()
    aws._cached_client.cache_clear()
    if handlers and "approvals_http" in handlers:
        handlers["approvals_http"].endpoint.cache_clear()


def seed(world: World) -> str:
    """The samples' release, already RELEASED (so a sample that still parses changes nothing),
    and another release waiting for the prod approval; returns that approval's token."""
    store = world.store
    build = load_event("build_succeeded")
    release, _ = store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=RELEASE_COMMIT,
        previous_commit=None,
        pusher=None,
        pushed_at="2026-11-29T09:00:00Z",
    )
    store.index_build(build["detail"]["build-id"], release.release_id)
    store.save(release, state=ReleaseState.RELEASED, stage="prod", build_arn=build["detail"]["build-id"])
    waiting, _ = store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=commit_id("waiting"),
        previous_commit=None,
        pusher=None,
        pushed_at="2026-11-29T09:30:00Z",
    )
    digest = "sha256:" + "c" * 64
    store.transition(waiting, ReleaseState.BUILT, image_uri=f"{world.account.ecr_repository_uri}@{digest}")
    store.save(waiting, image_digest=digest)
    store.transition(waiting, ReleaseState.DEPLOYED, stage="dev")
    assert store.enter_stage(waiting, "prod")
    approvals = world.deps.approvals
    assert approvals is not None
    approval, token = approvals.request(waiting, "prod", approvers=("U012ABCDEF",), expires_in_hours=24)
    store.transition(
        waiting,
        ReleaseState.AWAITING_APPROVAL,
        stage="prod",
        approval_id=approval.approval_id,
        approval_expires_at=approval.expires_at.isoformat(),
    )
    return token


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    shared = logging.getLogger("deployer")
    saved = (list(shared.handlers), shared.propagate, shared.level)
    with pytest.MonkeyPatch.context() as mp:
        for name, value in BASE_ENV.items():
            mp.setenv(name, value)
        calls = AwsCalls()
        calls.install(mp)
        with mock_aws():
            world = make_world("badinput")
            secrets = boto3.client("secretsmanager")
            key_arn = secrets.create_secret(Name="signing-key", SecretString=SIGNING_KEY.decode())["ARN"]
            slack_arn = secrets.create_secret(Name="slack", SecretString="{}")["ARN"]
            interactive_arn = secrets.create_secret(
                Name="slack-interactive", SecretString=json.dumps({"signing_secret": SLACK_SIGNING_SECRET})
            )["ARN"]
            refs = {
                "LogLevel": "INFO",
                "Environment": "badinput",
                "DeployerTable": world.names.table,
                "ConfigTable": world.names.config_table,
                "DeployerBus": world.names.bus,
                "ApprovalSigningKey": key_arn,
                "SlackSecret": slack_arn,
            }
            for name, value in template_environment(refs).items():
                mp.setenv(name, value)
            mp.setenv("DEPLOYER_APPROVAL_URL", APPROVAL_URL)
            clear_caches()
            token = seed(world)
            handlers = {function: load_handler(function) for function in (*FUNCTIONS, "approvals_http")}
            yield Env(world, calls, handlers, token, interactive_arn)
            clear_caches(handlers)
    route_logs_to(sys.__stdout__)
    shared.handlers, shared.propagate = saved[0], saved[1]
    shared.setLevel(saved[2])


@pytest.fixture
def unchanged(env: Env) -> Iterator[Env]:
    """The shared world, checked whole after the test: tables, builds, task definitions, services;
    `env.baseline` is its deployer table, which every call is checked against."""
    before = env.snapshot()
    env.baseline = before["deployer"]
    yield env
    assert env.snapshot() == before


def route_logs_to(stream: Any) -> None:
    """Powertools' handler holds the stdout of its first import; point it at `stream`."""
    for name in (LOG_SERVICE, "deployer"):
        for handler in logging.getLogger(name).handlers:
            if type(handler) is logging.StreamHandler:  # Powertools' own, not pytest's capture handlers
                handler.stream = stream  # not setStream: it flushes the previous test's closed capture


def route_logs_to_stdout() -> None:
    route_logs_to(sys.stdout)


def log_lines(out: str) -> list[dict[str, Any]]:
    """Powertools' JSON log lines (metrics' EMF lines apart); anything else on stdout is a failure."""
    lines = []
    for text in out.splitlines():
        if not text.strip():
            continue
        record = json.loads(text)
        assert isinstance(record, dict), text[:200]
        if "_aws" in record:
            continue
        lines.append(record)
    return lines


def invoke(env: Env, function: str, event: Any, capsys: pytest.CaptureFixture[str]) -> tuple[Any, str]:
    capsys.readouterr()
    response = env.handlers[function].lambda_handler(event, FakeContext(function_name=f"ecs-deployer-{function}"))
    out, _ = capsys.readouterr()
    return response, out


def outcomes(response: dict[str, Any]) -> set[str]:
    if "outcome" in response:
        return {str(response["outcome"])}
    result = response["result"]
    results = result if isinstance(result, list) else [result]
    return {str(r["outcome"]) for r in results}


def model_for(function: str, event: Any) -> Any:
    """The model the function's handler parses `event` with (on_deployment chooses by detail-type)."""
    if function == "on_deployment" and isinstance(event, dict) and event.get("detail-type") == ECS_HOOK_STATE_CHANGE:
        return EcsHookStateChangeEvent
    if function == "on_deployment" and isinstance(event, dict) and event.get("detail-type") == ECS_TASK_STATE_CHANGE:
        return EcsTaskStateChangeEvent
    if function == "on_approval" and isinstance(event, dict) and event.get("detail-type") == ROLLBACK_REQUESTED:
        return RollbackRequestedEvent
    return MODEL_OF[function]


def check_one_event(env: Env, function: str, event: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole property for one event fed to one function's real handler."""
    try:
        parse_event(model_for(function, event), event)
        refused = False
    except BadInput:
        refused = True
    env.calls.made.clear()
    response, out = invoke(env, function, event, capsys)
    # THEN a normal return with a known outcome
    assert isinstance(response, dict)
    # (a mutation can leave a rollback request well formed, naming a stage with nothing earlier to
    # go back to: answered so, nothing changed)
    assert outcomes(response) <= {"refused", "ignored", "duplicate", "invalid_config", "nothing_to_roll_back"}
    # AND nothing changed: no AWS write of any kind (no build, no task definition, no UpdateService,
    # no event; idempotency records apart), the same table (and the same world: `unchanged`)
    assert env.calls.writes() == []
    assert env.deployer_table() == env.baseline
    # AND the log says it once, clearly, without quoting the event
    lines = log_lines(out)
    assert CANARY not in out
    event_id = str(event.get("id", "?")) if isinstance(event, dict) else "?"
    if refused:
        named = runtime.usable_event_id(event)  # the id when it looks like one, else "(no usable id)"
        assert outcomes(response) == {"refused"}
        assert len(response["reason"]) <= MAX_MESSAGE_CHARS
        assert len(lines) == 1, lines
        (line,) = lines
        assert line["level"] == "ERROR"
        assert line["event_id"] == named
        assert line["message"].startswith(f"refused event {named}: ")
    else:
        assert outcomes(response) != {"refused"}
        assert [line for line in lines if line["level"] not in {"INFO", "DEBUG"}] == []
        named = runtime.usable_event_id(event)  # what runtime.run's outcome line calls the event
        assert any(event_id in str(line["message"]) or named in str(line["message"]) for line in lines)


# --- mutations -------------------------------------------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=10,
)
ODD_TEXT = st.one_of(
    st.text(st.characters(codec=None, categories=["Cc", "Cf", "Cs", "Co", "Zs", "Zl", "Mn", "So"]), min_size=1),
    st.sampled_from(
        [
            "",
            " ",
            "\x00",
            "\u202eevil",
            "web\u200b",
            "ｗｅｂ",
            "main\n",
            "\ud800",
            "💥" * 50,
            "../../etc/passwd",
            "<script>alert(1)</script>",
            "${jndi:ldap://x}",
            "%s%s%n",
        ]
    ),
    st.text(min_size=1, max_size=60),
)
BIG_SIZES = st.sampled_from([1_025, 70_000, 300_000])
FOREIGN_KINDS = [
    *sorted({(load_event(n)["source"], load_event(n)["detail-type"]) for n in sample_names()}),
    ("aws.codecommit", "CodeCommit Pull Request State Change"),
    ("aws.ecs", "ECS Task State Change"),
    ("ecs-deployer", "Release State Change"),
    ("aws.codebuild", "CodeBuild Build Phase Change"),
]
Path_ = tuple[str | int, ...]


def paths_of(value: Any, prefix: Path_ = ()) -> list[Path_]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(paths_of(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(paths_of(child, (*prefix, index)))
    return found


def get_at(value: Any, path: Path_) -> Any:
    for part in path:
        value = value[part]
    return value


def replaced(event: Any, path: Path_, new: Any) -> Any:
    if not path:
        return new
    get_at(event, path[:-1])[path[-1]] = new
    return event


def retyped(draw: st.DrawFn, current: Any) -> Any:
    return draw(JSON_VALUES.filter(lambda v: type(v) is not type(current)))


def oversized(draw: st.DrawFn, current: Any, sizes: st.SearchStrategy[int]) -> Any:
    size = draw(sizes)
    if isinstance(current, list) and current:
        return (current * (size // 100 // len(current) + 1))[: size // 100]
    if isinstance(current, dict):
        return {**current, **{f"k{i}": "v" * 10 for i in range(size // 100)}}
    if isinstance(current, int) and not isinstance(current, bool):
        return 10 ** min(size, 4000)
    text = current if isinstance(current, str) and current else draw(st.sampled_from(["x", "é", "7", "💥"]))
    return (text * (size // len(text) + 1))[:size]


@st.composite
def mutated(
    draw: st.DrawFn, document: dict[str, Any], sizes: st.SearchStrategy[int] = BIG_SIZES, *, event: bool = True
) -> Any:
    """`document` broken in one to three ways. An `event` gets a fresh id first (no example replays
    another's idempotency record) and, last, a canary in harmless extra fields."""
    result: Any = copy.deepcopy(document)
    if event:
        result["id"] = str(uuid.uuid4())
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths_of(result)))
        current = get_at(result, path)
        operation = draw(st.sampled_from(["drop", "retype", "oversize", "unicode", "extra", "foreign", "kind"]))
        if operation == "drop" and path:
            parent = get_at(result, path[:-1])
            del parent[path[-1]]
        elif operation == "drop":
            result = {}
        elif operation == "retype":
            result = replaced(result, path, retyped(draw, current))
        elif operation == "oversize":
            result = replaced(result, path, oversized(draw, current, sizes))
        elif operation == "unicode":
            result = replaced(result, path, draw(ODD_TEXT))
        elif operation == "extra" and isinstance(current, dict):
            current.update(draw(st.dictionaries(st.text(max_size=20), JSON_VALUES, min_size=1, max_size=3)))
        elif operation == "foreign":
            # a value lifted from another sample: realistic-looking, in the wrong place
            other = load_event(draw(st.sampled_from(sample_names())))
            result = replaced(result, path, copy.deepcopy(get_at(other, draw(st.sampled_from(paths_of(other))))))
        elif operation == "kind" and isinstance(result, dict):
            source, detail_type = draw(st.sampled_from(FOREIGN_KINDS))
            result["source"], result["detail-type"] = source, detail_type
    if event and isinstance(result, dict):
        result["x-canary"] = CANARY
        if isinstance(result.get("detail"), dict):
            result["detail"]["x-canary"] = {"password": CANARY}
    return result


# --- EventBridge functions --------------------------------------------------------------------------


def test_every_sample_belongs_to_one_function() -> None:
    assert sorted(n for names in SAMPLES.values() for n in names) == sample_names()


@pytest.mark.parametrize("function", FUNCTIONS)
def test_samples_fed_to_another_function_are_refused_once_and_change_nothing(
    unchanged: Env, capsys: pytest.CaptureFixture[str], function: str
) -> None:
    env = unchanged
    route_logs_to_stdout()
    for sample in sample_names():
        if sample in SAMPLES[function]:
            continue  # its own function: covered by the mutations below
        # GIVEN a sample event of another kind (foreign source and detail type for this function)
        env.clear_idempotency()
        event = load_event(sample)
        event["id"] = str(uuid.uuid4())
        # WHEN the function's real handler receives it THEN refused, one ERROR line, nothing changed
        check_one_event(env, function, event, capsys)


@pytest.mark.parametrize("function", FUNCTIONS)
@FAST
@given(data=st.data())
def test_mutated_samples_are_refused_or_ignored_and_change_nothing(
    unchanged: Env, capsys: pytest.CaptureFixture[str], function: str, data: st.DataObject
) -> None:
    # GIVEN one of the function's own samples, broken in one to three ways
    env = unchanged
    route_logs_to_stdout()
    env.clear_idempotency()
    event = data.draw(mutated(load_event(data.draw(st.sampled_from(SAMPLES[function])))))
    # WHEN the real handler receives it THEN a normal return, one clear line, nothing changed
    check_one_event(env, function, event, capsys)


@pytest.mark.parametrize("function", FUNCTIONS)
@settings(FAST, max_examples=15)
@given(event=JSON_VALUES)
def test_any_json_at_all_is_refused_once_and_changes_nothing(
    unchanged: Env, capsys: pytest.CaptureFixture[str], function: str, event: Any
) -> None:
    # GIVEN any JSON value as the whole event (a direct invoke can send anything)
    env = unchanged
    route_logs_to_stdout()
    env.clear_idempotency()
    # WHEN the real handler receives it THEN refused, one ERROR line, nothing changed
    check_one_event(env, function, event, capsys)


def test_a_refused_event_with_a_huge_id_logs_one_bounded_line(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a push whose id is 300 000 characters (a direct invoke; EventBridge ids are UUIDs)
    route_logs_to_stdout()
    env.clear_idempotency()
    event = load_event("push_created")
    event["id"] = "i" * 300_000
    event["detail"]["commitId"] = "not a commit"
    # WHEN the real handler receives it
    response, out = invoke(env, "on_push", event, capsys)
    # THEN refused with one line that stays short
    assert response["outcome"] == "refused"
    (line,) = log_lines(out)
    assert len(json.dumps(line)) <= 4096


# --- deployer validate ---------------------------------------------------------------------------

EXAMPLE = REPOSITORY_ROOT / "pipelines.example.yaml"
EXAMPLE_TEXT = EXAMPLE.read_text(encoding="utf-8")
HOSTILE_DOCUMENTS = {
    "billion-laughs": "a: &a [x,x,x,x,x,x,x,x,x]\n"
    + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [{','.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))
    + "pipelines: *i\n",
    "recursive-alias": "a: &a [*a]\npipelines: *a\n",
    "deep-flow": "[" * 100_000,
    "deep-block": "".join(" " * i + "a:\n" for i in range(300)),
    "python-tag": "pipelines: !!python/object/apply:os.system ['true']\n",
    "binary-tag": "pipelines: !!binary aGVsbG8=\n",
    "merge-keys": "base: &b {name: web}\npipelines: [{<<: *b, <<: *b}]\n",
    "duplicate-keys": "pipelines: []\npipelines: []\n",
    "two-documents": "pipelines: []\n---\npipelines: []\n",
    "bom-and-tabs": "\ufeffpipelines:\n\t- name: web\n",
    "nul-byte": "pipelines: [\x00]\n",
    "surrogate-escape": 'pipelines: [{name: "\\ud800"}]\n"\\udcff": 1\n',
    "huge-int": "pipelines: [{name: web, stages: [{rollout: {maximumPercent: " + "9" * 5000 + "}}]}]\n",
    "too-large": "# " + "x" * (MAX_CONFIG_BYTES + 10) + "\npipelines: []\n",
    "only-comment": "# nothing\n",
    "empty": "",
}


@pytest.fixture(scope="module")
def pipeline_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pipelines")


def validate(capsys: pytest.CaptureFixture[str], path: Path, *options: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = deployer_main(["validate", *options, str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def check_validate(capsys: pytest.CaptureFixture[str], path: Path, *, readable: bool) -> None:
    """Never raises; 0 valid, 1 invalid, 2 unreadable; no traceback; --json agrees."""
    code, out, err = validate(capsys, path)
    assert code in ({0, 1} if readable else {0, 1, 2})
    assert "Traceback" not in out + err
    if code == 2:
        assert out == ""
        assert err.startswith("deployer validate: error: ")
        assert err.count("\n") == 1
        return
    assert out.splitlines()[-1].startswith(f"{path}: {'valid' if code == 0 else 'invalid'}")
    json_code, json_out, _ = validate(capsys, path, "--json")
    assert json_code == code
    assert json.loads(json_out)["valid"] is (code == 0)


@FAST
@given(text=st.text(max_size=2_000))
def test_validate_never_raises_on_arbitrary_text(
    capsys: pytest.CaptureFixture[str], pipeline_files: Path, text: str
) -> None:
    path = pipeline_files / "text.yaml"
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    check_validate(capsys, path, readable=False)


@settings(FAST, max_examples=25)
@given(raw=st.binary(max_size=2_000))
def test_validate_never_raises_on_arbitrary_bytes(
    capsys: pytest.CaptureFixture[str], pipeline_files: Path, raw: bytes
) -> None:
    path = pipeline_files / "bytes.yaml"
    path.write_bytes(raw)
    check_validate(capsys, path, readable=False)


@FAST
@given(data=st.data())
def test_validate_never_raises_on_a_mutated_example(
    capsys: pytest.CaptureFixture[str], pipeline_files: Path, data: st.DataObject
) -> None:
    # GIVEN pipelines.example.yaml broken in its structure (the same mutations as the events)
    # (oversized up to 20 000 characters: PyYAML's pure-Python dump is slow; too-large files are below)
    document = data.draw(mutated(yaml.safe_load(EXAMPLE_TEXT), st.sampled_from([1_025, 20_000]), event=False))
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    path = pipeline_files / "mutated.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    # WHEN validated THEN 0 or 1, never an exception
    check_validate(capsys, path, readable=not _has_surrogates(text))


def test_validate_quotes_a_lone_surrogate_escaped_instead_of_raising(
    capsys: pytest.CaptureFixture[str], pipeline_files: Path
) -> None:
    # GIVEN a rollout whose `alarms` is YAML's "\ud800" (a lone surrogate; hypothesis found it)
    data = yaml.safe_load(EXAMPLE_TEXT)
    data["pipelines"][0]["stages"][0]["rollout"]["alarms"] = "\ud800"
    path = pipeline_files / "surrogate.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=False), encoding="utf-8")
    # WHEN validated, as text and as JSON THEN invalid (exit 1), the value shown escaped
    check_validate(capsys, path, readable=True)
    code, out, _ = validate(capsys, path)
    assert code == 1
    assert "\\ud800" in out


def _has_surrogates(text: str) -> bool:
    return any("\ud800" <= c <= "\udfff" for c in text)


@FAST
@given(data=st.data())
def test_validate_never_raises_on_an_example_edited_as_text(
    capsys: pytest.CaptureFixture[str], pipeline_files: Path, data: st.DataObject
) -> None:
    # GIVEN pipelines.example.yaml edited as text: lines cut, repeated, re-indented, spliced
    lines = EXAMPLE_TEXT.splitlines(keepends=True)
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, max(0, len(lines) - 1)))
        edit = data.draw(st.sampled_from(["cut", "repeat", "indent", "dedent", "splice", "truncate"]))
        if not lines:
            break
        if edit == "cut":
            del lines[at : at + data.draw(st.integers(1, 10))]
        elif edit == "repeat":
            lines[at:at] = lines[at : at + data.draw(st.integers(1, 10))]
        elif edit == "indent":
            lines[at] = " " * data.draw(st.integers(1, 5)) + lines[at]
        elif edit == "dedent":
            lines[at] = lines[at].lstrip(" ")
        elif edit == "splice":
            line = lines[at]
            cut = data.draw(st.integers(0, len(line)))
            lines[at] = (
                line[:cut] + data.draw(st.text(string.printable + "{}[]&*!|>'\"%@`#:-?,", max_size=12)) + line[cut:]
            )
        else:
            lines[at] = lines[at][: data.draw(st.integers(0, len(lines[at])))]
            del lines[at + 1 :]
    path = pipeline_files / "edited.yaml"
    path.write_text("".join(lines), encoding="utf-8")
    # WHEN validated THEN 0 or 1, never an exception
    check_validate(capsys, path, readable=True)


@pytest.mark.parametrize("name", sorted(HOSTILE_DOCUMENTS))
def test_validate_refuses_hostile_documents_quickly(
    capsys: pytest.CaptureFixture[str], pipeline_files: Path, name: str
) -> None:
    path = pipeline_files / f"{name}.yaml"
    path.write_text(HOSTILE_DOCUMENTS[name], encoding="utf-8", errors="surrogatepass")
    started = time.monotonic()
    check_validate(capsys, path, readable=True)
    assert time.monotonic() - started < 10


# --- the approvals Function URL ------------------------------------------------------------------

METHODS = st.sampled_from(
    ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "get", "pOsT"]
) | st.text(string.ascii_letters, min_size=1, max_size=10)
TRACE_MARKERS = ("Traceback", 'File "/', "Error:", "Exception", "botocore", "site-packages")


@st.composite
def mutated_tokens(draw: st.DrawFn, token: str) -> str:
    """The real token, changed: never the token itself."""
    edit = draw(st.sampled_from(["flip", "cut", "append", "case", "other"]))
    if edit == "flip":
        at = draw(st.integers(0, len(token) - 1))
        replacement = draw(
            st.sampled_from(string.ascii_letters + string.digits + "-_.~%").filter(lambda c: c != token[at])
        )
        result = token[:at] + replacement + token[at + 1 :]
    elif edit == "cut":
        result = token[: draw(st.integers(0, len(token) - 1))]
    elif edit == "append":
        result = token + draw(st.text(string.ascii_letters + "./%", min_size=1, max_size=5))
    elif edit == "case":
        result = token.swapcase()
    else:
        result = draw(st.text(min_size=1, max_size=200))
    return result if result != token else token + "x"


@st.composite
def paths(draw: st.DrawFn, token: str) -> str:
    return draw(
        st.sampled_from(
            ["/", "", "/approvals", "/approvals/", "/slack/interactions", "/slack/interactions/", "//approvals//x"]
        )
        | mutated_tokens(token).map(lambda t: f"/approvals/{urllib.parse.quote(t, safe='')}")
        | mutated_tokens(token).map(lambda t: f"/approvals/{t}")
        | st.just(f"/approvals/{token}/extra")
        | st.text(min_size=1, max_size=300).map(lambda t: "/" + t)
    )


def slack_signed(body: bytes, *, when: float | None = None) -> dict[str, str]:
    stamp = str(int(time.time() if when is None else when))
    digest = hmac.new(SLACK_SIGNING_SECRET.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    return {"x-slack-request-timestamp": stamp, "x-slack-signature": "v0=" + digest.hexdigest()}


@st.composite
def interaction_bodies(draw: st.DrawFn, token: str) -> bytes:
    """block_actions payloads, some well formed, carrying a changed token (never the real one)."""
    action = {
        "action_id": draw(st.sampled_from(["approve", "reject", "review", ""]) | st.text(max_size=10)),
        "value": draw(mutated_tokens(token) | st.none()),
        "type": "button",
    }
    payload: dict[str, Any] = {
        "type": draw(st.sampled_from(["block_actions", "view_submission"])),
        "user": {"id": draw(st.sampled_from(["U012ABCDEF", "U099ZZZZZZ", ""])), "username": "someone"},
        "actions": draw(st.sampled_from([[action], [], [action, action]])),
        "response_url": draw(
            st.sampled_from(["http://127.0.0.1:9/x", "https://example.com/hook", "javascript:alert(1)", ""]) | st.none()
        ),
    }
    if draw(st.booleans()):
        payload = draw(mutated(payload, event=False))
    return ("payload=" + urllib.parse.quote(json.dumps(payload))).encode()


@st.composite
def requests(draw: st.DrawFn, token: str) -> dict[str, Any]:
    """A Function URL event (payload format 2.0) with arbitrary method, path, headers and body."""
    path = draw(paths(token))
    body: bytes | None = draw(
        st.none()
        | st.binary(max_size=300)
        | st.text(max_size=300).map(lambda t: t.encode("utf-8", errors="surrogatepass"))
        | st.sampled_from([b"decision=maybe", b"decision=", b"decision=approve&decision=reject", b"a" * 10_000])
        | interaction_bodies(token)
    )
    headers = draw(st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=50), max_size=4))
    headers["content-type"] = draw(
        st.sampled_from(
            [
                "application/x-www-form-urlencoded",
                "text/plain",
                "application/json",
                "",
                "multipart/form-data; boundary=x",
            ]
        )
        | st.text(max_size=40)
    )
    if body is not None and draw(st.booleans()):
        headers |= slack_signed(body, when=draw(st.sampled_from([None, 0.0, time.time() - 3600])))
    method = draw(METHODS)
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": draw(st.sampled_from(["", "decision=approve", "a=%ZZ"]) | st.text(max_size=30)),
        "headers": {"host": HOST, **headers},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": HOST.split(".", 1)[0],
            "domainName": HOST,
            "domainPrefix": HOST.split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": draw(st.sampled_from(["203.0.113.9", "2001:db8::1", "not-an-ip", ""])),
                "userAgent": draw(st.text(max_size=40)),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1796032800000,
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        encoding = draw(st.sampled_from(["base64", "text", "broken-base64"]))
        if encoding == "base64":
            event["body"], event["isBase64Encoded"] = base64.b64encode(body).decode(), True
        elif encoding == "text":
            event["body"] = body.decode("utf-8", errors="replace")
        else:
            event["body"], event["isBase64Encoded"] = body.decode("utf-8", errors="replace") + "!*", True
    return event


@pytest.fixture
def approvals_http(env: Env, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The approvals handler with a Slack signing secret (signed garbage reaches the parser)."""
    monkeypatch.setenv("DEPLOYER_SLACK_SECRET", env.interactive_slack_secret_arn)
    module = env.handlers["approvals_http"]
    module.endpoint.cache_clear()
    route_logs_to_stdout()
    before = env.snapshot()
    yield module
    env.calls.faults.clear()
    module.endpoint.cache_clear()
    assert env.snapshot() == before


def call_url(module: ModuleType, event: dict[str, Any]) -> tuple[int, str]:
    response = module.lambda_handler(event, FakeContext(function_name="ecs-deployer-approvals-http"))
    body = str(response.get("body", ""))
    if response.get("isBase64Encoded"):
        body = base64.b64decode(body).decode("utf-8", errors="replace")
    return int(response["statusCode"]), body


@settings(FAST, max_examples=30)
@given(data=st.data())
def test_any_request_to_the_approvals_url_is_answered_below_500_and_changes_nothing(
    env: Env, approvals_http: ModuleType, data: st.DataObject
) -> None:
    # GIVEN a release waiting for approval, and an arbitrary request (never with its real token)
    event = data.draw(requests(env.token))
    before = env.deployer_table()
    env.calls.made.clear()
    # WHEN the Function URL receives it
    status, body = call_url(approvals_http, event)
    # THEN a page or a plain answer below 500, no stack trace, no token, nothing written
    assert 200 <= status < 500, (status, body[:300])
    assert not any(marker in body for marker in TRACE_MARKERS), body[:500]
    assert env.token not in body
    assert env.calls.writes() == []
    assert env.deployer_table() == before


FAULTS = {
    "throttled": throttled,
    "server-error": server_error,
    "unreachable": unreachable,
}


# A GET reads the approval, the release and the stage's holder (Approvals.check), then the release
# again for the page (ApprovalHttp.show). Every read goes through aws.translate (ReleaseStore's
# table is translated), so each declared fault answers 503 "Try again".


@pytest.mark.parametrize(
    ("service", "operation", "skip", "fault"),
    [
        ("secretsmanager", "GetSecretValue", 0, "unreachable"),
        ("secretsmanager", "GetSecretValue", 0, "throttled"),
        ("dynamodb", "GetItem", 0, "throttled"),
        pytest.param("dynamodb", "GetItem", 1, "server-error", id="release-read"),
        pytest.param("dynamodb", "GetItem", 2, "unreachable", id="stage-holder-read"),
        ("dynamodb", "GetItem", 3, "server-error"),
    ],
)
def test_a_declared_fault_behind_the_page_answers_503_and_changes_nothing(
    env: Env, approvals_http: ModuleType, service: str, operation: str, skip: int, fault: str
) -> None:
    # GIVEN a cold approvals function and a fault on the n-th read of one kind it makes
    approvals_http.endpoint.cache_clear()
    env.calls.faults[:] = [Fault(service, operation, FAULTS[fault](service, operation), skip=skip)]
    env.calls.made.clear()
    # WHEN the link is opened
    try:
        status, page = call_url(approvals_http, _url_event("GET", f"/approvals/{env.token}"))
    finally:
        env.calls.faults.clear()
    assert sum(made[:2] == (service, operation) for made in env.calls.made) > skip, "the fault was not reached"
    # THEN a 503 page, never a 500 nor a trace, nothing written (and the world unchanged: the fixture)
    assert status == 503, (status, page[:300])
    assert "Try again" in page
    assert not any(marker in page for marker in TRACE_MARKERS)
    assert env.token not in page
    assert env.calls.writes() == []


def _url_event(method: str, path: str) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": HOST, "user-agent": "test"},
        "requestContext": {
            "accountId": "anonymous",
            "apiId": HOST.split(".", 1)[0],
            "domainName": HOST,
            "domainPrefix": HOST.split(".", 1)[0],
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9"},
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1796032800000,
        },
        "isBase64Encoded": False,
    }
