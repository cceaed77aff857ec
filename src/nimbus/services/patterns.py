"""Content patterns with EventBridge semantics: which events a subscription receives.

A pattern is a JSON object shaped like the events it selects. Each field either holds a nested
object (matched against the event's object at that key) or a list of alternatives; an event
matches when every field of the pattern matches (AND) and, at each leaf, at least one
alternative matches (OR). An alternative is an exact value (string, number, boolean or null;
numbers compare by value, so 5 matches 5.0) or one operator object:

    {"prefix": "us-"}                {"prefix": {"equals-ignore-case": "us-"}}
    {"suffix": ".png"}               {"suffix": {"equals-ignore-case": ".PNG"}}
    {"equals-ignore-case": "alice"}  {"wildcard": "dir/*.png"}   (`\\*` is a literal star)
    {"numeric": [">", 0, "<=", 5]}   {"numeric": ["=", 3.5]}
    {"exists": true}                 {"exists": false}
    {"cidr": "10.0.0.0/24"}
    {"anything-but": "x" | 5 | ["x", "y"] | [1, 2] | {"prefix": ...} | {"suffix": ...}
                     | {"equals-ignore-case": ...} | {"wildcard": ...}}

and `"$or": [pattern, pattern, ...]` in any object matches when one of the patterns does.

Values in the event: a list matches when any of its elements does; a field matches only if
present, except `{"exists": false}`, which matches exactly when the field holds no value (absent,
an empty list, or an object where the pattern expects a value). `anything-but` matches a present
value that its operand does not match. Where the pattern has an object and the event a list of
objects, the pattern matches when one element matches all of its fields.

What nimbus matches a pattern against, for an event published to a topic (see
`nimbus.services.topic.pattern_document`)::

    {"id": "0190…", "source": "orders", "type": "order.created", "subject": "order/42",
     "time": "2026-01-02T03:04:05.678Z", "attributes": {"region": "eu"}, "data": {...}}

`subject` is left out when the event has none; `attributes` are the message attributes (strings)
and `data` the published JSON payload. Compile a pattern once with `compile_pattern` (which
rejects a malformed pattern with `InvalidRequest` naming the bad path), then call
`Pattern.matches` for each event.
"""

from __future__ import annotations

import ipaddress
import math
import operator as op
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from nimbus.errors import InvalidRequest

Test = Callable[[Any], bool]
"""A compiled alternative: does this one present leaf value match?"""

_MISSING: Final = object()
_EMPTY: Final[Mapping[str, Any]] = {}
_COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "=": op.eq,
    "<": op.lt,
    "<=": op.le,
    ">": op.gt,
    ">=": op.ge,
}


class Pattern:
    """A compiled pattern; `matches` is cheap enough to run per event per subscription."""

    __slots__ = ("_root", "source")

    def __init__(self, root: _Object, source: Mapping[str, Any]) -> None:
        self._root = root
        self.source = source

    def matches(self, event: Mapping[str, Any]) -> bool:
        return self._root.match_object(event)

    def __repr__(self) -> str:
        return f"Pattern({self.source!r})"


def compile_pattern(pattern: Mapping[str, Any]) -> Pattern:
    """Validate the whole pattern and compile it; InvalidRequest names the first bad path."""
    if not isinstance(pattern, Mapping):
        raise InvalidRequest(f"an event pattern is a JSON object, not {_kind(pattern)}")
    return Pattern(_compile_object(pattern, "pattern"), pattern)


# The compiled tree: objects hold fields (nested objects or leaves) and `$or` alternatives.


class _Leaf:
    __slots__ = ("_test", "_when_absent")

    def __init__(self, tests: Sequence[Test], when_absent: bool) -> None:
        self._test = tests[0] if len(tests) == 1 else _any_of(tuple(tests))
        self._when_absent = when_absent

    def match(self, value: Any) -> bool:
        if isinstance(value, list):
            values = _flatten(value)
            if not values:
                return self._when_absent
            return any(self._test(item) for item in values)
        if value is _MISSING or isinstance(value, dict):
            return self._when_absent
        return self._test(value)


