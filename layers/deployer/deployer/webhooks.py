"""GitHub and GitLab push webhooks (OnWebhookFunction, behind its Function URL): check who sent
the delivery, turn a branch push into the same `Push` a CodeCommit event gives, and start the
releases (`flow.on_push`) before answering.

Routes: `POST <url>github` and `POST <url>gitlab`. The order of the checks, each answered with
one line and nothing changed when it fails:

1. the route and the method (404, 405);
2. the body size (413): a Function URL passes at most 6 MB to the function ("For synchronous
   invocations, the maximum payload size is 6 MB": AWS Lambda API reference, Invoke,
   https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html), and the function refuses
   anything larger that reaches it another way;
3. the sender (401): GitHub signs the raw body, `X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`
   with the webhook's secret ("Validating webhook deliveries",
   https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries); GitLab sends
   the secret token itself in `X-Gitlab-Token` ("Webhooks",
   https://docs.gitlab.com/user/project/integrations/webhooks/). Both are compared in constant
   time over the raw bytes (a base64-encoded Function URL body is decoded first), and the secret
   never reaches a log line;
4. the event: GitHub `ping` is answered; `push` to a branch becomes a `Push`; a deleted branch, a
   tag and every other event are answered "ignored" (200);
5. the delivery id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID`) is required: it is the idempotency
   key, namespaced by provider.

A repository or branch no pipeline lists is answered 200 "ignored" by `flow.on_push` (nothing is
recorded). A fault worth retrying (throttling, Secrets Manager unreachable) is answered 503 so the
sender shows a failed delivery that can be redelivered; nothing was half done (the idempotency
record of a failed attempt is removed, and a release is one item per pipeline and commit).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError

from deployer.errors import ConfigError, TransientError
from deployer.outcomes import Outcome
from deployer.sources import ZERO_COMMIT, Provider, Push, delivery_key

log = logging.getLogger("deployer")

__all__ = [
    "MAX_BODY_BYTES",
    "Answer",
    "WebhookEndpoint",
    "WebhookRequest",
    "WebhookSecrets",
    "github_signature",
    "parse_github",
    "parse_gitlab",
    "secrets_from_secret",
    "verify_github",
    "verify_gitlab",
]

MAX_BODY_BYTES: Final = 6 * 1024 * 1024
"""The largest body handled: Lambda's synchronous invocation payload limit (6 MB)."""
SECRET_MAX_AGE_SECONDS: Final = 300
_DELIVERY_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")
_SIGNATURE: Final = re.compile(r"sha256=([0-9a-f]{64})")

