"""Tests for the traffic-shifting strategies: `deployer.rollout.traffic.traffic_plan`, its drawing, and
`deployer plan --strategy BLUE_GREEN | LINEAR | CANARY`.

ECS semantics (cited in deployer/rollout/traffic.py): BLUE_GREEN moves all production traffic at once
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-blue-green.html);
LINEAR shifts in equal steps of stepPercent with stepBakeTimeInMinutes between steps, "not applied
after reaching 100 percent traffic"
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/deployment-type-linear.html); CANARY
shifts canaryPercent, waits canaryBakeTimeInMinutes, then the rest
(https://docs.aws.amazon.com/AmazonECS/latest/developerguide/canary-deployment.html). Then
bakeTimeInMinutes with both revisions running. Hooks at PRE_PRODUCTION_TRAFFIC_SHIFT run before
every shift; a PAUSE hook times out after 1440 minutes with ROLLBACK unless told otherwise.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deployer.render import ASCII, UNICODE, _traffic_bar, draw_traffic_plan, duration_text, traffic_summary
from deployer.rollout.model import HOOK_STAGES, PAUSE_FORBIDDEN_STAGES, ServiceFacts
from deployer.rollout.traffic import TrafficPlan, traffic_plan, traffic_warnings
from deployer.rollout.validate import validate
from deployer_cli import main

pytestmark = pytest.mark.unit

LAMBDA = "arn:aws:lambda:eu-west-1:123456789012:function:smoke-test"
ROLE = "arn:aws:iam::123456789012:role/ecs-hooks"
WITH_TRAFFIC = ServiceFacts(desired_count=4, has_load_balancer=True, has_alternate_target_group=True)


def shifts(rollout: TrafficPlan) -> list[tuple[float, int]]:
    """(production traffic on green, minutes ECS waits after) for each production traffic shift."""
    return [(s.traffic_percent, s.bake_minutes) for s in rollout.steps if s.kind == "shift"]


def kinds(rollout: TrafficPlan) -> list[str]:
    return [s.kind for s in rollout.steps]


def pause(*stages: str, **timeout: Any) -> dict[str, Any]:
    hook: dict[str, Any] = {"targetType": "PAUSE", "lifecycleStages": list(stages)}
    if timeout:
        hook["timeoutConfiguration"] = timeout
    return hook


# --- exact steps ----------------------------------------------------------------------------------


def test_linear_defaults_shift_ten_percent_ten_times() -> None:
    # GIVEN LINEAR with no linearConfiguration (ECS defaults: stepPercent 10.0, stepBakeTimeInMinutes 6)
    rollout = traffic_plan({"strategy": "LINEAR", "bakeTimeInMinutes": 10}, 4)
    # THEN ten shifts of 10%, 6 minutes after each but the last
    assert shifts(rollout) == [(float(p), 6) for p in range(10, 100, 10)] + [(100.0, 0)]
    assert rollout.shifts == 10
    assert rollout.step_percent == 10.0
    assert rollout.step_bake_minutes == 6
    # AND the minimum is nine step bakes plus the bake
    assert rollout.minimum_minutes == 9 * 6 + 10
    assert duration_text(rollout) == "64 min (9 step bakes × 6 min + bake 10 min)"


def test_linear_thirty_percent_ends_with_the_remainder() -> None:
    rollout = traffic_plan(
        {
            "strategy": "LINEAR",
            "linearConfiguration": {"stepPercent": 30.0, "stepBakeTimeInMinutes": 6},
            "bakeTimeInMinutes": 10,
        },
        4,
    )
    assert shifts(rollout) == [(30.0, 6), (60.0, 6), (90.0, 6), (100.0, 0)]
    assert rollout.steps[-3].note == "the last step takes the remainder (+10%)"
    assert rollout.minimum_minutes == 3 * 6 + 10


def test_linear_tenths_are_exact() -> None:
    # 33.3% steps add up to 99.9%, never 99.89999: the last step moves 0.1%
    rollout = traffic_plan(
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 33.3}, "bakeTimeInMinutes": 0}, 3
    )
    assert [s.traffic_tenths for s in rollout.steps if s.kind == "shift"] == [333, 666, 999, 1000]
    assert "(+0.1%)" in rollout.steps[-3].note


def test_linear_one_hundred_percent_is_one_shift_without_a_step_bake() -> None:
    rollout = traffic_plan(
        {"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 100}, "bakeTimeInMinutes": 5}, 2
    )
    assert shifts(rollout) == [(100.0, 0)]
    assert rollout.minimum_minutes == 5


@pytest.mark.parametrize("tenths", [30, 33, 45, 100, 110, 125, 250, 333, 500, 999, 1000])
def test_linear_step_bakes_match_cloudformations_count(tenths: int) -> None:
    # CloudFormation's LinearConfiguration page: (100 / stepPercent) - 1 step bakes when stepPercent
    # divides 100, else floor(100 / stepPercent) ("if StepPercent is 11, ... 9")
    rollout = traffic_plan(
        {
            "strategy": "LINEAR",
            "linearConfiguration": {"stepPercent": tenths / 10, "stepBakeTimeInMinutes": 1},
            "bakeTimeInMinutes": 0,
        },
        4,
    )
    expected = 1000 // tenths - 1 if 1000 % tenths == 0 else 1000 // tenths
    assert sum(1 for _, bake in shifts(rollout) if bake) == expected
    assert rollout.minimum_minutes == expected


def test_canary_defaults_five_percent_then_the_rest() -> None:
    # GIVEN CANARY with ECS's defaults: canaryPercent 5.0, canaryBakeTimeInMinutes 10
    rollout = traffic_plan({"strategy": "CANARY", "bakeTimeInMinutes": 5}, 4)
    assert shifts(rollout) == [(5.0, 10), (100.0, 0)]
    assert [s.label for s in rollout.steps if s.kind == "shift"] == ["canary", "shift the rest"]
    assert rollout.minimum_minutes == 15
    assert duration_text(rollout) == "15 min (canary bake 10 min + bake 5 min)"


def test_canary_one_hundred_percent_counts_no_canary_bake() -> None:
    rollout = traffic_plan(
        {
            "strategy": "CANARY",
            "canaryConfiguration": {"canaryPercent": 100.0, "canaryBakeTimeInMinutes": 30},
            "bakeTimeInMinutes": 2,
        },
        4,
    )
    assert shifts(rollout) == [(100.0, 0)]
    assert rollout.minimum_minutes == 2


def test_blue_green_every_stage() -> None:
    # GIVEN BLUE_GREEN with a 15-minute bake for 4 tasks
    rollout = traffic_plan({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 15}, 4)
    # THEN green scales up to full size, test traffic, one shift to 100%, the bake, the clean-up
    assert [(s.kind, s.label, s.traffic_percent, s.bake_minutes) for s in rollout.steps] == [
        ("scale_up", "scale up green", 0.0, 0),
        ("test_traffic", "test traffic", 0.0, 0),
        ("shift", "shift all traffic", 100.0, 0),
        ("bake", "bake", 100.0, 15),
        ("clean_up", "clean up blue", 100.0, 0),
    ]
    assert rollout.steps[0].note == "green starts 4 tasks beside blue's 4: 8 running"
    assert rollout.steps[3].note == "blue still runs: a rollback moves production traffic back at once"
    assert (rollout.peak_tasks, rollout.minimum_minutes, rollout.approvals) == (8, 15, 0)
    assert traffic_summary(rollout) == (
        "BLUE_GREEN: 1 traffic shift; peak 8 tasks (200% of desired); minimum duration 15 min (bake 15 min)"
    )


def test_blue_green_bake_zero_stops_blue_at_once() -> None:
    rollout = traffic_plan({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 0}, 1)
    assert rollout.minimum_minutes == 0
    assert rollout.steps[-2].note == "bakeTimeInMinutes 0: blue stops right after the last shift"


def test_pause_after_test_traffic_waits_for_approval() -> None:
    # GIVEN a PAUSE hook at POST_TEST_TRAFFIC_SHIFT without a timeout configuration
    rollout = traffic_plan(
        {"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 15, "lifecycleHooks": [pause("POST_TEST_TRAFFIC_SHIFT")]}, 4
    )
    # THEN one approval step sits between test traffic and the shift, with ECS's default timeout
    assert kinds(rollout) == ["scale_up", "test_traffic", "approval", "shift", "bake", "clean_up"]
    approval = rollout.steps[2]
    assert (approval.label, approval.traffic_percent, approval.bake_minutes) == ("waits for approval", 0.0, 0)
    assert approval.note == (
        "PAUSE at POST_TEST_TRAFFIC_SHIFT: ContinueServiceDeployment CONTINUE or ROLLBACK "
        "(timeout 1440 min, then ROLLBACK)"
    )
    (hook,) = rollout.hooks
    assert (hook.stage, hook.target_type, hook.target, hook.timeout_minutes, hook.timeout_action, hook.runs) == (
        "POST_TEST_TRAFFIC_SHIFT",
        "PAUSE",
        None,
        1440,
        "ROLLBACK",
        1,
    )
    # AND the minimum duration says a human comes on top
    assert rollout.needs_approval
    assert rollout.minimum_minutes == 15
    assert duration_text(rollout) == "15 min (bake 15 min) + the time to approve (1 pause)"


def test_pause_before_production_shift_pauses_before_every_linear_step() -> None:
    # GIVEN LINEAR 30% with a PAUSE at PRE_PRODUCTION_TRAFFIC_SHIFT that continues after an hour
    rollout = traffic_plan(
        {
            "strategy": "LINEAR",
            "linearConfiguration": {"stepPercent": 30, "stepBakeTimeInMinutes": 6},
            "bakeTimeInMinutes": 10,
            "lifecycleHooks": [pause("PRE_PRODUCTION_TRAFFIC_SHIFT", timeoutInMinutes=60, action="CONTINUE")],
        },
        4,
    )
    # THEN every shift waits for an approval first, at the traffic it has so far
    body = [(s.kind, s.traffic_percent) for s in rollout.steps if s.kind in ("approval", "shift")]
    assert body == [
        ("approval", 0.0),
        ("shift", 30.0),
        ("approval", 30.0),
        ("shift", 60.0),
        ("approval", 60.0),
        ("shift", 90.0),
        ("approval", 90.0),
        ("shift", 100.0),
    ]
    assert rollout.approvals == 4
    assert rollout.hooks[0].runs == 4
    assert "timeout 60 min, then CONTINUE" in rollout.steps[2].note
    assert duration_text(rollout) == "28 min (3 step bakes × 6 min + bake 10 min) + the time to approve (4 pauses)"


def test_lambda_hooks_are_steps_or_annotations() -> None:
    lambda_hook = {
        "hookTargetArn": LAMBDA,
        "roleArn": ROLE,
        "lifecycleStages": ["POST_SCALE_UP", "PRODUCTION_TRAFFIC_SHIFT"],
    }
    rollout = traffic_plan({"strategy": "CANARY", "bakeTimeInMinutes": 5, "lifecycleHooks": [lambda_hook]}, 4)
    assert kinds(rollout) == ["scale_up", "hook", "test_traffic", "shift", "shift", "bake", "clean_up"]
    assert rollout.steps[1].note == "AWS_LAMBDA at POST_SCALE_UP: function smoke-test (timeout 1440 min, then ROLLBACK)"
    assert all(
        "Lambda hook smoke-test runs at PRODUCTION_TRAFFIC_SHIFT" in s.note for s in rollout.steps if s.kind == "shift"
    )
    assert [(h.stage, h.runs) for h in rollout.hooks] == [("POST_SCALE_UP", 1), ("PRODUCTION_TRAFFIC_SHIFT", 2)]
    assert rollout.approvals == 0


def test_bake_time_not_given_is_not_counted_and_said() -> None:
    # The ECS API model gives bakeTimeInMinutes no default for LINEAR or CANARY
    rollout = traffic_plan({"strategy": "LINEAR"}, 4)
    assert not rollout.bake_time_given
    assert rollout.minimum_minutes == 54
    assert rollout.steps[-2].note == "bakeTimeInMinutes not given: the ECS API model states no default for LINEAR"
    assert duration_text(rollout) == (
        "54 min (9 step bakes × 6 min) + the bake time (bakeTimeInMinutes not given: "
        "the ECS API model states no default for LINEAR)"
    )


def test_works_on_what_validate_returns() -> None:
    # GIVEN a stage rollout that validate accepts (it fills linearConfiguration's defaults)
    validation = validate({"strategy": "LINEAR", "bakeTimeInMinutes": 5}, WITH_TRAFFIC)
    assert validation.valid
    assert validation.deployment_configuration["linearConfiguration"] == {
        "stepPercent": 10.0,
        "stepBakeTimeInMinutes": 6,
    }
    # THEN the plan of the normalized configuration is the same as of the raw one
    assert traffic_plan(validation.deployment_configuration, 4) == traffic_plan(
        {"strategy": "LINEAR", "bakeTimeInMinutes": 5}, 4
    )


@pytest.mark.parametrize(
    ("configuration", "fragment"),
    [
        ({"minimumHealthyPercent": 50, "maximumPercent": 200}, "not None"),
        ({"strategy": "ROLLING"}, "not 'ROLLING'"),
        ({"strategy": "BLUE_GREEN"}, "bakeTimeInMinutes is required"),
        ({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 1441}, "bakeTimeInMinutes"),
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 2.5}}, "stepPercent"),
        ({"strategy": "LINEAR", "linearConfiguration": {"stepPercent": 10.05}}, "multiple of 0.1"),
        ({"strategy": "CANARY", "canaryConfiguration": {"canaryPercent": 0}}, "canaryPercent"),
        ({"strategy": "CANARY", "canaryConfiguration": {"canaryBakeTimeInMinutes": True}}, "canaryBakeTimeInMinutes"),
        ({"strategy": "LINEAR", "lifecycleHooks": [pause("PRODUCTION_TRAFFIC_SHIFT")]}, "PAUSE hooks cannot"),
        ({"strategy": "LINEAR", "lifecycleHooks": [pause("SOMEWHERE")]}, "unknown lifecycle stage"),
        ({"strategy": "LINEAR", "lifecycleHooks": [pause("PRE_SCALE_UP", action="WAIT")]}, "action"),
    ],
)
def test_refuses_what_ecs_would_refuse(configuration: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment):
        traffic_plan(configuration, 4)


def test_refuses_desired_counts_outside_the_quota() -> None:
    with pytest.raises(ValueError, match="desired"):
        traffic_plan({"strategy": "CANARY"}, 5001)


# --- properties -----------------------------------------------------------------------------------

minutes = st.integers(min_value=0, max_value=1440)
stages = st.lists(st.sampled_from([s for s in HOOK_STAGES if s not in PAUSE_FORBIDDEN_STAGES]), max_size=3, unique=True)


@st.composite
def configurations(draw: st.DrawFn) -> dict[str, Any]:
    strategy = draw(st.sampled_from(["BLUE_GREEN", "LINEAR", "CANARY"]))
    configuration: dict[str, Any] = {"strategy": strategy}
    if strategy == "BLUE_GREEN" or draw(st.booleans()):
        configuration["bakeTimeInMinutes"] = draw(minutes)
    if strategy == "LINEAR":
        configuration["linearConfiguration"] = {
            "stepPercent": draw(st.integers(min_value=30, max_value=1000)) / 10,
            "stepBakeTimeInMinutes": draw(minutes),
        }
    if strategy == "CANARY":
        configuration["canaryConfiguration"] = {
            "canaryPercent": draw(st.integers(min_value=1, max_value=1000)) / 10,
            "canaryBakeTimeInMinutes": draw(minutes),
        }
    paused = draw(stages)
    if paused:
        configuration["lifecycleHooks"] = [pause(*paused)]
    return configuration


@settings(max_examples=300, deadline=None)
@given(configuration=configurations(), desired=st.integers(min_value=0, max_value=5000))
def test_traffic_only_grows_ends_at_100_and_the_minimum_is_the_sum_of_bakes(
    configuration: dict[str, Any], desired: int
) -> None:
    # GIVEN any configuration validate accepts
    assert validate(configuration, ServiceFacts(desired, has_load_balancer=True, has_alternate_target_group=True)).valid
    rollout = traffic_plan(configuration, desired)
    moved = [s.traffic_tenths for s in rollout.steps if s.kind == "shift"]
    # THEN production traffic on green strictly increases from shift to shift and ends at 100%
    assert all(a < b for a, b in itertools.pairwise(moved))
    assert moved[-1] == 1000
    assert moved[0] > 0
    # AND never goes back at any step
    everything = [s.traffic_tenths for s in rollout.steps]
    assert everything == sorted(everything)
    # AND the minimum duration is exactly the sum of the bakes; the last shift has none of its own
    assert rollout.minimum_minutes == sum(s.bake_minutes for s in rollout.steps)
    assert [s for s in rollout.steps if s.kind == "shift"][-1].bake_minutes == 0
    # AND every green task runs beside every blue one
    assert rollout.peak_tasks == 2 * desired
    # AND each PAUSE stop is one approval (PRE_PRODUCTION_TRAFFIC_SHIFT once per shift)
    assert rollout.approvals == sum(h.runs for h in rollout.hooks if h.target_type == "PAUSE")
    assert rollout.approvals == sum(1 for s in rollout.steps if s.kind == "approval")


@settings(max_examples=200, deadline=None)
@given(tenths=st.integers(min_value=30, max_value=1000), bake=minutes)
def test_linear_steps_are_equal_but_the_last(tenths: int, bake: int) -> None:
    rollout = traffic_plan(
        {
            "strategy": "LINEAR",
            "linearConfiguration": {"stepPercent": tenths / 10, "stepBakeTimeInMinutes": bake},
            "bakeTimeInMinutes": 0,
        },
        4,
    )
    moved = [0] + [s.traffic_tenths for s in rollout.steps if s.kind == "shift"]
    sizes = [b - a for a, b in itertools.pairwise(moved)]
    assert sizes[:-1] == [tenths] * (len(sizes) - 1)
    assert 0 < sizes[-1] <= tenths
    assert rollout.minimum_minutes == bake * (len(sizes) - 1)


@given(tenths=st.integers(min_value=0, max_value=1000))
def test_the_bar_never_looks_empty_or_full_when_traffic_is_split(tenths: int) -> None:
    bar = _traffic_bar(tenths, UNICODE)
    assert len(bar) == 22
    assert (UNICODE["new"] in bar) == (tenths > 0)
    assert (UNICODE["old"] in bar) == (tenths < 1000)


# --- capacity -------------------------------------------------------------------------------------


def test_too_little_room_for_green_is_a_warning() -> None:
    rollout = traffic_plan({"strategy": "BLUE_GREEN", "bakeTimeInMinutes": 5}, 4)
    (warning,) = traffic_warnings(rollout, ServiceFacts(4, spare_capacity=3))
    assert warning.severity == "warning"
    assert warning.field == "spareCapacity"
    assert warning.rule.startswith("deployer policy: ")
    assert "green needs room for 4 tasks beside blue's 4 (8 in all); the cluster has room for 3" in warning.rule
    assert traffic_warnings(rollout, ServiceFacts(4, spare_capacity=4)) == ()
    assert traffic_warnings(rollout, ServiceFacts(4)) == ()  # Fargate: no room to run out of


def test_ec2_without_known_room_warns_for_the_autoscaling_maximum() -> None:
    rollout = traffic_plan({"strategy": "CANARY"}, 4)
    (warning,) = traffic_warnings(rollout, ServiceFacts(4, launch_type="EC2", desired_range=(2, 6)))
    assert "green needs room for 6 tasks beside blue's 6 (12 in all)" in warning.rule


def test_ascii_drawing() -> None:
    out = io.StringIO()
    draw_traffic_plan(out, traffic_plan({"strategy": "CANARY", "bakeTimeInMinutes": 1}, 2), ASCII)
    assert "[o###################]     5%" in out.getvalue()
    assert "[oooooooooooooooooooo]   100%" in out.getvalue()


# --- deployer plan: golden output -----------------------------------------------------------------

BLUE_GREEN_GOLDEN = """\
BLUE_GREEN deployment of 4 tasks (REPLICA on FARGATE): bakeTimeInMinutes 15
Needs: a load balancer with an alternate target group, so ECS can shift traffic (assumed; --no-alternate-target-group or --no-load-balancer check a service without).
ECS starts green (the new revision) at full size beside blue (the running one), sends it test traffic if a test listener rule is configured, then moves all production traffic to green at once and bakes 15 min with both revisions running before it stops blue.
Capacity: green runs all 4 tasks beside blue's 4 from scale-up until blue is cleaned up: peak 8 tasks (200% of desired).
minimumHealthyPercent and maximumPercent do not shape this plan: ECS documents them for rolling updates, and its SCALE_UP stage brings green to 100% of the desired count while blue keeps all its tasks.

  □ production traffic on green   ■ on blue   (one mark per 5%)
  step  stage              production traffic                 wait  note
     1  scale up green     [■■■■■■■■■■■■■■■■■■■■]     0%         —  green starts 4 tasks beside blue's 4: 8 running
     2  test traffic       [■■■■■■■■■■■■■■■■■■■■]     0%         —  a test listener rule, if configured, sends test traffic to green
     3  shift all traffic  [□□□□□□□□□□□□□□□□□□□□]   100%         —  all production traffic moves to green at once
     4  bake               [□□□□□□□□□□□□□□□□□□□□]   100%    15 min  blue still runs: a rollback moves production traffic back at once
     5  clean up blue      [□□□□□□□□□□□□□□□□□□□□]   100%         —  blue scales in to 0; green runs 4 tasks

