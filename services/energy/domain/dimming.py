"""Dimming control, the pure part: schedules -> per-circuit commands -> confirmation or timeout.

A :class:`DimmingSchedule` is a list of steps for a district or a set of circuits, each a
trigger and a level, e.g. ``sunset 100 %``, ``23:00 50 %``, ``01:00 30 %``, ``sunrise 0 %``.
Sun triggers (``sunset``, ``sunrise``, ``dusk`` = civil dusk, ``dawn`` = civil dawn) are worked
out for the circuit's location on the day; clock triggers (``HH:MM``) are in the city's local
time (``Africa/Casablanca`` follows Morocco's UTC+1 and its Ramadan UTC+0).

:func:`commands_between` expands a schedule to one :class:`LightingCommand` per circuit per step
occurrence in a time window; commands are events that carry who sent them and why (issuer,
reason, schedule id) so ``energy.lighting-commands.v1`` is an audit trail. Their ids are derived
from their content, so expanding the same window twice gives the same commands.

Confirmation and timeouts work on a circuit's pending commands (see :mod:`.circuit`):
:func:`lamp_matches` says whether one lamp report shows a command's level (within the tolerance),
and a command is confirmed once ``confirm_fraction`` of the circuit's lamps have shown it after it
took effect. One not confirmed ``command_timeout`` after taking effect raises ``command-timeout``.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from madina.alerts.timeutil import require_utc, time_from_text, time_to_text
from services.energy.domain.network import Circuit, Network
from services.energy.domain.sun import SunCalendar
from services.energy.domain.telemetry import LampTelemetry

SUN_TRIGGERS = {"sunset": "sunset", "sunrise": "sunrise", "dusk": "civil_dusk", "dawn": "civil_dawn"}
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class ScheduleError(ValueError):
    """A schedule that cannot be expanded; the message names the field."""


@dataclass(frozen=True, slots=True)
class ScheduleStep:
    trigger: str
    """``sunset``, ``sunrise``, ``dusk``, ``dawn`` or local ``HH:MM``."""
    dimming_pct: float
    """Level from this trigger on; 0 switches the circuit off."""


@dataclass(frozen=True)
class DimmingSchedule:
    """A night's dimming plan for a district (all its circuits) or for named circuits."""

    schedule_id: str
    city: str
    steps: tuple[ScheduleStep, ...]
    issuer: str
    """Who set the schedule (operator or agency id), for the audit trail."""
    reason: str
    district: str = ""
    """Every circuit of this district, when set."""
    circuit_ids: tuple[str, ...] = ()
    """These circuits, when set (and no district)."""


@dataclass(frozen=True, slots=True)
class LightingCommand:
    """An instruction to one circuit: go to ``dimming_pct`` at ``effective_time``."""

    command_id: str
    circuit_id: str
    dimming_pct: float
    effective_time: datetime
    issue_time: datetime
    issuer: str
    reason: str
    schedule_id: str = ""
    trigger: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "command_id": self.command_id, "circuit_id": self.circuit_id, "dimming_pct": self.dimming_pct,
            "effective_time": time_to_text(self.effective_time), "issue_time": time_to_text(self.issue_time),
            "issuer": self.issuer, "reason": self.reason, "schedule_id": self.schedule_id, "trigger": self.trigger,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LightingCommand:
        effective, issued = time_from_text(data["effective_time"]), time_from_text(data["issue_time"])
        assert effective is not None and issued is not None
        return cls(
            command_id=data["command_id"], circuit_id=data["circuit_id"], dimming_pct=float(data["dimming_pct"]),
            effective_time=effective, issue_time=issued, issuer=data["issuer"], reason=data["reason"],
            schedule_id=data.get("schedule_id", ""), trigger=data.get("trigger", ""),
        )


@dataclass(frozen=True, slots=True)
class CommandConfirmation:
    """A command the telemetry showed carried out."""

    command_id: str
    circuit_id: str
    confirm_time: datetime
    """Event time of the report that completed the confirmation."""
    matched_lamps: int
    late: bool
    """True if it came after the timeout (a command-timeout alert was raised meanwhile)."""


def validate_schedule(schedule: DimmingSchedule, network: Network) -> list[str]:
    """Problems with a schedule, each naming its field; empty when valid."""
    errors: list[str] = []
    if not schedule.schedule_id:
        errors.append("schedule_id: must not be empty")
    if not schedule.issuer:
        errors.append("issuer: must not be empty")
    if schedule.city not in network.timezones:
        errors.append(f"city: unknown city {schedule.city!r}")
    if bool(schedule.district) == bool(schedule.circuit_ids):
        errors.append("district: give a district or circuit_ids, not both or neither")
    elif schedule.district and not network.circuits_in(schedule.city, schedule.district):
        errors.append(f"district: no circuits in {schedule.city}/{schedule.district}")
    for index, circuit_id in enumerate(schedule.circuit_ids):
        circuit = network.circuits.get(circuit_id)
        if circuit is None or circuit.city != schedule.city:
            errors.append(f"circuit_ids[{index}]: unknown circuit {circuit_id!r} in {schedule.city}")
    if not schedule.steps:
        errors.append("steps: at least one step is required")
    triggers: set[str] = set()
    for index, step in enumerate(schedule.steps):
        if step.trigger not in SUN_TRIGGERS and not _CLOCK.match(step.trigger):
            expected = "expected sunset, sunrise, dusk, dawn or HH:MM"
            errors.append(f"steps[{index}].trigger: {expected}, got {step.trigger!r}")
        if step.trigger in triggers:
            errors.append(f"steps[{index}].trigger: {step.trigger} given twice")
        triggers.add(step.trigger)
        if not 0 <= step.dimming_pct <= 100:
            errors.append(f"steps[{index}].dimming_pct: {step.dimming_pct:g} outside 0..100 %")
    return errors


