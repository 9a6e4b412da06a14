"""The local stack's ECS endpoint: an HTTP proxy in front of moto that answers the ECS service
deployment calls moto lacks from the rollout simulator's records (`ServiceDeployments`), and
forwards every other request to moto unchanged.

moto 5.2 answers ListServiceDeployments, DescribeServiceDeployments, ContinueServiceDeployment and
StopServiceDeployment with HTTP 500 "not implemented" (REFERENCE.md, "moto 5.2 as the local AWS").
The functions and the CLI reach ECS through this front (`AWS_ENDPOINT_URL_ECS`, the standard
per-service endpoint variable, beside `AWS_ENDPOINT_URL` for everything else), so the deployer's
own code calls the real API and botocore parses real answers.

ECS speaks JSON 1.1 (botocore's ECS model: protocol "json", targetPrefix
"AmazonEC2ContainerServiceV20141113"): a POST whose `X-Amz-Target` names the operation. An error
is HTTP 400 with `{"__type": CODE, "message": ...}`, which botocore turns into a ClientError with
that code (ServiceDeploymentNotFoundException, InvalidParameterException, ...).

`ServiceDeployments` holds what DescribeServiceDeployments shows (statuses, lifecycle stage, hooks,
revisions) and takes what ContinueServiceDeployment and StopServiceDeployment ask for; carrying it
out over time, and emitting ECS's events, is `deployer_local.simulate.EcsRolloutSimulator`'s job.
"""

from __future__ import annotations

import base64
import http.client
import json
import secrets
import threading
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlsplit

__all__ = [
    "ACTIVE_STATUSES",
    "SIMULATED_OPERATIONS",
    "TARGET_PREFIX",
    "TASK_OPERATIONS",
    "EcsApiError",
    "EcsFront",
    "HookRecord",
    "Request",
    "RevisionRecord",
    "ServiceDeploymentRecord",
    "ServiceDeployments",
    "ServiceDeploymentsApi",
    "TasksApi",
    "service_deployment_arn",
    "service_revision_arn",
]

TARGET_PREFIX: Final = "AmazonEC2ContainerServiceV20141113."
SIMULATED_OPERATIONS: Final = (
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "ContinueServiceDeployment",
    "StopServiceDeployment",
)
JSON_CONTENT_TYPE: Final = "application/x-amz-json-1.1"
MAX_BODY: Final = 1024 * 1024
_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length"}
)


class EcsApiError(Exception):
    """An ECS error answer: `code` is the error shape's name in botocore's ECS model."""

    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra: dict[str, Any] = {}  # the error's modeled fields (ConflictException: resourceIds)

    def body(self) -> dict[str, Any]:
        return {"__type": self.code, "message": self.message, **self.extra}


# The standalone-task operations the front answers when given `tasks` (deployer_local.ecs_tasks).
TASK_OPERATIONS: Final = ("RunTask", "DescribeTasks", "StopTask")


class TasksApi(Protocol):
    """What answers RunTask, DescribeTasks and StopTask for the simulated tasks it `knows`."""

    def answer(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any]: ...

    def knows(self, task: str) -> bool: ...


class ServiceDeploymentsApi(Protocol):
    """What answers the simulated operations: `operation` is one of SIMULATED_OPERATIONS, `request`
    the request's JSON object; the answer is the response's JSON object (timestamps as epoch
    seconds, as the JSON protocol sends them). Raises EcsApiError for an error answer."""

    def answer(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any]: ...


def _name(value: object) -> str:
    """A cluster or service given by name or ARN (…:cluster/NAME, …:service/CLUSTER/NAME)."""
    return str(value).rsplit("/", 1)[-1]


# -- what DescribeServiceDeployments shows -------------------------------------------------------

# ServiceDeploymentStatus, DeploymentLifecycleHookAction and StopServiceDeploymentStopType in
# botocore's ECS model.
STATUSES: Final = (
    "PENDING",
    "SUCCESSFUL",
    "STOPPED",
    "STOP_REQUESTED",
    "IN_PROGRESS",
    "ROLLBACK_REQUESTED",
    "ROLLBACK_IN_PROGRESS",
    "ROLLBACK_SUCCESSFUL",
    "ROLLBACK_FAILED",
)
ACTIVE_STATUSES: Final = ("PENDING", "IN_PROGRESS")
HOOK_ACTIONS: Final = ("CONTINUE", "ROLLBACK")
STOP_TYPES: Final = ("ABORT", "ROLLBACK")
DEFAULT_LIST_RESULTS: Final = 20  # ListServiceDeployments' maxResults: 1..100, default 20
MAX_LIST_RESULTS: Final = 100
MAX_DESCRIBE_ARNS: Final = 20

