"""approvals_http (docs/design.md invariant 4 over HTTP): the approval page changes nothing, its form decides once
and puts ONE "Approval Decided" on the bus, every refusal is a clear page with its status and no
state change, and Slack's buttons count only in a request Slack signed, from an approver.

Most tests drive the real handler (`functions/approvals_http/app.py`) with Function URL events
(payload format 2.0) against moto in process; the concurrency and retry tests call
`deployer.approval_http` directly with injected dependencies. Each security test fails when the
protection it names is removed (checked by breaking the code on purpose)."""

from __future__ import annotations

import base64
import dataclasses
import functools
import hashlib
import hmac
import importlib.util
import json
import logging
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from moto import mock_aws

from deployer import runtime
from deployer.approval_http import SLACK_ACK_BUDGET_SECONDS, ApprovalHttp, Request
from deployer.approval_page import CONTENT_SECURITY_POLICY
from deployer.approvals import Approval, Approvals
from deployer.deps import Deps
from deployer.events.deployer_bus import ApprovalDecidedEvent
from deployer.events.parse import parse_event
from deployer.flow.approval import on_approval
from deployer.flow.progress import approval_context
from deployer.releases.model import Release, ReleaseState
from deployer.slack import SlackNotifier, SlackSettings
from deployer_cli.views import status
from deployer_local import template
from deployer_local.function_url import FunctionUrlServer
from tests.support.rawhttp import RawResponse, exchange
from tests.support.rawhttp import request as raw_request
from tests.support.slack_sink import SlackSink
from tests.support.world import World, commit_id, make_world

pytestmark = pytest.mark.unit

KEY = b"approval-signing-key-for-http-tests-0123456789"
OTHER_KEY = b"another-signing-key-nobody-deployed-9876543210"
SLACK_SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
APPROVER = "U012ABCDEF"
STRANGER = "U099ZZZZZZ"
DIGEST = "sha256:" + "b" * 64
IMAGE = f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/web@{DIGEST}"
HOST = "abcdefghijklmnop.lambda-url.eu-west-1.on.aws"
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"
WRITES = frozenset(
    {
        ("dynamodb", "PutItem"),
        ("dynamodb", "UpdateItem"),
        ("dynamodb", "DeleteItem"),
        ("dynamodb", "BatchWriteItem"),
        ("dynamodb", "TransactWriteItems"),
        ("events", "PutEvents"),
    }
)
HANDLER = template.repository_root() / "functions" / "approvals_http" / "app.py"


# --- the world ---------------------------------------------------------------------------------


@dataclass
class Calls:
    """Every AWS API call made in the process (service, operation), whoever made the client."""

    made: list[tuple[str, str]] = field(default_factory=list)
    fail_put_events: list[dict[str, Any] | Exception] = field(default_factory=list)

    @property
    def writes(self) -> list[tuple[str, str]]:
        return [call for call in self.made if call in WRITES]

    def of(self, service: str) -> list[str]:
        return [operation for name, operation in self.made if name == service]


@dataclass
class Env:
    world: World
    approvals: Approvals
    calls: Calls
    queue_url: str
    sink: SlackSink

    @functools.cached_property
    def table(self) -> Any:
        return boto3.resource("dynamodb").Table(self.world.names.table)

    @functools.cached_property
    def sqs(self) -> Any:
        return boto3.client("sqs")

    def decided_events(self) -> list[dict[str, Any]]:
        """Every "Approval Decided" the bus delivered, through the on_approval rule's own pattern."""
        sqs = self.sqs
        found: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def approval_status(self, approval: Approval) -> str:
        item = self.table.get_item(Key={"pk": f"APPROVAL#{approval.approval_id}", "sk": "META"}, ConsistentRead=True)
        return str(item["Item"]["status"])

    def release(self, release_id: str) -> Release:
        release = self.world.store.get(release_id)
        assert release is not None
        return release


def spy_on_aws(monkeypatch: pytest.MonkeyPatch, calls: Calls) -> None:
    original = BaseClient._make_api_call

    def spy(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        calls.made.append((service, operation))
        if service == "events" and operation == "PutEvents" and calls.fail_put_events:
            failure = calls.fail_put_events.pop(0)
            if isinstance(failure, Exception):
                raise failure
            return failure
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)


@pytest.fixture
def env(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with SlackSink(token="xoxb-local") as sink:
        world = make_world()
        # The bus delivers "Approval Decided" to a queue through on_approval's rule pattern.
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="approval-decided")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events")
        pattern = template.rule_patterns()["OnApprovalFunction.DecisionRule"]
        events.put_rule(Name="decided", EventBusName=world.names.bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="decided", EventBusName=world.names.bus, Targets=[{"Id": "q", "Arn": queue_arn}])
        # The function's secrets and environment, as template.yaml sets them.
        secrets = boto3.client("secretsmanager")
        key_arn = secrets.create_secret(Name="approval-key", SecretString=KEY.decode())["ARN"]
        slack_secret = {
            "bot_token": "xoxb-local",
            "signing_secret": SLACK_SIGNING_SECRET,
            "channel": "#deploys",
            "api_base_url": sink.api_base_url,
        }
        slack_arn = secrets.create_secret(Name="slack", SecretString=json.dumps(slack_secret))["ARN"]
        for name, value in world.names.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DEPLOYER_SIGNING_KEY_SECRET", key_arn)
        monkeypatch.setenv("DEPLOYER_SLACK_SECRET", slack_arn)
        runtime.settings.cache_clear()
        handler().endpoint.cache_clear()
        calls = Calls()
        approvals = Approvals(world.store._table, world.store, lambda: KEY, base_url=f"https://{HOST}/")
        spy_on_aws(monkeypatch, calls)
        yield Env(world, approvals, calls, queue_url, sink)
        handler().endpoint.cache_clear()
        runtime.settings.cache_clear()


