"""Domain exceptions. Each maps to one outcome in one place (`deployer.runtime.run`; the outcomes
are `deployer.outcomes.Outcome`).

- `BadInput`: malformed or foreign input. Logged once with the event id; never retried.
- `ConfigError`: a pipeline or rollout configuration that is refused. The release ends
  INVALID_CONFIG; never retried.
- `DeploymentError`: something in the account prevents the deployment (service missing,
  container missing from the task definition). The release fails; never retried.
- `TransientError`: a fault worth retrying (throttling, 5xx, a lost race). Raised out of the
  handler so EventBridge retries within the rule's RetryPolicy, then the dead-letter queue.
"""

from __future__ import annotations


class DeployerError(Exception):
    """Base of every error the deployer raises on purpose."""


class BadInput(DeployerError):
    """Input that can never succeed: drop it with one clear log line."""


class ConfigError(DeployerError):
    """A configuration the deployer refuses; `messages` lists every reason."""

    def __init__(self, message: str, messages: list[str] | None = None) -> None:
        super().__init__(message)
        self.messages = messages if messages is not None else [message]


class DeploymentError(DeployerError):
    """The account's resources make this deployment impossible as asked."""


class TransientError(DeployerError):
    """A fault that a retry may fix."""
