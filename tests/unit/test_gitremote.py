"""The local git remote: a real bare repository whose post-receive hook turns every pushed ref
into the CodeCommit event of the samples in events/, and the `emit` command that sends it to the
local stack. Real `git push`es from a real clone; the hook command records its arguments in a
file (no network); the POST to the stack is replaced where it would leave the process."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.parse import parse_event
from deployer_local import gitremote
from deployer_local.gitremote import (
    ZERO_COMMIT,
    caller_arn,
    clone_and_seed,
    create_remote,
    emit_command,
    push_event,
    repository_id,
)
from tests.support.events import load_event

pytestmark = pytest.mark.unit

SAMPLE_COMMIT = "7f0103f2c1d64b5e8a9c3e1b6d2f4a8c0e5b7d91"
SAMPLE_OLD = "3e5983b8d0a14f6c9b2e7d5a1c8f0b4e6d2a9c73"
SAMPLE_CALLER = "arn:aws:sts::123456789012:assumed-role/Developer/alice"

RECORDER = """\
import json, sys
with open(sys.argv[1], "a", encoding="utf-8") as out:
    out.write(json.dumps(sys.argv[2:]) + "\\n")
"""


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git sees no configuration of this machine: no identity, and a global core.hooksPath that
    would bypass the remote's hooks if create_remote did not pin them."""
    global_config = tmp_path / "gitconfig"
    global_config.write_text("[core]\n\thooksPath = /nonexistent/hooks\n[init]\n\tdefaultBranch = trunk\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(global_config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL", "GIT_DIR"):
        monkeypatch.delenv(name, raising=False)


def git(*args: str, cwd: Path) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def sample_like(name: str, event: dict[str, Any]) -> dict[str, Any]:
    """The sample `name` with the fields that differ by design taken from `event`."""
    sample = load_event(name)
    sample["id"] = event["id"]
    sample["detail"]["repositoryId"] = event["detail"]["repositoryId"]
    return sample


# -- the event -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "old", "new", "ref", "at"),
    [
        ("push_created", ZERO_COMMIT, SAMPLE_COMMIT, "refs/heads/main", datetime(2025, 3, 14, 9, 20, 11, tzinfo=UTC)),
        ("push_updated", SAMPLE_OLD, SAMPLE_COMMIT, "refs/heads/main", datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)),
        ("push_deleted", SAMPLE_COMMIT, ZERO_COMMIT, "refs/heads/main", datetime(2025, 3, 14, 11, 2, 40, tzinfo=UTC)),
        ("push_tag", ZERO_COMMIT, SAMPLE_COMMIT, "refs/tags/v1.4.0", datetime(2025, 3, 14, 9, 40, 5, tzinfo=UTC)),
    ],
)
def test_a_pushed_ref_becomes_the_event_of_the_sample(sample: str, old: str, new: str, ref: str, at: datetime) -> None:
    # WHEN git's `old new ref` line becomes an event
    event = push_event("web-app", old, new, ref, "123456789012", "eu-west-1", SAMPLE_CALLER, now=at)
    # THEN it is the sample, field for field (only the event id and the repository id are ours)
    assert event == sample_like(sample, event)
    # AND the deployer's model takes it
    parse_event(CodeCommitReferenceEvent, event)


def test_the_repository_id_is_stable_per_name_and_the_caller_an_iam_user_arn() -> None:
    assert repository_id("web-app") == repository_id("web-app") != repository_id("api")
    assert caller_arn("alice@example.com") == "arn:aws:iam::123456789012:user/alice@example.com"
    assert caller_arn("Alice Example", "210987654321") == "arn:aws:iam::210987654321:user/Alice-Example"
    assert caller_arn(SAMPLE_CALLER) == SAMPLE_CALLER
    event = push_event("web-app", ZERO_COMMIT, SAMPLE_COMMIT, "refs/heads/main", caller="Alice Example")
    parse_event(CodeCommitReferenceEvent, event)


