"""Cloning a task definition for new images (REFERENCE.md, "Cloning a task definition")."""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError, ParamValidationError
from botocore.model import Shape, StructureShape
from botocore.stub import Stubber
from botocore.validate import validate_parameters
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from deployer.errors import BadInput, DeploymentError, TransientError
from deployer.taskdef.clone import (
    READ_ONLY_KEYS,
    ContainerNotFound,
    ImageUri,
    InvalidImageUri,
    changed_images,
    clone_for_images,
    images_already_match,
    parse_image_uri,
    settable_tags,
)
from deployer.taskdef.register import (
    RegisteredTaskDefinition,
    TaskDefinitionNotFound,
    TaskDefinitionRefused,
    describe_task_definition,
    register_clone,
    register_clone_of,
)
from tests.support.taskdefs import (
    LOG_ROUTER_IMAGE,
    OTEL_IMAGE,
    REGION,
    REGISTRY,
    TEAM_TAGS,
    WEB_ARN,
    WEB_FAMILY,
    WEB_IMAGE,
    WORKER_ARN,
    deleted_revision_response,
    ec2_worker_response,
    fargate_web_response,
)

pytestmark = pytest.mark.unit

NEW_WEB_IMAGE = f"{REGISTRY}/shop/web:1.42.0"
NEW_WORKER_IMAGE = f"{REGISTRY}/shop/worker@sha256:{'a1' * 32}"

