"""What the operations process holds: the store, the change hub, the producer for commands, the
KPI board, the map layers' features, and the one way commands are carried out.

Commands never edit rows. :meth:`OperationsRuntime.submit_action` publishes an ``AlertAction``
on ``alerts.actions.v1`` (keyed by alert id) and waits until the consumer has applied it, so the
topic stays the audit trail and the store stays a projection of the topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from madina.auth import Credentials
from madina.bus import ALERT_ACTIONS, EventProducer
from madina_proto.alerts.v1 import alerts_pb2
from services.operations.api.hub import ChangeHub
from services.operations.api.ingest import AlertIngest
from services.operations.api.kpis import KpiBoard
from services.operations.api.maplayers import MapBoard
from services.operations.domain import ActionType, AlertAction, AlertView
from services.operations.settings import OperationsSettings
from services.operations.store import AlertStore, action_to_message

STORE_POLL_S = 0.5
"""How often a waiting command looks in the store, for an action another replica applied."""


@dataclass
class ActionOutcome:
    action: alerts_pb2.AlertAction
    alert: AlertView
    applied: bool
    """False when the wait timed out: the action is on the bus and will apply, but is not visible yet."""


@dataclass
class OperationsRuntime:
    settings: OperationsSettings
    store: AlertStore
    credentials: Credentials
    producer: EventProducer
    hub: ChangeHub
    ingest: AlertIngest
    kpis: KpiBoard = field(default_factory=KpiBoard)
    map: MapBoard = field(default_factory=MapBoard)
    producer_ready: bool = False

    async def health(self) -> dict[str, Any]:
        try:
            await asyncio.to_thread(self.store.latest_seq)
            database = "ok"
        except Exception as error:
            database = f"error: {type(error).__name__}"
        return {
            "database": database,
            "producer": "ok" if self.producer_ready else "starting",
            "consumer": "ok" if self.ingest.ready.is_set() else "starting",
            "kpis": "ok" if self.kpis.ready.is_set() else "starting",
            "map_layers": "ok" if self.map.ready.is_set() else "starting",
        }

    async def get_alert(self, alert_id: str) -> AlertView | None:
        detail = await asyncio.to_thread(self.store.get, alert_id)
        return None if detail is None else detail.alert

    async def submit_action(
        self, alert_id: str, action_type: ActionType, actor: str, *, assignee: str = "", text: str = "",
    ) -> ActionOutcome | None:
        """Publish a command and wait (at most ``operations_action_timeout_s``) until it is applied.

        ``None`` when the alert is unknown: an action for it would wait on the topic forever.
        """
        current = await self.get_alert(alert_id)
        if current is None:
            return None
        action = AlertAction(
            action_id=uuid.uuid4().hex, alert_id=alert_id, action_type=action_type, actor=actor,
            action_time=datetime.now(UTC), assignee=assignee, text=text,
        )
        message = action_to_message(action)
        applied = self.hub.expect_action(action.action_id)
        try:
            await self.producer.send_and_wait(
                ALERT_ACTIONS, alert_id, message, event_time_ms=int(action.action_time.timestamp() * 1000)
            )
            view = await self._wait_applied(action, applied)
        finally:
            self.hub.forget_action(action.action_id)
        if view is None:
            latest = await self.get_alert(alert_id)
            return ActionOutcome(message, latest or current, applied=False)
        return ActionOutcome(message, view, applied=True)

    async def _wait_applied(self, action: AlertAction, applied: asyncio.Future[Any]) -> AlertView | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.operations_action_timeout_s
        while (remaining := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                change = await asyncio.wait_for(asyncio.shield(applied), timeout=min(STORE_POLL_S, remaining))
                return change.alert  # type: ignore[no-any-return]
            # Another replica of the group may own the partition and apply it; the store knows.
            view = await asyncio.to_thread(self._applied_view, action)
            if view is not None:
                return view
        return None

    def _applied_view(self, action: AlertAction) -> AlertView | None:
        detail = self.store.get(action.alert_id)
        if detail is None:
            return None
        done = any(change.action is not None and change.action.action_id == action.action_id
                   for change in detail.history)
        return detail.alert if done else None
