"""The local router over moto server: each sample event reaches exactly the functions docs/design.md
wires it to, as moto's own EventBridge delivers it; and warm workers that serve many invokes
from one process.

Routing tests use recording workers (no subprocess). The worker tests run real interpreters:
a tiny build made here for the worker's lifecycle, and the built OnPushFunction for the warm
start it buys.

Measured (OnPushFunction against moto server in the same process, 2 busy CPUs; `pytest -s`
prints this test's pair): the cold invoke, which starts the interpreter and imports Powertools,
boto3 and pydantic, 1.0-2.1 s; each later invoke in the same worker 65-260 ms (median about
135 ms, mostly moto answering DynamoDB and CodeBuild); a one-shot `localrun.invoke` 1.9-2.1 s
every time.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployer_local.localrun import InvokeResult, LocalRunError
from deployer_local.provision import DeployerNames
from deployer_local.router import Router, rules_from_template
from deployer_local.workers import WarmFunction
from tests.support.events import load_event, sample_names
from tests.support.world import World, commit_id

pytestmark = pytest.mark.integration

NAMES = DeployerNames("test")

# docs/design.md's "Functions and their triggers", per sample event: which functions it reaches on
# the default bus and on the deployer's bus. Pushes of a deleted branch or a tag, and builds still running, stop at the
# rule; approval decisions travel on the deployer's bus only.
ON_PUSH, ON_BUILD, ON_DEPLOYMENT, ON_APPROVAL = (
    "OnPushFunction",
    "OnBuildFunction",
    "OnDeploymentFunction",
    "OnApprovalFunction",
)
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "push_created": ({ON_PUSH}, set()),
    "push_updated": ({ON_PUSH}, set()),
    "push_merge": ({ON_PUSH}, set()),
    "push_unknown_repository": ({ON_PUSH}, set()),  # the rule matches; the function ignores it
    "push_deleted": (set(), set()),
    "push_tag": (set(), set()),
    "build_succeeded": ({ON_BUILD}, set()),
    "build_succeeded_tag_image": ({ON_BUILD}, set()),
    "build_succeeded_no_exports": ({ON_BUILD}, set()),
    "build_failed": ({ON_BUILD}, set()),
    "build_stopped": ({ON_BUILD}, set()),
    "build_in_progress": (set(), set()),
    "ecs_deployment_in_progress": ({ON_DEPLOYMENT}, set()),
    "ecs_deployment_completed": ({ON_DEPLOYMENT}, set()),
    "ecs_deployment_failed": ({ON_DEPLOYMENT}, set()),
    "ecs_deployment_rolling_back": ({ON_DEPLOYMENT}, set()),
    "ecs_hook_awaiting_action": ({ON_DEPLOYMENT}, set()),
    "ecs_hook_timed_out": ({ON_DEPLOYMENT}, set()),
    "ecs_task_stopped": ({ON_DEPLOYMENT}, set()),  # TaskRule: STOPPED, startedBy ecs-deployer/...
    "ecs_task_stopped_failed": ({ON_DEPLOYMENT}, set()),
    "ecs_task_stopped_service": (set(), set()),  # a service's own task: no rule
    "approval_decided_approve": (set(), {ON_APPROVAL}),
    "approval_decided_reject": (set(), {ON_APPROVAL}),
    "approval_rollback_requested": (set(), {ON_APPROVAL}),
}


def test_every_sample_event_has_an_expected_route() -> None:
    assert sorted(EXPECTED) == sample_names()


# -- routing, with recording workers -------------------------------------------------------------


Received = list[tuple[str, dict[str, Any]]]


@pytest.fixture
def received() -> Received:
    return []


@pytest.fixture
def router(aws: str, received: Received) -> Router:
    """The template's rules for the test environment, moto server's EventBridge deciding, and
    workers that record what they receive."""
    rules = rules_from_template(NAMES)

    def recorder(function: str) -> Callable[[dict[str, Any]], InvokeResult]:
        def invoke(event: dict[str, Any]) -> InvokeResult:
            received.append((function, event))
            return InvokeResult(function, {"handled": event["id"]}, None, "", 0.1, "request")

        return invoke

    return Router(boto3.client("events"), {rule.function: recorder(rule.function) for rule in rules}, rules)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("bus", ["default", NAMES.bus])
def test_a_sample_event_reaches_exactly_the_functions_its_rules_match(
    router: Router, received: Received, name: str, bus: str
) -> None:
    # GIVEN a sample event put on a bus
    event = load_event(name)
    on_default, on_deployer_bus = EXPECTED[name]
    # WHEN the router delivers it
    deliveries = router.route(event, bus)
    # THEN exactly the expected functions received it, once each, as it was sent
    expected = on_default if bus == "default" else on_deployer_bus
    assert {d.function for d in deliveries} == expected
    assert [function for function, _ in received] == [d.function for d in deliveries]
    assert all(delivered == event for _, delivered in received)
    assert all(d.result.payload == {"handled": event["id"]} for d in deliveries)


def test_an_event_without_its_envelope_is_enveloped_before_matching_and_delivery(
    router: Router, received: Received
) -> None:
    # GIVEN a push as a PutEvents entry carries it: no id, time, account, region or resources
    sample = load_event("push_created")
    event = {"source": sample["source"], "detail-type": sample["detail-type"], "detail": sample["detail"]}
    # WHEN it is routed
    (delivery,) = router.route(event)
    # THEN the function got EventBridge's envelope, and the delivery says which
    ((function, delivered),) = received
    assert function == delivery.function == ON_PUSH
    assert delivered == delivery.event
    assert {"version", "id", "time", "account", "region", "resources"} <= delivered.keys()
    assert delivered["detail"] == sample["detail"]
    assert delivered["account"] == "123456789012"


def test_matching_says_which_rules_without_invoking(router: Router, received: Received) -> None:
    assert [rule.name for rule in router.matching(load_event("build_failed"))] == ["OnBuildFunction.BuildRule"]
    assert router.matching(load_event("approval_decided_approve")) == []
    assert [rule.name for rule in router.matching(load_event("approval_decided_approve"), NAMES.bus)] == [
        "OnApprovalFunction.DecisionRule"
    ]
    assert received == []


def test_the_router_agrees_with_moto_delivering_put_events_to_the_template_rules(router: Router) -> None:
    """The same rules deployed in moto server, each with a queue as its target: what PutEvents
    delivers to each queue is what the router matches, for every sample on both buses."""
    # GIVEN the template's rules on their buses in moto, each delivering to its own queue
    events = boto3.client("events")
    sqs = boto3.client("sqs")
    events.create_event_bus(Name=NAMES.bus)
    queues: dict[str, str] = {}
    for number, rule in enumerate(router.rules):
        url = sqs.create_queue(QueueName=f"rule-{number}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name=f"rule-{number}", EventBusName=rule.bus, EventPattern=json.dumps(rule.pattern))
        events.put_targets(Rule=f"rule-{number}", EventBusName=rule.bus, Targets=[{"Id": "queue", "Arn": arn}])
        queues[rule.name] = url
    for name in sample_names():
        sample = load_event(name)
        for bus in ("default", NAMES.bus):
            # WHEN moto's EventBridge receives the sample on the bus
            put = events.put_events(
                Entries=[
                    {
                        "EventBusName": bus,
                        "Source": sample["source"],
                        "DetailType": sample["detail-type"],
                        "Detail": json.dumps(sample["detail"]),
                        "Resources": sample["resources"],
                    }
                ]
            )
            assert put["FailedEntryCount"] == 0
            delivered = {rule for rule, url in queues.items() if _drain(sqs, url)}
            # THEN the rules it delivered to are the rules the router matches
            assert delivered == {rule.name for rule in router.matching(sample, bus)}, (name, bus)


def _drain(sqs: Any, url: str) -> int:
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
    for message in messages:
        sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return len(messages)


# -- warm workers: lifecycle, on a tiny build made here -----------------------------------------

TINY_HANDLER = """\
import os, sys, time

