"""What the flow did with an event: the "outcome" of every result a handler returns, logs and
prints (`{"outcome": Outcome.DEPLOYING, "stage": "prod", ...}`).

A `StrEnum`, so the JSON and the log lines carry the same strings as ever ("deploying"), while
the code produces and compares members, which mypy checks. The exceptions that end an event
become outcomes in one place, `deployer.runtime.run` (REFUSED, INVALID_CONFIG).
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    # a push (flow.push) and a build (flow.build)
    BUILD_STARTED = "build_started"
    BUILD_FAILED = "build_failed"
    BUILT = "built"
    # a stage (stages.StageDeployer, flow.progress)
    DEPLOYING = "deploying"
    QUEUED = "queued"
    ALREADY_RUNNING = "already_running"
    BEFORE_TASK = "before_task"
    AWAITING_APPROVAL = "awaiting_approval"
    RELEASED = "released"
    # ECS's events (flow.deployment)
    SERVICE_DEPLOYED = "service_deployed"
    DEPLOYED = "deployed"
    ROLLED_BACK = "rolled_back"
    ROLLING_BACK = "rolling_back"
    BEFORE_TASK_SUCCEEDED = "before_task_succeeded"
    BEFORE_TASK_FAILED = "before_task_failed"
    TIMED_OUT = "timed_out"
    # approvals (flow.approval)
    CONTINUED = "continued"
    REJECTED = "rejected"
    # rollbacks (flow.rollback)
    STOPPING = "stopping"
    CANCELLED = "cancelled"
    ALREADY_ROLLING_BACK = "already_rolling_back"
    NOTHING_TO_ROLL_BACK = "nothing_to_roll_back"
    # the reconciler's sweep
    RESUMED = "resumed"
    HANDED_OVER = "handed_over"
    MOVED_ON = "moved_on"
    ERROR = "error"
    # any event
    SUPERSEDED = "superseded"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    FAILED = "failed"
    INVALID_CONFIG = "invalid_config"
    # the handlers (deployer.runtime, on_webhook)
    REFUSED = "refused"
    IN_PROGRESS = "in_progress"
