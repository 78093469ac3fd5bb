"""Partners held to their limits, against a real operations service over TCP: HTTPS and gRPC with
mutual TLS (and a revocation list re-read while serving), per-principal rate limits,
failed-authentication limits per address, and tokens that are revoked or expire while the server
runs (no restart).

One service for the module, started with HTTP TLS, a client CA for gRPC and small failed-auth
limits. Each test adds its own principal to the credentials file while the server runs (so every
test also proves the file is re-read), and so has its own rate bucket.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from madina.auth import RELOAD_CHECK_INTERVAL_S, add_principal
from madina.grpc.tls import ensure_self_signed
from madina.ratelimit import Rate
from madina_proto.alerts.v1 import alerts_pb2 as pb
from madina_proto.alerts.v1 import alerts_pb2_grpc as pb_grpc
from tests.support.certificates import ClientCertificate, TestAuthority
from tests.support.operations import RunningService, running_service
from tests.support.partners import bearer, https_client, tls_credentials
from tests.support.processes import BrokerProcess

FAILED_AUTH = Rate(per_s=2.0, burst=5)
# A change to the file is seen by the first call a check interval after it; polling adds a little.
RELOAD_BOUND_S = RELOAD_CHECK_INTERVAL_S + 0.5


@pytest.fixture(scope="module")
def authority() -> TestAuthority:
    return TestAuthority()


@pytest.fixture(scope="module")
def crl_file(tmp_path_factory: pytest.TempPathFactory, authority: TestAuthority) -> Path:
    """The partners' CA's revocation list, empty to begin with."""
    path = tmp_path_factory.mktemp("operations-partners-crl") / "partners.crl"
    path.write_bytes(authority.revocation_list([]))
    return path


@pytest.fixture(scope="module")
def service(
    tmp_path_factory: pytest.TempPathFactory, authority: TestAuthority, crl_file: Path
) -> Iterator[RunningService]:
    directory = tmp_path_factory.mktemp("operations-partners")
    cert, key = ensure_self_signed(directory / "tls")
    broker = BrokerProcess.start(memory=True, default_partitions=2)
    try:
        with running_service(
            directory,
            broker.bootstrap,
            f"sqlite:///{directory / 'operations.db'}",
            http_tls_cert_file=cert,
            http_tls_key_file=key,
            grpc_tls_client_ca_file=authority.write(directory / "partners-ca.pem"),
            grpc_tls_crl_file=crl_file,
            auth_failures_per_s=FAILED_AUTH.per_s,
            auth_failures_burst=FAILED_AUTH.burst,
        ) as running:
            yield running
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def client_cert(authority: TestAuthority) -> ClientCertificate:
    return authority.issue_client("casa-transport")


def https_url(service: RunningService) -> str:
    return f"https://localhost:{service.service.http_port}"


def https(service: RunningService, local_address: str = "127.0.0.1") -> httpx.AsyncClient:
    return https_client(https_url(service), service.tls_cert, local_address)


@pytest.fixture
async def stub(service: RunningService, client_cert: ClientCertificate) -> AsyncIterator[pb_grpc.AlertServiceStub]:
    async with grpc.aio.secure_channel(service.grpc_target, tls_credentials(service.tls_cert, client_cert)) as channel:
        yield pb_grpc.AlertServiceStub(channel)


async def new_partner(service: RunningService, name: str, **options) -> str:
    """Add a principal to the running service's credentials file; return its token once in force."""
    token = add_principal(service.settings.credentials_file, name, ["alerts:read"], **options)
    await asyncio.sleep(RELOAD_BOUND_S)
    return token


async def list_over_grpc(stub: pb_grpc.AlertServiceStub, token: str) -> grpc.StatusCode:
    try:
        await stub.ListAlerts(pb.ListAlertsRequest(page_size=1), metadata=[("authorization", f"Bearer {token}")],
                              timeout=10)
    except grpc.aio.AioRpcError as error:
        return error.code()
    return grpc.StatusCode.OK


