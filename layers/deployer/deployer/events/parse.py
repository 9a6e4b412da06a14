"""The one way to parse an event (`parse_event`): a refusal becomes `BadInput` with a short message,
never the event itself, which may carry secrets (build environment variables) and may be huge."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from pydantic import (
    ValidationError,
)

from deployer.errors import BadInput
from deployer.events.envelope import EventBridgeEnvelope

__all__ = ["MAX_MESSAGE_CHARS", "parse_event"]


# --- Parsing -----------------------------------------------------------------------------------

MAX_ERRORS_SHOWN: Final = 3
MAX_MESSAGE_CHARS: Final = 600
_SAFE_EVENT_ID: Final = re.compile(r"[A-Za-z0-9-]{1,64}")


def parse_event[ModelT: EventBridgeEnvelope](model: type[ModelT], raw: Mapping[str, Any]) -> ModelT:
    """Validate `raw` as `model`, or raise `BadInput` naming the event id and the first problems.

    The pydantic error is not chained (`from None`): its text quotes the input, which must not
    reach a log through a traceback.
    """
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise BadInput(_refusal_message(model, raw, error)) from None


def _refusal_message(model: type[EventBridgeEnvelope], raw: object, error: ValidationError) -> str:
    event_id = raw.get("id") if isinstance(raw, Mapping) else None
    named = (
        f"event {event_id}"
        if isinstance(event_id, str) and _SAFE_EVENT_ID.fullmatch(event_id)
        else "an event without a usable id"
    )
    # No input, context or URL: only where each problem is and what it is.
    problems = error.errors(include_url=False, include_context=False, include_input=False)
    shown = "; ".join(
        f"{_where(problem['loc'])}: {_clip(problem['msg'], 160)}" for problem in problems[:MAX_ERRORS_SHOWN]
    )
    more = len(problems) - MAX_ERRORS_SHOWN
    message = f"{model.__name__} refused {named}: {shown}" + (f"; and {more} more" if more > 0 else "")
    return _clip(message, MAX_MESSAGE_CHARS)


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(_clip(str(part), 48) for part in loc) or "(event)"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
