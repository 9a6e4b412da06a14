"""on_webhook (Function URL): GitHub and GitLab push webhooks become the push a CodeCommit event
gives, and start the releases before answering. Wiring only; the logic is `deployer.webhooks`
(verification, parsing) and `deployer.flow.push.on_push` (the releases)."""

from __future__ import annotations

import functools
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyPersistenceLayerError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from deployer import runtime, webhooks
from deployer.errors import TransientError
from deployer.flow.push import on_push
from deployer.outcomes import Outcome
from deployer.sources import Push

logger = Logger()
tracer = Tracer(patch_modules=runtime.TRACED_MODULES)
metrics = Metrics()
# GitHub and GitLab deliver at least once and can be asked to redeliver: one delivery id
# (github:<X-GitHub-Delivery>, gitlab:<X-Gitlab-Event-UUID>) starts its releases once. A delivery
# that failed (raised) leaves no record, so its redelivery is handled.
persistence = runtime.idempotency_store()
idempotency = IdempotencyConfig(event_key_jmespath="delivery_id", raise_on_no_idempotency_key=True)


@idempotent_function(data_keyword_argument="push", config=idempotency, persistence_store=persistence)
def start(push: dict[str, Any]) -> list[dict[str, Any]]:
    return on_push(Push.from_dict(push), runtime.deps())


def start_once(push: Push) -> list[dict[str, Any]]:
    """`start` behind the idempotency record of the delivery: the same delivery arriving while the
    first is still being handled is answered, never handled twice."""
    try:
        return start(push=push.as_dict())
    except IdempotencyAlreadyInProgressError:
        reason = "the same delivery is being handled by another request"
        return [{"outcome": Outcome.IN_PROGRESS, "delivery": push.delivery_id, "reason": reason}]
    except IdempotencyPersistenceLayerError as exc:
        raise TransientError(f"the idempotency record could not be read or written: {exc}") from exc


@functools.cache
def endpoint() -> webhooks.WebhookEndpoint:
    """The production dependencies, once per cold start."""
    return webhooks.WebhookEndpoint(
        secrets=webhooks.secrets_from_secret(os.environ.get("DEPLOYER_WEBHOOK_SECRET", "")),
        start=start_once,
    )


@logger.inject_lambda_context(log_event=False, correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
@tracer.capture_lambda_handler(capture_response=False)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    runtime.share_logging(logger)
    idempotency.register_lambda_context(context)
    try:
        answer = endpoint().handle_event(event)
    except Exception:
        logger.exception("on_webhook failed")
        metrics.add_metric(name="WebhooksFailed", unit=MetricUnit.Count, value=1)
        return webhooks.Answer(500, "error", "the deployer failed; see its logs").response()
    metrics.add_metric(name=f"Webhooks{answer.outcome.capitalize()}", unit=MetricUnit.Count, value=1)
    return answer.response()
