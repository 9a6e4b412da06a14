"""`make demo`: one release told from end to end on the local stack, then everything stopped.

A real `git push` to the local remote starts it; CodeBuild and the ECS rollouts are SIMULATED
(and say so); the approval is given through the approval page over HTTP, the way a person's
browser does it: GET the page, then POST its form. `--wait-for-click` keeps the stack up and
waits for you to open the link and click instead.

`--blue-green` (`make demo-bluegreen`) publishes the variant whose prod is a BLUE_GREEN deployment:
no approval is asked before it; ECS (SIMULATED) scales up green, shifts test traffic to it and
pauses at POST_TEST_TRAFFIC_SHIFT, and the approval page's Approve continues the deployment
(ContinueServiceDeployment CONTINUE) to the production traffic shift.

`--source github` (`make demo SOURCE=github`; or gitlab) pushes to the local stand-in for GitHub
(GitLab) instead: its hook sends the signed push webhook to OnWebhookFunction's local Function URL,
and the release runs from there exactly as from a CodeCommit push.

`--releases 3 --keep-revisions 1` pushes three commits one after the other, each approved and
released before the next, with the demo pipeline keeping one revision per family: the scheduled
tasks follow every release, and the third release deregisters the first one's revisions.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from deployer.releases.model import Release, ReleaseState
from deployer_cli.signals import run_stoppable

WAITING = {ReleaseState.AWAITING_APPROVAL}
DONE = {s for s in ReleaseState if s.terminal}


def say(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def wait_for(stack: object, states: set[ReleaseState], timeout: float, commit: str | None = None) -> Release:
    """The newest release (or the release of `commit`) once it is in one of `states`."""
    store = stack.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        releases = [store.get(f"web@{commit}")] if commit else store.list_releases("web", limit=1)
        if releases and releases[0] is not None and releases[0].state in states:
            return releases[0]  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise TimeoutError(f"the release did not reach {sorted(s.value for s in states)} within {timeout:.0f} s")


def approval_link(stack: object, timeout: float = 15.0, commit: str | None = None) -> str:
    """The link of the Slack message's "Review and approve" button (posted just after the
    release turns AWAITING_APPROVAL, so it is waited for); with `commit`, of that commit's release."""
    sink = stack.slack  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        for request in reversed(sink.requests("/api/chat.")):
            if commit and commit[:12] not in str(request.body):
                continue
            for block in request.blocks or []:
                for element in block.get("elements", []) if block.get("type") == "actions" else []:
                    if "/approvals/" in str(element.get("url", "")):
                        return str(element["url"])
        if time.monotonic() > deadline:
            raise RuntimeError("no approval link was posted to Slack")
        time.sleep(0.1)


