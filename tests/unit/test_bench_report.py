"""BENCHMARKS.md renders every section from the benchmarks' result dicts: the new sections (package
sizes, AWS calls by service, per-event latency, the storm, the side by side with ecs-deploy) are
rendered here from small fake results, so no benchmark runs and nothing touches the network."""

from __future__ import annotations

from typing import Any

import pytest

from bench import report
from bench.ecs_deploy import differences

pytestmark = pytest.mark.unit

INFO = {"date": "2026-11-29 12:00 UTC", "commit": "abc1234"}


def sizes_result() -> dict[str, Any]:
    def share(names: list[str], unzipped: int, zipped: int, part: float) -> dict[str, Any]:
        return {"distributions": names, "unzipped_bytes": unzipped, "zipped_bytes": zipped, "share_of_layer": part}

    return {
        "build": ".aws-sam/build",
        "limit_unzipped_mb": 250.0,
        "packages": [
            {
                "name": "OnPushFunction",
                "kind": "function",
                "files": 2,
                "bytecode_files": 1,
                "unzipped_bytes": 2_900,
                "zipped_bytes": 1_800,
                "without_bytecode_unzipped_bytes": 1_089,
                "without_bytecode_zipped_bytes": 618,
            },
            {
                "name": "DeployerLayer",
                "kind": "layer",
                "files": 4020,
                "bytecode_files": 978,
                "unzipped_bytes": 51_336_896,
                "zipped_bytes": 26_858_042,
                "without_bytecode_unzipped_bytes": 40_056_896,
                "without_bytecode_zipped_bytes": 21_978_042,
            },
        ],
        "layer": "DeployerLayer",
        "layer_breakdown": [
            {
                "distribution": "aws-lambda-powertools",
                "version": "3.37.0",
                "files": 343,
                "unzipped_bytes": 3_549_456,
                "zipped_bytes": 999_694,
                "bytecode_unzipped_bytes": 2_130_000,
            }
        ],
        "powertools": share(["aws-lambda-powertools 3.37.0"], 3_549_456, 999_694, 0.0886),
        "powertools_with_tracer": share(
            ["aws-lambda-powertools 3.37.0", "wrapt 2.5.2", "aws-xray-sdk 2.15.0"], 4_971_312, 1_351_139, 0.124
        ),
        "sdk": share(["botocore 1.43.127", "boto3 1.43.108"], 22_204_984, 16_508_346, 0.554),
        "versions": {"aws-lambda-powertools": "3.37.0", "boto3": "1.43.108", "botocore": "1.43.127"},
        "recent_ecs_operations": {"ContinueServiceDeployment": True, "ListServiceDeployments": True},
        "same_as_tests": {"aws-lambda-powertools": ("3.37.0", "3.37.0"), "boto3": ("1.43.108", "1.43.108")},
        "layer_matches_tests": True,
        "headroom_mb": 209.9,
    }


def event(label: str, outcome: str, calls: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "event": label,
        "outcome": outcome,
        "calls": calls,
        "total_calls": sum(len(ops) for ops in calls.values()),
        "items_returned": 0,
        "polls": False,
    }


def calls_result() -> dict[str, Any]:
    stage = ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
    return {
        "services": ["DynamoDB", "ECS", "Application Auto Scaling", "Secrets Manager"],
        "events": [
            event(
                "on_build: success",
                "deploying",
                {
                    "DynamoDB": ["GetItem[t]", "GetItem[ecs-deployer-config-bench]", "PutItem[t]"],
                    "ECS": stage,
                    "Application Auto Scaling": ["DescribeScalableTargets"],
                },
            ),
            event(
                "on_deployment: dev COMPLETED",
                "deployed, then awaiting_approval",
                {"DynamoDB": ["GetItem[t]"], "Secrets Manager": ["GetSecretValue"]},
            ),
            event("on_deployment: IN_PROGRESS", "ignored", {}),
        ],
        "stage_deployment": {
            "ecs": stage,
            "application_autoscaling": ["DescribeScalableTargets"],
            "meets_target": True,
            "target": [*stage, "DescribeScalableTargets (Application Auto Scaling)"],
        },
        "polls": False,
    }


