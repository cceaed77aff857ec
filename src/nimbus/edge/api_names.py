"""Names in the platform API that its server (edge/) and its clients (nimbus.client) share."""

from __future__ import annotations

from nimbus.spec.paths import RESERVED_PREFIX

API_PREFIX = RESERVED_PREFIX
"""Where the platform API answers (no app route may use it)."""
OBJECT_INFO = "x-nimbus-object"
"""Response header of an object get: its ObjectInfo as JSON (metadata included, exact times)."""
METADATA = "x-nimbus-metadata"
"""Request header of an object put: the user metadata as a JSON object of strings."""
