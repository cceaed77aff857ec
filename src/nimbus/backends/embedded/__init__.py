"""The embedded backend: SQLite (WAL) files and blob files in one data directory."""

from __future__ import annotations

from pathlib import Path

from nimbus.services.catalog import ServiceSet


def open_services(data_dir: Path, *, fsync: bool = False) -> ServiceSet:
    """Every service on files under `data_dir` (each kind its own SQLite file)."""
    from nimbus.backends.embedded.bucket import EmbeddedBuckets
    from nimbus.backends.embedded.queue import EmbeddedQueues
    from nimbus.backends.embedded.schedule import EmbeddedSchedules
    from nimbus.backends.embedded.stream import EmbeddedStreams
    from nimbus.backends.embedded.table import EmbeddedTables
    from nimbus.backends.embedded.topic import EmbeddedTopics
    from nimbus.edge.connections import LocalConnections

    return ServiceSet(
        queues=EmbeddedQueues(data_dir, fsync=fsync),
        topics=EmbeddedTopics(data_dir, fsync=fsync),
        streams=EmbeddedStreams(data_dir, fsync=fsync),
        tables=EmbeddedTables(data_dir, fsync=fsync),
        buckets=EmbeddedBuckets(data_dir, fsync=fsync),
        schedules=EmbeddedSchedules(data_dir, fsync=fsync),
        websockets=LocalConnections(),  # connections live where their sockets are
    )
