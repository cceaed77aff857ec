"""The MQTT bridge: the controller's one connection to each declared broker.

- **Persistent session.** MQTT 5 with clean start off and the broker's `session_expiry`, under a
  stable client id (`nimbus-APP-BROKER`): QoS 1 messages published while the platform is away
  are kept by the broker and delivered when it connects again (MQTT 5.0 §4.1).
- **Reconnects** with exponential backoff, capped, back to the shortest after a healthy run
  (`supervise`); every connection subscribes again, so subscriptions survive a broker that
  lost its state too. A broker that is down blocks neither deploys nor the rest of the platform.
- **One subscription per distinct filter**, each with a subscription identifier (MQTT 5.0
  §3.8.2.1.2) kept in the store: brokers send one copy of a message per matching subscription,
  and each copy names its subscriptions, so a message reaches each matching trigger once.
- **Acknowledged after it is safe.** A QoS 1 message gets its PUBACK only once its invocations
  are committed (paho's manual acknowledgement); a crash before that makes the broker send it
  again. The platform asks for at most RECEIVE_MAXIMUM unacknowledged QoS 1 messages at a time
  (MQTT 5.0 §3.1.2.11.3), so the broker, not the controller's memory, holds a backlog.
- **Retained messages are not replayed** when subscribing (retain handling 2): a trigger sees
  what is published while it is subscribed, as an AWS IoT rule does.

aiomqtt (the `mqtt` extra) is imported only when an app declares a broker.
"""

from __future__ import annotations

import asyncio
import os
import select
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nimbus.errors import NotFound, PlatformUnavailable, SpecError
from nimbus.events import trace
from nimbus.ops.logs import LogSink
from nimbus.ops.store import Store
from nimbus.services.mqtt import Publish, matches
from nimbus.spec.model import AppSpec
from nimbus.spec.mqtt import MqttBrokerSpec
from nimbus.triggers.base import stop, supervise
from nimbus.triggers.mqtt import MqttDelivery, Received, Route, routes_of

if TYPE_CHECKING:
    import aiomqtt

CALL_TIMEOUT = 10.0  # seconds a connect, subscribe or publish may take before it fails
PUBLISH_WAIT = 5.0  # seconds a function's publish waits for a connection being made
RETAIN_NOTHING_ON_SUBSCRIBE = 2  # MQTT 5 retain handling: send no retained messages
FAILURE = 0x80  # MQTT reason codes from here on are failures
RECEIVE_MAXIMUM = 1000  # QoS 1 messages the broker may send before it has their PUBACK


@dataclass(frozen=True, slots=True)
class Connection:
    """What a connection is opened with: when it changes, the bridge connects anew."""

    broker: str
    host: str
    port: int
    client_id: str
    tls: bool
    ca_file: str | None
    cert_file: str | None
    key_file: str | None
    session_expiry: int
    keep_alive: int
    username: str | None
    password: str | None = field(repr=False)


def connection_of(app: str, spec: MqttBrokerSpec) -> Connection:
    """The broker's connection, its credentials read from the platform's environment;
    SpecError naming a variable that is not set."""
    return Connection(
        broker=spec.name, host=spec.host, port=spec.port,
        client_id=spec.client_id or f"nimbus-{app}-{spec.name}", tls=spec.tls,
        ca_file=spec.ca_file, cert_file=spec.cert_file, key_file=spec.key_file,
        session_expiry=spec.session_expiry, keep_alive=spec.keep_alive,
        username=_variable(spec, spec.username_env), password=_variable(spec, spec.password_env),
    )  # fmt: skip


def _variable(spec: MqttBrokerSpec, name: str | None) -> str | None:
    if name is None:
        return None
    value = os.environ.get(name)
    if value is None:
        raise SpecError(
            f"mqtt broker {spec.name!r}: environment variable {name} is not set where the "
            "platform runs (set it before `nimbus up`); nothing was applied"
        )
    return value


def require_client() -> None:
    """SpecError, before anything is applied, when the `mqtt` extra is not installed."""
    try:
        import aiomqtt  # noqa: F401
    except ImportError:
        raise SpecError(
            "the app declares an MQTT broker, which needs the mqtt extra: "
            "pip install 'nimbus[mqtt]'; nothing was applied"
        ) from None


