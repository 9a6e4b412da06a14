"""A client's RunTask, DescribeTasks and StopTask answered by the local stack's simulated tasks
(`deployer_local.ecs_tasks.Tasks`), as the local stack's ECS front answers them over HTTP: from the
JSON botocore serialized, the JSON answer parsed by botocore's own JSON parser (so the answers are
checked against botocore's ECS model). moto 5.2.5's RunTask fails on awsvpc tasks."""

from __future__ import annotations

import json
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.parsers import create_parser

from deployer_local.ecs_front import JSON_CONTENT_TYPE, TASK_OPERATIONS, EcsApiError
from deployer_local.ecs_tasks import Tasks


def answered_by_tasks(client: Any, tasks: Tasks) -> Tasks:
    parser = create_parser("json")

    def call(model: Any, params: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        try:
            status, body = 200, tasks.answer(model.name, json.loads(params["body"] or b"{}"))
        except EcsApiError as exc:
            status, body = exc.status, exc.body()
        headers = {"Content-Type": JSON_CONTENT_TYPE}
        raw = {"body": json.dumps(body).encode(), "headers": headers, "status_code": status}
        shape = model.output_shape if status == 200 else None
        parsed = parser.parse(raw, shape)
        return AWSResponse("https://ecs.local", status, headers, None), parsed

    for operation in TASK_OPERATIONS:
        client.meta.events.register_first(f"before-call.ecs.{operation}", call)
    return tasks