# REFERENCE.md, "Cloning a task definition": the keys DescribeTaskDefinition returns and
# RegisterTaskDefinition refuses. Spelled out here so the test does not trust the constant.
REFERENCE_READ_ONLY = {
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


def _structure(shape: Shape | None) -> StructureShape:
    assert isinstance(shape, StructureShape)
    return shape


ECS_MODEL = botocore.session.get_session().get_service_model("ecs")
REGISTER_INPUT = _structure(ECS_MODEL.operation_model("RegisterTaskDefinition").input_shape)
DESCRIBE_OUTPUT = _structure(ECS_MODEL.operation_model("DescribeTaskDefinition").output_shape)
TASK_DEFINITION_SHAPE = _structure(ECS_MODEL.shape_for("TaskDefinition"))
CONTAINER_DEFINITION_SHAPE = _structure(ECS_MODEL.shape_for("ContainerDefinition"))


def _without(mapping: Mapping[str, Any], keys: set[str] | frozenset[str]) -> dict[str, Any]:
    return {key: value for key, value in mapping.items() if key not in keys}


def _containers_by_name(definition: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {container["name"]: container for container in definition["containerDefinitions"]}


# --- READ_ONLY_KEYS against the botocore model ----------------------------------------------


def test_read_only_keys_are_the_reference_list() -> None:
    # GIVEN the list in REFERENCE.md / WHEN compared with the constant / THEN they are equal
    assert READ_ONLY_KEYS == REFERENCE_READ_ONLY


def test_every_output_only_key_of_botocore_is_read_only() -> None:
    """Fails when a botocore upgrade adds a key that DescribeTaskDefinition returns and
    RegisterTaskDefinition does not accept: the clone would carry it and botocore would refuse
    the request. Decide whether it belongs in READ_ONLY_KEYS (and REFERENCE.md)."""
    # GIVEN the task definition returned by DescribeTaskDefinition and RegisterTaskDefinition's input
    output_keys = set(TASK_DEFINITION_SHAPE.members)
    input_keys = set(REGISTER_INPUT.members)

    # WHEN the keys only the output has are listed
    output_only = output_keys - input_keys

    # THEN each is a read-only key we remove
    unknown = sorted(output_only - READ_ONLY_KEYS)
    assert unknown == [], (
        f"botocore {botocore.__version__}: DescribeTaskDefinition returns {unknown}, which "
        "RegisterTaskDefinition does not accept; add them to READ_ONLY_KEYS (and REFERENCE.md) or copy them"
    )


def test_no_read_only_key_became_settable() -> None:
    """Fails when RegisterTaskDefinition starts accepting a key we remove: the clone would
    silently drop a field the user set."""
    # GIVEN RegisterTaskDefinition's input / WHEN intersected with READ_ONLY_KEYS / THEN nothing
    assert READ_ONLY_KEYS & set(REGISTER_INPUT.members) == set()


def test_read_only_keys_all_exist_in_the_model() -> None:
    # GIVEN the TaskDefinition output shape / WHEN READ_ONLY_KEYS is checked / THEN no name is a typo
    assert set(TASK_DEFINITION_SHAPE.members) >= READ_ONLY_KEYS


def test_shared_keys_use_the_same_shapes_on_both_sides() -> None:
    """Nested structures (containerDefinitions, volumes...) are copied as they are: safe only
    while the output and the input use the same shapes."""
    # GIVEN the keys both sides have
    shared = set(TASK_DEFINITION_SHAPE.members) & set(REGISTER_INPUT.members)

    # WHEN their shapes are compared
    different = {key for key in shared if TASK_DEFINITION_SHAPE.members[key].name != REGISTER_INPUT.members[key].name}

    # THEN none differs
    assert shared
    assert different == set()


def test_describe_returns_tags_beside_the_task_definition() -> None:
    # GIVEN DescribeTaskDefinition's output (REFERENCE.md: include=['TAGS'] puts tags beside it)
    # WHEN its members are listed / THEN exactly these two exist, and tags are not inside
    assert set(DESCRIBE_OUTPUT.members) == {"taskDefinition", "tags"}
    assert "tags" not in TASK_DEFINITION_SHAPE.members


# --- clone_for_images -----------------------------------------------------------------------


def test_fixture_carries_every_read_only_key() -> None:
    # GIVEN the deleted revision fixture / WHEN its keys are read / THEN all nine are there
    assert set(deleted_revision_response()["taskDefinition"]) >= REFERENCE_READ_ONLY


def test_clone_keeps_every_field_except_the_read_only_ones() -> None:
    # GIVEN a revision carrying every read-only key and many optional fields
    described = deleted_revision_response()
    definition = described["taskDefinition"]

    # WHEN it is cloned for a new web image
    clone = clone_for_images(described, {"web": NEW_WEB_IMAGE})

    # THEN the request is the definition minus exactly the read-only keys, with the image and tags
    expected = _without(copy.deepcopy(definition), REFERENCE_READ_ONLY)
    expected["containerDefinitions"][0]["image"] = NEW_WEB_IMAGE
    expected["tags"] = TEAM_TAGS
    assert clone == expected
    for key in ("pidMode", "ephemeralStorage", "runtimePlatform", "volumes", "enableFaultInjection"):
        assert clone[key] == definition[key]


def test_clone_keeps_ipc_mode_and_proxy_configuration() -> None:
    # GIVEN an EC2 worker with ipcMode, pidMode, proxyConfiguration and placementConstraints
    described = ec2_worker_response()

    # WHEN it is cloned
    clone = clone_for_images(described, {"worker": NEW_WORKER_IMAGE})

    # THEN those fields survive (an allow-list would drop them, REFERENCE.md)
    definition = described["taskDefinition"]
    for key in ("ipcMode", "pidMode", "proxyConfiguration", "placementConstraints", "memory"):
        assert clone[key] == definition[key]
    assert set(clone) == (set(definition) - REFERENCE_READ_ONLY) | {"tags"}


@pytest.mark.parametrize(
    ("described", "images"),
    [
        (fargate_web_response(), {"web": NEW_WEB_IMAGE}),
        (deleted_revision_response(), {"web": NEW_WEB_IMAGE, "otel-collector": OTEL_IMAGE}),
        (ec2_worker_response(), {"worker": NEW_WORKER_IMAGE}),
    ],
)
def test_clone_is_a_valid_register_request(described: dict[str, Any], images: dict[str, str]) -> None:
    # GIVEN a described task definition / WHEN cloned
    clone = clone_for_images(described, images)

    # THEN botocore's own validator accepts it as RegisterTaskDefinition input
    validate_parameters(clone, REGISTER_INPUT)


def test_botocore_refuses_a_read_only_key() -> None:
    """The premise of READ_ONLY_KEYS: botocore refuses them before any request is sent."""
    # GIVEN a clone with one read-only key put back
    request = clone_for_images(fargate_web_response(), {"web": NEW_WEB_IMAGE})
    request["deleteRequestedAt"] = deleted_revision_response()["taskDefinition"]["deleteRequestedAt"]

    # WHEN validated / THEN botocore refuses it
    with pytest.raises(ParamValidationError, match="deleteRequestedAt"):
        validate_parameters(request, REGISTER_INPUT)


def test_clone_swaps_only_the_named_containers() -> None:
    # GIVEN a task definition with three containers
    described = fargate_web_response()

    # WHEN two of them get new images
    new_otel = "public.ecr.aws/aws-observability/aws-otel-collector:v0.42.0"
    clone = clone_for_images(described, {"web": NEW_WEB_IMAGE, "otel-collector": new_otel})

    # THEN those two change, the third keeps its image, and nothing else in any container changes
    containers = _containers_by_name(clone)
    assert containers["web"]["image"] == NEW_WEB_IMAGE
    assert containers["otel-collector"]["image"] == new_otel
    assert containers["log-router"]["image"] == LOG_ROUTER_IMAGE
    before = _containers_by_name(described["taskDefinition"])
    for name, container in containers.items():
        assert _without(container, {"image"}) == _without(before[name], {"image"})
    assert [container["name"] for container in clone["containerDefinitions"]] == [
        "web",
        "log-router",
        "otel-collector",
    ]


def test_clone_drops_aws_tags_and_keeps_the_others() -> None:
    # GIVEN tags with a CloudFormation `aws:` tag / WHEN cloned
    clone = clone_for_images(fargate_web_response(), {"web": NEW_WEB_IMAGE})

    # THEN only the settable tags remain, in order
    assert clone["tags"] == TEAM_TAGS


@pytest.mark.parametrize(
    "tags",
    [
        pytest.param([{"key": "aws:cloudformation:stack-name", "value": "shop"}], id="only-aws-tags"),
        pytest.param([], id="empty"),
        pytest.param(None, id="absent"),
    ],
)
def test_clone_omits_tags_when_none_remain(tags: list[dict[str, str]] | None) -> None:
    # GIVEN a response whose tags leave nothing settable (ECS refuses an empty list, REFERENCE.md)
    described = fargate_web_response()
    if tags is None:
        del described["tags"]
    else:
        described["tags"] = tags

    # WHEN cloned
    clone = clone_for_images(described, {"web": NEW_WEB_IMAGE})

    # THEN the request has no `tags` key at all
    assert "tags" not in clone


@pytest.mark.parametrize(
    ("key", "kept"),
    [
        ("aws:cloudformation:stack-name", False),
        ("AWS:servicecatalog:productArn", False),
        ("Aws:Custom", False),
        ("aws-team", True),
        ("team", True),
        ("my:aws:thing", True),
    ],
)
def test_settable_tags_drops_reserved_keys_in_any_case(key: str, kept: bool) -> None:
    # GIVEN one tag (ECS reserves `aws:` in any upper or lower case combination)
    tags = [{"key": key, "value": "x"}]

    # WHEN filtered / THEN it is kept only if its key has no reserved prefix
    assert settable_tags(tags) == (tags if kept else [])


def test_settable_tags_keeps_a_value_that_starts_with_aws() -> None:
    """A user tag was accepted when the revision was registered; dropping it may break
    tag-enforcing policies (REFERENCE.md), so only reserved keys are filtered."""
    # GIVEN a user tag whose value starts with aws: / WHEN filtered / THEN it stays
    tags = [{"key": "source", "value": "aws:codecommit"}]
    assert settable_tags(tags) == tags


def test_clone_never_mutates_its_input() -> None:
    # GIVEN a described task definition and a snapshot of it
    described = deleted_revision_response()
    snapshot = copy.deepcopy(described)

    # WHEN it is cloned and the clone is then changed deep inside
    clone = clone_for_images(described, {"web": NEW_WEB_IMAGE})
    clone["containerDefinitions"][0]["environment"].append({"name": "X", "value": "1"})
    clone["volumes"][0]["efsVolumeConfiguration"]["rootDirectory"] = "/changed"
    clone["tags"][0]["value"] = "changed"

    # THEN the input is exactly as before
    assert described == snapshot


def test_missing_container_names_it_and_lists_those_present() -> None:
    # GIVEN a task definition without an `api` container
    described = fargate_web_response()

    # WHEN a clone is asked for `api`
    with pytest.raises(ContainerNotFound) as raised:
        clone_for_images(described, {"web": NEW_WEB_IMAGE, "api": NEW_WEB_IMAGE})

    # THEN the error names the missing container, the task definition and every container present
    assert str(raised.value) == (
        f"container 'api' is not in {WEB_ARN}; its containers are: 'web', 'log-router', 'otel-collector'"
    )
    assert isinstance(raised.value, DeploymentError)
    assert raised.value.missing == ("api",)


def test_several_missing_containers_are_all_named() -> None:
    # GIVEN two unknown names / WHEN cloning / THEN both are reported at once
    with pytest.raises(ContainerNotFound, match=r"containers 'api', 'cron' are not in"):
        clone_for_images(fargate_web_response(), {"api": NEW_WEB_IMAGE, "cron": NEW_WEB_IMAGE})


def test_clone_refuses_an_invalid_image_and_names_the_container() -> None:
    # GIVEN an image reference without a tag or digest / WHEN cloning
    with pytest.raises(InvalidImageUri) as raised:
        clone_for_images(fargate_web_response(), {"web": f"{REGISTRY}/shop/web"})

    # THEN the error is bad input and says which container and what a valid IMAGE_URI is
    assert isinstance(raised.value, BadInput)
    assert "for container 'web'" in str(raised.value)
    assert "A valid IMAGE_URI is" in str(raised.value)


def test_clone_refuses_no_images() -> None:
    # GIVEN no image at all / WHEN cloning / THEN it is refused as bad input
    with pytest.raises(BadInput, match="no container image given"):
        clone_for_images(fargate_web_response(), {})


def test_clone_refuses_a_bare_task_definition() -> None:
    # GIVEN the inner taskDefinition instead of the whole response (tags would be lost)
    # WHEN cloning / THEN it says what it expected
    with pytest.raises(TypeError, match="DescribeTaskDefinition response"):
        clone_for_images(fargate_web_response()["taskDefinition"], {"web": NEW_WEB_IMAGE})


def test_clone_is_returned_even_when_images_already_match() -> None:
    # GIVEN a request for the images the containers already run
    described = fargate_web_response()
    images = {"web": WEB_IMAGE, "log-router": LOG_ROUTER_IMAGE}

    # WHEN cloned and compared
    clone = clone_for_images(described, images)

    # THEN the clone is the unchanged definition (the caller decides) and the helper says so
    assert clone == {**_without(described["taskDefinition"], REFERENCE_READ_ONLY), "tags": TEAM_TAGS}
    assert images_already_match(described, images) is True
    assert changed_images(described, images) == {}


def test_images_do_not_match_when_one_differs() -> None:
    # GIVEN one container unchanged and one changed / WHEN compared / THEN they do not match
    images = {"web": NEW_WEB_IMAGE, "log-router": LOG_ROUTER_IMAGE}
    assert images_already_match(fargate_web_response(), images) is False


def test_changed_images_lists_old_and_new_in_task_definition_order() -> None:
    # GIVEN new images for two containers, one of them unchanged, named out of order
    new_otel = "public.ecr.aws/aws-observability/aws-otel-collector:v0.42.0"
    images = {"otel-collector": new_otel, "log-router": LOG_ROUTER_IMAGE, "web": NEW_WEB_IMAGE}

    # WHEN the changes are listed
    changes = changed_images(fargate_web_response(), images)

    # THEN only the changed ones appear, as (old, new), in the task definition's order
    assert list(changes.items()) == [
        ("web", (WEB_IMAGE, NEW_WEB_IMAGE)),
        ("otel-collector", (OTEL_IMAGE, new_otel)),
    ]


def test_changed_images_fails_for_a_missing_container() -> None:
    # GIVEN an unknown container / WHEN diffing / THEN it fails like the clone does
    with pytest.raises(ContainerNotFound, match="'api'"):
        changed_images(fargate_web_response(), {"api": NEW_WEB_IMAGE})


# --- property: whatever the task definition, only named images change ----------------------

_SCALARS = st.none() | st.booleans() | st.integers() | st.text("abc:/-_ ", max_size=8)
_JSON = (
    _SCALARS
    | st.lists(_SCALARS, max_size=3)
    | st.dictionaries(st.sampled_from(["name", "value", "options", "x"]), _SCALARS | st.lists(_SCALARS, max_size=2))
)
_SETTABLE_KEYS = sorted(set(REGISTER_INPUT.members) - {"family", "containerDefinitions", "tags"})
_CONTAINER_KEYS = sorted(set(CONTAINER_DEFINITION_SHAPE.members) - {"name", "image"})
_LOWER = "abcdefghijklmnopqrstuvwxyz"
_LOWER_ALNUM = _LOWER + "0123456789"
_NAMES = st.builds(str.__add__, st.sampled_from(_LOWER), st.text(_LOWER_ALNUM + "-", max_size=10))
_ALNUM_RUNS = st.text(_LOWER_ALNUM, min_size=1, max_size=6)
# Docker's path component: alphanumeric runs joined by ".", "_", "__" or dashes.
_PATH_COMPONENTS = st.builds(
    lambda head, tail: head + "".join(separator + run for separator, run in tail),
    _ALNUM_RUNS,
    st.lists(st.tuples(st.sampled_from([".", "_", "__", "-", "--"]), _ALNUM_RUNS), max_size=2),
)
_TAGS = st.builds(
    str.__add__,
    st.sampled_from(_LOWER_ALNUM + "_ABCZ"),
    st.text(_LOWER_ALNUM + "_.-ABCZ", max_size=20),
)
_DIGESTS = st.binary(min_size=32, max_size=32).map(lambda raw: f"sha256:{raw.hex()}")


@st.composite
def _image_uris(draw: st.DrawFn) -> str:
    registry = draw(
        st.sampled_from([None, REGISTRY, "public.ecr.aws", "ghcr.io", "localhost:5000", "registry.example.com:8443"])
    )
    parts = draw(st.lists(_PATH_COMPONENTS, min_size=1, max_size=3))
    if registry is None and len(parts) > 1:
        parts[0] = parts[0].replace(".", "x")  # a dot would make it a registry host
    tag = draw(st.none() | _TAGS)
    digest = draw(st.none() | _DIGESTS)
    if tag is None and digest is None:
        tag = "1.0.0"
    uri = "/".join(parts) if registry is None else f"{registry}/{'/'.join(parts)}"
    return uri + (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")


@st.composite
def _described_and_images(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, str]]:
    names = draw(st.lists(_NAMES, min_size=1, max_size=4, unique=True))
    containers = [
        {
            "name": name,
            "image": draw(_image_uris()),
            **draw(st.dictionaries(st.sampled_from(_CONTAINER_KEYS), _JSON, max_size=3)),
        }
        for name in names
    ]
    definition: dict[str, Any] = {
        "family": draw(_NAMES),
        "containerDefinitions": containers,
        **draw(st.dictionaries(st.sampled_from(_SETTABLE_KEYS), _JSON, max_size=6)),
        **draw(st.dictionaries(st.sampled_from(sorted(READ_ONLY_KEYS)), _JSON, max_size=9)),
    }
    tag_keys = st.one_of(_NAMES, _NAMES.map("aws:{}".format), _NAMES.map("AWS:{}".format))
    described: dict[str, Any] = {"taskDefinition": definition}
    tags = draw(st.none() | st.lists(st.fixed_dictionaries({"key": tag_keys, "value": st.text(max_size=5)})))
    if tags is not None:
        described["tags"] = tags
    chosen = draw(st.lists(st.sampled_from(names), min_size=1, unique=True))
    images = {name: draw(_image_uris()) for name in chosen}
    return described, images


# Generation, not the code under test, is what is slow on a loaded machine: no timing checks.
_LOADED_MACHINE = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_LOADED_MACHINE
@given(_described_and_images())
def test_clone_keeps_every_settable_key_and_changes_only_named_images(
    case: tuple[dict[str, Any], dict[str, str]],
) -> None:
    # GIVEN any task definition, its tags and new images for some of its containers
    described, images = case
    snapshot = copy.deepcopy(described)
    definition = described["taskDefinition"]

    # WHEN cloned
    clone = clone_for_images(described, images)

    # THEN every key but the read-only ones is kept with its value, containers aside
    assert set(clone) - {"tags"} == set(definition) - READ_ONLY_KEYS
    for key in set(definition) - READ_ONLY_KEYS - {"containerDefinitions"}:
        assert clone[key] == definition[key]
    # AND each container differs at most by the image, which is the requested one when named
    assert len(clone["containerDefinitions"]) == len(definition["containerDefinitions"])
    for after, before in zip(clone["containerDefinitions"], definition["containerDefinitions"], strict=True):
        assert _without(after, {"image"}) == _without(before, {"image"})
        assert after["image"] == images.get(before["name"], before["image"])
    # AND the tags are the non-reserved ones, never an empty list
    kept = [tag for tag in described.get("tags") or [] if not tag["key"].lower().startswith("aws:")]
    assert clone.get("tags") == (kept or None)
    # AND the input is untouched
    assert described == snapshot


@_LOADED_MACHINE
@given(_image_uris())
def test_generated_image_uris_parse_and_print_back(uri: str) -> None:
    # GIVEN a well-formed reference / WHEN parsed / THEN it prints back unchanged
    parsed = parse_image_uri(uri)
    assert str(parsed) == uri
    assert parsed.tag is not None or parsed.digest is not None


# --- parse_image_uri ------------------------------------------------------------------------

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param(
            f"{REGISTRY}/shop/web:1.42.0",
            ImageUri(REGISTRY, "shop/web", "1.42.0", None),
            id="ecr-by-tag",
        ),
        pytest.param(
            f"{REGISTRY}/shop/web@{DIGEST}",
            ImageUri(REGISTRY, "shop/web", None, DIGEST),
            id="ecr-by-digest",
        ),
        pytest.param(
            f"{REGISTRY}/web:v1.2.3-RC_1@{DIGEST}",
            ImageUri(REGISTRY, "web", "v1.2.3-RC_1", DIGEST),
            id="ecr-tag-and-digest",
        ),
        pytest.param(
            "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com/app:1",
            ImageUri("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "app", "1", None),
            id="ecr-fips",
        ),
        pytest.param(
            "public.ecr.aws/nginx/nginx:1.27-alpine",
            ImageUri("public.ecr.aws", "nginx/nginx", "1.27-alpine", None),
            id="ecr-public",
        ),
        pytest.param("nginx:1.27", ImageUri(None, "nginx", "1.27", None), id="docker-hub-official"),
        pytest.param(
            "amazon/amazon-ecs-agent:latest",
            ImageUri(None, "amazon/amazon-ecs-agent", "latest", None),
            id="docker-hub-org",
        ),
        pytest.param(
            "ghcr.io/my-org/my_app__x/api@" + DIGEST,
            ImageUri("ghcr.io", "my-org/my_app__x/api", None, DIGEST),
            id="ghcr-nested",
        ),
        pytest.param(
            "localhost:5000/dev/app:wip",
            ImageUri("localhost:5000", "dev/app", "wip", None),
            id="registry-with-port",
        ),
        pytest.param(
            "Registry.Example.com/team/app:2",
            ImageUri("Registry.Example.com", "team/app", "2", None),
            id="registry-host-case-is-free",
        ),
    ],
)
def test_parse_valid_image_uris(uri: str, expected: ImageUri) -> None:
    # GIVEN a valid reference / WHEN parsed / THEN its parts are found and it prints back
    parsed = parse_image_uri(uri)
    assert parsed == expected
    assert str(parsed) == uri


def test_ecr_location_is_read_from_the_registry() -> None:
    # GIVEN a private ECR image and a public one / WHEN parsed
    private = parse_image_uri(f"{REGISTRY}/shop/web:1")
    public = parse_image_uri("public.ecr.aws/nginx/nginx:1")

    # THEN only the private one has an account and a region
    assert (private.ecr_account_id, private.ecr_region) == ("123456789012", REGION)
    assert (public.ecr_account_id, public.ecr_region) == (None, None)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        pytest.param("", "it is empty", id="empty"),
        pytest.param(" ", "whitespace", id="blank"),
        pytest.param(f"{REGISTRY}/web :1", "whitespace", id="inner-space"),
        pytest.param(f"{REGISTRY}/web:1\n", "whitespace", id="trailing-newline"),
        pytest.param(f"{REGISTRY}/Shop/web:1", "must be lowercase", id="uppercase-repository"),
        pytest.param("MyApp:1", "must be lowercase", id="uppercase-hub-name"),
        pytest.param(f"{REGISTRY}/web@sha256:{'a' * 63}", "64 lowercase hex", id="digest-too-short"),
        pytest.param(f"{REGISTRY}/web@sha256:{'a' * 65}", "64 lowercase hex", id="digest-too-long"),
        pytest.param(f"{REGISTRY}/web@sha256:{'A' * 64}", "64 lowercase hex", id="digest-uppercase"),
        pytest.param(f"{REGISTRY}/web@sha256:{'g' * 64}", "64 lowercase hex", id="digest-not-hex"),
        pytest.param(f"{REGISTRY}/web@sha512:{'a' * 128}", "64 lowercase hex", id="digest-not-sha256"),
        pytest.param(f"{REGISTRY}/web@", "64 lowercase hex", id="digest-empty"),
        pytest.param("latest", "neither a tag nor a digest", id="latest-alone"),
        pytest.param(":latest", "no repository", id="tag-without-repository"),
        pytest.param(f"@{DIGEST}", "no repository", id="digest-without-repository"),
        pytest.param(f"{REGISTRY}/web", "neither a tag nor a digest", id="no-tag-no-digest"),
        pytest.param(f"{REGISTRY}/web:", "a tag is", id="empty-tag"),
        pytest.param(f"{REGISTRY}/web:-rc", "a tag is", id="tag-starts-with-dash"),
        pytest.param(f"{REGISTRY}/web:{'v' * 129}", "a tag is", id="tag-too-long"),
        pytest.param(f"{REGISTRY}/web:1:2", "not a valid repository", id="two-tags"),
        pytest.param(f"{REGISTRY}//web:1", "not a valid repository", id="empty-path-component"),
        pytest.param(f"{REGISTRY}/web/:1", "not a valid repository", id="trailing-slash"),
        pytest.param(f"{REGISTRY}/-web:1", "not a valid repository", id="component-starts-with-dash"),
        pytest.param("https://ghcr.io/org/app:1", "not a valid registry host", id="url-scheme"),
        pytest.param("-bad.example.com/app:1", "not a valid registry host", id="bad-host"),
        pytest.param(f"{REGISTRY}/{'a' * 250}:1", "at most 255", id="too-long"),
    ],
)
def test_parse_invalid_image_uris(uri: str, reason: str) -> None:
    # GIVEN an invalid reference / WHEN parsed
    with pytest.raises(InvalidImageUri) as raised:
        parse_image_uri(uri)

    # THEN the reason is given along with what a valid IMAGE_URI looks like
    assert reason in raised.value.reason
    assert "A valid IMAGE_URI is [registry/]repository[:tag][@sha256:<64 hex digits>]" in str(raised.value)
    assert isinstance(raised.value, BadInput)


