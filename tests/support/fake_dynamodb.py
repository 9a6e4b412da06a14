"""An in-memory DynamoDB for unit tests: the table operations the deployer's stores make, with
DynamoDB's expression language (condition, update and key-condition expressions), evaluated on the
items as DynamoDB holds them (typed attribute values: {"S": ...}, {"N": ...}, {"M": {...}}...).

It answers a real boto3 client or Table (`tests.support.fakes.FakeAws`): boto3 turns Python values
into typed ones and back, botocore validates every request against its DynamoDB model, and a failed
condition is botocore's own `ConditionalCheckFailedException`, as DynamoDB raises it. What it does
not implement raises `NotImplementedError` naming it, never a silent answer. `tests/unit/
test_fakes_match_moto.py` runs the same store operations on this and on moto and compares them.

The rules it follows, from the DynamoDB Developer Guide and API Reference:
- "Condition expressions": a comparison with an attribute the item lacks is false; size(),
  attribute_exists, attribute_not_exists, attribute_type, begins_with, contains; AND, OR, NOT,
  BETWEEN, IN, parentheses.
- "Update expressions": SET (with +, -, if_not_exists, list_append), REMOVE, ADD, DELETE; a key
  attribute cannot be updated.
- Query: "You must provide the name of the partition key attribute and a single value for that
  attribute"; the sort key with =, <, <=, >, >=, BETWEEN or begins_with; results "sorted by the sort
  key value" (strings "in order of UTF-8 bytes"); Limit is "The maximum number of items to evaluate
  (not necessarily the number of matching items). If DynamoDB processes the number of items up to
  the limit while processing the results, it stops the operation and returns the matching values up
  to that point, and a key in LastEvaluatedKey" (API Reference, Query): a page that reaches the
  limit has a LastEvaluatedKey even when nothing follows ("If LastEvaluatedKey is not empty, it does
  not necessarily mean that there is more data in the result set", Developer Guide, "Paginating
  table query results in DynamoDB").
- "Expression attribute names/values": every placeholder used must be defined, and every one
  defined must be used (ValidationException otherwise).
- "Reserved words in DynamoDB": "Don't use any of these words as attribute names in expressions.
  This list isn't case-sensitive." (the list: tests/support/dynamodb_reserved_words.txt).
"""

from __future__ import annotations

import base64
import copy
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path as FilePath
from typing import Any

__all__ = ["DynamoDBError", "FakeDynamoDB"]

Value = dict[str, Any]  # one typed attribute value, e.g. {"S": "x"}
Item = dict[str, Value]


