"""Slack: the release message, the approval request, and the interactive buttons endpoint.

Four parts:

- Settings, from one Secrets Manager secret holding JSON (`SlackSettings.from_json`). Without a
  bot token or webhook URL, Slack is off and every notification is a no-op.
- Messages, pure functions from a `ReleaseView` to Block Kit blocks (slack_sdk's models, so the
  library validates them). A release's message carries a "Roll back <stage>" button for each
  stage it is deploying or has deployed (`ROLLBACK_ACTION`, value `rollback_value`), not on a
  rollback's own message. Every user-controlled string is escaped for mrkdwn (`&`, `<`, `>`, as
  Slack's "Formatting text for app surfaces" asks), so a commit message cannot inject a link, a
  mention or `<!channel>`.
- Transport (`SlackNotifier`): chat.postMessage / chat.update with a bot token, else an incoming
  webhook (which returns no message ts, so no later update). A failure of any kind is logged and
  swallowed: Slack being down never blocks a release.
- Inbound (`verify_request`, `parse_interaction`): request signing checked with slack_sdk's
  `SignatureVerifier` plus an explicit stale-timestamp refusal, and the `block_actions` payload
  parsed at the edge into an `Interaction`.

Secrets (token, webhook URL, signing secret) never appear in a repr, an error or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import math
import re
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from deployer.errors import BadInput, ConfigError, DeployerError

# slack_sdk (Block Kit models, clients, the signature check) and Powertools parameters are imported
# where a message is built or sent, a request verified, a secret read: a function whose Slack is off,
# or a GET of the approval page, never loads them.
if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from slack_sdk.models.blocks import (
        Block,
        ButtonElement,
        ContextBlock,
        HeaderBlock,
        MarkdownTextObject,
    )
    from slack_sdk.web import WebClient
    from slack_sdk.webhook import WebhookClient

    from deployer.rollout.plan import Plan

__all__ = [
    "APPROVE_ACTION",
    "REJECT_ACTION",
    "REVIEW_ACTION",
    "ROLLBACK_ACTION",
    "SECRET_MAX_AGE_SECONDS",
    "SIGNATURE_MAX_AGE_SECONDS",
    "Interaction",
    "MessageRef",
    "ReleaseView",
    "RollbackTarget",
    "SlackNotifier",
    "SlackRequestRefused",
    "SlackSettings",
    "approval_blocks",
    "decided_blocks",
    "decision_text",
    "decode_function_url_body",
    "escape_mrkdwn",
    "fallback_text",
    "parse_interaction",
    "parse_rollback_value",
    "plan_line",
    "requester_text",
    "rollback_stages",
    "rollback_value",
    "settings_from_secret",
    "status_blocks",
    "verify_request",
]

log = logging.getLogger("deployer.slack")

# slack_sdk's clients log request bodies and URLs (an incoming webhook URL is a secret) whenever
# their logger's own level is DEBUG or unset. Their own logger, set above DEBUG, keeps them quiet;
# failures are logged once, by this module, without secrets.
_sdk_log = logging.getLogger("deployer.slack.sdk")
_sdk_log.setLevel(logging.CRITICAL)

APPROVE_ACTION: Final = "approve"
REJECT_ACTION: Final = "reject"
REVIEW_ACTION: Final = "review"  # the link button: Slack still sends a payload; a no-op
ROLLBACK_ACTION: Final = "rollback"  # action_id "rollback:<stage>"; value {"release_id", "stage"}
ROLLBACK_KIND: Final = "rollback"  # Release.kind of a rollback
_ROLLBACK_FROM: Final = frozenset({"DEPLOYING", "DEPLOYED"})  # stage states that get a button
_MAX_ROLLBACK_BUTTONS: Final = 5

SECRET_MAX_AGE_SECONDS: Final = 300
SIGNATURE_MAX_AGE_SECONDS: Final = 300  # Slack: refuse timestamps more than 5 minutes off
MAX_INTERACTION_BYTES: Final = 1 << 20

SLACK_HOOKS_HOST: Final = "hooks.slack.com"
_LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})

# Block Kit limits (slack_sdk validates most of them; section fields it does not).
_HEADER_MAX: Final = 150
_FIELD_MAX: Final = 2000
_SECTION_MAX: Final = 3000
_BUTTON_VALUE_MAX: Final = 2000  # slack_sdk's ButtonElement.value_max_length (tests/unit/test_slack.py)
_BUTTON_URL_MAX: Final = 3000  # ButtonElement.url_max_length
_USER_TEXT_MAX: Final = 500  # commit messages and reasons are cut to this many characters
_MAX_HOUSEKEEPING_LINES: Final = 11  # a stage's scheduled tasks (at most 10) and the cleanup line

_SLACK_ID: Final = re.compile(r"[A-Z0-9]{2,32}")
_USER_MENTION: Final = re.compile(r"&lt;@([UW][A-Z0-9]{1,31})&gt;")
_KEY_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")
_SECRET_FIELDS: Final = ("bot_token", "webhook_url", "signing_secret")


# --- settings --------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class SlackSettings:
    """Slack configuration. All empty: Slack is off.

    The secret's JSON: {"bot_token": "xoxb-...", "signing_secret": "...", "webhook_url":
    "https://hooks.slack.com/services/...", "channel": "C0123456789", "api_base_url": null}; every
    key optional, `null` or "" meaning absent.
    """

    bot_token: str | None = None
    webhook_url: str | None = None
    signing_secret: str | None = None
    channel: str | None = None
    api_base_url: str | None = None

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and f.name in _SECRET_FIELDS:
                value = "***"
            shown.append(f"{f.name}={value!r}")
        return f"SlackSettings({', '.join(shown)})"

    @property
    def interactive(self) -> bool:
        """The Approve/Reject buttons work only with a bot token and a signing secret."""
        return bool(self.bot_token and self.signing_secret)

    @property
    def enabled(self) -> bool:
        return bool(self.bot_token or self.webhook_url)

    def secrets(self) -> tuple[str, ...]:
        return tuple(v for v in (self.bot_token, self.webhook_url, self.signing_secret) if v)

    @classmethod
    def from_json(cls, text: str | bytes) -> SlackSettings:
        """Parse the secret's JSON; a ConfigError lists every problem and never echoes a value."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
            raise ConfigError(f"Slack settings: the secret is not valid JSON{where}") from None
        if not isinstance(data, dict):
            raise ConfigError("Slack settings: the secret must be a JSON object")
        names = [f.name for f in fields(cls)]
        problems: list[str] = []
        unknown = [k for k in data if k not in names]
        if unknown:
            shown = ", ".join(
                sorted(repr(k) if isinstance(k, str) and _KEY_NAME.fullmatch(k) else "(not a name)" for k in unknown)
            )
            problems.append(f"unknown key(s) {shown}; expected some of {', '.join(names)}")
        values: dict[str, str | None] = {}
        for name in names:
            value = data.get(name)
            if value is not None and not isinstance(value, str):
                problems.append(f"{name} must be a string or null")
                continue
            values[name] = value.strip() or None if isinstance(value, str) else None
        token = values.get("bot_token")
        if token is not None and not token.startswith("xox"):
            problems.append("bot_token must be a Slack token (xoxb-...)")
        for name in ("webhook_url", "api_base_url"):
            url = values.get(name)
            if url is not None and not _acceptable_endpoint(url):
                problems.append(f"{name} must be an https:// URL (or http:// to localhost)")
        if problems:
            raise ConfigError("Slack settings: " + "; ".join(problems), [f"Slack settings: {p}" for p in problems])
        return cls(**values)


