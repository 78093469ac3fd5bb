"""The gateway's shared-table MQTT 5 properties decode exactly what paho's own class decodes."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from services.devices.gateway.paho_properties import SharedTableProperties, share_paho_property_tables

TOPIC = b"madina/berkane/waste/container-level/bin-1"


def publish_packet(properties: Properties | None, payload: bytes = b'{"fill_ratio": 0.5}') -> bytes:
    """A QoS 1 PUBLISH's variable header and payload, as paho's decoder takes them."""
    packed = properties.pack() if properties is not None else b"\x00"
    return struct.pack("!H", len(TOPIC)) + TOPIC + struct.pack("!H", 7) + packed + payload


def full_properties() -> Properties:
    properties = Properties(PacketTypes.PUBLISH)
    properties.PayloadFormatIndicator = 1
    properties.MessageExpiryInterval = 3600
    properties.ContentType = "application/json"
    properties.ResponseTopic = "replies/bin-1"
    properties.CorrelationData = b"\x01\x02"
    properties.UserProperty = [("site", "berkane"), ("fw", "1.2")]
    properties.TopicAlias = 3
    return properties


def decoded(properties: Properties | None, payload: bytes = b'{"fill_ratio": 0.5}') -> Any:
    return _packet.decode_publish(0x32, publish_packet(properties, payload), MQTTProtocolVersion.MQTTv5)


@pytest.mark.parametrize("sent", [None, full_properties()], ids=["no properties", "every publish property"])
def test_a_publish_decodes_the_same_with_shared_tables_as_with_pahos_own_class(
    sent: Properties | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_packet, "Properties", Properties)
    expected = decoded(sent)
    assert share_paho_property_tables()  # the pinned paho-mqtt

    got = decoded(sent)

    assert isinstance(got.properties, SharedTableProperties)
    assert got.properties.json() == expected.properties.json()
    assert str(got.properties) == str(expected.properties)
    assert (got.topic, got.mid, got.payload, got.qos) == (expected.topic, expected.mid, expected.payload, expected.qos)
    monkeypatch.setattr(_packet, "Properties", Properties)


def test_each_decoded_message_has_only_its_own_properties() -> None:
    first = SharedTableProperties(PacketTypes.PUBLISH)
    first.unpack(full_properties().pack())
    second = SharedTableProperties(PacketTypes.PUBLISH)
    second.unpack(b"\x00")

    assert second.json() == {} and second.isEmpty()
    assert first.json()["UserProperty"] == [("site", "berkane"), ("fw", "1.2")]
    first.unpack(b"\x00")  # unpacking again starts from nothing, as paho's clear() does
    assert first.isEmpty()
