"""The consumption watchdog: a partition with records left whose read offset stands still is
reported once per stall, with the consumer's gates; one that moves, or has nothing left, is not."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from madina.streams import watchdog as watchdog_module
from madina.streams.watchdog import ConsumptionWatchdog


class FakeConsumer:
    """faust's consumer, as far as the watchdog reads it (a fake, in a unit test)."""

    def __init__(self, tp: Any) -> None:
        self.tp = tp
        self.end = 10
        self._read_offset: dict[Any, int | None] = {tp: 3}
        self._committed_offset = {tp: 4}
        self._paused_partitions = {tp}
        self._active_partitions: set[Any] = set()
        self._buffered_partitions: set[Any] = set()
        self.flow_active = True
        self.calls: list[str] = []
        rejoin = SimpleNamespace(request_rejoin=lambda: self.calls.append("rejoin"))
        aiokafka_consumer = SimpleNamespace(_coordinator=rejoin)
        loop = SimpleNamespace(call_soon_threadsafe=lambda callback: callback())
        self._thread = SimpleNamespace(thread_loop=loop, _ensure_consumer=lambda: aiokafka_consumer, state="running")

    def resume_partitions(self, tps: set[Any]) -> None:
        self.calls.append(f"resume {sorted(tps)}")

    def resume_flow(self) -> None:
        self.calls.append("resume flow")

    def _is_changelog_tp(self, tp: Any) -> bool:
        return tp.topic.endswith("-changelog")

    async def perform_seek(self) -> None:
        self.calls.append("seek")

    async def highwaters(self, *tps: Any) -> dict[Any, int]:
        return {tp: self.end for tp in tps}

    def assignment(self) -> set[Any]:
        return {self.tp}


def fake_app(consumer: FakeConsumer) -> Any:
    recovery = SimpleNamespace(completed=SimpleNamespace(is_set=lambda: True))
    async def start_fetcher() -> None:
        consumer.calls.append("fetcher")

    return SimpleNamespace(
        consumer=consumer, rebalancing=False, in_recovery=False, tables=SimpleNamespace(recovery=recovery),
        assignor=SimpleNamespace(assigned_actives=lambda: {consumer.tp}), consumer_generation_id=3,
        flow_control=SimpleNamespace(is_active=lambda: True, resume=lambda: consumer.calls.append("resume control")),
        timer=lambda interval: (lambda f: f), _fetcher=SimpleNamespace(maybe_start=start_fetcher, state="running",
                                                                       should_stop=False),
    )


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(watchdog_module.time, "monotonic", lambda: now[0])
    return now


async def test_a_partition_behind_whose_read_offset_stands_still_is_reported_once_with_its_gates(
    clock: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    tp = TP("in.v1", 1)
    consumer = FakeConsumer(tp)
    watchdog = ConsumptionWatchdog(fake_app(consumer), ["in.v1"], stall_s=15)
    caplog.set_level(logging.WARNING, logger="madina.streams.watchdog")

    for _ in range(3):  # 0, 10 s: not yet a stall
        await watchdog.check()
        clock[0] += 5
    assert not watchdog.stalled and not caplog.records
    await watchdog.check()  # 15 s behind without a read
    await watchdog.check()
    assert watchdog.stalled == {tp}
    warning = caplog.records[0]
    assert warning.partition == "in.v1:1" and warning.read_offset == 3 and warning.end_offset == 10  # type: ignore[attr-defined]
    assert warning.paused == ["in.v1:1"] and warning.flow_active is True  # type: ignore[attr-defined]

    assert len([r for r in caplog.records if r.message.startswith("input partition stalled")]) == 1


async def test_a_stall_is_healed_by_reopening_the_gates_then_by_a_rebalance(clock: list[float]) -> None:
    tp = TP("in.v1", 1)
    consumer = FakeConsumer(tp)
    watchdog = ConsumptionWatchdog(fake_app(consumer), ["in.v1"], stall_s=15)
    for _ in range(4):
        await watchdog.check()
        clock[0] += 5
    assert consumer.calls == [f"resume {sorted({tp})}", "resume control",
                              "resume flow", "fetcher", "seek"]
    consumer.calls.clear()
    await watchdog.check()  # 5 s after the first step: give it time
    assert consumer.calls == []
    clock[0] += 10
    await watchdog.check()
    assert consumer.calls == ["rejoin"]

    consumer._read_offset[tp] = 5  # it reads again
    await watchdog.check()
    assert not watchdog.stalled
    consumer.calls.clear()
    for _ in range(4):  # a new stall starts the steps over
        await watchdog.check()
        clock[0] += 5
    assert consumer.calls[-1] == "seek"


async def test_an_idle_partition_or_one_that_keeps_reading_is_not_a_stall(clock: list[float]) -> None:
    tp = TP("in.v1", 0)
    consumer = FakeConsumer(tp)
    watchdog = ConsumptionWatchdog(fake_app(consumer), ["in.v1"], stall_s=15)
    for offset in range(4, 9):  # behind, but moving
        consumer._read_offset[tp] = offset
        await watchdog.check()
        clock[0] += 10
    consumer._read_offset[tp] = 9  # caught up: offset 9 is the last record
    for _ in range(5):
        await watchdog.check()
        clock[0] += 10
    assert not watchdog.stalled


async def test_an_input_partition_of_another_topic_is_not_watched(clock: list[float]) -> None:
    tp = TP("other.v1", 0)
    watchdog = ConsumptionWatchdog(fake_app(FakeConsumer(tp)), ["in.v1"], stall_s=1)
    for _ in range(3):
        await watchdog.check()
        clock[0] += 10
    assert not watchdog.stalled


async def test_an_agent_busy_reading_alerts_is_not_stalled_and_its_clock_starts_after(clock: list[float]) -> None:
    tp = TP("in.v1", 1)
    consumer = FakeConsumer(tp)
    busy = [True]
    watchdog = ConsumptionWatchdog(fake_app(consumer), ["in.v1"], stall_s=15, busy=lambda: busy[0])
    for _ in range(10):  # 50 s of a take-over reading a long alerts.v1
        await watchdog.check()
        clock[0] += 5
    assert not watchdog.stalled and consumer.calls == []
    busy[0] = False
    for _ in range(3):  # 10 s after it: not yet
        await watchdog.check()
        clock[0] += 5
    assert not watchdog.stalled
    await watchdog.check()
    assert watchdog.stalled == {tp}
