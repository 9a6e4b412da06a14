"""on_approval: an "Approval Decided" event deploys the stage (or continues a paused deployment)
or ends the release REJECTED; "Rollback Requested" (Slack's Roll back button) rolls a stage back;
a click in Slack is then answered to the user who clicked (its response_url travels in the event);
its schedule (every 15 minutes) ends releases whose approval expired (APPROVAL_EXPIRED) and reconciles
releases whose build or deployment event was lost (`deployer.reconciler`)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent
from aws_lambda_powertools.utilities.typing import LambdaContext

from deployer import reconciler, runtime
from deployer.events.deployer_bus import ROLLBACK_REQUESTED, ApprovalDecidedEvent, RollbackRequestedEvent
from deployer.flow.approval import on_approval, sweep_expired_approvals
from deployer.flow.rollback import on_rollback_requested

logger = Logger()
tracer = Tracer(patch_modules=runtime.TRACED_MODULES)
metrics = Metrics()
# EventBridge delivers at least once: the same event id is handled once (docs/design.md invariant 1).
persistence = runtime.idempotency_store()
idempotency = IdempotencyConfig(event_key_jmespath="id", raise_on_no_idempotency_key=False)
# The schedule's input. "reconcile" does both; "expired-approvals" (the input before the reconciler)
# still expires approvals only; "backfill-index" is the one-off after upgrading (README, "Lost events").
SWEEP = {"sweep": "reconcile"}
EXPIRY_ONLY = {"sweep": "expired-approvals"}
BACKFILL = {"sweep": "backfill-index"}


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event == SWEEP:
        runtime.share_logging(logger)
        deps = runtime.deps()
        return {"expired": sweep_expired_approvals(deps), "reconciled": reconciler.reconcile(deps)}
    if event == EXPIRY_ONLY:
        return {"expired": sweep_expired_approvals(runtime.deps())}
    if event == BACKFILL:
        runtime.share_logging(logger)
        return {"backfilled": reconciler.backfill(runtime.deps())}
    return _decision(event, context)


@idempotent(config=idempotency, persistence_store=persistence)
def _decision(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("detail-type") == ROLLBACK_REQUESTED:
        return runtime.run(
            logger, metrics, RollbackRequestedEvent, event, lambda e: on_rollback_requested(e, runtime.deps())
        )
    return runtime.run(logger, metrics, ApprovalDecidedEvent, event, lambda e: on_approval(e, runtime.deps()))