def test_a_digest_does_not_count_towards_the_length_limit() -> None:
    # GIVEN 255 characters before the digest (ECS counts only what precedes the `@`)
    name = f"{REGISTRY}/{'a' * (255 - len(REGISTRY) - 1)}"
    assert len(name) == 255

    # WHEN parsed with a digest / THEN it is accepted
    assert parse_image_uri(f"{name}@{DIGEST}").digest == DIGEST


def test_a_very_long_invalid_uri_is_shortened_in_the_message() -> None:
    # GIVEN a huge bogus value / WHEN parsed / THEN the message does not echo all of it
    with pytest.raises(InvalidImageUri) as raised:
        parse_image_uri("x" * 10_000)
    assert len(str(raised.value)) < 1_000


# --- register_clone with botocore's Stubber: the exact requests -----------------------------


@pytest.fixture
def ecs_stub() -> Iterator[tuple[Any, Stubber]]:
    client = boto3.client("ecs", region_name=REGION)
    with Stubber(client) as stubber:
        yield client, stubber
        stubber.assert_no_pending_responses()


def _registered(family: str, revision: int) -> dict[str, Any]:
    described = fargate_web_response()["taskDefinition"]
    return {
        "taskDefinition": {
            **described,
            "taskDefinitionArn": f"arn:aws:ecs:{REGION}:123456789012:task-definition/{family}:{revision}",
            "revision": revision,
        },
        "tags": TEAM_TAGS,
    }


