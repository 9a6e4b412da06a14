"""Every long-running command stops cleanly on SIGINT (Ctrl-C: the whole foreground process
group), SIGTERM (`kill PID`) and SIGHUP (the terminal closed): one line on stderr, no traceback,
exit status 128 + the signal, and nothing left running (checked by a child subreaper, which
inherits whatever the command leaves behind: tests/support/subreaper.py). Two local stacks in one
checkout never break each other: the second refuses, naming the first one's pid, and the first
keeps serving."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.events import REPOSITORY_ROOT
from tests.support.subreaper import command_env, one_line, supervised
from tests.support.world import World

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor uses Linux's child subreaper"),
]

DEPLOYER = (str(Path(sys.executable).parent / "deployer"),)  # the console script, as a user runs it
STOPS = [
    pytest.param(signal.SIGINT, True, id="SIGINT-ctrl-c-to-the-process-group"),
    pytest.param(signal.SIGTERM, False, id="SIGTERM-kill-pid"),
    pytest.param(signal.SIGHUP, False, id="SIGHUP-terminal-closed"),
]


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def moto_port(stdout: str) -> int:
    found = re.search(r"^AWS\s+moto server on http://127\.0\.0\.1:(\d+)", stdout, re.M)
    assert found, stdout
    return int(found.group(1))


def user_env(tmp_path: Path) -> dict[str, str]:
    """A user's environment: no test endpoint, a git configuration of its own."""
    (tmp_path / "gitconfig").write_text("[user]\n\tname = Ada Developer\n\temail = ada@example.com\n")
    return command_env(GIT_CONFIG_GLOBAL=str(tmp_path / "gitconfig"), GIT_CONFIG_NOSYSTEM="1")


# -- deployer local up --------------------------------------------------------------------------


@pytest.mark.parametrize(("stop", "group"), STOPS)
def test_local_up_stops_everything_on_a_stop_signal(
    stop: signal.Signals, group: bool, tmp_path: Path, build_dir: Path
) -> None:
    # GIVEN the lock and state file of a local stack that was killed (SIGKILL): a dead pid
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    local = tmp_path / ".local"
    local.mkdir()
    (local / "stack.lock").write_text(json.dumps({"pid": dead.pid, "command": "deployer local up"}))
    (local / "stack.json").write_text(json.dumps({"pid": dead.pid, "endpoint_url": "http://127.0.0.1:9"}))

    # WHEN `deployer local up` runs (taking the stale lock over) and gets the signal once it is up
    command = [*DEPLOYER, "local", "up", "--build-dir", str(build_dir)]
    with supervised(command, cwd=tmp_path, env=user_env(tmp_path), work=tmp_path / "supervisor") as run:
        run.wait_for("The local stack is up")
        port = moto_port(run.output())
        assert port_is_open(port)
        run.signal(stop, group=group)
        result = run.result()

    # THEN one line on stderr, 128 + the signal, and every part of the stack is gone
    assert not result.timed_out, result.stdout
    assert one_line(result.stderr) == f"deployer local up: stopped by {stop.name}"
    assert result.exit == 128 + stop, result.stderr
    assert result.stdout.rstrip().endswith("Stopped: nothing left running."), result.stdout
    assert result.left_running == {}, f"left running: {result.left_running}"
    assert not port_is_open(port), f"moto's port {port} still answers"
    assert not (local / "stack.json").exists(), "the state file was left behind"


