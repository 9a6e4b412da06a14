"""Least privilege for IAM identity policies: no `Resource: "*"` and no action wildcards.

A statement may use `Resource: "*"` only when every one of its actions is in
UNSCOPABLE_ACTIONS: actions for which the Service Authorization Reference lists no resource
type, so "*" is the only value IAM accepts. Each entry says why, with its source.

cfn-lint (1.x) no longer applies the SAM transform before its rules run, so for a SAM template
this rule runs the transform itself (aws-sam-translator, which aws-sam-cli installs) and checks
the policies SAM generates: inline statements, expanded policy templates, and the roles SAM
adds for event sources, DLQs and schedules. Policies attached by ARN (AWS managed policies such
as AWSLambdaBasicExecutionRole, which SAM adds to every function) are not inspected.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, NamedTuple

from cfnlint.rules import CloudFormationLintRule, RuleMatch

_SAR = "https://docs.aws.amazon.com/service-authorization/latest/reference"
_NO_RESOURCE_TYPE = 'no resource type in the Service Authorization Reference, so "*" is the only valid Resource'

# Action -> why it may be granted on Resource "*". Add an action only after checking its row in
# the Service Authorization Reference: an empty "Resource types" column.
UNSCOPABLE_ACTIONS: Mapping[str, str] = {
    "ecs:DescribeTaskDefinition": f"{_NO_RESOURCE_TYPE} ({_SAR}/list_amazonelasticcontainerservice.html)",
    "ecs:RegisterTaskDefinition": (
        f"{_NO_RESOURCE_TYPE}; only the aws:RequestTag and aws:TagKeys condition keys apply"
        f" ({_SAR}/list_amazonelasticcontainerservice.html)"
    ),
    "ecs:ListTaskDefinitions": (
        f"{_NO_RESOURCE_TYPE}; a List action: the family a redelivered registration looks in"
        f" ({_SAR}/list_amazonelasticcontainerservice.html)"
    ),
    "ecs:DeregisterTaskDefinition": (
        f'{_NO_RESOURCE_TYPE}; its row reads "Grants permission to deregister the specified task definition by family'
        f' and revision" with an empty Resource types column ({_SAR}/list_amazonelasticcontainerservice.html)'
    ),
    "ecr:GetAuthorizationToken": (
        f"{_NO_RESOURCE_TYPE}; the registry login of a build that pushes (docker login)"
        f" ({_SAR}/list_amazonelasticcontainerregistry.html)"
    ),
    "application-autoscaling:DescribeScalableTargets": (
        f"{_NO_RESOURCE_TYPE} ({_SAR}/list_awsapplicationautoscaling.html)"
    ),
    "xray:PutTraceSegments": f"{_NO_RESOURCE_TYPE}; what SAM's `Tracing: Active` needs ({_SAR}/list_awsx-ray.html)",
    "xray:PutTelemetryRecords": f"{_NO_RESOURCE_TYPE}; what SAM's `Tracing: Active` needs ({_SAR}/list_awsx-ray.html)",
}
_UNSCOPABLE = frozenset(action.lower() for action in UNSCOPABLE_ACTIONS)

LOGGER = logging.getLogger(__name__)
_SAM_TRANSFORM = "AWS::Serverless-2016-10-31"
# Where each IAM resource type keeps its policy documents.
_INLINE_POLICIES = ("AWS::IAM::Role", "AWS::IAM::User", "AWS::IAM::Group")
_ONE_POLICY = (
    "AWS::IAM::Policy",
    "AWS::IAM::ManagedPolicy",
    "AWS::IAM::RolePolicy",
    "AWS::IAM::UserPolicy",
    "AWS::IAM::GroupPolicy",
)
_SAM_WITH_POLICIES = ("AWS::Serverless::Function", "AWS::Serverless::StateMachine")
_SERVICE_WILDCARD = re.compile(r"^[A-Za-z0-9-]+:\*$")

Path = list[str | int]


class _Statement(NamedTuple):
    path: Path
    document: Mapping[str, Any]
    origin: str


def _literals(value: Any) -> Iterator[str]:
    """The literal strings of a policy element: a string, a list, or either branch of Fn::If."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _literals(item)
    elif isinstance(value, dict) and list(value) == ["Fn::If"]:
        branches = value["Fn::If"]
        if isinstance(branches, list) and len(branches) == 3:
            yield from _literals(branches[1])
            yield from _literals(branches[2])


