"""The moves a release may make: one table (`deployer.releases.model.TRANSITIONS`) checked in one
place (`check_transition`, called by `ReleaseStore.transition` before it writes anything)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from deployer.releases.model import (
    TERMINAL_STATES,
    TRANSITIONS,
    InvalidTransition,
    Release,
    ReleaseState,
    Transition,
    check_transition,
)
from deployer.releases.store import ReleaseStore
from deployer_local.provision import DeployerNames, provision_deployer
from tests.support.world import commit_id

pytestmark = pytest.mark.unit

S = ReleaseState


@pytest.fixture
def seen() -> list[Transition]:
    return []


@pytest.fixture
def store(seen: list[Transition]) -> Iterator[ReleaseStore]:
    with mock_aws():
        names = DeployerNames("transitions")
        provision_deployer(names)
        yield ReleaseStore(boto3.resource("dynamodb").Table(names.table), on_transition=seen.append)


def create(store: ReleaseStore) -> Release:
    release, _ = store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=commit_id("transitions"),
        previous_commit=None,
        pusher=None,
        pushed_at="2026-12-01T10:00:00Z",
    )
    return release


def test_the_table_names_every_state_and_lets_no_ended_release_move() -> None:
    assert set(TRANSITIONS) == set(ReleaseState)
    assert {state for state in TERMINAL_STATES if TRANSITIONS[state]} == set()


# The release states of docs/design.md, "The flow of one release", in order.
DOCUMENTED_PATH = [
    S.BUILDING,
    S.BUILT,
    S.DEPLOYING,
    S.DEPLOYED,
    S.AWAITING_APPROVAL,
    S.DEPLOYING,
    S.DEPLOYED,
    S.RELEASED,
]


def test_the_documented_path_and_every_ending_are_allowed() -> None:
    for from_state, to_state in itertools.pairwise(DOCUMENTED_PATH):
        check_transition("web@x", from_state, to_state)
    check_transition("web@x", S.BUILDING, S.BUILD_FAILED)
    for state in (S.BUILT, S.DEPLOYING, S.DEPLOYED, S.AWAITING_APPROVAL):
        for ending in (S.DEPLOY_FAILED, S.SUPERSEDED, S.INVALID_CONFIG):
            check_transition("web@x", state, ending)
    for ending in (S.REJECTED, S.APPROVAL_EXPIRED):
        check_transition("web@x", S.AWAITING_APPROVAL, ending)
        check_transition("web@x", S.DEPLOYING, ending)  # a deployment paused by a PAUSE hook


@pytest.mark.parametrize(
    ("from_state", "to_state"),
    [
        (S.RELEASED, S.DEPLOYING),
        (S.DEPLOY_FAILED, S.RELEASED),
        (S.SUPERSEDED, S.SUPERSEDED),
        (S.DEPLOYED, S.BUILDING),
        (S.DEPLOYING, S.BUILT),
        (S.AWAITING_APPROVAL, S.BUILD_FAILED),
    ],
)
def test_a_move_the_table_does_not_allow_is_refused_with_the_reason(from_state: S, to_state: S) -> None:
    with pytest.raises(InvalidTransition, match=f"release web@x cannot go from {from_state} to {to_state}"):
        check_transition("web@x", from_state, to_state)


def test_the_store_refuses_a_move_out_of_an_ended_release_and_writes_nothing(
    store: ReleaseStore, seen: list[Transition]
) -> None:
    # GIVEN a release that was superseded
    release = create(store)
    store.transition(release, S.SUPERSEDED, reason="a newer push")
    written = store.get(release.release_id)
    assert written is not None
    assert written.state is S.SUPERSEDED
    published = len(seen)
    # WHEN something tries to deploy it
    with pytest.raises(InvalidTransition, match="has ended"):
        store.transition(written, S.DEPLOYING, stage="dev", reason="deploying")
    # THEN the stored release did not change and nothing was published
    after = store.get(release.release_id)
    assert after is not None
    assert (after.state, after.version) == (S.SUPERSEDED, written.version)
    assert len(seen) == published
