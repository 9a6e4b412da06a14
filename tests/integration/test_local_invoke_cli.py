"""`deployer local invoke` and `deployer local emit` against a world in moto server: exit codes,
what they print, and the local stack's state file (`.local/stack.json`) written here as
`deployer local up` would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deployer_cli import main
from tests.integration.conftest import APPROVAL_URL
from tests.support.events import EVENTS_DIR, load_event
from tests.support.world import World

pytestmark = pytest.mark.integration


def sample(name: str) -> str:
    return str(EVENTS_DIR / f"{name}.json")


@pytest.fixture
def function_env(world: World, resource_names: dict[str, str]) -> dict[str, str]:
    """The functions' variables the template cannot resolve locally, for the world's resources."""
    return {
        **world.names.env(),
        "DEPLOYER_ENVIRONMENT": world.names.environment,
        "DEPLOYER_SIGNING_KEY_SECRET": resource_names["ApprovalSigningKey"],
        "DEPLOYER_SLACK_SECRET": resource_names["SlackSecret"],
    }


def write_state(path: Path, aws: str, world: World, env: dict[str, str], pid: int | None = None) -> Path:
    state = {
        "endpoint_url": aws,
        "env": env,
        "buses": {"default": "default", "deployer": world.names.bus},
        "approval_url": APPROVAL_URL,
        "slack_url": "http://127.0.0.1:9/",
        "pid": os.getpid() if pid is None else pid,  # the moto server runs in this process
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state), encoding="utf-8")
    return path


@pytest.fixture
def stack(tmp_path: Path, aws: str, world: World, function_env: dict[str, str]) -> Path:
    """A running local stack's state file for the world."""
    return write_state(tmp_path / ".local" / "stack.json", aws, world, function_env)


def result_json(out: str) -> Any:
    return json.loads(out)


# -- invoke -------------------------------------------------------------------------------------


def test_invoke_with_an_endpoint_and_an_env_file_prints_the_logs_then_the_result(
    tmp_path: Path,
    aws: str,
    build_dir: Path,
    function_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN sam local's --env-vars file, and a push to a repository no pipeline names
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps({"Parameters": function_env}), encoding="utf-8")
    # WHEN the built OnPushFunction is invoked with it against moto server
    status = main(
        [
            "local",
            "invoke",
            "OnPushFunction",
            "-e",
            sample("push_unknown_repository"),
            "--endpoint-url",
            aws,
            "--env-file",
            str(env_file),
            "--build-dir",
            str(build_dir),
        ]
    )
    # THEN it succeeds: the logs (Powertools JSON) on stderr, the function's result on stdout
    captured = capsys.readouterr()
    assert status == 0, captured.err
    payload = result_json(captured.out)
    assert payload["event_id"] == load_event("push_unknown_repository")["id"]
    (outcome,) = payload["result"]
    assert outcome["outcome"] == "ignored"
    assert "legacy-api" in outcome["reason"]
    assert "REPORT RequestId: " in captured.err
    assert any(line.startswith('{"level"') for line in captured.err.splitlines())


def test_invoke_takes_the_endpoint_and_environment_from_the_running_stack(
    stack: Path, world: World, build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the local stack's state file, and a push to the pipeline's branch
    event = world.push("1" * 40)
    event_file = stack.parent / "push.json"
    event_file.write_text(json.dumps(event), encoding="utf-8")
    # WHEN OnPushFunction is invoked with no endpoint given
    status = main(
        [
            "local",
            "invoke",
            "OnPushFunction",
            "-e",
            str(event_file),
            "--state",
            str(stack),
            "--build-dir",
            str(build_dir),
        ]
    )
    # THEN it ran against the stack: the release's build started in moto
    captured = capsys.readouterr()
    assert status == 0, captured.err
    (outcome,) = result_json(captured.out)["result"]
    assert outcome["outcome"] == "build_started"
    assert world.builds() == [outcome["build_id"]]


def test_invoke_exits_1_when_the_handler_raised(
    tmp_path: Path,
    aws: str,
    world: World,
    build_dir: Path,
    function_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN a stack whose functions name a table that does not exist
    state = write_state(tmp_path / "stack.json", aws, world, {**function_env, "DEPLOYER_TABLE": "no-such-table"})
    # WHEN a push is handled
    status = main(
        [
            "local",
            "invoke",
            "OnPushFunction",
            "-e",
            sample("push_created"),
            "--state",
            str(state),
            "--build-dir",
            str(build_dir),
        ]
    )
    # THEN the handler's error is the result, and the exit status says it failed
    captured = capsys.readouterr()
    assert status == 1
    error = result_json(captured.out)
    assert {"errorType", "errorMessage", "stackTrace"} <= error.keys()
    assert "[ERROR]" in captured.err


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["NoSuchFunction", "-e", sample("push_created")],
            "no function 'NoSuchFunction' in the build; built: "
            "ApprovalsHttpFunction, OnApprovalFunction, OnBuildFunction, OnDeploymentFunction, OnPushFunction, "
            "OnWebhookFunction",
        ),
        (["OnPushFunction", "-e", "missing.json"], "cannot read the event file missing.json"),
        (["OnPushFunction", "-e", str(EVENTS_DIR / "README.md")], "is not JSON"),
    ],
)
def test_invoke_refuses_what_it_cannot_run_with_exit_2(
    stack: Path, build_dir: Path, capsys: pytest.CaptureFixture[str], arguments: list[str], message: str
) -> None:
    status = main(["local", "invoke", *arguments, "--state", str(stack), "--build-dir", str(build_dir)])
    captured = capsys.readouterr()
    assert status == 2
    assert message in captured.err
    assert captured.out == ""


