"""template.yaml and samconfig.toml for a real account: the IAM scopes have no "*" default (the
guided deploy asks), the optional build resources exist only with CreateBuildResources=true and
are least privilege, and samconfig.toml names a region and safe parameters per environment.

The template is transformed by aws-sam-translator (what `sam deploy` sends), then each resource's
Condition is evaluated for the given parameters, as CloudFormation would.

AWS facts relied on:
- "If there is no value for this column, you must specify all resources ("*") to which the policy
  applies in the Resource element of your policy statement." (Actions, resources, and condition
  keys for Amazon Elastic Container Registry, Service Authorization Reference,
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerregistry.html):
  GetAuthorizationToken's Resource types column is empty (cfn-lint's copy of the reference agrees),
  every push action names the `repository` resource type.
- CodeBuild's environment types LINUX_CONTAINER and ARM_CONTAINER with BUILD_GENERAL1_SMALL
  (Build environment compute modes and types, AWS CodeBuild User Guide,
  https://docs.aws.amazon.com/codebuild/latest/userguide/build-env-ref-compute-types.html).
- "Square brackets ([ ]) indicate default values. Leave your answer blank to select the default
  value. Default values are obtained from the following configuration files: ... samconfig.toml"
  (Introduction to deploying with AWS SAM, AWS SAM Developer Guide,
  https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/using-sam-cli-deploy.html);
  the SAM CLI falls back to the parameter's Default, else "" (samcli/commands/deploy/guided_context.py,
  `_get_parameter_value`: "Otherwise, it will use its default value in template file."), so a
  parameter without a Default is asked with nothing offered ("Parameter TaskRoleNamePattern []:"
  in a real run, docs/production.md).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from deployer_local import template
from lint.cfn_rules.iam_least_privilege import _sam_translate

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
BUILD_RESOURCES = {
    "BuildRepository",
    "BuildLogGroup",
    "BuildRole",
    "BuildProject",
    "StartTheBuildProject",
    "ResolveTheBuiltImages",
}
IAM_SCOPES = ("BuildProjectNamePattern", "TaskRoleNamePattern", "HookRoleNamePattern", "EcrRepositoryPattern")
ENABLED = {"CreateBuildResources": "true", "PipelineName": "web", "SourceRepository": "web-app"}


def _condition(value: Any, parameters: Mapping[str, str], conditions: Mapping[str, Any]) -> Any:
    """Evaluate a CloudFormation condition expression (Fn::Equals/And/Or/Not, Condition, Ref)."""
    if isinstance(value, dict) and len(value) == 1:
        ((name, argument),) = value.items()
        if name == "Ref":
            return parameters[argument]
        if name == "Condition":
            return _condition(conditions[argument], parameters, conditions)
        if name == "Fn::Equals":
            left, right = (_condition(v, parameters, conditions) for v in argument)
            return str(left) == str(right)
        if name == "Fn::Not":
            return not _condition(argument[0], parameters, conditions)
        if name == "Fn::And":
            return all(_condition(v, parameters, conditions) for v in argument)
        if name == "Fn::Or":
            return any(_condition(v, parameters, conditions) for v in argument)
    return value


def deployed(overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The template SAM sends, with what CloudFormation would create for these parameters."""
    source = template.load()
    translated = _sam_translate(source, "eu-west-1")
    assert translated is not None, "SAM could not transform template.yaml"
    parameters = {name: str(spec.get("Default", "")) for name, spec in source["Parameters"].items()} | dict(
        overrides or {}
    )
    conditions = translated.get("Conditions", {})
    holds = {name: bool(_condition(expression, parameters, conditions)) for name, expression in conditions.items()}
    resources = {
        name: resource
        for name, resource in translated["Resources"].items()
        if "Condition" not in resource or holds[resource["Condition"]]
    }
    outputs = {
        name: o for name, o in translated.get("Outputs", {}).items() if "Condition" not in o or holds[o["Condition"]]
    }
    return {"resources": resources, "outputs": outputs, "holds": holds, "parameters": parameters}


