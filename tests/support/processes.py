"""Start Madina processes for tests and wait on their readiness instead of sleeping."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

READY_LINE = "madina broker listening on "


@dataclass
class BrokerProcess:
    process: subprocess.Popen[str]
    bootstrap: str

    @classmethod
    def start(
        cls,
        *,
        memory: bool = True,
        data_dir: Path | None = None,
        default_partitions: int = 1,
        port: int = 0,
        timeout_s: float = 20.0,
    ) -> BrokerProcess:
        argv = [
            sys.executable,
            "-m",
            "madina",
            "broker",
            "--port",
            str(port),
            "--default-partitions",
            str(default_partitions),
            # As Kafka's own test harness does: these tests start group members one at a time and
            # wait on readiness, so Kafka's 3 s wait for more members would only slow them down.
            # The compatibility suite keeps the default and tests the delay itself.
            "--group-initial-rebalance-delay-ms",
            "0",
        ]
        argv += ["--data-dir", str(data_dir)] if data_dir is not None else ["--memory"]
        process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"}
        )
        deadline = time.monotonic() + timeout_s
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(READY_LINE):
                return cls(process, line[len(READY_LINE) :].strip())
        process.kill()
        raise RuntimeError(f"broker did not report readiness within {timeout_s} s (exit {process.poll()})")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


def wait_for_http(url: str, timeout_s: float = 30.0, process: subprocess.Popen | None = None) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``process`` died."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if 200 <= response.status < 300:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_error = error
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {timeout_s} s: {last_error}")