def handler(name: str, median_ms: float, n: int = 200) -> dict[str, Any]:
    return {
        "handler": name,
        "n": n,
        "median_ms": median_ms,
        "p95_ms": median_ms * 1.5,
        "ratio": median_ms / 5.0,
        "aws_calls": 16,
        "in_aws_calls": 0.95,
        "first_ms": median_ms,
        "last_ms": median_ms * 2,
        "items_first": 1,
        "items_last": 200,
        "outcomes": {"deployed, then awaiting_approval" if name == "on_deployment" else "ok": n},
        "slowest_calls": [
            {"call": "DynamoDB Query", "ms_per_event": median_ms / 2, "median_ms": median_ms / 2, "calls_per_event": 1}
        ],
    }


def latency_result() -> dict[str, Any]:
    return {
        "n_requested": 200,
        "budget_s": 420.0,
        "warm_up": 2,
        "server": "moto server in this process",
        "get_item": {"median_ms": 5.0, "p95_ms": 9.0, "n": 540},
        "handlers": [handler("on_push", 120.0), handler("on_build", 180.0), handler("on_deployment", 230.0, n=140)],
    }


def storm_result(broken: list[str]) -> dict[str, Any]:
    def cost(runs: int, median_ms: float, calls: dict[str, float]) -> dict[str, Any]:
        return {
            "runs": runs,
            "own_cpu_median_ms": median_ms,
            "own_cpu_p95_ms": median_ms * 2,
            "own_cpu_mean_ms": median_ms * 1.2,
            "own_cpu_total_s": runs * median_ms * 1.2 / 1000,
            "aws_share": 0.9,
            "calls_per_run": calls,
            "calls_per_run_total": sum(calls.values()),
        }

    return {
        "flow_cost": {
            "all": cost(1237, 6.5, {"DynamoDB": 8.25, "ECS": 1.5}),
            "by_function": {
                "OnPushFunction": cost(600, 5.0, {"DynamoDB": 9.0}),
                "OnBuildFunction": cost(637, 8.0, {"DynamoDB": 7.5, "ECS": 3.0}),
            },
        },
        "seed": 4242,
        "replay": "STORM_SEED=4242",
        "pipelines": 20,
        "pushes": 500,
        "deliveries": 1769,
        "redeliveries": 416,
        "reemissions": 186,
        "invocations": 1619,
        "cache_hits": 382,
        "flow_runs": 1237,
        "approval_clicks": 50,
        "storm_seconds": 79.5,
        "total_seconds": 93.1,
        "events_per_second": 20.4,
        "aws_calls": {"RegisterTaskDefinition": 183, "StartBuild": 294, "UpdateService": 183},
        "releases": {"RELEASED": 71, "SUPERSEDED": 403},
        "invariants_held": not broken,
        "broken_invariants": broken,
        "wrong_records": [],
    }