def _acceptable_endpoint(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        _ = parts.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None or not parts.hostname:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS)


def settings_from_secret(
    secret_id: str,
    *,
    provider: SecretsProvider | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Callable[[], SlackSettings]:
    """A loader for the functions: the secret through Powertools parameters (a SecretsProvider on
    the deployer's Secrets Manager client unless `provider` is given), cached for 5 minutes.

    A secret that cannot be read (missing, no permission) turns Slack off, with one warning per
    5 minutes; a secret that is read but malformed raises ConfigError (a misconfiguration).
    An empty `secret_id` means Slack is not configured: off, silently.
    """
    if not secret_id:
        return SlackSettings
    lock = threading.Lock()
    failed_at: list[float] = []

    providers: list[SecretsProvider] = [provider] if provider is not None else []

    def load() -> SlackSettings:
        from aws_lambda_powertools.utilities.parameters import GetParameterError

        text: str | bytes | dict[str, Any] | None
        with lock:
            if failed_at and clock() - failed_at[0] < SECRET_MAX_AGE_SECONDS:
                return SlackSettings()
            try:
                if not providers:
                    from aws_lambda_powertools.utilities.parameters import SecretsProvider

                    from deployer import aws

                    providers.append(SecretsProvider(boto3_client=aws.client("secretsmanager")))
                text = providers[0].get(secret_id, max_age=SECRET_MAX_AGE_SECONDS)
            except GetParameterError as exc:
                failed_at[:] = [clock()]
                code = _error_code(exc)
                log.warning(
                    "Slack is off: secret %s could not be read (%s)",
                    secret_id,
                    code,
                    extra={"secret_id": secret_id, "error_code": code},
                )
                return SlackSettings()
            failed_at.clear()
        if not isinstance(text, (str, bytes)):
            raise ConfigError("Slack settings: the secret must be a JSON string")
        return SlackSettings.from_json(text)

    return load


def _error_code(exc: BaseException) -> str:
    """The AWS error code behind a Powertools GetParameterError, else the exception's type."""
    cause = exc.__cause__ or exc.__context__
    response = getattr(cause, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if isinstance(code, str):
            return code
    return type(cause or exc).__name__


# --- messages --------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ReleaseView:
    """Everything a message shows, built by the caller from a Release: this module stays pure.

    Strings are shown as given and escaped, except `decided_by_text`, where Slack user mentions
    (`<@U...>`, as `decision_text` writes them) survive; `approvers` are Slack user ids.
    `stage_states` (stage name, StageState value, in the order the release entered them) decides
    the "Roll back" buttons; `kind`, `rollback_of`, `requested_by` and `target_task_definition`
    describe a rollback (Release's fields of the same names).
    """

    release_id: str
    pipeline: str
    stage: str | None
    commit: str
    state: str
    commit_url: str | None = None
    pusher: str | None = None
    image_uri: str | None = None
    image_digest: str | None = None
    reason: str | None = None
    task_definition_change: tuple[str, str] | None = None  # (old arn, new arn)
    plan_line: str | None = None
    approval_link: str | None = None
    approvers: tuple[str, ...] = ()
    log_link: str | None = None
    service_link: str | None = None
    decided_by_text: str | None = None
    # optional extras
    branch: str | None = None
    commit_message: str | None = None
    approval_expires_at: datetime | str | None = None
    # the deploy-time settings the stage changes (`deployer.settings.summary`; secrets by name only)
    settings_line: str | None = None
    # rollbacks
    stage_states: tuple[tuple[str, str], ...] = ()
    kind: str = "push"
    rollback_of: str | None = None
    requested_by: Mapping[str, Any] | None = None
    target_task_definition: str | None = None
    # a stage of several services: one line per service (revision change and state)
    services: tuple[str, ...] = ()
    # housekeeping: one line per scheduled task moved (or not) and for the revisions cleaned up
    housekeeping: tuple[str, ...] = ()

    @property
    def is_rollback(self) -> bool:
        return self.kind == ROLLBACK_KIND


def escape_mrkdwn(text: str) -> str:
    """Slack's three control characters, escaped as its docs ask (and nothing else)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _user_text(text: str, limit: int = _USER_TEXT_MAX) -> str:
    """Cut before escaping, so an entity is never cut in half."""
    return escape_mrkdwn(_cut(text, limit))


def _safe_url(url: str | None) -> str | None:
    if not url or len(url) > _BUTTON_URL_MAX or any(c in url for c in "|<> \n\r\t"):
        return None
    parts = urllib.parse.urlsplit(url)
    return url if parts.scheme in ("https", "http") and parts.netloc else None


def _link(url: str | None, label: str) -> str:
    """A mrkdwn link when the URL is sound, else the (escaped) label alone."""
    safe = _safe_url(url)
    shown = escape_mrkdwn(label)
    return f"<{escape_mrkdwn(safe)}|{shown}>" if safe else shown


def _mention(user_id: str) -> str:
    return f"<@{user_id}>" if _SLACK_ID.fullmatch(user_id) else escape_mrkdwn(user_id)


def _principal(pusher: str) -> str:
    """`arn:aws:sts::123456789012:assumed-role/Dev/alice` -> `assumed-role/Dev/alice`."""
    parts = pusher.split(":", 5)
    return parts[5] if len(parts) == 6 and parts[0] == "arn" and parts[5] else pusher


def _task_definition_name(arn: str) -> str:
    """`arn:...:task-definition/web:42` -> `web:42`."""
    return arn.rsplit("task-definition/", 1)[-1] if arn else "(none)"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _when(at: datetime) -> str:
    return _utc(at).strftime("%Y-%m-%d %H:%M UTC")


def _slack_date(at: datetime) -> str:
    """Shown in each reader's time zone, with a UTC fallback."""
    at = _utc(at)
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} at {{time}}|{_when(at)}>"


def _expiry(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        try:
            at = datetime.fromisoformat(value)
        except ValueError:
            return f"Expires {_user_text(value, 64)}"
    else:
        at = value
    return f"Expires {_slack_date(at)}"


def plan_line(plan: Plan) -> str:
    """One line: `2 waves, peak 6 tasks (150%), at least 4 running`."""
    if plan.desired == 0:
        return "no tasks to replace (desired count 0)"
    waves = f"{plan.waves} wave{'s' if plan.waves != 1 else ''}"
    percent = round(plan.peak_tasks * 100 / plan.desired)
    peak = f"peak {plan.peak_tasks} task{'s' if plan.peak_tasks != 1 else ''} ({percent}%)"
    floor = f"at least {plan.min_running_tasks} running"
    return f"{waves}, {peak}, {floor}{' (an outage)' if plan.outage else ''}"


_STATE_LABELS: Final[Mapping[str, tuple[str, str]]] = {
    # state -> (emoji, label; {stage} is replaced by the stage's name)
    "BUILDING": (":hammer_and_wrench:", "Building"),
    "BUILT": (":package:", "Built"),
    "DEPLOYING": (":rocket:", "Deploying to {stage}"),
    "DEPLOYED": (":white_check_mark:", "Deployed to {stage}"),
    "AWAITING_APPROVAL": (":raised_hand:", "Waiting for approval to deploy to {stage}"),
    "RELEASED": (":tada:", "Released"),
    "BUILD_FAILED": (":x:", "Build failed"),
    "DEPLOY_FAILED": (":x:", "Deployment to {stage} failed"),
    "REJECTED": (":no_entry:", "Rejected before {stage}"),
    "APPROVAL_EXPIRED": (":hourglass:", "Approval for {stage} expired"),
    "SUPERSEDED": (":fast_forward:", "Superseded by a newer release"),
    "INVALID_CONFIG": (":warning:", "Invalid configuration"),
}


_ROLLBACK_LABELS: Final[Mapping[str, tuple[str, str]]] = {
    # a release of kind "rollback": the stage goes back to an earlier revision
    "BUILT": (":rewind:", "Rollback of {stage} requested"),
    "DEPLOYING": (":rewind:", "Rolling back {stage}"),
    "DEPLOYED": (":rewind:", "Rolled back {stage}"),
    "RELEASED": (":rewind:", "Rolled back {stage}"),
    "DEPLOY_FAILED": (":x:", "Rollback of {stage} failed"),
    "SUPERSEDED": (":fast_forward:", "Rollback of {stage} superseded by a newer release"),
    "INVALID_CONFIG": (":warning:", "Rollback of {stage} refused: invalid configuration"),
}


def _state_label(view: ReleaseView) -> tuple[str, str]:
    labels = _ROLLBACK_LABELS if view.is_rollback and str(view.state) in _ROLLBACK_LABELS else _STATE_LABELS
    emoji, label = labels.get(str(view.state), (":grey_question:", str(view.state)))
    return emoji, label.replace("{stage}", view.stage or "the next stage")


def requester_text(requested_by: Mapping[str, Any] | None) -> str | None:
    """Who asked for a rollback, as mrkdwn: a Slack user as a mention, a CLI caller by its
    principal (`assumed-role/Ops/alice`), escaped."""
    if not requested_by:
        return None
    if requested_by.get("kind") == "slack" and isinstance(requested_by.get("user"), str):
        return _mention(str(requested_by["user"]))
    principal = requested_by.get("principal") or requested_by.get("user")
    if isinstance(principal, str) and principal:
        return f"{_user_text(_principal(principal), 200)} (CLI)"
    return "an operator"


def _short_commit(view: ReleaseView) -> str:
    return view.commit[:12] if view.commit else "(unknown commit)"


def _commit_field(view: ReleaseView) -> str:
    label = "Restores commit" if view.is_rollback else "Commit"
    text = f"*{label}*\n{_link(view.commit_url, _short_commit(view))}"
    if view.branch:
        text += f" on {_user_text(view.branch, 200)}"
    if view.pusher:
        text += f"\nby {_user_text(_principal(view.pusher), 200)}"
    return text


def _image_field(view: ReleaseView) -> str | None:
    if view.image_digest:
        algorithm, _, digest = view.image_digest.partition(":")
        short = f"{algorithm}:{digest[:12]}" if digest else view.image_digest[:19]
        return f"*Image*\n{_user_text(short, 80)}"
    if view.image_uri:
        return f"*Image*\n{_user_text(view.image_uri.rsplit('/', 1)[-1], 300)}"
    return None


def _detail_fields(view: ReleaseView) -> list[MarkdownTextObject]:
    from slack_sdk.models.blocks import MarkdownTextObject

    texts: list[str | None] = [_commit_field(view), _image_field(view)]
    if view.task_definition_change:
        old, new = view.task_definition_change
        texts.append(
            f"*Task definition*\n{_user_text(_task_definition_name(old), 300)}"
            f" → {_user_text(_task_definition_name(new), 300)}"
        )
    elif view.is_rollback and view.target_task_definition:
        texts.append(f"*Task definition*\n{_user_text(_task_definition_name(view.target_task_definition), 300)}")
    if view.services:
        texts.append("*Services*\n" + "\n".join(_user_text(line, 200) for line in view.services[:10]))
    if view.plan_line:
        texts.append(f"*Rollout*\n{_user_text(view.plan_line, 300)}")
    if view.settings_line:
        texts.append(f"*Settings*\n{_user_text(view.settings_line, 600)}")
    if view.is_rollback:
        if view.rollback_of:
            texts.append(f"*Undoes*\n{_user_text(view.rollback_of, 300)}")
        who = requester_text(view.requested_by)
        if who:
            texts.append(f"*Asked by*\n{who}")
    return [MarkdownTextObject(text=_cut(t, _FIELD_MAX)) for t in texts if t]


def _commit_message_block(view: ReleaseView) -> list[Block]:
    from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

    if not view.commit_message:
        return []
    quoted = "\n".join(f">{line}" for line in _user_text(view.commit_message.strip()).splitlines() or [""])
    return [SectionBlock(text=MarkdownTextObject(text=_cut(quoted, _SECTION_MAX)))]


def _approval_context(view: ReleaseView) -> ContextBlock:
    from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject

    parts = [f"Release {_user_text(view.release_id, 200)}"]
    expiry = _expiry(view.approval_expires_at)
    if expiry:
        parts.append(expiry)
    if view.approvers:
        parts.append("Approvers: " + ", ".join(_mention(a) for a in view.approvers[:20]))
    return ContextBlock(elements=[MarkdownTextObject(text=_cut(" · ".join(parts), _SECTION_MAX))])


def _approval_header(view: ReleaseView) -> HeaderBlock:
    from slack_sdk.models.blocks import HeaderBlock, PlainTextObject

    stage = view.stage or "the next stage"
    return HeaderBlock(text=PlainTextObject(text=_cut(f"{view.pipeline} → {stage} needs approval", _HEADER_MAX)))


def approval_blocks(view: ReleaseView, *, interactive: bool, approval_token: str | None) -> list[Block]:
    """The approval request: what would be deployed, how, until when, and the buttons.

    The link button opens the approval page (a GET there changes nothing). With `interactive`
    and a token, Approve and Reject buttons carry the token as their value; Slack still sends an
    interaction payload for the link button (`REVIEW_ACTION`): the endpoint ignores it.
    """
    from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ConfirmObject, PlainTextObject, SectionBlock

    if approval_token is not None and len(approval_token) > _BUTTON_VALUE_MAX:
        raise ValueError(f"an approval token longer than {_BUTTON_VALUE_MAX} characters cannot be a button value")
    blocks: list[Block] = [
        _approval_header(view),
        SectionBlock(fields=_detail_fields(view)),
        *_commit_message_block(view),
        _approval_context(view),
    ]
    buttons: list[ButtonElement] = []
    link = _safe_url(view.approval_link)
    if link:
        buttons.append(
            ButtonElement(text=PlainTextObject(text="Review and approve"), action_id=REVIEW_ACTION, url=link)
        )
    if interactive and approval_token:
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text="Approve"), action_id=APPROVE_ACTION, value=approval_token, style="primary"
            )
        )
        buttons.append(
            ButtonElement(
                text=PlainTextObject(text="Reject"),
                action_id=REJECT_ACTION,
                value=approval_token,
                style="danger",
                confirm=ConfirmObject(
                    title="Reject this release?",
                    text=PlainTextObject(
                        text=_cut(f"{view.commit[:12]} will not be deployed to {view.stage} and the release ends.", 300)
                    ),
                    confirm="Reject",
                    deny="Cancel",
                    style="danger",
                ),
            )
        )
    if buttons:
        blocks.append(ActionsBlock(elements=buttons))
    return blocks


