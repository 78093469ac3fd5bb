"""Validating and publishing telemetry and dimming commands, shared by HTTP and gRPC.

Validation is the domain's (``validate_lamp_telemetry``, ``validate_generation``,
``validate_schedule``): a bad field raises :class:`Rejected` naming it, and nothing of that request
is published. Accepted reports become one record per circuit (street lights) or per site (PV).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from madina.bus import EventProducer
from madina.http import parse_items
from madina.inputs import UtcTime, echo
from madina_proto.energy.v1 import telemetry_pb2
from services.energy.convert import batch_to_pb, command_to_pb, generation_to_pb
from services.energy.domain.dimming import DimmingSchedule, LightingCommand, ScheduleError, commands_between
from services.energy.domain.network import Network
from services.energy.domain.sun import SunCalendar
from services.energy.domain.telemetry import (
    GenerationReading,
    LampTelemetry,
    validate_generation,
    validate_lamp_telemetry,
)
from services.energy.topics import GENERATION, LIGHTING_COMMANDS, STREETLIGHT_TELEMETRY

R = TypeVar("R")


class Rejected(ValueError):
    """Raised with a message naming the field, e.g. ``reports[3].power_w: ...``."""


def _prefixed(problems: list[str], where: str) -> str:
    return "; ".join(f"{where}.{problem}" if where else problem for problem in problems)


def check_lamp_report(report: LampTelemetry, network: Network, where: str = "") -> None:
    problems = validate_lamp_telemetry(report, network.lamps)
    if problems:
        raise Rejected(_prefixed(problems, where))


def check_generation(report: GenerationReading, network: Network, where: str = "") -> None:
    problems = validate_generation(report, network.pv_sites)
    if problems:
        raise Rejected(_prefixed(problems, where))


# The ingest contract: one JSON report each (the HTTP body's and an MQTT message's shape).
Number = Annotated[float, Field(strict=False, allow_inf_nan=False)]


class StreetlightReport(BaseModel):
    model_config = ConfigDict(extra="forbid", title="StreetlightReport")
    lamp_id: str = Field(min_length=1, max_length=64, description="Lamp that reported.")
    observe_time: UtcTime = Field(description="When it was measured, RFC 3339 with offset.")
    on: bool = Field(strict=True, description="Relay state: true when switched on.")
    dimming_pct: Number = Field(description="Dimming level, percent of rated output, 0-100.")
    power_w: Number = Field(description="Active power drawn, watts.")
    voltage_v: Number | None = Field(default=None, description="Supply voltage, volts.")
    energy_wh: Number | None = Field(default=None, description="Cumulative energy counter, watt-hours.")
    fault_code: str = Field(default="", max_length=64, description="Vendor fault code; empty when healthy.")


class GenerationReport(BaseModel):
    model_config = ConfigDict(extra="forbid", title="GenerationReport")
    site_id: str = Field(min_length=1, max_length=64, description="PV site that reported.")
    observe_time: UtcTime = Field(description="When it was measured, RFC 3339 with offset.")
    power_kw: Number = Field(description="AC power fed in, kilowatts.")
    energy_wh: Number | None = Field(default=None, description="Cumulative AC energy counter, watt-hours.")
    poa_irradiance_wm2: Number | None = Field(default=None, description="Plane-of-array irradiance, W/m².")


def parse_lamp_reports(body: Any, network: Network, max_batch: int) -> list[LampTelemetry]:
    """One ``StreetlightReport`` or ``{"reports": [...]}``, checked; InvalidInput or Rejected names the field."""
    return _parse_reports(body, StreetlightReport, LampTelemetry, check_lamp_report, network, max_batch)


def parse_generation(body: Any, network: Network, max_batch: int) -> list[GenerationReading]:
    """One ``GenerationReport`` or ``{"reports": [...]}``, checked; InvalidInput or Rejected names the field."""
    return _parse_reports(body, GenerationReport, GenerationReading, check_generation, network, max_batch)


def _parse_reports(body: Any, model: type[BaseModel], make: Callable[..., R], check: Callable[[R, Network, str], None],
                   network: Network, max_batch: int) -> list[R]:
    reports = []
    for where, item in parse_items(body, model, "reports", max_batch):
        report = make(**item.model_dump())
        check(report, network, where)
        reports.append(report)
    return reports


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


async def publish_lamp_reports(producer: EventProducer, network: Network, reports: Sequence[LampTelemetry]) -> int:
    """One batch per circuit; returns once every record is acknowledged (acks=all)."""
    by_circuit: dict[str, list[LampTelemetry]] = defaultdict(list)
    for report in reports:
        by_circuit[network.lamps[report.lamp_id].circuit].append(report)
    futures = [
        await producer.send(STREETLIGHT_TELEMETRY, circuit_id, batch_to_pb(circuit_id, batch),
                            event_time_ms=_ms(max(r.observe_time for r in batch)))
        for circuit_id, batch in by_circuit.items()
    ]
    await asyncio.gather(*futures)
    return len(reports)


async def publish_generation(producer: EventProducer, reports: Sequence[GenerationReading]) -> int:
    by_site: dict[str, list[GenerationReading]] = defaultdict(list)
    for report in reports:
        by_site[report.site_id].append(report)
    futures = [
        await producer.send(
            GENERATION, site_id,
            telemetry_pb2.GenerationObservedBatch(site_id=site_id, reports=[generation_to_pb(r) for r in batch]),
            event_time_ms=_ms(max(r.observe_time for r in batch)))
        for site_id, batch in by_site.items()
    ]
    await asyncio.gather(*futures)
    return len(reports)


MAX_COMMANDS = 10_000


def plan_schedule(
    schedule: DimmingSchedule, network: Network, start: datetime, end: datetime, sun: SunCalendar, now: datetime
) -> list[LightingCommand]:
    """The schedule's commands in ``[start, end)``, issued ``now`` by the schedule's issuer."""
    if end <= start:
        raise Rejected("end_time: must be after start_time")
    if (end - start).days > 31:
        raise Rejected("end_time: at most 31 days after start_time")
    try:
        commands = commands_between(schedule, network, start, end, sun, issue_time=now)
    except ScheduleError as error:
        raise Rejected(str(error)) from None
    if len(commands) > MAX_COMMANDS:
        raise Rejected(f"end_time: the window implies {len(commands)} commands, at most {MAX_COMMANDS}")
    if not commands:
        raise Rejected(f"start_time: schedule {echo(schedule.schedule_id)} sets no level in this window")
    return commands


async def publish_commands(producer: EventProducer, commands: Sequence[LightingCommand]) -> None:
    futures = [
        await producer.send(LIGHTING_COMMANDS, c.circuit_id, command_to_pb(c), event_time_ms=_ms(c.effective_time))
        for c in commands
    ]
    await asyncio.gather(*futures)
