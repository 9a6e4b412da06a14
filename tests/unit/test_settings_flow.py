"""Deploy-time settings through a release and through `deployer deploy`/`diff`: the exact
RegisterTaskDefinition a stage sends (botocore Stubber), every problem refused before any change,
a redelivery that reuses the revision (settings are part of its content), the approval page, Slack
and `deployer status` showing names and references but never a secret's value, and the one-shot
commands' `--env`, `--secret`, `--unset`.

AWS facts: ECS API reference, "Secret" (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Secret.html):
valueFrom is "the full ARN of the AWS Secrets Manager secret or the full ARN of the parameter in the
SSM Parameter Store"; ECS developer guide, "Pass Secrets Manager secrets through Amazon ECS
environment variables" (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html):
"To use this feature, you must have the Amazon ECS task execution role and reference it in your task
definition" (the same sentence on "Specifying sensitive data using Secrets Manager"), and ECS reads
the secret when the container starts: "Sensitive data is injected into your container when the
container is initially started".
"""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from botocore.stub import ANY, Stubber

from deployer import slack
from deployer.approval_http import ApprovalHttp
from deployer.errors import TransientError
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ApprovalDecidedEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.approval import on_approval
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.progress import settings_context
from deployer.flow.push import on_push
from deployer.pipelines.loader import load_config_text
from deployer.releases.model import Release, ReleaseState
from deployer.releases.store import ReleaseStore
from deployer.reporting import view_of
from deployer.stages import StageDeployer
from deployer_cli import main
from deployer_cli.views.status import release_status, render_table
from deployer_local.provision import ACCOUNT, DemoAccount, demo_pipelines_yaml, provision_demo
from tests.support.events import load_event
from tests.support.world import World, commit_id
from tests.unit.test_stages import (
    NEW_ARN,
    OLD_ARN,
    built_release,
    described_task_definition,
    expected_register_request,
    service_response,
    store,  # noqa: F401 - the fixture
)

pytestmark = pytest.mark.unit

SECRET_VALUE = "correct-horse-battery-staple-42"
SECRET_ARN_PREFIX = f"arn:aws:secretsmanager:eu-west-1:{ACCOUNT}:secret:"
DEV_SETTINGS = f"""
        environment:
          web: {{LOG_LEVEL: warn, PORT: "9090"}}
        secrets:
          web: {{DB_PASSWORD: "{SECRET_ARN_PREFIX}prod/web/db-AbCdEf:password::"}}
"""
PIPELINE_YAML = f"""
pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {{project: web-app-build}}
    container: web
    stages:
      - name: dev
        cluster: dev
        service: web
        rollout: {{minimumHealthyPercent: 50, maximumPercent: 150, circuitBreaker: {{rollback: true}}}}
{DEV_SETTINGS}"""


# --- the stage, against a stubbed ECS --------------------------------------------------------------


def test_a_stage_registers_exactly_the_clone_with_its_settings(store: ReleaseStore) -> None:  # noqa: F811
    ecs = boto3.client("ecs")
    release = built_release(store)
    pipeline = load_config_text(PIPELINE_YAML).pipelines[0]
    # The clone of test_stages (read-only keys removed, ipcMode/pidMode kept, aws: tags dropped), with
    # PORT replaced where it stood, LOG_LEVEL appended, and a `secrets` list holding DB_PASSWORD.
    expected = expected_register_request()
    web = expected["containerDefinitions"][0]
    web["environment"] = [{"name": "PORT", "value": "9090"}, {"name": "LOG_LEVEL", "value": "warn"}]
    web["secrets"] = [{"name": "DB_PASSWORD", "valueFrom": f"{SECRET_ARN_PREFIX}prod/web/db-AbCdEf:password::"}]
    sidecar = described_task_definition()["taskDefinition"]["containerDefinitions"][1]
    assert expected["containerDefinitions"][1] == sidecar
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service_response(OLD_ARN), {"cluster": "dev", "services": ["web"]})
        stub.add_response(
            "describe_task_definition", described_task_definition(), {"taskDefinition": OLD_ARN, "include": ["TAGS"]}
        )
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
            expected,
        )
        stub.add_response(
            "update_service",
            {"service": {"deployments": [{"id": "ecs-svc/2222", "status": "PRIMARY"}]}},
            {"cluster": "dev", "service": "web", "taskDefinition": NEW_ARN, "deploymentConfiguration": ANY},
        )
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    assert result.outcome == "deploying"
    record = release.stages["dev"]
    assert record.settings == "web: PORT=9090 (changed), LOG_LEVEL=warn (added), DB_PASSWORD (secret, added)"
    stored = store.get(release.release_id)
    assert stored is not None
    assert stored.stages["dev"].settings == record.settings


