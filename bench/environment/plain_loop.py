"""The comparison processor: one plain aiokafka ``getmany`` loop applying the environment rule.

    python -m bench.environment.plain_loop --bootstrap HOST:PORT --stations-file FILE

It reads the same observation topics as the faust processor, applies the same pure evaluator
(``apply_observations``, profiles the settings select by default) to an in-memory dict of
``StationState``, and publishes each transition as the same ``AlertEvent`` to ``PLAIN_ALERTS``,
plus one empty record per applied input record to ``PLAIN_APPLIED`` (the counterpart of the
processor's station-status record, which the benchmark counts). It keeps no changelog, builds no
station status, AQI or KPI records and commits no offsets: it is the lower bound of what a
consumer loop running this rule costs on this machine, not a replacement for the processor.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from aiokafka import ConsumerRecord

from bench.pipeline import PLAIN_READY_LINE, plain_topics, run_plain_loop
from madina.bus.codec import InvalidRecord, decode
from madina.bus.topics import TopicSpec
from madina_proto.alerts.v1 import alerts_pb2
from services.environment.convert import alert_event, observations_from_batch
from services.environment.domain.evaluator import EvaluatorConfig, StationState, apply_observations
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.stations import load_stations
from services.environment.settings import EnvironmentSettings
from services.environment.topics import OBSERVATION_TOPICS

PLAIN_ALERTS, PLAIN_APPLIED = plain_topics("bench.", entity_key="station_id")
READY_LINE = PLAIN_READY_LINE  # the name bench.environment.run waits for


async def run(bootstrap: str, stations_file: Path, partitions: int) -> None:
    stations = {s.id: s for s in load_stations(stations_file)}
    default_profiles = EnvironmentSettings.model_fields["environment_profiles"].default
    rules = select_rules(load_profiles([]), default_profiles)
    config = EvaluatorConfig()
    states: dict[str, StationState] = {}

    def apply(spec: TopicSpec, record: ConsumerRecord[Any, Any]) -> list[alerts_pb2.AlertEvent]:
        batch = decode(spec, record.value, record.headers)
        station = stations.get(batch.station_id)
        if station is None:
            raise InvalidRecord(f"unknown station {batch.station_id!r}")
        state = states.get(station.id) or StationState.new(station.id)
        result = apply_observations(state, observations_from_batch(batch), rules, station, config)
        states[station.id] = result.state
        return [alert_event(transition, station) for transition in result.transitions]

    await run_plain_loop(bootstrap, OBSERVATION_TOPICS, partitions, apply, PLAIN_ALERTS, PLAIN_APPLIED)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--stations-file", type=Path, required=True)
    parser.add_argument("--partitions", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(run(args.bootstrap, args.stations_file, args.partitions))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
