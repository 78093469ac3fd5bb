"""Benchmark of the waste pipeline: container readings -> waste processor -> alerts.

    python -m bench.waste.run            # ~5 minutes; medians of 3 repetitions
    python -m bench.waste.run --quick    # ~1.5 minutes; one repetition, smaller volumes

Two processors run the same step on the same input, each against its own fresh durable embedded
broker, 4 partitions, every seeded container (621 in two cities):

- ``faust``: ``madina service waste-processor``, one worker, as the platform runs it;
- ``plain``: :mod:`bench.waste.plain_loop`, one aiokafka loop applying the same step to
  in-memory state (no changelog, status, KPI or collection records).

Workload: a record per container per hour holding its six 10-minute readings (as a gateway
batching a container's reports would send them, and as the ingest API publishes a batch), each
container filling at its own rate and emptied when full, so ``container-full`` alerts are
raised, escalated and cleared all along.

1. **Backlog**: readings pre-loaded, then the processor started; readings/s between the first and
   the last applied record (status records for faust, markers for plain): per worker.
2. **Latency**: ``--rate`` readings/s paced; for every alert, the time from producing the record
   holding its reading to consuming the AlertEvent; p50/p99/max.

Results go to ``bench/results/waste.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.pipeline import (
    BenchProcessor,
    Observer,
    cpu_seconds,
    produce_all,
    produce_paced,
    start_broker,
    start_plain_loop,
)
from bench.stats import percentile
from bench.waste.plain_loop import PLAIN_ALERTS, PLAIN_APPLIED, READY_LINE
from madina.bus import ALERTS, KPIS, ensure_topics
from madina.bus.codec import standard_headers
from madina.devservers.launch import ServiceProcess, service_argv
from madina.devservers.ports import free_port
from services.waste.convert import batches_by_container
from services.waste.domain.containers import Container, load_containers
from services.waste.domain.readings import Reading
from services.waste.topics import ALL, CONTAINER_LEVELS, CONTAINER_STATUS

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results" / "waste.json"
PARTITIONS = 4
READINGS_PER_RECORD = 6
TARGET_READINGS_PER_S = 3_500
TARGET_P99_MS = 100.0
MAX_AGE_S = 30 * 86_400
SYSTEMS = ("faust", "plain")
LABELS = {"faust": "faust processor", "plain": "plain aiokafka"}


def log(message: str) -> None:
    print(f"[bench.waste {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    readings: int
    events: list[tuple[str, int]]  # (container id, reading time ms): how an alert finds its record

    @property
    def weight(self) -> int:
        return self.readings


def workload(containers: list[Container], hours: int, start: datetime) -> list[Record]:
    """Hour by hour, a record per container with its six readings of that hour."""
    fills = {c.id: 0.1 * (i % 8) for i, c in enumerate(containers)}
    rates = {c.id: 0.02 + 0.01 * (i % 5) for i, c in enumerate(containers)}
    out = []
    for hour in range(hours):
        for container in containers:
            readings = []
            for n in range(READINGS_PER_RECORD):
                at = start + timedelta(hours=hour, minutes=10 * n)
                fill = fills[container.id] + rates[container.id]
                fills[container.id] = fill if fill <= 1.0 else 0.02
                readings.append(Reading(container.id, at, round(fills[container.id], 3), 21.0, 1.0, False, 80.0))
            [batch] = batches_by_container(readings)
            out.append(Record(
                CONTAINER_LEVELS.name, container.id.encode(), batch.SerializeToString(),
                standard_headers(CONTAINER_LEVELS, "bench", int(readings[-1].observe_time.timestamp() * 1000)),
                len(readings), [(container.id, int(r.observe_time.timestamp() * 1000)) for r in readings],
            ))
    return out


def start_processor(kind: str, bootstrap: str, workdir: Path) -> BenchProcessor:
    if kind == "faust":
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
            "MADINA_KAFKA_BOOTSTRAP": bootstrap, "MADINA_TOPIC_PARTITIONS": str(PARTITIONS),
            "MADINA_DATA_DIR": str(workdir / "data"), "MADINA_WASTE_PROCESSOR_PORT": str(port),
            "MADINA_WASTE_TICK_INTERVAL_S": "3600", "MADINA_LOG_FORMAT": "json",
            "MADINA_WASTE_MAX_READING_AGE_S": str(MAX_AGE_S), "MADINA_WASTE_MAX_FUTURE_SKEW_S": "86400",
        }
        started = ServiceProcess.start(service_argv("waste-processor"), env, workdir / "processor.log",
                                       health_url=f"http://127.0.0.1:{port}/healthz", cwd=workdir)
        return BenchProcessor(started.process, CONTAINER_STATUS.name, ALERTS.name, started.log_path)
    return start_plain_loop(
        "bench.waste.plain_loop",
        ["--bootstrap", bootstrap, "--partitions", str(PARTITIONS), "--max-age-s", str(MAX_AGE_S)],
        ready_line=READY_LINE, applied_topic=PLAIN_APPLIED.name, alerts_topic=PLAIN_ALERTS.name, cwd=REPO_ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")}, "PYTHONPATH": str(REPO_ROOT)},
    )


async def measure(kind: str, backlog: list[Record], paced: list[Record], rate: float, scratch: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
    broker = start_broker(workdir / "broker", workdir / "broker.log", PARTITIONS)
    processor: BenchProcessor | None = None
    observer: Observer | None = None
    try:
        bootstrap = broker.bootstrap
        await ensure_topics(bootstrap, [*ALL, ALERTS, KPIS], default_partitions=PARTITIONS)
        await ensure_topics(bootstrap, [PLAIN_ALERTS, PLAIN_APPLIED], default_partitions=PARTITIONS,
                            with_dead_letters=False)
        readings = sum(r.readings for r in backlog)
        await produce_all(bootstrap, backlog)
        log(f"{kind}: {readings:,} readings pre-loaded in {len(backlog):,} records; starting processor")
        processor = start_processor(kind, bootstrap, workdir)
        observer = Observer(bootstrap, processor.applied_topic, processor.alerts_topic, PARTITIONS, log)
        await observer.start()
        await observer.wait_applied(len(backlog), f"{kind} backlog", timeout_s=900)
        applied = observer.applied_ms[: len(backlog)]
        span_s = (max(applied) - min(applied)) / 1000
        backlog_rate = (len(applied) - 1) * READINGS_PER_RECORD / span_s
        log(f"{kind} backlog: {backlog_rate:,.0f} readings/s ({len(applied):,} records in {span_s:.1f} s)")

        await asyncio.sleep(1.0)
        alerts_before = len(observer.alerts)
        cpu_before = cpu_seconds(processor.process.pid)
        sent, achieved = await produce_paced(bootstrap, paced, rate)
        try:
            await observer.wait_applied(len(backlog) + len(paced), f"{kind} paced", timeout_s=15)
            await asyncio.sleep(1.0)
        except TimeoutError as behind:
            log(f"{kind}: {behind}; alerts still missing are not counted (latencies are a lower bound)")
        cpu_paced = cpu_seconds(processor.process.pid) - cpu_before
        latencies, unmatched = [], 0
        for received, source, event_ms in observer.alerts[alerts_before:]:
            if (source, event_ms) in sent:
                latencies.append((received - sent[(source, event_ms)]) * 1000)
            else:
                unmatched += 1
        if not latencies:
            raise RuntimeError(f"{kind}: no alert in the paced phase")
        latency = {
            "alerts": len(latencies), "unmatched_alerts": unmatched, "produced_readings_per_s": achieved,
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies),
            "cpu_ms_per_1k_readings": 1e6 * cpu_paced / sum(r.readings for r in paced),
        }
        log(f"{kind} latency at {achieved:,.0f} readings/s: p50 {latency['p50_ms']:,.0f} ms, "
            f"p99 {latency['p99_ms']:,.0f} ms, max {latency['max_ms']:,.0f} ms over {len(latencies):,} alerts")
        return {"backlog_readings_per_s": backlog_rate, "latency": latency}
    finally:
        if observer is not None:
            await observer.stop()
        if processor is not None:
            processor.stop()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the waste processor against a plain aiokafka loop")
    parser.add_argument("--quick", action="store_true", help="one repetition, smaller volumes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backlog-hours", type=int, help="hours of readings pre-loaded (default 24, quick 8)")
    parser.add_argument("--rate", type=float, default=2000.0, help="readings/s in the latency phase")
    parser.add_argument("--latency-hours", type=int, help="hours of event time paced (default 8, quick 4)")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    backlog_hours = args.backlog_hours or (8 if args.quick else 24)
    latency_hours = args.latency_hours or (4 if args.quick else 8)
    containers = load_containers()
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    everything = workload(containers, backlog_hours + latency_hours, start)
    split = len(containers) * backlog_hours
    backlog, paced = everything[:split], everything[split:]
    log(f"{len(containers)} containers; backlog {sum(r.readings for r in backlog):,} and paced "
        f"{sum(r.readings for r in paced):,} readings at {args.rate:,.0f}/s; {repeat} repetition(s)")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SYSTEMS}
    with tempfile.TemporaryDirectory(prefix="madina-bench-waste-") as scratch:
        for n in range(repeat):
            for kind in (SYSTEMS if n % 2 == 0 else SYSTEMS[::-1]):
                log(f"repetition {n + 1}/{repeat}: {LABELS[kind]}")
                runs[kind].append(asyncio.run(measure(kind, backlog, paced, args.rate, Path(scratch))))
    summary = {
        "backlog_readings_per_s": {k: statistics.median(r["backlog_readings_per_s"] for r in runs[k]) for k in SYSTEMS},
        "latency_p50_ms": {k: statistics.median(r["latency"]["p50_ms"] for r in runs[k]) for k in SYSTEMS},
        "latency_p99_ms": {k: statistics.median(r["latency"]["p99_ms"] for r in runs[k]) for k in SYSTEMS},
        "latency_max_ms": {k: statistics.median(r["latency"]["max_ms"] for r in runs[k]) for k in SYSTEMS},
    }
    print()
    print(f"{'metric':<44} | {LABELS['faust']:>15} | {LABELS['plain']:>14} | target")
    for name, label, target in (
        ("backlog_readings_per_s", "readings/s per worker", f">= {TARGET_READINGS_PER_S:,}"),
        ("latency_p50_ms", f"reading -> alert p50 at {args.rate:,.0f}/s (ms)", ""),
        ("latency_p99_ms", f"reading -> alert p99 at {args.rate:,.0f}/s (ms)", f"< {TARGET_P99_MS:.0f}"),
        ("latency_max_ms", f"reading -> alert max at {args.rate:,.0f}/s (ms)", ""),
    ):
        print(f"{label:<44} | {summary[name]['faust']:>15,.0f} | {summary[name]['plain']:>14,.0f} | {target}")
    print()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "quick": args.quick, "repeat": repeat,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "workload": {"containers": len(containers), "readings_per_record": READINGS_PER_RECORD,
                     "backlog_hours": backlog_hours, "latency_hours": latency_hours,
                     "rate_readings_per_s": args.rate, "partitions": PARTITIONS},
        "targets": {"readings_per_s": TARGET_READINGS_PER_S, "p99_ms": TARGET_P99_MS},
        "median": summary, "runs": runs,
    }, indent=2))
    log(f"results written to {RESULTS}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
