"""Payload filters: a small JSON predicate over an event's ``data``.

An endpoint may carry one; the fan-out creates a delivery only for events whose
``data`` it accepts. Each node is an object with exactly one operator::

    {"eq": ["status", "failed"]}            data.status == "failed"
    {"ne": ["status", "ok"]}                not equal (a missing value is not equal)
    {"in": ["region", ["eu", "us"]]}        equal to one of the values
    {"exists": "run.error"}                 the path is present (null counts as present)
    {"gt": ["attempt", 2]}                  also gte, lt, lte: numbers only
    {"and": [node, …]}  {"or": [node, …]}  {"not": node}

Paths are dotted (``run.owner.id``); a segment of digits indexes a list
(``items.0.sku``). Equality is JSON equality (``1`` equals ``1.0``, never ``true``).
A comparison with a missing or non-numeric value is false. :func:`check_filter`
validates a filter when it is set (an invalid one is refused with a message that says
where in the filter it is wrong); :func:`matches` evaluates one and never raises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from worker.errors import InvalidPayloadFilter
from worker.fanout.deliveries import Fanned, Subscriber

S = TypeVar("S", bound=Subscriber)

MAX_DEPTH = 8
"""Deepest nesting of and/or/not accepted."""

MAX_NODES = 64
"""Most operator nodes in one filter."""

MAX_BYTES = 4096
"""Largest filter, as compact JSON."""

COMPARISONS = ("gt", "gte", "lt", "lte")
LOGICAL = ("and", "or")
OPERATORS = ("eq", "ne", "in", "exists", *COMPARISONS, *LOGICAL, "not")

_MISSING = object()


def check_filter(value: object) -> dict[str, Any]:
    """Return ``value`` if it is a valid filter, else :class:`InvalidPayloadFilter`."""
    if not isinstance(value, Mapping):
        raise InvalidPayloadFilter('filter must be a JSON object such as {"eq": [path, value]}')
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidPayloadFilter(f"filter is not plain JSON: {exc}") from None
    if size > MAX_BYTES:
        raise InvalidPayloadFilter(f"filter is {size} bytes of JSON, over the {MAX_BYTES} limit")
    count = _check(value, "filter", 1)
    if count > MAX_NODES:
        raise InvalidPayloadFilter(f"filter has {count} operators, over the {MAX_NODES} limit")
    return dict(value)


def _check(node: object, where: str, depth: int) -> int:
    if depth > MAX_DEPTH:
        raise InvalidPayloadFilter(f"{where}: nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, Mapping) or len(node) != 1:
        raise InvalidPayloadFilter(
            f"{where}: each node is an object with exactly one operator ({', '.join(OPERATORS)})"
        )
    ((operator, argument),) = node.items()
    here = f"{where}.{operator}"
    if operator in LOGICAL:
        if not isinstance(argument, list) or not argument:
            raise InvalidPayloadFilter(f"{here}: needs a non-empty list of nodes")
        return 1 + sum(_check(n, f"{here}[{i}]", depth + 1) for i, n in enumerate(argument))
    if operator == "not":
        return 1 + _check(argument, here, depth + 1)
    if operator == "exists":
        _check_path(argument, here)
        return 1
    if operator not in OPERATORS:
        raise InvalidPayloadFilter(
            f"{where}: unknown operator {operator!r} (use {', '.join(OPERATORS)})"
        )
    if not isinstance(argument, list) or len(argument) != 2:
        raise InvalidPayloadFilter(f"{here}: needs [path, value]")
    path, operand = argument
    _check_path(path, here)
    if operator in COMPARISONS and not _is_number(operand):
        raise InvalidPayloadFilter(f"{here}: compares with a number, not {operand!r}")
    if operator == "in" and not isinstance(operand, list):
        raise InvalidPayloadFilter(f"{here}: needs [path, [value, …]]")
    return 1


def _check_path(path: object, where: str) -> None:
    if not isinstance(path, str) or not path or any(not s for s in path.split(".")):
        raise InvalidPayloadFilter(f"{where}: the path must be dotted names such as 'run.id'")
    if len(path.split(".")) > 32:
        raise InvalidPayloadFilter(f"{where}: the path has more than 32 segments")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _resolve(data: object, path: str) -> object:
    current = data
    for segment in path.split("."):
        if isinstance(current, Mapping):
            current = current.get(segment, _MISSING)
        elif isinstance(current, Sequence) and not isinstance(current, str) and segment.isdigit():
            index = int(segment)
            current = current[index] if index < len(current) else _MISSING
        else:
            return _MISSING
        if current is _MISSING:
            return _MISSING
    return current


def _equal(left: object, right: object) -> bool:
    if isinstance(left, bool) or isinstance(right, bool):
        return isinstance(left, bool) and isinstance(right, bool) and left == right
    return left == right


def accepting(endpoints: Sequence[S], event: Fanned) -> list[S]:
    """Those of ``endpoints`` whose payload filter accepts ``event`` (the body is parsed
    once, and only if one of them has a filter)."""
    if all(endpoint.filter is None for endpoint in endpoints):
        return list(endpoints)
    data = json.loads(event.body)["data"]["data"]
    return [e for e in endpoints if matches(e.filter, data)]


def matches(predicate: Mapping[str, Any] | None, data: Mapping[str, Any]) -> bool:
    """Whether ``data`` satisfies ``predicate`` (None: every event does)."""
    if predicate is None:
        return True
    return _evaluate(predicate, data)


def _evaluate(node: Mapping[str, Any], data: Mapping[str, Any]) -> bool:
    ((operator, argument),) = node.items()
    if operator == "and":
        return all(_evaluate(n, data) for n in argument)
    if operator == "or":
        return any(_evaluate(n, data) for n in argument)
    if operator == "not":
        return not _evaluate(argument, data)
    if operator == "exists":
        return _resolve(data, argument) is not _MISSING
    path, operand = argument
    value = _resolve(data, path)
    if operator == "eq":
        return value is not _MISSING and _equal(value, operand)
    if operator == "ne":
        return value is _MISSING or not _equal(value, operand)
    if operator == "in":
        return value is not _MISSING and any(_equal(value, o) for o in operand)
    if not _is_number(value):
        return False
    number, bound = float(value), float(operand)  # type: ignore[arg-type]
    if operator == "gt":
        return number > bound
    if operator == "gte":
        return number >= bound
    if operator == "lt":
        return number < bound
    return number <= bound
