"""Every release transition published as "Release State Change" on the deployer's bus."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from deployer.events.deployer_bus import (
    ReleaseStateChangeDetail,
    put_events_entry,
)
from deployer.flow.common import log
from deployer.releases.model import ReleaseState, Transition

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient


class BusPublisher:
    """Publishes every release transition as "Release State Change" on the deployer's bus.
    A failure to publish is logged and never undoes the transition."""

    def __init__(self, events: EventBridgeClient, bus_name: str) -> None:
        self._events = events
        self._bus = bus_name

    def __call__(self, change: Transition) -> None:
        release = change.release
        record = release.stages.get(change.stage or "") if change.to_state is ReleaseState.DEPLOYED else None
        detail = ReleaseStateChangeDetail(
            release_id=release.release_id,
            pipeline=release.pipeline,
            commit=release.commit,
            stage=change.stage,
            from_state=change.from_state.value if change.from_state else None,
            to_state=change.to_state.value,
            reason=change.reason,
            at=datetime.now(UTC),
            schedules=record.schedules if record is not None and record.schedules else None,
            cleanup=release.cleanup if change.to_state is ReleaseState.RELEASED and release.cleanup else None,
        )
        try:
            response = self._events.put_events(Entries=[put_events_entry(detail, event_bus_name=self._bus)])
            if response.get("FailedEntryCount"):
                log.error("Release State Change not published", extra={"release_id": release.release_id})
        except Exception:
            log.exception("Release State Change not published", extra={"release_id": release.release_id})
