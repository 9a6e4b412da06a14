"""CodeCommit's "CodeCommit Repository State Change": a branch or tag created, updated or deleted."""

from __future__ import annotations

from typing import Annotated, Final, Literal, Self

from pydantic import (
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from deployer.events.envelope import CommitId, EventBridgeEnvelope, Token, _Deferred

__all__ = [
    "CODECOMMIT_SOURCE",
    "CODECOMMIT_STATE_CHANGE",
    "REF_NAME_MAX",
    "CodeCommitReferenceDetail",
    "CodeCommitReferenceEvent",
]

# --- Sources and detail types ------------------------------------------------------------------
# Each constant is typed by its own Literal, so mypy proves the models pin the same strings.

CodeCommitSource = Literal["aws.codecommit"]
CodeCommitStateChange = Literal["CodeCommit Repository State Change"]

CODECOMMIT_SOURCE: Final[CodeCommitSource] = "aws.codecommit"
CODECOMMIT_STATE_CHANGE: Final[CodeCommitStateChange] = "CodeCommit Repository State Change"


# --- Field types -------------------------------------------------------------------------------
# pydantic-core searches a pattern anywhere in the string: every pattern below is anchored.

REF_NAME_MAX: Final = 1024
"""Longest git ref name accepted. Git itself sets no limit, CodeCommit's API bounds branch names
at 256 characters (botocore `codecommit` model, shape BranchName) but not tags pushed with git;
1024 leaves room for any real branch or tag and still refuses absurd input."""
# CodeCommit repository names: 1-100 of [A-Za-z0-9_.-] (botocore `codecommit`, RepositoryName).
RepositoryName = Annotated[str, StringConstraints(max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")]
RepositoryId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
# What `git check-ref-format` refuses in any ref: control characters, space, ~ ^ : ? * [ and \.
RefName = Annotated[
    str,
    StringConstraints(max_length=REF_NAME_MAX, pattern=r"^[^\x00-\x20\x7f~^:?*\[\\]+$"),
]
RefFullName = Annotated[
    str,
    StringConstraints(max_length=REF_NAME_MAX + len("refs/heads/"), pattern=r"^refs/[^\x00-\x20\x7f]+$"),
]
Arn = Annotated[str, StringConstraints(max_length=2048, pattern=r"^arn:[a-z0-9-]+:\S+$")]


# --- CodeCommit "CodeCommit Repository State Change" -------------------------------------------
# Shape: CodeCommit User Guide, "Monitoring CodeCommit events in Amazon EventBridge and Amazon
# CloudWatch Events" (docs.aws.amazon.com/codecommit/latest/userguide/monitoring-events.html,
# awsdocs/aws-codecommit-user-guide doc_source/monitoring-events.md): referenceCreated has no
# oldCommitId, referenceDeleted no commitId, merges add baseCommitId, sourceCommitId,
# destinationCommitId, mergeOption, conflictDetailsLevel, conflictResolutionStrategy.
# callerUserArn appears in real events though not in those samples (REFERENCE.md).


class CodeCommitReferenceDetail(_Deferred):
    model_config = ConfigDict(populate_by_name=True)

    event: Literal["referenceCreated", "referenceUpdated", "referenceDeleted"]
    reference_type: Literal["branch", "tag"] = Field(alias="referenceType")
    reference_name: RefName = Field(alias="referenceName")
    reference_full_name: RefFullName = Field(alias="referenceFullName")
    repository_name: RepositoryName = Field(alias="repositoryName")
    repository_id: RepositoryId = Field(alias="repositoryId")
    commit_id: CommitId | None = Field(None, alias="commitId")
    old_commit_id: CommitId | None = Field(None, alias="oldCommitId")
    base_commit_id: CommitId | None = Field(None, alias="baseCommitId")
    source_commit_id: CommitId | None = Field(None, alias="sourceCommitId")
    destination_commit_id: CommitId | None = Field(None, alias="destinationCommitId")
    # FAST_FORWARD_MERGE | SQUASH_MERGE | THREE_WAY_MERGE, FILE_LEVEL | LINE_LEVEL,
    # NONE | ACCEPT_SOURCE | ACCEPT_DESTINATION | AUTOMERGE today: kept open for new values.
    merge_option: Token | None = Field(None, alias="mergeOption")
    conflict_details_level: Token | None = Field(None, alias="conflictDetailsLevel")
    conflict_resolution_strategy: Token | None = Field(None, alias="conflictResolutionStrategy")
    caller_user_arn: Arn | None = Field(None, alias="callerUserArn")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        prefix = "refs/heads/" if self.reference_type == "branch" else "refs/tags/"
        if self.reference_full_name != prefix + self.reference_name:
            raise ValueError("referenceFullName does not match referenceType and referenceName")
        if self.event != "referenceDeleted" and self.commit_id is None:
            raise ValueError(f"commitId is required for {self.event}")
        if self.event != "referenceCreated" and self.old_commit_id is None:
            raise ValueError(f"oldCommitId is required for {self.event}")
        return self

    @property
    def is_branch_push(self) -> bool:
        """A branch now points at `commit_id` (created or updated): the only case that builds."""
        return self.reference_type == "branch" and self.event != "referenceDeleted"

    @property
    def is_merge(self) -> bool:
        return self.source_commit_id is not None and self.destination_commit_id is not None


class CodeCommitReferenceEvent(EventBridgeEnvelope):
    source: CodeCommitSource
    detail_type: CodeCommitStateChange = Field(alias="detail-type")
    detail: CodeCommitReferenceDetail
