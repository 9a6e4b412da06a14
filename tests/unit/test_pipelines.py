"""Tests for deployer.pipelines (schema, loader, store): the schema, located errors, hostile YAML, the published JSON
and the DynamoDB-backed ConfigStore (moto in process)."""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployer.errors import ConfigError, TransientError
from deployer.pipelines.loader import (
    MAX_CONFIG_BYTES,
    MAX_PUBLISHED_BYTES,
    MAX_YAML_NODES,
    check_config_text,
    format_path,
    from_published_json,
    load_config_text,
    to_published_json,
    to_yaml,
)
from deployer.pipelines.schema import Pipeline, PipelinesConfig, find_pipelines
from deployer.pipelines.store import PUBLISHED_ITEM_ID, ConfigStore, PublishConflict
from deployer_local import template

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TABLE = "ecs-deployer-config-test"

# The design's example pipelines file (docs/pipelines.md); line numbers matter to the tests below.
DESIGN_EXAMPLE = """\
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


def base() -> dict[str, Any]:
    return copy.deepcopy(yaml.safe_load(DESIGN_EXAMPLE))


def dump(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False)


def errors_of(data: Any) -> list[str]:
    return [f"{p.path}: {p.message}" for p in check_config_text(dump(data)).errors]


def put(data: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """put(d, 'pipelines.0.stages.1.rollout.maximumPercent', 150); value DELETE removes the key."""
    parts: list[Any] = [int(p) if p.isdigit() else p for p in path.split(".")]
    target: Any = data
    for part in parts[:-1]:
        target = target[part]
    if value is DELETE:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return data


DELETE = object()
P0 = "pipelines.0"
S0 = "pipelines.0.stages.0"
S1 = "pipelines.0.stages.1"


# --- the schema, one rule per case -----------------------------------------------------------

SCHEMA_ERRORS = [
    # (what, path to set, value, expected error path, fragment of the message)
    ("name with capitals", f"{P0}.name", "Web", "pipelines[0].name", "a-z, 0-9 and '-'"),
    ("deadline too short", f"{S0}.deadlineMinutes", 4, "pipelines[0].stages[0].deadlineMinutes", "outside 5..10080"),
    ("deadline too long", f"{S0}.deadlineMinutes", 10081, "pipelines[0].stages[0].deadlineMinutes", "outside 5..10080"),
    ("deadline as text", f"{S0}.deadlineMinutes", "60", "pipelines[0].stages[0].deadlineMinutes", "valid integer"),
    ("name too long", f"{P0}.name", "a" * 65, "pipelines[0].name", "1 to 64"),
    ("name not a string", f"{P0}.name", 7, "pipelines[0].name", "expected a string"),
    ("repository with a space", f"{P0}.repository", "web app", "pipelines[0].repository", "CodeCommit"),
    ("repository ending .git", f"{P0}.repository", "web.git", "pipelines[0].repository", ".git"),
    ("repository too long", f"{P0}.repository", "r" * 101, "pipelines[0].repository", "1 to 100"),
    ("branch as a ref", f"{P0}.branch", "refs/heads/main", "pipelines[0].branch", "without 'refs/heads/'"),
    ("branch with ..", f"{P0}.branch", "a..b", "pipelines[0].branch", "git branch name"),
    ("branch with a space", f"{P0}.branch", "my branch", "pipelines[0].branch", "git branch name"),
    ("branch read as boolean", f"{P0}.branch", True, "pipelines[0].branch", "quote the value"),
    ("build missing", f"{P0}.build", DELETE, "pipelines[0].build", "required key missing"),
    ("build project too short", f"{P0}.build.project", "x", "pipelines[0].build.project", "CodeBuild"),
    ("build typo", f"{P0}.build", {"projct": "a-b"}, "pipelines[0].build.projct", "did you mean 'project'"),
    ("container and containers", f"{P0}.containers", ["web"], "pipelines[0]", "exactly one of"),
    ("neither container key", f"{P0}.container", DELETE, "pipelines[0]", "exactly one of"),
    ("container with a space", f"{P0}.container", "my web", "pipelines[0].container", "ECS name"),
    ("no stages", f"{P0}.stages", [], "pipelines[0].stages", "at least 1 entry"),
    ("stages not a list", f"{P0}.stages", "dev", "pipelines[0].stages", "expected a list"),
    ("cluster ARN", f"{S0}.cluster", "arn:aws:ecs:eu-west-1:1:cluster/dev", "pipelines[0].stages[0].cluster", "ARN"),
    (
        "service missing",
        f"{S0}.service",
        DELETE,
        "pipelines[0].stages[0]",
        "give exactly one of `service: NAME` or `services: [NAME, ...]`",
    ),
    ("stage typo", f"{S0}.clustr", "dev", "pipelines[0].stages[0].clustr", "did you mean 'cluster'"),
    ("stage name", f"{S0}.name", "Dev", "pipelines[0].stages[0].name", "a-z"),
    (
        "minimum above 100",
        f"{S1}.rollout.minimumHealthyPercent",
        120,
        "pipelines[0].stages[1].rollout.minimumHealthyPercent",
        "120 — ",
    ),
    (
        "maximum quoted",
        f"{S1}.rollout.maximumPercent",
        "150",
        "pipelines[0].stages[1].rollout.maximumPercent",
        "integer",
    ),
    (
        "maximum below 100",
        f"{S1}.rollout.maximumPercent",
        90,
        "pipelines[0].stages[1].rollout.maximumPercent",
        "100 or more",
    ),
    (
        "rollout typo",
        f"{S1}.rollout.maximumPercnt",
        200,
        "pipelines[0].stages[1].rollout.maximumPercnt",
        "maximumPercent",
    ),
    ("rollout not a mapping", f"{S1}.rollout", 50, "pipelines[0].stages[1].rollout", "expected a mapping"),
    ("bad strategy", f"{S1}.rollout.strategy", "BLUE", "pipelines[0].stages[1].rollout.strategy", "ROLLING"),
    (
        "blue/green without bake time",
        f"{S1}.rollout.strategy",
        "BLUE_GREEN",
        "pipelines[0].stages[1].rollout.bakeTimeInMinutes",
        "required with the BLUE_GREEN",
    ),
    (
        "shorthand rollback not a boolean",
        f"{S0}.rollout.circuitBreaker",
        {"rollback": "yes"},
        "pipelines[0].stages[0].rollout.circuitBreaker.rollback",
        "boolean",
    ),
    (
        "shorthand without rollback",
        f"{S0}.rollout.circuitBreaker",
        {"enable": True},
        "pipelines[0].stages[0].rollout.circuitBreaker.rollback",
        "required key missing",
    ),
    (
        "shorthand typo",
        f"{S0}.rollout.circuitBreaker",
        {"rollback": True, "rolback": True},
        "pipelines[0].stages[0].rollout.circuitBreaker.rolback",
        "did you mean 'rollback'",
    ),
    (
        "both circuit breakers",
        f"{S0}.rollout.deploymentCircuitBreaker",
        {"enable": True, "rollback": True},
        "pipelines[0].stages[0].rollout",
        "not both",
    ),
    (
        "API circuit breaker without rollback",
        f"{S1}.rollout.deploymentCircuitBreaker",
        {"enable": True},
        "pipelines[0].stages[1].rollout.deploymentCircuitBreaker.rollback",
        "required",
    ),
    (
        "alarms without names",
        f"{S1}.rollout.alarms",
        {"enable": True, "rollback": True},
        "pipelines[0].stages[1].rollout.alarms.alarmNames",
        "required",
    ),
    (
        "approver not a Slack id",
        f"{S1}.approval.approvers",
        ["bob"],
        "pipelines[0].stages[1].approval.approvers[0]",
        "Slack user id",
    ),
    (
        "approvers not a list",
        f"{S1}.approval.approvers",
        "U012ABCDEF",
        "pipelines[0].stages[1].approval.approvers",
        "expected a list",
    ),
    ("expiry 0 hours", f"{S1}.approval.expiresInHours", 0, "pipelines[0].stages[1].approval.expiresInHours", "1..168"),
    (
        "expiry above a week",
        f"{S1}.approval.expiresInHours",
        169,
        "pipelines[0].stages[1].approval.expiresInHours",
        "long-lived credential",
    ),
    (
        "expiry as a string",
        f"{S1}.approval.expiresInHours",
        "24",
        "pipelines[0].stages[1].approval.expiresInHours",
        "integer",
    ),
    (
        "channel without #",
        f"{S1}.approval.channel",
        "deploys",
        "pipelines[0].stages[1].approval.channel",
        "Slack channel",
    ),
    (
        "unknown lifecycle stage",
        f"{S1}.approval.at",
        "NOPE",
        "pipelines[0].stages[1].approval.at",
        "PRE_SCALE_UP",
    ),
    (
        "lifecycle stage with ROLLING",
        f"{S1}.approval.at",
        "PRE_SCALE_UP",
        "pipelines[0].stages[1].approval.at",
        "BLUE_GREEN, LINEAR or CANARY",
    ),
    ("approval null", f"{S1}.approval", None, "pipelines[0].stages[1].approval", "cannot be empty"),
    ("approval typo", f"{S1}.approval.aprovers", [], "pipelines[0].stages[1].approval.aprovers", "approvers"),
    ("top-level typo", "pipeline", [], "pipeline", "did you mean 'pipelines'"),
    ("slack channel", "slack", {"channel": "deploys"}, "slack.channel", "Slack channel"),
    ("pipelines missing", "pipelines", DELETE, "pipelines", "required key missing"),
    (
        "pause where ECS refuses one",
        S1,
        {
            "name": "prod",
            "cluster": "prod",
            "service": "web",
            "approval": {"at": "PRODUCTION_TRAFFIC_SHIFT"},
            "rollout": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5},
        },
        "pipelines[0].stages[1].approval.at",
        "ECS cannot pause at",
    ),
    (
        "pause without a traffic-shifting strategy",
        f"{S1}.approval.at",
        "POST_SCALE_UP",
        "pipelines[0].stages[1].approval.at",
        "needs rollout.strategy BLUE_GREEN, LINEAR or CANARY",
    ),
    # ECS developer guide, "Lifecycle hooks for Amazon ECS service deployments" and the API's
    # DeploymentLifecycleHook.lifecycleStages describe every stage with a blue and a green service
    # revision and their test and production traffic; no lifecycle stage is documented for a
    # rolling update, so a pause there may never come (the approval would never be asked).
    (
        "pause in a ROLLING deployment: no documented lifecycle stage",
        S1,
        {
            "name": "prod",
            "cluster": "prod",
            "service": "web",
            "approval": {"at": "PRE_SCALE_UP"},
            "rollout": {"strategy": "ROLLING", "minimumHealthyPercent": 50},
        },
        "pipelines[0].stages[1].approval.at",
        "AWS documents the lifecycle stages of those deployments only, none for a rolling update, so nothing "
        "says ECS would pause a rolling deployment at PRE_SCALE_UP",
    ),
]


@pytest.mark.parametrize(
    ("path", "value", "error_path", "fragment"),
    [case[1:] for case in SCHEMA_ERRORS],
    ids=[case[0] for case in SCHEMA_ERRORS],
)
def test_each_schema_rule_is_an_error_at_its_path(path: str, value: Any, error_path: str, fragment: str) -> None:
    # GIVEN the design's example with one thing wrong
    data = put(base(), path, value)
    # WHEN it is checked
    errors = errors_of(data)
    # THEN one error names the path and says why
    assert any(e.startswith(f"{error_path}: ") and fragment in e for e in errors), errors
    with pytest.raises(ConfigError):
        load_config_text(dump(data))


VALID_VARIANTS = [
    ("design example", None, None),
    ("containers list", P0, {**base()["pipelines"][0], "container": None, "containers": ["web", "sidecar"]}),
    ("expiry 1 hour", f"{S1}.approval.expiresInHours", 1),
    ("shortest deadline", f"{S0}.deadlineMinutes", 5),
    ("longest deadline", f"{S0}.deadlineMinutes", 10080),
    ("expiry 168 hours", f"{S1}.approval.expiresInHours", 168),
    ("approval channel id", f"{S1}.approval.channel", "C012ABCDEF"),
    ("W approver", f"{S1}.approval.approvers", ["W012ABCDEF"]),
    ("no rollout", f"{S1}.rollout", DELETE),
    ("slack defaults", "slack", {"channel": "#deploys"}),
    ("branch with slashes", f"{P0}.branch", "release/2024-10"),
    (
        "approval at a lifecycle stage",
        S1,
        {
            "name": "prod",
            "cluster": "prod",
            "service": "web",
            "approval": {"at": "POST_TEST_TRAFFIC_SHIFT"},
            "rollout": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5},
        },
    ),
    (
        "API circuit breaker",
        f"{S0}.rollout",
        {"deploymentCircuitBreaker": {"enable": True, "rollback": False}},
    ),
]


@pytest.mark.parametrize(("path", "value"), [c[1:] for c in VALID_VARIANTS], ids=[c[0] for c in VALID_VARIANTS])
def test_valid_variants_load(path: str | None, value: Any) -> None:
    # GIVEN a legal variation of the example
    data = base() if path is None else put(base(), path, value)
    # WHEN it is loaded
    config = load_config_text(dump(data))
    # THEN it validates
    assert isinstance(config, PipelinesConfig)
    assert config.pipelines[0].name == "web"


def test_the_design_example_reads_as_written() -> None:
    # GIVEN the design's example
    # WHEN it is loaded
    config = load_config_text(DESIGN_EXAMPLE)
    # THEN every field is where the file put it, with the defaults filled in
    web = config.pipelines[0]
    assert (web.repository, web.branch, web.build.project, web.container_names) == (
        "web-app",
        "main",
        "web-app-build",
        ("web",),
    )
    dev, prod = web.stages
    assert dev.approval is None
    assert prod.approval is not None
    assert prod.approval.approvers == ["U012ABCDEF"]
    assert prod.approval.expires_in_hours == 24
    assert prod.approval.channel is None
    assert config.stage_count == 2


def test_approval_defaults() -> None:
    # GIVEN an approval with no keys
    data = put(base(), f"{S1}.approval", {})
    # WHEN loaded
    result = check_config_text(dump(data))
    # THEN it expires in 24 hours, anyone with the link may approve, and a warning says so
    assert result.config is not None
    approval = result.config.pipelines[0].stages[1].approval
    assert approval is not None
    assert (approval.approvers, approval.expires_in_hours, approval.at) == ([], 24, None)
    assert [w.path for w in result.warnings] == ["pipelines[0].stages[1].approval.approvers"]


def test_shorthand_circuit_breaker_becomes_the_api_shape() -> None:
    # GIVEN the shorthand with and without enable
    config = load_config_text(DESIGN_EXAMPLE)
    data = put(base(), f"{S0}.rollout.circuitBreaker", {"rollback": False, "enable": False})
    disabled = load_config_text(dump(data))
    # WHEN the stages give their deployment configuration
    # THEN the shorthand maps to deploymentCircuitBreaker, enable defaulting to true
    assert config.pipelines[0].stages[0].deployment_configuration() == {
        "minimumHealthyPercent": 100,
        "maximumPercent": 200,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    }
    assert disabled.pipelines[0].stages[0].deployment_configuration()["deploymentCircuitBreaker"] == {
        "enable": False,
        "rollback": False,
    }
    assert config.pipelines[0].stages[1].deployment_configuration() == {
        "minimumHealthyPercent": 50,
        "maximumPercent": 150,
    }


def test_a_stage_without_rollout_sends_nothing() -> None:
    data = put(base(), f"{S1}.rollout", DELETE)
    config = load_config_text(dump(data))
    assert config.pipelines[0].stages[1].deployment_configuration() == {}


def test_rollout_passes_api_names_through() -> None:
    # GIVEN a canary rollout in the API's own names
    rollout = {
        "strategy": "CANARY",
        "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 5},
        "alarms": {"alarmNames": ["web-5xx"], "enable": True, "rollback": True},
        "bakeTimeInMinutes": 10,
    }
    config = load_config_text(dump(put(base(), f"{S1}.rollout", rollout)))
    # THEN the deployment configuration is the same mapping
    assert config.pipelines[0].stages[1].deployment_configuration() == rollout


# --- cross-checks ------------------------------------------------------------------------------


def second_pipeline(name: str = "api", cluster: str = "prod", service: str = "api") -> dict[str, Any]:
    return {
        "name": name,
        "repository": "api",
        "branch": "main",
        "build": {"project": "api-build"},
        "container": "api",
        "stages": [{"name": "prod", "cluster": cluster, "service": service}],
    }


def test_duplicate_pipeline_names_are_an_error() -> None:
    data = base()
    data["pipelines"].append(second_pipeline(name="web"))
    assert "pipelines[1].name: 'web' is also the name of pipelines[0]: pipeline names are unique" in errors_of(data)


def test_duplicate_stage_names_are_an_error() -> None:
    data = put(base(), f"{S1}.name", "dev")
    assert any(
        e.startswith("pipelines[0].stages[1].name: 'dev' is also the name of stages[0]") for e in errors_of(data)
    )


def test_duplicate_containers_are_an_error() -> None:
    data = put(put(base(), f"{P0}.container", DELETE), f"{P0}.containers", ["web", "web"])
    assert "pipelines[0].containers[1]: 'web' is listed twice" in errors_of(data)


@pytest.mark.parametrize("where", ["another pipeline", "the same pipeline"])
def test_one_ecs_service_belongs_to_one_stage(where: str) -> None:
    # GIVEN the prod/web service deployed by a second stage
    data = base()
    if where == "another pipeline":
        data["pipelines"].append(second_pipeline(service="web"))
        expected = "pipelines[1].stages[0].service"
    else:
        data["pipelines"][0]["stages"].append({"name": "prod-again", "cluster": "prod", "service": "web"})
        expected = "pipelines[0].stages[2].service"
    # WHEN checked
    errors = errors_of(data)
    # THEN the invariant is named
    assert any(
        e.startswith(f"{expected}: ECS service 'web' in cluster 'prod' is already deployed by pipelines[0].stages[1]")
        and "one deployment per ECS service at a time" in e
        for e in errors
    ), errors


def test_same_service_name_in_another_cluster_is_fine() -> None:
    data = base()
    data["pipelines"].append(second_pipeline(cluster="staging", service="web"))
    assert errors_of(data) == []


def test_pipelines_on_the_same_branch_all_start_in_file_order() -> None:
    # GIVEN two pipelines on web-app/main and one elsewhere
    data = base()
    other = second_pipeline(name="web-worker", service="worker")
    other["repository"] = "web-app"
    data["pipelines"].append(second_pipeline())
    data["pipelines"].append(other)
    config = load_config_text(dump(data))
    # WHEN a push to web-app/main is matched
    found = find_pipelines(config, "web-app", "main")
    # THEN both match, in file order; other branches and repositories match nothing
    assert [p.name for p in found] == ["web", "web-worker"]
    assert find_pipelines(config, "web-app", "develop") == []
    assert find_pipelines(config, "nope", "main") == []


def test_every_error_is_listed_not_only_the_first() -> None:
    # GIVEN three independent mistakes in different entries
    data = base()
    put(data, f"{P0}.name", "Web")
    put(data, f"{S1}.rollout.minimumHealthyPercent", 120)
    data["pipelines"].append(second_pipeline(service="web"))
    data["pipelines"][1]["build"]["project"] = "x"
    # WHEN checked
    paths = {e.split(": ")[0] for e in errors_of(data)}
    # THEN each is reported, even those in entries the schema refused
    assert {
        "pipelines[0].name",
        "pipelines[0].stages[1].rollout.minimumHealthyPercent",
        "pipelines[1].build.project",
        "pipelines[1].stages[0].service",
    } <= paths


@pytest.mark.parametrize(
    ("path", "value", "warning_path"),
    [
        (f"{S1}.rollout.minimumHealthyPercent", 0, "pipelines[0].stages[1].rollout.minimumHealthyPercent"),
        (f"{S1}.approval.approvers", [], "pipelines[0].stages[1].approval.approvers"),
        (f"{S1}.approval.approvers", ["U012ABCDEF", "U012ABCDEF"], "pipelines[0].stages[1].approval.approvers[1]"),
        ("pipelines", [], "pipelines"),
        (
            S1,
            {
                "name": "prod",
                "cluster": "prod",
                "service": "web",
                "rollout": {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 15},
                "deadlineMinutes": 15,
            },
            "pipelines[0].stages[1].deadlineMinutes",
        ),
    ],
    ids=["outage rollout", "anyone may approve", "approver twice", "no pipelines", "deadline within the bake"],
)
def test_warnings_do_not_fail(path: str, value: Any, warning_path: str) -> None:
    # GIVEN something legal but probably not meant
    result = check_config_text(dump(put(base(), path, value)))
    # THEN it is valid, with a warning at its path
    assert result.valid
    assert warning_path in [w.path for w in result.warnings]


DEADLINES = [
    # (what, rollout, the default deadline in minutes)
    ("no rollout: ROLLING", None, 60),
    ("ROLLING with a breaker", {"minimumHealthyPercent": 100, "circuitBreaker": {"rollback": True}}, 60),
    ("BLUE_GREEN: bake 15 + 30", {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 15}, 45),
    # 25% steps: 3 step bakes of 5 (none after 100%), bake 10, + 30
    (
        "LINEAR 25% every 5 min",
        {
            "strategy": "LINEAR",
            "bakeTimeInMinutes": 10,
            "linearConfiguration": {"stepPercent": 25.0, "stepBakeTimeInMinutes": 5},
        },
        55,
    ),
    ("LINEAR defaults: 9 step bakes of 6 + 30", {"strategy": "LINEAR"}, 84),
    (
        "CANARY: canary bake 15 + bake 30 + 30",
        {
            "strategy": "CANARY",
            "bakeTimeInMinutes": 30,
            "canaryConfiguration": {"canaryPercent": 10.0, "canaryBakeTimeInMinutes": 15},
        },
        75,
    ),
    (
        "BLUE_GREEN with a Lambda hook: bake 5 + hook 20 + 30",
        {
            "strategy": "BLUE_GREEN",
            "bakeTimeInMinutes": 5,
            "lifecycleHooks": [
                {
                    "targetType": "AWS_LAMBDA",
                    "hookTargetArn": "arn:aws:lambda:eu-west-1:123456789012:function:smoke",
                    "roleArn": "arn:aws:iam::123456789012:role/ecs-hooks",
                    "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"],
                    "timeoutConfiguration": {"timeoutInMinutes": 20},
                }
            ],
        },
        55,
    ),
]


@pytest.mark.parametrize(("rollout", "minutes"), [c[1:] for c in DEADLINES], ids=[c[0] for c in DEADLINES])
def test_a_stage_without_deadline_minutes_gets_its_strategys_default(rollout: Any, minutes: int) -> None:
    # GIVEN a stage that sets no deadlineMinutes WHEN its deadline is asked
    data = put(base(), f"{S0}.rollout", rollout if rollout is not None else DELETE)
    stage = load_config_text(dump(data)).pipelines[0].stages[0]
    # THEN it is the strategy's own duration plus a margin (ROLLING: 60 minutes)
    assert stage.deadline_minutes is None
    assert stage.deadline_minutes_or_default() == minutes


def test_deadline_minutes_is_kept_and_published() -> None:
    data = put(base(), f"{S0}.deadlineMinutes", 90)
    config = load_config_text(dump(data))
    assert config.pipelines[0].stages[0].deadline_minutes_or_default() == 90
    assert '"deadlineMinutes":90' in to_published_json(config)
    assert from_published_json(to_published_json(config)) == config


def test_design_example_has_no_warnings() -> None:
    assert check_config_text(DESIGN_EXAMPLE).warnings == ()


# --- paths and line numbers ------------------------------------------------------------------


def test_errors_carry_source_line_and_path() -> None:
    # GIVEN the example with prod's minimum at 120 (line 16) and a bad approver (line 15)
    text = DESIGN_EXAMPLE.replace("minimumHealthyPercent: 50", "minimumHealthyPercent: 120").replace(
        "[U012ABCDEF]", "[bob]"
    )
    # WHEN loaded
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "pipelines.yaml")
    # THEN each message is "file:line: path: problem", in line order
    messages = caught.value.messages
    assert len(messages) == 2
    assert messages[0].startswith("pipelines.yaml:15: pipelines[0].stages[1].approval.approvers[0]: 'bob'")
    assert messages[1].startswith("pipelines.yaml:16: pipelines[0].stages[1].rollout.minimumHealthyPercent: 120 — ")
    assert "pipelines.yaml: 2 errors" in str(caught.value)


def test_block_style_lines_point_at_the_key() -> None:
    text = """\
