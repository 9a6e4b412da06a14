"""IAM of the housekeeping after a deployment (deployer.housekeeping): the roles SAM generates from
template.yaml evaluated against the requests the deployer really sends (tests/support/iam.py).

The facts, from AWS's Service Authorization Reference (mirrored, with its rows' words, by the
iann0036/iam-dataset file aws/iam_definition.json):

- "Actions, resources, and condition keys for Amazon Elastic Container Service",
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazonelasticcontainerservice.html :
  DeregisterTaskDefinition, "Grants permission to deregister the specified task definition by family
  and revision", lists no resource type, so "*" is the only Resource (lint/cfn_rules says why).
- "Actions, resources, and condition keys for Amazon EventBridge Scheduler",
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridgescheduler.html :
  GetSchedule and UpdateSchedule ("Grants permission to modify an Amazon EventBridge Scheduler
  schedule") take the resource type schedule*, ARN
  "arn:${Partition}:scheduler:${Region}:${Account}:schedule/${GroupName}/${ScheduleName}"; UpdateSchedule's
  dependent action is iam:PassRole (the schedule's execution role, Target.RoleArn).
- "Actions, resources, and condition keys for Amazon EventBridge",
  https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoneventbridge.html :
  a rule is "arn:${Partition}:events:${Region}:${Account}:rule/${RuleName}" on the default bus and
  "...:rule/${EventBusName}/${RuleName}" on another one.
- The roles go to the service that assumes them: AWS managed policy AmazonEventBridgeSchedulerFullAccess,
  https://docs.aws.amazon.com/aws-managed-policy/latest/reference/AmazonEventBridgeSchedulerFullAccess.html ,
  passes roles with the condition "iam:PassedToService" : "scheduler.amazonaws.com"; Amazon ECS
  Developer Guide, "Amazon ECS EventBridge IAM Role",
  https://docs.aws.amazon.com/AmazonECS/latest/developerguide/CWE_IAM_role.html : the role of an ECS
  scheduled task on an EventBridge rule is assumed by "events.amazonaws.com".
"""

from __future__ import annotations

import re

import pytest

from deployer import housekeeping
from deployer_local import template
from deployer_local.provision import ACCOUNT
from tests.support.iam import allows, function_statements
from tests.support.sam import REGION
from tests.unit.test_housekeeping import NEW, ecs_target, full_schedule

pytestmark = pytest.mark.unit

DEPLOYING = ("OnBuildFunction", "OnDeploymentFunction", "OnApprovalFunction")
NOT_DEPLOYING = ("OnPushFunction", "ApprovalsHttpFunction", "OnWebhookFunction")
SCOPED = {
    "ScheduleNamePattern": "reports/nightly-*",
    "RuleNamePattern": "web-*",
    "ScheduledTaskRoleNamePattern": "web-scheduled-*",
}
SCHEDULE = f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/reports/nightly-report"
RULE = f"arn:aws:events:{REGION}:{ACCOUNT}:rule/web-cleanup"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/web-scheduled-tasks"
SCHEDULER_ACTIONS = ("scheduler:GetSchedule", "scheduler:UpdateSchedule")
RULE_ACTIONS = ("events:ListTargetsByRule", "events:PutTargets")


def _role_arns(value: object) -> list[str]:
    if isinstance(value, dict):
        return [arn for item in value.values() for arn in _role_arns(item)]
    if isinstance(value, list):
        return [arn for item in value for arn in _role_arns(item)]
    return [value] if isinstance(value, str) and re.fullmatch(r"arn:aws:iam::\d{12}:role/.+", value) else []


