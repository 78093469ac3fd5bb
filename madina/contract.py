"""Turning contract (protobuf) values into values a domain can hold is validation, done here once.

A protobuf parser accepts whatever the bytes say: a ``Timestamp`` of 10^12 seconds, nanos of -1,
a NaN reading, an enum number no version of the contract defines. Converting such a value later
(``ToDatetime``, an ``IntEnum``, JSON for a response) raises wherever that happens to be, which
for a consumer means outside its dead-letter path: one record then stops a service on every
start. So every converter goes through these helpers, and every one of them raises
:class:`InvalidRecord` saying which field is wrong, which consumers dead-letter (or, for whole-topic
readers, skip) and go on.

:func:`check_wire_values` is the generic part, run on every decoded record: every ``Timestamp``
and ``Duration`` in range, every float finite, no NUL character in any text (PostgreSQL cannot
store one, so the operations store would retry such a record forever). What is specific to a
message (enums, coordinates, keys, known entities) is checked by its converter with the other
helpers.

Pure: imports protobuf, no Kafka.
"""

from __future__ import annotations

import math
from dataclasses import fields
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, TypeVar

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

EnumMember = TypeVar("EnumMember", bound=IntEnum)

# What a datetime (and a valid google.protobuf.Timestamp) can hold: 0001-01-01 .. 9999-12-31.
MIN_TIMESTAMP_S = -62_135_596_800
MAX_TIMESTAMP_S = 253_402_300_799
MAX_DURATION_S = 315_576_000_000  # ±10,000 years, google.protobuf.Duration's own bound
MAX_NANOS = 999_999_999
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TIMESTAMP = Timestamp.DESCRIPTOR.full_name
_DURATION = Duration.DESCRIPTOR.full_name
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)


class InvalidRecord(ValueError):
    """A record that cannot be processed; the message says why and goes to the dead-letter topic."""


def time_from_pb(stamp: Timestamp, field: str) -> datetime:
    """A tz-aware UTC datetime, or InvalidRecord naming ``field`` if no datetime can hold it."""
    seconds, nanos = stamp.seconds, stamp.nanos
    if not MIN_TIMESTAMP_S <= seconds <= MAX_TIMESTAMP_S:
        raise InvalidRecord(f"{field}: {seconds} s since the epoch is outside years 1..9999")
    if not 0 <= nanos <= MAX_NANOS:
        raise InvalidRecord(f"{field}: nanos {nanos} outside 0..{MAX_NANOS}")
    # Integer arithmetic: ToDatetime goes through a float and cannot reach year 1.
    return _EPOCH + timedelta(seconds=seconds, microseconds=nanos // 1000)


def optional_time(message: Message, field: str, where: str = "") -> datetime | None:
    """``message.<field>`` as a datetime, ``None`` when unset."""
    if not message.HasField(field):
        return None
    return time_from_pb(getattr(message, field), f"{where}{field}")


def required_time(message: Message, field: str, where: str = "") -> datetime:
    moment = optional_time(message, field, where)
    if moment is None:
        raise InvalidRecord(f"{where}{field}: required")
    return moment


def finite(value: float, field: str) -> float:
    if not math.isfinite(value):
        raise InvalidRecord(f"{field}: must be finite, got {value}")
    return value


def enum_member(enum: type[EnumMember], value: int, field: str) -> EnumMember:
    try:
        return enum(value)
    except ValueError:
        # Zero is the contract's *_UNSPECIFIED, never valid on a published record.
        raise InvalidRecord(f"{field}: {value} is not one of {[int(member) for member in enum]}") from None


def coordinates(latitude_deg: float, longitude_deg: float, field: str) -> tuple[float, float]:
    """A WGS 84 position, or InvalidRecord: a point off the globe would land nowhere on a map."""
    if not (math.isfinite(latitude_deg) and -90.0 <= latitude_deg <= 90.0):
        raise InvalidRecord(f"{field}.latitude_deg: {latitude_deg} outside -90..90")
    if not (math.isfinite(longitude_deg) and -180.0 <= longitude_deg <= 180.0):
        raise InvalidRecord(f"{field}.longitude_deg: {longitude_deg} outside -180..180")
    return latitude_deg, longitude_deg


_AS_THEY_ARE = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_BOOL)