Summary: 1 traffic shift; peak 8 tasks (200% of desired); starting green and its health checks add to the time.
Minimum duration: 15 min (bake 15 min).
Notes:
  - minimumHealthyPercent: (missing) — ECS: not given: ECS uses 100 for REPLICA services.
  - maximumPercent: (missing) — ECS: not given: ECS uses 200 for REPLICA services.
  - strategy: "BLUE_GREEN" — deployer policy: the rolling plan models ROLLING only; BLUE_GREEN starts a green service revision.
"""  # noqa: E501

LINEAR_GOLDEN = """\
LINEAR deployment of 4 tasks (REPLICA on FARGATE): stepPercent 30.0, stepBakeTimeInMinutes 6 (default), bakeTimeInMinutes 10
Needs: a load balancer with an alternate target group, so ECS can shift traffic (assumed; --no-alternate-target-group or --no-load-balancer check a service without).
ECS starts green (the new revision) at full size beside blue (the running one), sends it test traffic if a test listener rule is configured, then shifts production traffic in equal steps of 30% (the last step takes the remainder), waits 6 min after every step but the last, and bakes 10 min with both revisions running before it stops blue.
Capacity: green runs all 4 tasks beside blue's 4 from scale-up until blue is cleaned up: peak 8 tasks (200% of desired).
minimumHealthyPercent and maximumPercent do not shape this plan: ECS documents them for rolling updates, and its SCALE_UP stage brings green to 100% of the desired count while blue keeps all its tasks.

  □ production traffic on green   ■ on blue   (one mark per 5%)
  step  stage           production traffic                 wait  note
     1  scale up green  [■■■■■■■■■■■■■■■■■■■■]     0%         —  green starts 4 tasks beside blue's 4: 8 running
     2  test traffic    [■■■■■■■■■■■■■■■■■■■■]     0%         —  a test listener rule, if configured, sends test traffic to green
     3  shift 1 of 4    [□□□□□□■■■■■■■■■■■■■■]    30%     6 min
     4  shift 2 of 4    [□□□□□□□□□□□□■■■■■■■■]    60%     6 min
     5  shift 3 of 4    [□□□□□□□□□□□□□□□□□□■■]    90%     6 min
     6  shift 4 of 4    [□□□□□□□□□□□□□□□□□□□□]   100%         —  the last step takes the remainder (+10%)
     7  bake            [□□□□□□□□□□□□□□□□□□□□]   100%    10 min  blue still runs: a rollback moves production traffic back at once
     8  clean up blue   [□□□□□□□□□□□□□□□□□□□□]   100%         —  blue scales in to 0; green runs 4 tasks

