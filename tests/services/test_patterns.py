"""EventBridge-style content patterns: each operator, malformed patterns, and properties."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nimbus.errors import InvalidRequest
from nimbus.services.patterns import compile_pattern


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    return compile_pattern(pattern).matches(event)


ORDER = {
    "source": "shop",
    "type": "order.created",
    "attributes": {"region": "eu-west-1"},
    "data": {
        "id": 42,
        "total": 99.5,
        "paid": True,
        "coupon": None,
        "customer": {"name": "Alice", "email": "alice@example.com"},
        "tags": ["gift", "express"],
        "items": [{"sku": "A1", "qty": 1}, {"sku": "B2", "qty": 3}],
        "file": "photos/2024/cat.PNG",
        "ip": "10.0.0.7",
        "empty": [],
        "blank": "",
    },
}


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ({}, True),
        ({"source": ["shop"]}, True),
        ({"source": ["other"]}, False),
        ({"source": ["other", "shop"]}, True),
        ({"source": ["shop"], "type": ["order.deleted"]}, False),
        ({"data": {"customer": {"name": ["Alice"]}}}, True),
        ({"data": {"customer": {"name": ["alice"]}}}, False),
        ({"data": {"blank": [""]}}, True),
        ({"data": {"missing": ["x"]}}, False),
    ],
)
def test_exact_strings_nested_fields_and_or_of_values(
    pattern: dict[str, Any], expected: bool
) -> None:
    assert matches(pattern, ORDER) is expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([42], True),
        ([42.0], True),
        (["42"], False),
        ([41, 43], False),
    ],
)
def test_exact_numbers_compare_by_value_and_not_as_strings(
    values: list[Any], expected: bool
) -> None:
    assert matches({"data": {"id": values}}, ORDER) is expected


def test_booleans_and_null_match_only_themselves() -> None:
    assert matches({"data": {"paid": [True]}}, ORDER)
    assert not matches({"data": {"paid": [1]}}, ORDER)
    assert not matches({"data": {"paid": ["true"]}}, ORDER)
    assert matches({"data": {"coupon": [None]}}, ORDER)
    assert not matches({"data": {"coupon": [False]}}, ORDER)
    assert not matches({"data": {"id": [True]}}, {"data": {"id": 1}})


def test_an_array_in_the_event_matches_when_any_element_does() -> None:
    assert matches({"data": {"tags": ["express"]}}, ORDER)
    assert not matches({"data": {"tags": ["slow"]}}, ORDER)
    assert matches({"data": {"items": {"sku": ["B2"]}}}, ORDER)


def test_fields_of_one_object_in_an_array_must_match_the_same_element() -> None:
    assert matches({"data": {"items": {"sku": ["B2"], "qty": [3]}}}, ORDER)
    assert not matches({"data": {"items": {"sku": ["B2"], "qty": [1]}}}, ORDER)


def test_prefix_and_suffix_match_strings_optionally_ignoring_case() -> None:
    assert matches({"attributes": {"region": [{"prefix": "eu-"}]}}, ORDER)
    assert not matches({"attributes": {"region": [{"prefix": "us-"}]}}, ORDER)
    assert not matches({"attributes": {"region": [{"prefix": "EU-"}]}}, ORDER)
    assert matches({"attributes": {"region": [{"prefix": {"equals-ignore-case": "EU-"}}]}}, ORDER)
    assert matches({"data": {"file": [{"suffix": ".PNG"}]}}, ORDER)
    assert not matches({"data": {"file": [{"suffix": ".png"}]}}, ORDER)
    assert matches({"data": {"file": [{"suffix": {"equals-ignore-case": ".png"}}]}}, ORDER)
    assert not matches({"data": {"id": [{"prefix": "4"}]}}, ORDER)


def test_equals_ignore_case() -> None:
    assert matches({"data": {"customer": {"name": [{"equals-ignore-case": "ALICE"}]}}}, ORDER)
    assert not matches({"data": {"customer": {"name": [{"equals-ignore-case": "bob"}]}}}, ORDER)


def test_wildcard_with_escapes() -> None:
    assert matches({"data": {"file": [{"wildcard": "photos/*/cat.*"}]}}, ORDER)
    assert matches({"data": {"file": [{"wildcard": "*"}]}}, ORDER)
    assert not matches({"data": {"file": [{"wildcard": "photos/*.jpg"}]}}, ORDER)
    assert matches({"name": [{"wildcard": "a\\*b"}]}, {"name": "a*b"})
    assert not matches({"name": [{"wildcard": "a\\*b"}]}, {"name": "axb"})
    assert matches({"name": [{"wildcard": "a\\\\b"}]}, {"name": "a\\b"})
    assert matches({"name": [{"wildcard": "a.c"}]}, {"name": "a.c"})
    assert not matches({"name": [{"wildcard": "a.c"}]}, {"name": "abc"})


def test_a_wildcard_of_many_stars_is_matched_without_backtracking() -> None:
    """Matching runs on the controller's event loop for every event and subscription: a
    backtracking regex took exponential time here (minutes for 60 characters)."""
    pattern = {"name": [{"wildcard": "*a*a*a*a*a*a*a*a*a*a*b"}]}
    assert not matches(pattern, {"name": "a" * 5000})
    assert matches(pattern, {"name": "a" * 5000 + "b"})


@given(
    st.text(alphabet="ab*", max_size=8).filter(lambda text: "**" not in text),
    st.text(alphabet="ab", max_size=10),
)
def test_a_wildcard_matches_as_the_equivalent_regular_expression(glob: str, value: str) -> None:
    expression = ".*".join(re.escape(part) for part in glob.split("*"))
    expected = re.fullmatch(expression, value, re.DOTALL) is not None
    assert matches({"name": [{"wildcard": glob}]}, {"name": value}) == expected
    anything_but = {"name": [{"anything-but": {"wildcard": [glob, "zz"]}}]}
    assert matches(anything_but, {"name": value}) == (not expected)


@pytest.mark.parametrize(
    ("numeric", "expected"),
    [
        ([">", 0, "<=", 100], True),
        (["<=", 100, ">", 0], True),
        ([">", 99.5], False),
        ([">=", 99.5], True),
        (["<", 99.5], False),
        (["=", 99.5], True),
        (["=", 99], False),
        ([">", 100, "<", 200], False),
    ],
)
def test_numeric_ranges(numeric: list[Any], expected: bool) -> None:
    assert matches({"data": {"total": [{"numeric": numeric}]}}, ORDER) is expected


def test_numeric_never_matches_strings_or_booleans() -> None:
    assert not matches({"v": [{"numeric": [">", 0]}]}, {"v": "5"})
    assert not matches({"v": [{"numeric": [">", 0]}]}, {"v": True})


def test_exists() -> None:
    assert matches({"data": {"coupon": [{"exists": True}]}}, ORDER)
    assert not matches({"data": {"missing": [{"exists": True}]}}, ORDER)
    assert matches({"data": {"missing": [{"exists": False}]}}, ORDER)
    assert not matches({"data": {"id": [{"exists": False}]}}, ORDER)
    assert matches({"data": {"empty": [{"exists": False}]}}, ORDER)
    assert matches({"nothing": {"here": [{"exists": False}]}}, ORDER)
    assert not matches({"data": {"customer": [{"exists": True}]}}, ORDER), "not a leaf"


def test_anything_but() -> None:
    assert matches({"source": [{"anything-but": "billing"}]}, ORDER)
    assert not matches({"source": [{"anything-but": "shop"}]}, ORDER)
    assert not matches({"source": [{"anything-but": ["billing", "shop"]}]}, ORDER)
    assert not matches({"data": {"id": [{"anything-but": [41, 42]}]}}, ORDER)
    assert matches({"data": {"id": [{"anything-but": 7}]}}, ORDER)
    assert not matches({"data": {"missing": [{"anything-but": "x"}]}}, ORDER), "absent"
    assert matches({"data": {"tags": [{"anything-but": "gift"}]}}, ORDER), "express is not gift"


def test_anything_but_with_string_operators() -> None:
    region = {"attributes": {"region": [{"anything-but": {"prefix": "us-"}}]}}
    assert matches(region, ORDER)
    assert not matches({"attributes": {"region": [{"anything-but": {"prefix": "eu-"}}]}}, ORDER)
    assert not matches({"data": {"file": [{"anything-but": {"suffix": ".PNG"}}]}}, ORDER)
    name = {"data": {"customer": {"name": [{"anything-but": {"equals-ignore-case": ["ALICE"]}}]}}}
    assert not matches(name, ORDER)
    lib = {"path": [{"anything-but": {"wildcard": "*/lib/*"}}]}
    assert matches(lib, {"path": "/usr/bin/x"})
    assert not matches(lib, {"path": "/usr/lib/x"})


def test_cidr() -> None:
    assert matches({"data": {"ip": [{"cidr": "10.0.0.0/24"}]}}, ORDER)
    assert not matches({"data": {"ip": [{"cidr": "10.0.1.0/24"}]}}, ORDER)
    assert matches({"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db8::1"})
    assert not matches({"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "not an address"})


def test_or_of_patterns_combines_with_the_other_fields() -> None:
    pattern = {
        "source": ["shop"],
        "$or": [{"data": {"total": [{"numeric": [">", 1000]}]}}, {"data": {"paid": [True]}}],
    }
    assert matches(pattern, ORDER)
    assert not matches({**pattern, "source": ["other"]}, ORDER)
    assert not matches(pattern, {**ORDER, "data": {"total": 5, "paid": False}})


def test_alternatives_of_different_kinds_in_one_list() -> None:
    pattern = {"data": {"coupon": [{"prefix": "X"}, {"exists": False}, None]}}
    assert matches(pattern, ORDER)
    assert matches(pattern, {"data": {}})
    assert matches(pattern, {"data": {"coupon": "XMAS"}})
    assert not matches(pattern, {"data": {"coupon": "SPRING"}})


def test_the_compiled_pattern_keeps_its_source() -> None:
    source = {"source": ["shop"]}
    assert compile_pattern(source).source == source
    assert "shop" in repr(compile_pattern(source))


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ({"source": "shop"}, "pattern.source: expected a list of values"),
        ({"source": []}, "pattern.source: an empty list"),
        ({"data": {"x": [[1]]}}, "pattern.data.x[0]: expected a string, number"),
        ({"x": [{"prefx": "a"}]}, "pattern.x[0]: unknown operator 'prefx'"),
        ({"x": [{"prefix": "a", "suffix": "b"}]}, "exactly one key"),
        ({"x": [{"prefix": 1}]}, "pattern.x[0].prefix: expected a string"),
        ({"x": [{"prefix": {"wildcard": "a"}}]}, "only 'equals-ignore-case'"),
        ({"x": [{"exists": "yes"}]}, "pattern.x[0]: expected true or false"),
        ({"x": [{"numeric": [">"]}]}, "pattern.x[0].numeric: expected [op, number]"),
        ({"x": [{"numeric": ["~", 1]}]}, "pattern.x[0].numeric[0]: expected one of"),
        ({"x": [{"numeric": [">", "1"]}]}, "pattern.x[0].numeric[1]: expected a finite"),
        ({"x": [{"numeric": [">", float("nan")]}]}, "expected a finite number"),
        ({"x": [{"numeric": [">", 1, ">", 2]}]}, "one lower"),
        ({"x": [{"numeric": ["=", 1, "<", 2]}]}, "one lower"),
        ({"x": [{"numeric": [">", 5, "<", 5]}]}, "is empty"),
        ({"x": [{"anything-but": []}]}, "non-empty list"),
        ({"x": [{"anything-but": ["a", 1]}]}, "strings only or numbers only"),
        ({"x": [{"anything-but": None}]}, "strings only or numbers only"),
        ({"x": [{"anything-but": {"numeric": [">", 1]}}]}, "anything-but takes"),
        ({"x": [{"wildcard": "a**b"}]}, "consecutive '*'"),
        ({"x": [{"wildcard": "a\\b"}]}, "escapes only"),
        ({"x": [{"cidr": "10.0.0.300/8"}]}, "is not a CIDR block"),
        ({"$and": [{"x": ["a"]}]}, "unknown operator '$and'"),
        ({"$or": []}, "non-empty list of patterns"),
        ({"$or": ["x"]}, "pattern.$or[0]: each '$or' alternative"),
        ({"a": {"b": {"c": [{"exists": 1}]}}}, "pattern.a.b.c[0]"),
        ({1: ["x"]}, "field names are strings"),
    ],
)
def test_malformed_patterns_are_rejected_naming_the_path(pattern: Any, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message.replace("[", r"\[").replace("$", r"\$")):
        compile_pattern(pattern)


def test_a_pattern_is_an_object() -> None:
    with pytest.raises(InvalidRequest, match="JSON object"):
        compile_pattern(["source"])  # type: ignore[arg-type]


# Properties.

scalars = st.one_of(
    st.text(max_size=8),
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.none(),
)
keys = st.text(min_size=1, max_size=6).filter(lambda key: not key.startswith("$"))
events = st.recursive(
    st.dictionaries(keys, st.one_of(scalars, st.lists(scalars, max_size=4)), max_size=5),
    lambda children: st.dictionaries(keys, children, max_size=4),
    max_leaves=20,
)


def leaf_paths(event: dict[str, Any]) -> list[tuple[list[str], Any]]:
    """Every path to a scalar or a list of scalars, with its value."""
    paths: list[tuple[list[str], Any]] = []
    for key, value in event.items():
        if isinstance(value, dict):
            paths.extend(([key, *path], leaf) for path, leaf in leaf_paths(value))
        else:
            paths.append(([key], value))
    return paths


def pattern_at(path: list[str], alternatives: list[Any]) -> dict[str, Any]:
    pattern: dict[str, Any] = {path[-1]: alternatives}
    for key in reversed(path[:-1]):
        pattern = {key: pattern}
    return pattern


def merge(into: dict[str, Any], pattern: dict[str, Any]) -> None:
    for key, value in pattern.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


@given(events, st.data())
def test_exact_values_taken_from_an_event_always_match_it(
    event: dict[str, Any], data: st.DataObject
) -> None:
    pattern: dict[str, Any] = {}
    for path, value in leaf_paths(event):
        if value == []:
            continue
        # A list in the event matches when one of its elements does.
        chosen = data.draw(st.sampled_from(value)) if isinstance(value, list) else value
        if data.draw(st.booleans()):
            merge(pattern, pattern_at(path, [chosen]))
    assert compile_pattern(pattern).matches(event)


@given(events, st.data())
def test_anything_but_a_value_never_matches_that_value(
    event: dict[str, Any], data: st.DataObject
) -> None:
    candidates = [
        (path, value)
        for path, value in leaf_paths(event)
        if isinstance(value, str) or (type(value) in (int, float))
    ]
    if not candidates:
        return
    path, value = data.draw(st.sampled_from(candidates))
    assert not compile_pattern(pattern_at(path, [{"anything-but": value}])).matches(event)
    assert compile_pattern(pattern_at(path, [{"exists": True}])).matches(event)
    assert not compile_pattern(pattern_at(path, [{"exists": False}])).matches(event)


@given(st.text(max_size=10), st.text(max_size=10))
def test_a_prefix_and_a_suffix_of_a_string_match_it(head: str, tail: str) -> None:
    event = {"s": head + tail}
    assert matches({"s": [{"prefix": head}]}, event)
    assert matches({"s": [{"suffix": tail}]}, event)
    assert matches({"s": [{"wildcard": "*"}]}, event)


@given(st.floats(allow_nan=False, allow_infinity=False), st.floats(0, 1e6))
def test_a_closed_range_around_a_number_matches_it(number: float, width: float) -> None:
    pattern = {"n": [{"numeric": [">=", number - width, "<=", number + width]}]}
    assert matches(pattern, {"n": number})


json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(max_size=12), json_values, max_size=4), events)
def test_any_json_object_compiles_or_is_rejected_cleanly(
    pattern: dict[str, Any], event: dict[str, Any]
) -> None:
    try:
        compiled = compile_pattern(pattern)
    except InvalidRequest:
        return
    assert compiled.matches(event) in (True, False)
