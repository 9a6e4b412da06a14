"""deployer.slack: settings that never show a secret, Block Kit messages that escape whatever a
user controls, a notifier that never fails a release (against the local Slack sink), request
signing that refuses every forgery, and interaction payloads parsed at the edge."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import socket
import urllib.parse
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parameters import SecretsProvider
from hypothesis import given, settings
from hypothesis import strategies as st
from moto import mock_aws
from slack_sdk.models.blocks import ActionsBlock, Block

from deployer.errors import BadInput, ConfigError, DeployerError
from deployer.rollout.plan import plan as plan_rollout
from deployer.slack import (
    APPROVE_ACTION,
    REJECT_ACTION,
    REVIEW_ACTION,
    Interaction,
    MessageRef,
    ReleaseView,
    SlackNotifier,
    SlackRequestRefused,
    SlackSettings,
    _allowed_response_url,
    approval_blocks,
    decided_blocks,
    decode_function_url_body,
    escape_mrkdwn,
    fallback_text,
    parse_interaction,
    plan_line,
    settings_from_secret,
    status_blocks,
    verify_request,
)
from tests.support.slack_sink import FIRST_TS, SlackSink

pytestmark = pytest.mark.unit

TOKEN = "xoxb-1111-2222-SECRETTOKEN"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
WEBHOOK = "https://hooks.slack.com/services/T000/B000/WEBHOOKSECRET"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
APPROVAL_LINK = "https://abc.lambda-url.eu-west-1.on.aws/approvals/r1?t=tok"
TASKDEF = "arn:aws:ecs:eu-west-1:123456789012:task-definition/web"
NOW = 1_764_410_400.0  # 2025-11-29 10:00:00 UTC
HOSTILE = "<!channel> <https://evil.example|click me> <@U0EVIL> & co"


def view(**overrides: Any) -> ReleaseView:
    values: dict[str, Any] = {
        "release_id": f"web@{COMMIT}",
        "pipeline": "web",
        "stage": "prod",
        "commit": COMMIT,
        "state": "AWAITING_APPROVAL",
        "commit_url": f"https://console.aws.amazon.com/codesuite/codecommit/repositories/web-app/commit/{COMMIT}",
        "pusher": "arn:aws:sts::123456789012:assumed-role/Dev/alice",
        "image_uri": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/web@sha256:" + "ab" * 32,
        "image_digest": "sha256:" + "ab" * 32,
        "task_definition_change": (f"{TASKDEF}:41", f"{TASKDEF}:42"),
        "plan_line": "2 waves, peak 6 tasks (150%), at least 4 running",
        "approval_link": APPROVAL_LINK,
        "approvers": ("U012ABCDEF",),
        "approval_expires_at": datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
        "branch": "main",
        "commit_message": "Fix the login page",
    }
    values.update(overrides)
    return ReleaseView(**values)


def as_dicts(blocks: list[Block]) -> list[dict[str, Any]]:
    """Serialising validates each block with slack_sdk's own rules (raises if invalid)."""
    for block in blocks:
        block.validate_json()
    return [block.to_dict() for block in blocks]


def texts(blocks: list[Block]) -> list[str]:
    """Every text Slack would render, from the serialised blocks."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(as_dicts(blocks))
    return found


def buttons(blocks: list[Block]) -> dict[str, dict[str, Any]]:
    actions = [b.to_dict() for b in blocks if isinstance(b, ActionsBlock)]
    return {e["action_id"]: e for a in actions for e in a["elements"]}


def sign(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    """Slack's algorithm, written out independently of slack_sdk."""
    digest = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256).hexdigest()
    return f"v0={digest}"


def block_actions(action_id: str = APPROVE_ACTION, value: str | None = "token-1", **overrides: Any) -> dict[str, Any]:
    """A block_actions payload shaped like Slack's reference example."""
    action: dict[str, Any] = {
        "action_id": action_id,
        "block_id": "b1",
        "text": {"type": "plain_text", "text": "Approve"},
        "type": "button",
        "action_ts": "1764410400.123456",
    }
    if value is not None:
        action["value"] = value
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U012ABCDEF", "username": "alice", "name": "alice", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy-verification-token",
        "container": {
            "type": "message",
            "message_ts": "1700000000.000100",
            "channel_id": "C0123456789",
            "is_ephemeral": False,
        },
        "trigger_id": "123.456.abc",
        "team": {"id": "T0001", "domain": "example"},
        "channel": {"id": "C0123456789", "name": "deploys"},
        "message": {"type": "message", "ts": "1700000000.000100", "text": "web → prod needs approval"},
        "response_url": "https://hooks.slack.com/actions/T0001/1234/abcdef",
        "actions": [action],
    }
    payload.update(overrides)
    return payload


def form(payload: Any) -> bytes:
    return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()


