"""Per-agency bearer tokens with scopes, for partner gRPC APIs.

Tokens never live in the repository. A credentials file (JSON or YAML, named by a setting) maps
agency ids to the SHA-256 of their token and their scopes::

    agencies:
      casa-transport: {token_sha256: "9f86d0...", scopes: ["alerts:read", "alerts:ack"]}

Each RPC names the scope it needs; health checks and reflection need none. The authenticated
agency id is put in the call's context (``agency_of(context)``) for audit trails.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import yaml

_CURRENT_AGENCY: contextvars.ContextVar[str | None] = contextvars.ContextVar("madina_agency", default=None)
PUBLIC_SERVICES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Agency:
    agency_id: str
    token_sha256: str
    scopes: frozenset[str]


class AgencyCredentials:
    """Looks an agency up by the token it presents, in constant time per entry."""

    def __init__(self, agencies: Mapping[str, Agency]) -> None:
        self._agencies = dict(agencies)

    def authenticate(self, token: str) -> Agency | None:
        digest = hash_token(token)
        found = None
        for agency in self._agencies.values():
            if hmac.compare_digest(agency.token_sha256, digest):
                found = agency
        return found

    def __len__(self) -> int:
        return len(self._agencies)


def parse_agency_credentials(document: Mapping[str, Any], origin: str = "credentials") -> AgencyCredentials:
    agencies = {}
    for agency_id, entry in (document.get("agencies") or {}).items():
        try:
            digest = entry.get("token_sha256") or hash_token(entry["token"])
            scopes = frozenset(entry.get("scopes") or ())
        except (AttributeError, KeyError, TypeError):
            raise ValueError(f"{origin}: agency {agency_id!r} needs token_sha256 (or token) and scopes") from None
        agencies[agency_id] = Agency(agency_id, digest, scopes)
    return AgencyCredentials(agencies)


def load_agency_credentials(path: Path) -> AgencyCredentials:
    text = path.read_text()
    document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return parse_agency_credentials(document or {}, str(path))


def agency_of_current_call() -> str | None:
    """The agency id authenticated for the RPC being served (for audit trails)."""
    return _CURRENT_AGENCY.get()


class AgencyAuthInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls without a valid bearer token (UNAUTHENTICATED) or without the scope (PERMISSION_DENIED)."""

    def __init__(self, credentials: AgencyCredentials, required_scopes: Mapping[str, str]) -> None:
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
                handler, grpc.StatusCode.PERMISSION_DENIED, f"agency {agency.agency_id} lacks scope {scope}"
            )
        return _with_agency(handler, agency.agency_id)


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
    behaviour = (
        handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
    )
    return factory(
        bind(behaviour, handler.response_streaming),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