def test_register_clone_sends_exactly_the_clone(ecs_stub: tuple[Any, Stubber]) -> None:
    client, stubber = ecs_stub
    # GIVEN ECS describes the web service's revision 41 with its tags
    described = fargate_web_response()
    stubber.add_response(
        "describe_task_definition",
        described,
        expected_params={"taskDefinition": WEB_ARN, "include": ["TAGS"]},
    )
    # AND expects this exact RegisterTaskDefinition request: no read-only key, new image, tags kept
    definition = described["taskDefinition"]
    expected_request = {
        "family": WEB_FAMILY,
        "taskRoleArn": definition["taskRoleArn"],
        "executionRoleArn": definition["executionRoleArn"],
        "networkMode": "awsvpc",
        "containerDefinitions": [
            {**definition["containerDefinitions"][0], "image": NEW_WEB_IMAGE},
            definition["containerDefinitions"][1],
            definition["containerDefinitions"][2],
        ],
        "volumes": definition["volumes"],
        "placementConstraints": [],
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "1024",
        "memory": "2048",
        "pidMode": "task",
        "ephemeralStorage": {"sizeInGiB": 40},
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "enableFaultInjection": False,
        "tags": [{"key": "team", "value": "storefront"}, {"key": "cost-center", "value": "cc-4711"}],
    }
    stubber.add_response("register_task_definition", _registered(WEB_FAMILY, 42), expected_request)

    # WHEN the clone is registered
    registered = register_clone(client, WEB_ARN, {"web": NEW_WEB_IMAGE})

    # THEN the new revision and the one it came from are returned
    assert registered == RegisteredTaskDefinition(
        arn=f"arn:aws:ecs:{REGION}:123456789012:task-definition/{WEB_FAMILY}:42",
        family=WEB_FAMILY,
        revision=42,
        previous_arn=WEB_ARN,
    )


