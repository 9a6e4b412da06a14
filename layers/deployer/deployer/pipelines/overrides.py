"""RunTask's `overrides` for a stage's `before` task, as `deployer.before` sends them and the loader
checks their size: the standard library alone, so the one-shot CLI (which imports `deployer.stages`,
hence `deployer.before`) runs without pydantic or PyYAML (.venv-cli holds neither)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any


def before_overrides(container: str, command: Sequence[str]) -> dict[str, Any]:
    """RunTask's `overrides` for a `before` task: the command, in its container."""
    return {"containerOverrides": [{"name": container, "command": list(command)}]}


def overrides_chars(overrides: Mapping[str, Any]) -> int:
    """The characters of RunTask's `overrides` as compact JSON, which ECS bounds (MAX_OVERRIDES_CHARS)."""
    return len(json.dumps(overrides, separators=(",", ":"), ensure_ascii=False))
