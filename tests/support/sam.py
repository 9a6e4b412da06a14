"""template.yaml as CloudFormation receives it: the SAM transform (aws-sam-translator, which
aws-sam-cli installs) run for given parameter values, and the intrinsic functions of names and
policies resolved for one stack. Tests read what is deployed, not a copy of it."""

from __future__ import annotations

import copy
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

from deployer_local import template

ACCOUNT = "123456789012"
REGION = "eu-west-1"
PARTITION = "aws"

_SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Unresolved(ValueError):
    """An intrinsic function whose value only CloudFormation knows (a resource's Ref or GetAtt)."""


# What a user answers `sam deploy --guided` for the parameters that have no default (the IAM
# scopes), as docs/production.md shows: the tests' world (project web-app-build, task roles web-*,
# hook roles ecs-hook-*, repository web-app).
GUIDED_ANSWERS = {
    "BuildProjectNamePattern": "web-app-build",
    "TaskRoleNamePattern": "web-*",
    "HookRoleNamePattern": "ecs-hook-*",
    "EcrRepositoryPattern": "web-app",
}


def parameters(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The template's parameter defaults, the guided answers for those without one, and `overrides`."""
    declared = template.load().get("Parameters", {})
    values = {name: str(spec["Default"]) for name, spec in declared.items() if "Default" in spec}
    values.update({name: answer for name, answer in GUIDED_ANSWERS.items() if name in declared and name not in values})
    values.update(overrides or {})
    return values


@functools.cache
def _transform(frozen: tuple[tuple[str, str], ...]) -> str:
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = copy.deepcopy(template.load())
    for resource in sam["Resources"].values():
        # What `sam package` does: code locations become S3 URIs (the transform needs no files).
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = "s3://placeholder-bucket/placeholder-key"
    session = boto3.session.Session(region_name=REGION)
    translated = Translator(None, Parser(), boto_session=session).translate(sam, parameter_values=dict(frozen))
    return json.dumps(translated)


def transformed(overrides: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CloudFormation template SAM produces for these parameter values (cached per values)."""
    result: dict[str, Any] = json.loads(_transform(tuple(sorted(parameters(overrides).items()))))
    return result


def context(overrides: Mapping[str, str] | None = None, *, stack_name: str = "ecs-deployer") -> dict[str, str]:
    """What a Ref or ${...} names in one stack: its parameters and the pseudo parameters."""
    return {
        **parameters(overrides),
        "AWS::AccountId": ACCOUNT,
        "AWS::Region": REGION,
        "AWS::Partition": PARTITION,
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack_name,
    }


def resolve(value: Any, names: Mapping[str, str], *, strict: bool = True) -> Any:
    """`value` with Ref, Fn::Sub and Fn::Join resolved from `names`. What only CloudFormation
    knows (a resource's Ref, Fn::GetAtt) raises Unresolved when `strict`, else becomes an
    `unresolved:` marker that matches no real ARN."""
    if isinstance(value, list):
        return [resolve(item, names, strict=strict) for item in value]
    if not isinstance(value, dict):
        return value
    if len(value) != 1 or not next(iter(value)).startswith(("Ref", "Fn::")):
        return {key: resolve(item, names, strict=strict) for key, item in value.items()}
    ((function, argument),) = value.items()
    if function == "Ref" and argument in names:
        return names[argument]
    if function == "Fn::Sub":
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], argument[1])
        scope = {**names, **{k: resolve(v, names, strict=strict) for k, v in variables.items()}}

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in scope:
                return str(scope[name])
            return _unresolved({"Fn::Sub": "${" + name + "}"}, strict)

        return _SUB_VARIABLE.sub(substitute, text)
    if function == "Fn::Join":
        separator, items = argument
        return separator.join(str(resolve(item, names, strict=strict)) for item in items)
    return _unresolved(value, strict)


def _unresolved(value: Any, strict: bool) -> str:
    if strict:
        raise Unresolved(f"only CloudFormation knows the value of {json.dumps(value)}")
    return "unresolved:" + json.dumps(value, sort_keys=True)


def condition_holds(template_: Mapping[str, Any], name: str, names: Mapping[str, str]) -> bool:
    """Whether the template's condition `name` holds for these parameter values (Fn::Equals, Fn::Not,
    Fn::And, Fn::Or and Condition, the functions CloudFormation allows in Conditions)."""
    return bool(_evaluate(template_.get("Conditions", {})[name], template_, names))


def _evaluate(value: Any, template_: Mapping[str, Any], names: Mapping[str, str]) -> Any:
    if not isinstance(value, dict) or len(value) != 1:
        return resolve(value, names)
    ((function, argument),) = value.items()
    if function == "Condition":
        return condition_holds(template_, argument, names)
    if function == "Fn::Equals":
        left, right = (_evaluate(item, template_, names) for item in argument)
        return str(left) == str(right)
    if function == "Fn::Not":
        return not _evaluate(argument[0], template_, names)
    if function == "Fn::And":
        return all(_evaluate(item, template_, names) for item in argument)
    if function == "Fn::Or":
        return any(_evaluate(item, template_, names) for item in argument)
    return resolve(value, names)
