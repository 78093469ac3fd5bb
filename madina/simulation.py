"""`madina simulate`: realistic, reproducible data for every installed domain.

Each domain contributes a generator through its :class:`madina.domains.Domain` (``simulator``
entry). A generator turns simulated time into deliveries: HTTP posts to the domain's ingest API
(the path real devices take), MQTT publishes (devices behind the MQTT gateway) or records
straight onto a topic. The runner paces deliveries to the requested rate, splits the rate
between domains, and prints a progress line every few seconds. Everything random comes from
one seeded generator per domain, so a seed reproduces a run.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx
from google.protobuf.message import Message

from madina.bus.topics import TopicSpec
from madina.domains import discover

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HttpPost:
    """Deliver ``body`` as JSON to ``path`` of the domain's ingest API with the simulator's device token."""

    path: str
    body: dict[str, Any]
    count: int  # observations it carries, for the rate and the progress line


@dataclass(frozen=True)
class TopicRecord:
    """Produce ``message`` onto ``spec`` keyed by ``key``."""

    spec: TopicSpec
    key: str
    message: Message
    count: int = 1


@dataclass(frozen=True)
class MqttBroker:
    """Where a generator's devices publish over MQTT, and as whom (the broker's own device auth)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


@dataclass(frozen=True)
class MqttPublish:
    """Publish ``payload`` at QoS 1 on ``topic`` of the generator's ``mqtt_broker``, as a field device does."""

    topic: str
    payload: bytes
    count: int = 1


Delivery = HttpPost | TopicRecord | MqttPublish


@dataclass
class SimulationContext:
    city: str
    rng: random.Random
    speedup: float
    started_at: datetime
    options: dict[str, Any] = field(default_factory=dict)
    bootstrap: str | None = None  # the run's Kafka, for generators that follow what the platform publishes

    def simulated_time(self, now: datetime) -> datetime:
        """Simulated wall-clock for diurnal shapes: the day runs ``speedup`` times faster than real time."""
        elapsed = (now - self.started_at) * self.speedup
        return self.started_at + elapsed


class Generator(Protocol):
    """What a domain's simulator provides.

    A generator may also have ``async def follow(self) -> None``: it runs beside the deliveries for
    the whole simulation and is cancelled at its end (the waste generator follows the planned
    collection rounds with it). It handles its own failures: one that raises is logged, not retried.
    """

    domain: str
    ingest_url: str  # base URL of the domain's ingest API, used for HttpPost deliveries

    def next_deliveries(self, now: datetime, budget: int) -> Sequence[Delivery]:
        """Up to ``budget`` observations' worth of deliveries for real time ``now``."""
        ...


def load_generators(context: SimulationContext, domains: Sequence[str] | None) -> list[Generator]:
    generators = []
    for domain in discover():
        if not domain.simulator or (domains and domain.name not in domains):
            continue
        module_name, _, factory = domain.simulator.partition(":")
        generators.append(getattr(importlib.import_module(module_name), factory)(context))
    return generators


class _Progress:
    def __init__(self, every_s: float = 5.0) -> None:
        self.every_s = every_s
        self.started = time.monotonic()
        self.last = self.started
        self.sent = 0
        self.failed = 0

    def maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every_s:
            elapsed = max(now - self.started, 1e-9)
            print(
                f"simulate: {elapsed:6.0f} s  sent {self.sent} observations ({self.sent / elapsed:.1f}/s)  "
                f"failed {self.failed}",
                file=sys.stderr,
                flush=True,
            )
            self.last = now


async def _deliver(
    deliveries: Sequence[Delivery],
    generator: Generator,
    http: httpx.AsyncClient,
    producer: Any,
    progress: _Progress,
    mqtt: _LazyMqtt,
) -> None:
    for delivery in deliveries:
        try:
            if isinstance(delivery, MqttPublish):
                await mqtt.publish(generator.mqtt_broker, delivery.topic, delivery.payload)  # type: ignore[attr-defined]
            elif isinstance(delivery, HttpPost):
                response = await http.post(f"{generator.ingest_url}{delivery.path}", json=delivery.body)
                if response.status_code >= 400:
                    raise RuntimeError(f"{response.status_code}: {response.text[:200]}")
            else:
                if producer is None:
                    raise RuntimeError("a TopicRecord delivery needs a Kafka producer")
                await producer.send(delivery.spec, delivery.key, delivery.message)
            progress.sent += delivery.count
        except (httpx.HTTPError, RuntimeError) as error:
            progress.failed += delivery.count
            log.warning("delivery failed", extra={"domain": generator.domain, "error": str(error)})


