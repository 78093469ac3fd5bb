"""The energy circuit processor as a real faust worker against a real broker (embedded or Apache
Kafka): every alert revision exactly once across kill -9 (dead letters: test_night_and_day)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.energy.harness import KIT, Night, oracle


@pytest.mark.parametrize("broker", ["embedded", "apache-kafka"], indirect=True)
async def test_kill_9_mid_night_then_restart_publishes_every_alert_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    records = Night.scripted(hours=8).records()
    await KIT.kill_9_mid_stream(broker, tmp_path, records, oracle(records).alerts)
