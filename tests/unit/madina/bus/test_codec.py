import re

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from madina.bus.codec import (
    HEADER_CONTENT_TYPE,
    HEADER_EVENT_ID,
    HEADER_EVENT_TIME,
    HEADER_SOURCE,
    InvalidRecord,
    ProtobufCodec,
    decode,
    encode,
    header,
    standard_headers,
)
from madina.bus.topics import ALERT_ACTIONS, ALERTS
from madina_proto.alerts.v1 import alerts_pb2


def _alert() -> alerts_pb2.AlertEvent:
    return alerts_pb2.AlertEvent(
        alert_id="a1",
        revision=2,
        domain="energy",
        rule_id="lamp-dark",
        severity=alerts_pb2.SEVERITY_MAJOR,
        state=alerts_pb2.ALERT_STATE_ESCALATED,
        observed_value=3.5,
        raise_time=Timestamp(seconds=1_700_000_000),
        labels={"circuit": "C12"},
    )


def test_encoded_event_decodes_to_an_equal_message() -> None:
    event = _alert()
    assert decode(ALERTS, encode(event), standard_headers(ALERTS, "test")) == event


def test_garbage_bytes_are_rejected_with_the_expected_type_named() -> None:
    with pytest.raises(InvalidRecord, match=r"madina\.alerts\.v1\.AlertEvent"):
        decode(ALERTS, b"\xff\xff\xff\xff garbage")


def test_record_of_another_type_is_rejected_by_its_content_type_header() -> None:
    action = alerts_pb2.AlertAction(action_id="x", alert_id="a1")
    with pytest.raises(InvalidRecord, match="content type"):
        decode(ALERTS, encode(action), standard_headers(ALERT_ACTIONS, "test"))
    mangled = ALERTS.content_type.encode()[:-1] + b"\xff"
    with pytest.raises(InvalidRecord, match=r"content type .*\ufffd.*, expected .*AlertEvent"):
        decode(ALERTS, encode(_alert()), [(HEADER_CONTENT_TYPE, mangled)])
    assert decode(ALERTS, encode(_alert()), [(HEADER_CONTENT_TYPE, ALERTS.content_type.encode())]) == _alert()


def test_tombstone_is_rejected() -> None:
    with pytest.raises(InvalidRecord, match="no value"):
        decode(ALERTS, None)


def test_standard_headers_carry_id_time_source_and_full_proto_name() -> None:
    headers = standard_headers(ALERTS, "environment-processor", event_time_ms=1234)
    assert header(headers, HEADER_EVENT_TIME) == b"1234"
    assert header(headers, HEADER_SOURCE) == b"environment-processor"
    assert (
        header(headers, HEADER_CONTENT_TYPE)
        == b"application/x-protobuf; messageType=madina.alerts.v1.AlertEvent"
    )
    other = standard_headers(ALERTS, "x")
    assert header(headers, HEADER_EVENT_ID) != header(other, HEADER_EVENT_ID)


def test_event_ids_are_128_random_bits_in_hex_and_the_fixed_headers_follow_each_topic_and_source() -> None:
    ids = {header(standard_headers(ALERTS, "x"), HEADER_EVENT_ID) for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(re.fullmatch(rb"[0-9a-f]{32}", event_id or b"") for event_id in ids)
    # Each hex digit of a random id takes each value about equally often.
    assert {event_id[0:1] for event_id in ids} == {b"%x" % n for n in range(16)}
    for spec, source in ((ALERTS, "a"), (ALERT_ACTIONS, "a"), (ALERTS, "b")):
        headers = standard_headers(spec, source)
        assert header(headers, HEADER_SOURCE) == source.encode()
        assert header(headers, HEADER_CONTENT_TYPE) == spec.content_type.encode()


def test_faust_codec_round_trips_and_refuses_the_wrong_type() -> None:
    codec = ProtobufCodec(alerts_pb2.AlertEvent)
    assert codec.loads(codec.dumps(_alert())) == _alert()
    with pytest.raises(TypeError):
        codec.dumps(alerts_pb2.AlertAction())