Summary: 4 traffic shifts; peak 8 tasks (200% of desired); starting green and its health checks add to the time.
Minimum duration: 28 min (3 step bakes × 6 min + bake 10 min).
Notes:
  - minimumHealthyPercent: (missing) — ECS: not given: ECS uses 100 for REPLICA services.
  - maximumPercent: (missing) — ECS: not given: ECS uses 200 for REPLICA services.
  - strategy: "LINEAR" — deployer policy: the rolling plan models ROLLING only; LINEAR starts a green service revision.
"""  # noqa: E501

CANARY_PAUSE_GOLDEN = """\
CANARY deployment of 2 tasks (REPLICA on FARGATE): canaryPercent 5.0 (default), canaryBakeTimeInMinutes 10 (default), bakeTimeInMinutes 5, PAUSE at POST_TEST_TRAFFIC_SHIFT
Needs: a load balancer with an alternate target group, so ECS can shift traffic (assumed; --no-alternate-target-group or --no-load-balancer check a service without).
ECS starts green (the new revision) at full size beside blue (the running one), sends it test traffic if a test listener rule is configured, then moves 5% of production traffic to green, waits 10 min, moves the rest at once, and bakes 5 min with both revisions running before it stops blue.
Capacity: green runs all 2 tasks beside blue's 2 from scale-up until blue is cleaned up: peak 4 tasks (200% of desired).
minimumHealthyPercent and maximumPercent do not shape this plan: ECS documents them for rolling updates, and its SCALE_UP stage brings green to 100% of the desired count while blue keeps all its tasks.

  □ production traffic on green   ■ on blue   (one mark per 5%)
  step  stage               production traffic                 wait  note
     1  scale up green      [■■■■■■■■■■■■■■■■■■■■]     0%         —  green starts 2 tasks beside blue's 2: 4 running
     2  test traffic        [■■■■■■■■■■■■■■■■■■■■]     0%         —  a test listener rule, if configured, sends test traffic to green
     3  waits for approval  [■■■■■■■■■■■■■■■■■■■■]     0%  approval  PAUSE at POST_TEST_TRAFFIC_SHIFT: ContinueServiceDeployment CONTINUE or ROLLBACK (timeout 120 min, then ROLLBACK)
     4  canary              [□■■■■■■■■■■■■■■■■■■■]     5%    10 min  green serves 5% of production traffic, blue the rest
     5  shift the rest      [□□□□□□□□□□□□□□□□□□□□]   100%         —  the rest of production traffic moves at once
     6  bake                [□□□□□□□□□□□□□□□□□□□□]   100%     5 min  blue still runs: a rollback moves production traffic back at once
     7  clean up blue       [□□□□□□□□□□□□□□□□□□□□]   100%         —  blue scales in to 0; green runs 2 tasks

