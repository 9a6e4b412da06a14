"""buildspec.example.yml keeps the build contract: IMAGE_URI, pinned by digest, is exported.

AWS CodeBuild User Guide, "Build specification reference for CodeBuild"
(https://docs.aws.amazon.com/codebuild/latest/userguide/build-spec-ref.html):
- env/exported-variables: "Used to list environment variables you want to export. [...] The
  variable you want to export must be available in your container during the build. The variable
  you export can be an environment variable." and "The following cannot be exported: [...]
  Environment variables that start with AWS_."
- Buildspec versions, 0.2: "In version 0.1, AWS CodeBuild runs each build command in a separate
  instance of the default shell in the build environment. In version 0.2, CodeBuild runs all
  build commands in the same instance of the default shell in the build environment."
- Its own syntax example sets a variable with export:
  "export PACKAGE_NAME=$(cat package.json | grep name | head -1 | awk -F: '{ print $2 }' | sed 's/[\\",]//g')".
AWS CodePipeline User Guide, "AWS CodeBuild" action reference, Output variables: "This action will
produce as variables all environment variables that were exported as part of the build."

A shell assignment without `export` makes a shell variable, not an environment variable; the test
runs the buildspec's commands as version 0.2 does (one bash, in order, AWS CLI and docker stubbed)
and reads IMAGE_URI from the environment at the end, as CodeBuild does.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from deployer.flow.common import ENV_COMMIT, ENV_PIPELINE, ENV_RELEASE_ID, EXPORTED_IMAGE
from deployer.taskdef.clone import parse_image_uri
from deployer_local import template

pytestmark = pytest.mark.unit

BUILDSPEC = template.repository_root() / "buildspec.example.yml"
PHASES = ("install", "pre_build", "build", "post_build")
ACCOUNT = "123456789012"
DIGEST = "sha256:" + "e3" * 32
COMMIT = "cbe1d4ff7673" + "0" * 28
# The AWS CLI and docker as the build would find them, answering what the example asks.
STUBS = f"""
aws() {{
  case "$1 $2" in
    "sts get-caller-identity") echo {ACCOUNT} ;;
    "ecr get-login-password") echo not-a-password ;;
    "ecr describe-images") echo {DIGEST} ;;
    *) echo "unexpected: aws $*" >&2; return 1 ;;
  esac
}}
docker() {{ if [ "$1" = login ]; then cat >/dev/null; fi; }}
"""


def _spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load(BUILDSPEC.read_text(encoding="utf-8"))
    return spec


def _commands(spec: dict[str, Any]) -> list[tuple[str, str]]:
    phases = spec.get("phases", {})
    return [(phase, command) for phase in PHASES for command in (phases.get(phase) or {}).get("commands", [])]


def test_it_is_version_0_2_and_exports_image_uri_with_export() -> None:
    spec = _spec()
    # version 0.2: every command runs in one shell, so an exported value outlives its command
    assert str(spec["version"]) == "0.2"
    exported = spec["env"]["exported-variables"]
    assert EXPORTED_IMAGE in exported
    assert not [name for name in exported if name.startswith("AWS_")], "CodeBuild cannot export AWS_ names"
    for name in exported:
        setters = [(phase, c) for phase, c in _commands(spec) if re.match(rf"\s*(export\s+)?{name}=", c)]
        assert setters, f"no command sets {name}"
        for phase, command in setters:
            assert command.lstrip().startswith(f"export {name}="), f"{phase}: {command!r} sets {name} without export"
            # post_build runs even after a failed build: the image is known only when build succeeded
            assert phase in ("install", "pre_build", "build"), f"{name} is set in {phase}"


@pytest.mark.integration
@pytest.mark.parametrize(
    ("project_repository", "pushed_to"),
    [
        pytest.param("team/web", "team/web", id="the-project-names-the-repository"),
        pytest.param(None, "web-app", id="the-buildspec-default"),
    ],
)
def test_running_it_as_codebuild_does_leaves_image_uri_pinned_by_digest_in_the_environment(
    tmp_path: Path, project_repository: str | None, pushed_to: str
) -> None:
    # GIVEN the buildspec's commands, run in order in one bash (version 0.2), stopping at a failure,
    # in a project that sets ECR_REPOSITORY (the optional build project of template.yaml does) or not
    spec = _spec()
    assert spec["env"].get("shell", "bash") == "bash"
    script = [STUBS]
    for index, (phase, command) in enumerate(_commands(spec)):
        script += [command, f'[ $? -eq 0 ] || {{ echo "{phase} command {index} failed" >&2; exit 97; }}']
    environment_file = tmp_path / "environment"
    script.append(f"env -0 > {shlex.quote(str(environment_file))}")
    overrides = {ENV_COMMIT: COMMIT, ENV_RELEASE_ID: f"web@{COMMIT}", ENV_PIPELINE: "web"}
    variables = {str(k): str(v) for k, v in (spec["env"].get("variables") or {}).items()}
    project = {"ECR_REPOSITORY": project_repository} if project_repository else {}
    env = {"PATH": os.environ["PATH"], "AWS_REGION": "eu-west-1", **project, **variables, **overrides}
    # WHEN it runs
    done = subprocess.run(
        ["bash", "-c", "\n".join(script)], env=env, capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    # THEN IMAGE_URI is an environment variable (what CodeBuild can export), pinned by digest
    exported = dict(item.split("=", 1) for item in environment_file.read_text().split("\0") if "=" in item)
    assert EXPORTED_IMAGE in exported, f"{EXPORTED_IMAGE} is a shell variable, not exported: {done.stdout}"
    image = parse_image_uri(exported[EXPORTED_IMAGE])
    assert image.digest == DIGEST
    assert str(image) == f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/{pushed_to}@{DIGEST}"
