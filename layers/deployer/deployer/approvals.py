"""Approval requests, their signed links, and the one decision each may take (docs/design.md invariant 4).

No HTTP and no Slack here: `approvals_http` and `slack` call this module, and the caller
publishes "Approval Decided" (`events.ApprovalDecidedDetail`); `on_approval` moves the release.

Token. A link carries `v1.<approval_id>.<expires_epoch>.<signature>` (about 80 URL-safe characters):

- `approval_id`: 16 random bytes, URL-safe base64 without padding (22 characters);
- `expires_epoch`: the approval's expiry, whole seconds since the epoch (UTC);
- `signature`: HMAC-SHA256(key, "v1.<approval_id>.<expires_epoch>"), URL-safe base64 without
  padding (43 characters), compared with `hmac.compare_digest`.

A token that is malformed, over-long, forged, signed with another key or past its expiry is
refused before any DynamoDB read. The token is never stored: `token_for` re-derives it from the
record and the key, which is what makes `request` idempotent. The record holds nothing secret
(no token, no signature, no hash of either). Rotating the key invalidates every link already
sent; `request` for the same release and stage then returns the same approval with a new token.

Record (deployer table):

| item             | pk                            | sk             | notes                                   |
|------------------|-------------------------------|----------------|-----------------------------------------|
| approval         | APPROVAL#<approval id>        | META           | release, stage, commit, image digest,   |
|                  |                               |                | approvers, expiry, status, decision     |
| request pointer  | APPROVAL_FOR#<release id>     | STAGE#<stage>  | (release, stage) -> approval id         |

Both carry `expiration` (TTL) 30 days after the approval expires.

An approval counts only if, in this order: the token's signature is valid (`InvalidToken`), it is
not past its expiry (`ApprovalExpired`), the record exists (`UnknownApproval`) and is still
PENDING (`ApprovalAlreadyDecided`), the release is current (`NotCurrent`: it exists, waits in
AWAITING_APPROVAL on this very stage for this very approval, with the commit and image the
approver was shown, and no newer release of the pipeline entered the stage), and the person may
decide (`may_decide`, else `NotAnApprover`). `check` does all of that with reads only: a GET
never changes anything, because link previewers fetch links. `decide` then makes ONE conditional
write PENDING -> APPROVED/REJECTED (status = PENDING AND not expired), so of two simultaneous
clicks exactly one decides and the other gets `ApprovalAlreadyDecided`.

Who may decide (`may_decide`, the one place of the rule, as docs/design.md's invariant 4 states it).
From Slack, the clicking user must be one of the stage's approvers when the stage lists any (Slack
proves who clicks). Through the approval page, the signed, single-use, expiring link is the
capability: whoever holds it decides, and the decision records the source address and user agent.
This keeps approvals possible where Slack is a plain incoming webhook (no buttons, no identity);
post the link only where the approvers read, and the page names the expected approvers.

Expiry is enforced at decision time (`ApprovalExpired`; the write's condition repeats it). The
scheduled sweep belongs to the flow: for each release AWAITING_APPROVAL, `due_for_expiry(release)`
says whether its approval is PENDING past its expiry, `expire_if_due(release)` marks it EXPIRED
(one conditional write, so a click in the same instant either wins or loses cleanly) and returns
True only for the call that did; the flow then moves the release to APPROVAL_EXPIRED.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal

from botocore.exceptions import ClientError

from deployer import aws
from deployer.errors import ConfigError, DeployerError, TransientError
from deployer.pipelines.schema import MAX_APPROVAL_HOURS
from deployer.releases.model import Release, ReleaseState
from deployer.releases.store import ReleaseStore

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_secretsmanager import SecretsManagerClient

    from deployer.events.deployer_bus import DecidedBy

__all__ = [
    "MIN_KEY_BYTES",
    "Approval",
    "ApprovalAlreadyDecided",
    "ApprovalExpired",
    "ApprovalRefused",
    "Approvals",
    "InvalidToken",
    "NotAnApprover",
    "NotCurrent",
    "UnknownApproval",
    "may_decide",
    "now_utc",
    "signing_key_from_secret",
]

logger = logging.getLogger(__name__)

TOKEN_VERSION: Final = "v1"  # noqa: S105 - a format version, not a secret
MIN_KEY_BYTES: Final = 32
MAX_TOKEN_CHARS: Final = 128
SECRET_MAX_AGE_SECONDS: Final = 300
RECORD_RETENTION: Final = timedelta(days=30)
_ID_BYTES: Final = 16
_TOKEN_RE: Final = re.compile(
    r"v1\.(?P<id>[A-Za-z0-9_-]{22})\.(?P<exp>[1-9][0-9]{0,11})\.(?P<sig>[A-Za-z0-9_-]{43})", re.ASCII
)

Status = Literal["PENDING", "APPROVED", "REJECTED", "EXPIRED"]
Decision = Literal["approve", "reject"]
_STATUS_OF: Final[Mapping[str, Status]] = {"approve": "APPROVED", "reject": "REJECTED"}


def now_utc() -> datetime:
    return datetime.now(UTC)


# --- Refusals ----------------------------------------------------------------------------------


class ApprovalRefused(DeployerError):
    """An approval that does not count. `code`, `http_status`, `title` and `message` are fit to
    show a person (no secrets, no internals); `detail` is for the log line only."""

    code: ClassVar[str] = "approval_refused"
    http_status: ClassVar[int] = 403
    title: ClassVar[str] = "Approval refused"
    default_message: ClassVar[str] = "This approval cannot be used."

    def __init__(self, message: str | None = None, *, detail: str | None = None) -> None:
        self.message = message or self.default_message
        self.detail = detail or self.message
        super().__init__(self.message)


class InvalidToken(ApprovalRefused):
    code = "invalid_token"
    http_status = 403
    title = "Invalid approval link"
    default_message = "This approval link is not valid. Open the link from the latest Slack message."


class UnknownApproval(ApprovalRefused):
    code = "unknown_approval"
    http_status = 404
    title = "Approval not found"
    default_message = "This approval link does not match any approval request."


class ApprovalExpired(ApprovalRefused):
    code = "approval_expired"
    http_status = 410
    title = "Approval expired"
    default_message = "This approval request has expired; the release was not deployed further."


class ApprovalAlreadyDecided(ApprovalRefused):
    code = "approval_already_decided"
    http_status = 409
    title = "Already decided"
    default_message = "This approval was already decided; a link decides only once."


class NotCurrent(ApprovalRefused):
    code = "not_current"
    http_status = 409
    title = "Release no longer waiting"
    default_message = "This release is no longer waiting for this approval."


class NotAnApprover(ApprovalRefused):
    code = "not_an_approver"
    http_status = 403
    title = "Not an approver"
    default_message = "Only the stage's approvers may decide this approval."


# --- The approval ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    approval_id: str
    release_id: str
    pipeline: str
    stage: str
    commit: str
    image_digest: str | None
    approvers: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    status: Status
    decided_by: dict[str, Any] | None
    decided_at: datetime | None

    @property
    def decision(self) -> Decision | None:
        if self.status == "APPROVED":
            return "approve"
        if self.status == "REJECTED":
            return "reject"
        return None

    @property
    def expires_epoch(self) -> int:
        return int(self.expires_at.timestamp())


def may_decide(approval: Approval, slack_user: str | None) -> bool:
    """Who may decide: from Slack (`slack_user` given), a listed approver when the stage lists
    any; through the page (no Slack identity), whoever holds the signed link."""
    if slack_user is None or not approval.approvers:
        return True
    return slack_user in approval.approvers


# --- The store of approvals --------------------------------------------------------------------


class Approvals:
    """Requests, checks and decides approvals; see the module docstring for the rules."""

    def __init__(
        self,
        table: Table,
        store: ReleaseStore,
        signing_key: Callable[[], bytes],
        clock: Callable[[], datetime] = now_utc,
        base_url: str | None = None,
    ) -> None:
        self._table = table
        self._store = store
        self._signing_key = signing_key
        self._clock = clock
        self._base_url = base_url.rstrip("/") if base_url else None

    # -- request ------------------------------------------------------------------------------

    def request(
        self, release: Release, stage: str, *, approvers: Sequence[str], expires_in_hours: int
    ) -> tuple[Approval, str]:
        """Create the approval of `release` for `stage` and return it with its token. Idempotent
        per (release, stage): a second call returns the first approval (whatever its status,
        approvers and expiry), with the same token while the key is the same."""
        if not stage:
            raise ConfigError("an approval names the stage it gates")
        if not 1 <= expires_in_hours <= MAX_APPROVAL_HOURS:
            raise ConfigError(f"expires_in_hours {expires_in_hours} is outside 1..{MAX_APPROVAL_HOURS}")
        if release.state.terminal:
            raise NotCurrent(detail=f"release {release.release_id} is {release.state}: no approval is asked")
        if any(not isinstance(a, str) or not a for a in approvers):
            raise ConfigError("approvers are Slack user ids")
        key = self._key()  # no key, no approval: fail before writing anything

        existing = self._requested(release.release_id, stage)
        if existing is not None:
            return existing, self._token(key, existing.approval_id, existing.expires_epoch)

        now = self._clock()
        expires_epoch = int(now.timestamp()) + expires_in_hours * 3600
        approval = Approval(
            approval_id=secrets.token_urlsafe(_ID_BYTES),
            release_id=release.release_id,
            pipeline=release.pipeline,
            stage=stage,
            commit=release.commit,
            image_digest=release.image_digest,
            approvers=tuple(dict.fromkeys(approvers)),
            created_at=now,
            expires_at=datetime.fromtimestamp(expires_epoch, UTC),
            status="PENDING",
            decided_by=None,
            decided_at=None,
        )
        ttl = expires_epoch + int(RECORD_RETENTION.total_seconds())
        client = self._table.meta.client
        with aws.translate("DynamoDB TransactWriteItems (approval request)"):
            try:
                client.transact_write_items(
                    TransactItems=[
                        {
                            "Put": {
                                "TableName": self._table.name,
                                "Item": {**_approval_to_item(approval), "expiration": ttl},
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                        {
                            "Put": {
                                "TableName": self._table.name,
                                "Item": {
                                    **_request_key(release.release_id, stage),
                                    "approval_id": approval.approval_id,
                                    "expiration": ttl,
                                },
                                "ConditionExpression": "attribute_not_exists(pk)",
                            }
                        },
                    ]
                )
            except client.exceptions.TransactionCanceledException:
                raced = self._requested(release.release_id, stage)
                if raced is None:
                    raise TransientError(f"approval request for {release.release_id}/{stage} collided; retry") from None
                return raced, self._token(key, raced.approval_id, raced.expires_epoch)
        logger.info(
            "approval requested",
            extra={"approval_id": approval.approval_id, "release_id": release.release_id, "stage": stage},
        )
        return approval, self._token(key, approval.approval_id, expires_epoch)

    def token_for(self, approval: Approval) -> str:
        return self._token(self._key(), approval.approval_id, approval.expires_epoch)

    def link_for(self, token: str) -> str:
        if not self._base_url:
            raise ConfigError("no base URL is configured for approval links")
        return f"{self._base_url}/approvals/{token}"

    def link_for_release(self, release: Release) -> str | None:
        """The approval link of the approval `release` waits for, re-derived from the record:
        the bearer link is never stored, so reading the table grants no approval."""
        if not release.approval_id:
            return None
        approval = self._get(release.approval_id)
        if approval is None or approval.status != "PENDING":
            return None
        return self.link_for(self.token_for(approval))

    # -- check and decide ---------------------------------------------------------------------

    def check(self, token: str) -> Approval:
        """Everything a GET may know, with reads only. Raises an `ApprovalRefused`."""
        approval_id, expires_epoch = self._verify(token)
        if self._clock().timestamp() >= expires_epoch:
            raise ApprovalExpired(detail=f"approval {approval_id}: token expired at {expires_epoch}")
        approval = self._get(approval_id)
        if approval is None:
            raise UnknownApproval(detail=f"approval {approval_id}: no record")
        if approval.expires_epoch != expires_epoch:
            raise InvalidToken(detail=f"approval {approval_id}: token expiry differs from the record")
        if approval.status == "EXPIRED":
            raise ApprovalExpired(detail=f"approval {approval_id}: marked EXPIRED")
        if approval.status != "PENDING":
            raise ApprovalAlreadyDecided(
                _decided_message(approval), detail=f"approval {approval_id}: already {approval.status}"
            )
        self._ensure_current(approval)
        return approval

    def decide(
        self,
        token: str,
        decision: Decision,
        decided_by: DecidedBy,
        *,
        slack_user: str | None = None,
    ) -> Approval:
        """Take the approval's one decision and return the decided approval. Publishes nothing
        and moves no release: the caller puts "Approval Decided" on the bus."""
        if decision not in _STATUS_OF:
            raise ValueError(f"decision must be 'approve' or 'reject', not {decision!r}")
        user = _slack_identity(decided_by, slack_user)
        approval = self.check(token)
        if not may_decide(approval, user):
            who = f"Slack user {user}" if user else "a link holder without a Slack identity"
            raise NotAnApprover(
                "You are not one of this stage's approvers.",
                detail=f"approval {approval.approval_id}: {who} is not an approver",
            )
        now = self._clock()
        status = _STATUS_OF[decision]
        by = decided_by.model_dump(mode="json", exclude_none=True)
        with aws.translate("DynamoDB UpdateItem (approval decision)"):
            try:
                self._table.update_item(
                    Key=_approval_key(approval.approval_id),
                    UpdateExpression="SET #status = :new, decided_by = :by, decided_at = :at",
                    ConditionExpression="#status = :pending AND expires_epoch > :now",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":new": status,
                        ":by": by,
                        ":at": _iso(now),
                        ":pending": "PENDING",
                        ":now": int(now.timestamp()),
                    },
                )
            except ClientError as exc:  # by code: botocore builds `client.exceptions` lazily, not thread-safe
                if aws.error_code(exc) != "ConditionalCheckFailedException":
                    raise
                raise self._lost(approval.approval_id, now) from None
        logger.info(
            "approval decided",
            extra={
                "approval_id": approval.approval_id,
                "release_id": approval.release_id,
                "stage": approval.stage,
                "decision": decision,
                "decided_by": by,
            },
        )
        return replace(approval, status=status, decided_by=by, decided_at=now)

    # -- expiry -------------------------------------------------------------------------------

    def due_for_expiry(self, release: Release) -> bool:
        """The release's approval is PENDING and past its expiry (a read only)."""
        if not release.approval_id:
            return False
        approval = self._get(release.approval_id)
        return approval is not None and approval.status == "PENDING" and approval.expires_at <= self._clock()

    def expire_if_due(self, release: Release) -> bool:
        """Mark the release's approval EXPIRED if it is PENDING past its expiry. True only for the
        call that did it; the caller then moves the release to APPROVAL_EXPIRED."""
        if not release.approval_id:
            return False
        now = self._clock()
        with aws.translate("DynamoDB UpdateItem (approval expiry)"):
            try:
                self._table.update_item(
                    Key=_approval_key(release.approval_id),
                    UpdateExpression="SET #status = :expired, expired_at = :at",
                    ConditionExpression="#status = :pending AND expires_epoch <= :now AND release_id = :r",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues={
                        ":expired": "EXPIRED",
                        ":at": _iso(now),
                        ":pending": "PENDING",
                        ":now": int(now.timestamp()),
                        ":r": release.release_id,
                    },
                )
            except ClientError as exc:
                if aws.error_code(exc) != "ConditionalCheckFailedException":
                    raise
                return False
        logger.info("approval expired", extra={"approval_id": release.approval_id, "release_id": release.release_id})
        return True

    # -- internals ----------------------------------------------------------------------------

    def _key(self) -> bytes:
        key = self._signing_key()
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"the approval signing key must be at least {MIN_KEY_BYTES} bytes")
        return key

    @staticmethod
    def _token(key: bytes, approval_id: str, expires_epoch: int) -> str:
        return f"{TOKEN_VERSION}.{approval_id}.{expires_epoch}.{_sign(key, approval_id, str(expires_epoch))}"

    def _verify(self, token: object) -> tuple[str, int]:
        """(approval id, expiry epoch) of a well-formed token signed with the key; no I/O."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken(detail="token is not a string of a plausible length")
        match = _TOKEN_RE.fullmatch(token)
        if match is None:
            raise InvalidToken(detail="token is malformed")
        expected = _sign(self._key(), match["id"], match["exp"])
        if not hmac.compare_digest(expected.encode("ascii"), match["sig"].encode("ascii")):
            raise InvalidToken(detail="token signature does not verify")
        return match["id"], int(match["exp"])

    def _get(self, approval_id: str) -> Approval | None:
        with aws.translate("DynamoDB GetItem (approval)"):
            item = self._table.get_item(Key=_approval_key(approval_id), ConsistentRead=True).get("Item")
        return _approval_from_item(item) if item else None

    def _requested(self, release_id: str, stage: str) -> Approval | None:
        with aws.translate("DynamoDB GetItem (approval request)"):
            pointer = self._table.get_item(Key=_request_key(release_id, stage), ConsistentRead=True).get("Item")
        if not pointer:
            return None
        approval = self._get(str(pointer["approval_id"]))
        if approval is None or approval.release_id != release_id or approval.stage != stage:
            return None
        return approval

    def _ensure_current(self, approval: Approval) -> None:
        release = self._store.get(approval.release_id)
        where = f"approval {approval.approval_id} of {approval.release_id}/{approval.stage}"
        if release is None:
            raise NotCurrent(detail=f"{where}: the release does not exist")
        if release.state is not ReleaseState.AWAITING_APPROVAL:
            raise NotCurrent(
                f"This release is no longer waiting for an approval (it is {release.state.value}).",
                detail=f"{where}: release is {release.state}",
            )
        if release.stage != approval.stage:
            raise NotCurrent(
                "This release is now waiting for another stage's approval.",
                detail=f"{where}: release waits on stage {release.stage}",
            )
        if release.approval_id != approval.approval_id:
            raise NotCurrent(
                "This release is waiting for a newer approval request; use the latest link.",
                detail=f"{where}: release waits for approval {release.approval_id}",
            )
        if release.commit != approval.commit or release.image_digest != approval.image_digest:
            raise NotCurrent(
                "The release no longer has the commit and image this approval was asked for.",
                detail=f"{where}: commit or image digest changed since the request",
            )
        holder = self._store.stage_holder(approval.pipeline, approval.stage)
        if holder is not None and holder != release.release_id:
            other = self._store.get(holder)
            if other is None or other.order_key > release.order_key:
                raise NotCurrent(
                    f"A newer release already reached {approval.stage}.",
                    detail=f"{where}: stage is held by newer release {holder}",
                )

    def _lost(self, approval_id: str, now: datetime) -> ApprovalRefused:
        """Why the decision's conditional write failed: someone decided first, or time ran out."""
        current = self._get(approval_id)
        if current is None:
            return UnknownApproval(detail=f"approval {approval_id}: record vanished during the decision")
        if current.status in {"APPROVED", "REJECTED"}:
            return ApprovalAlreadyDecided(
                _decided_message(current), detail=f"approval {approval_id}: decided concurrently"
            )
        return ApprovalExpired(detail=f"approval {approval_id}: expired during the decision ({current.status})")


