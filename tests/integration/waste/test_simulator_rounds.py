"""`madina simulate` for waste against the real waste API (HTTP ingest and planning) and a broker of
its own: a round the API plans makes the simulator's trucks empty the planned containers, and no
others, as the readings the API publishes show, and as the processor's own step function (the pure
domain) reads them: a collection for each planned container, none for any other."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from urllib.parse import urlsplit

import pytest

from madina.bus.reader import read_topic
from madina.simulation import simulate
from madina_proto.waste.v1 import container_pb2, plan_pb2
from services.waste.convert import readings_from_batch
from services.waste.domain.containers import Stream, load_containers
from services.waste.domain.detector import ContainerState, apply_readings
from services.waste.domain.readings import Reading
from services.waste.simulator import PLAN_EVERY_HOURS, ROUND_HOURS
from services.waste.topics import COLLECTION_PLANS, CONTAINER_LEVELS, CONTAINER_STATUS
from tests.integration.waste.conftest import Api, client, served, status_record
from tests.support.processor_kit import produce

CITY, DEPOT = "berkane", "brk-depot-zi"
SPEEDUP = 600.0  # a simulated hour every six seconds: the round (~30 simulated minutes) takes a few seconds
FULL_ENOUGH = 0.6  # the planned containers read at least this when they are chosen
LEFT = 0.2  # at most this after the truck: a few % left, the sensor's noise, and some filling since
CONTAINERS = {c.id: c for c in load_containers() if c.city == CITY}


@pytest.fixture
def kafka_bootstrap(broker: str) -> str:
    """This test's own broker: it reads the readings topic from the start, and the planner routes
    every container whose status the API serves."""
    return broker


async def _follow_readings(
    bootstrap: str, readings: dict[str, list[Reading]], fills: dict[str, list[tuple[datetime, float]]]
) -> None:
    """Keep ``readings`` and ``fills`` up to date with every container's readings on the topic, in order."""

    def on_batch(_key: str, batch: container_pb2.ContainerLevelObservedBatch | None) -> None:
        if batch is not None:
            batch_readings = readings_from_batch(batch)
            readings[batch.container_id] += batch_readings
            fills[batch.container_id] += [(r.observe_time, r.fill_ratio) for r in batch_readings]

    await read_topic(bootstrap, CONTAINER_LEVELS, on_batch)


async def _until(condition: Callable[[], bool], timeout_s: float) -> None:
    for _ in range(int(timeout_s / 0.1)):
        if condition():
            return
        await asyncio.sleep(0.1)


def _emptied_after(fills: list[tuple[datetime, float]], moment: datetime) -> bool:
    """A reading from ``moment`` on at most LEFT, right after one about as full as when chosen."""
    return any(earlier >= FULL_ENOUGH - 0.1 and later <= LEFT and at >= moment
               for (_, earlier), (at, later) in pairwise(fills))


