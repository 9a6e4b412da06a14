"""Side by side with ecs-deploy (PyPI `ecs-deploy`, in its own venv `.venv-ecs-deploy`): on one
moto server over HTTP, the same service deploys a new image through each tool, as whole
processes, each from a venv holding only what it needs (the deployer's `.venv-cli`: botocore and
the deployer package):

    ecs deploy CLUSTER SERVICE --image CONTAINER URI --timeout -1
    deployer deploy --cluster CLUSTER --service SERVICE --container CONTAINER --image URI

Before every run the server is reset and the same cluster, service and task definition are
created again (untimed), so both tools always start from the very same state. Each run is timed
whole (wall), with the child's CPU time (user + system) and the time the server spent answering
its requests (moto's work): wall minus that is the tool's own time. One `-X importtime` run of
each says how much of it is imports. The server counts
every request it answers (a WSGI middleware in front of moto: `bench.common.RequestLog`), the same
way for both processes, and keeps the bodies of the JSON requests, so the comparison covers what
each tool *sent* (RegisterTaskDefinition, UpdateService) as well as what ECS (moto) stored.

Two task definitions, from the tests' realistic DescribeTaskDefinition responses
(`tests.support.taskdefs`): a Fargate web service (three containers, secrets from Secrets
Manager and SSM, environment files, FireLens and awslogs, health checks, dependsOn, EFS,
`pidMode`, `ephemeralStorage`, `runtimePlatform`, `enableFaultInjection`, tags including a
CloudFormation `aws:` one) and an EC2 worker in an App Mesh (`ipcMode`, `pidMode`,
`proxyConfiguration`, placement constraints, docker labels, system controls, an `aws:` Service
Catalog tag). moto accepts the `aws:` tags at creation, as if CloudFormation or Service Catalog
had set them; ECS itself refuses them in a RegisterTaskDefinition (REFERENCE.md).
"""

from __future__ import annotations

import json
import resource
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import FAKE_CREDENTIALS, REPO_ROOT, RequestLog, fake_aws, median, moto_server, ratio, reset_moto

ECS_DEPLOY_VENV = REPO_ROOT / ".venv-ecs-deploy"
ECS_DEPLOY = ECS_DEPLOY_VENV / "bin" / "ecs"
# `deployer deploy` from a venv holding only what it imports (botocore) and the deployer package,
# as ecs-deploy runs from one holding only its requirements (`make bench` builds both).
CLI_VENV = REPO_ROOT / ".venv-cli"
DEPLOYER = CLI_VENV / "bin" / "deployer"
TOOLS = ("ecs-deploy", "deployer")
# The deployer's same command through `main` in a plain interpreter, which tears itself down at
# exit as any Python process does, where the console script skips that (deployer_cli.console):
# timed beside the two tools, so the report shows what the skipped teardown is worth.
WITH_TEARDOWN = "deployer, with teardown"
_MAIN = "import sys; from deployer_cli import main; sys.exit(main(sys.argv[1:]))"
TARGET_RATIO = 0.8  # the deployer's wall time against ecs-deploy's (issue 13)
N = 7
WARM_UP = 1

# What DescribeTaskDefinition answers beyond the definition itself (the bench's own list, so the
# comparison does not lean on the deployer's `READ_ONLY_KEYS`).
DESCRIBED_ONLY = frozenset(
    {
        "taskDefinitionArn",
        "revision",
        "status",
        "requiresAttributes",
        "compatibilities",
        "registeredAt",
        "registeredBy",
        "deregisteredAt",
        "deleteRequestedAt",
    }
)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    cluster: str
    service: str
    container: str
    new_image: str
    launch_type: str
    registration: dict[str, Any]  # the RegisterTaskDefinition request of the running revision


