"""The local router's rules come from template.yaml, events get EventBridge's envelope, and the
router asks TestEventPattern (or, where the endpoint answers without a result, moto's matcher)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from deployer_local import template
from deployer_local.localrun import InvokeResult
from deployer_local.provision import DeployerNames
from deployer_local.router import Router, Rule, envelope, rules_from_template
from tests.support.documented import AWS_HOOK_AWAITING_ACTION_EXAMPLE, AWS_PAUSE_PAGE_EXAMPLE
from tests.support.events import load_event, sample_names

pytestmark = pytest.mark.unit

NAMES = DeployerNames("test")


def eventbridge_rules_in_template() -> dict[str, dict[str, Any]]:
    """`Function.Event` -> Properties of every EventBridgeRule event, read straight from the template."""
    return {
        f"{function}.{name}": event["Properties"]
        for function, props in template.resources("AWS::Serverless::Function").items()
        for name, event in (props.get("Events") or {}).items()
        if event["Type"] == "EventBridgeRule"
    }


# -- rules_from_template --------------------------------------------------------------------------


def test_every_eventbridge_rule_of_the_template_is_found_with_its_pattern() -> None:
    # GIVEN template.yaml
    in_template = eventbridge_rules_in_template()
    # WHEN the router's rules are read from it
    rules = rules_from_template(NAMES)
    # THEN there is one rule per EventBridgeRule event, with the template's pattern
    assert [rule.name for rule in rules] == list(in_template)
    for rule in rules:
        assert rule.pattern == in_template[rule.name]["Pattern"]
    assert {rule.name: rule.pattern for rule in rules} == template.rule_patterns()


def test_the_rules_are_the_designs_wiring_and_each_listens_on_its_bus() -> None:
    rules = {rule.name: rule.bus for rule in rules_from_template(NAMES)}
    # THEN AWS's events arrive on the default bus, approval decisions on the deployer's own bus,
    # and the expiry schedule is no rule of a bus
    assert rules == {
        "OnPushFunction.PushRule": "default",
        "OnBuildFunction.BuildRule": "default",
        "OnDeploymentFunction.DeploymentRule": "default",
        "OnDeploymentFunction.HookRule": "default",
        "OnDeploymentFunction.TaskRule": "default",
        "OnApprovalFunction.DecisionRule": "ecs-deployer-test",
    }
    assert "OnApprovalFunction.ExpirySweep" not in rules


def test_the_deployer_bus_follows_the_environment() -> None:
    (decision,) = [rule for rule in rules_from_template(DeployerNames("prod")) if rule.event == "DecisionRule"]
    assert decision.bus == DeployerNames("prod").bus == "ecs-deployer-prod"


def test_a_bus_the_router_cannot_resolve_is_refused(tmp_path: Path) -> None:
    # GIVEN a template whose rule listens on a bus given by an intrinsic the router does not know
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      Events:\n"
        "        Rule:\n"
        "          Type: EventBridgeRule\n"
        "          Properties:\n"
        "            EventBusName: !ImportValue shared-bus\n"
        "            Pattern: {source: [x]}\n",
        encoding="utf-8",
    )
    # WHEN / THEN reading its rules fails, naming the rule
    with pytest.raises(ValueError, match=r"Fn\.Rule: EventBusName .*ImportValue"):
        rules_from_template(NAMES, str(path))


def test_a_bus_named_literally_or_by_arn_is_that_bus(tmp_path: Path) -> None:
    path = tmp_path / "template.yaml"
    path.write_text(
        "Resources:\n"
        "  Fn:\n"
        "    Type: AWS::Serverless::Function\n"
        "    Properties:\n"
        "      Events:\n"
        "        ByName: {Type: EventBridgeRule, Properties: {EventBusName: audit, Pattern: {source: [x]}}}\n"
        "        ByArn:\n"
        "          Type: EventBridgeRule\n"
        "          Properties:\n"
        "            EventBusName: arn:aws:events:eu-west-1:123456789012:event-bus/audit\n"
        "            Pattern: {source: [x]}\n",
        encoding="utf-8",
    )
    assert [rule.bus for rule in rules_from_template(NAMES, str(path))] == ["audit", "audit"]


# -- envelope -------------------------------------------------------------------------------------


def test_envelope_fills_what_eventbridge_adds_on_put_events() -> None:
    # GIVEN an event as a PutEvents entry carries it: source, detail-type, detail
    event = {"source": "ecs-deployer", "detail-type": "Approval Decided", "detail": {"decision": "approve"}}
    now = datetime(2026, 11, 29, 10, 0, 0, 123456, tzinfo=UTC)
    # WHEN it is enveloped
    enveloped = envelope(event, region="us-east-2", now=now)
    # THEN the target's fields are there, EventBridge's values where the event had none
    assert enveloped == {
        "version": "0",
        "id": enveloped["id"],
        "detail-type": "Approval Decided",
        "source": "ecs-deployer",
        "account": "123456789012",
        "time": "2026-11-29T10:00:00Z",
        "region": "us-east-2",
        "resources": [],
        "detail": {"decision": "approve"},
    }
    assert uuid.UUID(enveloped["id"]).version == 4
    assert "id" not in event  # the caller's event is untouched


def test_envelope_defaults_to_now_this_region_and_a_new_id_each_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_REGION", "ap-southeast-2")
    event = {"source": "aws.ecs", "detail-type": "ECS Deployment State Change"}
    first, second = envelope(event), envelope(event)
    assert first["id"] != second["id"]
    assert first["region"] == "ap-southeast-2"
    assert first["detail"] == {}
    at = datetime.strptime(first["time"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=1)


@pytest.mark.parametrize("name", sample_names())
def test_a_complete_event_is_its_own_envelope(name: str) -> None:
    # GIVEN a sample event, a full envelope already
    event = load_event(name)
    # THEN enveloping it changes nothing, and the copy is independent
    enveloped = envelope(event)
    assert enveloped == event
    enveloped["detail"]["changed"] = True
    assert "changed" not in event["detail"]


@pytest.mark.parametrize(
    ("event", "missing"),
    [
        ({"detail-type": "Approval Decided"}, "source"),
        ({"source": "ecs-deployer", "detail-type": ""}, "detail-type"),
        ({"detail": {}}, "source and detail-type"),
    ],
)
def test_an_event_without_source_or_detail_type_is_refused(event: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValueError, match=f"needs {missing} "):
        envelope(event)


def test_an_event_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        envelope(["not", "an", "event"])  # type: ignore[arg-type]


# -- Router, with a stand-in events client ---------------------------------------------------------


class AnsweringClient:
    """TestEventPattern as AWS answers it: {"Result": bool}, here from a fixed verdict per pattern
    (keyed by the pattern's detail-type, else by its source)."""

    def __init__(self, verdicts: dict[str, bool] | None = None) -> None:
        self.verdicts = verdicts or {}
        self.calls: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def test_event_pattern(self, *, EventPattern: str, Event: str) -> dict[str, Any]:
        pattern, event = json.loads(EventPattern), json.loads(Event)
        self.calls.append((pattern, event))
        detail_type = (pattern.get("detail-type") or [None])[0]
        return {"Result": self.verdicts.get(detail_type, self.verdicts.get(pattern["source"][0], False))}


class MotoLikeClient(AnsweringClient):
    """TestEventPattern as moto answers it: HTTP 200 and no result."""

    def test_event_pattern(self, *, EventPattern: str, Event: str) -> dict[str, Any]:
        super().test_event_pattern(EventPattern=EventPattern, Event=Event)
        return {"ResponseMetadata": {"HTTPStatusCode": 200}}


def recording(function: str, log: list[tuple[str, dict[str, Any]]]) -> Any:
    def invoke(event: dict[str, Any]) -> InvokeResult:
        log.append((function, event))
        return InvokeResult(function, {"seen": event["id"]}, None, "", 1.0)

    return invoke


def router_for(client: Any, log: list[tuple[str, dict[str, Any]]]) -> Router:
    rules = rules_from_template(NAMES)
    return Router(client, {rule.function: recording(rule.function, log) for rule in rules}, rules)


def test_the_endpoints_answer_decides_and_is_asked_for_every_event() -> None:
    # GIVEN an endpoint that says only CodeCommit patterns match
    client = AnsweringClient({"aws.codecommit": True})
    log: list[tuple[str, dict[str, Any]]] = []
    router = router_for(client, log)
    # WHEN two events are routed on the default bus
    router.route({"source": "whatever", "detail-type": "x"})
    router.route({"source": "whatever", "detail-type": "x"})
    # THEN each was tested against the five default-bus rules, each time (nothing cached)
    assert len(client.calls) == 10
    assert [function for function, _ in log] == ["OnPushFunction", "OnPushFunction"]
    assert log[0][1]["id"] != log[1][1]["id"]
    assert {event["id"] for _, event in client.calls[:5]} == {log[0][1]["id"]}


def test_an_endpoint_without_test_event_pattern_is_asked_once_then_moto_decides() -> None:
    # GIVEN an endpoint that answers TestEventPattern without a result (moto)
    client = MotoLikeClient()
    log: list[tuple[str, dict[str, Any]]] = []
    router = router_for(client, log)
    # WHEN events are routed
    pushed = router.route(load_event("push_created"))
    ignored = router.route(load_event("push_tag"))
    # THEN moto's matcher decided (the push reached OnPushFunction, the tag nothing), and the
    # endpoint was asked only once
    assert [(d.rule.name, d.result.payload) for d in pushed] == [
        ("OnPushFunction.PushRule", {"seen": load_event("push_created")["id"]})
    ]
    assert ignored == []
    assert len(client.calls) == 1


def test_delivery_carries_the_enveloped_event_each_function_got() -> None:
    log: list[tuple[str, dict[str, Any]]] = []
    router = router_for(AnsweringClient({"ecs-deployer": True}), log)
    (delivery,) = router.route({"source": "ecs-deployer", "detail-type": "Approval Decided"}, NAMES.bus)
    assert delivery.function == "OnApprovalFunction"
    assert delivery.event == log[0][1]
    assert delivery.event is not log[0][1]  # each target gets its own copy
    assert delivery.event["account"] == "123456789012"


def test_matching_invokes_nothing() -> None:
    log: list[tuple[str, dict[str, Any]]] = []
    router = router_for(AnsweringClient({"ECS Deployment State Change": True}), log)
    assert [rule.name for rule in router.matching(load_event("ecs_deployment_completed"))] == [
        "OnDeploymentFunction.DeploymentRule"
    ]
    assert log == []


def test_an_unknown_bus_is_refused() -> None:
    router = router_for(AnsweringClient(), [])
    assert router.buses == ["default", "ecs-deployer-test"]
    with pytest.raises(ValueError, match="no bus 'ecs-deployer-prod'"):
        router.route(load_event("approval_decided_approve"), "ecs-deployer-prod")


def test_a_rule_without_a_worker_is_refused() -> None:
    rules = [Rule("OnPushFunction", "PushRule", {"source": ["aws.codecommit"]}, "default")]
    with pytest.raises(ValueError, match="no worker for OnPushFunction"):
        Router(AnsweringClient(), {}, rules)  # type: ignore[arg-type]


# -- HookRule: the hook events on_deployment acts on -----------------------------------------------
# ECS developer guide, "Amazon ECS service deployment hook state change events"
# (https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_hook_state_change_events.html):
# eventName HOOK_IN_PROGRESS, HOOK_AWAITING_ACTION ("A pause hook has started and requires action
# to complete"), HOOK_SUCCEEDED, HOOK_FAILED, HOOK_TIMED_OUT; detail.hookType PAUSE in its example
# (DeploymentLifecycleHookDetail.targetType: AWS_LAMBDA | PAUSE). The deployer answers PAUSE hooks
# that wait (HOOK_AWAITING_ACTION) and ends the release of one that timed out (HOOK_TIMED_OUT);
# SUCCEEDED and FAILED are the answers it gave itself (ContinueServiceDeployment CONTINUE, ROLLBACK).


def hook_rule_names(event: dict[str, Any]) -> list[str]:
    """The rules whose pattern moto's EventBridge matcher matches `event` against (the local stack's
    router, over an endpoint without TestEventPattern)."""
    return [rule.name for rule in router_for(MotoLikeClient(), []).matching(event)]


def test_hook_rule_pattern_names_the_documented_events_and_hook_type_it_acts_on() -> None:
    assert template.rule_patterns()["OnDeploymentFunction.HookRule"] == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Hook State Change"],
        "detail": {"eventName": ["HOOK_AWAITING_ACTION", "HOOK_TIMED_OUT"], "hookType": ["PAUSE"]},
    }