# --- The signing key ---------------------------------------------------------------------------


def signing_key_from_secret(
    secret_id: str,
    *,
    client: SecretsManagerClient | None = None,
    max_age: int = SECRET_MAX_AGE_SECONDS,
) -> Callable[[], bytes]:
    """A signing-key callable reading the Secrets Manager secret `secret_id` through Powertools
    parameters (cached `max_age` seconds). Raises `TransientError` when Secrets Manager cannot be
    reached (retry) and `ConfigError` when the secret is missing, unreadable or shorter than
    MIN_KEY_BYTES: nothing is approved without the key. The key is never logged."""
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

    provider: SecretsProvider | None = None

    def signing_key() -> bytes:
        nonlocal provider
        if provider is None:
            provider = SecretsProvider(boto3_client=client or aws.client("secretsmanager"))
        try:
            value = provider.get(secret_id, max_age=max_age)
        except GetParameterError as exc:
            raise _secret_error(secret_id, exc) from exc
        key = value.encode("utf-8") if isinstance(value, str) else value
        if not isinstance(key, bytes) or len(key) < MIN_KEY_BYTES:
            raise ConfigError(
                f"the approval signing key secret {secret_id} holds less than {MIN_KEY_BYTES} bytes; "
                "generate at least 32 random bytes"
            )
        return key

    return signing_key