class _Object:
    __slots__ = ("_alternatives", "_fields")

    def __init__(
        self, fields: tuple[tuple[str, _Leaf | _Object], ...], alternatives: tuple[_Object, ...]
    ) -> None:
        self._fields = fields
        self._alternatives = alternatives

    def match(self, value: Any) -> bool:
        if isinstance(value, dict):
            return self.match_object(value)
        if isinstance(value, list):
            elements = [item for item in _flatten_all(value) if isinstance(item, dict)]
            if elements:
                return any(self.match_object(element) for element in elements)
        return self.match_object(_EMPTY)

    def match_object(self, event: Mapping[str, Any]) -> bool:
        for key, node in self._fields:
            if not node.match(event.get(key, _MISSING)):
                return False
        return not self._alternatives or any(
            alternative.match_object(event) for alternative in self._alternatives
        )


def _flatten_all(values: list[Any]) -> list[Any]:
    flat: list[Any] = []
    for item in values:
        if isinstance(item, list):
            flat.extend(_flatten_all(item))
        else:
            flat.append(item)
    return flat


def _flatten(values: list[Any]) -> list[Any]:
    """The leaf values of an event's list (objects in it are not leaf values)."""
    return [item for item in _flatten_all(values) if not isinstance(item, dict)]


def _any_of(tests: tuple[Test, ...]) -> Test:
    return lambda value: any(test(value) for test in tests)


# Compiling: validation and compilation are one pass, so nothing accepted goes unchecked.


def _compile_object(pattern: Mapping[str, Any], path: str) -> _Object:
    fields: list[tuple[str, _Leaf | _Object]] = []
    alternatives: tuple[_Object, ...] = ()
    for key, value in pattern.items():
        where = f"{path}.{key}"
        if not isinstance(key, str):
            raise InvalidRequest(f"{path}: field names are strings, not {_kind(key)}")
        if key == "$or":
            alternatives = _compile_or(value, where)
        elif key.startswith("$"):
            raise InvalidRequest(f"{where}: unknown operator {key!r} (only '$or' starts with $)")
        elif isinstance(value, Mapping):
            fields.append((key, _compile_object(value, where)))
        elif isinstance(value, list):
            fields.append((key, _compile_leaf(value, where)))
        else:
            raise InvalidRequest(
                f"{where}: expected a list of values or a nested object, not {_kind(value)}"
            )
    return _Object(tuple(fields), alternatives)


def _compile_or(value: Any, path: str) -> tuple[_Object, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"{path}: '$or' takes a non-empty list of patterns")
    compiled = []
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise InvalidRequest(f"{path}[{index}]: each '$or' alternative is an object")
        compiled.append(_compile_object(item, f"{path}[{index}]"))
    return tuple(compiled)


def _compile_leaf(alternatives: list[Any], path: str) -> _Leaf:
    if not alternatives:
        raise InvalidRequest(f"{path}: an empty list of values would match nothing")
    exact: list[Any] = []
    tests: list[Test] = []
    when_absent = False
    for index, item in enumerate(alternatives):
        where = f"{path}[{index}]"
        if isinstance(item, Mapping):
            name, operand = _single_operator(item, where)
            if name == "exists":
                exists = _operand_bool(operand, where)
                when_absent = when_absent or not exists
                if exists:
                    tests.append(_present)
            else:
                tests.append(_compile_operator(name, operand, where))
        else:
            exact.append(_exact_value(item, where))
    if exact:
        tests.insert(0, _exact_test(exact))
    if not tests:
        tests.append(_never)
    return _Leaf(tests, when_absent)


def _single_operator(item: Mapping[str, Any], path: str) -> tuple[str, Any]:
    if len(item) != 1:
        raise InvalidRequest(f"{path}: an operator object has exactly one key, not {len(item)}")
    ((name, operand),) = item.items()
    return str(name), operand


def _compile_operator(name: str, operand: Any, path: str) -> Test:
    compile_one = _OPERATORS.get(name)
    if compile_one is None:
        known = ", ".join(sorted([*_OPERATORS, "exists"]))
        raise InvalidRequest(f"{path}: unknown operator {name!r} (known: {known})")
    return compile_one(operand, f"{path}.{name}")


def _present(value: Any) -> bool:
    return True


def _never(value: Any) -> bool:
    return False


# Exact values: sets per JSON type, so that 1 never matches true and "1" never matches 1.


def _exact_value(value: Any, path: str) -> Any:
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int | float):
        return _finite(value, path)
    raise InvalidRequest(f"{path}: expected a string, number, boolean, null or an operator object")