def test_every_problem_is_refused_before_any_change(store: ReleaseStore) -> None:  # noqa: F811
    # GIVEN settings for a container the task definition lacks, and secrets with no execution role
    ecs = boto3.client("ecs")
    release = built_release(store)
    text = PIPELINE_YAML + "          api: {TOKEN: /api/token}\n"
    pipeline = load_config_text(text).pipelines[0]
    described = described_task_definition()
    del described["taskDefinition"]["executionRoleArn"]
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", service_response(OLD_ARN))
        stub.add_response("describe_task_definition", described)
        # WHEN the stage deploys (no RegisterTaskDefinition, no UpdateService is stubbed)
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    # THEN the release failed with every problem, and the service is free
    assert result.outcome == "failed"
    assert release.state is ReleaseState.DEPLOY_FAILED
    reason = release.reason or ""
    assert "container 'api' is not in web:7; its containers are: 'web', 'log-router'" in reason
    assert "secrets need a task execution role and web:7 has none (executionRoleArn)" in reason
    assert reason.endswith("(nothing was registered)")
    assert store.lock_of("dev", "web") is None


# --- the flow, in moto -----------------------------------------------------------------------------


class Calls:
    def __init__(self) -> None:
        self.made: list[tuple[str, str]] = []


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every AWS API call made in the process, whoever made the client."""
    seen = Calls()
    original = BaseClient._make_api_call

    def spy(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        seen.made.append((client.meta.service_model.service_name, operation))
        return original(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", spy)
    return seen


def prod_settings_yaml(world: World, secret_arn: str) -> str:
    """The demo pipeline (dev, then prod behind an approval) with settings on prod."""
    return demo_pipelines_yaml(world.account) + (
        "        environment:\n"
        "          web: {LOG_LEVEL: warn, PORT: '9090'}\n"
        "        secrets:\n"
        f'          web: {{DB_PASSWORD: "{secret_arn}:password::"}}\n'
    )


def a_secret(value: str = SECRET_VALUE) -> str:
    """A real secret in (moto's) Secrets Manager; its ARN."""
    created = boto3.client("secretsmanager").create_secret(
        Name="prod/web/db", SecretString=json.dumps({"password": value})
    )
    return str(created["ARN"])


def current(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def push_and_build(world: World, label: str) -> str:
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, world.push(commit_id(label))), world.deps)
    release_id = str(started["release_id"])
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    return release_id


def complete(world: World, release_id: str, stage: str) -> None:
    event: dict[str, Any] = load_event("ecs_deployment_completed")
    event["detail"]["deploymentId"] = current(world, release_id).stages[stage].deployment_id
    on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)


def approve(world: World, release: Release) -> None:
    event: dict[str, Any] = load_event("approval_decided_approve")
    event["detail"].update(release_id=release.release_id, stage=release.stage, approval_id=release.approval_id)
    on_approval(parse_event(ApprovalDecidedEvent, event), world.deps)


def container(world: World, arn: str, name: str = "web") -> dict[str, Any]:
    definition = world.task_definition(arn)["taskDefinition"]
    return next(c for c in definition["containerDefinitions"] if c["name"] == name)


