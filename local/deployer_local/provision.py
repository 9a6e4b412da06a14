"""Create the deployer's own resources from template.yaml, and a demo account, in whatever AWS
the clients point at: moto in process for unit tests, moto server for integration tests and the
local stack. Never used against a real account by the functions themselves."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from deployer_local import template

ACCOUNT = "123456789012"


@dataclass(frozen=True)
class DeployerNames:
    """Resource names of one deployer environment (what template.yaml names with ${Environment})."""

    environment: str = "local"

    @property
    def table(self) -> str:
        return f"ecs-deployer-{self.environment}"

    @property
    def config_table(self) -> str:
        return f"ecs-deployer-config-{self.environment}"

    @property
    def bus(self) -> str:
        return f"ecs-deployer-{self.environment}"

    def env(self) -> dict[str, str]:
        """The functions' environment variables for these names (as template.yaml sets them)."""
        return {
            "DEPLOYER_TABLE": self.table,
            "DEPLOYER_CONFIG_TABLE": self.config_table,
            "DEPLOYER_EVENT_BUS": self.bus,
        }


def provision_deployer(names: DeployerNames, session: Any = None) -> None:
    """Tables, bus and dead-letter queues exactly as template.yaml defines them."""
    import boto3

    session = session or boto3.session.Session()
    dynamodb = session.client("dynamodb")
    for logical_id, name in (("DeployerTable", names.table), ("ConfigTable", names.config_table)):
        dynamodb.create_table(**template.create_table_request(logical_id, name))
        props = template.resources("AWS::DynamoDB::Table")[logical_id]
        ttl = props.get("TimeToLiveSpecification")
        if ttl:
            dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    session.client("events").create_event_bus(Name=names.bus)
    sqs = session.client("sqs")
    for props in template.resources("AWS::SQS::Queue").values():
        name = str(props["QueueName"]["Fn::Sub"]).replace("${Environment}", names.environment)
        attributes = {"MessageRetentionPeriod": str(props.get("MessageRetentionPeriod", 345600))}
        sqs.create_queue(QueueName=name, Attributes=attributes)


@dataclass
class DemoService:
    cluster: str
    service: str
    task_definition_arn: str
    desired_count: int


@dataclass
class DemoAccount:
    repository: str
    build_project: str
    ecr_repository_uri: str
    first_image: str
    services: dict[str, DemoService] = field(default_factory=dict)
    # stage -> the `worker` service beside the stage's service (`provision_demo(workers=...)`)
    workers: dict[str, DemoService] = field(default_factory=dict)


def web_task_definition(family: str = "web", image: str = "public.ecr.aws/nginx/nginx:1.27") -> dict[str, Any]:
    """A realistic Fargate task definition (RegisterTaskDefinition request) with a sidecar, tags,
    and fields that allow-list cloners drop."""
    return {
        "family": family,
        "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/web-task",
        "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/web-execution",
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "512",
        "memory": "1024",
        "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
        "ephemeralStorage": {"sizeInGiB": 30},
        "containerDefinitions": [
            {
                "name": "web",
                "image": image,
                "essential": True,
                "portMappings": [{"containerPort": 8080, "protocol": "tcp", "name": "http"}],
                "environment": [{"name": "PORT", "value": "8080"}],
                "healthCheck": {"command": ["CMD-SHELL", "wget -qO- localhost:8080/health || exit 1"], "interval": 15},
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": f"/ecs/{family}", "awslogs-region": "eu-west-1"},
                },
            },
            {
                "name": "log-router",
                "image": "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
                "essential": False,
                "firelensConfiguration": {"type": "fluentbit"},
            },
        ],
        "tags": [{"key": "team", "value": "web"}, {"key": "cost-center", "value": "cc-42"}],
    }


WORKER_CONTAINER = "worker"


def worker_task_definition(image: str = "public.ecr.aws/nginx/nginx:1.27") -> dict[str, Any]:
    """The demo's background worker: the web app's image run as a queue consumer, in a task
    definition of its own (family `worker`) whose container is named `worker`."""
    definition = web_task_definition("worker", image)
    app = definition["containerDefinitions"][0]
    app["name"] = WORKER_CONTAINER
    app["command"] = ["worker"]
    for key in ("portMappings", "healthCheck"):
        app.pop(key)
    definition["tags"] = [{"key": "team", "value": "web"}, {"key": "role", "value": "worker"}]
    return definition


