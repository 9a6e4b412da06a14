"""on_build: a finished CodeBuild build records the image and deploys the first stage."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent
from aws_lambda_powertools.utilities.typing import LambdaContext

from deployer import runtime
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.flow.build import on_build

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
    return runtime.run(logger, metrics, CodeBuildStateChangeEvent, event, lambda e: on_build(e, runtime.deps()))
