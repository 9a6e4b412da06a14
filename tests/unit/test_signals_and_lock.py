"""The shared stop path (`deployer_cli.signals`) and the local stack's pid lock
(`deployer_local.pidlock`), in process: real signals sent to this process, real flocks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deployer_cli import main
from deployer_cli.signals import Stopped, run_stoppable, shielded, stop_on_signals
from deployer_local.pidlock import AlreadyRunning, PidLock

pytestmark = pytest.mark.unit


def wait_for_signal() -> None:
    """Where a command waits (a sleep, a socket): the signal handler raises here."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.01)
    raise AssertionError("no signal arrived")


@pytest.mark.parametrize(
    ("stop", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=str
)
def test_a_stop_signal_becomes_one_line_and_128_plus_the_signal(
    stop: signal.Signals, status: int, capsys: pytest.CaptureFixture[str]
) -> None:
    def body() -> int:
        os.kill(os.getpid(), stop)
        wait_for_signal()
        return 0

    assert run_stoppable("deployer thing", body) == status
    assert capsys.readouterr().err == f"deployer thing: stopped by {stop.name}\n"


def test_the_previous_handlers_come_back_afterwards() -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    with stop_on_signals() as outermost:
        assert outermost
        assert signal.getsignal(signal.SIGHUP) is not before[signal.SIGHUP]
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_shield_holds_the_signal_until_its_block_ends_and_repeats_are_ignored() -> None:
    steps: list[str] = []

    def command() -> None:
        with shielded():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)
            steps.append("the shielded block ran to its end")
            os.kill(os.getpid(), signal.SIGINT)  # a second signal while stopping: ignored
            time.sleep(0.05)
            steps.append("and a second signal did not cut it")
        steps.append("never: Stopped is raised when the shield ends")

    with stop_on_signals(), pytest.raises(Stopped) as stopped:
        command()
    assert steps == ["the shielded block ran to its end", "and a second signal did not cut it"]
    assert stopped.value.signum == signal.SIGTERM
    assert stopped.value.exit_status == 143


def test_a_nested_command_lets_the_stop_through_to_the_outer_one(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN `make demo` running a deployer command in process (it runs `deployer status`)
    def stopped_while_running(_args: object) -> int:
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for_signal()
        return 0

    monkeypatch.setattr("deployer_cli.commands.plan.run", stopped_while_running)
    after: list[str] = []

    def demo() -> int:
        main(["plan", "--desired", "2"])
        after.append("the demo went on after the inner command")
        return 0

    # THEN the demo, not the inner command, reports the stop, and stops
    assert run_stoppable("make demo", demo) == 129
    assert capsys.readouterr().err == "make demo: stopped by SIGHUP\n"
    assert after == []


def test_the_detail_says_what_goes_on() -> None:
    stop = Stopped(signal.SIGINT, "the ECS deployment ecs-svc/1 of dev/web goes on")
    assert stop.line("deployer deploy") == (
        "deployer deploy: stopped by SIGINT; the ECS deployment ecs-svc/1 of dev/web goes on"
    )


# -- the pid lock -------------------------------------------------------------------------------


def test_a_second_holder_is_refused_with_the_first_ones_pid_and_command(tmp_path: Path) -> None:
    lock = tmp_path / ".local" / "stack.lock"
    with PidLock(lock, "deployer local up"):
        with pytest.raises(AlreadyRunning) as refused:
            PidLock(lock, "make demo").acquire()
        assert refused.value.pid == os.getpid()
        assert str(refused.value) == (
            f"already running (pid {os.getpid()}, `deployer local up`; lock {lock}): "
            f"stop it with Ctrl-C or `kill {os.getpid()}`, then try again"
        )
    # released: the next one takes it
    with PidLock(lock, "make demo") as taken:
        assert taken.held
        assert json.loads(lock.read_text()) == {"pid": os.getpid(), "command": "make demo"}


@pytest.mark.integration
def test_a_lock_file_left_by_a_dead_process_is_taken_over(tmp_path: Path) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = tmp_path / "stack.lock"
    lock.write_text(json.dumps({"pid": dead.pid, "command": "deployer local up"}))
    with PidLock(lock, "deployer local up"):
        assert json.loads(lock.read_text())["pid"] == os.getpid()


@pytest.mark.integration
def test_a_child_process_never_inherits_the_lock(tmp_path: Path) -> None:
    # GIVEN a holder that started a long-lived child (as the stack starts moto server), then ended
    lock = tmp_path / "stack.lock"
    holder = PidLock(lock, "deployer local up").acquire()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        holder.release()
        # THEN the lock is free although the child still runs
        with PidLock(lock, "deployer local up"):
            assert child.poll() is None
    finally:
        child.kill()
        child.wait()
