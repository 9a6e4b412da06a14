"""What every Lambda handler shares: settings parsed from the environment, dependencies built
once per cold start, and the one place where domain exceptions become outcomes.

| exception        | outcome                                                                   |
|------------------|---------------------------------------------------------------------------|
| BadInput         | one error log line naming the event id; handler returns (no retry)        |
| ConfigError      | one error log line; handler returns (the release, if any, says why)       |
| TransientError   | raised: EventBridge retries within the rule's RetryPolicy, then the DLQ   |
| anything else    | raised: the same, and the error is visible in the function's metrics      |
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from deployer.errors import BadInput, ConfigError
from deployer.outcomes import Outcome


class Settings(BaseModel):
    """The functions' environment variables (set by template.yaml)."""

    model_config = ConfigDict(frozen=True)

    table_name: str = Field(alias="DEPLOYER_TABLE", min_length=3)
    config_table_name: str = Field(alias="DEPLOYER_CONFIG_TABLE", min_length=3)
    event_bus_name: str = Field(alias="DEPLOYER_EVENT_BUS", min_length=1)
    config_max_age_seconds: int = Field(default=60, alias="DEPLOYER_CONFIG_MAX_AGE", ge=0, le=60)
    signing_key_secret: str = Field(default="", alias="DEPLOYER_SIGNING_KEY_SECRET")
    slack_secret: str = Field(default="", alias="DEPLOYER_SLACK_SECRET")
    approval_url: str | None = Field(default=None, alias="DEPLOYER_APPROVAL_URL")
    region: str | None = Field(default=None, alias="AWS_REGION")


@functools.cache
def settings() -> Settings:
    try:
        return Settings.model_validate(dict(os.environ))
    except ValidationError as exc:
        missing = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise RuntimeError(f"the function's environment is incomplete: {missing}") from exc


SLACK_ANSWER_TIMEOUT_SECONDS = 10.0

TRACED_MODULES = ("boto3",)
"""What the handlers' Powertools Tracer patches for X-Ray: the AWS SDK, where the deployer's time
goes. Without `patch_modules` the Tracer patches every library the X-Ray SDK supports, importing
the standard library's sqlite3 and trying a dozen packages the layer does not have on every cold
start; none of them is used here (Slack is called through urllib, which the default set does not
patch either)."""


@functools.cache
def deps() -> Any:
    """The flow's dependencies, built once per cold start (`deployer.deps.build_deps`). They name
    every AWS client the flow may use, and each client is created when the flow first uses it
    (`aws.lazy_client`): on_push never builds the ECS, ECR or Application Auto Scaling clients.
    Every client and resource comes from boto3's default session, the idempotency store's included
    (`idempotency_store`), so credentials are resolved and each service model is parsed once per
    cold start; the release store, the approvals and the configuration share one DynamoDB resource."""
    import boto3

    from deployer import aws
    from deployer.approvals import signing_key_from_secret
    from deployer.deps import build_deps
    from deployer.pipelines.store import ConfigStore
    from deployer.slack import settings_from_secret

    cfg = settings()
    dynamodb = boto3.resource("dynamodb")
    config_store = ConfigStore(cfg.config_table_name, dynamodb=dynamodb, max_age_seconds=cfg.config_max_age_seconds)
    return build_deps(
        dynamodb.Table(cfg.table_name),
        config_store.load,
        aws.lazy_client,
        event_bus=cfg.event_bus_name,
        slack=settings_from_secret(cfg.slack_secret),
        region=cfg.region,
        signing_key=signing_key_from_secret(cfg.signing_key_secret) if cfg.signing_key_secret else None,
        approval_base_url=(cfg.approval_url or "").rstrip("/") or None,
        # Answers to Slack users after the work is done: no acknowledgement waits on them, so a
        # slow Slack gets time (the function's timeout is 30 s).
        slack_answer_timeout=SLACK_ANSWER_TIMEOUT_SECONDS,
    )


_SHARED: set[int] = set()


def share_logging(logger: Any) -> None:
    """The deployer package logs through `logging.getLogger("deployer")`; give it the handler's
    Powertools configuration (JSON lines, service name, Lambda context) once per cold start."""
    if id(logger) in _SHARED:
        return
    from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

    copy_config_to_registered_loggers(source_logger=logger, include={"deployer"})
    _SHARED.add(id(logger))


def usable_event_id(raw: object) -> str:
    """The event's id for log lines when it looks like one (EventBridge ids are UUIDs); a direct
    invoke can send anything, and a 300 KB id must not make a 300 KB log line."""
    import re

    event_id = raw.get("id") if isinstance(raw, Mapping) else None
    if isinstance(event_id, str) and re.fullmatch(r"[A-Za-z0-9-]{1,64}", event_id):
        return event_id
    return "(no usable id)"


def run(
    logger: Any,
    metrics: Any,
    model: type[BaseModel],
    raw: Mapping[str, Any],
    action: Callable[[Any], Any],
) -> dict[str, Any]:
    """Parse `raw` as `model`, run `action(parsed)` and map domain errors to outcomes."""
    from aws_lambda_powertools.metrics import MetricUnit

    share_logging(logger)

    from deployer.events.parse import parse_event

    event_id = usable_event_id(raw)
    try:
        parsed = parse_event(model, raw)  # type: ignore[type-var]
        result = action(parsed)
    except BadInput as exc:
        logger.error("refused event %s: %s", event_id, exc, extra={"event_id": event_id, "outcome": Outcome.REFUSED})
        metrics.add_metric(name="EventsRefused", unit=MetricUnit.Count, value=1)
        return {"outcome": Outcome.REFUSED, "event_id": event_id, "reason": str(exc)}
    except ConfigError as exc:
        logger.error(
            "configuration refused for event %s: %s",
            event_id,
            "; ".join(exc.messages[:5]),
            extra={"event_id": event_id, "outcome": Outcome.INVALID_CONFIG},
        )
        metrics.add_metric(name="ConfigRefused", unit=MetricUnit.Count, value=1)
        return {"outcome": Outcome.INVALID_CONFIG, "event_id": event_id, "reason": str(exc)}
    outcome = {"event_id": event_id, "result": result}
    metrics.add_metric(name="EventsHandled", unit=MetricUnit.Count, value=1)
    logger.info("handled event %s", event_id, extra={"event_id": event_id, "result": result})
    return outcome


def idempotency_store() -> Any:
    """Powertools' idempotency records, kept in the deployer's table (pk/sk). Its DynamoDB client
    is the one Powertools would build (no configuration of its own), from boto3's default session
    rather than a session of its own: the deployer's clients then reuse the credentials it resolved
    and the models it loaded instead of doing it all again on the first event."""
    import boto3
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(
        table_name=settings().table_name, key_attr="pk", sort_key_attr="sk", boto3_client=boto3.client("dynamodb")
    )
