"""One owner at a time for a directory: an exclusive `flock` on a lock file that also names the
owner (pid and command), so a second `deployer local up` (or `make demo`) in the same checkout
refuses with the first one's pid instead of truncating its moto log, rewriting its git remote's
hook and deleting its state file.

The kernel releases an flock when its holder exits, however it exits (SIGKILL included): a lock
file left by a dead process is taken over at once, with no stale-pid guessing and no race
between two starting at the same moment. The descriptor is close-on-exec, so no child process
(moto server, a function worker) can keep the lock alive after the owner is gone.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Self

__all__ = ["AlreadyRunning", "PidLock"]

_HOLDER_WAIT_SECONDS = 2.0
"""How long to wait for a holder that has just taken the lock to write its pid."""


class AlreadyRunning(RuntimeError):
    """Another live process holds the lock."""

    def __init__(self, path: Path, pid: int | None, command: str | None) -> None:
        self.path = path
        self.pid = pid
        self.command = command
        who = f"pid {pid}" if pid else "pid unknown"
        what = f", `{command}`" if command else ""
        stop = f"stop it with Ctrl-C or `kill {pid}`" if pid else f"stop the process holding {path}"
        super().__init__(f"already running ({who}{what}; lock {path}): {stop}, then try again")


class PidLock:
    """`PidLock(path, command).acquire()` or `with PidLock(...)`: hold `path` until `release()`."""

    def __init__(self, path: Path, command: str) -> None:
        self.path = Path(path)
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> Self:
        """Take the lock, or raise AlreadyRunning naming the live holder. Never blocks for long."""
        if self._fd is not None:
            return self
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, command = _holder(fd)
            os.close(fd)
            raise AlreadyRunning(self.path, pid, command) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps({"pid": os.getpid(), "command": self.command}) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (the file stays: removing it would let two processes lock two files)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> Self:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def _holder(fd: int) -> tuple[int | None, str | None]:
    """The pid and command the holder wrote; it may be writing them right now, so wait a little."""
    deadline = time.monotonic() + _HOLDER_WAIT_SECONDS
    while True:
        try:
            data = json.loads(os.pread(fd, 4096, 0) or b"null")
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("pid"), int):
            command = data.get("command")
            return int(data["pid"]), str(command) if command else None
        if time.monotonic() > deadline:
            return None, None
        time.sleep(0.05)