print("init", os.getpid())
COUNT = 0


def handler(event, context):
    global COUNT
    COUNT += 1
    print("invoke", COUNT, context.aws_request_id)
    if event.get("exit"):
        os._exit(event["exit"])
    if event.get("sleep"):
        time.sleep(event["sleep"])
    if event.get("raise"):
        raise ValueError(event["raise"])
    return {"pid": os.getpid(), "count": COUNT}
"""
BROKEN_HANDLER = "raise RuntimeError('no config at import time')\n"


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A build output as `sam build` writes it, with two functions: Counter (counts its invokes,
    and exits, sleeps or raises when the event asks) and Broken (fails at import)."""
    build = tmp_path_factory.mktemp("build")
    resources = {}
    for logical_id, code in (("Counter", TINY_HANDLER), ("Broken", BROKEN_HANDLER)):
        (build / logical_id).mkdir()
        (build / logical_id / "app.py").write_text(code, encoding="utf-8")
        resources[logical_id] = {
            "Type": "AWS::Serverless::Function",
            "Properties": {"CodeUri": logical_id, "Handler": "app.handler", "Runtime": "python3.13", "Timeout": 3},
        }
    (build / "template.yaml").write_text(json.dumps({"Resources": resources}), encoding="utf-8")
    return build


@pytest.fixture
def counter(tiny_build: Path) -> Iterator[WarmFunction]:
    with WarmFunction("Counter", env={}, build_dir=tiny_build, timeout=1) as function:
        yield function