def _statements_of(document: Any, path: Path, origin: str) -> Iterator[_Statement]:
    if isinstance(document, str):
        try:
            document = json.loads(document)
        except ValueError:
            return
    if not isinstance(document, dict):
        return
    statements = document.get("Statement")
    if isinstance(statements, dict):
        yield _Statement([*path, "Statement"], statements, origin)
    elif isinstance(statements, list):
        for index, statement in enumerate(statements):
            if isinstance(statement, dict):
                yield _Statement([*path, "Statement", index], statement, origin)


def _iam_statements(resources: Mapping[str, Any], origin_of: Mapping[str, str] | None = None) -> Iterator[_Statement]:
    """Statements of the IAM resources; origin_of names where a generated resource came from."""
    for name, resource in resources.items():
        if not isinstance(resource, dict) or not isinstance(resource.get("Properties"), dict):
            continue
        kind, properties = resource.get("Type"), resource["Properties"]
        origin = (origin_of or {}).get(name, name)
        if kind in _INLINE_POLICIES and isinstance(properties.get("Policies"), list):
            for index, policy in enumerate(properties["Policies"]):
                if isinstance(policy, dict):
                    path: Path = ["Resources", name, "Properties", "Policies", index, "PolicyDocument"]
                    yield from _statements_of(policy.get("PolicyDocument"), path, origin)
        elif kind in _ONE_POLICY:
            path = ["Resources", name, "Properties", "PolicyDocument"]
            yield from _statements_of(properties.get("PolicyDocument"), path, origin)


def _sam_inline_statements(resources: Mapping[str, Any]) -> Iterator[_Statement]:
    """The inline statements written in SAM resources' Policies, where they are written."""
    for name, resource in resources.items():
        if not isinstance(resource, dict) or resource.get("Type") not in _SAM_WITH_POLICIES:
            continue
        policies = (resource.get("Properties") or {}).get("Policies")
        policies = policies if isinstance(policies, list) else [policies]
        for index, policy in enumerate(policies):
            if isinstance(policy, dict) and "Statement" in policy:
                yield from _statements_of(policy, ["Resources", name, "Properties", "Policies", index], name)


def _with_placeholder_artifacts(template: dict[str, Any]) -> dict[str, Any]:
    """The template with S3 locations where SAM expects uploaded artifacts (what `sam package` does)."""
    uri_properties = {
        "AWS::Serverless::Function": "CodeUri",
        "AWS::Serverless::LayerVersion": "ContentUri",
        "AWS::Serverless::Api": "DefinitionUri",
        "AWS::Serverless::HttpApi": "DefinitionUri",
        "AWS::Serverless::StateMachine": "DefinitionUri",
    }
    resources = template.get("Resources", {})
    for name in list(resources):
        resource = resources[name]
        kind = resource.get("Type") if isinstance(resource, dict) else None
        if kind == "AWS::Serverless::Application":
            del resources[name]  # Nested stacks hold their own policies; resolving them needs the network.
            continue
        properties = resource.get("Properties") if isinstance(resource, dict) else None
        if kind not in uri_properties or not isinstance(properties, dict):
            continue
        key = uri_properties[kind]
        if isinstance(properties.get(key), str) and not properties[key].startswith("s3://"):
            properties[key] = "s3://placeholder-bucket/placeholder-key"
        if kind == "AWS::Serverless::Function" and not {"CodeUri", "InlineCode", "ImageUri"} & properties.keys():
            if properties.get("PackageType") == "Image":
                properties["ImageUri"] = "123456789012.dkr.ecr.us-east-1.amazonaws.com/placeholder:latest"
            else:
                properties["CodeUri"] = "s3://placeholder-bucket/placeholder-key"
    return template


def _sam_translate(template: Mapping[str, Any], region: str) -> dict[str, Any] | None:
    """The CloudFormation template SAM would deploy, or None if it cannot be produced here."""
    try:
        import boto3
        from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
        from samtranslator.parser.parser import Parser
        from samtranslator.translator.translator import Translator
    except ImportError:
        return None
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    session = boto3.session.Session(region_name=region)
    # cfn-lint merges Globals into the resources before rules run, and merging them again would repeat
    # lists; a template it has not merged still needs them.
    for keep_globals in (False, True):
        sam = json.loads(json.dumps(template, default=str))
        if not keep_globals:
            sam.pop("Globals", None)
        try:
            translator = Translator(None, Parser(), boto_session=session, metrics=metrics)
            translated: dict[str, Any] = translator.translate(_with_placeholder_artifacts(sam), parameter_values={})
        except Exception as error:  # An invalid SAM template is reported by cfn-lint's own rules.
            LOGGER.debug("SAM transform failed (Globals kept: %s): %s", keep_globals, error)
            continue
        finally:
            metrics.publish()
        return translated
    return None


