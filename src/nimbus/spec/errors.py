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
        field = ".".join(str(part) for part in loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        lines.append(f"{where(loc)}: {field}: {message}")
    return "\n".join(lines)
