"""Benchmarks of the operations center: ingest rate into the store, SSE and WatchAlerts fan-out.

    python -m bench.operations            # a few minutes; medians of 3 ingest runs
    python -m bench.operations --quick    # well under a minute; one run, smaller volumes

1. **Ingest**: alert events pre-produced on ``alerts.v1`` are consumed by ``AlertIngest`` (the
   service's consumer: decode, validate, one ``apply_batch`` per poll, fan-out) into a fresh store,
   SQLite and PostgreSQL side by side (PostgreSQL from ``MADINA_BENCH_POSTGRES_URL`` or
   ``MADINA_TEST_POSTGRES_URL`` if it answers, else a private server started for the run).
   Rate = events / (last change applied - consumer ready).
2. **SSE fan-out**: 100 clients on ``/api/v1/stream`` of a real ``madina service operations``
   process; for each alert produced, the time until *all* 100 clients received it; p50/p99.
3. **WatchAlerts fan-out**: the same with 100 partner gRPC streams over TLS, one channel each.

Results go to ``bench/results/operations.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
from sqlalchemy import create_engine, make_url, text

from bench.stats import percentile
from madina.alerts import AlertDetails, AlertState, AlertTransition, Severity
from madina.bus import ALERT_ACTIONS, ALERTS, KPIS, EventProducer, ensure_topics
from madina.bus.alert_events import to_alert_event
from madina.devservers.launch import BrokerProcess, service_argv, wait_for_http
from madina.devservers.ports import free_port
from madina.devservers.postgres import PostgresUnavailable, server_url
from madina.domains import PARTNER, VIEWER
from madina.localsecrets import ensure_local_secrets
from madina.settings import MadinaSettings
from madina_proto.alerts.v1 import alerts_pb2 as pb
from madina_proto.alerts.v1 import alerts_pb2_grpc as pb_grpc
from services.operations.api.hub import ChangeHub
from services.operations.api.ingest import AlertIngest
from services.operations.store import AlertStore, migrate

RESULTS = Path(__file__).resolve().parents[1] / "results" / "operations.json"
CLIENTS = 100


def log(message: str) -> None:
    print(f"[bench.operations {time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- ingest -----------------------------------------------------------------------------------


def alert_event(
    alert_id: str,
    *,
    domain: str,
    revision: int = 1,
    district_id: str = "ain-sebaa",
    source_id: str = "station-1",
    observed: float = 42.0,
) -> pb.AlertEvent:
    """A raised PM2.5 alert as a domain publishes it (madina.bus.alert_events.to_alert_event)."""
    raised = datetime.now(UTC) - timedelta(minutes=5)
    transition = AlertTransition(
        alert_id=alert_id,
        domain=domain,
        source_id=source_id,
        rule_id="who-2021/pm25-24h",
        state=AlertState.RAISED,
        severity=Severity.MAJOR,
        observed_value=observed,
        threshold=15.0,
        raise_time=raised,
        clear_time=None,
        event_time=raised + timedelta(seconds=revision),
        revision=revision,
        message=f"PM2.5 {observed} ug/m3 above 15",
        details=AlertDetails(
            category="air-quality",
            source_kind="station",
            unit="ug/m3",
            standard_reference="WHO 2021",
            city_id="casablanca",
            district_id=district_id,
        ),
    )
    return to_alert_event(transition)


async def produce_events(bootstrap: str, count: int) -> None:
    """``count`` events: half the alerts raised, then each updated once (two revisions per alert)."""
    alerts = count // 2
    ids = [f"bench-{uuid.uuid4().hex[:12]}" for _ in range(alerts)]
    async with EventProducer(bootstrap, source="bench", linger_ms=20) as producer:
        pending = []
        for revision in (1, 2):
            for n, alert_id in enumerate(ids):
                event = alert_event(
                    alert_id,
                    revision=revision,
                    domain="bench",
                    district_id=f"d{n % 20}",
                    source_id=f"s{n % 500}",
                    observed=40.0 + revision,
                )
                pending.append(await producer.send(ALERTS, alert_id, event))
                if len(pending) >= 5000:
                    await asyncio.gather(*pending)
                    pending = []
        await asyncio.gather(*pending)


async def ingest_once(bootstrap: str, url: str, expected: int) -> float:
    """Events per second from consumer ready to the last change applied, into a fresh store."""
    await asyncio.to_thread(migrate, url)
    store = AlertStore(url)
    hub = ChangeHub(store)
    await hub.start()
    async with EventProducer(bootstrap, source="bench-dlq") as producer:
        ingest = AlertIngest(bootstrap, store, hub, producer, group_id=f"bench-{uuid.uuid4().hex[:8]}")
        task = asyncio.create_task(ingest.run())
        try:
            await asyncio.wait_for(ingest.ready.wait(), 60)
            started = time.perf_counter()
            while hub.last_seq < expected:
                if task.done():
                    task.result()
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
        finally:
            ingest.stop()
            await asyncio.wait_for(task, 30)
    store.close()
    return expected / elapsed


@contextmanager
def postgres_server() -> Iterator[str | None]:
    """The configured PostgreSQL if it answers, else a private one; None (SQLite only) without either."""
    configured = os.environ.get("MADINA_BENCH_POSTGRES_URL") or os.environ.get("MADINA_TEST_POSTGRES_URL")
    server = ExitStack()
    try:
        url: str | None = server.enter_context(server_url(configured))
    except PostgresUnavailable as reason:
        log(f"no PostgreSQL ({reason}); ingest runs on SQLite only")
        url = None
    with server:
        yield url


def fresh_postgres_schema(server: str) -> tuple[str, Callable[[], None]]:
    schema = f"bench_ops_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), drop


async def bench_ingest(bootstrap: str, events: int, runs: int, workdir: Path) -> dict[str, Any]:
    await ensure_topics(bootstrap, (ALERTS, ALERT_ACTIONS, KPIS), default_partitions=4)
    log(f"ingest: producing {events} alert events (2 revisions per alert) on {ALERTS.name}")
    await produce_events(bootstrap, events)
    with postgres_server() as server:
        dialects = ["sqlite"] + (["postgresql"] if server else [])
        rates: dict[str, list[float]] = {dialect: [] for dialect in dialects}
        for run in range(1, runs + 1):
            for dialect in dialects:  # interleaved, so both see the same machine state
                cleanup: Callable[[], None] = lambda: None  # noqa: E731
                if dialect == "sqlite":
                    url = f"sqlite:///{workdir / f'ingest-{run}.db'}"
                else:
                    assert server is not None
                    url, cleanup = fresh_postgres_schema(server)
                try:
                    rate = await ingest_once(bootstrap, url, events)
                finally:
                    cleanup()
                rates[dialect].append(rate)
                log(f"ingest run {run}/{runs} {dialect}: {rate:,.0f} events/s")
    return {
        "events": events,
        "runs": runs,
        "events_per_s": {
            dialect: {"median": statistics.median(values), "runs": values}
            for dialect, values in rates.items()
        },
    }


# -- fan-out ----------------------------------------------------------------------------------


class ServiceProcess:
    """``madina service operations`` as its own process, so clients do not share its interpreter."""

    def __init__(self, bootstrap: str, workdir: Path) -> None:
        # The secrets `madina up` makes for a one-machine city, under this run's directory.
        secrets = ensure_local_secrets(MadinaSettings(_env_file=None, data_dir=workdir))  # type: ignore[call-arg]
        credentials_file, cert, key = secrets.credentials_file, secrets.tls_cert_file, secrets.tls_key_file
        self.tokens = secrets.tokens
        self.tls_cert = cert.read_bytes()
        http_port, grpc_port = free_port(), free_port()
        self.http_url = f"http://127.0.0.1:{http_port}"
        self.grpc_target = f"localhost:{grpc_port}"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MADINA_")},
            "MADINA_KAFKA_BOOTSTRAP": bootstrap,
            "MADINA_CREDENTIALS_FILE": str(credentials_file),
            "MADINA_GRPC_TLS_CERT_FILE": str(cert),
            "MADINA_GRPC_TLS_KEY_FILE": str(key),
            "MADINA_DATABASE_URL": f"sqlite:///{workdir / 'fanout.db'}",
            "MADINA_OPERATIONS_HTTP_PORT": str(http_port),
            "MADINA_OPERATIONS_GRPC_PORT": str(grpc_port),
            "MADINA_OPERATIONS_CONSUMER_GROUP": f"bench-fanout-{uuid.uuid4().hex[:8]}",
            "MADINA_LOG_LEVEL": "WARNING",
        }
        self.process = subprocess.Popen(
            service_argv("operations"), env=env, cwd=workdir
        )
        wait_for_http(f"{self.http_url}/healthz", timeout_s=60, process=self.process)

    async def caught_up(self, bootstrap: str, timeout_s: float = 180.0, markers: int = 32) -> None:
        """Until the consumer has read the topics' backlog (the ingest benchmark's events), which
        live alerts would otherwise queue behind: markers produced now, on keys spread over every
        partition in all likelihood, are all visible."""
        domain = f"marker-{uuid.uuid4().hex[:8]}"
        async with EventProducer(bootstrap, source="bench") as producer:
            for n in range(markers):
                marker = f"{domain}-{n}"
                await producer.send_and_wait(ALERTS, marker, alert_event(marker, domain=domain))
        headers = {"Authorization": f"Bearer {self.tokens[VIEWER]}"}
        async with httpx.AsyncClient(base_url=self.http_url, headers=headers) as client:
            deadline = time.perf_counter() + timeout_s
            while True:
                reply = await client.get("/api/v1/alerts", params={"domain": domain, "limit": markers})
                if len(reply.json()["alerts"]) == markers:
                    return
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"the service did not catch up within {timeout_s} s")
                await asyncio.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def measure_fanout(
    bootstrap: str,
    alerts: int,
    rate_per_s: float,
    domain: str,
    received: dict[str, list[float]],
    all_connected: Awaitable[None],
) -> list[float]:
    """Produce ``alerts`` alerts; for each, seconds from produce to the last of CLIENTS receiving it."""
    await all_connected
    sent: dict[str, float] = {}
    async with EventProducer(bootstrap, source="bench", linger_ms=0) as producer:
        for _ in range(alerts):
            alert_id = f"fan-{uuid.uuid4().hex[:12]}"
            sent[alert_id] = time.perf_counter()
            await producer.send_and_wait(ALERTS, alert_id, alert_event(alert_id, domain=domain))
            await asyncio.sleep(1 / rate_per_s)
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline and any(len(received.get(a, ())) < CLIENTS for a in sent):  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    complete = [a for a in sent if len(received.get(a, ())) >= CLIENTS]
    if len(complete) < len(sent):
        log(f"  {len(sent) - len(complete)} alerts did not reach all {CLIENTS} clients within 30 s")
    return [max(received[a]) - sent[a] for a in complete]


async def bench_sse(
    service: ServiceProcess, bootstrap: str, alerts: int, rate_per_s: float
) -> dict[str, Any]:
    domain = f"sse-{uuid.uuid4().hex[:6]}"
    received: dict[str, list[float]] = {}
    connected = 0
    ready = asyncio.Event()

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal connected
        params = {"access_token": service.tokens[VIEWER], "domain": domain}
        async with http.stream("GET", "/api/v1/stream", params=params) as response:
            response.raise_for_status()
            connected += 1
            if connected == CLIENTS:
                ready.set()
            async for line in response.aiter_lines():
                if line.startswith("data:") and '"alert_id"' in line:
                    alert_id = json.loads(line[5:])["alert"]["alert_id"]
                    received.setdefault(alert_id, []).append(time.perf_counter())

    limits = httpx.Limits(max_connections=CLIENTS + 10, max_keepalive_connections=CLIENTS + 10)
    async with httpx.AsyncClient(
        base_url=service.http_url, limits=limits, timeout=httpx.Timeout(10, read=None)
    ) as http:
        tasks = [asyncio.create_task(client(http)) for _ in range(CLIENTS)]
        try:
            latencies = await measure_fanout(
                bootstrap, alerts, rate_per_s, domain, received, asyncio.wait_for(ready.wait(), 60)
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    return _summary(latencies, alerts, rate_per_s)


async def bench_watch(
    service: ServiceProcess, bootstrap: str, alerts: int, rate_per_s: float
) -> dict[str, Any]:
    domain = f"grpc-{uuid.uuid4().hex[:6]}"
    received: dict[str, list[float]] = {}
    credentials = grpc.ssl_channel_credentials(root_certificates=service.tls_cert)
    channels = [grpc.aio.secure_channel(service.grpc_target, credentials) for _ in range(CLIENTS)]
    metadata = [("authorization", f"Bearer {service.tokens[PARTNER]}")]
    subscribed = 0
    ready = asyncio.Event()

    async def partner(channel: grpc.aio.Channel) -> None:
        nonlocal subscribed
        call = pb_grpc.AlertServiceStub(channel).WatchAlerts(
            pb.WatchAlertsRequest(filter=pb.AlertFilter(domains=[domain])), metadata=metadata
        )
        await call.initial_metadata()
        subscribed += 1
        if subscribed == CLIENTS:
            ready.set()
        async for response in call:
            received.setdefault(response.change.alert.latest.alert_id, []).append(time.perf_counter())

    tasks = [asyncio.create_task(partner(channel)) for channel in channels]
    try:
        latencies = await measure_fanout(
            bootstrap, alerts, rate_per_s, domain, received, asyncio.wait_for(ready.wait(), 60)
        )
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for channel in channels:
            with suppress(Exception):
                await channel.close()
    return _summary(latencies, alerts, rate_per_s)


def _summary(latencies: list[float], alerts: int, rate_per_s: float) -> dict[str, Any]:
    return {
        "clients": CLIENTS,
        "alerts": alerts,
        "produce_rate_per_s": rate_per_s,
        "delivered_to_all": len(latencies),
        "p50_ms": percentile(latencies, 0.5) * 1000 if latencies else None,
        "p99_ms": percentile(latencies, 0.99) * 1000 if latencies else None,
        "max_ms": max(latencies) * 1000 if latencies else None,
    }


# -- main -------------------------------------------------------------------------------------


async def run(quick: bool) -> dict[str, Any]:
    events, runs, fan_alerts, rate = (4000, 1, 50, 20.0) if quick else (20000, 3, 200, 20.0)
    broker = BrokerProcess.start(memory=True, default_partitions=4)
    results: dict[str, Any] = {"quick": quick, "cpus": os.cpu_count()}
    try:
        with tempfile.TemporaryDirectory(prefix="bench-operations-") as tmp:
            workdir = Path(tmp)
            results["ingest"] = await bench_ingest(broker.bootstrap, events, runs, workdir)
            log(
                f"fan-out: starting `madina service operations`; {CLIENTS} clients, "
                f"{fan_alerts} alerts at {rate}/s"
            )
            service = ServiceProcess(broker.bootstrap, workdir)
            try:
                started = time.perf_counter()
                await service.caught_up(broker.bootstrap)
                log(f"service caught up with the topics' backlog in {time.perf_counter() - started:.1f} s")
                results["sse_fanout"] = await bench_sse(service, broker.bootstrap, fan_alerts, rate)
                log(
                    f"SSE fan-out: p50 {results['sse_fanout']['p50_ms']:.1f} ms, "
                    f"p99 {results['sse_fanout']['p99_ms']:.1f} ms"
                )
                results["watch_fanout"] = await bench_watch(service, broker.bootstrap, fan_alerts, rate)
                log(
                    f"WatchAlerts fan-out: p50 {results['watch_fanout']['p50_ms']:.1f} ms, "
                    f"p99 {results['watch_fanout']['p99_ms']:.1f} ms"
                )
            finally:
                service.stop()
    finally:
        broker.stop()
    return results


def print_table(results: dict[str, Any]) -> None:
    print()
    print(f"{'benchmark':44} {'result':>34}")
    print("-" * 79)
    ingest = results["ingest"]
    for dialect, values in ingest["events_per_s"].items():
        runs = ", ".join(f"{v:,.0f}" for v in values["runs"])
        print(f"{'ingest ' + dialect + ' (events/s, median)':44} {values['median']:>12,.0f}   runs: {runs}")
    for key, label in (("sse_fanout", "SSE fan-out"), ("watch_fanout", "WatchAlerts fan-out")):
        row = results[key]
        name = f"{label}, {row['clients']} clients, produce->all (ms)"
        print(
            f"{name:44} p50 {row['p50_ms']:7.1f}  p99 {row['p99_ms']:7.1f}  "
            f"({row['delivered_to_all']}/{row['alerts']})"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.operations", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one run, smaller volumes")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = asyncio.run(run(args.quick))
    results["runtime_s"] = time.perf_counter() - started
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print(f"\nwritten to {RESULTS} in {results['runtime_s']:.0f} s")
    return 0
