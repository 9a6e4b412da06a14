"""`deployer config publish FILE` and `deployer config show`: the published pipelines copy.

The table comes from `--table` or DEPLOYER_CONFIG_TABLE; credentials, region and endpoint
(AWS_ENDPOINT_URL) come from the standard AWS configuration. boto3 is imported only here, when
one of these commands runs.

Exit status: 0 done, 1 refused (invalid file, lost publish race, AWS error, nothing published),
2 unusable arguments or unreadable file.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from deployer.cli import UsageError
from deployer.cli.validate import closed_pipe_is_fine, print_result, read_config_file
from deployer.errors import DeployerError
from deployer.pipelines import check_config_text, from_published_json, to_yaml

if TYPE_CHECKING:
    from deployer.pipelines import ConfigStore

TABLE_ENV = "DEPLOYER_CONFIG_TABLE"


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
    parser.add_argument(
        "--table",
        default=os.environ.get(TABLE_ENV),
        help=f"the deployer's config table (default: ${TABLE_ENV})",
    )


def run(args: argparse.Namespace) -> int:
    action = getattr(args, "action", None)
    if action is None:
        raise UsageError("choose an action: publish FILE or show")
    if not args.table:
        raise UsageError(f"no table: pass --table NAME or set {TABLE_ENV} (the stack's ConfigTable output)")
    try:
        with closed_pipe_is_fine():
            return publish(args) if action == "publish" else show(args)
        return 1  # the reader closed the pipe: the command may not have finished
    except DeployerError as exc:
        print(f"deployer config {action}: error: {exc}", file=sys.stderr)
        return 1


def _store(table: str) -> ConfigStore:
    from deployer.pipelines import ConfigStore

    return ConfigStore(table, max_age_seconds=0)


def caller_arn() -> str:
    """Who publishes, for the record; "unknown" when STS cannot say (the write may still work)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return str(boto3.client("sts").get_caller_identity()["Arn"])
    except (BotoCoreError, ClientError):
        return "unknown"


def publish(args: argparse.Namespace) -> int:
    text, source = read_config_file(args.file)
    result = check_config_text(text, source)
    if not result.valid or result.config is None:
        print_result(result)
        print(f"{source}: not published: fix the errors above", file=sys.stderr)
        return 1
    for message in result.warning_messages:
        print(f"warning: {message}")
    published = _store(args.table).publish(result.config, caller_arn())
    config = result.config
    print(
        f"published version {published.version} of {source} to table {args.table}: "
        f"{len(config.pipelines)} pipelines, {config.stage_count} stages"
    )
    print(f"sha256 {published.sha256}")
    return 0


def show(args: argparse.Namespace) -> int:
    published = _store(args.table).describe()
    if published is None:
        print(
            f"deployer config show: no pipelines published yet in table {args.table}: run deployer config publish FILE",
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
