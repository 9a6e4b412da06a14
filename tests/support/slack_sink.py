"""The local Slack sink lives in the package (the local stack uses it too); tests import it here."""

from deployer_local.slack_sink import FIRST_TS, RecordedRequest, SlackSink

__all__ = ["FIRST_TS", "RecordedRequest", "SlackSink"]
