"""The in-memory AWS of the unit tier (tests/support/fakes.py): botocore still checks every request
against its model, every answer is checked against the operation's output shape, what a fake does
not answer says so, and the behaviours the flow relies on follow AWS's documentation. (How the
fakes compare with moto: tests/unit/test_fakes_match_moto.py.)"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from botocore.exceptions import ParamValidationError

from deployer_local.provision import provision_demo, web_task_definition
from tests.support.fakes import FakeAws

pytestmark = pytest.mark.unit


@pytest.fixture
def aws() -> FakeAws:
    return FakeAws()


def test_a_call_no_fake_answers_fails_naming_it_and_the_ways_out(aws: FakeAws) -> None:
    # GIVEN an ECS client of the fakes WHEN it calls an operation the fake does not answer
    with pytest.raises(NotImplementedError) as refused:
        aws.client("ecs").list_clusters()
    # THEN the error names the operation, what the fake answers, and what to do
    message = str(refused.value)
    assert "the in-memory fake of ecs does not answer ListClusters" in message
    assert "DescribeServices" in message
    assert "functional tier (moto)" in message


def test_a_misspelt_parameter_is_refused_by_botocore_before_any_fake(aws: FakeAws) -> None:
    with pytest.raises(ParamValidationError, match="serviceNames"):
        aws.client("ecs").describe_services(cluster="dev", serviceNames=["web"])  # the parameter is `services`
    assert aws.requests == []


def test_an_answer_that_does_not_match_botocores_model_fails_the_call(
    aws: FakeAws, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a fake whose answer misnames a member of DescribeClusters' output
    monkeypatch.setattr(aws.ecs, "describe_clusters", lambda request: {"clusterz": []})
    monkeypatch.setattr(aws.ecs, "operations", lambda: {"DescribeClusters": aws.ecs.describe_clusters})
    # WHEN it is called THEN the call fails, saying the answer does not match
    with pytest.raises(AssertionError, match="does not match botocore's model"):
        aws.client("ecs").describe_clusters(clusters=["dev"])


def test_every_request_is_recorded_with_its_parameters(aws: FakeAws) -> None:
    ecs = aws.client("ecs")
    ecs.create_cluster(clusterName="dev")
    ecs.describe_clusters(clusters=["dev", "gone"])
    assert aws.requests == [
        ("ecs", "CreateCluster", {"clusterName": "dev"}),
        ("ecs", "DescribeClusters", {"clusters": ["dev", "gone"]}),
    ]
    assert aws.calls("ecs") == ["CreateCluster", "DescribeClusters"]


def test_update_service_with_another_revision_starts_a_primary_deployment_and_keeps_the_old_active(
    aws: FakeAws,
) -> None:
    # Amazon ECS API Reference, Deployment
    # (https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Deployment.html): "PRIMARY The
    # most recent deployment of a service. ACTIVE A service deployment that still has running tasks,
    # but are in the process of being replaced with a new PRIMARY deployment."
    account = provision_demo(aws)
    ecs = aws.client("ecs")
    before = ecs.describe_services(cluster="dev", services=["web"])["services"][0]
    new = ecs.register_task_definition(**web_task_definition(image=account.first_image))["taskDefinition"]
    after = ecs.update_service(cluster="dev", service="web", taskDefinition=new["taskDefinitionArn"])["service"]
    (primary,) = [d for d in after["deployments"] if d["status"] == "PRIMARY"]
    (active,) = [d for d in after["deployments"] if d["status"] == "ACTIVE"]
    assert primary["taskDefinition"] == new["taskDefinitionArn"]
    assert primary["id"] != active["id"] == before["deployments"][0]["id"]
    assert active["taskDefinition"] == before["taskDefinition"]
    # AND the same revision again starts nothing
    again = ecs.update_service(cluster="dev", service="web", taskDefinition=new["taskDefinitionArn"])["service"]
    assert [d["id"] for d in again["deployments"]] == [d["id"] for d in after["deployments"]]


def test_start_build_with_the_same_idempotency_token_is_the_same_build(aws: FakeAws) -> None:
    # CodeBuild API Reference, StartBuild
    # (https://docs.aws.amazon.com/codebuild/latest/APIReference/API_StartBuild.html), idempotencyToken:
    # "A unique, case sensitive identifier you provide to ensure the idempotency of the StartBuild
    # request. The token is included in the StartBuild request and is valid for 5 minutes."
    provision_demo(aws)
    codebuild = aws.client("codebuild")
    first = codebuild.start_build(projectName="web-app-build", idempotencyToken="web@abc")["build"]
    again = codebuild.start_build(projectName="web-app-build", idempotencyToken="web@abc")["build"]
    other = codebuild.start_build(projectName="web-app-build", idempotencyToken="web@def")["build"]
    assert again["id"] == first["id"] != other["id"]
    assert codebuild.batch_get_builds(ids=[first["id"], "web-app-build:gone"])["buildsNotFound"] == [
        "web-app-build:gone"
    ]


def test_an_images_digest_is_the_sha256_of_its_manifest(aws: FakeAws) -> None:
    # Amazon ECR API Reference, ImageIdentifier
    # (https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_ImageIdentifier.html):
    # "imageDigest The sha256 digest of the image manifest."
    ecr = aws.client("ecr")
    ecr.create_repository(repositoryName="app")
    manifest = '{"schemaVersion": 2, "layers": []}'
    image = ecr.put_image(repositoryName="app", imageManifest=manifest, imageTag="v1")["image"]
    assert image["imageId"]["imageDigest"] == "sha256:" + hashlib.sha256(manifest.encode()).hexdigest()
    (found,) = ecr.describe_images(repositoryName="app", imageIds=[{"imageTag": "v1"}])["imageDetails"]
    assert found["imageDigest"] == image["imageId"]["imageDigest"]
    with pytest.raises(ecr.exceptions.ImageNotFoundException):
        ecr.describe_images(repositoryName="app", imageIds=[{"imageTag": "v2"}])


def test_put_events_answers_each_entry_with_an_id_and_keeps_what_was_sent(aws: FakeAws) -> None:
    # EventBridge User Guide, "Sending events with PutEvents"
    # (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html): "After you call
    # PutEvents, EventBridge assigns each event a unique ID." ... "The response Entries array always
    # includes the same number of entries as the request array."
    events = aws.client("events")
    events.create_event_bus(Name="deployer")
    entry: dict[str, Any] = {"Source": "ecs-deployer", "DetailType": "Release State Change", "EventBusName": "deployer"}
    answer = events.put_events(Entries=[{**entry, "Detail": '{"n": 1}'}, {**entry, "Detail": '{"n": 2}'}])
    assert answer["FailedEntryCount"] == 0
    assert len({e["EventId"] for e in answer["Entries"]}) == 2
    assert [sent["Detail"] for sent in aws.events.sent] == ['{"n": 1}', '{"n": 2}']


def test_a_copy_of_an_account_is_its_own(aws: FakeAws) -> None:
    # GIVEN an account provisioned once, copied into two (tests/conftest.py's world does this)
    provision_demo(aws)
    first, second = FakeAws(), FakeAws()
    first.restore(aws.snapshot())
    second.restore(aws.snapshot())
    # WHEN one changes THEN the other and the original do not
    first.client("ecs").update_service(cluster="dev", service="web", desiredCount=7)
    desired = [
        account.client("ecs").describe_services(cluster="dev", services=["web"])["services"][0]["desiredCount"]
        for account in (first, second, aws)
    ]
    assert desired == [7, 2, 2]
