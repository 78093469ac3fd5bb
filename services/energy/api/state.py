"""What the energy API process holds: the network, a producer, and views of three topics.

Everything served by the read RPCs is computed by the processors and read back here with
:func:`madina.bus.reader.read_topic` (all partitions from the start, no consumer group: every API
replica needs everything): lamp states from the compacted ``energy.circuit-status.v1``, open
energy alerts from ``alerts.v1`` (the latest revision of each, cleared ones dropped), and hourly
and daily energy KPIs of lamps, circuits, districts and PV sites from
``energy.consumption-history.v1``. That topic has one key per period, so a restarted API reads
back the history it served before (``kpis.v1`` is compacted to the latest value of each series
and cannot). The newest ``HISTORY`` periods per series are kept.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from madina.auth import Credentials
from madina.bus import EventProducer
from madina.bus.reader import read_topic
from madina.bus.topics import ALERTS
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.energy.v1 import status_pb2
from madina_proto.kpis.v1 import kpis_pb2
from services.energy.domain.network import Network
from services.energy.domain.sun import SunCalendar
from services.energy.settings import EnergySettings
from services.energy.topics import CIRCUIT_STATUS, CONSUMPTION_HISTORY

HISTORY = 24 * 62  # hours (and days) kept per KPI series
_OPEN = {alerts_pb2.ALERT_STATE_RAISED, alerts_pb2.ALERT_STATE_UPDATED, alerts_pb2.ALERT_STATE_ESCALATED}
SeriesKey = tuple[str, str, str, str]  # kpi_id, entity kind, entity id, period ("hour" | "day")


@dataclass
class EnergyRuntime:
    settings: EnergySettings
    network: Network
    credentials: Credentials
    producer: EventProducer
    emission_factor_t_per_mwh: float = 0.0  # the processors' (settings over the config file)
    sun: SunCalendar = field(default_factory=SunCalendar)
    circuits: dict[str, status_pb2.CircuitStatusChanged] = field(default_factory=dict)
    open_alerts: dict[str, alerts_pb2.AlertEvent] = field(default_factory=dict)
    # Per series, period start -> value: a period's records may arrive in any order (its key, and
    # so its partition, is its own), and a later record of a period (a district revised) replaces it.
    series: dict[SeriesKey, dict[datetime, kpis_pb2.KpiObserved]] = field(
        default_factory=lambda: defaultdict(dict))
    feeds_ready: dict[str, asyncio.Event] = field(
        default_factory=lambda: {name: asyncio.Event() for name in ("status", "alerts", "history")})
    producer_ready: bool = False

    async def health(self) -> dict[str, Any]:
        return {
            "producer": "ok" if self.producer_ready else "starting",
            **{f"{name}_feed": "ok" if ready.is_set() else "starting" for name, ready in self.feeds_ready.items()},
        }

    def knows(self, kind: str, entity_id: str) -> bool:
        """Whether the network holds this lamp, circuit or district (``<city>/<district>``)."""
        if kind == "lamp":
            return entity_id in self.network.lamps
        if kind == "circuit":
            return entity_id in self.network.circuits
        city, _, district = entity_id.partition("/")
        return bool(district) and bool(self.network.circuits_in(city, district))

    def lamp_state(self, lamp_id: str) -> status_pb2.LampState | None:
        status = self.circuits.get(self.network.lamps[lamp_id].circuit)
        return next((lamp for lamp in status.lamps if lamp.lamp_id == lamp_id), None) if status else None

    def alerts_about(self, *entity_ids: str) -> list[alerts_pb2.AlertEvent]:
        return sorted((a for a in self.open_alerts.values() if a.source.entity_id in entity_ids),
                      key=lambda a: a.alert_id)

    def faults(self, city: str, district: str) -> list[alerts_pb2.AlertEvent]:
        """Newest raised first, as ListFaults promises (the id orders alerts raised together)."""
        return sorted(
            (a for a in self.open_alerts.values()
             if city in ("", a.district.city_id) and district in ("", a.district.district_id)),
            key=lambda a: (a.raise_time.ToDatetime(), a.alert_id), reverse=True)

    def periods(self, kpi_id: str, kind: str, entity_id: str, period: str) -> list[kpis_pb2.KpiObserved]:
        periods = self.series.get((kpi_id, kind, entity_id, period), {})
        return [periods[start] for start in sorted(periods)]

    def _on_status(self, circuit_id: str, event: status_pb2.CircuitStatusChanged | None) -> None:
        if event is None:
            self.circuits.pop(circuit_id, None)
        elif circuit_id in self.network.circuits and event.circuit_id == circuit_id:
            self.circuits[circuit_id] = event

    def _on_alert(self, alert_id: str, event: alerts_pb2.AlertEvent | None) -> None:
        if event is None or event.domain != "energy":
            return
        known = self.open_alerts.get(event.alert_id)
        if known is not None and known.revision >= event.revision:
            return
        if event.state in _OPEN:
            self.open_alerts[event.alert_id] = event
        else:
            self.open_alerts.pop(event.alert_id, None)

    def _on_kpi(self, key: str, event: kpis_pb2.KpiObserved | None) -> None:
        if event is None or event.domain != "energy":
            return
        scope = key.partition("/")[2].rpartition("/")[0]  # <kind>:<entity id>:<period>
        kind, _, rest = scope.partition(":")
        entity_id, _, period = rest.rpartition(":")
        history = self.series[(event.kpi_id, kind, entity_id, period)]
        history[event.observe_time.ToDatetime()] = event
        if len(history) > HISTORY:
            del history[min(history)]

    async def follow_feeds(self) -> None:
        """Read the three topics forever; each feed is ready once its backlog is read."""
        bootstrap = self.settings.bootstrap_servers
        await asyncio.gather(
            read_topic(bootstrap, CIRCUIT_STATUS, self._on_status, caught_up=self.feeds_ready["status"]),
            read_topic(bootstrap, ALERTS, self._on_alert, caught_up=self.feeds_ready["alerts"]),
            read_topic(bootstrap, CONSUMPTION_HISTORY, self._on_kpi, caught_up=self.feeds_ready["history"]),
        )
