"""`deployer rollback`: finds the deployer as `deployer status` does, shows what the stage runs and
what it goes back to, asks before changing anything (and refuses to act unasked without a
terminal), records who asked (STS, else $USER), and says what happened with the exit status the
README gives. `deployer status` then shows the rollback as a release of its own."""

from __future__ import annotations

import argparse
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import NoCredentialsError

from deployer.errors import DeploymentError
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ApprovalDecidedEvent
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow import rollback as flow_rollback
from deployer.flow.approval import on_approval
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import Release, ReleaseState
from deployer_cli import build_parser, main
from deployer_cli.commands import rollback as cli_rollback
from deployer_cli.commands.status import Target
from deployer_cli.views import status
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit

ENV_NAMES = (
    "DEPLOYER_TABLE",
    "DEPLOYER_CONFIG_TABLE",
    "DEPLOYER_EVENT_BUS",
    "DEPLOYER_SLACK_SECRET",
    "DEPLOYER_SIGNING_KEY_SECRET",
    "DEPLOYER_APPROVAL_URL",
    "AWS_ENDPOINT_URL",
)
MOTO_CALLER = "arn:aws:sts::123456789012:user/moto"  # what moto's GetCallerIdentity answers


# --- releases, through the real flow (shared with test_slack_rollback) ---------------------------


def released(world: World, label: str, old: str | None, minute: int) -> str:
    """A release pushed, built, deployed to dev, approved and deployed to prod: RELEASED, and
    each stage's success recorded in the stage's history (what a rollback goes back to)."""
    event = world.push(commit_id(label), commit_id(old) if old else None, time=f"2026-11-29T10:{minute:02d}:00Z")
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    release_id = str(started["release_id"])
    on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    deployment_completed(world, release_id, "dev")
    approval = load_event("approval_decided_approve")
    release = world.store.get(release_id)
    assert release is not None
    approval["detail"].update(release_id=release_id, stage=release.stage, approval_id=release.approval_id)
    on_approval(parse_event(ApprovalDecidedEvent, approval), world.deps)
    deployment_completed(world, release_id, "prod")
    finished = world.store.get(release_id)
    assert finished is not None
    assert finished.state is ReleaseState.RELEASED
    return release_id


def deployment_completed(world: World, release_id: str, stage: str) -> None:
    release = world.store.get(release_id)
    assert release is not None
    event: dict[str, Any] = load_event("ecs_deployment_completed")
    service = world.account.services[stage]
    event["resources"] = [f"arn:aws:ecs:eu-west-1:123456789012:service/{service.cluster}/{service.service}"]
    event["detail"]["deploymentId"] = release.stages[stage].deployment_id
    on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)


# --- the world -----------------------------------------------------------------------------------


@dataclass
class Two:
    """Two releases in prod, the second running now."""

    world: World
    first: str
    second: str
    asked: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def release(self, release_id: str) -> Release:
        release = self.world.store.get(release_id)
        assert release is not None
        return release

    def args(self, *extra: str) -> list[str]:
        names = self.world.names
        return [
            "rollback",
            "--pipeline",
            "web",
            "--stage",
            "prod",
            "--table",
            names.table,
            "--config-table",
            names.config_table,
            "--event-bus",
            names.bus,
            *extra,
        ]

    def prod_task_definition(self) -> str:
        return str(self.world.service("prod")["taskDefinition"])