def decision_text(decision: str, user_id: str, at: datetime) -> str:
    """`Approved by <@U012ABCDEF> at 2026-11-29 10:00 UTC` (or Rejected), as mrkdwn."""
    word = _decision_word(decision)
    return f"{word} by {_mention(user_id)} at {_when(at)}"


def _decision_word(decision: str) -> Literal["Approved", "Rejected"]:
    normalized = decision.strip().lower()
    if normalized in ("approve", "approved"):
        return "Approved"
    if normalized in ("reject", "rejected"):
        return "Rejected"
    raise ValueError(f"a decision is 'approve' or 'reject', not {decision!r}")


def decided_blocks(view: ReleaseView, decision: str, user_id: str, at: datetime) -> list[Block]:
    """The approval request once decided: the buttons give way to who decided, and when."""
    from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

    emoji = ":white_check_mark:" if _decision_word(decision) == "Approved" else ":no_entry:"
    return [
        _approval_header(view),
        SectionBlock(fields=_detail_fields(view)),
        *_commit_message_block(view),
        ContextBlock(elements=[MarkdownTextObject(text=f"Release {_user_text(view.release_id, 200)}")]),
        SectionBlock(text=MarkdownTextObject(text=f"{emoji} {decision_text(decision, user_id, at)}")),
    ]


