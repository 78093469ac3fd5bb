"""The mobility API in the test process, built as ``services.mobility.api.main`` builds it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from madina.auth import write_credentials
from madina.bus import ensure_topics
from madina.serving import ApiServers
from services.mobility.api.http import create_http_app
from services.mobility.api.main import build_runtime
from services.mobility.api.state import MobilityRuntime
from services.mobility.settings import MobilitySettings
from services.mobility.topics import ALL

PRINCIPALS = {"operator-feed": ["mobility:publish"], "other-operator": ["mobility:publish"],
              "dashboard": ["mobility:read"]}


@dataclass
class MobilityApi:
    runtime: MobilityRuntime
    url: str
    tokens: dict[str, str]

    def headers(self, principal: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[principal]}", **extra}


@contextlib.asynccontextmanager
async def running_mobility_api(bootstrap: str, directory: Path) -> AsyncIterator[MobilityApi]:
    await ensure_topics(bootstrap, ALL, default_partitions=2)
    tokens = write_credentials(directory / "credentials.yaml", PRINCIPALS)
    settings = MobilitySettings(kafka_bootstrap=bootstrap, credentials_file=directory / "credentials.yaml",
                                grpc_insecure=True, mobility_http_port=0)
    runtime = build_runtime(settings)
    await runtime.producer.start()
    runtime.producer_ready = True
    feeds = [asyncio.create_task(follow()) for follow in (
        runtime.follow_status_feed, runtime.follow_car_park_feed, runtime.follow_ridership_feed,
        runtime.follow_pushed_entities)]
    servers = ApiServers(settings, http_app=create_http_app(runtime), http_port=0)
    try:
        for ready in (runtime.status_feed_ready, runtime.car_park_feed_ready, runtime.ridership_feed_ready,
                      runtime.pushed_feeds_ready):
            await asyncio.wait_for(ready.wait(), 20)
        await servers.start()
        yield MobilityApi(runtime, f"http://127.0.0.1:{servers.http_port}", tokens)
    finally:
        await servers.stop()
        for feed in feeds:
            feed.cancel()
        await asyncio.gather(*feeds, return_exceptions=True)
        await runtime.producer.stop()


@contextlib.asynccontextmanager
async def producer_feed_at(serve: Callable[[web.Request], Awaitable[web.Response]]) -> AsyncIterator[str]:
    """A producer's GTFS-Realtime feed over real HTTP on loopback: ``serve`` answers GET /feed.pb at the URL yielded."""
    app = web.Application()
    app.router.add_get("/feed.pb", serve)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/feed.pb"
    finally:
        await runner.cleanup()
