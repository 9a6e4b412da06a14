"""The `deployer` command.

Each subcommand lives in its own module with `register(subparsers)`; modules are imported only
when their subcommand runs, so `deployer plan` starts without importing boto3, and only that
subcommand's parser is built (all of them only to list them, or to refuse an unknown one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

TYPE_CHECKING = False  # `deployer plan` starts without `typing` (see deployer.rollout.model)
if TYPE_CHECKING:
    from collections.abc import Sequence

# subcommand name -> (its module under deployer_cli.commands, or a full module path; one-line help).
# `deployer local` is the local stack's own command (deployer_local.command), named here and imported
# only when it runs: no module of the CLI imports the local stack (docs/design.md, "Where the code
# lives").
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
    "local": ("deployer_local.command", "the Docker-free local stack: invoke a built function, emit an event"),
}


class UsageError(Exception):
    """Arguments that cannot be used; reported as one line with exit status 2."""


def _terminal_columns() -> int:
    """The terminal's width as `shutil.get_terminal_size` gives it (COLUMNS, else the terminal of
    sys.__stdout__, else 80), without importing shutil, which argparse's HelpFormatter does to ask
    (and shutil imports bz2, lzma, fnmatch...: a tenth of `deployer plan`'s start-up)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80  # type: ignore[union-attr]
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        # argparse's own default width: the terminal's, less 2
        super().__init__(prog, indent_increment, max_help_position, _terminal_columns() - 2 if width is None else width)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The parser; with `only`, that subcommand's alone (its messages are the same: the usage line
    names COMMAND, not the list of commands)."""
    parser = _Parser(prog="deployer", description="Event-driven, serverless deployer for Amazon ECS.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (module, help_text) in SUBCOMMANDS.items():
        if name == only:
            mod = importlib.import_module(module if "." in module else f"deployer_cli.commands.{module}")
            mod.register(subparsers.add_parser(name, help=help_text, description=help_text))
        elif only is None:
            # Listed for --help without importing its module.
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


# Commands that end without the interpreter's teardown (`console`), which frees every object one
# by one after the command has answered: some 80 ms of CPU for `deploy` and `diff` (botocore's
# parsed models, BENCHMARKS.md section 7), about 4 ms for `plan` (a sixth of its run, section 1).
# Nothing of theirs runs afterwards: no thread, no atexit handler; output is flushed first.
EXIT_WITHOUT_TEARDOWN = frozenset({"plan", "deploy", "diff"})


def _command(args: Sequence[str]) -> str | None:
    return next((a for a in args if not a.startswith("-")), None)


def console() -> None:
    """The `deployer` console script: `main`, then the process's exit."""
    args = sys.argv[1:]
    code = main(args)
    if _command(args) in EXIT_WITHOUT_TEARDOWN:
        import contextlib

        for stream in (sys.stdout, sys.stderr):
            # closed, or a pipe whose reader has gone: nothing left to keep
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    command = _command(args_list)
    parser = build_parser(only=command if command in SUBCOMMANDS else None)
    args = parser.parse_args(args_list)
    if not getattr(args, "handler", None):
        parser.print_help(sys.stderr)
        return 2
    from deployer_cli.signals import Stopped, stop_on_signals

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
