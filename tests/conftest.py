"""Shared fixtures and the test tiers. Every test runs with fake AWS credentials and a fixed
region, so no test can reach a real account by accident.

Tiers, named for what a test touches (pyproject.toml registers them; `make unit`, `make
functional`, `make integration`, `make e2e` run one each, `make test` all of them):

- unit: nothing outside the process: no moto, no socket, no subprocess. AWS is the in-memory
  fakes of tests/support/fakes.py (the `world` and `deployer_table` fixtures give them).
- functional: moto in process (and, for a few, a server on a local socket in the same process).
- integration: other processes: moto server over HTTP, the built functions, subprocesses.
- e2e: the whole flow, the real browser.

A test gets its tier from its marker (the closest: the test's, its class's, then its module's),
else from its directory (tests/unit, tests/integration, tests/e2e). Two rules keep the tiers
honest: a test whose tier would be `unit` but that uses moto (the `moto_aws` fixture, or
`mock_aws` in its code or its fixtures') runs as `functional`; and while a `unit` test runs,
starting moto, opening a socket, resolving a host name or starting a process fails it, saying why.
"""

from __future__ import annotations

import copy
import os
import socket
import subprocess
import types
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import settings

from deployer_local.provision import DemoAccount, DeployerNames
from tests.support.clock import Clock
from tests.support.world import World, make_world, world_in

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
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)  # a developer's own endpoint is no test's either
    monkeypatch.delenv("DEPLOYER_STACK", raising=False)  # a developer's own deployed stack is no test's
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "EcsDeployerTest")


# -- tiers -------------------------------------------------------------------------------------------

TIERS = ("unit", "functional", "integration", "e2e")
TIER_RULE = (
    "unit tests touch nothing outside the process: no moto, no socket, no subprocess "
    "(use the in-memory fakes: the `world` or `deployer_table` fixture, tests/support/fakes.py); "
    "mark the test `functional` (moto in process) or `integration` (other processes) instead"
)
_TIER = pytest.StashKey[str]()
_FAILED = pytest.StashKey[bool]()
_SUMMARY = pytest.StashKey[tuple[Counter[str], list[tuple[str, str]]]]()


def tier_of(node: pytest.Item) -> str:
    """The tier the collection gave a test (`pytest_collection_modifyitems` below)."""
    return node.stash.get(_TIER, "unit")


def _explicit_tier(item: pytest.Item) -> str | None:
    return next((mark.name for mark in item.iter_markers() if mark.name in TIERS), None)


def _directory_tier(item: pytest.Item) -> str:
    parts = item.path.parts
    for tier in ("integration", "e2e"):
        if tier in parts:
            return tier
    return "unit"


def _code_names(function: Any) -> set[str]:
    """The global names a function (and the functions defined in it) refers to."""
    while True:
        inner = getattr(getattr(function, "hypothesis", None), "inner_test", None) or getattr(
            function, "__wrapped__", None
        )
        if inner is None:
            break
        function = inner
    code = getattr(function, "__code__", None)
    names: set[str] = set()
    pending = [code] if code is not None else []
    while pending:
        current = pending.pop()
        names.update(current.co_names)
        pending.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
    return names


def _moto_reason(item: pytest.Item) -> str | None:
    """Why this test needs moto, or None."""
    names = list(getattr(item, "fixturenames", ()))
    if "moto_aws" in names:
        return "it uses the moto_aws fixture"
    if "mock_aws" in _code_names(getattr(item, "function", None)):
        return "it calls mock_aws"
    info = getattr(item, "_fixtureinfo", None)
    for name in names:
        definitions = info.name2fixturedefs.get(name) if info is not None else None
        if definitions and "mock_aws" in _code_names(definitions[-1].func):
            return f"its fixture {name} calls mock_aws"
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Give each test exactly one tier marker, on the test itself, before `-m` selects (tryfirst):
    the explicit one or the directory's, `unit` moved to `functional` when the test uses moto."""
    chosen: dict[pytest.Item, str] = {}
    moved: list[tuple[str, str]] = []
    for item in items:
        tier = _explicit_tier(item) or _directory_tier(item)
        if tier == "unit":
            reason = _moto_reason(item)
            if reason is not None:
                tier = "functional"
                moved.append((item.nodeid, reason))
        chosen[item] = tier
    for item, tier in chosen.items():
        for node in item.listchain():
            node.own_markers[:] = [mark for mark in node.own_markers if mark.name not in TIERS]
        item.add_marker(tier)
        item.stash[_TIER] = tier
    config.stash[_SUMMARY] = (Counter(chosen.values()), moved)


