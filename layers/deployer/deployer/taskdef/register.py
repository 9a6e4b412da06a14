"""The thin adapter that talks to ECS about task definitions: DescribeTaskDefinition, and
RegisterTaskDefinition of a clone (`deployer.taskdef.clone`), finding one already registered for a
redelivered event; ECS's error codes become domain exceptions here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from botocore.exceptions import BotoCoreError, ClientError

from deployer import aws
from deployer.errors import DeploymentError, TransientError
from deployer.settings import DeploySettings
from deployer.taskdef.clone import _clone, _task_definition_of, clone_for_images

if TYPE_CHECKING:
    from mypy_boto3_ecs import ECSClient

__all__ = [
    "RegisteredTaskDefinition",
    "TaskDefinitionNotFound",
    "TaskDefinitionRefused",
    "describe_task_definition",
    "find_registered_clone",
    "register_clone",
    "register_clone_of",
]


class TaskDefinitionNotFound(DeploymentError):
    """DescribeTaskDefinition does not know the task definition."""


class TaskDefinitionRefused(DeploymentError):
    """RegisterTaskDefinition refused the clone (bad value, missing permission, a limit)."""


class RegisteredTaskDefinition(NamedTuple):
    """The revision RegisterTaskDefinition created, and the one it was cloned from."""

    arn: str
    family: str
    revision: int
    previous_arn: str


def describe_task_definition(ecs: ECSClient, task_definition: str) -> dict[str, Any]:
    """DescribeTaskDefinition with its tags (`include=['TAGS']`), errors made domain errors.

    `task_definition` is an ARN, `family:revision` or a family (its latest ACTIVE revision).
    """
    try:
        response = ecs.describe_task_definition(taskDefinition=task_definition, include=["TAGS"])
    except (ClientError, BotoCoreError) as error:
        if aws.is_transient(error):
            raise TransientError(f"DescribeTaskDefinition {task_definition}: {_describe(error)}") from error
        raise TaskDefinitionNotFound(
            f"task definition {task_definition} cannot be described: {_describe(error)}"
        ) from error
    return dict(response)


def register_clone_of(
    ecs: ECSClient,
    described: Mapping[str, Any],
    images: Mapping[str, str],
    settings: DeploySettings | None = None,
) -> RegisteredTaskDefinition:
    """Register `clone_for_images(described, images, settings)`; for callers that described
    already (to show `changed_images` or to skip when `images_already_match`)."""
    request = clone_for_images(described, images, settings)
    family = request.get("family")
    previous_arn = str(_task_definition_of(described).get("taskDefinitionArn", ""))
    try:
        response = ecs.register_task_definition(**request)
    except (ClientError, BotoCoreError) as error:
        if aws.is_transient(error):
            raise TransientError(f"RegisterTaskDefinition {family}: {_describe(error)}") from error
        hint = ""
        if aws.error_code(error) == "AccessDeniedException" and "tags" in request:
            hint = (
                "; registering with tags also needs ecs:TagResource (it can be limited with the condition"
                " ecs:CreateAction = RegisterTaskDefinition)"
            )
        raise TaskDefinitionRefused(
            f"ECS refused a new revision of {family} cloned from {previous_arn}: {_describe(error)}{hint}"
        ) from error
    registered = response["taskDefinition"]
    return RegisteredTaskDefinition(
        arn=registered["taskDefinitionArn"],
        family=registered["family"],
        revision=registered["revision"],
        previous_arn=previous_arn,
    )


def find_registered_clone(
    ecs: ECSClient,
    described: Mapping[str, Any],
    images: Mapping[str, str],
    settings: DeploySettings | None = None,
    *,
    look_at: int = 10,
) -> RegisteredTaskDefinition | None:
    """The revision `register_clone_of(ecs, described, images, settings)` registered before, if
    any: a newer revision of the same family whose registrable content is exactly that clone, its
    settings included. Used only when a stage recorded that it was about to register and no
    revision was recorded after, so a redelivered event reuses the revision instead of registering
    a second one (docs/design.md invariant 1)."""
    expected = clone_for_images(described, images, settings)
    family = str(expected.get("family"))
    previous = _task_definition_of(described)
    previous_revision = int(previous.get("revision", 0))
    response = aws.call(
        "ListTaskDefinitions", ecs.list_task_definitions, familyPrefix=family, status="ACTIVE", sort="DESC"
    )
    newer = sorted(
        (
            (int(arn.rsplit(":", 1)[1]), arn)
            for arn in response.get("taskDefinitionArns", [])
            if arn.rsplit("/", 1)[-1].rsplit(":", 1)[0] == family and int(arn.rsplit(":", 1)[1]) > previous_revision
        ),
        reverse=True,
    )
    for revision, arn in newer[:look_at]:
        candidate = describe_task_definition(ecs, arn)
        # as registered: nothing applied to it again, so a revision that lacks the settings (or
        # runs another image) is never taken for the clone
        if _clone(candidate, _task_definition_of(candidate), {}, None) == expected:
            return RegisteredTaskDefinition(
                arn=arn, family=family, revision=revision, previous_arn=str(previous.get("taskDefinitionArn", ""))
            )
    return None


def register_clone(ecs: ECSClient, task_definition_arn: str, images: Mapping[str, str]) -> RegisteredTaskDefinition:
    """Describe `task_definition_arn` with its tags and register a copy running `images`."""
    return register_clone_of(ecs, describe_task_definition(ecs, task_definition_arn), images)


def _describe(error: ClientError | BotoCoreError) -> str:
    if isinstance(error, ClientError):
        return f"{aws.error_code(error)}: {error.response.get('Error', {}).get('Message', '')}"
    return str(error)
