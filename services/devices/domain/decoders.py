"""Payload decoders: a LoRaWAN FRMPayload's bytes to named values, and operator-defined ones as data.

Every decoder returns a flat ``{name: number}``; the device registry then maps those names onto
the fields of the domain's ingest (``temperature_3`` -> ``temperature_c``).

Built in:

- ``cayenne-lpp``: Cayenne Low Power Payload (myDevices, "Cayenne LPP" specification), which many
  off-the-shelf sensors and the Arduino/RIOT ``CayenneLPP`` libraries emit. A payload is a run of
  ``channel (1 byte) | type (1 byte) | value (size of the type)``; values are big-endian and
  scaled as :data:`LPP_TYPES` says (the spec's table, plus the extended types of the
  ElectronicCats ``CayenneLPP`` library that sensors use for voltage, current, power, distance...).
  Names are ``<type>_<channel>`` (``temperature_3``); multi-axis values add the axis
  (``accelerometer_6.x``, ``gps_1.latitude``).
- ``network-server``: the fields the network server already decoded (ChirpStack's ``object``,
  The Things Stack's ``decoded_payload``), used as they are (nested objects flattened with dots).

Operator-defined (``kind: fields`` in the registry file; see :class:`FieldLayout`): fixed-offset
fields, each an integer or float of a given width and byte order, then ``value * scale + add``;
a ``bit`` turns a byte into a flag. This covers most vendors' fixed frames without code.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class PayloadUndecodable(ValueError):
    """The bytes do not decode with the device's decoder; the message says where it failed."""


class Decoder(Protocol):
    name: str

    def decode(self, payload: bytes, decoded_by_server: Mapping[str, Any] | None) -> dict[str, float]: ...


@dataclass(frozen=True)
class LppType:
    name: str
    size: int  # bytes of the value
    scale: float  # the wire integer times this is the value
    signed: bool
    axes: tuple[str, ...] = ()  # several values of size/len(axes) bytes each


# Type id -> layout. Ids 0..136 are the Cayenne LPP specification's (IPSO object id - 3200);
# 116..142 beyond it are the ElectronicCats CayenneLPP library's extended types.
LPP_TYPES: Mapping[int, LppType] = {
    0: LppType("digital_input", 1, 1, False),
    1: LppType("digital_output", 1, 1, False),
    2: LppType("analog_input", 2, 0.01, True),
    3: LppType("analog_output", 2, 0.01, True),
    100: LppType("generic_sensor", 4, 1, False),
    101: LppType("illuminance", 2, 1, False),  # lux
    102: LppType("presence", 1, 1, False),
    103: LppType("temperature", 2, 0.1, True),  # degrees Celsius
    104: LppType("humidity", 1, 0.5, False),  # percent relative humidity
    113: LppType("accelerometer", 6, 0.001, True, ("x", "y", "z")),  # G
    115: LppType("barometer", 2, 0.1, False),  # hPa
    116: LppType("voltage", 2, 0.01, False),  # V
    117: LppType("current", 2, 0.001, False),  # A
    118: LppType("frequency", 4, 1, False),  # Hz
    120: LppType("percentage", 1, 1, False),  # percent
    121: LppType("altitude", 2, 1, True),  # m
    125: LppType("concentration", 2, 1, False),  # ppm
    128: LppType("power", 2, 1, False),  # W
    130: LppType("distance", 4, 0.001, False),  # m
    131: LppType("energy", 4, 0.001, False),  # kWh
    132: LppType("direction", 2, 1, False),  # degrees
    133: LppType("unixtime", 4, 1, False),  # s
    134: LppType("gyrometer", 6, 0.01, True, ("x", "y", "z")),  # degrees/s
    142: LppType("switch", 1, 1, False),
}
# GPS is three 3-byte fields with different scales, so it is read apart from the table.
LPP_GPS = 136


def _integer(chunk: bytes, signed: bool) -> int:
    return int.from_bytes(chunk, "big", signed=signed)


class CayenneLpp:
    name = "cayenne-lpp"

    def decode(self, payload: bytes, decoded_by_server: Mapping[str, Any] | None) -> dict[str, float]:
        if not payload:
            raise PayloadUndecodable("cayenne-lpp: empty payload")
        values: dict[str, float] = {}
        at = 0
        while at < len(payload):
            if at + 2 > len(payload):
                raise PayloadUndecodable(f"cayenne-lpp: byte {at}: a channel without its type")
            channel, type_id = payload[at], payload[at + 1]
            at += 2
            if type_id == LPP_GPS:
                chunk = payload[at:at + 9]
                if len(chunk) < 9:
                    raise PayloadUndecodable(f"cayenne-lpp: byte {at}: gps needs 9 bytes, {len(chunk)} left")
                values[f"gps_{channel}.latitude"] = _integer(chunk[0:3], True) * 0.0001
                values[f"gps_{channel}.longitude"] = _integer(chunk[3:6], True) * 0.0001
                values[f"gps_{channel}.altitude"] = _integer(chunk[6:9], True) * 0.01
                at += 9
                continue
            kind = LPP_TYPES.get(type_id)
            if kind is None:
                raise PayloadUndecodable(f"cayenne-lpp: byte {at - 1}: unknown type {type_id}")
            chunk = payload[at:at + kind.size]
            if len(chunk) < kind.size:
                raise PayloadUndecodable(
                    f"cayenne-lpp: byte {at}: {kind.name} needs {kind.size} bytes, {len(chunk)} left")
            at += kind.size
            if kind.axes:
                width = kind.size // len(kind.axes)
                for index, axis in enumerate(kind.axes):
                    part = chunk[index * width:(index + 1) * width]
                    values[f"{kind.name}_{channel}.{axis}"] = round(_integer(part, kind.signed) * kind.scale, 6)
            else:
                values[f"{kind.name}_{channel}"] = round(_integer(chunk, kind.signed) * kind.scale, 6)
        return values


