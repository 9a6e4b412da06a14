"""Deploy-time settings (`environment`, `secrets`, `unset` on a stage; `deployer deploy --env/--secret/
--unset`): the rules a pipelines file is checked against, with path and line, and the merge into a
cloned container definition (hypothesis: merging then reading back gives the settings and leaves
the rest untouched).

AWS facts these tests rely on:

- ECS API reference, "Secret" (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Secret.html),
  valueFrom: "The supported values are either the full ARN of the AWS Secrets Manager secret or the
  full ARN of the parameter in the SSM Parameter Store. [...] If the SSM Parameter Store parameter
  exists in the same Region as the task you're launching, then you can use either the full ARN or
  name of the parameter." (The same text is botocore's ECS model documentation of Secret.valueFrom.)
- ECS developer guide, "Pass Secrets Manager secrets through Amazon ECS environment variables"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/secrets-envvar-secrets-manager.html):
  the syntax "arn:aws:secretsmanager:region:aws_account_id:secret:secret-name:json-key:version-stage:version-id";
  "These parameters are optional, but if you do not use them, you must include the colons : to use
  the default values"; "If a version staging label is specified, you cannot specify a version ID".
- AWS Systems Manager PutParameter (botocore's SSM model, Name): "Parameter names can include only
  the following symbols and letters: a-zA-Z0-9_.-" and "the slash character ( / ) is used to
  delineate hierarchies in parameter names".
- Amazon ECS service quotas (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/service-quotas.html):
  "Task definition size limit | The maximum size, in KiB, of a task definition. | 64 | No".
- ECS developer guide, "Pass an individual environment variable to an Amazon ECS container"
  (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/taskdef-envfiles.html): "Environment
  variables specified in the task definition are readable by all users and roles that are allowed
  the DescribeTaskDefinition action for the task definition."
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployer import settings as deploy_settings
from deployer.pipelines.loader import check_config_text, load_config_text
from deployer.settings import DeploySettings, SettingChange, changes, check_reference, merge

pytestmark = pytest.mark.unit

SECRET = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/web/db-AbCdEf"
HEADER = """pipelines:
  - name: web
    repository: web-app
    branch: main
    build: {project: web-app-build}
    container: web
    stages:
      - name: dev
        cluster: dev
        service: web