def approve_like_a_browser(link: str) -> str:
    """GET the approval page, then submit its form with the Approve button, as a browser does."""
    with urllib.request.urlopen(link, timeout=30) as page:  # noqa: S310 - the local approval server
        html = page.read().decode()
    title = re.search(r"<title>(.*?)</title>", html, re.S)
    base = link.split("/approvals/", maxsplit=1)[0]
    print(f"GET  {base}/approvals/…  -> {page.status} {title.group(1) if title else ''}")
    if '<form method="post">' not in html:
        raise RuntimeError("the approval page has no form to submit")
    data = urllib.parse.urlencode({"decision": "approve"}).encode()
    request = urllib.request.Request(link, data=data, method="POST")  # noqa: S310 - the local approval server
    request.add_header("content-type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - the local approval server
            body = str(answer.read().decode())
            status = answer.status
    except urllib.error.HTTPError as refused:
        body, status = str(refused.read().decode()), int(refused.code)
    heading = re.search(r"<h1>(.*?)</h1>", body, re.S)
    print(f"POST decision=approve -> {status} {heading.group(1) if heading else ''}")
    if status != 200:
        raise RuntimeError(f"the approval page refused the decision: HTTP {status}")
    return body


def run(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--wait-for-click", action="store_true", help="keep the stack up until you approve")
    parser.add_argument("--fail-stage", action="append", default=[], help="make this stage's rollout fail")
    parser.add_argument(
        "--blue-green",
        action="store_true",
        help="prod deploys BLUE_GREEN and is approved while ECS pauses it after the test traffic shift",
    )
    parser.add_argument(
        "--several-services",
        action="store_true",
        help="dev and prod each deploy web and a worker in one step (`services: [web, worker]`)",
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help="prod runs a before-task (migrate) with the new revision before its service is updated",
    )
    parser.add_argument(
        "--fail-before", action="append", default=[], help="make this stage's SIMULATED before-task exit 1"
    )
    parser.add_argument(
        "--source",
        choices=["codecommit", "github", "gitlab"],
        default="codecommit",
        help="where the push comes from (github, gitlab: a signed push webhook to the local Function URL)",
    )
    parser.add_argument("--releases", type=int, default=1, help="push this many commits, one release after the other")
    parser.add_argument(
        "--keep-revisions", type=int, default=None, help="the demo pipeline's keepRevisions (default: 10)"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.releases <= 10:
        parser.error("--releases: 1 to 10")
    name = (
        "make demo-click"
        if args.wait_for_click
        else "make demo-bluegreen"
        if args.blue_green
        else "make demo-services"
        if args.several_services
        else "make demo"
    )
    # SIGINT, SIGTERM, SIGHUP: the stack stops, then one line and 128 + the signal (deployer_cli.signals)
    return run_stoppable(name, lambda: _demo(args, name))


def _demo(args: argparse.Namespace, name: str) -> int:
    from deployer_local import gitremote
    from deployer_local.gitremote import GitError
    from deployer_local.pidlock import AlreadyRunning
    from deployer_local.stack import LocalStack, StackOptions

    started = time.monotonic()
    stack = LocalStack(
        StackOptions(
            root=Path(".local"),
            fail_stages=tuple(args.fail_stage),
            fail_before=tuple(args.fail_before),
            before=args.before or bool(args.fail_before),
            blue_green=args.blue_green,
            several_services=args.several_services,
            command=name,
            source=args.source,
            keep_revisions=args.keep_revisions,
        )
    )
    say("Starting the local stack (no AWS account, no Docker)")
    try:  # one local stack per checkout: its .local/ (state file, git remote, moto log) is the stack's
        stack.start()
    except AlreadyRunning as exc:
        print(f"{name}: error: a local stack is {exc}", file=sys.stderr)
        return 1
    work = Path(tempfile.mkdtemp(prefix="deployer-demo-"))
    try:
        where = {"github": "the local GitHub stand-in", "gitlab": "the local GitLab stand-in"}.get(
            args.source, "the local remote"
        )
        say(f"A developer commits and pushes to main (a real git push to {where})")
        # The demo's developer, for the commit and for the remote's hook (it names the pusher).
        gitconfig = work / "gitconfig"
        gitconfig.write_text("[user]\n\tname = Ada Developer\n\temail = ada@example.com\n", encoding="utf-8")
        os.environ["GIT_CONFIG_GLOBAL"] = str(gitconfig)
        clone = gitremote.clone_and_seed(stack.remote, work)  # type: ignore[arg-type]
        for number in range(1, args.releases + 1):
            if number > 1:
                say(f"Release {number} of {args.releases}: another commit pushed to main")
            release = _push_and_release(stack, args, clone, number)
        stack.wait_idle(timeout=10)
        say("deployer status")
        from deployer_cli import main as deployer_command

        deployer_command(["status"])
        print(f"\nDemo finished in {time.monotonic() - started:.0f} s: release {release.state.value}.")
        return 0 if release.state is ReleaseState.RELEASED or args.fail_stage or args.fail_before else 1
    except (RuntimeError, GitError, subprocess.CalledProcessError, OSError) as exc:  # TimeoutError is an OSError
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        say("Stopping the local stack")
        stack.stop()
        shutil.rmtree(work, ignore_errors=True)
        print("Stopped: nothing left running.", flush=True)


def _push_and_release(stack: object, args: argparse.Namespace, clone: Path, number: int) -> Release:
    """Commit, push, and see the release through (approved on the page, as a browser does)."""
    greeting = "Greet in French" if number == 1 else f"Greet in French, take {number}"
    # A change of its own each run: the local remote keeps its history between demos.
    with (clone / "CHANGELOG.md").open("a", encoding="utf-8") as changelog:
        changelog.write(f"- {greeting} ({time.strftime('%Y-%m-%d %H:%M:%S')})\n")
    subprocess.run(["git", "add", "-A"], cwd=clone, check=True)  # noqa: S607 - git from PATH
    subprocess.run(["git", "commit", "-q", "-m", greeting], cwd=clone, check=True)  # noqa: S603, S607 - our text
    subprocess.run(["git", "push", "-q", "origin", "HEAD:main"], cwd=clone, check=True)  # noqa: S607
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"],  # noqa: S607
        cwd=clone,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    if number == 1:
        say("Build (SIMULATED), then the dev rollout (SIMULATED, drawn from the plan)")
    release = wait_for(stack, WAITING | DONE, timeout=60, commit=commit)
    if release.state is not ReleaseState.AWAITING_APPROVAL:
        say(f"The release ended {release.state.value}: {release.reason}")
        return release
    link = approval_link(stack, commit=commit)
    if args.wait_for_click:
        say(f"Open this link in your browser and click Approve or Reject:\n    {link}")
        return wait_for(stack, DONE | {ReleaseState.DEPLOYING}, timeout=3600, commit=commit)
    if args.blue_green:
        paused_at = (release.approval_context or {}).get("paused_at", "its PAUSE hook")
        say(
            f"ECS paused prod's BLUE_GREEN deployment at {paused_at} (SIMULATED): "
            "the demo approves through the approval page over HTTP"
        )
    else:
        say("prod needs an approval: the demo approves through the approval page over HTTP")
    approve_like_a_browser(link)
    if args.before or args.fail_before:
        say("prod's before-task (SIMULATED RunTask of the new revision), then prod's rollout (SIMULATED)")
    else:
        say("the rest of prod's deployment (SIMULATED)" if args.blue_green else "prod rollout (SIMULATED)")
    return wait_for(stack, DONE, timeout=60, commit=commit)


if __name__ == "__main__":
    sys.exit(run())
