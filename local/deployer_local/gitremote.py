"""A local git remote standing in for CodeCommit: `git push` to it emits the "CodeCommit
Repository State Change" event that CodeCommit would put on the default bus.

`create_remote` makes a bare repository whose `hooks/post-receive` runs a command for every
pushed ref (`old new ref`), typically this module's `emit`, which builds the event
(`push_event`, shaped like events/push_created.json, push_updated.json, push_deleted.json and
push_tag.json) and POSTs it to the local stack's control endpoint (`<control-url>events`, which
answers 202). The hook never blocks git for long (the POST gives up after 10 seconds) and never
refuses a push (post-receive runs after the refs moved); when the stack is not running it says so
in one line, which git shows the pusher as "remote: ...".

A second kind of remote stands in for GitHub or GitLab: its hook runs `webhook`, which sends the
push webhook GitHub (or GitLab) would send, shaped like their documented push payloads
(events/webhooks/), signed with the local webhook secret (`X-Hub-Signature-256`, or the
`X-Gitlab-Token`), over real HTTP to the local Function URL of OnWebhookFunction.

Standard library only: it runs inside `git push` for every ref.

    python -m deployer_local.gitremote emit --control-url http://127.0.0.1:8790/ --repository web-app \\
        OLD NEW REF
    python -m deployer_local.gitremote webhook --provider github --url http://127.0.0.1:8791/github \\
        --repository example-org/web-app --secret-file .local/webhook-secret-github OLD NEW REF
"""

from __future__ import annotations

import argparse
import getpass
import hashlib
import hmac
import json
import os
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

__all__ = [
    "EMIT_TIMEOUT_SECONDS",
    "ZERO_COMMIT",
    "GitError",
    "caller_arn",
    "clone_and_seed",
    "create_remote",
    "emit_command",
    "github_push_payload",
    "gitlab_push_payload",
    "main",
    "push_event",
    "repository_id",
    "webhook_command",
    "webhook_request",
]

ZERO_COMMIT: Final = "0" * 40
EMIT_TIMEOUT_SECONDS: Final = 10.0
LOCAL_ACCOUNT: Final = "123456789012"  # the account of the local stack (deployer_local.localrun.LOCAL_ACCOUNT)
DEFAULT_REGION: Final = "eu-west-1"  # deployer_local.localrun.DEFAULT_REGION
DEFAULT_BRANCH: Final = "main"
HOOK_MARKER: Final = "# Installed by deployer_local.gitremote"

_COMMIT: Final = re.compile(r"[0-9a-f]{40}")
_REPOSITORY: Final = re.compile(r"[A-Za-z0-9_.-]{1,100}")  # CodeCommit's RepositoryName
_IAM_NAME_INVALID: Final = re.compile(r"[^A-Za-z0-9+=,.@_-]+")
# A stable namespace for repository ids: the same name always gets the same id.
_REPOSITORY_NAMESPACE: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://ecs-deployer.invalid/local/codecommit")


class GitError(RuntimeError):
    """A git command failed; the message carries its error output."""


