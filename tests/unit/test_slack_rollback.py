"""The "Roll back" button: on a release's message once a stage is deploying or deployed (never on a
rollback's own), and at the interactions endpoint it counts only in a request Slack signed, from
an approver of that stage, for a release still the newest on it; then ONE "Rollback Requested"
goes on the deployer's bus (for OnApprovalFunction: this public endpoint may not deploy) and the
user hears what happens next. Everything else changes nothing.

The endpoint tests drive the real handler (`functions/approvals_http/app.py`) with Function URL
events against moto in process, as tests/unit/test_approval_http.py does."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from slack_sdk.models.blocks import ActionsBlock, Block

from deployer import runtime
from deployer.deps import Deps
from deployer.errors import BadInput
from deployer.events.deployer_bus import RollbackRequestedEvent
from deployer.events.parse import parse_event
from deployer.flow.rollback import on_rollback_requested
from deployer.releases.model import Release, ReleaseState, StageRecord, StageState
from deployer.slack import (
    ROLLBACK_ACTION,
    ReleaseView,
    RollbackTarget,
    SlackNotifier,
    SlackSettings,
    fallback_text,
    parse_interaction,
    parse_rollback_value,
    rollback_stages,
    rollback_value,
    status_blocks,
)
from deployer_local import template
from deployer_local.provision import demo_pipelines_yaml
from tests.support.slack_sink import SlackSink
from tests.support.world import World, commit_id, make_world
from tests.unit.test_approval_http import (
    APPROVER,
    KEY,
    SLACK_SIGNING_SECRET,
    STRANGER,
    Calls,
    handler,
    invoke,
    slack_event,
    slack_signature,
    spy_on_aws,
)
from tests.unit.test_cli_rollback import released

pytestmark = pytest.mark.unit

COMMIT = commit_id("rollback-view")
TASKDEF = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web"


# --- the button on the message -------------------------------------------------------------------


def view(**overrides: Any) -> ReleaseView:
    values: dict[str, Any] = {
        "release_id": f"web@{COMMIT}",
        "pipeline": "web",
        "stage": "prod",
        "commit": COMMIT,
        "state": "DEPLOYED",
        "stage_states": (("dev", "DEPLOYED"), ("prod", "DEPLOYED")),
    }
    values.update(overrides)
    return ReleaseView(**values)


def rollback_buttons(blocks: list[Block]) -> list[dict[str, Any]]:
    for block in blocks:
        block.validate_json()  # slack_sdk's own rules
    return [
        element
        for block in blocks
        if isinstance(block, ActionsBlock)
        for element in block.to_dict()["elements"]
        if element["action_id"].startswith(ROLLBACK_ACTION)
    ]


@pytest.mark.parametrize(
    ("state", "stages", "expected"),
    [
        ("DEPLOYING", (("dev", "DEPLOYING"),), ["dev"]),
        ("DEPLOYED", (("dev", "DEPLOYED"),), ["dev"]),
        ("DEPLOYING", (("dev", "DEPLOYED"), ("prod", "DEPLOYING")), ["dev", "prod"]),
        ("RELEASED", (("dev", "DEPLOYED"), ("prod", "DEPLOYED")), ["dev", "prod"]),
        ("DEPLOY_FAILED", (("dev", "DEPLOYED"), ("prod", "FAILED")), ["dev"]),
        ("DEPLOYING", (("dev", "DEPLOYED"), ("prod", "QUEUED")), ["dev"]),
    ],
)
def test_a_button_per_stage_deploying_or_deployed(state: str, stages: tuple[Any, ...], expected: list[str]) -> None:
    buttons = rollback_buttons(status_blocks(view(state=state, stage_states=stages), interactive=True))
    assert [b["text"]["text"] for b in buttons] == [f"Roll back {s}" for s in expected]
    assert [json.loads(b["value"]) for b in buttons] == [{"release_id": f"web@{COMMIT}", "stage": s} for s in expected]
    # action ids are unique within the block, as Slack requires
    assert len({b["action_id"] for b in buttons}) == len(buttons)
    # a destructive action asks first
    for button in buttons:
        assert button["style"] == "danger"
        assert button["confirm"]["confirm"]["text"] == "Roll back"
        assert "approvers" in button["confirm"]["text"]["text"]


@pytest.mark.parametrize(
    "changes",
    [
        {"state": "BUILDING", "stage_states": ()},
        {"state": "BUILT", "stage_states": ()},
        {"state": "DEPLOY_FAILED", "stage_states": (("dev", "FAILED"),)},
        {"state": "DEPLOYING", "stage_states": (("dev", "QUEUED"),)},
        # a rollback's own message
        {"kind": "rollback", "state": "DEPLOYED", "stage_states": (("prod", "DEPLOYED"),)},
    ],
)
def test_no_button_before_a_stage_deploys_or_on_a_rollback(changes: dict[str, Any]) -> None:
    assert rollback_buttons(status_blocks(view(**changes), interactive=True)) == []


def test_no_button_when_slack_cannot_call_back() -> None:
    assert rollback_buttons(status_blocks(view())) == []
    assert rollback_buttons(status_blocks(view(), interactive=False)) == []


def test_at_most_five_buttons_the_latest_stages() -> None:
    stages = tuple((f"s{i}", "DEPLOYED") for i in range(8))
    assert rollback_stages(view(stage_states=stages)) == ("s3", "s4", "s5", "s6", "s7")


def test_a_rollbacks_own_message_says_what_it_restores_and_who_asked() -> None:
    rollback = view(
        release_id="web@rollback-prod-20261129T101500000000",
        state="DEPLOYING",
        kind="rollback",
        rollback_of=f"web@{commit_id('bad')}",
        requested_by={"kind": "slack", "user": APPROVER},
        target_task_definition=f"{TASKDEF}:3",
        stage_states=(("prod", "DEPLOYING"),),
    )
    blocks = status_blocks(rollback, interactive=True)
    shown = json.dumps([b.to_dict() for b in blocks])
    assert f"*web* {COMMIT[:12]}: *Rolling back prod*" in shown
    assert "*Restores commit*" in shown
    assert "web:3" in shown
    assert f"*Undoes*\\nweb@{commit_id('bad')}" in shown
    assert f"*Asked by*\\n<@{APPROVER}>" in shown
    assert fallback_text(rollback) == f"web: Rolling back prod to {COMMIT[:12]} by <@{APPROVER}>"
    done = view(**{**rollback.__dict__, "state": "RELEASED"})
    assert "Rolled back prod" in fallback_text(done)


def test_a_cli_requester_is_shown_escaped_and_without_a_mention() -> None:
    rollback = view(
        kind="rollback",
        requested_by={"kind": "cli", "principal": "arn:aws:sts::1:assumed-role/Ops/<!channel>"},
        commit="",
    )
    shown = json.dumps([b.to_dict() for b in status_blocks(rollback)])
    assert "assumed-role/Ops/&lt;!channel&gt; (CLI)" in shown
    assert "<!channel>" not in shown
    assert "(unknown commit)" in shown


def test_the_button_value_round_trips_and_garbage_is_bad_input() -> None:
    value = rollback_value(f"web@{COMMIT}", "prod")
    assert parse_rollback_value(value) == RollbackTarget(f"web@{COMMIT}", "prod")
    for garbage in (None, "", "web@x", "{}", '{"release_id": "a"}', '{"release_id": 1, "stage": "p"}', "[1]"):
        with pytest.raises(BadInput):
            parse_rollback_value(garbage)
    with pytest.raises(BadInput):
        parse_rollback_value(json.dumps({"release_id": "a", "stage": "prod", "extra": 1}))


# --- the endpoint --------------------------------------------------------------------------------


@dataclass
class Env:
    world: World
    sink: SlackSink
    calls: Calls
    queue_url: str

    def answers(self, expect: int = 1) -> list[Any]:
        """What the user was told at the response URL, once `expect` answers came (the endpoint
        acknowledges Slack first: under load an answer may still be on its way)."""
        return self.sink.wait_for_requests("/response/", expect) if expect else self.sink.requests("/response/")

    def items(self) -> list[dict[str, Any]]:
        return list(boto3.resource("dynamodb").Table(self.world.names.table).scan()["Items"])

    def requested(self) -> list[dict[str, Any]]:
        """Every "Rollback Requested" the bus delivered through OnApprovalFunction's own rule."""
        sqs = boto3.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


