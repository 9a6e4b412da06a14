"""The Lambda cold path: what a handler's import and its first event load and build (issue 13).

Each check runs in a fresh interpreter, since what this process has already imported says nothing
about a cold start: the handler module imported by path with the environment Lambda gives it
(tracer on: LAMBDA_TASK_ROOT set, no POWERTOOLS_TRACE_DISABLED), and, where an event is handled,
moto in process as the AWS. BENCHMARKS.md (sections 2 and 8) measures what this saves.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from deployer import aws
from deployer_local.provision import DeployerNames
from tests.support.events import REPOSITORY_ROOT

pytestmark = pytest.mark.integration

HANDLERS = ["approvals_http", "on_approval", "on_build", "on_deployment", "on_push", "on_webhook"]

# Loads the handler `functions/<name>/app.py` by path, as Lambda loads `app` from /var/task.
_LOAD = """
import importlib.util, json, sys

def load(name):
    spec = importlib.util.spec_from_file_location("app", f"functions/{name}/app.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["app"] = module
    spec.loader.exec_module(module)
    return module

def built_event_models():
    import pydantic
    return sorted(
        name for module_name, module in list(sys.modules.items()) if module_name.startswith("deployer.events.")
        for name, value in vars(module).items()
        if isinstance(value, type) and issubclass(value, pydantic.BaseModel) and value.__module__ == module_name
        and value.__pydantic_complete__
    )
"""

# Never needed by a handler's import: YAML (the functions read the published JSON), Powertools'
# parser models (the events have their own envelope), Slack's SDK (loaded when a message is built
# or sent), sqlite3 (what the X-Ray SDK patches when the Tracer patches every module it knows).
NOT_ON_THE_COLD_PATH = ("yaml", "aws_lambda_powertools.utilities.parser", "slack_sdk", "sqlite3")


def run_python(code: str, extra_env: dict[str, str]) -> dict[str, Any]:
    """Run `code` (which prints one JSON line last) in a fresh interpreter at the repository root."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPOSITORY_ROOT / "layers" / "deployer"), str(REPOSITORY_ROOT)]),
        **extra_env,
    }
    done = subprocess.run(
        [sys.executable, "-c", _LOAD + code],
        cwd=REPOSITORY_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def lambda_env(name: str) -> dict[str, str]:
    """What Lambda sets for a function with `Tracing: Active`, and the template's variables."""
    return {
        "LAMBDA_TASK_ROOT": str(REPOSITORY_ROOT / "functions" / name),
        "AWS_LAMBDA_FUNCTION_NAME": f"ecs-deployer-test-{name.replace('_', '-')}",
        "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000",
        "POWERTOOLS_TRACE_DISABLED": "false",
        "POWERTOOLS_SERVICE_NAME": "ecs-deployer",
        "DEPLOYER_TABLE": "ecs-deployer-test",
        "DEPLOYER_CONFIG_TABLE": "ecs-deployer-test-config",
        "DEPLOYER_EVENT_BUS": "ecs-deployer-test",
        "DEPLOYER_SIGNING_KEY_SECRET": "ecs-deployer/test/approval-signing-key",
        "DEPLOYER_SLACK_SECRET": "ecs-deployer/test/slack",
        "DEPLOYER_WEBHOOK_SECRET": "ecs-deployer/test/webhooks",
    }


@pytest.mark.parametrize("name", HANDLERS)
def test_a_handlers_import_loads_no_yaml_parser_models_slack_or_sqlite_and_builds_no_event_model(name: str) -> None:
    # GIVEN Lambda's environment, the tracer on
    # WHEN the handler module is imported, as Lambda's init phase does
    result = run_python(
        f"""
load({name!r})
print(json.dumps({{"loaded": sorted(m for m in {list(NOT_ON_THE_COLD_PATH)!r} if m in sys.modules),
                  "xray": "aws_xray_sdk.ext.botocore" in sys.modules,
                  "built": built_event_models()}}))
""",
        lambda_env(name),
    )
    # THEN none of what the cold path does not need was imported
    assert result["loaded"] == []
    # AND the tracer is on and patched the AWS SDK (the part of its patching that is used)
    assert result["xray"] is True
    # AND no event model was built: each is built when an event of its kind is first parsed
    assert result["built"] == []


# A world in moto, then a cold start: the default session forgotten, botocore sessions and clients
# counted from here on (a real cold start has neither).
_WORLD = """
import botocore.session, boto3
from moto import mock_aws

mock = mock_aws()
mock.start()
from tests.support.world import commit_id, make_world
world = make_world("cold")
secrets = boto3.client("secretsmanager")
for name, value in (("ecs-deployer/test/slack", "{}"), ("ecs-deployer/test/approval-signing-key", "k" * 40)):
    secrets.create_secret(Name=name, SecretString=value)
boto3.DEFAULT_SESSION = None
sessions, clients = [], []
_init, _create = botocore.session.Session.__init__, botocore.session.Session.create_client

def counted_init(self, *args, **kwargs):
    sessions.append(1)
    _init(self, *args, **kwargs)

def counted_create(self, service_name, *args, **kwargs):
    clients.append(service_name)
    return _create(self, service_name, *args, **kwargs)

botocore.session.Session.__init__ = counted_init
botocore.session.Session.create_client = counted_create

class Context:
    function_name = "ecs-deployer-test-fn"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ecs-deployer-test-fn"
    aws_request_id = "c0ffee00-0000-4000-8000-000000000000"
    def get_remaining_time_in_millis(self):
        return 30000
"""


def test_the_first_push_builds_only_the_clients_a_push_uses_all_on_one_session() -> None:
    # GIVEN the demo pipeline in moto and OnPushFunction's environment (tables of the world "cold")
    env = {
        **lambda_env("on_push"),
        "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon here; the tracer is not what is checked
        **DeployerNames("cold").env(),
        "DEPLOYER_CONFIG_MAX_AGE": "0",
    }
    # WHEN OnPushFunction starts cold and handles a push of a new commit
    result = run_python(
        _WORLD
        + """
app = load("on_push")
answer = app.lambda_handler(world.push(commit_id("cold-path")), Context())
print(json.dumps({"outcome": answer["result"][0]["outcome"], "sessions": len(sessions),
                  "clients": sorted(set(clients)), "built": built_event_models()}))
""",
        env,
    )
    # THEN the release started
    assert result["outcome"] == "build_started"
    # AND only the clients a push uses were built: no ECS, ECR or Application Auto Scaling client
    assert result["clients"] == ["codebuild", "dynamodb", "events", "secretsmanager"]
    # AND all of them, the idempotency store's included, came from one botocore session (one
    # credentials resolution, each service model parsed once)
    assert result["sessions"] == 1
    # AND the first event built the models of a push, and of what it publishes, and no other
    assert "CodeCommitReferenceEvent" in result["built"]
    assert "ReleaseStateChangeDetail" in result["built"]
    assert not {"CodeBuildStateChangeEvent", "EcsDeploymentStateChangeEvent", "ApprovalDecidedEvent"} & set(
        result["built"]
    )


def test_a_get_of_the_approval_page_loads_no_slack_sdk() -> None:
    # GIVEN a release waiting for prod's approval, and ApprovalsHttpFunction's environment
    env = {
        **lambda_env("approvals_http"),
        "POWERTOOLS_TRACE_DISABLED": "true",
        **DeployerNames("cold").env(),
    }
    # WHEN a browser GETs the approval page from a cold function
    result = run_python(
        _WORLD
        + """
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer_local.function_url import request_event
from tests.support.events import load_event
from tests.support.world import SIGNING_KEY
secrets.put_secret_value(SecretId="ecs-deployer/test/approval-signing-key", SecretString=SIGNING_KEY.decode())
push = parse_event(CodeCommitReferenceEvent, world.push(commit_id("cold-page")))
(started,) = on_push(push, world.deps)
build = parse_event(CodeBuildStateChangeEvent, world.build_finished(started["release_id"]))
on_build(build, world.deps)
release = world.store.get(started["release_id"])
done = load_event("ecs_deployment_completed")
done["resources"] = ["arn:aws:ecs:eu-west-1:123456789012:service/dev/web"]
done["detail"]["deploymentId"] = release.stages["dev"].deployment_id
on_deployment(parse_event(EcsDeploymentStateChangeEvent, done), world.deps)
token = world.deps.approvals.link_for_release(world.store.get(started["release_id"])).rsplit("/", 1)[1]
slack_before = "slack_sdk" in sys.modules
app = load("approvals_http")
page = app.lambda_handler(request_event("GET", f"/approvals/{token}", {"user-agent": "a browser"}, b"",
                                        source_ip="192.0.2.1", host="approvals.example"), Context())
print(json.dumps({"status": page["statusCode"], "slack_before": slack_before,
                  "slack": sorted(m for m in sys.modules if m.split(".")[0] == "slack_sdk")}))
""",
        env,
    )
    # THEN the page is shown
    assert result["status"] == 200
    # AND Slack's SDK was never imported (the Block Kit models are for messages, not the page)
    assert result["slack_before"] is False
    assert result["slack"] == []


def test_a_lazy_client_is_created_by_its_first_use_and_is_the_process_wide_client() -> None:
    # GIVEN no client built yet
    aws._cached_client.cache_clear()
    try:
        # WHEN a lazy ECS client is made
        ecs = aws.lazy_client("ecs")
        # THEN nothing is built
        assert aws._cached_client.cache_info().currsize == 0
        assert "created when first used" in repr(ecs)
        # WHEN it is first used
        name = ecs.meta.service_model.service_name
        # THEN the process-wide ECS client was built, once, and the lazy one is that client
        assert name == "ecs"
        assert aws._cached_client.cache_info().currsize == 1
        assert ecs.meta is aws.client("ecs").meta
        assert ecs.exceptions.ServiceNotFoundException is aws.client("ecs").exceptions.ServiceNotFoundException
    finally:
        aws._cached_client.cache_clear()
