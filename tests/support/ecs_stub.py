"""Answer the ECS service-deployment calls that moto lacks, on a client whose other calls go to moto.

moto 5.2.5 answers ListServiceDeployments, DescribeServiceDeployments, ContinueServiceDeployment
and StopServiceDeployment with HTTP 500 "not implemented" (REFERENCE.md). botocore's Stubber
would take over every call of the client, moto's included, so this does what Stubber does for
those four operations only: each expected call is queued with its exact parameters and its
response, both checked against botocore's ECS model, and answered on botocore's `before-call`
event without any HTTP. An unexpected call, or a call with other parameters, fails the test.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from botocore.awsrequest import AWSResponse
from botocore.validate import validate_parameters

OPERATIONS = (
    "ListServiceDeployments",
    "DescribeServiceDeployments",
    "ContinueServiceDeployment",
    "StopServiceDeployment",
)


class UnexpectedCall(AssertionError):
    pass


@dataclass
class ServiceDeploymentCalls:
    client: Any
    expected: dict[str, deque[tuple[dict[str, Any] | None, dict[str, Any]]]] = field(
        default_factory=lambda: defaultdict(deque)
    )
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        events = self.client.meta.events
        for operation in OPERATIONS:
            events.register_first(f"before-parameter-build.ecs.{operation}", self._check_params)
            events.register_first(f"before-call.ecs.{operation}", self._answer)

    def add(self, operation: str, expected_params: dict[str, Any] | None, response: dict[str, Any]) -> None:
        """Queue one call of `operation`: `expected_params` exactly (None: any), answered with `response`."""
        assert operation in OPERATIONS, operation
        shape = self.client.meta.service_model.operation_model(operation).output_shape
        validate_parameters(response, shape)
        self.expected[operation].append((expected_params, response))

    def _check_params(self, params: dict[str, Any], model: Any, **_: Any) -> None:
        queue = self.expected[model.name]
        if not queue:
            raise UnexpectedCall(f"{model.name}({params}) was not expected")
        expected, _response = queue[0]
        if expected is not None and params != expected:
            raise UnexpectedCall(f"{model.name}: expected {expected}, got {params}")
        self.calls.append((model.name, dict(params)))

    def _answer(self, model: Any, **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        _expected, response = self.expected[model.name].popleft()
        return AWSResponse("https://ecs.stub", 200, {}, None), {"ResponseMetadata": {"HTTPStatusCode": 200}, **response}

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]

    def assert_done(self) -> None:
        left = {name: len(queue) for name, queue in self.expected.items() if queue}
        assert not left, f"expected calls never made: {left}"