def ecs_deploy_result() -> dict[str, Any]:
    theirs = ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
    theirs += ["DescribeServices", "DeregisterTaskDefinition"]
    ours = ["DescribeServices", "DescribeTaskDefinition", "RegisterTaskDefinition", "UpdateService"]
    aws_tag = {"key": "aws:cloudformation:stack-name", "value": "shop-web"}
    team = {"key": "team", "value": "storefront"}

    def tool(median_ms: float, calls: dict[str, list[str]], previous: str) -> dict[str, Any]:
        return {
            "command": "…",
            "n": 7,
            "median_ms": median_ms,
            "min_ms": median_ms - 50,
            "server_ms": 20.0,
            "own_ms": median_ms - 20,
            "cpu_ms": median_ms * 0.9,
            "exit_codes": [0],
            "stderr": None,
            "calls": calls,
            "same_calls_every_run": True,
            "ecs_calls": len(calls["ECS"]),
            "total_calls": sum(len(ops) for ops in calls.values()),
            "desired_count_sent": False,
            "previous_revision": previous,
        }

    return {
        "n_requested": 7,
        "warm_up": 1,
        "server": "One moto server",
        "versions": {
            "ecs-deploy": "1.17.0",
            "deployer": "0.1.0",
            "ecs-deploy's boto3": "1.44.8",
            "deployer's botocore": "1.43.127",
        },
        "venvs": {".venv-ecs-deploy": ["boto3 1.44.8", "click 8.5.1"], ".venv-cli": ["botocore 1.43.127"]},
        "target_ratio": 0.8,
        "commands": {"ecs-deploy": "ecs deploy shop web …", "deployer": "deployer deploy --cluster shop …"},
        "scenarios": [
            {
                "scenario": "fargate-web",
                "description": "Fargate web service",
                "new_image": "registry/shop/web:1.42.0",
                "container": "web",
                "rounds": 7,
                "ratio": 1.25,
                "cpu_ratio": 1.25,
                "identical_apart_from_image": False,
                "tools": {
                    "ecs-deploy": {
                        **tool(800.0, {"ECS": theirs}, "INACTIVE"),
                        "imports": {"ms": 210.0, "modules": 480, "by_package_ms": {"botocore": 60.0, "click": 9.0}},
                    },
                    "deployer": {
                        **tool(
                            1000.0, {"ECS": ours, "Application Auto Scaling": ["DescribeScalableTargets"]}, "ACTIVE"
                        ),
                        "imports": {"ms": 150.0, "modules": 370, "by_package_ms": {"botocore": 60.0}},
                    },
                },
                "with_teardown": {
                    "n": 7,
                    "median_ms": 1100.0,
                    "own_ms": 1080.0,
                    "cpu_ms": 990.0,
                    "exit_codes": [0],
                    "ratio": 1.375,
                    "cpu_ratio": 1.375,
                },
                "comparison": {
                    "stored": [{"path": "tags", "a": [aws_tag, team], "b": [team]}],
                    "sent": [{"path": "tags", "a": [aws_tag, team], "b": [team]}],
                    "sent_vs_source_ecs-deploy": [],
                    "image_ecs-deploy": "registry/shop/web:1.42.0",
                    "sent_vs_source_deployer": [{"path": "tags", "a": [aws_tag, team], "b": [team]}],
                    "image_deployer": "registry/shop/web:1.42.0",
                    "moto_dropped": [{"path": "enableFaultInjection", "a": False, "b": None}],
                },
            }
        ],
    }


def imports_result() -> dict[str, Any]:
    def row(name: str, shipped_ms: float) -> dict[str, Any]:
        return {
            "function": name,
            "module": "app",
            "shipped_ms": shipped_ms,
            "uncompiled_ms": shipped_ms * 3,
            "modules": 650,
            "imports_boto3": True,
            "compiled_from_source": 0,
            "shipped_ratio": shipped_ms / 150.0,
            "uncompiled_ratio": shipped_ms * 3 / 600.0,
            "shipped_vs_uncompiled": 1 / 3,
            "by_package_ms": {"deployer": 120.0},
            "by_module_ms": {"app": 80.0},
            "traced_total_ms": 500.0,
            "meets_target": shipped_ms / 150.0 <= 1.5,
            "contributors": {
                "total_ms": 500.0,
                "own_ms": 80.0,
                "imports": [
                    {
                        "module": "aws_lambda_powertools.utilities.idempotency",
                        "ms": 190.0,
                        "inside": [
                            {"module": "aws_lambda_powertools.utilities.idempotency.persistence.dynamodb", "ms": 182.0}
                        ],
                        "packages": [{"module": "boto3", "ms": 181.7, "via": "…persistence.dynamodb"}],
                    },
                    {
                        "module": "deployer.flow",
                        "ms": 139.0,
                        "inside": [{"module": "deployer.events", "ms": 96.5}],
                        "packages": [],
                    },
                ],
            },
        }

    return {
        "n": 10,
        "n_requested": 10,
        "n_uncompiled": 2,
        "n_uncompiled_requested": 2,
        "target_ratio": 1.5,
        "build": ".aws-sam/build",
        "built_at": "2026-12-04 14:37 UTC",
        "shipped_pyc": 983,
        "host": "x86_64",
        "native_overlay": [{"package": "wrapt", "distribution": "wrapt", "version": "2.5.2", "from": "/venv"}],
        "env": ["LAMBDA_TASK_ROOT", "_HANDLER"],
        "tracing": True,
        "baseline": {
            "shipped_ms": 150.0,
            "uncompiled_ms": 600.0,
            "modules": 387,
            "imports_boto3": True,
            "compiled_from_source": 0,
        },
        "functions": [row("OnPushFunction", 520.0), row("Tiny", 200.0)],
    }


