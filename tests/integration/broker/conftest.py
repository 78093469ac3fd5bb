"""Fixtures for the broker compatibility suite: a broker in its own process, reached over TCP.

``broker_bootstrap`` is the address every compatibility test talks to. It is parametrized:

- ``embedded``: ``python -m madina.broker --port 0 --memory`` in a subprocess, shared by the
  session; or, when ``MADINA_TEST_KAFKA_BOOTSTRAP`` is set, that external Kafka instead;
- ``apache-kafka``: Apache Kafka itself (the pinned release from Maven Central, one KRaft node,
  see ``madina.devservers.apache_kafka``), with the same assertions; skipped with the reason when
  Java or the artifacts cannot be had.

``own_broker`` starts a private broker process per test (durability and fuzz tests, which
kill, corrupt or restart it); those tests skip when an external Kafka is configured.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

READY_PREFIX = "madina broker listening on "
EXTERNAL_BOOTSTRAP_ENV = "MADINA_TEST_KAFKA_BOOTSTRAP"
REPO_ROOT = Path(__file__).resolve().parents[3]


@dataclass
class BrokerSubprocess:
    """``python -m madina.broker`` with its address parsed from the readiness line."""

    process: subprocess.Popen
    bootstrap: str
    stderr_lines: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, *extra_args: str, timeout_s: float = 20.0) -> BrokerSubprocess:
        argv = [sys.executable, "-m", "madina.broker", "--port", "0", *extra_args]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO_ROOT)}
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO_ROOT
        )
        stderr_lines: list[str] = []
        threading.Thread(target=_collect, args=(process.stderr, stderr_lines), daemon=True).start()
        assert process.stdout is not None
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(READY_PREFIX):
                return cls(process, line[len(READY_PREFIX) :].strip(), stderr_lines)
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