def _decided_by(text: str) -> str:
    """Escape everything, then let plain user mentions (and nothing else) through."""
    return _USER_MENTION.sub(r"<@\1>", _user_text(text, 300))


def status_blocks(view: ReleaseView, *, interactive: bool = False) -> list[Block]:
    """The one release message, updated as the release moves; failures say why and where to look.

    With `interactive` (a bot token and a signing secret: Slack can call back), a "Roll back
    <stage>" button for each stage the release is deploying or has deployed (`rollback_stages`).
    """
    from slack_sdk.models.blocks import ActionsBlock, ContextBlock, MarkdownTextObject, SectionBlock

    emoji, label = _state_label(view)
    commit = escape_mrkdwn(_short_commit(view))
    blocks: list[Block] = [
        SectionBlock(
            text=MarkdownTextObject(
                text=_cut(f"{emoji} *{escape_mrkdwn(view.pipeline)}* {commit}: *{escape_mrkdwn(label)}*", 3000)
            )
        ),
        SectionBlock(fields=_detail_fields(view)),
        *_commit_message_block(view),
    ]
    if view.reason:
        blocks.append(SectionBlock(text=MarkdownTextObject(text=f"*Reason*\n{_user_text(view.reason)}")))
    if view.housekeeping:
        lines = "\n".join(f"• {_user_text(line, 500)}" for line in view.housekeeping[:_MAX_HOUSEKEEPING_LINES])
        text = _cut(f"*Scheduled tasks and revisions*\n{lines}", _SECTION_MAX)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=text)))
    links = [
        _link(url, label) for url, label in ((view.log_link, "Build log"), (view.service_link, "ECS service")) if url
    ]
    context = [f"Release {_user_text(view.release_id, 200)}", *links]
    if view.decided_by_text:
        context.append(_decided_by(view.decided_by_text))
    blocks.append(ContextBlock(elements=[MarkdownTextObject(text=_cut(" · ".join(context), _SECTION_MAX))]))
    if interactive:
        buttons = [button for stage in rollback_stages(view) if (button := _rollback_button(view, stage))]
        if buttons:
            blocks.append(ActionsBlock(elements=buttons))
    return blocks


