"""Records that arrive while faust finishes table recovery are processed, not dropped, nor
dead-lettered twice.

faust-streaming 0.15.3's ``Recovery.on_recovery_completed`` resumes the stream partitions,
awaits ``consumer.perform_seek()`` and then calls ``app.flow_control.resume()``, which empties
every stream queue although the flow was already running. Records fetched during the seek were
lost: the processor's next record on a partition jumped 20-55 offsets ahead, and faust stopped
committing that partition (faust-streaming/faust#596). It showed up as about one failure in four
of the kill -9 test; here the seek is made slower so that the window is always wide open. See
``madina.streams.KeepLiveEventsFlowControl``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from madina.devservers.ports import free_port
from madina.settings import MadinaSettings
from madina.streams import create_stream_app
from services.environment.domain.measurands import StationKind
from services.environment.processor.app import APP_ID
from services.environment.topics import AIR_QUALITY, OBSERVATION_TOPICS
from tests.integration.environment.processor_harness import (
    create_topics,
    episodic_stream,
    expected_transitions,
    observation,
    produce_observations,
    start_processor,
)
from tests.support.processor_kit import (
    PARTITIONS,
    ProcessorProcess,
    assert_exactly_once,
    produce_raw,
    read_all,
    settled_alerts,
)

SEEK_DELAY_S = 2.0
AIR = "cas-air-ain-sebaa"
CHANGELOG = f"{APP_ID}-station-state-changelog"
REPO_ROOT = Path(__file__).resolve().parents[3]

# The real processor, with faust's post-recovery seek taking longer (it is otherwise ~0.1 s).
# The delay comes after the seek, so that commits made meanwhile cannot move it.
SLOW_SEEK_PROCESSOR = f"""
import asyncio, sys
from faust.transport.consumer import Consumer

perform_seek = Consumer.perform_seek

async def slow_perform_seek(self):
    await perform_seek(self)
    await asyncio.sleep({SEEK_DELAY_S})

Consumer.perform_seek = slow_perform_seek
from madina.cli import main
sys.argv = ["madina", "service", "environment-processor"]
sys.exit(main(sys.argv[1:]))
"""


# The real processor, where the post-recovery seek to the committed offsets lands only after
# records from those offsets have reached the agent, so that they are fetched and delivered again
# (what a slow OffsetFetch during the seek does). Commits wait until then, so the seek goes back.
LATE_SEEK_PROCESSOR = f"""
import asyncio, sys
from faust.transport.consumer import Consumer

perform_seek, commit = Consumer.perform_seek, Consumer.commit
seeking = False

async def late_perform_seek(self):
    global seeking
    seeking = True
    try:
        await perform_seek(self)
        await asyncio.sleep({SEEK_DELAY_S})
        await perform_seek(self)
    finally:
        seeking = False

async def commit_after_seek(self, *args, **kwargs):
    return False if seeking else await commit(self, *args, **kwargs)

