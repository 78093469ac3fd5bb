"""Topic schemes and LoRaWAN uplink bodies as ChirpStack v4 and The Things Stack v3 publish them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from services.devices.domain.topics import Scheme, TopicRejected, parse_topic
from services.devices.domain.uplinks import UplinkRejected, parse_uplink

LPP_TWO_TEMPERATURES = bytes.fromhex("03670110056700FF")


def test_direct_topic_names_city_domain_kind_and_device() -> None:
    address = parse_topic("madina/berlin/environment/air-quality/air-0001")
    assert (address.scheme, address.city, address.domain, address.kind, address.device_id) == (
        Scheme.DIRECT, "berlin", "environment", "air-quality", "air-0001")


def test_chirpstack_topic_gives_the_dev_eui_lower_case() -> None:
    address = parse_topic("application/3f2a/device/0004A30B001C0530/event/up")
    assert (address.scheme, address.device_id, address.application) == (
        Scheme.CHIRPSTACK, "0004a30b001c0530", "3f2a")


def test_tts_topic_gives_the_device_id_and_application_at_tenant() -> None:
    address = parse_topic("v3/city-sensors@madina/devices/bin-7/up")
    assert (address.scheme, address.device_id, address.application) == (
        Scheme.THE_THINGS_STACK, "bin-7", "city-sensors@madina")


@pytest.mark.parametrize("topic", [
    "madina/berlin/environment/air-quality", "madina/berlin//air-quality/x",
    "application/1/device/0004a30b001c0530/event/join", "v3/app/devices/x/join", "other/topic",
])
def test_other_topics_are_refused_saying_what_was_expected(topic: str) -> None:
    with pytest.raises(TopicRejected, match=r"expected|not madina"):
        parse_topic(topic)


def chirpstack_uplink(dev_eui: str = "0004a30b001c0530", data: bytes = LPP_TWO_TEMPERATURES,
                      obj: dict[str, object] | None = None) -> bytes:
    # Shape of ChirpStack v4's integration.UplinkEvent as its MQTT integration publishes it (JSON).
    event: dict[str, object] = {
        "deduplicationId": "3e6a4b0a-6b8e-4b4b-9b1e-9c1c0f7b2d11", "time": "2026-11-30T01:02:03.123456789+00:00",
        "deviceInfo": {"tenantId": "52f14cd4", "applicationId": "3f2a", "deviceName": "bin-7", "devEui": dev_eui},
        "devAddr": "00189440", "adr": True, "dr": 5, "fCnt": 12, "fPort": 2, "confirmed": False,
        "data": base64.b64encode(data).decode(), "rxInfo": [], "txInfo": {"frequency": 868100000},
    }
    if obj is not None:
        event["object"] = obj
    return json.dumps(event).encode()


def tts_uplink(device_id: str = "bin-7", data: bytes = LPP_TWO_TEMPERATURES,
               decoded: dict[str, object] | None = None) -> bytes:
    # Shape of The Things Stack v3's uplink message on its MQTT server.
    message: dict[str, object] = {"f_port": 2, "f_cnt": 12, "frm_payload": base64.b64encode(data).decode(),
                                  "received_at": "2026-11-30T01:02:03.5Z", "rx_metadata": []}
    if decoded is not None:
        message["decoded_payload"] = decoded
    return json.dumps({"end_device_ids": {"device_id": device_id, "application_ids": {"application_id": "app"},
                                          "dev_eui": "70B3D57ED0041234", "dev_addr": "260B1234"},
                       "received_at": "2026-11-30T01:02:04Z", "uplink_message": message}).encode()


def test_chirpstack_uplink_gives_payload_object_port_and_time() -> None:
    address = parse_topic("application/3f2a/device/0004a30b001c0530/event/up")
    uplink = parse_uplink(address, chirpstack_uplink(obj={"fill": 0.4}))
    assert uplink.payload == LPP_TWO_TEMPERATURES and uplink.f_port == 2 and uplink.decoded == {"fill": 0.4}
    assert uplink.received_time == datetime(2026, 11, 30, 1, 2, 3, 123456, tzinfo=UTC)
    assert uplink.names == ("0004a30b001c0530",)


def test_tts_uplink_gives_payload_decoded_payload_and_both_names() -> None:
    uplink = parse_uplink(parse_topic("v3/app@t/devices/bin-7/up"), tts_uplink(decoded={"fill": 0.4}))
    assert uplink.payload == LPP_TWO_TEMPERATURES and uplink.decoded == {"fill": 0.4}
    assert uplink.received_time == datetime(2026, 11, 30, 1, 2, 3, 500000, tzinfo=UTC)
    assert uplink.names == ("bin-7", "70b3d57ed0041234")


def test_uplink_refusals_name_the_field() -> None:
    chirpstack = parse_topic("application/3f2a/device/0004a30b001c0530/event/up")
    with pytest.raises(UplinkRejected, match="body: not JSON"):
        parse_uplink(chirpstack, b"\xff\x00")
    with pytest.raises(UplinkRejected, match="data: not valid base64"):
        parse_uplink(chirpstack, json.dumps({"data": "***"}).encode())
    with pytest.raises(UplinkRejected, match=r"deviceInfo\.devEui: 0004a30b001c0531 but the topic"):
        parse_uplink(chirpstack, chirpstack_uplink(dev_eui="0004a30b001c0531"))
    with pytest.raises(UplinkRejected, match="uplink_message: required"):
        parse_uplink(parse_topic("v3/app/devices/bin-7/up"), json.dumps({"end_device_ids": {}}).encode())
