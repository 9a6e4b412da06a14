"""Telling people: one Slack message per release, posted at its first transition and updated
as it moves (chat.update); the approval buttons while it waits. A Slack failure is logged by the
notifier and never stops a release (the approval link stays in `deployer status`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from deployer.releases.model import Release, ReleaseState, Transition, TransitionListener
from deployer.releases.store import ReleaseStore

if TYPE_CHECKING:
    from deployer.slack import ReleaseView, SlackNotifier, SlackSettings

log = logging.getLogger("deployer")


def fan_out(listeners: Iterable[TransitionListener]) -> TransitionListener:
    """One listener calling each of `listeners`; one failing never stops the others."""
    chosen = list(listeners)

    def notify(change: Transition) -> None:
        for listener in chosen:
            try:
                listener(change)
            except Exception:
                log.exception("transition listener failed", extra={"release_id": change.release.release_id})

    return notify


def view_of(release: Release, region: str | None = None, approval_link: str | None = None) -> ReleaseView:
    """What a Slack message shows of `release`."""
    from deployer.slack import ReleaseView

    context = release.approval_context or {}
    record = release.stages.get(release.stage or "")
    change = None
    if record and record.previous_task_definition_arn and record.task_definition_arn:
        change = (record.previous_task_definition_arn, record.task_definition_arn)
    elif context.get("current_task_definition"):
        change = (str(context["current_task_definition"]), "a new revision with this image")
    service_link = None
    if record and region and record.services is not None:  # several services: the cluster's list of them
        service_link = f"https://{region}.console.aws.amazon.com/ecs/v2/clusters/{record.cluster}/services"
    elif record and region:
        service_link = (
            f"https://{region}.console.aws.amazon.com/ecs/v2/clusters/{record.cluster}/services/{record.service}"
            "/deployments"
        )
    settings_line = record.settings if record and record.settings else context.get("settings_line")
    decided = None
    if release.decided_by:
        by = release.decided_by
        who = f"<@{by['user']}>" if by.get("kind") == "slack" and by.get("user") else "a link holder"
        decided = f"{by.get('decision', 'decided')} by {who} at {by.get('at', '?')}"
    return ReleaseView(
        release_id=release.release_id,
        pipeline=release.pipeline,
        stage=release.stage,
        commit=release.commit,
        state=release.state.value,
        pusher=release.pusher,
        image_uri=release.image_uri,
        image_digest=release.image_digest,
        reason=release.reason,
        task_definition_change=change,
        plan_line=context.get("plan_line"),
        approval_link=approval_link if release.state is ReleaseState.AWAITING_APPROVAL else None,
        approvers=tuple(context.get("approvers", ())),
        log_link=release.log_link,
        service_link=service_link,
        decided_by_text=decided,
        branch=release.branch,
        approval_expires_at=release.approval_expires_at,
        settings_line=str(settings_line) if settings_line else None,
        stage_states=tuple((name, record.state.value) for name, record in release.stages.items()),
        kind=release.kind,
        rollback_of=release.rollback_of,
        requested_by=release.requested_by,
        target_task_definition=release.target_task_definition_arn,
        services=services_lines(release),
        housekeeping=housekeeping_lines(release),
    )


def services_lines(release: Release) -> tuple[str, ...]:
    """A stage of several services, one line each: `worker: worker:3 → worker:4, DEPLOYED` while it
    deploys or after; from the approval context (`web: web:7, 1 wave, peak 6 tasks ...`) while it
    waits for an approval."""
    record = release.stages.get(release.stage or "")
    if record is not None and record.services is not None and release.state is not ReleaseState.AWAITING_APPROVAL:
        lines = []
        for svc in record.services:
            old = (svc.previous_task_definition_arn or "?").rsplit("/", 1)[-1]
            new = (svc.task_definition_arn or "a new revision").rsplit("/", 1)[-1]
            state = svc.state.value + (" (rolled back)" if svc.rolled_back else "")
            lines.append(f"{svc.service}: {old} → {new}, {state}")
        return tuple(lines)
    lines = []
    for entry in (release.approval_context or {}).get("services") or ():
        current = str(entry.get("current_task_definition") or "?").rsplit("/", 1)[-1]
        how = entry.get("plan_line") or entry.get("note") or ""
        lines.append(f"{str(entry.get('service', '?')).rsplit('/', 1)[-1]}: {current}" + (f", {how}" if how else ""))
    return tuple(lines)


def housekeeping_lines(release: Release) -> tuple[str, ...]:
    """`prod: schedule nightly-report: web:3 -> web:4`, `cleanup: deregistered web:1`: what the
    release's stages did with their scheduled tasks, and the old revisions it cleaned up."""
    from deployer.housekeeping import cleanup_text, schedule_texts

    lines = [f"{stage}: {text}" for stage, text in schedule_texts(release)]
    cleanup = cleanup_text(release.cleanup) if release.state is ReleaseState.RELEASED else None
    if cleanup:
        lines.append(f"cleanup: {cleanup}")
    return tuple(lines)


def token_of(link: str | None) -> str | None:
    """The approval token is the last path segment of the approval link."""
    return link.rstrip("/").rsplit("/", 1)[-1] if link else None


class SlackReporter:
    """A transition listener keeping the release's one Slack message up to date."""

    def __init__(
        self,
        notifier: SlackNotifier,
        settings: Callable[[], SlackSettings],
        store: Callable[[], ReleaseStore],
        channel_for: Callable[[str], str | None] = lambda _pipeline: None,
        *,
        region: str | None = None,
        link_for: Callable[[Release], str | None] = lambda _release: None,
    ) -> None:
        self._notifier = notifier
        self._settings = settings
        self._store = store
        self._channel_for = channel_for
        self._region = region
        self._link_for = link_for

    def __call__(self, change: Transition) -> None:
        from deployer import slack

        settings = self._settings()
        if not settings.enabled:
            return
        release = change.release
        link = self._link_for(release) if release.state is ReleaseState.AWAITING_APPROVAL else None
        view = view_of(release, self._region, link)
        if release.state is ReleaseState.AWAITING_APPROVAL:
            blocks = slack.approval_blocks(view, interactive=settings.interactive, approval_token=token_of(link))
        else:
            blocks = slack.status_blocks(view, interactive=settings.interactive)
        text = slack.fallback_text(view)
        if release.slack_channel and release.slack_ts:
            ref = slack.MessageRef(channel=release.slack_channel, ts=release.slack_ts)
            self._notifier.update(ref, blocks, text)
            return
        posted = self._notifier.post(blocks, text, self._channel_for(release.pipeline) or settings.channel)
        if posted is not None:
            self._store().save(release, slack_channel=posted.channel, slack_ts=posted.ts)
