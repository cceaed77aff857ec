"""The request a handler receives from the HTTP gateway, and the response it may return."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import parse_qs

import msgspec

from nimbus.errors import BadRequest
from nimbus.json_input import decode_json


class Headers(Mapping[str, str]):
    """Case-insensitive, read-only request headers; repeated headers joined with ', '."""

    def __init__(self, pairs: Iterable[tuple[bytes | str, bytes | str]]) -> None:
        merged: dict[str, str] = {}
        for raw_name, raw_value in pairs:
            key = _text(raw_name).lower()
            value = _text(raw_value)
            merged[key] = f"{merged[key]}, {value}" if key in merged else value
        self._items = merged

    def __getitem__(self, name: str) -> str:
        return self._items[name.lower()]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class Request:
    """An HTTP request as a handler sees it."""

    def __init__(
        self,
        method: str,
        path: str,
        params: dict[str, str],
        query_string: bytes | str,
        headers: Iterable[tuple[bytes | str, bytes | str]],
        body: bytes,
    ) -> None:
        self.method = method
        self.path = path
        self.params = params
        self.query_string = _text(query_string)
        self.headers = Headers(headers)
        self.body = body

    @cached_property
    def query(self) -> dict[str, str]:
        """Query parameters, the last value of each."""
        return {name: values[-1] for name, values in self.query_all.items()}

    @cached_property
    def query_all(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The body decoded as JSON; a malformed body answers 400 without failing the handler."""
        if not self.body:
            raise BadRequest("the request body is empty; JSON was expected")
        try:
            return decode_json(self.body)
        except msgspec.DecodeError as error:
            raise BadRequest(f"the request body is not valid JSON: {error}") from None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


def _text(value: bytes | str) -> str:
    """HTTP header bytes as text (ISO-8859-1, as the HTTP spec has it)."""
    return value.decode("latin-1") if isinstance(value, bytes) else value


@dataclass
class Response:
    """An explicit response: status, headers and a body (bytes, str, or JSON-able data)."""

    body: Any = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
