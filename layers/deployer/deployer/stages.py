"""Deploy one stage of a release: the four ECS calls, guarded by ordering and the service lock.

1. DescribeServices: live desiredCount, scheduling strategy, launch type, controller, current
   task definition (and, when the service scales, its Application Auto Scaling range).
2. Validate the stage's rollout for that service with `deployer.rollout`; refused -> the release
   ends INVALID_CONFIG and nothing is registered or updated. The same for the stage's scheduled
   tasks (`schedules:`): each must run the family of one of the stage's services in its cluster
   (`deployer.housekeeping`).
3. DescribeTaskDefinition (with tags), clone, swap images, set the stage's environment variables
   and secret references (`deployer.settings`), RegisterTaskDefinition; the revision is recorded
   as the deployer's (only those are ever cleaned up, `housekeeping.clean_up`). A container the
   stage names that the task definition lacks (or secrets without an execution role, or a clone
   above ECS's size limit) ends the release DEPLOY_FAILED with every problem, nothing registered.
4. With `before:`, RunTask of the new revision first (`deployer.before`); the stage goes on when
   its STOPPED event says the container exited 0.
5. UpdateService with the new task definition and the validated deploymentConfiguration, never
   desiredCount (autoscaling owns it; REFERENCE.md "ECS rolling update").
6. Record the PRIMARY deployment id, so ECS's deployment events find this stage.

Every step is safe to repeat: the registered revision and the deployment id are recorded on the
release as soon as they exist, so a redelivered event resumes instead of registering again.

A stage of several services (`services: [web, worker]`) takes every service's lock in one global
order (`pipelines.targets.lock_order`), describes and validates every service before the first
RegisterTaskDefinition (one refusal refuses the stage, listing every problem), registers one
revision per distinct task definition (services that run the same revision share the new one),
then sends one UpdateService per service and records each deployment id. `fail_services` puts the
others back when one fails. The stage's settings are keyed by container: each revision gets those
of the containers it has, and a container that none of the services' task definitions has refuses
the stage before any change. A `before:` task runs once, with the new revision of the service it
names (`before.service`), before the first UpdateService.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from deployer import aws, before, ecs_deployments
from deployer import settings as deploy_settings
from deployer.errors import DeploymentError
from deployer.outcomes import Outcome
from deployer.pipelines.targets import ServiceTarget, lock_order
from deployer.releases.model import Release, ReleaseState, ServiceRecord, StageRecord, StageState, now_iso
from deployer.releases.store import ReleaseStore
from deployer.rollout.model import ServiceFacts
from deployer.rollout.validate import Validation
from deployer.rollout.validate import validate as validate_rollout
from deployer.taskdef.clone import changed_settings, clone_problems
from deployer.taskdef.register import describe_task_definition, find_registered_clone, register_clone_of

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ServiceTypeDef

    from deployer.housekeeping import ScheduledTasks
    from deployer.pipelines.schema import Pipeline, Stage

DEPLOYABLE_FROM = frozenset({ReleaseState.BUILT, ReleaseState.DEPLOYING, ReleaseState.DEPLOYED})


@dataclass(frozen=True)
class ServiceView:
    """What DescribeServices says about the service, in the shape the deployer needs."""

    cluster: str
    service: str
    task_definition: str
    facts: ServiceFacts
    primary_deployment_id: str | None
    # the service as DescribeServices returned it: a before-task is placed and networked as it is
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class StageResult:
    outcome: Outcome
    release: Release
    detail: str = ""
    # (release id, stage) of each release that now holds a lock this one freed (a stage of several
    # services may free several, each to its own waiter)
    handovers: tuple[tuple[str, str], ...] = ()

    @property
    def handover(self) -> tuple[str, str] | None:
        return self.handovers[0] if self.handovers else None


# DescribeServices: "You may specify up to 10 services to describe in a single operation"
# (botocore's ECS model; Amazon ECS API Reference, DescribeServices).
SERVICES_PER_DESCRIBE = 10


def describe_service(ecs: ECSClient, cluster: str, service: str) -> ServiceView:
    views, missing = describe_services(ecs, cluster, [service])
    if missing:
        raise DeploymentError(missing[0])
    return views[service]


def describe_services(ecs: ECSClient, cluster: str, services: list[str]) -> tuple[dict[str, ServiceView], list[str]]:
    """DescribeServices for `services` of `cluster` (10 per call): the ACTIVE ones by name, and why
    each other one cannot be deployed ("ECS service dev/web not found (...)")."""
    views: dict[str, ServiceView] = {}
    missing: list[str] = []
    for start in range(0, len(services), SERVICES_PER_DESCRIBE):
        batch = services[start : start + SERVICES_PER_DESCRIBE]
        response = aws.call("DescribeServices", ecs.describe_services, cluster=cluster, services=batch)
        described = {str(svc.get("serviceName")): svc for svc in response.get("services", [])}
        failures = {str(f.get("arn", "")).rsplit("/", 1)[-1]: f for f in response.get("failures", [])}
        for service in batch:
            svc = described.get(service)
            if svc is None:
                failure = failures.get(service)
                reason = f"{failure.get('arn', service)}: {failure.get('reason', 'unknown')}" if failure else ""
                missing.append(f"ECS service {cluster}/{service} not found ({reason or 'no such service'})")
                continue
            if svc.get("status") != "ACTIVE":
                missing.append(f"ECS service {cluster}/{service} is {svc.get('status')}, not ACTIVE")
                continue
            primary = next((d for d in svc.get("deployments", []) if d.get("status") == "PRIMARY"), None)
            views[service] = ServiceView(
                cluster=cluster,
                service=service,
                task_definition=svc["taskDefinition"],
                facts=_facts(svc),
                primary_deployment_id=primary.get("id") if primary else None,
                raw=dict(svc),
            )
    return views, missing


def _facts(svc: ServiceTypeDef) -> ServiceFacts:
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] = "FARGATE"
    if svc.get("launchType") in {"EC2", "EXTERNAL"}:
        launch_type = svc["launchType"]  # type: ignore[assignment]
    elif svc.get("capacityProviderStrategy"):
        providers = [p.get("capacityProvider", "") for p in svc["capacityProviderStrategy"]]
        launch_type = "FARGATE" if all(p.startswith("FARGATE") for p in providers) else "EC2"
    controller = svc.get("deploymentController", {}).get("type", "ECS")
    balancers = svc.get("loadBalancers", [])
    return ServiceFacts(
        desired_count=int(svc.get("desiredCount", 0)),
        scheduling_strategy="DAEMON" if svc.get("schedulingStrategy") == "DAEMON" else "REPLICA",
        launch_type=launch_type,
        deployment_controller=controller if controller in {"ECS", "CODE_DEPLOY", "EXTERNAL"} else "ECS",
        has_load_balancer=bool(balancers),
        has_alternate_target_group=any("advancedConfiguration" in lb for lb in balancers),
    )


def deployment_configuration(stage: Stage, validation: Validation, release: Release) -> dict[str, Any]:
    """What UpdateService sends: the validated rollout, plus the PAUSE hook where the stage asks
    for an approval during the deployment (`approval: {at: ...}`). The hook times out when the
    approval does, and ECS then rolls back (`ecs_deployments.PAUSE_TIMEOUT_ACTION`). A rollback
    release is never paused: it was asked for by someone allowed to."""
    configuration = dict(validation.deployment_configuration)
    approval = stage.approval
    if approval is None or approval.at is None or release.is_rollback:
        return configuration
    return ecs_deployments.with_pause_hook(configuration, approval.at, approval.expires_in_hours * 60)


def autoscaling_range(
    autoscaling: ApplicationAutoScalingClient | None, cluster: str, service: str
) -> tuple[int, int] | None:
    """The service's Application Auto Scaling min..max capacity, if it has a scalable target."""
    return autoscaling_ranges(autoscaling, cluster, [service]).get(service)


