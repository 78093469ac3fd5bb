"""The MQTT topics the gateway reads, and what each says about the sender.

Three schemes, each a real deployment's:

- direct devices: ``madina/<city>/<domain>/<kind>/<device_id>``, a JSON body in the shape of the
  domain's HTTP ingest (one reading or ``{"readings": [...]}``, ``{"observations": [...]}``, ...);
- ChirpStack v4 application integration: ``application/<application_id>/device/<dev_eui>/event/up``;
- The Things Stack v3: ``v3/<application_id>@<tenant_id>/devices/<device_id>/up``
  (``<application_id>`` alone on The Things Network's shared cluster).

Any other topic is not ours; :func:`parse_topic` says why, and the gateway dead-letters it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

DIRECT_PREFIX = "madina"

# What the gateway subscribes to: one filter per scheme (shared subscriptions are added by the
# gateway when configured, so several gateways can split the load).
SUBSCRIPTIONS = (
    "madina/+/+/+/+",
    "application/+/device/+/event/up",
    "v3/+/devices/+/up",
)


class Scheme(enum.Enum):
    DIRECT = "direct"
    CHIRPSTACK = "chirpstack"
    THE_THINGS_STACK = "tts"


class TopicRejected(ValueError):
    """The topic is in none of the schemes; the message says what was expected."""


@dataclass(frozen=True)
class TopicAddress:
    """Who sent a message, as its topic says."""

    scheme: Scheme
    device_id: str
    """Direct: the topic's device id; ChirpStack: the DevEUI (lower-case hex); TTS: the device id."""
    city: str = ""
    domain: str = ""
    kind: str = ""
    application: str = ""


def parse_topic(topic: str) -> TopicAddress:
    parts = topic.split("/")
    if parts[0] == DIRECT_PREFIX:
        if len(parts) != 5 or not all(parts[1:]):
            raise TopicRejected(f"topic {topic!r}: expected madina/<city>/<domain>/<kind>/<device_id>")
        _, city, domain, kind, device_id = parts
        return TopicAddress(Scheme.DIRECT, device_id, city=city, domain=domain, kind=kind)
    if parts[0] == "application":
        if len(parts) != 6 or parts[2] != "device" or parts[4:] != ["event", "up"] or not parts[1] or not parts[3]:
            raise TopicRejected(f"topic {topic!r}: expected application/<id>/device/<devEui>/event/up")
        return TopicAddress(Scheme.CHIRPSTACK, parts[3].lower(), application=parts[1])
    if parts[0] == "v3":
        if len(parts) != 5 or parts[2] != "devices" or parts[4] != "up" or not parts[1] or not parts[3]:
            raise TopicRejected(f"topic {topic!r}: expected v3/<app>@<tenant>/devices/<device_id>/up")
        return TopicAddress(Scheme.THE_THINGS_STACK, parts[3], application=parts[1])
    raise TopicRejected(
        f"topic {topic!r}: not madina/..., application/.../event/up (ChirpStack) or v3/.../up (The Things Stack)"
    )
