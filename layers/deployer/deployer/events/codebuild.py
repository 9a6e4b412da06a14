"""CodeBuild's "CodeBuild Build State Change": a build that ended (or changed state), with its
environment, exported variables (IMAGE_URI) and logs."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal, Self

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    model_validator,
)

from deployer.events.envelope import EventBridgeEnvelope, Token, _Deferred

__all__ = [
    "CODEBUILD_SOURCE",
    "CODEBUILD_STATE_CHANGE",
    "FINAL_BUILD_STATUSES",
    "BuildStatus",
    "CodeBuildStateChangeDetail",
    "CodeBuildStateChangeEvent",
]
CodeBuildSource = Literal["aws.codebuild"]
CodeBuildStateChange = Literal["CodeBuild Build State Change"]
CODEBUILD_SOURCE: Final[CodeBuildSource] = "aws.codebuild"
CODEBUILD_STATE_CHANGE: Final[CodeBuildStateChange] = "CodeBuild Build State Change"
# CodeBuild project names (botocore `codebuild`, ProjectName).
ProjectName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{1,149}$")]
EnvName = Annotated[str, StringConstraints(min_length=1, max_length=256)]
ShortText = Annotated[str, StringConstraints(max_length=1024)]


# --- CodeBuild "CodeBuild Build State Change" --------------------------------------------------
# Shape: CodeBuild User Guide, "Build notifications input format reference"
# (docs.aws.amazon.com/codebuild/latest/userguide/sample-build-notifications.html, section
# sample-build-notifications-ref; awsdocs/aws-codebuild-user-guide
# doc_source/sample-build-notifications.md), and the fixture
# example-codebuild-state-change.json of the aws_lambda_events crate (docs.rs), which shows
# numbers as floats ("build-number": 55.0, "timeout-in-minutes": 60.0). Statuses: botocore
# `codebuild` model, shape StatusType.


class BuildStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    FAULT = "FAULT"
    TIMED_OUT = "TIMED_OUT"
    STOPPED = "STOPPED"
    UNKNOWN = "UNKNOWN"
    """A status this code does not know (a newer CodeBuild): neither final nor in progress."""


FINAL_BUILD_STATUSES: Final = frozenset(
    {BuildStatus.SUCCEEDED, BuildStatus.FAILED, BuildStatus.FAULT, BuildStatus.TIMED_OUT, BuildStatus.STOPPED}
)

_MONTHS: Final = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
# "Sep 1, 2017 4:12:29 PM". Any whitespace: newer Java runtimes put U+202F before AM/PM.
_CODEBUILD_TIME: Final = re.compile(
    r"(?P<month>[A-Z][a-z]{2})\s+(?P<day>[0-9]{1,2}),\s+(?P<year>[0-9]{4})\s+"
    r"(?P<hour>[0-9]{1,2}):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})\s*(?P<half>AM|PM)"
)


def _codebuild_time(value: object) -> object:
    """Parse CodeBuild's "Sep 1, 2017 4:12:29 PM" as UTC (the documented sample's envelope time
    is 16:14:28Z for a build that started at 4:12:29 PM). Other strings go on to pydantic's own
    ISO 8601 parsing; month names are matched here, not with the locale-dependent strptime."""
    if not isinstance(value, str):
        return value
    match = _CODEBUILD_TIME.fullmatch(value.strip())
    if match is None:
        return value
    month = _MONTHS.get(match["month"])
    hour = int(match["hour"])
    if month is None or not 1 <= hour <= 12:
        raise ValueError("not a CodeBuild time like 'Sep 1, 2017 4:12:29 PM'")
    hour = hour % 12 + (12 if match["half"] == "PM" else 0)
    return datetime(
        int(match["year"]),
        month,
        int(match["day"]),
        hour,
        int(match["minute"]),
        int(match["second"]),
        tzinfo=UTC,
    )


class BuildEnvironmentVariable(_Deferred):
    name: EnvName
    value: str
    type: Token | None = None  # PLAINTEXT | PARAMETER_STORE | SECRETS_MANAGER


class ExportedVariable(_Deferred):
    name: EnvName
    value: str | None = None


class BuildEnvironment(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    environment_variables: list[BuildEnvironmentVariable] = Field(default_factory=list, alias="environment-variables")


class BuildLogs(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    group_name: str | None = Field(None, alias="group-name")
    stream_name: str | None = Field(None, alias="stream-name")
    deep_link: str | None = Field(None, alias="deep-link")


class BuildAdditionalInformation(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    build_complete: bool | None = Field(None, alias="build-complete")
    build_number: int | None = Field(None, alias="build-number")  # arrives as 55.0
    build_start_time: Annotated[datetime | None, BeforeValidator(_codebuild_time)] = Field(
        None, alias="build-start-time"
    )
    timeout_in_minutes: int | None = Field(None, alias="timeout-in-minutes")
    initiator: ShortText | None = None
    source_version: ShortText | None = Field(None, alias="source-version")
    environment: BuildEnvironment = Field(default_factory=BuildEnvironment)
    # Absent when the buildspec exports nothing; names starting with AWS_ cannot be exported.
    exported_environment_variables: list[ExportedVariable] | None = Field(None, alias="exported-environment-variables")
    logs: BuildLogs | None = None


# arn:aws:codebuild:region:account:build/<project>:<build uuid>; StartBuild's build.arn.
_BUILD_ARN: Final = re.compile(
    r"arn:aws[a-z-]*:codebuild:[a-z0-9-]+:[0-9]{12}:build/(?P<project>[A-Za-z0-9][A-Za-z0-9_-]{1,149})"
    r":[A-Za-z0-9-]{1,64}"
)


class CodeBuildStateChangeDetail(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    build_status: Annotated[str, StringConstraints(min_length=1, max_length=64)] = Field(alias="build-status")
    build_id: Annotated[str, StringConstraints(max_length=512)] = Field(alias="build-id")
    project_name: ProjectName = Field(alias="project-name")
    additional_information: BuildAdditionalInformation = Field(alias="additional-information")
    current_phase: Token | None = Field(None, alias="current-phase")
    # "[]" (a string) in the documented sample; nothing reads it, so any JSON is accepted.
    current_phase_context: JsonValue = Field(None, alias="current-phase-context")

    @model_validator(mode="after")
    def _build_of_this_project(self) -> Self:
        match = _BUILD_ARN.fullmatch(self.build_id)
        if match is None:
            raise ValueError("build-id is not a CodeBuild build ARN")
        if match["project"] != self.project_name:
            raise ValueError("build-id names another project than project-name")
        return self

    @property
    def status(self) -> BuildStatus:
        try:
            return BuildStatus(self.build_status)
        except ValueError:
            return BuildStatus.UNKNOWN

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_BUILD_STATUSES

    def env_override(self, name: str) -> str | None:
        """The plaintext value of an environment variable of the build (StartBuild's overrides
        come back here). PARAMETER_STORE and SECRETS_MANAGER entries hold a reference, not a
        value, so they count as absent."""
        found: str | None = None
        for variable in self.additional_information.environment.environment_variables:
            if variable.name == name and variable.type in (None, "PLAINTEXT"):
                found = variable.value
        return found

    def exported(self, name: str) -> str | None:
        """A variable the buildspec exported (`env: exported-variables`); empty counts as absent."""
        found: str | None = None
        for variable in self.additional_information.exported_environment_variables or ():
            if variable.name == name:
                found = variable.value or None
        return found

    @property
    def log_link(self) -> str | None:
        """The console link to the build's logs, only if it is an https URL (it goes into Slack)."""
        logs = self.additional_information.logs
        link = logs.deep_link if logs is not None else None
        return link if link is not None and link.startswith("https://") else None


class CodeBuildStateChangeEvent(EventBridgeEnvelope):
    source: CodeBuildSource
    detail_type: CodeBuildStateChange = Field(alias="detail-type")
    detail: CodeBuildStateChangeDetail

    @property
    def status(self) -> BuildStatus:
        return self.detail.status

    @property
    def is_final(self) -> bool:
        return self.detail.is_final

    def env_override(self, name: str) -> str | None:
        return self.detail.env_override(name)

    def exported(self, name: str) -> str | None:
        return self.detail.exported(name)

    @property
    def log_link(self) -> str | None:
        return self.detail.log_link
