"""A Redis database for a baseline: the server on localhost:6379 when one runs there, else a
server of the benchmark's own (`redis-server`, no persistence, in a temporary folder).

The benchmark uses one database number only, refuses it if it holds keys (someone else's
data), and empties it again at the end.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import LOOPBACK, free_port, stop_process, wait_until

try:
    import redis
except ImportError:  # a benchmark-only dependency (the `bench` extra)
    redis = None  # type: ignore[assignment]

DEFAULT_URL = f"redis://{LOOPBACK}:6379"
DEFAULT_DB = 13
STARTUP_LIMIT = 20.0


class RedisUnavailable(Exception):
    """No Redis to measure against: the benchmark records itself as skipped."""


@dataclass(frozen=True)
class RedisDatabase:
    url: str
    """redis://host:port/db of the database the benchmark may use."""
    client: redis.Redis
    own_server: bool
    server: dict[str, Any]
    """Version and persistence settings, for the report."""


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@contextlib.contextmanager
def _own_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RedisUnavailable(
            "no Redis answers on localhost:6379 and redis-server is not on PATH "
            "(Debian package redis-server)"
        )
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="nimbus-bench-redis-") as folder:
        log = Path(folder) / "redis.log"
        command = [binary, "--port", str(port), "--bind", LOOPBACK, "--save", ""]
        command += ["--appendonly", "no", "--dir", folder, "--logfile", str(log)]
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL)
        url = f"redis://{LOOPBACK}:{port}"
        try:
            probe = redis.Redis.from_url(url)
            wait_until(lambda: True if _answers(probe) else None, STARTUP_LIMIT, url)
            probe.close()
            yield url
        finally:
            stop_process(process, sig=15)


@contextlib.contextmanager
def redis_database(url: str = DEFAULT_URL, db: int = DEFAULT_DB) -> Iterator[RedisDatabase]:
    """Database `db` of the server at `url` (or of a server started here if none answers)."""
    if redis is None:
        raise RedisUnavailable(
            "the benchmark-only package redis is not installed (pip install redis==8.1.0)"
        )
    with contextlib.ExitStack() as stack:
        probe = redis.Redis.from_url(url)
        own = not _answers(probe)
        probe.close()
        if own:
            url = stack.enter_context(_own_server())
        client = redis.Redis.from_url(f"{url}/{db}")
        stack.callback(client.close)
        if client.dbsize():
            raise RedisUnavailable(
                f"Redis database {db} of {url} holds {client.dbsize()} keys: it is not ours to "
                "use; pass another --redis-db"
            )
        stack.callback(client.flushdb)
        info = client.info("server")
        config = {**client.config_get("appendonly"), **client.config_get("save")}
        server = {"version": info.get("redis_version"), **config}
        yield RedisDatabase(f"{url}/{db}", client, own, server)
