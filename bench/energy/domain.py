"""Micro-benchmark of the energy domain's step functions, one core, no Kafka:
``.venv/bin/python -m bench.energy.domain [--seconds N]``.

Reports lamp telemetry records per second through ``circuit.step`` (every rule, the day/night
decision, metering, commands, data gaps), with and without the JSON round trip the processor's
table costs per record, and PV generation readings per second through ``apply_generation``
(expectation from the per-site-day cache), plus the cost of one cold pvlib day computation and of
one uncached astral event. The processor target is 3,500 telemetry records/s per worker.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, date, datetime, timedelta

from astral import Observer
from astral.sun import dawn

from services.energy.domain import (
    CircuitContext,
    CircuitState,
    GenerationReading,
    LampTelemetry,
    PvExpectation,
    SiteState,
    SunCalendar,
    TelemetryBatch,
    apply_generation,
    load_config,
    load_network,
    step,
)

START = datetime(2024, 1, 15, 16, 0, tzinfo=UTC)  # spans dusk, so both phases and the cache switch are in


def telemetry_workload(network, minutes: int) -> list[tuple[str, TelemetryBatch]]:
    """One batch per circuit per 5 minutes, every lamp in it, counters running, a few faults."""
    batches = []
    circuits = sorted(network.circuits.values(), key=lambda c: c.id)
    for tick in range(0, minutes, 5):
        moment = START + timedelta(minutes=tick)
        for circuit in circuits:
            readings = []
            for index, lamp_id in enumerate(circuit.lamp_ids):
                rated = network.lamps[lamp_id].rated_power_w
                lit = moment.hour >= 17
                power = rated * (0.0 if index == 3 else 1.0) if lit else 0.8
                readings.append(LampTelemetry(
                    lamp_id, moment, lit, 100.0 if lit else 0.0, power, 226.0 + index % 5,
                    1000.0 + tick * rated / 60, "DRIVER_FAILURE" if index == 7 and tick > 120 else "",
                ))
            batches.append((circuit.id, TelemetryBatch(circuit.id, tuple(readings))))
    return batches


def bench_telemetry(network, config, seconds: float, round_trip: bool) -> tuple[float, int]:
    sun = SunCalendar()
    contexts = {cid: CircuitContext.of(network, cid, config, sun) for cid in network.circuits}
    workload = telemetry_workload(network, 8 * 60)
    records = 0
    begin = time.perf_counter()
    while True:
        states: dict[str, object] = {}
        for circuit_id, batch in workload:
            if round_trip:
                raw = states.get(circuit_id)
                state = CircuitState.from_dict(json.loads(raw)) if raw else CircuitState.new(circuit_id)
                result = step(state, [batch], contexts[circuit_id])
                states[circuit_id] = json.dumps(result.state.to_dict())
            else:
                state = states.get(circuit_id) or CircuitState.new(circuit_id)  # type: ignore[assignment]
                states[circuit_id] = step(state, [batch], contexts[circuit_id]).state  # type: ignore[arg-type]
            records += len(batch.readings)
        if time.perf_counter() - begin >= seconds:
            break
    return records / (time.perf_counter() - begin), records


def bench_generation(network, config, seconds: float) -> tuple[float, float]:
    expectation = PvExpectation(config.pv)
    sites = sorted(network.pv_sites.values(), key=lambda s: s.id)
    expectation.at(sites[0], START - timedelta(days=1))  # pays pvlib's import, not part of a site-day
    cold_begin = time.perf_counter()
    for site in sites:
        expectation.at(site, START)
    cold_ms = (time.perf_counter() - cold_begin) * 1000 / len(sites)
    readings = {
        site.id: [
            GenerationReading(site.id, START - timedelta(hours=8) + i * timedelta(minutes=1),
                              0.5 * site.peak_power_kw, 1000.0 + i * 10)
            for i in range(12 * 60)
        ]
        for site in sites
    }
    count = 0
    begin = time.perf_counter()
    while time.perf_counter() - begin < seconds:
        for site in sites:
            state = SiteState.new(site.id)
            for i in range(0, len(readings[site.id]), 5):  # records of 5 readings
                state = apply_generation(state, readings[site.id][i : i + 5], site, expectation, config).state
            count += len(readings[site.id])
    return count / (time.perf_counter() - begin), cold_ms


def astral_cost_us() -> float:
    observer = Observer(34.92, -2.32)
    begin = time.perf_counter()
    for day in range(200):
        dawn(observer, date(2024, 1, 1) + timedelta(days=day), tzinfo=UTC)
    return (time.perf_counter() - begin) * 1e6 / 200


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="minimum time per measurement")
    args = parser.parse_args(argv)
    network, config = load_network(), load_config()
    batch_size = sum(len(c.lamp_ids) for c in network.circuits.values()) / len(network.circuits)
    plain, _ = bench_telemetry(network, config, args.seconds, round_trip=False)
    trip, _ = bench_telemetry(network, config, args.seconds, round_trip=True)
    generation, cold_ms = bench_generation(network, config, args.seconds)
    print(f"lamps {len(network.lamps)}, circuits {len(network.circuits)}, mean batch {batch_size:.1f} reports")
    print(f"telemetry step:                 {plain:10,.0f} records/s (target 3,500)")
    print(f"telemetry step + JSON state:    {trip:10,.0f} records/s")
    print(f"generation (cached expectation):{generation:10,.0f} readings/s")
    print(f"pvlib day of 5-min slots, cold: {cold_ms:10.1f} ms per site-day (once per site per day)")
    print(f"astral one event, uncached:     {astral_cost_us():10.1f} µs (4 per cell per day when cached)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
