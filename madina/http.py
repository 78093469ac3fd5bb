"""FastAPI plumbing every HTTP service shares: bearer-token scopes, body size limits, health, metrics.

Errors are JSON with a human message: validation failures are 422 naming the field, a body over
the limit is 413, a missing or wrong token 401, a token without the scope 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from madina.auth import Credentials, Principal
from madina.observability.metrics import metrics_response

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
_bearer = HTTPBearer(auto_error=False)


class BodySizeLimit:
    """ASGI middleware refusing request bodies over ``max_bytes`` with 413, declared or streamed."""

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _BodyTooLarge:
            await _too_large(self.max_bytes)(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(
        {"detail": f"request body is larger than the {limit} byte limit"},
        status_code=status.HTTP_413_CONTENT_TOO_LARGE,
    )


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller's principal, if its bearer token holds ``scope``."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        store: Credentials = request.app.state.credentials
        principal = store.authenticate(credentials.credentials) if credentials else None
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not principal.allows(scope):
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"token of {principal.principal_id} lacks scope {scope}"
            )
        return principal

    return dependency


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"field": ".".join(str(part) for part in problem["loc"] if part != "body"), "message": problem["msg"]}
        for problem in error.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return JSONResponse({"detail": f"invalid request: {summary}", "errors": problems}, status_code=422)


def install_common(
    app: FastAPI,
    *,
    credentials: Credentials,
    health_check: Callable[[], Awaitable[dict[str, Any]]] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """Add auth state, body limit, readable 422s, ``/healthz`` and ``/metrics`` to ``app``."""
    app.state.credentials = credentials
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    app.add_exception_handler(RequestValidationError, _validation_error)

    @app.get("/healthz", tags=["operations"], summary="Liveness and readiness")
    async def healthz() -> JSONResponse:
        details = await health_check() if health_check else {}
        healthy = all(value in (True, "ok") for value in details.values())
        return JSONResponse(
            {"status": "ok" if healthy else "degraded", **details}, status_code=200 if healthy else 503
        )

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = metrics_response()
        return Response(body, media_type=content_type)