def test_a_worker_imports_once_and_keeps_each_invokes_logs_apart(counter: WarmFunction) -> None:
    # WHEN the function is invoked twice
    first, second = counter.invoke({}), counter.invoke({})
    # THEN one process served both: the module ran once and kept its state
    assert first.payload == {"pid": counter.pid, "count": 1}
    assert second.payload == {"pid": counter.pid, "count": 2}
    # AND each invoke has its own logs: the init output belongs to the cold start
    assert first.log_lines() == [f"init {counter.pid}", f"invoke 1 {first.request_id}"]
    assert second.log_lines() == [f"invoke 2 {second.request_id}"]
    # AND only the first was a cold start
    assert first.notes == (f"cold start: new worker process {counter.pid} (first invoke)",)
    assert second.notes == ()
    assert (counter.cold_starts, counter.invocations) == (1, 2)


def test_a_handler_error_keeps_the_worker(counter: WarmFunction) -> None:
    failed = counter.invoke({"raise": "boom"})
    assert failed.error is not None
    assert (failed.error["errorType"], failed.error["errorMessage"]) == ("ValueError", "boom")
    assert "[ERROR] ValueError: boom" in failed.logs
    assert counter.invoke({}).payload == {"pid": counter.pid, "count": 2}


def test_a_crash_ends_the_worker_and_the_next_invoke_is_a_cold_start(counter: WarmFunction) -> None:
    # GIVEN a warm worker
    warm = counter.invoke({})
    # WHEN the handler's process dies in an invoke
    crashed = counter.invoke({"exit": 3})
    # THEN the invoke fails as Lambda reports it, with what it printed
    assert crashed.error is not None
    assert crashed.error["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in crashed.error["errorMessage"]
    assert crashed.log_lines() == [f"invoke 2 {crashed.request_id}"]
    assert counter.pid is None
    # AND the next invoke starts a new worker, and says why
    after = counter.invoke({})
    assert after.payload["count"] == 1
    assert after.payload["pid"] not in {warm.payload["pid"], None}
    assert after.notes == (
        f"cold start: new worker process {after.payload['pid']} (the previous worker exited: exit status 3)",
    )


def test_a_timeout_kills_the_worker_and_the_next_invoke_is_a_cold_start(counter: WarmFunction) -> None:
    first = counter.invoke({})
    timed_out = counter.invoke({"sleep": 30})
    assert timed_out.error is not None
    assert timed_out.error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in timed_out.error["errorMessage"]
    assert timed_out.log_lines() == [f"invoke 2 {timed_out.request_id}"]
    with pytest.raises(ProcessLookupError):
        os.kill(first.payload["pid"], 0)  # killed, and reaped
    after = counter.invoke({})
    assert after.payload["count"] == 1
    assert "the previous worker timed out in its invoke phase" in after.notes[0]


def test_an_init_error_is_reported_and_every_invoke_starts_again(tiny_build: Path) -> None:
    # As in Lambda, a function whose init fails is initialized again at the next invoke.
    with WarmFunction("Broken", env={}, build_dir=tiny_build) as broken:
        first, second = broken.invoke({}), broken.invoke({})
    for result in (first, second):
        assert result.error is not None
        assert (result.error["errorType"], result.error["errorMessage"]) == ("RuntimeError", "no config at import time")
    assert "exit status 0" in second.notes[0]
    assert broken.cold_starts == 2


def test_invokes_from_many_threads_are_served_one_at_a_time(counter: WarmFunction) -> None:
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: counter.invoke({}), range(12)))
    assert sorted(r.payload["count"] for r in results) == list(range(1, 13))
    assert {r.payload["pid"] for r in results} == {counter.pid}
    assert all(len(r.log_lines()) == (2 if r.payload["count"] == 1 else 1) for r in results)


