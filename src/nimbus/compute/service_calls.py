"""The controller's answer to a function's service call: check that the function declared the
resource, decode the operation by the resource's kind, run it on the backend, reply.

Workers hold no handles, credentials or paths: this is the only way their code reaches state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec

from nimbus.compute.protocol import ErrorInfo, ServiceCall, ServiceReply
from nimbus.errors import InvalidRequest, NimbusError, NotFound, PermissionDenied
from nimbus.ops.logs import LogSink
from nimbus.services import mqtt
from nimbus.services.catalog import ServiceSet
from nimbus.services.control import ControlOp
from nimbus.services.operations import OPERATIONS, Kind, kind_of, operation_kind, perform
from nimbus.services.progress import RESOURCE as PROGRESS
from nimbus.services.progress import ProgressOp
from nimbus.spec.model import AppSpec
from nimbus.spec.system import PLATFORM_CONTROL

if TYPE_CHECKING:
    from nimbus.ops.tracing.tracer import Tracer
    from nimbus.ops.usage.meter import UsageMeter

_encoder = msgspec.msgpack.Encoder()
_progress: msgspec.msgpack.Decoder[ProgressOp] = msgspec.msgpack.Decoder(ProgressOp)
_control: msgspec.msgpack.Decoder[ControlOp] = msgspec.msgpack.Decoder(ControlOp)
_decoders: dict[Kind, msgspec.msgpack.Decoder[Any]] = {
    kind: msgspec.msgpack.Decoder(operations) for kind, operations in OPERATIONS.items()
}


class ServiceCalls:
    def __init__(
        self,
        services: ServiceSet,
        spec: Callable[[], AppSpec | None],
        logs: LogSink,
        *,
        progress: Callable[[str, ProgressOp], Awaitable[Any]] | None = None,
        mqtt_brokers: mqtt.Publisher | None = None,
    ) -> None:
        self._services = services
        self._spec = spec
        self._logs = logs
        self._progress = progress  # webhook deliveries' progress: the token is the permission
        self._mqtt = mqtt_brokers
        self.control: Callable[[str, ControlOp], Awaitable[Any]] | None = None  # nimbus.PLATFORM
        self.tracer: Tracer | None = None  # each call a span of its own; None: tracing is off
        self.usage: UsageMeter | None = None  # counts each call; None: metering is off

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
        if name == PROGRESS and self._progress is not None:
            return await self._progress(function, _progress.decode(call.op))
        if name not in declared.uses:
            raise PermissionDenied(
                f"function {function!r} may not use {name!r}: list it in the function's `uses`"
            )
        if name == PLATFORM_CONTROL and self.control is not None:
            return await self.control(function, _control.decode(call.op))
        if name in spec.mqtt and self._mqtt is not None:
            publish = mqtt.decode(call.op, name)
            return await mqtt.perform(self._mqtt, name, publish, spec.mqtt[name].max_message_bytes)
        kind = kind_of(spec, name)
        op = _decoders[kind].decode(call.op)

        async def run(op: Any, traceparent: str | None) -> Any:
            result = await perform(self._services, kind, name, op, traceparent=traceparent)
            if self.usage is not None:
                self.usage.service_call(name, op, result)
            return result

        if self.tracer is not None and call.traceparent is not None:
            return await self.tracer.service_call(function, kind, name, op, call.traceparent, run)
        return await run(op, call.traceparent)


def _kind_mismatch(spec: AppSpec | None, call: ServiceCall) -> str | None:
    """Why the call failed when it is an operation of another kind of resource (a Queue
    handle on a table, ...); None when it is not that."""
    try:
        kind = kind_of(spec, call.resource)
        operation = msgspec.msgpack.decode(call.op)
    except (NotFound, msgspec.DecodeError):
        return None
    wanted = operation_kind(operation.get("type") if isinstance(operation, dict) else None)
    if wanted is None or wanted == kind:
        return None
    handle = "WebSocket" if kind == "websocket" else kind.capitalize()
    return (
        f"{call.resource!r} is a {kind}, not a {wanted}: "
        f"use nimbus.{handle}({call.resource!r}) for it"
    )


def _info(error_type: str, message: str) -> ErrorInfo:
    return ErrorInfo("Handler", error_type, message)
