"""The approvals Function URL: the approval page, its decision, and Slack's interactivity endpoint.

| route                        | answers                                                                 |
|------------------------------|-------------------------------------------------------------------------|
| GET  /approvals/<token>      | 200 the page (reads only: link previewers fetch links); refusals below  |
| POST /approvals/<token>      | 200 decided; 400 not approve/reject; 503 decided but not yet published  |
| POST /slack/interactions     | 200 (the acknowledgement; the user hears the outcome through the        |
|                              | interaction's `response_url`); 401 when the request is not signed by    |
|                              | Slack; 400 when it is not an interaction (Approve / Reject, and "Roll   |
|                              | back <stage>": see "Rollback" below)                                    |
| anything else                | 404, or 405 for a known path with another method                        |

A refused approval (`approvals.ApprovalRefused`) answers its own `http_status`: 403 forged link
or not an approver, 404 unknown approval, 409 already decided or release no longer waiting, 410
expired, always with a page naming why and never with a state change. Faults answer 503 (try
again) or 500, with a page and never a stack trace.

The decision and the event. `Approvals.decide` records the decision with one conditional write;
this module then puts ONE "Approval Decided" event on the deployer's bus, which `on_approval`
turns into the deployment. PutEvents is retried a few times within a short budget. If it still
fails, the decision stays recorded (the approval is APPROVED or REJECTED and cannot be taken
again) while the release still waits: the page answers 503 saying so, and an error log line
"approval decided but not published" carries the exact PutEvents entry. The operator re-drives
it by putting that entry on the bus again (`aws events put-events --entries '[<entry>]'`), after
which `on_approval` proceeds as if nothing had happened. A PutEvents retried after a first
attempt that succeeded unseen may put a second copy; `on_approval` treats it as a duplicate
(the release no longer waits for that approval).

Slack's 3 seconds. Slack shows the clicking user an error unless the request is acknowledged
with a 200 within 3 seconds, Lambda's cold start included, so the acknowledgement waits for
nothing slow: the endpoint verifies the signature, records the decision (one conditional write),
publishes it, and answers. It never waits for Slack. What came of a click is told by
OnApprovalFunction (`flow.on_approval`, `flow.on_rollback_requested`), which gets the interaction's
`response_url` in the event's detail and answers the user there, ephemerally, once it knows the
real outcome (deploying, rejected, nothing to roll back...); the release's own message follows
the release through chat.update as always. Only what OnApprovalFunction will never see is answered
from here (a refusal that changes nothing: not an approver, already decided, a rollback not
allowed; or a decision the bus refused), and that answer waits at most until
`SLACK_ACK_BUDGET_SECONDS` after the request began (secrets reads included): past it Slack gets
its 200 first. The `response_url` is a capability (whoever holds it may post into the
conversation): never logged, never stored in the table; SlackNotifier posts only to Slack's host.
A body that is not UTF-8 is verified over its bytes, then refused (400) as not an interaction.

Rollback. The release message's "Roll back <stage>" button (`slack.ROLLBACK_ACTION`, value
`{"release_id", "stage"}`) counts only in a request Slack signed, from a user listed in the
stage's `approval.approvers` of the published configuration: a stage without approvers cannot be
rolled back from Slack (the answer points to `deployer rollback`). The release must still be the
newest to have entered that stage (an old message's button never undoes a newer release) and
must have deployed it or be deploying it. Then ONE "Rollback Requested" event goes on the
deployer's bus (retried within the same budget as a decision): this public endpoint holds no
deploy permission, and OnApprovalFunction does the rollback (`flow.on_rollback_requested`, which
checks the approver again) and tells the clicking user, ephemerally through `response_url`, what
it did (or why not); the rollback release then has its own message. Every refusal changes
nothing.

The link token is a bearer credential: it is never logged and never written into a response body
(the page's form posts to the page's own URL).
"""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import TypeAdapter, ValidationError