def test_what_cannot_be_invoked_is_refused_and_close_ends_the_worker(tiny_build: Path) -> None:
    with pytest.raises(LocalRunError, match=r"no function 'Nope' in the build; built: Broken, Counter"):
        WarmFunction("Nope", env={}, build_dir=tiny_build)
    function = WarmFunction("Counter", env={}, build_dir=tiny_build)
    pid = function.invoke({}).payload["pid"]
    with pytest.raises(LocalRunError, match="not JSON"):
        function.invoke({"when": object()})
    assert function.invoke({}).payload == {"pid": pid, "count": 2}
    function.close()
    assert function.pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with pytest.raises(LocalRunError, match="closed"):
        function.invoke({})


# -- warm workers: the built OnPushFunction ------------------------------------------------------


def test_the_built_on_push_function_stays_warm_between_invokes(
    world: World, aws: str, build_dir: Path, resource_names: dict[str, str]
) -> None:
    # GIVEN a warm OnPushFunction against moto server, and two pushes to main
    with WarmFunction(
        "OnPushFunction",
        env={"AWS_ENDPOINT_URL": aws},
        build_dir=build_dir,
        names=resource_names,
        parameters={"Environment": world.names.environment},
    ) as on_push:
        # WHEN it handles one push, then the other
        started = time.perf_counter()
        first = on_push.invoke(world.push(commit_id("warm-1")))
        cold = time.perf_counter() - started
        first_pid = on_push.pid
        started = time.perf_counter()
        second = on_push.invoke(world.push(commit_id("warm-2"), old=commit_id("warm-1")))
        warm = time.perf_counter() - started
        second_pid = on_push.pid
    print(f"\nOnPushFunction: cold invoke {cold * 1000:.0f} ms, warm invoke {warm * 1000:.0f} ms")
    # THEN both started their build, and one worker served both
    for result in (first, second):
        assert result.error is None, result.logs
        assert [o["outcome"] for o in result.payload["result"]] == ["build_started"]
    assert first_pid is not None
    assert second_pid == first_pid
    assert first.notes[0].startswith("cold start: new worker process")
    assert not any(note.startswith("cold start") for note in second.notes)
    assert len(world.builds()) == 2
    # AND each invoke's logs are its own: every Powertools record names its own request
    for result in (first, second):
        records = [r for r in result.json_logs() if "function_request_id" in r]
        assert records
        assert {r["function_request_id"] for r in records} == {result.request_id}
