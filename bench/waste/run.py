"""Benchmark of the waste pipeline: container readings -> waste processor -> alerts.

    python -m bench.waste.run            # ~5 minutes; medians of 3 repetitions
    python -m bench.waste.run --quick    # ~1.5 minutes; one repetition, smaller volumes
    python -m bench.waste.run --quick --profile-worker /tmp/waste.prof   # CPU profile of the faust worker

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
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

from bench.pipeline import (
    BenchProcessor,
    ProcessorBench,
    print_summary,
    start_bench_plain_loop,
    start_domain_processor,
    write_results,
)
from bench.waste.plain_loop import PLAIN_ALERTS, PLAIN_APPLIED
from madina.bus.codec import standard_headers
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


def start_processor(kind: str, bootstrap: str, workdir: Path, profile: Path | None = None) -> BenchProcessor:
    if kind == "faust":
        return start_domain_processor(
            "waste-processor", "MADINA_WASTE_PROCESSOR_PORT", bootstrap, workdir, partitions=PARTITIONS,
            applied_topic=CONTAINER_STATUS.name,
            settings={"MADINA_WASTE_TICK_INTERVAL_S": "3600", "MADINA_WASTE_MAX_READING_AGE_S": str(MAX_AGE_S),
                      "MADINA_WASTE_MAX_FUTURE_SKEW_S": "86400"},
            profile=profile,
        )
    return start_bench_plain_loop(
        "bench.waste.plain_loop",
        ["--bootstrap", bootstrap, "--partitions", str(PARTITIONS), "--max-age-s", str(MAX_AGE_S)],
        (PLAIN_ALERTS, PLAIN_APPLIED),
    )


BENCH = ProcessorBench(
    name="waste", unit="readings", unit_key="readings", partitions=PARTITIONS, topics=ALL,
    plain_topics=[PLAIN_ALERTS, PLAIN_APPLIED], start_processor=start_processor, log=log,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the waste processor against a plain aiokafka loop")
    parser.add_argument("--quick", action="store_true", help="one repetition, smaller volumes")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--backlog-hours", type=int, help="hours of readings pre-loaded (default 24, quick 8)")
    parser.add_argument("--rate", type=float, default=2000.0, help="readings/s in the latency phase")
    parser.add_argument("--latency-hours", type=int, help="hours of event time paced (default 8, quick 4)")
    parser.add_argument("--profile-worker", metavar="PATH",
                        help="run the faust worker under a CPU-time cProfile, stats to PATH (with --repeat 1: "
                             "each repetition overwrites it); a small --latency-hours or --backlog-hours "
                             "leaves mostly one phase in it")
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
    bench = BENCH
    if args.profile_worker:
        bench = replace(BENCH, start_processor=partial(start_processor, profile=Path(args.profile_worker)))
    runs, summary = bench.compare(backlog, paced, args.rate, repeat)
    print_summary(summary, [
        ("backlog_readings_per_s", "readings/s per worker", f">= {TARGET_READINGS_PER_S:,}"),
        ("latency_p50_ms", f"reading -> alert p50 at {args.rate:,.0f}/s (ms)", ""),
        ("latency_p99_ms", f"reading -> alert p99 at {args.rate:,.0f}/s (ms)", f"< {TARGET_P99_MS:.0f}"),
        ("latency_max_ms", f"reading -> alert max at {args.rate:,.0f}/s (ms)", ""),
        ("backlog_cpu_ms_per_1k_readings", "worker CPU ms per 1k readings, backlog", ""),
        ("latency_cpu_ms_per_1k_readings", "worker CPU ms per 1k readings, paced", ""),
    ])
    write_results(
        RESULTS, quick=args.quick, repeat=repeat,
        workload={"containers": len(containers), "readings_per_record": READINGS_PER_RECORD,
                  "backlog_hours": backlog_hours, "latency_hours": latency_hours,
                  "rate_readings_per_s": args.rate, "partitions": PARTITIONS},
        targets={"readings_per_s": TARGET_READINGS_PER_S, "p99_ms": TARGET_P99_MS},
        summary=summary, runs=runs, log=log,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
