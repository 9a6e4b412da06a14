"""The storm's FlowMeter: what a flow run costs the deployer itself (its thread's CPU time less
the time inside its AWS calls) and its AWS calls by service, as BENCHMARKS.md section 6 reports."""

from __future__ import annotations

import time

import boto3
import pytest
from moto import mock_aws

from tests.support.storm import FlowMeter

pytestmark = pytest.mark.unit


def burn(seconds: float) -> None:
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        pass


def test_a_run_counts_its_own_cpu_apart_from_its_aws_calls_and_counts_the_calls_by_service() -> None:
    with mock_aws():
        # GIVEN a session whose clients are measured, and a table
        session = boto3.session.Session(region_name="eu-west-1")
        meter = FlowMeter()
        meter.install(session)
        dynamodb = session.client("dynamodb")
        dynamodb.create_table(
            TableName="t",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        # WHEN a run burns 30 ms of CPU itself and makes two DynamoDB calls and one EventBridge call
        with meter.measure("OnPushFunction"):
            burn(0.03)
            dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
            dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}})
            session.client("events").list_event_buses()
        # AND a call outside any run
        dynamodb.get_item(TableName="t", Key={"pk": {"S": "a"}})
    # THEN the run is recorded with its calls by service, and only its own
    (run,) = meter.runs
    assert run.function == "OnPushFunction"
    assert run.calls == {"DynamoDB": 2, "EventBridge": 1}
    # AND its own CPU time is the burn, the calls' time apart (moto answers in this thread)
    assert run.aws_cpu_ms > 0
    assert 30 <= run.own_cpu_ms < run.cpu_ms
    assert run.cpu_ms == pytest.approx(run.own_cpu_ms + run.aws_cpu_ms)
