"""Decoding JSON that comes from outside (request bodies, messages, operations, arguments).

msgspec decodes nested arrays and objects recursively, so a body of 100 000 `[` raises
RecursionError, which no `except msgspec.DecodeError` catches: a 400 became a 502 or a 500.
`decode_json` makes too deep a document malformed JSON like any other.
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

import msgspec

T = TypeVar("T")

TOO_DEEP = "JSON is nested too deeply"
_ANY: msgspec.json.Decoder[Any] = msgspec.json.Decoder()


@overload
def decode_json(raw: bytes | str) -> Any: ...
@overload
def decode_json(raw: bytes | str, decoder: msgspec.json.Decoder[T]) -> T: ...


def decode_json(raw: bytes | str, decoder: msgspec.json.Decoder[Any] = _ANY) -> Any:
    """`decoder.decode(raw)`; input nested deeper than the interpreter's recursion limit raises
    msgspec.DecodeError (TOO_DEEP), as malformed input does, instead of RecursionError."""
    try:
        return decoder.decode(raw)
    except RecursionError:
        raise msgspec.DecodeError(TOO_DEEP) from None
