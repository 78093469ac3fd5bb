"""What a circuit's status tells an operator beyond its lamps' last reports: which lamps are in
fault, the supply voltage, and the alerts open on the circuit and its lamps.

Pure, and read from the :class:`~.circuit.CircuitState` the evaluator keeps, not from alerts.v1:
the status (energy.circuit-status.v1) is published from the same state as the alerts, so the map
and the read API show the same moment as the alerts operations receives, and a reader of the
compacted status topic needs no second topic to tell a failed lamp from a healthy one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from madina.alerts import EpisodeState, Severity
from services.energy.domain.circuit import (
    FAULT,
    LAMP_ON_BY_DAY,
    LAMP_OUT,
    OVER_POWER,
    VOLTAGE,
    CircuitState,
)
from services.energy.domain.network import Circuit

FAULT_RULES = frozenset({FAULT, LAMP_OUT, OVER_POWER, VOLTAGE, LAMP_ON_BY_DAY})
"""Lamp rules whose open alert puts the lamp in fault; a data gap only makes it unknown."""


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert open on the circuit or one of its lamps (the full event is on alerts.v1)."""

    alert_id: str
    source_id: str
    rule_id: str
    severity: Severity
    raise_time: datetime


@dataclass(frozen=True, slots=True)
class CircuitHealth:
    open_alerts: tuple[OpenAlert, ...]
    """The circuit's own first, then its lamps' by lamp id and rule."""
    faulty_lamp_ids: tuple[str, ...]
    """In registry order: an open fault-rule alert, a fault code in the last report, or listed by
    the open circuit-dark alert."""
    lamp_count: int
    min_voltage_v: float | None
    max_voltage_v: float | None


def circuit_health(state: CircuitState, circuit: Circuit) -> CircuitHealth:
    circuit_alerts = [_open(e) for e in (state.dark, state.feed_gap.episode, state.command_alert) if e.active]
    lamp_alerts: list[OpenAlert] = []
    faulty = set(state.dark_lamps) if state.dark.active else set()
    voltages: list[float] = []
    for lamp_id, lamp in sorted(state.lamps.items()):
        episodes = dict(lamp.episodes)
        if lamp.gap is not None and lamp.gap.episode.active:
            episodes[lamp.gap.episode.rule_id] = lamp.gap.episode
        lamp_alerts += [_open(episodes[rule]) for rule in sorted(episodes) if episodes[rule].active]
        if lamp.fault_code or any(rule in FAULT_RULES and e.active for rule, e in episodes.items()):
            faulty.add(lamp_id)
        if lamp.voltage_v is not None:
            voltages.append(lamp.voltage_v)
    registry = {lamp_id: index for index, lamp_id in enumerate(circuit.lamp_ids)}
    return CircuitHealth(
        open_alerts=(*sorted(circuit_alerts, key=lambda a: a.rule_id), *lamp_alerts),
        faulty_lamp_ids=tuple(sorted(faulty, key=lambda lamp_id: (registry.get(lamp_id, len(registry)), lamp_id))),
        lamp_count=len(circuit.lamp_ids),
        min_voltage_v=min(voltages, default=None),
        max_voltage_v=max(voltages, default=None),
    )


def _open(episode: EpisodeState) -> OpenAlert:
    assert episode.alert_id is not None and episode.severity is not None and episode.raise_time is not None
    return OpenAlert(episode.alert_id, episode.source_id, episode.rule_id, episode.severity, episode.raise_time)