@pytest.mark.parametrize("name", ["ecs_hook_awaiting_action", "ecs_hook_timed_out"])
def test_the_hook_samples_reach_on_deployment_through_hook_rule_only(name: str) -> None:
    assert hook_rule_names(load_event(name)) == ["OnDeploymentFunction.HookRule"]


def test_aws_documented_example_reaches_hook_rule() -> None:
    # GIVEN the guide's two examples of the event, verbatim (tests/support/documented.py)
    for documented in (AWS_HOOK_AWAITING_ACTION_EXAMPLE, AWS_PAUSE_PAGE_EXAMPLE):
        assert hook_rule_names(json.loads(documented)) == ["OnDeploymentFunction.HookRule"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("eventName", "HOOK_IN_PROGRESS"),
        ("eventName", "HOOK_SUCCEEDED"),
        ("eventName", "HOOK_FAILED"),
        ("eventName", "HOOK_SOMETHING_NEW"),
        ("hookType", "AWS_LAMBDA"),
    ],
)
def test_other_hook_events_and_hook_types_reach_no_function(field: str, value: str) -> None:
    event = load_event("ecs_hook_awaiting_action")
    event["detail"][field] = value
    assert hook_rule_names(event) == []


def test_a_hook_event_without_hook_type_reaches_no_function() -> None:
    event = load_event("ecs_hook_awaiting_action")
    del event["detail"]["hookType"]
    assert hook_rule_names(event) == []
