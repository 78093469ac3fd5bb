"""Fixtures for the MQTT gateway's tests: a private Mosquitto per test module (Debian's package, free
loopback port, its own config and persistence directory), with the gateway's and the devices'
users in its password file and ACL, as a real deployment keeps per-device credentials."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from madina.devservers.mosquitto import MosquittoServer, MosquittoUnavailable, MqttUser

GATEWAY_USER = MqttUser("madina-gateway", "gateway-secret", ("#",))
DEVICE_USER = MqttUser("field-device", "device-secret", ("madina/#", "application/#", "v3/#"))


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoServer]:
    """One per test module: a gateway's start-up (~15 s here) is shared by a module's tests."""
    try:
        server = MosquittoServer.start(tmp_path_factory.mktemp("mosquitto"), users=[GATEWAY_USER, DEVICE_USER])
    except MosquittoUnavailable as error:
        pytest.skip(f"mosquitto not available: {error}")
    try:
        yield server
    finally:
        server.stop()
