"""`deployer slack manifest` and `deployer slack configure`.

configure: the bot token and signing secret come from a prompt without echo or from stdin, never
from argv; the secret gets the JSON the functions read, and reading it back through the
functions' own loader gives the same settings; nothing secret is printed or logged; a value Slack
would not accept changes nothing.

manifest: the Slack app manifest with the one scope the code uses and interactivity pointed at the
stack's ApprovalsUrl + "slack/interactions"; docs/slack-app-manifest.yaml is its output.

Facts relied on: Slack's "App manifest reference" (https://api.slack.com/reference/manifests)
lays a manifest out as `display_information`, `features.bot_user`, `oauth_config.scopes.bot` and
`settings.interactivity: {is_enabled: true, request_url: ...}`; Secrets Manager PutSecretValue
takes `SecretId` and `SecretString` and answers `ARN`, `Name`, `VersionId`, `VersionStages`
(botocore's secretsmanager model)."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from aws_lambda_powertools.utilities.parameters import SecretsProvider

from deployer.slack import settings_from_secret
from deployer_cli import build_parser, main
from deployer_cli.commands import slack as cli_slack
from deployer_cli.target import NAMES, STACK_ENV

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
SIGNING = "8f742231b10e8888abcd99yyyzzz85a5"  # a made-up signing secret
WEBHOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXX"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def secret(moto_aws: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    for name in [n.env for n in NAMES.values()] + [STACK_ENV, "AWS_ENDPOINT_URL"]:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    made = boto3.client("secretsmanager").create_secret(Name="ecs-deployer/test/slack", SecretString="{}")
    return str(made["ARN"])


def stored(secret_id: str) -> dict[str, Any]:
    return dict(json.loads(boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"]))


def configure(secret_id: str, *extra: str, stdin: io.StringIO, ask: Any = None) -> int:
    args = build_parser(only="slack").parse_args(["slack", "configure", "--slack-secret", secret_id, *extra])
    return cli_slack.run(args, environ={}, stdin=stdin, ask=ask)


def no_secret_in(*texts: str) -> None:
    for text in texts:
        for value in (TOKEN, SIGNING, WEBHOOK, TOKEN[5:], "AbCdEfGh"):
            assert value not in text


# -- configure ------------------------------------------------------------------------------------------


def test_configure_from_stdin_stores_what_the_functions_read_and_prints_no_secret(
    secret: str, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="deployer")  # the CLI configures no other logger
    # WHEN the values come on stdin, one per line
    code = configure(secret, "--channel", "C0123456789", stdin=io.StringIO(f"{TOKEN}\n{SIGNING}\n"))
    # THEN the secret holds the JSON the template's description gives
    assert code == 0
    assert stored(secret) == {"bot_token": TOKEN, "signing_secret": SIGNING, "channel": "C0123456789"}
    # AND the functions' loader reads it back as an interactive Slack (buttons on)
    settings = settings_from_secret(secret, provider=SecretsProvider(boto3_client=boto3.client("secretsmanager")))()
    assert (settings.bot_token, settings.signing_secret, settings.channel) == (TOKEN, SIGNING, "C0123456789")
    assert settings.interactive
    # AND the output says what the deployer will do, without a character of either secret
    out, err = capsys.readouterr()
    assert out.splitlines()[1:4] == [
        "  bot token       set: one message per release, updated as it moves",
        "  signing secret  set: Approve / Reject / Roll back buttons on",
        "  channel         C0123456789",
    ]
    no_secret_in(out, err, caplog.text)


def test_configure_on_a_terminal_asks_without_echo(secret: str, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a terminal: the values are asked through getpass-like prompts (no echo)
    asked: list[str] = []

    def ask(prompt: str) -> str:
        asked.append(prompt)
        return [TOKEN, SIGNING][len(asked) - 1]

    assert configure(secret, stdin=Terminal(), ask=ask) == 0
    assert asked == [
        "Bot User OAuth Token (xoxb-..., Slack app > OAuth & Permissions): ",
        "Signing Secret (Slack app > Basic Information > App Credentials): ",
    ]
    assert stored(secret) == {"bot_token": TOKEN, "signing_secret": SIGNING}
    no_secret_in(*capsys.readouterr())


def test_the_default_prompt_is_getpass(secret: str, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts: list[str] = []

    def getpass(prompt: str) -> str:
        prompts.append(prompt)
        return [TOKEN, SIGNING][len(prompts) - 1]

    monkeypatch.setattr(cli_slack.getpass, "getpass", getpass)
    monkeypatch.setattr("sys.stdin", Terminal())
    assert main(["slack", "configure", "--slack-secret", secret]) == 0
    assert len(prompts) == 2


def test_a_later_run_keeps_the_channel(secret: str) -> None:
    assert configure(secret, "--channel", "C0123456789", stdin=io.StringIO(f"{TOKEN}\n{SIGNING}\n")) == 0
    rotated = TOKEN.replace("AbCd", "ZyXw")
    assert configure(secret, stdin=io.StringIO(f"{rotated}\n{SIGNING}\n")) == 0
    assert stored(secret) == {"bot_token": rotated, "signing_secret": SIGNING, "channel": "C0123456789"}


def test_a_webhook_or_off(secret: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert configure(secret, "--webhook", stdin=io.StringIO(f"{WEBHOOK}\n")) == 0
    assert stored(secret) == {"webhook_url": WEBHOOK}
    assert "  webhook URL     set: one message per transition, no buttons" in capsys.readouterr().out
    assert configure(secret, "--off", stdin=io.StringIO("")) == 0
    assert stored(secret) == {}
    assert "  Slack      off (no bot token, no webhook URL)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("lines", "code", "says"),
    [
        ("not-a-token\nsecret\n", 1, "bot_token must be a Slack token (xoxb-...)"),
        (f"{TOKEN}\n\n", 2, "the signing secret is empty"),
        (f"{TOKEN}\n", 2, "standard input ended before the signing secret: give one value per line"),
    ],
)
def test_a_value_slack_would_not_accept_changes_nothing(
    secret: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], lines: str, code: int, says: str
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    assert main(["slack", "configure", "--slack-secret", secret]) == code
    err = capsys.readouterr().err
    assert says in err
    assert len(err.splitlines()) == 1
    assert stored(secret) == {}
    no_secret_in(err)


def test_a_token_cannot_be_given_on_the_command_line() -> None:
    with pytest.raises(SystemExit):
        build_parser(only="slack").parse_args(["slack", "configure", "--token", TOKEN])


def test_a_bad_channel_is_refused(secret: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slack", "configure", "--slack-secret", secret, "--channel", "deploys"]) == 2
    assert "--channel 'deploys' is not a Slack channel" in capsys.readouterr().err


def test_a_missing_secret_is_one_line(secret: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert configure("ecs-deployer/nope/slack", stdin=io.StringIO(f"{TOKEN}\n{SIGNING}\n")) == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("deployer slack configure: error: ResourceNotFoundException: ")
    assert line.endswith("(secret ecs-deployer/nope/slack)")


# -- manifest ---------------------------------------------------------------------------------------------


def test_the_manifest_points_interactivity_at_the_stacks_approval_url(capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://abc123.lambda-url.eu-west-1.on.aws/"
    assert main(["slack", "manifest", "--approval-url", url]) == 0
    manifest = yaml.safe_load(capsys.readouterr().out)
    assert manifest["settings"]["interactivity"] == {
        "is_enabled": True,
        "request_url": "https://abc123.lambda-url.eu-west-1.on.aws/slack/interactions",
    }
    assert manifest["oauth_config"]["scopes"] == {"bot": ["chat:write"]}
    assert manifest["settings"]["token_rotation_enabled"] is False
    assert manifest["features"]["bot_user"]["display_name"] == "ecs-deployer"
    assert len(manifest["display_information"]["name"]) <= 35  # Slack's limit


def test_the_manifest_refuses_a_url_slack_cannot_call(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["slack", "manifest", "--approval-url", "http://127.0.0.1:8788/"]) == 2
    assert "is not https: Slack sends interactions only to https URLs" in capsys.readouterr().err


def test_the_manifest_in_docs_is_the_commands_output() -> None:
    shipped = (ROOT / "docs" / "slack-app-manifest.yaml").read_text(encoding="utf-8")
    assert shipped == cli_slack.manifest_yaml(cli_slack.PLACEHOLDER_URL)


def test_the_scopes_cover_every_slack_web_api_method_the_code_calls() -> None:
    # GIVEN every Web API method slack.py calls on a WebClient (response_url answers need no scope)
    source = (ROOT / "layers" / "deployer" / "deployer" / "slack.py").read_text(encoding="utf-8")
    called = set(re.findall(r"_web\([^)]*\)\.(\w+)\(", source))
    # THEN each is covered by a scope of the manifest (Slack's method pages name chat:write for both)
    needs = {"chat_postMessage": "chat:write", "chat_update": "chat:write"}
    assert called == set(needs)
    assert set(needs.values()) <= set(cli_slack.BOT_SCOPES)