from deployer import aws, render
from deployer.approval_page import (
    CONTENT_TYPE,
    SECURITY_HEADERS,
    ApprovalPage,
    approval_page,
    message_page,
    outcome_page,
)
from deployer.approvals import Approval, ApprovalRefused, Approvals, may_decide, now_utc
from deployer.errors import BadInput, ConfigError, DeployerError, TransientError
from deployer.events.deployer_bus import (
    ApprovalDecidedDetail,
    DecidedBy,
    ResponseUrl,
    RollbackRequestedDetail,
    put_events_entry,
)
from deployer.releases.model import Release, StageState
from deployer.releases.store import ReleaseStore
from deployer.rollout.plan import StuckRollout
from deployer.rollout.plan import plan as plan_rollout
from deployer.slack import (
    Interaction,
    RollbackTarget,
    SlackNotifier,
    SlackRequestRefused,
    SlackSettings,
    decision_text,
    decode_function_url_body,
    escape_mrkdwn,
    parse_interaction,
    parse_rollback_value,
    verify_request,
)

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

    from deployer.pipelines.schema import PipelinesConfig

__all__ = [
    "APPROVAL_PATH",
    "MAX_FORM_BYTES",
    "SLACK_PATH",
    "ApprovalHttp",
    "HttpResult",
    "Request",
    "build",
    "internal_error",
    "not_found",
]

log = logging.getLogger("deployer.approval_http")

APPROVAL_PATH: Final = "/approvals/<token>"
SLACK_PATH: Final = "/slack/interactions"
MAX_FORM_BYTES: Final = 4096
PUBLISH_ATTEMPTS: Final = 3
PUBLISH_BACKOFF_SECONDS: Final = (0.1, 0.3)
PUBLISH_BUDGET_SECONDS: Final = 1.5  # Slack waits 3 s for the whole request
# How long a refusal's answer through response_url may hold the acknowledgement, counted from the
# request's start (cold secrets reads included). Lambda's cold start comes on top of it (importing
# this function takes about 2 s without bytecode, BENCHMARKS.md section 2) and Slack waits 3 s in
# all: an answer to a slow Slack is left to finish after the 200.
SLACK_ACK_BUDGET_SECONDS: Final = 0.5
_FORM_TYPES: Final = ("", "application/x-www-form-urlencoded")
_RESPONSE_URL: Final = TypeAdapter(ResponseUrl)
_KNOWN_PATHS: Final = (
    (re.compile(r"/approvals/[^/]+"), ("GET", "POST")),
    (re.compile(r"/slack/interactions"), ("POST",)),
)

Decision = Literal["approve", "reject"]

# Metric names (one per outcome), added by the handler.
PAGE_SHOWN: Final = "ApprovalPagesShown"
DECIDED: Final = "ApprovalsDecided"
REFUSED: Final = "ApprovalsRefused"
NOT_PUBLISHED: Final = "DecisionsNotPublished"
BAD_REQUEST: Final = "RequestsRefused"
FAILED: Final = "RequestsFailed"
SLACK_ACK: Final = "SlackInteractions"
SLACK_UNSIGNED: Final = "SlackRequestsRefused"
ROLLBACK_REQUESTED: Final = "RollbacksRequested"
ROLLBACK_REFUSED: Final = "RollbacksRefused"
_ROLLBACK_FROM: Final = frozenset({StageState.DEPLOYING, StageState.DEPLOYED})


# --- requests and results ----------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResult:
    """A response, independent of the Lambda event handler; `metric` names its outcome."""

    status: int
    body: str
    metric: str
    content_type: str = CONTENT_TYPE
    headers: Mapping[str, str] = field(default_factory=lambda: dict(SECURITY_HEADERS))


@dataclass(frozen=True)
class Request:
    """What this module reads of a Function URL request (payload format 2.0)."""

    method: str
    path: str
    headers: Mapping[str, str]  # names lower-cased
    body: bytes | None  # raw bytes, base64-decoded; None when the body could not be decoded
    source_ip: str | None = None
    user_agent: str | None = None

    @classmethod
    def from_function_url_event(cls, event: Mapping[str, Any]) -> Request:
        raw_headers = event.get("headers") or {}
        headers = {str(k).lower(): str(v) for k, v in raw_headers.items()} if isinstance(raw_headers, Mapping) else {}
        http = (event.get("requestContext") or {}).get("http") or {}
        try:
            body: bytes | None = decode_function_url_body(event)
        except BadInput:
            body = None
        return cls(
            method=str(http.get("method") or "").upper(),
            path=str(event.get("rawPath") or http.get("path") or ""),
            headers=headers,
            body=body,
            source_ip=str(http["sourceIp"]) if http.get("sourceIp") else None,
            user_agent=headers.get("user-agent") or (str(http["userAgent"]) if http.get("userAgent") else None),
        )


