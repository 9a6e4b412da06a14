"""deployer.events: the sample events parse with their models and only with them; each rule a
model enforces refuses what breaks it; `parse_event` raises nothing but a short `BadInput`."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployer.errors import BadInput
from deployer.events.codebuild import BuildStatus, CodeBuildStateChangeEvent
from deployer.events.codecommit import REF_NAME_MAX, CodeCommitReferenceEvent
from deployer.events.deployer_bus import (
    APPROVAL_DECIDED,
    RELEASE_STATE_CHANGE,
    SOURCE,
    ApprovalDecidedDetail,
    ApprovalDecidedEvent,
    DecidedBy,
    ReleaseStateChangeDetail,
    ReleaseStateChangeEvent,
    RollbackRequestedEvent,
    put_events_entry,
)
from deployer.events.ecs import (
    DeploymentEvent,
    EcsDeploymentStateChangeEvent,
    EcsHookStateChangeEvent,
    EcsTaskStateChangeEvent,
    HookEvent,
)
from deployer.events.envelope import EventBridgeEnvelope
from deployer.events.parse import MAX_MESSAGE_CHARS, parse_event
from tests.support.documented import AWS_HOOK_AWAITING_ACTION_EXAMPLE, AWS_PAUSE_PAGE_EXAMPLE
from tests.support.events import load_event, sample_names

pytestmark = pytest.mark.unit

MODEL_OF_SAMPLE: dict[str, type[EventBridgeEnvelope]] = {
    "push_created": CodeCommitReferenceEvent,
    "push_updated": CodeCommitReferenceEvent,
    "push_merge": CodeCommitReferenceEvent,
    "push_deleted": CodeCommitReferenceEvent,
    "push_tag": CodeCommitReferenceEvent,
    "push_unknown_repository": CodeCommitReferenceEvent,
    "build_succeeded": CodeBuildStateChangeEvent,
    "build_succeeded_tag_image": CodeBuildStateChangeEvent,
    "build_succeeded_no_exports": CodeBuildStateChangeEvent,
    "build_failed": CodeBuildStateChangeEvent,
    "build_stopped": CodeBuildStateChangeEvent,
    "build_in_progress": CodeBuildStateChangeEvent,
    "ecs_deployment_in_progress": EcsDeploymentStateChangeEvent,
    "ecs_deployment_completed": EcsDeploymentStateChangeEvent,
    "ecs_deployment_failed": EcsDeploymentStateChangeEvent,
    "ecs_deployment_rolling_back": EcsDeploymentStateChangeEvent,
    "ecs_hook_awaiting_action": EcsHookStateChangeEvent,
    "ecs_hook_timed_out": EcsHookStateChangeEvent,
    "ecs_task_stopped": EcsTaskStateChangeEvent,
    "ecs_task_stopped_failed": EcsTaskStateChangeEvent,
    "ecs_task_stopped_service": EcsTaskStateChangeEvent,
    "approval_decided_approve": ApprovalDecidedEvent,
    "approval_decided_reject": ApprovalDecidedEvent,
    "approval_rollback_requested": RollbackRequestedEvent,
}
ALL_MODELS: tuple[type[EventBridgeEnvelope], ...] = (
    CodeCommitReferenceEvent,
    CodeBuildStateChangeEvent,
    EcsDeploymentStateChangeEvent,
    EcsHookStateChangeEvent,
    EcsTaskStateChangeEvent,
    ApprovalDecidedEvent,
    RollbackRequestedEvent,
    ReleaseStateChangeEvent,
)
RELEASE_COMMIT = "7f0103f2c1d64b5e8a9c3e1b6d2f4a8c0e5b7d91"
WRONG_PAIRS = [
    pytest.param(name, model, id=f"{name}-as-{model.__name__}")
    for name, right in MODEL_OF_SAMPLE.items()
    for model in ALL_MODELS
    if model is not right
]


def refused(model: type[EventBridgeEnvelope], raw: dict[str, Any]) -> str:
    with pytest.raises(BadInput) as caught:
        parse_event(model, raw)
    return str(caught.value)


def parse_push(raw: dict[str, Any]) -> CodeCommitReferenceEvent:
    return parse_event(CodeCommitReferenceEvent, raw)


def parse_build(raw: dict[str, Any]) -> CodeBuildStateChangeEvent:
    return parse_event(CodeBuildStateChangeEvent, raw)


def parse_deployment(raw: dict[str, Any]) -> EcsDeploymentStateChangeEvent:
    return parse_event(EcsDeploymentStateChangeEvent, raw)


# --- Samples -----------------------------------------------------------------------------------


def test_every_sample_file_has_a_model_here() -> None:
    # GIVEN the files in events/ WHEN listed THEN each one is covered by the tests below
    assert sample_names() == sorted(MODEL_OF_SAMPLE)


@pytest.mark.parametrize(("name", "model"), MODEL_OF_SAMPLE.items())
def test_each_sample_parses_with_its_model(name: str, model: type[EventBridgeEnvelope]) -> None:
    # GIVEN a sample WHEN parsed with its model THEN the envelope is kept
    raw = load_event(name)

    event = parse_event(model, raw)

    assert isinstance(event, model)
    assert (event.id, event.source, event.detail_type) == (raw["id"], raw["source"], raw["detail-type"])


# --- The envelope ------------------------------------------------------------------------------
# "The following fields appear in all events delivered to an event bus, and comprise the event's
# metadata" (Amazon EventBridge events reference, "Amazon service event metadata",
# https://docs.aws.amazon.com/eventbridge/latest/ref/events-structure.html). The deployer's
# envelope replaces Powertools' EventBridgeModel, whose module builds every Powertools model.


def _envelope_outcome(model: type[Any], raw: object) -> tuple[bool, list[tuple[Any, ...]]]:
    from pydantic import ValidationError

    try:
        model.model_validate(raw)
    except ValidationError as error:
        # Powertools' detail also tries "a model class", one more branch of the union to report
        branches = [(e["loc"], e["type"]) for e in error.errors() if "is-subclass[BaseModel]" not in e["loc"]]
        return False, sorted(branches)
    return True, []


def test_the_envelope_has_the_fields_of_powertools_eventbridge_model() -> None:
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

    # GIVEN both envelopes WHEN their fields are compared
    def shape(model: type[Any]) -> dict[str, tuple[Any, ...]]:
        return {name: (f.alias, f.is_required(), f.annotation) for name, f in model.model_fields.items()}

    ours, theirs = shape(EventBridgeEnvelope), shape(EventBridgeModel)
    # THEN the same fields, aliases, required fields and types (the detail apart: Powertools also
    # accepts a model class there, which no JSON event can be)
    assert ours.keys() == theirs.keys()
    assert {k: v for k, v in ours.items() if k != "detail"} == {k: v for k, v in theirs.items() if k != "detail"}
    assert ours["detail"][:2] == theirs["detail"][:2]


@pytest.mark.parametrize("name", sorted(MODEL_OF_SAMPLE))
def test_the_envelope_accepts_and_refuses_what_powertools_eventbridge_model_does(name: str) -> None:
    from aws_lambda_powertools.utilities.parser.models import EventBridgeModel

    # GIVEN a sample, and each of its envelope fields dropped, emptied, mistyped, nulled
    raw = load_event(name)
    variants: list[object] = [raw, {}, [], "event"]
    for key in [*raw, "replay-name"]:
        variants += [{k: v for k, v in raw.items() if k != key}]
        variants += [{**raw, key: value} for value in (None, 12345, "", [], {}, "not a time", ["a", 1])]
    for variant in variants:
        # WHEN both envelopes validate it THEN both accept it, or both refuse it at the same places
        assert _envelope_outcome(EventBridgeEnvelope, variant) == _envelope_outcome(EventBridgeModel, variant), variant


@pytest.mark.parametrize(("name", "model"), WRONG_PAIRS)
def test_each_sample_is_refused_by_every_other_model(name: str, model: type[EventBridgeEnvelope]) -> None:
    # GIVEN a sample WHEN parsed with a model of another kind THEN it is bad input, named by its id
    raw = load_event(name)

    message = refused(model, raw)

    assert raw["id"] in message


def test_the_release_commit_is_the_same_in_pushes_and_builds() -> None:
    # GIVEN the samples of one release WHEN parsed THEN they all name the same commit
    pushes = [parse_push(load_event(name)).detail for name in ("push_created", "push_updated", "push_merge")]
    build = parse_build(load_event("build_succeeded"))

    assert {push.commit_id for push in pushes} == {RELEASE_COMMIT}
    assert parse_push(load_event("push_deleted")).detail.old_commit_id == RELEASE_COMMIT
    assert build.detail.additional_information.source_version == RELEASE_COMMIT
    assert build.env_override("DEPLOYER_COMMIT") == RELEASE_COMMIT


def test_the_approval_names_the_release_the_build_carries() -> None:
    build = parse_build(load_event("build_succeeded"))
    approval = parse_event(ApprovalDecidedEvent, load_event("approval_decided_approve"))

    assert approval.detail.release_id == build.env_override("DEPLOYER_RELEASE_ID")


def test_load_event_refuses_a_path() -> None:
    with pytest.raises(ValueError, match="not a sample event name"):
        load_event("../pyproject")


# --- CodeCommit --------------------------------------------------------------------------------


def test_a_created_branch_has_a_commit_and_no_old_commit() -> None:
    detail = parse_push(load_event("push_created")).detail

    assert (detail.event, detail.reference_type, detail.reference_name) == (
        "referenceCreated",
        "branch",
        "main",
    )
    assert (detail.commit_id, detail.old_commit_id) == (RELEASE_COMMIT, None)
    assert detail.is_branch_push
    assert not detail.is_merge
    assert detail.caller_user_arn == "arn:aws:sts::123456789012:assumed-role/Developer/alice"


def test_an_updated_branch_has_both_commits() -> None:
    detail = parse_push(load_event("push_updated")).detail

    assert detail.old_commit_id == "3e5983b8d0a14f6c9b2e7d5a1c8f0b4e6d2a9c73"
    assert detail.is_branch_push
    assert not detail.is_merge


def test_a_merge_carries_its_merge_fields() -> None:
    detail = parse_push(load_event("push_merge")).detail

    assert detail.is_merge
    assert detail.destination_commit_id == detail.old_commit_id
    assert (detail.merge_option, detail.conflict_details_level, detail.conflict_resolution_strategy) == (
        "THREE_WAY_MERGE",
        "LINE_LEVEL",
        "AUTOMERGE",
    )


def test_a_deleted_branch_is_not_a_push_to_build() -> None:
    detail = parse_push(load_event("push_deleted")).detail

    assert detail.commit_id is None
    assert not detail.is_branch_push


def test_a_tag_is_not_a_branch_push() -> None:
    detail = parse_push(load_event("push_tag")).detail

    assert (detail.reference_type, detail.reference_full_name) == ("tag", "refs/tags/v1.4.0")
    assert not detail.is_branch_push


def test_fields_aws_adds_are_ignored() -> None:
    # GIVEN a push with fields this code does not know (session tags, a new envelope field)
    raw = load_event("push_updated")
    raw["detail"] |= {"displayName": "Alice", "emailAddress": "alice@example.com", "newThing": [1, 2]}
    raw["new-envelope-field"] = {"x": 1}

    # WHEN parsed THEN it is accepted
    assert parse_push(raw).detail.commit_id == RELEASE_COMMIT


def _set_detail(**fields: Any) -> Callable[[dict[str, Any]], None]:
    def change(detail: dict[str, Any]) -> None:
        detail.update(fields)

    return change


def _drop_detail(key: str) -> Callable[[dict[str, Any]], None]:
    def change(detail: dict[str, Any]) -> None:
        del detail[key]

    return change


@pytest.mark.parametrize(
    ("sample", "change", "problem"),
    [
        ("push_updated", _set_detail(commitId="7f0103f"), "commitId"),
        ("push_updated", _set_detail(commitId=RELEASE_COMMIT[:-1]), "commitId"),
        ("push_updated", _set_detail(commitId=RELEASE_COMMIT + "0"), "commitId"),
        ("push_updated", _set_detail(commitId="g" + RELEASE_COMMIT[1:]), "commitId"),
        ("push_updated", _set_detail(commitId=RELEASE_COMMIT + "\n"), "commitId"),
        ("push_updated", _set_detail(oldCommitId=12345), "oldCommitId"),
        ("push_updated", _drop_detail("commitId"), "commitId is required for referenceUpdated"),
        ("push_updated", _drop_detail("oldCommitId"), "oldCommitId is required for referenceUpdated"),
        ("push_created", _drop_detail("commitId"), "commitId is required for referenceCreated"),
        ("push_deleted", _drop_detail("oldCommitId"), "oldCommitId is required for referenceDeleted"),
        ("push_updated", _set_detail(repositoryName="w" * 101), "repositoryName"),
        ("push_updated", _set_detail(repositoryName="web/app"), "repositoryName"),
        ("push_updated", _set_detail(repositoryName=""), "repositoryName"),
        ("push_updated", _set_detail(referenceName="b" * (REF_NAME_MAX + 1)), "referenceName"),
        ("push_updated", _set_detail(referenceName="my branch"), "referenceName"),
        ("push_updated", _set_detail(referenceFullName="refs/tags/main"), "referenceFullName does not match"),
        ("push_updated", _set_detail(event="unreferencedMergeCommitCreated"), "detail.event"),
        ("push_updated", _set_detail(referenceType="note"), "referenceType"),
        ("push_updated", _set_detail(mergeOption="THREE WAY"), "mergeOption"),
        ("push_updated", _set_detail(callerUserArn="alice"), "callerUserArn"),
    ],
)
def test_a_push_breaking_a_rule_is_refused(sample: str, change: Callable[[dict[str, Any]], None], problem: str) -> None:
    # GIVEN a push sample broken in one way
    raw = load_event(sample)
    change(raw["detail"])

    # WHEN parsed THEN it is bad input that names the problem
    assert problem in refused(CodeCommitReferenceEvent, raw)


def test_names_at_their_limits_are_accepted() -> None:
    # GIVEN a repository name of 100 characters and a branch name of REF_NAME_MAX
    raw = load_event("push_updated")
    branch = "b" * REF_NAME_MAX
    raw["detail"] |= {
        "repositoryName": "w" * 100,
        "referenceName": branch,
        "referenceFullName": f"refs/heads/{branch}",
    }

    # WHEN parsed THEN both are kept
    detail = parse_push(raw).detail
    assert (len(detail.repository_name), len(detail.reference_name)) == (100, REF_NAME_MAX)


# --- CodeBuild ---------------------------------------------------------------------------------


def test_a_succeeded_build_exports_an_image_pinned_by_digest() -> None:
    event = parse_build(load_event("build_succeeded"))

    assert event.status is BuildStatus.SUCCEEDED
    assert event.is_final
    image = event.exported("IMAGE_URI")
    assert image is not None
    assert image.startswith("123456789012.dkr.ecr.eu-west-1.amazonaws.com/web-app@sha256:")
    assert event.exported("NOT_EXPORTED") is None


def test_a_succeeded_build_may_export_an_image_by_tag() -> None:
    event = parse_build(load_event("build_succeeded_tag_image"))

    assert event.exported("IMAGE_URI") == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web-app:7f0103f2c1d6"


def test_a_build_without_the_exports_key_exports_nothing() -> None:
    # GIVEN a sample whose additional-information has no exported-environment-variables key
    raw = load_event("build_succeeded_no_exports")
    assert "exported-environment-variables" not in raw["detail"]["additional-information"]

    # WHEN parsed THEN nothing is exported and nothing fails
    event = parse_build(raw)
    assert event.detail.additional_information.exported_environment_variables is None
    assert event.exported("IMAGE_URI") is None
    assert event.is_final


def test_overrides_come_back_as_plaintext_environment_variables() -> None:
    event = parse_build(load_event("build_succeeded"))

    assert event.env_override("DEPLOYER_RELEASE_ID") == "web@7f0103f2c1d64b5e8a9c3e1b6d2f4a8c0e5b7d91"
    assert event.env_override("DEPLOYER_COMMIT") == RELEASE_COMMIT
    # a PARAMETER_STORE variable holds a parameter name, not a value
    assert event.env_override("DOCKERHUB_TOKEN") is None
    assert event.env_override("NOT_SET") is None


def test_the_build_envelope_fields_are_typed() -> None:
    event = parse_build(load_event("build_succeeded"))
    info = event.detail.additional_information

    assert event.detail.build_id == event.resources[0]
    assert event.detail.project_name == "web-app-build"
    assert info.build_number == 42
    assert isinstance(info.build_number, int)
    assert info.timeout_in_minutes == 60
    assert info.build_start_time == datetime(2025, 3, 14, 9, 26, 58, tzinfo=UTC)
    assert event.log_link == (
        "https://console.aws.amazon.com/cloudwatch/home?region=eu-west-1#logEvent:"
        "group=/aws/codebuild/web-app-build;stream=0f8c6a6e-4b1d-4c5e-9a2f-3b7d1e8c5a90"
    )


@pytest.mark.parametrize(
    ("sample", "status", "final"),
    [
        ("build_in_progress", BuildStatus.IN_PROGRESS, False),
        ("build_failed", BuildStatus.FAILED, True),
        ("build_stopped", BuildStatus.STOPPED, True),
        ("build_succeeded", BuildStatus.SUCCEEDED, True),
    ],
)
def test_sample_builds_have_their_status(sample: str, status: BuildStatus, final: bool) -> None:
    event = parse_build(load_event(sample))

    assert (event.status, event.is_final) == (status, final)


@pytest.mark.parametrize(
    ("build_status", "status", "final"),
    [
        ("IN_PROGRESS", BuildStatus.IN_PROGRESS, False),
        ("SUCCEEDED", BuildStatus.SUCCEEDED, True),
        ("FAILED", BuildStatus.FAILED, True),
        ("STOPPED", BuildStatus.STOPPED, True),
        ("FAULT", BuildStatus.FAULT, True),
        ("TIMED_OUT", BuildStatus.TIMED_OUT, True),
        ("QUEUED", BuildStatus.UNKNOWN, False),
        ("succeeded", BuildStatus.UNKNOWN, False),
        ("A_STATUS_FROM_THE_FUTURE", BuildStatus.UNKNOWN, False),
    ],
)
def test_any_build_status_parses_and_unknown_ones_are_recognisable(
    build_status: str, status: BuildStatus, final: bool
) -> None:
    # GIVEN a build event with this status
    raw = load_event("build_succeeded")
    raw["detail"]["build-status"] = build_status

    # WHEN parsed THEN it maps to the enum, UNKNOWN when this code does not know it
    event = parse_build(raw)
    assert (event.status, event.is_final, event.detail.build_status) == (status, final, build_status)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Sep 1, 2017 4:12:29 PM", datetime(2017, 9, 1, 16, 12, 29, tzinfo=UTC)),
        ("Dec 31, 2024 12:00:00 AM", datetime(2024, 12, 31, 0, 0, 0, tzinfo=UTC)),
        ("Jan 5, 2025 12:30:00 PM", datetime(2025, 1, 5, 12, 30, 0, tzinfo=UTC)),
        ("Jan 5, 2025 11:59:59 PM", datetime(2025, 1, 5, 23, 59, 59, tzinfo=UTC)),
        ("Mar 14, 2025 9:26:58\u202fAM", datetime(2025, 3, 14, 9, 26, 58, tzinfo=UTC)),
        ("2025-03-14T09:26:58Z", datetime(2025, 3, 14, 9, 26, 58, tzinfo=UTC)),
    ],
)
def test_build_start_time_parses_codebuild_format(text: str, expected: datetime) -> None:
    raw = load_event("build_succeeded")
    raw["detail"]["additional-information"]["build-start-time"] = text

    assert parse_build(raw).detail.additional_information.build_start_time == expected


@pytest.mark.parametrize(
    "text",
    [
        "Feb 30, 2025 1:00:00 PM",
        "Sep 1, 2017 13:12:29 PM",
        "Sep 1, 2017 0:12:29 AM",
        "Foo 1, 2017 4:12:29 PM",
        "soon",
    ],
)
def test_a_build_start_time_that_is_no_time_is_refused(text: str) -> None:
    raw = load_event("build_succeeded")
    raw["detail"]["additional-information"]["build-start-time"] = text

    assert "build-start-time" in refused(CodeBuildStateChangeEvent, raw)


def test_integral_floats_are_integers_and_fractions_are_refused() -> None:
    # GIVEN build numbers as some producers send them
    whole, fraction = load_event("build_succeeded"), load_event("build_succeeded")
    whole["detail"]["additional-information"]["build-number"] = 1.0
    fraction["detail"]["additional-information"]["build-number"] = 1.5

    # WHEN parsed THEN 1.0 is 1 and 1.5 is bad input
    assert parse_build(whole).detail.additional_information.build_number == 1
    assert "build-number" in refused(CodeBuildStateChangeEvent, fraction)


def test_current_phase_context_may_be_a_list() -> None:
    raw = load_event("build_failed")
    raw["detail"]["current-phase-context"] = ["COMMAND_EXECUTION_ERROR: exit status 1"]

    assert parse_build(raw).detail.current_phase_context == ["COMMAND_EXECUTION_ERROR: exit status 1"]


@pytest.mark.parametrize(
    ("build_id", "problem"),
    [
        ("web-app-build:0f8c6a6e-4b1d-4c5e-9a2f-3b7d1e8c5a90", "not a CodeBuild build ARN"),
        (
            "arn:aws:codebuild:eu-west-1:123456789012:build/other-build:0f8c6a6e-4b1d-4c5e-9a2f-3b7d1e8c5a90",
            "names another project",
        ),
        ("arn:aws:codebuild:eu-west-1:123456789012:project/web-app-build", "not a CodeBuild build ARN"),
    ],
)
def test_a_build_id_that_is_not_this_projects_build_arn_is_refused(build_id: str, problem: str) -> None:
    raw = load_event("build_succeeded")
    raw["detail"]["build-id"] = build_id

    assert problem in refused(CodeBuildStateChangeEvent, raw)


def test_an_empty_export_counts_as_absent_and_the_last_duplicate_wins() -> None:
    raw = load_event("build_succeeded")
    raw["detail"]["additional-information"]["exported-environment-variables"] = [
        {"name": "IMAGE_URI", "value": "first"},
        {"name": "IMAGE_URI", "value": "second"},
        {"name": "IMAGE_TAG", "value": ""},
        {"name": "UNSET"},
    ]

    event = parse_build(raw)

    assert (event.exported("IMAGE_URI"), event.exported("IMAGE_TAG"), event.exported("UNSET")) == (
        "second",
        None,
        None,
    )


@pytest.mark.parametrize("link", ["javascript:alert(1)", "http://console.aws.amazon.com/x", ""])
def test_a_log_link_that_is_not_https_is_not_offered(link: str) -> None:
    raw = load_event("build_succeeded")
    raw["detail"]["additional-information"]["logs"]["deep-link"] = link

    assert parse_build(raw).log_link is None


# --- ECS ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sample", "cluster", "state", "rollback"),
    [
        ("ecs_deployment_in_progress", "dev", DeploymentEvent.IN_PROGRESS, False),
        ("ecs_deployment_completed", "dev", DeploymentEvent.COMPLETED, False),
        ("ecs_deployment_failed", "prod", DeploymentEvent.FAILED, False),
        ("ecs_deployment_rolling_back", "prod", DeploymentEvent.IN_PROGRESS, True),
    ],
)
def test_deployment_samples(sample: str, cluster: str, state: DeploymentEvent, rollback: bool) -> None:
    event = parse_deployment(load_event(sample))

    assert (event.cluster_name, event.service_name) == (cluster, "web")
    assert (event.deployment_event, event.is_rollback) == (state, rollback)
    assert event.detail.deployment_id.startswith("ecs-svc/")


def test_a_failed_deployment_is_an_error_event() -> None:
    detail = parse_deployment(load_event("ecs_deployment_failed")).detail

    assert (detail.event_type, detail.reason) == (
        "ERROR",
        "ECS deployment circuit breaker: tasks failed to start.",
    )


@pytest.mark.parametrize(
    ("event_name", "reason", "rollback"),
    [
        (
            "SERVICE_DEPLOYMENT_IN_PROGRESS",
            "ECS deployment circuit breaker: ROLLING BACK to deploymentId x.",
            True,
        ),
        ("SERVICE_DEPLOYMENT_IN_PROGRESS", "CloudWatch alarm: Rolling Back to deploymentId x.", True),
        ("SERVICE_DEPLOYMENT_IN_PROGRESS", "ECS deployment ecs-svc/1 in progress.", False),
        ("SERVICE_DEPLOYMENT_IN_PROGRESS", None, False),
        ("SERVICE_DEPLOYMENT_COMPLETED", "rolling back to deploymentId x.", False),
        ("SERVICE_DEPLOYMENT_FAILED", "rolling back to deploymentId x.", False),
    ],
)
def test_a_rollback_is_an_in_progress_event_that_says_so(event_name: str, reason: str | None, rollback: bool) -> None:
    raw = load_event("ecs_deployment_in_progress")
    raw["detail"]["eventName"] = event_name
    if reason is None:
        del raw["detail"]["reason"]
    else:
        raw["detail"]["reason"] = reason

    assert parse_deployment(raw).is_rollback is rollback


def test_an_unknown_deployment_event_name_is_tolerated_and_recognisable() -> None:
    raw = load_event("ecs_deployment_in_progress")
    raw["detail"]["eventName"] = "SERVICE_DEPLOYMENT_PAUSED"

    event = parse_deployment(raw)

    assert event.deployment_event is DeploymentEvent.UNKNOWN
    assert event.detail.event_name == "SERVICE_DEPLOYMENT_PAUSED"
    assert not event.is_rollback


@pytest.mark.parametrize(
    "resources",
    [
        [],
        ["arn:aws:ecs:eu-west-1:123456789012:service/web"],
        ["arn:aws:ecs:eu-west-1:123456789012:cluster/dev"],
        ["arn:aws:ecs:eu-west-1:123456789012:task/dev/0123456789abcdef0123456789abcdef"],
        ["arn:aws:ecs:eu-west-1:123456789012:service/dev/web/extra"],
        ["arn:aws:ecs:eu-west-1:12345678901:service/dev/web"],
        ["arn:aws:codebuild:eu-west-1:123456789012:service/dev/web"],
        ["arn:aws:ecs:eu-west-1:123456789012:service/dev/web\n"],
        ["arn:aws:ecs:eu-west-1:123456789012:service/dev/" + "w" * 256],
    ],
)
def test_a_deployment_event_without_a_service_arn_first_is_refused(resources: list[str]) -> None:
    raw = load_event("ecs_deployment_completed")
    raw["resources"] = resources

    assert "resources" in refused(EcsDeploymentStateChangeEvent, raw)


def test_only_the_first_resource_names_the_service() -> None:
    raw = load_event("ecs_deployment_completed")
    raw["resources"].append("arn:aws:ecs:eu-west-1:123456789012:service/other/api")

    assert parse_deployment(raw).cluster_name == "dev"


@pytest.mark.parametrize(("field", "value"), [("eventType", "DEBUG"), ("deploymentId", ""), ("updatedAt", "today")])
def test_a_deployment_detail_breaking_a_rule_is_refused(field: str, value: str) -> None:
    raw = load_event("ecs_deployment_completed")
    raw["detail"][field] = value

    assert f"detail.{field}" in refused(EcsDeploymentStateChangeEvent, raw)


# --- The deployer's own events -----------------------------------------------------------------


def test_approval_samples_carry_the_decision_and_who_made_it() -> None:
    approve = parse_event(ApprovalDecidedEvent, load_event("approval_decided_approve")).detail
    reject = parse_event(ApprovalDecidedEvent, load_event("approval_decided_reject")).detail

    assert (approve.decision, approve.decided_by.kind, approve.decided_by.user) == (
        "approve",
        "slack",
        "U012ABCDEF",
    )
    assert (reject.decision, reject.decided_by.kind, str(reject.decided_by.source_ip)) == (
        "reject",
        "link",
        "203.0.113.24",
    )
    assert (approve.pipeline, approve.stage) == ("web", "prod")


def _envelope(entry: dict[str, Any]) -> dict[str, Any]:
    """What EventBridge delivers for a PutEvents entry."""
    return {
        "version": "0",
        "id": "0d7f9b8a-1c2e-4f3a-9b5c-6d7e8f9a0b1c",
        "detail-type": entry["DetailType"],
        "source": entry["Source"],
        "account": "123456789012",
        "time": "2025-03-14T10:02:11Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": json.loads(entry["Detail"]),
    }


def _decision(**changes: Any) -> ApprovalDecidedDetail:
    fields: dict[str, Any] = {
        "release_id": "web@7f0103f2c1d64b5e8a9c3e1b6d2f4a8c0e5b7d91",
        "pipeline": "web",
        "stage": "prod",
        "decision": "approve",
        "approval_id": "apr-01JPB9M2W4C6E8G0J2L4N6Q8S0",
        "decided_by": DecidedBy(kind="slack", user="U012ABCDEF"),
        "decided_at": datetime(2025, 3, 14, 10, 2, 10, tzinfo=UTC),
    } | changes
    return ApprovalDecidedDetail(**fields)


def _transition(**changes: Any) -> ReleaseStateChangeDetail:
    fields: dict[str, Any] = {
        "release_id": "web@7f0103f2c1d64b5e8a9c3e1b6d2f4a8c0e5b7d91",
        "pipeline": "web",
        "commit": RELEASE_COMMIT,
        "stage": "dev",
        "from_state": "DEPLOYING",
        "to_state": "DEPLOYED",
        "at": datetime(2025, 3, 14, 9, 36, 2, tzinfo=UTC),
    } | changes
    return ReleaseStateChangeDetail(**fields)


@pytest.mark.parametrize(
    ("detail", "model", "detail_type"),
    [
        (_decision(), ApprovalDecidedEvent, APPROVAL_DECIDED),
        (
            _transition(reason="ECS deployment ecs-svc/6405940160831029548 completed."),
            ReleaseStateChangeEvent,
            RELEASE_STATE_CHANGE,
        ),
    ],
)
def test_a_published_detail_comes_back_equal(
    detail: ApprovalDecidedDetail | ReleaseStateChangeDetail, model: type[EventBridgeEnvelope], detail_type: str
) -> None:
    # GIVEN a detail the deployer publishes
    # WHEN made into a PutEvents entry and delivered back
    entry = put_events_entry(detail, event_bus_name="ecs-deployer-dev")
    event = parse_event(model, _envelope(dict(entry)))

    # THEN the entry names the deployer's bus, source and detail type, and the detail survives
    assert (entry["EventBusName"], entry["Source"], entry["DetailType"]) == (
        "ecs-deployer-dev",
        SOURCE,
        detail_type,
    )
    assert SOURCE == "ecs-deployer"
    assert event.detail == detail


def test_absent_optional_fields_are_left_out_of_the_published_json() -> None:
    entry = put_events_entry(_transition(stage=None, from_state=None), event_bus_name="bus")

    published = json.loads(entry["Detail"])

    assert {"stage", "from_state", "reason"}.isdisjoint(published)
    assert published["to_state"] == "DEPLOYED"


def test_a_slack_decision_carries_its_response_url_on_the_bus_but_never_in_a_repr() -> None:
    # GIVEN a decision made in Slack, with the interaction's response_url (a capability)
    url = "https://hooks.slack.com/actions/T0001/1234567890/aBcDeFgHiJkLmNoP"
    decision = _decision(response_url=url)
    # WHEN published and delivered back
    entry = put_events_entry(decision, event_bus_name="bus")
    event = parse_event(ApprovalDecidedEvent, _envelope(dict(entry)))
    # THEN on_approval gets it, but no repr (a log line, a traceback) shows it
    assert json.loads(entry["Detail"])["response_url"] == url
    assert event.detail.response_url == url
    assert url not in repr(event)
    assert url not in repr(event.detail)
    assert "response_url" not in json.loads(put_events_entry(_decision(), event_bus_name="bus")["Detail"])


@pytest.mark.parametrize("url", ["javascript:alert(1)", "hooks.slack.com/actions/T/1/x", "https://", "https://a b"])
def test_a_response_url_that_is_not_a_web_address_is_refused_without_echoing_it(url: str) -> None:
    raw = load_event("approval_decided_approve")
    raw["detail"]["response_url"] = url
    with pytest.raises(BadInput) as refused:
        parse_event(ApprovalDecidedEvent, raw)
    assert "detail.response_url" in str(refused.value)
    assert url not in str(refused.value)


def test_an_entry_needs_a_bus() -> None:
    with pytest.raises(ValueError, match="event_bus_name"):
        put_events_entry(_decision(), event_bus_name="")


def test_long_free_text_is_shortened_not_refused() -> None:
    decision = _decision(decided_by=DecidedBy(kind="link", user_agent="A" * 10_000))
    transition = _transition(reason="r" * 10_000)

    assert (len(decision.decided_by.user_agent or ""), len(transition.reason or "")) == (512, 1024)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (_set_detail(decision="maybe"), "detail.decision"),
        (_set_detail(decided_by={"kind": "slack"}), "decided_by"),
        (_set_detail(decided_by={"kind": "email", "user": "x"}), "detail.decided_by.kind"),
        (_set_detail(decided_by={"kind": "link", "source_ip": "not-an-ip"}), "detail.decided_by.source_ip"),
        (_set_detail(decided_at="2025-03-14T10:02:10"), "detail.decided_at"),
        (_set_detail(release_id="has space"), "detail.release_id"),
        (_set_detail(stage=""), "detail.stage"),
        (_drop_detail("approval_id"), "detail.approval_id"),
    ],
)
def test_an_approval_breaking_a_rule_is_refused(change: Callable[[dict[str, Any]], None], problem: str) -> None:
    raw = load_event("approval_decided_approve")
    change(raw["detail"])

    assert problem in refused(ApprovalDecidedEvent, raw)


def test_a_release_state_change_needs_a_full_commit_and_a_state_name() -> None:
    raw = _envelope(dict(put_events_entry(_transition(), event_bus_name="bus")))
    raw["detail"] |= {"commit": RELEASE_COMMIT[:12], "to_state": "deployed"}

    message = refused(ReleaseStateChangeEvent, raw)

    assert "detail.commit" in message
    assert "detail.to_state" in message


# --- parse_event's refusals --------------------------------------------------------------------


def test_a_refusal_names_the_model_the_event_id_and_the_problem() -> None:
    raw = load_event("push_created")
    raw["detail"]["commitId"] = "HEAD"

    message = refused(CodeCommitReferenceEvent, raw)

    assert message.startswith("CodeCommitReferenceEvent refused event 5d1e6f7a-2b3c-4d5e-8f90-a1b2c3d4e5f6: ")
    assert "detail.commitId: String should match pattern" in message


def test_a_refusal_shows_the_first_few_problems_and_counts_the_rest() -> None:
    # GIVEN an event that is wrong in many places
    raw = load_event("build_succeeded")
    raw["detail"] = {"build-status": 1, "build-id": 2, "project-name": 3, "additional-information": 4}

    message = refused(CodeBuildStateChangeEvent, raw)

    assert "detail.build-status" in message
    assert "; and 1 more" in message
    assert "additional-information" not in message


def test_a_refusal_never_quotes_the_event() -> None:
    # GIVEN a build event with a secret in a field that fails validation, and a huge field
    secret = "hunter2-do-not-log-me"
    raw = load_event("build_succeeded")
    raw["detail"]["additional-information"]["build-number"] = secret
    raw["detail"]["build-status"] = "x" * 100_000
    raw["detail"]["additional-information"]["environment"]["environment-variables"] = [{"name": "TOKEN", "value": 7}]

    # WHEN refused
    with pytest.raises(BadInput) as caught:
        parse_event(CodeBuildStateChangeEvent, raw)

    # THEN the message is short, has no input in it, and the pydantic error (which quotes input)
    # is not chained for a traceback to print
    message = str(caught.value)
    assert len(message) <= MAX_MESSAGE_CHARS
    assert secret not in message
    assert "xxxxxxxxxx" not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize("event_id", ["x" * 65, "id with spaces", 42, None, "tok\nen"])
def test_an_unusable_event_id_is_not_repeated(event_id: object) -> None:
    raw = load_event("push_created")
    raw["id"] = event_id
    raw["detail"]["commitId"] = "HEAD"

    message = refused(CodeCommitReferenceEvent, raw)

    assert "refused an event without a usable id" in message


@pytest.mark.parametrize("raw", [None, [], "{}", 42])
def test_something_that_is_no_object_is_bad_input(raw: Any) -> None:
    assert "CodeCommitReferenceEvent refused an event without a usable id" in refused(CodeCommitReferenceEvent, raw)


# --- Mutations: parse_event raises BadInput or nothing -----------------------------------------

JsonPath = tuple[str | int, ...]


def _paths(node: Any, here: JsonPath = ()) -> list[JsonPath]:
    found: list[JsonPath] = [here] if here else []
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*here, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*here, index))
    return found


def _mutate(event: dict[str, Any], path: JsonPath, replacement: Any, drop: bool) -> None:
    parent: Any = event
    for part in path[:-1]:
        parent = parent[part]
    if drop:
        del parent[path[-1]]
    else:
        parent[path[-1]] = replacement


HUGE = 100_000
replacements = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["x", "é", "\x00", "\u202e", "😀", "0", " "]).map(lambda char: char * HUGE),
    st.lists(st.one_of(st.integers(), st.text(max_size=5)), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), name=st.sampled_from(sorted(MODEL_OF_SAMPLE)))
def test_mutated_samples_raise_nothing_but_bad_input(data: st.DataObject, name: str) -> None:
    # GIVEN a sample with one to three fields dropped or replaced by anything
    event = copy.deepcopy(load_event(name))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        paths = _paths(event)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        _mutate(event, path, data.draw(replacements, label="replacement"), data.draw(st.booleans(), label="drop"))

    # WHEN parsed with every model
    refusals: list[str] = []
    for model in ALL_MODELS:
        try:
            parse_event(model, event)
        except BadInput as refusal:
            refusals.append(str(refusal))

    # THEN each one parsed or refused it as BadInput (anything else escapes) with a short message;
    # every model but one (at most) refuses it
    assert len(refusals) >= len(ALL_MODELS) - 1
    assert all(len(message) <= MAX_MESSAGE_CHARS for message in refusals)


# --- ECS Hook State Change ---------------------------------------------------------------------
# AWS's own examples of the event, verbatim: tests/support/documented.py.
HOOK_ID = "ecs-pause-e7tK9G_WRJqNF_EOMjztDXfKenlJuEUVjsNStf4WLKw"


def parse_hook(raw: dict[str, Any]) -> EcsHookStateChangeEvent:
    return parse_event(EcsHookStateChangeEvent, raw)


def test_aws_documented_hook_event_parses_verbatim() -> None:
    # GIVEN AWS's own example of a pause hook awaiting action, as the developer guide prints it
    raw = json.loads(AWS_HOOK_AWAITING_ACTION_EXAMPLE)
    # WHEN parsed
    event = parse_hook(raw)
    # THEN the service comes from the service deployment, and the hook is what ContinueServiceDeployment needs
    assert (event.cluster_name, event.service_name) == ("my-cluster", "my-service")
    assert event.hook_event is HookEvent.AWAITING_ACTION
    assert event.is_pause
    detail = event.detail
    assert detail.service_deployment_arn == raw["resources"][0]
    assert (detail.hook_id, detail.hook_type, detail.lifecycle_stage) == (HOOK_ID, "PAUSE", "POST_TEST_TRAFFIC_SHIFT")
    assert detail.expires_at == datetime(2026, 3, 5, 16, 4, 41, tzinfo=UTC)
    # nanoseconds in updatedAt are cut to microseconds, not refused
    assert detail.updated_at == datetime(2026, 3, 5, 15, 54, 41, 618059, tzinfo=UTC)


def test_the_pause_hooks_page_example_without_resources_parses_verbatim() -> None:
    event = parse_hook(json.loads(AWS_PAUSE_PAGE_EXAMPLE))
    assert event.resources == []
    assert (event.cluster_name, event.service_name) == ("my-cluster", "my-service")
    assert event.detail.service_deployment_arn.endswith("/EZe5RNVLH6PPzHXINuP28")


def test_the_sample_is_the_documented_example_in_the_samples_world() -> None:
    # GIVEN the documented example, moved to events/README.md's world (eu-west-1, cluster prod, service web)
    documented = AWS_HOOK_AWAITING_ACTION_EXAMPLE.replace("us-west-2", "eu-west-1")
    documented = documented.replace("my-cluster", "prod").replace("my-service", "web")
    # THEN the sample is exactly that, and nothing else changed
    assert load_event("ecs_hook_awaiting_action") == json.loads(documented)


def test_the_timed_out_sample_is_the_documented_one_with_only_what_events_readme_says_changed() -> None:
    # AWS prints no HOOK_TIMED_OUT example: events/README.md says which fields of the documented
    # example the sample changes, and these are all it changes
    awaiting, timed_out = load_event("ecs_hook_awaiting_action"), load_event("ecs_hook_timed_out")
    assert timed_out["time"] == timed_out["detail"]["expiresAt"] == awaiting["detail"]["expiresAt"]
    for event in (awaiting, timed_out):
        for key in ("id", "time"):
            del event[key]
        for key in ("eventName", "updatedAt"):
            del event["detail"][key]
    assert timed_out == awaiting


@pytest.mark.parametrize(
    ("name", "hook_event"),
    [("ecs_hook_awaiting_action", HookEvent.AWAITING_ACTION), ("ecs_hook_timed_out", HookEvent.TIMED_OUT)],
)
def test_each_hook_sample_names_prod_web_and_its_outcome(name: str, hook_event: HookEvent) -> None:
    event = parse_hook(load_event(name))
    assert (event.cluster_name, event.service_name) == ("prod", "web")
    assert event.hook_event is hook_event
    assert event.detail.hook_id == HOOK_ID


@pytest.mark.parametrize(
    "name",
    ["HOOK_IN_PROGRESS", "HOOK_AWAITING_ACTION", "HOOK_SUCCEEDED", "HOOK_FAILED", "HOOK_TIMED_OUT"],
)
def test_every_documented_hook_event_name_is_known(name: str) -> None:
    raw = load_event("ecs_hook_awaiting_action")
    raw["detail"]["eventName"] = name
    assert parse_hook(raw).hook_event.value == name


def test_an_unknown_hook_event_name_is_tolerated_and_acted_upon_by_nobody() -> None:
    raw = load_event("ecs_hook_awaiting_action")
    raw["detail"]["eventName"] = "HOOK_SOMETHING_NEW"
    assert parse_hook(raw).hook_event is HookEvent.UNKNOWN


def test_a_lambda_hook_event_is_not_a_pause() -> None:
    raw = load_event("ecs_hook_awaiting_action")
    raw["detail"]["hookType"] = "AWS_LAMBDA"
    assert not parse_hook(raw).is_pause


def test_the_old_short_service_arn_is_accepted() -> None:
    raw = load_event("ecs_hook_awaiting_action")
    raw["detail"]["serviceArn"] = "arn:aws:ecs:eu-west-1:123456789012:service/web"
    assert parse_hook(raw).service_name == "web"


@pytest.mark.parametrize("field", ["eventName", "hookId", "hookType", "lifecycleStage", "serviceDeploymentArn"])
def test_a_hook_event_without_what_the_deployer_acts_on_is_refused(field: str) -> None:
    raw = load_event("ecs_hook_awaiting_action")
    del raw["detail"][field]
    assert f"detail.{field}: Field required" in refused(EcsHookStateChangeEvent, raw)


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        (
            "serviceDeploymentArn",
            "arn:aws:ecs:eu-west-1:123456789012:service/prod/web",
            "serviceDeploymentArn is not an ECS service deployment ARN",
        ),
        (
            "serviceArn",
            "arn:aws:ecs:eu-west-1:123456789012:service/prod/api",
            "serviceArn names another service than serviceDeploymentArn",
        ),
        (
            "serviceArn",
            "arn:aws:ecs:eu-west-1:123456789012:service/dev/web",
            "serviceArn names another service than serviceDeploymentArn",
        ),
        ("serviceArn", "web", "serviceArn is not an ECS service ARN"),
        (
            "clusterArn",
            "arn:aws:ecs:eu-west-1:123456789012:cluster/dev",
            "clusterArn names another cluster than serviceDeploymentArn",
        ),
        ("clusterArn", "prod", "clusterArn is not an ECS cluster ARN"),
        ("hookId", "ecs-pause-with space", "detail.hookId"),
        ("expiresAt", "2026-03-05T16:04:41", "detail.expiresAt"),
    ],
)
def test_a_malformed_hook_event_is_refused_with_what_is_wrong(field: str, value: str, says: str) -> None:
    raw = load_event("ecs_hook_awaiting_action")
    raw["detail"][field] = value
    message = refused(EcsHookStateChangeEvent, raw)
    assert says in message
    assert raw["id"] in message


def test_a_hook_event_naming_two_service_deployments_is_refused() -> None:
    raw = load_event("ecs_hook_awaiting_action")
    raw["resources"] = ["arn:aws:ecs:eu-west-1:123456789012:service-deployment/prod/web/another"]
    assert "resources names another service deployment" in refused(EcsHookStateChangeEvent, raw)


def test_the_undocumented_shape_the_deployer_used_to_expect_is_refused() -> None:
    # GIVEN a hook event as the deployer guessed it before AWS documented it: the service ARN in
    # resources, a deploymentId, no hookType
    raw = load_event("ecs_hook_awaiting_action")
    raw["resources"] = ["arn:aws:ecs:eu-west-1:123456789012:service/prod/web"]
    raw["detail"]["deploymentId"] = "ecs-svc/6405940160831029548"
    del raw["detail"]["hookType"]
    # THEN it is refused for what it lacks
    assert "detail.hookType: Field required" in refused(EcsHookStateChangeEvent, raw)
