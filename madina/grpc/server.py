"""An asyncio gRPC server that every Madina service runs the same way.

It always registers ``grpc.health.v1`` (so compose and load balancers can probe it) and server
reflection (so grpcurl works without .proto files), serves TLS when given a certificate, applies
the per-agency auth interceptor when given credentials, answers every bad request with
``INVALID_ARGUMENT`` (``madina.grpc.errors``), bounds message sizes, and stops
gracefully: on :meth:`stop` it reports NOT_SERVING, refuses new calls and lets running ones finish
within a grace period.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from madina.grpc.errors import RequestErrorInterceptor

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 4 * 1024 * 1024


class GrpcServer:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        services: Sequence[tuple[Callable[[Any, grpc.aio.Server], None], Any, str]],
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        tls_cert_file: Path | None = None,
        tls_key_file: Path | None = None,
        tls_client_ca_file: Path | None = None,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ) -> None:
        """``services``: (add_XServicer_to_server, servicer, full service name) triples.

        With ``tls_client_ca_file`` the server requires mutual TLS: a client must present a
        certificate signed by that CA, or its handshake fails before any RPC (and any token) is seen.
        """
        self._server = grpc.aio.server(
            # Last, so it wraps the servicer itself: auth has already answered callers without a token.
            interceptors=[*interceptors, RequestErrorInterceptor()],
            options=[
                ("grpc.max_receive_message_length", max_message_bytes),
                ("grpc.max_send_message_length", max_message_bytes),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        self._service_names = [name for _, _, name in services]
        for add_to_server, servicer, _ in services:
            add_to_server(servicer, self._server)
        reflection.enable_server_reflection(
            [
                *self._service_names,
                health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                reflection.SERVICE_NAME,
            ],
            self._server,
        )
        address = f"{host}:{port}"
        if tls_cert_file and tls_key_file:
            credentials = grpc.ssl_server_credentials(
                [(tls_key_file.read_bytes(), tls_cert_file.read_bytes())],
                root_certificates=tls_client_ca_file.read_bytes() if tls_client_ca_file else None,
                require_client_auth=tls_client_ca_file is not None,
            )
            self.port = self._server.add_secure_port(address, credentials)
            self.secure = True
        else:
            self.port = self._server.add_insecure_port(address)
            self.secure = False
        self.host = host
        self.mutual_tls = self.secure and tls_client_ca_file is not None

    async def start(self) -> None:
        await self._server.start()
        for name in ["", *self._service_names]:
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        log.info(
            "grpc server listening",
            extra={
                "address": f"{self.host}:{self.port}",
                "tls": self.secure,
                "mutual_tls": self.mutual_tls,
                "services": self._service_names,
            },
        )

    async def stop(self, grace_s: float = 5.0) -> None:
        await self._health.enter_graceful_shutdown()
        await self._server.stop(grace_s)

    async def wait_for_termination(self) -> None:
        await self._server.wait_for_termination()
