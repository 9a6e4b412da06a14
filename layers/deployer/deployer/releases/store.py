"""The releases in DynamoDB (`ReleaseStore`): records, transitions, ordering and per-service locks.

One table, keys `pk` / `sk` (see the README's "State" section):

| item                | pk                          | sk              | notes                                  |
|---------------------|-----------------------------|-----------------|----------------------------------------|
| release             | RELEASE#<release id>        | META            | gsi1: PIPELINE#<name> / <order key>;   |
|                     |                             |                 | pending (sparse): PIPELINE#<name> while |
|                     |                             |                 | not deploying, WAITING#<name> while it  |
|                     |                             |                 | waits for an approval, INFLIGHT#<name> |
|                     |                             |                 | while DEPLOYING or DEPLOYED (the        |
|                     |                             |                 | reconciler's sweep reads these)        |
| build index         | BUILD#<build arn>           | META            | build -> release                       |
| deployment index    | DEPLOYMENT#<ecs deploy id>  | META            | ECS deployment -> release, stage       |
| stage watermark     | PIPELINE#<name>             | STAGE#<stage>   | newest release that entered the stage  |
| service lock        | SERVICE#<cluster>/<service> | LOCK            | holder and the newest waiter           |
| before-task index   | BEFORE#<token>              | META            | before-task (startedBy) -> release, stage |
| registered revision | PIPELINE#<name>             | REGISTERED#...  | <family>#<revision>: one the deployer  |
|                     |                             |                 | registered and has not deregistered    |
|                     |                             |                 | (cleaning up touches only these)       |
| idempotency records | idempotency#...             | (hash)          | written by Powertools                  |

Ordering. A release's `order_key` is its push time (the CodeCommit event's `time`) plus its
depth in a chain of pushes made in the same second (`referenceUpdated` names the previous commit),
so a later push always sorts after an earlier one whatever order EventBridge delivers them in.
Every change is a conditional write on `version`, so concurrent handlers never lose an update.
"""

from __future__ import annotations

import contextlib
import enum
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from deployer.errors import TransientError
from deployer.releases.model import (
    IN_FLIGHT,
    NOT_YET_DEPLOYING,
    Release,
    ReleaseState,
    ServiceRecord,
    StageRecord,
    StageState,
    Transition,
    TransitionListener,
    check_transition,
    now_iso,
    pipeline_of,
    release_id_for,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


# The lock item's map of waiters from other pipelines than the next in line's: pipeline ->
# {release, stage, order} (see `ReleaseStore.acquire_service`).
OTHER_WAITERS = "other_waiters"


class ConflictError(TransientError):
    """A conditional write lost a race; re-read and decide again."""


@dataclass(frozen=True)
class LockResult:
    acquired: bool
    holder: str
    superseded_waiter: str | None = None


_TABLE_CALLS = frozenset({"get_item", "put_item", "update_item", "delete_item", "query", "scan"})


class _TranslatedTable:
    """The boto3 Table with each call inside `aws.translate` (throttling and 5xx become
    TransientError, other AWS errors DeploymentError), except a failed condition, which the store
    answers itself (ConflictError, a lost race for a lock or a watermark)."""

    def __init__(self, table: Any) -> None:
        self._table = table

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._table, name)
        if name not in _TABLE_CALLS:
            return attribute

        def call(**kwargs: Any) -> Any:
            from botocore.exceptions import BotoCoreError, ClientError

            from deployer import aws

            try:
                return attribute(**kwargs)
            except ClientError as exc:
                if aws.error_code(exc) == "ConditionalCheckFailedException":
                    raise
                with aws.translate(f"DynamoDB {name} on {self._table.name}"):
                    raise
            except BotoCoreError:
                with aws.translate(f"DynamoDB {name} on {self._table.name}"):
                    raise

        return call


