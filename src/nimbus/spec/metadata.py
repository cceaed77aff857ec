"""Who owns a function or resource, and its tags: metadata for people and automation.

Tags follow AWS's rules (a key of 1-128 characters, a value of 0-256, at most 50 per resource,
letters, digits, spaces and `_ . : / = + - @`); keys starting with `nimbus:` are reserved for
the platform, as `aws:` is on AWS.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_TAGS = 50
TAG_KEY = re.compile(r"[\w .:/=+\-@]{1,128}")
TAG_VALUE = re.compile(r"[\w .:/=+\-@]{0,256}")
RESERVED_TAG_PREFIX = "nimbus:"


def check_tags(tags: dict[str, str]) -> dict[str, str]:
    """The tags unchanged, or ValueError naming the first that breaks a rule."""
    if len(tags) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags, not {len(tags)}")
    for key, value in tags.items():
        if not TAG_KEY.fullmatch(key):
            raise ValueError(
                f"tag key {key!r} is not 1-128 letters, digits, spaces or _ . : / = + - @"
            )
        if key.lower().startswith(RESERVED_TAG_PREFIX):
            raise ValueError(f"tag key {key!r}: the prefix {RESERVED_TAG_PREFIX!r} is reserved")
        if not isinstance(value, str) or not TAG_VALUE.fullmatch(value):
            raise ValueError(
                f"the value of tag {key!r} is not 0-256 letters, digits, spaces or _ . : / = + - @"
            )
    return tags


Tags = Annotated[dict[str, str], AfterValidator(check_tags)]
Owner = Annotated[
    str | None,
    Field(min_length=1, max_length=256, description="who to tell about it: a team, an address"),
]