def autoscaling_ranges(
    autoscaling: ApplicationAutoScalingClient | None, cluster: str, services: list[str]
) -> dict[str, tuple[int, int]]:
    """Each service's Application Auto Scaling min..max capacity, for those with a scalable target:
    one DescribeScalableTargets for all of them (it answers up to 50 targets per page)."""
    if autoscaling is None or not services:
        return {}
    found: dict[str, tuple[int, int]] = {}
    kwargs: dict[str, Any] = {
        "ServiceNamespace": "ecs",
        "ResourceIds": [f"service/{cluster}/{service}" for service in services],
        "ScalableDimension": "ecs:service:DesiredCount",
    }
    while True:
        response = aws.call("DescribeScalableTargets", autoscaling.describe_scalable_targets, **kwargs)
        for target in response.get("ScalableTargets", []):
            name = str(target.get("ResourceId", "")).rsplit("/", 1)[-1]
            found.setdefault(name, (int(target["MinCapacity"]), int(target["MaxCapacity"])))
        if not response.get("NextToken"):
            return found
        kwargs["NextToken"] = response["NextToken"]


class StageDeployer:
    """Deploys stages of releases; shared by on_build, on_deployment and on_approval."""

    def __init__(
        self,
        store: ReleaseStore,
        ecs: ECSClient,
        autoscaling: ApplicationAutoScalingClient | None = None,
        schedules: ScheduledTasks | None = None,
    ) -> None:
        self.store = store
        self.ecs = ecs
        self.autoscaling = autoscaling
        self._schedules = schedules

    @property
    def schedules(self) -> ScheduledTasks:
        """The stages' scheduled tasks (EventBridge Scheduler and rules); clients built on first use."""
        if self._schedules is None:
            from deployer.housekeeping import ScheduledTasks

            self._schedules = ScheduledTasks(aws.client("scheduler"), aws.client("events"))
        return self._schedules

    def deploy(self, release: Release, pipeline: Pipeline, stage: Stage) -> StageResult:
        store = self.store
        if release.state.terminal:
            return StageResult(Outcome.IGNORED, release, f"release is {release.state}")
        existing = release.stages.get(stage.name)
        if existing and existing.state is not StageState.QUEUED and existing.all_started:
            started = ", ".join(s.deployment_id or "" for s in existing.services or ()) or existing.deployment_id
            return StageResult(Outcome.ALREADY_RUNNING, release, f"deployment {started} already started")
        targets = pipeline.targets(stage)
        keys = [(t.cluster, t.service) for t in targets]

        if not store.enter_stage(release, stage.name):
            newer = store.stage_holder(pipeline.name, stage.name)
            store.transition(
                release,
                ReleaseState.SUPERSEDED,
                stage=stage.name,
                reason=f"a newer release ({newer}) already reached stage {stage.name}",
            )
            # It may hold service locks (handed over by the release it queued behind): pass them on.
            return StageResult(
                Outcome.SUPERSEDED, release, handovers=tuple(store.release_services(keys, release.release_id))
            )

        handovers: list[tuple[str, str]] = []
        for target in lock_order(targets):
            lock = store.acquire_service(target.cluster, target.service, release, stage.name)
            if lock.superseded_waiter and lock.superseded_waiter != release.release_id:
                handovers += self._supersede_waiter(lock.superseded_waiter, release, stage.name)
            if lock.acquired:
                continue
            if lock.superseded_waiter == release.release_id:
                store.transition(
                    release,
                    ReleaseState.SUPERSEDED,
                    stage=stage.name,
                    reason=f"a newer release is already queued for {target.key}",
                )
                # the locks taken before this one (in lock order) go to whoever waits for them
                handovers += store.release_services(keys, release.release_id)
                return StageResult(Outcome.SUPERSEDED, release, handovers=tuple(handovers))
            record = self._queued_record(stage, targets, existing)
            held = [t.service for t in lock_order(targets) if t.key < target.key]
            holding = f" (holding {', '.join(held)}; locks are taken in one order)" if held else ""
            store.transition(
                release,
                ReleaseState.DEPLOYING,
                stage=stage.name,
                reason=f"queued: {lock.holder} is deploying {target.key}{holding}",
                stages={**release.stages, stage.name: record},
            )
            return StageResult(Outcome.QUEUED, release, f"waiting for {lock.holder}", handovers=tuple(handovers))

        try:
            result = self._deploy_locked(release, pipeline, stage, targets)
        except DeploymentError as exc:
            result = self.fail(release, stage, ReleaseState.DEPLOY_FAILED, str(exc))
        return replace(result, handovers=(*handovers, *result.handovers))

    @staticmethod
    def _queued_record(stage: Stage, targets: tuple[ServiceTarget, ...], existing: StageRecord | None) -> StageRecord:
        if not stage.several_services:
            return StageRecord(StageState.QUEUED, targets[0].cluster, targets[0].service, started_at=now_iso())
        if existing is not None and existing.services is not None:
            return replace(existing, state=StageState.QUEUED)
        return StageRecord(
            StageState.QUEUED,
            stage.cluster,
            "+".join(t.service for t in targets),
            started_at=now_iso(),
            services=[
                ServiceRecord(t.cluster, t.service, StageState.QUEUED, containers=list(t.containers)) for t in targets
            ],
        )

    # -- validation: every service, before any change ------------------------------------------

    def _validate(
        self, release: Release, stage: Stage, targets: tuple[ServiceTarget, ...]
    ) -> tuple[dict[str, ServiceView], dict[str, Validation], dict[str, dict[str, Any]], _Problems]:
        """Describe and validate every service of the stage: its rollout for its desired count and
        autoscaling range (`validate_rollout`); unless the release redeploys revisions that exist (a
        rollback), that each scheduled task runs one of the services' families in the cluster, and
        that the clones can be registered: the containers to swap and those the settings name are
        in the task definitions, secrets have an execution role, each clone fits ECS's size limit
        (`clone_problems`). Returns the views, validations and described task definitions by
        service, and every problem found (empty: go on). A service that does not exist or is not
        ACTIVE raises DeploymentError."""
        views, missing = describe_services(self.ecs, stage.cluster, [t.service for t in targets])
        if missing:
            raise DeploymentError("; ".join(missing))
        ranges = autoscaling_ranges(self.autoscaling, stage.cluster, [t.service for t in targets])
        several = len(targets) > 1
        problems = _Problems()
        validations: dict[str, Validation] = {}
        for target in targets:
            facts = views[target.service].facts
            if target.service in ranges:
                facts = facts.replace(desired_range=ranges[target.service])
            validation = validate_rollout(stage.deployment_configuration(), facts)
            validations[target.service] = validation
            if not validation.valid:
                reason = "; ".join(f.message for f in validation.errors)
                problems.config.append(f"{target.service}: {reason}" if several else reason)
        described: dict[str, dict[str, Any]] = {}
        if release.target_task_definition_arn or release.target_task_definitions:
            return views, validations, described, problems
        if stage.schedules:
            # each scheduled task must run one of the services' families in this cluster (a rollback
            # is never held back by them: its completion moves them back, or says why not)
            refused = self.schedules.check(stage, *_families(targets, views))
            if refused:
                problems.config.append(f"scheduled tasks refused: {'; '.join(refused)}")
        if release.image_uri is None:
            raise DeploymentError(f"release {release.release_id} has no image to deploy")
        registered = _registered(release.stages.get(stage.name))
        settings = stage.deploy_settings()
        for target in targets:
            current = views[target.service].task_definition
            if current not in described and target.key not in registered:
                described[current] = describe_task_definition(self.ecs, current)
        if not several:
            target = targets[0]
            if target.key not in registered:
                images = dict.fromkeys(target.containers, release.image_uri)
                described_now = described[views[target.service].task_definition]
                problems.clone += clone_problems(described_now, images, settings)
            return views, validations, described, problems
        # several services: each clone with the settings of the containers its task definition has
        seen: set[tuple[str, tuple[str, ...]]] = set()
        for target in targets:
            current = views[target.service].task_definition
            if target.key in registered or (current, target.containers) in seen:
                continue
            seen.add((current, target.containers))
            sharing = [t.service for t in targets if views[t.service].task_definition == current]
            images = dict.fromkeys(target.containers, release.image_uri)
            own = settings.only(containers_of(described[current])) if settings else None
            for problem in clone_problems(described[current], images, own):
                problems.clone.append(f"{', '.join(sharing) if len(sharing) > 1 else target.service}: {problem}")
        if settings and not registered:
            running: dict[str, list[str]] = {}
            for target in targets:
                running.setdefault(views[target.service].task_definition, []).append(target.service)
            lacking = settings_in_none(settings, described, running)
            if lacking:
                problems.clone.append(lacking)
        return views, validations, described, problems

    def _deploy_locked(
        self, release: Release, pipeline: Pipeline, stage: Stage, targets: tuple[ServiceTarget, ...]
    ) -> StageResult:
        views, validations, described, problems = self._validate(release, stage, targets)
        if problems:
            # a refused rollout or scheduled task is the configuration's (INVALID_CONFIG); clones that
            # cannot be registered alone fail the deployment, as ECS would refuse the revision
            state = ReleaseState.INVALID_CONFIG if problems.config else ReleaseState.DEPLOY_FAILED
            suffix = "" if problems.config else " (nothing was registered)"
            return self.fail(release, stage, state, f"stage {stage.name}: {problems.text()}{suffix}")
        if stage.several_services:
            return self._deploy_several(release, pipeline, stage, targets, views, validations, described)
        target = targets[0]
        view = views[target.service]
        validation = validations[target.service]
        store = self.store
        images = dict.fromkeys(target.containers, release.image_uri or "")
        record = release.stages.get(stage.name)
        if (record is None or record.task_definition_arn is None) and release.target_task_definition_arn:
            # a rollback redeploys a revision that exists: nothing to register
            rollback_to = release.target_task_definition_arn
            record = self._record(
                release,
                stage,
                f"rolling {stage.name} back to {_short_arn(rollback_to)}",
                task_definition_arn=rollback_to,
                previous_task_definition_arn=view.task_definition,
            )
        elif record is None or record.task_definition_arn is None:
            current = described.get(view.task_definition) or describe_task_definition(self.ecs, view.task_definition)
            settings = stage.deploy_settings()
            changed = deploy_settings.summary(changed_settings(current, settings)) if settings else ""
            found = None
            if record is not None and record.registering_at:
                # an earlier delivery got as far as registering: reuse its revision if it exists
                found = find_registered_clone(self.ecs, current, images, settings)
            else:
                self._record(
                    release,
                    stage,
                    f"registering a revision of {_family(view.task_definition)}"
                    + (f" with {changed}" if changed else ""),
                    previous_task_definition_arn=view.task_definition,
                    registering_at=now_iso(),
                )
            registered = found or register_clone_of(self.ecs, current, images, settings)
            # Before the stage records it: a revision on record is one the deployer may clean up later.
            store.record_registration(pipeline.name, stage.name, release.release_id, registered.arn)
            record = self._record(
                release,
                stage,
                f"registered {_short_arn(registered.arn)}" + (f" with {changed}" if changed else ""),
                task_definition_arn=registered.arn,
                previous_task_definition_arn=registered.previous_arn,
                settings=changed or None,
            )
        new_arn = record.task_definition_arn
        assert new_arn is not None

        if stage.before is not None and not release.is_rollback and record.before_state != before.BeforeState.SUCCEEDED:
            return self._before_task(release, pipeline, stage, view, record, new_arn)

        deployment_id = self._update_service(release, stage, target, view, new_arn, validation)
        store.index_deployment(deployment_id, release.release_id, stage.name, target.cluster, target.service)
        record = replace(record, state=StageState.DEPLOYING, deployment_id=deployment_id)
        store.transition(
            release,
            ReleaseState.DEPLOYING,
            stage=stage.name,
            reason=f"ECS deployment {deployment_id} started ({_short_arn(new_arn)})",
            stages={**release.stages, stage.name: record},
        )
        return StageResult(Outcome.DEPLOYING, release, deployment_id)

    def _before_task(  # noqa: PLR0917 - the stage as _deploy_locked found it
        self, release: Release, pipeline: Pipeline, stage: Stage, view: ServiceView, record: StageRecord, new_arn: str
    ) -> StageResult:
        """The stage's `before` task, before any UpdateService (`deployer.before`): RunTask once (its
        intent recorded first, its clientToken the same on every redelivery) with `new_arn` (the new
        revision of the service it runs with, `view`), then wait for its STOPPED event. A task already
        running is waited for."""
        assert stage.before is not None
        step = stage.before.task
        if record.before_state == before.BeforeState.RUNNING:
            return StageResult(Outcome.ALREADY_RUNNING, release, f"before-task {step} runs as {record.before_task_arn}")
        if record.before_state == before.BeforeState.FAILED:
            return StageResult(Outcome.IGNORED, release, f"before-task {step} failed")
        container = pipeline.before_container(stage)
        described = describe_task_definition(self.ecs, new_arn)["taskDefinition"]
        definitions = {str(c.get("name")): c for c in described.get("containerDefinitions", [])}
        if container is None or container not in definitions:
            reason = (
                f"stage {stage.name}: before.container {container or '(none named)'} is not a container of "
                f"{_short_arn(new_arn)} ({', '.join(definitions) or 'no containers'}): nothing was run or deployed"
            )
            return self.fail(release, stage, ReleaseState.INVALID_CONFIG, reason)
        token = record.before_token or before.token_for(release.release_id, stage.name, new_arn)
        with_service = f", service {view.service}" if stage.several_services else ""
        if record.before_state is None:
            self.store.index_before_task(token, release.release_id, stage.name)
            region = new_arn.split(":")[3] if new_arn.count(":") >= 5 else None
            record = replace(
                record,
                before_task=step,
                before_state=before.BeforeState.STARTING.value,
                before_token=token,
                before_container=container,
                before_started_at=now_iso(),
                before_logs=before.log_target(definitions[container], region),
            )
            self.store.transition(
                release,
                ReleaseState.DEPLOYING,
                stage=stage.name,
                reason=f"starting before-task {step} ({_short_arn(new_arn)}, container {container}{with_service})",
                stages={**release.stages, stage.name: record},
            )
        request = before.run_task_request(
            stage.cluster,
            view.raw,
            new_arn,
            container,
            stage.before.command,
            token,
            release_id=release.release_id,
            stage=stage.name,
            step=step,
        )
        task_arn = before.run_task(self.ecs, request)
        record = replace(record, before_state=before.BeforeState.RUNNING.value, before_task_arn=task_arn)
        names = stage.service_names
        updated = f"{', '.join(names)} {'are' if len(names) > 1 else 'is'} updated when it exits 0"
        self.store.transition(
            release,
            ReleaseState.DEPLOYING,
            stage=stage.name,
            reason=f"before-task {step} running: task {_short_arn(task_arn)} on {stage.cluster} "
            f"({_short_arn(new_arn)}, container {container}{with_service}); {updated}",
            stages={**release.stages, stage.name: record},
            announce=True,
        )
        return StageResult(Outcome.BEFORE_TASK, release, task_arn)

    def _update_service(  # noqa: PLR0917 - one service of the stage, as validated
        self,
        release: Release,
        stage: Stage,
        target: ServiceTarget,
        view: ServiceView,
        new_arn: str,
        validation: Validation,
    ) -> str:
        """UpdateService to `new_arn` (never desiredCount); the PRIMARY deployment's id. A retry after
        an UpdateService that went through finds the service on `new_arn` already: its deployment."""
        if view.task_definition == new_arn and view.primary_deployment_id:
            return view.primary_deployment_id
        response = aws.call(
            "UpdateService",
            self.ecs.update_service,
            cluster=target.cluster,
            service=target.service,
            taskDefinition=new_arn,
            deploymentConfiguration=deployment_configuration(stage, validation, release),
        )
        deployment_id = next(
            (d["id"] for d in response["service"].get("deployments", []) if d.get("status") == "PRIMARY"),
            "",
        )
        if not deployment_id:
            raise DeploymentError(f"UpdateService on {target.key} returned no PRIMARY deployment")
        return str(deployment_id)

    def _record(
        self,
        release: Release,
        stage: Stage,
        reason: str,
        *,
        previous_task_definition_arn: str,
        task_definition_arn: str | None = None,
        registering_at: str | None = None,
        settings: str | None = None,
    ) -> StageRecord:
        """Record the stage (of one service) DEPLOYING with its revision (or the intent to register one)."""
        record = StageRecord(
            StageState.DEPLOYING,
            stage.cluster,
            stage.service_names[0],
            started_at=now_iso(),
            task_definition_arn=task_definition_arn,
            previous_task_definition_arn=previous_task_definition_arn,
            registering_at=registering_at,
            settings=settings,
        )
        self.store.transition(
            release,
            ReleaseState.DEPLOYING,
            stage=stage.name,
            reason=reason,
            stages={**release.stages, stage.name: record},
        )
        return record

    # -- several services -----------------------------------------------------------------------

    def _deploy_several(  # noqa: PLR0917 - what _validate found
        self,
        release: Release,
        pipeline: Pipeline,
        stage: Stage,
        targets: tuple[ServiceTarget, ...],
        views: dict[str, ServiceView],
        validations: dict[str, Validation],
        described: dict[str, dict[str, Any]],
    ) -> StageResult:
        """Register the revisions (one per distinct task definition and containers), run the stage's
        before-task (once, with the new revision of the service it names), then one UpdateService per
        service, in the stage's order; each step recorded as it is done, so a redelivered event
        resumes where this one stopped."""
        store = self.store
        existing = release.stages.get(stage.name)
        known = {s.key: s for s in existing.services or ()} if existing is not None else {}
        services = {
            t.key: known.get(t.key)
            or ServiceRecord(
                t.cluster,
                t.service,
                StageState.DEPLOYING,
                containers=list(t.containers),
                previous_task_definition_arn=views[t.service].task_definition,
            )
            for t in targets
        }
        services = {k: replace(v, state=StageState.DEPLOYING) for k, v in services.items()}
        started_at = (
            existing.started_at if existing is not None and existing.state is StageState.DEPLOYING else now_iso()
        )

        def save(reason: str, **fields: Any) -> StageRecord:
            # the stage's own fields (its before-task, its settings' summary) stay as recorded
            current = release.stages.get(stage.name)
            kept = {k: getattr(current, k) for k in _STAGE_WIDE} if current is not None else {}
            record = StageRecord(
                StageState.DEPLOYING,
                stage.cluster,
                "+".join(t.service for t in targets),
                started_at=started_at,
                services=[services[t.key] for t in targets],
                **{**kept, **fields},
            )
            store.transition(
                release,
                ReleaseState.DEPLOYING,
                stage=stage.name,
                reason=reason,
                stages={**release.stages, stage.name: record},
            )
            return record

        if release.target_task_definitions is not None:  # a rollback: the revisions exist
            for target in targets:
                back_to = release.target_task_definitions.get(target.key)
                if back_to is None:
                    raise DeploymentError(f"the rollback of {stage.name} names no revision for {target.key}")
                services[target.key] = replace(services[target.key], task_definition_arn=back_to)
            save(
                f"rolling {stage.name} back: "
                + ", ".join(f"{t.service} to {_short_arn(services[t.key].task_definition_arn or '')}" for t in targets)
            )
        else:
            self._register_several(release, pipeline, stage, targets, views, described, services, save)

        record = release.stages[stage.name]
        if stage.before is not None and not release.is_rollback and record.before_state != before.BeforeState.SUCCEEDED:
            runs_with = pipeline.before_target(stage)
            if runs_with is None:
                reason = (
                    f"stage {stage.name}: before.service {stage.before.service or '(none named)'} is not one of its "
                    f"services ({', '.join(stage.service_names)}): nothing was run or deployed"
                )
                return self.fail(release, stage, ReleaseState.INVALID_CONFIG, reason)
            new_arn = services[runs_with.key].task_definition_arn
            assert new_arn is not None
            return self._before_task(release, pipeline, stage, views[runs_with.service], record, new_arn)

        started: list[str] = []
        try:
            for target in targets:
                current = services[target.key]
                if current.deployment_id:
                    continue
                arn = current.task_definition_arn
                assert arn is not None
                deployment_id = self._update_service(
                    release, stage, target, views[target.service], arn, validations[target.service]
                )
                store.index_deployment(deployment_id, release.release_id, stage.name, target.cluster, target.service)
                services[target.key] = replace(current, deployment_id=deployment_id)
                started.append(f"{target.service} {deployment_id} ({_short_arn(arn)})")
        except DeploymentError as exc:
            # ECS refused one UpdateService: the services already updated go back (fail_services)
            record = replace(
                release.stages[stage.name],
                state=StageState.DEPLOYING,
                services=[services[t.key] for t in targets],
            )
            failed = next(t for t in targets if not services[t.key].deployment_id)
            failed_record = replace(
                services[failed.key], state=StageState.FAILED, reason=str(exc), finished_at=now_iso()
            )
            return self.fail_services(
                release,
                stage.name,
                record.with_service(failed_record),
                failed=failed_record,
                why=f"{failed.service}: {exc}",
                stage=stage,
            )
        record = save(f"ECS deployments started: {', '.join(started) or 'all already running'}")
        return StageResult(Outcome.DEPLOYING, release, ", ".join(s.deployment_id or "" for s in record.services or ()))

    def _register_several(  # noqa: PLR0917 - the stage as _deploy_several holds it
        self,
        release: Release,
        pipeline: Pipeline,
        stage: Stage,
        targets: tuple[ServiceTarget, ...],
        views: dict[str, ServiceView],
        described: dict[str, dict[str, Any]],
        services: dict[str, ServiceRecord],
        save: Any,
    ) -> None:
        """One RegisterTaskDefinition per group of services that run the same revision and swap the
        same containers: they get the same new revision, with the stage's settings for the containers
        it has. The intent to register is recorded for all first; a service that recorded it in an
        earlier delivery looks for that revision before registering (`find_registered_clone`).
        Each revision is recorded as the deployer's before the stage records it (cleaning up old
        revisions touches only those)."""
        groups: dict[tuple[str, tuple[str, ...]], list[ServiceTarget]] = {}
        for target in targets:
            if services[target.key].task_definition_arn is None:
                groups.setdefault((views[target.service].task_definition, target.containers), []).append(target)
        if not groups:
            return
        had_intent = {key for key, svc in services.items() if svc.registering_at}
        if any(t.key not in had_intent for group in groups.values() for t in group):
            at = now_iso()
            for group in groups.values():
                for target in group:
                    if target.key not in had_intent:
                        services[target.key] = replace(services[target.key], registering_at=at)
            plural = "s" if len(groups) > 1 else ""
            which = "; ".join(
                f"{_short_arn(current).split(':')[0]} for {', '.join(t.service for t in group)}"
                for (current, _), group in groups.items()
            )
            save(f"registering {len(groups)} revision{plural}: {which}")
        settings = stage.deploy_settings()
        summary = release.stages[stage.name].settings
        for (current, containers), group in groups.items():
            images = dict.fromkeys(containers, release.image_uri or "")
            base = described.get(current) or describe_task_definition(self.ecs, current)
            own = settings.only(containers_of(base)) if settings else None
            changed = deploy_settings.summary(changed_settings(base, own)) if own else ""
            found = None
            if any(t.key in had_intent for t in group):
                found = find_registered_clone(self.ecs, base, images, own)
            registered = found or register_clone_of(self.ecs, base, images, own)
            self.store.record_registration(pipeline.name, stage.name, release.release_id, registered.arn)
            for target in group:
                services[target.key] = replace(
                    services[target.key],
                    task_definition_arn=registered.arn,
                    previous_task_definition_arn=registered.previous_arn,
                )
            with_settings = f" with {changed}" if changed else ""
            if changed:  # `deployer status` and Slack: what each new revision sets, by revision
                summary = "; ".join(filter(None, [summary, f"{changed} in {_short_arn(registered.arn)}"]))
            save(
                f"registered {_short_arn(registered.arn)} for {', '.join(t.service for t in group)}{with_settings}",
                **({"settings": summary} if changed else {}),
            )

    def fail_services(
        self,
        release: Release,
        stage_name: str,
        record: StageRecord,
        *,
        failed: ServiceRecord | None,
        why: str,
        stage: Stage | None,
        state: ReleaseState = ReleaseState.DEPLOY_FAILED,
    ) -> StageResult:
        """A stage of several services failed (`failed` is the service that did, already recorded
        FAILED in `record`; `why` says what happened). Every other service is put back so the stage
        ends as it started: a deployment still in flight is stopped with StopServiceDeployment
        ROLLBACK (ECS returns the service to its previous revision); a service whose deployment
        completed gets UpdateService back to its previous revision. Each service is recorded as soon
        as it is put back, so a retried event resumes. Then the release ends `state` with what
        happened to each service, and every lock goes to its waiter."""
        store = self.store
        assert record.services is not None
        for svc in list(record.services):
            if (failed is not None and svc.key == failed.key) or svc.undone or svc.state is StageState.FAILED:
                continue
            undone = self._put_back(svc)
            if undone != svc:
                record = record.with_service(undone)
                store.save(release, stages={**release.stages, stage_name: record})
        ended = replace(record, state=StageState.FAILED, finished_at=now_iso())
        failed_first = sorted(ended.services or (), key=lambda s: failed is None or s.key != failed.key)
        what = "; ".join(f"{s.service}: {s.reason}" for s in failed_first if s.reason)
        reason = f"{stage_name} failed ({why}); {what}" if what else f"{stage_name} failed ({why})"
        ended = replace(ended, reason=reason)
        store.transition(release, state, stage=stage_name, reason=reason, stages={**release.stages, stage_name: ended})
        keys = list(dict.fromkeys([*ended.service_keys(), *(_stage_keys(stage) if stage else [])]))
        handovers = tuple(store.release_services(keys, release.release_id))
        outcome = Outcome.INVALID_CONFIG if state is ReleaseState.INVALID_CONFIG else Outcome.FAILED
        return StageResult(outcome, release, reason, handovers)

    def _put_back(self, svc: ServiceRecord) -> ServiceRecord:
        """`svc` back on its previous revision (see `fail_services`), recorded with how."""
        done = now_iso()
        if not svc.deployment_id:
            return replace(
                svc,
                state=StageState.FAILED,
                finished_at=done,
                reason="not deployed (the stage failed before it started)",
            )
        previous = svc.previous_task_definition_arn
        try:
            if svc.state is StageState.DEPLOYING:
                view = ecs_deployments.in_flight(self.ecs, svc.cluster, svc.service)
                if view is not None:
                    ecs_deployments.stop_with_rollback(self.ecs, view.arn)
                    return replace(
                        svc,
                        state=StageState.FAILED,
                        finished_at=done,
                        rolled_back=True,
                        undone="stopped",
                        reason=f"stopped in flight (StopServiceDeployment ROLLBACK of {view.arn}): ECS returns it to "
                        f"{_short_arn(previous or 'its previous revision')}",
                    )
            if previous is None:
                return replace(svc, undone="kept", reason="left on its new revision: no previous revision on record")
            response = aws.call(
                "UpdateService",
                self.ecs.update_service,
                cluster=svc.cluster,
                service=svc.service,
                taskDefinition=previous,
            )
        except DeploymentError as exc:
            return replace(svc, undone="failed", reason=f"could not be put back: {exc}")
        rollback = next(
            (str(d["id"]) for d in response["service"].get("deployments", []) if d.get("status") == "PRIMARY"), None
        )
        completed = "completed, then" if svc.state is StageState.DEPLOYED else "finished before it could be stopped;"
        return replace(
            svc,
            rolled_back=True,
            undone="updated",
            rollback_deployment_id=rollback,
            reason=f"{completed} rolled back by the deployer to {_short_arn(previous)} (UpdateService"
            + (f", deployment {rollback})" if rollback else ")"),
        )

    # -- ending --------------------------------------------------------------------------------

    def fail(self, release: Release, stage: Stage, state: ReleaseState, reason: str) -> StageResult:
        """End the release in `state` and hand every service lock of the stage to whoever waits."""
        store = self.store
        record = release.stages.get(stage.name)
        if record is None and stage.several_services:
            record = StageRecord(
                StageState.FAILED,
                stage.cluster,
                "+".join(stage.service_names),
                started_at=now_iso(),
                services=[
                    ServiceRecord(stage.cluster, name, StageState.FAILED, reason="not deployed")
                    for name in stage.service_names
                ],
            )
        elif record is None:
            record = StageRecord(StageState.FAILED, stage.cluster, stage.service_names[0], started_at=now_iso())
        elif record.services is not None:
            # nothing of the stage was deployed (a refusal, a failed before-task): each service says so
            record = replace(
                record,
                services=[
                    svc
                    if svc.deployment_id or svc.state is StageState.FAILED
                    else replace(
                        svc, state=StageState.FAILED, finished_at=now_iso(), reason=svc.reason or "not deployed"
                    )
                    for svc in record.services
                ],
            )
        record = replace(record, state=StageState.FAILED, finished_at=now_iso(), reason=reason)
        store.transition(release, state, stage=stage.name, reason=reason, stages={**release.stages, stage.name: record})
        keys = list(dict.fromkeys([*record.service_keys(), *_stage_keys(stage)]))
        handovers = tuple(store.release_services(keys, release.release_id))
        outcome = Outcome.INVALID_CONFIG if state is ReleaseState.INVALID_CONFIG else Outcome.FAILED
        return StageResult(outcome, release, reason, handovers)

    def _supersede_waiter(self, waiter_id: str, newer: Release, stage: str) -> list[tuple[str, str]]:
        """End a waiter a newer release replaced; the locks it took before the one it waited for (a
        stage of several services) go to whoever waits for them."""
        waiter = self.store.get(waiter_id)
        if waiter is None or waiter.state.terminal:
            return []
        record = waiter.stages.get(stage)
        stages = dict(waiter.stages)
        if record is not None and record.state is StageState.QUEUED:
            stages.pop(stage)
        self.store.transition(
            waiter,
            ReleaseState.SUPERSEDED,
            reason=f"superseded by {newer.short_commit} while queued for stage {stage}",
            stages=stages,
        )
        if record is None or record.services is None:
            return []
        return self.store.release_services(record.service_keys(), waiter_id)


