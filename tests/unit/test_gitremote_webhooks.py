"""The local GitHub and GitLab stand-in remotes: what their post-receive hook sends is what the
deployer's webhook accepts (the documented payload shapes in events/webhooks/, GitHub's
`X-Hub-Signature-256` over the raw body, GitLab's `X-Gitlab-Token`), over real HTTP."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from deployer.sources import Push
from deployer.webhooks import Answer, WebhookRequest, parse_github, parse_gitlab, verify_github, verify_gitlab
from deployer_local import gitremote

pytestmark = pytest.mark.unit

OLD = "1" * 40
NEW = "2" * 40
AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SECRET = "local-secret"


def request(provider: str, payload: dict[str, Any], secret: str = SECRET) -> WebhookRequest:
    body, headers = gitremote.webhook_request(provider, payload, secret)
    return WebhookRequest("POST", f"/{provider}", headers, body)


@pytest.mark.integration
def test_the_github_stand_in_sends_a_signed_push_the_webhook_accepts() -> None:
    payload = gitremote.github_push_payload("example-org/web-app", OLD, NEW, "refs/heads/main", "ada", now=AT)
    sent = request("github", payload)
    assert verify_github(sent.body, sent.header("x-hub-signature-256"), SECRET)
    assert not verify_github(sent.body, sent.header("x-hub-signature-256"), "another-secret")
    parsed = parse_github(sent, datetime(2030, 1, 1, tzinfo=UTC))
    assert parsed == Push(
        provider="github",
        repository="example-org/web-app",
        branch="main",
        commit=NEW,
        previous_commit=OLD,
        pusher="github:ada",
        pushed_at=AT,
        delivery_id=f"github:{sent.header('x-github-delivery')}",
    )


@pytest.mark.integration
def test_the_gitlab_stand_in_sends_its_token_and_a_push_the_webhook_accepts() -> None:
    payload = gitremote.gitlab_push_payload(
        "example-group/web-app", gitremote.ZERO_COMMIT, NEW, "refs/heads/main", "ada"
    )
    sent = request("gitlab", payload)
    assert verify_gitlab(sent.header("x-gitlab-token"), SECRET)
    parsed = parse_gitlab(sent, AT)
    assert isinstance(parsed, Push)
    assert (parsed.repository, parsed.branch, parsed.commit, parsed.previous_commit, parsed.pusher) == (
        "example-group/web-app",
        "main",
        NEW,
        None,
        "gitlab:ada",
    )


@pytest.mark.parametrize("provider", ["github", "gitlab"])
def test_a_deleted_branch_from_the_stand_in_is_ignored(provider: str) -> None:
    build = gitremote.github_push_payload if provider == "github" else gitremote.gitlab_push_payload
    payload = build("example-org/web-app", OLD, gitremote.ZERO_COMMIT, "refs/heads/main", "ada")
    parsed = (parse_github if provider == "github" else parse_gitlab)(request(provider, payload), AT)
    assert isinstance(parsed, Answer)
    assert parsed.message == "ignored: branch main deleted: nothing to deploy"


class Recorder:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                recorder.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                answer = json.dumps({"outcome": "started", "message": "release web@2222: build b:1 started"}).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.integration
def test_the_hook_command_posts_the_signed_delivery_and_prints_the_answer(
    recorder: Recorder, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret_file = tmp_path / "webhook-secret-github"
    secret_file.write_text(SECRET + "\n")
    command = gitremote.webhook_command(f"{recorder.url}github", "github", "example-org/web-app", secret_file)
    code = gitremote.main([*command[3:], "--pusher", "ada", OLD, NEW, "refs/heads/main"])
    assert code == 0
    ((path, headers, body),) = recorder.requests
    assert path == "/github"
    assert headers["x-github-event"] == "push"
    assert verify_github(body, headers["x-hub-signature-256"], SECRET)
    assert json.loads(body)["repository"]["full_name"] == "example-org/web-app"
    out = capsys.readouterr().out
    assert out.strip() == (
        "deployer: github webhook for example-org/web-app refs/heads/main 222222222222: "
        "HTTP 200 release web@2222: build b:1 started"
    )
    assert SECRET not in out


@pytest.mark.integration
def test_the_hook_says_so_when_the_secret_file_or_the_stack_is_missing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = gitremote.webhook_command("http://127.0.0.1:9/github", "github", "o/r", tmp_path / "nope")
    assert gitremote.main([*missing[3:], OLD, NEW, "refs/heads/main"]) == 1
    assert "cannot read the webhook secret" in capsys.readouterr().out
    (tmp_path / "secret").write_text(SECRET)
    down = gitremote.webhook_command("http://127.0.0.1:9/github", "github", "o/r", tmp_path / "secret")
    assert gitremote.main([*down[3:], "--timeout", "2", OLD, NEW, "refs/heads/main"]) == 1
    assert "webhook is not answering" in capsys.readouterr().out
