"""kafka-python's own integration suite, unchanged, against the embedded broker and Apache Kafka.

The suite comes from kafka-python's source distribution on PyPI (the version we pin; it
ships ``test/integration``), fetched once with ``pip download`` into the Madina cache
(``~/.cache/madina/kafka-python``) and run there in a pytest subprocess, pointed at a
broker with ``KAFKA_URI`` and told the broker's Kafka release with ``KAFKA_VERSION``, as
its README describes for external brokers. ``kafka_python_suite_plugin`` supplies what the
sdist lacks and lists the excluded tests with their reasons (SSL and SASL listeners).

Both brokers get the settings kafka-python's own fixture gives its brokers: four partitions
for auto-created topics (its transactional tests commit offsets for partition 1 of one)
and no initial rebalance delay. Each run must pass everything it does not exclude; a
last test checks that the two brokers gave every test run on both the same outcome. The
tests that only run on one side are those the suite gates on the broker's release (the
embedded broker is Kafka 3.0 by its API versions; the KRaft-only admin APIs of 4.x are
skipped for it by the suite itself).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ElementTree
from importlib.metadata import version
from pathlib import Path

import pytest

from madina.broker.protocol import KAFKA_RELEASE
from tests.integration.broker.conftest import REPO_ROOT, BrokerSubprocess
from tests.integration.broker.kafka_python_suite_plugin import EXCLUDED

pytestmark = pytest.mark.timeout(1200)

SUITE_SETTINGS = {
    "num.partitions": "4",
    "group.initial.rebalance.delay.ms": "0",
    # The suite's group test uses 3 s sessions; Kafka's default minimum is 6 s, ours is 1 s.
    "group.min.session.timeout.ms": "1000",
}
# Outcomes of each run, by test id, for the comparison at the end.
RESULTS: dict[str, dict[str, tuple[str, str]]] = {}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _cache_root() -> Path:
    root = os.environ.get("MADINA_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "madina"
    )
    return Path(root) / "kafka-python"


@pytest.fixture(scope="module")
def kafka_python_sdist() -> Path:
    """The unpacked sdist of the kafka-python we run against (downloaded on first use)."""
    pinned = version("kafka-python")
    cache = _cache_root()
    unpacked = cache / f"kafka_python-{pinned}"
    if not (unpacked / "test" / "integration").is_dir():
        archive = cache / f"kafka_python-{pinned}.tar.gz"
        if not archive.exists():
            cache.mkdir(parents=True, exist_ok=True)
            download = subprocess.run(
                [
                    *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"),
                    *(f"kafka-python=={pinned}", "-d", str(cache)),
                ],
                capture_output=True,
                text=True,
            )
            if download.returncode != 0 or not archive.exists():
                pytest.skip(f"cannot download the kafka-python {pinned} sdist: {download.stderr[-500:]}")
        with tarfile.open(archive) as sdist:
            sdist.extractall(cache, filter="data")
    if not (unpacked / "test" / "integration").is_dir():
        pytest.fail(f"the kafka-python {pinned} sdist ships no test/integration")
    return unpacked


def run_suite(sdist: Path, bootstrap: str, kafka_version: str, report: Path) -> dict[str, tuple[str, str]]:
    """Run test/integration against ``bootstrap``; ``{test id: (outcome, detail)}``."""
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "KAFKA_PYTHON_SDIST": str(sdist),
        "KAFKA_URI": f"kafka://{bootstrap}",
        "KAFKA_VERSION": kafka_version,
        # The fixture insists on a Kafka distribution folder even for an external broker.
        "KAFKA_ROOT": str(report.parent),
    }
    env.pop("PYTEST_ADDOPTS", None)
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "test/integration"),
            *("-p", "tests.integration.broker.kafka_python_suite_plugin", "-p", "no:cacheprovider"),
            *("-o", "log_level=WARNING", "--timeout=120", "--timeout-method=signal"),
            *("-q", f"--junitxml={report}"),
        ],
        cwd=sdist,
        env=env,
        capture_output=True,
        text=True,
        timeout=1100,
    )
    if not report.exists():
        raise AssertionError(f"the suite did not run:\n{completed.stdout[-3000:]}\n{completed.stderr[-3000:]}")
    results: dict[str, tuple[str, str]] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        outcome, detail = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = "skipped" if child.tag == "skipped" else "failed"
                detail = (child.get("message") or "")[:300]
                break
        results[name] = outcome, detail
    return results


def _check(results: dict[str, tuple[str, str]]) -> None:
    failed = {name: detail for name, (outcome, detail) in results.items() if outcome == "failed"}
    assert not failed, "kafka-python integration tests failed:\n" + "\n".join(
        f"{name}: {detail}" for name, detail in sorted(failed.items())
    )
    for name, (_outcome, detail) in results.items():
        if detail.startswith("excluded:"):
            classname, _, test = name.partition("::")
            module = classname.split(".")[2]  # test.integration.<module>[.<class>]
            assert f"{module}.py" in EXCLUDED or f"{module}.py::{test}" in EXCLUDED, name


def test_kafka_python_suite_passes_on_the_embedded_broker(kafka_python_sdist: Path, tmp_path: Path):
    broker = BrokerSubprocess.start(
        "--memory",
        "--default-partitions",
        SUITE_SETTINGS["num.partitions"],
        "--group-initial-rebalance-delay-ms",
        SUITE_SETTINGS["group.initial.rebalance.delay.ms"],
    )
    try:
        release = ".".join(KAFKA_RELEASE.split(".")[:2])
        results = run_suite(kafka_python_sdist, broker.bootstrap, release, tmp_path / "report.xml")
    finally:
        assert broker.stop() == 0, broker.log_text()[-4000:]
    RESULTS["embedded"] = results
    _check(results)
    assert sum(outcome == "passed" for outcome, _ in results.values()) >= 40


def test_kafka_python_suite_passes_on_apache_kafka(kafka_python_sdist: Path, tmp_path: Path):
    from madina.devservers.apache_kafka import ApacheKafkaCluster, KafkaUnavailable, kafka_version

    # kafka-python's fixture runs its broker as node 0 (its CreatePartitions test places new
    # replicas on broker 0), as the embedded broker is; our Kafka nodes count from 1.
    port, controller_port = _free_port(), _free_port()
    node_zero = {
        "node.id": "0",
        "controller.quorum.voters": f"0@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
    }
    try:
        cluster = ApacheKafkaCluster.start(
            tmp_path / "kafka", nodes=1, ports=[port], config={**SUITE_SETTINGS, **node_zero}
        )
    except KafkaUnavailable as error:
        pytest.skip(f"Apache Kafka not available: {error}")
    try:
        release = ".".join(kafka_version().split(".")[:2])
        results = run_suite(kafka_python_sdist, cluster.bootstrap, release, tmp_path / "report.xml")
    finally:
        cluster.stop()
    RESULTS["apache-kafka"] = results
    _check(results)


def test_kafka_python_suite_gives_the_same_results_on_both_brokers():
    if set(RESULTS) != {"embedded", "apache-kafka"}:
        pytest.skip("needs both suite runs of this module")
    embedded, apache = RESULTS["embedded"], RESULTS["apache-kafka"]
    assert set(embedded) == set(apache)
    differing = {
        name: (embedded[name], apache[name])
        for name in embedded
        if embedded[name][0] != apache[name][0]
        # Tests the suite gates on the broker's release run on one side only.
        and not (embedded[name][0] == "skipped" and "requires" in embedded[name][1].lower())
    }
    assert not differing, differing
