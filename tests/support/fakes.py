"""In-memory AWS for the unit tier: real boto3 clients and resources whose calls are answered by
fakes held in this process, never by moto and never over a socket.

`FakeAws()` stands where a `boto3.session.Session` does (`client`, `resource`, `region_name`), so
the code that provisions a world (`deployer_local.provision`) and the deployer itself run unchanged on
it. Each call goes through botocore as usual: the parameters are validated against botocore's
model of the service (a misspelt parameter fails as it would against AWS), then, instead of an
HTTP request, the fake answers on botocore's `before-call` event. Every answer is checked against
the operation's output shape in botocore's model, and an error is raised as botocore raises
AWS's (`client.exceptions.ConditionalCheckFailedException`, `ClientException`...). An operation a
fake does not answer raises `NotImplementedError` naming it: add it here, or test that code in the
functional tier (moto). A test that queues its own answers (`tests.support.ecs_stub`,
`tests.support.local_tasks`, botocore's Stubber) still does: more specific handlers run first.

What the fakes hold, and where they stop:
- DynamoDB: `tests.support.fake_dynamodb` (tables, items, expressions; checked against moto by
  `tests/unit/test_fakes_match_moto.py`).
- ECS: clusters, task definitions (revisions, tags, ACTIVE/INACTIVE) and services. UpdateService
  with another task definition (or forceNewDeployment) starts a deployment, as ECS does: a new
  PRIMARY deployment, the previous one ACTIVE ("A service deployment that still has running
  tasks, but are in the process of being replaced with a new PRIMARY deployment", Amazon ECS API
  Reference, Deployment, https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html).
  A service is created at rest (its first deployment COMPLETED); a later deployment completes only
  when a test says so (`FakeEcs.complete`). The service-deployment and task APIs are not answered
  (queue them with `ecs_stub` / `local_tasks`).
- CodeBuild: projects and builds (StartBuild's idempotencyToken returns the same build; a build
  stays IN_PROGRESS: the tests send its end as an event). ECR: repositories and images (the digest
  is the manifest's SHA-256).
  CodeCommit, EC2 (VPC, subnet, security group), EventBridge (buses; PutEvents entries kept in
  `FakeEvents.sent`), SQS (queues), Application Auto Scaling (scalable targets): what provisioning a
  world needs.
Every request is recorded in `FakeAws.requests` as (service, operation, parameters).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

import boto3
from botocore.awsrequest import AWSResponse
from botocore.validate import ParamValidator

from tests.support.fake_dynamodb import DynamoDBError, FakeDynamoDB

__all__ = ["ACCOUNT", "REGION", "AwsError", "FakeAws"]

REGION = "eu-west-1"
ACCOUNT = "123456789012"

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class AwsError(Exception):
    """An error answer: AWS's error code and message (HTTP 400 unless said otherwise)."""

    def __init__(self, code: str, message: str, status: int = 400, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra


@functools.cache
def _session() -> boto3.session.Session:
    """One boto3 session for every fake client of the process: botocore loads each service's model
    once. Its credentials are fake; no request it builds is ever sent."""
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


def _now() -> datetime:
    return datetime.now(UTC)


class FakeAws:
    """One account's worth of fake AWS, shaped like a boto3 session."""

    region_name = REGION

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.dynamodb = FakeDynamoDB(REGION, ACCOUNT)
        self.ecs = FakeEcs()
        self.codebuild = FakeCodeBuild()
        self.ecr = FakeEcr()
        self.events = FakeEvents()
        self.codecommit = FakeCodeCommit()
        self.ec2 = FakeEc2()
        self.sqs = FakeSqs()
        self.autoscaling = FakeAutoScaling()

    def _backends(self) -> dict[str, Any]:
        """botocore's service name -> the fake answering it."""
        return {
            "dynamodb": self.dynamodb,
            "ecs": self.ecs,
            "codebuild": self.codebuild,
            "ecr": self.ecr,
            "events": self.events,
            "codecommit": self.codecommit,
            "ec2": self.ec2,
            "sqs": self.sqs,
            "application-autoscaling": self.autoscaling,
        }

    def snapshot(self) -> dict[str, Any]:
        """Everything the account holds, to `restore` into another (tests/conftest.py builds a
        world once and gives each test a copy)."""
        return copy.deepcopy(self._backends())

    def restore(self, snapshot: dict[str, Any]) -> None:
        """Hold a copy of what `snapshot` held (the clients already made answer from it too)."""
        for service, backend in copy.deepcopy(snapshot).items():
            attribute = "autoscaling" if service == "application-autoscaling" else service
            setattr(self, attribute, backend)

    # -- the session's interface --

    def client(self, service_name: str, **_: Any) -> Any:
        """A botocore client of `service_name` answered by this account's fake."""
        client = _session().client(service_name, region_name=REGION)
        self._attach(client, service_name)
        return client

    def resource(self, service_name: str, **_: Any) -> Any:
        """A boto3 resource (DynamoDB's Table and the like) answered by this account's fake."""
        resource = _session().resource(service_name, region_name=REGION)
        self._attach(resource.meta.client, service_name)
        return resource

    def table(self, name: str) -> Any:
        return self.resource("dynamodb").Table(name)

    def calls(self, service: str) -> list[str]:
        """The operations called on `service`, in order."""
        return [operation for called, operation, _ in self.requests if called == service]

    # -- answering --

    def _attach(self, client: Any, service_name: str) -> None:
        events = client.meta.events
        service_id = client.meta.service_model.service_id.hyphenize()

        def capture(params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
            # After boto3's own handlers (DynamoDB's typed values); botocore validates them next.
            context["fake_aws_params"] = copy.deepcopy(params)

        def answer(model: Any, context: dict[str, Any], **_: Any) -> tuple[AWSResponse, dict[str, Any]]:
            params = context.get("fake_aws_params", {})
            self.requests.append((service_name, model.name, params))
            backend = self._backends().get(service_name)
            operations = backend.operations() if backend is not None else {}
            handler = operations.get(model.name)
            if handler is None:
                answered = sorted(operations)
                raise NotImplementedError(
                    f"the in-memory fake of {service_name} does not answer {model.name} "
                    f"(it answers {', '.join(answered) or 'nothing'}): add it to tests/support/fakes.py, "
                    "queue the answer in the test, or test this in the functional tier (moto)"
                )
            try:
                response = handler(params)
            except (AwsError, DynamoDBError) as exc:
                status = getattr(exc, "status", 400)
                error = {"Error": {"Code": exc.code, "Message": exc.message}, **exc.extra}
                error["ResponseMetadata"] = {"HTTPStatusCode": status}
                return AWSResponse(f"https://{service_name}.fake", status, {}, None), error
            if model.output_shape is not None:
                report = _AnswerValidator().validate(response, model.output_shape)
                if report.has_errors():
                    raise AssertionError(
                        f"the fake's answer to {service_name} {model.name} does not match botocore's model: "
                        f"{report.generate_report()}"
                    )
            parsed = {**copy.deepcopy(response), "ResponseMetadata": {"HTTPStatusCode": 200, "RetryAttempts": 0}}
            return AWSResponse(f"https://{service_name}.fake", 200, {}, None), parsed

        # Last: a test's own hooks (counting calls, queued answers, botocore's Stubber) come first.
        events.register_last(f"before-parameter-build.{service_id}", capture)
        events.register_last(f"before-call.{service_id}", answer)


class _AnswerValidator(ParamValidator):  # type: ignore[misc]
    """botocore's validator, for answers: member names, required members and types, not the
    lengths and ranges a request must respect (AWS's answers break them: an empty list of ids)."""

    def _wrong_type(self, param: Any, errors: Any, name: str, *types: type) -> bool:
        if isinstance(param, types) and not (bool not in types and isinstance(param, bool)):
            return False
        errors.report(name, "invalid type", param=param, valid_types=[str(t) for t in types])
        return True

    def _validate_string(self, param: Any, shape: Any, errors: Any, name: str) -> None:
        self._wrong_type(param, errors, name, str)

    def _validate_integer(self, param: Any, shape: Any, errors: Any, name: str) -> None:
        self._wrong_type(param, errors, name, int)

    _validate_long = _validate_integer

    def _validate_double(self, param: Any, shape: Any, errors: Any, name: str) -> None:
        self._wrong_type(param, errors, name, int, float, Decimal)

    def _validate_list(self, param: Any, shape: Any, errors: Any, name: str) -> None:
        if not self._wrong_type(param, errors, name, list, tuple):
            for i, item in enumerate(param):
                self._validate(item, shape.member, errors, f"{name}[{i}]")


class _Backend:
    """A fake's state; copied (`FakeAws.snapshot`) without its lock, which a copy makes anew."""

    _lock: threading.RLock

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()


# -- ECS -----------------------------------------------------------------------------------------


class FakeEcs(_Backend):
    """Clusters, task definitions and services, as DescribeServices and DescribeTaskDefinition show them."""

    DEFAULT_DEPLOYMENT_CONFIGURATION: ClassVar[dict[str, Any]] = {
        "deploymentCircuitBreaker": {"enable": False, "rollback": False},
        "maximumPercent": 200,
        "minimumHealthyPercent": 100,
    }

    # what ECS (and moto) fill in a container definition registered without them
    CONTAINER_DEFAULTS: ClassVar[dict[str, Any]] = {
        "cpu": 0,
        "portMappings": [],
        "essential": True,
        "environment": [],
        "mountPoints": [],
        "volumesFrom": [],
    }

    def __init__(self) -> None:
        self.clusters: dict[str, dict[str, Any]] = {}
        self.task_definitions: dict[str, dict[int, dict[str, Any]]] = {}
        self.tags: dict[str, list[dict[str, str]]] = {}
        self.services: dict[tuple[str, str], dict[str, Any]] = {}
        self._deployments = 0
        self._lock = threading.RLock()

    def operations(self) -> dict[str, Handler]:
        return {
            "CreateCluster": self.create_cluster,
            "DescribeClusters": self.describe_clusters,
            "RegisterTaskDefinition": self.register_task_definition,
            "DescribeTaskDefinition": self.describe_task_definition,
            "ListTaskDefinitions": self.list_task_definitions,
            "DeregisterTaskDefinition": self.deregister_task_definition,
            "CreateService": self.create_service,
            "DescribeServices": self.describe_services,
            "UpdateService": self.update_service,
        }

    # -- clusters --

    def create_cluster(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = request.get("clusterName", "default")
            cluster = self.clusters.setdefault(
                name,
                {
                    "clusterArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}",
                    "clusterName": name,
                    "status": "ACTIVE",
                    "registeredContainerInstancesCount": 0,
                    "runningTasksCount": 0,
                    "pendingTasksCount": 0,
                    "activeServicesCount": 0,
                },
            )
            return {"cluster": cluster}

    def describe_clusters(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            found, failures = [], []
            for wanted in request.get("clusters", ["default"]):
                name = wanted.rsplit("/", 1)[-1]
                if name in self.clusters:
                    found.append(self.clusters[name])
                else:
                    failures.append({"arn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:cluster/{name}", "reason": "MISSING"})
            return {"clusters": found, "failures": failures}

    def _cluster(self, name_or_arn: str | None) -> dict[str, Any]:
        name = (name_or_arn or "default").rsplit("/", 1)[-1]
        cluster = self.clusters.get(name)
        if cluster is None:
            raise AwsError("ClusterNotFoundException", "Cluster not found.")
        return cluster

    # -- task definitions --

    def register_task_definition(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            family = request["family"]
            for container in request["containerDefinitions"]:
                if not container.get("name") or not container.get("image"):
                    raise AwsError("ClientException", "Container.name and Container.image should not be null or empty.")
            revisions = self.task_definitions.setdefault(family, {})
            revision = max(revisions, default=0) + 1
            arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:task-definition/{family}:{revision}"
            definition = {key: copy.deepcopy(value) for key, value in request.items() if key != "tags"}
            definition["containerDefinitions"] = [
                {**self.CONTAINER_DEFAULTS, **container} for container in definition["containerDefinitions"]
            ]
            definition.update(
                taskDefinitionArn=arn,
                revision=revision,
                status="ACTIVE",
                registeredAt=_now(),
                registeredBy=f"arn:aws:iam::{ACCOUNT}:root",
                compatibilities=sorted({"EC2", *request.get("requiresCompatibilities", [])}),
            )
            definition.setdefault("volumes", [])
            definition.setdefault("placementConstraints", [])
            revisions[revision] = definition
            self.tags[arn] = copy.deepcopy(request.get("tags", []))
            return {"taskDefinition": definition, "tags": self.tags[arn]}

    def _definition(self, reference: str) -> dict[str, Any]:
        name = reference.rsplit("/", 1)[-1]
        family, _, revision = name.partition(":")
        revisions = self.task_definitions.get(family, {})
        if revision:
            found = revisions.get(int(revision)) if revision.isdigit() else None
        else:
            active = [number for number, d in revisions.items() if d["status"] == "ACTIVE"]
            found = revisions[max(active)] if active else None
        if found is None:
            raise AwsError("ClientException", "Unable to describe task definition.")
        return found

    def describe_task_definition(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            definition = self._definition(request["taskDefinition"])
            response: dict[str, Any] = {"taskDefinition": definition}
            if "TAGS" in request.get("include", []):
                response["tags"] = self.tags.get(definition["taskDefinitionArn"], [])
            return response

    def list_task_definitions(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if "nextToken" in request or "maxResults" in request:
                raise NotImplementedError("FakeEcs: ListTaskDefinitions pages (nextToken, maxResults)")
            status = request.get("status", "ACTIVE")
            family = request.get("familyPrefix")
            found = [
                (name, number, definition["taskDefinitionArn"])
                for name, revisions in self.task_definitions.items()
                if family is None or name == family
                for number, definition in revisions.items()
                if definition["status"] == status
            ]
            found.sort(reverse=request.get("sort") == "DESC")
            return {"taskDefinitionArns": [arn for _, _, arn in found]}

    def deregister_task_definition(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            reference = request["taskDefinition"]
            if ":" not in reference.rsplit("/", 1)[-1]:
                raise AwsError("ClientException", "Revision is missing from the task definition.")
            definition = self._definition(reference)
            if definition["status"] == "ACTIVE":
                definition["status"] = "INACTIVE"
                definition["deregisteredAt"] = _now()
            return {"taskDefinition": definition}

    # -- services --

    def create_service(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            cluster = self._cluster(request.get("cluster"))
            name = request["serviceName"]
            key = (cluster["clusterName"], name)
            if key in self.services and self.services[key]["status"] == "ACTIVE":
                raise AwsError("InvalidParameterException", "Creation of service was not idempotent.")
            definition = self._definition(request["taskDefinition"])
            now = _now()
            desired = int(request.get("desiredCount", 0))
            service: dict[str, Any] = {
                "serviceArn": f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster['clusterName']}/{name}",
                "serviceName": name,
                "clusterArn": cluster["clusterArn"],
                "loadBalancers": copy.deepcopy(request.get("loadBalancers", [])),
                "serviceRegistries": [],
                "status": "ACTIVE",
                "desiredCount": desired,
                "runningCount": 0,
                "pendingCount": 0,
                "taskDefinition": definition["taskDefinitionArn"],
                "deploymentConfiguration": copy.deepcopy(
                    request.get("deploymentConfiguration", self.DEFAULT_DEPLOYMENT_CONFIGURATION)
                ),
                "deployments": [],
                "events": [],
                "createdAt": now,
                "placementConstraints": [],
                "placementStrategy": [],
                "schedulingStrategy": request.get("schedulingStrategy", "REPLICA"),
                "deploymentController": copy.deepcopy(request.get("deploymentController", {"type": "ECS"})),
                "enableECSManagedTags": False,
                "propagateTags": "NONE",
                "enableExecuteCommand": False,
            }
            for optional in ("launchType", "capacityProviderStrategy", "networkConfiguration", "platformVersion"):
                if optional in request:
                    service[optional] = copy.deepcopy(request[optional])
            if service["deploymentController"]["type"] == "ECS":
                self._start_deployment(service, now)
            self.services[key] = service
            self.complete(cluster["clusterName"], name)  # a service at rest: its first deployment is done
            cluster["activeServicesCount"] += 1
            return {"service": service}

    def describe_services(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            cluster = self._cluster(request.get("cluster"))
            found, failures = [], []
            for wanted in request["services"]:
                name = wanted.rsplit("/", 1)[-1]
                service = self.services.get((cluster["clusterName"], name))
                if service is None:
                    arn = f"arn:aws:ecs:{REGION}:{ACCOUNT}:service/{cluster['clusterName']}/{name}"
                    failures.append({"arn": arn, "reason": "MISSING"})
                else:
                    found.append(service)
            return {"services": found, "failures": failures}

    def update_service(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            cluster = self._cluster(request.get("cluster"))
            service = self.services.get((cluster["clusterName"], request["service"].rsplit("/", 1)[-1]))
            if service is None or service["status"] != "ACTIVE":
                raise AwsError("ServiceNotFoundException", "Service not found.")
            unanswered = set(request) - {
                "cluster",
                "service",
                "taskDefinition",
                "desiredCount",
                "deploymentConfiguration",
                "forceNewDeployment",
                "networkConfiguration",
                "loadBalancers",
            }
            if unanswered:
                raise NotImplementedError(f"FakeEcs: UpdateService with {', '.join(sorted(unanswered))}")
            new_deployment = bool(request.get("forceNewDeployment"))
            if "taskDefinition" in request:
                arn = self._definition(request["taskDefinition"])["taskDefinitionArn"]
                new_deployment = new_deployment or arn != service["taskDefinition"]
                service["taskDefinition"] = arn
            for field_name in ("desiredCount", "deploymentConfiguration", "networkConfiguration", "loadBalancers"):
                if field_name in request:
                    service[field_name] = copy.deepcopy(request[field_name])
            if new_deployment and service["deploymentController"]["type"] == "ECS":
                self._start_deployment(service, _now())
            elif "desiredCount" in request:
                for deployment in service["deployments"]:
                    if deployment["status"] == "PRIMARY":
                        deployment["desiredCount"] = service["desiredCount"]
            return {"service": service}

    def _start_deployment(self, service: dict[str, Any], now: datetime) -> None:
        """A new PRIMARY deployment; the previous PRIMARY goes on as ACTIVE (older ones are dropped:
        this fake keeps one deployment being replaced)."""
        self._deployments += 1
        deployment_id = f"ecs-svc/{9_000_000_000_000_000_000 + self._deployments}"
        previous = [d for d in service["deployments"] if d["status"] == "PRIMARY"]
        for deployment in previous:
            deployment["status"] = "ACTIVE"
            deployment["updatedAt"] = now
        deployment = {
            "id": deployment_id,
            "status": "PRIMARY",
            "taskDefinition": service["taskDefinition"],
            "desiredCount": service["desiredCount"],
            "pendingCount": 0,
            "runningCount": 0,
            "failedTasks": 0,
            "createdAt": now,
            "updatedAt": now,
            "rolloutState": "IN_PROGRESS",
            "rolloutStateReason": f"ECS deployment {deployment_id} in progress.",
        }
        for optional in ("launchType", "networkConfiguration", "platformVersion"):
            if optional in service:
                deployment[optional] = copy.deepcopy(service[optional])
        service["deployments"] = [deployment, *previous]

    def complete(self, cluster: str, service: str) -> str:
        """The service's PRIMARY deployment completes (as ECS reports it): its tasks run, the ones it
        replaced are gone. Returns its id."""
        with self._lock:
            found = self.services[(cluster, service)]
            (primary,) = [d for d in found["deployments"] if d["status"] == "PRIMARY"]
            primary.update(
                rolloutState="COMPLETED",
                rolloutStateReason=f"ECS deployment {primary['id']} completed.",
                runningCount=primary["desiredCount"],
                updatedAt=_now(),
            )
            found["deployments"] = [primary]
            found["runningCount"] = primary["desiredCount"]
            return str(primary["id"])


# -- CodeBuild, ECR, CodeCommit ----------------------------------------------------------------------


class FakeCodeBuild(_Backend):
    """Projects and builds; a build stays IN_PROGRESS (the tests send its end as an event)."""

    def __init__(self) -> None:
        self.projects: dict[str, dict[str, Any]] = {}
        self.builds: dict[str, dict[str, Any]] = {}
        self._tokens: dict[str, str] = {}
        self._lock = threading.RLock()

    def operations(self) -> dict[str, Handler]:
        return {
            "CreateProject": self.create_project,
            "StartBuild": self.start_build,
            "BatchGetBuilds": self.batch_get_builds,
            "ListBuildsForProject": self.list_builds_for_project,
        }

    def create_project(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = request["name"]
            if name in self.projects:
                raise AwsError("ResourceAlreadyExistsException", f"Project already exists: {name}")
            now = _now()
            project = {
                **copy.deepcopy(request),
                "arn": f"arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{name}",
                "created": now,
                "lastModified": now,
                "timeoutInMinutes": request.get("timeoutInMinutes", 60),
                "queuedTimeoutInMinutes": request.get("queuedTimeoutInMinutes", 480),
            }
            self.projects[name] = project
            return {"project": project}

    def start_build(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = request["projectName"]
            project = self.projects.get(name)
            if project is None:
                raise AwsError(
                    "ResourceNotFoundException",
                    f"Project cannot be found: arn:aws:codebuild:{REGION}:{ACCOUNT}:project/{name}",
                )
            token = request.get("idempotencyToken")
            if token and token in self._tokens:
                return {"build": self.builds[self._tokens[token]]}
            build_id = f"{name}:{uuid.uuid4()}"
            environment = copy.deepcopy(project["environment"])
            environment["environmentVariables"] = [
                *environment.get("environmentVariables", []),
                *copy.deepcopy(request.get("environmentVariablesOverride", [])),
            ]
            build = {
                "id": build_id,
                "arn": f"arn:aws:codebuild:{REGION}:{ACCOUNT}:build/{build_id}",
                "buildNumber": sum(1 for b in self.builds.values() if b["projectName"] == name) + 1,
                "startTime": _now(),
                "currentPhase": "QUEUED",
                "buildStatus": "IN_PROGRESS",
                "sourceVersion": request.get("sourceVersion", "refs/heads/main"),
                "projectName": name,
                "source": copy.deepcopy(project["source"]),
                "artifacts": {"location": ""},
                "environment": environment,
                "serviceRole": project["serviceRole"],
                "timeoutInMinutes": project["timeoutInMinutes"],
                "queuedTimeoutInMinutes": project["queuedTimeoutInMinutes"],
                "buildComplete": False,
                "initiator": "deployer",
            }
            self.builds[build_id] = build
            if token:
                self._tokens[token] = build_id
            return {"build": build}

    def batch_get_builds(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            ids = request["ids"]
            return {
                "builds": [self.builds[i] for i in ids if i in self.builds],
                "buildsNotFound": [i for i in ids if i not in self.builds],
            }

    def list_builds_for_project(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if request["projectName"] not in self.projects:
                raise AwsError("ResourceNotFoundException", "The provided project was not found.")
            found = [b for b in self.builds.values() if b["projectName"] == request["projectName"]]
            found.sort(key=lambda b: b["buildNumber"], reverse=request.get("sortOrder", "DESCENDING") == "DESCENDING")
            return {"ids": [b["id"] for b in found]}


class FakeEcr(_Backend):
    """Repositories and images; an image's digest is the SHA-256 of its manifest, as ECR's is."""

    def __init__(self) -> None:
        self.repositories: dict[str, dict[str, Any]] = {}
        self.images: dict[str, dict[str, dict[str, Any]]] = {}  # repository -> digest -> image
        self._lock = threading.RLock()

    def operations(self) -> dict[str, Handler]:
        return {
            "CreateRepository": self.create_repository,
            "DescribeRepositories": self.describe_repositories,
            "PutImage": self.put_image,
            "DescribeImages": self.describe_images,
        }

    def create_repository(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = request["repositoryName"]
            if name in self.repositories:
                raise AwsError(
                    "RepositoryAlreadyExistsException",
                    f"The repository with name '{name}' already exists in the registry with id '{ACCOUNT}'",
                )
            repository = {
                "repositoryArn": f"arn:aws:ecr:{REGION}:{ACCOUNT}:repository/{name}",
                "registryId": ACCOUNT,
                "repositoryName": name,
                "repositoryUri": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}",
                "createdAt": _now(),
                "imageTagMutability": request.get("imageTagMutability", "MUTABLE"),
            }
            self.repositories[name] = repository
            self.images[name] = {}
            return {"repository": repository}

    def _repository(self, name: str) -> dict[str, Any]:
        repository = self.repositories.get(name)
        if repository is None:
            raise AwsError(
                "RepositoryNotFoundException",
                f"The repository with name '{name}' does not exist in the registry with id '{ACCOUNT}'",
            )
        return repository

    def describe_repositories(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            names = request.get("repositoryNames", list(self.repositories))
            return {"repositories": [self._repository(name) for name in names]}

    def put_image(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = request["repositoryName"]
            self._repository(name)
            manifest = request["imageManifest"]
            digest = "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
            tag = request.get("imageTag")
            for image in self.images[name].values():  # a tag names one image
                if tag in image["imageTags"]:
                    image["imageTags"].remove(tag)
            image = self.images[name].setdefault(
                digest, {"imageDigest": digest, "imageTags": [], "manifest": manifest, "pushedAt": _now()}
            )
            if tag:
                image["imageTags"].append(tag)
            image_id = {"imageDigest": digest, **({"imageTag": tag} if tag else {})}
            image_ref = {"registryId": ACCOUNT, "repositoryName": name, "imageId": image_id, "imageManifest": manifest}
            return {"image": image_ref}

    def describe_images(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = request["repositoryName"]
            self._repository(name)
            images = self.images[name]
            wanted = request.get("imageIds") or [{"imageDigest": digest} for digest in images]
            details = []
            for image_id in wanted:
                found = next(
                    (
                        image
                        for image in images.values()
                        if image_id.get("imageDigest") in {None, image["imageDigest"]}
                        and image_id.get("imageTag") in {None, *image["imageTags"]}
                    ),
                    None,
                )
                if found is None:
                    shown = f"{{imageDigest:'{image_id.get('imageDigest')}', imageTag:'{image_id.get('imageTag')}'}}"
                    raise AwsError(
                        "ImageNotFoundException",
                        f"The image with imageId {shown} does not exist within the repository with name '{name}' "
                        f"in the registry with id '{ACCOUNT}'",
                    )
                details.append(
                    {
                        "registryId": ACCOUNT,
                        "repositoryName": name,
                        "imageDigest": found["imageDigest"],
                        "imageTags": list(found["imageTags"]),
                        "imageSizeInBytes": len(found["manifest"]),
                        "imagePushedAt": found["pushedAt"],
                        "imageManifestMediaType": "application/vnd.docker.distribution.manifest.v2+json",
                    }
                )
            return {"imageDetails": details}


class FakeCodeCommit(_Backend):
    def __init__(self) -> None:
        self.repositories: dict[str, dict[str, Any]] = {}

    def operations(self) -> dict[str, Handler]:
        return {"CreateRepository": self.create_repository}

    def create_repository(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["repositoryName"]
        if name in self.repositories:
            raise AwsError("RepositoryNameExistsException", f"Repository named {name} already exists")
        metadata = {
            "accountId": ACCOUNT,
            "repositoryId": str(uuid.uuid4()),
            "repositoryName": name,
            "Arn": f"arn:aws:codecommit:{REGION}:{ACCOUNT}:{name}",
            "cloneUrlHttp": f"https://git-codecommit.{REGION}.amazonaws.com/v1/repos/{name}",
            "creationDate": _now(),
        }
        self.repositories[name] = metadata
        return {"repositoryMetadata": metadata}


# -- what provisioning needs besides: EC2, EventBridge, SQS, Application Auto Scaling -----------------


class FakeEc2(_Backend):
    def __init__(self) -> None:
        self._ids = 0

    def operations(self) -> dict[str, Handler]:
        return {
            "CreateVpc": self.create_vpc,
            "CreateSubnet": self.create_subnet,
            "CreateSecurityGroup": self.create_security_group,
        }

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids:017x}"

    def create_vpc(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"Vpc": {"VpcId": self._id("vpc"), "CidrBlock": request["CidrBlock"], "State": "available"}}

    def create_subnet(self, request: dict[str, Any]) -> dict[str, Any]:
        zone = request.get("AvailabilityZone", f"{REGION}a")
        subnet = {
            "SubnetId": self._id("subnet"),
            "VpcId": request["VpcId"],
            "CidrBlock": request["CidrBlock"],
            "AvailabilityZone": zone,
            "State": "available",
        }
        return {"Subnet": subnet}

    def create_security_group(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"GroupId": self._id("sg")}


class FakeEvents(_Backend):
    """Event buses; every PutEvents entry is kept in `sent` (none fails: a test that needs a failed
    entry queues its answer)."""

    def __init__(self) -> None:
        self.buses: dict[str, str] = {"default": f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"}
        self.sent: list[dict[str, Any]] = []

    def operations(self) -> dict[str, Handler]:
        return {"CreateEventBus": self.create_event_bus, "PutEvents": self.put_events}

    def create_event_bus(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["Name"]
        if name in self.buses:
            raise AwsError("ResourceAlreadyExistsException", f"Event bus {name} already exists.")
        self.buses[name] = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{name}"
        return {"EventBusArn": self.buses[name]}

    def put_events(self, request: dict[str, Any]) -> dict[str, Any]:
        self.sent.extend(copy.deepcopy(request["Entries"]))
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(uuid.uuid4())} for _ in request["Entries"]]}


class FakeSqs(_Backend):
    def __init__(self) -> None:
        self.queues: dict[str, dict[str, str]] = {}

    def operations(self) -> dict[str, Handler]:
        return {"CreateQueue": self.create_queue}

    def create_queue(self, request: dict[str, Any]) -> dict[str, Any]:
        name = request["QueueName"]
        self.queues.setdefault(name, dict(request.get("Attributes", {})))
        return {"QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"}


class FakeAutoScaling(_Backend):
    """Application Auto Scaling: the scalable targets registered (none unless a test registers one)."""

    def __init__(self) -> None:
        self.targets: list[dict[str, Any]] = []

    def operations(self) -> dict[str, Handler]:
        return {
            "RegisterScalableTarget": self.register_scalable_target,
            "DescribeScalableTargets": self.describe_scalable_targets,
        }

    def register_scalable_target(self, request: dict[str, Any]) -> dict[str, Any]:
        target = {
            "ServiceNamespace": request["ServiceNamespace"],
            "ResourceId": request["ResourceId"],
            "ScalableDimension": request["ScalableDimension"],
            "MinCapacity": request["MinCapacity"],
            "MaxCapacity": request["MaxCapacity"],
            "RoleARN": request.get("RoleARN", f"arn:aws:iam::{ACCOUNT}:role/autoscaling"),
            "CreationTime": _now(),
        }
        self.targets = [t for t in self.targets if t["ResourceId"] != target["ResourceId"]] + [target]
        arn = f"arn:aws:application-autoscaling:{REGION}:{ACCOUNT}:scalable-target/{len(self.targets)}"
        return {"ScalableTargetARN": arn}

    def describe_scalable_targets(self, request: dict[str, Any]) -> dict[str, Any]:
        ids = set(request.get("ResourceIds", []))
        found = [
            t
            for t in self.targets
            if t["ServiceNamespace"] == request["ServiceNamespace"]
            and (not ids or t["ResourceId"] in ids)
            and t["ScalableDimension"] == request.get("ScalableDimension", t["ScalableDimension"])
        ]
        return {"ScalableTargets": found}
