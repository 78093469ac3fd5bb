"""Simulated field devices that publish over MQTT, through the gateway, instead of over HTTP.

``madina simulate`` (and ``madina up``) runs this beside the domains' own HTTP simulators: the
registry's devices (``services/devices/data/devices.yaml``) publish plausible readings the way
their real counterparts do: a direct device its JSON body on ``madina/<city>/<domain>/<kind>/<id>``,
a LoRaWAN sensor a ChirpStack v4 uplink (Cayenne LPP, or fields decoded by the network server)
or a The Things Stack v3 uplink carrying its fixed frame. Readings vary slowly with the seeded
random stream, so a seed reproduces a run. Energy devices are left to the energy simulator (their
readings must agree with the lamp's schedule).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from madina.settings import load_settings
from madina.simulation import Delivery, MqttBroker, MqttPublish, SimulationContext
from services.devices.domain.messages import direct_topic
from services.devices.domain.registry import DeviceEntry, load_registry
from services.devices.gateway.ingest import kinds
from services.devices.settings import DevicesSimulatorSettings


class DevicesGenerator:
    domain = "devices"
    ingest_url = ""

    def __init__(self, context: SimulationContext) -> None:
        settings = load_settings(DevicesSimulatorSettings)
        password = (settings.devices_simulator_password_file.read_text().strip()
                    if settings.devices_simulator_password_file else None)
        self.mqtt_broker = MqttBroker(settings.devices_mqtt_host, settings.devices_mqtt_port,
                                      settings.devices_simulator_username, password)
        registry = load_registry(settings.devices_registry_file, kinds())
        entries = {id(e): e for e in registry.devices.values()}.values()
        self.devices = [e for e in entries if e.domain != "energy" and e.city in ("", context.city)]
        self.context = context
        self.rng = context.rng
        self._cursor = 0

    def next_deliveries(self, now: datetime, budget: int) -> Sequence[Delivery]:
        out: list[Delivery] = []
        for _ in range(min(budget, len(self.devices))):
            device = self.devices[self._cursor % len(self.devices)]
            self._cursor += 1
            out.append(self._message(device, now))
        return out

    def _message(self, device: DeviceEntry, now: datetime) -> MqttPublish:
        stamp = now.isoformat()
        r = self.rng
        if device.decoder == "cayenne-lpp":  # ChirpStack, the registry's LPP fill sensor layout
            payload = (bytes([1, 2]) + round(r.uniform(0.05, 0.9) * 100).to_bytes(2, "big", signed=True)
                       + bytes([2, 103]) + round(r.uniform(5, 30) * 10).to_bytes(2, "big", signed=True)
                       + bytes([3, 120, r.randint(60, 100)]))
            return MqttPublish(f"application/madina/device/{device.dev_eui}/event/up",
                               _chirpstack(device, stamp, payload))
        if device.decoder == "network-server":  # ChirpStack, decoded by its codec
            decoded = {"ph": round(r.uniform(6.8, 7.8), 2), "turbidity": round(r.uniform(0.2, 3), 2)}
            return MqttPublish(f"application/madina/device/{device.dev_eui}/event/up",
                               _chirpstack(device, stamp, b"", decoded))
        if device.decoder:  # The Things Stack, the registry's fixed frame
            temperature = round(r.uniform(5, 30) * 10).to_bytes(2, "big", signed=True)
            frame = bytes([r.randint(5, 90)]) + temperature + bytes([r.randint(60, 100), 0])
            body = {"end_device_ids": {"device_id": device.device_id, "dev_eui": device.dev_eui},
                    "received_at": stamp,
                    "uplink_message": {"f_port": 1, "frm_payload": base64.b64encode(frame).decode(),
                                       "received_at": stamp}}
            return MqttPublish(f"v3/madina@{self.context.city}/devices/{device.device_id}/up",
                               json.dumps(body).encode())
        if device.kind == "parking-occupancy":
            count = {"car_park_id": device.entity_id, "timestamp": stamp, "occupied_spaces": r.randint(20, 170),
                     "capacity_spaces": 180}
            return MqttPublish(direct_topic(self.context.city, device), json.dumps(count).encode())
        values: dict[str, Any] = ({"laeq_db": round(r.uniform(45, 70), 1)} if device.kind == "noise" else
                                  {"pm25_ugm3": round(r.uniform(4, 30), 1), "pm10_ugm3": round(r.uniform(10, 45), 1)})
        body = {"station_id": device.entity_id, "observe_time": stamp, **values}
        return MqttPublish(direct_topic(self.context.city, device), json.dumps(body).encode())


def _chirpstack(device: DeviceEntry, stamp: str, payload: bytes, decoded: dict[str, Any] | None = None) -> bytes:
    event: dict[str, Any] = {"time": stamp, "fPort": 2, "data": base64.b64encode(payload).decode(),
                             "deviceInfo": {"deviceName": device.device_id, "devEui": device.dev_eui}}
    if decoded is not None:
        event["object"] = decoded
    return json.dumps(event).encode()


def create(context: SimulationContext) -> DevicesGenerator:
    return DevicesGenerator(context)