async def until(check, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    """Seconds until ``await check()`` is true; fails after ``timeout_s``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, f"not true within {timeout_s} s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


# --- TLS -----------------------------------------------------------------------------------------


async def test_http_serves_tls_with_the_configured_certificate(service: RunningService) -> None:
    async with https(service) as client:
        reply = await client.get("/healthz")

    assert reply.status_code == 200
    async with httpx.AsyncClient(timeout=5) as plaintext:
        with pytest.raises(httpx.HTTPError):
            await plaintext.get(f"http://127.0.0.1:{service.service.http_port}/healthz")


async def test_grpc_refuses_a_client_without_a_certificate(service: RunningService) -> None:
    async with grpc.aio.secure_channel(service.grpc_target, tls_credentials(service.tls_cert)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.AlertServiceStub(channel).ListAlerts(
                pb.ListAlertsRequest(), metadata=[("authorization", f"Bearer {service.tokens['viewer']}")],
                timeout=5,
            )

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_grpc_refuses_a_certificate_signed_by_another_authority(service: RunningService) -> None:
    stranger = TestAuthority("someone else").issue_client("casa-transport")
    async with grpc.aio.secure_channel(service.grpc_target, tls_credentials(service.tls_cert, stranger)) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)

    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_grpc_serves_a_client_with_a_certificate_from_the_ca(
    service: RunningService, stub: pb_grpc.AlertServiceStub
) -> None:
    assert await list_over_grpc(stub, service.tokens["viewer"]) == grpc.StatusCode.OK


async def test_a_revoked_client_certificate_is_refused_without_a_restart(
    service: RunningService, authority: TestAuthority, crl_file: Path, client_cert: ClientCertificate
) -> None:
    leaving = authority.issue_client("leaving-partner")
    token = service.tokens["viewer"]
    async with grpc.aio.secure_channel(service.grpc_target, tls_credentials(service.tls_cert, leaving)) as channel:
        assert await list_over_grpc(pb_grpc.AlertServiceStub(channel), token) == grpc.StatusCode.OK

        replacement = crl_file.with_suffix(".new")
        replacement.write_bytes(authority.revocation_list([leaving]))
        replacement.replace(crl_file)
        await asyncio.sleep(RELOAD_BOUND_S)

        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await pb_grpc.AlertServiceStub(channel).ListAlerts(
                pb.ListAlertsRequest(page_size=1), metadata=[("authorization", f"Bearer {token}")], timeout=10)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert refused.value.details() == "client certificate revoked"
    async with grpc.aio.secure_channel(service.grpc_target, tls_credentials(service.tls_cert, client_cert)) as channel:
        assert await list_over_grpc(pb_grpc.AlertServiceStub(channel), token) == grpc.StatusCode.OK


# --- rate limits ---------------------------------------------------------------------------------


async def test_a_principal_over_its_rate_gets_429_with_retry_after_then_is_served_again(
    service: RunningService,
) -> None:
    token = await new_partner(service, "http-partner", rate_limit=Rate(per_s=1.0, burst=3))
    async with https(service) as client:
        replies = [await client.get("/api/v1/alerts?limit=1", headers=bearer(token)) for _ in range(5)]
        assert [reply.status_code for reply in replies] == [200, 200, 200, 429, 429]
        assert replies[3].headers["Retry-After"] == "1"
        assert "http-partner is over its rate limit" in replies[3].json()["detail"]

        await asyncio.sleep(int(replies[3].headers["Retry-After"]))
        assert (await client.get("/api/v1/alerts?limit=1", headers=bearer(token))).status_code == 200


async def test_a_principal_over_its_rate_gets_resource_exhausted_over_grpc(
    service: RunningService, stub: pb_grpc.AlertServiceStub
) -> None:
    token = await new_partner(service, "grpc-partner", rate_limit=Rate(per_s=0.5, burst=2))
    metadata = [("authorization", f"Bearer {token}")]
    for _ in range(2):
        await stub.ListAlerts(pb.ListAlertsRequest(page_size=1), metadata=metadata, timeout=10)

    with pytest.raises(grpc.aio.AioRpcError) as throttled:
        await stub.ListAlerts(pb.ListAlertsRequest(page_size=1), metadata=metadata, timeout=10)

    assert throttled.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert dict(throttled.value.trailing_metadata() or ())["retry-after"] == "2"
    assert "grpc-partner is over its rate limit" in (throttled.value.details() or "")


async def test_bad_tokens_from_one_address_are_refused_with_429_after_a_few(service: RunningService) -> None:
    # From 127.0.0.2, so this address's failures do not hold back the other tests' clients.
    async with https(service, local_address="127.0.0.2") as client:
        started = time.monotonic()
        codes = [
            (await client.get("/api/v1/alerts", headers=bearer(f"guess-{n}"))).status_code for n in range(100)
        ]
        elapsed = time.monotonic() - started
        last = await client.get("/api/v1/alerts", headers=bearer(service.tokens["viewer"]))

    answered = codes.count(401)
    assert FAILED_AUTH.burst <= answered <= FAILED_AUTH.burst + FAILED_AUTH.per_s * elapsed + 1
    assert codes.count(429) == 100 - answered
    # Even a right token from that address waits: otherwise guessing would only need one good try.
    assert last.status_code == 429 and int(last.headers["Retry-After"]) >= 1
    async with https(service) as elsewhere:
        assert (await elsewhere.get("/api/v1/alerts", headers=bearer(service.tokens["viewer"]))).status_code == 200


async def test_bad_tokens_over_grpc_become_resource_exhausted(
    service: RunningService, stub: pb_grpc.AlertServiceStub
) -> None:
    codes = [await list_over_grpc(stub, f"guess-{n}") for n in range(FAILED_AUTH.burst + 5)]
    try:
        assert codes[: FAILED_AUTH.burst] == [grpc.StatusCode.UNAUTHENTICATED] * FAILED_AUTH.burst
        assert codes[-1] == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        # 127.0.0.1 is every other test's address too: let its failures drain.
        await asyncio.sleep(FAILED_AUTH.burst / FAILED_AUTH.per_s)


# --- revocation and expiry without a restart -----------------------------------------------------


def madina_agency(service: RunningService, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "madina", "agency", "--file", str(service.settings.credentials_file), *argv],
        capture_output=True, text=True, timeout=60, check=True,
    )


async def test_madina_agency_add_then_revoke_takes_effect_on_the_running_server(
    service: RunningService, stub: pb_grpc.AlertServiceStub
) -> None:
    added = await asyncio.to_thread(madina_agency, service, "add", "short-lived", "--scopes", "alerts:read")
    token = added.stdout.strip()
    async with https(service) as client:

        async def http_works() -> bool:
            return (await client.get("/api/v1/alerts?limit=1", headers=bearer(token))).status_code == 200

        await until(http_works, RELOAD_BOUND_S)
        assert await list_over_grpc(stub, token) == grpc.StatusCode.OK

        await asyncio.to_thread(madina_agency, service, "revoke", "short-lived")

        async def http_refused() -> bool:
            return (await client.get("/api/v1/alerts?limit=1", headers=bearer(token))).status_code == 401

        await until(http_refused, RELOAD_BOUND_S)
    assert await list_over_grpc(stub, token) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_token_stops_working_when_it_expires(service: RunningService, stub: pb_grpc.AlertServiceStub) -> None:
    expires_at = datetime.now(UTC) + timedelta(seconds=RELOAD_BOUND_S + 1.5)
    token = await new_partner(service, "expiring", expires_at=expires_at)
    assert await list_over_grpc(stub, token) == grpc.StatusCode.OK

    async with https(service) as client:

        async def refused() -> bool:
            return (await client.get("/api/v1/alerts?limit=1", headers=bearer(token))).status_code == 401

        await until(refused, (expires_at - datetime.now(UTC)).total_seconds() + 0.5)
    assert datetime.now(UTC) >= expires_at
    assert await list_over_grpc(stub, token) == grpc.StatusCode.UNAUTHENTICATED


async def test_a_principal_removed_by_editing_the_file_is_refused(
    service: RunningService, stub: pb_grpc.AlertServiceStub
) -> None:
    token = await new_partner(service, "hand-edited")

    def remove_by_hand(path: Path) -> None:
        document = yaml.safe_load(path.read_text())
        del document["principals"]["hand-edited"]
        path.write_text(yaml.safe_dump(document))  # in place, as an editor would

    await asyncio.to_thread(remove_by_hand, service.settings.credentials_file)

    async def refused() -> bool:
        return await list_over_grpc(stub, token) == grpc.StatusCode.UNAUTHENTICATED

    await until(refused, RELOAD_BOUND_S)