# --- settings -------------------------------------------------------------------------------


def test_settings_from_json_reads_every_key_and_hides_secrets_in_repr() -> None:
    # GIVEN the secret's JSON with every key
    text = json.dumps(
        {
            "bot_token": TOKEN,
            "webhook_url": WEBHOOK,
            "signing_secret": SIGNING_SECRET,
            "channel": "#deploys",
            "api_base_url": "http://127.0.0.1:9999/api/",
        }
    )
    # WHEN it is parsed
    parsed = SlackSettings.from_json(text)
    # THEN every value is there, the buttons are possible, and no secret shows in repr/str
    assert parsed == SlackSettings(TOKEN, WEBHOOK, SIGNING_SECRET, "#deploys", "http://127.0.0.1:9999/api/")
    assert parsed.interactive
    for shown in (repr(parsed), str(parsed), f"{parsed}"):
        assert TOKEN not in shown
        assert SIGNING_SECRET not in shown
        assert "WEBHOOKSECRET" not in shown
        assert "#deploys" in shown


def test_settings_empty_values_mean_absent_and_no_signing_secret_means_not_interactive() -> None:
    # GIVEN a secret with a token, blank placeholders and null
    parsed = SlackSettings.from_json(json.dumps({"bot_token": TOKEN, "signing_secret": "  ", "webhook_url": None}))
    # THEN blanks are absent, and without a signing secret there are no buttons
    assert parsed.signing_secret is None
    assert parsed.webhook_url is None
    assert not parsed.interactive
    assert SlackSettings().interactive is False


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param('{"bot_token": "' + TOKEN + '", ', "not valid JSON", id="bad-json"),
        pytest.param(json.dumps([TOKEN]), "must be a JSON object", id="not-an-object"),
        pytest.param(json.dumps({"bot_token": TOKEN, "token": "x"}), "unknown key(s) 'token'", id="unknown-key"),
        pytest.param(json.dumps({TOKEN: "x"}), "unknown key(s) (not a name)", id="secret-as-key"),
        pytest.param(json.dumps({"bot_token": 42}), "bot_token must be a string", id="not-a-string"),
        pytest.param(json.dumps({"bot_token": "SECRETTOKEN"}), "bot_token must be a Slack token", id="not-a-token"),
        pytest.param(
            json.dumps({"webhook_url": "http://hooks.example/WEBHOOKSECRET"}), "webhook_url must be an https", id="http"
        ),
        pytest.param(
            json.dumps({"api_base_url": "https://user:SECRETTOKEN@evil.example/"}), "api_base_url", id="userinfo"
        ),
    ],
)
def test_settings_refuse_bad_secrets_without_echoing_values(text: str, expected: str) -> None:
    # WHEN a malformed secret is parsed
    with pytest.raises(ConfigError) as caught:
        SlackSettings.from_json(text)
    # THEN the error says what is wrong, and never shows the value
    message = " ".join([str(caught.value), *caught.value.messages])
    assert expected in message
    assert "SECRETTOKEN" not in message
    assert "WEBHOOKSECRET" not in message


def _secrets_provider(name: str, value: str | None) -> SecretsProvider:
    client = boto3.client("secretsmanager")
    if value is not None:
        client.create_secret(Name=name, SecretString=value)
    return SecretsProvider(boto3_client=client)


def test_settings_from_secret_reads_the_secret_and_caches_it() -> None:
    with mock_aws():
        # GIVEN a Slack secret in Secrets Manager
        provider = _secrets_provider("deployer/slack", json.dumps({"bot_token": TOKEN, "channel": "C0123456789"}))
        load = settings_from_secret("deployer/slack", provider=provider)
        # WHEN it is loaded, changed, and loaded again within 5 minutes
        first = load()
        boto3.client("secretsmanager").put_secret_value(SecretId="deployer/slack", SecretString="{}")
        second = load()
    # THEN both loads see the first value: the secret is cached
    assert first == SlackSettings(bot_token=TOKEN, channel="C0123456789")
    assert second == first


def test_a_missing_secret_turns_slack_off_with_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    clock = [1000.0]
    with mock_aws():
        # GIVEN no secret at all
        load = settings_from_secret("deployer/slack", provider=_secrets_provider("x", None), clock=lambda: clock[0])
        # WHEN the settings are asked for twice within 5 minutes
        with caplog.at_level(logging.WARNING, logger="deployer.slack"):
            results = [load(), load()]
            warnings_before = len(caplog.records)
            # ...and again once 5 minutes have passed
            clock[0] += 301
            results.append(load())
    # THEN Slack is off, with one warning per 5 minutes that names the AWS error
    assert results == [SlackSettings()] * 3
    assert warnings_before == 1
    assert len(caplog.records) == 2
    assert "ResourceNotFoundException" in caplog.records[0].getMessage()


