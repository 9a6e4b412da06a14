"""One stop path for every long-running command: SIGINT (Ctrl-C), SIGTERM and SIGHUP (the terminal
went away) all end the command the same way, with one line on stderr and no traceback.

`stop_on_signals()` turns the first of those signals into `Stopped`, raised in the main thread
wherever it is waiting (a sleep, a socket, a prompt), so `finally` blocks stop what the command
started. Repeated signals while it stops are ignored: the stop path is bounded in time, and a
second Ctrl-C must not cut it in half and leave a moto server behind. `shielded()` holds a
signal back until a block that must not be interrupted (RegisterTaskDefinition then
UpdateService, a rollback's writes, stopping child processes) has finished.

The exit status is the shell's convention for a process ended by a signal: 128 + its number
(130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

TYPE_CHECKING = False  # `deployer plan` starts without `typing` (see deployer.rollout.model)
if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["STOP_SIGNALS", "Stopped", "run_stoppable", "shielded", "stop_on_signals"]

STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(BaseException):
    """The command was asked to stop by a signal. A BaseException, as KeyboardInterrupt is, so
    `except Exception` on the way up never swallows it. `detail` says what goes on without the
    command (an ECS deployment, a rollback) and how to follow it."""

    def __init__(self, signum: int, detail: str | None = None) -> None:
        super().__init__(signum)
        self.signum = signum
        self.detail = detail

    @property
    def name(self) -> str:
        try:
            return signal.Signals(self.signum).name
        except ValueError:
            return f"signal {self.signum}"

    @property
    def exit_status(self) -> int:
        return 128 + self.signum

    def line(self, command: str) -> str:
        """`<command>: stopped by SIGINT[; <detail>]`."""
        return f"{command}: stopped by {self.name}" + (f"; {self.detail}" if self.detail else "")


class _Catcher:
    """The installed handler's state: the first signal, and how many shields are up."""

    def __init__(self) -> None:
        self.received: int | None = None
        self.raised = False
        self.shields = 0

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if self.received is not None:
            return  # already stopping: the stop path runs to its end
        self.received = signum
        if self.shields == 0:
            self.raised = True
            raise Stopped(signum)


_catcher: _Catcher | None = None


@contextmanager
def stop_on_signals() -> Iterator[bool]:
    """Within the block, SIGINT, SIGTERM and SIGHUP raise `Stopped` in the main thread (once).
    The previous handlers come back afterwards. Outside the main thread (where Python cannot
    install handlers) it does nothing. Nested uses share the outer handler; the block gets True
    only in the outermost use, the one that reports the stop (an inner one lets it through)."""
    global _catcher  # noqa: PLW0603 - one handler per process, as signal handlers are
    if _catcher is not None or threading.current_thread() is not threading.main_thread():
        yield False
        return
    catcher = _Catcher()
    previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    for signum in STOP_SIGNALS:
        signal.signal(signum, catcher)
    _catcher = catcher
    try:
        yield True
    finally:
        _catcher = None
        for signum, handler in previous.items():
            signal.signal(signum, handler)


@contextmanager
def shielded() -> Iterator[None]:
    """A block a stop signal does not cut: a signal that arrives inside is raised as `Stopped`
    when the block ends (unless the block raised something else first)."""
    catcher = _catcher
    if catcher is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    catcher.shields += 1
    try:
        yield
    finally:
        catcher.shields -= 1
    if catcher.shields == 0 and catcher.received is not None and not catcher.raised:
        catcher.raised = True
        raise Stopped(catcher.received)


def run_stoppable(command: str, body: Callable[[], int], *, stderr: TextIO | None = None) -> int:
    """Run `body` under `stop_on_signals()`; a stop prints its one line (`<command>: stopped by
    SIGTERM...`) on stderr and returns 128 + the signal's number."""
    with stop_on_signals() as outermost:
        try:
            return int(body())
        except Stopped as stop:
            if not outermost:
                raise
            print(stop.line(command), file=stderr or sys.stderr, flush=True)
            return stop.exit_status
