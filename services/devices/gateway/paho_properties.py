"""paho-mqtt's MQTT 5 properties, decoded without rebuilding paho's lookup tables for every packet.

paho-mqtt 2.2 decodes every incoming PUBLISH's properties into a new ``Properties``, whose
``__init__`` rebuilds three tables (27 property names, their types and packet kinds) through a
validating ``__setattr__``, and whose ``clear`` probes all 27 names: measured here at about 150 us
per message (``decode_publish`` 180 us under MQTT 5 against 28 us under 3.1.1), the largest
single cost of the gateway's MQTT 5 path. :class:`SharedTableProperties` is the same class with
those tables built once; what it decodes is identical (tests/unit/devices/test_paho_properties.py
checks it against paho's own class on the same bytes).

paho's packet decoders look ``Properties`` up in ``paho.mqtt._packet`` on each call, so
:func:`share_paho_property_tables` puts the subclass there. It does so only for the paho-mqtt
version it was checked against: after an upgrade the gateway runs on paho's own class (correct,
slower) and logs that this needs checking again.
"""

from __future__ import annotations

import logging
from importlib.metadata import version
from typing import Any

from paho.mqtt import _packet
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger(__name__)

CHECKED_PAHO_VERSION = "2.2.0"
_TABLES = Properties(PacketTypes.PUBLISH)


class SharedTableProperties(Properties):
    """paho's ``Properties`` with its name, type and packet tables shared by every instance."""

    types = _TABLES.types
    names = _TABLES.names
    properties = _TABLES.properties

    def __init__(self, packetType: int) -> None:  # paho's parameter name
        object.__setattr__(self, "packetType", packetType)

    def clear(self) -> None:
        """Drops every property set: the instance's own attributes but its packet type."""
        for name in [name for name in vars(self) if name != "packetType"]:
            object.__delattr__(self, name)


def share_paho_property_tables() -> bool:
    """Makes paho decode properties with :class:`SharedTableProperties`; False (and a log line) if
    the installed paho-mqtt is not the version this was checked against."""
    installed = version("paho-mqtt")
    if installed != CHECKED_PAHO_VERSION:
        log.warning("paho-mqtt is not the version whose properties decoding was checked; using its own (slower)",
                    extra={"installed": installed, "checked": CHECKED_PAHO_VERSION})
        return False
    module: Any = _packet
    module.Properties = SharedTableProperties
    return True
