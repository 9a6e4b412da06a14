"""`deployer local up`: the whole deployer on one machine, no AWS account, no Docker.

- moto server (real HTTP on 127.0.0.1) is the AWS, provisioned from template.yaml's own tables,
  bus and secrets, plus a demo account (CodeCommit and ECR repositories, a CodeBuild project, dev
  and prod ECS services) and the demo pipeline published as in production;
- ECS is reached through a front (`deployer_local.ecs_front`, `AWS_ENDPOINT_URL_ECS` for the
  functions, this process and the CLI) that answers the service deployment calls moto lacks
  (List/Describe/Continue/StopServiceDeployment) from the rollout simulator's records;
- the functions run warm from the `sam build` output; an event reaches the functions whose
  EventBridge rules in template.yaml match it (`deployer_local.router`);
- a local HTTP server stands in for the approval function's Function URL;
- a local Slack sink prints what would be posted;
- CodeBuild builds and ECS rollouts are SIMULATED (`deployer_local.simulate`), and say so;
- a bare git repository is the "CodeCommit" remote: its post-receive hook posts the CodeCommit
  event to this stack's control endpoint, so a real `git push` starts a release;
- with `source="github"` (or "gitlab"), a second remote stands in for GitHub (GitLab): its hook
  sends the signed push webhook over HTTP to a local server standing in for OnWebhookFunction's
  Function URL, and the demo pipeline watches that repository instead.

Every event goes through one queue, handled in order by one dispatcher thread, so what the stack
prints reads as the story of the release.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from deployer_local import template
from deployer_local.pidlock import PidLock

STATE_FILE = Path(".local/stack.json")
LOCK_FILE_NAME = "stack.lock"  # in the stack's root: held by the running stack (deployer_local.pidlock)
ECS_ENDPOINT_ENV = "AWS_ENDPOINT_URL_ECS"  # botocore's per-service endpoint variable for ECS
LOCAL_FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
}
SLACK_BOT_TOKEN = "xoxb-local-stack"  # noqa: S105 - the local sink's token, not a secret


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - a local http URL
                return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not answer within {timeout:.0f} s") from None
            time.sleep(0.1)


@dataclass
class StackOptions:
    root: Path = Path(".local")
    environment: str = "local"
    build_dir: Path = Path(".aws-sam/build")
    fail_stages: tuple[str, ...] = ()
    fail_before: tuple[str, ...] = ()
    """Stages whose SIMULATED before-task exits 1 (a failing migration)."""
    before: bool = False
    """Publish the demo pipeline whose prod runs a before-task (`migrate`) before its service is updated."""
    step_delay: float = 0.15
    interactive_slack: bool = True
    blue_green: bool = False
    """Publish the demo pipeline whose prod is a BLUE_GREEN deployment paused for its approval."""
    several_services: bool = False
    """Run a `worker` service beside `web` in dev and prod, and publish the demo pipeline whose stages
    deploy both in one step (`services: [web, {name: worker, container: worker}]`)."""
    hook_timeout_seconds: float | None = None
    """Simulated PAUSE hooks time out after this many seconds instead of their timeoutInMinutes."""
    command: str = "deployer local up"
    """Who runs the stack, named to a second one that finds `root` taken (`root/stack.lock`)."""
    source: str = "codecommit"
    """Where the demo pipeline's pushes come from: codecommit, github or gitlab (a second remote
    whose hook sends that provider's signed push webhook to the local OnWebhookFunction URL)."""
    keep_revisions: int | None = None
    """The demo pipeline's keepRevisions (None: the default, 10)."""


DEMO_BEFORE_COMMAND = ("./manage.py", "migrate", "--noinput")
"""The demo's before-task (`deployer local up --before`): what a Django service runs before it deploys."""


def with_prod_before_task(
    pipelines_yaml: str, command: tuple[str, ...] = DEMO_BEFORE_COMMAND, *, service: str | None = None
) -> str:
    """The demo pipeline with `before: {task: migrate, command: [...]}` on its prod stage (and
    `service: NAME`, whose revision and network the task takes, when prod deploys several)."""
    import json

    runs_as = f", service: {service}" if service else ""
    line = f"        before: {{task: migrate{runs_as}, command: {json.dumps(list(command))}}}\n"
    marker = "      - name: prod\n"
    head, found, tail = pipelines_yaml.partition(marker)
    if not found:
        raise ValueError("the demo pipeline has no prod stage")
    return f"{head}{marker}{line}{tail}"