class DynamoDBError(Exception):
    """An error DynamoDB answers with (HTTP 400): its code, message and extra response fields."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.extra = extra


def _validation(message: str) -> DynamoDBError:
    return DynamoDBError("ValidationException", message)


CONDITION_FAILED = "The conditional request failed"


# -- typed values ---------------------------------------------------------------------------------


def _number(value: Value) -> Decimal:
    return Decimal(value["N"])


def _type(value: Value) -> str:
    (kind,) = value
    return kind


def _equal(a: Value | None, b: Value | None) -> bool:
    if a is None or b is None:
        return False
    kind = _type(a)
    if kind != _type(b):
        return False
    if kind == "N":
        return _number(a) == _number(b)
    if kind == "NS":
        return {Decimal(n) for n in a["NS"]} == {Decimal(n) for n in b["NS"]}
    if kind in {"SS", "BS"}:
        return set(a[kind]) == set(b[kind])
    if kind == "M":
        return a["M"].keys() == b["M"].keys() and all(_equal(a["M"][k], b["M"][k]) for k in a["M"])
    if kind == "L":
        return len(a["L"]) == len(b["L"]) and all(_equal(x, y) for x, y in zip(a["L"], b["L"], strict=True))
    return bool(a[kind] == b[kind])


def _ordering_key(value: Value) -> Any:
    """What DynamoDB orders scalars by: numbers by value, strings by their UTF-8 bytes, binary by bytes."""
    kind = _type(value)
    if kind == "N":
        return _number(value)
    if kind == "S":
        return value["S"].encode("utf-8")
    if kind == "B":
        raw = value["B"]
        return base64.b64decode(raw) if isinstance(raw, str) else bytes(raw)
    raise _validation(f"values of type {kind} cannot be ordered")


def _compare(op: str, a: Value | None, b: Value | None) -> bool:
    if op == "=":
        return _equal(a, b)
    if op == "<>":
        return not _equal(a, b)
    if a is None or b is None or _type(a) != _type(b) or _type(a) not in {"S", "N", "B"}:
        return False
    x, y = _ordering_key(a), _ordering_key(b)
    return {"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op]


def _size(value: Value | None) -> Value | None:
    if value is None:
        return None
    kind = _type(value)
    if kind == "S":
        return {"N": str(len(value["S"]))}
    if kind == "B":
        return {"N": str(len(_ordering_key(value)))}
    if kind in {"SS", "NS", "BS", "L"}:
        return {"N": str(len(value[kind]))}
    if kind == "M":
        return {"N": str(len(value["M"]))}
    return None  # size() of a number, boolean or null: the condition is false


def _key_text(value: Value) -> tuple[str, str]:
    kind = _type(value)
    return kind, str(_number(value)) if kind == "N" else str(value[kind])


# -- expressions: tokens and parsing ----------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<name>#[A-Za-z0-9_]+)|(?P<value>:[A-Za-z0-9_]+)|(?P<op><>|<=|>=|=|<|>)"
    r"|(?P<punct>[(),.\[\]+-])|(?P<number>[0-9]+)|(?P<word>[A-Za-z_][A-Za-z0-9_]*))"
)
RESERVED_WORDS = frozenset(
    line.strip().upper()
    for line in (FilePath(__file__).with_name("dynamodb_reserved_words.txt")).read_text().splitlines()
    if line.strip() and not line.startswith("#")
)
_FUNCTIONS = {"attribute_exists", "attribute_not_exists", "attribute_type", "begins_with", "contains"}
_KEYWORDS = {"AND", "OR", "NOT", "BETWEEN", "IN", "SET", "REMOVE", "ADD", "DELETE"}

PathElement = str | int


@dataclass(frozen=True)
class Path:
    elements: tuple[PathElement, ...]


@dataclass(frozen=True)
class Placeholder:
    name: str  # ":v"


@dataclass(frozen=True)
class Size:
    path: Path


Operand = Path | Placeholder | Size


@dataclass
class _Tokens:
    items: list[tuple[str, str]]
    text: str
    position: int = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        index = self.position + offset
        return self.items[index] if index < len(self.items) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise _validation(f'Invalid expression: unexpected end of expression: "{self.text}"')
        self.position += 1
        return token

    def expect(self, kind: str, text: str | None = None) -> str:
        got_kind, got = self.take()
        if got_kind != kind or (text is not None and got.upper() != text):
            raise _validation(f'Invalid expression: syntax error; token: "{got}", near: "{self.text}"')
        return got

    def at_keyword(self, *words: str) -> bool:
        token = self.peek()
        return token is not None and token[0] == "word" and token[1].upper() in words

    def at(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        return token is not None and token[0] == kind and (text is None or token[1] == text)


def _tokenize(text: str) -> _Tokens:
    tokens: list[tuple[str, str]] = []
    position = 0
    stripped = text.rstrip()
    while position < len(stripped):
        match = _TOKEN.match(stripped, position)
        if match is None or match.end() == position:
            raise _validation(f'Invalid expression: syntax error; token: "{stripped[position:]}", near: "{text}"')
        kind = match.lastgroup
        assert kind is not None
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return _Tokens(tokens, text)


class _Parser:
    """One request's expressions: parses them, and resolves #names and :values as it goes."""

    def __init__(self, names: Mapping[str, str] | None, values: Mapping[str, Value] | None) -> None:
        self.kind = "expression"  # what is being parsed, for the messages: "UpdateExpression"...
        self.names = dict(names or {})
        self.values = dict(values or {})
        self.used_names: set[str] = set()
        self.used_values: set[str] = set()

    def check_all_used(self) -> None:
        unused_names = sorted(set(self.names) - self.used_names)
        if unused_names:
            raise _validation(
                f"Value provided in ExpressionAttributeNames unused in expressions: keys: {{{', '.join(unused_names)}}}"
            )
        unused_values = sorted(set(self.values) - self.used_values)
        if unused_values:
            raise _validation(
                "Value provided in ExpressionAttributeValues unused in expressions: "
                f"keys: {{{', '.join(unused_values)}}}"
            )

    # -- operands --

    def path(self, tokens: _Tokens) -> Path:
        elements: list[PathElement] = [self._name(tokens)]
        while True:
            if tokens.at("punct", "."):
                tokens.take()
                elements.append(self._name(tokens))
            elif tokens.at("punct", "["):
                tokens.take()
                elements.append(int(tokens.expect("number")))
                tokens.expect("punct", "]")
            else:
                return Path(tuple(elements))

    def _name(self, tokens: _Tokens) -> str:
        kind, text = tokens.take()
        if kind == "name":
            if text not in self.names:
                raise _validation(
                    f"An expression attribute name used in the document path is not defined; attribute name: {text}"
                )
            self.used_names.add(text)
            return self.names[text]
        if kind == "word" and text.upper() not in _KEYWORDS:
            if text.upper() in RESERVED_WORDS:
                raise _validation(
                    f"Invalid {self.kind}: Attribute name is a reserved keyword; reserved keyword: {text}"
                )
            return text
        raise _validation(f'Invalid expression: syntax error; token: "{text}", near: "{tokens.text}"')

    def placeholder(self, tokens: _Tokens) -> Placeholder:
        text = tokens.expect("value")
        if text not in self.values:
            raise _validation(
                f"An expression attribute value used in expression is not defined; attribute value: {text}"
            )
        self.used_values.add(text)
        return Placeholder(text)

    def operand(self, tokens: _Tokens) -> Operand:
        if tokens.at("value"):
            return self.placeholder(tokens)
        if tokens.at("word", "size") and tokens.peek(1) == ("punct", "("):
            tokens.take()
            tokens.take()
            inner = self.path(tokens)
            tokens.expect("punct", ")")
            return Size(inner)
        return self.path(tokens)

    # -- conditions --

    def condition(self, text: str, kind: str = "ConditionExpression") -> Any:
        self.kind = kind
        tokens = _tokenize(text)
        node = self._or(tokens)
        if tokens.peek() is not None:
            raise _validation(f'Invalid expression: syntax error; token: "{tokens.peek()[1]}", near: "{text}"')  # type: ignore[index]
        return node

    def _or(self, tokens: _Tokens) -> Any:
        node = self._and(tokens)
        while tokens.at_keyword("OR"):
            tokens.take()
            node = ("or", node, self._and(tokens))
        return node

    def _and(self, tokens: _Tokens) -> Any:
        node = self._not(tokens)
        while tokens.at_keyword("AND"):
            tokens.take()
            node = ("and", node, self._not(tokens))
        return node

    def _not(self, tokens: _Tokens) -> Any:
        if tokens.at_keyword("NOT"):
            tokens.take()
            return ("not", self._not(tokens))
        return self._primary(tokens)

    def _primary(self, tokens: _Tokens) -> Any:
        if tokens.at("punct", "("):
            tokens.take()
            node = self._or(tokens)
            tokens.expect("punct", ")")
            return node
        token = tokens.peek()
        if token is not None and token[0] == "word" and token[1] in _FUNCTIONS and tokens.peek(1) == ("punct", "("):
            name = tokens.take()[1]
            tokens.take()
            args: list[Operand] = [self.path(tokens)]
            while tokens.at("punct", ","):
                tokens.take()
                args.append(self.operand(tokens))
            tokens.expect("punct", ")")
            expected = 1 if name in {"attribute_exists", "attribute_not_exists"} else 2
            if len(args) != expected:
                raise _validation(
                    "Invalid ConditionExpression: Incorrect number of operands for operator or function; "
                    f"operator or function: {name}, number of operands: {len(args)}"
                )
            return ("function", name, tuple(args))
        left = self.operand(tokens)
        if tokens.at_keyword("BETWEEN"):
            tokens.take()
            low = self.operand(tokens)
            tokens.expect("word", "AND")
            return ("between", left, low, self.operand(tokens))
        if tokens.at_keyword("IN"):
            tokens.take()
            tokens.expect("punct", "(")
            options = [self.operand(tokens)]
            while tokens.at("punct", ","):
                tokens.take()
                options.append(self.operand(tokens))
            tokens.expect("punct", ")")
            return ("in", left, tuple(options))
        op = tokens.expect("op")
        return ("compare", op, left, self.operand(tokens))

    # -- updates --

    def update(self, text: str) -> list[tuple[str, Path, Any]]:
        self.kind = "UpdateExpression"
        tokens = _tokenize(text)
        actions: list[tuple[str, Path, Any]] = []
        seen: set[str] = set()
        if tokens.peek() is None:
            raise _validation("Invalid UpdateExpression: The expression can not be empty;")
        while tokens.peek() is not None:
            clause = tokens.expect("word").upper()
            if clause not in {"SET", "REMOVE", "ADD", "DELETE"}:
                raise _validation(f'Invalid UpdateExpression: Syntax error; token: "{clause}", near: "{text}"')
            if clause in seen:
                raise _validation(
                    f'Invalid UpdateExpression: The "{clause}" section can only be used once in an update expression;'
                )
            seen.add(clause)
            while True:
                target = self.path(tokens)
                if clause == "SET":
                    tokens.expect("op", "=")
                    actions.append(("SET", target, self._set_value(tokens)))
                elif clause == "REMOVE":
                    actions.append(("REMOVE", target, None))
                else:
                    actions.append((clause, target, self.placeholder(tokens)))
                if not tokens.at("punct", ","):
                    break
                tokens.take()
        return actions

    def _set_value(self, tokens: _Tokens) -> Any:
        left = self._set_operand(tokens)
        if tokens.at("punct", "+") or tokens.at("punct", "-"):
            op = tokens.take()[1]
            return (op, left, self._set_operand(tokens))
        return left

    def _set_operand(self, tokens: _Tokens) -> Any:
        token = tokens.peek()
        if token is not None and token[0] == "word" and tokens.peek(1) == ("punct", "("):
            name = token[1]
            if name == "if_not_exists":
                tokens.take()
                tokens.take()
                target = self.path(tokens)
                tokens.expect("punct", ",")
                fallback = self._set_value(tokens)
                tokens.expect("punct", ")")
                return ("if_not_exists", target, fallback)
            if name == "list_append":
                tokens.take()
                tokens.take()
                first = self._set_value(tokens)
                tokens.expect("punct", ",")
                second = self._set_value(tokens)
                tokens.expect("punct", ")")
                return ("list_append", first, second)
            raise _validation(f"Invalid UpdateExpression: Invalid function name; function: {name}")
        if tokens.at("value"):
            return self.placeholder(tokens)
        return self.path(tokens)


