"""The comparison processor: one plain aiokafka ``getmany`` loop applying the energy circuit rule.

    python -m bench.energy.plain_loop --bootstrap HOST:PORT

It reads ``energy.streetlight-telemetry.v1``, applies the same step the faust processor runs
(``services.energy.processor.app.circuit_stepper``: every lamp and circuit rule, metering,
confirmations) to an in-memory dict of ``CircuitState``, publishes each alert to ``PLAIN_ALERTS``
and one empty record per applied input record to ``PLAIN_APPLIED``. No changelog, no status or
KPI records, no offsets committed: the lower bound of a consumer loop running this rule here.
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
from services.energy.domain.circuit import CircuitState
from services.energy.domain.config import load_config
from services.energy.domain.network import load_network
from services.energy.domain.sun import SunCalendar
from services.energy.processor.app import circuit_stepper
from services.energy.topics import STREETLIGHT_TELEMETRY

PLAIN_ALERTS, PLAIN_APPLIED = plain_topics("bench.energy-", entity_key="circuit_id")


async def run(bootstrap: str, partitions: int) -> None:
    step = circuit_stepper(load_network(), load_config(), SunCalendar())
    states: dict[str, CircuitState] = {}

    def apply(spec: TopicSpec, record: ConsumerRecord[Any, Any]) -> list[alerts_pb2.AlertEvent]:
        batch = decode(spec, record.value, record.headers)
        circuit_id = batch.circuit_id
        state = states.get(circuit_id) or CircuitState.new(circuit_id)
        result = step(state, EntityRecord(circuit_id, spec, batch, datetime.now(UTC)))
        states[circuit_id] = result.state
        return list(result.alerts)

    await run_plain_loop(bootstrap, [STREETLIGHT_TELEMETRY], partitions, apply, PLAIN_ALERTS, PLAIN_APPLIED)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.partitions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
