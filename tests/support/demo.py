"""Run the local demo (`python -m deployer_local.demo ARGS`) as a person runs it: in a temporary
directory holding a copy of the build (the demo reads `.aws-sam/build` and writes `.local/` where it
runs), so it neither disturbs nor is disturbed by a local stack or a `make build` in the checkout,
with a git configuration of its own, under the supervisor of tests/support/subreaper.py, which
reports what the demo left running."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.support.events import REPOSITORY_ROOT
from tests.support.subreaper import Result, command_env, supervised

DEMO_TIMEOUT_SECONDS = 80


def run_demo(directory: Path, *args: str) -> Result:
    """The demo's result, its standard error merged into `stdout` in the order written; it is
    killed (and `timed_out` set) after DEMO_TIMEOUT_SECONDS."""
    build = REPOSITORY_ROOT / ".aws-sam" / "build"
    if not (build / "template.yaml").is_file():
        pytest.fail(f"{build} is missing: run `make build` first (`make test` does)", pytrace=False)
    shutil.copytree(build, directory / ".aws-sam" / "build", symlinks=True)
    (directory / "gitconfig").write_text("")
    env = command_env(GIT_CONFIG_GLOBAL=str(directory / "gitconfig"), GIT_CONFIG_NOSYSTEM="1")
    command = [sys.executable, "-m", "deployer_local.demo", *args]
    with supervised(
        command, cwd=directory, env=env, work=directory / ".supervisor", timeout=DEMO_TIMEOUT_SECONDS, merge_stderr=True
    ) as run:
        return run.result(timeout=DEMO_TIMEOUT_SECONDS + 60)