def _exact_test(values: list[Any]) -> Test:
    strings = frozenset(v for v in values if isinstance(v, str))
    booleans = frozenset(v for v in values if isinstance(v, bool))
    numbers = frozenset(v for v in values if _is_number(v))
    null = any(v is None for v in values)

    def test(value: Any) -> bool:
        if isinstance(value, str):
            return value in strings
        if isinstance(value, bool):
            return value in booleans
        if isinstance(value, int | float):
            return value in numbers
        return value is None and null

    return test


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _finite(value: Any, path: str) -> float | int:
    if not _is_number(value) or not math.isfinite(value):
        raise InvalidRequest(f"{path}: expected a finite number, not {_kind(value)}")
    number: float | int = value
    return number


# String operators.


def _operand_string(operand: Any, path: str) -> str:
    if not isinstance(operand, str):
        raise InvalidRequest(f"{path}: expected a string, not {_kind(operand)}")
    return operand


def _operand_bool(operand: Any, path: str) -> bool:
    if not isinstance(operand, bool):
        raise InvalidRequest(f"{path}: expected true or false, not {_kind(operand)}")
    return operand


def _ignoring_case(operand: Any, path: str) -> str | None:
    """The text of `{"equals-ignore-case": text}` (casefolded), or None for a plain string."""
    if isinstance(operand, Mapping):
        name, text = _single_operator(operand, path)
        if name != "equals-ignore-case":
            raise InvalidRequest(
                f"{path}: only 'equals-ignore-case' may qualify this operator, not {name!r}"
            )
        return _operand_string(text, f"{path}.{name}").casefold()
    return None


def _compile_prefix(operand: Any, path: str) -> Test:
    folded = _ignoring_case(operand, path)
    if folded is not None:
        return lambda value: isinstance(value, str) and value.casefold().startswith(folded)
    prefix = _operand_string(operand, path)
    return lambda value: isinstance(value, str) and value.startswith(prefix)


def _compile_suffix(operand: Any, path: str) -> Test:
    folded = _ignoring_case(operand, path)
    if folded is not None:
        return lambda value: isinstance(value, str) and value.casefold().endswith(folded)
    suffix = _operand_string(operand, path)
    return lambda value: isinstance(value, str) and value.endswith(suffix)


def _compile_equals_ignore_case(operand: Any, path: str) -> Test:
    folded = frozenset(text.casefold() for text in _strings(operand, path))
    return lambda value: isinstance(value, str) and value.casefold() in folded


def _compile_wildcard(operand: Any, path: str) -> Test:
    globs = [_wildcard_segments(text, path) for text in _strings(operand, path)]
    return lambda value: isinstance(value, str) and any(_globbed(glob, value) for glob in globs)


def _strings(operand: Any, path: str) -> list[str]:
    """One string, or (inside anything-but) a non-empty list of strings."""
    if isinstance(operand, list):
        if not operand:
            raise InvalidRequest(f"{path}: expected a non-empty list of strings")
        return [_operand_string(item, f"{path}[{i}]") for i, item in enumerate(operand)]
    return [_operand_string(operand, path)]


def _wildcard_segments(text: str, path: str) -> tuple[str, ...]:
    """The literal text between the stars: `*` matches any run of characters; `\\*` and
    `\\\\` are a literal star and backslash."""
    segments: list[str] = []
    current: list[str] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\":
            escaped = text[index + 1 : index + 2]
            if escaped not in ("*", "\\"):
                raise InvalidRequest(f"{path}: '\\' escapes only '*' or '\\' in {text!r}")
            current.append(escaped)
            index += 2
            continue
        if char == "*":
            if text[index + 1 : index + 2] == "*":
                raise InvalidRequest(f"{path}: consecutive '*' in {text!r}")
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
        index += 1
    segments.append("".join(current))
    return tuple(segments)


def _globbed(segments: tuple[str, ...], value: str) -> bool:
    """Whether `value` is the segments with any text between them: the first a prefix, the
    last a suffix, each middle one found leftmost after the previous. Linear in the value, where
    a backtracking regex of many stars would take exponential time on the event loop."""
    if len(segments) == 1:
        return value == segments[0]
    first, *middle, last = segments
    end = len(value) - len(last)
    if end < len(first) or not value.startswith(first) or not value.endswith(last):
        return False
    position = len(first)
    for segment in middle:
        found = value.find(segment, position, end)
        if found < 0:
            return False
        position = found + len(segment)
    return True


