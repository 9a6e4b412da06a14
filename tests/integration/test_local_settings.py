"""Deploy-time settings on the whole local stack: the built functions, a real `git push`, the
SIMULATED build and rollouts. A pipeline whose dev stage sets an environment variable and a secret
(an SSM parameter) and whose prod stage (behind its approval) sets a Secrets Manager secret: the
first push references a parameter that does not exist yet, so dev's new tasks stop (SIMULATED
ResourceInitializationError) and the release fails with dev back on its revision; once it exists,
the next push goes through dev, waits for prod's approval with the settings on the approval page,
and is released. The secrets' value never appears in anything the stack printed."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployer.pipelines.loader import load_config_text
from deployer_local.provision import demo_pipelines_yaml
from tests.integration.test_local_paused_bluegreen import DEVELOPER, push_a_commit, reach

pytestmark = pytest.mark.integration

VALUE = "local-only-value-that-must-never-print"
DEV_ROLLOUT = "        rollout: {minimumHealthyPercent: 100, maximumPercent: 200, circuitBreaker: {rollback: true}}\n"


@pytest.fixture
def stack_log() -> list[str]:
    return []


@pytest.fixture
def local_stack(tmp_path: Path, build_dir: Path, stack_log: list[str]) -> Iterator[Callable[[], Any]]:
    """`deployer local up`'s stack (the demo pipeline: dev, then prod behind an approval) on a copy
    of the build; stopped afterwards, the process environment restored."""
    from deployer_local.stack import LocalStack, StackOptions

    build_copy = tmp_path / "build"
    shutil.copytree(build_dir, build_copy, symlinks=True)

    def printer(text: str) -> None:
        stack_log.append(text)
        print(text)

    saved = dict(os.environ)
    git_config = tmp_path / "gitconfig"
    git_config.write_text(f"[user]\n\tname = {DEVELOPER['user.name']}\n\temail = {DEVELOPER['user.email']}\n")
    os.environ.update({"GIT_CONFIG_GLOBAL": str(git_config), "GIT_CONFIG_NOSYSTEM": "1"})
    started: list[LocalStack] = []

    def start() -> LocalStack:
        stack = LocalStack(StackOptions(root=tmp_path / "local", build_dir=build_copy, step_delay=0), printer=printer)
        started.append(stack)
        return stack.start()

    try:
        yield start
    finally:
        for stack in started:
            stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def settings_pipeline(stack: Any, dev_secret: str, prod_secret: str) -> str:
    text = demo_pipelines_yaml(stack.account)
    dev = (
        f"        environment: {{web: {{LOG_LEVEL: debug}}}}\n        secrets: {{web: {{DB_PASSWORD: {dev_secret}}}}}\n"
    )
    assert DEV_ROLLOUT in text
    return (
        text.replace(DEV_ROLLOUT, DEV_ROLLOUT + dev, 1)
        + "        environment: {web: {LOG_LEVEL: warn}}\n"
        + f'        secrets: {{web: {{DB_PASSWORD: "{prod_secret}:password::"}}}}\n'
    )


def test_settings_run_through_the_local_stack_and_a_missing_secret_fails_like_ecs(
    local_stack: Callable[[], Any], stack_log: list[str], tmp_path: Path
) -> None:
    from deployer.releases.model import ReleaseState
    from deployer_local.demo import DONE, WAITING, approval_link, approve_like_a_browser

    stack = local_stack()
    secrets = boto3.client("secretsmanager")  # the stack's moto server (AWS_ENDPOINT_URL)
    prod_secret = secrets.create_secret(Name="prod/web/db", SecretString=json.dumps({"password": VALUE}))["ARN"]
    dev_parameter = "/dev/web/db-password"  # an SSM parameter, by name: not created yet
    stack.config_store.publish(load_config_text(settings_pipeline(stack, dev_parameter, prod_secret)), "test")
    first_revision = stack.account.services["dev"].task_definition_arn

    # GIVEN a push whose dev secret does not exist
    first = push_a_commit(stack.remote, tmp_path / "work", "First")
    # THEN dev's new tasks stop as ECS stops them, the circuit breaker rolls back, the release fails
    failed = reach(stack, stack_log, DONE, commit=first)
    assert failed.state is ReleaseState.DEPLOY_FAILED, failed.reason
    text = "\n".join(stack_log)
    assert "SIMULATED ECS rollout of dev/web: new tasks of web:3 read 1 secret when they start" in text
    assert (
        "SIMULATED ECS rollout of dev/web: new tasks stop: ResourceInitializationError: unable to pull secrets or "
        "registry auth: execution resource retrieval failed: unable to retrieve secrets from ssm: invalid "
        f"parameters: {dev_parameter} (DB_PASSWORD of container web)"
    ) in text
    dev = boto3.client("ecs").describe_services(cluster="dev", services=["web"])["services"][0]
    assert dev["taskDefinition"] == first_revision  # the SIMULATED circuit breaker rolled it back

    # GIVEN the parameter created, and the next push
    boto3.client("ssm").put_parameter(Name=dev_parameter, Value=VALUE, Type="SecureString")
    second = push_a_commit(stack.remote, tmp_path / "work", "Second")
    # THEN dev deploys with its settings and prod waits for its approval
    waiting = reach(stack, stack_log, WAITING | DONE, commit=second)
    assert (waiting.state, waiting.stage) == (ReleaseState.AWAITING_APPROVAL, "prod"), waiting.reason
    assert waiting.stages["dev"].settings == "web: LOG_LEVEL=debug (added), DB_PASSWORD (secret, added)"
    # AND the approval page shows prod's settings: names, values, the secret's reference
    link = approval_link(stack)
    with urllib.request.urlopen(link, timeout=30) as response:
        page = response.read().decode()
    assert "<code>web</code> added <code>LOG_LEVEL</code>: <i>not set</i> → <code>warn</code>" in page
    assert f"secret from <code>{prod_secret}:password::</code>" in page
    # WHEN it is approved on the page
    approve_like_a_browser(link)
    released = reach(stack, stack_log, DONE, commit=second)
    # THEN prod runs a revision with its settings, and the release is RELEASED
    assert released.state is ReleaseState.RELEASED, released.reason
    ecs = boto3.client("ecs")
    arn = released.stages["prod"].task_definition_arn
    assert ecs.describe_services(cluster="prod", services=["web"])["services"][0]["taskDefinition"] == arn
    web = ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["containerDefinitions"][0]
    assert {"name": "LOG_LEVEL", "value": "warn"} in web["environment"]
    assert web["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": f"{prod_secret}:password::"}]
    # AND the secret's value is nowhere in what the stack printed (Slack included) nor on the page
    assert VALUE not in "\n".join(stack_log)
    assert VALUE not in page