def _secret_error(secret_id: str, exc: BaseException) -> DeployerError:
    from botocore.exceptions import ParamValidationError

    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, ParamValidationError):
        return ConfigError(f"{secret_id!r} is not a valid Secrets Manager secret id")
    if cause is None or aws.is_transient(cause) or aws.error_code(cause) is None:
        return TransientError(f"Secrets Manager is unreachable: cannot read the approval signing key {secret_id}")
    code = aws.error_code(cause)
    if code == "ResourceNotFoundException":
        return ConfigError(f"the approval signing key secret {secret_id} does not exist")
    if code in {"AccessDeniedException", "AccessDenied"}:
        return ConfigError(f"not allowed to read the approval signing key secret {secret_id} (GetSecretValue)")
    return ConfigError(f"cannot read the approval signing key secret {secret_id}: {code}")


# --- Items -------------------------------------------------------------------------------------


def _sign(key: bytes, approval_id: str, expires_epoch: str) -> str:
    message = f"{TOKEN_VERSION}.{approval_id}.{expires_epoch}".encode("ascii")
    return base64.urlsafe_b64encode(hmac.new(key, message, hashlib.sha256).digest()).rstrip(b"=").decode("ascii")


def _slack_identity(decided_by: DecidedBy, slack_user: str | None) -> str | None:
    """The Slack user deciding, if any; a caller naming two different users is a bug."""
    if decided_by.kind == "slack":
        if slack_user is not None and slack_user != decided_by.user:
            raise ValueError("slack_user differs from decided_by.user")
        return decided_by.user
    if slack_user is not None:
        raise ValueError("a decision with a Slack user is decided_by kind 'slack'")
    return None


