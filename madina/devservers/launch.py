"""The command lines of Madina's own processes, written once: `madina up`, the tests and the
benchmarks start the embedded broker and the services through here.

:class:`BrokerProcess` starts the embedded broker and waits for the line it prints when it
listens; :class:`ServiceProcess` starts a component (``madina service NAME``) in its own session
and waits for its health URL; :func:`wait_for_http` polls one (https too, with :func:`loopback_tls_context`).
"""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

BROKER_READY_LINE = "madina broker listening on "


def madina_argv(*args: str) -> list[str]:
    """``python -m madina ARGS`` with this interpreter."""
    return [sys.executable, "-m", "madina", *args]


def service_argv(name: str) -> list[str]:
    return madina_argv("service", name)


def broker_argv(
    *,
    port: int = 0,
    data_dir: Path | None = None,
    default_partitions: int = 1,
    auto_create: bool = True,
    initial_rebalance_delay_ms: int | None = None,
) -> list[str]:
    """The embedded broker; in memory unless ``data_dir``. ``initial_rebalance_delay_ms=0`` suits
    tests that start group members one at a time and wait on readiness (Kafka's own harness does
    the same); the default keeps Kafka's 3 s wait for more members."""
    argv = madina_argv("broker", "--port", str(port), "--default-partitions", str(default_partitions))
    argv += ["--data-dir", str(data_dir)] if data_dir is not None else ["--memory"]
    if not auto_create:
        argv.append("--no-auto-create")
    if initial_rebalance_delay_ms is not None:
        argv += ["--group-initial-rebalance-delay-ms", str(initial_rebalance_delay_ms)]
    return argv


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
        initial_rebalance_delay_ms: int | None = 0,
        log_path: Path | None = None,
        timeout_s: float = 20.0,
    ) -> BrokerProcess:
        """The broker, once it listens; its log goes to ``log_path`` (else this process's stderr)."""
        argv = broker_argv(port=port, data_dir=None if memory and data_dir is None else data_dir,
                           default_partitions=default_partitions,
                           initial_rebalance_delay_ms=initial_rebalance_delay_ms)
        stderr: IO[Any] | None = log_path.open("ab") if log_path is not None else None
        try:
            process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=stderr, text=True,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
        finally:
            if stderr is not None:
                stderr.close()
        deadline = time.monotonic() + timeout_s
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith(BROKER_READY_LINE):
                return cls(process, line[len(BROKER_READY_LINE):].strip())
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


@dataclass
class ServiceProcess:
    """A component in a session of its own (so kill -9 takes its children too), logging to a file."""

    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_path: Path,
        *,
        health_url: str | None = None,
        health_tls: ssl.SSLContext | None = None,
        cwd: Path | None = None,
        timeout_s: float = 60.0,
    ) -> ServiceProcess:
        with log_path.open("ab") as log:
            process = subprocess.Popen(list(argv), env=dict(env), stdout=log, stderr=subprocess.STDOUT,
                                       cwd=cwd, start_new_session=True)
        started = cls(process, log_path)
        if health_url is not None:
            try:
                wait_for_http(health_url, timeout_s=timeout_s, process=process, tls=health_tls)
            except Exception as error:
                started.kill()
                raise RuntimeError(f"{error}\n--- {log_path.name} ---\n{log_path.read_text()[-4000:]}") from error
        return started

    def kill(self) -> None:
        """kill -9: no flush, no commit, no goodbye."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()


def loopback_tls_context(cert_file: Path) -> ssl.SSLContext:
    """A client context trusting exactly the server certificate ``cert_file`` (MADINA_HTTP_TLS_CERT_FILE).

    For probing our own services on loopback: the certificate is pinned (trusted as it is, even
    when a CA signed it), and its names are not checked, since they name the public host, not 127.0.0.1.
    """
    context = ssl.create_default_context(cafile=str(cert_file))
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    context.check_hostname = False
    return context


def answers_http(url: str, tls: ssl.SSLContext | None = None, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` answers 2xx now (an https URL is checked with ``tls``)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s, context=tls) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def wait_for_http(
    url: str, timeout_s: float = 30.0, process: subprocess.Popen[Any] | None = None,
    tls: ssl.SSLContext | None = None,
) -> None:
    """Poll ``url`` until it answers 2xx; fail early if ``process`` died. ``tls`` checks an https URL."""
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=2, context=tls) as response:
                if 200 <= response.status < 300:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last_error = error
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready within {timeout_s} s: {last_error}")
