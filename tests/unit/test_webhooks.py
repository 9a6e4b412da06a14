"""GitHub and GitLab push webhooks: verification, parsing and the whole handler
(`functions/on_webhook/app.py`) against moto in process.

Documented facts these tests rest on (the samples are in events/webhooks/, see events/README.md):

- GitHub, "Validating webhook deliveries"
  (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries): "The hash
  signature always starts with `sha256=`", computed with "an HMAC hex digest" of the payload and the
  secret; its test values: secret "It's a Secret to Everybody", payload "Hello, World!", signature
  `sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17`.
- GitHub, "Webhook events and payloads" (https://docs.github.com/en/webhooks/webhook-events-and-payloads):
  "Delivery headers" (`X-GitHub-Event`, `X-GitHub-Delivery`: "A globally unique identifier (GUID)
  to identify the event", `X-Hub-Signature-256`), the "Example delivery" header set, and the `push`
  and `ping` example payloads (github/docs lib/webhooks/static/dotcom/push.payload.json, ping.payload.json).
- GitHub, "Best practices for using webhooks"
  (https://docs.github.com/en/webhooks/using-webhooks/best-practices-for-using-webhooks): "To
  protect against replay attacks, you can use the `X-GitHub-Delivery` header to ensure that each
  delivery is unique per event" and "If you request a redelivery, the `X-GitHub-Delivery` header
  will be the same as in the original delivery."
- GitLab, "Webhook events" (https://docs.gitlab.com/user/project/integrations/webhook_events/),
  Push events: "Request header: X-Gitlab-Event: Push Hook" and its payload example.
- GitLab, "Webhooks" (https://docs.gitlab.com/user/project/integrations/webhooks/): "The secret
  token is sent with the webhook request in the `X-Gitlab-Token` HTTP header", and "Delivery
  headers": `X-Gitlab-Event-UUID` with the example value used here.
- AWS Lambda API reference, Invoke (https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html):
  "For synchronous invocations, the maximum payload size is 6 MB."
"""

from __future__ import annotations

import importlib.util
import io
import json
import logging
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import ModuleType
from typing import Any

import boto3
import pytest

from deployer import runtime
from deployer.sources import Push
from deployer.webhooks import (
    Answer,
    WebhookEndpoint,
    WebhookRequest,
    WebhookSecrets,
    github_signature,
    parse_github,
    parse_gitlab,
    verify_github,
    verify_gitlab,
)
from deployer_local.function_url import request_event
from deployer_local.provision import demo_pipelines_yaml
from tests.support.events import EVENTS_DIR, REPOSITORY_ROOT
from tests.support.world import World, make_world

pytestmark = pytest.mark.unit

SAMPLES = EVENTS_DIR / "webhooks"
GITHUB_SECRET = "github-webhook-secret-for-tests"
GITLAB_SECRET = "gitlab-token-for-tests"
RECEIVED = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)
DOCUMENTED_COMMIT = "7f0103f2c1d64b5e8a9c3e1b6d2f4a8c0e5b7d91"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def headers(name: str) -> dict[str, str]:
    data: dict[str, str] = json.loads(sample(name))
    return data


def github_request(body: bytes, *, secret: str | None = GITHUB_SECRET, **extra: str) -> WebhookRequest:
    """The documented header set, signed with `secret` (None: no signature header)."""
    sent = {k.lower(): v for k, v in headers("github_headers.json").items()}
    sent.pop("x-hub-signature-256")
    sent.pop("x-hub-signature")
    if secret is not None:
        sent["x-hub-signature-256"] = github_signature(secret, body)
    sent.update({k.lower().replace("_", "-"): v for k, v in extra.items()})
    return WebhookRequest("POST", "/github", sent, body)


def gitlab_request(body: bytes, *, token: str | None = GITLAB_SECRET, **extra: str) -> WebhookRequest:
    sent = {k.lower(): v for k, v in headers("gitlab_headers.json").items()}
    if token is not None:
        sent["x-gitlab-token"] = token
    sent.update({k.lower().replace("_", "-"): v for k, v in extra.items()})
    return WebhookRequest("POST", "/gitlab", sent, body)


# -- verification ------------------------------------------------------------------------------