# -- evaluation --------------------------------------------------------------------------------------


def _resolve(item: Item, path: Path) -> Value | None:
    current: Value | None = {"M": item}
    for element in path.elements:
        if current is None:
            return None
        if isinstance(element, int):
            if _type(current) != "L" or element >= len(current["L"]):
                return None
            current = current["L"][element]
        else:
            if _type(current) != "M":
                return None
            current = current["M"].get(element)
    return current


def _operand_value(item: Item, operand: Operand, values: Mapping[str, Value]) -> Value | None:
    if isinstance(operand, Placeholder):
        return values[operand.name]
    if isinstance(operand, Size):
        return _size(_resolve(item, operand.path))
    return _resolve(item, operand)


def _evaluate(node: Any, item: Item, values: Mapping[str, Value]) -> bool:
    kind = node[0]
    if kind == "or":
        return _evaluate(node[1], item, values) or _evaluate(node[2], item, values)
    if kind == "and":
        return _evaluate(node[1], item, values) and _evaluate(node[2], item, values)
    if kind == "not":
        return not _evaluate(node[1], item, values)
    if kind == "compare":
        _, op, left, right = node
        return _compare(op, _operand_value(item, left, values), _operand_value(item, right, values))
    if kind == "between":
        _, subject, low, high = node
        value = _operand_value(item, subject, values)
        return _compare(">=", value, _operand_value(item, low, values)) and _compare(
            "<=", value, _operand_value(item, high, values)
        )
    if kind == "in":
        _, subject, options = node
        value = _operand_value(item, subject, values)
        return any(_equal(value, _operand_value(item, option, values)) for option in options)
    _, name, args = node
    target = _resolve(item, args[0])
    if name == "attribute_exists":
        return target is not None
    if name == "attribute_not_exists":
        return target is None
    argument = _operand_value(item, args[1], values)
    if target is None or argument is None:
        return False
    if name == "attribute_type":
        return _type(target) == argument.get("S")
    if name == "begins_with":
        kind = _type(target)
        if kind not in {"S", "B"} or kind != _type(argument):
            return False
        return bool(_ordering_key(target).startswith(_ordering_key(argument)))
    # contains: a substring of a string, an element of a set or list
    kind = _type(target)
    if kind == "S":
        return _type(argument) == "S" and argument["S"] in target["S"]
    if kind in {"SS", "NS", "BS"}:
        return any(_equal({kind[0]: member}, argument) for member in target[kind])
    if kind == "L":
        return any(_equal(member, argument) for member in target["L"])
    return False


