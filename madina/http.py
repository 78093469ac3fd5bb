"""FastAPI plumbing every HTTP service shares: bearer-token scopes, body size limits, health, metrics.

Errors are JSON with a human message: validation failures are 422 naming the field, a body over
the limit is 413, a missing or wrong token 401, a token without the scope 403, a principal over its
rate (or an address after too many wrong tokens) 429 with ``Retry-After``. ``uvicorn_tls_options``
turns on HTTPS from settings.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field, ValidationError

from madina.auth import Credentials, NotAuthenticated, Principal, Throttled
from madina.inputs import InvalidInput
from madina.observability.metrics import metrics_response
from madina.settings import ServiceSettings

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
# No body of ours nests more than a few levels; 32 is far from that and from Python's recursion limit.
MAX_JSON_DEPTH = 32
_bearer = HTTPBearer(auto_error=False)


class BodySizeLimit:
    """ASGI middleware reading each request body before the app does: over ``max_bytes`` is 413
    (declared or streamed without Content-Length), JSON nested deeper than ``max_json_depth`` is 400.

    The body is read here, not as the app consumes it, because FastAPI turns any error raised while
    it reads a body into a 400, and Python's JSON parser recurses: a body of 1,000 ``[`` is a
    RecursionError (a 500) in every handler that parses it. Bodies are bounded, so holding one is cheap.
    """

    def __init__(
        self, app: Any, max_bytes: int = DEFAULT_MAX_BODY_BYTES, max_json_depth: int = MAX_JSON_DEPTH
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_json_depth = max_json_depth

    async def __call__(self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if received > self.max_bytes:
                await _too_large(self.max_bytes)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        openers = body.count(b"[") + body.count(b"{")
        if openers > self.max_json_depth and json_depth(body) > self.max_json_depth:
            response = _error(status.HTTP_400_BAD_REQUEST, f"JSON nested deeper than {self.max_json_depth} levels")
            await response(scope, receive, send)
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:  # after the body: disconnects, which streaming responses wait for
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


# A JSON string, its closing quote optional so an unterminated one ends the scan in linear time.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+(?:"|\\?\Z)')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_DEPTH_STEP = [1 if chr(b) in "[{" else -1 for b in range(256)]


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (0 for a scalar), in linear time.

    Brackets inside strings do not count. Run on bytes before parsing, so that a body too deep to
    parse is refused rather than crashing the parser; invalid JSON gets an approximate answer,
    and the parser rejects it anyway.
    """
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    return max(itertools.accumulate(map(_DEPTH_STEP.__getitem__, brackets)), default=0)


def _error(code: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=code)


def _too_large(limit: int) -> JSONResponse:
    return _error(status.HTTP_413_CONTENT_TOO_LARGE, f"request body is larger than the {limit} byte limit")


def authorize(request: Request, token: str | None, scope: str) -> Principal:
    """The principal calling with ``token`` if it is admitted (madina.auth: rate limits, failed
    attempts per address) and holds ``scope``; otherwise the 401, 429 or 403 to answer."""
    store: Credentials = request.app.state.credentials
    try:
        principal = store.admit(token, request.client.host if request.client else "unknown")
    except NotAuthenticated as denied:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, denied.message, headers={"WWW-Authenticate": "Bearer"}
        ) from None
    except Throttled as throttled:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            throttled.message,
            headers={"Retry-After": throttled.retry_after_header},
        ) from None
    if not principal.allows(scope):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"token of {principal.principal_id} lacks scope {scope}")
    return principal


def require_scope(scope: str) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller's principal, if its bearer token is admitted and holds ``scope``."""

    async def dependency(
        request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
    ) -> Principal:
        return authorize(request, credentials.credentials if credentials else None, scope)

    return dependency


