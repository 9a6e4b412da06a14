"""`deployer deploy` and `deployer diff` as a user runs them: the installed console script, in its
own process, against moto server over HTTP. The console script ends these commands without the
interpreter's teardown (`deployer_cli.console`): whatever they print must still arrive whole."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from deployer_local.provision import provision_demo

pytestmark = pytest.mark.integration

NEW_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web-app:2.0.0"


def console_script() -> str:
    beside = Path(sys.executable).with_name("deployer")
    found = str(beside) if beside.exists() else shutil.which("deployer")
    assert found, "the deployer console script is not installed"
    return found


def run(aws: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ENDPOINT_URL": aws,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "LANG": "C.UTF-8",
    }
    return subprocess.run([console_script(), *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_deploy_and_diff_print_everything_before_their_process_ends(aws: str) -> None:
    # GIVEN prod/web running its first revision in moto server
    provision_demo()
    target = ("--cluster", "prod", "--service", "web", "--container", "web", "--image", NEW_IMAGE)
    # WHEN diff, then deploy, run as processes, their answers as JSON
    diff = run(aws, "diff", *target, "--json")
    deploy = run(aws, "deploy", *target, "--json")
    # THEN each printed its whole document and exited with its status
    assert diff.returncode == 3, diff.stderr  # like diff(1): there are changes
    assert NEW_IMAGE in json.dumps(json.loads(diff.stdout))
    assert deploy.returncode == 0, deploy.stderr
    document = json.loads(deploy.stdout)
    assert document["result"]["outcome"] == "deployed"
    # AND the deploy really happened
    service = boto3.client("ecs").describe_services(cluster="prod", services=["web"])["services"][0]
    assert service["taskDefinition"] == document["result"]["task_definition"]
    # AND the text output ends with its last line too
    again = run(aws, "deploy", *target)
    assert again.returncode == 0, again.stderr
    assert again.stdout.rstrip("\n").splitlines()[-1].startswith("Nothing to do: prod/web already runs")
