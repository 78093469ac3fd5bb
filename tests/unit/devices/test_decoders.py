"""Payload decoders against the Cayenne LPP specification's own example frames and operator layouts."""

from __future__ import annotations

import pytest

from services.devices.domain.decoders import (
    CayenneLpp,
    FieldMappingDecoder,
    NetworkServerFields,
    PayloadUndecodable,
    field_layouts,
)

LPP = CayenneLpp()


def test_lpp_spec_example_two_temperature_sensors() -> None:
    # Cayenne LPP spec, "Device with 2 temperature sensors": 03 67 01 10 05 67 00 FF.
    assert LPP.decode(bytes.fromhex("03670110056700FF"), None) == {"temperature_3": 27.2, "temperature_5": 25.5}


def test_lpp_spec_example_negative_temperature() -> None:
    # Spec, "Device with temperature and acceleration sensors", frame N: 01 67 FF D7 -> -4.1 C.
    assert LPP.decode(bytes.fromhex("0167FFD7"), None) == {"temperature_1": -4.1}


def test_lpp_spec_example_accelerometer() -> None:
    # Same example, frame N+1: 06 71 04 D2 FB 2E 00 00 -> X 1.234 G, Y -1.234 G, Z 0 G.
    assert LPP.decode(bytes.fromhex("067104D2FB2E0000"), None) == {
        "accelerometer_6.x": 1.234, "accelerometer_6.y": -1.234, "accelerometer_6.z": 0.0}


def test_lpp_spec_example_gps() -> None:
    # Spec, "Device with GPS": 01 88 06 76 5F F2 96 0A 00 03 E8 -> 42.3519, -87.9094, 10 m.
    values = LPP.decode(bytes.fromhex("018806765FF2960A0003E8"), None)
    assert values["gps_1.latitude"] == pytest.approx(42.3519)
    assert values["gps_1.longitude"] == pytest.approx(-87.9094)
    assert values["gps_1.altitude"] == pytest.approx(10.0)


def test_lpp_humidity_barometer_analog_and_extended_types() -> None:
    payload = bytes.fromhex(
        "01 68 61"  # humidity 48.5 %
        "02 73 27 77"  # barometer 1010.3 hPa (10103)
        "03 02 FF 38"  # analog input -2.00
        "04 74 5B AC"  # voltage 234.68 V (23468, extended type 116)
        "05 80 00 2A"  # power 42 W (extended type 128)
        "06 00 01"  # digital input 1
        .replace(" ", ""))
    assert LPP.decode(payload, None) == {
        "humidity_1": 48.5, "barometer_2": 1010.3, "analog_input_3": -2.0, "voltage_4": 234.68,
        "power_5": 42.0, "digital_input_6": 1.0}


@pytest.mark.parametrize("hexbytes, problem", [
    ("", "empty payload"),
    ("0367", "temperature needs 2 bytes, 0 left"),
    ("03", "a channel without its type"),
    ("03FE0000", "unknown type 254"),
    ("018806765FF2", "gps needs 9 bytes"),
])
def test_lpp_refuses_truncated_or_unknown_frames_saying_where(hexbytes: str, problem: str) -> None:
    with pytest.raises(PayloadUndecodable, match=problem):
        LPP.decode(bytes.fromhex(hexbytes), None)


def test_network_server_fields_are_flattened_numbers_only() -> None:
    decoded = {"fill": 0.5, "battery": {"percent": 80}, "lid_open": True, "model": "x", "errors": []}
    assert NetworkServerFields().decode(b"", decoded) == {"fill": 0.5, "battery.percent": 80.0, "lid_open": 1.0}
    with pytest.raises(PayloadUndecodable, match="no decoded fields"):
        NetworkServerFields().decode(b"\x01", None)


def test_operator_field_layout_decodes_scaled_signed_little_endian_and_flags() -> None:
    decoder = FieldMappingDecoder("acme-fill-v2", field_layouts([
        {"name": "fill_pct", "offset": 0, "type": "uint8"},
        {"name": "temperature", "offset": 1, "type": "int16", "scale": 0.1},
        {"name": "battery_mv", "offset": 3, "type": "uint16", "byte_order": "little"},
        {"name": "lid_open", "offset": 5, "type": "uint8", "bit": 2},
    ], "decoders.acme-fill-v2.fields"))
    # 0x4B = 75 %, 0xFF9C = -100 -> -10.0 C, 0x0E10 little-endian = 3600 mV, flags 0b100.
    assert decoder.decode(bytes.fromhex("4BFF9C100E04"), None) == {
        "fill_pct": 75.0, "temperature": -10.0, "battery_mv": 3600.0, "lid_open": 1.0}
    with pytest.raises(PayloadUndecodable, match=r"battery_mv needs bytes 3\.\.4, payload has 4"):
        decoder.decode(bytes.fromhex("4BFF9C10"), None)


@pytest.mark.parametrize("fields, problem", [
    ([{"name": "x", "offset": 0, "type": "uint12"}], r"fields\[0\]\.type: 'uint12' is not one of"),
    ([{"name": "x", "offset": -1, "type": "uint8"}], r"fields\[0\]\.offset"),
    ([{"name": "x", "offset": 0, "type": "int16", "bit": 1}], r"fields\[0\]\.bit"),
    ([{"name": "x", "offset": 0, "type": "uint8", "scael": 2}], r"fields\[0\]\.scael: unknown key"),
    ([], "non-empty list"),
])
def test_operator_field_layout_errors_name_the_field(fields: list[dict[str, object]], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        field_layouts(fields, "decoders.d.fields")