"""
FIRST_LINE = HEADER.count("\n") + 1  # the line of the first key after the header


def check(extra: str) -> Any:
    return check_config_text(HEADER + extra, "p.yaml")


# --- what a valid file looks like --------------------------------------------------------------


def test_a_stage_with_environment_secrets_and_unset_is_valid_and_published_as_given() -> None:
    text = HEADER + (
        "        environment:\n"
        "          web: {LOG_LEVEL: info, FEATURE_X: 'on'}\n"
        "          log-router: {FLB_LOG_LEVEL: warn}\n"
        "        secrets:\n"
        f'          web: {{DB_PASSWORD: "{SECRET}:password::", API_URL: /web/prod/api_url}}\n'
        "        unset: {web: [OLD_FLAG]}\n"
    )
    config = load_config_text(text)
    stage = config.pipelines[0].stages[0]
    assert stage.deploy_settings() == DeploySettings(
        environment={"web": {"LOG_LEVEL": "info", "FEATURE_X": "on"}, "log-router": {"FLB_LOG_LEVEL": "warn"}},
        secrets={"web": {"DB_PASSWORD": f"{SECRET}:password::", "API_URL": "/web/prod/api_url"}},
        unset={"web": ["OLD_FLAG"]},
    )
    assert stage.deploy_settings().containers == ("web", "log-router")
    from deployer.pipelines.loader import from_published_json, to_published_json

    assert from_published_json(to_published_json(config)) == config


def test_a_stage_without_settings_has_empty_settings() -> None:
    stage = load_config_text(HEADER).pipelines[0].stages[0]
    assert not stage.deploy_settings()
    assert stage.deploy_settings().containers == ()


# AWS's documented forms, with the placeholders filled in.
@pytest.mark.parametrize(
    "reference",
    [
        # "Example referencing a full secret"
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:secret_name-AbCdEf",
        # "Example referencing a specific key within a secret"
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:appauthexample-AbCdEf:username1::",
        # "Example referencing a specific secret version" (staging label, then version id)
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:appauthexample-AbCdEf::AWSPREVIOUS:",
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:appauthexample-AbCdEf:::9d4cb84b-ad69-40c0-a0ab-cead3EXAMPLE",
        # "Example referencing a specific key and version staging label of a secret"
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:appauthexample-AbCdEf:username1:AWSPREVIOUS:",
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:appauthexample-AbCdEf:username1::9d4cb84b-ad69-40c0-a0ab-cead3EXAMPLE",
        # SSM: "the full ARN or name of the parameter"
        "arn:aws:ssm:us-west-2:123456789012:parameter/parameter_name",
        "arn:aws:ssm:eu-west-1:123456789012:parameter/web/prod/db.password",
        "/Dev/DBServer/MySQL/db-string13",
        "db_password",
        "/aws/reference/secretsmanager/prod/web/db",
        "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:db-AbCdEf",
        "arn:aws-us-gov:ssm:us-gov-west-1:123456789012:parameter/db",
    ],
)
def test_documented_secret_references_are_accepted(reference: str) -> None:
    assert check_reference(reference) is None
    result = check(f'        secrets: {{web: {{DB: "{reference}"}}}}\n')
    assert result.errors == ()


# --- refusals, each located --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "path", "message"),
    [
        (
            "        environment: {web: {PORT: 8080}}\n",
            "pipelines[0].stages[0].environment.web.PORT",
            "expected a string, got 8080: YAML reads true/false/yes/no/on/off, numbers and dates as such, so quote",
        ),
        (
            "        environment: {web: {DEBUG: yes}}\n",
            "pipelines[0].stages[0].environment.web.DEBUG",
            "expected a string, got True",
        ),
        (
            '        environment: {web: {"LOG LEVEL": info}}\n',
            "pipelines[0].stages[0].environment.web.LOG LEVEL",
            "'LOG LEVEL' is not an environment variable name: a letter or '_' followed by letters, digits and '_'",
        ),
        (
            '        environment: {web: {"LOG_LEVEL ": info}}\n',
            "pipelines[0].stages[0].environment.web.LOG_LEVEL ",
            "is not an environment variable name",
        ),
        (
            "        environment: {web: {9LIVES: x}}\n",
            "pipelines[0].stages[0].environment.web.9LIVES",
            "is not an environment variable name",
        ),
        (
            '        environment: {"web app": {A: b}}\n',
            "pipelines[0].stages[0].environment.web app",
            "'web app' is not a container name",
        ),
        (
            "        environment: {web: [LOG_LEVEL=info]}\n",
            "pipelines[0].stages[0].environment.web",
            "expected a mapping",
        ),
        (
            f"        secrets: {{web: {{DB: {SECRET}:password}}}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "after the secret's name ECS takes all three of :json-key:version-stage:version-id or none of them, "
            "and 'if you do not use them, you must include the colons' (ECS): for a JSON key alone write "
            "...:secret:prod/web/db-AbCdEf:password::",
        ),
        (
            f"        secrets: {{web: {{DB: '{SECRET}:password:AWSCURRENT'}}}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "all three of :json-key:version-stage:version-id or none",
        ),
        (
            f"        secrets: {{web: {{DB: '{SECRET}::AWSCURRENT:9d4cb84b-ad69-40c0-a0ab-cead3EXAMPLE'}}}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "give a version stage or a version id, not both (ECS: 'If a version staging label is specified, you "
            "cannot specify a version ID')",
        ),
        (
            "        secrets: {web: {DB: 'arn:aws:s3:::bucket/db.env'}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "is not a Secrets Manager secret ARN nor an SSM parameter ARN",
        ),
        (
            "        secrets: {web: {DB: 'arn:aws:kms:eu-west-1:123456789012:key/1234'}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "is not a Secrets Manager secret ARN nor an SSM parameter ARN",
        ),
        (
            "        secrets: {web: {DB: 'my secret'}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "it is empty or holds whitespace",
        ),
        (
            "        secrets: {web: {DB: 'db:password'}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "is neither an ARN nor an SSM parameter name",
        ),
        (
            "        secrets: {web: {DB: 12}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "expected a string, got 12",
        ),
        (
            f"        environment: {{web: {{DB: x}}}}\n        secrets: {{web: {{DB: '{SECRET}'}}}}\n",
            "pipelines[0].stages[0].secrets.web.DB",
            "'DB' is also set in environment.web: a container's variable is either a plain value or a secret",
        ),
        (
            "        environment: {web: {DB: x}}\n        unset: {web: [DB]}\n",
            "pipelines[0].stages[0].unset.web",
            "'DB' is both set (in environment.web) and unset: keep one",
        ),
        (
            "        unset: {web: [OLD, OLD]}\n",
            "pipelines[0].stages[0].unset.web[1]",
            "'OLD' is listed twice",
        ),
        (
            "        unset: {web: OLD}\n",
            "pipelines[0].stages[0].unset.web",
            "expected a list",
        ),
        (
            "        environmnet: {web: {A: b}}\n",
            "pipelines[0].stages[0].environmnet",
            "unknown key: did you mean 'environment'?",
        ),
    ],
)
def test_bad_settings_are_refused_with_their_path_and_line(extra: str, path: str, message: str) -> None:
    result = check(extra)
    assert result.config is None
    matching = [p for p in result.errors if p.path == path]
    assert matching, result.error_messages
    assert any(message in p.message for p in matching), result.error_messages
    assert matching[0].line in range(FIRST_LINE, FIRST_LINE + extra.count("\n"))


def test_every_problem_of_a_stage_is_reported_not_only_the_first() -> None:
    result = check(
        "        environment: {web: {'A B': x, PORT: 80}}\n"
        f"        secrets: {{web: {{DB: '{SECRET}:password'}}, side: {{T: 'arn:aws:s3:::b/k'}}}}\n"
        "        unset: {web: [X, X]}\n"
    )
    assert {p.path for p in result.errors} == {
        "pipelines[0].stages[0].environment.web.A B",
        "pipelines[0].stages[0].environment.web.PORT",
        "pipelines[0].stages[0].secrets.web.DB",
        "pipelines[0].stages[0].secrets.side.T",
        "pipelines[0].stages[0].unset.web[1]",
    }


def test_an_unquoted_reference_ending_in_colons_gets_a_yaml_hint() -> None:
    # YAML reads the final ':' of `...:password::` as a key: the value must be quoted.
    result = check(f"        secrets:\n          web:\n            DB: {SECRET}:password::\n")
    (problem,) = result.errors
    assert problem.line == FIRST_LINE + 2
    assert "a value ending in ':' must be quoted" in problem.message
    assert '"arn:aws:secretsmanager:...:secret:NAME:KEY::"' in problem.message


def test_settings_larger_than_a_task_definition_are_refused() -> None:
    # Amazon ECS service quotas: a task definition is at most 64 KiB (not adjustable).
    big = "x" * 40_000
    result = check(f"        environment: {{web: {{A: {big}, B: {big}}}}}\n")
    assert [p.path for p in result.errors] == ["pipelines[0].stages[0]"]
    assert "above ECS's task definition size limit of 64 KiB (not adjustable)" in result.errors[0].message


def test_a_secret_looking_environment_variable_gets_a_warning_and_secrets_none() -> None:
    result = check(
        f"        environment: {{web: {{DB_PASSWORD: hunter2}}}}\n        secrets: {{web: {{T: '{SECRET}'}}}}\n"
    )
    assert result.errors == ()
    (warning,) = result.warnings
    assert warning.path == "pipelines[0].stages[0].environment.web.DB_PASSWORD"
    assert "readable by anyone allowed ecs:DescribeTaskDefinition" in warning.message
    # the value of a plain variable is configuration, but never repeated in a warning
    assert "hunter2" not in warning.message


# --- merge ---------------------------------------------------------------------------------------


def container(**fields: Any) -> dict[str, Any]:
    return {"name": "web", "image": "public.ecr.aws/nginx/nginx:1.27", "essential": True, **fields}


def test_merge_sets_replaces_moves_and_removes_keeping_order_and_other_fields() -> None:
    request = {
        "family": "web",
        "containerDefinitions": [
            container(
                environment=[
                    {"name": "PORT", "value": "8080"},
                    {"name": "LOG_LEVEL", "value": "debug"},
                    {"name": "DB_PASSWORD", "value": "plain"},
                    {"name": "OLD_FLAG", "value": "1"},
                ],
                secrets=[{"name": "API_KEY", "valueFrom": "/web/api_key"}, {"name": "TOKEN", "valueFrom": "/t"}],
                healthCheck={"command": ["CMD", "true"]},
            ),
            {"name": "log-router", "image": "fluent-bit:2", "environment": [{"name": "A", "value": "1"}]},
        ],
    }
    before = copy.deepcopy(request)
    merge(
        request,
        DeploySettings(
            environment={"web": {"LOG_LEVEL": "warn", "TOKEN": "public", "NEW": "n"}},
            secrets={"web": {"DB_PASSWORD": f"{SECRET}:password::", "API_KEY": "/web/api_key_v2"}},
            unset={"web": ["OLD_FLAG"]},
        ),
    )
    web = request["containerDefinitions"][0]
    assert web["environment"] == [
        {"name": "PORT", "value": "8080"},
        {"name": "LOG_LEVEL", "value": "warn"},
        {"name": "TOKEN", "value": "public"},
        {"name": "NEW", "value": "n"},
    ]
    assert web["secrets"] == [
        {"name": "API_KEY", "valueFrom": "/web/api_key_v2"},
        {"name": "DB_PASSWORD", "valueFrom": f"{SECRET}:password::"},
    ]
    assert web["healthCheck"] == {"command": ["CMD", "true"]}
    assert request["containerDefinitions"][1] == before["containerDefinitions"][1]
    assert [(c.name, c.change, c.secret) for c in changes(before, request)] == [
        ("LOG_LEVEL", "changed", False),
        ("TOKEN", "changed", True),
        ("NEW", "added", False),
        ("API_KEY", "changed", True),
        ("DB_PASSWORD", "changed", True),
        ("OLD_FLAG", "removed", False),
    ]


def test_merge_adds_a_list_only_to_hold_a_variable() -> None:
    request = {"containerDefinitions": [container()]}
    merge(request, DeploySettings(environment={"web": {"A": "1"}}, unset={"web": ["B"]}))
    assert request["containerDefinitions"][0]["environment"] == [{"name": "A", "value": "1"}]
    assert "secrets" not in request["containerDefinitions"][0]


def test_a_change_is_shown_with_names_and_references_never_more() -> None:
    added = SettingChange("web", "DB_PASSWORD", None, ("secret", f"{SECRET}:password::"))
    assert added.short() == "DB_PASSWORD (secret, added)"
    assert added.detail() == f"DB_PASSWORD: (not set) → secret from {SECRET}:password::"
    moved = SettingChange("web", "TOKEN", ("environment", "abc"), ("secret", "/t"))
    assert moved.short() == "TOKEN (secret, changed) (was an environment variable)"
    long_value = SettingChange("web", "URL", None, ("environment", "https://" + "a" * 100))
    assert long_value.short() == f"URL=https://{'a' * 51}… (added)"
    assert SettingChange("web", "X", None, ("environment", "a\nb")).short() == "X=a\\nb (added)"
    assert deploy_settings.summary([added, moved]) == (
        "web: DB_PASSWORD (secret, added), TOKEN (secret, changed) (was an environment variable)"
    )
    assert SettingChange.from_dict(added.to_dict()) == added


# Names drawn from a small alphabet, so that settings, existing variables and duplicates collide.
NAMES = st.sampled_from(["A", "B", "C", "D", "E", "F"])
VALUES = st.text(alphabet="abc=: \n/", max_size=6)
CONTAINERS = ["web", "worker", "sidecar"]


@st.composite
def variables(draw: st.DrawFn, field: str) -> list[dict[str, str]] | None:
    if draw(st.booleans()) and draw(st.booleans()):
        return None  # the key absent, as DescribeTaskDefinition may leave it
    return [{"name": name, field: draw(VALUES)} for name in draw(st.lists(NAMES, max_size=6))]


@st.composite
def definitions(draw: st.DrawFn) -> dict[str, Any]:
    defs = []
    for name in CONTAINERS:
        definition: dict[str, Any] = {"name": name, "image": f"{name}:1", "cpu": draw(st.integers(0, 4))}
        for key, field in (("environment", "value"), ("secrets", "valueFrom")):
            listed = draw(variables(field))
            if listed is not None:
                definition[key] = listed
        defs.append(definition)
    return {"family": "web", "networkMode": "awsvpc", "containerDefinitions": defs}


@st.composite
def deploy_settings_for(draw: st.DrawFn) -> DeploySettings:
    """What a valid stage may ask: each name of a container set, set as a secret, or unset, once."""
    environment: dict[str, dict[str, str]] = {}
    secrets: dict[str, dict[str, str]] = {}
    unset: dict[str, list[str]] = {}
    for name in draw(st.lists(st.sampled_from(CONTAINERS), unique=True)):
        choices = draw(st.dictionaries(NAMES, st.sampled_from(["environment", "secret", "unset"]), max_size=6))
        for variable, choice in choices.items():
            if choice == "environment":
                environment.setdefault(name, {})[variable] = draw(VALUES)
            elif choice == "secret":
                secrets.setdefault(name, {})[variable] = f"/{name}/{variable.lower()}"
            else:
                unset.setdefault(name, []).append(variable)
    return DeploySettings(environment=environment, secrets=secrets, unset=unset)


def _read(definition: dict[str, Any], key: str, field: str) -> list[tuple[str, str]]:
    return [(entry["name"], entry[field]) for entry in definition.get(key) or ()]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(definitions(), deploy_settings_for())
def test_merging_then_reading_back_gives_the_settings_and_leaves_the_rest_untouched(
    before: dict[str, Any], chosen: DeploySettings
) -> None:
    after = copy.deepcopy(before)
    merge(after, chosen)
    assert deploy_settings.problems(chosen) == []
    assert {k: v for k, v in after.items() if k != "containerDefinitions"} == {
        k: v for k, v in before.items() if k != "containerDefinitions"
    }
    for old, new in zip(before["containerDefinitions"], after["containerDefinitions"], strict=True):
        environment, secrets, unset = chosen.for_container(old["name"])
        named = set(environment) | set(secrets) | unset
        # every other field of the container is as it was
        assert {k: v for k, v in new.items() if k not in {"environment", "secrets"}} == {
            k: v for k, v in old.items() if k not in {"environment", "secrets"}
        }
        if not named:
            assert new == old
            continue
        new_env, new_sec = _read(new, "environment", "value"), _read(new, "secrets", "valueFrom")
        # reading back gives the settings: each set name exactly once, in its list, with its value
        for name, value in environment.items():
            assert [v for n, v in new_env if n == name] == [value]
            assert name not in dict(new_sec)
        for name, reference in secrets.items():
            assert [v for n, v in new_sec if n == name] == [reference]
            assert name not in dict(new_env)
        for name in unset:
            assert name not in dict(new_env)
            assert name not in dict(new_sec)
        # the variables the settings do not name keep their values and their order
        for key, field, got in (("environment", "value", new_env), ("secrets", "valueFrom", new_sec)):
            kept = [(n, v) for n, v in _read(old, key, field) if n not in named]
            assert [(n, v) for n, v in got if n not in named] == kept
            # a list is only created to hold a new variable
            if key not in old:
                assert key not in new or got
        # what `changes` reports is only ever a named variable
        assert {c.name for c in changes({"containerDefinitions": [old]}, {"containerDefinitions": [new]})} <= named
    # merging again changes nothing: the settings are idempotent
    again = copy.deepcopy(after)
    merge(again, chosen)
    assert again == after
    assert changes(after, again) == []
