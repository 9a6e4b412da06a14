"""Approvals (invariant 4 of docs/design.md): an approval counts only if its signature is valid, it has not expired,
it was not used, it names this release and this stage, the release is still current, and (from
Slack) the clicking user is an approver; a GET never changes anything.

Each security test below fails when the protection it names is removed from
`deployer.approvals` (checked by breaking the code on purpose)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployer.approvals import (
    MIN_KEY_BYTES,
    Approval,
    ApprovalAlreadyDecided,
    ApprovalExpired,
    ApprovalRefused,
    Approvals,
    InvalidToken,
    NotAnApprover,
    NotCurrent,
    UnknownApproval,
    may_decide,
    signing_key_from_secret,
)
from deployer.errors import ConfigError, TransientError
from deployer.events.deployer_bus import DecidedBy
from deployer.releases.model import Release, ReleaseState
from deployer.releases.store import ReleaseStore
from tests.support.clock import Clock
from tests.support.world import commit_id

pytestmark = pytest.mark.unit

KEY = b"approval-signing-key-for-tests-0123456789"
OTHER_KEY = b"another-signing-key-nobody-deployed-9876543210"
T0 = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
APPROVER = "U012ABCDEF"
STRANGER = "U099ZZZZZZ"
DIGEST = "sha256:" + "a" * 64
WRITES = frozenset({"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"})
TOKEN_FORMAT = re.compile(r"v1\.[A-Za-z0-9_-]{22}\.[0-9]+\.[A-Za-z0-9_-]{43}")

BY_SLACK = DecidedBy(kind="slack", user=APPROVER)
BY_LINK = DecidedBy(kind="link", source_ip="203.0.113.9", user_agent="Mozilla/5.0")


@dataclass
class Env:
    table: Any
    store: ReleaseStore
    clock: Clock
    calls: list[str] = field(default_factory=list)
    memo: dict[str, Any] = field(default_factory=dict)
    approvals: Approvals = field(init=False)

    def __post_init__(self) -> None:
        self.approvals = self.approvals_with()

    @property
    def writes(self) -> list[str]:
        return [name for name in self.calls if name in WRITES]

    def approvals_with(self, **kwargs: Any) -> Approvals:
        defaults: dict[str, Any] = {
            "table": self.table,
            "store": self.store,
            "signing_key": lambda: KEY,
            "clock": self.clock,
            "base_url": "https://approvals.example.com/",
        }
        return Approvals(**{**defaults, **kwargs})

    def items(self) -> list[dict[str, Any]]:
        return sorted(self.table.scan(ConsistentRead=True)["Items"], key=lambda i: (i["pk"], i["sk"]))

    def record(self, approval_id: str) -> dict[str, Any]:
        item = self.table.get_item(Key={"pk": f"APPROVAL#{approval_id}", "sk": "META"}, ConsistentRead=True)
        return dict(item["Item"])


def count_calls(table: Any, calls: list[str]) -> None:
    table.meta.client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))


@pytest.fixture
def env(deployer_table: Any) -> Env:
    """The deployer's table (the in-memory fake in the unit tier, moto in the functional one)."""
    built = Env(table=deployer_table, store=ReleaseStore(deployer_table), clock=Clock(T0))
    count_calls(deployer_table, built.calls)
    return built


@pytest.fixture
def atomic_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """moto in process checks a write's condition and applies it without a lock, so two threads
    can both pass the same condition. DynamoDB applies a conditional write (and a transaction)
    atomically; the concurrency tests give the fake backend that guarantee, no more."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()  # a transaction calls put_item and update_item inside
    for name in ("update_item", "put_item", "transact_write_items"):
        original = getattr(DynamoDBBackend, name)

        def serialised(self: Any, *args: Any, _original: Any = original, **kwargs: Any) -> Any:
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, serialised)


# --- helpers -----------------------------------------------------------------------------------


def new_release(env: Env, label: str, pushed_at: str, previous: str | None = None) -> Release:
    release, _ = env.store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=commit_id(label),
        previous_commit=commit_id(previous) if previous else None,
        pusher=None,
        pushed_at=pushed_at,
    )
    env.store.transition(release, ReleaseState.BUILT, image_uri=f"repo@{DIGEST}", image_digest=DIGEST)
    env.store.transition(release, ReleaseState.DEPLOYED, stage="dev")
    return release


def await_approval(env: Env, release: Release, approval: Approval, token: str) -> Release:
    """What the flow does after `request`: the release waits on the approval's stage. The link is
    a bearer credential, so it is not stored (`token_for` re-derives it)."""
    return env.store.transition(
        release,
        ReleaseState.AWAITING_APPROVAL,
        stage=approval.stage,
        approval_id=approval.approval_id,
        approval_expires_at=approval.expires_at.isoformat(),
    )


def waiting(
    env: Env,
    label: str = "a",
    pushed_at: str = "2026-11-29T10:00:00Z",
    *,
    stage: str = "prod",
    approvers: tuple[str, ...] = (APPROVER,),
    previous: str | None = None,
) -> tuple[Release, Approval, str]:
    release = new_release(env, label, pushed_at, previous)
    approval, token = env.approvals.request(release, stage, approvers=approvers, expires_in_hours=24)
    await_approval(env, release, approval, token)
    return release, approval, token


def meet(barrier: threading.Barrier) -> Callable[..., None]:
    """A botocore hook holding each thread's call until the other thread reaches the same call."""

    def hook(**_: Any) -> None:
        barrier.wait()

    return hook


