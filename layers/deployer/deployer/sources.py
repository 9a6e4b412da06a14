"""The one shape of a push, whatever sent it: a CodeCommit event, a GitHub webhook or a GitLab
webhook all become a `Push`, and `flow.on_push` starts releases from it. Everything after the
push (the release, the build, the stages) does not know where it came from.

| field       | CodeCommit event      | GitHub `push` webhook    | GitLab "Push Hook"          |
|-------------|-----------------------|--------------------------|-----------------------------|
| provider    | codecommit            | github                   | gitlab                      |
| repository  | detail.repositoryName | repository.full_name     | project.path_with_namespace |
| branch      | detail.referenceName  | ref minus refs/heads/    | ref minus refs/heads/       |
| commit      | detail.commitId       | after                    | checkout_sha (else after)   |
| previous    | detail.oldCommitId    | before (None if created) | before (None if zeros)      |
| pusher      | detail.callerUserArn  | github:<pusher.name>     | gitlab:<user_username>      |
| pushed at   | the event's time      | repository.pushed_at     | when the webhook arrived    |
| delivery id | codecommit:<event id> | github:<X-GitHub-Delivery> | gitlab:<X-Gitlab-Event-UUID> |

The delivery id is the idempotency key of the delivery, namespaced by provider so that ids from
two providers can never collide.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from deployer.events.codecommit import CodeCommitReferenceEvent

Provider = Literal["codecommit", "github", "gitlab"]
PROVIDERS: tuple[Provider, ...] = ("codecommit", "github", "gitlab")
ZERO_COMMIT = "0" * 40


@dataclass(frozen=True)
class Push:
    """A branch now points at `commit`: what starts releases."""

    provider: Provider
    repository: str
    branch: str
    commit: str
    previous_commit: str | None
    pusher: str | None
    pushed_at: datetime
    delivery_id: str

    @property
    def pushed_at_text(self) -> str:
        """The push time as the release store keys it (seconds, UTC)."""
        return self.pushed_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    @property
    def label(self) -> str:
        """`web-app` for CodeCommit (as before), `github:OWNER/REPO` for the others."""
        return self.repository if self.provider == "codecommit" else f"{self.provider}:{self.repository}"

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (the idempotency layer hashes and stores it)."""
        data = asdict(self)
        data["pushed_at"] = self.pushed_at.isoformat()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Push:
        return cls(**{**data, "pushed_at": datetime.fromisoformat(str(data["pushed_at"]))})


def delivery_key(provider: Provider, delivery: str) -> str:
    """The namespaced idempotency key of one delivery."""
    return f"{provider}:{delivery}"


def from_codecommit(event: CodeCommitReferenceEvent) -> Push | str:
    """The push a CodeCommit branch event describes, or why it starts nothing (a tag, a deleted
    branch)."""
    detail = event.detail
    if detail.reference_type != "branch":
        return f"tag {detail.reference_name}: only branch pushes deploy"
    if detail.event == "referenceDeleted" or detail.commit_id is None:
        return f"branch {detail.reference_name} deleted: nothing to deploy"
    return Push(
        provider="codecommit",
        repository=detail.repository_name,
        branch=detail.reference_name,
        commit=detail.commit_id,
        previous_commit=detail.old_commit_id,
        pusher=detail.caller_user_arn,
        pushed_at=event.time,
        delivery_id=delivery_key("codecommit", event.id),
    )