def test_register_clone_of_a_deleted_revision(ecs_stub: tuple[Any, Stubber]) -> None:
    client, stubber = ecs_stub
    # GIVEN a revision being deleted (rolling back to it), carrying deregisteredAt and deleteRequestedAt
    described = deleted_revision_response()
    stubber.add_response("describe_task_definition", described, {"taskDefinition": WEB_ARN, "include": ["TAGS"]})
    expected_request = {
        **_without(described["taskDefinition"], REFERENCE_READ_ONLY),
        "tags": TEAM_TAGS,
    }
    stubber.add_response("register_task_definition", _registered(WEB_FAMILY, 42), expected_request)

    # WHEN registered with the images it already has / THEN a new revision comes back
    registered = register_clone(client, WEB_ARN, {"web": WEB_IMAGE})
    assert registered.revision == 42
    assert registered.previous_arn == WEB_ARN


def test_register_clone_of_skips_describing_again(ecs_stub: tuple[Any, Stubber]) -> None:
    client, stubber = ecs_stub
    # GIVEN a caller that described already (to diff images) and only RegisterTaskDefinition stubbed
    described = ec2_worker_response()
    expected_request = clone_for_images(described, {"worker": NEW_WORKER_IMAGE})
    assert expected_request["ipcMode"] == "task"
    stubber.add_response("register_task_definition", _registered("shop-worker", 8), expected_request)

    # WHEN it registers from that response
    registered = register_clone_of(client, described, {"worker": NEW_WORKER_IMAGE})

    # THEN one call is made and the previous revision is the described one
    assert registered.previous_arn == WORKER_ARN


