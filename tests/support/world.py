"""A whole account for flow tests: the deployer's tables and bus (from template.yaml), the demo
CodeCommit/CodeBuild/ECR/ECS resources, a published pipeline, and event builders derived from
the sample files in events/. Built in whatever AWS its session reaches: the in-memory fakes
(`tests.support.fakes.FakeAws`, the unit tier), moto in process (functional) or moto server
(integration: the clients follow AWS_ENDPOINT_URL). tests/conftest.py's `world` fixture picks one
by the test's tier."""

from __future__ import annotations

import hashlib
import itertools
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3

from deployer.approvals import now_utc
from deployer.deps import Deps, build_deps
from deployer.flow.common import ENV_COMMIT, ENV_PIPELINE, ENV_RELEASE_ID
from deployer.pipelines.loader import load_config_text
from deployer.pipelines.store import ConfigStore
from deployer.releases.model import Transition, TransitionListener
from deployer.releases.store import ReleaseStore
from deployer.reporting import fan_out
from deployer_local.provision import DemoAccount, DeployerNames, demo_pipelines_yaml, provision_demo, provision_deployer
from tests.support.events import load_event

_counter = itertools.count(1)


def commit_id(label: str | int) -> str:
    return hashlib.sha1(str(label).encode()).hexdigest()


@dataclass
class World:
    names: DeployerNames
    account: DemoAccount
    deps: Deps
    store: ReleaseStore
    config_store: ConfigStore
    transitions: list[Transition] = field(default_factory=list)
    # where the clients come from: a boto3 session (moto) or `FakeAws` (the in-memory fakes)
    session: Any = None
    # the deployer's table, as the store and approvals use it
    table: Any = None
    # every transition goes to each of these (transitions.append first); a test may add its own
    listeners: list[TransitionListener] = field(default_factory=list)
    # what the approvals read the time from (`tests.support.clock.Clock`, or the real time)
    clock: Callable[[], datetime] = now_utc

    # -- clients ------------------------------------------------------------------------------

    def client(self, service: str) -> Any:
        """A new client of the world's AWS (a test may hook it without touching the deployer's)."""
        return (self.session or boto3.session.Session()).client(service)

    @property
    def ecs(self) -> Any:
        return self.client("ecs")

    def service(self, stage: str) -> dict[str, Any]:
        svc = self.account.services[stage]
        return self.ecs.describe_services(cluster=svc.cluster, services=[svc.service])["services"][0]

    def task_definition(self, arn: str) -> dict[str, Any]:
        return self.ecs.describe_task_definition(taskDefinition=arn, include=["TAGS"])

    def revisions(self, family: str = "web") -> list[str]:
        return self.ecs.list_task_definitions(familyPrefix=family)["taskDefinitionArns"]

    def builds(self) -> list[str]:
        return self.client("codebuild").list_builds_for_project(projectName=self.account.build_project)["ids"]

    def publish(self, text: str) -> None:
        self.config_store.publish(load_config_text(text), "tests")

    # -- events -------------------------------------------------------------------------------

    def push(self, commit: str, old: str | None = None, *, time: str = "2026-11-29T10:00:00Z") -> dict[str, Any]:
        event = load_event("push_updated" if old else "push_created")
        event["id"] = str(uuid.uuid4())
        event["time"] = time
        event["detail"]["commitId"] = commit
        if old:
            event["detail"]["oldCommitId"] = old
        return event

    def build_finished(
        self,
        release_id: str,
        *,
        status: str = "SUCCEEDED",
        image: str | None = "digest",
        build_arn: str | None = None,
    ) -> dict[str, Any]:
        """The build state change of the release's build; `image` "digest" exports the demo
        image pinned by digest, "tag" by tag, None exports nothing."""
        release = self.store.get(release_id)
        assert release is not None
        arn = build_arn or release.build_arn
        assert arn is not None
        event = load_event("build_succeeded")
        event["id"] = str(uuid.uuid4())
        event["resources"] = [arn]
        detail = event["detail"]
        detail["build-status"] = status
        detail["build-id"] = arn
        detail["project-name"] = self.account.build_project
        info = detail["additional-information"]
        info["environment"]["environment-variables"] = [
            {"name": ENV_RELEASE_ID, "type": "PLAINTEXT", "value": release.release_id},
            {"name": ENV_COMMIT, "type": "PLAINTEXT", "value": release.commit},
            {"name": ENV_PIPELINE, "type": "PLAINTEXT", "value": release.pipeline},
        ]
        if image is None:
            info.pop("exported-environment-variables", None)
        else:
            tag = f"{release.short_commit}-{next(_counter)}"
            from deployer_local.provision import push_demo_image

            uri, digest = push_demo_image(self.session or boto3.session.Session(), self.account.repository, tag)
            value = uri if image == "tag" else f"{uri.rsplit(':', 1)[0]}@{digest}"
            info["exported-environment-variables"] = [{"name": "IMAGE_URI", "value": value}]
        return event


SIGNING_KEY = b"test-signing-key-of-at-least-32-bytes!!"
APPROVAL_BASE_URL = "https://approvals.example.test"


def make_world(
    environment: str = "test",
    pipelines_yaml: str | None = None,
    *,
    listeners: list[TransitionListener] | None = None,
    workers: tuple[str, ...] = (),
    session: Any = None,
    clock: Callable[[], datetime] | None = None,
) -> World:
    """Provision everything in `session`'s AWS (default: a boto3 session, so moto's when it is on;
    `FakeAws()` for the in-memory fakes), publish the pipelines (default: the demo's) and return
    the flow's dependencies (`world_in`). The clusters of the stages in `workers` also run a
    `worker` service (`provision_demo`)."""
    session = session or boto3.session.Session()
    names = DeployerNames(environment)
    provision_deployer(names, session)
    account = provision_demo(session, workers=workers)
    world = world_in(session, names, account, listeners=listeners, clock=clock)
    world.publish(pipelines_yaml or demo_pipelines_yaml(account))
    return world


def world_in(
    session: Any,
    names: DeployerNames,
    account: DemoAccount,
    *,
    listeners: list[TransitionListener] | None = None,
    clock: Callable[[], datetime] | None = None,
) -> World:
    """The flow's dependencies on an account already provisioned (`make_world`). Transitions are
    recorded in `World.transitions` and passed to `listeners` (e.g. Slack) and to whatever a test
    adds to `World.listeners` later. The approvals read the time from `clock` (default: the real
    time)."""
    transitions: list[Transition] = []
    every: list[TransitionListener] = [transitions.append, *(listeners or [])]
    dynamodb = session.resource("dynamodb")
    table = dynamodb.Table(names.table)

    def notify(change: Transition) -> None:  # whoever is in `every` when the transition happens
        fan_out(every)(change)

    config_store = ConfigStore(names.config_table, dynamodb=dynamodb, max_age_seconds=0)
    when = clock or now_utc
    deps = build_deps(
        table,
        config_store.load,
        session.client,
        listeners=[notify],
        signing_key=lambda: SIGNING_KEY,
        approval_base_url=APPROVAL_BASE_URL,
        clock=when,
    )
    store = deps.store
    return World(names, account, deps, store, config_store, transitions, session, table, every, when)
