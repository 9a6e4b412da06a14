"""ECS service deployments: the newer API (2024-2025) that lets a deployment pause at a lifecycle
stage, be continued or rolled back, and be stopped with a rollback.

- A stage whose approval says `at: POST_TEST_TRAFFIC_SHIFT` (say) is deployed with a PAUSE
  lifecycle hook there (`pause_hook`). ECS pauses the deployment, emits "ECS Hook State Change"
  with eventName HOOK_AWAITING_ACTION, and waits for ContinueServiceDeployment, or for the hook's
  timeout, when it takes the timeout action (ECS developer guide, "Pause hooks for Amazon ECS
  service deployments"; REFERENCE.md "ECS rolling update").
- The event names the service deployment, the hook (hookId, hookType), its lifecycle stage and
  expiry (ECS developer guide, "Amazon ECS service deployment hook state change events").
  `describe` still reads that one service deployment before the deployer acts: the hook's status
  now (the event may come late or twice) and its timeout action, which the event does not carry.
  `in_flight` finds the deployment a rollback stops.
- `decide` answers a paused hook (CONTINUE or ROLLBACK); `stop_with_rollback` stops an in-flight
  deployment and rolls it back (StopServiceDeployment stopType ROLLBACK).

moto does not implement these calls (REFERENCE.md: HTTP 500 "not implemented"); the unit tests
assert the exact requests with botocore's Stubber, and the local stack answers them through its
simulated ECS (`deployer_local.simulate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from deployer import aws

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

__all__ = [
    "ACTIVE_STATUSES",
    "HOOK_STATE_CHANGE",
    "PAUSE_TIMEOUT_ACTION",
    "HookView",
    "ServiceDeploymentView",
    "decide",
    "describe",
    "describe_one",
    "in_flight",
    "pause_hook",
    "paused_hook",
    "stop_with_rollback",
    "with_pause_hook",
]

HOOK_STATE_CHANGE: Final = "ECS Hook State Change"
ACTIVE_STATUSES: Final = ("PENDING", "IN_PROGRESS")
# What ECS does when nobody answers a pause in time: roll back. An approval nobody gave must never
# let a deployment through (docs/design.md: prod only after an approval).
PAUSE_TIMEOUT_ACTION: Final = "ROLLBACK"
MAX_HOOK_MINUTES: Final = 20160  # DeploymentLifecycleHookDuration in botocore's ECS model: 1..20160

Action = Literal["CONTINUE", "ROLLBACK"]


@dataclass(frozen=True)
class HookView:
    """One entry of DescribeServiceDeployments' lifecycleHookDetails."""

    hook_id: str
    target_type: str
    status: str  # AWAITING_ACTION | IN_PROGRESS | SUCCEEDED | FAILED | TIMED_OUT
    expires_at: datetime | None
    timeout_action: str | None

    @property
    def awaiting_action(self) -> bool:
        return self.target_type == "PAUSE" and self.status == "AWAITING_ACTION"

    @property
    def timed_out(self) -> bool:
        return self.target_type == "PAUSE" and self.status == "TIMED_OUT"


@dataclass(frozen=True)
class ServiceDeploymentView:
    """What DescribeServiceDeployments says about one service deployment."""

    arn: str
    status: str
    lifecycle_stage: str | None
    status_reason: str | None
    target_revision_arn: str | None
    hooks: tuple[HookView, ...]
    created_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES


def pause_hook(at: str, timeout_minutes: int) -> dict[str, Any]:
    """The PAUSE lifecycle hook that makes ECS wait at `at` for an approval, rolling back when
    nobody answers within `timeout_minutes` (clamped to ECS's 1..20160)."""
    minutes = max(1, min(MAX_HOOK_MINUTES, int(timeout_minutes)))
    return {
        "targetType": "PAUSE",
        "lifecycleStages": [at],
        "timeoutConfiguration": {"timeoutInMinutes": minutes, "action": PAUSE_TIMEOUT_ACTION},
    }