def push_demo_image(session: Any, repository: str, tag: str) -> tuple[str, str]:
    """Put an image manifest in ECR (as a build would) and return (uri:tag, digest)."""
    ecr = session.client("ecr")
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 7023,
                "digest": "sha256:" + hashlib.sha256(f"config-{tag}".encode()).hexdigest(),
            },
            "layers": [],
        }
    )
    image = ecr.put_image(repositoryName=repository, imageManifest=manifest, imageTag=tag)["image"]
    uri = ecr.describe_repositories(repositoryNames=[repository])["repositories"][0]["repositoryUri"]
    return f"{uri}:{tag}", image["imageId"]["imageDigest"]


def provision_demo(
    session: Any = None,
    *,
    repository: str = "web-app",
    build_project: str = "web-app-build",
    services: dict[str, tuple[str, str, int]] | None = None,
    load_balanced: Iterable[str] = (),
    workers: Iterable[str] = (),
) -> DemoAccount:
    """A CodeCommit repository, a CodeBuild project, an ECR repository with a first image, and
    ECS clusters whose services run a first task definition. `services` maps a stage name to
    (cluster, service, desired count); default dev/web x2 and prod/web x4. The services of the
    stages in `load_balanced` sit behind a load balancer with the blue and green target groups
    that BLUE_GREEN, LINEAR and CANARY deployments shift traffic between. The clusters of the stages
    in `workers` also run a `worker` service (2 tasks, `worker_task_definition`), which a stage of
    several services deploys beside the web service."""
    import boto3

    session = session or boto3.session.Session()
    services = services or {"dev": ("dev", "web", 2), "prod": ("prod", "web", 4)}
    session.client("codecommit").create_repository(repositoryName=repository)
    session.client("codebuild").create_project(
        name=build_project,
        source={
            "type": "CODECOMMIT",
            "location": f"https://git-codecommit.eu-west-1.amazonaws.com/v1/repos/{repository}",
        },
        artifacts={"type": "NO_ARTIFACTS"},
        environment={
            "type": "ARM_CONTAINER",
            "image": "aws/codebuild/amazonlinux-aarch64-standard:3.0",
            "computeType": "BUILD_GENERAL1_SMALL",
            "privilegedMode": True,
        },
        serviceRole=f"arn:aws:iam::{ACCOUNT}:role/codebuild-{build_project}",
    )
    session.client("ecr").create_repository(repositoryName=repository)
    first_image, _ = push_demo_image(session, repository, "v0")
    ecr_uri = first_image.rsplit(":", 1)[0]
    ec2 = session.client("ec2")
    vpc = ec2.create_vpc(CidrBlock="10.42.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.1.0/24")["Subnet"]["SubnetId"]
    load_balanced = frozenset(load_balanced)
    balancer_subnets = [subnet, _subnet_in_another_zone(ec2, vpc, subnet)] if load_balanced else []
    group = ec2.create_security_group(GroupName="web", Description="web tasks", VpcId=vpc)["GroupId"]
    ecs = session.client("ecs")
    account = DemoAccount(repository, build_project, ecr_uri, first_image)
    for stage, (cluster, service, desired) in services.items():
        ecs.create_cluster(clusterName=cluster)
        arn = ecs.register_task_definition(**web_task_definition(image=first_image))["taskDefinition"][
            "taskDefinitionArn"
        ]
        balancers = (
            [_blue_green_load_balancer(session, vpc, balancer_subnets, f"{cluster}-{service}")]
            if stage in load_balanced
            else []
        )
        ecs.create_service(
            cluster=cluster,
            serviceName=service,
            taskDefinition=arn,
            desiredCount=desired,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}
            },
            **({"loadBalancers": balancers} if balancers else {}),
        )
        account.services[stage] = DemoService(cluster, service, arn, desired)
    for stage in workers:
        cluster = account.services[stage].cluster
        arn = ecs.register_task_definition(**worker_task_definition(first_image))["taskDefinition"]["taskDefinitionArn"]
        ecs.create_service(
            cluster=cluster,
            serviceName="worker",
            taskDefinition=arn,
            desiredCount=2,
            launchType="FARGATE",
            networkConfiguration={
                "awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group], "assignPublicIp": "DISABLED"}
            },
        )
        account.workers[stage] = DemoService(cluster, "worker", arn, 2)
    return account


