"""Run a long-running command as a person runs it, stop it with a signal, and list what it left
running.

A small supervisor process makes itself a Linux child subreaper (PR_SET_CHILD_SUBREAPER): every
process the command starts and leaves behind is re-parented to the supervisor, however deep, so
after the command exits the supervisor can say exactly what is still alive (then kills it). The
command runs in a process group of its own, as a shell's foreground job does: `Ctrl-C` is
`signal(SIGINT, group=True)`, a `kill PID` is `signal(SIGTERM)`, and a closed terminal is
`signal(SIGHUP)`. With `tty=True` its standard input is a pseudo-terminal (a prompt needs one).

    with supervised([...], cwd=tmp_path, env=env) as run:
        run.wait_for("The local stack is up")
        run.signal(signal.SIGTERM)
        result = run.result()
    assert result.left_running == {}
"""

from __future__ import annotations

import json
import os
import signal as signals
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

SUPERVISOR = r"""
import ctypes, json, os, pty, signal, subprocess, sys, time

PR_SET_CHILD_SUBREAPER = 36
spec = json.loads(sys.argv[1])
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit("prctl(PR_SET_CHILD_SUBREAPER) failed: errno %d" % ctypes.get_errno())
stdin = subprocess.DEVNULL
if spec["tty"]:
    master, stdin = pty.openpty()
with open(spec["stdout"], "wb") as out, open(spec["stderr"], "wb") as err:
    command = subprocess.Popen(
        spec["command"], cwd=spec["cwd"], env=spec["env"], stdin=stdin, stdout=out,
        stderr=subprocess.STDOUT if spec["merge"] else err, start_new_session=True,
    )
with open(spec["pid"], "w") as pid_file:
    pid_file.write(str(command.pid))
deadline = time.monotonic() + spec["timeout"]
timed_out = False
while command.poll() is None:
    if os.path.exists(spec["trigger"]):
        with open(spec["trigger"]) as trigger:
            number, group = json.load(trigger)
        os.unlink(spec["trigger"])
        try:
            (os.killpg if group else os.kill)(command.pid, number)
        except ProcessLookupError:
            pass
    if time.monotonic() > deadline:
        timed_out = True
        try:
            os.killpg(command.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.05)
code = command.wait()


def children():
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat, open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                state, ppid = stat.read().rsplit(")", 1)[1].split()[:2]
                line = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if int(ppid) == os.getpid() and state != "Z":
            found[int(entry)] = line
    return found


def reap():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


grace = time.monotonic() + 3  # a process in the middle of exiting is not left behind
while children() and time.monotonic() < grace:
    reap()
    time.sleep(0.1)
left = children()
for _ in range(20):
    alive = children()
    if not alive:
        break
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(0.1)
    reap()
with open(spec["report"], "w") as report:
    json.dump({"exit": code, "timed_out": timed_out, "left_running": left}, report)
"""


@dataclass(frozen=True)
class Result:
    exit: int
    """The command's exit status (negative: killed by that signal, as subprocess reports it)."""
    timed_out: bool
    left_running: dict[str, str]
    """pid -> command line of every process still alive after the command exited."""
    stdout: str
    stderr: str


class Running:
    """A supervised command: read what it printed, send it one signal, then collect the result."""

    def __init__(self, work: Path, supervisor: subprocess.Popen[bytes]) -> None:
        self._work = work
        self._supervisor = supervisor

    @property
    def pid(self) -> int:
        path = self._work / "pid"
        deadline = time.monotonic() + 10
        while not path.exists() or not path.read_text():
            if time.monotonic() > deadline:
                raise AssertionError("the supervisor did not start the command")
            time.sleep(0.05)
        return int(path.read_text())

    def output(self, stream: str = "stdout") -> str:
        path = self._work / stream
        return path.read_bytes().decode(errors="replace") if path.exists() else ""

    def wait_for(self, text: str, stream: str = "stdout", timeout: float = 60) -> None:
        """Wait until the command printed `text` on `stream`; fail (with its output) if it exits first."""
        deadline = time.monotonic() + timeout
        while text not in self.output(stream):
            if self._supervisor.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} never appeared on {stream}\n--- stdout\n{self.output()}\n--- stderr\n"
                    f"{self.output('stderr')}"
                )
            time.sleep(0.1)

    def signal(self, number: int, *, group: bool = False) -> None:
        """Send `number` to the command (`group`: to its whole process group, as Ctrl-C does)."""
        trigger = self._work / "trigger"
        (self._work / "trigger.tmp").write_text(json.dumps([int(number), group]))
        (self._work / "trigger.tmp").rename(trigger)

    def result(self, timeout: float = 60) -> Result:
        self._supervisor.wait(timeout)
        report = json.loads((self._work / "report").read_text())
        return Result(
            exit=report["exit"],
            timed_out=report["timed_out"],
            left_running=report["left_running"],
            stdout=self.output("stdout"),
            stderr=self.output("stderr"),
        )


@contextmanager
def supervised(
    command: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    work: Path,
    tty: bool = False,
    timeout: float = 90,
    merge_stderr: bool = False,
) -> Iterator[Running]:
    """Start `command` under the supervisor (files in `work`); it is killed after `timeout` seconds.
    `merge_stderr`: its standard error goes to stdout, in the order written (as `2>&1`)."""
    if not sys.platform.startswith("linux"):
        raise AssertionError("the supervisor uses Linux's child subreaper")
    work.mkdir(parents=True, exist_ok=True)
    spec = {
        "command": list(command),
        "cwd": str(cwd),
        "env": dict(env),
        "tty": tty,
        "timeout": timeout,
        "merge": merge_stderr,
        **{name: str(work / name) for name in ("stdout", "stderr", "pid", "trigger", "report")},
    }
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, json.dumps(spec)])
    try:
        yield Running(work, supervisor)
    finally:
        if supervisor.poll() is None:
            Running(work, supervisor).signal(signals.SIGKILL, group=True)
            try:
                supervisor.wait(timeout + 30)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.wait()


def one_line(stderr: str) -> str:
    """The only line of `stderr`; fails showing all of it when there are more, or a traceback."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}:\n{stderr}"
    return lines[0]


def command_env(**extra: str) -> dict[str, str]:
    """The test process's environment for a command run like a user's, without the test's AWS
    endpoint, plus `extra`."""
    from tests.support.events import REPOSITORY_ROOT

    env = {k: v for k, v in os.environ.items() if k not in {"AWS_ENDPOINT_URL", "AWS_PROFILE"}}
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(
        [
            *(str(REPOSITORY_ROOT / r) for r in ("layers/deployer", "cli", "local")),
            str(REPOSITORY_ROOT),
            env.get("PYTHONPATH", ""),
        ]
    )
    env.update(extra)
    return env
