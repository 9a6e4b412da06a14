"""The one loader of the sample events in `events/` (the same files `sam local invoke -e` takes)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
EVENTS_DIR = REPOSITORY_ROOT / "events"

_NAME = re.compile(r"[a-z0-9_]+")


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of `events/<name>.json`, so a test may change it freely."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"not a sample event name: {name!r} (lowercase, digits, underscores)")
    event: dict[str, Any] = json.loads((EVENTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
    return event


def sample_names() -> list[str]:
    """Every sample event, by name, sorted."""
    return sorted(path.stem for path in EVENTS_DIR.glob("*.json"))
