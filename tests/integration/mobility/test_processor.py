"""The mobility processor as a real faust worker: exactly once across kill -9, on both brokers.

The stream mixes every kind of entity the processor keeps: routes (trip delay episodes), cards
(cloned cards raise and clear ticket-fraud) and car parks (car-park-full raised and cleared).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path

import pytest

from services.mobility.convert import parking_to_wire, validation_to_wire
from services.mobility.domain.evaluator import MobilityConfig
from services.mobility.domain.parking import ParkingObservation, load_car_parks
from services.mobility.domain.tickets import Validation
from services.mobility.processor.app import mobility_processor
from services.mobility.settings import MobilityProcessorSettings
from services.mobility.topics import PARKING_OCCUPANCY, TICKET_VALIDATIONS
from tests.integration.mobility.morning import KIT, delay_waves, expected_alerts, schedule, service_day
from tests.support.processor_kit import Record, expected_from_step


def tickets_and_car_parks(now: datetime) -> list[Record]:
    """Twelve cloned cards (raise, then clear after an hour of plausible validations) and every
    car park full for 20 min (raise), then emptying (clear), each entity's records in time order."""
    streams: list[list[Record]] = []
    start = now - timedelta(hours=3)
    for n in range(12):
        card, t = f"{n:02x}" * 32, start + timedelta(minutes=n)
        validations = [
            Validation(f"{n}-a", card, "BK-E01", "BK-1", 34.9335, -2.3360, t, "BK-HH1"),
            Validation(f"{n}-b", card, "CA-T07", "CA-T1", 33.5790, -7.5060, t + timedelta(minutes=5), "CA-SM1"),
            Validation(f"{n}-c", card, "CA-T08", "CA-T1", 33.5795, -7.5065, t + timedelta(minutes=70), "CA-SM1"),
            Validation(f"{n}-d", card, "CA-T09", "CA-T1", 33.5790, -7.5060, t + timedelta(minutes=135), "CA-SM1"),
        ]
        streams.append([(TICKET_VALIDATIONS, card, validation_to_wire(v)) for v in validations])
    for park in load_car_parks().values():
        counts = [(0, park.capacity), (10, park.capacity), (20, park.capacity), (30, 0), (40, 0)]
        streams.append([(PARKING_OCCUPANCY, park.car_park_id, parking_to_wire(ParkingObservation(
            park.car_park_id, start + timedelta(minutes=minute), occupied, park.capacity)))
            for minute, occupied in counts])
    return [record for round_ in zip_longest(*streams) for record in round_ if record is not None]


@pytest.mark.parametrize("broker", ["embedded", "apache-kafka"], indirect=True)
async def test_kill_9_mid_stream_then_restart_publishes_every_alert_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    plan = schedule()
    routes = delay_waves(plan, service_day())
    now = datetime.now(UTC)
    counts = tickets_and_car_parks(now)
    expected = expected_alerts(plan, routes, MobilityConfig())
    expected_counts = expected_from_step(mobility_processor(MobilityProcessorSettings()), counts, now)
    assert sum(expected.values()) > 20 and sum(expected_counts.values()) == 12 * 2 + 6 * 2
    # Spread through the stream, so some of each kind are applied before the kill and some after.
    step = len(routes) // len(counts) + 1
    records = [r for i in range(0, len(routes), step) for r in (*routes[i:i + step], *counts[i // step:i // step + 1])]
    records += counts[len(range(0, len(routes), step)):]
    assert sorted(map(id, records)) == sorted(map(id, routes + counts))
    await KIT.kill_9_mid_stream(broker, tmp_path, records, expected + expected_counts)
