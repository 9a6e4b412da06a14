"""AWS's documented examples, verbatim, with the page each comes from: the tests that rely on a
documented shape parse these, not only our own samples in events/."""

from __future__ import annotations

__all__ = ["AWS_HOOK_AWAITING_ACTION_EXAMPLE", "AWS_PAUSE_PAGE_EXAMPLE"]

# Amazon ECS Developer Guide, "Amazon ECS service deployment hook state change events"
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_hook_state_change_events.html):
# "Amazon ECS sends hook state change events with the detail type ECS Hook State Change. These
# events are emitted when a deployment lifecycle hook changes status." Its "Example hook awaiting
# action event", verbatim:
AWS_HOOK_AWAITING_ACTION_EXAMPLE = """
{
    "version": "0",
    "id": "3329f79b-3dca-07f8-b1c2-5fe99f0b5e87",
    "detail-type": "ECS Hook State Change",
    "source": "aws.ecs",
    "account": "123456789012",
    "time": "2026-03-05T15:54:41Z",
    "region": "us-west-2",
    "resources": ["arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/0EYSiB0qap8xf0N76FsbE"],
    "detail": {
        "eventType": "INFO",
        "eventName": "HOOK_AWAITING_ACTION",
        "hookId": "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw",
        "hookType": "PAUSE",
        "expiresAt": "2026-03-05T16:04:41Z",
        "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
        "clusterArn": "arn:aws:ecs:us-west-2:123456789012:cluster/my-cluster",
        "serviceArn": "arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service",
        "serviceDeploymentArn": "arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/0EYSiB0qap8xf0N76FsbE",
        "updatedAt": "2026-03-05T15:54:41.618059641Z"
    }
}
"""  # noqa: E501 - verbatim
# Amazon ECS Developer Guide, "Pause hooks for Amazon ECS service deployments", section "EventBridge
# events" (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/pause-lifecycle-hooks.html):
# "The following example shows an EventBridge event emitted when a pause hook is awaiting action",
# verbatim (no resources there):
AWS_PAUSE_PAGE_EXAMPLE = """
{
    "version": "0",
    "id": "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111",
    "detail-type": "ECS Hook State Change",
    "source": "aws.ecs",
    "account": "123456789012",
    "time": "2024-01-15T10:00:00Z",
    "region": "us-west-2",
    "detail": {
        "eventType": "INFO",
        "eventName": "HOOK_AWAITING_ACTION",
        "hookId": "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw",
        "hookType": "PAUSE",
        "expiresAt": "2024-01-15T12:00:00Z",
        "lifecycleStage": "POST_TEST_TRAFFIC_SHIFT",
        "clusterArn": "arn:aws:ecs:us-west-2:123456789012:cluster/my-cluster",
        "serviceArn": "arn:aws:ecs:us-west-2:123456789012:service/my-cluster/my-service",
        "serviceDeploymentArn": "arn:aws:ecs:us-west-2:123456789012:service-deployment/my-cluster/my-service/EZe5RNVLH6PPzHXINuP28",
        "updatedAt": "2024-01-15T10:00:00Z"
    }
}
"""  # noqa: E501 - verbatim
