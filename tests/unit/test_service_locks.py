"""Service locks for stages of several services: taken in one global order (`pipelines.lock_order`),
so two releases that need the same services never each hold one the other waits for.

A published file gives each ECS service to one stage (the cross-check), but a republished file can
move services between stages and pipelines while releases still hold or wait for their locks; the
configurations below are built without the cross-check (`PipelinesConfig.model_validate`) to put
two pipelines on the same services, as such a republish does.
"""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from deployer.deps import Deps
from deployer.events.ecs import EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.deployment import on_deployment
from deployer.pipelines.schema import PipelinesConfig
from deployer.pipelines.targets import ServiceTarget, lock_order
from deployer.releases.model import Release, ReleaseState, StageState
from deployer.releases.store import ReleaseStore
from deployer.stages import StageDeployer
from deployer_local.provision import ACCOUNT, DeployerNames, provision_deployer, web_task_definition
from tests.support.events import load_event
from tests.support.world import commit_id

pytestmark = pytest.mark.unit

IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/web-app@sha256:" + "cd" * 32


def shared_config(p1: list[str], p2: list[str]) -> PipelinesConfig:
    def pipeline(name: str, services: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "repository": name,
            "branch": "main",
            "build": {"project": f"{name}-build"},
            "container": "web",
            "stages": [{"name": "dev", "cluster": "shared", "services": services}],
        }

    return PipelinesConfig.model_validate({"pipelines": [pipeline("p1", p1), pipeline("p2", p2)]})


@pytest.fixture
def aws(aws_session: Any) -> Any:
    """The in-memory AWS (a unit test)."""
    return aws_session


def make_deps(config: PipelinesConfig, services: list[str], session: Any) -> Deps:
    names = DeployerNames("locks")
    provision_deployer(names, session)
    ecs = session.client("ecs")
    ecs.create_cluster(clusterName="shared")
    arn = ecs.register_task_definition(**web_task_definition(image="public.ecr.aws/nginx/nginx:1.27"))[
        "taskDefinition"
    ]["taskDefinitionArn"]
    for name in services:
        ecs.create_service(cluster="shared", serviceName=name, taskDefinition=arn, desiredCount=2, launchType="EC2")
    store = ReleaseStore(session.resource("dynamodb").Table(names.table))
    return Deps(
        store=store,
        config=lambda: config,
        codebuild=session.client("codebuild"),
        ecr=session.client("ecr"),
        stages=StageDeployer(store, ecs),
    )


def built(store: ReleaseStore, pipeline: str, label: str, time: str) -> Release:
    release, _ = store.create(
        pipeline=pipeline,
        repository=pipeline,
        branch="main",
        commit=commit_id(label),
        previous_commit=None,
        pusher=None,
        pushed_at=time,
    )
    return store.transition(release, ReleaseState.BUILT, image_uri=IMAGE, image_digest="sha256:" + "cd" * 32)


def completed(deps: Deps, release_id: str, service: str) -> dict[str, Any]:
    release = deps.store.get(release_id)
    assert release is not None
    svc = next(s for s in release.stages["dev"].services or () if s.service == service)
    event = load_event("ecs_deployment_completed")
    event["resources"] = [f"arn:aws:ecs:eu-west-1:{ACCOUNT}:service/shared/{service}"]
    event["detail"].update(deploymentId=svc.deployment_id, updatedAt=datetime.now(UTC).isoformat())
    return on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), deps)


def holder(deps: Deps, service: str) -> str | None:
    return (deps.store.lock_of("shared", service) or {}).get("holder")


def test_two_pipelines_sharing_two_services_in_opposite_orders_never_deadlock(aws: Any) -> None:
    # GIVEN p1 deploys [x, y] and p2 [y, x], and p2's release starts right after p1's took its first
    # lock: the interleaving that deadlocks when each takes its locks in its own list order
    # (p1 holds x and waits for y, p2 holds y and waits for x)
    config = shared_config(["x", "y"], ["y", "x"])
    deps = make_deps(config, ["x", "y"], aws)
    r1 = built(deps.store, "p1", "r1", "2026-11-29T10:00:00Z")
    r2 = built(deps.store, "p2", "r2", "2026-11-29T10:00:01Z")
    p1, p2 = config.pipelines
    acquire = deps.store.acquire_service
    interleaved: list[Any] = []

    def acquire_then_let_p2_in(cluster: str, service: str, release: Release, stage: str) -> Any:
        result = acquire(cluster, service, release, stage)
        if release.release_id == r1.release_id and not interleaved:
            interleaved.append(deps.stages.deploy(r2, p2, p2.stages[0]))
        return result

    deps.store.acquire_service = acquire_then_let_p2_in  # type: ignore[method-assign]
    # WHEN both deploy
    first = deps.stages.deploy(r1, p1, p1.stages[0])
    deps.store.acquire_service = acquire  # type: ignore[method-assign]
    # THEN p1 holds both and deploys; p2 waits for x, the first in lock order, holding nothing
    (second,) = interleaved
    assert (first.outcome, second.outcome) == ("deploying", "queued")
    assert (holder(deps, "x"), holder(deps, "y")) == (r1.release_id, r1.release_id)
    assert (deps.store.lock_of("shared", "x") or {}).get("other_waiters", {}).get("p2", {}).get("release") == (
        r2.release_id
    ) or (deps.store.lock_of("shared", "x") or {}).get("waiter") == r2.release_id
    waiting = deps.store.get(r2.release_id)
    assert waiting is not None
    assert waiting.stages["dev"].state is StageState.QUEUED
    assert "is deploying shared/x" in (waiting.reason or "")
    # WHEN p1's deployments complete THEN p2 gets both locks and deploys; afterwards nothing is held
    completed(deps, r1.release_id, "y")
    outcome = completed(deps, r1.release_id, "x")
    assert outcome["outcome"] == "deployed"
    assert outcome["handed_over_to"] == r2.release_id
    assert (holder(deps, "x"), holder(deps, "y")) == (r2.release_id, r2.release_id)
    completed(deps, r2.release_id, "x")
    completed(deps, r2.release_id, "y")
    for release_id in (r1.release_id, r2.release_id):
        release = deps.store.get(release_id)
        assert release is not None
        assert release.stages["dev"].state is StageState.DEPLOYED
    assert (holder(deps, "x"), holder(deps, "y")) == (None, None)


