"""The mobility processor as a real faust worker: exactly once across kill -9, on both brokers."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.mobility.domain.evaluator import MobilityConfig
from tests.integration.mobility.morning import KIT, delay_waves, expected_alerts, schedule, service_day


@pytest.mark.parametrize("broker", ["embedded", "apache-kafka"], indirect=True)
async def test_kill_9_mid_stream_then_restart_publishes_every_alert_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    plan = schedule()
    records = delay_waves(plan, service_day())
    expected = expected_alerts(plan, records, MobilityConfig())
    assert sum(expected.values()) > 20
    await KIT.kill_9_mid_stream(broker, tmp_path, records, expected)