Summary: 2 traffic shifts; peak 4 tasks (200% of desired); starting green and its health checks add to the time.
Minimum duration: 15 min (canary bake 10 min + bake 5 min) + the time to approve (1 pause).
Notes:
  - minimumHealthyPercent: (missing) — ECS: not given: ECS uses 100 for REPLICA services.
  - maximumPercent: (missing) — ECS: not given: ECS uses 200 for REPLICA services.
  - canaryConfiguration: (missing) — ECS: not given: CANARY uses canaryPercent 5.0 and canaryBakeTimeInMinutes 10.
  - strategy: "CANARY" — deployer policy: the rolling plan models ROLLING only; CANARY starts a green service revision.
"""  # noqa: E501

REFUSED_GOLDEN = """\
BLUE_GREEN deployment of 4 tasks (REPLICA on FARGATE): bakeTimeInMinutes not given
Refused: this configuration cannot be rolled out as asked.
Errors:
  - strategy: "BLUE_GREEN" — ECS: BLUE_GREEN shifts traffic between two target groups; this service has no load balancer and no alternate target group. Fix: configure the service's load balancer with an alternate target group (and listener rules), or use ROLLING
  - bakeTimeInMinutes: (missing) — ECS: bakeTimeInMinutes is required with the BLUE_GREEN strategy. Fix: add bakeTimeInMinutes, e.g. 5 (0 to 1440)