def test_a_release_of_another_pipeline_waits_beside_the_next_in_line_and_never_supersedes_it(aws: Any) -> None:
    # GIVEN p1's release A holds x, p1's release B waits for it
    deps = make_deps(shared_config(["x"], ["x"]), ["x"], aws)
    store = deps.store
    a = built(store, "p1", "a", "2026-11-29T10:00:00Z")
    b = built(store, "p1", "b", "2026-11-29T10:01:00Z")
    c = built(store, "p2", "c", "2026-11-29T10:02:00Z")
    c_newer = built(store, "p2", "c2", "2026-11-29T10:03:00Z")
    assert store.acquire_service("shared", "x", a, "dev").acquired
    assert store.acquire_service("shared", "x", b, "dev").superseded_waiter is None
    # WHEN p2's release C, pushed later, asks for x
    queued = store.acquire_service("shared", "x", c, "dev")
    # THEN it waits beside B: B is not superseded (another pipeline's commit never replaces it)
    assert not queued.acquired
    assert queued.superseded_waiter is None
    lock = store.lock_of("shared", "x") or {}
    assert lock["waiter"] == b.release_id
    assert lock["other_waiters"]["p2"]["release"] == c.release_id
    # AND a newer release of p2 does supersede C, its own pipeline's older waiter
    assert store.acquire_service("shared", "x", c_newer, "dev").superseded_waiter == c.release_id
    # WHEN A releases THEN B holds x and C's successor is next in line; then it gets x
    assert store.release_service("shared", "x", a.release_id) == (b.release_id, "dev")
    lock = store.lock_of("shared", "x") or {}
    assert (lock["holder"], lock["waiter"], lock["other_waiters"]) == (b.release_id, c_newer.release_id, {})
    assert store.release_service("shared", "x", b.release_id) == (c_newer.release_id, "dev")
    assert store.release_service("shared", "x", c_newer.release_id) is None
    assert store.lock_of("shared", "x") is None


# -- a property: any releases, any services, any interleaving, everyone finishes --------------------

SERVICES = ["a", "b", "c", "d"]
_runs = itertools.count()


class _Process:
    """A release taking its stage's locks one step at a time, in lock order, as StageDeployer does;
    blocked while queued, until a release that finished hands it the lock it waits for."""

    def __init__(self, release: Release, services: list[str]) -> None:
        self.release = release
        self.todo = [t.service for t in lock_order(ServiceTarget("c", s, ()) for s in services)]
        self.held: list[str] = []
        self.blocked_on: str | None = None
        self.done = False  # it deployed and freed its locks


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], phases=[Phase.generate]
)
@given(
    needs=st.lists(st.lists(st.sampled_from(SERVICES), min_size=1, max_size=4, unique=True), min_size=2, max_size=5),
    seed=st.integers(0, 2**16),
)
def test_releases_taking_locks_in_lock_order_all_finish_whatever_the_interleaving(
    store: ReleaseStore, needs: list[list[str]], seed: int
) -> None:
    run = next(_runs)
    rng = random.Random(seed)
    cluster = f"run{run}"
    processes = [
        _Process(built(store, f"p{i}", f"{run}-{i}", f"2026-11-29T10:{i:02d}:00Z"), services)
        for i, services in enumerate(needs)
    ]
    by_id = {p.release.release_id: p for p in processes}
    for _ in range(200):
        runnable = [p for p in processes if p.blocked_on is None and not p.done]
        if not runnable:
            break
        process = rng.choice(runnable)
        if process.todo:  # take the next lock
            service = process.todo[0]
            lock = store.acquire_service(cluster, service, process.release, "dev")
            assert lock.superseded_waiter is None  # one release per pipeline: nobody supersedes
            if lock.acquired:
                process.held.append(process.todo.pop(0))
            else:
                process.blocked_on = process.todo.pop(0)
            continue
        # it holds every lock: it deploys, completes, and frees them; each freed lock's new holder moves on
        for waiter_id, _stage in store.release_services(
            [(cluster, s) for s in process.held], process.release.release_id
        ):
            waiter = by_id[waiter_id]
            assert waiter.blocked_on is not None
            waiter.held.append(waiter.blocked_on)
            waiter.blocked_on = None
        process.held = []
        process.done = True
    # THEN nobody waits for ever (a deadlock leaves processes blocked with nothing runnable)
    stuck = [(p.release.pipeline, p.held, p.blocked_on) for p in processes if not p.done or p.held]
    assert not stuck, f"deadlock: {stuck} (needs {needs}, seed {seed})"
    for service in SERVICES:
        assert store.lock_of(cluster, service) is None


@pytest.fixture
def store(deployer_table: Any) -> ReleaseStore:
    return ReleaseStore(deployer_table)
