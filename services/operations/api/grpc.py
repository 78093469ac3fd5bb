"""``madina.alerts.v1.AlertService`` for partner agencies (port 50055, TLS, per-agency tokens).

Scopes: ``alerts:read`` for ListAlerts, GetAlert and WatchAlerts; ``alerts:ack`` for
AcknowledgeAlert, which publishes an ``AlertAction`` with the agency as actor and answers once
it is applied. WatchAlerts resumes from a cursor with no gap and no duplicate; it sends its
initial metadata once it is subscribed, so a client that waits for it knows nothing is missed.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncIterator

import grpc

from madina.grpc import agency_of_current_call
from madina.inputs import echo
from madina_proto.alerts.v1 import alerts_pb2 as pb
from madina_proto.alerts.v1 import alerts_pb2_grpc as pb_grpc
from services.operations.api.hub import Watch, WatcherTooSlow, parse_cursor
from services.operations.api.state import OperationsRuntime
from services.operations.domain import ActionType, AlertFilter, AlertStatus, Change, Severity
from services.operations.store import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, alert_to_message, change_to_message

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["AlertService"].full_name
REQUIRED_SCOPES = {
    f"/{SERVICE_NAME}/ListAlerts": "alerts:read",
    f"/{SERVICE_NAME}/GetAlert": "alerts:read",
    f"/{SERVICE_NAME}/WatchAlerts": "alerts:read",
    f"/{SERVICE_NAME}/AcknowledgeAlert": "alerts:ack",
}
MAX_NOTE = 500


async def filter_from_message(message: pb.AlertFilter, context: grpc.aio.ServicerContext) -> AlertFilter:
    try:
        return AlertFilter(
            domains=tuple(message.domains),
            district_ids=tuple(message.district_ids),
            min_severity=Severity(message.min_severity) if message.min_severity else None,
            status=AlertStatus(message.status) if message.status else None,
        )
    except ValueError as error:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"filter: {error}")
        raise  # unreachable: abort raises


class AlertServicer(pb_grpc.AlertServiceServicer):
    def __init__(self, runtime: OperationsRuntime, cache_size: int = 4096) -> None:
        self.runtime = runtime
        # Recent changes as messages, built once however many partners watch them.
        self._messages: OrderedDict[tuple[int, bool], pb.WatchAlertsResponse] = OrderedDict()
        self._cache_size = cache_size

    def _watch_response(self, change: Change) -> pb.WatchAlertsResponse:
        key = (change.seq, change.alert.silenced)
        message = self._messages.get(key)
        if message is None:
            message = self._messages[key] = pb.WatchAlertsResponse(change=change_to_message(change))
            if len(self._messages) > self._cache_size:
                self._messages.popitem(last=False)
        return message

    async def ListAlerts(
        self, request: pb.ListAlertsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListAlertsResponse:
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"page_size: must be 1..{MAX_PAGE_SIZE}")
        alert_filter = await filter_from_message(request.filter, context)
        try:
            page = await asyncio.to_thread(
                self.runtime.store.list_alerts, alert_filter, limit=page_size, page_token=request.page_token
            )
        except ValueError:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_token: not a token of this listing")
        return pb.ListAlertsResponse(
            alerts=[alert_to_message(alert) for alert in page.alerts], next_page_token=page.next_page_token
        )

    async def GetAlert(
        self, request: pb.GetAlertRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetAlertResponse:
        if not request.alert_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "alert_id: required")
        detail = await asyncio.to_thread(self.runtime.store.get, request.alert_id)
        if detail is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"alert_id: unknown alert {echo(request.alert_id)}")
        assert detail is not None
        return pb.GetAlertResponse(
            alert=alert_to_message(detail.alert),
            history=[change_to_message(change) for change in detail.history],
        )

    async def WatchAlerts(
        self, request: pb.WatchAlertsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchAlertsResponse]:
        alert_filter = await filter_from_message(request.filter, context)
        after: int | None = None
        if request.resume_cursor:
            after = parse_cursor(request.resume_cursor, "resume_cursor")
            if after > self.runtime.hub.last_seq:
                await context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"resume_cursor: not a cursor of this store: {echo(request.resume_cursor)}",
                )
        watch = Watch(self.runtime.hub, self.runtime.store, alert_filter, after,
                      maxsize=self.runtime.settings.operations_sse_queue_size)
        try:
            await context.send_initial_metadata((("madina-watch-cursor", str(watch.last_seq)),))
            async for change in watch.changes():
                if change is not None:
                    yield self._watch_response(change)
        except WatcherTooSlow:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"watcher fell behind; resume with resume_cursor={watch.last_seq}",
            )
        finally:
            watch.close()

    async def AcknowledgeAlert(
        self, request: pb.AcknowledgeAlertRequest, context: grpc.aio.ServicerContext
    ) -> pb.AcknowledgeAlertResponse:
        if not request.alert_id:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "alert_id: required")
        if len(request.note) > MAX_NOTE:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"note: at most {MAX_NOTE} characters")
        agency = agency_of_current_call() or "unknown-agency"
        outcome = await self.runtime.submit_action(
            request.alert_id, ActionType.ACKNOWLEDGE, agency, text=request.note
        )
        if outcome is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"alert_id: unknown alert {echo(request.alert_id)}")
        assert outcome is not None
        if not outcome.applied:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"action {outcome.action.action_id} is published but not applied yet; GetAlert will show it",
            )
        return pb.AcknowledgeAlertResponse(action=outcome.action)
