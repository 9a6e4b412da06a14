"""Integration fixtures: the SAM build (rebuilt once if older than its sources), moto server as
the AWS, and a world provisioned in it."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from deployer_local import localrun, template
from tests.support.events import REPOSITORY_ROOT
from tests.support.motoserver import MotoServer, running_moto_server
from tests.support.world import World, make_world

BUILD_DIR = REPOSITORY_ROOT / ".aws-sam" / "build"
BUILT_TEMPLATE = BUILD_DIR / "template.yaml"
SOURCES = (REPOSITORY_ROOT / "template.yaml", REPOSITORY_ROOT / "functions", REPOSITORY_ROOT / "layers" / "deployer")
_NOT_SOURCES = {"__pycache__", ".mypy_cache", ".pytest_cache", ".ruff_cache"}


def _source_files() -> Iterator[Path]:
    for source in SOURCES:
        if source.is_file():
            yield source
            continue
        for path in source.rglob("*"):
            parts = set(path.relative_to(source).parts)
            if path.is_file() and not parts & _NOT_SOURCES and not any(p.endswith(".egg-info") for p in parts):
                yield path


def build_is_stale() -> str | None:
    """Why the build output cannot be trusted, or None when it is newer than every source."""
    if not BUILT_TEMPLATE.is_file():
        return f"{BUILT_TEMPLATE.relative_to(REPOSITORY_ROOT)} is missing"
    built_at = BUILT_TEMPLATE.stat().st_mtime
    newer = sorted(str(p.relative_to(REPOSITORY_ROOT)) for p in _source_files() if p.stat().st_mtime > built_at)
    if newer:
        return f"{', '.join(newer[:3])}{' and more' if len(newer) > 3 else ''} changed since the last build"
    return None


@pytest.fixture(scope="session")
def build_dir(pytestconfig: pytest.Config) -> Path:
    """`.aws-sam/build`, built by `sam build` first when missing or older than its sources
    (`make test` builds before pytest, so this normally does nothing)."""
    reason = build_is_stale()
    if reason is not None:
        sam = Path(sys.executable).parent / "sam"
        reporter = pytestconfig.pluginmanager.get_plugin("terminalreporter")
        message = f"running `sam build` once for the integration tests: {reason}"
        if reporter is not None:
            reporter.write_line(message)
        else:
            print(message, file=sys.stderr)
        if not sam.is_file():
            pytest.fail(f"{message}, but {sam} does not exist: run `make build`", pytrace=False)
        env = {
            **os.environ,
            "PATH": f"{sam.parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "SAM_CLI_TELEMETRY": "0",
            "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "eu-west-1"),
        }
        done = subprocess.run(
            [str(sam), "build"], cwd=REPOSITORY_ROOT, env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            pytest.fail(f"`sam build` failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}", pytrace=False)
    return BUILD_DIR


@pytest.fixture(scope="package")
def moto_server() -> Iterator[MotoServer]:
    with running_moto_server() as server:
        yield server


@pytest.fixture
def aws(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty account in moto server; the test process's clients point at it. Its URL."""
    return moto_server.use(monkeypatch)


@pytest.fixture
def world(aws: str) -> World:
    """The deployer's tables and bus, the demo account and its published pipeline, in moto server."""
    return make_world()


# Where a function gets the URL of the approval page; no Function URL exists locally.
APPROVAL_URL = "https://approvals.local.invalid/"


@pytest.fixture
def resource_names(world: World) -> dict[str, str]:
    """`localrun`'s `names` for the world: its tables and bus, the template's secrets (created
    here as CloudFormation would, so their ARNs are real moto ARNs) and a stand-in approval URL."""
    names = localrun.resource_names(world.names)
    secrets = boto3.client("secretsmanager")
    for logical_id, props in template.resources("AWS::SecretsManager::Secret").items():
        name = props["Name"]["Fn::Sub"].replace("${Environment}", world.names.environment)
        value = props.get("SecretString") or uuid.uuid4().hex * 2
        try:
            names[logical_id] = secrets.create_secret(Name=name, SecretString=value)["ARN"]
        except secrets.exceptions.ResourceExistsException:
            names[logical_id] = secrets.describe_secret(SecretId=name)["ARN"]
    names["ApprovalsHttpFunctionUrl.FunctionUrl"] = APPROVAL_URL
    return names
