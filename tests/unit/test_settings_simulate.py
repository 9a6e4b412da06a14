"""The local stack's simulated ECS rollout of a revision with secrets: it says which secrets the new
tasks read (names and where from, never a value), and a secret that does not exist stops the tasks
with ECS's ResourceInitializationError, the deployment failing as the circuit breaker fails it.

AWS: AWS re:Post Knowledge Center, "How do I troubleshoot ResourceInitializationError errors ..."
(https://repost.aws/knowledge-center/ecs-unable-to-pull-secrets) lists the error ECS reports when a
task cannot read a secret: "ResourceInitializationError: unable to pull secrets or registry auth:
execution resource retrieval failed: unable to retrieve secret from asm: service call has been
retried 5 time(s): failed to fetch secret arn:aws:secretsmanager…"; ECS developer guide, "Pass
Secrets Manager secrets through Amazon ECS environment variables": "Sensitive data is injected into
your container when the container is initially started."
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest

from deployer.events.codebuild import CodeBuildStateChangeEvent
from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.ecs import ECS_DEPLOYMENT_STATE_CHANGE, EcsDeploymentStateChangeEvent
from deployer.events.parse import parse_event
from deployer.flow.build import on_build
from deployer.flow.deployment import on_deployment
from deployer.flow.push import on_push
from deployer.releases.model import ReleaseState, StageState
from deployer_local.provision import demo_pipelines_yaml
from deployer_local.simulate import EcsRolloutSimulator, deployment_lookup_from_store, secret_check_for
from tests.support.world import World, commit_id

pytestmark = pytest.mark.functional  # the local stack's simulators, on moto's account

VALUE = "s3cr3t-value-that-must-never-print"
DEV_ROLLOUT = "        rollout: {minimumHealthyPercent: 100, maximumPercent: 200, circuitBreaker: {rollback: true}}\n"


def with_dev_secrets(world: World, secrets: dict[str, str]) -> None:
    text = demo_pipelines_yaml(world.account, prod_approval=False)
    listed = ", ".join(f'{name}: "{reference}"' for name, reference in secrets.items())
    world.publish(text.replace(DEV_ROLLOUT, DEV_ROLLOUT + f"        secrets: {{web: {{{listed}}}}}\n", 1))


def deploy_dev(world: World, label: str) -> str:
    (started,) = on_push(parse_event(CodeCommitReferenceEvent, world.push(commit_id(label))), world.deps)
    release_id = str(started["release_id"])
    outcome = on_build(parse_event(CodeBuildStateChangeEvent, world.build_finished(release_id)), world.deps)
    assert outcome["outcome"] == "deploying", outcome
    return release_id


def simulator(world: World, printed: list[str]) -> EcsRolloutSimulator:
    """The local stack's rollout simulator on dev/web, having seen what the service runs now."""

    def deliver(event: dict[str, Any]) -> None:
        if event["detail-type"] == ECS_DEPLOYMENT_STATE_CHANGE:
            on_deployment(parse_event(EcsDeploymentStateChangeEvent, event), world.deps)

    simulated = EcsRolloutSimulator(
        boto3.client("ecs"),
        deployment_lookup_from_store(world.store),
        deliver,
        printed.append,
        secret_check=secret_check_for(boto3.session.Session()),
    )
    simulated.watch("dev", "web")
    assert simulated.poll_once() == []
    return simulated


def test_tasks_that_read_existing_secrets_start_and_the_stage_completes(world: World) -> None:
    secret = boto3.client("secretsmanager").create_secret(Name="dev/web/db", SecretString=json.dumps({"pw": VALUE}))
    boto3.client("ssm").put_parameter(Name="/dev/web/api-key", Value=VALUE, Type="SecureString")
    with_dev_secrets(world, {"DB_PASSWORD": f"{secret['ARN']}:pw::", "API_KEY": "/dev/web/api-key"})
    printed: list[str] = []
    rollouts = simulator(world, printed)
    release_id = deploy_dev(world, "secrets-ok")
    (event,) = rollouts.poll_once()
    assert event["detail"]["eventName"] == "SERVICE_DEPLOYMENT_COMPLETED"
    line = next(p for p in printed if "read 2 secrets" in p)
    assert line == (
        "SIMULATED ECS rollout of dev/web: new tasks of web:3 read 2 secrets when they start: "
        "web API_KEY from SSM, web DB_PASSWORD from Secrets Manager"
    )  # in name order: the published configuration is canonical JSON, keys sorted
    assert not any("ResourceInitializationError" in p for p in printed)
    assert all(VALUE not in p for p in printed)
    release = world.store.get(release_id)
    assert release is not None
    assert release.stages["dev"].state is StageState.DEPLOYED


def test_a_secret_that_does_not_exist_stops_the_tasks_and_fails_the_stage(world: World) -> None:
    missing = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:dev/web/typo-AbCdEf"
    with_dev_secrets(world, {"DB_PASSWORD": f"{missing}:pw::", "API_KEY": "/dev/web/nope"})
    printed: list[str] = []
    rollouts = simulator(world, printed)
    release_id = deploy_dev(world, "secrets-missing")
    events = rollouts.poll_once()
    assert [e["detail"]["eventName"] for e in events] == [
        "SERVICE_DEPLOYMENT_IN_PROGRESS",
        "SERVICE_DEPLOYMENT_FAILED",
    ]
    stops = [p for p in printed if "new tasks stop" in p]
    assert stops[1].startswith(
        "SIMULATED ECS rollout of dev/web: new tasks stop: ResourceInitializationError: unable to pull secrets or "
        "registry auth: execution resource retrieval failed: unable to retrieve secret from asm: failed to fetch "
        f"secret {missing} from secrets manager: ResourceNotFoundException"
    )
    assert stops[1].endswith("(DB_PASSWORD of container web)")
    assert stops[0] == (
        "SIMULATED ECS rollout of dev/web: new tasks stop: ResourceInitializationError: unable to pull secrets or "
        "registry auth: execution resource retrieval failed: unable to retrieve secrets from ssm: invalid "
        "parameters: /dev/web/nope (API_KEY of container web)"
    )
    assert all(p.startswith("SIMULATED") for p in printed)
    release = world.store.get(release_id)
    assert release is not None
    assert release.state is ReleaseState.DEPLOY_FAILED
    assert world.service("dev")["taskDefinition"] == world.account.services["dev"].task_definition_arn
