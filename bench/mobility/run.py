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
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.mobility.plain_loop import PLAIN_ALERTS, PLAIN_APPLIED, READY_LINE
from bench.mobility.workload import ROUTE_LATE_COUNT, START, feeds
from bench.pipeline import Observer, start_broker
from bench.stats import percentile
from madina.bus import ALERTS, KPIS, EventProducer, ensure_topics
from madina.bus.topics import TopicSpec
from madina.devservers.launch import ServiceProcess, service_argv
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


async def ingest(producer: EventProducer, schedule: Any, body: bytes) -> int:
    batches = feed_batches(parse_feed(body, 100_000), schedule)
    await publish(producer, batches)
    return len(batches.trip_updates)


async def backlog(
    kind: str, bootstrap: str, workdir: Path, schedule: Any, entities: int, batch: int
) -> tuple[float, Any, Observer, datetime]:
    source = feeds(schedule, batch)
    records = 0
    last = START
    async with EventProducer(bootstrap, source="bench") as producer:
        for _ in range(entities // batch):
            _, last, body = next(source)
            records += await ingest(producer, schedule, body)
    processor = start_processor(kind, bootstrap, workdir)
    observer = Observer(bootstrap, ROUTE_STATUS.name if kind == "faust" else PLAIN_APPLIED,
                        ALERTS.name if kind == "faust" else PLAIN_ALERTS, PARTITIONS)
    await observer.start()
    await observer.wait_applied(records, f"{kind} backlog", timeout_s=600)
    stamps = observer.applied_ms
    rate = (len(stamps) - 1) * batch / ((max(stamps) - min(stamps)) / 1000) if len(stamps) > 1 else 0.0
    print(f"  {kind}: backlog {len(stamps)}/{records} records, {rate:,.0f} TripUpdate entities/s", flush=True)
    return rate, processor, observer, last


async def latency(kind: str, bootstrap: str, schedule: Any, observer: Observer, after: datetime,
                  rate: int, batch: int, seconds: float) -> dict[str, float]:
    accepted: dict[int, float] = {}  # event time (ms) of the feed -> when the ingest began on it
    source = feeds(schedule, batch)
    at = START
    while at <= after:  # past the backlog's event times
        _, at, _ = next(source)
    interval = batch / rate
    async with EventProducer(bootstrap, source="bench") as producer:
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            _, at, body = next(source)
            accepted[int(at.timestamp() * 1000)] = time.perf_counter()
            await ingest(producer, schedule, body)
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))
    await asyncio.sleep(3)
    seen = [(received - accepted[ms]) * 1000 for received, _, ms in observer.alerts if ms in accepted]
    result = {"alerts": len(seen), "p50_ms": percentile(seen, 0.5) if seen else 0.0,
              "p99_ms": percentile(seen, 0.99) if seen else 0.0, "max_ms": max(seen, default=0.0)}
    print(f"  {kind}: latency at {rate} entities/s: {result}", flush=True)
    return result


async def run_kind(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    schedule = load_feeds(MobilityProcessorSettings().mobility_gtfs_feeds)
    with tempfile.TemporaryDirectory(prefix=f"bench-mobility-{kind}-") as tmp:
        workdir = Path(tmp)
        broker = start_broker(workdir / "broker", workdir / "broker.log", PARTITIONS)
        try:
            extra = [TopicSpec(name=PLAIN_ALERTS, message_type=alerts_pb2.AlertEvent, key="alert_id",
                               description="bench"),
                     TopicSpec(name=PLAIN_APPLIED, message_type=alerts_pb2.AlertEvent, key="alert_id",
                               description="bench")]
            await ensure_topics(broker.bootstrap, [*ALL, ALERTS, KPIS, *extra], default_partitions=PARTITIONS)
            rate, processor, observer, last = await backlog(
                kind, broker.bootstrap, workdir, schedule, args.entities, args.batch)
            try:
                result = await latency(kind, broker.bootstrap, schedule, observer, last, args.rate, args.batch,
                                       args.seconds)
            finally:
                await observer.stop()
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
