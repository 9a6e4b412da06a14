"""Tests for `deployer plan`: drawing, JSON, exit codes, argument errors, and staying light."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from deployer.render import MAX_BOXES
from deployer_cli import main
from deployer_cli.commands.plan import _glyphs

pytestmark = pytest.mark.unit


def run_plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run_plan(capsys, *args, "--json")
    return code, json.loads(out)


def console_script() -> str:
    """The installed `deployer` entry point, next to this interpreter or on PATH."""
    beside = Path(sys.executable).with_name("deployer")
    found = str(beside) if beside.exists() else shutil.which("deployer")
    assert found, "the deployer console script is not installed"
    return found


# The design's pictures of four tasks (ECS's arithmetic, docs/rolling.md), as {"old", "new"} states.
DESIGN_STEPS = {
    ("50", "100"): [(4, 0), (2, 0), (2, 2), (0, 2), (0, 4)],
    ("100", "150"): [(4, 0), (4, 2), (2, 2), (2, 4), (0, 4)],
    ("100", "200"): [(4, 0), (4, 4), (0, 4)],
    ("0", "100"): [(4, 0), (0, 0), (0, 4)],
}


@pytest.mark.parametrize(("percentages", "states"), DESIGN_STEPS.items(), ids=["/".join(p) for p in DESIGN_STEPS])
def test_json_steps_are_the_design_pictures(
    capsys: pytest.CaptureFixture[str], percentages: tuple[str, str], states: list[tuple[int, int]]
) -> None:
    # GIVEN one of the design's configurations for four tasks
    minimum, maximum = percentages
    # WHEN planned as JSON
    code, doc = run_json(capsys, "--desired", "4", "--min", minimum, "--max", maximum)
    # THEN it is valid and the steps are exactly the picture, starting state first
    assert code == 0
    assert doc["valid"] is True
    assert doc["steps"] == [{"old": old, "new": new} for old, new in states]
    assert len(doc["transitions"]) == len(states) - 1


def test_json_summary_fields(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(capsys, "--desired", "4", "--min", "0", "--max", "100")
    assert code == 0
    assert (doc["waves"], doc["peak_tasks"], doc["min_running_tasks"], doc["outage"]) == (1, 4, 0, True)
    assert doc["transitions"] == [{"action": "stop", "count": 4}, {"action": "start", "count": 4}]
    assert doc["deployment_configuration"] == {"minimumHealthyPercent": 0, "maximumPercent": 100}
    # the outage warning is an object with its message and parts
    (warning,) = doc["warnings"]
    assert set(warning) >= {"message", "field", "value", "rule", "fix"}
    assert warning["field"] == "minimumHealthyPercent"
    assert warning["value"] == 0
    assert "outage" in warning["message"]
    assert doc["errors"] == []
    assert doc["notes"] == []


def test_text_draws_every_step_with_boxes_action_and_percentages(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN 100/150 for four tasks
    code, out, err = run_plan(capsys, "--desired", "4", "--min", "100", "--max", "150")
    # THEN each step is a row of boxes (old ■, new □, free room ·) with its action, count and share
    assert code == 0
    assert err == ""
    lines = out.splitlines()
    assert any("■ old task" in line and "□ new task" in line for line in lines)  # the legend
    rows = [line.split() for line in lines if line.strip().startswith(("0 ", "1 ", "2 ", "3 ", "4 "))]
    drawn = [" ".join(row[1:-2]) for row in rows]
    assert drawn == [
        "[■ ■ ■ ■ · ·] —",
        "[■ ■ ■ ■ □ □] start 2",
        "[■ ■ □ □ · ·] stop 2",
        "[■ ■ □ □ □ □] start 2",
        "[□ □ □ □ · ·] stop 2",
    ]
    assert [row[-2:] for row in rows] == [["4", "100%"], ["6", "150%"], ["4", "100%"], ["6", "150%"], ["4", "100%"]]
    assert "Summary: 2 waves; peak 6 tasks (150% of desired); lowest 4 running (100% of desired); no outage." in out


def test_text_for_the_documented_example(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(capsys, "--desired", "4", "--min", "50", "--max", "150")
    assert code == 0
    assert "ECS keeps at least 2 tasks RUNNING (ceil(4 × 50 / 100))" in out
    assert "at most 6 tasks RUNNING or PENDING (floor(4 × 150 / 100))" in out
    assert "[■ ■ ■ ■ □ □]" in out
    assert "Summary: 2 waves; peak 6 tasks (150% of desired)" in out


def test_text_lists_warnings_and_notes(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(capsys, "--desired", "4", "--min", "0", "--max", "100")
    assert code == 0
    assert "an OUTAGE" in out
    warnings = out.split("Warnings:\n")[1].splitlines()
    assert warnings[0].startswith("  - minimumHealthyPercent: 0 — deployer policy: 0 allows an outage")


def test_desired_zero_has_nothing_to_roll(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(capsys, "--desired", "0", "--min", "100", "--max", "200")
    assert code == 0
    assert "nothing to roll" in out
    assert "Notes:" in out


def test_large_counts_show_numbers_and_elide_middle_steps(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN 5000 tasks at 100/101: 50 tasks per wave, 100 waves, 201 states
    code, out, _ = run_plan(capsys, "--desired", "5000", "--min", "100", "--max", "101")
    # THEN rows show counts instead of boxes, the middle is elided, and the end is shown
    assert code == 0
    assert "■" not in out
    assert "[5000 old, 0 new]" in out
    assert "[0 old, 5000 new]" in out
    assert "… 181 more steps …" in out
    assert "Summary: 100 waves" in out
    assert "more than 10 waves is slow" in out


def test_boxes_are_drawn_up_to_the_box_limit(capsys: pytest.CaptureFixture[str]) -> None:
    desired = str(MAX_BOXES // 2)
    _, out, _ = run_plan(capsys, "--desired", desired, "--min", "100", "--max", "200")
    assert "□" in out
    _, out, _ = run_plan(capsys, "--desired", str(MAX_BOXES // 2 + 1), "--min", "100", "--max", "200")
    assert "□" not in out


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--desired", "1", "--min", "100", "--max", "150"], ["with desired count 1,", "maximumPercent 200 or more"]),
        (["--desired", "1", "--min", "50", "--max", "150"], ["ceil(1 × 50 / 100)", "minimumHealthyPercent 0"]),
        (["--desired", "7", "--min", "100", "--max", "100"], ["floor(7 × 100 / 100)", "maximumPercent 115 or more"]),
        (["--desired", "3", "--min", "75", "--max", "125"], ["maximumPercent 134 or more", "minimumHealthyPercent 66"]),
        (["--desired", "2", "--min", "75", "--max", "100"], ["maximumPercent 150 or more", "minimumHealthyPercent 50"]),
        (["--desired", "4", "--min", "100", "--max", "200", "--spare-capacity", "0"], ["no room"]),
        (
            ["--desired", "4", "--min", "100", "--max", "150", "--min-tasks", "1", "--max-tasks", "8"],
            ["first stuck count 1"],
        ),
        (["--desired", "4", "--min", "50", "--max", "150", "--daemon"], ["DAEMON", "above 100"]),
        (["--desired", "4", "--min", "120", "--max", "150"], ["minimumHealthyPercent: 120"]),
        (["--desired", "1000000000", "--min", "100", "--max", "101"], ["5,000"]),
    ],
)
def test_refused_configurations_exit_1_with_errors_on_stdout(
    capsys: pytest.CaptureFixture[str], args: list[str], fragments: list[str]
) -> None:
    # WHEN a configuration ECS could not carry out is planned
    code, out, err = run_plan(capsys, *args)
    # THEN it exits 1 and explains on stdout, without drawing a plan
    assert code == 1
    assert err == ""
    assert "Refused" in out
    assert "Errors:" in out
    assert "Summary" not in out
    for fragment in fragments:
        assert fragment in out


def test_refused_configuration_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(capsys, "--desired", "1", "--min", "100", "--max", "150")
    assert code == 1
    assert doc["valid"] is False
    assert doc["steps"] == []
    assert doc["waves"] is None
    (error,) = doc["errors"]
    assert error["field"] == "minimumHealthyPercent/maximumPercent"
    assert error["value"] == [100, 150]
    assert error["rule"].startswith("ECS: ")
    assert "maximumPercent 200" in error["fix"]
    assert error["message"].startswith("minimumHealthyPercent/maximumPercent: 100/150 — ECS: ")


def test_daemon_defaults_to_ec2_and_keeps_max_100(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(capsys, "--desired", "3", "--min", "50", "--max", "100", "--daemon")
    assert code == 0
    assert (doc["scheduling_strategy"], doc["launch_type"]) == ("DAEMON", "EC2")
    assert doc["steps"][:3] == [{"old": 3, "new": 0}, {"old": 2, "new": 0}, {"old": 2, "new": 1}]


def test_ec2_launch_type_warns_about_room(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(capsys, "--desired", "4", "--min", "100", "--max", "200", "--launch-type", "ec2")
    assert code == 0
    assert doc["launch_type"] == "EC2"
    assert any("room for 4 extra tasks" in w["message"] for w in doc["warnings"])


def test_spare_capacity_limits_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run_json(capsys, "--desired", "4", "--min", "100", "--max", "200", "--spare-capacity", "1")
    assert code == 0
    assert doc["maximum_tasks"] == 5
    assert doc["peak_tasks"] == 5
    assert doc["waves"] == 4


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--desired", "4", "--min", "50.0", "--max", "150"], "argument --min: '50.0' is not a whole number; use 50"),
        (["--desired", "4", "--min", "50", "--max", "1.5e2"], "argument --max: '1.5e2' is not a whole number"),
        (["--desired", "four", "--min", "50", "--max", "150"], "argument --desired: 'four' is not a whole number"),
        (["--desired", "-4", "--min", "50", "--max", "150"], "argument --desired: '-4' is negative"),
        (["--desired", "4", "--min", "50", "--max", "150", "--spare-capacity", "-1"], "is negative"),
        (["--desired", "9" * 40, "--min", "50", "--max", "150"], "is too large"),
        (["--desired", "4", "--max", "150"], "the following arguments are required: --min"),
        (["--min", "50", "--max", "150"], "the following arguments are required: --desired"),
        (["--desired", "4", "--min", "50", "--max", "150", "--launch-type", "LAMBDA"], "invalid choice"),
    ],
)
def test_unusable_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["plan", *args])
    out, err = capsys.readouterr()
    assert stopped.value.code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert fragment in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--min-tasks", "1"], "--min-tasks and --max-tasks go together (the autoscaling range)"),
        (["--max-tasks", "9"], "--min-tasks and --max-tasks go together (the autoscaling range)"),
        (["--min-tasks", "9", "--max-tasks", "1"], "--min-tasks 9 is above --max-tasks 1"),
    ],
)
def test_inconsistent_autoscaling_range_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    code, out, err = run_plan(capsys, "--desired", "4", "--min", "50", "--max", "150", *args)
    assert code == 2
    assert out == ""
    assert err == f"deployer plan: error: {fragment}\n"


def test_ascii_terminals_get_ascii_boxes() -> None:
    ascii_stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    utf8_stream = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
    assert all(glyph.isascii() for glyph in _glyphs(ascii_stream).values())
    assert _glyphs(utf8_stream)["old"] == "■"


# --- through the installed console script -------------------------------------------------------------


@pytest.mark.integration
def test_console_script_draws_the_plan() -> None:
    done = subprocess.run(
        [console_script(), "plan", "--desired", "4", "--min", "50", "--max", "150"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert done.returncode == 0, done.stderr
    assert "[■ ■ ■ ■ □ □]" in done.stdout
    assert "Summary: 2 waves" in done.stdout


@pytest.mark.integration
def test_console_script_argument_error_is_one_line_without_traceback() -> None:
    done = subprocess.run(
        [console_script(), "plan", "--desired", "4", "--min", "fifty", "--max", "150"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == "deployer plan: error: argument --min: 'fifty' is not a whole number\n"


@pytest.mark.integration
def test_console_script_on_an_ascii_terminal_does_not_crash() -> None:
    done = subprocess.run(
        [console_script(), "plan", "--desired", "2", "--min", "50", "--max", "100"],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"},
    )
    assert done.returncode == 0, done.stderr
    assert b"[# #]" in done.stdout
    assert b"[o o]" in done.stdout
    assert b"ceil(2 x 50 / 100)" in done.stdout


@pytest.mark.integration
def test_json_on_an_ascii_terminal_escapes_non_ascii() -> None:
    done = subprocess.run(
        [console_script(), "plan", "--desired", "1", "--min", "100", "--max", "100", "--json"],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONUTF8": "0"},
    )
    assert done.returncode == 1, done.stderr
    assert done.stdout.isascii()
    assert "×" in json.loads(done.stdout)["errors"][0]["message"]


@pytest.mark.integration
def test_plan_does_not_import_boto3() -> None:
    # GIVEN a fresh interpreter WHEN `deployer plan` runs THEN neither boto3 nor pydantic was loaded
    code = (
        "import sys, deployer_cli as c; "
        "rc = c.main(['plan', '--desired', '4', '--min', '50', '--max', '150', '--json']); "
        "assert rc == 0, rc; "
        "heavy = [m for m in ('boto3', 'botocore', 'pydantic') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["valid"] is True


@pytest.mark.integration
def test_plan_starts_without_the_heavy_standard_modules() -> None:
    # GIVEN a fresh interpreter WHEN `deployer plan` draws a rolling plan (a warning included)
    # THEN it loaded none of the modules that made it start slowly: `dataclasses` (which imports
    # `inspect`, `ast`, `dis`, `tokenize`, and compiles every method of every class), `typing`,
    # `shutil` (which argparse imports to read the terminal's width), nor `json`, `decimal` and
    # `difflib`, which only some paths need. BENCHMARKS.md section 1 measures the start-up itself.
    code = (
        "import sys, deployer_cli as c; "
        "rc = c.main(['plan', '--desired', '4', '--min', '50', '--max', '150']); "
        "heavy = ('dataclasses', 'inspect', 'typing', 'shutil', 'json', 'decimal', 'difflib', 'boto3'); "
        "print(rc, sorted(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "0 []"
