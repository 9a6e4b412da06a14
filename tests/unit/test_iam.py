"""IAM that ECS accepts: the roles SAM generates from template.yaml, evaluated against the requests
the deployer really sends (tests/support/iam.py evaluates the policies; tests/support/sam.py runs
the SAM transform).

The facts come from AWS's Service Authorization Reference, "Actions, resources, and condition keys
for Amazon Elastic Container Service",
https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html :

- ContinueServiceDeployment ("Grants permission to continue a paused service deployment"),
  DescribeServiceDeployments and StopServiceDeployment each list two required resource types,
  "Resource types (*required): service*" and "service-deployment*", so a statement that names only
  service-deployment ARNs does not authorize them.
- Resource types: "service-deployment", ARN "arn:${Partition}:ecs:${Region}:${Account}:" followed
  by "service-deployment/${ClusterName}/${ServiceName}/${ServiceDeploymentId}" (one string, split
  here); "service", ARN "arn:${Partition}:ecs:${Region}:${Account}:service/${ClusterName}/${ServiceName}".
- API operations table: UpdateService authorizes "iam:PassRole / Condition key: iam:PassedToService /
  Possible value(s): ecs-tasks.amazonaws.com, ecs.amazonaws.com"; RegisterTaskDefinition
  "iam:PassRole / iam:PassedToService / ecs-tasks.amazonaws.com".

Which role goes to which service: a task definition's taskRoleArn and executionRoleArn are assumed
by ecs-tasks.amazonaws.com; a lifecycle hook's roleArn is assumed by ECS itself. Amazon ECS
Developer Guide, "Permissions required for Lambda functions in Amazon ECS blue/green
deployments", https://docs.aws.amazon.com/AmazonECS/latest/developerguide/blue-green-permissions.html :
"This role allows Amazon ECS to invoke your Lambda functions at various stages of the deployment
lifecycle", with the trust policy `"Principal": {"Service": ["ecs.amazonaws.com"]}`.

Which roles are passed at all: IAM User Guide, "Grant a user permissions to pass a role to an AWS
service", https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_use_passrole.html : "A user can
pass a role ARN as a parameter in any API operation that uses the role to assign permissions to the
service. The service then checks whether that user has the iam:PassRole permission." So only the
role ARNs in a request count; the test collects them from the requests the deployer really sends.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from deployer.pipelines.loader import load_config_text
from deployer.releases.store import ReleaseStore
from deployer.stages import StageDeployer
from deployer_local import template
from tests.support.iam import allows, function_statements
from tests.support.sam import ACCOUNT, REGION
from tests.unit.test_stages import (
    LOAD_BALANCER,
    NEW_ARN,
    OLD_ARN,
    PIPELINE_YAML,
    built_release,
    described_task_definition,
    service_response,
)

pytestmark = pytest.mark.unit

DEPLOYING = ("OnBuildFunction", "OnDeploymentFunction", "OnApprovalFunction")
NOT_DEPLOYING = ("OnPushFunction", "ApprovalsHttpFunction")
SERVICE_DEPLOYMENT_ACTIONS = (
    "ecs:DescribeServiceDeployments",
    "ecs:ContinueServiceDeployment",
    "ecs:StopServiceDeployment",
)
SERVICE = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/prod/web"
# The ARN form of the API reference's own example (ContinueServiceDeployment, "Examples").
SERVICE_DEPLOYMENT = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/prod/web/r9i43YFjvgF_xlg7m2eJ1r"
HOOK_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:check-green"
HOOK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/ecs-hook-web"


@pytest.fixture
def store(deployer_table: Any) -> ReleaseStore:
    return ReleaseStore(deployer_table)


def role(name: str, account: str = ACCOUNT) -> str:
    return f"arn:aws:iam::{account}:role/{name}"


# -- service deployments: both resource types ----------------------------------------------------


@pytest.mark.parametrize("function", DEPLOYING)
@pytest.mark.parametrize("action", SERVICE_DEPLOYMENT_ACTIONS)
def test_a_paused_or_running_deployment_can_be_read_continued_and_stopped(function: str, action: str) -> None:
    # GIVEN the role of a function that answers ECS pauses and rolls back deployments
    statements = function_statements(function)
    # THEN IAM authorizes the action on both resource types the reference requires
    assert allows(statements, action, SERVICE_DEPLOYMENT), f"{function}: {action} on the service deployment"
    assert allows(statements, action, SERVICE), f"{function}: {action} on the service (required resource type)"


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(f"arn:aws:ecs:{REGION}:210987654321:service/prod/web", id="service-other-account"),
        pytest.param(f"arn:aws:ecs:us-east-1:{ACCOUNT}:service/prod/web", id="service-other-region"),
        pytest.param(f"arn:aws:ecs:{REGION}:210987654321:service-deployment/prod/web/x", id="deployment-other-account"),
        pytest.param(f"arn:aws:ecs:us-east-1:{ACCOUNT}:service-deployment/prod/web/x", id="deployment-other-region"),
    ],
)
def test_service_deployment_actions_stay_in_the_stacks_account_and_region(resource: str) -> None:
    statements = function_statements("OnApprovalFunction")
    for action in SERVICE_DEPLOYMENT_ACTIONS:
        assert not allows(statements, action, resource), f"{action} on {resource}"


@pytest.mark.parametrize("function", NOT_DEPLOYING)
def test_functions_that_do_not_deploy_hold_no_deploy_permission(function: str) -> None:
    statements = function_statements(function)
    for action in ("ecs:UpdateService", *SERVICE_DEPLOYMENT_ACTIONS):
        assert not allows(statements, action, SERVICE_DEPLOYMENT)
        assert not allows(statements, action, SERVICE)
    assert not allows(statements, "iam:PassRole", HOOK_ROLE, {"iam:PassedToService": "ecs.amazonaws.com"})
    assert not allows(statements, "iam:PassRole", role("web-task"), {"iam:PassedToService": "ecs-tasks.amazonaws.com"})


# -- iam:PassRole: every role a real deployment passes -------------------------------------------

HOOKED_STAGE = (
    "        rollout:\n"
    "          strategy: BLUE_GREEN\n"
    "          bakeTimeInMinutes: 15\n"
    "          lifecycleHooks:\n"
    f"            - {{targetType: AWS_LAMBDA, hookTargetArn: '{HOOK_FUNCTION}',"
    f" roleArn: '{HOOK_ROLE}', lifecycleStages: [POST_SCALE_UP]}}\n"
    "        approval: {expiresInHours: 3, at: POST_TEST_TRAFFIC_SHIFT}\n"
)


def _role_arns(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, ARN) of every IAM role ARN in a request, wherever the API model puts one."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _role_arns(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _role_arns(item, f"{path}[{index}]")
    elif isinstance(value, str) and re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", value):
        yield path, value


def _requests_of_a_hooked_blue_green_stage(store: ReleaseStore) -> dict[str, dict[str, Any]]:
    """The RegisterTaskDefinition and UpdateService requests the deployer sends for a BLUE_GREEN stage
    with an AWS_LAMBDA lifecycle hook and an approval during the deployment (a PAUSE hook)."""
    ecs = boto3.client("ecs")
    sent: dict[str, dict[str, Any]] = {}

    def capture(params: dict[str, Any], model: Any, **_: Any) -> None:
        sent[model.name] = params

    ecs.meta.events.register("before-parameter-build.ecs.*", capture)
    release = built_release(store)
    text = PIPELINE_YAML.replace(
        "        rollout: {minimumHealthyPercent: 50, maximumPercent: 150, circuitBreaker: {rollback: true}}\n",
        HOOKED_STAGE,
    )
    pipeline = load_config_text(text).pipelines[0]
    described = service_response(OLD_ARN)
    described["services"][0]["loadBalancers"] = [LOAD_BALANCER]
    with Stubber(ecs) as stub:
        stub.add_response("describe_services", described, {"cluster": "dev", "services": ["web"]})
        stub.add_response("describe_task_definition", described_task_definition(), None)
        stub.add_response(
            "register_task_definition",
            {"taskDefinition": {"taskDefinitionArn": NEW_ARN, "family": "web", "revision": 8}},
            None,
        )
        stub.add_response(
            "update_service", {"service": {"deployments": [{"id": "ecs-svc/9", "status": "PRIMARY"}]}}, None
        )
        result = StageDeployer(store, ecs).deploy(release, pipeline, pipeline.stages[0])
        stub.assert_no_pending_responses()
    assert result.outcome == "deploying", result.detail
    return sent


# Which service each request passes its roles to (see the module docstring).
PASSED_TO = {
    "RegisterTaskDefinition": "ecs-tasks.amazonaws.com",  # taskRoleArn, executionRoleArn
    "UpdateService": "ecs.amazonaws.com",  # deploymentConfiguration.lifecycleHooks[].roleArn
}


@pytest.mark.parametrize("function", DEPLOYING)
def test_every_role_a_deployment_passes_to_ecs_is_passable(store: ReleaseStore, function: str) -> None:
    # GIVEN the requests of a stage with a Lambda lifecycle hook (its roleArn) and a task role
    requests = _requests_of_a_hooked_blue_green_stage(store)
    passed = {name: list(_role_arns(requests[name])) for name in PASSED_TO}
    assert {path for path, _ in passed["RegisterTaskDefinition"]} == {"taskRoleArn", "executionRoleArn"}
    assert passed["UpdateService"] == [("deploymentConfiguration.lifecycleHooks[0].roleArn", HOOK_ROLE)]
    # The deployer never sends loadBalancers: the load balancers' infrastructure role
    # (advancedConfiguration.roleArn) stays on the service and is not passed again.
    assert set(requests["UpdateService"]) == {"cluster", "service", "taskDefinition", "deploymentConfiguration"}
    # The PAUSE hook of the approval carries no role (ECS refuses roleArn on PAUSE hooks).
    pause = requests["UpdateService"]["deploymentConfiguration"]["lifecycleHooks"][1]
    assert pause["targetType"] == "PAUSE"
    assert "roleArn" not in pause
    # THEN the function's role may pass each of them, to the service that assumes it
    statements = function_statements(function)
    for operation, service in PASSED_TO.items():
        for path, arn in passed[operation]:
            request = {"iam:PassedToService": service}
            assert allows(statements, "iam:PassRole", arn, request), f"{operation} {path}={arn} -> {service}"


NARROWED = {"TaskRoleNamePattern": "web-*", "HookRoleNamePattern": "ecs-hook-*"}


@pytest.mark.parametrize(
    ("arn", "service", "allowed"),
    [
        pytest.param(role("web-task"), "ecs-tasks.amazonaws.com", True, id="task-role-to-ecs-tasks"),
        pytest.param(role("ecs-hook-web"), "ecs.amazonaws.com", True, id="hook-role-to-ecs"),
        pytest.param(role("web-task"), "ecs.amazonaws.com", False, id="task-role-to-ecs"),
        pytest.param(role("ecs-hook-web"), "ecs-tasks.amazonaws.com", False, id="hook-role-to-ecs-tasks"),
        pytest.param(role("admin"), "ecs.amazonaws.com", False, id="other-role-to-ecs"),
        pytest.param(role("ecs-hook-web"), "lambda.amazonaws.com", False, id="hook-role-to-lambda"),
        pytest.param(role("ecs-hook-web", "210987654321"), "ecs.amazonaws.com", False, id="other-account"),
        pytest.param(role("ecs-hook-web"), None, False, id="no-passed-to-service"),
    ],
)
def test_pass_role_follows_the_two_patterns_and_the_service(arn: str, service: str | None, allowed: bool) -> None:
    # GIVEN a stack whose task roles are web-* and whose hook roles are ecs-hook-*
    statements = function_statements("OnBuildFunction", NARROWED)
    request = {"iam:PassedToService": service} if service else {}
    # THEN each pattern reaches only its own service
    assert allows(statements, "iam:PassRole", arn, request) is allowed


def test_the_hook_role_pattern_is_a_role_name_not_an_arn() -> None:
    # GIVEN the parameter as CloudFormation checks it before creating anything
    spec = template.load()["Parameters"]["HookRoleNamePattern"]
    accepted = re.compile(spec["AllowedPattern"])
    # THEN names, paths and wildcards pass; an ARN or an empty value is refused with a reason
    for good in ("*", "ecs-hook-*", "deploy/ecs-hook-web", "EcsLifecycleHook+Role=1,a.b@c_d-e"):
        assert accepted.fullmatch(good), good
    for bad in ("", f"arn:aws:iam::{ACCOUNT}:role/x", "role name"):
        assert not accepted.fullmatch(bad), bad
    assert "role name" in spec["ConstraintDescription"]


@pytest.mark.parametrize("function", DEPLOYING)
def test_a_redelivered_registration_may_look_for_the_revision_it_left(function: str) -> None:
    # GIVEN a stage whose RegisterTaskDefinition succeeded but whose record of it failed: the
    # redelivery lists the family's ACTIVE revisions (taskdef.find_registered_clone) before it
    # would register again. ListTaskDefinitions has no resource type (Service Authorization
    # Reference for Amazon ECS, "Actions, resources, and condition keys for Amazon Elastic
    # Container Service": an empty Resource types column means "*").
    statements = function_statements(function)
    # THEN the deploying functions may call it (AccessDenied here would fail the resume in AWS)
    assert allows(statements, "ecs:ListTaskDefinitions", "*", {})
