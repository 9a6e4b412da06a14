"""`deployer status`: releases newest first with their stages, states, times and reasons; the
approval link of a waiting release re-derived (never stored); a table that reads in 100 columns
and JSON with stable keys; clear errors when nothing says where to read."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ApprovalDecidedEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.approval import on_approval
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import Release, ReleaseState
from deployer_cli import UsageError, main
from deployer_cli.commands.status import resolve_target
from deployer_cli.views import status
from tests.support.events import load_event
from tests.support.world import APPROVAL_BASE_URL, SIGNING_KEY, World, commit_id

pytestmark = pytest.mark.unit

ENV_NAMES = (
    "DEPLOYER_TABLE",
    "DEPLOYER_CONFIG_TABLE",
    "DEPLOYER_SIGNING_KEY_SECRET",
    "DEPLOYER_APPROVAL_URL",
    "AWS_ENDPOINT_URL",
)


@dataclass
class History:
    """One pipeline's releases, oldest first, each in another state."""

    world: World
    released: str
    build_failed: str
    deploy_failed: str
    waiting: str
    building: str
    secret_arn: str

    def release(self, release_id: str) -> Release:
        release = self.world.store.get(release_id)
        assert release is not None
        return release


def _push(world: World, label: str, old: str | None, minute: int) -> str:
    event = world.push(commit_id(label), commit_id(old) if old else None, time=f"2026-11-29T10:{minute:02d}:00Z")
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    return str(started["release_id"])


def _build(world: World, release_id: str, build_status: str = "SUCCEEDED") -> None:
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id, status=build_status)), world.deps)


def _ecs(world: World, release_id: str, stage: str, sample: str, *, deployment_id: str | None = None) -> None:
    release = world.store.get(release_id)
    assert release is not None
    event: dict[str, Any] = load_event(sample)
    service = world.account.services[stage]
    event["resources"] = [f"arn:aws:ecs:eu-west-1:123456789012:service/{service.cluster}/{service.service}"]
    event["detail"]["deploymentId"] = deployment_id or release.stages[stage].deployment_id
    on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)


def _approve(world: World, release_id: str) -> None:
    release = world.store.get(release_id)
    assert release is not None
    event: dict[str, Any] = load_event("approval_decided_approve")
    event["detail"].update(release_id=release_id, stage=release.stage, approval_id=release.approval_id)
    on_approval(parse_event(ApprovalDecidedEvent, event), world.deps)


