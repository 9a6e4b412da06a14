"""EventBridge without AWS: an event reaches every function whose rule in template.yaml matches
it, on the bus it was put on, as EventBridge would deliver it.

The rules are the template's own (`rules_from_template`), so the local wiring cannot drift from
what is deployed. Whether a pattern matches is never decided here: the events client's
TestEventPattern answers. moto (5.x) accepts that call but answers it without a result; against
such an endpoint the router asks moto's own pattern matcher instead, the one moto's PutEvents
uses to deliver events to rule targets, so a local match is a moto match either way.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from deployer_local import localrun, template
from deployer_local.localrun import InvokeResult

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

    from deployer_local.provision import DeployerNames

__all__ = [
    "DEFAULT_BUS",
    "MAX_ENTRY_BYTES",
    "Delivery",
    "EventTooLarge",
    "Router",
    "Rule",
    "check_entry_size",
    "entry_size",
    "envelope",
    "rules_from_template",
]

DEFAULT_BUS = "default"
MAX_ENTRY_BYTES = 1024 * 1024
"""The largest PutEvents entry EventBridge takes: 1 MB since January 2026 (it was 256 KB), as
botocore's PutEvents documentation says ("the total entry size must be less than 1MB") and AWS
announced ("More room to build: serverless services now support payloads up to 1 MB", AWS
Compute Blog). Counted as `entry_size` counts."""


class EventTooLarge(ValueError):
    """An event whose PutEvents entry is over MAX_ENTRY_BYTES: EventBridge would refuse it."""


def entry_size(event: Mapping[str, Any]) -> int:
    """The size of `event`'s PutEvents entry, computed as EventBridge computes it ("Calculating
    Amazon EventBridge PutEvents event entry size", Amazon EventBridge User Guide,
    https://docs.aws.amazon.com/eventbridge/latest/userguide/calculate-putevents-entry-size.html):
    Time counts 14 bytes if present; Source, DetailType, Detail and each entry of Resources their
    UTF-8 bytes. Detail is counted as compact JSON, the smallest text PutEvents could be sent."""
    size = 14 if event.get("time") is not None else 0
    for key in ("source", "detail-type"):
        size += len(str(event.get(key) or "").encode("utf-8"))
    if event.get("detail") is not None:
        detail = json.dumps(event["detail"], separators=(",", ":"), ensure_ascii=False)
        size += len(detail.encode("utf-8", "surrogatepass"))
    for resource in event.get("resources") or ():
        if resource is not None:
            size += len(str(resource).encode("utf-8", "surrogatepass"))
    return size


def check_entry_size(event: Mapping[str, Any]) -> int:
    """`entry_size(event)`, or EventTooLarge when EventBridge would refuse the entry."""
    size = entry_size(event)
    if size > MAX_ENTRY_BYTES:
        raise EventTooLarge(
            f"its PutEvents entry is {size:,} bytes, over EventBridge's limit of {MAX_ENTRY_BYTES:,} "
            "(source, detail-type, detail and resources, counted as EventBridge counts them): "
            "put the large part in S3 and send its key"
        )
    return size


Worker = Callable[[dict[str, Any]], InvokeResult]


@dataclass(frozen=True)
class Rule:
    """One EventBridgeRule event of a function in template.yaml."""

    function: str
    """The function's logical id."""
    event: str
    """The event's name under the function's `Events` (e.g. PushRule)."""
    pattern: dict[str, Any] = field(hash=False)
    bus: str
    """The bus the rule listens on: "default", or the deployer bus's name."""

    @property
    def name(self) -> str:
        return f"{self.function}.{self.event}"


@dataclass(frozen=True)
class Delivery:
    """The event delivered to one function because one rule matched it."""

    rule: Rule
    function: str
    result: InvokeResult
    event: dict[str, Any]
    """What the function received: the event with EventBridge's envelope filled in."""


def rules_from_template(names: DeployerNames, path: str | None = None) -> list[Rule]:
    """Every EventBridgeRule event of every function in template.yaml, in template order, with
    its bus resolved for the deployer environment `names` (schedules are not rules of a bus)."""
    functions = template.resources("AWS::Serverless::Function", path)
    rules = []
    for key, pattern in template.rule_patterns(path).items():
        function, event = key.split(".", 1)
        properties = functions[function]["Events"][event]["Properties"]
        bus = _bus_name(properties.get("EventBusName"), names, key)
        rules.append(Rule(function, event, pattern, bus))
    return rules