def test_a_missing_container_stops_before_registering(ecs_stub: tuple[Any, Stubber]) -> None:
    client, stubber = ecs_stub
    # GIVEN only DescribeTaskDefinition is stubbed (any other call would fail the Stubber)
    stubber.add_response(
        "describe_task_definition", fargate_web_response(), {"taskDefinition": WEB_ARN, "include": ["TAGS"]}
    )

    # WHEN the deploy names a container that does not exist / THEN it fails loudly
    with pytest.raises(ContainerNotFound, match="'api'"):
        register_clone(client, WEB_ARN, {"api": NEW_WEB_IMAGE})


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ClientException", 400, TaskDefinitionNotFound),
        ("InvalidParameterException", 400, TaskDefinitionNotFound),
        ("ThrottlingException", 400, TransientError),
        ("ServerException", 500, TransientError),
    ],
)
def test_describe_errors_become_domain_errors(
    ecs_stub: tuple[Any, Stubber], code: str, status: int, expected: type[Exception]
) -> None:
    client, stubber = ecs_stub
    # GIVEN DescribeTaskDefinition fails with an AWS error code
    stubber.add_client_error(
        "describe_task_definition",
        service_error_code=code,
        service_message="Unable to describe task definition.",
        http_status_code=status,
    )

    # WHEN registering a clone / THEN the code maps to the domain outcome, naming the task definition
    with pytest.raises(expected, match=WEB_FAMILY):
        register_clone(client, WEB_ARN, {"web": NEW_WEB_IMAGE})