def _set_value(item: Item, node: Any, values: Mapping[str, Value]) -> Value:
    if isinstance(node, Placeholder):
        return copy.deepcopy(values[node.name])
    if isinstance(node, Path):
        found = _resolve(item, node)
        if found is None:
            raise _validation("The provided expression refers to an attribute that does not exist in the item")
        return copy.deepcopy(found)
    kind = node[0]
    if kind == "if_not_exists":
        found = _resolve(item, node[1])
        return copy.deepcopy(found) if found is not None else _set_value(item, node[2], values)
    if kind == "list_append":
        first, second = _set_value(item, node[1], values), _set_value(item, node[2], values)
        if _type(first) != "L" or _type(second) != "L":
            raise _validation("An operand in the update expression has an incorrect data type")
        return {"L": first["L"] + second["L"]}
    left, right = _set_value(item, node[1], values), _set_value(item, node[2], values)
    if _type(left) != "N" or _type(right) != "N":
        raise _validation("An operand in the update expression has an incorrect data type")
    result = _number(left) + _number(right) if kind == "+" else _number(left) - _number(right)
    return {"N": str(result)}


def _parent(item: Item, path: Path) -> tuple[dict[str, Any] | list[Any], PathElement] | None:
    """The container of the path's last element and that element, or None if the container is missing."""
    container: Value = {"M": item}
    for element in path.elements[:-1]:
        found = _resolve_in(container, element)
        if found is None:
            return None
        container = found
    last = path.elements[-1]
    if isinstance(last, int):
        return (container["L"], last) if _type(container) == "L" else None
    return (container["M"], last) if _type(container) == "M" else None


def _resolve_in(container: Value, element: PathElement) -> Value | None:
    if isinstance(element, int):
        return container["L"][element] if _type(container) == "L" and element < len(container["L"]) else None
    return container["M"].get(element) if _type(container) == "M" else None


_INVALID_PATH = "The document path provided in the update expression is invalid for update"