def _page(status: int, metric: str, title: str, message: str, *, detail: str | None = None) -> HttpResult:
    return HttpResult(status, message_page(title, message, status=status, detail=detail), metric)


def _plain(status: int, metric: str, text: str = "") -> HttpResult:
    return HttpResult(
        status, text, metric, content_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"}
    )


def not_found(method: str, path: str) -> HttpResult:
    """404, or 405 with `Allow` for a known path asked with another method."""
    for pattern, methods in _KNOWN_PATHS:
        if pattern.fullmatch(path) and method.upper() not in methods:
            result = _page(
                405, BAD_REQUEST, "Method not allowed", f"This address answers {' and '.join(methods)} only."
            )
            return HttpResult(
                result.status, result.body, result.metric, headers={**result.headers, "Allow": ", ".join(methods)}
            )
    return _page(404, BAD_REQUEST, "Not found", "There is nothing at this address. Open the link from Slack again.")


def internal_error() -> HttpResult:
    """Whatever went wrong unexpectedly: a page, never a stack trace (the log has it)."""
    return _page(500, FAILED, "Something went wrong", "Nothing was decided. Try again in a minute.")


def _log(exc: DeployerError, action: str) -> None:
    """One log line per refused or failed request; never the token (only the refusal's detail)."""
    if isinstance(exc, ApprovalRefused):
        log.warning("approval refused: %s", exc.detail, extra={"code": exc.code, "action": action})
    elif isinstance(exc, BadInput):
        log.warning("bad request: %s", exc, extra={"action": action})
    else:
        log.error("approvals %s: %s: %s", action, type(exc).__name__, exc, extra={"action": action})


def _failure(exc: DeployerError, action: str) -> HttpResult:
    """The one place where a domain error becomes a response (logged once)."""
    _log(exc, action)
    if isinstance(exc, ApprovalRefused):
        return _page(exc.http_status, REFUSED, exc.title, exc.message)
    if isinstance(exc, BadInput):
        return _page(400, BAD_REQUEST, "Bad request", str(exc))
    if isinstance(exc, TransientError):
        return _page(503, FAILED, "Try again", "The deployer could not be reached just now. Nothing was decided.")
    if isinstance(exc, ConfigError):
        return _page(500, FAILED, "Not configured", "Approvals are not configured correctly. Tell the platform team.")
    return internal_error()


# --- the endpoint ------------------------------------------------------------------------------


