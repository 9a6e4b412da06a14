"""Every benchmark runs with tiny counts, so the bench code cannot rot. The figures themselves live
in BENCHMARKS.md (`make bench`); this test checks only that what they measure is sane."""

from __future__ import annotations

import pytest

from bench import aws_calls, cold_import, first_event, latency, report, startup

pytestmark = pytest.mark.unit


@pytest.mark.integration
def test_every_benchmark_runs_with_tiny_counts_and_measures_sane_structures() -> None:
    # GIVEN tiny counts (one function only for the cold imports, when the build exists)
    built = [
        f
        for f in (cold_import.built_functions() if (cold_import.BUILD_DIR / "template.yaml").is_file() else [])
        if (f.code_dir / f"{f.module}.py").is_file()
    ]
    # WHEN each section runs
    results = {
        "startup": startup.plan_startup(n=1),
        "imports": cold_import.cold_imports(n=1, n_uncompiled=0, functions=[f.name for f in built[:1]]),
        "calls": aws_calls.aws_calls(),
        "latency": latency.handler_latency(n=2),
        "first_event": first_event.first_events(n_warm=1, functions=["OnPushFunction"]),
    }

    # THEN `deployer plan` was timed against the bare interpreter and never loaded boto3
    plan = results["startup"]
    assert plan["plan_ms"] > 0
    assert plan["baseline_ms"] > 0
    assert plan["ratio"] > 0
    assert plan["imports"]["boto3_imported"] is False
    assert plan["imports"]["botocore_imported"] is False
    assert "deployer" in plan["imports"]["top_level_packages_outside_stdlib"]

    # AND the built function imported next to a boto3 baseline (or the section says to build)
    imports = results["imports"]
    if built:
        (row,) = imports["functions"]
        assert "error" not in row, row
        assert row["shipped_ms"] > 0
        assert row["shipped_ratio"] > 0
        assert row["modules"] > imports["floor"]["modules"] > imports["baseline"]["modules"] > 0
        assert imports["floor"]["shipped_ratio"] > 1
    else:
        assert imports == {"skipped": "no .aws-sam/build: run make build"}

    # AND the stage deployment made exactly the target ECS calls, and nothing polled
    calls = results["calls"]
    stage = calls["stage_deployment"]
    assert stage["ecs"] == ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
    assert stage["application_autoscaling"] == ["DescribeScalableTargets"]
    assert stage["meets_target"] is True
    assert [e["outcome"] for e in calls["events"]] == ["build_started", "build_started", "deploying", "duplicate"]
    first_push, newer_push, first_build, redelivered = calls["events"]
    assert first_push["calls"]["CodeBuild"] == ["StartBuild"]
    assert newer_push["calls"]["CodeBuild"] == ["StartBuild"]
    assert first_build["calls"]["DynamoDB"]
    assert "ECS" not in redelivered["calls"]
    assert calls["polls"] is False

    # AND every timed handler did its whole job, slower than one GetItem round trip
    timed = results["latency"]
    on_push, on_build = timed["handlers"]
    assert on_push["outcomes"] == {"build_started": 2}
    assert on_build["outcomes"] == {"deploying": 2}
    assert timed["get_item"]["n"] == 4
    for handler in (on_push, on_build):
        assert handler["p95_ms"] >= handler["median_ms"] > 0
        assert handler["aws_calls"] > 1

    # AND the built OnPushFunction handled a cold push, then a warm one, through the tracer, with
    # the time inside its AWS calls measured (or the section says to build)
    first = results["first_event"]
    if built:
        (push,) = first["functions"]
        assert "error" not in push, push
        assert push["outcomes"] == ["build_started"]
        assert push["n_warm"] == 1
        assert push["first"]["aws_calls"] > push["warm"]["aws_calls"] > 1
        assert push["first"]["wall_ms"] > push["first"]["aws_ms"] > 0
        assert push["ratio"] > 0
        assert push["segments"] > 0
    else:
        assert first == {"skipped": "no .aws-sam/build: run make build"}

    # AND the report renders every section
    text = report.markdown(results, report.run_info(0.0))
    for title, _ in report.SECTIONS.values():
        assert f"## {title}" in text
    assert report.summary(results)
