"""A faust processor signs every alert it publishes when MADINA_ALERT_SIGNING_KEY_FILE is set
(the exactly-once sink in madina.streams), so operations and the ledgers accept its alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from madina.bus import ALERTS
from madina.bus.signing import RecordSigner
from services.environment.domain.measurands import StationKind
from tests.integration.environment.processor_harness import (
    create_topics,
    observation,
    produce_observations,
    start_processor,
)
from tests.support.operations import eventually
from tests.support.processor_kit import read_all

WATER = "cas-water-ain-chock"


async def test_the_environment_processor_signs_its_alerts(broker: str, tmp_path: Path) -> None:
    key_file = tmp_path / "alert-signing.key"
    key_file.write_text("k" * 64)
    await create_topics(broker)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    await produce_observations(broker, [[observation(WATER, now, StationKind.WATER, ecoli_cfu_100ml=12.0)]])
    processor = start_processor(broker, tmp_path, extra_env={"MADINA_ALERT_SIGNING_KEY_FILE": str(key_file)})
    try:
        published = await eventually(lambda: read_all(broker, ALERTS.name), timeout_s=60, interval_s=0.5)
    finally:
        processor.stop()

    signer = RecordSigner.from_file(key_file)
    assert [signer.problem(ALERTS.name, r.key, r.value, r.headers) for r in published] == [None] * len(published)
    forger = RecordSigner(b"f" * 32)
    assert forger.problem(ALERTS.name, published[0].key, published[0].value, published[0].headers) is not None
