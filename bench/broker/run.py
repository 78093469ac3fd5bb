"""Benchmark the embedded broker against Apache Kafka and librdkafka's mock cluster, same clients.

    python -m bench.broker            # full run, about 10-15 minutes
    python -m bench.broker --quick    # smoke run

Every measurement runs the producer and the consumer in their own processes, against these
columns (all on this machine, single node, 4 partitions per topic, acks=all from every client):

- ``madina``: ``python -m madina.broker --data-dir <tmp>``: durable, fsync (group commit) of the
  written segments before it answers each acks=all produce;
- ``kafka-fsync``: Apache Kafka (``madina.devservers.apache_kafka``, one KRaft node) with
  topics created ``flush.messages=1``: Kafka fsyncs the log after every append, before the
  produce answer. This is the column comparable to ``madina``;
- ``kafka``: the same Kafka node, topics with Kafka's default durability: appended to the page
  cache, no fsync (Kafka relies on replication for durability, and a single node has none);
- ``mock``: a librdkafka mock cluster (``test.mock.num.brokers=1``) hosted by a helper process:
  in memory, no disk.

Measured with confluent-kafka (librdkafka) and aiokafka: produce and consume throughput for
100-byte and 1 KiB records, and produce-to-consume latency p50/p99 at 1k records/s (acks=all,
no linger) with each client. The Python confluent consumer tops out near the target on its own
per-message cost, so consume is also measured with kcat (librdkafka's C command-line client, one
process, no Python per message): that is the broker's rate rather than a client's.

Transactions: confluent-kafka producing 100-byte records in transactions of 1000 records,
each committed before the next begins (records/s and commits/s), then a read_committed
consume of the result, against madina and both Kafka columns (the mock is not measured).

Every broker first gets an unmeasured warm-up (a throughput run per client and a latency run
per client; for Kafka this is JVM JIT warm-up). Then each measurement is repeated (3 times by
default) with the brokers interleaved: every repetition runs each broker in turn, in a rotated
order. Medians are reported with ratios of madina to each other column (records/s: above 1 is
madina faster; latency: below 1 is madina faster). Where Apache Kafka cannot run (no Java or
Maven, no artifacts), its columns say why and the rest runs. Results go to
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

from bench.stats import percentile
from madina.devservers.launch import broker_argv

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_FILE = REPO_ROOT / "bench" / "results" / "broker.json"
READY_PREFIX = "madina broker listening on "
MOCK_READY_PREFIX = "mock cluster at "
# The mock cluster's consume path can collapse to a few hundred records/s; bound each read so
# the run stays within minutes (the rate is still records received over time taken).
CONSUME_DEADLINE_S = 20
PARTITIONS = 4  # librdkafka's mock cluster auto-creates topics with 4 partitions; the others match
# Columns in table order; ratios are madina's figure over each of the others.
KINDS = ("madina", "kafka-fsync", "kafka", "mock")
DURABILITY = {
    "madina": "durable: fsync (group commit) before answering each acks=all produce",
    "kafka-fsync": "Apache Kafka, topic flush.messages=1: fsync after every append, before the answer",
    "kafka": "Apache Kafka default: page cache only, no fsync (durability is replication; one node has none)",
    "mock": "librdkafka mock cluster: in memory, no disk",
}


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


def produce_transactional(bootstrap: str, topic: str, count: int, size: int) -> dict:
    """Transactions of TRANSACTION_RECORDS records each, committed one after another."""
    import confluent_kafka

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "transactional.id": f"bench-{uuid.uuid4().hex[:8]}",
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "batch.size": 1_000_000,
            "queue.buffering.max.messages": 1_000_000,
        }
    )
    payload = b"x" * size
    producer.init_transactions(60)
    producer.begin_transaction()  # coordinator lookup and metadata are not timed
    producer.produce(topic, payload)
    producer.commit_transaction(60)
    transactions = 0
    started = time.perf_counter()
    for first in range(0, count, TRANSACTION_RECORDS):
        producer.begin_transaction()
        for _ in range(min(TRANSACTION_RECORDS, count - first)):
            while True:
                try:
                    producer.produce(topic, payload)
                    break
                except BufferError:
                    producer.poll(0.001)
        producer.commit_transaction(120)
        transactions += 1
    elapsed = time.perf_counter() - started
    return {"records": count, "seconds": elapsed, "transactions": transactions}


def consume_committed(bootstrap: str, topic: str, count: int, size: int) -> dict:
    """Read ``count`` records read_committed (the watermarks also count transaction markers)."""
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-" + uuid.uuid4().hex,
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
            "isolation.level": "read_committed",
        }
    )
    metadata = consumer.list_topics(topic, timeout=10)
    started = time.perf_counter()
    consumer.assign(
        [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for p in sorted(metadata.topics[topic].partitions)
        ]
    )
    received = 0
    deadline = time.monotonic() + CONSUME_DEADLINE_S
    while received < count and time.monotonic() < deadline:
        messages = consumer.consume(100000, 0.5)
        received += sum(1 for message in messages if message.error() is None)
    elapsed = time.perf_counter() - started
    consumer.close()
    return {"records": received, "seconds": elapsed}


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
        "p50_ms": percentile(delays_ms, 0.50),
        "p99_ms": percentile(delays_ms, 0.99),
    }


def _split_share(topic: str) -> tuple[str, int, int]:
    """``topic@1/2`` means: the second half of the partitions (for parallel consumers)."""
    if "@" not in topic:
        return topic, 0, 1
    name, share = topic.split("@")
    index, count = share.split("/")
    return name, int(index), int(count)



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
    "produce-transactional": produce_transactional,
    "consume-committed": consume_committed,
    "produce-aiokafka": lambda *args: asyncio.run(_produce_aiokafka(*args)),
    "consume-aiokafka": lambda *args: asyncio.run(_consume_aiokafka(*args)),
    "latency-consumer-confluent": latency_consumer,
    "latency-producer-confluent": latency_producer,
    "latency-consumer-aiokafka": lambda *args: asyncio.run(_latency_consumer_aiokafka(*args)),
    "latency-producer-aiokafka": lambda *args: asyncio.run(_latency_producer_aiokafka(*args)),
}
LATENCY_CLIENTS = ("confluent", "aiokafka")
# Records per transaction in the transactional throughput run.
TRANSACTION_RECORDS = 1000


# ---- orchestration ---------------------------------------------------------------------------


class Server:
    """The embedded broker or the librdkafka mock, in a child process."""

    def __init__(self, kind: str, data_dir: str | None, partitions: int):
        self.kind = kind
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        if kind == "madina":
            argv = broker_argv(data_dir=Path(data_dir) if data_dir else None, default_partitions=partitions)
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

    def prepare(self, topic: str) -> None:
        """Both auto-create topics with ``partitions`` partitions on first use."""

    def alive(self) -> str | None:
        return None if self.process.poll() is None else f"{self.kind} exited with {self.process.returncode}"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class KafkaColumn:
    """One Apache Kafka node; ``topic_config`` is given to every topic this column creates, so
    one node serves both durability columns (topics with and without ``flush.messages=1``)."""

    def __init__(self, kind: str, cluster, topic_config: dict[str, str]):
        self.kind = kind
        self.cluster = cluster
        self.bootstrap = cluster.bootstrap
        self.topic_config = topic_config

    def prepare(self, topic: str) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics(
            [NewTopic(topic, PARTITIONS, 1, config=self.topic_config)], operation_timeout=30, request_timeout=30
        )
        for future in futures.values():
            future.result(60)

    def alive(self) -> str | None:
        if all(node.alive() for node in self.cluster.nodes):
            return None
        return "Apache Kafka exited during the run: " + self.cluster.log_tail(500).replace("\n", " | ")

    def stop(self) -> None:
        """The node is shared by both Kafka columns; ``main`` stops it once."""


def start_kafka(workdir: Path) -> tuple[object | None, str | None]:
    """A single-node Apache Kafka cluster, or None and the reason it cannot run here."""
    try:
        from madina.devservers.apache_kafka import ApacheKafkaCluster, kafka_version

        cluster = ApacheKafkaCluster.start(
            workdir,
            nodes=1,
            config={"num.partitions": str(PARTITIONS), "auto.create.topics.enable": "true"},
        )
        print(f"Apache Kafka {kafka_version()} (one node) at {cluster.bootstrap}", flush=True)
        return cluster, None
    except Exception as error:  # KafkaUnavailable, or anything else that stops it starting
        reason = f"{type(error).__name__}: {error}".strip()
        return None, reason.splitlines()[0][:300]


def run_role(role: str, bootstrap: str, topic: str, count: int, size: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.broker.run", "--role", role, bootstrap, topic, str(count), str(size)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )


def role_result(process: subprocess.Popen, timeout_s: float = 300) -> dict:
    try:
        output, _ = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        raise RuntimeError(f"worker timed out after {timeout_s:.0f} s: {output[-2000:]}") from None
    lines = [line for line in output.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise RuntimeError(f"worker failed ({process.returncode}): {output[-2000:]}")
    return json.loads(lines[-1])


def measure_throughput(server, client: str, count: int, size: int) -> dict:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    server.prepare(topic)
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


def measure_transactional(server, count: int, size: int) -> dict:
    """Transactional produce (confluent, TRANSACTION_RECORDS per commit), then a read_committed
    consume of the result."""
    topic = f"txn-{uuid.uuid4().hex[:8]}"
    server.prepare(topic)
    produced = role_result(run_role("produce-transactional", server.bootstrap, topic, count, size))
    consumed = role_result(run_role("consume-committed", server.bootstrap, topic, count + 1, size))
    seconds = max(produced["seconds"], 1e-9)
    return {
        "produce_records_per_s": produced["records"] / seconds,
        "transactions_per_s": produced["transactions"] / seconds,
        "consume_records_per_s": consumed["records"] / max(consumed["seconds"], 1e-9),
        "consume_records": consumed["records"],
    }


def measure_latency(server, client: str, count: int) -> dict:
    topic = f"lat-{uuid.uuid4().hex[:8]}"
    server.prepare(topic)
    # Produce one record first so the topic exists (auto-created) before the consumer assigns it.
    role_result(run_role("produce-confluent", server.bootstrap, topic, 1, 100))
    consumer = run_role(f"latency-consumer-{client}", server.bootstrap, topic, count, 100)
    assert consumer.stdout is not None
    consumer.stdout.readline()  # "ready"
    producer = run_role(f"latency-producer-{client}", server.bootstrap, topic, count, 100)
    role_result(producer)
    result = role_result(consumer)
    result["offered"] = count
    settle(server.bootstrap, topic)
    return result


def settle(bootstrap: str, topic: str, limit_s: float = 90) -> None:
    """Wait until ``topic`` stops growing: a broker that fell behind (requests still queued when
    the consumer's deadline passed) must not carry that backlog into the next measurement."""
    import confluent_kafka

    reader = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "settle-" + uuid.uuid4().hex})
    try:
        partitions = list(reader.list_topics(topic, timeout=10).topics[topic].partitions)
        last = None
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            total = sum(
                reader.get_watermark_offsets(confluent_kafka.TopicPartition(topic, p), timeout=10)[1]
                for p in partitions
            )
            if total == last:
                return
            last = total
            time.sleep(1.0)
    finally:
        reader.close()


