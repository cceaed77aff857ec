"""Key ranges the embedded backends share: SQLite compares text by its UTF-8 bytes, which is
code point order, so a prefix is a range of keys with an exclusive upper bound."""

from __future__ import annotations


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string that starts with `prefix` (None: there is
    none), so that a range over a prefix (or skipping all of it) is one index seek."""
    for index in range(len(prefix) - 1, -1, -1):
        point = ord(prefix[index]) + 1
        if point <= 0x10FFFF:
            return prefix[:index] + chr(0xE000 if 0xD800 <= point <= 0xDFFF else point)
    return None