def scenarios() -> list[Scenario]:
    from tests.support import taskdefs

    def registration(described: Mapping[str, Any]) -> dict[str, Any]:
        request = {k: v for k, v in described["taskDefinition"].items() if k not in DESCRIBED_ONLY}
        request["tags"] = list(described["tags"])
        return request

    return [
        Scenario(
            "fargate-web",
            "Fargate web service: 3 containers, secrets, env files, FireLens, EFS, pidMode, ephemeralStorage, "
            "runtimePlatform, enableFaultInjection, 3 tags (1 `aws:`)",
            "shop",
            "web",
            "web",
            f"{taskdefs.REGISTRY}/shop/web:1.42.0",
            "FARGATE",
            registration(taskdefs.fargate_web_response()),
        ),
        Scenario(
            "ec2-worker",
            "EC2 worker in App Mesh: 2 containers, ipcMode, pidMode, proxyConfiguration, placementConstraints, "
            "docker labels, systemControls, 2 tags (1 `aws:`)",
            "shop",
            "worker",
            "worker",
            f"{taskdefs.REGISTRY}/shop/worker:2.8.0",
            "EC2",
            registration(taskdefs.ec2_worker_response()),
        ),
    ]


# -- the world ------------------------------------------------------------------------------------


def provision(scenario: Scenario) -> str:
    """The cluster, the running revision and the service (desired 4); returns the revision's ARN."""
    import boto3

    ec2 = boto3.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="svc", Description="service tasks", VpcId=vpc)["GroupId"]
    ecs = boto3.client("ecs")
    ecs.create_cluster(clusterName=scenario.cluster)
    arn = str(ecs.register_task_definition(**scenario.registration)["taskDefinition"]["taskDefinitionArn"])
    ecs.create_service(
        cluster=scenario.cluster,
        serviceName=scenario.service,
        taskDefinition=arn,
        desiredCount=4,
        launchType=scenario.launch_type,
        networkConfiguration={
            "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}
        },
    )
    return arn


def command(tool: str, scenario: Scenario) -> list[str]:
    if tool == WITH_TEARDOWN:
        return [str(CLI_VENV / "bin" / "python"), "-c", _MAIN, *command("deployer", scenario)[1:]]
    if tool == "ecs-deploy":
        return [
            str(ECS_DEPLOY),
            "deploy",
            scenario.cluster,
            scenario.service,
            "--image",
            scenario.container,
            scenario.new_image,
            "--timeout",
            "-1",
        ]
    return [
        str(DEPLOYER),
        "deploy",
        "--cluster",
        scenario.cluster,
        "--service",
        scenario.service,
        "--container",
        scenario.container,
        "--image",
        scenario.new_image,
    ]


def shown(argv: Sequence[str]) -> str:
    return " ".join([Path(argv[0]).name, *argv[1:]])


