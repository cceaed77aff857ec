"""Turns pydantic validation errors into one readable message naming where and which field."""

from __future__ import annotations

from collections.abc import Callable

from pydantic import ValidationError

Location = tuple[int | str, ...]


def describe(error: ValidationError, where: Callable[[Location], str]) -> str:
    """One line per problem: `<where>: <field.path>: <message>`."""
    lines = []
    for item in error.errors():
        loc = tuple(item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(problem(where(loc), loc, message))
    return "\n".join(lines)


def problem(where: str, loc: Location, message: str) -> str:
    """`<where>: <field.path>: <message>`: the one shape of an error about a field."""
    return f"{where}: {'.'.join(str(part) for part in loc) or '(top level)'}: {message}"