@pytest.mark.functional
def test_a_secret_is_shown_by_name_and_reference_and_its_value_never_read(
    world: World, calls: Calls, caplog: pytest.LogCaptureFixture
) -> None:
    secret_arn = a_secret()
    caplog.set_level(logging.DEBUG)  # every log line from here on, botocore's request dumps included
    world.publish(prod_settings_yaml(world, secret_arn))
    start = len(calls.made)
    # GIVEN a release that reached prod's approval
    release_id = push_and_build(world, "secret")
    complete(world, release_id, "dev")
    release = current(world, release_id)
    assert (release.state, release.stage) == (ReleaseState.AWAITING_APPROVAL, "prod")
    # THEN the approval records what prod's settings change, secrets by reference
    context = release.approval_context or {}
    assert context["settings_line"] == "web: PORT=9090 (changed), LOG_LEVEL=warn (added), DB_PASSWORD (secret, added)"
    assert [(c["name"], c["change"]) for c in context["settings"]["changes"]] == [
        ("PORT", "changed"),
        ("LOG_LEVEL", "added"),
        ("DB_PASSWORD", "added"),
    ]

    # AND the approval page shows names, plain values and the reference
    link = world.deps.approvals.link_for_release(release)  # type: ignore[union-attr]
    assert link
    http = ApprovalHttp(
        approvals=world.deps.approvals,  # type: ignore[arg-type]
        store=world.store,
        events=boto3.client("events"),
        event_bus_name=world.names.bus,
        slack=None,  # type: ignore[arg-type] - a GET never posts
        slack_settings=slack.SlackSettings,
    )
    page = http.show(link.rsplit("/", 1)[-1]).body
    assert "<code>web</code> changed <code>PORT</code>: <code>8080</code> → <code>9090</code>" in page
    assert "<code>web</code> added <code>LOG_LEVEL</code>: <i>not set</i> → <code>warn</code>" in page
    assert (
        f"<code>web</code> added <code>DB_PASSWORD</code>: <i>not set</i> → secret from "
        f"<code>{secret_arn}:password::</code>"
    ) in page
    assert (
        f"ECS reads these secrets with the task execution role arn:aws:iam::{ACCOUNT}:role/web-execution when each "
        "task starts: it must be allowed secretsmanager:GetSecretValue on them (and kms:Decrypt for a customer "
        "managed key), or the new tasks fail to start; the deployer neither grants nor checks it"
    ) in page

    # AND the Slack approval request says it in one line
    blocks = slack.approval_blocks(view_of(release), interactive=True, approval_token="t")
    shown = json.dumps([block.to_dict() for block in blocks])
    assert "*Settings*\\nweb: PORT=9090 (changed), LOG_LEVEL=warn (added), DB_PASSWORD (secret, added)" in shown

    # WHEN prod is approved and deploys
    approve(world, release)
    release = current(world, release_id)
    assert release.state is ReleaseState.DEPLOYING
    registered = release.stages["prod"].task_definition_arn
    assert registered
    web = container(world, registered)
    assert web["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": f"{secret_arn}:password::"}]
    assert {"name": "LOG_LEVEL", "value": "warn"} in web["environment"]
    # THEN `deployer status` shows what prod's revision changed
    table = render_table([_pipeline_status(release)], width=140)
    assert "settings  prod web: PORT=9090 (changed), LOG_LEVEL=warn (added), DB_PASSWORD (secret, added)\n" in table
    shown_status = json.dumps(release_status(release, ("dev", "prod")).to_json())
    assert '"settings": "web: PORT=9090 (changed), LOG_LEVEL=warn (added), DB_PASSWORD (secret, added)"' in shown_status
    # AND the "Release State Change" of prod's deployment (what Slack and the bus get) says it
    deploying = [t for t in world.transitions if t.to_state is ReleaseState.DEPLOYING and t.stage == "prod"]
    assert [t.reason for t in deploying] == [
        "registering a revision of web with web: PORT=9090 (changed), LOG_LEVEL=warn (added), "
        "DB_PASSWORD (secret, added)"
    ]

    # AND the deployer never asked Secrets Manager or SSM for anything: ECS reads the secret when a task starts
    assert [c for c in calls.made[start:] if c[0] in {"secretsmanager", "ssm"}] == []
    # AND the value is nowhere: not on the page, in Slack, the status, the logs, the events or the table
    items = boto3.resource("dynamodb").Table(world.names.table).scan()["Items"]
    reasons = [t.reason or "" for t in world.transitions]
    for text in (page, shown, table, shown_status, caplog.text, json.dumps(items, default=str), *reasons):
        assert SECRET_VALUE not in text


@pytest.mark.functional
def test_once_deployed_the_changes_are_read_from_the_revisions_themselves(world: World) -> None:
    # GIVEN prod deployed with its settings (what an approval asked during the deployment, `at:`, sees)
    secret_arn = a_secret()
    world.publish(prod_settings_yaml(world, secret_arn))
    release_id = push_and_build(world, "paused")
    complete(world, release_id, "dev")
    approve(world, current(world, release_id))
    release = current(world, release_id)
    pipeline = world.deps.config().pipeline_named("web")
    assert pipeline is not None
    stage = pipeline.stage_named("prod")
    assert stage is not None
    record = release.stages["prod"]
    assert record.task_definition_arn
    assert record.previous_task_definition_arn
    # WHEN its approval context is built, the service already running the new revision
    context = settings_context(release, stage, record.task_definition_arn, world.deps)
    # THEN the changes are those between the revision it replaced and the one it registered
    assert context["settings_line"] == "web: PORT=9090 (changed), LOG_LEVEL=warn (added), DB_PASSWORD (secret, added)"
    assert "arn:aws:iam::123456789012:role/web-execution" in context["settings"]["role_note"]