def _subnet_in_another_zone(ec2: Any, vpc: str, subnet: str) -> str:
    """A second subnet, in another availability zone: a load balancer spans two."""
    taken = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"][0]["AvailabilityZone"]
    zones = [z["ZoneName"] for z in ec2.describe_availability_zones()["AvailabilityZones"]]
    zone = next(z for z in zones if z != taken)
    return str(ec2.create_subnet(VpcId=vpc, CidrBlock="10.42.2.0/24", AvailabilityZone=zone)["Subnet"]["SubnetId"])


def _blue_green_load_balancer(session: Any, vpc: str, subnets: list[str], name: str) -> dict[str, Any]:
    """An application load balancer whose listener rule forwards to a blue target group, with a
    green one beside it: the service's `loadBalancers` entry for traffic-shifting deployments
    (`advancedConfiguration`: alternate target group, production listener rule, and the role ECS
    uses to move traffic between them)."""
    elb = session.client("elbv2")
    balancer = elb.create_load_balancer(Name=name, Subnets=subnets)["LoadBalancers"][0]["LoadBalancerArn"]
    groups = {
        color: elb.create_target_group(Name=f"{name}-{color}", Protocol="HTTP", Port=8080, VpcId=vpc, TargetType="ip")[
            "TargetGroups"
        ][0]["TargetGroupArn"]
        for color in ("blue", "green")
    }
    listener = elb.create_listener(
        LoadBalancerArn=balancer,
        Protocol="HTTP",
        Port=80,
        DefaultActions=[{"Type": "forward", "TargetGroupArn": groups["blue"]}],
    )["Listeners"][0]["ListenerArn"]
    rule = elb.create_rule(
        ListenerArn=listener,
        Priority=1,
        Conditions=[{"Field": "path-pattern", "Values": ["/*"]}],
        Actions=[
            {
                "Type": "forward",
                "ForwardConfig": {
                    "TargetGroups": [
                        {"TargetGroupArn": groups["blue"], "Weight": 100},
                        {"TargetGroupArn": groups["green"], "Weight": 0},
                    ]
                },
            }
        ],
    )["Rules"][0]["RuleArn"]
    return {
        "targetGroupArn": groups["blue"],
        "containerName": "web",
        "containerPort": 8080,
        "advancedConfiguration": {
            "alternateTargetGroupArn": groups["green"],
            "productionListenerRule": rule,
            "roleArn": f"arn:aws:iam::{ACCOUNT}:role/ecs-blue-green",
        },
    }


DEMO_SCHEDULE = "web-nightly-report"
"""An EventBridge Scheduler schedule (group default) that runs prod's task definition family in prod."""
DEMO_RULE = "web-dev-cleanup"
"""An EventBridge rule (default bus) that runs dev's task definition family in dev."""
DEMO_SCHEDULED_TASK_ROLE = f"arn:aws:iam::{ACCOUNT}:role/web-scheduled-tasks"


def provision_demo_schedules(session: Any, account: DemoAccount) -> None:
    """The demo's scheduled tasks: a nightly report in prod (EventBridge Scheduler) and an hourly
    clean-up in dev (an EventBridge rule), each running the revision its service runs now, as a team
    sets them up by hand or with CloudFormation before the deployer moves them."""
    ecs = session.client("ecs")
    dev, prod = account.services["dev"], account.services["prod"]

    def cluster_arn(name: str) -> str:
        return str(ecs.describe_clusters(clusters=[name])["clusters"][0]["clusterArn"])

    def network(cluster: str, service: str) -> dict[str, Any]:
        described = ecs.describe_services(cluster=cluster, services=[service])["services"][0]
        vpc = described["networkConfiguration"]["awsvpcConfiguration"]
        return {"Subnets": vpc["subnets"], "SecurityGroups": vpc["securityGroups"], "AssignPublicIp": "DISABLED"}

    session.client("scheduler").create_schedule(
        Name=DEMO_SCHEDULE,
        Description="The nightly report, run with prod's image",
        ScheduleExpression="cron(0 2 * * ? *)",
        ScheduleExpressionTimezone="Europe/Dublin",
        FlexibleTimeWindow={"Mode": "FLEXIBLE", "MaximumWindowInMinutes": 15},
        State="ENABLED",
        Target={
            "Arn": cluster_arn(prod.cluster),
            "RoleArn": DEMO_SCHEDULED_TASK_ROLE,
            "Input": json.dumps({"containerOverrides": [{"name": "web", "command": ["bin/report", "--nightly"]}]}),
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600},
            "EcsParameters": {
                "TaskDefinitionArn": prod.task_definition_arn,
                "TaskCount": 1,
                "LaunchType": "FARGATE",
                "NetworkConfiguration": {"awsvpcConfiguration": network(prod.cluster, prod.service)},
                "Tags": [{"team": "web"}],
            },
        },
    )
    events = session.client("events")
    events.put_rule(Name=DEMO_RULE, ScheduleExpression="rate(1 hour)", State="ENABLED", Description="dev clean-up")
    events.put_targets(
        Rule=DEMO_RULE,
        Targets=[
            {
                "Id": "cleanup",
                "Arn": cluster_arn(dev.cluster),
                "RoleArn": DEMO_SCHEDULED_TASK_ROLE,
                "Input": json.dumps({"containerOverrides": [{"name": "web", "command": ["bin/cleanup"]}]}),
                "EcsParameters": {
                    "TaskDefinitionArn": dev.task_definition_arn,
                    "TaskCount": 1,
                    "LaunchType": "FARGATE",
                    "NetworkConfiguration": {"awsvpcConfiguration": network(dev.cluster, dev.service)},
                },
            }
        ],
    )


