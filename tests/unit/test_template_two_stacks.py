"""Two deployers in one account and region (say dev and test): the SAM transform of template.yaml
for each Environment gives no two resources the same account-unique name, so the second stack
deploys beside the first.

Why the test exists: SAM names a ScheduleV2 event's schedule after the function and the event
when the template sets no Name, the same in every stack. aws/serverless-application-model#3109,
"AWS::Scheduler::Schedule fails on creation when using same template on multiple stacks"
(https://github.com/aws/serverless-application-model/issues/3109), quoting the SAM documentation
of ScheduleV2's Name: "If you don't specify a name, AWS SAM generates a name in the format
Function-Logical-IDEvent-Source-Name and uses that ID for the schedule name." A resource without a
name property gets one CloudFormation generates from the stack name, which cannot collide.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import botocore.session
import pytest

from deployer_local import template
from tests.support import sam

pytestmark = pytest.mark.unit

# CloudFormation type -> the property holding its account-unique (or account-and-region-unique)
# physical name, or None for a type without one. A type missing here fails the test: whoever adds
# it decides whether it has a name that two stacks could share.
NAME_PROPERTIES: dict[str, str | None] = {
    "AWS::Lambda::Function": "FunctionName",
    "AWS::Lambda::LayerVersion": "LayerName",
    "AWS::DynamoDB::Table": "TableName",
    "AWS::Events::EventBus": "Name",
    "AWS::Events::Rule": "Name",  # unique per event bus
    "AWS::Scheduler::Schedule": "Name",  # unique per schedule group
    "AWS::Scheduler::ScheduleGroup": "Name",
    "AWS::SQS::Queue": "QueueName",
    "AWS::SecretsManager::Secret": "Name",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::IAM::Role": "RoleName",  # unique in the whole account, every region
    "AWS::IAM::ManagedPolicy": "ManagedPolicyName",
    "AWS::IAM::Policy": None,  # an inline policy's name is scoped to its role
    "AWS::SQS::QueuePolicy": None,
    "AWS::Lambda::Permission": None,
    "AWS::Lambda::Url": None,
    "AWS::ECR::Repository": "RepositoryName",  # CreateBuildResources
    "AWS::CodeBuild::Project": "Name",  # CreateBuildResources
}
# The optional build resources are in the transformed template whatever their condition says: name
# them as a team that turns them on would.
BUILD_RESOURCES = {"CreateBuildResources": "true", "PipelineName": "web", "SourceRepository": "web-app"}
ENVIRONMENTS = tuple(template.load()["Parameters"]["Environment"]["AllowedValues"])


def physical_names(environment: str) -> dict[tuple[str, ...], str]:
    """(type, scope..., name) -> logical id of every named resource of the stack for `environment`,
    its names resolved as CloudFormation would (parameters, pseudo parameters, Fn::Sub)."""
    chosen = {"Environment": environment, **BUILD_RESOURCES}
    resources = sam.transformed(chosen)["Resources"]
    names = sam.context(chosen, stack_name=f"ecs-deployer-{environment}")
    found: dict[tuple[str, ...], str] = {}
    for logical_id, resource in resources.items():
        kind = resource["Type"]
        assert kind in NAME_PROPERTIES, f"{logical_id}: add {kind} to NAME_PROPERTIES (its name property, or None)"
        prop = NAME_PROPERTIES[kind]
        props: dict[str, Any] = resource.get("Properties", {})
        if prop is None or prop not in props:
            continue  # CloudFormation generates a unique name
        name = str(sam.resolve(props[prop], names))
        scope = {
            "AWS::Events::Rule": (str(sam.resolve(props.get("EventBusName", "default"), names, strict=False)),),
            "AWS::Scheduler::Schedule": (str(sam.resolve(props.get("GroupName", "default"), names)),),
        }.get(kind, ())
        key = (kind, *scope, name)
        assert key not in found, f"{logical_id} and {found[key]} share the name {name!r} in one stack"
        found[key] = logical_id
    return found


@pytest.mark.parametrize(("first", "second"), list(itertools.combinations(ENVIRONMENTS, 2)))
def test_two_environments_in_one_account_share_no_resource_name(first: str, second: str) -> None:
    # GIVEN the stacks of two environments in one account and region
    a, b = physical_names(first), physical_names(second)
    # THEN no account-unique name is taken twice (the second deploy would fail: "already exists")
    shared = {key[-1]: (a[key], b[key]) for key in a.keys() & b.keys()}
    assert shared == {}, f"{first} and {second} both create: {shared}"


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_the_expiry_sweep_schedule_is_named_for_its_environment(environment: str) -> None:
    names = {key[-1]: logical_id for key, logical_id in physical_names(environment).items()}
    schedule = next(name for name, logical_id in names.items() if logical_id == "OnApprovalFunctionExpirySweep")
    assert environment in schedule
    # EventBridge Scheduler's CreateSchedule Name, as the botocore model constrains it
    shape = botocore.session.get_session().get_service_model("scheduler").operation_model("CreateSchedule")
    constraints = shape.input_shape.members["Name"].metadata
    assert constraints["min"] <= len(schedule) <= constraints["max"]
    assert re.fullmatch(constraints["pattern"].strip("^$"), schedule)