class ApprovalHttp:
    """The three routes, with every dependency injected (see `build` for production)."""

    def __init__(
        self,
        *,
        approvals: Approvals,
        store: ReleaseStore,
        events: EventBridgeClient,
        event_bus_name: str,
        slack: SlackNotifier,
        slack_settings: Callable[[], SlackSettings],
        clock: Callable[[], datetime] = now_utc,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        publish_attempts: int = PUBLISH_ATTEMPTS,
        publish_backoff: Sequence[float] = PUBLISH_BACKOFF_SECONDS,
        publish_budget_seconds: float = PUBLISH_BUDGET_SECONDS,
        pipelines: Callable[[], PipelinesConfig] | None = None,
        ack_budget_seconds: float = SLACK_ACK_BUDGET_SECONDS,
    ) -> None:
        """`pipelines` (the published configuration: who approves a stage) makes the "Roll back"
        button work; without it, the button answers with the CLI command instead."""
        if not event_bus_name:
            raise ConfigError("no event bus is configured for approval decisions")
        self._approvals = approvals
        self._store = store
        self._events = events
        self._bus = event_bus_name
        self._slack = slack
        self._slack_settings = slack_settings
        self._clock = clock
        self._sleep = sleep
        self._monotonic = monotonic
        self._attempts = max(1, publish_attempts)
        self._backoff = tuple(publish_backoff)
        self._budget = publish_budget_seconds
        self._pipelines = pipelines
        self._ack_budget = ack_budget_seconds

    # -- GET /approvals/<token> -----------------------------------------------------------------

    def show(self, token: str) -> HttpResult:
        """The approval page. Reads only: a GET never changes anything."""
        try:
            approval = self._approvals.check(token)
            release = self._release(approval.release_id)
        except DeployerError as exc:
            return _failure(exc, "show")
        return HttpResult(200, approval_page(self._page_of(approval, release)), PAGE_SHOWN)

    # -- POST /approvals/<token> ----------------------------------------------------------------

    def decide_by_link(self, token: str, request: Request) -> HttpResult:
        """The page's form: approve or reject, once; then the event for on_approval."""
        try:
            decision = _form_decision(request)
            by = DecidedBy(kind="link", source_ip=_ip(request.source_ip), user_agent=request.user_agent)
            approval = self._approvals.decide(token, decision, by)
        except DeployerError as exc:
            return _failure(exc, "decide")
        decided_at = approval.decided_at or self._clock()
        if not self._publish(approval, decision, by, decided_at):
            verb = "approval" if decision == "approve" else "rejection"
            return _page(
                503,
                NOT_PUBLISHED,
                "Decision recorded, not yet applied",
                f"Your {verb} of {approval.stage} for {approval.pipeline} is recorded and cannot be changed, "
                "but the deployer has not received it yet. The platform team re-drives it from the logs and "
                f"{approval.stage} {'then deploys' if decision == 'approve' else 'is then closed'}. "
                "There is no need to click again.",
            )
        try:  # only to word the page; the decision is made and published
            release = self._store.get(approval.release_id, consistent=False)
        except DeployerError:
            release = None
        page = outcome_page(
            pipeline=approval.pipeline,
            stage=approval.stage,
            commit=approval.commit,
            decision=decision,
            decided_at=decided_at,
            paused_at=_text((release.approval_context or {}).get("paused_at")) if release else None,
        )
        return HttpResult(200, page, DECIDED)

    # -- POST /slack/interactions ---------------------------------------------------------------

    def slack_interaction(self, request: Request) -> HttpResult:
        """Slack's buttons. The signature is checked before anything else is read; the answer to
        Slack is the 200 itself, sent as soon as the decision is recorded and published (see
        "Slack's 3 seconds" above)."""
        deadline = self._monotonic() + self._ack_budget  # from the request's start: secrets reads included
        if request.body is None:
            log.warning("Slack request refused: the body could not be decoded")
            return _plain(401, SLACK_UNSIGNED, "refused")
        try:
            settings = self._slack_settings()
        except ConfigError as exc:
            log.error("Slack settings refused: %s", exc)
            return _plain(500, FAILED, "Slack is not configured correctly")
        try:
            verify_request(settings, request.headers, request.body, now=self._clock().timestamp())
        except SlackRequestRefused as exc:
            log.warning("Slack request refused: %s", exc.reason, extra={"source_ip": request.source_ip})
            return _plain(exc.http_status, SLACK_UNSIGNED, "refused")
        try:
            interaction = parse_interaction(request.body)
        except BadInput as exc:
            log.warning("Slack interaction refused: %s", exc)
            return _plain(400, BAD_REQUEST, f"not an interaction: {exc}")
        if interaction.is_rollback:
            return self._rollback(interaction, deadline)
        decision = interaction.decision
        if decision is None:  # the link button: Slack still sends a payload
            return _plain(200, SLACK_ACK)
        if not interaction.value:
            self._tell(interaction, "This button carries no approval; open the approval link instead.", deadline)
            return _plain(200, BAD_REQUEST)
        by = DecidedBy(kind="slack", user=interaction.user_id)
        try:
            approval = self._approvals.decide(interaction.value, decision, by, slack_user=interaction.user_id)
        except ApprovalRefused as exc:
            _log(exc, "slack")
            self._tell(interaction, f"{exc.title}: {exc.message}", deadline)
            return _plain(200, REFUSED)
        except DeployerError as exc:
            _log(exc, "slack")
            self._tell(
                interaction,
                "The deployer could not record your decision just now; nothing was decided. Try again.",
                deadline,
            )
            return _plain(200, FAILED)
        decided_at = approval.decided_at or self._clock()
        if self._publish(approval, decision, by, decided_at, response_url=interaction.response_url):
            return _plain(200, DECIDED)  # on_approval tells the user what came of it
        self._say(
            interaction,
            f":warning: {decision_text(decision, interaction.user_id, decided_at)}: the decision is "
            "recorded, but the deployer has not received it yet; the platform team re-drives it. No need to click "
            "again.",
            deadline,
        )
        return _plain(200, NOT_PUBLISHED)

    # -- the "Roll back" button ---------------------------------------------------------------------

    def _rollback(self, interaction: Interaction, deadline: float) -> HttpResult:
        """An approver of the stage asks to roll it back; everyone else is told why not."""
        try:
            target = parse_rollback_value(interaction.value)
        except BadInput as exc:
            log.warning("Slack rollback refused: %s", exc, extra={"user": interaction.user_id})
            self._say(interaction, "This button does not say what to roll back. Nothing was rolled back.", deadline)
            return _plain(200, BAD_REQUEST)
        if self._pipelines is None:
            self._say(
                interaction,
                "Rolling back from Slack is not set up for this deployer. Nothing was rolled back; use "
                f"{_cli(None, target.stage)}.",
                deadline,
            )
            return _plain(200, ROLLBACK_REFUSED)
        extra = {"release_id": target.release_id, "stage": target.stage, "user": interaction.user_id}
        try:
            release = self._release(target.release_id)
            refusal = self._rollback_refusal(interaction.user_id, release, target, self._pipelines())
        except DeployerError as exc:
            log.error("Slack rollback not checked: %s: %s", type(exc).__name__, exc, extra=extra)
            self._say(
                interaction, "The deployer could not check this rollback just now. Nothing was rolled back.", deadline
            )
            return _plain(200, FAILED)
        if refusal is not None or release is None:
            log.warning("Slack rollback refused", extra={**extra, "refusal": refusal})
            self._say(interaction, f":no_entry: {refusal}", deadline)
            return _plain(200, ROLLBACK_REFUSED)
        try:
            detail = RollbackRequestedDetail(
                pipeline=release.pipeline,
                stage=target.stage,
                release_id=release.release_id,
                requested_by=DecidedBy(kind="slack", user=interaction.user_id),
                requested_at=self._clock(),
                response_url=_usable_response_url(interaction.response_url),
            )
        except ValidationError as exc:
            log.error(
                "Slack rollback not requested: the event is invalid", extra={**extra, "errors": exc.error_count()}
            )
            self._say(interaction, "This rollback cannot be requested from Slack. Nothing was rolled back.", deadline)
            return _plain(200, FAILED)
        entry = put_events_entry(detail, event_bus_name=self._bus)
        error = self._put_within_budget(entry)
        if error:
            log.error("Slack rollback not requested: the bus refused it", extra={**extra, "error": error})
            self._say(
                interaction,
                f":x: The rollback of *{escape_mrkdwn(target.stage)}* of *{escape_mrkdwn(release.pipeline)}* "
                "could not be requested just now. Nothing was rolled back; try again, or use "
                f"{_cli(release.pipeline, target.stage)}.",
                deadline,
            )
            return _plain(200, FAILED)
        log.info("Slack rollback requested", extra=extra)
        return _plain(200, ROLLBACK_REQUESTED)  # on_approval tells the user what came of it

    def _rollback_refusal(
        self, user: str, release: Release | None, target: RollbackTarget, config: PipelinesConfig
    ) -> str | None:
        """Why `user` may not roll back `target.stage` from this release's message (mrkdwn), or None."""
        stage_name = escape_mrkdwn(target.stage)
        if release is None:
            return f"Release {escape_mrkdwn(target.release_id)} is unknown. Nothing was rolled back."
        pipeline_name = escape_mrkdwn(release.pipeline)
        pipeline = config.pipeline_named(release.pipeline)
        stage = pipeline.stage_named(target.stage) if pipeline else None
        if stage is None:
            return (
                f"{stage_name} is not a stage of {pipeline_name} in the published configuration. "
                "Nothing was rolled back."
            )
        cli = _cli(release.pipeline, target.stage)
        approvers = tuple(stage.approval.approvers) if stage.approval else ()
        if not approvers:
            return (
                f"{stage_name} of {pipeline_name} lists no approvers, so nobody may roll it back from Slack. "
                f"Nothing was rolled back; use {cli}."
            )
        if user not in approvers:
            mentions = ", ".join(f"<@{a}>" for a in approvers[:10])
            return (
                f"Only the approvers of {stage_name} ({mentions}) may roll it back from Slack. "
                f"Nothing was rolled back; ask one of them, or use {cli}."
            )
        if release.is_rollback:
            return f"This message is a rollback's own. Nothing was rolled back; use {cli} to roll back again."
        record = release.stages.get(target.stage)
        if record is None or record.state not in _ROLLBACK_FROM:
            state = record.state.value if record else "not reached"
            return (
                f"This release has not deployed {stage_name} ({stage_name}: {escape_mrkdwn(state)}), "
                f"so there is nothing of it to roll back. Nothing was rolled back; use {cli} to roll back "
                f"whatever {stage_name} runs."
            )
        with aws.translate("DynamoDB GetItem (stage watermark)"):
            newest = self._store.stage_holder(release.pipeline, target.stage)
        if newest and newest != release.release_id:
            return (
                f"{stage_name} has moved on since this message: {escape_mrkdwn(newest)} entered it after this "
                f"release. Nothing was rolled back; use that release's button, or {cli}."
            )
        return None

    def _say(self, interaction: Interaction, mrkdwn: str, deadline: float) -> None:
        """An ephemeral answer in mrkdwn the caller escaped, sent while Slack still waits for the
        acknowledgement: never past `deadline` (see `_answer_within`)."""
        if interaction.response_url:
            self._answer_within(interaction.response_url, mrkdwn, deadline)

    def _tell(self, interaction: Interaction, text: str, deadline: float) -> None:
        """`_say` for plain text (escaped here)."""
        self._say(interaction, escape_mrkdwn(text), deadline)

    def _answer_within(self, response_url: str, mrkdwn: str, deadline: float) -> None:
        """Post to `response_url` from a thread and wait for it until `deadline` at most: a slow
        Slack never holds the acknowledgement back. Past the deadline the answer is left to finish
        on its own (in Lambda, when the environment next runs); SlackNotifier logs a failure."""
        sender = threading.Thread(
            target=self._slack.answer, args=(response_url, mrkdwn), name="slack-answer", daemon=True
        )
        sender.start()
        sender.join(max(0.0, deadline - self._monotonic()))
        if sender.is_alive():
            log.warning(
                "Slack answer still in flight at the acknowledgement deadline: acknowledged first",
                extra={"ack_budget_seconds": self._ack_budget},
            )

    # -- internals ------------------------------------------------------------------------------

    def _release(self, release_id: str) -> Release | None:
        with aws.translate("DynamoDB GetItem (release)"):
            return self._store.get(release_id)

    def _publish(
        self,
        approval: Approval,
        decision: Decision,
        by: DecidedBy,
        decided_at: datetime,
        *,
        response_url: str | None = None,
    ) -> bool:
        """Put ONE "Approval Decided" on the bus, retried within the budget. False: not published
        (the decision stays recorded; the error log line carries the entry to re-drive, without
        the Slack `response_url`: a capability, never logged)."""
        try:
            detail = ApprovalDecidedDetail(
                release_id=approval.release_id,
                pipeline=approval.pipeline,
                stage=approval.stage,
                decision=decision,
                approval_id=approval.approval_id,
                decided_by=by,
                decided_at=decided_at,
                response_url=_usable_response_url(response_url),
            )
        except ValidationError as exc:
            log.error(
                "approval decided but not published: the event is invalid",
                extra={
                    "approval_id": approval.approval_id,
                    "release_id": approval.release_id,
                    "errors": exc.error_count(),
                },
            )
            return False
        entry = put_events_entry(detail, event_bus_name=self._bus)
        error = self._put_within_budget(entry)
        if not error:
            log.info(
                "approval decided and published",
                extra={
                    "approval_id": approval.approval_id,
                    "release_id": approval.release_id,
                    "decision": decision,
                },
            )
            return True
        log.error(
            "approval decided but not published: re-drive this PutEvents entry",
            extra={
                "approval_id": approval.approval_id,
                "release_id": approval.release_id,
                "stage": approval.stage,
                "decision": decision,
                "error": error,
                "redrive_entry": dict(
                    put_events_entry(detail.model_copy(update={"response_url": None}), event_bus_name=self._bus)
                ),
            },
        )
        return False

    def _put_within_budget(self, entry: PutEventsRequestEntryTypeDef) -> str | None:
        """PutEvents retried within the attempts and the time budget; the last error, or None."""
        started = self._monotonic()
        error: str | None = "not attempted"
        for attempt in range(self._attempts):
            error = self._put(entry)
            if not error:
                return None
            if attempt + 1 >= self._attempts:
                break
            pause = self._backoff[min(attempt, len(self._backoff) - 1)] if self._backoff else 0.0
            if self._monotonic() - started + pause > self._budget:
                break
            self._sleep(pause)
        return error

    def _put(self, entry: PutEventsRequestEntryTypeDef) -> str | None:
        """One PutEvents; the error, or None when the entry was accepted."""
        try:
            response = self._events.put_events(Entries=[entry])
        except ClientError as exc:
            return f"{aws.error_code(exc)}: {exc.response.get('Error', {}).get('Message', '')}"
        except BotoCoreError as exc:
            return type(exc).__name__
        if response.get("FailedEntryCount", 0):
            failed = (response.get("Entries") or [{}])[0]
            return f"{failed.get('ErrorCode', 'failed')}: {failed.get('ErrorMessage', '')}"
        return None

    def _page_of(self, approval: Approval, release: Release | None) -> ApprovalPage:
        context: Mapping[str, Any] = (release.approval_context if release else None) or {}
        plan_text, plan_note = _plan(context)
        remaining = approval.expires_at - self._clock()
        minutes = max(0, int(remaining.total_seconds() // 60))
        return ApprovalPage(
            pipeline=approval.pipeline,
            stage=approval.stage,
            release_id=approval.release_id,
            commit=approval.commit,
            branch=release.branch if release else None,
            pusher=release.pusher if release else None,
            image_uri=_text(context.get("image_uri")) or (release.image_uri if release else None),
            image_digest=approval.image_digest,
            service=_text(context.get("service")),
            current_task_definition=_text(context.get("current_task_definition")),
            status=release.reason if release else None,
            plan_text=plan_text,
            plan_note=plan_note,
            expires_at=approval.expires_at,
            expires_in=f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min",
            approvers=approval.approvers,
            link_may_decide=may_decide(approval, None),
            paused_at=_text(context.get("paused_at")),
            timeout_action=_text(context.get("timeout_action")),
            settings=context.get("settings"),
        )


def _text(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _whole(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _cli(pipeline: str | None, stage: str) -> str:
    """The command that does the same from a terminal, as a mrkdwn code span."""
    command = f"deployer rollback --pipeline {pipeline or 'PIPELINE'} --stage {stage}"
    return f"`{escape_mrkdwn(command).replace('`', chr(39))}`"


def _plan(context: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """The rollout drawn as `deployer plan` draws it, or why it cannot be drawn. A stage of several
    services (`services` in the context) draws each one's, one after the other."""
    services = context.get("services")
    if isinstance(services, list) and services:
        drawn = [(str(entry.get("service", "?")), _plan(entry)) for entry in services if isinstance(entry, Mapping)]
        text = "\n\n".join(f"{name}: {plan}" for name, (plan, _note) in drawn if plan)
        notes = "; ".join(f"{name}: {note}" for name, (_plan_text, note) in drawn if note)
        return text or None, notes or None
    note = _text(context.get("note"))
    desired = _whole(context.get("desired"))
    minimum = _whole(context.get("minimum_healthy_percent"))
    maximum = _whole(context.get("maximum_percent"))
    if desired is None or minimum is None or maximum is None:
        missing = "The rollout plan is not available: the approval request recorded no service details"
        return None, f"{missing} ({note})." if note else f"{missing}."
    try:
        rollout = plan_rollout(desired, minimum, maximum)
    except StuckRollout as exc:
        return None, f"This rollout cannot move: {exc.reason}."
    except ValueError as exc:
        return None, f"The rollout plan cannot be drawn: {exc}."
    text = f"desired {desired} tasks, minimumHealthyPercent {minimum}, maximumPercent {maximum}\n\n" + render.plan_text(
        rollout, minimum, maximum
    )
    return text, note


def _form_decision(request: Request) -> Decision:
    """`decision=approve|reject` from the page's form, else BadInput (a 400 page)."""
    body = request.body
    if body is None:
        raise BadInput("The form could not be read.")
    content_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if content_type not in _FORM_TYPES:
        raise BadInput("Send the decision with the page's form.")
    if len(body) > MAX_FORM_BYTES:
        raise BadInput("The form is too large.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("The form could not be read: it is not UTF-8 text. Nothing was decided.") from None
    try:
        form = urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=8)
    except ValueError:
        raise BadInput("The form could not be read.") from None
    values = form.get("decision", [])
    if values == ["approve"]:
        return "approve"
    if values == ["reject"]:
        return "reject"
    raise BadInput("The decision must be approve or reject.")


def _usable_response_url(url: str | None) -> str | None:
    """The interaction's response_url when the event may carry it; else None (the decision is
    published all the same, only the user is not told the outcome)."""
    if url is None:
        return None
    try:
        return _RESPONSE_URL.validate_python(url)
    except ValidationError:
        log.warning("Slack response_url unusable: the user will not hear the outcome", extra={"length": len(url)})
        return None


def _ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


# --- production wiring -------------------------------------------------------------------------


def build(
    *,
    table_name: str,
    event_bus_name: str,
    signing_key_secret: str,
    slack_secret: str,
    config_table_name: str | None = None,
) -> ApprovalHttp:
    """The production dependencies, built once per cold start by the handler. Every AWS client
    has short timeouts and few retries: Slack waits 3 seconds for the whole request.

    The "Roll back" button reads the published pipelines (`config_table_name`, default
    $DEPLOYER_CONFIG_TABLE, which template.yaml sets for every function) for the stage's approvers."""
    import boto3
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from botocore.config import Config

    from deployer.approvals import signing_key_from_secret
    from deployer.pipelines.store import ConfigStore
    from deployer.slack import settings_from_secret

    if not signing_key_secret:
        raise ConfigError("DEPLOYER_SIGNING_KEY_SECRET is not set: approvals cannot be verified")
    fast = Config(connect_timeout=1, read_timeout=2, retries={"mode": "standard", "total_max_attempts": 2})
    once = Config(connect_timeout=1, read_timeout=1, retries={"mode": "standard", "total_max_attempts": 1})
    session = boto3.session.Session()
    dynamodb = session.resource("dynamodb", config=fast)  # the releases, the approvals and the config
    table = dynamodb.Table(table_name)
    store = ReleaseStore(table)
    secrets = session.client("secretsmanager", config=fast)
    approvals = Approvals(table, store, signing_key_from_secret(signing_key_secret, client=secrets))
    slack_settings = settings_from_secret(slack_secret, provider=SecretsProvider(boto3_client=secrets))
    config_table = os.environ.get("DEPLOYER_CONFIG_TABLE", "") if config_table_name is None else config_table_name
    pipelines = ConfigStore(config_table, dynamodb=dynamodb).load if config_table else None
    return ApprovalHttp(
        approvals=approvals,
        store=store,
        events=session.client("events", config=once),
        event_bus_name=event_bus_name,
        slack=SlackNotifier(slack_settings, timeout=1.0),
        slack_settings=slack_settings,
        pipelines=pipelines,
    )
