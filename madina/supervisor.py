"""`madina up`: the whole city on one machine, as separate processes under one supervisor.

Order: local secrets -> the embedded broker (unless MADINA_KAFKA_BOOTSTRAP points at a cluster) ->
every topic from the registry -> each domain's components, waiting on their health checks ->
the simulator. Children that die are restarted with back-off. Ctrl-C or SIGTERM stops them in
reverse order. Child logs (JSON) go to ``data/logs/<name>.log``; the console gets the URLs and
status lines only. Everything under ``data/`` is created owner-only (umask 077, logs 0600).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from madina.devservers.launch import answers_http, broker_argv, loopback_tls_context, madina_argv, service_argv
from madina.domains import Component, all_topics, discover, load_entry_point
from madina.localsecrets import ensure_local_secrets
from madina.privatefiles import open_private_append, private_directory, restrict_umask
from madina.settings import MadinaSettings, ServiceSettings, load_settings

READY_TIMEOUT_S = 90.0
MAX_RESTARTS = 5


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    health_url: str | None = None
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0
    urls: dict[str, str] = field(default_factory=dict)
    http_tls: ssl.SSLContext | None = None
    """Set when MADINA_HTTP_TLS_* are: the child's HTTP may then be https (see :meth:`healthy`)."""

    def healthy(self) -> bool:
        if self.health_url is None:
            return True
        if answers_http(self.health_url, self.http_tls):
            return True
        # With HTTP TLS configured the services' APIs serve https on the port their plugin names
        # with http:// (a processor's health page stays plain). The answer tells which; from then
        # on the child's health and printed URLs on that port say https.
        if self.http_tls is not None and self.health_url.startswith("http://"):
            secure = _with_scheme(self.health_url, "https")
            if answers_http(secure, self.http_tls):
                self._say_https(urlsplit(self.health_url).netloc)
                return True
        return False

    def _say_https(self, netloc: str) -> None:
        def secured(url: str) -> str:
            parts = urlsplit(url)
            return _with_scheme(url, "https") if parts.scheme == "http" and parts.netloc == netloc else url

        self.health_url = secured(self.health_url) if self.health_url else None
        self.urls = {label: secured(url) for label, url in self.urls.items()}

    def start(self) -> None:
        log_file = open_private_append(self.log_path)
        try:
            self.process = subprocess.Popen(
                self.argv, env=self.env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            os.close(log_file)
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _say(message: str) -> None:
    print(f"madina up: {message}", flush=True)


def _port_open(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _with_scheme(url: str, scheme: str) -> str:
    return urlunsplit(urlsplit(url)._replace(scheme=scheme))


def _wait_ready(child: Child, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(
                f"{child.name} exited with {child.process.returncode if child.process else '?'}; "
                f"see {child.log_path}"
            )
        if child.healthy():
            return
        time.sleep(0.25)
    raise TimeoutError(f"{child.name} not healthy within {timeout_s:.0f} s; see {child.log_path}")


def _start_broker(settings: MadinaSettings, env: dict[str, str]) -> Child:
    port = settings.embedded_broker_port
    if _port_open("127.0.0.1", port):
        raise SystemExit(
            f"madina up: port {port} is already in use; stop what runs there or set MADINA_EMBEDDED_BROKER_PORT"
        )
    broker = Child(
        name="broker",
        argv=broker_argv(port=port, data_dir=settings.data_dir / "broker",
                         default_partitions=settings.topic_partitions, auto_create=False),
        env=env,
        log_path=settings.data_dir / "logs" / "broker.log",
    )
    broker.start()
    deadline = time.monotonic() + 30
    while not _port_open("127.0.0.1", port):
        if not broker.alive() or time.monotonic() > deadline:
            raise SystemExit(f"madina up: the embedded broker did not start; see {broker.log_path}")
        time.sleep(0.1)
    return broker


def _start_apache_kafka(settings: MadinaSettings):  # type: ignore[no-untyped-def]
    """Apache Kafka on the embedded broker's port and data folder, so nothing else changes."""
    from madina.devservers.apache_kafka import ApacheKafkaCluster, KafkaUnavailable

    port = settings.embedded_broker_port
    if _port_open("127.0.0.1", port):
        raise SystemExit(
            f"madina up: port {port} is already in use; stop what runs there or set MADINA_EMBEDDED_BROKER_PORT"
        )
    try:
        return ApacheKafkaCluster.start(
            (settings.data_dir / "apache-kafka").resolve(),
            nodes=1,
            ports=[port],
            # As in deploy/compose.yaml: services create their topics; auto-creation would hide a missing one.
            config={"auto.create.topics.enable": "false", "num.partitions": str(settings.topic_partitions)},
        )
    except KafkaUnavailable as error:
        raise SystemExit(f"madina up: Apache Kafka cannot run here: {error}") from error


def _child_env(settings: MadinaSettings) -> dict[str, str]:
    secrets = ensure_local_secrets(settings)
    env = dict(os.environ)
    env.setdefault("MADINA_CREDENTIALS_FILE", str(secrets.credentials_file.resolve()))
    env.setdefault("MADINA_GRPC_TLS_CERT_FILE", str(secrets.tls_cert_file.resolve()))
    env.setdefault("MADINA_GRPC_TLS_KEY_FILE", str(secrets.tls_key_file.resolve()))
    env.setdefault("MADINA_ALERT_SIGNING_KEY_FILE", str(secrets.alert_signing_key_file.resolve()))
    env["MADINA_KAFKA_BOOTSTRAP"] = settings.bootstrap_servers
    env["MADINA_SIMULATOR_TOKEN"] = secrets.tokens["simulator"]
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def _children_environment(env: dict[str, str]) -> Iterator[None]:
    """Settings and plugins read here see what the children will see."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _http_tls(env: dict[str, str]) -> ssl.SSLContext | None:
    """How to reach the children's HTTPS on loopback, when MADINA_HTTP_TLS_CERT_FILE is set."""
    with _children_environment(env):
        cert_file = load_settings(ServiceSettings).http_tls_cert_file
    return loopback_tls_context(cert_file) if cert_file is not None else None


def _component_child(
    component: Component, env: dict[str, str], logs: Path, http_tls: ssl.SSLContext | None = None
) -> Child:
    # Components read their ports from settings; resolve URLs with the children's environment.
    with _children_environment(env):
        health_url, urls = component.health_url(), component.urls()
    return Child(
        name=component.name,
        argv=service_argv(component.name),
        env=env,
        log_path=logs / f"{component.name}.log",
        health_url=health_url,
        urls=urls,
        http_tls=http_tls,
    )


async def _create_topics(settings: MadinaSettings) -> list[str]:
    from madina.bus.admin import ensure_topics, wait_for_broker

    await wait_for_broker(settings.bootstrap_servers, timeout_s=30)
    return await ensure_topics(
        settings.bootstrap_servers,
        all_topics(),
        default_partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
    )


def run_city(*, city: str, rate: float, simulate: bool, kafka: str = "embedded") -> int:
    settings = load_settings(MadinaSettings)
    # Logs, the SQLite store, broker segments and secrets are the owner's alone; children inherit this.
    restrict_umask()
    private_directory(settings.data_dir)
    env = _child_env(settings)
    # The simulator feeds one city: services that watched the others would see them silent.
    env.setdefault("MADINA_CITIES", json.dumps([city]))
    logs = settings.data_dir / "logs"
    children: list[Child] = []
    apache_kafka = None
    local_stops: list[Callable[[], object]] = []  # Domain.local_servers, stopped after the children
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    def forward_reload(signum: int, frame: object) -> None:
        # SIGHUP means "re-read the credentials file" to the services that serve users (those
        # with URLs). The supervisor has nothing to reload and must not die of it; processors
        # and the broker hold no credentials, and a faust worker would die of it.
        for child in children:
            if child.urls and child.alive() and child.process is not None:
                child.process.send_signal(signal.SIGHUP)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGHUP, forward_reload)
    try:
        if settings.uses_embedded_broker and kafka == "apache":
            _say("starting Apache Kafka (KRaft, one node)...")
            apache_kafka = _start_apache_kafka(settings)
            _say(f"Apache Kafka on {settings.bootstrap_servers} (data in {settings.data_dir / 'apache-kafka'})")
        elif settings.uses_embedded_broker:
            children.append(_start_broker(settings, env))
            _say(f"embedded broker on {settings.bootstrap_servers} (data in {settings.data_dir / 'broker'})")
        else:
            _say(f"using Kafka at {settings.bootstrap_servers}")
        created = asyncio.run(_create_topics(settings))
        _say(f"{len(created)} topics created" if created else "topics already exist")
        http_tls = _http_tls(env)
        for domain in discover():
            for server in domain.local_servers:
                local_stops.append(load_entry_point(server)(settings.data_dir, env))  # type: ignore[arg-type]
                _say(f"{domain.name}: started {server.rpartition(':')[2]}")
        for domain in discover():
            for component in domain.components:
                child = _component_child(component, env, logs, http_tls)
                child.start()
                children.append(child)
        for child in children:
            if stopping:
                break
            _wait_ready(child)
            _say(f"{child.name} ready")
        if simulate and not stopping:
            simulator = Child(
                name="simulator",
                argv=madina_argv("simulate", "--city", city, "--rate", str(rate)),
                env=env,
                log_path=logs / "simulator.log",
            )
            simulator.start()
            children.append(simulator)
            _say(f"simulator streaming {city} at {rate:g} observations/s")
        _print_urls(children, ensure_local_secrets(settings).tokens, logs)
        while not stopping:
            if apache_kafka is not None and not all(node.alive() for node in apache_kafka.nodes):
                raise RuntimeError(f"Apache Kafka exited; see {apache_kafka.nodes[0].log_path}")
            for child in children:
                if not child.alive() and not stopping:
                    _restart(child)
            time.sleep(0.5)
    except (RuntimeError, TimeoutError) as error:
        _say(f"failed: {error}")
        return 1
    finally:
        _say("stopping")
        for child in reversed(children):
            child.stop()
        for stop_local_server in reversed(local_stops):
            stop_local_server()
        if apache_kafka is not None:
            apache_kafka.stop()
        _say("stopped")
    return 0


def _restart(child: Child) -> None:
    if child.restarts >= MAX_RESTARTS:
        raise RuntimeError(f"{child.name} keeps exiting; see {child.log_path}")
    child.restarts += 1
    # Back off so a crash loop does not spin the machine.
    time.sleep(min(30.0, 2.0**child.restarts))
    _say(
        f"{child.name} exited ({child.process.returncode if child.process else '?'}); restart {child.restarts}"
    )
    child.start()


def _print_urls(children: list[Child], tokens: dict[str, str], logs: Path) -> None:
    lines = ["", "Madina is up. Open:"]
    for child in children:
        for label, url in child.urls.items():
            lines.append(f"  {label:28} {url.replace('{operator_token}', tokens.get('operator', ''))}")
    lines += [
        "",
        "Tokens for this machine (data/secrets/tokens.yaml):",
        *(f"  {name:14} {token}" for name, token in sorted(tokens.items())),
        f"Logs: {logs}/<process>.log    Stop: Ctrl-C",
        "",
    ]
    print("\n".join(lines), flush=True)