def _pipeline_status(release: Release) -> Any:
    from deployer_cli.views.status import PipelineStatus

    return PipelineStatus(name="web", releases=(release_status(release, ("dev", "prod")),))


def test_a_stage_whose_settings_name_a_missing_container_waits_with_the_reason_on_its_approval(world: World) -> None:
    world.publish(demo_pipelines_yaml(world.account) + "        environment: {api: {LOG_LEVEL: warn}}\n")
    release_id = push_and_build(world, "missing")
    complete(world, release_id, "dev")
    context = current(world, release_id).approval_context or {}
    assert context["settings"] == {
        "note": "container 'api' is not in web:2; its containers are: 'web', 'log-router': the stage will be "
        "refused, nothing registered"
    }
    assert context["settings_line"] == context["settings"]["note"]


def test_a_redelivery_after_registering_reuses_the_revision_with_its_settings(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN dev with settings, and the write that records the registered revision failing once
    dev_rollout = (
        "        rollout: {minimumHealthyPercent: 100, maximumPercent: 200, circuitBreaker: {rollback: true}}\n"
    )
    text = demo_pipelines_yaml(world.account, prod_approval=False)
    assert dev_rollout in text
    world.publish(text.replace(dev_rollout, dev_rollout + DEV_SETTINGS.lstrip("\n"), 1))
    before = world.revisions()
    original = StageDeployer._record
    failed: list[str] = []

    def record(self: StageDeployer, release: Release, stage: Any, reason: str, **kwargs: Any) -> Any:
        if reason.startswith("registered") and not failed:
            failed.append(reason)
            raise TransientError("DynamoDB PutItem: ThrottlingException")
        return original(self, release, stage, reason, **kwargs)

    monkeypatch.setattr(StageDeployer, "_record", record)
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, world.push(commit_id("redeliver"))), world.deps)
    release_id = str(started["release_id"])
    event = parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id))
    with pytest.raises(TransientError):
        on_build(event, world.deps)
    assert len(world.revisions()) == len(before) + 1
    # WHEN EventBridge redelivers the build event
    outcome = on_build(event, world.deps)
    # THEN the revision registered the first time is found (its settings are part of its content) and reused
    assert outcome["outcome"] == "deploying", outcome
    assert len(world.revisions()) == len(before) + 1
    release = current(world, release_id)
    arn = release.stages["dev"].task_definition_arn
    assert arn == world.revisions()[-1]
    assert world.service("dev")["taskDefinition"] == arn
    assert {"name": "LOG_LEVEL", "value": "warn"} in container(world, str(arn))["environment"]
    assert release.stages["dev"].settings


@pytest.mark.functional
def test_a_revision_without_the_settings_is_not_taken_for_the_clone(world: World) -> None:
    # GIVEN a newer revision of the family that has the image but not the settings
    from deployer.settings import DeploySettings
    from deployer.taskdef import register as taskdef

    ecs = boto3.client("ecs")
    described = taskdef.describe_task_definition(ecs, world.account.services["dev"].task_definition_arn)
    image = world.account.first_image.rsplit(":", 1)[0] + ":v2"
    images = {"web": image}
    taskdef.register_clone_of(ecs, described, images)
    wanted = DeploySettings(environment={"web": {"LOG_LEVEL": "warn"}})
    # THEN the lookup for the clone with settings finds nothing, and finds the one with them once registered
    assert taskdef.find_registered_clone(ecs, described, images, wanted) is None
    registered = taskdef.register_clone_of(ecs, described, images, wanted)
    found = taskdef.find_registered_clone(ecs, described, images, wanted)
    assert found is not None
    assert found.arn == registered.arn


# --- deployer deploy / diff -------------------------------------------------------------------------


@pytest.fixture
def account(moto_aws: None) -> DemoAccount:
    return provision_demo()


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


PROD = ("--cluster", "prod", "--service", "web")
REFERENCE = f"{SECRET_ARN_PREFIX}prod/web/db-AbCdEf:password::"


