"""Where every command acts (`deployer_cli.target`): a flag, then `--stack NAME` (the deployed
stack's outputs, one DescribeStacks call), then the environment, then DEPLOYER_STACK, then the
local stack's state file; a missing stack or output is one line naming it.

AWS fact relied on: "If the stack doesn't exist, a ValidationError is returned." (DescribeStacks,
AWS CloudFormation API Reference,
https://docs.aws.amazon.com/AWSCloudFormation/latest/APIReference/API_DescribeStacks.html); the
response's `Stacks[].Outputs[]` carry `OutputKey` and `OutputValue` (the same page, and botocore's
cloudformation model: `DescribeStacks` output shape `Stack.Outputs` members OutputKey, OutputValue,
Description, ExportName). moto answers both the same way."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.parse import parse_event
from deployer.flow import rollback as flow_rollback
from deployer.flow.build import on_build
from deployer.flow.push import on_push
from deployer_cli import UsageError, build_parser, main
from deployer_cli.target import NAMES, STACK_ENV, STACK_OUTPUTS, Stack, resolve_names, target_from
from deployer_local import template
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

STACK = "ecs-deployer-test"
ENV_NAMES = [name.env for name in NAMES.values()] + [STACK_ENV, "AWS_ENDPOINT_URL"]


# -- the template and the resolver agree -----------------------------------------------------------


def test_the_template_declares_every_output_the_commands_read() -> None:
    # GIVEN the outputs the resolver reads, and template.yaml's Outputs
    outputs = template.load()["Outputs"]
    # THEN each is declared, and the signing key secret is one of them (its ARN, by Ref)
    assert set(outputs) >= STACK_OUTPUTS
    assert outputs["ApprovalSigningKeyArn"]["Value"] == {"Ref": "ApprovalSigningKey"}
    assert outputs["SlackSecretArn"]["Value"] == {"Ref": "SlackSecret"}
    assert outputs["ApprovalsUrl"]["Value"] == {"Fn::GetAtt": ["ApprovalsHttpFunctionUrl", "FunctionUrl"]}


# -- the rule, with a stand-in for DescribeStacks ------------------------------------------------------


class Stacks:
    """DescribeStacks as the resolver calls it, counting calls."""

    def __init__(self, outputs: Mapping[str, Mapping[str, str]]) -> None:
        self.outputs = outputs
        self.calls: list[str] = []

    def __call__(self, name: str, region: str | None) -> Stack:
        self.calls.append(name)
        if name not in self.outputs:
            raise UsageError(f"no stack {name}")
        return Stack(name, region or "eu-west-1", "UPDATE_COMPLETE", dict(self.outputs[name]))


FULL = {
    "DeployerTableName": "t-stack",
    "ConfigTableName": "c-stack",
    "EventBusName": "b-stack",
    "ApprovalSigningKeyArn": "arn:k-stack",
    "SlackSecretArn": "arn:s-stack",
    "ApprovalsUrl": "https://x.lambda-url.eu-west-1.on.aws/",
}


def resolve(
    stacks: Stacks, *, given: Mapping[str, str] | None = None, stack: str | None = None, env: Mapping[str, str] = {}
) -> dict[str, str]:
    found = resolve_names(
        dict(given or {}),
        env,
        stack=stack,
        primary="table",
        need=("config_table", "event_bus"),
        want=("slack_secret", "signing_key_secret", "approval_url"),
        state_file=None,
        describe=stacks,
    )
    return dict(found.values)


def test_stack_outputs_name_everything_with_one_call() -> None:
    stacks = Stacks({"s": FULL})
    values = resolve(stacks, stack="s")
    assert values == {
        "table": "t-stack",
        "config_table": "c-stack",
        "event_bus": "b-stack",
        "slack_secret": "arn:s-stack",
        "signing_key_secret": "arn:k-stack",
        "approval_url": FULL["ApprovalsUrl"],
    }
    assert stacks.calls == ["s"]


def test_a_flag_beats_the_stack_and_the_stack_beats_the_environment() -> None:
    stacks = Stacks({"s": FULL})
    env = {"DEPLOYER_TABLE": "t-env", "DEPLOYER_CONFIG_TABLE": "c-env"}
    values = resolve(stacks, given={"table": "t-flag"}, stack="s", env=env)
    assert (values["table"], values["config_table"], values["event_bus"]) == ("t-flag", "c-stack", "b-stack")


def test_in_the_environment_a_single_name_beats_deployer_stack() -> None:
    stacks = Stacks({"s": FULL})
    env = {"DEPLOYER_TABLE": "t-env", STACK_ENV: "s"}
    values = resolve(stacks, env=env)
    assert (values["table"], values["config_table"]) == ("t-env", "c-stack")
    assert stacks.calls == ["s"]


def test_no_call_when_the_flags_and_environment_name_everything() -> None:
    stacks = Stacks({})
    names = {key: f"{key}-flag" for key in NAMES}
    assert resolve(stacks, given=names, stack="unread")["table"] == "table-flag"
    assert resolve(stacks, env={NAMES[k].env: "v" for k in NAMES} | {STACK_ENV: "unread"})["table"] == "v"
    assert stacks.calls == []


def test_a_stack_without_a_needed_output_names_it() -> None:
    # GIVEN a stack deployed from an older template: no bus output
    stacks = Stacks({"old": {k: v for k, v in FULL.items() if k != "EventBusName"}})
    # WHEN a command needing the bus reads it THEN one line names the stack, its status and the output
    with pytest.raises(UsageError) as raised:
        resolve(stacks, stack="old")
    assert str(raised.value) == (
        "stack old in eu-west-1 (status UPDATE_COMPLETE) has no output EventBusName: "
        "deploy the current template.yaml to it (sam deploy), or pass --event-bus"
    )


def test_an_optional_output_may_be_missing() -> None:
    stacks = Stacks({"s": {k: v for k, v in FULL.items() if k != "ApprovalSigningKeyArn"}})
    assert "signing_key_secret" not in resolve(stacks, stack="s")


def test_the_state_file_is_not_read_when_a_stack_names_the_table(tmp_path: Path) -> None:
    # GIVEN a state file of a local stack that is not running (reading it would be an error)
    state = tmp_path / "stack.json"
    state.write_text(json.dumps({"pid": 2**22 + 12345, "env": {}}))
    found = resolve_names(
        {}, {STACK_ENV: "s"}, stack=None, primary="table", state_file=state, describe=Stacks({"s": FULL})
    )
    target = target_from(found, {}, primary="table")
    assert (target.table, target.stack, target.local_stack, target.endpoint_url) == ("t-stack", "s", None, None)


def test_nothing_saying_where_names_every_way_to_say_it() -> None:
    with pytest.raises(UsageError) as raised:
        resolve_names({}, {}, stack=None, primary="table", state_file=Path("/nonexistent/stack.json"))
    assert str(raised.value) == (
        "no table: pass --table NAME or set DEPLOYER_TABLE (the stack's DeployerTableName output), "
        "or name the deployed stack: --stack NAME or DEPLOYER_STACK, "
        "or start the local stack (`deployer local up`, which writes /nonexistent/stack.json)"
    )


# -- every command takes --stack ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["status"],
        ["config", "publish", "pipelines.yaml"],
        ["config", "show"],
        ["rollback", "--pipeline", "web", "--stage", "prod"],
        ["approvals"],
        ["slack", "manifest"],
        ["slack", "configure"],
    ],
    ids=lambda argv: " ".join(argv[:2]),
)
def test_every_command_that_acts_on_a_deployed_deployer_takes_stack(argv: list[str]) -> None:
    args = build_parser(only=argv[0]).parse_args([*argv, "--stack", STACK])
    assert args.stack == STACK


# -- against a stack in (moto's) CloudFormation --------------------------------------------------------


def _deploy_stack(world: World, outputs: Mapping[str, str] | None = None) -> None:
    """A stack whose outputs name `world`'s resources, as template.yaml's Outputs would."""
    secrets = boto3.client("secretsmanager")
    signing = secrets.create_secret(Name="key", SecretString="k" * 64)["ARN"]
    slack = secrets.create_secret(Name="slack", SecretString="{}")["ARN"]
    values = {
        "DeployerTableName": world.names.table,
        "ConfigTableName": world.names.config_table,
        "EventBusName": world.names.bus,
        "ApprovalSigningKeyArn": signing,
        "SlackSecretArn": slack,
        "ApprovalsUrl": "https://abc.lambda-url.eu-west-1.on.aws/",
    }
    body = {
        "Resources": {"Topic": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {key: {"Value": value} for key, value in (values if outputs is None else outputs).items()},
    }
    boto3.client("cloudformation").create_stack(StackName=STACK, TemplateBody=json.dumps(body))


@pytest.fixture
def world(moto_aws: None, world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    """One release deploying dev, in moto (the commands build their own clients)."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .local/stack.json here
    event = world.push(commit_id("one"))
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(str(started["release_id"]))), world.deps)
    return world