async def simulate(
    *,
    city: str,
    rate: float,
    duration_s: float,
    seed: int,
    speedup: float,
    domains: Sequence[str] | None,
    device_token: str,
    bootstrap: str | None = None,
) -> int:
    master = random.Random(seed)
    context_started = datetime.now(UTC)
    generators = load_generators(
        SimulationContext(
            city=city, rng=random.Random(master.random()), speedup=speedup, started_at=context_started,
            bootstrap=bootstrap,
        ),
        domains,
    )
    if not generators:
        print("simulate: no domain with a simulator is installed", file=sys.stderr)
        return 1
    # Each generator gets its own random stream so adding a domain does not change the others' data.
    for generator in generators:
        if hasattr(generator, "rng"):
            generator.rng = random.Random(f"{seed}:{generator.domain}")
    producer = _LazyProducer(bootstrap) if bootstrap else None
    mqtt = _LazyMqtt()
    progress = _Progress()
    tick_s = 0.25
    per_tick = rate * tick_s / len(generators)
    carry = [0.0] * len(generators)
    deadline = time.monotonic() + duration_s if duration_s > 0 else float("inf")
    headers = {"Authorization": f"Bearer {device_token}"}
    followers = [asyncio.create_task(_follow(generator)) for generator in generators if hasattr(generator, "follow")]
    try:
        async with httpx.AsyncClient(headers=headers, timeout=10.0) as http:
            next_tick = time.monotonic()
            while time.monotonic() < deadline:
                now = datetime.now(UTC)
                for index, generator in enumerate(generators):
                    carry[index] += per_tick
                    budget = int(carry[index])
                    if budget:
                        carry[index] -= budget
                        await _deliver(
                            generator.next_deliveries(now, budget), generator, http, producer, progress, mqtt
                        )
                progress.maybe_print()
                next_tick += tick_s
                await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    finally:
        for follower in followers:
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)
        progress.maybe_print(force=True)
        if producer is not None:
            await producer.stop()
        await mqtt.stop()
    return 0


async def _follow(generator: Generator) -> None:
    try:
        await generator.follow()  # type: ignore[attr-defined]
    except Exception:
        log.exception("generator stopped following", extra={"domain": generator.domain})


class _LazyProducer:
    """Connects to Kafka on the first TopicRecord, so HTTP-only generators need no broker."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._producer: Any = None

    async def send(self, spec: TopicSpec, key: str, message: Message) -> None:
        if self._producer is None:
            from madina.bus.producer import EventProducer

            self._producer = EventProducer(self._bootstrap, source="simulator")
            await self._producer.start()
        await self._producer.send(spec, key, message)

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()


class _LazyMqtt:
    """One MQTT connection per broker, made on the first MqttPublish (HTTP-only runs need no broker)."""

    def __init__(self) -> None:
        self._clients: dict[MqttBroker, Any] = {}

    async def publish(self, broker: MqttBroker, topic: str, payload: bytes) -> None:
        import aiomqtt

        try:
            client = self._clients.get(broker)
            if client is None:
                client = aiomqtt.Client(broker.host, broker.port, username=broker.username, password=broker.password)
                await client.__aenter__()
                self._clients[broker] = client
            await client.publish(topic, payload, qos=1)
        except aiomqtt.MqttError as error:
            self._clients.pop(broker, None)  # connect again on the next delivery
            raise RuntimeError(f"MQTT {broker.host}:{broker.port}: {error}") from error

    async def stop(self) -> None:
        import aiomqtt

        for client in self._clients.values():
            with contextlib.suppress(aiomqtt.MqttError):
                await client.__aexit__(None, None, None)
        self._clients.clear()


def run_simulation(
    *, city: str, rate: float, duration_s: float, seed: int, speedup: float, domains: Sequence[str] | None
) -> int:
    from madina.localsecrets import simulator_token
    from madina.observability.logging import configure_logging
    from madina.runtime import run_until_stopped
    from madina.settings import MadinaSettings, load_settings

    settings = load_settings(MadinaSettings)
    configure_logging("simulator", settings.log_level, settings.log_format)
    token = simulator_token(settings)
    result = 0

    async def main() -> None:
        nonlocal result
        result = await simulate(
            city=city,
            rate=rate,
            duration_s=duration_s,
            seed=seed,
            speedup=speedup,
            domains=domains,
            device_token=token,
            bootstrap=settings.bootstrap_servers,
        )

    run_until_stopped(main)
    return result