WEBHOOK_REPOSITORIES = {"github": "example-org/web-app", "gitlab": "example-group/web-app"}
"""The repository the demo pipeline watches on GitHub or GitLab, in the local stack."""


@dataclass
class LocalStack:
    options: StackOptions = field(default_factory=StackOptions)
    printer: Callable[[str], None] = print
    endpoint_url: str = ""
    ecs_endpoint_url: str = ""
    control_url: str = ""
    approval_url: str = ""
    webhook_url: str = ""
    remote: Path | None = None
    codecommit_remote: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    _stoppers: list[Callable[[], None]] = field(default_factory=list)
    _inbox: queue.Queue[tuple[dict[str, Any], str]] = field(default_factory=queue.Queue)
    _idle: threading.Event = field(default_factory=threading.Event)
    _pending: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _state_path: Path | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> LocalStack:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        from deployer_local.provision import DeployerNames

        root = self.options.root
        # First of all: a second stack over the same root must not touch the first one's files.
        lock = PidLock(root / LOCK_FILE_NAME, self.options.command).acquire()
        self._stoppers.append(lock.release)
        names = DeployerNames(self.options.environment)
        self._start_moto(root)
        self._start_ecs_front()
        self._provision(names)
        self._start_slack()
        self._start_approval_server()
        self._start_webhook_server()
        self._start_functions(names)
        self._start_control_server()
        self._start_bus_tap(names)
        self._start_simulators(names)
        self.codecommit_remote = self._create_remote(root)
        self.remote = (
            self._create_webhook_remote(root) if self.options.source != "codecommit" else self.codecommit_remote
        )
        self._write_state(names)

    def stop(self) -> None:
        """Stop every part, newest first; a signal arriving meanwhile waits until all are stopped."""
        from deployer_cli.signals import shielded

        with shielded():
            if self._state_path is not None:  # only the state file this stack wrote
                self._state_path.unlink(missing_ok=True)
                self._state_path = None
            while self._stoppers:
                stopper = self._stoppers.pop()
                try:
                    stopper()
                except Exception as exc:  # stopping goes on: nothing may be left running
                    self.printer(f"stopping: {exc}")

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- pieces -------------------------------------------------------------------------------

    def _start_moto(self, root: Path) -> None:
        port = free_port()
        log = (root / "moto.log").open("w")
        env = {**os.environ, "MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}
        process = subprocess.Popen(  # noqa: S603 - our own interpreter running moto's server
            [*_die_with_this_thread("moto.server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )

        def stop_moto() -> None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
            log.close()

        self._stoppers.append(stop_moto)
        self.endpoint_url = f"http://127.0.0.1:{port}"
        _wait_for(f"{self.endpoint_url}/moto-api/")
        os.environ.update(LOCAL_FAKE_CREDENTIALS)
        os.environ["AWS_ENDPOINT_URL"] = self.endpoint_url
        self.printer(f"AWS        moto server on {self.endpoint_url} (real HTTP; log {root / 'moto.log'})")

    def _start_ecs_front(self) -> None:
        from deployer_local.ecs_front import EcsFront, ServiceDeployments
        from deployer_local.ecs_tasks import Tasks

        self.service_deployments = ServiceDeployments()
        self.tasks = Tasks()
        front = EcsFront(self.endpoint_url, self.service_deployments, tasks=self.tasks).start()
        self._stoppers.append(front.stop)
        self.ecs_endpoint_url = front.url
        previous = os.environ.get(ECS_ENDPOINT_ENV)
        os.environ[ECS_ENDPOINT_ENV] = self.ecs_endpoint_url

        def restore() -> None:  # a later moto (a test's) must not be shadowed by a dead front
            if previous is None:
                os.environ.pop(ECS_ENDPOINT_ENV, None)
            else:
                os.environ[ECS_ENDPOINT_ENV] = previous

        self._stoppers.append(restore)
        self.printer(
            f"ECS        {self.ecs_endpoint_url} in front of moto: service deployments SIMULATED "
            f"({ECS_ENDPOINT_ENV} for the functions and the CLI)"
        )

    def _provision(self, names: Any) -> None:
        import boto3

        from deployer.pipelines.loader import load_config_text
        from deployer.pipelines.store import ConfigStore
        from deployer_local.provision import (
            DEMO_RULE,
            DEMO_SCHEDULE,
            demo_pipelines_yaml,
            provision_demo,
            provision_demo_schedules,
            provision_deployer,
        )

        session = boto3.session.Session()
        provision_deployer(names, session)
        secrets_client = session.client("secretsmanager")
        self.secret_arns: dict[str, str] = {}
        for logical_id, props in template.resources("AWS::SecretsManager::Secret").items():
            name = str(props["Name"]["Fn::Sub"]).replace("${Environment}", names.environment)
            value = props.get("SecretString") or secrets.token_urlsafe(48)
            self.secret_arns[logical_id] = secrets_client.create_secret(Name=name, SecretString=value)["ARN"]
        blue_green = self.options.blue_green
        several = self.options.several_services
        self.account = provision_demo(
            session, load_balanced=("prod",) if blue_green else (), workers=("dev", "prod") if several else ()
        )
        provision_demo_schedules(session, self.account)
        self.config_store = ConfigStore(names.config_table, max_age_seconds=0)
        source = self.options.source
        if source not in {"codecommit", *WEBHOOK_REPOSITORIES}:
            raise ValueError(f"source {source!r}: choose codecommit, github or gitlab")
        watched = f"{source}:{WEBHOOK_REPOSITORIES[source]}" if source in WEBHOOK_REPOSITORIES else None
        pipelines = demo_pipelines_yaml(
            self.account,
            blue_green=blue_green,
            source=watched,
            schedules=True,
            keep_revisions=self.options.keep_revisions,
            several_services=several,
        )
        if self.options.before:
            pipelines = with_prod_before_task(
                pipelines, service=self.account.services["prod"].service if several else None
            )
        published = self.config_store.publish(load_config_text(pipelines), "deployer local up")
        variant = " (prod: BLUE_GREEN, approved while paused at POST_TEST_TRAFFIC_SHIFT)" if blue_green else ""
        if several:
            variant += " (dev and prod each deploy web and worker)"
        if self.options.before:
            variant += f" (prod runs before-task migrate: {' '.join(DEMO_BEFORE_COMMAND)})"
        if watched:
            variant += f" (source: {watched})"
        self.printer(
            f"Provisioned from template.yaml: tables {names.table}, {names.config_table}; bus {names.bus}; "
            f"secrets; demo pipeline 'web'{variant} published (version {published.version})"
        )
        self.printer(
            f"Scheduled  rule {DEMO_RULE} (dev, hourly) and schedule {DEMO_SCHEDULE} (prod, nightly) run the "
            "services' task definitions; they follow each stage's deployment"
        )

    def _start_slack(self) -> None:
        import boto3

        from deployer_local.slack_sink import SlackSink

        sink = SlackSink(token=SLACK_BOT_TOKEN, echo=self._echo_slack)
        sink.start()
        self._stoppers.append(sink.stop)
        self.slack = sink
        self.slack_signing_secret = secrets.token_hex(16)
        settings = {
            "bot_token": SLACK_BOT_TOKEN,
            "channel": "#deploys",
            "api_base_url": sink.api_base_url,
            **({"signing_secret": self.slack_signing_secret} if self.options.interactive_slack else {}),
        }
        boto3.client("secretsmanager").put_secret_value(
            SecretId=self.secret_arns["SlackSecret"], SecretString=json.dumps(settings)
        )
        self.printer(f"Slack      local sink on {sink.url} (prints what would be posted)")

    def _echo_slack(self, request: Any) -> None:
        from deployer_local.slack_sink import RecordedRequest

        if not isinstance(request, RecordedRequest) or not request.path.startswith("/api/chat."):
            return
        verb = "posted" if request.path.endswith("postMessage") else "updated"
        lines = [f"SLACK {verb}: {request.body.get('text', '')}"]
        for block in request.blocks or []:
            if block.get("type") == "actions":
                for element in block.get("elements", []):
                    label = element.get("text", {}).get("text", "")
                    lines.append(f"      [{label}]" + (f" {element['url']}" if element.get("url") else ""))
        self.printer("\n".join(lines))

    def _start_approval_server(self) -> None:
        from deployer_local.function_url import FunctionUrlServer

        def invoke(event: dict[str, Any]) -> Mapping[str, Any] | None:
            result = self.workers["ApprovalsHttpFunction"].invoke(event)
            return result.payload if isinstance(result.payload, dict) else None

        server = FunctionUrlServer(invoke).start()
        self._stoppers.append(server.stop)
        self.approval_url = server.url
        self.printer(f"Approvals  {self.approval_url} (a local server in front of ApprovalsHttpFunction)")

    def _start_webhook_server(self) -> None:
        """OnWebhookFunction's Function URL stand-in, and its secret: one generated token per
        provider in the WebhookSecret, also written (mode 600) where the git hook reads it."""
        import boto3

        from deployer_local.function_url import FUNCTION_URL_MAX_BODY, FunctionUrlServer

        def invoke(event: dict[str, Any]) -> Mapping[str, Any] | None:
            result = self.workers["OnWebhookFunction"].invoke(event)
            return result.payload if isinstance(result.payload, dict) else None

        server = FunctionUrlServer(invoke, max_body=FUNCTION_URL_MAX_BODY).start()
        self._stoppers.append(server.stop)
        self.webhook_server = server
        self.webhook_url = server.url
        self.webhook_secrets = {provider: secrets.token_hex(32) for provider in WEBHOOK_REPOSITORIES}
        boto3.client("secretsmanager").put_secret_value(
            SecretId=self.secret_arns["WebhookSecret"], SecretString=json.dumps(self.webhook_secrets)
        )
        for provider, value in self.webhook_secrets.items():
            path = self.options.root / f"webhook-secret-{provider}"
            path.unlink(missing_ok=True)
            path.touch(mode=0o600)
            path.write_text(value, encoding="utf-8")
        self.printer(
            f"Webhooks   {self.webhook_url}github and {self.webhook_url}gitlab "
            "(a local server in front of OnWebhookFunction; secrets generated)"
        )

    @property
    def webhook_server_ms(self) -> float:
        """How long OnWebhookFunction took to answer the last delivery (milliseconds)."""
        return float(self.webhook_server.last_duration_ms)

    def _start_functions(self, names: Any) -> None:
        from deployer_local import localrun
        from deployer_local.router import Router, rules_from_template
        from deployer_local.workers import WarmFunction

        resource_names = localrun.resource_names(names)
        resource_names.update(self.secret_arns)
        resource_names["ApprovalsHttpFunctionUrl.FunctionUrl"] = self.approval_url
        resource_names["OnWebhookFunctionUrl.FunctionUrl"] = self.webhook_url
        self.resource_names = resource_names
        self.env = {"AWS_ENDPOINT_URL": self.endpoint_url, ECS_ENDPOINT_ENV: self.ecs_endpoint_url}
        built = localrun.built_functions(
            self.options.build_dir, names=resource_names, parameters=self._parameters(names)
        )
        self.workers = {
            logical_id: WarmFunction(
                logical_id,
                env=self.env,
                build_dir=self.options.build_dir,
                names=resource_names,
                parameters=self._parameters(names),
            )
            for logical_id in built
        }
        for worker in self.workers.values():
            self._stoppers.append(worker.close)
        import boto3

        self.router = Router(boto3.client("events"), self.workers, rules_from_template(names))
        self.bus_names = {"default": "default", "deployer": names.bus}
        self.function_env = {**next(iter(built.values())).environment}
        thread = threading.Thread(target=self._dispatch, name="dispatcher", daemon=True)
        self._stop_dispatch = threading.Event()
        thread.start()
        self._stoppers.append(self._stop_dispatch.set)
        self.printer(f"Functions  {', '.join(sorted(self.workers))} (warm, from {self.options.build_dir})")

    def _parameters(self, names: Any) -> dict[str, str]:
        return {"Environment": names.environment}

    def _start_control_server(self) -> None:
        stack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path.rstrip("/") != "/events":
                    self.send_error(404)
                    return
                length = int(self.headers.get("content-length") or 0)
                try:
                    event = json.loads(self.rfile.read(length))
                    if not isinstance(event, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    self.send_error(400, f"not an event: {exc}")
                    return
                stack.submit(event)
                self.send_response(202)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, name="control", daemon=True).start()
        self._stoppers.append(server.shutdown)
        self._stoppers.append(server.server_close)
        self.control_url = f"http://127.0.0.1:{server.server_address[1]}/"

    def _start_bus_tap(self, names: Any) -> None:
        """The deployer's bus: a rule catching everything the functions publish, whose target is
        an SQS queue; a thread routes what arrives ("Approval Decided" reaches on_approval)."""
        import boto3

        sqs = boto3.client("sqs")
        events = boto3.client("events")
        queue_url = sqs.create_queue(QueueName="local-deployer-bus")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="local-tap", EventBusName=names.bus, EventPattern=json.dumps({"source": ["ecs-deployer"]}))
        events.put_targets(Rule="local-tap", EventBusName=names.bus, Targets=[{"Id": "tap", "Arn": arn}])
        stop = threading.Event()

        def tap() -> None:
            while not stop.is_set():
                try:
                    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
                except Exception:
                    if stop.is_set():
                        return
                    time.sleep(0.2)
                    continue
                for message in got.get("Messages", []):
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
                    # moto leaves `account` out of what it delivers; EventBridge always sets it.
                    event = {"account": "123456789012", **json.loads(message["Body"])}
                    self._narrate_bus(event)
                    self.submit(event, bus="deployer")

        threading.Thread(target=tap, name="bus-tap", daemon=True).start()
        self._stoppers.append(stop.set)

    def _narrate_bus(self, event: Mapping[str, Any]) -> None:
        from deployer.housekeeping import ScheduleMove, cleanup_text

        detail = event.get("detail", {})
        if event.get("detail-type") == "Release State Change":
            stage = f" ({detail['stage']})" if detail.get("stage") else ""
            reason = f": {detail['reason']}" if detail.get("reason") else ""
            self.printer(
                f"RELEASE {detail.get('release_id', '?').split('@')[0]}@{str(detail.get('commit', ''))[:12]} "
                f"{detail.get('from_state') or 'new'} -> {detail.get('to_state')}{stage}{reason}"
            )
            for item in detail.get("schedules") or ():
                self.printer(f"SCHEDULE {detail.get('stage')}: {ScheduleMove.from_item(item).text()}")
            cleanup = detail.get("cleanup") or {}
            if cleanup.get("deregistered") or cleanup.get("failed") or cleanup.get("note"):
                self.printer(f"CLEANUP  {detail.get('pipeline')}: {cleanup_text(cleanup)}")

    def _start_simulators(self, names: Any) -> None:
        import boto3

        from deployer.releases.store import ReleaseStore
        from deployer_local.simulate import for_local_stack

        self.store = ReleaseStore(boto3.resource("dynamodb").Table(names.table))
        seconds = self.options.hook_timeout_seconds
        simulators = for_local_stack(
            boto3.session.Session(),
            self.store,
            self.config_store.load(),
            self.submit,
            self.printer,
            fail_stages=self.options.fail_stages,
            step_delay=self.options.step_delay,
            service_deployments=self.service_deployments,
            hook_timeout=timedelta(seconds=seconds) if seconds is not None else None,
            tasks=self.tasks,
            fail_before=self.options.fail_before,
        )
        simulators.run_in_background(interval=0.2)
        self._stoppers.append(simulators.stop)

    def _create_remote(self, root: Path) -> Path:
        from deployer_local import gitremote

        remote = gitremote.create_remote(
            root / "git", self.account.repository, gitremote.emit_command(self.control_url, self.account.repository)
        )
        self.printer(f"Git        {remote} (post-receive hook: a push emits the CodeCommit event)")
        return remote

    def _create_webhook_remote(self, root: Path) -> Path:
        from deployer_local import gitremote

        provider = self.options.source
        repository = WEBHOOK_REPOSITORIES[provider]
        command = gitremote.webhook_command(
            f"{self.webhook_url}{provider}", provider, repository, root / f"webhook-secret-{provider}"
        )
        label = "GitHub" if provider == "github" else "GitLab"
        remote = gitremote.create_remote(
            root / "git" / provider, repository.rsplit("/", 1)[-1], command, becomes=f"a signed {label} push webhook"
        )
        self.printer(f"Git        {remote} ({label} {repository}: a push sends the signed {label} push webhook)")
        return remote

    def _write_state(self, names: Any) -> None:
        state = {
            "endpoint_url": self.endpoint_url,
            "ecs_endpoint_url": self.ecs_endpoint_url,
            "control_url": self.control_url,
            "approval_url": self.approval_url,
            "webhook_url": self.webhook_url,
            "slack_url": self.slack.url,
            "remote": str(self.remote),
            "pid": os.getpid(),
            "env": {
                **{k: v for k, v in self.function_env.items() if k.startswith("DEPLOYER_")},
                "DEPLOYER_APPROVAL_URL": self.approval_url,
                # applied to every function `deployer local invoke/emit` runs: ECS through the front
                ECS_ENDPOINT_ENV: self.ecs_endpoint_url,
            },
            "buses": {"default": "default", "deployer": names.bus},
            "names": self.resource_names,
        }
        path = self.options.root / STATE_FILE.name
        path.write_text(json.dumps(state, indent=2))
        self._state_path = path

    # -- events -------------------------------------------------------------------------------

    def submit(self, event: dict[str, Any], bus: str = "default") -> None:
        with self._lock:
            self._pending += 1
            self._idle.clear()
        self._inbox.put((event, bus))

    def _dispatch(self) -> None:
        while not self._stop_dispatch.is_set():
            try:
                event, bus = self._inbox.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                for delivery in self.router.route(event, self.bus_names.get(bus, bus)):
                    self._narrate_delivery(delivery)
            except Exception as exc:
                self.printer(f"ROUTER could not deliver {event.get('detail-type', '?')}: {exc}")
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.set()

    def _narrate_delivery(self, delivery: Any) -> None:
        result = delivery.result
        if result.error:
            self.printer(f"{delivery.function}: ERROR {result.error.get('errorMessage', result.error)}")
            return
        payload = result.payload if isinstance(result.payload, dict) else {}
        outcome = payload.get("result", payload)
        if isinstance(outcome, list):
            outcome = outcome[0] if outcome else {}
        what = outcome.get("outcome", payload.get("outcome", "?")) if isinstance(outcome, dict) else outcome
        self.printer(f"{delivery.function} <- {delivery.event.get('detail-type')}: {what}")

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once every submitted event was handled (and nothing new arrived)."""
        return self._idle.wait(timeout)


# Runs a module as `python -m` would, but first asks Linux to send it SIGTERM when the thread that
# started it ends (PR_SET_PDEATHSIG), so even a stack killed with SIGKILL leaves no server behind.
# argv: the starting process's pid (if it is already gone, exit at once), the module, its arguments.
_DIE_WITH_PARENT = r"""
import ctypes, os, runpy, signal, sys
parent, module = int(sys.argv[1]), sys.argv[2]
del sys.argv[1:3]
if sys.platform.startswith("linux"):
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        sys.exit(0)
sys.argv[0] = module
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def _die_with_this_thread(module: str) -> list[str]:
    """The command line of `python -m module` that ends with the thread starting it. Linux ties
    PR_SET_PDEATHSIG to the creating thread, so only the main thread (which lives as long as
    the process) asks for it; elsewhere it is a plain `python -m`."""
    if threading.current_thread() is not threading.main_thread():
        return [sys.executable, "-m", module]
    return [sys.executable, "-c", _DIE_WITH_PARENT, str(os.getpid()), module]