def test_no_secret_id_means_slack_is_off() -> None:
    assert settings_from_secret("")() == SlackSettings()


# --- messages -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("desired", "minimum", "maximum", "expected"),
    [
        (4, 100, 150, "2 waves, peak 6 tasks (150%), at least 4 running"),
        (4, 100, 200, "1 wave, peak 8 tasks (200%), at least 4 running"),
        (4, 50, 100, "2 waves, peak 4 tasks (100%), at least 2 running"),
        (4, 0, 100, "1 wave, peak 4 tasks (100%), at least 0 running (an outage)"),
        (1, 100, 200, "1 wave, peak 2 tasks (200%), at least 1 running"),
        (0, 100, 200, "no tasks to replace (desired count 0)"),
    ],
)
def test_plan_line_summarises_the_rollout(desired: int, minimum: int, maximum: int, expected: str) -> None:
    assert plan_line(plan_rollout(desired, minimum, maximum)) == expected


def test_interactive_approval_blocks_validate_and_carry_buttons_link_and_plan() -> None:
    # GIVEN a release awaiting approval for prod, and a bot with a signing secret
    # WHEN the approval request is built
    blocks = approval_blocks(view(), interactive=True, approval_token="tok-123")
    # THEN slack_sdk validates it, and it shows the header, the plan, the revisions and the expiry
    dicts = as_dicts(blocks)
    assert dicts[0] == {"type": "header", "text": {"type": "plain_text", "text": "web → prod needs approval"}}
    shown = "\n".join(texts(blocks))
    assert "2 waves, peak 6 tasks (150%), at least 4 running" in shown
    assert "web:41 → web:42" in shown
    assert "sha256:abababababab" in shown
    assert "assumed-role/Dev/alice" in shown
    assert "<@U012ABCDEF>" in shown
    assert "Expires <!date^1796032800^{date_short_pretty} at {time}|2026-11-30 10:00 UTC>" in shown
    # AND a link button to the page, Approve (primary) and Reject (danger, confirmed) carrying the token
    found = buttons(blocks)
    assert set(found) == {REVIEW_ACTION, APPROVE_ACTION, REJECT_ACTION}
    assert found[REVIEW_ACTION]["url"] == APPROVAL_LINK
    assert "value" not in found[REVIEW_ACTION]
    assert (found[APPROVE_ACTION]["style"], found[APPROVE_ACTION]["value"]) == ("primary", "tok-123")
    assert (found[REJECT_ACTION]["style"], found[REJECT_ACTION]["value"]) == ("danger", "tok-123")
    assert found[REJECT_ACTION]["confirm"]["confirm"]["text"] == "Reject"
    assert "confirm" not in found[APPROVE_ACTION]


def test_non_interactive_approval_has_only_the_link_button() -> None:
    # WHEN the approval request is built for a webhook-only setup
    blocks = approval_blocks(view(), interactive=False, approval_token="tok-123")
    # THEN the only button is the link, and the token appears nowhere
    assert set(buttons(blocks)) == {REVIEW_ACTION}
    assert "tok-123" not in json.dumps(as_dicts(blocks))


def test_interactive_without_a_token_has_no_decision_buttons() -> None:
    assert set(buttons(approval_blocks(view(), interactive=True, approval_token=None))) == {REVIEW_ACTION}


def test_an_unsafe_approval_link_is_not_turned_into_a_button() -> None:
    blocks = approval_blocks(view(approval_link="javascript:alert(1)"), interactive=False, approval_token=None)
    assert buttons(blocks) == {}
    as_dicts(blocks)


def test_an_approval_token_too_long_for_a_button_is_refused() -> None:
    with pytest.raises(ValueError, match="2000"):
        approval_blocks(view(), interactive=True, approval_token="t" * 2001)


def test_user_controlled_strings_cannot_inject_links_or_mentions() -> None:
    # GIVEN a commit message, branch, pusher and reason that try to ping everyone and add a link
    hostile = view(
        commit_message=HOSTILE,
        branch=HOSTILE,
        pusher=f"arn:aws:iam::123456789012:user/{HOSTILE}",
        reason=HOSTILE,
        state="DEPLOY_FAILED",
    )
    rendered = [
        *texts(approval_blocks(hostile, interactive=True, approval_token="t")),
        *texts(status_blocks(hostile)),
        fallback_text(hostile),
    ]
    joined = "\n".join(rendered)
    # THEN none of it reaches Slack as markup: only escaped text
    for markup in ("<!channel>", "<https://evil.example", "<@U0EVIL>"):
        assert markup not in joined
    assert "&lt;!channel&gt; &lt;https://evil.example|click me&gt; &lt;@U0EVIL&gt; &amp; co" in joined


