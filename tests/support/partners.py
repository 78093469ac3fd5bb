"""Calling a Madina API as a partner would: HTTPS trusting the service's certificate, bearer
tokens, gRPC over (mutual) TLS. Shared by the partner-access tests of every service."""

from __future__ import annotations

import ssl

import grpc
import httpx

from tests.support.certificates import ClientCertificate


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def https_client(base_url: str, server_cert: bytes, local_address: str = "127.0.0.1") -> httpx.AsyncClient:
    """An HTTPS client that trusts ``server_cert`` (PEM) and calls from ``local_address``."""
    trusting = ssl.create_default_context(cadata=server_cert.decode())
    return httpx.AsyncClient(
        base_url=base_url, timeout=10,
        transport=httpx.AsyncHTTPTransport(verify=trusting, local_address=local_address),
    )


def tls_credentials(server_cert: bytes, client: ClientCertificate | None = None) -> grpc.ChannelCredentials:
    """gRPC channel credentials trusting ``server_cert``, presenting ``client``'s certificate if given."""
    if client is None:
        return grpc.ssl_channel_credentials(root_certificates=server_cert)
    return grpc.ssl_channel_credentials(
        root_certificates=server_cert, private_key=client.private_key, certificate_chain=client.certificate
    )


async def call_code(
    channel: grpc.aio.Channel, method: str, token: str, request: bytes = b"", timeout_s: float = 10
) -> tuple[grpc.StatusCode, dict[str, str], str]:
    """Call the unary ``method`` (full name, ``/pkg.Service/Method``) with raw request bytes (b"" is
    every message's empty value); return its status code, trailing metadata and details."""
    call = channel.unary_unary(method)
    try:
        await call(request, metadata=[("authorization", f"Bearer {token}")], timeout=timeout_s)
    except grpc.aio.AioRpcError as error:
        return error.code(), dict(error.trailing_metadata() or ()), error.details() or ""  # type: ignore[arg-type]
    return grpc.StatusCode.OK, {}, ""
