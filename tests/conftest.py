"""Shared fixtures. Every test runs with fake AWS credentials and a fixed region, so no test
can reach a real account by accident."""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

# CI (`.ci/run` sets HYPOTHESIS_PROFILE=ci) draws the same examples on every run, so a submission
# never fails on a draw nobody has seen; local runs draw fresh examples each time and explore (they
# found the lone surrogate `deployer validate` could not print).
settings.register_profile("ci", derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# moto's EC2 backend loads thousands of AMIs at start-up (~1 s per test) that no test needs.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
}


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("DEPLOYER_STACK", raising=False)  # a developer's own deployed stack is no test's
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EcsDeployerTest")