def plain_fields(domain: type, message: type[Message]) -> tuple[str, ...]:
    """The fields a domain dataclass and a message spell alike that are text, counts or flags.

    Such fields are copied as they are, both ways: :func:`check_wire_values` already refused text
    with a NUL and there is nothing else to check, so a field like that added to both sides needs
    no mapping code. Everything else (enums, floats, times, nested messages) is converted by hand.
    """
    wire = message.DESCRIPTOR.fields_by_name
    return tuple(
        item.name for item in fields(domain)
        if item.name in wire and wire[item.name].type in _AS_THEY_ARE and not wire[item.name].is_repeated
    )


def check_wire_values(message: Message, where: str = "") -> None:
    """Raise InvalidRecord at the first Timestamp or Duration out of range, non-finite float or NUL.

    Run on every decoded record, so the common case (nothing wrong) is a walk that builds no field
    path; only a record with something wrong is walked again to name the field.
    """
    if not _wire_values_ok(message):
        _raise_at_first_bad_value(message, where)


_OTHER, _FLOAT, _STRING, _MESSAGE, _MAP = range(5)
_SPECIAL: dict[Any, int] = {}  # message descriptor -> 0, or 1 Timestamp, 2 Duration
_FIELD_KINDS: dict[Any, tuple[int, bool, int]] = {}  # field descriptor -> (kind, repeated, map value kind)


def _kind_of_type(field_type: int) -> int:
    if field_type in _FLOATS:
        return _FLOAT
    if field_type == FieldDescriptor.TYPE_STRING:
        return _STRING
    return _MESSAGE if field_type == FieldDescriptor.TYPE_MESSAGE else _OTHER


def _field_kind(descriptor: FieldDescriptor) -> tuple[int, bool, int]:
    known = _FIELD_KINDS.get(descriptor)
    if known is None:
        value_field = _map_value_field(descriptor) if descriptor.type == FieldDescriptor.TYPE_MESSAGE else None
        if value_field is not None:
            known = (_MAP, False, _kind_of_type(value_field.type))
        else:
            known = (_kind_of_type(descriptor.type), descriptor.is_repeated, _OTHER)
        _FIELD_KINDS[descriptor] = known
    return known


def _wire_values_ok(message: Message) -> bool:
    """Whether :func:`_raise_at_first_bad_value` would find nothing (same rules, no paths)."""
    descriptor = message.DESCRIPTOR
    special = _SPECIAL.get(descriptor)
    if special is None:
        special = _SPECIAL[descriptor] = {_TIMESTAMP: 1, _DURATION: 2}.get(descriptor.full_name, 0)
    if special:
        seconds, nanos = message.seconds, message.nanos  # type: ignore[attr-defined]
        if special == 1:
            return MIN_TIMESTAMP_S <= seconds <= MAX_TIMESTAMP_S and 0 <= nanos <= MAX_NANOS
        return (-MAX_DURATION_S <= seconds <= MAX_DURATION_S and -MAX_NANOS <= nanos <= MAX_NANOS
                and not (seconds and nanos and (seconds < 0) != (nanos < 0)))
    for field_descriptor, value in message.ListFields():
        kind, repeated, value_kind = _field_kind(field_descriptor)
        if kind == _FLOAT:
            if not (all(map(math.isfinite, value)) if repeated else math.isfinite(value)):
                return False
        elif kind == _STRING:
            if any("\x00" in item for item in value) if repeated else "\x00" in value:
                return False
        elif kind == _MESSAGE:
            if not (all(map(_wire_values_ok, value)) if repeated else _wire_values_ok(value)):
                return False
        elif kind == _MAP:
            for key, item in value.items():
                if isinstance(key, str) and "\x00" in key:
                    return False
                if value_kind == _STRING and "\x00" in item:
                    return False
                if value_kind == _FLOAT and not math.isfinite(item):
                    return False
                if value_kind == _MESSAGE and not _wire_values_ok(item):
                    return False
    return True


