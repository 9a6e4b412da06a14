"""The tiers keep themselves honest (tests/conftest.py): a test marked or filed `unit` that uses moto
runs as `functional`, and a `unit` test that starts moto, opens a socket or starts a process fails,
saying so, even when the code under test swallows the error. Each case runs a small suite of its
own in this process (pytest's `pytester`) with the project's conftest."""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

# The inner suites start moto (a test the conftest runs as functional): so is this module.
pytestmark = pytest.mark.functional

CONFTEST = """
from tests.conftest import (
    _fake_aws_credentials,
    _unit_tier_guard,
    aws_session,
    clock,
    deployer_table,
    moto_aws,
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_runtest_makereport,
    world,
    world_options,
)
"""
INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider
markers =
    unit: in memory
    functional: moto in process
    integration: other processes
    e2e: the whole flow
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeconftest(CONFTEST)
    pytester.makeini(INI)
    pytester.mkpydir("unit")
    return pytester


def write(suite: pytest.Pytester, source: str) -> None:
    (suite.path / "unit" / "test_inner.py").write_text(source)


def test_a_unit_test_that_starts_moto_opens_a_socket_or_starts_a_process_fails_saying_why(
    suite: pytest.Pytester,
) -> None:
    # GIVEN unit tests that reach outside the process, through helpers (nothing in the tests
    # themselves names moto), one of them swallowing the error
    write(
        suite,
        """
import socket, subprocess
import pytest

pytestmark = pytest.mark.unit

def start_moto():
    from moto import mock_aws
    with mock_aws():
        pass

def test_moto():
    start_moto()

def test_socket():
    socket.socket().connect(("127.0.0.1", 9))

def test_process():
    subprocess.run(["true"], check=False)

def test_swallowed():
    try:
        socket.socket().connect(("127.0.0.1", 9))
    except Exception:
        pass

def test_pure():
    assert 1 + 1 == 2
""",
    )
    # WHEN the unit tier runs
    result = suite.runpytest_inprocess("-m", "unit")
    # THEN each fails with the reason and the way out: the three as they run, the one that swallowed
    # the error at its teardown (its call "passed"); the pure one passes
    result.assert_outcomes(passed=2, failed=3, errors=1)
    out = result.stdout.str()
    assert "unit tier: this test started moto (mock_aws)" in out
    assert "unit tier: this test opened a socket (connect)" in out
    assert "unit tier: this test started a process" in out
    assert out.count("mark the test `functional` (moto in process) or `integration` (other processes)") >= 4
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_swallowed*", "unit tier: this test opened a socket*"])
    assert "ERROR at teardown of test_socket" not in out  # failed once, not again at teardown


def test_a_test_filed_or_marked_unit_that_uses_moto_runs_as_functional(suite: pytest.Pytester) -> None:
    # GIVEN, in tests/unit, a test using moto_aws, one calling mock_aws, one marked integration,
    # one whose module says unit but the test says functional, and a pure one
    write(
        suite,
        """
import pytest
from moto import mock_aws

pytestmark = pytest.mark.unit

def test_with_the_fixture(moto_aws):
    pass

def test_calling_mock_aws():
    with mock_aws():
        pass

@pytest.mark.integration
def test_marked_integration():
    pass

@pytest.mark.functional
def test_marked_functional():
    pass

def test_pure():
    pass
""",
    )
    # WHEN each tier is selected
    unit = suite.runpytest_inprocess("-m", "unit", "-v")
    functional = suite.runpytest_inprocess("-m", "functional", "-vv")
    integration = suite.runpytest_inprocess("-m", "integration", "-v")
    # THEN the pure test is unit, the two using moto functional (and said so), the marked ones theirs
    unit.assert_outcomes(passed=1, deselected=4)
    unit.stdout.fnmatch_lines(["*test_pure PASSED*"])
    functional.assert_outcomes(passed=3, deselected=2)
    functional.stdout.fnmatch_lines(
        [
            "*tiers of the 5 tests collected: unit 1, functional 3, integration 1 (2 marked or filed unit*",
            "*functional, not unit: unit/test_inner.py::test_with_the_fixture: it uses the moto_aws fixture",
            "*functional, not unit: unit/test_inner.py::test_calling_mock_aws: it calls mock_aws",
        ]
    )
    integration.assert_outcomes(passed=1, deselected=4)
    integration.stdout.fnmatch_lines(["*test_marked_integration PASSED*"])


def test_the_world_is_in_memory_for_a_unit_test_and_moto_for_a_functional_one(suite: pytest.Pytester) -> None:
    # GIVEN the same check of the world in both tiers
    write(
        suite,
        """
import pytest
from tests.support.fakes import FakeAws

@pytest.mark.unit
def test_unit(world):
    assert isinstance(world.session, FakeAws)
    assert world.service("dev")["desiredCount"] == 2

@pytest.mark.functional
def test_functional(world):
    assert not isinstance(world.session, FakeAws)
    assert world.service("dev")["desiredCount"] == 2
""",
    )
    # WHEN they run THEN both pass, each on its own AWS
    suite.runpytest_inprocess().assert_outcomes(passed=2)