def pytest_collection_finish(session: pytest.Session) -> None:
    summary = session.config.stash.get(_SUMMARY, None)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if summary is None or reporter is None:
        return
    counts, moved = summary
    if len(counts) < 2 and not moved:
        return  # one file or one tier: nothing worth a line
    shown = ", ".join(f"{tier} {counts[tier]}" for tier in TIERS if counts[tier])
    note = f" ({len(moved)} marked or filed unit run as functional: they use moto)" if moved else ""
    reporter.write_line(f"tiers of the {sum(counts.values())} tests collected: {shown}{note}")
    if session.config.option.verbose > 1:
        for nodeid, reason in moved:
            reporter.write_line(f"  functional, not unit: {nodeid}: {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        item.stash[_FAILED] = True  # the guard need not fail it a second time at teardown
    return report


class TierViolation(AssertionError):
    """A unit test touched what only other tiers may."""


@pytest.fixture(autouse=True)
def _unit_tier_guard(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """While a unit test runs (its fixtures included): starting moto, opening or binding a socket,
    resolving a host name, or starting a process raises, and fails the test even if the code under
    test swallowed the error."""
    if tier_of(request.node) != "unit":  # type: ignore[arg-type]
        yield
        return
    refused: list[str] = []

    def refuse(what: str) -> Callable[..., Any]:
        def refusal(*args: Any, **kwargs: Any) -> Any:
            message = f"unit tier: this test {what}. {TIER_RULE}"
            refused.append(message)
            raise TierViolation(message)

        return refusal

    import moto.core.models

    monkeypatch.setattr(moto.core.models.MockAWS, "start", refuse("started moto (mock_aws)"))
    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, refuse(f"opened a socket ({name})"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("resolved a host name (the network)"))
    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse("started a process"))
    for name in ("fork", "forkpty", "system", "posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, refuse(f"started a process (os.{name})"))
    yield
    if refused and not request.node.stash.get(_FAILED, False):
        pytest.fail(refused[0], pytrace=False)


# -- AWS: moto or the in-memory fakes, by tier ----------------------------------------------------------


@pytest.fixture
def moto_aws() -> Iterator[None]:
    """moto in process (`mock_aws`): every boto3 client of the test is answered by moto. Using it
    makes a test `functional`. The deployer's cached clients are rebuilt inside the mock and after."""
    from moto import mock_aws

    from deployer import aws

    aws._cached_client.cache_clear()
    with mock_aws():
        yield
    aws._cached_client.cache_clear()


@pytest.fixture
def aws_session(request: pytest.FixtureRequest) -> Any:
    """What the test's AWS clients come from: the in-memory fakes (`FakeAws`) for a unit test,
    moto in process (a boto3 session inside `mock_aws`) for any other."""
    if tier_of(request.node) == "unit":  # type: ignore[arg-type]
        from tests.support.fakes import FakeAws

        return FakeAws()
    request.getfixturevalue("moto_aws")
    import boto3

    return boto3.session.Session()


@pytest.fixture
def clock() -> Clock:
    """The world's clock (its approvals read the time from it): the real time until the test moves it."""
    return Clock()


@pytest.fixture
def world_options() -> dict[str, Any]:
    """`make_world`'s keyword arguments for the `world` fixture; a module overrides this fixture
    to change them (e.g. `{"workers": ("dev", "prod")}`)."""
    return {}


# The in-memory account `make_world` provisions, by its options: provisioned once per process, each
# unit test gets a copy (a fresh world costs 60 ms, a copy 10).
_FAKE_ACCOUNTS: dict[str, tuple[dict[str, Any], DeployerNames, DemoAccount]] = {}


@pytest.fixture
def world(aws_session: Any, world_options: dict[str, Any], clock: Clock) -> World:
    """The deployer's tables and bus, the demo account and its published pipeline: in the
    in-memory fakes for a unit test, in moto for a functional one (tests/integration's conftest
    gives moto server's)."""
    from tests.support.fakes import FakeAws

    options = {"clock": clock, **world_options}
    if not isinstance(aws_session, FakeAws) or "listeners" in options:
        return make_world(session=aws_session, **options)
    key = repr(sorted((k, v) for k, v in world_options.items()))
    if key not in _FAKE_ACCOUNTS:
        provisioned = make_world(session=FakeAws(), **world_options)
        _FAKE_ACCOUNTS[key] = (provisioned.session.snapshot(), provisioned.names, provisioned.account)
    snapshot, names, account = _FAKE_ACCOUNTS[key]
    aws_session.restore(snapshot)
    return world_in(aws_session, names, copy.deepcopy(account), clock=clock)


@pytest.fixture
def deployer_table(aws_session: Any) -> Any:
    """The deployer's table alone (as template.yaml defines it, no demo account), in the fakes or moto by tier."""
    from deployer_local.provision import DeployerNames, provision_deployer

    names = DeployerNames("tests")
    provision_deployer(names, aws_session)
    return aws_session.resource("dynamodb").Table(names.table)
