"""REST, Server-Sent Events and the dashboard of the operations center (port 8080).

Reads need scope ``alerts:read``; commands and silences need ``alerts:write``. Commands publish
an ``AlertAction`` on the bus and answer once the consumer applied it (``200``) or, if that takes
longer than ``MADINA_OPERATIONS_ACTION_TIMEOUT_S``, with ``202`` and the alert as it is then: the
action is on the bus and will apply. ``/api/v1/stream`` is SSE; ``EventSource`` cannot send
headers, so it also accepts the token as ``?access_token=``. OpenAPI is at ``/docs``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request, Response, status
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette import EventSourceResponse

from madina.auth import Principal
from madina.geo import load_cities
from madina.http import authorize, install_common, require_scope
from madina.inputs import InvalidInput, UtcTime, echo
from services.operations.api.hub import Watch, WatcherTooSlow, parse_cursor
from services.operations.api.state import ActionOutcome, OperationsRuntime
from services.operations.api.views import alert_json, change_json, groups_json, history_json, silence_json
from services.operations.domain import (
    ActionType,
    AlertFilter,
    AlertStatus,
    Change,
    Matcher,
    MatchOp,
    Severity,
)
from services.operations.store import MAX_PAGE_SIZE

log = logging.getLogger(__name__)

MAX_TEXT = 500
MAX_ASSIGNEE = 200
SSE_SEND_TIMEOUT_S = 10.0
"""A client that does not take an event within this long is disconnected; it resumes by cursor."""

# Module level: FastAPI resolves (string) annotations against module globals.
READER = require_scope("alerts:read")
WRITER = require_scope("alerts:write")
_bearer = HTTPBearer(auto_error=False)

SeverityName = Literal["info", "warning", "minor", "major", "critical"]
StatusName = Literal[
    "active_unacknowledged", "active_acknowledged", "cleared_unacknowledged", "cleared_acknowledged"
]


class EncodedChanges:
    """The SSE payload of recent changes, encoded once however many clients receive them."""

    def __init__(self, capacity: int = 4096) -> None:
        self._capacity = capacity
        self._payloads: OrderedDict[tuple[int, bool], str] = OrderedDict()

    def __call__(self, change: Change) -> str:
        # Replays re-read silences, so the same seq may come back with another silenced flag.
        key = (change.seq, change.alert.silenced)
        payload = self._payloads.get(key)
        if payload is None:
            # Strict JSON: a bare NaN would make the dashboard drop the event (views write null).
            payload = self._payloads[key] = json.dumps(change_json(change), allow_nan=False)
            if len(self._payloads) > self._capacity:
                self._payloads.popitem(last=False)
        return payload


def _runtime(request: Request) -> OperationsRuntime:
    return request.app.state.runtime  # type: ignore[no-any-return]


Runtime = Annotated[OperationsRuntime, Depends(_runtime)]


def _split(values: list[str]) -> list[str]:
    # ?domain=a&domain=b and ?domain=a,b both work; a district may come as "city/district".
    return [part.strip().rsplit("/", 1)[-1] for value in values for part in value.split(",") if part.strip()]


def alert_filter_params(
    state: Annotated[Literal["active", "cleared", "any"], Query(description="Active, cleared, any.")] = "any",
    domain: Annotated[list[str] | None, Query(description="Only these domains.")] = None,
    min_severity: Annotated[SeverityName | None, Query(description="Only at or above this severity.")] = None,
    district: Annotated[list[str] | None, Query(description="Only these districts.")] = None,
    since: Annotated[UtcTime | None, Query(description="Only alerts changed since (RFC 3339).")] = None,
    status_: Annotated[StatusName | None, Query(alias="status", description="Only this status.")] = None,
) -> AlertFilter:
    return AlertFilter(
        state=state,
        domains=_split(domain or []),
        min_severity=None if min_severity is None else Severity[min_severity.upper()],
        district_ids=_split(district or []),
        since=since,
        status=None if status_ is None else AlertStatus[status_.upper()],
    )


Filter = Annotated[AlertFilter, Depends(alert_filter_params)]


async def stream_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    access_token: Annotated[str | None, Query(description="Bearer token, for EventSource clients.")] = None,
) -> Principal:
    return authorize(request, credentials.credentials if credentials else access_token, "alerts:read")


def _unprocessable(field: str, message: str) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid request: {field}: {message}")


# -- request bodies ---------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AcknowledgeBody(_Body):
    note: str = Field(default="", max_length=MAX_TEXT, description="Optional note kept in the audit trail.")


class AssignBody(_Body):
    assignee: str = Field(min_length=1, max_length=MAX_ASSIGNEE, description="Person or team.")
    note: str = Field(default="", max_length=MAX_TEXT)

    @field_validator("assignee")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class CommentBody(_Body):
    text: str = Field(min_length=1, max_length=MAX_TEXT, description="The comment.")

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()


class ResolveBody(_Body):
    note: str = Field(default="", max_length=MAX_TEXT, description="How it was resolved.")


class MatcherBody(_Body):
    name: str = Field(min_length=1, max_length=100)
    op: Literal["=", "!=", "=~", "!~"] = "="
    value: str = Field(max_length=MAX_TEXT)


class SilenceBody(_Body):
    matchers: list[MatcherBody] = Field(min_length=1, max_length=20)
    starts_at: UtcTime | None = None
    ends_at: UtcTime
    comment: str = Field(min_length=1, max_length=MAX_TEXT)


# -- routes -----------------------------------------------------------------------------------

_COMMAND_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "Applied: the alert as it is now."},
    202: {"description": "Published but not applied within the timeout; it will apply."},
}


def _action_reply(outcome: ActionOutcome | None, alert_id: str) -> JSONResponse:
    if outcome is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown alert {echo(alert_id)}")
    return JSONResponse(
        {"action_id": outcome.action.action_id, "alert": alert_json(outcome.alert)},
        status_code=status.HTTP_200_OK if outcome.applied else status.HTTP_202_ACCEPTED,
    )


def alerts_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["alerts"])

    @router.get("/alerts", summary="Alerts, most recently changed first, with paging")
    async def list_alerts(
        runtime: Runtime, _: Annotated[Principal, Depends(READER)], alert_filter: Filter,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
        page_token: Annotated[str, Query(description="next_page_token of the previous page.")] = "",
    ) -> dict[str, Any]:
        try:
            page = await asyncio.to_thread(
                runtime.store.list_alerts, alert_filter, limit=limit, page_token=page_token
            )
        except ValueError:
            raise _unprocessable("page_token", "not a token of this listing") from None
        return {
            "alerts": [alert_json(alert) for alert in page.alerts],
            "next_page_token": page.next_page_token or None,
        }

    @router.get("/alerts/{alert_id}", summary="One alert with its history, oldest first")
    async def get_alert(
        runtime: Runtime, _: Annotated[Principal, Depends(READER)], alert_id: str
    ) -> dict[str, Any]:
        detail = await asyncio.to_thread(runtime.store.get, alert_id)
        if detail is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown alert {echo(alert_id)}")
        return {"alert": alert_json(detail.alert), "history": [history_json(c) for c in detail.history]}

    @router.post("/alerts/{alert_id}/ack", responses=_COMMAND_RESPONSES,
                 summary="Acknowledge (published on alerts.actions.v1)")
    async def acknowledge(
        runtime: Runtime, principal: Annotated[Principal, Depends(WRITER)], alert_id: str,
        body: AcknowledgeBody | None = None,
    ) -> JSONResponse:
        note = body.note if body else ""
        outcome = await runtime.submit_action(
            alert_id, ActionType.ACKNOWLEDGE, principal.principal_id, text=note
        )
        return _action_reply(outcome, alert_id)

    @router.post("/alerts/{alert_id}/assign", responses=_COMMAND_RESPONSES, summary="Assign to a person or team")
    async def assign(
        runtime: Runtime, principal: Annotated[Principal, Depends(WRITER)], alert_id: str, body: AssignBody,
    ) -> JSONResponse:
        outcome = await runtime.submit_action(
            alert_id, ActionType.ASSIGN, principal.principal_id, assignee=body.assignee, text=body.note
        )
        return _action_reply(outcome, alert_id)

    @router.post("/alerts/{alert_id}/comment", responses=_COMMAND_RESPONSES, summary="Add a comment")
    async def comment(
        runtime: Runtime, principal: Annotated[Principal, Depends(WRITER)], alert_id: str, body: CommentBody,
    ) -> JSONResponse:
        outcome = await runtime.submit_action(
            alert_id, ActionType.COMMENT, principal.principal_id, text=body.text
        )
        return _action_reply(outcome, alert_id)

    @router.post("/alerts/{alert_id}/resolve", responses=_COMMAND_RESPONSES,
                 summary="Resolve by hand (final for the episode)")
    async def resolve(
        runtime: Runtime, principal: Annotated[Principal, Depends(WRITER)], alert_id: str,
        body: ResolveBody | None = None,
    ) -> JSONResponse:
        note = body.note if body else ""
        outcome = await runtime.submit_action(alert_id, ActionType.RESOLVE, principal.principal_id, text=note)
        return _action_reply(outcome, alert_id)

    @router.get("/stream", summary="Live alert changes (Server-Sent Events), resumable with Last-Event-ID",
                response_class=Response, responses={200: {"content": {"text/event-stream": {}}}})
    async def stream(
        request: Request,
        runtime: Runtime, _: Annotated[Principal, Depends(stream_principal)], alert_filter: Filter,
        last_event_id: Annotated[str | None, Header(description="Cursor of the last event seen.")] = None,
        last_event_id_query: Annotated[str | None, Query(alias="last_event_id")] = None,
    ) -> EventSourceResponse:
        cursor = last_event_id or last_event_id_query
        after: int | None = None
        if cursor:
            try:
                after = parse_cursor(cursor, "Last-Event-ID")
            except InvalidInput as error:
                raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"invalid request: {error}") from None
            # A cursor from a store that has since been rebuilt smaller: start from now, the
            # dashboard re-reads the list on every reconnect.
            if after > runtime.hub.last_seq:
                after = None
        watch = Watch(runtime.hub, runtime.store, alert_filter, after,
                      maxsize=runtime.settings.operations_sse_queue_size)
        heartbeat_s = runtime.settings.operations_sse_heartbeat_s
        encoded: EncodedChanges = request.app.state.encoded_changes

        async def events() -> Any:
            try:
                async for change in watch.changes(heartbeat_s):
                    if change is None:
                        yield {"event": "heartbeat", "data": json.dumps({"cursor": str(watch.last_seq)})}
                    else:
                        yield {"event": "alert", "id": change.cursor, "data": encoded(change)}
            except WatcherTooSlow:
                log.info("SSE client too slow; disconnected, it resumes by cursor",
                         extra={"cursor": watch.last_seq})
            finally:
                watch.close()

        # Heartbeats are our own "heartbeat" events (the dashboard watches for them), not comments.
        return EventSourceResponse(events(), send_timeout=SSE_SEND_TIMEOUT_S, ping=0)

    return router


def silences_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["silences"])

    @router.get("/silences", summary="Pending and active silences")
    async def list_silences(runtime: Runtime, _: Annotated[Principal, Depends(READER)]) -> dict[str, Any]:
        silences = await asyncio.to_thread(runtime.store.list_silences)
        now = datetime.now(UTC)
        return {"silences": [silence_json(s, now) for s in silences]}

    @router.post("/silences", status_code=status.HTTP_201_CREATED, summary="Mute matching alerts for a while")
    async def create_silence(
        runtime: Runtime, principal: Annotated[Principal, Depends(WRITER)], body: SilenceBody,
    ) -> dict[str, Any]:
        now = datetime.now(UTC)
        starts_at = (body.starts_at or now).astimezone(UTC)
        ends_at = body.ends_at.astimezone(UTC)
        if ends_at <= max(starts_at, now):
            raise _unprocessable("ends_at", "must be in the future and after starts_at")
        matchers = []
        for index, m in enumerate(body.matchers):
            try:
                matchers.append(Matcher(m.name, MatchOp(m.op), m.value))
            except ValueError as error:
                raise _unprocessable(f"matchers[{index}].value", str(error)) from None
        silence = await asyncio.to_thread(
            runtime.store.create_silence, matchers, ends_at=ends_at, starts_at=starts_at,
            created_by=principal.principal_id, comment=body.comment,
        )
        return silence_json(silence, datetime.now(UTC))

    @router.delete("/silences/{silence_id}", status_code=status.HTTP_204_NO_CONTENT,
                   summary="End a silence now (kept for the record)")
    async def expire_silence(
        runtime: Runtime, _: Annotated[Principal, Depends(WRITER)], silence_id: str,
    ) -> Response:
        if await asyncio.to_thread(runtime.store.expire_silence, silence_id) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown silence {echo(silence_id)}")
        return Response(status_code=status.HTTP_204_NO_CONTENT)

    return router


def overview_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["overview"])

    @router.get("/groups", summary="Correlated groups of active alerts, worst first")
    async def groups(runtime: Runtime, _: Annotated[Principal, Depends(READER)]) -> dict[str, Any]:
        return {"groups": groups_json(await asyncio.to_thread(_active_alerts, runtime))}

    @router.get("/kpis", summary="Alert counts per domain and every domain's latest indicators")
    async def kpis(runtime: Runtime, _: Annotated[Principal, Depends(READER)]) -> dict[str, Any]:
        return {
            "alerts": await asyncio.to_thread(runtime.store.dashboard_counts),
            "indicators": runtime.kpis.indicators(),
        }

    @router.get("/geo", summary="Cities, districts and their outlines")
    async def geo(request: Request, _: Annotated[Principal, Depends(READER)]) -> dict[str, Any]:
        cached: dict[str, Any] | None = getattr(request.app.state, "geo", None)
        if cached is None:
            cached = request.app.state.geo = geo_json()
        return cached

    @router.get("/map/features", summary="What every domain's map layers show now (buses, lamps, containers...)")
    async def map_features(
        runtime: Runtime, _: Annotated[Principal, Depends(READER)],
        city: Annotated[str | None, Query(description="Only this city's features (a city id of /api/v1/geo)",
                                          max_length=200)] = None,
    ) -> dict[str, Any]:
        """The declared layers (name, domain, the kinds they show now) and each current feature."""
        return runtime.map.to_json(city)

    return router


def _active_alerts(runtime: OperationsRuntime) -> list[Any]:
    views: list[Any] = []
    token = ""
    while True:
        page = runtime.store.list_alerts(AlertFilter(state="active"), limit=MAX_PAGE_SIZE, page_token=token)
        views.extend(page.alerts)
        token = page.next_page_token
        if not token:
            return views


def geo_json() -> dict[str, Any]:
    return {"cities": [
        {"id": city.id, "name": city.name, "center": list(city.center), "districts": [
            {"id": d.id, "name": d.name, "center": list(d.center), "polygon": [list(p) for p in d.polygon]}
            for d in city.districts
        ]}
        for city in load_cities().values()
    ]}


def dashboard_router(app: FastAPI) -> None:
    index_html: Path | None = None
    static_dir: Path | None = None
    try:
        from services.operations.web import INDEX_HTML, STATIC_DIR

        index_html, static_dir = INDEX_HTML, STATIC_DIR
    except ImportError:  # the dashboard package is optional; the API works without it
        pass

    @app.get("/", include_in_schema=False)
    async def index() -> Response:
        if index_html is None or not index_html.is_file():
            return HTMLResponse("<!doctype html><title>Madina operations</title><p>Dashboard not installed; "
                                "the API is at <a href=/docs>/docs</a>.</p>")
        return FileResponse(index_html, media_type="text/html", headers={"Cache-Control": "no-cache"})

    if static_dir is not None and static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")


def create_http_app(runtime: OperationsRuntime) -> FastAPI:
    app = FastAPI(
        title="Madina operations center",
        version="1.0.0",
        description="Every domain's alerts, operator actions through the bus, silences, groups and KPIs.",
    )
    app.state.runtime = runtime
    app.state.encoded_changes = EncodedChanges()
    install_common(app, credentials=runtime.credentials, health_check=runtime.health,
                   max_body_bytes=runtime.settings.max_body_bytes)
    app.include_router(alerts_router())
    app.include_router(silences_router())
    app.include_router(overview_router())
    dashboard_router(app)
    return app
