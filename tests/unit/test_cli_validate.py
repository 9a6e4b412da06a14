"""Tests for `deployer validate` and `deployer config publish|show`: exit codes and output.

The config commands run against moto in process; the table comes from template.yaml."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from deployer.pipelines.loader import MAX_CONFIG_BYTES, load_config_text, to_published_json
from deployer.pipelines.store import PUBLISHED_ITEM_ID
from deployer_cli import main
from deployer_local import template

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "pipelines.example.yaml"
TABLE = "ecs-deployer-config-test"

VALID = """\
pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {project: web-app-build}
    container: web
    stages:
      - name: dev
        cluster: dev
        service: web
        rollout: {minimumHealthyPercent: 100, maximumPercent: 200, circuitBreaker: {rollback: true}}
      - name: prod
        cluster: prod
        service: web
        approval: {approvers: [U012ABCDEF], expiresInHours: 24}
        rollout: {minimumHealthyPercent: 50, maximumPercent: 150}
"""
BROKEN = VALID.replace("expiresInHours: 24", "expiresInHours: 240").replace("name: prod", "name: dev")
WARNED = VALID.replace("minimumHealthyPercent: 50", "minimumHealthyPercent: 0")


@pytest.fixture
def write(tmp_path: Path) -> Any:
    def _write(text: str | bytes, name: str = "pipelines.yaml") -> str:
        path = tmp_path / name
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return str(path)

    return _write


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --- deployer validate ------------------------------------------------------------------------


def test_a_valid_file_exits_0_with_a_summary(capsys: pytest.CaptureFixture[str], write: Any) -> None:
    # GIVEN a valid file
    path = write(VALID)
    # WHEN validated
    code, out, err = run(capsys, "validate", path)
    # THEN exit 0 and one summary line
    assert code == 0
    assert out == f"{path}: valid: 1 pipeline, 2 stages, 0 warnings\n"
    assert err == ""


def test_the_example_file_is_valid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "validate", str(EXAMPLE))
    assert code == 0
    assert out.endswith("valid: 2 pipelines, 5 stages, 0 warnings\n")


def test_an_invalid_file_prints_every_error_and_exits_1(capsys: pytest.CaptureFixture[str], write: Any) -> None:
    # GIVEN two mistakes, on lines 12 and 15
    path = write(BROKEN)
    # WHEN validated
    code, out, err = run(capsys, "validate", path)
    # THEN each error is a line with file, line, path and reason, then the summary
    assert code == 1
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}:12: pipelines[0].stages[1].name: 'dev' is also the name of stages[0]")
    assert lines[1].startswith(f"{path}:15: pipelines[0].stages[1].approval.expiresInHours: 240 is outside 1..168")
    assert lines[2] == f"{path}: invalid: 2 errors, 0 warnings"
    assert len(lines) == 3
    assert err == ""


def test_warnings_are_printed_but_do_not_fail(capsys: pytest.CaptureFixture[str], write: Any) -> None:
    path = write(WARNED)
    code, out, _ = run(capsys, "validate", path)
    assert code == 0
    assert f"warning: {path}:16: pipelines[0].stages[1].rollout.minimumHealthyPercent: 0 — " in out
    assert out.splitlines()[-1] == f"{path}: valid: 1 pipeline, 2 stages, 1 warning"


def test_json_output(capsys: pytest.CaptureFixture[str], write: Any) -> None:
    # GIVEN an invalid and a valid file
    broken, valid = write(BROKEN, "broken.yaml"), write(WARNED, "warned.yaml")
    # WHEN validated with --json
    bad_code, bad_out, _ = run(capsys, "validate", broken, "--json")
    good_code, good_out, _ = run(capsys, "validate", "--json", valid)
    # THEN the same facts come as one JSON object
    bad, good = json.loads(bad_out), json.loads(good_out)
    assert (bad_code, good_code) == (1, 0)
    assert bad["valid"] is False
    assert bad["pipelines"] is None
    assert [(e["path"], e["line"]) for e in bad["errors"]] == [
        ("pipelines[0].stages[1].name", 12),
        ("pipelines[0].stages[1].approval.expiresInHours", 15),
    ]
    assert good["valid"] is True
    assert (good["pipelines"], good["stages"], good["errors"]) == (1, 2, [])
    assert good["warnings"][0]["path"] == "pipelines[0].stages[1].rollout.minimumHealthyPercent"


def test_yaml_syntax_errors_give_line_and_column(capsys: pytest.CaptureFixture[str], write: Any) -> None:
    path = write("pipelines:\n  - name: web\n    stages: [a, b\n")
    code, out, _ = run(capsys, "validate", path)
    assert code == 1
    assert out.startswith(f"{path}:4:1: YAML syntax: ")


def test_standard_input(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(VALID.encode())))
    code, out, _ = run(capsys, "validate", "-")
    assert code == 0
    assert out.startswith("<stdin>: valid")


@pytest.mark.parametrize(
    ("setup", "fragment"),
    [
        ("missing", "cannot read {path}: No such file or directory"),
        ("directory", "cannot read {path}: Is a directory"),
        ("latin-1", "cannot read {path}: not UTF-8 text (byte 19)"),
    ],
)
def test_unreadable_files_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, write: Any, setup: str, fragment: str
) -> None:
    # GIVEN a path that cannot be read as text
    if setup == "missing":
        path = str(tmp_path / "nope.yaml")
    elif setup == "directory":
        path = str(tmp_path)
    else:
        path = write("pipelines: []\n# caf\xe9 ".encode("latin-1"))
    # WHEN validated
    code, out, err = run(capsys, "validate", path)
    # THEN exit 2, one line on stderr, no traceback
    assert code == 2
    assert out == ""
    assert err == f"deployer validate: error: {fragment.format(path=path)}\n"


def test_a_too_large_file_is_invalid_not_loaded(capsys: pytest.CaptureFixture[str], write: Any) -> None:
    path = write("#" * (2 * MAX_CONFIG_BYTES))
    code, out, _ = run(capsys, "validate", path)
    assert code == 1
    assert f"above the limit of {MAX_CONFIG_BYTES // 1024} KiB" in out


def test_a_utf8_bom_is_accepted(capsys: pytest.CaptureFixture[str], write: Any) -> None:
    path = write(b"\xef\xbb\xbf" + VALID.encode())
    assert run(capsys, "validate", path)[0] == 0


@pytest.mark.parametrize("argv", [["validate"], ["validate", "a", "b"], ["validate", "--nope", "a"]])
def test_argument_problems_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.integration
def test_validate_does_not_import_boto3(write: Any) -> None:
    # GIVEN a fresh interpreter WHEN it validates THEN boto3 was never imported (fast start)
    path = write(VALID)
    code = (
        "import sys; from deployer_cli import main; rc = main(['validate', sys.argv[1]]); "
        "print('boto3' in sys.modules, 'botocore' in sys.modules); sys.exit(rc)"
    )
    done = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines()[-1] == "False False"


# --- deployer config --------------------------------------------------------------------------


@pytest.fixture
def table(moto_aws: None) -> Any:
    dynamodb = boto3.resource("dynamodb", region_name="eu-west-1")
    dynamodb.meta.client.create_table(**template.create_table_request("ConfigTable", TABLE))
    return dynamodb.Table(TABLE)


def test_publish_then_show(capsys: pytest.CaptureFixture[str], table: Any, write: Any) -> None:
    # GIVEN a valid file
    path = write(VALID)
    # WHEN published twice
    first = run(capsys, "config", "publish", path, "--table", TABLE)
    second = run(capsys, "config", "publish", path, "--table", TABLE)
    # THEN each publish prints its version and sha256, and the item holds the canonical JSON
    item = table.get_item(Key={"id": PUBLISHED_ITEM_ID})["Item"]
    assert first[0] == second[0] == 0
    assert first[1].splitlines()[0] == f"published version 1 of {path} to table {TABLE}: 1 pipelines, 2 stages"
    assert second[1].splitlines()[0].startswith("published version 2 of")
    assert second[1].splitlines()[1] == f"sha256 {item['sha256']}"
    assert item["value"] == to_published_json(load_config_text(VALID))
    assert item["published_by"].startswith("arn:aws:")  # moto's STS caller identity
    # WHEN shown
    code, out, err = run(capsys, "config", "show", "--table", TABLE)
    # THEN the header says which version, and the YAML after it loads to the same config
    head, body = out.split("---\n", 1)
    assert code == 0
    assert err == ""
    assert head.splitlines() == [
        "version: 2",
        f"sha256: {item['sha256']}",
        f"published_at: {item['published_at']}",
        f"published_by: {item['published_by']}",
    ]
    assert load_config_text(body) == load_config_text(VALID)


def test_publish_reads_the_table_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, table: Any, write: Any
) -> None:
    monkeypatch.setenv("DEPLOYER_CONFIG_TABLE", TABLE)
    code, out, _ = run(capsys, "config", "publish", write(VALID))
    assert code == 0
    assert "published version 1" in out
    assert table.get_item(Key={"id": PUBLISHED_ITEM_ID})["Item"]["version"] == 1


def test_an_invalid_file_is_not_published(capsys: pytest.CaptureFixture[str], table: Any, write: Any) -> None:
    # GIVEN an invalid file
    path = write(BROKEN)
    # WHEN published
    code, out, err = run(capsys, "config", "publish", path, "--table", TABLE)
    # THEN exit 1 with the errors, and nothing is written
    assert code == 1
    assert "expiresInHours: 240 is outside 1..168" in out
    assert err == f"{path}: not published: fix the errors above\n"
    assert "Item" not in table.get_item(Key={"id": PUBLISHED_ITEM_ID})


def test_publish_prints_warnings(capsys: pytest.CaptureFixture[str], table: Any, write: Any) -> None:
    code, out, _ = run(capsys, "config", "publish", write(WARNED), "--table", TABLE)
    assert code == 0
    assert out.startswith("warning: ")


def test_show_before_any_publish(capsys: pytest.CaptureFixture[str], table: Any) -> None:
    code, out, err = run(capsys, "config", "show", "--table", TABLE)
    assert code == 1
    assert out == ""
    assert "no pipelines published yet" in err
    assert "run deployer config publish FILE" in err


def test_show_an_invalid_published_copy(capsys: pytest.CaptureFixture[str], table: Any) -> None:
    # GIVEN an item written by hand that fails validation
    table.put_item(Item={"id": PUBLISHED_ITEM_ID, "value": '{"pipelines": 3}', "version": 4})
    # WHEN shown THEN the raw value is printed and the reason is on stderr, exit 1
    code, out, err = run(capsys, "config", "show", "--table", TABLE)
    assert code == 1
    assert out.splitlines()[0] == "version: 4"
    assert out.splitlines()[-1] == '{"pipelines": 3}'
    assert "invalid published copy" in err
    assert "pipelines: expected a list" in err


@pytest.mark.parametrize("action", ["publish", "show"])
def test_a_missing_table_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], table: Any, write: Any, action: str
) -> None:
    argv = ["config", action, *([write(VALID)] if action == "publish" else []), "--table", "no-such-table"]
    code, _, err = run(capsys, *argv)
    assert code == 1
    assert err.startswith(f"deployer config {action}: error: DynamoDB table 'no-such-table' not found")
    assert len(err.splitlines()) == 1


def test_no_credentials_is_one_clear_line(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # GIVEN no credentials anywhere (and no instance metadata to ask)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", raising=False)
    monkeypatch.delenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", raising=False)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a session of an earlier test caches credentials
    # WHEN showing
    code, _, err = run(capsys, "config", "show", "--table", TABLE)
    # THEN one line says so
    assert code == 1
    assert err.startswith("deployer config show: error: no AWS credentials found")
    assert len(err.splitlines()) == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["config", "show"], "deployer config: error: no config table: pass --table NAME or set DEPLOYER_CONFIG_TABLE"),
        (["config"], "deployer config: error: choose an action: publish FILE or show"),
    ],
)
def test_config_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str], message: str
) -> None:
    monkeypatch.delenv("DEPLOYER_CONFIG_TABLE", raising=False)
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert err.startswith(message)


def test_publish_of_an_unreadable_file_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, _, err = run(capsys, "config", "publish", str(tmp_path / "nope.yaml"), "--table", TABLE)
    assert code == 2
    assert "cannot read" in err


def test_show_prints_yaml_in_schema_order(capsys: pytest.CaptureFixture[str], table: Any) -> None:
    # GIVEN the example published
    assert run(capsys, "config", "publish", str(EXAMPLE), "--table", TABLE)[0] == 0
    # WHEN shown
    _, out, _ = run(capsys, "config", "show", "--table", TABLE)
    shown = yaml.safe_load(out.split("---\n", 1)[1])
    # THEN a pipeline reads name first, as in the file
    assert next(iter(shown["pipelines"][0])) == "name"
    assert load_config_text(out.split("---\n", 1)[1]) == load_config_text(EXAMPLE.read_text())
