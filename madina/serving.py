"""Serving a domain's APIs from its settings: one FastAPI app over uvicorn and gRPC servicers.

Every API process does the same: gRPC with TLS (and mutual TLS when a client CA is set) unless
MADINA_GRPC_INSECURE, the per-agency auth interceptor (tokens, scopes, rate limits from the
credentials), HTTP with TLS when MADINA_HTTP_TLS_* are set, both bound to MADINA_BIND_HOST. And
uvicorn must not take SIGTERM/SIGINT: the process-wide runner (madina.runtime) owns them and stops
the servers in order. :func:`grpc_server` and :class:`ApiServers` are that, once, and
:func:`serve_domain_api` is the whole life of a domain's API process around them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from typing import Any, Protocol

import grpc
import uvicorn

from madina.auth import Credentials
from madina.bus import EventProducer, ensure_topics
from madina.bus.topics import TopicSpec
from madina.grpc import AgencyAuthInterceptor, GrpcServer
from madina.grpc.revocation import RevocationList
from madina.http import uvicorn_tls_options
from madina.settings import ServiceSettings

log = logging.getLogger(__name__)

# (add_XServicer_to_server, servicer, full service name), as GrpcServer takes them.
Servicer = tuple[Callable[[Any, grpc.aio.Server], None], Any, str]


def grpc_server(
    settings: ServiceSettings,
    *,
    port: int,
    servicers: Sequence[Servicer],
    credentials: Credentials,
    required_scopes: Mapping[str, str],
) -> GrpcServer:
    """The servicers behind auth (scope per full method name), with TLS as the settings say."""
    tls = not settings.grpc_insecure
    revocations = (
        RevocationList(settings.grpc_tls_crl_file, settings.grpc_tls_client_ca_file)
        if tls and settings.grpc_tls_crl_file and settings.grpc_tls_client_ca_file else None
    )
    return GrpcServer(
        host=settings.bind_host,
        port=port,
        services=servicers,
        interceptors=[AgencyAuthInterceptor(credentials, required_scopes, revocations)],
        tls_cert_file=settings.grpc_tls_cert_file if tls else None,
        tls_key_file=settings.grpc_tls_key_file if tls else None,
        tls_client_ca_file=settings.grpc_tls_client_ca_file if tls else None,
    )


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handlers (uvicorn 0.54 installs them in ``capture_signals``)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServers:
    """HTTP and gRPC of one process: ``await start()``, then ``await wait()`` or ``await stop()``."""

    def __init__(
        self,
        settings: ServiceSettings,
        *,
        http_app: Any,
        http_port: int,
        grpc: GrpcServer | None = None,
        graceful_shutdown_s: int | None = None,
    ) -> None:
        self.grpc = grpc
        self.http = _QuietServer(uvicorn.Config(
            http_app, host=settings.bind_host, port=http_port, log_config=None, access_log=False,
            lifespan="off", timeout_graceful_shutdown=graceful_shutdown_s, **uvicorn_tls_options(settings),
        ))
        self._http_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Both servers listening (gRPC first: HTTP's /healthz says the process is up)."""
        if self.grpc is not None:
            await self.grpc.start()
        self._http_task = asyncio.create_task(self.http.serve(), name="http")
        while not self.http.started:
            if self._http_task.done():
                await self._http_task  # raises what stopped it (e.g. port in use)
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.02)

    @property
    def http_port(self) -> int:
        """The bound HTTP port (settings may say 0: any free port)."""
        return int(self.http.servers[0].sockets[0].getsockname()[1])

    @property
    def http_task(self) -> asyncio.Task[None]:
        assert self._http_task is not None, "start() first"
        return self._http_task

    async def wait(self) -> None:
        """Until the HTTP server stops (it raises what stopped it)."""
        await self.http_task

    async def stop(self, timeout_s: float = 5.0) -> None:
        self.http.should_exit = True
        if self.grpc is not None:
            await self.grpc.stop()
        if self._http_task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._http_task, timeout_s)


class DomainApiRuntime(Protocol):
    """What :func:`serve_domain_api` needs of a domain API's runtime object."""

    producer: EventProducer
    producer_ready: bool


async def serve_domain_api(
    settings: ServiceSettings,
    runtime: DomainApiRuntime,
    *,
    topics: Sequence[TopicSpec],
    http_app: Any,
    http_port: int,
    grpc: Any,
    followers: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
) -> None:
    """A domain API process from start to stop: create its topics (a deployment's init job may
    have done it already), start its producer, follow its feeds (status topics) in tasks, serve
    HTTP and gRPC until the runtime stops it, then stop all of it in reverse order."""
    await ensure_topics(
        settings.bootstrap_servers,
        topics,
        default_partitions=settings.topic_partitions,
        replication_factor=settings.topic_replication_factor,
    )
    await runtime.producer.start()
    runtime.producer_ready = True
    tasks = [start_follower(follow) for follow in followers]
    servers = ApiServers(settings, http_app=http_app, http_port=http_port, grpc=grpc)
    try:
        await servers.start()
        await servers.wait()
    finally:
        await servers.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await runtime.producer.stop()


FOLLOWER_RETRY_FIRST_S = 1.0
FOLLOWER_RETRY_MAX_S = 30.0


def start_follower(
    follow: Callable[[], Coroutine[Any, Any, None]],
    *,
    retry_first_s: float = FOLLOWER_RETRY_FIRST_S,
    retry_max_s: float = FOLLOWER_RETRY_MAX_S,
) -> asyncio.Task[None]:
    """``follow()`` in a task that starts it again, with a growing pause, whenever it fails or ends.

    A follower keeps a view of a feed (latest status by key) that the API serves: if it stopped,
    the API would go on serving a view that no longer moves. Following again reads the feed from
    its beginning, which rebuilds the same view, so a restart is always safe. Each failure is
    logged when it happens, with the pause before the next try.
    """
    name = getattr(follow, "__qualname__", "follower")

    async def follow_again() -> None:
        pause = retry_first_s
        while True:
            started = asyncio.get_running_loop().time()
            try:
                await follow()
            except Exception as error:
                log.error("feed follower failed: following its feed again", exc_info=error,
                          extra={"follower": name, "retry_in_s": pause})
            else:
                log.warning("feed follower ended: following its feed again",
                            extra={"follower": name, "retry_in_s": pause})
            # A follower that ran a good while before failing starts again from the first pause.
            if asyncio.get_running_loop().time() - started > retry_max_s:
                pause = retry_first_s
            await asyncio.sleep(pause)
            pause = min(pause * 2, retry_max_s)

    return asyncio.create_task(follow_again(), name=name)