def _owner(generated: str, sam_resources: list[str]) -> str | None:
    """The SAM resource whose logical ID prefixes a generated one (OnPushFunction -> OnPushFunctionRole)."""
    owners = [name for name in sam_resources if generated.startswith(name)]
    return max(owners, key=len) if owners else None


def _locate(resource: Mapping[str, Any], owner: str, statement: Mapping[str, Any]) -> Path:
    """The path of a generated statement in its SAM resource: the inline statement it was copied from, if any."""
    policies = (resource.get("Properties") or {}).get("Policies")
    if not isinstance(policies, list):
        return ["Resources", owner, "Properties", "Policies"] if policies else ["Resources", owner, "Properties"]
    for index, policy in enumerate(policies):
        if not isinstance(policy, dict) or "Statement" not in policy:
            continue
        written = policy["Statement"]
        if written == statement:
            return ["Resources", owner, "Properties", "Policies", index, "Statement"]
        if isinstance(written, list) and statement in written:
            return ["Resources", owner, "Properties", "Policies", index, "Statement", written.index(statement)]
    return ["Resources", owner, "Properties", "Policies"]


def _all_statements(template: Mapping[str, Any], region: str) -> Iterator[_Statement]:
    resources = template.get("Resources")
    if not isinstance(resources, dict):
        return
    yield from _iam_statements(resources)
    transforms = template.get("Transform", [])
    if _SAM_TRANSFORM not in (transforms if isinstance(transforms, list) else [transforms]):
        return
    translated = _sam_translate(template, region)
    if translated is None:
        yield from _sam_inline_statements(resources)
        return
    sam_resources = [name for name, r in resources.items() if str(r.get("Type", "")).startswith("AWS::Serverless::")]
    generated = {name: r for name, r in translated.get("Resources", {}).items() if name not in resources}
    origins = {name: f"{name} (generated by SAM from {_owner(name, sam_resources)})" for name in generated}
    for found in _iam_statements(generated, origins):
        owner = _owner(str(found.path[1]), sam_resources)
        path = _locate(resources[owner], owner, found.document) if owner else ["Resources"]
        yield _Statement(path, found.document, found.origin)


def _describe(statement: _Statement) -> str:
    sid = statement.document.get("Sid")
    return f"{statement.origin}: statement {sid!r}" if isinstance(sid, str) else f"{statement.origin}: a statement"


class IamLeastPrivilege(CloudFormationLintRule):
    """Every Allow statement names its resources and its actions."""

    id = "E9101"
    shortdesc = "IAM statements are least privilege"
    description = (
        'Allow statements use Resource "*" only for actions with no resource-level permissions '
        '(UNSCOPABLE_ACTIONS in lint/cfn_rules/iam_least_privilege.py), and no Action "*", '
        '"service:*", NotAction or NotResource. SAM templates are checked after the SAM transform.'
    )
    source_url = "https://docs.aws.amazon.com/service-authorization/latest/reference/reference_policies_actions-resources-contextkeys.html"
    tags: ClassVar[list[str]] = ["iam", "least-privilege", "ecs-deployer"]

    def match(self, cfn: Any) -> list[RuleMatch]:
        region = cfn.regions[0] if getattr(cfn, "regions", None) else "us-east-1"
        matches: list[RuleMatch] = []
        for statement in _all_statements(cfn.template, region):
            matches.extend(RuleMatch(statement.path, message) for message in self._problems(statement))
        return matches

    @staticmethod
    def _problems(statement: _Statement) -> Iterator[str]:
        document = statement.document
        if document.get("Effect") == "Deny":
            return
        where = _describe(statement)
        if "NotAction" in document:
            yield f"{where} allows NotAction: name the actions it grants instead"
        if "NotResource" in document:
            yield f"{where} allows NotResource: name the resources it grants instead"
        actions = list(_literals(document.get("Action")))
        wildcards = [action for action in actions if action == "*" or _SERVICE_WILDCARD.match(action)]
        if wildcards:
            yield f"{where} allows the action wildcard {', '.join(wildcards)}: name the actions it needs"
        if "*" not in _literals(document.get("Resource")):
            return
        scopable = [action for action in actions if action.lower() not in _UNSCOPABLE]
        if scopable or not actions:
            shown = ", ".join(scopable) if scopable else "actions that are not literal strings"
            yield (
                f'{where} allows {shown} on Resource "*": scope it to ARNs. Only actions with no resource type in'
                ' the Service Authorization Reference may use "*" (UNSCOPABLE_ACTIONS in'
                " lint/cfn_rules/iam_least_privilege.py)"
            )
