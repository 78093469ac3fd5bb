"""What the energy domain shows on the operations map: its street lights and their faults.

Pure: a ``CircuitStatusChanged`` (energy.circuit-status.v1, keyed by circuit) in, one point per
lamp of the circuit out, placed from the lamp registry (the wire carries no positions). A lamp's
colour is the processor's verdict, read from the alerts the status lists as open, so the map never
disagrees with the alerts operations shows: a lamp alert (fault, lamp-out, over-power, voltage,
lamp-on-by-day) colours its lamp, an open circuit-dark alert every lamp it lists, MAJOR and worse
CRITICAL, MINOR and WARNING as WARNING. A lamp whose last report is older than ``gap_factor``
reporting intervals, or under an open data gap (its own or its circuit's), is UNKNOWN, as is one
that has not reported. A status published before statuses carried alerts colours nothing; the
processor replaces it within 15 minutes of event time.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import cache

from madina.alerts import DATA_GAP_RULE_ID
from madina.contract import optional_time
from madina.maplayers import Level, MapFeature
from madina_proto.alerts.v1 import alerts_pb2
from madina_proto.energy.v1 import status_pb2
from services.energy.domain.circuit import (
    CIRCUIT_DARK,
    FAULT,
    LAMP_ON_BY_DAY,
    LAMP_OUT,
    OVER_POWER,
    VOLTAGE,
)
from services.energy.domain.config import LightingConfig, load_config
from services.energy.domain.network import Lamp, Network, load_network

DOMAIN = "energy"
KIND = "streetlight"


@cache
def _network() -> Network:
    return load_network()


@cache
def _lighting() -> LightingConfig:
    return load_config().lighting


def streetlight_features(message: status_pb2.CircuitStatusChanged) -> list[MapFeature]:
    """Every lamp of the circuit the registry places, reported or not; unknown lamps are left off."""
    network = _network()
    circuit = network.circuits.get(message.circuit_id)
    reported = {lamp.lamp_id: lamp for lamp in message.lamps}
    lamp_ids = list(circuit.lamp_ids) if circuit is not None else []
    lamp_ids += sorted(lamp_id for lamp_id in reported if lamp_id not in lamp_ids)
    silent_after = circuit.reporting_interval * _lighting().gap_factor if circuit is not None else None
    now = optional_time(message, "change_time")
    features = []
    for lamp_id in lamp_ids:
        lamp = network.lamps.get(lamp_id)
        if lamp is None:
            continue
        state = reported.get(lamp_id)
        level, status = lamp_level(lamp, state, message, now, silent_after)
        features.append(_feature(lamp, state, level, status, message))
    return features


def lamp_level(
    lamp: Lamp, state: status_pb2.LampState | None, message: status_pb2.CircuitStatusChanged,
    now: datetime | None, silent_after: timedelta | None,
) -> tuple[Level, str]:
    alerts = alerts_on(lamp.id, message)
    if state is None:
        return Level.UNKNOWN, "no report yet"
    last = optional_time(state, "last_observe_time")
    if last is None:
        return Level.UNKNOWN, "no report time"
    if now is not None and silent_after is not None and now - last > silent_after:
        return Level.UNKNOWN, f"silent for {max(1, round((now - last) / timedelta(minutes=1)))} min"
    faults = [alert for alert in alerts if alert.rule_id != DATA_GAP_RULE_ID]
    if faults:
        worst = max(faults, key=lambda alert: alert.severity)
        return _level(worst.severity), "; ".join(_describe(alert, lamp, state) for alert in faults)
    if any(alert.rule_id == DATA_GAP_RULE_ID for alert in alerts):
        return Level.UNKNOWN, "silent"
    if not state.on or state.dimming_pct <= 0:
        return Level.OK, "off"
    if state.dimming_pct >= 100:
        return Level.OK, "on"
    return Level.OK, f"dimmed to {state.dimming_pct:.0f} %"


def alerts_on(lamp_id: str, message: status_pb2.CircuitStatusChanged) -> list[status_pb2.OpenAlert]:
    """The open alerts that concern one lamp: its own, the circuit-dark alert listing it, and the
    circuit's data gap (a silent cabinet); worst first."""
    listed = lamp_id in message.faulty_lamp_ids
    mine = [
        alert for alert in message.open_alerts
        if alert.source_id == lamp_id
        or (alert.source_id == message.circuit_id and alert.rule_id == CIRCUIT_DARK and listed)
        or (alert.source_id == message.circuit_id and alert.rule_id == DATA_GAP_RULE_ID)
    ]
    return sorted(mine, key=lambda alert: -alert.severity)


def _level(severity: int) -> Level:
    if severity >= alerts_pb2.SEVERITY_MAJOR:
        return Level.CRITICAL
    if severity >= alerts_pb2.SEVERITY_WARNING:
        return Level.WARNING
    return Level.WATCH


def _describe(alert: status_pb2.OpenAlert, lamp: Lamp, state: status_pb2.LampState) -> str:
    if alert.rule_id == FAULT:
        return f"fault {state.fault_code}" if state.fault_code else "fault reported"
    if alert.rule_id == LAMP_OUT:
        return f"lamp out ({state.power_w:.0f} W drawn)"
    if alert.rule_id == OVER_POWER:
        expected_w = lamp.rated_power_w * state.dimming_pct / 100.0
        return f"over power ({state.power_w:.0f} W, expected {expected_w:.0f} W)"
    if alert.rule_id == VOLTAGE:
        return f"supply {state.voltage_v:.0f} V" if state.HasField("voltage_v") else "supply voltage out of range"
    if alert.rule_id == LAMP_ON_BY_DAY:
        return f"lit by day ({state.power_w:.0f} W)"
    if alert.rule_id == CIRCUIT_DARK:
        return "circuit dark"
    return alert.rule_id


def _feature(
    lamp: Lamp, state: status_pb2.LampState | None, level: Level, status: str, message: status_pb2.CircuitStatusChanged
) -> MapFeature:
    details = {"circuit": lamp.circuit, "cabinet": lamp.cabinet}
    if message.lamp_count:
        details["circuit faults"] = f"{len(message.faulty_lamp_ids)} of {message.lamp_count} lamps"
    if state is not None:
        details["power"] = f"{state.power_w:.1f} W"
        if state.HasField("voltage_v"):
            details["voltage"] = f"{state.voltage_v:.0f} V"
        if state.fault_code:
            details["fault code"] = state.fault_code
    circuit_alerts = _rules(a for a in message.open_alerts if a.source_id == message.circuit_id)
    if circuit_alerts:
        details["circuit alerts"] = circuit_alerts
    return MapFeature(
        feature_id=f"{DOMAIN}/{KIND}/{lamp.id}",
        domain=DOMAIN,
        kind=KIND,
        label=f"Lamp {lamp.id}",
        city_id=lamp.city,
        points=((lamp.lat, lamp.lon),),
        level=level,
        status=status,
        observe_time=optional_time(state, "last_observe_time") if state is not None else None,
        details=details,
    )


def _rules(alerts: Iterable[status_pb2.OpenAlert]) -> str:
    return ", ".join(sorted({alert.rule_id for alert in alerts}))
