"""An injected clock: what the code under test reads the time from (`Approvals(clock=...)`,
`make_world(clock=...)`, the `clock` fixture), so a test moves time instead of reaching into a
private attribute."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class Clock:
    """The real time until a test sets `now` (or calls `advance`): then that time, until moved
    again. `queued` holds the times of the next calls, one each (then it stays at the last)."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now
        self.queued: list[datetime] = []

    def __call__(self) -> datetime:
        if self.queued:
            self.now = self.queued.pop(0)
        return self.now if self.now is not None else datetime.now(UTC)

    def advance(self, **delta: float) -> datetime:
        """Move the clock forward by `timedelta(**delta)` from what it says now; the new time."""
        self.now = self() + timedelta(**delta)
        return self.now
