"""on_deployment: ECS deployment events promote the release or end it; ECS pause hooks ask for
an approval inside the deployment (or end it when the hook timed out); a before-task's STOPPED
event deploys its stage (exit code 0) or ends the release."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent
from aws_lambda_powertools.utilities.typing import LambdaContext

from deployer import runtime
from deployer.events.ecs import (
    ECS_HOOK_STATE_CHANGE,
    ECS_TASK_STATE_CHANGE,
    EcsDeploymentStateChangeEvent,
    EcsHookStateChangeEvent,
    EcsTaskStateChangeEvent,
)
from deployer.flow.deployment import on_deployment, on_hook, on_task_stopped

logger = Logger()
tracer = Tracer(patch_modules=runtime.TRACED_MODULES)
metrics = Metrics()
# EventBridge delivers at least once: the same event id is handled once (docs/design.md invariant 1).
persistence = runtime.idempotency_store()
idempotency = IdempotencyConfig(event_key_jmespath="id", raise_on_no_idempotency_key=False)


@logger.inject_lambda_context(log_event=False)
@tracer.capture_lambda_handler
@metrics.log_metrics
@idempotent(config=idempotency, persistence_store=persistence)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and event.get("detail-type") == ECS_HOOK_STATE_CHANGE:
        return runtime.run(logger, metrics, EcsHookStateChangeEvent, event, lambda e: on_hook(e, runtime.deps()))
    if isinstance(event, dict) and event.get("detail-type") == ECS_TASK_STATE_CHANGE:
        return runtime.run(
            logger, metrics, EcsTaskStateChangeEvent, event, lambda e: on_task_stopped(e, runtime.deps())
        )
    return runtime.run(
        logger, metrics, EcsDeploymentStateChangeEvent, event, lambda e: on_deployment(e, runtime.deps())
    )