def _decided_message(approval: Approval) -> str:
    verb = "approved" if approval.status == "APPROVED" else "rejected"
    when = f" at {approval.decided_at:%Y-%m-%d %H:%M} UTC" if approval.decided_at else ""
    return f"This release was already {verb}{when}; a link decides only once."


def _approval_key(approval_id: str) -> dict[str, str]:
    return {"pk": f"APPROVAL#{approval_id}", "sk": "META"}


def _request_key(release_id: str, stage: str) -> dict[str, str]:
    return {"pk": f"APPROVAL_FOR#{release_id}", "sk": f"STAGE#{stage}"}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _approval_to_item(approval: Approval) -> dict[str, Any]:
    item: dict[str, Any] = {
        **_approval_key(approval.approval_id),
        "approval_id": approval.approval_id,
        "release_id": approval.release_id,
        "pipeline": approval.pipeline,
        "stage": approval.stage,
        "commit": approval.commit,
        "approvers": list(approval.approvers),
        "created_at": _iso(approval.created_at),
        "expires_at": _iso(approval.expires_at),
        "expires_epoch": approval.expires_epoch,
        "status": approval.status,
    }
    if approval.image_digest is not None:
        item["image_digest"] = approval.image_digest
    return item


def _approval_from_item(item: Mapping[str, Any]) -> Approval:
    decided_at = item.get("decided_at")
    decided_by = item.get("decided_by")
    return Approval(
        approval_id=str(item["approval_id"]),
        release_id=str(item["release_id"]),
        pipeline=str(item["pipeline"]),
        stage=str(item["stage"]),
        commit=str(item["commit"]),
        image_digest=str(item["image_digest"]) if item.get("image_digest") is not None else None,
        approvers=tuple(str(a) for a in item.get("approvers", [])),
        created_at=datetime.fromisoformat(str(item["created_at"])),
        expires_at=datetime.fromtimestamp(int(item["expires_epoch"]), UTC),
        status=_status(str(item["status"])),
        decided_by={str(k): _plain(v) for k, v in decided_by.items()} if isinstance(decided_by, Mapping) else None,
        decided_at=datetime.fromisoformat(str(decided_at)) if decided_at else None,
    )


def _status(value: str) -> Status:
    for status in ("PENDING", "APPROVED", "REJECTED", "EXPIRED"):
        if value == status:
            return status
    raise ValueError(f"unknown approval status {value!r}")


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
