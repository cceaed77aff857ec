"""The discovery file: how the CLI and clients on this machine find a running platform.

`nimbus up` writes the platform's URL and token to `platform.json` in its data folder (mode
0600: the token is a credential, so only the user who started the platform may read it) and
removes it when it stops. Callers take the URL and token from their arguments, else from
NIMBUS_URL / NIMBUS_TOKEN, else from this file, else the default URL without a token.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import NamedTuple

from nimbus.errors import InvalidRequest

DISCOVERY_FILE = "platform.json"
DEFAULT_DATA_DIR = Path(".nimbus")
DEFAULT_URL = "http://127.0.0.1:8080"
_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]+=*")
"""RFC 6750's b64token: what a bearer token may hold."""


class Target(NamedTuple):
    """Where a platform answers, and the token its API wants (None: unknown)."""

    url: str
    token: str | None


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_token(token: str) -> str:
    """A token given to `nimbus up`: one that fits in an `Authorization: Bearer` header."""
    if not _TOKEN.fullmatch(token):
        raise InvalidRequest(
            "a platform token is letters, digits and - . _ ~ + / (then = padding), "
            f"with no spaces; got {len(token)} characters that are not that"
        )
    return token


def write(data_dir: Path, url: str, token: str) -> Path:
    """Write the discovery file whole or not at all (readers poll for it), readable by its
    owner only."""
    path = data_dir / DISCOVERY_FILE
    written = path.with_suffix(".tmp")
    written.unlink(missing_ok=True)  # O_CREAT keeps an old file's mode: start afresh
    descriptor = os.open(written, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        json.dump({"url": url, "pid": os.getpid(), "token": token}, file)
    written.replace(path)
    return path


def read(data_dir: Path) -> Target | None:
    """What the platform running with `data_dir` wrote down, if one is running."""
    try:
        found = json.loads((data_dir / DISCOVERY_FILE).read_text())
        url, token = found["url"], found.get("token")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(url, str) or not isinstance(token, str | None):
        return None
    return Target(url, token)


def locate(
    url: str | None = None, token: str | None = None, data_dir: Path | str | None = None
) -> Target:
    """The platform to talk to. The discovery file's token is sent only to the URL it was
    written with: a token must never leak to another server that NIMBUS_URL names."""
    folder = Path(data_dir or os.environ.get("NIMBUS_DATA_DIR") or DEFAULT_DATA_DIR)
    found = read(folder)
    url = url or os.environ.get("NIMBUS_URL") or (found.url if found else DEFAULT_URL)
    url = url.rstrip("/")
    if not token:
        token = os.environ.get("NIMBUS_TOKEN") or None
    if token is None and found is not None and found.url.rstrip("/") == url:
        token = found.token
    return Target(url, token)
