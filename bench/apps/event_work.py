"""The per-message work of the queue benchmark, shared by the nimbus handlers and the Celery
task so that both sides do exactly the same thing. It imports neither nimbus nor Celery."""

from __future__ import annotations

import msgspec

_decode = msgspec.json.Decoder(dict[str, int])


def body(number: int) -> str:
    """The body of message `number` (JSON text, as a user would queue a small record)."""
    return f'{{"n":{number}}}'


def work(text: str) -> int:
    """Process one message: parse its JSON body and read a field."""
    return _decode.decode(text)["n"]