def test_githubs_documented_test_values_verify() -> None:
    # GitHub's own test vector ("Testing the webhook payload validation")
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert github_signature("It's a Secret to Everybody", b"Hello, World!") == expected
    assert verify_github(b"Hello, World!", expected, "It's a Secret to Everybody")
    assert not verify_github(b"Hello, World?", expected, "It's a Secret to Everybody")
    assert not verify_github(b"Hello, World!", expected, "It's a secret to everybody")
    assert not verify_github(b"Hello, World!", expected.replace("sha256=", "sha1="), "It's a Secret to Everybody")
    assert not verify_github(b"Hello, World!", None, "It's a Secret to Everybody")
    assert not verify_github(b"Hello, World!", expected, "")


def test_gitlab_token_is_compared_whole() -> None:
    assert verify_gitlab(GITLAB_SECRET, GITLAB_SECRET)
    assert not verify_gitlab(GITLAB_SECRET[:-1], GITLAB_SECRET)
    assert not verify_gitlab(GITLAB_SECRET + "x", GITLAB_SECRET)
    assert not verify_gitlab(None, GITLAB_SECRET)
    assert not verify_gitlab("", "")


def test_the_signature_is_checked_over_the_raw_bytes_of_a_base64_body() -> None:
    # GIVEN a payload whose bytes are not ASCII (GitHub: "handle the payload as UTF-8"), sent
    # base64-encoded as a Function URL does for a body it does not take for text
    body = json.dumps({"zen": "Ünïcödé, spaced   oddly"}, ensure_ascii=False).encode("utf-8")
    event = request_event(
        "POST", "/github", {"content-type": "application/octet-stream"}, body, source_ip="1", host="h"
    )
    assert event["isBase64Encoded"] is True
    # WHEN decoded THEN the function sees the exact bytes GitHub signed
    request = WebhookRequest.from_function_url_event(event)
    assert request.body == body
    assert verify_github(request.body, github_signature(GITHUB_SECRET, body), GITHUB_SECRET)
    # and a re-serialised body (what a JSON round trip gives) no longer verifies
    assert not verify_github(
        json.dumps(json.loads(body)).encode(), github_signature(GITHUB_SECRET, body), GITHUB_SECRET
    )


# -- parsing the documented payloads --------------------------------------------------------------


def test_githubs_documented_push_example_is_a_deleted_tag_and_starts_nothing() -> None:
    parsed = parse_github(github_request(sample("github_push_example.json")), RECEIVED)
    assert isinstance(parsed, Answer)
    assert (parsed.status, parsed.outcome) == (200, "ignored")
    assert "refs/tags/simple-tag: only branch pushes deploy" in parsed.message


def test_a_github_branch_push_becomes_the_push_a_codecommit_event_gives() -> None:
    parsed = parse_github(github_request(sample("github_push.json")), RECEIVED)
    assert parsed == Push(
        provider="github",
        repository="Codertocat/Hello-World",
        branch="main",
        commit=DOCUMENTED_COMMIT,
        previous_commit="6113728f27ae82c7b1a177c8d03f9e96e0adf246",
        pusher="github:Codertocat",
        pushed_at=datetime.fromtimestamp(1557933657, UTC),  # repository.pushed_at, not when it arrived
        delivery_id="github:72d3162e-cc78-11e3-81ab-4c9367dc0958",
    )


def test_a_github_branch_deletion_and_other_events_are_ignored() -> None:
    deleted = json.loads(sample("github_push.json"))
    deleted.update(deleted=True, after="0" * 40)
    answer = parse_github(github_request(json.dumps(deleted).encode()), RECEIVED)
    assert isinstance(answer, Answer)
    assert (answer.status, answer.outcome, answer.message) == (
        200,
        "ignored",
        "ignored: branch main deleted: nothing to deploy",
    )
    other = parse_github(github_request(b"{}", X_GitHub_Event="issues"), RECEIVED)
    assert isinstance(other, Answer)
    assert (other.status, other.outcome) == (200, "ignored")
    assert "'issues': only push events deploy" in other.message


def test_githubs_ping_is_answered() -> None:
    answer = parse_github(github_request(sample("github_ping_example.json"), X_GitHub_Event="ping"), RECEIVED)
    assert isinstance(answer, Answer)
    assert (answer.status, answer.outcome) == (200, "pong")


def test_gitlabs_documented_push_example_becomes_a_push() -> None:
    parsed = parse_gitlab(gitlab_request(sample("gitlab_push_example.json")), RECEIVED)
    assert parsed == Push(
        provider="gitlab",
        repository="mike/diaspora",
        branch="master",
        commit="da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        previous_commit="95790bf891e76fee5e1747ab589903a6a1f80f22",
        pusher="gitlab:jsmith",
        pushed_at=RECEIVED,
        delivery_id="gitlab:13792a34-cac6-4fda-95a8-c58e00a3954e",
    )


