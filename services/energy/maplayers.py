"""What the energy domain shows on the operations map: its street lights and their faults.

Pure: a ``CircuitStatusChanged`` (energy.circuit-status.v1, keyed by circuit) in, one point per
lamp of the circuit out, placed from the lamp registry (the wire carries no positions). The status
carries each lamp's last relay state, dimming level and power, not its alerts, so a fault is judged
from those with the processor's own lamp rules (``data/energy.yaml``): commanded on but drawing
under the lamp-out floor, or over the over-power limit. A lamp of the circuit that has not
reported, or not for ``gap_factor`` reporting intervals, is UNKNOWN.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache

from madina.contract import optional_time
from madina.maplayers import Level, MapFeature
from madina_proto.energy.v1 import status_pb2
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
        level, status = lamp_level(lamp, state, now, silent_after, _lighting())
        features.append(_feature(lamp, state, level, status))
    return features


def lamp_level(
    lamp: Lamp, state: status_pb2.LampState | None, now: datetime | None, silent_after: timedelta | None,
    lighting: LightingConfig,
) -> tuple[Level, str]:
    if state is None:
        return Level.UNKNOWN, "no report yet"
    last = optional_time(state, "last_observe_time")
    if last is None:
        return Level.UNKNOWN, "no report time"
    if now is not None and silent_after is not None and now - last > silent_after:
        return Level.UNKNOWN, f"silent for {max(1, round((now - last) / timedelta(minutes=1)))} min"
    expected_w = lamp.rated_power_w * state.dimming_pct / 100.0
    if state.on and state.dimming_pct > 0:
        # The processor's lamp-out floor and over-power limit, for the same expected power.
        if state.power_w < max(lighting.out_floor_min_w, lighting.out_floor_fraction * expected_w):
            return Level.WARNING, f"lamp out (on, draws {state.power_w:.0f} W)"
        if state.power_w > expected_w * (1 + lighting.over_power_tolerance) + lighting.over_power_margin_w:
            return Level.WARNING, f"over power ({state.power_w:.0f} W, expected {expected_w:.0f} W)"
    if not state.on or state.dimming_pct <= 0:
        return Level.OK, "off"
    if state.dimming_pct >= 100:
        return Level.OK, "on"
    return Level.OK, f"dimmed to {state.dimming_pct:.0f} %"


def _feature(lamp: Lamp, state: status_pb2.LampState | None, level: Level, status: str) -> MapFeature:
    details = {"circuit": lamp.circuit, "cabinet": lamp.cabinet}
    if state is not None:
        details["power"] = f"{state.power_w:.1f} W"
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