@pytest.fixture
def two(moto_aws: None, world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Two:
    """Two releases in moto (the command builds its own clients)."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .local/stack.json here
    first = released(world, "first", None, 0)
    second = released(world, "second", "first", 10)
    return Two(world, first, second)


def fake_rollback(two: Two, outcome: dict[str, Any]) -> Any:
    def request_rollback(pipeline: str, stage: str, requested_by: dict[str, Any], deps: Any) -> dict[str, Any]:
        two.asked.append((pipeline, stage, requested_by))
        return {"pipeline": pipeline, "stage": stage, **outcome}

    return request_rollback


DEPLOYING = {
    "outcome": "deploying",
    "release_id": "web@rollback-prod-20261129T101500000000",
    "reason": "user/moto rolls prod back to web:3 (commit 3b6bc4f5a84c, release web@3b6bc4f5a84c...)",
    "target_task_definition": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3",
    "undoes": "web@second",
}


class Terminal(io.StringIO):
    """Standard input that is a terminal, with the user's answer typed in."""

    def isatty(self) -> bool:
        return True


def parsed(argv: list[str]) -> argparse.Namespace:
    return build_parser(only="rollback").parse_args(argv)


# --- confirmation ------------------------------------------------------------------------------


def test_without_a_terminal_and_without_yes_nothing_is_asked_or_done(
    two: Two, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN standard input that is not a terminal (a pipe, CI)
    monkeypatch.setattr(flow_rollback, "request_rollback", fake_rollback(two, DEPLOYING))
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    # WHEN rollback runs without --yes
    code = main(two.args())
    # THEN it is a usage error naming --yes, and nothing was asked of the flow
    assert code == 2
    assert "pass --yes" in capsys.readouterr().err
    assert two.asked == []


def test_the_prompt_shows_what_runs_and_what_it_goes_back_to_and_no_changes_nothing(
    two: Two, capsys: pytest.CaptureFixture[str]
) -> None:
    first = two.release(two.first).stages["prod"].task_definition_arn
    second = two.release(two.second).stages["prod"].task_definition_arn
    assert first
    assert second
    # WHEN the operator answers "n" at the prompt
    code = cli_rollback.run(
        parsed(two.args()), environ={}, stdin=Terminal("n\n"), request_rollback=fake_rollback(two, DEPLOYING)
    )
    # THEN exit 1, nothing was asked of the flow
    assert code == 1
    assert two.asked == []
    err = capsys.readouterr().err
    # AND the prompt said what prod runs now and what it would go back to (revision, commit, release)
    assert "Roll back prod of web (ECS service " in err
    assert f"now         {second.rsplit('/', 1)[-1]} (commit {commit_id('second')[:12]}, release {two.second})" in err
    assert f"back to     {first.rsplit('/', 1)[-1]} (commit {commit_id('first')[:12]}, release {two.first})" in err
    assert "Roll back prod of web? [y/N]" in err
    assert "Not rolled back: nothing changed." in err


def test_yes_at_the_prompt_rolls_back_and_records_who_asked(two: Two, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_rollback.run(
        parsed(two.args()), environ={}, stdin=Terminal("yes\n"), request_rollback=fake_rollback(two, DEPLOYING)
    )
    assert code == 0
    assert two.asked == [("web", "prod", {"kind": "cli", "principal": MOTO_CALLER})]
    out = capsys.readouterr().out
    assert out.startswith("Rolling back prod of web: redeploying the previous successful revision.\n")


# --- outcomes and exit status ------------------------------------------------------------------


def test_a_started_rollback_says_what_to_which_revision_the_release_and_how_to_follow(
    two: Two, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(flow_rollback, "request_rollback", fake_rollback(two, DEPLOYING))
    assert main(two.args("--yes")) == 0
    assert two.asked == [("web", "prod", {"kind": "cli", "principal": MOTO_CALLER})]
    out = capsys.readouterr().out
    assert "Rolling back prod of web: redeploying the previous successful revision." in out
    assert "  back to     web:3\n" in out
    assert "  undoes      web@second" in out
    assert "  release     web@rollback-prod-20261129T101500000000 (kind rollback)" in out
    assert f"  asked by    {MOTO_CALLER}" in out
    assert out.rstrip().endswith("Follow it: deployer status --pipeline web")


@pytest.mark.parametrize(
    ("outcome", "code", "says"),
    [
        (
            {"outcome": "queued", "release_id": "web@rollback-1", "reason": "waiting"},
            0,
            "Rollback of prod of web queued",
        ),
        (
            {"outcome": "stopping", "release_id": "web@rollback-2", "reason": "stopped", "undoes": "web@x"},
            0,
            "the deployment in flight is being stopped; ECS rolls the service back",
        ),
        (
            {"outcome": "nothing_to_roll_back", "reason": "prod has no earlier successful revision than web:4"},
            1,
            "Not rolled back: prod has no earlier successful revision than web:4.",
        ),
        (
            {"outcome": "already_rolling_back", "release_id": "web@rollback-3", "reason": "already rolling"},
            1,
            "Not rolled back: already rolling.",
        ),
    ],
)
def test_each_outcome_has_its_exit_status(
    two: Two,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    outcome: dict[str, Any],
    code: int,
    says: str,
) -> None:
    monkeypatch.setattr(flow_rollback, "request_rollback", fake_rollback(two, outcome))
    assert main(two.args("--yes")) == code
    assert says in capsys.readouterr().out


def test_json_is_one_object_with_the_outcome(
    two: Two, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(flow_rollback, "request_rollback", fake_rollback(two, DEPLOYING))
    assert main(two.args("--yes", "--json")) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["outcome"] == "deploying"
    assert shown["started"] is True
    assert shown["release_id"] == DEPLOYING["release_id"]
    assert shown["preview"]["current_release"] == two.second
    assert shown["preview"]["target_release"] == two.first


def test_a_flow_error_is_one_line_and_exit_1(
    two: Two, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_: Any) -> dict[str, Any]:
        raise DeploymentError("prod is deploying but ECS lists no deployment in flight: wait, then roll back again")

    monkeypatch.setattr(flow_rollback, "request_rollback", broken)
    assert main(two.args("--yes")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("deployer rollback: error: prod is deploying but ECS lists no deployment")


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (("--pipeline", "api"), "no pipeline 'api' in the published configuration (pipelines: web)"),
        (("--stage", "qa"), "pipeline web has no stage 'qa' (stages: dev, prod)"),
    ],
)
def test_an_unknown_pipeline_or_stage_is_a_usage_error(
    two: Two,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    change: tuple[str, str],
    says: str,
) -> None:
    monkeypatch.setattr(flow_rollback, "request_rollback", fake_rollback(two, DEPLOYING))
    args = two.args("--yes")
    args[args.index(change[0]) + 1] = change[1]
    assert main(args) == 2
    assert says in capsys.readouterr().err
    assert two.asked == []


def test_without_the_bus_it_is_a_usage_error(
    two: Two, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(flow_rollback, "request_rollback", fake_rollback(two, DEPLOYING))
    args = two.args("--yes")
    del args[args.index("--event-bus") : args.index("--event-bus") + 2]
    assert main(args) == 2
    assert "no event bus: pass --event-bus NAME or set DEPLOYER_EVENT_BUS" in capsys.readouterr().err
    assert two.asked == []


def test_names_come_from_the_environment(
    two: Two, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in two.world.names.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(flow_rollback, "request_rollback", fake_rollback(two, DEPLOYING))
    assert main(["rollback", "--pipeline", "web", "--stage", "prod", "--yes"]) == 0
    assert len(two.asked) == 1


def test_who_asked_falls_back_to_user_when_sts_cannot_say() -> None:
    class NoSts:
        def client(self, *_: Any, **__: Any) -> Any:
            return self

        def get_caller_identity(self) -> dict[str, Any]:
            raise NoCredentialsError

    target = Target("t", "c", ("web",), None, None, None, "eu-west-1", None, "bus")
    assert cli_rollback.caller(NoSts(), target, {"USER": "alice"}) == "alice"
    assert cli_rollback.caller(NoSts(), target, {}) == "unknown"


# --- through the real flow ---------------------------------------------------------------------


def test_a_rollback_redeploys_the_previous_revision_and_status_shows_it_as_its_own_release(
    two: Two, capsys: pytest.CaptureFixture[str]
) -> None:
    first = two.release(two.first).stages["prod"].task_definition_arn
    assert first
    assert two.prod_task_definition() != first
    # WHEN an operator rolls prod back, through request_rollback itself
    assert main(two.args("--yes")) == 0
    out = capsys.readouterr().out
    # THEN prod runs the first release's revision again, through a release of kind "rollback"
    assert two.prod_task_definition() == first
    rollbacks = [r for r in two.world.store.list_releases("web") if r.is_rollback]
    (rollback,) = rollbacks
    assert rollback.commit == commit_id("first")
    assert rollback.rollback_of == two.second
    assert rollback.requested_by == {"kind": "cli", "principal": MOTO_CALLER}
    assert rollback.target_task_definition_arn == first
    assert rollback.stage == "prod"
    # AND the command said so
    assert f"  back to     {first.rsplit('/', 1)[-1]} (commit {commit_id('first')[:12]})" in out
    assert f"  release     {rollback.release_id} (kind rollback)" in out
    # AND `deployer status` lists it as a release of its own, saying what it restores and who asked
    names = two.world.names
    assert main(["status", "--table", names.table, "--config-table", names.config_table]) == 0
    shown = capsys.readouterr().out
    row = next(line for line in shown.splitlines() if line.startswith(commit_id("first")[:12]) and "prod" in line)
    assert row.split()[1] == rollback.state.value
    assert (
        f"rollback  prod back to {first.rsplit('/', 1)[-1]} (commit {commit_id('first')[:12]}), "
        f"undoes web@{commit_id('second')[:12]}\n"
        "              asked by  user/moto (CLI)\n"
    ) in shown
    assert all(len(line) <= 100 for line in shown.splitlines() if "https://" not in line)


# --- status of a rollback ------------------------------------------------------------------------


def _rollback_release(**changes: Any) -> Release:
    values: dict[str, Any] = {
        "release_id": "web@rollback-prod-20261129T101500000000",
        "pipeline": "web",
        "repository": "web-app",
        "branch": "main",
        "commit": commit_id("first"),
        "pushed_at": "2026-11-29T10:15:00Z",
        "order_key": "2026-11-29T10:15:00Z#999#rollback",
        "state": ReleaseState.DEPLOYING,
        "created_at": "2026-11-29T10:15:00.000000Z",
        "updated_at": "2026-11-29T10:15:01.000000Z",
        "stage": "prod",
        "reason": "rollback of prod to arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3",
        "kind": "rollback",
        "rollback_of": f"web@{commit_id('second')}",
        "requested_by": {"kind": "slack", "user": "U012ABCDEF"},
        "target_task_definition_arn": "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:3",
    }
    values.update(changes)
    return Release(**values)


def test_status_shows_a_rollback_with_its_own_stage_what_it_restores_and_who_asked() -> None:
    shown = status.release_status(_rollback_release(), ("dev", "prod"))
    # only its own stage, not the pipeline's others
    assert [s.name for s in shown.stages] == ["prod"]
    assert shown.kind == "rollback"
    assert shown.requested_by_text == "Slack user U012ABCDEF"
    table = status.render_table([status.PipelineStatus("web", (shown,))])
    assert (
        f"rollback  prod back to web:3 (commit {commit_id('first')[:12]}), undoes web@{commit_id('second')[:12]}\n"
        "              asked by  Slack user U012ABCDEF\n"
    ) in table
    data = shown.to_json()
    assert data["kind"] == "rollback"
    assert data["rollback_of"] == f"web@{commit_id('second')}"
    assert data["requested_by"] == {"kind": "slack", "user": "U012ABCDEF"}
    assert data["target_task_definition"].endswith("task-definition/web:3")
    assert data["requested_by_text"] == "Slack user U012ABCDEF"


def test_status_of_a_push_has_the_same_keys_and_no_rollback_line() -> None:
    push = _rollback_release(kind="push", rollback_of=None, requested_by=None, target_task_definition_arn=None)
    shown = status.release_status(push, ("dev", "prod"))
    assert [s.name for s in shown.stages] == ["dev", "prod"]
    assert shown.rollback_text is None
    assert "rollback  " not in status.render_table([status.PipelineStatus("web", (shown,))])
    rollback = status.release_status(_rollback_release(), ("dev", "prod"))
    assert sorted(shown.to_json()) == sorted(rollback.to_json())


def test_a_rollback_to_an_unknown_commit_still_reads() -> None:
    shown = status.release_status(
        _rollback_release(commit="", requested_by={"kind": "cli", "principal": "arn:aws:sts::1:assumed-role/Ops/al"}),
        (),
    )
    table = status.render_table([status.PipelineStatus("web", (shown,))])
    assert "rollback  prod back to web:3, undoes " in table
    assert "asked by  assumed-role/Ops/al (CLI)" in table
    assert table.splitlines()[2].startswith("—  ")


def test_the_bus_gets_the_rollbacks_transitions(two: Two) -> None:
    # GIVEN a queue behind a rule for the deployer's "Release State Change" events
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="changes")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events = boto3.client("events")
    bus = two.world.names.bus
    events.put_rule(Name="changes", EventBusName=bus, EventPattern=json.dumps({"source": ["ecs-deployer"]}))
    events.put_targets(Rule="changes", EventBusName=bus, Targets=[{"Id": "q", "Arn": arn}])
    # WHEN the CLI rolls prod back
    assert main(two.args("--yes")) == 0
    # THEN the rollback release's transitions went on the bus, as any release's do
    messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
    details = [json.loads(m["Body"])["detail"] for m in messages]
    assert any(d["release_id"].startswith("web@rollback-prod-") for d in details)


def test_a_deployment_in_flight_is_shown_as_stopped_and_rolled_back_by_ecs(
    two: Two, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a third release deploying to dev right now
    event = two.world.push(commit_id("third"), commit_id("second"), time="2026-11-29T10:20:00Z")
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, event), two.world.deps)
    third = str(started["release_id"])
    on_build(parse_event(CodeBuildStateChangeEvent, two.world.build_finished(third)), two.world.deps)
    record = two.release(third).stages["dev"]
    assert record.state.value == "DEPLOYING"
    assert record.task_definition_arn
    assert record.previous_task_definition_arn
    # WHEN an operator asks to roll dev back, and answers no
    args = two.args()
    args[args.index("--stage") + 1] = "dev"
    assert (
        cli_rollback.run(parsed(args), environ={}, stdin=Terminal("n\n"), request_rollback=fake_rollback(two, {})) == 1
    )
    # THEN the prompt said the deployment in flight would be stopped and where ECS returns
    err = capsys.readouterr().err
    assert f"in flight   {third} is deploying {record.task_definition_arn.rsplit('/', 1)[-1]}" in err
    assert (
        "rollback    stop that deployment (StopServiceDeployment ROLLBACK); "
        f"ECS returns to {record.previous_task_definition_arn.rsplit('/', 1)[-1]}"
    ) in err
    assert two.asked == []


def test_an_aws_error_is_one_line_and_exit_1(two: Two, capsys: pytest.CaptureFixture[str]) -> None:
    args = two.args("--yes")
    args[args.index("--table") + 1] = "no-such-table"
    assert main(args) == 1
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("deployer rollback: error: ResourceNotFoundException")
    assert "no-such-table" in line
    assert captured.out == ""