pipelines:
  - name: web
    repository: web-app
    branch: main
    build:
      project: web-app-build
    container: web
    stages:
      - name: dev
        cluster: dev
        service: web
        rollout:
          minimumHealthyPercent: 100
          maximumPercent: 100
"""
    result = check_config_text(text, "f.yaml")
    # 100/100 cannot move with any count, but only with a service's count is that known; static
    # checks accept it. A typo two levels down is found at its own line.
    assert result.valid
    broken = check_config_text(text.replace("project:", "projekt:"), "f.yaml")
    assert broken.error_messages == [
        "f.yaml:5: pipelines[0].build.project: required key missing",
        "f.yaml:6: pipelines[0].build.projekt: unknown key: did you mean 'project'?",
    ]
    missing = check_config_text(text.replace("    branch: main\n", ""), "f.yaml")
    assert missing.error_messages == ["f.yaml:2: pipelines[0].branch: required key missing"]


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), ""),
        (("pipelines",), "pipelines"),
        (
            ("pipelines", 0, "stages", 1, "rollout", "minimumHealthyPercent"),
            "pipelines[0].stages[1].rollout.minimumHealthyPercent",
        ),
        (("a", 0, 1, "b"), "a[0][1].b"),
    ],
)
def test_format_path(loc: tuple[str | int, ...], path: str) -> None:
    assert format_path(loc) == path


# --- hostile or broken YAML ------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""

BAD_YAML = [
    ("empty file", "", "f.yaml: the file is empty"),
    ("only comments", "# nothing\n\n", "f.yaml: the file is empty"),
    ("a list", "- a\n- b\n", "f.yaml:1: the document must be a mapping with a `pipelines` list, got ['a', 'b']"),
    ("a scalar", "hello\n", "f.yaml:1: the document must be a mapping with a `pipelines` list, got 'hello'"),
    ("syntax error", "pipelines:\n  - name: a\n   bad: [\n", "f.yaml:3:"),
    ("unclosed quote", "pipelines: 'abc\n", "f.yaml:2:1: YAML syntax: while scanning a quoted scalar"),
    ("tab indentation", "pipelines:\n\t- name: a\n", "f.yaml:2:1: YAML syntax: a tab character"),
    ("two documents", "pipelines: []\n---\npipelines: []\n", "f.yaml:2:1: YAML syntax: more than one YAML document"),
    (
        "duplicate key",
        DESIGN_EXAMPLE.replace("    branch: main\n", "    branch: main\n    branch: develop\n"),
        "f.yaml:5: pipelines[0].branch: duplicate key (first at line 4); YAML would silently keep the last one",
    ),
    ("billion laughs", BILLION_LAUGHS, f"more than {MAX_YAML_NODES} values"),
    ("recursive alias", "pipelines: &p [*p]\n", "f.yaml:1: pipelines[0]: an alias refers to a node that contains it"),
    ("python tag", "pipelines: !!python/object/apply:os.system [ls]\n", "f.yaml:1: pipelines: unsupported tag"),
    ("local tag", "pipelines: !mine [a]\n", "f.yaml:1: pipelines: unsupported tag '!mine'"),
    ("impossible date", "pipelines: 2024-13-45\n", "f.yaml:1: pipelines: cannot read the value '2024-13-45'"),
    ("non-string key", "pipelines: []\n1: a\n", "f.yaml:2: keys must be strings, got '1'"),
    ("complex key", "? [a]\n: b\npipelines: []\n", "f.yaml:1: keys must be strings, got a list or mapping"),
    ("control character", "pipelines: []\n\x07\n", "f.yaml:2:1: YAML syntax: the character #x0007 is not allowed"),
    ("deep nesting", "a: " + "[" * 70 + "]" * 70 + "\npipelines: []\n", "nested deeper than 64 levels"),
    ("very deep nesting", "[" * 20000, "f.yaml"),
    (
        "too large",
        "# " + "x" * MAX_CONFIG_BYTES + "\npipelines: []\n",
        f"above the limit of {MAX_CONFIG_BYTES // 1024} KiB",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in BAD_YAML], ids=[c[0] for c in BAD_YAML])
def test_bad_yaml_is_a_clear_config_error(text: str, expected: str) -> None:
    # GIVEN a file that is not a usable YAML mapping
    # WHEN loaded
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config_text(text, "f.yaml")
    # THEN the first problem says what and where, quickly (no expansion of the bomb)
    assert time.monotonic() - started < 5
    assert any(expected in m for m in caught.value.messages), caught.value.messages
    assert all(m.startswith("f.yaml") for m in caught.value.messages)


def test_a_config_too_big_for_one_dynamodb_item_is_refused() -> None:
    # GIVEN a small file whose aliases expand a 1,000-approver list into 40 stages
    approvers = ", ".join(f"U{i:09d}" for i in range(1000))
    stages = "".join(f"      - {{name: s{i}, cluster: c, service: s{i}, approval: *gate}}\n" for i in range(1, 40))
    text = f"""\
pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {{project: web-app-build}}
    container: web
    stages:
      - {{name: s0, cluster: c, service: s0, approval: &gate {{approvers: [{approvers}]}}}}
{stages}"""
    assert len(text.encode()) < MAX_CONFIG_BYTES
    # WHEN checked THEN it is refused before anyone tries to publish it
    result = check_config_text(text)
    assert len(result.errors) == 1
    assert "one DynamoDB item, which holds at most 400 KB" in result.errors[0].message
    assert str(MAX_PUBLISHED_BYTES) in result.errors[0].message


def test_anchors_and_merge_keys_work_within_bounds() -> None:
    # GIVEN a file sharing a rollout through an anchor, and overriding it through a merge key
    text = """\
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
        rollout: &rollout {minimumHealthyPercent: 50, maximumPercent: 200}
      - {name: test, cluster: test, service: web, rollout: *rollout}
      - name: prod
        cluster: prod
        service: web
        rollout:
          <<: *rollout
          maximumPercent: 150
"""
    # WHEN loaded
    config = load_config_text(text)
    # THEN the alias reads as the anchored mapping and explicit keys win over merged ones
    dev, test, prod = config.pipelines[0].stages
    assert dev.deployment_configuration() == test.deployment_configuration()
    assert prod.deployment_configuration() == {"minimumHealthyPercent": 50, "maximumPercent": 150}


def test_a_merge_key_takes_only_mappings() -> None:
    result = check_config_text("pipelines: []\nslack: {<<: [a]}\n", "f.yaml")
    assert result.error_messages == ["f.yaml:2: slack: a merge key (<<) takes a mapping or a list of mappings"]


def test_merge_key_values_are_defaults() -> None:
    text = """\