def _environment(url: str, home: Path) -> dict[str, str]:
    """Fake credentials, the server's URL and nothing of the caller's AWS configuration; the
    bytecode of both tools lives under `home` (written by the warm-up run)."""
    return {
        **FAKE_CREDENTIALS,
        "AWS_ENDPOINT_URL": url,
        "AWS_CONFIG_FILE": str(home / "aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(home / "aws-credentials"),
        "HOME": str(home),
        "PATH": "/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "PYTHONPYCACHEPREFIX": str(home / "pycache"),
        "MOTO_EC2_LOAD_DEFAULT_AMIS": "false",
    }


def _run(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path
) -> tuple[float, float, subprocess.CompletedProcess[str]]:
    """Wall time and CPU time (user + system, of the child process) in ms, and what it printed."""
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(  # noqa: S603 - the two tools' own console scripts
        list(argv), env=dict(env), cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    wall = (time.perf_counter() - started) * 1000
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime + cpu_after.ru_stime - cpu_before.ru_stime) * 1000
    return wall, cpu, done


def _imports(argv: Sequence[str], env: Mapping[str, str], cwd: Path) -> dict[str, Any]:
    """One run under `python -X importtime`: how long the process spends importing, by package."""
    from bench.cold_import import _by_package

    python = str(Path(argv[0]).parent / "python")
    done = subprocess.run(  # noqa: S603 - the tool's own interpreter and console script
        [python, "-X", "importtime", *argv], env=dict(env), cwd=cwd, capture_output=True, text=True, check=False
    )
    packages = _by_package(done.stderr)
    return {
        "ms": sum(packages.values()),
        "modules": sum(1 for line in done.stderr.splitlines() if line.startswith("import time:")) - 1,
        "by_package_ms": dict(list(packages.items())[:6]),
    }


# -- what a run did -------------------------------------------------------------------------------


def _calls(requests: Sequence[Any]) -> dict[str, list[str]]:
    by_service: dict[str, list[str]] = {}
    for request in requests:
        by_service.setdefault(_service_name(request.service), []).append(request.operation)
    return by_service


def _service_name(signing_name: str) -> str:
    return {"ecs": "ECS", "application-autoscaling": "Application Auto Scaling", "sts": "STS"}.get(
        signing_name, signing_name
    )


def _sent(requests: Sequence[Any], operation: str) -> dict[str, Any] | None:
    for request in requests:
        if request.operation == operation and request.body:
            return dict(json.loads(request.body))
    return None


def described_definition(arn: str) -> dict[str, Any]:
    """DescribeTaskDefinition(include=TAGS) of `arn` as a registration: without what only
    describing adds, the tags inside, JSON types only."""
    import boto3

    described = boto3.client("ecs").describe_task_definition(taskDefinition=arn, include=["TAGS"])
    definition = {k: v for k, v in described["taskDefinition"].items() if k not in DESCRIBED_ONLY}
    if described.get("tags"):
        definition["tags"] = described["tags"]
    return _normalised(definition)


def _registered(scenario: Scenario, running: str) -> dict[str, Any]:
    """The service's task definition after the run, and whether the revision it replaced is
    still ACTIVE."""
    import boto3

    ecs = boto3.client("ecs")
    service = ecs.describe_services(cluster=scenario.cluster, services=[scenario.service])["services"][0]
    arn = service["taskDefinition"]
    old = ecs.describe_task_definition(taskDefinition=running)["taskDefinition"]
    return {
        "arn": arn,
        "definition": described_definition(arn),
        "previous_status": old.get("status"),
        "deployments": len(service.get("deployments", [])),
    }


# -- differences ----------------------------------------------------------------------------------


def differences(a: Any, b: Any, path: str = "") -> list[dict[str, Any]]:
    """Every place where `a` and `b` differ, as JSON paths with both values (None: absent)."""
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        found = []
        for key in list(a) + [k for k in b if k not in a]:
            where = f"{path}.{key}" if path else str(key)
            if key not in b:
                found.append({"path": where, "a": a[key], "b": None})
            elif key not in a:
                found.append({"path": where, "a": None, "b": b[key]})
            else:
                found += differences(a[key], b[key], where)
        return found
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for index, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}[{index}]")]
    return [] if a == b else [{"path": path or "(whole)", "a": a, "b": b}]


def _image_paths(definition: Mapping[str, Any], container: str) -> set[str]:
    return {
        f"containerDefinitions[{index}].image"
        for index, c in enumerate(definition.get("containerDefinitions", []))
        if c.get("name") == container
    }


def _beyond_image(a: Mapping[str, Any], b: Mapping[str, Any], container: str) -> list[dict[str, Any]]:
    skip = _image_paths(a, container) | _image_paths(b, container)
    return [d for d in differences(a, b) if d["path"] not in skip]


def _normalised(definition: Mapping[str, Any] | None) -> dict[str, Any]:
    return json.loads(json.dumps(definition or {}, default=str))


# -- the benchmark --------------------------------------------------------------------------------