def _git(*args: str, cwd: Path | None = None) -> str:
    try:
        done = subprocess.run(  # noqa: S603 - git with fixed arguments
            ["git", *args],  # noqa: S607 - git from PATH, as the user runs it
            cwd=cwd,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    except FileNotFoundError:
        raise GitError("git is not installed (or not on PATH)") from None
    if done.returncode != 0:
        raise GitError(f"git {' '.join(args)} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout.strip()


# -- the remote ---------------------------------------------------------------------------------


def emit_command(control_url: str, repository: str, *, python: str = sys.executable) -> list[str]:
    """The hook command that sends each pushed ref to the local stack at `control_url`."""
    return [python, "-m", "deployer_local.gitremote", "emit", "--control-url", control_url, "--repository", repository]


def webhook_command(
    url: str, provider: str, repository: str, secret_file: Path, *, python: str = sys.executable
) -> list[str]:
    """The hook command that sends each pushed ref as a GitHub or GitLab push webhook to `url`
    (the local Function URL of OnWebhookFunction, with its route: <url>github or <url>gitlab)."""
    return [
        python,
        "-m",
        "deployer_local.gitremote",
        "webhook",
        "--provider",
        provider,
        "--url",
        url,
        "--repository",
        repository,
        "--secret-file",
        str(Path(secret_file).resolve()),
    ]


def hook_script(hook_command: Sequence[str], becomes: str = 'a CodeCommit "Repository State Change" event') -> str:
    """The post-receive hook (POSIX sh): `hook_command old new ref` for every line git gives it."""
    command = " ".join(shlex.quote(part) for part in hook_command)
    return (
        "#!/bin/sh\n"
        f"{HOOK_MARKER}: every pushed ref becomes\n"
        f"# {becomes} for the local stack. post-receive runs after the refs\n"
        "# moved, so it cannot refuse a push; the command gives up after 10 seconds.\n"
        "while read -r old new ref; do\n"
        f'    {command} "$old" "$new" "$ref" || true\n'
        "done\n"
        "exit 0\n"
    )


def create_remote(
    root: Path,
    name: str = "web-app",
    hook_command: Sequence[str] | None = None,
    becomes: str = 'a CodeCommit "Repository State Change" event',
) -> Path:
    """A bare repository `<root>/<name>.git` (default branch main) whose post-receive hook runs
    `hook_command + [old, new, ref]` for every pushed ref. An existing one is kept and its hook
    rewritten, so the local stack can restart over it."""
    if not hook_command:
        raise ValueError("hook_command is required: e.g. emit_command(control_url, name)")
    if not _REPOSITORY.fullmatch(name):
        raise ValueError(f"{name!r} is not a repository name (1-100 of A-Z a-z 0-9 _ . -)")
    remote = Path(root) / f"{name}.git"
    if not (remote / "HEAD").is_file():
        remote.mkdir(parents=True, exist_ok=True)
        _git("init", "--quiet", "--bare", f"--initial-branch={DEFAULT_BRANCH}", str(remote))
    # A global core.hooksPath would bypass this repository's hooks: pin them here.
    _git("config", "core.hooksPath", "hooks", cwd=remote)
    hook = remote / "hooks" / "post-receive"
    hook.parent.mkdir(exist_ok=True)
    hook.write_text(hook_script(hook_command, becomes), encoding="utf-8")
    hook.chmod(0o755)
    return remote


def clone_and_seed(remote: Path, workdir: Path) -> Path:
    """A working clone of `remote` under `workdir` on branch main, with an initial commit when
    the remote is empty (nothing is pushed: the first `git push` is the demo's). An existing
    clone is returned as it is."""
    clone = Path(workdir) / Path(remote).name.removesuffix(".git")
    if (clone / ".git").exists():
        return clone
    Path(workdir).mkdir(parents=True, exist_ok=True)
    _git("clone", "--quiet", str(Path(remote).resolve()), str(clone))
    if _optional_git("config", "user.email", cwd=clone) is None:
        _git("config", "user.name", "Local Developer", cwd=clone)
        _git("config", "user.email", "developer@localhost.invalid", cwd=clone)
    if _optional_git("rev-parse", "--verify", "--quiet", "HEAD", cwd=clone) is not None:
        return clone  # the remote has history already
    _git("symbolic-ref", "HEAD", f"refs/heads/{DEFAULT_BRANCH}", cwd=clone)
    (clone / "README.md").write_text(
        f"# {clone.name}\n\nA demo application deployed by ecs-deployer's local stack.\n", encoding="utf-8"
    )
    (clone / "Dockerfile").write_text("FROM public.ecr.aws/nginx/nginx:1.27\n", encoding="utf-8")
    (clone / "buildspec.yml").write_text(_BUILDSPEC, encoding="utf-8")
    _git("add", "README.md", "Dockerfile", "buildspec.yml", cwd=clone)
    _git("commit", "--quiet", "-m", "Initial commit", cwd=clone)
    return clone


_BUILDSPEC = """\
# The local stack simulates CodeBuild: nothing runs this file here. On AWS, start from
# ecs-deployer's buildspec.example.yml: build, push, and export IMAGE_URI pinned by digest.
version: 0.2
env:
  exported-variables: [IMAGE_URI]
phases:
  build:
    commands:
      - echo "see buildspec.example.yml"
"""


def _optional_git(*args: str, cwd: Path | None = None) -> str | None:
    try:
        value = _git(*args, cwd=cwd)
    except GitError:
        return None
    return value or None


# -- the event ----------------------------------------------------------------------------------


def repository_id(name: str) -> str:
    """A stable id for the repository `name` (a uuid5 of it), as CodeCommit gives each one."""
    return str(uuid.uuid5(_REPOSITORY_NAMESPACE, name))


def caller_arn(caller: str, account: str = LOCAL_ACCOUNT) -> str:
    """`caller` as an IAM user ARN (an ARN is kept as it is)."""
    if caller.startswith("arn:"):
        return caller
    name = _IAM_NAME_INVALID.sub("-", caller).strip("-")[:64] or "local-developer"
    return f"arn:aws:iam::{account}:user/{name}"


def push_event(  # noqa: PLR0917 - git's own order: repository, old, new, ref, then where and who
    repository: str,
    old: str,
    new: str,
    ref: str,
    account: str = LOCAL_ACCOUNT,
    region: str | None = None,
    caller: str | None = None,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The "CodeCommit Repository State Change" event for git's `old new ref` line:
    referenceCreated when `old` is 40 zeros (no oldCommitId), referenceDeleted when `new` is (no
    commitId), else referenceUpdated; a branch under refs/heads/, a tag under refs/tags/.
    ValueError for any other ref or malformed commit ids."""
    if not _REPOSITORY.fullmatch(repository):
        raise ValueError(f"{repository!r} is not a repository name (1-100 of A-Z a-z 0-9 _ . -)")
    for label, commit in (("old", old), ("new", new)):
        if not _COMMIT.fullmatch(commit):
            raise ValueError(f"{label} commit {commit!r} is not 40 hexadecimal digits")
    if old == ZERO_COMMIT and new == ZERO_COMMIT:
        raise ValueError("both commits are zeros: nothing was pushed")
    if ref.startswith("refs/heads/"):
        reference_type, name = "branch", ref.removeprefix("refs/heads/")
    elif ref.startswith("refs/tags/"):
        reference_type, name = "tag", ref.removeprefix("refs/tags/")
    else:
        raise ValueError(f"{ref} is neither a branch (refs/heads/) nor a tag (refs/tags/)")
    if not name:
        raise ValueError(f"{ref} names no branch or tag")
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    if old == ZERO_COMMIT:
        kind = "referenceCreated"
    elif new == ZERO_COMMIT:
        kind = "referenceDeleted"
    else:
        kind = "referenceUpdated"
    detail: dict[str, Any] = {
        "event": kind,
        "repositoryName": repository,
        "repositoryId": repository_id(repository),
        "referenceType": reference_type,
        "referenceName": name,
        "referenceFullName": ref,
    }
    if kind != "referenceDeleted":
        detail["commitId"] = new
    if kind != "referenceCreated":
        detail["oldCommitId"] = old
    detail["callerUserArn"] = caller_arn(caller or getpass.getuser(), account)
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CodeCommit Repository State Change",
        "source": "aws.codecommit",
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [f"arn:aws:codecommit:{region}:{account}:{repository}"],
        "detail": detail,
    }


def local_git_user(old: str, new: str, cwd: Path | None = None) -> str:
    """Who pushed, as far as a local remote can tell: the git user configured where the hook
    runs (`cwd`, the remote: the pusher's global identity), else the committer of the pushed (or
    deleted) commit, else the operating system's user."""
    configured = _optional_git("config", "user.email", cwd=cwd) or _optional_git("config", "user.name", cwd=cwd)
    if configured:
        return configured
    commit = new if new != ZERO_COMMIT else old
    committer = _optional_git("log", "-1", "--format=%ce", commit, cwd=cwd) if commit != ZERO_COMMIT else None
    return committer or getpass.getuser()


def describe_push(event: dict[str, Any]) -> str:
    """One line saying what the event is: "branch main updated 3e5983b8d0a1 -> 7f0103f2c1d6"."""
    detail = event["detail"]
    what = f"{detail['referenceType']} {detail['referenceName']}"
    new = str(detail.get("commitId", ""))[:12]
    old = str(detail.get("oldCommitId", ""))[:12]
    if detail["event"] == "referenceCreated":
        return f"{what} created at {new}"
    if detail["event"] == "referenceDeleted":
        return f"{what} deleted (was {old})"
    return f"{what} updated {old} -> {new}"


# -- the webhooks GitHub and GitLab would send ---------------------------------------------------


def _commit_info(commit: str, cwd: Path | None = None) -> dict[str, str]:
    """id, message, timestamp and author of `commit` in the repository at `cwd` (empty when git
    cannot tell, e.g. a deleted ref)."""
    if commit == ZERO_COMMIT:
        return {}
    text = _optional_git("log", "-1", "--format=%H%x00%s%x00%cI%x00%an%x00%ae", commit, cwd=cwd)
    if not text:
        return {}
    sha, message, timestamp, name, email = (text.split("\x00") + [""] * 5)[:5]
    return {"id": sha, "message": message, "timestamp": timestamp, "name": name, "email": email}


def github_push_payload(
    repository: str,
    old: str,
    new: str,
    ref: str,
    pusher: str,
    *,
    now: datetime | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """GitHub's `push` payload for git's `old new ref` line, in the shape of GitHub's documented
    example (events/webhooks/github_push_example.json), with the fields the deployer reads filled
    from git: ref, before, after, created, deleted, repository.full_name and pushed_at, pusher."""
    owner, _, name = repository.partition("/")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    head = _commit_info(new, cwd)
    commit = (
        {
            "id": head["id"],
            "message": head["message"],
            "timestamp": head["timestamp"],
            "author": {"name": head["name"], "email": head["email"]},
            "committer": {"name": head["name"], "email": head["email"]},
        }
        if head
        else None
    )
    return {
        "ref": ref,
        "before": old,
        "after": new,
        "created": old == ZERO_COMMIT,
        "deleted": new == ZERO_COMMIT,
        "forced": False,
        "base_ref": None,
        "compare": f"https://github.com/{repository}/compare/{old[:12]}...{new[:12]}",
        "commits": [commit] if commit else [],
        "head_commit": commit,
        "repository": {
            "name": name,
            "full_name": repository,
            "private": True,
            "owner": {"name": owner, "login": owner},
            "html_url": f"https://github.com/{repository}",
            "pushed_at": int(moment.timestamp()),
            "default_branch": DEFAULT_BRANCH,
        },
        "pusher": {"name": pusher, "email": head.get("email", "")},
        "sender": {"login": pusher, "type": "User"},
    }


def gitlab_push_payload(
    repository: str,
    old: str,
    new: str,
    ref: str,
    pusher: str,
    *,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """GitLab's "Push Hook" payload for git's `old new ref` line, in the shape of GitLab's documented
    example (events/webhooks/gitlab_push_example.json)."""
    head = _commit_info(new, cwd)
    name = repository.rsplit("/", 1)[-1]
    return {
        "object_kind": "push",
        "event_name": "push",
        "before": old,
        "after": new,
        "ref": ref,
        "checkout_sha": new if new != ZERO_COMMIT else None,
        "user_name": pusher,
        "user_username": pusher,
        "user_email": head.get("email", ""),
        "project": {
            "name": name,
            "path_with_namespace": repository,
            "default_branch": DEFAULT_BRANCH,
            "web_url": f"https://gitlab.example.com/{repository}",
        },
        "commits": (
            [{"id": head["id"], "message": head["message"], "title": head["message"], "timestamp": head["timestamp"]}]
            if head
            else []
        ),
        "total_commits_count": 1 if head else 0,
    }


def webhook_request(provider: str, payload: dict[str, Any], secret: str) -> tuple[bytes, dict[str, str]]:
    """The body and headers GitHub or GitLab would send: GitHub signs the body
    (`X-Hub-Signature-256: sha256=<hex HMAC-SHA256>`), GitLab sends its token."""
    body = json.dumps(payload).encode("utf-8")
    delivery = str(uuid.uuid4())
    if provider == "github":
        signature = "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
        return body, {
            "content-type": "application/json",
            "user-agent": "GitHub-Hookshot/local",
            "x-github-event": "push",
            "x-github-delivery": delivery,
            "x-github-hook-id": "1",
            "x-hub-signature-256": signature,
        }
    if provider == "gitlab":
        return body, {
            "content-type": "application/json",
            "user-agent": "GitLab/local",
            "x-gitlab-event": "Push Hook",
            "x-gitlab-event-uuid": delivery,
            "x-gitlab-webhook-uuid": str(uuid.uuid5(uuid.NAMESPACE_URL, payload["project"]["path_with_namespace"])),
            "x-gitlab-instance": "https://gitlab.example.com",
            "idempotency-key": delivery,
            "x-gitlab-token": secret,
        }
    raise ValueError(f"{provider!r} is not github or gitlab")


def send_webhook(url: str, body: bytes, headers: dict[str, str], timeout: float = EMIT_TIMEOUT_SECONDS) -> str:
    """POST the delivery; one line with the answer. ConnectionError when the stack is not there."""
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 - the local URL
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            status, text = answer.status, answer.read(2000).decode("utf-8", "replace")
    except urllib.error.HTTPError as refused:
        status, text = refused.code, refused.read(2000).decode("utf-8", "replace")
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(
            f"the local stack's webhook is not answering at {url} ({reason}); start it with "
            "`deployer local up --source github` (or gitlab), then push again: this push was not deployed"
        ) from None
    try:
        message = str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        message = text.strip()
    return f"HTTP {status} {message}"


def _webhook(args: argparse.Namespace) -> int:
    try:
        secret = Path(args.secret_file).read_text(encoding="utf-8").strip()
    except OSError as exc:
        print(f"deployer: cannot read the webhook secret {args.secret_file}: {exc.strerror}; this push was not sent")
        return 1
    for label, commit in (("old", args.old), ("new", args.new)):
        if not _COMMIT.fullmatch(commit):
            print(f"deployer: {args.ref} not sent: {label} commit {commit!r} is not 40 hexadecimal digits")
            return 0
    pusher = args.pusher or local_git_user(args.old, args.new)
    if args.provider == "github":
        payload = github_push_payload(args.repository, args.old, args.new, args.ref, pusher)
    else:
        payload = gitlab_push_payload(args.repository, args.old, args.new, args.ref, pusher)
    body, headers = webhook_request(args.provider, payload, secret)
    try:
        answer = send_webhook(args.url, body, headers, args.timeout)
    except ConnectionError as exc:
        print(f"deployer: {exc}")
        return 1
    print(f"deployer: {args.provider} webhook for {args.repository} {args.ref} {args.new[:12]}: {answer}")
    return 0


# -- emit: the hook's command -------------------------------------------------------------------


def events_url(control_url: str) -> str:
    return control_url if control_url.endswith("/events") else control_url.rstrip("/") + "/events"


def send(event: dict[str, Any], control_url: str, timeout: float = EMIT_TIMEOUT_SECONDS) -> str:
    """POST the event to the local stack; one line saying what happened. Raises ConnectionError
    with a clear message when the stack is not there or does not take it."""
    url = events_url(control_url)
    request = urllib.request.Request(  # noqa: S310 - the local stack's URL, given by the user
        url,
        data=json.dumps(event).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310
            status = answer.status
    except urllib.error.HTTPError as refused:
        body = refused.read(300).decode("utf-8", "replace").strip()
        raise ConnectionError(f"the local stack at {url} refused the event: HTTP {refused.code} {body}") from None
    except TimeoutError:
        raise ConnectionError(
            f"the local stack at {control_url} did not answer within {timeout:g} s; this push was not deployed"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise ConnectionError(
                f"the local stack at {control_url} did not answer within {timeout:g} s; this push was not deployed"
            ) from None
        raise ConnectionError(
            f"the local stack is not running at {control_url} ({reason}); start it with `deployer local up`, "
            "then push again: this push was not deployed"
        ) from None
    return f"HTTP {status}"


def _emit(args: argparse.Namespace) -> int:
    try:
        event = push_event(
            args.repository,
            args.old,
            args.new,
            args.ref,
            account=args.account,
            region=args.region,
            caller=args.caller or local_git_user(args.old, args.new),
        )
    except ValueError as exc:
        print(f"deployer: {args.ref} not sent: {exc}")
        return 0
    try:
        status = send(event, args.control_url, args.timeout)
    except ConnectionError as exc:
        print(f"deployer: {exc}")
        return 1
    print(
        f"deployer: {args.repository} {describe_push(event)}: sent to the local stack ({status}, event {event['id']})"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployer_local.gitremote",
        description="The local git remote's side of the local stack (run by its post-receive hook).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    emit = actions.add_parser("emit", help="send one pushed ref to the local stack as a CodeCommit event")
    emit.add_argument("--control-url", required=True, metavar="URL", help="the local stack's control endpoint")
    emit.add_argument("--repository", required=True, metavar="NAME", help="the CodeCommit repository name")
    emit.add_argument("--account", default=LOCAL_ACCOUNT, help=f"the event's account (default {LOCAL_ACCOUNT})")
    emit.add_argument("--region", default=None, help=f"the event's region (default $AWS_REGION or {DEFAULT_REGION})")
    emit.add_argument("--caller", default=None, help="who pushed (default: the local git user)")
    emit.add_argument("--timeout", type=float, default=EMIT_TIMEOUT_SECONDS, help="seconds to wait for the stack")
    emit.add_argument("old", metavar="OLD", help="the ref's previous commit (40 zeros: created)")
    emit.add_argument("new", metavar="NEW", help="the ref's new commit (40 zeros: deleted)")
    emit.add_argument("ref", metavar="REF", help="the full ref name (refs/heads/main)")
    hook = actions.add_parser("webhook", help="send one pushed ref as a signed GitHub or GitLab push webhook")
    hook.add_argument("--provider", required=True, choices=["github", "gitlab"])
    hook.add_argument("--url", required=True, metavar="URL", help="the webhook URL (<function url>github or gitlab)")
    hook.add_argument("--repository", required=True, metavar="OWNER/REPO", help="the repository's full name")
    hook.add_argument("--secret-file", required=True, metavar="FILE", help="a file holding the webhook secret")
    hook.add_argument("--pusher", default=None, help="who pushed (default: the local git user)")
    hook.add_argument("--timeout", type=float, default=EMIT_TIMEOUT_SECONDS, help="seconds to wait for the answer")
    hook.add_argument("old", metavar="OLD", help="the ref's previous commit (40 zeros: created)")
    hook.add_argument("new", metavar="NEW", help="the ref's new commit (40 zeros: deleted)")
    hook.add_argument("ref", metavar="REF", help="the full ref name (refs/heads/main)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from deployer_cli.signals import run_stoppable

    args = build_parser().parse_args(argv)
    # Ctrl-C during `git push` reaches the hook too: one line through git ("remote: ..."), no traceback
    return run_stoppable("deployer", lambda: _webhook(args) if args.action == "webhook" else _emit(args))


if __name__ == "__main__":
    sys.exit(main())
