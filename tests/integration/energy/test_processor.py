"""The energy circuit processor as a real faust worker against a real broker (embedded or Apache
Kafka): alerts exactly once across kill -9, and poison dead-lettered while the rest flows."""

from __future__ import annotations

from pathlib import Path

import pytest

from madina.bus.producer import HEADER_DLQ_REASON
from madina_proto.energy.v1 import telemetry_pb2
from services.energy.convert import lamp_telemetry_to_pb
from services.energy.topics import STREETLIGHT_TELEMETRY
from tests.integration.energy.harness import KIT, OBEYS, TRIPS, Night, oracle
from tests.support.processor_kit import assert_exactly_once, produce, produce_raw, read_all, settled_alerts


@pytest.mark.parametrize("broker", ["embedded", "apache-kafka"], indirect=True)
async def test_kill_9_mid_night_then_restart_publishes_every_alert_revision_exactly_once(
    broker: str, tmp_path: Path
) -> None:
    records = Night.scripted(hours=10).records()
    await KIT.kill_9_mid_stream(broker, tmp_path, records, oracle(records).alerts)


async def test_bad_telemetry_is_dead_lettered_while_the_rest_of_the_circuit_flows(broker: str, tmp_path: Path) -> None:
    night = Night.scripted(hours=7)
    records = night.records()
    # A batch of OBEYS holding one report of another circuit's lamp: that report alone is refused.
    _, key, batch = records[-3]
    stray = night.world.network.circuits[TRIPS].lamp_ids[0]
    mixed = telemetry_pb2.StreetlightTelemetryBatch()
    mixed.CopyFrom(batch)
    wrong = lamp_telemetry_to_pb(night.steps[-1][1][0])
    wrong.lamp_id = stray
    mixed.reports.append(wrong)
    assert key == OBEYS
    records[-3] = (STREETLIGHT_TELEMETRY, key, mixed)

    await KIT.create_topics(broker)
    processor = KIT.start(broker, tmp_path)
    try:
        await produce_raw(broker, STREETLIGHT_TELEMETRY.name, OBEYS.encode(), b"\x0a\xffnot protobuf")
        await produce(broker, records)
        expected = oracle(records).alerts
        events = await settled_alerts(broker, sum(expected.values()), timeout_s=60)
    finally:
        processor.stop()
    assert_exactly_once(events, expected)
    dead = await read_all(broker, STREETLIGHT_TELEMETRY.dead_letter.name)
    reasons = sorted(dict(r.headers)[HEADER_DLQ_REASON].decode() for r in dead)
    assert len(dead) == 2, reasons
    refused = [telemetry_pb2.StreetlightTelemetryBatch.FromString(r.value) for r in dead
               if b"wrong_circuit" in dict(r.headers)[HEADER_DLQ_REASON]]
    assert [[m.lamp_id for m in b.reports] for b in refused] == [[stray]], reasons
