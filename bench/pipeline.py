"""What every processor benchmark needs around the processor under test, written once: a durable
embedded broker, producing a pre-built workload (all at once, or paced), the processor as a
process (the domain's faust worker, or a plain loop that prints a readiness line), an observer of
the processor's applied markers and alerts (with arrival times), and a process's CPU time.

``ProcessorBench`` runs a domain's faust processor against its plain loop (``run_plain_loop``, the
same step without faust) on the same workload; a domain's bench supplies its workload, topics and
how to start each."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from bench.stats import percentile
from madina.bus import ALERTS, KPIS, ensure_topics
from madina.bus.codec import InvalidRecord, encode, standard_headers
from madina.bus.topics import TopicSpec
from madina.devservers.launch import BrokerProcess, ServiceProcess, service_argv
from madina.devservers.ports import free_port
from madina_proto.alerts.v1 import alerts_pb2

REPO_ROOT = Path(__file__).resolve().parents[1]


class OutRecord(Protocol):
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_broker(data_dir: Path, log_path: Path, partitions: int) -> BrokerProcess:
    """The embedded broker in durable mode, logging to a file."""
    return BrokerProcess.start(memory=False, data_dir=data_dir, default_partitions=partitions,
                               initial_rebalance_delay_ms=None, log_path=log_path)


async def produce_all(bootstrap: str, records: Sequence[OutRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1 << 20)
    await producer.start()
    try:
        pending = []
        for record in records:
            pending.append(await producer.send(record.topic, record.value, key=record.key, headers=record.headers))
        await producer.flush()
        for future in pending:
            await future
    finally:
        await producer.stop()


@dataclass
class Observer:
    """Reads a processor's applied markers and alerts from the beginning, noting when each arrived."""

    bootstrap: str
    applied_topic: str
    alerts_topic: str
    partitions: int
    log: Callable[[str], None] = print
    # The applied topic is the processor's table changelog: each value's ``applied_offsets`` say
    # which input records it covers (a state is written once per batch, not once per record).
    applied_in_state: bool = False
    applied_ms: list[int] = field(default_factory=list)  # per input record applied, the timestamp of its marker
    alerts: list[tuple[float, str, int]] = field(default_factory=list)  # (received, source entity, event ms)

    async def start(self) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100,
        )
        self._newest_applied: dict[str, int] = {}
        await self._consumer.start()
        assignment = [TopicPartition(topic, p) for topic in (self.applied_topic, self.alerts_topic)
                      for p in range(self.partitions)]
        self._consumer.assign(assignment)
        await self._consumer.seek_to_beginning(*assignment)
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            polled = await self._consumer.getmany(timeout_ms=200)
            received = time.perf_counter()
            for tp, records in polled.items():
                if tp.topic == self.applied_topic:
                    if self.applied_in_state:
                        self._count_applied_offsets(records)
                    else:
                        self.applied_ms.extend(record.timestamp for record in records)
                    continue
                for record in records:
                    event = alerts_pb2.AlertEvent.FromString(record.value)
                    self.alerts.append((received, event.source.entity_id, event.event_time.ToMilliseconds()))

    def _count_applied_offsets(self, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        # Input partitions are read in order, so a state holding offset n of a partition means
        # every record up to n of it is applied.
        for record in records:
            if record.value is None:
                continue
            for source, offset in json.loads(record.value).get("applied_offsets", {}).items():
                newest = self._newest_applied.get(source, -1)
                if offset > newest:
                    self._newest_applied[source] = offset
                    self.applied_ms.extend([record.timestamp] * (offset - newest))

    async def wait_applied(self, count: int, what: str, timeout_s: float, cpu: Any = None) -> None:
        started = time.perf_counter()
        last_report = started
        seen = len(self.applied_ms)
        while len(self.applied_ms) < count:
            if self._task.done():
                self._task.result()
            now = time.perf_counter()
            if now - started > timeout_s:
                raise TimeoutError(f"{what}: {len(self.applied_ms)}/{count} records applied after {timeout_s:.0f} s")
            if now - last_report >= 5:
                applied = len(self.applied_ms)
                pace = (applied - seen) / (now - last_report)
                self.log(f"  {what}: {applied}/{count} records applied ({pace:,.0f} records/s)")
                last_report, seen = now, applied
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()


@dataclass
class BenchProcessor:
    """The processor under test: where it marks records applied and where its alerts go."""

    process: subprocess.Popen[Any]
    applied_topic: str
    alerts_topic: str
    log_path: Path | None = field(default=None)
    applied_in_state: bool = False  # see Observer.applied_in_state

    def stop(self) -> None:
        stop_process_group(self.process)



def stop_process_group(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the process's group (it starts its own), SIGKILL if it has not ended in 20 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def start_plain_loop(
    module: str, args: Sequence[str], *, ready_line: str, applied_topic: str, alerts_topic: str,
    cwd: Path, env: dict[str, str],
) -> BenchProcessor:
    """``python -m module args``, once it printed ``ready_line``."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE, text=True, cwd=cwd, start_new_session=True, env=env,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    processor = BenchProcessor(process, applied_topic, alerts_topic)
    if line.strip() != ready_line:
        processor.stop()
        raise RuntimeError(f"plain loop did not start: {line!r}")
    return processor


class PacedRecord(OutRecord, Protocol):
    """A record, the events an alert can name it by, and how many units (readings, reports) it
    carries: the rate is in units per second."""

    @property
    def events(self) -> Sequence[tuple[str, int]]: ...

    @property
    def weight(self) -> int: ...


async def produce_paced(
    bootstrap: str, records: Sequence[PacedRecord], rate: float
) -> tuple[dict[tuple[str, int], float], float]:
    """Send ``records`` at ``rate`` units/s; the send time of every event and the rate achieved."""
    sent: dict[tuple[str, int], float] = {}
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    try:
        started = time.perf_counter()
        due = 0.0
        for record in records:
            delay = started + due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            now = time.perf_counter()
            for event in record.events:
                sent[event] = now
            await producer.send(record.topic, record.value, key=record.key, headers=record.headers)
            due += record.weight / rate
        await producer.flush()
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return sent, sum(r.weight for r in records) / elapsed


# -- a domain's processor against a plain loop ---------------------------------------------------


def start_domain_processor(
    component: str, port_setting: str, bootstrap: str, workdir: Path, *, partitions: int, applied_topic: str,
    settings: Mapping[str, str], applied_in_state: bool = False, profile: Path | None = None,
) -> BenchProcessor:
    """``madina service COMPONENT`` as the platform runs it, on its own broker and data directory,
    once its health page answers; ``settings`` are the domain's own ``MADINA_*`` values. With
    ``profile``, the same command under bench.mobility.profiled (a CPU-time cProfile), its stats
    written to ``profile`` when the worker stops."""
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
        "MADINA_KAFKA_BOOTSTRAP": bootstrap, "MADINA_TOPIC_PARTITIONS": str(partitions),
        "MADINA_DATA_DIR": str(workdir / "data"), port_setting: str(port), "MADINA_LOG_FORMAT": "json",
        **settings,
    }
    argv = service_argv(component)
    if profile is not None:
        argv = [argv[0], "-m", "bench.mobility.profiled", str(profile.resolve()), *argv[2:]]
        env["PYTHONPATH"] = str(REPO_ROOT)  # the worker runs in its scratch directory
    started = ServiceProcess.start(argv, env, workdir / "processor.log",
                                   health_url=f"http://127.0.0.1:{port}/healthz", cwd=workdir)
    return BenchProcessor(started.process, applied_topic, ALERTS.name, started.log_path, applied_in_state)


def start_bench_plain_loop(module: str, args: Sequence[str], topics: tuple[TopicSpec, TopicSpec]) -> BenchProcessor:
    """A domain's plain loop (``python -m MODULE ARGS``, see run_plain_loop) from the repository,
    without the caller's ``MADINA_*`` settings."""
    alerts, applied = topics
    return start_plain_loop(
        module, args, ready_line=PLAIN_READY_LINE, applied_topic=applied.name, alerts_topic=alerts.name,
        cwd=REPO_ROOT,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")}, "PYTHONPATH": str(REPO_ROOT)},
    )

SYSTEMS = ("faust", "plain")
LABELS = {"faust": "faust processor", "plain": "plain aiokafka"}


@dataclass(frozen=True)
class ProcessorBench:
    """What one domain's processor-against-plain-loop benchmark brings; the rest is here.

    ``unit`` names what the rate counts in logs ("lamp reports") and ``unit_key`` in result keys
    ("reports": ``backlog_reports_per_s``). ``alert_names`` maps an alert's source entity and
    event time to the event the workload named when it produced the record (by default the same).
    """

    name: str
    unit: str
    unit_key: str
    partitions: int
    topics: Sequence[TopicSpec]
    plain_topics: Sequence[TopicSpec]
    start_processor: Callable[[str, str, Path], BenchProcessor]
    log: Callable[[str], None]
    alert_names: Callable[[str, int], tuple[str, int]] = field(default=lambda source, event_ms: (source, event_ms))

    async def measure(self, kind: str, backlog: Sequence[PacedRecord], paced: Sequence[PacedRecord],
                      rate: float, scratch: Path) -> dict[str, Any]:
        """One run of ``kind`` on a fresh broker: the backlog rate, then latency at ``rate`` units/s."""
        log, unit, key = self.log, self.unit, self.unit_key
        workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=scratch))
        broker = start_broker(workdir / "broker", workdir / "broker.log", self.partitions)
        processor: BenchProcessor | None = None
        observer: Observer | None = None
        try:
            bootstrap = broker.bootstrap
            await ensure_topics(bootstrap, [*self.topics, ALERTS, KPIS], default_partitions=self.partitions)
            await ensure_topics(bootstrap, self.plain_topics, default_partitions=self.partitions,
                                with_dead_letters=False)
            units = sum(r.weight for r in backlog)
            await produce_all(bootstrap, backlog)
            log(f"{kind}: {units:,} {unit} pre-loaded in {len(backlog):,} records; starting processor")
            processor = self.start_processor(kind, bootstrap, workdir)
            observer = Observer(bootstrap, processor.applied_topic, processor.alerts_topic, self.partitions, log,
                                processor.applied_in_state)
            await observer.start()
            await observer.wait_applied(1, f"{kind} first record", timeout_s=300)
            cpu_first = cpu_seconds(processor.process.pid)  # start-up (imports, recovery) not counted
            await observer.wait_applied(len(backlog), f"{kind} backlog", timeout_s=900)
            cpu_backlog = cpu_seconds(processor.process.pid) - cpu_first
            applied = observer.applied_ms[: len(backlog)]
            span_s = (max(applied) - min(applied)) / 1000
            # The records marked at the first timestamp were applied before the span began.
            after_first = sum(1 for stamp in applied if stamp > min(applied))
            backlog_rate = after_first * (units / len(backlog)) / span_s
            log(f"{kind} backlog: {backlog_rate:,.0f} {unit}/s ({len(applied):,} records in {span_s:.1f} s)")

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
            slowest: list[tuple[float, float]] = []  # (latency ms, seconds into the paced phase)
            first_sent = min(sent.values()) if sent else 0.0
            for received, source, event_ms in observer.alerts[alerts_before:]:
                event = self.alert_names(source, event_ms)
                if event in sent:
                    latencies.append((received - sent[event]) * 1000)
                    slowest.append((latencies[-1], sent[event] - first_sent))
                else:
                    unmatched += 1
            if not latencies:
                raise RuntimeError(f"{kind}: no alert in the paced phase")
            latency = {
                "alerts": len(latencies), "unmatched_alerts": unmatched, f"produced_{key}_per_s": achieved,
                "p50_ms": percentile(latencies, 0.5), "p99_ms": percentile(latencies, 0.99), "max_ms": max(latencies),
                f"cpu_ms_per_1k_{key}": 1e6 * cpu_paced / sum(r.weight for r in paced),
                # When the slowest were sent: a warm-up, a periodic pause or a steady queue look different.
                "slowest_sent_at_s": [round(at, 2) for _, at in sorted(slowest, reverse=True)[:10]],
            }
            log(f"{kind} latency at {achieved:,.0f} {unit}/s: p50 {latency['p50_ms']:,.0f} ms, "
                f"p99 {latency['p99_ms']:,.0f} ms, max {latency['max_ms']:,.0f} ms over {len(latencies):,} alerts")
            return {f"backlog_{key}_per_s": backlog_rate,
                    f"backlog_cpu_ms_per_1k_{key}": 1e6 * cpu_backlog / units, "latency": latency}
        finally:
            if observer is not None:
                await observer.stop()
            if processor is not None:
                processor.stop()
            broker.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    def compare(self, backlog: Sequence[PacedRecord], paced: Sequence[PacedRecord], rate: float,
                repeat: int) -> tuple[dict[str, list[dict[str, Any]]], dict[str, dict[str, float]]]:
        """Both systems ``repeat`` times, alternating which goes first: every run, and the medians."""
        runs: dict[str, list[dict[str, Any]]] = {kind: [] for kind in SYSTEMS}
        with tempfile.TemporaryDirectory(prefix=f"madina-bench-{self.name}-") as scratch:
            for n in range(repeat):
                for kind in (SYSTEMS if n % 2 == 0 else SYSTEMS[::-1]):
                    self.log(f"repetition {n + 1}/{repeat}: {LABELS[kind]}")
                    runs[kind].append(asyncio.run(self.measure(kind, backlog, paced, rate, Path(scratch))))
        backlog_key = f"backlog_{self.unit_key}_per_s"
        summary = {backlog_key: {k: statistics.median(r[backlog_key] for r in runs[k]) for k in SYSTEMS}}
        cpu_key = f"backlog_cpu_ms_per_1k_{self.unit_key}"
        summary[cpu_key] = {k: statistics.median(r[cpu_key] for r in runs[k]) for k in SYSTEMS}
        paced_cpu_key = f"cpu_ms_per_1k_{self.unit_key}"
        summary[f"latency_{paced_cpu_key}"] = {
            k: statistics.median(r["latency"][paced_cpu_key] for r in runs[k]) for k in SYSTEMS}
        for name in ("p50", "p99", "max"):
            summary[f"latency_{name}_ms"] = {
                k: statistics.median(r["latency"][f"{name}_ms"] for r in runs[k]) for k in SYSTEMS
            }
        return runs, summary


