"""The comparison processor: one plain aiokafka ``getmany`` loop applying the waste processor's step.

    python -m bench.waste.plain_loop --bootstrap HOST:PORT

It reads ``waste.container-levels.v1``, applies the very step the faust worker runs
(``services.waste.processor.app.waste_processor(...).step``: every container rule, fill rate,
status and KPI built) to an in-memory dict of states, publishes each alert to ``PLAIN_ALERTS`` and
one empty record per applied input record to ``PLAIN_APPLIED``. No changelog, no status, KPI or
collection records, no offsets committed: the lower bound of a consumer loop running this rule here.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime
from typing import Any

from aiokafka import ConsumerRecord

from bench.pipeline import plain_topics, run_plain_loop
from madina.bus.codec import decode
from madina.bus.topics import TopicSpec
from madina.streams.entities import EntityRecord
from madina_proto.alerts.v1 import alerts_pb2
from services.waste.processor.app import waste_processor
from services.waste.settings import WasteProcessorSettings
from services.waste.topics import CONTAINER_LEVELS

PLAIN_ALERTS, PLAIN_APPLIED = plain_topics("bench.waste-", entity_key="container_id")


async def run(bootstrap: str, partitions: int, max_age_s: float) -> None:
    processor = waste_processor(WasteProcessorSettings(
        waste_max_reading_age_s=max_age_s, waste_max_future_skew_s=86_400))
    states: dict[str, Any] = {}

    def apply(spec: TopicSpec, record: ConsumerRecord[Any, Any]) -> list[alerts_pb2.AlertEvent]:
        batch = decode(spec, record.value, record.headers)
        entity = batch.container_id
        state = states.get(entity) or processor.new_state(entity)
        step = processor.step(state, EntityRecord(entity, spec, batch, datetime.now(UTC)))
        states[entity] = step.state
        return list(step.alerts)

    await run_plain_loop(bootstrap, [CONTAINER_LEVELS], partitions, apply, PLAIN_ALERTS, PLAIN_APPLIED)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--max-age-s", type=float, default=30 * 86_400)
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.partitions, args.max_age_s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
