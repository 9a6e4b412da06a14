"""A storm of EventBridge events against the whole flow, in process, and the invariants it must
keep (docs/design.md, invariants 1-3).

The world. `provision_storm_world` creates, in whatever AWS the clients point at (moto in
process here), one CodeCommit repository, CodeBuild project and ECR repository per pipeline and
two ECS services (dev, prod) whose task definition families are `<pipeline>-<stage>`, and
publishes all pipelines as one configuration. Some prod stages need an approval; dev rolls back
on failure (circuit breaker with rollback), prod has a breaker without rollback or none at all.

The delivery. Events go through the template's own rules (`deployer_local.router.Router`), to
in-process workers that parse the event and call the flow (`on_push`, `on_build`,
`on_deployment`, `on_approval`) with dependencies wired as `deployer.runtime.deps()` wires them.
Each worker first looks the event id up, as Powertools idempotency does in production: an id it
has answered is answered again from the cache, without running the flow.

The storm. A scheduler keeps a pool of pending events. Pushes enter it in push order (several
per branch in quick succession, at most two in one second, chained by oldCommitId) while earlier
events are still pending; each step delivers a random pending event, one to three times: again
at once or later, and either with the same id (EventBridge redelivers: the id is kept, so the
idempotency cache answers) or with a new id (the source emits again: only idempotency by meaning
protects the flow). A delivery that fails is retried twice with the same id, then dead-lettered.

AWS reacts as AWS would. A StartBuild yields its "Build State Change" (some builds fail; a few
are also retried by hand in the console, a build the deployer did not start); an UpdateService
yields ECS's deployment events for that deployment (some fail; on dev the circuit breaker rolls
the service back, which is a deployment of its own); a release waiting for an approval yields
a human's click on its link (mostly approve, some reject, a few never, sometimes twice), which
decides the approval (`Approvals.decide`) and puts "Approval Decided" on the deployer's bus.
Two things moto does not do are done here: a new deployment id per UpdateService (moto keeps the
service's first one unless forceNewDeployment, which the storm adds to the request) and the
rollback of a failed deployment.

The invariants (`check_invariants`) are read from the AWS calls the deployer made (botocore
hooks on its clients record StartBuild, RegisterTaskDefinition and UpdateService with their
parameters and answers), from the release table and from the services' final state: one build
per (pipeline, commit); one revision and one UpdateService per (release, stage), each revision
carrying its stage's deploy-time settings (environment and secrets); one deployment
per service at a time; a service's releases in push order, ending on the newest that reached it;
prod only after an approval; every push recorded and the newest one of each branch never
superseded; every release terminal or waiting for a decision nobody made, no lock left; no error.
Old revisions (`keepRevisions`: 1 on odd pipelines, the default 10 on the others): every
DeregisterTaskDefinition names a revision the deployer registered in the storm, never one ECS
rolls a service back to, and at the end every revision a service runs or a stage can roll back to
is ACTIVE, and each family keeps at least the newest `keepRevisions` revisions its stages ran.
`RECORD_CHECKS` (what a stage record says about a rollback) are reported apart.

Stages of several services (`duos`): pairs of pipelines whose dev stage deploys two services, its
own and one it shares with the other pipeline of the pair, listed in opposite orders (`[duo0,
shared0]` and `[shared0, duo1]`). A published file gives each service to one stage (the
cross-check), but a republished one can move services between pipelines while releases hold or wait
for their locks, so these storms use the configuration without its cross-checks (as such a
republish does) to make the two pipelines contend for the shared service's lock: a deadlock would
leave releases QUEUED for ever ("stuck"). ECS answers what moto lacks for them: ListServiceDeployments
and DescribeServiceDeployments (the service's deployment whose end has not been reported yet is in
flight) and StopServiceDeployment ROLLBACK (the deployment goes back to the service's stable revision
and reports nothing more); the deployer's own UpdateService putting a completed service back (no
`deploymentConfiguration`) is a rollback of that service's deployment.

Deliveries are sequential (one handler at a time): the storm tests ordering and duplicates, not
concurrent handlers, and injects no crash between two AWS calls of one handler.

Every run is reproducible from its seed (`STORM_SEED`); the seed is printed first and named in
every failure message, with the tail of the trace of the pipeline concerned.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import random
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import boto3
import yaml
from botocore.awsrequest import AWSResponse

from deployer.approvals import ApprovalRefused
from deployer.deps import Deps, build_deps
from deployer.errors import BadInput, ConfigError
from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.deployer_bus import ApprovalDecidedEvent, DecidedBy
from deployer.events.ecs import EcsDeploymentStateChangeEvent, EcsTaskStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.approval import on_approval
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment, on_task_stopped
from deployer.flow.push import on_push
from deployer.flow.rollback import rollback_target
from deployer.pipelines.loader import load_config_text
from deployer.pipelines.schema import PipelinesConfig
from deployer.pipelines.store import ConfigStore
from deployer.releases.model import ReleaseState, StageState, Transition, release_id_for
from deployer.releases.store import ReleaseStore
from deployer_local.ecs_tasks import Tasks
from deployer_local.localrun import InvokeResult
from deployer_local.provision import ACCOUNT, DeployerNames, provision_deployer, push_demo_image, web_task_definition
from deployer_local.router import Router, rules_from_template
from deployer_local.simulate import BeforeTaskSimulator
from tests.support.events import load_event
from tests.support.local_tasks import answered_by_tasks

__all__ = [
    "RECORD_CHECKS",
    "SEED_VARIABLE",
    "AwsCalls",
    "Odds",
    "Storm",
    "StormReport",
    "StormWorld",
    "Violation",
    "check_invariants",
    "plan_pushes",
    "provision_storm_world",
    "run_storm",
    "seed_from_env",
    "seeded_moto",
    "storm_pipelines_yaml",
]

SEED_VARIABLE = "STORM_SEED"
SERVICE_DEPLOYMENT_OPERATIONS = ("ListServiceDeployments", "DescribeServiceDeployments", "StopServiceDeployment")
REGION = "eu-west-1"
APPROVER = "U012ABCDEF"
SIGNING_KEY = b"storm-signing-key-of-at-least-32-bytes!!"
STAGES = ("dev", "prod")
KEEP_REVISIONS_ODD = 1  # the odd pipelines keep one revision per family: old ones go at every release
Breaker = Literal["rollback", "no-rollback", "none"]
RECORD_CHECKS = frozenset({"rollback-reported"})
"""Checks of what the release records say (a stage's `rolled_back`), beyond invariants 1-3."""


def seed_from_env(default: int | None = None) -> int:
    """`STORM_SEED` when set (to replay a run), else `default`, else a fresh random seed."""
    raw = os.environ.get(SEED_VARIABLE, "").strip()
    if raw:
        return int(raw)
    return default if default is not None else random.SystemRandom().randrange(1, 2**32)


@dataclass(frozen=True)
class Odds:
    """How often the world does what; the defaults make every path of the flow common."""

    build_fails: float = 0.08
    deployment_fails: float = 0.08
    approve: float = 0.8
    reject: float = 0.12  # the rest is never decided: the release stays AWAITING_APPROVAL
    same_second: float = 0.3  # a push in the same second as the previous one of its branch
    push_enters: float = 0.3  # per step, the next push enters the pool (else a pending event goes out)
    extra_deliveries: tuple[float, float, float] = (0.6, 0.25, 0.15)  # delivered 1, 2, 3 times
    duplicate_later: float = 0.5  # a duplicate goes back to the pool rather than out at once
    duplicate_new_id: float = 0.3  # a duplicate is a re-emission by the source (new event id)
    in_progress_events: float = 0.3  # the non-final build and deployment events, which change nothing
    double_click: float = 0.1  # the approver clicks twice: the second click is refused
    retried_builds: float = 0.03  # someone retries a deployer's build by hand (same overrides, new build)
    before_fails: float = 0.15  # a stage's before-task (a migration) exits 1: the release ends there


# -- the world ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StormService:
    pipeline: str
    stage: str
    cluster: str
    service: str
    family: str
    initial_task_definition: str
    approval: bool
    breaker: Breaker
    shared_with: tuple[str, ...] = ()  # other pipelines whose same stage deploys this service too
    before: bool = False  # runs a before-task (RunTask, then its STOPPED event) before UpdateService

    @property
    def key(self) -> tuple[str, str]:
        return self.cluster, self.service

    @property
    def owners(self) -> set[tuple[str, str]]:
        """(pipeline, stage) of every stage that deploys the service."""
        return {(self.pipeline, self.stage), *((p, self.stage) for p in self.shared_with)}

    @property
    def arn(self) -> str:
        return f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{self.cluster}/{self.service}"


@dataclass(frozen=True)
class StormPipeline:
    name: str
    repository: str
    branch: str
    project: str
    ecr_repository: str
    ecr_uri: str
    services: dict[str, StormService]  # by stage; a stage of two services also has "<stage>+"


@dataclass
class StormWorld:
    names: DeployerNames
    pipelines: dict[str, StormPipeline]
    yaml: str

    @property
    def services(self) -> dict[tuple[str, str], StormService]:
        return {svc.key: svc for p in self.pipelines.values() for svc in p.services.values()}

    def pipeline_of_project(self, project: str) -> StormPipeline:
        return next(p for p in self.pipelines.values() if p.project == project)


def provision_storm_world(
    count: int, rng: random.Random, session: Any, environment: str = "storm", duos: int = 0
) -> StormWorld:
    """The deployer's table and bus, `count` pipelines, and `duos` pairs of pipelines whose dev stage
    deploys two services, one of them shared within the pair (see the module's docstring)."""
    provision_deployer(DeployerNames(environment), session)
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="storm", Description="storm tasks", VpcId=vpc)["GroupId"]
    ecs = session.client("ecs")
    codecommit, codebuild, ecr = session.client("codecommit"), session.client("codebuild"), session.client("ecr")
    for stage in STAGES:
        ecs.create_cluster(clusterName=stage)
    pipelines = {}
    names = [(f"app{index:02d}", index) for index in range(count)]
    names += [(f"duo{index:02d}", count + index) for index in range(2 * duos)]
    shared: dict[int, StormService] = {}
    for name, index in names:
        repository = f"{name}-repo"
        codecommit.create_repository(repositoryName=repository)
        codebuild.create_project(
            name=f"{name}-build",
            source={"type": "CODECOMMIT", "location": f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/{name}"},
            artifacts={"type": "NO_ARTIFACTS"},
            environment={
                "type": "ARM_CONTAINER",
                "image": "aws/codebuild/amazonlinux-aarch64-standard:3.0",
                "computeType": "BUILD_GENERAL1_SMALL",
            },
            serviceRole=f"arn:aws:iam::{ACCOUNT}:role/codebuild-{name}",
        )
        ecr.create_repository(repositoryName=name)
        first_image, _ = push_demo_image(session, name, "v0")
        services = {}

        def create(service: str, stage: str, desired: int, image: str) -> str:
            family = f"{service}-{stage}"
            arn = ecs.register_task_definition(**web_task_definition(family, image))["taskDefinition"][
                "taskDefinitionArn"
            ]
            ecs.create_service(
                cluster=stage,
                serviceName=service,
                taskDefinition=arn,
                desiredCount=desired,
                launchType="FARGATE",
                networkConfiguration={
                    "awsvpcConfiguration": {
                        "subnets": [subnet],
                        "securityGroups": [group],
                        "assignPublicIp": "DISABLED",
                    }
                },
            )
            return str(arn)

        for stage, desired in (("dev", 2), ("prod", 4)):
            arn = create(name, stage, desired, first_image)
            breaker: Breaker = "rollback" if stage == "dev" else rng.choice(("no-rollback", "none"))
            approval = stage == "prod" and index % 2 == 0
            # prod of every third pipeline runs a before-task, and dev (two services) of the first of each pair
            runs_before = (stage == "prod" and index % 3 == 1) or (
                stage == "dev" and name.startswith("duo") and (index - count) % 2 == 0
            )
            services[stage] = StormService(
                name, stage, stage, name, f"{name}-{stage}", arn, approval, breaker, before=runs_before
            )
        if name.startswith("duo"):
            pair = (index - count) // 2
            if pair not in shared:  # the first pipeline of the pair creates the service they share
                service = f"shared{pair:02d}"
                arn = create(service, "dev", 2, first_image)
                partner = f"duo{2 * pair + 1:02d}"
                shared[pair] = StormService(
                    name, "dev", "dev", service, f"{service}-dev", arn, False, "rollback", shared_with=(partner,)
                )
            services["dev+"] = shared[pair]
        pipelines[name] = StormPipeline(
            name,
            repository,
            rng.choice(("main", "release")),
            f"{name}-build",
            name,
            first_image.rsplit(":", 1)[0],
            services,
        )
    return StormWorld(DeployerNames(environment), pipelines, storm_pipelines_yaml(pipelines.values()))


def storm_pipelines_yaml(pipelines: Any) -> str:
    """One configuration for every pipeline of the storm."""
    breakers = {
        "rollback": ", circuitBreaker: {rollback: true}",
        "no-rollback": ", circuitBreaker: {rollback: false}",
        "none": "",
    }
    rollouts = {
        "dev": "minimumHealthyPercent: 100, maximumPercent: 200",
        "prod": "minimumHealthyPercent: 50, maximumPercent: 150",
    }
    lines = ["pipelines:"]
    for p in pipelines:
        lines += [
            f"  - name: {p.name}",
            f"    repository: {p.repository}",
            f"    branch: {p.branch}",
            f"    build: {{project: {p.project}}}",
            "    container: web",
            *([f"    keepRevisions: {KEEP_REVISIONS_ODD}"] if int(p.name[-2:]) % 2 else []),
            "    stages:",
        ]
        for label, svc in p.services.items():
            if label.endswith("+"):
                continue  # the second service of a stage: listed with the first
            lines += [f"      - name: {svc.stage}", f"        cluster: {svc.cluster}"]
            other = p.services.get(f"{label}+")
            if other is None:
                lines.append(f"        service: {svc.service}")
            else:  # opposite orders in the two pipelines of a pair: [duo00, shared00] and [shared00, duo01]
                pair = [svc.service, other.service] if other.pipeline == p.name else [other.service, svc.service]
                lines.append(f"        services: [{', '.join(pair)}]")
            if svc.approval:
                lines.append(f"        approval: {{approvers: [{APPROVER}], expiresInHours: 24}}")
            if svc.before and other is not None:  # a stage of two services: the task runs with this one's
                lines.append(f"        before: {{task: migrate, service: {svc.service}, command: [./migrate.sh]}}")
            elif svc.before:
                lines.append("        before: {task: migrate, command: [./migrate.sh]}")
            lines.append(f"        rollout: {{{rollouts[svc.stage]}{breakers[svc.breaker]}}}")
            # deploy-time settings: every revision must carry them (`check_invariants`, "settings")
            lines.append(f"        environment: {{web: {{{STAGE_VARIABLE}: {svc.stage}}}}}")
            lines.append(f"        secrets: {{web: {{{SECRET_VARIABLE}: {storm_secret(p.name, svc.stage)}}}}}")
    return "\n".join(lines) + "\n"


STAGE_VARIABLE = "DEPLOY_STAGE"
SECRET_VARIABLE = "DB_PASSWORD"


def storm_secret(pipeline: str, stage: str) -> str:
    """The SSM parameter (by name) a storm stage's web container reads its database password from."""
    return f"/storm/{pipeline}/{stage}/db-password"


# -- pushes ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Push:
    pipeline: str
    seq: int  # its place in the branch's history: a larger seq is a newer commit
    commit: str
    old: str | None
    time: datetime


def plan_pushes(world: StormWorld, total: int, rng: random.Random, odds: Odds, seed: int) -> list[Push]:
    """`total` pushes spread over the pipelines, each branch's in quick succession (at most two
    in one second: README's known limit), all of them interleaved by push time."""
    names = list(world.pipelines)
    counts = Counter(names * (total // len(names)) + rng.sample(names, total % len(names)))
    base = datetime(2026, 11, 29, 10, 0, 0, tzinfo=UTC)
    pushes = []
    for name in names:
        moment = base + timedelta(seconds=rng.randrange(60))
        old: str | None = None
        previous_gap = 1
        for seq in range(counts[name]):
            if seq:
                gap = 0 if previous_gap and rng.random() < odds.same_second else rng.randint(1, 20)
                moment += timedelta(seconds=gap)
                previous_gap = gap
            commit = hashlib.sha1(f"{seed}:{name}:{seq}".encode()).hexdigest()
            pushes.append(Push(name, seq, commit, old, moment))
            old = commit
    pushes.sort(key=lambda p: (p.time, p.pipeline, p.seq))
    return pushes


# -- what a flow run costs -------------------------------------------------------------------------


@dataclass(frozen=True)
class FlowRun:
    """One run of the flow by a worker: its thread's CPU time, the part of it spent inside AWS
    calls (from the request's parameters to its parsed answer: the SDK's work and, moto being in
    process, moto's), and its AWS calls by service."""

    function: str
    cpu_ms: float
    aws_cpu_ms: float
    calls: Mapping[str, int]

    @property
    def own_cpu_ms(self) -> float:
        """The deployer's own CPU time: the run's, less its AWS calls'."""
        return self.cpu_ms - self.aws_cpu_ms


class FlowMeter:
    """Measures each flow run (`measure`) with botocore's event hooks on the deployer's session:
    `before-parameter-build` opens an AWS call, `after-call` or `after-call-error` closes it; the
    thread CPU time in between (time.thread_time) is the call's."""

    def __init__(self) -> None:
        self.runs: list[FlowRun] = []
        self._active = False
        self._aws_cpu = 0.0
        self._calls: Counter[str] = Counter()

    def install(self, session: boto3.session.Session) -> None:
        session.events.register("before-parameter-build", self._opened)
        session.events.register("after-call", self._closed)
        session.events.register("after-call-error", self._closed)

    @contextmanager
    def measure(self, function: str) -> Iterator[None]:
        self._active, self._aws_cpu, self._calls = True, 0.0, Counter()
        started = time.thread_time()
        try:
            yield
        finally:
            cpu = time.thread_time() - started
            self._active = False
            self.runs.append(FlowRun(function, cpu * 1000, self._aws_cpu * 1000, dict(self._calls)))

    def _opened(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        if self._active:
            context["storm_cpu_started"] = time.thread_time()
            self._calls[model.service_model.service_id] += 1

    def _closed(self, context: dict[str, Any], **_: Any) -> None:
        started = context.pop("storm_cpu_started", None)
        if self._active and started is not None:
            self._aws_cpu += time.thread_time() - started


# -- AWS calls ------------------------------------------------------------------------------------


@dataclass
class Call:
    """One call the deployer made, as sent, and what AWS answered."""

    operation: str
    params: dict[str, Any]
    response: dict[str, Any] | None = None
    error: str | None = None
    at_step: int = 0
    deployment_id: str | None = None  # UpdateService: the deployment ECS started
    # UpdateService without deploymentConfiguration: the deployer putting a completed service back
    # on its previous revision after a sibling of its stage failed (StageDeployer.fail_services)
    put_back: bool = False


class AwsCalls:
    """Records the deployer's StartBuild, RegisterTaskDefinition and UpdateService calls through
    botocore's event hooks on its session (`provide-client-params` sees the parameters exactly as
    the deployer passed them, `after-call` the answer). Also makes moto's UpdateService start a
    new deployment, with a new id, as ECS does (moto keeps one id unless forceNewDeployment)."""

    OPERATIONS = (
        "codebuild.StartBuild",
        "ecs.RegisterTaskDefinition",
        "ecs.UpdateService",
        "ecs.RunTask",
        "ecs.DeregisterTaskDefinition",
    )

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.step = 0

    def install(self, session: boto3.session.Session) -> None:
        for operation in self.OPERATIONS:
            # The stubs type every handler as returning None; this event takes the params it returns.
            session.events.register(f"provide-client-params.{operation}", self._sent)  # type: ignore[arg-type]
            session.events.register(f"after-call.{operation}", self._answered)
            session.events.register(f"after-call-error.{operation}", self._failed)

    def _sent(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> dict[str, Any] | None:
        call = Call(model.name, copy.deepcopy(params), at_step=self.step)
        call.put_back = model.name == "UpdateService" and "deploymentConfiguration" not in params
        self.calls.append(call)
        context["storm_call"] = call
        if model.name == "UpdateService" and "taskDefinition" in params:
            return {**params, "forceNewDeployment": True}
        return None

    def _answered(self, http_response: Any, parsed: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        call = context.get("storm_call")
        if call is None:
            return
        if http_response.status_code >= 300:
            call.error = str(parsed.get("Error", {}).get("Code", http_response.status_code))
        else:
            call.response = parsed

    def _failed(self, exception: Exception, context: dict[str, Any], **_: Any) -> None:
        call = context.get("storm_call")
        if call is not None and call.error is None:
            call.error = repr(exception)

    def of(self, operation: str) -> list[Call]:
        return [c for c in self.calls if c.operation == operation and c.response is not None]


# -- the scheduler --------------------------------------------------------------------------------


@dataclass
class Click:
    release_id: str
    pipeline: str
    stage: str
    approval_id: str
    token: str
    decision: Literal["approve", "reject"]


@dataclass
class Pending:
    label: str
    pipeline: str
    event: dict[str, Any] | None = None
    bus: str = "default"
    click: Click | None = None
    attempt: int = 1
    duplicate: bool = False  # a duplicate is not duplicated again
    terminal_of: str | None = None  # the ECS deployment whose end this event reports


@dataclass
class Violation:
    invariant: str
    detail: str
    pipeline: str | None = None


@dataclass
class StormReport:
    seed: int
    pipelines: int
    pushes: int
    seconds: float = 0.0
    steps: int = 0
    deliveries: int = 0  # events routed, duplicates included
    invocations: int = 0  # function invocations (a delivery reaches one function, or none)
    flow_runs: int = 0  # invocations that ran the flow (not answered from the idempotency cache)
    cache_hits: int = 0
    redeliveries: int = 0
    reemissions: int = 0
    retries: int = 0
    clicks: int = 0
    refused_clicks: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    states: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    flow_runs_measured: list[FlowRun] = field(default_factory=list)  # each flow run's CPU time and AWS calls
    errors: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    trace: list[tuple[str, str]] = field(default_factory=list)  # (pipeline, line)

    @property
    def events_per_second(self) -> float:
        return self.invocations / self.seconds if self.seconds else 0.0

    @property
    def replay(self) -> str:
        return f"{SEED_VARIABLE}={self.seed}"

    def summary(self) -> str:
        return (
            f"storm seed {self.seed} ({self.replay} replays it): {self.pipelines} pipelines, {self.pushes} pushes, "
            f"{self.deliveries} deliveries ({self.redeliveries} redelivered, {self.reemissions} re-emitted, "
            f"{self.retries} retried), {self.invocations} invocations ({self.cache_hits} from the idempotency cache), "
            f"{self.clicks} approval clicks, in {self.seconds:.1f} s = {self.events_per_second:.0f} invocations/s; "
            f"releases {dict(sorted(self.states.items()))}; calls {dict(sorted(self.calls.items()))}"
        )

    def trace_of(self, pipeline: str | None, last: int = 40) -> list[str]:
        lines = [line for p, line in self.trace if pipeline is None or p == pipeline]
        return lines[-last:]

    @property
    def broken_invariants(self) -> list[Violation]:
        """The violations of docs/design.md's invariants and of "nothing stuck, nothing lost"."""
        return [v for v in self.violations if v.invariant not in RECORD_CHECKS]

    @property
    def wrong_records(self) -> list[Violation]:
        """What the release records say that is not so (`RECORD_CHECKS`)."""
        return [v for v in self.violations if v.invariant in RECORD_CHECKS]

    def failure_message(self, last: int = 40) -> str:
        parts = [f"storm seed {self.seed}: {len(self.violations)} violation(s); replay with {self.replay}", ""]
        ordered = self.broken_invariants + self.wrong_records
        for v in ordered[:20]:
            parts.append(f"[{v.invariant}] {v.detail}")
        shown = next((v.pipeline for v in ordered if v.pipeline), None)
        if shown:
            parts += ["", f"trace of {shown} (last {last} lines, seed {self.seed}):", *self.trace_of(shown, last)]
        return "\n".join(parts)


Handler = Callable[[Any, Deps], Any]
BY_DETAIL_TYPE: dict[str, tuple[type[Any], Handler]] = {
    "ECS Task State Change": (EcsTaskStateChangeEvent, on_task_stopped),
}
FUNCTIONS: dict[str, tuple[type[Any], Handler]] = {
    "OnPushFunction": (CodeCommitReferenceEvent, on_push),
    "OnBuildFunction": (CodeBuildStateChangeEvent, on_build),
    "OnDeploymentFunction": (EcsDeploymentStateChangeEvent, on_deployment),
    "OnApprovalFunction": (ApprovalDecidedEvent, on_approval),
}


class Storm:
    """One storm: the world provisioned, the pushes planned, the router wired to the flow. `run()`
    delivers until nothing is pending; `check_invariants(storm)` then judges what happened."""

    def __init__(self, pipelines: int, pushes: int, seed: int, odds: Odds | None = None, *, duos: int = 0) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.odds = odds or Odds()
        self.report = StormReport(seed, pipelines + 2 * duos, pushes)
        self.calls = AwsCalls()
        self.session = boto3.session.Session()
        self.calls.install(self.session)
        for operation in SERVICE_DEPLOYMENT_OPERATIONS:  # what moto lacks, answered as ECS would
            self.session.events.register(f"before-parameter-build.ecs.{operation}", _keep_params)
            self.session.events.register(f"before-call.ecs.{operation}", self._service_deployments)
        self.meter = FlowMeter()
        self.meter.install(self.session)
        self.report.flow_runs_measured = self.meter.runs
        # AWS itself (provisioning, builds pushing images, ECS rolling back) uses a session of its
        # own, which the hooks do not see.
        aws = boto3.session.Session()
        self.ecr = aws.client("ecr")
        self.ecs = aws.client("ecs")
        self.codebuild = aws.client("codebuild")
        self.world = provision_storm_world(pipelines, self.rng, aws, duos=duos)
        self.pushes = plan_pushes(self.world, pushes, self.rng, self.odds, seed)
        self.deps = self._deps()
        # RunTask, DescribeTasks, StopTask: the local stack's simulated tasks (moto's RunTask fails on awsvpc)
        self.tasks = answered_by_tasks(self.deps.stages.ecs, Tasks())
        self.task_events = BeforeTaskSimulator(self.tasks, lambda _: None, lambda _: None)
        self.task_exit: dict[tuple[str, str], int] = {}  # (release id, stage) -> its before-task's exit code
        self.router = Router(
            self.session.client("events"),
            {name: self._worker(name, model, handler) for name, (model, handler) in FUNCTIONS.items()},
            rules_from_template(self.world.names),
        )
        self.pool: list[Pending] = []
        self.answered: dict[tuple[str, str], InvokeResult] = {}  # (function, event id): the idempotency cache
        self.seen_calls = 0
        self.new_transitions: list[Transition] = []
        self.images: dict[str, tuple[str, str, str]] = {}  # image digest -> (pipeline, commit, build ARN)
        self.registered: dict[str, tuple[str, str]] = {}  # task definition ARN -> (release id, stage)
        self.stable: dict[tuple[str, str], str] = {k: s.initial_task_definition for k, s in self.world.services.items()}
        self.in_flight: dict[tuple[str, str], str] = {}  # service -> deployment whose end is not yet reported
        self.reported: set[str] = set()  # deployments whose COMPLETED/FAILED was delivered
        self.rolled_back: set[str] = set()
        self.stable_before: dict[str, str] = {}  # deployment -> the service's stable revision before it
        self.stopped: set[str] = set()  # deployments stopped with StopServiceDeployment ROLLBACK
        self.service_deployment_arns: dict[str, tuple[tuple[str, str], str]] = {}  # ARN -> (service, deployment)
        self.never_decided: set[tuple[str, str]] = set()  # (release id, stage)
        self.approved: set[tuple[str, str]] = set()
        self.step = 0

    # -- wiring -----------------------------------------------------------------------------------

    def _deps(self) -> Deps:
        names = self.world.names
        dynamodb = self.session.resource("dynamodb")
        config_store = ConfigStore(names.config_table, dynamodb=dynamodb)
        shares = any(svc.shared_with for svc in self.world.services.values())
        if shares:  # two stages on one service: what a republish leaves while releases still hold it
            unchecked = PipelinesConfig.model_validate(yaml.safe_load(self.world.yaml))
        else:
            config_store.publish(load_config_text(self.world.yaml), "storm")
        return build_deps(
            dynamodb.Table(names.table),
            (lambda: unchecked) if shares else config_store.load,
            self.session.client,
            listeners=[self._on_transition],
            event_bus=names.bus,
            signing_key=lambda: SIGNING_KEY,
            approval_base_url="https://approvals.storm.test",
        )

    def _worker(self, function: str, model: type[Any], handler: Handler) -> Callable[[dict[str, Any]], InvokeResult]:
        """The function as a warm Lambda runs it, idempotency on the event id included."""

        def invoke(event: dict[str, Any]) -> InvokeResult:
            # as the real handler: on_deployment picks the model by detail-type
            chosen_model, chosen_handler = BY_DETAIL_TYPE.get(str(event.get("detail-type")), (model, handler))
            key = (function, str(event.get("id")))
            self.report.invocations += 1
            if key in self.answered:
                self.report.cache_hits += 1
                return self.answered[key]
            self.report.flow_runs += 1
            started = time.perf_counter()
            payload: Any = None
            error = None
            try:
                with self.meter.measure(function):
                    payload = chosen_handler(parse_event(chosen_model, event), self.deps)
            except (BadInput, ConfigError) as exc:  # runtime.run's mapping: logged, not retried
                payload = {"outcome": "refused", "reason": str(exc)}
            except Exception as exc:  # reported as Lambda reports it, then retried
                error = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            result = InvokeResult(
                function, payload, error, "", (time.perf_counter() - started) * 1000, request_id=self._new_id()
            )
            if result.ok:  # Powertools keeps a record only for a successful invoke
                self.answered[key] = result
            return result

        return invoke

    def _new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _on_transition(self, change: Transition) -> None:
        r = change.release
        self._trace(
            r.pipeline,
            f"  {r.short_commit} {change.from_state} -> {change.to_state} ({change.stage}): {change.reason}",
        )
        self.new_transitions.append(change)

    def _trace(self, pipeline: str, line: str) -> None:
        self.report.trace.append((pipeline, f"{self.step:6d} {line}"))

    # -- the run ----------------------------------------------------------------------------------

    def run(self) -> StormReport:
        started = time.perf_counter()
        upcoming = iter(self.pushes)
        next_push = next(upcoming, None)
        while next_push is not None or self.pool:
            self.step += 1
            self.calls.step = self.step
            if next_push is not None and (not self.pool or self.rng.random() < self.odds.push_enters):
                self._enqueue(
                    self._push_event(next_push), f"push {next_push.commit[:12]} #{next_push.seq}", next_push.pipeline
                )
                next_push = next(upcoming, None)
                continue
            index = self.rng.randrange(len(self.pool))
            self.pool[index], self.pool[-1] = self.pool[-1], self.pool[index]
            self._process(self.pool.pop())
        self.report.seconds = time.perf_counter() - started
        self.report.steps = self.step
        return self.report

    def _enqueue(self, event: dict[str, Any], label: str, pipeline: str, **kwargs: Any) -> None:
        event["id"] = self._new_id()  # the samples' own ids would collide in the idempotency cache
        self.pool.append(Pending(label, pipeline, event, **kwargs))

    def _process(self, item: Pending) -> None:
        if item.click is not None:
            self._click(item.click)
            return
        assert item.event is not None
        times = 1 if item.duplicate else self.rng.choices((1, 2, 3), self.odds.extra_deliveries)[0]
        self._deliver(item)
        for _ in range(times - 1):
            again = Pending(item.label, item.pipeline, copy.deepcopy(item.event), item.bus, duplicate=True)
            again.terminal_of = item.terminal_of
            if self.rng.random() < self.odds.duplicate_new_id:
                again.event["id"] = self._new_id()  # type: ignore[index]
                again.label += " (re-emitted)"
                self.report.reemissions += 1
            else:
                again.label += " (redelivered)"
                self.report.redeliveries += 1
            if self.rng.random() < self.odds.duplicate_later:
                self.pool.append(again)
            else:
                self._deliver(again)

    def _deliver(self, item: Pending) -> None:
        assert item.event is not None
        if item.terminal_of in self.stopped:
            self._trace(item.pipeline, f"{item.label}: not sent (the deployment was stopped)")
            return
        self.report.deliveries += 1
        if item.terminal_of:
            self.reported.add(item.terminal_of)
        deliveries = self.router.route(item.event, item.bus)
        for delivery in deliveries:
            result = delivery.result
            if result.ok:
                outcome = _outcome_text(result.payload)
                self.report.outcomes[f"{delivery.function}:{outcome.split(' ', 1)[0]}"] += 1
                self._trace(item.pipeline, f"{item.label} [{item.event['id'][:8]}] -> {delivery.function}: {outcome}")
                continue
            error = f"{delivery.function} {item.label}: {result.error}"
            self.report.errors.append(error)
            self._trace(item.pipeline, f"{item.label} -> {delivery.function}: ERROR {result.error}")
            if item.attempt < 3:  # Lambda retries an asynchronous invoke twice
                self.report.retries += 1
                self.pool.append(
                    Pending(
                        item.label + " (retry)",
                        item.pipeline,
                        item.event,
                        item.bus,
                        attempt=item.attempt + 1,
                        terminal_of=item.terminal_of,
                    )
                )
            else:
                self.report.violations.append(Violation("dead-letter", error, item.pipeline))
        if not deliveries:
            self._trace(item.pipeline, f"{item.label}: matches no rule")
        self._react()

    # -- AWS reacting -----------------------------------------------------------------------------

    def _react(self) -> None:
        while self.seen_calls < len(self.calls.calls):
            call = self.calls.calls[self.seen_calls]
            self.seen_calls += 1
            if call.response is None:
                continue
            if call.operation == "StartBuild":
                self._build(call)
            elif call.operation == "RegisterTaskDefinition":
                self._registered(call)
            elif call.operation == "UpdateService":
                self._roll_out(call)
            elif call.operation == "RunTask":
                self._run_before_task(call)
        while self.new_transitions:
            change = self.new_transitions.pop(0)
            if change.to_state is ReleaseState.AWAITING_APPROVAL:
                self._ask_human(change)

    def _build(self, call: Call) -> None:
        build = call.response["build"]  # type: ignore[index]
        pipeline = self.world.pipeline_of_project(call.params["projectName"])
        commit = call.params["sourceVersion"]
        env = call.params.get("environmentVariablesOverride", [])
        self._trace(pipeline.name, f"  CodeBuild: StartBuild {build['id']} for {commit[:12]}")
        self._run_build(build, pipeline, commit, env, f"build {commit[:12]}")
        if self.rng.random() < self.odds.retried_builds:
            # Someone clicks "Retry build" in the console: a build the deployer did not start,
            # carrying the same environment overrides (so the same DEPLOYER_RELEASE_ID).
            retried = self.codebuild.start_build(
                projectName=pipeline.project, sourceVersion=commit, environmentVariablesOverride=env
            )["build"]
            self._trace(pipeline.name, f"  CodeBuild: {build['id']} retried by hand as {retried['id']}")
            self._run_build(retried, pipeline, commit, env, f"retried build {commit[:12]}")

    def _run_build(
        self, build: Mapping[str, Any], pipeline: StormPipeline, commit: str, env: list[dict[str, str]], label: str
    ) -> None:
        """The build runs: its state changes, and on success the image it pushed to ECR."""
        if self.rng.random() < self.odds.in_progress_events:
            self._enqueue(
                self._build_event(build["arn"], pipeline, env, "IN_PROGRESS", None),
                label + " IN_PROGRESS",
                pipeline.name,
            )
        if self.rng.random() < self.odds.build_fails:
            status = self.rng.choice(("FAILED", "FAULT", "TIMED_OUT", "STOPPED"))
            self._enqueue(
                self._build_event(build["arn"], pipeline, env, status, None), f"{label} {status}", pipeline.name
            )
            return
        tag = f"{commit[:12]}-{build['id'].rsplit(':', 1)[-1][:8]}"
        digest = push_build_image(self.ecr, pipeline.ecr_repository, tag)
        self.images[digest] = (pipeline.name, commit, build["arn"])
        image = f"{pipeline.ecr_uri}@{digest}"
        self._enqueue(
            self._build_event(build["arn"], pipeline, env, "SUCCEEDED", image), f"{label} SUCCEEDED", pipeline.name
        )

    def _run_before_task(self, call: Call) -> None:
        """The before-task runs and stops: its STOPPED event (exit 0, or 1 at `before_fails`) joins the
        pool, to be delivered late, twice or out of order like any other. A RunTask sent again with the
        same clientToken is the same task, which stops once."""
        arn = call.response["tasks"][0]["taskArn"]  # type: ignore[index]
        tags = {t["key"]: t["value"] for t in call.params.get("tags", [])}
        owner = (tags.get("ecs-deployer:release", "?"), tags.get("ecs-deployer:stage", "?"))
        pipeline = owner[0].split("@")[0]
        self._trace(pipeline, f"  ECS: RunTask {arn.rsplit('/', 1)[-1][:12]} for {owner[0][-12:]} {owner[1]}")
        if owner in self.task_exit:
            return  # already stopped: the same task again
        code = 1 if self.rng.random() < self.odds.before_fails else 0
        self.task_exit[owner] = code
        event = self.task_events.stopped_event(self.tasks.finish(arn, code))
        self._enqueue(event, f"task {owner[1]} {owner[0][-12:]} exit {code}", pipeline)

    def _registered(self, call: Call) -> None:
        arn = call.response["taskDefinition"]["taskDefinitionArn"]  # type: ignore[index]
        svc = self._service_of_family(call.params["family"])
        digest = _digest_of(call.params)
        pipeline, commit, _build = self.images.get(digest or "", ("?", "?", "?"))
        self.registered[arn] = (release_id_for(pipeline, commit), svc.stage if svc else "?")

    def _roll_out(self, call: Call) -> None:
        key = (call.params["cluster"], call.params["service"])
        svc = self.world.services[key]
        deployment = next(d["id"] for d in call.response["service"]["deployments"] if d["status"] == "PRIMARY")  # type: ignore[index]
        new = call.params["taskDefinition"]
        release_id, _stage = self.registered.get(new, ("?", "?"))
        call.deployment_id = deployment
        previous = self.in_flight.get(key)
        if call.put_back:
            # The deployer puts the service back (a sibling of its stage failed): the deployment it
            # undoes is rolled back. Like ECS's own rollback of a failed deployment, the put-back is
            # no release's deployment: the lock is handed on at once, and the next release's
            # UpdateService supersedes it. ECS reports it; the deployer did not start it for a release.
            if previous is not None:
                self.rolled_back.add(previous)
                self.reported.add(previous)
            self._trace(
                svc.pipeline, f"  ECS: {key[0]}/{key[1]} put back on {_short(new)} by the deployer ({deployment})"
            )
            self.stable[key] = new
            self._enqueue(
                self._ecs_event(
                    svc, deployment, "SERVICE_DEPLOYMENT_COMPLETED", f"ECS deployment {deployment} completed."
                ),
                f"ecs {svc.stage} put back {deployment[-6:]} COMPLETED",
                svc.pipeline,
            )
            return
        if previous is not None and previous not in self.reported:
            self.report.violations.append(
                Violation(
                    "one-deployment-per-service",
                    f"UpdateService on {key[0]}/{key[1]} for {release_id} while deployment {previous} "
                    f"had not ended (step {self.step})",
                    svc.pipeline,
                )
            )
        self.in_flight[key] = deployment
        self.stable_before[deployment] = self.stable[key]
        label = f"ecs {svc.stage} {release_id.rsplit('@', 1)[-1][:12]} {deployment[-6:]}"
        self._trace(svc.pipeline, f"  ECS: UpdateService {key[0]}/{key[1]} -> {_short(new)}, deployment {deployment}")
        if self.rng.random() < self.odds.in_progress_events:
            reason = f"ECS deployment {deployment} in progress."
            self._enqueue(
                self._ecs_event(svc, deployment, "SERVICE_DEPLOYMENT_IN_PROGRESS", reason),
                label + " IN_PROGRESS",
                svc.pipeline,
            )
        fails = svc.breaker != "none" and self.rng.random() < self.odds.deployment_fails
        if not fails:
            self.stable[key] = new
            reason = f"ECS deployment {deployment} completed."
            self._enqueue(
                self._ecs_event(svc, deployment, "SERVICE_DEPLOYMENT_COMPLETED", reason),
                label + " COMPLETED",
                svc.pipeline,
                terminal_of=deployment,
            )
            return
        reason = "ECS deployment circuit breaker: tasks failed to start."
        if svc.breaker == "rollback":
            # ECS starts a deployment of its own back to the last stable task definition, which must
            # still be ACTIVE: ECS refuses to update a service to an INACTIVE revision.
            status = self.ecs.describe_task_definition(taskDefinition=self.stable[key])["taskDefinition"]["status"]
            if status != "ACTIVE":
                self.report.violations.append(
                    Violation(
                        "cleanup-safe",
                        f"ECS rolls {key[0]}/{key[1]} back to {_short(self.stable[key])}, which is {status} "
                        f"(step {self.step})",
                        svc.pipeline,
                    )
                )
            answer = self.ecs.update_service(
                cluster=svc.cluster, service=svc.service, taskDefinition=self.stable[key], forceNewDeployment=True
            )
            rollback = next(d["id"] for d in answer["service"]["deployments"] if d["status"] == "PRIMARY")
            self.rolled_back.add(deployment)
            self._trace(
                svc.pipeline, f"  ECS: {deployment} fails, rolling back to {_short(self.stable[key])} ({rollback})"
            )
            back = f"ECS deployment circuit breaker: rolling back to deploymentId {rollback}."
            self._enqueue(
                self._ecs_event(svc, rollback, "SERVICE_DEPLOYMENT_IN_PROGRESS", back),
                label + " ROLLBACK",
                svc.pipeline,
            )
        else:
            self.stable[key] = new  # without rollback the service stays on the failed task definition
            self._trace(svc.pipeline, f"  ECS: {deployment} fails (no rollback)")
        self._enqueue(
            self._ecs_event(svc, deployment, "SERVICE_DEPLOYMENT_FAILED", reason),
            label + " FAILED",
            svc.pipeline,
            terminal_of=deployment,
        )

    def _service_deployments(self, model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
        """ListServiceDeployments, DescribeServiceDeployments and StopServiceDeployment, which moto
        lacks: a deployment whose end the storm has not reported is in flight; stopping it with
        ROLLBACK returns the service to its stable revision, and its end is never reported."""
        params = context["storm_params"]
        now = datetime.now(UTC)
        if model.name == "ListServiceDeployments":
            key = (params["cluster"], params["service"])
            deployment = self.in_flight.get(key)
            listed = []
            if deployment and deployment not in self.reported and deployment not in self.stopped:
                suffix = deployment.rsplit("/", 1)[-1]
                arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service-deployment/{key[0]}/{key[1]}/{suffix}"
                self.service_deployment_arns[arn] = (key, deployment)
                listed.append({"serviceDeploymentArn": arn, "status": "IN_PROGRESS", "createdAt": now})
            answer: dict[str, Any] = {"serviceDeployments": listed}
        elif model.name == "DescribeServiceDeployments":
            answer = {
                "serviceDeployments": [
                    {"serviceDeploymentArn": arn, "status": "IN_PROGRESS", "createdAt": now}
                    for arn in params["serviceDeploymentArns"]
                    if arn in self.service_deployment_arns
                ]
            }
        elif model.name == "StopServiceDeployment":
            key, deployment = self.service_deployment_arns[params["serviceDeploymentArn"]]
            svc = self.world.services[key]
            back_to = self.stable_before.get(deployment, self.stable[key])
            self.ecs.update_service(cluster=key[0], service=key[1], taskDefinition=back_to, forceNewDeployment=True)
            self.stable[key] = back_to
            self.stopped.add(deployment)
            self.rolled_back.add(deployment)
            self.reported.add(deployment)
            self._trace(svc.pipeline, f"  ECS: {deployment} stopped (ROLLBACK) back to {_short(back_to)}")
            answer = {"serviceDeploymentArn": params["serviceDeploymentArn"]}
        else:  # pragma: no cover - registered for the three operations only
            raise AssertionError(model.name)
        return AWSResponse("https://ecs.storm", 200, {}, None), {"ResponseMetadata": {"HTTPStatusCode": 200}, **answer}

    def _ask_human(self, change: Transition) -> None:
        release = change.release
        stage = change.stage or "?"
        assert self.deps.approvals is not None
        current = self.deps.store.get(release.release_id)
        link = self.deps.approvals.link_for_release(current) if current else None
        roll = self.rng.random()
        if link is None or roll >= self.odds.approve + self.odds.reject:
            self.never_decided.add((release.release_id, stage))
            self._trace(release.pipeline, f"  human: never decides on {release.short_commit} ({stage})")
            return
        decision: Literal["approve", "reject"] = "approve" if roll < self.odds.approve else "reject"
        click = Click(
            release.release_id, release.pipeline, stage, release.approval_id or "", link.rsplit("/", 1)[-1], decision
        )
        clicks = 2 if self.rng.random() < self.odds.double_click else 1
        for _ in range(clicks):
            self.pool.append(Pending(f"click {decision} {release.short_commit}", release.pipeline, click=click))

    def _click(self, click: Click) -> None:
        """The approver clicks in Slack: the approval is decided, then "Approval Decided" is put."""
        self.report.clicks += 1
        assert self.deps.approvals is not None
        by = DecidedBy(kind="slack", user=APPROVER)
        try:
            self.deps.approvals.decide(click.token, click.decision, by, slack_user=APPROVER)
        except ApprovalRefused as exc:
            self.report.refused_clicks[type(exc).__name__] += 1
            self._trace(
                click.pipeline, f"click {click.decision} {click.release_id[-40:][:12]}: refused ({type(exc).__name__})"
            )
            return
        if click.decision == "approve":
            self.approved.add((click.release_id, click.stage))
        self._trace(click.pipeline, f"click {click.decision} {click.release_id[-40:][:12]}: decided")
        event = load_event("approval_decided_approve")
        event["id"] = self._new_id()
        event["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event["detail"].update(
            release_id=click.release_id,
            pipeline=click.pipeline,
            stage=click.stage,
            decision=click.decision,
            approval_id=click.approval_id,
            decided_by=by.model_dump(mode="json", exclude_none=True),
            decided_at=datetime.now(UTC).isoformat(),
        )
        label = f"decided {click.decision} {click.release_id[-40:][:12]}"
        self._enqueue(event, label, click.pipeline, bus=self.world.names.bus)

    # -- events as AWS shapes them (the samples in events/) -----------------------------------------

    def _push_event(self, push: Push) -> dict[str, Any]:
        pipeline = self.world.pipelines[push.pipeline]
        event = load_event("push_updated" if push.old else "push_created")
        event["id"] = self._new_id()
        event["time"] = push.time.strftime("%Y-%m-%dT%H:%M:%SZ")
        event["resources"] = [f"arn:aws:codecommit:{REGION}:{ACCOUNT}:{pipeline.repository}"]
        detail = event["detail"]
        detail.update(
            repositoryName=pipeline.repository,
            referenceName=pipeline.branch,
            referenceFullName=f"refs/heads/{pipeline.branch}",
            commitId=push.commit,
        )
        if push.old:
            detail["oldCommitId"] = push.old
        return event

    def _build_event(
        self, arn: str, pipeline: StormPipeline, env: list[dict[str, str]], status: str, image: str | None
    ) -> dict[str, Any]:
        event = load_event("build_in_progress" if status == "IN_PROGRESS" else "build_succeeded")
        event["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event["resources"] = [arn]
        detail = event["detail"]
        detail.update({"build-status": status, "build-id": arn, "project-name": pipeline.project})
        info = detail["additional-information"]
        info["environment"]["environment-variables"] = [
            {"name": v["name"], "type": v.get("type", "PLAINTEXT"), "value": v["value"]} for v in env
        ]
        if image is None:
            info.pop("exported-environment-variables", None)
        else:
            info["exported-environment-variables"] = [{"name": "IMAGE_URI", "value": image}]
        return event

    def _ecs_event(self, svc: StormService, deployment: str, name: str, reason: str) -> dict[str, Any]:
        sample = {
            "SERVICE_DEPLOYMENT_COMPLETED": "ecs_deployment_completed",
            "SERVICE_DEPLOYMENT_FAILED": "ecs_deployment_failed",
            "SERVICE_DEPLOYMENT_IN_PROGRESS": "ecs_deployment_in_progress",
        }[name]
        event = load_event(sample)
        now = datetime.now(UTC)  # ECS stamps an event when it happens: the deployer's clock is the wall clock
        event["time"] = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        event["resources"] = [svc.arn]
        event["detail"].update(deploymentId=deployment, reason=reason, updatedAt=now.isoformat(timespec="milliseconds"))
        return event

    def _service_of_family(self, family: str) -> StormService | None:
        return next((s for s in self.world.services.values() if s.family == family), None)


def _keep_params(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
    """The call's parameters as the caller passed them, for the `before-call` answer."""
    context["storm_params"] = dict(params)


def push_build_image(ecr: Any, repository: str, tag: str) -> str:
    """Put the image a build pushes in ECR and return its digest, unique per tag (moto derives a
    digest from the layers' digests only: `push_demo_image`'s layerless manifests all share one)."""
    layer = "sha256:" + hashlib.sha256(f"layer-{repository}-{tag}".encode()).hexdigest()
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": 7023,
            "digest": "sha256:" + hashlib.sha256(f"config-{tag}".encode()).hexdigest(),
        },
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 1024, "digest": layer}],
    }
    image = ecr.put_image(repositoryName=repository, imageManifest=json.dumps(manifest), imageTag=tag)["image"]
    return str(image["imageId"]["imageDigest"])


def _digest_of(params: Mapping[str, Any]) -> str | None:
    for container in params.get("containerDefinitions", []):
        if container.get("name") == "web" and "@" in container.get("image", ""):
            return str(container["image"]).rsplit("@", 1)[1]
    return None


def _short(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _outcome_text(payload: Any) -> str:
    outcomes = payload if isinstance(payload, list) else [payload]
    parts = []
    for outcome in outcomes:
        if not isinstance(outcome, dict):
            parts.append(str(outcome))
            continue
        text = str(outcome.get("outcome", "?"))
        for key in ("stage", "reason", "handed_over_to", "superseded"):
            if outcome.get(key):
                text += f" {key}={outcome[key]}"
        if isinstance(outcome.get("next"), dict):
            text += f" next=({_outcome_text(outcome['next'])})"
        parts.append(text)
    return "; ".join(parts)


# -- the invariants -------------------------------------------------------------------------------


def check_invariants(storm: Storm) -> list[Violation]:
    """Everything the storm must leave true (docs/design.md, invariants 1-3, nothing stuck or lost)."""
    found: list[Violation] = list(storm.report.violations)
    store = storm.deps.store
    world = storm.world
    releases = {r.release_id: r for name in world.pipelines for r in _all_releases(store, name)}
    by_digest = {r.image_digest: r.release_id for r in releases.values() if r.image_digest}
    order = {release_id_for(p.pipeline, p.commit): p.seq for p in storm.pushes}

    def stage_of_family(family: str) -> StormService | None:
        return storm._service_of_family(family)

    # 1. one build per (pipeline, commit)
    builds: dict[tuple[str, str], list[str]] = defaultdict(list)
    for call in storm.calls.of("StartBuild"):
        pipeline = world.pipeline_of_project(call.params["projectName"]).name
        builds[(pipeline, call.params["sourceVersion"])].append(call.response["build"]["arn"])  # type: ignore[index]
    for (pipeline, commit), arns in builds.items():
        if len(arns) > 1:
            found.append(Violation("one-build", f"{len(arns)} StartBuild for {pipeline}@{commit[:12]}", pipeline))
        release = releases.get(release_id_for(pipeline, commit))
        if release is None or release.build_arn not in arns:
            found.append(
                Violation("one-build", f"{pipeline}@{commit[:12]}: its release does not name its build", pipeline)
            )

    # 1. one task definition revision per (release, stage, family) and one UpdateService per
    # (release, stage, service): a stage of two services registers and updates each once
    registered: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    arn_owner: dict[str, tuple[str, str]] = {}
    for call in storm.calls.of("RegisterTaskDefinition"):
        svc = stage_of_family(call.params["family"])
        release_id = by_digest.get(_digest_of(call.params) or "", "?")
        stage = svc.stage if svc else "?"
        arn = call.response["taskDefinition"]["taskDefinitionArn"]  # type: ignore[index]
        registered[(release_id, stage, call.params["family"])].append(arn)
        arn_owner[arn] = (release_id, stage)
        web = next((c for c in call.params.get("containerDefinitions", []) if c.get("name") == "web"), {})
        # the settings of the registering release's pipeline (a shared service is deployed by two)
        owner_pipeline = release_id.split("@")[0] if release_id != "?" else svc.pipeline if svc else "?"
        wanted = {
            ("environment", STAGE_VARIABLE, stage),
            ("secrets", SECRET_VARIABLE, storm_secret(owner_pipeline, stage) if svc else "?"),
        }
        carried = {("environment", e.get("name"), e.get("value")) for e in web.get("environment", [])} | {
            ("secrets", e.get("name"), e.get("valueFrom")) for e in web.get("secrets", [])
        }
        if not wanted <= carried:
            found.append(
                Violation(
                    "settings",
                    f"{_short(arn)} lacks its stage's settings {sorted(wanted - carried)}",
                    svc.pipeline if svc else None,
                )
            )
        recorded = releases.get(release_id)
        record = recorded.stages.get(stage) if recorded else None
        if release_id == "?" or record is None:
            found.append(
                Violation(
                    "one-revision",
                    f"{_short(arn)} registered for no release/stage on record",
                    svc.pipeline if svc else None,
                )
            )
    for (release_id, stage, family), arns in registered.items():
        if len(arns) > 1:
            found.append(
                Violation(
                    "one-revision",
                    f"{len(arns)} revisions of {family} for {release_id} {stage}: {[_short(a) for a in arns]}",
                    release_id.split("@")[0],
                )
            )
    # 1. one before-task per (release, stage): RunTask sent again (same clientToken) is the same task
    before_tasks: dict[tuple[str, str], set[str]] = defaultdict(set)
    for call in storm.calls.of("RunTask"):
        tags = {t["key"]: t["value"] for t in call.params.get("tags", [])}
        owner_of_task = (tags.get("ecs-deployer:release", "?"), tags.get("ecs-deployer:stage", "?"))
        before_tasks[owner_of_task].add(call.response["tasks"][0]["taskArn"])  # type: ignore[index]
    for (release_id, stage), task_arns in before_tasks.items():
        if len(task_arns) > 1:
            found.append(
                Violation(
                    "one-before-task", f"{len(task_arns)} tasks for {release_id} {stage}", release_id.split("@")[0]
                )
            )
    updates: dict[tuple[str, str, str], list[Call]] = defaultdict(list)
    per_service: dict[tuple[str, str], list[Call]] = defaultdict(list)
    # the deployer's UpdateService putting a completed service back after a sibling failed: recorded
    # on that service (rollback_deployment_id), and only to the revision it ran before
    put_backs = {
        s.rollback_deployment_id: s
        for r in releases.values()
        for record in r.stages.values()
        for s in record.services or ()
        if s.rollback_deployment_id
    }
    for call in storm.calls.of("UpdateService"):
        undone = put_backs.get(call.deployment_id or "")
        if undone is not None:
            if undone.previous_task_definition_arn != call.params["taskDefinition"] or "deploymentConfiguration" in (
                call.params
            ):
                svc = world.services[(call.params["cluster"], call.params["service"])]
                found.append(Violation("put-back", f"{call.params} does not put {undone.key} back", svc.pipeline))
            continue
        owner = arn_owner.get(call.params["taskDefinition"], ("?", "?"))
        updates[(*owner, call.params["service"])].append(call)
        per_service[(call.params["cluster"], call.params["service"])].append(call)
        if "desiredCount" in call.params:
            found.append(
                Violation("desired-count", f"UpdateService sent desiredCount for {owner}", owner[0].split("@")[0])
            )
        svc = world.services[(call.params["cluster"], call.params["service"])]
        if (owner[0].split("@")[0], owner[1]) not in svc.owners:
            found.append(Violation("right-service", f"UpdateService on {svc.key} with {owner}", svc.pipeline))
        if svc.approval and owner not in storm.approved:
            found.append(Violation("approval", f"{owner} deployed to {svc.stage} without an approval", svc.pipeline))
        # the owner's stage runs a before-task (a stage of two services: before either is updated)
        configured = storm.deps.config().pipeline_named(owner[0].split("@")[0])
        stage_config = configured.stage_named(owner[1]) if configured else None
        if stage_config is not None and stage_config.before is not None and storm.task_exit.get(owner) != 0:
            found.append(
                Violation(
                    "before-task",
                    f"{owner} deployed {call.params['service']} to {svc.stage} without its before-task exiting 0 "
                    f"(exit {storm.task_exit.get(owner, 'never run')})",
                    svc.pipeline,
                )
            )
    for (release_id, stage, service), calls in updates.items():
        if len(calls) > 1:
            steps = [c.at_step for c in calls]
            found.append(
                Violation(
                    "one-update",
                    f"{len(calls)} UpdateService of {service} for {release_id} {stage} (steps {steps})",
                    release_id.split("@")[0],
                )
            )

    # 2. a stage never goes backwards, and ends on the newest commit that reached it (a service two
    # pipelines share: each pipeline's commits in order, and it ends on the last that reached it)
    by_pipeline: dict[tuple[tuple[str, str], str], list[Call]] = defaultdict(list)
    for key, service_calls in per_service.items():
        for call in service_calls:
            by_pipeline[(key, arn_owner.get(call.params["taskDefinition"], ("?",))[0].split("@")[0])].append(call)
    for (key, _pipeline), calls in by_pipeline.items():
        svc = world.services[key]
        seqs = [order.get(arn_owner.get(c.params["taskDefinition"], ("?", "?"))[0], -1) for c in calls]
        for earlier, later, call in zip(seqs, seqs[1:], calls[1:], strict=False):
            if later <= earlier:
                found.append(
                    Violation(
                        "never-backwards",
                        f"{key[0]}/{key[1]}: push #{later} deployed after push #{earlier} (step {call.at_step})",
                        svc.pipeline,
                    )
                )
    for key, svc in world.services.items():
        reached = [c for c in per_service.get(key, []) if c.deployment_id not in storm.rolled_back]
        if svc.shared_with:  # two pipelines' commits: the last deployment that stayed
            newest = max(reached, key=lambda c: c.at_step, default=None)
        else:
            newest = max(
                reached, key=lambda c: order.get(arn_owner.get(c.params["taskDefinition"], ("?",))[0], -1), default=None
            )
        expected = newest.params["taskDefinition"] if newest else svc.initial_task_definition
        actual = storm.ecs.describe_services(cluster=svc.cluster, services=[svc.service])["services"][0][
            "taskDefinition"
        ]
        if actual != expected:
            found.append(
                Violation(
                    "newest-wins",
                    f"{svc.cluster}/{svc.service} runs {_short(actual)}, expected {_short(expected)} "
                    f"({arn_owner.get(expected, 'initial')})",
                    svc.pipeline,
                )
            )

    # nothing stuck, nothing lost
    if storm.pool:
        found.append(Violation("drained", f"{len(storm.pool)} events still pending"))
    for push in storm.pushes:
        release_id = release_id_for(push.pipeline, push.commit)
        if release_id not in releases:
            found.append(
                Violation("nothing-lost", f"push #{push.seq} {push.commit[:12]} has no release", push.pipeline)
            )
    newest_push = {p.pipeline: p for p in storm.pushes}  # sorted by time: the last one per pipeline wins
    for pipeline, push in newest_push.items():
        release = releases.get(release_id_for(pipeline, push.commit))
        if release is not None and release.state is ReleaseState.SUPERSEDED:
            found.append(
                Violation(
                    "newest-not-superseded", f"the newest push #{push.seq} ended SUPERSEDED: {release.reason}", pipeline
                )
            )
    for release in releases.values():
        storm.report.states[release.state.value] += 1
        if release.image_digest:
            built_by = storm.images.get(release.image_digest, ("?", "?", "?"))[2]
            if built_by != release.build_arn:
                found.append(
                    Violation(
                        "own-image",
                        f"{release.release_id} deploys the image of build {built_by}, not of its build "
                        f"{release.build_arn}",
                        release.pipeline,
                    )
                )
        if release.state.terminal:
            pass
        elif release.state is ReleaseState.AWAITING_APPROVAL:
            if (release.release_id, release.stage or "?") not in storm.never_decided:
                found.append(
                    Violation("stuck", f"{release.release_id} waits for a decision that was made", release.pipeline)
                )
        else:
            found.append(
                Violation(
                    "stuck",
                    f"{release.release_id} is {release.state} ({release.stage}): {release.reason}",
                    release.pipeline,
                )
            )
        for stage, record in release.stages.items():
            # a stage of several services: each service's record says whether its deployment went back
            deployed = [(s.deployment_id, s.rolled_back, s.state) for s in record.services or ()]
            for deployment_id, said_rolled_back, state in deployed or [
                (record.deployment_id, record.rolled_back, record.state)
            ]:
                if not deployment_id:
                    continue
                rolled_back = deployment_id in storm.rolled_back
                said = bool(said_rolled_back)
                if said != rolled_back and (said or state is StageState.FAILED):
                    found.append(
                        Violation(
                            "rollback-reported",
                            f"{release.release_id} {stage} ({state}): rolled_back={said_rolled_back}, but ECS "
                            f"{'did' if rolled_back else 'did not'} roll its deployment {deployment_id} back",
                            release.pipeline,
                        )
                    )
    for key, svc in world.services.items():
        lock = store.lock_of(*key)
        if lock is not None:
            found.append(Violation("stuck", f"service {key[0]}/{key[1]} still locked: {lock}", svc.pipeline))
    found += _old_revisions_checked(storm, arn_owner)
    for error in storm.report.errors:
        found.append(Violation("no-errors", error))
    for operation in ("StartBuild", "RegisterTaskDefinition", "UpdateService", "RunTask", "DeregisterTaskDefinition"):
        storm.report.calls[operation] = len(storm.calls.of(operation))
    storm.report.violations = found
    return found


def _old_revisions_checked(storm: Storm, arn_owner: Mapping[str, tuple[str, str]]) -> list[Violation]:
    """Cleaning up old revisions (keepRevisions) touched only revisions the deployer registered, and
    left ACTIVE what a service runs, what a stage can roll back to, and the newest revisions kept."""
    found: list[Violation] = []
    config = storm.deps.config()

    def status(arn: str) -> str:
        return str(storm.ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"])

    for call in storm.calls.of("DeregisterTaskDefinition"):
        arn = call.params["taskDefinition"]
        if arn not in arn_owner:
            svc = storm._service_of_family(arn.rsplit("/", 1)[-1].split(":")[0])
            found.append(
                Violation(
                    "cleanup-ours",
                    f"deregistered {_short(arn)}, not registered by the deployer",
                    svc.pipeline if svc else None,
                )
            )
    for key, svc in storm.world.services.items():
        running = storm.ecs.describe_services(cluster=svc.cluster, services=[svc.service])["services"][0]
        for arn in {running["taskDefinition"], *(d["taskDefinition"] for d in running.get("deployments", []))}:
            if status(arn) != "ACTIVE":
                found.append(
                    Violation("cleanup-safe", f"{key[0]}/{key[1]} runs {_short(arn)}, deregistered", svc.pipeline)
                )
        history = storm.deps.store.stage_history(svc.pipeline, svc.stage, limit=100)
        target = rollback_target(history)
        back_to = _revision_of_service(target, svc) if target is not None else None
        if back_to is not None and status(back_to) != "ACTIVE":
            found.append(
                Violation(
                    "cleanup-safe",
                    f"{svc.pipeline} {svc.stage} can roll back to {_short(back_to)}, deregistered",
                    svc.pipeline,
                )
            )
        pipeline = config.pipeline_named(svc.pipeline)
        keep = pipeline.revisions_to_keep if pipeline else None
        ran = sorted(
            {arn for entry in history if (arn := _revision_of_service(entry, svc))},
            key=lambda arn: int(arn.rsplit(":", 1)[1]),
            reverse=True,
        )
        for arn in ran[: keep or 0]:
            if status(arn) != "ACTIVE":
                found.append(
                    Violation(
                        "cleanup-keeps",
                        f"{svc.pipeline} {svc.stage}: {_short(arn)} is among the newest "
                        f"{keep} it ran, but deregistered",
                        svc.pipeline,
                    )
                )
    return found


def _revision_of_service(entry: Mapping[str, Any], svc: StormService) -> str | None:
    """The revision a stage history entry ran on `svc`: the entry's own, or, for a stage of several
    services, that service's."""
    if entry.get("services"):
        return next(
            (
                str(s["task_definition_arn"])
                for s in entry["services"]
                if (s.get("cluster"), s.get("service")) == (svc.cluster, svc.service) and s.get("task_definition_arn")
            ),
            None,
        )
    return str(entry["task_definition_arn"]) if entry.get("task_definition_arn") else None


def _all_releases(store: ReleaseStore, pipeline: str) -> Iterator[Any]:
    for item in store._pipeline_keys(pipeline, "gsi1sk > :k", {":k": "0"}):
        release = store.get(str(item["pk"]).removeprefix("RELEASE#"))
        if release is not None:
            yield release


@contextmanager
def seeded_moto(seed: int) -> Iterator[None]:
    from moto import mock_aws
    from moto.moto_api._internal import mock_random

    with mock_aws():
        mock_random.seed(seed)
        yield


def run_storm(
    pipelines: int = 20,
    pushes: int = 500,
    seed: int | None = None,
    *,
    odds: Odds | None = None,
    printer: Callable[[str], None] | None = print,
    duos: int = 0,
) -> StormReport:
    """Run one storm in moto (in process) and check its invariants. The seed is printed first.
    `duos`: pairs of pipelines whose dev stage deploys two services, one shared within the pair."""
    chosen = seed if seed is not None else seed_from_env()
    if printer:
        pairs = f" (+{duos} pairs sharing a service)" if duos else ""
        printer(
            f"storm seed {chosen} ({SEED_VARIABLE}={chosen} replays it): {pipelines} pipelines{pairs}, {pushes} pushes"
        )
    with seeded_moto(chosen):
        storm = Storm(pipelines, pushes, chosen, odds, duos=duos)
        report = storm.run()
        check_invariants(storm)
    if printer:
        printer(report.summary())
    return report