def rollback_stages(view: ReleaseView) -> tuple[str, ...]:
    """The stages a "Roll back" button is offered for: those the release is deploying or has
    deployed, never on a rollback's own message (at most five, the latest the release entered)."""
    if view.is_rollback:
        return ()
    stages = tuple(name for name, state in view.stage_states if str(state) in _ROLLBACK_FROM)
    return stages[-_MAX_ROLLBACK_BUTTONS:]


def _rollback_button(view: ReleaseView, stage: str) -> ButtonElement | None:
    from slack_sdk.models.blocks import ButtonElement, ConfirmObject, PlainTextObject

    value = rollback_value(view.release_id, stage)
    if len(value) > _BUTTON_VALUE_MAX:
        return None
    return ButtonElement(
        text=PlainTextObject(text=_cut(f"Roll back {stage}", 75)),
        action_id=_cut(f"{ROLLBACK_ACTION}:{stage}", 255),  # unique within the block, as Slack asks
        value=value,
        style="danger",
        confirm=ConfirmObject(
            title=_cut(f"Roll back {stage}?", 100),
            text=PlainTextObject(
                text=_cut(
                    f"{stage} of {view.pipeline} goes back to the revision it ran before: a deployment in flight "
                    "is stopped and ECS rolls it back; a finished one is replaced by the previous successful "
                    "revision. Only the stage's approvers may do this.",
                    300,
                )
            ),
            confirm="Roll back",
            deny="Cancel",
            style="danger",
        ),
    )