@pytest.mark.parametrize(
    ("code", "status", "expected", "text"),
    [
        ("AccessDeniedException", 400, TaskDefinitionRefused, "ecs:TagResource"),
        ("ClientException", 400, TaskDefinitionRefused, "Fargate requires task definition to have"),
        ("ThrottlingException", 400, TransientError, "ThrottlingException"),
        ("ServerException", 500, TransientError, "ServerException"),
    ],
)
def test_register_errors_become_domain_errors(
    ecs_stub: tuple[Any, Stubber], code: str, status: int, expected: type[Exception], text: str
) -> None:
    client, stubber = ecs_stub
    # GIVEN a described revision and a RegisterTaskDefinition that fails
    stubber.add_response(
        "describe_task_definition", fargate_web_response(), {"taskDefinition": WEB_ARN, "include": ["TAGS"]}
    )
    stubber.add_client_error(
        "register_task_definition",
        service_error_code=code,
        service_message="Fargate requires task definition to have execution role ARN",
        http_status_code=status,
    )

    # WHEN registering / THEN the error says what happened (and which permission tags need)
    with pytest.raises(expected, match=text):
        register_clone(client, WEB_ARN, {"web": NEW_WEB_IMAGE})


def test_an_unknown_output_key_is_refused_with_its_name() -> None:
    """What happens if ECS starts returning a key READ_ONLY_KEYS does not know yet: botocore
    refuses the request before sending it, and the release fails naming the key."""
    # GIVEN a client that must not send anything
    client = boto3.client("ecs", region_name=REGION)

    def sent(**_: Any) -> None:
        raise AssertionError("the request reached the network")

    client.meta.events.register("before-send.ecs.RegisterTaskDefinition", sent)
    # AND a described revision with a key RegisterTaskDefinition does not accept
    described = fargate_web_response()
    described["taskDefinition"]["futureOutputOnlyKey"] = "x"

    # WHEN its clone is registered / THEN it is refused, naming the key
    with pytest.raises(TaskDefinitionRefused, match="futureOutputOnlyKey"):
        register_clone_of(client, described, {"web": NEW_WEB_IMAGE})