class NetworkServerFields:
    """The fields the network server's own codec produced, flattened; numbers and booleans only."""

    name = "network-server"

    def decode(self, payload: bytes, decoded_by_server: Mapping[str, Any] | None) -> dict[str, float]:
        if not decoded_by_server:
            raise PayloadUndecodable(
                "network-server: the uplink has no decoded fields (ChirpStack object / TTS decoded_payload)")
        values: dict[str, float] = {}
        _flatten(decoded_by_server, "", values)
        return values


def _flatten(document: Mapping[str, Any], prefix: str, into: dict[str, float]) -> None:
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _flatten(value, f"{name}.", into)
        elif isinstance(value, int | float) and math.isfinite(value):  # bool is an int: 1.0 / 0.0
            into[name] = float(value)
        # Text and lists are not readings; a mapping that needs one names it and fails there.


_FORMATS = {
    "uint8": "B", "int8": "b", "uint16": "H", "int16": "h", "uint32": "I", "int32": "i",
    "float32": "f", "float64": "d",
}


@dataclass(frozen=True)
class FieldLayout:
    """One field of an operator-defined fixed frame: ``value = raw * scale + add``."""

    name: str
    offset: int
    type: str  # one of _FORMATS
    scale: float = 1.0
    add: float = 0.0
    byte_order: str = "big"  # or "little"
    bit: int | None = None  # a flag: bit 0..7 of the byte at offset (type must be uint8)


class FieldMappingDecoder:
    """Fixed-offset fields, defined as data by an operator (``kind: fields`` in the registry file)."""

    def __init__(self, name: str, fields: Sequence[FieldLayout]) -> None:
        self.name = name
        self.fields = tuple(fields)

    def decode(self, payload: bytes, decoded_by_server: Mapping[str, Any] | None) -> dict[str, float]:
        values: dict[str, float] = {}
        for layout in self.fields:
            code = ("<" if layout.byte_order == "little" else ">") + _FORMATS[layout.type]
            end = layout.offset + struct.calcsize(code)
            if end > len(payload):
                raise PayloadUndecodable(
                    f"{self.name}: {layout.name} needs bytes {layout.offset}..{end - 1}, payload has {len(payload)}")
            (raw,) = struct.unpack_from(code, payload, layout.offset)
            if layout.bit is not None:
                values[layout.name] = float((raw >> layout.bit) & 1)
                continue
            value = raw * layout.scale + layout.add
            if not math.isfinite(value):
                raise PayloadUndecodable(f"{self.name}: {layout.name} is not a finite number")
            values[layout.name] = round(value, 9)
        return values


BUILT_IN: Mapping[str, Decoder] = {decoder.name: decoder for decoder in (CayenneLpp(), NetworkServerFields())}


def field_layouts(document: Any, where: str) -> list[FieldLayout]:
    """An operator's ``fields`` list, validated; ValueError naming the field at ``where``."""
    if not isinstance(document, list) or not document:
        raise ValueError(f"{where}: expected a non-empty list of fields")
    layouts = []
    allowed = {"name", "offset", "type", "scale", "add", "byte_order", "bit"}
    for index, item in enumerate(document):
        at = f"{where}[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{at}: expected a mapping")
        if unknown := sorted(set(item) - allowed):
            raise ValueError(f"{at}.{unknown[0]}: unknown key (expected one of {', '.join(sorted(allowed))})")
        name, offset, kind = item.get("name"), item.get("offset"), item.get("type")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{at}.name: required text")
        if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < 256:
            raise ValueError(f"{at}.offset: required integer 0..255")
        if kind not in _FORMATS:
            raise ValueError(f"{at}.type: {kind!r} is not one of {', '.join(_FORMATS)}")
        for number in ("scale", "add"):
            value = item.get(number, 0.0 if number == "add" else 1.0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{at}.{number}: expected a finite number")
        order = item.get("byte_order", "big")
        if order not in ("big", "little"):
            raise ValueError(f"{at}.byte_order: 'big' or 'little'")
        bit = item.get("bit")
        if bit is not None and (kind != "uint8" or isinstance(bit, bool) or not isinstance(bit, int)
                                or not 0 <= bit <= 7):
            raise ValueError(f"{at}.bit: an integer 0..7, on a uint8 field")
        layouts.append(FieldLayout(name, offset, kind, float(item.get("scale", 1.0)), float(item.get("add", 0.0)),
                                   order, bit))
    return layouts