@dataclass(frozen=True)
class RollbackTarget:
    """What a "Roll back" button asks for: the release whose message it is on, and the stage."""

    release_id: str
    stage: str


def rollback_value(release_id: str, stage: str) -> str:
    """The button's value: `{"release_id": ..., "stage": ...}`, compact JSON. Not signed: Slack
    signs the whole interaction, and the endpoint checks the clicking user and the release."""
    return json.dumps({"release_id": release_id, "stage": stage}, separators=(",", ":"), sort_keys=True)


class _RollbackValue(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    release_id: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[\x21-\x7e]+$")]
    stage: Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]


def parse_rollback_value(value: str | None) -> RollbackTarget:
    """A "Roll back" button's value, parsed at the edge; BadInput for anything else."""
    if not value:
        raise BadInput("the rollback button carries no value")
    try:
        parsed = _RollbackValue.model_validate_json(value)
    except ValidationError:
        raise BadInput("the rollback button's value is not {release_id, stage}") from None
    return RollbackTarget(release_id=parsed.release_id, stage=parsed.stage)


def fallback_text(view: ReleaseView) -> str:
    """The `text` of a message: what notifications and screen readers show (mrkdwn, escaped)."""
    who = f" by {_user_text(_principal(view.pusher), 200)}" if view.pusher else ""
    pipeline = escape_mrkdwn(view.pipeline)
    if str(view.state) == "AWAITING_APPROVAL":
        stage = escape_mrkdwn(view.stage or "the next stage")
        return f"{pipeline} → {stage} needs approval: {view.commit[:12]}{who}"
    _, label = _state_label(view)
    if view.is_rollback:
        asked = requester_text(view.requested_by)
        who = f" by {asked}" if asked else ""
        commit = f" to {escape_mrkdwn(_short_commit(view))}" if view.commit else ""
        text = f"{pipeline}: {escape_mrkdwn(label)}{commit}{who}"
    else:
        text = f"{pipeline} {view.commit[:12]}{who}: {escape_mrkdwn(label)}"
    return f"{text} ({_user_text(view.reason, 200)})" if view.reason else text


# --- transport -------------------------------------------------------------------------------


@dataclass(frozen=True)
class MessageRef:
    channel: str
    ts: str


if TYPE_CHECKING:
    BlocksArg = Sequence[Block | dict[str, Any]]