def test_a_second_local_up_or_demo_refuses_and_the_first_keeps_serving(tmp_path: Path, build_dir: Path) -> None:
    env = user_env(tmp_path)
    (tmp_path / ".aws-sam").mkdir()
    (tmp_path / ".aws-sam" / "build").symlink_to(build_dir)  # where `make demo` reads the build
    command = [*DEPLOYER, "local", "up", "--build-dir", str(build_dir)]
    with supervised(command, cwd=tmp_path, env=env, work=tmp_path / "supervisor") as first:
        # GIVEN a local stack running in this checkout
        first.wait_for("The local stack is up")
        state_before = (tmp_path / ".local" / "stack.json").read_text()
        moto_log = (tmp_path / ".local" / "moto.log").stat().st_size

        # WHEN a second `deployer local up`, then `make demo`, start in the same checkout
        second = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False)
        demo = subprocess.run(
            [sys.executable, "-m", "deployer_local.demo"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        # THEN each refuses in one line naming the first one's pid, and touches none of its files
        pid = first.pid
        refusal = f"already running (pid {pid}, `deployer local up`; lock {Path('.local') / 'stack.lock'})"
        assert one_line(second.stderr) == (
            f"deployer local: error: a local stack is {refusal}: stop it with Ctrl-C or `kill {pid}`, then try again"
        )
        assert second.returncode == 2
        assert one_line(demo.stderr).startswith(f"make demo: error: a local stack is {refusal}"), demo.stderr
        assert demo.returncode == 1
        assert (tmp_path / ".local" / "stack.json").read_text() == state_before
        assert (tmp_path / ".local" / "moto.log").stat().st_size >= moto_log
        # ... and the first still serves: `deployer status` reads its tables through its moto server
        status = subprocess.run(
            [*DEPLOYER, "status"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith("pipeline web (web-app main)"), status.stdout

        first.signal(signal.SIGTERM)
        result = first.result()
    assert result.exit == 128 + signal.SIGTERM, result.stderr
    assert result.left_running == {}, f"left running: {result.left_running}"


# -- make demo ----------------------------------------------------------------------------------


def test_ctrl_c_in_make_demo_stops_the_stack_with_one_line(tmp_path: Path, build_dir: Path) -> None:
    # GIVEN a checkout with a build, and `make demo` running (its recipe: python -m deployer_local.demo)
    (tmp_path / ".aws-sam").mkdir()
    (tmp_path / ".aws-sam" / "build").symlink_to(build_dir)
    command = [sys.executable, "-m", "deployer_local.demo"]
    with supervised(command, cwd=tmp_path, env=user_env(tmp_path), work=tmp_path / "supervisor") as run:
        # WHEN Ctrl-C reaches the demo's process group while the release is being built
        run.wait_for("=== Build (SIMULATED)")
        run.signal(signal.SIGINT, group=True)
        result = run.result()

    # THEN the stack stops, one line says so, exit 130, nothing is left (git push shows the
    # remote's hook output on stderr, "remote: ...", as it does for every push)
    ours = "\n".join(line for line in result.stderr.splitlines() if not line.startswith("remote: "))
    assert one_line(ours) == "make demo: stopped by SIGINT"
    assert result.exit == 130
    assert result.stdout.rstrip().endswith("Stopped: nothing left running."), result.stdout
    assert result.left_running == {}, f"left running: {result.left_running}"
    assert not port_is_open(moto_port(result.stdout))
    assert not (tmp_path / ".local" / "stack.json").exists()


# -- deployer deploy --wait ---------------------------------------------------------------------


def test_ctrl_c_in_deploy_wait_says_the_ecs_deployment_goes_on(tmp_path: Path, aws: str, world: World) -> None:
    # GIVEN a service (moto never completes a deployment, so --wait waits until stopped)
    service = world.account.services["dev"]
    container = world.task_definition(service.task_definition_arn)["taskDefinition"]["containerDefinitions"][0]
    image = f"{world.account.ecr_repository_uri}:v2"
    command = [
        *DEPLOYER,
        "deploy",
        "--cluster",
        service.cluster,
        "--service",
        service.service,
        "--container",
        container["name"],
        "--image",
        image,
        "--wait",
    ]
    with supervised(command, cwd=tmp_path, env=command_env(AWS_ENDPOINT_URL=aws), work=tmp_path / "sup") as run:
        # WHEN Ctrl-C comes while it waits for the deployment
        run.wait_for("Waiting for ")
        run.signal(signal.SIGINT, group=True)
        result = run.result()

    # THEN one line: stopped, and the deployment goes on in ECS, with how to follow it
    deployment = re.search(r"Waiting for (ecs-svc/\d+) ", result.stdout)
    assert deployment, result.stdout
    assert one_line(result.stderr) == (
        f"deployer deploy: stopped by SIGINT; the ECS deployment {deployment.group(1)} of "
        f"{service.cluster}/{service.service} goes on: "
        f"aws ecs describe-services --cluster {service.cluster} --services {service.service}"
    )
    assert result.exit == 130
    primary = next(d for d in world.service("dev")["deployments"] if d["status"] == "PRIMARY")
    assert primary["id"] == deployment.group(1)  # the deployment itself was not touched


# -- deployer rollback's prompt -----------------------------------------------------------------


@pytest.mark.parametrize(("stop", "group"), [STOPS[0], STOPS[2]])
def test_a_stop_at_the_rollback_prompt_changes_nothing(
    stop: signal.Signals, group: bool, tmp_path: Path, aws: str, world: World
) -> None:
    # GIVEN `deployer rollback` asking for confirmation on a terminal
    command = [
        *DEPLOYER,
        "rollback",
        "--pipeline",
        "web",
        "--stage",
        "prod",
        "--table",
        world.names.table,
        "--config-table",
        world.names.config_table,
        "--event-bus",
        world.names.bus,
    ]
    env = command_env(AWS_ENDPOINT_URL=aws)
    with supervised(command, cwd=tmp_path, env=env, work=tmp_path / "sup", tty=True) as run:
        # WHEN Ctrl-C comes, or the terminal closes, at the prompt
        run.wait_for("Roll back prod of web? [y/N] ", stream="stderr")
        run.signal(stop, group=group)
        result = run.result()

    # THEN one line after the prompt, 128 + the signal, and no release was created
    after_prompt = result.stderr.split("[y/N] ", 1)[1]
    assert one_line(after_prompt) == f"deployer rollback: stopped by {stop.name}; nothing changed"
    assert result.exit == 128 + stop
    assert world.store.list_releases("web", limit=5) == []


# -- python -m bench ----------------------------------------------------------------------------


def test_bench_stops_on_sigterm_and_a_second_run_refuses(tmp_path: Path) -> None:
    # GIVEN `make bench` running one section (its recipe: python -m bench)
    report = tmp_path / "BENCHMARKS.md"
    command = [sys.executable, "-m", "bench", "--only", "startup", "--output", str(report)]
    env = command_env()
    with supervised(command, cwd=REPOSITORY_ROOT, env=env, work=tmp_path / "sup") as run:
        run.wait_for("[1/1]", stream="stderr")
        # WHEN a second bench starts in the same checkout
        second = subprocess.run(
            command, cwd=REPOSITORY_ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
        )
        # THEN it refuses, naming the first one's pid
        assert one_line(second.stderr).startswith(
            f"python -m bench: error: a benchmark is already running (pid {run.pid}, `python -m bench`"
        ), second.stderr
        assert second.returncode == 1
        # WHEN the first gets SIGTERM
        run.signal(signal.SIGTERM)
        result = run.result()

    # THEN it stops with one line after its progress line, leaves nothing running, writes nothing
    progress, stopped = result.stderr.split("\n", 1)
    assert progress.startswith("[1/1] "), result.stderr
    assert one_line(stopped) == "python -m bench: stopped by SIGTERM"
    assert result.exit == 128 + signal.SIGTERM
    assert result.left_running == {}, f"left running: {result.left_running}"
    assert not report.exists()
