"""`deployer config publish FILE` and `deployer config show`: the published pipelines copy.

The config table comes from the rule every command follows (`deployer_cli.target`): `--table`,
`--stack NAME` (the stack's ConfigTableName output), DEPLOYER_CONFIG_TABLE, DEPLOYER_STACK, else
the local stack's state file. Credentials, region and endpoint (AWS_ENDPOINT_URL) come from the
standard AWS configuration (or the state file). boto3 is imported only here, when one of these
commands runs.

Exit status: 0 done, 1 refused (invalid file, lost publish race, AWS error, nothing published),
2 unusable arguments or unreadable file.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

from deployer.errors import DeployerError
from deployer.pipelines.loader import check_config_text, from_published_json, to_yaml
from deployer_cli import UsageError
from deployer_cli.commands.validate import closed_pipe_is_fine, print_result, read_config_file
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

if TYPE_CHECKING:
    from deployer.pipelines.store import ConfigStore

TABLE_ENV = NAMES["config_table"].env


def register(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION")
    publish = actions.add_parser(
        "publish",
        help="validate FILE and publish it where the functions read it",
        description="Validate FILE, then publish it as the next version (refused if invalid).",
    )
    publish.add_argument("file", metavar="FILE", help="the pipelines YAML file ('-' reads standard input)")
    _table_argument(publish)
    show = actions.add_parser(
        "show",
        help="print the published version, who published it and when, and its content",
        description="Print the published version, sha256, who published it and when, and the YAML.",
    )
    _table_argument(show)
    parser.set_defaults(handler=run)


def _table_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--table", metavar="NAME", help=f"the deployer's config table (default: ${TABLE_ENV})")
    add_stack_argument(parser)
    add_state_argument(parser)


def resolve(args: argparse.Namespace, environ: Mapping[str, str], *, describe: DescribeStack | None = None) -> Target:
    """The config table, by the rule of every command (`--table` names it here)."""
    found = resolve_names(
        {"config_table": args.table},
        environ,
        stack=args.stack,
        primary="config_table",
        state_file=args.state,
        flags={"config_table": "--table"},
        describe=describe,
    )
    return target_from(found, environ, primary="config_table")


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action is None:
        raise UsageError("choose an action: publish FILE or show")
    target = resolve(args, os.environ)
    try:
        with closed_pipe_is_fine():
            return publish(args, target) if action == "publish" else show(args, target)
        return 1  # the reader closed the pipe: the command may not have finished
    except DeployerError as exc:
        print(f"deployer config {action}: error: {exc}", file=sys.stderr)
        return 1


def _store(target: Target) -> ConfigStore:
    from deployer.pipelines.store import ConfigStore

    assert target.config_table is not None
    dynamodb = session_for(target).resource("dynamodb", endpoint_url=target.endpoint_url)
    return ConfigStore(target.config_table, dynamodb=dynamodb, max_age_seconds=0)


def caller_arn(target: Target) -> str:
    """Who publishes, for the record; "unknown" when STS cannot say (the write may still work)."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        sts = session_for(target).client("sts", endpoint_url=target.endpoint_url)
        return str(sts.get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError):
        return "unknown"


def publish(args: argparse.Namespace, target: Target) -> int:
    text, source = read_config_file(args.file)
    result = check_config_text(text, source)
    if not result.valid or result.config is None:
        print_result(result)
        print(f"{source}: not published: fix the errors above", file=sys.stderr)
        return 1
    for message in result.warning_messages:
        print(f"warning: {message}")
    published = _store(target).publish(result.config, caller_arn(target))
    config = result.config
    print(
        f"published version {published.version} of {source} to table {target.config_table}: "
        f"{len(config.pipelines)} pipelines, {config.stage_count} stages"
    )
    print(f"sha256 {published.sha256}")
    return 0


def show(args: argparse.Namespace, target: Target) -> int:
    published = _store(target).describe()
    if published is None:
        table = target.config_table
        print(
            f"deployer config show: no pipelines published yet in table {table}: run deployer config publish FILE",
            file=sys.stderr,
        )
        return 1
    print(f"version: {published.version}")
    print(f"sha256: {published.sha256}")
    print(f"published_at: {published.published_at}")
    print(f"published_by: {published.published_by}")
    print("---")
    try:
        config = from_published_json(published.value)
    except DeployerError as exc:
        print(published.value)
        messages = getattr(exc, "messages", [str(exc)])
        for message in messages:
            print(f"deployer config show: invalid published copy: {message}", file=sys.stderr)
        return 1
    print(to_yaml(config), end="")
    return 0
