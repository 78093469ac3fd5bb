"""The environment processor in the processor kit (tests/support/processor_kit.py), and its input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from services.environment.convert import batches_by_station
from services.environment.domain.evaluator import StationState, apply_observations
from services.environment.domain.measurands import Observation, StationKind
from services.environment.domain.profiles import load_profiles, select_rules
from services.environment.domain.stations import load_stations
from services.environment.settings import EnvironmentSettings
from services.environment.topics import ALL, TOPIC_OF
from tests.support.processor_kit import PARTITIONS, ProcessorKit, ProcessorProcess, Record, produce

KIT = ProcessorKit(
    "environment-processor", "MADINA_ENVIRONMENT_PROCESSOR_PORT", ALL,
    env={"MADINA_ENVIRONMENT_TICK_INTERVAL_S": "3600"},  # no clock ticks unless a test asks
)
Batches = Sequence[Sequence[Observation]]


async def create_topics(bootstrap: str) -> None:
    await KIT.create_topics(bootstrap)


def start_processor(
    bootstrap: str,
    workdir: Path,
    *,
    tick_interval_s: float = 3600.0,
    name: str = "processor",
    extra_env: Mapping[str, str] | None = None,
    **options: object,
) -> ProcessorProcess:
    env = {"MADINA_ENVIRONMENT_TICK_INTERVAL_S": str(tick_interval_s), **(extra_env or {})}
    return KIT.start(bootstrap, workdir, name=name, extra_env=env, **options)  # type: ignore[arg-type]


def observation_records(batches: Batches) -> list[Record]:
    """Each inner sequence becomes one record per station (the way the ingest API publishes)."""
    return [
        (TOPIC_OF[kind], station_id, batch)
        for observations in batches
        for kind, station_id, batch in batches_by_station(observations)
    ]


async def produce_observations(bootstrap: str, batches: Batches) -> None:
    await produce(bootstrap, observation_records(batches))


def observation(station_id: str, at: datetime, kind: StationKind, **values: float) -> Observation:
    return Observation(station_id=station_id, observe_time=at, kind=kind, values=values)


def episodic_stream(t0: datetime) -> list[list[Observation]]:
    """Water turbidity and noise square waves: several full episodes per station."""
    stations = [s for s in load_stations() if s.city == "casablanca"]
    water = [s.id for s in stations if StationKind.WATER in s.kinds]
    noisy = [s.id for s in stations if "laeq_db" in s.measurands]
    records = []
    for step in range(240):
        at = t0 + timedelta(minutes=10 * step)
        high = (step // 18) % 2 == 0  # 3 h high, 3 h low
        for station_id in water:
            records.append(
                [observation(station_id, at, StationKind.WATER, turbidity_ntu=6.0 + step % 3 if high else 0.3)]
            )
        for station_id in noisy:
            records.append(
                [
                    observation(station_id, at, StationKind.NOISE, laeq_db=74.0 if high else 50.0),
                    observation(station_id, at + timedelta(minutes=5), StationKind.NOISE,
                                laeq_db=73.0 if high else 51.0),
                ]
            )
    return records


def expected_transitions(batches: Batches) -> Counter[tuple[str, int, int]]:
    """The oracle: the pure evaluator fed the same records, one station at a time."""
    settings_profiles = EnvironmentSettings.model_fields["environment_profiles"].default
    rules = select_rules(load_profiles(), settings_profiles)
    stations = {s.id: s for s in load_stations()}
    states: dict[str, StationState] = {}
    expected: Counter[tuple[str, int, int]] = Counter()
    for batch in batches:
        station_id = batch[0].station_id
        state = states.get(station_id) or StationState.new(station_id)
        result = apply_observations(state, batch, rules, stations[station_id])
        states[station_id] = result.state
        for transition in result.transitions:
            expected[(transition.alert_id, transition.revision, int(transition.state))] += 1
    return expected


__all__ = ["PARTITIONS", "ProcessorProcess"]