def test_diff_and_deploy_set_environment_and_secrets_without_an_image(
    account: DemoAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    ecs = boto3.client("ecs")
    old_arn = account.services["prod"].task_definition_arn
    settings_args = ("--env", "web", "LOG_LEVEL=warn", "--secret", "web", f"DB_PASSWORD={REFERENCE}")
    # WHEN diff is asked for settings only
    code, out, err = cli(capsys, "diff", *PROD, *settings_args)
    # THEN it shows the JSON diff of environment and secrets, names and references, and exits 3
    assert (code, err) == (3, "")
    changed = [line for line in out.splitlines() if line[:1] in "+-" and not line.startswith(("---", "+++"))]
    assert '+          "name": "LOG_LEVEL",' in changed
    assert f'+          "valueFrom": "{REFERENCE}"' in changed
    assert not any('"image"' in line for line in changed)
    assert "Environment and secrets:" in out
    assert '  web: LOG_LEVEL: (not set) → "warn" (added)' in out
    assert f"  web: DB_PASSWORD: (not set) → secret from {REFERENCE} (added)" in out
    assert (
        f"  Note: ECS reads these secrets with the task execution role arn:aws:iam::{ACCOUNT}:role/web-execution" in out
    )
    assert out.splitlines()[-1] == "Changes: the task definition (a new revision)."
    # WHEN deploy runs with the same settings
    code, out, err = cli(capsys, "deploy", *PROD, *settings_args)
    assert (code, err) == (0, "")
    new_arn = ecs.describe_services(cluster="prod", services=["web"])["services"][0]["taskDefinition"]
    assert new_arn != old_arn
    assert f"Registered {new_arn.rsplit('/', 1)[-1]}" in out
    # THEN the new revision is the old one with the settings and nothing else
    old = copy.deepcopy(ecs.describe_task_definition(taskDefinition=old_arn)["taskDefinition"])
    new = copy.deepcopy(ecs.describe_task_definition(taskDefinition=new_arn)["taskDefinition"])
    web = new["containerDefinitions"][0]
    assert web["environment"] == [{"name": "PORT", "value": "8080"}, {"name": "LOG_LEVEL", "value": "warn"}]
    assert web["secrets"] == [{"name": "DB_PASSWORD", "valueFrom": REFERENCE}]
    for definition in (old, new):
        for key in ("taskDefinitionArn", "revision", "registeredAt", "registeredBy"):
            definition.pop(key, None)
        definition["containerDefinitions"][0].pop("environment")
        definition["containerDefinitions"][0].pop("secrets", None)
    assert new == old
    # AND the same command again has nothing to do; unset then removes them
    code, out, _ = cli(capsys, "deploy", *PROD, *settings_args)
    assert "Nothing to do: prod/web already runs these settings with this configuration." in out
    code, out, _ = cli(capsys, "diff", *PROD, "--unset", "web", "LOG_LEVEL", "--unset", "web", "DB_PASSWORD")
    assert code == 3
    assert '  web: LOG_LEVEL: "warn" → (not set) (removed)' in out


def test_settings_for_a_missing_container_are_refused_with_every_problem(
    account: DemoAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    before = boto3.client("ecs").list_task_definitions()["taskDefinitionArns"]
    code, out, err = cli(
        capsys, "deploy", *PROD, "--container", "cron", "--image", "public.ecr.aws/nginx/nginx:1.28",
        "--env", "api", "LOG_LEVEL=warn",
    )  # fmt: skip
    assert (code, out) == (1, "")
    assert err == (
        "deployer deploy: error: containers 'cron', 'api' are not in web:2; its containers are: 'web', "
        "'log-router' (nothing was registered or updated)\n"
    )
    assert boto3.client("ecs").list_task_definitions()["taskDefinitionArns"] == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--env", "web", "LOG_LEVEL"), "--env web 'LOG_LEVEL': give NAME=VALUE"),
        (("--env", "web", "LOG LEVEL=x"), "--env web LOG LEVEL: 'LOG LEVEL' is not an environment variable name"),
        (
            ("--secret", "web", f"DB={SECRET_ARN_PREFIX}db-AbCdEf:password"),
            "--secret web DB: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf:password': after the "
            "secret's name ECS takes all three",
        ),
        (("--secret", "web", "DB=arn:aws:s3:::b/k"), "is not a Secrets Manager secret ARN nor an SSM parameter ARN"),
        (("--env", "web", "A=1", "--secret", "web", "A=/a"), "'A' is also set in environment.web"),
        (("--env", "web", "A=1", "--env", "web", "A=2"), "--env: 'A' of container 'web' is given twice"),
    ],
)
def test_unusable_settings_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    # No AWS call happens: no moto world is needed.
    code, out, err = cli(capsys, "deploy", *PROD, *args)
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert err.startswith("deployer deploy: error: ")
    assert message in err
