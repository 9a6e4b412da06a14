"""`make demo` end to end: `python -m deployer_local.demo` run as a person runs it, telling one
release from a real git push to RELEASED, then stopping everything it started.

It runs in a temporary directory holding a copy of the build (the demo reads `.aws-sam/build`
and writes `.local/` relative to where it runs), so it neither disturbs nor is disturbed by a
local stack or a `make build` in the checkout. A small Linux supervisor (a child subreaper: every
process the demo leaves behind becomes its child) runs it and reports what is still alive
(tests/support/demo.py)."""

from __future__ import annotations

import re
import socket
import sys
from pathlib import Path

import pytest

from tests.support.demo import DEMO_TIMEOUT_SECONDS, run_demo

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor uses Linux's child subreaper"),
]


def port_is_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_make_demo_tells_one_release_to_released_and_leaves_nothing_running(tmp_path: Path) -> None:
    # GIVEN a directory of its own, holding a copy of the build
    # WHEN `make demo` runs (its recipe: python -m deployer_local.demo)
    supervised = run_demo(tmp_path)
    output = supervised.stdout

    # THEN it succeeds within its time, telling the release from the push to RELEASED
    assert not supervised.timed_out, f"the demo took more than {DEMO_TIMEOUT_SECONDS} s:\n{output}"
    assert supervised.exit == 0, output
    assert "SIMULATED CodeBuild: build" in output, output
    assert "SIMULATED ECS rollout of dev/web" in output, output
    assert "SIMULATED ECS rollout of prod/web" in output, output
    released = re.search(r"^RELEASE web@([0-9a-f]{12}) DEPLOYED -> RELEASED \(prod\)", output, re.M)
    assert released, output
    commit = released.group(1)
    # the approval given the way a browser gives it: GET the page, POST its form
    assert re.search(r"^GET  http://127\.0\.0\.1:\d+/approvals/…  -> 200 Approve web → prod$", output, re.M), output
    assert re.search(r"^POST decision=approve -> 200 Approved: prod of web will deploy now$", output, re.M), output
    # `deployer status`: the table, with the release RELEASED on prod
    status = output.split("=== deployer status", 1)[-1]
    assert re.search(r"^COMMIT\s+STATE\s+STAGE\s+CREATED \(UTC\)\s+UPDATED \(UTC\)\s+AGE$", status, re.M), output
    assert re.search(rf"^{commit}\s+RELEASED\s+prod\s", status, re.M), output
    assert re.search(r"^Demo finished in \d+ s: release RELEASED\.$", output, re.M), output

    # THEN it stops everything it started: no process left, moto's port closed, no state file
    assert output.rstrip().endswith("Stopped: nothing left running."), output
    assert supervised.left_running == {}, f"the demo left these running: {supervised.left_running}"
    moto = re.search(r"^AWS\s+moto server on http://127\.0\.0\.1:(\d+)", output, re.M)
    assert moto, output
    assert not port_is_open(int(moto.group(1))), f"moto's port {moto.group(1)} still answers"
    assert not (tmp_path / ".local" / "stack.json").exists(), ".local/stack.json was left behind"


@pytest.mark.parametrize("fail", [False, True], ids=["exit-0", "exit-1"])
def test_make_demo_before_runs_the_migration_through_the_local_stack(tmp_path: Path, fail: bool) -> None:
    # GIVEN the same copy of the build
    # WHEN `make demo-before` (FAIL=1: `--fail-before prod`) runs
    supervised = run_demo(tmp_path, "--before", *(["--fail-before", "prod"] if fail else []))
    output = supervised.stdout
    assert not supervised.timed_out, output
    assert supervised.exit == 0, output
    # THEN the built functions ran prod's before-task with RunTask (SIMULATED), and its STOPPED event decided
    assert re.search(r"^SIMULATED ECS task [0-9a-f]{12} on prod: before-task migrate of web@", output, re.M), output
    assert re.search(
        r"^RELEASE web@[0-9a-f]{12} DEPLOYING -> DEPLOYING \(prod\): before-task migrate running: task [0-9a-f]{32} "
        r"on prod \(web:\d+, container web\); web is updated when it exits 0$",
        output,
        re.M,
    ), output
    status = output.split("=== deployer status", 1)[-1]
    if fail:
        assert "OnDeploymentFunction <- ECS Task State Change: before_task_failed" in output, output
        assert "SIMULATED ECS rollout of prod/web" not in output, output
        assert re.search(
            r"DEPLOYING -> DEPLOY_FAILED \(prod\): before-task migrate failed in prod: container web exited 1", output
        ), output
        assert re.search(r"^\s+before    prod: migrate FAILED \(exit 1\), task [0-9a-f]{32}$", status, re.M), output
        assert re.search(r"^Demo finished in \d+ s: release DEPLOY_FAILED\.$", output, re.M), output
    else:
        assert "OnDeploymentFunction <- ECS Task State Change: before_task_succeeded" in output, output
        assert "SIMULATED ECS rollout of prod/web" in output, output
        assert re.search(r"^\s+before    prod: migrate SUCCEEDED \(exit 0\), task [0-9a-f]{32}$", status, re.M), output
        assert re.search(r"^Demo finished in \d+ s: release RELEASED\.$", output, re.M), output
    assert supervised.left_running == {}, supervised.left_running