@pytest.mark.parametrize(
    ("old", "new", "ref", "why"),
    [
        (ZERO_COMMIT, SAMPLE_COMMIT, "refs/notes/commits", "neither a branch"),
        (ZERO_COMMIT, SAMPLE_COMMIT, "refs/heads/", "names no branch"),
        (ZERO_COMMIT, ZERO_COMMIT, "refs/heads/main", "nothing was pushed"),
        ("not-a-commit", SAMPLE_COMMIT, "refs/heads/main", "40 hexadecimal"),
    ],
)
def test_what_codecommit_would_not_announce_is_refused(old: str, new: str, ref: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        push_event("web-app", old, new, ref)


# -- a real remote and real pushes ---------------------------------------------------------------


@pytest.fixture
def recorded(tmp_path: Path) -> Path:
    return tmp_path / "hook-calls.jsonl"


@pytest.fixture
def remote(tmp_path: Path, recorded: Path) -> Path:
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    return create_remote(tmp_path / "remotes", "web-app", [sys.executable, str(recorder), str(recorded)])


def calls(recorded: Path) -> list[list[str]]:
    if not recorded.exists():
        return []
    return [json.loads(line) for line in recorded.read_text().splitlines()]


@pytest.mark.integration
def test_the_remote_is_a_bare_repository_with_an_executable_posix_hook(remote: Path) -> None:
    assert remote.name == "web-app.git"
    assert git("rev-parse", "--is-bare-repository", cwd=remote) == "true"
    assert git("symbolic-ref", "HEAD", cwd=remote) == "refs/heads/main"
    hook = remote / "hooks" / "post-receive"
    assert hook.stat().st_mode & stat.S_IXUSR
    text = hook.read_text()
    assert text.startswith("#!/bin/sh\n")
    subprocess.run(["sh", "-n", str(hook)], check=True)  # valid POSIX sh
    # AND the emit command the local stack installs names this module
    command = emit_command("http://127.0.0.1:8790/", "web-app")
    assert command[1:4] == ["-m", "deployer_local.gitremote", "emit"]


@pytest.mark.integration
def test_pushes_from_a_clone_emit_created_updated_tag_and_deleted_events(
    tmp_path: Path, remote: Path, recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a clone with an initial commit (nothing pushed yet), its user set in its own config
    clone = clone_and_seed(remote, tmp_path / "work")
    git("config", "user.name", "Dev Eloper", cwd=clone)
    git("config", "user.email", "dev@example.test", cwd=clone)
    assert calls(recorded) == []
    first = git("rev-parse", "HEAD", cwd=clone)
    # WHEN main is pushed for the first time, then updated, a tag pushed, a branch pushed and deleted
    git("push", "--quiet", "origin", "main", cwd=clone)
    (clone / "app.txt").write_text("v2\n")
    git("add", "app.txt", cwd=clone)
    git("commit", "--quiet", "-m", "v2", cwd=clone)
    second = git("rev-parse", "HEAD", cwd=clone)
    git("push", "--quiet", "origin", "main", cwd=clone)
    git("tag", "v1.0.0", cwd=clone)
    git("push", "--quiet", "origin", "v1.0.0", cwd=clone)
    git("push", "--quiet", "origin", "main:refs/heads/feature", cwd=clone)
    git("push", "--quiet", "origin", "--delete", "feature", cwd=clone)
    # THEN the hook ran once per ref with git's `old new ref`
    assert calls(recorded) == [
        [ZERO_COMMIT, first, "refs/heads/main"],
        [first, second, "refs/heads/main"],
        [ZERO_COMMIT, second, "refs/tags/v1.0.0"],
        [ZERO_COMMIT, second, "refs/heads/feature"],
        [second, ZERO_COMMIT, "refs/heads/feature"],
    ]
    # AND the events built from those arguments are the ones CodeCommit sends
    events = [push_event("web-app", old, new, ref, caller="dev@example.test") for old, new, ref in calls(recorded)]
    details = [parse_event(CodeCommitReferenceEvent, event).detail for event in events]
    assert [(d.event, d.reference_type, d.reference_name) for d in details] == [
        ("referenceCreated", "branch", "main"),
        ("referenceUpdated", "branch", "main"),
        ("referenceCreated", "tag", "v1.0.0"),
        ("referenceCreated", "branch", "feature"),
        ("referenceDeleted", "branch", "feature"),
    ]
    assert (details[1].old_commit_id, details[1].commit_id) == (first, second)
    assert details[4].commit_id is None
    assert details[4].old_commit_id == second
    assert all(d.caller_user_arn == "arn:aws:iam::123456789012:user/dev@example.test" for d in details)
    # AND where the hook runs (the remote, no git identity there) the pusher is the commit's committer
    assert gitremote.local_git_user(first, second, cwd=remote) == "dev@example.test"
    assert gitremote.local_git_user(second, ZERO_COMMIT, cwd=remote) == "dev@example.test"


@pytest.mark.integration
def test_creating_the_remote_again_keeps_its_history_and_rewrites_its_hook(
    tmp_path: Path, remote: Path, recorded: Path
) -> None:
    clone = clone_and_seed(remote, tmp_path / "work")
    git("push", "--quiet", "origin", "main", cwd=clone)
    again = create_remote(remote.parent, "web-app", ["true"])
    assert again == remote
    assert git("rev-parse", "main", cwd=remote) == git("rev-parse", "HEAD", cwd=clone)
    assert '    true "$old" "$new" "$ref" || true' in (remote / "hooks" / "post-receive").read_text()
    assert clone_and_seed(remote, tmp_path / "work") == clone  # an existing clone is kept


def test_a_remote_needs_a_hook_command(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hook_command"):
        create_remote(tmp_path, "web-app", [])


# -- emit: what the hook runs --------------------------------------------------------------------


class Answer:
    status = 202

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *_: object) -> None:
        return None


def test_emit_posts_the_event_to_the_control_endpoint_and_prints_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    sent: list[tuple[urllib.request.Request, float]] = []

    def urlopen(request: urllib.request.Request, timeout: float) -> Answer:
        sent.append((request, timeout))
        return Answer()

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    argv = ["emit", "--control-url", "http://127.0.0.1:8790/", "--repository", "web-app", "--caller", "dev"]
    status = gitremote.main([*argv, SAMPLE_OLD, SAMPLE_COMMIT, "refs/heads/main"])
    assert status == 0
    ((request, timeout),) = sent
    assert request.full_url == "http://127.0.0.1:8790/events"
    assert request.get_method() == "POST"
    assert request.get_header("Content-type") == "application/json"
    assert timeout == 10
    assert isinstance(request.data, bytes)
    event = parse_event(CodeCommitReferenceEvent, json.loads(request.data))
    assert event.detail.event == "referenceUpdated"
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1
    assert out[0].startswith("deployer: web-app branch main updated 3e5983b8d0a1 -> 7f0103f2c1d6: sent")
    assert "HTTP 202" in out[0]


@pytest.mark.parametrize(
    ("failure", "says"),
    [
        (urllib.error.URLError(ConnectionRefusedError(111, "Connection refused")), "is not running at"),
        (urllib.error.URLError(TimeoutError("timed out")), "did not answer within 10 s"),
        (TimeoutError("timed out"), "did not answer within 10 s"),
    ],
)
def test_emit_says_clearly_when_the_stack_is_not_there(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], failure: Exception, says: str
) -> None:
    def urlopen(request: urllib.request.Request, timeout: float) -> Answer:
        raise failure

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    argv = ["emit", "--control-url", "http://127.0.0.1:9/", "--repository", "web-app", "--caller", "dev"]
    assert gitremote.main([*argv, ZERO_COMMIT, SAMPLE_COMMIT, "refs/heads/main"]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert says in line
    assert "this push was not deployed" in line


@pytest.mark.integration
def test_emit_skips_refs_codecommit_would_not_announce(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["emit", "--control-url", "http://127.0.0.1:9/", "--repository", "web-app"]
    assert gitremote.main([*argv, ZERO_COMMIT, SAMPLE_COMMIT, "refs/notes/commits"]) == 0
    assert "not sent" in capsys.readouterr().out


@pytest.mark.integration
def test_the_hook_runs_this_module_as_git_would(tmp_path: Path, remote: Path) -> None:
    """`python -m deployer_local.gitremote emit` through the installed hook, with no stack to
    reach (a URL urllib cannot open, so no socket is used): the push succeeds and the pusher reads
    one clear line (git prefixes "remote:")."""
    create_remote(remote.parent, "web-app", emit_command("nowhere://local-stack/", "web-app"))
    clone = clone_and_seed(remote, tmp_path / "work")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        ["git", "push", "origin", "main"], cwd=clone, capture_output=True, text=True, check=False, env=env
    )
    assert done.returncode == 0, done.stderr
    assert "remote: deployer: the local stack is not running at nowhere://local-stack/" in done.stderr
