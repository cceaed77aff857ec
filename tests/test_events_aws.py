"""AWS-style events: each source's event dict has exactly the structure of the sample events
AWS documents for Lambda (same keys, same value types), the values mean the same thing, and
the reverse mappings (HTTP API responses, partial batch responses) follow AWS's rules."""

from __future__ import annotations

import base64
import logging
import re
import time
from typing import Any
from urllib.parse import unquote_plus

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nimbus.compute.protocol import HttpEvent
from nimbus.context import Context
from nimbus.errors import InvalidRequest
from nimbus.events import aws, lambda_context
from nimbus.events.lambda_context import LambdaContext
from nimbus.events.types import (
    ObjectEvent,
    QueueMessage,
    ScheduleTick,
    StreamRecord,
    TableChange,
    TopicEvent,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
SENT = 1545082649.183
ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
ISO_SECONDS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def shape(value: Any) -> Any:
    """The structure of an event: keys, nesting and the type of every value."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


# The sample events of the AWS Lambda developer guide (values shortened), one per source.

SQS_SAMPLE: dict[str, Any] = {
    "Records": [
        {
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
            "body": "test",
            "attributes": {
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1545082649183",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082649185",
            },
            "messageAttributes": {
                "myAttribute": {
                    "stringValue": "myValue",
                    "stringListValues": [],
                    "binaryListValues": [],
                    "dataType": "String",
                }
            },
            "md5OfBody": "098f6bcd4621d373cade4e832627b4f6",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2",
        }
    ]
}
SQS_FIFO_ATTRIBUTES: dict[str, Any] = {
    "ApproximateReceiveCount": "1",
    "SentTimestamp": "1573251510774",
    "SequenceNumber": "18849496460467696128",
    "MessageGroupId": "1",
    "SenderId": "AIDAIO23YVJENQZJOL4VO",
    "MessageDeduplicationId": "1",
    "ApproximateFirstReceiveTimestamp": "1573251510774",
}
SNS_SAMPLE: dict[str, Any] = {
    "Records": [
        {
            "EventVersion": "1.0",
            "EventSubscriptionArn": "arn:aws:sns:us-east-1:123456789012:sns-lambda:21be56ed",
            "EventSource": "aws:sns",
            "Sns": {
                "SignatureVersion": "1",
                "Timestamp": "2019-01-02T12:45:07.000Z",
                "Signature": "tcc6faL2yUC6dgZdmrwh1Y4cGa/ebXEkAi6RibDsvpi+tE/1+82j...65r==",
                "SigningCertUrl": "https://sns.us-east-1.amazonaws.com/SimpleNotif.pem",
                "MessageId": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
                "Message": "Hello from SNS!",
                "MessageAttributes": {"Test": {"Type": "String", "Value": "TestString"}},
                "Type": "Notification",
                "UnsubscribeUrl": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&...",
                "TopicArn": "arn:aws:sns:us-east-1:123456789012:sns-lambda",
                "Subject": None,
            },
        }
    ]
}
EVENTBRIDGE_SAMPLE: dict[str, Any] = {
    "version": "0",
    "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
    "detail-type": "Scheduled Event",
    "source": "aws.events",
    "account": "123456789012",
    "time": "2015-10-08T16:53:06Z",
    "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/my-scheduled-rule"],
    "detail": {},
}
KINESIS_SAMPLE: dict[str, Any] = {
    "Records": [
        {
            "kinesis": {
                "kinesisSchemaVersion": "1.0",
                "partitionKey": "1",
                "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
                "data": "SGVsbG8sIHRoaXMgaXMgYSB0ZXN0Lg==",
                "approximateArrivalTimestamp": 1545084650.987,
            },
            "eventSource": "aws:kinesis",
            "eventVersion": "1.0",
            "eventID": "shardId-000000000006:"
            "49590338271490256608559692538361571095921575989136588898",
            "eventName": "aws:kinesis:record",
            "invokeIdentityArn": "arn:aws:iam::123456789012:role/lambda-role",
            "awsRegion": "us-east-2",
            "eventSourceARN": "arn:aws:kinesis:us-east-2:123456789012:stream/lambda-stream",
        }
    ]
}
DYNAMODB_RECORD_SAMPLE: dict[str, Any] = {
    "eventID": "1",
    "eventName": "MODIFY",
    "eventVersion": "1.1",
    "eventSource": "aws:dynamodb",
    "awsRegion": "us-east-1",
    "dynamodb": {
        "ApproximateCreationDateTime": 1480452540,
        "Keys": {"Id": {"N": "101"}},
        "NewImage": {"Message": {"S": "This item has changed"}, "Id": {"N": "101"}},
        "OldImage": {"Message": {"S": "New item!"}, "Id": {"N": "101"}},
        "SequenceNumber": "222",
        "SizeBytes": 59,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    },
    "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/ExampleTableWithStream/"
    "stream/2015-06-27T00:48:05.899",
}
S3_SAMPLE: dict[str, Any] = {
    "Records": [
        {
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": "1970-01-01T00:00:00.000Z",
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "EXAMPLE"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {
                "x-amz-request-id": "EXAMPLE123456789",
                "x-amz-id-2": "EXAMPLE123/5678abcdefghijklambdaisawesome/mnopqrstuvwxyzABCDEFGH",
            },
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "testConfigRule",
                "bucket": {
                    "name": "example-bucket",
                    "ownerIdentity": {"principalId": "EXAMPLE"},
                    "arn": "arn:aws:s3:::example-bucket",
                },
                "object": {
                    "key": "test%2Fkey",
                    "size": 1024,
                    "eTag": "0123456789abcdef0123456789abcdef",
                    "sequencer": "0A1B2C3D4E5F678901",
                },
            },
        }
    ]
}
# Without the optional authorizer, authentication and stageVariables:
HTTP_API_SAMPLE: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/my/path",
    "rawQueryString": "parameter1=value1&parameter1=value2&parameter2=value",
    "cookies": ["cookie1", "cookie2"],
    "headers": {"header1": "value1", "header2": "value1,value2"},
    "queryStringParameters": {"parameter1": "value1,value2", "parameter2": "value"},
    "requestContext": {
        "accountId": "123456789012",
        "apiId": "api-id",
        "domainName": "id.execute-api.us-east-1.amazonaws.com",
        "domainPrefix": "id",
        "http": {
            "method": "POST",
            "path": "/my/path",
            "protocol": "HTTP/1.1",
            "sourceIp": "192.0.2.1",
            "userAgent": "agent",
        },
        "requestId": "id",
        "routeKey": "$default",
        "stage": "$default",
        "time": "12/Mar/2020:19:03:58 +0000",
        "timeEpoch": 1583348638390,
    },
    "body": "Hello from Lambda",
    "pathParameters": {"parameter1": "value1"},
    "isBase64Encoded": False,
}


def _message(**fields: Any) -> QueueMessage:
    values: dict[str, Any] = {
        "id": "059f36b4-87a3-44ab-83d2-661975830a7d",
        "source": "nimbus:queue:my-queue",
        "body": "test",
        "time": SENT,
        "sent_at": SENT,
        "first_received_at": SENT + 0.002,
        "receipt": "r-1",
        "attributes": {"myAttribute": "myValue"},
        **fields,
    }
    return QueueMessage(**values)


# SQS


def test_sqs_event_has_the_documented_structure_and_values() -> None:
    event = aws.sqs_event([_message()], "my-queue")
    record = event["Records"][0]
    expected = shape(SQS_SAMPLE["Records"][0]) | {"md5OfMessageAttributes": "str"}
    assert shape(record) == expected
    assert record["md5OfBody"] == SQS_SAMPLE["Records"][0]["md5OfBody"]  # MD5 of "test"
    assert record["attributes"]["SentTimestamp"] == "1545082649183"
    assert record["attributes"]["ApproximateFirstReceiveTimestamp"] == "1545082649185"
    assert record["receiptHandle"] == "r-1"
    assert record["eventSourceARN"] == "arn:aws:sqs:local-1:000000000000:my-queue"
    assert record["awsRegion"] == aws.REGION


def test_sqs_message_attributes_digest_is_the_one_sqs_computes() -> None:
    # SQS's algorithm, checked against published digests of Number attributes; pinned here.
    record = aws.sqs_event([_message(attributes={"category": "test"})], "q")["Records"][0]
    assert record["md5OfMessageAttributes"] == "dc88e3450800507c0b6096ed53c36a9f"


def test_sqs_without_attributes_has_an_empty_map_and_no_attribute_digest() -> None:
    record = aws.sqs_event([_message(attributes={})], "my-queue")["Records"][0]
    assert record["messageAttributes"] == {}
    assert "md5OfMessageAttributes" not in record


def test_sqs_fifo_messages_carry_group_dedup_and_sequence() -> None:
    message = _message(group="1", dedup_id="1", sequence=18849496460467696128, receive_count=3)
    attributes = aws.sqs_event([message], "orders.fifo")["Records"][0]["attributes"]
    assert shape(attributes) == shape(SQS_FIFO_ATTRIBUTES)
    assert attributes["SequenceNumber"] == "18849496460467696128"
    assert (attributes["MessageGroupId"], attributes["MessageDeduplicationId"]) == ("1", "1")
    assert attributes["ApproximateReceiveCount"] == "3"


def test_sqs_trace_context_becomes_the_aws_trace_header() -> None:
    record = aws.sqs_event([_message(traceparent=TRACEPARENT)], "q")["Records"][0]
    assert record["attributes"]["AWSTraceHeader"] == (
        "Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent=00f067aa0ba902b7;Sampled=1"
    )


def test_sqs_batch_keeps_message_order() -> None:
    messages = [_message(id=f"m{n}", receipt=None) for n in range(3)]
    records = aws.sqs_event(messages, "q")["Records"]
    assert [r["messageId"] for r in records] == ["m0", "m1", "m2"]
    assert records[0]["receiptHandle"] == "m0"  # no receipt: the message id stands in


# SNS and EventBridge


def _topic_event(**fields: Any) -> TopicEvent:
    values: dict[str, Any] = {
        "id": "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "source": "nimbus:topic:orders",
        "type": "order.created",
        "time": 1546433107.0,
        "data": "Hello from SNS!",
        "attributes": {"Test": "TestString"},
        **fields,
    }
    return TopicEvent(**values)


def test_sns_event_has_the_documented_structure_and_values() -> None:
    event = aws.sns_event(_topic_event(), "orders", "f-1")
    assert shape(event) == shape(SNS_SAMPLE)
    record = event["Records"][0]
    sns = record["Sns"]
    assert sns["Timestamp"] == "2019-01-02T12:45:07.000Z"
    assert sns["TopicArn"] == "arn:aws:sns:local-1:000000000000:orders"
    assert record["EventSubscriptionArn"] == f"{sns['TopicArn']}:f-1"
    assert sns["MessageAttributes"] == {"Test": {"Type": "String", "Value": "TestString"}}
    assert (sns["Message"], sns["MessageId"], sns["Type"]) == (
        "Hello from SNS!",
        "95df01b4-ee98-5cb9-9903-4c221d41eb5e",
        "Notification",
    )


def test_sns_subscription_arn_is_stable_without_a_name() -> None:
    first = aws.sns_event(_topic_event(), "orders")["Records"][0]["EventSubscriptionArn"]
    assert first == aws.sns_event(_topic_event(), "orders")["Records"][0]["EventSubscriptionArn"]
    assert re.fullmatch(r"arn:aws:sns:local-1:000000000000:orders:[0-9a-f-]{36}", first)


@pytest.mark.parametrize(
    ("data", "message"),
    [({"a": 1}, '{"a":1}'), ([1, 2], "[1,2]"), (None, "null"), (b"\x00\x01", "AAE=")],
)
def test_sns_message_is_text(data: Any, message: str) -> None:
    sns = aws.sns_event(_topic_event(data=data, subject="hi"), "t")["Records"][0]["Sns"]
    assert sns["Message"] == message and sns["Subject"] == "hi"


def test_eventbridge_event_has_the_documented_structure() -> None:
    event = aws.eventbridge_event(_topic_event(data={"orderId": 7}))
    assert shape(event | {"detail": {}}) == shape(EVENTBRIDGE_SAMPLE) | {"resources": []}
    assert event["detail-type"] == "order.created" and event["source"] == "nimbus:topic:orders"
    assert event["detail"] == {"orderId": 7}
    assert ISO_SECONDS.fullmatch(event["time"])
    assert (event["account"], event["region"]) == (aws.ACCOUNT, aws.REGION)


@pytest.mark.parametrize(
    ("data", "detail"), [(None, {}), ("text", {"data": "text"}), (3, {"data": 3})]
)
def test_eventbridge_detail_is_always_an_object(data: Any, detail: dict[str, Any]) -> None:
    assert aws.eventbridge_event(_topic_event(data=data))["detail"] == detail


def test_scheduled_event_is_the_documented_event_exactly_but_for_values() -> None:
    tick = ScheduleTick(
        id="53dc", source="nimbus:schedule:f", expression="rate(5 minutes)", time=1444323186.0
    )
    event = aws.scheduled_event(tick, "my-scheduled-rule")
    assert event == EVENTBRIDGE_SAMPLE | {
        "id": "53dc",
        "account": aws.ACCOUNT,
        "region": aws.REGION,
        "resources": ["arn:aws:events:local-1:000000000000:rule/my-scheduled-rule"],
    }


def test_a_tick_with_a_payload_delivers_the_payload_as_constant_input_does() -> None:
    tick = ScheduleTick(source="s", expression="rate(1 hour)", payload={"job": "dedup"})
    assert aws.scheduled_event(tick, "r") == {"job": "dedup"}


# Kinesis


def test_kinesis_event_has_the_documented_structure_and_values() -> None:
    record = StreamRecord(
        source="nimbus:stream:clicks",
        partition=6,
        sequence=495903382714902566,
        key="1",
        data=b"Hello, this is a test.",
        arrival=1545084650.9871234,
    )
    event = aws.kinesis_event([record], "lambda-stream")
    assert shape(event) == shape(KINESIS_SAMPLE)
    entry = event["Records"][0]
    assert entry["kinesis"]["data"] == KINESIS_SAMPLE["Records"][0]["kinesis"]["data"]
    assert entry["kinesis"]["approximateArrivalTimestamp"] == 1545084650.987
    assert entry["kinesis"]["sequenceNumber"] == "495903382714902566"
    assert entry["eventID"] == "shardId-000000000006:495903382714902566"
    assert entry["eventSourceARN"] == "arn:aws:kinesis:local-1:000000000000:stream/lambda-stream"
    assert base64.b64decode(entry["kinesis"]["data"]) == record.data


# DynamoDB Streams


def _change(kind: Any, **fields: Any) -> TableChange:
    return TableChange(
        id="1", source="nimbus:table:t", kind=kind, time=1480452540.7, sequence=222, **fields
    )


def test_dynamodb_event_has_the_documented_structure_and_values() -> None:
    change = _change(
        "MODIFY",
        key={"Id": 101},
        old={"Id": 101, "Message": "New item!"},
        new={"Id": 101, "Message": "This item has changed"},
    )
    event = aws.dynamodb_event([change], "ExampleTableWithStream", stream_created=1435366085.899)
    record = event["Records"][0]
    assert shape(record) == shape(DYNAMODB_RECORD_SAMPLE)
    assert record["dynamodb"]["Keys"] == DYNAMODB_RECORD_SAMPLE["dynamodb"]["Keys"]
    assert record["dynamodb"]["NewImage"] == DYNAMODB_RECORD_SAMPLE["dynamodb"]["NewImage"]
    assert record["dynamodb"]["ApproximateCreationDateTime"] == 1480452540
    assert record["dynamodb"]["SequenceNumber"] == "222"
    assert record["eventSourceARN"] == (
        "arn:aws:dynamodb:local-1:000000000000:table/ExampleTableWithStream/"
        "stream/2015-06-27T00:48:05.899"
    )


def test_dynamodb_insert_and_remove_have_one_image_each() -> None:
    inserted = aws.dynamodb_event([_change("INSERT", key={"k": "a"}, new={"k": "a"})], "t")
    removed = aws.dynamodb_event([_change("REMOVE", key={"k": "a"}, old={"k": "a"})], "t")
    assert set(inserted["Records"][0]["dynamodb"]) - {"OldImage"} == set(
        inserted["Records"][0]["dynamodb"]
    )
    assert "NewImage" in inserted["Records"][0]["dynamodb"]
    assert "OldImage" in removed["Records"][0]["dynamodb"]
    assert "NewImage" not in removed["Records"][0]["dynamodb"]
    assert "userIdentity" not in removed["Records"][0]


def test_a_ttl_removal_names_the_dynamodb_service() -> None:
    event = aws.dynamodb_event(
        [_change("REMOVE", key={"k": "a"}, old={"k": "a"}, expired=True)], "t"
    )
    assert event["Records"][0]["userIdentity"] == {
        "type": "Service",
        "principalId": "dynamodb.amazonaws.com",
    }


def test_marshal_writes_every_attribute_type() -> None:
    item = {
        "s": "text",
        "n": 42,
        "f": 1.5,
        "big": 10**30,
        "t": True,
        "none": None,
        "b": b"\x00\x01",
        "l": [1, "a"],
        "m": {"inner": False},
    }
    assert aws.marshal_item(item) == {
        "s": {"S": "text"},
        "n": {"N": "42"},
        "f": {"N": "1.5"},
        "big": {"N": "1000000000000000000000000000000"},
        "t": {"BOOL": True},
        "none": {"NULL": True},
        "b": {"B": "AAE="},
        "l": {"L": [{"N": "1"}, {"S": "a"}]},
        "m": {"M": {"inner": {"BOOL": False}}},
    }


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_marshal_round_trips(value: Any) -> None:
    attribute = aws.marshal(value)
    assert aws.unmarshal(attribute) == value
    assert aws.unmarshal(msgspec.json.decode(msgspec.json.encode(attribute))) == value


@given(JSON_VALUES)
def test_marshalled_numbers_are_strings_and_types_are_kept(value: Any) -> None:
    back = aws.unmarshal(aws.marshal(value))
    assert type(back) is type(value) or (isinstance(value, tuple) and isinstance(back, list))


def test_sets_unmarshal_to_lists() -> None:
    assert aws.unmarshal({"SS": ["a", "b"]}) == ["a", "b"]
    assert aws.unmarshal({"NS": ["1", "2.5"]}) == [1, 2.5]
    assert aws.unmarshal({"BS": ["AAE="]}) == [b"\x00\x01"]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, object(), {1: "a"}])
def test_values_dynamodb_cannot_hold_are_rejected(value: Any) -> None:
    with pytest.raises(InvalidRequest):
        aws.marshal(value)


@pytest.mark.parametrize(
    "attribute",
    [
        {},
        {"S": "a", "N": "1"},
        {"X": 1},
        {"N": 1},
        {"N": "one"},
        {"B": "!!"},
        {"S": 1},
        {"L": "a"},
        "S",
    ],
)
def test_malformed_attribute_values_are_rejected(attribute: Any) -> None:
    with pytest.raises(InvalidRequest):
        aws.unmarshal(attribute)


# S3


def _object_event(**fields: Any) -> ObjectEvent:
    values: dict[str, Any] = {
        "id": "e-1",
        "source": "nimbus:bucket:example-bucket",
        "bucket": "example-bucket",
        "key": "test/key",
        "kind": "created",
        "size": 1024,
        "etag": '"0123456789abcdef0123456789abcdef"',
        "time": 0.0,
        "sequence": 7,
    }
    return ObjectEvent(**(values | fields))


def test_s3_event_has_the_documented_structure_and_values() -> None:
    event = aws.s3_event(_object_event())
    assert shape(event) == shape(S3_SAMPLE)
    record = event["Records"][0]
    assert record["eventTime"] == "1970-01-01T00:00:00.000Z"
    assert record["eventName"] == "ObjectCreated:Put"
    assert record["s3"]["bucket"]["arn"] == "arn:aws:s3:::example-bucket"
    assert record["s3"]["object"] == {
        "key": "test/key",
        "size": 1024,
        "eTag": "0123456789abcdef0123456789abcdef",
        "sequencer": "0000000000000007",
    }


def test_s3_delete_event_has_no_size_or_etag() -> None:
    record = aws.s3_event(_object_event(kind="deleted"))["Records"][0]
    assert record["eventName"] == "ObjectRemoved:Delete"
    assert set(record["s3"]["object"]) == {"key", "sequencer"}


def test_s3_sequencers_order_the_events_of_a_bucket() -> None:
    sequencers = [
        aws.s3_event(_object_event(sequence=n))["Records"][0]["s3"]["object"]["sequencer"]
        for n in (9, 10, 300)
    ]
    assert sequencers == sorted(sequencers)


@pytest.mark.parametrize(
    ("key", "encoded"),
    [
        ("my file.pdf", "my+file.pdf"),
        ("a+b.txt", "a%2Bb.txt"),
        ("dir/ü (1).txt", "dir/%C3%BC+%281%29.txt"),
    ],
)
def test_s3_keys_are_url_encoded_as_s3_does(key: str, encoded: str) -> None:
    assert aws.s3_event(_object_event(key=key))["Records"][0]["s3"]["object"]["key"] == encoded


@given(st.text(min_size=1))
def test_s3_keys_decode_back_with_unquote_plus(key: str) -> None:
    encoded = aws.s3_event(_object_event(key=key))["Records"][0]["s3"]["object"]["key"]
    assert unquote_plus(encoded) == key


# API Gateway HTTP API, payload 2.0


def _request(**fields: Any) -> HttpEvent:
    values: dict[str, Any] = {
        "method": "POST",
        "path": "/my/path",
        "params": {"parameter1": "value1"},
        "query_string": b"parameter1=value1&parameter1=value2&parameter2=value",
        "headers": [
            (b"Header1", b"value1"),
            (b"header2", b"value1"),
            (b"Header2", b"value2"),
            (b"Cookie", b"cookie1; cookie2"),
            (b"host", b"id.execute-api.us-east-1.amazonaws.com"),
            (b"user-agent", b"agent"),
            (b"content-type", b"text/plain"),
        ],
        "body": b"Hello from Lambda",
        **fields,
    }
    return HttpEvent(**values)


def test_http_api_event_has_the_documented_structure_and_values() -> None:
    event = aws.http_api_event(
        _request(), request_id="id", time=1584039838.390, source_ip="192.0.2.1"
    )
    assert shape(event | {"headers": {}}) == shape(HTTP_API_SAMPLE | {"headers": {}})
    expected_headers = HTTP_API_SAMPLE["headers"] | {
        "host": "id.execute-api.us-east-1.amazonaws.com",
        "user-agent": "agent",
        "content-type": "text/plain",
    }
    assert event["headers"] == expected_headers
    for key in ("version", "routeKey", "rawPath", "rawQueryString", "cookies", "body"):
        assert event[key] == HTTP_API_SAMPLE[key], key
    assert event["queryStringParameters"] == HTTP_API_SAMPLE["queryStringParameters"]
    assert event["pathParameters"] == HTTP_API_SAMPLE["pathParameters"]
    context = event["requestContext"]
    sample_context = HTTP_API_SAMPLE["requestContext"]
    assert context["http"] == sample_context["http"]
    for key in (
        "domainName",
        "domainPrefix",
        "requestId",
        "routeKey",
        "stage",
        "time",
    ):
        assert context[key] == sample_context[key], key
    assert context["timeEpoch"] == 1584039838390  # the sample's own epoch is of another day
    assert context["accountId"] == aws.ACCOUNT


def test_http_api_event_without_query_cookies_params_or_body_leaves_them_out() -> None:
    event = aws.http_api_event(
        _request(method="GET", params={}, query_string=b"", headers=[], body=b""),
        request_id="r",
        time=0.0,
        route="GET /my/path",
    )
    for key in ("cookies", "queryStringParameters", "pathParameters", "body"):
        assert key not in event
    assert event["rawQueryString"] == "" and event["isBase64Encoded"] is False
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /my/path"
    assert event["requestContext"]["time"] == "01/Jan/1970:00:00:00 +0000"


def test_http_api_request_id_and_time_default_to_new_ones() -> None:
    before = time.time()
    first = aws.http_api_event(_request())["requestContext"]
    second = aws.http_api_event(_request())["requestContext"]
    assert first["requestId"] != second["requestId"]
    assert before * 1000 - 1 <= first["timeEpoch"] <= time.time() * 1000


@pytest.mark.parametrize(
    ("content_type", "body", "text"),
    [
        (b"application/json", b'{"a": "\xc3\xa9"}', True),
        (b"application/vnd.api+json; charset=utf-8", b"{}", True),
        (b"text/html", b"<p>", True),
        (b"application/json", b"\xff\xfe", False),
        (b"application/pdf", b"%PDF-1.7", False),
        (b"application/x-www-form-urlencoded", b"a=1", False),
        (None, b"raw", False),
    ],
)
def test_http_api_bodies_that_are_not_text_are_base64(
    content_type: bytes | None, body: bytes, text: bool
) -> None:
    headers = [] if content_type is None else [(b"content-type", content_type)]
    event = aws.http_api_event(_request(headers=headers, body=body), request_id="r", time=0.0)
    assert event["isBase64Encoded"] is not text
    decoded = event["body"].encode() if text else base64.b64decode(event["body"])
    assert decoded == body


def _reply_headers(value: Any) -> list[tuple[bytes, bytes]]:
    return aws.http_reply(value).headers


def test_an_http_api_response_maps_status_headers_body_and_cookies() -> None:
    reply = aws.http_reply(
        {
            "statusCode": 201,
            "headers": {"Content-Type": "text/html", "X-Count": 3, "X-Flag": True},
            "body": "<p>made</p>",
            "cookies": ["a=1; Path=/", "b=2; HttpOnly"],
            "isBase64Encoded": False,
        }
    )
    assert reply.status == 201 and reply.body == b"<p>made</p>"
    assert reply.headers == [
        (b"content-type", b"text/html"),
        (b"x-count", b"3"),
        (b"x-flag", b"true"),
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; HttpOnly"),
    ]


def test_a_base64_response_body_is_decoded() -> None:
    reply = aws.http_reply(
        {
            "statusCode": 200,
            "headers": {"content-type": "image/png"},
            "body": "AP8=",
            "isBase64Encoded": True,
        }
    )
    assert reply.body == b"\x00\xff" and reply.headers == [(b"content-type", b"image/png")]


def test_a_response_without_a_content_type_is_json_and_may_have_no_body() -> None:
    reply = aws.http_reply({"statusCode": 302, "headers": {"Location": "/next"}})
    assert reply.status == 302 and reply.body == b""
    assert reply.headers == [(b"location", b"/next"), (b"content-type", b"application/json")]


@pytest.mark.parametrize(
    ("value", "body"),
    [
        ({"message": "Hello from Lambda!"}, b'{"message":"Hello from Lambda!"}'),
        ("Hello from Lambda!", b"Hello from Lambda!"),  # as the AWS documentation has it
        ('{"made": true}', b'{"made": true}'),  # what `return json.dumps(data)` means
        ([1, 2], b"[1,2]"),
        (7, b"7"),
        (None, b"null"),
        (
            {"body": "not a response without statusCode"},
            b'{"body":"not a response without statusCode"}',
        ),
    ],
)
def test_an_answer_without_status_code_is_a_200_json_response(value: Any, body: bytes) -> None:
    reply = aws.http_reply(value)
    assert (reply.status, reply.body) == (200, body)
    assert reply.headers == [(b"content-type", b"application/json")]


@pytest.mark.parametrize(
    ("value", "named"),
    [
        ({"statusCode": "200"}, "status"),
        ({"statusCode": 99}, "status"),
        ({"statusCode": 200, "headers": ["a"]}, "headers"),
        ({"statusCode": 200, "headers": {"x": {"a": 1}}}, "'x'"),
        ({"statusCode": 200, "headers": {"bad name": "v"}}, "header name"),
        ({"statusCode": 200, "body": "%%%", "isBase64Encoded": True}, "base64"),
        ({"statusCode": 200, "cookies": "a=1"}, "cookies"),
        ({"statusCode": 200, "cookies": ["a=1\r\nx: y"]}, "line break"),
        ({"statusCode": 200, "cookies": ["ü=€"]}, "ISO-8859-1"),
    ],
)
def test_a_malformed_response_names_what_is_wrong(value: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        aws.http_reply(value)


# Partial batch responses, as Lambda reads them


IDS = ["m1", "m2", "m3"]


@pytest.mark.parametrize(
    "response",
    [
        None,
        {},
        {"statusCode": 200},
        "done",
        [1],
        {"batchItemFailures": None},
        {"batchItemFailures": []},
    ],
)
def test_no_reported_failures_means_the_whole_batch_succeeded(response: Any) -> None:
    assert aws.batch_item_failures(response, IDS) == []


def test_reported_failures_are_the_items_to_retry() -> None:
    response = {"batchItemFailures": [{"itemIdentifier": "m3"}, {"itemIdentifier": "m1"}]}
    assert aws.batch_item_failures(response, IDS) == ["m3", "m1"]


@pytest.mark.parametrize(
    "failures",
    [
        "m1",
        [{"itemIdentifier": None}],
        [{"itemIdentifier": ""}],
        [{"itemId": "m1"}],
        [{"itemIdentifier": "unknown"}],
        ["m1"],
    ],
)
def test_a_malformed_partial_response_fails_the_whole_batch(failures: Any) -> None:
    assert aws.batch_item_failures({"batchItemFailures": failures}, IDS) == IDS


def test_item_identifiers_are_message_ids_or_sequence_numbers() -> None:
    assert aws.item_identifier(_message(id="m7")) == "m7"
    record = StreamRecord(source="s", partition=0, sequence=12, key="k", data=b"")
    assert aws.item_identifier(record) == "12"
    assert aws.item_identifier(_change("INSERT", key={"k": 1}, new={"k": 1})) == "222"


# The Lambda context object


def _context(deadline: float) -> Context:
    return Context(
        request_id="req-1",
        function_name="resize",
        memory_mb=256,
        deadline=deadline,
        cold_start=True,
        trigger="queue",
        logger=logging.getLogger("resize"),
    )


def test_lambda_context_has_the_attributes_of_the_lambda_runtime() -> None:
    context = LambdaContext.from_context(_context(time.time() + 60))
    assert context.function_name == "resize"
    assert context.function_version == "$LATEST"
    assert context.invoked_function_arn == "arn:aws:lambda:local-1:000000000000:function:resize"
    assert (
        context.memory_limit_in_mb == "256"
    )  # a string, as the runtime reads it from its environment
    assert context.aws_request_id == "req-1"
    assert context.log_group_name == "/aws/lambda/resize"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", context.log_stream_name)
    assert context.identity.cognito_identity_id is None
    assert context.identity.cognito_identity_pool_id is None
    assert context.client_context is None
    assert 0 < context.get_remaining_time_in_millis() <= 60_000


def test_remaining_time_never_goes_below_zero() -> None:
    assert LambdaContext.from_context(_context(time.time() - 5)).get_remaining_time_in_millis() == 0


def test_one_log_stream_per_instance(monkeypatch: pytest.MonkeyPatch) -> None:
    first = lambda_context.log_stream_name()
    assert lambda_context.log_stream_name() == first
    monkeypatch.setattr("os.getpid", lambda: -1)  # as in a newly forked instance
    assert lambda_context.log_stream_name() != first


def test_context_log_writes_a_line_of_output(capsys: pytest.CaptureFixture[str]) -> None:
    LambdaContext.from_context(_context(time.time())).log("hello\n")
    assert capsys.readouterr().out == "hello\n"