def _pick(value: Any, holds: Mapping[str, bool]) -> Any:
    """Fn::If resolved with the evaluated conditions."""
    if isinstance(value, dict) and list(value) == ["Fn::If"]:
        name, yes, no = value["Fn::If"]
        return _pick(yes if holds[name] else no, holds)
    return value


def _statements(resource: Mapping[str, Any]) -> list[dict[str, Any]]:
    properties = resource["Properties"]
    documents = [p["PolicyDocument"] for p in properties.get("Policies", [])] or [properties["PolicyDocument"]]
    return [statement for document in documents for statement in document["Statement"]]


# -- the IAM scopes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", IAM_SCOPES)
def test_an_iam_scope_has_no_default_so_the_guided_deploy_asks(name: str) -> None:
    spec = template.load()["Parameters"][name]
    assert "Default" not in spec
    assert spec["ConstraintDescription"]  # what CloudFormation says when the answer does not fit


# -- the optional build resources ------------------------------------------------------------------------


def test_by_default_no_build_resource_is_created() -> None:
    stack = deployed()
    assert stack["holds"]["CreateBuildResources"] is False
    assert not BUILD_RESOURCES & set(stack["resources"])
    assert not {"BuildProjectName", "BuildRepositoryUri"} & set(stack["outputs"])
    # AND every build resource is behind the condition (nothing half-created)
    translated = _sam_translate(template.load(), "eu-west-1")
    assert translated is not None
    assert {
        n for n, r in translated["Resources"].items() if r.get("Condition") == "CreateBuildResources"
    } == BUILD_RESOURCES