def test_a_gitlab_branch_deletion_and_tag_pushes_are_ignored() -> None:
    deleted = json.loads(sample("gitlab_push_example.json"))
    deleted.update(after="0" * 40, checkout_sha=None)
    answer = parse_gitlab(gitlab_request(json.dumps(deleted).encode()), RECEIVED)
    assert isinstance(answer, Answer)
    assert answer.message == "ignored: branch master deleted: nothing to deploy"
    tag = parse_gitlab(gitlab_request(b"{}", X_Gitlab_Event="Tag Push Hook"), RECEIVED)
    assert isinstance(tag, Answer)
    assert (tag.status, tag.outcome) == (200, "ignored")


def test_a_delivery_without_its_id_is_refused() -> None:
    request = github_request(sample("github_push.json"))
    del request.headers["x-github-delivery"]  # type: ignore[attr-defined]
    answer = parse_github(request, RECEIVED)
    assert isinstance(answer, Answer)
    assert answer.status == 400
    assert "X-GitHub-Delivery is missing" in answer.message


def test_a_form_encoded_github_delivery_says_to_send_json() -> None:
    answer = parse_github(github_request(b"payload=%7B%7D"), RECEIVED)
    assert isinstance(answer, Answer)
    assert answer.status == 400
    assert "content type to application/json" in answer.message


# -- the endpoint without AWS ----------------------------------------------------------------------


def endpoint(started: list[Push]) -> WebhookEndpoint:
    def start(push: Push) -> list[dict[str, Any]]:
        started.append(push)
        return [{"outcome": "build_started", "release_id": f"web@{push.commit}", "build_id": "b:1"}]

    return WebhookEndpoint(lambda: WebhookSecrets(github=GITHUB_SECRET, gitlab=GITLAB_SECRET), start, lambda: RECEIVED)


def test_a_25_mb_body_is_refused_413_before_anything_is_read() -> None:
    started: list[Push] = []
    body = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    signed = github_signature(GITHUB_SECRET, body)
    event = request_event(
        "POST",
        "/github",
        {**headers("github_headers.json"), "X-Hub-Signature-256": signed},
        body,
        source_ip="1",
        host="h",
    )
    answer = endpoint(started).handle_event(event)
    assert (answer.status, answer.outcome) == (413, "refused")
    assert "above 6291456" in answer.message
    assert started == []


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/github", 405), ("POST", "/bitbucket", 404), ("POST", "/", 404)],
)
def test_other_routes_and_methods_are_refused(method: str, path: str, status: int) -> None:
    started: list[Push] = []
    answer = endpoint(started).handle(WebhookRequest(method, path, {}, b""))
    assert answer.status == status
    assert started == []


# -- the handler, against moto --------------------------------------------------------------------


