"""A worker whose input partitions stay paused after recovery heals itself and misses nothing.

CI saw a restarted processor on Apache Kafka that recovered, swept its outboxes and then applied
nothing for two minutes; the gate that stayed shut is not known. Here one is shut on purpose: the
real processor, whose stream partitions faust pauses once more right after its recovery completes
(as if the resume had been lost). :class:`madina.streams.watchdog.ConsumptionWatchdog` must see the
stall, re-open the gates, and every alert must then arrive exactly once.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.integration.environment.processor_harness import (
    create_topics,
    episodic_stream,
    expected_transitions,
    produce_observations,
    start_processor,
)
from tests.support.processor_kit import assert_exactly_once, settled_alerts

REPO_ROOT = Path(__file__).resolve().parents[3]

PAUSED_AFTER_RECOVERY_PROCESSOR = """
import sys
from faust.tables.recovery import Recovery

on_recovery_completed = Recovery.on_recovery_completed
stalled = False

async def completed_then_paused(self, *args, **kwargs):
    global stalled
    await on_recovery_completed(self, *args, **kwargs)
    if not stalled:
        stalled = True
        consumer = self.app.consumer
        consumer.pause_partitions({tp for tp in consumer.assignment() if not consumer._is_changelog_tp(tp)})

Recovery.on_recovery_completed = completed_then_paused
from madina.cli import main
sys.argv = ["madina", "service", "environment-processor"]
sys.exit(main(sys.argv[1:]))
"""


# The real processor, whose consumer loses what it fetched right after recovery: aiokafka's position
# jumps to the end of every stream partition while faust delivers nothing and nothing is committed
# (what the final CI run of stop 20 showed: position 720 of 720, read offset and committed offset
# null). Only a seek of the uncommitted partitions back to their beginning brings those records back.
FETCHED_AND_LOST_PROCESSOR = """
import sys
from aiokafka import TopicPartition
from faust.tables.recovery import Recovery

on_recovery_completed = Recovery.on_recovery_completed
lost = False

async def completed_then_lost(self, *args, **kwargs):
    global lost
    await on_recovery_completed(self, *args, **kwargs)
    if not lost:
        lost = True
        consumer = self.app.consumer
        streams = [TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment()
                   if not consumer._is_changelog_tp(tp)]
        aiokafka_consumer = consumer._thread._ensure_consumer()
        await consumer._thread.call_thread(aiokafka_consumer.seek_to_end, *streams)

Recovery.on_recovery_completed = completed_then_lost
from madina.cli import main
sys.argv = ["madina", "service", "environment-processor"]
sys.exit(main(sys.argv[1:]))
"""


async def _run_with_faulty_consumer(broker: str, tmp_path: Path, program: str) -> tuple[str, Callable[[], None]]:
    """The episodic stream through ``program`` (the processor with a fault injected): its log, and
    the check that its alerts are exactly the oracle's."""
    await create_topics(broker)
    records = episodic_stream(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    expected = expected_transitions(records)
    await produce_observations(broker, records)

    processor = start_processor(broker, tmp_path, argv=[sys.executable, "-c", program],
                                extra_env={"PYTHONPATH": str(REPO_ROOT)})
    try:
        events = await settled_alerts(broker, sum(expected.values()), timeout_s=120, settle_s=3)
    finally:
        processor.stop()
    return processor.log_path.read_text(), lambda: assert_exactly_once(events, expected)


async def test_records_fetched_and_lost_on_uncommitted_partitions_are_read_again_from_the_beginning(
    broker: str, tmp_path: Path
) -> None:
    log, assert_alerts_exactly_once = await _run_with_faulty_consumer(broker, tmp_path, FETCHED_AND_LOST_PROCESSOR)
    assert "input partition stalled" in log, "nothing was lost: the test opened no gap"
    assert "asking the consumer group to rebalance" not in log, "the seek back did not bring the records back"
    assert_alerts_exactly_once()


async def test_input_partitions_left_paused_after_recovery_are_healed_and_every_alert_arrives_once(
    broker: str, tmp_path: Path
) -> None:
    log, assert_alerts_exactly_once = await _run_with_faulty_consumer(broker, tmp_path,
                                                                      PAUSED_AFTER_RECOVERY_PROCESSOR)
    assert "input partition stalled" in log, "the partitions were never stalled: the test opened no gate"
    assert "re-opening the consumer's gates" in log
    assert_alerts_exactly_once()
