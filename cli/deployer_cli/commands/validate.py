"""`deployer validate FILE [--json]`: every error of a pipelines file, with its path and line.

Exit status: 0 valid (warnings allowed), 1 invalid, 2 the file cannot be read. No AWS call.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from deployer.pipelines.loader import MAX_CONFIG_BYTES, CheckResult, check_config_text
from deployer_cli import UsageError


def register(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="the pipelines YAML file ('-' reads standard input)")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    parser.set_defaults(handler=run)


def read_config_file(name: str) -> tuple[str, str]:
    """(text, source name) of a pipelines file; UsageError when it cannot be read as UTF-8.

    Reads one byte past the size limit so an oversized file is reported, not loaded whole."""
    try:
        if name == "-":
            raw = sys.stdin.buffer.read(MAX_CONFIG_BYTES + 1)
            source = "<stdin>"
        else:
            with Path(name).open("rb") as handle:
                raw = handle.read(MAX_CONFIG_BYTES + 1)
            source = name
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror or exc}") from None
    try:
        return raw.decode("utf-8-sig"), source
    except UnicodeDecodeError as exc:
        raise UsageError(f"cannot read {name}: not UTF-8 text (byte {exc.start})") from None


def summary(result: CheckResult) -> str:
    warnings = len(result.warnings)
    noun = "warning" if warnings == 1 else "warnings"
    if result.valid and result.config is not None:
        pipelines = len(result.config.pipelines)
        stages = result.config.stage_count
        return (
            f"{result.source}: valid: {pipelines} pipeline{'s' if pipelines != 1 else ''}, "
            f"{stages} stage{'s' if stages != 1 else ''}, {warnings} {noun}"
        )
    errors = len(result.errors)
    return f"{result.source}: invalid: {errors} error{'s' if errors != 1 else ''}, {warnings} {noun}"


def as_json(result: CheckResult) -> dict[str, object]:
    config = result.config
    return {
        "file": result.source,
        "valid": result.valid,
        "pipelines": len(config.pipelines) if config is not None else None,
        "stages": config.stage_count if config is not None else None,
        "errors": [p.as_dict() for p in result.errors],
        "warnings": [p.as_dict() for p in result.warnings],
    }


def printable(text: str) -> str:
    """`text` as the terminal can take it: YAML lets a file spell a lone surrogate ("\\ud800"),
    which messages quote and UTF-8 cannot encode; it is shown escaped instead of raising."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def print_result(result: CheckResult) -> None:
    for message in result.error_messages:
        print(printable(message))
    for message in result.warning_messages:
        print(printable(f"warning: {message}"))
    print(printable(summary(result)))


def run(args: argparse.Namespace) -> int:
    text, source = read_config_file(args.file)
    result = check_config_text(text, source)
    code = 0 if result.valid else 1
    with closed_pipe_is_fine():
        if args.json:
            print(printable(json.dumps(as_json(result), indent=2, ensure_ascii=False)))
        else:
            print_result(result)
    return code


@contextlib.contextmanager
def closed_pipe_is_fine() -> Iterator[None]:
    """`deployer validate FILE | head` closes the pipe early: stop printing, no traceback."""
    try:
        yield
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
