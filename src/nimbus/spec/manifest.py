"""nimbus.yaml -> AppSpec, with errors that name the file, line and field."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from nimbus.errors import SpecError
from nimbus.spec.errors import Location, describe, problem
from nimbus.spec.model import AppSpec

MERGE_TAG = "tag:yaml.org,2002:merge"
EXTENSION_PREFIX = "x-"
MAX_VALUES = 100_000  # no app needs more; an alias bomb would need billions

Check = Callable[[AppSpec], list[tuple[Location, str]]]
"""Looks further at a valid spec; returns each problem's field and message."""


def load_manifest(path: Path, check: Check | None = None) -> AppSpec:
    """Read and validate a manifest, then `check` it; any problem raises SpecError naming its
    line and field, and nothing is returned."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: cannot read: {error}") from None
    data, lines = _parse(path, text)
    if not isinstance(data, dict):
        raise SpecError(f"{path}:1: the manifest must be a mapping with 'name' and 'functions'")
    for key in [k for k in data if isinstance(k, str) and k.startswith(EXTENSION_PREFIX)]:
        del data[key]  # extension fields hold shared settings for anchors, as in docker compose
    sections = (
        "functions", "queues", "topics", "streams", "tables", "buckets", "websockets", "mqtt",
    )  # fmt: skip
    for section in sections:
        declared = data.get(section)
        if isinstance(declared, dict):
            for name, entry in declared.items():
                if entry is None and section != "functions":
                    declared[name] = {"name": name}  # `orders:` alone declares a default queue
                elif isinstance(entry, dict):
                    entry.setdefault("name", name)
    data.setdefault("root", str(path.parent.resolve()))
    try:
        spec = AppSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(describe(error, lambda loc: f"{path}:{_line_of(loc, lines)}")) from None
    problems = check(spec) if check is not None else []
    if problems:
        raise SpecError(
            "\n".join(problem(f"{path}:{_line_of(at, lines)}", at, why) for at, why in problems)
        )
    return spec


def _parse(path: Path, text: str) -> tuple[Any, dict[Location, int]]:
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        builder = _Builder(loader)
        return (builder.build(node, ()) if node is not None else None), builder.lines
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise SpecError(f"{path}:{line}: invalid YAML: {error.problem or error}") from None
    except yaml.YAMLError as error:
        raise SpecError(f"{path}: invalid YAML: {error}") from None
    except SpecError as error:
        raise SpecError(f"{path}:{error.message}") from None
    finally:
        loader.dispose()


class _Builder:
    """Builds plain data from YAML nodes, noting the line of every key and item. Aliases are
    followed, but not into themselves, and not past MAX_VALUES (a "billion laughs" file)."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self.loader = loader
        self.lines: dict[Location, int] = {}
        self._values = 0
        self._open: set[int] = set()  # nodes being built: meeting one again is a cycle

    def build(self, node: yaml.Node, at: Location, lines: dict[Location, int] | None = None) -> Any:
        lines = self.lines if lines is None else lines
        lines.setdefault(at, node.start_mark.line + 1)
        self._values += 1
        if self._values > MAX_VALUES:
            raise SpecError(f"{node.start_mark.line + 1}: the manifest expands to too many values")
        if id(node) in self._open:
            raise SpecError(f"{node.start_mark.line + 1}: an alias refers to itself")
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self._open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, at, lines)
                return [self.build(item, (*at, i), lines) for i, item in enumerate(node.value)]
            finally:
                self._open.discard(id(node))
        return self.loader.construct_object(node, deep=True)

    def _mapping(
        self, node: yaml.MappingNode, at: Location, lines: dict[Location, int]
    ) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merged: list[yaml.Node] = []
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if key_node.tag == MERGE_TAG:
                is_list = isinstance(value_node, yaml.SequenceNode)
                merged.extend(value_node.value if is_list else [value_node])
                continue
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str | int):
                raise SpecError(f"{line}: keys must be strings")
            if key in result:
                raise SpecError(f"{line}: duplicate key {key!r}")
            lines[(*at, key)] = line
            result[key] = self.build(value_node, (*at, key), lines)
        for source in merged:
            self._merge(source, at, result, lines)
        return result

    def _merge(
        self, source: yaml.Node, at: Location, result: dict[Any, Any], lines: dict[Location, int]
    ) -> None:
        """`<<: *defaults`: keys of the merged mapping that the mapping does not set itself."""
        merged_lines: dict[Location, int] = {}
        values = self.build(source, at, merged_lines)
        if not isinstance(values, dict):
            raise SpecError(f"{source.start_mark.line + 1}: only mappings can be merged")
        for key, value in values.items():
            if key not in result:
                result[key] = value
                for where, line in merged_lines.items():
                    if where[: len(at) + 1] == (*at, key):
                        lines.setdefault(where, line)


def _line_of(loc: Location, lines: dict[Location, int]) -> int:
    """The line of the deepest part of `loc` present in the file (pydantic adds union tags)."""
    found: Location = ()
    for part in loc:
        if (*found, part) in lines:
            found = (*found, part)
    return lines.get(found, 1)
