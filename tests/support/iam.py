"""Does a function's role allow a request? The identity policies SAM generates for a function of
template.yaml (inline statements, policy templates and the stack's own managed policies), and a
small evaluator of them.

The evaluator follows the IAM User Guide's "Policy evaluation logic" for identity policies in one
account: an explicit Deny wins, else any Allow whose Action, Resource and Condition all match,
else the request is denied. Action names match case-insensitively, ARNs case-sensitively, and `*`
and `?` are wildcards in both. It knows the condition operators this template uses
(StringEquals, StringLike, ArnEquals, ArnLike); any other operator raises rather than guess.
AWS managed policies attached by ARN (AWSLambdaBasicExecutionRole, AWSXrayWriteOnlyAccess) are
not read: they grant nothing ECS or IAM. The stack's own policies that attach themselves to a role
(`Roles:`) are read when their Condition holds for the parameter values."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from tests.support import sam


def _pattern(text: str, *, ignore_case: bool) -> re.Pattern[str]:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(regex, re.IGNORECASE if ignore_case else 0)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _matches_any(patterns: Any, value: str, *, ignore_case: bool) -> bool:
    return any(_pattern(str(p), ignore_case=ignore_case).fullmatch(value) for p in _listed(patterns))


def _condition_holds(condition: Mapping[str, Any], request: Mapping[str, str]) -> bool:
    keys = {key.lower(): value for key, value in request.items()}
    for operator, tests in condition.items():
        if operator in ("StringEquals", "ArnEquals"):
            match = lambda expected, actual: actual in [str(e) for e in _listed(expected)]  # noqa: E731
        elif operator in ("StringLike", "ArnLike"):
            match = lambda expected, actual: _matches_any(expected, actual, ignore_case=False)  # noqa: E731
        else:
            raise NotImplementedError(f"condition operator {operator} is not modelled by tests/support/iam.py")
        for key, expected in tests.items():
            actual = keys.get(key.lower())
            if actual is None or not match(expected, actual):
                return False
    return True


def _applies(statement: Mapping[str, Any], action: str, resource: str, request: Mapping[str, str]) -> bool:
    if "NotAction" in statement or "NotResource" in statement:
        raise NotImplementedError("NotAction/NotResource are not modelled (and E9101 forbids them)")
    return (
        _matches_any(statement.get("Action", []), action, ignore_case=True)
        and _matches_any(statement.get("Resource", []), resource, ignore_case=False)
        and _condition_holds(statement.get("Condition", {}), request)
    )


def allows(
    statements: list[Mapping[str, Any]], action: str, resource: str, request: Mapping[str, str] | None = None
) -> bool:
    """Whether `statements` allow `action` on `resource`, with the request's condition keys."""
    applying = [s for s in statements if _applies(s, action, resource, request or {})]
    return any(s["Effect"] == "Allow" for s in applying) and not any(s["Effect"] == "Deny" for s in applying)


_ATTACHABLE = ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy")


def _documents(template_: Mapping[str, Any], role_id: str, names: Mapping[str, str]) -> Iterator[Any]:
    """The role's inline policies and managed policies (by Ref), then every policy of the stack that
    attaches itself to the role (`Roles: [!Ref <role>]`) and exists for these parameters."""
    resources = template_["Resources"]
    role = resources[role_id]["Properties"]
    for policy in role.get("Policies", []):
        yield policy["PolicyDocument"]
    for arn in role.get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and set(arn) == {"Ref"}:
            yield resources[arn["Ref"]]["Properties"]["PolicyDocument"]
    for resource in resources.values():
        if resource.get("Type") not in _ATTACHABLE or {"Ref": role_id} not in resource["Properties"].get("Roles", []):
            continue
        if "Condition" in resource and not sam.condition_holds(template_, resource["Condition"], names):
            continue
        yield resource["Properties"]["PolicyDocument"]


def function_statements(function: str, overrides: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every statement of the role SAM generates for `function` (a logical id of template.yaml),
    for one stack with these parameter values; ARNs of the stack's own resources stay markers."""
    transformed = sam.transformed(overrides)
    names = sam.context(overrides)
    statements: list[dict[str, Any]] = []
    for document in _documents(transformed, f"{function}Role", names):
        resolved = sam.resolve(document, names, strict=False)
        statements.extend(_listed(resolved["Statement"]))
    return statements
