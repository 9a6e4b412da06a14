"""Tests for deployer.rollout: ECS rolling-update arithmetic, the planner and `validate`.

The rounding rules are ECS's ("Deploy Amazon ECS services by replacing tasks",
https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-ecs.html): at least
ceil(desired * min / 100) RUNNING, at most floor(desired * max / 100) RUNNING or PENDING.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.rollout.model import MAX_TASKS_PER_SERVICE, MISSING, Finding, ServiceFacts
from deployer.rollout.plan import StuckRollout, is_stuck, plan
from deployer.rollout.validate import MANY_WAVES, Validation, validate

pytestmark = pytest.mark.unit

LAMBDA = "arn:aws:lambda:eu-west-1:123456789012:function:check"
ROLE = "arn:aws:iam::123456789012:role/ecs-hooks"


def rolling(minimum: int, maximum: int) -> dict[str, Any]:
    return {"minimumHealthyPercent": minimum, "maximumPercent": maximum}


def fields(findings: tuple[Finding, ...]) -> list[str]:
    return [f.field for f in findings]


def only(findings: tuple[Finding, ...], field: str) -> Finding:
    matching = [f for f in findings if f.field == field]
    assert len(matching) == 1, [f.message for f in findings]
    return matching[0]


# --- the planner: the design's four pictures (docs/rolling.md) are golden --------------------------------------------

GOLDEN = {
    # min 50 / max 100: [4 old] → stop 2 → [2 old] → start 2 → [2 old, 2 new] → stop 2 → [2 new] → start 2 → [4 new]
    (50, 100): [(4, 0, "", 0), (2, 0, "stop", 2), (2, 2, "start", 2), (0, 2, "stop", 2), (0, 4, "start", 2)],
    # min 100 / max 150: [4 old] → start 2 → [4 old, 2 new] → stop 2 → [2 old, 2 new] → start 2 → [2 old, 4 new]
    #                    → stop 2 → [4 new]
    (100, 150): [(4, 0, "", 0), (4, 2, "start", 2), (2, 2, "stop", 2), (2, 4, "start", 2), (0, 4, "stop", 2)],
    # min 100 / max 200: [4 old] → start 4 → [4 old, 4 new] → stop 4 → [4 new]
    (100, 200): [(4, 0, "", 0), (4, 4, "start", 4), (0, 4, "stop", 4)],
    # min 0 / max 100: [4 old] → stop 4 → [0] → start 4 → [4 new]   (an outage: a warning)
    (0, 100): [(4, 0, "", 0), (0, 0, "stop", 4), (0, 4, "start", 4)],
}


@pytest.mark.parametrize(("percentages", "expected"), GOLDEN.items(), ids=[f"{a}/{b}" for a, b in GOLDEN])
def test_plan_replays_the_design_pictures_for_four_tasks(
    percentages: tuple[int, int], expected: list[tuple[int, int, str, int]]
) -> None:
    # GIVEN four desired tasks and one of the design's configurations
    minimum, maximum = percentages
    # WHEN the rollout is planned
    result = plan(4, minimum, maximum)
    # THEN every step is exactly the picture's
    assert [(s.old, s.new, s.action, s.count) for s in result.steps] == expected


@pytest.mark.parametrize(
    ("percentages", "waves", "peak", "lowest", "outage"),
    [
        ((50, 100), 2, 4, 2, False),
        ((100, 150), 2, 6, 4, False),
        ((100, 200), 1, 8, 4, False),
        ((0, 100), 1, 4, 0, True),
    ],
)
def test_plan_summarizes_the_design_pictures(
    percentages: tuple[int, int], waves: int, peak: int, lowest: int, outage: bool
) -> None:
    # GIVEN / WHEN a design picture is planned
    result = plan(4, *percentages)
    # THEN waves count the start phases, and the peak, the lowest and the outage flag follow the steps
    assert (result.waves, result.peak_tasks, result.min_running_tasks, result.outage) == (waves, peak, lowest, outage)


def test_plan_without_cluster_room_stops_old_tasks_first() -> None:
    # GIVEN a 50/200 configuration whose cluster has no room for an extra task
    # WHEN it is planned
    result = plan(4, 50, 200, spare_capacity=0)
    # THEN old tasks stop first, within the minimum, and no state exceeds the desired count
    assert [(s.old, s.new) for s in result.steps] == [(4, 0), (2, 0), (2, 2), (0, 2), (0, 4)]
    assert result.maximum_tasks == 4


def test_plan_uses_the_cluster_room_when_it_is_smaller_than_the_maximum() -> None:
    # GIVEN 100/200 (8 tasks allowed for 4) but room for only two more tasks
    result = plan(4, 100, 200, spare_capacity=2)
    # THEN it rolls like 100/150: two at a time
    assert result.maximum_tasks == 6
    assert [(s.old, s.new) for s in result.steps] == [(4, 0), (4, 2), (2, 2), (2, 4), (0, 4)]


def test_plan_for_zero_tasks_is_a_single_empty_state() -> None:
    result = plan(0, 100, 200)
    assert [(s.old, s.new) for s in result.steps] == [(0, 0)]
    assert (result.waves, result.peak_tasks, result.outage) == (0, 0, False)


@pytest.mark.parametrize(
    ("desired", "minimum", "maximum", "low", "high"),
    [
        (3, 50, 150, 2, 4),  # ceil(1.5) = 2, floor(4.5) = 4
        (3, 34, 134, 2, 4),  # ceil(1.02) = 2, floor(4.02) = 4
        (7, 1, 101, 1, 7),  # ceil(0.07) = 1, floor(7.07) = 7
        (10, 75, 125, 8, 12),  # ceil(7.5) = 8, floor(12.5) = 12
    ],
)
def test_plan_rounds_the_minimum_up_and_the_maximum_down(
    desired: int, minimum: int, maximum: int, low: int, high: int
) -> None:
    result = plan(desired, minimum, maximum)
    assert (result.minimum_running, result.maximum_tasks) == (low, high)


# --- stuck configurations ----------------------------------------------------------------------------

STUCK = [
    # (desired, min, max, smallest working maximumPercent or None, largest working minimumHealthyPercent)
    (1, 100, 150, 200, 0),
    (1, 50, 150, 200, 0),
    (1, 100, 100, 200, 0),
    (4, 100, 100, 125, 75),
    (5, 100, 100, 120, 80),
    (100, 100, 100, 101, 99),
    (3, 75, 125, 134, 66),
    (2, 75, 100, 150, 50),
]


@pytest.mark.parametrize(("desired", "minimum", "maximum", "fix_max", "fix_min"), STUCK)
def test_stuck_examples_are_refused_with_the_reason_and_working_values(
    desired: int, minimum: int, maximum: int, fix_max: int, fix_min: int
) -> None:
    # GIVEN a configuration that can neither start nor stop one task for its desired count
    assert is_stuck(desired, minimum, maximum)
    # WHEN it is validated for that count
    result = validate(rolling(minimum, maximum), ServiceFacts(desired_count=desired))
    # THEN it is refused, saying why (both roundings) and what to use instead
    error = only(result.errors, "minimumHealthyPercent/maximumPercent")
    assert error.rule.startswith("ECS: ")
    assert f"ceil({desired} × {minimum} / 100)" in error.message
    assert f"floor({desired} × {maximum} / 100)" in error.message
    assert "neither start nor stop" in error.message
    assert f"maximumPercent {fix_max} or more" in error.fix
    assert f"minimumHealthyPercent {fix_min}" in error.fix
    assert result.deployment_configuration == {}
    # AND the suggested values are the tightest that work
    assert not is_stuck(desired, minimum, fix_max)
    assert is_stuck(desired, minimum, fix_max - 1)
    assert not is_stuck(desired, fix_min, maximum)
    assert fix_min == 100 or is_stuck(desired, fix_min + 1, maximum)


@pytest.mark.parametrize("desired", [1, 2, 3, 10, 999, MAX_TASKS_PER_SERVICE])
def test_100_100_is_stuck_for_every_count(desired: int) -> None:
    assert is_stuck(desired, 100, 100)
    with pytest.raises(StuckRollout, match="neither start nor stop"):
        plan(desired, 100, 100)


def test_no_room_in_the_cluster_is_refused_saying_so() -> None:
    # GIVEN 100/200, which would work on Fargate, but a cluster without room for one more task
    facts = ServiceFacts(desired_count=4, launch_type="EC2", spare_capacity=0)
    # WHEN validated
    error = only(validate(rolling(100, 200), facts).errors, "minimumHealthyPercent/maximumPercent")
    # THEN the error blames the cluster's room and suggests a minimum that lets a task stop first
    assert "no room" in error.rule
    assert "minimumHealthyPercent 75 or less" in error.fix
    assert "maximumPercent" not in error.fix  # a bigger maximum cannot help without room
    assert is_stuck(4, 100, 200, spare_capacity=0)
    assert not is_stuck(4, 75, 200, spare_capacity=0)


def test_autoscaling_range_names_the_first_stuck_count() -> None:
    # GIVEN 100/150, fine for the current 4 tasks, but autoscaling may go down to 1 (and 1 is stuck)
    facts = ServiceFacts(desired_count=4, desired_range=(1, 10))
    assert not is_stuck(4, 100, 150)
    # WHEN validated
    error = only(validate(rolling(100, 150), facts).errors, "minimumHealthyPercent/maximumPercent")
    # THEN the error names count 1 and the range, and the fix works for every count
    assert "with desired count 1," in error.rule
    assert "first stuck count 1" in error.rule
    assert "1..10" in error.rule
    assert "maximumPercent 200 or more" in error.fix
    assert not any(is_stuck(c, 100, 200) for c in range(1, 11))


def test_autoscaling_range_lists_every_stuck_count() -> None:
    # GIVEN 75/125: stuck at 2 (ceil(1.5) = 2 = floor(2.5)) and 3 (ceil(2.25) = 3 = floor(3.75)), not at 4 or 5
    assert [c for c in range(2, 6) if is_stuck(c, 75, 125)] == [2, 3]
    # WHEN the range 2..5 is checked for a service at 5 tasks (which alone would be fine)
    result = validate(rolling(75, 125), ServiceFacts(desired_count=5, desired_range=(2, 5)))
    assert validate(rolling(75, 125), ServiceFacts(desired_count=5)).valid
    # THEN count 2 is named first, 3 is listed, and the fix covers both
    error = only(result.errors, "minimumHealthyPercent/maximumPercent")
    assert "with desired count 2," in error.rule
    assert "stuck counts: 2, 3)" in error.rule
    assert "maximumPercent 150 or more" in error.fix
    assert "minimumHealthyPercent 50 or less" in error.fix
    assert not any(is_stuck(c, 75, 150) or is_stuck(c, 50, 125) for c in range(2, 6))


def test_autoscaling_range_that_always_moves_is_valid() -> None:
    result = validate(rolling(50, 200), ServiceFacts(desired_count=4, desired_range=(1, 20)))
    assert result.valid
    assert result.deployment_configuration == rolling(50, 200)


@pytest.mark.parametrize(
    ("desired_range", "fragment"),
    [((5, 2), "cannot exceed"), ((1, MAX_TASKS_PER_SERVICE + 1), "5,000"), ((-1, 3), "pair of whole numbers")],
)
def test_unusable_autoscaling_ranges_are_errors(desired_range: tuple[int, int], fragment: str) -> None:
    result = validate(rolling(50, 200), ServiceFacts(desired_count=2, desired_range=desired_range))
    assert fragment in only(result.errors, "desiredRange").message


def test_desired_count_outside_the_range_is_a_warning() -> None:
    result = validate(rolling(50, 200), ServiceFacts(desired_count=30, desired_range=(2, 10)))
    assert result.valid
    assert "outside the autoscaling range" in only(result.warnings, "desiredCount").rule


# --- counts: zero, quota, speed ------------------------------------------------------------------------


def test_desired_zero_is_valid_with_a_note() -> None:
    result = validate(rolling(100, 200), ServiceFacts(desired_count=0))
    assert result.valid
    assert "nothing to roll" in only(result.notes, "desiredCount").rule


@pytest.mark.parametrize("desired", [MAX_TASKS_PER_SERVICE + 1, 10**9, 10**30])
def test_desired_above_the_tasks_per_service_quota_is_a_quick_error(desired: int) -> None:
    # GIVEN an absurd desired count and a configuration that would take one wave per task
    start = time.perf_counter()
    result = validate(rolling(100, 101), ServiceFacts(desired_count=desired, spare_capacity=1))
    # THEN validate refuses it at once, citing ECS's quota
    assert time.perf_counter() - start < 1.0
    error = only(result.errors, "desiredCount")
    assert "5,000" in error.rule
    assert error.rule.startswith("ECS: ")
    with pytest.raises(ValueError, match="tasks-per-service quota"):
        plan(desired, 100, 101, spare_capacity=1)


def test_desired_at_the_quota_is_planned() -> None:
    assert validate(rolling(50, 200), ServiceFacts(desired_count=MAX_TASKS_PER_SERVICE)).valid


def test_large_plans_finish_quickly() -> None:
    # GIVEN the worst shapes within the quota: 50 at a time, and one at a time
    start = time.perf_counter()
    slow = plan(5000, 100, 101)
    slowest = plan(5000, 100, 200, spare_capacity=1)
    checked = validate(rolling(100, 101), ServiceFacts(desired_count=5000, desired_range=(100, 5000)))
    refused = validate(rolling(100, 101), ServiceFacts(desired_count=5000, desired_range=(0, 5000)))
    # THEN all of it completes well within a second or two
    assert time.perf_counter() - start < 5.0
    assert slow.waves == 100
    assert slowest.waves == 5000
    assert len(slowest.steps) == 2 * 5000 + 1
    assert checked.valid
    # below 100 tasks, floor(c × 101 / 100) = c: the range is refused, naming count 1
    assert "with desired count 1," in only(refused.errors, "minimumHealthyPercent/maximumPercent").rule


# --- warnings ----------------------------------------------------------------------------------------


def test_minimum_zero_warns_of_an_outage() -> None:
    result = validate(rolling(0, 100), ServiceFacts(desired_count=4))
    warning = only(result.warnings, "minimumHealthyPercent")
    assert result.valid
    assert "outage" in warning.rule
    assert warning.rule.startswith("deployer policy: ")


@pytest.mark.parametrize(("launch_type", "warned"), [("EC2", True), ("EXTERNAL", True), ("FARGATE", False)])
def test_maximum_200_on_ec2_capacity_warns_about_room(launch_type: Any, warned: bool) -> None:
    result = validate(rolling(100, 200), ServiceFacts(desired_count=6, launch_type=launch_type))
    room = [f for f in result.warnings if f.field == "maximumPercent" and "room" in f.rule]
    assert result.valid
    assert bool(room) is warned
    if warned:
        assert "6 extra tasks" in room[0].rule


def test_maximum_200_on_ec2_with_enough_known_room_does_not_warn() -> None:
    result = validate(rolling(100, 200), ServiceFacts(desired_count=6, launch_type="EC2", spare_capacity=6))
    assert not [f for f in result.warnings if "room" in f.rule]


@pytest.mark.parametrize(("desired", "warned"), [(1, True), (2, True), (3, False), (10, False)])
def test_minimum_100_warns_for_small_services(desired: int, warned: bool) -> None:
    result = validate(rolling(100, 200), ServiceFacts(desired_count=desired))
    assert bool([f for f in result.warnings if f.field == "minimumHealthyPercent"]) is warned


def test_many_waves_warn_above_the_threshold_only() -> None:
    # GIVEN one extra task per wave: 10 tasks take 10 waves, 11 tasks take 11
    assert plan(10, 100, 110).waves == MANY_WAVES
    assert plan(11, 100, 110).waves == MANY_WAVES + 1
    # THEN only the rollout above the threshold is warned about, with a faster alternative
    assert not validate(rolling(100, 110), ServiceFacts(desired_count=10)).warnings
    warning = only(validate(rolling(100, 110), ServiceFacts(desired_count=11)).warnings, "maximumPercent")
    assert "11 waves" in warning.rule
    assert "maximumPercent 200 would take 1 wave" in warning.rule


def test_maximum_above_200_is_a_warning_not_an_error() -> None:
    result = validate(rolling(100, 300), ServiceFacts(desired_count=4))
    warning = only(result.warnings, "maximumPercent")
    assert result.valid
    assert warning.rule.startswith("deployer policy: ")
    assert "no upper bound" in warning.rule
    assert result.deployment_configuration["maximumPercent"] == 300


# --- field types and ranges -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fix"),
    [
        (True, "whole number"),
        (50.0, "use 50"),
        (50.5, "50 or 51"),
        ("50", "use 50 (a number, not a string)"),
        (None, "whole number"),
        ([50], "whole number"),
    ],
)
def test_percentages_must_be_integers(value: object, fix: str) -> None:
    # GIVEN a minimum that is not an int (bools are not integers either)
    result = validate({"minimumHealthyPercent": value, "maximumPercent": 200})
    # THEN it is an error naming the field and the replacement
    error = only(result.errors, "minimumHealthyPercent")
    assert error.value == value
    assert fix in error.fix
    assert "is an integer" in error.rule


@pytest.mark.parametrize(
    ("requested", "field", "fragment"),
    [
        (rolling(-1, 200), "minimumHealthyPercent", "0 to 100"),
        (rolling(101, 200), "minimumHealthyPercent", "0 to 100"),
        (rolling(50, 99), "maximumPercent", "100 or more"),
        (rolling(50, 0), "maximumPercent", "100 or more"),
    ],
)
def test_percentages_out_of_range_are_errors(requested: dict[str, Any], field: str, fragment: str) -> None:
    error = only(validate(requested).errors, field)
    assert fragment in error.rule
    assert error.rule.startswith("deployer policy: ")


def test_daemon_maximum_above_100_is_refused_with_ecs_words() -> None:
    facts = ServiceFacts(desired_count=3, scheduling_strategy="DAEMON", launch_type="EC2")
    error = only(validate(rolling(0, 150), facts).errors, "maximumPercent")
    assert error.rule == ("ECS: The daemon scheduling strategy does not support values above 100 for maximumPercent")
    assert "100" in error.fix


@pytest.mark.parametrize(
    ("scheduling", "expected"),
    [
        ("REPLICA", {"minimumHealthyPercent": 100, "maximumPercent": 200}),
        ("DAEMON", {"minimumHealthyPercent": 0, "maximumPercent": 100}),
    ],
)
def test_defaults_are_filled_per_scheduling_strategy(scheduling: Any, expected: dict[str, int]) -> None:
    facts = ServiceFacts(desired_count=3, scheduling_strategy=scheduling, launch_type="EC2")
    result = validate({}, facts)
    assert result.valid
    assert result.deployment_configuration == expected
    assert {f.field for f in result.notes} >= {"minimumHealthyPercent", "maximumPercent"}


def test_static_validation_without_a_service_uses_replica_defaults() -> None:
    result = validate({"deploymentCircuitBreaker": {"enable": True, "rollback": True}})
    assert result.valid
    assert result.deployment_configuration == {
        "minimumHealthyPercent": 100,
        "maximumPercent": 200,
        "deploymentCircuitBreaker": {"enable": True, "rollback": True},
    }


def test_daemon_on_fargate_is_refused() -> None:
    result = validate({}, ServiceFacts(desired_count=3, scheduling_strategy="DAEMON", launch_type="FARGATE"))
    assert "DAEMON" in only(result.errors, "schedulingStrategy").rule


def test_a_configuration_that_is_not_a_mapping_is_an_error() -> None:
    result = validate([50, 200])  # type: ignore[arg-type]
    assert fields(result.errors) == ["deploymentConfiguration"]


@pytest.mark.parametrize(
    ("requested", "field", "hint"),
    [
        ({"maximumPercnt": 150}, "maximumPercnt", "did you mean 'maximumPercent'?"),
        ({"desiredCount": 3}, "desiredCount", "remove 'desiredCount'"),
        (
            {"deploymentCircuitBreaker": {"enable": True, "rollback": True, "rolback": 1}},
            "deploymentCircuitBreaker.rolback",
            "did you mean 'rollback'?",
        ),
        ({"alarms": {"alarmNames": [], "enable": False, "rollback": False, "names": []}}, "alarms.names", "remove"),
        (
            {"strategy": "LINEAR", "linearConfiguration": {"stepPercentage": 10}},
            "linearConfiguration.stepPercentage",
            "did you mean 'stepPercent'?",
        ),
    ],
)
def test_unknown_keys_are_errors_naming_the_key(requested: dict[str, Any], field: str, hint: str) -> None:
    error = only(validate(requested).errors, field)
    assert hint in error.fix


# --- circuit breaker and alarms -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("breaker", "bad_fields"),
    [
        ({"enable": True}, ["deploymentCircuitBreaker.rollback"]),
        ({"rollback": True}, ["deploymentCircuitBreaker.enable"]),
        ({}, ["deploymentCircuitBreaker.enable", "deploymentCircuitBreaker.rollback"]),
        ({"enable": "true", "rollback": False}, ["deploymentCircuitBreaker.enable"]),
        ({"enable": 1, "rollback": 0}, ["deploymentCircuitBreaker.enable", "deploymentCircuitBreaker.rollback"]),
        ("on", ["deploymentCircuitBreaker"]),
    ],
)
def test_circuit_breaker_needs_both_booleans(breaker: object, bad_fields: list[str]) -> None:
    result = validate({"deploymentCircuitBreaker": breaker})
    assert sorted(fields(result.errors)) == bad_fields


def test_circuit_breaker_missing_value_is_reported_as_missing() -> None:
    error = only(validate({"deploymentCircuitBreaker": {"enable": True}}).errors, "deploymentCircuitBreaker.rollback")
    assert error.value is MISSING
    assert "(missing)" in error.message


def test_circuit_breaker_rollback_without_enable_warns() -> None:
    result = validate({"deploymentCircuitBreaker": {"enable": False, "rollback": True}})
    assert result.valid
    assert fields(result.warnings) == ["deploymentCircuitBreaker.rollback"]


@pytest.mark.parametrize("controller", ["CODE_DEPLOY", "EXTERNAL"])
def test_circuit_breaker_only_for_the_ecs_deployment_controller(controller: Any) -> None:
    facts = ServiceFacts(desired_count=2, deployment_controller=controller)
    result = validate({"deploymentCircuitBreaker": {"enable": True, "rollback": True}}, facts)
    assert "rolling update (ECS)" in only(result.errors, "deploymentCircuitBreaker").rule


def test_circuit_breaker_threshold_configuration_is_checked() -> None:
    breaker = {"enable": True, "rollback": True, "thresholdConfiguration": {"type": "count", "value": 0}}
    result = validate({"deploymentCircuitBreaker": breaker})
    assert sorted(fields(result.errors)) == [
        "deploymentCircuitBreaker.thresholdConfiguration.type",
        "deploymentCircuitBreaker.thresholdConfiguration.value",
    ]
    assert "use COUNT" in only(result.errors, "deploymentCircuitBreaker.thresholdConfiguration.type").fix


@pytest.mark.parametrize(
    ("alarms", "bad_fields"),
    [
        ({"enable": True, "rollback": True}, ["alarms.alarmNames"]),
        ({"alarmNames": [], "enable": True, "rollback": True}, ["alarms.alarmNames"]),
        ({"alarmNames": ["cpu"], "rollback": True}, ["alarms.enable"]),
        ({"alarmNames": ["cpu"], "enable": True}, ["alarms.rollback"]),
        ({"alarmNames": "cpu", "enable": True, "rollback": True}, ["alarms.alarmNames"]),
        ({"alarmNames": [""], "enable": True, "rollback": True}, ["alarms.alarmNames"]),
        ({"alarmNames": [], "enable": False, "rollback": False}, []),
        ({"alarmNames": ["cpu", "5xx"], "enable": True, "rollback": True}, []),
    ],
)
def test_alarms_need_names_enable_and_rollback(alarms: dict[str, Any], bad_fields: list[str]) -> None:
    result = validate({"alarms": alarms})
    assert fields(result.errors) == bad_fields
    if not bad_fields:
        assert result.deployment_configuration["alarms"] == alarms


# --- strategies ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "fix"), [("rolling", "use ROLLING"), ("BLUEGREEN", "one of"), (1, "one of")])
def test_strategy_is_one_of_the_api_enum(value: object, fix: str) -> None:
    assert fix in only(validate({"strategy": value}).errors, "strategy").fix


def test_blue_green_requires_a_bake_time() -> None:
    result = validate({"strategy": "BLUE_GREEN"})
    assert "required with the BLUE_GREEN strategy" in only(result.errors, "bakeTimeInMinutes").rule
    assert validate({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5}).valid


@pytest.mark.parametrize(("minutes", "valid"), [(0, True), (1440, True), (1441, False), (-1, False), (5.0, False)])
def test_bake_time_is_0_to_1440_minutes(minutes: object, valid: bool) -> None:
    assert validate({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": minutes}).valid is valid


@pytest.mark.parametrize("strategy", ["BLUE_GREEN", "LINEAR", "CANARY"])
@pytest.mark.parametrize(
    ("load_balancer", "alternate", "valid"), [(False, False, False), (True, False, False), (True, True, True)]
)
def test_traffic_shifting_strategies_need_an_alternate_target_group(
    strategy: str, load_balancer: bool, alternate: bool, valid: bool
) -> None:
    facts = ServiceFacts(desired_count=4, has_load_balancer=load_balancer, has_alternate_target_group=alternate)
    result = validate({"strategy": strategy, "bakeTimeInMinutes": 5}, facts)
    assert result.valid is valid
    if not valid:
        assert "alternate target group" in only(result.errors, "strategy").message


def test_traffic_shifting_strategies_are_not_checked_without_facts() -> None:
    assert validate({"strategy": "CANARY"}).valid


def test_traffic_shifting_skips_the_rolling_plan_with_a_note() -> None:
    facts = ServiceFacts(desired_count=1, has_load_balancer=True, has_alternate_target_group=True)
    result = validate({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5, **rolling(100, 100)}, facts)
    assert result.valid
    assert "ROLLING only" in only(result.notes, "strategy").rule


@pytest.mark.parametrize(
    ("requested", "field", "fragment"),
    [
        ({"linearConfiguration": {"stepPercent": 10.0}}, "linearConfiguration", "only valid with the LINEAR"),
        (
            {"strategy": "CANARY", "linearConfiguration": {"stepPercent": 10.0}},
            "linearConfiguration",
            "only valid with the LINEAR",
        ),
        ({"canaryConfiguration": {"canaryPercent": 5.0}}, "canaryConfiguration", "only valid with the CANARY"),
        (
            {"strategy": "LINEAR", "canaryConfiguration": {"canaryPercent": 5.0}},
            "canaryConfiguration",
            "only valid with the CANARY",
        ),
        (
            {"strategy": "LINEAR", "earlySuccessCriteria": {"enable": False}},
            "earlySuccessCriteria",
            "apply to rolling deployments",
        ),
    ],
)
def test_strategy_specific_fields_belong_to_their_strategy(
    requested: dict[str, Any], field: str, fragment: str
) -> None:
    assert fragment in only(validate(requested).errors, field).rule


@pytest.mark.parametrize(
    ("step", "valid"),
    [
        (3.0, True),
        (3, True),
        (3.3, True),
        (0.1 * 33, False),
        (10, True),
        (100.0, True),
        (2.9, False),
        (100.1, False),
        (3.35, False),
        ("10", False),
        (True, False),
        (float("nan"), False),
    ],
)
def test_linear_step_percent_is_a_multiple_of_a_tenth_from_3_to_100(step: object, valid: bool) -> None:
    result = validate({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": step}})
    assert result.valid is valid
    if valid:
        assert result.deployment_configuration["linearConfiguration"]["stepPercent"] == float(step)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("percent", "valid"),
    [
        (0.1, True),
        (0.3, True),
        (5, True),
        (100.0, True),
        (0.0, False),
        (0.05, False),
        (100.1, False),
        (0.1 + 0.2, False),
    ],
)
def test_canary_percent_is_a_multiple_of_a_tenth_from_0_1_to_100(percent: float, valid: bool) -> None:
    result = validate({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": percent}})
    assert result.valid is valid


def test_a_float_artefact_is_refused_with_the_intended_tenth() -> None:
    # 0.1 + 0.2 is 0.30000000000000004: not a multiple of 0.1, and the fix says 0.3
    error = only(
        validate({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 0.1 + 0.2}}).errors,
        "canaryConfiguration.canaryPercent",
    )
    assert error.fix == "use 0.3"


@given(tenths=st.integers(min_value=30, max_value=1000))
def test_every_tenth_in_range_is_accepted_as_a_float(tenths: int) -> None:
    result = validate({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": tenths / 10}})
    assert result.valid
    assert result.deployment_configuration["linearConfiguration"]["stepPercent"] == tenths / 10


@given(hundredths=st.integers(min_value=300, max_value=10000).filter(lambda h: h % 10))
def test_hundredths_that_are_not_tenths_are_refused(hundredths: int) -> None:
    result = validate({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": hundredths / 100}})
    assert fields(result.errors) == ["linearConfiguration.stepPercent"]


@pytest.mark.parametrize(
    ("strategy", "key", "expected"),
    [
        ("LINEAR", "linearConfiguration", {"stepPercent": 10.0, "stepBakeTimeInMinutes": 6}),
        ("CANARY", "canaryConfiguration", {"canaryPercent": 5.0, "canaryBakeTimeInMinutes": 10}),
    ],
)
def test_linear_and_canary_defaults_are_filled(strategy: str, key: str, expected: dict[str, Any]) -> None:
    assert validate({"strategy": strategy}).deployment_configuration[key] == expected
    assert validate({"strategy": strategy, key: {}}).deployment_configuration[key] == expected


@pytest.mark.parametrize(
    ("key", "inner"),
    [("linearConfiguration", "stepBakeTimeInMinutes"), ("canaryConfiguration", "canaryBakeTimeInMinutes")],
)
@pytest.mark.parametrize(("minutes", "valid"), [(0, True), (1440, True), (1441, False), (6.5, False)])
def test_step_and_canary_bake_times_are_0_to_1440(key: str, inner: str, minutes: object, valid: bool) -> None:
    strategy = "LINEAR" if key.startswith("linear") else "CANARY"
    assert validate({"strategy": strategy, key: {inner: minutes}}).valid is valid


# --- lifecycle hooks ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hook", "bad_fields"),
    [
        (
            {
                "targetType": "AWS_LAMBDA",
                "hookTargetArn": LAMBDA,
                "roleArn": ROLE,
                "lifecycleStages": ["POST_SCALE_UP"],
            },
            [],
        ),
        ({"hookTargetArn": LAMBDA, "roleArn": ROLE, "lifecycleStages": ["PRE_SCALE_UP"]}, []),
        ({"targetType": "AWS_LAMBDA", "roleArn": ROLE, "lifecycleStages": ["POST_SCALE_UP"]}, ["hookTargetArn"]),
        ({"hookTargetArn": LAMBDA, "lifecycleStages": ["POST_SCALE_UP"]}, ["roleArn"]),
        ({"hookTargetArn": "check", "roleArn": ROLE, "lifecycleStages": ["POST_SCALE_UP"]}, ["hookTargetArn"]),
        ({"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}, []),
        ({"targetType": "PAUSE", "roleArn": ROLE, "lifecycleStages": ["POST_SCALE_UP"]}, ["roleArn"]),
        ({"targetType": "PAUSE", "hookTargetArn": LAMBDA, "lifecycleStages": ["POST_SCALE_UP"]}, ["hookTargetArn"]),
        ({"targetType": "PAUSE", "lifecycleStages": ["PRODUCTION_TRAFFIC_SHIFT"]}, ["lifecycleStages[0]"]),
        ({"targetType": "PAUSE", "lifecycleStages": ["TEST_TRAFFIC_SHIFT"]}, ["lifecycleStages[0]"]),
        ({"targetType": "PAUSE", "lifecycleStages": []}, ["lifecycleStages"]),
        ({"targetType": "PAUSE"}, ["lifecycleStages"]),
        ({"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP", "LATER"]}, ["lifecycleStages[1]"]),
        ({"targetType": "SNS", "lifecycleStages": ["POST_SCALE_UP"]}, ["targetType"]),
        (
            {
                "targetType": "PAUSE",
                "lifecycleStages": ["POST_SCALE_UP"],
                "timeoutConfiguration": {"timeoutInMinutes": 0},
            },
            ["timeoutConfiguration.timeoutInMinutes"],
        ),
        (
            {"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"], "timeoutConfiguration": {"action": "STOP"}},
            ["timeoutConfiguration.action"],
        ),
        (
            {
                "targetType": "PAUSE",
                "lifecycleStages": ["POST_SCALE_UP"],
                "timeoutConfiguration": {"timeoutInMinutes": 20160, "action": "CONTINUE"},
            },
            [],
        ),
    ],
)
def test_lifecycle_hooks(hook: dict[str, Any], bad_fields: list[str]) -> None:
    result = validate({"lifecycleHooks": [hook]})
    assert fields(result.errors) == [f"lifecycleHooks[0].{f}" for f in bad_fields]


def test_lifecycle_hooks_must_be_a_list_of_mappings() -> None:
    assert fields(validate({"lifecycleHooks": {"targetType": "PAUSE"}}).errors) == ["lifecycleHooks"]
    assert fields(validate({"lifecycleHooks": ["PAUSE"]}).errors) == ["lifecycleHooks[0]"]


def test_pause_hook_details_are_ignored_with_a_warning() -> None:
    hook = {"targetType": "PAUSE", "lifecycleStages": ["POST_SCALE_UP"], "hookDetails": {"a": 1}}
    result = validate({"lifecycleHooks": [hook]})
    assert result.valid
    assert fields(result.warnings) == ["lifecycleHooks[0].hookDetails"]


# --- early success criteria and other controllers -----------------------------------------------------------


@pytest.mark.parametrize(
    ("criteria", "bad_fields"),
    [
        ({"enable": True, "healthyPercent": 100, "sourceServiceRevisionCleanup": "DEFERRED"}, []),
        (
            {"enable": True},
            ["earlySuccessCriteria.healthyPercent", "earlySuccessCriteria.sourceServiceRevisionCleanup"],
        ),
        (
            {"enable": True, "healthyPercent": 40, "sourceServiceRevisionCleanup": "BLOCKING"},
            ["earlySuccessCriteria.healthyPercent"],
        ),
        (
            {"enable": True, "healthyPercent": 60, "sourceServiceRevisionCleanup": "LATER"},
            ["earlySuccessCriteria.sourceServiceRevisionCleanup"],
        ),
        ({"healthyPercent": 60}, ["earlySuccessCriteria.enable"]),
    ],
)
def test_early_success_criteria(criteria: dict[str, Any], bad_fields: list[str]) -> None:
    # minimumHealthyPercent 50: healthyPercent must be at least that
    result = validate({**rolling(50, 200), "earlySuccessCriteria": criteria})
    assert fields(result.errors) == bad_fields


@pytest.mark.parametrize(("launch_type", "severity"), [("EC2", "error"), ("FARGATE", "warning")])
def test_code_deploy_services_do_not_take_custom_percentages(launch_type: Any, severity: str) -> None:
    facts = ServiceFacts(desired_count=2, deployment_controller="CODE_DEPLOY", launch_type=launch_type)
    result = validate(rolling(50, 200), facts)
    assert {f.severity for f in result.findings if f.field == "minimumHealthyPercent"} == {severity}
    assert {f.severity for f in result.findings if f.field == "maximumPercent"} == {severity}


def test_code_deploy_services_get_no_rolling_defaults_and_no_stuck_check() -> None:
    facts = ServiceFacts(desired_count=1, deployment_controller="CODE_DEPLOY")
    result = validate({}, facts)
    assert result.valid
    assert result.deployment_configuration == {}


# --- findings ----------------------------------------------------------------------------------------------------


def test_finding_message_is_one_line_with_field_value_rule_and_fix() -> None:
    finding = Finding("error", "maximumPercent", 150, "ECS: some rule.", "use 200")
    assert finding.message == "maximumPercent: 150 — ECS: some rule. Fix: use 200"
    assert finding.to_dict() == {
        "severity": "error",
        "field": "maximumPercent",
        "value": 150,
        "rule": "ECS: some rule.",
        "fix": "use 200",
        "message": finding.message,
    }


def test_every_finding_says_whose_rule_it_is() -> None:
    # GIVEN a configuration that trips many rules at once
    requested = {
        "minimumHealthyPercent": 0,
        "maximumPercent": 300,
        "strategy": "BLUE_GREEN",
        "deploymentCircuitBreaker": {"enable": True},
        "alarms": {"alarmNames": [], "enable": True, "rollback": True},
        "lifecycleHooks": [{"targetType": "PAUSE", "roleArn": ROLE}],
        "typo": 1,
    }
    result = validate(requested, ServiceFacts(desired_count=2, launch_type="EC2"))
    # THEN every one of them names ECS or this tool's policy, and the errors are one line each
    assert len(result.errors) >= 6
    for finding in result.findings:
        assert finding.rule.startswith(("ECS: ", "deployer policy: ")), finding.rule
        assert "\n" not in finding.message


def test_validation_is_valid_only_without_errors() -> None:
    ok = Validation(errors=(), warnings=(Finding("warning", "f", 1, "r", "x"),), notes=(), deployment_configuration={})
    bad = Validation(errors=(Finding("error", "f", 1, "r", "x"),), warnings=(), notes=(), deployment_configuration={})
    assert ok.valid
    assert not bad.valid


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ((-1, 50, 200), "desired"),
        ((4, 101, 200), "minimum_healthy_percent"),
        ((4, 50, 99), "maximum_percent"),
        ((4, True, 200), "integer"),
        ((4, 50.0, 200), "integer"),
    ],
)
def test_plan_and_is_stuck_refuse_numbers_out_of_their_domain(args: tuple[Any, ...], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        plan(*args)
    with pytest.raises(ValueError, match=fragment):
        is_stuck(*args)


def test_plan_refuses_negative_spare_capacity() -> None:
    with pytest.raises(ValueError, match="spare_capacity"):
        plan(4, 50, 200, spare_capacity=-1)


# --- properties ----------------------------------------------------------------------------------------------

desired_counts = st.integers(min_value=0, max_value=100)
minimums = st.integers(min_value=0, max_value=100)
maximums = st.integers(min_value=100, max_value=200)
spares = st.none() | st.integers(min_value=0, max_value=10)


def oracle_stuck(desired: int, minimum: int, maximum: int, spare: int | None) -> bool:
    """Independent statement of the rule, with exact fractions: from [desired old], ECS can
    neither stop one task (the minimum) nor start one (the maximum, or the cluster's room)."""
    low = math.ceil(Fraction(desired * minimum, 100))
    high = math.floor(Fraction(desired * maximum, 100))
    if spare is not None:
        high = min(high, desired + spare)
    return desired > 0 and desired - 1 < low and desired + 1 > high


@settings(max_examples=400, deadline=None)
@given(desired=desired_counts, minimum=minimums, maximum=maximums, spare=spares)
def test_plan_moves_within_the_limits_and_ends_all_new(
    desired: int, minimum: int, maximum: int, spare: int | None
) -> None:
    if is_stuck(desired, minimum, maximum, spare):
        with pytest.raises(StuckRollout):
            plan(desired, minimum, maximum, spare)
        return
    result = plan(desired, minimum, maximum, spare)
    low = math.ceil(Fraction(desired * minimum, 100))
    high = math.floor(Fraction(desired * maximum, 100))
    if spare is not None:
        high = min(high, desired + spare)
    # ECS's rounding
    assert (result.minimum_running, result.maximum_tasks) == (low, high)
    # starts at all old, ends at all new
    assert (result.steps[0].old, result.steps[0].new, result.steps[0].action) == (desired, 0, "")
    assert (result.steps[-1].old, result.steps[-1].new) == (0, desired)
    for before, after in zip(result.steps, result.steps[1:], strict=False):
        total = after.old + after.new
        # never above the maximum (nor the cluster's room), never below the minimum
        assert total <= high
        assert total >= low
        assert 0 <= after.new <= desired
        assert 0 <= after.old <= desired
        # each phase either starts new tasks or stops old ones, and says how many
        if after.action == "start":
            assert (after.old, after.new - before.new) == (before.old, after.count)
        else:
            assert after.action == "stop"
            assert (after.new, before.old - after.old) == (before.new, after.count)
        assert after.count > 0
        assert after.action != before.action
    totals = [s.old + s.new for s in result.steps]
    assert result.waves == sum(s.action == "start" for s in result.steps)
    assert result.peak_tasks == max(totals)
    assert result.min_running_tasks == min(totals)
    assert result.outage == (desired > 0 and min(totals) == 0)
    if result.outage:
        assert minimum == 0  # only a minimum of 0 lets every task stop


@settings(max_examples=400, deadline=None)
@given(desired=desired_counts, minimum=minimums, maximum=maximums, spare=spares)
def test_stuck_matches_the_exact_rule_and_validate(desired: int, minimum: int, maximum: int, spare: int | None) -> None:
    stuck = is_stuck(desired, minimum, maximum, spare)
    assert stuck == oracle_stuck(desired, minimum, maximum, spare)
    result = validate(rolling(minimum, maximum), ServiceFacts(desired_count=desired, spare_capacity=spare))
    assert (not result.valid) == stuck
    if not stuck:
        assert result.deployment_configuration == rolling(minimum, maximum)


@settings(max_examples=100, deadline=None)
@given(
    low=st.integers(min_value=0, max_value=30),
    size=st.integers(min_value=0, max_value=30),
    minimum=minimums,
    maximum=maximums,
)
def test_range_is_refused_iff_some_count_in_it_is_stuck(low: int, size: int, minimum: int, maximum: int) -> None:
    high = low + size
    result = validate(rolling(minimum, maximum), ServiceFacts(desired_count=low, desired_range=(low, high)))
    stuck = [c for c in range(low, high + 1) if is_stuck(c, minimum, maximum)]
    assert result.valid == (not stuck)
    if stuck:
        error = only(result.errors, "minimumHealthyPercent/maximumPercent")
        assert f"with desired count {stuck[0]}," in error.rule
        # the suggested minimum works for the whole range
        suggested = int(error.fix.split("minimumHealthyPercent ")[1].split(" ")[0].rstrip(")"))
        assert not any(is_stuck(c, suggested, maximum) for c in range(low, high + 1))


# --- weight --------------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_rolling_imports_nothing_heavy() -> None:
    # `deployer plan` must start fast: no boto3, no pydantic behind deployer.rollout
    code = (
        "import sys, deployer.rollout; "
        "heavy = sorted(m for m in ('boto3', 'botocore', 'pydantic') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert done.stdout.strip() == ""


# --- the records (frozen-dataclass semantics without the dataclasses module) ---------------------


def test_records_compare_hash_and_print_like_frozen_dataclasses() -> None:
    from deployer.rollout.plan import Step

    step = Step(1, 2, "start", 1)
    assert step == Step(old=1, new=2, action="start", count=1)
    assert step != Step(1, 2, "start", 2)
    assert step != (1, 2, "start", 1)  # not a tuple
    assert hash(step) == hash(Step(1, 2, "start", 1))
    assert len({step, Step(1, 2, "start", 1)}) == 1
    assert repr(step) == "Step(old=1, new=2, action='start', count=1)"
    with pytest.raises(AttributeError, match="cannot assign to field 'old'"):
        step.old = 5  # type: ignore[misc]
    with pytest.raises(AttributeError, match="cannot delete field 'old'"):
        del step.old  # type: ignore[misc]


def test_records_replace_and_convert_to_dicts_like_dataclasses_helpers() -> None:
    facts = ServiceFacts(desired_count=4)
    scaled = facts.replace(desired_range=(2, 8))
    assert scaled == ServiceFacts(desired_count=4, desired_range=(2, 8))
    assert facts.desired_range is None  # unchanged
    with pytest.raises(TypeError):
        facts.replace(desired=4)
    rollout = plan(2, 50, 100)
    document = rollout.to_dict()
    assert document["desired"] == 2
    assert document["steps"][0] == {"old": 2, "new": 0, "action": "", "count": 0}
    assert json.loads(json.dumps(document))["waves"] == rollout.waves