def first_event_result() -> dict[str, Any]:
    def row(name: str, first_own: float, warm_wall: float, error: str | None = None) -> dict[str, Any]:
        ratio = first_own / warm_wall
        return {
            "function": name,
            "event": f"{name}'s event",
            "expected": "build_started",
            "init": {"import_ms": 280.0, "modules": 616, "aws_calls": 0, "aws_ms": 0.0},
            "segments": 12,
            "n_warm": 10,
            "outcomes": ["build_started"],
            "first": {
                "wall_ms": first_own + 70.0,
                "cpu_ms": first_own + 30.0,
                "aws_ms": 70.0,
                "aws_cpu_ms": 30.0,
                "aws_calls": 16,
                "own_ms": first_own,
                "own_cpu_ms": first_own,
                "imported": 20,
            },
            "first_imported_by_package": {"aws_lambda_powertools": 11, "boto3": 3},
            "warm": {
                "wall_ms": warm_wall,
                "aws_ms": warm_wall - 3.0,
                "aws_calls": 14,
                "own_ms": 3.0,
                "own_cpu_ms": 3.0,
                "imported": 0,
            },
            "ratio": ratio,
            "own_ratio": first_own / 3.0,
            "own_cpu_ratio": first_own / 3.0,
            "extra_ms": first_own - 3.0,
            "meets_target": ratio <= 1.3 and error is None,
            **({"error": error, "log": ["the last line"]} if error else {}),
        }

    return {
        "n_warm_requested": 10,
        "target_ratio": 1.3,
        "build": ".aws-sam/build",
        "built_at": "2026-12-04 14:37 UTC",
        "native_overlay": [],
        "server": "moto server",
        "functions": [row("OnPushFunction", 50.0, 46.0), row("OnBuildFunction", 150.0, 50.0, "outcomes superseded")],
    }


