"""Read `template.yaml` so tests and the local stack create exactly what is deployed (tables,
buses, queues, rule patterns) instead of a copy that can drift."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that reads CloudFormation's short intrinsic tags (!Ref, !Sub, !GetAtt...)."""


def _intrinsic(loader: _CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    # !Ref and !Condition are the two short forms without "Fn::" (`{"Condition": name}` in a Rule or an Fn::Or).
    name = suffix if suffix in {"Ref", "Condition"} else f"Fn::{suffix}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = str(value).split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


_CfnLoader.add_multi_constructor("!", _intrinsic)


def repository_root() -> Path:
    """The checkout's root (the folder that holds template.yaml)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "template.yaml").is_file():
            return parent
    raise FileNotFoundError("template.yaml not found above " + str(here))


@functools.cache
def load(path: str | None = None) -> dict[str, Any]:
    file = Path(path) if path else repository_root() / "template.yaml"
    data = yaml.load(file.read_text(encoding="utf-8"), Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass
    if not isinstance(data, dict):
        raise ValueError(f"{file} is not a CloudFormation template")
    return data


def resources(kind: str, path: str | None = None) -> dict[str, dict[str, Any]]:
    """Logical id -> Properties of every resource of `kind` (e.g. AWS::DynamoDB::Table)."""
    return {
        logical_id: dict(resource.get("Properties", {}))
        for logical_id, resource in load(path).get("Resources", {}).items()
        if resource.get("Type") == kind
    }


def create_table_request(logical_id: str, table_name: str, path: str | None = None) -> dict[str, Any]:
    """CreateTable arguments for the template's table `logical_id`, under `table_name`."""
    props = resources("AWS::DynamoDB::Table", path)[logical_id]
    request: dict[str, Any] = {
        "TableName": table_name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if props.get("GlobalSecondaryIndexes"):
        request["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    return request


def rule_patterns(path: str | None = None) -> dict[str, dict[str, Any]]:
    """`Function.Event` -> EventBridge pattern, for every EventBridgeRule event of a function."""
    patterns: dict[str, dict[str, Any]] = {}
    for logical_id, props in resources("AWS::Serverless::Function", path).items():
        for event_name, event in props.get("Events", {}).items():
            if event.get("Type") == "EventBridgeRule":
                patterns[f"{logical_id}.{event_name}"] = dict(event["Properties"]["Pattern"])
    return patterns
