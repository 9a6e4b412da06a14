"""What the local stack's commands read from the user: a `--state` file that is not UTF-8, an
event "file" that never ends (`/dev/zero`), an event EventBridge would refuse for its size. Each is
one line on stderr, exit status 2, and nothing done.

The size is the PutEvents entry size as EventBridge computes it, from "Calculating Amazon
EventBridge PutEvents event entry size" (Amazon EventBridge User Guide,
https://docs.aws.amazon.com/eventbridge/latest/userguide/calculate-putevents-entry-size.html):
"If specified, the Time parameter is 14 bytes. The Source and DetailType parameters are the
number of bytes for their UTF-8 encoded forms. If specified, the Detail parameter is the number
of bytes for its UTF-8 encoded form. If specified, each entry of the Resources parameter is the
number of bytes for its UTF-8 encoded forms." That page still says "The total entry size must be
less than 256KB"; the limit was raised to 1 MB in January 2026: botocore's PutEvents
documentation (the model in this venv) says "the total entry size must be less than 1MB", and the
AWS Compute Blog's "More room to build: serverless services now support payloads up to 1 MB"
(https://aws.amazon.com/blogs/compute/more-room-to-build-serverless-services-now-support-payloads-up-to-1-mb)
says AWS "has raised the maximum payload size from 256 KB to 1 MB for ... Amazon EventBridge"."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import botocore.session
import pytest

from deployer_cli import main
from deployer_local.localrun import InvokeResult
from deployer_local.router import MAX_ENTRY_BYTES, EventTooLarge, Router, Rule, check_entry_size, entry_size
from tests.support.events import EVENTS_DIR, REPOSITORY_ROOT

pytestmark = pytest.mark.unit

NOT_UTF8 = b'{"endpoint_url": "http://127.0.0.1:9", "pid": 1, "env": {"DEPLOYER_TABLE": "caf\xe9"}}'


@pytest.fixture
def running_state(tmp_path: Path) -> Path:
    """A state file naming a live process (this one), as `deployer local up` writes it."""
    state = tmp_path / ".local" / "stack.json"
    state.parent.mkdir()
    state.write_text(
        json.dumps(
            {
                "endpoint_url": "http://127.0.0.1:9",
                "env": {"DEPLOYER_ENVIRONMENT": "local"},
                "buses": {"default": "default", "deployer": "ecs-deployer-local"},
                "pid": os.getpid(),
            }
        )
    )
    return state


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["rollback", "--pipeline", "web", "--stage", "prod", "--yes"],
        ["local", "invoke", "OnPushFunction", "-e", str(EVENTS_DIR / "push_created.json")],
        ["local", "emit", str(EVENTS_DIR / "push_created.json")],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_a_state_file_that_is_not_utf8_is_one_line(
    command: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a state file with a Latin-1 byte in it, and nothing else saying where to act
    for name in ("DEPLOYER_TABLE", "DEPLOYER_CONFIG_TABLE", "DEPLOYER_EVENT_BUS"):
        monkeypatch.delenv(name, raising=False)
    state = tmp_path / "stack.json"
    state.write_bytes(NOT_UTF8)
    # WHEN a command reads it
    status = main([*command, "--state", str(state)])
    # THEN one line says what is wrong with it, exit 2
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1, err
    assert f"{state} is not a local stack's state file (not UTF-8: byte 0xe9 at offset {NOT_UTF8.index(0xE9)})" in err


@pytest.mark.integration
def test_emit_of_dev_zero_is_refused_without_reading_it_all(running_state: Path, tmp_path: Path) -> None:
    # WHEN `deployer local emit /dev/zero` runs (in a process of its own, its memory capped at
    # 2 GiB, so an unbounded read fails fast instead of eating the machine)
    def cap_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))

    done = subprocess.run(
        [str(Path(sys.executable).parent / "deployer"), "local", "emit", "/dev/zero", "--state", str(running_state)],
        cwd=tmp_path,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(REPOSITORY_ROOT / r) for r in ("layers/deployer", "cli", "local")),
        },
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=cap_memory,
        check=False,
    )
    # THEN one line, exit 2
    assert done.stderr == (
        "deployer local: error: the event file /dev/zero is longer than 4 MiB: "
        "not an event (EventBridge takes entries up to 1 MiB)\n"
    )
    assert done.returncode == 2


def big_event(detail_bytes: int) -> dict[str, Any]:
    """A CodeCommit-shaped event whose compact detail is `detail_bytes` long."""
    filler = "x" * (detail_bytes - len('{"note":""}'))
    return {"source": "aws.codecommit", "detail-type": "CodeCommit Repository State Change", "detail": {"note": filler}}


def test_an_event_over_eventbridges_limit_is_one_line(
    running_state: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN an event file whose PutEvents entry is one byte over the limit
    event = big_event(MAX_ENTRY_BYTES - len("aws.codecommit") - len("CodeCommit Repository State Change") + 1)
    path = tmp_path / "big.json"
    path.write_text(json.dumps(event, indent=2))
    assert entry_size(event) == MAX_ENTRY_BYTES + 1
    # WHEN it is emitted
    status = main(["local", "emit", str(path), "--state", str(running_state), "--build-dir", str(tmp_path)])
    # THEN one line, exit 2, before the stack is even looked at
    err = capsys.readouterr().err
    assert status == 2
    assert err == (
        f"deployer local: error: the event file {path}: its PutEvents entry is 1,048,577 bytes, over "
        "EventBridge's limit of 1,048,576 (source, detail-type, detail and resources, counted as "
        "EventBridge counts them): put the large part in S3 and send its key\n"
    )


def test_entry_size_counts_what_the_aws_page_counts() -> None:
    # Time 14 bytes; Source, DetailType, Detail (as sent: compact JSON), each Resources entry: UTF-8 bytes
    event = {
        "time": "2026-11-29T12:00:00Z",
        "source": "aws.ecs",
        "detail-type": "ECS Deployment State Change",
        "resources": ["arn:aws:ecs:eu-west-1:123456789012:service/dev/web", None],
        "detail": {"eventName": "SERVICE_DEPLOYMENT_COMPLETED", "reason": "déployé"},
        "id": "ignored: not part of a PutEvents entry",
        "account": "123456789012",
    }
    detail = '{"eventName":"SERVICE_DEPLOYMENT_COMPLETED","reason":"déployé"}'
    expected = (
        14
        + len("aws.ecs")
        + len("ECS Deployment State Change")
        + len(detail.encode())
        + len("arn:aws:ecs:eu-west-1:123456789012:service/dev/web")
    )
    assert entry_size(event) == expected
    assert entry_size({k: v for k, v in event.items() if k != "time"}) == expected - 14


def test_the_limit_is_the_current_one_in_botocores_model() -> None:
    # an entry of 300 KB: over the old 256 KB, under today's 1 MB, so EventBridge takes it
    events = botocore.session.get_session().get_service_model("events")
    documentation = events.operation_model("PutEvents").documentation
    assert "the total entry size must be less than 1MB" in documentation
    assert check_entry_size(big_event(300 * 1024)) > 256 * 1024


def test_the_router_refuses_an_oversized_event_before_any_function_runs() -> None:
    invoked: list[dict[str, Any]] = []

    def worker(event: dict[str, Any]) -> InvokeResult:
        invoked.append(event)
        raise AssertionError("no function may run")

    rule = Rule("OnPushFunction", "PushRule", {"source": ["aws.codecommit"]}, "default")
    router = Router(object(), {"OnPushFunction": worker}, [rule])  # type: ignore[arg-type]
    with pytest.raises(EventTooLarge, match="over EventBridge's limit"):
        router.route(big_event(MAX_ENTRY_BYTES + 1))
    assert invoked == []