@pytest.fixture
def env(moto_aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with SlackSink(token="xoxb-local") as sink:
        world = make_world()
        sqs = boto3.client("sqs")
        queue_url = sqs.create_queue(QueueName="rollback-requested")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events = boto3.client("events")
        pattern = template.rule_patterns()["OnApprovalFunction.DecisionRule"]
        events.put_rule(Name="on-approval", EventBusName=world.names.bus, EventPattern=json.dumps(pattern))
        events.put_targets(Rule="on-approval", EventBusName=world.names.bus, Targets=[{"Id": "q", "Arn": queue_arn}])
        secrets = boto3.client("secretsmanager")
        key_arn = secrets.create_secret(Name="approval-key", SecretString=KEY.decode())["ARN"]
        slack = {"bot_token": "xoxb-local", "signing_secret": SLACK_SIGNING_SECRET, "api_base_url": sink.api_base_url}
        slack_arn = secrets.create_secret(Name="slack", SecretString=json.dumps(slack))["ARN"]
        for name, value in world.names.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("DEPLOYER_SIGNING_KEY_SECRET", key_arn)
        monkeypatch.setenv("DEPLOYER_SLACK_SECRET", slack_arn)
        runtime.settings.cache_clear()
        handler().endpoint.cache_clear()
        calls = Calls()
        spy_on_aws(monkeypatch, calls)
        yield Env(world, sink, calls, queue_url)
        handler().endpoint.cache_clear()
        runtime.settings.cache_clear()


def deployed(env: Env, label: str, *, minute: int = 0, stages: tuple[str, ...] = ("dev", "prod")) -> Release:
    """A release that deployed `stages` and is the newest to have entered each."""
    store = env.world.store
    release, _ = store.create(
        pipeline="web",
        repository="web-app",
        branch="main",
        commit=commit_id(label),
        previous_commit=None,
        pusher="arn:aws:sts::123456789012:assumed-role/Dev/alice",
        pushed_at=f"2026-11-29T10:{minute:02d}:00Z",
    )
    store.transition(release, ReleaseState.BUILT, image_uri="web@sha256:" + "b" * 64)
    records = {}
    for stage in stages:
        service = env.world.account.services[stage]
        assert store.enter_stage(release, stage)
        records[stage] = StageRecord(
            state=StageState.DEPLOYED,
            cluster=service.cluster,
            service=service.service,
            started_at="2026-11-29T10:00:00Z",
            finished_at="2026-11-29T10:05:00Z",
            task_definition_arn=f"{TASKDEF}:{len(records) + 2}",
            deployment_id=f"ecs-svc/{label}-{stage}",
        )
    store.transition(release, ReleaseState.RELEASED, stage=stages[-1], stages=records)
    env.calls.made.clear()
    return release


def click(
    env: Env, release_id: str, stage: str, *, user: str = APPROVER, value: str | None = None, action: str | None = None
) -> bytes:
    """The body Slack sends when `user` presses "Roll back <stage>" on the release's message."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": "alice", "team_id": "T0001"},
        "api_app_id": "A0001",
        "container": {"type": "message", "message_ts": "1700000000.000100", "channel_id": "C0DEPLOYS"},
        "channel": {"id": "C0DEPLOYS", "name": "deploys"},
        "message": {"ts": "1700000000.000100", "text": "web: Released"},
        "response_url": env.sink.response_url("T0001/1234/rollback"),
        "actions": [
            {
                "action_id": action or f"{ROLLBACK_ACTION}:{stage}",
                "block_id": "rollback",
                "value": rollback_value(release_id, stage) if value is None else value,
                "type": "button",
                "action_ts": "1700000001.000200",
            }
        ],
    }
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


def nothing_requested(env: Env) -> None:
    assert env.calls.writes == []  # no DynamoDB write, no PutEvents
    assert env.requested() == []


def test_the_body_parses_as_a_rollback_interaction(env: Env) -> None:
    interaction = parse_interaction(click(env, "web@x", "prod"))
    assert interaction.is_rollback
    assert interaction.decision is None


def test_an_approver_requests_the_rollback_on_the_bus_and_is_told(env: Env) -> None:
    # GIVEN a release running in prod, whose approvers list APPROVER
    release = deployed(env, "a")
    # WHEN APPROVER presses "Roll back prod" on its message
    response = invoke(slack_event(click(env, release.release_id, "prod")))
    # THEN Slack gets its 200, and ONE "Rollback Requested" reaches OnApprovalFunction's rule
    assert response["statusCode"] == 200
    (event,) = env.requested()
    assert event["detail-type"] == "Rollback Requested"
    detail = event["detail"]
    assert detail["pipeline"] == "web"
    assert detail["stage"] == "prod"
    assert detail["release_id"] == release.release_id
    assert detail["requested_by"] == {"kind": "slack", "user": APPROVER}
    assert detail["requested_at"]
    assert detail["response_url"] == env.sink.response_url("T0001/1234/rollback")  # for on_approval's answer
    # AND nothing else was written (the endpoint may not deploy), and Slack was not waited for:
    # OnApprovalFunction answers the user once it knows what it did
    assert env.calls.writes == [("events", "PutEvents")]
    assert env.answers(expect=0) == []


def test_a_bus_that_refuses_the_request_is_told_and_nothing_happens(env: Env) -> None:
    release = deployed(env, "a")
    refused = {"FailedEntryCount": 1, "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "try later"}]}
    env.calls.fail_put_events.extend([refused] * 5)
    response = invoke(slack_event(click(env, release.release_id, "prod")))
    assert response["statusCode"] == 200
    assert env.requested() == []
    (answer,) = env.answers()
    assert "could not be requested just now. Nothing was rolled back" in answer.body["text"]
    assert "`deployer rollback --pipeline web --stage prod`" in answer.body["text"]


def test_someone_who_is_not_an_approver_is_told_why_and_nothing_happens(env: Env) -> None:
    release = deployed(env, "a")
    before = env.items()
    response = invoke(slack_event(click(env, release.release_id, "prod", user=STRANGER)))
    assert response["statusCode"] == 200
    nothing_requested(env)
    assert env.items() == before
    (answer,) = env.answers()
    assert answer.body["replace_original"] is False
    assert f"Only the approvers of prod (<@{APPROVER}>) may roll it back from Slack" in answer.body["text"]
    assert "`deployer rollback --pipeline web --stage prod`" in answer.body["text"]


def test_a_stage_without_approvers_cannot_be_rolled_back_from_slack(env: Env) -> None:
    # GIVEN dev lists no approvers (anyone in the channel could click)
    release = deployed(env, "a")
    response = invoke(slack_event(click(env, release.release_id, "dev")))
    assert response["statusCode"] == 200
    nothing_requested(env)
    (answer,) = env.answers()
    text = answer.body["text"]
    assert "dev of web lists no approvers, so nobody may roll it back from Slack" in text
    assert "use `deployer rollback --pipeline web --stage dev`" in text


def test_an_old_messages_button_never_undoes_a_newer_release(env: Env) -> None:
    # GIVEN release a ran in prod, then release b replaced it
    older = deployed(env, "a", minute=0)
    deployed(env, "b", minute=10)
    # WHEN an approver presses "Roll back prod" on a's (old) message
    response = invoke(slack_event(click(env, older.release_id, "prod")))
    # THEN nothing is requested, and the user is told prod moved on
    assert response["statusCode"] == 200
    nothing_requested(env)
    (answer,) = env.answers()
    assert f"prod has moved on since this message: web@{commit_id('b')} entered it" in answer.body["text"]


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        ("unknown", "is unknown. Nothing was rolled back."),
        ("not_deployed", "This release has not deployed prod (prod: not reached)"),
        ("unknown_stage", "qa is not a stage of web in the published configuration"),
    ],
)
def test_buttons_that_name_nothing_to_roll_back_change_nothing(env: Env, setup: str, says: str) -> None:
    if setup == "unknown":
        body = click(env, f"web@{commit_id('nobody')}", "prod")
    elif setup == "not_deployed":
        body = click(env, deployed(env, "a", stages=("dev",)).release_id, "prod")
    else:
        body = click(env, deployed(env, "a").release_id, "qa")
    response = invoke(slack_event(body))
    assert response["statusCode"] == 200
    nothing_requested(env)
    (answer,) = env.answers()
    assert says in answer.body["text"]


def test_a_rollback_release_message_cannot_roll_back_itself(env: Env) -> None:
    release = deployed(env, "a")
    env.world.store.save(release, kind="rollback")
    env.calls.made.clear()
    response = invoke(slack_event(click(env, release.release_id, "prod")))
    assert response["statusCode"] == 200
    nothing_requested(env)
    (answer,) = env.answers()
    assert "This message is a rollback's own" in answer.body["text"]


@pytest.mark.parametrize("value", ["", "not json", '{"release_id": "web@x"}'])
def test_a_button_value_that_is_not_a_rollback_is_told_and_changes_nothing(env: Env, value: str) -> None:
    response = invoke(slack_event(click(env, "web@x", "prod", value=value)))
    assert response["statusCode"] == 200
    nothing_requested(env)
    (answer,) = env.answers()
    assert "does not say what to roll back" in answer.body["text"]


def _wrong_secret(body: bytes) -> dict[str, Any]:
    stamp = int(time.time())
    return slack_event(body, timestamp=stamp, signature=slack_signature(body, stamp, "not-the-signing-secret"))


def _stale(body: bytes) -> dict[str, Any]:
    stamp = int(time.time()) - 6 * 60
    return slack_event(body, timestamp=stamp, signature=slack_signature(body, stamp))


def _unsigned(body: bytes) -> dict[str, Any]:
    event = slack_event(body)
    del event["headers"]["x-slack-signature"]
    return event


def _altered(body: bytes) -> dict[str, Any]:
    """Signed for another body (dev), sent with this one (prod)."""
    stamp = int(time.time())
    other = body.replace(b"%3Aprod", b"%3Adev").replace(b"prod%5C%22", b"dev%5C%22")
    assert other != body
    return slack_event(body, timestamp=stamp, signature=slack_signature(other, stamp))


@pytest.mark.parametrize("forge", [_wrong_secret, _stale, _unsigned, _altered])
def test_a_forged_click_is_refused_with_401_before_anything_is_read(env: Env, forge: Any) -> None:
    release = deployed(env, "a")
    response = invoke(forge(click(env, release.release_id, "prod")))
    assert response["statusCode"] == 401
    assert env.calls.of("dynamodb") == []  # not even a read (only the signing secret was)
    nothing_requested(env)
    assert env.answers(expect=0) == []


# --- through the real flow -----------------------------------------------------------------------


def test_a_click_rolls_prod_back_once_on_approval_gets_the_request(env: Env) -> None:
    # GIVEN two releases that went to prod through the flow, the second running now
    first = released(env.world, "first", None, 0)
    second = released(env.world, "second", "first", 10)
    first_revision = env.world.store.get(first).stages["prod"].task_definition_arn  # type: ignore[union-attr]
    # WHEN an approver presses "Roll back prod" on the second release's message
    assert invoke(slack_event(click(env, second, "prod")))["statusCode"] == 200
    # AND OnApprovalFunction's flow gets the "Rollback Requested" the bus delivered
    (event,) = env.requested()
    # (moto's delivery to SQS leaves out envelope keys EventBridge sends: put them back)
    event = {"account": "123456789012", "region": "eu-west-1", "resources": [], **event}
    outcome = on_rollback_requested(parse_event(RollbackRequestedEvent, event), answering(env))
    # THEN prod runs the first release's revision again, through a release of kind "rollback"
    assert outcome["outcome"] == "deploying", outcome
    # AND the user hears, ephemerally, what was done and how to follow it
    (answer,) = env.answers()
    assert answer.body["replace_original"] is False
    text = answer.body["text"]
    assert text.startswith(":rewind: Rolling back *prod* of *web* (Slack user U012ABCDEF rolls prod back to web:")
    assert "`deployer status --pipeline web`" in text
    service = env.world.account.services["prod"]
    running = boto3.client("ecs").describe_services(cluster=service.cluster, services=[service.service])
    assert running["services"][0]["taskDefinition"] == first_revision
    (rollback,) = [r for r in env.world.store.list_releases("web") if r.is_rollback]
    assert rollback.release_id == outcome["release_id"]
    assert (rollback.requested_by or {})["user"] == APPROVER
    assert rollback.rollback_of == second
    assert rollback.commit == commit_id("first")


def answering(env: Env) -> Deps:
    """OnApprovalFunction's dependencies with the notifier that answers the user who clicked."""
    settings = SlackSettings(
        bot_token="xoxb-local", signing_secret=SLACK_SIGNING_SECRET, api_base_url=env.sink.api_base_url
    )
    return dataclasses.replace(env.world.deps, slack=SlackNotifier(lambda: settings, timeout=10))


def delivered(event: dict[str, Any]) -> RollbackRequestedEvent:
    return parse_event(
        RollbackRequestedEvent, {"account": "123456789012", "region": "eu-west-1", "resources": [], **event}
    )


def test_a_stage_with_nothing_earlier_to_go_back_to_tells_the_user_so(env: Env) -> None:
    # GIVEN prod has run only one release through the flow
    only = released(env.world, "only", None, 0)
    # WHEN an approver presses "Roll back prod" and OnApprovalFunction gets the request
    assert invoke(slack_event(click(env, only, "prod")))["statusCode"] == 200
    (event,) = env.requested()
    outcome = on_rollback_requested(delivered(event), answering(env))
    # THEN nothing is rolled back, and the user hears why (the endpoint could not have known)
    assert outcome["outcome"] == "nothing_to_roll_back", outcome
    (answer,) = env.answers()
    assert answer.body["text"].startswith(
        ":information_source: Nothing to roll back in *prod* of *web* (prod has no earlier successful revision than"
    )
    assert not [r for r in env.world.store.list_releases("web") if r.is_rollback]


def test_an_approver_removed_since_the_click_is_told_nothing_was_rolled_back(env: Env) -> None:
    # GIVEN a click accepted by the endpoint, then prod's approvers changed before it was handled
    release = deployed(env, "a")
    assert invoke(slack_event(click(env, release.release_id, "prod")))["statusCode"] == 200
    (event,) = env.requested()
    env.world.publish(demo_pipelines_yaml(env.world.account).replace(APPROVER, "U0NEWAPPROVER"))
    # WHEN OnApprovalFunction handles it
    outcome = on_rollback_requested(delivered(event), answering(env))
    # THEN nothing happens and the user is told so, with the way that still works
    assert outcome["outcome"] == "ignored", outcome
    (answer,) = env.answers()
    assert answer.body["text"].startswith(
        ":no_entry: *prod* of *web* was not rolled back (rollback of web/prod asked by"
    )
    assert "use `deployer rollback`" in answer.body["text"]
