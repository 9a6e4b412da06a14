"""`deployer slack manifest` and `deployer slack configure`: the Slack app, from nothing to buttons.

- `manifest` prints the Slack app manifest (YAML) to paste into "Create New App > From an app
  manifest" at https://api.slack.com/apps: a bot with the one scope the deployer uses
  (`chat:write`: chat.postMessage and chat.update; answers to button clicks go through each
  interaction's response_url, which needs no scope) and interactivity on, its request URL the
  stack's ApprovalsUrl output + "slack/interactions" (Slack's app manifest reference:
  `settings.interactivity.is_enabled` and `request_url`). Token rotation stays off: a rotating
  bot token expires after 12 hours and the deployer keeps one token in its secret.
- `configure` stores the bot token and the signing secret (or, with --webhook, an incoming webhook
  URL; with --off, nothing: Slack off) in the stack's Slack secret, as the JSON the functions read
  (`slack.SlackSettings.from_json`), then reads it back through the functions' own loader
  (`slack.settings_from_secret`) and says what the deployer will do with it. The values are read
  from a prompt that does not echo (a terminal) or from standard input, one per line: never from
  the command line (argv is visible to every user of the machine and lands in shell history),
  never printed, never logged. Keys already in the secret that this run does not set (the channel)
  are kept.

Where: the rule of every command (`deployer_cli.target`): --slack-secret / --approval-url,
--stack, DEPLOYER_SLACK_SECRET / DEPLOYER_APPROVAL_URL, DEPLOYER_STACK, the local stack's state file.

Exit status: 0 done, 1 refused (a value Slack would not accept, an AWS error: one line), 2 unusable
arguments or nothing says where.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Final, TextIO

from deployer_cli import UsageError
from deployer_cli.target import (
    NAMES,
    DescribeStack,
    Target,
    add_stack_argument,
    add_state_argument,
    resolve_names,
    session_for,
    target_from,
)

INTERACTIONS_PATH: Final = "slack/interactions"
BOT_SCOPES: Final = ("chat:write",)
DEFAULT_APP_NAME: Final = "ecs-deployer"
PLACEHOLDER_URL: Final = "https://<ApprovalsUrl output>/"


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    manifest = actions.add_parser(
        "manifest",
        help="print the Slack app manifest (YAML) with the stack's interactivity URL",
        description="Print the Slack app manifest to paste into https://api.slack.com/apps (From an app manifest).",
    )
    manifest.add_argument(
        "--name", default=DEFAULT_APP_NAME, help=f"the app's name in Slack (default {DEFAULT_APP_NAME})"
    )
    manifest.add_argument(
        "--approval-url", metavar="URL", help=f"the approval page's base URL (default: ${NAMES['approval_url'].env})"
    )
    add_stack_argument(manifest)
    add_state_argument(manifest)
    configure = actions.add_parser(
        "configure",
        help="store the bot token and signing secret (read from a prompt or stdin) in the Slack secret",
        description=(
            "Store the Slack bot token and signing secret in the deployer's Slack secret. They are read from a "
            "prompt that does not echo, or from standard input (one per line), never from the command line."
        ),
    )
    mode = configure.add_mutually_exclusive_group()
    mode.add_argument(
        "--webhook", action="store_true", help="store an incoming webhook URL instead (messages, no buttons)"
    )
    mode.add_argument("--off", action="store_true", help="turn Slack off (store {})")
    configure.add_argument(
        "--channel",
        metavar="CHANNEL",
        help="where release messages go when pipelines.yaml names no slack.channel: a channel id like C0123456789 "
        "(kept from the secret when not given)",
    )
    configure.add_argument(
        "--slack-secret", metavar="ID", help=f"the Slack secret (default: ${NAMES['slack_secret'].env})"
    )
    add_stack_argument(configure)
    add_state_argument(configure)
    parser.set_defaults(handler=run)


# -- the manifest ---------------------------------------------------------------------------------


def interactions_url(approval_url: str) -> str:
    return approval_url.rstrip("/") + "/" + INTERACTIONS_PATH


def manifest(approval_url: str, name: str = DEFAULT_APP_NAME) -> dict[str, Any]:
    """The Slack app manifest (Slack's "App manifest reference" layout)."""
    return {
        "_metadata": {"major_version": 1, "minor_version": 1},
        "display_information": {
            "name": name,
            "description": "Release messages, approvals and rollbacks of the ECS deployer",
        },
        "features": {"bot_user": {"display_name": name, "always_online": True}},
        "oauth_config": {"scopes": {"bot": list(BOT_SCOPES)}},
        "settings": {
            "interactivity": {"is_enabled": True, "request_url": interactions_url(approval_url)},
            "org_deploy_enabled": False,
            "socket_mode_enabled": False,
            "token_rotation_enabled": False,
        },
    }


def manifest_yaml(approval_url: str, name: str = DEFAULT_APP_NAME) -> str:
    import yaml

    header = (
        "# Slack app manifest of the ECS deployer: https://api.slack.com/apps > Create New App >\n"
        "# From an app manifest > paste this. Generated by `deployer slack manifest`.\n"
    )
    return header + yaml.safe_dump(manifest(approval_url, name), sort_keys=False)


# -- where ----------------------------------------------------------------------------------------


def resolve(args: argparse.Namespace, environ: Mapping[str, str], *, describe: DescribeStack | None = None) -> Target:
    primary = "approval_url" if args.action == "manifest" else "slack_secret"
    found = resolve_names(
        {key: getattr(args, key, None) for key in NAMES},
        environ,
        stack=args.stack,
        primary=primary,
        state_file=args.state,
        describe=describe,
    )
    return target_from(found, environ, primary=primary)


# -- configure ------------------------------------------------------------------------------------

Ask = Callable[[str], str]


def read_values(prompts: list[str], stdin: TextIO, ask: Ask) -> list[str]:
    """One value per prompt: asked without echo on a terminal, else one line each from stdin."""
    if stdin.isatty():
        return [ask(f"{prompt}: ").strip() for prompt in prompts]
    values = []
    for prompt in prompts:
        line = stdin.readline()
        if not line:
            raise UsageError(
                f"standard input ended before the {prompt.split(' (')[0].lower()}: give one value per line"
            )
        values.append(line.strip())
    return values


def _current(client: Any, secret_id: str) -> dict[str, Any]:
    """The secret's JSON object now ({} when empty, not JSON, or not an object). Reading it needs
    secretsmanager:GetSecretValue, as does the check after the write."""
    text = client.get_secret_value(SecretId=secret_id).get("SecretString") or "{}"
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _error_line(exc: Exception, secret_id: str) -> str:
    from botocore.exceptions import ClientError

    cause = exc if isinstance(exc, ClientError) else exc.__cause__
    if isinstance(cause, ClientError):
        error = cause.response.get("Error", {})
        text = f"{error.get('Code', 'error')}: {error.get('Message', cause)} (secret {secret_id})"
    else:
        text = str(exc)
    return " ".join(text.split())


def _channel(value: str) -> str:
    from pydantic import TypeAdapter, ValidationError

    from deployer.pipelines.schema import SlackChannel

    try:
        return str(TypeAdapter(SlackChannel).validate_python(value))
    except ValidationError as exc:
        raise UsageError(f"--channel {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def new_settings(args: argparse.Namespace, current: Mapping[str, Any], stdin: TextIO, ask: Ask) -> dict[str, Any]:
    """The secret's next JSON: the values read now, the channel kept unless --channel is given."""
    channel = _channel(args.channel) if args.channel else current.get("channel")
    if args.off:
        return {}
    if args.webhook:
        (url,) = read_values(["Incoming webhook URL (https://hooks.slack.com/services/...)"], stdin, ask)
        values: dict[str, Any] = {"webhook_url": url}
    else:
        token, signing_secret = read_values(
            [
                "Bot User OAuth Token (xoxb-..., Slack app > OAuth & Permissions)",
                "Signing Secret (Slack app > Basic Information > App Credentials)",
            ],
            stdin,
            ask,
        )
        if not signing_secret:
            raise UsageError("the signing secret is empty: Slack signs button clicks with it, the buttons need it")
        values = {"bot_token": token, "signing_secret": signing_secret}
    if channel:
        values["channel"] = channel
    for key in ("api_base_url",):  # a test endpoint someone set on purpose stays
        if current.get(key):
            values[key] = current[key]
    return values


def configure(
    args: argparse.Namespace,
    target: Target,
    *,
    stdin: TextIO,
    ask: Ask,
    out: TextIO,
) -> int:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider
    from botocore.exceptions import BotoCoreError, ClientError

    from deployer.errors import DeployerError
    from deployer.slack import SlackSettings, settings_from_secret

    assert target.slack_secret is not None
    try:
        client = session_for(target).client("secretsmanager", endpoint_url=target.endpoint_url)
        settings = new_settings(args, _current(client, target.slack_secret), stdin, ask)
        text = json.dumps(settings)
        SlackSettings.from_json(text)  # refused before anything is written; never echoes a value
        stored = client.put_secret_value(SecretId=target.slack_secret, SecretString=text)
        # What the functions will see: their own loader, on the version just written.
        seen = settings_from_secret(target.slack_secret, provider=SecretsProvider(boto3_client=client))()
    except (ClientError, BotoCoreError, DeployerError) as exc:
        print(f"deployer slack configure: error: {_error_line(exc, target.slack_secret)}", file=sys.stderr)
        return 1
    print(report(str(stored.get("Name") or target.slack_secret), str(stored.get("VersionId", "?")), seen), file=out)
    return 0


def report(secret: str, version: str, seen: Any) -> str:
    """What was stored, without a single secret character."""
    lines = [f"Stored the Slack settings in secret {secret} (version {version[:8]}); the deployer reads:"]
    if not seen.enabled:
        lines.append("  Slack      off (no bot token, no webhook URL)")
        return "\n".join(lines)
    if seen.bot_token:
        lines.append("  bot token       set: one message per release, updated as it moves")
        lines.append(
            "  signing secret  set: Approve / Reject / Roll back buttons on"
            if seen.signing_secret
            else "  signing secret  not set: no buttons (the approval link still works)"
        )
    else:
        lines.append("  webhook URL     set: one message per transition, no buttons (the approval link still works)")
    lines.append(f"  channel         {seen.channel or 'none: pipelines.yaml slack.channel must name one'}")
    lines.append(
        "The functions pick it up within 5 minutes (they cache the secret). Invite the app to each channel it "
        "posts to (/invite @<app name>)."
    )
    return "\n".join(lines)


# -- running --------------------------------------------------------------------------------------


def run(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] | None = None,
    stdin: TextIO | None = None,
    ask: Ask | None = None,
) -> int:
    """The command; `environ`, `stdin` and `ask` are for tests."""
    action = getattr(args, "action", None)
    if action is None:
        raise UsageError("choose an action: manifest or configure")
    environ = os.environ if environ is None else environ
    target = resolve(args, environ)
    if action == "manifest":
        assert target.approval_url is not None
        if not target.approval_url.startswith("https://"):
            raise UsageError(
                f"the approval URL {target.approval_url} is not https: Slack sends interactions only to https "
                "URLs, so use the deployed stack's (--stack NAME)"
            )
        print(manifest_yaml(target.approval_url, args.name), end="")
        return 0
    return configure(
        args, target, stdin=sys.stdin if stdin is None else stdin, ask=ask or getpass.getpass, out=sys.stdout
    )