def _bus_name(value: Any, names: DeployerNames, rule: str) -> str:
    if value is None:
        return DEFAULT_BUS
    if isinstance(value, str):
        return value.rsplit("/", 1)[-1]  # a name, or an event-bus ARN
    ref = value.get("Ref") if isinstance(value, dict) and len(value) == 1 else None
    resolved = localrun.resource_names(names).get(ref) if isinstance(ref, str) else None
    if resolved is None:
        raise ValueError(f"{rule}: EventBusName {json.dumps(value)} is not a bus the local router knows")
    return resolved


def envelope(
    event: Mapping[str, Any],
    *,
    region: str | None = None,
    account: str = localrun.LOCAL_ACCOUNT,
    now: datetime | None = None,
) -> dict[str, Any]:
    """`event` as a rule's target receives it: the fields EventBridge adds on PutEvents (version,
    id, account, time, region, and empty resources and detail) filled in where missing. Fields
    already there are kept, so an envelope's envelope is itself. Refuses an event without the
    source and detail-type that PutEvents requires."""
    if not isinstance(event, Mapping):
        raise ValueError(f"an EventBridge event is a JSON object, not {type(event).__name__}")
    missing = [key for key in ("source", "detail-type") if not isinstance(event.get(key), str) or not event[key]]
    if missing:
        raise ValueError(f"an EventBridge event needs {' and '.join(missing)} (PutEvents' Source and DetailType)")
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or localrun.DEFAULT_REGION
    filled: dict[str, Any] = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": event["detail-type"],
        "source": event["source"],
        "account": account,
        "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [],
        "detail": {},
    }
    filled.update(copy.deepcopy(dict(event)))
    return filled


class Router:
    """Routes events to `workers` (function logical id -> invoke) by `rules`."""

    def __init__(
        self,
        events_client: EventBridgeClient,
        workers: Mapping[str, Worker],
        rules: Iterable[Rule],
    ) -> None:
        self._events = events_client
        self._workers = workers
        self._rules = tuple(rules)
        unserved = sorted({rule.function for rule in self._rules} - set(workers))
        if unserved:
            raise ValueError(f"no worker for {', '.join(unserved)}, which the rules deliver to")
        # Patterns are static: serialized once. Matches depend on the event: asked every time.
        self._patterns = tuple((rule, json.dumps(rule.pattern)) for rule in self._rules)
        self._without_test_event_pattern = False

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def buses(self) -> list[str]:
        """The buses events can be put on: default, and every bus a rule listens on."""
        return list(dict.fromkeys([DEFAULT_BUS, *(rule.bus for rule in self._rules)]))

    def matching(self, event: Mapping[str, Any], bus: str = DEFAULT_BUS) -> list[Rule]:
        """The rules on `bus` whose pattern matches `event` (enveloped first); nothing is invoked."""
        return self._matching(envelope(event), bus)

    def route(self, event: Mapping[str, Any], bus: str = DEFAULT_BUS) -> list[Delivery]:
        """Put `event` on `bus`: deliver it, enveloped once (one id for every target), to the
        function of each matching rule in turn, and return what each returned. An event
        EventBridge would refuse for its size raises EventTooLarge and reaches no function."""
        check_entry_size(event)  # the entry as put, before EventBridge fills in the envelope
        delivered = envelope(event)
        return [
            Delivery(rule, rule.function, self._workers[rule.function](copy.deepcopy(delivered)), delivered)
            for rule in self._matching(delivered, bus)
        ]

    def _matching(self, event: dict[str, Any], bus: str) -> list[Rule]:
        if bus not in self.buses:
            raise ValueError(f"no bus {bus!r} here: events go on {' or '.join(self.buses)}")
        event_json = json.dumps(event)
        return [rule for rule, pattern in self._patterns if rule.bus == bus and self._matches(pattern, event_json)]

    def _matches(self, pattern: str, event: str) -> bool:
        if not self._without_test_event_pattern:
            answer: Mapping[str, Any] = self._events.test_event_pattern(EventPattern=pattern, Event=event)
            if "Result" in answer:
                return bool(answer["Result"])
            self._without_test_event_pattern = True  # the endpoint's, not the event's: it stays so
        return bool(_moto_pattern(pattern).matches_event(json.loads(event)))


@functools.cache
def _moto_pattern(pattern: str) -> Any:
    try:
        from moto.events.models import EventPattern
    except ImportError as exc:
        raise RuntimeError(
            "the events endpoint answers TestEventPattern without a result (moto does) and moto is not "
            "installed here to match the pattern as moto's PutEvents would: run in the project's virtualenv"
        ) from exc
    return EventPattern.load(pattern)