def _cell(value: float | None, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


def _median_of(runs: list[dict]) -> dict:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


class Session:
    """The running columns; a column that fails is marked unavailable with its reason and the
    rest of the bench goes on."""

    def __init__(self, servers: dict, unavailable: dict[str, str]):
        self.servers = servers
        self.unavailable = unavailable

    def kinds(self, attempt: int) -> list[str]:
        """The available columns, in an order rotated by ``attempt`` so none always goes first."""
        kinds = [kind for kind in KINDS if kind in self.servers and kind not in self.unavailable]
        shift = attempt % len(kinds) if kinds else 0
        return kinds[shift:] + kinds[:shift]

    def run(self, kind: str, measure, *args) -> dict | None:
        server = self.servers[kind]
        try:
            return measure(server, *args)
        except Exception as error:
            if kind == "madina":
                raise
            dead = server.alive()
            if dead is not None:  # the broker itself is gone: stop measuring this column
                for other, column in self.servers.items():
                    if column is server or getattr(column, "cluster", None) is getattr(server, "cluster", 0):
                        self.unavailable[other] = dead[:300]
            print(f"[{kind:11}] measurement failed: {str(error)[:300]}", flush=True)
            return None


def warm_up(session: Session, quick: bool) -> None:
    """Unmeasured traffic through every column first (for Kafka: JVM class loading and JIT)."""
    for kind in session.kinds(0):
        started = time.monotonic()
        # The mock reads about 1.4k records/s, so it gets a small warm-up (it is C: nothing to JIT).
        count = 5_000 if kind == "mock" else (50_000 if quick else 200_000)
        session.run(kind, measure_throughput, "confluent", count, 100)
        session.run(kind, measure_throughput, "confluent", count // 4, 1024)
        session.run(kind, measure_throughput, "aiokafka", count // 5, 100)
        for client in LATENCY_CLIENTS:
            session.run(kind, measure_latency, client, 1000)
        print(f"[{kind:11}] warmed up in {time.monotonic() - started:.0f} s (not measured)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark madina.broker against Apache Kafka and librdkafka's mock cluster"
    )
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
    transactional_count = small_count // 5
    started_at = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    results: dict = {
        "date": started_at,
        "command": "python -m bench.broker" + (" --quick" if args.quick else ""),
        "repeat": repeat,
        "quick": args.quick,
        "acks": "all",
        "partitions": PARTITIONS,
        "durability": dict(DURABILITY),
        "warm_up": "every broker: unmeasured throughput runs per client and size, and a latency run per client",
        "unavailable": {},
        "throughput": [],
        "transactional": [],
        "latency": {},
    }
    cluster = None
    with tempfile.TemporaryDirectory(prefix="madina-bench-") as scratch:
        servers: dict = {"mock": Server("mock", None, PARTITIONS)}
        try:
            # Same file system for both brokers' data (fsync costs depend on it).
            servers["madina"] = Server("madina", os.path.join(scratch, "data"), PARTITIONS)
            cluster, reason = start_kafka(Path(scratch) / "kafka")
            if cluster is not None:
                servers["kafka-fsync"] = KafkaColumn("kafka-fsync", cluster, {"flush.messages": "1"})
                servers["kafka"] = KafkaColumn("kafka", cluster, {})
            else:
                print(f"Apache Kafka columns: unavailable ({reason})", flush=True)
                results["unavailable"] = {"kafka-fsync": reason, "kafka": reason}
            session = Session(servers, results["unavailable"])
            warm_up(session, args.quick)
            for client, size, count in cases:
                runs: dict[str, list[dict]] = {kind: [] for kind in KINDS}
                for attempt in range(repeat):
                    for kind in session.kinds(attempt):
                        run = session.run(kind, measure_throughput, client, count, size)
                        if run is None:
                            continue
                        runs[kind].append(run)
                        print(
                            f"[{kind:11}] {client:9} {size:5} B x {count:>9,}  run {attempt + 1}: "
                            f"produce {run['produce_records_per_s']:>10,.0f} rec/s "
                            f"({run['produce_mb_per_s']:6.1f} MB/s), "
                            f"consume {run['consume_records_per_s']:>10,.0f} rec/s "
                            f"({run['consume_mb_per_s']:6.1f} MB/s)"
                            + (f", kcat consume {run['consume_kcat_records_per_s']:>10,.0f} rec/s"
                               if "consume_kcat_records_per_s" in run else ""),
                            flush=True,
                        )
                for kind in KINDS:
                    if runs[kind]:
                        results["throughput"].append(
                            {
                                "server": kind,
                                "client": client,
                                "record_bytes": size,
                                "records": count,
                                "runs": len(runs[kind]),
                                **_median_of(runs[kind]),
                            }
                        )
            transactional: dict[str, list[dict]] = {kind: [] for kind in KINDS}
            for attempt in range(repeat):
                for kind in session.kinds(attempt):
                    if kind == "mock":
                        continue  # the mock cluster's transactions are not a broker's
                    run = session.run(kind, measure_transactional, transactional_count, 100)
                    if run is None:
                        continue
                    transactional[kind].append(run)
                    print(
                        f"[{kind:11}] transactional 100 B x {transactional_count:>9,}  run {attempt + 1}: "
                        f"produce {run['produce_records_per_s']:>10,.0f} rec/s "
                        f"({run['transactions_per_s']:,.1f} commits/s), "
                        f"read_committed consume {run['consume_records_per_s']:>10,.0f} rec/s",
                        flush=True,
                    )
            for kind in KINDS:
                if transactional[kind]:
                    results["transactional"].append(
                        {
                            "server": kind,
                            "records": transactional_count,
                            "record_bytes": 100,
                            "records_per_transaction": TRANSACTION_RECORDS,
                            "runs": len(transactional[kind]),
                            **_median_of(transactional[kind]),
                        }
                    )
            for client in LATENCY_CLIENTS:
                latencies: dict[str, list[dict]] = {kind: [] for kind in KINDS}
                for attempt in range(repeat):
                    for kind in session.kinds(attempt):
                        run = session.run(kind, measure_latency, client, latency_count)
                        if run is None:
                            continue
                        latencies[kind].append(run)
                        print(
                            f"[{kind:11}] {client:9} latency at 1k rec/s run {attempt + 1}: "
                            f"p50 {run['p50_ms']:.2f} ms, p99 {run['p99_ms']:.2f} ms",
                            flush=True,
                        )
                for kind in KINDS:
                    if latencies[kind]:
                        results["latency"][f"{kind}/{client}"] = {
                            "runs": len(latencies[kind]), **_median_of(latencies[kind])
                        }
        finally:
            for server in servers.values():
                server.stop()
            if cluster is not None:
                cluster.stop()

    print_report(results, cases)
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(results, indent=2))
    print(f"results written to {RESULTS_FILE}")
    return 0


def print_report(results: dict, cases: list[tuple[str, int, int]]) -> None:
    """The medians table, ratio rows (madina / each other column) and the durability legend;
    the ratios also go into ``results``."""
    print()
    print(f"Medians of {results['repeat']} interleaved repetition(s) after a warm-up, {results['date']}; "
          f"acks=all, {results['partitions']} partitions, one node each.")
    for kind in KINDS:
        note = results["unavailable"].get(kind)
        print(f"  {kind:11} {DURABILITY[kind]}" + (f"  [UNAVAILABLE: {note}]" if note else ""))
    print()
    print(
        f"{'client':10} {'size':>6} {'server':18} {'produce rec/s':>14} {'MB/s':>7} {'consume rec/s':>14} "
        f"{'MB/s':>7} {'kcat consume rec/s':>19}"
    )
    by_key = {(row["server"], row["client"], row["record_bytes"]): row for row in results["throughput"]}
    ratios = []
    for client, size, _count in cases:
        for kind in KINDS:
            row = by_key.get((kind, client, size))
            if row is None:
                why = results["unavailable"].get(kind, "no successful run")
                print(f"{client:10} {size:>6} {kind:18} unavailable: {why[:90]}")
                continue
            print(
                f"{client:10} {size:>6} {kind:18} {row['produce_records_per_s']:>14,.0f} "
                f"{row['produce_mb_per_s']:>7.1f} {row['consume_records_per_s']:>14,.0f} "
                f"{row['consume_mb_per_s']:>7.1f} {_cell(row.get('consume_kcat_records_per_s'), '{:,.0f}'):>19}"
            )
        ours = by_key.get(("madina", client, size))
        for kind in KINDS[1:]:
            theirs = by_key.get((kind, client, size))
            if ours is None or theirs is None:
                continue
            ratio = {"client": client, "record_bytes": size, "versus": kind}
            for phase in ("produce", "consume", "consume_kcat"):
                value = _ratio(ours.get(f"{phase}_records_per_s"), theirs.get(f"{phase}_records_per_s"))
                if value is not None:
                    ratio[f"{phase}_ratio"] = value
            ratios.append(ratio)
            print(
                f"{client:10} {size:>6} {'madina/' + kind:18} {_cell(ratio.get('produce_ratio'), '{:.2f}'):>14} "
                f"{'':>7} {_cell(ratio.get('consume_ratio'), '{:.2f}'):>14} {'':>7} "
                f"{_cell(ratio.get('consume_kcat_ratio'), '{:.2f}'):>19}"
            )
    print("(throughput ratios: above 1 means madina handled more records/s)")
    print()
    print(
        f"{'transactional':17} {'server':18} {'produce rec/s':>14} {'commits/s':>10} "
        f"{'read_committed rec/s':>21}   (confluent, 100 B, {TRANSACTION_RECORDS} records per transaction)"
    )
    by_server = {row["server"]: row for row in results.get("transactional", [])}
    for kind in KINDS:
        row = by_server.get(kind)
        if row is None:
            why = "not measured" if kind == "mock" else results["unavailable"].get(kind, "no successful run")
            print(f"{'':17} {kind:18} unavailable: {why[:90]}")
            continue
        print(
            f"{'':17} {kind:18} {row['produce_records_per_s']:>14,.0f} {row['transactions_per_s']:>10,.1f} "
            f"{row['consume_records_per_s']:>21,.0f}"
        )
    ours = by_server.get("madina")
    for kind in KINDS[1:]:
        theirs = by_server.get(kind)
        if ours is None or theirs is None:
            continue
        ratio = {
            "versus": kind,
            "produce_ratio": _ratio(ours["produce_records_per_s"], theirs["produce_records_per_s"]),
            "consume_ratio": _ratio(ours["consume_records_per_s"], theirs["consume_records_per_s"]),
        }
        results.setdefault("transactional_ratios", []).append(ratio)
        print(
            f"{'':17} {'madina/' + kind:18} {_cell(ratio['produce_ratio'], '{:.2f}'):>14} {'':>10} "
            f"{_cell(ratio['consume_ratio'], '{:.2f}'):>21}"
        )
    if not shutil.which("kcat"):
        print("kcat consume: not measured (kcat is not installed; `make bench` installs it)")
    print()
    print(f"{'latency at 1k rec/s':22} {'p50 ms':>8} {'p99 ms':>8}   (produce -> consume, linger 0)")
    latency_ratios = []
    for client in LATENCY_CLIENTS:
        for kind in KINDS:
            latency = results["latency"].get(f"{kind}/{client}")
            if latency is None:
                why = results["unavailable"].get(kind, "no successful run")
                print(f"{kind + '/' + client:22} unavailable: {why[:90]}")
                continue
            short = latency.get("offered", 0) - latency["records"]
            print(
                f"{kind + '/' + client:22} {latency['p50_ms']:>8.2f} {latency['p99_ms']:>8.2f}"
                + (f"  (did not keep up: {latency['records']:,.0f} of {latency['offered']:,.0f} records "
                   "arrived within the consumer's 60 s)" if short > 0 else "")
            )
        ours = results["latency"].get(f"madina/{client}")
        for kind in KINDS[1:]:
            theirs = results["latency"].get(f"{kind}/{client}")
            if ours is None or theirs is None:
                continue
            ratio = {
                "client": client,
                "versus": kind,
                "p50_ratio": _ratio(ours["p50_ms"], theirs["p50_ms"]),
                "p99_ratio": _ratio(ours["p99_ms"], theirs["p99_ms"]),
            }
            latency_ratios.append(ratio)
            print(
                f"{'madina/' + kind:22} {_cell(ratio['p50_ratio'], '{:.3g}'):>8} "
                f"{_cell(ratio['p99_ratio'], '{:.3g}'):>8}"
            )
    print("(latency ratios: below 1 means madina delivered sooner)")
    results["ratios"] = ratios
    results["latency_ratios"] = latency_ratios


if __name__ == "__main__":
    sys.exit(main())