def test_enabled_they_are_created_and_named_per_environment() -> None:
    stack = deployed(ENABLED | {"Environment": "prod"})
    resources = stack["resources"]
    assert set(resources) >= BUILD_RESOURCES
    assert set(stack["outputs"]) >= {"BuildProjectName", "BuildRepositoryUri"}
    repository = resources["BuildRepository"]
    assert repository["DeletionPolicy"] == "Retain"  # images that services and rollbacks use survive a teardown
    props = repository["Properties"]
    assert props["RepositoryName"] == {"Fn::Sub": "ecs-deployer-${Environment}/${PipelineName}"}
    assert props["ImageTagMutability"] == "IMMUTABLE"
    assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
    (rule,) = json.loads(props["LifecyclePolicy"]["LifecyclePolicyText"])["rules"]
    assert rule["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 200}
    project = resources["BuildProject"]["Properties"]
    assert project["Name"] == {"Fn::Sub": "ecs-deployer-${Environment}-${PipelineName}"}
    assert project["Source"]["Type"] == "CODECOMMIT"
    assert project["Source"]["BuildSpec"] == "buildspec.yml"
    assert project["Artifacts"] == {"Type": "NO_ARTIFACTS"}
    environment = project["Environment"]
    assert environment["PrivilegedMode"] is True  # docker build
    assert environment["EnvironmentVariables"] == [
        {"Name": "ECR_REPOSITORY", "Type": "PLAINTEXT", "Value": {"Ref": "BuildRepository"}}
    ]
    assert project["LogsConfig"]["CloudWatchLogs"]["GroupName"] == {"Ref": "BuildLogGroup"}


@pytest.mark.parametrize(
    ("architecture", "kind", "image"),
    [
        ("x86_64", "LINUX_CONTAINER", "aws/codebuild/amazonlinux2-x86_64-standard:5.0"),
        ("arm64", "ARM_CONTAINER", "aws/codebuild/amazonlinux2-aarch64-standard:3.0"),
    ],
)
def test_the_build_runs_on_the_chosen_cpu(architecture: str, kind: str, image: str) -> None:
    stack = deployed(ENABLED | {"BuildArchitecture": architecture})
    environment = stack["resources"]["BuildProject"]["Properties"]["Environment"]
    assert _pick(environment["Type"], stack["holds"]) == kind
    assert _pick(environment["Image"], stack["holds"]) == image
    assert environment["ComputeType"] == "BUILD_GENERAL1_SMALL"


def test_the_build_role_reaches_only_its_repository_source_and_logs() -> None:
    stack = deployed(ENABLED)
    statements = {s["Sid"]: s for s in _statements(stack["resources"]["BuildRole"])}
    assert set(statements) == {"PullTheSource", "LogInToEcr", "PushTheImage", "WriteTheBuildLogs"}
    for sid, statement in statements.items():
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if sid == "LogInToEcr":
            assert statement["Action"] == "ecr:GetAuthorizationToken"  # no resource type: "*" is the only value
            assert resources == ["*"]
        else:
            assert "*" not in resources
    assert statements["PushTheImage"]["Resource"] == {"Fn::GetAtt": ["BuildRepository", "Arn"]}
    assert statements["PullTheSource"]["Action"] == "codecommit:GitPull"
    trust = stack["resources"]["BuildRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert [s["Principal"] for s in trust] == [{"Service": "codebuild.amazonaws.com"}]


def test_the_deployer_may_start_the_created_project_and_read_its_images() -> None:
    # GIVEN the created resources, whatever the IAM scope parameters say
    stack = deployed(ENABLED)
    resources = stack["resources"]
    start = resources["StartTheBuildProject"]["Properties"]
    resolve = resources["ResolveTheBuiltImages"]["Properties"]
    # THEN on_push may start exactly the created project and on_build read exactly its repository
    assert start["Roles"] == [{"Ref": "OnPushFunctionRole"}]
    assert _statements(resources["StartTheBuildProject"]) == [
        {
            "Sid": "StartTheCreatedBuildProject",
            "Effect": "Allow",
            "Action": "codebuild:StartBuild",
            "Resource": {"Fn::GetAtt": ["BuildProject", "Arn"]},
        }
    ]
    assert resolve["Roles"] == [{"Ref": "OnBuildFunctionRole"}]
    assert _statements(resources["ResolveTheBuiltImages"])[0]["Resource"] == {"Fn::GetAtt": ["BuildRepository", "Arn"]}
    # AND the roles they attach to are the ones SAM generates for those functions
    assert resources["OnPushFunctionRole"]["Type"] == resources["OnBuildFunctionRole"]["Type"] == "AWS::IAM::Role"


def test_enabled_without_a_pipeline_or_repository_is_refused_before_anything_is_created() -> None:
    rules = template.load()["Rules"]["BuildResourcesNeedAPipelineAndARepository"]
    assert rules["RuleCondition"] == {"Fn::Equals": [{"Ref": "CreateBuildResources"}, "true"]}
    asserted = [a["Assert"] for a in rules["Assertions"]]
    assert asserted == [
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "PipelineName"}, ""]}]},
        {"Fn::Not": [{"Fn::Equals": [{"Ref": "SourceRepository"}, ""]}]},
    ]


# -- samconfig.toml ----------------------------------------------------------------------------------------


def test_samconfig_names_a_region_and_safe_parameters_per_environment() -> None:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    assert config["version"] == 0.1
    for env in ("dev", "prod"):
        assert config[env]["global"]["parameters"]["region"]
        deploy = config[env]["deploy"]["parameters"]
        overrides = deploy["parameter_overrides"]
        assert f'Environment="{env}"' in overrides
        assert "*" not in overrides  # no IAM scope widened to the whole account by a default
        assert deploy["capabilities"] == "CAPABILITY_IAM"
    assert config["prod"]["deploy"]["parameters"]["confirm_changeset"] is True


def test_the_example_buildspec_takes_the_repository_from_the_project() -> None:
    # GIVEN the project's ECR_REPOSITORY variable (set by the optional build project)
    import yaml

    spec = yaml.safe_load((ROOT / "buildspec.example.yml").read_text())
    commands = [c for phase in spec["phases"].values() for c in phase["commands"]]
    # THEN the buildspec does not declare it under env: variables (whichever of the two CodeBuild
    # prefers, the project's value is used) and falls back to a default only when it is unset
    assert "ECR_REPOSITORY" not in spec["env"].get("variables", {})
    assert 'ECR_REPOSITORY="${ECR_REPOSITORY:-web-app}"' in commands