def test_the_report_renders_the_new_sections_from_their_results() -> None:
    # GIVEN small results of the new sections (and none of the older ones)
    results = {
        "imports": imports_result(),
        "sizes": sizes_result(),
        "calls": calls_result(),
        "latency": latency_result(),
        "storm": storm_result([]),
        "ecs_deploy": ecs_deploy_result(),
        "first_event": first_event_result(),
    }
    results["imports"]["floor"] = {
        "shipped_ms": 285.0,
        "uncompiled_ms": 855.0,
        "modules": 590,
        "compiled_from_source": 0,
        "shipped_ratio": 1.9,
        "uncompiled_ratio": 1.425,
    }
    # WHEN the report is rendered
    text = report.markdown(results, INFO)
    # THEN every section has its title, in order, and those not run say so
    titles = [f"## {title}" for title, _ in report.SECTIONS.values()]
    assert [text.index(title) for title in titles] == sorted(text.index(title) for title in titles)
    assert text.count("Not measured in this run.") == 1  # startup
    # AND the cold imports give each function's ratio to `import boto3` with the shipped bytecode,
    # the target's verdict, and the imports that cost the most
    assert "| OnPushFunction (`app`) | 520.0 | **3.47×** | **not met** | 1,560.0 | 2.60× | 0.33× | 650 | 0 |" in text
    assert "| Tiny (`app`) | 200.0 | **1.33×** | met |" in text
    assert "**Target ≤ 1.5× `import boto3`: not met** by 1 of 2 functions (3.47× to 3.47×); met by Tiny." in text
    assert "`aws_lambda_powertools.utilities.idempotency` 190.0 (" in text
    assert "pulls in `boto3` 181.7" in text
    assert "Powertools' tracer is on" in text
    # AND the floor under them: Powertools and pydantic alone, and the verdict says the target is below it
    assert (
        "| Powertools (Logger, Metrics, Tracer, idempotency on DynamoDB) and pydantic alone, no deployer code | 285.0 "
        "| 1.90× |  | 855.0 | 1.43× | 0.33× | 590 | 0 |" in text
    )
    assert "already takes 1.90× `import boto3` (the second row): the target is below that floor" in text
    # AND each function's first event, less its AWS calls, against a warm event, with the verdict
    assert (
        "| OnPushFunction | 280.0 | 120.0 | 70.0 (16) | 50.0 | 46.0 | 43.0 (14) | **1.09×** | met | 3.0 (16.67×) |"
        in text
    )
    assert (
        "| OnBuildFunction | 280.0 | 220.0 | 70.0 (16) | 150.0 | 50.0 | 47.0 (14) | **3.00×** | **not met** |" in text
    )
    assert "≤ 1.3× a warm event: not met** by OnBuildFunction." in text
    assert "- **OnBuildFunction: outcomes superseded** (its last log line: `the last line`)" in text
    assert "OnPushFunction 20 (aws_lambda_powertools 11, boto3 3)" in text
    # AND the sizes name the packages, with and without their bytecode, and the note says Powertools
    # is bundled, with its measured size
    assert (
        "| DeployerLayer (layer) | 4020 (978 .pyc) | 51.34 MB | 26.86 MB | 40.06 MB | 21.98 MB | +28% / +22% |" in text
    )
    assert "| OnPushFunction (function) | 2 (1 .pyc) | 2.9 kB | 1.8 kB | 1.1 kB | 0.6 kB |" in text
    assert "The bytecode costs the layer 11.28 MB unzipped and 4.88 MB zipped" in text
    assert "| aws-lambda-powertools | 3.37.0 | 3.55 | 2.13 | 1.00 |" in text
    assert "Powertools is bundled in the project's own layer" in text
    assert "**3.55 MB unzipped (1.00 MB zipped), 9% of the layer**" in text
    assert "ContinueServiceDeployment" in text
    # AND the calls are counted per service, with the operations in call order
    assert "| event | outcome | DynamoDB | ECS | Application Auto Scaling | Secrets Manager |" in text
    assert "| on_build: success | deploying | 3 (1 config) | 4 | 1 |  | **8** | 0 | no |" in text
    assert "| on_deployment: dev COMPLETED | Secrets Manager | GetSecretValue |" in text
    assert "| on_deployment: IN_PROGRESS | none | no AWS call |" in text
    # AND on_deployment has its latency row, and a short sample is called short
    assert "| `flow.on_deployment` (deployed, then awaiting_approval 140) | 140 | 230.0 | 345.0 |" in text
    assert "**Fewer than asked** for on_deployment" in text
    assert "Where `on_deployment`'s time goes: DynamoDB Query 115.0 ms per event (1 call(s), median 115.0 ms)." in text
    # AND the storm gives its rate and seed
    assert "| invocations per second (a trend: mostly moto's DynamoDB) | 20.4 |" in text
    assert "| function | flow runs | own CPU median ms | p95 ms | mean ms | CPU in AWS calls | DynamoDB calls |" in text
    assert "| OnBuildFunction | 637 | **8.0** | 16.0 | 9.6 | 90% | 7.5 | 3 | 10.5 |" in text
    assert "| **every flow run** | 1,237 | **6.5** |" in text
    assert "`STORM_SEED=4242` replays it" in text
    assert "every invariant held" in text
    # AND the side by side gives the ratio, the ECS calls by operation and every difference
    assert "| fargate-web | deployer | 7 | 1,000.0 | **1.25×** | 20.0 | 980.0 | 900.0 | 1.25× | 4 |" in text
    assert "| fargate-web | deployer, with Python's teardown | 7 | 1,100.0 | 1.38× |" in text
    assert "**Target ≤ 0.8× ecs-deploy's wall time: not met** (fargate-web 1.25×)." in text
    assert "ecs-deploy imports 480 modules in 210.0 ms (`botocore` 60.0, `click` 9.0)" in text
    assert "`.venv-cli`: botocore 1.43.127" in text
    assert "| DeregisterTaskDefinition | 1 | 0 |" in text
    assert "| DescribeServices | 2 | 1 |" in text
    assert "identical apart from the image: **no**" in text
    assert "as stored (DescribeTaskDefinition with tags): 1 difference(s) beyond the image:" in text
    assert '`tags`: ecs-deploy `[{"key":"aws:cloudformation:stack-name"' in text
    assert "ecs-deploy leaves it INACTIVE, deployer leaves it ACTIVE" in text
    assert "`enableFaultInjection`" in text
    # AND the console summary has a line for each
    summary = "\n".join(report.summary(results))
    assert "Powertools (bundled) 3.55 MB" in summary
    assert (
        "storm 20 pipelines x 500 pushes (seed 4242): deployer's own CPU 6.5 ms per flow run (median), "
        "9.8 AWS calls per run; 20.4 invocations/s over 80 s (trend)"
    ) in summary
    assert "fargate-web: deployer deploy 1,000.0 ms vs ecs deploy 800.0 ms = 1.25× (target ≤ 0.8×: NOT MET)" in summary
    assert "cold import OnPushFunction: 3.47× import boto3 (520.0 vs 150.0 ms, target ≤ 1.5×: NOT MET)" in summary
    assert "on_deployment latency: median 230.0 ms" in summary


