"""WebSocket APIs for tests/test_websockets.py: routes of every kind, sends from HTTP and queue
handlers, an AWS-style API and one with tight limits."""

from __future__ import annotations

import json
from typing import Any

import nimbus

app = nimbus.App("sockets")

chat = app.websocket("chat", path="/chat")
log = app.table("log", key="id")
pushes = app.queue("pushes")
aws = app.websocket("aws", path="/aws", route_key="message.action")
rooms = app.websocket("rooms", path="/rooms/lobby")  # no handlers: every client is welcome
tight = app.websocket(
    "tight",
    path="/tight",
    max_message_bytes=1024,
    send_buffer_bytes=64 * 1024,
    max_connections=2,
    ping_interval=0.5,
    ping_timeout=0.5,
)


@app.on_connect(chat, uses=[chat, log])
def connect(event: nimbus.WebSocketEvent) -> nimbus.Response | None:
    token = event.query.get("token")
    if token == "bad":
        return nimbus.Response({"error": "bad token"}, status=401)
    if token == "boom":
        raise RuntimeError("the connect handler failed")
    for room in filter(None, event.query.get("rooms", "").split(",")):
        chat.join(event.connection_id, room)
    log.put({"id": event.connection_id, "state": "connected", "agent": event.headers["x-agent"]})
    if "v2.chat" in event.subprotocols:
        return nimbus.Response(None, headers={"sec-websocket-protocol": "v2.chat"})
    return None


@app.on_disconnect(chat, uses=[log])
def disconnect(event: nimbus.WebSocketEvent) -> None:
    log.put({"id": event.connection_id, "state": "disconnected", "code": event.code})


@app.on_message(chat, "echo")
def echo(event: nimbus.WebSocketEvent) -> dict[str, Any]:
    return {"echo": event.json()["text"], "connection_id": event.connection_id}


@app.on_message(chat, "join", uses=[chat])
def join(event: nimbus.WebSocketEvent) -> str:
    chat.join(event.connection_id, event.json()["room"])
    return "joined"


@app.on_message(chat, "leave", uses=[chat])
def leave(event: nimbus.WebSocketEvent) -> str:
    chat.leave(event.connection_id, event.json()["room"])
    return "left"


@app.on_message(chat, "say", uses=[chat])
def say(event: nimbus.WebSocketEvent) -> dict[str, int]:
    message = event.json()
    text = {"from": event.connection_id, "text": message["text"]}
    count = chat.send_to_group(message["room"], text, exclude=[event.connection_id])
    return {"delivered": count}


@app.on_message(chat, "bytes")
def binary(event: nimbus.WebSocketEvent) -> bytes:
    return bytes(range(8))


@app.on_message(chat, "bad")
def bad(event: nimbus.WebSocketEvent) -> None:
    raise nimbus.BadRequest("this route always refuses")


@app.on_message(chat, "crash")
def crash(event: nimbus.WebSocketEvent) -> None:
    raise ValueError("the message handler failed")


@app.on_message(chat, "bye", uses=[chat])
def bye(event: nimbus.WebSocketEvent) -> None:
    chat.send(event.connection_id, "see you")
    chat.close(event.connection_id, 4000, "bye")


@app.on_message(chat)
def default(event: nimbus.WebSocketEvent) -> dict[str, Any]:
    return {"default": event.text, "binary": event.data.hex() if event.data else None}


@app.http("POST", "/push/{id}", uses=[chat])
def push(request: nimbus.Request) -> nimbus.Response:
    try:
        chat.send(request.params["id"], request.json())
    except nimbus.Gone as error:
        return nimbus.Response({"gone": str(error)}, status=410)
    return nimbus.Response({"sent": True})


@app.http("GET", "/log/{id}", uses=[log])
def read_log(request: nimbus.Request) -> dict[str, Any] | None:
    found = log.get(id=request.params["id"])
    return None if found is None else found.data


@app.http("POST", "/broadcast", uses=[chat])
def broadcast(request: nimbus.Request) -> dict[str, int]:
    return {"delivered": chat.broadcast(request.json())}


@app.http("GET", "/connections", uses=[chat])
def connections(request: nimbus.Request) -> dict[str, Any]:
    group = request.query.get("group")
    return {"ids": chat.connections(group)}


@app.http("GET", "/info/{id}", uses=[chat])
def info(request: nimbus.Request) -> dict[str, Any]:
    found = chat.info(request.params["id"])
    return {"groups": found.groups, "api": found.api, "connected_at": found.connected_at}


@app.http("POST", "/misuse", uses=[chat])
def misuse(request: nimbus.Request) -> dict[str, str]:
    """Bad arguments: each raises a clear error, nothing is sent."""
    problems = {}
    attempts = {
        "group": lambda: chat.send_to_group("", "x"),
        "id": lambda: chat.send("not an id!", "x"),
        "code": lambda: chat.close("abc", 1006),
        "big": lambda: chat.send("abc", "x" * (200 * 1024)),
        "json": lambda: chat.send("abc", object()),
    }
    for name, attempt in attempts.items():
        try:
            attempt()
        except nimbus.NimbusError as error:
            problems[name] = f"{type(error).__name__}: {error}"
    return problems


@app.http("POST", "/queue-push", uses=[pushes])
def queue_push(request: nimbus.Request) -> None:
    pushes.send(request.json())


@app.on_queue(pushes, uses=[chat])
def from_queue(batch: nimbus.QueueBatch) -> None:
    for message in batch:
        order = message.json()
        chat.send(order["to"], {"from_queue": order["text"]})


@app.http("POST", "/flood/{id}", uses=[tight], timeout=60)
def flood(request: nimbus.Request) -> dict[str, Any]:
    """Send 1 KiB messages to a connection until it is gone (it never reads)."""
    sent = 0
    while sent < 100_000:
        try:
            tight.send(request.params["id"], "x" * 1000)
        except nimbus.Gone:
            return {"sent": sent, "gone": True}
        sent += 1
    return {"sent": sent, "gone": False}


@app.http("POST", "/tight/{id}", uses=[tight])
def tight_push(request: nimbus.Request) -> nimbus.Response:
    try:
        tight.send(request.params["id"], "hello")
    except nimbus.Gone:
        return nimbus.Response({"gone": True}, status=410)
    return nimbus.Response({"gone": False})


@app.on_connect(tight, uses=[log])
def tight_connect(event: nimbus.WebSocketEvent) -> str:
    log.put({"id": event.connection_id, "state": "connected"})
    return "ok"


@app.on_disconnect(tight, uses=[log])
def tight_disconnect(event: nimbus.WebSocketEvent) -> None:
    log.put({"id": event.connection_id, "state": "disconnected", "code": event.code})


@app.on_message(tight)
def tight_default(event: nimbus.WebSocketEvent) -> str:
    return event.connection_id


@app.http("GET", "/tight-connections", uses=[tight])
def tight_connections(request: nimbus.Request) -> list[str]:
    return tight.connections()


@app.on_connect(aws, style="aws")
def aws_connect(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("queryStringParameters", {}).get("deny"):
        return {"statusCode": 403, "body": "denied"}
    return {"statusCode": 200}


@app.on_message(aws, "ping", style="aws")
def aws_ping(event: dict[str, Any], context: Any) -> dict[str, Any]:
    context_ = event["requestContext"]
    seen = {key: context_[key] for key in ("routeKey", "eventType", "connectionId", "messageId")}
    return {"statusCode": 200, "body": json.dumps({**seen, "body": event["body"]})}


@app.on_message(aws, style="aws")
def aws_default(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps({"route": event["requestContext"]["routeKey"]})}