class MqttBridges:
    """Every broker of the deployed app; what function code publishes goes through here."""

    def __init__(self, delivery: MqttDelivery, store: Store, logs: LogSink) -> None:
        self._delivery = delivery
        self._store = store
        self._logs = logs
        self._bridges: dict[str, Bridge] = {}
        self._limits: dict[str, int] = {}

    def check(self, spec: AppSpec) -> None:
        """Refuse a spec this platform cannot connect to its brokers with (SpecError)."""
        if spec.mqtt:
            require_client()
        for broker in spec.mqtt.values():
            connection_of(spec.name, broker)

    async def reconcile(self, spec: AppSpec) -> None:
        """Connect to new brokers, reconnect to changed ones, subscribe the filters of the
        spec's triggers and unsubscribe the rest; a removed broker's subscriptions are
        dropped, so that it stops keeping messages for the platform."""
        for name in [name for name in self._bridges if name not in spec.mqtt]:
            await self._bridges.pop(name).close(forget=True)
        for name, broker in spec.mqtt.items():
            connection, routes = connection_of(spec.name, broker), routes_of(spec, name)
            bridge = self._bridges.get(name)
            if bridge is not None and bridge.connection == connection:
                bridge.route(routes)
                continue
            if bridge is not None:
                await bridge.close(forget=False)
            bridge = Bridge(connection, self._delivery, self._store, self._logs)
            self._bridges[name] = bridge
            bridge.start(routes)

    async def publish(self, broker: str, message: Publish) -> None:
        bridge = self._bridges.get(broker)
        if bridge is None:
            raise NotFound(f"no MQTT broker named {broker!r} is deployed")
        await bridge.publish(message)

    async def stop(self) -> None:
        """Disconnect, keeping every session: the brokers keep messages until the next start."""
        bridges = list(self._bridges.values())
        self._bridges.clear()
        for bridge in bridges:
            await bridge.close(forget=False)


