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
   between the first and the last applied record (the input offsets in the table changelog's states
   for faust, markers for plain).
2. **Latency**: ``--rate`` telemetry records/s paced, a batch per circuit; for every alert, the
   time from producing the record holding its report to consuming the AlertEvent; p50/p99/max.

Results go to ``bench/results/energy.json``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path

from bench.energy.domain import telemetry_workload
from bench.energy.plain_loop import PLAIN_ALERTS, PLAIN_APPLIED
from bench.pipeline import (
    BenchProcessor,
    ProcessorBench,
    print_summary,
    start_bench_plain_loop,
    start_domain_processor,
    write_results,
)
from madina.bus.codec import standard_headers
from services.energy.convert import batch_to_pb
from services.energy.domain.network import Network, load_network
from services.energy.topics import ALL, STREETLIGHT_TELEMETRY

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results" / "energy.json"
PARTITIONS = 4
TARGET_RECORDS_PER_S = 3_500
TARGET_P99_MS = 100.0
# The worker's table changelog: each state written says which input records it covers.
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
        return start_domain_processor(
            "energy-processor", "MADINA_ENERGY_PROCESSOR_PORT", bootstrap, workdir, partitions=PARTITIONS,
            applied_topic=CHANGELOG, settings={"MADINA_ENERGY_TICK_INTERVAL_S": "3600"}, applied_in_state=True,
        )
    return start_bench_plain_loop(
        "bench.energy.plain_loop", ["--bootstrap", bootstrap, "--partitions", str(PARTITIONS)],
        (PLAIN_ALERTS, PLAIN_APPLIED),
    )


def bench(network: Network) -> ProcessorBench:
    def circuit_event(source: str, event_ms: int) -> tuple[str, int]:
        # A lamp's alert names the lamp; the workload named the record by its circuit.
        lamp = network.lamps.get(source)
        return (lamp.circuit if lamp else source, event_ms)

    return ProcessorBench(
        name="energy", unit="lamp reports", unit_key="reports", partitions=PARTITIONS, topics=ALL,
        plain_topics=[PLAIN_ALERTS, PLAIN_APPLIED], start_processor=start_processor, log=log,
        alert_names=circuit_event,
    )


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
    runs, summary = bench(network).compare(backlog, paced, args.rate, repeat)
    print_summary(summary, [
        ("backlog_reports_per_s", "lamp telemetry records/s per worker", f">= {TARGET_RECORDS_PER_S:,}"),
        ("latency_p50_ms", f"accepted -> alert p50 at {args.rate:,.0f}/s (ms)", ""),
        ("latency_p99_ms", f"accepted -> alert p99 at {args.rate:,.0f}/s (ms)", f"< {TARGET_P99_MS:.0f}"),
        ("latency_max_ms", f"accepted -> alert max at {args.rate:,.0f}/s (ms)", ""),
        ("backlog_cpu_ms_per_1k_reports", "worker CPU ms per 1k lamp reports, backlog", ""),
        ("latency_cpu_ms_per_1k_reports", "worker CPU ms per 1k lamp reports, paced", ""),
    ])
    write_results(
        RESULTS, quick=args.quick, repeat=repeat,
        workload={"circuits": len(network.circuits), "lamps": len(network.lamps), "backlog_hours": backlog_hours,
                  "latency_hours": latency_hours, "rate_reports_per_s": args.rate, "partitions": PARTITIONS},
        targets={"reports_per_s": TARGET_RECORDS_PER_S, "p99_ms": TARGET_P99_MS},
        summary=summary, runs=runs, log=log,
    )
    return 0
