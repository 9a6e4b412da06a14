"""The README's strategy examples are valid stages: each YAML block of its "Strategies" section,
put in a pipeline, passes `deployer validate`'s rules (so the documentation cannot drift from them)."""

from __future__ import annotations

import re
import textwrap

import pytest

from deployer.pipelines.loader import check_config_text
from tests.support.events import REPOSITORY_ROOT

pytestmark = pytest.mark.unit


def strategy_examples() -> list[str]:
    text = (REPOSITORY_ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Strategies, and approvals during a deployment", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```yaml\n(.*?)```", section, flags=re.DOTALL)


def test_the_readme_shows_one_example_per_strategy() -> None:
    examples = strategy_examples()
    assert len(examples) == 4
    for strategy in ("BLUE_GREEN", "LINEAR", "CANARY"):
        assert sum(f"strategy: {strategy}" in e for e in examples) == 1


@pytest.mark.parametrize("example", strategy_examples(), ids=lambda e: e.splitlines()[0][2:40])
def test_each_example_stage_is_valid(example: str) -> None:
    config = (
        "pipelines:\n  - name: web\n    repository: web-app\n    branch: main\n"
        "    build: {project: web-app-build}\n    container: web\n    stages:\n" + textwrap.indent(example, "      ")
    )
    result = check_config_text(config, "README.md")
    assert result.valid, result.error_messages()