def side_by_side(n: int = N, budget_s: float = 240.0) -> dict[str, Any]:
    """n timed runs of each tool per scenario (after WARM_UP untimed ones), interleaved and
    alternating which goes first; the calls, requests and registered revisions of the first
    timed run of each, and their differences."""
    missing = [str(p.relative_to(REPO_ROOT)) for p in (ECS_DEPLOY, DEPLOYER) if not p.is_file()]
    if missing:
        return {"skipped": f"{', '.join(missing)} missing: run make bench (it builds .venv-ecs-deploy)"}
    started = time.monotonic()
    versions = {
        "ecs-deploy": _version(ECS_DEPLOY_VENV / "bin" / "python", "ecs-deploy"),
        "deployer": _version(DEPLOYER.parent / "python", "ecs-deployer"),
        "ecs-deploy's boto3": _version(ECS_DEPLOY_VENV / "bin" / "python", "boto3"),
        "ecs-deploy's botocore": _version(ECS_DEPLOY_VENV / "bin" / "python", "botocore"),
        "deployer's botocore": _version(DEPLOYER.parent / "python", "botocore"),
    }
    packages = {venv.name: _distributions(venv / "bin" / "python") for venv in (ECS_DEPLOY_VENV, CLI_VENV)}
    log = RequestLog()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ecs-deploy-") as tmp, moto_server(log) as url, fake_aws(url):
        home = Path(tmp)
        env = _environment(url, home)
        for scenario in scenarios():
            runs: dict[str, list[dict[str, Any]]] = {tool: [] for tool in (*TOOLS, WITH_TEARDOWN)}
            source: dict[str, Any] | None = None
            rounds = 0
            for index in range(WARM_UP + n):
                if index >= WARM_UP + 3 and time.monotonic() > started + budget_s * (len(results) + 1) / 2:
                    break
                rounds += 1
                order = (*TOOLS, WITH_TEARDOWN) if index % 2 == 0 else (WITH_TEARDOWN, *TOOLS[::-1])
                for tool in order:
                    reset_moto(url)
                    running = provision(scenario)
                    source = source or described_definition(running)
                    first = len(log.requests)
                    elapsed, cpu, done = _run(command(tool, scenario), env, home)
                    requests = log.requests[first:]
                    run = {
                        "ms": elapsed,
                        "cpu_ms": cpu,
                        "server_ms": sum(r.seconds for r in requests) * 1000,
                        "exit": done.returncode,
                        "calls": _calls(requests),
                        "user_agent": requests[0].user_agent.split(" ")[0] if requests else "",
                        "warm_up": index < WARM_UP,
                    }
                    if done.returncode != 0:
                        run["stderr"] = done.stderr.strip().splitlines()[-3:]
                    if len(runs[tool]) <= WARM_UP and tool in TOOLS:
                        # the requests and the registered revision of the warm-up and the first timed run
                        run["sent_register"] = _sent(requests, "RegisterTaskDefinition")
                        run["sent_update"] = _sent(requests, "UpdateService")
                        run["registered"] = _registered(scenario, running) if done.returncode == 0 else None
                    runs[tool].append(run)
            assert source is not None
            result = _scenario_result(scenario, runs, rounds - WARM_UP, source)
            if not results:  # where each process's time goes: imports, from one traced run of each
                for tool in TOOLS:
                    reset_moto(url)
                    provision(scenario)
                    result["tools"][tool]["imports"] = _imports(command(tool, scenario), env, home)
            results.append(result)
    return {
        "n_requested": n,
        "warm_up": WARM_UP,
        "server": "One moto server (werkzeug, threaded) in the bench process, HTTP on 127.0.0.1, reset and "
        "provisioned again before every run",
        "versions": versions,
        "venvs": packages,
        "target_ratio": TARGET_RATIO,
        "commands": {tool: shown(command(tool, scenarios()[0])) for tool in TOOLS},
        "scenarios": results,
    }


def _ratio_of(ours: Mapping[str, Any], theirs: Mapping[str, Any], key: str) -> float | None:
    """`ours[key] / theirs[key]`; None when either is missing or either tool failed (a failed
    deploy is quick, and its time says nothing of a deploy)."""
    if ours["exit_codes"] != [0] or theirs["exit_codes"] != [0]:
        return None
    return ratio(ours[key], theirs[key]) if ours[key] and theirs[key] else None


def _distributions(python: Path) -> list[str]:
    """What a venv holds, as `name version` (pip and the like left out)."""
    code = (
        "import importlib.metadata as m; "
        "print('\\n'.join(sorted(f\"{d.metadata['Name']} {d.version}\" for d in m.distributions())))"
    )
    done = subprocess.run(  # noqa: S603 - a venv's own interpreter
        [str(python), "-c", code], capture_output=True, text=True, check=False
    )
    return [line for line in done.stdout.splitlines() if line.split()[0].lower() not in {"pip", "setuptools"}]


