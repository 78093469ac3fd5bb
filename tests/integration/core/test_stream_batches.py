"""The entity runner writes states once per batch of records: a step that fails as a bug would, on
an entity whose earlier records of the same batch are not written yet, must leave the state those
records made (not the table's older one, and not the failed step's half-change)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from google.protobuf.wrappers_pb2 import StringValue

from tests.integration.core.failing_step_processor import INPUT, OUTPUT
from tests.support.processor_kit import ProcessorKit, produce, read_all

REPO_ROOT = Path(__file__).resolve().parents[3]
KIT = ProcessorKit("unused", "MADINA_TEST_PROCESSOR_PORT", [INPUT, OUTPUT])


async def test_a_step_failing_mid_batch_keeps_the_state_of_the_batch_records_before_it(
    broker: str, tmp_path: Path
) -> None:
    await KIT.create_topics(broker)
    # All buffered before the worker starts, so they are one batch.
    words = ["e/a1", "e/a2", "e/boom", "e/a3"]
    await produce(broker, [(INPUT, "e", StringValue(value=word)) for word in words])
    argv = [sys.executable, "-m", "tests.integration.core.failing_step_processor"]
    processor = KIT.start(broker, tmp_path, argv=argv, extra_env={"PYTHONPATH": str(REPO_ROOT)})
    try:
        lists: list[str] = []
        for _ in range(60):
            lists = [StringValue.FromString(record.value).value for record in await read_all(broker, OUTPUT.name)]
            if len(lists) >= 3:
                break
            await asyncio.sleep(0.5)
        parked = await read_all(broker, INPUT.dead_letter.name)
    finally:
        processor.stop()
    assert lists == ["a1", "a1,a2", "a1,a2,a3"], processor.summary()
    assert [StringValue.FromString(record.value).value for record in parked] == ["e/boom"]
