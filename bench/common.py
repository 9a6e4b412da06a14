"""What the benchmarks share: statistics, a fake AWS environment, a recorder of AWS calls, and
the flow's dependencies wired as the functions wire them."""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.world import World

REPO_ROOT = Path(__file__).resolve().parents[1]

# The same fake credentials the tests use: nothing here can reach a real account.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
}
FAKE_AWS_ENV = {
    **FAKE_CREDENTIALS,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "EcsDeployerBench",
    # moto's EC2 backend otherwise loads thousands of AMIs nobody here needs.
    "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
}
_CLEARED = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")


# -- statistics -----------------------------------------------------------------------------------


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples)


def p95(samples: Sequence[float]) -> float:
    """Nearest-rank 95th percentile (defined for any non-empty sample)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline > 0 else math.inf


# -- a fake AWS -----------------------------------------------------------------------------------


@contextmanager
def fake_aws(endpoint_url: str | None = None) -> Iterator[None]:
    """Fake credentials, a fixed region and a fresh default boto3 session (clients created
    inside follow `endpoint_url`, e.g. moto server); everything is restored on exit."""
    import boto3

    saved_env = {key: os.environ.get(key) for key in (*FAKE_AWS_ENV, *_CLEARED)}
    saved_session = boto3.DEFAULT_SESSION
    try:
        for key in _CLEARED:
            os.environ.pop(key, None)
        os.environ.update(FAKE_AWS_ENV)
        if endpoint_url:
            os.environ["AWS_ENDPOINT_URL"] = endpoint_url
        boto3.setup_default_session()
        yield
    finally:
        boto3.DEFAULT_SESSION = saved_session
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# -- counting AWS calls ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    service: str  # botocore's service id: "ECS", "DynamoDB", "Application Auto Scaling", ...
    operation: str
    table: str | None  # DynamoDB only
    params: str  # the request's parameters as canonical JSON, to spot repeated reads

    @property
    def label(self) -> str:
        return f"{self.operation}[{self.table}]" if self.table else self.operation


@dataclass
class CallRecorder:
    """Records every AWS API call made by clients of the default boto3 session created after
    `install()`, while `recording()` is active. Hooked on `before-parameter-build`, which fires
    once per API call (retries are counted apart, on `before-send`)."""

    calls: list[Call] = field(default_factory=list)
    call_ms: list[float] = field(default_factory=list)  # client-side time of each call, round trip included
    items_returned: int = 0  # by Query and Scan: what reads cost grows with
    http_attempts: int = 0
    active: bool = False
    _started: float = 0.0

    def install(self) -> None:
        import boto3

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        session = boto3.DEFAULT_SESSION
        assert session is not None
        session.events.register("before-parameter-build", self._on_call)
        session.events.register("before-send", self._on_send)
        session.events.register("after-call", self._on_done)
        session.events.register("after-call-error", self._on_done)

    @contextmanager
    def recording(self) -> Iterator[list[Call]]:
        self.calls = []
        self.call_ms = []
        self.items_returned = 0
        self.http_attempts = 0
        self.active = True
        try:
            yield self.calls
        finally:
            self.active = False

    def _on_call(self, params: Mapping[str, Any], model: Any, **_: Any) -> None:
        if not self.active:
            return
        table = params.get("TableName") if model.service_model.service_id == "DynamoDB" else None
        canonical = json.dumps(params, sort_keys=True, default=str)
        self.calls.append(Call(model.service_model.service_id, model.name, table, canonical))
        self._started = time.perf_counter()

    def _on_done(self, parsed: Mapping[str, Any] | None = None, **_: Any) -> None:
        if self.active and self._started:
            self.call_ms.append((time.perf_counter() - self._started) * 1000)
            self._started = 0.0
            last = self.calls[-1]
            if last.service == "DynamoDB" and last.operation in {"Query", "Scan"} and isinstance(parsed, Mapping):
                self.items_returned += int(parsed.get("Count", 0))

    def _on_send(self, **_: Any) -> None:
        if self.active:
            self.http_attempts += 1


# -- the flow's dependencies ----------------------------------------------------------------------


SIGNING_KEY_SECRET = "ecs-deployer-bench/approval-signing-key"  # noqa: S105 - a secret's name, in moto
APPROVAL_BASE_URL = "https://approvals.bench.example"


def create_signing_key_secret() -> None:
    """The approval signing key in Secrets Manager, where the functions read it."""
    import boto3

    boto3.client("secretsmanager").create_secret(
        Name=SIGNING_KEY_SECRET, SecretString="bench-signing-key-of-at-least-32-bytes!!"
    )


def wire_like_the_functions(world: World) -> None:
    """Rewire the world's Deps as `deployer.runtime.deps()` does: every transition is also
    published on the deployer's bus (make_world only collects them), so PutEvents is counted
    and timed, and approvals read their signing key from Secrets Manager (SIGNING_KEY_SECRET,
    made by `create_signing_key_secret`; cached by Powertools for this wiring's lifetime, so
    wiring again is a cold start). The configuration is still read through the world's
    ConfigStore (max age 0: every read goes to the table, as on a cold start). Slack is not
    wired: its posts are not AWS calls."""
    import boto3

    from deployer.approvals import signing_key_from_secret
    from deployer.deps import build_deps

    world.deps = build_deps(
        boto3.resource("dynamodb").Table(world.names.table),
        world.config_store.load,
        boto3.client,
        listeners=[world.transitions.append],
        event_bus=world.names.bus,
        signing_key=signing_key_from_secret(SIGNING_KEY_SECRET, client=boto3.client("secretsmanager")),
        approval_base_url=APPROVAL_BASE_URL,
    )
    world.store = world.deps.store


# -- bytecode caches ------------------------------------------------------------------------------


class BytecodeCaches:
    """Two `pycache_prefix` trees under `root`, so benchmarks never write into the source tree
    and never depend on the caller's PYTHONDONTWRITEBYTECODE:

    - `warm`: filled by the first (warm-up) run, then every module is read from bytecode;
    - `cold`: a copy of `warm` without the given source trees, used with -B, so those trees are
      compiled on every run while the interpreter's own standard library stays compiled (as on
      Lambda, where the runtime is compiled and a `sam build` artifact ships no .pyc)."""

    def __init__(self, root: Path) -> None:
        self.warm = root / "pyc-warm"
        self.cold = root / "pyc-cold"
        self.warm.mkdir(parents=True, exist_ok=True)

    def freeze_cold(self, *uncompiled: Path) -> None:
        import shutil

        shutil.rmtree(self.cold, ignore_errors=True)
        shutil.copytree(self.warm, self.cold)
        for tree in uncompiled:
            shutil.rmtree(self.cold / tree.relative_to(tree.anchor), ignore_errors=True)


# -- moto server over HTTP, with a log of the requests it answered --------------------------------


@dataclass(frozen=True)
class ServedRequest:
    """One request as the server saw it: the service's signing name (from the SigV4 credential
    scope), the operation (X-Amz-Target, or the query protocol's Action) and, for the JSON
    protocols, the body."""

    service: str
    operation: str
    user_agent: str
    body: bytes
    seconds: float = 0.0  # the server's time to answer it (moto's work, not the client's)


@dataclass
class RequestLog:
    """A WSGI middleware in front of moto: every request is logged with the time moto took to
    answer it, so any process pointed at the server (boto3 in this one, a CLI in another) is
    counted and timed the same."""

    app: Any = None
    requests: list[ServedRequest] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        import io
        import re
        from urllib.parse import parse_qs

        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        scope = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target:
            operation = target.rsplit(".", 1)[-1]
        else:
            query = parse_qs(environ.get("QUERY_STRING", ""))
            if not query.get("Action") and environ.get("CONTENT_TYPE", "").startswith("application/x-www-form"):
                query = parse_qs(body.decode("utf-8", "replace"))
            operation = (query.get("Action") or [f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')}"])[0]
        started = time.perf_counter()
        answer = self.app(environ, start_response)
        if not environ.get("PATH_INFO", "").startswith("/moto-api"):
            self.requests.append(
                ServedRequest(
                    service=scope.group(1) if scope else "?",
                    operation=operation,
                    user_agent=environ.get("HTTP_USER_AGENT", ""),
                    body=body if target else b"",
                    seconds=time.perf_counter() - started,
                )
            )
        return answer


@contextmanager
def moto_server(log: RequestLog | None = None) -> Iterator[str]:
    """A moto server on a free port of 127.0.0.1, in this process, with empty backends; yields
    its URL. With `log`, every request it answers is appended to `log.requests`."""
    import logging
    import threading

    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    werkzeug = logging.getLogger("werkzeug")
    level = werkzeug.level
    werkzeug.setLevel(logging.ERROR)  # one access-log line per request otherwise
    os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
    app: Any = DomainDispatcherApplication(create_backend_app)
    if log is not None:
        log.app = app
        app = log
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}"
    try:
        reset_moto(url)
        yield url
    finally:
        reset_moto(url)
        server.shutdown()
        thread.join()
        werkzeug.setLevel(level)


def reset_moto(url: str) -> None:
    """Forget every resource of the moto server at `url`."""
    import urllib.request

    request = urllib.request.Request(f"{url}/moto-api/reset", method="POST")  # noqa: S310 - a local http URL
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        response.read()
