"""GitHub and GitLab pushes through the local stack, as CodeCommit pushes go: a real `git push` to
the stand-in remote, whose post-receive hook sends the signed push webhook (GitHub's documented
push payload shape, `X-Hub-Signature-256`; GitLab's with `X-Gitlab-Token`) over real HTTP to the
local Function URL of OnWebhookFunction, which runs from the `sam build` output. The release then
reaches its first stage through the unchanged CodeBuild and ECS path.

The Function URL stand-in refuses a body above Lambda's 6 MB synchronous payload limit ("For
synchronous invocations, the maximum payload size is 6 MB": AWS Lambda API reference, Invoke,
https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html) with a 413 the sender can read.

GitHub ends a delivery that takes longer than 10 seconds ("Your server should respond with a 2XX
response within 10 seconds of receiving a webhook delivery": GitHub, "Best practices for using
webhooks", https://docs.github.com/en/webhooks/using-webhooks/best-practices-for-using-webhooks):
each test checks how long the warm function took to answer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

pytestmark = pytest.mark.integration

FIRST_STAGE_OR_LATER = {"DEPLOYING", "DEPLOYED", "AWAITING_APPROVAL", "RELEASED"}


@pytest.fixture
def stack_log() -> list[str]:
    return []


@pytest.fixture
def webhook_stack(tmp_path: Path, build_dir: Path, stack_log: list[str]) -> Iterator[Callable[[str], Any]]:
    """Starts the local stack whose demo pipeline watches `source` (github or gitlab), on a copy of
    the build; stops it afterwards and restores the process environment."""
    from deployer_local.stack import LocalStack, StackOptions

    build_copy = tmp_path / "build"
    shutil.copytree(build_dir, build_copy, symlinks=True)

    def printer(text: str) -> None:
        stack_log.append(text)
        print(text)

    saved = dict(os.environ)
    git_config = tmp_path / "gitconfig"
    git_config.write_text("[user]\n\tname = Ada Developer\n\temail = ada@example.com\n")
    os.environ.update({"GIT_CONFIG_GLOBAL": str(git_config), "GIT_CONFIG_NOSYSTEM": "1"})
    started: list[Any] = []

    def start(source: str) -> Any:
        options = StackOptions(root=tmp_path / "local", build_dir=build_copy, step_delay=0, source=source)
        stack = LocalStack(options, printer=printer)
        started.append(stack)
        return stack.start()

    try:
        yield start
    finally:
        for stack in started:
            stack.stop()
        os.environ.clear()
        os.environ.update(saved)


def push(remote: Path, workdir: Path, change: str) -> tuple[str, str]:
    """Commit a change in a clone of `remote` and push it to main: (commit, what git printed)."""
    from deployer_local.gitremote import clone_and_seed

    clone = clone_and_seed(remote, workdir)

    def git(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True, text=True)

    with (clone / "CHANGELOG.md").open("a", encoding="utf-8") as changelog:
        changelog.write(f"- {change}\n")
    git("add", "CHANGELOG.md")
    git("commit", "-q", "-m", change)
    pushed = git("push", "origin", "HEAD:main")
    return git("rev-parse", "HEAD").stdout.strip(), pushed.stderr


def first_stage(stack: Any, commit: str, stack_log: list[str], timeout: float = 90) -> Any:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for release in stack.store.list_releases("web", limit=5):
            if release.commit == commit and release.state.value in FIRST_STAGE_OR_LATER:
                return release
        time.sleep(0.2)
    pytest.fail(f"the release of {commit} did not reach dev; the stack said:\n" + "\n".join(stack_log[-20:]))


def recorded(stack: Any) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb").Table(stack.store._table.name)
    return [i for i in table.scan()["Items"] if not str(i["pk"]).startswith("idempotency#")]


@pytest.mark.parametrize(
    ("source", "repository"),
    [("github", "github:example-org/web-app"), ("gitlab", "gitlab:example-group/web-app")],
)
def test_a_push_to_the_stand_in_remote_releases_through_the_webhook(
    webhook_stack: Callable[[str], Any], stack_log: list[str], tmp_path: Path, source: str, repository: str
) -> None:
    stack = webhook_stack(source)
    # GIVEN the demo pipeline `source: {<provider>: <repository>}` and the stand-in remote
    assert stack.remote.parent.name == source
    # WHEN a developer pushes to main with real git
    commit, said = push(stack.remote, tmp_path / "work", "Greet in French")
    # THEN the hook's delivery was verified and answered at once (git shows it as "remote: ...")
    assert f"deployer: {source} webhook for" in said
    assert "HTTP 200 release web@" in said, said
    assert "build web-app-build:" in said
    # and the release reaches its first stage, as from a CodeCommit push
    release = first_stage(stack, commit, stack_log)
    assert release.repository == repository
    assert release.stages["dev"].cluster == "dev"
    # and the function answered within GitHub's 10 s, cold and warm
    cold = stack.webhook_server_ms
    second, _ = push(stack.remote, tmp_path / "work", "Greet in German")
    warm = stack.webhook_server_ms
    print(f"{source} webhook answered in {cold:.0f} ms (first delivery, cold), {warm:.0f} ms (second, warm)")
    assert cold < 10_000
    assert warm < 10_000
    assert first_stage(stack, second, stack_log).commit == second


def test_the_local_function_url_refuses_a_25_mb_delivery_with_413(
    webhook_stack: Callable[[str], Any], tmp_path: Path
) -> None:
    stack = webhook_stack("github")
    body = b"{" + b" " * (25 * 1024 * 1024) + b"}"
    request = urllib.request.Request(
        f"{stack.webhook_url}github",
        data=body,
        headers={"content-type": "application/json", "x-github-event": "push", "x-github-delivery": "a-b-c"},
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=60)
    assert refused.value.code == 413
    assert "the limit is 6291456" in refused.value.read().decode()
    assert recorded(stack) == []
    # and the stack still answers the next delivery (a ping, unsigned: refused, but answered)
    ping = urllib.request.Request(f"{stack.webhook_url}github", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as unsigned:
        urllib.request.urlopen(ping, timeout=30)
    assert unsigned.value.code == 401
