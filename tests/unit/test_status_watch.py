"""`deployer status --watch`: a release moving through its states in an in-process moto table,
driven by an injected sleep (each sleep moves the release one step through the real flow; nothing
really sleeps): one line per change without a terminal, a redrawn table on one, the exit status
saying how it ended (0 released, 1 failed, 3 waiting for an approval), one GetItem per tick, and
Ctrl-C as one line."""

from __future__ import annotations

import io
import signal
from collections.abc import Callable
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
from deployer_cli import main
from deployer_cli.signals import Stopped
from tests.support.events import load_event
from tests.support.world import World, commit_id

pytestmark = pytest.mark.unit


class Steps:
    """The sleep the watch gets: each call runs the next step of the release's life."""

    def __init__(self, world: World, steps: list[Callable[[], None]]) -> None:
        self.world = world
        self.steps = list(steps)
        self.sleeps: list[float] = []
        self.moment = datetime(2026, 11, 29, 12, 0, 0, tzinfo=UTC)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.moment += timedelta(seconds=seconds)
        if self.steps:
            self.steps.pop(0)()

    def now(self) -> datetime:
        return self.moment


@pytest.fixture
def world(moto_aws: None, world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> World:
    """The world in moto (the command builds its own clients)."""
    for name in ("DEPLOYER_TABLE", "DEPLOYER_CONFIG_TABLE", "DEPLOYER_SIGNING_KEY_SECRET", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return world


def push(world: World, label: str) -> str:
    event = world.push(commit_id(label), None, time="2026-11-29T11:59:00Z")
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, event), world.deps)
    return str(started["release_id"])


def build(world: World, release_id: str, status: str = "SUCCEEDED") -> Callable[[], None]:
    return lambda: on_build(
        parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id, status=status)), world.deps
    )


def ecs(world: World, release_id: str, stage: str, sample: str = "ecs_deployment_completed") -> Callable[[], None]:
    def step() -> None:
        release = world.store.get(release_id)
        assert release is not None
        event: dict[str, Any] = load_event(sample)
        service = world.account.services[stage]
        event["resources"] = [f"arn:aws:ecs:eu-west-1:123456789012:service/{service.cluster}/{service.service}"]
        event["detail"]["deploymentId"] = release.stages[stage].deployment_id
        on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)

    return step


def approve(world: World, release_id: str) -> Callable[[], None]:
    def step() -> None:
        release = world.store.get(release_id)
        assert release is not None
        event: dict[str, Any] = load_event("approval_decided_approve")
        event["detail"].update(release_id=release_id, stage=release.stage, approval_id=release.approval_id)
        on_approval(parse_event(ApprovalDecidedEvent, event), world.deps)

    return step


def nothing() -> None:
    """A tick where nothing happens: no new line."""


def watch(
    world: World, steps: Steps, monkeypatch: pytest.MonkeyPatch, *extra: str, reads: list[str] | None = None
) -> int:
    monkeypatch.setattr("deployer_cli.commands.status_watch._sleep", steps.sleep)
    monkeypatch.setattr("deployer_cli.commands.status_watch._now", steps.now)
    if reads is not None:
        real_client = boto3.session.Session.client

        def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
            client = real_client(self, *args, **kwargs)
            client.meta.events.register("before-call.dynamodb.*", lambda model, **_: reads.append(model.name))
            return client

        monkeypatch.setattr(boto3.session.Session, "client", counting)
    names = world.names
    return main(["status", "--table", names.table, "--config-table", names.config_table, "--watch", *extra])


def release_of(world: World, release_id: str) -> Release:
    release = world.store.get(release_id)
    assert release is not None
    return release


