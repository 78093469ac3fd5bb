"""Apache Kafka itself, run from its Maven Central artifacts on loopback ports in KRaft mode.

The tests (compatibility suite, the environment pipeline, failover), ``bench.broker`` and
``madina up --kafka apache`` all start Kafka through this module, so there is one launch line.

- ``ensure_artifacts()`` fetches the broker and its runtime dependencies with Maven
  (``tools/kafka/pom.xml``) into a cache outside git (``$MADINA_CACHE_DIR`` or
  ``~/.cache/madina``), once; later calls cost a directory listing.
- ``ApacheKafkaCluster.start(nodes=1 | 3)`` formats private data directories and starts each node
  as combined broker + controller. Three nodes get replication factor 3 and
  ``min.insync.replicas`` 2, the production shape the failover test needs.

Where Java or Maven is missing, or Maven Central cannot be reached, ``KafkaUnavailable`` says why,
so tests can skip with that reason.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from madina.devservers.ports import free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
POM = REPO_ROOT / "tools" / "kafka" / "pom.xml"
# Kafka's own start script defaults, with a heap small enough for three nodes on a 2-core, 24 GiB box.
JVM_OPTIONS = (
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
DEFAULT_HEAP_MB = 512
FETCH_TIMEOUT_S = 900.0


class KafkaUnavailable(RuntimeError):
    """Apache Kafka cannot run here (no Java, no Maven, no artifacts); the message says which."""


def kafka_version() -> str:
    match = re.search(r"<kafka.version>([^<]+)</kafka.version>", POM.read_text())
    if not match:
        raise KafkaUnavailable(f"{POM} names no <kafka.version>")
    return match.group(1)


def cache_dir() -> Path:
    root = os.environ.get("MADINA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "madina"
    )
    return Path(root)


def ensure_artifacts(*, progress=None) -> Path:
    """The folder of jars for the pinned Kafka, fetched by Maven on first use."""
    libs = cache_dir() / f"apache-kafka-{kafka_version()}" / "libs"
    complete = libs.parent / ".complete"
    if complete.exists():
        return libs
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise KafkaUnavailable(f"Apache Kafka needs `{tool}` on PATH (OpenJDK 17 and Maven)")
    libs.parent.mkdir(parents=True, exist_ok=True)
    # Two processes (a test run and a benchmark) may ask at once: one fetches, the other waits.
    with open(libs.parent / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if complete.exists():
            return libs
        say = progress or (lambda text: print(text, file=sys.stderr, flush=True))
        say(f"fetching Apache Kafka {kafka_version()} from Maven Central into {libs} (once)...")
        shutil.rmtree(libs, ignore_errors=True)
        argv = [
            "mvn", "-q", "-B", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={libs}", "-DincludeScope=runtime",
        ]  # fmt: skip
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise KafkaUnavailable(f"Maven did not fetch Apache Kafka within {FETCH_TIMEOUT_S:.0f} s") from error
        if result.returncode != 0 or not any(libs.glob("kafka_2.13-*.jar")):
            tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
            raise KafkaUnavailable("Maven could not fetch Apache Kafka: " + " | ".join(tail))
        complete.write_text(kafka_version())
        say(f"Apache Kafka {kafka_version()}: {len(list(libs.glob('*.jar')))} jars cached")
    return libs


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    config_path: Path
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


@dataclass
class ApacheKafkaCluster:
    """Apache Kafka nodes in KRaft mode on loopback, each broker and controller at once."""

    nodes: list[KafkaNode]
    libs: Path
    heap_mb: int = DEFAULT_HEAP_MB
    config: dict[str, str] = field(default_factory=dict)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.address for node in self.nodes)

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        nodes: int = 1,
        ports: Sequence[int] | None = None,
        heap_mb: int = DEFAULT_HEAP_MB,
        config: Mapping[str, str] | None = None,
        timeout_s: float = 120.0,
    ) -> ApacheKafkaCluster:
        """Nodes on ``ports`` (free ones by default). A ``workdir`` that already holds formatted
        nodes is started again with its data, as `madina up` does across runs."""
        libs = ensure_artifacts()
        workdir.mkdir(parents=True, exist_ok=True)
        if ports is not None and len(ports) != nodes:
            raise ValueError(f"{nodes} nodes need {nodes} ports, not {len(ports)}")
        members = [
            KafkaNode(
                node_id=n,
                port=ports[n - 1] if ports is not None else free_port(),
                controller_port=free_port(),
                data_dir=workdir / f"node-{n}" / "data",
                config_path=workdir / f"node-{n}" / "server.properties",
                log_path=workdir / f"node-{n}" / "server.log",
            )
            for n in range(1, nodes + 1)
        ]
        cluster = cls(members, libs, heap_mb, dict(config or {}))
        cluster._configure()
        for node in members:
            cluster._start_node(node)
        try:
            cluster.wait_ready(timeout_s)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _configure(self) -> None:
        replication = min(3, len(self.nodes))
        min_isr = 2 if replication >= 3 else 1
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        cluster_id = _cluster_id()
        fresh = not any((node.data_dir / "meta.properties").exists() for node in self.nodes)
        for node in self.nodes:
            settings = {
                "process.roles": "broker,controller",
                "node.id": str(node.node_id),
                "controller.quorum.voters": voters,
                "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
                "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
                "controller.listener.names": "CONTROLLER",
                "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                "inter.broker.listener.name": "PLAINTEXT",
                "log.dirs": str(node.data_dir),
                "default.replication.factor": str(replication),
                "min.insync.replicas": str(min_isr),
                "offsets.topic.replication.factor": str(replication),
                "transaction.state.log.replication.factor": str(replication),
                "transaction.state.log.min.isr": str(min_isr),
                "share.coordinator.state.topic.replication.factor": str(replication),
                "share.coordinator.state.topic.min.isr": str(min_isr),
                # A replica that fell behind while its broker was down should be out of the ISR
                # within seconds, not Kafka's 30 s, so failover tests see the ISR move.
                "replica.lag.time.max.ms": "10000",
                **self.config,
            }
            node.config_path.parent.mkdir(parents=True, exist_ok=True)
            node.config_path.write_text("".join(f"{key}={value}\n" for key, value in settings.items()))
        if fresh:
            # One JVM per node, all at once: each spends seconds starting up, not formatting.
            self._java_all(
                # `--cluster-id=` form: a random id may start with "-", which argparse takes for an option.
                ("kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", f"--config={node.config_path}")
                for node in self.nodes
            )

    def _java_all(self, commands: Iterable[Sequence[str]]) -> None:
        """Runs each ``(main class, *args)`` in a short-lived JVM, concurrently; raises if any fails."""
        # C1 only: a tool that runs for a second gains nothing from the optimising compiler.
        running = [
            (command, subprocess.Popen(
                ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", f"{self.libs}/*", *command],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ))
            for command in commands
        ]  # fmt: skip
        failures = []
        for command, process in running:
            try:
                output, _ = process.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                process.kill()
                output, _ = process.communicate()
            if process.returncode != 0:
                failures.append(f"{' '.join(command)} failed: {output[-2000:]}")
        if failures:
            raise KafkaUnavailable("; ".join(failures))

    def _start_node(self, node: KafkaNode) -> None:
        argv = [
            "java", f"-Xmx{self.heap_mb}m", *JVM_OPTIONS, "-cp", f"{self.libs}/*",
            "kafka.Kafka", str(node.config_path),
        ]  # fmt: skip
        with node.log_path.open("ab") as log:
            node.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    def wait_ready(self, timeout_s: float = 120.0, *, nodes: int | None = None) -> None:
        """Until every node (or ``nodes`` of them) is in the cluster metadata a client sees."""
        from kafka.admin import KafkaAdminClient

        want = len(self.nodes) if nodes is None else nodes
        deadline = time.monotonic() + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            for node in self.nodes:
                if node.process is not None and node.process.poll() is not None and nodes is None:
                    raise KafkaUnavailable(
                        f"Kafka node {node.node_id} exited with {node.process.returncode}: "
                        f"{node.log_path.read_text(errors='replace')[-3000:]}"
                    )
            live = ",".join(node.address for node in self.nodes if node.alive())
            try:
                admin = KafkaAdminClient(bootstrap_servers=live, request_timeout_ms=5000, client_id="madina-ready")
                try:
                    brokers = admin.describe_cluster()["brokers"]
                finally:
                    admin.close()
                if len(brokers) >= want:
                    return
                last = f"{len(brokers)} of {want} brokers registered"
            except Exception as error:
                last = error
            time.sleep(0.5)
        raise KafkaUnavailable(f"Apache Kafka not ready within {timeout_s:.0f} s: {last}")

    def node(self, node_id: int) -> KafkaNode:
        return next(node for node in self.nodes if node.node_id == node_id)

    def kill(self, node_id: int) -> None:
        """kill -9 one node: no controlled shutdown, no flush."""
        node = self.node(node_id)
        if node.alive():
            assert node.process is not None
            os.killpg(node.process.pid, signal.SIGKILL)
            node.process.wait()

    def restart(self, node_id: int) -> None:
        node = self.node(node_id)
        if node.alive():
            raise RuntimeError(f"Kafka node {node_id} is still running")
        self._start_node(node)

    def stop(self) -> None:
        for node in self.nodes:
            if node.alive():
                assert node.process is not None
                with contextlib.suppress(ProcessLookupError):
                    node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for node in self.nodes:
            if node.process is None:
                continue
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(node.process.pid, signal.SIGKILL)
                node.process.wait()

    def log_tail(self, chars: int = 3000) -> str:
        return "\n".join(
            f"--- node {node.node_id} ---\n{node.log_path.read_text(errors='replace')[-chars:]}"
            for node in self.nodes
            if node.log_path.exists()
        )


@contextlib.contextmanager
def running_kafka(workdir: Path, **options) -> Iterator[ApacheKafkaCluster]:
    cluster = ApacheKafkaCluster.start(workdir, **options)
    try:
        yield cluster
    finally:
        cluster.stop()