def sign(key: bytes, approval_id: str, expires_epoch: int) -> str:
    """The documented token format, computed independently of the module."""
    payload = f"v1.{approval_id}.{expires_epoch}"
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{base64.urlsafe_b64encode(digest).rstrip(b'=').decode()}"


def status_of(env: Env, approval: Approval) -> str:
    return str(env.record(approval.approval_id)["status"])


# --- the happy path and the token format -------------------------------------------------------


def test_an_approver_approves_from_slack_once(env: Env) -> None:
    # GIVEN a release waiting on prod for its approval
    release, approval, token = waiting(env)
    # WHEN the listed approver approves from Slack
    decided = env.approvals.decide(token, "approve", BY_SLACK, slack_user=APPROVER)
    # THEN the approval is decided, bound to this release and stage, and the release is untouched
    assert decided.status == "APPROVED"
    assert decided.decision == "approve"
    assert decided.decided_by == {"kind": "slack", "user": APPROVER}
    assert decided.decided_at == T0
    assert (decided.release_id, decided.stage, decided.commit, decided.image_digest) == (
        release.release_id,
        "prod",
        release.commit,
        DIGEST,
    )
    record = env.record(approval.approval_id)
    assert record["status"] == "APPROVED"
    assert record["decided_by"] == {"kind": "slack", "user": APPROVER}
    current = env.store.get(release.release_id)
    assert current is not None
    assert current.state is ReleaseState.AWAITING_APPROVAL


def test_a_link_holder_rejects_a_stage_without_approvers(env: Env) -> None:
    # GIVEN a stage that lists no approvers
    _, approval, token = waiting(env, approvers=())
    # WHEN someone holding the link rejects it from the approval page
    decided = env.approvals.decide(token, "reject", BY_LINK)
    # THEN the rejection counts
    assert decided.decision == "reject"
    assert status_of(env, approval) == "REJECTED"
    assert env.record(approval.approval_id)["decided_by"]["source_ip"] == "203.0.113.9"


def test_the_token_is_short_url_safe_and_follows_the_documented_format(env: Env) -> None:
    # GIVEN an approval request
    _, approval, token = waiting(env)
    # THEN the token is v1.<16 random bytes>.<expiry>.<HMAC-SHA256>, URL-safe and short
    assert TOKEN_FORMAT.fullmatch(token)
    assert len(token) <= 100
    assert token == sign(KEY, approval.approval_id, int((T0 + timedelta(hours=24)).timestamp()))
    assert len(base64.urlsafe_b64decode(approval.approval_id + "==")) == 16
    assert env.approvals.link_for(token) == f"https://approvals.example.com/approvals/{token}"
    # AND the approval's items store no token, no signature, no key
    stored = repr([i for i in env.items() if str(i["pk"]).startswith("APPROVAL")])
    assert token.rsplit(".", 1)[1] not in stored
    assert KEY.decode() not in stored


def test_request_is_idempotent_per_release_and_stage(env: Env) -> None:
    # GIVEN an approval requested for a release's prod stage
    release = new_release(env, "a", "2026-11-29T10:00:00Z")
    first, first_token = env.approvals.request(release, "prod", approvers=[APPROVER], expires_in_hours=24)
    # WHEN the same request comes again (a redelivered event), even an hour later
    env.clock.advance(hours=1)
    again, again_token = env.approvals.request(release, "prod", approvers=[APPROVER], expires_in_hours=24)
    # THEN it is the same approval with the same token, and only one record exists
    assert again == first
    assert again_token == first_token
    assert env.approvals.token_for(again) == first_token
    approval_items = [i for i in env.items() if str(i["pk"]).startswith("APPROVAL#")]
    assert len(approval_items) == 1
    # AND another stage of the same release is another approval
    other, other_token = env.approvals.request(release, "test", approvers=[], expires_in_hours=1)
    assert other.approval_id != first.approval_id
    assert other_token != first_token