def test_without_a_terminal_each_change_is_one_line_and_a_wait_for_approval_exits_3(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a release being built
    release_id = push(world, "one")
    steps = Steps(world, [build(world, release_id), nothing, ecs(world, release_id, "dev")])
    reads: list[str] = []
    # WHEN status --watch follows the pipeline's newest release
    code = watch(world, steps, monkeypatch, "--pipeline", "web", reads=reads)
    out = capsys.readouterr().out.splitlines()
    short = release_of(world, release_id).short_commit
    deployment = release_of(world, release_id).stages["dev"].deployment_id
    # THEN one line per change (none for the quiet tick), each with its UTC time, until prod waits
    assert out == [
        f"12:00:00Z web@{short} BUILDING [dev — · prod —]",
        f"12:00:02Z web@{short} DEPLOYING dev [dev DEPLOYING · prod —]: ECS deployment {deployment} started (web:3)",
        f"12:00:06Z web@{short} AWAITING_APPROVAL prod [dev DEPLOYED · prod awaiting approval]: "
        + release_of(world, release_id).reason,
        f"Waiting for an approval: web@{short} for prod (exit 3)",
    ]
    assert code == 3
    assert steps.sleeps == [2.0, 2.0, 2.0]
    # AND after reading the configuration (GetItem) and the pipeline's newest release (Query) once,
    # each tick read the release once: one GetItem, nothing else
    ticks = len(steps.sleeps) + 1
    assert reads == ["GetItem", "Query", *["GetItem"] * ticks]


def test_a_release_followed_to_the_end_exits_0(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release_id = push(world, "two")
    build(world, release_id)()
    ecs(world, release_id, "dev")()
    approve(world, release_id)()
    short = release_of(world, release_id).short_commit
    steps = Steps(world, [nothing, ecs(world, release_id, "prod")])
    # named by its short commit, as `deployer status` shows it, read every 5 s
    code = watch(world, steps, monkeypatch, "--release", f"web@{short}", "--interval", "5")
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split()[2] for line in out[:-1]] == ["DEPLOYING", "RELEASED"]
    assert out[1].startswith(f"12:00:10Z web@{short} RELEASED prod [dev DEPLOYED · prod DEPLOYED]: ")
    assert out[-1] == f"Released: web@{short} (exit 0)"
    assert steps.sleeps == [5.0, 5.0]


def test_a_failed_release_exits_1(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release_id = push(world, "three")
    steps = Steps(world, [build(world, release_id, "FAILED")])
    code = watch(world, steps, monkeypatch, "--pipeline", "web")
    out = capsys.readouterr().out.splitlines()
    assert code == 1
    assert out[-2].split()[2] == "BUILD_FAILED"
    assert out[-1] == f"Ended: web@{release_of(world, release_id).short_commit} BUILD_FAILED (exit 1)"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_the_table_is_redrawn_in_place(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    release_id = push(world, "four")
    steps = Steps(world, [build(world, release_id, "FAILED")])
    screen = Terminal()
    monkeypatch.setattr("sys.stdout", screen)
    code = watch(world, steps, monkeypatch, "--pipeline", "web")
    text = screen.getvalue()
    assert code == 1
    first, second = text.split("\x1b[", 1)
    # the first frame: status's table and a footer saying when it read and how to stop
    assert first.startswith("pipeline web: 1 release, newest first\nCOMMIT ")
    assert "BUILDING" in first
    assert first.endswith("read 12:00:00 UTC · every 2 s · Ctrl-C stops watching\n")
    # then the cursor goes back up over that frame (its line count) and clears it, and the new frame is drawn
    lines = first.count("\n")
    assert second.startswith(f"{lines}F\x1b[J")
    assert "BUILD_FAILED" in second
    assert "read 12:00:02 UTC\n" in second
    assert second.endswith("(exit 1)\n")


def test_ctrl_c_is_one_line_and_the_release_goes_on(
    world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release_id = push(world, "five")

    def interrupted() -> None:
        raise Stopped(signal.SIGINT)

    steps = Steps(world, [interrupted])
    code = watch(world, steps, monkeypatch, "--pipeline", "web")
    err = capsys.readouterr().err
    assert code == 130
    assert err == (
        f"deployer status: stopped by SIGINT; the release goes on without the watch: "
        f"deployer status --watch --release {release_id}\n"
    )
    assert release_of(world, release_id).state is ReleaseState.BUILDING


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (("--release", "web@zzzzzzz"), 1, "no release web@zzzzzzz (a commit prefix needs 7 or more hex digits)"),
        (("--release", "web@0123456"), 1, "no release of pipeline web with a commit starting 0123456"),
        (("--release", "0123abc"), 1, "name it PIPELINE@COMMIT"),
        (("--interval", "0"), 2, "outside 0.5..3600 seconds"),
        (("--json",), 2, "--watch does not go with --json"),
    ],
)
def test_bad_input_is_one_line(
    world: World,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    extra: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    push(world, "six")
    steps = Steps(world, [])
    try:
        result = watch(world, steps, monkeypatch, *extra)
    except SystemExit as exc:  # argparse's own refusals
        result = int(exc.code or 0)
    err = capsys.readouterr().err
    assert result == code
    assert message in err
    assert err.count("\n") == 1
    assert steps.sleeps == []


def test_release_and_interval_need_watch(world: World, capsys: pytest.CaptureFixture[str]) -> None:
    names = world.names
    assert main(["status", "--table", names.table, "--pipeline", "web", "--interval", "3"]) == 2
    assert capsys.readouterr().err == "deployer status: error: --release and --interval go with --watch\n"
