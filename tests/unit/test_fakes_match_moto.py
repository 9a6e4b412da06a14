"""The in-memory DynamoDB (tests/support/fake_dynamodb.py) answers the deployer's stores as moto
does, so the unit tier's flow decisions hold where moto (the functional tier) and DynamoDB hold
them: each scenario below runs the same ReleaseStore, lock and Approvals operations, and the table
operations they rely on, once on the fake and once on moto, and the two transcripts (every result,
every error, then every item of the table) must be the same.

What a scenario leans on, from AWS's documentation:
- DynamoDB Developer Guide, "Comparison operator and function reference"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.OperatorsAndFunctions.html):
  "condition-expression ::= operand comparator operand | operand BETWEEN operand AND operand |
  operand IN ( operand (',' operand (, ...) )) | function | condition AND condition | condition OR
  condition | NOT condition | ( condition )"; "attribute_not_exists (path) True if the attribute
  specified by path does not exist in the item."
- DynamoDB Developer Guide, "Paginating table query results in DynamoDB"
  (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Query.Pagination.html): "the
  LastEvaluatedKey from a Query response should be used as the ExclusiveStartKey for the next Query
  request" (pages are compared by what they hold together: a page that reaches its Limit may or may
  not carry a LastEvaluatedKey with nothing after it, "it does not necessarily mean that there is
  more data in the result set").

Values that differ from run to run and from backend to backend by design (the time a record was
written, a random approval id and the link signed with it) are named in order of appearance before
the transcripts are compared; an error is compared by its class and, for AWS's, its error code.
"""

from __future__ import annotations

import dataclasses
import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from deployer.approvals import Approval, Approvals
from deployer.errors import DeployerError
from deployer.events.deployer_bus import DecidedBy
from deployer.releases.model import Release, ReleaseState, StageRecord, StageState
from deployer.releases.store import LockResult, ReleaseStore
from deployer_local.provision import DeployerNames, provision_demo, provision_deployer
from tests.support.clock import Clock
from tests.support.fakes import FakeAws
from tests.support.world import SIGNING_KEY, commit_id

pytestmark = pytest.mark.functional  # it runs everything on moto too

T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "b" * 64


@dataclasses.dataclass
class Side:
    """One backend: the deployer's table, its store, approvals on an injected clock."""

    table: Any
    store: ReleaseStore
    approvals: Approvals
    clock: Clock


def side(session: Any) -> Side:
    names = DeployerNames("contract")
    provision_deployer(names, session)
    table = session.resource("dynamodb").Table(names.table)
    store = ReleaseStore(table)
    clock = Clock(T0)
    approvals = Approvals(table, store, lambda: SIGNING_KEY, clock=clock, base_url="https://approvals.test")
    return Side(table, store, approvals, clock)


