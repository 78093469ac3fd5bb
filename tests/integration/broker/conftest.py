"""Fixtures for the broker compatibility suite: a broker in its own process, reached over TCP.

``broker_bootstrap`` is the address every compatibility test talks to. It is parametrized:

- ``embedded``: the embedded broker in memory (``madina broker --port 0 --memory``) in a
  subprocess, shared by the session; or, when ``MADINA_TEST_KAFKA_BOOTSTRAP`` is set, that
  external Kafka instead;
- ``apache-kafka``: Apache Kafka itself (the pinned release from Maven Central, one KRaft node,
  see ``madina.devservers.apache_kafka``), with the same assertions; skipped with the reason when
  Java or the artifacts cannot be had.

``own_broker`` starts a private broker process per test (durability and fuzz tests, which
kill, corrupt or restart it); those tests skip when an external Kafka is configured.

Every broker here is started from the command line ``madina.devservers.launch.broker_argv``
writes, as ``madina up`` and the benchmarks start theirs; this suite adds only the broker's
tuning options a test needs (a fast cleaner, a small frame limit) and keeps its log in memory,
since tests assert on what it says.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from madina.devservers.launch import BROKER_READY_LINE, broker_argv

EXTERNAL_BOOTSTRAP_ENV = "MADINA_TEST_KAFKA_BOOTSTRAP"
REPO_ROOT = Path(__file__).resolve().parents[3]
# What broker_argv writes from its keywords; any other argument is passed on as a tuning option.
_LAUNCH_OPTIONS = {
    "--data-dir": ("data_dir", Path),
    "--default-partitions": ("default_partitions", int),
    "--group-initial-rebalance-delay-ms": ("initial_rebalance_delay_ms", int),
}


def launch_argv(*args: str) -> list[str]:
    """``madina broker`` on a free port with the suite's arguments (``madina broker --help``)."""
    keywords: dict[str, Any] = {}
    options: list[str] = []
    remaining = list(args)
    while remaining:
        argument = remaining.pop(0)
        if argument == "--memory":  # broker_argv's default, without a data directory
            continue
        if argument in _LAUNCH_OPTIONS:
            name, kind = _LAUNCH_OPTIONS[argument]
            keywords[name] = kind(remaining.pop(0))
        else:
            options.append(argument)
    return [*broker_argv(port=0, **keywords), *options]


@dataclass
class BrokerSubprocess:
    """The embedded broker with its address parsed from the readiness line and its log kept."""

    process: subprocess.Popen
    bootstrap: str
    stderr_lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, *args: str, timeout_s: float = 20.0) -> BrokerSubprocess:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
        process = subprocess.Popen(
            launch_argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT
        )
        stderr_lines: list[str] = []
        threading.Thread(target=_collect, args=(process.stderr, stderr_lines), daemon=True).start()
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(BROKER_READY_LINE):
                return cls(process, line[len(BROKER_READY_LINE) :].strip(), stderr_lines)
        process.kill()
        raise RuntimeError(
            f"broker not ready in {timeout_s}s (exit {process.poll()}): {''.join(stderr_lines)}"
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> int:
        if self.alive:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()

    def log_text(self) -> str:
        return "".join(self.stderr_lines)


def _collect(stream, lines: list[str]) -> None:
    for line in stream:
        lines.append(line)


def _external_bootstrap() -> str | None:
    return os.environ.get(EXTERNAL_BOOTSTRAP_ENV) or None


@pytest.fixture(scope="session")
def _embedded_bootstrap() -> Iterator[str]:
    external = _external_bootstrap()
    if external:
        yield external
        return
    broker = BrokerSubprocess.start("--memory", "--default-partitions", "1")
    try:
        yield broker.bootstrap
    finally:
        code = broker.stop()
        assert code == 0, f"broker exited with {code}:\n{broker.log_text()[-4000:]}"


@pytest.fixture(params=["embedded", "apache-kafka"])
def broker_bootstrap(request: pytest.FixtureRequest) -> str:
    """Bootstrap address of the broker under test (see the module docstring)."""
    if request.param == "apache-kafka":
        return request.getfixturevalue("apache_kafka").bootstrap
    return request.getfixturevalue("_embedded_bootstrap")


@pytest.fixture
def own_broker_factory(tmp_path: Path) -> Iterator:
    """Start private broker processes (stopped at teardown); needs our broker, not an external one."""
    if _external_bootstrap():
        pytest.skip(f"{EXTERNAL_BOOTSTRAP_ENV} is set: this test needs the embedded broker's own process")
    started: list[BrokerSubprocess] = []

    def start(*args: str) -> BrokerSubprocess:
        broker = BrokerSubprocess.start(*args)
        started.append(broker)
        return broker

    yield start
    for broker in started:
        if broker.alive:
            broker.stop()


@pytest.fixture
def topic_name() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def group_name() -> str:
    return f"group-{uuid.uuid4().hex[:12]}"
