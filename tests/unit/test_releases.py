"""The release store: idempotent creation, ordering, stage watermarks, optimistic writes and the
per-service lock."""

from __future__ import annotations

from typing import Any

import pytest

from deployer.releases.model import Release, ReleaseState, Transition
from deployer.releases.store import ConflictError, ReleaseStore
from tests.support.world import commit_id

pytestmark = pytest.mark.unit


@pytest.fixture
def seen() -> list[Transition]:
    return []


@pytest.fixture
def store(deployer_table: Any, seen: list[Transition]) -> ReleaseStore:
    return ReleaseStore(deployer_table, on_transition=seen.append)


def create(store: ReleaseStore, label: str, time: str, previous: str | None = None) -> Release:
    release, _ = store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=commit_id(label),
        previous_commit=commit_id(previous) if previous else None,
        pusher=None,
        pushed_at=time,
    )
    return release


def test_creating_the_same_commit_twice_returns_the_first_release(store: ReleaseStore, seen: list) -> None:
    first = create(store, "a", "2026-11-29T10:00:00Z")
    again, created = store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=commit_id("a"),
        previous_commit=None,
        pusher=None,
        pushed_at="2026-11-29T10:00:00Z",
    )
    assert not created
    assert again.release_id == first.release_id
    assert [t.to_state for t in seen] == [ReleaseState.BUILDING]


def test_order_keys_follow_push_time_then_the_same_second_chain(store: ReleaseStore) -> None:
    a = create(store, "a", "2026-11-29T10:00:00Z")
    b = create(store, "b", "2026-11-29T10:00:00Z", previous="a")
    c = create(store, "c", "2026-11-29T10:00:01Z", previous="b")
    assert a.order_key < b.order_key < c.order_key


def test_a_stage_never_goes_backwards(store: ReleaseStore) -> None:
    older = create(store, "old", "2026-11-29T10:00:00Z")
    newer = create(store, "new", "2026-11-29T10:05:00Z", previous="old")
    assert store.enter_stage(newer, "dev")
    assert not store.enter_stage(older, "dev")
    assert store.enter_stage(newer, "dev")  # idempotent for the same release
    assert store.stage_holder("web", "dev") == newer.release_id


def test_a_stale_copy_cannot_overwrite_a_newer_write(store: ReleaseStore) -> None:
    release = create(store, "a", "2026-11-29T10:00:00Z")
    stale = store.get(release.release_id)
    assert stale is not None
    store.transition(release, ReleaseState.BUILT, image_uri="repo@sha256:" + "0" * 64)
    with pytest.raises(ConflictError):
        store.transition(stale, ReleaseState.BUILD_FAILED, reason="late")
    current = store.get(release.release_id)
    assert current is not None
    assert current.state is ReleaseState.BUILT


def test_transition_refuses_a_move_from_an_unexpected_state(store: ReleaseStore) -> None:
    release = create(store, "a", "2026-11-29T10:00:00Z")
    with pytest.raises(ConflictError):
        store.transition(release, ReleaseState.RELEASED, allowed_from={ReleaseState.DEPLOYED})


def test_the_service_lock_is_reentrant_and_queues_the_newest_waiter(store: ReleaseStore) -> None:
    a = create(store, "a", "2026-11-29T10:00:00Z")
    b = create(store, "b", "2026-11-29T10:01:00Z", previous="a")
    c = create(store, "c", "2026-11-29T10:02:00Z", previous="b")
    assert store.acquire_service("dev", "web", a, "dev").acquired
    assert store.acquire_service("dev", "web", a, "dev").acquired  # re-entrant
    queued_b = store.acquire_service("dev", "web", b, "dev")
    assert not queued_b.acquired
    assert queued_b.holder == a.release_id
    # a newer waiter replaces the older one, which is reported superseded
    queued_c = store.acquire_service("dev", "web", c, "dev")
    assert not queued_c.acquired
    assert queued_c.superseded_waiter == b.release_id
    # an older release arriving late does not displace the newer waiter
    late_b = store.acquire_service("dev", "web", b, "dev")
    assert late_b.superseded_waiter == b.release_id
    lock = store.lock_of("dev", "web")
    assert lock is not None
    assert lock["waiter"] == c.release_id


def test_releasing_the_lock_hands_it_to_the_waiter_or_frees_it(store: ReleaseStore) -> None:
    a = create(store, "a", "2026-11-29T10:00:00Z")
    b = create(store, "b", "2026-11-29T10:01:00Z", previous="a")
    store.acquire_service("dev", "web", a, "dev")
    store.acquire_service("dev", "web", b, "dev")
    assert store.release_service("dev", "web", b.release_id) is None  # not the holder: no effect
    assert store.release_service("dev", "web", a.release_id) == (b.release_id, "dev")
    lock = store.lock_of("dev", "web")
    assert lock is not None
    assert lock["holder"] == b.release_id
    assert "waiter" not in lock
    assert store.release_service("dev", "web", b.release_id) is None
    assert store.lock_of("dev", "web") is None


def test_supersede_older_only_touches_releases_not_yet_deploying(store: ReleaseStore) -> None:
    building = create(store, "a", "2026-11-29T10:00:00Z")
    deploying = create(store, "b", "2026-11-29T10:01:00Z", previous="a")
    store.transition(deploying, ReleaseState.DEPLOYING, stage="dev")
    newest = create(store, "c", "2026-11-29T10:02:00Z", previous="b")
    assert store.supersede_older(newest) == [building.release_id]
    still = store.get(deploying.release_id)
    assert still is not None
    assert still.state is ReleaseState.DEPLOYING


def test_list_releases_is_newest_first(store: ReleaseStore) -> None:
    create(store, "a", "2026-11-29T10:00:00Z")
    create(store, "b", "2026-11-29T10:01:00Z", previous="a")
    assert [r.commit for r in store.list_releases("web")] == [commit_id("b"), commit_id("a")]