def test_invoke_without_a_build_says_to_run_make_build(
    tmp_path: Path, stack: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "local",
            "invoke",
            "OnPushFunction",
            "-e",
            sample("push_created"),
            "--state",
            str(stack),
            "--build-dir",
            str(tmp_path / "nothing"),
        ]
    )
    assert status == 2
    assert "run `make build`" in capsys.readouterr().err


def test_invoke_without_a_stack_or_an_endpoint_says_how_to_get_one(
    tmp_path: Path, aws: str, world: World, build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN no state file
    status = main(
        [
            "local",
            "invoke",
            "OnPushFunction",
            "-e",
            sample("push_created"),
            "--state",
            str(tmp_path / "none.json"),
            "--build-dir",
            str(build_dir),
        ]
    )
    assert status == 2
    assert "start `deployer local up`, or pass --endpoint-url URL" in capsys.readouterr().err
    # GIVEN a state file left behind by a stack that has ended
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    state = write_state(tmp_path / "stale.json", aws, world, {}, pid=ended.pid)
    status = main(
        [
            "local",
            "invoke",
            "OnPushFunction",
            "-e",
            sample("push_created"),
            "--state",
            str(state),
            "--build-dir",
            str(build_dir),
        ]
    )
    assert status == 2
    assert f"(pid {ended.pid}) is not running: start `deployer local up`" in capsys.readouterr().err


# -- emit ---------------------------------------------------------------------------------------


def emit(stack: Path, build_dir: Path, *arguments: str) -> int:
    return main(["local", "emit", *arguments, "--state", str(stack), "--build-dir", str(build_dir)])


def test_emit_delivers_to_the_matching_function_and_prints_what_it_returned(
    stack: Path, build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN a push to an unknown repository is put on the default bus
    status = emit(stack, build_dir, sample("push_unknown_repository"))
    # THEN the push rule delivered it to OnPushFunction, which returned
    captured = capsys.readouterr()
    assert status == 0, captured.err
    lines = captured.out.splitlines()
    event_id = load_event("push_unknown_repository")["id"]
    assert lines[0] == (
        f"event {event_id} (aws.codecommit, CodeCommit Repository State Change) on bus default: 1 rule matched"
    )
    assert lines[1].startswith("OnPushFunction (PushRule) -> ok [")
    assert json.loads("\n".join(lines[2:]))["result"][0]["outcome"] == "ignored"


@pytest.mark.parametrize(("name", "bus"), [("push_tag", "default"), ("approval_decided_reject", "default")])
def test_emit_of_an_event_no_rule_matches_invokes_nothing(
    stack: Path, build_dir: Path, capsys: pytest.CaptureFixture[str], name: str, bus: str
) -> None:
    status = emit(stack, build_dir, sample(name), "--bus", bus)
    captured = capsys.readouterr()
    assert status == 0
    assert captured.out.splitlines() == [
        f"event {load_event(name)['id']} ({load_event(name)['source']}, {load_event(name)['detail-type']}) "
        f"on bus default: no rule matched; nothing was invoked"
    ]


def test_emit_on_the_deployer_bus_reaches_on_approval_with_the_envelope_filled_in(
    stack: Path, world: World, build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an approval decision as a PutEvents entry carries it (no id, time, account...)
    decided = load_event("approval_decided_reject")
    event_file = stack.parent / "decided.json"
    event_file.write_text(
        json.dumps({"source": decided["source"], "detail-type": decided["detail-type"], "detail": decided["detail"]}),
        encoding="utf-8",
    )
    # WHEN it is put on the deployer's bus, with the functions' logs
    status = emit(stack, build_dir, str(event_file), "--bus", "deployer", "--logs")
    # THEN OnApprovalFunction received it under a new event id, and its logs were printed
    captured = capsys.readouterr()
    assert status == 0, captured.out + captured.err
    header, delivery = captured.out.splitlines()[:2]
    assert header.endswith(f"on bus {world.names.bus}: 1 rule matched")
    assert decided["id"] not in header
    assert delivery.startswith("OnApprovalFunction (DecisionRule) -> ok")
    assert '"service": "ecs-deployer"' in captured.err or '"service":"ecs-deployer"' in captured.err


def test_emit_exits_1_when_a_function_failed(
    tmp_path: Path,
    aws: str,
    world: World,
    build_dir: Path,
    function_env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    state = write_state(tmp_path / "stack.json", aws, world, {**function_env, "DEPLOYER_TABLE": "no-such-table"})
    status = emit(state, build_dir, sample("push_created"))
    captured = capsys.readouterr()
    assert status == 1
    assert "OnPushFunction (PushRule) -> error " in captured.out


def test_emit_without_a_running_stack_exits_2(
    tmp_path: Path, build_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = emit(tmp_path / "none.json", build_dir, sample("push_created"))
    assert status == 2
    assert "start `deployer local up`" in capsys.readouterr().err
