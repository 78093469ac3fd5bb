"""A car park whose counts stop raises data-gap through the real processor and broker, and its next count clears it.

The processor ticks car parks on its own clock (here every 0.5 s) with a 3 s silence limit; the
registry holds one car park so no other one can fall silent during the test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from madina_proto.alerts.v1 import alerts_pb2
from services.mobility.convert import parking_to_wire
from services.mobility.domain.parking import ParkingObservation
from services.mobility.topics import PARKING_OCCUPANCY
from tests.integration.mobility.morning import KIT
from tests.support.processor_kit import alert_events, produce, wait_for_alerts

PARK = "BK-P1"


async def _count(broker: str, occupied: int) -> None:
    observation = ParkingObservation(PARK, datetime.now(UTC).replace(microsecond=0), occupied, 180)
    await produce(broker, [(PARKING_OCCUPANCY, PARK, parking_to_wire(observation))])


async def test_a_silent_car_park_raises_data_gap_and_its_next_count_clears_it(broker: str, tmp_path: Path) -> None:
    registry = tmp_path / "car_parks.csv"
    registry.write_text("car_park_id,display_name,city_id,lat,lon,capacity_spaces\n"
                        f"{PARK},Parking Place du 20 Août,berkane,34.9212,-2.3201,180\n", encoding="utf-8")
    await KIT.create_topics(broker)
    await _count(broker, 40)  # before the processor: it is counted before any tick can find the car park silent
    processor = KIT.start(broker, tmp_path, debug_trace=False, extra_env={
        "MADINA_MOBILITY_TICK_INTERVAL_S": "0.5",
        "MADINA_MOBILITY_CAR_PARK_SILENT_AFTER_S": "3",
        "MADINA_MOBILITY_CAR_PARKS_FILE": str(registry),
    })
    try:
        raised = (await wait_for_alerts(broker, 1, timeout_s=60))[0]
        assert raised.rule_id == "data-gap" and raised.state == alerts_pb2.ALERT_STATE_RAISED, raised
        assert raised.domain == "mobility" and raised.labels["car_park_id"] == PARK, raised
        assert raised.message.startswith("Car park Parking Place du 20 Août: no count ")
        assert raised.district.city_id == "berkane"
        await _count(broker, 45)
        events = await wait_for_alerts(broker, 2, timeout_s=60)
        assert [(e.rule_id, e.state) for e in events[:2]] == [
            ("data-gap", alerts_pb2.ALERT_STATE_RAISED), ("data-gap", alerts_pb2.ALERT_STATE_CLEARED)]
        assert events[1].alert_id == raised.alert_id
        assert "counting again" in events[1].message
    finally:
        processor.stop()
    assert len(await alert_events(broker)) <= 3  # at most the next silence, never a repeat of the same episode
