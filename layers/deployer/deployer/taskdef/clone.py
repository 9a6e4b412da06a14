"""A task definition cloned with new container images, and a deploy's settings: pure functions
that build and compare requests, no AWS call.

ECS has no "change the image" call: a deploy registers a new revision that copies the running
one with other images. The copy must keep every field (an allow-list silently drops newer ones
such as `ipcMode`) and remove exactly the keys that RegisterTaskDefinition refuses
(`READ_ONLY_KEYS`, checked against the botocore ECS model by the unit tests). The clone also
carries a deploy's settings (environment variables and secret references, `deployer.settings`).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from deployer.errors import BadInput, DeploymentError
from deployer.settings import DeploySettings, SettingChange, deploy_problems
from deployer.settings import changes as setting_changes
from deployer.settings import merge as merge_settings

__all__ = [
    "READ_ONLY_KEYS",
    "ContainerNotFound",
    "ImageUri",
    "InvalidImageUri",
    "changed_images",
    "changed_settings",
    "clone_for_images",
    "clone_problems",
    "images_already_match",
    "parse_image_uri",
    "settable_tags",
]

READ_ONLY_KEYS: frozenset[str] = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
        "deleteRequestedAt",
    }
)
"""Keys DescribeTaskDefinition returns and RegisterTaskDefinition refuses (REFERENCE.md). A unit
test compares this set with the ECS model of the installed botocore."""

RESERVED_TAG_PREFIX = "aws:"
"""Tag keys with this prefix, in any case, belong to AWS and cannot be set (REFERENCE.md)."""

IMAGE_URI_HELP = (
    "A valid IMAGE_URI is [registry/]repository[:tag][@sha256:<64 hex digits>] with a tag, a digest "
    "or both; the repository is lowercase, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/shop/web:1.4.2, "
    "public.ecr.aws/nginx/nginx:1.27 or ghcr.io/org/app@sha256:<64 hex digits>"
)

_MAX_NAME_AND_TAG = 255
"""ECS: at most 255 characters before the `@` of a digest (the whole string for a tag)."""

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_REGISTRY = re.compile(rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"\w[\w.-]{0,127}", re.ASCII)
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_ECR_REGISTRY = re.compile(
    r"(?P<account>[0-9]{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?"
)


class InvalidImageUri(BadInput):
    """An image reference that ECS should never be asked to run."""

    def __init__(self, uri: object, reason: str, container: str | None = None) -> None:
        shown = repr(uri) if not isinstance(uri, str) or len(uri) <= 300 else repr(uri[:300] + "...")
        where = f" for container {container!r}" if container is not None else ""
        super().__init__(f"invalid IMAGE_URI {shown}{where}: {reason}. {IMAGE_URI_HELP}")
        self.uri = uri
        self.reason = reason
        self.container = container


class ContainerNotFound(DeploymentError):
    """A container the deploy names is not in the task definition (REFERENCE.md: fail loudly)."""

    def __init__(self, missing: Iterable[str], present: Iterable[str], task_definition: str | None) -> None:
        self.missing = tuple(missing)
        self.present = tuple(present)
        self.task_definition = task_definition
        names = ", ".join(repr(name) for name in self.missing)
        subject = f"container {names} is" if len(self.missing) == 1 else f"containers {names} are"
        where = task_definition or "the task definition"
        found = ", ".join(repr(name) for name in self.present) or "none"
        super().__init__(f"{subject} not in {where}; its containers are: {found}")


@dataclass(frozen=True, slots=True)
class ImageUri:
    """A parsed image reference; `registry` is None for Docker Hub's short names."""

    registry: str | None
    repository: str
    tag: str | None
    digest: str | None

    def __str__(self) -> str:
        text = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def ecr_account_id(self) -> str | None:
        """The account of a private ECR registry, None for any other registry."""
        match = _ECR_REGISTRY.fullmatch(self.registry or "")
        return match["account"] if match else None

    @property
    def ecr_region(self) -> str | None:
        """The region of a private ECR registry, None for any other registry."""
        match = _ECR_REGISTRY.fullmatch(self.registry or "")
        return match["region"] if match else None