@pytest.fixture
def history(moto_aws: None, world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> History:
    """A history of releases in moto (the command builds its own clients)."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .local/stack.json here
    released = _push(world, "released", None, 0)
    _build(world, released)
    _ecs(world, released, "dev", "ecs_deployment_completed")
    _approve(world, released)
    _ecs(world, released, "prod", "ecs_deployment_completed")
    build_failed = _push(world, "build-failed", "released", 10)
    _build(world, build_failed, "FAILED")
    deploy_failed = _push(world, "deploy-failed", "build-failed", 20)
    _build(world, deploy_failed)
    _ecs(world, deploy_failed, "dev", "ecs_deployment_rolling_back", deployment_id="ecs-svc/3348108895209946212")
    _ecs(world, deploy_failed, "dev", "ecs_deployment_failed")
    waiting = _push(world, "waiting", "deploy-failed", 30)
    _build(world, waiting)
    _ecs(world, waiting, "dev", "ecs_deployment_completed")
    building = _push(world, "building", "waiting", 40)
    secret = boto3.client("secretsmanager").create_secret(Name="signing-key", SecretString=SIGNING_KEY.decode())
    return History(world, released, build_failed, deploy_failed, waiting, building, secret["ARN"])


def cli(history: History, *extra: str) -> list[str]:
    names = history.world.names
    return ["status", "--table", names.table, "--config-table", names.config_table, *extra]


def with_links(history: History) -> list[str]:
    return ["--signing-key-secret", history.secret_arn, "--approval-url", APPROVAL_BASE_URL]


def test_the_history_has_releases_in_every_kind_of_state(history: History) -> None:
    states = {
        history.release(r).state
        for r in (history.released, history.build_failed, history.deploy_failed, history.waiting, history.building)
    }
    assert states == {
        ReleaseState.RELEASED,
        ReleaseState.BUILD_FAILED,
        ReleaseState.DEPLOY_FAILED,
        ReleaseState.AWAITING_APPROVAL,
        ReleaseState.BUILDING,
    }


def test_the_table_lists_releases_newest_first_with_what_each_is_doing(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN status runs with the signing key and the approval page's URL
    assert main(cli(history, *with_links(history))) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    # THEN one block per release, newest first, under the pipeline's header
    assert lines[0] == "pipeline web (web-app main): 5 releases, newest first"
    rows = [line for line in lines if line[:12] and not line.startswith((" ", "pipeline", "COMMIT"))]
    order = [history.building, history.waiting, history.deploy_failed, history.build_failed, history.released]
    assert [row[:12] for row in rows] == [history.release(r).short_commit for r in order]
    assert [row.split()[1] for row in rows] == [
        "BUILDING",
        "AWAITING_APPROVAL",
        "DEPLOY_FAILED",
        "BUILD_FAILED",
        "RELEASED",
    ]
    # AND each stage's state, the reason, the approval link, the build log and who decided
    waiting = history.release(history.waiting)
    link = history.world.deps.approvals.link_for_release(waiting)  # type: ignore[union-attr]
    assert link
    assert "stages    dev DEPLOYED · prod awaiting approval" in out
    assert f"approval  {link} (expires " in out
    assert "stages    dev FAILED, rolled back · prod —" in out
    assert "stages    dev DEPLOYED · prod DEPLOYED" in out
    assert "decided   prod approved by Slack user U012ABCDEF at " in out
    assert "build log https://console.aws.amazon.com/cloudwatch/" in out
    assert "reason    deployed to every stage (dev, prod)" in out
    # AND every line but the links fits 100 columns; a long reason is cut with "…"
    assert all(len(line) <= 100 for line in lines if "https://" not in line)
    failed_reason = next(line for line in lines if "reason    ECS deployment" in line)
    assert failed_reason.endswith("…")
    assert len(failed_reason) == 100


def test_json_lists_every_release_with_the_same_keys(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(history, "--json", *with_links(history))) == 0
    releases = json.loads(capsys.readouterr().out)
    assert [r["release_id"] for r in releases] == [
        history.building,
        history.waiting,
        history.deploy_failed,
        history.build_failed,
        history.released,
    ]
    assert len({tuple(sorted(r)) for r in releases}) == 1
    assert {tuple(s) for r in releases for s in r["stages"]} == {tuple(releases[0]["stages"][0])}
    by_id = {r["release_id"]: r for r in releases}
    waiting = by_id[history.waiting]
    assert waiting["state"] == "AWAITING_APPROVAL"
    assert waiting["stage"] == "prod"
    assert waiting["approval_link"].startswith(f"{APPROVAL_BASE_URL}/approvals/v1.")
    assert waiting["approval_note"] is None
    assert [r["approval_link"] for r in releases if r["release_id"] != history.waiting] == [None] * 4
    failed = by_id[history.deploy_failed]
    assert failed["stages"][0] | {"started_at": None, "finished_at": None} == {
        "name": "dev",
        "state": "FAILED",
        "rolled_back": True,
        "started_at": None,
        "finished_at": None,
        "deployment_id": history.release(history.deploy_failed).stages["dev"].deployment_id,
        "task_definition": history.release(history.deploy_failed).stages["dev"].task_definition_arn.rsplit("/")[-1],  # type: ignore[union-attr]
        "reason": failed["reason"],
        "services": [],  # a stage of one service; a stage of several lists each (test_several_services.py)
        "settings": None,
        "before_text": None,
        "before_log_link": None,
    }
    assert failed["stages"][1]["state"] is None
    assert by_id[history.released]["decided_by"]["user"] == "U012ABCDEF"
    assert by_id[history.build_failed]["log_link"].startswith("https://")
    assert isinstance(by_id[history.building]["age_seconds"], int)


def test_the_approval_link_is_shown_and_not_stored(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    table = boto3.resource("dynamodb").Table(history.world.names.table)
    before = table.scan()["Items"]
    assert main(cli(history, "--json", *with_links(history))) == 0
    link = next(r["approval_link"] for r in json.loads(capsys.readouterr().out) if r["approval_link"])
    token = link.rsplit("/", 1)[-1]
    after = table.scan()["Items"]
    # THEN status wrote nothing, and neither the link nor its token is anywhere in the table
    assert after == before
    assert token not in json.dumps(after, default=str)
    # AND the link is the one the approval page takes
    assert history.world.deps.approvals.check(token).release_id == history.waiting  # type: ignore[union-attr]


def test_without_the_signing_key_the_release_says_what_its_link_needs(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(cli(history)) == 0
    out = capsys.readouterr().out
    assert "approval  (link: needs the signing key) (expires " in out
    assert "/approvals/v1." not in out


def test_an_unreadable_signing_key_is_a_warning_not_a_failure(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    args = cli(history, "--signing-key-secret", "no-such-secret", "--approval-url", APPROVAL_BASE_URL)
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "(link: needs the signing key)" in captured.out
    (warning,) = captured.err.splitlines()
    assert warning.startswith("deployer status: warning: approval links not shown:")


def test_without_the_approval_url_the_release_says_so(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(history, "--signing-key-secret", history.secret_arn)) == 0
    assert "(link: needs the approval URL)" in capsys.readouterr().out


def test_names_come_from_the_environment_and_limit_keeps_the_newest(
    history: History, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DEPLOYER_TABLE", history.world.names.table)
    monkeypatch.setenv("DEPLOYER_SIGNING_KEY_SECRET", history.secret_arn)
    monkeypatch.setenv("DEPLOYER_APPROVAL_URL", APPROVAL_BASE_URL)
    assert main(["status", "--pipeline", "web", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "pipeline web: the 2 newest, newest first"
    assert history.release(history.building).short_commit in out
    assert f"{APPROVAL_BASE_URL}/approvals/v1." in out
    assert history.release(history.released).short_commit not in out


def test_a_pipeline_with_no_releases_says_so(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(cli(history, "--pipeline", "api")) == 0
    assert capsys.readouterr().out == "pipeline api (not in the published configuration): no releases\n"


def test_an_aws_error_is_one_line_and_exit_1(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--table", "no-such-table", "--pipeline", "web"]) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("deployer status: error: ResourceNotFoundException")
    assert "no-such-table" in line
    assert captured.out == ""


def test_nothing_published_is_one_line_and_exit_1(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--table", history.world.names.table, "--config-table", "empty"]) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("deployer status: error:")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["status", "--pipeline", "web"], "no table: pass --table NAME or set DEPLOYER_TABLE"),
        (["status", "--table", "t"], "no pipelines: pass --pipeline NAME"),
        (["status", "--table", "t", "--pipeline", "web", "--limit", "0"], "outside 1..1000"),
    ],
)
def test_nothing_saying_where_to_read_is_a_usage_error(
    args: list[str], says: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse refuses its own arguments this way
        code = int(str(exit_.code))
    assert code == 2
    assert says in capsys.readouterr().err


# -- the local stack's state file ----------------------------------------------------------------


def arguments(state: Path, **given: Any) -> argparse.Namespace:
    values: dict[str, Any] = {
        "table": None,
        "config_table": None,
        "pipeline": None,
        "signing_key_secret": None,
        "approval_url": None,
        "state": state,
    }
    return argparse.Namespace(**(values | given))


def state_file(tmp_path: Path, pid: int) -> Path:
    path = tmp_path / ".local" / "stack.json"
    path.parent.mkdir()
    path.write_text(
        json.dumps(
            {
                "endpoint_url": "http://127.0.0.1:4566",
                "env": {
                    "DEPLOYER_TABLE": "ecs-deployer-local",
                    "DEPLOYER_CONFIG_TABLE": "ecs-deployer-config-local",
                    "DEPLOYER_SIGNING_KEY_SECRET": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:key",
                    "AWS_REGION": "eu-west-1",
                },
                "buses": {"default": "default", "deployer": "ecs-deployer-local"},
                "approval_url": "http://127.0.0.1:8788/",
                "pid": pid,
            }
        )
    )
    return path


def test_the_local_stacks_state_file_says_where_when_nothing_else_does(tmp_path: Path) -> None:
    path = state_file(tmp_path, os.getpid())
    target = resolve_target(arguments(path), {})
    assert (target.table, target.config_table) == ("ecs-deployer-local", "ecs-deployer-config-local")
    assert target.signing_key_secret == "arn:aws:secretsmanager:eu-west-1:123456789012:secret:key"
    assert target.approval_url == "http://127.0.0.1:8788/"
    assert target.endpoint_url == "http://127.0.0.1:4566"
    assert target.region == "eu-west-1"
    assert target.local_stack == path
    # AND AWS_ENDPOINT_URL, when set, stays the endpoint
    assert resolve_target(arguments(path), {"AWS_ENDPOINT_URL": "http://elsewhere"}).endpoint_url is None
    # AND a table named elsewhere wins, and then nothing comes from the state file
    named = resolve_target(arguments(path, table="mine", pipeline=["web"]), {})
    assert (named.table, named.config_table, named.endpoint_url, named.local_stack) == ("mine", None, None, None)


def test_a_stale_state_file_is_a_usage_error(tmp_path: Path) -> None:
    path = state_file(tmp_path, 2**22 + 12345)  # above Linux's default pid_max: no such process
    with pytest.raises(UsageError, match=r"is not running: start it with `deployer local up`"):
        resolve_target(arguments(path), {})


# -- the pieces ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"), [(5, "5s"), (65, "1m 5s"), (3 * 3600 + 300, "3h 5m"), (2 * 86400 + 4 * 3600, "2d 4h")]
)
def test_ages_read_at_a_glance(seconds: int, text: str) -> None:
    assert status.age_text(seconds) == text


def test_release_status_shows_every_stage_of_the_pipeline_in_order(history: History) -> None:
    release = history.release(history.deploy_failed)
    later = datetime.fromisoformat(release.created_at) + timedelta(minutes=3)
    shown = status.release_status(release, ("dev", "prod"), now=later)
    assert [(s.name, s.label) for s in shown.stages] == [("dev", "FAILED, rolled back"), ("prod", "—")]
    assert shown.age_seconds == 180
    assert shown.approval_link is None
    assert shown.approval_note is None
    assert datetime.fromisoformat(shown.updated_at).tzinfo == UTC
