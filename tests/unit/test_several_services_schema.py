"""`services:` in the pipelines file: the schema, the cross-checks across lists, and the lock order."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deployer.pipelines.loader import (
    check_config_text,
    from_published_json,
    load_config_text,
    to_published_json,
    to_yaml,
)
from deployer.pipelines.schema import MAX_SERVICES_PER_STAGE
from deployer.pipelines.targets import ServiceTarget, lock_order

pytestmark = pytest.mark.unit


def config(*stages: str, container: str = "container: web", extra: str = "") -> str:
    lines = [
        "pipelines:",
        "  - name: web",
        "    repository: web-app",
        "    branch: main",
        "    build: {project: web-app-build}",
        f"    {container}",
        "    stages:",
    ]
    for index, stage in enumerate(stages):
        lines += [f"      - name: s{index}", *(f"        {line}" for line in stage.strip().splitlines())]
    return "\n".join(lines) + "\n" + extra


def errors(text: str) -> list[str]:
    return [f"{p.path}: {p.message}" for p in check_config_text(text).errors]


def test_a_stage_lists_services_by_name_or_with_their_own_containers() -> None:
    text = config(
        """
cluster: dev
services: [web, {name: worker, container: worker}, {name: jobs, containers: [jobs, cron]}]
"""
    )
    pipeline = load_config_text(text).pipelines[0]
    stage = pipeline.stages[0]
    assert stage.service is None
    assert stage.service_names == ("web", "worker", "jobs")
    assert stage.several_services
    assert pipeline.targets(stage) == (
        ServiceTarget("dev", "web", ("web",)),
        ServiceTarget("dev", "worker", ("worker",)),
        ServiceTarget("dev", "jobs", ("jobs", "cron")),
    )


def test_service_stays_valid_and_means_one_service() -> None:
    pipeline = load_config_text(config("cluster: dev\nservice: web")).pipelines[0]
    stage = pipeline.stages[0]
    assert (stage.service, stage.services, stage.several_services) == ("web", None, False)
    assert pipeline.targets(stage) == (ServiceTarget("dev", "web", ("web",)),)


def test_the_published_copy_keeps_bare_names_and_round_trips() -> None:
    loaded = load_config_text(config("cluster: dev\nservices: [web, {name: worker, container: app}]"))
    published = to_published_json(loaded)
    assert '"services":["web",{"container":"app","name":"worker"}]' in published
    assert from_published_json(published) == loaded
    assert "    - web\n    - name: worker\n      container: app\n" in to_yaml(loaded)


@pytest.mark.parametrize(
    ("stage", "path", "fragment"),
    [
        ("cluster: dev\nservice: web\nservices: [worker]", "pipelines[0].stages[0]", "exactly one of `service: NAME`"),
        ("cluster: dev", "pipelines[0].stages[0]", "exactly one of `service: NAME`"),
        ("cluster: dev\nservices: []", "pipelines[0].stages[0].services", "at least 1 entry"),
        ("cluster: dev\nservices: web", "pipelines[0].stages[0].services", "expected a list"),
        ("cluster: dev\nservices: [web, web]", "pipelines[0].stages[0].services[1]", "listed twice in this stage"),
        (
            "cluster: dev\nservices: [web, {name: web, container: app}]",
            "pipelines[0].stages[0].services[1].name",
            "listed twice in this stage",
        ),
        ("cluster: dev\nservices: [7]", "pipelines[0].stages[0].services[0]", "expected a service name or a mapping"),
        ("cluster: dev\nservices: [{container: app}]", "pipelines[0].stages[0].services[0].name", "required key"),
        (
            "cluster: dev\nservices: [{name: w, contaner: a}]",
            "pipelines[0].stages[0].services[0].contaner",
            "container",
        ),
        (
            "cluster: dev\nservices: [{name: w, container: a, containers: [b]}]",
            "pipelines[0].stages[0].services[0]",
            "at most one of `container: NAME` or `containers",
        ),
        (
            "cluster: dev\nservices: [{name: w, containers: [a, a]}]",
            "pipelines[0].stages[0].services[0].containers[1]",
            "listed twice",
        ),
        ("cluster: dev\nservices: [web, arn:aws:ecs:x]", "pipelines[0].stages[0].services[1]", "not an ECS name"),
    ],
)
def test_each_services_rule_is_an_error_at_its_path(stage: str, path: str, fragment: str) -> None:
    found = errors(config(stage))
    assert any(e.startswith(f"{path}: ") and fragment in e for e in found), found


def test_one_stage_per_ecs_service_holds_across_lists_and_pipelines() -> None:
    # GIVEN worker in dev's list, then in another stage's `service`, then in another pipeline's list
    other = """
  - name: api
    repository: api
    branch: main
    build: {project: api-build}
    container: api
    stages:
      - name: dev
        cluster: dev
        services: [api, worker]
