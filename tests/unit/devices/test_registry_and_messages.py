"""The device registry (what a device may publish, decoded how) and the gateway's pure decision."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.devices.domain.decoders import PayloadUndecodable
from services.devices.domain.messages import interpret
from services.devices.domain.registry import DeviceRefused, RegistryError, load_registry, parse_registry
from services.devices.domain.topics import Scheme, TopicRejected
from services.devices.domain.uplinks import UplinkRejected
from tests.unit.devices.test_topics_and_uplinks import chirpstack_uplink, tts_uplink

KINDS = {"environment": {"air-quality", "noise"}, "waste": {"container-level"}}
NOW = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)

REGISTRY = {
    "decoders": {"acme-fill-v2": {"kind": "fields", "fields": [
        {"name": "fill_pct", "offset": 0, "type": "uint8"},
        {"name": "temperature", "offset": 1, "type": "int16", "scale": 0.1},
    ]}},
    "devices": [
        {"device_id": "air-0001", "domain": "environment", "kind": "air-quality", "entity_id": "ber-air-01",
         "city": "berlin"},
        {"device_id": "bin-7", "dev_eui": "0004A30B001C0530", "domain": "waste", "kind": "container-level",
         "entity_id": "ber-c-0007", "decoder": "cayenne-lpp",
         "fields": {"temperature_3": "temperature_c", "humidity_9": {"to": "fill_ratio", "scale": 0.01}}},
        {"device_id": "bin-8", "dev_eui": "70b3d57ed0041234", "domain": "waste", "kind": "container-level",
         "entity_id": "ber-c-0008", "decoder": "acme-fill-v2",
         "fields": {"fill_pct": {"to": "fill_ratio", "scale": 0.01}, "temperature": "temperature_c"}},
    ],
}


def test_registry_file_loads_from_yaml_and_finds_by_device_id_or_dev_eui(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "devices.yaml"
    path.write_text(yaml.safe_dump(REGISTRY))
    registry = load_registry(path, KINDS)
    assert len(registry) == 3
    assert registry.find("0004a30b001c0530").entity_id == "ber-c-0007"
    assert registry.find("nope", "bin-8").entity_id == "ber-c-0008"
    with pytest.raises(DeviceRefused, match="unknown device 'ghost'"):
        registry.find("ghost")


def test_the_shipped_local_registry_is_valid() -> None:
    from services.devices.gateway.ingest import INGESTS
    from services.devices.settings import DEFAULT_REGISTRY

    kinds: dict[str, set[str]] = {}
    for domain, kind in INGESTS:
        kinds.setdefault(domain, set()).add(kind)
    assert len(load_registry(DEFAULT_REGISTRY, kinds)) > 0


@pytest.mark.parametrize("change, problem", [
    (lambda d: d["devices"][0].update(domain="parking"), r"devices\[0\]\.domain: 'parking' is not one of"),
    (lambda d: d["devices"][0].update(kind="water"), r"devices\[0\]\.kind: 'water' is not one of"),
    (lambda d: d["devices"][1].update(dev_eui="xyz"), r"devices\[1\]\.dev_eui: 16 hex digits"),
    (lambda d: d["devices"][1].update(decoder="lpp"), r"devices\[1\]\.decoder: 'lpp' is not one of"),
    (lambda d: d["devices"][1].update(fields={"x": {"to": "y", "scale": "big"}}),
     r"devices\[1\]\.fields\.x\.scale: expected a finite number"),
    (lambda d: d["devices"][2].update(dev_eui="0004a30b001c0530"), r"devices\[2\]: 0004a30b001c0530 is already"),
    (lambda d: d["devices"][0].update(entity=1), r"devices\[0\]\.entity: unknown key"),
    (lambda d: d["decoders"]["acme-fill-v2"]["fields"][1].update(type="int12"),
     r"decoders\.acme-fill-v2\.fields\[1\]\.type"),
])
def test_registry_errors_name_the_entry_and_field(change, problem) -> None:  # type: ignore[no-untyped-def]
    import copy

    document = copy.deepcopy(REGISTRY)
    change(document)
    with pytest.raises(RegistryError, match=problem):
        parse_registry(document, KINDS)


REG = parse_registry(REGISTRY, KINDS)


def test_direct_message_passes_its_body_on_in_http_shape() -> None:
    body = b'{"observations": [{"station_id": "ber-air-01", "observe_time": "2026-11-30T00:59:00Z", "pm25_ugm3": 8}]}'
    request = interpret("madina/berlin/environment/air-quality/air-0001", body, REG, NOW)
    assert request.scheme is Scheme.DIRECT and request.device.entity_id == "ber-air-01"
    assert request.body["observations"][0]["pm25_ugm3"] == 8


def test_direct_device_may_publish_only_its_own_domain_kind_and_city() -> None:
    with pytest.raises(DeviceRefused, match="may publish environment/air-quality, not environment/noise"):
        interpret("madina/berlin/environment/noise/air-0001", b"{}", REG, NOW)
    with pytest.raises(DeviceRefused, match="belongs to city berlin, not hamburg"):
        interpret("madina/hamburg/environment/air-quality/air-0001", b"{}", REG, NOW)
    with pytest.raises(UplinkRejected, match="body: not JSON"):
        interpret("madina/berlin/environment/air-quality/air-0001", b"{oops", REG, NOW)


def test_chirpstack_lpp_uplink_is_decoded_and_mapped_with_the_network_servers_time() -> None:
    # LPP: channel 3 temperature 27.2 C, channel 9 humidity 80 % (read as fill 0.8 by the mapping).
    payload = bytes.fromhex("0367011009" + "68A0")
    request = interpret("application/3f2a/device/0004a30b001c0530/event/up",
                        chirpstack_uplink(data=payload), REG, NOW)
    assert request.body == {"temperature_c": 27.2, "fill_ratio": 0.8}
    assert request.observe_time == datetime(2026, 11, 30, 1, 2, 3, 123456, tzinfo=UTC)


def test_tts_uplink_with_an_operator_decoder() -> None:
    request = interpret("v3/app@t/devices/bin-8/up", tts_uplink(device_id="bin-8", data=bytes.fromhex("4B00FA")),
                        REG, NOW)
    assert request.device.entity_id == "ber-c-0008"
    assert request.body == {"fill_ratio": 0.75, "temperature_c": 25.0}


def test_bad_messages_are_refused_with_the_reason() -> None:
    with pytest.raises(DeviceRefused, match="unknown device '0004a30b001c0599'"):
        interpret("application/1/device/0004a30b001c0599/event/up",
                  chirpstack_uplink(dev_eui="0004a30b001c0599"), REG, NOW)
    with pytest.raises(PayloadUndecodable, match="temperature needs 2 bytes"):
        interpret("application/1/device/0004a30b001c0530/event/up", chirpstack_uplink(data=b"\x03\x67"), REG, NOW)
    with pytest.raises(DeviceRefused, match="none of the mapped fields"):
        interpret("application/1/device/0004a30b001c0530/event/up",
                  chirpstack_uplink(data=bytes.fromhex("0167FFD7")), REG, NOW)
    with pytest.raises(DeviceRefused, match="without a decoder"):
        interpret("v3/app/devices/air-0001/up", tts_uplink(device_id="air-0001"), REG, NOW)
    with pytest.raises(TopicRejected):
        interpret("madina/x", b"{}", REG, NOW)