def uvicorn_tls_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn.Config keywords serving HTTPS when MADINA_HTTP_TLS_CERT_FILE and _KEY_FILE are set
    (deployments without a TLS-terminating proxy in front); empty otherwise."""
    if settings.http_tls_cert_file and settings.http_tls_key_file:
        return {"ssl_certfile": str(settings.http_tls_cert_file), "ssl_keyfile": str(settings.http_tls_key_file)}
    return {}


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    problems = [
        {"field": ".".join(str(part) for part in problem["loc"] if part != "body"), "message": problem["msg"]}
        for problem in error.errors()
    ]
    summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
    return JSONResponse({"detail": f"invalid request: {summary}", "errors": problems}, status_code=422)


def validation_problems(error: ValidationError, prefix: str = "") -> str:
    """A pydantic error as ``field: message; ...``, fields written ``items[3].name``."""
    parts = []
    for problem in error.errors():
        field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in problem["loc"]).replace(".[", "[")
        parts.append(f"{prefix}{field}: {problem['msg']}")
    return "; ".join(parts)


M = TypeVar("M", bound=BaseModel)


def parse_items(body: Any, model: type[M], list_field: str, max_items: int) -> list[tuple[str, M]]:
    """An ingest body that is one ``model`` or ``{list_field: [model, ...]}``, as ``(where, item)``
    pairs (``where`` is ``""`` or ``list_field[i]``); InvalidInput naming the first bad field."""
    if isinstance(body, dict) and list_field in body:
        items = body[list_field]
        if not isinstance(items, list) or not items:
            raise InvalidInput(f"{list_field}: expected a non-empty list")
        if len(items) > max_items:
            raise InvalidInput(f"{list_field}: at most {max_items} per request, got {len(items)}")
        if set(body) != {list_field}:
            raise InvalidInput(f"{sorted(set(body) - {list_field})[0]}: unexpected field")
        labelled = [(f"{list_field}[{i}]", item) for i, item in enumerate(items)]
    else:
        labelled = [("", body)]
    parsed = []
    for where, item in labelled:
        try:
            parsed.append((where, model.model_validate(item)))
        except ValidationError as error:
            raise InvalidInput(validation_problems(error, f"{where}." if where else "")) from None
    return parsed


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
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]

    @app.get(
        "/healthz", tags=["operations"], summary="Liveness and readiness",
        responses={503: {"description": "Not ready: the failing checks say why."}},
    )
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


class ErrorBody(BaseModel):
    """What every 4xx answers (``detail`` is a sentence for people)."""

    detail: str


class FieldProblem(BaseModel):
    field: str = Field(description="Where: dotted path, e.g. ``observations[2].pm25_ugm3`` or ``query.since``.")
    message: str


class ValidationErrorBody(BaseModel):
    """A 422: ``detail`` names every bad field; ``errors`` lists them when the framework found them."""

    detail: str
    errors: list[FieldProblem] | None = None


_ERROR_DESCRIPTIONS = {
    "400": "The body is not JSON, or nests too deep.",
    "401": "Missing or invalid bearer token.",
    "403": "The token lacks the scope this needs.",
    "404": "No such resource.",
    "413": "The body is over the size limit.",
    "429": "Over the principal's rate, or too many failed tokens from this address; retry after Retry-After.",
}


def openapi_schema(app: FastAPI, extra_schemas: dict[str, Any] | None = None) -> dict[str, Any]:
    """The app's OpenAPI, documenting the errors it really answers (see :func:`document_errors`)."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schema.setdefault("components", {}).setdefault("schemas", {}).update(extra_schemas or {})
        app.openapi_schema = document_errors(schema)
    return app.openapi_schema


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the 400/401/403/404/413/422/429 each operation can answer, with the bodies they carry.

    FastAPI documents a 422 as its own ``HTTPValidationError`` (``detail`` an array), which is not
    what :func:`install_common`'s handler sends; and it knows nothing of auth, size or path errors.
    """
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    for model in (ErrorBody, FieldProblem, ValidationErrorBody):
        components[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            parameters = operation.get("parameters", [])
            codes = []
            if operation.get("security"):
                codes += ["401", "403", "429"]
            if any(parameter.get("in") == "path" for parameter in parameters):
                codes.append("404")
            if "requestBody" in operation:
                codes += ["400", "413"]
            for code in codes:
                responses[code] = _json_response(_ERROR_DESCRIPTIONS[code], ErrorBody)
            if parameters or "requestBody" in operation or "422" in responses:
                responses["422"] = _json_response("A field is invalid; the detail names it.", ValidationErrorBody)
    return schema


def _json_response(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
    }
