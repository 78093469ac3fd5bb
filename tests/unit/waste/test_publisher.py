"""The waste publisher: one record per container, stamped with that container's newest reading."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from services.waste.api.publisher import publish
from services.waste.domain.readings import Reading
from tests.unit.environment.test_publisher import RecordingProducer

T0 = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def test_each_container_is_one_record_stamped_with_its_own_newest_reading() -> None:
    minutes = [("h1", 4), ("h2", 8), ("h1", 11), ("h3", 1), ("h2", 2)]
    readings = [Reading(container_id=c, observe_time=T0 + timedelta(minutes=m), fill_ratio=0.5) for c, m in minutes]
    producer = RecordingProducer()

    assert asyncio.run(publish(producer, readings)) == 5  # type: ignore[arg-type]

    def ms(minute: int) -> int:
        return int((T0 + timedelta(minutes=minute)).timestamp() * 1000)

    assert sorted(producer.sent) == [("waste.container-levels.v1", "h1", ms(11)),
                                     ("waste.container-levels.v1", "h2", ms(8)),
                                     ("waste.container-levels.v1", "h3", ms(1))]