class Transcript:
    """What a scenario saw, step by step, in comparable form."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, Any]] = []
        self._names: dict[str, str] = {}

    def step(self, label: str, action: Callable[[], Any]) -> Any:
        try:
            result = action()
        except (ClientError, DeployerError, ValueError) as exc:
            code = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else None
            reasons = None
            if isinstance(exc, ClientError) and "CancellationReasons" in exc.response:
                reasons = [r.get("Code") for r in exc.response["CancellationReasons"]]
            self.lines.append((label, ("raised", type(exc).__name__, code, reasons)))
            return None
        self.lines.append((label, self.plain(result)))
        return result

    def plain(self, value: Any) -> Any:
        if isinstance(value, Release | StageRecord | LockResult | Approval):
            return self.plain(dataclasses.asdict(value))
        if isinstance(value, enum.Enum):
            return value.value
        if isinstance(value, datetime):
            return "<time>"
        if isinstance(value, Decimal):
            return int(value) if value == value.to_integral_value() else float(value)
        if isinstance(value, dict):
            return {self.plain(k): self.plain(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.plain(v) for v in value]
        if isinstance(value, str):
            return self.text(value)
        return value

    def text(self, value: str) -> str:
        # the time a record was written (now_iso, a rollback's id) and random approval ids
        value = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|\+00:00)?", "<time>", value)
        value = re.sub(r"rollback-(\w+)-\d{8}T\d{12}", r"rollback-\1-<time>", value)
        for found in re.findall(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])", value):
            if any(c.isdigit() for c in found) or any(c.isupper() for c in found):
                value = value.replace(found, self._names.setdefault(found, f"<id-{len(self._names) + 1}>"))
        return re.sub(r"(\.)[A-Za-z0-9_-]{43}\b", r"\1<signature>", value)

    def table(self, table: Any) -> None:
        items = table.scan(ConsistentRead=True)["Items"]
        plain = [self.plain(item) for item in items]
        self.lines.append(("the table", sorted(plain, key=lambda i: (i["pk"], i["sk"]))))


# -- scenarios -------------------------------------------------------------------------------------


def create(s: Side, label: str, at: str, previous: str | None = None, pipeline: str = "web") -> Any:
    return s.store.create(
        pipeline=pipeline,
        repository="web-app",
        branch="main",
        commit=commit_id(label),
        previous_commit=commit_id(previous) if previous else None,
        pusher="alice",
        pushed_at=at,
    )


def releases(s: Side, t: Transcript) -> None:
    """Creation, ordering, supersede, the sparse index, watermarks, optimistic writes, history."""
    t.step("r1", lambda: create(s, "r1", "2026-11-29T10:00:00Z"))
    t.step("r2 after r1", lambda: create(s, "r2", "2026-11-29T10:05:00Z", "r1"))
    t.step("r0, older, arriving last", lambda: create(s, "r0", "2026-11-29T09:00:00Z"))
    t.step("r1 again", lambda: create(s, "r1", "2026-11-29T10:00:00Z"))
    t.step("s2 in the same second, delivered first", lambda: create(s, "s2", "2026-11-29T11:00:00Z", "s1"))
    t.step("s1 in the same second", lambda: create(s, "s1", "2026-11-29T11:00:00Z"))
    r2 = s.store.get(f"web@{commit_id('r2')}")
    assert r2 is not None
    t.step("supersede older than r2", lambda: s.store.supersede_older(r2))
    t.step("newest first, 3", lambda: s.store.list_releases("web", limit=3))
    t.step("oldest first", lambda: s.store.list_releases("web", newest_first=False))
    t.step("since r1, pages of 2", lambda: s.store.releases_since("web", r2.order_key[:20], page_size=2)[0])
    t.step("building", lambda: s.store.building_releases("web"))
    t.step("r2 built", lambda: s.store.transition(r2, ReleaseState.BUILT, image_uri="repo@x", image_digest=DIGEST))
    stale = s.store.get(r2.release_id)
    t.step("r2 deploying", lambda: s.store.transition(r2, ReleaseState.DEPLOYING, stage="dev"))
    assert stale is not None
    t.step("a stale write", lambda: s.store.save(stale, reason="late"))
    t.step("a move from the wrong state", lambda: s.store.transition(r2, ReleaseState.BUILT, allowed_from={"BUILT"}))
    t.step("in flight", lambda: s.store.inflight_releases("web"))
    t.step("r2 enters dev", lambda: s.store.enter_stage(r2, "dev"))
    t.step("r2 enters dev again", lambda: s.store.enter_stage(r2, "dev"))
    r1 = s.store.get(f"web@{commit_id('r1')}")
    assert r1 is not None
    t.step("r1 (older) enters dev", lambda: s.store.enter_stage(r1, "dev"))
    t.step("dev holder", lambda: s.store.stage_holder("web", "dev"))
    arn = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:{}"
    for n in (3, 4, 5):
        t.step(
            f"registered web:{n}", lambda n=n: s.store.record_registration("web", "dev", r2.release_id, arn.format(n))
        )
        record = StageRecord(
            StageState.DEPLOYED, "dev", "web", "2026-11-29T12:00:00Z", task_definition_arn=arn.format(n)
        )
        record.finished_at = f"2026-11-29T12:0{n}:00.000000Z"
        t.step(f"dev ran web:{n}", lambda record=record: s.store.record_success(r2, "dev", record))
    t.step("forget web:4", lambda: s.store.forget_registration("web", arn.format(4)))
    t.step("registered", lambda: s.store.registered_revisions("web", "web"))
    t.step("dev history", lambda: s.store.stage_history("web", "dev", limit=2))
    t.step("what dev ran", lambda: s.store.ran_revisions("web", "dev", distinct=2))
    t.step("index the build", lambda: s.store.index_build("arn:build/1", r2.release_id))
    t.step("release of the build", lambda: (s.store.release_for_build("arn:build/1"), s.store.release_for_build("x")))
    t.step("index a deployment", lambda: s.store.index_deployment("ecs-svc/1", r2.release_id, "dev", "dev", "web"))
    t.step("deployment", lambda: (s.store.deployment("ecs-svc/1"), s.store.latest_deployment("dev", "web")))
    t.step("index a before-task", lambda: s.store.index_before_task("tok", r2.release_id, "dev"))
    t.step("before-task", lambda: (s.store.before_task_of("tok"), s.store.before_task_of("other")))
    s.table.update_item(Key={"pk": f"RELEASE#{r2.release_id}", "sk": "META"}, UpdateExpression="REMOVE pending_pk")
    t.step("in flight without its entry", lambda: s.store.inflight_releases("web"))
    t.step("backfill", lambda: s.store.backfill_inflight("web"))
    t.step("backfill again", lambda: s.store.backfill_inflight("web"))
    target = {"task_definition_arn": arn.format(3), "commit": commit_id("r2"), "image_uri": "repo@x"}
    t.step("a rollback", lambda: s.store.create_rollback(
        pipeline="web", stage="dev", target=target, undoes=r2.release_id,
        requested_by={"kind": "cli", "user": "ada"}, repository="web-app", branch="main",
    ))  # fmt: skip


def built(s: Side, pipeline: str, label: str, at: str) -> Release:
    release, _ = create(s, label, at, pipeline=pipeline)
    if release.state is ReleaseState.SUPERSEDED:  # born so, older than a recorded push: it has ended
        return release
    return s.store.transition(release, ReleaseState.BUILT, image_uri="repo@x", image_digest=DIGEST)


def locks(s: Side, t: Transcript) -> None:
    """The per-service lock: holder, next in line, newer waiters, waiters of other pipelines."""
    a = built(s, "p1", "a", "2026-11-29T10:00:00Z")
    b = built(s, "p1", "b", "2026-11-29T10:01:00Z")
    c = built(s, "p1", "c", "2026-11-29T10:00:30Z")
    d = built(s, "p1", "d", "2026-11-29T10:02:00Z")
    e = built(s, "p2", "e", "2026-11-29T10:03:00Z")
    f = built(s, "p2", "f", "2026-11-29T10:04:00Z")
    g = built(s, "p3", "g", "2026-11-29T10:02:30Z")
    lock = lambda: s.store.lock_of("dev", "web")  # noqa: E731
    for name, release in (("a", a), ("a again", a), ("b", b), ("c (older than b)", c), ("d (newer than b)", d)):
        t.step(f"{name} asks", lambda release=release: s.store.acquire_service("dev", "web", release, "dev"))
        t.step(f"the lock after {name}", lock)
    for name, release in (("e of p2", e), ("f of p2", f), ("g of p3", g), ("e again", e)):
        t.step(f"{name} asks", lambda release=release: s.store.acquire_service("dev", "web", release, "dev"))
        t.step(f"the lock after {name}", lock)
    t.step("b frees what it does not hold", lambda: s.store.release_service("dev", "web", b.release_id))
    for holder in (a, d, g, f):
        t.step(f"{holder.commit[:6]} frees it", lambda h=holder: s.store.release_service("dev", "web", h.release_id))
        t.step(f"the lock after {holder.commit[:6]}", lock)
    t.step("two services at once", lambda: [s.store.acquire_service("dev", n, a, "dev") for n in ("x", "y")])
    t.step("both freed", lambda: s.store.release_services([("dev", "x"), ("dev", "y")], a.release_id))


def approvals(s: Side, t: Transcript) -> None:
    """Requests (idempotent, one transaction), checks, one decision, expiry on the injected clock."""
    release = built(s, "web", "app", "2026-11-29T10:00:00Z")
    s.store.transition(release, ReleaseState.DEPLOYED, stage="dev")
    requested = t.step("request", lambda: s.approvals.request(release, "prod", approvers=["U1"], expires_in_hours=2))
    t.step("request again", lambda: s.approvals.request(release, "prod", approvers=["U2"], expires_in_hours=5))
    approval, token = requested
    s.store.transition(release, ReleaseState.AWAITING_APPROVAL, stage="prod", approval_id=approval.approval_id)
    t.step("check", lambda: s.approvals.check(token))
    t.step("a stranger from Slack", lambda: s.approvals.decide(token, "approve", DecidedBy(kind="slack", user="U9")))
    t.step("approve", lambda: s.approvals.decide(token, "approve", DecidedBy(kind="slack", user="U1")))
    t.step("approve again", lambda: s.approvals.decide(token, "reject", DecidedBy(kind="slack", user="U1")))
    other = built(s, "web", "late", "2026-11-29T10:30:00Z")
    s.store.transition(other, ReleaseState.DEPLOYED, stage="dev")
    later, later_token = s.approvals.request(other, "prod", approvers=[], expires_in_hours=1)
    other = s.store.transition(other, ReleaseState.AWAITING_APPROVAL, stage="prod", approval_id=later.approval_id)
    t.step("not due yet", lambda: (s.approvals.due_for_expiry(other), s.approvals.expire_if_due(other)))
    s.clock.now = T0 + timedelta(hours=1)
    t.step("due at its expiry", lambda: (s.approvals.due_for_expiry(other), s.approvals.expire_if_due(other)))
    t.step("expired once only", lambda: s.approvals.expire_if_due(other))
    s.clock.now = T0 + timedelta(minutes=30)  # a handler whose clock lags
    t.step("a decision after it expired", lambda: s.approvals.decide(later_token, "approve", DecidedBy(kind="link")))
    ended = s.store.transition(other, ReleaseState.APPROVAL_EXPIRED)
    t.step(
        "no approval for an ended release", lambda: s.approvals.request(ended, "qa", approvers=[], expires_in_hours=1)
    )


def expressions(s: Side, t: Transcript) -> None:
    """The table operations themselves, beyond what the stores happen to do today."""
    table, client = s.table, s.table.meta.client
    key = {"pk": "X#1", "sk": "META"}

    def update(expression: str, condition: str | None = None, **values: Any) -> Any:
        extra: dict[str, Any] = {"ConditionExpression": condition} if condition else {}
        if values:
            extra["ExpressionAttributeValues"] = {f":{k}": v for k, v in values.items()}
        return table.update_item(Key=key, UpdateExpression=expression, ReturnValues="ALL_NEW", **extra)["Attributes"]

    t.step("create by update", lambda: update("SET n = :one, tags = :tags, m = :m", one=1, tags=["a"], m={}))
    t.step("nested SET into a map", lambda: update("SET m.k = :v", v="x"))
    t.step("nested SET under a missing map", lambda: update("SET absent.k = :v", v="x"))
    t.step("a reserved word", lambda: update("SET first = :v", v="x"))
    t.step("arithmetic, list_append, if_not_exists", lambda: update(
        "SET n = n + :one, tags = list_append(tags, :more), since = if_not_exists(since, :now)",
        one=1, more=["b"], now="t0",
    ))  # fmt: skip
    t.step("if_not_exists keeps", lambda: update("SET since = if_not_exists(since, :now)", now="t1"))
    t.step("ADD and REMOVE", lambda: update("ADD n :five REMOVE m.k", five=5))
    t.step("a key attribute", lambda: update("SET pk = :v", v="Y"))
    t.step("size, BETWEEN, IN, NOT", lambda: update(
        "SET ok = :yes", "size(tags) = :two AND n BETWEEN :low AND :high AND NOT (since IN (:a, :b))",
        yes=True, two=2, low=5, high=10, a="t1", b="t2",
    ))  # fmt: skip
    t.step(
        "a comparison with an attribute the item lacks",
        lambda: update("SET ok = :no", "nothing < :one", no=False, one=1),
    )
    t.step("begins_with, contains, OR", lambda: update(
        "SET hit = :yes", "begins_with(since, :t) AND (contains(tags, :b) OR n = :zero)", yes=1, t="t", b="b", zero=0
    ))  # fmt: skip
    t.step("an unused value", lambda: update("SET a = :a", a=1, b=2))
    t.step("an undefined value", lambda: table.update_item(Key=key, UpdateExpression="SET a = :nope") and None)
    t.step("a condition on a missing item", lambda: table.delete_item(
        Key={"pk": "X#2", "sk": "META"}, ConditionExpression="attribute_exists(pk)"
    ) and None)  # fmt: skip
    for n in range(5):
        item = {"pk": f"R#{n}", "sk": "META", "gsi1pk": "P", "gsi1sk": f"k{n}", "pending_pk": "Q", "extra": n}
        table.put_item(Item=item)
    t.step("an index, newest first", lambda: table.query(
        IndexName="gsi1", KeyConditionExpression="gsi1pk = :p AND gsi1sk <= :k",
        ExpressionAttributeValues={":p": "P", ":k": "k3"}, ScanIndexForward=False,
    )["Items"])  # fmt: skip
    t.step("a keys-only index", lambda: table.query(
        IndexName="pending", KeyConditionExpression="pending_pk = :p AND gsi1sk BETWEEN :a AND :b",
        ExpressionAttributeValues={":p": "Q", ":a": "k1", ":b": "k2"},
    )["Items"])  # fmt: skip
    t.step("a consistent read of an index", lambda: table.query(
        IndexName="gsi1", KeyConditionExpression="gsi1pk = :p", ExpressionAttributeValues={":p": "P"},
        ConsistentRead=True,
    ) and None)  # fmt: skip

    def every_page() -> list[Any]:
        found: list[Any] = []
        kwargs: dict[str, Any] = {
            "IndexName": "gsi1",
            "KeyConditionExpression": "gsi1pk = :p AND begins_with(gsi1sk, :k)",
            "ExpressionAttributeValues": {":p": "P", ":k": "k"},
            "Limit": 2,
        }
        while True:
            page = table.query(**kwargs)
            found.append([i["pk"] for i in page["Items"]])
            if "LastEvaluatedKey" not in page:
                return [pk for items in found for pk in items]
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    t.step("pages of 2", every_page)
    new = "attribute_not_exists(pk)"
    t.step("a transaction whose second condition fails", lambda: client.transact_write_items(TransactItems=[
        {"Put": {"TableName": table.name, "Item": {"pk": "T#1", "sk": "META"}, "ConditionExpression": new}},
        {"Put": {"TableName": table.name, "Item": {**key, "n": 0}, "ConditionExpression": new}},
    ]) and None)  # fmt: skip
    t.step("nothing of it was written", lambda: table.get_item(Key={"pk": "T#1", "sk": "META"}).get("Item"))


SCENARIOS: dict[str, Callable[[Side, Transcript], None]] = {
    "releases": releases,
    "locks": locks,
    "approvals": approvals,
    "expressions": expressions,
}


def transcript(scenario: Callable[[Side, Transcript], None], on: Side) -> list[tuple[str, Any]]:
    t = Transcript()
    scenario(on, t)
    t.table(on.table)
    return t.lines


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_the_in_memory_table_answers_the_stores_as_moto_does(moto_aws: None, name: str) -> None:
    # GIVEN the deployer's table in the in-memory fake and in moto
    fake, moto = side(FakeAws()), side(boto3.session.Session())
    # WHEN the same operations run on each
    on_fake = transcript(SCENARIOS[name], fake)
    on_moto = transcript(SCENARIOS[name], moto)
    # THEN they answer the same, step by step, and hold the same items
    for (label, got), (_, expected) in zip(on_fake, on_moto, strict=True):
        assert got == expected, f"{name}: {label}: the fake answered {got!r}, moto {expected!r}"


def described(session: Any) -> dict[str, Any]:
    """What the deployer reads of the demo account: the services, their task definitions and tags,
    the revisions of a family, and what ECS answers for what does not exist."""
    provision_demo(session)
    ecs = session.client("ecs")
    found: dict[str, Any] = {}
    for cluster in ("dev", "prod"):
        response = ecs.describe_services(cluster=cluster, services=["web", "nothing"])
        (service,) = response["services"]
        primary = next(d for d in service["deployments"] if d["status"] == "PRIMARY")
        vpc = service["networkConfiguration"]["awsvpcConfiguration"]
        found[cluster] = {
            **{key: service.get(key) for key in READ_OF_A_SERVICE},
            "network": (len(vpc["subnets"]), len(vpc["securityGroups"]), vpc["assignPublicIp"]),
            "primary": {key: primary.get(key) for key in ("status", "taskDefinition", "desiredCount")},
            "failures": [(f["arn"].rsplit("/", 1)[-1], f["reason"]) for f in response["failures"]],
            "task definition": {
                key: value
                for key, value in ecs.describe_task_definition(
                    taskDefinition=service["taskDefinition"], include=["TAGS"]
                )["taskDefinition"].items()
                if key not in {"registeredAt", "registeredBy"}  # when and by whom: not the same run
            },
        }
    found["tags"] = ecs.describe_task_definition(taskDefinition="web", include=["TAGS"])["tags"]
    found["revisions"] = ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]
    try:
        ecs.describe_task_definition(taskDefinition="web:99")
    except ClientError as exc:
        found["missing revision"] = (exc.response["Error"]["Code"], exc.response["Error"]["Message"])
    return found


# What the deployer reads of a service (deployer.stages.describe_services, housekeeping, the approval's context).
READ_OF_A_SERVICE = (
    "serviceName",
    "status",
    "taskDefinition",
    "desiredCount",
    "launchType",
    "schedulingStrategy",
    "deploymentController",
    "loadBalancers",
    "capacityProviderStrategy",
)


def test_the_in_memory_ecs_describes_the_demo_account_as_moto_does(moto_aws: None) -> None:
    # GIVEN the demo account provisioned by the same code in the fakes and in moto
    # WHEN the deployer's reads of ECS are made on each
    on_fake, on_moto = described(FakeAws()), described(boto3.session.Session())
    # THEN they answer the same (the fake's service is at rest, its first deployment done: not compared)
    for key in on_moto:
        assert on_fake[key] == on_moto[key], f"{key}: the fake answered {on_fake[key]!r}, moto {on_moto[key]!r}"


@pytest.mark.unit  # the fake alone
def test_the_in_memory_ecs_lists_the_newest_revisions_first_when_asked_as_ecs_does() -> None:
    # Amazon ECS API Reference, ListTaskDefinitions
    # (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_ListTaskDefinitions.html), sort:
    # "By default, (ASC) task definitions are listed lexicographically by family name and in
    # ascending numerical order by revision so that the newest task definitions in a family are
    # listed last. Setting this parameter to DESC reverses the sort order on family name and
    # revision." (moto 5.2.5 ignores `sort`: this one is checked against the documentation alone.)
    fake = FakeAws()
    provision_demo(fake)
    ecs = fake.client("ecs")
    ascending = ecs.list_task_definitions(familyPrefix="web")["taskDefinitionArns"]
    descending = ecs.list_task_definitions(familyPrefix="web", sort="DESC")["taskDefinitionArns"]
    assert [arn.rsplit(":", 1)[-1] for arn in ascending] == ["1", "2"]
    assert descending == ascending[::-1]