def test_broken_storm_invariants_are_all_printed_and_counted() -> None:
    # GIVEN a storm that broke two invariants, one of them twice
    broken = [
        "[one-update] 2 UpdateService for app03@abc prod (steps [10, 12])",
        "[one-update] 2 UpdateService for app07@def dev (steps [40, 41])",
        "[stuck] app11@0a1 is DEPLOYING (prod): x|y <z>",
    ]
    # WHEN only the storm section is rendered
    text = report.markdown({"storm": storm_result(broken)}, INFO, sections=["storm"])
    # THEN each violation is printed, grouped counts first, table characters escaped
    assert "**3 violation(s) of 2 invariant(s)** (one-update 2, stuck 1)" in text
    for line in broken[:2]:
        assert f"- {line}" in text
    assert "- [stuck] app11@0a1 is DEPLOYING (prod): x\\|y &lt;z>" in text
    assert "every invariant held" not in text
    # AND no other section appears
    assert "## 7." not in text
    assert "3 VIOLATIONS" in "\n".join(report.summary({"storm": storm_result(broken)}))


def test_a_skipped_side_by_side_says_why() -> None:
    # GIVEN a side by side that could not run (no .venv-ecs-deploy)
    skipped = {"skipped": ".venv-ecs-deploy/bin/ecs missing"}
    # WHEN it is rendered
    text = report.markdown({"ecs_deploy": skipped}, INFO, sections=["ecs_deploy"])
    # THEN it says why, and nothing else
    assert "Not measured" not in text
    assert "Skipped: .venv-ecs-deploy/bin/ecs missing." in text


def test_a_side_by_side_where_the_deployer_failed_is_not_measured_not_met() -> None:
    # GIVEN a run whose deployer exited 1 every time (a failed deploy is quick: last session's bench
    # read 0.19x from a deploy that died importing pydantic)
    result = ecs_deploy_result()
    scenario = result["scenarios"][0]
    scenario["tools"]["deployer"]["exit_codes"] = [1]
    scenario["ratio"] = scenario["cpu_ratio"] = None
    # WHEN it is rendered
    text = report.markdown({"ecs_deploy": result}, INFO, sections=["ecs_deploy"])
    # THEN the target is neither met nor missed: not measured, naming the tool that failed
    assert (
        "**Target ≤ 0.8× ecs-deploy's wall time: not measured: a tool failed** (fargate-web deployer exited [1])."
        in text
    )
    assert ": met**" not in text


def test_the_ratio_of_a_failed_run_is_none() -> None:
    # GIVEN two tools' figures, one of which failed
    from bench.ecs_deploy import _ratio_of

    ok = {"exit_codes": [0], "median_ms": 100.0}
    failed = {"exit_codes": [0, 1], "median_ms": 20.0}
    # THEN only two successful runs have a ratio
    assert _ratio_of(ok, ok, "median_ms") == 1.0
    assert _ratio_of(failed, ok, "median_ms") is None
    assert _ratio_of(ok, failed, "median_ms") is None


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({"x": 1}, {"x": 1}, []),
        ({"x": 1, "y": 2}, {"x": 1}, [{"path": "y", "a": 2, "b": None}]),
        ({"x": 1}, {"x": 1, "ipcMode": "task"}, [{"path": "ipcMode", "a": None, "b": "task"}]),
        (
            {"c": [{"image": "a"}, {"image": "b"}]},
            {"c": [{"image": "a"}, {"image": "c"}]},
            [{"path": "c[1].image", "a": "b", "b": "c"}],
        ),
        ({"tags": [1, 2]}, {"tags": [1]}, [{"path": "tags", "a": [1, 2], "b": [1]}]),
    ],
)
def test_differences_name_every_path_that_differs(a: Any, b: Any, expected: list[dict[str, Any]]) -> None:
    assert differences(a, b) == expected


