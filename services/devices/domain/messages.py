"""From one MQTT message (topic and bytes) to what a domain's ingest takes, or the reason it cannot.

:func:`interpret` is the whole of the gateway's decision, pure: the topic says the scheme and the
device; the registry says whether the device may publish there and which entity it stands for; a
direct device's body is already in the HTTP ingest's shape, a LoRaWAN uplink is decoded and its
values mapped to the ingest's fields. What comes out is an :class:`IngestRequest`: the domain and
kind, and a body in that domain's HTTP ingest shape, which the gateway hands to the domain's own
parsing and checks (so a value out of range is refused by the same code as over HTTP).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.devices.domain.decoders import PayloadUndecodable
from services.devices.domain.registry import DeviceEntry, DeviceRefused, DeviceRegistry
from services.devices.domain.topics import Scheme, TopicAddress, TopicRejected, parse_topic
from services.devices.domain.uplinks import UplinkRejected, parse_json_body, parse_uplink

# Why a message was refused, for the dead letter's reason and the metrics' label.
REFUSALS = (TopicRejected, UplinkRejected, DeviceRefused, PayloadUndecodable)


@dataclass(frozen=True)
class IngestRequest:
    device: DeviceEntry
    scheme: Scheme
    body: Any
    """A direct device's JSON body; for LoRaWAN, the mapped fields (entity and time added by the gateway)."""
    observe_time: datetime | None = None  # LoRaWAN: when the network server received it


def interpret(topic: str, payload: bytes, registry: DeviceRegistry, now: datetime) -> IngestRequest:
    """Raises one of :data:`REFUSALS`, its message naming what is wrong."""
    address = parse_topic(topic)
    if address.scheme is Scheme.DIRECT:
        entry = registry.find(address.device_id)
        _check_direct_topic(entry, address)
        return IngestRequest(entry, address.scheme, parse_json_body(payload))
    uplink = parse_uplink(address, payload)
    entry = registry.find(*uplink.names)
    if not entry.decoder:
        raise DeviceRefused(f"device {entry.device_id}: registered without a decoder, so not as a LoRaWAN device")
    values = registry.decoder_of(entry).decode(uplink.payload, uplink.decoded)
    return IngestRequest(entry, address.scheme, entry.ingest_fields(values), uplink.received_time or now)


def _check_direct_topic(entry: DeviceEntry, address: TopicAddress) -> None:
    if (address.domain, address.kind) != (entry.domain, entry.kind):
        raise DeviceRefused(
            f"device {entry.device_id}: may publish {entry.domain}/{entry.kind}, not {address.domain}/{address.kind}")
    if entry.city and address.city != entry.city:
        raise DeviceRefused(f"device {entry.device_id}: belongs to city {entry.city}, not {address.city}")


def direct_topic(city: str, entry: DeviceEntry) -> str:
    """Where a direct device publishes (the simulator and the docs use this)."""
    return f"madina/{city}/{entry.domain}/{entry.kind}/{entry.device_id}"


def lorawan_item(request: IngestRequest, entity_field: str) -> Mapping[str, Any]:
    """A decoded uplink as one item in the HTTP ingest's shape."""
    assert request.observe_time is not None
    return {entity_field: request.device.entity_id, "observe_time": request.observe_time.isoformat(),
            **request.body}