class _Problems:
    """Why a stage must not deploy: the configuration's (a refused rollout or scheduled task:
    INVALID_CONFIG) and the clones' (a container missing, secrets without an execution role, a
    revision too large: DEPLOY_FAILED, as ECS would refuse them)."""

    def __init__(self) -> None:
        self.config: list[str] = []
        self.clone: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.config or self.clone)

    def text(self) -> str:
        return "; ".join([*self.config, *self.clone])


# StageRecord fields that describe the stage as a whole, kept as a stage of several records its services
_STAGE_WIDE = frozenset(
    {
        "settings",
        "before_task",
        "before_state",
        "before_token",
        "before_task_arn",
        "before_container",
        "before_started_at",
        "before_exit_code",
        "before_logs",
        "before_log_link",
    }
)


def containers_of(described: Mapping[str, Any]) -> list[str]:
    """The container names of a task definition (a DescribeTaskDefinition response, or the task
    definition itself)."""
    definition = described.get("taskDefinition", described)
    return [str(c.get("name")) for c in definition.get("containerDefinitions") or ()]


def _families(targets: tuple[ServiceTarget, ...], views: Mapping[str, ServiceView]) -> tuple[list[str], dict[str, str]]:
    """The families the services run, and those that will have two new revisions (services running
    different revisions of one family, or swapping different containers in it): family -> why."""
    groups: dict[str, dict[tuple[str, tuple[str, ...]], list[str]]] = {}
    for target in targets:
        current = views[target.service].task_definition
        groups.setdefault(_family(current), {}).setdefault((current, target.containers), []).append(target.service)
    ambiguous = {
        family: "services "
        + " and ".join(f"{', '.join(names)} ({_short_arn(current)})" for (current, _), names in found.items())
        + " each get a new revision of"
        for family, found in groups.items()
        if len(found) > 1
    }
    return list(groups), ambiguous


