"""A LoRaWAN network server's uplink message, as the gateway needs it.

ChirpStack v4 publishes the protobuf JSON of ``integration.UplinkEvent``: ``deviceInfo.devEui``,
``fPort``, ``data`` (the FRMPayload, base64), ``object`` (present when a codec on the network
server decoded it) and ``time``. The Things Stack v3 publishes ``end_device_ids`` (``device_id``,
``dev_eui``), ``received_at`` and ``uplink_message`` with ``f_port``, ``frm_payload`` (base64) and
``decoded_payload`` (when a payload formatter decoded it). :func:`parse_uplink` turns either
into an :class:`Uplink`; anything malformed is :class:`UplinkRejected` naming the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from services.devices.domain.topics import Scheme, TopicAddress

# Network servers stamp nanoseconds; datetime keeps microseconds.
_FRACTION = re.compile(r"(\.\d{6})\d+")


class UplinkRejected(ValueError):
    """The message body is not a well-formed uplink; the message names the field."""


@dataclass(frozen=True)
class Uplink:
    """One radio uplink: the raw FRMPayload and, when the network server decoded it, its fields."""

    device_id: str
    dev_eui: str
    f_port: int | None
    payload: bytes
    decoded: Mapping[str, Any] | None = None
    received_time: datetime | None = None
    names: tuple[str, ...] = field(default=())  # every identifier the registry may know it by


def parse_json_body(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as error:
        raise UplinkRejected(f"body: not JSON ({error})") from None


def parse_time(text: Any, where: str) -> datetime:
    if not isinstance(text, str):
        raise UplinkRejected(f"{where}: expected an RFC 3339 time")
    try:
        moment = datetime.fromisoformat(_FRACTION.sub(r"\1", text.replace("Z", "+00:00")))
    except ValueError:
        raise UplinkRejected(f"{where}: {text[:40]!r} is not an RFC 3339 time") from None
    if moment.tzinfo is None:
        raise UplinkRejected(f"{where}: needs a UTC offset")
    return moment.astimezone(UTC)


def _payload(value: Any, where: str) -> bytes:
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise UplinkRejected(f"{where}: expected base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise UplinkRejected(f"{where}: not valid base64") from None


def _object(value: Any, where: str) -> Mapping[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise UplinkRejected(f"{where}: expected a JSON object")
    return value or None


def _port(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
        raise UplinkRejected(f"{where}: expected an integer 0..255")
    return value


def parse_uplink(address: TopicAddress, body: bytes) -> Uplink:
    """The uplink in ``body``, published on a ChirpStack or The Things Stack topic."""
    document = parse_json_body(body)
    if not isinstance(document, dict):
        raise UplinkRejected("body: expected a JSON object")
    if address.scheme is Scheme.CHIRPSTACK:
        info = document.get("deviceInfo") or {}
        if not isinstance(info, dict):
            raise UplinkRejected("deviceInfo: expected a JSON object")
        dev_eui = str(info.get("devEui") or address.device_id).lower()
        if dev_eui != address.device_id:
            raise UplinkRejected(f"deviceInfo.devEui: {dev_eui} but the topic names {address.device_id}")
        received = parse_time(document["time"], "time") if document.get("time") else None
        return Uplink(
            device_id=str(info.get("deviceName") or dev_eui), dev_eui=dev_eui,
            f_port=_port(document.get("fPort"), "fPort"), payload=_payload(document.get("data"), "data"),
            decoded=_object(document.get("object"), "object"), received_time=received, names=(dev_eui,),
        )
    if address.scheme is Scheme.THE_THINGS_STACK:
        ids = document.get("end_device_ids") or {}
        message = document.get("uplink_message")
        if not isinstance(ids, dict):
            raise UplinkRejected("end_device_ids: expected a JSON object")
        if not isinstance(message, dict):
            raise UplinkRejected("uplink_message: required (only uplink messages are read)")
        device_id = str(ids.get("device_id") or address.device_id)
        if device_id != address.device_id:
            raise UplinkRejected(f"end_device_ids.device_id: {device_id} but the topic names {address.device_id}")
        dev_eui = str(ids.get("dev_eui") or "").lower()
        stamp = message.get("received_at") or document.get("received_at")
        return Uplink(
            device_id=device_id, dev_eui=dev_eui, f_port=_port(message.get("f_port"), "uplink_message.f_port"),
            payload=_payload(message.get("frm_payload"), "uplink_message.frm_payload"),
            decoded=_object(message.get("decoded_payload"), "uplink_message.decoded_payload"),
            received_time=parse_time(stamp, "uplink_message.received_at") if stamp else None,
            names=(device_id, dev_eui) if dev_eui else (device_id,),
        )
    raise UplinkRejected(f"topic scheme {address.scheme.value} carries no LoRaWAN uplink")
