"""Benchmark of the environment pipeline: observation topics -> processor -> alerts.

    python -m bench.environment            # ~7 minutes; medians of 3 repetitions
    python -m bench.environment --quick    # ~1.5 minutes; one repetition, smaller volumes

Two processors run the same rule on the same input, one after the other in every repetition
(order alternating), each against its own fresh embedded broker in durable mode
(``madina broker --data-dir``), 4 partitions, 200 generated stations (half air, half water):

- ``faust``: ``madina service environment-processor``, configured as the platform runs it;
- ``plain``: :mod:`bench.environment.plain_loop`, one aiokafka ``getmany`` loop applying the same
  pure evaluator to in-memory state (no changelog, status, AQI or KPI records).

Each is measured three ways (see :mod:`bench.environment.workload` for the input):

1. **Backlog**: observations pre-loaded in batches of ``--batch`` per record, then the processor
   started; observations/s between the first and the last applied record (the timestamps of the
   station-status records, or of the plain loop's applied markers), so start-up is not counted.
2. **Live**: the processor running and caught up while more batches are produced as fast as
   possible; observations/s from the first send to the last record applied.
3. **Latency**: ``--rate`` observations/s paced in records of ``--latency-batch``, a quarter of
   which raise or clear a turbidity alert; for every alert, the time from producing the record
   holding its observation to consuming the AlertEvent; p50/p99/max.

Also the processor's CPU time per 1,000 observations (from /proc), which other load on the
machine disturbs less than rates do. Results go to ``bench/results/environment.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from bench.environment.plain_loop import PLAIN_ALERTS, PLAIN_APPLIED, READY_LINE
from bench.environment.workload import Record, Workload, make_stations, write_stations_file
from bench.pipeline import Observer, cpu_seconds, produce_all, start_broker, stop_process_group
from bench.stats import percentile
from madina.bus import ALERTS, KPIS, ensure_topics
from madina.devservers.launch import ServiceProcess, service_argv
from madina.devservers.ports import free_port
from services.environment.topics import ALL, STATION_STATUS

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "bench" / "results" / "environment.json"
PARTITIONS = 4
TARGET_OBS_PER_S = 10_000
TARGET_P99_MS = 250.0
SYSTEMS = ("faust", "plain")
LABELS = {"faust": "faust processor", "plain": "plain aiokafka"}


def log(message: str) -> None:
    print(f"[bench.environment {time.strftime('%H:%M:%S')}] {message}", flush=True)


@dataclass(frozen=True)
class Inputs:
    """The records every processor gets, generated once so both see exactly the same input."""

    stations_file: Path
    backlog: list[Record]
    live: list[Record]
    paced: list[Record]
    rate: float
    drain_s: float


# -- the processors under test --------------------------------------------------------------


class Processor:
    """A processor process; ``applied_topic`` gets one record per input record it applied."""

    kind: str
    applied_topic: str
    alerts_topic: str
    process: subprocess.Popen[Any]

    def cpu(self) -> float:
        return cpu_seconds(self.process.pid)

    def stop(self) -> None:
        stop_process_group(self.process)


class FaustProcessor(Processor):
    kind = "faust"
    applied_topic = STATION_STATUS.name
    alerts_topic = ALERTS.name

    def __init__(self, bootstrap: str, workdir: Path, stations_file: Path) -> None:
        port = free_port()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
            "MADINA_KAFKA_BOOTSTRAP": bootstrap,
            "MADINA_TOPIC_PARTITIONS": str(PARTITIONS),
            "MADINA_DATA_DIR": str(workdir / "data"),
            "MADINA_ENVIRONMENT_PROCESSOR_PORT": str(port),
            "MADINA_ENVIRONMENT_TICK_INTERVAL_S": "3600",
            "MADINA_LOG_FORMAT": "json",
            "MADINA_ENVIRONMENT_STATIONS_FILE": str(stations_file),
            # The workload's event time starts on a fixed date and runs ahead of the clock.
            "MADINA_ENVIRONMENT_MAX_OBSERVATION_AGE_S": str(10 * 365 * 86_400),
            "MADINA_ENVIRONMENT_MAX_FUTURE_SKEW_S": "86400",
        }
        started = ServiceProcess.start(service_argv("environment-processor"), env, workdir / "processor.log",
                                       health_url=f"http://127.0.0.1:{port}/healthz", cwd=workdir)
        self.process, self.log_path = started.process, started.log_path


class PlainProcessor(Processor):
    kind = "plain"
    applied_topic = PLAIN_APPLIED.name
    alerts_topic = PLAIN_ALERTS.name

    def __init__(self, bootstrap: str, workdir: Path, stations_file: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.environment.plain_loop", "--bootstrap", bootstrap,
             "--stations-file", str(stations_file), "--partitions", str(PARTITIONS)],
            stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, start_new_session=True,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != READY_LINE:
            self.stop()
            raise RuntimeError(f"plain loop did not start: {line!r}")


PROCESSORS: dict[str, type[Processor]] = {"faust": FaustProcessor, "plain": PlainProcessor}


# -- what comes out --------------------------------------------------------------------------


# -- producing -------------------------------------------------------------------------------


async def produce_paced(
    bootstrap: str, records: Sequence[Record], rate: float
) -> tuple[dict[tuple[str, int], float], float]:
    """Send ``records`` so that ``rate`` observations/s go out; the send time of every observation
    and the rate achieved."""
    sent: dict[tuple[str, int], float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        interval = records[0].observations / rate
        started = time.perf_counter()
        last_report = started
        for n, record in enumerate(records):
            delay = started + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            for key in record.event_keys:
                sent[key] = now
            await producer.send(record.topic, record.value, key=record.key, headers=record.headers)
            if now - last_report >= 5:
                log(f"  paced: {n + 1}/{len(records)} records sent")
                last_report = now
        await producer.flush()
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return sent, sum(r.observations for r in records) / elapsed


# -- one processor, one repetition -----------------------------------------------------------


async def measure(kind: str, inputs: Inputs, scratch: Path) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
    broker = start_broker(workdir / "broker", workdir / "broker.log", PARTITIONS)
    processor: Processor | None = None
    observer: Observer | None = None
    try:
        bootstrap = broker.bootstrap
        await ensure_topics(bootstrap, [*ALL, ALERTS, KPIS], default_partitions=PARTITIONS)
        await ensure_topics(bootstrap, [PLAIN_ALERTS, PLAIN_APPLIED], default_partitions=PARTITIONS,
                            with_dead_letters=False)
        backlog_obs = sum(r.observations for r in inputs.backlog)
        await produce_all(bootstrap, inputs.backlog)
        log(f"{kind}: {backlog_obs:,} observations pre-loaded in {len(inputs.backlog):,} records; starting processor")

        started = time.perf_counter()
        processor = PROCESSORS[kind](bootstrap, workdir, inputs.stations_file)
        observer = Observer(bootstrap, processor.applied_topic, processor.alerts_topic, PARTITIONS, log)
        await observer.start()
        await observer.wait_applied(len(inputs.backlog), f"{kind} backlog", timeout_s=900)
        applied = observer.applied_ms[: len(inputs.backlog)]
        span_s = (max(applied) - min(applied)) / 1000
        per_record = backlog_obs / len(inputs.backlog)
        backlog_rate = (len(applied) - 1) * per_record / span_s
        first_record_s = min(applied) / 1000 - (time.time() - (time.perf_counter() - started))
        cpu_before = processor.cpu()  # start-up and backlog CPU are not separable; count from here on
        log(f"{kind} backlog: {backlog_rate:,.0f} observations/s ({len(applied):,} records in {span_s:.1f} s; "
            f"first record applied {first_record_s:.1f} s after start)")

        live_obs = sum(r.observations for r in inputs.live)
        live_started = time.time()
        await produce_all(bootstrap, inputs.live)
        total = len(inputs.backlog) + len(inputs.live)
        await observer.wait_applied(total, f"{kind} live", timeout_s=600)
        live_rate = live_obs / (max(observer.applied_ms[len(inputs.backlog):total]) / 1000 - live_started)
        cpu_live = processor.cpu() - cpu_before
        log(f"{kind} live: {live_rate:,.0f} observations/s while producing "
            f"({1e6 * cpu_live / live_obs:.0f} CPU ms per 1,000 observations)")

        await asyncio.sleep(1.0)
        alerts_before = len(observer.alerts)
        cpu_before = processor.cpu()
        sent, achieved = await produce_paced(bootstrap, inputs.paced, inputs.rate)
        total += len(inputs.paced)
        try:
            await observer.wait_applied(total, f"{kind} paced", timeout_s=inputs.drain_s)
            await asyncio.sleep(1.0)  # alerts of the last records
        except TimeoutError as behind:
            log(f"{kind}: {behind}; alerts still missing are counted at their age now (a lower bound)")
        ended = time.perf_counter()
        paced_obs = sum(r.observations for r in inputs.paced)
        cpu_paced = processor.cpu() - cpu_before
        expected = {key for record in inputs.paced for key in record.alert_keys}
        received = {(station, event_ms): at for at, station, event_ms in observer.alerts[alerts_before:]}
        delivered = [(received[key] - sent[key]) * 1000 for key in expected if key in received]
        missing = [(ended - sent[key]) * 1000 for key in expected if key not in received]
        latencies = delivered + missing
        if not latencies:
            raise RuntimeError(f"{kind}: the paced phase expects no alert; make it longer")
        latency = {
            "alerts_expected": len(expected),
            "alerts_delivered": len(delivered),
            "alerts_unexpected": len(set(received) - expected),
            "produced_obs_per_s": achieved,
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": max(latencies),
            "lower_bound": bool(missing),
            "cpu_ms_per_1k_obs": 1e6 * cpu_paced / paced_obs,
        }
        bound = "at least " if missing else ""
        log(f"{kind} latency at {achieved:,.0f} observations/s: {bound}p50 {latency['p50_ms']:,.0f} ms, "
            f"p99 {latency['p99_ms']:,.0f} ms, max {latency['max_ms']:,.0f} ms; "
            f"{len(delivered):,}/{len(expected):,} alerts delivered")
        return {
            "backlog_obs_per_s": backlog_rate,
            "backlog_first_record_after_start_s": first_record_s,
            "backlog_alerts": alerts_before,
            "live_obs_per_s": live_rate,
            "live_cpu_ms_per_1k_obs": 1e6 * cpu_live / live_obs,
            "latency": latency,
        }
    finally:
        if observer is not None:
            await observer.stop()
        if processor is not None:
            processor.stop()
        broker.stop()
        shutil.rmtree(workdir, ignore_errors=True)


# -- report ----------------------------------------------------------------------------------


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, float]]:
    def median(kind: str, *path: str) -> float:
        values = []
        for run in runs[kind]:
            value: Any = run
            for key in path:
                value = value[key]
            values.append(value)
        return statistics.median(values)

    metrics = {
        "backlog_obs_per_s": ("backlog_obs_per_s",),
        "live_obs_per_s": ("live_obs_per_s",),
        "live_cpu_ms_per_1k_obs": ("live_cpu_ms_per_1k_obs",),
        "latency_p50_ms": ("latency", "p50_ms"),
        "latency_p99_ms": ("latency", "p99_ms"),
        "latency_max_ms": ("latency", "max_ms"),
        "latency_alerts_delivered": ("latency", "alerts_delivered"),
        "latency_produced_obs_per_s": ("latency", "produced_obs_per_s"),
        "latency_cpu_ms_per_1k_obs": ("latency", "cpu_ms_per_1k_obs"),
    }
    return {name: {kind: median(kind, *path) for kind in SYSTEMS} for name, path in metrics.items()}


def print_table(
    summary: dict[str, dict[str, float]], runs: dict[str, list[dict[str, Any]]], args: argparse.Namespace
) -> None:
    """Latencies of alerts still undelivered when the phase ended are their age then, so a cell
    holding such a run reads ``>=``."""
    rows = [
        ("sustained obs/s, pre-loaded backlog", "backlog_obs_per_s", "{:,.0f}", f">= {TARGET_OBS_PER_S:,}"),
        ("sustained obs/s, producing meanwhile", "live_obs_per_s", "{:,.0f}", f">= {TARGET_OBS_PER_S:,}"),
        ("CPU ms per 1k obs (live)", "live_cpu_ms_per_1k_obs", "{:,.0f}", ""),
        (f"latency p50 at {args.rate:,.0f} obs/s (ms)", "latency_p50_ms", "{:,.0f}", ""),
        (f"latency p99 at {args.rate:,.0f} obs/s (ms)", "latency_p99_ms", "{:,.0f}", f"< {TARGET_P99_MS:.0f}"),
        (f"latency max at {args.rate:,.0f} obs/s (ms)", "latency_max_ms", "{:,.0f}", ""),
        ("alerts delivered in time (latency phase)", "latency_alerts_delivered", "{:,.0f}", ""),
        ("CPU ms per 1k obs (latency phase)", "latency_cpu_ms_per_1k_obs", "{:,.0f}", ""),
    ]
    header = ("metric", LABELS["faust"], LABELS["plain"], "ratio faust/plain", "target")
    body = []
    for label, key, fmt, target in rows:
        faust, plain = summary[key]["faust"], summary[key]["plain"]
        cells = []
        for kind, value in (("faust", faust), ("plain", plain)):
            bounded = key.startswith("latency_") and key.endswith("_ms") and any(
                run["latency"]["lower_bound"] for run in runs[kind])
            cells.append((">= " if bounded else "") + fmt.format(value))
        body.append((label, *cells, f"{faust / plain:.2f}" if plain else "-", target))
    widths = [max(len(row[i]) for row in (header, *body)) for i in range(len(header))]
    print()
    print(" | ".join(text.ljust(width) for text, width in zip(header, widths, strict=True)))
    print("-+-".join("-" * width for width in widths))
    for row in body:
        print(" | ".join(text.ljust(width) if i == 0 else text.rjust(width) for i, (text, width)
                         in enumerate(zip(row, widths, strict=True))))
    print()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark the environment processor against a plain aiokafka loop")
    parser.add_argument("--quick", action="store_true", help="one repetition, smaller volumes (~1.5 min)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stations", type=int, default=200, help="half air, half water")
    parser.add_argument("--batch", type=int, default=50, help="observations per record, backlog and live")
    parser.add_argument("--backlog", type=int,
                        help="observations pre-loaded, in whole rounds over the stations (default 200k, quick 60k)")
    parser.add_argument("--live", type=int,
                        help="observations produced while running, in whole rounds (default 100k, quick 30k)")
    parser.add_argument("--rate", type=float, default=2000.0, help="observations/s in the latency phase")
    parser.add_argument("--latency-batch", type=int, default=10, help="observations per record, latency phase")
    parser.add_argument("--latency-seconds", type=float, help="length of the latency phase (default 30, quick 15)")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    backlog = args.backlog or (60_000 if args.quick else 200_000)
    live = args.live or (30_000 if args.quick else 100_000)
    latency_s = args.latency_seconds or (15.0 if args.quick else 30.0)

    with tempfile.TemporaryDirectory(prefix="madina-bench-env-") as scratch_dir:
        scratch = Path(scratch_dir)
        stations = make_stations(args.stations)
        workload = Workload(stations)
        paced_records = int(latency_s * args.rate / args.latency_batch)
        inputs = Inputs(
            stations_file=write_stations_file(scratch / "stations.yaml", stations),
            backlog=workload.records(backlog, args.batch),
            live=workload.records(live, args.batch),
            paced=list(itertools.islice(workload.rounds(args.latency_batch), paced_records)),
            rate=args.rate,
            drain_s=10.0 if args.quick else 15.0,
        )
        log(f"{args.stations} stations; backlog {sum(r.observations for r in inputs.backlog):,} and live "
            f"{sum(r.observations for r in inputs.live):,} observations in records of {args.batch}; latency "
            f"phase {latency_s:.0f} s at {args.rate:,.0f} observations/s in records of {args.latency_batch}; "
            f"{repeat} repetition(s)")
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SYSTEMS}
        for n in range(repeat):
            order = SYSTEMS if n % 2 == 0 else SYSTEMS[::-1]
            for kind in order:
                log(f"repetition {n + 1}/{repeat}: {LABELS[kind]}")
                runs[kind].append(asyncio.run(measure(kind, inputs, scratch)))

    summary = summarise(runs)
    print_table(summary, runs, args)
    results = {
        "quick": args.quick,
        "repeat": repeat,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "workload": {
            "stations": args.stations,
            "backlog_observations": sum(r.observations for r in inputs.backlog),
            "live_observations": sum(r.observations for r in inputs.live),
            "batch_observations_per_record": args.batch,
            "latency_rate_obs_per_s": args.rate,
            "latency_batch_observations_per_record": args.latency_batch,
            "latency_seconds": latency_s,
            "alerting_records_in_latency_phase": "1 in 4 (half the water stations' records)",
            "partitions": PARTITIONS,
        },
        "targets": {"obs_per_s": TARGET_OBS_PER_S, "p99_ms": TARGET_P99_MS},
        "median": summary,
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    log(f"results written to {RESULTS}")
    return 0