"""
    text = config("cluster: dev\nservices: [web, worker]", "cluster: dev\nservice: worker", extra=other)
    found = errors(text)
    # THEN both later uses are refused, each pointing at the first
    assert (
        "pipelines[0].stages[1].service: ECS service 'worker' in cluster 'dev' is already deployed by "
        "pipelines[0].stages[0].services[1]" in found[0]
    )
    assert any(e.startswith("pipelines[1].stages[0].services[1]: ECS service 'worker'") for e in found), found
    # AND the same name in another cluster is another service
    assert errors(config("cluster: dev\nservices: [web, worker]", "cluster: prod\nservices: [web, worker]")) == []


def test_approval_during_the_deployment_is_refused_with_several_services() -> None:
    stage = """
cluster: prod
services: [web, worker]
approval: {approvers: [U012ABCDEF], at: POST_TEST_TRAFFIC_SHIFT}
rollout: {strategy: BLUE_GREEN, bakeTimeInMinutes: 10}
"""
    (found,) = errors(config(stage))
    assert found.startswith("pipelines[0].stages[0].approval.at: POST_TEST_TRAFFIC_SHIFT: an approval during")
    assert "this stage deploys 2 services" in found
    assert "remove `at`" in found
    # one service in a list is one deployment: allowed as with `service:`
    assert errors(config(stage.replace("[web, worker]", "[web]"))) == []
    # an approval before the stage is fine with any number of services
    assert errors(config(stage.replace(", at: POST_TEST_TRAFFIC_SHIFT", ""))) == []


def test_more_services_than_a_stage_deploys_in_one_step_are_refused_with_the_reason() -> None:
    names = ", ".join(f"s{i}" for i in range(MAX_SERVICES_PER_STAGE + 1))
    (found,) = errors(config(f"cluster: dev\nservices: [{names}]"))
    assert found.startswith(f"pipelines[0].stages[0].services: {MAX_SERVICES_PER_STAGE + 1} services: a stage deploys")
    assert "split them over stages" in found
    names = ", ".join(f"s{i}" for i in range(MAX_SERVICES_PER_STAGE))
    assert errors(config(f"cluster: dev\nservices: [{names}]")) == []


# -- properties ------------------------------------------------------------------------------------

NAMES = st.sampled_from(["web", "worker", "api", "jobs", "cron", "a-1", "b_2"])


@given(st.lists(NAMES, max_size=8))
def test_a_services_list_is_valid_exactly_when_its_names_are_distinct_and_not_empty(names: list[str]) -> None:
    text = config(f"cluster: dev\nservices: [{', '.join(names)}]")
    found = errors(text)
    if names and len(set(names)) == len(names):
        assert found == []
    else:
        assert found
        # every repeat is reported at its own index, pointing at the first
        repeats = [i for i, name in enumerate(names) if name in names[:i]]
        for index in repeats:
            assert any(e.startswith(f"pipelines[0].stages[0].services[{index}]: ") for e in found), found


@given(st.lists(st.tuples(st.sampled_from(["dev", "prod", "dev-2"]), NAMES), min_size=1, max_size=6, unique=True))
def test_locks_are_taken_in_one_order_whatever_order_a_stage_lists_its_services(
    services: list[tuple[str, str]],
) -> None:
    # the formula: lock_order sorts by `cluster/service`, so every permutation gives the same order
    targets = [ServiceTarget(cluster, name, ("web",)) for cluster, name in services]
    expected = lock_order(targets)
    assert [t.key for t in expected] == sorted(f"{c}/{n}" for c, n in services)
    for permutation in itertools.islice(itertools.permutations(targets), 24):
        assert lock_order(permutation) == expected


def test_the_stage_record_of_several_services_round_trips_and_old_records_still_load() -> None:
    from deployer.releases.model import Release, ReleaseState, ServiceRecord, StageRecord, StageState
    from deployer.releases.store import _release_from_item
    from deployer.releases.store import _release_to_item as to_item

    record = StageRecord(
        StageState.DEPLOYING,
        "dev",
        "web+worker",
        started_at="2026-11-29T10:00:00.000000Z",
        services=[
            ServiceRecord("dev", "web", StageState.DEPLOYED, ["web"], "arn:web:8", "arn:web:7", "ecs-svc/1"),
            ServiceRecord("dev", "worker", StageState.DEPLOYING, ["worker"], None, "arn:worker:3", None, "2026"),
        ],
    )
    release = Release(
        "web@" + "a" * 40, "web", "web-app", "main", "a" * 40, "t", "k", ReleaseState.DEPLOYING, "t", "t",
        stages={"dev": record},
    )  # fmt: skip
    item: dict[str, Any] = to_item(release)
    assert item["stages"]["dev"]["services"][1] == {
        "cluster": "dev",
        "service": "worker",
        "state": "DEPLOYING",
        "containers": ["worker"],
        "previous_task_definition_arn": "arn:worker:3",
        "registering_at": "2026",
    }
    assert _release_from_item(item).stages["dev"] == record
    # a record written before stages had several services: no `services`, top-level fields only
    old = {**item, "stages": {"dev": {"state": "DEPLOYED", "cluster": "dev", "service": "web", "started_at": "t"}}}
    loaded = _release_from_item(old).stages["dev"]
    assert (loaded.services, loaded.service_keys(), loaded.all_started) == (None, [("dev", "web")], False)
