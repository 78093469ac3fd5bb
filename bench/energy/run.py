"""Benchmark of the energy pipeline: street-light telemetry -> circuit processor -> alerts.

    python -m bench.energy            # ~5 minutes; medians of 3 repetitions
    python -m bench.energy --quick    # ~1.5 minutes; one repetition, smaller volumes

Two processors run the same circuit step on the same input, each against its own fresh durable
embedded broker, 4 partitions, the whole seed network (every city's circuits):

- ``faust``: ``madina service energy-processor``, one worker, as the platform runs it;
- ``plain``: :mod:`bench.energy.plain_loop`, one aiokafka loop applying the same step to
  in-memory state (no changelog, status or KPI records).

Measured (workload: :func:`bench.energy.domain.telemetry_workload`, a batch per circuit per
5 minutes from 16:00 UTC, lamp 3 of every circuit dark at night, lamp 7 in fault later):

1. **Backlog**: telemetry pre-loaded, then the processor started; lamp telemetry records/s
   between the first and the last applied record (table changelog records for faust, markers for plain).
2. **Latency**: ``--rate`` telemetry records/s paced, a batch per circuit; for every alert, the
   time from producing the record holding its report to consuming the AlertEvent; p50/p99/max.

Results go to ``bench/results/energy.json``.
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
from pathlib import Path
from typing import Any

from bench.energy.domain import telemetry_workload
from bench.energy.plain_loop import PLAIN_ALERTS, PLAIN_APPLIED, READY_LINE
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
from madina.bus import ALERTS, KPIS, ensure_topics
from madina.bus.codec import standard_headers
from madina.devservers.launch import ServiceProcess, service_argv
from madina.devservers.ports import free_port
from services.energy.convert import batch_to_pb
from services.energy.domain.network import Network, load_network
from services.energy.topics import ALL, STREETLIGHT_TELEMETRY

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results" / "energy.json"
PARTITIONS = 4
TARGET_RECORDS_PER_S = 3_500
TARGET_P99_MS = 100.0
SYSTEMS = ("faust", "plain")
LABELS = {"faust": "faust processor", "plain": "plain aiokafka"}
# The worker writes its table once per input record applied: its changelog counts them.
CHANGELOG = "madina-energy-processor-circuit-state-changelog"


def log(message: str) -> None:
    print(f"[bench.energy {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass
class Record:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    reports: int
    event: tuple[str, int]  # (circuit id, report time ms): how an alert finds the record that caused it

    @property
    def events(self) -> list[tuple[str, int]]:
        return [self.event]

    @property
    def weight(self) -> int:
        return self.reports


def workload(network: Network, minutes: int) -> list[Record]:
    out = []
    for circuit_id, batch in telemetry_workload(network, minutes):
        moment_ms = int(batch.readings[0].observe_time.timestamp() * 1000)
        message = batch_to_pb(circuit_id, list(batch.readings))
        out.append(Record(STREETLIGHT_TELEMETRY.name, circuit_id.encode(), message.SerializeToString(),
                          standard_headers(STREETLIGHT_TELEMETRY, "bench", moment_ms), len(batch.readings),
                          (circuit_id, moment_ms)))
    return out


def start_processor(kind: str, bootstrap: str, workdir: Path) -> BenchProcessor:
    if kind == "faust":
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
            "MADINA_KAFKA_BOOTSTRAP": bootstrap, "MADINA_TOPIC_PARTITIONS": str(PARTITIONS),
            "MADINA_DATA_DIR": str(workdir / "data"), "MADINA_ENERGY_PROCESSOR_PORT": str(port),
            "MADINA_ENERGY_TICK_INTERVAL_S": "3600", "MADINA_LOG_FORMAT": "json",
        }
        started = ServiceProcess.start(service_argv("energy-processor"), env, workdir / "processor.log",
                                       health_url=f"http://127.0.0.1:{port}/healthz", cwd=workdir)
        return BenchProcessor(started.process, CHANGELOG, ALERTS.name, started.log_path)
    return start_plain_loop(
        "bench.energy.plain_loop", ["--bootstrap", bootstrap, "--partitions", str(PARTITIONS)],
        ready_line=READY_LINE, applied_topic=PLAIN_APPLIED.name, alerts_topic=PLAIN_ALERTS.name,
        cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


async def measure(kind: str, backlog: list[Record], paced: list[Record], network: Network, rate: float,
                  scratch: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
    broker = start_broker(workdir / "broker", workdir / "broker.log", PARTITIONS)
    processor: BenchProcessor | None = None
    observer: Observer | None = None
    try:
        bootstrap = broker.bootstrap
        await ensure_topics(bootstrap, [*ALL, ALERTS, KPIS], default_partitions=PARTITIONS)
        await ensure_topics(bootstrap, [PLAIN_ALERTS, PLAIN_APPLIED], default_partitions=PARTITIONS,
                            with_dead_letters=False)
        reports = sum(r.reports for r in backlog)
        await produce_all(bootstrap, backlog)
        log(f"{kind}: {reports:,} lamp reports pre-loaded in {len(backlog):,} records; starting processor")
        processor = start_processor(kind, bootstrap, workdir)
        observer = Observer(bootstrap, processor.applied_topic, processor.alerts_topic, PARTITIONS, log)
        await observer.start()
        await observer.wait_applied(len(backlog), f"{kind} backlog", timeout_s=900)
        applied = observer.applied_ms[: len(backlog)]
        span_s = (max(applied) - min(applied)) / 1000
        backlog_rate = (len(applied) - 1) * (reports / len(backlog)) / span_s
        log(f"{kind} backlog: {backlog_rate:,.0f} lamp reports/s ({len(applied):,} records in {span_s:.1f} s)")

        await asyncio.sleep(1.0)
        alerts_before = len(observer.alerts)
        cpu_before = cpu_seconds(processor.process.pid)
        sent, achieved = await produce_paced(bootstrap, paced, rate)
        try:
            await observer.wait_applied(len(backlog) + len(paced), f"{kind} paced", timeout_s=15)
            await asyncio.sleep(1.0)
        except TimeoutError as behind:
            log(f"{kind}: {behind}; alerts still missing are counted at their age now (a lower bound)")
        ended = time.perf_counter()
        cpu_paced = cpu_seconds(processor.process.pid) - cpu_before
        latencies, unmatched = [], 0
        for received, source, event_ms in observer.alerts[alerts_before:]:
            lamp = network.lamps.get(source)
            key = (lamp.circuit if lamp else source, event_ms)
            if key in sent:
                latencies.append((received - sent[key]) * 1000)
            else:
                unmatched += 1
        if not latencies:
            raise RuntimeError(f"{kind}: no alert in the paced phase")
        latency = {
            "alerts": len(latencies), "unmatched_alerts": unmatched, "produced_reports_per_s": achieved,
            "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies),
            "cpu_ms_per_1k_reports": 1e6 * cpu_paced / sum(r.reports for r in paced),
            "finished_at_s": ended,
        }
        log(f"{kind} latency at {achieved:,.0f} reports/s: p50 {latency['p50_ms']:,.0f} ms, "
            f"p99 {latency['p99_ms']:,.0f} ms, max {latency['max_ms']:,.0f} ms over {len(latencies):,} alerts")
        return {"backlog_reports_per_s": backlog_rate, "latency": latency}
    finally:
        if observer is not None:
            await observer.stop()
        if processor is not None:
            processor.stop()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the energy circuit processor against a plain aiokafka loop")
    parser.add_argument("--quick", action="store_true", help="one repetition, smaller volumes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backlog-hours", type=float, help="hours of telemetry pre-loaded (default 8, quick 4)")
    parser.add_argument("--rate", type=float, default=2000.0, help="lamp reports/s in the latency phase")
    parser.add_argument("--latency-hours", type=float,
                        help="hours of event time in the latency phase (default 4, quick 2)")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    backlog_hours = args.backlog_hours or (4.0 if args.quick else 8.0)
    latency_hours = args.latency_hours or (2.0 if args.quick else 4.0)
    network = load_network()
    everything = workload(network, int((backlog_hours + latency_hours) * 60))
    split = int(len(everything) * backlog_hours / (backlog_hours + latency_hours))
    backlog, paced = everything[:split], everything[split:]
    log(f"{len(network.circuits)} circuits, {len(network.lamps)} lamps; backlog {sum(r.reports for r in backlog):,} "
        f"and paced {sum(r.reports for r in paced):,} lamp reports at {args.rate:,.0f}/s; {repeat} repetition(s)")
    runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SYSTEMS}
    with tempfile.TemporaryDirectory(prefix="madina-bench-energy-") as scratch:
        for n in range(repeat):
            for kind in (SYSTEMS if n % 2 == 0 else SYSTEMS[::-1]):
                log(f"repetition {n + 1}/{repeat}: {LABELS[kind]}")
                runs[kind].append(asyncio.run(measure(kind, backlog, paced, network, args.rate, Path(scratch))))
    summary = {
        "backlog_reports_per_s": {k: statistics.median(r["backlog_reports_per_s"] for r in runs[k]) for k in SYSTEMS},
        "latency_p50_ms": {k: statistics.median(r["latency"]["p50_ms"] for r in runs[k]) for k in SYSTEMS},
        "latency_p99_ms": {k: statistics.median(r["latency"]["p99_ms"] for r in runs[k]) for k in SYSTEMS},
        "latency_max_ms": {k: statistics.median(r["latency"]["max_ms"] for r in runs[k]) for k in SYSTEMS},
    }
    print()
    print(f"{'metric':<44} | {LABELS['faust']:>15} | {LABELS['plain']:>14} | target")
    for name, label, target in (
        ("backlog_reports_per_s", "lamp telemetry records/s per worker", f">= {TARGET_RECORDS_PER_S:,}"),
        ("latency_p50_ms", f"accepted -> alert p50 at {args.rate:,.0f}/s (ms)", ""),
        ("latency_p99_ms", f"accepted -> alert p99 at {args.rate:,.0f}/s (ms)", f"< {TARGET_P99_MS:.0f}"),
        ("latency_max_ms", f"accepted -> alert max at {args.rate:,.0f}/s (ms)", ""),
    ):
        print(f"{label:<44} | {summary[name]['faust']:>15,.0f} | {summary[name]['plain']:>14,.0f} | {target}")
    print()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "quick": args.quick, "repeat": repeat,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "workload": {"circuits": len(network.circuits), "lamps": len(network.lamps), "backlog_hours": backlog_hours,
                     "latency_hours": latency_hours, "rate_reports_per_s": args.rate, "partitions": PARTITIONS},
        "targets": {"reports_per_s": TARGET_RECORDS_PER_S, "p99_ms": TARGET_P99_MS},
        "median": summary, "runs": runs,
    }, indent=2))
    log(f"results written to {RESULTS}")
    return 0
