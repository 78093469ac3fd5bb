"""Micro-benchmark of the waste processor's pure path, one core, no Kafka:
``.venv/bin/python -m bench.waste.domain [--seconds N] [--profile]``.

The workload is :func:`bench.waste.run.workload` (every seeded container, a record of six
10-minute readings per container per hour). Reported, in µs of CPU per reading:

- ``domain``: ``apply_readings`` alone (validation, every rule, the status);
- ``step``: what the worker does per record apart from Kafka: decode the record, run the
  processor's step (domain, alerts, status, KPI, summary) and serialise every output;
- ``state write``: the table value as JSON (``to_dict`` and ``json.dumps``) of the states the
  step left after each record: at 2,000 readings/s a batch of 1 s holds each container at most
  once, so the worker writes a state per record;
- ``state read``: JSON back to the state, which the worker does only when its decoded-state cache
  misses (a restart, a rebalance);
- ``worker``: ``step`` plus a state write per record.

``--profile`` prints cProfile's top functions of ``step`` + state write instead.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.waste.run import Record, workload
from madina.bus.codec import decode, encode
from madina.streams.entities import EntityRecord
from services.waste.convert import readings_from_batch
from services.waste.domain.containers import load_containers
from services.waste.domain.detector import ContainerState, apply_readings
from services.waste.processor.app import waste_processor
from services.waste.settings import WasteProcessorSettings
from services.waste.topics import CONTAINER_LEVELS

HOURS = 12


def _records() -> list[Record]:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    return workload(load_containers(), HOURS, start)


def _timed(run: Callable[[], int], seconds: float) -> float:
    """CPU µs per reading over repeated whole passes of ``run`` (which returns its reading count)."""
    readings = 0
    begin = time.process_time()
    while True:
        readings += run()
        spent = time.process_time() - begin
        if spent >= seconds:
            return spent * 1e6 / readings


def domain_pass(records: list[Record]) -> Callable[[], int]:
    containers = {c.id: c for c in load_containers()}
    batches = [(decode(CONTAINER_LEVELS, r.value, r.headers), r.readings) for r in records]
    readings = [(containers[b.container_id], readings_from_batch(b)) for b, _ in batches]
    now = datetime.now(UTC)

    def run() -> int:
        states: dict[str, ContainerState] = {}
        count = 0
        for container, batch in readings:
            state = states.get(container.id) or ContainerState.new(container.id)
            states[container.id] = apply_readings(state, batch, container, now=now).state
            count += len(batch)
        return count

    return run


def _processor() -> Any:
    return waste_processor(WasteProcessorSettings(waste_max_reading_age_s=30 * 86_400, waste_max_future_skew_s=86_400))


def state_pass(records: list[Record], *, write: bool) -> Callable[[], int]:
    processor = _processor()
    texts: list[tuple[str, str, int]] = []  # (entity, the state after the record as JSON, readings)
    run = worker_pass(records, state=False, keep=lambda entity, state, readings: texts.append(
        (entity, json.dumps(processor.state_to_dict(state)), readings)))
    run()

    states = [(processor.state_from_dict(json.loads(text), entity), readings) for entity, text, readings in texts]

    def writes() -> int:
        for state, _ in states:
            json.dumps(processor.state_to_dict(state))
        return sum(readings for _, readings in states)

    def reads() -> int:
        for entity, text, _ in texts:
            processor.state_from_dict(json.loads(text), entity)
        return sum(readings for _, _, readings in texts)

    return writes if write else reads


def worker_pass(
    records: list[Record], *, state: bool, keep: Callable[[str, Any, int], None] | None = None
) -> Callable[[], int]:
    processor = _processor()
    now = datetime.now(UTC)

    def run() -> int:
        states: dict[str, Any] = {}
        count = 0
        for record in records:
            entity = record.key.decode()
            current = states.get(entity) or processor.new_state(entity)
            batch = decode(CONTAINER_LEVELS, record.value, record.headers, require_type=True)
            result = processor.step(current, EntityRecord(entity, CONTAINER_LEVELS, batch, now))
            for event in result.alerts:
                event.SerializeToString()
            for _spec, _key, message in result.records:
                encode(message)
            current = result.state
            if state:
                json.dumps(processor.state_to_dict(current))
            states[entity] = current
            count += record.readings
            if keep is not None:
                keep(entity, current, record.readings)
        return count

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum CPU time per measurement")
    parser.add_argument("--profile", action="store_true", help="cProfile the worker's pure path instead")
    args = parser.parse_args(argv)
    records = _records()
    if args.profile:
        run = worker_pass(records, state=True)
        profiler = cProfile.Profile()
        profiler.runcall(run)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)
        return 0
    print(f"{len(records):,} records, {sum(r.readings for r in records):,} readings; CPU µs per reading:")
    for name, run in (
        ("domain (apply_readings)", domain_pass(records)),
        ("step (decode, step, outputs)", worker_pass(records, state=False)),
        ("state write (to_dict, JSON)", state_pass(records, write=True)),
        ("state read (JSON, from_dict)", state_pass(records, write=False)),
        ("worker (step + state per record)", worker_pass(records, state=True)),
    ):
        us = _timed(run, args.seconds)
        print(f"  {name:34} {us:8.1f} µs  ({1e6 / us:9,.0f} readings/s on one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