@pytest.mark.parametrize("function", DEPLOYING)
def test_the_deploying_functions_may_move_the_scheduled_tasks_the_parameters_name(function: str) -> None:
    # GIVEN a stack scoped to the reports/nightly-* schedules, the web-* rules and their web-scheduled-* roles
    statements = function_statements(function, SCOPED)
    # THEN each deploying function may read and update them
    for action in SCHEDULER_ACTIONS:
        assert allows(statements, action, SCHEDULE), action
    for action in RULE_ACTIONS:
        assert allows(statements, action, RULE), action
    # AND pass exactly the roles the updates carry, each to the service that assumes it
    schedule_roles = _role_arns(housekeeping.update_schedule_request(full_schedule(), NEW))
    rule_roles = _role_arns(housekeeping.put_targets_request("web-cleanup", "default", [ecs_target("t", NEW)], NEW))
    assert schedule_roles == rule_roles == [ROLE]
    assert allows(statements, "iam:PassRole", ROLE, {"iam:PassedToService": "scheduler.amazonaws.com"})
    assert allows(statements, "iam:PassRole", ROLE, {"iam:PassedToService": "events.amazonaws.com"})
    # AND clean up old revisions (no resource type: "*")
    assert allows(statements, "ecs:DeregisterTaskDefinition", f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/web:3")


@pytest.mark.parametrize(
    ("action", "resource"),
    [
        pytest.param(
            "scheduler:UpdateSchedule",
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/nightly-report",
            id="other-group",
        ),
        pytest.param(
            "scheduler:UpdateSchedule",
            f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/reports/weekly",
            id="other-schedule",
        ),
        pytest.param(
            "scheduler:UpdateSchedule",
            f"arn:aws:scheduler:{REGION}:210987654321:schedule/reports/nightly-x",
            id="other-account",
        ),
        pytest.param("scheduler:DeleteSchedule", SCHEDULE, id="delete-schedule"),
        pytest.param("scheduler:CreateSchedule", SCHEDULE, id="create-schedule"),
        pytest.param(
            "events:PutTargets", f"arn:aws:events:{REGION}:{ACCOUNT}:rule/jobs/web-cleanup", id="rule-other-bus"
        ),
        pytest.param(
            "events:PutTargets", f"arn:aws:events:us-east-1:{ACCOUNT}:rule/web-cleanup", id="rule-other-region"
        ),
        pytest.param("events:RemoveTargets", RULE, id="remove-targets"),
        pytest.param("events:PutRule", RULE, id="put-rule"),
    ],
)
def test_nothing_beyond_the_named_scheduled_tasks_and_the_two_calls_each(action: str, resource: str) -> None:
    statements = function_statements("OnDeploymentFunction", SCOPED)
    assert not allows(statements, action, resource)


@pytest.mark.parametrize(
    ("arn", "service"),
    [
        pytest.param(ROLE, "lambda.amazonaws.com", id="to-lambda"),
        pytest.param(ROLE, "ecs.amazonaws.com", id="to-ecs"),
        pytest.param(f"arn:aws:iam::{ACCOUNT}:role/admin", "scheduler.amazonaws.com", id="other-role-to-scheduler"),
        pytest.param(f"arn:aws:iam::{ACCOUNT}:role/admin", "events.amazonaws.com", id="other-role-to-events"),
        pytest.param("arn:aws:iam::210987654321:role/web-scheduled-tasks", "events.amazonaws.com", id="other-account"),
        pytest.param(ROLE, None, id="no-passed-to-service"),
    ],
)
def test_the_scheduled_task_roles_go_only_to_scheduler_and_events(arn: str, service: str | None) -> None:
    statements = function_statements("OnApprovalFunction", {**SCOPED, "HookRoleNamePattern": "ecs-hook-*"})
    request = {"iam:PassedToService": service} if service else {}
    assert not allows(statements, "iam:PassRole", arn, request)


@pytest.mark.parametrize("function", DEPLOYING)
def test_without_the_parameters_no_scheduled_task_can_be_touched(function: str) -> None:
    # GIVEN a stack deployed with the defaults (empty patterns): the two policies do not exist
    statements = function_statements(function)
    for action in SCHEDULER_ACTIONS:
        assert not allows(statements, action, SCHEDULE), action
    for action in RULE_ACTIONS:
        assert not allows(statements, action, RULE), action
    for service in ("scheduler.amazonaws.com", "events.amazonaws.com"):
        assert not allows(statements, "iam:PassRole", ROLE, {"iam:PassedToService": service})
    # but cleaning up old revisions is always on (keepRevisions defaults to 10)
    assert allows(statements, "ecs:DeregisterTaskDefinition", "*")


@pytest.mark.parametrize("function", NOT_DEPLOYING)
def test_functions_that_do_not_deploy_touch_no_revision_and_no_scheduled_task(function: str) -> None:
    statements = function_statements(function, SCOPED)
    assert not allows(statements, "ecs:DeregisterTaskDefinition", "*")
    for action in SCHEDULER_ACTIONS:
        assert not allows(statements, action, SCHEDULE)
    for action in RULE_ACTIONS:
        assert not allows(statements, action, RULE)


def test_a_pattern_needs_the_roles_of_its_targets() -> None:
    # GIVEN the template's rule for the three parameters
    rule = template.load()["Rules"]["ScheduledTasksNeedTheirRoles"]
    assert rule["RuleCondition"] == {"Fn::Or": [{"Condition": "MovesSchedules"}, {"Condition": "MovesRuleTargets"}]}
    (assertion,) = rule["Assertions"]
    assert assertion["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "ScheduledTaskRoleNamePattern"}, ""]}]}
    # AND the parameters take names, not ARNs
    parameters = template.load()["Parameters"]
    schedule = re.compile(parameters["ScheduleNamePattern"]["AllowedPattern"])
    for good in ("", "default/web-*", "reports/nightly-report", "*/*"):
        assert schedule.fullmatch(good), good
    for bad in ("nightly-report", f"arn:aws:scheduler:{REGION}:{ACCOUNT}:schedule/default/x", "a/b/c"):
        assert not schedule.fullmatch(bad), bad
    rule_pattern = re.compile(parameters["RuleNamePattern"]["AllowedPattern"])
    for good in ("", "web-*", "jobs/web-cleanup"):
        assert rule_pattern.fullmatch(good), good
    assert not rule_pattern.fullmatch(f"arn:aws:events:{REGION}:{ACCOUNT}:rule/web")