def scope_circuits(schedule: DimmingSchedule, network: Network) -> list[Circuit]:
    if schedule.district:
        return network.circuits_in(schedule.city, schedule.district)
    return [network.circuits[cid] for cid in sorted(schedule.circuit_ids)]


def commands_between(
    schedule: DimmingSchedule,
    network: Network,
    start: datetime,
    end: datetime,
    sun: SunCalendar,
    issue_time: datetime | None = None,
) -> list[LightingCommand]:
    """Every command the schedule implies with ``start <= effective_time < end``, by time then circuit.

    ``issue_time`` defaults to each command's effective time (a scheduler issuing on time).
    """
    problems = validate_schedule(schedule, network)
    if problems:
        raise ScheduleError("; ".join(problems))
    start, end = require_utc(start, "start"), require_utc(end, "end")
    zone = ZoneInfo(network.timezones[schedule.city])
    commands: list[LightingCommand] = []
    for circuit in scope_circuits(schedule, network):
        lat, lon = _circuit_location(circuit, network)
        for moment, step in _occurrences(schedule, lat, lon, zone, start - timedelta(days=1), end, sun):
            if start <= moment < end:
                commands.append(_command(schedule, circuit.id, step, moment, issue_time or moment))
    commands.sort(key=lambda c: (c.effective_time, c.circuit_id))
    return commands


def level_at(
    schedule: DimmingSchedule, circuit: Circuit, network: Network, moment: datetime, sun: SunCalendar
) -> float:
    """The level the schedule sets for ``circuit`` at ``moment`` (the latest step at or before it)."""
    moment = require_utc(moment, "moment")
    lat, lon = _circuit_location(circuit, network)
    zone = ZoneInfo(network.timezones[schedule.city])
    latest: tuple[datetime, ScheduleStep] | None = None
    for occurrence in _occurrences(schedule, lat, lon, zone, moment - timedelta(days=2), moment, sun):
        if occurrence[0] <= moment and (latest is None or occurrence[0] >= latest[0]):
            latest = occurrence
    return latest[1].dimming_pct if latest is not None else 0.0


def lamp_matches(command: LightingCommand, reading: LampTelemetry, tolerance_pct: float) -> bool:
    """Whether one lamp report shows the command carried out."""
    if command.dimming_pct <= 0:
        return not reading.on or reading.dimming_pct <= tolerance_pct
    return reading.on and abs(reading.dimming_pct - command.dimming_pct) <= tolerance_pct


def command_id(schedule_id: str, circuit_id: str, effective_time: datetime, dimming_pct: float) -> str:
    material = "\x1f".join((schedule_id, circuit_id, time_to_text(effective_time) or "", f"{dimming_pct:g}"))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()[:32]


def _command(
    schedule: DimmingSchedule, circuit_id: str, step: ScheduleStep, moment: datetime, issued: datetime
) -> LightingCommand:
    return LightingCommand(
        command_id=command_id(schedule.schedule_id, circuit_id, moment, step.dimming_pct),
        circuit_id=circuit_id, dimming_pct=step.dimming_pct, effective_time=moment,
        issue_time=require_utc(issued, "issue_time"), issuer=schedule.issuer, reason=schedule.reason,
        schedule_id=schedule.schedule_id, trigger=step.trigger,
    )


def _occurrences(
    schedule: DimmingSchedule, lat: float, lon: float, zone: ZoneInfo, start: datetime, end: datetime,
    sun: SunCalendar,
) -> list[tuple[datetime, ScheduleStep]]:
    found: list[tuple[datetime, ScheduleStep]] = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    while day <= last:
        for step in schedule.steps:
            moment = _trigger_time(step.trigger, day, lat, lon, zone, sun)
            if moment is not None:
                found.append((moment, step))
        day += timedelta(days=1)
    return found


def _trigger_time(trigger: str, day: date, lat: float, lon: float, zone: ZoneInfo, sun: SunCalendar) -> datetime | None:
    event = SUN_TRIGGERS.get(trigger)
    if event is not None:
        try:
            return sun.times(lat, lon, day).at(event)
        except ValueError:  # the event does not happen that day there
            return None
    match = _CLOCK.match(trigger)
    assert match is not None
    local = datetime.combine(day, time(int(match.group(1)), int(match.group(2))), tzinfo=zone)
    return local.astimezone(UTC)


def _circuit_location(circuit: Circuit, network: Network) -> tuple[float, float]:
    lamp = network.lamps[circuit.lamp_ids[0]]
    return lamp.lat, lamp.lon
