"""on_approval: an "Approval Decided" event deploys the stage (or continues a paused deployment)
or ends the release REJECTED; "Rollback Requested" (Slack's Roll back button) rolls a stage back;
a click in Slack is then answered to the user who clicked (its response_url travels in the event);
a schedule ends releases whose approval expired (APPROVAL_EXPIRED)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent
from aws_lambda_powertools.utilities.typing import LambdaContext

from deployer import flow, runtime
from deployer.events import ROLLBACK_REQUESTED, ApprovalDecidedEvent, RollbackRequestedEvent

logger = Logger()
tracer = Tracer()
metrics = Metrics()
# EventBridge delivers at least once: the same event id is handled once (invariant 1).
persistence = runtime.idempotency_store()
idempotency = IdempotencyConfig(event_key_jmespath="id", raise_on_no_idempotency_key=False)
SWEEP = {"sweep": "expired-approvals"}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event == SWEEP:
        return {"expired": flow.sweep_expired_approvals(runtime.deps())}
    return _decision(event, context)


@idempotent(config=idempotency, persistence_store=persistence)
def _decision(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("detail-type") == ROLLBACK_REQUESTED:
        return runtime.run(
            logger, metrics, RollbackRequestedEvent, event, lambda e: flow.on_rollback_requested(e, runtime.deps())
        )
    return runtime.run(logger, metrics, ApprovalDecidedEvent, event, lambda e: flow.on_approval(e, runtime.deps()))
