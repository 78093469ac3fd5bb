"""Benchmark of the mobility pipeline: GTFS-Realtime trip updates -> delay detection -> alerts.

    python -m bench.mobility            # ~4 minutes
    python -m bench.mobility --quick    # ~1.5 minutes, smaller volumes

Two processors run the same rule on the same input, each against its own fresh embedded broker
in durable mode, 4 partitions, the sample feeds (4 routes):

- ``faust``: ``madina service mobility-processor`` as the platform runs it (exactly-once alerts,
  changelogged route state, route status and KPIs per record);
- ``plain``: :mod:`bench.mobility.plain_loop`, one aiokafka loop applying ``apply_route_events``
  to in-memory state.

1. **Backlog**: FeedMessages of ``--batch`` trip updates each go through the ingest code
   (``parse_feed``, ``feed_batches``, ``publish``: one record per route per feed), then the
   processor starts; TripUpdate entities/s between the first and the last record it applied
   (timestamps of its route-status records, or of the plain loop's markers).
2. **Latency**: ``--rate`` entities/s through the same ingest code while the processor runs;
   for every alert, the time from the start of ``parse_feed`` on the FeedMessage that caused it
   to consuming its AlertEvent; p50/p99/max. (HTTP framing is not included.)

Results go to ``bench/results/mobility.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.mobility.plain_loop import PLAIN_ALERTS, PLAIN_APPLIED, READY_LINE
from bench.mobility.workload import ROUTE_LATE_COUNT, feeds
from bench.stats import percentile
from madina.bus import ALERTS, KPIS, EventProducer, ensure_topics
from madina.bus.topics import TopicSpec
from madina.devservers.launch import BrokerProcess, ServiceProcess, service_argv
from madina.devservers.ports import free_port
from madina_proto.alerts.v1 import alerts_pb2
from services.mobility.api.publisher import feed_batches, parse_feed, publish
from services.mobility.domain.gtfs import load_feeds
from services.mobility.settings import MobilityProcessorSettings
from services.mobility.topics import ALL, ROUTE_STATUS

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results" / "mobility.json"
PARTITIONS = 4


def start_processor(kind: str, bootstrap: str, workdir: Path) -> Any:
    if kind == "faust":
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
            "MADINA_KAFKA_BOOTSTRAP": bootstrap,
            "MADINA_TOPIC_PARTITIONS": str(PARTITIONS),
            "MADINA_DATA_DIR": str(workdir / "data"),
            "MADINA_MOBILITY_PROCESSOR_PORT": str(port),
            "MADINA_MOBILITY_TICK_INTERVAL_S": "3600",
            "MADINA_MOBILITY_ROUTE_LATE_COUNT": str(ROUTE_LATE_COUNT),
            "MADINA_LOG_FORMAT": "json",
        }
        return ServiceProcess.start(service_argv("mobility-processor"), env, workdir / "processor.log",
                                    health_url=f"http://127.0.0.1:{port}/healthz", cwd=workdir)
    process = subprocess.Popen([sys.executable, "-m", "bench.mobility.plain_loop", "--bootstrap", bootstrap],
                               stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert process.stdout is not None
    if process.stdout.readline().strip() != READY_LINE:
        process.kill()
        raise RuntimeError("plain loop did not start")
    return process


def stop(processor: Any) -> None:
    if isinstance(processor, ServiceProcess):
        processor.stop()
    else:
        processor.terminate()
        processor.wait(10)


async def _consumer(bootstrap: str, topic: str, *, from_end: bool) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    await consumer._client.force_metadata_update()
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
    consumer.assign(partitions)
    await (consumer.seek_to_end(*partitions) if from_end else consumer.seek_to_beginning(*partitions))
    return consumer


async def ingest(producer: EventProducer, schedule: Any, body: bytes) -> int:
    batches = feed_batches(parse_feed(body, 100_000), schedule)
    await publish(producer, batches)
    return len(batches.trip_updates)


async def backlog(
    kind: str, bootstrap: str, workdir: Path, schedule: Any, entities: int, batch: int
) -> tuple[float, Any]:
    source = feeds(schedule, batch)
    records = 0
    async with EventProducer(bootstrap, source="bench") as producer:
        sent = 0
        while sent < entities:
            _, _, body = next(source)
            records += await ingest(producer, schedule, body)
            sent += batch
    processor = start_processor(kind, bootstrap, workdir)
    applied_topic = ROUTE_STATUS.name if kind == "faust" else PLAIN_APPLIED
    consumer = await _consumer(bootstrap, applied_topic, from_end=False)
    stamps: list[int] = []
    deadline = time.monotonic() + 600
    try:
        while len(stamps) < records and time.monotonic() < deadline:
            for got in (await consumer.getmany(timeout_ms=500)).values():
                stamps += [r.timestamp for r in got]
    finally:
        await consumer.stop()
    rate = (len(stamps) - 1) * batch / ((max(stamps) - min(stamps)) / 1000) if len(stamps) > 1 else 0.0
    print(f"  {kind}: backlog {len(stamps)}/{records} records, {rate:,.0f} TripUpdate entities/s", flush=True)
    source.close()
    return rate, processor


async def latency(kind: str, bootstrap: str, schedule: Any, rate: int, batch: int, seconds: float,
                  first_time: Any) -> dict[str, float]:
    alerts_topic = ALERTS.name if kind == "faust" else PLAIN_ALERTS
    consumer = await _consumer(bootstrap, alerts_topic, from_end=True)
    accepted: dict[tuple[str, int], float] = {}
    seen: list[float] = []

    async def collect() -> None:
        while True:
            for got in (await consumer.getmany(timeout_ms=100)).values():
                now = time.perf_counter()
                for record in got:
                    event = alerts_pb2.AlertEvent.FromString(record.value)
                    sent = accepted.get((event.labels["route_id"], event.event_time.seconds))
                    if sent is not None:
                        seen.append((now - sent) * 1000)

    collector = asyncio.create_task(collect())
    source = feeds(schedule, batch)
    for _ in range(2000):  # skip past the backlog's event times
        route_id, at, _ = next(source)
        if at > first_time:
            break
    interval = batch / rate
    async with EventProducer(bootstrap, source="bench") as producer:
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            route_id, at, body = next(source)
            t0 = time.perf_counter()
            accepted[(route_id, int(at.timestamp()))] = t0
            await ingest(producer, schedule, body)
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))
    await asyncio.sleep(3)
    collector.cancel()
    await asyncio.gather(collector, return_exceptions=True)
    await consumer.stop()
    result = {"alerts": len(seen), "p50_ms": percentile(seen, 0.5) if seen else 0.0,
              "p99_ms": percentile(seen, 0.99) if seen else 0.0, "max_ms": max(seen, default=0.0)}
    print(f"  {kind}: latency at {rate} entities/s: {result}", flush=True)
    return result


async def run_kind(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    schedule = load_feeds(MobilityProcessorSettings().mobility_gtfs_feeds)
    with tempfile.TemporaryDirectory(prefix=f"bench-mobility-{kind}-") as tmp:
        workdir = Path(tmp)
        broker = BrokerProcess.start(memory=False, data_dir=workdir / "broker", default_partitions=PARTITIONS,
                                     initial_rebalance_delay_ms=None, log_path=workdir / "broker.log")
        try:
            extra = [TopicSpec(name=PLAIN_ALERTS, message_type=alerts_pb2.AlertEvent, key="alert_id",
                               description="bench"),
                     TopicSpec(name=PLAIN_APPLIED, message_type=alerts_pb2.AlertEvent, key="alert_id",
                               description="bench")]
            await ensure_topics(broker.bootstrap, [*ALL, ALERTS, KPIS, *extra], default_partitions=PARTITIONS)
            rate, processor = await backlog(kind, broker.bootstrap, workdir, schedule, args.entities, args.batch)
            try:
                source = feeds(schedule, args.batch)
                last = None
                for _ in range(args.entities // args.batch + 8):
                    _, last, _ = next(source)
                result = await latency(kind, broker.bootstrap, schedule, args.rate, args.batch, args.seconds, last)
            finally:
                stop(processor)
        finally:
            broker.stop()
    return {"backlog_entities_per_s": round(rate), "latency": result}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=50, help="trip updates per FeedMessage")
    parser.add_argument("--rate", type=int, default=1000, help="entities/s in the latency phase")
    args = parser.parse_args()
    args.entities = 20_000 if args.quick else 100_000
    args.seconds = 15.0 if args.quick else 60.0
    results = {}
    for kind in ("faust", "plain"):
        print(f"{kind}:", flush=True)
        results[kind] = asyncio.run(run_kind(kind, args))
    print(json.dumps(results, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"quick": args.quick, "batch": args.batch, "rate": args.rate, **results}, indent=1))
    return 0