class Bridge:
    """One broker's connection, its subscriptions, and the messages it delivers."""

    def __init__(
        self, connection: Connection, delivery: MqttDelivery, store: Store, logs: LogSink
    ) -> None:
        self.connection = connection
        self._delivery = delivery
        self._store = store
        self._logs = logs
        self._routes: list[Route] = []
        self._client: aiomqtt.Client | None = None
        self._connected = asyncio.Event()
        self._filters: dict[int, str] = {}  # subscription identifier -> filter, as stored
        self._subscribing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._resubscribe: asyncio.Task[None] | None = None
        self._key = f"mqtt:{connection.client_id}@{connection.host}:{connection.port}"
        """Where the subscriptions made in this session are kept (store checkpoints)."""

    @property
    def name(self) -> str:
        return self.connection.broker

    def start(self, routes: Sequence[Route]) -> None:
        self._routes = list(routes)
        self._task = supervise(
            self._logs, f"the connection to MQTT broker {self.name!r}", self._run
        )

    def route(self, routes: Sequence[Route]) -> None:
        """Deliver to these triggers from now on; subscribe in the background when connected."""
        before, self._routes = self._wanted(), list(routes)
        client = self._client
        if client is not None and self._wanted() != before:
            if self._resubscribe is not None:
                self._resubscribe.cancel()  # the new one makes every subscription again
            self._resubscribe = asyncio.get_running_loop().create_task(self._resync(client))

    async def close(self, *, forget: bool) -> None:
        """Stop; with `forget`, unsubscribe every filter first (when connected)."""
        client = self._client
        if forget and client is not None:
            self._routes = []
            try:
                await asyncio.wait_for(self._subscribe(client), CALL_TIMEOUT)
            except Exception as error:
                self._logs.platform(f"MQTT broker {self.name!r}: could not unsubscribe: {error!r}")
        await stop(self._resubscribe)
        await stop(self._task)

    async def publish(self, message: Publish) -> None:
        import aiomqtt

        client = await self._connected_client()
        try:
            await client.publish(
                message.topic, message.payload, message.qos, message.retain,
                _user_properties(message.traceparent),
            )  # fmt: skip
        except aiomqtt.MqttError as error:
            raise PlatformUnavailable(
                f"MQTT broker {self.name!r} did not take the message for {message.topic!r}: {error}"
            ) from None

    async def _connected_client(self) -> aiomqtt.Client:
        try:
            async with asyncio.timeout(PUBLISH_WAIT):
                while (client := self._client) is None:
                    await self._connected.wait()
                return client
        except TimeoutError:
            raise PlatformUnavailable(
                f"MQTT broker {self.name!r} is not connected (see the platform's log); "
                "the message was not published"
            ) from None

    async def _run(self) -> None:
        client = _client(self.connection)
        async with client:
            self._logs.platform(
                f"connected to MQTT broker {self.name!r} at {self.connection.host}:"
                f"{self.connection.port} as {self.connection.client_id!r}",
                "INFO",
            )
            self._client = client
            self._connected.set()
            try:
                await self._subscribe(client)
                async for message in client.messages:
                    await self._receive(client, message)
            finally:
                self._client = None
                self._connected.clear()
        raise ConnectionError("the connection ended")

    async def _resync(self, client: aiomqtt.Client) -> None:
        try:
            await self._subscribe(client)
        except Exception as error:  # the connection's own loop notices a broken connection
            self._logs.platform(f"MQTT broker {self.name!r}: could not subscribe: {error!r}")

    async def _subscribe(self, client: aiomqtt.Client) -> None:
        """Make the session's subscriptions the triggers' filters. Each filter keeps its
        subscription identifier for good (a negative one in the store: unsubscribed), so
        that messages kept for the session while the platform was away route correctly."""
        async with self._subscribing:
            stored = await self._store.checkpoints(self._key)
            wanted = self._wanted()
            next_id = max((abs(number) for number in stored.values()), default=0) + 1
            for topic_filter, number in stored.items():
                if number > 0 and topic_filter not in wanted:
                    await client.unsubscribe(topic_filter)
                    await self._store.save_checkpoint(self._key, topic_filter, -number)
            for topic_filter, qos in wanted.items():
                number = abs(stored.get(topic_filter, 0))
                if number == 0:
                    number, next_id = next_id, next_id + 1
                stored[topic_filter] = number
                await self._store.save_checkpoint(self._key, topic_filter, number)
                granted = await client.subscribe(
                    topic_filter, options=_options(qos), properties=_subscription(number)
                )
                self._check_granted(topic_filter, granted)
            self._filters = {abs(number): topic_filter for topic_filter, number in stored.items()}

    def _check_granted(self, topic_filter: str, granted: Sequence[Any]) -> None:
        for code in granted:
            if int(getattr(code, "value", code)) >= FAILURE:
                self._logs.platform(
                    f"MQTT broker {self.name!r} refused the subscription to {topic_filter!r}: "
                    f"{code}"
                )

    def _wanted(self) -> dict[str, int]:
        """Each filter of the triggers, at the highest QoS a trigger asks for it."""
        wanted: dict[str, int] = {}
        for route in self._routes:
            topic_filter = route.trigger.topic
            wanted[topic_filter] = max(wanted.get(topic_filter, 0), route.trigger.qos)
        return wanted

    async def _receive(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        properties = message.properties
        user = dict(getattr(properties, "UserProperty", None) or [])
        parent = user.get("traceparent")
        received = Received(
            broker=self.name, topic=message.topic.value, payload=message.payload,
            qos=message.qos, retain=bool(message.retain), filters=self._matched(message),
            content_type=getattr(properties, "ContentType", None), properties=user,
            traceparent=parent if trace.parse(parent) is not None else None,
        )  # fmt: skip
        if received.filters:
            await self._delivery.deliver(self._routes, received)
        if message.qos > 0:
            # aiomqtt has no manual acknowledgement of its own yet (aiomqtt issue 345): paho's
            client._client.ack(message.mid, message.qos)

    def _matched(self, message: aiomqtt.Message) -> frozenset[str]:
        """The trigger filters this copy of the message is for: those of the subscription
        identifiers it carries, else (a broker that sends none) every filter it matches."""
        topic, wanted = message.topic.value, self._wanted()
        numbers = getattr(message.properties, "SubscriptionIdentifier", None) or []
        named = [self._filters[number] for number in numbers if number in self._filters]
        candidates = named or list(wanted)
        return frozenset(f for f in candidates if f in wanted and matches(f, topic))


def _client(connection: Connection) -> aiomqtt.Client:
    import aiomqtt

    session = _properties(
        "CONNECT",
        SessionExpiryInterval=connection.session_expiry,
        ReceiveMaximum=RECEIVE_MAXIMUM,
    )
    tls = None
    if connection.tls:
        tls = aiomqtt.TLSParameters(
            ca_certs=connection.ca_file, certfile=connection.cert_file,
            keyfile=connection.key_file,
        )  # fmt: skip
    client = aiomqtt.Client(
        connection.host, connection.port, username=connection.username,
        password=connection.password, identifier=connection.client_id,
        protocol=aiomqtt.ProtocolVersion.V5, clean_start=False, properties=session,
        keepalive=connection.keep_alive, tls_params=tls, timeout=CALL_TIMEOUT,
    )  # fmt: skip
    client._client.manual_ack_set(True)  # before connecting: a resumed session delivers at once
    client._loop = _SocketGuard(client)  # type: ignore[assignment]
    return client


class _SocketGuard:
    """The event loop as aiomqtt sees it, except that `add_reader` / `add_writer` register
    only paho's current socket, and that paho's reader reads a reset connection to its end.

    aiomqtt schedules those registrations from paho's callbacks: when the connection drops
    before the loop runs them, the socket is gone by then (or its descriptor already belongs
    to another socket). At an error event (the broker reset the connection) uvloop runs the
    descriptor's callbacks once, then closes its watcher but keeps it until they are removed
    (`UVPoll._fatal_error`); one run of paho's reader reads one packet, so when packets were
    queued before the reset, the error was never read and the dead connection went unnoticed
    until the keep-alive (`_read_to_end` reads on). Registering on such a closed watcher
    raises 'the handler is closed' inside a loop callback: dropping it first lets the
    registration through, should one be left."""

    def __init__(self, client: aiomqtt.Client) -> None:
        self._loop = client._loop
        self._client = client
        self._paho = client._client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loop, name)

    def add_reader(self, fd: int, callback: Callable[..., object], *args: Any) -> None:
        if self._current(fd):
            self._register(self._loop.add_reader, fd, self._read_to_end, fd, callback, *args)

    def add_writer(self, fd: int, callback: Callable[..., object], *args: Any) -> None:
        if self._current(fd):
            self._register(self._loop.add_writer, fd, callback, *args)

    def _read_to_end(self, fd: int, read: Callable[..., object], *args: Any) -> None:
        """paho's reader, run again on a hung-up socket until the connection has ended, as
        uvloop may not run it again. No data comes after a hang-up, so each run reads some
        of what is left, or ends the connection (paho closes the socket, or aiomqtt's reader
        takes an error as the end: paho would handle the same packet again)."""
        read(*args)
        while self._current(fd) and not self._client._disconnected.done() and _hung_up(fd):
            read(*args)

    def _register(self, add: Callable[..., None], fd: int, *callback: Any) -> None:
        try:
            add(fd, *callback)
        except RuntimeError:  # the watcher is closed: nothing registered on it still works
            self._loop.remove_reader(fd)
            self._loop.remove_writer(fd)
            add(fd, *callback)

    def _current(self, fd: int) -> bool:
        sock = self._paho.socket()
        return sock is not None and bool(sock.fileno() == fd)


def _hung_up(fd: int) -> bool:
    """Whether the peer reset or closed the connection on this socket (POLLERR, POLLHUP)."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _options(qos: int) -> Any:
    from paho.mqtt.subscribeoptions import SubscribeOptions

    return SubscribeOptions(
        qos=qos, retainHandling=RETAIN_NOTHING_ON_SUBSCRIBE, retainAsPublished=True
    )


def _subscription(number: int) -> Any:
    return _properties("SUBSCRIBE", SubscriptionIdentifier=number)


def _user_properties(traceparent: str | None) -> Any:
    """A publish's MQTT 5 properties: the trace context, as W3C's MQTT format carries it."""
    if traceparent is None:
        return None
    return _properties("PUBLISH", UserProperty=[("traceparent", traceparent)])


def _properties(packet: str, **values: Any) -> Any:
    """paho's MQTT 5 properties of a packet (PacketTypes name) with these values."""
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    properties = Properties(getattr(PacketTypes, packet))  # type: ignore[no-untyped-call]
    for name, value in values.items():
        setattr(properties, name, value)
    return properties
