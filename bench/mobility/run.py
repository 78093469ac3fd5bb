"""Benchmark of the mobility pipeline: GTFS-Realtime trip updates -> delay detection -> alerts.

    python -m bench.mobility            # ~12 minutes: 3 repetitions, medians
    python -m bench.mobility --quick    # ~1.5 minutes, smaller volumes, one repetition
    python -m bench.mobility --quick --profile-worker /tmp/mobility.prof   # CPU profile of the faust worker

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

Each phase also reports the processor's CPU time per 1,000 entities (``cpu_ms_per_1k_entities``,
user + system of its process, start-up excluded): on a shared machine that says more than a
wall-clock rate. ``--repeat`` runs both processors that many times, alternating which goes
first, and reports the medians beside every run. The pure per-record cost without Kafka or faust
is :mod:`bench.mobility.domain`.

Results go to ``bench/results/mobility.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.mobility.plain_loop import PLAIN_ALERTS, PLAIN_APPLIED, READY_LINE
from bench.mobility.workload import ROUTE_LATE_COUNT, START, feeds
from bench.pipeline import Observer, cpu_seconds, start_broker
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


def start_processor(kind: str, bootstrap: str, workdir: Path, profile: Path | None = None) -> Any:
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
        argv = service_argv("mobility-processor")
        if profile is not None:  # the same command under a CPU-time cProfile, written when the worker stops
            argv = [argv[0], "-m", "bench.mobility.profiled", str(profile), *argv[2:]]
            env["PYTHONPATH"] = str(REPO_ROOT)
        return ServiceProcess.start(argv, env, workdir / "processor.log",
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
        processor.stop(timeout_s=60)  # a profiled worker writes its profile on the way out
    else:
        processor.terminate()
        processor.wait(10)


def keep_logs(workdir: Path, into: Path, kind: str) -> None:
    for log in workdir.glob("*.log"):
        shutil.copy(log, into / f"{kind}-{int(time.time())}-{log.name}")


def pid_of(processor: Any) -> int:
    return int(processor.process.pid if isinstance(processor, ServiceProcess) else processor.pid)


async def ingest(producer: EventProducer, schedule: Any, body: bytes) -> int:
    """Publish one FeedMessage the way the API does; how many trip updates it carried."""
    batches = feed_batches(parse_feed(body, 100_000), schedule)
    await publish(producer, batches)
    return batches.trip_updates_count


async def backlog(
    kind: str, bootstrap: str, workdir: Path, schedule: Any, entities: int, batch: int, profile: Path | None
) -> tuple[float, float, Any, Observer, datetime]:
    """The backlog rate (entities/s) and the processor's CPU ms per 1k entities after its first record."""
    source = feeds(schedule, batch)
    records = 0
    sent = 0
    last = START
    async with EventProducer(bootstrap, source="bench") as producer:
        for _ in range(entities // batch):
            _, last, body = next(source)
            batches = feed_batches(parse_feed(body, 100_000), schedule)
            await publish(producer, batches)
            records += len(batches.trip_updates)
            sent += batches.trip_updates_count
    processor = start_processor(kind, bootstrap, workdir, profile)
    observer = Observer(bootstrap, ROUTE_STATUS.name if kind == "faust" else PLAIN_APPLIED,
                        ALERTS.name if kind == "faust" else PLAIN_ALERTS, PARTITIONS)
    await observer.start()
    await observer.wait_applied(1, f"{kind} first record", timeout_s=300)
    cpu_first = cpu_seconds(pid_of(processor))  # start-up (imports, schedule, recovery) not counted
    await observer.wait_applied(records, f"{kind} backlog", timeout_s=600)
    cpu_ms_per_1k = 1e6 * (cpu_seconds(pid_of(processor)) - cpu_first) / (sent * (records - 1) / records)
    stamps = observer.applied_ms
    per_record = sent / records
    rate = (len(stamps) - 1) * per_record / ((max(stamps) - min(stamps)) / 1000) if len(stamps) > 1 else 0.0
    print(f"  {kind}: backlog {len(stamps)}/{records} records, {rate:,.0f} TripUpdate entities/s, "
          f"{cpu_ms_per_1k:,.0f} ms CPU per 1k entities", flush=True)
    return rate, cpu_ms_per_1k, processor, observer, last


async def latency(kind: str, bootstrap: str, schedule: Any, observer: Observer, after: datetime,
                  rate: int, batch: int, seconds: float, pid: int) -> dict[str, float]:
    accepted: dict[int, float] = {}  # event time (ms) of the feed -> when the ingest began on it
    source = feeds(schedule, batch)
    at = START
    while at <= after:  # past the backlog's event times
        _, at, _ = next(source)
    interval = batch / rate
    entities = 0
    cpu_before = cpu_seconds(pid)
    async with EventProducer(bootstrap, source="bench") as producer:
        start = time.perf_counter()
        n = 0
        while time.perf_counter() - start < seconds:
            _, at, body = next(source)
            accepted[int(at.timestamp() * 1000)] = time.perf_counter()
            entities += await ingest(producer, schedule, body)
            n += 1
            await asyncio.sleep(max(0.0, start + n * interval - time.perf_counter()))
    await asyncio.sleep(3)
    cpu_ms_per_1k = 1e6 * (cpu_seconds(pid) - cpu_before) / max(entities, 1)
    seen = [(received - accepted[ms]) * 1000 for received, _, ms in observer.alerts if ms in accepted]
    result = {"alerts": len(seen), "p50_ms": percentile(seen, 0.5) if seen else 0.0,
              "p99_ms": percentile(seen, 0.99) if seen else 0.0, "max_ms": max(seen, default=0.0),
              "cpu_ms_per_1k_entities": cpu_ms_per_1k}
    print(f"  {kind}: latency at {rate} entities/s: {result}", flush=True)
    return result


async def run_kind(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    schedule = load_feeds(MobilityProcessorSettings().mobility_gtfs_feeds)
    profile = Path(args.profile_worker) if kind == "faust" and args.profile_worker else None
    with tempfile.TemporaryDirectory(prefix=f"bench-mobility-{kind}-") as tmp:
        workdir = Path(tmp)
        broker = start_broker(workdir / "broker", workdir / "broker.log", PARTITIONS)
        try:
            extra = [TopicSpec(name=PLAIN_ALERTS, message_type=alerts_pb2.AlertEvent, key="alert_id",
                               description="bench"),
                     TopicSpec(name=PLAIN_APPLIED, message_type=alerts_pb2.AlertEvent, key="alert_id",
                               description="bench")]
            await ensure_topics(broker.bootstrap, [*ALL, ALERTS, KPIS, *extra], default_partitions=PARTITIONS)
            rate, cpu_ms_per_1k, processor, observer, last = await backlog(
                kind, broker.bootstrap, workdir, schedule, args.entities, args.batch, profile)
            try:
                result = await latency(kind, broker.bootstrap, schedule, observer, last, args.rate, args.batch,
                                       args.seconds, pid_of(processor))
            finally:
                await observer.stop()
                stop(processor)
        finally:
            broker.stop()
            if args.logs:
                keep_logs(workdir, Path(args.logs), kind)
    return {"backlog_entities_per_s": round(rate), "backlog_cpu_ms_per_1k_entities": round(cpu_ms_per_1k, 1),
            "latency": result}


def medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {
        "backlog_entities_per_s": statistics.median(r["backlog_entities_per_s"] for r in runs),
        "backlog_cpu_ms_per_1k_entities": statistics.median(r["backlog_cpu_ms_per_1k_entities"] for r in runs),
        **{f"latency_{name}": statistics.median(r["latency"][name] for r in runs)
           for name in ("p50_ms", "p99_ms", "max_ms", "cpu_ms_per_1k_entities")},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batch", type=int, default=50, help="trip updates per FeedMessage")
    parser.add_argument("--rate", type=int, default=1000, help="entities/s in the latency phase")
    parser.add_argument("--repeat", type=int, help="repetitions of both processors (default 3, --quick 1)")
    parser.add_argument("--logs", metavar="DIR", help="keep the processor's and broker's logs in DIR")
    parser.add_argument("--profile-worker", metavar="PATH", help="run the faust worker under cProfile, stats to PATH")
    args = parser.parse_args()
    args.entities = 20_000 if args.quick else 100_000
    args.seconds = 15.0 if args.quick else 60.0
    repeat = args.repeat or (1 if args.quick else 3)
    if args.logs:
        Path(args.logs).mkdir(parents=True, exist_ok=True)
    if args.profile_worker:
        args.profile_worker = str(Path(args.profile_worker).resolve())  # the worker runs in a scratch directory
    runs: dict[str, list[dict[str, Any]]] = {"faust": [], "plain": []}
    for n in range(repeat):
        for kind in ("faust", "plain") if n % 2 == 0 else ("plain", "faust"):
            print(f"{kind} ({n + 1}/{repeat}):", flush=True)
            runs[kind].append(asyncio.run(run_kind(kind, args)))
    summary = {kind: medians(kind_runs) for kind, kind_runs in runs.items()}
    summary["ratio_faust_to_plain"] = {
        "backlog_entities_per_s": summary["faust"]["backlog_entities_per_s"]
        / max(summary["plain"]["backlog_entities_per_s"], 1)}
    print(json.dumps(summary, indent=1))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "quick": args.quick, "batch": args.batch, "rate": args.rate, "repeat": repeat,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "median": summary, "runs": runs}, indent=1))
    return 0