class SlackNotifier:
    """Posts and updates messages. Never raises: a Slack failure is a log line, not a failed release."""

    def __init__(self, settings: Callable[[], SlackSettings], *, timeout: float = 3.0) -> None:
        self._settings = settings
        # slack_sdk types its timeout as whole seconds
        self._timeout = max(1, math.ceil(timeout))

    def _load(self, operation: str) -> SlackSettings | None:
        try:
            return self._settings()
        except Exception as exc:
            log.warning("Slack %s skipped: settings unavailable: %s", operation, type(exc).__name__)
            return None

    def _web(self, settings: SlackSettings) -> WebClient:
        from slack_sdk.web import WebClient

        kwargs: dict[str, Any] = {}
        if settings.api_base_url:
            kwargs["base_url"] = settings.api_base_url
        return WebClient(token=settings.bot_token, timeout=self._timeout, logger=_sdk_log, retry_handlers=[], **kwargs)

    def _webhook(self, url: str) -> WebhookClient:
        from slack_sdk.webhook import WebhookClient

        return WebhookClient(url=url, timeout=self._timeout, logger=_sdk_log, retry_handlers=[])

    def post(self, blocks: BlocksArg, text: str, channel: str | None = None) -> MessageRef | None:
        """chat.postMessage with the bot token (a MessageRef for later updates), else the webhook (None)."""
        settings = self._load("post")
        if settings is None:
            return None
        target = channel or settings.channel
        try:
            if settings.bot_token:
                if not target:
                    log.warning("Slack post skipped: no channel configured")
                    return None
                response = self._web(settings).chat_postMessage(
                    channel=target, blocks=blocks, text=text, unfurl_links=False, unfurl_media=False
                )
                return MessageRef(channel=str(response["channel"]), ts=str(response["ts"]))
            if settings.webhook_url:
                reply = self._webhook(settings.webhook_url).send(
                    text=text, blocks=blocks, unfurl_links=False, unfurl_media=False
                )
                if reply.status_code != 200:
                    _log_failure("webhook", settings, f"HTTP {reply.status_code}: {_cut(reply.body or '', 100)}")
                return None
        except Exception as exc:
            _log_failure("chat.postMessage" if settings.bot_token else "webhook", settings, _describe(exc))
            return None
        log.debug("Slack is off: nothing posted")
        return None

    def update(self, ref: MessageRef, blocks: BlocksArg, text: str) -> bool:
        """chat.update of a message posted with the bot token."""
        settings = self._load("update")
        if settings is None or not settings.bot_token:
            return False
        try:
            self._web(settings).chat_update(channel=ref.channel, ts=ref.ts, blocks=blocks, text=text)
        except Exception as exc:
            _log_failure("chat.update", settings, _describe(exc))
            return False
        return True

    def answer(self, response_url: str, mrkdwn: str) -> bool:
        """An ephemeral answer to the user who clicked: a new message only they see (the original
        stays), in mrkdwn the caller escaped (mentions and code spans survive)."""
        from slack_sdk.models.blocks import MarkdownTextObject, SectionBlock

        text = _cut(mrkdwn, _SECTION_MAX)
        blocks = [SectionBlock(text=MarkdownTextObject(text=text))]
        return self.respond(response_url, blocks, text, replace_original=False)

    def respond(self, response_url: str, blocks: BlocksArg, text: str, *, replace_original: bool = True) -> bool:
        """Answer an interaction through its response_url (hooks.slack.com only: no SSRF)."""
        settings = self._load("respond") or SlackSettings()
        if not _allowed_response_url(response_url, settings.api_base_url):
            host = _host_of(response_url)
            log.warning("Slack response_url refused: not %s", SLACK_HOOKS_HOST, extra={"host": host})
            return False
        try:
            reply = self._webhook(response_url).send(text=text, blocks=blocks, replace_original=replace_original)
        except Exception as exc:
            _log_failure("response_url", settings, _describe(exc), extra_secret=response_url)
            return False
        if reply.status_code != 200:
            _log_failure(
                "response_url",
                settings,
                f"HTTP {reply.status_code}: {_cut(reply.body or '', 100)}",
                extra_secret=response_url,
            )
            return False
        return True


def _host_of(url: str) -> str:
    try:
        return urllib.parse.urlsplit(url).hostname or "(none)"
    except ValueError:
        return "(unparsable)"


