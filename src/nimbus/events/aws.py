"""Events shaped exactly as AWS Lambda documents them, for functions declared `style="aws"`.

Pure functions from nimbus's typed events (types.py) to the dicts Lambda hands a handler for
SQS, SNS, EventBridge, Kinesis, DynamoDB Streams, S3, scheduled rules and API Gateway HTTP
APIs (payload 2.0): the same field names, string-typed numbers, timestamp formats and base64
where AWS uses them, so existing Lambda handlers run unchanged. ARNs name a fixed local account
and region. The reverse direction: `http_reply` (a handler's answer -> HTTP response) and
`batch_item_failures` (Lambda's partial batch response -> failed item ids).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import struct
import uuid
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import UTC, datetime
from time import time as _now
from typing import Any
from urllib.parse import parse_qsl, quote_plus

import msgspec

from nimbus.compute.protocol import HttpEvent, HttpReply
from nimbus.errors import InvalidRequest
from nimbus.events import trace
from nimbus.events.cloudevents import format_time
from nimbus.events.types import (
    MqttMessage,
    ObjectEvent,
    QueueMessage,
    ScheduleTick,
    StreamRecord,
    TableChange,
    TopicEvent,
    WebSocketEvent,
    failed_items,
)
from nimbus.http import Response
from nimbus.ids import new_id
from nimbus.json_input import decode_json

ACCOUNT = "000000000000"
REGION = "local-1"
API_ID = "nimbus"
SIGNATURE = "UNSIGNED"
"""SNS signs each message; local events carry this instead of a signature."""
DYNAMODB_SERVICE = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
JSON_TYPE = "application/json"
_TEXT_TYPES = {"application/json", "application/xml", "application/javascript"}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_INTEGER = re.compile(r"-?\d+")
_LENGTH = struct.Struct(">I")

Record = dict[str, Any]
AttributeValue = dict[str, Any]


# SQS


def sqs_event(
    messages: Iterable[QueueMessage], queue: str, *, region: str = REGION, account: str = ACCOUNT
) -> dict[str, Any]:
    """A batch of messages as Lambda's SQS event source delivers it (FIFO fields included when
    the message has a group; the receipt handle is the message's own receipt)."""
    arn = f"arn:aws:sqs:{region}:{account}:{queue}"
    return {"Records": [_sqs_record(m, arn, region, account) for m in messages]}


def _sqs_record(message: QueueMessage, arn: str, region: str, account: str) -> Record:
    record: Record = {
        "messageId": message.id,
        "receiptHandle": message.receipt or message.id,
        "body": message.body,
        "attributes": _sqs_attributes(message, account),
        "messageAttributes": {
            name: {
                "stringValue": value,
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "String",
            }
            for name, value in message.attributes.items()
        },
        "md5OfBody": _md5(message.body.encode()),
        "eventSource": "aws:sqs",
        "eventSourceARN": arn,
        "awsRegion": region,
    }
    if message.attributes:
        record["md5OfMessageAttributes"] = _md5_of_attributes(message.attributes)
    return record


def _sqs_attributes(message: QueueMessage, account: str) -> dict[str, str]:
    first_receive = message.first_received_at or message.sent_at
    attributes = {
        "ApproximateReceiveCount": str(message.receive_count),
        "SentTimestamp": _millis(message.sent_at),
        "SenderId": account,
        "ApproximateFirstReceiveTimestamp": _millis(first_receive),
    }
    xray = trace.xray_header(message.traceparent)
    if xray is not None:
        attributes["AWSTraceHeader"] = xray
    if message.group is not None:
        if message.sequence is not None:
            attributes["SequenceNumber"] = str(message.sequence)
        attributes["MessageGroupId"] = message.group
        if message.dedup_id is not None:
            attributes["MessageDeduplicationId"] = message.dedup_id
    return attributes