@pytest.mark.usefixtures("atomic_writes")
@pytest.mark.functional  # each thread its own client of the same table: moto's
def test_concurrent_requests_make_one_approval(env: Env) -> None:
    # GIVEN a release, and two handlers asking for its prod approval at once
    release = new_release(env, "a", "2026-11-29T10:00:00Z")
    results: list[tuple[Approval, str]] = []
    barrier = threading.Barrier(2, timeout=10)

    def ask() -> None:
        table = boto3.session.Session().resource("dynamodb").Table(env.table.name)
        table.meta.client.meta.events.register("before-call.dynamodb.TransactWriteItems", meet(barrier))
        approvals = env.approvals_with(table=table, store=ReleaseStore(table))
        results.append(approvals.request(release, "prod", approvers=[APPROVER], expires_in_hours=24))

    # WHEN both write at the same moment
    threads = [threading.Thread(target=ask) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    # THEN both get the same approval and token
    assert len(results) == 2
    assert results[0] == results[1]
    assert len([i for i in env.items() if str(i["pk"]).startswith("APPROVAL#")]) == 1


# --- signature -----------------------------------------------------------------------------------


def _swap_signature(token: str) -> str:
    return token.rsplit(".", 1)[0] + "." + ("A" * 43)


def _other_approval_id(token: str) -> str:
    _, _, expires, signature = token.split(".")
    return f"v1.{'B' * 22}.{expires}.{signature}"


def _extended_expiry(token: str) -> str:
    _, approval_id, expires, signature = token.split(".")
    return f"v1.{approval_id}.{int(expires) + 7 * 86400}.{signature}"


def _flipped_signature_char(token: str) -> str:
    head, signature = token.rsplit(".", 1)
    flipped = ("B" if signature[5] == "A" else "A").join((signature[:5], signature[6:]))
    return f"{head}.{flipped}"


@pytest.mark.parametrize(
    "forge",
    [_swap_signature, _other_approval_id, _extended_expiry, _flipped_signature_char],
    ids=["signature-replaced", "approval-id-swapped", "expiry-extended", "one-char-flipped"],
)
def test_a_forged_token_is_refused_before_any_read(env: Env, forge: Callable[[str], str]) -> None:
    # GIVEN a waiting release and its genuine token
    _, approval, token = waiting(env)
    env.calls.clear()
    # WHEN the token is altered
    forged = forge(token)
    assert forged != token
    # THEN check and decide refuse it as invalid, without reading or writing DynamoDB
    with pytest.raises(InvalidToken):
        env.approvals.check(forged)
    with pytest.raises(InvalidToken):
        env.approvals.decide(forged, "approve", BY_SLACK)
    assert env.calls == []
    assert status_of(env, approval) == "PENDING"


def test_a_token_signed_with_another_key_is_refused(env: Env) -> None:
    # GIVEN a waiting release, and a token for its real approval signed with a key not deployed
    _, approval, _ = waiting(env)
    foreign = env.approvals_with(signing_key=lambda: OTHER_KEY).token_for(approval)
    assert foreign == sign(OTHER_KEY, approval.approval_id, approval.expires_epoch)
    env.calls.clear()
    # WHEN it is used
    # THEN it is refused before any DynamoDB call, and nothing is decided
    with pytest.raises(InvalidToken):
        env.approvals.check(foreign)
    with pytest.raises(InvalidToken):
        env.approvals.decide(foreign, "approve", BY_SLACK)
    assert env.calls == []
    assert status_of(env, approval) == "PENDING"


def test_a_token_whose_signed_expiry_differs_from_the_record_is_refused(env: Env) -> None:
    # GIVEN a genuine approval, and a correctly signed token naming it with a later expiry
    # (the key leaked for a moment, or a bug minted it): the record's expiry wins
    _, approval, _ = waiting(env)
    stretched = sign(KEY, approval.approval_id, approval.expires_epoch + 3600)
    # WHEN it is used
    # THEN it is refused as invalid
    with pytest.raises(InvalidToken):
        env.approvals.check(stretched)


MALFORMED = {
    "empty": "",
    "version-only": "v1",
    "wrong-version": "v2.AAAAAAAAAAAAAAAAAAAAAA.1795867200." + "A" * 43,
    "padding": "v1.AAAAAAAAAAAAAAAAAAAAAA==.1795867200." + "A" * 43,
    "leading-zero-expiry": "v1.AAAAAAAAAAAAAAAAAAAAAA.01795867200." + "A" * 43,
    "huge": "v1." + "A" * 100_000,
    "path-traversal": "../../etc/passwd",
    "json": '{"approval_id": "x"}',
    "newline": "v1.AAAAAAAAAAAAAAAAAAAAAA.1795867200." + "A" * 43 + "\n",
    "non-ascii-digits": "v1.AAAAAAAAAAAAAAAAAAAAAA.١٧٩٥٨٦٧٢٠٠." + "A" * 43,
}


@pytest.mark.parametrize("token", list(MALFORMED.values()), ids=list(MALFORMED))
def test_a_malformed_token_is_refused_before_any_read(env: Env, token: str) -> None:
    # GIVEN a waiting release
    waiting(env)
    env.calls.clear()
    # WHEN garbage arrives instead of a token
    # THEN it is refused as invalid without touching DynamoDB
    with pytest.raises(InvalidToken):
        env.approvals.check(token)
    with pytest.raises(InvalidToken):
        env.approvals.decide(token, "approve", BY_LINK)
    assert env.calls == []


@pytest.mark.parametrize("cut", [1, 10, 43, 60])
def test_a_truncated_token_is_refused(env: Env, cut: int) -> None:
    # GIVEN a genuine token cut short (a mail client wrapped the link)
    _, _, token = waiting(env)
    env.calls.clear()
    # THEN it is refused without a read
    with pytest.raises(InvalidToken):
        env.approvals.check(token[:-cut])
    assert env.calls == []


def test_a_non_string_token_is_refused(env: Env) -> None:
    # GIVEN a JSON body that carried a number or a list where the token goes
    for junk in (None, 12, ["v1"], b"v1.abc"):
        # THEN it is refused as invalid, never a TypeError
        with pytest.raises(InvalidToken):
            env.approvals.check(junk)  # type: ignore[arg-type]


def _mutated(token: str, data: st.DataObject) -> str:
    index = data.draw(st.integers(0, len(token) - 1))
    replacement = data.draw(st.text(min_size=0, max_size=3))
    return token[:index] + replacement + token[index + 1 :]


_TOKEN_LIKE = st.from_regex(r"v1\.[A-Za-z0-9_-]{22}\.[1-9][0-9]{0,11}\.[A-Za-z0-9_-]{43}", fullmatch=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_no_string_ever_raises_anything_but_a_refusal_nor_writes(env: Env, data: st.DataObject) -> None:
    # GIVEN a waiting release with a genuine token (the fixture lives across examples: nothing writes)
    if "genuine" not in env.memo:
        _, env.memo["approval"], env.memo["genuine"] = waiting(env)
    approval, genuine = env.memo["approval"], env.memo["genuine"]
    # WHEN any string but the genuine token is presented: random text, token-shaped text,
    # a mutated genuine token, or a correctly signed token of an approval that does not exist
    candidate = data.draw(
        st.one_of(
            st.text(max_size=300),
            _TOKEN_LIKE,
            st.just(genuine).flatmap(lambda t: st.builds(lambda d: _mutated(t, d), st.data())),
            st.builds(
                lambda i: sign(KEY, i, int((T0 + timedelta(hours=1)).timestamp())),
                st.from_regex(r"[A-Za-z0-9_-]{22}", fullmatch=True),
            ),
        )
    )
    if candidate == genuine:
        return
    env.calls.clear()
    # THEN check and decide raise only ApprovalRefused subclasses and never write
    with pytest.raises(ApprovalRefused):
        env.approvals.check(candidate)
    with pytest.raises(ApprovalRefused):
        env.approvals.decide(candidate, "approve", BY_SLACK)
    assert env.writes == []
    assert status_of(env, approval) == "PENDING"


# --- expiry ------------------------------------------------------------------------------------


def test_an_expired_token_is_refused_before_any_read(env: Env) -> None:
    # GIVEN a waiting release whose approval expires in 24 hours
    _, approval, token = waiting(env)
    # WHEN the link is used a second after the expiry
    env.clock.now = approval.expires_at + timedelta(seconds=1)
    env.calls.clear()
    # THEN it is refused as expired, without reading or writing DynamoDB
    with pytest.raises(ApprovalExpired) as refused:
        env.approvals.check(token)
    with pytest.raises(ApprovalExpired):
        env.approvals.decide(token, "approve", BY_SLACK)
    assert env.calls == []
    assert refused.value.http_status == 410
    assert status_of(env, approval) == "PENDING"


def test_the_expiry_instant_itself_is_too_late(env: Env) -> None:
    _, approval, token = waiting(env)
    env.clock.now = approval.expires_at
    with pytest.raises(ApprovalExpired):
        env.approvals.check(token)


def test_a_decision_whose_write_comes_after_the_expiry_does_not_count(env: Env) -> None:
    # GIVEN a waiting release, checked a second before its approval expires
    _, approval, token = waiting(env)
    env.clock.queued = [approval.expires_at - timedelta(seconds=1), approval.expires_at + timedelta(seconds=1)]
    # WHEN the decision's write happens after the expiry
    # THEN the conditional write refuses it as expired
    with pytest.raises(ApprovalExpired):
        env.approvals.decide(token, "approve", BY_SLACK)
    assert status_of(env, approval) == "PENDING"


def test_the_sweep_expires_a_pending_approval_once(env: Env) -> None:
    # GIVEN a waiting release
    release, approval, _ = waiting(env)
    current = env.store.get(release.release_id)
    assert current is not None
    # WHEN the sweep runs before the expiry, THEN nothing is due and nothing changes
    assert not env.approvals.due_for_expiry(current)
    assert not env.approvals.expire_if_due(current)
    assert status_of(env, approval) == "PENDING"
    # WHEN it runs after the expiry, THEN exactly one run marks it EXPIRED
    env.clock.advance(hours=24)
    assert env.approvals.due_for_expiry(current)
    assert env.approvals.expire_if_due(current)
    assert not env.approvals.expire_if_due(current)
    assert not env.approvals.due_for_expiry(current)
    assert status_of(env, approval) == "EXPIRED"


def test_the_sweep_never_expires_a_decided_approval(env: Env) -> None:
    release, approval, token = waiting(env)
    env.approvals.decide(token, "approve", BY_SLACK)
    env.clock.advance(hours=48)
    assert not env.approvals.due_for_expiry(release)
    assert not env.approvals.expire_if_due(release)
    assert status_of(env, approval) == "APPROVED"


def test_an_approval_marked_expired_is_refused_even_by_a_slow_clock(env: Env) -> None:
    # GIVEN an approval the sweep expired
    release, approval, token = waiting(env)
    env.clock.advance(hours=25)
    assert env.approvals.expire_if_due(release)
    # WHEN a click arrives from a handler whose clock lags behind
    env.clock.now = T0 + timedelta(hours=1)
    # THEN it is refused as expired
    with pytest.raises(ApprovalExpired):
        env.approvals.decide(token, "approve", BY_SLACK)
    assert status_of(env, approval) == "EXPIRED"


# --- single use --------------------------------------------------------------------------------


@pytest.mark.parametrize("second", ["approve", "reject"])
def test_a_used_token_cannot_be_replayed(env: Env, second: str) -> None:
    # GIVEN an approval already approved
    _, approval, token = waiting(env)
    env.approvals.decide(token, "approve", BY_SLACK)
    env.calls.clear()
    # WHEN the same token is used again (replay, double click, a second approver)
    # THEN check and decide refuse it as already decided, before any write
    with pytest.raises(ApprovalAlreadyDecided) as refused:
        env.approvals.check(token)
    with pytest.raises(ApprovalAlreadyDecided):
        env.approvals.decide(token, second, BY_SLACK)  # type: ignore[arg-type]
    assert env.writes == []
    assert refused.value.http_status == 409
    assert "approved" in refused.value.message
    assert status_of(env, approval) == "APPROVED"


@pytest.mark.functional  # each thread its own client of the same table: moto's
@pytest.mark.usefixtures("atomic_writes")
def test_two_simultaneous_clicks_make_exactly_one_decision(env: Env) -> None:
    # GIVEN a waiting release, and two handlers (each its own client) deciding at the same instant:
    # both pass check() before either writes
    _, approval, token = waiting(env)
    barrier = threading.Barrier(2, timeout=10)
    won: list[Approval] = []
    lost: list[BaseException] = []

    def click(decision: str) -> None:
        table = boto3.session.Session().resource("dynamodb").Table(env.table.name)
        table.meta.client.meta.events.register("before-call.dynamodb.UpdateItem", meet(barrier))
        approvals = env.approvals_with(table=table, store=ReleaseStore(table))
        try:
            won.append(approvals.decide(token, decision, BY_SLACK))  # type: ignore[arg-type]
        except ApprovalRefused as exc:
            lost.append(exc)

    # WHEN one approves and the other rejects
    threads = [threading.Thread(target=click, args=(d,)) for d in ("approve", "reject")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    # THEN exactly one decision is taken, the other click is told it was already decided
    assert len(won) == 1
    assert len(lost) == 1
    assert isinstance(lost[0], ApprovalAlreadyDecided)
    assert status_of(env, approval) == won[0].status


# --- the release must be current ---------------------------------------------------------------


def test_a_token_for_stage_a_is_refused_while_stage_b_waits(env: Env) -> None:
    # GIVEN a release that was asked to approve stage test, then moved on to wait on prod
    release = new_release(env, "a", "2026-11-29T10:00:00Z")
    for_test, test_token = env.approvals.request(release, "test", approvers=[APPROVER], expires_in_hours=24)
    await_approval(env, release, for_test, test_token)
    for_prod, prod_token = env.approvals.request(release, "prod", approvers=[APPROVER], expires_in_hours=24)
    await_approval(env, release, for_prod, prod_token)
    # WHEN the test stage's link is used
    # THEN it is refused: the release is not waiting on that stage
    with pytest.raises(NotCurrent):
        env.approvals.check(test_token)
    with pytest.raises(NotCurrent):
        env.approvals.decide(test_token, "approve", BY_SLACK)
    assert status_of(env, for_test) == "PENDING"
    assert env.approvals.check(prod_token).stage == "prod"


def test_a_token_naming_another_stage_is_refused_even_if_the_release_names_its_approval(env: Env) -> None:
    # GIVEN a release waiting on prod whose record (by a bug) names the test stage's approval
    release = new_release(env, "a", "2026-11-29T10:00:00Z")
    for_test, token = env.approvals.request(release, "test", approvers=[APPROVER], expires_in_hours=24)
    env.store.transition(release, ReleaseState.AWAITING_APPROVAL, stage="prod", approval_id=for_test.approval_id)
    # THEN the token, which names stage test, does not approve prod
    with pytest.raises(NotCurrent):
        env.approvals.decide(token, "approve", BY_SLACK)


def test_a_token_the_release_no_longer_waits_for_is_refused(env: Env) -> None:
    # GIVEN a release waiting on prod for another approval than the token's
    release, _, token = waiting(env)
    env.store.save(release, approval_id="a-newer-approval-id")
    # THEN the old token is refused
    with pytest.raises(NotCurrent):
        env.approvals.check(token)


@pytest.mark.parametrize(
    "state",
    [ReleaseState.SUPERSEDED, ReleaseState.REJECTED, ReleaseState.APPROVAL_EXPIRED, ReleaseState.RELEASED],
)
def test_a_token_of_a_release_that_ended_is_refused(env: Env, state: ReleaseState) -> None:
    # GIVEN a release that left AWAITING_APPROVAL (superseded by a newer one, or ended)
    release, approval, token = waiting(env)
    env.store.transition(release, state, reason="moved on")
    # THEN its approval link no longer counts
    with pytest.raises(NotCurrent) as refused:
        env.approvals.decide(token, "approve", BY_SLACK)
    assert state.value in refused.value.message
    assert status_of(env, approval) == "PENDING"


def test_a_token_of_an_older_release_is_refused_once_a_newer_one_entered_the_stage(env: Env) -> None:
    # GIVEN an older release waiting on prod, and a newer release of the pipeline that entered prod
    _, approval, token = waiting(env, "old", "2026-11-29T10:00:00Z")
    newer = new_release(env, "new", "2026-11-29T10:05:00Z", previous="old")
    assert env.store.enter_stage(newer, "prod")
    # WHEN the older release's link is used
    # THEN it is refused: deploying it would take prod backwards
    with pytest.raises(NotCurrent) as refused:
        env.approvals.decide(token, "approve", BY_SLACK)
    assert "newer release" in refused.value.message
    assert status_of(env, approval) == "PENDING"


def test_an_older_release_holding_the_stage_does_not_block_a_newer_approval(env: Env) -> None:
    # GIVEN prod last deployed by an older release, and a newer release waiting to enter it
    older = new_release(env, "old", "2026-11-29T09:00:00Z")
    assert env.store.enter_stage(older, "prod")
    _, _, token = waiting(env, "new", "2026-11-29T10:00:00Z", previous="old")
    # THEN the newer release can be approved
    assert env.approvals.decide(token, "approve", BY_SLACK).status == "APPROVED"


@pytest.mark.parametrize(
    "change",
    [{"image_digest": "sha256:" + "b" * 64}, {"commit": commit_id("other")}],
    ids=["image-changed", "commit-changed"],
)
def test_an_approval_does_not_count_for_another_image_or_commit(env: Env, change: dict[str, str]) -> None:
    # GIVEN the approver was shown one commit and image, and the release now carries another
    release, _, token = waiting(env)
    env.store.save(release, **change)
    # THEN the approval does not count
    with pytest.raises(NotCurrent):
        env.approvals.decide(token, "approve", BY_SLACK)


def test_a_token_of_a_deleted_release_is_refused(env: Env) -> None:
    release, _, token = waiting(env)
    env.table.delete_item(Key={"pk": f"RELEASE#{release.release_id}", "sk": "META"})
    with pytest.raises(NotCurrent):
        env.approvals.check(token)


def test_a_signed_token_of_an_unknown_approval_is_not_found(env: Env) -> None:
    # GIVEN a correctly signed token whose record does not exist (deleted by TTL, another table)
    token = sign(KEY, "C" * 22, int((T0 + timedelta(hours=1)).timestamp()))
    # THEN it is not found
    with pytest.raises(UnknownApproval) as refused:
        env.approvals.check(token)
    assert refused.value.http_status == 404


# --- a GET never writes ------------------------------------------------------------------------


def test_check_never_writes(env: Env) -> None:
    # GIVEN a waiting release and a snapshot of the whole table
    _, approval, token = waiting(env)
    before = env.items()
    env.calls.clear()
    # WHEN the link is checked many times (a previewer, a reload, the page itself)
    for _ in range(3):
        checked = env.approvals.check(token)
    # THEN it reports the pending approval, only read calls were made, and the table is unchanged
    assert checked == approval
    assert checked.status == "PENDING"
    assert env.calls
    assert env.writes == []
    assert env.items() == before


# --- who may decide ----------------------------------------------------------------------------


def test_a_slack_user_who_is_not_an_approver_is_refused(env: Env) -> None:
    # GIVEN a prod approval listing one approver
    _, approval, token = waiting(env, approvers=(APPROVER,))
    env.calls.clear()
    # WHEN another Slack user clicks approve
    # THEN the click is refused and nothing is written
    with pytest.raises(NotAnApprover) as refused:
        env.approvals.decide(token, "approve", DecidedBy(kind="slack", user=STRANGER), slack_user=STRANGER)
    assert refused.value.http_status == 403
    assert env.writes == []
    assert status_of(env, approval) == "PENDING"


def test_the_link_holder_decides_a_stage_that_lists_approvers_through_the_page(env: Env) -> None:
    # GIVEN a prod approval listing one approver (docs/design.md, invariant 4: the approver check is Slack's)
    _, approval, token = waiting(env, approvers=(APPROVER,))
    # WHEN the holder of the signed link decides from the approval page, with no Slack identity
    decided = env.approvals.decide(token, "approve", BY_LINK)
    # THEN the link is the capability: the decision is taken and records it came from the link
    assert decided.status == "APPROVED"
    assert (decided.decided_by or {})["kind"] == "link"
    assert status_of(env, approval) == "APPROVED"


def _approval(approvers: tuple[str, ...]) -> Approval:
    return Approval(
        approval_id="A" * 22,
        release_id="web@" + commit_id("a"),
        pipeline="web",
        stage="prod",
        commit=commit_id("a"),
        image_digest=None,
        approvers=approvers,
        created_at=T0,
        expires_at=T0 + timedelta(hours=1),
        status="PENDING",
        decided_by=None,
        decided_at=None,
    )


@pytest.mark.parametrize(
    ("approvers", "slack_user", "allowed"),
    [
        ((), None, True),
        ((), STRANGER, True),
        ((APPROVER,), APPROVER, True),
        ((APPROVER,), STRANGER, False),
        ((APPROVER,), None, True),
        ((APPROVER,), "", False),
        ((APPROVER,), APPROVER.lower(), False),
    ],
)
def test_may_decide(approvers: tuple[str, ...], slack_user: str | None, allowed: bool) -> None:
    assert may_decide(_approval(approvers), slack_user) is allowed


def test_decided_by_and_slack_user_must_name_the_same_person(env: Env) -> None:
    _, approval, token = waiting(env)
    with pytest.raises(ValueError, match="differs"):
        env.approvals.decide(token, "approve", BY_SLACK, slack_user=STRANGER)
    with pytest.raises(ValueError, match="kind 'slack'"):
        env.approvals.decide(token, "approve", BY_LINK, slack_user=APPROVER)
    assert status_of(env, approval) == "PENDING"


# --- refusals are fit to show --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("refusal", "code", "status"),
    [
        (InvalidToken, "invalid_token", 403),
        (UnknownApproval, "unknown_approval", 404),
        (ApprovalExpired, "approval_expired", 410),
        (ApprovalAlreadyDecided, "approval_already_decided", 409),
        (NotCurrent, "not_current", 409),
        (NotAnApprover, "not_an_approver", 403),
    ],
)
def test_every_refusal_has_a_stable_code_status_title_and_message(
    refusal: type[ApprovalRefused], code: str, status: int
) -> None:
    error = refusal(detail="approval X: internal detail for the log")
    assert issubclass(refusal, ApprovalRefused)
    assert (error.code, error.http_status) == (code, status)
    assert error.title
    assert error.message == str(error)
    assert "internal detail" not in error.message


# --- the signing key ---------------------------------------------------------------------------


@pytest.fixture
def secrets(moto_aws: None) -> Any:
    return boto3.client("secretsmanager")


def counted(client: Any) -> list[str]:
    calls: list[str] = []
    client.meta.events.register("before-call.secrets-manager", lambda model, **_: calls.append(model.name))
    return calls


def test_the_signing_key_is_read_from_secrets_manager_and_cached(secrets: Any) -> None:
    # GIVEN a secret of 64 random characters
    secrets.create_secret(Name="ecs-deployer/approval-signing-key", SecretString="k" * 64)
    calls = counted(secrets)
    key = signing_key_from_secret("ecs-deployer/approval-signing-key", client=secrets)
    # WHEN the key is asked for twice
    # THEN it is the secret's bytes, fetched once (cached five minutes)
    assert key() == b"k" * 64
    assert key() == b"k" * 64
    assert calls == ["GetSecretValue"]


def test_a_binary_secret_is_used_as_is(secrets: Any) -> None:
    secrets.create_secret(Name="binary-key", SecretBinary=bytes(range(48)))
    assert signing_key_from_secret("binary-key", client=secrets)() == bytes(range(48))


def test_a_missing_secret_is_a_configuration_error(secrets: Any) -> None:
    key = signing_key_from_secret("no-such-secret", client=secrets)
    with pytest.raises(ConfigError, match="does not exist"):
        key()


def test_an_invalid_secret_id_is_a_configuration_error(secrets: Any) -> None:
    with pytest.raises(ConfigError, match="not a valid"):
        signing_key_from_secret("", client=secrets)()


def test_a_secret_shorter_than_32_bytes_is_refused(secrets: Any) -> None:
    secrets.create_secret(Name="short-key", SecretString="k" * (MIN_KEY_BYTES - 1))
    with pytest.raises(ConfigError, match="less than 32 bytes"):
        signing_key_from_secret("short-key", client=secrets)()


def test_a_short_key_callable_requests_and_verifies_nothing(env: Env) -> None:
    # GIVEN a key of 31 bytes handed straight to Approvals
    weak = env.approvals_with(signing_key=lambda: b"k" * 31)
    _, approval, _ = waiting(env)
    another = new_release(env, "b", "2026-11-29T11:00:00Z", previous="a")
    env.calls.clear()
    # THEN no approval is requested, checked or decided with it, and DynamoDB is not even read
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        weak.request(another, "prod", approvers=[], expires_in_hours=1)
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        weak.decide(sign(b"k" * 31, approval.approval_id, approval.expires_epoch), "approve", BY_SLACK)
    assert env.calls == []
    assert status_of(env, approval) == "PENDING"


def unreachable_client() -> Any:
    client = boto3.client("secretsmanager", config=Config(retries={"max_attempts": 1, "mode": "standard"}))

    def refuse(request: Any, **_: Any) -> None:
        raise EndpointConnectionError(endpoint_url=request.url)

    client.meta.events.register("before-send.secrets-manager", refuse)
    return client


def test_secrets_manager_unreachable_is_a_transient_error_and_nothing_is_decided(env: Env) -> None:
    # GIVEN a waiting release, and a handler that cannot reach Secrets Manager
    _, approval, token = waiting(env)
    cut_off = env.approvals_with(signing_key=signing_key_from_secret("ecs-deployer/key", client=unreachable_client()))
    env.calls.clear()
    # WHEN the approver clicks
    # THEN the handler fails with a clear, retryable error, and nothing is read or decided
    with pytest.raises(TransientError, match="Secrets Manager is unreachable"):
        cut_off.decide(token, "approve", BY_SLACK)
    with pytest.raises(TransientError):
        cut_off.check(token)
    assert env.calls == []
    assert status_of(env, approval) == "PENDING"


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("ThrottlingException", 400, TransientError),
        ("InternalServiceError", 500, TransientError),
        ("AccessDeniedException", 400, ConfigError),
        ("DecryptionFailure", 400, ConfigError),
    ],
)
def test_secrets_manager_errors_map_to_retry_or_configuration(code: str, status: int, expected: type) -> None:
    client = boto3.client("secretsmanager", config=Config(retries={"max_attempts": 1}))
    with Stubber(client) as stub:
        stub.add_client_error("get_secret_value", service_error_code=code, http_status_code=status)
        with pytest.raises(expected):
            signing_key_from_secret("ecs-deployer/key", client=client)()