def parse_image_uri(uri: str) -> ImageUri:
    """Parse an image reference as Docker reads it, and insist on a tag or a digest.

    A reference without either would deploy whatever `:latest` is when a task starts, so a
    rollback could not restore it. The digest must be `sha256:` and 64 lowercase hex digits, the
    only hash ECS supports.
    """
    if not isinstance(uri, str) or not uri:
        raise InvalidImageUri(uri, "it is empty")
    if any(char.isspace() for char in uri):
        raise InvalidImageUri(uri, "it contains whitespace")
    name_and_tag, has_digest, digest_text = uri.partition("@")
    digest: str | None = None
    if has_digest:
        if not _DIGEST.fullmatch(digest_text):
            raise InvalidImageUri(uri, "the digest must be sha256: followed by 64 lowercase hex digits")
        digest = digest_text
    if len(name_and_tag) > _MAX_NAME_AND_TAG:
        raise InvalidImageUri(uri, f"ECS allows at most {_MAX_NAME_AND_TAG} characters before the digest")
    name, tag = name_and_tag, None
    last_colon = name_and_tag.rfind(":")
    if last_colon > name_and_tag.rfind("/"):
        name, tag = name_and_tag[:last_colon], name_and_tag[last_colon + 1 :]
        if not _TAG.fullmatch(tag):
            raise InvalidImageUri(
                uri, "a tag is 1 to 128 letters, digits, '_', '.' or '-' and cannot start with '.' or '-'"
            )
    if not name:
        raise InvalidImageUri(uri, "it has no repository")
    registry, repository = _split_registry(name)
    if registry is not None and not _REGISTRY.fullmatch(registry):
        raise InvalidImageUri(uri, f"{registry!r} is not a valid registry host")
    if not _REPOSITORY.fullmatch(repository):
        reason = (
            "the repository must be lowercase"
            if _REPOSITORY.fullmatch(repository.lower())
            else f"{repository!r} is not a valid repository name"
        )
        raise InvalidImageUri(uri, reason)
    if tag is None and digest is None:
        raise InvalidImageUri(uri, "it names neither a tag nor a digest")
    return ImageUri(registry=registry, repository=repository, tag=tag, digest=digest)


def _split_registry(name: str) -> tuple[str | None, str]:
    """Docker's rule: the first path component is a registry if it looks like a host."""
    first, slash, rest = name.partition("/")
    looks_like_host = "." in first or ":" in first or first == "localhost" or first != first.lower()
    if slash and looks_like_host:
        return first, rest
    return None, name


def settable_tags(tags: Iterable[Mapping[str, str]] | None) -> list[dict[str, str]]:
    """The tags a new revision may carry: all but those with a reserved `aws:` key.

    Only keys are checked: a value starting with `aws:` was accepted when the revision was
    registered, and dropping a tag breaks accounts whose policies require it (REFERENCE.md).
    """
    return [dict(tag) for tag in tags or () if not str(tag.get("key", "")).lower().startswith(RESERVED_TAG_PREFIX)]


def clone_for_images(
    described: Mapping[str, Any], images: Mapping[str, str], settings: DeploySettings | None = None
) -> dict[str, Any]:
    """Build the RegisterTaskDefinition request that copies `described` with other images.

    `described` is a DescribeTaskDefinition response made with `include=['TAGS']`, where `tags`
    sits beside `taskDefinition` (REFERENCE.md). Exactly READ_ONLY_KEYS are removed and nothing
    else; the `image` of each container named in `images` is replaced; `settings` (environment
    variables and secret references, `deployer.settings.merge`) are set in the containers they
    name; tags are kept except the reserved `aws:` ones, and `tags` is omitted when none remain
    because ECS refuses an empty list. The request is a deep copy: the input is never changed. It
    is built even when nothing changes; `images_already_match` lets a caller skip registering.
    """
    definition = _task_definition_of(described)
    _check_images(images, settings)
    _require_containers(definition, images, settings)
    return _clone(described, definition, images, settings)