def _allowed_response_url(url: str, api_base_url: str | None) -> bool:
    """https://hooks.slack.com/..., or the local sink's own scheme://host:port."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.username is not None or parts.password is not None or any(c.isspace() for c in url):
        return False
    if parts.scheme == "https" and parts.hostname == SLACK_HOOKS_HOST and port in (None, 443):
        return True
    if not api_base_url:
        return False
    base = urllib.parse.urlsplit(api_base_url)
    return (parts.scheme, parts.hostname, port) == (base.scheme, base.hostname, base.port)


def _describe(exc: Exception) -> str:
    from slack_sdk.errors import SlackApiError

    if isinstance(exc, SlackApiError):
        response = exc.response
        return f"Slack error {response.get('error')!r} (HTTP {response.status_code})"
    return f"{type(exc).__name__}: {_cut(str(exc), 200)}"


def _log_failure(operation: str, settings: SlackSettings, detail: str, *, extra_secret: str | None = None) -> None:
    for secret in (*settings.secrets(), *((extra_secret,) if extra_secret else ())):
        detail = detail.replace(secret, "***")
    log.warning("Slack %s failed: %s", operation, detail, extra={"slack_operation": operation})


# --- inbound: signed requests and interactions ------------------------------------------------


class SlackRequestRefused(DeployerError):
    """A request that is not provably from Slack: answer `http_status`, change nothing."""

    def __init__(self, reason: str, http_status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.http_status = http_status


def verify_request(
    settings: SlackSettings, headers: Mapping[str, str], body: bytes, *, now: float | None = None
) -> None:
    """Raise SlackRequestRefused unless the request is signed by Slack within the last 5 minutes.

    `body` is the raw body exactly as received (see `decode_function_url_body`).
    """
    if not settings.signing_secret:
        raise SlackRequestRefused("no Slack signing secret is configured")
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered.get("x-slack-request-timestamp")
    signature = lowered.get("x-slack-signature")
    if not timestamp:
        raise SlackRequestRefused("missing X-Slack-Request-Timestamp header")
    if not signature:
        raise SlackRequestRefused("missing X-Slack-Signature header")
    if not _TIMESTAMP.fullmatch(timestamp):
        raise SlackRequestRefused("X-Slack-Request-Timestamp is not a number of seconds")
    current = time.time() if now is None else now
    if abs(current - int(timestamp)) > SIGNATURE_MAX_AGE_SECONDS:
        raise SlackRequestRefused("stale request: timestamp more than 5 minutes off")
    from slack_sdk.signature import Clock, SignatureVerifier

    class _FixedClock(Clock):
        def now(self) -> float:
            return current

    verifier = SignatureVerifier(settings.signing_secret, clock=_FixedClock())
    try:
        valid = verifier.is_valid(body=body.decode("utf-8"), timestamp=timestamp, signature=signature)
    except UnicodeDecodeError:
        # slack_sdk signs text only; Slack's scheme is an HMAC of the raw bytes, so a body that is
        # not UTF-8 is checked the same way here: signed, it is refused later as not an interaction
        # (400); unsigned, it is refused now (401), like any other forgery.
        base = b"v0:" + timestamp.encode("ascii") + b":" + body
        expected = "v0=" + hmac.new(settings.signing_secret.encode(), base, hashlib.sha256).hexdigest()
        valid = hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8", "replace"))
    if not valid:
        raise SlackRequestRefused("bad signature")


def decode_function_url_body(event: Mapping[str, Any]) -> bytes:
    """The raw body of a Lambda Function URL event, base64-decoded when `isBase64Encoded`."""
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise BadInput("the request body is not a string")
    if event.get("isBase64Encoded"):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise BadInput("the request body is not valid base64") from None
    return body.encode("utf-8")


@dataclass(frozen=True)
class Interaction:
    action_id: str
    value: str | None
    user_id: str
    user_name: str | None
    response_url: str | None
    channel_id: str | None
    message_ts: str | None

    @property
    def is_rollback(self) -> bool:
        """A "Roll back" button (action_id `rollback` or `rollback:<stage>`)."""
        return self.action_id == ROLLBACK_ACTION or self.action_id.startswith(f"{ROLLBACK_ACTION}:")

    @property
    def decision(self) -> Literal["approve", "reject"] | None:
        """The decision a button asks for; None for anything else (the link button): a no-op."""
        if self.action_id == APPROVE_ACTION:
            return "approve"
        if self.action_id == REJECT_ACTION:
            return "reject"
        return None


_Str = Annotated[str, StringConstraints(max_length=2000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class _User(_Model):
    id: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{2,32}$")]
    username: Annotated[str, StringConstraints(max_length=255)] | None = None
    name: Annotated[str, StringConstraints(max_length=255)] | None = None


class _Action(_Model):
    action_id: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    value: _Str | None = None


class _Channel(_Model):
    id: Annotated[str, StringConstraints(max_length=64)]


class _Container(_Model):
    message_ts: Annotated[str, StringConstraints(max_length=64)] | None = None
    channel_id: Annotated[str, StringConstraints(max_length=64)] | None = None


class _Message(_Model):
    ts: Annotated[str, StringConstraints(max_length=64)] | None = None


class _BlockActions(_Model):
    type: Literal["block_actions"]
    user: _User
    actions: Annotated[list[_Action], Field(min_length=1)]
    response_url: _Str | None = None
    channel: _Channel | None = None
    container: _Container | None = None
    message: _Message | None = None


def parse_interaction(body: bytes) -> Interaction:
    """The first action of a `block_actions` payload (form field `payload=<JSON>`); BadInput otherwise."""
    if len(body) > MAX_INTERACTION_BYTES:
        raise BadInput("interaction body too large")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadInput("interaction body is not UTF-8 text") from None
    try:
        form = urllib.parse.parse_qs(text, keep_blank_values=True, max_num_fields=16)
    except ValueError:
        raise BadInput("interaction body is not a form") from None
    payloads = form.get("payload")
    if not payloads or len(payloads) != 1:
        raise BadInput("interaction body has no single payload field")
    try:
        payload = _BlockActions.model_validate_json(payloads[0])
    except ValidationError as exc:
        where = ", ".join(sorted({".".join(str(p) for p in e["loc"]) or "(payload)" for e in exc.errors()})[:5])
        raise BadInput(f"not a block_actions payload ({where})") from None
    action = payload.actions[0]
    container = payload.container
    return Interaction(
        action_id=action.action_id,
        value=action.value,
        user_id=payload.user.id,
        user_name=payload.user.username or payload.user.name,
        response_url=payload.response_url,
        channel_id=payload.channel.id if payload.channel else container.channel_id if container else None,
        message_ts=(container.message_ts if container else None) or (payload.message.ts if payload.message else None),
    )