def print_summary(summary: dict[str, dict[str, float]], rows: Sequence[tuple[str, str, str]]) -> None:
    """The medians side by side: one ``(summary key, label, target)`` row a line."""
    print()
    print(f"{'metric':<44} | {LABELS['faust']:>15} | {LABELS['plain']:>14} | target")
    for name, label, target in rows:
        print(f"{label:<44} | {summary[name]['faust']:>15,.0f} | {summary[name]['plain']:>14,.0f} | {target}")
    print()


def write_results(path: Path, *, quick: bool, repeat: int, workload: dict[str, Any], targets: dict[str, float],
                  summary: dict[str, dict[str, float]], runs: dict[str, list[dict[str, Any]]],
                  log: Callable[[str], None]) -> None:
    """A processor benchmark's results file: the medians, every run, and what the run was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({
        "quick": quick, "repeat": repeat,
        "machine": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
        "workload": workload, "targets": targets, "median": summary, "runs": runs,
    }, indent=2))
    log(f"results written to {path}")


# -- the plain loop ------------------------------------------------------------------------------

PLAIN_READY_LINE = "plain loop ready"
PLAIN_SOURCE = "bench-plain-loop"
# Few records per poll, so outputs leave while the next ones are evaluated.
PLAIN_RECORDS_PER_POLL = 100


def plain_topics(prefix: str, entity_key: str) -> tuple[TopicSpec, TopicSpec]:
    """A plain loop's alerts topic and its applied-markers topic (one empty record per input applied)."""
    alerts = TopicSpec(
        name=f"{prefix}plain-alerts.v1", message_type=alerts_pb2.AlertEvent, key="alert_id",
        description="Alert events of the benchmark's plain aiokafka loop.",
    )
    applied = TopicSpec(
        name=f"{prefix}plain-applied.v1", message_type=alerts_pb2.AlertEvent, key=entity_key,
        description="One empty record per input record the plain loop applied.",
    )
    return alerts, applied


