"""What every part of the spec shares: the strict, immutable model base and the name rule."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

NAME = r"^[A-Za-z][A-Za-z0-9_-]{0,63}$"
NAME_RE = re.compile(NAME)


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