def _apply_update(item: Item, actions: list[tuple[str, Path, Any]], values: Mapping[str, Value]) -> Item:
    # Every operand is read from the item as it was before the update, as DynamoDB does.
    before = copy.deepcopy(item)
    updated = copy.deepcopy(item)
    for action, path, operand in actions:
        place = _parent(updated, path)
        if action == "SET":
            value = _set_value(before, operand, values)
            if place is None:
                raise _validation(_INVALID_PATH)
            container, last = place
            if isinstance(container, list):
                assert isinstance(last, int)
                if last >= len(container):
                    container.append(value)
                else:
                    container[last] = value
            else:
                container[str(last)] = value
        elif action == "REMOVE":
            if place is None:
                if len(path.elements) > 1:
                    raise _validation(_INVALID_PATH)
                continue
            container, last = place
            if isinstance(container, list):
                assert isinstance(last, int)
                if last < len(container):
                    del container[last]
            else:
                container.pop(str(last), None)
        else:
            _add_or_delete(updated, path, place, action, values[operand.name])
    return updated


def _add_or_delete(item: Item, path: Path, place: Any, action: str, value: Value) -> None:
    if place is None:
        raise _validation(_INVALID_PATH)
    container, last = place
    current = container.get(last) if isinstance(container, dict) else None
    kind = _type(value)
    if action == "ADD" and kind == "N":
        if current is not None and _type(current) != "N":
            raise _validation("An operand in the update expression has an incorrect data type")
        base = _number(current) if current is not None else Decimal(0)
        container[last] = {"N": str(base + _number(value))}
        return
    if kind not in {"SS", "NS", "BS"}:
        raise _validation(
            f"Invalid UpdateExpression: Incorrect operand type for operator or function; operator: {action}"
        )
    if current is not None and _type(current) != kind:
        raise _validation("An operand in the update expression has an incorrect data type")
    members = list(current[kind]) if current is not None else []
    if action == "ADD":
        members += [m for m in value[kind] if m not in members]
    else:
        members = [m for m in members if m not in value[kind]]
    if members:
        container[last] = {kind: members}
    else:
        container.pop(last, None)


# -- tables -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Index:
    name: str | None  # None: the table itself
    hash_key: str
    range_key: str | None
    projection: str = "ALL"  # ALL, KEYS_ONLY, INCLUDE
    included: tuple[str, ...] = ()


@dataclass
class _Table:
    name: str
    arn: str
    key: _Index
    attribute_types: dict[str, str]
    indexes: dict[str, _Index]
    created: datetime
    description: dict[str, Any]
    items: dict[tuple[tuple[str, str], ...], Item] = field(default_factory=dict)

    def key_of(self, item: Mapping[str, Value]) -> tuple[tuple[str, str], ...]:
        names = [self.key.hash_key] + ([self.key.range_key] if self.key.range_key else [])
        return tuple(_key_text(item[name]) for name in names)

    def key_attributes(self) -> list[str]:
        return [self.key.hash_key] + ([self.key.range_key] if self.key.range_key else [])


