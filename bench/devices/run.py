"""``python -m bench.devices [--quick]``: readings/s and latency of MQTT ingest through one gateway
process, beside HTTP ingest of the same readings into waste-api.

Both paths end in the same place, ``waste.container-levels.v1`` on a durable embedded broker,
through the same code (the waste domain's parsing, ``check_reading`` and ``publish``). Each
reading is one message (MQTT, QoS 1, topic ``madina/<city>/waste/container-level/<device>``) or
one request (HTTP ``POST /v1/readings``), as one sensor sends it. For each transport:

- **backlog**: N readings sent as fast as the sender can (MQTT: a window of unacknowledged
  PUBLISHes, written by :mod:`bench.devices.wire` because paho's Python client sends only about
  900 QoS 1 messages/s here; HTTP: concurrent requests); readings/s = N over the time from the first send to the
  last reading read back from Kafka;
- **latency**: readings paced at a fixed rate (200/s quick, 500/s full); each reading's
  ``observe_time`` is its send time, and the reader notes when it reads the reading from Kafka:
  p50/p99 of send -> record on Kafka (as read by a consumer with a 10 ms fetch wait, so it includes that much).

The sender, the reader, Mosquitto, the broker and the gateway share the machine's 2 cores, so
the numbers are what one gateway does under that load, not alone; the CPU seconds the gateway
(or waste-api) process spent per reading say what it would carry on a core of its own.
Results: bench/results/devices.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

from bench.devices.wire import WirePublisher
from bench.pipeline import REPO_ROOT, cpu_seconds, start_broker
from bench.stats import percentile
from madina.devservers.launch import ServiceProcess, service_argv
from madina.devservers.mosquitto import MosquittoServer, MqttUser
from madina.devservers.ports import free_port
from madina.localsecrets import ensure_local_secrets
from madina.settings import MadinaSettings
from madina_proto.waste.v1 import container_pb2
from services.waste.domain.containers import load_containers
from services.waste.topics import CONTAINER_LEVELS

GATEWAY = MqttUser("bench-gateway", "bench-gateway-secret", ("#",))
DEVICES = MqttUser("bench-devices", "bench-devices-secret", ("madina/#",))
TARGET_READINGS_PER_S = 5000
MQTT_WINDOW = 1000  # unacknowledged PUBLISHes the sender keeps in flight
HTTP_CONCURRENCY = 32


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


class KafkaReader:
    """Reads the readings topic from the start; notes when each (container, observe_time) arrives."""

    def __init__(self, bootstrap: str) -> None:
        self.consumer = AIOKafkaConsumer(
            CONTAINER_LEVELS.name, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
            enable_auto_commit=False, fetch_max_wait_ms=10, max_partition_fetch_bytes=8 << 20)
        self.arrivals: dict[tuple[str, int], float] = {}
        self.records = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self.consumer.getmany(timeout_ms=100, max_records=10_000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    self.records += 1
                    batch = container_pb2.ContainerLevelObservedBatch.FromString(record.value)
                    for reading in batch.readings:
                        key = (reading.container_id, reading.observe_time.ToMicroseconds())
                        self.arrivals.setdefault(key, now)

    async def wait_for(self, keys: list[tuple[str, int]], timeout_s: float) -> list[float]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(key in self.arrivals for key in keys):
                return [self.arrivals[key] for key in keys]
            await asyncio.sleep(0.05)
        missing = sum(key not in self.arrivals for key in keys)
        raise TimeoutError(f"{missing} of {len(keys)} readings not on Kafka after {timeout_s} s")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        await self.consumer.stop()


def reading(container_id: str) -> tuple[dict[str, Any], tuple[str, int]]:
    """A reading stamped now (its observe_time is its send time); and its key on Kafka."""
    sent = time.time()
    micros = int(sent * 1_000_000)
    stamp = datetime.fromtimestamp(micros / 1_000_000, UTC)
    body = {"container_id": container_id, "observe_time": stamp.isoformat(), "fill_ratio": 0.5,
            "temperature_c": 20.0, "battery_percent": 90.0}
    return body, (container_id, micros)


async def paced(count: int, rate: float | None, send: Callable[[int], Awaitable[None]], window: int) -> float:
    """Calls send(i) for i < count, at ``rate`` a second (None: as fast as ``window`` allows); the wall start."""
    slots = asyncio.Semaphore(window)
    tasks: set[asyncio.Task[None]] = set()
    started = time.time()

    async def one(index: int) -> None:
        try:
            await send(index)
        finally:
            slots.release()

    for index in range(count):
        if rate is not None:
            delay = started + index / rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
        await slots.acquire()
        task = asyncio.create_task(one(index))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    while tasks:
        await asyncio.gather(*list(tasks))
    return started


async def mqtt_run(port: int, containers: list[str], reader: KafkaReader, count: int,
                   rate: float | None) -> dict[str, float]:
    keys: list[tuple[str, int]] = [("", 0)] * count
    publisher = WirePublisher(MQTT_WINDOW)
    await publisher.connect(port, f"bench-devices-{time.monotonic_ns()}", DEVICES.username, DEVICES.password)

    async def send(index: int) -> None:
        container = containers[index % len(containers)]
        body, keys[index] = reading(container)
        await publisher.publish(f"madina/bench/waste/container-level/dev-{container}", json.dumps(body).encode())

    # The publisher keeps its own window of unacknowledged PUBLISHes; paced() only paces.
    started = await paced(count, rate, send, 1)
    await publisher.close()
    sent_s = time.time() - started
    arrivals = await reader.wait_for(keys, timeout_s=120)
    return _figures(started, sent_s, keys, arrivals)


async def http_run(url: str, token: str, containers: list[str], reader: KafkaReader, count: int,
                   rate: float | None) -> dict[str, float]:
    keys: list[tuple[str, int]] = [("", 0)] * count
    limits = httpx.Limits(max_connections=HTTP_CONCURRENCY, max_keepalive_connections=HTTP_CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, limits=limits,
                                 timeout=60) as client:
        async def send(index: int) -> None:
            body, keys[index] = reading(containers[index % len(containers)])
            response = await client.post("/v1/readings", json=body)
            response.raise_for_status()

        started = await paced(count, rate, send, HTTP_CONCURRENCY)
        sent_s = time.time() - started
        arrivals = await reader.wait_for(keys, timeout_s=120)
    return _figures(started, sent_s, keys, arrivals)


def _figures(started: float, sent_s: float, keys: list[tuple[str, int]], arrivals: list[float]) -> dict[str, float]:
    latencies_ms = [(arrival - micros / 1_000_000) * 1000 for (_, micros), arrival in zip(keys, arrivals, strict=True)]
    return {
        "readings": len(keys),
        "readings_per_s": len(keys) / (max(arrivals) - started),
        "send_readings_per_s": len(keys) / sent_s,
        "p50_ms": percentile(latencies_ms, 0.5),
        "p99_ms": percentile(latencies_ms, 0.99),
        "max_ms": max(latencies_ms),
    }


def write_registry(path: Path, containers: list[str]) -> None:
    path.write_text(json.dumps({"devices": [
        {"device_id": f"dev-{c}", "domain": "waste", "kind": "container-level", "entity_id": c} for c in containers]}))


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    quick = args.quick
    backlog = 20_000 if quick else 100_000
    http_backlog = 1_000 if quick else 10_000  # HTTP is far slower per reading: fewer keep the run short
    rate = 200.0 if quick else 500.0  # below what both transports carry on a loaded machine, so latency is not queueing
    paced_count = int(rate * (10 if quick else 20))
    containers = [c.id for c in load_containers()][:500]
    broker = start_broker(workdir / "broker", workdir / "broker.log", partitions=4)
    mosquitto = MosquittoServer.start(workdir / "mosquitto", users=[GATEWAY, DEVICES])
    registry = workdir / "devices.json"
    write_registry(registry, containers)
    (workdir / "gateway-password").write_text(GATEWAY.password)
    secrets = ensure_local_secrets(MadinaSettings(data_dir=workdir / "data"))
    gateway_port, http_port = free_port(), free_port()
    env = {**os.environ, "MADINA_KAFKA_BOOTSTRAP": broker.bootstrap, "MADINA_TOPIC_PARTITIONS": "4",
           "MADINA_LOG_LEVEL": "WARNING", "MADINA_DATA_DIR": str(workdir / "data"),
           "MADINA_DEVICES_GATEWAY_PORT": str(gateway_port), "MADINA_DEVICES_MQTT_PORT": str(mosquitto.port),
           "MADINA_DEVICES_MQTT_USERNAME": GATEWAY.username,
           "MADINA_DEVICES_MQTT_PASSWORD_FILE": str(workdir / "gateway-password"),
           "MADINA_DEVICES_REGISTRY_FILE": str(registry), "MADINA_DEVICES_MQTT_PROTOCOL": args.protocol,
           "MADINA_CREDENTIALS_FILE": str(secrets.credentials_file), "MADINA_GRPC_INSECURE": "true",
           "MADINA_WASTE_HTTP_PORT": str(http_port), "MADINA_WASTE_GRPC_PORT": str(free_port()),
           "MADINA_RATE_LIMIT_PER_S": "1000000", "MADINA_RATE_LIMIT_BURST": "1000000"}
    processes = []
    reader = KafkaReader(broker.bootstrap)
    try:
        log("starting the gateway and waste-api")
        processes.append(ServiceProcess.start(service_argv("mqtt-gateway"), env, workdir / "gateway.log",
                                              health_url=f"http://127.0.0.1:{gateway_port}/healthz", cwd=REPO_ROOT,
                                              timeout_s=120))
        processes.append(ServiceProcess.start(service_argv("waste-api"), env, workdir / "waste-api.log",
                                              health_url=f"http://127.0.0.1:{http_port}/healthz", cwd=REPO_ROOT,
                                              timeout_s=120))
        await reader.start()
        token = secrets.tokens["simulator"]
        url = f"http://127.0.0.1:{http_port}"
        results: dict[str, Any] = {}
        plan = [
            ("mqtt_backlog", f"MQTT backlog of {backlog:,}", lambda: mqtt_run(mosquitto.port, containers, reader,
                                                                               backlog, None)),
            ("http_backlog", f"HTTP backlog of {http_backlog:,}", lambda: http_run(url, token, containers, reader,
                                                                                    http_backlog, None)),
            ("mqtt_paced", f"MQTT paced at {rate:,.0f}/s", lambda: mqtt_run(mosquitto.port, containers, reader,
                                                                            paced_count, rate)),
            ("http_paced", f"HTTP paced at {rate:,.0f}/s", lambda: http_run(url, token, containers, reader,
                                                                            paced_count, rate)),
        ]
        # CPU each server process spends per reading: what one process would carry on a core of its own.
        server_pid = {"mqtt": processes[0].process.pid, "http": processes[1].process.pid}
        for run in range(args.repeat):
            for name, label, measurement in plan:
                log(f"run {run + 1}: {label}")
                pid = server_pid[name.split("_")[0]]
                cpu_before = cpu_seconds(pid)
                figures = await measurement()
                figures["server_cpu_s_per_1k_readings"] = (cpu_seconds(pid) - cpu_before) / figures["readings"] * 1000
                figures["readings_per_server_cpu_s"] = 1000 / figures["server_cpu_s_per_1k_readings"]
                # How much of one core the process used over the run. Well below 1 it was waiting: for
                # the CPU on a loaded machine, or for messages (a cap by round trips, not by its CPU).
                figures["server_cores_used"] = figures["readings_per_s"] / figures["readings_per_server_cpu_s"]
                results.setdefault(name, []).append(figures)
                log(f"  {figures}")
        return results
    finally:
        await reader.stop()
        for process in processes:
            process.stop()
        mosquitto.stop()
        broker.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=None)
    parser.add_argument("--protocol", choices=("5", "3.1.1"), default="5",
                        help="the gateway's MQTT version (5 decodes properties on every message: slower)")
    args = parser.parse_args(argv)
    args.repeat = args.repeat or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="bench-devices-") as directory:
        runs = asyncio.run(measure(args, Path(directory)))
    median = {name: {key: statistics.median(run[key] for run in series) for key in series[0]}
              for name, series in runs.items()}
    print()
    print(f"{'one reading per message / request':<36} | {'MQTT (gateway)':>15} | {'HTTP (waste-api)':>16} | target")
    print(f"{'backlog readings/s (send -> Kafka)':<36} | {median['mqtt_backlog']['readings_per_s']:>15,.0f} | "
          f"{median['http_backlog']['readings_per_s']:>16,.0f} | >= {TARGET_READINGS_PER_S:,}")
    rate = runs["mqtt_paced"][0]["readings"] / (10 if args.quick else 20)
    for label, key in ((f"p50 ms at {rate:,.0f}/s (send -> Kafka)", "p50_ms"), (f"p99 ms at {rate:,.0f}/s", "p99_ms")):
        print(f"{label:<36} | {median['mqtt_paced'][key]:>15,.1f} | {median['http_paced'][key]:>16,.1f} |")
    print(f"{'readings per server CPU-second':<36} | {median['mqtt_backlog']['readings_per_server_cpu_s']:>15,.0f} | "
          f"{median['http_backlog']['readings_per_server_cpu_s']:>16,.0f} | (one process on a free core)")
    print(f"{'cores the server used (backlog)':<36} | {median['mqtt_backlog']['server_cores_used']:>15,.2f} | "
          f"{median['http_backlog']['server_cores_used']:>16,.2f} | (load {os.getloadavg()[0]:.1f} at the end)")
    path = REPO_ROOT / "bench" / "results" / f"devices{'' if args.protocol == '5' else '-mqtt311'}.json"
    path.write_text(json.dumps({
        "quick": args.quick, "repeat": args.repeat, "gateway_mqtt_protocol": args.protocol,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "targets": {"readings_per_s": TARGET_READINGS_PER_S}, "median": median, "runs": runs,
    }, indent=2))
    log(f"results written to {path}")
    return 0