def with_pause_hook(configuration: dict[str, Any], at: str, timeout_minutes: int) -> dict[str, Any]:
    """`configuration` (UpdateService's deploymentConfiguration) with the approval's PAUSE hook
    added beside the stage's own hooks; the input is not modified."""
    hooks = [dict(h) for h in configuration.get("lifecycleHooks", [])]
    hooks.append(pause_hook(at, timeout_minutes))
    return {**configuration, "lifecycleHooks": hooks}


def _hook(raw: dict[str, Any]) -> HookView:
    return HookView(
        hook_id=str(raw.get("hookId", "")),
        target_type=str(raw.get("targetType", "")),
        status=str(raw.get("status", "")),
        expires_at=raw.get("expiresAt"),
        timeout_action=raw.get("timeoutAction"),
    )


def _view(raw: dict[str, Any]) -> ServiceDeploymentView:
    target = raw.get("targetServiceRevision") or {}
    return ServiceDeploymentView(
        arn=str(raw["serviceDeploymentArn"]),
        status=str(raw.get("status", "")),
        lifecycle_stage=raw.get("lifecycleStage"),
        status_reason=raw.get("statusReason"),
        target_revision_arn=target.get("arn"),
        hooks=tuple(_hook(h) for h in raw.get("lifecycleHookDetails", [])),
        created_at=raw.get("createdAt"),
    )


def describe_one(raw: dict[str, Any]) -> ServiceDeploymentView:
    """One ServiceDeployment of DescribeServiceDeployments' answer, as a view."""
    return _view(raw)


def describe(ecs: ECSClient, arns: list[str]) -> list[ServiceDeploymentView]:
    """DescribeServiceDeployments for `arns` (at most 20 per call, ECS's limit)."""
    views: list[ServiceDeploymentView] = []
    for start in range(0, len(arns), 20):
        batch = arns[start : start + 20]
        response = aws.call("DescribeServiceDeployments", ecs.describe_service_deployments, serviceDeploymentArns=batch)
        views.extend(_view(dict(d)) for d in response.get("serviceDeployments", []))
    return views


def in_flight(ecs: ECSClient, cluster: str, service: str) -> ServiceDeploymentView | None:
    """The service's deployment still PENDING or IN_PROGRESS (the newest if ECS lists several),
    described with its lifecycle hooks; None when nothing is in flight."""
    response = aws.call(
        "ListServiceDeployments",
        ecs.list_service_deployments,
        cluster=cluster,
        service=service,
        status=list(ACTIVE_STATUSES),
    )
    briefs = sorted(response.get("serviceDeployments", []), key=lambda b: _moment(b.get("createdAt")), reverse=True)
    if not briefs:
        return None
    views = describe(ecs, [briefs[0]["serviceDeploymentArn"]])
    return views[0] if views else None


def _moment(value: object) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def paused_hook(view: ServiceDeploymentView) -> HookView | None:
    """The PAUSE hook of `view` that waits for ContinueServiceDeployment, if any."""
    return next((h for h in view.hooks if h.awaiting_action), None)


def decide(ecs: ECSClient, service_deployment_arn: str, hook_id: str, action: Action) -> None:
    """ContinueServiceDeployment: CONTINUE goes on to the next lifecycle stage, ROLLBACK returns
    the service to its previous revision."""
    aws.call(
        f"ContinueServiceDeployment {action}",
        # botocore has it; the pinned mypy-boto3-ecs stubs predate it
        cast("Any", ecs).continue_service_deployment,
        serviceDeploymentArn=service_deployment_arn,
        hookId=hook_id,
        action=action,
    )


def stop_with_rollback(ecs: ECSClient, service_deployment_arn: str) -> None:
    """StopServiceDeployment with stopType ROLLBACK: ECS stops the deployment and rolls the
    service back to the revision it ran before."""
    aws.call(
        "StopServiceDeployment",
        ecs.stop_service_deployment,
        serviceDeploymentArn=service_deployment_arn,
        stopType="ROLLBACK",
    )