def test_a_section_measured_alone_replaces_its_own_in_the_report_and_keeps_the_others() -> None:
    # GIVEN a report written whole, and the storm measured again alone
    whole = report.markdown({"storm": storm_result([]), "calls": calls_result()}, {**INFO, "date": "2026-11-29"})
    again = report.markdown(
        {"storm": {**storm_result([]), "events_per_second": 99.5}},
        {**INFO, "date": "2026-12-04", "commit": "def5678"},
        sections=["storm"],
    )
    # WHEN it is merged into the report
    merged = report.merge(whole, again)
    # THEN the storm is the new one, said to be measured then, and the other sections are as they were
    storm = merged[merged.index("## 6.") : merged.index("## 7.")]
    assert "| invocations per second (a trend: mostly moto's DynamoDB) | 99.5 |" in storm
    assert "*Measured 2026-12-04 at commit def5678" in storm
    calls = merged[merged.index("## 4.") : merged.index("## 5.")]
    assert calls == whole[whole.index("## 4.") : whole.index("## 5.")]
    assert merged.count("## ") == len(report.SECTIONS)
    assert "| last run: section 6 (the others say when) |  |" in merged


def test_sections_of_a_report_from_before_section_dates_get_the_reports_date() -> None:
    old = "# Benchmarks\n\n| run |  |\n|---|---|\n| date | 2026-11-29 15:37 UTC |\n| commit | 5ab16db |\n\n"
    old += "## 1. `deployer plan` start-up\n\nWhole-process wall time.\n"
    fresh = report.markdown({"storm": storm_result([])}, INFO, sections=["storm"])
    merged = report.merge(old, fresh)
    assert (
        "## 1. `deployer plan` start-up\n\n*Measured 2026-11-29 15:37 UTC at commit 5ab16db.*\n\nWhole-process"
        in merged
    )


def test_contributors_name_who_pulls_what_into_a_handlers_import() -> None:
    from bench.cold_import import contributors

    # GIVEN `-X importtime` output (a module is listed after what it imported, two spaces deeper)
    importtime = "\n".join(
        [
            "import time: self [us] | cumulative | imported package",
            "import time:      1000 |       1000 |         botocore",
            "import time:      2000 |       3000 |       boto3",
            "import time:       500 |       3500 |     aws_lambda_powertools.utilities.idempotency.persistence",
            "import time:       100 |       3600 |   aws_lambda_powertools.utilities.idempotency",
            "import time:      6000 |       6000 |       pydantic",
            "import time:      2000 |       8000 |     deployer.events",
            "import time:      1000 |       1000 |     deployer.pipelines",
            "import time:       500 |       9500 |   deployer.flow",
            "import time:        50 |         50 |   typing",
            "import time:     80000 |      93150 | app",
        ]
    )
    # WHEN the handler's contributors are read
    found = contributors(importtime, "app", least_ms=1.0)
    # THEN its own top level, then its imports, heaviest first, with what is inside each
    assert found["total_ms"] == 93.2
    assert found["own_ms"] == 80.0
    assert [(i["module"], i["ms"]) for i in found["imports"]] == [
        ("deployer.flow", 9.5),
        ("aws_lambda_powertools.utilities.idempotency", 3.6),
    ]
    flow, idempotency = found["imports"]
    assert flow["inside"] == [{"module": "deployer.events", "ms": 8.0}, {"module": "deployer.pipelines", "ms": 1.0}]
    assert flow["packages"] == [{"module": "pydantic", "ms": 6.0, "via": "deployer.events"}]
    # AND another package's import is named once, where it enters (boto3, not botocore inside it)
    assert idempotency["packages"] == [
        {"module": "boto3", "ms": 3.0, "via": "aws_lambda_powertools.utilities.idempotency.persistence"}
    ]