def settings_in_none(
    settings: deploy_settings.DeploySettings,
    described: Mapping[str, Mapping[str, Any]],
    running: Mapping[str, Sequence[str]],
) -> str | None:
    """Why the settings of a stage of several services cannot apply: the containers they name that
    none of the services' task definitions has (`described` by ARN; `running`: ARN -> the services
    that run it). None: each named container is in at least one of them."""
    having = {name for d in described.values() for name in containers_of(d)}
    lacking = [name for name in settings.containers if name not in having]
    if not lacking:
        return None
    listed = ", ".join(repr(name) for name in lacking)
    subject = f"container {listed} is" if len(lacking) == 1 else f"containers {listed} are"
    where = "; ".join(
        f"{_short_arn(arn)} ({', '.join(running.get(arn, ()))}): "
        + (", ".join(repr(n) for n in containers_of(d)) or "none")
        for arn, d in described.items()
    )
    return (
        f"the settings name {subject} in none of the stage's task definitions ({where}): settings apply to "
        "every service whose task definition has the container, and at least one must"
    )


def _family(task_definition_arn: str) -> str:
    return _short_arn(task_definition_arn).split(":")[0]


def _registered(record: StageRecord | None) -> set[str]:
    """`cluster/service` of the services whose new revision the stage record already names."""
    if record is None:
        return set()
    if record.services is not None:
        return {s.key for s in record.services if s.task_definition_arn}
    return {f"{record.cluster}/{record.service}"} if record.task_definition_arn else set()


def _stage_keys(stage: Stage) -> list[tuple[str, str]]:
    return [(stage.cluster, name) for name in stage.service_names]


def _short_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
