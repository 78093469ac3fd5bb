"""Every domain API holds partners to their limits, not only operations: environment, mobility,
energy and waste, each served as `madina service <name>-api` serves it (its settings, its
``serve``) over TCP, started once for the module with HTTPS, mutual TLS on gRPC (a partners' CA)
and principals with a tiny rate.

- HTTP: over its rate, 429 with Retry-After;
- gRPC: over its rate, RESOURCE_EXHAUSTED with retry-after;
- gRPC: a client without a certificate from the partners' CA fails the handshake;
- HTTP: plain HTTP on the TLS port gets no answer.

Each test uses its own principal, so no test spends another's rate.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import httpx
import pytest

from madina.auth import add_principal
from madina.devservers.launch import loopback_tls_context, wait_for_http
from madina.devservers.ports import free_port
from madina.grpc.tls import ensure_self_signed
from madina.ratelimit import Rate
from tests.support.certificates import ClientCertificate, TestAuthority
from tests.support.partners import bearer, call_code, https_client, tls_credentials

# Two calls, then nothing for 20 s: the third call of a test is always over the rate.
TINY = Rate(per_s=0.05, burst=2)


@dataclass(frozen=True)
class DomainApi:
    domain: str
    http_read: str  # a GET that needs the read scope
    grpc_read: str  # a unary read method, full name

    @property
    def component(self) -> str:
        return f"{self.domain}-api"

    @property
    def read_scope(self) -> str:
        return f"{self.domain}:read"


APIS = (
    DomainApi("environment", "/v1/stations", "/madina.environment.v1.EnvironmentService/ListStations"),
    DomainApi("mobility", "/v1/car-parks", "/madina.mobility.v1.MobilityService/ListRouteDelays"),
    DomainApi("energy", "/v1/faults", "/madina.energy.v1.EnergyService/ListFaults"),
    DomainApi("waste", "/v1/containers", "/madina.waste.v1.WasteService/ListContainers"),
)
PARTNERS = ("http-partner", "grpc-partner", "tls-partner")


@dataclass(frozen=True)
class RunningApi:
    api: DomainApi
    http_port: int
    grpc_port: int
    server_cert: bytes
    tokens: dict[str, str]

    @property
    def https_url(self) -> str:
        return f"https://localhost:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"localhost:{self.grpc_port}"


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority()


@pytest.fixture(scope="module")
def partner_cert(authority: TestAuthority) -> ClientCertificate:
    return authority.issue_client("casa-partner")


class _ApiLoop:
    """The four APIs served from one event loop in a thread of this process: real servers over TCP,
    without four interpreters importing the platform (that start-up is what the module would wait on)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="domain-apis", daemon=True)
        self._thread.start()
        self.served: list[concurrent.futures.Future[None]] = []

    def serve(self, api: DomainApi, values: dict[str, Any]) -> concurrent.futures.Future[None]:
        settings_class = getattr(importlib.import_module(f"services.{api.domain}.settings"),
                                 f"{api.domain.title()}Settings")
        serve = importlib.import_module(f"services.{api.domain}.api.main").serve
        served = asyncio.run_coroutine_threadsafe(serve(settings_class(_env_file=None, **values)), self.loop)
        self.served.append(served)
        return served

    def stop(self) -> None:
        for served in self.served:
            served.cancel()  # serve_domain_api stops its servers and producer on the way out
        concurrent.futures.wait(self.served, timeout=20)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