def _raise_at_first_bad_value(message: Message, where: str) -> None:
    """The walk that names the field: only run once the fast check found something."""
    name = message.DESCRIPTOR.full_name
    if name == _TIMESTAMP:
        time_from_pb(message, where.rstrip(".") or "timestamp")  # type: ignore[arg-type]
        return
    if name == _DURATION:
        _check_duration(message, where.rstrip(".") or "duration")  # type: ignore[arg-type]
        return
    for descriptor, value in message.ListFields():
        path = f"{where}{descriptor.name}"
        if descriptor.type in _FLOATS:
            for index, item in _items(descriptor, value):
                finite(item, f"{path}{index}")
        elif descriptor.type == FieldDescriptor.TYPE_STRING:
            for index, item in _items(descriptor, value):
                _text(item, f"{path}{index}")
        elif descriptor.type == FieldDescriptor.TYPE_MESSAGE:
            value_field = _map_value_field(descriptor)
            if value_field is not None:
                for key, item in value.items():
                    if isinstance(key, str):
                        _text(key, f"{path} key")
                    if value_field.type == FieldDescriptor.TYPE_STRING:
                        _text(item, f"{path}[{key!r}]")
                    if value_field.type in _FLOATS:
                        finite(item, f"{path}[{key!r}]")
                    elif value_field.type == FieldDescriptor.TYPE_MESSAGE:
                        _raise_at_first_bad_value(item, f"{path}[{key!r}].")
                continue
            for index, item in _items(descriptor, value):
                _raise_at_first_bad_value(item, f"{path}{index}.")


def unknown_fields(message: Message, where: str = "") -> list[str]:
    """Where ``message`` holds fields its type does not define (the bytes were of another type?)."""
    from google.protobuf import unknown_fields as unknown

    found = [f"{where}#{field.field_number}" for field in unknown.UnknownFieldSet(message)]  # type: ignore[attr-defined]
    for descriptor, value in message.ListFields():
        if descriptor.type != FieldDescriptor.TYPE_MESSAGE:
            continue
        path = f"{where}{descriptor.name}"
        value_field = _map_value_field(descriptor)
        if value_field is not None:
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                for key, item in value.items():
                    found += unknown_fields(item, f"{path}[{key!r}].")
            continue
        for index, item in _items(descriptor, value):
            found += unknown_fields(item, f"{path}{index}.")
    return found


def _text(value: str, field: str) -> None:
    if "\x00" in value:
        raise InvalidRecord(f"{field}: contains a NUL character")


def _map_value_field(descriptor: FieldDescriptor) -> FieldDescriptor | None:
    """The value field of a map field's entry type; ``None`` for any other field."""
    entry = descriptor.message_type
    if entry is None or not entry.GetOptions().map_entry:
        return None
    return entry.fields_by_name["value"]


def _items(descriptor: FieldDescriptor, value: Any) -> list[tuple[str, Any]]:
    if descriptor.is_repeated:
        return [(f"[{index}]", item) for index, item in enumerate(value)]
    return [("", value)]


def _check_duration(duration: Duration, field: str) -> None:
    seconds, nanos = duration.seconds, duration.nanos
    if not -MAX_DURATION_S <= seconds <= MAX_DURATION_S:
        raise InvalidRecord(f"{field}: {seconds} s outside ±{MAX_DURATION_S} s")
    if not -MAX_NANOS <= nanos <= MAX_NANOS or (seconds and nanos and (seconds < 0) != (nanos < 0)):
        raise InvalidRecord(f"{field}: nanos {nanos} out of range for {seconds} s")