def load_app() -> ModuleType:
    path = REPOSITORY_ROOT / "functions" / "on_webhook" / "app.py"
    spec = importlib.util.spec_from_file_location(f"on_webhook_app_{uuid.uuid4().hex}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class FakeContext:
    function_name: str = "ecs-deployer-test-on-webhook"
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:ecs-deployer-test-on-webhook"
    aws_request_id: str = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def get_remaining_time_in_millis(self) -> int:
        return 9000


@dataclass
class Hook:
    world: World
    app: ModuleType
    secret_arn: str

    def send(self, provider: str, body: bytes, sent: dict[str, str]) -> tuple[int, dict[str, Any]]:
        event = request_event("POST", f"/{provider}", sent, body, source_ip="192.0.2.7", host="hook.example")
        response = self.app.lambda_handler(event, FakeContext())
        return int(response["statusCode"]), json.loads(response["body"])

    def github(self, body: bytes, *, secret: str | None = GITHUB_SECRET, **extra: str) -> tuple[int, dict[str, Any]]:
        request = github_request(body, secret=secret, **extra)
        return self.send("github", body, dict(request.headers))

    def gitlab(self, body: bytes, *, token: str | None = GITLAB_SECRET, **extra: str) -> tuple[int, dict[str, Any]]:
        request = gitlab_request(body, token=token, **extra)
        return self.send("gitlab", body, dict(request.headers))

    def capture_logs(self) -> io.StringIO:
        """What the function logs from now on (Powertools' JSON lines; the deployer package logs
        through the same handler)."""
        buffer = io.StringIO()
        for handler in logging.getLogger(self.app.logger.service).handlers:
            if type(handler) is logging.StreamHandler:
                handler.stream = buffer
        return buffer

    def recorded(self) -> list[dict[str, Any]]:
        """Every item of the deployer's table but the idempotency records."""
        table = boto3.resource("dynamodb").Table(self.world.names.table)
        return [i for i in table.scan()["Items"] if not str(i["pk"]).startswith("idempotency#")]


@pytest.fixture
def hook(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hook]:
    world = make_world("hooks")
    world.publish(demo_pipelines_yaml(world.account, source="github:Codertocat/Hello-World"))
    secret_arn = boto3.client("secretsmanager").create_secret(
        Name="ecs-deployer/hooks/webhooks",
        SecretString=json.dumps({"github": GITHUB_SECRET, "gitlab": GITLAB_SECRET}),
    )["ARN"]
    slack_arn = boto3.client("secretsmanager").create_secret(Name="slack", SecretString="{}")["ARN"]
    env = {**world.names.env(), "DEPLOYER_WEBHOOK_SECRET": secret_arn, "DEPLOYER_SLACK_SECRET": slack_arn}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEPLOYER_CONFIG_MAX_AGE", "0")
    runtime.settings.cache_clear()
    runtime.deps.cache_clear()
    app = load_app()
    yield Hook(world, app, secret_arn)
    runtime.settings.cache_clear()
    runtime.deps.cache_clear()
    sys.modules.pop(app.__name__, None)


def test_a_signed_github_push_starts_the_release_and_its_build(hook: Hook) -> None:
    # GIVEN the pipeline `source: {github: Codertocat/Hello-World}` on main
    # WHEN GitHub delivers the push, signed with the webhook's secret
    status, answer = hook.github(sample("github_push.json"))
    # THEN the release of that commit is BUILDING, exactly as a CodeCommit push makes it
    assert (status, answer["outcome"]) == (200, "started"), answer
    (release,) = hook.world.store.list_releases("web", limit=5)
    assert (release.commit, release.repository, release.branch, release.pusher) == (
        DOCUMENTED_COMMIT,
        "github:Codertocat/Hello-World",
        "main",
        "github:Codertocat",
    )
    assert release.state.value == "BUILDING"
    assert len(hook.world.builds()) == 1
    assert answer["delivery"] == "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    assert f"release web@{DOCUMENTED_COMMIT}: build" in answer["message"]


def test_a_replayed_delivery_starts_nothing_more(hook: Hook) -> None:
    # GIVEN a delivery handled once
    body = sample("github_push.json")
    first = hook.github(body)
    assert first[0] == 200
    recorded = hook.recorded()
    # WHEN the same delivery arrives again (a replay, or GitHub's redelivery: same X-GitHub-Delivery)
    again = hook.github(body)
    # THEN the same answer, one release, one build
    assert again == first
    assert hook.recorded() == recorded
    assert len(hook.world.builds()) == 1
    # WHEN it is replayed under another delivery id (the header is not signed)
    status, answer = hook.github(body, X_GitHub_Delivery=str(uuid.uuid4()))
    # THEN the release of that commit exists already: still one build
    assert status == 200
    assert answer["releases"][0]["outcome"] == "duplicate"
    assert len(hook.world.builds()) == 1


@pytest.mark.parametrize(
    ("case", "kwargs", "fragment"),
    [
        ("forged body", {"forge": True}, "does not match the body"),
        ("wrong secret", {"secret": "not-the-secret"}, "does not match the body"),
        ("no signature", {"secret": None}, "X-Hub-Signature-256 is missing"),
    ],
)
def test_an_unverified_github_delivery_is_refused_401_and_changes_nothing(
    hook: Hook, case: str, kwargs: dict[str, Any], fragment: str
) -> None:
    body = sample("github_push.json")
    secret = kwargs.get("secret", GITHUB_SECRET)
    sent = dict(github_request(body, secret=secret).headers)
    if kwargs.get("forge"):  # signed, then altered: another commit on the way
        body = body.replace(DOCUMENTED_COMMIT.encode(), b"1" * 40)
    logged = hook.capture_logs()
    status, answer = hook.send("github", body, sent)
    out = logged.getvalue()
    assert (status, answer["outcome"]) == (401, "refused"), case
    assert fragment in answer["message"]
    assert hook.recorded() == []
    assert hook.world.builds() == []
    # logged, one line, without the secret or the signature
    assert fragment in out
    assert GITHUB_SECRET not in out
    assert [json.loads(line)["level"] for line in out.splitlines() if '"level"' in line] == ["WARNING"]
    if "x-hub-signature-256" in sent:
        assert sent["x-hub-signature-256"] not in out


def test_an_unknown_repository_or_an_unlisted_branch_is_answered_and_ignored(hook: Hook) -> None:
    other_repo = sample("github_push.json").replace(b"Codertocat/Hello-World", b"Codertocat/Other")
    status, answer = hook.github(other_repo)
    assert (status, answer["outcome"]) == (200, "ignored")
    assert "no pipeline for github:Codertocat/Other:main" in answer["message"]
    other_branch = sample("github_push.json").replace(b'"refs/heads/main"', b'"refs/heads/feature/x"')
    status, answer = hook.github(other_branch, X_GitHub_Delivery=str(uuid.uuid4()))
    assert (status, answer["outcome"]) == (200, "ignored")
    assert "no pipeline for github:Codertocat/Hello-World:feature/x" in answer["message"]
    assert hook.recorded() == []
    assert hook.world.builds() == []


def test_a_25_mb_delivery_is_refused_413_and_changes_nothing(hook: Hook) -> None:
    body = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    status, answer = hook.github(body)
    assert (status, answer["outcome"]) == (413, "refused")
    assert hook.recorded() == []


def test_a_gitlab_push_with_its_token_starts_the_release(hook: Hook) -> None:
    hook.world.publish(demo_pipelines_yaml(hook.world.account, source="gitlab:mike/diaspora", branch="master"))
    # WHEN GitLab delivers its documented push with the wrong token THEN 401, nothing recorded
    status, answer = hook.gitlab(sample("gitlab_push_example.json"), token="wrong")
    assert (status, answer["outcome"]) == (401, "refused")
    assert hook.recorded() == []
    # WHEN with the right token THEN the release of checkout_sha is BUILDING
    status, answer = hook.gitlab(sample("gitlab_push_example.json"))
    assert (status, answer["outcome"]) == (200, "started"), answer
    (release,) = hook.world.store.list_releases("web", limit=5)
    assert (release.commit, release.repository, release.branch) == (
        "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
        "gitlab:mike/diaspora",
        "master",
    )
    # and a GitHub delivery for the same commit never collides with it (namespaced keys)
    assert len(hook.world.builds()) == 1


def test_a_provider_without_a_secret_is_refused(hook: Hook) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=hook.secret_arn, SecretString=json.dumps({"github": GITHUB_SECRET})
    )
    hook.app.endpoint.cache_clear()  # a new cold start reads the secret again
    status, answer = hook.gitlab(sample("gitlab_push_example.json"))
    assert status == 401
    assert "gitlab webhooks are not configured" in answer["message"]


