"""Thin adapters around the AWS SDK: one cached client per service, and AWS error codes turned
into the deployer's exceptions in one place (`translate`).

`client` builds clients with boto3's default session (the Lambda functions, the local stack, and
what tests and benchmarks hook); `cli_client` builds the same clients with botocore alone, for the
one-shot commands (`deployer deploy`, `deployer diff`): a process that runs once pays for every
import, and boto3 brings s3transfer (and through it botocore's CRT and checksum machinery) that no
ECS call needs. Both honour the standard AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL and
AWS_ENDPOINT_URL_<SERVICE> variables, which is how the local stack points everything at moto
server.
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
    return _cached_client(service, "boto3")


@overload
def lazy_client(service: Literal["ecs"]) -> ECSClient: ...
@overload
def lazy_client(service: Literal["codebuild"]) -> CodeBuildClient: ...
@overload
def lazy_client(service: Literal["ecr"]) -> ECRClient: ...
@overload
def lazy_client(service: Literal["events"]) -> EventBridgeClient: ...
@overload
def lazy_client(service: Literal["application-autoscaling"]) -> ApplicationAutoScalingClient: ...
def lazy_client(service: str) -> Any:
    """`client(service)`, created when first used: a function's dependencies name every client the
    flow may use, and each is built only if one of the function's events uses it (a client costs
    5 to 50 ms of a cold start: botocore loads and parses its service model)."""
    return _LazyClient(service)


class _LazyClient:
    """Stands for the process-wide client of one service: every attribute (operations, `meta`,
    `exceptions`, `get_paginator`...) is the client's, which is created by the first access."""

    __slots__ = ("_service",)

    def __init__(self, service: str) -> None:
        self._service = service

    def __getattr__(self, name: str) -> Any:
        return getattr(_cached_client(self._service, "boto3"), name)

    def __repr__(self) -> str:
        return f"<{self._service} client, created when first used>"


@overload
def cli_client(service: Literal["ecs"]) -> ECSClient: ...
@overload
def cli_client(service: Literal["application-autoscaling"]) -> ApplicationAutoScalingClient: ...
def cli_client(service: str) -> Any:
    """The process-wide client for `service` of a one-shot command, built by botocore without
    boto3 (same configuration as `client`'s; `_cached_client.cache_clear()` forgets both)."""
    return _cached_client(service, "botocore")


@functools.cache
def _cached_client(service: str, sdk: Literal["boto3", "botocore"] = "boto3") -> Any:
    from botocore.config import Config

    config = Config(retries={"max_attempts": _MAX_ATTEMPTS, "mode": "standard"}, connect_timeout=5, read_timeout=20)
    if sdk == "botocore":
        return _botocore_session().create_client(service, config=config)
    import boto3

    return boto3.client(service, config=config)  # type: ignore[call-overload]


@functools.cache
def _botocore_session() -> Any:
    """One botocore session for the one-shot clients, so they share its credentials and the
    models it has loaded (the endpoint rules, the retry configuration), with a data loader that
    checks a service's name without listing every service botocore knows (`_QuickLoader`)."""
    import os

    import botocore.session

    session = botocore.session.get_session()
    # as botocore.loaders.create_loader reads AWS_DATA_PATH
    data_path = session.get_config_variable("data_path")
    extra = [os.path.expanduser(os.path.expandvars(p)) for p in data_path.split(os.pathsep)] if data_path else []
    session.register_component("data_loader", _quick_loader_class()(extra_search_paths=extra))
    return session


@functools.cache
def _quick_loader_class() -> type:
    """A botocore Loader whose `list_available_services` answers `name in ...` by looking at that
    service's folder alone. `Loader.load_service_model` asks it only to check the name, once per
    kind of model (service-2, endpoint-rule-set-1), and botocore's own answer reads the folders of
    all ~440 services to build the list: about 10 ms of CPU of every `deployer deploy` (BENCHMARKS.md,
    section 7). Anything else (iterating, an unknown name's error message) gets botocore's list."""
    import os

    from botocore.loaders import Loader

    class ServiceNames:
        def __init__(self, loader: Loader, type_name: str) -> None:
            self._loader = loader
            self._type_name = type_name

        def __contains__(self, name: object) -> bool:
            for location in self._loader.search_paths:
                folder = os.path.join(location, str(name))
                if os.path.isdir(folder) and any(
                    self._loader.file_loader.exists(os.path.join(folder, version, self._type_name))
                    for version in os.listdir(folder)
                ):
                    return True
            return False

        def __iter__(self) -> Iterator[str]:
            return iter(Loader.list_available_services(self._loader, self._type_name))

    class QuickLoader(Loader):
        def list_available_services(self, type_name: str) -> Any:
            return ServiceNames(self, type_name)

    return QuickLoader


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