def demo_pipelines_yaml(
    account: DemoAccount,
    *,
    prod_approval: bool = True,
    blue_green: bool = False,
    source: str | None = None,
    branch: str = "main",
    schedules: bool = False,
    keep_revisions: int | None = None,
    several_services: bool = False,
) -> str:
    """The demo pipeline for `account`: dev, then prod (behind an approval). With `blue_green`,
    prod is a BLUE_GREEN deployment (its service needs `provision_demo(load_balanced=["prod"])`)
    whose approval is asked during the deployment, once test traffic reaches green: ECS pauses it
    at POST_TEST_TRAFFIC_SHIFT until the approval continues it or rolls it back. `source` like
    "github:OWNER/REPO" or "gitlab:GROUP/PROJECT" watches that repository instead of the
    account's CodeCommit repository. With `schedules`, dev's rule and prod's schedule
    (`provision_demo_schedules`) follow their stage's service; `keep_revisions` sets the pipeline's
    keepRevisions. With `several_services`, every stage whose cluster runs a worker
    (`provision_demo(workers=...)`) deploys both services in one step:
    `services: [web, {name: worker, container: worker}]`."""
    dev = account.services["dev"]
    prod = account.services["prod"]

    def services(stage: str, service: DemoService) -> str:
        worker = account.workers.get(stage) if several_services else None
        if worker is None:
            return f"        service: {service.service}\n"
        return f"        services: [{service.service}, {{name: {worker.service}, container: {WORKER_CONTAINER}}}]\n"

    at = ", at: POST_TEST_TRAFFIC_SHIFT" if blue_green else ""
    approval = f"        approval: {{approvers: [U012ABCDEF], expiresInHours: 24{at}}}\n" if prod_approval else ""
    prod_rollout = (
        "{strategy: BLUE_GREEN, bakeTimeInMinutes: 10}"
        if blue_green
        else "{minimumHealthyPercent: 50, maximumPercent: 150}"
    )
    keep = f"    keepRevisions: {keep_revisions}\n" if keep_revisions is not None else ""
    dev_schedules = f"        schedules: [{{rule: {DEMO_RULE}}}]\n" if schedules else ""
    prod_schedules = f"        schedules: [{{scheduler: {DEMO_SCHEDULE}}}]\n" if schedules else ""
    if source is None:
        watched = f"    repository: {account.repository}\n"
    else:
        provider, _, name = source.partition(":")
        watched = f"    source: {{{provider}: {name}}}\n"
    return (
        "pipelines:\n"
        "  - name: web\n"
        f"{watched}"
        f"    branch: {branch}\n"
        f"    build: {{project: {account.build_project}}}\n"
        "    container: web\n"
        f"{keep}"
        "    stages:\n"
        "      - name: dev\n"
        f"        cluster: {dev.cluster}\n"
        f"{services('dev', dev)}"
        "        rollout: {minimumHealthyPercent: 100, maximumPercent: 200, circuitBreaker: {rollback: true}}\n"
        f"{dev_schedules}"
        "      - name: prod\n"
        f"        cluster: {prod.cluster}\n"
        f"{services('prod', prod)}"
        f"{approval}"
        f"        rollout: {prod_rollout}\n"
        f"{prod_schedules}"
    )
