"""`deployer status --watch`: follow releases until each has ended or waits for a person.

Every `interval` seconds it reads each watched release once (one GetItem; nothing else per tick)
and shows what changed:

- on a terminal, the status table of the watched releases, redrawn in place, with a footer that
  says when it last read;
- otherwise (a pipe, a CI log), one line per change, each with its UTC time, so a log reads as
  the release's history.

It stops when every watched release is settled: ended (RELEASED, or failed, rejected, expired,
superseded, refused) or AWAITING_APPROVAL (a person must act; the line says where). The exit status
says how it ended: 0 every release RELEASED, 1 one ended otherwise, 3 none failed but one waits for
an approval (`EXIT_*` below).

Read-only, like `deployer status`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, TextIO

from deployer.releases.model import Release, ReleaseState, ServiceRecord

__all__ = [
    "EXIT_FAILED",
    "EXIT_RELEASED",
    "EXIT_WAITING",
    "change_line",
    "exit_status",
    "settled",
    "watch",
]

EXIT_RELEASED: Final = 0
EXIT_FAILED: Final = 1
EXIT_WAITING: Final = 3
CURSOR_UP_AND_CLEAR: Final = "\x1b[{lines}F\x1b[J"  # to the start of the frame's first line, then clear below


def short_id(release: Release) -> str:
    return f"{release.pipeline}@{release.commit[:12]}" if not release.is_rollback else release.release_id


def _key(release: Release) -> tuple[object, ...]:
    """What counts as a change worth a line: the state, the stage, the reason, each stage's state
    (and each of its services', for a stage of several)."""
    stages = tuple(
        (name, rec.state.value, rec.rolled_back, tuple((s.service, s.state.value) for s in rec.services or ()))
        for name, rec in release.stages.items()
    )
    return (release.state, release.stage, release.reason, stages)


def stages_text(release: Release, stage_order: Sequence[str] = ()) -> str:
    names = list(dict.fromkeys([*stage_order, *release.stages])) if not release.is_rollback else list(release.stages)
    parts = []
    for name in names:
        record = release.stages.get(name)
        if record is None:
            label = (
                "awaiting approval"
                if release.state is ReleaseState.AWAITING_APPROVAL and release.stage == name
                else "—"
            )
        elif record.state.value == "FAILED" and record.rolled_back:
            label = "FAILED, rolled back"
        else:
            label = record.state.value
        if record is not None and record.services is not None and record.state.value != "DEPLOYED":
            # a stage of several services, while it deploys or once it failed: where each one stands
            label += " (" + ", ".join(f"{s.service} {_service_label(s)}" for s in record.services) + ")"
        parts.append(f"{name} {label}")
    return " · ".join(parts)


def _service_label(service: ServiceRecord) -> str:
    if service.undone == "stopped" or (service.rolled_back and service.state.value == "FAILED"):
        return "rolled back"
    if service.undone == "updated":
        return "put back"
    return service.state.value


def change_line(release: Release, at: datetime, stage_order: Sequence[str] = (), link: str | None = None) -> str:
    """`12:37:05Z web@cbe1d4ff7673 DEPLOYING dev [dev DEPLOYING · prod —]: registered web:3`."""
    where = f" {release.stage}" if release.stage else ""
    stages = stages_text(release, stage_order)
    line = f"{at.astimezone(UTC):%H:%M:%S}Z {short_id(release)} {release.state.value}{where}"
    if stages:
        line += f" [{stages}]"
    if release.reason:
        line += f": {' '.join(release.reason.split())}"
    if link and release.state is ReleaseState.AWAITING_APPROVAL:
        line += f" (approve: {link})"
    return line


def settled(release: Release) -> bool:
    return release.state.terminal or release.state is ReleaseState.AWAITING_APPROVAL


def exit_status(releases: Sequence[Release]) -> int:
    if any(r.state.terminal and r.state is not ReleaseState.RELEASED for r in releases):
        return EXIT_FAILED
    if any(r.state is ReleaseState.AWAITING_APPROVAL for r in releases):
        return EXIT_WAITING
    return EXIT_RELEASED


def ending_line(releases: Sequence[Release]) -> str:
    code = exit_status(releases)
    if code == EXIT_FAILED:
        ended = ", ".join(
            f"{short_id(r)} {r.state.value}"
            for r in releases
            if r.state.terminal and r.state is not ReleaseState.RELEASED
        )
        return f"Ended: {ended} (exit {code})"
    if code == EXIT_WAITING:
        waiting = ", ".join(
            f"{short_id(r)} for {r.stage}" for r in releases if r.state is ReleaseState.AWAITING_APPROVAL
        )
        return f"Waiting for an approval: {waiting} (exit {code})"
    return f"Released: {', '.join(short_id(r) for r in releases)} (exit {code})"


@dataclass
class Watcher:
    """The loop, with its clock, sleep and output given (the tests drive them)."""

    read: Callable[[], list[Release]]
    out: TextIO
    tty: bool
    interval: float
    sleep: Callable[[float], None]
    now: Callable[[], datetime]
    stage_order: Callable[[Release], Sequence[str]]
    frame: Callable[[list[Release], datetime], str]  # the table a terminal shows (status's render)
    link: Callable[[Release], str | None] = lambda _release: None
    reads: int = 0

    def run(self) -> int:
        seen: dict[str, tuple[object, ...]] = {}
        drawn = 0
        while True:
            releases = self.read()
            self.reads += 1
            moment = self.now()
            done = all(settled(r) for r in releases)
            if self.tty:
                text = self.frame(releases, moment)
                footer = (
                    f"read {moment.astimezone(UTC):%H:%M:%S} UTC · every {self.interval:g} s · Ctrl-C stops watching"
                    if not done
                    else f"read {moment.astimezone(UTC):%H:%M:%S} UTC"
                )
                frame = text.rstrip("\n") + "\n" + footer + "\n"
                if drawn:
                    self.out.write(CURSOR_UP_AND_CLEAR.format(lines=drawn))
                self.out.write(frame)
                drawn = frame.count("\n")
            else:
                for release in releases:
                    key = _key(release)
                    if seen.get(release.release_id) != key:
                        seen[release.release_id] = key
                        link = self.link(release) if release.state is ReleaseState.AWAITING_APPROVAL else None
                        self.out.write(change_line(release, moment, self.stage_order(release), link) + "\n")
            if done:
                if self.tty:
                    for release in releases:
                        link = self.link(release) if release.state is ReleaseState.AWAITING_APPROVAL else None
                        if link:
                            self.out.write(f"{short_id(release)} waits for approval of {release.stage}: {link}\n")
                self.out.write(ending_line(releases) + "\n")
                self.out.flush()
                return exit_status(releases)
            self.out.flush()
            self.sleep(self.interval)


def watch(
    read: Callable[[], list[Release]],
    *,
    out: TextIO,
    tty: bool,
    interval: float,
    sleep: Callable[[float], None],
    now: Callable[[], datetime],
    stage_order: Callable[[Release], Sequence[str]],
    frame: Callable[[list[Release], datetime], str],
    link: Callable[[Release], str | None] = lambda _release: None,
) -> int:
    return Watcher(read, out, tty, interval, sleep, now, stage_order, frame, link).run()