_OWN_MARKUP = re.compile(r"^<(https://console\.aws\.amazon\.com/|!date\^\d+\^|@U012ABCDEF>)")


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=60))
def test_any_user_text_renders_without_markup_of_its_own(text: str) -> None:
    # GIVEN any text in every user-controlled field
    hostile = view(commit_message=text or "x", branch=text, pusher=text, reason=text, release_id=text)
    rendered = [
        *texts(approval_blocks(hostile, interactive=False, approval_token=None)),
        *texts(status_blocks(hostile)),
        fallback_text(hostile),
    ]
    # THEN every `<...>` in the output is the deployer's own (commit link, date, approver)
    for line in rendered:
        for start in (m.start() for m in re.finditer("<", line)):
            assert _OWN_MARKUP.match(line[start:]), line


def test_escape_mrkdwn_escapes_exactly_slacks_three_characters() -> None:
    assert escape_mrkdwn("a & b < c > d *e* _f_") == "a &amp; b &lt; c &gt; d *e* _f_"


def test_failure_status_carries_reason_and_links() -> None:
    # GIVEN a release whose prod deployment failed
    failed = view(
        state="DEPLOY_FAILED",
        reason="ECS deployment circuit breaker: tasks failed to start <rolled back>",
        log_link="https://console.aws.amazon.com/codesuite/codebuild/projects/web/build/web:1/log",
        service_link="https://console.aws.amazon.com/ecs/v2/clusters/prod/services/web",
    )
    # WHEN its status is built
    blocks = status_blocks(failed)
    shown = "\n".join(texts(blocks))
    # THEN it says what failed, why (escaped), and links the log and the service
    assert ":x: *web* 0123456789ab: *Deployment to prod failed*" in shown
    assert "tasks failed to start &lt;rolled back&gt;" in shown
    assert f"<{failed.log_link}|Build log>" in shown
    assert f"<{failed.service_link}|ECS service>" in shown
    assert "Deployment to prod failed" in fallback_text(failed)


@pytest.mark.parametrize(
    ("state", "label"),
    [("BUILDING", "Building"), ("DEPLOYED", "Deployed to prod"), ("RELEASED", "Released"), ("ODD", "ODD")],
)
def test_status_names_each_state(state: str, label: str) -> None:
    blocks = status_blocks(view(state=state, reason=None))
    assert f"*{label}*" in texts(blocks)[0]
    assert buttons(blocks) == {}


def test_decided_blocks_replace_the_buttons_with_who_decided_and_when() -> None:
    # WHEN U012ABCDEF approves at 10:00 UTC (given in another time zone)
    at = datetime(2026, 11, 29, 11, 0, tzinfo=timezone(timedelta(hours=1)))
    blocks = decided_blocks(view(), "approve", "U012ABCDEF", at)
    # THEN no button is left, and the message says who and when
    assert buttons(blocks) == {}
    assert any("Approved by <@U012ABCDEF> at 2026-11-29 10:00 UTC" in t for t in texts(blocks))
    rejected = decided_blocks(view(), "rejected", "U012ABCDEF", datetime(2026, 11, 29, 10, 0))
    assert any("Rejected by <@U012ABCDEF> at 2026-11-29 10:00 UTC" in t for t in texts(rejected))


