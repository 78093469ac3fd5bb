"""Micro-benchmark of the mobility processor's per-record work, one core, no Kafka:
``.venv/bin/python -m bench.mobility.domain [--seconds N] [--profile]``.

The input is the faust benchmark's (:mod:`bench.mobility.workload`: FeedMessages of 50 trip
updates of one route, through the ingest's ``feed_batches``), as the records the processor reads.
Each record goes through what the worker does with it, minus faust: the runner's decode (content
type, wire-value checks, entity key), the processor's step (``mobility_step`` -> ``route_step``:
the evaluator, the remembered updates, the alerts, KPIs and route status), and the encoding of
every output. The state is turned into its table dict and JSON every ``--batch-records`` records
of the entity, as the runner writes it once per batch (the changelog's JSON encoding included).

Reports microseconds of CPU per TripUpdate entity (``time.process_time``), the median of
``--repeat`` runs (and the least, the run other processes disturbed least), split into decode,
step and encode+state; ``--profile`` prints cProfile's top functions of one run instead. The
worker's target is 10,000 entities/s, i.e. 100 us per entity including faust's own per-record cost.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bench.mobility.workload import ROUTE_LATE_COUNT, feeds
from madina.bus.codec import encode, standard_headers
from madina.geo import load_cities
from madina.streams.entities import EntityRecord, EntityState, decode_entity_record
from services.mobility.api.publisher import feed_batches, parse_feed
from services.mobility.domain.avl import PathIndex
from services.mobility.domain.evaluator import MobilityConfig
from services.mobility.domain.gtfs import Schedule, load_feeds
from services.mobility.processor.counts_stream import (
    Unseen,
    entity_from_dict,
    entity_to_dict,
    mobility_entity_of,
    mobility_step,
)
from services.mobility.processor.route_stream import route_step
from services.mobility.settings import MobilityProcessorSettings
from services.mobility.topics import TRIP_UPDATES

SOURCE = "bench"


@dataclass(frozen=True)
class Record:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    entities: int


def records(schedule: Schedule, count: int, batch: int) -> list[Record]:
    """``count`` input records of ``batch`` trip updates each, as the ingest publishes them."""
    out: list[Record] = []
    source = feeds(schedule, batch)
    while len(out) < count:
        _, _, body = next(source)
        for route_id, message in feed_batches(parse_feed(body, 100_000), schedule).trip_updates.items():
            out.append(Record(route_id.encode(), message.SerializeToString(),
                              standard_headers(TRIP_UPDATES, SOURCE), len(message.trip_updates)))
    return out[:count]


def run_once(schedule: Schedule, paths: PathIndex, workload: list[Record], batch_records: int) -> dict[str, float]:
    """CPU seconds of decode, step and encode (outputs + state writes) over ``workload``."""
    config = MobilityConfig(route_late_count=ROUTE_LATE_COUNT)
    step = mobility_step(route_step(schedule, paths, config), schedule, {}, load_cities())
    states: dict[str, Any] = {}
    pending: dict[str, int] = {}
    decode_s = step_s = encode_s = 0.0
    now = datetime.now(UTC)
    clock = time.process_time
    for offset, record in enumerate(workload):
        t0 = clock()
        entity_id, value = decode_entity_record(TRIP_UPDATES, record.key, record.value, record.headers,
                                                entity_of=mobility_entity_of)
        t1 = clock()
        state = states.get(entity_id) or Unseen(entity_id)
        result = step(state, EntityRecord(entity_id, TRIP_UPDATES, value, now))
        t2 = clock()
        for alert in result.alerts:
            alert.SerializeToString()
        for _, _, out in result.records:
            encode(out)
        states[entity_id] = result.state
        pending[entity_id] = pending.get(entity_id, 0) + 1
        if pending[entity_id] >= batch_records:
            stored = EntityState(result.state, {"t:0": offset})
            json.dumps(stored.to_dict(entity_to_dict))
            pending[entity_id] = 0
        t3 = clock()
        decode_s, step_s, encode_s = decode_s + t1 - t0, step_s + t2 - t1, encode_s + t3 - t2
    return {"decode": decode_s, "step": step_s, "encode": encode_s}


def decode_state_us(schedule: Schedule, paths: PathIndex, workload: list[Record]) -> tuple[float, int]:
    """CPU us to decode one route's table dict (a cache miss in the runner), and its JSON size."""
    config = MobilityConfig(route_late_count=ROUTE_LATE_COUNT)
    step = mobility_step(route_step(schedule, paths, config), schedule, {}, load_cities())
    states: dict[str, Any] = {}
    now = datetime.now(UTC)
    for record in workload:
        entity_id, value = decode_entity_record(TRIP_UPDATES, record.key, record.value, record.headers,
                                                entity_of=mobility_entity_of)
        states[entity_id] = step(states.get(entity_id) or Unseen(entity_id),
                                 EntityRecord(entity_id, TRIP_UPDATES, value, now)).state
    largest = max(states.values(), key=lambda s: len(json.dumps(entity_to_dict(s))))
    raw = json.dumps(entity_to_dict(largest))
    begin = time.process_time()
    for _ in range(20):
        entity_from_dict(json.loads(raw), "")
    return (time.process_time() - begin) * 1e6 / 20, len(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=400, help="input records per run (the --quick backlog)")
    parser.add_argument("--batch", type=int, default=50, help="trip updates per FeedMessage")
    parser.add_argument("--batch-records", type=int, default=50,
                        help="records of one route between two state writes (the runner's batch per route)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="print cProfile's top functions of one run")
    args = parser.parse_args(argv)
    schedule = load_feeds(MobilityProcessorSettings().mobility_gtfs_feeds)
    paths = PathIndex(schedule)
    workload = records(schedule, args.records, args.batch)
    entities = sum(r.entities for r in workload)
    run_once(schedule, paths, workload[:20], args.batch_records)  # imports, caches
    if args.profile:
        profile = cProfile.Profile()
        profile.enable()
        run_once(schedule, paths, workload, args.batch_records)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(30)
        pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
        return 0
    runs = [run_once(schedule, paths, workload, args.batch_records) for _ in range(args.repeat)]
    median = {part: statistics.median(run[part] for run in runs) * 1e6 / entities for part in runs[0]}
    total = statistics.median(sum(run.values()) for run in runs) * 1e6 / entities
    # The least a run took: on a shared machine, the run least disturbed by the others.
    best = min(sum(run.values()) for run in runs) * 1e6 / entities
    state_us, state_bytes = decode_state_us(schedule, paths, workload)
    result = {"records": len(workload), "entities": entities, "repeat": args.repeat,
              "us_per_entity": round(total, 1), "best_us_per_entity": round(best, 1),
              **{f"{k}_us_per_entity": round(v, 1) for k, v in median.items()},
              "entities_per_cpu_s": round(1e6 / total), "state_json_bytes": state_bytes,
              "state_decode_us": round(state_us)}
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