class FakeDynamoDB:
    """DynamoDB's table operations on items held in memory (one instance: one account's tables).
    Each operation takes the request as botocore serializes it and returns the response; DynamoDB's
    errors are `DynamoDBError`. Operations are atomic (one lock), as DynamoDB's single-item writes
    and transactions are."""

    def __init__(self, region: str = "eu-west-1", account: str = "123456789012") -> None:
        self.region = region
        self.account = account
        self.tables: dict[str, _Table] = {}
        self._lock = threading.RLock()

    def __getstate__(self) -> dict[str, Any]:  # copied without the lock (a copy makes its own)
        return {key: value for key, value in self.__dict__.items() if key != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def operations(self) -> dict[str, Callable[[dict[str, Any]], dict[str, Any]]]:
        return {
            "CreateTable": self.create_table,
            "DescribeTable": self.describe_table,
            "UpdateTimeToLive": self.update_time_to_live,
            "GetItem": self.get_item,
            "PutItem": self.put_item,
            "UpdateItem": self.update_item,
            "DeleteItem": self.delete_item,
            "Query": self.query,
            "Scan": self.scan,
            "TransactWriteItems": self.transact_write_items,
        }

    # -- tables --

    def create_table(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            name = request["TableName"]
            if name in self.tables:
                raise DynamoDBError("ResourceInUseException", f"Table already exists: {name}")
            types = {a["AttributeName"]: a["AttributeType"] for a in request["AttributeDefinitions"]}
            key = _index_from(None, request["KeySchema"], {"ProjectionType": "ALL"})
            indexes = {
                gsi["IndexName"]: _index_from(gsi["IndexName"], gsi["KeySchema"], gsi.get("Projection", {}))
                for gsi in request.get("GlobalSecondaryIndexes", [])
            }
            for index in [key, *indexes.values()]:
                for attribute in filter(None, (index.hash_key, index.range_key)):
                    if attribute not in types:
                        raise _validation(
                            "One or more parameter values were invalid: Some index key attributes are not defined in "
                            f"AttributeDefinitions. Keys: [{attribute}]"
                        )
            created = datetime.now(UTC)
            arn = f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"
            description: dict[str, Any] = {
                "TableName": name,
                "TableArn": arn,
                "TableStatus": "ACTIVE",
                "CreationDateTime": created,
                "KeySchema": request["KeySchema"],
                "AttributeDefinitions": request["AttributeDefinitions"],
                "ItemCount": 0,
                "TableSizeBytes": 0,
            }
            if request.get("BillingMode"):
                description["BillingModeSummary"] = {"BillingMode": request["BillingMode"]}
            if indexes:
                description["GlobalSecondaryIndexes"] = [
                    {
                        "IndexName": gsi["IndexName"],
                        "KeySchema": gsi["KeySchema"],
                        "Projection": gsi.get("Projection", {}),
                        "IndexStatus": "ACTIVE",
                        "IndexArn": f"{arn}/index/{gsi['IndexName']}",
                    }
                    for gsi in request["GlobalSecondaryIndexes"]
                ]
            self.tables[name] = _Table(name, arn, key, types, indexes, created, description)
            return {"TableDescription": copy.deepcopy(description)}

    def describe_table(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            table = self._table(request["TableName"])
            return {"Table": {**copy.deepcopy(table.description), "ItemCount": len(table.items)}}

    def update_time_to_live(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._table(request["TableName"])
            return {"TimeToLiveSpecification": request["TimeToLiveSpecification"]}

    # -- single items --

    def get_item(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._unsupported(request, "ProjectionExpression", "AttributesToGet")
            table = self._table(request["TableName"])
            found = table.items.get(self._key(table, request["Key"]))
            return {"Item": copy.deepcopy(found)} if found is not None else {}

    def put_item(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            table = self._table(request["TableName"])
            write = self._prepare_put(table, request)
            old = write()
            return self._returned(request, old, None)

    def update_item(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            table = self._table(request["TableName"])
            write = self._prepare_update(table, request)
            old = table.items.get(self._key(table, request["Key"]))
            new = write()
            return self._returned(request, old, new)

    def delete_item(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            table = self._table(request["TableName"])
            write = self._prepare_delete(table, request)
            return self._returned(request, write(), None)

    def _prepare_put(self, table: _Table, request: dict[str, Any]) -> Callable[[], Item | None]:
        self._unsupported(request, "Expected", "ConditionalOperator")
        item = request["Item"]
        for name in table.key_attributes():
            if name not in item:
                raise _validation(f"One or more parameter values were invalid: Missing the key {name} in the item")
        self._check_key_types(table, item)
        key = table.key_of(item)
        self._check_condition(table, request, table.items.get(key) or {})

        def write() -> Item | None:
            old = table.items.get(key)
            table.items[key] = copy.deepcopy(item)
            return old

        return write

    def _prepare_update(self, table: _Table, request: dict[str, Any]) -> Callable[[], Item]:
        self._unsupported(request, "AttributeUpdates", "Expected", "ConditionalOperator")
        key = self._key(table, request["Key"])
        parser = _Parser(request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues"))
        update_text = request.get("UpdateExpression")
        actions = parser.update(update_text) if update_text is not None else []
        condition = parser.condition(request["ConditionExpression"]) if request.get("ConditionExpression") else None
        parser.check_all_used()
        for _, path, _ in actions:
            if path.elements[0] in table.key_attributes():
                raise _validation(
                    f"One or more parameter values were invalid: Cannot update attribute {path.elements[0]}. "
                    "This attribute is part of the key"
                )
        existing = table.items.get(key)
        if condition is not None and not _evaluate(condition, existing or {}, parser.values):
            raise DynamoDBError("ConditionalCheckFailedException", CONDITION_FAILED)
        base = copy.deepcopy(existing) if existing is not None else copy.deepcopy(request["Key"])
        updated = _apply_update(base, actions, parser.values)
        self._check_key_types(table, updated)

        def write() -> Item:
            table.items[key] = updated
            return copy.deepcopy(updated)

        return write

    def _prepare_delete(self, table: _Table, request: dict[str, Any]) -> Callable[[], Item | None]:
        self._unsupported(request, "Expected", "ConditionalOperator")
        key = self._key(table, request["Key"])
        self._check_condition(table, request, table.items.get(key) or {})

        def write() -> Item | None:
            return table.items.pop(key, None)

        return write

    def _check_condition(self, table: _Table, request: dict[str, Any], item: Item) -> None:
        parser = _Parser(request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues"))
        text = request.get("ConditionExpression")
        if text is None:
            if parser.names or parser.values:
                which = "ExpressionAttributeNames" if parser.names else "ExpressionAttributeValues"
                raise _validation(f"{which} can only be specified when using expressions")
            return
        condition = parser.condition(text)
        parser.check_all_used()
        if not _evaluate(condition, item, parser.values):
            raise DynamoDBError("ConditionalCheckFailedException", CONDITION_FAILED)

    @staticmethod
    def _returned(request: dict[str, Any], old: Item | None, new: Item | None) -> dict[str, Any]:
        wanted = request.get("ReturnValues", "NONE")
        if wanted == "NONE":
            return {}
        if wanted == "ALL_OLD":
            return {"Attributes": copy.deepcopy(old)} if old else {}
        if wanted == "ALL_NEW" and new is not None:
            return {"Attributes": copy.deepcopy(new)}
        raise NotImplementedError(f"FakeDynamoDB: ReturnValues={wanted} is not implemented")

    # -- transactions --

    def transact_write_items(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            writes: list[Callable[[], Any] | None] = []
            reasons: list[dict[str, str]] = []
            seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
            for entry in request["TransactItems"]:
                (kind, operation), *_ = entry.items()
                table = self._table(operation["TableName"])
                key = table.key_of(operation["Item"]) if kind == "Put" else self._key(table, operation["Key"])
                if (table.name, key) in seen:
                    raise _validation("Transaction request cannot include multiple operations on one item")
                seen.add((table.name, key))
                try:
                    if kind == "Put":
                        writes.append(self._prepare_put(table, operation))
                    elif kind == "Update":
                        writes.append(self._prepare_update(table, operation))
                    elif kind == "Delete":
                        writes.append(self._prepare_delete(table, operation))
                    elif kind == "ConditionCheck":
                        self._check_condition(table, operation, table.items.get(key) or {})
                        writes.append(None)
                    else:  # pragma: no cover - botocore's model allows only these four
                        raise NotImplementedError(f"FakeDynamoDB: TransactWriteItems {kind}")
                    reasons.append({"Code": "None"})
                except DynamoDBError as exc:
                    if exc.code != "ConditionalCheckFailedException":
                        raise
                    reasons.append({"Code": "ConditionalCheckFailed", "Message": exc.message})
            if any(reason["Code"] != "None" for reason in reasons):
                codes = ", ".join(reason["Code"] for reason in reasons)
                raise DynamoDBError(
                    "TransactionCanceledException",
                    f"Transaction cancelled, please refer cancellation reasons for specific reasons [{codes}]",
                    CancellationReasons=reasons,
                )
            for write in writes:
                if write is not None:
                    write()
            return {}

    # -- reads of many items --

    def query(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._unsupported(request, "KeyConditions", "QueryFilter", "ProjectionExpression", "AttributesToGet")
            table = self._table(request["TableName"])
            index = self._index(table, request.get("IndexName"))
            if request.get("ConsistentRead") and index.name is not None:
                raise _validation("Consistent reads are not supported on global secondary indexes")
            parser = _Parser(request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues"))
            if "KeyConditionExpression" not in request:
                raise _validation("Either the KeyConditions or KeyConditionExpression parameter must be specified")
            key_condition = parser.condition(request["KeyConditionExpression"], "KeyConditionExpression")
            filtered = (
                parser.condition(request["FilterExpression"], "FilterExpression")
                if request.get("FilterExpression")
                else None
            )
            parser.check_all_used()
            _check_key_condition(key_condition, index)
            candidates = [
                item for item in self._index_items(table, index) if _evaluate(key_condition, item, parser.values)
            ]
            candidates.sort(key=lambda item: self._position(table, index, item))
            if request.get("ScanIndexForward") is False:
                candidates.reverse()
            return self._page(table, index, candidates, request, filtered, parser.values)

    def scan(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._unsupported(request, "ScanFilter", "ProjectionExpression", "AttributesToGet", "Segment")
            table = self._table(request["TableName"])
            index = self._index(table, request.get("IndexName"))
            parser = _Parser(request.get("ExpressionAttributeNames"), request.get("ExpressionAttributeValues"))
            filtered = (
                parser.condition(request["FilterExpression"], "FilterExpression")
                if request.get("FilterExpression")
                else None
            )
            parser.check_all_used()
            candidates = sorted(self._index_items(table, index), key=lambda item: self._position(table, index, item))
            return self._page(table, index, candidates, request, filtered, parser.values)

    def _page(
        self,
        table: _Table,
        index: _Index,
        candidates: list[Item],
        request: dict[str, Any],
        filtered: Any,
        values: Mapping[str, Value],
    ) -> dict[str, Any]:
        start = request.get("ExclusiveStartKey")
        if start is not None:
            start_at = self._position(table, index, start)
            descending = request.get("ScanIndexForward") is False

            def after_start(item: Item) -> bool:  # strictly after the start key, in the results' order
                here = self._position(table, index, item)
                return here < start_at if descending else here > start_at

            candidates = [item for item in candidates if after_start(item)]
        limit = request.get("Limit")
        evaluated = candidates[:limit] if limit is not None else candidates
        items = [item for item in evaluated if filtered is None or _evaluate(filtered, item, values)]
        response: dict[str, Any] = {
            "Items": [self._project(table, index, item) for item in items],
            "Count": len(items),
            "ScannedCount": len(evaluated),
        }
        if request.get("Select") == "COUNT":
            del response["Items"]
        if limit is not None and len(evaluated) == limit:  # stopped at the limit, more or not
            last = evaluated[-1]
            names = {*table.key_attributes(), index.hash_key, *([index.range_key] if index.range_key else [])}
            response["LastEvaluatedKey"] = {name: copy.deepcopy(last[name]) for name in names}
        return response

    # -- internals --

    def _table(self, name: str) -> _Table:
        table = self.tables.get(name)
        if table is None:
            raise DynamoDBError("ResourceNotFoundException", "Requested resource not found")
        return table

    @staticmethod
    def _index(table: _Table, name: str | None) -> _Index:
        if name is None:
            return table.key
        index = table.indexes.get(name)
        if index is None:
            raise _validation(f"The table does not have the specified index: {name}")
        return index

    @staticmethod
    def _index_items(table: _Table, index: _Index) -> Iterator[Item]:
        for item in table.items.values():
            if index.hash_key in item and (index.range_key is None or index.range_key in item):
                yield item

    @staticmethod
    def _position(table: _Table, index: _Index, item: Mapping[str, Value]) -> tuple[Any, ...]:
        """Where an item sorts: by the index's sort key, then (ties in an index) by the table's key."""
        parts: list[Any] = [_key_text(item[index.hash_key])]
        if index.range_key is not None:
            parts.append(_ordering_key(item[index.range_key]))
        if index.name is not None:
            parts.extend(_key_text(item[name]) for name in table.key_attributes())
        return tuple(parts)

    @staticmethod
    def _project(table: _Table, index: _Index, item: Item) -> Item:
        if index.projection == "ALL":
            return copy.deepcopy(item)
        kept = {*table.key_attributes(), index.hash_key, *([index.range_key] if index.range_key else [])}
        if index.projection == "INCLUDE":
            kept.update(index.included)
        return {name: copy.deepcopy(value) for name, value in item.items() if name in kept}

    @staticmethod
    def _key(table: _Table, key: Mapping[str, Value]) -> tuple[tuple[str, str], ...]:
        if set(key) != set(table.key_attributes()):
            raise _validation("The provided key element does not match the schema")
        for name, value in key.items():
            if _type(value) != table.attribute_types[name]:
                raise _validation("The provided key element does not match the schema")
        return table.key_of(key)

    @staticmethod
    def _check_key_types(table: _Table, item: Mapping[str, Value]) -> None:
        for name in table.key_attributes():
            kind = _type(item[name])
            if kind != table.attribute_types[name]:
                raise _validation(
                    "One or more parameter values were invalid: Type mismatch for key "
                    f"{name} expected: {table.attribute_types[name]} actual: {kind}"
                )
        for index in table.indexes.values():
            for name in filter(None, (index.hash_key, index.range_key)):
                if name in item and _type(item[name]) != table.attribute_types[name]:
                    raise _validation(
                        "One or more parameter values were invalid: Type mismatch for Index Key "
                        f"{name} Expected: {table.attribute_types[name]} Actual: {_type(item[name])} "
                        f"IndexName: {index.name}"
                    )

    @staticmethod
    def _unsupported(request: Mapping[str, Any], *names: str) -> None:
        given = [name for name in names if name in request]
        if given:
            raise NotImplementedError(f"FakeDynamoDB does not implement {', '.join(given)}")


def _index_from(name: str | None, schema: list[dict[str, str]], projection: Mapping[str, Any]) -> _Index:
    hash_key = next(k["AttributeName"] for k in schema if k["KeyType"] == "HASH")
    range_key = next((k["AttributeName"] for k in schema if k["KeyType"] == "RANGE"), None)
    return _Index(
        name,
        hash_key,
        range_key,
        str(projection.get("ProjectionType", "ALL")),
        tuple(projection.get("NonKeyAttributes", ())),
    )


def _check_key_condition(node: Any, index: _Index) -> None:
    """A key condition names the partition key with = and, optionally, the sort key (=, <, <=, >,
    >=, BETWEEN, begins_with), joined by AND: nothing else."""
    parts = [node[1], node[2]] if node[0] == "and" else [node]
    found_hash = False
    for part in parts:
        subject = part[2] if part[0] == "compare" else part[1] if part[0] == "between" else None
        if part[0] == "function" and part[1] == "begins_with":
            subject = part[2][0]
        if not isinstance(subject, Path) or len(subject.elements) != 1:
            raise _validation("Invalid operator used in KeyConditionExpression")
        attribute = subject.elements[0]
        if attribute == index.hash_key and part[0] == "compare" and part[1] == "=":
            found_hash = True
        elif attribute != index.range_key or (part[0] == "compare" and part[1] == "<>"):
            raise _validation(f"Query key condition not supported: {attribute}")
    if not found_hash:
        raise _validation("Query condition missed key schema element: " + index.hash_key)