def test_the_webhook_secrets_never_show_in_their_repr() -> None:
    secrets = WebhookSecrets.from_json(json.dumps({"github": GITHUB_SECRET}))
    assert GITHUB_SECRET not in repr(secrets)
    assert secrets.for_provider("gitlab") is None


def test_a_delivery_already_being_handled_is_answered_not_handled_twice(
    hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

    def in_progress(**_: Any) -> list[dict[str, Any]]:
        raise IdempotencyAlreadyInProgressError("in progress")

    monkeypatch.setattr(hook.app, "start", in_progress)
    status, answer = hook.github(sample("github_push.json"))
    assert (status, answer["outcome"]) == (200, "handled")
    assert "being handled by another request" in answer["message"]
    assert hook.recorded() == []


def test_a_fault_worth_retrying_answers_503_so_the_delivery_can_be_redelivered(
    hook: Hook, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyPersistenceLayerError

    def unreachable(**_: Any) -> list[dict[str, Any]]:
        raise IdempotencyPersistenceLayerError("DynamoDB is throttling")

    original = hook.app.start
    monkeypatch.setattr(hook.app, "start", unreachable)
    status, answer = hook.github(sample("github_push.json"))
    assert (status, answer["outcome"]) == (503, "retry")
    assert "redeliver" in answer["message"]
    assert hook.recorded() == []
    monkeypatch.setattr(hook.app, "start", original)
    # WHEN GitHub redelivers it (same X-GitHub-Delivery) THEN it is handled
    status, answer = hook.github(sample("github_push.json"))
    assert (status, answer["outcome"]) == (200, "started")