def _clone(
    described: Mapping[str, Any],
    definition: Mapping[str, Any],
    images: Mapping[str, str],
    settings: DeploySettings | None,
) -> dict[str, Any]:
    request = {key: copy.deepcopy(value) for key, value in definition.items() if key not in READ_ONLY_KEYS}
    for container in request.get("containerDefinitions") or ():
        name = container.get("name")
        if name in images:
            container["image"] = images[name]
    if settings:
        merge_settings(request, settings)
    tags = settable_tags(described.get("tags"))
    if tags:
        request["tags"] = tags
    return request


def clone_problems(
    described: Mapping[str, Any], images: Mapping[str, str], settings: DeploySettings | None = None
) -> list[str]:
    """Every reason `clone_for_images(described, images, settings)` must not be registered: the
    containers it names that the task definition lacks, secrets without a task execution role, a
    clone above ECS's task definition size limit. Empty: register it. Lets a stage refuse with
    every problem at once, before any change."""
    definition = _task_definition_of(described)
    chosen = settings or DeploySettings()
    return deploy_problems(
        definition, chosen, image_containers=images, request=_clone(described, definition, images, chosen)
    )


def changed_settings(described: Mapping[str, Any], settings: DeploySettings) -> list[SettingChange]:
    """The environment variables and secrets `settings` would add, change or remove in the running
    revision `described`, container by container (secrets by reference, never by value)."""
    definition = _task_definition_of(described)
    _require_containers(definition, {}, settings)
    after = {"containerDefinitions": copy.deepcopy(list(definition.get("containerDefinitions") or ()))}
    merge_settings(after, settings)
    return setting_changes(definition, after)


def changed_images(described: Mapping[str, Any], images: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Container name -> (old image, new image) for the named containers whose image changes,
    in the task definition's order: the diff a Slack message or a log line shows."""
    definition = _task_definition_of(described)
    _require_containers(definition, images)
    changes: dict[str, tuple[str, str]] = {}
    for container in definition.get("containerDefinitions") or ():
        name = container.get("name")
        if name in images and container.get("image") != images[name]:
            changes[name] = (str(container.get("image", "")), images[name])
    return changes


def images_already_match(described: Mapping[str, Any], images: Mapping[str, str]) -> bool:
    """True when every named container already runs the requested image, so registering a
    clone would only add an identical revision."""
    return not changed_images(described, images)


def _task_definition_of(described: Mapping[str, Any]) -> Mapping[str, Any]:
    definition = described.get("taskDefinition")
    if not isinstance(definition, Mapping):
        raise TypeError(
            "expected a DescribeTaskDefinition response with 'taskDefinition' (and 'tags' beside it), "
            f"got keys {sorted(described)}"
        )
    return definition


def _check_images(images: Mapping[str, str], settings: DeploySettings | None = None) -> None:
    if not images and not settings:
        raise BadInput("no container image given: name at least one container and its IMAGE_URI")
    for container, uri in images.items():
        try:
            parse_image_uri(uri)
        except InvalidImageUri as error:
            raise InvalidImageUri(uri, error.reason, container=container) from None


def _require_containers(
    definition: Mapping[str, Any], images: Mapping[str, str], settings: DeploySettings | None = None
) -> None:
    present = [str(container.get("name")) for container in definition.get("containerDefinitions") or ()]
    named = dict.fromkeys([*images, *(settings.containers if settings else ())])
    missing = [name for name in named if name not in present]
    if missing:
        raise ContainerNotFound(missing, present, definition.get("taskDefinitionArn"))
