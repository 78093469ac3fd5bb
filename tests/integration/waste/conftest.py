"""The waste API as ``services.waste.api.main`` serves it (HTTP and gRPC on free ports) against the
session's broker, following the status topic and kpis.v1 like the real process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import httpx
import pytest

from madina.auth import write_credentials
from madina.bus import ensure_topics
from madina.bus.topics import KPIS
from madina.devservers.ports import free_port
from madina.serving import ApiServers
from madina_proto.waste.v1 import container_pb2
from madina_proto.waste.v1 import waste_service_pb2_grpc as pb_grpc
from services.waste.api.http import create_http_app
from services.waste.api.main import build_grpc_server, build_runtime
from services.waste.api.state import WasteRuntime
from services.waste.convert import status_to_pb
from services.waste.domain.containers import Container
from services.waste.domain.detector import ContainerStatus
from services.waste.settings import WasteSettings
from services.waste.topics import ALL
from tests.support.processor_kit import PARTITIONS

PRINCIPALS = {"sensor": ["waste:publish"], "dashboard": ["waste:read"], "operator": ["waste:read", "waste:plan"],
              "simulator": ["waste:publish", "waste:plan"]}  # as madina.domains grants the local simulator


@dataclass
class Api:
    runtime: WasteRuntime
    url: str
    channel: grpc.aio.Channel
    tokens: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[who]}"}

    def metadata(self, who: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[who]}"),)

    @property
    def stub(self) -> pb_grpc.WasteServiceStub:
        return pb_grpc.WasteServiceStub(self.channel)


@pytest.fixture
async def api(kafka_bootstrap: str, tmp_path: Path) -> AsyncIterator[Api]:
    await ensure_topics(kafka_bootstrap, [*ALL, KPIS], default_partitions=PARTITIONS)  # as the processor kit
    tokens = write_credentials(tmp_path / "credentials.yaml", PRINCIPALS)
    settings = WasteSettings(
        kafka_bootstrap=kafka_bootstrap, credentials_file=tmp_path / "credentials.yaml", grpc_insecure=True,
        waste_http_port=free_port(), waste_grpc_port=free_port(), waste_plan_time_limit_s=2,
    )
    runtime = build_runtime(settings)
    await runtime.producer.start()
    runtime.producer_ready = True
    feeds = [asyncio.create_task(runtime.follow_status_feed()), asyncio.create_task(runtime.follow_kpi_feed())]
    servers = ApiServers(settings, http_app=create_http_app(runtime), http_port=settings.waste_http_port,
                         grpc=build_grpc_server(runtime))
    await servers.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{settings.waste_grpc_port}")
    try:
        await asyncio.wait_for(runtime.status_feed_ready.wait(), 15)
        await asyncio.wait_for(runtime.kpi_feed_ready.wait(), 15)
        yield Api(runtime, f"http://127.0.0.1:{settings.waste_http_port}", channel, tokens)
    finally:
        await channel.close()
        await servers.stop()
        for feed in feeds:
            feed.cancel()
        await asyncio.gather(*feeds, return_exceptions=True)
        await runtime.producer.stop()


def status_record(container: Container, fill: float, rate: float, at: datetime) -> container_pb2.ContainerStatusChanged:
    """A status as the processor publishes it: ``fill`` at ``at``, rising ``rate`` per hour."""
    full = at + timedelta(hours=max(0.0, 0.8 - fill) / rate) if rate > 0 else None
    status = ContainerStatus(container.id, at, fill, rate, full, 21.0, 1.0, False, 80.0, None, ())
    return container_pb2.ContainerStatusChanged(status=status_to_pb(status, container))


async def served(api: Api, container_ids: list[str], fill: float) -> None:
    """Once the API's status feed serves ``fill`` for every container (bounded)."""
    for _ in range(150):
        if all(c in api.runtime.statuses and api.runtime.statuses[c].fill_ratio == fill for c in container_ids):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("the status feed did not serve the statuses")


@contextlib.asynccontextmanager
async def client(api: Api) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        yield http
