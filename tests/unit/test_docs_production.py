"""docs/production.md can be followed with nothing else: every `deployer` command it shows is
accepted by the CLI's parser as written (parse only, no AWS call), every `sam` command exists with
the flags shown, every `make` target exists, every file it copies or links to is in the
repository, and the names it tells the reader to use are the code's."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from deployer_cli import SUBCOMMANDS, build_parser
from deployer_cli.target import STACK_ENV, STACK_OUTPUTS

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "production.md"
SAM = Path(sys.executable).parent / "sam"
PROGRAMS = frozenset({"deployer", "sam", "make", "cp", "export", "git"})


def blocks() -> list[list[str]]:
    """The lines of each fenced code block."""
    found: list[list[str]] = []
    current: list[str] | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            if current is None:
                current = []
            else:
                found.append(current)
                current = None
        elif current is not None:
            current.append(line.strip())
    return found


def commands() -> list[list[str]]:
    """Every command of the doc's code blocks: in a transcript (a block with "$ " prompts) the
    prompted lines, elsewhere every line; comments removed."""
    found: list[list[str]] = []
    for block in blocks():
        prompted = [line.removeprefix("$ ") for line in block if line.startswith("$ ")]
        for text in prompted or block:
            words = shlex.split(text, comments=True)
            if words and (words[0] in PROGRAMS or words[0].endswith("/deployer")):
                found.append(words)
    # and the commands the prose names in code spans (`deployer config show`)
    prose = DOC.read_text(encoding="utf-8")
    found += [shlex.split(span) for span in re.findall(r"(?<!`)`(deployer [^`]+)`(?!`)", prose)]
    return found


def of(program: str) -> list[list[str]]:
    return [words for words in commands() if words[0] == program or words[0].endswith(f"/{program}")]


def test_the_doc_shows_the_whole_path() -> None:
    shown = {words[1] for words in of("deployer")}
    assert {"validate", "config", "slack", "status", "approvals"} <= shown
    sam = {words[1] for words in of("sam")}
    assert {"deploy", "delete"} <= sam
    assert ["sam", "deploy", "--guided", "--config-env", "prod"] in of("sam")


@pytest.mark.parametrize("argv", of("deployer"), ids=lambda argv: " ".join(argv[1:]))
def test_every_deployer_command_shown_is_accepted_as_written(argv: list[str]) -> None:
    command = argv[1]
    assert command in SUBCOMMANDS
    try:
        args = build_parser(only=command).parse_args(argv[1:])
    except SystemExit as refused:  # argparse's way of refusing (message on stderr)
        pytest.fail(f"`{' '.join(argv)}` is refused by the CLI's parser (exit {refused.code})")
    assert callable(getattr(args, "handler", None))
    if command in {"config", "slack"}:
        assert args.action  # a subcommand that needs an action names one


def _sam_help(path: tuple[str, ...]) -> str:
    env = os.environ | {"SAM_CLI_TELEMETRY": "0"}
    done = subprocess.run(
        [str(SAM), *path, "--help"], check=False, capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, f"sam {' '.join(path)} does not exist: {done.stderr}"
    return done.stdout


@pytest.mark.integration
@pytest.mark.parametrize("argv", of("sam"), ids=lambda argv: " ".join(argv[1:]))
def test_every_sam_command_shown_exists_with_its_flags(argv: list[str]) -> None:
    words = argv[1:]
    path = tuple(w for w in words[: next((i for i, w in enumerate(words) if w.startswith("-")), len(words))])
    help_text = _sam_help(path)
    for flag in (w for w in words if w.startswith("--")):
        assert re.search(rf"(^|\s){re.escape(flag)}[\s,]", help_text), f"sam {' '.join(path)} has no {flag}"


@pytest.mark.parametrize("argv", of("make"), ids=" ".join)
def test_every_make_target_shown_exists(argv: list[str]) -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in argv[1:]:
        assert re.search(rf"^{re.escape(target)}:", makefile, re.MULTILINE), f"no make target {target}"


def test_every_file_it_copies_or_links_exists() -> None:
    for argv in of("cp"):
        assert (ROOT / argv[1]).is_file(), f"{argv[1]} is not in the repository"
    text = DOC.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
        assert (DOC.parent / target).resolve().is_file(), f"link to {target}: no such file"


def test_the_names_it_tells_the_reader_are_the_codes() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert [f"{STACK_ENV}=ecs-deployer-prod"] == [w[1] for w in of("export") if w[1].startswith("DEPLOYER_")]
    for output in STACK_OUTPUTS:
        assert f"`{output}`" in text
    for parameter in (
        "BuildProjectNamePattern",
        "TaskRoleNamePattern",
        "HookRoleNamePattern",
        "EcrRepositoryPattern",
        "CreateBuildResources",
    ):
        assert f"Parameter {parameter} [" in text  # the guided deploy's own prompt, as captured
