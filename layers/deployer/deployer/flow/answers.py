"""What the Slack user who clicked is told once the work is done (the interaction's response_url):
one line per decision or rollback, in words."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from deployer.deps import Deps
from deployer.errors import ConfigError
from deployer.flow.common import Result
from deployer.outcomes import Outcome

# -- answering the Slack user who clicked --------------------------------------------------------

_DECISION_WORDS: dict[str, str] = {
    Outcome.DEPLOYING: ":rocket: {where} is deploying now",
    Outcome.ALREADY_RUNNING: ":rocket: {where} is already deploying",
    Outcome.QUEUED: ":hourglass_flowing_sand: {where} deploys as soon as its ECS service is free",
    Outcome.BEFORE_TASK: (
        ":hourglass_flowing_sand: {where} runs its before-task first; it deploys when the task exits 0"
    ),
    Outcome.SUPERSEDED: ":fast_forward: a newer release took {where} over: this one stops here",
    Outcome.CONTINUED: ":arrow_forward: ECS continues the paused deployment of {where}",
    Outcome.REJECTED: ":no_entry: {where} is not deployed: the release ends REJECTED",
    Outcome.DUPLICATE: ":information_source: nothing more to do for {where}",
    Outcome.IGNORED: ":information_source: nothing was done for {where}",
    Outcome.INVALID_CONFIG: ":x: {where} cannot be deployed: the published configuration changed",
    Outcome.FAILED: ":x: {where} could not be applied",
}
_ROLLBACK_WORDS: dict[str, str] = {
    Outcome.STOPPING: ":rewind: Rolling back {where}",
    Outcome.DEPLOYING: ":rewind: Rolling back {where}",
    Outcome.QUEUED: ":rewind: Rolling back {where} as soon as its ECS service is free",
    Outcome.ALREADY_RUNNING: ":rewind: Rolling back {where}",
    Outcome.CANCELLED: ":rewind: Rolled back {where} before any of its services was updated",
    Outcome.ALREADY_ROLLING_BACK: ":information_source: {where} is already rolling back",
    Outcome.NOTHING_TO_ROLL_BACK: ":information_source: Nothing to roll back in {where}",
    Outcome.IGNORED: ":no_entry: {where} was not rolled back",
}
_FOLLOWED = frozenset(
    {
        Outcome.STOPPING,
        Outcome.DEPLOYING,
        Outcome.QUEUED,
        Outcome.ALREADY_RUNNING,
        Outcome.ALREADY_ROLLING_BACK,
        Outcome.CANCELLED,
    }
)


def _answering(detail: Any, deps: Deps, handle: Callable[[], Result], words: Callable[[Any, Result], str]) -> Result:
    """Run `handle`, then answer the Slack user who clicked through the interaction's response_url
    (ephemeral: the release's own message follows the release through chat.update). A fault
    EventBridge retries answers nothing (the retry will); a configuration error says why, then
    goes on to the handler as before. The response_url is never logged or returned."""
    url = getattr(detail, "response_url", None)
    if not url or deps.slack is None:
        return handle()
    from deployer.slack import escape_mrkdwn

    try:
        outcome = handle()
    except ConfigError as exc:
        deps.slack.answer(url, f":x: Nothing was done: {escape_mrkdwn(_cut(str(exc)))}. Tell the platform team.")
        raise
    deps.slack.answer(url, words(detail, outcome))
    return outcome


def _where(detail: Any) -> str:
    from deployer.slack import escape_mrkdwn

    return f"*{escape_mrkdwn(detail.stage)}* of *{escape_mrkdwn(detail.pipeline)}*"


def _why(outcome: Result) -> str:
    """The outcome's own explanation, escaped, as ` (...)`; empty when it has none."""
    from deployer.slack import escape_mrkdwn

    reason = outcome.get("reason") or outcome.get("detail")
    return f" ({escape_mrkdwn(_cut(str(reason)))})" if reason else ""


def _decision_words(detail: Any, outcome: Result) -> str:
    """`:white_check_mark: Approved by <@U…> at …. :rocket: *prod* of *web* is deploying now (…).`"""
    from deployer.slack import decision_text

    kind = str(outcome.get("outcome"))
    emoji = ":white_check_mark:" if detail.decision == "approve" else ":no_entry_sign:"
    said = decision_text(detail.decision, detail.decided_by.user or "someone", detail.decided_at)
    what = _DECISION_WORDS.get(kind, ":warning: {where}: " + kind).format(where=_where(detail))
    return f"{emoji} {said}. {what}{_why(outcome)}."


def _rollback_words(detail: Any, outcome: Result) -> str:
    """`:rewind: Rolling back *prod* of *web* (…). Follow it with `deployer status --pipeline web`.`"""
    from deployer.slack import escape_mrkdwn

    kind = str(outcome.get("outcome"))
    what = _ROLLBACK_WORDS.get(kind, ":warning: Rollback of {where}: " + kind).format(where=_where(detail))
    follow = (
        f" Follow it with `deployer status --pipeline {escape_mrkdwn(detail.pipeline)}`." if kind in _FOLLOWED else ""
    )
    return f"{what}{_why(outcome)}.{follow}"


def _cut(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