async def run_plain_loop(
    bootstrap: str, inputs: Sequence[TopicSpec], partitions: int,
    apply: Callable[[TopicSpec, ConsumerRecord[Any, Any]], Sequence[alerts_pb2.AlertEvent]],
    alerts_topic: TopicSpec, applied_topic: TopicSpec,
) -> None:
    """One aiokafka ``getmany`` loop: ``apply`` each input record (the domain's step on in-memory
    state), publish the alerts it returns and one applied marker; a record it refuses with
    InvalidRecord is skipped, unmarked. Prints PLAIN_READY_LINE once assigned; stops on SIGTERM.
    No changelog, no offsets committed: the lower bound of a consumer loop running the same step.
    """
    specs = {spec.name: spec for spec in inputs}
    # Assigned, not subscribed: one process owns every partition, so there is no group to rebalance.
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    # The same delivery settings as the faust processor's producer (madina.streams).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    await consumer.start()
    assignment = [TopicPartition(topic, p) for topic in specs for p in range(partitions)]
    consumer.assign(assignment)
    await consumer.seek_to_beginning(*assignment)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print(PLAIN_READY_LINE, flush=True)
    try:
        while not stop.is_set():
            polled = await consumer.getmany(timeout_ms=200, max_records=PLAIN_RECORDS_PER_POLL)
            pending = []
            for records in polled.values():
                for record in records:
                    try:
                        alerts = apply(specs[record.topic], record)
                    except InvalidRecord:
                        continue
                    for event in alerts:
                        pending.append(await producer.send(
                            alerts_topic.name, encode(event), key=event.alert_id.encode(),
                            headers=standard_headers(ALERTS, PLAIN_SOURCE, int(event.event_time.ToMilliseconds()))))
                    pending.append(await producer.send(applied_topic.name, b"", key=record.key))
                    await asyncio.sleep(0)  # let the producer's sender run between records
            # At-least-once as the processor: outputs are on the topic before the next poll.
            for future in pending:
                await future
    finally:
        await consumer.stop()
        await producer.stop()