def test_decided_blocks_escape_a_user_that_is_not_a_slack_id() -> None:
    blocks = decided_blocks(view(), "approve", "<!channel>", datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    joined = "\n".join(texts(blocks))
    assert "<!channel>" not in joined
    assert "Approved by &lt;!channel&gt;" in joined


def test_decided_blocks_refuse_an_unknown_decision() -> None:
    with pytest.raises(ValueError, match="approve"):
        decided_blocks(view(), "maybe", "U012ABCDEF", datetime(2026, 11, 29, tzinfo=UTC))


def test_decided_by_text_keeps_user_mentions_and_nothing_else() -> None:
    blocks = status_blocks(view(state="DEPLOYING", decided_by_text="Approved by <@U012ABCDEF> <!here>"))
    context = texts(blocks)[-1]
    assert "Approved by <@U012ABCDEF> &lt;!here&gt;" in context


# --- transport, against the local Slack sink --------------------------------------------------


@pytest.fixture
def sink() -> Any:
    with SlackSink(token=TOKEN) as running:
        yield running


def bot(sink: SlackSink, **overrides: Any) -> SlackSettings:
    values = {"bot_token": TOKEN, "channel": "#deploys", "api_base_url": sink.api_base_url}
    values.update(overrides)
    return SlackSettings(**values)


@pytest.mark.functional
def test_post_with_a_bot_token_returns_a_message_ref_and_update_changes_it(sink: SlackSink) -> None:
    notifier = SlackNotifier(lambda: bot(sink))
    blocks = approval_blocks(view(), interactive=True, approval_token="tok")
    # WHEN the approval request is posted, and then updated once decided
    ref = notifier.post(blocks, "web → prod needs approval", channel=None)
    assert ref is not None
    decided = decided_blocks(view(), "approve", "U012ABCDEF", datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    updated = notifier.update(ref, decided, "approved")
    # THEN Slack got the blocks with our token, answered a channel id and ts, and the message changed
    assert ref.ts == FIRST_TS
    assert ref.channel.startswith("C")
    assert updated is True
    posted = sink.requests("/api/chat.postMessage")[0]
    assert posted.authorized is True
    assert posted.body["channel"] == "#deploys"
    assert posted.body["unfurl_links"] is False
    assert posted.blocks == as_dicts(blocks)
    assert sink.messages()[(ref.channel, ref.ts)]["blocks"] == as_dicts(decided)
    assert "authorization" not in {k.lower() for k in posted.headers}


@pytest.mark.functional
def test_a_second_post_gets_a_later_ts_and_the_given_channel(sink: SlackSink) -> None:
    notifier = SlackNotifier(lambda: bot(sink))
    first = notifier.post([], "one", channel=None)
    second = notifier.post([], "two", channel="C0PIPELINE1")
    assert first is not None
    assert second is not None
    assert float(second.ts) > float(first.ts)
    assert second.channel == "C0PIPELINE1"


@pytest.mark.functional
def test_update_of_an_unknown_message_is_false(sink: SlackSink) -> None:
    notifier = SlackNotifier(lambda: bot(sink))
    assert notifier.update(MessageRef("C0123456789", "1.2"), [], "x") is False


@pytest.mark.functional
def test_post_with_only_a_webhook_returns_none_and_posts_there(sink: SlackSink) -> None:
    notifier = SlackNotifier(lambda: SlackSettings(webhook_url=sink.webhook_url))
    blocks = status_blocks(view(state="DEPLOYING"))
    # WHEN posting through the incoming webhook
    ref = notifier.post(blocks, "deploying", channel="#ignored")
    # THEN the message went out, but there is nothing to update later
    assert ref is None
    [sent] = sink.requests("/webhook/")
    assert sent.blocks == as_dicts(blocks)
    assert sent.body["text"] == "deploying"


@pytest.mark.functional
def test_post_without_slack_configured_sends_nothing(sink: SlackSink) -> None:
    assert SlackNotifier(SlackSettings).post([], "x", channel="C1") is None
    assert SlackNotifier(SlackSettings).update(MessageRef("C1", "1.1"), [], "x") is False
    assert sink.requests() == []


@pytest.mark.functional
@pytest.mark.parametrize("failure", [503, 429, "channel_not_found", "ratelimited"])
def test_slack_down_or_refusing_never_raises_and_logs_without_the_token(
    sink: SlackSink, caplog: pytest.LogCaptureFixture, failure: int | str
) -> None:
    # GIVEN Slack answering with an error
    sink.fail_with(failure)
    notifier = SlackNotifier(lambda: bot(sink))
    # WHEN posting and updating
    with caplog.at_level(logging.WARNING, logger="deployer.slack"):
        ref = notifier.post([], "x", channel=None)
        updated = notifier.update(MessageRef("C0123456789", FIRST_TS), [], "x")
    # THEN nothing raised, the caller learns it failed, and the log says so without the token
    assert (ref, updated) == (None, False)
    assert "Slack chat.postMessage failed" in caplog.text
    assert "Slack chat.update failed" in caplog.text
    assert TOKEN not in caplog.text
    assert len(sink.requests("/api/")) == 2


@pytest.mark.functional
def test_a_wrong_token_is_refused_by_slack_and_logged_without_it(
    sink: SlackSink, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = SlackNotifier(lambda: bot(sink, bot_token="xoxb-wrong-SECRET"))
    with caplog.at_level(logging.WARNING, logger="deployer.slack"):
        assert notifier.post([], "x", channel=None) is None
    assert "invalid_auth" in caplog.text
    assert "xoxb-wrong-SECRET" not in caplog.text


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.functional
def test_slack_unreachable_is_logged_and_returns_none(caplog: pytest.LogCaptureFixture) -> None:
    port = _closed_port()
    base = f"http://127.0.0.1:{port}"
    notifier = SlackNotifier(lambda: SlackSettings(bot_token=TOKEN, channel="C1", api_base_url=f"{base}/api/"))
    webhook = SlackNotifier(lambda: SlackSettings(webhook_url=f"{base}/webhook/WEBHOOKSECRET"))
    with caplog.at_level(logging.WARNING, logger="deployer.slack"):
        assert notifier.post([], "x", channel=None) is None
        assert webhook.post([], "x", channel=None) is None
    assert "Slack chat.postMessage failed: URLError" in caplog.text
    assert "Slack webhook failed" in caplog.text
    assert TOKEN not in caplog.text
    assert "WEBHOOKSECRET" not in caplog.text


@pytest.mark.functional
def test_a_refused_webhook_is_logged_without_its_url(sink: SlackSink, caplog: pytest.LogCaptureFixture) -> None:
    sink.fail_with("invalid_token")
    notifier = SlackNotifier(lambda: SlackSettings(webhook_url=sink.webhook_url))
    with caplog.at_level(logging.WARNING, logger="deployer.slack"):
        assert notifier.post([], "x", channel=None) is None
    assert "Slack webhook failed: HTTP 400: invalid_token" in caplog.text
    assert sink.webhook_url not in caplog.text


def test_settings_that_cannot_be_loaded_skip_the_post(caplog: pytest.LogCaptureFixture) -> None:
    def broken() -> SlackSettings:
        return SlackSettings.from_json("[]")

    with caplog.at_level(logging.WARNING, logger="deployer.slack"):
        assert SlackNotifier(broken).post([], "x", channel="C1") is None
    assert "settings unavailable: ConfigError" in caplog.text


@pytest.mark.functional
def test_respond_posts_to_the_response_url(sink: SlackSink) -> None:
    notifier = SlackNotifier(lambda: bot(sink))
    blocks = decided_blocks(view(), "reject", "U012ABCDEF", datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    # WHEN answering an interaction through its response_url
    assert notifier.respond(sink.response_url("a1"), blocks, "rejected") is True
    # THEN the original message is replaced with the decided blocks
    [sent] = sink.requests("/response/")
    assert sent.body["replace_original"] is True
    assert sent.blocks == as_dicts(blocks)


@pytest.mark.functional
def test_answer_is_an_ephemeral_reply_that_leaves_the_original_and_refuses_other_hosts(sink: SlackSink) -> None:
    notifier = SlackNotifier(lambda: bot(sink))
    # WHEN the user who clicked is answered
    assert notifier.answer(sink.response_url("a2"), f"Only <@U012ABCDEF> may: {'x' * 4000}") is True
    # THEN one section, cut to Block Kit's 3,000 characters, as a new message (the original stays)
    [sent] = sink.requests("/response/")
    assert sent.body["replace_original"] is False
    [section] = sent.blocks
    assert section["text"]["type"] == "mrkdwn"
    assert section["text"]["text"].startswith("Only <@U012ABCDEF> may: ")
    assert len(section["text"]["text"]) == 3000
    # AND, like respond, it posts nowhere but Slack (or the configured sink)
    assert notifier.answer("https://evil.example/actions/T/1/x", "x") is False
    assert len(sink.requests()) == 1


@pytest.mark.functional
def test_respond_reports_a_failed_response_url(sink: SlackSink) -> None:
    sink.fail_with(404)
    assert SlackNotifier(lambda: bot(sink)).respond(sink.response_url(), [], "x") is False


@pytest.mark.functional
@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/actions/T/1/x",
        "http://hooks.slack.com/actions/T/1/x",
        "https://hooks.slack.com.evil.example/actions/T/1/x",
        "https://hooks.slack.com@evil.example/actions/T/1/x",
        "https://hooks.slack.com:8443/actions/T/1/x",
        "http://169.254.169.254/latest/meta-data/",
        "file:///etc/passwd",
        "not a url",
    ],
)
def test_respond_refuses_urls_that_are_not_slacks(sink: SlackSink, url: str) -> None:
    # WHEN asked to post to anything but Slack's hooks host (or the configured sink)
    assert SlackNotifier(lambda: bot(sink)).respond(url, [], "x") is False
    assert not _allowed_response_url(url, sink.api_base_url)
    # THEN nothing was sent anywhere
    assert sink.requests() == []


@pytest.mark.functional
def test_respond_refuses_the_sink_unless_it_is_the_configured_api_base(sink: SlackSink) -> None:
    assert SlackNotifier(lambda: SlackSettings(bot_token=TOKEN)).respond(sink.response_url(), [], "x") is False
    other_port = sink.response_url().replace(f":{sink.url.rsplit(':', 1)[1]}/", f":{_closed_port()}/")
    assert SlackNotifier(lambda: bot(sink)).respond(other_port, [], "x") is False
    assert sink.requests() == []


def test_slacks_own_response_urls_are_allowed() -> None:
    assert _allowed_response_url("https://hooks.slack.com/actions/T0001/1234/abcdef", None)


# --- verify_request ---------------------------------------------------------------------------


SIGNED_SETTINGS = SlackSettings(bot_token=TOKEN, signing_secret=SIGNING_SECRET)
BODY = form(block_actions())


def signed_headers(body: bytes = BODY, timestamp: int = int(NOW), secret: str = SIGNING_SECRET) -> dict[str, str]:
    return {
        "x-slack-request-timestamp": str(timestamp),
        "x-slack-signature": sign(body, str(timestamp), secret),
        "content-type": "application/x-www-form-urlencoded",
    }


@pytest.mark.parametrize("skew", [0, -300, 300])
def test_a_validly_signed_request_passes(skew: int) -> None:
    verify_request(SIGNED_SETTINGS, signed_headers(timestamp=int(NOW) + skew), BODY, now=NOW)


def test_headers_are_case_insensitive() -> None:
    headers = {k.title(): v for k, v in signed_headers().items()}
    assert "X-Slack-Signature" in headers
    verify_request(SIGNED_SETTINGS, headers, BODY, now=NOW)


def _refused(settings: SlackSettings, headers: dict[str, str], body: bytes = BODY) -> SlackRequestRefused:
    with pytest.raises(SlackRequestRefused) as caught:
        verify_request(settings, headers, body, now=NOW)
    assert caught.value.http_status == 401
    assert isinstance(caught.value, DeployerError)
    return caught.value


def test_a_wrong_signature_is_refused() -> None:
    assert _refused(SIGNED_SETTINGS, signed_headers(secret="another-secret")).reason == "bad signature"


def test_a_body_altered_after_signing_is_refused() -> None:
    altered = BODY.replace(b"token-1", b"token-2")
    assert altered != BODY
    assert _refused(SIGNED_SETTINGS, signed_headers(), altered).reason == "bad signature"


@pytest.mark.parametrize("skew", [-301, 301, -86_400, 86_400])
def test_a_stale_timestamp_is_refused_either_way_even_if_signed(skew: int) -> None:
    # GIVEN a request correctly signed, but timestamped more than 5 minutes away from now
    headers = signed_headers(timestamp=int(NOW) + skew)
    assert "stale" in _refused(SIGNED_SETTINGS, headers).reason


@pytest.mark.parametrize(
    ("missing", "reason"),
    [
        ("x-slack-request-timestamp", "missing X-Slack-Request-Timestamp"),
        ("x-slack-signature", "missing X-Slack-Signature"),
    ],
)
def test_a_missing_header_is_refused(missing: str, reason: str) -> None:
    headers = signed_headers()
    del headers[missing]
    assert reason in _refused(SIGNED_SETTINGS, headers).reason


@pytest.mark.parametrize("timestamp", ["1764410400.5", " 1764410400", "1_764_410_400", "-1", "nan"])
def test_a_timestamp_that_is_not_whole_seconds_is_refused(timestamp: str) -> None:
    headers = signed_headers()
    headers["x-slack-request-timestamp"] = timestamp
    headers["x-slack-signature"] = sign(BODY, timestamp)
    assert "not a number" in _refused(SIGNED_SETTINGS, headers).reason


def test_without_a_signing_secret_every_request_is_refused() -> None:
    assert "signing secret" in _refused(SlackSettings(bot_token=TOKEN), signed_headers()).reason


def test_a_body_that_is_not_utf8_is_verified_over_its_bytes_then_is_not_an_interaction() -> None:
    """Slack, "Verifying requests from Slack"
    (https://api.slack.com/authentication/verifying-requests-from-slack): a request carries "a
    UTF-8 encoded message body", and "The signature is created by hashing the request body with
    the SHA-256 function, and combining it with an HMAC signing secret." slack_sdk signs text
    only, so a body that is not UTF-8 is checked over its raw bytes: signed, it passes and is then
    refused as not an interaction (a 400 at the endpoint); forged or altered, it is refused (401)."""
    body = form(block_actions()) + b"\xff"
    verify_request(SIGNED_SETTINGS, signed_headers(body), body, now=NOW)
    with pytest.raises(BadInput, match="interaction body is not UTF-8 text"):
        parse_interaction(body)
    assert _refused(SIGNED_SETTINGS, signed_headers(body, secret="another-secret"), body).reason == "bad signature"
    assert _refused(SIGNED_SETTINGS, signed_headers(body), body[:-1] + b"\xfe").reason == "bad signature"
    assert _refused(SIGNED_SETTINGS, signed_headers(BODY), body).reason == "bad signature"


def test_a_base64_function_url_body_is_decoded_before_verifying() -> None:
    # GIVEN a Function URL event whose body Lambda base64-encoded
    headers = signed_headers()
    encoded = base64.b64encode(BODY).decode()
    event: dict[str, Any] = {
        "headers": headers,
        "body": encoded,
        "isBase64Encoded": True,
        "requestContext": {"http": {"method": "POST"}},
    }
    # WHEN the body is decoded, it verifies and parses
    body = decode_function_url_body(event)
    assert body == BODY
    verify_request(SIGNED_SETTINGS, headers, body, now=NOW)
    assert parse_interaction(body).decision == "approve"
    # AND the still-encoded body would not
    _refused(SIGNED_SETTINGS, headers, encoded.encode())


def test_a_plain_function_url_body_is_used_as_is() -> None:
    assert decode_function_url_body({"body": BODY.decode(), "isBase64Encoded": False}) == BODY
    assert decode_function_url_body({"isBase64Encoded": False}) == b""


@pytest.mark.parametrize("event", [{"body": "not*base64!", "isBase64Encoded": True}, {"body": 42}])
def test_an_undecodable_function_url_body_is_bad_input(event: dict[str, Any]) -> None:
    with pytest.raises(BadInput):
        decode_function_url_body(event)


# --- parse_interaction -------------------------------------------------------------------------


@pytest.mark.parametrize(("action_id", "decision"), [(APPROVE_ACTION, "approve"), (REJECT_ACTION, "reject")])
def test_approve_and_reject_payloads_parse(action_id: str, decision: str) -> None:
    interaction = parse_interaction(form(block_actions(action_id, "token-1")))
    assert interaction == Interaction(
        action_id=action_id,
        value="token-1",
        user_id="U012ABCDEF",
        user_name="alice",
        response_url="https://hooks.slack.com/actions/T0001/1234/abcdef",
        channel_id="C0123456789",
        message_ts="1700000000.000100",
    )
    assert interaction.decision == decision


def test_the_link_button_payload_is_a_no_op() -> None:
    interaction = parse_interaction(form(block_actions(REVIEW_ACTION, None)))
    assert (interaction.action_id, interaction.value, interaction.decision) == (REVIEW_ACTION, None, None)


def test_minimal_payload_takes_channel_and_ts_from_the_container() -> None:
    payload = {
        "type": "block_actions",
        "user": {"id": "U012ABCDEF"},
        "container": {"message_ts": "1.2", "channel_id": "C9"},
        "actions": [{"action_id": "approve", "value": "v"}],
    }
    interaction = parse_interaction(form(payload))
    assert (interaction.channel_id, interaction.message_ts, interaction.user_name) == ("C9", "1.2", None)
    assert interaction.response_url is None


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"payload=", id="empty-payload"),
        pytest.param(b"payload=not%20json", id="not-json"),
        pytest.param(b"\xff\xfe", id="not-utf8"),
        pytest.param(json.dumps(block_actions()).encode(), id="raw-json-not-form"),
        pytest.param(form(block_actions()) + b"&" + form(block_actions()), id="two-payloads"),
        pytest.param(form([block_actions()]), id="list"),
        pytest.param(form(block_actions(type="view_submission")), id="other-type"),
        pytest.param(form(block_actions(actions=[])), id="no-actions"),
        pytest.param(form(block_actions(user={"name": "alice"})), id="no-user-id"),
        pytest.param(form(block_actions(user={"id": "<!channel>"})), id="user-id-markup"),
        pytest.param(form(block_actions(user={"id": 12345})), id="user-id-number"),
        pytest.param(form(block_actions(actions=[{"action_id": "approve", "value": 1}])), id="value-number"),
        pytest.param(form(block_actions(actions=[{"value": "v"}])), id="no-action-id"),
        pytest.param(b"payload=" + b"%5B" * 5000, id="deeply-nested"),
        pytest.param(b"a=1&" * 20 + form(block_actions()), id="too-many-fields"),
    ],
)
def test_garbage_interactions_are_bad_input(body: bytes) -> None:
    with pytest.raises(BadInput):
        parse_interaction(body)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_bad_input_and_nothing_else(body: bytes) -> None:
    with pytest.raises(BadInput):
        parse_interaction(body)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "type": st.sampled_from(["block_actions", "view_submission"]) | _json_values,
            "user": st.fixed_dictionaries({}, optional={"id": st.sampled_from(["U1A", "u1", ""]) | _json_values}),
            "actions": st.lists(
                st.fixed_dictionaries({}, optional={"action_id": _json_values, "value": _json_values}), max_size=2
            ),
            "response_url": _json_values,
            "container": _json_values,
        },
    )
)
def test_any_json_payload_parses_or_is_bad_input(payload: dict[str, Any]) -> None:
    try:
        interaction = parse_interaction(form(payload))
    except BadInput:
        return
    assert isinstance(interaction.action_id, str)
    assert interaction.action_id
    assert re.fullmatch(r"[A-Z0-9]{2,32}", interaction.user_id)


def test_the_button_limits_are_slack_sdks() -> None:
    # GIVEN the limits deployer.slack checks before building a button (written out, so that the
    # module imports no slack_sdk until a message is built) WHEN compared with slack_sdk's own
    from slack_sdk.models.blocks import ButtonElement

    from deployer import slack

    # THEN they are the same
    assert (
        ButtonElement.value_max_length,
        ButtonElement.url_max_length,
    ) == (slack._BUTTON_VALUE_MAX, slack._BUTTON_URL_MAX)