async def test_a_planned_round_makes_the_simulator_empty_the_planned_containers_and_no_others(
    api: Api, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MADINA_WASTE_HTTP_PORT", str(urlsplit(api.url).port))
    simulator = asyncio.create_task(simulate(
        city=CITY, rate=300, duration_s=0, seed=3, speedup=SPEEDUP, domains=["waste"],
        device_token=api.tokens["sensor"], bootstrap=kafka_bootstrap,
    ))
    readings: dict[str, list[Reading]] = defaultdict(list)
    fills: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    reader = asyncio.create_task(_follow_readings(kafka_bootstrap, readings, fills))
    try:
        await _until(lambda: fills.keys() == CONTAINERS.keys(), 15)  # 216 containers at 300 readings/s
        assert fills.keys() == CONTAINERS.keys(), "the simulator's readings reach the topic through the API"
        chosen = [cid for cid, series in sorted(fills.items())
                  if CONTAINERS[cid].stream is Stream.HOUSEHOLD and series[-1][1] >= FULL_ENOUGH][:3]
        assert len(chosen) == 3, "seed 3 starts some household containers 60 % full"

        # The API plans from the statuses it serves: these three will be full before the round ends.
        now = datetime.now(UTC).replace(microsecond=0)
        await produce(kafka_bootstrap, [(CONTAINER_STATUS, cid, status_record(CONTAINERS[cid], 0.75, 0.05, now))
                                        for cid in chosen])
        await served(api, chosen, 0.75)
        async with client(api) as http:
            response = await http.post("/v1/collection-plans", headers=api.headers("operator"),
                                       json={"depot_id": DEPOT, "horizon_h": 12})
        response.raise_for_status()
        plan = response.json()
        routed = [cid for route in plan["routes"] for cid in route["container_ids"]]
        assert sorted(routed) == sorted(chosen)
        plan_time = datetime.fromisoformat(plan["plan_time"])
        # The trucks drive for a few seconds, then each container reports.
        await _until(lambda: all(_emptied_after(fills[cid], plan_time) for cid in chosen), 15)
    finally:
        for task in (simulator, reader):
            task.cancel()
        await asyncio.gather(simulator, reader, return_exceptions=True)

    missed = {cid: [(at.time().isoformat(), fill) for at, fill in fills[cid][-8:]]
              for cid in chosen if not _emptied_after(fills[cid], plan_time)}
    assert missed == {}, f"not emptied by the round planned at {plan_time}"
    for cid in chosen:  # nothing emptied them before the trucks left
        assert all(fill > LEFT for at, fill in fills[cid] if at < plan_time)
    collected = {}
    for cid, series in readings.items():
        result = apply_readings(ContainerState.new(cid), series, CONTAINERS[cid])
        collected[cid] = [c.detect_time for c in result.collections]
    assert sorted(cid for cid, times in collected.items() if times) == sorted(chosen), \
        "a container no truck visits keeps filling"
    assert all(len(collected[cid]) == 1 and collected[cid][0] >= plan_time for cid in chosen)


async def test_at_a_speedup_the_api_clock_cannot_follow_the_simulator_asks_for_its_rounds_and_gets_them(
    api: Api, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    speedup = 14_400.0  # eleven simulated hours in 2.75 s; the API plans on no clock of its own
    monkeypatch.setenv("MADINA_WASTE_HTTP_PORT", str(urlsplit(api.url).port))
    plans: list[plan_pb2.CollectionPlanned] = []

    def on_plan(_depot_id: str, plan: plan_pb2.CollectionPlanned | None) -> None:
        if plan is not None:
            plans.append(plan)

    with caplog.at_level(logging.WARNING):
        simulator = asyncio.create_task(simulate(
            city=CITY, rate=300, duration_s=0, seed=3, speedup=speedup, domains=["waste"],
            device_token=api.tokens["simulator"], bootstrap=kafka_bootstrap,
        ))
        history = asyncio.create_task(read_topic(kafka_bootstrap, COLLECTION_PLANS, on_plan))
        try:
            await _until(lambda: len(plans) >= 2, 20)
        finally:
            for task in (simulator, history):
                task.cancel()
            await asyncio.gather(simulator, history, return_exceptions=True)
    assert [plan.depot_id for plan in plans[:2]] == [DEPOT, DEPOT], "a round requested, then the next"
    assert all(plan.horizon.ToTimedelta() == timedelta(hours=PLAN_EVERY_HOURS / speedup) for plan in plans)
    gap_h = (plans[1].plan_time.ToDatetime() - plans[0].plan_time.ToDatetime()).total_seconds() * speedup / 3600
    # Asked for when the last plan is 11 h old: the API dates a plan to the whole second (4 simulated
    # hours here), and a reply takes a moment; well inside two rounds (6 s of real time).
    assert PLAN_EVERY_HOURS - speedup / 3600 <= gap_h < 2 * ROUND_HOURS
    complaints = [r.getMessage() for r in caplog.records if "fixed cycle" in r.getMessage()
                  or r.getMessage() == "delivery failed"]
    assert complaints == [], "every request answered, no fixed cycle"