CommitId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
FullRef = Annotated[str, StringConstraints(max_length=1100, pattern=r"^refs/[^\x00-\x20\x7f~^:?*\[\\]+$")]
RepositoryPath = Annotated[str, StringConstraints(max_length=1024, pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$")]
Who = Annotated[str, StringConstraints(max_length=256)]


# -- the HTTP side -------------------------------------------------------------------------------


class RequestRefused(Exception):
    """A request answered before any check of its sender (too large, undecodable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class WebhookRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes
    source_ip: str | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @classmethod
    def from_function_url_event(cls, event: Mapping[str, Any]) -> WebhookRequest:
        """The request a Function URL event (payload format 2.0) carries, with its raw body bytes
        (base64-decoded when `isBase64Encoded`). RequestRefused for a body above MAX_BODY_BYTES or
        one that is not valid base64."""
        context = event.get("requestContext")
        http = (context.get("http") if isinstance(context, Mapping) else None) or {}
        headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
        raw = event.get("body") or ""
        if not isinstance(raw, str):
            raise RequestRefused(400, "the request body is not text")
        encoded = bool(event.get("isBase64Encoded"))
        if len(raw) > (MAX_BODY_BYTES * 4 // 3 + 4 if encoded else MAX_BODY_BYTES):
            raise RequestRefused(413, _too_large(len(raw) * 3 // 4 if encoded else len(raw)))
        if encoded:
            try:
                body = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise RequestRefused(400, "the request body is marked base64 but is not valid base64") from None
        else:
            body = raw.encode("utf-8", errors="surrogatepass")
        if len(body) > MAX_BODY_BYTES:
            raise RequestRefused(413, _too_large(len(body)))
        return cls(
            method=str(http.get("method") or "").upper(),
            path=str(event.get("rawPath") or http.get("path") or "/"),
            headers=headers,
            body=body,
            source_ip=str(http.get("sourceIp")) if http.get("sourceIp") else None,
        )


def _too_large(size: int) -> str:
    return (
        f"the request body is {size} bytes, above {MAX_BODY_BYTES} (a Lambda Function URL passes at most 6 MB): "
        "nothing was done"
    )


@dataclass(frozen=True)
class Answer:
    """What the webhook answers: status, one line saying why, and the releases it started."""

    status: int
    outcome: str
    message: str
    delivery: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)

    def response(self) -> dict[str, Any]:
        """The Function URL response (JSON body)."""
        body: dict[str, Any] = {"outcome": self.outcome, "message": self.message}
        if self.delivery:
            body["delivery"] = self.delivery
        if self.results:
            body["releases"] = self.results
        return {
            "statusCode": self.status,
            "headers": {"content-type": "application/json"},
            "body": json.dumps(body, default=str),
        }


def _ignored(message: str, delivery: str | None = None) -> Answer:
    return Answer(200, "ignored", f"ignored: {message}", delivery)


def _refused(status: int, message: str, delivery: str | None = None) -> Answer:
    return Answer(status, "refused", message, delivery)


# -- secrets -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookSecrets:
    """The webhook secrets by provider (`{"github": "...", "gitlab": "..."}` in Secrets Manager).
    A provider without a secret is not configured: its deliveries are refused."""

    github: str | None = None
    gitlab: str | None = None

    def for_provider(self, provider: Provider) -> str | None:
        value = getattr(self, provider, None)
        return value if isinstance(value, str) and value else None

    def __repr__(self) -> str:  # never the values
        return f"WebhookSecrets(github={'set' if self.github else 'unset'}, gitlab={'set' if self.gitlab else 'unset'})"

    @classmethod
    def from_json(cls, text: str | bytes, secret_id: str = "the webhook secret") -> WebhookSecrets:  # noqa: S107
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigError(f'{secret_id} is not JSON: store {{"github": "<secret>", "gitlab": "<token>"}}') from None
        if not isinstance(data, dict) or any(not isinstance(data.get(k), str | None) for k in ("github", "gitlab")):
            raise ConfigError(f'{secret_id} must be a JSON object like {{"github": "<secret>", "gitlab": "<token>"}}')
        return cls(github=data.get("github") or None, gitlab=data.get("gitlab") or None)


def secrets_from_secret(secret_id: str, *, client: Any = None) -> Callable[[], WebhookSecrets]:
    """A loader of the Secrets Manager secret `secret_id` through Powertools parameters (cached 5
    minutes). TransientError when Secrets Manager cannot be reached; ConfigError when the secret is
    missing, not readable or malformed."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    from deployer import aws

    provider: SecretsProvider | None = None

    def load() -> WebhookSecrets:
        nonlocal provider
        if not secret_id:
            raise ConfigError("DEPLOYER_WEBHOOK_SECRET is not set: the function has no webhook secret to check against")
        if provider is None:
            provider = SecretsProvider(boto3_client=client or aws.client("secretsmanager"))
        try:
            value = provider.get(secret_id, max_age=SECRET_MAX_AGE_SECONDS)
        except GetParameterError as exc:
            cause = exc.__cause__ or exc.__context__
            code = aws.error_code(cause) if cause is not None else None
            if cause is None or aws.is_transient(cause) or code is None:
                raise TransientError(
                    f"Secrets Manager is unreachable: cannot read the webhook secret {secret_id}"
                ) from exc
            raise ConfigError(f"cannot read the webhook secret {secret_id}: {code}") from exc
        if not isinstance(value, str | bytes):
            raise ConfigError(f"the webhook secret {secret_id} is not a string")
        return WebhookSecrets.from_json(value, secret_id)

    return load


# -- verification --------------------------------------------------------------------------------


def github_signature(secret: str, body: bytes) -> str:
    """The `X-Hub-Signature-256` GitHub sends: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def verify_github(body: bytes, signature: str | None, secret: str) -> bool:
    """Whether `signature` (the X-Hub-Signature-256 header) signs `body` with `secret`, compared in
    constant time."""
    if not signature or not secret or not _SIGNATURE.fullmatch(signature.strip().lower()):
        return False
    return hmac.compare_digest(
        github_signature(secret, body).encode("ascii"), signature.strip().lower().encode("ascii")
    )


def verify_gitlab(token: str | None, secret: str) -> bool:
    """Whether `token` (the X-Gitlab-Token header) is `secret`, compared in constant time."""
    if not token or not secret:
        return False
    return hmac.compare_digest(token.encode("utf-8"), secret.encode("utf-8"))


# -- parsing -------------------------------------------------------------------------------------


class _Loose(BaseModel):
    """Unknown fields are ignored: GitHub and GitLab add fields to their payloads."""

    model_config = ConfigDict(extra="ignore")


class _GitHubRepository(_Loose):
    full_name: RepositoryPath
    pushed_at: int | float | str | None = None


class _GitHubPusher(_Loose):
    name: Who | None = None


class _GitHubPush(_Loose):
    ref: FullRef
    before: CommitId
    after: CommitId
    created: bool = False
    deleted: bool = False
    repository: _GitHubRepository
    pusher: _GitHubPusher | None = None


class _GitLabProject(_Loose):
    path_with_namespace: RepositoryPath


class _GitLabPush(_Loose):
    object_kind: str
    ref: FullRef
    before: CommitId
    after: CommitId
    checkout_sha: CommitId | None = None
    user_username: Who | None = None
    project: _GitLabProject


def _delivery(request: WebhookRequest, header: str) -> str | Answer:
    value = (request.header(header) or "").strip()
    if not _DELIVERY_ID.fullmatch(value):
        return _refused(
            400, f"{header} is missing or malformed: it identifies the delivery (the idempotency key), nothing was done"
        )
    return value


def _json(request: WebhookRequest, provider: str) -> dict[str, Any] | Answer:
    try:
        data = json.loads(request.body)
    except ValueError:
        return _refused(
            400,
            f"the body is not JSON: set the {provider} webhook's content type to application/json; nothing was done",
        )
    if not isinstance(data, dict):
        return _refused(400, "the body is not a JSON object; nothing was done")
    return data


def _problem(error: ValidationError, what: str) -> str:
    problems = error.errors(include_url=False, include_context=False, include_input=False)[:3]
    where = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in problems)
    return f"not a {what} payload ({where}); nothing was done"


def _pushed_at(value: int | float | str | None, received_at: datetime) -> datetime:
    """GitHub's `repository.pushed_at` (epoch seconds in push payloads), else when it arrived."""
    if isinstance(value, int | float) and 0 < value < 32503680000:
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return received_at
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return received_at


def parse_github(request: WebhookRequest, received_at: datetime) -> Push | Answer:
    """A GitHub delivery (already verified) as a Push, or the answer when it starts nothing."""
    event = (request.header("x-github-event") or "").strip()
    delivery = _delivery(request, "X-GitHub-Delivery")
    if isinstance(delivery, Answer):
        return delivery
    if event == "ping":
        return Answer(200, "pong", "pong: the deployer received GitHub's ping; send push events", delivery)
    if event != "push":
        return _ignored(f"GitHub event {event[:64] or '(none)'!r}: only push events deploy", delivery)
    data = _json(request, "GitHub")
    if isinstance(data, Answer):
        return data
    try:
        payload = _GitHubPush.model_validate(data)
    except ValidationError as exc:
        return _refused(400, _problem(exc, "GitHub push"), delivery)
    if not payload.ref.startswith("refs/heads/"):
        return _ignored(f"{payload.ref}: only branch pushes deploy", delivery)
    branch = payload.ref.removeprefix("refs/heads/")
    if payload.deleted or payload.after == ZERO_COMMIT:
        return _ignored(f"branch {branch} deleted: nothing to deploy", delivery)
    pusher = payload.pusher.name if payload.pusher and payload.pusher.name else None
    return Push(
        provider="github",
        repository=payload.repository.full_name,
        branch=branch,
        commit=payload.after,
        previous_commit=None if payload.created or payload.before == ZERO_COMMIT else payload.before,
        pusher=f"github:{pusher}" if pusher else None,
        pushed_at=_pushed_at(payload.repository.pushed_at, received_at),
        delivery_id=delivery_key("github", delivery),
    )


def parse_gitlab(request: WebhookRequest, received_at: datetime) -> Push | Answer:
    """A GitLab delivery (already verified) as a Push, or the answer when it starts nothing."""
    event = (request.header("x-gitlab-event") or "").strip()
    delivery = _delivery(request, "X-Gitlab-Event-UUID")
    if isinstance(delivery, Answer):
        return delivery
    if event != "Push Hook":
        return _ignored(f"GitLab event {event[:64] or '(none)'!r}: only push events (Push Hook) deploy", delivery)
    data = _json(request, "GitLab")
    if isinstance(data, Answer):
        return data
    try:
        payload = _GitLabPush.model_validate(data)
    except ValidationError as exc:
        return _refused(400, _problem(exc, "GitLab push"), delivery)
    if payload.object_kind != "push":
        return _ignored(f"GitLab object_kind {payload.object_kind[:64]!r}: only pushes deploy", delivery)
    if not payload.ref.startswith("refs/heads/"):
        return _ignored(f"{payload.ref}: only branch pushes deploy", delivery)
    branch = payload.ref.removeprefix("refs/heads/")
    commit = payload.checkout_sha or payload.after
    if ZERO_COMMIT in {payload.after, commit}:
        return _ignored(f"branch {branch} deleted: nothing to deploy", delivery)
    return Push(
        provider="gitlab",
        repository=payload.project.path_with_namespace,
        branch=branch,
        commit=commit,
        previous_commit=None if payload.before == ZERO_COMMIT else payload.before,
        pusher=f"gitlab:{payload.user_username}" if payload.user_username else None,
        pushed_at=received_at,
        delivery_id=delivery_key("gitlab", delivery),
    )


# -- the endpoint --------------------------------------------------------------------------------

_PARSERS: Final[dict[str, Callable[[WebhookRequest, datetime], Push | Answer]]] = {
    "github": parse_github,
    "gitlab": parse_gitlab,
}


class WebhookEndpoint:
    """`handle(request)` -> Answer. `start(push)` starts the releases (flow.on_push behind the
    function's idempotency on the delivery id) and returns their outcomes."""

    def __init__(
        self,
        secrets: Callable[[], WebhookSecrets],
        start: Callable[[Push], list[dict[str, Any]]],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._secrets = secrets
        self._start = start
        self._clock = clock

    def handle_event(self, event: Mapping[str, Any]) -> Answer:
        try:
            request = WebhookRequest.from_function_url_event(event)
        except RequestRefused as refused:
            log.warning("webhook refused: %s", refused, extra={"status": refused.status})
            return _refused(refused.status, str(refused))
        return self.handle(request)

    def handle(self, request: WebhookRequest) -> Answer:
        answer = self._handle(request)
        level = logging.INFO if answer.status < 400 else logging.WARNING
        log.log(
            level,
            "webhook %s %s -> %s %s: %s",
            request.method,
            request.path[:64],
            answer.status,
            answer.outcome,
            answer.message,
            extra={"status": answer.status, "outcome": answer.outcome, "delivery": answer.delivery},
        )
        return answer

    def _handle(self, request: WebhookRequest) -> Answer:
        route = request.path.rstrip("/").rsplit("/", 1)[-1]
        if route not in _PARSERS:
            return _refused(404, "no such webhook: POST to <url>github or <url>gitlab")
        provider: Provider = "github" if route == "github" else "gitlab"
        if request.method != "POST":
            return _refused(405, f"the {provider} webhook takes POST only")
        if len(request.body) > MAX_BODY_BYTES:
            return _refused(413, _too_large(len(request.body)))
        try:
            secret = self._secrets().for_provider(provider)
        except TransientError as exc:
            return Answer(503, "retry", f"{exc}; redeliver later")
        except ConfigError as exc:
            log.error("webhook secret unusable: %s", exc)
            return Answer(500, "error", "the deployer cannot read its webhook secret; its operator must fix it")
        if secret is None:
            return _refused(
                401, f"{provider} webhooks are not configured: put a {provider} secret in the deployer's webhook secret"
            )
        if provider == "github":
            if not verify_github(request.body, request.header("x-hub-signature-256"), secret):
                missing = not request.header("x-hub-signature-256")
                return _refused(
                    401,
                    "X-Hub-Signature-256 is missing: set the webhook's secret"
                    if missing
                    else "X-Hub-Signature-256 does not match the body: wrong secret or altered payload",
                )
        elif not verify_gitlab(request.header("x-gitlab-token"), secret):
            return _refused(401, "X-Gitlab-Token is missing or wrong: set the webhook's secret token")
        parsed = _PARSERS[provider](request, self._clock())
        if isinstance(parsed, Answer):
            return parsed
        return self._started(parsed)

    def _started(self, push: Push) -> Answer:
        delivery = push.delivery_id.split(":", 1)[1]
        try:
            results = self._start(push)
        except TransientError as exc:
            return Answer(503, "retry", f"{exc}; redeliver this delivery", delivery)
        except ConfigError as exc:
            log.error("configuration refused for delivery %s: %s", push.delivery_id, "; ".join(exc.messages[:5]))
            return Answer(
                500, "error", "the deployer's published pipelines are unusable; its operator was told", delivery
            )
        ignored = [r for r in results if r.get("outcome") == Outcome.IGNORED]
        if len(ignored) == len(results):
            reasons = "; ".join(str(r.get("reason")) for r in ignored) or "nothing to do"
            return _ignored(reasons, delivery)
        summary = "; ".join(_one_line(push, r) for r in results)
        outcome = "started" if any(r.get("outcome") == Outcome.BUILD_STARTED for r in results) else "handled"
        return Answer(200, outcome, summary, delivery, results)


def _one_line(push: Push, result: Mapping[str, Any]) -> str:
    release = result.get("release_id", f"{result.get('pipeline')}@{push.commit}")
    what = result.get("outcome")
    if what == Outcome.BUILD_STARTED:
        return f"release {release}: build {result.get('build_id')} started"
    reason = result.get("reason")
    return f"release {release}: {what}" + (f" ({reason})" if reason else "")