# Numeric ranges and CIDR blocks.


def _compile_numeric(operand: Any, path: str) -> Test:
    if not isinstance(operand, list) or len(operand) not in (2, 4):
        raise InvalidRequest(
            f'{path}: expected [op, number] or [op, number, op, number], e.g. [">", 0, "<=", 5]'
        )
    bounds = [
        (
            _comparison(operand[i], f"{path}[{i}]"),
            float(_finite(operand[i + 1], f"{path}[{i + 1}]")),
        )
        for i in range(0, len(operand), 2)
    ]
    if len(bounds) == 1 and bounds[0][0] == "=":
        target = bounds[0][1]
        return lambda value: _is_number(value) and value == target
    _check_range(bounds, path)
    checks = [(_COMPARISONS[op], number) for op, number in bounds]
    return lambda value: (
        _is_number(value) and all(compare(value, number) for compare, number in checks)
    )


def _comparison(op: Any, path: str) -> str:
    if op not in _COMPARISONS:
        raise InvalidRequest(f"{path}: expected one of '=', '<', '<=', '>', '>=', not {op!r}")
    return str(op)


def _check_range(bounds: list[tuple[str, float]], path: str) -> None:
    """Two comparisons are one lower and one upper bound that leave some numbers in between."""
    if len(bounds) == 1:
        return
    lower = [bound for bound in bounds if bound[0] in (">", ">=")]
    upper = [bound for bound in bounds if bound[0] in ("<", "<=")]
    if len(lower) != 1 or len(upper) != 1:
        raise InvalidRequest(
            f"{path}: a range is one lower ('>', '>=') and one upper bound ('<', '<=')"
        )
    (low_op, low), (high_op, high) = lower[0], upper[0]
    if low > high or (low == high and (low_op, high_op) != (">=", "<=")):
        raise InvalidRequest(f"{path}: the range {low_op} {low} and {high_op} {high} is empty")


def _compile_cidr(operand: Any, path: str) -> Test:
    text = _operand_string(operand, path)
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError as error:
        raise InvalidRequest(f"{path}: {text!r} is not a CIDR block ({error})") from None

    def test(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        try:
            return ipaddress.ip_address(value) in network
        except ValueError:
            return False

    return test


# anything-but: a present value that its operand does not match.


def _compile_anything_but(operand: Any, path: str) -> Test:
    if isinstance(operand, Mapping):
        name, inner = _single_operator(operand, path)
        compile_inner = _ANYTHING_BUT_OPERATORS.get(name)
        if compile_inner is None:
            known = ", ".join(sorted(_ANYTHING_BUT_OPERATORS))
            raise InvalidRequest(
                f"{path}: anything-but takes a value, a list or one of {known}; not {name!r}"
            )
        excluded = compile_inner(inner, f"{path}.{name}")
    else:
        excluded = _exact_test(_anything_but_values(operand, path))
    return lambda value: not excluded(value)


def _anything_but_values(operand: Any, path: str) -> list[Any]:
    values = operand if isinstance(operand, list) else [operand]
    if not values:
        raise InvalidRequest(f"{path}: expected a value or a non-empty list of values")
    if all(isinstance(value, str) for value in values):
        return values
    if all(_is_number(value) for value in values):
        return [_finite(value, path) for value in values]
    raise InvalidRequest(f"{path}: expected strings only or numbers only, not {operand!r}")


Compiler = Callable[[Any, str], Test]

_ANYTHING_BUT_OPERATORS: dict[str, Compiler] = {
    "prefix": lambda operand, path: _compile_prefix(_operand_string(operand, path), path),
    "suffix": lambda operand, path: _compile_suffix(_operand_string(operand, path), path),
    "equals-ignore-case": _compile_equals_ignore_case,
    "wildcard": _compile_wildcard,
}

_OPERATORS: dict[str, Compiler] = {
    "prefix": _compile_prefix,
    "suffix": _compile_suffix,
    "equals-ignore-case": lambda operand, path: _compile_equals_ignore_case(
        _operand_string(operand, path), path
    ),
    "wildcard": lambda operand, path: _compile_wildcard(_operand_string(operand, path), path),
    "numeric": _compile_numeric,
    "cidr": _compile_cidr,
    "anything-but": _compile_anything_but,
}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), f"{type(value).__name__} {value!r}")