Consumer.perform_seek, Consumer.commit = late_perform_seek, commit_after_seek
from madina.cli import main
sys.argv = ["madina", "service", "environment-processor"]
sys.exit(main(sys.argv[1:]))
"""


def _start_slow_seek_processor(bootstrap: str, workdir: Path, program: str = SLOW_SEEK_PROCESSOR,
                               name: str = "processor") -> ProcessorProcess:
    return start_processor(
        bootstrap, workdir, argv=[sys.executable, "-c", program], extra_env={"PYTHONPATH": str(REPO_ROOT)}, name=name
    )


def _offsets_seen(log_path: Path) -> dict[tuple[str, int], list[int]]:
    """Offsets the agent applied or skipped as already applied, per input partition, in order."""
    seen: dict[tuple[str, int], list[int]] = defaultdict(list)
    for line in log_path.read_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("message") in ("apply", "record already in the stored state, skipped"):
            seen[(entry["topic"], entry["partition"])].append(entry["offset"])
    return seen


async def _end_and_committed_offsets(bootstrap: str) -> tuple[dict, dict]:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=APP_ID, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(spec.name, p) for spec in OBSERVATION_TOPICS for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        committed = {tp: await consumer.committed(tp) for tp in partitions}
        return ends, committed
    finally:
        await consumer.stop()


def test_resume_while_flowing_keeps_buffered_events_and_resume_after_suspend_clears_them() -> None:
    async def scenario() -> None:
        app = create_stream_app("flow-control-test", MadinaSettings(), web_port=free_port())
        queue = app.FlowControlQueue(maxsize=10, clear_on_resume=True)
        flow = app.flow_control
        flow.resume()
        queue.put_nowait("fetched while flowing")
        flow.resume()  # what faust's on_recovery_completed does after its seek
        assert queue.qsize() == 1, "a resume of a running flow dropped a live event"
        flow.suspend()
        flow.resume()  # faust's own contract: what was buffered across a suspension is stale
        assert queue.qsize() == 0

    asyncio.run(scenario())


async def test_records_fetched_during_the_post_recovery_seek_are_all_processed(broker: str, tmp_path: Path) -> None:
    await create_topics(broker)
    records = episodic_stream(datetime.now(UTC).replace(microsecond=0) - timedelta(days=3))
    expected = expected_transitions(records)
    # All input is there before the worker starts, and nothing is committed; the table has some
    # state to restore (as after a kill -9), so faust's fetcher runs during recovery.
    await produce_observations(broker, records)
    await produce_raw(broker, CHANGELOG, json.dumps("not-a-station").encode(), b"{}")

    processor = _start_slow_seek_processor(broker, tmp_path)
    try:
        total = sum(expected.values())
        events = await settled_alerts(broker, total, timeout_s=120, settle_s=3)
        ends, committed = await _end_and_committed_offsets(broker)
    finally:
        processor.stop()

    seen = _offsets_seen(processor.log_path)
    for tp, end in ends.items():
        if end:
            offsets = seen[(tp.topic, tp.partition)]
            skipped = sorted(set(range(end)) - set(offsets))
            assert not skipped, f"{tp.topic}-{tp.partition}: never delivered offsets {skipped[:3]}..{skipped[-3:]}"
    assert {tp: committed[tp] for tp in ends if ends[tp]} == {tp: end for tp, end in ends.items() if end}, (
        "faust stopped committing a partition"
    )
    assert_exactly_once(events, expected)


async def test_a_poison_record_fetched_twice_during_recovery_is_dead_lettered_once(broker: str, tmp_path: Path) -> None:
    """Issue 16: the offset guard covers dead-lettered records too, not only decoded ones."""
    await create_topics(broker)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=30)
    await produce_observations(broker, [[observation(AIR, now, StationKind.AIR, pm25_ugm3=5.0)]])
    first = start_processor(broker, tmp_path, name="first")  # state to restore and a committed offset
    try:
        await _wait_for_log(first.log_path, '"message": "apply"')
        await asyncio.sleep(2)  # past a commit interval
    finally:
        first.stop()
    garbage = b"\x12\xff\xfe not protobuf, fetched twice"
    # The last record of its station: no later record's offset in the state covers it.
    await produce_raw(broker, AIR_QUALITY.name, AIR.encode(), garbage)

    processor = _start_slow_seek_processor(broker, tmp_path, LATE_SEEK_PROCESSOR, name="second")
    try:
        await _wait_for_log(processor.log_path, '"message": "record dead-lettered"')
        await asyncio.sleep(SEEK_DELAY_S + 3)  # past the second seek and the second delivery
        dead = await read_all(broker, AIR_QUALITY.dead_letter.name)
    finally:
        processor.stop()
    assert [record.value for record in dead] == [garbage]
    assert _logged(processor.log_path, '"message": "record already in the stored state, skipped"'), (
        "the record was not delivered twice: the test did not open the window"
    )


async def _wait_for_log(path: Path, text: str, timeout_s: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not _logged(path, text):
        if loop.time() > deadline:
            raise TimeoutError(f"{text} not in {path.name}")
        await asyncio.sleep(0.2)


def _logged(path: Path, text: str) -> bool:
    return text in path.read_text()