@pytest.fixture(scope="module")
def running(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory, authority: TestAuthority
) -> Iterator[dict[str, RunningApi]]:
    directory = tmp_path_factory.mktemp("domain-api-limits")
    cert, key = ensure_self_signed(directory / "tls")
    credentials_file = directory / "credentials.yaml"
    scopes = [api.read_scope for api in APIS]
    tokens = {name: add_principal(credentials_file, name, scopes, rate_limit=TINY) for name in PARTNERS[:2]}
    tokens["tls-partner"] = add_principal(credentials_file, "tls-partner", scopes)
    shared: dict[str, Any] = {
        "kafka_bootstrap": kafka_bootstrap,
        "credentials_file": credentials_file,
        "grpc_tls_cert_file": cert,
        "grpc_tls_key_file": key,
        "grpc_tls_client_ca_file": authority.write(directory / "partners-ca.pem"),
        "http_tls_cert_file": cert,
        "http_tls_key_file": key,
        "data_dir": directory / "data",
        "topic_partitions": 1,
        "log_format": "console",
    }
    apis = _ApiLoop()
    try:
        started: dict[str, RunningApi] = {}
        for api in APIS:
            http_port, grpc_port = free_port(), free_port()
            served = apis.serve(api, {**shared, f"{api.domain}_http_port": http_port,
                                      f"{api.domain}_grpc_port": grpc_port})
            started[api.domain] = RunningApi(api, http_port, grpc_port, cert.read_bytes(), tokens)
            served.add_done_callback(_fail_loudly(api))
        for running_api in started.values():
            wait_for_http(f"https://127.0.0.1:{running_api.http_port}/healthz", timeout_s=60,
                          tls=loopback_tls_context(cert))
        yield started
    finally:
        apis.stop()


def _fail_loudly(api: DomainApi) -> Any:
    def report(served: concurrent.futures.Future[None]) -> None:
        if not served.cancelled() and served.exception() is not None:
            print(f"{api.component} stopped: {served.exception()!r}")

    return report


@pytest.fixture(params=[api.domain for api in APIS])
def api(request: pytest.FixtureRequest, running: dict[str, RunningApi]) -> RunningApi:
    return running[request.param]


async def test_http_over_its_rate_gets_429_with_retry_after(api: RunningApi) -> None:
    token = api.tokens["http-partner"]
    async with https_client(api.https_url, api.server_cert) as client:
        replies = [await client.get(api.api.http_read, headers=bearer(token)) for _ in range(3)]

    assert [reply.status_code for reply in replies] == [200, 200, 429], replies[-1].text
    assert int(replies[2].headers["Retry-After"]) >= 1
    assert "http-partner is over its rate limit" in replies[2].json()["detail"]


async def test_grpc_over_its_rate_gets_resource_exhausted(api: RunningApi, partner_cert: ClientCertificate) -> None:
    token = api.tokens["grpc-partner"]
    credentials = tls_credentials(api.server_cert, partner_cert)
    async with grpc.aio.secure_channel(api.grpc_target, credentials) as channel:
        codes = [await call_code(channel, api.api.grpc_read, token) for _ in range(3)]

    assert [code for code, _, _ in codes[:2]] != [grpc.StatusCode.RESOURCE_EXHAUSTED] * 2
    code, trailers, details = codes[2]
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert int(trailers["retry-after"]) >= 1
    assert "grpc-partner is over its rate limit" in details


async def test_grpc_refuses_a_client_without_a_certificate_from_the_partners_ca(
    api: RunningApi, partner_cert: ClientCertificate
) -> None:
    token = api.tokens["tls-partner"]
    stranger = TestAuthority("someone else").issue_client("casa-partner")
    for client in (None, stranger):
        async with grpc.aio.secure_channel(api.grpc_target, tls_credentials(api.server_cert, client)) as channel:
            code, _, _ = await call_code(channel, api.api.grpc_read, token, timeout_s=5)
        assert code == grpc.StatusCode.UNAVAILABLE

    async with grpc.aio.secure_channel(api.grpc_target, tls_credentials(api.server_cert, partner_cert)) as channel:
        code, _, _ = await call_code(channel, api.api.grpc_read, token)
    assert code not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAUTHENTICATED)


async def test_http_serves_only_tls(api: RunningApi) -> None:
    async with https_client(api.https_url, api.server_cert) as client:
        assert (await client.get("/healthz")).status_code == 200
    async with httpx.AsyncClient(timeout=5) as plaintext:
        with pytest.raises(httpx.HTTPError):
            await plaintext.get(f"http://127.0.0.1:{api.http_port}/healthz")
