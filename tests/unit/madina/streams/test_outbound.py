"""The entity runner's outbound queue (madina.streams.entities._Outbound): what the agent hands
over leaves in that order -- snapshots, then a batch's states, then its acknowledgements -- the
sender gives the event loop back between chunks, and a sender too far behind is caught up by the
agent itself. A fake producer records every send; no broker."""

from __future__ import annotations

import asyncio
from typing import Any

from madina.bus.topics import KPIS
from madina.streams.entities import OUTBOUND_CHUNK, OUTBOUND_MAX_BATCHES, _Outbound


class RecordingProducer:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None, timestamp: float | None,
                   headers: Any) -> asyncio.Future[Any]:
        self.log.append(f"{topic}:{key.decode()}")
        sent: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        sent.set_result((topic, partition))
        return sent


class FakeApp:
    def __init__(self, log: list[str]) -> None:
        self.producer = RecordingProducer(log)

    async def crash(self, reason: BaseException) -> None:
        raise AssertionError(f"the sender crashed the app: {reason!r}")


class Event:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def ack(self) -> None:
        self.log.append(f"ack:{self.name}")


def outbound(log: list[str], states_sent: list[Any] | None = None) -> _Outbound:
    return _Outbound(FakeApp(log), "test", (states_sent if states_sent is not None else []).append)  # type: ignore[arg-type]


async def test_a_batch_is_acknowledged_after_its_snapshots_and_its_states_in_the_order_handed_over() -> None:
    log: list[str] = []
    states_sent: list[Any] = []
    out = outbound(log, states_sent)
    out.snapshot(KPIS, b"s1", b"v")
    out.snapshot(KPIS, b"s2", b"v")
    await out.end_batch("changelog", [(b"k1", b"{}", 0), (b"k2", b"{}", 3)], [Event("e1", log), Event("e2", log)])
    out.snapshot(KPIS, b"s3", b"v")
    await out.flush()
    await asyncio.sleep(0)  # the sent-callbacks of done futures
    assert log == [f"{KPIS.name}:s1", f"{KPIS.name}:s2", "changelog:k1", "changelog:k2", "ack:e1", "ack:e2",
                   f"{KPIS.name}:s3"]
    assert [sent.result() for sent in states_sent] == [("changelog", 0), ("changelog", 3)]
    assert out.batches == 0 and not out.items


async def test_the_sender_gives_the_loop_back_between_chunks_so_records_interleave_with_a_burst() -> None:
    log: list[str] = []
    out = outbound(log)
    burst = 3 * OUTBOUND_CHUNK
    for n in range(burst):
        out.snapshot(KPIS, f"s{n}".encode(), b"v")
    sender = asyncio.ensure_future(out.run())
    try:
        await asyncio.sleep(0)  # the sender's first turn
        await asyncio.sleep(0)
        log.append("the agent's next record")
        await out.flush()
    finally:
        sender.cancel()
    position = log.index("the agent's next record")
    assert 0 < position < burst, f"the agent ran after {position} of {burst} sends"
    assert len(log) == burst + 1


async def test_an_agent_ahead_of_the_sender_by_more_than_the_limit_sends_everything_itself() -> None:
    log: list[str] = []
    out = outbound(log)  # no sender task: a backlog keeps the loop busy
    for n in range(OUTBOUND_MAX_BATCHES):
        out.snapshot(KPIS, f"s{n}".encode(), b"v")
        await out.end_batch("changelog", [(f"k{n}".encode(), b"{}", 0)], [Event(f"e{n}", log)])
    assert log == [] and out.batches == OUTBOUND_MAX_BATCHES
    await out.end_batch("changelog", [], [Event("last", log)])
    assert [entry for entry in log if entry.startswith("ack:")] == [
        *(f"ack:e{n}" for n in range(OUTBOUND_MAX_BATCHES)), "ack:last"]
    assert out.batches == 0 and not out.items


class StallingProducer(RecordingProducer):
    """Holds the first send of a state (a full producer batch) until released."""

    def __init__(self, log: list[str]) -> None:
        super().__init__(log)
        self.stalled = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, topic: str, key: bytes, value: bytes, partition: int | None, timestamp: float | None,
                   headers: Any) -> asyncio.Future[Any]:
        if topic == "changelog" and not self.stalled.is_set():
            self.stalled.set()
            await self.release.wait()
        return await super().send(topic, key, value, partition, timestamp, headers)


async def test_a_sender_stopped_inside_a_send_leaves_that_state_to_the_final_flush() -> None:
    log: list[str] = []
    out = outbound(log)
    producer = StallingProducer(log)
    out.app.producer = producer  # type: ignore[attr-defined]
    await out.end_batch("changelog", [(b"k1", b"{}", 0)], [Event("e1", log)])
    sender = asyncio.ensure_future(out.run())
    await producer.stalled.wait()
    sender.cancel()  # the worker stops
    await asyncio.gather(sender, return_exceptions=True)
    await out.flush()
    assert log == ["changelog:k1", "ack:e1"]
