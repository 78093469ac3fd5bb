"""Run the operations service for tests: a fresh broker, a fresh store, real HTTP and gRPC servers.

The service runs in a thread with its own event loop (exactly what ``madina service operations``
runs, minus signal handling), so tests talk to it only over TCP, like any client, and may use
their own event loops freely. Shared by the operations integration tests and the e2e test.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import create_engine, make_url, text

from madina.auth import write_credentials
from madina.grpc.tls import ensure_self_signed
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.common.v1 import common_pb2
from services.operations.api.main import OperationsService
from services.operations.settings import OperationsSettings

POSTGRES_URL_VARIABLE = "MADINA_TEST_POSTGRES_URL"
_SSL_CONTEXT = ssl.create_default_context()
PRINCIPALS = {
    "operator": ["alerts:read", "alerts:write", "alerts:ack"],
    "viewer": ["alerts:read"],
    "partner": ["alerts:read", "alerts:ack"],
    "nobody": [],
}


@dataclass
class RunningService:
    service: OperationsService
    tokens: dict[str, str]
    tls_cert: bytes
    http_url: str
    grpc_target: str
    settings: OperationsSettings

    def auth(self, principal: str = "operator") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[principal]}"}

    def http(self, principal: str | None = "operator", **options: Any) -> httpx.AsyncClient:
        """An HTTP client of the service, authenticated as ``principal`` (None: anonymous)."""
        headers = self.auth(principal) if principal else {}
        # Building an SSL context costs ~0.2 s on a slow CPU; the service is plain HTTP anyway.
        return httpx.AsyncClient(
            base_url=self.http_url,
            headers=headers,
            verify=_SSL_CONTEXT,
            timeout=options.pop("timeout", 15),
            **options,
        )


class ServiceThread:
    """An OperationsService on its own event loop in a daemon thread."""

    def __init__(self, settings: OperationsSettings) -> None:
        self.settings = settings
        self.service = OperationsService(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="operations-service", daemon=True)

    def start(self, timeout_s: float = 60.0) -> OperationsService:
        self._thread.start()
        try:
            self.call(self._start, timeout_s)
        except BaseException:
            self.stop()
            raise
        return self.service

    async def _start(self) -> None:
        await self.service.start()
        await self.service.wait_ready()

    def call(self, factory: Callable[[], Any], timeout_s: float = 30.0) -> Any:
        """Run ``factory()`` (a coroutine) on the service's loop and return its result."""
        future: Future[Any] = asyncio.run_coroutine_threadsafe(factory(), self._loop)
        return future.result(timeout_s)

    def stop(self) -> None:
        try:
            self.call(self.service.stop, 30.0)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def write_test_secrets(directory: Path) -> tuple[Path, dict[str, str], Path, Path]:
    credentials_file = directory / "credentials.yaml"
    tokens = write_credentials(credentials_file, PRINCIPALS)
    cert, key = ensure_self_signed(directory / "tls")
    return credentials_file, tokens, cert, key


def make_settings(
    directory: Path, bootstrap: str, database_url: str, **overrides: Any
) -> tuple[OperationsSettings, dict[str, str], bytes]:
    credentials_file, tokens, cert, key = write_test_secrets(directory)
    values: dict[str, Any] = {
        "credentials_file": credentials_file,
        "grpc_tls_cert_file": cert,
        "grpc_tls_key_file": key,
        "kafka_bootstrap": bootstrap,
        "database_url": database_url,
        "operations_http_port": 0,
        "operations_grpc_port": 0,
        "topic_partitions": 2,
        "operations_consumer_group": f"madina-operations-{uuid.uuid4().hex[:8]}",
        "log_format": "console",
        **overrides,
    }
    return OperationsSettings(_env_file=None, **values), tokens, cert.read_bytes()  # type: ignore[call-arg]


@contextmanager
def running_service(
    directory: Path, bootstrap: str, database_url: str, **overrides: Any
) -> Iterator[RunningService]:
    settings, tokens, cert = make_settings(directory, bootstrap, database_url, **overrides)
    thread = ServiceThread(settings)
    service = thread.start()
    try:
        yield RunningService(
            service=service,
            tokens=tokens,
            tls_cert=cert,
            settings=settings,
            http_url=f"http://127.0.0.1:{service.http_port}",
            grpc_target=f"localhost:{service.grpc_port}",
        )
    finally:
        thread.stop()


@contextmanager
def postgres_schema_url() -> Iterator[str | None]:
    """A URL into a fresh PostgreSQL schema (dropped afterwards), or None when none is configured."""
    server = os.environ.get(POSTGRES_URL_VARIABLE)
    if not server:
        yield None
        return
    admin = create_engine(server, connect_args={"connect_timeout": 3})
    schema = f"ops_api_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception:  # unreachable server: the caller skips
        admin.dispose()
        yield None
        return
    try:
        url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()


def timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def alert_event(
    alert_id: str,
    *,
    revision: int = 1,
    domain: str = "environment",
    rule_id: str = "who-2021/pm25-24h",
    severity: int = alerts_pb2.SEVERITY_MAJOR,
    state: int = alerts_pb2.ALERT_STATE_RAISED,
    district_id: str = "ain-sebaa",
    city_id: str = "casablanca",
    source_id: str = "station-1",
    observed: float = 42.0,
    raise_time: datetime | None = None,
    event_time: datetime | None = None,
    labels: dict[str, str] | None = None,
) -> alerts_pb2.AlertEvent:
    raised = raise_time or datetime.now(UTC) - timedelta(minutes=5)
    event = alerts_pb2.AlertEvent(
        alert_id=alert_id,
        revision=revision,
        domain=domain,
        category="air-quality",
        rule_id=rule_id,
        source=common_pb2.EntityRef(domain=domain, kind="station", entity_id=source_id),
        severity=severity,
        state=state,
        observed_value=observed,
        threshold_value=15.0,
        unit="ug/m3",
        raise_time=timestamp(raised),
        event_time=timestamp(event_time or raised + timedelta(seconds=revision)),
        message=f"PM2.5 {observed} ug/m3 above 15",
        standard_reference="WHO 2021",
        district=common_pb2.District(
            city_id=city_id, district_id=district_id, display_name=district_id.title()
        ),
        location=common_pb2.GeoPoint(latitude_deg=33.6, longitude_deg=-7.5),
        labels=labels or {},
    )
    if state == alerts_pb2.ALERT_STATE_CLEARED:
        event.clear_time.CopyFrom(event.event_time)
    return event


def new_id(prefix: str = "alert") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def eventually(check: Callable[[], Any], timeout_s: float = 10.0, interval_s: float = 0.05) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    last: Any = None
    while loop.time() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(f"condition not met within {timeout_s} s (last: {last!r})")
