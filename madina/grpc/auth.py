"""Per-agency bearer tokens with scopes for partner gRPC APIs (credentials model: madina.auth).

Each RPC names the scope it needs; health checks and reflection need none. Calls are admitted by
:meth:`madina.auth.Credentials.admit`, the same gate HTTP uses: a missing or invalid token is
UNAUTHENTICATED, a principal over its rate or an address with too many failed tokens is
RESOURCE_EXHAUSTED with a ``retry-after`` trailer (seconds), a token without the scope is
PERMISSION_DENIED; with a revocation list, a client certificate it lists is UNAUTHENTICATED whatever
the token. The check runs when the call starts, because only then is the peer address
known. The authenticated agency id is available to servicers through ``agency_of_current_call()``
for audit trails.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from madina.auth import Credentials, NotAuthenticated, Throttled
from madina.grpc.revocation import RevocationList

_CURRENT_AGENCY: contextvars.ContextVar[str | None] = contextvars.ContextVar("madina_agency", default=None)
PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def agency_of_current_call() -> str | None:
    """The agency id authenticated for the RPC being served (for audit trails)."""
    return _CURRENT_AGENCY.get()


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        super().__init__(message)
        self.code, self.message, self.trailers = code, message, trailers


def peer_address(peer: str) -> str:
    """The client address of a grpc peer string (``ipv4:10.0.0.7:51234`` -> ``10.0.0.7``)."""
    kind, _, rest = peer.partition(":")
    return rest.rsplit(":", 1)[0] if kind in ("ipv4", "ipv6") else peer


class AgencyAuthInterceptor(grpc.aio.ServerInterceptor):
    """Admits each call (token, rate limits) and checks its scope before the servicer sees it."""

    def __init__(
        self, credentials: Credentials, required_scopes: Mapping[str, str],
        revocations: RevocationList | None = None,
    ) -> None:
        # required_scopes: full method name ("/pkg.Service/Method") -> scope
        self._credentials = credentials
        self._required = dict(required_scopes)
        self._revocations = revocations

    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        method = details.method
        handler = await continuation(details)
        if handler is None or method.startswith(PUBLIC_SERVICES):
            return handler
        metadata = dict(details.invocation_metadata or ())
        authorization = metadata.get("authorization", "")
        token = authorization[7:] if authorization.lower().startswith("bearer ") else ""

        def admit(context: grpc.aio.ServicerContext) -> str:
            if self._revocations is not None:
                # grpcio cannot check a CRL in the handshake (madina.grpc.revocation); here it can.
                presented = context.auth_context().get("x509_pem_cert") or []
                if any(self._revocations.revoked(pem) for pem in presented):
                    raise _Refused(grpc.StatusCode.UNAUTHENTICATED, "client certificate revoked")
            try:
                agency = self._credentials.admit(token, peer_address(context.peer()))
            except NotAuthenticated as denied:
                raise _Refused(grpc.StatusCode.UNAUTHENTICATED, denied.message) from None
            except Throttled as throttled:
                raise _Refused(
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"{throttled.message}; retry in {throttled.retry_after_header} s",
                    (("retry-after", throttled.retry_after_header),),
                ) from None
            scope = self._required.get(method)
            if scope is None:
                raise _Refused(grpc.StatusCode.PERMISSION_DENIED, f"no scope is defined for {method}")
            if scope not in agency.scopes:
                raise _Refused(
                    grpc.StatusCode.PERMISSION_DENIED, f"agency {agency.principal_id} lacks scope {scope}"
                )
            return agency.principal_id

        return _guarded(handler, admit)


_METHOD_HANDLER_FACTORY = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _guarded(
    handler: grpc.RpcMethodHandler, admit: Callable[[grpc.aio.ServicerContext], str]
) -> grpc.RpcMethodHandler:
    """``handler`` with the same shape (grpc would read the stream wrongly otherwise), calling
    ``admit`` first and aborting with its refusal, or running with the agency it returns."""
    behaviour = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream

    async def enter(context: grpc.aio.ServicerContext) -> None:
        try:
            _CURRENT_AGENCY.set(admit(context))
        except _Refused as refused:
            await context.abort(refused.code, refused.message, refused.trailers)

    async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await enter(context)
        async for item in behaviour(request, context):
            yield item

    async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await enter(context)
        return await behaviour(request, context)

    factory = _METHOD_HANDLER_FACTORY[(handler.request_streaming, handler.response_streaming)]
    return factory(
        stream if handler.response_streaming else unary,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