class ReleaseStore:
    """Everything the functions read and write about releases."""

    def __init__(self, table: Table, on_transition: TransitionListener | None = None) -> None:
        self._table: Table = _TranslatedTable(table)  # type: ignore[assignment]
        self._on_transition = on_transition
        self._actor: str | None = None

    @contextlib.contextmanager
    def acting_as(self, actor: str) -> Iterator[None]:
        """Every transition made inside says who made it: its reason (stored, shown by `deployer
        status`, published as "Release State Change") starts with "<actor>: ". The reconciler's
        work is told apart from the events' this way."""
        previous, self._actor = self._actor, actor
        try:
            yield
        finally:
            self._actor = previous

    # -- reads ------------------------------------------------------------------------------

    def get(self, release_id: str, *, consistent: bool = True) -> Release | None:
        item = self._table.get_item(Key=_release_key(release_id), ConsistentRead=consistent).get("Item")
        return _release_from_item(item) if item else None

    def release_for_build(self, build_arn: str) -> str | None:
        item = self._table.get_item(Key={"pk": f"BUILD#{build_arn}", "sk": "META"}).get("Item")
        return str(item["release_id"]) if item else None

    def deployment(self, deployment_id: str) -> tuple[str, str] | None:
        """(release id, stage) of an ECS deployment this tool started, else None."""
        item = self._table.get_item(Key={"pk": f"DEPLOYMENT#{deployment_id}", "sk": "META"}).get("Item")
        return (str(item["release_id"]), str(item["stage"])) if item else None

    def list_releases(self, pipeline: str, *, newest_first: bool = True, limit: int = 50) -> list[Release]:
        response = self._table.query(
            IndexName="gsi1",
            KeyConditionExpression="gsi1pk = :p",
            ExpressionAttributeValues={":p": f"PIPELINE#{pipeline}"},
            ScanIndexForward=not newest_first,
            Limit=limit,
        )
        return [_release_from_item(item) for item in response["Items"]]

    def releases_since(
        self, pipeline: str, order_key: str, *, page_size: int | None = None
    ) -> tuple[list[Release], int]:
        """Every release of `pipeline` whose order key (its push time first) is `order_key` or
        later, oldest first: one Query on gsi1 per page, never a Scan. Returns (releases, pages)."""
        kwargs: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p AND gsi1sk >= :k",
            "ExpressionAttributeValues": {":p": f"PIPELINE#{pipeline}", ":k": order_key},
        }
        if page_size is not None:
            kwargs["Limit"] = page_size
        releases: list[Release] = []
        pages = 0
        while True:
            response = self._table.query(**kwargs)
            pages += 1
            releases.extend(_release_from_item(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return releases, pages
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def _pipeline_keys(self, pipeline: str, condition: str, values: Mapping[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": f"gsi1pk = :p AND {condition}",
            "ExpressionAttributeValues": {":p": f"PIPELINE#{pipeline}", **values},
        }
        while True:
            response = self._table.query(**kwargs)
            items.extend(response["Items"])
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # -- creation and ordering --------------------------------------------------------------

    def create(
        self,
        *,
        pipeline: str,
        repository: str,
        branch: str,
        commit: str,
        previous_commit: str | None,
        pusher: str | None,
        pushed_at: str,
    ) -> tuple[Release, bool]:
        """Record a push. Returns (release, created). A redelivered push returns the existing
        release with created False. A push older than one already recorded is born SUPERSEDED."""
        release_id = release_id_for(pipeline, commit)
        existing = self.get(release_id)
        if existing:
            return existing, False

        same_second = self._pipeline_keys(pipeline, "begins_with(gsi1sk, :t)", {":t": f"{pushed_at}#"})
        depth = 0
        newer_in_chain = False
        for item in same_second:
            if item.get("previous_commit") == commit:
                newer_in_chain = True
            if item.get("commit") == previous_commit:
                depth = max(depth, int(item.get("chain_depth", 0)) + 1)
        order_key = f"{pushed_at}#{depth:03d}#{commit[:12]}"
        later = self._pipeline_keys(pipeline, "gsi1sk > :k", {":k": f"{pushed_at}#~"})
        stamp = now_iso()
        release = Release(
            release_id=release_id,
            pipeline=pipeline,
            repository=repository,
            branch=branch,
            commit=commit,
            previous_commit=previous_commit,
            pusher=pusher,
            pushed_at=pushed_at,
            order_key=order_key,
            state=ReleaseState.BUILDING,
            created_at=stamp,
            updated_at=stamp,
        )
        older_than: str | None = None
        if later or newer_in_chain:
            newest = max(later, key=lambda i: str(i["gsi1sk"])) if later else None
            older_than = str(newest["commit"])[:12] if newest else "a push made in the same second"
            release.state = ReleaseState.SUPERSEDED
            release.reason = f"an older push than {older_than}, which is already recorded; not built"
        item = _release_to_item(release)
        item["chain_depth"] = depth
        try:
            self._table.put_item(Item=item, ConditionExpression="attribute_not_exists(pk)")
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            current = self.get(release_id)
            if current is None:  # pragma: no cover - deleted in between; let EventBridge retry
                raise ConflictError(f"release {release_id} vanished while being created") from None
            return current, False
        self._notify(release, None, release.state, None, release.reason)
        return release, True

    def create_rollback(
        self,
        *,
        pipeline: str,
        stage: str,
        target: Mapping[str, Any],
        undoes: str | None,
        requested_by: Mapping[str, Any],
        repository: str,
        branch: str,
    ) -> Release:
        """A release of kind "rollback": it redeploys `target` (an entry of `stage_history`) to
        `stage` only. It orders after every push recorded so far, so the stage's watermark takes
        it and an older release still on its way cannot undo the rollback."""
        moment = datetime.now(UTC)
        stamp = now_iso()
        release = Release(
            release_id=f"{pipeline}@rollback-{stage}-{moment:%Y%m%dT%H%M%S%f}",
            pipeline=pipeline,
            repository=repository,
            branch=branch,
            commit=str(target.get("commit") or ""),
            pushed_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            order_key=f"{moment:%Y-%m-%dT%H:%M:%SZ}#999#rollback",
            state=ReleaseState.BUILT,
            created_at=stamp,
            updated_at=stamp,
            stage=stage,
            image_uri=target.get("image_uri"),
            reason=f"rollback of {stage} to {_revisions_text(target)}",
            kind="rollback",
            rollback_of=undoes,
            requested_by=dict(requested_by),
            target_task_definition_arn=str(target["task_definition_arn"]) if not target.get("services") else None,
            target_task_definitions={
                f"{entry['cluster']}/{entry['service']}": str(entry["task_definition_arn"])
                for entry in target["services"]
            }
            if target.get("services")
            else None,
        )
        self._table.put_item(Item=_release_to_item(release), ConditionExpression="attribute_not_exists(pk)")
        self._notify(release, None, release.state, stage, release.reason)
        return release

    def supersede_older(self, release: Release) -> list[str]:
        """Newer commit wins: older releases of the pipeline that have not started deploying
        end SUPERSEDED. Returns their ids. Reads only such releases: the sparse index `pending`
        holds a release while it is BUILDING or BUILT, so the cost does not grow with history."""
        superseded = []
        response = self._table.query(
            IndexName="pending",
            KeyConditionExpression="pending_pk = :p AND gsi1sk < :k",
            ExpressionAttributeValues={":p": f"PIPELINE#{release.pipeline}", ":k": release.order_key},
        )
        for item in response["Items"]:
            older = self.get(str(item["pk"]).removeprefix("RELEASE#"))
            if older is None or older.state not in NOT_YET_DEPLOYING:
                continue
            try:
                self.transition(
                    older,
                    ReleaseState.SUPERSEDED,
                    reason=f"superseded by {release.short_commit} before it started deploying",
                    allowed_from=NOT_YET_DEPLOYING,
                )
                superseded.append(older.release_id)
            except ConflictError:
                continue  # it moved meanwhile (started deploying or ended): leave it to its own rules
        return superseded

    def waiting_releases(self, pipeline: str, *, older_than: str | None = None) -> list[Release]:
        """The pipeline's releases waiting for an approval (AWAITING_APPROVAL), oldest first, read
        through the sparse `pending` index: the cost follows how many wait, not the history."""
        return self._pending(f"WAITING#{pipeline}", {ReleaseState.AWAITING_APPROVAL}, older_than)

    def building_releases(self, pipeline: str) -> list[Release]:
        """The pipeline's releases BUILDING or BUILT (their first stage not started), oldest first,
        through the sparse `pending` index."""
        return self._pending(f"PIPELINE#{pipeline}", NOT_YET_DEPLOYING, None)

    def inflight_releases(self, pipeline: str) -> list[Release]:
        """The pipeline's releases DEPLOYING or DEPLOYED (between stages), oldest first, through the
        sparse `pending` index (entries `INFLIGHT#<pipeline>`): the reconciler's sweep reads these,
        never the history. Releases written before that entry existed: `backfill_inflight`."""
        return self._pending(f"INFLIGHT#{pipeline}", IN_FLIGHT, None)

    def _pending(self, key: str, states: Iterable[ReleaseState], older_than: str | None) -> list[Release]:
        wanted = frozenset(states)
        condition = "pending_pk = :p" + (" AND gsi1sk < :k" if older_than is not None else "")
        values: dict[str, Any] = {":p": key}
        if older_than is not None:
            values[":k"] = older_than
        kwargs: dict[str, Any] = {
            "IndexName": "pending",
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        found: list[Release] = []
        while True:
            response = self._table.query(**kwargs)
            for item in response["Items"]:
                release = self.get(str(item["pk"]).removeprefix("RELEASE#"))
                if release is not None and release.state in wanted:
                    found.append(release)
            if "LastEvaluatedKey" not in response:
                return found
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def backfill_inflight(self, pipeline: str) -> list[str]:
        """One-off, after upgrading: give the releases of `pipeline` that are DEPLOYING or DEPLOYED
        but were written before the `INFLIGHT#` index entry existed that entry, so the reconciler
        finds them. Reads the pipeline's whole history once (index gsi1), writes only those
        releases' `pending_pk` (conditionally: a release that moved meanwhile is left as it is).
        Returns their ids."""
        kwargs: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p",
            "ExpressionAttributeValues": {":p": f"PIPELINE#{pipeline}"},
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self._table.query(**kwargs)
            items.extend(response["Items"])
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        done: list[str] = []
        for item in items:
            if item.get("pending_pk") or item.get("state") not in {s.value for s in IN_FLIGHT}:
                continue
            try:
                self._table.update_item(
                    Key={"pk": item["pk"], "sk": item["sk"]},
                    UpdateExpression="SET pending_pk = :p",
                    ConditionExpression="attribute_not_exists(pending_pk) AND #state = :s AND version = :v",
                    ExpressionAttributeNames={"#state": "state"},
                    ExpressionAttributeValues={
                        ":p": f"INFLIGHT#{pipeline}",
                        ":s": item["state"],
                        ":v": item.get("version", 0),
                    },
                )
            except self._table.meta.client.exceptions.ConditionalCheckFailedException:
                continue  # it moved (and a write of its own gave it its entry), or another backfill ran
            done.append(str(item["pk"]).removeprefix("RELEASE#"))
        return done

    def enter_stage(self, release: Release, stage: str) -> bool:
        """Claim the stage's watermark: False if a newer release already entered this stage
        (a stage never goes backwards, docs/design.md invariant 2). Idempotent for the same release."""
        try:
            self._table.update_item(
                Key={"pk": f"PIPELINE#{release.pipeline}", "sk": f"STAGE#{stage}"},
                UpdateExpression="SET order_key = :k, release_id = :r, entered_at = :t",
                ConditionExpression="attribute_not_exists(order_key) OR order_key <= :k",
                ExpressionAttributeValues={
                    ":k": release.order_key,
                    ":r": release.release_id,
                    ":t": now_iso(),
                },
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def stage_holder(self, pipeline: str, stage: str) -> str | None:
        """The newest release that entered `stage`, if any."""
        item = self._table.get_item(Key={"pk": f"PIPELINE#{pipeline}", "sk": f"STAGE#{stage}"}).get("Item")
        return str(item["release_id"]) if item else None

    # -- transitions ------------------------------------------------------------------------

    def save(self, release: Release, **changes: Any) -> Release:
        """Write `changes` to the release if nobody else changed it since it was read."""
        updated = replace(release, **changes, version=release.version + 1, updated_at=now_iso())
        item = _release_to_item(updated)
        try:
            self._table.put_item(
                Item=item,
                ConditionExpression="attribute_exists(pk) AND version = :v",
                ExpressionAttributeValues={":v": release.version},
            )
        except self._table.meta.client.exceptions.ConditionalCheckFailedException:
            raise ConflictError(f"release {release.release_id} changed while being updated") from None
        # the caller's object becomes the saved one: every holder of `release` sees what was written
        vars(release).update(vars(updated))
        return release

    def transition(
        self,
        release: Release,
        to_state: ReleaseState,
        *,
        stage: str | None = None,
        reason: str | None = None,
        allowed_from: Iterable[ReleaseState] | None = None,
        announce: bool = False,
        **changes: Any,
    ) -> Release:
        """Move the release to `to_state` (and publish the change). `allowed_from` guards the
        move; a release that is no longer in one of those states raises ConflictError. A move to
        the same state is published only with `announce` (progress within a state that people
        follow: a before-task started or ended, one service of a stage of several completed)."""
        if allowed_from is not None and release.state not in set(allowed_from):
            raise ConflictError(f"release {release.release_id} is {release.state}, not in {sorted(allowed_from)}")
        check_transition(release.release_id, release.state, to_state)
        from_state = release.state
        stage_name = stage if stage is not None else release.stage
        if self._actor and reason and not reason.startswith(f"{self._actor}: "):
            reason = f"{self._actor}: {reason}"
        if to_state is ReleaseState.DEPLOYING and from_state is not ReleaseState.DEPLOYING:
            changes.setdefault("deploying_since", now_iso())
        self.save(release, state=to_state, stage=stage_name, reason=reason, **changes)
        if from_state != to_state or announce:
            self._notify(release, from_state, to_state, stage_name, reason)
        return release

    def set_stage(self, release: Release, stage: str, record: StageRecord) -> Release:
        stages = dict(release.stages)
        stages[stage] = record
        return self.save(release, stages=stages)

    def _notify(
        self,
        release: Release,
        from_state: ReleaseState | None,
        to_state: ReleaseState,
        stage: str | None,
        reason: str | None,
    ) -> None:
        if self._on_transition:
            self._on_transition(Transition(release, from_state, to_state, stage, reason))

    # -- per-stage history of successful deployments (what a rollback goes back to) ------------

    def record_success(self, release: Release, stage: str, record: StageRecord) -> None:
        """Remember that `stage` of the pipeline now runs `record`'s revision (newest first)."""
        finished = record.finished_at or now_iso()
        item: dict[str, Any] = {
            "pk": f"PIPELINE#{release.pipeline}",
            "sk": f"DEPLOYED#{stage}#{finished}",
            "release_id": release.release_id,
            "kind": release.kind,
            "commit": release.commit,
            "image_uri": release.image_uri,
            "task_definition_arn": record.task_definition_arn,
            "cluster": record.cluster,
            "service": record.service,
            "finished_at": finished,
        }
        if record.services is not None:  # what each service of the stage now runs
            item["services"] = [
                {"cluster": s.cluster, "service": s.service, "task_definition_arn": s.task_definition_arn}
                for s in record.services
            ]
        if release.rollback_of:
            item["rollback_of"] = release.rollback_of
        self._table.put_item(Item={k: v for k, v in item.items() if v is not None})

    def stage_history(self, pipeline: str, stage: str, limit: int = 20) -> list[dict[str, Any]]:
        """The stage's successful deployments, newest first."""
        response = self._table.query(
            KeyConditionExpression="pk = :p AND begins_with(sk, :s)",
            ExpressionAttributeValues={":p": f"PIPELINE#{pipeline}", ":s": f"DEPLOYED#{stage}#"},
            ScanIndexForward=False,
            Limit=limit,
        )
        return [{k: _plain(v) for k, v in item.items()} for item in response["Items"]]

    def ran_revisions(self, pipeline: str, stage: str, *, distinct: int, pages: int = 20) -> list[dict[str, Any]]:
        """The stage's successful deployments, newest first, until `distinct` different revisions of
        each family have been seen and the stage's rollback target is among them (or the history ends;
        at most `pages` pages): what cleaning up old revisions must keep. A stage of several services
        runs several families; each needs its own `distinct`."""
        from deployer.flow.rollback import rollback_target
        from deployer.housekeeping import entry_revisions, family_of

        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": f"PIPELINE#{pipeline}", ":s": f"DEPLOYED#{stage}#"},
            "ScanIndexForward": False,
            "Limit": 100,
        }
        entries: list[dict[str, Any]] = []
        for _ in range(pages):
            response = self._table.query(**kwargs)
            entries.extend({k: _plain(v) for k, v in item.items()} for item in response["Items"])
            seen: dict[str, set[str]] = {}
            for entry in entries:
                for arn in entry_revisions(entry):
                    seen.setdefault(family_of(arn), set()).add(arn)
            if seen and all(len(arns) >= distinct for arns in seen.values()) and rollback_target(entries) is not None:
                break
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return entries

    # -- revisions the deployer registered (cleaning up touches only these) ---------------------

    def record_registration(self, pipeline: str, stage: str, release_id: str, task_definition_arn: str) -> None:
        """Remember that the deployer registered this revision for `pipeline` (idempotent)."""
        family, _, revision = task_definition_arn.rsplit("/", 1)[-1].partition(":")
        self._table.put_item(
            Item={
                "pk": f"PIPELINE#{pipeline}",
                "sk": f"REGISTERED#{family}#{int(revision):010d}",
                "arn": task_definition_arn,
                "family": family,
                "revision": int(revision),
                "stage": stage,
                "release_id": release_id,
                "registered_at": now_iso(),
            }
        )

    def registered_revisions(self, pipeline: str, family: str) -> list[dict[str, Any]]:
        """The revisions of `family` the deployer registered for `pipeline` and has not deregistered,
        oldest first."""
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": "pk = :p AND begins_with(sk, :s)",
            "ExpressionAttributeValues": {":p": f"PIPELINE#{pipeline}", ":s": f"REGISTERED#{family}#"},
        }
        items: list[dict[str, Any]] = []
        while True:
            response = self._table.query(**kwargs)
            items.extend({k: _plain(v) for k, v in item.items()} for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    def forget_registration(self, pipeline: str, task_definition_arn: str) -> None:
        """The revision is deregistered: nothing more to clean up (idempotent)."""
        family, _, revision = task_definition_arn.rsplit("/", 1)[-1].partition(":")
        self._table.delete_item(Key={"pk": f"PIPELINE#{pipeline}", "sk": f"REGISTERED#{family}#{int(revision):010d}"})

    # -- indexes ----------------------------------------------------------------------------

    def index_build(self, build_arn: str, release_id: str) -> None:
        self._table.put_item(Item={"pk": f"BUILD#{build_arn}", "sk": "META", "release_id": release_id})

    def index_deployment(self, deployment_id: str, release_id: str, stage: str, cluster: str, service: str) -> None:
        """Find the stage from ECS's deployment events: by deployment id, and by service for
        rollbacks (whose events carry the rollback's own id)."""
        entry = {"release_id": release_id, "stage": stage, "deployment_id": deployment_id, "at": now_iso()}
        self._table.put_item(Item={"pk": f"DEPLOYMENT#{deployment_id}", "sk": "META", **entry})
        self._table.put_item(Item={"pk": f"SERVICE#{cluster}/{service}", "sk": "LATEST", **entry})

    def index_before_task(self, token: str, release_id: str, stage: str) -> None:
        """Find a before-task's release and stage from its "ECS Task State Change" event, whose
        startedBy carries `token` (`deployer.before.started_by`). Written before RunTask."""
        self._table.put_item(
            Item={"pk": f"BEFORE#{token}", "sk": "META", "release_id": release_id, "stage": stage, "at": now_iso()}
        )

    def before_task_of(self, token: str) -> tuple[str, str] | None:
        """(release id, stage) of the before-task started with `token`, else None (not ours)."""
        item = self._table.get_item(Key={"pk": f"BEFORE#{token}", "sk": "META"}).get("Item")
        return (str(item["release_id"]), str(item["stage"])) if item else None

    def latest_deployment(self, cluster: str, service: str) -> tuple[str, str] | None:
        """(release id, stage) of the service's latest deployment started by the deployer."""
        item = self._table.get_item(Key={"pk": f"SERVICE#{cluster}/{service}", "sk": "LATEST"}).get("Item")
        return (str(item["release_id"]), str(item["stage"])) if item else None

    # -- per-service locks (docs/design.md invariant 3) ----------------------------------------------------

    def acquire_service(self, cluster: str, service: str, release: Release, stage: str) -> LockResult:
        """Take the service's deployment lock, or queue behind its holder. Re-entrant for the
        holder. A newer waiter of the same pipeline replaces an older one, whose id is returned
        (superseded).

        One waiter is next in line (`waiter`). A release of another pipeline (a republished
        configuration can move a service between pipelines while releases hold or wait for it)
        never supersedes it: it waits in `others`, the newest waiter of each other pipeline, and
        moves up when the lock is handed on (`release_service`)."""
        key = {"pk": f"SERVICE#{cluster}/{service}", "sk": "LOCK"}
        client_errors = self._table.meta.client.exceptions
        try:
            self._table.update_item(
                Key=key,
                UpdateExpression="SET holder = :r, holder_stage = :s, holder_order = :k, acquired_at = :t",
                ConditionExpression="attribute_not_exists(holder) OR holder = :r",
                ExpressionAttributeValues={
                    ":r": release.release_id,
                    ":s": stage,
                    ":k": release.order_key,
                    ":t": now_iso(),
                },
            )
        except client_errors.ConditionalCheckFailedException:
            pass
        else:
            return LockResult(acquired=True, holder=release.release_id)
        # Held by another release: become the waiter unless a newer one of this pipeline already waits.
        for _ in range(5):
            lock = self._table.get_item(Key=key, ConsistentRead=True).get("Item") or {}
            holder = str(lock.get("holder", ""))
            if not holder:
                return self.acquire_service(cluster, service, release, stage)
            previous_waiter = lock.get("waiter")
            if previous_waiter == release.release_id:
                return LockResult(acquired=False, holder=holder)
            others: dict[str, Any] = dict(lock.get(OTHER_WAITERS) or {})  # type: ignore[arg-type]
            mine = others.get(release.pipeline)
            if mine and mine.get("release") == release.release_id:
                return LockResult(acquired=False, holder=holder)
            if previous_waiter and pipeline_of(str(previous_waiter)) != release.pipeline:
                queued = self._wait_beside(key, lock, release, stage, mine)
                if queued is None:
                    time.sleep(0.05)
                    continue
                return queued
            if previous_waiter and str(lock.get("waiter_order", "")) > release.order_key:
                return LockResult(acquired=False, holder=holder, superseded_waiter=release.release_id)
            try:
                self._table.update_item(
                    Key=key,
                    UpdateExpression="SET waiter = :r, waiter_stage = :s, waiter_order = :k",
                    ConditionExpression="holder = :h AND "
                    + ("waiter = :w" if previous_waiter else "attribute_not_exists(waiter)"),
                    ExpressionAttributeValues={
                        ":r": release.release_id,
                        ":s": stage,
                        ":k": release.order_key,
                        ":h": holder,
                        **({":w": previous_waiter} if previous_waiter else {}),
                    },
                )
            except client_errors.ConditionalCheckFailedException:
                time.sleep(0.05)
                continue
            return LockResult(
                acquired=False,
                holder=holder,
                superseded_waiter=str(previous_waiter) if previous_waiter else None,
            )
        raise ConflictError(f"service {cluster}/{service}: lock contention, retry")

    def _wait_beside(
        self, key: dict[str, str], lock: Mapping[str, Any], release: Release, stage: str, mine: Any
    ) -> LockResult | None:
        """Wait in `others` (the next in line is another pipeline's release). None: the lock
        changed meanwhile, read it again."""
        holder = str(lock["holder"])
        if mine and str(mine.get("order", "")) > release.order_key:
            return LockResult(acquired=False, holder=holder, superseded_waiter=release.release_id)
        client_errors = self._table.meta.client.exceptions
        try:
            if OTHER_WAITERS not in lock:
                self._table.update_item(
                    Key=key,
                    UpdateExpression="SET #o = :empty",
                    ConditionExpression="holder = :h AND attribute_not_exists(#o)",
                    ExpressionAttributeNames={"#o": OTHER_WAITERS},
                    ExpressionAttributeValues={":h": holder, ":empty": {}},
                )
            self._table.update_item(
                Key=key,
                UpdateExpression="SET #o.#p = :entry",
                ConditionExpression="holder = :h AND waiter = :w AND "
                + ("#o.#p.#r = :mine" if mine else "attribute_not_exists(#o.#p)"),
                ExpressionAttributeNames={
                    "#o": OTHER_WAITERS,
                    "#p": release.pipeline,
                    **({"#r": "release"} if mine else {}),
                },
                ExpressionAttributeValues={
                    ":entry": {"release": release.release_id, "stage": stage, "order": release.order_key},
                    ":h": holder,
                    ":w": lock["waiter"],
                    **({":mine": mine["release"]} if mine else {}),
                },
            )
        except client_errors.ConditionalCheckFailedException:
            return None
        return LockResult(acquired=False, holder=holder, superseded_waiter=str(mine["release"]) if mine else None)

    def release_service(self, cluster: str, service: str, release_id: str) -> tuple[str, str] | None:
        """Free the lock held by `release_id`. Returns the waiter (release id, stage) that should
        deploy next, which now holds the lock, or None. The oldest waiter of another pipeline, if
        any, becomes the next in line."""
        key = {"pk": f"SERVICE#{cluster}/{service}", "sk": "LOCK"}
        client_errors = self._table.meta.client.exceptions
        lock = self._table.get_item(Key=key, ConsistentRead=True).get("Item")
        if not lock or lock.get("holder") != release_id:
            return None
        waiter = lock.get("waiter")
        waiting: Mapping[str, Any] = lock.get(OTHER_WAITERS) or {}  # type: ignore[assignment]
        others = {str(p): dict(entry) for p, entry in waiting.items()}
        try:
            if waiter:
                values: dict[str, Any] = {
                    ":w": waiter,
                    ":s": lock["waiter_stage"],
                    ":k": lock["waiter_order"],
                    ":t": now_iso(),
                    ":r": release_id,
                }
                update = "SET holder = :w, holder_stage = :s, holder_order = :k, acquired_at = :t "
                condition = "holder = :r AND waiter = :w"
                names: dict[str, str] = {}
                if others:
                    pipeline, entry = min(others.items(), key=lambda item: str(item[1].get("order", "")))
                    update += ", waiter = :o, waiter_stage = :os, waiter_order = :ok REMOVE #o.#p"
                    condition += " AND #o.#p.#r = :o"
                    names.update({"#o": OTHER_WAITERS, "#p": pipeline, "#r": "release"})
                    values.update({":o": entry["release"], ":os": entry["stage"], ":ok": entry["order"]})
                else:
                    update += "REMOVE waiter, waiter_stage, waiter_order"
                extra: dict[str, Any] = {"ExpressionAttributeNames": names} if names else {}
                self._table.update_item(
                    Key=key,
                    UpdateExpression=update,
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                    **extra,
                )
                return str(waiter), str(lock["waiter_stage"])
            if others:  # nobody next in line, yet waiters of other pipelines: the oldest takes it
                pipeline, entry = min(others.items(), key=lambda item: str(item[1].get("order", "")))
                self._table.update_item(
                    Key=key,
                    UpdateExpression="SET holder = :o, holder_stage = :s, holder_order = :k, acquired_at = :t "
                    "REMOVE #o.#p",
                    ConditionExpression="holder = :r AND attribute_not_exists(waiter) AND #o.#p.#r = :o",
                    ExpressionAttributeNames={"#o": OTHER_WAITERS, "#p": pipeline, "#r": "release"},
                    ExpressionAttributeValues={
                        ":o": entry["release"],
                        ":s": entry["stage"],
                        ":k": entry["order"],
                        ":t": now_iso(),
                        ":r": release_id,
                    },
                )
                return str(entry["release"]), str(entry["stage"])
            self._table.delete_item(
                Key=key,
                ConditionExpression="holder = :r AND attribute_not_exists(waiter) AND "
                "(attribute_not_exists(#o) OR size(#o) = :none)",
                ExpressionAttributeNames={"#o": OTHER_WAITERS},
                ExpressionAttributeValues={":r": release_id, ":none": 0},
            )
        except client_errors.ConditionalCheckFailedException:
            raise ConflictError(f"service {cluster}/{service}: lock changed while being released") from None
        return None

    def release_services(self, keys: Iterable[tuple[str, str]], release_id: str) -> list[tuple[str, str]]:
        """`release_service` for each (cluster, service): every waiter that now holds a lock."""
        handovers: list[tuple[str, str]] = []
        for cluster, service in keys:
            handover = self.release_service(cluster, service, release_id)
            if handover is not None and handover not in handovers:
                handovers.append(handover)
        return handovers

    def lock_of(self, cluster: str, service: str) -> dict[str, Any] | None:
        item = self._table.get_item(Key={"pk": f"SERVICE#{cluster}/{service}", "sk": "LOCK"}).get("Item")
        return dict(item) if item else None


def _revisions_text(target: Mapping[str, Any]) -> str:
    """What a stage history entry runs: its revision, or each service's for a stage of several."""
    if target.get("services"):
        return ", ".join(
            f"{entry.get('service')} {str(entry.get('task_definition_arn') or '?').rsplit('/', 1)[-1]}"
            for entry in target["services"]
        )
    return str(target.get("task_definition_arn"))


def _release_key(release_id: str) -> dict[str, str]:
    return {"pk": f"RELEASE#{release_id}", "sk": "META"}


def _release_to_item(release: Release) -> dict[str, Any]:
    data = asdict(release)
    data["state"] = release.state.value
    data["stages"] = {name: _record_to_item(asdict(rec)) for name, rec in release.stages.items()}
    item = {k: v for k, v in data.items() if v is not None}
    item.update(_release_key(release.release_id))
    item["gsi1pk"] = f"PIPELINE#{release.pipeline}"
    item["gsi1sk"] = release.order_key
    if release.state in NOT_YET_DEPLOYING:
        item["pending_pk"] = f"PIPELINE#{release.pipeline}"  # sparse index: releases not yet deploying
    elif release.state is ReleaseState.AWAITING_APPROVAL:
        item["pending_pk"] = f"WAITING#{release.pipeline}"  # the same index: releases waiting for a decision
    elif release.state in IN_FLIGHT:
        item["pending_pk"] = f"INFLIGHT#{release.pipeline}"  # the same index: what the reconciler checks
    return item


def _release_from_item(item: Mapping[str, Any]) -> Release:
    known = set(Release.__dataclass_fields__)
    data = {k: _plain(v) for k, v in item.items() if k in known}
    data["state"] = ReleaseState(data["state"])
    data["stages"] = {name: _record_from_item(rec) for name, rec in data.get("stages", {}).items()}
    return Release(**data)


def _record_to_item(record: Mapping[str, Any]) -> dict[str, Any]:
    """A stage record (or a service's, nested in it) as stored: enums by value, no None."""
    item: dict[str, Any] = {}
    for key, value in record.items():
        if value is None:
            continue
        if isinstance(value, enum.Enum):
            item[key] = value.value
        elif key == "services":
            item[key] = [_record_to_item(service) for service in value]
        else:
            item[key] = value
    return item


def _record_from_item(item: Mapping[str, Any]) -> StageRecord:
    """A stored stage record; a record written before stages had several services has no `services`."""
    known = set(StageRecord.__dataclass_fields__)
    data = {k: v for k, v in item.items() if k in known}
    data["state"] = StageState(data["state"])
    if data.get("services") is not None:
        service_fields = set(ServiceRecord.__dataclass_fields__)
        data["services"] = [
            ServiceRecord(**{**{k: v for k, v in s.items() if k in service_fields}, "state": StageState(s["state"])})
            for s in data["services"]
        ]
    return StageRecord(**data)


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
