"""`madina up`'s MQTT broker: a private Mosquitto with the gateway's and the simulated devices' users.

Started before the components (``Domain.local_servers``) unless MADINA_DEVICES_MQTT_USERNAME is
already set, which means a deployment's own broker. Passwords are made on first use and kept
owner-only under ``data/secrets/`` like every local secret; the gateway user may read every
topic, the devices user may publish only under the three topic schemes (the broker's ACL).
Mosquitto listens on MADINA_DEVICES_MQTT_PORT (1883) when that is free, else on a free port,
and the children's environment says which.
"""

from __future__ import annotations

import secrets
import socket
from collections.abc import Callable
from pathlib import Path

from madina.devservers.mosquitto import MosquittoServer, MqttUser
from madina.devservers.ports import free_port
from madina.privatefiles import private_directory, write_private
from madina.settings import load_settings
from services.devices.settings import DevicesPorts

GATEWAY_USERNAME = "madina-gateway"
DEVICES_USERNAME = "simulated-devices"
DEVICE_TOPICS = ("madina/#", "application/+/device/+/event/up", "v3/+/devices/+/up")


def _password(directory: Path, name: str) -> Path:
    path = directory / f"mqtt-{name}.password"
    if not path.exists():
        write_private(path, secrets.token_urlsafe(24))
    return path


def _free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def start_local_mqtt(data_dir: Path, env: dict[str, str]) -> Callable[[], None]:
    if env.get("MADINA_DEVICES_MQTT_USERNAME"):
        return lambda: None
    directory = private_directory(data_dir / "secrets")
    gateway_file, devices_file = _password(directory, GATEWAY_USERNAME), _password(directory, DEVICES_USERNAME)
    users = [
        MqttUser(GATEWAY_USERNAME, gateway_file.read_text().strip(), ("#",)),
        MqttUser(DEVICES_USERNAME, devices_file.read_text().strip(), DEVICE_TOPICS),
    ]
    wanted = load_settings(DevicesPorts).devices_mqtt_port
    server = MosquittoServer.start(data_dir / "mosquitto", users=users,
                                   port=wanted if _free(wanted) else free_port())
    env.update({
        "MADINA_DEVICES_MQTT_HOST": "127.0.0.1",
        "MADINA_DEVICES_MQTT_PORT": str(server.port),
        "MADINA_DEVICES_MQTT_USERNAME": GATEWAY_USERNAME,
        "MADINA_DEVICES_MQTT_PASSWORD_FILE": str(gateway_file.resolve()),
        "MADINA_DEVICES_SIMULATOR_USERNAME": DEVICES_USERNAME,
        "MADINA_DEVICES_SIMULATOR_PASSWORD_FILE": str(devices_file.resolve()),
    })
    return server.stop