def _version(python: Path, distribution: str) -> str:
    code = f"import importlib.metadata as m; print(m.version({distribution!r}))"
    done = subprocess.run(  # noqa: S603 - a venv's own interpreter
        [str(python), "-c", code], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "?"


def _scenario_result(
    scenario: Scenario, runs: dict[str, list[dict[str, Any]]], rounds: int, source: dict[str, Any]
) -> dict[str, Any]:
    """`source`: the running revision as the tools read it (moto's DescribeTaskDefinition)."""
    tools: dict[str, Any] = {}
    for tool in TOOLS:
        timed = [r for r in runs[tool] if not r["warm_up"]]
        shape = [r for r in runs[tool] if "registered" in r][-1]
        call_shapes = Counter(json.dumps(r["calls"], sort_keys=True) for r in timed)
        tools[tool] = {
            "command": shown(command(tool, scenario)),
            "n": len(timed),
            "median_ms": median([r["ms"] for r in timed]) if timed else None,
            "min_ms": min((r["ms"] for r in timed), default=None),
            "server_ms": median([r["server_ms"] for r in timed]) if timed else None,
            "own_ms": median([r["ms"] - r["server_ms"] for r in timed]) if timed else None,
            "cpu_ms": median([r["cpu_ms"] for r in timed]) if timed else None,
            "exit_codes": sorted({r["exit"] for r in runs[tool]}),
            "stderr": next((r["stderr"] for r in runs[tool] if "stderr" in r), None),
            "calls": shape["calls"],
            "same_calls_every_run": len(call_shapes) <= 1,
            "ecs_calls": sum(len(ops) for service, ops in shape["calls"].items() if service == "ECS"),
            "total_calls": sum(len(ops) for ops in shape["calls"].values()),
            "desired_count_sent": bool(shape["sent_update"] and "desiredCount" in shape["sent_update"]),
            "previous_revision": (shape["registered"] or {}).get("previous_status"),
            "registered": shape["registered"],
            "sent_register": shape["sent_register"],
        }
    ecs_deploy, deployer = tools["ecs-deploy"], tools["deployer"]
    timed = [r for r in runs[WITH_TEARDOWN] if not r["warm_up"]]
    teardown = {
        "n": len(timed),
        "median_ms": median([r["ms"] for r in timed]) if timed else None,
        "own_ms": median([r["ms"] - r["server_ms"] for r in timed]) if timed else None,
        "cpu_ms": median([r["cpu_ms"] for r in timed]) if timed else None,
        "exit_codes": sorted({r["exit"] for r in runs[WITH_TEARDOWN]}),
    }
    teardown["ratio"] = _ratio_of(teardown, ecs_deploy, "median_ms")
    teardown["cpu_ratio"] = _ratio_of(teardown, ecs_deploy, "cpu_ms")
    stored = {
        tool: _normalised((tools[tool]["registered"] or {}).get("definition")) if tools[tool]["registered"] else None
        for tool in TOOLS
    }
    sent = {tool: _normalised(tools[tool]["sent_register"]) if tools[tool]["sent_register"] else None for tool in TOOLS}
    comparison: dict[str, Any] = {}
    if stored["ecs-deploy"] is not None and stored["deployer"] is not None:
        comparison["stored"] = _beyond_image(stored["ecs-deploy"], stored["deployer"], scenario.container)
    if sent["ecs-deploy"] is not None and sent["deployer"] is not None:
        comparison["sent"] = _beyond_image(sent["ecs-deploy"], sent["deployer"], scenario.container)
    for tool in TOOLS:
        if sent[tool] is not None:
            comparison[f"sent_vs_source_{tool}"] = _beyond_image(source, sent[tool], scenario.container)
            images = [
                c.get("image")
                for c in sent[tool].get("containerDefinitions", [])
                if c.get("name") == scenario.container
            ]
            comparison[f"image_{tool}"] = images[0] if images else None
    # What moto did not keep of the revision it was given, so neither tool could see it.
    comparison["moto_dropped"] = differences(_normalised(scenario.registration), source)
    return {
        "scenario": scenario.name,
        "description": scenario.description,
        "new_image": scenario.new_image,
        "container": scenario.container,
        "rounds": rounds,
        "tools": tools,
        "with_teardown": teardown,
        "ratio": _ratio_of(deployer, ecs_deploy, "median_ms"),
        "own_ratio": _ratio_of(deployer, ecs_deploy, "own_ms"),
        "cpu_ratio": _ratio_of(deployer, ecs_deploy, "cpu_ms"),
        "identical_apart_from_image": bool(comparison.get("stored") == [] and comparison.get("sent") == []),
        "comparison": comparison,
    }


if __name__ == "__main__":
    print(json.dumps(side_by_side(n=2), indent=2, default=str))
