"""Per-agency bearer tokens with scopes for partner gRPC APIs (credentials model: madina.auth).

Each RPC names the scope it needs; health checks and reflection need none. The authenticated
agency id is available to servicers through ``agency_of_current_call()`` for audit trails.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Mapping
from typing import Any

import grpc

from madina.auth import Credentials

_CURRENT_AGENCY: contextvars.ContextVar[str | None] = contextvars.ContextVar("madina_agency", default=None)
PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def agency_of_current_call() -> str | None:
    """The agency id authenticated for the RPC being served (for audit trails)."""
    return _CURRENT_AGENCY.get()


class AgencyAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without a valid bearer token (UNAUTHENTICATED) or without the scope (PERMISSION_DENIED)."""

    def __init__(self, credentials: Credentials, required_scopes: Mapping[str, str]) -> None:
        # required_scopes: full method name ("/pkg.Service/Method") -> scope
        self._credentials = credentials
        self._required = dict(required_scopes)

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
        agency = self._credentials.authenticate(token) if token else None
        if agency is None:
            return _deny(handler, grpc.StatusCode.UNAUTHENTICATED, "missing or invalid bearer token")
        scope = self._required.get(method)
        if scope is None:
            return _deny(handler, grpc.StatusCode.PERMISSION_DENIED, f"no scope is defined for {method}")
        if scope not in agency.scopes:
            return _deny(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"agency {agency.principal_id} lacks scope {scope}",
            )
        return _with_agency(handler, agency.principal_id)


def _deny(handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    # The denial must have the method's own shape, or grpc would read the stream wrongly.
    async def abort(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(code, message)

    async def abort_stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
        await context.abort(code, message)
        yield  # pragma: no cover - makes this an async generator

    return _METHOD_HANDLER_FACTORY[(handler.request_streaming, handler.response_streaming)](
        abort_stream if handler.response_streaming else abort,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


_METHOD_HANDLER_FACTORY = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _with_agency(handler: grpc.RpcMethodHandler, agency_id: str) -> grpc.RpcMethodHandler:
    def bind(behaviour: Callable[..., Any] | None, streaming_response: bool) -> Callable[..., Any] | None:
        if behaviour is None:
            return None
        if streaming_response:

            async def stream(request: Any, context: Any) -> Any:
                _CURRENT_AGENCY.set(agency_id)
                async for item in behaviour(request, context):
                    yield item

            return stream

        async def unary(request: Any, context: Any) -> Any:
            _CURRENT_AGENCY.set(agency_id)
            return await behaviour(request, context)

        return unary

    factory = _METHOD_HANDLER_FACTORY[(handler.request_streaming, handler.response_streaming)]
    behaviour = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    return factory(
        bind(behaviour, handler.response_streaming),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
