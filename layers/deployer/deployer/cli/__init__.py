"""The `deployer` command.

Each subcommand lives in its own module with `register(subparsers)`; modules are imported only
when their subcommand runs, so `deployer plan` starts without importing boto3.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand name -> (module under deployer.cli, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "plan": ("plan", "validate a rollout (ROLLING, BLUE_GREEN, LINEAR, CANARY) and draw what ECS will do"),
    "validate": ("validate", "check a pipelines file and print every error with its path"),
    "config": ("config", "publish the pipelines file where the functions read it, or show it"),
    "deploy": ("deploy", "deploy an image to one ECS service now (validated; the same layer as the pipeline)"),
    "diff": ("diff", "show what a deploy would change in the task definition and the deployment configuration"),
    "status": ("status", "releases with their stages, states, times, approval links and reasons"),
    "report": (
        "report",
        "DORA figures per pipeline: deployment frequency, lead time, change failure rate, time to restore",
    ),
    "rollback": ("rollback", "roll one stage back: stop its deployment in flight, or redeploy its previous revision"),
    "approvals": ("approvals", "the approvals waiting now: who may decide, when they expire, their links"),
    "slack": ("slack", "set up Slack: print the app manifest, store the bot token and signing secret"),
    "local": ("local", "the Docker-free local stack: invoke a built function, emit an event"),
}


class UsageError(Exception):
    """Arguments that cannot be used; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = _Parser(prog="deployer", description="Event-driven, serverless deployer for Amazon ECS.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        if name == only:
            mod = importlib.import_module(f"deployer.cli.{module}")
            mod.register(subparsers.add_parser(name, help=help_text, description=help_text))
        else:
            # Listed for --help without importing its module.
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(only=command if command in SUBCOMMANDS else None)
    args = parser.parse_args(args_list)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    from deployer.cli.signals import Stopped, stop_on_signals

    name = f"deployer {args.command}" + (f" {args.action}" if getattr(args, "action", None) else "")
    with stop_on_signals() as outermost:  # SIGINT, SIGTERM, SIGHUP: one line and 128 + the signal, never a traceback
        try:
            return int(args.handler(args))
        except UsageError as exc:
            print(f"deployer {args.command}: error: {exc}", file=sys.stderr)
            return 2
        except Stopped as stop:
            if not outermost:  # `deployer status` run inside `make demo`: the demo reports it
                raise
            print(stop.line(name), file=sys.stderr, flush=True)
            return stop.exit_status


if __name__ == "__main__":
    sys.exit(main())
