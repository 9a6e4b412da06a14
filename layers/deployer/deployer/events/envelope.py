"""The EventBridge envelope every event model here extends, the field types several sources share,
and `_Deferred`, the base that makes pydantic build a model when it is first used, not when its
module is imported (a function builds the models of the events it handles and no other).

The envelope has the fields and types of Powertools' `EventBridgeModel` without importing Powertools'
parser, whose models package builds the models of every event source it knows (about 100 ms of a
cold start).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
)

__all__ = ["EventBridgeEnvelope"]


class _Deferred(BaseModel):
    """The base of every model here: pydantic builds a model's validator and serializer when the
    model is first used (`ConfigDict.defer_build`), not when this module is imported, so a function
    builds the models of the events it handles and no other (the module holds every event's models)."""

    model_config = ConfigDict(defer_build=True)


# --- The envelope ------------------------------------------------------------------------------
# "The following fields appear in all events delivered to an event bus, and comprise the event's
# metadata" (Amazon EventBridge events reference, "Amazon service event metadata",
# docs.aws.amazon.com/eventbridge/latest/ref/events-structure.html): version, id, detail-type,
# source, account, time, region, replay-name, resources, detail. The same fields, names and types
# as Powertools' EventBridgeModel (tests/unit/test_events.py compares them).


class EventBridgeEnvelope(_Deferred):
    """The fields every EventBridge event has; each model pins `source`, `detail_type` and `detail`."""

    model_config = ConfigDict(populate_by_name=True)

    version: str
    id: str
    source: str
    account: str
    time: datetime
    region: str
    resources: list[str]
    detail_type: str = Field(alias="detail-type")
    detail: dict[str, Any] | BaseModel
    replay_name: str | None = Field(None, alias="replay-name")


CommitId = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{40}$")]
Token = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


def _truncated(limit: int) -> Callable[[object], object]:
    """A before-validator that shortens free text the deployer writes (user agents, reasons)
    instead of refusing it: an over-long user agent must not lose an approval."""

    def cut(value: object) -> object:
        return value[:limit] if isinstance(value, str) else value

    return cut