Action = Literal["CONTINUE", "ROLLBACK", "ABORT"]
_Answer = tuple[int, dict[str, str], bytes]  # an HTTP answer: status, headers, body


@dataclass(frozen=True)
class Request:
    """What ContinueServiceDeployment, StopServiceDeployment or a hook's timeout asked for, waiting
    for the simulator to carry it out. `why` is said in its output and in the events it sends."""

    action: Action
    why: str
    hook_id: str | None = None


def _epoch(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def _wire(values: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON object without the absent members (the JSON protocol leaves them out)."""
    return {key: value for key, value in values.items() if value is not None}


@dataclass
class HookRecord:
    """One entry of lifecycleHookDetails (DeploymentLifecycleHookDetail)."""

    hook_id: str
    target_type: str  # PAUSE | AWS_LAMBDA
    lifecycle_stage: str  # the hook's stage (DeploymentLifecycleHookStage)
    status: str  # AWAITING_ACTION | IN_PROGRESS | SUCCEEDED | FAILED | TIMED_OUT
    expires_at: datetime | None = None
    timeout_action: str | None = None
    timeout_minutes: int | None = None
    target_arn: str | None = None
    started_at: datetime | None = None  # not shown: when it began waiting, to say how long it waited

    @staticmethod
    def new_id(target_type: str) -> str:
        """Ids as ECS's guide shows them: "ecs-pause-" and 43 URL-safe characters."""
        kind = "pause" if target_type == "PAUSE" else "lambda"
        return f"ecs-{kind}-{secrets.token_urlsafe(32)}"

    def wire(self) -> dict[str, Any]:
        return _wire(
            {
                "hookId": self.hook_id,
                "targetType": self.target_type,
                "targetArn": self.target_arn,
                "status": self.status,
                "expiresAt": _epoch(self.expires_at),
                "timeoutAction": self.timeout_action,
            }
        )


@dataclass
class RevisionRecord:
    """A service revision taking part in a deployment (ServiceRevisionSummary)."""

    arn: str
    requested: int
    running: int = 0
    pending: int = 0
    test_weight: float = 0.0
    production_weight: float = 0.0

    def wire(self) -> dict[str, Any]:
        return {
            "arn": self.arn,
            "requestedTaskCount": self.requested,
            "runningTaskCount": self.running,
            "pendingTaskCount": self.pending,
            "requestedTestTrafficWeight": self.test_weight,
            "requestedProductionTrafficWeight": self.production_weight,
        }


def service_deployment_arn(service_arn: str) -> str:
    """A new service deployment's ARN for a service ARN in the long format:
    arn:aws:ecs:REGION:ACCOUNT:service-deployment/CLUSTER/SERVICE/ID."""
    head, _, path = service_arn.partition(":service/")
    return f"{head}:service-deployment/{path}/{secrets.token_urlsafe(15)}"


def service_revision_arn(service_arn: str) -> str:
    head, _, path = service_arn.partition(":service/")
    return f"{head}:service-revision/{path}/{uuid.uuid4().int % 10**19:019d}"


@dataclass
class ServiceDeploymentRecord:
    """One service deployment as DescribeServiceDeployments shows it, plus the deployment id of the
    PRIMARY deployment it is (the id ECS's deployment events carry) and what was asked of it."""

    arn: str
    service_arn: str
    cluster_arn: str
    deployment_id: str
    configuration: dict[str, Any]
    target: RevisionRecord
    created_at: datetime
    sources: list[RevisionRecord] = field(default_factory=list)
    status: str = "PENDING"
    status_reason: str | None = None
    lifecycle_stage: str | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    finished_at: datetime | None = None
    stopped_at: datetime | None = None
    hooks: list[HookRecord] = field(default_factory=list)
    rollback: dict[str, Any] | None = None
    request: Request | None = None

    @property
    def cluster(self) -> str:
        return self.service_arn.partition(":service/")[2].split("/")[0]

    @property
    def service(self) -> str:
        return self.service_arn.rsplit("/", 1)[-1]

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def awaiting_hook(self) -> HookRecord | None:
        return next((h for h in self.hooks if h.target_type == "PAUSE" and h.status == "AWAITING_ACTION"), None)

    def hook(self, hook_id: str) -> HookRecord | None:
        return next((h for h in self.hooks if h.hook_id == hook_id), None)

    def brief(self) -> dict[str, Any]:
        """ServiceDeploymentBrief, as ListServiceDeployments lists it."""
        return _wire(
            {
                "serviceDeploymentArn": self.arn,
                "serviceArn": self.service_arn,
                "clusterArn": self.cluster_arn,
                "startedAt": _epoch(self.started_at),
                "createdAt": _epoch(self.created_at),
                "finishedAt": _epoch(self.finished_at),
                "targetServiceRevisionArn": self.target.arn,
                "status": self.status,
                "statusReason": self.status_reason,
            }
        )

    def wire(self) -> dict[str, Any]:
        """ServiceDeployment, as DescribeServiceDeployments describes it."""
        return _wire(
            {
                "serviceDeploymentArn": self.arn,
                "serviceArn": self.service_arn,
                "clusterArn": self.cluster_arn,
                "createdAt": _epoch(self.created_at),
                "startedAt": _epoch(self.started_at),
                "finishedAt": _epoch(self.finished_at),
                "stoppedAt": _epoch(self.stopped_at),
                "updatedAt": _epoch(self.updated_at),
                "sourceServiceRevisions": [r.wire() for r in self.sources],
                "targetServiceRevision": self.target.wire(),
                "status": self.status,
                "statusReason": self.status_reason,
                "lifecycleStage": self.lifecycle_stage,
                "lifecycleHookDetails": [h.wire() for h in self.hooks] or None,
                "deploymentConfiguration": self.configuration or None,
                "rollback": self.rollback,
            }
        )


def _now() -> datetime:
    return datetime.now(UTC)


def _waited(hook: HookRecord) -> str:
    """How long the hook waited: " after 30 min", or what a timeout shortened for a simulation was."""
    if hook.timeout_minutes is None:
        return ""
    if hook.started_at is None or hook.expires_at is None:
        return f" after {hook.timeout_minutes} min"
    waited = hook.expires_at - hook.started_at
    if waited == timedelta(minutes=hook.timeout_minutes):
        return f" after {hook.timeout_minutes} min"
    return (
        f" after {waited.total_seconds():g} s (timeoutInMinutes {hook.timeout_minutes}, shortened for the simulation)"
    )


def _timestamp(value: object, name: str) -> datetime:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EcsApiError("InvalidParameterException", f"{name} must be a timestamp.")
    return datetime.fromtimestamp(float(value), UTC)


def _string(request: Mapping[str, Any], name: str) -> str:
    value = request.get(name)
    if not isinstance(value, str) or not value:
        raise EcsApiError("InvalidParameterException", f"{name} must be specified.")
    return value


class ServiceDeployments:
    """The simulated service deployments and the four API calls on them. Thread-safe: the front
    answers on its request threads while the simulator changes records on its own (under `lock`)."""

    def __init__(self, clock: Callable[[], datetime] = _now) -> None:
        self.lock = threading.RLock()
        self._clock = clock
        self._records: dict[str, ServiceDeploymentRecord] = {}

    # -- the simulator's side -----------------------------------------------------------------

    def add(self, record: ServiceDeploymentRecord) -> ServiceDeploymentRecord:
        with self.lock:
            self._records[record.arn] = record
        return record

    def get(self, arn: str) -> ServiceDeploymentRecord | None:
        with self.lock:
            return self._records.get(arn)

    def records(self) -> list[ServiceDeploymentRecord]:
        """Every record, oldest first."""
        with self.lock:
            return sorted(self._records.values(), key=lambda r: r.created_at)

    def take_request(self, record: ServiceDeploymentRecord) -> Request | None:
        """What was asked of `record` since the last call (and is now the caller's to carry out)."""
        with self.lock:
            request, record.request = record.request, None
            return request

    def expire_due(self, now: datetime) -> list[tuple[ServiceDeploymentRecord, HookRecord]]:
        """PAUSE hooks whose time is up and that nobody answered: each becomes TIMED_OUT, and its
        timeout action is asked of its deployment."""
        expired = []
        with self.lock:
            for record in self._records.values():
                hook = record.awaiting_hook()
                if hook is None or record.request is not None or hook.expires_at is None or now < hook.expires_at:
                    continue
                hook.status = "TIMED_OUT"
                record.updated_at = now
                action: Action = "CONTINUE" if hook.timeout_action == "CONTINUE" else "ROLLBACK"
                record.request = Request(
                    action,
                    f"the PAUSE hook at {hook.lifecycle_stage} timed out{_waited(hook)} undecided "
                    f"(timeout action {action})",
                    hook.hook_id,
                )
                if action == "ROLLBACK":
                    record.status = "ROLLBACK_REQUESTED"
                expired.append((record, hook))
        return expired

    # -- the API ------------------------------------------------------------------------------

    def answer(self, operation: str, request: Mapping[str, Any]) -> dict[str, Any]:
        if operation == "ListServiceDeployments":
            return self.list_service_deployments(request)
        if operation == "DescribeServiceDeployments":
            return self.describe_service_deployments(request)
        if operation == "ContinueServiceDeployment":
            return self.continue_service_deployment(request)
        if operation == "StopServiceDeployment":
            return self.stop_service_deployment(request)
        raise EcsApiError("InvalidParameterException", f"{operation} is not simulated here.")

    def list_service_deployments(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Newest first; `status`, `createdAt` {before, after}, `maxResults` and `nextToken` apply."""
        cluster = _name(request.get("cluster") or "default")
        service = _name(_string(request, "service"))
        statuses = request.get("status")
        if statuses is not None and (not isinstance(statuses, list) or any(s not in STATUSES for s in statuses)):
            raise EcsApiError("InvalidParameterException", f"status must be a list of {', '.join(STATUSES)}.")
        created = request.get("createdAt") or {}
        after = _timestamp(created["after"], "createdAt.after") if "after" in created else None
        before = _timestamp(created["before"], "createdAt.before") if "before" in created else None
        limit = request.get("maxResults", DEFAULT_LIST_RESULTS)
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_RESULTS:
            raise EcsApiError("InvalidParameterException", f"maxResults must be between 1 and {MAX_LIST_RESULTS}.")
        start = self._offset(request.get("nextToken"))
        with self.lock:
            found = [
                record.brief()
                for record in sorted(self._records.values(), key=lambda r: r.created_at, reverse=True)
                if record.cluster == cluster
                and record.service == service
                and (not statuses or record.status in statuses)
                and (after is None or record.created_at >= after)
                and (before is None or record.created_at <= before)
            ]
        page = found[start : start + limit]
        answer: dict[str, Any] = {"serviceDeployments": page}
        if start + limit < len(found):
            answer["nextToken"] = base64.urlsafe_b64encode(json.dumps({"offset": start + limit}).encode()).decode()
        return answer

    @staticmethod
    def _offset(token: object) -> int:
        if token is None:
            return 0
        try:
            offset = json.loads(base64.urlsafe_b64decode(str(token).encode()))["offset"]
        except (ValueError, KeyError, TypeError):
            raise EcsApiError("InvalidParameterException", "Invalid nextToken.") from None
        if not isinstance(offset, int) or offset < 0:
            raise EcsApiError("InvalidParameterException", "Invalid nextToken.")
        return offset

    def describe_service_deployments(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Unknown ARNs are failures (reason MISSING), as DescribeServices reports unknown services."""
        arns = request.get("serviceDeploymentArns")
        if not isinstance(arns, list) or not arns or not all(isinstance(a, str) for a in arns):
            raise EcsApiError("InvalidParameterException", "serviceDeploymentArns must be specified.")
        if len(arns) > MAX_DESCRIBE_ARNS:
            raise EcsApiError(
                "InvalidParameterException", f"serviceDeploymentArns can have at most {MAX_DESCRIBE_ARNS} items."
            )
        described, failures = [], []
        with self.lock:
            for arn in dict.fromkeys(arns):
                record = self._records.get(arn)
                if record is None:
                    failures.append({"arn": arn, "reason": "MISSING"})
                else:
                    described.append(record.wire())
        return {"serviceDeployments": described, "failures": failures}

    def _record(self, arn: str) -> ServiceDeploymentRecord:
        if ":service-deployment/" not in arn:
            raise EcsApiError("InvalidParameterException", f"{arn} is not a service deployment ARN.")
        record = self._records.get(arn)
        if record is None:
            raise EcsApiError("ServiceDeploymentNotFoundException", f"The service deployment {arn} does not exist.")
        return record

    def continue_service_deployment(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """The paused hook `hookId` of an IN_PROGRESS deployment: CONTINUE (the default) goes on to
        the next lifecycle stage, ROLLBACK returns the service to its previous revision."""
        arn = _string(request, "serviceDeploymentArn")
        hook_id = _string(request, "hookId")
        action = request.get("action", "CONTINUE")
        if action not in HOOK_ACTIONS:
            raise EcsApiError("InvalidParameterException", f"action must be one of {', '.join(HOOK_ACTIONS)}.")
        with self.lock:
            record = self._record(arn)
            hook = record.hook(hook_id)
            if hook is None:
                raise EcsApiError("InvalidParameterException", f"The lifecycle hook {hook_id} is not a hook of {arn}.")
            if hook.target_type != "PAUSE" or hook.status != "AWAITING_ACTION" or record.request is not None:
                raise EcsApiError(
                    "InvalidParameterException",
                    f"The lifecycle hook {hook_id} is {hook.status}: only a PAUSE hook in AWAITING_ACTION "
                    "can be continued or rolled back.",
                )
            if record.status != "IN_PROGRESS":
                raise EcsApiError(
                    "InvalidParameterException", f"The service deployment {arn} is {record.status}, not IN_PROGRESS."
                )
            now = self._clock()
            record.updated_at = now
            if action == "CONTINUE":
                hook.status = "SUCCEEDED"
                record.request = Request("CONTINUE", "continued by ContinueServiceDeployment CONTINUE", hook_id)
            else:
                hook.status = "FAILED"
                record.status = "ROLLBACK_REQUESTED"
                record.request = Request("ROLLBACK", "rolled back by ContinueServiceDeployment ROLLBACK", hook_id)
        return {"serviceDeploymentArn": arn}

    def stop_service_deployment(self, request: Mapping[str, Any]) -> dict[str, Any]:
        """Stop a PENDING or IN_PROGRESS deployment: ROLLBACK (the default) returns the service to its
        previous revision, ABORT leaves it where the deployment stopped."""
        arn = _string(request, "serviceDeploymentArn")
        stop_type = request.get("stopType", "ROLLBACK")
        if stop_type not in STOP_TYPES:
            raise EcsApiError("InvalidParameterException", f"stopType must be one of {', '.join(STOP_TYPES)}.")
        with self.lock:
            record = self._record(arn)
            if not record.active:  # a CONTINUE not yet carried out is overridden: the deployment is IN_PROGRESS
                raise EcsApiError(
                    "ConflictException",
                    f"The service deployment {arn} is {record.status}: only a PENDING or IN_PROGRESS deployment "
                    "can be stopped.",
                )
            record.updated_at = self._clock()
            hook = record.awaiting_hook()
            if hook is not None:
                hook.status = "FAILED"
            if stop_type == "ROLLBACK":
                record.status = "ROLLBACK_REQUESTED"
                record.request = Request("ROLLBACK", "rolled back by StopServiceDeployment ROLLBACK")
            else:
                record.status = "STOP_REQUESTED"
                record.request = Request("ABORT", "stopped by StopServiceDeployment ABORT")
        return {"serviceDeploymentArn": arn}


class EcsFront:
    """`EcsFront(moto_url, api).start()` serves on 127.0.0.1 (a free port unless `port` is given)."""

    def __init__(
        self,
        upstream: str,
        api: ServiceDeploymentsApi,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tasks: TasksApi | None = None,
    ) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"the upstream must be an http:// URL (moto server), not {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._upstream_host = parts.hostname
        self._upstream_port = parts.port or 80
        self._api = api
        self._tasks = tasks  # RunTask, DescribeTasks, StopTask of the before-tasks (deployer_local.ecs_tasks)
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY:
                    self._reply(413, {"content-type": "text/plain"}, b"request body too large")
                    return
                body = self.rfile.read(length) if length else b""
                target = str(self.headers.get("x-amz-target") or "")
                operation = target.removeprefix(TARGET_PREFIX) if target.startswith(TARGET_PREFIX) else ""
                simulated = operation in SIMULATED_OPERATIONS or front._simulates_task(operation, body)
                if self.command == "POST" and simulated:
                    self._reply(*front._simulate(operation, body, self.headers))
                else:
                    self._reply(*front._forward(self.command, self.path, self.headers, body))

            def _reply(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    if key.lower() not in _HOP_BY_HOP:
                        self.send_header(key, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:  # moto's log has the forwarded ones
                return

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.host_text = str(self._server.server_address[0])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host_text}:{self.port}"

    def start(self) -> EcsFront:
        self._thread = threading.Thread(target=self._server.serve_forever, name="ecs-front", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(5)
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> EcsFront:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    # -- the simulated operations ----------------------------------------------------------------

    def _simulate(self, operation: str, body: bytes, headers: Any) -> _Answer:
        try:
            request = json.loads(body or b"{}")
            if not isinstance(request, dict):
                raise EcsApiError("InvalidParameterException", "The request body must be a JSON object.")
            if operation == "ListServiceDeployments":
                refused = self._check_service(request, headers)
                if refused is not None:
                    return refused
            if operation in TASK_OPERATIONS and self._tasks is not None:
                answer = self._tasks.answer(operation, request)
            else:
                answer = self._api.answer(operation, request)
        except EcsApiError as refusal:
            return self._error(refusal)
        except ValueError as exc:  # not JSON
            return self._error(EcsApiError("SerializationException", str(exc)))
        except Exception as exc:  # the simulator's own bug: ECS's "server" error, said as such
            return self._error(EcsApiError("ServerException", f"the simulated ECS failed: {exc!r}", 500))
        return self._json(200, answer)

    def _simulates_task(self, operation: str, body: bytes) -> bool:
        """RunTask always (moto's fails on awsvpc tasks); DescribeTasks and StopTask when every task
        they name is a simulated one (the others are moto's)."""
        if self._tasks is None or operation not in TASK_OPERATIONS:
            return False
        if operation == "RunTask":
            return True
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return True  # refused as ECS would
        named = request.get("tasks") if operation == "DescribeTasks" else [request.get("task")]
        if not isinstance(named, list) or not named:
            return True
        return all(isinstance(task, str) and self._tasks.knows(task) for task in named)

    def _check_service(self, request: Mapping[str, Any], headers: Any) -> _Answer | None:
        """ListServiceDeployments names a service: moto knows whether it (and its cluster) exists.
        Asked with DescribeServices, whose own ClusterNotFoundException is passed on as it is."""
        if not request.get("service"):
            return self._error(EcsApiError("InvalidParameterException", "service must be specified."))
        cluster = _name(request.get("cluster") or "default")
        service = _name(request["service"])
        query = json.dumps({"cluster": cluster, "services": [service]}).encode()
        forwarded = {key: value for key, value in headers.items() if key.lower() not in _HOP_BY_HOP}
        forwarded["X-Amz-Target"] = f"{TARGET_PREFIX}DescribeServices"
        status, answer_headers, answer = self._forward("POST", "/", forwarded, query)
        if status != 200:
            return status, answer_headers, answer
        described = json.loads(answer or b"{}")
        if any(s.get("status") != "INACTIVE" for s in described.get("services", [])):
            return None
        return self._error(EcsApiError("ServiceNotFoundException", f"Service not found: {cluster}/{service}."))

    @staticmethod
    def _json(status: int, payload: Mapping[str, Any], error_code: str | None = None) -> _Answer:
        headers = {"content-type": JSON_CONTENT_TYPE, "x-amzn-requestid": str(uuid.uuid4())}
        if error_code:
            headers["x-amzn-errortype"] = error_code
        return status, headers, json.dumps(payload).encode()

    def _error(self, error: EcsApiError) -> _Answer:
        return self._json(error.status, error.body(), error_code=error.code)

    # -- everything else: moto ------------------------------------------------------------------

    def _forward(self, method: str, path: str, headers: Any, body: bytes) -> _Answer:
        connection = http.client.HTTPConnection(self._upstream_host, self._upstream_port, timeout=60)
        try:
            forwarded = {key: value for key, value in headers.items() if key.lower() not in _HOP_BY_HOP}
            connection.request(
                method, path, body=body if body or method in {"POST", "PUT", "PATCH"} else None, headers=forwarded
            )
            response = connection.getresponse()
            answer = response.read()
            return response.status, dict(response.getheaders()), answer
        except OSError as exc:
            return self._error(
                EcsApiError("ServerException", f"moto server at {self.upstream} did not answer: {exc}", 502)
            )
        finally:
            connection.close()
