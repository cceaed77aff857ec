"""The controller's answer to a function's service call: check that the function declared the
resource, decode the operation by the resource's kind, run it on the backend, reply.

Workers hold no handles, credentials or paths: this is the only way their code reaches state.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from nimbus.compute.protocol import ErrorInfo, ServiceCall, ServiceReply
from nimbus.errors import InvalidRequest, NimbusError, NotFound, PermissionDenied
from nimbus.ops.logs import LogSink
from nimbus.services import bucket, queue, stream, table, topic
from nimbus.services.catalog import ServiceSet
from nimbus.spec.model import AppSpec

_encoder = msgspec.msgpack.Encoder()
_queue: msgspec.msgpack.Decoder[queue.QueueOp] = msgspec.msgpack.Decoder(queue.QueueOp)
_topic: msgspec.msgpack.Decoder[topic.TopicOp] = msgspec.msgpack.Decoder(topic.TopicOp)
_stream: msgspec.msgpack.Decoder[stream.StreamOp] = msgspec.msgpack.Decoder(stream.StreamOp)
_table: msgspec.msgpack.Decoder[table.TableOp] = msgspec.msgpack.Decoder(table.TableOp)
_bucket: msgspec.msgpack.Decoder[bucket.BucketOp] = msgspec.msgpack.Decoder(bucket.BucketOp)


class ServiceCalls:
    def __init__(
        self, services: ServiceSet, spec: Callable[[], AppSpec | None], logs: LogSink
    ) -> None:
        self._services = services
        self._spec = spec
        self._logs = logs

    async def __call__(self, function: str, call: ServiceCall) -> ServiceReply:
        try:
            value = await self._perform(function, call)
            return ServiceReply(call.id, _encoder.encode(value))
        except NimbusError as error:
            return ServiceReply(call.id, error=_info(type(error).__name__, error.message))
        except msgspec.ValidationError as error:
            message = _kind_mismatch(self._spec(), call) or (
                f"invalid arguments for {call.resource!r}: {error}"
            )
            return ServiceReply(call.id, error=_info(InvalidRequest.__name__, message))
        except Exception as error:  # a platform fault: the function gets a clean error
            self._logs.platform(
                f"a service call of {function!r} on {call.resource!r} failed: {error!r}"
            )
            message = f"the platform could not complete the call on {call.resource!r}"
            return ServiceReply(call.id, error=_info(NimbusError.__name__, message))

    async def _perform(self, function: str, call: ServiceCall) -> Any:
        spec = self._spec()
        declared = spec.functions.get(function) if spec is not None else None
        if spec is None or declared is None:
            raise NotFound(f"function {function!r} is no longer deployed")
        name = call.resource
        if name not in declared.uses:
            raise PermissionDenied(
                f"function {function!r} may not use {name!r}: list it in the function's `uses`"
            )
        services, trace, op = self._services, call.traceparent, call.op
        if name in spec.queues:
            return await queue.perform(services.queues, name, _queue.decode(op))
        if name in spec.topics:
            return await topic.perform(services.topics, name, _topic.decode(op))
        if name in spec.streams:
            return await stream.perform(services.streams, name, _stream.decode(op))
        if name in spec.tables:
            return await table.perform(services.tables, name, _table.decode(op), traceparent=trace)
        if name in spec.buckets:
            return await bucket.perform(services.buckets, name, _bucket.decode(op))
        raise NotFound(f"no resource named {name!r}")


def _kind_mismatch(spec: AppSpec | None, call: ServiceCall) -> str | None:
    """Why the call failed when it is an operation of another kind of resource (a Queue
    handle on a table, ...); None when it is not that."""
    if spec is None:
        return None
    kinds: dict[str, Mapping[str, object]] = {
        "queue": spec.queues, "topic": spec.topics, "stream": spec.streams,
        "table": spec.tables, "bucket": spec.buckets,
    }  # fmt: skip
    kind = next((kind for kind, declared in kinds.items() if call.resource in declared), None)
    try:
        operation = msgspec.msgpack.decode(call.op)
    except msgspec.DecodeError:
        return None
    tag = operation.get("type") if isinstance(operation, dict) else None
    wanted = tag.partition(".")[0] if isinstance(tag, str) else None
    if kind is None or wanted not in kinds or wanted == kind:
        return None
    return (
        f"{call.resource!r} is a {kind}, not a {wanted}: "
        f"use nimbus.{kind.capitalize()}({call.resource!r}) for it"
    )


def _info(error_type: str, message: str) -> ErrorInfo:
    return ErrorInfo("Handler", error_type, message)