pipelines:
  - &web
    name: web
    repository: web-app
    branch: main
    build: {project: web-app-build}
    container: web
    stages: [{name: dev, cluster: dev, service: web}]
  - <<: *web
    name: web-release
    branch: release
    stages: [{name: dev, cluster: dev, service: web-release}]
"""
    config = load_config_text(text)
    second = config.pipelines[1]
    assert (second.name, second.repository, second.branch, second.container) == (
        "web-release",
        "web-app",
        "release",
        "web",
    )


def test_yaml_booleans_get_a_quoting_hint() -> None:
    # GIVEN `branch: on` (YAML 1.1 reads it as true)
    result = check_config_text(DESIGN_EXAMPLE.replace("branch: main", "branch: on"))
    # THEN the message says to quote it
    assert "quote the value" in result.errors[0].message


# --- published JSON --------------------------------------------------------------------------


def test_published_json_is_canonical_and_round_trips() -> None:
    # GIVEN the same config written two ways (flow vs block style, key order, explicit default)
    config = load_config_text(DESIGN_EXAMPLE)
    reordered = base()
    reordered["pipelines"][0] = dict(reversed(list(reordered["pipelines"][0].items())))
    reordered["pipelines"][0]["stages"][0]["rollout"]["circuitBreaker"]["enable"] = True
    other = load_config_text(yaml.safe_dump(reordered, default_flow_style=False))
    # WHEN published
    text = to_published_json(config)
    # THEN the JSON is compact, sorted and identical; reading it back gives the same config
    assert text == to_published_json(other)
    assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))
    assert from_published_json(text) == config
    assert '"expiresInHours":24' in text
    assert "null" not in text


def test_published_json_reloads_through_yaml() -> None:
    config = load_config_text(ROOT.joinpath("pipelines.example.yaml").read_text())
    assert load_config_text(to_yaml(config)) == config


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a mapping"),
        ('{"pipelines": [{"name": "web"}]}', "pipelines[0].repository: required key missing"),
    ],
)
def test_published_json_is_validated_again(text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_published_json(text)
    assert any(fragment in m for m in caught.value.messages), caught.value.messages


def test_published_json_runs_the_cross_checks() -> None:
    # GIVEN published JSON that passes the schema but deploys one service from two stages
    data = json.loads(to_published_json(load_config_text(DESIGN_EXAMPLE)))
    data["pipelines"][0]["stages"][1]["cluster"] = "dev"
    # WHEN read back THEN it is refused
    with pytest.raises(ConfigError) as caught:
        from_published_json(json.dumps(data))
    assert "one deployment per ECS service" in caught.value.messages[0]


def test_model_helpers() -> None:
    config = load_config_text(ROOT.joinpath("pipelines.example.yaml").read_text())
    web = config.pipeline_named("web")
    assert isinstance(web, Pipeline)
    assert config.pipeline_named("nope") is None
    assert [s.name for s in web.stages] == ["dev", "test", "prod"]
    assert web.stage_named("test") is web.stages[1]
    assert web.stage_named("nope") is None
    assert web.stage_after("dev") is web.stages[1]
    assert web.stage_after("prod") is None
    assert web.stage_after("nope") is None
    api = config.pipeline_named("api")
    assert api is not None
    assert api.container_names == ("api", "worker")


# --- the example files -------------------------------------------------------------------------


def test_example_pipelines_file_is_valid() -> None:
    # GIVEN the shipped example
    result = check_config_text(ROOT.joinpath("pipelines.example.yaml").read_text(), "pipelines.example.yaml")
    # THEN it validates without warnings and has a prod stage behind an approval
    assert result.error_messages == []
    assert result.warnings == ()
    assert result.config is not None
    web = result.config.pipeline_named("web")
    assert web is not None
    assert [s.name for s in web.stages] == ["dev", "test", "prod"]
    prod = web.stage_named("prod")
    assert prod is not None
    assert prod.approval is not None
    assert prod.approval.approvers


def test_example_buildspec_exports_image_uri_pinned_by_digest() -> None:
    # GIVEN the shipped buildspec
    spec = yaml.safe_load(ROOT.joinpath("buildspec.example.yml").read_text())
    commands = [c for phase in spec["phases"].values() for c in phase["commands"]]
    build = spec["phases"]["build"]["commands"]
    # THEN it is version 0.2, exports IMAGE_URI, assigns it in the build phase (a failure there
    # fails the build), by digest, and uses the deployer's overrides
    assert spec["version"] == 0.2
    assert "IMAGE_URI" in spec["env"]["exported-variables"]
    assignment = [c for c in build if re.match(r"\s*(export\s+)?IMAGE_URI=", c)]
    assert len(assignment) == 1
    assert "@" in assignment[0]
    text = "\n".join(commands)
    assert "DEPLOYER_COMMIT" in text
    assert "DEPLOYER_RELEASE_ID" in text
    assert "get-login-password" in text
    assert "docker push" in text
    assert "imageDigest" in text or "RepoDigests" in text


# --- hypothesis: never anything but ConfigError ------------------------------------------------

KEYS = sorted(
    {
        "pipelines", "name", "repository", "branch", "build", "project", "container", "containers",
        "stages", "cluster", "service", "rollout", "approval", "approvers", "expiresInHours", "channel",
        "at", "slack", "minimumHealthyPercent", "maximumPercent", "circuitBreaker", "rollback", "enable",
        "deadlineMinutes",
        "strategy", "deploymentCircuitBreaker", "alarms", "lifecycleHooks", "<<",
    }
)  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["web", "main", "U012ABCDEF", "BLUE_GREEN", "PRE_SCALE_UP", "#deploys", "2024-13-45"]),
)
structures = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=5),
    ),
    max_leaves=30,
)


def load_or_config_error(text: str) -> None:
    try:
        load_config_text(text)
    except ConfigError as exc:
        messages = exc.messages
        assert messages
        assert all(isinstance(m, str) and m for m in messages)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=300))
def test_arbitrary_text_only_ever_raises_config_error(text: str) -> None:
    load_or_config_error(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(KEYS), structures, max_size=4))
def test_arbitrary_yaml_structures_only_ever_raise_config_error(data: dict[str, Any]) -> None:
    load_or_config_error(yaml.safe_dump(data))
    load_or_config_error(yaml.safe_dump(data, default_flow_style=True))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(["name", "branch", "stages", "container", "rollout"]), structures), max_size=3)
)
def test_mutated_valid_files_only_ever_raise_config_error(mutations: list[tuple[str, Any]]) -> None:
    data = base()
    pipeline, stage = data["pipelines"][0], data["pipelines"][0]["stages"][0]
    for key, value in mutations:
        (stage if key == "rollout" else pipeline)[key] = value
    load_or_config_error(dump(data))


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_published_text_only_ever_raises_config_error(text: str) -> None:
    with contextlib.suppress(ConfigError):
        from_published_json(text)


names = st.from_regex(r"[a-z0-9][a-z0-9-]{0,10}", fullmatch=True)


@st.composite
def valid_configs(draw: st.DrawFn) -> dict[str, Any]:
    pipeline_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
    pipelines = []
    for p_name in pipeline_names:
        stage_names = draw(st.lists(names, min_size=1, max_size=3, unique=True))
        stages = []
        for s_name in stage_names:
            stage: dict[str, Any] = {"name": s_name, "cluster": p_name, "service": s_name}
            minimum = draw(st.integers(1, 100))
            stage["rollout"] = {"minimumHealthyPercent": minimum, "maximumPercent": draw(st.integers(100, 200))}
            if draw(st.booleans()):
                stage["approval"] = {"approvers": ["U012ABCDEF"], "expiresInHours": draw(st.integers(1, 168))}
            stages.append(stage)
        pipelines.append(
            {
                "name": p_name,
                "repository": draw(st.sampled_from(["web-app", "api"])),
                "branch": draw(st.sampled_from(["main", "release/1"])),
                "build": {"project": f"{p_name}-build"},
                "container": "app",
                "stages": stages,
            }
        )
    return {"pipelines": pipelines}


@settings(max_examples=60, deadline=None)
@given(valid_configs())
def test_valid_configs_round_trip_and_match_in_file_order(data: dict[str, Any]) -> None:
    # GIVEN any valid config
    config = load_config_text(dump(data))
    # THEN its published JSON reads back equal, and find_pipelines keeps file order
    assert from_published_json(to_published_json(config)) == config
    for repository in ("web-app", "api"):
        expected = [p["name"] for p in data["pipelines"] if p["repository"] == repository and p["branch"] == "main"]
        assert [p.name for p in find_pipelines(config, repository, "main")] == expected


# --- ConfigStore on moto -----------------------------------------------------------------------


@pytest.fixture
def dynamodb(aws_session: Any) -> Any:
    """The config table as template.yaml defines it, in the in-memory fakes for a unit test."""
    resource = aws_session.resource("dynamodb")
    resource.meta.client.create_table(**template.create_table_request("ConfigTable", TABLE))
    return resource


@pytest.fixture
def config() -> PipelinesConfig:
    return load_config_text(DESIGN_EXAMPLE)


def count_calls(resource: Any, operation: str) -> Callable[[], int]:
    calls: list[str] = []
    resource.meta.client.meta.events.register(f"before-call.dynamodb.{operation}", lambda **_: calls.append(operation))
    return lambda: len(calls)


def test_describe_is_none_before_the_first_publish(dynamodb: Any) -> None:
    assert ConfigStore(TABLE, dynamodb).describe() is None


def test_publish_writes_the_item_and_counts_versions(dynamodb: Any, config: PipelinesConfig) -> None:
    # GIVEN an empty table
    store = ConfigStore(TABLE, dynamodb)
    # WHEN published twice
    first = store.publish(config, "arn:aws:iam::123456789012:user/alice")
    second = store.publish(config, "")
    # THEN versions count up and the item holds what describe reports
    assert (first.version, second.version) == (1, 2)
    value = to_published_json(config)
    assert first.sha256 == hashlib.sha256(value.encode()).hexdigest() == second.sha256
    item = dynamodb.Table(TABLE).get_item(Key={"id": PUBLISHED_ITEM_ID})["Item"]
    assert item["value"] == value
    assert item["version"] == 2
    assert item["published_by"] == "unknown"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", item["published_at"])
    assert store.describe() == second
    assert first.published_by == "arn:aws:iam::123456789012:user/alice"


def test_a_lost_publish_race_is_refused(dynamodb: Any, config: PipelinesConfig) -> None:
    # GIVEN two publishers that both read version 1
    alice, bob = ConfigStore(TABLE, dynamodb), ConfigStore(TABLE, dynamodb)
    alice.publish(config, "alice")
    seen = alice.describe()
    assert seen is not None
    assert seen.version == 1
    changed = load_config_text(DESIGN_EXAMPLE.replace("expiresInHours: 24", "expiresInHours: 48"))
    # WHEN bob publishes first and alice publishes on her stale version
    bob.publish(changed, "bob", expected_version=seen.version)
    with pytest.raises(PublishConflict, match=r"someone published version 2 meanwhile .*; re-run"):
        alice.publish(config, "alice", expected_version=seen.version)
    # THEN bob's version stands
    latest = alice.describe()
    assert latest is not None
    assert (latest.version, latest.published_by) == (2, "bob")
    assert alice.load() == changed


def test_a_first_publish_race_is_refused(dynamodb: Any, config: PipelinesConfig) -> None:
    ConfigStore(TABLE, dynamodb).publish(config, "bob", expected_version=0)
    with pytest.raises(PublishConflict, match="someone published version 1 meanwhile"):
        ConfigStore(TABLE, dynamodb).publish(config, "alice", expected_version=0)


def test_load_returns_the_published_config(dynamodb: Any, config: PipelinesConfig) -> None:
    store = ConfigStore(TABLE, dynamodb)
    store.publish(config, "alice")
    assert store.load() == config


def test_load_is_cached_for_max_age(dynamodb: Any, config: PipelinesConfig) -> None:
    # GIVEN a published config and a store that caches for a minute
    ConfigStore(TABLE, dynamodb).publish(config, "alice")
    store = ConfigStore(TABLE, dynamodb, max_age_seconds=60)
    calls = count_calls(dynamodb, "GetItem")
    # WHEN it is loaded twice
    first, second = store.load(), store.load()
    # THEN DynamoDB was read once
    assert first == second == config
    assert calls() == 1
    # WHEN someone publishes a change within the minute
    changed = load_config_text(DESIGN_EXAMPLE.replace("expiresInHours: 24", "expiresInHours: 48"))
    ConfigStore(TABLE, dynamodb).publish(changed, "bob")
    reads = calls()
    # THEN the cached copy is still served without a read, and a forced fetch sees the change
    assert store.load() == config
    assert calls() == reads
    assert store.load(force_fetch=True) == changed
    assert calls() == reads + 1


def test_max_age_zero_reads_every_time(dynamodb: Any, config: PipelinesConfig) -> None:
    store = ConfigStore(TABLE, dynamodb, max_age_seconds=0)
    store.publish(config, "alice")
    calls = count_calls(dynamodb, "GetItem")
    store.load()
    time.sleep(0.01)
    store.load()
    assert calls() == 2


@pytest.mark.parametrize("max_age", [-1, 61, 300])
def test_cache_age_is_at_most_a_minute(max_age: int) -> None:
    with pytest.raises(ValueError, match=r"0\.\.60"):
        ConfigStore(TABLE, object(), max_age_seconds=max_age)  # type: ignore[arg-type]


def test_load_before_any_publish_says_what_to_do(dynamodb: Any) -> None:
    with pytest.raises(ConfigError, match=r"no pipelines published yet.*: run deployer config publish FILE"):
        ConfigStore(TABLE, dynamodb).load()


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("{broken", "not valid JSON"),
        ('{"pipelines": [{"name": "Web"}]}', "pipelines[0].name"),
    ],
)
def test_an_invalid_published_copy_is_refused(dynamodb: Any, value: str, fragment: str) -> None:
    # GIVEN an item someone wrote by hand
    dynamodb.Table(TABLE).put_item(Item={"id": PUBLISHED_ITEM_ID, "value": value, "version": 7})
    # WHEN loaded THEN ConfigError lists why
    with pytest.raises(ConfigError) as caught:
        ConfigStore(TABLE, dynamodb).load()
    assert any(fragment in m for m in caught.value.messages), caught.value.messages


def test_a_missing_table_is_a_config_error(dynamodb: Any, config: PipelinesConfig) -> None:
    store = ConfigStore("no-such-table", dynamodb)
    for call in (store.describe, store.load, lambda: store.publish(config, "alice")):
        with pytest.raises(ConfigError, match="DynamoDB table 'no-such-table' not found"):
            call()


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("ProvisionedThroughputExceededException", 400, TransientError),
        ("InternalServerError", 500, TransientError),
        ("AccessDeniedException", 400, ConfigError),
    ],
)
def test_aws_errors_become_domain_errors(dynamodb: Any, code: str, status: int, error: type[Exception]) -> None:
    # GIVEN DynamoDB answering with an error
    store = ConfigStore(TABLE, dynamodb)
    with Stubber(dynamodb.meta.client) as stub:
        stub.add_client_error("get_item", service_error_code=code, http_status_code=status)
        stub.add_client_error("get_item", service_error_code=code, http_status_code=status)
        # WHEN read THEN the error says whether a retry may help
        with pytest.raises(error, match=code):
            store.describe()
        with pytest.raises(error, match=code):
            store.load()


# --- source: where a pipeline's pushes come from -----------------------------------------------

SOURCE_BASE = """\
pipelines:
  - name: web
{source}
    branch: main
    build: {{project: web-app-build}}
    container: web
    stages:
      - {{name: dev, cluster: dev, service: web}}
