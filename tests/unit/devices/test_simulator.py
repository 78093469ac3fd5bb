"""The simulated MQTT devices publish what the gateway accepts: every message passes the registry,
its decoder and the domain's own checks, and a seed reproduces the messages."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from madina.simulation import MqttPublish, SimulationContext
from services.devices.domain.messages import interpret, lorawan_item
from services.devices.domain.registry import load_registry
from services.devices.domain.topics import Scheme
from services.devices.gateway.ingest import INGESTS, DomainData, kinds
from services.devices.settings import DEFAULT_REGISTRY
from services.devices.simulator import DevicesGenerator

NOW = datetime.now(UTC)


def _messages(seed: int) -> list[MqttPublish]:
    context = SimulationContext(city="berkane", rng=random.Random(seed), speedup=1.0, started_at=NOW)
    deliveries = DevicesGenerator(context).next_deliveries(NOW, 12)
    assert all(isinstance(d, MqttPublish) for d in deliveries)
    return deliveries  # type: ignore[return-value]


def test_every_simulated_message_is_accepted_by_the_gateway_and_the_domains_checks() -> None:
    registry = load_registry(DEFAULT_REGISTRY, kinds())
    data = DomainData(cities=["berkane"])
    messages = _messages(7)
    schemes = set()
    for message in messages:
        request = interpret(message.topic, message.payload, registry, NOW)
        schemes.add(request.scheme)
        ingest = INGESTS[(request.device.domain, request.device.kind)]
        body = request.body if request.scheme is Scheme.DIRECT else lorawan_item(request, ingest.entity_field)
        assert ingest.prepare(data, request.device, body, 100, NOW), message.topic
    assert schemes == {Scheme.DIRECT, Scheme.CHIRPSTACK, Scheme.THE_THINGS_STACK}


def test_a_seed_reproduces_the_simulated_messages() -> None:
    assert [m.payload for m in _messages(3)] == [m.payload for m in _messages(3)]