def _md5_of_attributes(attributes: Mapping[str, str]) -> str:
    """SQS's digest of message attributes: each (sorted by name) as length-prefixed name, data
    type, transport byte (1 = string) and value."""
    parts = bytearray()
    for name in sorted(attributes):
        for text in (name, "String"):
            parts += _prefixed(text.encode())
        parts += b"\x01" + _prefixed(attributes[name].encode())
    return _md5(bytes(parts))


def _prefixed(data: bytes) -> bytes:
    return _LENGTH.pack(len(data)) + data


def _md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# SNS and EventBridge


def sns_event(
    event: TopicEvent,
    topic: str,
    subscription: str | None = None,
    *,
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """One published event as SNS delivers it to a Lambda subscriber (one record per call).

    `subscription` ends the subscription ARN; by default a UUID derived from the topic ARN.
    """
    topic_arn = f"arn:aws:sns:{region}:{account}:{topic}"
    subscription_arn = f"{topic_arn}:{subscription or uuid.uuid5(uuid.NAMESPACE_URL, topic_arn)}"
    endpoint = f"https://sns.{region}.amazonaws.com"
    message = {
        "SignatureVersion": "1",
        "Timestamp": format_time(event.time, 3),
        "Signature": SIGNATURE,
        "SigningCertUrl": f"{endpoint}/SimpleNotificationService-{API_ID}.pem",
        "MessageId": event.id,
        "Message": _message_text(event.data),
        "MessageAttributes": {
            name: {"Type": "String", "Value": value} for name, value in event.attributes.items()
        },
        "Type": "Notification",
        "UnsubscribeUrl": f"{endpoint}/?Action=Unsubscribe&SubscriptionArn={subscription_arn}",
        "TopicArn": topic_arn,
        "Subject": event.subject,
    }
    return {
        "Records": [
            {
                "EventVersion": "1.0",
                "EventSubscriptionArn": subscription_arn,
                "EventSource": "aws:sns",
                "Sns": message,
            }
        ]
    }


def _message_text(data: Any) -> str:
    """SNS carries text: a string as it is, bytes in base64, anything else as JSON."""
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        return base64.b64encode(data).decode("ascii")
    return msgspec.json.encode(data).decode()


def eventbridge_event(
    event: TopicEvent, *, region: str = REGION, account: str = ACCOUNT
) -> dict[str, Any]:
    """An event as an EventBridge rule delivers it: `detail-type` is the event's type.

    EventBridge details are JSON objects; data that is not one arrives as `{"data": value}`
    (None as `{}`).
    """
    detail = _detail(event.data)
    return _eventbridge(event.id, event.type, event.source, event.time, [], detail, region, account)


def _detail(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if isinstance(data, Mapping):
        return dict(data)
    return {"data": data}


def scheduled_event(
    tick: ScheduleTick, rule: str, *, region: str = REGION, account: str = ACCOUNT
) -> Any:
    """A tick as a scheduled EventBridge rule delivers it; a tick with a payload delivers the
    payload itself, as a rule target with constant input does."""
    if tick.payload is not None:
        return tick.payload
    resources = [f"arn:aws:events:{region}:{account}:rule/{rule}"]
    return _eventbridge(
        tick.id, "Scheduled Event", "aws.events", tick.time, resources, {}, region, account
    )


def _eventbridge(
    event_id: str,
    detail_type: str,
    source: str,
    time: float,
    resources: list[str],
    detail: dict[str, Any],
    region: str,
    account: str,
) -> dict[str, Any]:
    return {
        "version": "0",
        "id": event_id,
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": format_time(time, 0),
        "region": region,
        "resources": resources,
        "detail": detail,
    }


# Kinesis


def kinesis_event(
    records: Iterable[StreamRecord], stream: str, *, region: str = REGION, account: str = ACCOUNT
) -> dict[str, Any]:
    """Records of one partition as Lambda's Kinesis event source delivers them (data base64,
    sequence numbers as strings, arrival in seconds)."""
    arn = f"arn:aws:kinesis:{region}:{account}:stream/{stream}"
    role = f"arn:aws:iam::{account}:role/{API_ID}"
    return {
        "Records": [
            {
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record.key,
                    "sequenceNumber": str(record.sequence),
                    "data": base64.b64encode(record.data).decode("ascii"),
                    "approximateArrivalTimestamp": round(record.arrival, 3),
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"{shard_id(record.partition)}:{record.sequence}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": role,
                "awsRegion": region,
                "eventSourceARN": arn,
            }
            for record in records
        ]
    }


def shard_id(partition: int) -> str:
    return f"shardId-{partition:012d}"


# DynamoDB Streams


def dynamodb_event(
    changes: Iterable[TableChange],
    table: str,
    *,
    stream_created: float = 0.0,
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """Changes as Lambda's DynamoDB Streams event source delivers them (NEW_AND_OLD_IMAGES);
    a removal by TTL names the DynamoDB service as its user identity."""
    label = format_time(stream_created, 3).removesuffix("Z")  # DynamoDB's stream label
    arn = f"arn:aws:dynamodb:{region}:{account}:table/{table}/stream/{label}"
    return {"Records": [_dynamodb_record(change, arn, region) for change in changes]}


def _dynamodb_record(change: TableChange, arn: str, region: str) -> Record:
    images = {"Keys": marshal_item(change.key)}
    if change.new is not None:
        images["NewImage"] = marshal_item(change.new)
    if change.old is not None:
        images["OldImage"] = marshal_item(change.old)
    record: Record = {
        "eventID": change.id,
        "eventName": change.kind,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": region,
        "dynamodb": {
            "ApproximateCreationDateTime": int(change.time),
            **images,
            "SequenceNumber": str(change.sequence),
            "SizeBytes": len(msgspec.json.encode(images)),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": arn,
    }
    if change.expired:
        record["userIdentity"] = dict(DYNAMODB_SERVICE)
    return record


def marshal(value: Any) -> AttributeValue:
    """A JSON value (or bytes) as a DynamoDB AttributeValue: numbers as `N` strings, bytes as
    base64 `B`; InvalidRequest for what DynamoDB cannot hold (NaN, infinity, other types)."""
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidRequest(f"DynamoDB numbers are finite, not {value!r}")
        return {"N": repr(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"B": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {"M": marshal_item(value)}
    if isinstance(value, list | tuple):
        return {"L": [marshal(item) for item in value]}
    raise InvalidRequest(f"a {type(value).__name__} cannot be a DynamoDB attribute value")


def marshal_item(item: Mapping[str, Any]) -> dict[str, AttributeValue]:
    for name in item:
        if not isinstance(name, str):
            raise InvalidRequest(f"DynamoDB attribute names are strings, not {name!r}")
    return {name: marshal(value) for name, value in item.items()}


def unmarshal(value: Mapping[str, Any]) -> Any:
    """The JSON value of an AttributeValue (sets become lists, `B` bytes)."""
    if not isinstance(value, Mapping) or len(value) != 1:
        raise InvalidRequest(f"an AttributeValue is an object with one type key, not {value!r}")
    ((kind, content),) = value.items()
    decode = _DECODERS.get(kind)
    if decode is None:
        raise InvalidRequest(f"{kind!r} is not a DynamoDB attribute type")
    return decode(content)


def unmarshal_item(item: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(item, Mapping):
        raise InvalidRequest(f"a DynamoDB item is an object, not {type(item).__name__}")
    return {name: unmarshal(value) for name, value in item.items()}


def _number(text: object) -> int | float:
    if not isinstance(text, str):
        raise InvalidRequest(f"a DynamoDB number is a string, not {text!r}")
    try:
        return int(text) if _INTEGER.fullmatch(text) else float(text)
    except ValueError:
        raise InvalidRequest(f"{text!r} is not a number") from None


def _binary(text: object) -> bytes:
    if not isinstance(text, str):
        raise InvalidRequest(f"a DynamoDB binary is a base64 string, not {text!r}")
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise InvalidRequest(f"{text!r} is not valid base64") from None


def _typed(kind: type, name: str) -> Callable[[Any], Any]:
    def check(content: Any) -> Any:
        if not isinstance(content, kind):
            raise InvalidRequest(f"a DynamoDB {name} holds a {kind.__name__}, not {content!r}")
        return content

    return check


def _each(decode: Callable[[Any], Any]) -> Callable[[Any], list[Any]]:
    def each(content: Any) -> list[Any]:
        return [decode(item) for item in _typed(list, "list or set")(content)]

    return each


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "NULL": lambda content: None,
    "BOOL": _typed(bool, "BOOL"),
    "N": _number,
    "S": _typed(str, "S"),
    "B": _binary,
    "M": unmarshal_item,
    "L": _each(unmarshal),
    "SS": _each(_typed(str, "SS")),
    "NS": _each(_number),
    "BS": _each(_binary),
}


# S3


def s3_event(
    event: ObjectEvent,
    *,
    configuration: str = API_ID,
    region: str = REGION,
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """An object event as S3 notifies Lambda (event structure 2.1): the key URL-encoded as S3
    does (form encoding: a space is `+`), size and ETag only for a created object."""
    created = event.kind == "created"
    request_id = uuid.uuid5(uuid.NAMESPACE_OID, event.id).hex[:16].upper()
    obj: dict[str, Any] = {"key": quote_plus(event.key, safe="/")}
    if created:
        obj["size"] = event.size
        obj["eTag"] = (event.etag or "").strip('"')
    obj["sequencer"] = f"{event.sequence:016X}"
    record = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": format_time(event.time, 3),
        "eventName": "ObjectCreated:Put" if created else "ObjectRemoved:Delete",
        "userIdentity": {"principalId": account},
        "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {
            "x-amz-request-id": request_id,
            "x-amz-id-2": base64.b64encode(request_id.encode()).decode("ascii"),
        },
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration,
            "bucket": {
                "name": event.bucket,
                "ownerIdentity": {"principalId": account},
                "arn": f"arn:aws:s3:::{event.bucket}",
            },
            "object": obj,
        },
    }
    return {"Records": [record]}


# AWS IoT rules


def iot_rule_event(message: MqttMessage) -> Any:
    """What an AWS IoT rule `SELECT * FROM 'filter'` hands its Lambda action: the message's JSON
    payload itself. The Lambda action takes no binary payload, so one that is not JSON arrives
    as the rule `SELECT encode(*, 'base64') AS data` would pass it (AWS IoT's advice)."""
    try:
        return decode_json(message.payload)
    except msgspec.DecodeError:
        return {"data": base64.b64encode(message.payload).decode()}


# API Gateway HTTP API, payload format 2.0


def http_api_event(
    http: HttpEvent,
    *,
    request_id: str | None = None,
    time: float | None = None,
    route: str = "$default",
    source_ip: str = "127.0.0.1",
    account: str = ACCOUNT,
) -> dict[str, Any]:
    """A request as an HTTP API hands it to Lambda (payload 2.0): lower-case header names with
    repeats joined by commas, cookies apart, a body that is not text in base64.

    `route` is the route key (`GET /orders/{id}`, or `$default`); `request_id` (the gateway's
    own, not the invocation's) and `time` default to new ones.
    """
    moment = _now() if time is None else time
    headers, cookies = _request_headers(http.headers)
    query = http.query_string.decode("latin-1")
    host = headers.get("host", "localhost")
    event: dict[str, Any] = {"version": "2.0", "routeKey": route, "rawPath": http.path}
    event["rawQueryString"] = query
    if cookies:
        event["cookies"] = cookies
    event["headers"] = headers
    parameters = _joined(parse_qsl(query, keep_blank_values=True))
    if parameters:
        event["queryStringParameters"] = parameters
    event["requestContext"] = {
        "accountId": account,
        "apiId": API_ID,
        "domainName": host,
        "domainPrefix": host.partition(":")[0].partition(".")[0],
        "http": {
            "method": http.method,
            "path": http.path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": headers.get("user-agent", ""),
        },
        "requestId": request_id or new_id(),
        "routeKey": route,
        "stage": "$default",
        "time": _access_log_time(moment),
        "timeEpoch": int(moment * 1000),
    }
    if http.params:
        event["pathParameters"] = dict(http.params)
    event["isBase64Encoded"] = False
    if http.body:
        event["body"], event["isBase64Encoded"] = _request_body(
            http.body, headers.get("content-type")
        )
    return event


def _request_headers(pairs: Iterable[tuple[bytes, bytes]]) -> tuple[dict[str, str], list[str]]:
    cookies: list[str] = []
    fields: list[tuple[str, str]] = []
    for raw_name, raw_value in pairs:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        else:
            fields.append((name, value))
    return _joined(fields), cookies


def _joined(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Repeated names once, their values joined with commas (payload 2.0 has no multi-value)."""
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value
    return joined


def _request_body(body: bytes, content_type: str | None) -> tuple[str, bool]:
    if content_type is not None and _is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _is_text(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def _access_log_time(epoch: float) -> str:
    """`12/Mar/2020:19:03:58 +0000`, with English month names whatever the locale."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return (
        f"{moment.day:02d}/{_MONTHS[moment.month - 1]}/{moment.year}:"
        f"{moment.strftime('%H:%M:%S')} +0000"
    )


def http_reply(value: Any) -> HttpReply:
    """What an HTTP API makes of a Lambda answer (payload 2.0).

    A dict with `statusCode` is a response: `headers`, `body` (base64 if `isBase64Encoded`),
    `cookies` (one set-cookie header each); without a content-type it is application/json.
    ValueError names what is wrong with a malformed response.

    Anything else is a 200 application/json response whose body is the answer as JSON, a
    string as it is. That is API Gateway's rule ("Lambda function response for format 2.0",
    https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-develop-integrations-lambda.html),
    whose example answers a returned "Hello from Lambda!" with that text, not JSON-encoded (as
    SAM CLI does): so handlers that `return json.dumps(data)` answer that JSON.
    """
    from nimbus.compute.handlers import shape_http  # handlers dispatches to this module

    if not (isinstance(value, Mapping) and "statusCode" in value):
        body = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        return shape_http(Response(body.encode(), 200, {"content-type": JSON_TYPE}))
    status = value["statusCode"]
    headers = {str(name).lower(): _header_text(name, v) for name, v in _headers(value).items()}
    headers.setdefault("content-type", JSON_TYPE)
    reply = shape_http(Response(_response_body(value), status, headers))
    reply.headers.extend(_cookie_header(cookie) for cookie in _cookies(value))
    return reply


def _headers(response: Mapping[str, Any]) -> Mapping[str, Any]:
    headers = response.get("headers") or {}
    if not isinstance(headers, Mapping):
        raise ValueError(f"the response's headers are an object, not {type(headers).__name__}")
    return headers


def _header_text(name: object, value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return msgspec.json.encode(value).decode()
    raise ValueError(f"the value of header {name!r} is a string, number or boolean")


def _response_body(response: Mapping[str, Any]) -> bytes:
    body = response.get("body")
    if body is None:
        return b""
    text = body if isinstance(body, str) else msgspec.json.encode(body).decode()
    if not response.get("isBase64Encoded"):
        return text.encode()
    try:
        return base64.b64decode(text, validate=True)
    except binascii.Error:
        raise ValueError("the response's isBase64Encoded body is not valid base64") from None


def _cookies(response: Mapping[str, Any]) -> list[str]:
    cookies = response.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise ValueError("the response's cookies are a list of strings")
    return cookies


def _cookie_header(cookie: str) -> tuple[bytes, bytes]:
    if "\r" in cookie or "\n" in cookie or "\0" in cookie:
        raise ValueError(f"the cookie {cookie!r} contains a line break or NUL")
    try:
        return b"set-cookie", cookie.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"the cookie {cookie!r} is not ISO-8859-1 text") from None


# API Gateway WebSocket APIs (Lambda proxy integration)

WEBSOCKET_EVENT_TYPES = {"connect": "CONNECT", "message": "MESSAGE", "disconnect": "DISCONNECT"}


def websocket_event(
    event: WebSocketEvent,
    *,
    raw_headers: Iterable[tuple[bytes, bytes]] = (),
    query_string: bytes = b"",
    request_id: str | None = None,
) -> dict[str, Any]:
    """A WebSocket API's event as Lambda gets it: `requestContext` with `routeKey`,
    `eventType` (CONNECT, MESSAGE, DISCONNECT) and `connectionId`; the handshake's headers and
    query on CONNECT (names as the client sent them, repeats in the multi-value maps); the
    message as `body` on MESSAGE (base64 when binary); the close code on DISCONNECT."""
    moment = event.time
    host = event.headers.get("host", "localhost")
    context: dict[str, Any] = {
        "routeKey": event.route,
        "eventType": WEBSOCKET_EVENT_TYPES[event.kind],
        "extendedRequestId": request_id or event.id,
        "requestTime": _access_log_time(moment),
        "messageDirection": "IN",
        "stage": "$default",
        "connectedAt": int(event.connected_at * 1000),
        "requestTimeEpoch": int(moment * 1000),
        "identity": {
            "sourceIp": event.source_ip,
            "userAgent": event.headers.get("user-agent", ""),
        },
        "requestId": request_id or event.id,
        "domainName": host,
        "connectionId": event.connection_id,
        "apiId": API_ID,
    }
    shaped: dict[str, Any] = {}
    if event.kind == "connect":
        single: dict[str, str] = {}
        multiple: dict[str, list[str]] = {}
        for raw_name, raw_value in raw_headers:
            name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
            single[name] = value
            multiple.setdefault(name, []).append(value)
        shaped |= {"headers": single, "multiValueHeaders": multiple}
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
        if pairs:
            shaped["queryStringParameters"] = dict(pairs)
            values: dict[str, list[str]] = {}
            for name, value in pairs:
                values.setdefault(name, []).append(value)
            shaped["multiValueQueryStringParameters"] = values
    elif event.kind == "message":
        context["messageId"] = event.id
    else:
        context["disconnectStatusCode"] = event.code
        context["disconnectReason"] = event.reason
    shaped["requestContext"] = context
    shaped["isBase64Encoded"] = event.data is not None
    if event.text is not None:
        shaped["body"] = event.text
    elif event.data is not None:
        shaped["body"] = base64.b64encode(event.data).decode("ascii")
    return shaped


# Partial batch responses


def batch_item_failures(response: Any, identifiers: Collection[str]) -> list[str]:
    """The items a Lambda handler's partial batch response reports as failed, as Lambda reads it.

    No response, or one without `batchItemFailures` (what a handler that does not report items
    returns), or a null or empty list: all succeeded. A malformed list (an entry without an
    `itemIdentifier`, a null, empty or unknown identifier): the whole batch failed.
    """
    if not isinstance(response, Mapping) or response.get("batchItemFailures") is None:
        return []
    try:
        failures = {"batchItemFailures": response["batchItemFailures"]}  # Lambda reads no more
        return list(failed_items(failures, set(identifiers)))
    except InvalidRequest:
        return list(identifiers)


def item_identifier(item: QueueMessage | StreamRecord | TableChange) -> str:
    """The `itemIdentifier` Lambda expects for an item: the SQS message id, or the Kinesis or
    DynamoDB Streams sequence number."""
    if isinstance(item, QueueMessage):
        return item.id
    return str(item.sequence)


def _millis(epoch: float) -> str:
    return str(int(epoch * 1000))