@functools.cache
def handler() -> ModuleType:
    """The real handler module, imported from its path (it is not a package)."""
    spec = importlib.util.spec_from_file_location("approvals_http_app", HANDLER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Context:
    function_name: str = "ecs-deployer-test-approvals-http"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:eu-west-1:123456789012:function:ecs-deployer-test-approvals-http"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))


def url_event(
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    encode: bool = True,
    source_ip: str = "203.0.113.9",
) -> dict[str, Any]:
    """A Lambda Function URL event, payload format 2.0, as AWS sends it."""
    now = datetime.now(UTC)
    all_headers = {
        "host": HOST,
        "user-agent": BROWSER,
        "accept": "text/html",
        "x-forwarded-proto": "https",
        "x-forwarded-for": source_ip,
        "x-amzn-trace-id": "Root=1-67890abc-0123456789abcdef01234567",
        **(headers or {}),
    }
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": all_headers,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": HOST.split(".", 1)[0],
            "domainName": HOST,
            "domainPrefix": HOST.split(".", 1)[0],
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": all_headers["user-agent"],
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": "$default",
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = base64.b64encode(body).decode() if encode else body.decode()
        event["isBase64Encoded"] = encode
    return event


def invoke(event: dict[str, Any]) -> dict[str, Any]:
    response: dict[str, Any] = handler().lambda_handler(event, Context())
    return response


def get(token: str) -> dict[str, Any]:
    return invoke(url_event("GET", f"/approvals/{token}"))


FORM = {"content-type": "application/x-www-form-urlencoded"}


def post(token: str, decision: str | None = "approve", *, encode: bool = True) -> dict[str, Any]:
    body = urllib.parse.urlencode({"decision": decision} if decision is not None else {}).encode()
    return invoke(url_event("POST", f"/approvals/{token}", body=body, headers=FORM, encode=encode))


def header(response: dict[str, Any], name: str) -> str | None:
    return next((str(v) for k, v in response.get("headers", {}).items() if k.lower() == name.lower()), None)


def text_of(response: dict[str, Any]) -> str:
    body = str(response.get("body", ""))
    return base64.b64decode(body).decode() if response.get("isBase64Encoded") else body


# --- releases waiting for approval, as the flow leaves them -------------------------------------


def waiting(
    env: Env,
    label: str = "a",
    *,
    stage: str = "prod",
    approvers: tuple[str, ...] = (),
    pushed_at: str = "2026-11-29T10:00:00Z",
    approvals: Approvals | None = None,
    context: bool = True,
    **fields: str,
) -> tuple[Release, Approval, str]:
    """A release deployed to dev and AWAITING_APPROVAL for `stage`, with the context the flow
    records (`approval_context`'s keys); `fields` override the release's own strings."""
    store = env.world.store
    release, _ = store.create(
        pipeline=fields.get("pipeline", "web"),
        repository="web-app",
        branch=fields.get("branch", "main"),
        commit=fields.get("commit", commit_id(label)),
        previous_commit=None,
        pusher=fields.get("pusher", "arn:aws:sts::123456789012:assumed-role/Dev/alice"),
        pushed_at=pushed_at,
    )
    store.transition(release, ReleaseState.BUILT, image_uri=IMAGE, image_digest=DIGEST)
    store.transition(release, ReleaseState.DEPLOYED, stage="dev")
    assert store.enter_stage(release, stage)
    approval, token = (approvals or env.approvals).request(release, stage, approvers=approvers, expires_in_hours=24)
    service = env.world.account.services["prod"]
    store.transition(
        release,
        ReleaseState.AWAITING_APPROVAL,
        stage=stage,
        reason=fields.get("reason", f"waiting for approval of {stage}"),
        approval_id=approval.approval_id,
        approval_expires_at=approval.expires_at.isoformat(),
        approval_context=(
            {
                "service": f"{service.cluster}/{service.service}",
                "approvers": list(approvers),
                "image_uri": IMAGE,
                "current_task_definition": env.world.service("prod")["taskDefinition"],
                "desired": 4,
                "minimum_healthy_percent": 50,
                "maximum_percent": 150,
                "plan_line": "2 waves, peak 6 tasks (150%), at least 2 running",
            }
            if context
            else None
        ),
    )
    env.calls.made.clear()
    return release, approval, token


def no_state_change(env: Env) -> None:
    assert env.calls.writes == []
    assert env.decided_events() == []


# --- GET: the page -----------------------------------------------------------------------------


def test_the_page_shows_the_release_the_change_and_the_plan_and_writes_nothing(env: Env) -> None:
    # GIVEN a release waiting for prod, decidable by anyone holding the link
    release, approval, token = waiting(env)
    # WHEN the link is opened (as a person or a link previewer would)
    response = get(token)
    page = text_of(response)
    # THEN the page shows what would be deployed, where, how and until when
    assert response["statusCode"] == 200
    assert header(response, "content-type") == "text/html; charset=utf-8"
    assert release.commit in page
    assert release.commit[:12] in page
    assert "web" in page
    assert "prod" in page
    assert "assumed-role/Dev/alice" in page
    assert IMAGE in page
    assert env.world.service("prod")["taskDefinition"].rsplit("/", 1)[-1] in page
    assert "a new revision of the same family" in page
    # the rollout drawn as `deployer plan` draws it (min 50 / max 150 for 4 tasks)
    assert "<pre>" in page
    assert "[■ ■ ■ ■ · ·]" in page
    assert "Summary:" in page
    assert approval.expires_at.strftime("%Y-%m-%d %H:%M UTC") in page
    assert "anyone holding this link" in page
    # one form that posts, two buttons, no script, and the token is not repeated in the body
    assert page.count("<form") == 1
    assert '<form method="post">' in page
    assert re.search(r'<button type="submit" name="decision" value="approve"', page)
    assert re.search(r'<button type="submit" name="decision" value="reject"', page)
    assert "<script" not in page.lower()
    assert token not in page
    # AND nothing was written: no DynamoDB write, no event
    no_state_change(env)
    assert env.approval_status(approval) == "PENDING"
    assert env.release(release.release_id).state is ReleaseState.AWAITING_APPROVAL


def test_opening_the_link_many_times_changes_nothing(env: Env) -> None:
    _, approval, token = waiting(env)
    for _ in range(3):
        assert get(token)["statusCode"] == 200
    no_state_change(env)
    assert env.approval_status(approval) == "PENDING"


def test_a_stage_with_approvers_names_them_and_still_offers_the_form(env: Env) -> None:
    # GIVEN a stage listing approvers (Slack clicks are checked against them; the link is a capability)
    _, _, token = waiting(env, approvers=(APPROVER,))
    # WHEN the link is opened
    page = text_of(get(token))
    # THEN the page names the expected approvers and offers the two buttons
    assert f"Expected approvers: <code>{APPROVER}</code>" in page
    assert '<form method="post">' in page
    assert 'value="approve"' in page
    assert 'value="reject"' in page
    no_state_change(env)


def test_without_an_approval_context_the_page_says_the_plan_is_missing(env: Env) -> None:
    _, _, token = waiting(env, context=False)
    response = get(token)
    page = text_of(response)
    assert response["statusCode"] == 200
    assert "The rollout plan is not available" in page
    assert "<pre>" not in page
    assert page.count("<form") == 1


def test_the_page_shows_the_context_the_flow_itself_records(env: Env) -> None:
    # GIVEN a release the flow itself moved to AWAITING_APPROVAL (its approval_context, its link)
    release, _, token = waiting(env, "flow-made", context=False)
    pipeline = env.world.deps.config().pipeline_named("web")
    assert pipeline is not None
    stage = pipeline.stage_named("prod")
    assert stage is not None
    context = approval_context(release, stage, env.world.deps)
    env.world.store.save(release, approval_context=context)
    # WHEN its page is opened
    page = text_of(get(token))
    # THEN the plan is drawn from what the flow recorded (the demo prod service, 50/150)
    assert "<pre>" in page
    assert f"desired {context['desired']} tasks, minimumHealthyPercent 50, maximumPercent 150" in page
    assert str(context["current_task_definition"]).rsplit("/", 1)[-1] in page


HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.mark.parametrize("where", ["commit", "branch", "pusher", "reason", "stage", "pipeline"])
def test_every_value_shown_is_escaped(env: Env, where: str) -> None:
    # GIVEN a release one of whose shown values carries markup
    fields = {where: f"{where}-{HOSTILE}"} if where != "stage" else {}
    stage = f"prod-{HOSTILE}" if where == "stage" else "prod"
    _, _, token = waiting(env, stage=stage, **fields)
    # WHEN its page is opened
    page = text_of(get(token))
    # THEN the markup is shown as text, never as markup
    assert "<script" not in page.lower()
    assert "<img" not in page.lower()
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.count("<form") == 1


# --- POST: the decision ------------------------------------------------------------------------


@pytest.mark.parametrize("encode", [True, False], ids=["base64-body", "plain-body"])
def test_approving_puts_one_event_on_the_bus_and_says_what_happens(env: Env, encode: bool) -> None:
    # GIVEN a release waiting for prod
    release, approval, token = waiting(env)
    # WHEN the page's Approve button is pressed
    response = post(token, "approve", encode=encode)
    # THEN the page says prod will deploy, the approval is used, and ONE event is on the bus
    assert response["statusCode"] == 200
    assert "Approved: prod of web will deploy now" in text_of(response)
    assert env.approval_status(approval) == "APPROVED"
    (event,) = env.decided_events()
    assert event["source"] == "ecs-deployer"
    assert event["detail-type"] == "Approval Decided"
    detail = event["detail"]
    assert detail["release_id"] == release.release_id
    assert detail["approval_id"] == approval.approval_id
    assert detail["stage"] == "prod"
    assert detail["decision"] == "approve"
    assert detail["decided_by"] == {"kind": "link", "source_ip": "203.0.113.9", "user_agent": BROWSER}
    assert env.calls.of("events") == ["PutEvents"]
    # AND the release itself waits for on_approval (this function moves nothing)
    assert env.release(release.release_id).state is ReleaseState.AWAITING_APPROVAL


def test_rejecting_puts_one_reject_event(env: Env) -> None:
    _, approval, token = waiting(env)
    response = post(token, "reject")
    assert response["statusCode"] == 200
    assert "Rejected" in text_of(response)
    assert env.approval_status(approval) == "REJECTED"
    (event,) = env.decided_events()
    assert event["detail"]["decision"] == "reject"


def test_a_second_post_is_refused_and_puts_no_second_event(env: Env) -> None:
    # GIVEN an approval already approved through its link
    _, approval, token = waiting(env)
    assert post(token, "approve")["statusCode"] == 200
    assert len(env.decided_events()) == 1
    env.calls.made.clear()
    # WHEN the form is posted again (either decision)
    for decision in ("approve", "reject"):
        response = post(token, decision)
        # THEN 409 with a page saying it was already decided, and nothing more happens
        assert response["statusCode"] == 409
        assert "Already decided" in text_of(response)
    no_state_change(env)
    assert env.approval_status(approval) == "APPROVED"
    # AND the page itself now says so too
    assert get(token)["statusCode"] == 409


@pytest.mark.parametrize(
    "body",
    [
        "decision=maybe",
        "decision=",
        "",
        "decision=approve&decision=reject",
        "decision=APPROVE",
        "something=else",
    ],
)
def test_anything_but_approve_or_reject_is_a_400_page(env: Env, body: str) -> None:
    _, approval, token = waiting(env)
    response = invoke(url_event("POST", f"/approvals/{token}", body=body.encode(), headers=FORM))
    assert response["statusCode"] == 400
    assert "<h1>Bad request</h1>" in text_of(response)
    no_state_change(env)
    assert env.approval_status(approval) == "PENDING"


@pytest.mark.parametrize("content_type", ["text/plain", "multipart/form-data; boundary=x", "application/json"])
def test_a_decision_sent_other_than_as_the_pages_form_is_refused(env: Env, content_type: str) -> None:
    # GIVEN a body that would approve, sent with another content type than the form's
    _, approval, token = waiting(env)
    response = invoke(
        url_event("POST", f"/approvals/{token}", body=b"decision=approve", headers={"content-type": content_type})
    )
    # THEN 400 and nothing decided
    assert response["statusCode"] == 400
    no_state_change(env)
    assert env.approval_status(approval) == "PENDING"


def test_the_link_decides_a_stage_that_lists_approvers(env: Env) -> None:
    # GIVEN prod lists approvers (checked for Slack clicks; docs/design.md, invariant 4)
    _, approval, token = waiting(env, approvers=(APPROVER,))
    # WHEN the link's holder posts the form
    response = post(token, "approve")
    # THEN the decision is taken, once
    assert response["statusCode"] == 200
    assert env.approval_status(approval) == "APPROVED"


# --- refusals ----------------------------------------------------------------------------------


def _flip_signature(token: str) -> str:
    head, signature = token.rsplit(".", 1)
    return f"{head}.{('A' if signature[0] != 'A' else 'B')}{signature[1:]}"


def _other_key(env: Env, token: str) -> str:
    _, approval_id, expires, _ = token.split(".")
    payload = f"v1.{approval_id}.{expires}"
    digest = hmac.new(OTHER_KEY, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def _expired(env: Env, token: str) -> str:
    past = datetime.now(UTC) - timedelta(hours=30)
    stale = Approvals(env.world.table, env.world.store, lambda: KEY, clock=lambda: past)
    _, _, old = waiting(env, "expired", stage="staging", approvals=stale)
    return old


@pytest.mark.parametrize(
    ("forge", "status", "title"),
    [
        (lambda env, token: _flip_signature(token), 403, "Invalid approval link"),
        (_other_key, 403, "Invalid approval link"),
        (_expired, 410, "Approval expired"),
        (lambda env, token: token[:-1], 403, "Invalid approval link"),
    ],
    ids=["forged", "other-key", "expired", "truncated"],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_refused_tokens_get_a_clear_page_and_change_nothing(
    env: Env, forge: Callable[[Env, str], str], status: int, title: str, method: str
) -> None:
    # GIVEN a release waiting for prod, and a token that must not count
    _, approval, token = waiting(env)
    bad = forge(env, token)
    env.calls.made.clear()
    # WHEN it is opened or posted
    response = get(bad) if method == "GET" else post(bad, "approve")
    # THEN the refusal's status and title, a page, and no state change
    assert response["statusCode"] == status
    page = text_of(response)
    assert f"<h1>{title}</h1>" in page
    assert "Traceback" not in page
    no_state_change(env)
    assert env.approval_status(approval) == "PENDING"


def test_an_unknown_approval_is_not_found(env: Env) -> None:
    # GIVEN a correctly signed token whose approval was never requested
    payload = f"v1.{'x' * 22}.{int(time.time()) + 3600}"
    digest = hmac.new(KEY, payload.encode(), hashlib.sha256).digest()
    token = f"{payload}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"
    env.calls.made.clear()
    response = post(token)
    assert response["statusCode"] == 404
    assert "Approval not found" in text_of(response)
    no_state_change(env)


def test_a_token_for_stage_a_is_refused_while_stage_b_waits(env: Env) -> None:
    # GIVEN a release waiting for prod, and an approval of the same release for another stage
    release, approval, _ = waiting(env)
    staging, staging_token = env.approvals.request(release, "staging", approvers=(), expires_in_hours=24)
    env.calls.made.clear()
    # WHEN the other stage's link is used
    response = post(staging_token, "approve")
    # THEN 409: the release does not wait for that stage; nothing decided
    assert response["statusCode"] == 409
    assert "Release no longer waiting" in text_of(response)
    no_state_change(env)
    assert env.approval_status(staging) == "PENDING"
    assert env.approval_status(approval) == "PENDING"


@pytest.mark.parametrize("flow_superseded_it", [True, False], ids=["superseded", "not-yet-superseded"])
def test_an_older_release_is_refused_once_a_newer_one_reached_the_stage(env: Env, flow_superseded_it: bool) -> None:
    # GIVEN an older release waiting for prod, then a newer one reaching prod too
    older, older_approval, older_token = waiting(env, "older", pushed_at="2026-11-29T10:00:00Z")
    waiting(env, "newer", pushed_at="2026-11-29T10:05:00Z")
    if flow_superseded_it:  # what the flow does once the newer one waits there
        env.world.store.transition(env.release(older.release_id), ReleaseState.SUPERSEDED, reason="superseded")
    env.calls.made.clear()
    # WHEN the older release's link is used
    response = post(older_token, "approve")
    # THEN 409 and nothing decided: an older commit never goes over a newer one
    assert response["statusCode"] == 409
    no_state_change(env)
    assert env.approval_status(older_approval) == "PENDING"


# --- paths, methods and failures ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 404),
        ("GET", "/approvals", 404),
        ("GET", "/approvals/", 404),
        ("GET", "/approvals/a/b", 404),
        ("POST", "/admin", 404),
        ("PUT", "/approvals/v1.abc", 405),
        ("DELETE", "/approvals/v1.abc", 405),
        ("HEAD", "/approvals/v1.abc", 405),
        ("GET", "/slack/interactions", 405),
    ],
)
def test_unknown_paths_and_methods_get_a_page(
    monkeypatch: pytest.MonkeyPatch, method: str, path: str, status: int
) -> None:
    calls = Calls()
    with mock_aws():
        spy_on_aws(monkeypatch, calls)
        response = invoke(url_event(method, path))
    assert response["statusCode"] == status
    assert header(response, "content-type") == "text/html; charset=utf-8"
    assert "<h1>" in text_of(response)
    if status == 405:
        assert header(response, "allow") in ("GET, POST", "POST")
    assert calls.made == []  # answered by the resolver alone: no AWS call at all


def test_an_unexpected_failure_is_a_500_page_without_internals(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, token = waiting(env)

    def broken(self: ApprovalHttp, token: str) -> Any:
        raise RuntimeError("internal detail /var/task/secret.py line 42")

    monkeypatch.setattr(ApprovalHttp, "show", broken)
    response = get(token)
    page = text_of(response)
    assert response["statusCode"] == 500
    assert "Something went wrong" in page
    assert "secret.py" not in page
    assert "Traceback" not in page


def test_dynamodb_unreachable_is_a_503_page_and_nothing_is_decided(env: Env) -> None:
    _, approval, token = waiting(env)
    throttled = ClientError({"Error": {"Code": "ThrottlingException", "Message": "slow down"}}, "UpdateItem")
    original = BaseClient._make_api_call

    def update_throttled(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        if operation == "UpdateItem":
            raise throttled
        return original(client, operation, params)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(BaseClient, "_make_api_call", update_throttled)
        response = post(token)
    assert response["statusCode"] == 503
    assert "Nothing was decided" in text_of(response)
    assert env.decided_events() == []
    assert env.approval_status(approval) == "PENDING"


@pytest.mark.parametrize(
    "respond",
    [
        lambda env: get(waiting(env)[2]),
        lambda env: post(waiting(env)[2], "approve"),
        lambda env: post(_flip_signature(waiting(env)[2]), "approve"),
        lambda env: invoke(url_event("GET", "/nothing")),
    ],
    ids=["page", "decision", "refusal", "not-found"],
)
def test_every_page_carries_the_security_headers(env: Env, respond: Callable[[Env], dict[str, Any]]) -> None:
    response = respond(env)
    assert header(response, "content-security-policy") == CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY == (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    )
    assert header(response, "cache-control") == "no-store"
    assert header(response, "x-frame-options") == "DENY"
    page = text_of(response)
    assert '<meta name="referrer" content="no-referrer">' in page
    assert "<script" not in page.lower()


# --- the event must not be lost ----------------------------------------------------------------


def _put_events_error() -> ClientError:
    return ClientError({"Error": {"Code": "InternalException", "Message": "try later"}}, "PutEvents")


FAILED_ENTRY = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "oops"}]}


