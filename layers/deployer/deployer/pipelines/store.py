"""The published pipelines file: `deployer config publish` stores a canonical JSON copy in DynamoDB,
and the functions read it through `ConfigStore.load`, cached for at most a minute.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NoReturn

from deployer.errors import ConfigError, DeployerError, TransientError
from deployer.pipelines.loader import MAX_PUBLISHED_BYTES, _too_big_to_publish, from_published_json, to_published_json
from deployer.pipelines.schema import PipelinesConfig

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import DynamoDBProvider
    from mypy_boto3_dynamodb.service_resource import DynamoDBServiceResource, Table

__all__ = ["PUBLISHED_ITEM_ID", "ConfigStore", "PublishConflict", "PublishedConfig"]


# --------------------------------------------------------------------------------------------
# The published copy in DynamoDB
# --------------------------------------------------------------------------------------------

PUBLISHED_ITEM_ID = "pipelines"
MAX_CACHE_SECONDS = 60

_TRANSIENT_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


class PublishConflict(DeployerError):
    """Someone else published between our read and our write; re-running publishes on top."""


@dataclass(frozen=True)
class PublishedConfig:
    version: int
    sha256: str
    published_at: str
    published_by: str
    value: str = field(repr=False)


def _raise_store_error(exc: BaseException, table_name: str) -> NoReturn:
    """AWS failures as domain errors: throttling, 5xx and network faults may pass on a retry
    (TransientError); a missing table, denied access or missing credentials will not (ConfigError).
    Anything else is a bug and propagates as it is."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

    error: DeployerError
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code == "ResourceNotFoundException":
            error = ConfigError(
                f"DynamoDB table {table_name!r} not found (check --table / DEPLOYER_CONFIG_TABLE and the region)"
            )
        elif code in _TRANSIENT_CODES or status >= 500:
            error = TransientError(f"DynamoDB table {table_name!r}: {exc}")
        else:
            error = ConfigError(f"DynamoDB table {table_name!r}: {exc}")
    elif isinstance(exc, NoCredentialsError):
        error = ConfigError("no AWS credentials found (set AWS_PROFILE or the AWS_* environment variables)")
    elif isinstance(exc, NoRegionError):
        error = ConfigError("no AWS region configured (set AWS_REGION or AWS_DEFAULT_REGION)")
    elif isinstance(exc, BotoCoreError):
        error = TransientError(f"DynamoDB table {table_name!r}: {exc}")
    else:
        raise exc
    raise error from exc


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ConfigStore:
    """The published pipelines: one DynamoDB item (`id = "pipelines"`), read through Powertools'
    DynamoDBProvider so a warm Lambda reads the table at most once per `max_age_seconds`."""

    def __init__(
        self,
        table_name: str,
        dynamodb: DynamoDBServiceResource | None = None,
        max_age_seconds: int = MAX_CACHE_SECONDS,
    ) -> None:
        if not 0 <= max_age_seconds <= MAX_CACHE_SECONDS:
            raise ValueError(f"max_age_seconds must be 0..{MAX_CACHE_SECONDS}: a publish shows within a minute")
        from aws_lambda_powertools.utilities.parameters import DynamoDBProvider

        if dynamodb is None:
            import boto3
            from botocore.exceptions import BotoCoreError

            try:
                dynamodb = boto3.resource("dynamodb")
            except BotoCoreError as exc:
                _raise_store_error(exc, table_name)
        self.table_name = table_name
        self.max_age_seconds = max_age_seconds
        self._table: Table = dynamodb.Table(table_name)
        self._provider: DynamoDBProvider = DynamoDBProvider(
            table_name, key_attr="id", value_attr="value", boto3_client=dynamodb
        )
        self._parsed: tuple[str, PipelinesConfig] | None = None

    def describe(self) -> PublishedConfig | None:
        """The published item (consistent read), not validated; None before the first publish."""
        try:
            item = self._table.get_item(Key={"id": PUBLISHED_ITEM_ID}, ConsistentRead=True).get("Item")
        except Exception as exc:
            _raise_store_error(exc, self.table_name)
        if item is None:
            return None
        return PublishedConfig(
            version=int(str(item.get("version", 0))),
            sha256=str(item.get("sha256", "")),
            published_at=str(item.get("published_at", "")),
            published_by=str(item.get("published_by", "unknown")),
            value=str(item.get("value", "")),
        )

    def publish(
        self, config: PipelinesConfig, published_by: str, *, expected_version: int | None = None
    ) -> PublishedConfig:
        """Writes version N+1 on condition that N is still the latest, so no publish is lost.

        `expected_version` is the version this publish builds on (default: the one read now)."""
        if expected_version is None:
            current = self.describe()
            expected_version = current.version if current is not None else 0
        value = to_published_json(config)
        if len(value.encode()) > MAX_PUBLISHED_BYTES:
            raise ConfigError(_too_big_to_publish(len(value.encode())))
        published = PublishedConfig(
            version=expected_version + 1,
            sha256=hashlib.sha256(value.encode()).hexdigest(),
            published_at=_now_iso(),
            published_by=published_by or "unknown",
            value=value,
        )
        condition: dict[str, Any] = (
            {"ConditionExpression": "attribute_not_exists(id)"}
            if expected_version == 0
            else {
                "ConditionExpression": "#v = :expected",
                "ExpressionAttributeNames": {"#v": "version"},
                "ExpressionAttributeValues": {":expected": expected_version},
            }
        )
        from botocore.exceptions import ClientError

        try:
            self._table.put_item(
                Item={
                    "id": PUBLISHED_ITEM_ID,
                    "value": published.value,
                    "version": published.version,
                    "sha256": published.sha256,
                    "published_at": published.published_at,
                    "published_by": published.published_by,
                },
                **condition,
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                _raise_store_error(exc, self.table_name)
            latest = self.describe()
            version = latest.version if latest is not None else "?"
            raise PublishConflict(
                f"someone published version {version} meanwhile (this publish was based on version "
                f"{expected_version}); re-run"
            ) from None
        except Exception as exc:
            _raise_store_error(exc, self.table_name)
        return published

    def load(self, *, force_fetch: bool = False) -> PipelinesConfig:
        """The published config, cached for `max_age_seconds`, validated again.

        ConfigError if nothing was published or the published copy fails validation (log it:
        the functions refuse to act on a config they cannot trust)."""
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._provider.get(PUBLISHED_ITEM_ID, max_age=self.max_age_seconds, force_fetch=force_fetch)
        except GetParameterError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, KeyError):
                raise ConfigError(
                    f"no pipelines published yet in table {self.table_name!r}: run deployer config publish FILE"
                ) from None
            _raise_store_error(cause or exc, self.table_name)
        if not isinstance(value, str):
            raise ConfigError(f"published config in table {self.table_name!r} is not a string")
        if self._parsed is not None and self._parsed[0] == value:
            return self._parsed[1]
        config = from_published_json(value)
        self._parsed = (value, config)
        return config
