"""Payload filters: the predicate's table of truth, and the filters it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from worker.endpoints.predicate import check_filter, matches
from worker.errors import InvalidPayloadFilter

DATA: dict[str, Any] = {
    "status": "failed",
    "attempt": 3,
    "ratio": 0.5,
    "flag": True,
    "none": None,
    "run": {"id": "r1", "owner": {"team": "infra"}},
    "items": [{"sku": "a"}, {"sku": "b"}],
    "tags": ["x", "y"],
}


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        ({"eq": ["status", "failed"]}, True),
        ({"eq": ["status", "ok"]}, False),
        ({"eq": ["run.owner.team", "infra"]}, True),
        ({"eq": ["items.1.sku", "b"]}, True),
        ({"eq": ["items.5.sku", "b"]}, False),
        ({"eq": ["missing", None]}, False),
        ({"eq": ["none", None]}, True),
        ({"eq": ["attempt", 3.0]}, True),
        ({"eq": ["flag", 1]}, False),
        ({"eq": ["flag", True]}, True),
        ({"eq": ["tags", ["x", "y"]]}, True),
        ({"ne": ["status", "ok"]}, True),
        ({"ne": ["missing", "ok"]}, True),
        ({"ne": ["status", "failed"]}, False),
        ({"in": ["status", ["ok", "failed"]]}, True),
        ({"in": ["status", ["ok"]]}, False),
        ({"in": ["missing", [None]]}, False),
        ({"exists": "run.id"}, True),
        ({"exists": "none"}, True),
        ({"exists": "run.nothing"}, False),
        ({"exists": "status.deeper"}, False),
        ({"gt": ["attempt", 2]}, True),
        ({"gt": ["attempt", 3]}, False),
        ({"gte": ["attempt", 3]}, True),
        ({"lt": ["ratio", 1]}, True),
        ({"lte": ["ratio", 0.5]}, True),
        ({"gt": ["status", 1]}, False),
        ({"gt": ["flag", 0]}, False),
        ({"gt": ["missing", 0]}, False),
        ({"and": [{"eq": ["status", "failed"]}, {"gt": ["attempt", 2]}]}, True),
        ({"and": [{"eq": ["status", "failed"]}, {"gt": ["attempt", 5]}]}, False),
        ({"or": [{"eq": ["status", "ok"]}, {"exists": "run"}]}, True),
        ({"or": [{"eq": ["status", "ok"]}, {"exists": "nope"}]}, False),
        ({"not": {"eq": ["status", "ok"]}}, True),
        ({"not": {"not": {"exists": "run"}}}, True),
    ],
)
def test_matches(predicate: dict[str, Any], expected: bool) -> None:
    """Each operator on present, missing and mistyped values."""
    assert matches(check_filter(predicate), DATA) is expected


def test_no_filter_matches_everything() -> None:
    """An endpoint without a filter gets every event its types select."""
    assert matches(None, {}) is True


@pytest.mark.parametrize(
    ("predicate", "where"),
    [
        ([], "JSON object"),
        ({}, "exactly one operator"),
        ({"eq": ["a", 1], "ne": ["a", 2]}, "exactly one operator"),
        ({"like": ["a", "b%"]}, "unknown operator 'like'"),
        ({"eq": "status"}, "filter.eq: needs [path, value]"),
        ({"eq": ["", 1]}, "filter.eq: the path"),
        ({"eq": ["a..b", 1]}, "filter.eq: the path"),
        ({"eq": [3, 1]}, "filter.eq: the path"),
        ({"gt": ["a", "3"]}, "filter.gt: compares with a number"),
        ({"gt": ["a", True]}, "filter.gt: compares with a number"),
        ({"in": ["a", "b"]}, "filter.in: needs [path, [value"),
        ({"exists": ["a"]}, "filter.exists: the path"),
        ({"and": []}, "filter.and: needs a non-empty list"),
        ({"and": [{"eq": ["a", 1]}, {"bad": 1}]}, "filter.and[1]: unknown operator"),
        ({"not": [{"eq": ["a", 1]}]}, "filter.not: each node"),
        ({"eq": ["a", float("nan")]}, "not plain JSON"),
    ],
)
def test_invalid_filters_say_where(predicate: Any, where: str) -> None:
    """A bad filter is refused with a message naming the place in it."""
    with pytest.raises(InvalidPayloadFilter) as info:
        check_filter(predicate)
    assert where in str(info.value)


def test_limits_on_size_and_depth() -> None:
    """Too deep, too many operators or too large are refused."""
    deep: dict[str, Any] = {"exists": "a"}
    for _ in range(9):
        deep = {"not": deep}
    with pytest.raises(InvalidPayloadFilter, match="deeper"):
        check_filter(deep)
    wide = {"or": [{"eq": ["a", i]} for i in range(70)]}
    with pytest.raises(InvalidPayloadFilter, match="operators"):
        check_filter(wide)
    big = {"eq": ["a", "x" * 5000]}
    with pytest.raises(InvalidPayloadFilter, match="bytes"):
        check_filter(big)
