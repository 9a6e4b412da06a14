"""`make demo-services` end to end: the demo with a `worker` service beside `web` in dev and prod,
each stage deploying both in one step (`services: [web, {name: worker, container: worker}]`): both
rollouts are SIMULATED and drawn, the stage completes once both have, and `deployer status` lists
every service. Run as `tests/e2e/test_demo.py` runs `make demo` (a copy of the build in a temporary
directory, under a supervisor that reports what is left running)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from tests.support.demo import run_demo

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the supervisor uses Linux's child subreaper"),
]


def test_make_demo_services_deploys_web_and_worker_together_through_every_stage(tmp_path: Path) -> None:
    # GIVEN a directory holding a copy of the build
    # WHEN `make demo-services` runs (its recipe: python -m deployer_local.demo --several-services)
    supervised = run_demo(tmp_path, "--several-services")
    output = supervised.stdout
    # THEN the release goes through both stages, each service's rollout drawn and SIMULATED
    assert not supervised.timed_out, output
    assert supervised.exit == 0, output
    for where in ("dev/web", "dev/worker", "prod/web", "prod/worker"):
        assert f"SIMULATED ECS rollout of {where}: completed: SERVICE_DEPLOYMENT_COMPLETED sent" in output, output
    # AND each stage completes once, after both services, saying which it waited for
    assert re.search(
        r"DEPLOYING -> DEPLOYING \(dev\): dev: (web|worker) runs \S+; waiting for (web|worker)$", output, re.M
    )
    assert (
        len(
            re.findall(
                r"^RELEASE web@\w+ DEPLOYING -> DEPLOYED \(dev\): dev runs web web:\d+, worker worker:\d+$",
                output,
                re.M,
            )
        )
        == 1
    )
    assert re.search(r"^RELEASE web@\w+ DEPLOYED -> RELEASED \(prod\)", output, re.M), output
    # AND `deployer status` lists every service of each stage
    status = output.split("=== deployer status", 1)[-1]
    assert re.search(r"^\s+services\s+dev: web DEPLOYED \(web:\d+\) · worker DEPLOYED \(worker:\d+\)$", status, re.M)
    assert re.search(r"^\s+services\s+prod: web DEPLOYED \(web:\d+\) · worker DEPLOYED \(worker:\d+\)$", status, re.M)
    assert output.rstrip().endswith("Stopped: nothing left running."), output
    assert supervised.left_running == {}, supervised.left_running


def test_make_demo_services_with_before_runs_one_task_with_webs_revision_before_either_update(tmp_path: Path) -> None:
    # WHEN `make demo-services BEFORE=1` runs: prod has `before: {task: migrate, service: web, ...}`
    supervised = run_demo(tmp_path, "--several-services", "--before")
    output = supervised.stdout
    assert not supervised.timed_out, output
    assert supervised.exit == 0, output
    # THEN one SIMULATED task runs prod's migration with web's new revision, in container web
    assert len(re.findall(r"^SIMULATED ECS task \w+ on prod: before-task migrate of ", output, re.M)) == 1, output
    running = re.search(
        r"^RELEASE web@\w+ DEPLOYING -> DEPLOYING \(prod\): before-task migrate running: task \w+ on prod "
        r"\((web:\d+), container web, service web\); web, worker are updated when it exits 0$",
        output,
        re.M,
    )
    assert running, output
    # AND neither prod service rolls out before the task exited 0; both do after, and the release ends RELEASED
    succeeded = output.index("before-task migrate succeeded (container web exited 0): deploying prod")
    for where in ("prod/web", "prod/worker"):
        assert output.index(f"SIMULATED ECS rollout of {where}:") > succeeded, output
    assert re.search(r"^RELEASE web@\w+ DEPLOYED -> RELEASED \(prod\)", output, re.M), output
    status = output.split("=== deployer status", 1)[-1]
    assert re.search(r"^\s+before\s+prod: migrate SUCCEEDED \(exit 0\), task \w+$", status, re.M), status
    assert supervised.left_running == {}, supervised.left_running
