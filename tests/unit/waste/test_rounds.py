"""Rounds planned on a clock (MADINA_WASTE_ROUND_INTERVAL_S): every served depot's round, planned from
the served statuses with the interval as horizon and published as PlanCollection publishes it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from madina.auth import write_credentials
from madina_proto.waste.v1 import container_pb2, plan_pb2
from services.waste.api import state
from services.waste.api.main import build_runtime
from services.waste.convert import status_to_pb
from services.waste.domain import planning
from services.waste.domain.containers import Stream
from services.waste.domain.detector import ContainerStatus
from services.waste.settings import WasteSettings
from services.waste.topics import COLLECTION_PLANS, LATEST_COLLECTION_PLANS


class PlanRecorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, plan_pb2.CollectionPlanned]] = []

    async def send_and_wait(self, spec: Any, key: str, message: plan_pb2.CollectionPlanned) -> None:
        self.sent.append((spec.name, key, message))


async def test_every_served_depot_gets_a_round_each_interval_with_what_fills_before_the_next(tmp_path: Path) -> None:
    write_credentials(tmp_path / "credentials.yaml", {"operator": ["waste:plan"]})
    settings = WasteSettings(credentials_file=tmp_path / "credentials.yaml", grpc_insecure=True,
                             cities=["berkane"], waste_round_interval_s=6 * 3600, waste_plan_time_limit_s=1)
    runtime = build_runtime(settings)
    recorder = PlanRecorder()
    runtime.producer = recorder  # type: ignore[assignment]
    now = datetime.now(UTC).replace(microsecond=0)
    household = [c for c in runtime.containers.values() if c.stream is Stream.HOUSEHOLD][:4]
    # Two fill up within the 6 h interval (0.6 + 0.05 x 6 > 0.8), two do not (0.1 + 0.01 x 6).
    for container, (fill, rate) in zip(household, ((0.6, 0.05), (0.6, 0.05), (0.1, 0.01), (0.1, 0.01)), strict=True):
        full = now + timedelta(hours=(0.8 - fill) / rate)
        status = ContainerStatus(container.id, now, fill, rate, full, 21.0, 1.0, False, 80.0, None, ())
        runtime.statuses[container.id] = container_pb2.ContainerStatusChanged(
            status=status_to_pb(status, container)).status
    depots = {depot.id for depot in runtime.fleet.depots if depot.city == "berkane"}
    assert depots

    runtime.status_feed_ready.set()
    rounds = asyncio.create_task(runtime.plan_rounds())
    try:
        for _ in range(600):
            if len(recorder.sent) >= 2 * len(depots):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # a second round now would show up as extra records
    finally:
        rounds.cancel()
        await asyncio.gather(rounds, return_exceptions=True)
    assert sorted((topic, key) for topic, key, _ in recorder.sent) == sorted(
        (topic, depot) for depot in depots for topic in (COLLECTION_PLANS.name, LATEST_COLLECTION_PLANS.name))
    plans = [plan for topic, _, plan in recorder.sent if topic == LATEST_COLLECTION_PLANS.name]
    assert all(plan.horizon.ToTimedelta() == timedelta(hours=6) for plan in plans)
    routed = {cid for plan in plans for route in plan.routes for cid in route.container_ids}
    assert routed == {household[0].id, household[1].id}


async def test_plan_collection_gives_the_solver_the_time_limit_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_credentials(tmp_path / "credentials.yaml", {"operator": ["waste:plan"]})
    settings = WasteSettings(credentials_file=tmp_path / "credentials.yaml", grpc_insecure=True,
                             cities=["berkane"], waste_plan_time_limit_s=2.5)
    runtime = build_runtime(settings)
    runtime.producer = PlanRecorder()  # type: ignore[assignment]
    limits: list[timedelta | None] = []

    def recording(*args: Any, time_limit: timedelta | None, **kwargs: Any) -> Any:
        limits.append(time_limit)
        return planning.plan_collection(*args, time_limit=time_limit, **kwargs)

    monkeypatch.setattr(state, "plan_collection", recording)
    depot = next(depot for depot in runtime.fleet.depots if depot.city == "berkane")
    await runtime.plan(depot.id, timedelta(hours=6), [])
    assert limits == [timedelta(seconds=2.5)]
