"""Typed outcomes (`deployer.outcomes.Outcome`): the flow produces and compares enum members, and
what the handlers return, log and print keeps the same strings (a StrEnum)."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator

import pytest
from moto import mock_aws

from deployer.events.codecommit import CodeCommitReferenceEvent
from deployer.events.parse import parse_event
from deployer.flow.push import on_push
from deployer.outcomes import Outcome
from tests.support.events import REPOSITORY_ROOT
from tests.support.world import World, commit_id, make_world

pytestmark = pytest.mark.unit

# The code that produces outcomes: the layer, the CLI, the local stack and the handlers.
SOURCES = sorted(
    path
    for root in ("layers/deployer/deployer", "cli/deployer_cli", "local/deployer_local", "functions")
    for path in (REPOSITORY_ROOT / root).rglob("*.py")
)


@pytest.fixture
def world() -> Iterator[World]:
    with mock_aws():
        yield make_world()


def test_every_outcome_is_its_own_lowercase_string() -> None:
    assert len({o.value for o in Outcome}) == len(Outcome)
    assert all(o.value == o.name.lower() for o in Outcome)


def test_a_push_returns_a_member_whose_json_is_the_same_string(world: World) -> None:
    # WHEN a push starts a release
    (result,) = on_push(parse_event(CodeCommitReferenceEvent, world.push(commit_id("typed"))), world.deps)
    # THEN its outcome is a member, and its JSON (what the handler returns) is the plain string
    assert result["outcome"] is Outcome.BUILD_STARTED
    assert json.loads(json.dumps(result))["outcome"] == "build_started"


def literal_outcomes(path: str, source: str) -> list[str]:
    """Every `{"outcome": "<a string>"}` in `source`: an outcome produced as a bare string."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "outcome" and isinstance(value, ast.Constant):
                    found.append(f"{path}:{value.lineno}: {value.value!r}")
    return found


def test_no_outcome_is_produced_as_a_bare_string() -> None:
    # GIVEN every module that produces results
    assert len(SOURCES) > 50
    # WHEN each is searched for {"outcome": "<string>"}
    bare = [
        hit
        for path in SOURCES
        for hit in literal_outcomes(str(path.relative_to(REPOSITORY_ROOT)), path.read_text(encoding="utf-8"))
    ]
    # THEN there is none: every outcome is an Outcome member
    assert bare == []
