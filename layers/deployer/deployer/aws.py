"""Thin adapters around boto3: one cached client per service, and AWS error codes turned into
the deployer's exceptions in one place (`translate`).

Clients honour the standard AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_<SERVICE> variables, which is
how the local stack points everything at moto server.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal, overload

from deployer.errors import DeploymentError, TransientError

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_codebuild import CodeBuildClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_ecr import ECRClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Retries inside the SDK are bounded; past them a TransientError reaches EventBridge's
# RetryPolicy and then the dead-letter queue.
_MAX_ATTEMPTS = 4

TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "RequestThrottled",
        "RequestThrottledException",
        "LimitExceededException",
        "AccountLimitExceededException",
        "ServerException",
        "ServiceUnavailable",
        "ServiceUnavailableException",
        "InternalFailure",
        "InternalServerError",
        "InternalServerException",
        "InternalError",
        "TransactionInProgressException",
    }
)


@overload
def client(service: Literal["ecs"]) -> ECSClient: ...
@overload
def client(service: Literal["codebuild"]) -> CodeBuildClient: ...
@overload
def client(service: Literal["dynamodb"]) -> DynamoDBClient: ...
@overload
def client(service: Literal["ecr"]) -> ECRClient: ...
@overload
def client(service: Literal["events"]) -> EventBridgeClient: ...
@overload
def client(service: Literal["secretsmanager"]) -> SecretsManagerClient: ...
@overload
def client(service: Literal["application-autoscaling"]) -> ApplicationAutoScalingClient: ...
@overload
def client(service: Literal["scheduler"]) -> Any: ...  # EventBridge Scheduler (housekeeping.SchedulerClient)
def client(service: str) -> Any:
    """The process-wide client for `service`, built once per cold start."""
    return _cached_client(service)


@functools.cache
def _cached_client(service: str) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": _MAX_ATTEMPTS, "mode": "standard"}, connect_timeout=5, read_timeout=20)
    return boto3.client(service, config=config)  # type: ignore[call-overload]


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        return str(code) if code else None
    return None


def is_transient(exc: BaseException) -> bool:
    from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

    if isinstance(exc, ConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(exc) in TRANSIENT_CODES or int(status) >= 500
    return False


@contextmanager
def translate(action: str) -> Iterator[None]:
    """Run an AWS call: transient faults become TransientError (retry), other AWS errors
    DeploymentError (the release fails with the message). Domain errors pass through."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        if is_transient(exc):
            raise TransientError(f"{action}: {exc}") from exc
        if isinstance(exc, ClientError):
            message = exc.response.get("Error", {}).get("Message", str(exc))
            raise DeploymentError(f"{action} failed: {error_code(exc)}: {message}") from exc
        raise DeploymentError(f"{action} failed: {exc}") from exc


def call[T](action: str, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """`fn(**kwargs)` inside `translate(action)`."""
    with translate(action):
        return fn(**kwargs)