"""


@pytest.mark.parametrize(
    ("source", "provider", "name"),
    [
        ("    repository: web-app", "codecommit", "web-app"),
        ("    source: {codecommit: web-app}", "codecommit", "web-app"),
        ("    source: {github: example-org/web-app}", "github", "example-org/web-app"),
        ("    source: {gitlab: example-group/sub/web-app}", "gitlab", "example-group/sub/web-app"),
    ],
)
def test_a_pipeline_names_its_source(source: str, provider: str, name: str) -> None:
    config = load_config_text(SOURCE_BASE.format(source=source))
    (web,) = config.pipelines
    assert (web.source_provider, web.source_name) == (provider, name)
    assert find_pipelines(config, name, "main", provider) == [web]
    other = "github" if provider != "github" else "gitlab"
    assert find_pipelines(config, name, "main", other) == []


def test_github_and_gitlab_names_match_whatever_their_case() -> None:
    config = load_config_text(SOURCE_BASE.format(source="    source: {github: Example-Org/Web-App}"))
    assert len(find_pipelines(config, "example-org/web-app", "main", "github")) == 1


def test_an_existing_repository_config_publishes_the_same_bytes() -> None:
    # the CodeCommit shorthand stays as written: a config published before sources existed is unchanged
    config = load_config_text(SOURCE_BASE.format(source="    repository: web-app"))
    assert '"repository":"web-app"' in to_published_json(config)
    assert '"source"' not in to_published_json(config)


@pytest.mark.parametrize(
    ("source", "path", "fragment"),
    [
        ("    repository: web-app\n    source: {github: a/b}", "pipelines[0]", "not both"),
        ("    source: {github: a/b, gitlab: c/d}", "pipelines[0].source", "exactly one of"),
        ("    source: {}", "pipelines[0].source", "exactly one of"),
        ("    source: {github: web-app}", "pipelines[0].source.github", "OWNER/REPO"),
        ("    source: {github: https://github.com/a/b}", "pipelines[0].source.github", "OWNER/REPO"),
        ("    source: {github: -org/repo}", "pipelines[0].source.github", "OWNER/REPO"),
        ("    source: {github: org/repo.git}", "pipelines[0].source.github", "OWNER/REPO"),
        ("    source: {gitlab: project}", "pipelines[0].source.gitlab", "GROUP/PROJECT"),
        ("    source: {gitlab: group/project.git}", "pipelines[0].source.gitlab", "GROUP/PROJECT"),
        ("    source: {codecommit: web app}", "pipelines[0].source.codecommit", "CodeCommit"),
        ("    source: {bitbucket: a/b}", "pipelines[0].source.bitbucket", "unknown key"),
        ("    source: github", "pipelines[0].source", "expected a mapping"),
        ("", "pipelines[0].repository", "required key missing"),
    ],
)
def test_validate_refuses_a_malformed_or_conflicting_source_with_path_and_line(
    source: str, path: str, fragment: str
) -> None:
    result = check_config_text(SOURCE_BASE.format(source=source), "pipelines.yaml")
    assert not result.valid
    messages = result.error_messages
    assert any(m.startswith("pipelines.yaml:") and f": {path}: " in m and fragment in m for m in messages), messages
