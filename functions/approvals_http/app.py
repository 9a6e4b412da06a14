"""approvals_http (Function URL): the approval page (GET), its decision (POST) and Slack's
interactivity endpoint. Wiring only; the logic is `deployer.approval_http`."""

from __future__ import annotations

import contextlib
import functools
import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import LambdaFunctionUrlResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from deployer import approval_http, runtime
from deployer.approval_http import ApprovalHttp, HttpResult, Request

logger = Logger()
tracer = Tracer(patch_modules=runtime.TRACED_MODULES)
metrics = Metrics()
app = LambdaFunctionUrlResolver()


@functools.cache
def endpoint() -> ApprovalHttp:
    """The production dependencies, once per cold start."""
    settings = runtime.settings()
    return approval_http.build(
        table_name=settings.table_name,
        event_bus_name=settings.event_bus_name,
        signing_key_secret=os.environ["DEPLOYER_SIGNING_KEY_SECRET"],
        slack_secret=os.environ.get("DEPLOYER_SLACK_SECRET", ""),
    )


# Built in the init phase ("Lambda provides an initializer before the handler where you can
# initialize database connections, libraries, and other resources": AWS Lambda Operator Guide,
# "Implementing statelessness in functions"): boto3 and the clients, no AWS call, so the first
# request costs what the next ones do (BENCHMARKS.md, section 8). An environment that cannot be
# built is reported by the requests instead (500, logged), as before.
with contextlib.suppress(Exception):
    endpoint()


def respond(result: HttpResult) -> Response[str]:
    metrics.add_metric(name=result.metric, unit=MetricUnit.Count, value=1)
    return Response(
        status_code=result.status, content_type=result.content_type, body=result.body, headers=dict(result.headers)
    )


def request() -> Request:
    return Request.from_function_url_event(app.current_event.raw_event)


@app.get(approval_http.APPROVAL_PATH)
def show(token: str) -> Response[str]:
    return respond(endpoint().show(token))


@app.post(approval_http.APPROVAL_PATH)
def decide(token: str) -> Response[str]:
    return respond(endpoint().decide_by_link(token, request()))


@app.post(approval_http.SLACK_PATH)
def slack_interaction() -> Response[str]:
    return respond(endpoint().slack_interaction(request()))


@app.not_found
def not_found(_: NotFoundError) -> Response[str]:
    incoming = request()
    return respond(approval_http.not_found(incoming.method, incoming.path))


@app.exception_handler(Exception)  # type: ignore[untyped-decorator]  # Powertools leaves it untyped
def crashed(exc: Exception) -> Response[str]:
    logger.exception("approvals_http failed")
    return respond(approval_http.internal_error())


@logger.inject_lambda_context(log_event=False, correlation_id_path=correlation_paths.LAMBDA_FUNCTION_URL)
@tracer.capture_lambda_handler(capture_response=False)  # the response is a page; keep it out of traces
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