def test_a_connection_failure_is_transient() -> None:
    # GIVEN a client whose requests never reach ECS (no retry, nothing sent on the network)
    client = boto3.client("ecs", region_name=REGION, config=Config(retries={"total_max_attempts": 1}))

    def unreachable(**_: Any) -> None:
        raise EndpointConnectionError(endpoint_url="https://ecs.eu-west-1.amazonaws.com/")

    client.meta.events.register("before-send.ecs.DescribeTaskDefinition", unreachable)

    # WHEN describing / THEN the failure is worth a retry
    with pytest.raises(TransientError, match="Could not connect"):
        describe_task_definition(client, WEB_ARN)


# --- register_clone against moto in process -------------------------------------------------


def _register_fixture(client: Any, described: dict[str, Any]) -> str:
    """Register a fixture as it was (tags included: moto, unlike ECS, accepts `aws:` ones)."""
    request = _without(described["taskDefinition"], REFERENCE_READ_ONLY)
    response = client.register_task_definition(**request, tags=described["tags"])
    return str(response["taskDefinition"]["taskDefinitionArn"])


@pytest.mark.parametrize(
    ("described", "images", "expected_tags"),
    [
        pytest.param(fargate_web_response(), {"web": NEW_WEB_IMAGE}, TEAM_TAGS, id="fargate-web"),
        pytest.param(
            ec2_worker_response(),
            {"worker": NEW_WORKER_IMAGE},
            [{"key": "team", "value": "fulfilment"}],
            id="ec2-worker",
        ),
    ],
)
def test_register_clone_in_moto_copies_the_revision(
    described: dict[str, Any], images: dict[str, str], expected_tags: list[dict[str, str]]
) -> None:
    with mock_aws():
        client = boto3.client("ecs", region_name=REGION)
        # GIVEN a rich task definition registered with tags, including an `aws:` one
        old_arn = _register_fixture(client, described)
        old = client.describe_task_definition(taskDefinition=old_arn, include=["TAGS"])

        # WHEN a clone with new images is registered
        registered = register_clone(client, old_arn, images)

        # THEN the new revision follows the old one
        new = client.describe_task_definition(taskDefinition=registered.arn, include=["TAGS"])
        assert registered.previous_arn == old_arn
        assert registered.revision == old["taskDefinition"]["revision"] + 1
        assert registered.family == old["taskDefinition"]["family"]
        # AND it equals the old one apart from read-only keys and the images asked for
        old_definition = _without(old["taskDefinition"], READ_ONLY_KEYS)
        new_definition = _without(new["taskDefinition"], READ_ONLY_KEYS)
        for container in old_definition["containerDefinitions"]:
            container["image"] = images.get(container["name"], container["image"])
        assert new_definition == old_definition
        # AND the settable tags are kept
        assert new["tags"] == expected_tags


def test_describe_unknown_task_definition_in_moto() -> None:
    with mock_aws():
        # GIVEN no task definition / WHEN described / THEN it is a deployment error
        client = boto3.client("ecs", region_name=REGION)
        with pytest.raises(TaskDefinitionNotFound, match="Unable to describe task definition"):
            describe_task_definition(client, "missing:3")
