"""Realistic DescribeTaskDefinition responses (boto3's shape, `include=['TAGS']`).

Each function returns a fresh object, so a test may change what it gets. Timestamps are
timezone-aware datetimes, as boto3 parses them.

- `fargate_web_response`: a Fargate web service (ARM64, awsvpc) with three containers, secrets
  from Secrets Manager and SSM, awslogs and FireLens logging, health checks, an EFS volume and a
  bind mount, `pidMode`, `ephemeralStorage`, `runtimePlatform`, and tags including an `aws:` one.
- `ec2_worker_response`: an EC2 worker behind App Mesh with `ipcMode` and `pidMode`
  (`ipcMode` is not supported on Fargate, so it lives here), `proxyConfiguration`,
  `placementConstraints`, an image pinned by digest and a Service Catalog `aws:` tag.
- `deleted_revision_response`: the Fargate web service after DeleteTaskDefinitions, so it carries
  every read-only key, including `deregisteredAt` and `deleteRequestedAt`.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

ACCOUNT = "123456789012"
REGION = "eu-west-1"
REGISTRY = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com"

WEB_IMAGE = f"{REGISTRY}/shop/web:1.41.0"
LOG_ROUTER_IMAGE = "public.ecr.aws/aws-observability/aws-for-fluent-bit:2.32.4"
OTEL_IMAGE = "public.ecr.aws/aws-observability/aws-otel-collector:v0.41.1"
WORKER_IMAGE = f"{REGISTRY}/shop/worker@sha256:{'3f' * 32}"
ENVOY_IMAGE = f"840364872350.dkr.ecr.{REGION}.amazonaws.com/aws-appmesh-envoy:v1.29.12.1-prod"

WEB_FAMILY = "shop-web"
WEB_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{WEB_FAMILY}:41"
WORKER_FAMILY = "shop-worker"
WORKER_ARN = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{WORKER_FAMILY}:7"

TEAM_TAGS = [
    {"key": "team", "value": "storefront"},
    {"key": "cost-center", "value": "cc-4711"},
]
"""The tags a clone must keep."""

_RESPONSE_METADATA = {
    "RequestId": "0b6d2f62-0f4c-4cb0-9d3a-7f2a5d1c9e10",
    "HTTPStatusCode": 200,
    "HTTPHeaders": {"content-type": "application/x-amz-json-1.1"},
    "RetryAttempts": 0,
}


def _awslogs(stream_prefix: str) -> dict[str, Any]:
    return {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": f"/ecs/{WEB_FAMILY}",
            "awslogs-region": REGION,
            "awslogs-stream-prefix": stream_prefix,
            "mode": "non-blocking",
            "max-buffer-size": "25m",
        },
    }


def _web_container() -> dict[str, Any]:
    return {
        "name": "web",
        "image": WEB_IMAGE,
        "cpu": 768,
        "memoryReservation": 1536,
        "portMappings": [
            {
                "containerPort": 8080,
                "hostPort": 8080,
                "protocol": "tcp",
                "name": "http",
                "appProtocol": "http",
            }
        ],
        "essential": True,
        "environment": [
            {"name": "PORT", "value": "8080"},
            {"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://localhost:4317"},
        ],
        "environmentFiles": [{"value": "arn:aws:s3:::shop-config-eu-west-1/web/production.env", "type": "s3"}],
        "mountPoints": [
            {"sourceVolume": "uploads", "containerPath": "/srv/uploads", "readOnly": False},
            {"sourceVolume": "scratch", "containerPath": "/tmp", "readOnly": False},
        ],
        "volumesFrom": [],
        "secrets": [
            {
                "name": "DATABASE_URL",
                "valueFrom": f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:shop/web/db-AbCdEf:url::",
            },
            {
                "name": "STRIPE_KEY",
                "valueFrom": f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/shop/web/stripe-key",
            },
        ],
        "dependsOn": [
            {"containerName": "log-router", "condition": "START"},
            {"containerName": "otel-collector", "condition": "HEALTHY"},
        ],
        "stopTimeout": 30,
        "readonlyRootFilesystem": True,
        "ulimits": [{"name": "nofile", "softLimit": 65536, "hardLimit": 65536}],
        "linuxParameters": {"initProcessEnabled": True, "capabilities": {"drop": ["NET_RAW"]}},
        "logConfiguration": {
            "logDriver": "awsfirelens",
            "options": {
                "Name": "cloudwatch_logs",
                "region": REGION,
                "log_group_name": f"/ecs/{WEB_FAMILY}/app",
            },
            "secretOptions": [],
        },
        "healthCheck": {
            "command": ["CMD-SHELL", "curl -fsS http://localhost:8080/healthz || exit 1"],
            "interval": 15,
            "timeout": 5,
            "retries": 3,
            "startPeriod": 30,
        },
        "systemControls": [],
        "versionConsistency": "enabled",
    }


def _log_router_container() -> dict[str, Any]:
    return {
        "name": "log-router",
        "image": LOG_ROUTER_IMAGE,
        "cpu": 64,
        "memoryReservation": 128,
        "portMappings": [],
        "essential": True,
        "environment": [],
        "mountPoints": [],
        "volumesFrom": [],
        "user": "0",
        "logConfiguration": _awslogs("firelens"),
        "firelensConfiguration": {"type": "fluentbit", "options": {"enable-ecs-log-metadata": "true"}},
        "systemControls": [],
    }


def _otel_container() -> dict[str, Any]:
    return {
        "name": "otel-collector",
        "image": OTEL_IMAGE,
        "cpu": 128,
        "memoryReservation": 256,
        "portMappings": [{"containerPort": 4317, "hostPort": 4317, "protocol": "tcp"}],
        "essential": False,
        "command": ["--config=/etc/ecs/ecs-default-config.yaml"],
        "environment": [],
        "mountPoints": [],
        "volumesFrom": [],
        "logConfiguration": _awslogs("otel"),
        "healthCheck": {"command": ["/healthcheck"], "interval": 10, "timeout": 5, "retries": 5},
        "systemControls": [],
    }


def fargate_web_response() -> dict[str, Any]:
    """DescribeTaskDefinition(include=['TAGS']) of an ACTIVE Fargate web service."""
    return {
        "taskDefinition": {
            "taskDefinitionArn": WEB_ARN,
            "containerDefinitions": [_web_container(), _log_router_container(), _otel_container()],
            "family": WEB_FAMILY,
            "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-web-task",
            "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-web-execution",
            "networkMode": "awsvpc",
            "revision": 41,
            "volumes": [
                {
                    "name": "uploads",
                    "efsVolumeConfiguration": {
                        "fileSystemId": "fs-0a1b2c3d4e5f60718",
                        "rootDirectory": "/",
                        "transitEncryption": "ENABLED",
                        "authorizationConfig": {"accessPointId": "fsap-0a1b2c3d4e5f60718", "iam": "ENABLED"},
                    },
                },
                {"name": "scratch", "host": {}},
            ],
            "status": "ACTIVE",
            "requiresAttributes": [
                {"name": "com.amazonaws.ecs.capability.logging-driver.awsfirelens"},
                {"name": "ecs.capability.execution-role-awslogs"},
                {"name": "com.amazonaws.ecs.capability.ecr-auth"},
                {"name": "com.amazonaws.ecs.capability.docker-remote-api.1.19"},
                {"name": "ecs.capability.secrets.asm.environment-variables"},
                {"name": "ecs.capability.secrets.ssm.environment-variables"},
                {"name": "ecs.capability.efsAuth"},
                {"name": "ecs.capability.efs"},
                {"name": "ecs.capability.container-health-check"},
                {"name": "ecs.capability.container-ordering"},
                {"name": "ecs.capability.env-files.s3"},
                {"name": "ecs.capability.task-eni"},
            ],
            "placementConstraints": [],
            "compatibilities": ["EC2", "FARGATE"],
            "runtimePlatform": {"cpuArchitecture": "ARM64", "operatingSystemFamily": "LINUX"},
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "1024",
            "memory": "2048",
            "ephemeralStorage": {"sizeInGiB": 40},
            "pidMode": "task",
            "enableFaultInjection": False,
            "registeredAt": datetime(2025, 3, 4, 10, 15, 2, 511000, tzinfo=UTC),
            "registeredBy": f"arn:aws:sts::{ACCOUNT}:assumed-role/shop-deployer/deployer-3f2a",
        },
        "tags": [
            {"key": "aws:cloudformation:stack-name", "value": "shop-web"},
            *TEAM_TAGS,
        ],
        "ResponseMetadata": copy.deepcopy(_RESPONSE_METADATA),
    }


def deleted_revision_response() -> dict[str, Any]:
    """The Fargate web revision after DeleteTaskDefinitions: every read-only key is present."""
    response = fargate_web_response()
    definition = response["taskDefinition"]
    definition["status"] = "DELETE_IN_PROGRESS"
    definition["deregisteredAt"] = datetime(2025, 5, 2, 8, 0, 0, tzinfo=UTC)
    definition["deleteRequestedAt"] = datetime(2025, 5, 2, 8, 1, 30, tzinfo=UTC)
    return response


def ec2_worker_response() -> dict[str, Any]:
    """DescribeTaskDefinition(include=['TAGS']) of an EC2 queue worker in an App Mesh."""
    return {
        "taskDefinition": {
            "taskDefinitionArn": WORKER_ARN,
            "containerDefinitions": [
                {
                    "name": "worker",
                    "image": WORKER_IMAGE,
                    "cpu": 1024,
                    "memory": 2048,
                    "portMappings": [],
                    "essential": True,
                    "environment": [
                        {"name": "QUEUE_URL", "value": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/orders"}
                    ],
                    "mountPoints": [{"sourceVolume": "docker-sock", "containerPath": "/var/run/docker.sock"}],
                    "volumesFrom": [],
                    "dependsOn": [{"containerName": "envoy", "condition": "HEALTHY"}],
                    "dockerLabels": {"com.datadoghq.tags.service": "shop-worker"},
                    "logConfiguration": {
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": f"/ecs/{WORKER_FAMILY}",
                            "awslogs-region": REGION,
                            "awslogs-stream-prefix": "worker",
                        },
                    },
                    "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
                },
                {
                    "name": "envoy",
                    "image": ENVOY_IMAGE,
                    "cpu": 256,
                    "memoryReservation": 256,
                    "portMappings": [],
                    "essential": True,
                    "environment": [
                        {
                            "name": "APPMESH_RESOURCE_ARN",
                            "value": f"arn:aws:appmesh:{REGION}:{ACCOUNT}:mesh/shop/virtualNode/worker",
                        }
                    ],
                    "mountPoints": [],
                    "volumesFrom": [],
                    "user": "1337",
                    "healthCheck": {
                        "command": [
                            "CMD-SHELL",
                            "curl -s http://localhost:9901/server_info | grep state | grep -q LIVE",
                        ],
                        "interval": 5,
                        "timeout": 2,
                        "retries": 3,
                        "startPeriod": 10,
                    },
                    "systemControls": [],
                },
            ],
            "family": WORKER_FAMILY,
            "taskRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-worker-task",
            "executionRoleArn": f"arn:aws:iam::{ACCOUNT}:role/shop-worker-execution",
            "networkMode": "awsvpc",
            "revision": 7,
            "volumes": [{"name": "docker-sock", "host": {"sourcePath": "/var/run/docker.sock"}}],
            "status": "ACTIVE",
            "requiresAttributes": [
                {"name": "com.amazonaws.ecs.capability.ecr-auth"},
                {"name": "ecs.capability.execution-role-awslogs"},
                {"name": "ecs.capability.container-health-check"},
                {"name": "ecs.capability.container-ordering"},
                {"name": "ecs.capability.task-eni"},
                {"name": "ecs.capability.aws-appmesh"},
            ],
            "placementConstraints": [{"type": "memberOf", "expression": "attribute:ecs.instance-type =~ c6i.*"}],
            "compatibilities": ["EC2"],
            "requiresCompatibilities": ["EC2"],
            "memory": "3072",
            "proxyConfiguration": {
                "type": "APPMESH",
                "containerName": "envoy",
                "properties": [
                    {"name": "IgnoredUID", "value": "1337"},
                    {"name": "ProxyIngressPort", "value": "15000"},
                    {"name": "ProxyEgressPort", "value": "15001"},
                    {"name": "AppPorts", "value": "8080"},
                    {"name": "EgressIgnoredIPs", "value": "169.254.170.2,169.254.169.254"},
                ],
            },
            "ipcMode": "task",
            "pidMode": "task",
            "registeredAt": datetime(2024, 11, 20, 16, 42, 7, 3000, tzinfo=UTC),
            "registeredBy": f"arn:aws:iam::{ACCOUNT}:user/ops",
        },
        "tags": [
            {
                "key": "aws:servicecatalog:productArn",
                "value": f"arn:aws:catalog:{REGION}:{ACCOUNT}:product/prod-x",
            },
            {"key": "team", "value": "fulfilment"},
        ],
        "ResponseMetadata": copy.deepcopy(_RESPONSE_METADATA),
    }