@pytest.mark.parametrize("failure", [_put_events_error, lambda: FAILED_ENTRY], ids=["error", "failed-entry"])
def test_a_failed_put_events_is_retried(env: Env, failure: Callable[[], Any]) -> None:
    # GIVEN the bus fails the first two PutEvents
    _, approval, token = waiting(env)
    env.calls.fail_put_events.extend([failure(), failure()])
    # WHEN the form approves
    response = post(token)
    # THEN the third attempt delivers ONE event and the page says prod deploys
    assert response["statusCode"] == 200
    assert env.calls.of("events") == ["PutEvents"] * 3
    assert len(env.decided_events()) == 1
    assert env.approval_status(approval) == "APPROVED"


def test_a_put_events_that_keeps_failing_keeps_the_decision_and_says_so(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the bus refuses every PutEvents
    release, approval, token = waiting(env)
    env.calls.fail_put_events.extend(_put_events_error() for _ in range(10))
    # WHEN the form approves
    with caplog.at_level(logging.ERROR, logger="deployer.approval_http"):
        response = post(token)
    # THEN 503 with a page saying the decision is recorded and will be applied once re-driven
    assert response["statusCode"] == 503
    page = text_of(response)
    assert "Decision recorded, not yet applied" in page
    assert "re-drives" in page
    # AND the decision is kept (the link cannot be used again) while the release still waits
    assert env.approval_status(approval) == "APPROVED"
    assert env.release(release.release_id).state is ReleaseState.AWAITING_APPROVAL
    assert post(token)["statusCode"] == 409
    # AND the error log line carries the exact entry to re-drive, never the token
    (record,) = [r for r in caplog.records if "not published" in r.getMessage()]
    entry = record.__dict__["redrive_entry"]
    assert entry["DetailType"] == "Approval Decided"
    assert json.loads(entry["Detail"])["approval_id"] == approval.approval_id
    assert token not in caplog.text
    # AND putting that entry on the bus is all a re-drive takes
    env.calls.fail_put_events.clear()
    boto3.client("events").put_events(Entries=[entry])
    (event,) = env.decided_events()
    assert event["detail"]["decision"] == "approve"


# --- concurrency (the logic, directly) ---------------------------------------------------------


def direct(env: Env, **overrides: Any) -> ApprovalHttp:
    settings = SlackSettings(
        bot_token="xoxb-local", signing_secret=SLACK_SIGNING_SECRET, api_base_url=env.sink.api_base_url
    )
    kwargs: dict[str, Any] = {
        "approvals": env.approvals,
        "store": env.world.store,
        "events": boto3.client("events"),
        "event_bus_name": env.world.names.bus,
        "slack": SlackNotifier(lambda: settings, timeout=1.0),
        "slack_settings": lambda: settings,
        "sleep": lambda _: None,
    }
    return ApprovalHttp(**{**kwargs, **overrides})


def test_two_simultaneous_posts_make_exactly_one_event(env: Env) -> None:
    # GIVEN two people pressing Approve at the same instant: both pass every check before either
    # writes. (The writes then run one after the other, as DynamoDB applies conditional writes to
    # one item; moto in process does not make them atomic by itself.)
    _, approval, token = waiting(env)
    endpoint = direct(env)
    barrier = threading.Barrier(2, timeout=10)
    one_write_at_a_time = threading.Lock()
    client = env.approvals._table.meta.client

    def both_checked(**_: Any) -> None:
        barrier.wait()
        one_write_at_a_time.acquire()

    def written(**_: Any) -> None:
        one_write_at_a_time.release()

    client.meta.events.register("before-call.dynamodb.UpdateItem", both_checked)
    client.meta.events.register("after-call.dynamodb.UpdateItem", written)
    request = Request(
        method="POST",
        path=f"/approvals/{token}",
        headers=FORM,
        body=b"decision=approve",
        source_ip="198.51.100.7",
        user_agent=BROWSER,
    )
    results: list[int] = []

    def click() -> None:
        results.append(endpoint.decide_by_link(token, request).status)

    threads = [threading.Thread(target=click) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    # THEN one decision counts, the other gets 409, and the bus carries exactly one event
    assert sorted(results) == [200, 409]
    assert len(env.decided_events()) == 1
    assert env.approval_status(approval) == "APPROVED"


def test_the_retry_budget_bounds_how_long_publishing_may_take(env: Env) -> None:
    # GIVEN PutEvents failing and a clock where each attempt takes a second
    _, _, token = waiting(env)
    ticks = iter(range(100))
    endpoint = direct(env, monotonic=lambda: float(next(ticks)), publish_attempts=10, publish_budget_seconds=1.5)
    env.calls.fail_put_events.extend(_put_events_error() for _ in range(10))
    request = Request("POST", f"/approvals/{token}", FORM, b"decision=approve", "198.51.100.7", BROWSER)
    # WHEN the form approves
    result = endpoint.decide_by_link(token, request)
    # THEN it stops retrying once the budget is spent (Slack waits only 3 s) and says so
    assert result.status == 503
    assert env.calls.of("events") == ["PutEvents"] * 2


# --- Slack's buttons ---------------------------------------------------------------------------


def interaction_body(env: Env, token: str, *, user: str = APPROVER, action: str = "approve") -> bytes:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-verification-token",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0DEPLOYS"},
        "channel": {"id": "C0DEPLOYS", "name": "deploys"},
        "message": {"ts": "1700000000.000100", "text": "web → prod needs approval"},
        "response_url": env.sink.response_url("T0001/1234/abcd"),
        "actions": [
            {
                "action_id": action,
                "block_id": "approval",
                "value": token,
                "type": "button",
                "action_ts": "1700000001.000200",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def slack_signature(body: bytes, timestamp: int, secret: str = SLACK_SIGNING_SECRET) -> str:
    base = b"v0:" + str(timestamp).encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def slack_event(
    body: bytes, *, timestamp: int | None = None, signature: str | None = None, encode: bool = True
) -> dict[str, Any]:
    stamp = int(time.time()) if timestamp is None else timestamp
    headers = {
        "content-type": "application/x-www-form-urlencoded",
        "user-agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
        "x-slack-request-timestamp": str(stamp),
        "x-slack-signature": signature or slack_signature(body, stamp),
    }
    return url_event("POST", "/slack/interactions", body=body, headers=headers, encode=encode, source_ip="54.1.2.3")


def responses(env: Env, expect: int = 0) -> list[Any]:
    """What the user was told at the response URL; with `expect`, once that many answers came (the
    endpoint acknowledges Slack first: under load an answer may still be on its way)."""
    return env.sink.wait_for_requests("/response/", expect) if expect else env.sink.requests("/response/")


def answering(env: Env) -> Deps:
    """OnApprovalFunction's dependencies, with the Slack notifier that answers clickers (as
    `runtime.deps` builds it: a generous timeout, since nobody waits for it)."""
    settings = SlackSettings(
        bot_token="xoxb-local", signing_secret=SLACK_SIGNING_SECRET, api_base_url=env.sink.api_base_url
    )
    notifier = SlackNotifier(lambda: settings, timeout=runtime.SLACK_ANSWER_TIMEOUT_SECONDS)
    return dataclasses.replace(env.world.deps, slack=notifier)


def delivered(event: dict[str, Any]) -> ApprovalDecidedEvent:
    """An event as OnApprovalFunction gets it (moto's delivery to SQS leaves out envelope keys
    EventBridge sends: put them back)."""
    return parse_event(
        ApprovalDecidedEvent, {"account": "123456789012", "region": "eu-west-1", "resources": [], **event}
    )


@pytest.mark.parametrize("encode", [True, False], ids=["base64-body", "plain-body"])
def test_an_approver_approves_from_slack(
    env: Env, encode: bool, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN prod waits for an approver's decision
    release, approval, token = waiting(env, approvers=(APPROVER,))
    body = interaction_body(env, token)
    response_url = env.sink.response_url("T0001/1234/abcd")
    # WHEN the approver presses Approve in Slack (a signed interaction)
    with caplog.at_level(logging.DEBUG, logger="deployer"):
        response = invoke(slack_event(body, encode=encode))
    # THEN Slack gets its 200 and ONE event is on the bus, carrying where to answer the user
    assert response["statusCode"] == 200
    assert env.approval_status(approval) == "APPROVED"
    (event,) = env.decided_events()
    assert event["detail"]["decided_by"] == {"kind": "slack", "user": APPROVER}
    assert event["detail"]["release_id"] == release.release_id
    assert event["detail"]["response_url"] == response_url
    # AND the endpoint did not wait for Slack: nothing was posted to the response_url yet
    assert responses(env) == []
    # WHEN OnApprovalFunction handles the event
    with caplog.at_level(logging.DEBUG, logger="deployer"):
        outcome = on_approval(delivered(event), answering(env))
    # THEN prod deploys, and the approver hears it, ephemerally (the release's message follows the
    # release through chat.update)
    assert outcome["outcome"] == "deploying", outcome
    (answer,) = responses(env, expect=1)
    assert answer.body["replace_original"] is False
    assert f"Approved by <@{APPROVER}>" in answer.body["text"]
    assert "*prod* of *web* is deploying now" in answer.body["text"]
    # AND the response_url (a capability) is in no log line (the deployer's, or the handler's JSON
    # lines on stdout), no stored item and no `deployer status`
    logged = caplog.text + "".join(capsys.readouterr())
    assert "approval decided and published" in logged  # the log lines were captured
    assert "/response/" not in logged
    assert response_url not in json.dumps(env.table.scan()["Items"], default=str)
    assert response_url not in repr(delivered(event))
    shown = status_text(env)
    assert f"prod approved by Slack user {APPROVER}" in shown
    assert response_url not in shown


def status_text(env: Env) -> str:
    """What `deployer status` prints (table and --json) for the demo pipeline."""
    pipelines = status.collect(env.world.store, [status.PipelineQuery("web", ("dev", "prod"))])
    return status.render_table(pipelines) + json.dumps(status.to_json(pipelines))


def test_an_approver_rejects_from_slack(env: Env) -> None:
    release, approval, token = waiting(env, approvers=(APPROVER,))
    response = invoke(slack_event(interaction_body(env, token, action="reject")))
    assert response["statusCode"] == 200
    assert env.approval_status(approval) == "REJECTED"
    (event,) = env.decided_events()
    assert event["detail"]["decision"] == "reject"
    assert responses(env) == []
    outcome = on_approval(delivered(event), answering(env))
    assert outcome["outcome"] == "rejected", outcome
    (answer,) = responses(env, expect=1)
    assert f"Rejected by <@{APPROVER}>" in answer.body["text"]
    assert "*prod* of *web* is not deployed: the release ends REJECTED" in answer.body["text"]
    assert env.release(release.release_id).state is ReleaseState.REJECTED


def test_a_decision_applied_twice_tells_the_second_time_that_nothing_more_happened(env: Env) -> None:
    # GIVEN an approval decided in Slack and applied by OnApprovalFunction
    _, _, token = waiting(env, approvers=(APPROVER,))
    invoke(slack_event(interaction_body(env, token)))
    (event,) = env.decided_events()
    deps = answering(env)
    on_approval(delivered(event), deps)
    env.sink.clear()
    # WHEN EventBridge delivers a copy (at least once) with a new id
    copy = delivered({**event, "id": str(uuid.uuid4())})
    outcome = on_approval(copy, deps)
    # THEN nothing more happens, and the user is told so (not "deploying" twice)
    assert outcome["outcome"] == "duplicate"
    (answer,) = responses(env, expect=1)
    assert "nothing more to do for *prod* of *web*" in answer.body["text"]


# --- Slack's 3 seconds: the acknowledgement never waits for Slack --------------------------------

SLOW_SLACK_SECONDS = 5.0  # longer than Slack waits for the acknowledgement (3 s)


def post_over_http(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
    """One POST through the local Function URL: status, body, and seconds until the answer."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read(), time.monotonic() - started
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read(), time.monotonic() - started


def signed_headers(body: bytes) -> dict[str, str]:
    stamp = int(time.time())
    return {
        "content-type": "application/x-www-form-urlencoded",
        "x-slack-request-timestamp": str(stamp),
        "x-slack-signature": slack_signature(body, stamp),
    }


def test_slack_is_acknowledged_at_once_however_slow_its_response_url_and_the_answer_still_arrives(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """Slack (https://docs.slack.dev/tools/bolt-python/concepts/acknowledge): "We recommend calling
    ack() right away before initiating any time-consuming processes such as fetching information
    from your database or sending a new message, since you only have 3 seconds to respond before
    Slack registers a timeout error." """
    # GIVEN a Slack whose response_url answers only after 5 s, and the real handler behind the
    # local Function URL, built afresh (its secrets not read yet: a cold start but for the imports)
    _, approval, token = waiting(env, approvers=(APPROVER,))
    env.sink.slow_down("/response/", SLOW_SLACK_SECONDS)
    body = interaction_body(env, token)
    with FunctionUrlServer(invoke) as server:
        # WHEN the approver presses Approve
        status, _, ack_seconds = post_over_http(server.url + "slack/interactions", body, signed_headers(body))
    # THEN Slack has its 200 well within its 3 s, the slow response_url untouched
    assert status == 200
    assert ack_seconds < 1.5, f"acknowledged after {ack_seconds:.2f} s"
    assert env.approval_status(approval) == "APPROVED"
    assert responses(env) == []
    # WHEN OnApprovalFunction handles the event (asynchronously: nobody waits for it)
    (event,) = env.decided_events()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="deployer.slack"):
        outcome = on_approval(delivered(event), answering(env))
    answered_seconds = time.monotonic() - started
    # THEN prod deploys and the approver's answer arrives, however slow Slack is: the consumer
    # waited for Slack's answer (no timeout, no failure logged)
    assert outcome["outcome"] == "deploying", outcome
    (answer,) = responses(env, expect=1)
    assert "is deploying now" in answer.body["text"]
    assert answered_seconds >= SLOW_SLACK_SECONDS
    assert "Slack response_url failed" not in caplog.text


def slow_secrets(seconds: float, settings: SlackSettings) -> Callable[[], SlackSettings]:
    """The Slack settings loader of a cold start: the first read takes `seconds`."""
    read: list[bool] = []

    def load() -> SlackSettings:
        if not read:
            time.sleep(seconds)
            read.append(True)
        return settings

    return load


@pytest.mark.parametrize("cold_read_seconds", [0.0, 0.3], ids=["warm", "cold-secrets"])
def test_a_refusal_answered_from_the_endpoint_never_holds_the_acknowledgement_past_its_budget(
    env: Env, cold_read_seconds: float
) -> None:
    # GIVEN a slow Slack (5 s), secrets read cold or warm, and someone who is not an approver
    _, approval, token = waiting(env, approvers=(APPROVER,))
    env.sink.slow_down("/response/", SLOW_SLACK_SECONDS)
    settings = SlackSettings(
        bot_token="xoxb-local", signing_secret=SLACK_SIGNING_SECRET, api_base_url=env.sink.api_base_url
    )
    endpoint = direct(env, slack_settings=slow_secrets(cold_read_seconds, settings))
    body = interaction_body(env, token, user=STRANGER)
    request = Request("POST", "/slack/interactions", signed_headers(body), body, "54.1.2.3", "Slackbot 1.0")
    # WHEN the click arrives
    started = time.monotonic()
    result = endpoint.slack_interaction(request)
    ack_seconds = time.monotonic() - started
    # THEN Slack gets its 200 by the end of the budget counted from the request's start (the
    # secrets read included), not after the slow answer
    assert result.status == 200
    assert ack_seconds < SLACK_ACK_BUDGET_SECONDS + 0.45, f"acknowledged after {ack_seconds:.2f} s"  # a loaded CI box
    # AND nothing was decided, and the answer still reaches Slack
    assert env.approval_status(approval) == "PENDING"
    assert env.decided_events() == []
    (answer,) = wait_for(lambda: responses(env))
    assert "Not an approver" in answer.body["text"]


def wait_for(found: Callable[[], list[Any]], seconds: float = 5.0) -> list[Any]:
    deadline = time.monotonic() + seconds
    while not (got := found()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return got


def test_a_slack_decision_the_bus_refuses_is_told_and_its_redrive_entry_holds_no_response_url(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    # GIVEN the bus refuses every PutEvents
    _, approval, token = waiting(env, approvers=(APPROVER,))
    env.calls.fail_put_events.extend(_put_events_error() for _ in range(10))
    # WHEN the approver presses Approve
    with caplog.at_level(logging.INFO):
        response = invoke(slack_event(interaction_body(env, token)))
    # THEN Slack gets its 200, the decision stays recorded, and the approver is told it waits
    assert response["statusCode"] == 200
    assert env.approval_status(approval) == "APPROVED"
    (answer,) = wait_for(lambda: responses(env))
    assert answer.body["replace_original"] is False
    assert f"Approved by <@{APPROVER}>" in answer.body["text"]
    assert "recorded, but the deployer has not received it yet" in answer.body["text"]
    # AND the logged re-drive entry carries everything but the response_url (a capability)
    (record,) = [r for r in caplog.records if "not published" in r.getMessage()]
    detail = json.loads(record.__dict__["redrive_entry"]["Detail"])
    assert detail["approval_id"] == approval.approval_id
    assert "response_url" not in detail
    assert "/response/" not in caplog.text


def _wrong_secret(body: bytes) -> dict[str, Any]:
    stamp = int(time.time())
    return slack_event(body, timestamp=stamp, signature=slack_signature(body, stamp, "not-the-signing-secret"))


def _stale(body: bytes) -> dict[str, Any]:
    stamp = int(time.time()) - 6 * 60
    return slack_event(body, timestamp=stamp, signature=slack_signature(body, stamp))


def _altered(body: bytes) -> dict[str, Any]:
    stamp = int(time.time())
    event = slack_event(body, timestamp=stamp)
    tampered = body.replace(b"alice", b"mallory")
    assert tampered != body
    event["body"] = base64.b64encode(tampered).decode()
    return event


def _unsigned(body: bytes) -> dict[str, Any]:
    event = slack_event(body)
    del event["headers"]["x-slack-signature"]
    return event


def _bad_base64(body: bytes) -> dict[str, Any]:
    event = slack_event(body)
    event["body"] = "!!not base64!!"
    return event


@pytest.mark.parametrize(
    "forge",
    [_wrong_secret, _stale, _altered, _unsigned, _bad_base64],
    ids=["wrong-signature", "stale-timestamp", "altered-body", "unsigned", "undecodable"],
)
def test_an_interaction_slack_did_not_sign_is_refused_before_anything_is_read(
    env: Env, forge: Callable[[bytes], dict[str, Any]]
) -> None:
    # GIVEN a genuine approver's interaction, tampered with or replayed late
    _, approval, token = waiting(env, approvers=(APPROVER,))
    # WHEN it reaches the endpoint
    response = invoke(forge(interaction_body(env, token)))
    # THEN 401, and nothing was read or written: no DynamoDB call, no event, no Slack answer
    assert response["statusCode"] == 401
    assert env.calls.of("dynamodb") == []
    no_state_change(env)
    assert responses(env) == []
    assert env.approval_status(approval) == "PENDING"


def test_a_slack_user_who_is_not_an_approver_is_told_why_and_nothing_happens(env: Env) -> None:
    # GIVEN prod lists one approver
    _, approval, token = waiting(env, approvers=(APPROVER,))
    # WHEN someone else in the channel presses Approve
    response = invoke(slack_event(interaction_body(env, token, user=STRANGER)))
    # THEN Slack gets its 200, the user gets a message saying why, and nothing is decided
    assert response["statusCode"] == 200
    no_state_change(env)
    assert env.approval_status(approval) == "PENDING"
    (answer,) = responses(env, expect=1)
    assert answer.body["replace_original"] is False
    assert "Not an approver" in answer.body["text"]
    assert "not one of this stage's approvers" in answer.body["text"]


def test_a_second_click_in_slack_is_told_it_was_already_decided(env: Env) -> None:
    _, _, token = waiting(env, approvers=(APPROVER,))
    invoke(slack_event(interaction_body(env, token)))
    assert len(env.decided_events()) == 1
    env.sink.clear()
    response = invoke(slack_event(interaction_body(env, token, action="reject")))
    assert response["statusCode"] == 200
    assert env.decided_events() == []
    (answer,) = responses(env, expect=1)
    assert "Already decided" in answer.body["text"]
    assert answer.body["replace_original"] is False


def test_the_review_link_button_is_acknowledged_and_does_nothing(env: Env) -> None:
    _, approval, token = waiting(env, approvers=(APPROVER,))
    response = invoke(slack_event(interaction_body(env, token, action="review")))
    assert response["statusCode"] == 200
    assert text_of(response) == ""
    no_state_change(env)
    assert responses(env) == []
    assert env.approval_status(approval) == "PENDING"


def test_a_signed_body_that_is_not_an_interaction_is_a_400(env: Env) -> None:
    body = b"payload=%7B%22type%22%3A%22view_submission%22%7D"
    response = invoke(slack_event(body))
    assert response["statusCode"] == 400
    no_state_change(env)


# --- bodies that are not UTF-8, through the local Function URL (raw sockets) -------------------


def raw_post(server: FunctionUrlServer, path: str, body: bytes, headers: dict[str, str]) -> RawResponse:
    return exchange(server.host_text, server.port, raw_request("POST", path, body, {**headers, "Connection": "close"}))


def test_a_form_that_is_not_utf8_is_a_400_page_and_decides_nothing(env: Env) -> None:
    # GIVEN a release waiting for prod, and the real handler behind the local Function URL
    _, approval, token = waiting(env)
    with FunctionUrlServer(invoke) as server:
        # WHEN the form is posted with a byte that is not UTF-8 (the example)
        answer = raw_post(server, f"/approvals/{token}", b"decision=approve&note=\xff", dict(FORM))
    # THEN a 400 page says why (no dropped connection), and nothing was decided
    assert answer.status == 400
    assert "The form could not be read: it is not UTF-8 text. Nothing was decided." in answer.body.decode()
    no_state_change(env)
    assert env.approval_status(approval) == "PENDING"


@pytest.mark.parametrize(
    ("signed", "status", "says"),
    [(True, 400, b"not an interaction: interaction body is not UTF-8 text"), (False, 401, b"refused")],
    ids=["signed", "forged"],
)
def test_a_slack_body_that_is_not_utf8_changes_nothing(env: Env, signed: bool, status: int, says: bytes) -> None:
    # GIVEN an approver's interaction whose body ends in a byte that is not UTF-8; Slack's
    # signature is an HMAC of the raw bytes, so it can be signed (by whoever holds the secret)
    _, approval, token = waiting(env, approvers=(APPROVER,))
    body = interaction_body(env, token) + b"\xff"
    stamp = int(time.time())
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": str(stamp),
        "X-Slack-Signature": slack_signature(body, stamp, SLACK_SIGNING_SECRET if signed else "not-the-secret"),
    }
    with FunctionUrlServer(invoke) as server:
        answer = raw_post(server, "/slack/interactions", body, headers)
    # THEN signed: 400 (verified, then not an interaction); forged: 401. Either way nothing was
    # read or written, and nobody was answered
    assert answer.status == status
    assert answer.body == says
    assert env.calls.of("dynamodb") == []
    no_state_change(env)
    assert responses(env) == []
    assert env.approval_status(approval) == "PENDING"
