"""Deploy one stage of a release: the four ECS calls, guarded by ordering and the service lock.

1. DescribeServices: live desiredCount, scheduling strategy, launch type, controller, current
   task definition (and, when the service scales, its Application Auto Scaling range).
2. Validate the stage's rollout for that service with `deployer.rolling`; refused -> the release
   ends INVALID_CONFIG and nothing is registered or updated. The same for the stage's scheduled
   tasks (`schedules:`): each must run the service's family in its cluster (`deployer.housekeeping`).
3. DescribeTaskDefinition (with tags), clone, swap images, set the stage's environment variables
   and secret references (`deployer.settings`), RegisterTaskDefinition; the revision is recorded
   as the deployer's (only those are ever cleaned up, `housekeeping.clean_up`). A container the
   stage names that the task definition lacks (or secrets without an execution role, or a clone
   above ECS's size limit) ends the release DEPLOY_FAILED with every problem, nothing registered.
4. UpdateService with the new task definition and the validated deploymentConfiguration, never
   desiredCount (autoscaling owns it; REFERENCE.md "ECS rolling update").
5. Record the PRIMARY deployment id, so ECS's deployment events find this stage.

Every step is safe to repeat: the registered revision and the deployment id are recorded on the
release as soon as they exist, so a redelivered event resumes instead of registering again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from deployer import aws, before, ecs_deployments, rolling, taskdef
from deployer import settings as deploy_settings
from deployer.errors import DeploymentError
from deployer.releases import Release, ReleaseState, ReleaseStore, StageRecord, StageState, now_iso

if TYPE_CHECKING:
    from mypy_boto3_application_autoscaling import ApplicationAutoScalingClient
    from mypy_boto3_ecs import ECSClient
    from mypy_boto3_ecs.type_defs import ServiceTypeDef

    from deployer.housekeeping import ScheduledTasks
    from deployer.pipelines import Pipeline, Stage

DEPLOYABLE_FROM = frozenset({ReleaseState.BUILT, ReleaseState.DEPLOYING, ReleaseState.DEPLOYED})
Outcome = Literal[
    "deploying", "queued", "superseded", "invalid_config", "failed", "already_running", "ignored", "before_task"
]


@dataclass(frozen=True)
class ServiceView:
    """What DescribeServices says about the service, in the shape the deployer needs."""

    cluster: str
    service: str
    task_definition: str
    facts: rolling.ServiceFacts
    primary_deployment_id: str | None
    # the service as DescribeServices returned it: a before-task is placed and networked as it is
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class StageResult:
    outcome: Outcome
    release: Release
    detail: str = ""
    handover: tuple[str, str] | None = None  # (release id, stage) that now holds the freed lock


def describe_service(ecs: ECSClient, cluster: str, service: str) -> ServiceView:
    response = aws.call("DescribeServices", ecs.describe_services, cluster=cluster, services=[service])
    services = response.get("services", [])
    if not services:
        reasons = "; ".join(
            f"{f.get('arn', service)}: {f.get('reason', 'unknown')}" for f in response.get("failures", [])
        )
        raise DeploymentError(f"ECS service {cluster}/{service} not found ({reasons or 'no such service'})")
    svc = services[0]
    if svc.get("status") != "ACTIVE":
        raise DeploymentError(f"ECS service {cluster}/{service} is {svc.get('status')}, not ACTIVE")
    primary = next((d for d in svc.get("deployments", []) if d.get("status") == "PRIMARY"), None)
    return ServiceView(
        cluster=cluster,
        service=service,
        task_definition=svc["taskDefinition"],
        facts=_facts(svc),
        primary_deployment_id=primary.get("id") if primary else None,
        raw=dict(svc),
    )


def _facts(svc: ServiceTypeDef) -> rolling.ServiceFacts:
    launch_type: Literal["FARGATE", "EC2", "EXTERNAL"] = "FARGATE"
    if svc.get("launchType") in {"EC2", "EXTERNAL"}:
        launch_type = svc["launchType"]  # type: ignore[assignment]
    elif svc.get("capacityProviderStrategy"):
        providers = [p.get("capacityProvider", "") for p in svc["capacityProviderStrategy"]]
        launch_type = "FARGATE" if all(p.startswith("FARGATE") for p in providers) else "EC2"
    controller = svc.get("deploymentController", {}).get("type", "ECS")
    balancers = svc.get("loadBalancers", [])
    return rolling.ServiceFacts(
        desired_count=int(svc.get("desiredCount", 0)),
        scheduling_strategy="DAEMON" if svc.get("schedulingStrategy") == "DAEMON" else "REPLICA",
        launch_type=launch_type,
        deployment_controller=controller if controller in {"ECS", "CODE_DEPLOY", "EXTERNAL"} else "ECS",
        has_load_balancer=bool(balancers),
        has_alternate_target_group=any("advancedConfiguration" in lb for lb in balancers),
    )


def deployment_configuration(stage: Stage, validation: rolling.Validation, release: Release) -> dict[str, Any]:
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
    if autoscaling is None:
        return None
    response = aws.call(
        "DescribeScalableTargets",
        autoscaling.describe_scalable_targets,
        ServiceNamespace="ecs",
        ResourceIds=[f"service/{cluster}/{service}"],
        ScalableDimension="ecs:service:DesiredCount",
    )
    targets = response.get("ScalableTargets", [])
    if not targets:
        return None
    return int(targets[0]["MinCapacity"]), int(targets[0]["MaxCapacity"])


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
            return StageResult("ignored", release, f"release is {release.state}")
        existing = release.stages.get(stage.name)
        if existing and existing.deployment_id:
            return StageResult("already_running", release, f"deployment {existing.deployment_id} already started")

        if not store.enter_stage(release, stage.name):
            newer = store.stage_holder(pipeline.name, stage.name)
            store.transition(
                release,
                ReleaseState.SUPERSEDED,
                stage=stage.name,
                reason=f"a newer release ({newer}) already reached stage {stage.name}",
            )
            # It may hold the service's lock (handed over by the release it queued behind): pass it on.
            handover = store.release_service(stage.cluster, stage.service, release.release_id)
            return StageResult("superseded", release, handover=handover)

        lock = store.acquire_service(stage.cluster, stage.service, release, stage.name)
        if lock.superseded_waiter and lock.superseded_waiter != release.release_id:
            self._supersede_waiter(lock.superseded_waiter, release, stage.name)
        if not lock.acquired:
            if lock.superseded_waiter == release.release_id:
                store.transition(
                    release,
                    ReleaseState.SUPERSEDED,
                    stage=stage.name,
                    reason=f"a newer release is already queued for {stage.cluster}/{stage.service}",
                )
                return StageResult("superseded", release)
            record = StageRecord(StageState.QUEUED, stage.cluster, stage.service, started_at=now_iso())
            store.transition(
                release,
                ReleaseState.DEPLOYING,
                stage=stage.name,
                reason=f"queued: {lock.holder} is deploying {stage.cluster}/{stage.service}",
                stages={**release.stages, stage.name: record},
            )
            return StageResult("queued", release, f"waiting for {lock.holder}")

        try:
            return self._deploy_locked(release, pipeline, stage)
        except DeploymentError as exc:
            return self.fail(release, stage, ReleaseState.DEPLOY_FAILED, str(exc))

    def _deploy_locked(self, release: Release, pipeline: Pipeline, stage: Stage) -> StageResult:
        store = self.store
        view = describe_service(self.ecs, stage.cluster, stage.service)
        facts = view.facts
        scaling = autoscaling_range(self.autoscaling, stage.cluster, stage.service)
        if scaling is not None:
            facts = rolling.ServiceFacts(**{**facts.__dict__, "desired_range": scaling})
        validation = rolling.validate(stage.deployment_configuration(), facts)
        if not validation.valid:
            reason = "; ".join(f.message for f in validation.errors)
            return self.fail(release, stage, ReleaseState.INVALID_CONFIG, f"stage {stage.name}: {reason}")
        if stage.schedules and not release.is_rollback:
            # Before any change: each scheduled task must run this service's family in this cluster.
            # A rollback is never held back by them (its completion moves them back, or says why not).
            family = _short_arn(view.task_definition).split(":")[0]
            problems = self.schedules.check(stage, family)
            if problems:
                reason = f"stage {stage.name}: scheduled tasks refused: {'; '.join(problems)}"
                return self.fail(release, stage, ReleaseState.INVALID_CONFIG, reason)

        if release.image_uri is None and not release.target_task_definition_arn:
            raise DeploymentError(f"release {release.release_id} has no image to deploy")
        images = dict.fromkeys(pipeline.container_names, release.image_uri or "")
        record = release.stages.get(stage.name)
        if (record is None or record.task_definition_arn is None) and release.target_task_definition_arn:
            # a rollback redeploys a revision that exists: nothing to register
            target = release.target_task_definition_arn
            record = self._record(
                release,
                stage,
                f"rolling {stage.name} back to {_short_arn(target)}",
                task_definition_arn=target,
                previous_task_definition_arn=view.task_definition,
            )
        elif record is None or record.task_definition_arn is None:
            described = taskdef.describe_task_definition(self.ecs, view.task_definition)
            settings = stage.deploy_settings()
            problems = taskdef.clone_problems(described, images, settings)
            if problems:
                reason = f"stage {stage.name}: {'; '.join(problems)} (nothing was registered)"
                return self.fail(release, stage, ReleaseState.DEPLOY_FAILED, reason)
            changed = deploy_settings.summary(taskdef.changed_settings(described, settings)) if settings else ""
            found = None
            if record is not None and record.registering_at:
                # an earlier delivery got as far as registering: reuse its revision if it exists
                found = taskdef.find_registered_clone(self.ecs, described, images, settings)
            else:
                family = _short_arn(view.task_definition).split(":")[0]
                self._record(
                    release,
                    stage,
                    f"registering a revision of {family}" + (f" with {changed}" if changed else ""),
                    previous_task_definition_arn=view.task_definition,
                    registering_at=now_iso(),
                )
            registered = found or taskdef.register_clone_of(self.ecs, described, images, settings)
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

        if view.task_definition == new_arn and view.primary_deployment_id:
            deployment_id = view.primary_deployment_id  # a retry after UpdateService succeeded
        else:
            response = aws.call(
                "UpdateService",
                self.ecs.update_service,
                cluster=stage.cluster,
                service=stage.service,
                taskDefinition=new_arn,
                deploymentConfiguration=deployment_configuration(stage, validation, release),
            )
            deployment_id = next(
                (d["id"] for d in response["service"].get("deployments", []) if d.get("status") == "PRIMARY"),
                "",
            )
            if not deployment_id:
                raise DeploymentError(
                    f"UpdateService on {stage.cluster}/{stage.service} returned no PRIMARY deployment"
                )
        store.index_deployment(deployment_id, release.release_id, stage.name, stage.cluster, stage.service)
        record = StageRecord(**{**record.__dict__, "state": StageState.DEPLOYING, "deployment_id": deployment_id})
        store.transition(
            release,
            ReleaseState.DEPLOYING,
            stage=stage.name,
            reason=f"ECS deployment {deployment_id} started ({_short_arn(new_arn)})",
            stages={**release.stages, stage.name: record},
        )
        return StageResult("deploying", release, deployment_id)

    def _before_task(  # noqa: PLR0917 - the stage as _deploy_locked found it
        self, release: Release, pipeline: Pipeline, stage: Stage, view: ServiceView, record: StageRecord, new_arn: str
    ) -> StageResult:
        """The stage's `before` task, before UpdateService (`deployer.before`): RunTask once (its
        intent recorded first, its clientToken the same on every redelivery), then wait for its
        STOPPED event. A task already running is waited for."""
        assert stage.before is not None
        step = stage.before.task
        if record.before_state == before.BeforeState.RUNNING:
            return StageResult("already_running", release, f"before-task {step} runs as {record.before_task_arn}")
        if record.before_state == before.BeforeState.FAILED:
            return StageResult("ignored", release, f"before-task {step} failed")
        container = pipeline.before_container(stage)
        described = taskdef.describe_task_definition(self.ecs, new_arn)["taskDefinition"]
        definitions = {str(c.get("name")): c for c in described.get("containerDefinitions", [])}
        if container is None or container not in definitions:
            reason = (
                f"stage {stage.name}: before.container {container or '(none named)'} is not a container of "
                f"{_short_arn(new_arn)} ({', '.join(definitions) or 'no containers'}): nothing was run or deployed"
            )
            return self.fail(release, stage, ReleaseState.INVALID_CONFIG, reason)
        token = record.before_token or before.token_for(release.release_id, stage.name, new_arn)
        if record.before_state is None:
            self.store.index_before_task(token, release.release_id, stage.name)
            region = new_arn.split(":")[3] if new_arn.count(":") >= 5 else None
            record = StageRecord(
                **{
                    **record.__dict__,
                    "before_task": step,
                    "before_state": before.BeforeState.STARTING.value,
                    "before_token": token,
                    "before_container": container,
                    "before_started_at": now_iso(),
                    "before_logs": before.log_target(definitions[container], region),
                }
            )
            self.store.transition(
                release,
                ReleaseState.DEPLOYING,
                stage=stage.name,
                reason=f"starting before-task {step} ({_short_arn(new_arn)}, container {container})",
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
        record = StageRecord(
            **{**record.__dict__, "before_state": before.BeforeState.RUNNING.value, "before_task_arn": task_arn}
        )
        self.store.transition(
            release,
            ReleaseState.DEPLOYING,
            stage=stage.name,
            reason=f"before-task {step} running: task {_short_arn(task_arn)} on {stage.cluster} "
            f"({_short_arn(new_arn)}, container {container}); {stage.service} is updated when it exits 0",
            stages={**release.stages, stage.name: record},
            announce=True,
        )
        return StageResult("before_task", release, task_arn)

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
        """Record the stage DEPLOYING with its revision (or the intent to register one)."""
        record = StageRecord(
            StageState.DEPLOYING,
            stage.cluster,
            stage.service,
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

    def fail(self, release: Release, stage: Stage, state: ReleaseState, reason: str) -> StageResult:
        """End the release in `state` and hand the service lock to whoever waits."""
        store = self.store
        record = release.stages.get(stage.name) or StageRecord(
            StageState.FAILED, stage.cluster, stage.service, started_at=now_iso()
        )
        record = StageRecord(
            **{**record.__dict__, "state": StageState.FAILED, "finished_at": now_iso(), "reason": reason}
        )
        store.transition(release, state, stage=stage.name, reason=reason, stages={**release.stages, stage.name: record})
        handover = store.release_service(stage.cluster, stage.service, release.release_id)
        outcome: Outcome = "invalid_config" if state is ReleaseState.INVALID_CONFIG else "failed"
        return StageResult(outcome, release, reason, handover)

    def _supersede_waiter(self, waiter_id: str, newer: Release, stage: str) -> None:
        waiter = self.store.get(waiter_id)
        if waiter is None or waiter.state.terminal:
            return
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


def _short_arn(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]
