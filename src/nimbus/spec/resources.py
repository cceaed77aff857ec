"""Declared services (BaaS resources) and the event triggers that connect them to functions.

Each resource spec is also the configuration its backend is created with: the embedded and the
cluster backends read the same fields. Defaults follow the AWS service each one is modelled on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticSerializationError, to_json

from nimbus.errors import InvalidRequest
from nimbus.services.patterns import compile_pattern
from nimbus.services.schedule import parse
from nimbus.spec.base import NAME, NAME_RE, Model
from nimbus.spec.metadata import Owner, Tags

KIB = 1024
MIB = 1024 * KIB
DAY = 86400.0


class QueueSpec(Model):
    """A message queue with SQS semantics (standard, or FIFO with message groups)."""

    name: str = Field(pattern=NAME)
    fifo: bool = False
    visibility_timeout: float = Field(30.0, ge=0, le=43200, description="s")
    delay: float = Field(0.0, ge=0, le=900, description="default delivery delay, s")
    retention: float = Field(4 * DAY, ge=60, le=14 * DAY, description="s")
    max_message_bytes: int = Field(256 * KIB, ge=1, le=MIB)
    max_receives: int | None = Field(None, ge=1, le=1000, description="then dead-letter")
    dead_letter: str | None = Field(None, pattern=NAME, description="queue for failed messages")
    dedup_window: float = Field(300.0, ge=1, le=DAY, description="FIFO deduplication, s")
    content_dedup: bool = Field(False, description="FIFO: the body's hash is the dedup id")
    owner: Owner = None
    tags: Tags = {}

    @model_validator(mode="after")
    def _check(self) -> QueueSpec:
        if self.dead_letter is not None and self.max_receives is None:
            raise ValueError("dead_letter needs max_receives")
        if self.dead_letter == self.name:
            raise ValueError("a queue cannot be its own dead-letter queue")
        return self


def _valid_pattern(pattern: dict[str, Any] | None) -> dict[str, Any] | None:
    """A malformed event pattern is a spec error, found at deploy time, not at delivery."""
    if pattern is not None:
        try:
            compile_pattern(pattern)
        except InvalidRequest as error:
            raise ValueError(error.message) from None
    return pattern


class QueueSubscription(Model):
    """A topic delivering the events that match `pattern` into a queue (SNS -> SQS fan-out)."""

    queue: str = Field(pattern=NAME)
    pattern: dict[str, Any] | None = None

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, pattern: dict[str, Any] | None) -> dict[str, Any] | None:
        return _valid_pattern(pattern)


class TopicSpec(Model):
    """A publish/subscribe event bus (SNS topic / EventBridge bus)."""

    name: str = Field(pattern=NAME)
    max_message_bytes: int = Field(256 * KIB, ge=1, le=MIB)
    subscriptions: tuple[QueueSubscription, ...] = ()
    owner: Owner = None
    tags: Tags = {}


class StreamSpec(Model):
    """A partitioned, append-only log (Kinesis data stream)."""

    name: str = Field(pattern=NAME)
    partitions: int = Field(4, ge=1, le=256)
    retention: float = Field(DAY, ge=60, le=365 * DAY, description="s")
    max_record_bytes: int = Field(MIB, ge=1, le=10 * MIB)
    owner: Owner = None
    tags: Tags = {}


class IndexSpec(Model):
    key: str = Field(min_length=1, max_length=255)
    sort_key: str | None = Field(None, min_length=1, max_length=255)


class TableSpec(Model):
    """A document table with a change feed (DynamoDB table + stream)."""

    name: str = Field(pattern=NAME)
    key: str = Field(min_length=1, max_length=255, description="partition key attribute")
    sort_key: str | None = Field(None, min_length=1, max_length=255)
    indexes: dict[str, IndexSpec] = Field(default_factory=dict)
    ttl: str | None = Field(None, min_length=1, max_length=255, description="expiry attribute")
    max_item_bytes: int = Field(400 * KIB, ge=1, le=16 * MIB)
    change_retention: float = Field(DAY, ge=60, le=365 * DAY, description="change feed, s")
    owner: Owner = None
    tags: Tags = {}

    @field_validator("indexes")
    @classmethod
    def _check_index_names(cls, indexes: dict[str, IndexSpec]) -> dict[str, IndexSpec]:
        for name in indexes:
            if not NAME_RE.match(name):
                raise ValueError(f"index name {name!r} is not a valid name")
        return indexes


class BucketSpec(Model):
    """An object store bucket (S3)."""

    name: str = Field(pattern=NAME)
    max_object_bytes: int = Field(5 * 1024 * MIB, ge=1)
    owner: Owner = None
    tags: Tags = {}


# Triggers of asynchronous sources. `source` names the resource; `type` tells them apart.


class QueueTrigger(Model):
    type: Literal["queue"] = "queue"
    queue: str = Field(pattern=NAME)
    batch_size: int = Field(10, ge=1, le=10000)
    batching_window: float = Field(0.0, ge=0, le=300, description="wait to fill a batch, s")
    concurrency: int | None = Field(None, ge=1, le=1000, description="batches at once")

    @property
    def source(self) -> str:
        return self.queue

    @property
    def label(self) -> str:
        return f"queue {self.queue}"


class TopicTrigger(Model):
    type: Literal["topic"] = "topic"
    topic: str = Field(pattern=NAME)
    pattern: dict[str, Any] | None = None

    @field_validator("pattern")
    @classmethod
    def _check_pattern(cls, pattern: dict[str, Any] | None) -> dict[str, Any] | None:
        return _valid_pattern(pattern)

    @property
    def source(self) -> str:
        return self.topic

    @property
    def label(self) -> str:
        return f"topic {self.topic}"


StartingPosition = Literal["latest", "oldest", "at_time"]


class StreamTrigger(Model):
    type: Literal["stream"] = "stream"
    stream: str = Field(pattern=NAME)
    batch_size: int = Field(100, ge=1, le=10000)
    batching_window: float = Field(0.0, ge=0, le=300, description="s")
    start: StartingPosition = "latest"
    start_time: float | None = Field(None, description="epoch seconds, with start=at_time")
    bisect_on_error: bool = True

    @model_validator(mode="after")
    def _check(self) -> StreamTrigger:
        if (self.start == "at_time") != (self.start_time is not None):
            raise ValueError("start_time is given exactly when start is 'at_time'")
        return self

    @property
    def source(self) -> str:
        return self.stream

    @property
    def label(self) -> str:
        return f"stream {self.stream}"


class TableTrigger(Model):
    type: Literal["table"] = "table"
    table: str = Field(pattern=NAME)
    batch_size: int = Field(100, ge=1, le=10000)
    batching_window: float = Field(0.0, ge=0, le=300, description="s")
    start: Literal["latest", "oldest"] = "latest"
    bisect_on_error: bool = True

    @property
    def source(self) -> str:
        return self.table

    @property
    def label(self) -> str:
        return f"table {self.table}"


BucketEvent = Literal["created", "deleted"]


class BucketTrigger(Model):
    type: Literal["bucket"] = "bucket"
    bucket: str = Field(pattern=NAME)
    events: tuple[BucketEvent, ...] = ("created",)
    prefix: str = Field("", max_length=1024)
    suffix: str = Field("", max_length=1024)

    @property
    def source(self) -> str:
        return self.bucket

    @property
    def label(self) -> str:
        return f"bucket {self.bucket}"


MissedTicks = Literal["skip", "once", "all"]


class ScheduleTrigger(Model):
    """`cron(m h dom mon dow year)` (AWS, six fields), a plain five-field cron line, or
    `rate(N unit)`; validated (expression and time zone) when declared."""

    type: Literal["schedule"] = "schedule"
    expression: str = Field(min_length=1, max_length=256)
    timezone: str = Field("UTC", min_length=1, max_length=64)
    missed: MissedTicks = Field(
        "once", description="ticks missed while down: skip, fire once, or fire each"
    )
    payload: Any = None

    @field_validator("payload")
    @classmethod
    def _check_payload(cls, payload: Any) -> Any:
        """The payload travels as JSON: one that is not JSON is a spec error, found here."""
        try:
            to_json(payload)
        except PydanticSerializationError as error:
            raise ValueError(f"the payload must be JSON data: {error}") from None
        return payload

    @model_validator(mode="after")
    def _check_expression(self) -> ScheduleTrigger:
        try:
            parse(self.expression, self.timezone)
        except InvalidRequest as error:
            raise ValueError(error.message) from None
        return self

    @property
    def source(self) -> str:
        return self.expression

    @property
    def label(self) -> str:
        return f"schedule {self.expression} ({self.timezone})"


Destination = str  # the name of a queue, topic or function
