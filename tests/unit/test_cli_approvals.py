"""`deployer approvals`: the approvals waiting now, oldest first, each with its approvers, its
expiry and its link re-derived from the signing key (never stored); none waiting says so; an
unknown pipeline is a usage error."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import Release, ReleaseState
from deployer_cli import build_parser, main
from deployer_cli.commands import approvals as cli_approvals
from deployer_cli.target import NAMES, STACK_ENV
from deployer_cli.views.status import short_principal
from tests.support.events import load_event
from tests.support.world import APPROVAL_BASE_URL, SIGNING_KEY, World, commit_id

pytestmark = pytest.mark.unit


def waiting_release(world: World, label: str) -> Release:
    """A push built and deployed to dev: it waits for the approval of prod."""
    event = world.push(commit_id(label))
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    release_id = str(started["release_id"])
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    release = world.store.get(release_id)
    assert release is not None
    completed: dict[str, Any] = load_event("ecs_deployment_completed")
    service = world.account.services["dev"]
    completed["resources"] = [f"arn:aws:ecs:eu-west-1:123456789012:service/{service.cluster}/{service.service}"]
    completed["detail"]["deploymentId"] = release.stages["dev"].deployment_id
    on_deployment(parse_event(EcsDeploymentStateChangeEvent, completed), world.deps)
    waiting = world.store.get(release_id)
    assert waiting is not None
    assert waiting.state is ReleaseState.AWAITING_APPROVAL
    return waiting


@pytest.fixture
def world(moto_aws: None, world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    """The world in moto (the command builds its own clients)."""
    for name in [n.env for n in NAMES.values()] + [STACK_ENV, "AWS_ENDPOINT_URL"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .local/stack.json here
    return world


def argv(world: World, *extra: str, links: bool = True) -> list[str]:
    names = world.names
    found = ["approvals", "--table", names.table, "--config-table", names.config_table]
    if links:
        secret = boto3.client("secretsmanager").create_secret(Name="key", SecretString=SIGNING_KEY.decode())
        found += ["--signing-key-secret", secret["ARN"], "--approval-url", APPROVAL_BASE_URL]
    return [*found, *extra]


def run(args: list[str], now: datetime) -> int:
    return cli_approvals.run(build_parser(only="approvals").parse_args(args), now=now)


def test_a_waiting_approval_is_listed_with_its_approvers_expiry_and_link(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a release waiting for prod's approval
    release = waiting_release(world, "one")
    assert release.approval_expires_at is not None
    since = datetime.fromisoformat(release.updated_at.replace("Z", "+00:00"))
    now = since + timedelta(minutes=12, seconds=5)
    # WHEN listed
    assert run(argv(world), now) == 0
    out = capsys.readouterr().out
    # THEN one entry says what waits, since when, until when, who decides, and the link
    lines = out.splitlines()
    expires = datetime.fromisoformat(release.approval_expires_at.replace("Z", "+00:00"))
    assert lines[0] == "1 approval waiting, oldest first"
    assert release.pusher is not None
    assert lines[1] == f"web → prod  commit {release.short_commit} by {short_principal(release.pusher)}"
    assert lines[2] == f"  waiting    12m 5s (since {since:%Y-%m-%d %H:%M} UTC)"
    assert lines[3].startswith(f"  expires    {expires:%Y-%m-%d %H:%M} UTC (in ")
    assert lines[4] == "  approvers  U012ABCDEF"
    assert lines[5].startswith(f"  link       {APPROVAL_BASE_URL}/approvals/v1.")
    # AND the link is the one the approvals module derives (never stored in the table)
    assert world.deps.approvals is not None
    assert lines[5].split()[-1] == world.deps.approvals.link_for_release(release)


def test_json_has_stable_keys(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    release = waiting_release(world, "one")
    assert run(argv(world, "--json"), datetime.now().astimezone()) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert set(item) == {
        "pipeline",
        "stage",
        "release_id",
        "commit",
        "pusher",
        "image",
        "waiting_since",
        "expires_at",
        "approvers",
        "paused_at",
        "link",
        "link_note",
    }
    assert (item["release_id"], item["stage"], item["approvers"]) == (release.release_id, "prod", ["U012ABCDEF"])


def test_without_the_signing_key_the_approval_says_what_its_link_needs(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    waiting_release(world, "one")
    assert run(argv(world, links=False), datetime.now().astimezone()) == 0
    assert "  link       (link: needs the signing key)" in capsys.readouterr().out


def test_none_waiting_says_so(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv(world, links=False)) == 0
    assert capsys.readouterr().out == "No approval is waiting (pipelines: web).\n"


def test_an_unknown_pipeline_is_a_usage_error(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv(world, "--pipeline", "api", links=False)) == 2
    assert capsys.readouterr().err == (
        "deployer approvals: error: no pipeline 'api' in the published configuration (pipelines: web)\n"
    )


def test_an_aws_error_is_one_line_and_exit_1(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["approvals", "--table", "nope", "--config-table", "nope"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("deployer approvals: error:")