def test_status_reads_a_deployed_stack(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    _deploy_stack(world)
    assert main(["status", "--stack", STACK]) == 0
    out = capsys.readouterr().out
    assert out.startswith("pipeline web (web-app main): 1 release, newest first")
    assert "DEPLOYING" in out


def test_deployer_stack_in_the_environment_does_the_same(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _deploy_stack(world)
    monkeypatch.setenv(STACK_ENV, STACK)
    assert main(["config", "show"]) == 0
    assert capsys.readouterr().out.startswith("version: 1\n")
    assert main(["approvals"]) == 0
    assert capsys.readouterr().out == "No approval is waiting (pipelines: web).\n"


def test_rollback_finds_its_bus_in_the_stack(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _deploy_stack(world)
    asked: list[str] = []

    def request_rollback(pipeline: str, stage: str, requested_by: dict[str, Any], deps: Any) -> dict[str, Any]:
        asked.append(deps.store._table.name)
        return {"outcome": "nothing_to_roll_back", "reason": "nothing earlier"}

    monkeypatch.setattr(flow_rollback, "request_rollback", request_rollback)
    assert main(["rollback", "--stack", STACK, "--pipeline", "web", "--stage", "dev", "--yes"]) == 1
    assert asked == [world.names.table]
    assert capsys.readouterr().out == "Not rolled back: nothing earlier.\n"


def test_a_missing_stack_is_one_line_naming_it_and_its_region(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--stack", "nope"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line == (
        "deployer status: error: no stack nope in eu-west-1 (CloudFormation: Stack with id nope does not exist): "
        "check the name, and the region (AWS_REGION or AWS_PROFILE)"
    )


def test_a_stack_missing_an_output_is_one_line_naming_it(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    _deploy_stack(world, {"DeployerTableName": world.names.table})
    assert main(["approvals", "--stack", STACK]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        f"deployer approvals: error: stack {STACK} in eu-west-1 (status CREATE_COMPLETE) has no output ConfigTableName"
    )


def test_the_status_resolver_keeps_its_names_for_argparse_namespaces(tmp_path: Path) -> None:
    # GIVEN a namespace without --stack (what older callers build)
    from deployer_cli.commands.status import resolve_target

    args = argparse.Namespace(
        table="t", config_table="c", pipeline=None, signing_key_secret=None, approval_url=None, state=tmp_path
    )
    target = resolve_target(args, dict(os.environ) | {STACK_ENV: ""})
    assert (target.table, target.config_table, target.stack) == ("t", "c", None)
