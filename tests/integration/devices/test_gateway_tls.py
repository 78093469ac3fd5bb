"""The MQTT gateway over TLS: a Mosquitto TLS listener with a certificate from a throwaway CA.

Configured by MADINA_DEVICES_MQTT_TLS and MADINA_DEVICES_MQTT_TLS_CA_FILE, the gateway connects to
the broker whose certificate that CA signed and carries a device's reading to Kafka; it refuses a
broker whose certificate another CA signed, and says so in its health.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiomqtt
import pytest

from madina.devservers.mosquitto import MosquittoServer, MosquittoTls, MosquittoUnavailable
from madina.settings import load_settings
from madina_proto.mobility.v1.events_pb2 import ParkingOccupancyObserved
from services.devices.domain.registry import load_registry
from services.devices.gateway.ingest import kinds
from services.devices.gateway.main import MqttGateway
from services.devices.settings import DevicesSettings
from services.mobility.topics import PARKING_OCCUPANCY
from tests.integration.devices.conftest import DEVICE_USER, GATEWAY_USER
from tests.integration.devices.gateway_kit import PARKING_TOPIC, parking_count, publish, start_gateway, wait_for_records
from tests.support.certificates import TestAuthority


@dataclass(frozen=True)
class TlsBroker:
    server: MosquittoServer
    ca_file: Path  # the CA that signed the broker's certificate

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def start_tls_broker(directory: Path, authority: TestAuthority) -> TlsBroker:
    directory.mkdir(parents=True)
    issued = authority.issue_server("127.0.0.1")
    (directory / "server.pem").write_bytes(issued.certificate)
    (directory / "server.key").write_bytes(issued.private_key)
    tls = MosquittoTls(authority.write(directory / "ca.pem"), directory / "server.pem", directory / "server.key")
    try:
        server = MosquittoServer.start(directory / "mosquitto", users=[GATEWAY_USER, DEVICE_USER], tls=tls)
    except MosquittoUnavailable as error:
        pytest.skip(f"mosquitto not available: {error}")
    return TlsBroker(server, tls.ca_file)


@pytest.fixture(scope="module")
def madina_ca() -> TestAuthority:
    return TestAuthority("Madina test MQTT CA")


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory, madina_ca: TestAuthority) -> Iterator[TlsBroker]:
    broker = start_tls_broker(tmp_path_factory.mktemp("tls") / "trusted", madina_ca)
    try:
        yield broker
    finally:
        broker.server.stop()


def test_gateway_connects_over_tls_to_the_broker_its_ca_signed_and_carries_readings_to_kafka(
    tmp_path: Path, tls_broker: TlsBroker, broker: str
) -> None:
    gateway = start_gateway(tmp_path / "gateway", tls_broker.server, GATEWAY_USER, broker, extra_env={
        "MADINA_DEVICES_MQTT_TLS": "true", "MADINA_DEVICES_MQTT_TLS_CA_FILE": str(tls_broker.ca_file)})
    try:
        assert gateway.health()[1]["mqtt"] == "ok"
        asyncio.run(publish(tls_broker.server, DEVICE_USER, [(PARKING_TOPIC, parking_count(123))],
                            tls_context=tls_broker.client_context()))

        found = asyncio.run(wait_for_records(broker, PARKING_OCCUPANCY.name, 1))
        assert [ParkingOccupancyObserved.FromString(r.value).occupied_spaces_count for r in found] == [123]
    finally:
        gateway.process.stop()


def test_gateway_refuses_a_broker_whose_certificate_another_ca_signed(
    tmp_path: Path, tls_broker: TlsBroker, madina_ca: TestAuthority, monkeypatch: pytest.MonkeyPatch
) -> None:
    impostor = start_tls_broker(tmp_path / "impostor", TestAuthority("Someone else's CA"))
    try:
        # A working TLS broker for whoever trusts its CA: only the gateway's CA keeps it out.
        asyncio.run(publish(impostor.server, DEVICE_USER, [], tls_context=impostor.client_context()))
        password = tmp_path / "gateway-password"
        password.write_text(GATEWAY_USER.password)
        for name, value in {
            "MADINA_DEVICES_MQTT_PORT": str(impostor.server.port), "MADINA_DEVICES_MQTT_TLS": "true",
            "MADINA_DEVICES_MQTT_TLS_CA_FILE": str(madina_ca.write(tmp_path / "madina-ca.pem")),
            "MADINA_DEVICES_MQTT_USERNAME": GATEWAY_USER.username, "MADINA_DEVICES_MQTT_PASSWORD_FILE": str(password),
            "MADINA_DEVICES_RECONNECT_MAX_S": "0.5",
        }.items():
            monkeypatch.setenv(name, value)
        settings = load_settings(DevicesSettings)
        # No message can arrive without a connection, so nothing is ever produced.
        gateway = MqttGateway(settings, load_registry(settings.devices_registry_file, kinds()),
                              producer=cast(Any, None))

        health = asyncio.run(_health_after_connecting(gateway, attempts=2))

        assert health["mqtt"].startswith("disconnected"), health
        assert "certificate verify failed" in health["mqtt"], health
        assert gateway.connects == 0
    finally:
        impostor.server.stop()


async def _health_after_connecting(gateway: MqttGateway, attempts: int, timeout_s: float = 30.0) -> dict[str, Any]:
    """The gateway's health once it has failed to connect ``attempts`` times (or as it is after ``timeout_s``)."""
    failures = 0
    failed_enough = asyncio.Event()

    class CountFailures(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            nonlocal failures
            failures += record.getMessage() == "mqtt connection lost"
            if failures >= attempts:
                failed_enough.set()

    handler = CountFailures()
    logging.getLogger("services.devices.gateway.main").addHandler(handler)
    running = asyncio.create_task(gateway.run())
    try:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(failed_enough.wait(), timeout_s)
        return gateway.health()
    finally:
        logging.getLogger("services.devices.gateway.main").removeHandler(handler)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await running
