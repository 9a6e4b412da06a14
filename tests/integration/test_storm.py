"""A storm of pushes, builds, deployments and approvals, every event delivered one to three times
in shuffled order, through the template's rules to the flow (tests/support/storm.py says how).

The seed is printed first and named in every failure; `STORM_SEED=<seed>` replays a run. CI runs
a small storm (5 pipelines, 60 pushes) on a fixed seed, so a submission never fails on a seed
nobody has seen; `STORM_SEED=$RANDOM make test` explores others, and `python -m bench` runs the
full storm (20 x 500) on a fresh seed each time."""

from __future__ import annotations

import pytest

from deployer.flow.rollback import rollback_target
from tests.support.storm import Odds, Storm, check_invariants, run_storm, seed_from_env, seeded_moto

pytestmark = pytest.mark.integration

CI_PIPELINES = 5
CI_PUSHES = 60
CI_SEED = 20261129


@pytest.fixture(autouse=True)
def _moto_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storm runs against moto in process: no endpoint of a moto server may leak in."""
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def test_a_storm_of_duplicated_shuffled_events_keeps_every_invariant() -> None:
    # GIVEN 5 pipelines and 60 pushes, every event delivered 1-3 times in shuffled order
    seed = seed_from_env(default=CI_SEED)
    # WHEN the storm has blown over (every pending event delivered)
    report = run_storm(CI_PIPELINES, CI_PUSHES, seed)
    # THEN one build per commit, one revision and one UpdateService per (release, stage), no
    # stage went backwards, each ends on its newest commit, and nothing is stuck or lost
    assert not report.broken_invariants, report.failure_message()
    # AND it was a storm: duplicates of both kinds, answered by the cache and by meaning
    assert report.redeliveries, report.summary()
    assert report.reemissions, report.summary()
    assert report.cache_hits, report.summary()
    assert report.calls["StartBuild"], report.summary()
    assert report.calls["UpdateService"], report.summary()
    assert report.calls["DeregisterTaskDefinition"], report.summary()  # old revisions were cleaned up
    assert sum(report.states.values()) == CI_PUSHES, report.summary()
    # AND before-tasks ran (RunTask, their STOPPED events duplicated and shuffled like the rest), both ways
    assert report.calls["RunTask"], report.summary()
    assert report.outcomes["OnDeploymentFunction:before_task_succeeded"], report.summary()
    assert report.outcomes["OnDeploymentFunction:before_task_failed"], report.summary()


def test_a_storm_with_stages_of_two_services_sharing_one_keeps_every_invariant() -> None:
    # GIVEN 3 pipelines of one service per stage and 2 pairs whose dev stage deploys two services,
    # one shared within the pair and listed in opposite orders ([duo00, shared00], [shared00, duo01])
    seed = seed_from_env(default=CI_SEED)
    # WHEN 60 pushes storm through (a sibling's failure puts the other back: StopServiceDeployment
    # ROLLBACK in flight, UpdateService to its previous revision once completed)
    report = run_storm(3, CI_PUSHES, seed, duos=2)
    # THEN every invariant holds per service, nothing is stuck QUEUED (no deadlock on the shared
    # locks), no lock is left, and each record says whether its deployment went back
    assert not report.broken_invariants, report.failure_message()
    assert not report.wrong_records, report.failure_message()
    assert sum(report.states.values()) == CI_PUSHES, report.summary()
    assert any(line for _p, line in report.trace if "shared00" in line), report.summary()
    # AND the first pipeline of each pair ran its dev before-task (with its own service's revision)
    # before either service of the stage was updated (the "before-task" invariant, per service)
    assert any("RunTask" in line and line.endswith(" dev") for p, line in report.trace if p == "duo00"), (
        report.summary()
    )


def test_the_checker_sees_a_second_update_that_takes_a_stage_backwards() -> None:
    # GIVEN a small storm (a fixed seed: this tests the checker) that kept every invariant
    seed = 1
    with seeded_moto(seed):
        storm = Storm(2, 12, seed)
        storm.run()
        assert not check_invariants(storm), storm.report.failure_message()
        updates: dict[tuple[str, str], list[str]] = {}
        for call in storm.calls.of("UpdateService"):
            updates.setdefault((call.params["cluster"], call.params["service"]), []).append(
                call.params["taskDefinition"]
            )
        (cluster, service), arns = next((key, arns) for key, arns in updates.items() if len(set(arns)) > 1)
        # WHEN the deployer's own ECS client puts the service back on its first release's revision
        storm.deps.stages.ecs.update_service(cluster=cluster, service=service, taskDefinition=arns[0])
        storm.report.violations = []
        found = {v.invariant for v in check_invariants(storm)}
    # THEN the checker reports both broken invariants (a checker that cannot fail proves nothing)
    assert {"one-update", "never-backwards"} <= found, found


def test_the_checker_sees_a_revision_without_its_stages_settings() -> None:
    # GIVEN a small storm that kept every invariant, its stages setting DEPLOY_STAGE and DB_PASSWORD
    seed = 1
    with seeded_moto(seed):
        storm = Storm(2, 12, seed)
        storm.run()
        assert not check_invariants(storm), storm.report.failure_message()
        # WHEN one registered revision is read as if its clone had lost the stage's secret
        call = storm.calls.of("RegisterTaskDefinition")[0]
        web = next(c for c in call.params["containerDefinitions"] if c["name"] == "web")
        assert web.pop("secrets")
        storm.report.violations = []
        found = {v.invariant for v in check_invariants(storm)}
    # THEN the checker reports it
    assert "settings" in found, found


def test_the_checker_sees_a_deregistered_rollback_target_and_a_revision_not_the_deployers() -> None:
    # GIVEN a small storm (a fixed seed: this tests the checker) that kept every invariant
    seed = 1
    with seeded_moto(seed):
        storm = Storm(2, 12, seed)
        storm.run()
        assert not check_invariants(storm), storm.report.failure_message()
        # WHEN the deployer's own ECS client deregisters a stage's rollback target and a service's
        # first revision (which it never registered)
        ecs = storm.deps.stages.ecs
        svc = next(iter(storm.world.services.values()))
        target = rollback_target(storm.deps.store.stage_history(svc.pipeline, svc.stage, limit=100))
        assert target is not None
        ecs.deregister_task_definition(taskDefinition=target["task_definition_arn"])
        ecs.deregister_task_definition(taskDefinition=svc.initial_task_definition)
        storm.report.violations = []
        found = {v.invariant for v in check_invariants(storm)}
    # THEN the checker reports both
    assert {"cleanup-safe", "cleanup-ours"} <= found, found


def test_a_rollback_reported_after_its_failure_is_recorded_on_the_failed_deployment_only() -> None:
    # GIVEN one pipeline, three pushes, half the dev deployments failing and rolled back by ECS;
    # seed 3 delivers the first push's FAILED (which hands dev to the second push, deploying at
    # once), then ECS's rollback event of the first push's deployment
    report = run_storm(1, 3, 3, odds=Odds(deployment_fails=0.5))
    # THEN each stage record says whether ECS rolled its own deployment back
    assert not report.broken_invariants, report.failure_message()
    assert not report.wrong_records, report.failure_message()


def test_a_lock_handed_to_a_release_that_is_then_superseded_is_passed_on() -> None:
    # GIVEN one pipeline with an approval on prod, four pushes, every build, deployment and approval
    # succeeding; seed 51: A deploys prod, B (approved) queues behind A, C (newer) then waits for
    # prod's approval, A completes and hands the lock to B, which is superseded by C
    quiet = Odds(
        approve=1.0, reject=0.0, deployment_fails=0.0, build_fails=0.0, retried_builds=0.0, in_progress_events=0.0
    )
    report = run_storm(1, 4, 51, odds=quiet)
    # THEN C, approved, deploys prod: no release waits forever, no lock is left
    assert not report.broken_invariants, report.failure_message()
