"""Benchmark the embedded broker against librdkafka's mock cluster with the same clients.

    python -m bench.broker            # full run, a few minutes
    python -m bench.broker --quick    # smoke run

Every measurement runs the producer and the consumer in their own processes, against:

- ``madina``: ``python -m madina.broker --data-dir <tmp>`` (durable mode, fsync on acks=all);
- ``mock``: a librdkafka mock cluster (``test.mock.num.brokers=1``) hosted by a helper process.

Measured with confluent-kafka (librdkafka) and aiokafka: produce and consume throughput for
100-byte and 1 KiB records, and produce-to-consume latency p50/p99 at 1k records/s (acks=all,
no linger) with each client. The Python confluent consumer tops out near the target on its own
per-message cost, so consume is also measured with kcat (librdkafka's C command-line client, one
process, no Python per message): that is the broker's rate rather than a client's. Each is
repeated (3 times by default) and the median reported, with our/mock ratios. Results go to
bench/results/broker.json.
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
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "broker.json"
READY_PREFIX = "madina broker listening on "
MOCK_READY_PREFIX = "mock cluster at "
# The mock cluster's consume path can collapse to a few hundred records/s; bound each read so
# the run stays within minutes (the rate is still records received over time taken).
CONSUME_DEADLINE_S = 20


# ---- worker roles (each runs in its own process) -------------------------------------------


def produce_confluent(bootstrap: str, topic: str, count: int, size: int) -> dict:
    import confluent_kafka

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "acks": "all",
            "batch.num.messages": 10000,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    payload = b"x" * size
    producer.produce(topic, payload)  # metadata and connection set-up are not timed
    producer.flush(30)
    started = time.perf_counter()
    for _ in range(count):
        while True:
            try:
                producer.produce(topic, payload)
                break
            except BufferError:
                producer.poll(0.001)
    remaining = producer.flush(120)
    elapsed = time.perf_counter() - started
    return {"records": count - remaining, "seconds": elapsed}


def consume_confluent(bootstrap: str, topic: str, count: int, size: int) -> dict:
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    topic, share, shares = _split_share(topic)
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = [p for p in sorted(metadata.topics[topic].partitions) if p % shares == share]
    started = time.perf_counter()  # fetching starts with the assignment, so time from here
    consumer.assign(
        [confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING) for p in partitions]
    )
    # Read to the end of these partitions, however the producer spread the records.
    count = sum(
        high - low
        for low, high in (
            consumer.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)
            for p in partitions
        )
    )
    received = 0
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    while received < count and time.monotonic() < deadline:
        messages = consumer.consume(100000, 0.5)
        received += sum(1 for message in messages if message.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"records": received, "seconds": elapsed}


def consume_kcat(bootstrap: str, topic: str) -> dict | None:
    """Read ``topic`` to its end with kcat: librdkafka with no Python per message, so this is the
    broker's consume rate rather than a client's. None when kcat is not installed."""
    kcat = shutil.which("kcat")
    if kcat is None:
        return None
    started = time.perf_counter()
    reader = subprocess.Popen(
        [kcat, "-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q", "-f", "\\n",
         "-X", "fetch.wait.max.ms=100"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    try:
        output, _ = reader.communicate(timeout=CONSUME_DEADLINE_S)
    except subprocess.TimeoutExpired:  # like the Python consumers: records read by the deadline
        reader.kill()
        output, _ = reader.communicate()
    return {"records": output.count(b"\n"), "seconds": time.perf_counter() - started}


async def _produce_aiokafka(bootstrap: str, topic: str, count: int, size: int) -> dict:
    import aiokafka

    producer = aiokafka.AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, max_batch_size=1_000_000, acks="all"
    )
    await producer.start()
    payload = b"x" * size
    await producer.send_and_wait(topic, payload)
    started = time.perf_counter()
    pending = []
    for number in range(count):
        pending.append(await producer.send(topic, payload))
        if number % 10000 == 9999:
            await asyncio.gather(*pending)
            pending.clear()
    await asyncio.gather(*pending)
    elapsed = time.perf_counter() - started
    await producer.stop()
    return {"records": count, "seconds": elapsed}


async def _consume_aiokafka(bootstrap: str, topic: str, count: int, size: int) -> dict:
    import aiokafka

    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    partition_ids = consumer.partitions_for_topic(topic)
    if asyncio.iscoroutine(partition_ids):
        partition_ids = await partition_ids
    if not partition_ids:
        await consumer._client.force_metadata_update()
        partition_ids = consumer.partitions_for_topic(topic)
    partitions = [aiokafka.TopicPartition(topic, p) for p in sorted(partition_ids)]
    started = time.perf_counter()
    consumer.assign(partitions)
    await consumer.seek_to_beginning(*partitions)
    received = 0
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    while received < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=1000, max_records=20000)
        received += sum(len(messages) for messages in batches.values())
    elapsed = time.perf_counter() - started
    await consumer.stop()
    return {"records": received, "seconds": elapsed}


def latency_consumer(bootstrap: str, topic: str, count: int, size: int) -> dict:
    """Consume ``count`` timestamped records as they arrive; report produce-to-consume delays."""
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "lat-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 500,
            "fetch.min.bytes": 1,
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    partitions = list(metadata.topics[topic].partitions)
    consumer.assign(
        [confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_END) for p in partitions]
    )
    consumer.consume(1, 0.5)
    print("ready", flush=True)
    delays = []
    deadline = time.monotonic() + 60
    while len(delays) < count and time.monotonic() < deadline:
        message = consumer.poll(0.2)  # returns as soon as one record is there
        if message is not None and message.error() is None:
            delays.append(time.time_ns() - int(message.value()[:19]))
    consumer.close()
    return _latency_summary(delays, count)


def latency_producer(bootstrap: str, topic: str, count: int, size: int) -> dict:
    import confluent_kafka

    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap, "linger.ms": 0, "acks": "all"})
    interval = 0.001  # 1k records/s
    next_send = time.perf_counter()
    for _ in range(count):
        now = time.perf_counter()
        if now < next_send:
            time.sleep(next_send - now)
        next_send += interval
        producer.produce(topic, str(time.time_ns()).encode().ljust(size, b"x"))
        producer.poll(0)
    producer.flush(30)
    return {"records": count}


async def _latency_consumer_aiokafka(bootstrap: str, topic: str, count: int, size: int) -> dict:
    import aiokafka

    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=500, fetch_min_bytes=1
    )
    await consumer.start()
    await consumer._client.force_metadata_update()
    partitions = [aiokafka.TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    await consumer.seek_to_end(*partitions)
    for partition in partitions:
        await consumer.position(partition)  # resolve "end" now, before the producer starts
    print("ready", flush=True)
    delays = []
    deadline = time.monotonic() + 60
    while len(delays) < count and time.monotonic() < deadline:
        batches = await consumer.getmany(timeout_ms=200)
        now = time.time_ns()
        for records in batches.values():
            delays.extend(now - int(record.value[:19]) for record in records)
    await consumer.stop()
    return _latency_summary(delays, count)


async def _latency_producer_aiokafka(bootstrap: str, topic: str, count: int, size: int) -> dict:
    import aiokafka

    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, acks="all")
    await producer.start()
    interval = 0.001  # 1k records/s
    next_send = time.perf_counter()
    pending = []
    for _ in range(count):
        delay = next_send - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        next_send += interval
        pending.append(await producer.send(topic, str(time.time_ns()).encode().ljust(size, b"x")))
    await asyncio.gather(*pending)
    await producer.stop()
    return {"records": count}


def _latency_summary(delays: list[int], count: int) -> dict:
    delays_ms = sorted(delay / 1e6 for delay in delays[count // 10 :])  # skip warm-up
    return {
        "records": len(delays),
        "p50_ms": _percentile(delays_ms, 50),
        "p99_ms": _percentile(delays_ms, 99),
    }


def _split_share(topic: str) -> tuple[str, int, int]:
    """``topic@1/2`` means: the second half of the partitions (for parallel consumers)."""
    if "@" not in topic:
        return topic, 0, 1
    name, share = topic.split("@")
    index, count = share.split("/")
    return name, int(index), int(count)


def _percentile(sorted_values: list[float], percentile: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(percentile / 100 * (len(sorted_values) - 1)))
    return sorted_values[index]


def host_mock_cluster() -> None:
    """Keep a librdkafka mock cluster alive and print its address (runs until killed)."""
    import logging

    import confluent_kafka

    address: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if "bootstrap.servers=" in message and not address:
                address.append(message.split("bootstrap.servers=")[1].split()[0])

    logger = logging.getLogger("mock-host")
    logger.addHandler(Capture())
    logger.setLevel(logging.DEBUG)
    producer = confluent_kafka.Producer({"test.mock.num.brokers": 1, "debug": "mock", "logger": logger})
    while not address:
        producer.poll(0.1)
    print(MOCK_READY_PREFIX + address[0], flush=True)
    # Stop debug logging (it would slow the mock down) by never polling the log queue again.
    while True:
        time.sleep(3600)


ROLES = {
    "produce-confluent": produce_confluent,
    "consume-confluent": consume_confluent,
    "produce-aiokafka": lambda *args: asyncio.run(_produce_aiokafka(*args)),
    "consume-aiokafka": lambda *args: asyncio.run(_consume_aiokafka(*args)),
    "latency-consumer-confluent": latency_consumer,
    "latency-producer-confluent": latency_producer,
    "latency-consumer-aiokafka": lambda *args: asyncio.run(_latency_consumer_aiokafka(*args)),
    "latency-producer-aiokafka": lambda *args: asyncio.run(_latency_producer_aiokafka(*args)),
}
LATENCY_CLIENTS = ("confluent", "aiokafka")


# ---- orchestration ---------------------------------------------------------------------------


class Server:
    def __init__(self, kind: str, data_dir: str | None, partitions: int):
        self.kind = kind
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        if kind == "madina":
            argv = [
                sys.executable,
                "-m",
                "madina.broker",
                "--port",
                "0",
                "--data-dir",
                data_dir or "",
                "--default-partitions",
                str(partitions),
            ]
            prefix = READY_PREFIX
        else:
            argv = [sys.executable, "-m", "bench.broker.run", "--host-mock"]
            prefix = MOCK_READY_PREFIX
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=REPO_ROOT, env=env
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith(prefix):
            self.process.kill()
            raise RuntimeError(f"{kind} did not start: {line!r}")
        self.bootstrap = line[len(prefix) :].strip()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run_role(role: str, bootstrap: str, topic: str, count: int, size: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.broker.run", "--role", role, bootstrap, topic, str(count), str(size)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def role_result(process: subprocess.Popen, timeout_s: float = 300) -> dict:
    output, _ = process.communicate(timeout=timeout_s)
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed ({process.returncode}): {output[-2000:]}")
    return json.loads(lines[-1])


def measure_throughput(server: Server, client: str, count: int, size: int) -> dict:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    produced = role_result(run_role(f"produce-{client}", server.bootstrap, topic, count, size))
    if client == "confluent":
        # One Python consumer tops out near 150k records/s on its own per-message cost, so
        # read with two processes (two partitions each) to measure the broker, not the client.
        workers = [
            run_role("consume-confluent", server.bootstrap, f"{topic}@{share}/2", (count + 1) // 2, size)
            for share in range(2)
        ]
        parts = [role_result(worker) for worker in workers]
        consumed = {
            "records": sum(part["records"] for part in parts),
            "seconds": max(part["seconds"] for part in parts),
        }
    else:
        consumed = role_result(run_role(f"consume-{client}", server.bootstrap, topic, count + 1, size))
    phases = [("produce", produced), ("consume", consumed)]
    if client == "confluent":
        by_kcat = consume_kcat(server.bootstrap, topic)
        if by_kcat is not None:
            phases.append(("consume_kcat", by_kcat))
    result = {}
    for phase, outcome in phases:
        seconds = max(outcome["seconds"], 1e-9)
        result[f"{phase}_records_per_s"] = outcome["records"] / seconds
        result[f"{phase}_mb_per_s"] = outcome["records"] * size / seconds / 1e6
        result[f"{phase}_records"] = outcome["records"]
    return result


def measure_latency(server: Server, client: str, count: int) -> dict:
    topic = f"lat-{uuid.uuid4().hex[:8]}"
    # Create the topic first so the consumer can assign it.
    role_result(run_role("produce-confluent", server.bootstrap, topic, 1, 100))
    consumer = run_role(f"latency-consumer-{client}", server.bootstrap, topic, count, 100)
    assert consumer.stdout is not None
    consumer.stdout.readline()  # "ready"
    producer = run_role(f"latency-producer-{client}", server.bootstrap, topic, count, 100)
    role_result(producer)
    return role_result(consumer)


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Benchmark madina.broker against librdkafka's mock cluster")
    parser.add_argument(
        "--quick", action="store_true", help="short smoke run (one repetition, fewer records)"
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--role", nargs=5, metavar=("ROLE", "BOOTSTRAP", "TOPIC", "COUNT", "SIZE"), help=argparse.SUPPRESS
    )
    parser.add_argument("--host-mock", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.host_mock:
        host_mock_cluster()
        return 0
    if args.role:
        role, bootstrap, topic, count, size = args.role
        print(json.dumps(ROLES[role](bootstrap, topic, int(count), int(size))), flush=True)
        return 0

    repeat = 1 if args.quick else args.repeat
    small_count = 100_000 if args.quick else 1_000_000
    cases = [
        ("confluent", 100, small_count),
        ("confluent", 1024, small_count // 4),
        ("aiokafka", 100, small_count // 5),
    ]
    latency_count = 2000 if args.quick else 5000
    results: dict = {"repeat": repeat, "quick": args.quick, "throughput": [], "latency": {}}
    with tempfile.TemporaryDirectory(prefix="madina-bench-") as scratch:
        servers = {"mock": Server("mock", None, 4)}
        partitions = 4  # librdkafka's mock cluster auto-creates topics with 4 partitions
        servers["madina"] = Server("madina", os.path.join(scratch, "data"), partitions)
        try:
            for client, size, count in cases:
                for kind in ("madina", "mock"):
                    runs = []
                    for attempt in range(repeat):
                        run = measure_throughput(servers[kind], client, count, size)
                        runs.append(run)
                        print(
                            f"[{kind:6}] {client:9} {size:5} B x {count:>9,}  run {attempt + 1}: "
                            f"produce {run['produce_records_per_s']:>10,.0f} rec/s "
                            f"({run['produce_mb_per_s']:6.1f} MB/s), "
                            f"consume {run['consume_records_per_s']:>10,.0f} rec/s "
                            f"({run['consume_mb_per_s']:6.1f} MB/s)"
                            + (f", kcat consume {run['consume_kcat_records_per_s']:>10,.0f} rec/s"
                               if "consume_kcat_records_per_s" in run else ""),
                            flush=True,
                        )
                    results["throughput"].append(
                        {
                            "server": kind,
                            "client": client,
                            "record_bytes": size,
                            "records": count,
                            **_median_of(runs),
                        }
                    )
            for client in LATENCY_CLIENTS:
                for kind in ("madina", "mock"):
                    runs = []
                    for attempt in range(repeat):
                        run = measure_latency(servers[kind], client, latency_count)
                        runs.append(run)
                        print(
                            f"[{kind:6}] {client:9} latency at 1k rec/s run {attempt + 1}: "
                            f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms",
                            flush=True,
                        )
                    results["latency"][f"{kind}/{client}"] = _median_of(runs)
        finally:
            for server in servers.values():
                server.stop()

    print()
    print(
        f"{'client':10} {'size':>6} {'server':7} {'produce rec/s':>14} {'MB/s':>7} {'consume rec/s':>14} "
        f"{'MB/s':>7} {'kcat consume rec/s':>19}"
    )
    by_key = {(row["server"], row["client"], row["record_bytes"]): row for row in results["throughput"]}
    ratios = []
    for client, size, _count in cases:
        for kind in ("madina", "mock"):
            row = by_key[(kind, client, size)]
            print(
                f"{client:10} {size:>6} {kind:7} {row['produce_records_per_s']:>14,.0f} "
                f"{row['produce_mb_per_s']:>7.1f} {row['consume_records_per_s']:>14,.0f} "
                f"{row['consume_mb_per_s']:>7.1f} {_cell(row.get('consume_kcat_records_per_s'), '{:,.0f}'):>19}"
            )
        ours, mock = by_key[("madina", client, size)], by_key[("mock", client, size)]
        ratio = {
            "client": client,
            "record_bytes": size,
            "produce_ratio": ours["produce_records_per_s"] / mock["produce_records_per_s"],
            "consume_ratio": ours["consume_records_per_s"] / max(mock["consume_records_per_s"], 1e-9),
        }
        if "consume_kcat_records_per_s" in ours and "consume_kcat_records_per_s" in mock:
            ratio["consume_kcat_ratio"] = ours["consume_kcat_records_per_s"] / max(
                mock["consume_kcat_records_per_s"], 1e-9)
        ratios.append(ratio)
        print(
            f"{client:10} {size:>6} {'ratio':7} {ratio['produce_ratio']:>14.2f} {'':>7} "
            f"{ratio['consume_ratio']:>14.2f} {'':>7} {_cell(ratio.get('consume_kcat_ratio'), '{:.2f}'):>19}"
        )
    if not shutil.which("kcat"):
        print("kcat consume: not measured (kcat is not installed; `make bench` installs it)")
    for key, latency in results["latency"].items():
        print(f"latency {key:17} p50 {latency['p50_ms']:.2f} ms  p99 {latency['p99_ms']:.2f} ms")
    results["ratios"] = ratios
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2))
    print(f"results written to {RESULTS_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