Notes:
  - minimumHealthyPercent: (missing) — ECS: not given: ECS uses 100 for REPLICA services.
  - maximumPercent: (missing) — ECS: not given: ECS uses 200 for REPLICA services.
  - strategy: "BLUE_GREEN" — deployer policy: the rolling plan models ROLLING only; BLUE_GREEN starts a green service revision.
"""  # noqa: E501


def run_plan(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["plan", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("args", "golden"),
    [
        (["--desired", "4", "--strategy", "BLUE_GREEN", "--bake-minutes", "15"], BLUE_GREEN_GOLDEN),
        (["--desired", "4", "--strategy", "LINEAR", "--step-percent", "30", "--bake-minutes", "10"], LINEAR_GOLDEN),
        (
            [
                "--desired",
                "2",
                "--strategy",
                "canary",
                "--bake-minutes",
                "5",
                "--pause-at",
                "post_test_traffic_shift",
                "--pause-timeout",
                "120",
            ],
            CANARY_PAUSE_GOLDEN,
        ),
    ],
    ids=["blue-green", "linear", "canary-pause"],
)
def test_golden_text(capsys: pytest.CaptureFixture[str], args: list[str], golden: str) -> None:
    code, out, err = run_plan(capsys, *args)
    assert (code, err) == (0, "")
    assert out == golden


def test_golden_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_plan(capsys, "--desired", "4", "--strategy", "BLUE_GREEN", "--no-load-balancer")
    assert (code, err) == (1, "")
    assert out == REFUSED_GOLDEN


def test_json_has_the_same_plan(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(
        capsys,
        "--desired",
        "4",
        "--strategy",
        "LINEAR",
        "--step-percent",
        "30",
        "--bake-minutes",
        "10",
        "--pause-at",
        "POST_TEST_TRAFFIC_SHIFT",
        "--json",
    )
    doc = json.loads(out)
    assert code == 0
    assert (doc["valid"], doc["strategy"], doc["desired"]) == (True, "LINEAR", 4)
    assert [(s["kind"], s["traffic_percent"], s["bake_minutes"]) for s in doc["traffic_steps"]] == [
        ("scale_up", 0.0, 0),
        ("test_traffic", 0.0, 0),
        ("approval", 0.0, 0),
        ("shift", 30.0, 6),
        ("shift", 60.0, 6),
        ("shift", 90.0, 6),
        ("shift", 100.0, 0),
        ("bake", 100.0, 10),
        ("clean_up", 100.0, 0),
    ]
    assert (doc["shifts"], doc["peak_tasks"], doc["minimum_duration_minutes"]) == (4, 8, 28)
    assert (doc["approvals"], doc["needs_approval"], doc["bake_time_given"]) == (1, True, True)
    assert doc["minimum_duration"] == "28 min (3 step bakes × 6 min + bake 10 min) + the time to approve (1 pause)"
    assert doc["hooks"] == [
        {
            "stage": "POST_TEST_TRAFFIC_SHIFT",
            "target_type": "PAUSE",
            "target": None,
            "timeout_minutes": 1440,
            "timeout_action": "ROLLBACK",
            "runs": 1,
        }
    ]
    assert doc["deployment_configuration"] == {
        "minimumHealthyPercent": 100,
        "maximumPercent": 200,
        "strategy": "LINEAR",
        "bakeTimeInMinutes": 10,
        "lifecycleHooks": [{"targetType": "PAUSE", "lifecycleStages": ["POST_TEST_TRAFFIC_SHIFT"]}],
        "linearConfiguration": {"stepPercent": 30.0, "stepBakeTimeInMinutes": 6},
    }


def test_json_refusal(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(capsys, "--desired", "4", "--strategy", "BLUE_GREEN", "--json")
    doc = json.loads(out)
    assert code == 1
    assert doc["valid"] is False
    assert doc["traffic_steps"] == []
    assert doc["minimum_duration_minutes"] is None
    assert [e["field"] for e in doc["errors"]] == ["bakeTimeInMinutes"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--strategy", "BLUE_GREEN"], "bakeTimeInMinutes is required with the BLUE_GREEN strategy"),
        (["--strategy", "LINEAR", "--canary-percent", "10"], "canaryConfiguration is only valid with the CANARY"),
        (["--strategy", "CANARY", "--step-bake-minutes", "3"], "linearConfiguration is only valid with the LINEAR"),
        (["--strategy", "LINEAR", "--step-percent", "2.5"], "stepPercent takes multiples of 0.1 from 3.0 to 100.0"),
        (["--strategy", "CANARY", "--canary-percent", "0.05"], "canaryPercent takes multiples of 0.1 from 0.1"),
        (["--strategy", "CANARY", "--canary-bake-minutes", "1441"], "canaryBakeTimeInMinutes is 0 to 1440"),
        (["--strategy", "BLUE_GREEN", "--bake-minutes", "5", "--pause-at", "TEST_TRAFFIC_SHIFT"], "PAUSE hooks cannot"),
        (
            ["--strategy", "LINEAR", "--pause-at", "POST_SCALE_UP", "--pause-timeout", "0"],
            "timeoutInMinutes is 1 to 20160",
        ),
        (["--strategy", "LINEAR", "--no-alternate-target-group"], "this service has no alternate target group"),
        (["--strategy", "LINEAR", "--min", "120"], "minimumHealthyPercent: 120"),
        (["--min", "50", "--max", "150", "--step-percent", "20"], "linearConfiguration is only valid with the LINEAR"),
        (["--strategy", "CANARY", "--desired", "5001"], "5,000"),
    ],
)
def test_invalid_combinations_are_refused_by_validate_with_exit_1(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    code, out, err = run_plan(capsys, "--desired", "4", *args)
    assert code == 1
    assert err == ""
    assert "Refused: this configuration cannot be rolled out as asked." in out
    assert "Minimum duration" not in out
    assert fragment in out


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--min", "50", "--max", "150", "--bake-minutes", "5"], "--bake-minutes and --pause-at go with --strategy"),
        (["--min", "50", "--max", "150", "--pause-at", "POST_SCALE_UP"], "--bake-minutes and --pause-at go with"),
        (["--strategy", "LINEAR", "--pause-timeout", "30"], "--pause-timeout and --pause-timeout-action describe"),
        (["--strategy", "LINEAR", "--daemon"], "--daemon: the plan explains LINEAR for REPLICA services only"),
        (["--strategy", "LINEAR", "--min-tasks", "2"], "--min-tasks and --max-tasks go together"),
    ],
)
def test_unusable_combinations_exit_2(capsys: pytest.CaptureFixture[str], args: list[str], fragment: str) -> None:
    code, out, err = run_plan(capsys, "--desired", "4", *args)
    assert (code, out) == (2, "")
    assert err.startswith("deployer plan: error: ")
    assert fragment in err


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--strategy", "SHADOW"], "argument --strategy: invalid choice"),
        (["--strategy", "LINEAR", "--step-percent", "ten"], "'ten' is not a percentage"),
        (["--strategy", "LINEAR", "--pause-at", "LATER"], "argument --pause-at: invalid choice: 'LATER'"),
        (["--strategy", "LINEAR", "--bake-minutes", "-1"], "'-1' is negative"),
        (["--max", "150"], "the following arguments are required: --min"),
        ([], "the following arguments are required: --min, --max"),
    ],
)
def test_unusable_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["plan", "--desired", "4", *args])
    out, err = capsys.readouterr()
    assert stopped.value.code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert fragment in err


def test_rolling_min_and_max_stay_optional_for_traffic_strategies(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_plan(capsys, "--desired", "4", "--strategy", "BLUE_GREEN", "--bake-minutes", "1", "--min", "50")
    assert code == 0
    assert "minimumHealthyPercent and maximumPercent do not shape this plan" in out


def test_explicit_rolling_draws_the_same_rollout(capsys: pytest.CaptureFixture[str]) -> None:
    _, default, _ = run_plan(capsys, "--desired", "4", "--min", "50", "--max", "150")
    code, explicit, _ = run_plan(capsys, "--desired", "4", "--min", "50", "--max", "150", "--strategy", "rolling")
    assert code == 0
    assert explicit == default


@pytest.mark.integration
def test_plan_with_a_strategy_does_not_import_boto3() -> None:
    code = (
        "import sys, deployer_cli as c; "
        "rc = c.main(['plan', '--desired', '4', '--strategy', 'LINEAR', '--pause-at', 'POST_SCALE_UP', '--json']); "
        "assert rc == 0, rc; "
        "heavy = [m for m in ('boto3', 'botocore', 'pydantic') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["approvals"] == 1


# --- docs/rolling.md shows real output ------------------------------------------------------------

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rolling.md"


def documented_strategy_examples() -> list[tuple[list[str], str, int]]:
    """(arguments, printed text, exit status) of every `deployer plan --strategy` transcript."""
    examples = []
    for block in re.findall(r"```\n(\$ deployer plan .*?)```", DOCS.read_text(encoding="utf-8"), flags=re.S):
        command, _, rest = block.partition("\n")
        if "--strategy" not in command:
            continue
        printed, _, status = rest.rpartition("$ echo $?\n")
        examples.append((shlex.split(command)[3:], printed, int(status)))
    return examples


def test_docs_show_every_strategy() -> None:
    shown = {args[args.index("--strategy") + 1] for args, _, _ in documented_strategy_examples()}
    assert shown == {"BLUE_GREEN", "LINEAR", "CANARY"}


@pytest.mark.parametrize(("args", "printed", "status"), documented_strategy_examples())
def test_docs_examples_are_real_output(
    capsys: pytest.CaptureFixture[str], args: list[str], printed: str, status: int
) -> None:
    code, out, _ = run_plan(capsys, *args)
    assert (code, out) == (status, printed)
